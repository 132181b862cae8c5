// SPDX-License-Identifier: GPL-2.0-only
/*
 * The type1 IOMMU model (core/vfio/vfio_iommu_type1.cc), called through its
 * core-private interface: every validation rule of GET_INFO, MAP_DMA,
 * UNMAP_DMA and DIRTY_PAGES with its errno, the capability chain, mapping
 * bookkeeping, device DMA through the mappings, pinning and the dma_unmap
 * callback, a property test of dirty tracking against a shadow model, and
 * DMA racing with MAP/UNMAP.
 */
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include <uvfio/linux/err.h>
#include <uvfio/linux/mm.h>
#include <uvfio/linux/vfio.h>
#include <uvfio/uapi/vfio.h>

#include "lc_driver.h"
#include "test_util.h"
#include "vfio_iommu.h"

using namespace uvfio_test;

namespace {

constexpr u64 PG = 4096;
constexpr u32 RW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;

/* An address no copy can read or write: a PROT_NONE page kept for good. */
void *bad_address()
{
	static void *p = mmap(nullptr, PG, PROT_NONE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p;
}

/* Anonymous read-write memory of n pages, unmapped on destruction. */
struct Guest {
	size_t len;
	char *mem;
	explicit Guest(size_t pages, int prot = PROT_READ | PROT_WRITE)
		: len(pages * PG)
	{
		mem = static_cast<char *>(mmap(nullptr, len, prot,
					       MAP_PRIVATE | MAP_ANONYMOUS |
						       MAP_NORESERVE,
					       -1, 0));
		if (mem == MAP_FAILED)
			mem = nullptr;
	}
	~Guest()
	{
		if (mem)
			munmap(mem, len);
	}
	u64 va(u64 page = 0) const
	{
		return reinterpret_cast<u64>(mem) + page * PG;
	}
};

/* DIRTY_PAGES with GET_BITMAP: the header and the range that follows it. */
struct GetBitmapArg {
	struct {
		u32 argsz = 0, flags = 0;
	} d;	/* struct vfio_iommu_type1_dirty_bitmap without data[] */
	struct vfio_iommu_type1_dirty_bitmap_get g = {};
	u64 raw[(sizeof(d) + sizeof(g)) / 8 + 1] = {};
	static_assert(sizeof(d) == sizeof(struct vfio_iommu_type1_dirty_bitmap));
	/* The contiguous uAPI layout, rebuilt from d and g. */
	void *buf()
	{
		std::memcpy(raw, &d, sizeof(d));
		std::memcpy(reinterpret_cast<char *>(raw) + sizeof(d), &g,
			    sizeof(g));
		return raw;
	}
};

class Type1
{
public:
	explicit Type1(unsigned long type = VFIO_TYPE1v2_IOMMU)
		: iommu_(vfio_iommu_type1_open(type))
	{
	}
	~Type1()
	{
		if (!IS_ERR(iommu_))
			vfio_iommu_type1_release(iommu_);
	}
	Type1(const Type1 &) = delete;
	Type1 &operator=(const Type1 &) = delete;

	struct vfio_iommu *get() const { return iommu_; }

	long ioctl(unsigned int cmd, const void *arg)
	{
		return vfio_iommu_type1_ioctl(iommu_, cmd,
					      reinterpret_cast<unsigned long>(arg));
	}

	long map(u64 vaddr, u64 iova, u64 size, u32 flags = RW,
		 u32 argsz = sizeof(struct vfio_iommu_type1_dma_map))
	{
		struct vfio_iommu_type1_dma_map m = {};
		m.argsz = argsz;
		m.flags = flags;
		m.vaddr = vaddr;
		m.iova = iova;
		m.size = size;
		return ioctl(VFIO_IOMMU_MAP_DMA, &m);
	}

	/* Unmap; *unmapped gets the size written back (or ~0 when not). */
	long unmap(u64 iova, u64 size, u64 *unmapped = nullptr, u32 flags = 0)
	{
		struct vfio_iommu_type1_dma_unmap u = {};
		u.argsz = sizeof(u);
		u.flags = flags;
		u.iova = iova;
		u.size = size;
		long ret = ioctl(VFIO_IOMMU_UNMAP_DMA, &u);
		if (unmapped)
			*unmapped = u.size;
		return ret;
	}

	/* Unmap with GET_DIRTY_BITMAP into bitmap (words). */
	long unmap_dirty(u64 iova, u64 size, std::vector<u64> &bitmap,
			 u64 pgsize = PG, u64 *unmapped = nullptr,
			 u64 bitmap_size = ~0ULL)
	{
		struct vfio_iommu_type1_dma_unmap u = {};
		struct vfio_bitmap b = {};
		u64 arg[(sizeof(u) + sizeof(b)) / 8 + 1] = {};
		u.argsz = sizeof(u) + sizeof(b);
		u.flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
		u.iova = iova;
		u.size = size;
		b.pgsize = pgsize;
		b.size = bitmap_size != ~0ULL ? bitmap_size : bitmap.size() * 8;
		b.data = reinterpret_cast<__u64 *>(bitmap.data());
		std::memcpy(arg, &u, sizeof(u));
		std::memcpy(reinterpret_cast<char *>(arg) + sizeof(u), &b,
			    sizeof(b));
		long ret = ioctl(VFIO_IOMMU_UNMAP_DMA, arg);
		std::memcpy(&u, arg, sizeof(u));
		if (unmapped)
			*unmapped = u.size;
		return ret;
	}

	long dirty(u32 flags)
	{
		struct vfio_iommu_type1_dirty_bitmap d = {};
		d.argsz = sizeof(d);
		d.flags = flags;
		return ioctl(VFIO_IOMMU_DIRTY_PAGES, &d);
	}

	long get_bitmap(u64 iova, u64 size, u64 *data, u64 bitmap_size,
			u64 pgsize = PG)
	{
		GetBitmapArg arg;
		arg.d.argsz = sizeof(arg.d) + sizeof(arg.g);
		arg.d.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
		arg.g.iova = iova;
		arg.g.size = size;
		arg.g.bitmap.pgsize = pgsize;
		arg.g.bitmap.size = bitmap_size;
		arg.g.bitmap.data = reinterpret_cast<__u64 *>(data);
		return ioctl(VFIO_IOMMU_DIRTY_PAGES, arg.buf());
	}

	/* GET_BITMAP of [iova, iova + size) as a set of dirty page IOVAs. */
	long dirty_set(u64 iova, u64 size, std::set<u64> &out)
	{
		u64 npages = size / PG;
		std::vector<u64> bm((npages + 63) / 64 + 1, 0);
		long ret = get_bitmap(iova, size, bm.data(),
				      ((npages + 63) / 64) * 8);
		out.clear();
		for (u64 i = 0; i < npages; i++)
			if (bm[i / 64] & (1ULL << (i % 64)))
				out.insert(iova + i * PG);
		/* Nothing past the bitmap's bytes is touched. */
		EXPECT_EQ(bm.back(), 0u);
		return ret;
	}

	int rw(u64 iova, void *buf, size_t len, bool write)
	{
		return vfio_iommu_type1_dma_rw(iommu_, iova, buf, len, write);
	}

	u32 dma_avail()
	{
		std::vector<u64> buf(64, 0);
		auto *info = reinterpret_cast<struct vfio_iommu_type1_info *>(
			buf.data());
		info->argsz = buf.size() * 8;
		if (ioctl(VFIO_IOMMU_GET_INFO, info))
			return ~0u;
		char *base = reinterpret_cast<char *>(buf.data());
		for (u32 off = info->cap_offset; off;) {
			auto *h = reinterpret_cast<struct vfio_info_cap_header *>(
				base + off);
			if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL)
				return reinterpret_cast<
					       struct vfio_iommu_type1_info_dma_avail *>(
					       h)
					->avail;
			off = h->next;
		}
		return ~0u;
	}

private:
	struct vfio_iommu *iommu_;
};

std::set<u64> pages_of(u64 iova, u64 len)
{
	std::set<u64> s;
	for (u64 p = iova & ~(PG - 1); p < iova + len; p += PG)
		s.insert(p);
	return s;
}

/* -------- a minimal emulated-IOMMU device that pins -------- */

struct pin_device {
	struct vfio_device vdev;
	struct vfio_iommu *iommu = nullptr;
	bool unpin_on_unmap = true;
	std::mutex lock;
	std::vector<std::pair<u64, u64>> unmaps;	/* dma_unmap calls */
	std::set<u64> pinned;				/* pages it holds */
};

pin_device *to_pin(struct vfio_device *v)
{
	return container_of(v, struct pin_device, vdev);
}

void pin_dma_unmap(struct vfio_device *v, u64 iova, u64 length)
{
	pin_device *d = to_pin(v);
	std::vector<u64> drop;
	{
		std::lock_guard<std::mutex> l(d->lock);
		d->unmaps.emplace_back(iova, length);
		if (!d->unpin_on_unmap)
			return;
		for (u64 p : d->pinned)
			if (p >= iova && p - iova < length)
				drop.push_back(p);
		for (u64 p : drop)
			d->pinned.erase(p);
	}
	for (u64 p : drop)
		vfio_iommu_type1_unpin_pages(d->iommu, v, p, 1);
}

const struct vfio_device_ops pin_ops = {
	.name = "type1-pin-test",
	.dma_unmap = pin_dma_unmap,
};
const struct vfio_device_ops nounmap_ops = {
	.name = "type1-nounmap-test",
};

struct PinDev {
	LcParent parent;
	pin_device *d;
	explicit PinDev(const struct vfio_device_ops *ops = &pin_ops)
	{
		d = vfio_alloc_device(pin_device, vdev, &parent.dev, ops);
	}
	~PinDev()
	{
		if (!IS_ERR(d))
			vfio_put_device(&d->vdev);
	}
	struct vfio_device *vdev() { return &d->vdev; }

