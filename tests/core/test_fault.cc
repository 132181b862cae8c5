// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fault injection: the facility (<uvfio/linux/fault-inject.h> and the C
 * API of <uvfio/uvfio.h>) and every point the core, the simulated device
 * and the drivers declare. For each point the contract is the same:
 *
 * - the failure reaches the caller by the path a real failure there takes,
 *   with the injected errno (or what the device makes of it);
 * - MIG_DEVICE_STATE GET tells the truth about the state afterwards;
 * - VFIO_DEVICE_RESET brings the device back to RUNNING and a clean
 *   migration then works;
 * - no fd is left behind (memory: run under ASan);
 * - nothing hangs (the test finishing is the check).
 *
 * Everything goes through the syscall surface except the facility's own
 * unit tests, which declare test points with the driver-facing API.
 */
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <uvfio/linux/fault-inject.h>
#include <uvfio/uapi/vfio.h>
#include <uvfio/uvfio.h>

#include "simnic_dev.h"
#include "test_util.h"

using namespace uvfio_test;

namespace {

/* An errno no path under test returns by itself: seen, it was injected. */
constexpr int INJ = ENOLINK;

constexpr unsigned ERROR = VFIO_DEVICE_STATE_ERROR;
constexpr unsigned STOP = VFIO_DEVICE_STATE_STOP;
constexpr unsigned RUNNING = VFIO_DEVICE_STATE_RUNNING;
constexpr unsigned STOP_COPY = VFIO_DEVICE_STATE_STOP_COPY;
constexpr unsigned RESUMING = VFIO_DEVICE_STATE_RESUMING;
constexpr unsigned RUNNING_P2P = VFIO_DEVICE_STATE_RUNNING_P2P;
constexpr unsigned PRE_COPY = VFIO_DEVICE_STATE_PRE_COPY;
constexpr unsigned PRE_COPY_P2P = VFIO_DEVICE_STATE_PRE_COPY_P2P;

const char *const state_names[] = {"ERROR",    "STOP",	   "RUNNING",
				   "STOP_COPY", "RESUMING", "RUNNING_P2P",
				   "PRE_COPY",  "PRE_COPY_P2P"};

using bytes = std::vector<unsigned char>;

/* Every test starts and ends with nothing armed. */
class Fault : public ::testing::Test
{
protected:
	void SetUp() override { uvfio_fault_clear(nullptr); }
	void TearDown() override { uvfio_fault_clear(nullptr); }
};

/* -------- the device, through the uAPI -------- */

unsigned get_state(int fd)
{
	FeatureArg<struct vfio_device_feature_mig_state> a(
		VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
	EXPECT_EQ(a.ioctl(fd), 0);
	return a.d()->device_state;
}

int reset(int fd)
{
	return uvfio_ioctl(fd, VFIO_DEVICE_RESET, nullptr) ? errno : 0;
}

/* Read a data fd to its end: 0, or the errno that stopped it. */
int read_stream(int data_fd, bytes *out)
{
	std::vector<unsigned char> buf(1 << 20);
	for (;;) {
		ssize_t n = uvfio_read(data_fd, buf.data(), buf.size());
		if (n == 0)
			return 0;
		if (n < 0)
			return errno;
		out->insert(out->end(), buf.begin(), buf.begin() + n);
	}
}

/* Write all of in: 0 or the errno. */
int write_stream(int data_fd, const bytes &in)
{
	for (size_t off = 0; off < in.size();) {
		ssize_t n = uvfio_write(data_fd, in.data() + off, in.size() - off);
		if (n < 0)
			return errno;
		off += size_t(n);
	}
	return 0;
}

/* STOP_COPY's whole stream, the device left in STOP. */
bytes save(SimnicDev &d)
{
	int data_fd = -1;
	bytes s;
	EXPECT_EQ(d.set_state(STOP_COPY, &data_fd), 0);
	EXPECT_EQ(read_stream(data_fd, &s), 0);
	EXPECT_EQ(d.set_state(STOP), 0);
	uvfio_close(data_fd);
	return s;
}

bytes device_memory(SimnicDev &d)
{
	bytes m(d.mem_size());
	EXPECT_EQ(uvfio_pread(d.fd(), m.data(), m.size(), BAR2_OFF),
		  ssize_t(m.size()));
	return m;
}

/*
 * The recovery check: src (RUNNING) migrates by stop-copy into a fresh
 * device of the same kind, which runs with src's device memory; src runs
 * again afterwards.
 */
void expect_clean_migration(SimnicDev &src, const std::string &driver,
			    const std::string &extra)
{
	ASSERT_EQ(get_state(src.fd()), RUNNING);
	SimnicDev dst(extra, 4 << 20, driver);
	ASSERT_TRUE(dst.ok());
	bytes s = save(src);
	ASSERT_FALSE(s.empty());
	int data_fd = -1;
	ASSERT_EQ(dst.set_state(RESUMING, &data_fd), 0);
	EXPECT_EQ(write_stream(data_fd, s), 0);
	EXPECT_EQ(dst.set_state(STOP), 0);
	uvfio_close(data_fd);
	EXPECT_EQ(dst.set_state(RUNNING), 0);
	EXPECT_EQ(src.set_state(RUNNING), 0);
	EXPECT_TRUE(device_memory(src) == device_memory(dst))
		<< "the destination's device memory differs";
}

/* -------- the facility -------- */

DEFINE_FAULT_POINT(test_a_b, "test.fault.a.b", EPROTO,
		   "fault_test: a point for the facility's unit tests")
DEFINE_FAULT_POINT(test_a_c, "test.fault.a.c", EBADMSG,
		   "fault_test: its sibling")
DEFINE_FAULT_POINT(test_fired_x, "test.fired.x", EIO,
		   "fault_test: uvfio_fault_fired()'s first")
DEFINE_FAULT_POINT(test_fired_y, "test.fired.y", EIO,
		   "fault_test: uvfio_fault_fired()'s second")

// Contract: arming checks its arguments: an unknown name is ENOENT (a
// misspelt point must not silently never fire), nth 0, a negative or huge
// errno and unknown flags are EINVAL, NULL is EFAULT. Clearing an unknown
// name is ENOENT, clearing a known one that is not armed is fine.
TEST_F(Fault, ArmingChecksItsArguments)
{
	EXPECT_EQ(uvfio_fault_set("no.such.point", 1, 0, 0), -1);
	EXPECT_EQ(errno, ENOENT);
	EXPECT_EQ(uvfio_fault_set("test.fault.a.", 1, 0, 0), -1);
	EXPECT_EQ(errno, ENOENT);
	EXPECT_EQ(uvfio_fault_set("test.fau", 1, 0, 0), -1)
		<< "a prefix counts only at a dot";
	EXPECT_EQ(errno, ENOENT);
	EXPECT_EQ(uvfio_fault_set("test.fault.a.b", 0, 0, 0), -1);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(uvfio_fault_set("test.fault.a.b", 1, -5, 0), -1);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(uvfio_fault_set("test.fault.a.b", 1, 100000, 0), -1);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(uvfio_fault_set("test.fault.a.b", 1, 0, 0x80), -1);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(uvfio_fault_set(nullptr, 1, 0, 0), -1);
	EXPECT_EQ(errno, EFAULT);
	EXPECT_EQ(uvfio_fault_hits("test.fault.a.b"), -1);
	EXPECT_EQ(errno, ENOENT);
	EXPECT_EQ(uvfio_fault_clear("no.such.point"), -1);
	EXPECT_EQ(errno, ENOENT);
	EXPECT_EQ(uvfio_fault_clear("test.fault.a.b"), 0);
	EXPECT_EQ(uvfio_faults_armed.load(), 0u);
}

// Contract: nth fails exactly the nth hit after arming, with the point's
// default errno when armed with 0 and the given one otherwise; PERSIST
// fails the nth and every later hit; hits counts every hit, failing or
// not; re-arming restarts the count; clear disarms and the point is free
// again.
TEST_F(Fault, NthAndPersist)
{
	ASSERT_EQ(uvfio_fault_set("test.fault.a.b", 3, 0, 0), 0);
	EXPECT_EQ(should_fail("test.fault.a.b"), 0);
	EXPECT_EQ(should_fail("test.fault.a.b"), 0);
	EXPECT_EQ(should_fail("test.fault.a.b"), -EPROTO);
	EXPECT_EQ(should_fail("test.fault.a.b"), 0);
	EXPECT_EQ(should_fail("test.fault.a.c"), 0) << "a sibling is not armed";
	EXPECT_EQ(uvfio_fault_hits("test.fault.a.b"), 4);

	ASSERT_EQ(uvfio_fault_set("test.fault.a.b", 2, INJ,
				  UVFIO_FAULT_PERSIST), 0);
	EXPECT_EQ(uvfio_fault_hits("test.fault.a.b"), 0);
	EXPECT_EQ(should_fail("test.fault.a.b"), 0);
	for (int i = 0; i < 5; i++)
		EXPECT_EQ(should_fail("test.fault.a.b"), -INJ);
	EXPECT_EQ(uvfio_fault_hits("test.fault.a.b"), 6);

	EXPECT_EQ(uvfio_fault_clear("test.fault.a.b"), 0);
	EXPECT_EQ(should_fail("test.fault.a.b"), 0);
	EXPECT_EQ(uvfio_faults_armed.load(), 0u)
		<< "nothing armed: the fast path again";
}

// Contract: arming a dotted prefix arms every point under it, each failing
// with its own default errno; its hit count is the sum of theirs; a
// point's own spec and its prefix's both count a hit.
TEST_F(Fault, PrefixArmsEveryPointUnderIt)
{
	ASSERT_EQ(uvfio_fault_set("test.fault.a", 1, 0, UVFIO_FAULT_PERSIST),
		  0);
	EXPECT_EQ(should_fail("test.fault.a.b"), -EPROTO);
	EXPECT_EQ(should_fail("test.fault.a.c"), -EBADMSG);
	EXPECT_EQ(uvfio_fault_hits("test.fault.a"), 2);

	ASSERT_EQ(uvfio_fault_set("test.fault.a.b", 5, 0, 0), 0);
	EXPECT_EQ(should_fail("test.fault.a.b"), -EPROTO);
	EXPECT_EQ(uvfio_fault_hits("test.fault.a.b"), 1);
	EXPECT_EQ(uvfio_fault_hits("test.fault.a"), 3);
	EXPECT_EQ(should_failf("test.fault.a.%c", 'c'), -EBADMSG);
}

// Contract: a point checked through its object (DEFINE_FAULT_POINT's id)
// is the point registered under its name: unarmed it never fails; armed by
// name it fails at the nth hit, counting hits with should_fail(name); armed
// by a prefix it fails with its own default errno, or the one given; and
// the listing shows it as declared.
TEST_F(Fault, CheckedByObject)
{
	EXPECT_STREQ(test_a_b.name, "test.fault.a.b");
	EXPECT_EQ(should_fail(&test_a_b), 0) << "nothing armed";

	ASSERT_EQ(uvfio_fault_set("test.fault.a.b", 2, 0, 0), 0);
	EXPECT_EQ(should_fail(&test_a_b), 0);
	EXPECT_EQ(should_fail("test.fault.a.b"), -EPROTO)
		<< "the object and the name are one point, one count";
	EXPECT_EQ(should_fail(&test_a_b), 0);
	EXPECT_EQ(should_fail(&test_a_c), 0) << "a sibling is not armed";
	EXPECT_EQ(uvfio_fault_hits("test.fault.a.b"), 3);

	ASSERT_EQ(uvfio_fault_set("test.fault.a", 1, 0, 0), 0);
	EXPECT_EQ(should_fail(&test_a_c), -EBADMSG);
	ASSERT_EQ(uvfio_fault_set("test.fault.a", 1, INJ, UVFIO_FAULT_PERSIST),
		  0);
	EXPECT_EQ(should_fail(&test_a_c), -INJ);
	EXPECT_EQ(should_fail(&test_a_c), -INJ);
	EXPECT_EQ(uvfio_fault_clear(nullptr), 0);
	EXPECT_EQ(should_fail(&test_a_c), 0);

	bool listed = false;
	const char *name, *doc;
	int err;
	for (unsigned int i = 0; !uvfio_fault_list(i, &name, &err, &doc); i++)
		if (std::string(name) == "test.fault.a.c") {
			listed = true;
			EXPECT_EQ(err, EBADMSG);
			EXPECT_STREQ(doc, test_a_c.doc);
		}
	EXPECT_TRUE(listed);
}

// Contract: uvfio_fault_fired() lists the points that failed a call, by
// their own name (not the prefix armed), each once however often it
// fired, in the order they first fired; a point hit but not failed is not
// there; past the last is ENOENT.
TEST_F(Fault, FiredPointsNamedOnceInOrder)
{
	auto fired = [] {
		std::vector<std::string> v;
		const char *name;
		for (unsigned int i = 0; !uvfio_fault_fired(i, &name); i++)
			v.push_back(name);
		return v;
	};
	auto has = [](const std::vector<std::string> &v, const char *n) {
		return std::find(v.begin(), v.end(), n) != v.end();
	};
	std::vector<std::string> before = fired();
	ASSERT_FALSE(has(before, "test.fired.x"));
	const char *name = nullptr;
	errno = 0;
	EXPECT_EQ(uvfio_fault_fired(before.size(), &name), -1);
	EXPECT_EQ(errno, ENOENT);

	ASSERT_EQ(uvfio_fault_set("test.fired", 2, 0, UVFIO_FAULT_PERSIST), 0);
	EXPECT_EQ(should_fail(&test_fired_y), 0) << "hit, not failed";
	EXPECT_FALSE(has(fired(), "test.fired.y"));
	EXPECT_EQ(should_fail(&test_fired_x), -EIO);
	EXPECT_EQ(should_fail(&test_fired_y), -EIO);
	EXPECT_EQ(should_fail(&test_fired_x), -EIO);
	EXPECT_EQ(uvfio_fault_clear(nullptr), 0);

	std::vector<std::string> after = fired();
	ASSERT_EQ(after.size(), before.size() + 2);
	EXPECT_TRUE(std::equal(before.begin(), before.end(), after.begin()))
		<< "earlier points keep their place";
	EXPECT_EQ(after[before.size()], "test.fired.x");
	EXPECT_EQ(after[before.size() + 1], "test.fired.y");
	EXPECT_FALSE(has(after, "test.fired"));
}

// Contract: should_fail is thread-safe: concurrent hits are each counted
// once, and arming and clearing other points meanwhile is safe (run under
// TSan).
TEST_F(Fault, ConcurrentHits)
{
	ASSERT_EQ(uvfio_fault_set("test.fault.a.b", 1, 0, UVFIO_FAULT_PERSIST),
		  0);
	constexpr int threads = 4, per = 2000;
	std::vector<std::thread> t;
	std::atomic<int> failed{0};
	for (int i = 0; i < threads; i++)
		t.emplace_back([&] {
			for (int j = 0; j < per; j++)
				if (should_fail("test.fault.a.b"))
					failed++;
		});
	t.emplace_back([] {
		for (int j = 0; j < per; j++) {
			uvfio_fault_set("test.fault.a.c", 1, 0, 0);
			uvfio_fault_clear("test.fault.a.c");
		}
	});
	for (auto &th : t)
		th.join();
	EXPECT_EQ(failed.load(), threads * per);
	EXPECT_EQ(uvfio_fault_hits("test.fault.a.b"), threads * per);
}

/* The arcs of the migration FSM and the flags that allow each. */
struct Arc {
	unsigned from, to;
	__u32 need, forbid;
};
constexpr __u32 P2P = VFIO_MIGRATION_P2P, PRE = VFIO_MIGRATION_PRE_COPY;
const Arc arcs[] = {
	{RUNNING, STOP, 0, P2P},
	{STOP, RUNNING, 0, P2P},
	{RUNNING, RUNNING_P2P, P2P, 0},
	{RUNNING_P2P, RUNNING, P2P, 0},
	{RUNNING_P2P, STOP, P2P, 0},
	{STOP, RUNNING_P2P, P2P, 0},
	{STOP, STOP_COPY, 0, 0},
	{STOP_COPY, STOP, 0, 0},
	{STOP, RESUMING, 0, 0},
	{RESUMING, STOP, 0, 0},
	{RUNNING, PRE_COPY, PRE, 0},
	{PRE_COPY, RUNNING, PRE, 0},
	{RUNNING_P2P, PRE_COPY_P2P, PRE | P2P, 0},
	{PRE_COPY_P2P, RUNNING_P2P, PRE | P2P, 0},
	{PRE_COPY, PRE_COPY_P2P, PRE | P2P, 0},
	{PRE_COPY_P2P, PRE_COPY, PRE | P2P, 0},
	{PRE_COPY_P2P, STOP_COPY, PRE | P2P, 0},
	{PRE_COPY, STOP_COPY, PRE, P2P},
};

std::string arc_point(const char *family, const Arc &a)
{
	return std::string("mig.") + family + "." + state_names[a.from] +
	       "->" + state_names[a.to];
}

// Contract: the documented points are declared (so they can be listed and
// armed), in name order, each once, with a description: one mig.arc and
// one mig.error per FSM arc, the data fd's read, write and PRECOPY_INFO,
// DMA, DMA logging's start, stop and read, the IOMMU's dirty-page read,
// the device's first open and its state load.
TEST_F(Fault, ListHasTheDocumentedPoints)
{
	std::set<std::string> listed;
	std::string prev;
	const char *name, *doc;
	int err;
	for (unsigned i = 0; !uvfio_fault_list(i, &name, &err, &doc); i++) {
		EXPECT_LT(prev, name) << "not in name order";
		prev = name;
		EXPECT_GT(err, 0) << name;
		EXPECT_STRNE(doc, "") << name;
		listed.insert(name);
	}
	EXPECT_EQ(errno, ENOENT);
	std::vector<std::string> want = {
		"mig.data.read",      "mig.data.write",	    "mig.precopy_info",
		"dma.read",	      "dma.write",	    "log.start",
		"log.stop",	      "log.read_and_clear", "iommu.dirty_bitmap",
		"device.open",	      "simdev.load_state",  "skeleton.save_state",
	};
	for (const Arc &a : arcs) {
		want.push_back(arc_point("arc", a));
		want.push_back(arc_point("error", a));
	}
	for (const auto &w : want)
		EXPECT_TRUE(listed.count(w)) << w << " is not declared";
	size_t arcs_listed = 0;
	for (const auto &l : listed)
		arcs_listed += l.rfind("mig.arc.", 0) == 0;
	EXPECT_EQ(arcs_listed, std::size(arcs)) << "an arc this test misses";
}

/* -------- every arc, on every driver -------- */

struct DriverCase {
	const char *driver;
	const char *extra;
	__u32 flags;
};

class FaultArc : public ::testing::TestWithParam<DriverCase>
{
protected:
	void SetUp() override { uvfio_fault_clear(nullptr); }
	void TearDown() override { uvfio_fault_clear(nullptr); }
};

/*
 * One arc, failed by the point of family ("arc" or "error"): the SET
 * fails with the injected errno, GET says where the device is (the arc's
 * source, or ERROR from which no SET leads anywhere), reset brings it to
 * RUNNING with no fd left behind, and a clean migration works after.
 */
void fail_one_arc(const DriverCase &c, const Arc &a, const char *family)
{
	const std::string point = arc_point(family, a);
	SCOPED_TRACE(point);
	SimnicDev d(c.extra, 4 << 20, c.driver);
	ASSERT_TRUE(d.ok());
	const int fds = count_open_fds();

	int data_fd = -1, new_fd = -1;
	ASSERT_EQ(d.set_state(a.from, &data_fd), 0);
	ASSERT_EQ(uvfio_fault_set(point.c_str(), 1, INJ, 0), 0);
	EXPECT_EQ(d.set_state(a.to, &new_fd), INJ);
	EXPECT_EQ(new_fd, -1);
	EXPECT_EQ(uvfio_fault_hits(point.c_str()), 1);
	uvfio_fault_clear(point.c_str());

	if (std::string(family) == "arc") {
		EXPECT_EQ(get_state(d.fd()), a.from)
			<< "the arc failed before changing anything";
	} else {
		EXPECT_EQ(get_state(d.fd()), ERROR);
		EXPECT_EQ(d.set_state(a.from), EINVAL)
			<< "no arc leads out of ERROR";
		EXPECT_EQ(get_state(d.fd()), ERROR);
	}
	EXPECT_EQ(reset(d.fd()), 0);
	EXPECT_EQ(get_state(d.fd()), RUNNING);
	if (data_fd >= 0)
		uvfio_close(data_fd);
	EXPECT_EQ(count_open_fds(), fds);
	expect_clean_migration(d, c.driver, c.extra);
}

// Contract: every arc the driver takes can be failed on demand, in both
// flavours, and each failure keeps the contract in the header comment.
TEST_P(FaultArc, EveryArcInBothFlavours)
{
	const DriverCase &c = GetParam();
	int tried = 0;
	for (const Arc &a : arcs) {
		if ((a.need & c.flags) != a.need || (a.forbid & c.flags))
			continue;
		fail_one_arc(c, a, "arc");
		fail_one_arc(c, a, "error");
		tried++;
	}
	EXPECT_GE(tried, 6);
}

// Contract: "mig.arc" arms every arc; a failure in the middle of a
// multi-arc SET leaves the device at the state reached, GET says which,
// and the user may carry on from there without a reset.
TEST_P(FaultArc, MidPathFailureStopsAtTheStateReached)
{
	const DriverCase &c = GetParam();
	SimnicDev d(c.extra, 4 << 20, c.driver);
	ASSERT_TRUE(d.ok());
	/*
	 * RUNNING -> STOP_COPY takes two arcs, or three with P2P; the second
	 * fails.
	 */
	unsigned reached = c.flags & P2P ? RUNNING_P2P : STOP;
	int nth = 2;
	ASSERT_EQ(uvfio_fault_set("mig.arc", unsigned(nth), INJ, 0), 0);
	int data_fd = -1;
	EXPECT_EQ(d.set_state(STOP_COPY, &data_fd), INJ);
	EXPECT_EQ(data_fd, -1);
	EXPECT_EQ(get_state(d.fd()), reached);
	EXPECT_EQ(uvfio_fault_hits("mig.arc"), nth);
	uvfio_fault_clear("mig.arc");
	EXPECT_EQ(d.set_state(RUNNING), 0);
	expect_clean_migration(d, c.driver, c.extra);
}

INSTANTIATE_TEST_SUITE_P(
	Drivers, FaultArc,
	::testing::Values(
		DriverCase{"simnic", "", VFIO_MIGRATION_STOP_COPY | P2P | PRE},
		DriverCase{"simmin", "", VFIO_MIGRATION_STOP_COPY},
		DriverCase{"skeleton", "", VFIO_MIGRATION_STOP_COPY},
		DriverCase{"testdev", "mig=stop_copy|pre_copy",
			   VFIO_MIGRATION_STOP_COPY | PRE}),
	[](const ::testing::TestParamInfo<DriverCase> &i) {
		return std::string(i.param.driver);
	});

// Contract: a failed arc out of a data-transfer state leaves the stream
// alone: from STOP_COPY the whole stream still reads to its end and loads;
// from PRE_COPY_P2P the same SET again reaches STOP_COPY and the stream
// goes on to its end. (The pump stops across the failed arc and resumes.)
TEST_F(Fault, FailedArcKeepsTheStream)
{
	for (unsigned from : {STOP_COPY, PRE_COPY_P2P}) {
		SCOPED_TRACE(state_names[from]);
		SimnicDev src("seed=8"), dst;
		ASSERT_TRUE(src.ok() && dst.ok());
		int data_fd = -1;
		ASSERT_EQ(src.set_state(from, &data_fd), 0);
		const Arc a = {from, from == STOP_COPY ? STOP : STOP_COPY, 0, 0};
		const std::string point = arc_point("arc", a);
		ASSERT_EQ(uvfio_fault_set(point.c_str(), 1, INJ, 0), 0);
		EXPECT_EQ(src.set_state(a.to), INJ);
		EXPECT_EQ(get_state(src.fd()), from);
		if (from == PRE_COPY_P2P) {
			EXPECT_EQ(src.set_state(STOP_COPY), 0);
		}
		bytes s;
		EXPECT_EQ(read_stream(data_fd, &s), 0);
		uvfio_close(data_fd);
		ASSERT_EQ(dst.set_state(RESUMING, &data_fd), 0);
		EXPECT_EQ(write_stream(data_fd, s), 0);
		EXPECT_EQ(dst.set_state(STOP), 0);
		uvfio_close(data_fd);
		EXPECT_TRUE(device_memory(src) == device_memory(dst));
		uvfio_fault_clear(nullptr);
	}
}

// Contract: an arc that breaks the device while a stream is open ends the
// stream: a reader gets what was pumped and then the end, it is not left
// waiting; the device is in ERROR until reset.
TEST_F(Fault, BrokenDeviceEndsItsStream)
{
	SimnicDev d("seed=9");
	ASSERT_TRUE(d.ok());
	int data_fd = -1;
	ASSERT_EQ(d.set_state(PRE_COPY, &data_fd), 0);
	ASSERT_EQ(uvfio_fault_set("mig.error.PRE_COPY->PRE_COPY_P2P", 1, INJ,
				  0), 0);
	EXPECT_EQ(d.set_state(STOP_COPY), INJ);
	EXPECT_EQ(get_state(d.fd()), ERROR);
	bytes s;
	int err = read_stream(data_fd, &s);
	EXPECT_TRUE(err == 0 || err == ENODEV) << strerror(err);
	uvfio_close(data_fd);
	EXPECT_EQ(reset(d.fd()), 0);
	EXPECT_EQ(get_state(d.fd()), RUNNING);
	uvfio_fault_clear(nullptr);
	expect_clean_migration(d, "simnic", "seed=9");
}

/* -------- the data fd -------- */

// Contract: a failed driver read in STOP_COPY ends the stream: the reader
// gets the bytes pumped before it, then the injected errno (every time,
// not an end of stream); the state stays STOP_COPY; the next SET fails
// once with the errno before any arc; then the device moves again, reset
// brings it to RUNNING, and no fd is left behind.
TEST_F(Fault, DataReadInStopCopy)
{
	SimnicDev d("seed=3");
	ASSERT_TRUE(d.ok());
	LogCapture log;
	const int fds = count_open_fds();
	ASSERT_EQ(uvfio_fault_set("mig.data.read", 2, INJ, 0), 0);
	int data_fd = -1;
	ASSERT_EQ(d.set_state(STOP_COPY, &data_fd), 0);
	bytes got;
	EXPECT_EQ(read_stream(data_fd, &got), INJ);
	EXPECT_GT(got.size(), 0u) << "the first driver read succeeded";
	char c;
	EXPECT_EQ(uvfio_read(data_fd, &c, 1), -1);
	EXPECT_EQ(errno, INJ) << "the error stays";
	EXPECT_EQ(get_state(d.fd()), STOP_COPY);
	EXPECT_EQ(d.set_state(STOP), INJ);
	EXPECT_EQ(get_state(d.fd()), STOP_COPY)
		<< "the failed stream refused the SET before any arc";
	EXPECT_EQ(d.set_state(STOP), 0);
	EXPECT_EQ(reset(d.fd()), 0);
	EXPECT_EQ(get_state(d.fd()), RUNNING);
	uvfio_close(data_fd);
	EXPECT_EQ(count_open_fds(), fds);
	EXPECT_TRUE(log.contains("fault injected at mig.data.read"));
	EXPECT_TRUE(log.contains("migration data stream: driver read failed"));
	uvfio_fault_clear(nullptr);
	expect_clean_migration(d, "simnic", "seed=3");
}

// Contract: a plain read(2) on the data fd tells a failed stream from a
// finished one: after the bytes pumped before the failure it gets
// ECONNRESET, never end of file.
TEST_F(Fault, DataReadSeenByARawReader)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	ASSERT_EQ(uvfio_fault_set("mig.data.read", 3, INJ, 0), 0);
	int data_fd = -1;
	ASSERT_EQ(d.set_state(STOP_COPY, &data_fd), 0);
	std::vector<char> buf(1 << 16);
	ssize_t n;
	size_t total = 0;
	while ((n = read(data_fd, buf.data(), buf.size())) > 0)
		total += size_t(n);
	EXPECT_EQ(n, -1);
	EXPECT_EQ(errno, ECONNRESET);
	EXPECT_GT(total, 0u);
	EXPECT_EQ(reset(d.fd()), 0);
	uvfio_close(data_fd);
	EXPECT_EQ(get_state(d.fd()), RUNNING);
}

// Contract: in PRE_COPY the same: the reader gets the errno, GET says
// PRE_COPY, the next SET fails once, the device can then leave PRE_COPY.
TEST_F(Fault, DataReadInPreCopy)
{
	SimnicDev d("seed=4");
	ASSERT_TRUE(d.ok());
	const int fds = count_open_fds();
	ASSERT_EQ(uvfio_fault_set("mig.data.read", 1, INJ, 0), 0);
	int data_fd = -1;
	ASSERT_EQ(d.set_state(PRE_COPY, &data_fd), 0);
	bytes got;
	EXPECT_EQ(read_stream(data_fd, &got), INJ);
	EXPECT_EQ(got.size(), 0u);
	EXPECT_EQ(get_state(d.fd()), PRE_COPY);
	EXPECT_EQ(d.set_state(PRE_COPY_P2P), INJ);
	EXPECT_EQ(get_state(d.fd()), PRE_COPY);
	EXPECT_EQ(d.set_state(RUNNING), 0);
	uvfio_close(data_fd);
	EXPECT_EQ(count_open_fds(), fds);
	EXPECT_EQ(reset(d.fd()), 0);
	EXPECT_EQ(get_state(d.fd()), RUNNING);
	expect_clean_migration(d, "simnic", "seed=4");
}

// Contract: a failed driver write while resuming: the writer may see the
// errno (or its bytes vanish into the broken stream), RESUMING -> STOP
// fails with it, GET says RESUMING, reset recovers, and loading the same
// stream again then works.
TEST_F(Fault, DataWriteWhileResuming)
{
	SimnicDev src("seed=5"), dst;
	ASSERT_TRUE(src.ok() && dst.ok());
	bytes s = save(src);
	ASSERT_EQ(src.set_state(RUNNING), 0);
	const int fds = count_open_fds();

	ASSERT_EQ(uvfio_fault_set("mig.data.write", 2, INJ, 0), 0);
	int data_fd = -1;
	ASSERT_EQ(dst.set_state(RESUMING, &data_fd), 0);
	int werr = write_stream(data_fd, s);
	EXPECT_TRUE(werr == 0 || werr == INJ) << strerror(werr);
	EXPECT_EQ(dst.set_state(STOP), INJ);
	EXPECT_EQ(get_state(dst.fd()), RESUMING);
	EXPECT_EQ(reset(dst.fd()), 0);
	EXPECT_EQ(get_state(dst.fd()), RUNNING);
	uvfio_close(data_fd);
	EXPECT_EQ(count_open_fds(), fds);
	uvfio_fault_clear(nullptr);

	ASSERT_EQ(dst.set_state(RESUMING, &data_fd), 0);
	EXPECT_EQ(write_stream(data_fd, s), 0);
	EXPECT_EQ(dst.set_state(RUNNING), 0);
	uvfio_close(data_fd);
	EXPECT_TRUE(device_memory(src) == device_memory(dst));
}

// Contract: the device refusing a state at RESUMING -> STOP (after the
// whole stream checked out) fails the arc with its errno and leaves the
// device RESUMING with the stream kept: the same SET again succeeds.
// For both drivers of the simulated function that load its state.
TEST_F(Fault, DeviceRefusesTheStateThenAccepts)
{
	for (const char *driver : {"simnic", "skeleton"}) {
		SCOPED_TRACE(driver);
		SimnicDev src("seed=6", 4 << 20, driver),
			dst("", 4 << 20, driver);
		ASSERT_TRUE(src.ok() && dst.ok());
		LogCapture log;
		bytes s = save(src);
		ASSERT_EQ(src.set_state(RUNNING), 0);
		int data_fd = -1;
		ASSERT_EQ(dst.set_state(RESUMING, &data_fd), 0);
		EXPECT_EQ(write_stream(data_fd, s), 0);
		ASSERT_EQ(uvfio_fault_set("simdev.load_state", 1, 0, 0), 0);
		EXPECT_EQ(dst.set_state(STOP), EIO);
		EXPECT_TRUE(log.contains("the device refused the state"));
		EXPECT_EQ(get_state(dst.fd()), RESUMING);
		EXPECT_EQ(dst.set_state(STOP), 0);
		EXPECT_EQ(dst.set_state(RUNNING), 0);
		uvfio_close(data_fd);
		EXPECT_TRUE(device_memory(src) == device_memory(dst));
		uvfio_fault_clear(nullptr);
	}
}

// Contract: a point a driver declares itself (the skeleton's save-state
// command) fails its arc through the driver's own unwinding: SET fails
// with the errno at STOP -> STOP_COPY, GET says STOP (the arcs before it
// were taken), nothing is left behind, and the device recovers.
TEST_F(Fault, DriverDeclaredPoint)
{
	SimnicDev d("seed=10", 4 << 20, "skeleton");
	ASSERT_TRUE(d.ok());
	const int fds = count_open_fds();
	ASSERT_EQ(uvfio_fault_set("skeleton.save_state", 1, 0, 0), 0);
	int data_fd = -1;
	EXPECT_EQ(d.set_state(STOP_COPY, &data_fd), EIO);
	EXPECT_EQ(data_fd, -1);
	EXPECT_EQ(get_state(d.fd()), STOP);
	EXPECT_EQ(count_open_fds(), fds);
	EXPECT_EQ(reset(d.fd()), 0);
	EXPECT_EQ(get_state(d.fd()), RUNNING);
	uvfio_fault_clear(nullptr);
	expect_clean_migration(d, "skeleton", "seed=10");
}

/* -------- DMA -------- */

struct simdev_desc fill(__u64 dst, __u64 len, __u8 byte)
{
	struct simdev_desc d = {};
	d.opcode = SIMDEV_OP_FILL;
	d.dst = dst;
	d.len = len;
	d.arg = byte;
	return d;
}

/* Wait until STATUS.FAULT is set (the engine reports on its own thread). */
bool wait_fault(SimnicDev &d)
{
	for (int i = 0; i < 50000; i++) {
		if (d.reg(SIMDEV_REG_STATUS) & SIMDEV_STATUS_FAULT)
			return true;
		usleep(200);
	}
	return false;
}

// Contract: a DMA write the IOMMU refuses is a device DMA fault: the
// descriptor completes with status FAULT, STATUS.FAULT and FAULT_IOVA name
// the access, the engine halts, and guest memory is untouched; the
// migration state is not affected; a reset clears the fault and the
// engine works again; a clean migration then works.
TEST_F(Fault, DmaWriteFaults)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	LogCapture log;
	d.setup_ring();
	const __u64 iova = GUEST_IOVA + d.data_off();
	ASSERT_EQ(uvfio_fault_set("dma.write", 1, 0, 0), 0);
	d.post(fill(iova, 4096, 0x5a));
	ASSERT_TRUE(d.wait_done(1));
	EXPECT_EQ(d.slot(0)->status, __u32(SIMDEV_DESC_FAULT));
	EXPECT_TRUE(d.reg(SIMDEV_REG_STATUS) & SIMDEV_STATUS_FAULT);
	EXPECT_EQ(d.reg64(SIMDEV_REG_FAULT_IOVA_LO), iova);
	EXPECT_EQ(d.reg(SIMDEV_REG_ERRORS), 1u);
	EXPECT_EQ(d.guest()[d.data_off()], 0);
	EXPECT_EQ(get_state(d.fd()), RUNNING);
	EXPECT_TRUE(log.contains("(descriptor data); engine halted"));

