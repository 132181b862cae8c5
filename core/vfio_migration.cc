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
 * SET walks the FSM here, one arc per migration_set_state call, so that the
 * core can deliver pending resume data before an arc, stop the pump before
 * an arc that ends a stream (the driver is never called on a disabled file),
 * and check that only the last arc returns a data file. A kernel-style
 * driver that loops with vfio_mig_get_next_state itself sees the same arcs.
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

bool opens_stream(enum vfio_device_mig_state state)
{
	return state == VFIO_DEVICE_STATE_STOP_COPY ||
	       state == VFIO_DEVICE_STATE_RESUMING ||
	       state == VFIO_DEVICE_STATE_PRE_COPY ||
	       state == VFIO_DEVICE_STATE_PRE_COPY_P2P;
}

/*
 * After a SET: a quiesced stream pumps again if the device is in a state of
 * that stream and the stream has not failed; otherwise it ends.
 */
void settle_stream(struct vfio_device *device,
		   std::shared_ptr<vfio_mig_stream> &stream)
{
	enum vfio_device_mig_state state;

	if (!stream)
		return;
	if (!vfio_mig_stream_error(*stream) &&
	    !device->mig_ops->migration_get_state(device, &state) &&
	    (vfio_mig_stream_saving(*stream)
		     ? vfio_mig_stream_continues(*stream, state)
		     : state == VFIO_DEVICE_STATE_RESUMING)) {
		vfio_mig_stream_restart(*stream);
		return;
	}
	vfio_mig_stream_end(*stream);
	stream.reset();
}

} // namespace

/*
 * Walk from the current state to target, mig_lock held. *data_filp gets the
 * file of a stream the last arc opened (one reference), or stays NULL. On
 * failure the device stays where the failing arc left it; GET reports that.
 *
 * The pump is stopped across every arc (the driver may disable its file in
 * the arc, and is never called on a disabled file) and restarted after an
 * arc the stream survives, e.g. PRE_COPY_P2P -> STOP_COPY.
 */
int __vfio_mig_set_state(struct vfio_device *device,
			 enum vfio_device_mig_state target,
			 struct file **data_filp)
{
	std::shared_ptr<vfio_mig_stream> &stream = device->priv->mig_stream;
	enum vfio_device_mig_state cur, next;
	int ret;

	*data_filp = nullptr;

	if (stream) {
		/*
		 * Resuming: everything written so far reaches the driver
		 * before any arc. A driver error on the stream, even one
		 * whose fd userspace already closed, fails this request
		 * once, before any arc.
		 */
		vfio_mig_stream_quiesce(*stream);
		ret = vfio_mig_stream_take_error(*stream);
		if (ret) {
			dev_err(device->dev,
				"state change refused: the migration data "
				"stream failed (%s)", strerror(-ret));
			vfio_mig_stream_end(*stream);
			stream.reset();
			return ret;
		}
		if (vfio_mig_stream_ended(*stream))
			stream.reset();
	}

	ret = device->mig_ops->migration_get_state(device, &cur);
	while (!ret && cur != target) {
		ret = vfio_mig_get_next_state(device, cur, target, &next);
		if (ret)
			break;

		struct file *filp =
			device->mig_ops->migration_set_state(device, next);
		if (IS_ERR(filp)) {
			ret = static_cast<int>(PTR_ERR(filp));
			break;
		}
		cur = next;
		/* The stream leaves with the state it belongs to. */
		if (stream && !vfio_mig_stream_continues(*stream, cur)) {
			vfio_mig_stream_check_left(*stream, cur);
			vfio_mig_stream_end(*stream);
			stream.reset();
		}
		if (!filp)
			continue;

		if (cur != target || !opens_stream(cur)) {
			dev_err(device->dev,
				"driver bug: the arc to state %d returned a "
				"data file%s", static_cast<int>(cur),
				cur != target ? " before the last arc"
					      : ", which opens no stream");
			fput(filp);
			ret = -EINVAL;
			break;
		}
		if (stream) {
			vfio_mig_stream_end(*stream);
			stream.reset();
		}
		ret = vfio_mig_stream_open(device, filp, cur, &stream,
					   data_filp);
		if (ret < 0)
			break;
		/* A new stream pumps already; nothing left to settle. */
		return 0;
	}

	settle_stream(device, stream);
	return ret;
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
			std::lock_guard<std::mutex> guard(
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

	ret = device->mig_ops->migration_get_state(device, &curr_state);
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
	std::lock_guard<std::mutex> guard(device->priv->mig_lock);
	std::shared_ptr<vfio_mig_stream> &stream = device->priv->mig_stream;

	if (stream)
		vfio_mig_stream_quiesce(*stream);
	long ret = do_reset();
	/* A reset ends a v1 session as it ends the stream under it. */
	if (!ret)
		vfio_mig_v1_abandon(device);
	if (stream) {
		/* A failed reset leaves the device, and its stream, as they were. */
		if (ret) {
			settle_stream(device, stream);
		} else {
			vfio_mig_stream_end(*stream);
			stream.reset();
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
	std::lock_guard<std::mutex> guard(device->priv->mig_lock);
	enum vfio_device_mig_state state;

	if (!device->priv->state_digest)
		return -EOPNOTSUPP;
	if (device->mig_ops) {
		int ret = device->mig_ops->migration_get_state(device, &state);
		if (ret)
			return ret;
		if (state == VFIO_DEVICE_STATE_RUNNING ||
		    state == VFIO_DEVICE_STATE_PRE_COPY)
			return -EBUSY;
	}
	return device->priv->state_digest(device, out);
}

void vfio_migration_device_close(struct vfio_device *device)
{
	std::lock_guard<std::mutex> guard(device->priv->mig_lock);
	std::shared_ptr<vfio_mig_stream> &stream = device->priv->mig_stream;

	vfio_mig_v1_abandon(device);
	if (stream) {
		vfio_mig_stream_end(*stream);
		stream.reset();
	}
}
