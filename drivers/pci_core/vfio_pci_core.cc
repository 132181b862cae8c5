// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-pci-core for simulated functions, the part every variant driver
 * shares: the device's lifetime (init, register, release), open and close,
 * reset, and the device ioctls (info, region and IRQ info, SET_IRQS, which
 * vfio_pci_intrs.cc carries out). Region access is vfio_pci_rdwr.cc,
 * config virtualization vfio_pci_config.cc, the v1 migration region
 * vfio_pci_mig_v1.cc.
 */
#include <cerrno>
#include <algorithm>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <uvfio/linux/slab.h>
#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio_pci_core.h>

#include "vfio_pci_priv.h"

/* -------- lifetime -------- */

int vfio_pci_core_init_dev(struct vfio_device *core_vdev)
{
	struct vfio_pci_core_device *vdev = to_core(core_vdev);

	vdev->pdev = container_of(core_vdev->dev, struct pci_dev, dev);
	mutex_init(&vdev->igate);
	return 0;
}

static void vfio_pci_core_free_bars(struct vfio_pci_core_device *vdev)
{
	for (auto &bar : vdev->bars) {
		if (bar.map)
			munmap(bar.map, bar.size);
		bar.map = nullptr;
		bar.memfd.reset();
	}
}

/* Give back the device-specific regions (release, or a failed register). */
static void vfio_pci_core_free_dev_regions(struct vfio_pci_core_device *vdev)
{
	for (auto &region : vdev->region)
		if (region.ops->release)
			region.ops->release(vdev, &region);
	vdev->region.clear();
	vdev->num_regions = 0;
}

void vfio_pci_core_release_dev(struct vfio_device *core_vdev)
{
	struct vfio_pci_core_device *vdev = to_core(core_vdev);

	vfio_pci_core_free_dev_regions(vdev);
	vfio_pci_core_free_bars(vdev);
	mutex_destroy(&vdev->igate);
}

/*
 * Tell the device model what the command register now says about bus
 * mastering. Under igate, after anything that may change it.
 */
void vfio_pci_core_sync_command(struct vfio_pci_core_device *vdev)
{
	vdev->mem_decode.store(sim_pci_config_mem_enabled(&vdev->config),
			       std::memory_order_release);
	bool on = sim_pci_config_bus_master(&vdev->config);
	if (on == vdev->bus_master)
		return;
	vdev->bus_master = on;
	if (vdev->hw_ops)
		vdev->hw_ops->set_bus_master(vdev, on);
}

/* Function reset, as seen by the device model. Under igate. */
static void vfio_pci_core_flr_hook(struct sim_pci_config *, void *arg)
{
	auto *vdev = static_cast<struct vfio_pci_core_device *>(arg);

	/* The reset image has bus mastering off: no DMA from here on. */
	vfio_pci_core_sync_command(vdev);
	if (vdev->hw_ops) {
		vdev->hw_ops->flr(vdev);
		return;
	}
	/* Registers reset; device memory (BAR2 and up) keeps content. */
	if (vdev->bars[0].map)
		std::memset(vdev->bars[0].map, 0, vdev->bars[0].size);
}

/* Build the simulated function's config space from the description. */
static int vfio_pci_core_init_config(struct vfio_pci_core_device *vdev)
{
	struct sim_pci_config_desc desc;

	desc.vendor_id = vdev->vendor_id;
	desc.device_id = vdev->device_id;
	desc.subsys_vendor_id = vdev->vendor_id;
	desc.subsys_id = vdev->device_id;
	desc.class_code = 0x020000;	/* network controller */
	desc.has_intx = vdev->has_intx;
	for (int i = 0; i < PCI_STD_NUM_BARS; i++) {
		desc.bars[i].size = vdev->bars[i].size;
		desc.bars[i].is_64 = vdev->bars[i].is_64;
		desc.bars[i].prefetch = vdev->bars[i].prefetch;
	}
	/* 0x40-0x4f: device-specific registers (scratch for the driver). */
	desc.dev_specific_end = 0x50;
	desc.msix_count = vdev->msix_count;
	desc.msix_table_bar = vdev->msix_bar;
	desc.msix_pba_bar = vdev->msix_bar;
	desc.msix_table_offset = vdev->msix_table_offset;
	desc.msix_pba_offset = vdev->msix_pba_offset;
	if (vdev->msix_count && !vdev->msix_pba_offset)
		desc.msix_pba_offset = (vdev->msix_table_offset +
					16 * vdev->msix_count + 7) & ~7u;
	desc.is_pcie = vdev->is_pcie;

	int ret = sim_pci_config_init(&vdev->config, &desc);
	if (ret)
		return ret;
	vfio_pci_init_perm_bits(vdev);
	vdev->config.reset_hook = vfio_pci_core_flr_hook;
	vdev->config.hook_arg = vdev;
	return 0;
}

