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
 * A point is an object, declared once; at the point, code asks whether to
 * fail and, if so, fails the way a real failure there would, with the
 * errno it is given:
 *
 *	DEFINE_FAULT_POINT(mydrv_load, "mydrv.load", EIO, "loading fails")
 *	...
 *	int err = should_fail(&mydrv_load);
 *	if (err)
 *		return err;		// -errno
 *
 * The name is written once, so a misspelt point does not compile. When
 * nothing is armed anywhere, should_fail() is one relaxed atomic load.
 * Points register at load time, so they can be listed and so arming a
 * misspelt name fails instead of never firing. should_fail() may be called
 * from any thread and with any driver lock held: it takes only a leaf lock
 * of its own and calls nothing back.
 *
 * should_fail(name) and should_failf(fmt, ...) check a point by its name:
 * the compatible spelling for existing plugins, and the way to reach a
 * family of points whose names are built at run time.
 *
 * Porting to the kernel: DEFINE_FAULT_POINT becomes DECLARE_FAULT_ATTR
 * exposed with fault_create_debugfs_attr, and should_fail(&point) becomes
 * should_fail(&attr, size) with the errno you chose.
 */
#ifndef UVFIO_LINUX_FAULT_INJECT_H
#define UVFIO_LINUX_FAULT_INJECT_H

#include <atomic>

/* Armed points in the process; 0 makes every check a single load. */
extern std::atomic<unsigned int> uvfio_faults_armed;

/*
 * A declared point. uvfio has no debugfs: the fields are what a listing
 * (uvfio_fault_list(), vfio-mig-ctl --fault list) shows, copied into the
 * registry at load time; the object itself only names the point for
 * should_fail().
 */
struct fault_point {
	const char *name;	/* dotted, [A-Za-z0-9_.>-] */
	int default_err;	/* positive errno, e.g. EIO */
	const char *doc;	/* one line for listings */
};

/* The slow paths behind should_fail()/should_failf(). */
int uvfio_should_fail_point_slow(const struct fault_point *point);
int uvfio_should_fail_slow(const char *name);
int uvfio_should_failf_slow(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/*
 * Register a point by name: its errno when armed without one (a positive
 * errno value, e.g. EIO), and one line for listings. Names are
 * [A-Za-z0-9_.>-], dot-separated. Registering a name twice keeps the first
 * registration. 0, or -EINVAL for a bad name or errno. DEFINE_FAULT_POINT
 * calls it; call it directly only for names built at run time.
 */
int fault_point_register(const char *name, int default_err, const char *doc);

/*
 * Define the point id, a struct fault_point local to the file, and
 * register it at load time from a constructor, as module_pci_driver
 * registers a driver. Check it with should_fail(&id).
 */
#define DEFINE_FAULT_POINT(id, point_name, point_err, point_doc)          \
	static struct fault_point id = {(point_name), (point_err),          \
					(point_doc)};                      \
	__attribute__((constructor)) static void id##_fault_register(void) \
	{                                                                  \
		fault_point_register(id.name, id.default_err, id.doc);     \
	}

/*
 * The older form, kept for existing drivers and plugins: registers the
 * point by name only (id names just its constructor, so it may be any
 * identifier, even one the file uses for something else). Check it with
 * should_fail(name); new code uses DEFINE_FAULT_POINT.
 */
#define DECLARE_FAULT_POINT(id, name, default_err, doc)                   \
	__attribute__((constructor)) static void id##_fault_register(void) \
	{                                                                  \
		fault_point_register(name, default_err, doc);              \
	}

/*
 * 0 to go on, or -errno to fail with at this hit of the point (or of an
 * armed prefix of its name). Each call is one hit.
 */
static inline int should_fail(const struct fault_point *point)
{
	if (__builtin_expect(
		    !uvfio_faults_armed.load(std::memory_order_relaxed), 1))
		return 0;
	return uvfio_should_fail_point_slow(point);
}

/* should_fail() on the point registered under name (compatibility). */
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
