// SPDX-License-Identifier: GPL-2.0-only
/*
 * Running the conformance suite: the targets, their names, and GoogleTest
 * driven from a program that is not a test binary (vfio-mig-ctl).
 */
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include <uvfio/tools/vfio_open.h>
#include <uvfio/uvfio.h>

#include "conformance.h"
#include "suite.h"

namespace uvfio::conformance {

namespace {

std::vector<Target> g_targets;
std::function<std::unique_ptr<tools::Transport>()> g_device_transport;
std::string g_peer;

} // namespace

const std::vector<Target> &targets()
{
	return g_targets;
}

std::unique_ptr<tools::Transport> device_transport()
{
	return g_device_transport ? g_device_transport()
				  : tools::make_kernel_transport();
}

const std::string &peer_device()
{
	return g_peer;
}

void PrintTo(const Target &t, std::ostream *os)
{
	*os << '"' << (t.device.empty() ? t.spec : t.device) << '"';
}

std::string target_name(const Target &t, size_t index)
{
	std::string name;
	if (!t.device.empty())
		for (char c : t.device.substr(1))	/* "/sys/..." */
			name += std::isalnum(static_cast<unsigned char>(c)) ? c
									    : '_';
	else if (t.spec == default_spec(t.driver))
		name = t.driver;
	else
		for (char c : t.spec)
			name += std::isalnum(static_cast<unsigned char>(c)) ? c
									    : '_';
	/* Distinct, and stable for the in-tree defaults. */
	for (size_t i = 0; i < index; i++)
		if (g_targets[i].spec == t.spec &&
		    g_targets[i].device == t.device)
			return name + "_" + std::to_string(index);
	return name;
}

std::string default_spec(const std::string &driver)
{
	static const std::map<std::string, std::string> specs = {
		{"testdev", "testdev,mig=stop_copy|p2p|pre_copy,log=1,mem=2M"},
		{"simnic", "simnic,mem=2M"},
		{"simmin", "simmin,mem=2M"},
		{"skeleton", "skeleton,mem=2M"},
	};
	auto it = specs.find(driver);
	return it != specs.end() ? it->second : driver;
}

std::vector<Target> all_drivers()
{
	std::vector<Target> v;
	const char *name;
	for (unsigned i = 0; !uvfio_sim_driver(i, &name, nullptr, nullptr); i++)
		v.push_back({name, default_spec(name)});
	return v;
}

bool parse_target(const std::string &spec, Target *out)
{
	std::string driver = spec.substr(0, spec.find(','));
	if (driver.empty() || spec.find("bdf=") != std::string::npos)
		return false;
	out->driver = driver;
	/* A bare driver name gets the defaults the in-tree drivers need. */
	out->spec = spec == driver ? default_spec(driver) : spec;
	return true;
}

bool parse_device_target(const std::string &path, Target *out,
			 std::string *why)
{
	tools::DeviceName dn;
	if (tools::parse_device_path(path, &dn, why))
		return false;
	*out = {};
	out->driver = dn.name;
	out->device = path;
	return true;
}

int run(const Options &opt)
{
	g_targets = opt.targets.empty() ? all_drivers() : opt.targets;
	g_device_transport = opt.device_transport;
	const char *env_peer = std::getenv("UVFIO_CONFORMANCE_PEER");
	g_peer = !opt.peer.empty() ? opt.peer : env_peer ? env_peer : "";
	if (g_targets.empty()) {
		std::fprintf(stderr, "conformance: no driver to test\n");
		return 2;
	}
	/* The peer matters to real targets only. */
	if (std::none_of(g_targets.begin(), g_targets.end(),
			 [](const Target &t) { return !t.device.empty(); }))
		g_peer.clear();
	std::vector<Target> to_open = g_targets;
	if (!g_peer.empty()) {
		Target t;
		std::string why;
		if (!parse_device_target(g_peer, &t, &why)) {
			std::fprintf(stderr, "conformance: peer: %s\n",
				     why.c_str());
			return 2;
		}
		to_open.push_back(t);
	}
	/* A target that cannot even be created is a usage error, not a test. */
	for (const Target &t : to_open) {
		if (!t.device.empty()) {
			/* Opens, or one line why, not a failure per test. */
			std::unique_ptr<tools::Transport> tr = device_transport();
			tools::VfioDevice d(*tr);
			tools::DeviceName dn;
			std::string why;
			if (tools::parse_device_path(t.device, &dn, &why)) {
				std::fprintf(stderr, "conformance: %s\n",
					     why.c_str());
				return 2;
			}
			if (d.open(dn, &why)) {
				std::fprintf(stderr, "conformance: %s\n",
					     why.c_str());
				return 1;
			}
			continue;
		}
		std::string spec = t.spec + ",bdf=" + kProbeBdf;
		if (uvfio_sim_add(spec.c_str())) {
			int e = errno;
			std::fprintf(stderr,
				     "conformance: cannot create \"%s\": %s\n",
				     t.spec.c_str(),
				     e == ENOENT   ? "unknown driver"
				     : e == EINVAL ? "bad spec"
						   : std::strerror(e));
			return 2;
		}
		uvfio_sim_remove(kProbeBdf);
	}

	std::vector<std::string> args = {"uvfio-conformance"};
	if (!opt.junit.empty())
		args.push_back("--gtest_output=xml:" + opt.junit);
	args.insert(args.end(), opt.gtest_args.begin(), opt.gtest_args.end());
	std::vector<char *> argv;
	for (std::string &a : args)
		argv.push_back(a.data());
	argv.push_back(nullptr);
	int argc = static_cast<int>(args.size());
	::testing::InitGoogleTest(&argc, argv.data());
	int failed = RUN_ALL_TESTS();
	/*
	 * A filter that selects nothing is a mistake (a typo, a renamed
	 * test), not a pass: a CI job would go green having run nothing.
	 */
	const ::testing::UnitTest &ut = *::testing::UnitTest::GetInstance();
	if (ut.test_to_run_count() == 0 && !GTEST_FLAG_GET(list_tests)) {
		std::fprintf(stderr,
			     "conformance: the filter \"%s\" matches no test "
			     "(--gtest_list_tests lists them)\n",
			     GTEST_FLAG_GET(filter).c_str());
		return 2;
	}
	return failed ? 1 : 0;
}

} // namespace uvfio::conformance
