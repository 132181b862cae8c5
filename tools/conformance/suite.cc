// SPDX-License-Identifier: GPL-2.0-only
/*
 * The conformance tests. Each drives a driver only through the syscall
 * surface (what a VMM can do), through a Transport (the simulator's for
 * specs, plain system calls for a real device), and states the uAPI
 * contract it checks. Every test also fails when the core logs a "driver
 * bug" while it runs: the core checks some duties a user cannot see (a
 * data file left enabled after its state was left, a data file from the
 * wrong arc).
 *
 * A real device is opened by each test through its group and closed at
 * the end; a driver may keep its migration state across the last close
 * (the uAPI does not say; mtty does), so a test that finds it elsewhere
 * than RUNNING resets it first. A test that needs a second device uses
 * the peer when one is given (--peer), or loads the device's own stream
 * back into it; the round trip needs the peer. What needs the simulator
 * (the state digest, the workload that plays the DMA function) is
 * skipped. PreCopyKeepsRegionWrites writes a real device's prefetchable
 * memory BARs too (device memory: run the suite on test hardware only);
 * mtty has none (its BARs are I/O ports) and is migrated unchanged.
 *
 * What the kernel (Linux 6.12, its mtty sample) showed the uAPI leaves to
 * the driver, and the suite therefore accepts from a real device:
 * migration state kept across close; 0 (end of file) rather than ENOMSG
 * at pre-copy's temporary end (the uAPI's "should", which QEMU does not
 * rely on); DMA_LOGGING_REPORT unsupported (EOPNOTSUPP: Debian's kernel
 * has no CONFIG_IOMMUFD, and iova_bitmap is a stub without it).
 */
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <uvfio/sim/simdev_regs.h>
#include <uvfio/tools/fsm.h>
#include <uvfio/tools/migration.h>
#include <uvfio/tools/sim_vm.h>
#include <uvfio/tools/vfio_open.h>
#include <uvfio/uvfio.h>

#include "suite.h"

