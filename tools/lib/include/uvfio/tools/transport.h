/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/tools/transport.h> - how the user-side tools reach a VFIO device:
 * the few calls a migration client makes, behind one interface. Two
 * implementations: the simulator's syscall surface (uvfio_*), and plain
 * system calls on a real /dev/vfio device fd, whose calls can be replaced
 * (struct syscall_ops) so that it is testable without a kernel device.
 *
 * Every call returns what the system call would, but errors as -errno
 * (read errno once, at the call): ioctl its non-negative result or -errno,
 * open an fd or -errno, pread/pwrite/read/write the byte count or -errno.
 *
 * open and readlink are what a VMM needs to find and open a device (see
 * <uvfio/tools/vfio_open.h>): the simulator answers them from its own
 * names (uvfio_open, uvfio_sim_iommu_group), the kernel transport with
 * the system's /dev/vfio and sysfs.
 */
#ifndef UVFIO_TOOLS_TRANSPORT_H
#define UVFIO_TOOLS_TRANSPORT_H

#include <sys/types.h>

#include <memory>
#include <string>

namespace uvfio::tools {

class Transport
{
public:
	virtual ~Transport() = default;
	virtual const char *name() const = 0;
	/* /dev/vfio/vfio or /dev/vfio/N; flags as open(2)'s (O_RDWR). */
	virtual int open(const char *path, int flags) = 0;
	/* The target of a symbolic link (sysfs's iommu_group), or -errno. */
	virtual int readlink(const char *path, std::string *target) = 0;
	virtual int ioctl(int fd, unsigned long request, void *arg) = 0;
	virtual ssize_t pread(int fd, void *buf, size_t count, off_t off) = 0;
	virtual ssize_t pwrite(int fd, const void *buf, size_t count,
			       off_t off) = 0;
	/* On a migration data fd. read: -ENOMSG is "nothing now". */
	virtual ssize_t read(int fd, void *buf, size_t count) = 0;
	virtual ssize_t write(int fd, const void *buf, size_t count) = 0;
	virtual int close(int fd) = 0;
	/*
	 * mmap(2) of a device region, shared: off is the region's offset
	 * plus a page-aligned offset in it. *addr gets the mapping; unmap
	 * it with plain munmap(2). 0 or -errno.
	 */
	virtual int mmap(int fd, off_t off, size_t len, int prot,
			 void **addr) = 0;
};

/*
 * The simulator: uvfio_ioctl, uvfio_pread, ... Its readlink answers
 * /sys/bus/pci/devices/BDF/iommu_group for a simulated device as sysfs
 * would (uvfio_sim_iommu_group()), and ENOENT for anything else.
 */
std::unique_ptr<Transport> make_sim_transport();

/* The system calls a kernel transport makes; NULL members mean libc's. */
struct syscall_ops {
	int (*open)(const char *path, int flags) = nullptr;
	ssize_t (*readlink)(const char *path, char *buf, size_t len) = nullptr;
	int (*ioctl)(int fd, unsigned long request, void *arg) = nullptr;
	ssize_t (*pread)(int fd, void *buf, size_t count, off_t off) = nullptr;
	ssize_t (*pwrite)(int fd, const void *buf, size_t count,
			  off_t off) = nullptr;
	ssize_t (*read)(int fd, void *buf, size_t count) = nullptr;
	ssize_t (*write)(int fd, const void *buf, size_t count) = nullptr;
	int (*close)(int fd) = nullptr;
	void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd,
		      off_t off) = nullptr;
};

/* A real VFIO device fd (/dev/vfio/N + GET_DEVICE_FD, or a cdev). */
std::unique_ptr<Transport> make_kernel_transport(const syscall_ops &ops = {});

} // namespace uvfio::tools

#endif /* UVFIO_TOOLS_TRANSPORT_H */
