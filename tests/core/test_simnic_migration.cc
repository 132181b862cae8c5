// SPDX-License-Identifier: GPL-2.0-only
/*
 * simnic's migration data through the uAPI: PRECOPY_INFO's accounting,
 * MIG_DATA_SIZE against what STOP_COPY really sends, device memory written
 * after it was sent being sent again (through the region, by DMA, through
 * an mmap), and resets racing state changes. Then the stream header of
 * every in-tree driver (simnic, simmin, testdev, skeleton): its device
 * identity and configuration, checked at the write that completes it.
 */
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include <uvfio/linux/err.h>
#include <uvfio/linux/fs.h>
#include <uvfio/sim/simdev.h>

#include "simnic_dev.h"
#include "vfio.h"	/* vfio_device_get_registered: the driver's own file */

using namespace uvfio_test;

namespace {

constexpr __u64 MEM = 1 << 20;
constexpr __u64 REC = 32;	/* a record header */
constexpr __u64 CONFIG = REC + 56;	/* the stream header */
constexpr __u64 INITIAL = CONFIG + REC + MEM;	/* CONFIG + one MEM record */

int precopy_info(int fd, struct vfio_precopy_info *info)
{
	*info = {};
	info->argsz = sizeof(*info);
	return uvfio_ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, info) ? errno : 0;
}

__u64 data_size(SimnicDev &d)
{
	FeatureArg<struct vfio_device_feature_mig_data_size> a(
		VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE);
	EXPECT_EQ(a.ioctl(d.fd()), 0);
	return a.d()->stop_copy_length;
}

/* Read exactly n bytes (blocking), or what there is until ENOMSG/EOF. */
std::vector<unsigned char> read_n(int fd, size_t n)
{
	std::vector<unsigned char> out(n);
	size_t got = 0;
	while (got < n) {
		ssize_t r = uvfio_read(fd, out.data() + got, n - got);
		if (r <= 0)
			break;
		got += size_t(r);
	}
	out.resize(got);
	return out;
}

/* Read until "nothing now" (ENOMSG) or EOF; the bytes and how it ended. */
std::vector<unsigned char> read_avail(int fd, int *end_errno)
{
	std::vector<unsigned char> out, buf(1 << 20);
	for (;;) {
		ssize_t r = uvfio_read(fd, buf.data(), buf.size());
		if (r > 0) {
			out.insert(out.end(), buf.begin(), buf.begin() + r);
			continue;
		}
		*end_errno = r == 0 ? 0 : errno;
		return out;
	}
}

/* The MEM records in a piece of stream: (offset, length) each. */
std::vector<std::pair<__u64, __u32>> mem_records(
	const std::vector<unsigned char> &s)
{
	std::vector<std::pair<__u64, __u32>> out;
	for (size_t off = 0; off + REC <= s.size();) {
		__u16 type;
		__u64 where;
		__u32 len;
		std::memcpy(&type, &s[off + 6], 2);
		std::memcpy(&where, &s[off + 8], 8);
		std::memcpy(&len, &s[off + 16], 4);
		if (type == 2)
			out.emplace_back(where, len);
		off += REC + len;
	}
	return out;
}

