/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * uvfio/uapi/vfio.h - the VFIO uAPI as the whole tree sees it.
 *
 * Includes the system <linux/vfio.h> and adds the definitions that newer
 * kernels have and Debian 12's 6.1 headers lack, and those of the v1
 * migration region that newer headers dropped. Every addition is guarded so
 * that a newer system header, which already has it, still builds: values and
 * layouts equal upstream's and the static_asserts at the bottom pin them.
 *
 * Usable from C and C++.
 */
#ifndef UVFIO_UAPI_VFIO_H
#define UVFIO_UAPI_VFIO_H

#include <linux/types.h>
#include <linux/vfio.h>

/*
 * Linux 6.2: migration pre-copy. The new device states are members of
 * enum vfio_device_mig_state upstream; an enum cannot be extended, so with an
 * older header they become macros of the same name and value. The ioctl macro
 * arrived in the same release, so it is the guard for the whole group.
 */
#ifndef VFIO_MIG_GET_PRECOPY_INFO
#define VFIO_MIGRATION_PRE_COPY (1 << 2)

#define VFIO_DEVICE_STATE_PRE_COPY 6
#define VFIO_DEVICE_STATE_PRE_COPY_P2P 7

struct vfio_precopy_info {
	__u32 argsz;
	__u32 flags;
	__aligned_u64 initial_bytes;
	__aligned_u64 dirty_bytes;
};

#define VFIO_MIG_GET_PRECOPY_INFO _IO(VFIO_TYPE, VFIO_BASE + 21)
#endif /* VFIO_MIG_GET_PRECOPY_INFO */

/* Linux 6.3: estimated size of the STOP_COPY stream, GET in any state. */
#ifndef VFIO_DEVICE_FEATURE_MIG_DATA_SIZE
struct vfio_device_feature_mig_data_size {
	__aligned_u64 stop_copy_length;
};

#define VFIO_DEVICE_FEATURE_MIG_DATA_SIZE 9
#endif

/*
 * Migration protocol v1 (Linux 5.8 to 5.17; removed from the uAPI headers
 * after 6.1): the migration region and struct vfio_device_migration_info at
 * its offset 0. uvfio offers the region over v2 drivers
 * (Documentation/migration-v1.md). The state bits use the names of the last
 * headers that had them (QEMU 7.2's too), which do not clash with enum
 * vfio_device_mig_state; the struct's guard is the RUNNING bit's macro.
 */
#ifndef VFIO_REGION_TYPE_MIGRATION_DEPRECATED
#define VFIO_REGION_TYPE_MIGRATION_DEPRECATED (3)
#endif
#ifndef VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED
#define VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED (1)
#endif

#ifndef VFIO_DEVICE_STATE_V1_RUNNING
struct vfio_device_migration_info {
	__u32 device_state;
#define VFIO_DEVICE_STATE_V1_STOP (0)
#define VFIO_DEVICE_STATE_V1_RUNNING (1 << 0)
#define VFIO_DEVICE_STATE_V1_SAVING (1 << 1)
#define VFIO_DEVICE_STATE_V1_RESUMING (1 << 2)
#define VFIO_DEVICE_STATE_MASK                                               \
	(VFIO_DEVICE_STATE_V1_RUNNING | VFIO_DEVICE_STATE_V1_SAVING |        \
	 VFIO_DEVICE_STATE_V1_RESUMING)
/* RESUMING only on its own (with bits outside the mask ignored). */
#define VFIO_DEVICE_STATE_VALID(state)                                       \
	((state) & VFIO_DEVICE_STATE_V1_RESUMING                             \
		 ? ((state) & VFIO_DEVICE_STATE_MASK) ==                     \
			   VFIO_DEVICE_STATE_V1_RESUMING                     \
		 : 1)
#define VFIO_DEVICE_STATE_IS_ERROR(state)                                    \
	(((state) & VFIO_DEVICE_STATE_MASK) ==                               \
	 (VFIO_DEVICE_STATE_V1_SAVING | VFIO_DEVICE_STATE_V1_RESUMING))
#define VFIO_DEVICE_STATE_SET_ERROR(state)                                   \
	(((state) & ~VFIO_DEVICE_STATE_MASK) | VFIO_DEVICE_STATE_V1_SAVING | \
	 VFIO_DEVICE_STATE_V1_RESUMING)
	__u32 reserved;
	__u64 pending_bytes;
	__u64 data_offset;
	__u64 data_size;
};
#endif /* VFIO_DEVICE_STATE_V1_RUNNING */