	int pin(u64 iova, int npage, int prot, void **pages)
	{
		int ret = vfio_iommu_type1_pin_pages(d->iommu, vdev(), iova,
						     npage, prot, pages);
		if (ret > 0) {
			std::lock_guard<std::mutex> l(d->lock);
			for (int i = 0; i < npage; i++)
				d->pinned.insert(iova + i * PG);
		}
		return ret;
	}
};

// Contract: with a model, VFIO_CHECK_EXTENSION answers 1 for TYPE1,
// TYPE1v2, TYPE1_NESTING (as the kernel's type1, whatever the IOMMU),
// UNMAP_ALL and DMA_CC_IOMMU, 0 for everything else (UPDATE_VADDR is not
// offered).
TEST(IommuType1, CheckExtension)
{
	EXPECT_EQ(vfio_iommu_type1_check_extension(VFIO_TYPE1_IOMMU), 1);
	EXPECT_EQ(vfio_iommu_type1_check_extension(VFIO_TYPE1v2_IOMMU), 1);
	EXPECT_EQ(vfio_iommu_type1_check_extension(VFIO_TYPE1_NESTING_IOMMU), 1);
	EXPECT_EQ(vfio_iommu_type1_check_extension(VFIO_UNMAP_ALL), 1);
	EXPECT_EQ(vfio_iommu_type1_check_extension(VFIO_DMA_CC_IOMMU), 1);
	for (unsigned long e : {0ul, 2ul, 5ul, 7ul, 8ul, 10ul, 11ul, 1000ul})
		EXPECT_EQ(vfio_iommu_type1_check_extension(e), 0) << e;
	Type1 t;
	EXPECT_EQ(t.ioctl(VFIO_CHECK_EXTENSION,
			  reinterpret_cast<void *>(VFIO_TYPE1v2_IOMMU)),
		  1);
	EXPECT_EQ(t.ioctl(VFIO_CHECK_EXTENSION,
			  reinterpret_cast<void *>(VFIO_UPDATE_VADDR)),
		  0);
}

// Contract: open accepts TYPE1 and TYPE1v2 only (ERR_PTR(-EINVAL) else), and
// ioctls the model does not know are -ENOTTY.
TEST(IommuType1, OpenAndUnknownIoctl)
{
	for (unsigned long t : {0ul, 2ul, 4ul, 6ul, 7ul, 8ul, 9ul}) {
		struct vfio_iommu *i = vfio_iommu_type1_open(t);
		ASSERT_TRUE(IS_ERR(i)) << t;
		EXPECT_EQ(PTR_ERR(i), -EINVAL);
	}
	Type1 v1(VFIO_TYPE1_IOMMU), v2;
	ASSERT_FALSE(IS_ERR(v1.get()));
	ASSERT_FALSE(IS_ERR(v2.get()));
	int dummy = 0;
	EXPECT_EQ(v2.ioctl(VFIO_IOMMU_ENABLE, &dummy), -ENOTTY);
	EXPECT_EQ(v2.ioctl(VFIO_GET_API_VERSION, &dummy), -ENOTTY);
	EXPECT_EQ(v2.ioctl(VFIO_DEVICE_GET_INFO, &dummy), -ENOTTY);
}

// Contract: GET_INFO checks argsz (EINVAL below 16), reports PGSIZES|CAPS,
// 4K|2M|1G, and a chain MIGRATION -> DMA_AVAIL -> IOVA_RANGE [0, 2^48-1];
// too small an argsz gets the needed argsz and cap_offset 0; a 16-byte
// caller gets no cap_offset written; a bad pointer is EFAULT.
TEST(IommuType1, GetInfoCapabilityChain)
{
	Type1 t;
	struct vfio_iommu_type1_info info = {};

	info.argsz = 15;
	EXPECT_EQ(t.ioctl(VFIO_IOMMU_GET_INFO, &info), -EINVAL);
	EXPECT_EQ(t.ioctl(VFIO_IOMMU_GET_INFO, bad_address()), -EFAULT);

	/* The 16-byte layout of old users: cap_offset is not written. */
	info = {};
	info.argsz = 16;
	info.cap_offset = 0xdead;
	ASSERT_EQ(t.ioctl(VFIO_IOMMU_GET_INFO, &info), 0);
	EXPECT_EQ(info.flags, VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
	EXPECT_EQ(info.iova_pgsizes, (1ULL << 12) | (1ULL << 21) | (1ULL << 30));
	EXPECT_EQ(info.cap_offset, 0xdeadu);
	EXPECT_GT(info.argsz, sizeof(info));

	/* Room for the struct only: told the size needed, no chain. */
	info = {};
	info.argsz = sizeof(info);
	info.cap_offset = 0xdead;
	ASSERT_EQ(t.ioctl(VFIO_IOMMU_GET_INFO, &info), 0);
	EXPECT_EQ(info.cap_offset, 0u);
	u32 needed = info.argsz;
	/* migration 32 + dma_avail 16 (12 aligned) + iova range 32 */
	EXPECT_EQ(needed, sizeof(info) + 32 + 16 + 32);

	/* One byte short is still too small. */
	std::vector<u64> buf(needed / 8 + 1, 0);
	auto *full = reinterpret_cast<struct vfio_iommu_type1_info *>(buf.data());
	full->argsz = needed - 1;
	ASSERT_EQ(t.ioctl(VFIO_IOMMU_GET_INFO, full), 0);
	EXPECT_EQ(full->cap_offset, 0u);
	EXPECT_EQ(full->argsz, needed);

	Guest g(1);
	ASSERT_EQ(t.map(g.va(), 0x100000, PG), 0);
	std::fill(buf.begin(), buf.end(), 0);
	full->argsz = needed;
	ASSERT_EQ(t.ioctl(VFIO_IOMMU_GET_INFO, full), 0);
	EXPECT_EQ(full->argsz, needed);
	EXPECT_EQ(full->cap_offset, sizeof(info));

	char *base = reinterpret_cast<char *>(buf.data());
	std::vector<u16> ids;
	for (u32 off = full->cap_offset; off;) {
		ASSERT_LE(off + sizeof(struct vfio_info_cap_header), needed);
		auto *h = reinterpret_cast<struct vfio_info_cap_header *>(base +
									   off);
		EXPECT_EQ(h->version, 1);
		ids.push_back(h->id);
		if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) {
			auto *m = reinterpret_cast<
				struct vfio_iommu_type1_info_cap_migration *>(h);
			EXPECT_EQ(m->flags, 0u);
			EXPECT_EQ(m->pgsize_bitmap, PG);
			EXPECT_EQ(m->max_dirty_bitmap_size, 256ULL << 20);
		} else if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
			auto *a = reinterpret_cast<
				struct vfio_iommu_type1_info_dma_avail *>(h);
			EXPECT_EQ(a->avail, 65534u);
		} else if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
			auto *r = reinterpret_cast<
				struct vfio_iommu_type1_info_cap_iova_range *>(h);
			ASSERT_EQ(r->nr_iovas, 1u);
			EXPECT_EQ(r->iova_ranges[0].start, 0u);
			EXPECT_EQ(r->iova_ranges[0].end, (1ULL << 48) - 1);
		}
		ASSERT_TRUE(h->next == 0 || h->next > off);
		off = h->next;
	}
	EXPECT_EQ(ids, (std::vector<u16>{VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
					 VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
					 VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE}));
	/* Nothing past argsz was written. */
	EXPECT_EQ(buf.back(), 0u);
}

