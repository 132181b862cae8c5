// SPDX-License-Identifier: GPL-2.0-only
/*
 * The device fd's uAPI, driven through the public syscall surface only:
 * VFIO_DEVICE_GET_INFO, GET_REGION_INFO, GET_IRQ_INFO, SET_IRQS, RESET,
 * VFIO_DEVICE_FEATURE (core validation and the migration GETs), unknown
 * ioctls, region read/write and mmap, and fd hygiene. Every errno is the one
 * the Linux kernel's vfio_main.c / vfio-pci-core returns for the same call.
 */
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <uvfio/uvfio.h>

#include "test_util.h"

using namespace uvfio_test;

namespace {

constexpr const char *kDefaultSpec = "mem=1M,msix=4,mig=stop_copy|p2p|pre_copy";
constexpr uint32_t kMsixCount = 4;
constexpr uint64_t kBar0Size = 4096;
constexpr uint64_t kBar2Size = 1 << 20;
constexpr uint64_t kConfigSize = 4096;
constexpr size_t kPage = 4096;

/* 0 if the call succeeded, else the errno it set (ret must be -1 then). */
int ErrOf(long ret)
{
	return ret < 0 ? errno : 0;
}

/* Reads an eventfd without blocking: its counter, or 0 if not signalled. */
uint64_t Drain(int efd)
{
	uint64_t v = 0;
	ssize_t n = read(efd, &v, sizeof(v));
	if (n != static_cast<ssize_t>(sizeof(v)))
		return 0;
	return v;
}

int NewEventfd()
{
	return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

/*
 * VFIO_DEVICE_SET_IRQS with data appended after the header. argsz defaults to
 * the exact size; pass argsz to override it.
 */
int SetIrqs(int fd, uint32_t flags, uint32_t index, uint32_t start,
	    uint32_t count, const void *data = nullptr, size_t data_len = 0,
	    std::optional<uint32_t> argsz = std::nullopt)
{
	std::vector<uint64_t> storage(
		(sizeof(struct vfio_irq_set) + data_len + 7) / 8 + 1);
	auto *set = reinterpret_cast<struct vfio_irq_set *>(storage.data());
	set->argsz = argsz ? *argsz
			   : static_cast<uint32_t>(sizeof(*set) + data_len);
	set->flags = flags;
	set->index = index;
	set->start = start;
	set->count = count;
	if (data_len)
		std::memcpy(reinterpret_cast<char *>(set) + sizeof(*set), data,
			    data_len);
	return uvfio_ioctl(fd, VFIO_DEVICE_SET_IRQS, set);
}

int SetEventfds(int fd, uint32_t index, uint32_t start,
		const std::vector<int32_t> &fds)
{
	return SetIrqs(fd, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
		       index, start, static_cast<uint32_t>(fds.size()),
		       fds.data(), fds.size() * sizeof(int32_t));
}

int Loopback(int fd, uint32_t index, uint32_t start, uint32_t count)
{
	return SetIrqs(fd, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
		       index, start, count);
}

int IntxAction(int fd, uint32_t action)
{
	return SetIrqs(fd, VFIO_IRQ_SET_DATA_NONE | action,
		       VFIO_PCI_INTX_IRQ_INDEX, 0, 1);
}

/* A VFIO_DEVICE_FEATURE buffer: header plus payload bytes. */
struct FeatureBuf {
	explicit FeatureBuf(uint32_t flags, size_t payload = 0)
		: storage((sizeof(struct vfio_device_feature) + payload + 7) / 8 +
			  1)
	{
		hdr()->argsz = static_cast<uint32_t>(
			sizeof(struct vfio_device_feature) + payload);
		hdr()->flags = flags;
	}
	struct vfio_device_feature *hdr()
	{
		return reinterpret_cast<struct vfio_device_feature *>(
			storage.data());
	}
	template <typename T> T *payload()
	{
		return reinterpret_cast<T *>(reinterpret_cast<char *>(hdr()) +
					     sizeof(struct vfio_device_feature));
	}
	int ioctl(int fd) { return uvfio_ioctl(fd, VFIO_DEVICE_FEATURE, hdr()); }

	std::vector<uint64_t> storage;
};

/* A testdev device, opened; closed and removed in TearDown. */
class DeviceFixture : public ::testing::Test
{
protected:
	void SetUp() override
	{
		fds_before_ = count_open_fds();
		ASSERT_GE(fds_before_, 0);
		dev_.emplace(kDefaultSpec);
		ASSERT_TRUE(dev_->added()) << "uvfio_sim_add failed";
		fd_ = uvfio_open(dev_->name());
		ASSERT_GE(fd_, 0) << "uvfio_open: " << std::strerror(errno);
	}

	void TearDown() override
	{
		CloseAndRemove();
		/* Whatever a test made, it must not leak an fd. */
		EXPECT_EQ(count_open_fds(), fds_before_);
	}

	void CloseAndRemove()
	{
		if (fd_ >= 0) {
			EXPECT_EQ(uvfio_close(fd_), 0);
			fd_ = -1;
		}
		dev_.reset();
	}

	/* GET_REGION_INFO; fails the test if the ioctl fails. */
	struct vfio_region_info RegionInfo(uint32_t index)
	{
		struct vfio_region_info info = {};
		info.argsz = sizeof(info);
		info.index = index;
		EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_REGION_INFO,
					    &info)),
			  0)
			<< "region " << index;
		return info;
	}

	off_t RegionOffset(uint32_t index)
	{
		return static_cast<off_t>(RegionInfo(index).offset);
	}

	struct vfio_irq_info IrqInfo(uint32_t index)
	{
		struct vfio_irq_info info = {};
		info.argsz = sizeof(info);
		info.index = index;
		EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_IRQ_INFO,
					    &info)),
			  0)
			<< "irq " << index;
		return info;
	}

	int fds_before_ = -1;
	std::optional<SimDevice> dev_;
	int fd_ = -1;
};

class DeviceIoctlTest : public DeviceFixture
{
};
class DeviceRegionTest : public DeviceFixture
{
};
class DeviceIrqTest : public DeviceFixture
{
};
class DeviceFeatureTest : public DeviceFixture
{
};
class DeviceMmapTest : public DeviceFixture
{
};
class DeviceResetTest : public DeviceFixture
{
};

/* ======================= VFIO_DEVICE_GET_INFO ======================= */

// Contract: GET_INFO reports a PCI device with reset, 10 regions (the 9
// of vfio-pci and, the device having mig_ops, the v1 migration region) and
// 5 IRQs.
TEST_F(DeviceIoctlTest, GetInfoValid)
{
	struct vfio_device_info info = {};
	info.argsz = sizeof(info);
	ASSERT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_INFO, &info)), 0);
	EXPECT_EQ(info.argsz, sizeof(info));
	EXPECT_EQ(info.flags, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET);
	EXPECT_EQ(info.num_regions, 10u);
	EXPECT_EQ(info.num_regions, (uint32_t)VFIO_PCI_NUM_REGIONS + 1);
	EXPECT_EQ(info.num_irqs, 5u);
	EXPECT_EQ(info.num_irqs, (uint32_t)VFIO_PCI_NUM_IRQS);
}

// Contract: GET_INFO with exactly minsz (16) succeeds and writes nothing
// past minsz.
TEST_F(DeviceIoctlTest, GetInfoMinszOnly)
{
	struct vfio_device_info info;
	std::memset(&info, 0xa5, sizeof(info));
	info.argsz = 16;
	ASSERT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_INFO, &info)), 0);
	EXPECT_EQ(info.flags, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET);
	EXPECT_EQ(info.num_regions, 10u);
	EXPECT_EQ(info.num_irqs, 5u);
	EXPECT_EQ(info.cap_offset, 0xa5a5a5a5u);
}

// Contract: GET_INFO with argsz covering cap_offset writes cap_offset = 0 on
// a device without capabilities (kernel copies min(argsz, sizeof(info))).
TEST_F(DeviceIoctlTest, GetInfoFullArgszClearsCapOffset)
{
	struct vfio_device_info info;
	std::memset(&info, 0xa5, sizeof(info));
	info.argsz = sizeof(info);
	ASSERT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_INFO, &info)), 0);
	EXPECT_EQ(info.flags & VFIO_DEVICE_FLAGS_CAPS, 0u);
	EXPECT_EQ(info.cap_offset, 0u);
}

// Contract: GET_INFO with argsz below minsz (16) fails with EINVAL.
TEST_F(DeviceIoctlTest, GetInfoArgszTooSmall)
{
	for (uint32_t argsz : {0u, 1u, 8u, 15u}) {
		struct vfio_device_info info = {};
		info.argsz = argsz;
		EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_INFO, &info)),
			  EINVAL)
			<< "argsz " << argsz;
		EXPECT_EQ(info.flags, 0u);
		EXPECT_EQ(info.num_regions, 0u);
	}
}

// Contract: GET_INFO with a NULL or wild argument pointer fails with EFAULT.
TEST_F(DeviceIoctlTest, GetInfoBadPointer)
{
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_INFO, nullptr)),
		  EFAULT);
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_INFO,
				    reinterpret_cast<void *>(0x10))),
		  EFAULT);
}

/* ======================= unknown ioctls, bad fds ======================= */

// Contract: an ioctl number the device does not know fails with ENOTTY.
TEST_F(DeviceIoctlTest, UnknownIoctlIsEnotty)
{
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, _IO(';', 200), nullptr)), ENOTTY);
	struct vfio_device_info info = {};
	info.argsz = sizeof(info);
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, _IO('x', 1), &info)), ENOTTY);
	/* The fd still works after the refused ioctl. */
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_INFO, &info)), 0);
}

// Contract: any ioctl on a closed or never-opened fd fails with EBADF.
TEST_F(DeviceIoctlTest, IoctlOnBadFdIsEbadf)
{
	struct vfio_device_info info = {};
	info.argsz = sizeof(info);

	int fd2 = uvfio_open(dev_->name());
	ASSERT_GE(fd2, 0);
	ASSERT_EQ(ErrOf(uvfio_ioctl(fd2, VFIO_DEVICE_GET_INFO, &info)), 0);
	ASSERT_EQ(uvfio_close(fd2), 0);
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd2, VFIO_DEVICE_GET_INFO, &info)), EBADF);
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd2, VFIO_DEVICE_RESET, nullptr)), EBADF);
	EXPECT_EQ(ErrOf(uvfio_close(fd2)), EBADF);

	EXPECT_EQ(ErrOf(uvfio_ioctl(-1, VFIO_DEVICE_GET_INFO, &info)), EBADF);
	EXPECT_EQ(ErrOf(uvfio_ioctl(1 << 20, VFIO_DEVICE_GET_INFO, &info)),
		  EBADF);
	EXPECT_EQ(ErrOf(uvfio_ioctl(1 << 20, _IO(';', 200), nullptr)), EBADF);

	/* The other open fd of the same device is unaffected. */
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_INFO, &info)), 0);
}

/* ======================= VFIO_DEVICE_GET_REGION_INFO ======================= */

