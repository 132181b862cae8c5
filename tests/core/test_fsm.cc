// SPDX-License-Identifier: GPL-2.0-only
/*
 * The migration FSM against an independent oracle: a breadth-first search
 * over the single arcs the uAPI defines, for every migration_flags
 * combination and every (current, target) pair. The oracle is in
 * fsm_oracle.h, shared with test_migration_core.cc.
 */
#include <gtest/gtest.h>

#include <iterator>
#include <set>
#include <vector>

#include <uvfio/linux/vfio.h>

#include "fsm_oracle.h"

#include <uvfio/tools/fsm.h>

using namespace uvfio_test;

namespace {

/* A device that exists only to carry migration_flags. */
struct FakeDevice {
	struct vfio_device vdev;
	explicit FakeDevice(u32 flags) { vdev.migration_flags = flags; }
};

class FsmOracleTest : public ::testing::TestWithParam<u32>
{
};

// Contract: for every (current, target) pair, vfio_mig_get_next_state
// returns the unique first arc of the shortest allowed path, -EINVAL when
// either state is unsupported or no path exists, and following it reaches
// the target in exactly the shortest number of arcs.
TEST_P(FsmOracleTest, AgreesWithBfs)
{
	const u32 flags = GetParam();
	FakeDevice fake(flags);
	struct vfio_device &dev = fake.vdev;
	int pairs = 0;

	for (int c = 0; c < N; c++) {
		for (int t = 0; t < N; t++) {
			state cur = static_cast<state>(c);
			state tgt = static_cast<state>(t);
			state next = ERROR;
			int ret = vfio_mig_get_next_state(&dev, cur, tgt, &next);
			pairs++;
			if (!has(flags, cur) || !has(flags, tgt)) {
				EXPECT_EQ(ret, -EINVAL) << c << "->" << t;
				continue;
			}
			if (cur == tgt) {
				ASSERT_EQ(ret, 0);
				EXPECT_EQ(next, tgt);
				continue;
			}
			std::vector<int> dist = distances_to(flags, cur, tgt);
			/*
			 * The uAPI forbids returning to pre-copy once STOP_COPY
			 * was reached, although the arcs would allow a path.
			 */
			if (cur == STOP_COPY && is_precopy(tgt))
				dist[cur] = -1;
			if (dist[cur] < 0) {
				EXPECT_EQ(ret, -EINVAL)
					<< "no path " << c << "->" << t;
				continue;
			}
			ASSERT_EQ(ret, 0) << c << "->" << t;
			/* The oracle's choices for the first arc. */
			std::set<int> best;
			for (state a : arcs(flags, cur))
				if (dist[a] == dist[cur] - 1 &&
				    (a == tgt || may_pass(cur, a, tgt)))
					best.insert(a);
			ASSERT_EQ(best.size(), 1u)
				<< "oracle is ambiguous " << c << "->" << t;
			EXPECT_EQ(static_cast<int>(next), *best.begin())
				<< "flags " << flags << ": " << c << "->" << t;

			/* Walking the table takes exactly dist[cur] arcs. */
			state walk = cur;
			int steps = 0;
			while (walk != tgt && steps <= N) {
				ASSERT_EQ(vfio_mig_get_next_state(&dev, walk, tgt,
								  &next),
					  0);
				walk = next;
				steps++;
			}
			EXPECT_EQ(steps, dist[cur]) << c << "->" << t;
		}
	}
	EXPECT_EQ(pairs, N * N);
}

INSTANTIATE_TEST_SUITE_P(AllFlagCombinations, FsmOracleTest,
			 ::testing::Values(SC, SC | P2P, SC | PRE,
					   SC | P2P | PRE));

// Contract: STOP_COPY to a pre-copy state has no path and returns -EINVAL
// (upstream's loop would spin here), for both PRE_COPY devices.
TEST(FsmTest, StopCopyToPreCopyTerminates)
{
	for (u32 flags : {SC | PRE, SC | P2P | PRE}) {
		FakeDevice fake(flags);
	struct vfio_device &dev = fake.vdev;
		state next;
		EXPECT_EQ(vfio_mig_get_next_state(&dev, STOP_COPY, PRE_COPY,
						  &next),
			  -EINVAL);
		if (flags & P2P) {
			EXPECT_EQ(vfio_mig_get_next_state(&dev, STOP_COPY,
							  PRE_COPY_P2P, &next),
				  -EINVAL);
		}
	}
}

// Contract: states outside the uAPI range and ERROR are rejected.
TEST(FsmTest, OutOfRangeStates)
{
	FakeDevice fake(SC | P2P | PRE);
	struct vfio_device &dev = fake.vdev;
	state next;
	EXPECT_EQ(vfio_mig_get_next_state(&dev, RUNNING, static_cast<state>(8),
					  &next),
		  -EINVAL);
	EXPECT_EQ(vfio_mig_get_next_state(&dev, static_cast<state>(99), STOP,
					  &next),
		  -EINVAL);
	EXPECT_EQ(vfio_mig_get_next_state(&dev, RUNNING, ERROR, &next),
		  -EINVAL);
	EXPECT_EQ(vfio_mig_get_next_state(&dev, ERROR, RUNNING, &next),
		  -EINVAL);
}

/* -------- the state helpers of <uvfio/linux/vfio.h> -------- */

static_assert(uvfio::mig_state::ERROR == VFIO_DEVICE_STATE_ERROR &&
		      uvfio::mig_state::STOP == VFIO_DEVICE_STATE_STOP &&
		      uvfio::mig_state::RUNNING == VFIO_DEVICE_STATE_RUNNING &&
		      uvfio::mig_state::STOP_COPY ==
			      VFIO_DEVICE_STATE_STOP_COPY &&
		      uvfio::mig_state::RESUMING == VFIO_DEVICE_STATE_RESUMING &&
		      uvfio::mig_state::RUNNING_P2P ==
			      VFIO_DEVICE_STATE_RUNNING_P2P &&
		      uvfio::mig_state::PRE_COPY == VFIO_DEVICE_STATE_PRE_COPY &&
		      uvfio::mig_state::PRE_COPY_P2P ==
			      VFIO_DEVICE_STATE_PRE_COPY_P2P,
	      "the short names are the uAPI's values");

// Contract: the helpers say of each state what the uAPI does: the device
// runs and may start DMA in RUNNING and PRE_COPY only; pre-copy is
// PRE_COPY and PRE_COPY_P2P; a saving stream is read in STOP_COPY and the
// pre-copy states; a data fd belongs to those and RESUMING.
// vfio_mig_state_name() spells the enum without VFIO_DEVICE_STATE_, and a
// value that is no state is none of these and has no name.
TEST(FsmTest, StateHelpers)
{
	const struct {
		state s;
		const char *name;
		bool running, precopy, saving, has_data;
	} rows[] = {
		{ERROR, "ERROR", false, false, false, false},
		{STOP, "STOP", false, false, false, false},
		{RUNNING, "RUNNING", true, false, false, false},
		{STOP_COPY, "STOP_COPY", false, false, true, true},
		{RESUMING, "RESUMING", false, false, false, true},
		{RUNNING_P2P, "RUNNING_P2P", false, false, false, false},
		{PRE_COPY, "PRE_COPY", true, true, true, true},
		{PRE_COPY_P2P, "PRE_COPY_P2P", false, true, true, true},
	};
	static_assert(std::size(rows) == N, "a row per state");
	for (const auto &r : rows) {
		EXPECT_STREQ(vfio_mig_state_name(r.s), r.name);
		EXPECT_EQ(vfio_mig_state_running(r.s), r.running) << r.name;
		EXPECT_EQ(vfio_mig_state_precopy(r.s), r.precopy) << r.name;
		EXPECT_EQ(vfio_mig_state_saving(r.s), r.saving) << r.name;
		EXPECT_EQ(vfio_mig_state_has_data(r.s), r.has_data) << r.name;
	}
	for (int bad : {-1, N, 99}) {
		EXPECT_EQ(vfio_mig_state_name(bad), nullptr) << bad;
		EXPECT_FALSE(vfio_mig_state_running(bad) ||
			     vfio_mig_state_precopy(bad) ||
			     vfio_mig_state_saving(bad) ||
			     vfio_mig_state_has_data(bad))
			<< bad;
	}
}

/* -------- vfio_mig_step_to_state -------- */

struct StepLog {
	std::vector<state> arcs;
	state fail_at = ERROR; /* arc target that fails */
	state file_at = ERROR; /* arc target that returns a file */
};
StepLog *g_log;

int released_files;
int count_release(struct inode *, struct file *)
{
	released_files++;
	return 0;
}
const struct file_operations counting_fops = {.release = count_release};

struct file *record_step(struct vfio_device *, state next)
{
	g_log->arcs.push_back(next);
	if (next == g_log->fail_at)
		return static_cast<struct file *>(ERR_PTR(-EIO));
	if (next == g_log->file_at)
		return anon_inode_getfile("test", &counting_fops, nullptr,
					  O_RDONLY);
	return nullptr;
}

// Contract: the shared loop performs exactly the table's arcs, one call per
// arc, and returns the last arc's file.
TEST(FsmStepTest, PerformsTableArcs)
{
	FakeDevice fake(SC | P2P | PRE);
	struct vfio_device &dev = fake.vdev;
	StepLog log;
	g_log = &log;
	log.file_at = STOP_COPY;
	state cur = RUNNING;
	struct file *f = vfio_mig_step_to_state(&dev, &cur, STOP_COPY,
						record_step);
	ASSERT_FALSE(IS_ERR_OR_NULL(f));
	EXPECT_EQ(cur, STOP_COPY);
	EXPECT_EQ(log.arcs, (std::vector<state>{RUNNING_P2P, STOP, STOP_COPY}));
	released_files = 0;
	fput(f);
	EXPECT_EQ(released_files, 1);
}

// Contract: a failing arc stops the walk and leaves *cur at the last state
// reached, returning the arc's error.
TEST(FsmStepTest, FailureMidPathLeavesStateReached)
{
	FakeDevice fake(SC | P2P);
	struct vfio_device &dev = fake.vdev;
	StepLog log;
	g_log = &log;
	log.fail_at = STOP;
	state cur = RUNNING;
	struct file *f = vfio_mig_step_to_state(&dev, &cur, STOP_COPY,
						record_step);
	ASSERT_TRUE(IS_ERR(f));
	EXPECT_EQ(PTR_ERR(f), -EIO);
	EXPECT_EQ(cur, RUNNING_P2P);
}

// Contract: a file from an intermediate arc is a driver bug: EINVAL, the
// file is released, the state is the one reached.
TEST(FsmStepTest, FileFromIntermediateArcIsEinval)
{
	FakeDevice fake(SC | P2P);
	struct vfio_device &dev = fake.vdev;
	StepLog log;
	g_log = &log;
	log.file_at = STOP;
	released_files = 0;
	state cur = RUNNING;
	struct file *f = vfio_mig_step_to_state(&dev, &cur, STOP_COPY,
						record_step);
	ASSERT_TRUE(IS_ERR(f));
	EXPECT_EQ(PTR_ERR(f), -EINVAL);
	EXPECT_EQ(released_files, 1);
	EXPECT_EQ(cur, STOP);
}

} // namespace

namespace {

// Contract: the client-side FSM of tools/lib (what vfio-mig-ctl prints as
// the arcs of a SET) names, for every flag combination and every pair of
// states, exactly the arcs of the oracle's unique shortest path, and no
// path where the oracle has none.
TEST(ToolsFsm, PathsAgreeWithOracle)
{
	for (u32 flags : {SC, SC | P2P, SC | PRE, SC | P2P | PRE}) {
		for (int f = 0; f < N; f++) {
			for (int t = 0; t < N; t++) {
				SCOPED_TRACE(testing::Message() << flags << " " << f
								<< "->" << t);
				auto want = shortest_arcs(flags, state(f), state(t));
				std::vector<__u32> got;
				bool ok = uvfio::tools::fsm_path(flags, __u32(f),
								 __u32(t), &got);
				ASSERT_EQ(ok, want.has_value());
				if (!ok)
					continue;
				ASSERT_EQ(got.size(), want->size());
				for (size_t i = 0; i < got.size(); i++)
					EXPECT_EQ(got[i], __u32((*want)[i]));
			}
		}
	}
}

} // namespace
