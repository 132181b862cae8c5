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
#include <fcntl.h>

#include <uvfio/linux/mm.h>
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
 * The file operations uvfio routes. Each returns what its kernel namesake
 * returns: a count or 0 or -errno.
 *
 * @read: copy up to count bytes to buf at *pos; 0 is end of stream. pos is
 *        NULL on a stream (stream_open()), as in the kernel.
 * @write: take up to count bytes from buf at *pos (NULL on a stream).
 * @unlocked_ioctl: an ioctl on the file (e.g. VFIO_MIG_GET_PRECOPY_INFO).
 * @mmap: map part of the file (device fds).
 * @release: the last reference is gone; free what the file owns.
 */
struct file_operations {
	ssize_t (*read)(struct file *filp, char __user *buf, size_t count,
			loff_t *pos);
	ssize_t (*write)(struct file *filp, const char __user *buf,
			 size_t count, loff_t *pos);
	long (*unlocked_ioctl)(struct file *filp, unsigned int cmd,
			       unsigned long arg);
	int (*mmap)(struct file *filp, struct vm_area_struct *vma);
	int (*release)(struct inode *inode, struct file *filp);
};

struct file {
	const struct file_operations *f_op = nullptr;
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

/* The position argument read/write get for f: NULL for a stream. */
static inline loff_t *file_ppos(struct file *f)
{
	return (f->f_mode & FMODE_STREAM) ? nullptr : &f->f_pos;
}

#endif /* UVFIO_LINUX_FS_H */
