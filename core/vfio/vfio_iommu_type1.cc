// SPDX-License-Identifier: GPL-2.0-only
/*
 * One file over 600 lines on purpose, as drivers/vfio/vfio_iommu_type1.c
 * is one file: the mappings, pinning, dirty tracking and the ioctls share
 * one lock and one set of invariants.
 *
 * The type1 IOMMU model behind a container: VFIO_IOMMU_GET_INFO, _MAP_DMA,
 * _UNMAP_DMA and _DIRTY_PAGES with the kernel's type1 validation and errno
 * values, the translation the simulated devices' DMA goes through
 * (vfio_iommu_type1_dma_rw), and page pinning for emulated-IOMMU drivers.
 * "Guest memory" is this process's own memory: a mapping translates an IOVA
 * range to a range of our virtual addresses.
 *
 * Where this model deliberately differs from drivers/vfio/vfio_iommu_type1.c:
 *
 * - Dirty tracking. The kernel's type1 has no hardware dirty bits: as long
 *   as any device in the container does not restrict itself to pinned pages
 *   it reports every mapped page dirty. This model instead sees every DMA
 *   write, because all device DMA goes through vfio_iommu_type1_dma_rw(). A
 *   page is dirty when a device wrote to it through dma_rw since tracking
 *   started or since the range was last reported, or when it is pinned with
 *   IOMMU_WRITE (the kernel's pinned-page scope: pinned pages are marked
 *   when pinned and marked again after every report while they stay
 *   pinned). So with no pins, a report is exactly the set of pages written.
 *   Bits are OR'ed into the caller's bitmap (read, OR, write back) rather
 *   than overwriting the words around each mapping.
 * - VFIO_TYPE1_IOMMU and VFIO_TYPE1v2_IOMMU share this model. v1 differs
 *   where the kernel's does simply: UNMAP_DMA follows the v1 rules (a
 *   request starting inside a mapping unmaps nothing and succeeds, one
 *   covering a mapping's first page removes the whole mapping),
 *   VFIO_IOMMU_DIRTY_PAGES and pinning fail with EACCES.
 * - Valid IOVAs: a single range [0, 2^48 - 1] (a 48-bit IOMMU aperture with
 *   no reserved regions); the kernel excludes MSI windows etc.
 * - MAP_DMA does not pin. Where the kernel pins, it faults the whole
 *   vaddr range in (MADV_POPULATE_WRITE for WRITE mappings, _READ for
 *   read-only ones; so, like the kernel's pin, it allocates the memory) and
 *   fails with EFAULT where get_user_pages() would: a hole, or memory not
 *   readable (READ) or writable (WRITE). Where MADV_POPULATE_* is not
 *   available, /proc/self/maps is checked instead; without procfs as well,
 *   the check is skipped. RLIMIT_MEMLOCK accounting is not modelled.
 * - vfio_iommu_type1_dma_rw() returns -EFAULT for an unmapped IOVA (the
 *   kernel: -EINVAL) and for a missing permission (kernel: -EPERM), and
 *   copies nothing unless the whole range translates (the kernel copies
 *   chunk by chunk). A write needs IOMMU_WRITE, a read IOMMU_READ (the
 *   kernel also requires READ for a write). The copy itself goes through
 *   copy_{to,from}_user, so memory the process unmapped behind a live
 *   mapping (which the kernel's pin would have kept) fails with -EFAULT,
 *   possibly after earlier mappings' parts were copied.
 * - Device memory (peer-to-peer). A MAP_DMA range over a device's BAR
 *   mmap is found by its backing file (vfio_pfnmap.cc), as the kernel
 *   follows a VM_PFNMAP vma instead of pinning; the range may mix it with
 *   ordinary memory (the kernel maps such a range chunk by chunk). A DMA
 *   access there is the target device's vm_ops->dma_rw, so the device sees
 *   it as a PCIe transaction to its BAR (its trackers included), not a
 *   memcpy behind its back; a target that is gone or not decoding memory
 *   fails it with -EFAULT. Writes there are dirty like any other
 *   (the kernel reports every page of such a mapping dirty; a VMM knows
 *   the range is a device's and ignores it). Pinning device memory is
 *   -EINVAL, as the kernel refuses a pfn without a struct page.
 * - VFIO_UPDATE_VADDR is not offered: the VADDR flags of MAP and UNMAP are
 *   unknown flags (EINVAL), as on kernels before 5.12.
 * - VFIO_TYPE1_NESTING_IOMMU: CHECK_EXTENSION says 1, as the kernel's
 *   type1 does, but SET_IOMMU with it fails with EINVAL: the simulated
 *   IOMMU cannot nest (on x86 the kernel's attach fails the same way for
 *   a physical group; an emulated-IOMMU-only container accepts it there).
 * - dma_unmap notifications: as in the kernel, every attached device with
 *   ops->dma_unmap hears about a whole mapping that holds pinned pages,
 *   with no model lock held. The kernel retries and finally BUG()s when a
 *   driver does not unpin; here the second time a mapping is found still
 *   pinned its pins are dropped with a WARN_ON. Detaching a device does not
 *   wait for a dma_unmap call in flight on another thread; the device is
 *   kept alive by a reference for the duration of the call.
 * - Pinning needs the device to be attached (kernel: any device attached);
 *   pins are counted per device and page, and unpinning what the device
 *   has not pinned is a WARN_ON that is otherwise ignored.
 *
 * Locking: one reader-writer lock (writers preferred, so a DMA engine that
 * calls dma_rw in a loop cannot starve MAP/UNMAP). dma_rw takes it shared
 * and marks dirty bits with atomic ORs, GET_INFO takes it shared too, and
 * everything else takes it exclusive. dma_unmap callbacks run without it.
 * A peer-to-peer access runs the target's dma_rw under the shared lock:
 * that path takes only the target's leaf locks (never a lock held while
 * a DMA engine is waited for), so engines may DMA into each other's and
 * their own BARs while resets and migration arcs drain them.
 */
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

