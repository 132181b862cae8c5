/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/sim/simdev_regs.h> - the programming model of the simulated DMA
 * function, as a guest driver sees it: BAR0 registers, the descriptor ring
 * in guest memory and the descriptor format. C, so that user-side programs
 * (tests, the workload generator, tools) can include it.
 *
 * BAR0 (4 KiB, little-endian 32-bit registers; 64-bit counters are two
 * registers, LO first, and read consistently with one 8-byte access):
 *
 *   ID          RO   SIMDEV_ID_VALUE
 *   VERSION     RO   SIMDEV_VERSION_VALUE
 *   CTRL        RW   ENABLE: the engine may fetch descriptors
 *   STATUS      RO/W1C  ACTIVE (RO), FAULT and BAD_DESC (write 1 to clear;
 *                    the engine halts while either is set), QUIESCED (RO)
 *   IRQ_CTRL    RW   CMPL_EN, FAULT_EN, completion vector (bits 8-15),
 *                    fault vector (bits 16-23)
 *   RING_SIZE   RW   entries, a power of two up to SIMDEV_RING_MAX; 0: off
 *   RING_BASE   RW   IOVA of the ring (64-bit, 64-byte aligned)
 *   RING_HEAD   RO   descriptors fetched by the device
 *   RING_TAIL   RW   descriptors posted by the driver
 *   DOORBELL    WO   write the new tail: sets RING_TAIL and wakes the engine
 *   RING_DONE   RO   descriptors completed (their status written back)
 *   FAULT_IOVA  RO   the IOVA of the last DMA fault
 *   COUNTER     RO   descriptors completed since reset (64-bit)
 *   DMA_BYTES   RO   bytes the device wrote to guest memory (64-bit)
 *   DMA_WRITES  RO   DMA writes to guest memory, the device's trace (64-bit)
 *   LAST_WRITE_NS RO CLOCK_MONOTONIC time of the last DMA write (64-bit)
 *   ERRORS      RO   faults and bad descriptors since reset
 *   SCRATCH     RW   no effect
 *
 * Indices are free-running 32-bit counters; slot = index & (size - 1). A
 * driver may reuse a slot once RING_DONE has passed it: the device fetches
 * ahead (up to SIMDEV_PREFETCH descriptors) and keeps fetched descriptors
 * inside until it executes them.
 *
 * Addresses in a descriptor are guest IOVAs, or offsets into device memory
 * (BAR2) when the SRC_DEV/DST_DEV flag says so.
 */
#ifndef UVFIO_SIM_SIMDEV_REGS_H
#define UVFIO_SIM_SIMDEV_REGS_H

#include <linux/types.h>

#define SIMDEV_REG_ID 0x00
#define SIMDEV_REG_VERSION 0x04
#define SIMDEV_REG_CTRL 0x08
#define  SIMDEV_CTRL_ENABLE 0x1u
#define SIMDEV_REG_STATUS 0x0c
#define  SIMDEV_STATUS_ACTIVE 0x1u
#define  SIMDEV_STATUS_FAULT 0x2u
#define  SIMDEV_STATUS_BAD_DESC 0x4u
#define  SIMDEV_STATUS_QUIESCED 0x8u
#define SIMDEV_REG_IRQ_CTRL 0x10
#define  SIMDEV_IRQ_CMPL_EN 0x1u
#define  SIMDEV_IRQ_FAULT_EN 0x2u
#define  SIMDEV_IRQ_CMPL_VEC(x) (((x) >> 8) & 0xffu)
#define  SIMDEV_IRQ_FAULT_VEC(x) (((x) >> 16) & 0xffu)
#define SIMDEV_REG_RING_SIZE 0x14
#define SIMDEV_REG_RING_BASE_LO 0x18
#define SIMDEV_REG_RING_BASE_HI 0x1c
#define SIMDEV_REG_RING_HEAD 0x20
#define SIMDEV_REG_RING_TAIL 0x24
#define SIMDEV_REG_DOORBELL 0x28
#define SIMDEV_REG_RING_DONE 0x2c
#define SIMDEV_REG_FAULT_IOVA_LO 0x30
#define SIMDEV_REG_FAULT_IOVA_HI 0x34
#define SIMDEV_REG_COUNTER_LO 0x38
#define SIMDEV_REG_COUNTER_HI 0x3c
#define SIMDEV_REG_DMA_BYTES_LO 0x40
#define SIMDEV_REG_DMA_BYTES_HI 0x44
#define SIMDEV_REG_DMA_WRITES_LO 0x48
#define SIMDEV_REG_DMA_WRITES_HI 0x4c
#define SIMDEV_REG_LAST_WRITE_NS_LO 0x50
#define SIMDEV_REG_LAST_WRITE_NS_HI 0x54
#define SIMDEV_REG_ERRORS 0x58
#define SIMDEV_REG_SCRATCH 0x5c
#define SIMDEV_NUM_REGS 24	/* 0x00 - 0x5f */

#define SIMDEV_ID_VALUE 0x44535655u	/* "UVSD" */
#define SIMDEV_VERSION_VALUE 1u

#define SIMDEV_BAR0_SIZE 4096
/* The MSI-X table and PBA live in BAR0, owned by the host (not the user). */
#define SIMDEV_MSIX_TABLE_OFFSET 0x800
#define SIMDEV_MSIX_PBA_OFFSET 0xc00
#define SIMDEV_MSIX_MAX 64

#define SIMDEV_RING_MAX 4096
#define SIMDEV_PREFETCH 4
#define SIMDEV_DESC_LEN_MAX (16u << 20)

enum simdev_opcode {
	SIMDEV_OP_NOP = 0,
	SIMDEV_OP_COPY = 1,		/* len bytes from src to dst */
	SIMDEV_OP_FILL = 2,		/* dst = len bytes of (arg & 0xff) */
	SIMDEV_OP_WRITE_PATTERN = 3,	/* dst = simdev_pattern(arg, ...) */
	SIMDEV_OP_READ_CHECKSUM = 4,	/* result = XXH3-64 of src, seed arg */
};

#define SIMDEV_DESC_IRQ 0x1u		/* completion interrupt */
#define SIMDEV_DESC_SRC_DEV 0x2u	/* src is a device-memory offset */
#define SIMDEV_DESC_DST_DEV 0x4u	/* dst is a device-memory offset */
#define SIMDEV_DESC_FLAGS 0x7u

/* Written back by the device into the descriptor's status. */
enum simdev_desc_status {
	SIMDEV_DESC_PENDING = 0,	/* the driver posts with 0 */
	SIMDEV_DESC_DONE = 1,
	SIMDEV_DESC_FAULT = 2,		/* a DMA fault; the engine halted */
	SIMDEV_DESC_BAD = 3,		/* bad opcode, flags or range */
};

/* One ring entry, 64 bytes, little-endian. */
struct simdev_desc {
	__u32 opcode;
	__u32 flags;
	__u64 src;
	__u64 dst;
	__u64 len;
	__u64 arg;	/* fill byte, pattern seed or checksum seed */
	__u64 result;	/* written by the device: the checksum */
	__u32 status;	/* written by the device, last */
	__u32 seq;	/* written by the device: its COUNTER at completion */
	__u64 reserved;
};

/*
 * The WRITE_PATTERN content: 8-byte words, word i at byte offset 8*i of the
 * destination is a splitmix64 of (seed + i). A trailing partial word takes
 * the low bytes.
 */
static inline __u64 simdev_pattern_word(__u64 seed, __u64 i)
{
	__u64 z = seed + (i + 1) * 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

#endif /* UVFIO_SIM_SIMDEV_REGS_H */
