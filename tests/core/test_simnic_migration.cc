// SPDX-License-Identifier: GPL-2.0-only
/*
 * simnic's migration data through the uAPI: PRECOPY_INFO's accounting,
 * MIG_DATA_SIZE against what STOP_COPY really sends, device memory written
 * after it was sent being sent again (through the region, by DMA, through
 * an mmap), and resets racing state changes.
 */
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include <uvfio/sim/simdev.h>

#include "simnic_dev.h"

using namespace uvfio_test;

namespace {

constexpr __u64 MEM = 1 << 20;
constexpr __u64 REC = 32;	/* a record header */
constexpr __u64 INITIAL = REC + 24 + MEM + REC;	/* CONFIG + one MEM record */

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

// Contract: writes the tracker cannot see - through a writable mmap of
// device memory - are not lost: once BAR2 was mapped writable, STOP_COPY
// after pre-copy sends all of device memory again, and MIG_DATA_SIZE says
// so beforehand.
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
	EXPECT_GE(est, MEM);
	ASSERT_EQ(d.set_state(VFIO_DEVICE_STATE_STOP_COPY), 0);
	auto rest = read_avail(fd, &end);
	EXPECT_EQ(end, 0);
	EXPECT_GE(est, rest.size());
	__u64 bytes = 0;
	for (auto &[off, len] : mem_records(rest))
		bytes += len;
	EXPECT_EQ(bytes, MEM);
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
