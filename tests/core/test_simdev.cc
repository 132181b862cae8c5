// SPDX-License-Identifier: GPL-2.0-only
/*
 * The simulated DMA function behind simnic, driven only through the
 * syscall surface as a VMM and its guest driver would: config space and
 * BAR sizing, the BAR0 registers, DMA results in guest memory byte for
 * byte, MSI-X on eventfds, bus-master gating, DMA faults, function reset,
 * quiescing on STOP and RUNNING_P2P, the seeded workload's determinism,
 * and the device state a STOP_COPY stream carries. The SimnicLog tests
 * reach past the syscall surface once: they mark pages in the device's
 * DMA tracker as its engine does (simdev_log_dirty), for sizes and races
 * a descriptor ring cannot produce; REPORT still goes through the uAPI.
 */
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <ctime>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <xxhash.h>

#include <uvfio/sim/simdev.h>
#include <uvfio/tools/workload.h>

#include "simnic_dev.h"

using namespace uvfio_test;

namespace {

constexpr __u32 CMD_MEM = 0x2, CMD_MASTER = 0x4;

__u64 now_ns()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return __u64(ts.tv_sec) * 1000000000ULL + __u64(ts.tv_nsec);
}

void sleep_ms(int ms)
{
	std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

/* The offset of capability id in config space, 0 if absent. */
__u8 find_cap(SimnicDev &d, __u8 id)
{
	__u8 pos = __u8(d.cfg16(0x34) & 0xfc);
	for (int n = 0; pos && n < 48; n++) {
		__u16 hdr = d.cfg16(pos);
		if ((hdr & 0xff) == id)
			return pos;
		pos = __u8((hdr >> 8) & 0xfc);
	}
	return 0;
}

__u32 cfg32(SimnicDev &d, __u32 off)
{
	__u32 v = 0;
	EXPECT_EQ(uvfio_pread(d.fd(), &v, 4, CONFIG_OFF + off), 4);
	return v;
}

void set_cfg32(SimnicDev &d, __u32 off, __u32 v)
{
	EXPECT_EQ(uvfio_pwrite(d.fd(), &v, 4, CONFIG_OFF + off), 4);
}

std::vector<unsigned char> read_bar2(SimnicDev &d, size_t len = 1 << 20)
{
	std::vector<unsigned char> v(len);
	EXPECT_EQ(uvfio_pread(d.fd(), v.data(), len, BAR2_OFF), ssize_t(len));
	return v;
}

struct simdev_desc make(__u32 op, __u32 flags, __u64 src, __u64 dst,
			__u64 len, __u64 arg = 0)
{
	struct simdev_desc d = {};
	d.opcode = op;
	d.flags = flags;
	d.src = src;
	d.dst = dst;
	d.len = len;
	d.arg = arg;
	return d;
}

// Contract: simnic's config space is a PCI function with the layout its
// BARs need: BAR0 a 4 KiB 32-bit register BAR, BAR2 a 64-bit prefetchable
// memory BAR of mem= bytes, both answering the sizing protocol; the MSI-X
// capability points at the table and PBA in BAR0; read-only IDs ignore
// writes; memory decoding gates BAR access (EIO).
TEST(Simnic, ConfigSpaceAndBarSizing)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());

	__u16 vendor = d.cfg16(0x00);
	d.set_cfg16(0x00, __u16(~vendor));
	EXPECT_EQ(d.cfg16(0x00), vendor);

	set_cfg32(d, 0x10, 0xffffffff);
	EXPECT_EQ(cfg32(d, 0x10), 0xfffff000u);	/* 4K, 32-bit, no prefetch */
	set_cfg32(d, 0x18, 0xffffffff);
	set_cfg32(d, 0x1c, 0xffffffff);
	EXPECT_EQ(cfg32(d, 0x18), 0xfff00000u | 0xc);	/* 1M, 64-bit, pref */
	EXPECT_EQ(cfg32(d, 0x1c), 0xffffffffu);
	EXPECT_EQ(cfg32(d, 0x14), 0u);	/* BAR1 absent */

	__u8 msix = find_cap(d, 0x11);
	ASSERT_NE(msix, 0);
	EXPECT_EQ(d.cfg16(msix + 2) & 0x7ff, 3);	/* 4 vectors */
	EXPECT_EQ(cfg32(d, msix + 4), __u32(SIMDEV_MSIX_TABLE_OFFSET));
	EXPECT_EQ(cfg32(d, msix + 8), __u32(SIMDEV_MSIX_PBA_OFFSET));
	EXPECT_NE(find_cap(d, 0x10), 0);	/* PCI Express */

	__u16 cmd = d.cfg16(0x04);
	EXPECT_TRUE(cmd & CMD_MEM);
	d.set_cfg16(0x04, __u16(cmd & ~CMD_MEM));
	__u32 v;
	EXPECT_EQ(uvfio_pread(d.fd(), &v, 4, BAR0_OFF), -1);
	EXPECT_EQ(errno, EIO);
	d.set_cfg16(0x04, cmd);
	EXPECT_EQ(d.reg(SIMDEV_REG_ID), SIMDEV_ID_VALUE);
}

// Contract: BAR0 registers behave as documented in simdev_regs.h: ID and
// VERSION read-only, SCRATCH read-write, counters ignore writes, DOORBELL
// reads 0 and sets RING_TAIL, a ring size that is not a power of two is
// not taken, partial-dword writes are dropped, and the MSI-X table is the
// host's (reads all ones, writes dropped) as vfio-pci hides it.
TEST(Simnic, RegisterSemantics)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());

	EXPECT_EQ(d.reg(SIMDEV_REG_ID), SIMDEV_ID_VALUE);
	EXPECT_EQ(d.reg(SIMDEV_REG_VERSION), SIMDEV_VERSION_VALUE);
	d.set_reg(SIMDEV_REG_ID, 0);
	EXPECT_EQ(d.reg(SIMDEV_REG_ID), SIMDEV_ID_VALUE);
	d.set_reg(SIMDEV_REG_SCRATCH, 0x12345678);
	EXPECT_EQ(d.reg(SIMDEV_REG_SCRATCH), 0x12345678u);
	__u16 half = 0xffff;
	EXPECT_EQ(uvfio_pwrite(d.fd(), &half, 2, BAR0_OFF + SIMDEV_REG_SCRATCH),
		  2);
	EXPECT_EQ(d.reg(SIMDEV_REG_SCRATCH), 0x12345678u);
	d.set_reg(SIMDEV_REG_COUNTER_LO, 77);
	EXPECT_EQ(d.reg64(SIMDEV_REG_COUNTER_LO), 0u);
	d.set_reg(SIMDEV_REG_DOORBELL, 5);
	EXPECT_EQ(d.reg(SIMDEV_REG_DOORBELL), 0u);
	EXPECT_EQ(d.reg(SIMDEV_REG_RING_TAIL), 5u);
	d.set_reg(SIMDEV_REG_RING_SIZE, 16);
	d.set_reg(SIMDEV_REG_RING_SIZE, 24);
	EXPECT_EQ(d.reg(SIMDEV_REG_RING_SIZE), 16u);
	d.set_reg(SIMDEV_REG_RING_BASE_LO, 0x1234567f);
	EXPECT_EQ(d.reg(SIMDEV_REG_RING_BASE_LO), 0x12345640u);

	__u32 table[4] = {1, 2, 3, 4};
	EXPECT_EQ(uvfio_pwrite(d.fd(), table, sizeof(table),
			       BAR0_OFF + SIMDEV_MSIX_TABLE_OFFSET),
		  ssize_t(sizeof(table)));
	EXPECT_EQ(uvfio_pread(d.fd(), table, sizeof(table),
			      BAR0_OFF + SIMDEV_MSIX_TABLE_OFFSET),
		  ssize_t(sizeof(table)));
	for (__u32 w : table)
		EXPECT_EQ(w, 0xffffffffu);
	/* One access across the table's start: registers before, ones in. */
	unsigned char buf[8];
	EXPECT_EQ(uvfio_pread(d.fd(), buf, 8,
			      BAR0_OFF + SIMDEV_MSIX_TABLE_OFFSET - 4), 8);
	EXPECT_EQ(buf[0], 0);
	EXPECT_EQ(buf[4], 0xff);
}

