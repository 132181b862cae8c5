/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Between the conformance tests (one file per area, see suite.cc): the
 * fixture that creates or opens the devices under test, and the uAPI
 * helpers the tests share.
 */
#ifndef UVFIO_TOOLS_CONFORMANCE_FIXTURE_H
#define UVFIO_TOOLS_CONFORMANCE_FIXTURE_H

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

/* What the core logged while a test ran (uvfio_set_log_fn(log_sink)). */
extern std::mutex g_log_lock;
extern std::vector<std::string> g_log;
void log_sink(int, const char *line, void *);

/* -------- stream helpers, uAPI only -------- */

/* Read until EOF into *out; 0, or -errno (ENOMSG: a pause). */
int read_stream(Transport &t, int fd, bytes *out, size_t chunk = kQemuRead,
		__u64 limit = 1ULL << 32);

/*
 * A read at pre-copy's temporary end: ENOMSG, as the uAPI says it should
 * be and uvfio's core makes it; from a real device also 0 (end of file),
 * which the kernel's mtty sample returns (mtty_save_read) and QEMU takes
 * as "nothing now" as well (vfio_save_block).
 */
bool precopy_pause(int ret, bool real);

/* Write all of data in pieces of chunk; 0 or -errno. */
int write_stream(Transport &t, int fd, const bytes &data,
		 size_t chunk = kQemuWrite);

/* VFIO_MIG_GET_PRECOPY_INFO with the given argsz; 0 or -errno. */
int precopy_info(Transport &t, int fd, struct vfio_precopy_info *info,
		 __u32 argsz = sizeof(struct vfio_precopy_info));

/* Bit i of a bitmap. */
bool bit(const std::vector<__u64> &bm, __u64 i);

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

} // namespace uvfio::conformance

#endif /* UVFIO_TOOLS_CONFORMANCE_FIXTURE_H */
