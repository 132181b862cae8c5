// SPDX-License-Identifier: GPL-2.0-only
/*
 * The migration data fd: a socketpair, a pump thread and the file userspace
 * holds.
 *
 * Why a socketpair and not a pipe: one transport serves both directions;
 * SIOCINQ counts exactly the bytes a socket has not read yet (PRECOPY_INFO
 * needs that); the core sends with MSG_NOSIGNAL, so a vanished peer is an
 * EPIPE and never a SIGPIPE in someone's process; and closing an end with
 * unread bytes in its own queue makes the peer's next read fail with
 * ECONNRESET, which is how a raw reader learns that a stream broke instead of
 * mistaking the break for its end. Measured against a pipe in
 * Documentation/performance.md.
 *
 * Locking: s.m protects the pump's state and is held across every call into
 * the driver's file (read, write, ioctl), so PRECOPY_INFO sees the driver
 * and the core's buffers at one instant. The pump drops s.m only to wait in
 * poll(2). s.life serializes quiesce/restart/end. Callers of the SET path
 * hold the device's mig_lock outside both.
 */
#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <linux/sockios.h>
#include <mutex>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <thread>
#include <vector>

#include <uvfio/linux/fault-inject.h>
#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/unique_fd.h>
#include <uvfio/linux/vfio.h>

#include "vfio.h"
#include "vfio_mig_stream.h"

/*
 * The driver's read and write as the pump calls them: an injected failure
 * stands for the driver returning -errno, and takes pump_fail's path.
 */
DEFINE_FAULT_POINT(mig_data_read, "mig.data.read", EIO,
		   "the driver's data-file read fails (saving)")
DEFINE_FAULT_POINT(mig_data_write, "mig.data.write", EIO,
		   "the driver's data-file write fails (resuming)")
DEFINE_FAULT_POINT(mig_precopy_info_fault, "mig.precopy_info", EIO,
		   "a user's VFIO_MIG_GET_PRECOPY_INFO: the driver's answer "
		   "fails; the stream goes on")

namespace {

/* The pump moves at most this much per driver call: small enough to stay in L2. */
constexpr size_t pump_chunk = 256 << 10;
/* Socket buffering: several chunks in flight between pump and user. */
constexpr int sock_buffer = 4 << 20;
/* A paused pre-copy stream asks the driver again this often. */
constexpr int paused_retry_ms = 10;

/* Bytes queued on a socket that its owner has not read yet. */
size_t unread(int fd)
{
	int n = 0;
	if (fd < 0 || ioctl(fd, SIOCINQ, &n) || n < 0)
		return 0;
	return static_cast<size_t>(n);
}

} // namespace

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

