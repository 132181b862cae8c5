/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/linux/fault-inject.h> - named fault points, the idea of the
 * kernel's fault_attr/should_fail() (lib/fault-inject.c) in uvfio's own
 * shape.
 *
 * A fault point is a place in the core, the simulated device or a driver
 * where a failure can be forced on demand. Each point has a stable dotted
 * name ("mig.data.read") and a default errno. Tests and tools arm points by
 * name through the syscall surface (uvfio_fault_set() in <uvfio/uvfio.h>,
 * `vfio-mig-ctl --fault NAME[:N]`); arming a dotted prefix ("mig.arc",
 * "dma") arms every point under it.
 *
 * At the point, code asks whether to fail and, if so, fails the way a real
 * failure there would, with the errno it is given:
 *
 *	int err = should_fail("mydrv.load");
 *	if (err)
 *		return err;		// -errno
 *
 * When nothing is armed anywhere, should_fail() is one relaxed atomic load.
 * Points are declared once at load time (DECLARE_FAULT_POINT), so they can
 * be listed and so arming a misspelt name fails instead of never firing.
 * should_fail() may be called from any thread and with any driver lock
 * held: it takes only a leaf lock of its own and calls nothing back.
 *
 * Porting to the kernel: declare a struct fault_attr with
 * DECLARE_FAULT_ATTR, expose it with fault_create_debugfs_attr, and replace
 * should_fail(name) by should_fail(&attr, size) with the errno you chose.
 */
#ifndef UVFIO_LINUX_FAULT_INJECT_H
#define UVFIO_LINUX_FAULT_INJECT_H

#include <atomic>

/* Armed points in the process; 0 makes every check a single load. */
extern std::atomic<unsigned int> uvfio_faults_armed;

/* The slow paths behind should_fail()/should_failf(). */
int uvfio_should_fail_slow(const char *name);
int uvfio_should_failf_slow(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/*
 * Declare a point: its name, the errno it fails with when armed without
 * one (a positive errno value, e.g. EIO), and one line for listings.
 * Names are [A-Za-z0-9_.>-], dot-separated. Declaring a name twice keeps
 * the first declaration. 0, or -EINVAL for a bad name or errno.
 */
int fault_point_register(const char *name, int default_err, const char *doc);

/* At load time, from a constructor, as module_pci_driver registers. */
#define DECLARE_FAULT_POINT(id, name, default_err, doc)                   \
	__attribute__((constructor)) static void id##_fault_register(void) \
	{                                                                  \
		fault_point_register(name, default_err, doc);              \
	}

/*
 * 0 to go on, or -errno to fail with at this hit of the point name (or of
 * an armed prefix of it). Each call is one hit.
 */
static inline int should_fail(const char *name)
{
	if (__builtin_expect(
		    !uvfio_faults_armed.load(std::memory_order_relaxed), 1))
		return 0;
	return uvfio_should_fail_slow(name);
}

/* should_fail() on a name built from fmt, formatted only when armed. */
#define should_failf(fmt, ...)                                            \
	(__builtin_expect(                                                 \
		 !uvfio_faults_armed.load(std::memory_order_relaxed), 1)   \
		 ? 0                                                       \
		 : uvfio_should_failf_slow(fmt, __VA_ARGS__))

#endif /* UVFIO_LINUX_FAULT_INJECT_H */
