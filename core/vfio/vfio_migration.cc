// SPDX-License-Identifier: GPL-2.0-only
/*
 * The migration features of VFIO_DEVICE_FEATURE (protocol v2):
 * VFIO_DEVICE_FEATURE_MIGRATION (GET), MIG_DEVICE_STATE (GET and SET, with
 * the data fds of vfio_mig_stream.cc) and MIG_DATA_SIZE (GET); and what
 * VFIO_DEVICE_RESET and the last close do to a live data stream. The DMA
 * logging features are in vfio_dma_logging.cc; the v1 migration region,
 * which walks the FSM through __vfio_mig_set_state() too, in
 * vfio_migration_v1.cc.
 *
 * SET calls the driver's migration_set_state once with the user's target,
 * as the kernel does; the driver walks the arcs (vfio_mig_get_next_state).
 * Around that call the core does only what owning the data fd's transport
 * asks of it: everything a user wrote to a resuming stream reaches the
 * driver first (the kernel's write(2) is synchronous, a socket is not),
 * and afterwards a stream whose states the device left is ended, so its
 * queued bytes are never read as if the device still produced them. The
 * pump is not stopped for the call: the driver's file may be read while
 * the driver changes state, as a user's read(2) may race a SET in the
 * kernel.
 */
#include <cerrno>
#include <cstring>
#include <functional>

#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio.h>

#include "vfio.h"
#include "vfio_mig_stream.h"
#include "vfio_migration.h"

namespace {

/*
 * After a SET or a reset: the stream goes on if the device is in a state
 * of that stream and the stream has not failed; otherwise it ends.
 */
void settle_stream(struct vfio_device *device,
		   std::shared_ptr<vfio_mig_stream> &stream)
{
	enum vfio_device_mig_state state = VFIO_DEVICE_STATE_ERROR;

	if (!stream)
		return;
	bool ok = !vfio_mig_device_state(device, &state);
	if (ok && !vfio_mig_stream_error(*stream) &&
	    (vfio_mig_stream_saving(*stream)
		     ? vfio_mig_stream_continues(*stream, state)
		     : state == VFIO_DEVICE_STATE_RESUMING)) {
		vfio_mig_stream_kick(*stream);
		return;
	}
	vfio_mig_stream_drop_left(stream, state);
}

} // namespace

int vfio_mig_device_state(struct vfio_device *device,
			  enum vfio_device_mig_state *state)
{
	if (vfio_mig_device_broken(device)) {
		*state = VFIO_DEVICE_STATE_ERROR;
		return 0;
	}
	return device->mig_ops->migration_get_state(device, state);
}

int __vfio_mig_set_state(struct vfio_device *device,
			 enum vfio_device_mig_state target,
			 struct file **data_filp)
{
	std::shared_ptr<vfio_mig_stream> &stream = device->priv->mig_stream;
	int ret;

	*data_filp = nullptr;

	/* A broken device leaves ERROR only by a reset, as the FSM says. */
	if (vfio_mig_device_broken(device))
		return -EINVAL;

	if (stream) {
		/*
		 * Resuming: everything written so far reaches the driver
		 * before it changes state. A driver error on the stream, even
		 * one whose fd userspace already closed, fails this request
		 * once, before the driver is asked.
		 */
		vfio_mig_stream_drain(*stream);
		ret = vfio_mig_stream_take_error(*stream);
		if (ret) {
			dev_err(device->dev,
				"state change refused: the migration data "
				"stream failed (%s)", strerror(-ret));
			vfio_mig_stream_drop(stream);
			return ret;
		}
		if (vfio_mig_stream_ended(*stream))
			stream.reset();
	}

	struct file *filp = device->mig_ops->migration_set_state(device, target);
	if (IS_ERR(filp)) {
		settle_stream(device, stream);
		return static_cast<int>(PTR_ERR(filp));
	}
	if (!filp) {
		settle_stream(device, stream);
		return 0;
	}
	if (!vfio_mig_state_has_data(target)) {
		dev_err(device->dev,
			"driver bug: the move to state %d returned a data "
			"file, which that state has none of",
			static_cast<int>(target));
		fput(filp);
		settle_stream(device, stream);
		return -EINVAL;
	}
	/* A new stream replaces the old, whose states the device left. */
	vfio_mig_stream_drop_left(stream, target);
	return vfio_mig_stream_open(device, filp, target, &stream, data_filp);
}

int vfio_ioctl_device_feature_migration(struct vfio_device *device, u32 flags,
					void __user *arg, size_t argsz)
{
	struct vfio_device_feature_migration mig = {};
	int ret;

	if (!device->mig_ops)
		return -ENOTTY;
	ret = vfio_check_feature(flags, argsz, VFIO_DEVICE_FEATURE_GET,
				 sizeof(mig));
	if (ret != 1)
		return ret;
	mig.flags = device->migration_flags;
	if (copy_to_user(arg, &mig, sizeof(mig)))
		return -EFAULT;
	return 0;
}