// Contract: each DMA operation gives exactly the bytes it should in guest
// memory and device memory, and nothing else changes: copy in all four
// directions (spanning the engine's chunks, odd lengths), fill,
// write-pattern, and read-checksum (XXH3-64 with the descriptor's seed).
// Completions are written back into the ring with status DONE and the
// device's counter as seq.
TEST(Simnic, DmaResultsByteForByte)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	unsigned char *g = d.guest();
	const __u64 D = d.data_off();
	std::mt19937_64 rng(42);
	for (size_t i = D; i < d.guest_size(); i++)
		g[i] = static_cast<unsigned char>(rng());
	std::vector<unsigned char> devmem(1 << 20);
	for (auto &b : devmem)
		b = static_cast<unsigned char>(rng());
	ASSERT_EQ(uvfio_pwrite(d.fd(), devmem.data(), devmem.size(), BAR2_OFF),
		  ssize_t(devmem.size()));
	std::vector<unsigned char> model(g, g + d.guest_size());

	d.setup_ring();
	const __u64 I = GUEST_IOVA;
	const __u64 A = D, B = D + 0x40000, C = D + 0x80000, E = D + 0xc0000;
	const __u64 LEN = 200003;	/* three chunks and an odd tail */
	std::vector<struct simdev_desc> ops = {
		make(SIMDEV_OP_COPY, SIMDEV_DESC_DST_DEV, I + A, 0x1000, LEN),
		make(SIMDEV_OP_COPY, SIMDEV_DESC_SRC_DEV, 0x80000, I + B, LEN),
		make(SIMDEV_OP_COPY, SIMDEV_DESC_SRC_DEV | SIMDEV_DESC_DST_DEV,
		     0x1000, 0x60000, LEN),
		make(SIMDEV_OP_COPY, 0, I + C, I + E, 5000),
		make(SIMDEV_OP_FILL, 0, 0, I + C + 7, 4097, 0x1ab),
		make(SIMDEV_OP_WRITE_PATTERN, 0, 0, I + E + 100, 70001, 99),
		make(SIMDEV_OP_WRITE_PATTERN, SIMDEV_DESC_DST_DEV, 0, 0xc0000,
		     9, 5),
		make(SIMDEV_OP_READ_CHECKSUM, 0, I + A, 0, LEN, 7),
		make(SIMDEV_OP_READ_CHECKSUM, SIMDEV_DESC_SRC_DEV, 0x1000, 0,
		     LEN, 7),
		make(SIMDEV_OP_NOP, 0, 0, 0, 0),
	};
	/* The same operations on the model, in order. */
	auto pattern = [](unsigned char *p, __u64 seed, __u64 len) {
		for (__u64 i = 0; i < len; i++) {
			__u64 w = simdev_pattern_word(seed, i / 8);
			p[i] = static_cast<unsigned char>(w >> (8 * (i % 8)));
		}
	};
	std::memcpy(&devmem[0x1000], &model[A], LEN);
	std::memcpy(&model[B], &devmem[0x80000], LEN);
	std::memmove(&devmem[0x60000], &devmem[0x1000], LEN);
	std::memcpy(&model[E], &model[C], 5000);
	std::memset(&model[C + 7], 0xab, 4097);
	pattern(&model[E + 100], 99, 70001);
	pattern(&devmem[0xc0000], 5, 9);
	__u64 sum_guest = XXH3_64bits_withSeed(&model[A], LEN, 7);
	__u64 sum_dev = XXH3_64bits_withSeed(&devmem[0x1000], LEN, 7);
	EXPECT_EQ(sum_guest, sum_dev);

	for (auto &op : ops)
		d.post(op);
	ASSERT_TRUE(d.wait_done(d.tail()));
	EXPECT_EQ(d.reg(SIMDEV_REG_STATUS) &
			  (SIMDEV_STATUS_FAULT | SIMDEV_STATUS_BAD_DESC), 0u);
	EXPECT_EQ(d.reg64(SIMDEV_REG_COUNTER_LO), ops.size());

	for (__u32 i = 0; i < ops.size(); i++) {
		EXPECT_EQ(d.slot(i)->status, __u32(SIMDEV_DESC_DONE)) << i;
		EXPECT_EQ(d.slot(i)->seq, i + 1) << i;
	}
	EXPECT_EQ(d.slot(7)->result, sum_guest);
	EXPECT_EQ(d.slot(8)->result, sum_dev);
	/* Guest memory past the ring, and all of device memory. */
	EXPECT_EQ(std::memcmp(g + D, model.data() + D, d.guest_size() - D), 0);
	EXPECT_TRUE(read_bar2(d) == devmem);
	/* Each guest write is in the device's trace. */
	EXPECT_EQ(d.reg64(SIMDEV_REG_DMA_BYTES_LO),
		  LEN + 5000 + 4097 + 70001 + ops.size() * 64);
}