namespace {

void signal_pump(vfio_mig_stream &s)
{
	u64 one = 1;
	if (s.wake.is_valid() && write(s.wake.get(), &one, sizeof(one)) < 0) {
		/* Full counter: the pump is already due to wake. */
	}
}

/*
 * Sleep until fd has events (none: only a kick), a kick, or the timeout.
 * Drops s.m while waiting; flags set under s.m are re-checked by the caller.
 */
void wait_io(vfio_mig_stream &s, std::unique_lock<std::mutex> &l, short events,
	     int timeout_ms)
{
	struct pollfd p[2] = {{s.wake.get(), POLLIN, 0},
			      {s.core_end.get(), events, 0}};
	nfds_t n = (events && s.core_end.is_valid()) ? 2 : 1;
	l.unlock();
	poll(p, n, timeout_ms);
	u64 v;
	if (read(s.wake.get(), &v, sizeof(v)) < 0) {
		/* Nothing pending: woken by fd or timeout. */
	}
	l.lock();
}

/*
 * Close the core's end so that a raw reader's next read fails with
 * ECONNRESET instead of returning end of stream: unread bytes in the
 * closing end's own queue do that to its peer.
 */
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

/*
 * The driver's read or write failed: record it, tell whoever waits, and
 * break the socket so a raw reader sees ECONNRESET after the bytes already
 * pumped (a raw writer sees EPIPE). The driver is not called again.
 */
void pump_fail(vfio_mig_stream &s, long err, const char *what)
{
	s.err = static_cast<int>(err);
	/*
	 * -ENODEV is a file the driver disabled, which a read racing a SET
	 * that leaves the file's states may meet: the stream's end, not news.
	 */
	if (err == -ENODEV)
		dev_dbg(s.device->dev, "migration data stream: driver %s: "
			"file disabled", what);
	else
		dev_err(s.device->dev, "migration data stream: driver %s "
			"failed (%s)", what, strerror(static_cast<int>(-err)));
	close_core_end_broken(s);
	s.buf_len = 0;
	s.cv.notify_all();
}

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

/*
 * The saving pump's sink: the driver's copy_to_user() goes straight into
 * the socket while its copies come in order and the socket takes them,
 * which saves copying every byte into the pump's buffer first. From the
 * first copy that does not, bytes land in the buffer at their offset and
 * are sent after the read returns, as without a sink. So that this never
 * depends on timing, a read must copy each byte at most once and return
 * at least what it copied; otherwise the stream fails (a driver bug),
 * whether or not the bytes had already left.
 *
 * A large uvfio_copy_to_user_stable() is not copied at all: its pages go
 * through a pipe into the socket by reference (vmsplice, then splice), and
 * the reader's read() is the one copy, as with a kernel driver.
 */
constexpr size_t ref_min = 64 << 10;	/* below this a copy is cheaper */

struct direct_send final : uaccess_sink {
	vfio_mig_stream &s;
	size_t sent = 0;	/* bytes [0, sent) are in the socket */
	size_t copied_end = 0;	/* past the last byte copied */
	bool bounce = false;	/* from now on into buf */
	bool rewrote = false;
	/* What was copied, merged where contiguous (usually one range). */
	std::vector<std::pair<size_t, size_t>> copied;

	explicit direct_send(vfio_mig_stream &s) : s(s) {}

	bool copy_out(size_t off, const void *from, size_t n,
		      bool stable) override
	{
		for (auto [lo, hi] : copied)
			if (off < hi && lo < off + n)
				rewrote = true;
		if (!copied.empty() && copied.back().second == off)
			copied.back().second = off + n;
		else
			copied.emplace_back(off, off + n);
		copied_end = std::max(copied_end, off + n);
		if (rewrote)
			return true;	/* the stream fails anyway */
		if (bounce || off != sent)
			return bounce = true, false;
		const char *p = static_cast<const char *>(from);
		size_t done = 0;	/* in the socket, or in buf if bounce */
		if (stable && n >= ref_min)
			done = send_ref(off, p, n);
		if (!bounce && done < n) {
			ssize_t w = send(s.core_end.get(), p + done, n - done,
					 MSG_NOSIGNAL | MSG_DONTWAIT);
			size_t took = w > 0 ? static_cast<size_t>(w) : 0;
			sent += took;
			done += took;
		}
		if (done < n) {
			bounce = true;
			std::memcpy(s.buf.get() + off + done, p + done, n - done);
		}
		return true;
	}

