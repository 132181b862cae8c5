/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/uvfio.h> - the syscall surface of uvfio.
 *
 * Userspace talks to simulated VFIO devices through these functions. Each one
 * stands for the libc call of the same name on a real VFIO device and behaves
 * like it: on failure it returns -1 (MAP_FAILED for uvfio_mmap) and sets
 * errno. Arguments are the real uAPI structs of <linux/vfio.h>, extended by
 * <uvfio/uapi/vfio.h> with definitions newer than the installed headers.
 *
 * Every fd these functions return is a real file descriptor of this process,
 * so poll(2), read(2) and io_uring work where the kernel's would; close it with
 * uvfio_close(), which also drops the simulated file behind it (close(2) on it
 * leaks the simulated file until the fd number is reused).
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef UVFIO_UVFIO_H
#define UVFIO_UVFIO_H

#include <stdint.h>
#include <sys/types.h>

#include <uvfio/uapi/vfio.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Create a simulated PCI function and bind the named driver to it.
 *
 * spec: "DRIVER,bdf=DDDD:BB:DD.F[,key=value...]". DRIVER is a driver's spec
 * name (e.g. "testdev"); bdf is the PCI address ("BB:DD.F" implies domain
 * 0000); the other keys are the driver's own.
 *
 * Return: 0, or -1 with errno ENOENT (unknown driver), EINVAL (malformed spec
 * or BDF, unknown key, bad value, BDF already in use), EFAULT (spec is NULL),
 * ENOMEM, or the driver's probe error. A one-line message naming the problem goes to the log (stderr by
 * default).
 */
int uvfio_sim_add(const char *spec);

/*
 * Parse a size as spec strings take one (e.g. "mem=64M"), so that tools
 * read sizes with the same grammar: a decimal number, or hex after "0x",
 * then optionally K, M, G or T (2^10, 2^20, 2^30, 2^40), alone or followed
 * by "B" or "iB", or a lone "B" (bytes); suffixes in either case. All
 * factors are binary ("16MB" and "16MiB" are both 2^24); in a hex number B
 * is a digit. No sign, space, fraction or other suffix.
 * Documentation/uvfio-spec.md, "Value types", has the grammar.
 *
 * Return: 0 with *size set, or -1 with errno EINVAL (not a size), ERANGE
 * (more than 2^64 - 1 bytes) or EFAULT (text or size is NULL); *size is
 * left alone on failure.
 */
int uvfio_parse_size(const char *text, uint64_t *size);

/*
 * Unbind the driver from the function at bdf and remove the function.
 *
 * Like unbinding a kernel driver, this waits until every user has closed the
 * device, calling the driver's request callback while it waits (a driver
 * typically signals its VFIO_PCI_REQ_IRQ_INDEX eventfd there).
 *
 * Return: 0, or -1 with errno ENOENT (no such function), EINVAL (bad BDF) or
 * EFAULT (bdf is NULL).
 */
int uvfio_sim_remove(const char *bdf);

/*
 * Open a device by BDF ("0000:00:01.0"; "00:01.0" is accepted), the IOMMU
 * container "/dev/vfio/vfio", or the group "/dev/vfio/N" (see
 * uvfio_sim_iommu_group()). A device opened by BDF is not behind any
 * container; open it through its group to give it an IOMMU.
 *
 * Return: a new fd, or -1 with errno ENOENT (nothing by that name, or a device
 * being removed), EBUSY (the group is already open), EFAULT (name is NULL),
 * EMFILE, ENOMEM, or the driver's open_device error.
 */
int uvfio_open(const char *name);

/*
 * The IOMMU group number of the device at bdf: the N of "/dev/vfio/N", which
 * uvfio_open() opens as a group fd (VFIO_GROUP_SET_CONTAINER,
 * VFIO_GROUP_GET_DEVICE_FD), as sysfs's iommu_group link tells on a real
 * machine. Each device is alone in its group.
 *
 * Return: the number, or -1 with errno ENOENT (no device registered at bdf)
 * or EFAULT (bdf is NULL).
 */
int uvfio_sim_iommu_group(const char *bdf);

/*
 * The registered drivers, for listing: the idx-th (0, 1, ...) in spec-name
 * order. Any output may be NULL; the strings live as long as the driver
 * (built-in drivers and loaded plugins: the process). Plugins not used yet
 * are not listed.
 *
 * Return: 0, or -1 with errno ENOENT past the last driver.
 */
