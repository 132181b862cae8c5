// SPDX-License-Identifier: GPL-2.0-only
/*
 * Device DMA logging through the uAPI (VFIO_DEVICE_FEATURE_DMA_LOGGING_*):
 * the core's validation of every argument, the interval tree log_start
 * receives, page_size copied back, and a property test in which random DMA
 * writes must be reported exactly, over random sub-ranges, page sizes and
 * iova_bitmap window sizes. The device is a test driver with log_ops whose
 * "DMA" is a hook the test calls.
 */
#include <gtest/gtest.h>

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <vector>

#include <uvfio/linux/interval_tree.h>
#include <uvfio/linux/iova_bitmap.h>
#include <uvfio/linux/vfio.h>
#include <uvfio/uapi/vfio.h>
#include <uvfio/uvfio.h>

#include "iova_bitmap_private.h"
#include "test_util.h"

using namespace uvfio_test;

namespace {

/* What the test driver records and the knobs the test turns. */
struct LogDriver {
	std::mutex lock;
	bool active = false;
	u64 page_size = 0;	/* tracking granule after START */
	u64 round_to = 0;	/* knob: log_start rounds page_size up to this */
	u32 max_ranges = 0;	/* knob: device limit; combine down to it */
	u32 nnodes_seen = 0;
	std::vector<std::pair<u64, u64>> ranges;	/* [start, last] */
	std::set<u64> dirty;	/* tracked pages (base addresses) */
	std::vector<std::pair<u64, u64>> windows;	/* read_and_clear calls */

	/* The device writes [iova, iova + len): dirty what it tracks. */
	void dma_write(u64 iova, u64 len)
	{
		std::lock_guard<std::mutex> l(lock);
		if (!active || !len)
			return;
		for (u64 p = iova & ~(page_size - 1); p < iova + len;
		     p += page_size)
			for (auto &r : ranges)
				if (p <= r.second && p + page_size - 1 >= r.first) {
					dirty.insert(p);
					break;
				}
	}
};

struct log_device {
	struct vfio_device vdev;
	LogDriver *drv = nullptr;
};

LogDriver *drv_of(struct vfio_device *v)
{
	return container_of(v, struct log_device, vdev)->drv;
}

int ld_log_start(struct vfio_device *v, struct rb_root_cached *ranges,
		 u32 nnodes, u64 *page_size)
{
	LogDriver *d = drv_of(v);
	std::lock_guard<std::mutex> l(d->lock);
	if (d->active)
		return -EINVAL;	/* one session at a time, as the drivers do */
	if (d->max_ranges && nnodes > d->max_ranges) {
		vfio_combine_iova_ranges(ranges, nnodes, d->max_ranges);
		nnodes = d->max_ranges;
	}
	d->nnodes_seen = nnodes;
	d->ranges.clear();
	for (struct interval_tree_node *n =
		     interval_tree_iter_first(ranges, 0, ULONG_MAX);
	     n; n = interval_tree_iter_next(n, 0, ULONG_MAX))
		d->ranges.emplace_back(n->start, n->last);
	*page_size = std::max<u64>(*page_size, d->round_to);
	d->page_size = *page_size;
	d->dirty.clear();
	d->windows.clear();
	d->active = true;
	return 0;
}

int ld_log_stop(struct vfio_device *v)
{
	LogDriver *d = drv_of(v);
	std::lock_guard<std::mutex> l(d->lock);
	d->active = false;
	d->dirty.clear();
	return 0;
}

int ld_log_read_and_clear(struct vfio_device *v, unsigned long iova,
			  unsigned long length, struct iova_bitmap *bitmap)
{
	LogDriver *d = drv_of(v);
	std::lock_guard<std::mutex> l(d->lock);
	if (!d->active)
		return -EINVAL;
	d->windows.emplace_back(iova, length);
	/* Report and clear every tracked page the window touches. */
	auto it = d->dirty.lower_bound(iova > d->page_size ? iova - d->page_size + 1 : 0);
	while (it != d->dirty.end() && *it < iova + length) {
		if (*it + d->page_size > iova) {
			iova_bitmap_set(bitmap, *it, d->page_size);
			it = d->dirty.erase(it);
		} else {
			++it;
		}
	}
	return 0;
}

const struct vfio_log_ops ld_log_ops = {
	.log_start = ld_log_start,
	.log_stop = ld_log_stop,
	.log_read_and_clear = ld_log_read_and_clear,
};

const struct vfio_device_ops ld_ops = {
	.name = "log-test",
};

/* A registered log_device with an open fd. */
class LogDevice
{
public:
	LogDevice()
	{
		parent_.name = next_bdf();
		d_ = vfio_alloc_device(log_device, vdev, &parent_, &ld_ops);
		if (IS_ERR(d_)) {
			d_ = nullptr;
			return;
		}
		d_->drv = &drv;
		d_->vdev.log_ops = &ld_log_ops;
		if (vfio_register_group_dev(&d_->vdev))
			return;
		registered_ = true;
		fd_ = uvfio_open(parent_.name.c_str());
	}
	~LogDevice()
	{
		if (fd_ >= 0)
			uvfio_close(fd_);
		if (registered_)
			vfio_unregister_group_dev(&d_->vdev);
		if (d_)
			vfio_put_device(&d_->vdev);
	}
	LogDevice(const LogDevice &) = delete;
	LogDevice &operator=(const LogDevice &) = delete;