// Contract: GET_REGION_INFO reports every fixed region: BAR0 4K rw, BAR2 1M
// rw+mmap, unimplemented BARs and ROM size 0 flags 0, CONFIG 4K rw, each at
// offset index << 40, with no capability chain.
TEST_F(DeviceRegionTest, GetRegionInfoFixedRegions)
{
	const uint32_t rw = VFIO_REGION_INFO_FLAG_READ |
			    VFIO_REGION_INFO_FLAG_WRITE;
	struct Expect {
		uint32_t index;
		uint64_t size;
		uint32_t flags;
	} expect[] = {
		{VFIO_PCI_BAR0_REGION_INDEX, kBar0Size, rw},
		{VFIO_PCI_BAR1_REGION_INDEX, 0, 0},
		{VFIO_PCI_BAR2_REGION_INDEX, kBar2Size,
		 rw | VFIO_REGION_INFO_FLAG_MMAP},
		{VFIO_PCI_BAR3_REGION_INDEX, 0, 0},
		{VFIO_PCI_BAR4_REGION_INDEX, 0, 0},
		{VFIO_PCI_BAR5_REGION_INDEX, 0, 0},
		{VFIO_PCI_ROM_REGION_INDEX, 0, 0},
		{VFIO_PCI_CONFIG_REGION_INDEX, kConfigSize, rw},
	};
	for (const auto &e : expect) {
		struct vfio_region_info info;
		std::memset(&info, 0xa5, sizeof(info));
		info.argsz = sizeof(info);
		info.index = e.index;
		ASSERT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_REGION_INFO,
					    &info)),
			  0)
			<< "index " << e.index;
		EXPECT_EQ(info.argsz, sizeof(info)) << "index " << e.index;
		EXPECT_EQ(info.index, e.index);
		EXPECT_EQ(info.size, e.size) << "index " << e.index;
		EXPECT_EQ(info.flags, e.flags) << "index " << e.index;
		EXPECT_EQ(info.offset, (uint64_t)e.index << 40)
			<< "index " << e.index;
		EXPECT_EQ(info.cap_offset, 0u) << "index " << e.index;
	}
}

// Contract: GET_REGION_INFO on the VGA index of a function without VGA fails
// with EINVAL (kernel: "if (!vdev->has_vga) return -EINVAL").
TEST_F(DeviceRegionTest, GetRegionInfoVgaWithoutVga)
{
	struct vfio_region_info info = {};
	info.argsz = sizeof(info);
	info.index = VFIO_PCI_VGA_REGION_INDEX;
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_REGION_INFO, &info)),
		  EINVAL);
}

// Contract: GET_REGION_INFO for an index past the last region fails with
// EINVAL.
TEST_F(DeviceRegionTest, GetRegionInfoBadIndex)
{
	/* 9 is the v1 migration region (test_migration_v1.cc). */
	for (uint32_t index : {10u, 11u, 0x7fffffffu, 0xffffffffu}) {
		struct vfio_region_info info = {};
		info.argsz = sizeof(info);
		info.index = index;
		EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_REGION_INFO,
					    &info)),
			  EINVAL)
			<< "index " << index;
	}
}

// Contract: GET_REGION_INFO with argsz below minsz (32) fails with EINVAL.
TEST_F(DeviceRegionTest, GetRegionInfoArgszTooSmall)
{
	for (uint32_t argsz : {0u, 16u, 24u, 31u}) {
		struct vfio_region_info info = {};
		info.argsz = argsz;
		info.index = VFIO_PCI_BAR0_REGION_INDEX;
		EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_REGION_INFO,
					    &info)),
			  EINVAL)
			<< "argsz " << argsz;
		EXPECT_EQ(info.size, 0u);
	}
}

// Contract: GET_REGION_INFO with a NULL or wild argument fails with EFAULT.
TEST_F(DeviceRegionTest, GetRegionInfoBadPointer)
{
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_REGION_INFO,
				    nullptr)),
		  EFAULT);
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_REGION_INFO,
				    reinterpret_cast<void *>(0x10))),
		  EFAULT);
}

/* ======================= region read/write ======================= */

// Contract: bytes written with pwrite at a region's offset read back with
// pread, for BAR0, BAR2 and config space.
TEST_F(DeviceRegionTest, ReadWriteRoundTrip)
{
	struct Case {
		uint32_t index;
		off_t in_region;
		size_t len;
	} cases[] = {
		{VFIO_PCI_BAR0_REGION_INDEX, 0x10, 8},
		{VFIO_PCI_BAR0_REGION_INDEX, 0, kBar0Size},
		{VFIO_PCI_BAR2_REGION_INDEX, 0x80000, 64 << 10},
		{VFIO_PCI_BAR2_REGION_INDEX, kBar2Size - 3, 3},
		/* The interrupt line: config the core emulates for the user. */
		{VFIO_PCI_CONFIG_REGION_INDEX, 0x3c, 1},
	};
	uint8_t seed = 1;
	for (const auto &c : cases) {
		off_t off = RegionOffset(c.index) + c.in_region;
		std::vector<uint8_t> out(c.len), in(c.len, 0);
		for (size_t i = 0; i < c.len; i++)
			out[i] = static_cast<uint8_t>(seed + i * 7);
		seed += 13;
		EXPECT_EQ(uvfio_pwrite(fd_, out.data(), c.len, off),
			  (ssize_t)c.len)
			<< "index " << c.index << ": " << std::strerror(errno);
		EXPECT_EQ(uvfio_pread(fd_, in.data(), c.len, off),
			  (ssize_t)c.len)
			<< "index " << c.index << ": " << std::strerror(errno);
		EXPECT_EQ(in, out) << "index " << c.index;
	}
}

// Contract: regions are separate: a write to BAR0 does not show in BAR2 or
// config space at the same in-region offset.
TEST_F(DeviceRegionTest, RegionsAreSeparate)
{
	const off_t in_region = 0x60;
	uint8_t before2[8], beforec[8];
	ASSERT_EQ(uvfio_pread(fd_, before2, 8,
			      RegionOffset(VFIO_PCI_BAR2_REGION_INDEX) +
				      in_region),
		  8);
	ASSERT_EQ(uvfio_pread(fd_, beforec, 8,
			      RegionOffset(VFIO_PCI_CONFIG_REGION_INDEX) +
				      in_region),
		  8);
	const uint8_t pat[8] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4};
	ASSERT_EQ(uvfio_pwrite(fd_, pat, 8,
			       RegionOffset(VFIO_PCI_BAR0_REGION_INDEX) +
				       in_region),
		  8);
	uint8_t after2[8], afterc[8];
	ASSERT_EQ(uvfio_pread(fd_, after2, 8,
			      RegionOffset(VFIO_PCI_BAR2_REGION_INDEX) +
				      in_region),
		  8);
	ASSERT_EQ(uvfio_pread(fd_, afterc, 8,
			      RegionOffset(VFIO_PCI_CONFIG_REGION_INDEX) +
				      in_region),
		  8);
	EXPECT_EQ(std::memcmp(before2, after2, 8), 0);
	EXPECT_EQ(std::memcmp(beforec, afterc, 8), 0);
}

// Contract: a BAR access starting at or past the region end fails with
// EINVAL.
TEST_F(DeviceRegionTest, BarAccessPastEndIsEinval)
{
	uint8_t buf[16] = {};
	struct {
		uint32_t index;
		uint64_t size;
	} bars[] = {{VFIO_PCI_BAR0_REGION_INDEX, kBar0Size},
		    {VFIO_PCI_BAR2_REGION_INDEX, kBar2Size}};
	for (const auto &b : bars) {
		off_t base = RegionOffset(b.index);
		for (uint64_t past : {b.size, b.size + 1, b.size + 4096}) {
			EXPECT_EQ(ErrOf(uvfio_pread(fd_, buf, sizeof(buf),
						    base + past)),
				  EINVAL)
				<< "index " << b.index << " +" << past;
			EXPECT_EQ(ErrOf(uvfio_pwrite(fd_, buf, sizeof(buf),
						     base + past)),
				  EINVAL)
				<< "index " << b.index << " +" << past;
		}
	}
}

// Contract: a BAR access crossing the region end is shortened to the bytes
// that fit, and only those bytes are written.
TEST_F(DeviceRegionTest, BarAccessCrossingEndIsShortened)
{
	struct {
		uint32_t index;
		uint64_t size;
	} bars[] = {{VFIO_PCI_BAR0_REGION_INDEX, kBar0Size},
		    {VFIO_PCI_BAR2_REGION_INDEX, kBar2Size}};
	for (const auto &b : bars) {
		off_t base = RegionOffset(b.index);
		uint8_t out[16], in[16];
		for (int i = 0; i < 16; i++)
			out[i] = static_cast<uint8_t>(0x30 + i);
		EXPECT_EQ(uvfio_pwrite(fd_, out, 16, base + b.size - 8), 8)
			<< "index " << b.index;
		std::memset(in, 0, sizeof(in));
		EXPECT_EQ(uvfio_pread(fd_, in, 16, base + b.size - 8), 8)
			<< "index " << b.index;
		EXPECT_EQ(std::memcmp(in, out, 8), 0) << "index " << b.index;
		/* Bytes past the short count are not touched. */
		for (int i = 8; i < 16; i++)
			EXPECT_EQ(in[i], 0) << "index " << b.index;
		EXPECT_EQ(uvfio_pread(fd_, in, 16, base + b.size - 1), 1);
	}
}

// Contract: a config-space access at or past its end fails with EFAULT
// (kernel vfio_config_do_rw: "*ppos >= pdev->cfg_size ... return -EFAULT").
TEST_F(DeviceRegionTest, ConfigAccessPastEndIsEfault)
{
	uint8_t buf[4] = {};
	off_t base = RegionOffset(VFIO_PCI_CONFIG_REGION_INDEX);
	EXPECT_EQ(ErrOf(uvfio_pread(fd_, buf, 4, base + kConfigSize)), EFAULT);
	EXPECT_EQ(ErrOf(uvfio_pwrite(fd_, buf, 4, base + kConfigSize)), EFAULT);
}

// Contract: a config-space access crossing its end fails with EFAULT and is
// not shortened (kernel vfio_config_do_rw: "*ppos + count > cfg_size").
TEST_F(DeviceRegionTest, ConfigAccessCrossingEndIsEfault)
{
	uint8_t buf[8] = {};
	off_t base = RegionOffset(VFIO_PCI_CONFIG_REGION_INDEX);
	EXPECT_EQ(ErrOf(uvfio_pread(fd_, buf, 8, base + kConfigSize - 4)),
		  EFAULT);
	EXPECT_EQ(ErrOf(uvfio_pwrite(fd_, buf, 8, base + kConfigSize - 4)),
		  EFAULT);
}

