/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * struct file and file_operations: what a driver's migration data stream
 * and the device fd are made of.
 *
 * A struct file is reference counted (get_file()/fput()); the last fput()
 * calls f_op->release. anon_inode_getfile() makes one with a single
 * reference, as in the kernel; the core installs it behind a real fd when it
 * hands it to userspace.
 */
#ifndef UVFIO_LINUX_FS_H
#define UVFIO_LINUX_FS_H

#include <atomic>
#include <cerrno>
#include <fcntl.h>

#include <uvfio/linux/mm.h>
#include <uvfio/linux/module.h>
#include <uvfio/linux/mutex.h>
#include <uvfio/linux/types.h>

struct inode;
struct file;

#define FMODE_READ 0x1u
#define FMODE_WRITE 0x2u
#define FMODE_LSEEK 0x4u
#define FMODE_PREAD 0x8u
#define FMODE_PWRITE 0x10u
/* No position: read/write get a NULL pos, as for the kernel's streams. */
#define FMODE_STREAM 0x200000u

/*
 * The file operations, with the kernel's member names, types and order
 * (Linux 6.12's struct file_operations, members uvfio has none of left
 * out), so that a kernel driver's designated initializer compiles as it
 * is. Each returns what its kernel namesake returns: a count or 0 or
 * -errno.
 *
 * @owner: THIS_MODULE (a null pointer here: no modules).
 * @llseek: not called by uvfio: data files are streams (stream_open()) and
 *          the device fd is positioned by pread/pwrite. no_llseek and
 *          noop_llseek are accepted (Linux 6.12 removed no_llseek: leave
 *          .llseek out there).
 * @read: copy up to count bytes to buf at *pos; 0 is end of stream. pos is
 *        NULL on a stream (stream_open()), as in the kernel.
 * @write: take up to count bytes from buf at *pos (NULL on a stream).
 * @unlocked_ioctl: an ioctl on the file (e.g. VFIO_MIG_GET_PRECOPY_INFO).
 * @compat_ioctl: not called (no 32-bit callers); compat_ptr_ioctl is
 *                accepted.
 * @mmap: map part of the file (device fds).
 * @open: not called: anon_inode_getfile() files are never opened by path.
 * @release: the last reference is gone; free what the file owns.
 */
struct file_operations {
	struct module *owner;
	loff_t (*llseek)(struct file *filp, loff_t offset, int whence);
	ssize_t (*read)(struct file *filp, char __user *buf, size_t count,
			loff_t *pos);
	ssize_t (*write)(struct file *filp, const char __user *buf,
			 size_t count, loff_t *pos);
	long (*unlocked_ioctl)(struct file *filp, unsigned int cmd,
			       unsigned long arg);
	long (*compat_ioctl)(struct file *filp, unsigned int cmd,
			     unsigned long arg);
	int (*mmap)(struct file *filp, struct vm_area_struct *vma);
	int (*open)(struct inode *inode, struct file *filp);
	int (*release)(struct inode *inode, struct file *filp);
};

struct file {
	const struct file_operations *f_op = nullptr;
	/* No inodes in uvfio: NULL, for stream_open(filp->f_inode, filp). */
	struct inode *f_inode = nullptr;
	void *private_data = nullptr;
	unsigned int f_flags = 0;
	fmode_t f_mode = 0;
	loff_t f_pos = 0;
	std::atomic<long> f_count{1};
	/* Serializes read/write position updates, like f_pos_lock. */
	struct mutex f_pos_lock;
	/* uvfio: the real fd userspace holds for this file, -1 if none. */
	int uvfio_fd = -1;
};

/*
 * A new file with one reference. flags are O_RDONLY, O_WRONLY or O_RDWR
 * (plus O_CLOEXEC, ignored). Returns ERR_PTR(-ENOMEM) on failure.
 */
struct file *anon_inode_getfile(const char *name,
				const struct file_operations *fops, void *priv,
				int flags);

static inline struct file *get_file(struct file *f)
{
	f->f_count.fetch_add(1, std::memory_order_relaxed);
	return f;
}

/* Drop a reference; the last one calls f_op->release and frees the file. */
void fput(struct file *f);

/*
 * A stream has no position: pread/pwrite fail with ESPIPE and read/write
 * are called with a NULL pos.
 */
static inline int stream_open(struct inode *, struct file *filp)
{
	filp->f_mode &= ~(FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE);
	filp->f_mode |= FMODE_STREAM;
	return 0;
}

/* The kernel's nonseekable_open(): no lseek, pread or pwrite. */
static inline int nonseekable_open(struct inode *, struct file *filp)
{
	filp->f_mode &= ~(FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE);
	return 0;
}

/* .llseek values kernel drivers use (never called by uvfio). */
static inline loff_t no_llseek(struct file *, loff_t, int)
{
	return -ESPIPE;
}

static inline loff_t noop_llseek(struct file *filp, loff_t, int)
{
	return filp->f_pos;
}

/* .compat_ioctl = compat_ptr_ioctl: the 64-bit ioctl, as on a 64-bit host. */
static inline long compat_ptr_ioctl(struct file *filp, unsigned int cmd,
				    unsigned long arg)
{
	if (!filp->f_op->unlocked_ioctl)
		return -ENOTTY;
	return filp->f_op->unlocked_ioctl(filp, cmd, arg);
}

/* The position argument read/write get for f: NULL for a stream. */
static inline loff_t *file_ppos(struct file *f)
{
	return (f->f_mode & FMODE_STREAM) ? nullptr : &f->f_pos;
}

#endif /* UVFIO_LINUX_FS_H */
