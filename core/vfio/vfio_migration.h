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

/*
 * The device's state as userspace sees it: the driver's, or ERROR while a
 * "mig.error.*" fault has it broken.
 */
int vfio_mig_device_state(struct vfio_device *device,
			  enum vfio_device_mig_state *state);

/* A "mig.error.*" fault point broke the device (vfio_fsm.cc). */
bool vfio_mig_device_broken(struct vfio_device *device);

/* Last close of the device: end any data stream still open. */
void vfio_migration_device_close(struct vfio_device *device);

/*
 * MIG_DEVICE_STATE SET to target, with device->priv->mig_lock held:
 * pending resume data delivered first, then one migration_set_state(target)
 * call, then the stream kept or ended by the state the device is in. On
 * success *data_filp is the file of the stream the driver opened (one
 * reference: install it for userspace with vfio_mig_stream_install_fd(),
 * or keep it in the core), or NULL. On failure the device stays where the
 * driver's failing arc left it. 0 or -errno.
 */
int __vfio_mig_set_state(struct vfio_device *device,
			 enum vfio_device_mig_state target,
			 struct file **data_filp);

/*
 * vfio_migration_v1.cc: drop the v1 migration region's session (its data
 * stream and window), mig_lock held. A reset, the last close and a
 * MIG_DEVICE_STATE SET do this; a device without the region is untouched.
 */
void vfio_mig_v1_abandon(struct vfio_device *device);

#endif /* UVFIO_CORE_VFIO_MIGRATION_H */
