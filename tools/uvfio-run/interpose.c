// SPDX-License-Identifier: GPL-2.0-only
/*
 * libuvfio-preload, the libc side: the entry points a VFIO client calls,
 * each answering for uvfio's fds and paths and passing everything else to
 * the next definition (libc) untouched.
 *
 * - fds: a uvfio fd (container, group, device, migration data fd) is one the
 *   core's fd table holds; uvfio_is_fd() tells without a lock or a system
 *   call. Until the process is activated no fd is ours, and a call costs one
 *   load of a flag.
 * - paths: /dev/vfio/NAME opens through uvfio_open(); the sysfs of the
 *   simulated devices and /dev/vfio itself are rewritten into the private
 *   tree (devices.c). Relative paths are never ours.
 *
 * Both the plain and the 64-bit names are defined (QEMU is built with
 * _FILE_OFFSET_BITS=64 and calls open64, pread64, mmap64, stat64), and the
 * fortified ones (__pread64_chk, __read_chk, __realpath_chk, ...), which a
 * _FORTIFY_SOURCE build calls instead of the plain name.
 *
 * Over 600 lines on purpose: every name a call can arrive by stands next
 * to its siblings here, so one look shows whether a variant is missing.
 */
#define _GNU_SOURCE
/* This file defines libc's symbols under their own names, unredirected. */
#undef _FILE_OFFSET_BITS
#undef _FORTIFY_SOURCE

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "preload.h"

/* glibc's fortified and legacy entry points; no header declares them all. */
extern void __chk_fail(void) __attribute__((noreturn));
ssize_t __read_chk(int fd, void *buf, size_t nbytes, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t nbytes, off_t offset,
		    size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t nbytes, off64_t offset,
		      size_t buflen);
ssize_t __readlink_chk(const char *path, char *buf, size_t len,
		       size_t buflen);
ssize_t __readlinkat_chk(int dirfd, const char *path, char *buf, size_t len,
			 size_t buflen);
char *__realpath_chk(const char *path, char *resolved, size_t resolvedlen);
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
int __xstat(int ver, const char *path, struct stat *st);
int __xstat64(int ver, const char *path, struct stat64 *st);
int __lxstat(int ver, const char *path, struct stat *st);
int __lxstat64(int ver, const char *path, struct stat64 *st);
int __fxstatat(int ver, int dirfd, const char *path, struct stat *st,
	       int flags);
int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st,
		 int flags);

/* -------- the next definitions -------- */

static void *next_sym(void **slot, const char *name, const char *version)
{
	void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

	if (!p) {
		p = version ? dlvsym(RTLD_NEXT, name, version)
			    : dlsym(RTLD_NEXT, name);
		if (!p) {
			/* A libc without it: the program could not call it. */
			fprintf(stderr, "uvfio-run: no libc %s\n", name);
			abort();
		}
		__atomic_store_n(slot, p, __ATOMIC_RELEASE);
	}
	return p;
}

