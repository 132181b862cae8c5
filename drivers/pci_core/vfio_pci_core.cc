// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-pci-core for simulated functions: the PCI device uAPI (info, regions,
 * interrupts, reset) that every variant driver shares.
 */
#include <cerrno>
#include <climits>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>
#include <utility>

#include <uvfio/linux/slab.h>
#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio_pci_core.h>

#include "vfio_pci_priv.h"

static struct vfio_pci_core_device *to_core(struct vfio_device *core_vdev)
{
	return container_of(core_vdev, struct vfio_pci_core_device, vdev);
}

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
static void vfio_pci_core_sync_command(struct vfio_pci_core_device *vdev)
{
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

/* -------- the core's v1 migration region, as a device-specific region -------- */

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
static int vfio_pci_core_add_mig_v1(struct vfio_pci_core_device *vdev)
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

/* -------- interrupts -------- */

static void irq_ctx_put(struct vfio_pci_irq_ctx *ctx)
{
	ctx->trigger.reset();
}

static void irq_ctx_signal(struct vfio_pci_irq_ctx *ctx)
{
	u64 one = 1;
	if (ctx->trigger.is_valid() &&
	    write(ctx->trigger.get(), &one, sizeof(one)) < 0) {
		/* An eventfd only fails at its counter limit: the user is not
		 * reading it; the interrupt is already pending. */
	}
}

/* Is fd an open eventfd? 0, -EBADF (not open) or -EINVAL (not an eventfd). */
static int irq_check_eventfd(int fd)
{
	char link[64], target[64];
	std::snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return -EBADF;
	target[n] = '\0';
	return std::strcmp(target, "anon_inode:[eventfd]") ? -EINVAL : 0;
}

/*
 * Take a reference to the user's eventfd, as eventfd_ctx_fdget: a dup the
 * core owns. Callers check every fd of a request with irq_check_eventfd()
 * before taking any, so a dup cannot land on a number still to be checked.
 */
static int irq_ctx_fdget(int fd, struct vfio_pci_irq_ctx *out)
{
	int ret = irq_check_eventfd(fd);
	if (ret)
		return ret;
	int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0)
		return -errno;
	out->trigger.reset(dup_fd);
	return 0;
}

static u32 vfio_pci_get_irq_count(struct vfio_pci_core_device *vdev,
				  u32 irq_type)
{
	switch (irq_type) {
	case VFIO_PCI_INTX_IRQ_INDEX:
		return vdev->has_intx ? 1 : 0;
	case VFIO_PCI_MSI_IRQ_INDEX:
		return 0;	/* no MSI capability: MSI-X only */
	case VFIO_PCI_MSIX_IRQ_INDEX:
		return vdev->msix_count;
	case VFIO_PCI_ERR_IRQ_INDEX:
		return vdev->is_pcie ? 1 : 0;
	case VFIO_PCI_REQ_IRQ_INDEX:
		return 1;
	default:
		return 0;
	}
}

/* Under igate and irq_lock. */
static void __vfio_pci_irq_disable_all(struct vfio_pci_core_device *vdev)
{
	irq_ctx_put(&vdev->intx);
	for (auto &ctx : vdev->msix)
		irq_ctx_put(&ctx);
	vdev->msix.clear();
	vdev->intx_masked = false;
	vdev->intx_pending = false;
	vdev->irq_type = VFIO_PCI_NUM_IRQS;
}

/* Under igate. */
static void vfio_pci_irq_disable_all(struct vfio_pci_core_device *vdev)
{
	std::lock_guard<std::mutex> g(vdev->irq_lock);
	__vfio_pci_irq_disable_all(vdev);
}

