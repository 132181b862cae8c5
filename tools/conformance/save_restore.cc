// SPDX-License-Identifier: GPL-2.0-only
/*
 * Conformance: a saved state restores, a corrupt one is rejected.
 */
#include "fixture.h"

namespace uvfio::conformance {
namespace {

/* -------- save and restore -------- */

// Contract: a device loaded from another's STOP_COPY stream has the state
// the other had when saved (the driver's state digest compares both; on
// real devices, which have no digest, the loaded device saved again must
// give the same stream, which holds for a driver whose stream is its
// state, as mtty's is: one whose stream carries more, such as sequence
// numbers or time, cannot be checked this way).
TEST_P(Conformance, RoundTripRestoresTheState)
{
	if (real()) {
		if (!dst_dev_)
			GTEST_SKIP() << "a real device: this needs a second one "
					"of the same kind (--peer, or "
					"UVFIO_CONFORMANCE_PEER)";
		Device &s = *src_dev_, &d = *dst_dev_;
		bytes image, before, after;
		ASSERT_NO_FATAL_FAILURE(save(s, &image));
		ASSERT_NO_FATAL_FAILURE(save(d, &before));
		ASSERT_EQ(load(d, image), 0);
		ASSERT_NO_FATAL_FAILURE(save(d, &after));
		EXPECT_TRUE(after == image)
			<< "the loaded device saves a different stream ("
			<< after.size() << " bytes, loaded " << image.size() << ")";
		/* Whether the load had anything to change. */
		RecordProperty("peer_state_before_load",
			       before == image ? "already the source's"
					       : "different from the source's");
		EXPECT_EQ(d.set_state(RUNNING), 0);
		EXPECT_EQ(s.set_state(RUNNING), 0);
		return;
	}
	Device &s = *src_dev_;
	if (simdev_) {
		ASSERT_NO_FATAL_FAILURE(start_workload());
		EXPECT_EQ(src_.drain_workload(10000), 0);
		src_.stop_workload();
	}
	bytes image;
	ASSERT_NO_FATAL_FAILURE(save(s, &image));
	__u64 want = 0, got = 0;
	int ret = digest(s, &want);
	if (ret == -EOPNOTSUPP)
		GTEST_SKIP() << "the driver has no state digest "
				"(uvfio_set_state_digest)";
	ASSERT_EQ(ret, 0);
	Device &d = dst();
	ASSERT_EQ(load(d, image), 0);
	ASSERT_EQ(digest(d, &got), 0);
	EXPECT_EQ(got, want) << "the loaded device differs from the saved one";
	EXPECT_EQ(d.set_state(RUNNING), 0);
	EXPECT_EQ(s.set_state(RUNNING), 0);
}

// Contract: a corrupt stream (truncated, a damaged header, empty) is
// rejected by the write that carried it or else by RESUMING -> STOP; the
// device is not left RUNNING or STOP with what it half-loaded; a reset
// from there (ERROR included) gives RUNNING, and a good stream then loads.
// On a real device, after a rejected write the test stops there, in
// RESUMING, as a VMM's load does: what a driver does on a STOP nobody
// sends is its own (mtty checks the header only in its write, and loads
// the ports on RESUMING -> STOP whatever came before them).
// (A real device without a peer takes the streams itself.)
TEST_P(Conformance, CorruptStreamRejectedAndResetRecovers)
{
	bytes image;
	ASSERT_NO_FATAL_FAILURE(save(*src_dev_, &image));
	ASSERT_GT(image.size(), 16u);
	bytes truncated(image.begin(), image.begin() + image.size() / 2);
	bytes header = image;
	for (size_t i = 0; i < 8; i++)
		header[i] ^= 0x5a;
	struct Case {
		const char *what;
		bytes data;
	};
	Device &d = dst();
	for (const Case &c : {Case{"truncated", truncated},
			      Case{"damaged header", header},
			      Case{"empty", bytes()}}) {
		SCOPED_TRACE(c.what);
		ASSERT_EQ(d.reset(), 0);
		EXPECT_NE(load(d, c.data, real()), 0)
			<< "a corrupt stream was accepted";
		__u32 now = get(d);
		EXPECT_TRUE(now == ERROR || now == RESUMING)
			<< "left in " << state_name(now);
		EXPECT_EQ(d.reset(), 0);
		EXPECT_EQ(get(d), RUNNING);
	}
	EXPECT_EQ(load(d, image), 0);
	EXPECT_EQ(d.set_state(RUNNING), 0);
}

} // namespace
} // namespace uvfio::conformance
