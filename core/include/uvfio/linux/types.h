/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Kernel scalar types for driver code, so that a driver reads as it would in
 * drivers/vfio/. __user marks pointers into the caller's memory: in uvfio they
 * are plain pointers, but drivers must still go through copy_{from,to}_user.
 */
#ifndef UVFIO_LINUX_TYPES_H
#define UVFIO_LINUX_TYPES_H

#include <cstddef>
#include <cstdint>
#include <sys/types.h>

#include <linux/types.h>

using u8 = std::uint8_t;
using u16 = std::uint16_t;
using u32 = std::uint32_t;
using u64 = std::uint64_t;
using s8 = std::int8_t;
using s16 = std::int16_t;
using s32 = std::int32_t;
using s64 = std::int64_t;
/* loff_t comes from glibc (<sys/types.h> with _GNU_SOURCE). */
using fmode_t = unsigned int;
using gfp_t = unsigned int;
using __poll_t = unsigned int;
/* An address a device uses for DMA: an IOVA behind an IOMMU. */
using dma_addr_t = u64;

#define __user
#define __must_check [[nodiscard]]

#define GFP_KERNEL 0u
#define GFP_KERNEL_ACCOUNT 0u

/* Access a mapping or a pin allows (the kernel's <linux/iommu.h>). */
#define IOMMU_READ (1 << 0)
#define IOMMU_WRITE (1 << 1)

#endif /* UVFIO_LINUX_TYPES_H */
