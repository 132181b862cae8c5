// SPDX-License-Identifier: GPL-2.0-only
/*
 * Running the conformance suite: the targets, their names, and GoogleTest
 * driven from a program that is not a test binary (vfio-mig-ctl).
 */
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

#include <uvfio/uvfio.h>

#include "conformance.h"
#include "suite.h"

namespace uvfio::conformance {

namespace {

std::vector<Target> g_targets;

} // namespace

const std::vector<Target> &targets()
{
	return g_targets;
}

void PrintTo(const Target &t, std::ostream *os)
{
	*os << '"' << t.spec << '"';
}

std::string target_name(const Target &t, size_t index)
{
	std::string name;
	if (t.spec == default_spec(t.driver))
		name = t.driver;
	else
		for (char c : t.spec)
			name += std::isalnum(static_cast<unsigned char>(c)) ? c
									    : '_';
	/* Distinct, and stable for the in-tree defaults. */
	for (size_t i = 0; i < index; i++)
		if (g_targets[i].spec == t.spec)
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

int run(const Options &opt)
{
	g_targets = opt.targets.empty() ? all_drivers() : opt.targets;
	if (g_targets.empty()) {
		std::fprintf(stderr, "conformance: no driver to test\n");
		return 2;
	}
	/* A target that cannot even be created is a usage error, not a test. */
	for (const Target &t : g_targets) {
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
	return RUN_ALL_TESTS() ? 1 : 0;
}

} // namespace uvfio::conformance