namespace uvfio::conformance {
namespace {

using namespace uvfio::tools;
using namespace uvfio::tools::mig_state;
using bytes = std::vector<unsigned char>;

constexpr size_t kGuestSize = 2 << 20;
constexpr size_t kQemuRead = 1 << 20;	/* QEMU's data-fd read size */
constexpr size_t kQemuWrite = 32 << 10;	/* and its resume write size */
constexpr __u64 kPage = 4096;
/* Liveness bounds: a check that waits for progress gives up after this. */
constexpr auto kPatience = std::chrono::seconds(10);

/* -------- log lines: the core's driver-bug reports fail the test -------- */

std::mutex g_log_lock;
std::vector<std::string> g_log;

void log_sink(int, const char *line, void *)
{
	std::lock_guard<std::mutex> l(g_log_lock);
	g_log.emplace_back(line);
}

/* -------- stream helpers, uAPI only -------- */

/* Read until EOF into *out; 0, or -errno (ENOMSG: a pause). */
int read_stream(Transport &t, int fd, bytes *out, size_t chunk = kQemuRead,
		__u64 limit = 1ULL << 32)
{
	bytes buf(chunk);
	while (out->size() < limit) {
		ssize_t n = t.read(fd, buf.data(), buf.size());
		if (n == -EINTR)
			continue;
		if (n < 0)
			return int(n);
		if (n == 0)
			return 0;
		out->insert(out->end(), buf.begin(), buf.begin() + n);
	}
	return -EFBIG;
}

/*
 * A read at pre-copy's temporary end: ENOMSG, as the uAPI says it should
 * be and uvfio's core makes it; from a real device also 0 (end of file),
 * which the kernel's mtty sample returns (mtty_save_read) and QEMU takes
 * as "nothing now" as well (vfio_save_block).
 */
bool precopy_pause(int ret, bool real)
{
	return ret == -ENOMSG || (real && ret == 0);
}

/* Write all of data in pieces of chunk; 0 or -errno. */
int write_stream(Transport &t, int fd, const bytes &data,
		 size_t chunk = kQemuWrite)
{
	for (size_t off = 0; off < data.size();) {
		size_t n = std::min(chunk, data.size() - off);
		ssize_t w = t.write(fd, data.data() + off, n);
		if (w == -EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? int(w) : -EIO;
		off += static_cast<size_t>(w);
	}
	return 0;
}

int precopy_info(Transport &t, int fd, struct vfio_precopy_info *info,
		 __u32 argsz = sizeof(struct vfio_precopy_info))
{
	*info = {};
	info->argsz = argsz;
	return t.ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, info);
}

/* A DMA logging feature request with its payload behind it. */
template <typename T> struct Feature {
	std::vector<__u64> words;
	Feature()
		: words((sizeof(struct vfio_device_feature) + sizeof(T) + 7) / 8)
	{
		hdr()->argsz = static_cast<__u32>(words.size() * 8);
	}
	struct vfio_device_feature *hdr()
	{
		return reinterpret_cast<struct vfio_device_feature *>(words.data());
	}
	T *data() { return reinterpret_cast<T *>(hdr()->data); }
};

int log_start(Transport &t, int fd,
	      const std::vector<std::pair<__u64, __u64>> &ranges)
{
	std::vector<struct vfio_device_feature_dma_logging_range> r;
	for (auto [iova, len] : ranges)
		r.push_back({iova, len});
	Feature<struct vfio_device_feature_dma_logging_control> f;
	f.hdr()->flags = VFIO_DEVICE_FEATURE_SET |
			 VFIO_DEVICE_FEATURE_DMA_LOGGING_START;
	f.data()->page_size = kPage;
	f.data()->num_ranges = static_cast<__u32>(r.size());
	f.data()->ranges = reinterpret_cast<uintptr_t>(r.data());
	return t.ioctl(fd, VFIO_DEVICE_FEATURE, f.hdr());
}

int log_stop(Transport &t, int fd)
{
	struct vfio_device_feature f = {};
	f.argsz = sizeof(f);
	f.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP;
	return t.ioctl(fd, VFIO_DEVICE_FEATURE, &f);
}

/* REPORT [iova, iova+len) into bitmap (a bit per page from iova). */
int log_report(Transport &t, int fd, __u64 iova, __u64 len,
	       std::vector<__u64> *bitmap)
{
	bitmap->assign((len / kPage + 63) / 64, 0);
	Feature<struct vfio_device_feature_dma_logging_report> f;
	f.hdr()->flags = VFIO_DEVICE_FEATURE_GET |
			 VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT;
	f.data()->iova = iova;
	f.data()->length = len;
	f.data()->page_size = kPage;
	f.data()->bitmap = reinterpret_cast<uintptr_t>(bitmap->data());
	return t.ioctl(fd, VFIO_DEVICE_FEATURE, f.hdr());
}

bool bit(const std::vector<__u64> &bm, __u64 i)
{
	return bm[i / 64] >> (i % 64) & 1;
}

/* -------- the fixture -------- */

class Conformance : public ::testing::TestWithParam<Target>
{
protected:
	void SetUp() override
	{
		{
			std::lock_guard<std::mutex> l(g_log_lock);
			g_log.clear();
		}
		uvfio_set_log_fn(log_sink, nullptr);
		if (real()) {
			t_ = device_transport();
			ASSERT_NO_FATAL_FAILURE(open_real());
		} else {
			t_ = make_sim_transport();
			ASSERT_NO_FATAL_FAILURE(create(&src_, kSrcBdf));
		}
		src_dev_ = std::make_unique<Device>(*t_, src_fd());
		ASSERT_EQ(src_dev_->probe(&caps_), 0);
		if (!caps_.migration)
			GTEST_SKIP() << "the driver offers no migration";
		/*
		 * The tests start from RUNNING. A real device is the one the
		 * last test left, in the state it left it unless its driver
		 * resets that at open (mlx5 and hisi do, in open_device; mtty
		 * has no open_device, and its close_device, mtty_close, only
		 * disables the data files): VFIO_DEVICE_RESET brings it back.
		 */
		if (real()) {
			ASSERT_NO_FATAL_FAILURE(start_running(*src_dev_));
			if (!peer_device().empty() &&
			    peer_device() != GetParam().device) {
				ASSERT_NO_FATAL_FAILURE(open_peer());
				ASSERT_NO_FATAL_FAILURE(start_running(*dst_dev_));
			}
		}
		/* The workload plays the simulated function in-process. */
		simdev_ = !real() && is_simdev(src_fd());
	}