// Contract: a descriptor with a bad opcode, flag or device-memory range is
// completed with status BAD, latches STATUS.BAD_DESC (W1C) and halts the
// engine until the driver clears it; nothing is written for it.
TEST(Simnic, BadDescriptorHaltsEngine)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	LogCapture log;
	d.setup_ring();
	d.post(make(SIMDEV_OP_FILL, SIMDEV_DESC_DST_DEV, 0, (1 << 20) - 10,
		    11, 1));
	d.post(make(SIMDEV_OP_FILL, 0, 0, GUEST_IOVA + d.data_off(), 8, 0x5a));
	ASSERT_TRUE(d.wait_done(1));
	sleep_ms(20);
	EXPECT_EQ(d.slot(0)->status, __u32(SIMDEV_DESC_BAD));
	EXPECT_TRUE(d.reg(SIMDEV_REG_STATUS) & SIMDEV_STATUS_BAD_DESC);
	EXPECT_EQ(d.reg(SIMDEV_REG_RING_DONE), 1u);
	EXPECT_EQ(d.reg(SIMDEV_REG_ERRORS), 1u);
	EXPECT_TRUE(log.contains("bad descriptor 0"));
	EXPECT_EQ(d.guest()[d.data_off()], 0);

	d.set_reg(SIMDEV_REG_STATUS, SIMDEV_STATUS_BAD_DESC);
	ASSERT_TRUE(d.wait_done(2));
	EXPECT_EQ(d.guest()[d.data_off()], 0x5a);
	for (__u32 op : {99u, 1u}) {
		__u32 flags = op == 99 ? 0 : 0x80;
		d.post(make(op, flags, GUEST_IOVA, GUEST_IOVA, 8));
		ASSERT_TRUE(d.wait_done(d.tail()));
		EXPECT_EQ(d.slot(d.tail() - 1)->status, __u32(SIMDEV_DESC_BAD));
		d.set_reg(SIMDEV_REG_STATUS, SIMDEV_STATUS_BAD_DESC);
	}
}

// Contract: DMA to an IOVA the container does not map is a fault the
// device reports (STATUS.FAULT, FAULT_IOVA, ERRORS, a log line, the
// descriptor's status FAULT) and never a write elsewhere: guest memory
// is unchanged, including for a transfer that starts mapped and runs
// past the mapping. The engine halts until FAULT is cleared. A ring whose
// base is unmapped faults at the fetch.
TEST(Simnic, UnmappedIovaIsAReportedFault)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	LogCapture log;
	d.setup_ring();
	const __u64 end = GUEST_IOVA + d.guest_size();
	std::vector<unsigned char> before(d.guest(),
					  d.guest() + d.guest_size());

	d.post(make(SIMDEV_OP_FILL, 0, 0, end + 0x10000, 4096, 0xee));
	ASSERT_TRUE(d.wait_done(1));
	EXPECT_EQ(d.slot(0)->status, __u32(SIMDEV_DESC_FAULT));
	EXPECT_TRUE(d.reg(SIMDEV_REG_STATUS) & SIMDEV_STATUS_FAULT);
	EXPECT_FALSE(d.reg(SIMDEV_REG_STATUS) & SIMDEV_STATUS_ACTIVE);
	EXPECT_EQ(d.reg64(SIMDEV_REG_FAULT_IOVA_LO), end + 0x10000);
	EXPECT_EQ(d.reg(SIMDEV_REG_ERRORS), 1u);
	char want[64];
	std::snprintf(want, sizeof(want), "DMA fault at IOVA %#llx",
		      (unsigned long long)(end + 0x10000));
	EXPECT_TRUE(log.contains(want));

	/* Halted: the next descriptor waits for FAULT to be cleared. */
	d.post(make(SIMDEV_OP_FILL, 0, 0, end - 4096, 8192, 0xee));
	sleep_ms(20);
	EXPECT_EQ(d.reg(SIMDEV_REG_RING_DONE), 1u);
	d.set_reg(SIMDEV_REG_STATUS, SIMDEV_STATUS_FAULT);
	ASSERT_TRUE(d.wait_done(2));
	EXPECT_EQ(d.slot(1)->status, __u32(SIMDEV_DESC_FAULT));
	EXPECT_EQ(d.reg64(SIMDEV_REG_FAULT_IOVA_LO), end - 4096);
	/* Only the two completions landed (in the ring). */
	const size_t ring = 2 * sizeof(struct simdev_desc);
	EXPECT_EQ(std::memcmp(d.guest() + ring, before.data() + ring,
			      d.guest_size() - ring), 0);

	/* A ring the device cannot read. */
	d.set_reg(SIMDEV_REG_STATUS, SIMDEV_STATUS_FAULT);
	d.set_reg(SIMDEV_REG_CTRL, 0);
	d.set_reg(SIMDEV_REG_RING_BASE_LO, __u32(end));
	d.set_reg(SIMDEV_REG_CTRL, SIMDEV_CTRL_ENABLE);
	d.set_reg(SIMDEV_REG_DOORBELL, d.tail() + 1);
	for (int i = 0; i < 5000 && !(d.reg(SIMDEV_REG_STATUS) &
				     SIMDEV_STATUS_FAULT); i++)
		sleep_ms(2);
	EXPECT_TRUE(d.reg(SIMDEV_REG_STATUS) & SIMDEV_STATUS_FAULT);
	EXPECT_EQ(d.reg64(SIMDEV_REG_FAULT_IOVA_LO),
		  end + (d.tail() & 63) * 64);
	EXPECT_EQ(d.reg(SIMDEV_REG_RING_HEAD), d.tail());
}

// Contract: completions raise the MSI-X vector IRQ_CTRL names on the
// eventfd the user set with SET_IRQS, only for descriptors that ask;
// faults raise the fault vector. A vector without a trigger loses the
// message without harm.
TEST(Simnic, MsixDeliveredOnEventfd)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	int efd[2] = {eventfd(0, EFD_NONBLOCK), eventfd(0, EFD_NONBLOCK)};
	alignas(8) unsigned char buf[sizeof(struct vfio_irq_set) + 8];
	auto *set = reinterpret_cast<struct vfio_irq_set *>(buf);
	set->argsz = sizeof(buf);
	set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	set->index = VFIO_PCI_MSIX_IRQ_INDEX;
	set->start = 1;
	set->count = 2;
	std::memcpy(set->data, efd, 8);
	ASSERT_EQ(uvfio_ioctl(d.fd(), VFIO_DEVICE_SET_IRQS, set), 0);

	d.setup_ring(64, SIMDEV_IRQ_CMPL_EN | SIMDEV_IRQ_FAULT_EN | 1 << 8 |
				 2 << 16);
	auto pending = [](int fd, int ms) {
		struct pollfd p = {fd, POLLIN, 0};
		return poll(&p, 1, ms) == 1;
	};
	__u64 G = GUEST_IOVA + d.data_off();
	d.post(make(SIMDEV_OP_FILL, 0, 0, G, 64, 1));
	ASSERT_TRUE(d.wait_done(1));
	EXPECT_FALSE(pending(efd[0], 0));	/* did not ask */

	d.post(make(SIMDEV_OP_FILL, SIMDEV_DESC_IRQ, 0, G, 64, 2));
	ASSERT_TRUE(pending(efd[0], 10000));
	__u64 v = 0;
	EXPECT_EQ(read(efd[0], &v, 8), 8);
	EXPECT_EQ(v, 1u);
	EXPECT_FALSE(pending(efd[1], 0));

	d.post(make(SIMDEV_OP_FILL, SIMDEV_DESC_IRQ, 0, 0, 64, 3));
	ASSERT_TRUE(pending(efd[1], 10000));
	EXPECT_FALSE(pending(efd[0], 0));	/* a fault is no completion */

	/* Vector 3 has no trigger: the message is lost, the device goes on. */
	d.set_reg(SIMDEV_REG_STATUS, SIMDEV_STATUS_FAULT);
	d.set_reg(SIMDEV_REG_IRQ_CTRL, SIMDEV_IRQ_CMPL_EN | 3 << 8);
	d.post(make(SIMDEV_OP_FILL, SIMDEV_DESC_IRQ, 0, G, 64, 4));
	ASSERT_TRUE(d.wait_done(d.tail()));
	EXPECT_EQ(d.slot(d.tail() - 1)->status, __u32(SIMDEV_DESC_DONE));
	close(efd[0]);
	close(efd[1]);
}

