/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * struct vm_area_struct for a driver's mmap callback.
 *
 * The core fills vm_start (0 until mapped), vm_end - vm_start (the length),
 * vm_pgoff (the mmap offset in pages, region index included) and vm_flags. A
 * driver that accepts the mapping names the memory behind it with
 * vfio_vma_set_backing() (it stands for remap_pfn_range() or a fault handler
 * in the kernel); the core then maps it into the caller.
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

/*
 * A pinned page of user memory (vfio_pin_pages()). In uvfio it stands for
 * the page's address in this process; page_address() gives it back.
 */
struct page;

static inline void *page_address(struct page *page)
{
	return page;
}

struct vm_area_struct {
	unsigned long vm_start;
	unsigned long vm_end;
	unsigned long vm_pgoff;
	unsigned long vm_flags;
	/* uvfio: set by the driver through vfio_vma_set_backing(). */
	int backing_fd;
	off_t backing_offset;
};

/* Back vma with fd (a memfd the driver owns) starting at offset. */
static inline void vfio_vma_set_backing(struct vm_area_struct *vma, int fd,
					off_t offset)
{
	vma->backing_fd = fd;
	vma->backing_offset = offset;
}

#endif /* UVFIO_LINUX_MM_H */
