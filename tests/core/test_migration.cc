// SPDX-License-Identifier: GPL-2.0-only
/*
 * Migration through the uAPI on testdev: round trips, corrupt streams,
 * pre-copy and PRECOPY_INFO, MIG_DATA_SIZE, and the data-fd rules (a real
 * fd: read(2), poll(2), io_uring; end of stream on leaving the state, on
 * reset and on close). Everything goes through the syscall surface.
 */
#include <gtest/gtest.h>

#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <xxhash.h>

#include <uvfio/uapi/vfio.h>
#include <uvfio/uvfio.h>

#include "test_util.h"

using namespace uvfio_test;

namespace {

constexpr unsigned STOP = VFIO_DEVICE_STATE_STOP;
constexpr unsigned RUNNING = VFIO_DEVICE_STATE_RUNNING;
constexpr unsigned STOP_COPY = VFIO_DEVICE_STATE_STOP_COPY;
constexpr unsigned RESUMING = VFIO_DEVICE_STATE_RESUMING;
constexpr unsigned PRE_COPY = VFIO_DEVICE_STATE_PRE_COPY;
constexpr unsigned PRE_COPY_P2P = VFIO_DEVICE_STATE_PRE_COPY_P2P;
constexpr off_t BAR0 = static_cast<off_t>(VFIO_PCI_BAR0_REGION_INDEX) << 40;
constexpr off_t BAR2 = static_cast<off_t>(VFIO_PCI_BAR2_REGION_INDEX) << 40;

using bytes = std::vector<unsigned char>;


/* One testdev, added and opened for a test. */
class MigDevice
{
public:
	explicit MigDevice(const std::string &spec) : dev_(spec)
	{
		if (dev_.added())
			fd_ = uvfio_open(dev_.name());
	}
	~MigDevice()
	{
		if (fd_ >= 0)
			uvfio_close(fd_);
	}
	MigDevice(const MigDevice &) = delete;
	MigDevice &operator=(const MigDevice &) = delete;

	int fd() const { return fd_; }
	/* Close the device fd early (the last close). */
	void close_fd()
	{
		uvfio_close(fd_);
		fd_ = -1;
	}