// Contract: MAP_DMA rejects argsz < minsz, unknown flags (VADDR included),
// no READ/WRITE, size 0 and unaligned iova/size/vaddr, and wrapping
// iova or vaddr ranges with EINVAL; a bad argument pointer is EFAULT.
TEST(IommuType1, MapValidationEinval)
{
	Type1 t;
	Guest g(4);
	const u64 va = g.va(), io = 0x200000;
	const u32 minsz = offsetofend(struct vfio_iommu_type1_dma_map, size);

	EXPECT_EQ(t.map(va, io, PG, RW, minsz - 1), -EINVAL);
	EXPECT_EQ(t.map(va, io, PG, RW, minsz), 0);
	EXPECT_EQ(t.unmap(io, PG), 0);
	EXPECT_EQ(t.map(va, io, PG, RW | VFIO_DMA_MAP_FLAG_VADDR), -EINVAL);
	EXPECT_EQ(t.map(va, io, PG, RW | (1u << 3)), -EINVAL);
	EXPECT_EQ(t.map(va, io, PG, 0), -EINVAL);
	EXPECT_EQ(t.map(va, io, 0), -EINVAL);
	EXPECT_EQ(t.map(va, io + 1, PG), -EINVAL);
	EXPECT_EQ(t.map(va, io + 0x800, PG), -EINVAL);
	EXPECT_EQ(t.map(va, io, PG + 1), -EINVAL);
	EXPECT_EQ(t.map(va, io, PG / 2), -EINVAL);
	EXPECT_EQ(t.map(va + 8, io, PG), -EINVAL);
	EXPECT_EQ(t.map(va, ~0ULL - PG + 1, 2 * PG), -EINVAL);
	EXPECT_EQ(t.map(~0ULL - PG + 1, io, 2 * PG), -EINVAL);
	EXPECT_EQ(t.ioctl(VFIO_IOMMU_MAP_DMA, bad_address()), -EFAULT);
	/* Nothing was left mapped by the failures. */
	EXPECT_EQ(t.dma_avail(), 65535u);
}

// Contract: MAP_DMA of a range overlapping a mapping in any way is EEXIST,
// one past the valid IOVA range [0, 2^48-1] is EINVAL, and adjacent
// mappings are fine.
TEST(IommuType1, MapOverlapAndIovaRange)
{
	Type1 t;
	Guest g(8);
	const u64 io = 0x400000;

	ASSERT_EQ(t.map(g.va(), io, 2 * PG), 0);
	EXPECT_EQ(t.map(g.va(), io, 2 * PG), -EEXIST);
	EXPECT_EQ(t.map(g.va(), io - PG, 2 * PG), -EEXIST);
	EXPECT_EQ(t.map(g.va(), io + PG, 2 * PG), -EEXIST);
	EXPECT_EQ(t.map(g.va(), io + PG, PG), -EEXIST);
	EXPECT_EQ(t.map(g.va(), io - PG, 4 * PG), -EEXIST);
	EXPECT_EQ(t.map(g.va(), io - PG, PG), 0);
	EXPECT_EQ(t.map(g.va(), io + 2 * PG, PG), 0);

	const u64 top = 1ULL << 48;
	EXPECT_EQ(t.map(g.va(), top - PG, PG), 0);
	EXPECT_EQ(t.map(g.va(), top - 2 * PG, 2 * PG), -EEXIST);
	EXPECT_EQ(t.map(g.va(), top, PG), -EINVAL);
	EXPECT_EQ(t.map(g.va(), top - 3 * PG, 4 * PG), -EEXIST);
	EXPECT_EQ(t.unmap(top - PG, PG), 0);
	EXPECT_EQ(t.map(g.va(), top - PG, 2 * PG), -EINVAL);
	EXPECT_EQ(t.map(g.va(), 0, PG), 0);
}

// Contract: MAP_DMA of process memory that is not mapped, PROT_NONE, or
// read-only for a WRITE mapping is EFAULT; read-only memory maps READ.
TEST(IommuType1, MapVaddrMustBeMappedEfault)
{
	Type1 t;
	Guest g(4);
	Guest ro(2, PROT_READ);
	Guest none(2, PROT_NONE);
	ASSERT_TRUE(g.mem && ro.mem && none.mem);

	EXPECT_EQ(t.map(reinterpret_cast<u64>(bad_address()), 0, PG,
			VFIO_DMA_MAP_FLAG_READ),
		  -EFAULT);
	EXPECT_EQ(t.map(none.va(), 0, PG, VFIO_DMA_MAP_FLAG_READ), -EFAULT);
	EXPECT_EQ(t.map(ro.va(), 0, PG, RW), -EFAULT);
	EXPECT_EQ(t.map(ro.va(), 0, PG, VFIO_DMA_MAP_FLAG_WRITE), -EFAULT);
	EXPECT_EQ(t.map(ro.va(), 0, 2 * PG, VFIO_DMA_MAP_FLAG_READ), 0);

	/* Holes: not mapped at all, at the start, middle and end. */
	ASSERT_EQ(munmap(g.mem + PG, PG), 0);
	ASSERT_EQ(munmap(g.mem + 3 * PG, PG), 0);
	EXPECT_EQ(t.map(g.va(1), 0x10000, PG), -EFAULT);
	EXPECT_EQ(t.map(g.va(1), 0x10000, 2 * PG), -EFAULT);
	EXPECT_EQ(t.map(g.va(0), 0x10000, 3 * PG), -EFAULT);
	EXPECT_EQ(t.map(g.va(2), 0x10000, 2 * PG), -EFAULT);
	EXPECT_EQ(t.map(g.va(0), 0x10000, PG), 0);
	EXPECT_EQ(t.map(g.va(2), 0x20000, PG), 0);
	EXPECT_EQ(t.dma_avail(), 65535u - 3);
}

// Contract: at most 65535 mappings (DMA_AVAIL counts down to 0), then
// MAP_DMA is ENOSPC; an overlap is still EEXIST first; unmapping frees a slot.
TEST(IommuType1, MapEntryLimitEnospc)
{
	Type1 t;
	Guest g(1);
	auto t0 = std::chrono::steady_clock::now();
	for (u64 i = 0; i < 65535; i++)
		ASSERT_EQ(t.map(g.va(), i * PG, PG, VFIO_DMA_MAP_FLAG_READ), 0)
			<< i;
	auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
			  std::chrono::steady_clock::now() - t0)
			  .count();
	RecordProperty("map_65535_ms", static_cast<int>(ms));
	EXPECT_EQ(t.dma_avail(), 0u);
	EXPECT_EQ(t.map(g.va(), 65535 * PG, PG), -ENOSPC);
	EXPECT_EQ(t.map(g.va(), 0, PG), -EEXIST);
	u64 n = 0;
	EXPECT_EQ(t.unmap(7 * PG, PG, &n), 0);
	EXPECT_EQ(n, PG);
	EXPECT_EQ(t.dma_avail(), 1u);
	EXPECT_EQ(t.map(g.va(), 65535 * PG, PG), 0);
	EXPECT_EQ(t.unmap(0, 0, &n, VFIO_DMA_UNMAP_FLAG_ALL), 0);
	EXPECT_EQ(n, 65535 * PG);
	EXPECT_EQ(t.dma_avail(), 65535u);
}

