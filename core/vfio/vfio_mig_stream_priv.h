/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Core-private: the inside of a migration data stream, shared by its three
 * files: vfio_mig_stream.cc (the stream's lifecycle: open, drain, quiesce,
 * end), vfio_mig_stream_pump.cc (the pump thread that moves bytes between
 * the socketpair and the driver's file) and vfio_mig_stream_file.cc (the
 * file userspace holds: read, write, PRECOPY_INFO, release). The rest of
 * the core uses vfio_mig_stream.h only.
 *
 * Locking: s.m protects the pump's state and is held across every call into
 * the driver's file (read, write, ioctl), so PRECOPY_INFO sees the driver
 * and the core's buffers at one instant. The pump drops s.m only to wait in
 * poll(2). s.life serializes quiesce/restart/end. Callers of the SET path
 * hold the device's mig_lock outside both.
 */
#ifndef UVFIO_CORE_VFIO_MIG_STREAM_PRIV_H
#define UVFIO_CORE_VFIO_MIG_STREAM_PRIV_H

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include <uvfio/linux/unique_fd.h>
#include <uvfio/linux/vfio.h>

#include "vfio_mig_stream.h"

struct vfio_mig_stream {
	/* For log lines; valid while the stream has not ended. */
	struct vfio_device *device = nullptr;
	struct file *drv = nullptr;	/* the driver's file, one reference */
	bool saving = true;
	/* The driver's file has an ioctl; without one every ioctl on the
	 * data fd is ENOTTY, as the kernel's vfs_ioctl() answers. */
	bool drv_ioctl = false;

	UniqueFD core_end;	/* the pump's end of the socketpair */
	UniqueFD user_end;	/* a dup of the user's end: SIOCINQ, reads */
	/* The user's end until vfio_mig_stream_install_fd() hands it out. */
	UniqueFD user_fd;
	UniqueFD wake;		/* eventfd: kicks and stop requests */
	/* Saving: where stable copies go by reference, made at first use. */
	UniqueFD ref_pipe[2];

	std::mutex life;
	std::thread pump;

	mutable std::mutex m;
	std::condition_variable cv;
	bool running = false;	/* the pump thread exists */
	bool stopping = false;	/* the pump must return */
	bool ended = false;
	/* Ended by the core (an arc, reset, close): reads fail like the
	 * kernel driver's disabled file, whatever is still queued. */
	bool disabled = false;
	bool eof = false;	/* saving: the driver returned 0 */
	bool eof_sent = false;	/* ... and the core's end is shut down */
	bool paused = false;	/* saving: the driver said ENOMSG */
	bool retry = false;	/* saving: ask the driver again now */
	int err = 0;		/* the driver's read/write error, sticky */
	bool err_reported = false; /* a SET has returned err */
	u64 attempts = 0;	/* driver reads so far */
	std::unique_ptr<char[]> buf;
	size_t buf_off = 0;
	size_t buf_len = 0;	/* bytes in buf not yet sent / delivered */
	u64 pumped = 0;		/* bytes taken from / given to the driver */
	/* Pre-copy: the stream offset where the initial data ends. */
	bool initial_known = false;
	u64 initial_end = 0;

	~vfio_mig_stream() { vfio_mig_stream_end(*this); }
};

namespace mig_stream {

/* The pump moves at most this much per driver call: small enough to stay in L2. */
constexpr size_t pump_chunk = 256 << 10;

/* Bytes queued on a socket that its owner has not read yet. */
size_t unread(int fd);

/* Wake the pump: a kick (ask the driver again) or a stop request. */
void signal_pump(vfio_mig_stream &s);

/*
 * Close the core's end so that a raw reader's next read fails with
 * ECONNRESET instead of returning end of stream: unread bytes in the
 * closing end's own queue do that to its peer. s.m held.
 */
void close_core_end_broken(vfio_mig_stream &s);

/*
 * The driver's read or write failed: record it, tell whoever waits, and
 * break the socket so a raw reader sees ECONNRESET after the bytes already
 * pumped (a raw writer sees EPIPE). The driver is not called again. s.m
 * held.
 */
void pump_fail(vfio_mig_stream &s, long err, const char *what);

/* The pump thread's body, saving or resuming, until s.stopping. */
void pump_save(vfio_mig_stream &s);
void pump_resume(vfio_mig_stream &s);

/* The file userspace holds, and its stream. */
extern const struct file_operations vfio_mig_fops;
vfio_mig_stream &stream_of(struct file *filp);

} // namespace mig_stream

#endif /* UVFIO_CORE_VFIO_MIG_STREAM_PRIV_H */