	void TearDown() override
	{
		uvfio_set_log_fn(nullptr, nullptr);
		std::lock_guard<std::mutex> l(g_log_lock);
		for (const std::string &line : g_log)
			if (line.find("driver bug") != std::string::npos)
				ADD_FAILURE() << "the core found a driver bug: "
					      << line;
		if (HasFailure())
			for (const std::string &line : g_log)
				std::fprintf(stderr, "  log: %s\n", line.c_str());
	}

	/* The one real device, as a VMM opens it, with guest memory. */
	void open_real()
	{
		std::string why;
		DeviceName dn;
		ASSERT_EQ(parse_device_path(GetParam().device, &dn, &why), 0)
			<< why;
		real_ = std::make_unique<VfioDevice>(*t_);
		ASSERT_EQ(real_->open(dn, &why), 0) << why;
		ASSERT_EQ(real_->map_guest(kGuestSize, &why), 0) << why;
	}

	/* The peer, the destination of loads (Options::peer). */
	void open_peer()
	{
		std::string why;
		DeviceName dn;
		ASSERT_EQ(parse_device_path(peer_device(), &dn, &why), 0) << why;
		peer_ = std::make_unique<VfioDevice>(*t_);
		ASSERT_EQ(peer_->open(dn, &why), 0) << why;
		dst_dev_ = std::make_unique<Device>(*t_, peer_->fd());
		Device probe(*t_, peer_->fd());
		DeviceCaps caps;
		ASSERT_EQ(probe.probe(&caps), 0);
		ASSERT_EQ(caps.migration_flags, caps_.migration_flags)
			<< "the peer " << peer_device()
			<< " is not of the same kind: other migration flags";
	}

	/* A real device in RUNNING, reset there if it opened elsewhere. */
	static void start_running(Device &d)
	{
		__u32 s = get(d);
		if (s != RUNNING) {
			ASSERT_EQ(d.reset(), 0)
				<< "the device opened in " << state_name(s)
				<< " and VFIO_DEVICE_RESET failed";
		}
		ASSERT_EQ(get(d), RUNNING)
			<< "the device opened in " << state_name(s)
			<< " and VFIO_DEVICE_RESET did not bring it to RUNNING";
	}

	bool real() const { return !GetParam().device.empty(); }
	int src_fd() const { return real_ ? real_->fd() : src_.fd(); }
	GuestMemory src_guest() const
	{
		return real_ ? real_->guest() : src_.guest();
	}

	/* Why a check that needs the simulated DMA engine cannot run. */
	const char *no_dma_engine() const
	{
		return real() ? "a real device: the workload that makes it do "
				"DMA plays the simulated function in-process"
			      : "no simulated DMA engine to watch";
	}

	void create(SimVm *vm, const char *bdf)
	{
		std::string why;
		ASSERT_EQ(vm->create(GetParam().spec + ",bdf=" + bdf, kGuestSize,
				     &why), 0)
			<< GetParam().spec << ": " << why;
	}

	/* A second device; a real device's tests load into the peer if there
	 * is one, else into itself. */
	Device &dst()
	{
		if (real())
			return dst_dev_ ? *dst_dev_ : *src_dev_;
		if (!dst_dev_) {
			create(&dst_vm_, kDstBdf);
			dst_dev_ = std::make_unique<Device>(*t_, dst_vm_.fd());
		}
		return *dst_dev_;
	}

	bool has(__u64 flag) const { return caps_.migration_flags & flag; }

	static __u32 get(Device &d)
	{
		__u32 s = 0xff;
		EXPECT_EQ(d.get_state(&s), 0);
		return s;
	}

	/* The DMA function of <uvfio/sim/simdev_regs.h> behind BAR0? */
	bool is_simdev(int fd)
	{
		__u32 id = 0;
		return bar0_read(fd, SIMDEV_REG_ID, &id) && id == SIMDEV_ID_VALUE;
	}

	bool bar0_read(int fd, __u32 reg, __u32 *v)
	{
		struct vfio_region_info ri = {};
		ri.argsz = sizeof(ri);
		ri.index = VFIO_PCI_BAR0_REGION_INDEX;
		return !t_->ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri) &&
		       ri.size > reg &&
		       t_->pread(fd, v, 4, static_cast<off_t>(ri.offset + reg)) == 4;
	}