// Contract: the command register's bus-master bit gates DMA: with it
// clear the device fetches and executes nothing (STATUS.ACTIVE clear),
// and setting it lets the posted work run.
TEST(Simnic, BusMasterGatesDma)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	__u16 cmd = d.cfg16(0x04);
	d.set_cfg16(0x04, __u16(cmd | CMD_MASTER));
	d.setup_ring();
	EXPECT_TRUE(d.reg(SIMDEV_REG_STATUS) & SIMDEV_STATUS_ACTIVE);
	d.set_cfg16(0x04, __u16(cmd & ~CMD_MASTER));
	EXPECT_FALSE(d.reg(SIMDEV_REG_STATUS) & SIMDEV_STATUS_ACTIVE);
	d.post(make(SIMDEV_OP_FILL, 0, 0, GUEST_IOVA + d.data_off(), 64, 9));
	sleep_ms(20);
	EXPECT_EQ(d.reg(SIMDEV_REG_RING_HEAD), 0u);
	EXPECT_EQ(d.guest()[d.data_off()], 0);
	d.set_cfg16(0x04, __u16(cmd | CMD_MASTER));
	ASSERT_TRUE(d.wait_done(1));
	EXPECT_EQ(d.guest()[d.data_off()], 9);
}

// Contract: a function-level reset (Initiate FLR in the PCIe capability,
// or VFIO_DEVICE_RESET) returns the BAR0 registers and the device's own
// config (vendor capability data) to their reset values and drops fetched
// work, and leaves alone what it should: device memory, guest memory, the
// config state vfio-pci saves and restores around a reset (command) and
// what it emulates for the user (the interrupt line, BAR addresses).
TEST(Simnic, FlrResetsRegistersNotMemory)
{
	for (bool by_ioctl : {false, true}) {
		SCOPED_TRACE(by_ioctl ? "VFIO_DEVICE_RESET" : "config FLR");
		SimnicDev d;
		ASSERT_TRUE(d.ok());
		d.setup_ring(64, SIMDEV_IRQ_CMPL_EN);
		d.set_reg(SIMDEV_REG_SCRATCH, 0xfeed);
		d.post(make(SIMDEV_OP_WRITE_PATTERN, SIMDEV_DESC_DST_DEV, 0, 0,
			    1 << 20, 3));
		d.post(make(SIMDEV_OP_COPY, SIMDEV_DESC_SRC_DEV, 0,
			    GUEST_IOVA + d.data_off(), 4096));
		ASSERT_TRUE(d.wait_done(2));
		auto mem = read_bar2(d);
		std::vector<unsigned char> guest(d.guest(),
						 d.guest() + d.guest_size());
		__u8 exp = find_cap(d, 0x10), vndr = find_cap(d, 0x09);
		ASSERT_NE(exp, 0);
		ASSERT_NE(vndr, 0);
		set_cfg32(d, vndr + 4, 0xdeadbeef);
		set_cfg32(d, 0x40, 0xdeadbeef);	/* in no capability: dropped */
		EXPECT_EQ(cfg32(d, 0x40), 0u);
		d.set_cfg16(0x3c, 0x0b);
		set_cfg32(d, 0x18, 0xfee00000);
		__u16 cmd = d.cfg16(0x04);

		if (by_ioctl)
			ASSERT_EQ(uvfio_ioctl(d.fd(), VFIO_DEVICE_RESET, nullptr),
				  0);
		else
			d.set_cfg16(exp + 8, __u16(d.cfg16(exp + 8) | 0x8000));
		EXPECT_EQ(cfg32(d, vndr + 4), 0u);
		EXPECT_EQ(d.cfg16(exp + 8) & 0x8000, 0);
		EXPECT_EQ(d.cfg16(0x04), cmd);
		EXPECT_EQ(d.cfg16(0x3c) & 0xff, 0x0b);
		EXPECT_EQ(cfg32(d, 0x18), 0xfee00000u | 0xc);
		EXPECT_EQ(d.reg(SIMDEV_REG_ID), SIMDEV_ID_VALUE);
		for (__u32 off : {SIMDEV_REG_CTRL, SIMDEV_REG_IRQ_CTRL,
				  SIMDEV_REG_RING_SIZE, SIMDEV_REG_RING_BASE_LO,
				  SIMDEV_REG_RING_HEAD, SIMDEV_REG_RING_TAIL,
				  SIMDEV_REG_RING_DONE, SIMDEV_REG_COUNTER_LO,
				  SIMDEV_REG_DMA_BYTES_LO, SIMDEV_REG_SCRATCH})
			EXPECT_EQ(d.reg(off), 0u) << off;
		EXPECT_TRUE(read_bar2(d) == mem);
		EXPECT_EQ(std::memcmp(d.guest(), guest.data(), guest.size()),
			  0);
	}
}

// Contract: as vfio-pci resets a function at open and close, a new open
// finds the registers the last user programmed (ring, engine enable,
// scratch) cleared, memory decoding on and bus mastering off; device
// memory keeps its content.
TEST(Simnic, OpenStartsFromReset)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	d.setup_ring();
	d.set_reg(SIMDEV_REG_SCRATCH, 7);
	d.post(make(SIMDEV_OP_FILL, SIMDEV_DESC_DST_DEV, 0, 0x100, 16, 0x3c));
	ASSERT_TRUE(d.wait_done(1));
	ASSERT_TRUE(d.reopen());
	for (__u32 off : {SIMDEV_REG_CTRL, SIMDEV_REG_RING_SIZE,
			  SIMDEV_REG_RING_BASE_LO, SIMDEV_REG_RING_DONE,
			  SIMDEV_REG_COUNTER_LO, SIMDEV_REG_SCRATCH})
		EXPECT_EQ(d.reg(off), 0u) << off;
	EXPECT_EQ(d.cfg16(0x04) & (CMD_MEM | CMD_MASTER), CMD_MEM);
	unsigned char b = 0;
	ASSERT_EQ(uvfio_pread(d.fd(), &b, 1, BAR2_OFF + 0x100), 1);
	EXPECT_EQ(b, 0x3c);
}