#include <uvfio/linux/err.h>
#include <uvfio/linux/fault-inject.h>
#include <uvfio/linux/kernel.h>
#include <uvfio/linux/mm.h>
#include <uvfio/linux/slab.h>
#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio.h>

#include "procmap.h"
#include "vfio_iommu.h"
#include "vfio_pfnmap.h"

namespace {

/* The IOMMU's page sizes; the smallest is the mapping granule. */
constexpr u64 type1_pgsize_bitmap = (1ULL << 12) | (1ULL << 21) | (1ULL << 30);
constexpr u64 type1_pgsize = 1ULL << 12;
constexpr unsigned int type1_pgshift = 12;
static_assert(type1_pgsize == PAGE_SIZE, "the model's granule is PAGE_SIZE");

/* The one valid IOVA range. */
constexpr u64 type1_iova_start = 0;
constexpr u64 type1_iova_end = (1ULL << 48) - 1;

/* Mappings per container (the kernel's dma_entry_limit default). */
constexpr unsigned int type1_dma_entry_limit = 65535;

/* Largest dirty bitmap: one bit for each of INT_MAX pages, in u64 words. */
constexpr u64 bitmap_bytes(u64 npages)
{
	return ((npages + 63) / 64) * sizeof(u64);
}
constexpr u64 dirty_bitmap_size_max = bitmap_bytes(0x7fffffffULL);

/* Most pages one vfio_pin_pages() call may pin (the kernel's limit). */
constexpr int pin_pages_max_entries = PAGE_SIZE / sizeof(unsigned long);

/* pthread rwlock preferring writers, usable with std::unique/shared_lock. */
class RwLock
{
public:
	RwLock()
	{
		pthread_rwlockattr_t attr;
		pthread_rwlockattr_init(&attr);
		pthread_rwlockattr_setkind_np(
			&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&lock_, &attr);
		pthread_rwlockattr_destroy(&attr);
	}
	~RwLock() { pthread_rwlock_destroy(&lock_); }
	RwLock(const RwLock &) = delete;
	RwLock &operator=(const RwLock &) = delete;

	void lock() { pthread_rwlock_wrlock(&lock_); }
	void unlock() { pthread_rwlock_unlock(&lock_); }
	void lock_shared() { pthread_rwlock_rdlock(&lock_); }
	void unlock_shared() { pthread_rwlock_unlock(&lock_); }

private:
	pthread_rwlock_t lock_;
};

/* One device's pins of one page. */
struct type1_pin {
	unsigned int count = 0;
	bool write = false;	/* some pin since count became non-zero had WRITE */
};

/* One MAP_DMA. */
struct type1_dma {
	u64 iova = 0;
	u64 size = 0;
	unsigned long vaddr = 0;
	int prot = 0;
	u64 id = 0;	/* unique per mapping, to recognise it after a retry */
	/* Dirty bits, one per page, while tracking is on (else null). */
	std::unique_ptr<std::atomic<u64>[]> bitmap;
	/* Pinned pages: page IOVA -> device -> pins. */
	std::map<u64, std::map<struct vfio_device *, type1_pin>> pins;
	/*
	 * Pieces that are device memory (a peer's BAR), by offset; the rest
	 * is memory at vaddr.
	 */
	std::vector<vfio_pfnmap_span> spans;

	u64 last() const { return iova + size - 1; }
	u64 npages() const { return size >> type1_pgshift; }
	u64 nwords() const { return (npages() + 63) / 64; }

	void set_dirty(u64 first_page, u64 last_page)
	{
		for (u64 p = first_page; p <= last_page;) {
			u64 w = p / 64;
			unsigned int b = p % 64;
			u64 n = std::min<u64>(64 - b, last_page - p + 1);
			u64 mask = n == 64 ? ~0ULL : ((1ULL << n) - 1) << b;
			bitmap[w].fetch_or(mask, std::memory_order_relaxed);
			p += n;
		}
	}

	/* Mark pages pinned with WRITE (the pinned-page dirty scope). */
	void populate_pinned()
	{
		for (auto &[piova, devs] : pins)
			for (auto &[dev, pin] : devs)
				if (pin.write) {
					u64 p = (piova - iova) >> type1_pgshift;
					set_dirty(p, p);
					break;
				}
	}

	int alloc_bitmap()
	{
		/* The kernel refuses to track more pages than INT_MAX. */
		if (npages() > 0x7fffffffULL)
			return -EINVAL;
		bitmap.reset(new (std::nothrow) std::atomic<u64>[nwords()]());
		if (!bitmap)
			return -ENOMEM;
		populate_pinned();
		return 0;
	}
};

} // namespace