// Contract: access to a region index past the last region, to a zero-size
// BAR, to the absent ROM or to the absent VGA region fails with EINVAL.
TEST_F(DeviceRegionTest, AccessToMissingRegionIsEinval)
{
	uint8_t buf[8] = {};
	/* The stride between region offsets, as GET_REGION_INFO reports. */
	off_t stride = RegionOffset(1) - RegionOffset(0);
	ASSERT_GT(stride, 0);
	off_t past_last = RegionOffset(0) + 9 * stride;
	EXPECT_EQ(ErrOf(uvfio_pread(fd_, buf, 8, past_last)), EINVAL);
	EXPECT_EQ(ErrOf(uvfio_pwrite(fd_, buf, 8, past_last)), EINVAL);
	EXPECT_EQ(ErrOf(uvfio_pread(fd_, buf, 8, RegionOffset(0) + 200 * stride)),
		  EINVAL);

	for (uint32_t index :
	     {(uint32_t)VFIO_PCI_BAR1_REGION_INDEX,
	      (uint32_t)VFIO_PCI_BAR3_REGION_INDEX,
	      (uint32_t)VFIO_PCI_BAR5_REGION_INDEX,
	      (uint32_t)VFIO_PCI_ROM_REGION_INDEX}) {
		off_t off = RegionOffset(index);
		EXPECT_EQ(ErrOf(uvfio_pread(fd_, buf, 8, off)), EINVAL)
			<< "index " << index;
		EXPECT_EQ(ErrOf(uvfio_pwrite(fd_, buf, 8, off)), EINVAL)
			<< "index " << index;
	}
	off_t vga = RegionOffset(0) + VFIO_PCI_VGA_REGION_INDEX * stride;
	EXPECT_EQ(ErrOf(uvfio_pread(fd_, buf, 1, vga + 0xa0000)), EINVAL);
	EXPECT_EQ(ErrOf(uvfio_pwrite(fd_, buf, 1, vga + 0xa0000)), EINVAL);
}

// Contract: region access with a NULL (or wild) buffer and count > 0 fails
// with EFAULT; count 0 returns 0.
TEST_F(DeviceRegionTest, BadBufferIsEfault)
{
	for (uint32_t index : {(uint32_t)VFIO_PCI_BAR0_REGION_INDEX,
			       (uint32_t)VFIO_PCI_BAR2_REGION_INDEX,
			       (uint32_t)VFIO_PCI_CONFIG_REGION_INDEX}) {
		off_t off = RegionOffset(index);
		EXPECT_EQ(ErrOf(uvfio_pread(fd_, nullptr, 8, off)), EFAULT)
			<< "index " << index;
		EXPECT_EQ(ErrOf(uvfio_pwrite(fd_, nullptr, 8, off)), EFAULT)
			<< "index " << index;
		EXPECT_EQ(ErrOf(uvfio_pread(fd_, reinterpret_cast<void *>(0x10),
					    8, off)),
			  EFAULT)
			<< "index " << index;
		EXPECT_EQ(uvfio_pread(fd_, nullptr, 0, off), 0);
		EXPECT_EQ(uvfio_pwrite(fd_, nullptr, 0, off), 0);
	}
}

// Contract: pread/pwrite with a negative offset fail with EINVAL.
TEST_F(DeviceRegionTest, NegativeOffsetIsEinval)
{
	uint8_t buf[8] = {};
	EXPECT_EQ(ErrOf(uvfio_pread(fd_, buf, 8, -1)), EINVAL);
	EXPECT_EQ(ErrOf(uvfio_pwrite(fd_, buf, 8, -1)), EINVAL);
	EXPECT_EQ(ErrOf(uvfio_pread(fd_, buf, 8, INT64_MIN)), EINVAL);
}

// Contract: pread/pwrite on a closed fd fail with EBADF.
TEST_F(DeviceRegionTest, AccessOnClosedFdIsEbadf)
{
	int fd2 = uvfio_open(dev_->name());
	ASSERT_GE(fd2, 0);
	off_t off = RegionOffset(VFIO_PCI_BAR0_REGION_INDEX);
	ASSERT_EQ(uvfio_close(fd2), 0);
	uint8_t buf[8] = {};
	EXPECT_EQ(ErrOf(uvfio_pread(fd2, buf, 8, off)), EBADF);
	EXPECT_EQ(ErrOf(uvfio_pwrite(fd2, buf, 8, off)), EBADF);
}

/* ======================= mmap ======================= */

// Contract: a MAP_SHARED mapping of BAR2 sees bytes written with pwrite, and
// pread sees bytes stored through the mapping.
TEST_F(DeviceMmapTest, Bar2SharedMappingIsCoherent)
{
	struct vfio_region_info info = RegionInfo(VFIO_PCI_BAR2_REGION_INDEX);
	ASSERT_TRUE(info.flags & VFIO_REGION_INFO_FLAG_MMAP);
	off_t off = static_cast<off_t>(info.offset);
	void *p = uvfio_mmap(nullptr, info.size, PROT_READ | PROT_WRITE,
			     MAP_SHARED, fd_, off);
	ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
	auto *mem = static_cast<volatile uint8_t *>(p);

	const uint8_t pat[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	ASSERT_EQ(uvfio_pwrite(fd_, pat, 8, off + 0x1234), 8);
	for (int i = 0; i < 8; i++) {
		uint8_t v = mem[0x1234 + i];
		EXPECT_EQ(v, pat[i]);
	}

	for (int i = 0; i < 8; i++)
		mem[info.size - 8 + i] = static_cast<uint8_t>(0xf0 + i);
	uint8_t in[8] = {};
	ASSERT_EQ(uvfio_pread(fd_, in, 8, off + info.size - 8), 8);
	for (int i = 0; i < 8; i++)
		EXPECT_EQ(in[i], 0xf0 + i);
	EXPECT_EQ(munmap(p, info.size), 0);

	/* A page-aligned window inside the BAR maps that part of it. */
	void *q = uvfio_mmap(nullptr, kPage, PROT_READ, MAP_SHARED, fd_,
			     off + 0x1000);
	ASSERT_NE(q, MAP_FAILED) << std::strerror(errno);
	for (int i = 0; i < 8; i++) {
		uint8_t v = static_cast<volatile uint8_t *>(q)[0x234 + i];
		EXPECT_EQ(v, pat[i]);
	}
	EXPECT_EQ(munmap(q, kPage), 0);
}

// Contract: mmap of a region without the MMAP flag (BAR0, config, a zero-size
// BAR) fails with EINVAL.
TEST_F(DeviceMmapTest, NonMmapableRegionIsEinval)
{
	for (uint32_t index : {(uint32_t)VFIO_PCI_BAR0_REGION_INDEX,
			       (uint32_t)VFIO_PCI_BAR1_REGION_INDEX,
			       (uint32_t)VFIO_PCI_ROM_REGION_INDEX,
			       (uint32_t)VFIO_PCI_CONFIG_REGION_INDEX}) {
		errno = 0;
		void *p = uvfio_mmap(nullptr, kPage, PROT_READ | PROT_WRITE,
				     MAP_SHARED, fd_, RegionOffset(index));
		EXPECT_EQ(p, MAP_FAILED) << "index " << index;
		EXPECT_EQ(errno, EINVAL) << "index " << index;
		if (p != MAP_FAILED)
			munmap(p, kPage);
	}
}

// Contract: mmap with MAP_PRIVATE, an unaligned offset, a range past the
// BAR, or length 0 fails with EINVAL.
TEST_F(DeviceMmapTest, BadMappingArgumentsAreEinval)
{
	off_t off = RegionOffset(VFIO_PCI_BAR2_REGION_INDEX);
	struct Case {
		const char *what;
		size_t len;
		int flags;
		off_t off;
	} cases[] = {
		{"MAP_PRIVATE", kPage, MAP_PRIVATE, off},
		{"unaligned offset", kPage, MAP_SHARED, off + 1},
		{"half-page offset", kPage, MAP_SHARED, off + 2048},
		{"length past BAR", kBar2Size + kPage, MAP_SHARED, off},
		{"window past BAR", 2 * kPage, MAP_SHARED,
		 off + (off_t)kBar2Size - (off_t)kPage},
		{"offset at BAR end", kPage, MAP_SHARED, off + (off_t)kBar2Size},
		{"length 0", 0, MAP_SHARED, off},
		{"negative offset", kPage, MAP_SHARED, -(off_t)kPage},
	};
	for (const auto &c : cases) {
		errno = 0;
		void *p = uvfio_mmap(nullptr, c.len, PROT_READ | PROT_WRITE,
				     c.flags, fd_, c.off);
		EXPECT_EQ(p, MAP_FAILED) << c.what;
		EXPECT_EQ(errno, EINVAL) << c.what;
		if (p != MAP_FAILED)
			munmap(p, c.len ? c.len : kPage);
	}
}

// Contract: mmap of a region index past the last one fails with EINVAL, and
// mmap on a closed fd fails with EBADF.
TEST_F(DeviceMmapTest, BadIndexAndBadFd)
{
	off_t stride = RegionOffset(1) - RegionOffset(0);
	errno = 0;
	EXPECT_EQ(uvfio_mmap(nullptr, kPage, PROT_READ, MAP_SHARED, fd_,
			     RegionOffset(0) + 9 * stride),
		  MAP_FAILED);
	EXPECT_EQ(errno, EINVAL);

	int fd2 = uvfio_open(dev_->name());
	ASSERT_GE(fd2, 0);
	ASSERT_EQ(uvfio_close(fd2), 0);
	errno = 0;
	EXPECT_EQ(uvfio_mmap(nullptr, kPage, PROT_READ, MAP_SHARED, fd2,
			     RegionOffset(VFIO_PCI_BAR2_REGION_INDEX)),
		  MAP_FAILED);
	EXPECT_EQ(errno, EBADF);
}

/* ======================= VFIO_DEVICE_GET_IRQ_INFO ======================= */

// Contract: GET_IRQ_INFO reports INTx (1, eventfd|maskable|automasked), MSI
// (0), MSI-X (4, eventfd|noresize), ERR (1) and REQ (1).
TEST_F(DeviceIrqTest, GetIrqInfoEveryIndex)
{
	struct Expect {
		uint32_t index;
		uint32_t count;
		uint32_t flags;
	} expect[] = {
		{VFIO_PCI_INTX_IRQ_INDEX, 1,
		 VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE |
			 VFIO_IRQ_INFO_AUTOMASKED},
		{VFIO_PCI_MSI_IRQ_INDEX, 0,
		 VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE},
		{VFIO_PCI_MSIX_IRQ_INDEX, kMsixCount,
		 VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE},
		{VFIO_PCI_ERR_IRQ_INDEX, 1,
		 VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE},
		{VFIO_PCI_REQ_IRQ_INDEX, 1,
		 VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE},
	};
	for (const auto &e : expect) {
		struct vfio_irq_info info = IrqInfo(e.index);
		EXPECT_EQ(info.argsz, sizeof(info));
		EXPECT_EQ(info.index, e.index);
		EXPECT_EQ(info.count, e.count) << "index " << e.index;
		EXPECT_EQ(info.flags, e.flags) << "index " << e.index;
	}
}

// Contract: GET_IRQ_INFO for index >= 5, argsz below minsz (16), or a bad
// pointer fails with EINVAL / EINVAL / EFAULT.
TEST_F(DeviceIrqTest, GetIrqInfoInvalid)
{
	for (uint32_t index : {5u, 6u, 0xffffffffu}) {
		struct vfio_irq_info info = {};
		info.argsz = sizeof(info);
		info.index = index;
		EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_IRQ_INFO,
					    &info)),
			  EINVAL)
			<< "index " << index;
	}
	for (uint32_t argsz : {0u, 12u, 15u}) {
		struct vfio_irq_info info = {};
		info.argsz = argsz;
		info.index = VFIO_PCI_MSIX_IRQ_INDEX;
		EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_IRQ_INFO,
					    &info)),
			  EINVAL)
			<< "argsz " << argsz;
		EXPECT_EQ(info.count, 0u);
	}
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_IRQ_INFO, nullptr)),
		  EFAULT);
}

