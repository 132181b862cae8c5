// SPDX-License-Identifier: GPL-2.0-only
/*
 * The simulated DMA function's own DMA dirty tracker, what a device with
 * DMA logging keeps in its memory: a bit per guest page of the logged
 * ranges, set by the engine after each DMA write (simdev_log_dirty) and
 * reported and cleared a window at a time. Bitmaps come in chunks; a
 * REPORT that covers a whole chunk swaps it for a zeroed spare rather
 * than clearing it word by word, so DMA never waits for a REPORT.
 */
#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <thread>

#include <uvfio/sim/simdev.h>

#include "sim_types.h"

namespace {

constexpr u64 LOG_CP = SIMDEV_LOG_CHUNK_PAGES;
constexpr u64 LOG_CW = LOG_CP / 64;	/* words per chunk */

/*
 * Set bits [lo, hi] of a range's bitmap, after the DMA wrote the pages.
 * Always the RMW, with release, even for bits already set: the REPORT that
 * clears them then sees this write's data too, or leaves them set.
 *
 * Per chunk, the marker announces itself (markers + 1) before it loads
 * the chunk's buffer and leaves after its last OR. All four of those and
 * REPORT's swap and markers load are seq_cst: a marker that loaded the old
 * buffer incremented before the swap, so REPORT, which loads markers after
 * the swap, sees it until it has left (and then sees its ORs).
 */
void log_set_bits(const struct simdev_log_range &r, u64 lo, u64 hi)
{
	for (u64 c = lo / LOG_CP; c <= hi / LOG_CP; c++) {
		u64 base = c * LOG_CP;
		u64 clo = std::max(lo, base) - base;
		u64 chi = std::min(hi, base + LOG_CP - 1) - base;
		struct simdev_log_chunk &ch = r.chunks[c];
		std::atomic_ref<u32> markers(ch.markers);

		markers.fetch_add(1, std::memory_order_seq_cst);
		u64 *bits = std::atomic_ref<u64 *>(ch.bits).load(
			std::memory_order_seq_cst);
		for (u64 w = clo / 64; w <= chi / 64; w++) {
			u64 mask = ~0ULL;
			if (w == clo / 64)
				mask &= ~0ULL << (clo % 64);
			if (w == chi / 64)
				mask &= ~0ULL >> (63 - chi % 64);
			std::atomic_ref<u64>(bits[w]).fetch_or(
				mask, std::memory_order_release);
		}
		markers.fetch_sub(1, std::memory_order_seq_cst);
	}
}

void log_free_ranges(struct simdev *sd)
{
	for (auto &r : sd->log_ranges)
		std::free(r.chunks);
	sd->log_ranges.clear();
	std::free(sd->log_slab);
	sd->log_slab = nullptr;
	sd->log_spare = nullptr;
	sd->log_slab_bytes = 0;
	sd->log_table_bytes = 0;
}

/*
 * Report and clear a whole chunk: swap its buffer for the spare, wait for
 * the markers that may still hold the old one, then hand it to fn, which
 * reads it with plain loads (it is REPORT's alone now) and normally clears
 * it as it goes; else its non-zero cache lines are zeroed here. It is kept
 * as the spare.
 */
void log_report_chunk(struct simdev *sd, const struct simdev_log_range &r,
		      u64 c, simdev_log_bits_fn fn, void *arg)
{
	struct simdev_log_chunk &ch = r.chunks[c];
	u64 *old = std::atomic_ref<u64 *>(ch.bits).exchange(
		sd->log_spare, std::memory_order_seq_cst);
	std::atomic_ref<u32> markers(ch.markers);
	for (unsigned spins = 0; markers.load(std::memory_order_seq_cst);
	     spins++)
		if (spins >= 64)
			std::this_thread::yield();	/* one was preempted */

	const u64 first = r.first_page + c * LOG_CP;
	if (!fn(arg, first * sd->log_page_size, sd->log_page_size, old,
		LOG_CP))
		for (u64 l = 0; l < LOG_CW; l += 8)
			if ((old[l] | old[l + 1] | old[l + 2] | old[l + 3]) |
			    (old[l + 4] | old[l + 5] | old[l + 6] | old[l + 7]))
				std::memset(old + l, 0, 64);
	sd->log_spare = old;
}

/*
 * Report and clear bits [lo, hi] of chunk c (chunk-relative) with atomic
 * test-and-clear of each word, for chunks the window covers in part and a
 * range's last, shorter chunk. Runs of up to kBatch words go to fn.
 */
void log_report_atomic(struct simdev *sd, const struct simdev_log_range &r,
		       u64 c, u64 lo, u64 hi, simdev_log_bits_fn fn, void *arg)
{
	constexpr u64 kBatch = 512;
	u64 batch[kBatch];
	const u64 ps = sd->log_page_size;
	const u64 first = r.first_page + c * LOG_CP;
	u64 *bits = std::atomic_ref<u64 *>(r.chunks[c].bits).load(
		std::memory_order_relaxed);	/* only REPORT swaps it */
	const u64 wlo = lo / 64, whi = hi / 64;

	for (u64 b = wlo; b <= whi; b += kBatch) {
		u64 bend = std::min(whi, b + kBatch - 1);
		bool any_set = false;
		for (u64 w = b; w <= bend; w++) {
			/*
			 * Zero words are the common case: skip a cache line
			 * of them at a time (never the edge words, which are
			 * masked).
			 */
			if (w % 8 == 0 && w != wlo) {
				while (w + 8 <= bend) {
					u64 any = 0;
					for (u64 k = 0; k < 8; k++)
						any |= std::atomic_ref<u64>(
							       bits[w + k])
							       .load(std::memory_order_relaxed);
					if (any)
						break;
					for (u64 k = 0; k < 8; k++)
						batch[w - b + k] = 0;
					w += 8;
				}
			}
			u64 mask = ~0ULL;
			if (w == wlo)
				mask &= ~0ULL << (lo % 64);
			if (w == whi)
				mask &= ~0ULL >> (63 - hi % 64);
			std::atomic_ref<u64> word(bits[w]);
			u64 v = 0;
			/*
			 * Test-and-clear: a bit DMA sets after this is left
			 * for the next REPORT, none is lost. Bits outside
			 * the window stay as they are.
			 */
			if (word.load(std::memory_order_relaxed) & mask)
				v = mask == ~0ULL
					    ? word.exchange(
						      0, std::memory_order_acquire)
					    : word.fetch_and(
						      ~mask,
						      std::memory_order_acquire) &
						      mask;
			batch[w - b] = v;
			any_set |= v != 0;
		}
		if (any_set)
			fn(arg, (first + b * 64) * ps, ps, batch,
			   (bend - b + 1) * 64);
	}
}

} // namespace