	EXPECT_EQ(reset(d.fd()), 0);
	EXPECT_FALSE(d.reg(SIMDEV_REG_STATUS) & SIMDEV_STATUS_FAULT);
	EXPECT_EQ(get_state(d.fd()), RUNNING);
	/* The reset cleared the ring registers: start again at slot 0. */
	d.setup_ring();
	*d.slot(0) = fill(iova, 4096, 0x5a);
	d.post(fill(iova + 4096, 4096, 0x5b));
	ASSERT_TRUE(d.wait_done(2));
	EXPECT_EQ(d.slot(1)->status, __u32(SIMDEV_DESC_DONE));
	EXPECT_EQ(d.guest()[d.data_off()], 0x5a);
	EXPECT_EQ(d.guest()[d.data_off() + 4096], 0x5b);
	expect_clean_migration(d, "simnic", "");
}

// Contract: a DMA read the IOMMU refuses faults the descriptor fetch: the
// engine halts with FAULT_IOVA at the ring slot and executes nothing;
// clearing STATUS.FAULT (W1C) lets it fetch again and complete.
TEST_F(Fault, DmaReadFaultsTheFetch)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	d.setup_ring();
	ASSERT_EQ(uvfio_fault_set("dma.read", 1, 0, 0), 0);
	d.post(fill(GUEST_IOVA + d.data_off(), 4096, 0x77));
	ASSERT_TRUE(wait_fault(d));
	EXPECT_EQ(d.reg64(SIMDEV_REG_FAULT_IOVA_LO), GUEST_IOVA);
	EXPECT_EQ(d.reg(SIMDEV_REG_RING_DONE), 0u);
	EXPECT_EQ(d.guest()[d.data_off()], 0);
	EXPECT_EQ(get_state(d.fd()), RUNNING);
	d.set_reg(SIMDEV_REG_STATUS, SIMDEV_STATUS_FAULT);
	ASSERT_TRUE(d.wait_done(1));
	EXPECT_EQ(d.slot(0)->status, __u32(SIMDEV_DESC_DONE));
	EXPECT_EQ(d.guest()[d.data_off()], 0x77);
	EXPECT_EQ(reset(d.fd()), 0);
	expect_clean_migration(d, "simnic", "");
}