/* ======================= VFIO_DEVICE_SET_IRQS ======================= */

// Contract: SET_IRQS rejects a malformed header with EINVAL: argsz < 20,
// unknown flag bits, index >= 5, start/count outside the vectors, count
// overflow, two data types, or argsz too small for the data array; a bad
// pointer fails with EFAULT.
TEST_F(DeviceIrqTest, SetIrqsHeaderValidation)
{
	const uint32_t trig = VFIO_IRQ_SET_ACTION_TRIGGER;
	const uint32_t msix = VFIO_PCI_MSIX_IRQ_INDEX;

	/* The reference call is valid: MSI-X with vector 0 unassigned. */
	const int32_t none = -1;
	ASSERT_EQ(ErrOf(SetIrqs(fd_, VFIO_IRQ_SET_DATA_EVENTFD | trig, msix, 0,
				1, &none, sizeof(none))),
		  0);
	ASSERT_EQ(ErrOf(SetIrqs(fd_, VFIO_IRQ_SET_DATA_NONE | trig, msix, 0, 0)),
		  0);

	for (uint32_t argsz : {0u, 16u, 19u})
		EXPECT_EQ(ErrOf(SetIrqs(fd_, VFIO_IRQ_SET_DATA_NONE | trig, msix,
					0, 0, nullptr, 0, argsz)),
			  EINVAL)
			<< "argsz " << argsz;

	for (uint32_t bit : {1u << 6, 1u << 8, 1u << 31})
		EXPECT_EQ(ErrOf(SetIrqs(fd_, VFIO_IRQ_SET_DATA_NONE | trig | bit,
					msix, 0, 1)),
			  EINVAL)
			<< "flag " << bit;

	for (uint32_t index : {5u, 9u, 0xffffffffu})
		EXPECT_EQ(ErrOf(SetIrqs(fd_, VFIO_IRQ_SET_DATA_NONE | trig,
					index, 0, 0)),
			  EINVAL)
			<< "index " << index;

	/* start + count past the 4 MSI-X vectors; start at the end. */
	EXPECT_EQ(ErrOf(SetIrqs(fd_, VFIO_IRQ_SET_DATA_NONE | trig, msix, 2, 3)),
		  EINVAL);
	EXPECT_EQ(ErrOf(SetIrqs(fd_, VFIO_IRQ_SET_DATA_NONE | trig, msix, 0, 5)),
		  EINVAL);
	EXPECT_EQ(ErrOf(SetIrqs(fd_, VFIO_IRQ_SET_DATA_NONE | trig, msix, 4, 0)),
		  EINVAL);
	EXPECT_EQ(ErrOf(SetIrqs(fd_, VFIO_IRQ_SET_DATA_NONE | trig, msix, 1,
				0xffffffffu)),
		  EINVAL);
	/* MSI has no vectors on this function; INTx and ERR have one. */
	EXPECT_EQ(ErrOf(SetIrqs(fd_, VFIO_IRQ_SET_DATA_NONE | trig,
				VFIO_PCI_MSI_IRQ_INDEX, 0, 0)),
		  EINVAL);
	EXPECT_EQ(ErrOf(SetIrqs(fd_, VFIO_IRQ_SET_DATA_NONE | trig,
				VFIO_PCI_INTX_IRQ_INDEX, 0, 2)),
		  EINVAL);
	EXPECT_EQ(ErrOf(SetIrqs(fd_, VFIO_IRQ_SET_DATA_NONE | trig,
				VFIO_PCI_ERR_IRQ_INDEX, 1, 0)),
		  EINVAL);

	/* Two data types at once. */
	EXPECT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL |
					trig,
				msix, 0, 1)),
		  EINVAL);
	const int32_t four[4] = {-1, -1, -1, -1};
	EXPECT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_BOOL |
					VFIO_IRQ_SET_DATA_EVENTFD | trig,
				msix, 0, 1, four, sizeof(four))),
		  EINVAL);

	/* argsz one byte short of the eventfd / bool arrays. */
	EXPECT_EQ(ErrOf(SetIrqs(fd_, VFIO_IRQ_SET_DATA_EVENTFD | trig, msix, 0,
				4, four, sizeof(four),
				(uint32_t)(sizeof(struct vfio_irq_set) +
					   sizeof(four) - 1))),
		  EINVAL);
	EXPECT_EQ(ErrOf(SetIrqs(fd_, VFIO_IRQ_SET_DATA_EVENTFD | trig, msix, 0,
				1, four, sizeof(four),
				(uint32_t)sizeof(struct vfio_irq_set))),
		  EINVAL);
	const uint8_t bools[2] = {1, 1};
	EXPECT_EQ(ErrOf(SetIrqs(fd_, VFIO_IRQ_SET_DATA_BOOL | trig, msix, 0, 2,
				bools, sizeof(bools),
				(uint32_t)(sizeof(struct vfio_irq_set) + 1))),
		  EINVAL);

	EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_SET_IRQS, nullptr)),
		  EFAULT);
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_SET_IRQS,
				    reinterpret_cast<void *>(0x10))),
		  EFAULT);
}

// Contract: SET_IRQS with an eventfd array whose data pointer runs into
// unmapped memory fails with EFAULT.
TEST_F(DeviceIrqTest, SetIrqsDataFaultIsEfault)
{
	long page = sysconf(_SC_PAGESIZE);
	void *map = mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(map, MAP_FAILED);
	ASSERT_EQ(munmap(static_cast<char *>(map) + page, page), 0);
	/* The header ends at the page end; the eventfd array is unmapped. */
	auto *set = reinterpret_cast<struct vfio_irq_set *>(
		static_cast<char *>(map) + page - sizeof(struct vfio_irq_set));
	set->argsz = sizeof(*set) + 4 * sizeof(int32_t);
	set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	set->index = VFIO_PCI_MSIX_IRQ_INDEX;
	set->start = 0;
	set->count = 4;
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_SET_IRQS, set)), EFAULT);
	EXPECT_EQ(munmap(map, page), 0);
	/* Nothing was enabled. */
	EXPECT_EQ(ErrOf(Loopback(fd_, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1)), EINVAL);
}

// Contract: MSI-X eventfds set for vectors 0..3 are signalled by loopback
// triggers: DATA_NONE on start=1,count=2 signals exactly vectors 1 and 2,
// DATA_BOOL {1,0} only the first; fd -1 unassigns a vector; DATA_NONE with
// count 0 disables MSI-X.
TEST_F(DeviceIrqTest, MsixEventfdLoopback)
{
	const uint32_t msix = VFIO_PCI_MSIX_IRQ_INDEX;
	std::vector<int32_t> efd;
	for (uint32_t i = 0; i < kMsixCount; i++) {
		efd.push_back(NewEventfd());
		ASSERT_GE(efd.back(), 0);
	}

	/* Loopback before MSI-X is enabled is refused. */
	EXPECT_EQ(ErrOf(Loopback(fd_, msix, 0, 1)), EINVAL);

	ASSERT_EQ(ErrOf(SetEventfds(fd_, msix, 0, efd)), 0);
	for (int e : efd)
		EXPECT_EQ(Drain(e), 0u);

	ASSERT_EQ(ErrOf(Loopback(fd_, msix, 1, 2)), 0);
	EXPECT_EQ(Drain(efd[0]), 0u);
	EXPECT_EQ(Drain(efd[1]), 1u);
	EXPECT_EQ(Drain(efd[2]), 1u);
	EXPECT_EQ(Drain(efd[3]), 0u);

	const uint8_t bools[2] = {1, 0};
	ASSERT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_BOOL |
					VFIO_IRQ_SET_ACTION_TRIGGER,
				msix, 0, 2, bools, sizeof(bools))),
		  0);
	EXPECT_EQ(Drain(efd[0]), 1u);
	EXPECT_EQ(Drain(efd[1]), 0u);
	EXPECT_EQ(Drain(efd[2]), 0u);
	EXPECT_EQ(Drain(efd[3]), 0u);

	/* Two loopbacks accumulate in the eventfd counter. */
	ASSERT_EQ(ErrOf(Loopback(fd_, msix, 3, 1)), 0);
	ASSERT_EQ(ErrOf(Loopback(fd_, msix, 3, 1)), 0);
	EXPECT_EQ(Drain(efd[3]), 2u);

	/* fd -1 unassigns vector 3 only. */
	ASSERT_EQ(ErrOf(SetEventfds(fd_, msix, 3, {-1})), 0);
	ASSERT_EQ(ErrOf(Loopback(fd_, msix, 0, kMsixCount)), 0);
	EXPECT_EQ(Drain(efd[0]), 1u);
	EXPECT_EQ(Drain(efd[1]), 1u);
	EXPECT_EQ(Drain(efd[2]), 1u);
	EXPECT_EQ(Drain(efd[3]), 0u);

	/* Re-assigning a vector with a new eventfd moves its signal there. */
	int fresh = NewEventfd();
	ASSERT_GE(fresh, 0);
	ASSERT_EQ(ErrOf(SetEventfds(fd_, msix, 0, {fresh})), 0);
	ASSERT_EQ(ErrOf(Loopback(fd_, msix, 0, 1)), 0);
	EXPECT_EQ(Drain(fresh), 1u);
	EXPECT_EQ(Drain(efd[0]), 0u);

	/* The device holds its own reference: closing ours changes nothing. */
	close(fresh);
	ASSERT_EQ(ErrOf(Loopback(fd_, msix, 0, 1)), 0);

	/* Disable: afterwards loopback is refused and nothing is signalled. */
	ASSERT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_NONE |
					VFIO_IRQ_SET_ACTION_TRIGGER,
				msix, 0, 0)),
		  0);
	EXPECT_EQ(ErrOf(Loopback(fd_, msix, 1, 1)), EINVAL);
	for (int e : efd)
		EXPECT_EQ(Drain(e), 0u);

	for (int e : efd)
		close(e);
}