// Contract: PRECOPY_INFO tells the truth. At the start initial_bytes is
// the whole initial data (configuration and a full image of device memory)
// and dirty_bytes 0; initial_bytes falls by exactly what is read and never
// grows; once it is read, a page written through the region makes
// dirty_bytes at least a page, the page comes as one MEM record, and then
// there is nothing (ENOMSG, dirty_bytes 0). PRECOPY_INFO outside the
// pre-copy states is EINVAL.
TEST(SimnicMigration, PrecopyInfoIsTruthful)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	int fd;
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_PRE_COPY, &fd), 0);
	struct vfio_precopy_info info;
	ASSERT_EQ(precopy_info(fd, &info), 0);
	EXPECT_EQ(info.initial_bytes, INITIAL);
	EXPECT_EQ(info.dirty_bytes, 0u);

	__u64 read_so_far = 0;
	for (size_t chunk : {size_t(1000), size_t(300000), size_t(1 << 20)}) {
		auto got = read_n(fd, std::min<size_t>(chunk, INITIAL - read_so_far));
		read_so_far += got.size();
		ASSERT_EQ(precopy_info(fd, &info), 0);
		EXPECT_EQ(info.initial_bytes, INITIAL - read_so_far);
	}
	EXPECT_EQ(read_so_far, INITIAL);
	int end;
	EXPECT_TRUE(read_avail(fd, &end).empty());
	EXPECT_EQ(end, ENOMSG);

	unsigned char page[4096];
	std::memset(page, 0x77, sizeof(page));
	ASSERT_EQ(uvfio_pwrite(d.fd(), page, sizeof(page), BAR2_OFF + 0x5000),
		  4096);
	ASSERT_EQ(precopy_info(fd, &info), 0);
	EXPECT_EQ(info.initial_bytes, 0u);
	EXPECT_GE(info.dirty_bytes, 4096u);
	auto more = read_avail(fd, &end);
	EXPECT_EQ(end, ENOMSG);
	auto recs = mem_records(more);
	ASSERT_EQ(recs.size(), 1u);
	EXPECT_EQ(recs[0].first, 0x5000u);
	EXPECT_EQ(recs[0].second, 4096u);
	ASSERT_EQ(precopy_info(fd, &info), 0);
	EXPECT_EQ(info.dirty_bytes, 0u);

	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_RUNNING), 0);
	uvfio_close(fd);
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP), 0);
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP_COPY, &fd), 0);
	EXPECT_EQ(precopy_info(fd, &info), EINVAL);
	uvfio_close(fd);
}

// Contract: MIG_DATA_SIZE is an honest estimate of what STOP_COPY sends:
// never less, and within a record header per page of it. Without
// pre-copy it is exact; after pre-copy it counts only what is still
// needed, and STOP_COPY sends only the pages written since they were sent
// (by DMA here), plus the device state.
TEST(SimnicMigration, DataSizeBoundsStopCopy)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	__u64 full = data_size(d);
	EXPECT_EQ(full, INITIAL + 2 * REC + sizeof(struct simdev_state));

	int fd, end;
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_PRE_COPY, &fd), 0);
	EXPECT_EQ(read_avail(fd, &end).size(), INITIAL);
	__u64 after_initial = data_size(d);
	EXPECT_EQ(after_initial, 2 * REC + sizeof(struct simdev_state));

	/* The device writes three separate pages of its memory by DMA. */
	d.setup_ring();
	for (__u64 off : {0x1000ULL, 0x8000ULL, 0x40000ULL})
		d.post({SIMDEV_OP_FILL, SIMDEV_DESC_DST_DEV, 0, off, 100, 0x5a});
	ASSERT_TRUE(d.wait_done(3));
	__u64 est = data_size(d);
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP_COPY), 0);
	auto rest = read_avail(fd, &end);
	EXPECT_EQ(end, 0);	/* EOF */
	EXPECT_GE(est, rest.size());
	EXPECT_LE(est, rest.size() + 3 * REC);
	auto recs = mem_records(rest);
	ASSERT_EQ(recs.size(), 3u);
	for (auto &[off, len] : recs)
		EXPECT_EQ(len, 4096u) << off;
	uvfio_close(fd);
}