/* -------- dirty-page reads -------- */

int logging_start(int fd, __u64 iova, __u64 len)
{
	struct vfio_device_feature_dma_logging_range r = {iova, len};
	FeatureArg<struct vfio_device_feature_dma_logging_control> a(
		VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
	a.d()->page_size = 4096;
	a.d()->num_ranges = 1;
	a.d()->ranges = reinterpret_cast<uintptr_t>(&r);
	return a.ioctl(fd);
}

int logging_report(int fd, __u64 iova, __u64 len, std::vector<__u64> *bm)
{
	bm->assign(len / 4096 / 64 + 1, 0);
	FeatureArg<struct vfio_device_feature_dma_logging_report> a(
		VFIO_DEVICE_FEATURE_GET |
		VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT);
	a.d()->iova = iova;
	a.d()->length = len;
	a.d()->page_size = 4096;
	a.d()->bitmap = reinterpret_cast<uintptr_t>(bm->data());
	return a.ioctl(fd);
}

int logging_stop(int fd)
{
	struct vfio_device_feature f = {};
	f.argsz = sizeof(f);
	f.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP;
	return uvfio_ioctl(fd, VFIO_DEVICE_FEATURE, &f) ? errno : 0;
}

bool page_set(const std::vector<__u64> &bm, __u64 page)
{
	return bm[page / 64] & (1ULL << (page % 64));
}

/* The device DMA-writes one page of guest memory (its data area's first). */
bool device_writes_a_page(SimnicDev &d)
{
	d.post(fill(GUEST_IOVA + d.data_off(), 4096, 1));
	return d.wait_done(1);
}

/* A REPORT over all of guest memory has that page. */
void expect_page_reported(SimnicDev &d)
{
	std::vector<__u64> bm;
	EXPECT_EQ(logging_report(d.fd(), GUEST_IOVA, d.guest_size(), &bm), 0);
	EXPECT_TRUE(page_set(bm, d.data_off() / 4096));
}

// Contract: a failed log_read_and_clear fails DMA_LOGGING_REPORT with the
// errno and loses nothing: the next REPORT still has the page the device
// wrote. The migration state is untouched; after a reset the device
// migrates cleanly.
TEST_F(Fault, LogReadAndClear)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	d.setup_ring();
	const __u64 len = d.guest_size();
	ASSERT_EQ(logging_start(d.fd(), GUEST_IOVA, len), 0);
	ASSERT_TRUE(device_writes_a_page(d));
	ASSERT_EQ(uvfio_fault_set("log.read_and_clear", 1, INJ, 0), 0);
	std::vector<__u64> bm;
	EXPECT_EQ(logging_report(d.fd(), GUEST_IOVA, len, &bm), INJ);
	EXPECT_EQ(get_state(d.fd()), RUNNING);
	expect_page_reported(d);
	EXPECT_EQ(reset(d.fd()), 0);
	EXPECT_EQ(logging_stop(d.fd()), 0);
	expect_clean_migration(d, "simnic", "");
}