int vfio_ioctl_device_feature_mig_device_state(struct vfio_device *device,
					       u32 flags, void __user *arg,
					       size_t argsz)
{
	size_t minsz = offsetofend(struct vfio_device_feature_mig_state, data_fd);
	struct vfio_device_feature_mig_state mig = {};
	enum vfio_device_mig_state curr_state;
	int ret;

	if (!device->mig_ops)
		return -ENOTTY;
	ret = vfio_check_feature(flags, argsz,
				 VFIO_DEVICE_FEATURE_SET |
					 VFIO_DEVICE_FEATURE_GET,
				 minsz);
	if (ret != 1)
		return ret;

	if (flags & VFIO_DEVICE_FEATURE_SET) {
		if (copy_from_user(&mig, arg, minsz))
			return -EFAULT;
		int data_fd = -1;
		/*
		 * No such state: refuse it while it is still a number. An
		 * enum vfio_device_mig_state cannot hold it (undefined
		 * behaviour in C++); the FSM would refuse it with EINVAL too.
		 */
		if (mig.device_state > UVFIO_DEVICE_STATE_MAX) {
			ret = -EINVAL;
		} else {
			std::lock_guard<std::mutex> mig_guard(
				device->priv->mig_lock);
			struct file *filp;

			/* The v1 region's session does not survive a v2 SET. */
			vfio_mig_v1_abandon(device);
			ret = __vfio_mig_set_state(
				device,
				static_cast<enum vfio_device_mig_state>(
					mig.device_state),
				&filp);
			if (!ret && filp) {
				data_fd = vfio_mig_stream_install_fd(filp);
				/* As the kernel when it has no fd to give:
				 * nothing is written back. */
				if (data_fd < 0)
					return data_fd;
			}
		}
		/*
		 * Success or not, the caller's struct gets data_fd: the new fd
		 * or -1. A failed SET writes device_state back as it came (the
		 * kernel's vfio_ioctl_device_feature_mig_device_state() copies
		 * the struct out before it returns the driver's error).
		 */
		mig.data_fd = data_fd;
		if (ret) {
			if (copy_to_user(arg, &mig, minsz))
				return -EFAULT;
			return ret;
		}
		if (copy_to_user(arg, &mig, minsz)) {
			/* The caller cannot learn the fd: do not leak it. */
			if (data_fd >= 0)
				uvfio_fd_close(data_fd);
			return -EFAULT;
		}
		return 0;
	}

	ret = vfio_mig_device_state(device, &curr_state);
	if (ret)
		return ret;
	mig.device_state = curr_state;
	mig.data_fd = -1;
	if (copy_to_user(arg, &mig, minsz))
		return -EFAULT;
	return 0;
}

int vfio_ioctl_device_feature_migration_data_size(struct vfio_device *device,
						  u32 flags, void __user *arg,
						  size_t argsz)
{
	struct vfio_device_feature_mig_data_size data_size = {};
	unsigned long stop_copy_length;
	int ret;

	if (!device->mig_ops)
		return -ENOTTY;
	ret = vfio_check_feature(flags, argsz, VFIO_DEVICE_FEATURE_GET,
				 sizeof(data_size));
	if (ret != 1)
		return ret;
	ret = device->mig_ops->migration_get_data_size(device,
							&stop_copy_length);
	if (ret)
		return ret;
	data_size.stop_copy_length = stop_copy_length;
	if (copy_to_user(arg, &data_size, sizeof(data_size)))
		return -EFAULT;
	return 0;
}

/*
 * Any function reset of a device with migration: the live data stream is
 * quiesced before (the reset disables the driver's file, which must not be
 * called after) and ends with the reset.
 */
static long vfio_migration_reset(struct vfio_device *device,
				 const std::function<long()> &do_reset)
{
	std::lock_guard<std::mutex> mig_guard(device->priv->mig_lock);
	std::shared_ptr<vfio_mig_stream> &stream = device->priv->mig_stream;

	if (stream)
		vfio_mig_stream_quiesce(*stream);
	long ret = do_reset();
	/* A reset ends a v1 session as it ends the stream under it. */
	if (!ret) {
		vfio_mig_v1_abandon(device);
		device->priv->mig_broken = false;
	}
	if (stream) {
		/* A failed reset leaves the device, and its stream, as they were. */
		if (ret) {
			vfio_mig_stream_restart(*stream);
			settle_stream(device, stream);
		} else {
			vfio_mig_stream_drop(stream);
		}
	}
	return ret;
}

long vfio_migration_device_reset(struct vfio_device *device, unsigned int cmd,
				 unsigned long arg)
{
	return vfio_migration_reset(device, [&] {
		return device->ops->ioctl(device, cmd, arg);
	});
}

int uvfio_device_reset(struct vfio_device *device,
		       int (*reset)(struct vfio_device *device))
{
	if (!device->mig_ops)
		return reset(device);
	return static_cast<int>(
		vfio_migration_reset(device, [&] { return reset(device); }));
}

void uvfio_set_state_digest(struct vfio_device *device,
			    int (*digest)(struct vfio_device *device, u64 *out))
{
	if (!WARN_ON(!device->priv || device->priv->registered))
		device->priv->state_digest = digest;
}

int vfio_migration_state_digest(struct vfio_device *device, u64 *out)
{
	std::lock_guard<std::mutex> mig_guard(device->priv->mig_lock);
	enum vfio_device_mig_state state;

	if (!device->priv->state_digest)
		return -EOPNOTSUPP;
	if (device->mig_ops) {
		int ret = vfio_mig_device_state(device, &state);
		if (ret)
			return ret;
		if (vfio_mig_state_running(state))
			return -EBUSY;
	}
	return device->priv->state_digest(device, out);
}

void vfio_migration_device_close(struct vfio_device *device)
{
	std::lock_guard<std::mutex> mig_guard(device->priv->mig_lock);
	std::shared_ptr<vfio_mig_stream> &stream = device->priv->mig_stream;

	vfio_mig_v1_abandon(device);
	device->priv->mig_broken = false;
	vfio_mig_stream_drop(stream);
}