// Contract: UNMAP_DMA rejects argsz < minsz, unknown flags (VADDR
// included), GET_DIRTY_BITMAP with ALL, unaligned iova/size, size 0, a
// wrapping range, ALL with iova or size set, and (v2) a range that would
// split a mapping at either end, with EINVAL; unmapping nothing is success
// with size 0.
TEST(IommuType1, UnmapValidation)
{
	Type1 t;
	Guest g(8);
	const u64 io = 0x100000;
	ASSERT_EQ(t.map(g.va(), io, 4 * PG), 0);

	struct vfio_iommu_type1_dma_unmap u = {};
	u.argsz = offsetofend(struct vfio_iommu_type1_dma_unmap, size) - 1;
	u.iova = io;
	u.size = 4 * PG;
	EXPECT_EQ(t.ioctl(VFIO_IOMMU_UNMAP_DMA, &u), -EINVAL);
	EXPECT_EQ(t.ioctl(VFIO_IOMMU_UNMAP_DMA, bad_address()), -EFAULT);

	u64 n = 123;
	EXPECT_EQ(t.unmap(io, 4 * PG, &n, VFIO_DMA_UNMAP_FLAG_VADDR), -EINVAL);
	EXPECT_EQ(t.unmap(io, 4 * PG, &n, 1u << 3), -EINVAL);
	EXPECT_EQ(t.unmap(0, 0, &n,
			  VFIO_DMA_UNMAP_FLAG_ALL |
				  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP),
		  -EINVAL);
	EXPECT_EQ(t.unmap(io + 1, 4 * PG, &n), -EINVAL);
	EXPECT_EQ(t.unmap(io, 4 * PG + 8, &n), -EINVAL);
	EXPECT_EQ(t.unmap(io, 0, &n), -EINVAL);
	EXPECT_EQ(t.unmap(~0ULL - PG + 1, 2 * PG, &n), -EINVAL);
	EXPECT_EQ(t.unmap(PG, 0, &n, VFIO_DMA_UNMAP_FLAG_ALL), -EINVAL);
	EXPECT_EQ(t.unmap(0, PG, &n, VFIO_DMA_UNMAP_FLAG_ALL), -EINVAL);
	/* v2: no splitting, at the start or at the end. */
	EXPECT_EQ(t.unmap(io + PG, 3 * PG, &n), -EINVAL);
	EXPECT_EQ(t.unmap(io, 3 * PG, &n), -EINVAL);
	EXPECT_EQ(t.unmap(io - PG, 2 * PG, &n), -EINVAL);
	EXPECT_EQ(t.unmap(io + PG, PG, &n), -EINVAL);
	EXPECT_EQ(t.dma_avail(), 65534u);

	/* Nothing there: success, nothing unmapped. */
	EXPECT_EQ(t.unmap(io + 4 * PG, 16 * PG, &n), 0);
	EXPECT_EQ(n, 0u);
	EXPECT_EQ(t.unmap(0, io, &n), 0);
	EXPECT_EQ(n, 0u);
	/* A range covering the mapping and holes on both sides. */
	EXPECT_EQ(t.unmap(0, io + 8 * PG, &n), 0);
	EXPECT_EQ(n, 4 * PG);
	EXPECT_EQ(t.dma_avail(), 65535u);
}

// Contract: UNMAP_DMA writes back the bytes it removed: whole mappings
// within the range (holes allowed), UNMAP_ALL everything; DMA_AVAIL follows.
TEST(IommuType1, UnmapBookkeeping)
{
	Type1 t;
	Guest g(16);
	ASSERT_EQ(t.map(g.va(0), 0x10000, 2 * PG), 0);
	ASSERT_EQ(t.map(g.va(2), 0x10000 + 2 * PG, 3 * PG), 0);	/* adjacent */
	ASSERT_EQ(t.map(g.va(5), 0x40000, PG), 0);
	ASSERT_EQ(t.map(g.va(6), 0x80000, 4 * PG), 0);
	EXPECT_EQ(t.dma_avail(), 65531u);

	u64 n = 0;
	EXPECT_EQ(t.unmap(0x10000, 5 * PG, &n), 0);
	EXPECT_EQ(n, 5 * PG);
	EXPECT_EQ(t.dma_avail(), 65533u);
	/* The IOVA is free again. */
	EXPECT_EQ(t.map(g.va(0), 0x10000, PG), 0);
	EXPECT_EQ(t.unmap(0, 0, &n, VFIO_DMA_UNMAP_FLAG_ALL), 0);
	EXPECT_EQ(n, PG + PG + 4 * PG);
	EXPECT_EQ(t.dma_avail(), 65535u);
	EXPECT_EQ(t.unmap(0, 0, &n, VFIO_DMA_UNMAP_FLAG_ALL), 0);
	EXPECT_EQ(n, 0u);
	char c = 0;
	EXPECT_EQ(t.rw(0x80000, &c, 1, false), -EFAULT);
}

// Contract: a v1 model unmaps by the v1 rules (from inside a mapping:
// success, nothing unmapped; covering a mapping's first page: all of it),
// and refuses DIRTY_PAGES and pinning with EACCES.
TEST(IommuType1, Type1v1Semantics)
{
	Type1 t(VFIO_TYPE1_IOMMU);
	Guest g(8);
	ASSERT_EQ(t.map(g.va(), 0x10000, 4 * PG), 0);
	u64 n = 1;
	EXPECT_EQ(t.unmap(0x10000 + PG, PG, &n), 0);
	EXPECT_EQ(n, 0u);
	EXPECT_EQ(t.unmap(0x10000, PG, &n), 0);
	EXPECT_EQ(n, 4 * PG);
	EXPECT_EQ(t.dma_avail(), 65535u);
	EXPECT_EQ(t.dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START), -EACCES);

	PinDev dev;
	ASSERT_FALSE(IS_ERR(dev.d));
	dev.d->iommu = t.get();
	ASSERT_EQ(vfio_iommu_type1_attach_device(t.get(), dev.vdev()), 0);
	ASSERT_EQ(t.map(g.va(), 0x10000, 4 * PG), 0);
	void *pages[1];
	EXPECT_EQ(dev.pin(0x10000, 1, IOMMU_READ, pages), -EACCES);
	vfio_iommu_type1_detach_device(t.get(), dev.vdev());
}

// Contract: dma_rw copies through the mappings to the mapped process
// memory, across two adjacent mappings backed by unrelated memory.
TEST(IommuType1, DmaRwThroughMappings)
{
	Type1 t;
	Guest a(4), b(4);
	const u64 io = 0x300000;
	ASSERT_EQ(t.map(a.va(1), io, 2 * PG), 0);
	ASSERT_EQ(t.map(b.va(2), io + 2 * PG, 2 * PG), 0);

	std::vector<char> out(2 * PG), in(2 * PG);
	for (size_t i = 0; i < out.size(); i++)
		out[i] = static_cast<char>(i * 7 + 1);
	/* From the middle of the first mapping into the second. */
	const u64 start = io + PG + 100;
	ASSERT_EQ(t.rw(start, out.data(), out.size(), true), 0);
	EXPECT_EQ(std::memcmp(a.mem + 2 * PG + 100, out.data(), PG - 100), 0);
	EXPECT_EQ(std::memcmp(b.mem + 2 * PG, out.data() + PG - 100, PG + 100),
		  0);
	/* One byte more runs past the second mapping: a fault. */
	std::vector<char> more(2 * PG + 2 * PG - 100 - PG + 1);
	EXPECT_EQ(t.rw(start, more.data(), 3 * PG - 100 + 1, false), -EFAULT);
	ASSERT_EQ(t.rw(start, in.data(), in.size(), false), 0);
	EXPECT_EQ(in, out);

	/* Writes by the process are seen by the device. */
	a.mem[PG] = 'x';
	char c = 0;
	ASSERT_EQ(t.rw(io, &c, 1, false), 0);
	EXPECT_EQ(c, 'x');
}