int uvfio_sim_driver(unsigned int idx, const char **spec_name,
		     const char **name, const char **description);

/*
 * Driver plugins: a driver built as a shared object NAME.so in one of the
 * directories of the environment's UVFIO_DRIVER_PATH (colon-separated,
 * searched in order; empty entries and unreadable directories skipped) is
 * the driver of spec name NAME. Only the first directory that has NAME.so
 * counts, and only names a spec can give (letters, digits, '_', '-', '.',
 * not starting with '.'). uvfio_sim_add() loads one when a spec names a
 * driver that is not registered; these two calls let a program see and
 * load them by the same rules before that (to list them, or arm their
 * fault points).
 */

/*
 * The plugins on the path, loaded or not, one per spec name: the idx-th
 * (0, 1, ...) in spec-name order, its name and file ("DIR/NAME.so"). Each
 * call reads the directories afresh. Any output may be NULL; the strings
 * live as long as the process.
 *
 * Return: 0, or -1 with errno ENOENT past the last plugin (or none:
 * UVFIO_DRIVER_PATH unset) or ENOMEM.
 */
int uvfio_driver_plugin(unsigned int idx, const char **name,
			const char **file);

/*
 * Load the plugin of spec name name from the path, as uvfio_sim_add()
 * would: its constructor registers its driver (and its fault points).
 * A plugin stays loaded. A built-in or loaded driver of that name wins:
 * nothing is loaded then.
 *
 * Return: 0, or -1 with errno ENOENT (no such plugin on the path, or not
 * a name a spec can give), EEXIST (a driver of that name is registered),
 * EINVAL (the dynamic loader refused the file), EFAULT (name is NULL) or
 * ENOMEM. On failure, unless why is NULL, why (why_size bytes) holds the
 * reason, one line cut to fit: for EINVAL "driver plugin FILE: " and the
 * loader's message.
 */
int uvfio_driver_plugin_load(const char *name, char *why, size_t why_size);

/*
 * A hash of the migratable state of the device open as fd (a device fd),
 * from the driver's own hook: equal for a device saved and a device loaded
 * from its stream. For checks such as the conformance suite's round trip;
 * the kernel has no such call. The device must be out of RUNNING and
 * PRE_COPY (e.g. STOP).
 *
 * Return: 0, or -1 with errno EBADF, EINVAL (not a device fd), EOPNOTSUPP
 * (the driver has no hook), EBUSY (the device is running), EFAULT, or the
 * driver's error.
 */
int uvfio_sim_state_digest(int fd, uint64_t *digest);

/* ioctl(2) on a uvfio fd. Returns the ioctl's non-negative result, or -1. */
int uvfio_ioctl(int fd, unsigned long request, void *arg);

/*
 * pread(2)/pwrite(2) on a device fd: region access at the region's offset
 * (from VFIO_DEVICE_GET_REGION_INFO) plus the offset in the region.
 */
ssize_t uvfio_pread(int fd, void *buf, size_t count, off_t offset);
ssize_t uvfio_pwrite(int fd, const void *buf, size_t count, off_t offset);

/*
 * read(2)/write(2) on a uvfio fd. On a migration data fd these give the
 * kernel's exact semantics (ENOMSG at a temporary end of pre-copy data, the
 * driver's own errno on failure); see Documentation/uapi.md for how plain
 * read(2)/write(2) on the same fd differ.
 */
ssize_t uvfio_read(int fd, void *buf, size_t count);
ssize_t uvfio_write(int fd, const void *buf, size_t count);

/*
 * mmap(2) of a device region: offset is the region's offset (from
 * VFIO_DEVICE_GET_REGION_INFO) plus a page-aligned offset in the region.
 * Unmap with plain munmap(2).
 *
 * Return: the mapping, or MAP_FAILED with errno EINVAL (region not mappable,
 * bad range or alignment), EBADF, ENODEV (the fd cannot be mapped, e.g. the
 * container), or ENOMEM.
 */
void *uvfio_mmap(void *addr, size_t length, int prot, int flags, int fd,
		 off_t offset);

/* close(2) a uvfio fd. The last close of a device calls close_device. */
int uvfio_close(int fd);

