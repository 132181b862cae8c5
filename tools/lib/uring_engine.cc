// SPDX-License-Identifier: GPL-2.0-only
/*
 * The io_uring stream engine. A stream must reach the sink in order, so
 * at most one operation reads the source and one writes the sink at a
 * time; what runs in parallel is the read of chunk n+1 with the write of
 * chunk n (and up to depth - 2 more chunks queued between them).
 *
 * Two ways to move a chunk:
 *  - splice: source -> a pipe of the slot -> sink, with IORING_OP_SPLICE.
 *    Nothing is copied through this process (AF_UNIX sockets, pipes and
 *    files all splice); the default.
 *  - read/write into registered buffers (IORING_OP_READ_FIXED and
 *    WRITE_FIXED), when a descriptor does not splice: EINVAL on the first
 *    splice before any byte moved, from the source or from the sink (a
 *    kernel driver's resuming data file has no splice_write, and
 *    do_splice_from() refuses it). Chunks already in a pipe when the sink
 *    refuses are read out of it into their buffer first.
 *
 * One completion per SQE, reaped in batches; short writes are resubmitted
 * for the rest, EAGAIN and EINTR retried, anything else ends the copy with
 * that errno. Seekable descriptors are used at explicit offsets from their
 * position, which is moved past the data at the end, as read(2) and
 * write(2) would.
 */
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <mutex>
#include <vector>

#include <liburing.h>

#include <uvfio/tools/migration.h>

namespace uvfio::tools {

namespace {

using clock_type = std::chrono::steady_clock;

struct Slot {
	enum { FREE, FILLING, FILLED, DRAINING } state = FREE;
	int pipe[2] = {-1, -1};
	size_t bytes = 0;	/* filled and not yet written */
	size_t done = 0;	/* written of them */
	bool piped = false;	/* the bytes are in pipe, not in the buffer */
};

/* user_data: slot index and direction. */
constexpr __u64 OUT_BIT = 1ULL << 32;

/*
 * Held while a ring is mapped (queue_init) and unmapped (queue_exit).
 * liburing maps and unmaps rings with raw system calls, which
 * ThreadSanitizer does not see: when one thread's ring is unmapped and
 * another thread's new ring lands at the same address, the two threads'
 * accesses look like a race. The kernel orders them (the address is free
 * only after the unmap); this lock says so in a way TSan sees, at a cost
 * of one uncontended lock per stream, not per chunk.
 */
std::mutex ring_map_lock;

/* An offset for a descriptor: its position if it seeks, else -1. */
__s64 start_offset(int fd)
{
	off_t o = lseek(fd, 0, SEEK_CUR);
	return o < 0 ? -1 : __s64(o);
}

class Copier
{
public:
	Copier(int in, int out, const UringOptions &o) : in_(in), out_(out), o_(o)
	{
	}
	~Copier()
	{
		for (auto &s : slots_)
			for (int fd : s.pipe)
				if (fd >= 0)
					close(fd);
		if (ring_ok_) {
			std::lock_guard<std::mutex> g(ring_map_lock);
			io_uring_queue_exit(&ring_);
		}
	}

	int run(StreamStats *stats, const Progress &progress);

private:
	int setup();
	int use_buffers();
	int unpipe(Slot &s, unsigned k);
	void submit_in(unsigned k);
	int submit_out(unsigned k);
	int complete(struct io_uring_cqe *cqe);