#define NEXT(name)                                                         \
	({                                                                 \
		static void *slot_;                                        \
		(__typeof__(&name))next_sym(&slot_, #name, NULL);          \
	})

/* glibc 2.33 made the __xstat family compat-only: dlsym cannot see them. */
#define NEXT_COMPAT(name)                                                  \
	({                                                                 \
		static void *slot_;                                        \
		(__typeof__(&name))next_sym(&slot_, #name, "GLIBC_2.2.5"); \
	})

/* -------- whose is it -------- */

/* A call on fd is ours: the process is live, not in the core, fd is uvfio's. */
static inline int fd_ours(int fd)
{
	return !uvfio_preload_in_core && uvfio_preload_live() &&
	       uvfio_preload_ops.is_fd(fd);
}

static inline enum uvfio_preload_path path_kind(const char *path, char *buf)
{
	if (uvfio_preload_in_core || !path || path[0] != '/')
		return UVFIO_PATH_PASS;
	return uvfio_preload_classify(path, buf, PATH_MAX);
}

/* Run expr inside the core: its own libc calls pass through. */
#define IN_CORE(type, expr)                                                \
	({                                                                 \
		type ret_;                                                 \
		uvfio_preload_in_core++;                                   \
		ret_ = (expr);                                             \
		uvfio_preload_in_core--;                                   \
		ret_;                                                      \
	})

/*
 * A call on fd: uvfio's (op, a member of uvfio_preload_ops, with its
 * arguments), inside the core, when fd is ours; libc's (next) otherwise.
 */
#define FD_CALL(type, fd, op, next)                                        \
	(fd_ours(fd) ? IN_CORE(type, uvfio_preload_ops.op) : (next))

/* -------- open -------- */

static int open_dev(const char *path)
{
	return IN_CORE(int, uvfio_preload_ops.open(path));
}

/* mode is read only when flags ask for one, as open(2)'s own wrapper does. */
#define OPEN_MODE(flags)                                                   \
	({                                                                 \
		mode_t mode_ = 0;                                          \
		if ((flags) & (O_CREAT | __O_TMPFILE)) {                   \
			va_list ap_;                                       \
			va_start(ap_, flags);                              \
			mode_ = va_arg(ap_, mode_t);                       \
			va_end(ap_);                                       \
		}                                                          \
		mode_;                                                     \
	})

/*
 * Every open: a /dev/vfio node opens through uvfio; call (which names the
 * path p_) opens a tree path or the caller's own.
 */
#define OPEN_BODY(path, call)                                              \
	do {                                                               \
		char buf_[PATH_MAX];                                       \
		const char *p_ = (path);                                   \
		switch (path_kind(path, buf_)) {                           \
		case UVFIO_PATH_DEV:                                       \
			return open_dev(path);                             \
		case UVFIO_PATH_TREE:                                      \
			p_ = buf_;                                         \
			break;                                             \
		default:                                                   \
			break;                                             \
		}                                                          \
		return call;                                               \
	} while (0)

int open(const char *path, int flags, ...)
{
	mode_t mode = OPEN_MODE(flags);

	OPEN_BODY(path, NEXT(open)(p_, flags, mode));
}

int open64(const char *path, int flags, ...)
{
	mode_t mode = OPEN_MODE(flags);

	OPEN_BODY(path, NEXT(open64)(p_, flags, mode));
}

int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = OPEN_MODE(flags);

	OPEN_BODY(path, NEXT(openat)(dirfd, p_, flags, mode));
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = OPEN_MODE(flags);

	OPEN_BODY(path, NEXT(openat64)(dirfd, p_, flags, mode));
}

/* The fortified opens: no mode (O_CREAT without one is what they catch). */
int __open_2(const char *path, int flags)
{
	OPEN_BODY(path, NEXT(__open_2)(p_, flags));
}

int __open64_2(const char *path, int flags)
{
	OPEN_BODY(path, NEXT(__open64_2)(p_, flags));
}

int __openat_2(int dirfd, const char *path, int flags)
{
	OPEN_BODY(path, NEXT(__openat_2)(dirfd, p_, flags));
}

int __openat64_2(int dirfd, const char *path, int flags)
{
	OPEN_BODY(path, NEXT(__openat64_2)(dirfd, p_, flags));
}

/*
 * stdio: attribute files of the tree open as themselves; a /dev/vfio node is
 * not a stream (stdio's reads would not reach uvfio), so it is the host's.
 */
FILE *fopen(const char *path, const char *mode)
{
	char buf[PATH_MAX];

	if (path_kind(path, buf) == UVFIO_PATH_TREE)
		return NEXT(fopen)(buf, mode);
	return NEXT(fopen)(path, mode);
}

FILE *fopen64(const char *path, const char *mode)
{
	char buf[PATH_MAX];

	if (path_kind(path, buf) == UVFIO_PATH_TREE)
		return NEXT(fopen64)(buf, mode);
	return NEXT(fopen64)(path, mode);
}

DIR *opendir(const char *path)
{
	char buf[PATH_MAX];

	if (path_kind(path, buf) != UVFIO_PATH_PASS)
		return NEXT(opendir)(buf);
	return NEXT(opendir)(path);
}

/* -------- fds -------- */

int close(int fd)
{
	return FD_CALL(int, fd, close(fd), NEXT(close)(fd));
}

int dup(int oldfd)
{
	return FD_CALL(int, oldfd, dup(oldfd), NEXT(dup)(oldfd));
}

/*
 * dup2/dup3 onto a uvfio fd from a plain one: the uvfio file is released
 * first (the kernel's dup2 does it atomically; here another thread could
 * take the number in between, which no VFIO client relies on).
 */
static int dup_onto(int oldfd, int newfd, int flags, int is_dup3)
{
	if (fd_ours(oldfd)) {
		if (oldfd == newfd)
			return is_dup3 ? (errno = EINVAL, -1) : newfd;
		return IN_CORE(int, uvfio_preload_ops.dup3(oldfd, newfd, flags));
	}
	if (oldfd != newfd && fd_ours(newfd) &&
	    fcntl(oldfd, F_GETFD) >= 0)
		IN_CORE(int, uvfio_preload_ops.close(newfd));
	if (is_dup3)
		return NEXT(dup3)(oldfd, newfd, flags);
	return NEXT(dup2)(oldfd, newfd);
}

int dup2(int oldfd, int newfd)
{
	return dup_onto(oldfd, newfd, 0, 0);
}

int dup3(int oldfd, int newfd, int flags)
{
	return dup_onto(oldfd, newfd, flags, 1);
}

/* Every fcntl argument is passed in one register: an int, a long or a pointer. */
#define FCNTL_BODY(next, fd, cmd)                                          \
	do {                                                               \
		va_list ap_;                                               \
		long arg_;                                                 \
		va_start(ap_, cmd);                                        \
		arg_ = va_arg(ap_, long);                                  \
		va_end(ap_);                                               \
		if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) &&          \
		    fd_ours(fd))                                           \
			return IN_CORE(int, uvfio_preload_ops.fcntl(       \
						    fd, cmd, arg_));       \
		return next(fd, cmd, arg_);                                \
	} while (0)