int vfio_pci_core_register_dev_region(struct vfio_pci_core_device *vdev,
				      unsigned int type, unsigned int subtype,
				      const struct vfio_pci_regops *ops,
				      size_t size, u32 flags, void *data)
{
	if (!ops || !ops->rw)
		return -EINVAL;
	try {
		vdev->region.push_back({type, subtype, ops, data, size, flags});
	} catch (...) {
		return -ENOMEM;
	}
	vdev->num_regions = static_cast<u32>(vdev->region.size());
	return 0;
}

/*
 * A device's memory exists from power-on, as hardware's does: allocate it
 * at creation, so that the first write into it (a resume, a guest's DMA)
 * is not a page fault per page. Best effort, and only while it takes at
 * most a quarter of the machine's free memory: a BAR of many GiB (a
 * sizing test) is allocated as it is touched instead.
 */
static void vfio_pci_core_populate_bar(struct vfio_pci_bar *bar)
{
	struct sysinfo si;

	if (sysinfo(&si) ||
	    bar->size > static_cast<u64>(si.freeram) * si.mem_unit / 4)
		return;
	if (madvise(bar->map, bar->size, MADV_POPULATE_WRITE)) {
		/* Older kernels: the device faults its memory in as used. */
	}
}

int vfio_pci_core_register_device(struct vfio_pci_core_device *vdev)
{
	int ret;

	if (!vdev->pdev)
		return -EINVAL;

	for (int i = 0; i < PCI_STD_NUM_BARS; i++) {
		struct vfio_pci_bar *bar = &vdev->bars[i];
		if (!bar->size)
			continue;
		/* A BAR is a power of two of at least a page. */
		if (bar->size < PAGE_SIZE || (bar->size & (bar->size - 1))) {
			dev_err(&vdev->pdev->dev,
				"BAR%d size %#llx is not a power of two >= 4K",
				i, (unsigned long long)bar->size);
			ret = -EINVAL;
			goto err_free;
		}
		if (bar->regs) {
			/* Accesses go to the model, which needs its hooks. */
			if (!vdev->hw_ops) {
				ret = -EINVAL;
				goto err_free;
			}
			/* Registers only: no memory behind the BAR. */
			if (!bar->mmap)
				continue;
		}
		std::string name = std::string(pci_name(vdev->pdev)) + "-bar" +
				   std::to_string(i);
		bar->memfd.reset(memfd_create(name.c_str(), MFD_CLOEXEC));
		if (!bar->memfd.is_valid() ||
		    ftruncate(bar->memfd.get(), bar->size)) {
			ret = -errno;
			goto err_free;
		}
		void *map = mmap(nullptr, bar->size, PROT_READ | PROT_WRITE,
				 MAP_SHARED, bar->memfd.get(), 0);
		if (map == MAP_FAILED) {
			ret = -errno;
			goto err_free;
		}
		bar->map = static_cast<u8 *>(map);
		vfio_pci_core_populate_bar(bar);
	}
	ret = vfio_pci_core_init_config(vdev);
	if (ret) {
		dev_err(&vdev->pdev->dev,
			"the hardware description does not fit config space");
		goto err_free;
	}

	ret = vfio_pci_core_add_mig_v1(vdev);
	if (ret) {
		dev_err(&vdev->pdev->dev,
			"cannot set up the v1 migration region: %s",
			strerror(-ret));
		goto err_free;
	}

	ret = vfio_register_group_dev(&vdev->vdev);
	if (ret)
		goto err_free;
	return 0;

err_free:
	/* Balances the regions, memfds and mappings made above. */
	vfio_pci_core_free_dev_regions(vdev);
	vfio_pci_core_free_bars(vdev);
	return ret;
}

void vfio_pci_core_unregister_device(struct vfio_pci_core_device *vdev)
{
	vfio_unregister_group_dev(&vdev->vdev);
}

