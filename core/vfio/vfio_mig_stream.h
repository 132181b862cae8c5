/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Core-private: the migration data fd.
 *
 * A driver's migration_set_state returns a struct file whose read (saving)
 * or write (resuming) is the data stream. Userspace gets a real fd instead:
 * one end of an AF_UNIX stream socketpair. A pump thread moves bytes between
 * the core's end and the driver's file_operations, so read(2), write(2),
 * poll(2) and io_uring work on the fd unchanged. See
 * Documentation/architecture.md, "Data FDs", for the rules this keeps.
 */
#ifndef UVFIO_CORE_VFIO_MIG_STREAM_H
#define UVFIO_CORE_VFIO_MIG_STREAM_H

#include <memory>

#include <uvfio/linux/vfio.h>

struct vfio_mig_stream;

/*
 * Take over drv (the driver's file, one reference) for a stream entered in
 * state and start the pump. Returns 0 or -errno (drv is released). *out
 * gets the core's handle on the stream, *filp the file userspace would hold
 * (one reference; its last fput() ends the stream). The user's end of the
 * socketpair is not in the fd table yet: vfio_mig_stream_install_fd() puts
 * it there (MIG_DEVICE_STATE), the v1 migration region never does and uses
 * the file's read and write itself.
 */
int vfio_mig_stream_open(struct vfio_device *device, struct file *drv,
			 enum vfio_device_mig_state state,
			 std::shared_ptr<vfio_mig_stream> *out,
			 struct file **filp);

/*
 * Give userspace a real fd for filp (from vfio_mig_stream_open), taking
 * over the caller's reference. The fd number, or -errno (the reference is
 * dropped, which ends the stream).
 */
int vfio_mig_stream_install_fd(struct file *filp);

/* Does a stream survive an arc into state? (PRE_COPY* and STOP_COPY do.) */
bool vfio_mig_stream_continues(const vfio_mig_stream &s,
			       enum vfio_device_mig_state state);

/*
 * Before a SET: deliver everything userspace wrote (resuming) and wait
 * until the driver has taken it; the pump keeps running. Returns the error
 * the driver's read or write reported, or 0.
 */
int vfio_mig_stream_drain(vfio_mig_stream &s);

/*
 * After a SET the stream survives (e.g. PRE_COPY_P2P -> STOP_COPY): a
 * paused pre-copy pump asks the driver again now, the state may have
 * given it more to say.
 */
void vfio_mig_stream_kick(vfio_mig_stream &s);

/*
 * Before a reset: deliver everything userspace wrote (resuming), then stop
 * the pump, so the driver's file is not called while the reset disables
 * it. Returns the error the driver's read or write reported, or 0.
 */
int vfio_mig_stream_quiesce(vfio_mig_stream &s);

/* After a failed reset, which leaves the stream: pump again. */
void vfio_mig_stream_restart(vfio_mig_stream &s);

/*
 * End the stream: stop the pump, release the driver's file and close the
 * core's end. A saving stream's unread bytes are dropped, and a reader
 * that had not reached its end gets ECONNRESET (a writer gets EPIPE).
 * Idempotent; safe against a concurrent close of the user's fd.
 */
void vfio_mig_stream_end(vfio_mig_stream &s);

/*
 * End a stream because the device left its states (now in state): as
 * vfio_mig_stream_end(), after reading the driver's saving file once, as a
 * user's read after the SET would, to log a driver bug if it still works
 * (data, 0 or -ENOMSG: the kernel's user would go on reading from it). A
 * disabled file fails: -ENODEV.
 */
void vfio_mig_stream_end_left(vfio_mig_stream &s,
			      enum vfio_device_mig_state state);

/*
 * The device's handle on its stream: end the stream (if any) and let go of
 * it, under the device's mig_lock. _left: the device left the stream's
 * states for state, as vfio_mig_stream_end_left().
 */
void vfio_mig_stream_drop(std::shared_ptr<vfio_mig_stream> &stream);
void vfio_mig_stream_drop_left(std::shared_ptr<vfio_mig_stream> &stream,
			       enum vfio_device_mig_state state);

/* True once the stream has ended, from either side. */
bool vfio_mig_stream_ended(const vfio_mig_stream &s);

/* The driver's read/write error that stopped the pump, or 0. */
int vfio_mig_stream_error(const vfio_mig_stream &s);

/*
 * The stream's error for a MIG_DEVICE_STATE SET to return: the driver's
 * errno the first time, 0 after that (and when there was none).
 */
int vfio_mig_stream_take_error(vfio_mig_stream &s);

/* A saving stream (PRE_COPY*, STOP_COPY) rather than a resuming one. */
bool vfio_mig_stream_saving(const vfio_mig_stream &s);

/*
 * A saving stream's bytes taken from the driver that the reader of filp
 * (from vfio_mig_stream_open) has not read yet; 0 once it has ended.
 */
u64 vfio_mig_stream_file_unread(struct file *filp);

/*
 * For tests: fn (NULL: none) runs in each read of a saving stream's file
 * between seeing bytes queued and taking them, with no lock held. A test
 * ends the stream there to meet at will the race a loaded machine meets
 * by chance.
 */
void vfio_mig_stream_set_read_window_hook(void (*fn)());

#endif /* UVFIO_CORE_VFIO_MIG_STREAM_H */