// Contract: a failed log_start fails DMA_LOGGING_START with the errno and
// starts no session: a REPORT is refused, and the next START works and
// reports what the device then writes.
TEST_F(Fault, LogStart)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	d.setup_ring();
	const __u64 len = d.guest_size();
	ASSERT_EQ(uvfio_fault_set("log.start", 1, INJ, 0), 0);
	EXPECT_EQ(logging_start(d.fd(), GUEST_IOVA, len), INJ);
	std::vector<__u64> bm;
	EXPECT_EQ(logging_report(d.fd(), GUEST_IOVA, len, &bm), EINVAL);
	ASSERT_EQ(logging_start(d.fd(), GUEST_IOVA, len), 0);
	ASSERT_TRUE(device_writes_a_page(d));
	expect_page_reported(d);
	EXPECT_EQ(logging_stop(d.fd()), 0);
	expect_clean_migration(d, "simnic", "");
}

// Contract: a failed log_stop fails DMA_LOGGING_STOP with the errno and
// the session goes on: a second START is refused, REPORT still has the
// device's writes, and the next STOP ends the session.
TEST_F(Fault, LogStop)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	d.setup_ring();
	const __u64 len = d.guest_size();
	ASSERT_EQ(logging_start(d.fd(), GUEST_IOVA, len), 0);
	ASSERT_EQ(uvfio_fault_set("log.stop", 1, INJ, 0), 0);
	EXPECT_EQ(logging_stop(d.fd()), INJ);
	EXPECT_EQ(logging_start(d.fd(), GUEST_IOVA, len), EINVAL);
	ASSERT_TRUE(device_writes_a_page(d));
	expect_page_reported(d);
	EXPECT_EQ(logging_stop(d.fd()), 0);
	std::vector<__u64> bm;
	EXPECT_EQ(logging_report(d.fd(), GUEST_IOVA, len, &bm), EINVAL);
	expect_clean_migration(d, "simnic", "");
}

