// SPDX-License-Identifier: GPL-2.0-only
/*
 * The simulated DMA function's device memory (BAR2) as the engine, region
 * access and a migration driver reach it: one lock, so that its pre-copy
 * tracker, a bit per 4 KiB page written while tracking is on, sees every
 * write; stores through a user's mapping come in through simdev_wp.cc.
 */
#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include <uvfio/sim/simdev.h>

#include "sim_types.h"
#include "simdev_wp.h"

namespace {

/* Mark [off, off + len) of device memory dirty. Under mem_lock. */
void mem_mark_dirty(struct simdev *sd, u64 off, u64 len)
{
	if (!sd->mem_tracking || !len)
		return;
	for (u64 p = off / SIMDEV_MEM_PAGE; p <= (off + len - 1) / SIMDEV_MEM_PAGE;
	     p++) {
		u64 bit = 1ULL << (p % 64);
		if (!(sd->mem_dirty[p / 64] & bit)) {
			sd->mem_dirty[p / 64] |= bit;
			sd->mem_dirty_count++;
		}
	}
}

} // namespace

void simdev_mem_read(struct simdev *sd, u64 off, void *buf, size_t len)
{
	std::lock_guard<std::mutex> l(sd->mem_lock);
	std::memcpy(buf, sd->mem + off, len);
}

void simdev_mem_write(struct simdev *sd, u64 off, const void *buf,
		      size_t len)
{
	std::lock_guard<std::mutex> l(sd->mem_lock);
	std::memcpy(sd->mem + off, buf, len);
	mem_mark_dirty(sd, off, len);
}

int simdev_mem_track_start(struct simdev *sd)
{
	u64 words = (sd->mem_size / SIMDEV_MEM_PAGE + 63) / 64;
	std::lock_guard<std::mutex> l(sd->mem_lock);
	try {
		sd->mem_dirty.assign(words, 0);
	} catch (...) {
		return -ENOMEM;
	}
	sd->mem_dirty_count = 0;
	sd->mem_cursor = 0;
	sd->mem_tracking = true;
	simdev_wp_track(sd, true);
	return 0;
}

void simdev_mem_track_stop(struct simdev *sd)
{
	std::lock_guard<std::mutex> l(sd->mem_lock);
	sd->mem_tracking = false;
	simdev_wp_track(sd, false);
	std::vector<u64>().swap(sd->mem_dirty);
	sd->mem_dirty_count = 0;
}

bool simdev_mem_take_dirty(struct simdev *sd, u64 max_len, u64 *off,
			   u64 *len)
{
	std::lock_guard<std::mutex> l(sd->mem_lock);
	const u64 pages = sd->mem_size / SIMDEV_MEM_PAGE;
	const u64 max_pages = std::max<u64>(1, max_len / SIMDEV_MEM_PAGE);

	simdev_wp_fold(sd);
	if (!sd->mem_tracking || !sd->mem_dirty_count)
		return false;
	/* The first dirty page at or after the cursor, wrapping once. */
	u64 p = sd->mem_cursor % pages;
	for (u64 n = 0; n < pages; n++, p = (p + 1) % pages) {
		if (!(p % 64) && !sd->mem_dirty[p / 64] && n + 64 <= pages) {
			n += 63;
			p += 63;
			continue;
		}
		if (sd->mem_dirty[p / 64] & (1ULL << (p % 64)))
			break;
	}
	u64 first = p, count = 0;
	while (p < pages && count < max_pages &&
	       (sd->mem_dirty[p / 64] & (1ULL << (p % 64)))) {
		sd->mem_dirty[p / 64] &= ~(1ULL << (p % 64));
		sd->mem_dirty_count--;
		count++;
		p++;
	}
	sd->mem_cursor = p % pages;
	*off = first * SIMDEV_MEM_PAGE;
	*len = count * SIMDEV_MEM_PAGE;
	return true;
}

u64 simdev_mem_dirty_bytes(struct simdev *sd)
{
	std::lock_guard<std::mutex> l(sd->mem_lock);
	simdev_wp_fold(sd);
	return sd->mem_dirty_count * SIMDEV_MEM_PAGE;
}

void simdev_mem_mark_all(struct simdev *sd)
{
	std::lock_guard<std::mutex> l(sd->mem_lock);
	mem_mark_dirty(sd, 0, sd->mem_size);
}

void simdev_mem_note_mapped(struct simdev *sd)
{
	std::lock_guard<std::mutex> l(sd->mem_lock);
	sd->mem_mapped = true;
}

bool simdev_mem_was_mapped(struct simdev *sd)
{
	std::lock_guard<std::mutex> l(sd->mem_lock);
	return sd->mem_mapped;
}
