/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Core-private: what the emulated kernel runtime (core/kernel/) offers the
 * rest of the core: the fd table behind every file userspace holds, the
 * core's own buffers passed to drivers as user memory, and the log sink.
 * Nothing here is for drivers or userspace.
 */
#ifndef UVFIO_CORE_RUNTIME_H
#define UVFIO_CORE_RUNTIME_H

#include <cstddef>
#include <string>

#include <uvfio/linux/fs.h>

/* -------- file.cc: the fd table -------- */

/*
 * Give userspace a real fd for filp: real_fd (owned from now on) is recorded
 * as standing for filp, and the table takes over the caller's reference.
 * Returns real_fd, or -errno (real_fd is closed, the reference dropped).
 */
int uvfio_fd_install(struct file *filp, int real_fd);

/* The file behind fd with a new reference (fput() it), or NULL. */
struct file *uvfio_fget(int fd);

/*
 * Forget fd: close the real fd and drop the table's reference. -EBADF when fd
 * is not a uvfio fd.
 */
int uvfio_fd_close(int fd);

/*
 * Whether fd is in the table, without taking its lock (safe from inside any
 * core call, and cheap enough for an interposer's every read(2)).
 */
bool uvfio_fd_owned(int fd);

/*
 * dup(2) for a uvfio fd: a new real fd for oldfd's file, in the table with
 * its own reference. newfd >= 0: dup3() onto it (a uvfio file there is
 * released, EINVAL when newfd == oldfd); otherwise the lowest free number
 * >= minfd (fcntl F_DUPFD). flags: O_CLOEXEC or 0. The fd, or -errno.
 */
int uvfio_fd_dup(int oldfd, int newfd, int minfd, int flags);

/* Number of fds in the table (tests check for leaks). */
size_t uvfio_fd_count(void);

/* -------- uaccess.cc -------- */

/*
 * Where copies to and from a kernel buffer may really go: copy_out gets
 * copy_to_user()'s bytes with their offset in the buffer, copy_in fills
 * copy_from_user()'s destination; each returns true if it did the copy
 * (false: memcpy with the buffer, as usual).
 */
class uaccess_sink
{
public:
	/* stable: from uvfio_copy_to_user_stable(), see uaccess.h. */
	virtual bool copy_out(size_t, const void *, size_t, bool) { return false; }
	virtual bool copy_in(size_t, void *, size_t) { return false; }

protected:
	~uaccess_sink() = default;
};

/*
 * While alive, copy_{from,to}_user on this thread treat [buf, buf + len) as
 * valid user memory and copy it with memcpy: the core passes its own buffers
 * to drivers (the data-fd pump, PRECOPY_INFO) and needs no page check there.
 * With a sink, copies with the buffer ask the sink first.
 */
class uaccess_kernel_buffer
{
public:
	uaccess_kernel_buffer(const void *buf, size_t len,
			      uaccess_sink *sink = nullptr);
	~uaccess_kernel_buffer();
	uaccess_kernel_buffer(const uaccess_kernel_buffer &) = delete;
	uaccess_kernel_buffer &operator=(const uaccess_kernel_buffer &) = delete;

private:
	const char *lo_;
	const char *hi_;
	uaccess_sink *sink_;
};

/* -------- printk.cc: the log sink -------- */

bool uvfio_log_enabled(int level);
/* How many error lines the calling thread has logged so far. */
unsigned long uvfio_log_err_lines(void);
void uvfio_log_line(int level, const std::string &line);

#endif /* UVFIO_CORE_RUNTIME_H */