/*
 * The NDMA bit of the v1 device_state, from the RFC "vfio: Update/Clarify
 * migration uAPI, add NDMA state" (December 2021), which was never merged:
 * the device starts no new DMA and raises no interrupt, and what is in
 * flight completes before the write of device_state returns. Offered only
 * where VFIO_DEVICE_GET_REGION_INFO on the migration region carries the
 * capability below, a bare struct vfio_info_cap_header (version 1, no
 * payload). The id is uvfio's choice: 6 is the first region-info
 * capability id no kernel has used. Both names are uvfio's.
 */
#ifndef VFIO_DEVICE_STATE_V1_NDMA
#define VFIO_DEVICE_STATE_V1_NDMA (1 << 3)
#endif
#ifndef VFIO_REGION_INFO_CAP_MIG_NDMA
#define VFIO_REGION_INFO_CAP_MIG_NDMA 6
#endif

/* The highest device state the uAPI defines (used to size tables). */
#define UVFIO_DEVICE_STATE_MAX VFIO_DEVICE_STATE_PRE_COPY_P2P
#define UVFIO_DEVICE_NUM_STATES (UVFIO_DEVICE_STATE_MAX + 1)

/*
 * Pin values and layouts to upstream's. C11 and C++ both have a
 * static_assert spelling; pick the one the language has.
 */
#ifdef __cplusplus
#include <cstddef>
#define UVFIO_UAPI_ASSERT(cond, msg) static_assert(cond, msg)
#else
#include <stddef.h>
#define UVFIO_UAPI_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

UVFIO_UAPI_ASSERT(VFIO_MIGRATION_STOP_COPY == 1, "VFIO_MIGRATION_STOP_COPY");
UVFIO_UAPI_ASSERT(VFIO_MIGRATION_P2P == 2, "VFIO_MIGRATION_P2P");
UVFIO_UAPI_ASSERT(VFIO_MIGRATION_PRE_COPY == 4, "VFIO_MIGRATION_PRE_COPY");
UVFIO_UAPI_ASSERT(VFIO_DEVICE_STATE_ERROR == 0, "ERROR state value");
UVFIO_UAPI_ASSERT(VFIO_DEVICE_STATE_STOP == 1, "STOP state value");
UVFIO_UAPI_ASSERT(VFIO_DEVICE_STATE_RUNNING == 2, "RUNNING state value");
UVFIO_UAPI_ASSERT(VFIO_DEVICE_STATE_STOP_COPY == 3, "STOP_COPY state value");
UVFIO_UAPI_ASSERT(VFIO_DEVICE_STATE_RESUMING == 4, "RESUMING state value");
UVFIO_UAPI_ASSERT(VFIO_DEVICE_STATE_RUNNING_P2P == 5, "RUNNING_P2P value");
UVFIO_UAPI_ASSERT(VFIO_DEVICE_STATE_PRE_COPY == 6, "PRE_COPY state value");
UVFIO_UAPI_ASSERT(VFIO_DEVICE_STATE_PRE_COPY_P2P == 7, "PRE_COPY_P2P value");

UVFIO_UAPI_ASSERT(sizeof(struct vfio_precopy_info) == 24, "precopy_info size");
UVFIO_UAPI_ASSERT(offsetof(struct vfio_precopy_info, flags) == 4, "flags");
UVFIO_UAPI_ASSERT(offsetof(struct vfio_precopy_info, initial_bytes) == 8,
		  "initial_bytes offset");
UVFIO_UAPI_ASSERT(offsetof(struct vfio_precopy_info, dirty_bytes) == 16,
		  "dirty_bytes offset");
UVFIO_UAPI_ASSERT(VFIO_MIG_GET_PRECOPY_INFO == ((';' << 8) | 121),
		  "VFIO_MIG_GET_PRECOPY_INFO number");

UVFIO_UAPI_ASSERT(sizeof(struct vfio_device_feature_mig_data_size) == 8,
		  "mig_data_size size");
UVFIO_UAPI_ASSERT(VFIO_DEVICE_FEATURE_MIG_DATA_SIZE == 9, "MIG_DATA_SIZE index");

UVFIO_UAPI_ASSERT(sizeof(struct vfio_device_feature) == 8, "feature header");
UVFIO_UAPI_ASSERT(sizeof(struct vfio_device_feature_mig_state) == 8,
		  "mig_state size");
UVFIO_UAPI_ASSERT(offsetof(struct vfio_device_feature_mig_state, data_fd) == 4,
		  "mig_state data_fd offset");
