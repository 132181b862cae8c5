/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A simnic device as a VMM holds it: added for one test, its group in a
 * type1v2 container, a device fd, and guest memory (the test's own) mapped
 * at GUEST_IOVA - tools/lib's SimVm - with accessors for the tests. Only
 * the syscall surface is used.
 */
#ifndef UVFIO_TESTS_SIMNIC_DEV_H
#define UVFIO_TESTS_SIMNIC_DEV_H

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <xxhash.h>

#include <uvfio/sim/simdev_regs.h>
#include <uvfio/tools/sim_vm.h>
#include <uvfio/uapi/vfio.h>
#include <uvfio/uvfio.h>

#include "test_util.h"

namespace uvfio_test {

constexpr __u64 GUEST_IOVA = uvfio::tools::SimVm::GUEST_IOVA;
constexpr off_t BAR0_OFF = 0;	/* VFIO_PCI_INDEX_TO_OFFSET(0) */
constexpr off_t BAR2_OFF = 2LL << 40;
constexpr off_t CONFIG_OFF = 7LL << 40;

/* tools/lib's SimVm (compiled into test-core) with test accessors. */
class SimnicDev
{
public:
	explicit SimnicDev(const std::string &extra = "",
			   size_t guest_size = 4 << 20,
			   const std::string &driver = "simnic")
		: guest_size_(guest_size)
	{
		/* Small defaults for tests; extra may override msix=, mem=. */
		std::string spec = driver + ",bdf=" + next_bdf();
		if (extra.find("msix=") == std::string::npos)
			spec += ",msix=4";
		if (extra.find("mem=") == std::string::npos)
			spec += ",mem=1M";
		if (!extra.empty())
			spec += "," + extra;
		std::string why;
		ok_ = vm_.create(spec, guest_size, &why) == 0;
	}
	SimnicDev(const SimnicDev &) = delete;
	SimnicDev &operator=(const SimnicDev &) = delete;

	bool ok() const { return ok_; }
	int fd() const { return vm_.fd(); }
	int container() const { return vm_.guest().container; }
	const char *bdf() const { return vm_.bdf().c_str(); }
	unsigned char *guest()
	{
		return static_cast<unsigned char *>(vm_.guest().host);
	}
	size_t guest_size() const { return guest_size_; }
	/* Close the device fd (the last close) and get a new one. */
	bool reopen()
	{
		tail_ = 0;
		return vm_.reopen() == 0;
	}

	__u32 reg(__u32 off)
	{
		__u32 v = 0;
		EXPECT_EQ(uvfio_pread(fd(), &v, 4, BAR0_OFF + off), 4) << off;
		return v;
	}
	__u64 reg64(__u32 off)
	{
		__u64 v = 0;
		EXPECT_EQ(uvfio_pread(fd(), &v, 8, BAR0_OFF + off), 8) << off;
		return v;
	}
	void set_reg(__u32 off, __u32 v)
	{
		EXPECT_EQ(uvfio_pwrite(fd(), &v, 4, BAR0_OFF + off), 4) << off;
	}

	__u16 cfg16(__u32 off)
	{
		__u16 v = 0;
		EXPECT_EQ(uvfio_pread(fd(), &v, 2, CONFIG_OFF + off), 2);
		return v;
	}
	void set_cfg16(__u32 off, __u16 v)
	{
		EXPECT_EQ(uvfio_pwrite(fd(), &v, 2, CONFIG_OFF + off), 2);
	}

	/*
	 * What a guest driver does first: bus mastering on, a ring of
	 * `entries` at the start of guest memory, the engine enabled.
	 */
	void setup_ring(__u32 entries = 64, __u32 irq_ctrl = 0)
	{
		ring_entries_ = entries;
		set_cfg16(0x04, __u16(cfg16(0x04) | 0x4));
		set_reg(SIMDEV_REG_RING_BASE_LO, __u32(GUEST_IOVA));
		set_reg(SIMDEV_REG_RING_BASE_HI, __u32(GUEST_IOVA >> 32));
		set_reg(SIMDEV_REG_RING_SIZE, entries);
		set_reg(SIMDEV_REG_IRQ_CTRL, irq_ctrl);
		set_reg(SIMDEV_REG_CTRL, SIMDEV_CTRL_ENABLE);
	}
	/* Where data may go: past the ring, page aligned. */
	__u64 data_off() const { return 64 << 10; }

	struct simdev_desc *slot(__u32 idx)
	{
		return reinterpret_cast<struct simdev_desc *>(guest()) +
		       (idx & (ring_entries_ - 1));
	}
	/* Post d at the next index and ring the doorbell; its index. */
	__u32 post(const struct simdev_desc &d)
	{
		__u32 idx = tail_++;
		*slot(idx) = d;
		set_reg(SIMDEV_REG_DOORBELL, tail_);
		return idx;
	}
	/* Wait (at most 10 s) until RING_DONE reaches `done`. */
	bool wait_done(__u32 done)
	{
		auto end = std::chrono::steady_clock::now() +
			   std::chrono::seconds(10);
		while (__s32(reg(SIMDEV_REG_RING_DONE) - done) < 0) {
			if (std::chrono::steady_clock::now() > end)
				return false;
			std::this_thread::sleep_for(std::chrono::microseconds(200));
		}
		return true;
	}
	__u32 tail() const { return tail_; }

	/* BAR2's size, from GET_REGION_INFO. */
	__u64 mem_size()
	{
		struct vfio_region_info info = {};
		info.argsz = sizeof(info);
		info.index = VFIO_PCI_BAR2_REGION_INDEX;
		EXPECT_EQ(uvfio_ioctl(fd(), VFIO_DEVICE_GET_REGION_INFO, &info), 0);
		return info.size;
	}

	/*
	 * Everything the device and its guest hold: guest memory, device
	 * memory, and the registers but the time of the last DMA write and
	 * STATUS's running/quiesced bits.
	 */
	__u64 digest()
	{
		XXH3_state_t *s = XXH3_createState();
		XXH3_64bits_reset(s);
		XXH3_64bits_update(s, guest(), guest_size_);
		std::vector<unsigned char> mem(mem_size());
		EXPECT_EQ(uvfio_pread(fd(), mem.data(), mem.size(), BAR2_OFF),
			  ssize_t(mem.size()));
		XXH3_64bits_update(s, mem.data(), mem.size());
		for (__u32 off = 0; off < SIMDEV_NUM_REGS * 4; off += 4) {
			if (off == SIMDEV_REG_LAST_WRITE_NS_LO ||
			    off == SIMDEV_REG_LAST_WRITE_NS_HI)
				continue;
			__u32 v = reg(off);
			if (off == SIMDEV_REG_STATUS)
				v &= SIMDEV_STATUS_FAULT | SIMDEV_STATUS_BAD_DESC;
			XXH3_64bits_update(s, &v, 4);
		}
		__u64 h = XXH3_64bits_digest(s);
		XXH3_freeState(s);
		return h;
	}

	/* Migration state through the uAPI; the errno or 0. */
	int set_state(__u32 state, int *data_fd = nullptr)
	{
		FeatureArg<struct vfio_device_feature_mig_state> a(
			VFIO_DEVICE_FEATURE_SET |
			VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
		a.d()->device_state = state;
		int e = a.ioctl(fd());
		if (data_fd)
			*data_fd = e ? -1 : a.d()->data_fd;
		return e;
	}

private:
	uvfio::tools::SimVm vm_;
	size_t guest_size_;
	bool ok_ = false;
	__u32 ring_entries_ = 64;
	__u32 tail_ = 0;
};

} // namespace uvfio_test

#endif /* UVFIO_TESTS_SIMNIC_DEV_H */