/* A running workload on d: the whole guest memory, ring at the start. */
sim_workload_config workload_cfg(SimnicDev &d, __u64 seed, __u64 count,
				 __u32 max_len = 16 << 10, __u32 rate = 0)
{
	sim_workload_config c;
	c.device_fd = d.fd();
	c.guest = d.guest();
	c.guest_iova = GUEST_IOVA;
	c.guest_size = d.guest_size();
	c.dev_mem_size = 1 << 20;
	c.seed = seed;
	c.count = count;
	c.max_len = max_len;
	c.rate = rate;
	return c;
}

void enable_master(SimnicDev &d)
{
	d.set_cfg16(0x04, __u16(d.cfg16(0x04) | CMD_MASTER));
}

// Contract: with the workload running, an arc into STOP or RUNNING_P2P
// returns only after in-flight DMA is done: the device's trace (the last
// DMA write's time, the DMA write count) shows no write after the arc
// returned, nothing more completes while it stays stopped, and STATUS
// shows QUIESCED. Back in RUNNING the work goes on. drain_us makes each
// stop take the time of a slow device.
TEST(Simnic, StopAndP2PQuiesceInFlightDma)
{
	SimnicDev d("drain_us=5000");
	ASSERT_TRUE(d.ok());
	enable_master(d);
	sim_workload w;
	ASSERT_EQ(w.start(workload_cfg(d, 1, 0, 256 << 10)), 0);

	for (__u32 target : {VFIO_DEVICE_STATE_STOP,
			     VFIO_DEVICE_STATE_RUNNING_P2P,
			     VFIO_DEVICE_STATE_STOP,
			     VFIO_DEVICE_STATE_RUNNING_P2P}) {
		SCOPED_TRACE(target);
		__u64 writes0 = d.reg64(SIMDEV_REG_DMA_WRITES_LO);
		for (int i = 0; i < 2000 &&
				d.reg64(SIMDEV_REG_DMA_WRITES_LO) < writes0 + 8;
		     i++)
			sleep_ms(1);
		ASSERT_EQ(d.set_state(target), 0);
		__u64 returned = now_ns();
		__u64 writes = d.reg64(SIMDEV_REG_DMA_WRITES_LO);
		__u32 done = d.reg(SIMDEV_REG_RING_DONE);
		__u32 head = d.reg(SIMDEV_REG_RING_HEAD);
		EXPECT_GT(writes, writes0);
		EXPECT_LE(d.reg64(SIMDEV_REG_LAST_WRITE_NS_LO), returned);
		EXPECT_TRUE(d.reg(SIMDEV_REG_STATUS) & SIMDEV_STATUS_QUIESCED);
		sleep_ms(30);
		EXPECT_EQ(d.reg64(SIMDEV_REG_DMA_WRITES_LO), writes);
		EXPECT_EQ(d.reg(SIMDEV_REG_RING_DONE), done);
		EXPECT_EQ(d.reg(SIMDEV_REG_RING_HEAD), head);
		EXPECT_LE(d.reg64(SIMDEV_REG_LAST_WRITE_NS_LO), returned);
		ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_RUNNING), 0);
		EXPECT_FALSE(d.reg(SIMDEV_REG_STATUS) & SIMDEV_STATUS_QUIESCED);
	}
	w.stop();
	EXPECT_EQ(w.wait_done(10000), 0);
	EXPECT_EQ(w.error(), 0);
	EXPECT_EQ(d.reg(SIMDEV_REG_STATUS) & SIMDEV_STATUS_FAULT, 0u);
}

/*
 * Run `count` seeded descriptors on a fresh device; while it runs, stop
 * and resume the device `stops` times. The digest of guest memory, device
 * memory and registers at the end.
 */
__u64 seeded_run(__u64 seed, __u64 count, int stops)
{
	SimnicDev d;
	EXPECT_TRUE(d.ok());
	if (!d.ok())
		return 0;
	enable_master(d);
	sim_workload w;
	/* Paced (count / 3000 s), so that the stops land while it runs. */
	EXPECT_EQ(w.start(workload_cfg(d, seed, count, 16 << 10,
				       stops ? 3000 : 0)), 0);
	for (int i = 0; i < stops; i++) {
		sleep_ms(2);
		if (i == 0) {
			EXPECT_LT(w.posted(), count);
		}
		__u32 s = i % 2 ? VFIO_DEVICE_STATE_RUNNING_P2P
				: VFIO_DEVICE_STATE_STOP;
		EXPECT_EQ(d.set_state(s), 0);
		sleep_ms(3);
		EXPECT_EQ(d.set_state(VFIO_DEVICE_STATE_RUNNING), 0);
	}
	EXPECT_EQ(w.wait_done(30000), 0);
	EXPECT_EQ(w.completed(), count);
	return d.digest();
}

// Contract: the same seed gives the same guest memory, device memory and
// device registers, run after run, whether or not the device was stopped
// and resumed (STOP and RUNNING_P2P) while the workload ran; the workload
// waits through the stops. Another seed gives another state.
TEST(Simnic, SameSeedSameState)
{
	const __u64 N = 1500;
	__u64 a = seeded_run(11, N, 0);
	EXPECT_EQ(seeded_run(11, N, 0), a);
	EXPECT_EQ(seeded_run(11, N, 6), a);
	EXPECT_NE(seeded_run(12, N, 0), a);
}

