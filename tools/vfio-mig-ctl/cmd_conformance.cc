// SPDX-License-Identifier: GPL-2.0-only
/*
 * conformance: the conformance suite (tools/conformance) on drivers and
 * real devices.
 */
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "commands.h"
#include "common.h"

#include "conformance.h"

namespace uvfio::mig_ctl {

namespace {

int cmd_conformance(const std::vector<std::string> &specs,
		    const std::vector<std::string> &devices,
		    const std::string &peer, const std::string &junit,
		    const std::string &filter)
{
	namespace cf = uvfio::conformance;
	cf::Options opt;
	if (!peer.empty()) {
		if (devices.empty())
			return fail(EXIT_USAGE, "--peer goes with --device: "
					"it is where a real device's stream "
					"is loaded");
		cf::Target t;
		std::string why;
		if (!cf::parse_device_target(peer, &t, &why))
			return fail(EXIT_USAGE, "--peer: " + why);
		CmdDevice d;
		if (int rc = d.open(peer))
			return rc;
		opt.peer = peer;
	}
	for (const std::string &s : specs) {
		cf::Target t;
		if (is_device_path(s))
			return fail(EXIT_USAGE, "\"" + s + "\" is a device, not "
					"a driver: --device " + s);
		if (!cf::parse_target(s, &t))
			return fail(EXIT_USAGE, fmt::format(
					    "bad driver spec \"{}\" (DRIVER"
					    "[,key=value...], no bdf)", s));
		opt.targets.push_back(t);
	}
	for (const std::string &path : devices) {
		cf::Target t;
		std::string why;
		if (!cf::parse_device_target(path, &t, &why))
			return fail(EXIT_USAGE, why);
		/* One line now rather than a failure in every test. */
		CmdDevice d;
		if (int rc = d.open(path))
			return rc;
		opt.targets.push_back(t);
	}
	if (!junit.empty()) {
		/* Fail before an hour of tests, not after. */
		FILE *f = std::fopen(junit.c_str(), "w");
		if (!f)
			return fail(EXIT_FAIL, fmt::format("cannot write {}: {}",
							   junit,
							   strerror(errno)));
		std::fclose(f);
		opt.junit = junit;
	}
	if (!filter.empty())
		opt.gtest_args.push_back("--gtest_filter=" + filter);
	int rc = cf::run(opt);
	if (rc == 2)
		return EXIT_USAGE;
	return rc ? fail(EXIT_FAIL, "conformance: some tests failed") : 0;
}

} // namespace

Command add_conformance(CLI::App &app)
{
	struct Args {
		std::vector<std::string> specs, devices;
		std::string junit, filter, peer;
	};
	auto a = std::make_shared<Args>();
	auto *sub = app.add_subcommand("conformance", "run the conformance "
				       "suite against drivers");
	sub->add_option("-d,--driver", a->specs, "driver to test, as a "
			"device spec without bdf (\"simnic\" or "
			"\"simnic,mem=4M\"); repeatable; default: every "
			"registered driver (plugins: name them, with "
			"UVFIO_DRIVER_PATH set)");
	sub->add_option("--device", a->devices, "a real device to test "
			"(/sys/bus/pci/devices/BDF, /sys/bus/mdev/devices/"
			"UUID or /dev/vfio/N@NAME), opened through its group "
			"for each test; repeatable");
	sub->add_option("--peer", a->peer, "a second real device of the "
			"same kind (a path, as --device): the --device tests "
			"load their streams into it, and the round trip "
			"runs (default: $UVFIO_CONFORMANCE_PEER)");
	sub->add_option("--junit", a->junit, "write a JUnit XML report to FILE");
	sub->add_option("--filter", a->filter, "run only tests matching a "
			"GoogleTest filter (e.g. '*Fsm*:*DataFd*')");
	return {sub, false, [a] {
		return cmd_conformance(a->specs, a->devices, a->peer, a->junit,
				       a->filter);
	}};
}

} // namespace uvfio::mig_ctl