	__u64 dma_writes(int fd)
	{
		__u32 lo = 0, hi = 0;
		EXPECT_TRUE(bar0_read(fd, SIMDEV_REG_DMA_WRITES_LO, &lo));
		EXPECT_TRUE(bar0_read(fd, SIMDEV_REG_DMA_WRITES_HI, &hi));
		return static_cast<__u64>(hi) << 32 | lo;
	}

	/* Wait until the device's DMA write count passes from. */
	bool dma_progresses(int fd, __u64 from)
	{
		auto end = std::chrono::steady_clock::now() + kPatience;
		while (std::chrono::steady_clock::now() < end) {
			if (dma_writes(fd) > from)
				return true;
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
		}
		return false;
	}

	void start_workload(unsigned rate = 20000)
	{
		std::string why;
		ASSERT_EQ(src_.start_workload(1, rate, &why), 0) << why;
		ASSERT_TRUE(dma_progresses(src_.fd(), 0))
			<< "the workload made the device do no DMA";
	}

	/* SET state, which must open a stream; its fd in *fd. */
	static void open_stream(Device &d, __u32 state, int *fd)
	{
		*fd = -1;
		ASSERT_EQ(d.set_state(state, fd), 0) << state_name(state);
		ASSERT_GE(*fd, 0) << "no data fd for " << state_name(state);
	}

	/* Full stream of d: STOP_COPY to EOF, left in STOP. */
	void save(Device &d, bytes *out)
	{
		int fd;
		ASSERT_NO_FATAL_FAILURE(open_stream(d, STOP_COPY, &fd));
		EXPECT_EQ(read_stream(*t_, fd, out), 0);
		EXPECT_EQ(t_->close(fd), 0);
		ASSERT_EQ(d.set_state(STOP), 0);
	}

	/*
	 * Load image into d as QEMU does; the RESUMING -> STOP result, or
	 * with stop_on_error the write's error, which then ends the load
	 * in RESUMING as it ends QEMU's.
	 */
	int load(Device &d, const bytes &image, bool stop_on_error = false)
	{
		int fd = -1;
		int ret = d.set_state(RESUMING, &fd);
		EXPECT_EQ(ret, 0);
		if (ret || fd < 0)
			return ret ? ret : -EBADF;
		int wret = write_stream(*t_, fd, image);
		if (wret && stop_on_error) {
			t_->close(fd);
			return wret;
		}
		ret = d.set_state(STOP);
		t_->close(fd);
		return ret ? ret : wret;
	}

	/* The simulator's state digest: none for a real device. */
	int digest(Device &d, __u64 *v)
	{
		if (real())
			return -EOPNOTSUPP;
		uint64_t x = 0;
		int ret = uvfio_sim_state_digest(d.fd(), &x) ? -errno : 0;
		*v = x;
		return ret;
	}

	/* PreCopyKeepsRegionWrites and PreCopyKeepsMmapWrites. */
	void precopy_writes(bool via_mmap);

