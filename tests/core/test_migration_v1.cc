// SPDX-License-Identifier: GPL-2.0-only
/*
 * The v1 migration region over v2 drivers (Documentation/migration-v1.md),
 * through the syscall surface only: the region's info and capabilities,
 * the access rules of struct vfio_device_migration_info, every row of the
 * KABI's state table from every state (against what MIG_DEVICE_STATE does
 * on a twin device), each pending_bytes/data_offset/data_size step of a
 * save and a resume, round trips checked by the drivers' state digests,
 * corrupt and truncated streams, NDMA, errors, reset and the spec key.
 */
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <uvfio/tools/workload.h>

#include "simnic_dev.h"
#include "vfio.h"	/* uvfio_fd_count() */

using namespace uvfio_test;

namespace {

constexpr __u32 V1_STOP = VFIO_DEVICE_STATE_V1_STOP;
constexpr __u32 V1_RUN = VFIO_DEVICE_STATE_V1_RUNNING;
constexpr __u32 V1_SAV = VFIO_DEVICE_STATE_V1_SAVING;
constexpr __u32 V1_RES = VFIO_DEVICE_STATE_V1_RESUMING;
constexpr __u32 V1_NDMA = VFIO_DEVICE_STATE_V1_NDMA;
constexpr __u32 V1_ERR = V1_SAV | V1_RES;

constexpr __u64 F_STATE = offsetof(struct vfio_device_migration_info,
				   device_state);
constexpr __u64 F_RESERVED = offsetof(struct vfio_device_migration_info,
				      reserved);
constexpr __u64 F_PENDING = offsetof(struct vfio_device_migration_info,
				     pending_bytes);
constexpr __u64 F_OFFSET = offsetof(struct vfio_device_migration_info,
				    data_offset);
constexpr __u64 F_SIZE = offsetof(struct vfio_device_migration_info,
				  data_size);

/* uvfio's layout (Documentation/migration-v1.md). */
constexpr __u64 WINDOW_OFF = 0x1000;
constexpr __u64 WINDOW_SIZE = 1 << 20;
constexpr __u64 REGION_SIZE = WINDOW_OFF + WINDOW_SIZE;

/* The v1 region of a device fd, as a v1 VMM finds and uses it. */
struct RegionInfo {
	bool found = false;
	__u32 index = 0;
	__u64 offset = 0, size = 0;
	__u32 flags = 0;
	__u32 argsz_needed = 0;
	std::vector<std::pair<__u64, __u64>> areas;	/* sparse mmap */
	bool ndma = false;
	__u16 ndma_version = 0;
	__u32 ndma_next_gap = 0;	/* bytes to the next cap (or chain end) */
};

/*
 * GET_REGION_INFO of index with room for its capabilities, the chain
 * walked. 0 or the errno.
 */
int region_info(int fd, __u32 index, RegionInfo *out, __u32 *type = nullptr,
		__u32 *subtype = nullptr)
{
	alignas(8) unsigned char buf[1024] = {};
	auto *info = reinterpret_cast<struct vfio_region_info *>(buf);

	info->argsz = sizeof(*info);
	info->index = index;
	if (uvfio_ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, info))
		return errno;
	out->argsz_needed = info->argsz;
	if (info->argsz > sizeof(buf))
		return E2BIG;
	info->argsz = sizeof(buf);
	if (uvfio_ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, info))
		return errno;
	out->index = index;
	out->offset = info->offset;
	out->size = info->size;
	out->flags = info->flags;
	if (type)
		*type = 0;
	if (!(info->flags & VFIO_REGION_INFO_FLAG_CAPS))
		return 0;
	for (__u32 off = info->cap_offset; off;) {
		if (off + sizeof(struct vfio_info_cap_header) > sizeof(buf))
			return EOVERFLOW;
		auto *h = reinterpret_cast<struct vfio_info_cap_header *>(
			buf + off);
		if (h->id == VFIO_REGION_INFO_CAP_TYPE) {
			auto *t = reinterpret_cast<
				struct vfio_region_info_cap_type *>(h);
			if (type)
				*type = t->type;
			if (subtype)
				*subtype = t->subtype;
		} else if (h->id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
			auto *s = reinterpret_cast<
				struct vfio_region_info_cap_sparse_mmap *>(h);
			for (__u32 i = 0; i < s->nr_areas; i++)
				out->areas.emplace_back(s->areas[i].offset,
							s->areas[i].size);
		} else if (h->id == VFIO_REGION_INFO_CAP_MIG_NDMA) {
			out->ndma = true;
			out->ndma_version = h->version;
			out->ndma_next_gap = (h->next ? h->next
						      : out->argsz_needed) -
					     off;
		}
		off = h->next;
	}
	return 0;
}

/* The migration region among the device-specific ones, as QEMU looks. */
RegionInfo find_v1_region(int fd)
{
	struct vfio_device_info dinfo = {};
	RegionInfo r;

	dinfo.argsz = sizeof(dinfo);
	if (uvfio_ioctl(fd, VFIO_DEVICE_GET_INFO, &dinfo))
		return r;
	for (__u32 i = VFIO_PCI_NUM_REGIONS; i < dinfo.num_regions; i++) {
		RegionInfo cur;
		__u32 type = 0, subtype = 0;
		if (region_info(fd, i, &cur, &type, &subtype))
			continue;
		if (type == VFIO_REGION_TYPE_MIGRATION_DEPRECATED &&
		    subtype == VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED) {
			cur.found = true;
			return cur;
		}
	}
	return r;
}

/* A device fd's v1 region, driven by offset as a VMM does. */
class V1
{
public:
	explicit V1(int fd) : fd_(fd), r_(find_v1_region(fd)) {}

	bool ok() const { return r_.found; }
	const RegionInfo &info() const { return r_; }
	int fd() const { return fd_; }

	/* Raw access in the region: the count or -errno. */
	ssize_t rd(void *buf, size_t n, __u64 off)
	{
		ssize_t r = uvfio_pread(fd_, buf, n, off_t(r_.offset + off));
		return r < 0 ? -errno : r;
	}
	ssize_t wr(const void *buf, size_t n, __u64 off)
	{
		ssize_t r = uvfio_pwrite(fd_, buf, n, off_t(r_.offset + off));
		return r < 0 ? -errno : r;
	}

	/* device_state write: 0 or the errno. */
	int set(__u32 v)
	{
		ssize_t r = wr(&v, 4, F_STATE);
		return r == 4 ? 0 : r < 0 ? int(-r) : EIO;
	}
	__u32 state()
	{
		__u32 v = 0xdeadbeef;
		EXPECT_EQ(rd(&v, 4, F_STATE), 4);
		return v;
	}
	/* A 64-bit field: 0 or the errno. */
	int get64(__u64 field, __u64 *v)
	{
		ssize_t r = rd(v, 8, field);
		return r == 8 ? 0 : r < 0 ? int(-r) : EIO;
	}
	__u64 get64(__u64 field)
	{
		__u64 v = ~0ULL;
		EXPECT_EQ(get64(field, &v), 0) << "field " << field;
		return v;
	}
	int put64(__u64 field, __u64 v)
	{
		ssize_t r = wr(&v, 8, field);
		return r == 8 ? 0 : r < 0 ? int(-r) : EIO;
	}

	/* MIG_DEVICE_STATE (v2) on the same device. */
	__u32 v2_state()
	{
		FeatureArg<struct vfio_device_feature_mig_state> a(
			VFIO_DEVICE_FEATURE_GET |
			VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
		EXPECT_EQ(a.ioctl(fd_), 0);
		return a.d()->device_state;
	}
	int reset()
	{
		return uvfio_ioctl(fd_, VFIO_DEVICE_RESET, nullptr) ? errno : 0;
	}
	/* The driver's state digest (the device out of RUNNING). */
	__u64 digest()
	{
		uint64_t h = 0;
		EXPECT_EQ(uvfio_sim_state_digest(fd_, &h), 0)
			<< std::strerror(errno);
		return h;
	}

private:
	int fd_;
	RegionInfo r_;
};

/* A device of any driver, added and opened for one test. */
class Dev
{
public:
	explicit Dev(const std::string &spec) : bdf_(next_bdf())
	{
		size_t comma = spec.find(',');
		std::string s = spec.substr(0, comma) + ",bdf=" + bdf_ +
				(comma == std::string::npos ? ""
							    : spec.substr(comma));
		added_ = uvfio_sim_add(s.c_str()) == 0;
		if (added_)
			fd_ = uvfio_open(bdf_.c_str());
	}
	~Dev()
	{
		if (fd_ >= 0)
			uvfio_close(fd_);
		if (added_)
			uvfio_sim_remove(bdf_.c_str());
	}
	Dev(const Dev &) = delete;
	Dev &operator=(const Dev &) = delete;

