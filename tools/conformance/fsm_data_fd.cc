// SPDX-License-Identifier: GPL-2.0-only
/*
 * Conformance: the migration FSM, the data fd, PRECOPY_INFO and
 * MIG_DATA_SIZE.
 */
#include "fixture.h"

namespace uvfio::conformance {
namespace {

/* -------- the FSM -------- */

// Contract: from every state the driver supports, a SET to every state
// (and to ERROR and past the last state) does what the kernel's FSM says:
// supported and reachable targets succeed with GET reporting the target
// and a new data fd exactly when a new stream starts; unsupported,
// unreachable (STOP_COPY back into pre-copy), ERROR and unknown targets
// fail with EINVAL and leave the state where it was.
TEST_P(Conformance, FsmEveryPairAsTheKernelTable)
{
	Device &d = *src_dev_;
	bytes image;
	ASSERT_NO_FATAL_FAILURE(save(d, &image));
	const __u64 flags = caps_.migration_flags;

	for (__u32 from = 1; from < NUM_MIG_STATES; from++) {
		if (!fsm_has_state(flags, from))
			continue;
		for (__u32 to = 0; to <= NUM_MIG_STATES; to++) {
			SCOPED_TRACE(std::string(state_name(from)) + " -> " +
				     (to < NUM_MIG_STATES ? state_name(to)
							  : "(past the last)"));
			ASSERT_EQ(d.reset(), 0);
			ASSERT_EQ(get(d), RUNNING);
			int fd = -1;
			ASSERT_EQ(d.set_state(from, &fd), 0);
			if (fd >= 0 && from == RESUMING) {
				ASSERT_EQ(write_stream(*t_, fd, image), 0);
			}
			if (fd >= 0)
				t_->close(fd);

			std::vector<__u32> path;
			bool ok = to != ERROR && to < NUM_MIG_STATES &&
				  fsm_has_state(flags, to) &&
				  fsm_path(flags, from, to, &path);
			fd = -1;
			int ret = d.set_state(to, &fd);
			if (ok) {
				EXPECT_EQ(ret, 0);
				EXPECT_EQ(get(d), to);
				EXPECT_EQ(fd >= 0, fsm_opens_stream(from, to))
					<< "data fd " << fd;
			} else {
				EXPECT_EQ(ret, -EINVAL);
				EXPECT_EQ(get(d), from);
				EXPECT_LT(fd, 0);
			}
			if (fd >= 0)
				t_->close(fd);
		}
	}
	EXPECT_EQ(d.reset(), 0);
}

/* -------- the data fd -------- */

// Contract: STOP_COPY's stream ends with end of file once everything is
// read, and stays at its end (another read is 0 again, not an error).
TEST_P(Conformance, DataFdStopCopyEndsWithEof)
{
	Device &d = *src_dev_;
	int fd;
	ASSERT_NO_FATAL_FAILURE(open_stream(d, STOP_COPY, &fd));
	bytes s;
	EXPECT_EQ(read_stream(*t_, fd, &s), 0);
	EXPECT_GT(s.size(), 0u);
	char c;
	EXPECT_EQ(t_->read(fd, &c, 1), 0);
	EXPECT_EQ(t_->close(fd), 0);
	EXPECT_EQ(d.set_state(STOP), 0);
}

// Contract: in PRE_COPY, once the data there is now has been read, a read
// fails with ENOMSG ("nothing now, more may come"), not an error (from a
// real device, 0 is taken too: see precopy_pause); the same stream goes
// on into STOP_COPY and then ends with EOF.
TEST_P(Conformance, DataFdPreCopyPausesWithEnomsg)
{
	if (!has(VFIO_MIGRATION_PRE_COPY))
		GTEST_SKIP() << "no PRE_COPY";
	Device &d = *src_dev_;
	int fd;
	ASSERT_NO_FATAL_FAILURE(open_stream(d, PRE_COPY, &fd));
	bytes s;
	int ret = read_stream(*t_, fd, &s);
	EXPECT_TRUE(precopy_pause(ret, real()))
		<< "read at pre-copy's temporary end: " << ret;
	if (ret == 0)
		RecordProperty("precopy_temporary_end", "EOF, not ENOMSG");
	EXPECT_EQ(d.set_state(STOP_COPY), 0);
	EXPECT_EQ(read_stream(*t_, fd, &s), 0);
	EXPECT_EQ(t_->close(fd), 0);
	EXPECT_EQ(d.set_state(STOP), 0);
}

// Contract: leaving a state the stream belongs to ends the stream: after
// the arc (STOP_COPY -> STOP, PRE_COPY -> RUNNING, PRE_COPY_P2P ->
// RUNNING_P2P, RESUMING -> STOP) no read or write on the old fd succeeds,
// and the driver has disabled its file (the core checks; see TearDown).
TEST_P(Conformance, DataFdLeavingTheStateEndsTheStream)
{
	Device &d = *src_dev_;
	struct Leave {
		__u32 enter, leave;
	};
	std::vector<Leave> leaves = {{STOP_COPY, STOP}};
	if (has(VFIO_MIGRATION_PRE_COPY))
		leaves.push_back({PRE_COPY, RUNNING});
	if (has(VFIO_MIGRATION_PRE_COPY) && has(VFIO_MIGRATION_P2P))
		leaves.push_back({PRE_COPY_P2P, RUNNING_P2P});
	for (const Leave &l : leaves) {
		SCOPED_TRACE(std::string(state_name(l.enter)) + " -> " +
			     state_name(l.leave));
		ASSERT_EQ(d.reset(), 0);
		int fd = -1;
		ASSERT_EQ(d.set_state(l.enter, &fd), 0);
		ASSERT_GE(fd, 0);
		char buf[4096];
		EXPECT_GT(t_->read(fd, buf, sizeof(buf)), 0);
		ASSERT_EQ(d.set_state(l.leave), 0);
		EXPECT_LE(t_->read(fd, buf, sizeof(buf)), 0)
			<< "a read succeeded on a disabled file";
		EXPECT_EQ(t_->close(fd), 0);
	}

	bytes image;
	ASSERT_EQ(d.reset(), 0);
	ASSERT_NO_FATAL_FAILURE(save(d, &image));
	int fd = -1;
	ASSERT_EQ(d.set_state(RESUMING, &fd), 0);
	ASSERT_EQ(write_stream(*t_, fd, image), 0);
	ASSERT_EQ(d.set_state(STOP), 0);
	EXPECT_LT(t_->write(fd, image.data(), 16), 0)
		<< "a write succeeded on a disabled file";
	EXPECT_EQ(t_->close(fd), 0);
}

// Contract: VFIO_DEVICE_RESET ends a live stream (saving or resuming) and
// returns the device to RUNNING; the old fd no longer reads or writes.
TEST_P(Conformance, DataFdResetEndsTheStream)
{
	Device &d = *src_dev_;
	std::vector<__u32> states = {STOP_COPY, RESUMING};
	if (has(VFIO_MIGRATION_PRE_COPY))
		states.push_back(PRE_COPY);
	for (__u32 s : states) {
		SCOPED_TRACE(state_name(s));
		ASSERT_EQ(d.reset(), 0);
		int fd = -1;
		ASSERT_EQ(d.set_state(s, &fd), 0);
		ASSERT_GE(fd, 0);
		char buf[64] = {};
		if (s != RESUMING) {
			EXPECT_GT(t_->read(fd, buf, sizeof(buf)), 0);
		}
		ASSERT_EQ(d.reset(), 0);
		EXPECT_EQ(get(d), RUNNING);
		if (s == RESUMING)
			EXPECT_LT(t_->write(fd, buf, sizeof(buf)), 0);
		else
			EXPECT_LE(t_->read(fd, buf, sizeof(buf)), 0);
		EXPECT_EQ(t_->close(fd), 0);
	}
}

// Contract: the last close of the device ends a live stream: the reader
// is not left waiting. A uvfio driver opens again in RUNNING (its
// open_device sets it, driver-guide.md); a real device may keep its
// state across the close (the uAPI does not say: mtty does), and only
// the end of the stream is checked there.
TEST_P(Conformance, DataFdCloseEndsTheStream)
{
	int fd;
	ASSERT_NO_FATAL_FAILURE(open_stream(*src_dev_, STOP_COPY, &fd));
	char buf[4096];
	EXPECT_GT(t_->read(fd, buf, sizeof(buf)), 0);
	ASSERT_EQ(real_ ? real_->reopen() : src_.reopen(), 0);
	src_dev_ = std::make_unique<Device>(*t_, src_fd());
	EXPECT_LE(t_->read(fd, buf, sizeof(buf)), 0);
	EXPECT_EQ(t_->close(fd), 0);
	if (!real()) {
		EXPECT_EQ(get(*src_dev_), RUNNING);
	}
}

// Contract: VFIO_MIG_GET_PRECOPY_INFO answers only in PRE_COPY and
// PRE_COPY_P2P; on a STOP_COPY stream, and with an argsz below the
// struct, it fails with EINVAL.
TEST_P(Conformance, PrecopyInfoOnlyInPreCopyStates)
{
	if (!has(VFIO_MIGRATION_PRE_COPY))
		GTEST_SKIP() << "no PRE_COPY";
	Device &d = *src_dev_;
	struct vfio_precopy_info info;
	int fd;
	ASSERT_NO_FATAL_FAILURE(open_stream(d, PRE_COPY, &fd));
	EXPECT_EQ(precopy_info(*t_, fd, &info), 0);
	EXPECT_EQ(precopy_info(*t_, fd, &info, 8), -EINVAL);
	if (has(VFIO_MIGRATION_P2P)) {
		ASSERT_EQ(d.set_state(PRE_COPY_P2P), 0);
		EXPECT_EQ(precopy_info(*t_, fd, &info), 0);
	}
	ASSERT_EQ(d.set_state(STOP_COPY), 0);
	EXPECT_EQ(precopy_info(*t_, fd, &info), -EINVAL);
	EXPECT_EQ(t_->close(fd), 0);	/* before leaving: not this test's */
	EXPECT_EQ(d.set_state(STOP), 0);
}

// Contract: while the initial data is read, PRECOPY_INFO's initial_bytes
// never grows, and it is 0 once the stream pauses (ENOMSG) with the
// device idle.
TEST_P(Conformance, PrecopyInfoInitialBytesNeverGrow)
{
	if (!has(VFIO_MIGRATION_PRE_COPY))
		GTEST_SKIP() << "no PRE_COPY";
	Device &d = *src_dev_;
	int fd;
	ASSERT_NO_FATAL_FAILURE(open_stream(d, PRE_COPY, &fd));
	struct vfio_precopy_info info;
	ASSERT_EQ(precopy_info(*t_, fd, &info), 0);
	EXPECT_GT(info.initial_bytes, 0u);
	__u64 last = info.initial_bytes;
	bytes buf(64 << 10);
	ssize_t n;
	__u64 total = 0;
	while ((n = t_->read(fd, buf.data(), buf.size())) > 0) {
		total += static_cast<__u64>(n);
		ASSERT_EQ(precopy_info(*t_, fd, &info), 0);
		EXPECT_LE(info.initial_bytes, last)
			<< "initial_bytes grew after " << total << " bytes";
		last = info.initial_bytes;
		ASSERT_LT(total, 1ULL << 32);
	}
	EXPECT_TRUE(precopy_pause(int(n), real()))
		<< "read at pre-copy's temporary end: " << n;
	ASSERT_EQ(precopy_info(*t_, fd, &info), 0);
	EXPECT_EQ(info.initial_bytes, 0u);
	EXPECT_EQ(t_->close(fd), 0);
	EXPECT_EQ(d.set_state(RUNNING), 0);
}

// Contract: VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, asked in STOP, is at least
// the number of bytes STOP_COPY then produces.
TEST_P(Conformance, MigDataSizeBoundsStopCopy)
{
	if (!caps_.data_size)
		GTEST_SKIP() << "no MIG_DATA_SIZE";
	Device &d = *src_dev_;
	ASSERT_EQ(d.set_state(STOP), 0);
	__u64 estimate = 0;
	ASSERT_EQ(d.data_size(&estimate), 0);
	bytes s;
	ASSERT_NO_FATAL_FAILURE(save(d, &s));
	EXPECT_GE(estimate, s.size());
}

} // namespace
} // namespace uvfio::conformance