/* -------- open / close -------- */

/* What pci_enable_device leaves in the command register at open. */
static void vfio_pci_core_enable_command(struct vfio_pci_core_device *vdev)
{
	sim_pci_config_set_command(&vdev->config, SIM_PCI_COMMAND_MEMORY,
				   SIM_PCI_COMMAND_MASTER);
}

int vfio_pci_core_enable(struct vfio_pci_core_device *vdev)
{
	mutex_guard g(&vdev->igate);
	vfio_pci_irq_disable_all(vdev);
	/*
	 * As vfio_pci_core_enable resets the function before a new user
	 * gets it: nothing the last user programmed (a ring, a DMA address)
	 * survives into this open.
	 */
	if (vdev->reset_works)
		sim_pci_config_flr(&vdev->config);
	vfio_pci_core_enable_command(vdev);
	vfio_pci_core_sync_command(vdev);
	vfio_config_init(vdev);
	return 0;
}

void vfio_pci_core_finish_enable(struct vfio_pci_core_device *) {}

void vfio_pci_core_close_device(struct vfio_device *core_vdev)
{
	struct vfio_pci_core_device *vdev = to_core(core_vdev);

	mutex_guard g(&vdev->igate);
	vfio_pci_irq_disable_all(vdev);
	vfio_pci_irq_ctx_put(&vdev->err_trigger);
	vfio_pci_irq_ctx_put(&vdev->req_trigger);
	/* pci_disable_device: no more DMA or memory decoding. */
	sim_pci_config_set_command(&vdev->config, 0,
				   SIM_PCI_COMMAND_MEMORY |
					   SIM_PCI_COMMAND_MASTER);
	vfio_pci_core_sync_command(vdev);
	/* And reset, as vfio_pci_core_disable does when it can. */
	if (vdev->reset_works)
		sim_pci_config_flr(&vdev->config);
}

void vfio_pci_core_request(struct vfio_device *core_vdev, unsigned int count)
{
	struct vfio_pci_core_device *vdev = to_core(core_vdev);

	mutex_guard g(&vdev->igate);
	if (vdev->req_trigger.trigger.is_valid()) {
		if (!(count % 10))
			dev_info(&vdev->pdev->dev,
				 "Relaying device request to user (#%u)", count);
		vfio_pci_irq_ctx_signal(&vdev->req_trigger);
	} else if (count == 0) {
		dev_warn(&vdev->pdev->dev,
			 "No device request channel registered, blocked until "
			 "released by user");
	}
}

/* -------- reset -------- */

/* One handler's reset_done, in whichever form it was given. */
static void vfio_pci_call_reset_done(struct vfio_pci_core_device *vdev,
				     const struct pci_error_handlers *h)
{
	if (!h || !h->reset_done)
		return;
	if (h->reset_done.core_fn)
		h->reset_done.core_fn(vdev);	/* compatibility path */
	else
		h->reset_done(vdev->pdev);
}

/*
 * After a function reset, as the kernel's pci_dev_restore() does:
 * pdev->driver->err_handler->reset_done(pdev). Then, for drivers still on
 * uvfio's older path (vfio_pci_core_device.err_handler, reset_done taking
 * the core device), that handler, unless it is the same table.
 */
static void vfio_pci_core_reset_done(struct vfio_pci_core_device *vdev)
{
	const struct pci_error_handlers *drv_h =
		vdev->pdev && vdev->pdev->driver ? vdev->pdev->driver->err_handler
						 : nullptr;

	vfio_pci_call_reset_done(vdev, drv_h);
	if (vdev->err_handler != drv_h)
		vfio_pci_call_reset_done(vdev, vdev->err_handler);
}

/*
 * The kernel's error_detected for vfio-pci devices: tell the user through
 * the ERR eventfd. uvfio has no AER, so nothing calls it yet; variant
 * drivers put it in their pci_error_handlers as in the kernel.
 */
pci_ers_result_t vfio_pci_core_aer_err_detected(struct pci_dev *pdev,
						pci_channel_state_t)
{
	auto *vdev = static_cast<struct vfio_pci_core_device *>(
		dev_get_drvdata(&pdev->dev));

	if (!vdev)
		return PCI_ERS_RESULT_DISCONNECT;
	mutex_guard g(&vdev->igate);
	vfio_pci_irq_ctx_signal(&vdev->err_trigger);
	return PCI_ERS_RESULT_CAN_RECOVER;
}