// Contract: dma_rw is -EFAULT and copies nothing when any byte is
// unmapped (a gap between mappings, past the end) or lacks the permission
// (write to a READ mapping, read from a WRITE mapping); len 0 is EINVAL.
TEST(IommuType1, DmaRwFaultsCopyNothing)
{
	Type1 t;
	Guest g(8);
	const u64 io = 0x500000;
	ASSERT_EQ(t.map(g.va(0), io, 2 * PG), 0);
	/* a one-page gap at io + 2 pages */
	ASSERT_EQ(t.map(g.va(3), io + 3 * PG, PG, VFIO_DMA_MAP_FLAG_READ), 0);
	ASSERT_EQ(t.map(g.va(4), io + 4 * PG, PG, VFIO_DMA_MAP_FLAG_WRITE), 0);
	ASSERT_EQ(t.map(g.va(5), io + 5 * PG, PG), 0);
	ASSERT_EQ(t.dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);

	std::memset(g.mem, 0x55, g.len);
	std::vector<char> buf(4 * PG, 0x11);

	/* Spanning the gap: nothing written, nothing read. */
	EXPECT_EQ(t.rw(io + PG, buf.data(), 2 * PG, true), -EFAULT);
	EXPECT_EQ(t.rw(io + PG, buf.data(), PG + 1, true), -EFAULT);
	EXPECT_EQ(t.rw(io + 2 * PG - 1, buf.data(), 2, false), -EFAULT);
	for (size_t i = 0; i < g.len; i++)
		ASSERT_EQ(g.mem[i], 0x55) << i;
	for (char c : buf)
		ASSERT_EQ(c, 0x11);
	/* Permissions, also when the first part would be allowed. */
	EXPECT_EQ(t.rw(io + 3 * PG, buf.data(), 16, true), -EFAULT);
	EXPECT_EQ(t.rw(io + 4 * PG, buf.data(), 16, false), -EFAULT);
	EXPECT_EQ(t.rw(io + 5 * PG - 8, buf.data(), 16, false), -EFAULT);
	EXPECT_EQ(t.rw(io + 4 * PG - 8, buf.data(), 16, true), -EFAULT);
	EXPECT_EQ(t.rw(io + 6 * PG - 8, buf.data(), 16, true), -EFAULT);
	for (size_t i = 0; i < g.len; i++)
		ASSERT_EQ(g.mem[i], 0x55) << i;
	for (char c : buf)
		ASSERT_EQ(c, 0x11);
	EXPECT_EQ(t.rw(io + 3 * PG, buf.data(), 16, false), 0);
	EXPECT_EQ(t.rw(io + 4 * PG, buf.data(), 2 * PG, true), 0);
	EXPECT_EQ(t.rw(io, buf.data(), 0, true), -EINVAL);
	EXPECT_EQ(t.rw(~0ULL - 3, buf.data(), 8, true), -EFAULT);

	/* Failed writes dirtied nothing; the good one both its pages. */
	std::set<u64> d;
	ASSERT_EQ(t.dirty_set(io, 6 * PG, d), 0);
	EXPECT_EQ(d, (std::set<u64>{io + 4 * PG, io + 5 * PG}));
}

// Contract: DIRTY_PAGES needs argsz >= minsz, known flags and exactly one
// of START/STOP/GET_BITMAP (EINVAL); START and STOP are idempotent (STOP
// without START succeeds); GET_BITMAP is EINVAL without tracking, with
// argsz short of the range struct, pgsize != 4K, unaligned or empty
// ranges, wrapping, a range cutting a mapping at either end, a bitmap too
// small or over max_dirty_bitmap_size; a bad bitmap pointer is EFAULT.
TEST(IommuType1, DirtyPagesValidation)
{
	Type1 t;
	Guest g(8);
	const u64 io = 0x1000000;
	ASSERT_EQ(t.map(g.va(), io, 4 * PG), 0);
	u64 bm[4] = {};

	struct vfio_iommu_type1_dirty_bitmap d = {};
	d.argsz = 7;
	d.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
	EXPECT_EQ(t.ioctl(VFIO_IOMMU_DIRTY_PAGES, &d), -EINVAL);
	EXPECT_EQ(t.ioctl(VFIO_IOMMU_DIRTY_PAGES, bad_address()), -EFAULT);
	EXPECT_EQ(t.dirty(0), -EINVAL);
	EXPECT_EQ(t.dirty(1u << 3), -EINVAL);
	EXPECT_EQ(t.dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START |
			  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP),
		  -EINVAL);
	EXPECT_EQ(t.dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START |
			  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP),
		  -EINVAL);

	EXPECT_EQ(t.dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP), 0);
	EXPECT_EQ(t.get_bitmap(io, 4 * PG, bm, 8), -EINVAL);	/* not tracking */
	EXPECT_EQ(t.dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);
	EXPECT_EQ(t.dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);
	EXPECT_EQ(t.get_bitmap(io, 4 * PG, bm, 8), 0);

	/* argsz must include the range. */
	GetBitmapArg arg;
	arg.d.argsz = sizeof(arg.d) + sizeof(arg.g) - 1;
	arg.d.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
	arg.g.iova = io;
	arg.g.size = 4 * PG;
	arg.g.bitmap.pgsize = PG;
	arg.g.bitmap.size = 8;
	arg.g.bitmap.data = reinterpret_cast<__u64 *>(bm);
	EXPECT_EQ(t.ioctl(VFIO_IOMMU_DIRTY_PAGES, arg.buf()), -EINVAL);
	arg.d.argsz = sizeof(arg.d) + sizeof(arg.g);
	EXPECT_EQ(t.ioctl(VFIO_IOMMU_DIRTY_PAGES, arg.buf()), 0);

	EXPECT_EQ(t.get_bitmap(io, 4 * PG, bm, 8, 2 * PG), -EINVAL);
	EXPECT_EQ(t.get_bitmap(io, 4 * PG, bm, 8, 0), -EINVAL);
	EXPECT_EQ(t.get_bitmap(io, 4 * PG, bm, 8, 3 * PG), -EINVAL);
	EXPECT_EQ(t.get_bitmap(io, 4 * PG, bm, 8, 512), -EINVAL);
	EXPECT_EQ(t.get_bitmap(io + 8, 4 * PG, bm, 8), -EINVAL);
	EXPECT_EQ(t.get_bitmap(io, 4 * PG + 8, bm, 8), -EINVAL);
	EXPECT_EQ(t.get_bitmap(io, 0, bm, 8), -EINVAL);
	EXPECT_EQ(t.get_bitmap(~0ULL - PG + 1, 2 * PG, bm, 8), -EINVAL);
	EXPECT_EQ(t.get_bitmap(io + PG, 3 * PG, bm, 8), -EINVAL);
	EXPECT_EQ(t.get_bitmap(io, 3 * PG, bm, 8), -EINVAL);
	EXPECT_EQ(t.get_bitmap(io - PG, 2 * PG, bm, 8), -EINVAL);
	EXPECT_EQ(t.get_bitmap(io, 4 * PG, bm, 0), -EINVAL);
	EXPECT_EQ(t.get_bitmap(io, 4 * PG, bm, 7), -EINVAL);
	EXPECT_EQ(t.get_bitmap(io, 65 * 64 * PG, bm, 8), -EINVAL);
	EXPECT_EQ(t.get_bitmap(0, 1ULL << 45, bm, (256ULL << 20) + 8),
		  -EINVAL);
	/* Holes around the mapping are allowed. */
	EXPECT_EQ(t.get_bitmap(io - 8 * PG, 16 * PG, bm, 8), 0);
	EXPECT_EQ(t.get_bitmap(0, 64 * PG, bm, 8), 0);	/* no mapping at all */
	EXPECT_EQ(t.get_bitmap(io, 4 * PG,
			       static_cast<u64 *>(bad_address()), 8),
		  -EFAULT);

	EXPECT_EQ(t.dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP), 0);
	EXPECT_EQ(t.dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP), 0);
	EXPECT_EQ(t.get_bitmap(io, 4 * PG, bm, 8), -EINVAL);
}

