// SPDX-License-Identifier: GPL-2.0-only
/*
 * The core's v1 migration region (core/vfio_migration_v1.cc), offered by
 * pci_core as a device-specific region of every device with mig_ops, so
 * that v1 clients such as QEMU 7.2 can migrate v2 drivers. uvfio-only;
 * see Documentation/migration-v1.md.
 */
#include <cstring>

#include <uvfio/linux/vfio_pci_core.h>

#include "vfio_pci_priv.h"

static ssize_t vfio_pci_mig_v1_rw(struct vfio_pci_core_device *vdev,
				  char __user *buf, size_t count, loff_t *ppos,
				  bool iswrite)
{
	u64 off = static_cast<u64>(*ppos) & VFIO_PCI_OFFSET_MASK;
	ssize_t ret = vfio_mig_v1_rw(&vdev->vdev, buf, count, off, iswrite);

	if (ret > 0)
		*ppos += ret;
	return ret;
}

static int vfio_pci_mig_v1_mmap(struct vfio_pci_core_device *vdev,
				struct vfio_pci_region *,
				struct vm_area_struct *vma)
{
	u64 pgoff = vma->vm_pgoff &
		    ((1UL << (VFIO_PCI_OFFSET_SHIFT - PAGE_SHIFT)) - 1);

	return vfio_mig_v1_mmap(&vdev->vdev, vma, pgoff << PAGE_SHIFT);
}

static int vfio_pci_mig_v1_add_capability(struct vfio_pci_core_device *vdev,
					  struct vfio_pci_region *,
					  struct vfio_info_cap *caps)
{
	return vfio_mig_v1_add_capability(&vdev->vdev, caps);
}

static const struct vfio_pci_regops vfio_pci_mig_v1_regops = {
	.rw = vfio_pci_mig_v1_rw,
	.release = nullptr,	/* the core frees its part with the device */
	.mmap = vfio_pci_mig_v1_mmap,
	.add_capability = vfio_pci_mig_v1_add_capability,
};

/*
 * The v1 migration region for a device with mig_ops, unless the spec being
 * probed says mig_v1=off (the bus has checked the value).
 */
int vfio_pci_core_add_mig_v1(struct vfio_pci_core_device *vdev)
{
	const struct uvfio_spec *spec = vdev->pdev->spec;
	const char *want = spec ? uvfio_spec_get(spec, "mig_v1") : nullptr;
	int ret;

	if (!vdev->vdev.mig_ops || (want && !std::strcmp(want, "off")))
		return 0;
	ret = vfio_mig_v1_init(&vdev->vdev);
	if (ret)
		return ret;
	return vfio_pci_core_register_dev_region(
		vdev, VFIO_REGION_TYPE_MIGRATION_DEPRECATED,
		VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED,
		&vfio_pci_mig_v1_regops, UVFIO_MIG_V1_REGION_SIZE,
		VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
			VFIO_REGION_INFO_FLAG_MMAP,
		nullptr);
}