int fcntl(int fd, int cmd, ...)
{
	FCNTL_BODY(NEXT(fcntl), fd, cmd);
}

int fcntl64(int fd, int cmd, ...)
{
	FCNTL_BODY(NEXT(fcntl64), fd, cmd);
}

int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	return FD_CALL(int, fd, ioctl(fd, request, arg),
		       NEXT(ioctl)(fd, request, arg));
}

ssize_t read(int fd, void *buf, size_t count)
{
	return FD_CALL(ssize_t, fd, read(fd, buf, count),
		       NEXT(read)(fd, buf, count));
}

ssize_t write(int fd, const void *buf, size_t count)
{
	return FD_CALL(ssize_t, fd, write(fd, buf, count),
		       NEXT(write)(fd, buf, count));
}

ssize_t pread(int fd, void *buf, size_t count, off_t offset)
{
	return FD_CALL(ssize_t, fd, pread(fd, buf, count, offset),
		       NEXT(pread)(fd, buf, count, offset));
}

ssize_t pread64(int fd, void *buf, size_t count, off64_t offset)
{
	return FD_CALL(ssize_t, fd, pread(fd, buf, count, offset),
		       NEXT(pread64)(fd, buf, count, offset));
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset)
{
	return FD_CALL(ssize_t, fd, pwrite(fd, buf, count, offset),
		       NEXT(pwrite)(fd, buf, count, offset));
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset)
{
	return FD_CALL(ssize_t, fd, pwrite(fd, buf, count, offset),
		       NEXT(pwrite64)(fd, buf, count, offset));
}

/* The fortified reads check the buffer's size first, as glibc's do. */
ssize_t __read_chk(int fd, void *buf, size_t nbytes, size_t buflen)
{
	if (nbytes > buflen && fd_ours(fd))
		__chk_fail();
	return FD_CALL(ssize_t, fd, read(fd, buf, nbytes),
		       NEXT(__read_chk)(fd, buf, nbytes, buflen));
}

ssize_t __pread_chk(int fd, void *buf, size_t nbytes, off_t offset,
		    size_t buflen)
{
	if (nbytes > buflen && fd_ours(fd))
		__chk_fail();
	return FD_CALL(ssize_t, fd, pread(fd, buf, nbytes, offset),
		       NEXT(__pread_chk)(fd, buf, nbytes, offset, buflen));
}

ssize_t __pread64_chk(int fd, void *buf, size_t nbytes, off64_t offset,
		      size_t buflen)
{
	if (nbytes > buflen && fd_ours(fd))
		__chk_fail();
	return FD_CALL(ssize_t, fd, pread(fd, buf, nbytes, offset),
		       NEXT(__pread64_chk)(fd, buf, nbytes, offset, buflen));
}

