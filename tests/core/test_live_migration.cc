// SPDX-License-Identifier: GPL-2.0-only
/*
 * Live migration of a busy device, end to end through the uAPI, with the
 * test playing the VMM: guest memory is copied in passes driven by dirty
 * tracking (simnic: the device's DMA logging; simmin: the IOMMU's dirty
 * pages), device state goes through the data fds (simnic: pre-copy passes
 * then stop-copy; simmin: stop-copy only), and the destination must end
 * equal to the source as it was when it stopped - then both must finish
 * the work still posted the same way.
 */
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include <uvfio/tools/workload.h>

#include "simnic_dev.h"

using namespace uvfio_test;

namespace {

constexpr __u64 PAGE = 4096;
constexpr __u32 RING = 256;	/* the workload's ring: the first 16 KiB */
constexpr __u64 RING_BYTES = RING * sizeof(struct simdev_desc);

/* Move what a saving data fd has now (or, with to_eof, all of it). */
::testing::AssertionResult forward(int src_fd, int dst_fd, bool to_eof,
				   __u64 *moved)
{
	std::vector<unsigned char> buf(1 << 20);
	for (;;) {
		ssize_t n = uvfio_read(src_fd, buf.data(), buf.size());
		if (n == 0)
			return to_eof ? ::testing::AssertionSuccess()
				      : ::testing::AssertionFailure()
						<< "EOF during pre-copy";
		if (n < 0) {
			if (errno == ENOMSG && !to_eof)
				return ::testing::AssertionSuccess();
			return ::testing::AssertionFailure()
			       << "read: " << strerror(errno);
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(dst_fd, buf.data() + off, size_t(n - off));
			if (w <= 0)
				return ::testing::AssertionFailure()
				       << "write: " << strerror(errno);
			off += w;
		}
		*moved += __u64(n);
	}
}

/* The VMM's guest-memory side: dirty pages of the source to the target. */
class GuestCopier
{
public:
	GuestCopier(SimnicDev &src, SimnicDev &dst, bool iommu)
		: src_(src), dst_(dst), iommu_(iommu),
		  bitmap_((src.guest_size() / PAGE + 63) / 64)
	{
	}