// Contract: with tracking on, GET_BITMAP reports exactly the pages the
// device wrote since START or the last report (reads and writes before
// START are not reported), OR'ed into the caller's bitmap, and clears them;
// STOP forgets; mappings made while tracking are tracked.
TEST(IommuType1, DirtyReportsWrittenPages)
{
	Type1 t;
	Guest g(130);
	const u64 io = 0x2000000;
	ASSERT_EQ(t.map(g.va(), io, 130 * PG), 0);
	char buf[16] = {};

	ASSERT_EQ(t.rw(io, buf, 1, true), 0);	/* before START */
	ASSERT_EQ(t.dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);
	std::set<u64> d;
	ASSERT_EQ(t.dirty_set(io, 130 * PG, d), 0);
	EXPECT_TRUE(d.empty());

	ASSERT_EQ(t.rw(io + 3 * PG + 5, buf, 1, true), 0);
	ASSERT_EQ(t.rw(io + 64 * PG - 8, buf, 16, true), 0);	/* two pages */
	ASSERT_EQ(t.rw(io + 129 * PG, buf, 16, true), 0);
	ASSERT_EQ(t.rw(io + 100 * PG, buf, 16, false), 0);
	ASSERT_EQ(t.dirty_set(io, 130 * PG, d), 0);
	EXPECT_EQ(d, (std::set<u64>{io + 3 * PG, io + 63 * PG, io + 64 * PG,
				    io + 129 * PG}));
	ASSERT_EQ(t.dirty_set(io, 130 * PG, d), 0);
	EXPECT_TRUE(d.empty());

	/* Bits already in the caller's bitmap are kept. */
	ASSERT_EQ(t.rw(io + PG, buf, 1, true), 0);
	u64 bm[3] = {1ULL << 7, 1ULL << 9, 0};
	ASSERT_EQ(t.get_bitmap(io, 130 * PG, bm, 24), 0);
	EXPECT_EQ(bm[0], (1ULL << 7) | (1ULL << 1));
	EXPECT_EQ(bm[1], 1ULL << 9);
	EXPECT_EQ(bm[2], 0u);

	/* STOP drops the bits; a new START begins clean. */
	ASSERT_EQ(t.rw(io + 2 * PG, buf, 1, true), 0);
	ASSERT_EQ(t.dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP), 0);
	ASSERT_EQ(t.rw(io + 4 * PG, buf, 1, true), 0);
	ASSERT_EQ(t.dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);
	ASSERT_EQ(t.dirty_set(io, 130 * PG, d), 0);
	EXPECT_TRUE(d.empty());

	/* A mapping made while tracking is tracked. */
	Guest h(2);
	ASSERT_EQ(t.map(h.va(), io + 200 * PG, 2 * PG), 0);
	ASSERT_EQ(t.rw(io + 201 * PG, buf, 1, true), 0);
	ASSERT_EQ(t.dirty_set(io, 202 * PG, d), 0);
	EXPECT_EQ(d, (std::set<u64>{io + 201 * PG}));
}

// Contract: UNMAP with GET_DIRTY_BITMAP needs tracking, pgsize 4K, argsz
// for the vfio_bitmap and a big enough bitmap (EINVAL otherwise), reports
// the unmapped mappings' dirty pages relative to iova, then unmaps.
TEST(IommuType1, UnmapGetDirtyBitmap)
{
	Type1 t;
	Guest g(8);
	const u64 io = 0x3000000;
	ASSERT_EQ(t.map(g.va(0), io, 2 * PG), 0);
	ASSERT_EQ(t.map(g.va(2), io + 4 * PG, 2 * PG), 0);
	std::vector<u64> bm(1, 0);
	u64 n = 0;

	EXPECT_EQ(t.unmap_dirty(io, 6 * PG, bm), -EINVAL);	/* not tracking */
	ASSERT_EQ(t.dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);
	EXPECT_EQ(t.unmap_dirty(io, 6 * PG, bm, 2 * PG), -EINVAL);
	EXPECT_EQ(t.unmap_dirty(io, 6 * PG, bm, 0), -EINVAL);
	EXPECT_EQ(t.unmap_dirty(io, 6 * PG, bm, PG, &n, 0), -EINVAL);
	EXPECT_EQ(t.unmap_dirty(io, 65 * 64 * PG, bm), -EINVAL);
	{
		struct vfio_iommu_type1_dma_unmap u = {};
		u.argsz = sizeof(u) + sizeof(struct vfio_bitmap) - 1;
		u.flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
		u.iova = io;
		u.size = 6 * PG;
		EXPECT_EQ(t.ioctl(VFIO_IOMMU_UNMAP_DMA, &u), -EINVAL);
	}
	EXPECT_EQ(t.dma_avail(), 65533u);

	char c = 1;
	ASSERT_EQ(t.rw(io + PG, &c, 1, true), 0);
	ASSERT_EQ(t.rw(io + 5 * PG, &c, 1, true), 0);
	ASSERT_EQ(t.unmap_dirty(io, 6 * PG, bm, PG, &n), 0);
	EXPECT_EQ(n, 4 * PG);
	EXPECT_EQ(bm[0], (1ULL << 1) | (1ULL << 5));
	EXPECT_EQ(t.dma_avail(), 65535u);
}

// Contract: pin_pages needs v2, an attached device with dma_unmap, mapped
// IOVAs (EINVAL), the mapping's permission (EPERM), 1..512 pages (EINVAL,
// E2BIG), and returns the pages' addresses; unpinning what the device did
// not pin WARNs and is ignored.
TEST(IommuType1, PinPagesValidation)
{
	Type1 t;
	Guest g(4);
	const u64 io = 0x4000000;
	ASSERT_EQ(t.map(g.va(), io, 2 * PG, VFIO_DMA_MAP_FLAG_READ), 0);
	ASSERT_EQ(t.map(g.va(2), io + 2 * PG, 2 * PG), 0);
	PinDev dev, other, nounmap(&nounmap_ops);
	ASSERT_FALSE(IS_ERR(dev.d) || IS_ERR(other.d) || IS_ERR(nounmap.d));
	dev.d->iommu = other.d->iommu = nounmap.d->iommu = t.get();
	void *pages[513] = {};

	EXPECT_EQ(dev.pin(io, 1, IOMMU_READ, pages), -EINVAL);	/* detached */
	ASSERT_EQ(vfio_iommu_type1_attach_device(t.get(), dev.vdev()), 0);
	ASSERT_EQ(vfio_iommu_type1_attach_device(t.get(), nounmap.vdev()), 0);
	{
		LogCapture log;
		EXPECT_EQ(vfio_iommu_type1_attach_device(t.get(), dev.vdev()),
			  -EEXIST);
		EXPECT_TRUE(log.contains("WARNING"));
	}
	EXPECT_EQ(nounmap.pin(io, 1, IOMMU_READ, pages), -EINVAL);
	EXPECT_EQ(dev.pin(io, 0, IOMMU_READ, pages), -EINVAL);
	EXPECT_EQ(dev.pin(io, 513, IOMMU_READ, pages), -E2BIG);
	EXPECT_EQ(dev.pin(io + 8, 1, IOMMU_READ, pages), -EINVAL);
	EXPECT_EQ(dev.pin(io + 4 * PG, 1, IOMMU_READ, pages), -EINVAL);
	EXPECT_EQ(dev.pin(io + 3 * PG, 2, IOMMU_READ, pages), -EINVAL);
	EXPECT_EQ(dev.pin(io, 1, IOMMU_WRITE, pages), -EPERM);
	EXPECT_EQ(dev.pin(io + PG, 2, IOMMU_READ | IOMMU_WRITE, pages), -EPERM);
	EXPECT_EQ(vfio_iommu_type1_pin_pages(t.get(), dev.vdev(), io, 1,
					     IOMMU_READ, nullptr),
		  -EINVAL);

	ASSERT_EQ(dev.pin(io + PG, 3, IOMMU_READ, pages), 3);
	EXPECT_EQ(pages[0], g.mem + PG);
	EXPECT_EQ(pages[1], g.mem + 2 * PG);
	EXPECT_EQ(pages[2], g.mem + 3 * PG);

	{
		LogCapture log;
		/* other never pinned anything */
		vfio_iommu_type1_unpin_pages(t.get(), other.vdev(), io + PG, 1);
		EXPECT_TRUE(log.contains("WARNING"));
	}
	{
		LogCapture log;
		vfio_iommu_type1_unpin_pages(t.get(), dev.vdev(), io + PG, 3);
		EXPECT_FALSE(log.contains("WARNING"));
	}
	{
		LogCapture log;	/* once more: no longer pinned */
		vfio_iommu_type1_unpin_pages(t.get(), dev.vdev(), io + PG, 1);
		EXPECT_TRUE(log.contains("WARNING"));
	}
	vfio_iommu_type1_detach_device(t.get(), dev.vdev());
	vfio_iommu_type1_detach_device(t.get(), nounmap.vdev());
}