/*
 * A function-level reset as pci_try_reset_function does it: save the
 * config state, reset the function, restore the state, then tell the
 * variant driver. What the reset clears for good is the device's own
 * state (registers behind the BARs, error bits, device-specific config);
 * the user's vconfig is untouched.
 */
static void vfio_pci_core_function_reset(struct vfio_pci_core_device *vdev)
{
	{
		mutex_guard g(&vdev->igate);
		struct vfio_pci_saved_state st;
		vfio_pci_save_state(vdev, &st);
		sim_pci_config_flr(&vdev->config);
		vfio_pci_restore_state(vdev, &st);
		vfio_pci_core_sync_command(vdev);
		vdev->resets++;
	}
	vfio_pci_core_reset_done(vdev);
}

/* The reset a config write of Initiate FLR asks for. */
int vfio_pci_core_flr_reset(struct vfio_device *core_vdev)
{
	vfio_pci_core_function_reset(to_core(core_vdev));
	return 0;
}

int vfio_pci_core_reset(struct vfio_pci_core_device *vdev)
{
	if (!vdev->reset_works)
		return -EINVAL;
	vfio_pci_core_function_reset(vdev);
	return 0;
}

/* -------- ioctls -------- */

static long vfio_pci_ioctl_get_info(struct vfio_pci_core_device *vdev,
				    struct vfio_device_info __user *arg)
{
	size_t minsz = offsetofend(struct vfio_device_info, num_irqs);
	struct vfio_device_info info = {};

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;

	info.flags = VFIO_DEVICE_FLAGS_PCI;
	if (vdev->reset_works)
		info.flags |= VFIO_DEVICE_FLAGS_RESET;
	info.num_regions = VFIO_PCI_NUM_REGIONS + vdev->num_regions;
	info.num_irqs = VFIO_PCI_NUM_IRQS;
	info.cap_offset = 0;	/* no capabilities */

	/* Fields past num_irqs go back too when the caller has room. */
	minsz = std::min<size_t>(info.argsz, sizeof(info));
	if (copy_to_user(arg, &info, minsz))
		return -EFAULT;
	return 0;
}

/* A device-specific region: its type capability, then its own. */
static int vfio_pci_dev_region_info(struct vfio_pci_core_device *vdev,
				    struct vfio_region_info *info,
				    struct vfio_info_cap *caps)
{
	struct vfio_region_info_cap_type cap_type = {};
	struct vfio_pci_region *region;
	int ret;

	if (info->index >= VFIO_PCI_NUM_REGIONS + vdev->num_regions)
		return -EINVAL;
	region = &vdev->region[info->index - VFIO_PCI_NUM_REGIONS];
	info->offset = VFIO_PCI_INDEX_TO_OFFSET(info->index);
	info->size = region->size;
	info->flags = region->flags;

	cap_type.header.id = VFIO_REGION_INFO_CAP_TYPE;
	cap_type.header.version = 1;
	cap_type.type = region->type;
	cap_type.subtype = region->subtype;
	ret = vfio_info_add_capability(caps, &cap_type.header,
				       sizeof(cap_type));
	if (ret)
		return ret;
	if (region->ops->add_capability)
		ret = region->ops->add_capability(vdev, region, caps);
	return ret;
}

int vfio_pci_core_get_region_info_caps(struct vfio_device *core_vdev,
				       struct vfio_region_info *info,
				       struct vfio_info_cap *caps)
{
	struct vfio_pci_core_device *vdev = to_core(core_vdev);

	switch (info->index) {
	case VFIO_PCI_CONFIG_REGION_INDEX:
		info->offset = VFIO_PCI_INDEX_TO_OFFSET(info->index);
		info->size = PCI_CFG_SPACE_EXP_SIZE;
		info->flags = VFIO_REGION_INFO_FLAG_READ |
			      VFIO_REGION_INFO_FLAG_WRITE;
		return 0;
	case VFIO_PCI_BAR0_REGION_INDEX ... VFIO_PCI_BAR5_REGION_INDEX: {
		const struct vfio_pci_bar *bar = &vdev->bars[info->index];
		info->offset = VFIO_PCI_INDEX_TO_OFFSET(info->index);
		info->size = bar->size;
		if (!bar->size) {
			info->flags = 0;
			return 0;
		}
		info->flags = VFIO_REGION_INFO_FLAG_READ |
			      VFIO_REGION_INFO_FLAG_WRITE;
		if (bar->mmap)
			info->flags |= VFIO_REGION_INFO_FLAG_MMAP;
		return 0;
	}
	case VFIO_PCI_VGA_REGION_INDEX:
		return -EINVAL;	/* the function is not a VGA device */
	case VFIO_PCI_ROM_REGION_INDEX:
		/* No option ROM: size 0, no access. */
		info->offset = VFIO_PCI_INDEX_TO_OFFSET(info->index);
		info->size = 0;
		info->flags = 0;
		return 0;
	default:
		return vfio_pci_dev_region_info(vdev, info, caps);
	}
}

