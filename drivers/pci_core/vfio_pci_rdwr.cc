// SPDX-License-Identifier: GPL-2.0-only
/*
 * pci_core's region access: read and write of config space (through
 * vfio_pci_config.cc's virtualization), of BARs (memory, or a device
 * model's registers with the MSI-X table hidden) and of device-specific
 * regions, and mmap of BARs and regions that allow it.
 */
#include <cerrno>
#include <algorithm>
#include <cstring>
#include <vector>

#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio_pci_core.h>

#include "vfio_pci_priv.h"

/*
 * Config space goes through the simulated function: its masks keep
 * read-only fields, BAR sizing and W1C bits as the hardware has them. A
 * write that initiates FLR resets the function like VFIO_DEVICE_RESET,
 * once igate is dropped.
 */
static ssize_t vfio_pci_config_rw(struct vfio_pci_core_device *vdev,
				  char __user *buf, size_t count, loff_t *ppos,
				  u64 off, bool iswrite)
{
	u8 tmp[PCI_CFG_SPACE_EXP_SIZE];
	bool flr;

	if (iswrite && copy_from_user(tmp, buf, count))
		return -EFAULT;
	{
		mutex_guard g(&vdev->igate);
		if (iswrite) {
			flr = vfio_pci_config_write(
				vdev, static_cast<u32>(off), tmp, count);
			vfio_pci_core_sync_command(vdev);
		} else {
			vfio_pci_config_read(vdev, static_cast<u32>(off), tmp,
					     count);
			flr = false;
		}
	}
	if (!iswrite && copy_to_user(buf, tmp, count))
		return -EFAULT;
	if (flr)
		uvfio_device_reset(&vdev->vdev, vfio_pci_core_flr_reset);
	*ppos += count;
	return static_cast<ssize_t>(count);
}

/*
 * A register BAR: the device model answers, except for the MSI-X table,
 * which belongs to the host (the kernel's vfio-pci hides it the same way:
 * reads give all ones, writes are dropped). Under igate.
 */
static ssize_t vfio_pci_regs_rw(struct vfio_pci_core_device *vdev, int bar,
				char __user *buf, size_t count, loff_t *ppos,
				u64 off, bool iswrite)
{
	std::vector<u8> tmp(count);
	u64 x_start = 0, x_end = 0;

	if (vdev->msix_count && vdev->msix_bar == bar) {
		x_start = vdev->msix_table_offset;
		x_end = x_start + 16ULL * vdev->msix_count;
	}
	if (iswrite && copy_from_user(tmp.data(), buf, count))
		return -EFAULT;
	/* Up to the table, the table, past it: at most three pieces. */
	for (u64 pos = off; pos < off + count;) {
		u8 *p = tmp.data() + (pos - off);
		u64 end = off + count;
		if (pos >= x_start && pos < x_end) {
			end = std::min(end, x_end);
			if (!iswrite)
				std::memset(p, 0xff, end - pos);
		} else {
			if (pos < x_start)
				end = std::min(end, x_start);
			vdev->hw_ops->bar_rw(vdev, bar, pos, p, end - pos,
					     iswrite);
		}
		pos = end;
	}
	if (!iswrite && copy_to_user(buf, tmp.data(), count))
		return -EFAULT;
	*ppos += count;
	return static_cast<ssize_t>(count);
}

static ssize_t vfio_pci_rw(struct vfio_pci_core_device *vdev, char __user *buf,
			   size_t count, loff_t *ppos, bool iswrite)
{
	u64 pos = static_cast<u64>(*ppos);
	u64 index = VFIO_PCI_OFFSET_TO_INDEX(pos);
	u64 off = pos & VFIO_PCI_OFFSET_MASK;
	u8 *base;
	u64 size;

	if (index >= VFIO_PCI_NUM_REGIONS) {
		if (index >= VFIO_PCI_NUM_REGIONS + vdev->num_regions)
			return -EINVAL;
		struct vfio_pci_region *region =
			&vdev->region[index - VFIO_PCI_NUM_REGIONS];
		return region->ops->rw(vdev, buf, count, ppos, iswrite);
	}

	switch (index) {
	case VFIO_PCI_CONFIG_REGION_INDEX:
		base = nullptr;
		size = PCI_CFG_SPACE_EXP_SIZE;
		break;
	case VFIO_PCI_BAR0_REGION_INDEX ... VFIO_PCI_BAR5_REGION_INDEX:
		base = vdev->bars[index].map;
		size = vdev->bars[index].size;
		break;
	default:
		return -EINVAL;
	}
	if (index == VFIO_PCI_CONFIG_REGION_INDEX) {
		/* Config space accesses must lie wholly inside it. */
		if (off >= size || count > size - off)
			return -EFAULT;
	} else {
		if (!size || off >= size)
			return -EINVAL;
		count = std::min<u64>(count, size - off);
	}

	if (index == VFIO_PCI_CONFIG_REGION_INDEX)
		return vfio_pci_config_rw(vdev, buf, count, ppos, off, iswrite);

	/* Config and register accesses race with the device: under igate. */
	mutex_guard g(&vdev->igate);
	/* A function not decoding memory: the kernel answers EIO. */
	if (!sim_pci_config_mem_enabled(&vdev->config))
		return -EIO;
	if (vdev->bars[index].regs)
		return vfio_pci_regs_rw(vdev, static_cast<int>(index), buf,
					count, ppos, off, iswrite);
	if (iswrite) {
		if (copy_from_user(base + off, buf, count))
			return -EFAULT;
	} else {
		if (copy_to_user(buf, base + off, count))
			return -EFAULT;
	}
	*ppos += count;
	return static_cast<ssize_t>(count);
}

