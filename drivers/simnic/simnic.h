/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * simnic and simmin: the variant drivers of the simulated DMA function
 * (<uvfio/sim/simdev.h>). simnic offers STOP_COPY, P2P and PRE_COPY and
 * DMA logging; simmin is the same code with STOP_COPY only and no logging
 * (its guest dirty pages come from the IOMMU).
 *
 * main.cc: device ops, the FSM, DMA logging, probe. migf.cc: the
 * migration files and the stream format.
 *
 * Locking as in the kernel's mlx5 driver: state_mutex (the FSM) is taken
 * before a migration file's lock; reset_done defers to the state_mutex
 * holder when it cannot take it (the deferred-reset pattern).
 */
#ifndef UVFIO_DRIVERS_SIMNIC_H
#define UVFIO_DRIVERS_SIMNIC_H

#include <mutex>
#include <string>
#include <vector>

#include <uvfio/linux/vfio_pci_simdev.h>


#include "mig_rec.h"

/*
 * The stream: records (struct mig_rec, drivers/common/mig_rec.h) with
 * magic "UVSN". CONFIG first (what the destination must match), MEM
 * records (a run of device memory at offset, at most 1 MiB), one STATE
 * (struct simdev_state), END.
 */
constexpr u32 SN_MAGIC = 0x4e535655;	/* "UVSN" */
constexpr u16 SN_VERSION = 2;
constexpr u32 SN_MEM_REC_MAX = 1 << 20;

enum sn_rec_type : u16 {
	SN_REC_CONFIG = 1,
	SN_REC_MEM = 2,
	SN_REC_STATE = 3,
	SN_REC_END = 4,
};

struct sn_config {
	u64 mem_size;
	u32 msix;
	u32 page_size;	/* MEM records are runs of whole pages */
	u32 state_len;	/* sizeof(struct simdev_state) */
	u32 reserved;
};
static_assert(sizeof(sn_config) == 24);

struct simnic_device;

/* One migration file: saving (read) or resuming (write). */
struct simnic_migf {
	simnic_device *snic = nullptr;
	struct file *filp = nullptr;
	struct mutex lock;
	bool disabled = false;

	/* Saving. */
	bool precopy = false;	/* opened in PRE_COPY: tracks dirty memory */
	bool final = false;	/* the device is stopped: finish the stream */
	enum { CONFIG, MEM_FULL, DIRTY, STATE, END, DONE } phase = CONFIG;
	u64 mem_pos = 0;
	mig_rec_writer w;	/* the record being read */
	u64 initial_size = 0;	/* CONFIG and the full image, in bytes */

	/*
	 * Resuming: records are parsed in place as they arrive. A MEM
	 * payload goes straight into device memory and is hashed while it
	 * is still in cache; the others are small and kept in small.
	 */
	mig_rec hdr = {};	/* the header being received */
	size_t hdr_have = 0;	/* bytes of hdr received */
	bool in_payload = false; /* hdr is whole and checked */
	u32 pay_have = 0;	/* payload bytes received */
	XXH3_state_t *hash = nullptr;	/* over the payload so far */
	u8 small[sizeof(struct simdev_state) + sizeof(sn_config)] = {};
	u32 expect_seq = 0;
	bool have_state = false;
	bool ended = false;
	struct simdev_state state = {};
	int error = 0;
	std::string error_msg;	/* the first problem, for the log line */
	u64 bytes_in = 0;

	~simnic_migf() { XXH3_freeState(hash); }
};

/*
 * Known defects, one bit each, that the conformance suite's negative
 * control (tests/conformance: this driver built as the "brokennic" plugin,
 * bug=NAME) switches on to prove each check can fail. The in-tree
 * simnic and simmin never set them: they have no bug= key.
 */
enum simnic_bug {
	SIMNIC_BUG_ERRNO = 1 << 0,	 /* PRECOPY_INFO outside pre-copy: ENOTTY */
	SIMNIC_BUG_STREAM = 1 << 1,	 /* saving file left enabled on leaving */
	SIMNIC_BUG_DIRTY = 1 << 2,	 /* each REPORT drops its last dirty page */
	SIMNIC_BUG_PRECOPY_INFO = 1 << 3, /* initial_bytes grows as it is read */
};

struct simnic_device {
	struct vfio_pci_core_device core_device;
	unsigned int bugs = 0;		/* enum simnic_bug; 0 but in brokennic */
	struct simdev sd;
	struct mutex state_mutex;
	enum vfio_device_mig_state mig_state = VFIO_DEVICE_STATE_RUNNING;
	std::mutex reset_lock;
	bool deferred_reset = false;
	simnic_migf *saving_migf = nullptr;
	simnic_migf *resuming_migf = nullptr;
};

static inline simnic_device *to_simnic(struct vfio_device *vdev)
{
	return container_of(vdev, simnic_device, core_device.vdev);
}

/* migf.cc; all with state_mutex held. */
struct file *simnic_open_save(simnic_device *snic, bool precopy);
struct file *simnic_open_resume(simnic_device *snic);
/* The device stopped under a pre-copy file: send what is left and end. */
void simnic_save_finalize(simnic_device *snic);
/* Check that the stream was whole, then load the device state. */
int simnic_resume_finish(simnic_device *snic);
void simnic_disable_fds(simnic_device *snic);
/* An honest estimate of the STOP_COPY bytes from the present state. */
u64 simnic_stop_copy_size(simnic_device *snic);

void simnic_state_mutex_unlock(simnic_device *snic);

#endif /* UVFIO_DRIVERS_SIMNIC_H */