// Contract: unmapping a mapping with pinned pages first calls every
// attached device's dma_unmap(iova, size of that mapping) without the
// model's lock; a driver that unpins there leaves no WARN, and the whole
// range is unmapped; unpinned mappings cause no callback.
TEST(IommuType1, DmaUnmapCallbackUnpins)
{
	Type1 t;
	Guest g(8);
	const u64 io = 0x5000000;
	ASSERT_EQ(t.map(g.va(0), io, 2 * PG), 0);
	ASSERT_EQ(t.map(g.va(2), io + 2 * PG, 2 * PG), 0);
	ASSERT_EQ(t.map(g.va(4), io + 8 * PG, 2 * PG), 0);
	PinDev a, b;
	ASSERT_FALSE(IS_ERR(a.d) || IS_ERR(b.d));
	a.d->iommu = b.d->iommu = t.get();
	ASSERT_EQ(vfio_iommu_type1_attach_device(t.get(), a.vdev()), 0);
	ASSERT_EQ(vfio_iommu_type1_attach_device(t.get(), b.vdev()), 0);

	void *pages[2];
	ASSERT_EQ(a.pin(io + PG, 2, IOMMU_READ | IOMMU_WRITE, pages), 2);
	ASSERT_EQ(b.pin(io + 3 * PG, 1, IOMMU_READ, pages), 1);
	ASSERT_EQ(a.pin(io + 3 * PG, 1, IOMMU_READ, pages), 1);

	LogCapture log;
	u64 n = 0;
	ASSERT_EQ(t.unmap(io, 10 * PG, &n), 0);
	EXPECT_EQ(n, 6 * PG);
	EXPECT_FALSE(log.contains("WARNING"));
	using R = std::vector<std::pair<u64, u64>>;
	/* Each pinned mapping, to each device; the third had no pins. */
	EXPECT_EQ(a.d->unmaps, (R{{io, 2 * PG}, {io + 2 * PG, 2 * PG}}));
	EXPECT_EQ(b.d->unmaps, (R{{io, 2 * PG}, {io + 2 * PG, 2 * PG}}));
	EXPECT_TRUE(a.d->pinned.empty());
	EXPECT_TRUE(b.d->pinned.empty());
	EXPECT_EQ(t.dma_avail(), 65535u);

	vfio_iommu_type1_detach_device(t.get(), a.vdev());
	vfio_iommu_type1_detach_device(t.get(), b.vdev());
}

// Contract: a driver that does not unpin in dma_unmap gets its pins dropped
// with a WARN after the callback; the unmap still succeeds in full; a
// detached device's pins are gone (no callback on a later unmap).
TEST(IommuType1, DmaUnmapStubbornDriverAndDetach)
{
	Type1 t;
	Guest g(4);
	const u64 io = 0x6000000;
	ASSERT_EQ(t.map(g.va(), io, 4 * PG), 0);
	PinDev dev;
	ASSERT_FALSE(IS_ERR(dev.d));
	dev.d->iommu = t.get();
	dev.d->unpin_on_unmap = false;
	ASSERT_EQ(vfio_iommu_type1_attach_device(t.get(), dev.vdev()), 0);
	void *pages[1];
	ASSERT_EQ(dev.pin(io + PG, 1, IOMMU_READ, pages), 1);
	{
		LogCapture log;
		u64 n = 0;
		ASSERT_EQ(t.unmap(io, 4 * PG, &n), 0);
		EXPECT_EQ(n, 4 * PG);
		EXPECT_TRUE(log.contains("WARNING"));
	}
	EXPECT_EQ(dev.d->unmaps.size(), 1u);

	ASSERT_EQ(t.map(g.va(), io, 4 * PG), 0);
	ASSERT_EQ(dev.pin(io, 1, IOMMU_READ, pages), 1);
	vfio_iommu_type1_detach_device(t.get(), dev.vdev());
	{
		LogCapture log;
		u64 n = 0;
		ASSERT_EQ(t.unmap(io, 4 * PG, &n), 0);
		EXPECT_EQ(n, 4 * PG);
		EXPECT_FALSE(log.contains("WARNING"));
	}
	EXPECT_EQ(dev.d->unmaps.size(), 1u);
}

// Contract: pages pinned with IOMMU_WRITE are dirty while tracking and stay
// reported in every report while pinned (read-only pins never); the report
// after the unpin (or detach) still has them, later ones do not.
TEST(IommuType1, PinnedWritePagesAreDirty)
{
	Type1 t;
	Guest g(4);
	const u64 io = 0x7000000;
	ASSERT_EQ(t.map(g.va(), io, 4 * PG), 0);
	PinDev dev;
	ASSERT_FALSE(IS_ERR(dev.d));
	dev.d->iommu = t.get();
	ASSERT_EQ(vfio_iommu_type1_attach_device(t.get(), dev.vdev()), 0);
	void *pages[1];
	/* Pinned before START: marked when tracking starts. */
	ASSERT_EQ(dev.pin(io, 1, IOMMU_READ | IOMMU_WRITE, pages), 1);
	ASSERT_EQ(t.dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);
	ASSERT_EQ(dev.pin(io + 2 * PG, 1, IOMMU_READ | IOMMU_WRITE, pages), 1);
	ASSERT_EQ(dev.pin(io + 3 * PG, 1, IOMMU_READ, pages), 1);
	std::set<u64> d;
	for (int round = 0; round < 2; round++) {
		ASSERT_EQ(t.dirty_set(io, 4 * PG, d), 0);
		EXPECT_EQ(d, (std::set<u64>{io, io + 2 * PG}));
	}
	/* Unpinned: reported once more (written while pinned), then not. */
	vfio_iommu_type1_unpin_pages(t.get(), dev.vdev(), io, 1);
	ASSERT_EQ(t.dirty_set(io, 4 * PG, d), 0);
	EXPECT_EQ(d, (std::set<u64>{io, io + 2 * PG}));
	ASSERT_EQ(t.dirty_set(io, 4 * PG, d), 0);
	EXPECT_EQ(d, (std::set<u64>{io + 2 * PG}));
	/* Detach drops the device's pins: the same for the last one. */
	vfio_iommu_type1_detach_device(t.get(), dev.vdev());
	ASSERT_EQ(t.dirty_set(io, 4 * PG, d), 0);
	EXPECT_EQ(d, (std::set<u64>{io + 2 * PG}));
	ASSERT_EQ(t.dirty_set(io, 4 * PG, d), 0);
	EXPECT_TRUE(d.empty());
}

/*
 * The property test's world: a large buffer, mappings at random IOVAs with
 * random gaps (0 included), random device writes, and a shadow of what must
 * be dirty.
 */
struct Layout {
	struct M {
		u64 iova, size, vpage;
	};
	std::vector<M> maps;	/* ascending iova */
};