static int vfio_pci_set_intx_trigger(struct vfio_pci_core_device *vdev,
				     u32 start, u32 count, u32 flags,
				     void *data)
{
	bool is_intx = vdev->irq_type == VFIO_PCI_INTX_IRQ_INDEX;
	bool is_none = vdev->irq_type == VFIO_PCI_NUM_IRQS;

	if (is_intx && !count && (flags & VFIO_IRQ_SET_DATA_NONE)) {
		__vfio_pci_irq_disable_all(vdev);
		return 0;
	}
	if (!(is_intx || is_none) || start != 0 || count != 1)
		return -EINVAL;

	if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
		s32 fd = *static_cast<s32 *>(data);
		struct vfio_pci_irq_ctx ctx;
		/* A negative fd enables INTx with no trigger attached. */
		if (fd >= 0) {
			int ret = irq_ctx_fdget(fd, &ctx);
			if (ret)
				return ret;
		}
		vdev->intx = std::move(ctx);
		vdev->irq_type = VFIO_PCI_INTX_IRQ_INDEX;
		return 0;
	}

	if (!is_intx)
		return -EINVAL;
	/*
	 * Loopback signals the eventfd directly: masking and automasking
	 * belong to the interrupt line, which a loopback does not go through.
	 */
	if ((flags & VFIO_IRQ_SET_DATA_NONE) ||
	    ((flags & VFIO_IRQ_SET_DATA_BOOL) && *static_cast<u8 *>(data)))
		irq_ctx_signal(&vdev->intx);
	return 0;
}

static int vfio_pci_set_intx_mask(struct vfio_pci_core_device *vdev,
				  u32 start, u32 count, u32 flags, void *data,
				  bool mask)
{
	if (vdev->irq_type != VFIO_PCI_INTX_IRQ_INDEX || start != 0 ||
	    count != 1)
		return -EINVAL;
	if (flags & VFIO_IRQ_SET_DATA_EVENTFD)
		return -ENOTTY;	/* masking through an eventfd: not modelled */
	bool act = (flags & VFIO_IRQ_SET_DATA_NONE) ||
		   ((flags & VFIO_IRQ_SET_DATA_BOOL) && *static_cast<u8 *>(data));
	if (!act)
		return 0;
	if (mask) {
		vdev->intx_masked = true;
	} else {
		/*
		 * A level interrupt still asserted fires again at once: it is
		 * re-sent and INTx stays (auto)masked.
		 */
		if (vdev->intx_pending) {
			vdev->intx_pending = false;
			irq_ctx_signal(&vdev->intx);
		} else {
			vdev->intx_masked = false;
		}
	}
	return 0;
}

static int vfio_pci_set_msix_trigger(struct vfio_pci_core_device *vdev,
				     u32 start, u32 count, u32 flags,
				     void *data)
{
	bool is_msix = vdev->irq_type == VFIO_PCI_MSIX_IRQ_INDEX;
	bool is_none = vdev->irq_type == VFIO_PCI_NUM_IRQS;

	if (is_msix && !count && (flags & VFIO_IRQ_SET_DATA_NONE)) {
		__vfio_pci_irq_disable_all(vdev);
		return 0;
	}
	if (!(is_msix || is_none))
		return -EINVAL;

	if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
		s32 *fds = static_cast<s32 *>(data);
		std::vector<struct vfio_pci_irq_ctx> fresh(count);
		/* Check every fd, then take them all: all or nothing. */
		for (u32 i = 0; i < count; i++) {
			if (fds[i] < 0)
				continue;	/* negative: unassign the vector */
			int ret = irq_check_eventfd(fds[i]);
			if (ret)
				return ret;
		}
		for (u32 i = 0; i < count; i++) {
			if (fds[i] < 0)
				continue;
			int ret = irq_ctx_fdget(fds[i], &fresh[i]);
			if (ret) {
				for (auto &c : fresh)
					irq_ctx_put(&c);
				return ret;
			}
		}
		if (!is_msix) {
			vdev->msix.clear();
			vdev->msix.resize(vdev->msix_count);
		}
		for (u32 i = 0; i < count; i++)
			vdev->msix[start + i] = std::move(fresh[i]);
		vdev->irq_type = VFIO_PCI_MSIX_IRQ_INDEX;
		return 0;
	}

	if (!is_msix)
		return -EINVAL;
	for (u32 i = start; i < start + count; i++) {
		if ((flags & VFIO_IRQ_SET_DATA_NONE) ||
		    ((flags & VFIO_IRQ_SET_DATA_BOOL) &&
		     static_cast<u8 *>(data)[i - start]))
			irq_ctx_signal(&vdev->msix[i]);
	}
	return 0;
}