	bool ok() const { return fd_ >= 0; }
	int fd() const { return fd_; }

private:
	std::string bdf_;
	bool added_ = false;
	int fd_ = -1;
};

/* v2 SET on fd: 0 or the errno; a data fd it returns goes to *fds. */
int v2_set(int fd, __u32 state, std::vector<int> *fds = nullptr)
{
	FeatureArg<struct vfio_device_feature_mig_state> a(
		VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
	a.d()->device_state = state;
	int e = a.ioctl(fd);
	if (!e && a.d()->data_fd >= 0) {
		if (fds)
			fds->push_back(a.d()->data_fd);
		else
			uvfio_close(a.d()->data_fd);
	}
	return e;
}

/*
 * One saving phase: the KABI's loop (pending_bytes; if > 0 data_offset,
 * data_size, the data; again) until pending_bytes reads 0, appending the
 * data to out. With map, the data comes from an mmap of the window.
 * Pre-copy may also stop at a chunk of 0 bytes (nothing now). 0 or errno.
 */
int drain(V1 &v, std::vector<unsigned char> *out, const unsigned char *map)
{
	for (int i = 0; i < 100000; i++) {
		__u64 pending, off, size;
		int e = v.get64(F_PENDING, &pending);
		if (e)
			return e;
		if (!pending)
			return 0;
		if ((e = v.get64(F_OFFSET, &off)) || (e = v.get64(F_SIZE, &size)))
			return e;
		EXPECT_EQ(off, WINDOW_OFF);
		EXPECT_LE(size, WINDOW_SIZE);
		if (!size)
			return 0;
		size_t at = out->size();
		out->resize(at + size);
		if (map) {
			std::memcpy(out->data() + at, map + (off - WINDOW_OFF), size);
		} else if (v.rd(out->data() + at, size, off) != ssize_t(size)) {
			return EIO;
		}
	}
	return ELOOP;
}

/* A whole save: pre-copy (if asked), stop-and-copy, STOP. */
std::vector<unsigned char> save_v1(V1 &v, bool precopy,
				   const unsigned char *map = nullptr)
{
	std::vector<unsigned char> s;
	if (precopy) {
		EXPECT_EQ(v.set(V1_RUN | V1_SAV), 0);
		EXPECT_EQ(drain(v, &s, map), 0);
	}
	EXPECT_EQ(v.set(V1_SAV), 0);
	EXPECT_EQ(drain(v, &s, map), 0);
	EXPECT_EQ(v.set(V1_STOP), 0);
	EXPECT_EQ(v.state(), V1_STOP);
	return s;
}

/*
 * A whole resume: RESUMING, the KABI's loop (data_offset, the data,
 * data_size) in chunks of at most `chunk`, then device_state = exit.
 * Returns the errno of the first failing step (the data or the exit).
 */
int load_v1(V1 &v, const std::vector<unsigned char> &s, __u32 exit_state,
	    size_t chunk = WINDOW_SIZE, unsigned char *map = nullptr)
{
	int e = v.set(V1_RES);
	if (e)
		return e;
	for (size_t at = 0; at < s.size();) {
		__u64 off;
		if ((e = v.get64(F_OFFSET, &off)))
			return e;
		size_t n = std::min(chunk, s.size() - at);
		if (map)
			std::memcpy(map + (off - WINDOW_OFF), s.data() + at, n);
		else if (v.wr(s.data() + at, n, off) != ssize_t(n))
			return EIO;
		if ((e = v.put64(F_SIZE, n)))
			return e;
		at += n;
	}
	return v.set(exit_state);
}

/* The window mapped read/write, or nullptr. */
unsigned char *map_window(V1 &v)
{
	void *p = uvfio_mmap(nullptr, WINDOW_SIZE, PROT_READ | PROT_WRITE,
			     MAP_SHARED, v.fd(),
			     off_t(v.info().offset + WINDOW_OFF));
	return p == MAP_FAILED ? nullptr : static_cast<unsigned char *>(p);
}

/* ======================= the region and its info ======================= */

// Contract: a device with mig_ops reports 10 regions; region 9 is the v1
// migration region (type 3, subtype 1), size 4 KiB + 1 MiB at 9 << 40,
// readable, writable and mmap-able, with a sparse-mmap capability naming
// exactly the data window [4 KiB, 4 KiB + 1 MiB), and, on a device with
// VFIO_MIGRATION_P2P, the NDMA capability: id 6, version 1, a bare 8-byte
// header. A GET_REGION_INFO too small for the chain gets the argsz it needs
// and no capability.
TEST(MigV1Region, InfoAndCapabilities)
{
	Dev d("simnic,mem=64K");
	ASSERT_TRUE(d.ok());
	struct vfio_device_info dinfo = {};
	dinfo.argsz = sizeof(dinfo);
	ASSERT_EQ(uvfio_ioctl(d.fd(), VFIO_DEVICE_GET_INFO, &dinfo), 0);
	EXPECT_EQ(dinfo.num_regions, VFIO_PCI_NUM_REGIONS + 1u);

	V1 v(d.fd());
	ASSERT_TRUE(v.ok());
	const RegionInfo &r = v.info();
	EXPECT_EQ(r.index, __u32(VFIO_PCI_NUM_REGIONS));
	EXPECT_EQ(r.offset, __u64(VFIO_PCI_NUM_REGIONS) << 40);
	EXPECT_EQ(r.size, REGION_SIZE);
	EXPECT_EQ(r.flags, VFIO_REGION_INFO_FLAG_READ |
				   VFIO_REGION_INFO_FLAG_WRITE |
				   VFIO_REGION_INFO_FLAG_MMAP |
				   VFIO_REGION_INFO_FLAG_CAPS);
	ASSERT_EQ(r.areas.size(), 1u);
	EXPECT_EQ(r.areas[0].first, WINDOW_OFF);
	EXPECT_EQ(r.areas[0].second, WINDOW_SIZE);
	EXPECT_TRUE(r.ndma);
	EXPECT_EQ(r.ndma_version, 1);
	EXPECT_EQ(r.ndma_next_gap, sizeof(struct vfio_info_cap_header));

	/* argsz = 32: the size needed comes back, no chain is written. */
	struct vfio_region_info small = {};
	small.argsz = sizeof(small);
	small.index = r.index;
	ASSERT_EQ(uvfio_ioctl(d.fd(), VFIO_DEVICE_GET_REGION_INFO, &small), 0);
	EXPECT_EQ(small.argsz, r.argsz_needed);
	EXPECT_GT(small.argsz, sizeof(small));
	EXPECT_EQ(small.cap_offset, 0u);
	EXPECT_TRUE(small.flags & VFIO_REGION_INFO_FLAG_CAPS);

	/* Past the last region: EINVAL. */
	RegionInfo none;
	EXPECT_EQ(region_info(d.fd(), VFIO_PCI_NUM_REGIONS + 1, &none), EINVAL);
}

// Contract: without VFIO_MIGRATION_P2P the NDMA capability is absent (the
// region is otherwise the same); without mig_ops there is no region at all.
TEST(MigV1Region, NdmaCapOnlyWithP2P)
{
	for (const char *spec : {"simmin,mem=64K",
				 "testdev,mem=64K,mig=stop_copy",
				 "testdev,mem=64K,mig=stop_copy|pre_copy"}) {
		SCOPED_TRACE(spec);
		Dev d(spec);
		ASSERT_TRUE(d.ok());
		V1 v(d.fd());
		ASSERT_TRUE(v.ok());
		EXPECT_FALSE(v.info().ndma);
		EXPECT_EQ(v.info().areas.size(), 1u);
	}
	for (const char *spec : {"testdev,mem=64K,mig=stop_copy|p2p",
				 "testdev,mem=64K,mig=stop_copy|p2p|pre_copy"}) {
		SCOPED_TRACE(spec);
		Dev d(spec);
		ASSERT_TRUE(d.ok());
		V1 v(d.fd());
		ASSERT_TRUE(v.ok());
		EXPECT_TRUE(v.info().ndma);
	}
	Dev plain("testdev,mem=64K");
	ASSERT_TRUE(plain.ok());
	struct vfio_device_info dinfo = {};
	dinfo.argsz = sizeof(dinfo);
	ASSERT_EQ(uvfio_ioctl(plain.fd(), VFIO_DEVICE_GET_INFO, &dinfo), 0);
	EXPECT_EQ(dinfo.num_regions, __u32(VFIO_PCI_NUM_REGIONS));
	EXPECT_FALSE(V1(plain.fd()).ok());
}

// Contract: the spec key mig_v1=off removes the region (9 regions; index 9
// EINVAL for info, access and mmap) and leaves v2 migration as it was;
// mig_v1=on is the default; any other value is refused by uvfio_sim_add
// with EINVAL and one error line; every driver accepts the key.
TEST(MigV1Region, SpecKeyTurnsItOff)
{
	Dev off("simnic,mem=64K,mig_v1=off");
	ASSERT_TRUE(off.ok());
	struct vfio_device_info dinfo = {};
	dinfo.argsz = sizeof(dinfo);
	ASSERT_EQ(uvfio_ioctl(off.fd(), VFIO_DEVICE_GET_INFO, &dinfo), 0);
	EXPECT_EQ(dinfo.num_regions, __u32(VFIO_PCI_NUM_REGIONS));
	RegionInfo r;
	EXPECT_EQ(region_info(off.fd(), VFIO_PCI_NUM_REGIONS, &r), EINVAL);
	__u32 st;
	EXPECT_EQ(uvfio_pread(off.fd(), &st, 4, off_t(9) << 40), -1);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(uvfio_mmap(nullptr, 4096, PROT_READ, MAP_SHARED, off.fd(),
			     (off_t(9) << 40) + 4096),
		  MAP_FAILED);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(v2_set(off.fd(), VFIO_DEVICE_STATE_STOP), 0);
	EXPECT_EQ(v2_set(off.fd(), VFIO_DEVICE_STATE_RUNNING), 0);

	Dev on("testdev,mem=64K,mig=stop_copy,mig_v1=on");
	ASSERT_TRUE(on.ok());
	EXPECT_TRUE(V1(on.fd()).ok());
	for (const char *spec : {"skeleton,mem=64K,mig_v1=off",
				 "testdev,mem=64K,mig_v1=off"}) {
		Dev d(spec);
		EXPECT_TRUE(d.ok()) << spec;
	}

	LogCapture log;
	std::string bad = "simnic,bdf=" + next_bdf() + ",mig_v1=maybe";
	errno = 0;
	EXPECT_EQ(uvfio_sim_add(bad.c_str()), -1);
	EXPECT_EQ(errno, EINVAL);
	auto lines = log.lines(UVFIO_LOG_ERR);
	ASSERT_EQ(lines.size(), 1u);
	EXPECT_NE(lines[0].find("mig_v1=maybe: want on or off"),
		  std::string::npos)
		<< lines[0];
}

/* ======================= access rules ======================= */

// Contract: the fields of vfio_device_migration_info are accessed only at
// their native width and offset (device_state and reserved 4 bytes,
// the others 8); any other width or offset in [0, 32), anything between
// the fields and the window, and anything past the region fails with
// EINVAL and changes nothing.
TEST(MigV1Access, NativeWidthAndAlignmentOnly)
{
	Dev d("testdev,mem=64K,mig=stop_copy");
	ASSERT_TRUE(d.ok());
	V1 v(d.fd());
	ASSERT_TRUE(v.ok());
	struct {
		__u64 off;
		size_t width;
	} fields[] = {{F_STATE, 4}, {F_RESERVED, 4}, {F_PENDING, 8},
		      {F_OFFSET, 8}, {F_SIZE, 8}};
	unsigned char buf[64] = {};
	for (__u64 off = 0; off < 32; off++) {
		for (size_t n : {1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 32}) {
			bool native = false;
			for (auto &f : fields)
				native |= f.off == off && f.width == n;
			if (native)
				continue;
			SCOPED_TRACE(std::to_string(off) + "+" + std::to_string(n));
			EXPECT_EQ(v.rd(buf, n, off), -EINVAL);
			/* Writes of 1s: harmful if taken anywhere. */
			std::memset(buf, 0xff, sizeof(buf));
			EXPECT_EQ(v.wr(buf, n, off), -EINVAL);
		}
	}
	for (__u64 off : {__u64(32), __u64(36), __u64(40), __u64(0x800),
			  WINDOW_OFF - 8, WINDOW_OFF - 1}) {
		EXPECT_EQ(v.rd(buf, 4, off), -EINVAL) << off;
		EXPECT_EQ(v.wr(buf, 4, off), -EINVAL) << off;
	}
	for (__u64 off : {REGION_SIZE, REGION_SIZE + 8, __u64(1) << 39}) {
		EXPECT_EQ(v.rd(buf, 8, off), -EINVAL) << off;
		EXPECT_EQ(v.wr(buf, 8, off), -EINVAL) << off;
	}
	EXPECT_EQ(v.state(), V1_RUN);
	EXPECT_EQ(v.v2_state(), __u32(VFIO_DEVICE_STATE_RUNNING));
}

// Contract: reserved reads 0 and ignores writes (they succeed); a
// zero-length access does nothing (uvfio_pread/pwrite return 0 before any
// driver sees it, as read(2) with count 0 does).
TEST(MigV1Access, ReservedAndZeroLength)
{
	Dev d("testdev,mem=64K,mig=stop_copy");
	ASSERT_TRUE(d.ok());
	V1 v(d.fd());
	ASSERT_TRUE(v.ok());
	__u32 r = 0x12345678;
	EXPECT_EQ(v.rd(&r, 4, F_RESERVED), 4);
	EXPECT_EQ(r, 0u);
	r = 0xffffffff;
	EXPECT_EQ(v.wr(&r, 4, F_RESERVED), 4);
	EXPECT_EQ(v.rd(&r, 4, F_RESERVED), 4);
	EXPECT_EQ(r, 0u);
	EXPECT_EQ(v.state(), V1_RUN);
	for (__u64 off : {F_STATE, F_PENDING, F_OFFSET, F_SIZE, WINDOW_OFF}) {
		EXPECT_EQ(v.rd(&r, 0, off), 0);
		EXPECT_EQ(v.wr(&r, 0, off), 0);
	}
	EXPECT_EQ(v.state(), V1_RUN);
}

// Contract: pending_bytes and data_offset are read-only (a write is
// EINVAL in every state, nothing changes); data_size is writable only in
// RESUMING (EINVAL elsewhere).
TEST(MigV1Access, ReadOnlyFields)
{
	Dev d("testdev,mem=64K,mig=stop_copy|pre_copy");
	ASSERT_TRUE(d.ok());
	V1 v(d.fd());
	ASSERT_TRUE(v.ok());
	for (__u32 s : {V1_RUN, V1_RUN | V1_SAV, V1_SAV, V1_STOP, V1_RES}) {
		SCOPED_TRACE(s);
		ASSERT_EQ(v.set(s), 0);
		EXPECT_EQ(v.put64(F_PENDING, 0), EINVAL);
		EXPECT_EQ(v.put64(F_OFFSET, WINDOW_OFF), EINVAL);
		if (s != V1_RES)
			EXPECT_EQ(v.put64(F_SIZE, 0), EINVAL);
		else
			EXPECT_EQ(v.put64(F_SIZE, 0), 0);
		EXPECT_EQ(v.state(), s);
	}
	EXPECT_EQ(v.reset(), 0);
}

// Contract: the data window is memory at any width and alignment, in any
// state; an access running past its end is cut at the end; a mapping of
// it (MAP_SHARED, inside the window) sees the same bytes; the fields'
// page, anything past the window and MAP_PRIVATE cannot be mapped
// (EINVAL).
TEST(MigV1Access, WindowIsMemoryAndMappable)
{
	Dev d("testdev,mem=64K,mig=stop_copy");
	ASSERT_TRUE(d.ok());
	V1 v(d.fd());
	ASSERT_TRUE(v.ok());
	unsigned char in[13], out[13] = {};
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = static_cast<unsigned char>(0x30 + i);
	EXPECT_EQ(v.wr(in, sizeof(in), WINDOW_OFF + 3), ssize_t(sizeof(in)));
	EXPECT_EQ(v.rd(out, sizeof(out), WINDOW_OFF + 3), ssize_t(sizeof(out)));
	EXPECT_EQ(std::memcmp(in, out, sizeof(in)), 0);
	EXPECT_EQ(v.rd(out, 8, REGION_SIZE - 5), 5);
	EXPECT_EQ(v.wr(in, 8, REGION_SIZE - 3), 3);

	unsigned char *map = map_window(v);
	ASSERT_NE(map, nullptr);
	EXPECT_EQ(std::memcmp(map + 3, in, sizeof(in)), 0);
	map[100] = 0x5a;
	unsigned char b = 0;
	EXPECT_EQ(v.rd(&b, 1, WINDOW_OFF + 100), 1);
	EXPECT_EQ(b, 0x5a);
	munmap(map, WINDOW_SIZE);

	void *p = uvfio_mmap(nullptr, 4096, PROT_READ, MAP_SHARED, v.fd(),
			     off_t(v.info().offset + WINDOW_OFF + WINDOW_SIZE - 4096));
	ASSERT_NE(p, MAP_FAILED);
	munmap(p, 4096);
	struct {
		__u64 off, len;
		int flags;
	} bad[] = {{0, 4096, MAP_SHARED},
		   {0, WINDOW_SIZE + 4096, MAP_SHARED},
		   {WINDOW_OFF, WINDOW_SIZE + 4096, MAP_SHARED},
		   {WINDOW_OFF + WINDOW_SIZE, 4096, MAP_SHARED},
		   {WINDOW_OFF, 4096, MAP_PRIVATE}};
	for (auto &m : bad) {
		EXPECT_EQ(uvfio_mmap(nullptr, m.len, PROT_READ, m.flags, v.fd(),
				     off_t(v.info().offset + m.off)),
			  MAP_FAILED)
			<< m.off << "+" << m.len;
		EXPECT_EQ(errno, EINVAL);
	}
}

/* ======================= the state table ======================= */

struct Config {
	const char *spec;
	__u32 flags;	/* migration_flags */
};

class MigV1StateTable : public ::testing::TestWithParam<Config>
{
};

/* Put a fresh (RUNNING) device into v1 state s through the region. */
void reach_v1(V1 &v, __u32 s)
{
	if (s == V1_ERR) {
		/* The first arc out of RUNNING breaks the device. */
		ASSERT_EQ(uvfio_fault_set("mig.error", 1, 0, 0), 0);
		EXPECT_EQ(v.set(V1_STOP), EIO);
		uvfio_fault_clear("mig.error");
	} else if (s != V1_RUN) {
		ASSERT_EQ(v.set(s), 0);
	}
	ASSERT_EQ(v.state(), s);
}

/* The same device state through MIG_DEVICE_STATE (v2). */
void reach_v2(int fd, __u32 v2, std::vector<int> *fds)
{
	if (v2 == VFIO_DEVICE_STATE_ERROR) {
		ASSERT_EQ(uvfio_fault_set("mig.error", 1, 0, 0), 0);
		EXPECT_EQ(v2_set(fd, VFIO_DEVICE_STATE_STOP), EIO);
		uvfio_fault_clear("mig.error");
		return;
	}
	ASSERT_EQ(v2_set(fd, v2, fds), 0);
}

/* What the region must answer for a written value, before any FSM. */
bool v1_value_valid(__u32 val, __u32 flags)
{
	if (val & ~(VFIO_DEVICE_STATE_MASK | V1_NDMA))
		return false;
	if ((val & V1_NDMA) && !(flags & VFIO_MIGRATION_P2P))
		return false;
	__u32 bits = val & VFIO_DEVICE_STATE_MASK;
	return !(bits & V1_RES) || bits == V1_RES;
}

/* The v2 state a valid value asks for. */
__u32 v2_target(__u32 val, __u32 flags)
{
	__u32 bits = val & VFIO_DEVICE_STATE_MASK;
	bool ndma = val & V1_NDMA;
	switch (bits) {
	case V1_STOP:
		return VFIO_DEVICE_STATE_STOP;
	case V1_SAV:
		return VFIO_DEVICE_STATE_STOP_COPY;
	case V1_RES:
		return VFIO_DEVICE_STATE_RESUMING;
	case V1_RUN:
		return ndma ? VFIO_DEVICE_STATE_RUNNING_P2P
			    : VFIO_DEVICE_STATE_RUNNING;
	default:	/* RUNNING|SAVING */
		if (flags & VFIO_MIGRATION_PRE_COPY)
			return ndma ? VFIO_DEVICE_STATE_PRE_COPY_P2P
				    : VFIO_DEVICE_STATE_PRE_COPY;
		return ndma ? VFIO_DEVICE_STATE_RUNNING_P2P
			    : VFIO_DEVICE_STATE_RUNNING;
	}
}

/* What device_state reads after the value was taken. */
__u32 v1_readback(__u32 val)
{
	/* NDMA without RUNNING is superfluous and not kept. */
	return (val & V1_RUN) ? val : (val & VFIO_DEVICE_STATE_MASK);
}

// Contract: every row of the KABI's state table, from every v1 state
// (000, 001, 010, 011, 100, the error state 110, and with P2P 1001 and
// 1011), written with every value of the low four bits and with reserved
// bits: a reserved bit, NDMA without P2P support, 101b, 110b and 111b fail
// with EINVAL and leave the state as it was; any other value does exactly
// what MIG_DEVICE_STATE SET to the mapped v2 state does on a twin device
// in the same state (same errno, same resulting v2 state), and on success
// device_state reads the value written (NDMA dropped without RUNNING).
TEST_P(MigV1StateTable, EveryRowFromEveryState)
{
	const Config &c = GetParam();
	Dev a(c.spec), b(c.spec);
	ASSERT_TRUE(a.ok() && b.ok());
	V1 v(a.fd());
	ASSERT_TRUE(v.ok());

	std::vector<__u32> starts = {V1_STOP, V1_RUN, V1_SAV, V1_RUN | V1_SAV,
				     V1_RES, V1_ERR};
	if (c.flags & VFIO_MIGRATION_P2P) {
		starts.push_back(V1_RUN | V1_NDMA);
		starts.push_back(V1_RUN | V1_SAV | V1_NDMA);
	}
	std::vector<__u32> values;
	for (__u32 x = 0; x < 16; x++)
		values.push_back(x);
	for (__u32 x : {0x10u, 0x11u, 0x13u, 0x80000001u, 0xffffffffu})
		values.push_back(x);

	int rows = 0;
	for (__u32 s : starts) {
		for (__u32 val : values) {
			SCOPED_TRACE("from " + std::to_string(s) + " write " +
				     std::to_string(val));
			ASSERT_EQ(v.reset(), 0);
			ASSERT_EQ(uvfio_ioctl(b.fd(), VFIO_DEVICE_RESET, nullptr),
				  0);
			ASSERT_EQ(v.state(), V1_RUN);
			reach_v1(v, s);
			__u32 v2_from = v.v2_state();
			std::vector<int> fds;
			reach_v2(b.fd(), v2_from, &fds);

			int e = v.set(val);
			__u32 after = v.state();
			__u32 v2_after = v.v2_state();
			if (!v1_value_valid(val, c.flags)) {
				EXPECT_EQ(e, EINVAL);
				EXPECT_EQ(after, s);
				EXPECT_EQ(v2_after, v2_from);
			} else {
				int e2 = v2_set(b.fd(), v2_target(val, c.flags),
						&fds);
				V1 vb(b.fd());
				EXPECT_EQ(e, e2);
				EXPECT_EQ(v2_after, vb.v2_state());
				if (!e) {
					EXPECT_EQ(after, v1_readback(val));
					EXPECT_EQ(v2_after,
						  v2_target(val, c.flags));
				} else {
					EXPECT_EQ(after, s);
				}
			}
			ASSERT_EQ(uvfio_ioctl(b.fd(), VFIO_DEVICE_RESET, nullptr),
				  0);
			for (int fd : fds)
				uvfio_close(fd);
			rows++;
		}
	}
	EXPECT_EQ(rows, int(starts.size() * values.size()));
	EXPECT_EQ(v.reset(), 0);
}

INSTANTIATE_TEST_SUITE_P(
	Drivers, MigV1StateTable,
	::testing::Values(
		Config{"testdev,mem=64K,state=4K,mig=stop_copy",
		       VFIO_MIGRATION_STOP_COPY},
		Config{"testdev,mem=64K,state=4K,mig=stop_copy|pre_copy",
		       VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY},
		Config{"testdev,mem=64K,state=4K,mig=stop_copy|p2p",
		       VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P},
		Config{"testdev,mem=64K,state=4K,mig=stop_copy|p2p|pre_copy",
		       VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P |
			       VFIO_MIGRATION_PRE_COPY},
		Config{"simnic,mem=64K",
		       VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P |
			       VFIO_MIGRATION_PRE_COPY}),
	[](const ::testing::TestParamInfo<Config> &info) {
		std::string n = info.param.spec;
		std::string out;
		for (char ch : n.substr(0, n.find(',')) + "_" +
				       std::to_string(info.param.flags))
			out += std::isalnum(static_cast<unsigned char>(ch)) ? ch
									   : '_';
		return out;
	});

// Contract: a transition whose first arc fails leaves device_state at the
// previous state with the driver's errno; one that fails on a later arc
// is walked back to the previous state when that state has no data stream
// (RUNNING -> SAVING failing at STOP -> STOP_COPY reads RUNNING again,
// and v2 GET agrees); the device then migrates normally.
TEST(MigV1Errors, FailedTransitionLeavesPreviousState)
{
	Dev d("simmin,mem=64K");
	ASSERT_TRUE(d.ok());
	V1 v(d.fd());
	ASSERT_TRUE(v.ok());

	ASSERT_EQ(uvfio_fault_set("mig.arc.RUNNING->STOP", 1, 0, 0), 0);
	EXPECT_EQ(v.set(V1_SAV), EIO);
	uvfio_fault_clear(nullptr);
	EXPECT_EQ(v.state(), V1_RUN);

	ASSERT_EQ(uvfio_fault_set("mig.arc.STOP->STOP_COPY", 1, 0, 0), 0);
	EXPECT_EQ(v.set(V1_SAV), EIO);
	uvfio_fault_clear(nullptr);
	EXPECT_EQ(v.state(), V1_RUN);
	EXPECT_EQ(v.v2_state(), __u32(VFIO_DEVICE_STATE_RUNNING));

	/* Pre-copy without driver support: the same from 011. */
	ASSERT_EQ(v.set(V1_RUN | V1_SAV), 0);
	ASSERT_EQ(uvfio_fault_set("mig.arc.STOP->STOP_COPY", 1, 0, 0), 0);
	EXPECT_EQ(v.set(V1_SAV), EIO);
	uvfio_fault_clear(nullptr);
	EXPECT_EQ(v.state(), V1_RUN | V1_SAV);

	std::vector<unsigned char> s = save_v1(v, false);
	EXPECT_FALSE(s.empty());
	EXPECT_EQ(v.set(V1_RUN), 0);
}

// Contract: an arc that breaks the device leaves device_state reading the
// error state 110b with the driver's errno; from there every write, 110b
// included, fails with EINVAL and the state stays 110b; VFIO_DEVICE_RESET
// brings the device back to RUNNING (001), where pending_bytes and
// data_size read 0, and a full save then works.
TEST(MigV1Errors, ErrorStateAndReset)
{
	Dev d("simnic,mem=64K");
	ASSERT_TRUE(d.ok());
	V1 v(d.fd());
	ASSERT_TRUE(v.ok());
	ASSERT_EQ(v.set(V1_RUN | V1_SAV), 0);
	ASSERT_EQ(uvfio_fault_set("mig.error.PRE_COPY_P2P->STOP_COPY", 1, 0, 0),
		  0);
	EXPECT_EQ(v.set(V1_SAV), EIO);
	uvfio_fault_clear(nullptr);
	EXPECT_EQ(v.state(), V1_ERR);
	EXPECT_EQ(v.v2_state(), __u32(VFIO_DEVICE_STATE_ERROR));
	for (__u32 val = 0; val < 16; val++) {
		EXPECT_EQ(v.set(val), EINVAL) << val;
		EXPECT_EQ(v.state(), V1_ERR);
	}
	EXPECT_EQ(v.get64(F_PENDING), 0u);

	ASSERT_EQ(v.reset(), 0);
	EXPECT_EQ(v.state(), V1_RUN);
	EXPECT_EQ(v.get64(F_PENDING), 0u);
	EXPECT_EQ(v.get64(F_SIZE), 0u);
	std::vector<unsigned char> s = save_v1(v, true);
	EXPECT_FALSE(s.empty());
}

/* ======================= saving, step by step ======================= */

// Contract (stop-and-copy on a device without PRE_COPY): RUNNING and
// RUNNING|SAVING have no data (pending_bytes 0, data_size 0, data_offset
// the window, all without side effects); in SAVING pending_bytes is > 0
// and repeated reads change nothing (data_size stays 0 until data_offset
// is read); data_offset and data_size then give the window and a chunk of
// at most the window, the same on every repeated read; only a
// pending_bytes read after data_offset moves to the next chunk; the chunks
// are the device's whole stream, which ends with pending_bytes 0 (then 0
// forever, and data_offset gives an empty chunk). The stream loads into a
// second device: equal digests.
TEST(MigV1Save, StopCopyStepByStep)
{
	Dev src("simmin,mem=2M,seed=9"), dst("simmin,mem=2M");
	ASSERT_TRUE(src.ok() && dst.ok());
	V1 v(src.fd()), w(dst.fd());
	ASSERT_TRUE(v.ok() && w.ok());

	EXPECT_EQ(v.get64(F_PENDING), 0u);
	EXPECT_EQ(v.get64(F_OFFSET), WINDOW_OFF);
	EXPECT_EQ(v.get64(F_SIZE), 0u);
	ASSERT_EQ(v.set(V1_RUN | V1_SAV), 0);
	EXPECT_EQ(v.state(), V1_RUN | V1_SAV);
	EXPECT_EQ(v.v2_state(), __u32(VFIO_DEVICE_STATE_RUNNING));
	for (int i = 0; i < 3; i++) {
		EXPECT_EQ(v.get64(F_PENDING), 0u);
		EXPECT_EQ(v.get64(F_OFFSET), WINDOW_OFF);
		EXPECT_EQ(v.get64(F_SIZE), 0u);
	}

	ASSERT_EQ(v.set(V1_SAV), 0);
	EXPECT_EQ(v.v2_state(), __u32(VFIO_DEVICE_STATE_STOP_COPY));
	std::vector<unsigned char> stream;
	int chunks = 0;
	for (;;) {
		__u64 p = v.get64(F_PENDING);
		/* Repeated reads: no side effect. */
		EXPECT_EQ(v.get64(F_PENDING), p);
		EXPECT_EQ(v.get64(F_SIZE), 0u);
		EXPECT_EQ(v.get64(F_PENDING), p);
		if (!p)
			break;
		EXPECT_EQ(v.get64(F_OFFSET), WINDOW_OFF);
		__u64 n = v.get64(F_SIZE);
		EXPECT_GT(n, 0u);
		EXPECT_LE(n, WINDOW_SIZE);
		EXPECT_LE(n, p);
		EXPECT_EQ(v.get64(F_OFFSET), WINDOW_OFF);
		EXPECT_EQ(v.get64(F_SIZE), n);
		std::vector<unsigned char> a(n), b(n);
		ASSERT_EQ(v.rd(a.data(), n, WINDOW_OFF), ssize_t(n));
		ASSERT_EQ(v.rd(b.data(), n, WINDOW_OFF), ssize_t(n));
		EXPECT_EQ(a, b);
		stream.insert(stream.end(), a.begin(), a.end());
		chunks++;
		ASSERT_LT(chunks, 100);
	}
	EXPECT_GE(chunks, 2);	/* 2 MiB of memory: more than a window */
	for (int i = 0; i < 3; i++)
		EXPECT_EQ(v.get64(F_PENDING), 0u);
	EXPECT_EQ(v.get64(F_OFFSET), WINDOW_OFF);
	EXPECT_EQ(v.get64(F_SIZE), 0u);
	EXPECT_EQ(v.get64(F_PENDING), 0u);
	ASSERT_EQ(v.set(V1_STOP), 0);
	EXPECT_EQ(v.get64(F_PENDING), 0u);

	ASSERT_EQ(load_v1(w, stream, V1_STOP), 0);
	EXPECT_EQ(w.state(), V1_STOP);
	EXPECT_EQ(w.digest(), v.digest());
	EXPECT_EQ(w.set(V1_RUN), 0);
}

// Contract (pre-copy on a device with PRE_COPY): RUNNING|SAVING is
// PRE_COPY; the first pending_bytes is the whole initial data
// (PRECOPY_INFO's initial + dirty: configuration and a full image of
// device memory), and it falls by exactly each chunk consumed; with
// nothing dirty it reads 0. A page written to device memory makes
// pending_bytes > 0 again and comes as a chunk. SAVING then sends the
// rest until pending_bytes is 0, and a second device loaded through the
// region has the same digest and runs.
TEST(MigV1Save, PreCopyStepByStep)
{
	constexpr __u64 MEM = 1 << 20;
	constexpr __u64 INITIAL = 32 + 56 + MEM + 32; /* CONFIG + one MEM */
	Dev src("simnic,mem=1M,seed=3"), dst("simnic,mem=1M");
	ASSERT_TRUE(src.ok() && dst.ok());
	V1 v(src.fd()), w(dst.fd());
	ASSERT_TRUE(v.ok() && w.ok());

	ASSERT_EQ(v.set(V1_RUN | V1_SAV), 0);
	EXPECT_EQ(v.v2_state(), __u32(VFIO_DEVICE_STATE_PRE_COPY));
	std::vector<unsigned char> stream;
	__u64 p = v.get64(F_PENDING);
	EXPECT_EQ(p, INITIAL);
	EXPECT_EQ(v.get64(F_PENDING), INITIAL);
	while (p) {
		EXPECT_EQ(v.get64(F_OFFSET), WINDOW_OFF);
		__u64 n = v.get64(F_SIZE);
		ASSERT_GT(n, 0u);
		size_t at = stream.size();
		stream.resize(at + n);
		ASSERT_EQ(v.rd(stream.data() + at, n, WINDOW_OFF), ssize_t(n));
		__u64 next = v.get64(F_PENDING);
		EXPECT_EQ(next, p - n);
		p = next;
	}
	EXPECT_EQ(stream.size(), INITIAL);
	EXPECT_EQ(v.get64(F_PENDING), 0u);

	/* A write to device memory: dirty data in pre-copy. */
	__u32 word = 0xa5a55a5a;
	ASSERT_EQ(uvfio_pwrite(src.fd(), &word, 4, BAR2_OFF + 8192), 4);
	p = v.get64(F_PENDING);
	EXPECT_GE(p, 4096u);
	ASSERT_EQ(drain(v, &stream, nullptr), 0);
	EXPECT_GT(stream.size(), INITIAL + 4096);
	EXPECT_EQ(v.get64(F_PENDING), 0u);

	ASSERT_EQ(v.set(V1_SAV), 0);
	EXPECT_GT(v.get64(F_PENDING), 0u);	/* the state and the end */
	ASSERT_EQ(drain(v, &stream, nullptr), 0);
	ASSERT_EQ(v.set(V1_STOP), 0);

	ASSERT_EQ(load_v1(w, stream, V1_STOP), 0);
	EXPECT_EQ(w.digest(), v.digest());
	EXPECT_EQ(w.set(V1_RUN), 0);
	EXPECT_EQ(w.state(), V1_RUN);
}

// Contract: the user need not consume pre-copy data before stop-and-copy
// (KABI): data read ahead into the window but not handed out, and a chunk
// handed out but not consumed, are not lost across RUNNING|SAVING ->
// SAVING: the next data_offset gives them, and the whole stream loads.
TEST(MigV1Save, PreCopyDataSurvivesStopAndCopy)
{
	for (bool handed : {false, true}) {
		SCOPED_TRACE(handed ? "handed out" : "read ahead only");
		Dev src("simnic,mem=1M,seed=4"), dst("simnic,mem=1M");
		ASSERT_TRUE(src.ok() && dst.ok());
		V1 v(src.fd()), w(dst.fd());
		ASSERT_TRUE(v.ok() && w.ok());
		ASSERT_EQ(v.set(V1_RUN | V1_SAV), 0);
		ASSERT_GT(v.get64(F_PENDING), 0u);
		std::vector<unsigned char> stream;
		if (handed) {
			/* Read the chunk; the SAVING write comes before the
			 * pending_bytes read that would consume it. */
			EXPECT_EQ(v.get64(F_OFFSET), WINDOW_OFF);
			__u64 n = v.get64(F_SIZE);
			stream.resize(n);
			ASSERT_EQ(v.rd(stream.data(), n, WINDOW_OFF), ssize_t(n));
		}
		ASSERT_EQ(v.set(V1_SAV), 0);
		ASSERT_EQ(drain(v, &stream, nullptr), 0);
		ASSERT_EQ(v.set(V1_STOP), 0);
		ASSERT_EQ(load_v1(w, stream, V1_STOP), 0);
		EXPECT_EQ(w.digest(), v.digest());
	}
}

/* ======================= resuming, step by step ======================= */

// Contract: in RESUMING data_offset is the window (every time),
// pending_bytes reads 0, data_size reads 0 and then the last size
// written; a data_size above the window is EINVAL and sends nothing; a
// data_size of 0 is accepted and sends nothing; the stream written in
// chunks of any size (here 1000 bytes, the window, and both through a
// mapping of the window) loads. Leaving RESUMING ends the session
// (data_size reads 0).
TEST(MigV1Resume, StepByStep)
{
	Dev src("testdev,mem=256K,state=64K,mig=stop_copy");
	ASSERT_TRUE(src.ok());
	V1 v(src.fd());
	ASSERT_TRUE(v.ok());
	std::vector<unsigned char> stream = save_v1(v, false);
	ASSERT_GT(stream.size(), 256u << 10);

	for (size_t chunk : {size_t(1000), size_t(WINDOW_SIZE)}) {
		for (bool mapped : {false, true}) {
			SCOPED_TRACE(std::to_string(chunk) +
				     (mapped ? " mapped" : ""));
			Dev dst("testdev,mem=256K,state=64K,mig=stop_copy");
			ASSERT_TRUE(dst.ok());
			V1 w(dst.fd());
			ASSERT_TRUE(w.ok());
			ASSERT_EQ(w.set(V1_RES), 0);
			EXPECT_EQ(w.get64(F_OFFSET), WINDOW_OFF);
			EXPECT_EQ(w.get64(F_PENDING), 0u);
			EXPECT_EQ(w.get64(F_SIZE), 0u);
			EXPECT_EQ(w.put64(F_SIZE, WINDOW_SIZE + 1), EINVAL);
			EXPECT_EQ(w.put64(F_SIZE, ~0ULL), EINVAL);
			EXPECT_EQ(w.put64(F_SIZE, 0), 0);
			EXPECT_EQ(w.get64(F_SIZE), 0u);
			unsigned char *map = mapped ? map_window(w) : nullptr;
			ASSERT_TRUE(!mapped || map);
			for (size_t at = 0; at < stream.size();) {
				EXPECT_EQ(w.get64(F_OFFSET), WINDOW_OFF);
				size_t n = std::min(chunk, stream.size() - at);
				if (map)
					std::memcpy(map, stream.data() + at, n);
				else
					ASSERT_EQ(w.wr(stream.data() + at, n,
						       WINDOW_OFF),
						  ssize_t(n));
				ASSERT_EQ(w.put64(F_SIZE, n), 0);
				EXPECT_EQ(w.get64(F_SIZE), n);
				at += n;
			}
			if (map)
				munmap(map, WINDOW_SIZE);
			ASSERT_EQ(w.set(V1_STOP), 0);
			EXPECT_EQ(w.get64(F_SIZE), 0u);
			EXPECT_EQ(w.digest(), v.digest());
			EXPECT_EQ(w.set(V1_RUN), 0);
		}
	}
}

/* ======================= round trips ======================= */

struct RoundTrip {
	const char *spec;
	bool precopy;
	bool mapped;
};

class MigV1RoundTrip : public ::testing::TestWithParam<RoundTrip>
{
};

// Contract: a full save through the region (pre-copy where the driver has
// it, then stop-and-copy, by pread or through a mapping of the window)
// loaded into a second device through the region gives the driver's
// state digest of the source; the destination then runs. The bytes are
// the driver's v2 stream: the same save loads through a v2 data fd, and a
// v2 save loads through the region.
TEST_P(MigV1RoundTrip, DigestsMatch)
{
	const RoundTrip &rt = GetParam();
	Dev src(rt.spec), dst(rt.spec), dst2(rt.spec);
	ASSERT_TRUE(src.ok() && dst.ok() && dst2.ok());
	V1 v(src.fd()), w(dst.fd());
	ASSERT_TRUE(v.ok() && w.ok());
	unsigned char *smap = rt.mapped ? map_window(v) : nullptr;
	unsigned char *dmap = rt.mapped ? map_window(w) : nullptr;
	ASSERT_TRUE(!rt.mapped || (smap && dmap));

	std::vector<unsigned char> stream = save_v1(v, rt.precopy, smap);
	ASSERT_FALSE(stream.empty());
	ASSERT_EQ(load_v1(w, stream, V1_STOP, WINDOW_SIZE, dmap), 0);
	EXPECT_EQ(w.digest(), v.digest());
	EXPECT_EQ(w.set(V1_RUN), 0);
	if (smap)
		munmap(smap, WINDOW_SIZE);
	if (dmap)
		munmap(dmap, WINDOW_SIZE);

	/* The v1 bytes through a v2 data fd. */
	std::vector<int> fds;
	ASSERT_EQ(v2_set(dst2.fd(), VFIO_DEVICE_STATE_RESUMING, &fds), 0);
	ASSERT_EQ(fds.size(), 1u);
	for (size_t at = 0; at < stream.size();) {
		ssize_t n = uvfio_write(fds[0], stream.data() + at,
					stream.size() - at);
		ASSERT_GT(n, 0);
		at += size_t(n);
	}
	ASSERT_EQ(v2_set(dst2.fd(), VFIO_DEVICE_STATE_STOP), 0);
	uvfio_close(fds[0]);
	V1 w2(dst2.fd());
	EXPECT_EQ(w2.digest(), v.digest());

	/* A v2 save of dst2 through the region into src. */
	fds.clear();
	ASSERT_EQ(v2_set(dst2.fd(), VFIO_DEVICE_STATE_STOP_COPY, &fds), 0);
	std::vector<unsigned char> v2stream, buf(1 << 20);
	for (;;) {
		ssize_t n = uvfio_read(fds[0], buf.data(), buf.size());
		ASSERT_GE(n, 0);
		if (!n)
			break;
		v2stream.insert(v2stream.end(), buf.begin(), buf.begin() + n);
	}
	uvfio_close(fds[0]);
	ASSERT_EQ(v2_set(dst2.fd(), VFIO_DEVICE_STATE_STOP), 0);
	ASSERT_EQ(v.reset(), 0);
	ASSERT_EQ(load_v1(v, v2stream, V1_STOP), 0);
	EXPECT_EQ(v.digest(), w2.digest());
}

INSTANTIATE_TEST_SUITE_P(
	Drivers, MigV1RoundTrip,
	::testing::Values(
		RoundTrip{"simnic,mem=4M,seed=1", true, false},
		RoundTrip{"simnic,mem=4M,seed=2", true, true},
		RoundTrip{"simnic,mem=4M,seed=3", false, false},
		RoundTrip{"simmin,mem=4M,seed=4", true, false},
		RoundTrip{"simmin,mem=4M,seed=5", false, true},
		RoundTrip{"testdev,mem=1M,state=300K,mig=stop_copy|pre_copy",
			  true, false},
		RoundTrip{"testdev,mem=1M,state=300K,mig=stop_copy|p2p", true,
			  true},
		RoundTrip{"skeleton,mem=1M,seed=6", false, false}),
	[](const ::testing::TestParamInfo<RoundTrip> &info) {
		std::string n = info.param.spec;
		return n.substr(0, n.find(',')) + "_" +
		       std::to_string(info.index);
	});

/* ======================= bad streams ======================= */

/*
 * Feed s through the region into d and leave RESUMING for exit_state:
 * it must fail (at a data_size write or at the exit) and never leave the
 * device RUNNING on the stream.
 */
void expect_refused(V1 &w, const std::vector<unsigned char> &s,
		    __u32 exit_state)
{
	int e = load_v1(w, s, exit_state);
	EXPECT_NE(e, 0);
	__u32 st = w.state();
	EXPECT_TRUE(st == V1_RES || st == V1_ERR) << st;
	EXPECT_NE(w.v2_state(), __u32(VFIO_DEVICE_STATE_RUNNING));
	EXPECT_NE(w.v2_state(), __u32(VFIO_DEVICE_STATE_STOP));
	/* Trying again does not let it through either. */
	EXPECT_NE(w.set(exit_state), 0);
	EXPECT_NE(w.v2_state(), __u32(VFIO_DEVICE_STATE_RUNNING));
	ASSERT_EQ(w.reset(), 0);
	EXPECT_EQ(w.state(), V1_RUN);
}

// Contract: a corrupt stream (one byte flipped in device memory, in a
// record header, or in the last record) and a truncated one (cut in the
// middle, or short of its last byte) written through the region are
// refused when the device leaves RESUMING, for STOP and for RUNNING
// alike: device_state reads RESUMING (or the error state), never STOP or
// RUNNING on that stream; a reset brings the device back, and the good
// stream then loads.
TEST(MigV1Resume, CorruptAndTruncatedRefused)
{
	for (const char *spec : {"simnic,mem=1M,seed=7",
				 "testdev,mem=256K,state=8K,mig=stop_copy|p2p"}) {
		SCOPED_TRACE(spec);
		Dev src(spec), dst(spec);
		ASSERT_TRUE(src.ok() && dst.ok());
		V1 v(src.fd()), w(dst.fd());
		ASSERT_TRUE(v.ok() && w.ok());
		std::vector<unsigned char> good = save_v1(v, false);
		ASSERT_GT(good.size(), 4096u);

		std::vector<std::vector<unsigned char>> bad;
		for (size_t at : {good.size() / 2, size_t(5), good.size() - 3}) {
			auto c = good;
			c[at] ^= 0x40;
			bad.push_back(c);
		}
		bad.emplace_back(good.begin(), good.begin() + good.size() / 2);
		bad.emplace_back(good.begin(), good.end() - 1);
		for (size_t i = 0; i < bad.size(); i++) {
			for (__u32 exit_state : {V1_STOP, V1_RUN}) {
				SCOPED_TRACE("bad stream " + std::to_string(i) +
					     " exit " + std::to_string(exit_state));
				expect_refused(w, bad[i], exit_state);
			}
		}
		ASSERT_EQ(load_v1(w, good, V1_RUN), 0);
		EXPECT_EQ(w.state(), V1_RUN);
		ASSERT_EQ(w.set(V1_STOP), 0);
		EXPECT_EQ(w.digest(), v.digest());
	}
}

/* ======================= NDMA ======================= */

// Contract (P2P): RUNNING|NDMA is RUNNING_P2P and RUNNING|SAVING|NDMA
// PRE_COPY_P2P, each read back with NDMA; clearing NDMA returns to
// RUNNING / PRE_COPY; NDMA without RUNNING is superfluous: accepted, the
// same as without it, and not read back; a save that passes through
// PRE_COPY_P2P loads with an equal digest.
TEST(MigV1Ndma, MapsOntoP2PStates)
{
	Dev src("simnic,mem=1M,seed=11"), dst("simnic,mem=1M");
	ASSERT_TRUE(src.ok() && dst.ok());
	V1 v(src.fd()), w(dst.fd());
	ASSERT_TRUE(v.ok() && w.ok() && v.info().ndma);

	struct {
		__u32 write, read, v2;
	} steps[] = {
		{V1_RUN | V1_NDMA, V1_RUN | V1_NDMA, VFIO_DEVICE_STATE_RUNNING_P2P},
		{V1_RUN, V1_RUN, VFIO_DEVICE_STATE_RUNNING},
		{V1_RUN | V1_NDMA, V1_RUN | V1_NDMA, VFIO_DEVICE_STATE_RUNNING_P2P},
		{V1_NDMA, V1_STOP, VFIO_DEVICE_STATE_STOP},
		{V1_RES | V1_NDMA, V1_RES, VFIO_DEVICE_STATE_RESUMING},
	};
	for (auto &s : steps) {
		SCOPED_TRACE(s.write);
		ASSERT_EQ(v.set(s.write), 0);
		EXPECT_EQ(v.state(), s.read);
		EXPECT_EQ(v.v2_state(), s.v2);
	}
	ASSERT_EQ(v.reset(), 0);

	std::vector<unsigned char> stream;
	ASSERT_EQ(v.set(V1_RUN | V1_SAV), 0);
	ASSERT_EQ(v.set(V1_RUN | V1_SAV | V1_NDMA), 0);
	EXPECT_EQ(v.state(), V1_RUN | V1_SAV | V1_NDMA);
	EXPECT_EQ(v.v2_state(), __u32(VFIO_DEVICE_STATE_PRE_COPY_P2P));
	ASSERT_EQ(drain(v, &stream, nullptr), 0);
	ASSERT_EQ(v.set(V1_RUN | V1_SAV), 0);
	EXPECT_EQ(v.v2_state(), __u32(VFIO_DEVICE_STATE_PRE_COPY));
	ASSERT_EQ(v.set(V1_RUN | V1_SAV | V1_NDMA), 0);
	ASSERT_EQ(v.set(V1_SAV | V1_NDMA), 0);	/* superfluous NDMA */
	EXPECT_EQ(v.state(), V1_SAV);
	ASSERT_EQ(drain(v, &stream, nullptr), 0);
	ASSERT_EQ(v.set(V1_STOP | V1_NDMA), 0);
	EXPECT_EQ(v.state(), V1_STOP);
	ASSERT_EQ(load_v1(w, stream, V1_STOP), 0);
	EXPECT_EQ(w.digest(), v.digest());
}

// Contract (without P2P): any write with NDMA set fails with EINVAL,
// whatever the other bits, and the state stays.
TEST(MigV1Ndma, RefusedWithoutP2P)
{
	for (const char *spec : {"simmin,mem=64K",
				 "testdev,mem=64K,mig=stop_copy|pre_copy"}) {
		SCOPED_TRACE(spec);
		Dev d(spec);
		ASSERT_TRUE(d.ok());
		V1 v(d.fd());
		ASSERT_TRUE(v.ok());
		for (__u32 from : {V1_RUN, V1_RUN | V1_SAV, V1_STOP}) {
			ASSERT_EQ(v.set(from), 0);
			for (__u32 val = V1_NDMA; val < 16; val++) {
				EXPECT_EQ(v.set(val), EINVAL) << val;
				EXPECT_EQ(v.state(), from);
			}
		}
		EXPECT_EQ(v.reset(), 0);
	}
}

// Contract: NDMA quiesces DMA as the RFC says: with the device's DMA
// engine busy, the write of RUNNING|NDMA returns only when nothing is in
// flight (STATUS shows QUIESCED, no DMA write happens while it stays),
// and clearing NDMA lets the work go on.
TEST(MigV1Ndma, QuiescesDma)
{
	SimnicDev d("drain_us=2000");
	ASSERT_TRUE(d.ok());
	V1 v(d.fd());
	ASSERT_TRUE(v.ok());
	d.set_cfg16(0x04, __u16(d.cfg16(0x04) | 0x4));
	sim_workload w;
	sim_workload_config c;
	c.device_fd = d.fd();
	c.guest = d.guest();
	c.guest_iova = GUEST_IOVA;
	c.guest_size = d.guest_size();
	c.dev_mem_size = 1 << 20;
	c.seed = 5;
	c.count = 0;
	c.max_len = 64 << 10;
	ASSERT_EQ(w.start(c), 0);
	for (int round = 0; round < 3; round++) {
		__u64 writes0 = d.reg64(SIMDEV_REG_DMA_WRITES_LO);
		for (int i = 0; i < 2000 &&
				d.reg64(SIMDEV_REG_DMA_WRITES_LO) < writes0 + 8;
		     i++)
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
		ASSERT_EQ(v.set(V1_RUN | V1_NDMA), 0);
		__u64 writes = d.reg64(SIMDEV_REG_DMA_WRITES_LO);
		EXPECT_TRUE(d.reg(SIMDEV_REG_STATUS) & SIMDEV_STATUS_QUIESCED);
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
		EXPECT_EQ(d.reg64(SIMDEV_REG_DMA_WRITES_LO), writes);
		ASSERT_EQ(v.set(V1_RUN), 0);
		EXPECT_FALSE(d.reg(SIMDEV_REG_STATUS) & SIMDEV_STATUS_QUIESCED);
	}
	w.stop();
	EXPECT_EQ(w.wait_done(10000), 0);
	EXPECT_EQ(w.error(), 0);
}

// Contract: a live save through the region while the device's DMA engine
// runs (pre-copy passes under load; then the workload stops posting and
// SAVING stops the device with descriptors in flight) loads into a second
// device with the source's digest.
TEST(MigV1Save, UnderDmaLoad)
{
	SimnicDev src("seed=21"), dst;
	ASSERT_TRUE(src.ok() && dst.ok());
	V1 v(src.fd()), w(dst.fd());
	ASSERT_TRUE(v.ok() && w.ok());
	src.set_cfg16(0x04, __u16(src.cfg16(0x04) | 0x4));
	sim_workload wl;
	sim_workload_config c;
	c.device_fd = src.fd();
	c.guest = src.guest();
	c.guest_iova = GUEST_IOVA;
	c.guest_size = src.guest_size();
	c.dev_mem_size = 1 << 20;
	c.seed = 21;
	c.count = 0;
	c.max_len = 16 << 10;
	ASSERT_EQ(wl.start(c), 0);
	std::vector<unsigned char> stream;
	ASSERT_EQ(v.set(V1_RUN | V1_SAV), 0);
	for (int pass = 0; pass < 3; pass++) {
		ASSERT_EQ(drain(v, &stream, nullptr), 0);
		std::this_thread::sleep_for(std::chrono::milliseconds(5));
	}
	/* Stop the vCPUs (the workload's posting), then the device. */
	wl.stop();
	ASSERT_EQ(wl.error(), 0);
	ASSERT_EQ(v.set(V1_SAV), 0);
	ASSERT_EQ(drain(v, &stream, nullptr), 0);
	ASSERT_EQ(v.set(V1_STOP), 0);
	ASSERT_EQ(load_v1(w, stream, V1_STOP), 0);
	EXPECT_EQ(w.digest(), v.digest());
}

/* ======================= sessions, resets, errors ======================= */

// Contract: a session holds no fd userspace can see (the fd table and the
// process's fds are unchanged while a stream runs behind the region), and
// closing the device mid-session ends it: the device reopens RUNNING.
TEST(MigV1Session, NoFdAndCloseEnds)
{
	std::string bdf = next_bdf();
	std::string spec = "simnic,bdf=" + bdf + ",mem=1M";
	ASSERT_EQ(uvfio_sim_add(spec.c_str()), 0);
	int fd = uvfio_open(bdf.c_str());
	ASSERT_GE(fd, 0);
	{
		V1 v(fd);
		ASSERT_TRUE(v.ok());
		size_t table = uvfio_fd_count();
		int fds = count_open_fds();
		ASSERT_EQ(v.set(V1_RUN | V1_SAV), 0);
		EXPECT_GT(v.get64(F_PENDING), 0u);
		EXPECT_EQ(uvfio_fd_count(), table);
		ASSERT_EQ(v.set(V1_SAV), 0);
		EXPECT_GT(v.get64(F_PENDING), 0u);
		EXPECT_EQ(v.get64(F_OFFSET), WINDOW_OFF);
		EXPECT_EQ(uvfio_fd_count(), table);
		/* The stream's own sockets are the core's, not in the table. */
		EXPECT_LE(count_open_fds(), fds + 4);
	}
	ASSERT_EQ(uvfio_close(fd), 0);
	fd = uvfio_open(bdf.c_str());
	ASSERT_GE(fd, 0);
	{
		V1 v(fd);
		EXPECT_EQ(v.state(), V1_RUN);
		EXPECT_EQ(v.get64(F_PENDING), 0u);
		EXPECT_EQ(v.get64(F_SIZE), 0u);
		std::vector<unsigned char> s = save_v1(v, true);
		EXPECT_FALSE(s.empty());
	}
	EXPECT_EQ(uvfio_close(fd), 0);
	EXPECT_EQ(uvfio_sim_remove(bdf.c_str()), 0);
}

// Contract: VFIO_DEVICE_RESET mid-save and mid-resume ends the session:
// device_state reads RUNNING, pending_bytes and data_size 0, data_size is
// not writable; a MIG_DEVICE_STATE SET abandons a session the same way
// (device_state reads the new state; pre-copy without driver support is
// forgotten).
TEST(MigV1Session, ResetAndV2SetEndIt)
{
	Dev d("simnic,mem=1M");
	ASSERT_TRUE(d.ok());
	V1 v(d.fd());
	ASSERT_TRUE(v.ok());
	/* The start of the device's own stream: its header is taken. */
	std::vector<unsigned char> own = save_v1(v, false);
	ASSERT_GE(own.size(), 64u);
	ASSERT_EQ(v.set(V1_SAV), 0);
	ASSERT_GT(v.get64(F_PENDING), 0u);
	EXPECT_EQ(v.get64(F_OFFSET), WINDOW_OFF);
	ASSERT_EQ(v.reset(), 0);
	EXPECT_EQ(v.state(), V1_RUN);
	EXPECT_EQ(v.get64(F_PENDING), 0u);
	EXPECT_EQ(v.get64(F_SIZE), 0u);

	ASSERT_EQ(v.set(V1_RES), 0);
	ASSERT_EQ(v.wr(own.data(), 64, WINDOW_OFF), 64);
	ASSERT_EQ(v.put64(F_SIZE, 64), 0);
	ASSERT_EQ(v.reset(), 0);
	EXPECT_EQ(v.state(), V1_RUN);
	EXPECT_EQ(v.put64(F_SIZE, 8), EINVAL);

	ASSERT_EQ(v.set(V1_RUN | V1_SAV), 0);
	ASSERT_GT(v.get64(F_PENDING), 0u);
	std::vector<int> fds;
	ASSERT_EQ(v2_set(d.fd(), VFIO_DEVICE_STATE_RUNNING, &fds), 0);
	EXPECT_EQ(v.state(), V1_RUN);
	EXPECT_EQ(v.get64(F_PENDING), 0u);

	Dev m("simmin,mem=64K");
	ASSERT_TRUE(m.ok());
	V1 vm(m.fd());
	ASSERT_EQ(vm.set(V1_RUN | V1_SAV), 0);
	EXPECT_EQ(vm.state(), V1_RUN | V1_SAV);
	ASSERT_EQ(v2_set(m.fd(), VFIO_DEVICE_STATE_RUNNING), 0);
	EXPECT_EQ(vm.state(), V1_RUN);
}

// Contract: a driver error on the saving stream is reported by the next
// access that reads the stream (pending_bytes: the driver's errno), then
// once by the next device_state write (as MIG_DEVICE_STATE SET does),
// which changes nothing; the device then leaves SAVING normally.
TEST(MigV1Errors, StreamErrorReported)
{
	Dev d("simmin,mem=4M");
	ASSERT_TRUE(d.ok());
	V1 v(d.fd());
	ASSERT_TRUE(v.ok());
	ASSERT_EQ(uvfio_fault_set("mig.data.read", 2, 0, 0), 0);
	ASSERT_EQ(v.set(V1_SAV), 0);
	std::vector<unsigned char> s;
	EXPECT_EQ(drain(v, &s, nullptr), EIO);
	uvfio_fault_clear(nullptr);
	__u64 p;
	EXPECT_EQ(v.get64(F_PENDING, &p), EIO);
	EXPECT_EQ(v.set(V1_STOP), EIO);
	EXPECT_EQ(v.state(), V1_SAV);
	EXPECT_EQ(v.get64(F_PENDING), 0u);
	EXPECT_EQ(v.set(V1_STOP), 0);
	EXPECT_EQ(v.state(), V1_STOP);
	EXPECT_EQ(v.set(V1_RUN), 0);
}

} // namespace
