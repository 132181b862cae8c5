/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The conformance suite: what every driver must do through the uAPI, run
 * against each driver under test (built-in or a plugin), as GoogleTest
 * tests parameterized by the driver's device spec. Checks a driver does
 * not advertise (no PRE_COPY, no P2P, no DMA logging, no DMA engine to
 * watch) are skipped with the reason.
 *
 * Users: `meson test --suite conformance` (every in-tree driver),
 * `vfio-mig-ctl conformance` (one driver, JUnit output) and the
 * uvfio-conformance program.
 */
#ifndef UVFIO_TOOLS_CONFORMANCE_H
#define UVFIO_TOOLS_CONFORMANCE_H

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <uvfio/tools/transport.h>

namespace uvfio::conformance {

/*
 * What is under test: a driver, by a device spec without bdf
 * ("simnic,mem=2M"), of which each test creates its own devices; or one
 * real device, by its path (device; see <uvfio/tools/vfio_open.h>),
 * which each test opens through its group and closes again.
 */
struct Target {
	std::string driver;	/* spec name, for test names */
	std::string spec;
	std::string device;	/* a real device: its name; spec unused */
};

/*
 * The spec a driver is tested with when none is given: small device
 * memory for the in-tree drivers, every feature testdev can offer, the
 * bare name for anything else.
 */
std::string default_spec(const std::string &driver);

/* Every registered driver (uvfio_sim_driver()), with its default spec. */
std::vector<Target> all_drivers();

struct Options {
	/* What to test; empty: all_drivers(). */
	std::vector<Target> targets;
	/*
	 * How real devices are reached: the kernel's system calls (also
	 * under uvfio-run) when empty. A test may give the simulator's.
	 */
	std::function<std::unique_ptr<tools::Transport>()> device_transport;
	/*
	 * A second real device of the same kind as the real targets (a
	 * path, as for device), the destination of the tests that load a
	 * stream: the round trip needs it, the others load into the target
	 * itself without it. Empty: $UVFIO_CONFORMANCE_PEER, if set (so
	 * `vfio-mig-ctl conformance --device` can have one).
	 */
	std::string peer;
	/* Write a JUnit XML report here ("" = none). */
	std::string junit;
	/* More GoogleTest arguments (--gtest_filter=..., ...). */
	std::vector<std::string> gtest_args;
};

/*
 * Run the suite: 0 when every test passed (skips allowed), 1 when any
 * failed or a real device does not open, 2 when a target cannot be
 * created at all (unknown driver, bad spec, a malformed device name) or
 * the GoogleTest filter selects no test, with a one-line message on
 * stderr.
 */
int run(const Options &opt);

/* Parse "DRIVER[,key=value...]" into a Target; false if malformed. */
bool parse_target(const std::string &spec, Target *out);

/* A real device by its path; false with *why if the name is malformed. */
bool parse_device_target(const std::string &path, Target *out,
			 std::string *why);

} // namespace uvfio::conformance

#endif /* UVFIO_TOOLS_CONFORMANCE_H */
