/* SPDX-License-Identifier: GPL-2.0-only */
/* pci_core internals shared between its files (not for variant drivers). */
#ifndef UVFIO_DRIVERS_VFIO_PCI_PRIV_H
#define UVFIO_DRIVERS_VFIO_PCI_PRIV_H

#include <uvfio/linux/vfio_pci_core.h>

/* Build perm_virt/perm_write from the function's layout (register time). */
void vfio_pci_init_perm_bits(struct vfio_pci_core_device *vdev);
/* Load vconfig from the function (open time). Under igate. */
void vfio_config_init(struct vfio_pci_core_device *vdev);

/*
 * A user access to config space, wholly inside it. Under igate. Write
 * returns true when the user asked for a function-level reset (Initiate
 * FLR), which the caller performs once igate is dropped.
 */
void vfio_pci_config_read(struct vfio_pci_core_device *vdev, u32 off,
			  void *buf, size_t count);
bool vfio_pci_config_write(struct vfio_pci_core_device *vdev, u32 off,
			   const void *buf, size_t count);

/*
 * What the PCI core saves around a function reset and writes back after
 * it (pci_save_state/pci_restore_state): the standard header and the
 * control registers of the capabilities.
 */
struct vfio_pci_saved_state {
	u8 header[64];
	u16 pm_ctrl;
	u16 msix_flags;
	u16 exp_devctl;
	u16 exp_devctl2;
};
void vfio_pci_save_state(struct vfio_pci_core_device *vdev,
			 struct vfio_pci_saved_state *st);
void vfio_pci_restore_state(struct vfio_pci_core_device *vdev,
			    const struct vfio_pci_saved_state *st);

#endif /* UVFIO_DRIVERS_VFIO_PCI_PRIV_H */