// Contract: an MSI-X trigger fd that is not an eventfd fails with EINVAL, a
// closed fd number with EBADF; the failed call enables nothing.
TEST_F(DeviceIrqTest, MsixBadEventfd)
{
	const uint32_t msix = VFIO_PCI_MSIX_IRQ_INDEX;
	int pipefd[2];
	ASSERT_EQ(pipe2(pipefd, O_CLOEXEC), 0);
	int good = NewEventfd();
	ASSERT_GE(good, 0);

	EXPECT_EQ(ErrOf(SetEventfds(fd_, msix, 0, {pipefd[0]})), EINVAL);
	EXPECT_EQ(ErrOf(SetEventfds(fd_, msix, 0, {good, pipefd[1]})), EINVAL);
	/* A regular file is not an eventfd either. */
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(devnull, 0);
	EXPECT_EQ(ErrOf(SetEventfds(fd_, msix, 0, {devnull})), EINVAL);
	close(devnull);

	/* A closed fd number. */
	int closed = pipefd[1];
	ASSERT_EQ(close(pipefd[1]), 0);
	EXPECT_EQ(ErrOf(SetEventfds(fd_, msix, 0, {closed})), EBADF);
	EXPECT_EQ(ErrOf(SetEventfds(fd_, msix, 0, {-1, closed})), EBADF);

	/* None of the failures enabled MSI-X. */
	EXPECT_EQ(ErrOf(Loopback(fd_, msix, 0, 1)), EINVAL);
	EXPECT_EQ(Drain(good), 0u);

	/* With MSI-X enabled, a bad fd fails and keeps the existing vectors. */
	ASSERT_EQ(ErrOf(SetEventfds(fd_, msix, 0, {good})), 0);
	EXPECT_EQ(ErrOf(SetEventfds(fd_, msix, 1, {pipefd[0]})), EINVAL);
	ASSERT_EQ(ErrOf(Loopback(fd_, msix, 0, 1)), 0);
	EXPECT_EQ(Drain(good), 1u);

	close(pipefd[0]);
	close(good);
}

// Contract: a closed fd number later in the eventfd array fails with EBADF
// even when it is the lowest free fd number (the kernel takes eventfd
// references without allocating fd numbers).
TEST_F(DeviceIrqTest, MsixClosedFdAfterValidFdIsEbadf)
{
	const uint32_t msix = VFIO_PCI_MSIX_IRQ_INDEX;
	int good = NewEventfd();
	ASSERT_GE(good, 0);
	/* Make 'lowest' the lowest free fd number, then leave it closed. */
	int lowest = dup(good);
	ASSERT_GE(lowest, 0);
	ASSERT_EQ(close(lowest), 0);
	EXPECT_EQ(ErrOf(SetEventfds(fd_, msix, 0, {good, lowest})), EBADF);
	/* Nothing was enabled. */
	EXPECT_EQ(ErrOf(Loopback(fd_, msix, 0, 1)), EINVAL);
	EXPECT_EQ(Drain(good), 0u);
	close(good);
}

// Contract: an MSI-X trigger fd of -2 (any negative fd) unassigns the vector
// and succeeds (kernel vfio_msi_set_vector_signal: "if (fd < 0) return 0").
TEST_F(DeviceIrqTest, MsixNegativeFdUnassigns)
{
	const uint32_t msix = VFIO_PCI_MSIX_IRQ_INDEX;
	int e0 = NewEventfd(), e1 = NewEventfd();
	ASSERT_GE(e0, 0);
	ASSERT_GE(e1, 0);
	ASSERT_EQ(ErrOf(SetEventfds(fd_, msix, 0, {e0, e1})), 0);
	EXPECT_EQ(ErrOf(SetEventfds(fd_, msix, 1, {-2})), 0);
	ASSERT_EQ(ErrOf(Loopback(fd_, msix, 0, 2)), 0);
	EXPECT_EQ(Drain(e0), 1u);
	EXPECT_EQ(Drain(e1), 0u);
	close(e0);
	close(e1);
}

// Contract: the device fd itself is not an eventfd: passing it as an MSI-X
// trigger fails with EINVAL (kernel eventfd_ctx_fdget checks f_op).
TEST_F(DeviceIrqTest, DeviceFdIsNotAnEventfd)
{
	EXPECT_EQ(ErrOf(SetEventfds(fd_, VFIO_PCI_MSIX_IRQ_INDEX, 0, {fd_})),
		  EINVAL);
	EXPECT_EQ(ErrOf(SetEventfds(fd_, VFIO_PCI_REQ_IRQ_INDEX, 0, {fd_})),
		  EINVAL);
}

// Contract: MSI-X MASK and UNMASK actions are not supported: ENOTTY; so is a
// combination of two action bits.
TEST_F(DeviceIrqTest, MsixMaskIsEnotty)
{
	const uint32_t msix = VFIO_PCI_MSIX_IRQ_INDEX;
	EXPECT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
				msix, 0, 1)),
		  ENOTTY);
	EXPECT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_NONE |
					VFIO_IRQ_SET_ACTION_UNMASK,
				msix, 0, 1)),
		  ENOTTY);
	EXPECT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_NONE |
					VFIO_IRQ_SET_ACTION_MASK |
					VFIO_IRQ_SET_ACTION_TRIGGER,
				msix, 0, 1)),
		  ENOTTY);
	/* ERR and REQ only know TRIGGER. */
	EXPECT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
				VFIO_PCI_REQ_IRQ_INDEX, 0, 1)),
		  ENOTTY);
	EXPECT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_NONE |
					VFIO_IRQ_SET_ACTION_UNMASK,
				VFIO_PCI_ERR_IRQ_INDEX, 0, 1)),
		  ENOTTY);
}

// Contract: INTx and MSI-X are exclusive: enabling one while the other is
// enabled fails with EINVAL; after disabling, the other can be enabled.
TEST_F(DeviceIrqTest, IntxAndMsixAreExclusive)
{
	int e = NewEventfd();
	ASSERT_GE(e, 0);
	ASSERT_EQ(ErrOf(SetEventfds(fd_, VFIO_PCI_MSIX_IRQ_INDEX, 0, {e})), 0);
	EXPECT_EQ(ErrOf(SetEventfds(fd_, VFIO_PCI_INTX_IRQ_INDEX, 0, {e})),
		  EINVAL);
	EXPECT_EQ(ErrOf(IntxAction(fd_, VFIO_IRQ_SET_ACTION_MASK)), EINVAL);
	ASSERT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_NONE |
					VFIO_IRQ_SET_ACTION_TRIGGER,
				VFIO_PCI_MSIX_IRQ_INDEX, 0, 0)),
		  0);

	ASSERT_EQ(ErrOf(SetEventfds(fd_, VFIO_PCI_INTX_IRQ_INDEX, 0, {e})), 0);
	EXPECT_EQ(ErrOf(SetEventfds(fd_, VFIO_PCI_MSIX_IRQ_INDEX, 0, {e})),
		  EINVAL);
	EXPECT_EQ(ErrOf(Loopback(fd_, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1)), EINVAL);
	ASSERT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_NONE |
					VFIO_IRQ_SET_ACTION_TRIGGER,
				VFIO_PCI_INTX_IRQ_INDEX, 0, 0)),
		  0);
	ASSERT_EQ(ErrOf(SetEventfds(fd_, VFIO_PCI_MSIX_IRQ_INDEX, 0, {e})), 0);
	close(e);
}

// Contract: an INTx eventfd is signalled by DATA_NONE and DATA_BOOL{1}
// loopback triggers (not by DATA_BOOL{0}); DATA_NONE|TRIGGER with count 0
// disables INTx, after which loopback, MASK and UNMASK fail with EINVAL.
TEST_F(DeviceIrqTest, IntxEventfdLoopbackAndDisable)
{
	const uint32_t intx = VFIO_PCI_INTX_IRQ_INDEX;
	int e = NewEventfd();
	ASSERT_GE(e, 0);

	/* Nothing is enabled yet. */
	EXPECT_EQ(ErrOf(Loopback(fd_, intx, 0, 1)), EINVAL);
	EXPECT_EQ(ErrOf(IntxAction(fd_, VFIO_IRQ_SET_ACTION_MASK)), EINVAL);
	EXPECT_EQ(ErrOf(IntxAction(fd_, VFIO_IRQ_SET_ACTION_UNMASK)), EINVAL);
	/* Disabling what is not enabled is refused too (count must be 1). */
	EXPECT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_NONE |
					VFIO_IRQ_SET_ACTION_TRIGGER,
				intx, 0, 0)),
		  EINVAL);

	ASSERT_EQ(ErrOf(SetEventfds(fd_, intx, 0, {e})), 0);
	EXPECT_EQ(Drain(e), 0u);

	ASSERT_EQ(ErrOf(Loopback(fd_, intx, 0, 1)), 0);
	EXPECT_EQ(Drain(e), 1u);
	ASSERT_EQ(ErrOf(IntxAction(fd_, VFIO_IRQ_SET_ACTION_UNMASK)), 0);
	EXPECT_EQ(Drain(e), 0u);

	const uint8_t zero = 0, one = 1;
	ASSERT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_BOOL |
					VFIO_IRQ_SET_ACTION_TRIGGER,
				intx, 0, 1, &zero, 1)),
		  0);
	EXPECT_EQ(Drain(e), 0u);
	ASSERT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_BOOL |
					VFIO_IRQ_SET_ACTION_TRIGGER,
				intx, 0, 1, &one, 1)),
		  0);
	EXPECT_EQ(Drain(e), 1u);
	ASSERT_EQ(ErrOf(IntxAction(fd_, VFIO_IRQ_SET_ACTION_UNMASK)), 0);

	ASSERT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_NONE |
					VFIO_IRQ_SET_ACTION_TRIGGER,
				intx, 0, 0)),
		  0);
	EXPECT_EQ(ErrOf(Loopback(fd_, intx, 0, 1)), EINVAL);
	EXPECT_EQ(ErrOf(IntxAction(fd_, VFIO_IRQ_SET_ACTION_MASK)), EINVAL);
	EXPECT_EQ(ErrOf(IntxAction(fd_, VFIO_IRQ_SET_ACTION_UNMASK)), EINVAL);
	EXPECT_EQ(Drain(e), 0u);
	close(e);
}

// Contract: INTx MASK/UNMASK need INTx enabled, start 0 and count 1 (else
// EINVAL); MASK through an eventfd is ENOTTY; MASK then UNMASK with nothing
// pending signals nothing.
TEST_F(DeviceIrqTest, IntxMaskUnmaskArguments)
{
	const uint32_t intx = VFIO_PCI_INTX_IRQ_INDEX;
	int e = NewEventfd();
	ASSERT_GE(e, 0);
	ASSERT_EQ(ErrOf(SetEventfds(fd_, intx, 0, {e})), 0);

	for (uint32_t action :
	     {(uint32_t)VFIO_IRQ_SET_ACTION_MASK,
	      (uint32_t)VFIO_IRQ_SET_ACTION_UNMASK}) {
		EXPECT_EQ(ErrOf(SetIrqs(fd_, VFIO_IRQ_SET_DATA_NONE | action,
					intx, 0, 0)),
			  EINVAL)
			<< "action " << action;
		EXPECT_EQ(ErrOf(SetIrqs(fd_, VFIO_IRQ_SET_DATA_NONE | action,
					intx, 1, 0)),
			  EINVAL)
			<< "action " << action;
	}
	const int32_t minus1 = -1;
	EXPECT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_EVENTFD |
					VFIO_IRQ_SET_ACTION_MASK,
				intx, 0, 1, &minus1, sizeof(minus1))),
		  ENOTTY);

	const uint8_t zero = 0, one = 1;
	EXPECT_EQ(ErrOf(IntxAction(fd_, VFIO_IRQ_SET_ACTION_MASK)), 0);
	EXPECT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK,
				intx, 0, 1, &one, 1)),
		  0);
	EXPECT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_BOOL |
					VFIO_IRQ_SET_ACTION_UNMASK,
				intx, 0, 1, &zero, 1)),
		  0);
	EXPECT_EQ(ErrOf(IntxAction(fd_, VFIO_IRQ_SET_ACTION_UNMASK)), 0);
	EXPECT_EQ(ErrOf(IntxAction(fd_, VFIO_IRQ_SET_ACTION_UNMASK)), 0);
	EXPECT_EQ(Drain(e), 0u);
	close(e);
}

