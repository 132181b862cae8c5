/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Device memory mappings as the IOMMU model sees them (peer-to-peer DMA).
 *
 * In the kernel a BAR mmap is a VM_PFNMAP vma whose pfns are the BAR's
 * bus addresses; type1's MAP_DMA follows it (follow_fault_pfn) and the
 * IOMMU then routes a device's DMA to the peer's BAR. Here a BAR mmap is
 * a mapping of the BAR's memfd, so the core records, when a device's mmap
 * hands out a backing with vm_ops->dma_rw, which file that is and which
 * device offset it starts at; MAP_DMA resolves a user range to its VMAs
 * (PROCMAP_QUERY, else /proc/self/maps) and finds those files again.
 * Users unmap with munmap(2), which the core never sees: a record lives
 * as long as its device is registered.
 */
#ifndef UVFIO_CORE_VFIO_PFNMAP_H
#define UVFIO_CORE_VFIO_PFNMAP_H

#include <memory>
#include <string>
#include <vector>

#include <uvfio/linux/mm.h>
#include <uvfio/linux/vfio.h>

/* One device's memory file (a BAR's memfd), as MAP_DMA found it. */
struct vfio_pfnmap;

/* A piece of a MAP_DMA range that is device memory. */
struct vfio_pfnmap_span {
	u64 off;	/* from the start of the range */
	u64 len;
	u64 pos;	/* the device offset (region index included) at off */
	std::shared_ptr<vfio_pfnmap> map;
};

/*
 * The device's mmap op accepted vma with a backing: remember the backing
 * file if the driver marked it device memory (vm_ops->dma_rw). 0 or
 * -errno (-ENOMEM).
 */
int vfio_pfnmap_record(struct vfio_device *device,
		       const struct vm_area_struct *vma);

/*
 * The device is being unregistered: forget its files and wait for the
 * accesses in flight; later accesses through existing spans fail with
 * -EFAULT. Its users are gone (no lock of the caller's may be one an
 * access takes: an access takes only the target's leaf locks).
 */
void vfio_pfnmap_forget_device(struct vfio_device *device);

/*
 * The device memory pieces of [vaddr, vaddr + size), in order, into
 * *spans. A piece must be mapped with the access prot needs, else
 * -EFAULT, as follow_fault_pfn fails; a hole is -EFAULT too. Ranges with no device memory give no spans (and,
 * when no device memory was ever mapped, cost nothing). 0 or -errno.
 */
int vfio_pfnmap_resolve(unsigned long vaddr, u64 size, int prot,
			std::vector<vfio_pfnmap_span> *spans);

/*
 * A DMA access to device memory at pos: the device's vm_ops->dma_rw,
 * unless it was unregistered. 0 or -EFAULT.
 */
int vfio_pfnmap_rw(vfio_pfnmap *map, u64 pos, void *buf, size_t len,
		   bool write);

/* One VMA, as PROCMAP_QUERY or /proc/self/maps tells it. */
struct vfio_vma_info {
	u64 start = 0, end = 0;
	u64 offset = 0;	/* file offset at start */
	u64 dev = 0, ino = 0;
	bool readable = false, writable = false;
};

/*
 * The two ways resolve reads the VMAs covering [lo, hi], in order, a hole
 * ending the list: PROCMAP_QUERY (1; 0 when the kernel lacks it, before
 * 6.11) and the text of /proc/self/maps (its fallback). Exposed so that
 * tests can check they agree.
 */
int vfio_vmas_by_query(u64 lo, u64 hi, std::vector<vfio_vma_info> *out);
void vfio_vmas_by_text(const std::string &maps, u64 lo, u64 hi,
		       std::vector<vfio_vma_info> *out);

#endif /* UVFIO_CORE_VFIO_PFNMAP_H */
