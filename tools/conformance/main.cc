// SPDX-License-Identifier: GPL-2.0-only
/*
 * uvfio-conformance: the conformance suite as a program, for meson test
 * and for out-of-tree drivers (plugins found through UVFIO_DRIVER_PATH),
 * and for real devices (--device: a kernel's, or a simulated one under
 * uvfio-run). vfio-mig-ctl conformance runs the same suite.
 */
#include <CLI/CLI.hpp>

#include <cstdio>

#include <uvfio/tools/rlimit.h>

#include "conformance.h"

int main(int argc, char **argv)
{
	namespace cf = uvfio::conformance;
	CLI::App app{"Run the uvfio conformance suite against drivers"};
	std::vector<std::string> specs, devices;
	cf::Options opt;
	app.add_option("-d,--driver", specs,
		       "driver to test, as a device spec without bdf "
		       "(\"simnic\" or \"simnic,mem=4M\"); repeatable; "
		       "default: every registered driver");
	app.add_option("--device", devices,
		       "a real device to test, by path: /sys/bus/pci/devices/"
		       "BDF, /sys/bus/mdev/devices/UUID or /dev/vfio/N@NAME; "
		       "repeatable");
	app.add_option("--peer", opt.peer,
		       "a second real device of the same kind, by path: the "
		       "destination of the round trips (default: "
		       "$UVFIO_CONFORMANCE_PEER)");
	app.add_option("--junit", opt.junit, "write a JUnit XML report");
	std::string filter;
	app.add_option("--filter", filter,
		       "run only the tests matching a GoogleTest filter (e.g. "
		       "'*Fsm*:*DataFd*'); one that matches none is a usage "
		       "error (exit 2)");
	app.allow_extras();
	app.footer("Other arguments go to GoogleTest (--gtest_filter=..., "
		   "--gtest_list_tests, ...). Exit: 0 all passed, 1 a test "
		   "failed, 2 usage error (a bad spec, a filter that "
		   "matches no test).");
	CLI11_PARSE(app, argc, argv);
	/* Every driver's devices and streams in one process: not the
	 * default 1024 descriptors' worth. */
	uvfio::tools::raise_nofile_limit();
	for (const std::string &s : specs) {
		cf::Target t;
		if (!cf::parse_target(s, &t)) {
			std::fprintf(stderr, "uvfio-conformance: bad driver spec "
					     "\"%s\" (DRIVER[,key=value...], "
					     "no bdf)\n", s.c_str());
			return 2;
		}
		opt.targets.push_back(t);
	}
	for (const std::string &d : devices) {
		cf::Target t;
		std::string why;
		if (!cf::parse_device_target(d, &t, &why)) {
			std::fprintf(stderr, "uvfio-conformance: %s\n",
				     why.c_str());
			return 2;
		}
		opt.targets.push_back(t);
	}
	opt.gtest_args = app.remaining();
	if (!filter.empty())
		opt.gtest_args.push_back("--gtest_filter=" + filter);
	return cf::run(opt);
}
