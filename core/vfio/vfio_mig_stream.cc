// SPDX-License-Identifier: GPL-2.0-only
/*
 * The migration data stream's lifecycle: open (a socketpair, a pump thread
 * and the file userspace holds), hand the user's end out, drain, quiesce
 * and restart around resets, and end. The pump is in
 * vfio_mig_stream_pump.cc, the user's file in vfio_mig_stream_file.cc.
 *
 * Why a socketpair and not a pipe: one transport serves both directions;
 * SIOCINQ counts exactly the bytes a socket has not read yet (PRECOPY_INFO
 * needs that); the core sends with MSG_NOSIGNAL, so a vanished peer is an
 * EPIPE and never a SIGPIPE in someone's process; and closing an end with
 * unread bytes in its own queue makes the peer's next read fail with
 * ECONNRESET, which is how a raw reader learns that a stream broke instead of
 * mistaking the break for its end. Measured against a pipe in
 * Documentation/performance.md.
 */
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio.h>

#include "vfio.h"
#include "vfio_mig_stream_priv.h"

using namespace mig_stream;

namespace {

/* Socket buffering: several chunks in flight between pump and user. */
constexpr int sock_buffer = 4 << 20;

/*
 * A saving stream the core ends (state left, reset, close) is over for
 * its reader as the kernel driver's disabled file is: what was queued and
 * not read is dropped, and a reader short of the end of stream gets
 * ECONNRESET, never a clean-looking end. Queued bytes may be device memory
 * by reference, which changes once the device runs again. s.m held.
 */
void end_saving(vfio_mig_stream &s)
{
	bool dropped = false;
	if (s.user_end.is_valid() && s.buf)
		while (recv(s.user_end.get(), s.buf.get(), pump_chunk,
			    MSG_DONTWAIT) > 0)
			dropped = true;
	if (dropped || !s.eof_sent)
		close_core_end_broken(s);
}

/* Start the pump; s.life held. */
int start_pump(vfio_mig_stream &s)
{
	std::lock_guard<std::mutex> l(s.m);
	if (s.running || s.ended)
		return 0;
	s.stopping = false;
	/* A paused pre-copy stream asks the driver again after a state change. */
	s.retry = true;
	try {
		s.pump = std::thread([&s] {
			/*
			 * splice(2) into a socket whose reader shut it down
			 * raises SIGPIPE (it has no MSG_NOSIGNAL). Blocked,
			 * it stays pending on this thread and the call
			 * returns EPIPE, as send() does.
			 */
			sigset_t pipe;
			sigemptyset(&pipe);
			sigaddset(&pipe, SIGPIPE);
			pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
			(s.saving ? pump_save : pump_resume)(s);
		});
	} catch (...) {
		return -EAGAIN;
	}
	s.running = true;
	s.cv.notify_all();
	return 0;
}

/* Stop the pump and wait for it; s.life held. */
void stop_pump(vfio_mig_stream &s)
{
	{
		std::lock_guard<std::mutex> l(s.m);
		if (!s.running)
			return;
		s.stopping = true;
		signal_pump(s);
	}
	s.pump.join();
	std::lock_guard<std::mutex> l(s.m);
	s.running = false;
	s.stopping = false;
	s.cv.notify_all();
}

void set_sndbuf(int fd)
{
	int v = sock_buffer;
	/* FORCE passes net.core.wmem_max when privileged; else take the cap. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)))
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

/* Resuming: wait, pump running, until the driver took what was written. */
int drain_locked(vfio_mig_stream &s, std::unique_lock<std::mutex> &l)
{
	if (!s.running)
		return s.err;
	if (!s.saving) {
		signal_pump(s);
		s.cv.wait(l, [&] {
			return s.err || !s.core_end.is_valid() ||
			       (!s.buf_len && !unread(s.core_end.get()));
		});
	}
	return s.err;
}

} // namespace

namespace mig_stream {

void close_core_end_broken(vfio_mig_stream &s)
{
	if (s.saving && s.user_end.is_valid() && s.core_end.is_valid()) {
		char c = 0;
		if (send(s.user_end.get(), &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT) <
		    0) {
			/* Then the reader sees plain end of stream. */
		}
	}
	s.core_end.reset();
}

} // namespace mig_stream

int vfio_mig_stream_open(struct vfio_device *device, struct file *drv,
			 enum vfio_device_mig_state state,
			 std::shared_ptr<vfio_mig_stream> *out,
			 struct file **filp_out)
{
	bool saving = vfio_mig_state_saving(state);
	if (saving ? !(drv->f_mode & FMODE_READ) || !drv->f_op->read
		   : !(drv->f_mode & FMODE_WRITE) || !drv->f_op->write) {
		dev_err(device->dev,
			"driver bug: the data file for state %d cannot %s",
			static_cast<int>(state), saving ? "read" : "write");
		fput(drv);
		return -EINVAL;
	}