	std::unique_ptr<Transport> t_;
	std::unique_ptr<VfioDevice> real_;	/* a real target's device */
	std::unique_ptr<VfioDevice> peer_;	/* and its peer */
	SimVm src_;
	SimVm dst_vm_;
	std::unique_ptr<Device> src_dev_;
	std::unique_ptr<Device> dst_dev_;
	DeviceCaps caps_;
	bool simdev_ = false;
};

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

/* -------- device changes during pre-copy -------- */

/*
 * A BAR the suite may write blindly: a memory BAR its config space marks
 * prefetchable (PCI: reads have no side effects and writes may be merged,
 * that is, memory and not registers), whose region reads and writes
 * (VFIO_REGION_INFO_FLAG_READ|WRITE). Anything else (I/O BARs, register
 * BARs, doorbells) is never written: a driver opts a BAR out by not
 * marking it prefetchable, which PCI requires of a BAR with side effects
 * anyway (driver-guide.md, "What the conformance suite writes").
 */
struct BlindBar {
	__u32 index;
	__u64 offset;	/* of the region in the device fd */
	__u64 size;
	bool mmap;	/* VFIO_REGION_INFO_FLAG_MMAP */
};

constexpr __u32 kPciBar0 = 0x10;
constexpr __u32 kPciBarIo = 0x1;
constexpr __u32 kPciBarPrefetch = 0x8;
/* Write and compare at most this much of a BAR (device memory may be big). */
constexpr __u64 kBlindSpan = 16 << 20;
constexpr size_t kBlindWrite = 64;	/* bytes per write */
constexpr unsigned kBlindWritesPerRound = 16;

std::vector<BlindBar> blind_bars(Transport &t, int fd)
{
	std::vector<BlindBar> v;
	struct vfio_region_info cfg = {};
	cfg.argsz = sizeof(cfg);
	cfg.index = VFIO_PCI_CONFIG_REGION_INDEX;
	if (t.ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &cfg))
		return v;
	for (__u32 i = VFIO_PCI_BAR0_REGION_INDEX; i <= VFIO_PCI_BAR5_REGION_INDEX;
	     i++) {
		struct vfio_region_info ri = {};
		ri.argsz = sizeof(ri);
		ri.index = i;
		if (t.ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri) || !ri.size)
			continue;
		const __u32 rw = VFIO_REGION_INFO_FLAG_READ |
				 VFIO_REGION_INFO_FLAG_WRITE;
		if ((ri.flags & rw) != rw)
			continue;
		__u32 bar = 0;
		if (t.pread(fd, &bar, 4,
			    static_cast<off_t>(cfg.offset + kPciBar0 + 4 * i)) != 4)
			continue;
		if ((bar & kPciBarIo) || !(bar & kPciBarPrefetch))
			continue;
		v.push_back({i, ri.offset, std::min<__u64>(ri.size, kBlindSpan),
			     (ri.flags & VFIO_REGION_INFO_FLAG_MMAP) != 0});
	}
	return v;
}

/*
 * Changes a device's blind-writable BARs in rounds, through pwrite on the
 * region and through an mmap of it where it has one, and remembers what
 * it wrote last at every offset.
 */
class BarWriter
{
public:
	/* via_mmap: every write through an mmap of the BAR, else by pwrite. */
	BarWriter(Transport &t, int fd, std::vector<BlindBar> bars, bool via_mmap)
		: t_(t), fd_(fd), bars_(std::move(bars))
	{
		for (const BlindBar &b : bars_) {
			void *p = nullptr;
			if (via_mmap && b.mmap &&
			    !t_.mmap(fd_, static_cast<off_t>(b.offset), b.size,
				     PROT_READ | PROT_WRITE, &p))
				maps_.push_back(static_cast<unsigned char *>(p));
			else
				maps_.push_back(nullptr);
		}
	}
	~BarWriter()
	{
		for (size_t i = 0; i < bars_.size(); i++)
			if (maps_[i])
				munmap(maps_[i], bars_[i].size);
	}
	bool mapped() const
	{
		return std::any_of(maps_.begin(), maps_.end(),
				   [](unsigned char *p) { return p; });
	}

	/*
	 * One round: kBlindWritesPerRound writes of kBlindWrite bytes per
	 * BAR, spread over its pages (a new page set each round, and pages
	 * of earlier rounds again), through the mmap where the writer has
	 * one. Failures are the test's.
	 */
	void round()
	{
		n_++;
		for (size_t b = 0; b < bars_.size(); b++) {
			const BlindBar &bar = bars_[b];
			const __u64 slots = bar.size / kBlindWrite;
			if (!slots)
				continue;
			for (unsigned k = 0; k < kBlindWritesPerRound; k++) {
				/* Pages spread by a prime stride; some revisited. */
				__u64 page = (n_ * 7919 + k * 104729) %
					     std::max<__u64>(bar.size / kPage, 1);
				__u64 off = (page * kPage + (k + n_) % 64 *
					     kBlindWrite) % (slots * kBlindWrite);
				unsigned char buf[kBlindWrite];
				for (size_t i = 0; i < sizeof(buf); i++)
					buf[i] = static_cast<unsigned char>(
						(0x5a ^ (n_ * 37 + k * 11 + i)) | 1);
				bool via_mmap = maps_[b] != nullptr;
				if (via_mmap) {
					std::memcpy(maps_[b] + off, buf, sizeof(buf));
				} else {
					ASSERT_EQ(t_.pwrite(fd_, buf, sizeof(buf),
							    static_cast<off_t>(
								    bar.offset + off)),
						  ssize_t(sizeof(buf)))
						<< "BAR" << bar.index << " pwrite at 0x"
						<< std::hex << off;
				}
				written_[{b, off}] = bytes(buf, buf + sizeof(buf));
				(via_mmap ? mmap_writes_ : pwrite_writes_)++;
			}
		}
	}

