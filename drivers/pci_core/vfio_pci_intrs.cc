// SPDX-License-Identifier: GPL-2.0-only
/*
 * pci_core's interrupts: INTx (masking, automasking, a level still
 * asserted at unmask), MSI-X and the ERR and REQ channels, each signalled
 * through an eventfd the user hands over with VFIO_DEVICE_SET_IRQS. The
 * ioctl's header is checked in vfio_pci_core.cc; the actions are here.
 * State is under igate, plus irq_lock for what a device thread reads when
 * it signals MSI-X.
 */
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <unistd.h>
#include <utility>
#include <vector>

#include <uvfio/linux/vfio_pci_core.h>

#include "vfio_pci_priv.h"

void vfio_pci_irq_ctx_put(struct vfio_pci_irq_ctx *ctx)
{
	ctx->trigger.reset();
}

void vfio_pci_irq_ctx_signal(struct vfio_pci_irq_ctx *ctx)
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

u32 vfio_pci_get_irq_count(struct vfio_pci_core_device *vdev,
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
	vfio_pci_irq_ctx_put(&vdev->intx);
	for (auto &ctx : vdev->msix)
		vfio_pci_irq_ctx_put(&ctx);
	vdev->msix.clear();
	vdev->intx_masked = false;
	vdev->intx_pending = false;
	vdev->irq_type = VFIO_PCI_NUM_IRQS;
}

/* Under igate. */
void vfio_pci_irq_disable_all(struct vfio_pci_core_device *vdev)
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
		vfio_pci_irq_ctx_signal(&vdev->intx);
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
			vfio_pci_irq_ctx_signal(&vdev->intx);
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
					vfio_pci_irq_ctx_put(&c);
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
			vfio_pci_irq_ctx_signal(&vdev->msix[i]);
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
			vfio_pci_irq_ctx_signal(ctx);
		else
			vfio_pci_irq_ctx_put(ctx);
		return 0;
	}
	if (flags & VFIO_IRQ_SET_DATA_BOOL) {
		if (!count)
			return -EINVAL;
		if (*static_cast<u8 *>(data) && ctx->trigger.is_valid())
			vfio_pci_irq_ctx_signal(ctx);
		return 0;
	}
	if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
		if (!count)
			return -EINVAL;
		s32 fd = *static_cast<s32 *>(data);
		if (fd == -1) {
			vfio_pci_irq_ctx_put(ctx);
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

int vfio_pci_set_irqs_ioctl(struct vfio_pci_core_device *vdev,
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
	vfio_pci_irq_ctx_signal(&vdev->msix[vector]);
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
	vfio_pci_irq_ctx_signal(&vdev->intx);
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