	std::shared_ptr<vfio_mig_stream> s;
	try {
		s = std::make_shared<vfio_mig_stream>();
		s->buf.reset(new char[pump_chunk]);
	} catch (...) {
		fput(drv);
		return -ENOMEM;
	}
	s->device = device;
	s->drv = drv;	/* released by vfio_mig_stream_end() from here */
	s->saving = saving;
	s->drv_ioctl = drv->f_op->unlocked_ioctl != nullptr;

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	s->core_end.reset(sv[0]);
	/*
	 * The pump never blocks on its end (it polls), and splice(2) into a
	 * socket honours only the file's O_NONBLOCK, not SPLICE_F_NONBLOCK.
	 * The user's end is another file and keeps its own flags.
	 */
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	s->user_fd.reset(sv[1]);
	set_sndbuf(saving ? sv[0] : sv[1]);
	s->user_end.reset(fcntl(sv[1], F_DUPFD_CLOEXEC, 0));
	s->wake.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	if (!s->user_end.is_valid() || !s->wake.is_valid())
		return -errno;

	/*
	 * Pre-copy: learn where the initial data ends before the pump reads
	 * past it. This is the PRECOPY_INFO a client such as QEMU makes right
	 * after entering PRE_COPY.
	 */
	if (vfio_mig_state_precopy(state) && drv->f_op->unlocked_ioctl) {
		struct vfio_precopy_info info = {};
		info.argsz = sizeof(info);
		uaccess_kernel_buffer kbuf(&info, sizeof(info));
		if (!drv->f_op->unlocked_ioctl(
			    drv, VFIO_MIG_GET_PRECOPY_INFO,
			    reinterpret_cast<unsigned long>(&info))) {
			s->initial_known = true;
			s->initial_end = info.initial_bytes;
		}
	}

	std::shared_ptr<vfio_mig_stream> *ref;
	try {
		ref = new std::shared_ptr<vfio_mig_stream>(s);
	} catch (...) {
		return -ENOMEM;
	}
	struct file *filp = anon_inode_getfile("[vfio-mig-data]", &vfio_mig_fops,
					       ref, saving ? O_RDONLY : O_WRONLY);
	if (IS_ERR(filp)) {
		delete ref;
		return static_cast<int>(PTR_ERR(filp));
	}
	stream_open(nullptr, filp);