// Contract (property): over random mappings of a large buffer, random DMA
// writes and reads (succeeding exactly when the range is fully mapped),
// random GET_BITMAP ranges that start and end at mapping boundaries or in
// holes, and UNMAP with GET_DIRTY_BITMAP followed by a remap, every report
// equals the shadow's dirty pages exactly, and bits land at the right
// offsets; a range cutting a mapping is EINVAL and clears nothing.
TEST(IommuType1, PropertyDirtyReportEqualsShadow)
{
	constexpr u64 buf_pages = 16384;	/* 64 MiB */
	Guest g(buf_pages);
	ASSERT_NE(g.mem, nullptr);
	std::mt19937_64 rng(0x7e1d1e5);
	auto rnd = [&](u64 lo, u64 hi) {	/* inclusive */
		return std::uniform_int_distribution<u64>(lo, hi)(rng);
	};

	for (int world = 0; world < 4; world++) {
		Type1 t;
		Layout lay;
		u64 io = rnd(0, 64) * PG + (static_cast<u64>(world) << 36);
		int nmaps = static_cast<int>(rnd(8, 40));
		for (int i = 0; i < nmaps; i++) {
			u64 pages = rnd(0, 3) ? rnd(1, 80) : rnd(100, 700);
			u64 vpage = rnd(0, buf_pages - pages);
			ASSERT_EQ(t.map(g.va(vpage), io, pages * PG), 0);
			lay.maps.push_back({io, pages * PG, vpage});
			io += pages * PG + (rnd(0, 2) ? 0 : rnd(1, 20)) * PG;
		}
		const u64 lo = lay.maps.front().iova;
		const u64 hi = lay.maps.back().iova + lay.maps.back().size;
		auto mapped = [&](u64 a, u64 len) {
			for (u64 p = a & ~(PG - 1); p < a + len; p += PG) {
				bool in = false;
				for (auto &m : lay.maps)
					if (p >= m.iova && p < m.iova + m.size)
						in = true;
				if (!in)
					return false;
			}
			return true;
		};

		ASSERT_EQ(t.dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);
		std::set<u64> shadow;
		std::vector<char> data(8 * PG), back(8 * PG);

		for (int step = 0; step < 400; step++) {
			int what = static_cast<int>(rnd(0, 9));
			if (what <= 5) {
				/* A DMA write or read somewhere. */
				u64 a = rnd(lo > 2 * PG ? lo - 2 * PG : 0, hi + PG);
				u64 len = rnd(0, 3) ? rnd(1, 300) : rnd(1, 6 * PG);
				bool write = what <= 3;
				for (u64 i = 0; i < len; i++)
					data[i] = static_cast<char>(rng());
				int r = t.rw(a, data.data(), len, write);
				bool ok = mapped(a, len);
				ASSERT_EQ(r, ok ? 0 : -EFAULT)
					<< std::hex << a << " " << len;
				if (ok && write) {
					auto ps = pages_of(a, len);
					shadow.insert(ps.begin(), ps.end());
					ASSERT_EQ(t.rw(a, back.data(), len, false), 0);
					ASSERT_EQ(std::memcmp(back.data(), data.data(),
							      len),
						  0);
				}
			} else if (what <= 8) {
				/* GET_BITMAP of a valid random range. */
				size_t i = rnd(0, lay.maps.size() - 1);
				size_t j = rnd(i, std::min(lay.maps.size() - 1, i + 6));
				u64 start = lay.maps[i].iova;
				u64 end = lay.maps[j].iova + lay.maps[j].size;
				/* Begin or end in the hole next door if any. */
				if (rnd(0, 3) == 0) {
					u64 prev_end = i ? lay.maps[i - 1].iova +
								   lay.maps[i - 1].size
							 : start - std::min(start, 4 * PG);
					if (prev_end < start)
						start -= rnd(1, (start - prev_end) / PG) * PG;
				}
				if (rnd(0, 3) == 0) {
					u64 next = j + 1 < lay.maps.size()
							   ? lay.maps[j + 1].iova
							   : end + 4 * PG;
					if (next > end)
						end += rnd(1, (next - end) / PG) * PG;
				}
				std::set<u64> got;
				ASSERT_EQ(t.dirty_set(start, end - start, got), 0);
				std::set<u64> want(shadow.lower_bound(start),
						   shadow.lower_bound(end));
				ASSERT_EQ(got, want)
					<< "step " << step << std::hex << " [" << start
					<< ", " << end << ")";
				for (u64 p : want)
					shadow.erase(p);
				/* A range cutting a mapping: EINVAL, nothing lost. */
				auto &m = lay.maps[rnd(0, lay.maps.size() - 1)];
				if (m.size > PG) {
					u64 bm[64];
					EXPECT_EQ(t.get_bitmap(m.iova + PG, m.size - PG,
							       bm, sizeof(bm)),
						  -EINVAL);
				}
			} else {
				/* Unmap one mapping with its bitmap, remap it. */
				size_t k = rnd(0, lay.maps.size() - 1);
				auto &m = lay.maps[k];
				u64 npages = m.size / PG;
				std::vector<u64> bm((npages + 63) / 64, 0);
				u64 n = 0;
				ASSERT_EQ(t.unmap_dirty(m.iova, m.size, bm, PG, &n),
					  0);
				ASSERT_EQ(n, m.size);
				std::set<u64> got;
				for (u64 p = 0; p < npages; p++)
					if (bm[p / 64] & (1ULL << (p % 64)))
						got.insert(m.iova + p * PG);
				std::set<u64> want(shadow.lower_bound(m.iova),
						   shadow.lower_bound(m.iova + m.size));
				ASSERT_EQ(got, want);
				for (u64 p : want)
					shadow.erase(p);
				m.vpage = rnd(0, buf_pages - npages);
				ASSERT_EQ(t.map(g.va(m.vpage), m.iova, m.size), 0);
			}
		}
		/* A final report of everything. */
		std::set<u64> got;
		ASSERT_EQ(t.dirty_set(lo, hi - lo, got), 0);
		EXPECT_EQ(got, shadow);
	}
}

// Contract: dma_rw from two threads stays correct while a third maps,
// unmaps and reports dirty pages: DMA to the stable mapping always
// succeeds and lands, DMA to the churned mapping succeeds or faults
// cleanly, and every page written to the stable mapping is reported.
TEST(IommuType1, ConcurrentDmaWithMapUnmap)
{
	Type1 t;
	Guest stable(64), churn(16);
	const u64 sio = 0x10000000, cio = 0x20000000;
	ASSERT_EQ(t.map(stable.va(), sio, 64 * PG), 0);
	ASSERT_EQ(t.dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);

	std::atomic<bool> stop{false};
	std::atomic<int> errors{0}, churn_ok{0}, churn_fault{0};
	std::set<u64> written[2];
	auto dma = [&](int id) {
		std::mt19937 rng(id + 1);
		std::vector<char> buf(2 * PG), back(2 * PG);
		while (!stop.load()) {
			/* Each thread owns half of the stable pages. */
			u64 page = id * 32 + rng() % 31;
			u64 a = sio + page * PG + rng() % PG;
			size_t len = 1 + rng() % PG;
			for (size_t i = 0; i < len; i++)
				buf[i] = static_cast<char>(rng());
			if (t.rw(a, buf.data(), len, true) ||
			    t.rw(a, back.data(), len, false) ||
			    std::memcmp(buf.data(), back.data(), len))
				errors++;
			for (u64 p : pages_of(a, len))
				written[id].insert(p);
			int r = t.rw(cio + (rng() % 16) * PG, buf.data(), 64,
				     rng() % 2);
			if (r == 0)
				churn_ok++;
			else if (r == -EFAULT)
				churn_fault++;
			else
				errors++;
		}
	};
	std::thread t0(dma, 0), t1(dma, 1);
	std::set<u64> reported;
	for (int i = 0; i < 1500; i++) {
		u64 n = 0;
		if (t.map(churn.va(), cio, 16 * PG) != 0)
			errors++;
		std::this_thread::yield();
		if (i % 3 == 0) {
			std::vector<u64> bm(2, 0);
			if (t.unmap_dirty(cio, 16 * PG, bm, PG, &n) || n != 16 * PG)
				errors++;
		} else if (t.unmap(cio, 16 * PG, &n) || n != 16 * PG) {
			errors++;
		}
		if (i % 50 == 0) {
			std::set<u64> d;
			if (t.dirty_set(sio, 64 * PG, d))
				errors++;
			reported.insert(d.begin(), d.end());
		}
	}
	stop = true;
	t0.join();
	t1.join();
	std::set<u64> d;
	ASSERT_EQ(t.dirty_set(sio, 64 * PG, d), 0);
	reported.insert(d.begin(), d.end());
	EXPECT_EQ(errors.load(), 0);
	std::set<u64> all(written[0]);
	all.insert(written[1].begin(), written[1].end());
	EXPECT_EQ(reported, all);
	EXPECT_GT(churn_ok.load() + churn_fault.load(), 0);
	RecordProperty("churn_ok", churn_ok.load());
	RecordProperty("churn_fault", churn_fault.load());
}

} // namespace