// Contract: writes through a writable mmap of device memory made during
// pre-copy are not lost: STOP_COPY sends the stored page again, and
// MIG_DATA_SIZE counts it beforehand. The model sees the store
// (userfaultfd write-protect) and sends that page and at most a few
// beside it; where the kernel cannot write-protect shared memory it sends
// all of device memory.
TEST(SimnicMigration, MmapWritesAreResent)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	int fd, end;
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_PRE_COPY, &fd), 0);
	EXPECT_EQ(read_avail(fd, &end).size(), INITIAL);
	void *p = uvfio_mmap(nullptr, MEM, PROT_READ | PROT_WRITE, MAP_SHARED,
			     d.fd(), BAR2_OFF);
	ASSERT_NE(p, MAP_FAILED);
	static_cast<unsigned char *>(p)[0x3000] = 0x42;
	__u64 est = data_size(d);
	EXPECT_GE(est, 4096u);
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP_COPY), 0);
	auto rest = read_avail(fd, &end);
	EXPECT_EQ(end, 0);
	EXPECT_GE(est, rest.size());
	__u64 bytes = 0;
	bool has = false;
	for (auto &[off, len] : mem_records(rest)) {
		bytes += len;
		has |= off <= 0x3000 && 0x3000 < off + len;
	}
	EXPECT_TRUE(has);
	EXPECT_TRUE((bytes >= 4096 && bytes <= 8 * 4096) || bytes == MEM)
		<< bytes;
	munmap(p, MEM);
	uvfio_close(fd);
}

// Contract: resets racing state changes (the deferred-reset pattern)
// neither deadlock nor leave a stale data fd working: while one thread
// cycles through PRE_COPY and STOP_COPY reading the data, another resets
// the device; every SET either works or fails cleanly, a fd from before a
// reset gives no more data after the reset, and the device ends in a
// state GET reports, able to migrate again.
TEST(SimnicMigration, ResetRacingStateChanges)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	std::atomic<bool> stop{false};
	std::atomic<unsigned> resets{0};
	std::thread resetter([&] {
		while (!stop) {
			EXPECT_EQ(uvfio_ioctl(d.fd(), VFIO_DEVICE_RESET, nullptr), 0);
			resets++;
			std::this_thread::sleep_for(std::chrono::microseconds(300));
		}
	});
	unsigned cycles = 0;
	std::vector<unsigned char> buf(64 << 10);
	/* A number of cycles, not a time: sanitizers make them slow. */
	for (unsigned tries = 0; cycles < 20 && tries < 100000; tries++) {
		int fd = -1;
		if (d.set_state(VFIO_DEVICE_STATE_RUNNING) ||
		    d.set_state(VFIO_DEVICE_STATE_PRE_COPY, &fd))
			continue;	/* a reset got in between: fine */
		unsigned r0 = resets;
		(void)uvfio_read(fd, buf.data(), buf.size());
		(void)d.set_state(VFIO_DEVICE_STATE_STOP_COPY);
		/* Two more resets: one surely came after the fd was made. */
		while (resets < r0 + 2)
			std::this_thread::yield();
		ssize_t r;
		while ((r = uvfio_read(fd, buf.data(), buf.size())) > 0) {
		}
		/* Queued bytes, then the end: never "more later" (ENOMSG). */
		EXPECT_TRUE(r == 0 || errno == ENODEV) << strerror(errno);
		uvfio_close(fd);
		cycles++;
	}
	stop = true;
	resetter.join();
	EXPECT_EQ(cycles, 20u);
	/* Quiet now: a full migration cycle works. */
	int fd;
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_RUNNING), 0);
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP), 0);
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP_COPY, &fd), 0);
	int end;
	EXPECT_EQ(read_avail(fd, &end).size(),
		  INITIAL + 2 * REC + sizeof(struct simdev_state));
	EXPECT_EQ(end, 0);
	uvfio_close(fd);
}

} // namespace

