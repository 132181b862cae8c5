/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A simnic device as a VMM holds it: added for one test, its group in a
 * type1v2 container, a device fd, and guest memory (the test's own) mapped
 * at GUEST_IOVA. Only the syscall surface is used.
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
#include <uvfio/uapi/vfio.h>
#include <uvfio/uvfio.h>

#include "test_util.h"

namespace uvfio_test {

constexpr __u64 GUEST_IOVA = 1ULL << 30;
constexpr off_t BAR0_OFF = 0;	/* VFIO_PCI_INDEX_TO_OFFSET(0) */
constexpr off_t BAR2_OFF = 2LL << 40;
constexpr off_t CONFIG_OFF = 7LL << 40;

class SimnicDev
{
public:
	explicit SimnicDev(const std::string &extra = "",
			   size_t guest_size = 4 << 20,
			   const std::string &driver = "simnic")
		: bdf_(next_bdf()), guest_size_(guest_size)
	{
		/* Small defaults for tests; extra may override mem=. */
		std::string spec = driver + ",bdf=" + bdf_ + ",msix=4";
		if (extra.find("mem=") == std::string::npos)
			spec += ",mem=1M";
		if (!extra.empty())
			spec += "," + extra;
		added_ = uvfio_sim_add(spec.c_str()) == 0;
		if (!added_)
			return;
		container_ = uvfio_open("/dev/vfio/vfio");
		group_ = uvfio_open(("/dev/vfio/" +
				     std::to_string(uvfio_sim_iommu_group(
					     bdf_.c_str()))).c_str());
		if (container_ < 0 || group_ < 0 ||
		    uvfio_ioctl(group_, VFIO_GROUP_SET_CONTAINER, &container_) ||
		    uvfio_ioctl(container_, VFIO_SET_IOMMU,
				reinterpret_cast<void *>(VFIO_TYPE1v2_IOMMU)))
			return;
		fd_ = uvfio_ioctl(group_, VFIO_GROUP_GET_DEVICE_FD,
				  const_cast<char *>(bdf_.c_str()));
		void *m = mmap(nullptr, guest_size_, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			return;
		guest_ = static_cast<unsigned char *>(m);
		struct vfio_iommu_type1_dma_map map = {};
		map.argsz = sizeof(map);
		map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
		map.vaddr = reinterpret_cast<__u64>(guest_);
		map.iova = GUEST_IOVA;
		map.size = guest_size_;
		mapped_ = uvfio_ioctl(container_, VFIO_IOMMU_MAP_DMA, &map) == 0;
	}
	~SimnicDev()
	{
		if (fd_ >= 0)
			uvfio_close(fd_);
		if (group_ >= 0)
			uvfio_close(group_);
		if (container_ >= 0)
			uvfio_close(container_);
		if (guest_)
			munmap(guest_, guest_size_);
		if (added_)
			uvfio_sim_remove(bdf_.c_str());
	}
	SimnicDev(const SimnicDev &) = delete;
	SimnicDev &operator=(const SimnicDev &) = delete;

	bool ok() const { return added_ && fd_ >= 0 && mapped_; }
	/* Close the device fd (the last close) and get a new one. */
	bool reopen()
	{
		uvfio_close(fd_);
		fd_ = uvfio_ioctl(group_, VFIO_GROUP_GET_DEVICE_FD,
				  const_cast<char *>(bdf_.c_str()));
		tail_ = 0;
		return fd_ >= 0;
	}
	int fd() const { return fd_; }
	int group() const { return group_; }
	int container() const { return container_; }
	const char *bdf() const { return bdf_.c_str(); }
	unsigned char *guest() { return guest_; }
	size_t guest_size() const { return guest_size_; }

	__u32 reg(__u32 off)
	{
		__u32 v = 0;
		EXPECT_EQ(uvfio_pread(fd_, &v, 4, BAR0_OFF + off), 4) << off;
		return v;
	}
	__u64 reg64(__u32 off)
	{
		__u64 v = 0;
		EXPECT_EQ(uvfio_pread(fd_, &v, 8, BAR0_OFF + off), 8) << off;
		return v;
	}
	void set_reg(__u32 off, __u32 v)
	{
		EXPECT_EQ(uvfio_pwrite(fd_, &v, 4, BAR0_OFF + off), 4) << off;
	}

	__u16 cfg16(__u32 off)
	{
		__u16 v = 0;
		EXPECT_EQ(uvfio_pread(fd_, &v, 2, CONFIG_OFF + off), 2);
		return v;
	}
	void set_cfg16(__u32 off, __u16 v)
	{
		EXPECT_EQ(uvfio_pwrite(fd_, &v, 2, CONFIG_OFF + off), 2);
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
		return reinterpret_cast<struct simdev_desc *>(guest_) +
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
		EXPECT_EQ(uvfio_ioctl(fd_, VFIO_DEVICE_GET_REGION_INFO, &info), 0);
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
		XXH3_64bits_update(s, guest_, guest_size_);
		std::vector<unsigned char> mem(mem_size());
		EXPECT_EQ(uvfio_pread(fd_, mem.data(), mem.size(), BAR2_OFF),
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
		int e = a.ioctl(fd_);
		if (data_fd)
			*data_fd = e ? -1 : a.d()->data_fd;
		return e;
	}

private:
	std::string bdf_;
	size_t guest_size_;
	bool added_ = false;
	bool mapped_ = false;
	int container_ = -1;
	int group_ = -1;
	int fd_ = -1;
	unsigned char *guest_ = nullptr;
	__u32 ring_entries_ = 64;
	__u32 tail_ = 0;
};

} // namespace uvfio_test

#endif /* UVFIO_TESTS_SIMNIC_DEV_H */