	int in_, out_;
	UringOptions o_;
	struct io_uring ring_;
	bool ring_ok_ = false;
	bool splice_ = true;
	std::vector<Slot> slots_;
	std::vector<std::vector<char>> bufs_;
	unsigned fill_ = 0, drain_ = 0;	/* next slot to fill / to drain */
	bool in_busy_ = false, out_busy_ = false, eof_ = false;
	__s64 in_off_ = -1, out_off_ = -1;
	__u64 moved_ = 0;
};

int Copier::setup()
{
	if (o_.depth < 2)
		o_.depth = 2;
	int ret;
	{
		std::lock_guard<std::mutex> g(ring_map_lock);
		ret = io_uring_queue_init(2 * o_.depth, &ring_, 0);
	}
	if (ret)
		return ret;
	ring_ok_ = true;
	in_off_ = start_offset(in_);
	out_off_ = start_offset(out_);
	slots_.resize(o_.depth);
	if (!o_.splice)
		return use_buffers();
	for (auto &s : slots_) {
		if (pipe2(s.pipe, O_CLOEXEC))
			return -errno;
		/* A chunk per pipe; a smaller pipe just means shorter splices. */
		fcntl(s.pipe[1], F_SETPIPE_SZ, int(o_.chunk));
	}
	return 0;
}

/* Registered buffers instead of pipes. */
int Copier::use_buffers()
{
	splice_ = false;
	bufs_.assign(o_.depth, std::vector<char>(o_.chunk));
	std::vector<struct iovec> iov;
	for (auto &b : bufs_)
		iov.push_back({b.data(), b.size()});
	/* Registration helps (no per-I/O page pinning) but is optional. */
	io_uring_register_buffers(&ring_, iov.data(), unsigned(iov.size()));
	return 0;
}

void Copier::submit_in(unsigned k)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring_);
	if (!sqe) {	/* full SQ: flush and retry */
		io_uring_submit(&ring_);
		sqe = io_uring_get_sqe(&ring_);
	}
	Slot &s = slots_[k];
	s.piped = splice_;
	if (splice_)
		io_uring_prep_splice(sqe, in_, in_off_, s.pipe[1], -1,
				     unsigned(o_.chunk), SPLICE_F_MOVE);
	else
		io_uring_prep_read_fixed(sqe, in_, bufs_[k].data(),
					 unsigned(o_.chunk), __u64(in_off_),
					 int(k));
	io_uring_sqe_set_data64(sqe, k);
	s.state = Slot::FILLING;
	in_busy_ = true;
}

/* A chunk spliced into its pipe, for a sink that does not splice. */
int Copier::unpipe(Slot &s, unsigned k)
{
	for (size_t got = 0; got < s.bytes;) {
		ssize_t n = read(s.pipe[0], bufs_[k].data() + got, s.bytes - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n ? -errno : -EIO;
		got += size_t(n);
	}
	s.piped = false;
	return 0;
}

int Copier::submit_out(unsigned k)
{
	Slot &s = slots_[k];
	if (s.piped && !splice_) {
		int ret = unpipe(s, k);
		if (ret)
			return ret;
	}
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring_);
	if (!sqe) {
		io_uring_submit(&ring_);
		sqe = io_uring_get_sqe(&ring_);
	}
	unsigned len = unsigned(s.bytes - s.done);
	if (s.piped)
		io_uring_prep_splice(sqe, s.pipe[0], -1, out_, out_off_, len,
				     SPLICE_F_MOVE);
	else
		io_uring_prep_write_fixed(sqe, out_, bufs_[k].data() + s.done,
					  len, __u64(out_off_), int(k));
	io_uring_sqe_set_data64(sqe, k | OUT_BIT);
	s.state = Slot::DRAINING;
	out_busy_ = true;
	return 0;
}