// Contract: a failed VFIO_MIG_GET_PRECOPY_INFO returns the errno and costs
// the stream nothing: the device stays in PRE_COPY, the next PRECOPY_INFO
// answers, and the stream still reads; reset and a clean migration after.
TEST_F(Fault, PrecopyInfo)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	int data_fd = -1;
	ASSERT_EQ(d.set_state(PRE_COPY, &data_fd), 0);
	struct vfio_precopy_info info = {};
	info.argsz = sizeof(info);
	ASSERT_EQ(uvfio_fault_set("mig.precopy_info", 1, INJ, 0), 0);
	EXPECT_EQ(uvfio_ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info), -1);
	EXPECT_EQ(errno, INJ);
	EXPECT_EQ(get_state(d.fd()), PRE_COPY);
	ASSERT_EQ(uvfio_ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info), 0);
	EXPECT_GT(info.initial_bytes, 0u);
	unsigned char buf[4096];
	EXPECT_GT(uvfio_read(data_fd, buf, sizeof(buf)), 0);
	uvfio_close(data_fd);
	EXPECT_EQ(reset(d.fd()), 0);
	expect_clean_migration(d, "simnic", "");
}

// Contract: a failed open_device fails the device's first open with the
// errno and leaves it closed: the next open works, in RUNNING, and the
// device migrates cleanly.
TEST_F(Fault, DeviceOpen)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	ASSERT_EQ(uvfio_fault_set("device.open", 1, INJ, 0), 0);
	EXPECT_FALSE(d.reopen());
	EXPECT_EQ(errno, INJ);
	ASSERT_TRUE(d.reopen());
	EXPECT_EQ(get_state(d.fd()), RUNNING);
	expect_clean_migration(d, "simnic", "");
}

