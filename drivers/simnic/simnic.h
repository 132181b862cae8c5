/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * simnic and simmin: the variant drivers of the simulated DMA function
 * (<uvfio/sim/simdev.h>). simnic offers STOP_COPY, P2P and PRE_COPY and
 * DMA logging; simmin is the same code with STOP_COPY only and no logging
 * (its guest dirty pages come from the IOMMU).
 *
 * main.cc: device ops, the FSM arcs, DMA logging, probe. migf.cc: the
 * migration files' content and the stream format. The files' lifecycle
 * (FSM loop, deferred reset, saving read and PRECOPY_INFO) is the one
 * testdev shares, drivers/common/migf.h. brokennic.h: the conformance
 * suite's negative control, test-only.
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
#include "migf.h"

/*
 * The stream: records (struct mig_rec, drivers/common/mig_rec.h) with
 * magic "UVSN". CONFIG first, the stream header: who saved it (struct
 * mig_rec_ident: vendor, device, driver) and the configuration the
 * destination must match; then MEM records (a run of device memory at
 * offset, at most 1 MiB), one STATE (struct simdev_state), END. The
 * destination refuses the write that completes a bad CONFIG record.
 *
 * Version 3 added the identity. A version 2 stream (no identity) is
 * refused like a foreign one: it cannot say which of simnic, simmin or
 * another driver saved it.
 */
constexpr u32 SN_MAGIC = 0x4e535655;	/* "UVSN" */
constexpr u16 SN_VERSION = 3;
constexpr u32 SN_MEM_REC_MAX = 1 << 20;

enum sn_rec_type : u16 {
	SN_REC_CONFIG = 1,
	SN_REC_MEM = 2,
	SN_REC_STATE = 3,
	SN_REC_END = 4,
};

/* CONFIG's payload; all of it must match the destination's. */
struct sn_config {
	struct mig_rec_ident ident;
	u64 mem_size;
	u32 msix;
	u32 page_size;	/* MEM records are runs of whole pages */
	u32 state_len;	/* sizeof(struct simdev_state) */
	u32 reserved;
};
static_assert(sizeof(sn_config) == 56);

struct simnic_device;

/* One migration file: saving (read) or resuming (write). */
struct simnic_migf : migf {
	simnic_device *snic = nullptr;

	/* Saving; initial_size is CONFIG and the full image. */
	enum { CONFIG, MEM_FULL, DIRTY, STATE, END, DONE } phase = CONFIG;
	u64 mem_pos = 0;

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
	/*
	 * The problem was in CONFIG, the stream header: this write and every
	 * later one fail with error, so endless or foreign input stops there.
	 * A problem further on is reported at RESUMING -> STOP.
	 */
	bool refused = false;
	u64 bytes_in = 0;

	~simnic_migf() override { XXH3_freeState(hash); }
};

struct simnic_device {
	struct vfio_pci_core_device core_device;
	struct simdev sd;
	struct migf_dev mig;	/* FSM state, files, deferred reset */

	/*
	 * Test-only, read by brokennic.h alone: the defects the negative
	 * control's bug= key switched on. simnic and simmin leave it 0.
	 */
	unsigned int brokennic_bugs = 0;
};

static inline simnic_device *to_simnic(struct vfio_device *vdev)
{
	return container_of(vdev, simnic_device, core_device.vdev);
}

static inline simnic_device *mig_to_simnic(struct migf_dev *md)
{
	return container_of(md, simnic_device, mig);
}

/* main.cc */
/* One arc of the FSM (migf_dev_ops.step). */
struct file *simnic_step(struct migf_dev *md, enum vfio_device_mig_state next);
int simnic_log_start(struct vfio_device *vdev, struct rb_root_cached *ranges,
		     u32 nnodes, u64 *page_size);
int simnic_log_stop(struct vfio_device *vdev);
extern const struct vfio_log_ops simnic_log_ops;

/* What tells the drivers built on this code apart. */
struct simnic_variant {
	const struct vfio_device_ops *ops;
	u16 device_id;
	bool full;	/* P2P, PRE_COPY and DMA logging, or STOP_COPY only */
	const struct migf_dev_ops *mig;
	const struct vfio_log_ops *log_ops;	/* with full */
};
/* Probe a function as variant v: 0 or -errno. */
int simnic_probe_variant(struct pci_dev *pdev, const struct uvfio_spec *spec,
			 const struct simnic_variant *v);
void simnic_remove(struct pci_dev *pdev);
extern const struct vfio_device_ops simnic_ops;
extern const struct pci_error_handlers simnic_err_handlers;

/* migf.cc; with state_mutex held, or as migf.h says for the hooks. */
extern const struct migf_dev_ops simnic_migf_ops;
/* An honest estimate of the STOP_COPY bytes from the present state. */
u64 simnic_stop_copy_size(simnic_device *snic);
/* simnic_migf_ops' members, for a variant that wraps some of them. */
struct file *simnic_open_save(struct migf_dev *md, bool precopy);
struct file *simnic_open_resume(struct migf_dev *md);
/* Check that the stream was whole, then load the device state. */
int simnic_load(struct migf *f);
bool simnic_produce(struct migf *f);
void simnic_precopy_info(struct migf *f, struct vfio_precopy_info *info);
int simnic_track_start(struct migf_dev *md);
void simnic_track_flush(struct migf_dev *md);
void simnic_files_disabled(struct migf_dev *md);
void simnic_mig_reset(struct migf_dev *md);

#endif /* UVFIO_DRIVERS_SIMNIC_H */