static long vfio_pci_ioctl_get_irq_info(struct vfio_pci_core_device *vdev,
					struct vfio_irq_info __user *arg)
{
	size_t minsz = offsetofend(struct vfio_irq_info, count);
	struct vfio_irq_info info;

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz || info.index >= VFIO_PCI_NUM_IRQS)
		return -EINVAL;

	switch (info.index) {
	case VFIO_PCI_INTX_IRQ_INDEX ... VFIO_PCI_MSIX_IRQ_INDEX:
	case VFIO_PCI_REQ_IRQ_INDEX:
		break;
	case VFIO_PCI_ERR_IRQ_INDEX:
		if (vdev->is_pcie)
			break;
		[[fallthrough]];
	default:
		return -EINVAL;
	}

	info.flags = VFIO_IRQ_INFO_EVENTFD;
	info.count = vfio_pci_get_irq_count(vdev, info.index);
	if (info.index == VFIO_PCI_INTX_IRQ_INDEX)
		info.flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
	else
		info.flags |= VFIO_IRQ_INFO_NORESIZE;

	if (copy_to_user(arg, &info, minsz))
		return -EFAULT;
	return 0;
}

static long vfio_pci_ioctl_set_irqs(struct vfio_pci_core_device *vdev,
				    struct vfio_irq_set __user *arg)
{
	size_t minsz = offsetofend(struct vfio_irq_set, count);
	struct vfio_irq_set hdr;
	void *data = nullptr;
	size_t data_size = 0;
	int max, ret;

	if (copy_from_user(&hdr, arg, minsz))
		return -EFAULT;

	max = static_cast<int>(vfio_pci_get_irq_count(vdev, hdr.index));
	ret = vfio_set_irqs_validate_and_prepare(&hdr, max, VFIO_PCI_NUM_IRQS,
						 &data_size);
	if (ret)
		return ret;

	if (data_size) {
		data = memdup_user(reinterpret_cast<char *>(arg) + minsz,
				   data_size);
		if (IS_ERR(data))
			return PTR_ERR(data);
	}

	mutex_lock(&vdev->igate);
	{
		std::lock_guard<std::mutex> g(vdev->irq_lock);
		ret = vfio_pci_set_irqs_ioctl(vdev, hdr.flags, hdr.index,
					      hdr.start, hdr.count, data);
	}
	mutex_unlock(&vdev->igate);
	kfree(data);
	return ret;
}

long vfio_pci_core_ioctl(struct vfio_device *core_vdev, unsigned int cmd,
			 unsigned long arg)
{
	struct vfio_pci_core_device *vdev = to_core(core_vdev);
	void __user *uarg = reinterpret_cast<void __user *>(arg);

	switch (cmd) {
	case VFIO_DEVICE_GET_INFO:
		return vfio_pci_ioctl_get_info(
			vdev, static_cast<struct vfio_device_info *>(uarg));
	case VFIO_DEVICE_GET_IRQ_INFO:
		return vfio_pci_ioctl_get_irq_info(
			vdev, static_cast<struct vfio_irq_info *>(uarg));
	case VFIO_DEVICE_SET_IRQS:
		return vfio_pci_ioctl_set_irqs(
			vdev, static_cast<struct vfio_irq_set *>(uarg));
	case VFIO_DEVICE_RESET:
		return vfio_pci_core_reset(vdev);
	default:
		return -ENOTTY;
	}
}

int vfio_pci_core_ioctl_feature(struct vfio_device *, u32, void __user *,
				size_t)
{
	/* No PCI-specific features (VF token, low power) are modelled. */
	return -ENOTTY;
}
