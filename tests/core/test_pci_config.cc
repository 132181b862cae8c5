// SPDX-License-Identifier: GPL-2.0-only
/*
 * The simulated function's PCI config space as the user sees it through the
 * config region: read-only IDs, the command register, W1C status bits, BAR
 * sizing, the capability list, memory-space enable gating BAR access, and
 * FLR through the PCI Express Device Control register, and what vfio-pci's
 * config virtualization lets the user change. Driven through the public
 * syscall surface only.
 */
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <uvfio/uvfio.h>

#include "test_util.h"

using namespace uvfio_test;

namespace {

/* PCI register offsets and bits (PCI spec / pci_regs.h values). */
constexpr uint32_t kVendorId = 0x00;
constexpr uint32_t kCommand = 0x04;
constexpr uint32_t kStatus = 0x06;
constexpr uint32_t kClassRev = 0x08;
constexpr uint32_t kBar0 = 0x10;
constexpr uint32_t kBar1 = 0x14;
constexpr uint32_t kBar2 = 0x18;
constexpr uint32_t kBar3 = 0x1c;
constexpr uint32_t kCapPtr = 0x34;
constexpr uint16_t kCmdMemory = 0x0002;
constexpr uint16_t kCmdMaster = 0x0004;
constexpr uint16_t kCmdIntxDisable = 0x0400;
constexpr uint16_t kStatusCapList = 0x0010;
constexpr uint16_t kStatusErrBits = 0xf900;
constexpr uint8_t kCapPm = 0x01;
constexpr uint8_t kCapVndr = 0x09;
constexpr uint8_t kCapExp = 0x10;
constexpr uint8_t kCapMsix = 0x11;
constexpr uint32_t kExpDevCap = 0x04;
constexpr uint32_t kExpDevCtl = 0x08;
constexpr uint32_t kDevCapFlr = 0x10000000;
constexpr uint16_t kDevCtlFlr = 0x8000;

off_t RegionOffset(uint32_t index)
{
	return static_cast<off_t>(static_cast<uint64_t>(index) << 40);
}

int ErrOf(long ret)
{
	return ret < 0 ? errno : 0;
}

/* One testdev, added and opened; config space accessors on its fd. */
class CfgDevice
{
public:
	explicit CfgDevice(const std::string &spec = "") : dev_(spec)
	{
		if (dev_.added())
			fd_ = uvfio_open(dev_.name());
	}
	~CfgDevice()
	{
		if (fd_ >= 0)
			uvfio_close(fd_);
	}
	CfgDevice(const CfgDevice &) = delete;
	CfgDevice &operator=(const CfgDevice &) = delete;

	bool ok() const { return fd_ >= 0; }
	int fd() const { return fd_; }

	template <typename T> T rd(uint32_t off)
	{
		T v{};
		EXPECT_EQ(uvfio_pread(fd_, &v, sizeof(v), cfg() + off),
			  (ssize_t)sizeof(v))
			<< "config read at " << off << ": " << std::strerror(errno);
		return v;
	}
	template <typename T> void wr(uint32_t off, T v)
	{
		EXPECT_EQ(uvfio_pwrite(fd_, &v, sizeof(v), cfg() + off),
			  (ssize_t)sizeof(v))
			<< "config write at " << off << ": " << std::strerror(errno);
	}
	uint8_t rd8(uint32_t off) { return rd<uint8_t>(off); }
	uint16_t rd16(uint32_t off) { return rd<uint16_t>(off); }
	uint32_t rd32(uint32_t off) { return rd<uint32_t>(off); }

	/* Offset of the first capability with this ID, or 0. */
	uint8_t find_cap(uint8_t id)
	{
		uint8_t pos = rd8(kCapPtr) & ~3;
		for (int n = 0; pos && n < 48; n++) {
			if (rd8(pos) == id)
				return pos;
			pos = rd8(pos + 1) & ~3;
		}
		return 0;
	}

