// SPDX-License-Identifier: GPL-2.0-only
/*
 * Conformance: the sequence of calls QEMU makes in a migration.
 */
#include "fixture.h"

namespace uvfio::conformance {
namespace {

/* -------- QEMU -------- */

// Contract: QEMU's client sequence works end to end: DMA logging over 3
// ranges with reports over sub-ranges, pre-copy passes of 1 MiB reads
// where ENOMSG means "nothing now" with MIG_DATA_SIZE asked every pass,
// STOP_COPY read to EOF, and the destination written in 32 KiB pieces;
// the destination then has the source's state (by the simulator's state
// digest; a real device is its own destination, and loads without it).
TEST_P(Conformance, QemuClientSequence)
{
	Device &s = *src_dev_;
	Device &d = dst();
	GuestMemory g = src_guest();
	const __u64 third = g.size / 3 / kPage * kPage;
	std::vector<std::pair<__u64, __u64>> ranges = {
		{g.iova, third},
		{g.iova + third, third},
		{g.iova + 2 * third, g.size - 2 * third}};
	bool reports = caps_.dma_logging;
	auto report_all = [&] {
		if (!reports)
			return;
		std::vector<__u64> bm;
		for (auto [iova, len] : ranges) {
			__u64 half = len / 2 / kPage * kPage;
			EXPECT_EQ(dma_logging_report(*t_, s.fd(), iova, half,
						     kPage, &bm), 0);
			EXPECT_EQ(dma_logging_report(*t_, s.fd(), iova + half,
						     len - half, kPage, &bm),
				  0);
		}
	};
	if (caps_.dma_logging) {
		ASSERT_EQ(dma_logging_start(*t_, s.fd(), kPage, ranges), 0);
	}
	if (caps_.dma_logging && real()) {
		/* A kernel that cannot report: the sequence without reports. */
		std::vector<__u64> bm;
		int ret = dma_logging_report(*t_, s.fd(), ranges[0].first,
					     ranges[0].second, kPage, &bm);
		if (ret == -EOPNOTSUPP) {
			reports = false;
			RecordProperty("dma_logging_report", "EOPNOTSUPP");
		} else {
			EXPECT_EQ(ret, 0);
		}
	}

	bytes stream;
	int fd = -1;
	if (has(VFIO_MIGRATION_PRE_COPY)) {
		ASSERT_EQ(s.set_state(PRE_COPY, &fd), 0);
		ASSERT_GE(fd, 0);
		for (int pass = 0; pass < 5; pass++) {
			__u64 size;
			if (caps_.data_size) {
				EXPECT_EQ(s.data_size(&size), 0);
			}
			struct vfio_precopy_info info;
			EXPECT_EQ(precopy_info(*t_, fd, &info), 0);
			size_t before = stream.size();
			int ret = read_stream(*t_, fd, &stream);
			EXPECT_TRUE(precopy_pause(ret, real()))
				<< "read at pre-copy's temporary end: " << ret;
			report_all();
			if (stream.size() == before)
				break;
		}
		ASSERT_EQ(s.set_state(has(VFIO_MIGRATION_P2P) ? PRE_COPY_P2P
							       : STOP_COPY),
			  0);
		ASSERT_EQ(s.set_state(STOP_COPY), 0);
	} else {
		ASSERT_EQ(s.set_state(has(VFIO_MIGRATION_P2P) ? RUNNING_P2P
							       : STOP),
			  0);
		if (caps_.data_size) {
			__u64 size;
			EXPECT_EQ(s.data_size(&size), 0);
		}
		ASSERT_EQ(s.set_state(STOP_COPY, &fd), 0);
		ASSERT_GE(fd, 0);
	}
	EXPECT_EQ(read_stream(*t_, fd, &stream), 0);
	t_->close(fd);
	if (caps_.dma_logging) {
		report_all();
		EXPECT_EQ(dma_logging_stop(*t_, s.fd()), 0);
	}
	ASSERT_EQ(s.set_state(STOP), 0);

	ASSERT_EQ(load(d, stream), 0);
	__u64 want, got;
	if (!digest(s, &want)) {
		ASSERT_EQ(digest(d, &got), 0);
		EXPECT_EQ(got, want);
	} else {
		/* Not a skip: the sequence ran; say what was not compared. */
		RecordProperty("state_compared", real() ? "no: a real device "
			       "has no state digest" : "no: the driver has no "
			       "state digest (uvfio_set_state_digest)");
	}
	EXPECT_EQ(d.set_state(RUNNING), 0);
	EXPECT_EQ(s.set_state(RUNNING), 0);
}

} // namespace
} // namespace uvfio::conformance