/* VFIO_IOMMU_DIRTY_PAGES with one flag and, for GET_BITMAP, a range. */
int iommu_dirty(int container, __u32 flag, __u64 iova = 0, __u64 len = 0,
		std::vector<__u64> *bm = nullptr)
{
	alignas(8) unsigned char buf[sizeof(struct vfio_iommu_type1_dirty_bitmap) +
				     sizeof(struct vfio_iommu_type1_dirty_bitmap_get)] = {};
	auto *d = reinterpret_cast<struct vfio_iommu_type1_dirty_bitmap *>(buf);
	d->argsz = sizeof(*d);
	d->flags = flag;
	if (flag == VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP) {
		d->argsz = sizeof(buf);
		bm->assign(len / 4096 / 64 + 1, 0);
		struct vfio_iommu_type1_dirty_bitmap_get g = {};
		g.iova = iova;
		g.size = len;
		g.bitmap.pgsize = 4096;
		g.bitmap.size = bm->size() * 8;
		g.bitmap.data = reinterpret_cast<__u64 *>(bm->data());
		std::memcpy(buf + sizeof(*d), &g, sizeof(g));
	}
	return uvfio_ioctl(container, VFIO_IOMMU_DIRTY_PAGES, buf) ? errno : 0;
}

// Contract: a failed GET_BITMAP of the IOMMU's dirty pages fails the
// ioctl with the errno and loses nothing: the next GET_BITMAP still has
// the page the device wrote. Reset and a clean migration work after.
TEST_F(Fault, IommuDirtyBitmap)
{
	SimnicDev d("", 4 << 20, "simmin");
	ASSERT_TRUE(d.ok());
	d.setup_ring();
	const __u64 len = d.guest_size();
	ASSERT_EQ(iommu_dirty(d.container(), VFIO_IOMMU_DIRTY_PAGES_FLAG_START),
		  0);
	ASSERT_TRUE(device_writes_a_page(d));
	ASSERT_EQ(uvfio_fault_set("iommu.dirty_bitmap", 1, INJ, 0), 0);
	std::vector<__u64> bm;
	EXPECT_EQ(iommu_dirty(d.container(),
			      VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
			      GUEST_IOVA, len, &bm),
		  INJ);
	EXPECT_EQ(iommu_dirty(d.container(),
			      VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
			      GUEST_IOVA, len, &bm),
		  0);
	EXPECT_TRUE(page_set(bm, d.data_off() / 4096));
	EXPECT_EQ(iommu_dirty(d.container(), VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP),
		  0);
	EXPECT_EQ(get_state(d.fd()), RUNNING);
	EXPECT_EQ(reset(d.fd()), 0);
	expect_clean_migration(d, "simmin", "");
}

} // namespace