	/*
	 * Pages of p into the socket, a pipeful at a time. Returns the bytes
	 * done: those the socket took (added to sent) and, once it is full,
	 * those that came back out of the pipe into buf (bounce is set then).
	 * Short of n without bounce: the rest is for send().
	 */
	size_t send_ref(size_t off, const char *p, size_t n)
	{
		if (!s.ref_pipe[0].is_valid()) {
			int fds[2];
			if (pipe2(fds, O_CLOEXEC | O_NONBLOCK))
				return 0;
			s.ref_pipe[0].reset(fds[0]);
			s.ref_pipe[1].reset(fds[1]);
			/*
			 * A chunk per round trip, unaligned ones too (a page
			 * more; the size rounds up to a power of two). A
			 * smaller pipe only means more round trips.
			 */
			fcntl(fds[1], F_SETPIPE_SZ,
			      static_cast<int>(pump_chunk + 4096));
		}
		int in = s.ref_pipe[1].get(), out = s.ref_pipe[0].get();
		size_t done = 0;
		while (done < n) {
			struct iovec iov = {const_cast<char *>(p + done), n - done};
			ssize_t v = vmsplice(in, &iov, 1, SPLICE_F_NONBLOCK);
			if (v <= 0)
				break;
			size_t queued = static_cast<size_t>(v);
			ssize_t w = splice(out, nullptr, s.core_end.get(), nullptr,
					   queued, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
			size_t moved = w > 0 ? static_cast<size_t>(w) : 0;
			sent += moved;
			done += moved;
			if (moved < queued) {
				/* The socket is full: the pipe's rest into buf. */
				bounce = true;
				char *to = s.buf.get() + off + done;
				size_t left = queued - moved;
				if (read(out, to, left) != static_cast<ssize_t>(left)) {
					/* A pipe gives back what it holds; not reached. */
					std::memcpy(to, p + done, left);
					drain_pipe(out);
				}
				done += left;
				break;
			}
		}
		return done;
	}

	static void drain_pipe(int fd)
	{
		char sink[4096];
		while (read(fd, sink, sizeof(sink)) > 0) {
		}
	}
};

void pump_save(vfio_mig_stream &s)
{
	std::unique_lock<std::mutex> l(s.m);

	while (!s.stopping) {
		if (s.err || !s.core_end.is_valid()) {
			wait_io(s, l, 0, -1);
			continue;
		}
		if (s.buf_len) {
			ssize_t w = send(s.core_end.get(), s.buf.get() + s.buf_off,
					 s.buf_len, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w > 0) {
				s.buf_off += static_cast<size_t>(w);
				s.buf_len -= static_cast<size_t>(w);
				s.cv.notify_all();
			} else if (w < 0 && errno == EAGAIN) {
				wait_io(s, l, POLLOUT, -1);
			} else {
				/* No reader can exist any more: drop and idle. */
				s.buf_len = 0;
				s.core_end.reset();
			}
			continue;
		}
		if (s.eof) {
			if (!s.eof_sent) {
				shutdown(s.core_end.get(), SHUT_WR);
				s.eof_sent = true;
				s.cv.notify_all();
			}
			wait_io(s, l, 0, -1);
			continue;
		}
		if (s.paused && !s.retry) {
			wait_io(s, l, 0, paused_retry_ms);
			s.retry = true;
			continue;
		}

		s.retry = false;
		ssize_t n = should_fail(&mig_data_read);
		direct_send sink(s);
		if (!n) {
			uaccess_kernel_buffer kbuf(s.buf.get(), pump_chunk,
						   &sink);
			n = s.drv->f_op->read(s.drv, s.buf.get(), pump_chunk,
					      file_ppos(s.drv));
		}
		s.attempts++;
		if (sink.rewrote || (n >= 0 && static_cast<size_t>(n) <
						  sink.copied_end) ||
		    (n < 0 && sink.sent)) {
			/* Bytes the driver did not mean are in the stream. */
			if (n >= 0)
				dev_err(s.device->dev,
					"driver bug: the data file's read %s",
					sink.rewrote ? "rewrote bytes it had "
						       "already copied out"
						     : "returned fewer bytes "
						       "than it copied out");
			bool real = n < 0 && n != -ENOMSG && n != -EAGAIN;
			pump_fail(s, real ? n : -EIO, "read");
		} else if (n > 0) {
			if (WARN_ON(static_cast<size_t>(n) > pump_chunk))
				n = pump_chunk;
			s.buf_off = sink.sent;
			s.buf_len = static_cast<size_t>(n) - sink.sent;
			s.pumped += static_cast<u64>(n);
			s.paused = false;
		} else if (n == 0) {
			s.eof = true;
			s.paused = false;
		} else if (n == -ENOMSG || n == -EAGAIN) {
			/* Pre-copy has nothing right now; more may come. */
			s.paused = true;
		} else {
			pump_fail(s, n, "read");
		}
		s.cv.notify_all();
	}
}

/* Receive exactly n bytes that SIOCINQ said are there; false if not. */
bool recv_exact(int fd, char *p, size_t n)
{
	while (n) {
		ssize_t r = recv(fd, p, n, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		p += r;
		n -= static_cast<size_t>(r);
	}
	return true;
}

/*
 * The resuming pump's source: the driver's copy_from_user() is served
 * straight from the socket into the driver's memory while it reads in
 * order, which saves receiving every byte into the pump's buffer first.
 * From the first copy that skips ahead, bytes are received into the
 * buffer at their offset and served from there, and what the driver does
 * not take stays there for its next write. A read of bytes already
 * received straight into the driver cannot be served again: the stream
 * fails (a driver bug), as it does when the write returns less than
 * that.
 */
struct direct_recv final : uaccess_sink {
	int fd;
	char *buf;
	size_t taken = 0;	/* [0, taken) went straight to the driver */
	size_t buffered = 0;	/* [taken, buffered) are in buf */
	bool reread = false;
	bool failed = false;	/* the socket did not have what it said */

	direct_recv(int fd, char *buf) : fd(fd), buf(buf) {}

	bool copy_in(size_t off, void *to, size_t n) override
	{
		char *dst = static_cast<char *>(to);
		if (off < taken || failed) {
			reread = reread || off < taken;
			std::memset(dst, 0, n);
			return true;
		}
		if (off == taken && buffered == taken) {
			failed = !recv_exact(fd, dst, n);
			taken = buffered = taken + (failed ? 0 : n);
			return true;
		}
		if (off + n > buffered) {
			failed = !recv_exact(fd, buf + buffered,
					     off + n - buffered);
			if (failed)
				return copy_in(off, to, n);
			buffered = off + n;
		}
		std::memcpy(dst, buf + off, n);
		return true;
	}
};

/* Give the driver bytes already in s.buf (left over by a direct write). */
void deliver_buffered(vfio_mig_stream &s)
{
	ssize_t n = should_fail(&mig_data_write);
	if (!n) {
		char *p = s.buf.get() + s.buf_off;
		uaccess_kernel_buffer kbuf(p, s.buf_len);
		n = s.drv->f_op->write(s.drv, p, s.buf_len, file_ppos(s.drv));
	}
	if (n <= 0) {
		/* A write that takes nothing would stall the stream. */
		pump_fail(s, n ? n : -EIO, "write");
		return;
	}
	if (WARN_ON(static_cast<size_t>(n) > s.buf_len))
		n = static_cast<ssize_t>(s.buf_len);
	s.buf_off += static_cast<size_t>(n);
	s.buf_len -= static_cast<size_t>(n);
	s.pumped += static_cast<u64>(n);
	if (!s.buf_len)
		s.cv.notify_all();
}

/* Give the driver len bytes that are in the socket, without bouncing. */
void deliver_direct(vfio_mig_stream &s, size_t len)
{
	direct_recv src(s.core_end.get(), s.buf.get());
	ssize_t n = should_fail(&mig_data_write);
	if (!n) {
		uaccess_kernel_buffer kbuf(s.buf.get(), len, &src);
		n = s.drv->f_op->write(s.drv, s.buf.get(), len,
				       file_ppos(s.drv));
	}
	if (src.failed) {
		pump_fail(s, -EIO, "socket receive");
		return;
	}
	if (src.reread || (n >= 0 && static_cast<size_t>(n) < src.taken)) {
		dev_err(s.device->dev, "driver bug: the data file's write %s",
			src.reread ? "read bytes it had already copied in"
				   : "returned fewer bytes than it copied in");
		pump_fail(s, -EIO, "write");
		return;
	}
	if (n <= 0) {
		pump_fail(s, n ? n : -EIO, "write");
		return;
	}
	if (WARN_ON(static_cast<size_t>(n) > len))
		n = static_cast<ssize_t>(len);
	size_t took = static_cast<size_t>(n);
	/* Bytes the driver took without looking: off the socket too. */
	if (took > src.buffered) {
		if (!recv_exact(s.core_end.get(), s.buf.get() + src.buffered,
				took - src.buffered)) {
			pump_fail(s, -EIO, "socket receive");
			return;
		}
		src.buffered = took;
	}
	s.buf_off = took;
	s.buf_len = src.buffered - took;
	s.pumped += took;
	if (!s.buf_len)
		s.cv.notify_all();
}

void pump_resume(vfio_mig_stream &s)
{
	std::unique_lock<std::mutex> l(s.m);

	while (!s.stopping) {
		if (s.err || !s.core_end.is_valid()) {
			wait_io(s, l, 0, -1);
			continue;
		}
		if (s.buf_len) {
			deliver_buffered(s);
			continue;
		}
		size_t avail = unread(s.core_end.get());
		if (avail) {
			deliver_direct(s, std::min(avail, pump_chunk));
			continue;
		}
		char c;
		ssize_t r = recv(s.core_end.get(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (r > 0)
			continue;
		if (r < 0 && errno == EAGAIN) {
			/* Everything written so far is delivered. */
			s.cv.notify_all();
			wait_io(s, l, POLLIN, -1);
		} else if (r == 0) {
			/* Every writer is gone; nothing more will come. */
			s.cv.notify_all();
			wait_io(s, l, 0, -1);
		} else {
			pump_fail(s, -errno, "socket receive");
		}
	}
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

/* -------- the file userspace holds -------- */

vfio_mig_stream &stream_of(struct file *filp)
{
	return **static_cast<std::shared_ptr<vfio_mig_stream> *>(
		filp->private_data);
}

bool nonblocking(const vfio_mig_stream &s)
{
	int fl = fcntl(s.user_end.get(), F_GETFL);
	return fl >= 0 && (fl & O_NONBLOCK);
}

/*
 * read on a saving stream. Where a raw read(2) on the fd would wait, this
 * answers as the kernel's driver would: -ENOMSG when pre-copy has nothing
 * now (after asking the driver once more), the driver's errno after a
 * failure, 0 at the end.
 */
ssize_t mig_fops_read(struct file *filp, char __user *buf, size_t count,
		      loff_t *)
{
	vfio_mig_stream &s = stream_of(filp);
	std::unique_lock<std::mutex> l(s.m);
	bool kicked = false;
	u64 attempts = 0;

	for (;;) {
		if (s.disabled)
			return s.err ? s.err : -ENODEV;
		if (unread(s.user_end.get()))
			break;
		if (s.err)
			return s.err;
		if (s.ended || s.eof_sent)
			return 0;
		if (s.running && s.paused) {
			if (kicked && s.attempts != attempts)
				return -ENOMSG;
			if (!kicked) {
				kicked = true;
				attempts = s.attempts;
				s.retry = true;
				signal_pump(s);
			}
		} else if (nonblocking(s)) {
			return -EAGAIN;
		}
		s.cv.wait(l);
	}
	l.unlock();
	ssize_t r = recv(s.user_end.get(), buf, count, MSG_DONTWAIT);
	return r >= 0 ? r : -errno;
}

/* write on a resuming stream: straight into the socket the pump drains. */
ssize_t mig_fops_write(struct file *filp, const char __user *buf, size_t count,
		       loff_t *)
{
	vfio_mig_stream &s = stream_of(filp);
	{
		std::lock_guard<std::mutex> l(s.m);
		if (s.err)
			return s.err;
		if (s.ended)
			return -ENODEV;
	}
	ssize_t r = send(s.user_end.get(), buf, count, MSG_NOSIGNAL);
	if (r >= 0)
		return r;
	int e = errno;
	if (e == EPIPE || e == ECONNRESET) {
		std::lock_guard<std::mutex> l(s.m);
		return s.err ? s.err : -ENODEV;
	}
	return -e;
}

/*
 * VFIO_MIG_GET_PRECOPY_INFO: the driver counts what it has not handed out;
 * the core adds what it pumped that userspace has not read. Initial data
 * comes first in the stream, so the unread bytes before initial_end are
 * initial and the rest dirty.
 */
long mig_precopy_info(vfio_mig_stream &s, struct vfio_precopy_info __user *arg)
{
	size_t minsz = offsetofend(struct vfio_precopy_info, dirty_bytes);
	struct vfio_precopy_info info = {};

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;

	std::unique_lock<std::mutex> l(s.m);
	/* Ended without an error: the device has left pre-copy, which a
	 * driver answers with EINVAL before it looks at its file. */
	if (s.err)
		return -ENODEV;
	if (s.ended)
		return -EINVAL;

	struct vfio_precopy_info drv_info = {};
	drv_info.argsz = sizeof(drv_info);
	long ret = should_fail(&mig_precopy_info_fault);
	if (ret)
		return ret;
	{
		uaccess_kernel_buffer kbuf(&drv_info, sizeof(drv_info));
		ret = s.drv->f_op->unlocked_ioctl(
			s.drv, VFIO_MIG_GET_PRECOPY_INFO,
			reinterpret_cast<unsigned long>(&drv_info));
	}
	if (ret)
		return ret;

	u64 pending = unread(s.user_end.get()) + s.buf_len;
	u64 consumed = s.pumped - std::min<u64>(pending, s.pumped);
	if (drv_info.initial_bytes) {
		s.initial_end = s.pumped + drv_info.initial_bytes;
		s.initial_known = true;
	}
	u64 initial_pending = 0;
	if (s.initial_known && s.initial_end > consumed)
		initial_pending = std::min<u64>(s.initial_end - consumed, pending);

	info.initial_bytes = drv_info.initial_bytes + initial_pending;
	info.dirty_bytes = drv_info.dirty_bytes + (pending - initial_pending);
	/* The caller is about to read: let a paused pump ask again. */
	if (s.paused) {
		s.retry = true;
		signal_pump(s);
	}
	l.unlock();

	if (copy_to_user(arg, &info, minsz))
		return -EFAULT;
	return 0;
}

long mig_fops_unl_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	vfio_mig_stream &s = stream_of(filp);

	/* The driver's file has no ioctl: vfs_ioctl() says ENOTTY to all. */
	if (!s.drv_ioctl)
		return -ENOTTY;
	/* On a saving stream the core adds its unread bytes to the counts. */
	if (cmd == VFIO_MIG_GET_PRECOPY_INFO && s.saving)
		return mig_precopy_info(
			s, reinterpret_cast<struct vfio_precopy_info *>(arg));

	/* Anything else is the driver's, while its file is alive. */
	std::lock_guard<std::mutex> l(s.m);
	if (s.ended)
		return -ENODEV;
	return s.drv->f_op->unlocked_ioctl(s.drv, cmd, arg);
}

int mig_fops_release(struct inode *, struct file *filp)
{
	auto *ref = static_cast<std::shared_ptr<vfio_mig_stream> *>(
		filp->private_data);
	vfio_mig_stream &s = **ref;

	/* Bytes written before the close still reach the driver. */
	if (!s.saving)
		vfio_mig_stream_quiesce(s);
	vfio_mig_stream_end(s);
	/*
	 * Nobody reads or writes through this file again: give back its fds
	 * and buffer now, not when the device drops its handle at the next
	 * SET, reset or close.
	 */
	{
		std::lock_guard<std::mutex> life(s.life);
		std::lock_guard<std::mutex> l(s.m);
		s.user_end.reset();
		s.user_fd.reset();
		s.wake.reset();
		s.buf.reset();
	}
	delete ref;
	return 0;
}

const struct file_operations vfio_mig_fops = {
	.read = mig_fops_read,
	.write = mig_fops_write,
	.unlocked_ioctl = mig_fops_unl_ioctl,
	.mmap = nullptr,
	.release = mig_fops_release,
};

void set_sndbuf(int fd)
{
	int v = sock_buffer;
	/* FORCE passes net.core.wmem_max when privileged; else take the cap. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)))
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

} // namespace

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

u64 vfio_mig_stream_file_unread(struct file *filp)
{
	vfio_mig_stream &s = stream_of(filp);
	std::lock_guard<std::mutex> l(s.m);
	if (!s.saving || s.ended)
		return 0;
	return unread(s.user_end.get()) + s.buf_len;
}
