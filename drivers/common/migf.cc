// SPDX-License-Identifier: GPL-2.0-only
/*
 * The migration-file lifecycle shared by simnic and testdev: the FSM loop,
 * the deferred reset, opening and disabling files, and the saving file's
 * read and PRECOPY_INFO. See migf.h.
 */
#include <fcntl.h>

#include <uvfio/linux/err.h>
#include <uvfio/linux/uaccess.h>

#include "migf.h"

void migf_dev_init(struct migf_dev *md, struct vfio_device *vdev,
		   const struct migf_dev_ops *ops)
{
	md->vdev = vdev;
	md->ops = ops;
	mutex_init(&md->state_mutex);
}

int migf_init_file(struct migf *f, struct migf_dev *md, const char *name,
		   const struct file_operations *fops, bool saving)
{
	f->md = md;
	mutex_init(&f->lock);
	struct file *filp = anon_inode_getfile(name, fops, f,
					       saving ? O_RDONLY : O_WRONLY);
	if (IS_ERR(filp))
		return static_cast<int>(PTR_ERR(filp));
	stream_open(nullptr, filp);
	f->filp = filp;
	return 0;
}

struct file *migf_open_save(struct migf *f, bool precopy, u64 initial_size)
{
	struct migf_dev *md = f->md;

	f->w.magic = md->ops->magic;
	f->w.version = md->ops->version;
	f->precopy = precopy;
	f->final = !precopy;
	f->initial_size = initial_size;
	/* Before the first page is read: a write after it is seen. */
	if (precopy) {
		int ret = md->ops->track_start(md);
		if (ret) {
			fput(f->filp);
			return static_cast<struct file *>(ERR_PTR(ret));
		}
	}
	md->saving_migf = f;
	return get_file(f->filp);
}

struct file *migf_open_resume(struct migf *f)
{
	f->md->resuming_migf = f;
	return get_file(f->filp);
}

void migf_save_finalize(struct migf_dev *md)
{
	struct migf *f = md->saving_migf;

	if (!f)
		return;
	if (md->ops->track_flush)
		md->ops->track_flush(md);
	mutex_guard g(&f->lock);
	f->final = true;
}

bool migf_step_data(struct migf_dev *md, enum vfio_device_mig_state next,
		    struct file **res)
{
	const enum vfio_device_mig_state cur = md->mig_state;

	*res = nullptr;
	if (cur == VFIO_DEVICE_STATE_STOP && next == VFIO_DEVICE_STATE_STOP_COPY) {
		*res = md->ops->open_save(md, false);
		return true;
	}
	if ((cur == VFIO_DEVICE_STATE_RUNNING &&
	     next == VFIO_DEVICE_STATE_PRE_COPY) ||
	    (cur == VFIO_DEVICE_STATE_RUNNING_P2P &&
	     next == VFIO_DEVICE_STATE_PRE_COPY_P2P)) {
		*res = md->ops->open_save(md, true);
		return true;
	}
	/* PRE_COPY -> STOP_COPY is the arc of a device without P2P. */
	if (migf_state_is_precopy(cur) &&
	    next == VFIO_DEVICE_STATE_STOP_COPY) {
		/* The pre-copy file goes on and now has an end. */
		migf_save_finalize(md);
		return true;
	}
	if ((cur == VFIO_DEVICE_STATE_STOP_COPY &&
	     next == VFIO_DEVICE_STATE_STOP) ||
	    (cur == VFIO_DEVICE_STATE_PRE_COPY &&
	     next == VFIO_DEVICE_STATE_RUNNING) ||
	    (cur == VFIO_DEVICE_STATE_PRE_COPY_P2P &&
	     next == VFIO_DEVICE_STATE_RUNNING_P2P)) {
		migf_disable_fds(md);
		return true;
	}
	if (cur == VFIO_DEVICE_STATE_STOP && next == VFIO_DEVICE_STATE_RESUMING) {
		*res = md->ops->open_resume(md);
		return true;
	}
	if (cur == VFIO_DEVICE_STATE_RESUMING && next == VFIO_DEVICE_STATE_STOP) {
		struct migf *f = md->resuming_migf;
		if (f) {
			mutex_guard g(&f->lock);
			int ret = md->ops->load(f);
			if (ret) {
				*res = static_cast<struct file *>(ERR_PTR(ret));
				return true;
			}
		}
		migf_disable_fds(md);
		return true;
	}
	return false;
}

