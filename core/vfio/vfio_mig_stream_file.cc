// SPDX-License-Identifier: GPL-2.0-only
/*
 * The migration data stream as the file userspace holds (the kernel's data
 * fd): read and write on the user's end of the socketpair, answered where
 * a raw read(2) would wait as the kernel's driver would;
 * VFIO_MIG_GET_PRECOPY_INFO, where the core adds the bytes it pumped that
 * userspace has not read to the driver's counts; and release, the user's
 * close, which ends the stream.
 */
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <fcntl.h>
#include <sys/socket.h>

#include <uvfio/linux/fault-inject.h>
#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio.h>

#include "vfio.h"
#include "vfio_mig_stream_priv.h"

DEFINE_FAULT_POINT(mig_precopy_info_fault, "mig.precopy_info", EIO,
		   "a user's VFIO_MIG_GET_PRECOPY_INFO: the driver's answer "
		   "fails; the stream goes on")

namespace mig_stream {

vfio_mig_stream &stream_of(struct file *filp)
{
	return **static_cast<std::shared_ptr<vfio_mig_stream> *>(
		filp->private_data);
}

namespace {

/* Tests' hook in the read window (vfio_mig_stream_set_read_window_hook). */
std::atomic<void (*)()> read_window_hook{nullptr};

bool nonblocking(const vfio_mig_stream &s)
{
	int fl = fcntl(s.user_end.get(), F_GETFL);
	return fl >= 0 && (fl & O_NONBLOCK);
}

/*
 * read on a saving stream. Where a raw read(2) on the fd would wait, this
 * answers as the kernel's driver would: -ENOMSG when pre-copy has nothing
 * now (after asking the driver once more), the driver's errno after a
 * failure, 0 at the end, -ENODEV once the core has ended the stream.
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
		if (unread(s.user_end.get())) {
			/*
			 * Bytes are queued. Take them without s.m, so the
			 * pump fills the socket meanwhile.
			 */
			l.unlock();
			if (auto fn = read_window_hook.load(
				    std::memory_order_relaxed))
				fn();
			ssize_t r = recv(s.user_end.get(), buf, count,
					 MSG_DONTWAIT);
			if (r > 0 || !count)
				return r;
			int e = r < 0 ? errno : 0;
			if (e && e != ECONNRESET && e != EAGAIN && e != EINTR)
				return -e;
			/*
			 * They went in between: the core ended the stream
			 * (it drops them and the socket says ECONNRESET or
			 * end of file), the driver's read failed, or another
			 * reader took them. Answer from the stream's state,
			 * as to a reader that came a moment later: ENODEV,
			 * the driver's errno, the end, or wait.
			 */
			l.lock();
			continue;
		}
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
}

/*
 * The start of a resuming stream is handed to the driver before write
 * returns, as the kernel's write is: a driver refuses a foreign or corrupt
 * header at the write that completes it, so the first write of a bad
 * stream fails with the driver's errno and nothing of it is taken. Past
 * this much, writes only queue for the pump, which keeps the copy off the
 * writer's thread; a refusal there fails a later write.
 */
constexpr u64 sync_window = 64 << 10;

/* Until the driver has taken target bytes, failed, or the pump stops. */
void wait_delivered(vfio_mig_stream &s, std::unique_lock<std::mutex> &l,
		    u64 target)
{
	s.cv.wait(l, [&] {
		return s.err || s.ended || !s.running || s.stopping ||
		       s.pumped >= target;
	});
}

/* write on a resuming stream: into the socket the pump drains. */
ssize_t mig_fops_write(struct file *filp, const char __user *buf, size_t count,
		       loff_t *)
{
	vfio_mig_stream &s = stream_of(filp);
	u64 queued;
	bool sync;
	{
		std::lock_guard<std::mutex> l(s.m);
		if (s.err)
			return s.err;
		if (s.ended)
			return -ENODEV;
		sync = s.pumped < sync_window && s.running;
		queued = s.pumped + s.buf_len + unread(s.core_end.get());
	}
	ssize_t r = send(s.user_end.get(), buf, count, MSG_NOSIGNAL);
	if (r >= 0) {
		if (!sync || !r)
			return r;
		std::unique_lock<std::mutex> l(s.m);
		wait_delivered(s, l, queued + static_cast<u64>(r));
		/* The driver refused the header: none of this write counts. */
		return s.err ? s.err : r;
	}
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

} // namespace

const struct file_operations vfio_mig_fops = {
	.read = mig_fops_read,
	.write = mig_fops_write,
	.unlocked_ioctl = mig_fops_unl_ioctl,
	.mmap = nullptr,
	.release = mig_fops_release,
};

} // namespace mig_stream

using namespace mig_stream;

u64 vfio_mig_stream_file_unread(struct file *filp)
{
	vfio_mig_stream &s = stream_of(filp);
	std::lock_guard<std::mutex> l(s.m);
	if (!s.saving || s.ended)
		return 0;
	return unread(s.user_end.get()) + s.buf_len;
}

void vfio_mig_stream_set_read_window_hook(void (*fn)())
{
	read_window_hook.store(fn, std::memory_order_relaxed);
}