struct vfio_iommu {
	RwLock lock;
	std::map<u64, std::unique_ptr<type1_dma>> dma_list;	/* by iova */
	std::vector<struct vfio_device *> devices;
	unsigned int dma_avail = type1_dma_entry_limit;
	bool v2 = false;
	bool dirty_page_tracking = false;
	u64 next_id = 1;
};

namespace {

using dma_iter = std::map<u64, std::unique_ptr<type1_dma>>::iterator;

bool is_power_of_2(u64 x)
{
	return x && !(x & (x - 1));
}

/* The mapping holding addr, or null. */
type1_dma *find_dma(struct vfio_iommu *iommu, u64 addr)
{
	auto it = iommu->dma_list.upper_bound(addr);
	if (it == iommu->dma_list.begin())
		return nullptr;
	--it;
	return addr <= it->second->last() ? it->second.get() : nullptr;
}

/* The lowest mapping ending at or after start (may begin after it). */
dma_iter first_dma_from(struct vfio_iommu *iommu, u64 start)
{
	auto it = iommu->dma_list.upper_bound(start);
	if (it != iommu->dma_list.begin()) {
		auto prev = std::prev(it);
		if (prev->second->last() >= start)
			return prev;
	}
	return it;
}

/* Any mapping overlapping [start, last]? */
bool overlaps(struct vfio_iommu *iommu, u64 start, u64 last)
{
	auto it = first_dma_from(iommu, start);
	return it != iommu->dma_list.end() && it->second->iova <= last;
}

/* Drop every pin of dma (its users were told, or are gone). */
void drop_pins(type1_dma *dma)
{
	dma->pins.clear();
}

/*
 * Is [vaddr, vaddr + size) mapped in this process with the access prot
 * needs, according to /proc/self/maps? 0 or -EFAULT; 0 when it cannot be
 * read.
 */
int probe_vaddr_maps(unsigned long vaddr, u64 size, int prot)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	std::string maps = procfs_read_all(fd);
	close(fd);