	/* MIG_DEVICE_STATE: SET returns 0 or errno; GET returns the state. */
	int set_state(uint32_t state)
	{
		FeatureArg<struct vfio_device_feature_mig_state> f(
			VFIO_DEVICE_FEATURE_SET |
			VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
		f.d()->device_state = state;
		return f.ioctl(fd_);
	}
	uint32_t get_state()
	{
		FeatureArg<struct vfio_device_feature_mig_state> f(
			VFIO_DEVICE_FEATURE_GET |
			VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
		EXPECT_EQ(f.ioctl(fd_), 0);
		return f.d()->device_state;
	}

private:
	static off_t cfg() { return RegionOffset(VFIO_PCI_CONFIG_REGION_INDEX); }

	SimDevice dev_;
	int fd_ = -1;
};

} // namespace

// Contract: vendor/device ID, class/revision, header type and capability
// pointer are read-only: writing all ones leaves them as they were.
TEST(PciConfigTest, IdsAreReadOnly)
{
	CfgDevice d;
	ASSERT_TRUE(d.ok());
	EXPECT_EQ(d.rd32(kVendorId), 0x00011b36u);
	uint32_t class_rev = d.rd32(kClassRev);
	uint8_t hdr = d.rd8(0x0e);
	uint8_t cap = d.rd8(kCapPtr);
	EXPECT_EQ(class_rev >> 8, 0x020000u);
	d.wr<uint32_t>(kVendorId, 0xffffffff);
	d.wr<uint32_t>(kClassRev, 0xffffffff);
	d.wr<uint8_t>(0x0e, 0xff);
	d.wr<uint8_t>(kCapPtr, 0x00);
	EXPECT_EQ(d.rd32(kVendorId), 0x00011b36u);
	EXPECT_EQ(d.rd32(kClassRev), class_rev);
	EXPECT_EQ(d.rd8(0x0e), hdr);
	EXPECT_EQ(d.rd8(kCapPtr), cap);
	/* Bytes no register backs read zero and ignore writes. */
	d.wr<uint32_t>(0x100, 0xffffffff);
	EXPECT_EQ(d.rd32(0x100), 0u);
}

// Contract: command reads memory-enable on after open; its memory, bus-master
// and INTx-disable bits take writes, every other bit stays zero.
TEST(PciConfigTest, CommandRwBits)
{
	CfgDevice d;
	ASSERT_TRUE(d.ok());
	EXPECT_EQ(d.rd16(kCommand), kCmdMemory);
	d.wr<uint16_t>(kCommand, 0xffff);
	EXPECT_EQ(d.rd16(kCommand),
		  kCmdMemory | kCmdMaster | kCmdIntxDisable);
	d.wr<uint16_t>(kCommand, kCmdMaster);
	EXPECT_EQ(d.rd16(kCommand), kCmdMaster);
	d.wr<uint16_t>(kCommand, kCmdMemory);
	EXPECT_EQ(d.rd16(kCommand), kCmdMemory);
}

// Contract: latched status error bits clear when written 1, ignore 0, and
// the read-only capabilities-list bit stays set.
TEST(PciConfigTest, StatusErrorBitsAreW1C)
{
	CfgDevice d("errstat=0xf900");
	ASSERT_TRUE(d.ok());
	EXPECT_EQ(d.rd16(kStatus), kStatusErrBits | kStatusCapList);
	d.wr<uint16_t>(kStatus, 0x0000);
	EXPECT_EQ(d.rd16(kStatus), kStatusErrBits | kStatusCapList);
	d.wr<uint16_t>(kStatus, 0x0100);
	EXPECT_EQ(d.rd16(kStatus), 0xf800 | kStatusCapList);
	d.wr<uint16_t>(kStatus, 0x3000);
	EXPECT_EQ(d.rd16(kStatus), 0xc800 | kStatusCapList);
	d.wr<uint16_t>(kStatus, 0xffff);
	EXPECT_EQ(d.rd16(kStatus), kStatusCapList);
}

// Contract: a 32-bit memory BAR answers all ones with ~(size-1) and its type
// bits; writing the old value back restores it; an absent BAR reads 0.
TEST(PciConfigTest, BarSizing32)
{
	CfgDevice d;
	ASSERT_TRUE(d.ok());
	uint32_t orig = d.rd32(kBar0);
	EXPECT_EQ(orig & 0xf, 0u);	/* memory, 32-bit, not prefetchable */
	d.wr<uint32_t>(kBar0, 0xffffffff);
	EXPECT_EQ(d.rd32(kBar0), ~(4096u - 1));	/* BAR0 is 4 KiB */
	d.wr<uint32_t>(kBar0, 0xfe000000);
	EXPECT_EQ(d.rd32(kBar0), 0xfe000000u);
	d.wr<uint32_t>(kBar0, orig);
	EXPECT_EQ(d.rd32(kBar0), orig);

	d.wr<uint32_t>(kBar1, 0xffffffff);
	EXPECT_EQ(d.rd32(kBar1), 0u);
}

// Contract: a 64-bit prefetchable BAR sizes across two registers: all ones
// reads back ~(size-1) split low/high with type bits 0xc in the low one.
TEST(PciConfigTest, BarSizing64)
{
	for (uint64_t size : {uint64_t(1) << 20, uint64_t(1) << 34}) {
		CfgDevice d("mem=" + std::to_string(size));
		ASSERT_TRUE(d.ok()) << size;
		uint32_t lo = d.rd32(kBar2), hi = d.rd32(kBar3);
		EXPECT_EQ(lo & 0xf, 0xcu);	/* 64-bit, prefetchable */
		d.wr<uint32_t>(kBar2, 0xffffffff);
		d.wr<uint32_t>(kBar3, 0xffffffff);
		uint64_t mask = ~(size - 1);
		EXPECT_EQ(d.rd32(kBar2), (uint32_t(mask) & ~0xfu) | 0xc) << size;
		EXPECT_EQ(d.rd32(kBar3), uint32_t(mask >> 32)) << size;
		d.wr<uint32_t>(kBar2, lo);
		d.wr<uint32_t>(kBar3, hi);
		EXPECT_EQ(d.rd32(kBar2), lo);
		EXPECT_EQ(d.rd32(kBar3), hi);
	}
}

// Contract: the capability list starts at 0x34 with status CAP_LIST set and
// walks PM, MSI-X (table size = vectors-1, table in BAR0), PCIe endpoint
// with FLR, vendor-specific, then ends; without MSI-X vectors it is skipped.
TEST(PciConfigTest, CapabilityListWalk)
{
	for (uint32_t vectors : {4u, 7u, 0u}) {
		CfgDevice d("msix=" + std::to_string(vectors));
		ASSERT_TRUE(d.ok());
		EXPECT_TRUE(d.rd16(kStatus) & kStatusCapList);
		std::vector<uint8_t> ids;
		uint8_t pos = d.rd8(kCapPtr);
		while (pos && ids.size() < 16) {
			EXPECT_EQ(pos & 3, 0) << "capability at " << int(pos);
			EXPECT_GE(pos, 0x40);
			uint8_t id = d.rd8(pos);
			ids.push_back(id);
			if (id == kCapMsix) {
				uint16_t flags = d.rd16(pos + 2);
				EXPECT_EQ(flags & 0x7ff, vectors - 1);
				EXPECT_EQ(d.rd32(pos + 4) & 7, 0u);  /* BAR0 */
				EXPECT_EQ(d.rd32(pos + 8) & 7, 0u);
			} else if (id == kCapExp) {
				EXPECT_EQ(d.rd16(pos + 2) & 0xf0, 0x00);
				EXPECT_EQ(d.rd16(pos + 2) & 0xf, 2);
				EXPECT_TRUE(d.rd32(pos + kExpDevCap) & kDevCapFlr);
			} else if (id == kCapVndr) {
				EXPECT_EQ(d.rd8(pos + 2), 16);
			}
			pos = d.rd8(pos + 1);
		}
		std::vector<uint8_t> want = {kCapPm, kCapMsix, kCapExp, kCapVndr};
		if (!vectors)
			want = {kCapPm, kCapExp, kCapVndr};
		EXPECT_EQ(ids, want) << "msix=" << vectors;
	}
}

// Contract: with memory-space enable off, BAR pread/pwrite fail with EIO
// and config space still works; turning it back on restores BAR access with
// the contents intact.
TEST(PciConfigTest, MemoryDisableBlocksBarAccess)
{
	CfgDevice d;
	ASSERT_TRUE(d.ok());
	off_t bar0 = RegionOffset(VFIO_PCI_BAR0_REGION_INDEX);
	off_t bar2 = RegionOffset(VFIO_PCI_BAR2_REGION_INDEX);
	uint32_t v = 0x12345678, in = 0;
	ASSERT_EQ(uvfio_pwrite(d.fd(), &v, 4, bar2 + 0x40), 4);

	d.wr<uint16_t>(kCommand, 0);
	for (off_t off : {bar0, bar2}) {
		EXPECT_EQ(ErrOf(uvfio_pread(d.fd(), &in, 4, off)), EIO);
		EXPECT_EQ(ErrOf(uvfio_pwrite(d.fd(), &v, 4, off)), EIO);
	}
	EXPECT_EQ(d.rd16(kCommand), 0);

	d.wr<uint16_t>(kCommand, kCmdMemory);
	ASSERT_EQ(uvfio_pread(d.fd(), &in, 4, bar2 + 0x40), 4);
	EXPECT_EQ(in, v);
	EXPECT_EQ(uvfio_pwrite(d.fd(), &v, 4, bar0), 4);
}

// Contract: setting Initiate FLR in PCIe Device Control resets the function
// as vfio-pci does (pci_try_reset_function): the command register is saved
// and restored, the device's own config (vendor capability data, latched
// status errors) is cleared, the FLR bit reads 0, BAR0 registers are
// zeroed, BAR2 memory is kept and the driver's reset_done runs (migration
// state back to RUNNING).
TEST(PciConfigTest, FlrThroughDeviceControl)
{
	CfgDevice d("mig=stop_copy,errstat=0x8000");
	ASSERT_TRUE(d.ok());
	off_t bar0 = RegionOffset(VFIO_PCI_BAR0_REGION_INDEX);
	off_t bar2 = RegionOffset(VFIO_PCI_BAR2_REGION_INDEX);
	uint8_t exp = d.find_cap(kCapExp), vndr = d.find_cap(kCapVndr);
	ASSERT_NE(exp, 0);
	ASSERT_NE(vndr, 0);

	const uint8_t pat[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	ASSERT_EQ(uvfio_pwrite(d.fd(), pat, 8, bar2 + 0x3000), 8);
	ASSERT_EQ(uvfio_pwrite(d.fd(), pat, 8, bar0 + 0x20), 8);
	d.wr<uint32_t>(vndr + 4, 0xa5a5a5a5);
	EXPECT_EQ(d.rd32(vndr + 4), 0xa5a5a5a5u);
	d.wr<uint16_t>(kCommand, kCmdMemory | kCmdMaster | kCmdIntxDisable);
	uint16_t devctl = d.rd16(exp + kExpDevCtl);
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP), 0);
	ASSERT_EQ(d.get_state(), (uint32_t)VFIO_DEVICE_STATE_STOP);

