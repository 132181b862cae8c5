/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The migration-file lifecycle the in-tree sim drivers (simnic, testdev)
 * share, in the shape of the kernel's mlx5 and mtty drivers:
 *
 *  - struct migf_dev, in the driver's device: the FSM state under
 *    state_mutex, the open saving and resuming files, and the deferred
 *    reset (reset_done may run while another thread holds state_mutex;
 *    the holder then does the reset as it unlocks).
 *  - struct migf, the base of the driver's file: the lock, the disabled
 *    flag, and on the saving side the record writer (mig_rec.h) with the
 *    read and PRECOPY_INFO file operations built on it.
 *
 * What differs between drivers is in struct migf_dev_ops: the arcs that
 * stop and start the device (step), the files' content (produce, the
 * resuming write, load), PRECOPY_INFO's counts, and what tracking starts
 * or stops with the files.
 *
 * Locking: state_mutex is taken before a file's lock.
 */
#ifndef UVFIO_DRIVERS_MIGF_H
#define UVFIO_DRIVERS_MIGF_H

#include <mutex>

#include <uvfio/linux/fs.h>
#include <uvfio/linux/mutex.h>
#include <uvfio/linux/vfio.h>

#include "mig_rec.h"

struct migf;
struct migf_dev;

struct migf_dev_ops {
	/* Stream identity: every record of a saving file carries them. */
	u32 magic;
	u16 version;
	/* A saving file's operations: normally migf_save_fops. */
	const struct file_operations *save_fops;
	/*
	 * One arc, from md->mig_state to next, under state_mutex: NULL, the
	 * data file the arc opens, or ERR_PTR(-errno) (the state stays).
	 * The arcs that move data are normally migf_step_data()'s.
	 */
	struct file *(*step)(struct migf_dev *md,
			     enum vfio_device_mig_state next);
	/*
	 * Open a saving file (pre-copy or not) or a resuming one, with
	 * migf_alloc() and migf_open_save()/migf_open_resume().
	 */
	struct file *(*open_save)(struct migf_dev *md, bool precopy);
	struct file *(*open_resume)(struct migf_dev *md);
	/*
	 * RESUMING -> STOP: check that the stream f received is whole and
	 * load it, 0 or -errno (the arc fails, the device stays RESUMING).
	 * Under state_mutex and f->lock.
	 */
	int (*load)(struct migf *f);
	/*
	 * Saving: put the next record in f->w; false when there is none
	 * now. Under f->lock.
	 */
	bool (*produce)(struct migf *f);
	/*
	 * PRECOPY_INFO's counts for f, normally mig_rec_precopy_info() with
	 * a bound on the dirty data still to produce. Under state_mutex and
	 * f->lock.
	 */
	void (*precopy_info)(struct migf *f, struct vfio_precopy_info *info);
	/* A pre-copy file opens: start tracking writes. 0 or -errno. */
	int (*track_start)(struct migf_dev *md);
	/*
	 * The device stopped under a pre-copy file: make dirty what the
	 * tracker could not see (writes through an mmap). May be NULL.
	 */
	void (*track_flush)(struct migf_dev *md);
	/* The files were disabled: stop tracking, drop buffers. */
	void (*disabled)(struct migf_dev *md);
	/*
	 * A reset put the FSM back in RUNNING, files disabled: let the
	 * device run again. May be NULL.
	 */
	void (*reset)(struct migf_dev *md);
};

struct migf_dev {
	const struct migf_dev_ops *ops = nullptr;
	struct vfio_device *vdev = nullptr;
	struct mutex state_mutex;
	enum vfio_device_mig_state mig_state = VFIO_DEVICE_STATE_RUNNING;
	std::mutex reset_lock;
	bool deferred_reset = false;
	/* The driver's own reference to each open file, until disabled. */
	struct migf *saving_migf = nullptr;
	struct migf *resuming_migf = nullptr;
};

/*
 * One migration file. Drivers derive their file from it; the last fput()
 * deletes it through the virtual destructor (migf_release).
 */
struct migf {
	struct migf_dev *md = nullptr;
	struct file *filp = nullptr;
	struct mutex lock;
	bool disabled = false;