// Contract: the device's own DMA tracker, through DMA_LOGGING_*: after
// START (6 ranges; the device tracks 4, so they are combined), a REPORT of
// each requested range shows exactly the guest pages the device's DMA
// wrote in it (completions in the ring included), and clears them; a
// second START is rejected (EINVAL); after STOP nothing is tracked.
TEST(Simnic, DmaLoggingReportsEveryWrite)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	d.setup_ring();
	const __u64 G = GUEST_IOVA, P = 4096;
	std::vector<struct vfio_device_feature_dma_logging_range> ranges = {
		{G, 0x10000}, {G + 0x30000, 0x8000}, {G + 0x50000, 0x10000},
		{G + 0x80000, 0x4000}, {G + 0xa0000, 0x20000},
		{G + 0x200000, 0x100000}};
	FeatureArg<struct vfio_device_feature_dma_logging_control> st(
		VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
	st.d()->page_size = P;
	st.d()->num_ranges = __u32(ranges.size());
	st.d()->ranges = reinterpret_cast<uintptr_t>(ranges.data());
	ASSERT_EQ(st.ioctl(d.fd()), 0);
	EXPECT_EQ(st.ioctl(d.fd()), EINVAL);

	std::set<__u64> written = {G / P};	/* the ring's page */
	std::mt19937_64 rng(3);
	for (int i = 0; i < 200; i++) {
		__u64 len = 1 + rng() % 20000;
		__u64 dst = G + d.data_off() + rng() % (0x300000 - len);
		d.post(make(i % 2 ? SIMDEV_OP_FILL : SIMDEV_OP_WRITE_PATTERN, 0,
			    0, dst, len, rng()));
		for (__u64 p = dst / P; p <= (dst + len - 1) / P; p++)
			written.insert(p);
		if (d.tail() % 32 == 0) {	/* the ring has 64 slots */
			ASSERT_TRUE(d.wait_done(d.tail()));
		}
	}
	ASSERT_TRUE(d.wait_done(d.tail()));

	auto report = [&](__u64 iova, __u64 len) {
		std::vector<__u64> bm((len / P + 63) / 64);
		FeatureArg<struct vfio_device_feature_dma_logging_report> r(
			VFIO_DEVICE_FEATURE_GET |
			VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT);
		r.d()->iova = iova;
		r.d()->length = len;
		r.d()->page_size = P;
		r.d()->bitmap = reinterpret_cast<uintptr_t>(bm.data());
		EXPECT_EQ(r.ioctl(d.fd()), 0);
		return bm;
	};
	size_t seen = 0;
	for (auto &rg : ranges) {
		auto bm = report(rg.iova, rg.length);
		for (__u64 i = 0; i < rg.length / P; i++) {
			bool bit = bm[i / 64] >> (i % 64) & 1;
			bool want = written.count(rg.iova / P + i);
			EXPECT_EQ(bit, want) << std::hex << rg.iova + i * P;
			seen += bit;
		}
		auto again = report(rg.iova, rg.length);
		for (__u64 w : again)
			EXPECT_EQ(w, 0u);
	}
	EXPECT_GT(seen, 20u);

	struct vfio_device_feature f = {};
	f.argsz = sizeof(f);
	f.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP;
	ASSERT_EQ(uvfio_ioctl(d.fd(), VFIO_DEVICE_FEATURE, &f), 0);
	/* A new session starts clean. */
	ASSERT_EQ(st.ioctl(d.fd()), 0);
	auto bm = report(G, 0x10000);
	for (__u64 w : bm)
		EXPECT_EQ(w, 0u);
}

/* DMA_LOGGING_START of ranges at page size P on d: the errno. */
int log_start(SimnicDev &d,
	      std::vector<struct vfio_device_feature_dma_logging_range> ranges,
	      __u64 page = 4096)
{
	FeatureArg<struct vfio_device_feature_dma_logging_control> st(
		VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
	st.d()->page_size = page;
	st.d()->num_ranges = __u32(ranges.size());
	st.d()->ranges = reinterpret_cast<uintptr_t>(ranges.data());
	return st.ioctl(d.fd());
}

/* DMA_LOGGING_REPORT of [iova, iova + len) at 4 KiB into bitmap: errno. */
int log_report(SimnicDev &d, __u64 iova, __u64 len, void *bitmap)
{
	FeatureArg<struct vfio_device_feature_dma_logging_report> r(
		VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT);
	r.d()->iova = iova;
	r.d()->length = len;
	r.d()->page_size = 4096;
	r.d()->bitmap = reinterpret_cast<uintptr_t>(bitmap);
	return r.ioctl(d.fd());
}

bool bit(const std::vector<__u64> &bm, __u64 i)
{
	return bm[i / 64] >> (i % 64) & 1;
}

// Contract: the device's tracker holds one bit per logged page plus a
// constant (START of 64 GiB at 4 KiB: 2 MiB; the constant is one spare
// chunk of bitmap, 32 KiB, and tables of 16 bytes per chunk of 2^18 pages,
// at most 128 KiB at the tracker's capacity), nothing once stopped; a page
// marked by DMA (simdev_log_dirty, the engine's own marking) is reported
// by exactly one REPORT and then cleared, however often it was written;
// pages outside the logged ranges are never reported.
TEST(SimnicLog, DirtyPagesReportedOnceThenCleared)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	const __u64 P = 4096, G = 64ULL << 30;
	ASSERT_EQ(log_start(d, {{0, G}, {2 * G, 8 * P}}), 0);
	struct simdev *sd = simdev_find(d.bdf());
	ASSERT_NE(sd, nullptr);
	const __u64 chunks = G / P / SIMDEV_LOG_CHUNK_PAGES + 1;
	EXPECT_LE(simdev_log_bytes(sd), (G / P + 8) / 8 +
						SIMDEV_LOG_CHUNK_PAGES / 8 +
						16 * chunks + 256);
	EXPECT_GE(simdev_log_bytes(sd), (G / P) / 8);

	std::mt19937_64 rng(7);
	std::set<__u64> pages;
	for (int i = 0; i < 3000; i++) {
		__u64 p = rng() % (G / P);
		pages.insert(p);
		simdev_log_dirty(sd, p * P + rng() % P, 1);
		simdev_log_dirty(sd, p * P, P);	/* again: still one report */
	}
	simdev_log_dirty(sd, G + P, 64 * P);		/* between the ranges */
	simdev_log_dirty(sd, G - P, 2 * P);	/* straddles range 1's end */
	pages.insert(G / P - 1);
	simdev_log_dirty(sd, 2 * G + 7 * P, 4 * P);	/* tail of range 2 */

	std::vector<__u64> bm(G / P / 64);
	ASSERT_EQ(log_report(d, 0, G, bm.data()), 0);
	size_t n = 0;
	for (__u64 w = 0; w < bm.size(); w++)
		for (__u64 v = bm[w]; v; v &= v - 1, n++)
			ASSERT_TRUE(pages.count(w * 64 + __builtin_ctzll(v)))
				<< w * 64 + __builtin_ctzll(v);
	EXPECT_EQ(n, pages.size());
	std::vector<__u64> tail(1);
	ASSERT_EQ(log_report(d, 2 * G, 8 * P, tail.data()), 0);
	EXPECT_EQ(tail[0], 0x80u);
	std::vector<__u64> gap(16);
	ASSERT_EQ(log_report(d, G, 1024 * P, gap.data()), 0);
	EXPECT_EQ(std::count(gap.begin(), gap.end(), 0ULL), 16);

	/* Cleared: a second REPORT finds nothing. */
	std::fill(bm.begin(), bm.end(), 0);
	ASSERT_EQ(log_report(d, 0, G, bm.data()), 0);
	EXPECT_EQ(std::count(bm.begin(), bm.end(), 0ULL), long(bm.size()));

	struct vfio_device_feature f = {};
	f.argsz = sizeof(f);
	f.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP;
	ASSERT_EQ(uvfio_ioctl(d.fd(), VFIO_DEVICE_FEATURE, &f), 0);
	EXPECT_EQ(simdev_log_bytes(sd), 0u);
}

