/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Core-private: IOMMU groups and containers, shared by group.cc and
 * container.cc (the counterparts of drivers/vfio/group.c and container.c).
 */
#ifndef UVFIO_CORE_CONTAINER_H
#define UVFIO_CORE_CONTAINER_H

#include <memory>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include <uvfio/linux/vfio.h>

#include "vfio_iommu.h"

struct vfio_group;

/*
 * A container: the groups attached to it and, once userspace chose one with
 * VFIO_SET_IOMMU, the IOMMU model they share. lock protects both; callers
 * copy the iommu reference under it and call the model without it, so the
 * model may call back into drivers (dma_unmap) that call vfio_unpin_pages.
 */
struct vfio_container {
	std::shared_mutex lock;
	std::shared_ptr<vfio_iommu> iommu;
	std::vector<vfio_group *> groups;
};

/*
 * An IOMMU group of one device. lock protects everything below it; it is
 * taken before the container's lock.
 */
struct vfio_group {
	int id = -1;
	std::mutex lock;
	struct vfio_device *device = nullptr;	/* NULL once unregistered */
	bool opened = false;			/* a group fd exists */
	std::shared_ptr<vfio_container> container;
	unsigned int device_fds = 0;		/* opened through this group */
};

/* The container behind a container fd's file, or NULL for another file. */
std::shared_ptr<vfio_container> vfio_container_from_file(struct file *filp);

/*
 * Attach group to container / detach it (group->lock held): the group joins
 * the container's list and, if the container has an IOMMU model, its device
 * is attached to the model. The last group leaving releases the model, as
 * the kernel does.
 */
int vfio_container_attach_group(const std::shared_ptr<vfio_container> &c,
				vfio_group *group);
void vfio_container_detach_group(vfio_group *group);

#endif /* UVFIO_CORE_CONTAINER_H */
