// SPDX-License-Identifier: GPL-2.0-only
/*
 * The file model and the fd table (the kernel's fs/file.c, fs/file_table.c
 * and fs/anon_inodes.c).
 *
 * Every file userspace holds is behind a real fd of this process, so the fd
 * number is unique, survives as long as the user keeps it, and poll(2) and
 * io_uring work on data fds. The table maps that number to the struct file and
 * owns one reference to it.
 */
#include <atomic>
#include <cerrno>
#include <climits>
#include <fcntl.h>
#include <mutex>
#include <shared_mutex>
#include <sys/syscall.h>
#include <unistd.h>
#include <unordered_map>

#include <uvfio/linux/device.h>
#include <uvfio/linux/fs.h>
#include <uvfio/linux/kernel.h>

#include "runtime.h"

struct file *anon_inode_getfile(const char *, const struct file_operations *fops,
				void *priv, int flags)
{
	struct file *f = new (std::nothrow) file;
	if (!f)
		return static_cast<struct file *>(ERR_PTR(-ENOMEM));
	f->f_op = fops;
	f->private_data = priv;
	f->f_flags = static_cast<unsigned int>(flags);
	switch (flags & O_ACCMODE) {
	case O_RDONLY:
		f->f_mode = FMODE_READ;
		break;
	case O_WRONLY:
		f->f_mode = FMODE_WRITE;
		break;
	default:
		f->f_mode = FMODE_READ | FMODE_WRITE;
		break;
	}
	f->f_mode |= FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE;
	return f;
}

void fput(struct file *f)
{
	if (!f || f->f_count.fetch_sub(1, std::memory_order_acq_rel) != 1)
		return;
	if (f->f_op && f->f_op->release)
		f->f_op->release(nullptr, f);
	delete f;
}

namespace {

/*
 * The table's own calls on the fds it holds go straight to the kernel: an
 * interposer of libc's close/dup3/fcntl (uvfio-run's preload) would route
 * them back here, into a table whose lock this thread holds.
 */
int sys_close(int fd)
{
#if defined(__SANITIZE_THREAD__)
	/*
	 * ThreadSanitizer learns that a number is free again only from the
	 * close it intercepts; a raw one makes the number's next owner look
	 * like a race. Safe here: the number is marked not owned above, so an
	 * interposer passes this close straight to libc.
	 */
	return close(fd);
#else
	return static_cast<int>(syscall(SYS_close, fd));
#endif
}

int sys_dupfd(int oldfd, int newfd, int minfd, int flags)
{
	if (newfd >= 0)
		return static_cast<int>(syscall(SYS_dup3, oldfd, newfd, flags));
	return static_cast<int>(syscall(SYS_fcntl, oldfd,
					(flags & O_CLOEXEC) ? F_DUPFD_CLOEXEC
							    : F_DUPFD,
					minfd));
}

struct fd_table {
	std::shared_mutex lock;
	std::unordered_map<int, struct file *> files;
};

fd_table &table()
{
	/* Never destroyed: fds may be closed from exit-time teardown. */
	static fd_table *t = new fd_table;
	return *t;
}

/*
 * Which fd numbers are in the table, readable without its lock. A preloaded
 * interposer asks this on every read(2) or close(2) of the program,
 * including the ones the core itself makes while it holds the table's lock
 * (uvfio_fd_close closes the real fd under it). Set after a file is in the
 * table, cleared before it leaves, so a set bit always finds its file.
 * Numbers past the bitmap (over a million) fall back to the table.
 */
constexpr int owned_bits = 1 << 20;
std::atomic<unsigned long> owned[owned_bits / (8 * sizeof(unsigned long))];

void owned_mark(int fd, bool set)
{
	if (fd < 0 || fd >= owned_bits)
		return;
	unsigned long bit = 1UL << (fd % (8 * sizeof(unsigned long)));
	auto &w = owned[fd / (8 * sizeof(unsigned long))];
	if (set)
		w.fetch_or(bit, std::memory_order_release);
	else
		w.fetch_and(~bit, std::memory_order_release);
}

/* Put filp in the table under fd; the file that stood there is returned. */
struct file *table_set(fd_table &t, int fd, struct file *filp)
{
	struct file *old = nullptr;
	auto it = t.files.find(fd);
	if (it != t.files.end()) {
		old = it->second;
		old->uvfio_fd = -1;
		it->second = filp;
	} else {
		t.files.emplace(fd, filp);	/* may throw */
	}
	filp->uvfio_fd = fd;
	owned_mark(fd, true);
	return old;
}

} // namespace