	/* MIG_DEVICE_STATE SET: 0 or -errno; *data_fd as returned. */
	int set(unsigned state, int *data_fd = nullptr)
	{
		FeatureArg<struct vfio_device_feature_mig_state> a(
			VFIO_DEVICE_FEATURE_SET |
			VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
		a.d()->device_state = state;
		a.d()->data_fd = -7;
		int r = uvfio_ioctl(fd_, VFIO_DEVICE_FEATURE, a.f());
		if (data_fd)
			*data_fd = a.d()->data_fd;
		return r ? -errno : 0;
	}

	/* SET expecting success; returns data_fd. */
	int set_ok(unsigned state)
	{
		int data_fd = -7;
		EXPECT_EQ(set(state, &data_fd), 0) << "to state " << state;
		return data_fd;
	}

	unsigned get()
	{
		FeatureArg<struct vfio_device_feature_mig_state> a(
			VFIO_DEVICE_FEATURE_GET |
			VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
		a.d()->data_fd = 99;
		EXPECT_EQ(uvfio_ioctl(fd_, VFIO_DEVICE_FEATURE, a.f()), 0);
		EXPECT_EQ(a.d()->data_fd, -1);
		return a.d()->device_state;
	}

	/* MIG_DATA_SIZE GET, or -errno. */
	long long data_size()
	{
		FeatureArg<struct vfio_device_feature_mig_data_size> a(
			VFIO_DEVICE_FEATURE_GET |
			VFIO_DEVICE_FEATURE_MIG_DATA_SIZE);
		if (uvfio_ioctl(fd_, VFIO_DEVICE_FEATURE, a.f()))
			return -errno;
		return static_cast<long long>(a.d()->stop_copy_length);
	}

	int reset() { return uvfio_ioctl(fd_, VFIO_DEVICE_RESET, nullptr) ? -errno : 0; }

	bytes pread_region(off_t base, size_t len, off_t off = 0)
	{
		bytes b(len);
		EXPECT_EQ(uvfio_pread(fd_, b.data(), len, base + off),
			  static_cast<ssize_t>(len));
		return b;
	}

	void pwrite_region(off_t base, const bytes &b, off_t off = 0)
	{
		EXPECT_EQ(uvfio_pwrite(fd_, b.data(), b.size(), base + off),
			  static_cast<ssize_t>(b.size()));
	}

	bool ok() const { return fd_ >= 0; }

private:
	SimDevice dev_;
	int fd_ = -1;
};

bytes random_bytes(size_t n, unsigned seed)
{
	std::mt19937 rng(seed);
	bytes b(n);
	for (auto &c : b)
		c = static_cast<unsigned char>(rng());
	return b;
}

/* read(2) to end of stream; -errno if a read fails. */
long read_to_eof(int fd, bytes *out, size_t chunk = 1 << 20)
{
	bytes buf(chunk);
	for (;;) {
		ssize_t n = read(fd, buf.data(), buf.size());
		if (n < 0)
			return -errno;
		if (n == 0)
			return static_cast<long>(out->size());
		out->insert(out->end(), buf.begin(), buf.begin() + n);
	}
}

/*
 * write(2) everything in chunk-sized pieces; -errno if a write fails. Once
 * a driver refused the stream (a bad header) the write is EPIPE and, unless
 * ignored, SIGPIPE (uapi.md): ignored here, as a VMM does.
 */
int write_all(int fd, const bytes &b, size_t chunk)
{
	signal(SIGPIPE, SIG_IGN);
	for (size_t off = 0; off < b.size();) {
		size_t n = std::min(chunk, b.size() - off);
		ssize_t w = write(fd, b.data() + off, n);
		if (w < 0)
			return -errno;
		off += static_cast<size_t>(w);
	}
	return 0;
}

/*
 * uvfio_read until ENOMSG or end of stream; returns the errno that stopped
 * it (ENOMSG), 0 at end of stream, or another errno.
 */
int uvfio_read_available(int fd, bytes *out, size_t chunk = 1 << 20)
{
	bytes buf(chunk);
	for (;;) {
		ssize_t n = uvfio_read(fd, buf.data(), buf.size());
		if (n < 0)
			return errno;
		if (n == 0)
			return 0;
		out->insert(out->end(), buf.begin(), buf.begin() + n);
	}
}

/*
 * A saving fd the core ended before its end of stream (state left, reset,
 * device closed): read(2) fails once with ECONNRESET, nothing that was
 * queued arrives, then end of stream.
 */
void expect_ended_early(int data_fd)
{
	char c;
	EXPECT_EQ(read(data_fd, &c, 1), -1);
	EXPECT_EQ(errno, ECONNRESET);
	EXPECT_EQ(read(data_fd, &c, 1), 0);
}

int precopy_info(int data_fd, struct vfio_precopy_info *info,
		 unsigned argsz = sizeof(struct vfio_precopy_info))
{
	*info = {};
	info->argsz = argsz;
	return uvfio_ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, info) ? -errno
								     : 0;
}

/* Source state a round trip must reproduce: BAR0 and all of BAR2. */
void fill_device(MigDevice &d, size_t mem, unsigned seed)
{
	d.pwrite_region(BAR0, random_bytes(4096, seed));
	d.pwrite_region(BAR2, random_bytes(mem, seed + 1));
}

/* Save a device from its current state: STOP_COPY, read to EOF, STOP. */
bytes save(MigDevice &d)
{
	bytes s;
	int data_fd = d.set_ok(STOP_COPY);
	EXPECT_GE(data_fd, 0);
	EXPECT_GE(read_to_eof(data_fd, &s), 0);
	EXPECT_EQ(d.set(STOP), 0);
	uvfio_close(data_fd);
	return s;
}

/*
 * Load a stream: RESUMING, write it, then the given end state. A write the
 * driver refused (a bad stream header) fails that SET with its errno.
 */
int load(MigDevice &d, const bytes &s, unsigned end_state = RUNNING,
	 size_t chunk = 32 << 10)
{
	int data_fd = d.set_ok(RESUMING);
	EXPECT_GE(data_fd, 0);
	int w = write_all(data_fd, s, chunk);
	int ret = d.set(end_state);
	if (w) {
		EXPECT_NE(ret, 0) << "a write failed (" << w << "), the SET "
				     "did not say so";
	}
	uvfio_close(data_fd);
	return ret;
}

const std::string kSpec = "mig=stop_copy|p2p,mem=1M,state=12345,seed=";

// Contract: source RUNNING -> STOP_COPY, read to end of stream; destination
// RUNNING -> RESUMING, write it all, -> RUNNING reproduces the device state
// byte for byte: BAR0, BAR2 and the internal state (a second save of the
// destination yields the source's stream exactly). The stream is exactly
// MIG_DATA_SIZE bytes.
TEST(MigrationRoundTrip, ReproducesDeviceStateByteForByte)
{
	MigDevice src(kSpec + "1"), dst(kSpec + "2");
	ASSERT_TRUE(src.ok() && dst.ok());
	fill_device(src, 1 << 20, 10);
	bytes bar0 = src.pread_region(BAR0, 4096);
	bytes bar2 = src.pread_region(BAR2, 1 << 20);
	long long size = src.data_size();

	bytes stream;
	int data_fd = src.set_ok(STOP_COPY);
	ASSERT_GE(data_fd, 0);
	ASSERT_EQ(read_to_eof(data_fd, &stream), size);
	/* End of stream stays end of stream. */
	char c;
	EXPECT_EQ(read(data_fd, &c, 1), 0);
	EXPECT_EQ(src.set(STOP), 0);
	EXPECT_EQ(uvfio_close(data_fd), 0);

	ASSERT_EQ(load(dst, stream), 0);
	EXPECT_EQ(dst.get(), RUNNING);
	EXPECT_EQ(dst.pread_region(BAR0, 4096), bar0);
	EXPECT_EQ(dst.pread_region(BAR2, 1 << 20), bar2);
	EXPECT_EQ(save(dst), stream);
}

// Contract: the round trip does not depend on how userspace chunks its
// reads and writes (1 byte to 3 MiB, through the raw fd or uvfio_read/
// uvfio_write), and the resume side sees every byte before RESUMING -> STOP.
TEST(MigrationRoundTrip, AnyChunking)
{
	MigDevice src(kSpec + "3"), dst(kSpec + "4");
	ASSERT_TRUE(src.ok() && dst.ok());
	fill_device(src, 1 << 20, 20);
	bytes ref = save(src);

	for (size_t chunk : {size_t{1} << 20, size_t{4093}, size_t{3} << 20}) {
		SCOPED_TRACE(chunk);
		bytes s;
		ASSERT_EQ(src.set(RUNNING), 0);
		int data_fd = src.set_ok(STOP_COPY);
		ASSERT_EQ(read_to_eof(data_fd, &s, chunk), static_cast<long>(ref.size()));
		EXPECT_EQ(s, ref);
		EXPECT_EQ(src.set(STOP), 0);
		uvfio_close(data_fd);

		ASSERT_EQ(dst.set(RUNNING), 0);
		int rfd = dst.set_ok(RESUMING);
		for (size_t off = 0; off < s.size();) {
			size_t n = std::min(chunk, s.size() - off);
			ssize_t w = uvfio_write(rfd, s.data() + off, n);
			ASSERT_GT(w, 0) << strerror(errno);
			off += static_cast<size_t>(w);
		}
		EXPECT_EQ(dst.set(STOP), 0);
		uvfio_close(rfd);
		EXPECT_EQ(save(dst), ref);
	}
}

struct Corruption {
	const char *name;
	void (*apply)(bytes &s);
	const char *log;	/* the log line must say this */
	/*
	 * In the stream header: the driver refuses the write that completes
	 * it, so a later write(2) may fail (EPIPE) before the SET says so.
	 */
	bool header;
};

const Corruption corruptions[] = {
	{"truncated_mid_record", [](bytes &s) { s.erase(s.begin() + s.size() / 2, s.end()); },
	 "truncated", false},
	{"truncated_before_end", [](bytes &s) { s.erase(s.end() - 40, s.end()); },
	 "truncated", false},
	{"one_byte_short", [](bytes &s) { s.pop_back(); }, "truncated", false},
	{"payload_bit_flip", [](bytes &s) { s[100000] ^= 0x10; }, "checksum", false},
	{"bad_magic", [](bytes &s) { s[0] ^= 0xff; }, "bad magic", true},
	{"bad_version", [](bytes &s) { s[4] = 9; }, "version", true},
	{"trailing_bytes", [](bytes &s) { s.push_back(0); }, "trailing", false},
	{"empty", [](bytes &s) { s.clear(); }, "empty", false},
};

class MigrationCorruptStream : public ::testing::TestWithParam<Corruption>
{
};

// Contract: a damaged stream fails RESUMING -> STOP with EINVAL and one log
// line naming the problem; the device stays in RESUMING with its previous
// state intact (never half-loaded), and VFIO_DEVICE_RESET brings it back to
// RUNNING.
TEST_P(MigrationCorruptStream, RejectedAtResumingToStop)
{
	const Corruption &c = GetParam();
	MigDevice src(kSpec + "5"), dst(kSpec + "6");
	ASSERT_TRUE(src.ok() && dst.ok());
	fill_device(src, 1 << 20, 30);
	fill_device(dst, 1 << 20, 40);
	bytes before = dst.pread_region(BAR2, 1 << 20);
	bytes s = save(src);
	c.apply(s);

	LogCapture log;
	int rfd = dst.set_ok(RESUMING);
	int w = write_all(rfd, s, 32 << 10);
	if (c.header)
		EXPECT_TRUE(w == 0 || w == -EPIPE || w == -ECONNRESET) << w;
	else
		ASSERT_EQ(w, 0);
	EXPECT_EQ(dst.set(RUNNING), -EINVAL);
	EXPECT_TRUE(log.contains(c.log)) << "no log line with '" << c.log << "'";
	EXPECT_EQ(dst.get(), RESUMING);
	EXPECT_EQ(dst.pread_region(BAR2, 1 << 20), before);
	EXPECT_EQ(dst.reset(), 0);
	EXPECT_EQ(dst.get(), RUNNING);
	EXPECT_EQ(dst.pread_region(BAR2, 1 << 20), before);
	uvfio_close(rfd);
}

INSTANTIATE_TEST_SUITE_P(Damage, MigrationCorruptStream,
			 ::testing::ValuesIn(corruptions),
			 [](const auto &info) { return info.param.name; });

// Contract: a stream from a device with another configuration (a different
// device-memory size) is refused with EINVAL and a log line that names the
// mismatch.
TEST(MigrationCorruptStream, ConfigurationMismatch)
{
	MigDevice src("mig=stop_copy,mem=1M"), dst("mig=stop_copy,mem=2M");
	ASSERT_TRUE(src.ok() && dst.ok());
	bytes s = save(src);
	LogCapture log;
	EXPECT_EQ(load(dst, s, STOP), -EINVAL);
	EXPECT_TRUE(log.contains("configuration mismatch"));
}

/* The bytes of testdev's stream header: CONFIG's record header, payload. */
constexpr size_t kHeader = 32 + 64;

// Contract: testdev's stream header carries its configuration (device
// memory, internal-state and MSI-X sizes) and is checked at the write that
// completes it: the header of a stream from a testdev configured otherwise
// is refused by the driver's write, before RESUMING -> STOP (the core
// fails the next SET with that EINVAL before asking the driver, and says
// so), with a log line naming the mismatch. The device stays in RESUMING
// with the stream broken (the next STOP fails too) until a reset.
TEST(MigrationStreamHeader, OtherConfigurationRefusedAtFirstWrite)
{
	MigDevice src("mig=stop_copy,mem=1M,msix=4,state=4096");
	ASSERT_TRUE(src.ok());
	bytes s = save(src);
	ASSERT_GT(s.size(), kHeader);
	bytes hdr(s.begin(), s.begin() + kHeader);
	for (const char *spec : {"mig=stop_copy,mem=2M,msix=4,state=4096",
				 "mig=stop_copy,mem=1M,msix=5,state=4096",
				 "mig=stop_copy,mem=1M,msix=4,state=4097"}) {
		SCOPED_TRACE(spec);
		MigDevice dst(spec);
		ASSERT_TRUE(dst.ok());
		LogCapture log;
		EXPECT_EQ(load(dst, hdr, STOP), -EINVAL);
		EXPECT_TRUE(log.contains("the migration data stream failed"));
		EXPECT_TRUE(log.contains("stream header refused: device "
					 "configuration mismatch"));
		EXPECT_EQ(dst.get(), RESUMING);
		EXPECT_EQ(dst.set(STOP), -EINVAL);
		EXPECT_EQ(dst.get(), RESUMING);
		EXPECT_EQ(dst.reset(), 0);
		EXPECT_EQ(dst.get(), RUNNING);
	}
}

// Contract: a stream from before testdev's header carried the device
// identity (version 1: CONFIG held the sizes alone) is refused at the
// write that completes its header, with EINVAL and a log line naming the
// version and why.
TEST(MigrationStreamHeader, OlderVersionRefusedAtFirstWrite)
{
	MigDevice dst("mig=stop_copy,mem=1M,state=4096");
	ASSERT_TRUE(dst.ok());
	/* Version 1's first record: CONFIG of mem, state and BAR0 sizes. */
	struct {
		uint32_t magic;
		uint16_t version, type;
		uint64_t offset;
		uint32_t length, seq;
		uint64_t hash;
		uint64_t mem, state, bar0;
	} v1 = {0x44545655, 1, 1, 0, 24, 0, 0, 1 << 20, 4096, 4096};
	v1.hash = XXH3_64bits_withSeed(&v1.mem, 24, XXH3_64bits(&v1, 24));
	bytes old(sizeof(v1));
	std::memcpy(old.data(), &v1, sizeof(v1));
	LogCapture log;
	EXPECT_EQ(load(dst, old, STOP), -EINVAL);
	EXPECT_TRUE(log.contains("the migration data stream failed"));
	EXPECT_TRUE(log.contains("unsupported stream version 1 (this driver "
				 "reads 2; older streams carry no device "
				 "identity)"));
	EXPECT_EQ(dst.reset(), 0);
}

// Contract: stop-copy records of device memory go to the reader by
// reference (uvfio_copy_to_user_stable), so a write to that memory after
// its record is queued and before it is read shows in the stream; it is
// never loaded silently: the destination refuses the stream at RESUMING ->
// STOP with EINVAL (the record's checksum) and keeps its state.
TEST(MigrationCorruptStream, MemoryWrittenWhileQueuedIsRejected)
{
	MigDevice src("mig=stop_copy,mem=16M"), dst("mig=stop_copy,mem=16M");
	ASSERT_TRUE(src.ok() && dst.ok());
	fill_device(src, 16 << 20, 50);
	bytes before = dst.pread_region(BAR2, 1 << 20);
	int dfd = src.set_ok(STOP_COPY);
	ASSERT_GE(dfd, 0);
	/* Wait for the first MEM record (offset 0, 1 MiB) to be queued. */
	int queued = 0;
	for (int i = 0; i < 500 && queued < (2 << 20); i++) {
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
		ASSERT_EQ(ioctl(dfd, FIONREAD, &queued), 0);
	}
	ASSERT_GE(queued, 2 << 20);
	bytes b = src.pread_region(BAR2, 1, 100);
	b[0] ^= 0xff;
	src.pwrite_region(BAR2, b, 100);
	bytes s;
	EXPECT_GE(read_to_eof(dfd, &s), 0);
	EXPECT_EQ(src.set(STOP), 0);
	uvfio_close(dfd);

	LogCapture log;
	EXPECT_EQ(load(dst, s, STOP), -EINVAL);
	EXPECT_TRUE(log.contains("checksum"));
	EXPECT_EQ(dst.get(), RESUMING);
	EXPECT_EQ(dst.reset(), 0);
	EXPECT_EQ(dst.pread_region(BAR2, 1 << 20), before);
}

// Contract: the data fd is a real stream fd: poll(2) reports POLLIN when
// data is queued, pread is ESPIPE, writing a saving fd is EBADF (reading a
// resuming fd likewise), and data_fd is -1 for arcs that open no stream and
// for a SET to the current state.
TEST(MigrationDataFd, IsARealStreamFd)
{
	MigDevice d("mig=stop_copy");
	ASSERT_TRUE(d.ok());
	EXPECT_EQ(d.set_ok(STOP), -1);
	EXPECT_EQ(d.set_ok(STOP), -1);
	int data_fd = d.set_ok(STOP_COPY);
	ASSERT_GE(data_fd, 0);
	EXPECT_EQ(d.set_ok(STOP_COPY), -1);

	struct pollfd p = {data_fd, POLLIN, 0};
	EXPECT_EQ(poll(&p, 1, 5000), 1);
	EXPECT_TRUE(p.revents & POLLIN);
	char c;
	EXPECT_EQ(uvfio_pread(data_fd, &c, 1, 0), -1);
	EXPECT_EQ(errno, ESPIPE);
	EXPECT_EQ(uvfio_write(data_fd, &c, 1), -1);
	EXPECT_EQ(errno, EBADF);
	EXPECT_EQ(d.set(STOP), 0);
	uvfio_close(data_fd);

	int rfd = d.set_ok(RESUMING);
	ASSERT_GE(rfd, 0);
	EXPECT_EQ(uvfio_read(rfd, &c, 1), -1);
	EXPECT_EQ(errno, EBADF);
	p = {rfd, POLLOUT, 0};
	EXPECT_EQ(poll(&p, 1, 5000), 1);
	uvfio_close(rfd);
}

// Contract: io_uring reads the data fd unchanged: a ring of 1 MiB reads
// collects the same stream read(2) does.
TEST(MigrationDataFd, IoUringReadsTheStream)
{
	MigDevice d("mig=stop_copy,mem=4M,state=1M");
	ASSERT_TRUE(d.ok());
	fill_device(d, 4 << 20, 50);
	bytes ref = save(d);
	ASSERT_EQ(d.set(RUNNING), 0);

	int data_fd = d.set_ok(STOP_COPY);
	ASSERT_GE(data_fd, 0);
	struct io_uring ring;
	ASSERT_EQ(io_uring_queue_init(4, &ring, 0), 0);
	bytes got, buf(1 << 20);
	for (;;) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		io_uring_prep_read(sqe, data_fd, buf.data(), buf.size(), 0);
		ASSERT_EQ(io_uring_submit(&ring), 1);
		struct io_uring_cqe *cqe;
		ASSERT_EQ(io_uring_wait_cqe(&ring, &cqe), 0);
		int res = cqe->res;
		io_uring_cqe_seen(&ring, cqe);
		ASSERT_GE(res, 0) << strerror(-res);
		if (!res)
			break;
		got.insert(got.end(), buf.begin(), buf.begin() + res);
	}
	io_uring_queue_exit(&ring);
	EXPECT_EQ(got, ref);
	EXPECT_EQ(d.set(STOP), 0);
	uvfio_close(data_fd);
}

// Contract: leaving STOP_COPY before the end ends the stream as the kernel
// driver's disabled file does: uvfio_read fails with ENODEV, a raw read(2)
// with ECONNRESET (the queued bytes are dropped, never a hang, never a
// clean-looking end), then reads end of stream.
TEST(MigrationDataFd, LeavingTheStateEndsTheStream)
{
	MigDevice d("mig=stop_copy,mem=16M");
	ASSERT_TRUE(d.ok());
	int data_fd = d.set_ok(STOP_COPY);
	ASSERT_GE(data_fd, 0);
	char buf[4096];
	/* A stream socket may return less than asked: read some. */
	ASSERT_GT(read(data_fd, buf, sizeof(buf)), 0);
	LogCapture log;
	ASSERT_EQ(d.set(STOP), 0);
	EXPECT_EQ(uvfio_read(data_fd, buf, sizeof(buf)), -1);
	EXPECT_EQ(errno, ENODEV);
	expect_ended_early(data_fd);
	EXPECT_FALSE(log.contains("disabled"));
	EXPECT_EQ(uvfio_close(data_fd), 0);
}

// Contract: VFIO_DEVICE_RESET in STOP_COPY ends the stream (ECONNRESET
// for a raw reader, the driver's file released, no call on a disabled file)
// and returns the device to RUNNING; PRECOPY_INFO on the dead fd is EINVAL
// (the device is not in pre-copy), uvfio_read ENODEV.
TEST(MigrationDataFd, ResetEndsTheStream)
{
	for (unsigned st : {STOP_COPY, PRE_COPY, RESUMING}) {
		SCOPED_TRACE(st);
		MigDevice d("mig=stop_copy|p2p|pre_copy,mem=16M");
		ASSERT_TRUE(d.ok());
		if (st == RESUMING) {
			ASSERT_EQ(d.set(STOP), 0);
		}
		int data_fd = d.set_ok(st);
		ASSERT_GE(data_fd, 0);
		LogCapture log;
		EXPECT_EQ(d.reset(), 0);
		EXPECT_EQ(d.get(), RUNNING);
		if (st != RESUMING) {
			char c;
			EXPECT_EQ(uvfio_read(data_fd, &c, 1), -1);
			EXPECT_EQ(errno, ENODEV);
			expect_ended_early(data_fd);
			struct vfio_precopy_info info;
			EXPECT_EQ(precopy_info(data_fd, &info), -EINVAL);
		} else {
			char c = 0;
			EXPECT_EQ(uvfio_write(data_fd, &c, 1), -1);
			EXPECT_EQ(errno, ENODEV);
		}
		EXPECT_FALSE(log.contains("disabled"));
		uvfio_close(data_fd);
	}
}

// Contract: an FLR the user starts through config space (PCIe Device
// Control) while a stream is live ends the stream as VFIO_DEVICE_RESET
// does: the device is back in RUNNING, the driver is not called on its
// disabled file, and the next SET works (a stream the reset ended is not
// a failed stream that refuses the next state change).
TEST(MigrationDataFd, ConfigFlrEndsTheStream)
{
	const off_t cfg = off_t(VFIO_PCI_CONFIG_REGION_INDEX) << 40;
	for (unsigned st : {STOP_COPY, PRE_COPY, RESUMING}) {
		SCOPED_TRACE(st);
		MigDevice d("mig=stop_copy|p2p|pre_copy,mem=16M");
		ASSERT_TRUE(d.ok());
		if (st == RESUMING) {
			ASSERT_EQ(d.set(STOP), 0);
		}
		int data_fd = d.set_ok(st);
		ASSERT_GE(data_fd, 0);
		if (st == RESUMING) {
			bytes junk = random_bytes(4096, 1);
			EXPECT_EQ(write_all(data_fd, junk, 4096), 0);
		}
		LogCapture log;
		unsigned char pos = d.pread_region(cfg, 1, 0x34)[0];
		while (pos && d.pread_region(cfg, 1, pos)[0] != 0x10)
			pos = d.pread_region(cfg, 1, pos + 1)[0];
		ASSERT_NE(pos, 0);
		bytes devctl = d.pread_region(cfg, 2, pos + 8);
		devctl[1] |= 0x80;	/* Initiate FLR */
		d.pwrite_region(cfg, devctl, pos + 8);
		EXPECT_EQ(d.get(), RUNNING);
		EXPECT_EQ(d.set(STOP), 0);
		EXPECT_EQ(d.get(), STOP);
		EXPECT_EQ(d.set(RUNNING), 0);
		EXPECT_FALSE(log.contains("disabled migration file"));
		EXPECT_FALSE(log.contains("state change refused"));
		uvfio_close(data_fd);
	}
}

// Contract: uvfio_sim_state_digest() refuses what it cannot hash with an
// errno and no crash: NULL output (EFAULT), a bad fd (EBADF), an fd that is
// not a device (EINVAL), a running device (EBUSY), a driver without a hook
// (EOPNOTSUPP); on a stopped device it answers, the same value twice, and
// a change to device memory changes it.
TEST(MigrationStateDigest, RefusesBadInputAndTracksState)
{
	uint64_t v = 0, w = 0;
	MigDevice d("mig=stop_copy,mem=1M");
	ASSERT_TRUE(d.ok());
	EXPECT_EQ(uvfio_sim_state_digest(d.fd(), nullptr), -1);
	EXPECT_EQ(errno, EFAULT);
	EXPECT_EQ(uvfio_sim_state_digest(-1, &v), -1);
	EXPECT_EQ(errno, EBADF);
	int container = uvfio_open("/dev/vfio/vfio");
	ASSERT_GE(container, 0);
	EXPECT_EQ(uvfio_sim_state_digest(container, &v), -1);
	EXPECT_EQ(errno, EINVAL);
	uvfio_close(container);
	EXPECT_EQ(uvfio_sim_state_digest(d.fd(), &v), -1);
	EXPECT_EQ(errno, EBUSY) << "RUNNING";

	ASSERT_EQ(d.set(STOP), 0);
	ASSERT_EQ(uvfio_sim_state_digest(d.fd(), &v), 0);
	ASSERT_EQ(uvfio_sim_state_digest(d.fd(), &w), 0);
	EXPECT_EQ(v, w);
	const off_t bar2 = off_t(VFIO_PCI_BAR2_REGION_INDEX) << 40;
	unsigned char b = 0;
	ASSERT_EQ(uvfio_pread(d.fd(), &b, 1, bar2 + 100), 1);
	b ^= 0xff;
	ASSERT_EQ(uvfio_pwrite(d.fd(), &b, 1, bar2 + 100), 1);
	ASSERT_EQ(uvfio_sim_state_digest(d.fd(), &w), 0);
	EXPECT_NE(v, w);

	MigDevice plain("mem=1M");	/* no mig=: no migration, no hook */
	ASSERT_TRUE(plain.ok());
	EXPECT_EQ(uvfio_sim_state_digest(plain.fd(), &v), -1);
	EXPECT_EQ(errno, EOPNOTSUPP);
}

// Contract: closing the device with a data fd still open ends the stream
// (ECONNRESET for a raw reader, driver file released); closing the data fd afterwards
// leaves no fd behind, and the device can be removed.
TEST(MigrationDataFd, DeviceCloseWithDataFdOpen)
{
	int base = count_open_fds();
	{
		MigDevice d("mig=stop_copy|pre_copy,mem=8M");
		ASSERT_TRUE(d.ok());
		int data_fd = d.set_ok(PRE_COPY);
		ASSERT_GE(data_fd, 0);
		d.close_fd();
		expect_ended_early(data_fd);
		struct vfio_precopy_info info;
		EXPECT_EQ(precopy_info(data_fd, &info), -EINVAL);
		EXPECT_EQ(uvfio_close(data_fd), 0);
	}
	EXPECT_EQ(count_open_fds(), base);
}

// Contract: removing a device (unregister) while a stream is open waits for
// the user to close the device fd; that last close ends the stream, the
// removal completes, a raw reader gets ECONNRESET (the stream was cut) and
// nothing leaks.
TEST(MigrationDataFd, UnregisterEndsTheStream)
{
	int base = count_open_fds();
	std::string bdf = next_bdf();
	ASSERT_EQ(uvfio_sim_add(("testdev,bdf=" + bdf +
				 ",mig=stop_copy,mem=16M").c_str()),
		  0);
	int fd = uvfio_open(bdf.c_str());
	ASSERT_GE(fd, 0);
	int data_fd = -1;
	{
		alignas(8) unsigned char buf[sizeof(struct vfio_device_feature) +
					     sizeof(struct vfio_device_feature_mig_state)] = {};
		auto *f = reinterpret_cast<struct vfio_device_feature *>(buf);
		auto *m = reinterpret_cast<struct vfio_device_feature_mig_state *>(
			buf + sizeof(*f));
		f->argsz = sizeof(buf);
		f->flags = VFIO_DEVICE_FEATURE_SET |
			   VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
		m->device_state = STOP_COPY;
		ASSERT_EQ(uvfio_ioctl(fd, VFIO_DEVICE_FEATURE, f), 0);
		data_fd = m->data_fd;
	}
	ASSERT_GE(data_fd, 0);

	std::atomic<bool> removed{false};
	std::thread remover([&] {
		EXPECT_EQ(uvfio_sim_remove(bdf.c_str()), 0);
		removed = true;
	});
	/* Removal waits for the device fd, not for the data fd. */
	std::this_thread::sleep_for(std::chrono::milliseconds(50));
	EXPECT_FALSE(removed.load());
	EXPECT_EQ(uvfio_close(fd), 0);
	remover.join();
	EXPECT_TRUE(removed.load());

	expect_ended_early(data_fd);
	struct vfio_precopy_info info;
	EXPECT_EQ(precopy_info(data_fd, &info), -EINVAL);
	EXPECT_EQ(uvfio_close(data_fd), 0);
	EXPECT_EQ(count_open_fds(), base);
}

// Contract: a device with PRE_COPY but no P2P goes PRE_COPY -> STOP_COPY
// in one arc, on the same data fd, which then ends with EOF; the stream
// loads on another device (found by vfio-mig-ctl fsm: testdev handled only
// the P2P arc and WARNed).
TEST(MigrationPreCopy, WithoutP2PStraightIntoStopCopy)
{
	MigDevice src("mig=stop_copy|pre_copy,mem=64K,state=4K");
	MigDevice dst("mig=stop_copy|pre_copy,mem=64K,state=4K");
	ASSERT_TRUE(src.ok() && dst.ok());
	LogCapture log;
	int fd = src.set_ok(PRE_COPY);
	ASSERT_GE(fd, 0);
	EXPECT_EQ(src.set_ok(STOP_COPY), -1);
	bytes stream;
	ASSERT_GE(read_to_eof(fd, &stream), 0);
	uvfio_close(fd);
	EXPECT_FALSE(log.contains("WARNING"));
	ASSERT_EQ(dst.set(STOP), 0);
	int rfd = dst.set_ok(RESUMING);
	ASSERT_EQ(write_all(rfd, stream, 32 << 10), 0);
	uvfio_close(rfd);
	EXPECT_EQ(dst.set(STOP), 0);
}

// Contract: PRE_COPY's data fd: PRECOPY_INFO's initial_bytes starts at the
// size of the initial data and falls by exactly what userspace reads (it
// counts pumped-but-unread bytes, never grows while read); at a temporary
// end uvfio_read returns ENOMSG; a page written meanwhile shows up in
// dirty_bytes and is streamed; the same fd continues into STOP_COPY and
// ends with EOF; the result loads on another device with the final content.
TEST(MigrationPreCopy, InfoReadsAndContinuationIntoStopCopy)
{
	const std::string spec = "mig=stop_copy|p2p|pre_copy,mem=2M,state=100,seed=";
	MigDevice src(spec + "7"), dst(spec + "8");
	ASSERT_TRUE(src.ok() && dst.ok());
	fill_device(src, 2 << 20, 60);

	int data_fd = src.set_ok(PRE_COPY);
	ASSERT_GE(data_fd, 0);
	struct vfio_precopy_info info;
	ASSERT_EQ(precopy_info(data_fd, &info), 0);
	/* CONFIG record + 2 MEM records and 2 MiB of image. */
	const unsigned long long initial = 32 + 64 + 2 * 32 + (2 << 20);
	EXPECT_EQ(info.initial_bytes, initial);
	EXPECT_EQ(info.dirty_bytes, 0u);

	/* A stream read may be short; take exactly 100000 bytes. */
	bytes stream(100000);
	for (size_t got = 0; got < stream.size();) {
		ssize_t n = read(data_fd, stream.data() + got, stream.size() - got);
		ASSERT_GT(n, 0);
		got += static_cast<size_t>(n);
	}
	ASSERT_EQ(precopy_info(data_fd, &info), 0);
	EXPECT_EQ(info.initial_bytes, initial - 100000);

	unsigned long long last = info.initial_bytes;
	while (true) {
		bytes buf(65536);
		ssize_t n = uvfio_read(data_fd, buf.data(), buf.size());
		if (n < 0) {
			EXPECT_EQ(errno, ENOMSG);
			break;
		}
		ASSERT_GT(n, 0);
		stream.insert(stream.end(), buf.begin(), buf.begin() + n);
		ASSERT_EQ(precopy_info(data_fd, &info), 0);
		EXPECT_LE(info.initial_bytes, last) << "initial_bytes grew";
		last = info.initial_bytes;
	}
	EXPECT_EQ(stream.size(), initial);
	ASSERT_EQ(precopy_info(data_fd, &info), 0);
	EXPECT_EQ(info.initial_bytes, 0u);
	EXPECT_EQ(info.dirty_bytes, 0u);

	/* The guest writes a page: it becomes dirty data. */
	bytes page = random_bytes(4096, 61);
	src.pwrite_region(BAR2, page, 8192);
	ASSERT_EQ(precopy_info(data_fd, &info), 0);
	EXPECT_GT(info.dirty_bytes, 0u);
	EXPECT_EQ(uvfio_read_available(data_fd, &stream), ENOMSG);
	EXPECT_EQ(stream.size(), initial + 32 + 4096);

	/* PRE_COPY -> PRE_COPY_P2P -> STOP_COPY: no new fd, same stream. */
	EXPECT_EQ(src.set_ok(PRE_COPY_P2P), -1);
	ASSERT_EQ(precopy_info(data_fd, &info), 0);
	EXPECT_EQ(src.set_ok(STOP_COPY), -1);
	EXPECT_EQ(precopy_info(data_fd, &info), -EINVAL);
	ASSERT_GE(read_to_eof(data_fd, &stream), 0);
	EXPECT_EQ(src.set(STOP), 0);
	uvfio_close(data_fd);

	ASSERT_EQ(load(dst, stream), 0);
	EXPECT_EQ(dst.pread_region(BAR2, 2 << 20), src.pread_region(BAR2, 2 << 20));
	EXPECT_EQ(dst.pread_region(BAR0, 4096), src.pread_region(BAR0, 4096));
}

// Contract: VFIO_MIG_GET_PRECOPY_INFO validates like the kernel: argsz
// below the struct is EINVAL; outside PRE_COPY/PRE_COPY_P2P it is EINVAL;
// on a file whose stream has ended it is ENODEV; an unknown ioctl on a data
// fd is ENOTTY.
TEST(MigrationPreCopy, InfoValidation)
{
	MigDevice d("mig=stop_copy|pre_copy,mem=1M");
	ASSERT_TRUE(d.ok());
	int data_fd = d.set_ok(PRE_COPY);
	ASSERT_GE(data_fd, 0);
	struct vfio_precopy_info info;
	EXPECT_EQ(precopy_info(data_fd, &info, 23), -EINVAL);
	EXPECT_EQ(precopy_info(data_fd, &info, 0), -EINVAL);
	EXPECT_EQ(precopy_info(data_fd, &info, 4096), 0);
	EXPECT_EQ(uvfio_ioctl(data_fd, VFIO_DEVICE_GET_INFO, &info), -1);
	EXPECT_EQ(errno, ENOTTY);
	EXPECT_EQ(uvfio_ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, nullptr), -1);
	EXPECT_EQ(errno, EFAULT);
	/* PRE_COPY -> RUNNING disables the file: no longer in pre-copy. */
	EXPECT_EQ(d.set(RUNNING), 0);
	EXPECT_EQ(precopy_info(data_fd, &info), -EINVAL);
	uvfio_close(data_fd);

