// SPDX-License-Identifier: GPL-2.0-only
/*
 * The file model and the fd table.
 *
 * Every file userspace holds is behind a real fd of this process, so the fd
 * number is unique, survives as long as the user keeps it, and poll(2) and
 * io_uring work on data fds. The table maps that number to the struct file and
 * owns one reference to it.
 */
#include <cerrno>
#include <shared_mutex>
#include <unistd.h>
#include <unordered_map>

#include <uvfio/linux/fs.h>
#include <uvfio/linux/kernel.h>

#include "vfio.h"

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
		auto it = t.files.find(real_fd);
		if (it != t.files.end()) {
			stale = it->second;
			stale->uvfio_fd = -1;
			it->second = filp;
		} else {
			try {
				t.files.emplace(real_fd, filp);
			} catch (...) {
				l.unlock();
				close(real_fd);
				fput(filp);
				return -ENOMEM;
			}
		}
		filp->uvfio_fd = real_fd;
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
		t.files.erase(it);
		f->uvfio_fd = -1;
		/* Close under the lock so the number cannot be reused first. */
		close(fd);
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
