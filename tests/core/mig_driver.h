/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * mig_driver: a scripted migration driver for testing the core's
 * MIG_DEVICE_STATE path. It registers a vfio_device directly (no pci_dev),
 * with a parent struct device named like a BDF so that uvfio_open() finds
 * it, and:
 *
 * - is called once per SET with the final state, the kernel's contract,
 *   and walks to it as kernel drivers (mlx5, mtty) do: under its lock,
 *   vfio_mig_get_next_state() for each arc, one step per arc, stopping at
 *   the first failure with its state where that arc left it; it records
 *   every (from, to) arc it steps, and counts any step that is not an arc
 *   of its flags (illegal_arcs: vfio_mig_get_next_state gave a wrong one);
 * - treats a data file from an arc before the last as the kernel's
 *   drivers do (WARN, fput, -EINVAL) and logs it as a driver bug;
 * - hands out real data files (anon_inode_getfile + stream_open) and keeps
 *   its own reference until it disables them: on the arc that leaves the
 *   stream's state, on VFIO_DEVICE_RESET and on close_device;
 * - saving files produce mig_pattern() bytes: save_len of them then EOF in
 *   STOP_COPY; precopy_len then -ENOMSG in PRE_COPY*, the same file going on
 *   into STOP_COPY;
 * - resuming files count (and check) the bytes written;
 * - can fail an arc, a read or a write, and can misbehave on purpose (a
 *   data file where none may be returned);
 * - answers -ENODEV on a file it has disabled, and counts such calls in
 *   calls_after_disable: the core's pump may make them while a SET runs
 *   (as a user's read(2) may race a SET in the kernel), and the core makes
 *   one read after a SET that left the file's states, to check that the
 *   driver disabled it. Once a SET has returned, the core has released
 *   every file it ended (files_released says so), so no later call exists.
 */
#ifndef UVFIO_TESTS_MIG_DRIVER_H
#define UVFIO_TESTS_MIG_DRIVER_H

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <uvfio/linux/fs.h>
#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio.h>

#include "fsm_oracle.h"
#include "test_util.h"

namespace uvfio_test {

/*
 * Byte off of every saving stream. It depends on the position, so a lost,
 * repeated or reordered chunk shows up.
 */
inline u8 mig_pattern(u64 off)
{
	return static_cast<u8>((off * 2654435761ULL) >> 13);
}

inline constexpr u64 MIG_NEVER = UINT64_MAX;

/*
 * mig_pattern() bytes [0, MIG_IMAGE_SIZE) in memory that never changes and
 * is never freed: what a driver may hand to uvfio_copy_to_user_stable().
 */
inline constexpr u64 MIG_IMAGE_SIZE = 32 << 20;
inline const u8 *mig_pattern_image()
{
	static const std::vector<u8> image = [] {
		std::vector<u8> v(MIG_IMAGE_SIZE);
		for (u64 i = 0; i < v.size(); i++)
			v[i] = mig_pattern(i);
		return v;
	}();
	return image.data();
}

/*
 * What the driver does. Set before the SET that should see it: data files
 * take a snapshot of their knobs when the arc opens them.
 */
struct MigKnobs {
	/* STOP_COPY bytes (after any pre-copy bytes of the same file). */
	u64 save_len = 64 << 10;
	/* Bytes a pre-copy file offers before -ENOMSG. */
	u64 precopy_len = 16 << 10;

	/* Fail the arc into fail_into with -fail_errno (ERROR: never). */
	state fail_into = ERROR;
	int fail_errno = EIO;
	/* ... and enter ERROR instead of staying in the current state. */
	bool fail_to_error = false;
	/* ... and on entering ERROR disable the data files at once. */
	bool disable_on_error = false;

	/* A saving file's read fails with -read_errno at this offset. */
	u64 read_fail_after = MIG_NEVER;
	int read_errno = EIO;
	/* A resuming file's write fails with -write_errno at this offset. */
	u64 write_fail_after = MIG_NEVER;
	int write_errno = EIO;

	/*
	 * Driver bug: the arc into this state also returns a fresh data file
	 * when it would return none (ERROR: never). Point it at an
	 * intermediate state of a path, or at RUNNING.
	 */
	state bug_file_into = ERROR;

	/*
	 * How a saving read (resuming write) copies its bytes to (from) the
	 * user: in order (0), the second half before the first (1, legal),
	 * or in order and then the first byte again (2: a byte the core
	 * streams twice). And a read or write may return one byte fewer than
	 * it copied (a bug).
	 */
	int copy_order = 0;
	bool return_short = false;

	/*
	 * Saving reads copy with uvfio_copy_to_user_stable() from
	 * mig_pattern_image() (streams up to MIG_IMAGE_SIZE): all of each
	 * read (1), or its first 100 bytes with copy_to_user() and the rest
	 * stable (2), as a record header and its payload.
	 */
	int stable_copies = 0;
};

struct mig_file;

/* The driver's state and what the tests observe. */
struct MigDriver {
	struct mutex lock;	/* everything below except the atomics */
	MigKnobs k;
	u32 flags = SC;
	state cur = RUNNING;
	std::vector<std::pair<state, state>> arc_log;
	mig_file *saving = nullptr;	/* the files the driver holds */
	mig_file *resuming = nullptr;
	/* Bytes the resuming file had received at RESUMING -> STOP. */
	u64 received_at_resume_end = MIG_NEVER;

	std::atomic<int> files_opened{0};
	std::atomic<int> files_released{0};
	std::atomic<int> calls_after_disable{0};
	std::atomic<int> illegal_arcs{0};
	std::atomic<int> resets{0};
	std::atomic<int> opens{0};
	std::atomic<int> closes{0};
	/* Resumed bytes that were not mig_pattern(offset). */
	std::atomic<u64> resume_bad_bytes{0};

	/* Thread-safe accessors for the tests. */
	std::vector<std::pair<state, state>> arcs_done()
	{
		mutex_guard g(&lock);
		return arc_log;
	}
	void clear_arcs()
	{
		mutex_guard g(&lock);
		arc_log.clear();
	}
	MigKnobs knobs()
	{
		mutex_guard g(&lock);
		return k;
	}
	void set_knobs(const MigKnobs &nk)
	{
		mutex_guard g(&lock);
		k = nk;
	}
	state current()
	{
		mutex_guard g(&lock);
		return cur;
	}
	u64 resume_end_count()
	{
		mutex_guard g(&lock);
		return received_at_resume_end;
	}
};

struct mig_file {
	MigDriver *drv = nullptr;
	struct file *filp = nullptr;
	bool saving = true;

	struct mutex lock;	/* everything below */
	bool disabled = false;
	bool checked = false;	/* the core read it once after disabling */
	int copy_order = 0;	/* MigKnobs */
	bool return_short = false;
	int stable_copies = 0;
	bool precopy = false;	/* saving: -ENOMSG, not EOF, at the limit */
	u64 limit = 0;		/* saving: bytes before EOF / ENOMSG */
	u64 save_len = 0;	/* saving: STOP_COPY bytes after limit */
	u64 pos = 0;		/* bytes produced / received */
	u64 fail_after = MIG_NEVER;
	int fail_errno = EIO;
};

struct mig_device {
	struct vfio_device vdev;
	MigDriver *drv = nullptr;
};

inline MigDriver *to_mig(struct vfio_device *v)
{
	return container_of(v, struct mig_device, vdev)->drv;
}

/* -------- the data files -------- */

/* Called on a file the driver disabled: count it, fail like a dead file. */
inline long mig_file_dead(mig_file *f)
{
	f->drv->calls_after_disable++;
	return -ENODEV;
}

inline ssize_t mig_file_read(struct file *filp, char __user *buf, size_t len,
			     loff_t *pos)
{
	auto *f = static_cast<mig_file *>(filp->private_data);

	if (pos)
		return -ESPIPE;
	mutex_guard g(&f->lock);
	if (f->disabled && !f->checked) {
		f->checked = true;	/* the core's check after the arc */
		return -ENODEV;
	}
	if (f->disabled)
		return mig_file_dead(f);
	if (f->pos >= f->fail_after)
		return -f->fail_errno;
	u64 end = std::min(f->limit, f->fail_after);
	if (f->pos >= end)
		return f->precopy ? -ENOMSG : 0;

	size_t n = static_cast<size_t>(std::min<u64>(len, end - f->pos));
	std::vector<u8> tmp;
	const u8 *src;
	if (f->stable_copies) {
		if (f->pos + n > MIG_IMAGE_SIZE)
			return -EFBIG;	/* a test asked for too long a stream */
		src = mig_pattern_image() + f->pos;
	} else {
		tmp.resize(n);
		for (size_t i = 0; i < n; i++)
			tmp[i] = mig_pattern(f->pos + i);
		src = tmp.data();
	}
	/* Bytes [lo, hi) of this read, stable or not as the knob says. */
	auto copy = [&](size_t lo, size_t hi) {
		if (!f->stable_copies)
			return copy_to_user(buf + lo, src + lo, hi - lo) != 0;
		size_t head = f->stable_copies == 2
			? std::clamp<size_t>(100, lo, hi) : lo;
		return copy_to_user(buf + lo, src + lo, head - lo) ||
		       uvfio_copy_to_user_stable(buf + head, src + head,
						 hi - head);
	};
	size_t half = n / 2;
	bool bad = f->copy_order == 1 ? copy(half, n) || copy(0, half)
				      : copy(0, n);
	if (!bad && f->copy_order == 2)
		bad = copy(0, 1);
	if (bad)
		return -EFAULT;
	if (f->return_short && n > 1)
		n--;
	f->pos += n;
	return static_cast<ssize_t>(n);
}

inline ssize_t mig_file_write(struct file *filp, const char __user *buf,
			      size_t len, loff_t *pos)
{
	auto *f = static_cast<mig_file *>(filp->private_data);

	if (pos)
		return -ESPIPE;
	mutex_guard g(&f->lock);
	if (f->disabled)
		return mig_file_dead(f);
	if (f->pos >= f->fail_after)
		return -f->fail_errno;

	/* Take only up to the failure point: the rest fails next call. */
	size_t n = static_cast<size_t>(
		std::min<u64>(len, f->fail_after - f->pos));
	std::vector<u8> tmp(n);
	size_t half = n / 2;
	bool fault = f->copy_order == 1
		? copy_from_user(tmp.data() + half, buf + half, n - half) ||
		  copy_from_user(tmp.data(), buf, half)
		: copy_from_user(tmp.data(), buf, n);
	if (!fault && f->copy_order == 2)
		fault = copy_from_user(tmp.data(), buf, 1);
	if (fault)
		return -EFAULT;
	if (f->return_short && n > 1)
		n--;
	u64 bad = 0;
	for (size_t i = 0; i < n; i++)
		bad += tmp[i] != mig_pattern(f->pos + i);
	f->drv->resume_bad_bytes += bad;
	f->pos += n;
	return static_cast<ssize_t>(n);
}

inline long mig_file_ioctl(struct file *filp, unsigned int cmd,
			   unsigned long arg)
{
	auto *f = static_cast<mig_file *>(filp->private_data);
	size_t minsz = offsetofend(struct vfio_precopy_info, dirty_bytes);
	struct vfio_precopy_info info = {};
	void __user *uarg = reinterpret_cast<void __user *>(arg);

	{
		mutex_guard g(&f->lock);
		if (f->disabled)
			return mig_file_dead(f);
		if (cmd != VFIO_MIG_GET_PRECOPY_INFO)
			return -ENOTTY;
		if (!f->saving || !f->precopy)
			return -EINVAL;
		info.initial_bytes = f->limit > f->pos ? f->limit - f->pos : 0;
		info.dirty_bytes = 0;
	}
	struct vfio_precopy_info in = {};
	if (copy_from_user(&in, uarg, minsz))
		return -EFAULT;
	if (in.argsz < minsz)
		return -EINVAL;
	info.argsz = in.argsz;
	info.flags = 0;
	if (copy_to_user(uarg, &info, minsz))
		return -EFAULT;
	return 0;
}

inline int mig_file_release(struct inode *, struct file *filp)
{
	auto *f = static_cast<mig_file *>(filp->private_data);
	f->drv->files_released++;
	delete f;
	return 0;
}

inline const struct file_operations mig_file_fops = {
	.owner = THIS_MODULE,
	.read = mig_file_read,
	.write = mig_file_write,
	.unlocked_ioctl = mig_file_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.release = mig_file_release,
};

/* A new data file with one reference (the caller's); d->lock held. */
inline mig_file *mig_new_file(MigDriver *d, bool saving, bool precopy)
{
	auto *f = new (std::nothrow) mig_file;
	if (!f)
		return nullptr;
	f->drv = d;
	f->saving = saving;
	f->precopy = precopy;
	f->limit = precopy ? d->k.precopy_len : d->k.save_len;
	f->save_len = d->k.save_len;
	f->fail_after = saving ? d->k.read_fail_after : d->k.write_fail_after;
	f->fail_errno = saving ? d->k.read_errno : d->k.write_errno;
	f->copy_order = d->k.copy_order;
	f->return_short = d->k.return_short;
	f->stable_copies = d->k.stable_copies;
	/* Access mode as a real driver's: the core checks it. */
	struct file *filp = anon_inode_getfile("[mig-test]", &mig_file_fops, f,
					       saving ? O_RDONLY : O_WRONLY);
	if (IS_ERR(filp)) {
		delete f;
		return nullptr;
	}
	stream_open(nullptr, filp);
	f->filp = filp;
	d->files_opened++;
	return f;
}

/* Disable and drop the driver's files; d->lock held. */
inline void mig_disable_files(MigDriver *d)
{
	for (mig_file **pf : {&d->saving, &d->resuming}) {
		mig_file *f = *pf;
		if (!f)
			continue;
		mutex_lock(&f->lock);
		f->disabled = true;
		mutex_unlock(&f->lock);
		*pf = nullptr;
		fput(f->filp);	/* may release f */
	}
}

/* Open the stream of state next; the driver keeps a reference. */
inline struct file *mig_open_stream(MigDriver *d, state next)
{
	bool saving = next != RESUMING;
	mig_file **slot = saving ? &d->saving : &d->resuming;

	/* A stale file (only after ERROR) would be lost: disable it. */
	mig_disable_files(d);
	mig_file *f = mig_new_file(d, saving, is_precopy(next));
	if (!f)
		return ERR_PTR(-ENOMEM);
	*slot = f;
	return get_file(f->filp);
}

/* -------- the migration ops -------- */

/* One arc, d->cur -> next (mlx5's step_device_state); d->lock held. */
inline struct file *mig_step_state(MigDriver *d, state next)
{
	const state cur = d->cur;
	struct file *res = NULL;

	d->arc_log.emplace_back(cur, next);
	if (!is_arc(d->flags, cur, next)) {
		d->illegal_arcs++;
		return ERR_PTR(-EINVAL);
	}
	if (next == d->k.fail_into) {
		if (d->k.fail_to_error)
			d->cur = ERROR;
		if (d->k.fail_to_error && d->k.disable_on_error)
			mig_disable_files(d);
		return ERR_PTR(-d->k.fail_errno);
	}

	if (arc_opens_stream(cur, next)) {
		res = mig_open_stream(d, next);
		if (IS_ERR(res))
			return res;
	} else if (is_precopy(cur) && next == STOP_COPY) {
		/* The pre-copy file goes on and now has an end. */
		if (mig_file *f = d->saving) {
			guard(mutex)(&f->lock);
			f->precopy = false;
			f->limit += f->save_len;
		}
	} else if (arc_ends_stream(cur, next)) {
		if (mig_file *f = d->resuming) {
			guard(mutex)(&f->lock);
			d->received_at_resume_end = f->pos;
		}
		mig_disable_files(d);
	}

	if (!res && next == d->k.bug_file_into) {
		/* Not kept: whoever gets it must release it. */
		mig_file *f = mig_new_file(d, true, false);
		if (f)
			res = f->filp;
	}
	return res;
}

/* The kernel drivers' loop: called once per SET with the final state. */
inline struct file *mig_set_state(struct vfio_device *vdev, state new_state)
{
	MigDriver *d = to_mig(vdev);
	struct file *res = NULL;
	state next_state;
	int ret;

	guard(mutex)(&d->lock);
	while (new_state != d->cur) {
		ret = vfio_mig_get_next_state(vdev, d->cur, new_state,
					      &next_state);
		if (ret) {
			res = ERR_PTR(ret);
			break;
		}
		res = mig_step_state(d, next_state);
		if (IS_ERR(res))
			break;
		d->cur = next_state;
		if (WARN_ON(res && new_state != d->cur)) {
			dev_err(vdev->dev, "driver bug: arc to state %d "
				"returned a data file before the target %d",
				static_cast<int>(d->cur),
				static_cast<int>(new_state));
			fput(res);
			res = ERR_PTR(-EINVAL);
			break;
		}
	}
	return res;
}

inline int mig_get_state(struct vfio_device *vdev, state *curr)
{
	MigDriver *d = to_mig(vdev);
	mutex_guard g(&d->lock);
	*curr = d->cur;
	return 0;
}

inline int mig_get_data_size(struct vfio_device *vdev, unsigned long *len)
{
	MigDriver *d = to_mig(vdev);
	mutex_guard g(&d->lock);
	*len = d->k.save_len;
	return 0;
}

inline const struct vfio_migration_ops mig_driver_mig_ops = {
	.migration_set_state = mig_set_state,
	.migration_get_state = mig_get_state,
	.migration_get_data_size = mig_get_data_size,
};

/* -------- the device ops -------- */

inline int mig_open_device(struct vfio_device *vdev)
{
	MigDriver *d = to_mig(vdev);
	mutex_guard g(&d->lock);
	d->cur = RUNNING;
	d->opens++;
	return 0;
}

inline void mig_close_device(struct vfio_device *vdev)
{
	MigDriver *d = to_mig(vdev);
	mutex_guard g(&d->lock);
	mig_disable_files(d);
	d->closes++;
}

/* A function reset returns the FSM to RUNNING and disables the files. */
inline long mig_ioctl(struct vfio_device *vdev, unsigned int cmd,
		      unsigned long)
{
	MigDriver *d = to_mig(vdev);

	if (cmd != VFIO_DEVICE_RESET)
		return -ENOTTY;
	mutex_guard g(&d->lock);
	d->cur = RUNNING;
	mig_disable_files(d);
	d->resets++;
	return 0;
}

inline const struct vfio_device_ops mig_driver_ops = {
	.name = "mig-test",
	.open_device = mig_open_device,
	.close_device = mig_close_device,
	.ioctl = mig_ioctl,
};

/*
 * A registered mig_driver device for one test: the parent device outlives
 * the vfio_device; unregister() waits for every user, so close all fds
 * first.
 */
class MigDevice
{
public:
	explicit MigDevice(u32 flags)
	{
		parent_.name = next_bdf();
		drv.flags = flags;
		d_ = vfio_alloc_device(mig_device, vdev, &parent_,
				       &mig_driver_ops);
		if (IS_ERR(d_)) {
			d_ = nullptr;
			return;
		}
		d_->drv = &drv;
		d_->vdev.mig_ops = &mig_driver_mig_ops;
		d_->vdev.migration_flags = flags;
		registered_ = !vfio_register_group_dev(&d_->vdev);
	}
	~MigDevice()
	{
		unregister();
		if (d_)
			vfio_put_device(&d_->vdev);
	}
	MigDevice(const MigDevice &) = delete;
	MigDevice &operator=(const MigDevice &) = delete;

	bool ok() const { return registered_; }
	const char *name() const { return parent_.name.c_str(); }
	void unregister()
	{
		if (registered_)
			vfio_unregister_group_dev(&d_->vdev);
		registered_ = false;
	}

	MigDriver drv;

private:
	struct device parent_;
	mig_device *d_ = nullptr;
	bool registered_ = false;
};

} // namespace uvfio_test

#endif /* UVFIO_TESTS_MIG_DRIVER_H */
