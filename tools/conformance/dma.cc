// SPDX-License-Identifier: GPL-2.0-only
/*
 * Conformance: DMA across the P2P and pre-copy states, and dirty
 * tracking of the device's writes to guest memory.
 */
#include "fixture.h"

namespace uvfio::conformance {
namespace {

/* -------- P2P -------- */

// Contract: in RUNNING_P2P and PRE_COPY_P2P the device starts no DMA
// (its DMA write count stands still while the guest keeps posting work);
// back in RUNNING it goes on.
TEST_P(Conformance, P2PStatesStartNoDma)
{
	if (!has(VFIO_MIGRATION_P2P))
		GTEST_SKIP() << "no P2P";
	if (!simdev_)
		GTEST_SKIP() << no_dma_engine();
	ASSERT_NO_FATAL_FAILURE(start_workload());
	std::vector<__u32> quiet = {RUNNING_P2P};
	if (has(VFIO_MIGRATION_PRE_COPY))
		quiet.push_back(PRE_COPY_P2P);
	Device &d = *src_dev_;
	for (__u32 s : quiet) {
		SCOPED_TRACE(state_name(s));
		int fd = -1;
		ASSERT_EQ(d.set_state(s, &fd), 0);
		__u64 before = dma_writes(src_fd());
		std::this_thread::sleep_for(std::chrono::milliseconds(30));
		EXPECT_EQ(dma_writes(src_fd()), before)
			<< "DMA in " << state_name(s);
		if (fd >= 0)
			t_->close(fd);
		ASSERT_EQ(d.set_state(RUNNING), 0);
		EXPECT_TRUE(dma_progresses(src_fd(), before));
	}
}

// Contract: PRE_COPY is a running state: the device keeps doing DMA.
TEST_P(Conformance, PreCopyKeepsDmaRunning)
{
	if (!has(VFIO_MIGRATION_PRE_COPY))
		GTEST_SKIP() << "no PRE_COPY";
	if (!simdev_)
		GTEST_SKIP() << no_dma_engine();
	ASSERT_NO_FATAL_FAILURE(start_workload());
	int fd = -1;
	ASSERT_EQ(src_dev_->set_state(PRE_COPY, &fd), 0);
	EXPECT_TRUE(dma_progresses(src_fd(), dma_writes(src_fd())))
		<< "no DMA in PRE_COPY";
	t_->close(fd);
	EXPECT_EQ(src_dev_->set_state(RUNNING), 0);
}

/* -------- DMA logging -------- */

// Contract: every page of guest memory the device wrote while dirty
// tracking ran is set in the next report covering it (guest memory
// compared before and after; the ring the vCPU writes is left out). The
// tracker is the one a VMM uses for the device: its DMA logging where it
// offers it (DMA_LOGGING_REPORT), else the container's IOMMU dirty pages
// (VFIO_IOMMU_DIRTY_PAGES), which must see the device's vfio_dma_rw and
// pinned-page writes (a STOP_COPY-only driver such as simmin or the
// skeleton relies on it for guest memory).
TEST_P(Conformance, DirtyTrackingReportsEveryWrite)
{
	if (!simdev_)
		GTEST_SKIP() << no_dma_engine();
	GuestMemory g = src_guest();
	const bool iommu = !caps_.dma_logging;
	if (iommu && g.container < 0)
		GTEST_SKIP() << "no DMA logging and no container to track with";
	RecordProperty("tracker", iommu ? "iommu (VFIO_IOMMU_DIRTY_PAGES)"
					: "dma-logging");
	const auto *mem = static_cast<const unsigned char *>(g.host);
	bytes before(mem, mem + g.size);
	if (iommu) {
		ASSERT_EQ(iommu_dirty_pages(*t_, g.container,
				      VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);
	} else {
		ASSERT_EQ(dma_logging_start(*t_, src_fd(), kPage,
					    {{g.iova, g.size}}), 0);
	}
	ASSERT_NO_FATAL_FAILURE(start_workload());
	auto end = std::chrono::steady_clock::now() + kPatience;
	while (src_.workload_completed() < 500 &&
	       std::chrono::steady_clock::now() < end)
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	auto cpu = src_.cpu_written();
	EXPECT_EQ(src_.drain_workload(10000), 0);
	src_.stop_workload();

	std::vector<__u64> bm;
	if (iommu) {
		ASSERT_EQ(iommu_dirty_bitmap(*t_, g.container, g.iova, g.size,
					     kPage, &bm), 0);
	} else {
		ASSERT_EQ(dma_logging_report(*t_, src_fd(), g.iova, g.size,
					     kPage, &bm), 0);
	}
	unsigned changed = 0, missed = 0;
	for (__u64 p = 0; p < g.size / kPage; p++) {
		__u64 off = p * kPage;
		bool by_cpu = std::any_of(cpu.begin(), cpu.end(), [&](auto r) {
			return off < r.first + r.second && r.first < off + kPage;
		});
		if (by_cpu || !std::memcmp(mem + off, before.data() + off, kPage))
			continue;
		changed++;
		if (!bit(bm, p) && missed++ < 5)
			ADD_FAILURE() << "page at iova 0x" << std::hex
				      << g.iova + off << " written, not reported"
				      << (iommu ? " by the IOMMU" : "");
	}
	EXPECT_GT(changed, 0u) << "the workload changed no page";
	EXPECT_EQ(missed, 0u) << "of " << changed << " written pages";
	unsigned reported = 0;
	for (__u64 w : bm)
		reported += static_cast<unsigned>(__builtin_popcountll(w));
	RecordProperty("pages", std::to_string(changed) + " written by the "
				"device, " + std::to_string(reported) +
				" reported, of " + std::to_string(g.size / kPage));
	if (iommu) {
		EXPECT_EQ(iommu_dirty_pages(*t_, g.container,
				      VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP), 0);
	} else {
		EXPECT_EQ(dma_logging_stop(*t_, src_fd()), 0);
	}
}

// Contract: one logging session at a time: a second START fails; REPORT
// outside a session fails; STOP outside one does not break anything (the
// device stays usable and a new session starts).
TEST_P(Conformance, DirtyLoggingSessionRules)
{
	if (!caps_.dma_logging)
		GTEST_SKIP() << "no DMA logging (log_ops)";
	GuestMemory g = src_guest();
	int fd = src_fd();
	std::vector<__u64> bm;
	if (real()) {
		/* Whether the kernel can report at all (see the header). */
		ASSERT_EQ(dma_logging_start(*t_, fd, kPage, {{g.iova, g.size}}),
			  0);
		int ret = dma_logging_report(*t_, fd, g.iova, g.size, kPage,
					     &bm);
		EXPECT_EQ(dma_logging_stop(*t_, fd), 0);
		if (ret == -EOPNOTSUPP)
			GTEST_SKIP() << "the kernel does not serve "
					"DMA_LOGGING_REPORT (EOPNOTSUPP: "
					"iova_bitmap needs CONFIG_IOMMUFD)";
	}
	EXPECT_NE(dma_logging_report(*t_, fd, g.iova, g.size, kPage, &bm),
		  0)
		<< "REPORT without a session";
	dma_logging_stop(*t_, fd);	/* may succeed or fail, but cleanly */
	ASSERT_EQ(dma_logging_start(*t_, fd, kPage, {{g.iova, g.size}}), 0);
	EXPECT_NE(dma_logging_start(*t_, fd, kPage, {{g.iova, g.size}}), 0)
		<< "a second START was accepted";
	EXPECT_EQ(dma_logging_report(*t_, fd, g.iova, g.size, kPage, &bm),
		  0);
	EXPECT_EQ(dma_logging_stop(*t_, fd), 0);
	EXPECT_NE(dma_logging_report(*t_, fd, g.iova, g.size, kPage, &bm),
		  0)
		<< "REPORT after STOP";
	EXPECT_EQ(dma_logging_start(*t_, fd, kPage, {{g.iova, g.size}}), 0);
	EXPECT_EQ(dma_logging_stop(*t_, fd), 0);
	EXPECT_EQ(get(*src_dev_), RUNNING);
}

} // namespace
} // namespace uvfio::conformance