namespace {

// Contract: simmin offers STOP_COPY only and the core filters for it:
// MIGRATION reports just STOP_COPY; P2P and pre-copy targets are EINVAL
// (nothing changes); RUNNING <-> STOP goes directly; there is no DMA
// logging (ENOTTY), and MIG_DATA_SIZE is the exact stream length.
TEST(SimminMigration, OnlyStopCopy)
{
	SimnicDev d("", 4 << 20, "simmin");
	ASSERT_TRUE(d.ok());
	FeatureArg<struct vfio_device_feature_migration> m(
		VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION);
	ASSERT_EQ(m.ioctl(d.fd()), 0);
	EXPECT_EQ(m.d()->flags, __u64(VFIO_MIGRATION_STOP_COPY));
	for (__u32 s : {__u32(VFIO_DEVICE_STATE_RUNNING_P2P),
			__u32(VFIO_DEVICE_STATE_PRE_COPY),
			__u32(VFIO_DEVICE_STATE_PRE_COPY_P2P)})
		EXPECT_EQ(d.set_state(s), EINVAL) << s;
	FeatureArg<struct vfio_device_feature_mig_state> g(
		VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
	ASSERT_EQ(g.ioctl(d.fd()), 0);
	EXPECT_EQ(g.d()->device_state, __u32(VFIO_DEVICE_STATE_RUNNING));
	FeatureArg<struct vfio_device_feature_dma_logging_control> l(
		VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
		VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
	EXPECT_EQ(l.ioctl(d.fd()), ENOTTY);

	int fd, end;
	EXPECT_EQ(data_size(d), INITIAL + 2 * REC + sizeof(struct simdev_state));
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP_COPY, &fd), 0);
	EXPECT_EQ(read_avail(fd, &end).size(),
		  INITIAL + 2 * REC + sizeof(struct simdev_state));
	EXPECT_EQ(end, 0);
	uvfio_close(fd);
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_RUNNING), 0);
}

} // namespace

namespace {

/* A whole STOP_COPY stream of d, which is left in STOP. */
std::vector<unsigned char> save_stream(SimnicDev &d)
{
	int fd, end;
	EXPECT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP), 0);
	EXPECT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP_COPY, &fd), 0);
	auto s = read_avail(fd, &end);
	EXPECT_EQ(end, 0);
	uvfio_close(fd);
	EXPECT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP), 0);
	return s;
}

/* What a resume did: the errno of its STOP and what it logged. */
struct Resumed {
	int err = 0;		/* the STOP after the stream */
	int write_err = 0;	/* the write that failed, if one did */
	size_t taken = 0;	/* bytes the writes took before it */
	std::string log;
	/*
	 * A driver's write refused the stream: the core then fails the next
	 * SET with the stream's error, before it asks the driver, and says so.
	 */
	bool refused() const
	{
		return says("the migration data stream failed");
	}
	/* ... and did so at the first write, which took nothing. */
	bool refused_at_first_write() const
	{
		return write_err == EINVAL && !taken && refused();
	}
	bool says(const char *what) const
	{
		return log.find(what) != std::string::npos;
	}
};

/* STOP, RESUMING, write s (until a write fails), close the data fd, STOP. */
Resumed resume(SimnicDev &d, const std::vector<unsigned char> &s)
{
	Resumed res;
	int fd = -1;
	LogCapture log;
	EXPECT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP), 0);
	EXPECT_EQ(d.set_state(VFIO_DEVICE_STATE_RESUMING, &fd), 0);
	while (res.taken < s.size()) {
		ssize_t n = uvfio_write(fd, s.data() + res.taken,
					s.size() - res.taken);
		if (n <= 0) {
			res.write_err = n ? errno : EIO;
			break;
		}
		res.taken += size_t(n);
	}
	uvfio_close(fd);
	res.err = d.set_state(VFIO_DEVICE_STATE_STOP);
	for (const std::string &l : log.lines())
		res.log += l + "\n";
	return res;
}

