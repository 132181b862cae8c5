/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The kernel transport's system calls answered by uvfio_* in this process
 * (what uvfio-run does for a whole process), and sysfs's iommu_group link by
 * the simulator's group: the real-device code path, tested in-process.
 */
#ifndef UVFIO_TESTS_TOOLS_SIM_SYSCALLS_H
#define UVFIO_TESTS_TOOLS_SIM_SYSCALLS_H

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include <uvfio/tools/transport.h>
#include <uvfio/uvfio.h>

namespace uvfio_test {

inline int sim_open(const char *path, int)
{
	return uvfio_open(path);
}

inline ssize_t sim_readlink(const char *path, char *buf, size_t len)
{
	std::string target;
	int ret = uvfio::tools::make_sim_transport()->readlink(path, &target);
	if (ret) {
		errno = -ret;
		return -1;
	}
	size_t n = std::min(len, target.size());
	std::memcpy(buf, target.data(), n);
	return ssize_t(n);
}

inline uvfio::tools::syscall_ops uvfio_syscalls()
{
	uvfio::tools::syscall_ops ops;
	ops.open = sim_open;
	ops.readlink = sim_readlink;
	ops.ioctl = uvfio_ioctl;
	ops.pread = uvfio_pread;
	ops.pwrite = uvfio_pwrite;
	ops.read = uvfio_read;
	ops.write = uvfio_write;
	ops.close = uvfio_close;
	ops.mmap = uvfio_mmap;
	return ops;
}

} // namespace uvfio_test

#endif /* UVFIO_TESTS_TOOLS_SIM_SYSCALLS_H */