	const std::vector<BlindBar> &bars() const { return bars_; }
	const std::map<std::pair<size_t, __u64>, bytes> &written() const
	{
		return written_;
	}
	unsigned pwrites() const { return pwrite_writes_; }
	unsigned mmap_writes() const { return mmap_writes_; }

private:
	Transport &t_;
	int fd_;
	std::vector<BlindBar> bars_;
	std::vector<unsigned char *> maps_;
	std::map<std::pair<size_t, __u64>, bytes> written_;
	unsigned n_ = 0;
	unsigned pwrite_writes_ = 0, mmap_writes_ = 0;
};

/* Read a region span by pread; false on a short read. */
bool read_span(Transport &t, int fd, __u64 off, __u64 len, bytes *out)
{
	out->assign(len, 0);
	for (__u64 done = 0; done < len;) {
		size_t n = static_cast<size_t>(std::min<__u64>(len - done, 1 << 20));
		ssize_t r = t.pread(fd, out->data() + done, n,
				    static_cast<off_t>(off + done));
		if (r <= 0)
			return false;
		done += static_cast<__u64>(r);
	}
	return true;
}

// Contract: a device changed while it is in PRE_COPY (and PRE_COPY_P2P
// where offered), between the pre-copy reads and after them, arrives
// whole: the stream read through PRE_COPY and then STOP_COPY, loaded into
// a second device, gives the state the first one stopped with. The
// changes are region writes (pwrite on the device fd) to the BARs the
// suite may write blindly (prefetchable memory BARs; see blind_bars): the
// driver sees each, and must mark what it changes dirty and send it again
// in a later pre-copy read or at STOP_COPY. Compared: every offset written
// holds the last value written, on the source and on the destination; the
// written BARs read the same on both (by pread: they are prefetchable,
// reads have no side effects); and the driver's state digest where it has
// one. On a real device (no digest) the destination is the peer, or the
// device itself without one, and the source's stream saved again before
// the load must equal the loaded device's (as in RoundTripRestoresTheState);
// a device with no BAR to write is still migrated through pre-copy and
// compared so.
TEST_P(Conformance, PreCopyKeepsRegionWrites)
{
	ASSERT_NO_FATAL_FAILURE(precopy_writes(false));
}

// Contract: as PreCopyKeepsRegionWrites, with the writes made through an
// mmap of each mmap-able blind-writable BAR, as a vCPU makes them. The
// driver does not see these: it must send such memory again at STOP_COPY
// (all of it once it has been mapped, as simnic does, or what a tracker
// of its own found changed). A device with no such BAR is still migrated
// through pre-copy and compared, as in PreCopyKeepsRegionWrites.
TEST_P(Conformance, PreCopyKeepsMmapWrites)
{
	ASSERT_NO_FATAL_FAILURE(precopy_writes(true));
}

