/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * pci_core internals shared between its files (not for variant drivers):
 * vfio_pci_core.cc (lifetime, ioctls), vfio_pci_intrs.cc (interrupts),
 * vfio_pci_rdwr.cc (region access), vfio_pci_config.cc (config space),
 * vfio_pci_mig_v1.cc (the v1 migration region).
 */
#ifndef UVFIO_DRIVERS_VFIO_PCI_PRIV_H
#define UVFIO_DRIVERS_VFIO_PCI_PRIV_H

#include <uvfio/linux/vfio_pci_core.h>

static inline struct vfio_pci_core_device *
to_core(struct vfio_device *core_vdev)
{
	return container_of(core_vdev, struct vfio_pci_core_device, vdev);
}

/* -------- vfio_pci_core.cc -------- */

/*
 * Tell the device model what the command register now says about bus
 * mastering. Under igate, after anything that may change it.
 */
void vfio_pci_core_sync_command(struct vfio_pci_core_device *vdev);
/* The reset a config write of Initiate FLR asks for (uvfio_device_reset). */
int vfio_pci_core_flr_reset(struct vfio_device *core_vdev);

/* -------- vfio_pci_mig_v1.cc -------- */

/*
 * Register the core's v1 migration region for a device with mig_ops,
 * unless its spec says mig_v1=off. 0 or -errno.
 */
int vfio_pci_core_add_mig_v1(struct vfio_pci_core_device *vdev);

/* -------- vfio_pci_intrs.cc -------- */

/* Vectors behind an IRQ index, as VFIO_DEVICE_GET_IRQ_INFO reports them. */
u32 vfio_pci_get_irq_count(struct vfio_pci_core_device *vdev, u32 irq_type);
/* SET_IRQS once its header and data are checked. Under igate and irq_lock. */
int vfio_pci_set_irqs_ioctl(struct vfio_pci_core_device *vdev, u32 flags,
			    u32 index, u32 start, u32 count, void *data);
/* Drop every INTx and MSI-X trigger. Under igate. */
void vfio_pci_irq_disable_all(struct vfio_pci_core_device *vdev);
/* Drop one trigger (the eventfd reference), or signal it if it is set. */
void vfio_pci_irq_ctx_put(struct vfio_pci_irq_ctx *ctx);
void vfio_pci_irq_ctx_signal(struct vfio_pci_irq_ctx *ctx);

/* -------- vfio_pci_config.cc -------- */

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