void migf_disable_fds(struct migf_dev *md)
{
	for (struct migf **pf : {&md->saving_migf, &md->resuming_migf}) {
		struct migf *f = *pf;
		if (!f)
			continue;
		mutex_lock(&f->lock);
		f->disabled = true;
		mig_rec_release(&f->w);
		mutex_unlock(&f->lock);
		*pf = nullptr;
		fput(f->filp);
	}
	md->ops->disabled(md);
}

void migf_reset(struct migf_dev *md)
{
	md->mig_state = VFIO_DEVICE_STATE_RUNNING;
	migf_disable_fds(md);
	if (md->ops->reset)
		md->ops->reset(md);
}

void migf_state_mutex_unlock(struct migf_dev *md)
{
	for (;;) {
		std::unique_lock<std::mutex> l(md->reset_lock);
		if (!md->deferred_reset) {
			mutex_unlock(&md->state_mutex);
			return;
		}
		md->deferred_reset = false;
		l.unlock();
		migf_reset(md);
	}
}

void migf_reset_done(struct migf_dev *md)
{
	{
		std::lock_guard<std::mutex> l(md->reset_lock);
		md->deferred_reset = true;
		/* Busy: its holder resets on unlock. */
		if (!mutex_trylock(&md->state_mutex))
			return;
	}
	migf_state_mutex_unlock(md);
}

/*
 * One arc at a time toward new_state, each asked of
 * vfio_mig_get_next_state(), under state_mutex. A failing arc leaves the
 * device in the state it reached.
 */
struct file *migf_set_state(struct migf_dev *md,
			    enum vfio_device_mig_state new_state)
{
	enum vfio_device_mig_state next;
	struct file *res = NULL;
	int ret;

	mutex_lock(&md->state_mutex);
	while (new_state != md->mig_state) {
		ret = vfio_mig_get_next_state(md->vdev, md->mig_state,
					      new_state, &next);
		if (ret) {
			res = static_cast<struct file *>(ERR_PTR(ret));
			break;
		}
		res = md->ops->step(md, next);
		if (IS_ERR(res))
			break;
		md->mig_state = next;
		/* Only the last arc may open a data file. */
		if (WARN_ON(res && new_state != md->mig_state)) {
			fput(res);
			res = static_cast<struct file *>(ERR_PTR(-EINVAL));
			break;
		}
	}
	migf_state_mutex_unlock(md);
	return res;
}

int migf_get_state(struct migf_dev *md, enum vfio_device_mig_state *curr_state)
{
	mutex_lock(&md->state_mutex);
	*curr_state = md->mig_state;
	migf_state_mutex_unlock(md);
	return 0;
}

namespace {

bool migf_produce(void *arg)
{
	auto *f = static_cast<struct migf *>(arg);
	return f->md->ops->produce(f);
}

} // namespace

ssize_t migf_save_read(struct file *filp, char __user *buf, size_t len,
		       loff_t *pos)
{
	struct migf *f = file_to_migf(filp);

	if (pos)
		return -ESPIPE;
	mutex_guard g(&f->lock);
	/* Quietly, as the kernel's drivers: the core reads once after an
	 * arc that leaves the file's states, to check it is disabled. */
	if (f->disabled)
		return -ENODEV;
	/* Nothing now: the end in STOP_COPY, a pause in PRE_COPY. */
	return mig_rec_read(&f->w, buf, len, migf_produce, f, f->final);
}

long migf_precopy_ioctl(struct file *filp, unsigned int cmd,
			unsigned long arg)
{
	struct migf *f = file_to_migf(filp);
	struct migf_dev *md = f->md;
	size_t minsz = offsetofend(struct vfio_precopy_info, dirty_bytes);
	struct vfio_precopy_info info = {};
	void __user *uarg = reinterpret_cast<void __user *>(arg);
	long ret = 0;

	if (cmd != VFIO_MIG_GET_PRECOPY_INFO)
		return -ENOTTY;
	if (copy_from_user(&info, uarg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;

	mutex_lock(&md->state_mutex);
	if (!migf_state_is_precopy(md->mig_state)) {
		ret = -EINVAL;
	} else {
		mutex_guard g(&f->lock);
		if (f->disabled)
			ret = -ENODEV;
		else
			md->ops->precopy_info(f, &info);
	}
	migf_state_mutex_unlock(md);
	if (!ret && copy_to_user(uarg, &info, minsz))
		ret = -EFAULT;
	return ret;
}

int migf_release(struct inode *, struct file *filp)
{
	delete file_to_migf(filp);
	return 0;
}

const struct file_operations migf_save_fops = {
	.read = migf_save_read,
	.write = nullptr,
	.unlocked_ioctl = migf_precopy_ioctl,
	.mmap = nullptr,
	.release = migf_release,
};