void Conformance::precopy_writes(bool via_mmap)
{
	if (!has(VFIO_MIGRATION_PRE_COPY))
		GTEST_SKIP() << "no PRE_COPY";
	Device &s = *src_dev_;
	std::vector<BlindBar> bars = blind_bars(*t_, src_fd());
	if (via_mmap) {
		bars.erase(std::remove_if(bars.begin(), bars.end(),
					  [](const BlindBar &b) { return !b.mmap; }),
			   bars.end());
	}
	std::string which;
	for (const BlindBar &b : bars)
		which += (which.empty() ? "BAR" : " BAR") + std::to_string(b.index) +
			 (b.mmap ? "(mmap)" : "");
	RecordProperty("bars_written", which.empty() ? "none: no prefetchable "
				       "read/write memory BAR" : which);

	BarWriter w(*t_, src_fd(), bars, via_mmap);
	if (via_mmap && !bars.empty() && !w.mapped())
		GTEST_SKIP() << "the mmap-able BARs did not map whole (a sparse "
				"mmap?): nothing written through an mmap";
	int fd;
	ASSERT_NO_FATAL_FAILURE(open_stream(s, PRE_COPY, &fd));
	bytes stream;
	const __u64 limit = 1ULL << 31;
	/* Read to the pause, change, read again: four passes. */
	auto pass = [&](const char *where) {
		int ret = read_stream(*t_, fd, &stream, kQemuRead, limit);
		EXPECT_TRUE(precopy_pause(ret, real()))
			<< where << ": read at pre-copy's temporary end: " << ret;
	};
	ASSERT_NO_FATAL_FAILURE(w.round());	/* before the initial data too */
	for (int i = 0; i < 4; i++) {
		ASSERT_NO_FATAL_FAILURE(pass("PRE_COPY"));
		ASSERT_NO_FATAL_FAILURE(w.round());
	}
	if (has(VFIO_MIGRATION_P2P)) {
		ASSERT_EQ(s.set_state(PRE_COPY_P2P), 0);
		ASSERT_NO_FATAL_FAILURE(w.round());
		ASSERT_NO_FATAL_FAILURE(pass("PRE_COPY_P2P"));
		ASSERT_NO_FATAL_FAILURE(w.round());	/* unread at STOP_COPY */
	}
	ASSERT_EQ(s.set_state(STOP_COPY), 0);
	EXPECT_EQ(read_stream(*t_, fd, &stream, kQemuRead, limit), 0);
	EXPECT_EQ(t_->close(fd), 0);
	ASSERT_EQ(s.set_state(STOP), 0);
	RecordProperty("writes", std::to_string(w.pwrites()) + " by pwrite, " +
				 std::to_string(w.mmap_writes()) + " through mmap");

	/*
	 * The source as it stopped, taken before the load: a real device
	 * without a peer loads its own stream (a lost write then shows as
	 * the old content coming back).
	 */
	__u64 want = 0;
	int dret = digest(s, &want);
	if (dret != -EOPNOTSUPP) {
		ASSERT_EQ(dret, 0) << "the state digest failed in STOP";
	}
	const bool has_digest = dret == 0;
	if (bars.empty() && !real() && !has_digest)
		GTEST_SKIP() << "nothing changed and nothing to compare: no "
				"prefetchable read/write memory BAR and no "
				"state digest (uvfio_set_state_digest)";
	const std::vector<BlindBar> &wb = w.bars();
	std::vector<bytes> src_bar(wb.size()), dst_bar(wb.size());
	for (size_t b = 0; b < wb.size(); b++) {
		ASSERT_TRUE(read_span(*t_, src_fd(), wb[b].offset, wb[b].size,
				      &src_bar[b]))
			<< "BAR" << wb[b].index << " does not read back";
	}
	bytes resaved;
	if (!has_digest && real()) {
		ASSERT_NO_FATAL_FAILURE(save(s, &resaved));
	}

	Device &d = dst();
	ASSERT_EQ(load(d, stream), 0);
	for (size_t b = 0; b < wb.size(); b++) {
		ASSERT_TRUE(read_span(*t_, d.fd(), wb[b].offset, wb[b].size,
				      &dst_bar[b]))
			<< "BAR" << wb[b].index << " does not read back";
	}

	/* What was written last is there, on both sides. */
	unsigned lost_src = 0, lost_dst = 0;
	for (const auto &[where, data] : w.written()) {
		auto [b, off] = where;
		if (std::memcmp(src_bar[b].data() + off, data.data(), data.size()) &&
		    lost_src++ < 3)
			ADD_FAILURE() << "BAR" << wb[b].index << " at 0x" << std::hex
				      << off << ": the source does not hold what "
				      "was written there (not memory?)";
		if (std::memcmp(dst_bar[b].data() + off, data.data(), data.size()) &&
		    lost_dst++ < 5)
			ADD_FAILURE() << "BAR" << wb[b].index << " at 0x" << std::hex
				      << off << " (page 0x" << off / kPage
				      << "): written during pre-copy, not on the "
				      "destination: the write was not marked dirty, "
				      "or the dirty page was not sent again";
	}
	EXPECT_EQ(lost_src, 0u) << "of " << w.written().size() << " writes";
	EXPECT_EQ(lost_dst, 0u) << "of " << w.written().size() << " writes";
	for (size_t b = 0; b < wb.size(); b++) {
		auto mm = std::mismatch(src_bar[b].begin(), src_bar[b].end(),
					dst_bar[b].begin());
		EXPECT_TRUE(mm.first == src_bar[b].end())
			<< "BAR" << wb[b].index << " differs between source and "
			"destination first at 0x" << std::hex
			<< (mm.first - src_bar[b].begin());
	}

	if (has_digest) {
		__u64 got = 0;
		ASSERT_EQ(digest(d, &got), 0);
		EXPECT_EQ(got, want)
			<< "the loaded device's state digest differs from the "
			"source's";
	} else if (real()) {
		bytes loaded;
		ASSERT_NO_FATAL_FAILURE(save(d, &loaded));
		EXPECT_TRUE(loaded == resaved)
			<< "the loaded device saves a different stream ("
			<< loaded.size() << " bytes, the source " << resaved.size()
			<< ")";
	} else {
		RecordProperty("state_digest", "none: BAR contents compared only");
	}
	EXPECT_EQ(d.set_state(RUNNING), 0);
	EXPECT_EQ(s.set_state(RUNNING), 0);
}

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
		ASSERT_EQ(log_start(*t_, src_fd(), {{g.iova, g.size}}), 0);
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
		ASSERT_EQ(log_report(*t_, src_fd(), g.iova, g.size, &bm), 0);
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
		EXPECT_EQ(log_stop(*t_, src_fd()), 0);
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
		ASSERT_EQ(log_start(*t_, fd, {{g.iova, g.size}}), 0);
		int ret = log_report(*t_, fd, g.iova, g.size, &bm);
		EXPECT_EQ(log_stop(*t_, fd), 0);
		if (ret == -EOPNOTSUPP)
			GTEST_SKIP() << "the kernel does not serve "
					"DMA_LOGGING_REPORT (EOPNOTSUPP: "
					"iova_bitmap needs CONFIG_IOMMUFD)";
	}
	EXPECT_NE(log_report(*t_, fd, g.iova, g.size, &bm), 0)
		<< "REPORT without a session";
	log_stop(*t_, fd);	/* may succeed or fail, but cleanly */
	ASSERT_EQ(log_start(*t_, fd, {{g.iova, g.size}}), 0);
	EXPECT_NE(log_start(*t_, fd, {{g.iova, g.size}}), 0)
		<< "a second START was accepted";
	EXPECT_EQ(log_report(*t_, fd, g.iova, g.size, &bm), 0);
	EXPECT_EQ(log_stop(*t_, fd), 0);
	EXPECT_NE(log_report(*t_, fd, g.iova, g.size, &bm), 0)
		<< "REPORT after STOP";
	EXPECT_EQ(log_start(*t_, fd, {{g.iova, g.size}}), 0);
	EXPECT_EQ(log_stop(*t_, fd), 0);
	EXPECT_EQ(get(*src_dev_), RUNNING);
}

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
			EXPECT_EQ(log_report(*t_, s.fd(), iova, half, &bm), 0);
			EXPECT_EQ(log_report(*t_, s.fd(), iova + half, len - half, &bm),
				  0);
		}
	};
	if (caps_.dma_logging) {
		ASSERT_EQ(log_start(*t_, s.fd(), ranges), 0);
	}
	if (caps_.dma_logging && real()) {
		/* A kernel that cannot report: the sequence without reports. */
		std::vector<__u64> bm;
		int ret = log_report(*t_, s.fd(), ranges[0].first,
				     ranges[0].second, &bm);
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
		EXPECT_EQ(log_stop(*t_, s.fd()), 0);
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

INSTANTIATE_TEST_SUITE_P(
	Drivers, Conformance, ::testing::ValuesIn(targets()),
	[](const ::testing::TestParamInfo<Target> &info) {
		return target_name(info.param, info.index);
	});

} // namespace
} // namespace uvfio::conformance
