/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/linux/vfio_pci_simdev.h> - pci_core bound to the simulated DMA
 * function (<uvfio/sim/simdev.h>): the hardware every sim variant driver
 * sits on. It describes the function to pci_core (BAR0 registers with the
 * MSI-X table at SIMDEV_MSIX_TABLE_OFFSET, BAR2 device memory, 64-bit,
 * prefetchable and mmap-able), routes BAR0 and resets to the model, and
 * connects the model's DMA to the device's IOMMU container (vfio_dma_rw:
 * a device with no container faults every DMA) and its MSI-X messages to
 * the user's eventfds.
 */
#ifndef UVFIO_LINUX_VFIO_PCI_SIMDEV_H
#define UVFIO_LINUX_VFIO_PCI_SIMDEV_H

#include <uvfio/linux/vfio_pci_core.h>
#include <uvfio/sim/simdev.h>

/*
 * Describe the function in core (call from the variant driver's probe,
 * before vfio_pci_core_register_device). mem_size: BAR2, a power of two
 * of at least a page; msix: vectors, at most SIMDEV_MSIX_MAX.
 */
void vfio_pci_simdev_describe(struct vfio_pci_core_device *core,
			      struct simdev *sd, u64 mem_size, u32 msix);

/* After registration: connect the model to BAR2 and start its engine. */
int vfio_pci_simdev_start(struct vfio_pci_core_device *core,
			  struct simdev *sd);
/* Before unregistration is complete: stop the engine. */
void vfio_pci_simdev_stop(struct simdev *sd);

#endif /* UVFIO_LINUX_VFIO_PCI_SIMDEV_H */