	int ret;
	{
		std::lock_guard<std::mutex> l(s->life);
		ret = start_pump(*s);
	}
	if (ret) {
		fput(filp);	/* ends the stream, releasing drv */
		return ret;
	}
	*out = std::move(s);
	*filp_out = filp;
	return 0;
}

int vfio_mig_stream_install_fd(struct file *filp)
{
	vfio_mig_stream &s = stream_of(filp);
	int fd;
	{
		std::lock_guard<std::mutex> l(s.m);
		fd = s.user_fd.release();
	}
	if (fd < 0) {
		fput(filp);
		return -EINVAL;
	}
	/* The table owns the user's fd and the file from here. */
	return uvfio_fd_install(filp, fd);
}

bool vfio_mig_stream_continues(const vfio_mig_stream &s,
			       enum vfio_device_mig_state state)
{
	return s.saving && vfio_mig_state_saving(state);
}

int vfio_mig_stream_drain(vfio_mig_stream &s)
{
	std::lock_guard<std::mutex> life(s.life);
	std::unique_lock<std::mutex> l(s.m);
	return drain_locked(s, l);
}

void vfio_mig_stream_kick(vfio_mig_stream &s)
{
	std::lock_guard<std::mutex> l(s.m);
	if (s.saving && s.paused) {
		s.retry = true;
		signal_pump(s);
	}
	/* A reader waiting in mig_fops_read() looks again. */
	s.cv.notify_all();
}

int vfio_mig_stream_quiesce(vfio_mig_stream &s)
{
	std::lock_guard<std::mutex> life(s.life);
	{
		std::unique_lock<std::mutex> l(s.m);
		if (!s.running)
			return s.err;
		drain_locked(s, l);
	}
	stop_pump(s);
	std::lock_guard<std::mutex> l(s.m);
	return s.err;
}

void vfio_mig_stream_restart(vfio_mig_stream &s)
{
	std::lock_guard<std::mutex> life(s.life);
	if (start_pump(s)) {
		std::lock_guard<std::mutex> l(s.m);
		pump_fail(s, -EAGAIN, "pump restart");
	}
}

void vfio_mig_stream_end_left(vfio_mig_stream &s,
			      enum vfio_device_mig_state state)
{
	{
		std::lock_guard<std::mutex> life(s.life);
		stop_pump(s);
		std::lock_guard<std::mutex> l(s.m);
		if (s.saving && !s.ended && !s.err && s.drv) {
			char c;
			ssize_t n;
			{
				uaccess_kernel_buffer kbuf(&c, 1);
				n = s.drv->f_op->read(s.drv, &c, 1,
						      file_ppos(s.drv));
			}
			/* Data, end of stream or "more later": it works. */
			if (n >= 0 || n == -ENOMSG || n == -EAGAIN)
				dev_err(s.device->dev,
					"driver bug: the migration data file "
					"still works after the move to state "
					"%d (read gave %zd, not an error such "
					"as -ENODEV); a driver must disable "
					"its files when the device leaves "
					"their states",
					static_cast<int>(state), n);
		}
	}
	vfio_mig_stream_end(s);
}

void vfio_mig_stream_end(vfio_mig_stream &s)
{
	std::lock_guard<std::mutex> life(s.life);
	{
		std::lock_guard<std::mutex> l(s.m);
		if (s.ended)
			return;
	}
	stop_pump(s);

	struct file *drv;
	{
		std::lock_guard<std::mutex> l(s.m);
		s.ended = true;
		s.disabled = true;
		drv = std::exchange(s.drv, nullptr);
		if (s.saving)
			end_saving(s);
		s.core_end.reset();
		s.ref_pipe[0].reset();
		s.ref_pipe[1].reset();
		s.buf_len = 0;
		s.cv.notify_all();
	}
	/* Outside s.m: the driver's release takes its own locks. */
	fput(drv);
}

void vfio_mig_stream_drop(std::shared_ptr<vfio_mig_stream> &stream)
{
	if (!stream)
		return;
	vfio_mig_stream_end(*stream);
	stream.reset();
}

void vfio_mig_stream_drop_left(std::shared_ptr<vfio_mig_stream> &stream,
			       enum vfio_device_mig_state state)
{
	if (!stream)
		return;
	vfio_mig_stream_end_left(*stream, state);
	stream.reset();
}

bool vfio_mig_stream_ended(const vfio_mig_stream &s)
{
	std::lock_guard<std::mutex> l(s.m);
	return s.ended;
}

int vfio_mig_stream_error(const vfio_mig_stream &s)
{
	std::lock_guard<std::mutex> l(s.m);
	return s.err;
}

int vfio_mig_stream_take_error(vfio_mig_stream &s)
{
	std::lock_guard<std::mutex> l(s.m);
	if (s.err_reported)
		return 0;
	s.err_reported = true;
	return s.err;
}

bool vfio_mig_stream_saving(const vfio_mig_stream &s)
{
	return s.saving;
}