	/* Start tracking; 0 or the errno. */
	int start()
	{
		if (iommu_)
			return iommu_dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
		struct vfio_device_feature_dma_logging_range r = {
			GUEST_IOVA, src_.guest_size()};
		FeatureArg<struct vfio_device_feature_dma_logging_control> a(
			VFIO_DEVICE_FEATURE_SET |
			VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
		a.d()->page_size = PAGE;
		a.d()->num_ranges = 1;
		a.d()->ranges = reinterpret_cast<uintptr_t>(&r);
		return a.ioctl(src_.fd());
	}

	/*
	 * Copy the pages reported dirty (and read-and-cleared), leaving the
	 * ring to the final copy: the guest's CPU writes it too, and a
	 * VMM learns about those from the CPU's dirty log, not from here.
	 * Then, with all, copy the ring as well. The pages copied, or -errno.
	 */
	long copy_dirty(bool with_ring)
	{
		std::fill(bitmap_.begin(), bitmap_.end(), 0);
		int e = iommu_ ? iommu_bitmap() : device_bitmap();
		if (e)
			return -e;
		long n = 0;
		for (__u64 p = 0; p < src_.guest_size() / PAGE; p++) {
			if (!(bitmap_[p / 64] >> (p % 64) & 1) ||
			    p * PAGE < RING_BYTES)
				continue;
			std::memcpy(dst_.guest() + p * PAGE,
				    src_.guest() + p * PAGE, PAGE);
			n++;
		}
		if (with_ring)
			std::memcpy(dst_.guest(), src_.guest(), RING_BYTES);
		return n;
	}

private:
	int iommu_dirty(__u32 flags)
	{
		struct vfio_iommu_type1_dirty_bitmap d = {};
		d.argsz = sizeof(d);
		d.flags = flags;
		return uvfio_ioctl(src_.container(), VFIO_IOMMU_DIRTY_PAGES, &d)
			       ? errno : 0;
	}
	int iommu_bitmap()
	{
		alignas(8) unsigned char buf[sizeof(struct vfio_iommu_type1_dirty_bitmap) +
					     sizeof(struct vfio_iommu_type1_dirty_bitmap_get)] = {};
		auto *d = reinterpret_cast<struct vfio_iommu_type1_dirty_bitmap *>(buf);
		auto *g = reinterpret_cast<struct vfio_iommu_type1_dirty_bitmap_get *>(
			buf + sizeof(*d));
		d->argsz = sizeof(buf);
		d->flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
		g->iova = GUEST_IOVA;
		g->size = src_.guest_size();
		g->bitmap.pgsize = PAGE;
		g->bitmap.size = bitmap_.size() * 8;
		g->bitmap.data = reinterpret_cast<__u64 *>(bitmap_.data());
		return uvfio_ioctl(src_.container(), VFIO_IOMMU_DIRTY_PAGES, buf)
			       ? errno : 0;
	}
	int device_bitmap()
	{
		FeatureArg<struct vfio_device_feature_dma_logging_report> r(
			VFIO_DEVICE_FEATURE_GET |
			VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT);
		r.d()->iova = GUEST_IOVA;
		r.d()->length = src_.guest_size();
		r.d()->page_size = PAGE;
		r.d()->bitmap = reinterpret_cast<uintptr_t>(bitmap_.data());
		return r.ioctl(src_.fd());
	}

	SimnicDev &src_, &dst_;
	bool iommu_;
	std::vector<__u64> bitmap_;
};

struct RunStats {
	int passes = 0;
	__u64 precopy_bytes = 0;
	__u64 stopcopy_bytes = 0;
	long pages_copied = 0;
};

/*
 * One live migration of a device running a seeded workload: simnic with
 * pre-copy and DMA logging, simmin with stop-and-copy passes (STOP, copy
 * the IOMMU's dirty pages, RUNNING) and one stop-copy. The copies of guest
 * memory happen with the source's DMA stopped (PRE_COPY_P2P or STOP), so
 * the test does not race the device; what is tested is that tracking
 * misses no page.
 */
void live_migrate(const std::string &driver, __u64 seed, RunStats *st)
{
	const bool full = driver == "simnic";
	SimnicDev src("", 4 << 20, driver), dst("", 4 << 20, driver);
	ASSERT_TRUE(src.ok() && dst.ok());
	src.set_cfg16(0x04, __u16(src.cfg16(0x04) | 0x4));
	dst.set_cfg16(0x04, __u16(dst.cfg16(0x04) | 0x4));

	sim_workload w;
	sim_workload_config c;
	c.device_fd = src.fd();
	c.guest = src.guest();
	c.guest_iova = GUEST_IOVA;
	c.guest_size = src.guest_size();
	c.dev_mem_size = src.mem_size();
	c.seed = seed;
	c.rate = 20000;
	c.ring_entries = RING;
	c.max_len = 32 << 10;
	ASSERT_EQ(w.start(c), 0);

	GuestCopier copier(src, dst, !full);
	ASSERT_EQ(copier.start(), 0);
	int sfd = -1, dfd = -1;
	ASSERT_EQ(dst.set_state(VFIO_DEVICE_STATE_STOP), 0);
	ASSERT_EQ(dst.set_state(VFIO_DEVICE_STATE_RESUMING, &dfd), 0);
	if (full) {
		ASSERT_EQ(src.set_state(VFIO_DEVICE_STATE_PRE_COPY, &sfd), 0);
	}

	/* Passes: the first copies all of guest memory (all is dirty to a
	 * VMM that starts tracking), the rest what was written since. */
	const __u32 pause = full ? VFIO_DEVICE_STATE_PRE_COPY_P2P
				 : VFIO_DEVICE_STATE_STOP;
	const __u32 go = full ? VFIO_DEVICE_STATE_PRE_COPY
			      : VFIO_DEVICE_STATE_RUNNING;
	for (int pass = 0; pass < 3; pass++) {
		std::this_thread::sleep_for(std::chrono::milliseconds(2));
		if (full) {
			ASSERT_TRUE(forward(sfd, dfd, false, &st->precopy_bytes));
		}
		ASSERT_EQ(src.set_state(pause), 0);
		long n = copier.copy_dirty(false);
		ASSERT_GE(n, 0);
		if (pass == 0)
			std::memcpy(dst.guest() + RING_BYTES,
				    src.guest() + RING_BYTES,
				    src.guest_size() - RING_BYTES);
		st->pages_copied += n;
		ASSERT_EQ(src.set_state(go), 0);
		st->passes++;
	}

	/* Stop: the vCPUs (the workload), then the device. */
	w.stop();
	ASSERT_EQ(w.error(), 0);
	int fd2 = -1;
	ASSERT_EQ(src.set_state(VFIO_DEVICE_STATE_STOP_COPY, &fd2), 0);
	if (!full) {
		sfd = fd2;
	} else {
		EXPECT_EQ(fd2, -1);	/* the pre-copy fd goes on */
	}
	long n = copier.copy_dirty(true);
	ASSERT_GE(n, 0);
	st->pages_copied += n;
	ASSERT_TRUE(forward(sfd, dfd, true, &st->stopcopy_bytes));
	uvfio_close(sfd);
	ASSERT_EQ(src.set_state(VFIO_DEVICE_STATE_STOP), 0);
	uvfio_close(dfd);
	ASSERT_EQ(dst.set_state(VFIO_DEVICE_STATE_STOP), 0);

	/* Equal at the moment the source stopped... */
	ASSERT_EQ(dst.digest(), src.digest());

	/* ...and both finish the posted work the same way. */
	__u32 tail = src.reg(SIMDEV_REG_RING_TAIL);
	ASSERT_EQ(src.set_state(VFIO_DEVICE_STATE_RUNNING), 0);
	ASSERT_EQ(dst.set_state(VFIO_DEVICE_STATE_RUNNING), 0);
	ASSERT_TRUE(src.wait_done(tail));
	ASSERT_TRUE(dst.wait_done(tail));
	ASSERT_EQ(dst.digest(), src.digest());
	EXPECT_EQ(src.reg(SIMDEV_REG_STATUS) & SIMDEV_STATUS_FAULT, 0u);
}

class LiveMigration : public ::testing::TestWithParam<std::string>
{
};

// Contract: 100 seeded live migrations of a device under load end with
// the destination's device state and guest memory identical to the
// source's when it stopped, and both finish the remaining work alike:
// no dirty page (guest or device memory) and no in-flight descriptor is
// lost. simnic goes through PRE_COPY with DMA logging; simmin and the
// skeleton driver through STOP_COPY with the IOMMU's dirty pages.
TEST_P(LiveMigration, HundredSeededRunsNoMismatch)
{
	RunStats total;
	for (__u64 seed = 1; seed <= 100; seed++) {
		SCOPED_TRACE("seed " + std::to_string(seed));
		RunStats st;
		live_migrate(GetParam(), seed, &st);
		if (HasFatalFailure())
			return;
		total.precopy_bytes += st.precopy_bytes;
		total.stopcopy_bytes += st.stopcopy_bytes;
		total.pages_copied += st.pages_copied;
	}
	/* The runs did work: pages were tracked and copied, state moved. */
	EXPECT_GT(total.pages_copied, 1000);
	EXPECT_GT(total.stopcopy_bytes, 0u);
	if (GetParam() == "simnic") {
		EXPECT_GT(total.precopy_bytes, 100u << 20);
		/* Pre-copy moved device memory; stop-copy sent what was left. */
		EXPECT_LT(total.stopcopy_bytes, total.precopy_bytes);
	}
}

INSTANTIATE_TEST_SUITE_P(Drivers, LiveMigration,
			 ::testing::Values("simnic", "simmin", "skeleton"),
			 [](const auto &info) { return info.param; });

} // namespace
