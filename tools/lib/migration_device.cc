// SPDX-License-Identifier: GPL-2.0-only
/*
 * The migration client's device: probing, migration states, the data
 * size, PRECOPY_INFO, reset, and guest dirty tracking (DMA logging or the
 * IOMMU's dirty pages), through a Transport only.
 */
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include <uvfio/tools/migration.h>
#include <uvfio/uapi/vfio.h>

#include "lib_priv.h"

namespace uvfio::tools {

using namespace detail;

namespace {

const char *const state_names[] = {
	"error", "stop", "running", "stop_copy",
	"resuming", "running_p2p", "pre_copy", "pre_copy_p2p",
};

} // namespace

const char *state_name(__u32 state)
{
	return state < std::size(state_names) ? state_names[state] : "invalid";
}

int parse_state(const std::string &name, __u32 *state)
{
	std::string n;
	for (char c : name)
		n += c == '-' ? '_' : char(std::tolower(static_cast<unsigned char>(c)));
	for (__u32 i = 0; i < std::size(state_names); i++) {
		if (n == state_names[i]) {
			*state = i;
			return 0;
		}
	}
	return -EINVAL;
}

/* -------- Device -------- */

int Device::probe(DeviceCaps *caps)
{
	*caps = {};
	Feature<struct vfio_device_feature_migration> m(
		VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION);
	int ret = t_.ioctl(fd_, VFIO_DEVICE_FEATURE, m.hdr());
	if (ret && ret != -ENOTTY)
		return ret;
	caps->migration = !ret;
	caps->migration_flags = ret ? 0 : m.data()->flags;

	Feature<struct vfio_device_feature_dma_logging_control> l(
		VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
		VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
	caps->dma_logging = !t_.ioctl(fd_, VFIO_DEVICE_FEATURE, l.hdr());

	if (caps->migration)
		caps->data_size = !data_size(&caps->stop_copy_size);
	return 0;
}

int Device::get_state(__u32 *state)
{
	Feature<struct vfio_device_feature_mig_state> f(
		VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
	int ret = t_.ioctl(fd_, VFIO_DEVICE_FEATURE, f.hdr());
	if (!ret)
		*state = f.data()->device_state;
	return ret;
}

int Device::set_state(__u32 state, int *data_fd)
{
	Feature<struct vfio_device_feature_mig_state> f(
		VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
	f.data()->device_state = state;
	f.data()->data_fd = -1;
	int ret = t_.ioctl(fd_, VFIO_DEVICE_FEATURE, f.hdr());
	if (data_fd)
		*data_fd = ret ? -1 : f.data()->data_fd;
	return ret;
}

int Device::data_size(__u64 *bytes)
{
	Feature<struct vfio_device_feature_mig_data_size> f(
		VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE);
	int ret = t_.ioctl(fd_, VFIO_DEVICE_FEATURE, f.hdr());
	if (!ret)
		*bytes = f.data()->stop_copy_length;
	return ret;
}

int Device::precopy_info(int data_fd, __u64 *initial, __u64 *dirty)
{
	struct vfio_precopy_info info = {};
	info.argsz = sizeof(info);
	int ret = t_.ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info);
	if (!ret) {
		*initial = info.initial_bytes;
		*dirty = info.dirty_bytes;
	}
	return ret;
}

int Device::reset()
{
	return t_.ioctl(fd_, VFIO_DEVICE_RESET, nullptr);
}

/* -------- dirty tracking -------- */

int dma_logging_start(Transport &t, int fd, __u64 page_size,
		      const std::vector<std::pair<__u64, __u64>> &ranges)
{
	std::vector<struct vfio_device_feature_dma_logging_range> r;
	for (auto [iova, length] : ranges)
		r.push_back({iova, length});
	Feature<struct vfio_device_feature_dma_logging_control> f(
		VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
	f.data()->page_size = page_size;
	f.data()->num_ranges = __u32(r.size());
	f.data()->ranges = reinterpret_cast<uintptr_t>(r.data());
	return t.ioctl(fd, VFIO_DEVICE_FEATURE, f.hdr());
}

int dma_logging_stop(Transport &t, int fd)
{
	struct vfio_device_feature f = {};
	f.argsz = sizeof(f);
	f.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP;
	return t.ioctl(fd, VFIO_DEVICE_FEATURE, &f);
}

int dma_logging_report(Transport &t, int fd, __u64 iova, __u64 length,
		       __u64 page_size, std::vector<__u64> *bitmap)
{
	bitmap->assign((length / page_size + 63) / 64, 0);
	Feature<struct vfio_device_feature_dma_logging_report> f(
		VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT);
	f.data()->iova = iova;
	f.data()->length = length;
	f.data()->page_size = page_size;
	f.data()->bitmap = reinterpret_cast<uintptr_t>(bitmap->data());
	return t.ioctl(fd, VFIO_DEVICE_FEATURE, f.hdr());
}

int iommu_dirty_pages(Transport &t, int container, __u32 flag)
{
	struct vfio_iommu_type1_dirty_bitmap db = {};
	db.argsz = sizeof(db);
	db.flags = flag;
	return t.ioctl(container, VFIO_IOMMU_DIRTY_PAGES, &db);
}

int iommu_dirty_bitmap(Transport &t, int container, __u64 iova, __u64 size,
		       __u64 page_size, std::vector<__u64> *bitmap)
{
	bitmap->assign((size / page_size + 63) / 64, 0);
	alignas(8) unsigned char buf[sizeof(struct vfio_iommu_type1_dirty_bitmap) +
				     sizeof(struct vfio_iommu_type1_dirty_bitmap_get)] = {};
	auto *db = reinterpret_cast<struct vfio_iommu_type1_dirty_bitmap *>(buf);
	auto *g = reinterpret_cast<struct vfio_iommu_type1_dirty_bitmap_get *>(
		buf + sizeof(*db));
	db->argsz = sizeof(buf);
	db->flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
	g->iova = iova;
	g->size = size;
	g->bitmap.pgsize = page_size;
	g->bitmap.size = bitmap->size() * 8;
	g->bitmap.data = reinterpret_cast<__u64 *>(bitmap->data());
	return t.ioctl(container, VFIO_IOMMU_DIRTY_PAGES, buf);
}

int DirtyTracker::start(bool prefer_device)
{
	DeviceCaps caps;
	int ret = dev_.probe(&caps);
	if (ret)
		return ret;
	stop();
	if (prefer_device && caps.dma_logging) {
		ret = dma_logging_start(dev_.transport(), dev_.fd(), PAGE,
					{{mem_.iova, mem_.size}});
		if (!ret)
			mode_ = DMA_LOG;
		return ret;
	}
	if (mem_.container < 0)
		return 0;	/* nothing to track with */
	ret = iommu_dirty_pages(dev_.transport(), mem_.container,
				VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
	if (!ret)
		mode_ = IOMMU;
	return ret;
}

int DirtyTracker::report(std::vector<__u64> *bitmap)
{
	bitmap->assign((mem_.size / PAGE + 63) / 64, 0);
	if (mode_ == DMA_LOG)
		return dma_logging_report(dev_.transport(), dev_.fd(), mem_.iova,
					  mem_.size, PAGE, bitmap);
	if (mode_ == IOMMU)
		return iommu_dirty_bitmap(dev_.transport(), mem_.container,
					  mem_.iova, mem_.size, PAGE, bitmap);
	return -EINVAL;
}

void DirtyTracker::stop()
{
	if (mode_ == DMA_LOG) {
		dma_logging_stop(dev_.transport(), dev_.fd());
	} else if (mode_ == IOMMU) {
		iommu_dirty_pages(dev_.transport(), mem_.container,
				  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP);
	}
	mode_ = NONE;
}

const char *DirtyTracker::mode() const
{
	return mode_ == DMA_LOG ? "dma-logging" : mode_ == IOMMU ? "iommu" : "none";
}

} // namespace uvfio::tools
