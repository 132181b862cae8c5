// SPDX-License-Identifier: GPL-2.0-only
/*
 * dirtyfault.so - the negative control of the DMA migration test
 * (migrate.sh dma-nodirty): a driver plugin, loaded by libuvfio through
 * UVFIO_DRIVER_PATH in the process that uses it (QEMU under uvfio-run),
 * that on load arms the fault point iommu.dirty_bitmap for every hit:
 * from then on each VFIO_IOMMU_DIRTY_PAGES GET_BITMAP fails (EFAULT) and
 * reports nothing, so the VMM never learns which guest pages the device
 * wrote. uvfio-run has no way to arm a fault point from the environment;
 * a plugin's constructor is the only code of ours that runs inside the
 * preloaded process.
 *
 * The driver it registers ("dirtyfault") is the skeleton driver built
 * under that name (drivers/skeleton/skeleton.cc, linked into this module):
 * the test gives it a device of its own that QEMU never opens, only so
 * that the library loads this file.
 */
#include <stdio.h>

#include <uvfio/uvfio.h>

__attribute__((constructor)) static void dirtyfault_arm(void)
{
	if (uvfio_fault_set("iommu.dirty_bitmap", 1, 0, UVFIO_FAULT_PERSIST))
		fprintf(stderr, "dirtyfault: arming iommu.dirty_bitmap failed\n");
}
