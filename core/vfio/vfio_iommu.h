/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Core-private: the IOMMU model behind a container (the counterpart of the
 * kernel's vfio_iommu_driver ops and drivers/vfio/vfio_iommu_type1.c).
 *
 * container.cc owns the container file and its groups; once userspace has
 * chosen a model with VFIO_SET_IOMMU, it forwards the model's ioctls here.
 * The DMA path of simulated devices and of emulated-IOMMU drivers
 * (vfio_dma_rw, vfio_pin_pages) comes in through the device's container.
 */
#ifndef UVFIO_CORE_VFIO_IOMMU_H
#define UVFIO_CORE_VFIO_IOMMU_H

#include <uvfio/linux/vfio.h>

struct vfio_iommu;

/* VFIO_CHECK_EXTENSION answer of the type1 model (0 or 1). */
int vfio_iommu_type1_check_extension(unsigned long arg);

/* A type1 model for VFIO_SET_IOMMU(type): ERR_PTR(-EINVAL) for others. */
struct vfio_iommu *vfio_iommu_type1_open(unsigned long type);

/* Last reference of the container: drop every mapping. */
void vfio_iommu_type1_release(struct vfio_iommu *iommu);

/*
 * The model's ioctls on the container fd: VFIO_CHECK_EXTENSION,
 * VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA,
 * VFIO_IOMMU_DIRTY_PAGES. Anything else: -ENOTTY.
 */
long vfio_iommu_type1_ioctl(struct vfio_iommu *iommu, unsigned int cmd,
			    unsigned long arg);

/* Devices whose dma_unmap must hear about unmaps of pinned pages. */
int vfio_iommu_type1_attach_device(struct vfio_iommu *iommu,
				   struct vfio_device *device);
void vfio_iommu_type1_detach_device(struct vfio_iommu *iommu,
				    struct vfio_device *device);

/*
 * A device's DMA: copy len bytes between buf and [iova, iova + len) through
 * the mappings. -EFAULT when any byte is unmapped or the mapping lacks the
 * permission (nothing is copied then: a fault, never a stray access). A
 * write marks its pages dirty while dirty tracking is on.
 */
int vfio_iommu_type1_dma_rw(struct vfio_iommu *iommu, dma_addr_t iova,
			    void *buf, size_t len, bool write);

/*
 * Pin npage pages at user_iova (page-aligned IOVAs, PAGE_SIZE each) for
 * device, returning their addresses in this process in pages[] (our
 * "struct page *"). Returns npage or -errno. Pinned pages are reported
 * dirty (with prot & IOMMU_WRITE) while tracking is on, as in the kernel.
 */
int vfio_iommu_type1_pin_pages(struct vfio_iommu *iommu,
			       struct vfio_device *device, dma_addr_t user_iova,
			       int npage, int prot, void **pages);
void vfio_iommu_type1_unpin_pages(struct vfio_iommu *iommu,
				  struct vfio_device *device,
				  dma_addr_t user_iova, int npage);

#endif /* UVFIO_CORE_VFIO_IOMMU_H */