// Contract: an INTx loopback trigger signals the eventfd even while INTx is
// masked, and a second loopback is delivered without an UNMASK in between
// (kernel vfio_pci_set_intx_trigger -> vfio_send_intx_eventfd checks only
// is_intx and virq_disabled; masking/automasking apply to the hardware IRQ
// handler, not to loopback).
TEST_F(DeviceIrqTest, IntxLoopbackIgnoresMask)
{
	const uint32_t intx = VFIO_PCI_INTX_IRQ_INDEX;
	int e = NewEventfd();
	ASSERT_GE(e, 0);
	ASSERT_EQ(ErrOf(SetEventfds(fd_, intx, 0, {e})), 0);

	ASSERT_EQ(ErrOf(IntxAction(fd_, VFIO_IRQ_SET_ACTION_MASK)), 0);
	ASSERT_EQ(ErrOf(Loopback(fd_, intx, 0, 1)), 0);
	EXPECT_EQ(Drain(e), 1u);
	ASSERT_EQ(ErrOf(IntxAction(fd_, VFIO_IRQ_SET_ACTION_UNMASK)), 0);
	EXPECT_EQ(Drain(e), 0u);

	ASSERT_EQ(ErrOf(Loopback(fd_, intx, 0, 1)), 0);
	ASSERT_EQ(ErrOf(Loopback(fd_, intx, 0, 1)), 0);
	EXPECT_EQ(Drain(e), 2u);
	close(e);
}

// Contract: an INTx trigger fd that is not an eventfd fails with EINVAL, a
// closed fd number with EBADF, and INTx stays disabled; fd -1 enables INTx
// with no eventfd, and a later eventfd replaces it.
TEST_F(DeviceIrqTest, IntxBadAndEmptyEventfd)
{
	const uint32_t intx = VFIO_PCI_INTX_IRQ_INDEX;
	int pipefd[2];
	ASSERT_EQ(pipe2(pipefd, O_CLOEXEC), 0);
	EXPECT_EQ(ErrOf(SetEventfds(fd_, intx, 0, {pipefd[0]})), EINVAL);
	int closed = pipefd[1];
	close(pipefd[1]);
	EXPECT_EQ(ErrOf(SetEventfds(fd_, intx, 0, {closed})), EBADF);
	close(pipefd[0]);
	EXPECT_EQ(ErrOf(Loopback(fd_, intx, 0, 1)), EINVAL);

	ASSERT_EQ(ErrOf(SetEventfds(fd_, intx, 0, {-1})), 0);
	/* Enabled without an eventfd: loopback is accepted, goes nowhere. */
	EXPECT_EQ(ErrOf(Loopback(fd_, intx, 0, 1)), 0);
	EXPECT_EQ(ErrOf(IntxAction(fd_, VFIO_IRQ_SET_ACTION_UNMASK)), 0);

	int e = NewEventfd();
	ASSERT_GE(e, 0);
	ASSERT_EQ(ErrOf(SetEventfds(fd_, intx, 0, {e})), 0);
	ASSERT_EQ(ErrOf(Loopback(fd_, intx, 0, 1)), 0);
	EXPECT_EQ(Drain(e), 1u);
	close(e);
}

// Contract: an INTx trigger fd of -2 (any negative fd) enables INTx without
// an eventfd and succeeds (kernel: "if (fd >= 0) trigger = ...", no EINVAL).
TEST_F(DeviceIrqTest, IntxNegativeFdEnablesWithoutEventfd)
{
	const uint32_t intx = VFIO_PCI_INTX_IRQ_INDEX;
	EXPECT_EQ(ErrOf(SetEventfds(fd_, intx, 0, {-2})), 0);
	EXPECT_EQ(ErrOf(SetIrqs(fd_,
				VFIO_IRQ_SET_DATA_NONE |
					VFIO_IRQ_SET_ACTION_TRIGGER,
				intx, 0, 0)),
		  0);
}

// Contract: REQ and ERR eventfds are signalled by DATA_NONE (count 1) and
// DATA_BOOL{1} loopbacks; fd -1 or DATA_NONE with count 0 unassigns; a
// pipe fd is EINVAL, a closed fd EBADF; DATA_BOOL/EVENTFD with count 0 is
// EINVAL.
TEST_F(DeviceIrqTest, ReqAndErrEventfdLoopback)
{
	for (uint32_t index : {(uint32_t)VFIO_PCI_REQ_IRQ_INDEX,
			       (uint32_t)VFIO_PCI_ERR_IRQ_INDEX}) {
		SCOPED_TRACE("index " + std::to_string(index));
		int e = NewEventfd();
		ASSERT_GE(e, 0);
		ASSERT_EQ(ErrOf(SetEventfds(fd_, index, 0, {e})), 0);

		ASSERT_EQ(ErrOf(Loopback(fd_, index, 0, 1)), 0);
		EXPECT_EQ(Drain(e), 1u);
		ASSERT_EQ(ErrOf(Loopback(fd_, index, 0, 1)), 0);
		ASSERT_EQ(ErrOf(Loopback(fd_, index, 0, 1)), 0);
		EXPECT_EQ(Drain(e), 2u);

		const uint8_t zero = 0, one = 1;
		ASSERT_EQ(ErrOf(SetIrqs(fd_,
					VFIO_IRQ_SET_DATA_BOOL |
						VFIO_IRQ_SET_ACTION_TRIGGER,
					index, 0, 1, &zero, 1)),
			  0);
		EXPECT_EQ(Drain(e), 0u);
		ASSERT_EQ(ErrOf(SetIrqs(fd_,
					VFIO_IRQ_SET_DATA_BOOL |
						VFIO_IRQ_SET_ACTION_TRIGGER,
					index, 0, 1, &one, 1)),
			  0);
		EXPECT_EQ(Drain(e), 1u);

		/* count 0 with BOOL or EVENTFD data is refused. */
		EXPECT_EQ(ErrOf(SetIrqs(fd_,
					VFIO_IRQ_SET_DATA_BOOL |
						VFIO_IRQ_SET_ACTION_TRIGGER,
					index, 0, 0)),
			  EINVAL);
		EXPECT_EQ(ErrOf(SetIrqs(fd_,
					VFIO_IRQ_SET_DATA_EVENTFD |
						VFIO_IRQ_SET_ACTION_TRIGGER,
					index, 0, 0)),
			  EINVAL);

		/* Bad fds fail and keep the current eventfd. */
		int pipefd[2];
		ASSERT_EQ(pipe2(pipefd, O_CLOEXEC), 0);
		EXPECT_EQ(ErrOf(SetEventfds(fd_, index, 0, {pipefd[0]})),
			  EINVAL);
		int closed = pipefd[1];
		close(pipefd[1]);
		EXPECT_EQ(ErrOf(SetEventfds(fd_, index, 0, {closed})), EBADF);
		close(pipefd[0]);
		ASSERT_EQ(ErrOf(Loopback(fd_, index, 0, 1)), 0);
		EXPECT_EQ(Drain(e), 1u);

		/* fd -1 unassigns: BOOL loopback then signals nothing. */
		ASSERT_EQ(ErrOf(SetEventfds(fd_, index, 0, {-1})), 0);
		ASSERT_EQ(ErrOf(SetIrqs(fd_,
					VFIO_IRQ_SET_DATA_BOOL |
						VFIO_IRQ_SET_ACTION_TRIGGER,
					index, 0, 1, &one, 1)),
			  0);
		EXPECT_EQ(Drain(e), 0u);

		/* DATA_NONE with count 0 unassigns too. */
		ASSERT_EQ(ErrOf(SetEventfds(fd_, index, 0, {e})), 0);
		ASSERT_EQ(ErrOf(SetIrqs(fd_,
					VFIO_IRQ_SET_DATA_NONE |
						VFIO_IRQ_SET_ACTION_TRIGGER,
					index, 0, 0)),
			  0);
		ASSERT_EQ(ErrOf(SetIrqs(fd_,
					VFIO_IRQ_SET_DATA_BOOL |
						VFIO_IRQ_SET_ACTION_TRIGGER,
					index, 0, 1, &one, 1)),
			  0);
		EXPECT_EQ(Drain(e), 0u);
		close(e);
	}
}

// Contract: a REQ/ERR DATA_NONE loopback with no eventfd assigned fails with
// EINVAL (kernel vfio_pci_set_ctx_trigger_single falls through to
// "return -EINVAL" when *ctx is NULL).
TEST_F(DeviceIrqTest, ReqErrLoopbackWithoutEventfdIsEinval)
{
	for (uint32_t index : {(uint32_t)VFIO_PCI_REQ_IRQ_INDEX,
			       (uint32_t)VFIO_PCI_ERR_IRQ_INDEX}) {
		EXPECT_EQ(ErrOf(Loopback(fd_, index, 0, 1)), EINVAL)
			<< "index " << index;
		EXPECT_EQ(ErrOf(SetIrqs(fd_,
					VFIO_IRQ_SET_DATA_NONE |
						VFIO_IRQ_SET_ACTION_TRIGGER,
					index, 0, 0)),
			  EINVAL)
			<< "index " << index;
	}
}

// Contract: a REQ/ERR trigger fd of -2 is ignored: the call succeeds and the
// current eventfd stays (kernel: only fd == -1 and fd >= 0 act).
TEST_F(DeviceIrqTest, ReqErrNegativeFdIsIgnored)
{
	for (uint32_t index : {(uint32_t)VFIO_PCI_REQ_IRQ_INDEX,
			       (uint32_t)VFIO_PCI_ERR_IRQ_INDEX}) {
		int e = NewEventfd();
		ASSERT_GE(e, 0);
		ASSERT_EQ(ErrOf(SetEventfds(fd_, index, 0, {e})), 0);
		EXPECT_EQ(ErrOf(SetEventfds(fd_, index, 0, {-2})), 0);
		ASSERT_EQ(ErrOf(Loopback(fd_, index, 0, 1)), 0);
		EXPECT_EQ(Drain(e), 1u);
		close(e);
	}
}

