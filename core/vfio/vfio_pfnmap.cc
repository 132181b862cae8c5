// SPDX-License-Identifier: GPL-2.0-only
/*
 * Device memory mappings for the IOMMU model: the record of which memory
 * files are device memory (filled by the device fd's mmap), and MAP_DMA's
 * walk of a user range over the process's VMAs (see vfio_pfnmap.h).
 *
 * Locking: the registry mutex is a leaf. Each record has its own mutex
 * and a count of accesses in flight, so that unregistration can wait for
 * them without holding anything an access needs; an access holds no core
 * lock while it runs the driver's dma_rw (the IOMMU model's read lock is
 * the caller's).
 */
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

#include <uvfio/linux/unique_fd.h>

#include "procmap.h"
#include "vfio_pfnmap.h"

struct vfio_pfnmap {
	struct vfio_device *device = nullptr;
	/* The driver's vma, with its vm_ops and private data. */
	struct vm_area_struct vma = {};
	/* Device offset = file offset + delta. */
	u64 delta = 0;

	std::mutex lock;
	std::condition_variable idle;
	unsigned int inflight = 0;
	bool dead = false;	/* the device was unregistered */
};

namespace {

using pfnmap_key = std::pair<u64, u64>;	/* (st_dev, st_ino) */

struct pfnmap_registry {
	std::mutex lock;
	std::map<pfnmap_key, std::shared_ptr<vfio_pfnmap>> files;
};

pfnmap_registry &registry()
{
	static pfnmap_registry r;
	return r;
}

std::shared_ptr<vfio_pfnmap> lookup(u64 dev, u64 ino)
{
	pfnmap_registry &r = registry();
	std::lock_guard<std::mutex> l(r.lock);
	auto it = r.files.find({dev, ino});
	return it == r.files.end() ? nullptr : it->second;
}

bool registry_empty()
{
	pfnmap_registry &r = registry();
	std::lock_guard<std::mutex> l(r.lock);
	return r.files.empty();
}

/*
 * The VMAs covering [lo, hi] (in order; a hole ends the list early) by
 * PROCMAP_QUERY. 1 done, 0 not supported here (ask /proc/self/maps).
 */
int vmas_by_query(int fd, u64 lo, u64 hi, std::vector<vfio_vma_info> *out)
{
	for (u64 addr = lo;;) {
		struct procmap_query q = {};
		q.size = sizeof(q);
		q.query_addr = addr;
		if (ioctl(fd, PROCMAP_QUERY_IOCTL, &q)) {
			if (errno == ENOTTY || errno == EINVAL)
				return out->empty() ? 0 : 1;
			return 1;	/* ENOENT: a hole */
		}
		vfio_vma_info v;
		v.start = q.vma_start;
		v.end = q.vma_end;
		v.offset = q.vma_offset;
		v.dev = makedev(q.dev_major, q.dev_minor);
		v.ino = q.inode;
		v.readable = q.vma_flags & PROCMAP_QUERY_VMA_READABLE;
		v.writable = q.vma_flags & PROCMAP_QUERY_VMA_WRITABLE;
		out->push_back(v);
		if (!v.end || v.end - 1 >= hi)
			return 1;
		addr = v.end;
	}
}


} // namespace

void vfio_vmas_by_text(const std::string &maps, u64 lo, u64 hi,
		       std::vector<vfio_vma_info> *out)
{
	u64 cur = lo;
	for (const char *p = maps.c_str(); *p;) {
		const char *nl = std::strchr(p, '\n');
		std::string line(p, nl ? static_cast<size_t>(nl - p)
				       : std::strlen(p));
		p = nl ? nl + 1 : p + std::strlen(p);

		/* start-end perms offset major:minor inode [path] */
		char perms[8] = {};
		unsigned long long start, end, off, ino;
		unsigned int maj, min;
		if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %x:%x %llu",
				&start, &end, perms, &off, &maj, &min,
				&ino) != 7 ||
		    end <= start || end - 1 < cur)
			continue;
		if (start > cur)
			return;	/* a hole */
		vfio_vma_info v;
		v.start = start;
		v.end = end;
		v.offset = off;
		v.dev = makedev(maj, min);
		v.ino = ino;
		v.readable = perms[0] == 'r';
		v.writable = perms[1] == 'w';
		out->push_back(v);
		if (end - 1 >= hi)
			return;
		cur = end;
	}
}

int vfio_vmas_by_query(u64 lo, u64 hi, std::vector<vfio_vma_info> *out)
{
	UniqueFD maps(open("/proc/self/maps", O_RDONLY | O_CLOEXEC));
	if (!maps.is_valid())
		return 0;
	return vmas_by_query(maps.get(), lo, hi, out);
}

