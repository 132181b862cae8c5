// SPDX-License-Identifier: GPL-2.0-only
/*
 * Contract: the conformance suite's real-device mode passes on a device
 * that obeys the uAPI, with the skips it states. The device is a simnic
 * named by its sysfs path, opened through group and container by the
 * suite's own opener, and reached through the kernel transport's code
 * with its system calls routed to uvfio_* (what uvfio-run does for a
 * whole process), so the mode is checked without the preload. Per test
 * it is opened and closed again: a test that leaves it STOPPED must not
 * leave the next one a device that is not RUNNING.
 *
 * usage: conformance-real [GTEST ARGS...]; exit as uvfio-conformance.
 */
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <uvfio/tools/transport.h>
#include <uvfio/uvfio.h>

#include "sim_syscalls.h"

#include "conformance.h"

using namespace uvfio::tools;

namespace {

std::unique_ptr<Transport> uvfio_kernel_transport()
{
	return make_kernel_transport(uvfio_test::uvfio_syscalls());
}

} // namespace

int main(int argc, char **argv)
{
	namespace cf = uvfio::conformance;
	const char *bdf = "0000:00:1f.0";
	if (uvfio_sim_add("simnic,bdf=0000:00:1f.0,mem=2M")) {
		std::perror("conformance-real: uvfio_sim_add");
		return 2;
	}
	cf::Options opt;
	cf::Target t;
	std::string why;
	if (!cf::parse_device_target(std::string("/sys/bus/pci/devices/") + bdf,
				     &t, &why)) {
		std::fprintf(stderr, "conformance-real: %s\n", why.c_str());
		return 2;
	}
	opt.targets.push_back(t);
	opt.device_transport = uvfio_kernel_transport;
	for (int i = 1; i < argc; i++)
		opt.gtest_args.push_back(argv[i]);
	int rc = cf::run(opt);
	uvfio_sim_remove(bdf);
	return rc;
}
