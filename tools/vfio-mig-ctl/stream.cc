// SPDX-License-Identifier: GPL-2.0-only
/* Saving and loading with the digest of the stream; see stream.h. */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include <xxhash.h>

#include "stream.h"

namespace uvfio::mig_ctl {

namespace {

int write_all_fd(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= size_t(w);
	}
	return 0;
}

/*
 * Where a save's stream goes as it is read, hashed on the way: the save
 * writes into a pipe (fd()), a thread reads it, feeds the XXH3-64 digest
 * and writes to the output (or only hashes, without one). Nothing holds
 * more than two chunks of the stream, whatever the device's size.
 *
 * The thread holds back the last chunk it read until finish() says the
 * save succeeded. A save that fails, even after its stream's end (the
 * device cannot return to its state), so leaves its reader a truncated
 * stream, which every driver's resume rejects, never a complete one: what
 * buffering the whole stream gave before, without the memory.
 */
class DigestSink
{
public:
	static constexpr size_t CHUNK = 1 << 20;

	~DigestSink()
	{
		finish(false);
		XXH3_freeState(xxh_);
	}

	/* out < 0: hash only. 0 or -errno. */
	int open(int out)
	{
		out_ = out;
		xxh_ = XXH3_createState();
		if (!xxh_)
			return -ENOMEM;
		XXH3_64bits_reset(xxh_);
		if (pipe2(pipe_, O_CLOEXEC))
			return -errno;
		/* A chunk per pipe write: fewer wake-ups (best effort). */
		fcntl(pipe_[1], F_SETPIPE_SZ, int(CHUNK));
		cur_.resize(CHUNK);
		held_.resize(CHUNK);
		thread_ = std::thread([this] { drain(); });
		return 0;
	}

	/* What the save writes into. */
	int fd() const { return pipe_[1]; }

	/*
	 * The save is over: end the pipe, wait for the thread, and write the
	 * held-back chunk if it succeeded. 0, or the output's -errno.
	 */
	int finish(bool succeeded)
	{
		if (pipe_[1] >= 0) {
			close(pipe_[1]);
			pipe_[1] = -1;
		}
		if (thread_.joinable())
			thread_.join();
		if (pipe_[0] >= 0) {
			close(pipe_[0]);
			pipe_[0] = -1;
		}
		if (succeeded && !err_ && held_len_ && out_ >= 0)
			err_ = write_all_fd(out_, held_.data(), held_len_);
		held_len_ = 0;
		return err_;
	}

	__u64 bytes() const { return bytes_; }
	__u64 digest() const { return XXH3_64bits_digest(xxh_); }

private:
	void drain()
	{
		for (;;) {
			ssize_t n = read(pipe_[0], cur_.data(), cur_.size());
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				if (n < 0)
					err_ = -errno;
				return;
			}
			XXH3_64bits_update(xxh_, cur_.data(), size_t(n));
			bytes_ += __u64(n);
			if (held_len_ && out_ >= 0)
				err_ = write_all_fd(out_, held_.data(), held_len_);
			if (err_) {
				/*
				 * The output is gone: close the pipe so that
				 * the save fails now (EPIPE) and returns the
				 * device to its state, instead of streaming
				 * the rest into nothing.
				 */
				close(pipe_[0]);
				pipe_[0] = -1;
				held_len_ = 0;
				return;
			}
			cur_.swap(held_);
			held_len_ = size_t(n);
		}
	}

	int out_ = -1;
	int pipe_[2] = {-1, -1};
	XXH3_state_t *xxh_ = nullptr;
	std::vector<char> cur_, held_;
	size_t held_len_ = 0;
	__u64 bytes_ = 0;
	int err_ = 0;			/* the thread's, read after join */
	std::thread thread_;
};


} // namespace

int save_to_memfd(Migration &mig, bool leave_stopped, std::string *why,
		  const Progress &p)
{
	int mfd = memfd_create("vfio-mig-ctl", MFD_CLOEXEC);
	if (mfd < 0)
		return -errno;
	int ret = save_device(mig, {nullptr, mfd}, leave_stopped, nullptr,
			      why, p, stream_opt);
	if (ret) {
		close(mfd);
		return ret;
	}
	return mfd;
}

int save_streaming(Migration &mig, int out, bool leave_stopped, __u64 *digest,
		   __u64 *len, int *out_err, std::string *why,
		   const Progress &p)
{
	DigestSink sink;
	*out_err = 0;
	int ret = sink.open(out);
	if (ret) {
		*why = std::string("cannot start the stream: ") + strerror(-ret);
		return ret;
	}
	ret = save_device(mig, {nullptr, sink.fd()}, leave_stopped, nullptr,
			  why, p, stream_opt);
	*out_err = sink.finish(!ret);
	*digest = sink.digest();
	*len = sink.bytes();
	if (!ret && *out_err)
		ret = *out_err;
	return ret;
}

int load_digest_run(CmdDevice &d, int in_fd, StreamStats *st, __u64 *digest,
		    std::string *why, const Progress &progress)
{
	int ret = load_device(*d.mig, {nullptr, in_fd}, false, st, why,
			      progress, stream_opt);
	if (ret)
		return ret;
	/* Hashed as it is read: no copy of the state is kept. */
	__u64 len;
	int out_err;
	ret = save_streaming(*d.mig, -1, true, digest, &len, &out_err, why);
	if (ret) {
		*why = "re-saving for the digest: " + *why;
		return ret;
	}
	if ((ret = d.mig->set_state(VFIO_DEVICE_STATE_RUNNING)))
		*why = "the device cannot run: " + std::string(strerror(-ret));
	return ret;
}

void print_loaded(const CmdDevice &d, const char *verb, const StreamStats &st,
		  __u64 digest, bool as_json, const json &extra)
{
	json j = d.report({{"protocol", protocol_name(protocol_opt)},
			   {"bytes", st.bytes}, {"seconds", st.seconds},
			   {"digest", hex64(digest)}, {"state", "running"}});
	for (const auto &[k, v] : extra.items())
		j[k] = v;
	if (as_json)
		emit_json(j);
	else
		fmt::print("{} {} bytes into {}{} in {:.3f} s, running "
			   "(digest {})\n", verb, st.bytes, d.label(), via(),
			   st.seconds, hex64(digest));
}

} // namespace uvfio::mig_ctl
