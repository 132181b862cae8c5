// SPDX-License-Identifier: GPL-2.0-only
/*
 * Device DMA logging: VFIO_DEVICE_FEATURE_DMA_LOGGING_START, _STOP and
 * _REPORT. The core validates what userspace asks for as the kernel does,
 * builds the interval tree of ranges that log_start receives, and walks the
 * user's bitmap in iova_bitmap windows, one log_read_and_clear per window.
 * Whether logging is active, and what a second START or a STOP without
 * START does, is the driver's business, as in the kernel.
 */
#include <cerrno>
#include <memory>

#include <uvfio/linux/fault-inject.h>
#include <uvfio/linux/interval_tree.h>
#include <uvfio/linux/iova_bitmap.h>
#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio.h>

#include "vfio_migration.h"

DEFINE_FAULT_POINT(log_read_and_clear, "log.read_and_clear", EIO,
		   "a DMA_LOGGING_REPORT window: the driver's "
		   "log_read_and_clear fails")
DEFINE_FAULT_POINT(log_start, "log.start", ENOMEM,
		   "DMA_LOGGING_START: the driver's log_start fails, no "
		   "session starts")
DEFINE_FAULT_POINT(log_stop, "log.stop", EIO,
		   "DMA_LOGGING_STOP: the driver's log_stop fails, the "
		   "session goes on")

namespace {

/* The most ranges one START may name (the kernel's LOG_MAX_RANGES). */
constexpr u32 log_max_ranges = 256;

bool is_aligned(u64 x, u64 a)
{
	return (x & (a - 1)) == 0;
}

bool is_power_of_2(u64 x)
{
	return x && !(x & (x - 1));
}

int vfio_device_log_read_and_clear(struct iova_bitmap *iter,
				   unsigned long iova, size_t length,
				   void *opaque)
{
	auto *device = static_cast<struct vfio_device *>(opaque);

	/* As the driver failing this window: nothing of it read or cleared. */
	int err = should_fail(&log_read_and_clear);
	if (err)
		return err;
	return device->log_ops->log_read_and_clear(device, iova, length, iter);
}

} // namespace

int vfio_ioctl_device_feature_logging_start(struct vfio_device *device,
					    u32 flags, void __user *arg,
					    size_t argsz)
{
	size_t minsz = offsetofend(struct vfio_device_feature_dma_logging_control,
				   ranges);
	struct vfio_device_feature_dma_logging_control control;
	struct vfio_device_feature_dma_logging_range __user *ranges;
	struct rb_root_cached root = RB_ROOT_CACHED;
	u32 nnodes;
	int ret;

	if (!device->log_ops)
		return -ENOTTY;
	ret = vfio_check_feature(flags, argsz, VFIO_DEVICE_FEATURE_SET,
				 sizeof(control));
	if (ret != 1)
		return ret;
	if (copy_from_user(&control, arg, minsz))
		return -EFAULT;

	nnodes = control.num_ranges;
	if (!nnodes)
		return -EINVAL;
	if (nnodes > log_max_ranges)
		return -E2BIG;

	std::unique_ptr<struct interval_tree_node[]> nodes(
		new (std::nothrow) interval_tree_node[nnodes]());
	if (!nodes)
		return -ENOMEM;

	ranges = reinterpret_cast<struct vfio_device_feature_dma_logging_range *>(
		static_cast<uintptr_t>(control.ranges));
	for (u32 i = 0; i < nnodes; i++) {
		struct vfio_device_feature_dma_logging_range range;
		u64 iova_end;

		if (copy_from_user(&range, &ranges[i], sizeof(range)))
			return -EFAULT;
		if (!is_aligned(range.iova, control.page_size) ||
		    !is_aligned(range.length, control.page_size))
			return -EINVAL;
		/*
		 * The kernel takes an empty range and turns it into an
		 * interval whose end lies before its start; refuse it.
		 */
		if (!range.length)
			return -EINVAL;
		/* unsigned long is 64 bits here: the sum is the only limit. */
		if (__builtin_add_overflow(range.iova, range.length, &iova_end))
			return -EOVERFLOW;

		nodes[i].start = range.iova;
		nodes[i].last = range.iova + range.length - 1;
		if (interval_tree_iter_first(&root, nodes[i].start,
					     nodes[i].last))
			return -EINVAL;	/* overlaps an earlier range */
		interval_tree_insert(&nodes[i], &root);
	}

	/* The driver may round page_size up; userspace learns it below. */
	u64 page_size = control.page_size;
	/* As the driver failing before it starts anything. */
	ret = should_fail(&log_start);
	if (!ret)
		ret = device->log_ops->log_start(device, &root, nnodes,
						 &page_size);
	if (ret)
		return ret;
	control.page_size = page_size;
	if (copy_to_user(arg, &control, sizeof(control))) {
		/* Balances the log_start above: the caller never knew. */
		device->log_ops->log_stop(device);
		return -EFAULT;
	}
	return 0;
}

int vfio_ioctl_device_feature_logging_stop(struct vfio_device *device,
					   u32 flags, void __user *,
					   size_t argsz)
{
	int ret;

	if (!device->log_ops)
		return -ENOTTY;
	ret = vfio_check_feature(flags, argsz, VFIO_DEVICE_FEATURE_SET, 0);
	if (ret != 1)
		return ret;
	/* As the driver failing before it stops anything. */
	ret = should_fail(&log_stop);
	if (ret)
		return ret;
	return device->log_ops->log_stop(device);
}

int vfio_ioctl_device_feature_logging_report(struct vfio_device *device,
					     u32 flags, void __user *arg,
					     size_t argsz)
{
	size_t minsz = offsetofend(struct vfio_device_feature_dma_logging_report,
				   bitmap);
	struct vfio_device_feature_dma_logging_report report;
	struct iova_bitmap *iter;
	u64 iova_end;
	int ret;

	if (!device->log_ops)
		return -ENOTTY;
	ret = vfio_check_feature(flags, argsz, VFIO_DEVICE_FEATURE_GET,
				 sizeof(report));
	if (ret != 1)
		return ret;
	if (copy_from_user(&report, arg, minsz))
		return -EFAULT;
	if (report.page_size < 4096 || !is_power_of_2(report.page_size))
		return -EINVAL;
	if (__builtin_add_overflow(report.iova, report.length, &iova_end))
		return -EOVERFLOW;

	iter = iova_bitmap_alloc(
		report.iova, report.length, report.page_size,
		reinterpret_cast<u64 __user *>(static_cast<uintptr_t>(report.bitmap)));
	if (IS_ERR(iter))
		return static_cast<int>(PTR_ERR(iter));
	ret = iova_bitmap_for_each(iter, device, vfio_device_log_read_and_clear);
	iova_bitmap_free(iter);
	return ret;
}