__u32 get_state(SimnicDev &d)
{
	FeatureArg<struct vfio_device_feature_mig_state> g(
		VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
	EXPECT_EQ(g.ioctl(d.fd()), 0);
	return g.d()->device_state;
}

int reset(SimnicDev &d)
{
	return uvfio_ioctl(d.fd(), VFIO_DEVICE_RESET, nullptr) ? errno : 0;
}

// Contract: simnic and simmin streams carry who saved them, so neither
// loads into the other although both have the same configuration: the
// header of a simmin stream written to a simnic (and the reverse) is
// refused by the driver's write, before RESUMING -> STOP, with EINVAL and
// a log line naming both devices. The device stays in RESUMING with the
// stream broken (a second STOP fails too) until a reset; then its own
// stream loads.
TEST(SimnicStreamHeader, OtherDriverRefusedAtFirstWrite)
{
	SimnicDev nic, min("", 4 << 20, "simmin");
	ASSERT_TRUE(nic.ok() && min.ok());
	for (auto [from, to] : {std::pair{&nic, &min}, std::pair{&min, &nic}}) {
		auto s = save_stream(*from);
		ASSERT_GT(s.size(), CONFIG);
		std::vector<unsigned char> hdr(s.begin(), s.begin() + CONFIG);
		Resumed r = resume(*to, hdr);
		EXPECT_EQ(r.err, EINVAL);
		EXPECT_TRUE(r.refused_at_first_write())
			<< r.write_err << " after " << r.taken << ": " << r.log;
		EXPECT_TRUE(r.says("stream header refused: the stream is from "
				   "another device")) << r.log;
		EXPECT_TRUE(r.says("simmin 1b36:0011")) << r.log;
		EXPECT_TRUE(r.says("simnic 1b36:0010")) << r.log;
		EXPECT_EQ(get_state(*to), __u32(VFIO_DEVICE_STATE_RESUMING));
		EXPECT_EQ(to->set_state(VFIO_DEVICE_STATE_STOP), EINVAL);
		EXPECT_EQ(get_state(*to), __u32(VFIO_DEVICE_STATE_RESUMING));
		/* The whole stream is refused the same way. */
		ASSERT_EQ(reset(*to), 0);
		r = resume(*to, s);
		EXPECT_EQ(r.err, EINVAL);
		EXPECT_TRUE(r.refused_at_first_write())
			<< r.write_err << " after " << r.taken << ": " << r.log;
		ASSERT_EQ(reset(*to), 0);
		r = resume(*to, save_stream(*to));
		EXPECT_EQ(r.err, 0) << r.log;
		ASSERT_EQ(to->set_state(VFIO_DEVICE_STATE_RUNNING), 0);
		ASSERT_EQ(from->set_state(VFIO_DEVICE_STATE_RUNNING), 0);
	}
}

/*
 * A stream header of an older format: one record with the given magic,
 * version, type and payload, hashed as mig_rec_hash() does.
 */
std::vector<unsigned char> old_header(__u32 magic, __u16 version,
				      const std::vector<unsigned char> &payload)
{
	struct {
		__u32 magic;
		__u16 version, type;
		__u64 offset;
		__u32 length, seq;
		__u64 hash;
	} r = {magic, version, 1, 0, __u32(payload.size()), 0, 0};
	static_assert(sizeof(r) == REC);
	r.hash = XXH3_64bits_withSeed(payload.data(), payload.size(),
				      XXH3_64bits(&r, 24));
	std::vector<unsigned char> s(REC);
	std::memcpy(s.data(), &r, REC);
	s.insert(s.end(), payload.begin(), payload.end());
	return s;
}

// Contract: a stream from before the header carried the device identity
// (simnic's version 2: CONFIG was the configuration alone) is refused at
// the write that completes its header, with EINVAL and a log line saying
// the version and that older streams carry no identity: it cannot tell a
// simmin stream from a simnic one.
TEST(SimnicStreamHeader, OlderVersionRefusedAtFirstWrite)
{
	SimnicDev d;
	ASSERT_TRUE(d.ok());
	/* Version 2's CONFIG: mem, msix, page size, state length, 0. */
	struct {
		__u64 mem;
		__u32 msix, page, state, reserved;
	} c = {MEM, 4, 4096, __u32(sizeof(struct simdev_state)), 0};
	std::vector<unsigned char> payload(sizeof(c));
	std::memcpy(payload.data(), &c, sizeof(c));
	Resumed r = resume(d, old_header(0x4e535655, 2, payload));
	EXPECT_EQ(r.err, EINVAL);
	EXPECT_TRUE(r.refused_at_first_write())
		<< r.write_err << " after " << r.taken << ": " << r.log;
	EXPECT_TRUE(r.says("unsupported stream version 2 (this driver reads 3; "
			   "older streams carry no device identity)")) << r.log;
	ASSERT_EQ(reset(d), 0);
}

/* One in-tree driver with its spec and the length of its stream header. */
struct HeaderDriver {
	const char *name;
	const char *driver;
	const char *extra;	/* spec keys besides bdf, msix=4, mem=1M */
	size_t header;		/* bytes: the whole header, checked at once */
};

const HeaderDriver header_drivers[] = {
	{"simnic", "simnic", "", CONFIG},
	{"simmin", "simmin", "", CONFIG},
	{"testdev", "testdev", "mig=stop_copy", REC + 64},
	{"skeleton", "skeleton", "", 64},
};

class StreamHeader : public ::testing::TestWithParam<HeaderDriver>
{
protected:
	/* A device of the driver, with more spec keys. */
	static std::string spec(const std::string &more)
	{
		std::string s = GetParam().extra;
		if (!more.empty())
			s += (s.empty() ? "" : ",") + more;
		return s;
	}
};

// Contract: every byte of the stream header counts: one flipped bit
// anywhere in it (magic, version, type, offset, length, sequence number,
// checksums, identity, configuration) is refused by the write that
// completes the header, with EINVAL, before RESUMING -> STOP; the header
// alone, intact, is taken (that stream is only truncated, which STOP
// finds).
TEST_P(StreamHeader, CorruptByteRefusedAtFirstWrite)
{
	const HeaderDriver &p = GetParam();
	SimnicDev src(spec(""), 4 << 20, p.driver);
	SimnicDev dst(spec(""), 4 << 20, p.driver);
	ASSERT_TRUE(src.ok() && dst.ok());
	auto s = save_stream(src);
	ASSERT_GT(s.size(), p.header);
	std::vector<unsigned char> hdr(s.begin(), s.begin() + p.header);
	Resumed r = resume(dst, hdr);
	EXPECT_EQ(r.err, EINVAL);
	EXPECT_FALSE(r.refused()) << "an intact header was refused: " << r.log;
	EXPECT_TRUE(r.says("truncated")) << r.log;
	ASSERT_EQ(reset(dst), 0);
	for (size_t i = 0; i < p.header; i++) {
		SCOPED_TRACE(i);
		auto bad = hdr;
		bad[i] ^= 0x04;
		r = resume(dst, bad);
		EXPECT_EQ(r.err, EINVAL);
		EXPECT_TRUE(r.refused_at_first_write())
			<< "byte " << i << " not checked at once: "
			<< r.write_err << " after " << r.taken << ": " << r.log;
		ASSERT_EQ(reset(dst), 0);
	}
}

// Contract: a stream from a device with another configuration (another
// MSI-X count, which the guest sees; another device-memory size) is
// refused by the write that completes its header, with EINVAL and a log
// line naming the mismatch; the device stays in RESUMING until a reset.
TEST_P(StreamHeader, OtherConfigurationRefusedAtFirstWrite)
{
	const HeaderDriver &p = GetParam();
	SimnicDev dst(spec(""), 4 << 20, p.driver);
	ASSERT_TRUE(dst.ok());
	for (const char *other : {"msix=8", "mem=2M"}) {
		SCOPED_TRACE(other);
		SimnicDev src(spec(other), 4 << 20, p.driver);
		ASSERT_TRUE(src.ok());
		auto s = save_stream(src);
		ASSERT_GT(s.size(), p.header);
		Resumed r = resume(dst, std::vector<unsigned char>(
						s.begin(), s.begin() + p.header));
		EXPECT_EQ(r.err, EINVAL);
		EXPECT_TRUE(r.refused_at_first_write())
			<< r.write_err << " after " << r.taken << ": " << r.log;
		EXPECT_TRUE(r.says("configuration mismatch")) << r.log;
		EXPECT_EQ(get_state(dst), __u32(VFIO_DEVICE_STATE_RESUMING));
		ASSERT_EQ(reset(dst), 0);
	}
}

// Contract: the driver's resuming file refuses endless zeros (what load
// -i /dev/zero writes) at its first write: -EINVAL and nothing taken, and
// every later write is refused the same way, until a reset disables the
// file (-ENODEV). Called on the driver's own file, not through the core's
// data fd, whose pump hands the driver what userspace wrote later.
TEST_P(StreamHeader, ZerosRefusedByTheFirstDriverWrite)
{
	const HeaderDriver &p = GetParam();
	SimnicDev d(spec(""), 4 << 20, p.driver);
	ASSERT_TRUE(d.ok());
	struct vfio_device *vdev = vfio_device_get_registered(d.bdf());
	ASSERT_FALSE(IS_ERR(vdev));
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP), 0);
	struct file *filp = vdev->mig_ops->migration_set_state(
		vdev, VFIO_DEVICE_STATE_RESUMING);
	ASSERT_FALSE(IS_ERR_OR_NULL(filp));
	std::vector<char> zeros(256 << 10);
	{
		LogCapture log;
		EXPECT_EQ(filp->f_op->write(filp, zeros.data(), zeros.size(),
					    nullptr),
			  -EINVAL);
		EXPECT_TRUE(log.contains("bad magic"));
	}
	EXPECT_EQ(filp->f_op->write(filp, zeros.data(), 1, nullptr), -EINVAL);
	EXPECT_EQ(filp->f_op->write(filp, zeros.data(), zeros.size(), nullptr),
		  -EINVAL);
	EXPECT_EQ(get_state(d), __u32(VFIO_DEVICE_STATE_RESUMING));
	ASSERT_EQ(reset(d), 0);
	EXPECT_EQ(filp->f_op->write(filp, zeros.data(), 1, nullptr), -ENODEV);
	fput(filp);
	vfio_device_put_registration(vdev);
	/* A new RESUMING starts clean: the device's own stream loads. */
	EXPECT_EQ(resume(d, save_stream(d)).err, 0);
}