/* An anonymous mapping's fd is meaningless, whatever number it is. */
void *mmap(void *addr, size_t length, int prot, int flags, int fd,
	   off_t offset)
{
	return FD_CALL(void *, (flags & MAP_ANONYMOUS) ? -1 : fd,
		       mmap(addr, length, prot, flags, fd, offset),
		       NEXT(mmap)(addr, length, prot, flags, fd, offset));
}

void *mmap64(void *addr, size_t length, int prot, int flags, int fd,
	     off64_t offset)
{
	return FD_CALL(void *, (flags & MAP_ANONYMOUS) ? -1 : fd,
		       mmap(addr, length, prot, flags, fd, offset),
		       NEXT(mmap64)(addr, length, prot, flags, fd, offset));
}

/* -------- looking at paths -------- */

/* A /dev/vfio stand-in is a regular file in the tree; it is a chardev. */
#define FIX_DEV(kind, path, ret, st)                                       \
	do {                                                               \
		if ((kind) == UVFIO_PATH_DEV && !(ret)) {                  \
			(st)->st_mode = S_IFCHR | 0666;                    \
			(st)->st_rdev = uvfio_preload_dev_rdev(path);      \
		}                                                          \
	} while (0)

#define STAT_BODY(next, path, st, ...)                                     \
	do {                                                               \
		char buf_[PATH_MAX];                                       \
		enum uvfio_preload_path k_ = path_kind(path, buf_);        \
		int ret_;                                                  \
		if (k_ == UVFIO_PATH_PASS)                                 \
			return next(__VA_ARGS__ path, st);                 \
		ret_ = next(__VA_ARGS__ buf_, st);                         \
		FIX_DEV(k_, path, ret_, st);                               \
		return ret_;                                               \
	} while (0)

int stat(const char *path, struct stat *st)
{
	STAT_BODY(NEXT(stat), path, st);
}

int stat64(const char *path, struct stat64 *st)
{
	STAT_BODY(NEXT(stat64), path, st);
}

int lstat(const char *path, struct stat *st)
{
	STAT_BODY(NEXT(lstat), path, st);
}

int lstat64(const char *path, struct stat64 *st)
{
	STAT_BODY(NEXT(lstat64), path, st);
}

int __xstat(int ver, const char *path, struct stat *st)
{
	STAT_BODY(NEXT_COMPAT(__xstat), path, st, ver, );
}

int __xstat64(int ver, const char *path, struct stat64 *st)
{
	STAT_BODY(NEXT_COMPAT(__xstat64), path, st, ver, );
}

int __lxstat(int ver, const char *path, struct stat *st)
{
	STAT_BODY(NEXT_COMPAT(__lxstat), path, st, ver, );
}

int __lxstat64(int ver, const char *path, struct stat64 *st)
{
	STAT_BODY(NEXT_COMPAT(__lxstat64), path, st, ver, );
}

/* The leading arguments (a version, a dirfd) go before the path. */
#define STATAT_BODY(next, path, st, flags, ...)                            \
	do {                                                               \
		char buf_[PATH_MAX];                                       \
		enum uvfio_preload_path k_ = path_kind(path, buf_);        \
		int ret_;                                                  \
		if (k_ == UVFIO_PATH_PASS)                                 \
			return next(__VA_ARGS__, path, st, flags);         \
		ret_ = next(__VA_ARGS__, buf_, st, flags);                 \
		FIX_DEV(k_, path, ret_, st);                               \
		return ret_;                                               \
	} while (0)

int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	STATAT_BODY(NEXT(fstatat), path, st, flags, dirfd);
}

int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
	STATAT_BODY(NEXT(fstatat64), path, st, flags, dirfd);
}

int __fxstatat(int ver, int dirfd, const char *path, struct stat *st,
	       int flags)
{
	STATAT_BODY(NEXT_COMPAT(__fxstatat), path, st, flags, ver, dirfd);
}

int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st,
		 int flags)
{
	STATAT_BODY(NEXT_COMPAT(__fxstatat64), path, st, flags, ver, dirfd);
}