int vfio_pfnmap_record(struct vfio_device *device,
		       const struct vm_area_struct *vma)
{
	if (!vma->vm_ops || !vma->vm_ops->dma_rw || vma->backing_fd < 0)
		return 0;
	struct stat st;
	if (fstat(vma->backing_fd, &st))
		return -errno;
	const u64 delta = (static_cast<u64>(vma->vm_pgoff) << PAGE_SHIFT) -
			  static_cast<u64>(vma->backing_offset);

	pfnmap_registry &r = registry();
	std::lock_guard<std::mutex> l(r.lock);
	std::shared_ptr<vfio_pfnmap> &slot =
		r.files[{static_cast<u64>(st.st_dev), static_cast<u64>(st.st_ino)}];
	/* The same file mapped again (the usual case): nothing new. */
	if (slot && slot->device == device && slot->delta == delta &&
	    slot->vma.vm_ops == vma->vm_ops &&
	    slot->vma.vm_private_data == vma->vm_private_data)
		return 0;
	auto map = std::make_shared<vfio_pfnmap>();
	map->device = device;
	map->vma = *vma;
	map->vma.vm_start = 0;
	map->vma.vm_end = 0;
	map->vma.backing_fd = -1;	/* the driver's fd: not ours to keep */
	map->delta = delta;
	/*
	 * One device offset per file: a driver mapping one file at two
	 * offsets is the later mapping's (spans already made keep theirs).
	 */
	slot = std::move(map);
	return 0;
}

void vfio_pfnmap_forget_device(struct vfio_device *device)
{
	std::vector<std::shared_ptr<vfio_pfnmap>> gone;
	{
		pfnmap_registry &r = registry();
		std::lock_guard<std::mutex> l(r.lock);
		for (auto it = r.files.begin(); it != r.files.end();) {
			if (it->second->device == device) {
				gone.push_back(std::move(it->second));
				it = r.files.erase(it);
			} else {
				++it;
			}
		}
	}
	for (auto &map : gone) {
		std::unique_lock<std::mutex> l(map->lock);
		map->dead = true;
		map->idle.wait(l, [&] { return map->inflight == 0; });
	}
}

int vfio_pfnmap_rw(vfio_pfnmap *map, u64 pos, void *buf, size_t len,
		   bool write)
{
	{
		std::lock_guard<std::mutex> l(map->lock);
		if (map->dead)
			return -EFAULT;
		map->inflight++;
	}
	int ret = map->vma.vm_ops->dma_rw(&map->vma, pos, buf, len, write);
	{
		std::lock_guard<std::mutex> l(map->lock);
		if (--map->inflight == 0 && map->dead)
			map->idle.notify_all();
	}
	return ret ? -EFAULT : 0;
}

int vfio_pfnmap_resolve(unsigned long vaddr, u64 size, int prot,
			std::vector<vfio_pfnmap_span> *spans)
{
	/* No device memory was mapped: no VMA walk. */
	if (registry_empty())
		return 0;
	const u64 hi = vaddr + size - 1;
	std::vector<vfio_vma_info> vmas;
	{
		UniqueFD maps(open("/proc/self/maps", O_RDONLY | O_CLOEXEC));
		/* Without procfs, every range is ordinary memory. */
		if (!maps.is_valid())
			return 0;
		if (!vmas_by_query(maps.get(), vaddr, hi, &vmas))
			vfio_vmas_by_text(procfs_read_all(maps.get()), vaddr, hi, &vmas);
	}

	u64 cur = vaddr;
	for (const vfio_vma_info &v : vmas) {
		if (v.start > cur || v.end <= cur)
			return -EFAULT;	/* a hole */
		u64 end = std::min<u64>(v.end - 1, hi) + 1;
		std::shared_ptr<vfio_pfnmap> map =
			v.ino ? lookup(v.dev, v.ino) : nullptr;
		if (map) {
			/*
			 * follow_fault_pfn: the access must be allowed. The
			 * kernel's fault would also refuse a BAR whose memory
			 * decode is off; uvfio's BAR mmaps do not depend on
			 * it, so neither does this (the DMA itself does).
			 */
			if (((prot & IOMMU_WRITE) && !v.writable) ||
			    ((prot & IOMMU_READ) && !v.readable))
				return -EFAULT;
			u64 pos = v.offset + (cur - v.start) + map->delta;
			vfio_pfnmap_span *last =
				spans->empty() ? nullptr : &spans->back();
			if (last && last->map == map &&
			    last->off + last->len == cur - vaddr &&
			    last->pos + last->len == pos)
				last->len += end - cur;
			else
				spans->push_back({cur - vaddr, end - cur, pos,
						  map});
		}
		cur = end;
		if (cur - 1 == hi)
			return 0;
	}
	return -EFAULT;	/* the walk stopped at a hole */
}