// Contract: closing the device drops every interrupt eventfd reference the
// device took; a reopened device starts with interrupts disabled.
TEST_F(DeviceIrqTest, CloseDropsEventfds)
{
	int fds_now = count_open_fds();
	std::vector<int32_t> efd;
	for (uint32_t i = 0; i < kMsixCount; i++) {
		efd.push_back(NewEventfd());
		ASSERT_GE(efd.back(), 0);
	}
	int req = NewEventfd();
	ASSERT_GE(req, 0);
	ASSERT_EQ(ErrOf(SetEventfds(fd_, VFIO_PCI_MSIX_IRQ_INDEX, 0, efd)), 0);
	ASSERT_EQ(ErrOf(SetEventfds(fd_, VFIO_PCI_REQ_IRQ_INDEX, 0, {req})), 0);
	/* The device holds one duplicate per eventfd. */
	EXPECT_EQ(count_open_fds(), fds_now + 2 * (int)(kMsixCount + 1));

	ASSERT_EQ(uvfio_close(fd_), 0);
	fd_ = -1;
	for (int e : efd)
		close(e);
	close(req);
	EXPECT_EQ(count_open_fds(), fds_now - 1);

	fd_ = uvfio_open(dev_->name());
	ASSERT_GE(fd_, 0);
	EXPECT_EQ(ErrOf(Loopback(fd_, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1)), EINVAL);
}

/* ======================= VFIO_DEVICE_RESET ======================= */

// Contract: RESET succeeds; afterwards BAR0 registers read zero, BAR2 memory
// keeps its content, and config space reads as before the user touched it
// but for what a reset saves and restores (the command register) or the
// core emulates (the interrupt line): device-specific config (the vendor
// capability's data) is back at its reset value.
TEST_F(DeviceResetTest, ResetRestoresRegistersKeepsMemory)
{
	off_t bar0 = RegionOffset(VFIO_PCI_BAR0_REGION_INDEX);
	off_t bar2 = RegionOffset(VFIO_PCI_BAR2_REGION_INDEX);
	off_t cfg = RegionOffset(VFIO_PCI_CONFIG_REGION_INDEX);

	uint8_t cfg_initial[0x100];
	ASSERT_EQ(uvfio_pread(fd_, cfg_initial, sizeof(cfg_initial), cfg),
		  (ssize_t)sizeof(cfg_initial));
	/* The header a function resets to: vendor 0x1b36, device 0x0001. */
	EXPECT_EQ(cfg_initial[0], 0x36);
	EXPECT_EQ(cfg_initial[1], 0x1b);

	uint8_t pat[16];
	for (int i = 0; i < 16; i++)
		pat[i] = static_cast<uint8_t>(0xa0 + i);
	ASSERT_EQ(uvfio_pwrite(fd_, pat, 16, bar0 + 0x100), 16);
	ASSERT_EQ(uvfio_pwrite(fd_, pat, 16, bar0 + kBar0Size - 16), 16);
	ASSERT_EQ(uvfio_pwrite(fd_, pat, 16, bar2 + 0x2000), 16);
	/* The vendor-specific capability (ID 0x09): its data is the device's. */
	unsigned vndr = cfg_initial[0x34];
	while (vndr && cfg_initial[vndr] != 0x09)
		vndr = cfg_initial[vndr + 1];
	ASSERT_NE(vndr, 0u);
	ASSERT_EQ(uvfio_pwrite(fd_, pat, 8, cfg + vndr + 4), 8);
	const uint8_t cmd[2] = {0x06, 0x04};	/* memory, master, INTx off */
	ASSERT_EQ(uvfio_pwrite(fd_, cmd, 2, cfg + 0x04), 2);
	ASSERT_EQ(uvfio_pwrite(fd_, pat, 1, cfg + 0x3c), 1);
	cfg_initial[0x04] = cmd[0];
	cfg_initial[0x05] = cmd[1];
	cfg_initial[0x3c] = pat[0];

	ASSERT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_RESET, nullptr)), 0);

	uint8_t in[16];
	const uint8_t zero[16] = {};
	ASSERT_EQ(uvfio_pread(fd_, in, 16, bar0 + 0x100), 16);
	EXPECT_EQ(std::memcmp(in, zero, 16), 0);
	ASSERT_EQ(uvfio_pread(fd_, in, 16, bar0 + kBar0Size - 16), 16);
	EXPECT_EQ(std::memcmp(in, zero, 16), 0);

	ASSERT_EQ(uvfio_pread(fd_, in, 16, bar2 + 0x2000), 16);
	EXPECT_EQ(std::memcmp(in, pat, 16), 0);

	uint8_t cfg_after[0x100];
	ASSERT_EQ(uvfio_pread(fd_, cfg_after, sizeof(cfg_after), cfg),
		  (ssize_t)sizeof(cfg_after));
	EXPECT_EQ(std::memcmp(cfg_after, cfg_initial, sizeof(cfg_after)), 0);

	/* A second reset is just as good; the fd keeps working. */
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_RESET, nullptr)), 0);
	struct vfio_device_info info = {};
	info.argsz = sizeof(info);
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_GET_INFO, &info)), 0);
	EXPECT_TRUE(info.flags & VFIO_DEVICE_FLAGS_RESET);
}

// Contract: RESET keeps a shared BAR2 mapping valid and coherent.
TEST_F(DeviceResetTest, ResetKeepsBar2Mapping)
{
	off_t bar2 = RegionOffset(VFIO_PCI_BAR2_REGION_INDEX);
	void *p = uvfio_mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED,
			     fd_, bar2);
	ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
	static_cast<volatile uint8_t *>(p)[5] = 0x5a;
	ASSERT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_RESET, nullptr)), 0);
	uint8_t v = static_cast<volatile uint8_t *>(p)[5];
	EXPECT_EQ(v, 0x5a);
	uint8_t b = 0;
	ASSERT_EQ(uvfio_pread(fd_, &b, 1, bar2 + 5), 1);
	EXPECT_EQ(b, 0x5a);
	EXPECT_EQ(munmap(p, kPage), 0);
}

/* ======================= VFIO_DEVICE_FEATURE ======================= */

// Contract: FEATURE with argsz below 8 fails with EINVAL; NULL or a wild
// pointer fails with EFAULT.
TEST_F(DeviceFeatureTest, HeaderValidation)
{
	for (uint32_t argsz : {0u, 4u, 7u}) {
		FeatureBuf f(VFIO_DEVICE_FEATURE_GET |
			     VFIO_DEVICE_FEATURE_MIGRATION);
		f.hdr()->argsz = argsz;
		EXPECT_EQ(ErrOf(f.ioctl(fd_)), EINVAL) << "argsz " << argsz;
	}
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_FEATURE, nullptr)),
		  EFAULT);
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_FEATURE,
				    reinterpret_cast<void *>(0x10))),
		  EFAULT);
}

// Contract: FEATURE with unknown flag bits fails with EINVAL, before the
// feature index is looked at.
TEST_F(DeviceFeatureTest, UnknownFlagsAreEinval)
{
	for (uint32_t bit : {1u << 19, 1u << 20, 1u << 31}) {
		FeatureBuf f(VFIO_DEVICE_FEATURE_PROBE |
				     VFIO_DEVICE_FEATURE_GET |
				     VFIO_DEVICE_FEATURE_MIGRATION | bit,
			     sizeof(struct vfio_device_feature_migration));
		EXPECT_EQ(ErrOf(f.ioctl(fd_)), EINVAL) << "bit " << bit;
		/* Also with a feature index nobody knows. */
		FeatureBuf g(VFIO_DEVICE_FEATURE_GET | 100 | bit, 8);
		EXPECT_EQ(ErrOf(g.ioctl(fd_)), EINVAL) << "bit " << bit;
	}
}