	const u64 last = vaddr + size - 1;
	u64 cur = vaddr;
	const char *p = maps.c_str();
	while (*p) {
		char *q;
		u64 start = std::strtoull(p, &q, 16);
		u64 end = (*q == '-') ? std::strtoull(q + 1, &q, 16) : 0;
		const char *perms = (*q == ' ') ? q + 1 : nullptr;
		const char *nl = std::strchr(p, '\n');
		p = nl ? nl + 1 : p + std::strlen(p);
		if (!perms || !perms[0] || !perms[1] || end <= start)
			continue;
		if (end - 1 < cur)
			continue;
		if (start > cur)
			return -EFAULT;	/* a hole */
		if (((prot & IOMMU_READ) && perms[0] != 'r') ||
		    ((prot & IOMMU_WRITE) && perms[1] != 'w'))
			return -EFAULT;
		if (end - 1 >= last)
			return 0;
		cur = end;
	}
	return -EFAULT;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/*
 * Where the kernel pins [vaddr, vaddr + size) for the mapping: fault the
 * range in for the access prot needs (as the pin would, without pinning).
 * 0 or -EFAULT. Only when that fails for a reason other than a hole
 * (permissions, or a kernel without MADV_POPULATE_*) is /proc/self/maps
 * consulted, so the common case costs one madvise().
 */
int probe_vaddr(unsigned long vaddr, u64 size, int prot)
{
	int advice = (prot & IOMMU_WRITE) ? MADV_POPULATE_WRITE
					  : MADV_POPULATE_READ;
	if (!madvise(reinterpret_cast<void *>(vaddr), size, advice))
		return 0;
	if (errno == ENOMEM)
		return -EFAULT;	/* not mapped */
	if (errno == EINVAL || errno == EPERM || errno == ENOSYS)
		return probe_vaddr_maps(vaddr, size, prot);
	return -EFAULT;
}

/*
 * OR dma's dirty bits into the user's bitmap, whose bit 0 is base_iova.
 * dma lies at or above base_iova. 0 or -EFAULT.
 */
int update_user_bitmap(u64 __user *bitmap, type1_dma *dma, u64 base_iova)
{
	u64 bit_offset = (dma->iova - base_iova) >> type1_pgshift;
	u64 first_word = bit_offset / 64;
	u64 last_word = (bit_offset + dma->npages() - 1) / 64;
	unsigned int shift = bit_offset % 64;
	size_t nwords = last_word - first_word + 1;

	std::vector<u64> words(nwords);
	if (copy_from_user(words.data(), bitmap + first_word,
			   nwords * sizeof(u64)))
		return -EFAULT;
	if (dma->bitmap) {
		for (u64 i = 0; i < dma->nwords(); i++) {
			u64 w = dma->bitmap[i].load(std::memory_order_relaxed);
			if (!w)
				continue;
			words[i] |= w << shift;
			if (shift && i + 1 < nwords)
				words[i + 1] |= w >> (64 - shift);
		}
	}
	if (copy_to_user(bitmap + first_word, words.data(),
			 nwords * sizeof(u64)))
		return -EFAULT;
	return 0;
}

/* Clear what was reported; pinned-for-write pages stay dirty. */
void reset_dirty(type1_dma *dma)
{
	if (!dma->bitmap)
		return;
	for (u64 i = 0; i < dma->nwords(); i++)
		dma->bitmap[i].store(0, std::memory_order_relaxed);
	dma->populate_pinned();
}

int verify_bitmap_size(u64 npages, u64 bitmap_size)
{
	if (!npages || !bitmap_size || bitmap_size > dirty_bitmap_size_max ||
	    bitmap_size < bitmap_bytes(npages))
		return -EINVAL;
	return 0;
}

/* Shift of a user page size, or -1 when it is not a power of two. */
int user_pgshift(u64 pgsize)
{
	if (!is_power_of_2(pgsize))
		return -1;
	return __builtin_ctzll(pgsize);
}

void remove_dma(struct vfio_iommu *iommu, dma_iter it)
{
	iommu->dma_list.erase(it);
	iommu->dma_avail++;
}

/* -------- VFIO_IOMMU_GET_INFO -------- */

long type1_get_info(struct vfio_iommu *iommu, unsigned long arg)
{
	auto __user *uarg = reinterpret_cast<struct vfio_iommu_type1_info *>(arg);
	struct vfio_iommu_type1_info info = {};
	struct vfio_info_cap caps = {nullptr, 0};
	size_t minsz = offsetofend(struct vfio_iommu_type1_info, iova_pgsizes);
	/* Older users know no cap_offset: it is not required. */
	size_t capsz = offsetofend(struct vfio_iommu_type1_info, cap_offset);
	long ret = 0;

	if (copy_from_user(&info, uarg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;
	if (info.argsz >= capsz) {
		minsz = capsz;
		info.cap_offset = 0;
	}

	{
		std::shared_lock<RwLock> l(iommu->lock);
		info.flags = VFIO_IOMMU_INFO_PGSIZES;
		info.iova_pgsizes = type1_pgsize_bitmap;

		struct vfio_iommu_type1_info_cap_migration mig = {};
		mig.header.id = VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION;
		mig.header.version = 1;
		mig.flags = 0;
		mig.pgsize_bitmap = type1_pgsize;
		mig.max_dirty_bitmap_size = dirty_bitmap_size_max;
		ret = vfio_info_add_capability(&caps, &mig.header, sizeof(mig));

		if (!ret) {
			struct vfio_iommu_type1_info_dma_avail avail = {};
			avail.header.id = VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL;
			avail.header.version = 1;
			avail.avail = iommu->dma_avail;
			ret = vfio_info_add_capability(&caps, &avail.header,
						       sizeof(avail));
		}
	}
	if (!ret) {
		size_t size = sizeof(struct vfio_iommu_type1_info_cap_iova_range) +
			      sizeof(struct vfio_iova_range);
		struct vfio_info_cap_header *header = vfio_info_cap_add(
			&caps, size, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1);
		if (IS_ERR(header)) {
			ret = PTR_ERR(header);
		} else {
			auto *cap = container_of(
				header, struct vfio_iommu_type1_info_cap_iova_range,
				header);
			cap->nr_iovas = 1;
			cap->iova_ranges[0].start = type1_iova_start;
			cap->iova_ranges[0].end = type1_iova_end;
		}
	}
	if (ret)
		goto out;

	if (caps.size) {
		info.flags |= VFIO_IOMMU_INFO_CAPS;
		if (info.argsz < sizeof(info) + caps.size) {
			/* Too small: the size needed; cap_offset stays 0. */
			info.argsz = static_cast<u32>(sizeof(info) + caps.size);
		} else {
			vfio_info_cap_shift(&caps, sizeof(info));
			if (copy_to_user(reinterpret_cast<char __user *>(arg) +
						 sizeof(info),
					 caps.buf, caps.size)) {
				ret = -EFAULT;
				goto out;
			}
			info.cap_offset = sizeof(info);
		}
	}
	if (copy_to_user(uarg, &info, minsz))
		ret = -EFAULT;
out:
	kfree(caps.buf);
	return ret;
}

/* -------- VFIO_IOMMU_MAP_DMA -------- */

long type1_map_dma(struct vfio_iommu *iommu, unsigned long arg)
{
	struct vfio_iommu_type1_dma_map map;
	size_t minsz = offsetofend(struct vfio_iommu_type1_dma_map, size);
	u32 mask = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	int prot = 0;

	if (copy_from_user(&map, reinterpret_cast<void __user *>(arg), minsz))
		return -EFAULT;
	if (map.argsz < minsz || (map.flags & ~mask))
		return -EINVAL;

	/* READ/WRITE as the device sees it; one of them is required. */
	if (map.flags & VFIO_DMA_MAP_FLAG_WRITE)
		prot |= IOMMU_WRITE;
	if (map.flags & VFIO_DMA_MAP_FLAG_READ)
		prot |= IOMMU_READ;
	if (!prot)
		return -EINVAL;

	u64 iova = map.iova, size = map.size, vaddr = map.vaddr;

	std::unique_lock<RwLock> l(iommu->lock);

	if (!size || ((size | iova | vaddr) & (type1_pgsize - 1)))
		return -EINVAL;
	/* Neither the IOVA nor the process range may wrap. */
	if (iova + size - 1 < iova || vaddr + size - 1 < vaddr)
		return -EINVAL;
	if (overlaps(iommu, iova, iova + size - 1))
		return -EEXIST;
	if (!iommu->dma_avail)
		return -ENOSPC;
	if (iova < type1_iova_start || iova + size - 1 > type1_iova_end)
		return -EINVAL;

	/*
	 * Where the kernel pins the pages, or follows a VM_PFNMAP vma for
	 * device memory, page by page (and fails with EFAULT): device
	 * memory is found first, the memory around it is probed as before.
	 * A range may mix both kinds, as the kernel's maps them chunk by
	 * chunk.
	 */
	std::vector<vfio_pfnmap_span> spans;
	int ret = vfio_pfnmap_resolve(vaddr, size, prot, &spans);
	if (ret)
		return ret;
	u64 done = 0;
	for (const vfio_pfnmap_span &sp : spans) {
		if (sp.off > done &&
		    (ret = probe_vaddr(vaddr + done, sp.off - done, prot)))
			return ret;
		done = sp.off + sp.len;
	}
	if (done < size && (ret = probe_vaddr(vaddr + done, size - done, prot)))
		return ret;

	auto dma = std::make_unique<type1_dma>();
	dma->iova = iova;
	dma->size = size;
	dma->vaddr = vaddr;
	dma->prot = prot;
	dma->id = iommu->next_id++;
	dma->spans = std::move(spans);
	if (iommu->dirty_page_tracking) {
		ret = dma->alloc_bitmap();
		if (ret)
			return ret;
	}
	iommu->dma_list.emplace(iova, std::move(dma));
	iommu->dma_avail--;
	return 0;
}

/* -------- VFIO_IOMMU_UNMAP_DMA -------- */

/*
 * Tell every attached device that the mapping [iova, iova + size) is going
 * away, without the model's lock (the driver unpins from its callback).
 * Called and returns with the lock held exclusively.
 */
void notify_dma_unmap(struct vfio_iommu *iommu, std::unique_lock<RwLock> &l,
		      u64 iova, u64 size)
{
	std::vector<struct vfio_device *> devs;
	devs.reserve(iommu->devices.size());	/* may throw: before any ref */
	for (struct vfio_device *d : iommu->devices)
		if (d->ops && d->ops->dma_unmap) {
			devs.push_back(d);
			get_device(&d->device);
		}
	l.unlock();
	for (struct vfio_device *d : devs) {
		d->ops->dma_unmap(d, iova, size);
		vfio_put_device(d);
	}
	l.lock();
}

int do_unmap(struct vfio_iommu *iommu, struct vfio_iommu_type1_dma_unmap *unmap,
	     struct vfio_bitmap *bitmap)
{
	u64 iova = unmap->iova;
	u64 size = unmap->size;
	bool unmap_all = unmap->flags & VFIO_DMA_UNMAP_FLAG_ALL;
	bool get_dirty = unmap->flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
	u64 unmapped = 0;
	u64 notified_id = 0;
	int ret = -EINVAL;

	std::unique_lock<RwLock> l(iommu->lock);

	if (iova & (type1_pgsize - 1))
		goto out;
	if (unmap_all) {
		if (iova || size)
			goto out;
		size = U64_MAX;
	} else if (!size || (size & (type1_pgsize - 1)) ||
		   iova + size - 1 < iova) {
		goto out;
	}
	/* With tracking on, only the smallest page size is reported. */
	if (get_dirty &&
	    (!iommu->dirty_page_tracking || bitmap->pgsize != type1_pgsize))
		goto out;

again:
	/*
	 * v2: the range must not cut a mapping in two; it may cover several
	 * mappings and the holes between them. Unmapping nothing succeeds.
	 */
	if (iommu->v2 && !unmap_all) {
		type1_dma *dma = find_dma(iommu, iova);
		if (dma && dma->iova != iova) {
			ret = -EINVAL;
			goto out;
		}
		dma = find_dma(iommu, iova + size - 1);
		if (dma && dma->last() != iova + size - 1) {
			ret = -EINVAL;
			goto out;
		}
	}

	ret = 0;
	for (auto it = first_dma_from(iommu, iova);
	     it != iommu->dma_list.end() && it->second->iova <= iova + size - 1;) {
		type1_dma *dma = it->second.get();

		/* v1: a request from inside a mapping stops there. */
		if (!iommu->v2 && iova > dma->iova)
			break;

		if (!dma->pins.empty()) {
			if (dma->id != notified_id) {
				notified_id = dma->id;
				notify_dma_unmap(iommu, l, dma->iova, dma->size);
				goto again;
			}
			/* The drivers were told and still hold pins. */
			WARN_ON(!dma->pins.empty());
			drop_pins(dma);
		}

		if (get_dirty) {
			ret = update_user_bitmap(
				reinterpret_cast<u64 __user *>(bitmap->data), dma,
				iova);
			if (ret)
				break;
		}

		unmapped += dma->size;
		auto next = std::next(it);
		remove_dma(iommu, it);
		it = next;
	}
out:
	unmap->size = unmapped;
	return ret;
}

long type1_unmap_dma(struct vfio_iommu *iommu, unsigned long arg)
{
	auto __user *uarg =
		reinterpret_cast<struct vfio_iommu_type1_dma_unmap *>(arg);
	struct vfio_iommu_type1_dma_unmap unmap;
	struct vfio_bitmap bitmap = {};
	size_t minsz = offsetofend(struct vfio_iommu_type1_dma_unmap, size);
	u32 mask = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_ALL;
	int ret;

	if (copy_from_user(&unmap, uarg, minsz))
		return -EFAULT;
	if (unmap.argsz < minsz || (unmap.flags & ~mask))
		return -EINVAL;
	if ((unmap.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) &&
	    (unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL))
		return -EINVAL;

	if (unmap.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) {
		if (unmap.argsz < minsz + sizeof(bitmap))
			return -EINVAL;
		if (copy_from_user(&bitmap,
				   reinterpret_cast<char __user *>(arg) + minsz,
				   sizeof(bitmap)))
			return -EFAULT;
		int shift = user_pgshift(bitmap.pgsize);
		if (shift < 0)
			return -EINVAL;
		ret = verify_bitmap_size(unmap.size >> shift, bitmap.size);
		if (ret)
			return ret;
	}

	ret = do_unmap(iommu, &unmap, &bitmap);
	if (ret)
		return ret;
	return copy_to_user(uarg, &unmap, minsz) ? -EFAULT : 0;
}

/* -------- VFIO_IOMMU_DIRTY_PAGES -------- */

/*
 * One mapping's bits into the user's bitmap: an injected failure is the
 * copy failing before that mapping's bits are reported or cleared, so they
 * stay for the next GET_BITMAP (mappings before it were reported).
 */
DEFINE_FAULT_POINT(iommu_dirty_bitmap, "iommu.dirty_bitmap", EFAULT,
		   "VFIO_IOMMU_DIRTY_PAGES GET_BITMAP fails at a mapping")

int dirty_get_bitmap(struct vfio_iommu *iommu, u64 __user *bitmap, u64 iova,
		     u64 size)
{
	/*
	 * The range may cover several mappings and holes, but must not cut
	 * a mapping: it starts at a mapping's first byte (or outside any)
	 * and ends at one's last byte (or outside any).
	 */
	type1_dma *dma = find_dma(iommu, iova);
	if (dma && dma->iova != iova)
		return -EINVAL;
	dma = find_dma(iommu, iova + size - 1);
	if (dma && dma->last() != iova + size - 1)
		return -EINVAL;

	for (auto it = first_dma_from(iommu, iova);
	     it != iommu->dma_list.end() && it->second->iova <= iova + size - 1;
	     ++it) {
		int ret = should_fail(&iommu_dirty_bitmap);
		if (!ret)
			ret = update_user_bitmap(bitmap, it->second.get(), iova);
		if (ret)
			return ret;
		reset_dirty(it->second.get());
	}
	return 0;
}

long type1_dirty_pages(struct vfio_iommu *iommu, unsigned long arg)
{
	struct vfio_iommu_type1_dirty_bitmap dirty;
	u32 mask = VFIO_IOMMU_DIRTY_PAGES_FLAG_START |
		   VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP |
		   VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
	size_t minsz = offsetofend(struct vfio_iommu_type1_dirty_bitmap, flags);

	if (!iommu->v2)
		return -EACCES;
	if (copy_from_user(&dirty, reinterpret_cast<void __user *>(arg), minsz))
		return -EFAULT;
	if (dirty.argsz < minsz || (dirty.flags & ~mask))
		return -EINVAL;
	/* Exactly one operation. */
	if (!dirty.flags || (dirty.flags & (dirty.flags - 1)))
		return -EINVAL;

	if (dirty.flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_START) {
		std::unique_lock<RwLock> l(iommu->lock);
		if (iommu->dirty_page_tracking)
			return 0;
		for (auto &[key, dma] : iommu->dma_list) {
			int ret = dma->alloc_bitmap();
			if (ret) {
				for (auto &[k, d] : iommu->dma_list)
					d->bitmap.reset();
				return ret;
			}
		}
		iommu->dirty_page_tracking = true;
		return 0;
	}
	if (dirty.flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) {
		std::unique_lock<RwLock> l(iommu->lock);
		if (iommu->dirty_page_tracking) {
			iommu->dirty_page_tracking = false;
			for (auto &[key, dma] : iommu->dma_list)
				dma->bitmap.reset();
		}
		return 0;
	}

	/* VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP */
	struct vfio_iommu_type1_dirty_bitmap_get range;
	if (dirty.argsz - minsz < sizeof(range))
		return -EINVAL;
	if (copy_from_user(&range, reinterpret_cast<char __user *>(arg) + minsz,
			   sizeof(range)))
		return -EFAULT;
	if (range.iova + range.size < range.iova)
		return -EINVAL;
	int shift = user_pgshift(range.bitmap.pgsize);
	if (shift < 0)
		return -EINVAL;
	int ret = verify_bitmap_size(range.size >> shift, range.bitmap.size);
	if (ret)
		return ret;

	std::unique_lock<RwLock> l(iommu->lock);
	/* Only the smallest page size is reported. */
	if (range.bitmap.pgsize != type1_pgsize)
		return -EINVAL;
	if (range.iova & (type1_pgsize - 1))
		return -EINVAL;
	if (!range.size || (range.size & (type1_pgsize - 1)))
		return -EINVAL;
	if (!iommu->dirty_page_tracking)
		return -EINVAL;
	return dirty_get_bitmap(iommu,
				reinterpret_cast<u64 __user *>(range.bitmap.data),
				range.iova, range.size);
}

long type1_ioctl(struct vfio_iommu *iommu, unsigned int cmd, unsigned long arg)
{
	switch (cmd) {
	case VFIO_CHECK_EXTENSION:
		return vfio_iommu_type1_check_extension(arg);
	case VFIO_IOMMU_GET_INFO:
		return type1_get_info(iommu, arg);
	case VFIO_IOMMU_MAP_DMA:
		return type1_map_dma(iommu, arg);
	case VFIO_IOMMU_UNMAP_DMA:
		return type1_unmap_dma(iommu, arg);
	case VFIO_IOMMU_DIRTY_PAGES:
		return type1_dirty_pages(iommu, arg);
	default:
		return -ENOTTY;
	}
}

bool is_attached(struct vfio_iommu *iommu, struct vfio_device *device)
{
	for (struct vfio_device *d : iommu->devices)
		if (d == device)
			return true;
	return false;
}

} // namespace

int vfio_iommu_type1_check_extension(unsigned long arg)
{
	switch (arg) {
	case VFIO_TYPE1_IOMMU:
	case VFIO_TYPE1v2_IOMMU:
	/* Offered whatever the IOMMU, as the kernel's type1 does; setting
	 * it fails (see vfio_ioctl_set_iommu() in container.cc). */
	case VFIO_TYPE1_NESTING_IOMMU:
	case VFIO_UNMAP_ALL:
	case VFIO_DMA_CC_IOMMU:
		return 1;
	default:
		return 0;
	}
}

struct vfio_iommu *vfio_iommu_type1_open(unsigned long type)
{
	if (type != VFIO_TYPE1_IOMMU && type != VFIO_TYPE1v2_IOMMU)
		return static_cast<struct vfio_iommu *>(ERR_PTR(-EINVAL));
	auto *iommu = new (std::nothrow) vfio_iommu;
	if (!iommu)
		return static_cast<struct vfio_iommu *>(ERR_PTR(-ENOMEM));
	iommu->v2 = type == VFIO_TYPE1v2_IOMMU;
	return iommu;
}

void vfio_iommu_type1_release(struct vfio_iommu *iommu)
{
	if (!iommu || IS_ERR(iommu))
		return;
	/* Mappings and pins go with it; nobody is told, as in the kernel. */
	delete iommu;
}

long vfio_iommu_type1_ioctl(struct vfio_iommu *iommu, unsigned int cmd,
			    unsigned long arg)
{
	if (!iommu)
		return -EINVAL;
	try {
		return type1_ioctl(iommu, cmd, arg);
	} catch (const std::bad_alloc &) {
		return -ENOMEM;
	}
}

int vfio_iommu_type1_attach_device(struct vfio_iommu *iommu,
				   struct vfio_device *device)
{
	if (!iommu || !device)
		return -EINVAL;
	try {
		std::unique_lock<RwLock> l(iommu->lock);
		if (WARN_ON(is_attached(iommu, device)))
			return -EEXIST;
		iommu->devices.push_back(device);
	} catch (const std::bad_alloc &) {
		return -ENOMEM;
	}
	return 0;
}

void vfio_iommu_type1_detach_device(struct vfio_iommu *iommu,
				    struct vfio_device *device)
{
	if (!iommu || !device)
		return;
	std::unique_lock<RwLock> l(iommu->lock);
	std::erase(iommu->devices, device);
	/* Its pins go with it. */
	for (auto &[key, dma] : iommu->dma_list) {
		for (auto it = dma->pins.begin(); it != dma->pins.end();) {
			it->second.erase(device);
			it = it->second.empty() ? dma->pins.erase(it)
						: std::next(it);
		}
	}
}

namespace {

/* The device memory span holding offset off of dma, or null. */
const vfio_pfnmap_span *find_span(const type1_dma *dma, u64 off)
{
	auto it = std::upper_bound(
		dma->spans.begin(), dma->spans.end(), off,
		[](u64 o, const vfio_pfnmap_span &sp) { return o < sp.off; });
	if (it == dma->spans.begin())
		return nullptr;
	--it;
	return off - it->off < it->len ? &*it : nullptr;
}

/*
 * n bytes at offset off of dma, to (write) or from p: memory is copied,
 * device memory is the device's access (a peer-to-peer transaction). 0
 * or -EFAULT.
 */
int dma_copy(const type1_dma *dma, u64 off, char *p, u64 n, bool write)
{
	while (n) {
		u64 m = n;
		const vfio_pfnmap_span *sp =
			dma->spans.empty() ? nullptr : find_span(dma, off);
		if (sp) {
			m = std::min(n, sp->off + sp->len - off);
			if (vfio_pfnmap_rw(sp->map.get(), sp->pos + (off - sp->off),
					   p, m, write))
				return -EFAULT;
		} else {
			/* Memory up to the next span, if any. */
			for (const vfio_pfnmap_span &s : dma->spans)
				if (s.off > off) {
					m = std::min(n, s.off - off);
					break;
				}
			auto __user *va =
				reinterpret_cast<char *>(dma->vaddr + off);
			unsigned long left = write ? copy_to_user(va, p, m)
						   : copy_from_user(p, va, m);
			if (left)
				return -EFAULT;
		}
		p += m;
		off += m;
		n -= m;
	}
	return 0;
}

} // namespace

int vfio_iommu_type1_dma_rw(struct vfio_iommu *iommu, dma_addr_t iova,
			    void *buf, size_t len, bool write)
{
	if (!iommu || !buf || !len)
		return -EINVAL;
	const u64 last = iova + len - 1;
	if (last < iova)
		return -EFAULT;
	const int need = write ? IOMMU_WRITE : IOMMU_READ;

	std::shared_lock<RwLock> l(iommu->lock);

	/* First the whole range must translate with the permission. */
	for (u64 cur = iova;;) {
		type1_dma *dma = find_dma(iommu, cur);
		if (!dma || !(dma->prot & need))
			return -EFAULT;
		if (dma->last() >= last)
			break;
		cur = dma->last() + 1;
	}

	/* Then copy, mapping by mapping. */
	char *p = static_cast<char *>(buf);
	for (u64 cur = iova;;) {
		type1_dma *dma = find_dma(iommu, cur);
		u64 seg_last = std::min(dma->last(), last);
		u64 n = seg_last - cur + 1;
		/*
		 * Dirty as any DMA write the IOMMU translates, device memory
		 * included: the kernel's type1 reports a peer's BAR mapping
		 * as it reports the others (see the file comment).
		 */
		if (write && dma->bitmap)
			dma->set_dirty((cur - dma->iova) >> type1_pgshift,
				       (seg_last - dma->iova) >> type1_pgshift);
		if (dma_copy(dma, cur - dma->iova, p, n, write))
			return -EFAULT;
		if (seg_last == last)
			return 0;
		p += n;
		cur = seg_last + 1;
	}
}

int vfio_iommu_type1_pin_pages(struct vfio_iommu *iommu,
			       struct vfio_device *device, dma_addr_t user_iova,
			       int npage, int prot, void **pages)
{
	if (!iommu || !device || !pages || npage <= 0)
		return -EINVAL;
	if (npage > pin_pages_max_entries)
		return -E2BIG;
	/* Pinning is a v2 service. */
	if (!iommu->v2)
		return -EACCES;
	if (user_iova & (PAGE_SIZE - 1))
		return -EINVAL;
	if (!device->ops || !device->ops->dma_unmap)
		return -EINVAL;
	u64 last = user_iova + static_cast<u64>(npage) * PAGE_SIZE - 1;
	if (last < user_iova)
		return -EINVAL;

	std::unique_lock<RwLock> l(iommu->lock);
	/* Only a device that hears about unmaps may pin. */
	if (!is_attached(iommu, device))
		return -EINVAL;

	/* Check everything first, so that a failure pins nothing. */
	for (int i = 0; i < npage; i++) {
		type1_dma *dma = find_dma(iommu, user_iova + i * PAGE_SIZE);
		if (!dma)
			return -EINVAL;
		if ((dma->prot & prot) != prot)
			return -EPERM;
		/* Device memory has no struct page (the kernel: !pfn_valid). */
		if (find_span(dma, user_iova + i * PAGE_SIZE - dma->iova))
			return -EINVAL;
	}
	int done = 0;
	try {
		for (; done < npage; done++) {
			u64 iova = user_iova + done * PAGE_SIZE;
			type1_dma *dma = find_dma(iommu, iova);
			type1_pin &pin = dma->pins[iova][device];
			pin.count++;
			if (prot & IOMMU_WRITE) {
				pin.write = true;
				if (dma->bitmap) {
					u64 p = (iova - dma->iova) >> type1_pgshift;
					dma->set_dirty(p, p);
				}
			}
			pages[done] = reinterpret_cast<void *>(
				dma->vaddr + (iova - dma->iova));
		}
	} catch (const std::bad_alloc &) {
		/* Undo this call's pins (a dirty mark may stay: harmless). */
		u64 iova = user_iova + done * PAGE_SIZE;
		type1_dma *dma = find_dma(iommu, iova);
		auto pit = dma->pins.find(iova);
		if (pit != dma->pins.end() && pit->second.empty())
			dma->pins.erase(pit);
		l.unlock();
		if (done)
			vfio_iommu_type1_unpin_pages(iommu, device, user_iova,
						     done);
		return -ENOMEM;
	}
	return npage;
}

void vfio_iommu_type1_unpin_pages(struct vfio_iommu *iommu,
				  struct vfio_device *device,
				  dma_addr_t user_iova, int npage)
{
	if (WARN_ON(!iommu || !device || npage <= 0 ||
		    npage > pin_pages_max_entries))
		return;
	if (WARN_ON(user_iova & (PAGE_SIZE - 1)))
		return;

	std::unique_lock<RwLock> l(iommu->lock);
	for (int i = 0; i < npage; i++) {
		u64 iova = user_iova + i * PAGE_SIZE;
		type1_dma *dma = find_dma(iommu, iova);
		if (WARN_ON(!dma))
			continue;
		auto pit = dma->pins.find(iova);
		if (WARN_ON(pit == dma->pins.end()))
			continue;
		auto dit = pit->second.find(device);
		if (WARN_ON(dit == pit->second.end()))
			continue;
		if (--dit->second.count == 0) {
			pit->second.erase(dit);
			if (pit->second.empty())
				dma->pins.erase(pit);
		}
	}
}