// Contract: a REPORT of a sub-window, even one that starts and ends inside
// a tracker word, reports and clears only the pages of that window: dirty
// pages next to it (same words included) stay for a later REPORT, and the
// user's bitmap is written only in the bytes that hold the window's bits.
TEST(SimnicLog, SubWindowReportLeavesTheRest)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	const __u64 P = 4096, N = 1024;	/* 4 MiB logged */
	ASSERT_EQ(log_start(d, {{0, N * P}}), 0);
	struct simdev *sd = simdev_find(d.bdf());
	ASSERT_NE(sd, nullptr);
	for (__u64 p = 0; p < N; p++)
		simdev_log_dirty(sd, p * P, P);

	/* Pages [70, 200): words 1..3 of the tracker, cut at both ends. */
	const __u64 first = 70, count = 130;
	std::vector<unsigned char> ubm(64, 0xa5);
	const size_t used = (count + 7) / 8;
	for (size_t i = 0; i < used; i++)
		ubm[i] = 0;
	ASSERT_EQ(log_report(d, first * P, count * P, ubm.data()), 0);
	for (size_t i = 0; i + 1 < used; i++)
		EXPECT_EQ(ubm[i], 0xff) << i;
	EXPECT_EQ(ubm[used - 1], (1u << (count % 8)) - 1);
	for (size_t i = used; i < ubm.size(); i++)
		ASSERT_EQ(ubm[i], 0xa5) << "byte past the window, " << i;

	/* Everything else is still dirty, and the window is clean. */
	std::vector<__u64> bm(N / 64);
	ASSERT_EQ(log_report(d, 0, N * P, bm.data()), 0);
	for (__u64 p = 0; p < N; p++)
		EXPECT_EQ(bit(bm, p), p < first || p >= first + count) << p;
}

// Contract: DMA marking pages while REPORTs run concurrently loses no page
// and reports none twice: every page marked once shows in exactly one of
// the REPORTs (the ones racing and a last one after the marking stopped).
// Markers and reporter are separate threads (TSan checks the protocol).
TEST(SimnicLog, ConcurrentDmaAndReportLoseNothing)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	const __u64 P = 4096, N = 1 << 18;	/* 1 GiB logged */
	ASSERT_EQ(log_start(d, {{0, N * P}}), 0);
	struct simdev *sd = simdev_find(d.bdf());
	ASSERT_NE(sd, nullptr);

	constexpr int kMarkers = 3;
	std::vector<std::vector<__u64>> marked(kMarkers);
	std::atomic<int> running{kMarkers};
	std::vector<std::thread> markers;
	for (int t = 0; t < kMarkers; t++)
		markers.emplace_back([&, t] {
			/*
			 * Each page once, so a second report of it would be
			 * a double; threads interleave pages, so they and the
			 * reporter share words.
			 */
			for (__u64 p = t; p < N; p += kMarkers)
				marked[t].push_back(p);
			std::shuffle(marked[t].begin(), marked[t].end(),
				     std::mt19937_64(100 + t));
			for (size_t i = 0; i < marked[t].size(); i++) {
				simdev_log_dirty(sd, marked[t][i] * P, P);
				if (i % 4096 == 0)
					std::this_thread::yield();
			}
			running--;
		});

	std::vector<unsigned> seen(N);
	std::vector<__u64> bm(N / 64);
	auto collect = [&] {
		std::fill(bm.begin(), bm.end(), 0);
		ASSERT_EQ(log_report(d, 0, N * P, bm.data()), 0);
		for (__u64 w = 0; w < bm.size(); w++)
			for (__u64 v = bm[w]; v; v &= v - 1)
				seen[w * 64 + __builtin_ctzll(v)]++;
	};
	int reports = 0;
	while (running.load()) {
		collect();
		reports++;
	}
	for (auto &t : markers)
		t.join();
	collect();

	std::vector<bool> want(N);
	for (auto &m : marked)
		for (__u64 p : m)
			want[p] = true;
	size_t lost = 0, twice = 0, extra = 0;
	for (__u64 p = 0; p < N; p++) {
		lost += want[p] && !seen[p];
		twice += seen[p] > 1;
		extra += !want[p] && seen[p];
	}
	EXPECT_EQ(lost, 0u);
	EXPECT_EQ(twice, 0u);
	EXPECT_EQ(extra, 0u);
	EXPECT_GE(reports, 1);
	RecordProperty("racing_reports", reports);
}

// Contract: REPORT swaps a chunk's bitmap (SIMDEV_LOG_CHUNK_PAGES pages)
// with its spare while DMA markers OR into it, and test-and-clears words
// of chunks a window covers in part; either way a page marked once is
// reported exactly once, never lost and never twice, across REPORTs of
// whole chunks, of windows cutting chunks, and of a range whose last chunk
// is short, with writes of several pages that straddle chunk edges.
// Markers and reporter are separate threads (TSan checks the protocol).
TEST(SimnicLog, MarkersRacingChunkSwapLoseNothing)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	const __u64 P = 4096, C = SIMDEV_LOG_CHUNK_PAGES;
	const __u64 N = 2 * C + C / 2;	/* two whole chunks and a short one */
	ASSERT_EQ(log_start(d, {{0, N * P}}), 0);
	struct simdev *sd = simdev_find(d.bdf());
	ASSERT_NE(sd, nullptr);

	/* Blocks of 3 pages (3 does not divide C: some straddle chunks). */
	constexpr int kMarkers = 3;
	constexpr __u64 kBlock = 3;
	std::atomic<int> running{kMarkers};
	std::vector<std::thread> markers;
	for (int t = 0; t < kMarkers; t++)
		markers.emplace_back([&, t] {
			std::vector<__u64> blocks;
			for (__u64 b = t; b * kBlock < N; b += kMarkers)
				blocks.push_back(b);
			std::shuffle(blocks.begin(), blocks.end(),
				     std::mt19937_64(200 + t));
			for (size_t i = 0; i < blocks.size(); i++) {
				__u64 first = blocks[i] * kBlock;
				__u64 n = std::min(kBlock, N - first);
				simdev_log_dirty(sd, first * P, n * P);
				if (i % 1024 == 0)
					std::this_thread::yield();
			}
			running--;
		});

	std::vector<unsigned> seen(N);
	/* Whole range; one whole chunk; a window across both chunk edges. */
	const std::pair<__u64, __u64> windows[] = {
		{0, N}, {C, C}, {C - 100, C + 250}, {2 * C - 7, N - (2 * C - 7)}};
	auto collect = [&](std::pair<__u64, __u64> w) {
		std::vector<__u64> bm((w.second + 63) / 64);
		ASSERT_EQ(log_report(d, w.first * P, w.second * P, bm.data()), 0);
		for (__u64 i = 0; i < bm.size(); i++)
			for (__u64 v = bm[i]; v; v &= v - 1) {
				__u64 b = i * 64 + __builtin_ctzll(v);
				ASSERT_LT(b, w.second);
				seen[w.first + b]++;
			}
	};
	int reports = 0;
	while (running.load())
		collect(windows[reports++ % std::size(windows)]);
	for (auto &t : markers)
		t.join();
	collect({0, N});

	size_t lost = 0, twice = 0;
	for (__u64 p = 0; p < N; p++) {
		lost += !seen[p];
		twice += seen[p] > 1;
	}
	EXPECT_EQ(lost, 0u);
	EXPECT_EQ(twice, 0u);
	RecordProperty("racing_reports", reports);
}

