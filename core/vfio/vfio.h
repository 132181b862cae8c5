/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Core-private declarations shared by the files of core/ (the counterpart of
 * drivers/vfio/vfio.h). Nothing here is for drivers or userspace.
 */
#ifndef UVFIO_CORE_VFIO_H
#define UVFIO_CORE_VFIO_H

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include <uvfio/linux/vfio.h>

#include "runtime.h"

struct vfio_mig_stream;
struct vfio_mig_v1;
struct vfio_group;

/* Core state hung off each vfio_device. */
struct vfio_device_private {
	enum vfio_group_type type = VFIO_IOMMU;
	bool registered = false;
	/*
	 * Serializes MIG_DEVICE_STATE SET, VFIO_DEVICE_RESET and the last
	 * close against each other; taken before any driver lock.
	 */
	std::mutex mig_lock;
	/* The live data stream, if any (protected by mig_lock). */
	std::shared_ptr<vfio_mig_stream> mig_stream;
	/*
	 * A "mig.error.*" fault fired while the driver asked for its next
	 * arc: the device is broken, GET reports ERROR and SET is refused
	 * until a reset or the last close. Set from the driver's
	 * migration_set_state (under mig_lock); GET reads it without.
	 */
	std::atomic<bool> mig_broken{false};
	/*
	 * The v1 migration region (vfio_migration_v1.cc), set before
	 * registration; its session is protected by mig_lock.
	 */
	std::shared_ptr<vfio_mig_v1> mig_v1;
	/* uvfio_set_state_digest()'s hook, or NULL. */
	int (*state_digest)(struct vfio_device *device, u64 *out) = nullptr;
	/* The device's IOMMU group, from registration to unregistration. */
	std::shared_ptr<vfio_group> group;
};

/* What a device fd's struct file points to. */
struct vfio_device_file {
	struct vfio_device *device;
	/* The group file it was opened through (a reference), or NULL. */
	struct file *group_file;
};

/* -------- vfio_main.cc -------- */

/* Take a user reference on a registered device found by parent name. */
struct vfio_device *vfio_device_get_registered(const char *name);
void vfio_device_put_registration(struct vfio_device *device);

/* First open calls open_device (undone on failure); last close close_device. */
int vfio_device_open(struct vfio_device *device);
void vfio_device_close(struct vfio_device *device);

extern const struct file_operations vfio_device_fops;

/*
 * A device fd for device, whose registration reference the caller passes
 * on (it is dropped on failure). Opened through a group, the fd holds a
 * reference to group_file, as in the kernel. Returns the fd or -errno.
 */
int vfio_device_fd_open(struct vfio_device *device, struct file *group_file);

/* -------- group.cc, container.cc: groups and containers -------- */

/* Registration gives a device its group; unregistration takes it. */
int vfio_group_register(struct vfio_device *device);
void vfio_group_unregister(struct vfio_device *device);

/* The group number of the registered device named name, or -ENOENT. */
int vfio_group_id_of(const char *name);

/* Open "/dev/vfio/N" (number is "N"): a new fd or -errno. */
int vfio_group_open(const char *number);

/* A device fd opened through / closed from the group behind group_file. */
void vfio_group_device_opened(struct file *group_file);
void vfio_group_device_closed(struct file *group_file);

/* Open the IOMMU container: a new fd or -errno. */
int vfio_container_open(void);

#endif /* UVFIO_CORE_VFIO_H */