// Contract: GET|SET without PROBE fails with EINVAL; PROBE|GET|SET on
// MIG_DEVICE_STATE succeeds; PROBE|GET on MIGRATION succeeds, PROBE|SET on
// MIGRATION fails with EINVAL.
TEST_F(DeviceFeatureTest, ProbeAndGetSetCombination)
{
	const uint32_t get = VFIO_DEVICE_FEATURE_GET;
	const uint32_t set = VFIO_DEVICE_FEATURE_SET;
	const uint32_t probe = VFIO_DEVICE_FEATURE_PROBE;
	{
		FeatureBuf f(get | set | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
			     sizeof(struct vfio_device_feature_mig_state));
		EXPECT_EQ(ErrOf(f.ioctl(fd_)), EINVAL);
	}
	{
		/* Even on an unknown feature the combination is refused. */
		FeatureBuf f(get | set | 100, 8);
		EXPECT_EQ(ErrOf(f.ioctl(fd_)), EINVAL);
	}
	{
		FeatureBuf f(probe | get | set |
			     VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
		EXPECT_EQ(ErrOf(f.ioctl(fd_)), 0);
	}
	{
		FeatureBuf f(probe | get | VFIO_DEVICE_FEATURE_MIGRATION);
		EXPECT_EQ(ErrOf(f.ioctl(fd_)), 0);
	}
	{
		FeatureBuf f(probe | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE);
		EXPECT_EQ(ErrOf(f.ioctl(fd_)), 0);
	}
	{
		FeatureBuf f(probe | set | VFIO_DEVICE_FEATURE_MIGRATION);
		EXPECT_EQ(ErrOf(f.ioctl(fd_)), EINVAL);
	}
	{
		FeatureBuf f(probe | set | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE);
		EXPECT_EQ(ErrOf(f.ioctl(fd_)), EINVAL);
	}
	{
		/* Neither GET nor SET nor PROBE. */
		FeatureBuf f(VFIO_DEVICE_FEATURE_MIGRATION,
			     sizeof(struct vfio_device_feature_migration));
		EXPECT_EQ(ErrOf(f.ioctl(fd_)), EINVAL);
	}
}

// Contract: MIGRATION GET returns the device's migration flags
// (STOP_COPY|P2P|PRE_COPY = 7); SET fails with EINVAL; GET with argsz too
// small for the payload fails with EINVAL.
TEST_F(DeviceFeatureTest, MigrationGet)
{
	{
		FeatureBuf f(VFIO_DEVICE_FEATURE_GET |
				     VFIO_DEVICE_FEATURE_MIGRATION,
			     sizeof(struct vfio_device_feature_migration));
		f.payload<struct vfio_device_feature_migration>()->flags =
			0xdeadbeef;
		ASSERT_EQ(ErrOf(f.ioctl(fd_)), 0);
		auto *mig = f.payload<struct vfio_device_feature_migration>();
		EXPECT_EQ(mig->flags, 7u);
		EXPECT_EQ(mig->flags, (uint64_t)(VFIO_MIGRATION_STOP_COPY |
						 VFIO_MIGRATION_P2P |
						 VFIO_MIGRATION_PRE_COPY));
	}
	{
		FeatureBuf f(VFIO_DEVICE_FEATURE_SET |
				     VFIO_DEVICE_FEATURE_MIGRATION,
			     sizeof(struct vfio_device_feature_migration));
		EXPECT_EQ(ErrOf(f.ioctl(fd_)), EINVAL);
	}
	for (size_t payload : {0, 4, 7}) {
		FeatureBuf f(VFIO_DEVICE_FEATURE_GET |
				     VFIO_DEVICE_FEATURE_MIGRATION,
			     8);
		f.hdr()->argsz = static_cast<uint32_t>(
			sizeof(struct vfio_device_feature) + payload);
		f.payload<uint64_t>()[0] = 0x1234;
		EXPECT_EQ(ErrOf(f.ioctl(fd_)), EINVAL) << "payload " << payload;
		EXPECT_EQ(f.payload<uint64_t>()[0], 0x1234u);
	}
	{
		/* A payload pointer that faults: EFAULT. */
		long page = sysconf(_SC_PAGESIZE);
		void *map = mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(map, MAP_FAILED);
		ASSERT_EQ(munmap(static_cast<char *>(map) + page, page), 0);
		auto *hdr = reinterpret_cast<struct vfio_device_feature *>(
			static_cast<char *>(map) + page -
			sizeof(struct vfio_device_feature));
		hdr->argsz = sizeof(*hdr) +
			     sizeof(struct vfio_device_feature_migration);
		hdr->flags = VFIO_DEVICE_FEATURE_GET |
			     VFIO_DEVICE_FEATURE_MIGRATION;
		EXPECT_EQ(ErrOf(uvfio_ioctl(fd_, VFIO_DEVICE_FEATURE, hdr)),
			  EFAULT);
		EXPECT_EQ(munmap(map, page), 0);
	}
}

// Contract: MIG_DEVICE_STATE GET returns RUNNING (2) with data_fd -1 on a
// freshly opened device; GET with argsz too small fails with EINVAL.
TEST_F(DeviceFeatureTest, MigDeviceStateGet)
{
	{
		FeatureBuf f(VFIO_DEVICE_FEATURE_GET |
				     VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
			     sizeof(struct vfio_device_feature_mig_state));
		auto *st = f.payload<struct vfio_device_feature_mig_state>();
		st->device_state = 0x77;
		st->data_fd = 1234;
		ASSERT_EQ(ErrOf(f.ioctl(fd_)), 0);
		EXPECT_EQ(st->device_state, (uint32_t)VFIO_DEVICE_STATE_RUNNING);
		EXPECT_EQ(st->device_state, 2u);
		EXPECT_EQ(st->data_fd, -1);
	}
	for (size_t payload : {0, 4, 7}) {
		FeatureBuf f(VFIO_DEVICE_FEATURE_GET |
				     VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
			     8);
		f.hdr()->argsz = static_cast<uint32_t>(
			sizeof(struct vfio_device_feature) + payload);
		EXPECT_EQ(ErrOf(f.ioctl(fd_)), EINVAL) << "payload " << payload;
	}
}

// Contract: MIG_DATA_SIZE GET returns the driver's estimate (testdev: its
// whole stream, so 64K more with state=128K than with the default 64K);
// argsz too small fails with EINVAL.
TEST_F(DeviceFeatureTest, MigDataSizeGet)
{
	unsigned long long base = 0;
	{
		FeatureBuf f(VFIO_DEVICE_FEATURE_GET |
				     VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
			     sizeof(struct vfio_device_feature_mig_data_size));
		ASSERT_EQ(ErrOf(f.ioctl(fd_)), 0);
		base = f.payload<struct vfio_device_feature_mig_data_size>()
			       ->stop_copy_length;
		/* At least BAR2 (1M), BAR0 and the internal state. */
		EXPECT_GT(base, (1u << 20) + 4096 + 65536);
	}
	{
		FeatureBuf f(VFIO_DEVICE_FEATURE_GET |
				     VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
			     8);
		f.hdr()->argsz = sizeof(struct vfio_device_feature) + 4;
		EXPECT_EQ(ErrOf(f.ioctl(fd_)), EINVAL);
	}

	SimDevice other("mig=stop_copy,state=128K");
	ASSERT_TRUE(other.added());
	int fd2 = uvfio_open(other.name());
	ASSERT_GE(fd2, 0);
	{
		FeatureBuf f(VFIO_DEVICE_FEATURE_GET |
				     VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
			     sizeof(struct vfio_device_feature_mig_data_size));
		EXPECT_EQ(ErrOf(f.ioctl(fd2)), 0);
		EXPECT_EQ(f.payload<struct vfio_device_feature_mig_data_size>()
				  ->stop_copy_length,
			  base + (64u << 10));
	}
	{
		FeatureBuf f(VFIO_DEVICE_FEATURE_GET |
				     VFIO_DEVICE_FEATURE_MIGRATION,
			     sizeof(struct vfio_device_feature_migration));
		EXPECT_EQ(ErrOf(f.ioctl(fd2)), 0);
		EXPECT_EQ(f.payload<struct vfio_device_feature_migration>()
				  ->flags,
			  (uint64_t)VFIO_MIGRATION_STOP_COPY);
	}
	EXPECT_EQ(uvfio_close(fd2), 0);
}

// Contract: on a device without migration support, MIGRATION,
// MIG_DEVICE_STATE and MIG_DATA_SIZE fail with ENOTTY (GET and PROBE).
TEST_F(DeviceFeatureTest, MigrationFeaturesWithoutMigOpsAreEnotty)
{
	SimDevice plain("");
	ASSERT_TRUE(plain.added());
	int fd2 = uvfio_open(plain.name());
	ASSERT_GE(fd2, 0);
	for (uint32_t feature : {(uint32_t)VFIO_DEVICE_FEATURE_MIGRATION,
				 (uint32_t)VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
				 (uint32_t)VFIO_DEVICE_FEATURE_MIG_DATA_SIZE}) {
		FeatureBuf get(VFIO_DEVICE_FEATURE_GET | feature, 16);
		EXPECT_EQ(ErrOf(get.ioctl(fd2)), ENOTTY) << "feature " << feature;
		FeatureBuf probe(VFIO_DEVICE_FEATURE_PROBE |
				 VFIO_DEVICE_FEATURE_GET | feature);
		EXPECT_EQ(ErrOf(probe.ioctl(fd2)), ENOTTY)
			<< "feature " << feature;
		FeatureBuf set(VFIO_DEVICE_FEATURE_SET | feature, 16);
		EXPECT_EQ(ErrOf(set.ioctl(fd2)), ENOTTY) << "feature " << feature;
	}
	/* The plain device still answers the PCI ioctls. */
	struct vfio_device_info info = {};
	info.argsz = sizeof(info);
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd2, VFIO_DEVICE_GET_INFO, &info)), 0);
	EXPECT_EQ(uvfio_close(fd2), 0);
}

// Contract: DMA_LOGGING_START/STOP/REPORT on a device without log_ops fail
// with ENOTTY.
TEST_F(DeviceFeatureTest, DmaLoggingWithoutLogOpsIsEnotty)
{
	struct {
		uint32_t feature;
		uint32_t op;
	} cases[] = {
		{VFIO_DEVICE_FEATURE_DMA_LOGGING_START, VFIO_DEVICE_FEATURE_SET},
		{VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, VFIO_DEVICE_FEATURE_SET},
		{VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, VFIO_DEVICE_FEATURE_GET},
	};
	for (const auto &c : cases) {
		FeatureBuf f(c.op | c.feature, 64);
		EXPECT_EQ(ErrOf(f.ioctl(fd_)), ENOTTY) << "feature " << c.feature;
		FeatureBuf p(VFIO_DEVICE_FEATURE_PROBE | c.op | c.feature);
		EXPECT_EQ(ErrOf(p.ioctl(fd_)), ENOTTY) << "feature " << c.feature;
	}
}

// Contract: a feature index nobody implements fails with ENOTTY.
TEST_F(DeviceFeatureTest, UnknownFeatureIsEnotty)
{
	for (uint32_t feature : {0u, 100u, 0xffffu}) {
		FeatureBuf f(VFIO_DEVICE_FEATURE_GET | feature, 16);
		EXPECT_EQ(ErrOf(f.ioctl(fd_)), ENOTTY) << "feature " << feature;
		FeatureBuf p(VFIO_DEVICE_FEATURE_PROBE |
			     VFIO_DEVICE_FEATURE_SET | feature);
		EXPECT_EQ(ErrOf(p.ioctl(fd_)), ENOTTY) << "feature " << feature;
	}
}

/* ======================= fd hygiene ======================= */

// Contract: after a session of ioctls, eventfds, region access and mmaps,
// closing every fd and removing the device returns the process to the fd
// count it had before the device was added.
TEST_F(DeviceIoctlTest, FdHygieneAfterFullSession)
{
	std::vector<int32_t> efd;
	for (uint32_t i = 0; i < kMsixCount; i++) {
		efd.push_back(NewEventfd());
		ASSERT_GE(efd.back(), 0);
	}
	int req = NewEventfd(), err = NewEventfd();
	ASSERT_GE(req, 0);
	ASSERT_GE(err, 0);
	ASSERT_EQ(ErrOf(SetEventfds(fd_, VFIO_PCI_MSIX_IRQ_INDEX, 0, efd)), 0);
	ASSERT_EQ(ErrOf(SetEventfds(fd_, VFIO_PCI_REQ_IRQ_INDEX, 0, {req})), 0);
	ASSERT_EQ(ErrOf(SetEventfds(fd_, VFIO_PCI_ERR_IRQ_INDEX, 0, {err})), 0);
	ASSERT_EQ(ErrOf(Loopback(fd_, VFIO_PCI_MSIX_IRQ_INDEX, 0, kMsixCount)),
		  0);

	/* A second fd on the same device, and failing calls of all kinds. */
	int fd2 = uvfio_open(dev_->name());
	ASSERT_GE(fd2, 0);
	struct vfio_device_info info = {};
	info.argsz = sizeof(info);
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd2, VFIO_DEVICE_GET_INFO, &info)), 0);
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd2, VFIO_DEVICE_GET_INFO, nullptr)),
		  EFAULT);
	int pipefd[2];
	ASSERT_EQ(pipe2(pipefd, O_CLOEXEC), 0);
	EXPECT_EQ(ErrOf(SetEventfds(fd2, VFIO_PCI_INTX_IRQ_INDEX, 0,
				    {pipefd[0]})),
		  EINVAL);
	close(pipefd[0]);
	close(pipefd[1]);

	off_t bar2 = RegionOffset(VFIO_PCI_BAR2_REGION_INDEX);
	void *p = uvfio_mmap(nullptr, kBar2Size, PROT_READ | PROT_WRITE,
			     MAP_SHARED, fd2, bar2);
	ASSERT_NE(p, MAP_FAILED);
	errno = 0;
	EXPECT_EQ(uvfio_mmap(nullptr, kPage, PROT_READ, MAP_SHARED, fd2,
			     RegionOffset(VFIO_PCI_BAR0_REGION_INDEX)),
		  MAP_FAILED);
	uint8_t buf[64] = {1};
	EXPECT_EQ(uvfio_pwrite(fd2, buf, sizeof(buf), bar2), 64);
	EXPECT_EQ(uvfio_pread(fd_, buf, sizeof(buf), bar2), 64);
	EXPECT_EQ(ErrOf(uvfio_ioctl(fd2, VFIO_DEVICE_RESET, nullptr)), 0);
	FeatureBuf f(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
		     sizeof(struct vfio_device_feature_mig_data_size));
	EXPECT_EQ(ErrOf(f.ioctl(fd2)), 0);

	EXPECT_EQ(munmap(p, kBar2Size), 0);
	EXPECT_EQ(uvfio_close(fd2), 0);
	for (int e : efd)
		close(e);
	close(req);
	close(err);
	CloseAndRemove();
	EXPECT_EQ(count_open_fds(), fds_before_);
}

} // namespace