// Contract: endless zeros written to a resuming data fd stop at the
// header: the first write fails with EINVAL, having taken nothing, as the
// kernel driver's write refuses a bad first record; later writes fail the
// same way, and the device stays in RESUMING until a reset.
TEST_P(StreamHeader, EndlessZerosStopAtTheHeader)
{
	const HeaderDriver &p = GetParam();
	SimnicDev d(spec(""), 4 << 20, p.driver);
	ASSERT_TRUE(d.ok());
	int fd = -1;
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP), 0);
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_RESUMING, &fd), 0);
	std::vector<char> zeros(256 << 10);
	size_t taken = 0;
	ssize_t n = 0;
	/* 256 MiB of input: far more than the fd buffers. */
	while (taken < (256u << 20) &&
	       (n = uvfio_write(fd, zeros.data(), zeros.size())) > 0)
		taken += size_t(n);
	EXPECT_EQ(n, -1) << "took all of " << taken << " bytes";
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(taken, 0u);
	EXPECT_EQ(uvfio_write(fd, zeros.data(), 1), -1);
	EXPECT_EQ(errno, EINVAL);
	uvfio_close(fd);
	EXPECT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP), EINVAL);
	EXPECT_EQ(get_state(d), __u32(VFIO_DEVICE_STATE_RESUMING));
	ASSERT_EQ(reset(d), 0);
}

INSTANTIATE_TEST_SUITE_P(Drivers, StreamHeader,
			 ::testing::ValuesIn(header_drivers),
			 [](const auto &info) { return info.param.name; });

} // namespace
