// SPDX-License-Identifier: GPL-2.0-only
/*
 * pci_core's binding to the simulated DMA function: the hooks pci_core
 * calls (BAR0, bus master, FLR) and the bus the function's engine uses
 * (DMA through the IOMMU, MSI-X to eventfds, log lines under the PCI
 * function's name, fault points). sim/ knows nothing of the core; this
 * file is where the two meet.
 */
#include <uvfio/linux/device.h>
#include <uvfio/linux/fault-inject.h>
#include <uvfio/linux/vfio_pci_simdev.h>

/*
 * The function's fault points live in the core's registry, so they are
 * declared here, on the driver side of its bus.
 */
DECLARE_FAULT_POINT(simdev_load_state, SIMDEV_FAULT_LOAD_STATE, EIO,
		    "the simulated function refuses to load a device state")

namespace {

struct simdev *to_simdev(struct vfio_pci_core_device *core)
{
	return static_cast<struct simdev *>(core->hw_data);
}

void simdev_hw_bar_rw(struct vfio_pci_core_device *core, int bar, u64 off,
		      void *buf, size_t count, bool iswrite)
{
	struct simdev *sd = to_simdev(core);

	if (bar == 0 && iswrite)
		simdev_bar0_write(sd, off, buf, count);
	else if (bar == 0)
		simdev_bar0_read(sd, off, buf, count);
	else if (iswrite)	/* BAR2: device memory, seen by its tracker */
		simdev_mem_write(sd, off, buf, count);
	else
		simdev_mem_read(sd, off, buf, count);
}

void simdev_hw_set_bus_master(struct vfio_pci_core_device *core, bool on)
{
	simdev_set_bus_master(to_simdev(core), on);
}

void simdev_hw_flr(struct vfio_pci_core_device *core)
{
	simdev_reset(to_simdev(core));
}

/* Device memory the CPU can store to: the function must see the stores. */
void simdev_hw_user_mapped(struct vfio_pci_core_device *core, int bar, u64 off,
			   void *addr, u64 len, bool writable)
{
	if (bar == 2 && writable)
		simdev_mem_user_mapped(to_simdev(core), addr, off, len);
}

const struct vfio_pci_hw_ops simdev_hw_ops = {
	.bar_rw = simdev_hw_bar_rw,
	.set_bus_master = simdev_hw_set_bus_master,
	.flr = simdev_hw_flr,
	.user_mapped = simdev_hw_user_mapped,
};

int simdev_bus_dma_rw(void *opaque, u64 iova, void *buf, size_t len,
		      bool write)
{
	auto *core = static_cast<struct vfio_pci_core_device *>(opaque);
	int ret = vfio_dma_rw(&core->vdev, iova, buf, len, write);
	/* No container is no translation: to the device, a fault. */
	return ret == -EINVAL ? -EFAULT : ret;
}

void simdev_bus_msix(void *opaque, u32 vector)
{
	auto *core = static_cast<struct vfio_pci_core_device *>(opaque);
	/* No trigger for the vector: the message is lost, as with MSI-X
	 * disabled on real hardware. */
	vfio_pci_core_signal_msix(core, vector);
}

/* The function's log lines, prefixed with the PCI function's name. */
void simdev_bus_log(void *opaque, int level, const char *msg)
{
	auto *core = static_cast<struct vfio_pci_core_device *>(opaque);
	uvfio_dev_printk(level, &core->pdev->dev, "%s", msg);
}

int simdev_bus_should_fail(void *, const char *point)
{
	return should_fail(point);
}

} // namespace

void vfio_pci_simdev_describe(struct vfio_pci_core_device *core,
			      struct simdev *sd, u64 mem_size, u32 msix)
{
	core->msix_count = msix;
	core->msix_bar = 0;
	core->msix_table_offset = SIMDEV_MSIX_TABLE_OFFSET;
	core->msix_pba_offset = SIMDEV_MSIX_PBA_OFFSET;
	core->bars[0].size = SIMDEV_BAR0_SIZE;
	core->bars[0].regs = true;
	core->bars[2].size = mem_size;
	core->bars[2].mmap = true;
	core->bars[2].regs = true;
	core->bars[2].is_64 = true;
	core->bars[2].prefetch = true;
	core->hw_ops = &simdev_hw_ops;
	core->hw_data = sd;
	sd->name = dev_name(&core->pdev->dev);
	sd->mem_size = mem_size;
	sd->msix_count = msix;
}

int vfio_pci_simdev_start(struct vfio_pci_core_device *core,
			  struct simdev *sd)
{
	sd->mem = core->bars[2].map;
	sd->bus.dma_rw = simdev_bus_dma_rw;
	sd->bus.msix = simdev_bus_msix;
	sd->bus.log = simdev_bus_log;
	sd->bus.should_fail = simdev_bus_should_fail;
	sd->bus.opaque = core;
	return simdev_init(sd);
}

void vfio_pci_simdev_stop(struct simdev *sd)
{
	simdev_exit(sd);
}