/*
 * dup(2), dup3(2) and fcntl(2) on a uvfio fd. The new fd stands for the same
 * file as the old one, as a dup of a kernel file does: the device stays
 * open until every fd for it is closed with uvfio_close(). uvfio_dup3 onto
 * a uvfio fd releases the file that fd stood for (as dup2 closes its
 * target); flags is 0 or O_CLOEXEC; oldfd == newfd is EINVAL, as in dup3.
 * uvfio_fcntl does F_DUPFD and F_DUPFD_CLOEXEC (arg: the lowest number)
 * itself and passes every other command to fcntl(2) on the real fd.
 *
 * Return: the new fd (uvfio_fcntl: fcntl's result), or -1 with errno EBADF
 * (oldfd is not a uvfio fd), EINVAL, EMFILE or ENOMEM.
 */
int uvfio_dup(int oldfd);
int uvfio_dup3(int oldfd, int newfd, int flags);
int uvfio_fcntl(int fd, int cmd, long arg);

/*
 * Whether fd is a uvfio fd (a container, group, device or migration data
 * fd): 1 or 0. Takes no lock and makes no system call, so an interposer
 * (uvfio-run's preload) may ask it on every call it sees.
 */
int uvfio_is_fd(int fd);

/* Log levels, as syslog(3) and the kernel's KERN_* number them. */
#define UVFIO_LOG_ERR 3
#define UVFIO_LOG_WARNING 4
#define UVFIO_LOG_INFO 6
#define UVFIO_LOG_DEBUG 7

/*
 * Receive uvfio's log lines (driver dev_err() and friends, spec errors, ...)
 * instead of stderr. line has no trailing newline. fn == NULL restores stderr.
 */
typedef void (*uvfio_log_fn)(int level, const char *line, void *opaque);
void uvfio_set_log_fn(uvfio_log_fn fn, void *opaque);

/*
 * Lines above level are dropped. The default is UVFIO_LOG_WARNING, or the
 * value of the environment variable UVFIO_LOG_LEVEL (a number or one of err,
 * warning, info, debug). Returns the previous level.
 */
int uvfio_set_log_level(int level);

/*
 * Fault injection. The core, the simulated device and drivers have named
 * fault points (e.g. "mig.arc.STOP->STOP_COPY", "mig.data.read",
 * "dma.write"; the list is in Documentation/driver-guide.md and
 * uvfio_fault_list() gives the ones loaded). An armed point makes the
 * operation there fail as a real failure at that place would, with an
 * errno, and the failure reaches the caller by the ordinary path.
 * Arming a dotted prefix ("mig.arc", "dma") arms every point under it.
 * Armed points are global to the process; all functions are thread-safe.
 */
#define UVFIO_FAULT_PERSIST 0x1	/* fail the nth hit and every later one */

/*
 * Arm name: its nth hit from now on (1 = the next) fails with errno err
 * (0: the point's default), and with UVFIO_FAULT_PERSIST every hit after
 * it too. Arming an armed name replaces its spec and restarts its count.
 *
 * Return: 0, or -1 with errno ENOENT (no such point or prefix), EINVAL
 * (nth 0, err out of range, unknown flags) or EFAULT (name is NULL).
 */
int uvfio_fault_set(const char *name, unsigned int nth, int err,
		    unsigned int flags);

/*
 * Disarm name (as armed: a prefix disarms only itself), or every point
 * when name is NULL. Disarming a point that is not armed is not an error.
 *
 * Return: 0, or -1 with errno ENOENT (no such point or prefix).
 */
int uvfio_fault_clear(const char *name);

/*
 * How often the armed name (or a point under it) was reached since it was
 * armed, failing or not.
 *
 * Return: the count, or -1 with errno ENOENT (name is not armed) or EFAULT.
 */
long long uvfio_fault_hits(const char *name);

/*
 * The points that have failed a call in this process, each once, in the
 * order they first did: the idx-th (0, 1, ...) in *name (may be NULL),
 * a string that lives as long as the process. What a tool names when an
 * injected failure ends a command; the log line "fault injected at ..."
 * says the same for people.
 *
 * Return: 0, or -1 with errno ENOENT past the last.
 */
int uvfio_fault_fired(unsigned int idx, const char **name);

/*
 * The declared points, for listing: the idx-th (0, 1, ...) in name order,
 * its default errno and a one-line description. Any output may be NULL; the
 * strings live as long as the process.
 *
 * Return: 0, or -1 with errno ENOENT past the last point.
 */
int uvfio_fault_list(unsigned int idx, const char **name, int *default_err,
		     const char **description);

#ifdef __cplusplus
}
#endif

#endif /* UVFIO_UVFIO_H */
