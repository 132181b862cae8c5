/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The record stream the in-tree sim drivers (testdev, simnic) share for
 * their migration data: each record is a 32-byte header and a payload,
 * the header's hash an XXH3-64 of the payload seeded with the XXH3-64 of
 * the header's first 24 bytes, so that header and payload vouch for each
 * other. The saving side builds records one at a time on demand
 * (struct mig_rec_writer); each driver has its own record types, magic
 * and loader.
 */
#ifndef UVFIO_DRIVERS_MIG_REC_H
#define UVFIO_DRIVERS_MIG_REC_H

#include <cstddef>
#include <vector>

#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio.h>

#include <xxhash.h>
#if defined(__x86_64__)
/*
 * Debian's libxxhash is built for plain SSE2; its _dispatch entry points
 * (which this header substitutes for XXH3_*) pick AVX2 or AVX-512 at run
 * time. Hashing every payload on both ends cost a third of a stop-copy
 * without them.
 */
#include <xxh_x86dispatch.h>
#endif

struct mig_rec {
	u32 magic;
	u16 version;
	u16 type;
	u64 offset;	/* where the payload belongs, by record type */
	u32 length;	/* payload bytes after the header */
	u32 seq;	/* 0, 1, 2, ... */
	u64 hash;
};
static_assert(sizeof(mig_rec) == 32);

u64 mig_rec_hash(const mig_rec &r, const void *payload);

/*
 * Who saved a stream. Record 0 of every in-tree stream (its CONFIG, the
 * stream header) opens with this, then the driver's configuration; a
 * resuming file compares both with its own device as soon as record 0 is
 * whole and refuses the write that completed it if they differ, so a
 * stream from another device, driver or configuration is stopped before
 * any of it is taken.
 */
struct mig_rec_ident {
	u16 vendor;	/* PCI vendor and device ID of the function */
	u16 device;
	u32 reserved;	/* 0 */
	char driver[24];	/* the driver's spec name, NUL-padded */
};
static_assert(sizeof(mig_rec_ident) == 32);

/* The identity of a device driven through pci_core, by its driver. */
struct vfio_pci_core_device;
void mig_rec_ident_init(struct mig_rec_ident *id,
			const struct vfio_pci_core_device *core);
/*
 * Whether a stream's identity (theirs) is this device's (mine); if not,
 * the difference in msg for the log line.
 */
bool mig_rec_ident_match(const struct mig_rec_ident *theirs,
			 const struct mig_rec_ident *mine, char *msg,
			 size_t len);

/*
 * The errno for a stream header that is malformed, foreign or from
 * another configuration, or of a stream version this driver does not
 * read (an older one carries no identity): -EINVAL, from the write that
 * completes the header, as the kernel's hisi_acc and mtty drivers refuse
 * a resuming stream whose magic, version, device ID or configuration is
 * not theirs. (mlx5's -EOPNOTSUPP is for a header tag it does not know,
 * a newer feature, not a stream from another device.) It is also the
 * errno of every other stream problem, at RESUMING -> STOP.
 */
constexpr int MIG_REC_BAD_STREAM = -EINVAL;

/*
 * The saving side: the record being read, and what was read so far. A
 * record is out (header, and payload unless ref) followed by ref_len bytes
 * at ref; out_off counts through both.
 */
struct mig_rec_writer {
	u32 magic = 0;
	u16 version = 0;
	u32 seq = 0;
	std::vector<u8> out;
	const u8 *ref = nullptr;
	u32 ref_len = 0;
	size_t out_off = 0;
	u64 bytes_read = 0;
};

/* Start the next record; returns where its length payload bytes go. */
u8 *mig_rec_begin(mig_rec_writer *w, u16 type, u64 offset, u32 length);
/* Hash the record started last, once its payload is in place. */
void mig_rec_seal(mig_rec_writer *w);
/* Both, with the payload copied from payload. */
void mig_rec_emit(mig_rec_writer *w, u16 type, u64 offset,
		  const void *payload, u32 length);
/*
 * A record whose payload is read straight from payload, without a copy
 * into the writer, and handed to the reader with
 * uvfio_copy_to_user_stable() (by reference until the reader copies it):
 * only for memory that holds still while the device is stopped and is not
 * freed under the stream (device memory in STOP_COPY). Hashed now: memory
 * that changes anyway makes the destination reject the record, never take
 * it.
 */
void mig_rec_emit_ref(mig_rec_writer *w, u16 type, u64 offset,
		      const void *payload, u32 length);
/* Bytes of the current record not read yet. */
size_t mig_rec_unread(const mig_rec_writer *w);
/* Drop the current record and its buffer (the file is disabled). */
void mig_rec_release(mig_rec_writer *w);

/*
 * A saving file's read: hand out records, calling produce(arg) for the
 * next one when the current one is read; produce returns false when there
 * is nothing to send now. Returns the bytes copied, or, with none: 0 when
 * final (end of stream), -ENOMSG otherwise (more may come), -EFAULT.
 */
ssize_t mig_rec_read(mig_rec_writer *w, char __user *buf, size_t len,
		     bool (*produce)(void *arg), void *arg, bool final);

/*
 * PRECOPY_INFO from the writer: initial_bytes is what is unread of the
 * first initial_size bytes; dirty_bytes is what is produced and unread
 * past them, plus dirty_estimate (what the driver still has to produce).
 */
void mig_rec_precopy_info(const mig_rec_writer *w, u64 initial_size,
			  u64 dirty_estimate, struct vfio_precopy_info *info);

#endif /* UVFIO_DRIVERS_MIG_REC_H */