int uvfio_fd_install(struct file *filp, int real_fd)
{
	if (real_fd < 0) {
		fput(filp);
		return real_fd;
	}
	struct file *stale = nullptr;
	{
		fd_table &t = table();
		std::unique_lock<std::shared_mutex> l(t.lock);
		/*
		 * The number is in the table only if someone closed it with
		 * close(2) instead of uvfio_close(): the old file lost its fd.
		 */
		try {
			stale = table_set(t, real_fd, filp);
		} catch (...) {
			l.unlock();
			close(real_fd);
			fput(filp);
			return -ENOMEM;
		}
	}
	if (stale) {
		pr_warn("fd %d was closed with close(2), not uvfio_close(); "
			"releasing its file now", real_fd);
		fput(stale);
	}
	return real_fd;
}

struct file *uvfio_fget(int fd)
{
	fd_table &t = table();
	std::shared_lock<std::shared_mutex> l(t.lock);
	auto it = t.files.find(fd);
	if (it == t.files.end())
		return nullptr;
	return get_file(it->second);
}

int uvfio_fd_close(int fd)
{
	struct file *f;
	{
		fd_table &t = table();
		std::unique_lock<std::shared_mutex> l(t.lock);
		auto it = t.files.find(fd);
		if (it == t.files.end())
			return -EBADF;
		f = it->second;
		owned_mark(fd, false);
		t.files.erase(it);
		f->uvfio_fd = -1;
		/* Close under the lock so the number cannot be reused first. */
		sys_close(fd);
	}
	fput(f);
	return 0;
}

size_t uvfio_fd_count(void)
{
	fd_table &t = table();
	std::shared_lock<std::shared_mutex> l(t.lock);
	return t.files.size();
}

bool uvfio_fd_owned(int fd)
{
	if (fd < 0)
		return false;
	if (fd < owned_bits) {
		unsigned long w = owned[fd / (8 * sizeof(unsigned long))].load(
			std::memory_order_acquire);
		return w & (1UL << (fd % (8 * sizeof(unsigned long))));
	}
	fd_table &t = table();
	std::shared_lock<std::shared_mutex> l(t.lock);
	return t.files.count(fd);
}

int uvfio_fd_dup(int oldfd, int newfd, int minfd, int flags)
{
	if (flags & ~O_CLOEXEC)
		return -EINVAL;
	if (newfd >= 0 && newfd == oldfd)
		return -EINVAL;
	struct file *f = uvfio_fget(oldfd);
	if (!f)
		return -EBADF;

	struct file *old = nullptr;
	int fd;
	{
		fd_table &t = table();
		std::unique_lock<std::shared_mutex> l(t.lock);
		/*
		 * Under the lock, so that no other thread's uvfio_fd_close()
		 * frees the number between the dup and the table entry.
		 */
		fd = sys_dupfd(oldfd, newfd, minfd, flags);
		if (fd < 0) {
			int err = errno;
			l.unlock();
			fput(f);
			return -err;
		}
		try {
			/* The table's reference is the one uvfio_fget took. */
			old = table_set(t, fd, f);
		} catch (...) {
			sys_close(fd);
			l.unlock();
			fput(f);
			return -ENOMEM;
		}
	}
	/* dup2 over a uvfio fd closes it, as the kernel's does silently. */
	if (old)
		fput(old);
	return fd;
}