	/* Saving. */
	bool precopy = false;	/* opened in PRE_COPY: tracks writes */
	bool final = false;	/* the device is stopped: the stream ends */
	mig_rec_writer w;	/* the record being read */
	u64 initial_size = 0;	/* bytes of the initial data */

	virtual ~migf() = default;
};

/* In the driver's init: md belongs to vdev and uses ops. */
void migf_dev_init(struct migf_dev *md, struct vfio_device *vdev,
		   const struct migf_dev_ops *ops);

/*
 * Give f its file (anon_inode_getfile(name, fops), a stream, read-only
 * when saving, write-only else). 0 or -errno; on error f is the caller's
 * to delete, else the file's.
 */
int migf_init_file(struct migf *f, struct migf_dev *md, const char *name,
		   const struct file_operations *fops, bool saving);

/* A file's migf: private_data holds the base, as migf_init_file set it. */
static inline struct migf *file_to_migf(struct file *filp)
{
	return static_cast<struct migf *>(filp->private_data);
}

/* new T, then migf_init_file(); NULL when either fails. */
template <typename T>
T *migf_alloc(struct migf_dev *md, const char *name,
	      const struct file_operations *fops, bool saving)
{
	T *f = new (std::nothrow) T;
	if (!f)
		return nullptr;
	if (migf_init_file(f, md, name, fops, saving)) {
		delete f;
		return nullptr;
	}
	return f;
}

/*
 * Under state_mutex: make f (from migf_alloc, saving) the device's saving
 * file, with the initial data of initial_size bytes first; a pre-copy
 * file starts tracking before the first page is read. The file to hand
 * to the user, or ERR_PTR (f is then freed).
 */
struct file *migf_open_save(struct migf *f, bool precopy, u64 initial_size);
/* The same for a resuming file. */
struct file *migf_open_resume(struct migf *f);
/*
 * Under state_mutex, on PRE_COPY(_P2P) -> STOP_COPY: the pre-copy file
 * goes on and now has an end, after what the tracker missed.
 */
void migf_save_finalize(struct migf_dev *md);
/*
 * Under state_mutex: if next is an arc that moves data (opening a saving
 * or resuming file, pre-copy's end, leaving a saving state, the load at
 * RESUMING -> STOP), take it and return true with *res the arc's result;
 * false for an arc that only stops or starts the device.
 */
bool migf_step_data(struct migf_dev *md, enum vfio_device_mig_state next,
		    struct file **res);
/* Under state_mutex: disable both files and drop the driver's references. */
void migf_disable_fds(struct migf_dev *md);
/*
 * Under state_mutex: back to RUNNING with no file (a reset, or a new
 * open), then ops->reset.
 */
void migf_reset(struct migf_dev *md);

/* Unlock state_mutex, first running a reset that arrived meanwhile. */
void migf_state_mutex_unlock(struct migf_dev *md);
/* The deferred-reset half of the driver's pci_error_handlers.reset_done. */
void migf_reset_done(struct migf_dev *md);

/* vfio_migration_ops, given the driver's migf_dev. */
struct file *migf_set_state(struct migf_dev *md,
			    enum vfio_device_mig_state new_state);
int migf_get_state(struct migf_dev *md,
		   enum vfio_device_mig_state *curr_state);

/* Whether s is PRE_COPY or PRE_COPY_P2P. */
static inline bool migf_state_is_precopy(enum vfio_device_mig_state s)
{
	return s == VFIO_DEVICE_STATE_PRE_COPY ||
	       s == VFIO_DEVICE_STATE_PRE_COPY_P2P;
}

/* A saving file: read, PRECOPY_INFO, release (the functions below). */
extern const struct file_operations migf_save_fops;
ssize_t migf_save_read(struct file *filp, char __user *buf, size_t len,
		       loff_t *pos);
long migf_precopy_ioctl(struct file *filp, unsigned int cmd,
			unsigned long arg);
int migf_release(struct inode *inode, struct file *filp);

#endif /* UVFIO_DRIVERS_MIGF_H */
