/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * libuvfio-preload: the parts of the preloaded library that the libc entry
 * points (interpose.c) share with the device and sysfs side (devices.c).
 *
 * The library does not link libuvfio: a process that never touches
 * /dev/vfio or a simulated device's sysfs path loads nothing more than this
 * small C library. The first touch "activates" the process: libuvfio is
 * opened, the devices named by uvfio-run are created, and their sysfs tree
 * is laid out in a private directory.
 */
#ifndef UVFIO_RUN_PRELOAD_H
#define UVFIO_RUN_PRELOAD_H

#include <stddef.h>
#include <sys/types.h>

/* What the launcher tells the preloaded library (environment variables). */
#define UVFIO_RUN_ENV_DEVICES "UVFIO_RUN_DEVICES" /* "BDF\tSPEC\n"... */
#define UVFIO_RUN_ENV_LIB "UVFIO_RUN_LIB"	  /* libuvfio.so to open */

/*
 * Non-zero while this thread is inside libuvfio (or activating): every
 * libc call it makes then goes to libc untouched, so the core's own opens,
 * mmaps and closes never come back to it.
 */
extern __thread int uvfio_preload_in_core
	__attribute__((tls_model("initial-exec")));

/* The process is activated and is not a forked copy of the one that was. */
int uvfio_preload_live(void);

/* The libuvfio calls the interposer makes, once the process is live. */
struct uvfio_preload_ops {
	int (*open)(const char *name);
	int (*close)(int fd);
	int (*ioctl)(int fd, unsigned long request, void *arg);
	ssize_t (*read)(int fd, void *buf, size_t count);
	ssize_t (*write)(int fd, const void *buf, size_t count);
	ssize_t (*pread)(int fd, void *buf, size_t count, off_t offset);
	ssize_t (*pwrite)(int fd, const void *buf, size_t count, off_t offset);
	void *(*mmap)(void *addr, size_t length, int prot, int flags, int fd,
		      off_t offset);
	int (*dup)(int oldfd);
	int (*dup3)(int oldfd, int newfd, int flags);
	int (*fcntl)(int fd, int cmd, long arg);
	int (*is_fd)(int fd);
};
extern struct uvfio_preload_ops uvfio_preload_ops;

/* How the interposer treats a path. */
enum uvfio_preload_path {
	UVFIO_PATH_PASS,	/* not ours: to libc untouched */
	UVFIO_PATH_DEV,		/* /dev/vfio/NAME: uvfio's open */
	UVFIO_PATH_TREE,	/* ours, in the private tree: use buf */
};

/*
 * Classify an absolute path; for UVFIO_PATH_TREE (and UVFIO_PATH_DEV, for
 * the calls that look at the node rather than open it) write the path of
 * its stand-in in the private tree into buf. A path of ours activates the
 * process first. Never fails: a path that does not fit is passed.
 */
enum uvfio_preload_path uvfio_preload_classify(const char *path, char *buf,
					       size_t len);

/*
 * realpath(3) of a path in the tree names the tree; strip its prefix in
 * place so the caller sees the sysfs path. Returns path.
 */
char *uvfio_preload_untree(char *path);

/* The character device a /dev/vfio node stands for, for stat(2). */
dev_t uvfio_preload_dev_rdev(const char *path);

#endif /* UVFIO_RUN_PRELOAD_H */