ssize_t vfio_pci_core_read(struct vfio_device *core_vdev, char __user *buf,
			   size_t count, loff_t *ppos)
{
	return vfio_pci_rw(to_core(core_vdev), buf, count, ppos, false);
}

ssize_t vfio_pci_core_write(struct vfio_device *core_vdev,
			    const char __user *buf, size_t count, loff_t *ppos)
{
	return vfio_pci_rw(to_core(core_vdev), const_cast<char *>(buf), count,
			   ppos, true);
}

/*
 * Another device's DMA into a mapping of a BAR (peer-to-peer): the
 * fabric delivers it to the function, not through vfio-pci, so no igate
 * here, which a reset or a migration arc holds while it waits for the
 * DMA engines to drain; only the function's memory decode and the model's
 * own leaf locks. A function not decoding memory does not take it: the
 * initiator sees the transaction fail (-EFAULT).
 */
static int vfio_pci_mmap_dma_rw(struct vm_area_struct *vma, u64 pos,
				void *buf, size_t len, bool write)
{
	auto *vdev = static_cast<struct vfio_pci_core_device *>(
		vma->vm_private_data);
	u64 index = VFIO_PCI_OFFSET_TO_INDEX(pos);
	u64 off = pos & VFIO_PCI_OFFSET_MASK;

	if (index > VFIO_PCI_BAR5_REGION_INDEX)
		return -EFAULT;
	struct vfio_pci_bar *bar = &vdev->bars[index];
	if (!bar->size || !bar->mmap || off > bar->size ||
	    len > bar->size - off)
		return -EFAULT;
	if (!vdev->mem_decode.load(std::memory_order_acquire))
		return -EFAULT;
	/* The MSI-X table is the host's, never mapped: not reachable. */
	if (vdev->msix_count && vdev->msix_bar == index &&
	    off < vdev->msix_table_offset + 16ULL * vdev->msix_count &&
	    off + len > vdev->msix_table_offset)
		return -EFAULT;
	if (bar->regs)
		vdev->hw_ops->bar_rw(vdev, static_cast<int>(index), off, buf,
				     len, write);
	else if (write)
		std::memcpy(bar->map + off, buf, len);
	else
		std::memcpy(buf, bar->map + off, len);
	return 0;
}

/* The user's mapping exists: the model may want to see stores to it. */
static void vfio_pci_mmap_mapped(struct vm_area_struct *vma)
{
	auto *vdev = static_cast<struct vfio_pci_core_device *>(
		vma->vm_private_data);
	u64 pos = u64(vma->vm_pgoff) << PAGE_SHIFT;
	u64 index = VFIO_PCI_OFFSET_TO_INDEX(pos);

	if (index > VFIO_PCI_BAR5_REGION_INDEX || !vdev->hw_ops ||
	    !vdev->hw_ops->user_mapped)
		return;
	vdev->hw_ops->user_mapped(vdev, static_cast<int>(index),
				  pos & VFIO_PCI_OFFSET_MASK,
				  reinterpret_cast<void *>(vma->vm_start),
				  vma->vm_end - vma->vm_start,
				  vma->vm_flags & VM_WRITE);
}

static const struct vm_operations_struct vfio_pci_mmap_ops = {
	.dma_rw = vfio_pci_mmap_dma_rw,
	.mapped = vfio_pci_mmap_mapped,
};

int vfio_pci_core_mmap(struct vfio_device *core_vdev,
		       struct vm_area_struct *vma)
{
	struct vfio_pci_core_device *vdev = to_core(core_vdev);
	unsigned long index, pgoff, req_len, req_start;

	index = vma->vm_pgoff >> (VFIO_PCI_OFFSET_SHIFT - PAGE_SHIFT);
	if (vma->vm_end < vma->vm_start)
		return -EINVAL;
	if (index >= VFIO_PCI_NUM_REGIONS) {
		if (index >= VFIO_PCI_NUM_REGIONS + vdev->num_regions)
			return -EINVAL;
		struct vfio_pci_region *region =
			&vdev->region[index - VFIO_PCI_NUM_REGIONS];
		if (!region->ops->mmap ||
		    !(region->flags & VFIO_REGION_INFO_FLAG_MMAP))
			return -EINVAL;
		return region->ops->mmap(vdev, region, vma);
	}
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (index >= VFIO_PCI_ROM_REGION_INDEX)
		return -EINVAL;
	const struct vfio_pci_bar *bar = &vdev->bars[index];
	if (!bar->size || !bar->mmap)
		return -EINVAL;

	req_len = vma->vm_end - vma->vm_start;
	pgoff = vma->vm_pgoff &
		((1UL << (VFIO_PCI_OFFSET_SHIFT - PAGE_SHIFT)) - 1);
	req_start = pgoff << PAGE_SHIFT;
	if (req_start + req_len < req_start ||
	    req_start + req_len > ((bar->size + PAGE_SIZE - 1) & PAGE_MASK))
		return -EINVAL;

	vfio_vma_set_backing(vma, bar->memfd.get(),
			     static_cast<off_t>(req_start));
	/* Device memory: DMA through the IOMMU reaches it as P2P. */
	vma->vm_flags |= VM_IO | VM_PFNMAP;
	vma->vm_ops = &vfio_pci_mmap_ops;
	vma->vm_private_data = vdev;
	return 0;
}