	/* A STOP_COPY file is not in pre-copy. */
	ASSERT_EQ(d.set(STOP), 0);
	data_fd = d.set_ok(STOP_COPY);
	EXPECT_EQ(precopy_info(data_fd, &info), -EINVAL);
	uvfio_close(data_fd);
}

// Contract: MIG_DATA_SIZE is a GET that works in every state, equals the
// bytes a STOP_COPY stream has, rejects SET with EINVAL, supports PROBE, and
// is ENOTTY on a device without migration.
TEST(MigrationDataSize, AnyStateGetOnly)
{
	MigDevice d("mig=stop_copy|p2p|pre_copy,mem=1M,state=777");
	ASSERT_TRUE(d.ok());
	long long size = d.data_size();
	ASSERT_GT(size, 1 << 20);
	for (unsigned st : {RUNNING, PRE_COPY, PRE_COPY_P2P, STOP_COPY, STOP,
			    RESUMING}) {
		int data_fd = d.set_ok(st);
		EXPECT_EQ(d.data_size(), size) << "state " << st;
		if (data_fd >= 0)
			uvfio_close(data_fd);
	}
	/* Nothing was written: leave RESUMING by reset. */
	ASSERT_EQ(d.reset(), 0);
	EXPECT_EQ(static_cast<long long>(save(d).size()), size);

	FeatureArg<struct vfio_device_feature_mig_data_size> a(
		VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE);
	EXPECT_EQ(uvfio_ioctl(d.fd(), VFIO_DEVICE_FEATURE, a.f()), -1);
	EXPECT_EQ(errno, EINVAL);
	a.f()->flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET |
		       VFIO_DEVICE_FEATURE_MIG_DATA_SIZE;
	EXPECT_EQ(uvfio_ioctl(d.fd(), VFIO_DEVICE_FEATURE, a.f()), 0);
	a.f()->argsz = sizeof(struct vfio_device_feature) + 4;
	a.f()->flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE;
	EXPECT_EQ(uvfio_ioctl(d.fd(), VFIO_DEVICE_FEATURE, a.f()), -1);
	EXPECT_EQ(errno, EINVAL);

	MigDevice plain("");
	ASSERT_TRUE(plain.ok());
	EXPECT_EQ(plain.data_size(), -ENOTTY);
}

// Contract: targets the device does not support, ERROR and out-of-range
// values are EINVAL and leave the state as it was; so is STOP_COPY back to
// PRE_COPY on a pre-copy device.
TEST(MigrationSetState, UnsupportedTargets)
{
	MigDevice d("mig=stop_copy");
	ASSERT_TRUE(d.ok());
	for (unsigned st : {PRE_COPY, PRE_COPY_P2P,
			    unsigned{VFIO_DEVICE_STATE_RUNNING_P2P},
			    unsigned{VFIO_DEVICE_STATE_ERROR}, 8u, 99u, ~0u}) {
		EXPECT_EQ(d.set(st), -EINVAL) << "target " << st;
		EXPECT_EQ(d.get(), RUNNING);
	}
	MigDevice pc("mig=stop_copy|p2p|pre_copy");
	ASSERT_TRUE(pc.ok());
	int data_fd = pc.set_ok(STOP_COPY);
	EXPECT_EQ(pc.set(PRE_COPY), -EINVAL);
	EXPECT_EQ(pc.set(PRE_COPY_P2P), -EINVAL);
	EXPECT_EQ(pc.get(), STOP_COPY);
	uvfio_close(data_fd);
}

} // namespace