	d.wr<uint16_t>(exp + kExpDevCtl, devctl | kDevCtlFlr);

	EXPECT_EQ(d.rd16(kCommand), kCmdMemory | kCmdMaster | kCmdIntxDisable);
	EXPECT_EQ(d.rd32(vndr + 4), 0u);
	EXPECT_EQ(d.rd16(kStatus), kStatusCapList);
	EXPECT_EQ(d.rd16(exp + kExpDevCtl), devctl);
	EXPECT_EQ(d.get_state(), (uint32_t)VFIO_DEVICE_STATE_RUNNING);

	uint8_t in[8];
	ASSERT_EQ(uvfio_pread(d.fd(), in, 8, bar2 + 0x3000), 8);
	EXPECT_EQ(std::memcmp(in, pat, 8), 0);
	const uint8_t zero[8] = {};
	ASSERT_EQ(uvfio_pread(d.fd(), in, 8, bar0 + 0x20), 8);
	EXPECT_EQ(std::memcmp(in, zero, 8), 0);
}

// Contract: VFIO_DEVICE_RESET resets the function the same way: the
// command register as the user left it (memory off included), the
// device's own config cleared.
TEST(PciConfigTest, DeviceResetRestoresCommand)
{
	CfgDevice d;
	ASSERT_TRUE(d.ok());
	uint8_t vndr = d.find_cap(kCapVndr);
	ASSERT_NE(vndr, 0);
	d.wr<uint32_t>(vndr + 4, 0x5a5a5a5a);
	d.wr<uint16_t>(kCommand, kCmdMaster | kCmdIntxDisable);
	ASSERT_EQ(ErrOf(uvfio_ioctl(d.fd(), VFIO_DEVICE_RESET, nullptr)), 0);
	EXPECT_EQ(d.rd16(kCommand), kCmdMaster | kCmdIntxDisable);
	EXPECT_EQ(d.rd32(vndr + 4), 0u);
	d.wr<uint16_t>(kCommand, kCmdMemory);
	uint8_t b;
	EXPECT_EQ(uvfio_pread(d.fd(), &b, 1,
			      RegionOffset(VFIO_PCI_BAR2_REGION_INDEX)), 1);
}

namespace {

// Contract: vfio-pci's config virtualization. Emulated for the user: BAR
// addresses (kept, with size and type bits fixed), the interrupt line, the
// MSI-X enable and mask-all bits; read-only: the interrupt pin, the
// capability IDs and next pointers, the MSI-X table size and location, and
// bytes in no capability (writes dropped); written through to the
// function: the vendor capability's data. A new open starts from the
// function's config again.
TEST(PciConfigTest, ConfigVirtualization)
{
	SimDevice dev("msix=4");
	ASSERT_TRUE(dev.added());
	{
		int fd = uvfio_open(dev.name());
		ASSERT_GE(fd, 0);
		auto rd = [fd](uint32_t off) {
			uint32_t v = 0;
			EXPECT_EQ(uvfio_pread(fd, &v, 4, RegionOffset(7) + off), 4);
			return v;
		};
		auto wr = [fd](uint32_t off, uint32_t v, size_t len = 4) {
			EXPECT_EQ(uvfio_pwrite(fd, &v, len, RegionOffset(7) + off),
				  ssize_t(len));
		};
		wr(kBar0, 0xfebc1234);
		EXPECT_EQ(rd(kBar0), 0xfebc1000u);
		wr(kBar2, 0xe0012345);
		wr(kBar3, 0x12);
		EXPECT_EQ(rd(kBar2), 0xe0000000u | 0xc);	/* 1M, 64-bit */
		EXPECT_EQ(rd(kBar3), 0x12u);
		uint32_t line = rd(0x3c);
		wr(0x3c, 0xffff0b, 3);	/* line takes it, pin does not */
		EXPECT_EQ(rd(0x3c), (line & ~0xffu) | 0x0b);

		wr(0x40, 0xdeadbeef);
		EXPECT_EQ(rd(0x40), 0u);

		uint8_t pos = rd(kCapPtr) & 0xfc;
		ASSERT_NE(pos, 0);
		uint32_t hdr = rd(pos);
		wr(pos, hdr ^ 0xffff);
		EXPECT_EQ(rd(pos), hdr);

		uint8_t msix = 0, vndr = 0;
		for (uint8_t p = pos; p; p = (rd(p) >> 8) & 0xfc) {
			if ((rd(p) & 0xff) == kCapMsix)
				msix = p;
			if ((rd(p) & 0xff) == kCapVndr)
				vndr = p;
		}
		ASSERT_NE(msix, 0);
		ASSERT_NE(vndr, 0);
		uint32_t table = rd(msix + 4);
		wr(msix, 0xffffffff);
		EXPECT_EQ(rd(msix) >> 16, 0xc003u);	/* enable|maskall, 4 */
		wr(msix + 4, ~table);
		EXPECT_EQ(rd(msix + 4), table);
		wr(vndr + 4, 0x01020304);
		EXPECT_EQ(rd(vndr + 4), 0x01020304u);
		ASSERT_EQ(uvfio_close(fd), 0);
	}
	int fd = uvfio_open(dev.name());
	ASSERT_GE(fd, 0);
	uint32_t v = 1;
	ASSERT_EQ(uvfio_pread(fd, &v, 4, RegionOffset(7) + kBar0), 4);
	EXPECT_EQ(v, 0u);	/* emulated state does not outlive the open */
	uvfio_close(fd);
}

} // namespace
