// SPDX-License-Identifier: GPL-2.0-only
/*
 * The migration client's streams: endpoint I/O, the plain stream engine,
 * the protocols' v2 side, and save and load over either protocol,
 * through a Transport only. The io_uring engine is uring_engine.cc.
 */
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <uvfio/tools/migration.h>
#include <uvfio/uapi/vfio.h>

#include "lib_priv.h"

namespace uvfio::tools {

namespace detail {

int write_all(const Endpoint &e, const char *buf, size_t len, size_t chunk)
{
	for (size_t off = 0; off < len;) {
		size_t n = std::min(chunk, len - off);
		ssize_t w = e.io	  ? e.io->write(buf + off, n)
			    : e.transport ? e.transport->write(e.fd, buf + off, n)
					  : ::write(e.fd, buf + off, n);
		if (w < 0 && !e.transport && !e.io)
			w = -errno;
		if (w == -EINTR)
			continue;
		if (w < 0)
			return int(w);
		if (w == 0)
			return -EIO;
		off += size_t(w);
	}
	return 0;
}

ssize_t read_some(const Endpoint &e, char *buf, size_t len)
{
	for (;;) {
		ssize_t n = e.io	  ? e.io->read(buf, len)
			    : e.transport ? e.transport->read(e.fd, buf, len)
					  : ::read(e.fd, buf, len);
		if (n < 0 && !e.transport && !e.io)
			n = -errno;
		if (n != -EINTR)
			return n;
	}
}

void recover(Migration &mig, __u32 fallback)
{
	if (mig.set_state(fallback))
		mig.reset();
}

} // namespace detail

using namespace detail;

/* -------- the plain engine -------- */

int plain_copy(const Endpoint &src, const Endpoint &dst, bool until_pause,
	       StreamStats *stats, const Progress &progress)
{
	/* QEMU's sizes: 1 MiB reads, 32 KiB writes into a resuming fd. */
	const size_t read_size = 1 << 20;
	const size_t write_size = dst.transport ? 32 << 10 : read_size;
	std::vector<char> buf(read_size);
	auto t0 = clock_type::now();
	auto last_report = t0;
	__u64 moved = 0;

	for (;;) {
		ssize_t n = read_some(src, buf.data(), buf.size());
		if (n == -ENOMSG && until_pause)
			break;
		if (n < 0)
			return int(n);
		if (n == 0)
			break;
		int ret = write_all(dst, buf.data(), size_t(n), write_size);
		if (ret)
			return ret;
		moved += __u64(n);
		if (progress && clock_type::now() - last_report >
					std::chrono::milliseconds(100)) {
			last_report = clock_type::now();
			progress(moved);
		}
	}
	if (stats) {
		stats->bytes += moved;
		stats->seconds += seconds_since(t0);
	}
	if (progress)
		progress(moved);
	return 0;
}

int copy_to_eof(const Endpoint &src, const Endpoint &dst,
		const StreamOptions &so, StreamStats *stats,
		const Progress &progress)
{
	/* Data fds of both transports are real descriptors; a StreamIo
	 * is not one. */
	if (so.uring && !src.io && !dst.io)
		return uring_copy(src.fd, dst.fd, stats, progress, so.uring_opt);
	return plain_copy(src, dst, false, stats, progress);
}

/*
 * A simulated device's saving data fd may queue device memory by
 * reference (uvfio_copy_to_user_stable). Spliced on into a pipe or a
 * socket, the references outlive the stream: if the device then runs
 * again, bytes not yet taken downstream change under their checksum. Where
 * the device will run after a save, only a regular file (whose page cache
 * takes a copy) gets spliced data; anything else gets copies, as from a
 * kernel data fd (which does not splice at all).
 */
static bool is_regular_file(int fd)
{
	struct stat st;
	return !fstat(fd, &st) && S_ISREG(st.st_mode);
}

/* -------- the protocols -------- */

const char *protocol_name(Protocol p)
{
	return p == Protocol::V1 ? "v1" : "v2";
}

int parse_protocol(const std::string &name, Protocol *p)
{
	if (name == "v1")
		*p = Protocol::V1;
	else if (name == "v2")
		*p = Protocol::V2;
	else
		return -EINVAL;
	return 0;
}

int MigrationV2::set_state(__u32 state, Endpoint *stream)
{
	int fd = -1;
	int ret = dev_.set_state(state, &fd);
	if (stream)
		*stream = {&dev_.transport(), fd};
	else if (fd >= 0)
		dev_.transport().close(fd);
	return ret;
}

void MigrationV2::close_stream(Endpoint *stream)
{
	if (stream->fd >= 0)
		dev_.transport().close(stream->fd);
	*stream = {};
}

int MigrationV2::precopy_info(const Endpoint &stream, __u64 *initial,
			      __u64 *dirty)
{
	return dev_.precopy_info(stream.fd, initial, dirty);
}

namespace {

/* What failed in a stream: the errno, and what the protocol saw. */
std::string stream_failure(Migration &mig, int err)
{
	std::string s = errstr(err);
	std::string detail = mig.stream_error();
	if (!detail.empty())
		s += " (" + detail + ")";
	return s;
}

} // namespace

int save_device(Migration &mig, const Endpoint &dst, bool leave_stopped,
		StreamStats *stats, std::string *why, const Progress &progress,
		const StreamOptions &so)
{
	__u32 orig;
	int ret = mig.get_state(&orig);
	if (ret) {
		say(why, "cannot read the device state: " + errstr(ret));
		return ret;
	}
	if (orig != VFIO_DEVICE_STATE_RUNNING && orig != VFIO_DEVICE_STATE_STOP &&
	    orig != VFIO_DEVICE_STATE_RUNNING_P2P)
		orig = VFIO_DEVICE_STATE_STOP;
	Endpoint from;
	ret = mig.set_state(VFIO_DEVICE_STATE_STOP_COPY, &from);
	if (ret || !from.valid()) {
		say(why, "cannot enter STOP_COPY: " + errstr(ret ? ret : -EPROTO));
		mig.close_stream(&from);
		recover(mig, orig);
		return ret ? ret : -EPROTO;
	}
	__u32 after = leave_stopped ? __u32(VFIO_DEVICE_STATE_STOP) : orig;
	StreamOptions copy_so = so;
	if (after != VFIO_DEVICE_STATE_STOP && !is_regular_file(dst.fd))
		copy_so.uring_opt.splice = false;
	ret = copy_to_eof(from, dst, copy_so, stats, progress);
	mig.close_stream(&from);
	if (ret) {
		say(why, "saving the device state failed: " +
				 stream_failure(mig, ret));
		recover(mig, orig);
		return ret;
	}
	ret = mig.set_state(after);
	if (ret) {
		say(why, std::string("saved, but cannot return to ") +
				 state_name(after) + ": " + errstr(ret));
		recover(mig, VFIO_DEVICE_STATE_RUNNING);
	}
	return ret;
}

int save_device(Device &dev, const Endpoint &dst, bool leave_stopped,
		StreamStats *stats, std::string *why, const Progress &progress,
		const StreamOptions &so)
{
	MigrationV2 mig(dev);
	return save_device(mig, dst, leave_stopped, stats, why, progress, so);
}

int load_device(Migration &mig, const Endpoint &src, bool run,
		StreamStats *stats, std::string *why, const Progress &progress,
		const StreamOptions &so)
{
	Endpoint to;
	int ret = 0;
	/*
	 * v2 stops first, as before; v1 goes to RESUMING from where it is,
	 * as the KABI's resuming sequence does (RUNNING to RESUMING).
	 */
	if ((mig.protocol() == Protocol::V2 &&
	     (ret = mig.set_state(VFIO_DEVICE_STATE_STOP))) ||
	    (ret = mig.set_state(VFIO_DEVICE_STATE_RESUMING, &to)) ||
	    !to.valid()) {
		say(why, "cannot enter RESUMING: " + errstr(ret ? ret : -EPROTO));
		mig.close_stream(&to);
		recover(mig, VFIO_DEVICE_STATE_RUNNING);
		return ret ? ret : -EPROTO;
	}
	ret = copy_to_eof(src, to, so, stats, progress);
	mig.close_stream(&to);
	if (ret) {
		say(why, "loading the device state failed: " +
				 stream_failure(mig, ret));
		mig.reset();
		return ret;
	}
	ret = mig.set_state(VFIO_DEVICE_STATE_STOP);
	if (ret) {
		say(why, "the device refused the state (" + errstr(ret) +
				 "); it was reset");
		mig.reset();
		return ret;
	}
	if (run && (ret = mig.set_state(VFIO_DEVICE_STATE_RUNNING))) {
		say(why, "loaded, but cannot run: " + errstr(ret));
		mig.reset();
	}
	return ret;
}

int load_device(Device &dev, const Endpoint &src, bool run,
		StreamStats *stats, std::string *why, const Progress &progress,
		const StreamOptions &so)
{
	MigrationV2 mig(dev);
	return load_device(mig, src, run, stats, why, progress, so);
}

} // namespace uvfio::tools