int statx(int dirfd, const char *path, int flags, unsigned int mask,
	  struct statx *stx)
{
	char buf[PATH_MAX];
	enum uvfio_preload_path k = path_kind(path, buf);
	int ret;

	if (k == UVFIO_PATH_PASS)
		return NEXT(statx)(dirfd, path, flags, mask, stx);
	ret = NEXT(statx)(dirfd, buf, flags, mask, stx);
	if (k == UVFIO_PATH_DEV && !ret) {
		dev_t rdev = uvfio_preload_dev_rdev(path);

		stx->stx_mode = S_IFCHR | 0666;
		stx->stx_rdev_major = major(rdev);
		stx->stx_rdev_minor = minor(rdev);
	}
	return ret;
}

int access(const char *path, int mode)
{
	char buf[PATH_MAX];

	if (path_kind(path, buf) != UVFIO_PATH_PASS)
		return NEXT(access)(buf, mode);
	return NEXT(access)(path, mode);
}

int euidaccess(const char *path, int mode)
{
	char buf[PATH_MAX];

	if (path_kind(path, buf) != UVFIO_PATH_PASS)
		return NEXT(euidaccess)(buf, mode);
	return NEXT(euidaccess)(path, mode);
}

int eaccess(const char *path, int mode)
{
	return euidaccess(path, mode);
}

int faccessat(int dirfd, const char *path, int mode, int flags)
{
	char buf[PATH_MAX];

	if (path_kind(path, buf) != UVFIO_PATH_PASS)
		return NEXT(faccessat)(dirfd, buf, mode, flags);
	return NEXT(faccessat)(dirfd, path, mode, flags);
}

/* The tree's links are relative, so what they say is what sysfs says. */
ssize_t readlink(const char *path, char *out, size_t len)
{
	char buf[PATH_MAX];

	if (path_kind(path, buf) != UVFIO_PATH_PASS)
		return NEXT(readlink)(buf, out, len);
	return NEXT(readlink)(path, out, len);
}

ssize_t __readlink_chk(const char *path, char *out, size_t len, size_t buflen)
{
	if (len > buflen)
		__chk_fail();
	return readlink(path, out, len);
}

ssize_t readlinkat(int dirfd, const char *path, char *out, size_t len)
{
	char buf[PATH_MAX];

	if (path_kind(path, buf) != UVFIO_PATH_PASS)
		return NEXT(readlinkat)(dirfd, buf, out, len);
	return NEXT(readlinkat)(dirfd, path, out, len);
}

ssize_t __readlinkat_chk(int dirfd, const char *path, char *out, size_t len,
			 size_t buflen)
{
	if (len > buflen)
		__chk_fail();
	return readlinkat(dirfd, path, out, len);
}

char *realpath(const char *path, char *resolved)
{
	char buf[PATH_MAX];

	if (path_kind(path, buf) != UVFIO_PATH_PASS)
		return uvfio_preload_untree(NEXT(realpath)(buf, resolved));
	return NEXT(realpath)(path, resolved);
}

char *__realpath_chk(const char *path, char *resolved, size_t resolvedlen)
{
	if (resolved && resolvedlen < PATH_MAX)
		__chk_fail();
	return realpath(path, resolved);
}

char *canonicalize_file_name(const char *path)
{
	return realpath(path, NULL);
}

/* ls -l asks for ACLs and security labels of what it lists. */
#define XATTR_BODY(next, path, ...)                                        \
	do {                                                               \
		char buf_[PATH_MAX];                                       \
		if (path_kind(path, buf_) != UVFIO_PATH_PASS)              \
			return next(buf_, __VA_ARGS__);                    \
		return next(path, __VA_ARGS__);                            \
	} while (0)

ssize_t getxattr(const char *path, const char *name, void *value, size_t size)
{
	XATTR_BODY(NEXT(getxattr), path, name, value, size);
}

ssize_t lgetxattr(const char *path, const char *name, void *value,
		  size_t size)
{
	XATTR_BODY(NEXT(lgetxattr), path, name, value, size);
}

ssize_t listxattr(const char *path, char *list, size_t size)
{
	XATTR_BODY(NEXT(listxattr), path, list, size);
}

ssize_t llistxattr(const char *path, char *list, size_t size)
{
	XATTR_BODY(NEXT(llistxattr), path, list, size);
}