int simdev_log_start(struct simdev *sd,
		     std::vector<std::pair<u64, u64>> ranges, u64 page_size)
{
	if (!page_size || (page_size & (page_size - 1)))
		return -EINVAL;
	for (const auto &[s, e] : ranges)
		if (s >= e)
			return -EINVAL;
	std::sort(ranges.begin(), ranges.end());

	/* Page spans [first, last]; ranges sharing a page get one bitmap. */
	std::vector<std::pair<u64, u64>> spans;
	u64 pages = 0;
	try {
		for (const auto &[s, e] : ranges) {
			u64 first = s / page_size, last = (e - 1) / page_size;
			if (!spans.empty() && first <= spans.back().second)
				spans.back().second =
					std::max(spans.back().second, last);
			else
				spans.emplace_back(first, last);
		}
	} catch (...) {
		return -ENOMEM;
	}
	for (const auto &[first, last] : spans) {
		if (last - first >= SIMDEV_LOG_MAX_PAGES - pages)
			return -E2BIG;
		pages += last - first + 1;
	}

	/* One allocation holds every buffer: ranges' words, then the spare. */
	u64 words = 0;
	bool whole = false;
	for (const auto &[first, last] : spans) {
		u64 n = last - first + 1;
		words += (n + 63) / 64;
		whole |= n >= LOG_CP;
	}
	u64 slab_words = words + (whole ? LOG_CW : 0);

	std::unique_lock<std::shared_mutex> l(sd->log_lock);
	if (sd->logging)
		return -EBUSY;
	try {
		/*
		 * calloc: a large bitmap costs memory only where DMA has
		 * marked pages, and START stays cheap.
		 */
		sd->log_slab = static_cast<u64 *>(std::calloc(slab_words, 8));
		if (!sd->log_slab)
			throw std::bad_alloc();
		sd->log_slab_bytes = slab_words * 8;
		sd->log_spare = whole ? sd->log_slab + words : nullptr;
		u64 *next = sd->log_slab;
		for (const auto &[first, last] : spans) {
			struct simdev_log_range r = {first, last - first + 1,
						     nullptr};
			u64 n = (r.nbits + LOG_CP - 1) / LOG_CP;
			r.chunks = static_cast<struct simdev_log_chunk *>(
				std::calloc(n, sizeof(*r.chunks)));
			if (!r.chunks)
				throw std::bad_alloc();
			sd->log_table_bytes += n * sizeof(*r.chunks);
			for (u64 c = 0; c < n; c++)
				r.chunks[c].bits = next + c * LOG_CW;
			next += (r.nbits + 63) / 64;
			try {
				sd->log_ranges.push_back(r);
			} catch (...) {
				std::free(r.chunks);
				throw;
			}
		}
	} catch (...) {
		log_free_ranges(sd);
		return -ENOMEM;
	}
	sd->log_page_size = page_size;
	sd->logging = true;
	return 0;
}