UVFIO_UAPI_ASSERT(sizeof(struct vfio_device_feature_migration) == 8,
		  "feature_migration size");
UVFIO_UAPI_ASSERT(sizeof(struct vfio_device_feature_dma_logging_control) == 24,
		  "dma_logging_control size");
UVFIO_UAPI_ASSERT(sizeof(struct vfio_device_feature_dma_logging_range) == 16,
		  "dma_logging_range size");
UVFIO_UAPI_ASSERT(sizeof(struct vfio_device_feature_dma_logging_report) == 32,
		  "dma_logging_report size");
/* vfio_device_info grew a trailing pad after 6.1; pin what 6.1 has. */
UVFIO_UAPI_ASSERT(offsetof(struct vfio_device_info, num_irqs) == 12,
		  "device_info num_irqs offset");
UVFIO_UAPI_ASSERT(offsetof(struct vfio_device_info, cap_offset) == 16,
		  "device_info cap_offset offset");
UVFIO_UAPI_ASSERT(sizeof(struct vfio_region_info) == 32, "region_info size");
UVFIO_UAPI_ASSERT(sizeof(struct vfio_irq_info) == 16, "irq_info size");
UVFIO_UAPI_ASSERT(sizeof(struct vfio_irq_set) == 20, "irq_set size");

UVFIO_UAPI_ASSERT(VFIO_REGION_TYPE_MIGRATION_DEPRECATED == 3,
		  "v1 migration region type");
UVFIO_UAPI_ASSERT(VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED == 1,
		  "v1 migration region subtype");
UVFIO_UAPI_ASSERT(VFIO_DEVICE_STATE_V1_STOP == 0, "v1 STOP");
UVFIO_UAPI_ASSERT(VFIO_DEVICE_STATE_V1_RUNNING == 1, "v1 RUNNING bit");
UVFIO_UAPI_ASSERT(VFIO_DEVICE_STATE_V1_SAVING == 2, "v1 SAVING bit");
UVFIO_UAPI_ASSERT(VFIO_DEVICE_STATE_V1_RESUMING == 4, "v1 RESUMING bit");
UVFIO_UAPI_ASSERT(VFIO_DEVICE_STATE_MASK == 7, "v1 state mask");
UVFIO_UAPI_ASSERT((VFIO_DEVICE_STATE_V1_NDMA & VFIO_DEVICE_STATE_MASK) == 0,
		  "NDMA is outside the v1 mask");
UVFIO_UAPI_ASSERT(VFIO_REGION_INFO_CAP_MIG_NDMA != VFIO_REGION_INFO_CAP_SPARSE_MMAP &&
			  VFIO_REGION_INFO_CAP_MIG_NDMA != VFIO_REGION_INFO_CAP_TYPE &&
			  VFIO_REGION_INFO_CAP_MIG_NDMA !=
				  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE &&
			  VFIO_REGION_INFO_CAP_MIG_NDMA !=
				  VFIO_REGION_INFO_CAP_NVLINK2_SSATGT &&
			  VFIO_REGION_INFO_CAP_MIG_NDMA !=
				  VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD,
		  "NDMA capability id is unused");
UVFIO_UAPI_ASSERT(sizeof(struct vfio_device_migration_info) == 32,
		  "migration_info size");
UVFIO_UAPI_ASSERT(offsetof(struct vfio_device_migration_info, device_state) == 0,
		  "device_state offset");
UVFIO_UAPI_ASSERT(offsetof(struct vfio_device_migration_info, reserved) == 4,
		  "reserved offset");
UVFIO_UAPI_ASSERT(offsetof(struct vfio_device_migration_info, pending_bytes) == 8,
		  "pending_bytes offset");
UVFIO_UAPI_ASSERT(offsetof(struct vfio_device_migration_info, data_offset) == 16,
		  "data_offset offset");
UVFIO_UAPI_ASSERT(offsetof(struct vfio_device_migration_info, data_size) == 24,
		  "data_size offset");
UVFIO_UAPI_ASSERT(sizeof(struct vfio_region_info_cap_type) == 16,
		  "region_info_cap_type size");
UVFIO_UAPI_ASSERT(sizeof(struct vfio_region_sparse_mmap_area) == 16,
		  "sparse_mmap_area size");
UVFIO_UAPI_ASSERT(sizeof(struct vfio_region_info_cap_sparse_mmap) == 16,
		  "cap_sparse_mmap header size");

#undef UVFIO_UAPI_ASSERT

#endif /* UVFIO_UAPI_VFIO_H */
