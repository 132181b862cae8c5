/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * testdev's private declarations: the stream format, the device and its
 * migration file, and what its files share.
 *
 * testdev.cc: device ops, the FSM arcs, DMA logging (see its top comment
 * for what testdev is). migf.cc: BAR2 dirty tracking, the saving and
 * resuming files and the stream loader. probe.cc: the spec keys, probe
 * and remove. The files' lifecycle is drivers/common/migf.h.
 */
#ifndef UVFIO_DRIVERS_TESTDEV_H
#define UVFIO_DRIVERS_TESTDEV_H

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <uvfio/linux/vfio_pci_core.h>

#include "mig_rec.h"
#include "migf.h"

/*
 * The stream's format is in testdev.cc's top comment. Version 2 added the
 * identity to CONFIG; a version 1 stream (none) is refused at its header.
 */
constexpr u32 TD_MAGIC = 0x44545655;	/* "UVTD" */
constexpr u16 TD_VERSION = 2;
constexpr u64 TD_CHUNK = 1 << 20;	/* payload per full-image record */
constexpr u64 TD_PAGE = 4096;		/* dirty-tracking granule */

enum td_rec_type : u16 {
	TD_REC_CONFIG = 1,
	TD_REC_MEM = 2,
	TD_REC_BAR0 = 3,
	TD_REC_STATE = 4,
	TD_REC_END = 5,
};

/* Records are the in-tree drivers' shared format (mig_rec.h). */
using td_rec = mig_rec;

/* CONFIG's payload, the stream header: all must match the destination. */
struct td_config {
	struct mig_rec_ident ident;
	u64 mem_size;
	u64 state_size;
	u64 bar0_size;
	u32 msix;
	u32 reserved;
};
static_assert(sizeof(td_config) == 64);

struct testdev_device;

/*
 * Appending to the resume buffer must not zero what it is about to
 * overwrite: an allocator whose value-initialization is a no-op.
 */
template <typename T> struct uninit_allocator : std::allocator<T> {
	template <typename U> struct rebind {
		using other = uninit_allocator<U>;
	};
	uninit_allocator() = default;
	template <typename U> uninit_allocator(const uninit_allocator<U> &) {}
	template <typename U> void construct(U *) noexcept {}
	template <typename U, typename... A> void construct(U *p, A &&...a)
	{
		::new (static_cast<void *>(p)) U(std::forward<A>(a)...);
	}
};
using staging_buffer = std::vector<u8, uninit_allocator<u8>>;

/* One migration file: saving (read) or resuming (write). */
struct td_migf : migf {
	testdev_device *tdev = nullptr;

	/* Saving; initial_size is CONFIG and the full image. */
	enum { CONFIG, MEM_FULL, DIRTY, BAR0, STATE, END, DONE } phase = CONFIG;
	u64 mem_pos = 0;
	u64 state_pos = 0;

	/* Resuming: the stream so far, in the device's staging buffer. */
	staging_buffer *in = nullptr;
	u64 in_limit = 0;
	/*
	 * CONFIG, the stream header, checked as soon as it is in: until then
	 * false. A bad one sets error (and why): every later write fails with
	 * it, and so does RESUMING -> STOP.
	 */
	bool header_ok = false;
	int error = 0;
	std::string error_msg;
};

struct testdev_device {
	struct vfio_pci_core_device core_device;
	struct migf_dev mig;	/* FSM state, files, deferred reset */
	/*
	 * Where an incoming stream waits for RESUMING -> STOP, as a device
	 * buffers it in its own memory. Kept while the device is open so a
	 * second migration does not allocate it again.
	 */
	staging_buffer staging;

	u64 mem_size = 0;
	u16 errstat = 0;	/* status error bits latched at each open */
	u32 msix = 0;
	std::vector<u8> state;	/* device-internal state */

	/* BAR2 pages written since pre-copy started. */
	std::mutex dirty_lock;
	bool logging = false;	/* a DMA logging session is open */
	bool tracking = false;
	/* BAR2 was mapped writable: writes the tracker cannot see. */
	bool mapped = false;
	/*
	 * BAR2's region writes against the save path's copies of it: a page
	 * is copied whole, before or after a write, never torn by one.
	 */
	std::mutex mem_lock;
	std::vector<u64> dirty;
	u64 dirty_count = 0;
	u64 dirty_cursor = 0;
};

static inline testdev_device *to_testdev(struct vfio_device *vdev)
{
	return container_of(vdev, struct testdev_device, core_device.vdev);
}

static inline testdev_device *mig_to_testdev(struct migf_dev *md)
{
	return container_of(md, struct testdev_device, mig);
}

static inline u64 td_records(u64 bytes)
{
	return (bytes + TD_CHUNK - 1) / TD_CHUNK;
}

/* Bytes of a complete stream from STOP -> STOP_COPY: MIG_DATA_SIZE. */
static inline u64 td_stream_size(const testdev_device *tdev)
{
	u64 hdr = sizeof(td_rec);
	return hdr + sizeof(td_config) + td_records(tdev->mem_size) * hdr +
	       tdev->mem_size + hdr + tdev->core_device.bars[0].size +
	       td_records(tdev->state.size()) * hdr + tdev->state.size() +
	       hdr + sizeof(u64);
}

/* testdev.cc */
struct file *td_step(struct migf_dev *md, enum vfio_device_mig_state next);
int testdev_state_digest(struct vfio_device *vdev, u64 *out);
extern const struct vfio_device_ops testdev_ops;
extern const struct vfio_migration_ops testdev_mig_ops;
extern const struct vfio_log_ops testdev_log_ops;
extern const struct pci_error_handlers testdev_err_handlers;

/* migf.cc */
extern const struct migf_dev_ops td_migf_ops;
/* A region write reached BAR2 [off, off + len): resend it if tracking. */
void td_mark_dirty(testdev_device *tdev, u64 off, u64 len);

#endif /* UVFIO_DRIVERS_TESTDEV_H */