void simdev_log_stop(struct simdev *sd)
{
	std::unique_lock<std::shared_mutex> l(sd->log_lock);
	sd->logging = false;
	log_free_ranges(sd);
}

void simdev_log_dirty(struct simdev *sd, u64 iova, u64 len)
{
	if (!len)
		return;
	std::shared_lock<std::shared_mutex> l(sd->log_lock);
	if (!sd->logging)
		return;
	u64 ps = sd->log_page_size;
	u64 first = iova / ps;
	/* A write that wraps the IOVA space ends at its top. */
	u64 last = (len - 1 > ~0ULL - iova ? ~0ULL : iova + len - 1) / ps;
	for (const auto &r : sd->log_ranges) {
		u64 lo = std::max(first, r.first_page);
		u64 hi = std::min(last, r.first_page + r.nbits - 1);
		if (lo <= hi)
			log_set_bits(r, lo - r.first_page, hi - r.first_page);
	}
}

int simdev_log_read_and_clear_bits(struct simdev *sd, u64 iova, u64 length,
				   simdev_log_bits_fn fn, void *arg)
{
	std::lock_guard<std::mutex> rl(sd->log_report_lock);
	std::shared_lock<std::shared_mutex> l(sd->log_lock);
	if (!sd->logging)
		return -EINVAL;
	if (!length)
		return 0;
	const u64 ps = sd->log_page_size;
	const u64 first = iova / ps;
	const u64 last = (length - 1 > ~0ULL - iova ? ~0ULL
						    : iova + length - 1) / ps;

	for (const auto &r : sd->log_ranges) {
		if (r.first_page > last)
			break;	/* sorted */
		u64 lo = std::max(first, r.first_page);
		u64 hi = std::min(last, r.first_page + r.nbits - 1);
		if (lo > hi)
			continue;
		lo -= r.first_page;
		hi -= r.first_page;
		for (u64 c = lo / LOG_CP; c <= hi / LOG_CP; c++) {
			u64 base = c * LOG_CP;
			u64 clo = std::max(lo, base) - base;
			u64 chi = std::min(hi, base + LOG_CP - 1) - base;
			/* Whole chunks only: a short last one is never swapped. */
			if (clo == 0 && chi == LOG_CP - 1)
				log_report_chunk(sd, r, c, fn, arg);
			else
				log_report_atomic(sd, r, c, clo, chi, fn, arg);
		}
	}
	return 0;
}

namespace {

struct per_page {
	void (*fn)(void *arg, u64 page_iova, u64 page_size);
	void *arg;
};

bool per_page_bits(void *arg, u64 run_iova, u64 ps, u64 *bits, u64 nbits)
{
	auto *p = static_cast<per_page *>(arg);
	for (u64 w = 0; w < nbits / 64; w++)
		for (u64 v = bits[w]; v; v &= v - 1)
			p->fn(p->arg,
			      run_iova + (w * 64 + std::countr_zero(v)) * ps, ps);
	return false;
}

} // namespace

int simdev_log_read_and_clear(struct simdev *sd, u64 iova, u64 length,
			      void (*fn)(void *arg, u64 page_iova,
					 u64 page_size),
			      void *arg)
{
	per_page p = {fn, arg};
	return simdev_log_read_and_clear_bits(sd, iova, length, per_page_bits,
					      &p);
}

u64 simdev_log_bytes(struct simdev *sd)
{
	std::shared_lock<std::shared_mutex> l(sd->log_lock);
	return sd->log_slab_bytes + sd->log_table_bytes +
	       sd->log_ranges.size() * sizeof(struct simdev_log_range);
}
