/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * struct vm_area_struct for a driver's mmap callback.
 *
 * The core fills vm_start (0 until mapped), vm_end - vm_start (the length),
 * vm_pgoff (the mmap offset in pages, region index included) and vm_flags. A
 * driver that accepts the mapping names the memory behind it with
 * vfio_vma_set_backing() (it stands for remap_pfn_range() or a fault handler
 * in the kernel); the core then maps it into the caller.
 *
 * Device memory (a BAR) is what the kernel maps VM_IO | VM_PFNMAP: pages
 * with no struct page, which type1 resolves at MAP_DMA by following the
 * mapping rather than pinning it. A driver that sets those flags and
 * vm_ops->dma_rw tells the core that the memory behind the mapping is a
 * device's, so that another device's DMA through the IOMMU reaches it
 * through dma_rw (peer-to-peer) instead of a memcpy into the mapping.
 */
#ifndef UVFIO_LINUX_MM_H
#define UVFIO_LINUX_MM_H

#include <sys/mman.h>

#include <uvfio/linux/types.h>

#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))

#define VM_READ 0x1UL
#define VM_WRITE 0x2UL
#define VM_SHARED 0x8UL
#define VM_PFNMAP 0x400UL
#define VM_IO 0x4000UL

/*
 * A pinned page of user memory (vfio_pin_pages()). In uvfio it stands for
 * the page's address in this process; page_address() gives it back.
 */
struct page;

static inline void *page_address(struct page *page)
{
	return page;
}

struct vm_area_struct;

/*
 * uvfio: the one operation a mapping of device memory offers.
 *
 * @dma_rw: a DMA access that another device (or this one) makes through
 *	the IOMMU to the memory behind the mapping: len bytes at pos, an
 *	offset in the device fd's space (what pread(2) would take: the
 *	region index included), to or from buf, a core buffer. 0, or
 *	-EFAULT when the device does not take
 *	it (memory decode off, outside the region). Called with no lock of
 *	the core held but the IOMMU model's, on the initiating device's
 *	thread (its DMA engine): it must not block on anything a thread
 *	could hold while waiting for a DMA engine to go idle (igate, a
 *	state mutex), only on the target's leaf locks. vma is the core's
 *	copy of the mapping's (vm_ops, vm_private_data, vm_pgoff, vm_flags
 *	as the driver left them); it lives as long as the mapping is known.
 *
 * @mapped: uvfio only (NULL: nothing to do): the mapping now exists in the
 *	caller at [vm_start, vm_end), so the driver can follow what the CPU
 *	stores through it, as a device sees writes to its BAR. Called once,
 *	after mmap(2) succeeded, on the mapping thread, with no lock of the
 *	core held; vma is the core's temporary, valid for the call. The
 *	mapping goes away with a plain munmap(2) the driver is not told of.
 *	A kernel driver needs nothing like it: the device sees the writes.
 */
struct vm_operations_struct {
	int (*dma_rw)(struct vm_area_struct *vma, u64 pos, void *buf,
		      size_t len, bool write);
	void (*mapped)(struct vm_area_struct *vma);
};

struct vm_area_struct {
	unsigned long vm_start;
	unsigned long vm_end;
	unsigned long vm_pgoff;
	unsigned long vm_flags;
	/* uvfio: set by the driver through vfio_vma_set_backing(). */
	int backing_fd;
	off_t backing_offset;
	/* The device memory's DMA path (see vm_operations_struct), or NULL. */
	const struct vm_operations_struct *vm_ops;
	void *vm_private_data;
};

/* Back vma with fd (a memfd the driver owns) starting at offset. */
static inline void vfio_vma_set_backing(struct vm_area_struct *vma, int fd,
					off_t offset)
{
	vma->backing_fd = fd;
	vma->backing_offset = offset;
}

#endif /* UVFIO_LINUX_MM_H */
