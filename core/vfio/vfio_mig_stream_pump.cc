// SPDX-License-Identifier: GPL-2.0-only
/*
 * The migration data stream's pump: a thread per stream that moves bytes
 * between the core's end of the socketpair and the driver's file, calling
 * the driver's read (saving) or write (resuming) with the stream's lock
 * held. Bytes go straight between the socket and the driver's
 * copy_{to,from}_user where they can (direct_send, direct_recv), through
 * the pump's buffer where they cannot. A driver error stops it
 * (pump_fail). Its lifecycle is in vfio_mig_stream.cc.
 */
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <vector>

#include <uvfio/linux/fault-inject.h>
#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio.h>

#include "vfio.h"
#include "vfio_mig_stream_priv.h"

/*
 * The driver's read and write as the pump calls them: an injected failure
 * stands for the driver returning -errno, and takes pump_fail's path.
 */
DEFINE_FAULT_POINT(mig_data_read, "mig.data.read", EIO,
		   "the driver's data-file read fails (saving)")
DEFINE_FAULT_POINT(mig_data_write, "mig.data.write", EIO,
		   "the driver's data-file write fails (resuming)")

namespace mig_stream {

size_t unread(int fd)
{
	int n = 0;
	if (fd < 0 || ioctl(fd, SIOCINQ, &n) || n < 0)
		return 0;
	return static_cast<size_t>(n);
}

void signal_pump(vfio_mig_stream &s)
{
	u64 one = 1;
	if (s.wake.is_valid() && write(s.wake.get(), &one, sizeof(one)) < 0) {
		/* Full counter: the pump is already due to wake. */
	}
}

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

namespace {

/* A paused pre-copy stream asks the driver again this often. */
constexpr int paused_retry_ms = 10;

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

} // namespace

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

namespace {

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

} // namespace

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

} // namespace mig_stream