	int fd() const { return fd_; }
	bool ok() const { return fd_ >= 0; }

	LogDriver drv;

private:
	struct device parent_;
	log_device *d_ = nullptr;
	bool registered_ = false;
	int fd_ = -1;
};

using range = struct vfio_device_feature_dma_logging_range;


using StartArg = FeatureArg<struct vfio_device_feature_dma_logging_control>;
using ReportArg = FeatureArg<struct vfio_device_feature_dma_logging_report>;

int start(int fd, u64 page_size, const std::vector<range> &ranges,
	  u64 *page_size_out = nullptr)
{
	StartArg a(VFIO_DEVICE_FEATURE_SET |
		   VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
	a.d()->page_size = page_size;
	a.d()->num_ranges = static_cast<u32>(ranges.size());
	a.d()->ranges = reinterpret_cast<uintptr_t>(ranges.data());
	int err = a.ioctl(fd);
	if (page_size_out)
		*page_size_out = a.d()->page_size;
	return err;
}

int stop(int fd)
{
	struct vfio_device_feature f = {};
	f.argsz = sizeof(f);
	f.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP;
	return uvfio_ioctl(fd, VFIO_DEVICE_FEATURE, &f) ? errno : 0;
}

int report(int fd, u64 iova, u64 length, u64 page_size, void *bitmap)
{
	ReportArg a(VFIO_DEVICE_FEATURE_GET |
		    VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT);
	a.d()->iova = iova;
	a.d()->length = length;
	a.d()->page_size = page_size;
	a.d()->bitmap = reinterpret_cast<uintptr_t>(bitmap);
	return a.ioctl(fd);
}

/* Restores the default iova_bitmap window when a test ends. */
struct WindowKnob {
	explicit WindowKnob(size_t bytes) { uvfio_iova_bitmap_set_window_bytes(bytes); }
	~WindowKnob() { uvfio_iova_bitmap_set_window_bytes(0); }
};

// Contract: START is SET-only, needs a full control struct, at least one
// and at most 256 ranges, each aligned to page_size, not empty, not
// overflowing and not overlapping another; errors come back before the
// driver's log_start is called. A bad ranges pointer is EFAULT.
TEST(DmaLoggingStart, Validation)
{
	LogDevice d;
	ASSERT_TRUE(d.ok());
	const u64 P = 4096;
	std::vector<range> one = {{0x10000, 0x4000}};

	StartArg get(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
	EXPECT_EQ(get.ioctl(d.fd()), EINVAL);
	StartArg probe(VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
		       VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
	EXPECT_EQ(probe.ioctl(d.fd()), 0);
	StartArg shortarg(VFIO_DEVICE_FEATURE_SET |
			  VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
	shortarg.f()->argsz = sizeof(struct vfio_device_feature) + 16;
	EXPECT_EQ(shortarg.ioctl(d.fd()), EINVAL);

	EXPECT_EQ(start(d.fd(), P, {}), EINVAL);
	std::vector<range> many(257);
	for (size_t i = 0; i < many.size(); i++)
		many[i] = {i * 2 * P, P};
	EXPECT_EQ(start(d.fd(), P, many), E2BIG);
	EXPECT_EQ(start(d.fd(), P, {{0x10800, 0x4000}}), EINVAL);
	EXPECT_EQ(start(d.fd(), P, {{0x10000, 0x4800}}), EINVAL);
	EXPECT_EQ(start(d.fd(), P, {{0x10000, 0}}), EINVAL);
	EXPECT_EQ(start(d.fd(), P, {{~0ULL & ~(P - 1), 2 * P}}), EOVERFLOW);
	EXPECT_EQ(start(d.fd(), P, {{0, P}, {0x10000, 0x4000}, {0x13000, P}}),
		  EINVAL);
	/* Touching is not overlapping. */
	EXPECT_FALSE(d.drv.active);
	StartArg bad(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
	bad.d()->page_size = P;
	bad.d()->num_ranges = 1;
	bad.d()->ranges = 8;	/* unmapped */
	EXPECT_EQ(bad.ioctl(d.fd()), EFAULT);
	EXPECT_FALSE(d.drv.active);

	EXPECT_EQ(start(d.fd(), P, {{0, P}, {P, P}, {0x10000, 0x4000}}), 0);
	EXPECT_TRUE(d.drv.active);
	EXPECT_EQ(d.drv.nnodes_seen, 3u);
	/* The driver's own rule: a second START is refused. */
	EXPECT_EQ(start(d.fd(), P, one), EINVAL);
	EXPECT_EQ(stop(d.fd()), 0);
	EXPECT_FALSE(d.drv.active);
	std::vector<range> max(256);
	for (size_t i = 0; i < max.size(); i++)
		max[i] = {i * 2 * P, P};
	EXPECT_EQ(start(d.fd(), P, max), 0);
	EXPECT_EQ(d.drv.nnodes_seen, 256u);
	EXPECT_EQ(stop(d.fd()), 0);
}

// Contract: log_start gets the ranges as an interval tree in address
// order; a device limit makes the driver merge the closest neighbours with
// vfio_combine_iova_ranges, keeping every range covered; the page_size the
// driver picks is copied back to userspace.
TEST(DmaLoggingStart, TreeCombineAndPageSize)
{
	LogDevice d;
	ASSERT_TRUE(d.ok());
	d.drv.max_ranges = 2;
	d.drv.round_to = 2 << 20;
	/* Given out of order; gaps 0x10000 (a-b), 0x1000000 (b-c), 0x3000 (c-d). */
	std::vector<range> r = {{0x1030000, 0x1000},
				{0x0, 0x1000},
				{0x11000, 0x1000},
				{0x1034000, 0x1000}};
	u64 ps = 0;
	ASSERT_EQ(start(d.fd(), 4096, r, &ps), 0);
	EXPECT_EQ(ps, 2u << 20);
	ASSERT_EQ(d.drv.ranges.size(), 2u);
	EXPECT_EQ(d.drv.ranges[0], std::make_pair(u64{0}, u64{0x11fff}));
	EXPECT_EQ(d.drv.ranges[1],
		  std::make_pair(u64{0x1030000}, u64{0x1034fff}));
	EXPECT_EQ(stop(d.fd()), 0);
}

// Contract: STOP is SET-only with no payload; REPORT is GET-only, needs a
// full report struct, a page_size that is a power of two of at least 4096,
// an iova + length that does not overflow, a non-empty length and a
// writable bitmap (EFAULT otherwise).
TEST(DmaLoggingReport, Validation)
{
	LogDevice d;
	ASSERT_TRUE(d.ok());
	struct vfio_device_feature f = {};
	f.argsz = sizeof(f);
	f.flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP;
	EXPECT_EQ(uvfio_ioctl(d.fd(), VFIO_DEVICE_FEATURE, &f), -1);
	EXPECT_EQ(errno, EINVAL);

	ASSERT_EQ(start(d.fd(), 4096, {{0, 1 << 20}}), 0);
	std::vector<u64> bm(64);
	ReportArg set(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT);
	EXPECT_EQ(set.ioctl(d.fd()), EINVAL);
	ReportArg shortarg(VFIO_DEVICE_FEATURE_GET |
			   VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT);
	shortarg.f()->argsz = sizeof(struct vfio_device_feature) + 24;
	EXPECT_EQ(shortarg.ioctl(d.fd()), EINVAL);
	EXPECT_EQ(report(d.fd(), 0, 1 << 20, 2048, bm.data()), EINVAL);
	EXPECT_EQ(report(d.fd(), 0, 1 << 20, 0, bm.data()), EINVAL);
	EXPECT_EQ(report(d.fd(), 0, 1 << 20, 12288, bm.data()), EINVAL);
	EXPECT_EQ(report(d.fd(), ~0ULL - 4095, 8192, 4096, bm.data()), EOVERFLOW);
	EXPECT_EQ(report(d.fd(), 0, 0, 4096, bm.data()), EINVAL);
	EXPECT_EQ(report(d.fd(), 0, 1 << 20, 4096, reinterpret_cast<void *>(8)),
		  EFAULT);
	EXPECT_EQ(report(d.fd(), 0, 1 << 20, 4096, bm.data()), 0);
	EXPECT_EQ(stop(d.fd()), 0);
	/* The driver refuses REPORT without a session; the core passes it on. */
	EXPECT_EQ(report(d.fd(), 0, 1 << 20, 4096, bm.data()), EINVAL);
}

// Contract: REPORT only sets bits: bits the user set before stay set, and
// a page the device wrote is reported once (read and clear).
TEST(DmaLoggingReport, OnlySetsBitsAndClearsTheLog)
{
	LogDevice d;
	ASSERT_TRUE(d.ok());
	ASSERT_EQ(start(d.fd(), 4096, {{0, 1 << 20}}), 0);
	d.drv.dma_write(0x5000, 1);
	std::vector<u64> bm(4, 0);
	bm[1] = 0x8000000000000001ULL;
	ASSERT_EQ(report(d.fd(), 0, 1 << 20, 4096, bm.data()), 0);
	EXPECT_EQ(bm[0], 1ULL << 5);
	EXPECT_EQ(bm[1], 0x8000000000000001ULL);
	std::fill(bm.begin(), bm.end(), 0);
	ASSERT_EQ(report(d.fd(), 0, 1 << 20, 4096, bm.data()), 0);
	EXPECT_EQ(bm, std::vector<u64>(4, 0));
	EXPECT_EQ(stop(d.fd()), 0);
}

/* The shadow: tracked pages dirtied since the last report that took them. */
struct Shadow {
	u64 T = 0;
	std::set<u64> dirty;
	std::vector<std::pair<u64, u64>> ranges;

	void write(u64 iova, u64 len)
	{
		for (u64 p = iova & ~(T - 1); p < iova + len; p += T)
			for (auto &r : ranges)
				if (p <= r.second && p + T - 1 >= r.first) {
					dirty.insert(p);
					break;
				}
	}

	/* Expected bits of a report, and clear what it takes. */
	std::vector<u64> take(u64 iova, u64 length, u64 R)
	{
		std::vector<u64> bm((length / R + 63) / 64, 0);
		for (auto it = dirty.begin(); it != dirty.end();) {
			u64 p = *it;
			if (p + T <= iova || p >= iova + length) {
				++it;
				continue;
			}
			u64 lo = std::max(p, iova), hi = std::min(p + T, iova + length);
			for (u64 q = (lo - iova) / R; q <= (hi - 1 - iova) / R; q++)
				bm[q / 64] |= 1ULL << (q % 64);
			it = dirty.erase(it);
		}
		return bm;
	}
};

// Contract: for random logged ranges, driver page sizes, DMA writes,
// REPORT sub-ranges, REPORT page sizes and iova_bitmap window sizes, every
// REPORT's bitmap equals the shadow model exactly: no written page is
// missed, no page is reported beyond page-size rounding, and user bits set
// beforehand survive.
TEST(DmaLoggingProperty, ReportsEqualShadow)
{
	std::mt19937_64 rng(12345);
	auto pick = [&](std::initializer_list<u64> v) {
		return *(v.begin() + rng() % v.size());
	};
	for (int round = 0; round < 60; round++) {
		SCOPED_TRACE(round);
		LogDevice d;
		ASSERT_TRUE(d.ok());
		WindowKnob knob(pick({8, 16, 24, 64, 4096, 0}));
		const u64 P0 = pick({4096, 8192, 65536});
		d.drv.round_to = pick({0, 16384, 1 << 20});
		d.drv.max_ranges = pick({0, 0, 2});

		/* Up to 6 disjoint ranges, gaps included, in [0, 64 MiB). */
		std::vector<range> r;
		u64 at = P0 * (rng() % 64);
		int n = 1 + static_cast<int>(rng() % 6);
		for (int i = 0; i < n; i++) {
			u64 len = P0 * (1 + rng() % 256);
			r.push_back({at, len});
			at += len + P0 * (rng() % 128);
		}
		std::shuffle(r.begin(), r.end(), rng);
		u64 T = 0;
		ASSERT_EQ(start(d.fd(), P0, r, &T), 0);
		ASSERT_EQ(T, std::max<u64>(P0, d.drv.round_to));

		Shadow sh;
		sh.T = T;
		sh.ranges = d.drv.ranges;	/* after any combining */
		u64 end = at + P0 * 64;
		for (int step = 0; step < 6; step++) {
			for (int w = 0; w < 40; w++) {
				u64 iova = rng() % end;
				u64 len = 1 + rng() % (3 * T);
				d.drv.dma_write(iova, len);
				sh.write(iova, len);
			}
			/* A sub-range of one logged range, R-aligned. */
			const range &lr = r[rng() % r.size()];
			u64 R = pick({4096, 8192, 65536, 1 << 20, 2 << 20});
			u64 lo = lr.iova / R * R, hi = (lr.iova + lr.length + R - 1) / R * R;
			u64 pages = (hi - lo) / R;
			u64 first = rng() % pages;
			u64 count = 1 + rng() % (pages - first);
			u64 iova = lo + first * R, length = count * R;

			std::vector<u64> expect = sh.take(iova, length, R);
			std::vector<u64> bm(expect.size());
			std::vector<u64> preset(expect.size());
			for (size_t i = 0; i < bm.size(); i++)
				preset[i] = bm[i] = (rng() % 4 == 0) ? rng() : 0;
			/* No bit past the end of the report. */
			if (count % 64)
				preset.back() = bm.back() &= (1ULL << (count % 64)) - 1;
			ASSERT_EQ(report(d.fd(), iova, length, R, bm.data()), 0);
			for (size_t i = 0; i < bm.size(); i++)
				ASSERT_EQ(bm[i], expect[i] | preset[i])
					<< "word " << i << " of a report of "
					<< count << " pages of " << R << " at 0x"
					<< std::hex << iova << ", T 0x" << T;
		}
		EXPECT_EQ(stop(d.fd()), 0);
	}
}

// Contract: log_read_and_clear sees the report in windows that tile it in
// order, without gaps or overlaps, and a tracked page that straddles two
// windows is still reported in full.
TEST(DmaLoggingReport, WindowsTileTheReport)
{
	WindowKnob knob(8);	/* 64 bits: 64 pages per window */
	LogDevice d;
	ASSERT_TRUE(d.ok());
	d.drv.round_to = 1 << 20;	/* 256 report pages per tracked page */
	ASSERT_EQ(start(d.fd(), 4096, {{0, 8 << 20}}), 0);
	d.drv.dma_write(3 << 20, 1);
	std::vector<u64> bm((8 << 20) / 4096 / 64, 0);
	ASSERT_EQ(report(d.fd(), 0, 8 << 20, 4096, bm.data()), 0);
	ASSERT_GT(d.drv.windows.size(), 1u);
	u64 next = 0;
	for (auto &w : d.drv.windows) {
		EXPECT_EQ(w.first, next);
		next = w.first + w.second;
	}
	EXPECT_EQ(next, 8u << 20);
	/* Pages 768..1023 are set: words 12..15 all ones. */
	for (size_t i = 0; i < bm.size(); i++)
		EXPECT_EQ(bm[i], (i >= 12 && i < 16) ? ~0ULL : 0) << "word " << i;
	EXPECT_EQ(stop(d.fd()), 0);
}

} // namespace