/* One completion: 0, or the copy's error. */
int Copier::complete(struct io_uring_cqe *cqe)
{
	__u64 data = io_uring_cqe_get_data64(cqe);
	unsigned k = unsigned(data & 0xffffffff);
	Slot &s = slots_[k];
	int res = cqe->res;

	if (!(data & OUT_BIT)) {
		in_busy_ = false;
		if (res == -EAGAIN || res == -EINTR) {
			s.state = Slot::FREE;	/* the loop asks again */
			return 0;
		}
		if (res == -EINVAL && splice_ && !moved_ && fill_ == 0 &&
		    k == 0) {
			/* This pair of descriptors does not splice. */
			s.state = Slot::FREE;
			return use_buffers();
		}
		if (res < 0)
			return res;
		if (res == 0) {
			eof_ = true;
			s.state = Slot::FREE;
			return 0;
		}
		if (in_off_ >= 0)
			in_off_ += res;
		s.bytes = size_t(res);
		s.done = 0;
		s.state = Slot::FILLED;
		fill_ = (fill_ + 1) % o_.depth;
		return 0;
	}

	out_busy_ = false;
	if (res == -EAGAIN || res == -EINTR) {
		s.state = Slot::FILLED;
		return 0;
	}
	if (res == -EINVAL && s.piped && splice_ && !moved_ && !s.done) {
		/* The sink does not splice: the rest goes through buffers. */
		s.state = Slot::FILLED;
		return use_buffers();
	}
	if (res < 0)
		return res;
	if (res == 0)
		return -EIO;	/* a sink that takes nothing */
	if (out_off_ >= 0)
		out_off_ += res;
	s.done += size_t(res);
	moved_ += __u64(res);
	if (s.done < s.bytes) {
		s.state = Slot::FILLED;	/* short write: the rest next */
		return 0;
	}
	s.state = Slot::FREE;
	s.bytes = s.done = 0;
	drain_ = (drain_ + 1) % o_.depth;
	return 0;
}

int Copier::run(StreamStats *stats, const Progress &progress)
{
	int ret = setup();
	if (ret)
		return ret;
	auto t0 = clock_type::now(), last = t0;

	for (;;) {
		if (!in_busy_ && !eof_ && slots_[fill_].state == Slot::FREE)
			submit_in(fill_);
		if (!out_busy_ && slots_[drain_].state == Slot::FILLED) {
			ret = submit_out(drain_);
			if (ret)
				return ret;
		}
		if (!in_busy_ && !out_busy_)
			break;	/* EOF and everything written */

		struct io_uring_cqe *cqe;
		ret = io_uring_submit_and_wait(&ring_, 1);
		if (ret < 0 && ret != -EINTR)
			return ret;
		/* Reap what is there in one batch. */
		unsigned head, n = 0;
		int err = 0;
		io_uring_for_each_cqe(&ring_, head, cqe) {
			if (!err) {
				err = complete(cqe);
			} else {
				/*
				 * Reaped after an error: its operation is over
				 * too, or the wait below would be for nothing.
				 */
				__u64 d = io_uring_cqe_get_data64(cqe);
				(d & OUT_BIT ? out_busy_ : in_busy_) = false;
			}
			n++;
		}
		io_uring_cq_advance(&ring_, n);
		if (err) {
			/* Let the other operation finish before returning. */
			while (in_busy_ || out_busy_) {
				if (io_uring_wait_cqe(&ring_, &cqe))
					break;
				__u64 d = io_uring_cqe_get_data64(cqe);
				(d & OUT_BIT ? out_busy_ : in_busy_) = false;
				io_uring_cqe_seen(&ring_, cqe);
			}
			return err;
		}
		if (progress && clock_type::now() - last >
					std::chrono::milliseconds(100)) {
			last = clock_type::now();
			progress(moved_);
		}
	}
	/* As read(2)/write(2) would: positions after what was moved. */
	if (in_off_ >= 0)
		lseek(in_, in_off_, SEEK_SET);
	if (out_off_ >= 0)
		lseek(out_, out_off_, SEEK_SET);
	if (stats) {
		stats->bytes += moved_;
		stats->seconds += std::chrono::duration<double>(
					  clock_type::now() - t0).count();
	}
	if (progress)
		progress(moved_);
	return 0;
}

} // namespace

int uring_copy(int in_fd, int out_fd, StreamStats *stats,
	       const Progress &progress, const UringOptions &opt)
{
	Copier c(in_fd, out_fd, opt);
	return c.run(stats, progress);
}

} // namespace uvfio::tools
