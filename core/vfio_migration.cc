// SPDX-License-Identifier: GPL-2.0-only
/*
 * The migration features of VFIO_DEVICE_FEATURE (protocol v2).
 *
 * Present: VFIO_DEVICE_FEATURE_MIGRATION (GET), MIG_DEVICE_STATE (GET),
 * MIG_DATA_SIZE (GET). Not yet: MIG_DEVICE_STATE SET (the FSM and data fds)
 * and the DMA logging features, which fail with EOPNOTSUPP on devices that
 * advertise them (see Documentation/uapi.md).
 */
#include <cerrno>

#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio.h>

#include "vfio_migration.h"

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

	if (flags & VFIO_DEVICE_FEATURE_SET)
		return -EOPNOTSUPP; /* the FSM arrives with the migration core */

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

int vfio_ioctl_device_feature_logging(struct vfio_device *device, u32, void *,
				      size_t)
{
	if (!device->log_ops)
		return -ENOTTY;
	return -EOPNOTSUPP; /* arrives with the dirty-tracking core */
}

void vfio_migration_device_close(struct vfio_device *)
{
}
