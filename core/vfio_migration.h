/* SPDX-License-Identifier: GPL-2.0-only */
/* Core-private: the migration and DMA-logging features of VFIO_DEVICE_FEATURE. */
#ifndef UVFIO_CORE_VFIO_MIGRATION_H
#define UVFIO_CORE_VFIO_MIGRATION_H

#include <uvfio/linux/vfio.h>

int vfio_ioctl_device_feature_migration(struct vfio_device *device, u32 flags,
					void __user *arg, size_t argsz);
int vfio_ioctl_device_feature_mig_device_state(struct vfio_device *device,
					       u32 flags, void __user *arg,
					       size_t argsz);
int vfio_ioctl_device_feature_migration_data_size(struct vfio_device *device,
						  u32 flags, void __user *arg,
						  size_t argsz);
/* vfio_dma_logging.cc: the DMA logging features. */
int vfio_ioctl_device_feature_logging_start(struct vfio_device *device,
					    u32 flags, void __user *arg,
					    size_t argsz);
int vfio_ioctl_device_feature_logging_stop(struct vfio_device *device,
					   u32 flags, void __user *arg,
					   size_t argsz);
int vfio_ioctl_device_feature_logging_report(struct vfio_device *device,
					     u32 flags, void __user *arg,
					     size_t argsz);

/*
 * VFIO_DEVICE_RESET on a device with migration: the live data stream ends
 * (the driver's file is disabled by the reset), then ops->ioctl runs.
 */
long vfio_migration_device_reset(struct vfio_device *device, unsigned int cmd,
				 unsigned long arg);

/*
 * uvfio_sim_state_digest() on an open device: the driver's hook under the
 * migration lock. -EOPNOTSUPP without a hook, -EBUSY while the device runs
 * (its state moves under the hash).
 */
int vfio_migration_state_digest(struct vfio_device *device, u64 *out);

/* Last close of the device: end any data stream still open. */
void vfio_migration_device_close(struct vfio_device *device);

#endif /* UVFIO_CORE_VFIO_MIGRATION_H */