/* Read a data fd to EOF. */
std::vector<unsigned char> read_all(int fd)
{
	std::vector<unsigned char> out;
	unsigned char buf[1 << 16];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0) {
			EXPECT_EQ(n, 0) << strerror(errno);
			return out;
		}
		out.insert(out.end(), buf, buf + n);
	}
}

/*
 * RESUMING, write stream, STOP: the errno of the last arc. A write(2) after
 * the driver refused the stream's header is EPIPE, and SIGPIPE unless
 * ignored (uapi.md): ignored, as a VMM does.
 */
int resume_with(SimnicDev &d, const std::vector<unsigned char> &s)
{
	int fd;
	signal(SIGPIPE, SIG_IGN);
	EXPECT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP), 0);
	EXPECT_EQ(d.set_state(VFIO_DEVICE_STATE_RESUMING, &fd), 0);
	size_t off = 0;
	while (off < s.size()) {
		ssize_t n = write(fd, s.data() + off,
				  std::min<size_t>(32 << 10, s.size() - off));
		if (n <= 0)
			break;
		off += size_t(n);
	}
	uvfio_close(fd);
	return d.set_state(VFIO_DEVICE_STATE_STOP);
}

// Contract: the STOP_COPY stream carries the device-internal state that
// must migrate (registers, ring indices, descriptors fetched but not yet
// executed, counters, device memory): a destination resumed from it with
// a copy of guest memory finishes the posted work exactly as the source
// does. MIG_DATA_SIZE is the stream's exact length.
TEST(Simnic, StopCopyCarriesInFlightWork)
{
	SimnicDev src, dst;
	ASSERT_TRUE(src.ok() && dst.ok());
	enable_master(src);
	enable_master(dst);
	sim_workload w;
	ASSERT_EQ(w.start(workload_cfg(src, 5, 4000)), 0);
	for (int i = 0; i < 5000 && w.completed() < 500; i++)
		sleep_ms(1);
	ASSERT_EQ(src.set_state(VFIO_DEVICE_STATE_STOP), 0);
	w.stop();	/* the guest driver stops posting, as a paused VM */
	__u32 tail = src.reg(SIMDEV_REG_RING_TAIL);

	FeatureArg<struct vfio_device_feature_mig_data_size> ds(
		VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE);
	ASSERT_EQ(ds.ioctl(src.fd()), 0);
	int fd;
	ASSERT_EQ(src.set_state(VFIO_DEVICE_STATE_STOP_COPY, &fd), 0);
	auto stream = read_all(fd);
	uvfio_close(fd);
	EXPECT_EQ(stream.size(), ds.d()->stop_copy_length);
	ASSERT_EQ(src.set_state(VFIO_DEVICE_STATE_STOP), 0);

	std::memcpy(dst.guest(), src.guest(), src.guest_size());
	ASSERT_EQ(resume_with(dst, stream), 0);
	EXPECT_EQ(dst.reg(SIMDEV_REG_RING_TAIL), tail);
	ASSERT_EQ(dst.set_state(VFIO_DEVICE_STATE_RUNNING), 0);
	ASSERT_EQ(src.set_state(VFIO_DEVICE_STATE_RUNNING), 0);
	ASSERT_TRUE(src.wait_done(tail));
	ASSERT_TRUE(dst.wait_done(tail));
	EXPECT_EQ(dst.digest(), src.digest());
}

// Contract: a damaged or foreign stream fails RESUMING -> STOP with EINVAL
// and a log line naming the problem, and the device never runs with what
// it got (its registers are not loaded; it stays in RESUMING until reset):
// bad magic, another version, another device-memory size, truncation (in
// a header, after the configuration, before the end), a missing record,
// trailing bytes, a flipped payload byte.
TEST(Simnic, CorruptStreamRejected)
{
	SimnicDev src, dst, big("mem=2M");
	ASSERT_TRUE(src.ok() && dst.ok() && big.ok());
	src.set_reg(SIMDEV_REG_SCRATCH, 1);
	dst.set_reg(SIMDEV_REG_SCRATCH, 2);
	int fd;
	ASSERT_EQ(src.set_state(VFIO_DEVICE_STATE_STOP), 0);
	ASSERT_EQ(src.set_state(VFIO_DEVICE_STATE_STOP_COPY, &fd), 0);
	auto good = read_all(fd);
	uvfio_close(fd);
	ASSERT_GT(good.size(), 48u);

	struct Case {
		const char *name, *log;
		std::vector<unsigned char> s;
	};
	std::vector<Case> cases;
	auto bad = good;
	bad[0] ^= 1;
	cases.push_back({"magic", "bad magic", bad});
	bad = good;
	bad[4] = 9;
	cases.push_back({"version", "unsupported stream version", bad});
	bad = good;
	bad.resize(good.size() - 1);
	cases.push_back({"truncated", "truncated", bad});
	bad = std::vector<unsigned char>(good.begin(), good.begin() + 20);
	cases.push_back({"truncated in a header", "truncated", bad});
	/* CONFIG: a record header and 56 bytes of identity and sizes. */
	bad = std::vector<unsigned char>(good.begin(), good.begin() + 88);
	cases.push_back({"only the configuration", "truncated", bad});
	/* Drop the first MEM record (1 MiB + its header, after CONFIG). */
	bad = good;
	bad.erase(bad.begin() + 88, bad.begin() + 88 + 32 + (1 << 20));
	cases.push_back({"record missing", "out of sequence", bad});
	bad = good;
	bad.push_back(0);
	cases.push_back({"trailing", "trailing bytes", bad});
	bad = good;
	bad[good.size() / 2] ^= 0x40;
	cases.push_back({"flipped", "checksum mismatch", bad});

	for (auto &c : cases) {
		SCOPED_TRACE(c.name);
		LogCapture log;
		EXPECT_EQ(resume_with(dst, c.s), EINVAL);
		EXPECT_TRUE(log.contains(c.log));
		EXPECT_EQ(dst.reg(SIMDEV_REG_SCRATCH) == 1, false);
		/* The failed arc leaves RESUMING; a reset gets RUNNING. */
		ASSERT_EQ(uvfio_ioctl(dst.fd(), VFIO_DEVICE_RESET, nullptr), 0);
	}
	{
		LogCapture log;
		EXPECT_EQ(resume_with(big, good), EINVAL);
		EXPECT_TRUE(log.contains("configuration mismatch"));
	}
	/* A good stream still loads after all that. */
	ASSERT_EQ(resume_with(dst, good), 0);
	EXPECT_EQ(dst.reg(SIMDEV_REG_SCRATCH), 1u);
}

} // namespace