/* ERR and REQ: a single eventfd each, with loopback triggers. */
static int vfio_pci_set_ctx_trigger_single(struct vfio_pci_irq_ctx *ctx,
					   u32 count, u32 flags, void *data)
{
	if (flags & VFIO_IRQ_SET_DATA_NONE) {
		/* Loopback or disable needs a trigger to act on. */
		if (!ctx->trigger.is_valid())
			return -EINVAL;
		if (count)
			irq_ctx_signal(ctx);
		else
			irq_ctx_put(ctx);
		return 0;
	}
	if (flags & VFIO_IRQ_SET_DATA_BOOL) {
		if (!count)
			return -EINVAL;
		if (*static_cast<u8 *>(data) && ctx->trigger.is_valid())
			irq_ctx_signal(ctx);
		return 0;
	}
	if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
		if (!count)
			return -EINVAL;
		s32 fd = *static_cast<s32 *>(data);
		if (fd == -1) {
			irq_ctx_put(ctx);
			return 0;
		}
		if (fd < 0)
			return 0;	/* other negatives leave the trigger as is */
		struct vfio_pci_irq_ctx fresh;
		int ret = irq_ctx_fdget(fd, &fresh);
		if (ret)
			return ret;
		*ctx = std::move(fresh);
		return 0;
	}
	return -EINVAL;
}

static int vfio_pci_set_irqs_ioctl(struct vfio_pci_core_device *vdev,
				   u32 flags, u32 index, u32 start, u32 count,
				   void *data)
{
	u32 action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;

	switch (index) {
	case VFIO_PCI_INTX_IRQ_INDEX:
		switch (action) {
		case VFIO_IRQ_SET_ACTION_MASK:
			return vfio_pci_set_intx_mask(vdev, start, count, flags,
						      data, true);
		case VFIO_IRQ_SET_ACTION_UNMASK:
			return vfio_pci_set_intx_mask(vdev, start, count, flags,
						      data, false);
		case VFIO_IRQ_SET_ACTION_TRIGGER:
			return vfio_pci_set_intx_trigger(vdev, start, count,
							 flags, data);
		}
		break;
	case VFIO_PCI_MSIX_IRQ_INDEX:
		/* MSI-X masking is done in the vector table, not here. */
		if (action == VFIO_IRQ_SET_ACTION_TRIGGER)
			return vfio_pci_set_msix_trigger(vdev, start, count,
							 flags, data);
		break;
	case VFIO_PCI_ERR_IRQ_INDEX:
		if (action == VFIO_IRQ_SET_ACTION_TRIGGER && vdev->is_pcie)
			return vfio_pci_set_ctx_trigger_single(
				&vdev->err_trigger, count, flags, data);
		break;
	case VFIO_PCI_REQ_IRQ_INDEX:
		if (action == VFIO_IRQ_SET_ACTION_TRIGGER)
			return vfio_pci_set_ctx_trigger_single(
				&vdev->req_trigger, count, flags, data);
		break;
	}
	return -ENOTTY;
}

int vfio_pci_core_signal_msix(struct vfio_pci_core_device *vdev, u32 vector)
{
	std::lock_guard<std::mutex> g(vdev->irq_lock);
	if (vdev->irq_type != VFIO_PCI_MSIX_IRQ_INDEX ||
	    vector >= vdev->msix.size() || !vdev->msix[vector].trigger.is_valid())
		return -EINVAL;
	irq_ctx_signal(&vdev->msix[vector]);
	return 0;
}

/* Called with igate held or from the SET_IRQS path (which holds it). */
static int __vfio_pci_core_signal_intx(struct vfio_pci_core_device *vdev)
{
	if (vdev->irq_type != VFIO_PCI_INTX_IRQ_INDEX ||
	    !vdev->intx.trigger.is_valid())
		return -EINVAL;
	if (vdev->intx_masked) {
		vdev->intx_pending = true;
		return 0;
	}
	irq_ctx_signal(&vdev->intx);
	/* Level-triggered and automasked: masked until the user unmasks. */
	vdev->intx_masked = true;
	return 0;
}

int vfio_pci_core_signal_intx(struct vfio_pci_core_device *vdev)
{
	if (mutex_is_locked_by_me(&vdev->igate))
		return __vfio_pci_core_signal_intx(vdev);
	mutex_guard g(&vdev->igate);
	return __vfio_pci_core_signal_intx(vdev);
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
	irq_ctx_put(&vdev->err_trigger);
	irq_ctx_put(&vdev->req_trigger);
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
		irq_ctx_signal(&vdev->req_trigger);
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
	irq_ctx_signal(&vdev->err_trigger);
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
static int vfio_pci_core_flr_reset(struct vfio_device *core_vdev)
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

/* -------- region access -------- */

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
	return 0;
}
