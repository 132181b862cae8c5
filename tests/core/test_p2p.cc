// SPDX-License-Identifier: GPL-2.0-only
/*
 * Peer-to-peer DMA: two simnics in one container, each BAR2 mmap()ed and
 * mapped into the container with MAP_DMA as QEMU does for a VM, and one
 * device's DMA engine reaching the other's device memory through the
 * IOMMU. Only the syscall surface.
 */
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <uvfio/sim/simdev_regs.h>
#include <uvfio/uapi/vfio.h>
#include <uvfio/uvfio.h>

#include "test_util.h"
#include "vfio_pfnmap.h"	/* the VMA walk, to check its fallback */

namespace {

using namespace uvfio_test;

constexpr __u64 MEM = 1 << 20;		/* each device's BAR2 */
constexpr size_t GUEST = 4 << 20;
constexpr __u64 GUEST_IOVA = 1ULL << 32;
constexpr __u64 RING_SPACING = 64 << 10;	/* device i's ring at i * this */
constexpr __u32 RING = 64;
constexpr off_t BAR0 = 0;
constexpr off_t CONFIG = 7LL << 40;
constexpr __u64 PAGE = 4096;
/* Where device i's BAR2 sits in the IOVA space (the guest's view of it). */
constexpr __u64 window(int i)
{
	return (1ULL << 40) + __u64(i) * (1ULL << 32);
}

constexpr __u64 REC = 32;	/* simnic: a record header */
constexpr __u64 INITIAL = REC + 56 + REC + MEM;	/* its initial data */

struct Dev {
	std::string bdf;
	int group = -1;
	int fd = -1;
	void *bar2 = MAP_FAILED;
	__u32 tail = 0;
	bool removed = false;
};

/* Two devices as one VM holds them: one container, guest memory, BARs. */
class P2p : public ::testing::Test
{
protected:
	void SetUp() override
	{
		container_ = uvfio_open("/dev/vfio/vfio");
		ASSERT_GE(container_, 0);
		for (int i = 0; i < 2; i++) {
			Dev &d = d_[i];
			d.bdf = next_bdf();
			std::string spec = "simnic,bdf=" + d.bdf +
					   ",msix=4,mem=" + std::to_string(MEM);
			ASSERT_EQ(uvfio_sim_add(spec.c_str()), 0) << spec;
			int grp = uvfio_sim_iommu_group(d.bdf.c_str());
			ASSERT_GE(grp, 0);
			d.group = uvfio_open(("/dev/vfio/" + std::to_string(grp)).c_str());
			ASSERT_GE(d.group, 0);
			ASSERT_EQ(uvfio_ioctl(d.group, VFIO_GROUP_SET_CONTAINER,
					      &container_), 0);
			if (i == 0) {
				ASSERT_EQ(uvfio_ioctl(container_, VFIO_SET_IOMMU,
						      reinterpret_cast<void *>(
							      VFIO_TYPE1v2_IOMMU)),
					  0);
			}
			d.fd = uvfio_ioctl(d.group, VFIO_GROUP_GET_DEVICE_FD,
					   const_cast<char *>(d.bdf.c_str()));
			ASSERT_GE(d.fd, 0);
		}
		void *g = mmap(nullptr, GUEST, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(g, MAP_FAILED);
		guest_ = static_cast<unsigned char *>(g);
		ASSERT_EQ(map_dma(guest_, GUEST_IOVA, GUEST), 0);
	}

	void TearDown() override
	{
		for (Dev &d : d_) {
			if (d.bar2 != MAP_FAILED)
				munmap(d.bar2, MEM);
			if (d.fd >= 0)
				uvfio_close(d.fd);
			if (d.group >= 0)
				uvfio_close(d.group);
		}
		if (container_ >= 0)
			uvfio_close(container_);
		for (Dev &d : d_)
			if (!d.bdf.empty() && !d.removed)
				uvfio_sim_remove(d.bdf.c_str());
		if (guest_)
			munmap(guest_, GUEST);
	}

	/* MAP_DMA; 0 or the errno. */
	int map_dma(const void *va, __u64 iova, __u64 size,
		    __u32 flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)
	{
		struct vfio_iommu_type1_dma_map m = {};
		m.argsz = sizeof(m);
		m.flags = flags;
		m.vaddr = reinterpret_cast<__u64>(va);
		m.iova = iova;
		m.size = size;
		return uvfio_ioctl(container_, VFIO_IOMMU_MAP_DMA, &m) ? errno : 0;
	}
	int unmap_dma(__u64 iova, __u64 size)
	{
		struct vfio_iommu_type1_dma_unmap u = {};
		u.argsz = sizeof(u);
		u.iova = iova;
		u.size = size;
		return uvfio_ioctl(container_, VFIO_IOMMU_UNMAP_DMA, &u) ? errno : 0;
	}

	/* BAR2's offset on the device fd, from GET_REGION_INFO. */
	off_t bar2_offset(int i)
	{
		struct vfio_region_info info = {};
		info.argsz = sizeof(info);
		info.index = VFIO_PCI_BAR2_REGION_INDEX;
		EXPECT_EQ(uvfio_ioctl(d_[i].fd, VFIO_DEVICE_GET_REGION_INFO,
				      &info), 0);
		EXPECT_EQ(info.size, MEM);
		EXPECT_TRUE(info.flags & VFIO_REGION_INFO_FLAG_MMAP);
		return off_t(info.offset);
	}
	/* mmap device i's BAR2 (at addr with MAP_FIXED if given). */
	void *mmap_bar2(int i, int prot = PROT_READ | PROT_WRITE,
			void *addr = nullptr)
	{
		return uvfio_mmap(addr, MEM, prot,
				  MAP_SHARED | (addr ? MAP_FIXED : 0), d_[i].fd,
				  bar2_offset(i));
	}
	/* What QEMU does for a VM: the BAR's mmap mapped at its window. */
	void map_peer(int i)
	{
		d_[i].bar2 = mmap_bar2(i);
		ASSERT_NE(d_[i].bar2, MAP_FAILED);
		ASSERT_EQ(map_dma(d_[i].bar2, window(i), MEM), 0);
	}

	__u32 reg(int i, __u32 off)
	{
		__u32 v = 0;
		EXPECT_EQ(uvfio_pread(d_[i].fd, &v, 4, BAR0 + off), 4);
		return v;
	}
	void set_reg(int i, __u32 off, __u32 v)
	{
		EXPECT_EQ(uvfio_pwrite(d_[i].fd, &v, 4, BAR0 + off), 4);
	}
	__u16 cfg16(int i, __u32 off)
	{
		__u16 v = 0;
		EXPECT_EQ(uvfio_pread(d_[i].fd, &v, 2, CONFIG + off), 2);
		return v;
	}
	void set_cfg16(int i, __u32 off, __u16 v)
	{
		EXPECT_EQ(uvfio_pwrite(d_[i].fd, &v, 2, CONFIG + off), 2);
	}
	std::vector<unsigned char> bar2_read(int i, __u64 off, size_t len)
	{
		std::vector<unsigned char> v(len);
		EXPECT_EQ(uvfio_pread(d_[i].fd, v.data(), len,
				      bar2_offset(i) + off),
			  ssize_t(len));
		return v;
	}

	/* Bus mastering on, device i's ring in guest memory, engine on. */
	void setup_ring(int i)
	{
		set_cfg16(i, 0x04, __u16(cfg16(i, 0x04) | 0x4));
		__u64 base = GUEST_IOVA + __u64(i) * RING_SPACING;
		set_reg(i, SIMDEV_REG_RING_BASE_LO, __u32(base));
		set_reg(i, SIMDEV_REG_RING_BASE_HI, __u32(base >> 32));
		set_reg(i, SIMDEV_REG_RING_SIZE, RING);
		set_reg(i, SIMDEV_REG_IRQ_CTRL, 0);
		set_reg(i, SIMDEV_REG_CTRL, SIMDEV_CTRL_ENABLE);
		d_[i].tail = reg(i, SIMDEV_REG_RING_TAIL);
	}
	struct simdev_desc *slot(int i, __u32 idx)
	{
		return reinterpret_cast<struct simdev_desc *>(
			       guest_ + __u64(i) * RING_SPACING) +
		       (idx & (RING - 1));
	}
	__u32 post(int i, const struct simdev_desc &desc)
	{
		__u32 idx = d_[i].tail++;
		*slot(i, idx) = desc;
		set_reg(i, SIMDEV_REG_DOORBELL, d_[i].tail);
		return idx;
	}
	/* Wait (at most ms) until device i completed descriptor idx. */
	bool wait_done(int i, __u32 idx, int ms = 10000)
	{
		auto end = std::chrono::steady_clock::now() +
			   std::chrono::milliseconds(ms);
		while (__s32(reg(i, SIMDEV_REG_RING_DONE) - (idx + 1)) < 0) {
			if (std::chrono::steady_clock::now() > end)
				return false;
			std::this_thread::sleep_for(std::chrono::microseconds(200));
		}
		return true;
	}
	/* Device i writes len bytes of pattern seed at iova; its status. */
	__u32 write_pattern(int i, __u64 iova, __u64 len, __u64 seed)
	{
		struct simdev_desc desc = {};
		desc.opcode = SIMDEV_OP_WRITE_PATTERN;
		desc.dst = iova;
		desc.len = len;
		desc.arg = seed;
		__u32 idx = post(i, desc);
		EXPECT_TRUE(wait_done(i, idx));
		return slot(i, idx)->status;
	}
	static std::vector<unsigned char> pattern(__u64 seed, size_t len)
	{
		std::vector<unsigned char> v(len);
		for (size_t w = 0; w * 8 < len; w++) {
			__u64 x = simdev_pattern_word(seed, w);
			std::memcpy(v.data() + w * 8, &x,
				    std::min<size_t>(8, len - w * 8));
		}
		return v;
	}

	int set_state(int i, __u32 state, int *data_fd = nullptr)
	{
		FeatureArg<struct vfio_device_feature_mig_state> a(
			VFIO_DEVICE_FEATURE_SET |
			VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
		a.d()->device_state = state;
		int e = a.ioctl(d_[i].fd);
		if (data_fd)
			*data_fd = e ? -1 : a.d()->data_fd;
		return e;
	}
	static __u64 dirty_bytes(int data_fd)
	{
		struct vfio_precopy_info info = {};
		info.argsz = sizeof(info);
		EXPECT_EQ(uvfio_ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info),
			  0);
		return info.dirty_bytes;
	}
	/* Pre-copy on device i with its initial data read: the data fd. */
	int precopy_drained(int i)
	{
		int fd = -1;
		EXPECT_EQ(set_state(i, VFIO_DEVICE_STATE_PRE_COPY, &fd), 0);
		std::vector<unsigned char> buf(INITIAL);
		size_t got = 0;
		while (got < INITIAL) {
			ssize_t r = uvfio_read(fd, buf.data() + got, INITIAL - got);
			if (r <= 0)
				break;
			got += size_t(r);
		}
		EXPECT_EQ(got, INITIAL);
		EXPECT_EQ(dirty_bytes(fd), 0u);
		return fd;
	}

	int container_ = -1;
	unsigned char *guest_ = nullptr;
	Dev d_[2];
};

// Contract: a DMA write by device A to an IOVA that maps device B's BAR2
// mmap reaches B as a write to its BAR would: B's memory, read through
// B's own fd, has the bytes, and B's memory tracker counts the pages
// (PRECOPY_INFO dirty_bytes), as it counts a CPU store through the same
// mmap (where userfaultfd can write-protect shared memory). A DMA read
// from the window returns B's memory.
TEST_F(P2p, EngineWriteReachesPeerMemoryAndItsTracker)
{
	map_peer(1);
	setup_ring(0);
	int data = precopy_drained(1);

	/* A CPU store through the mmap: memory changes, the tracker sees it. */
	static_cast<unsigned char *>(d_[1].bar2)[0x10000] = 0x5a;
	EXPECT_EQ(bar2_read(1, 0x10000, 1)[0], 0x5a);
	const __u64 cpu = uffd_wp_shmem() ? PAGE : 0;
	/* (More if a pass re-protected the page before the store retried.) */
	EXPECT_GE(dirty_bytes(data), cpu);

	EXPECT_EQ(write_pattern(0, window(1) + 0x20000, 2 * PAGE, 0x1234),
		  SIMDEV_DESC_DONE);
	EXPECT_EQ(bar2_read(1, 0x20000, 2 * PAGE), pattern(0x1234, 2 * PAGE));
	EXPECT_GE(dirty_bytes(data), cpu + 2 * PAGE);

	/* A's read of the window: B's memory into guest memory. */
	struct simdev_desc copy = {};
	copy.opcode = SIMDEV_OP_COPY;
	copy.src = window(1) + 0x20000;
	copy.dst = GUEST_IOVA + 0x100000;
	copy.len = 2 * PAGE;
	__u32 idx = post(0, copy);
	ASSERT_TRUE(wait_done(0, idx));
	EXPECT_EQ(slot(0, idx)->status, SIMDEV_DESC_DONE);
	EXPECT_EQ(std::memcmp(guest_ + 0x100000, pattern(0x1234, 2 * PAGE).data(),
			      2 * PAGE),
		  0);

	EXPECT_EQ(set_state(1, VFIO_DEVICE_STATE_RUNNING), 0);
	uvfio_close(data);
}

// Contract: a device in RUNNING_P2P or STOP still takes a peer's writes
// to its memory (only initiating DMA stops): the bytes land, and in
// PRE_COPY_P2P its tracker still counts them. A device in RUNNING_P2P
// initiates no DMA: its posted descriptor waits until RUNNING.
TEST_F(P2p, StoppedPeerAcceptsWritesAndP2pInitiatorWaits)
{
	map_peer(1);
	setup_ring(0);

	int data = precopy_drained(1);
	ASSERT_EQ(set_state(1, VFIO_DEVICE_STATE_PRE_COPY_P2P), 0);
	EXPECT_EQ(write_pattern(0, window(1), PAGE, 1), SIMDEV_DESC_DONE);
	EXPECT_EQ(bar2_read(1, 0, PAGE), pattern(1, PAGE));
	EXPECT_GE(dirty_bytes(data), PAGE);
	ASSERT_EQ(set_state(1, VFIO_DEVICE_STATE_RUNNING), 0);
	uvfio_close(data);

	ASSERT_EQ(set_state(1, VFIO_DEVICE_STATE_RUNNING_P2P), 0);
	EXPECT_EQ(write_pattern(0, window(1) + PAGE, PAGE, 2), SIMDEV_DESC_DONE);
	EXPECT_EQ(bar2_read(1, PAGE, PAGE), pattern(2, PAGE));

	ASSERT_EQ(set_state(1, VFIO_DEVICE_STATE_STOP), 0);
	EXPECT_EQ(write_pattern(0, window(1) + 2 * PAGE, PAGE, 3),
		  SIMDEV_DESC_DONE);
	EXPECT_EQ(bar2_read(1, 2 * PAGE, PAGE), pattern(3, PAGE));

	/* The initiator in RUNNING_P2P: nothing moves until RUNNING. */
	ASSERT_EQ(set_state(0, VFIO_DEVICE_STATE_RUNNING_P2P), 0);
	struct simdev_desc desc = {};
	desc.opcode = SIMDEV_OP_WRITE_PATTERN;
	desc.dst = window(1) + 3 * PAGE;
	desc.len = PAGE;
	desc.arg = 4;
	__u32 idx = post(0, desc);
	EXPECT_FALSE(wait_done(0, idx, 100));
	EXPECT_NE(bar2_read(1, 3 * PAGE, PAGE), pattern(4, PAGE));
	ASSERT_EQ(set_state(0, VFIO_DEVICE_STATE_RUNNING), 0);
	ASSERT_TRUE(wait_done(0, idx));
	EXPECT_EQ(slot(0, idx)->status, SIMDEV_DESC_DONE);
	EXPECT_EQ(bar2_read(1, 3 * PAGE, PAGE), pattern(4, PAGE));
	EXPECT_EQ(set_state(1, VFIO_DEVICE_STATE_RUNNING), 0);
}

// Contract: a peer that was closed (its memory no longer decoded) or
// removed while its BAR stays mapped in the container makes the
// initiator's DMA fail cleanly: the descriptor completes with FAULT, the
// engine reports STATUS.FAULT with the IOVA, nothing hangs or crashes;
// the window can still be unmapped.
TEST_F(P2p, ClosedOrRemovedPeerFaults)
{
	LogCapture log;	/* the engines' fault lines */
	map_peer(1);
	setup_ring(0);
	EXPECT_EQ(write_pattern(0, window(1), PAGE, 7), SIMDEV_DESC_DONE);

	ASSERT_EQ(uvfio_close(d_[1].fd), 0);
	d_[1].fd = -1;
	EXPECT_EQ(write_pattern(0, window(1), PAGE, 8), SIMDEV_DESC_FAULT);
	EXPECT_TRUE(reg(0, SIMDEV_REG_STATUS) & SIMDEV_STATUS_FAULT);
	__u64 fault = reg(0, SIMDEV_REG_FAULT_IOVA_LO) |
		      __u64(reg(0, SIMDEV_REG_FAULT_IOVA_HI)) << 32;
	EXPECT_EQ(fault, window(1));
	EXPECT_TRUE(log.contains("DMA fault at IOVA 0x10100000000"));
	set_reg(0, SIMDEV_REG_STATUS, SIMDEV_STATUS_FAULT);

	ASSERT_EQ(uvfio_close(d_[1].group), 0);
	d_[1].group = -1;
	ASSERT_EQ(uvfio_sim_remove(d_[1].bdf.c_str()), 0);
	d_[1].removed = true;
	EXPECT_EQ(write_pattern(0, window(1) + PAGE, PAGE, 9), SIMDEV_DESC_FAULT);
	set_reg(0, SIMDEV_REG_STATUS, SIMDEV_STATUS_FAULT);
	EXPECT_EQ(unmap_dma(window(1), MEM), 0);
	/* Guest memory still works. */
	EXPECT_EQ(write_pattern(0, GUEST_IOVA + 0x200000, PAGE, 10),
		  SIMDEV_DESC_DONE);
}

// Contract: a peer closed and then removed while another device's engine
// keeps writing into its BAR ends that engine's writes with a DMA fault;
// removal waits only for accesses in flight (it does not hang), and no
// access touches the peer once it is gone.
TEST_F(P2p, PeerRemovedUnderLoad)
{
	LogCapture log;	/* the engines' fault lines */
	map_peer(1);
	setup_ring(0);
	std::atomic<bool> stop{false};
	std::atomic<unsigned> done{0}, faults{0};
	std::thread poster([&] {
		for (__u64 n = 0; !stop.load(); n++) {
			__u32 st = reg(0, SIMDEV_REG_STATUS) & SIMDEV_STATUS_FAULT;
			if (st)
				set_reg(0, SIMDEV_REG_STATUS, st);
			__u32 s = write_pattern(0, window(1) + (n % 8) * 0x10000,
						0x10000, n);
			(s == SIMDEV_DESC_DONE ? done : faults)++;
		}
	});
	auto until = [&](std::atomic<unsigned> &c, unsigned n) {
		for (int k = 0; k < 5000 && c.load() < n; k++)
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
		return c.load() >= n;
	};
	EXPECT_TRUE(until(done, 20));
	ASSERT_EQ(uvfio_close(d_[1].fd), 0);
	d_[1].fd = -1;
	EXPECT_TRUE(until(faults, 5));
	ASSERT_EQ(uvfio_close(d_[1].group), 0);
	d_[1].group = -1;
	ASSERT_EQ(uvfio_sim_remove(d_[1].bdf.c_str()), 0);
	d_[1].removed = true;
	unsigned f = faults.load();
	EXPECT_TRUE(until(faults, f + 5));
	stop = true;
	poster.join();
}

// Contract: MAP_DMA follows device memory as the kernel's type1 follows
// a VM_PFNMAP vma, page by page: a range running past the BAR's mapping
// into a hole or into inaccessible memory is EFAULT; a read-only mapping
// of the BAR mapped for device writes is EFAULT (a write fault on it
// fails) and mapped read-only it takes reads but faults writes. A BAR
// whose memory decode is off is mapped (uvfio's documented difference:
// its BAR mmaps do not depend on decode) but takes no DMA until on. A
// range mixing ordinary memory and the BAR is accepted, as the kernel's
// maps it chunk by chunk, and each part reaches its own kind of memory.
TEST_F(P2p, MapDmaOfDeviceMemory)
{
	LogCapture log;	/* the engines' fault lines */
	setup_ring(0);
	const long pg = sysconf(_SC_PAGESIZE);
	ASSERT_EQ(pg, long(PAGE));

	/* The BAR, then an inaccessible page, then a hole. */
	void *r = mmap(nullptr, MEM + 2 * PAGE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(r, MAP_FAILED);
	auto *rb = static_cast<unsigned char *>(r);
	ASSERT_EQ(mmap_bar2(1, PROT_READ | PROT_WRITE, r), r);
	ASSERT_EQ(munmap(rb + MEM + PAGE, PAGE), 0);
	EXPECT_EQ(map_dma(r, window(1), MEM + PAGE), EFAULT);
	EXPECT_EQ(map_dma(r, window(1), MEM + 2 * PAGE), EFAULT);
	EXPECT_EQ(map_dma(r, window(1), MEM), 0);
	EXPECT_EQ(unmap_dma(window(1), MEM), 0);

	/*
	 * Memory decode off: the mapping is made (uvfio's BAR mmaps do not
	 * depend on it), but the function takes no DMA until it is on.
	 */
	__u16 cmd = cfg16(1, 0x04);
	set_cfg16(1, 0x04, __u16(cmd & ~0x2));
	EXPECT_EQ(map_dma(r, window(1), MEM), 0);
	EXPECT_EQ(write_pattern(0, window(1), PAGE, 1), SIMDEV_DESC_FAULT);
	set_reg(0, SIMDEV_REG_STATUS, SIMDEV_STATUS_FAULT);
	set_cfg16(1, 0x04, cmd);
	EXPECT_EQ(write_pattern(0, window(1), PAGE, 1), SIMDEV_DESC_DONE);
	EXPECT_EQ(unmap_dma(window(1), MEM), 0);
	munmap(r, MEM + PAGE);

	/* Read-only mapping of the BAR. */
	void *ro = mmap_bar2(1, PROT_READ);
	ASSERT_NE(ro, MAP_FAILED);
	EXPECT_EQ(map_dma(ro, window(1), MEM), EFAULT);
	EXPECT_EQ(map_dma(ro, window(1), MEM, VFIO_DMA_MAP_FLAG_READ), 0);
	EXPECT_EQ(write_pattern(0, window(1), PAGE, 2), SIMDEV_DESC_FAULT);
	set_reg(0, SIMDEV_REG_STATUS, SIMDEV_STATUS_FAULT);
	EXPECT_EQ(unmap_dma(window(1), MEM), 0);
	munmap(ro, MEM);

	/* One page of anonymous memory, then the BAR: one mapping. */
	void *mix = mmap(nullptr, PAGE + MEM, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(mix, MAP_FAILED);
	auto *mb = static_cast<unsigned char *>(mix);
	ASSERT_EQ(mmap_bar2(1, PROT_READ | PROT_WRITE, mb + PAGE), mb + PAGE);
	ASSERT_EQ(map_dma(mix, window(1), PAGE + MEM), 0);
	EXPECT_EQ(write_pattern(0, window(1) + PAGE / 2, PAGE, 3),
		  SIMDEV_DESC_DONE);
	auto want = pattern(3, PAGE);
	EXPECT_EQ(std::memcmp(mb + PAGE / 2, want.data(), PAGE / 2), 0);
	EXPECT_EQ(bar2_read(1, 0, PAGE / 2),
		  std::vector<unsigned char>(want.begin() + PAGE / 2,
					     want.end()));
	EXPECT_EQ(unmap_dma(window(1), PAGE + MEM), 0);
	munmap(mix, PAGE + MEM);
}

// Contract: MAP_DMA's two ways of reading the process's VMAs, the
// PROCMAP_QUERY ioctl and, on kernels before 6.11, the text of
// /proc/self/maps, see the same VMAs over a range of anonymous memory, a
// BAR mmap (file-backed, its offset) and read-only memory, and both stop
// at the hole after it.
TEST_F(P2p, VmaWalkFallbackAgreesWithProcmapQuery)
{
	const size_t len = PAGE + MEM + 2 * PAGE;
	void *r = mmap(nullptr, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(r, MAP_FAILED);
	auto *rb = static_cast<unsigned char *>(r);
	ASSERT_EQ(mmap_bar2(1, PROT_READ | PROT_WRITE, rb + PAGE), rb + PAGE);
	ASSERT_EQ(mprotect(rb + PAGE + MEM, PAGE, PROT_READ), 0);
	ASSERT_EQ(munmap(rb + PAGE + MEM + PAGE, PAGE), 0);
	const __u64 lo = reinterpret_cast<__u64>(rb), hi = lo + len - 1;

	std::vector<vfio_vma_info> q, t;
	bool have_query = vfio_vmas_by_query(lo, hi, &q);
	std::string text;
	{
		FILE *f = fopen("/proc/self/maps", "r");
		ASSERT_NE(f, nullptr);
		char buf[4096];
		size_t n;
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			text.append(buf, n);
		fclose(f);
	}
	vfio_vmas_by_text(text, lo, hi, &t);

	ASSERT_EQ(t.size(), 3u);
	EXPECT_LE(t[0].start, lo);
	EXPECT_EQ(t[0].end, lo + PAGE);
	EXPECT_TRUE(t[0].writable);
	EXPECT_EQ(t[1].start, lo + PAGE);
	EXPECT_EQ(t[1].end, lo + PAGE + MEM);
	EXPECT_NE(t[1].ino, 0u);
	EXPECT_EQ(t[1].offset, 0u);	/* BAR2's memory from its start */
	EXPECT_TRUE(t[1].readable && t[1].writable);
	EXPECT_EQ(t[2].end, lo + PAGE + MEM + PAGE);
	EXPECT_TRUE(t[2].readable && !t[2].writable);
	if (have_query) {
		ASSERT_EQ(q.size(), t.size());
		for (size_t i = 0; i < q.size(); i++) {
			EXPECT_EQ(q[i].start, t[i].start) << i;
			EXPECT_EQ(q[i].end, t[i].end) << i;
			EXPECT_EQ(q[i].offset, t[i].offset) << i;
			EXPECT_EQ(q[i].dev, t[i].dev) << i;
			EXPECT_EQ(q[i].ino, t[i].ino) << i;
			EXPECT_EQ(q[i].readable, t[i].readable) << i;
			EXPECT_EQ(q[i].writable, t[i].writable) << i;
		}
	}
	munmap(r, PAGE + MEM + PAGE);
}

// Contract: two engines doing DMA into each other's BAR2 and into their
// own (a device mapping itself) while a third thread resets them and
// moves them through RUNNING_P2P, STOP and RUNNING never deadlock: every
// thread finishes, and afterwards a P2P write completes again.
TEST_F(P2p, CrossAndSelfDmaUnderResetsAndStateChanges)
{
	LogCapture log;	/* the engines' fault lines */
	map_peer(0);
	map_peer(1);
	for (int i = 0; i < 2; i++)
		setup_ring(i);

	std::atomic<bool> stop{false};
	std::atomic<unsigned> done{0};
	auto poster = [&](int i) {
		/* Batches that keep the engine busy: writes and copies, to
		 * the peer and to itself, in turn. */
		for (__u64 n = 0; !stop.load();) {
			if (!reg(i, SIMDEV_REG_RING_SIZE) ||
			    !(cfg16(i, 0x04) & 0x4))
				setup_ring(i);
			__u32 st = reg(i, SIMDEV_REG_STATUS) &
				   (SIMDEV_STATUS_FAULT | SIMDEV_STATUS_BAD_DESC);
			if (st)
				set_reg(i, SIMDEV_REG_STATUS, st);
			__u32 first = reg(i, SIMDEV_REG_RING_TAIL);
			constexpr __u32 batch = 8;
			for (__u32 k = 0; k < batch; k++, n++) {
				struct simdev_desc desc = {};
				int target = (n >> 1) & 1 ? i : 1 - i;
				__u64 off = (n % 16) * PAGE;
				if (n & 1) {
					desc.opcode = SIMDEV_OP_WRITE_PATTERN;
					desc.dst = window(target) + off;
					desc.arg = n;
				} else {
					desc.opcode = SIMDEV_OP_COPY;
					desc.src = window(target) + off;
					desc.dst = window(1 - target) + 0x80000;
				}
				desc.len = 256 << 10;	/* four engine chunks */
				*slot(i, first + k) = desc;
			}
			set_reg(i, SIMDEV_REG_DOORBELL, first + batch);
			wait_done(i, first + batch - 1, 20);
			for (__u32 k = 0; k < batch; k++)
				if (slot(i, first + k)->status == SIMDEV_DESC_DONE)
					done++;
		}
	};
	std::thread a(poster, 0), b(poster, 1);

	std::mt19937 rng(42);
	auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
	unsigned ops = 0;
	while (std::chrono::steady_clock::now() < end) {
		int i = int(rng() % 2);
		switch (rng() % 4) {
		case 0:
			uvfio_ioctl(d_[i].fd, VFIO_DEVICE_RESET, nullptr);
			break;
		case 1:
			set_state(i, VFIO_DEVICE_STATE_RUNNING_P2P);
			break;
		case 2:
			set_state(i, VFIO_DEVICE_STATE_STOP);
			break;
		default:
			set_state(i, VFIO_DEVICE_STATE_RUNNING);
			break;
		}
		ops++;
		std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
	}
	for (int i = 0; i < 2; i++)
		EXPECT_EQ(set_state(i, VFIO_DEVICE_STATE_RUNNING), 0);
	stop = true;
	a.join();
	b.join();
	EXPECT_GT(ops, 100u);
	/* The storm did move data between the devices. */
	EXPECT_GT(done.load(), 10u);

	/* Still working: clear what the storm left and write once more. */
	setup_ring(0);
	set_reg(0, SIMDEV_REG_STATUS,
		SIMDEV_STATUS_FAULT | SIMDEV_STATUS_BAD_DESC);
	EXPECT_EQ(write_pattern(0, window(1) + 0x90000, PAGE, 77),
		  SIMDEV_DESC_DONE);
	EXPECT_EQ(bar2_read(1, 0x90000, PAGE), pattern(77, PAGE));
}

} // namespace
