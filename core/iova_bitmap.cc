// SPDX-License-Identifier: GPL-2.0-only
/*
 * iova_bitmap: the counterpart of drivers/vfio/iova_bitmap.c.
 *
 * The kernel pins the user's bitmap a chunk at a time and sets bits in the
 * pinned pages. Here a chunk ("window") is copied into a kernel buffer with
 * copy_from_user, fn sets bits in the buffer, and the buffer goes back with
 * copy_to_user before the walk moves on; a bad user pointer therefore fails
 * the walk with -EFAULT instead of crashing.
 *
 * Window layout: window k is bytes [k * W, (k + 1) * W) of the user's bitmap
 * (W a multiple of 8, so buffer word j is user word k * W / 8 + j), clipped
 * to the ceil(nbits / 8) bytes the bitmap occupies. Nothing past those bytes
 * is read or written, even when the last u64 word is partial.
 *
 * iova_bitmap_set() with a range that leaves the mapped window:
 *  - bits in later windows are kept in a short sorted list of pending bit
 *    ranges and set when their window is mapped (if the list is full, or no
 *    walk is mapping a window, they are written to the user's memory at once);
 *  - bits in earlier windows, whose buffers are already written back, are
 *    written to the user's memory at once.
 * Writing to user memory directly is a read-modify-write of the edge bytes
 * and a plain write of 0xff for the bytes in between; a failure there is
 * remembered and returned by iova_bitmap_for_each() as -EFAULT.
 */
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>

#include <uvfio/linux/err.h>
#include <uvfio/linux/iova_bitmap.h>
#include <uvfio/linux/mm.h>
#include <uvfio/linux/slab.h>
#include <uvfio/linux/uaccess.h>

#include "iova_bitmap_private.h"

/*
 * Bit i lives in byte i / 8 at bit i % 8 only when u64 words are stored
 * little-endian, which the byte-granular window edges rely on.
 */
static_assert(std::endian::native == std::endian::little,
	      "iova_bitmap assumes a little-endian host");

namespace {

/* What one page of struct page pointers would pin: 512 pages of bitmap. */
constexpr size_t kDefaultWindowBytes =
	(PAGE_SIZE / sizeof(void *)) * PAGE_SIZE;

std::atomic<size_t> window_bytes_setting{kDefaultWindowBytes};

/* Pending ranges kept for later windows before falling back to user writes. */
constexpr unsigned kMaxPending = 32;

/* An inclusive range of bit indexes, relative to bit 0 of the bitmap. */
struct bit_range {
	u64 first;
	u64 last;
};

/* 0xff bytes to write over whole bytes of the user's bitmap. */
constexpr size_t kOnesBytes = 512;
constexpr std::array<u8, kOnesBytes> kOnes = [] {
	std::array<u8, kOnesBytes> a{};
	a.fill(0xff);
	return a;
}();

} // namespace

struct iova_bitmap {
	unsigned long iova;      /* first IOVA covered */
	unsigned long last_iova; /* iova + length - 1 */
	unsigned int pgshift;    /* log2(page_size) */
	u64 nbits;               /* pages covered */
	u64 nbytes;              /* bytes of user memory holding nbits bits */
	std::uintptr_t data;     /* the user's bitmap */

	size_t window_bytes; /* multiple of 8 */
	u64 *buf;            /* the mapped window, window_bytes / 8 words max */

	/* The mapped window, valid while mapped (inside fn). */
	bool mapped;
	u64 win_first;  /* its first bit */
	u64 win_end;    /* one past its last bit */

	/* Bits past the mapped window, sorted, disjoint and not adjacent. */
	bit_range pending[kMaxPending];
	unsigned int npending;

	int err; /* sticky -EFAULT from direct user writes during a walk */
};

namespace {

void __user *user_at(const struct iova_bitmap *b, u64 byte)
{
	/* Unsigned arithmetic: a wrapping address just fails the copy. */
	return reinterpret_cast<void __user *>(b->data +
					       static_cast<std::uintptr_t>(byte));
}

/* Set bits [lo, hi] (relative to the buffer's bit 0) in the window buffer. */
void buf_set(u64 *w, u64 lo, u64 hi)
{
	u64 wlo = lo / 64, whi = hi / 64;
	u64 mlo = ~0ULL << (lo % 64);
	u64 mhi = ~0ULL >> (63 - hi % 64);

	if (wlo == whi) {
		w[wlo] |= mlo & mhi;
		return;
	}
	w[wlo] |= mlo;
	std::fill(w + wlo + 1, w + whi, ~0ULL);
	w[whi] |= mhi;
}

/* OR mask into one byte of the user's bitmap. */
void user_or_byte(struct iova_bitmap *b, u64 byte, u8 mask)
{
	u8 v;

	if (copy_from_user(&v, user_at(b, byte), 1)) {
		b->err = -EFAULT;
		return;
	}
	if ((v & mask) == mask)
		return;
	v |= mask;
	if (copy_to_user(user_at(b, byte), &v, 1))
		b->err = -EFAULT;
}

/* Set bits [lo, hi] straight in the user's bitmap (outside any window). */
void user_set(struct iova_bitmap *b, u64 lo, u64 hi)
{
	u64 blo = lo / 8, bhi = hi / 8;
	u8 mlo = static_cast<u8>(0xffu << (lo % 8));
	u8 mhi = static_cast<u8>(0xffu >> (7 - hi % 8));

	if (blo == bhi) {
		user_or_byte(b, blo, mlo & mhi);
		return;
	}
	/* Whole bytes in [full, full_end); partial edge bytes get an RMW. */
	u64 full = blo, full_end = bhi + 1;
	if (mlo != 0xff) {
		user_or_byte(b, blo, mlo);
		full++;
	}
	if (mhi != 0xff) {
		user_or_byte(b, bhi, mhi);
		full_end--;
	}
	while (full < full_end) {
		size_t n = static_cast<size_t>(
			std::min<u64>(kOnesBytes, full_end - full));
		if (copy_to_user(user_at(b, full), kOnes.data(), n)) {
			b->err = -EFAULT;
			return;
		}
		full += n;
	}
}

/* Remember bits [lo, hi], all past the mapped window, for a later window. */
void pending_add(struct iova_bitmap *b, u64 lo, u64 hi)
{
	bit_range r = {lo, hi};
	unsigned int i = 0, j;

	/* Bit indexes are < nbits <= U64_MAX, so last + 1 cannot wrap. */
	while (i < b->npending && b->pending[i].last + 1 < r.first)
		i++;
	for (j = i; j < b->npending && b->pending[j].first <= r.last + 1;
	     j++) {
		r.first = std::min(r.first, b->pending[j].first);
		r.last = std::max(r.last, b->pending[j].last);
	}
	if (j == i && b->npending == kMaxPending) {
		/* Nothing to merge with and no room: write it now. */
		user_set(b, lo, hi);
		return;
	}
	/* Entries [i, j) collapse into r at index i. */
	std::memmove(&b->pending[i + 1], &b->pending[j],
		     (b->npending - j) * sizeof(b->pending[0]));
	b->pending[i] = r;
	b->npending = b->npending - (j - i) + 1;
}

/* Move the pending bits that fall in the just-mapped window into buf. */
void pending_apply(struct iova_bitmap *b)
{
	unsigned int out = 0;

	for (unsigned int k = 0; k < b->npending; k++) {
		bit_range p = b->pending[k];

		if (p.first < b->win_end && p.last >= b->win_first) {
			u64 lo = std::max(p.first, b->win_first);
			u64 hi = std::min(p.last, b->win_end - 1);
			buf_set(b->buf, lo - b->win_first, hi - b->win_first);
		}
		if (p.last < b->win_end)
			continue;
		p.first = std::max(p.first, b->win_end);
		b->pending[out++] = p;
	}
	b->npending = out;
}

/* Write out whatever is still pending (a walk that stopped early). */
void pending_flush(struct iova_bitmap *b)
{
	for (unsigned int k = 0; k < b->npending; k++)
		user_set(b, b->pending[k].first, b->pending[k].last);
	b->npending = 0;
}

} // namespace

void uvfio_iova_bitmap_set_window_bytes(size_t bytes)
{
	if (!bytes)
		bytes = kDefaultWindowBytes;
	else if (bytes > SIZE_MAX - 7)
		bytes = SIZE_MAX & ~static_cast<size_t>(7);
	else
		bytes = (bytes + 7) & ~static_cast<size_t>(7);
	window_bytes_setting.store(bytes, std::memory_order_relaxed);
}

size_t uvfio_iova_bitmap_window_bytes(void)
{
	return window_bytes_setting.load(std::memory_order_relaxed);
}

struct iova_bitmap *iova_bitmap_alloc(unsigned long iova, size_t length,
				      unsigned long page_size,
				      u64 __user *data)
{
	if (!length || !page_size || (page_size & (page_size - 1)))
		return ERR_CAST<struct iova_bitmap>(ERR_PTR(-EINVAL));
	if (length - 1 > ULONG_MAX - iova)
		return ERR_CAST<struct iova_bitmap>(ERR_PTR(-EOVERFLOW));

	auto *b = static_cast<struct iova_bitmap *>(
		kzalloc(sizeof(struct iova_bitmap), GFP_KERNEL));
	if (!b)
		return ERR_CAST<struct iova_bitmap>(ERR_PTR(-ENOMEM));

	b->iova = iova;
	b->last_iova = iova + (length - 1);
	b->pgshift = static_cast<unsigned int>(std::countr_zero(page_size));
	/* A shift, not a division: page_size may be 2^63. */
	b->nbits = ((static_cast<u64>(length) - 1) >> b->pgshift) + 1;
	b->nbytes = b->nbits / 8 + (b->nbits % 8 != 0);
	b->data = reinterpret_cast<std::uintptr_t>(data);

	/* No bigger than the bitmap, rounded up to whole words. */
	u64 span = (b->nbytes + 7) & ~7ULL;
	b->window_bytes = static_cast<size_t>(
		std::min<u64>(uvfio_iova_bitmap_window_bytes(), span));
	b->buf = static_cast<u64 *>(kvzalloc(b->window_bytes, GFP_KERNEL));
	if (!b->buf) {
		kfree(b);
		return ERR_CAST<struct iova_bitmap>(ERR_PTR(-ENOMEM));
	}
	return b;
}

void iova_bitmap_free(struct iova_bitmap *bitmap)
{
	if (IS_ERR_OR_NULL(bitmap))
		return;
	kvfree(bitmap->buf);
	kfree(bitmap);
}

int iova_bitmap_for_each(struct iova_bitmap *b, void *opaque,
			 iova_bitmap_fn_t fn)
{
	int ret = 0;

	b->err = 0;
	b->npending = 0;
	for (u64 byte = 0; byte < b->nbytes;) {
		size_t n = static_cast<size_t>(
			std::min<u64>(b->window_bytes, b->nbytes - byte));

		/* The tail of a short last word stays 0 and is never written. */
		b->buf[(n - 1) / 8] = 0;
		if (copy_from_user(b->buf, user_at(b, byte), n)) {
			ret = -EFAULT;
			break;
		}
		b->win_first = byte * 8;
		/* (byte + n) * 8 would wrap for a 2^61-byte bitmap's end. */
		b->win_end = byte + n == b->nbytes ? b->nbits : (byte + n) * 8;
		b->mapped = true;
		pending_apply(b);

		/* Bit indexes below nbits shifted by pgshift stay < length. */
		unsigned long win_iova = b->iova + (b->win_first << b->pgshift);
		unsigned long win_last =
			b->win_end == b->nbits
				? b->last_iova
				: b->iova + (b->win_end << b->pgshift) - 1;
		ret = fn(b, win_iova, win_last - win_iova + 1, opaque);

		b->mapped = false;
		if (copy_to_user(user_at(b, byte), b->buf, n) && !ret)
			ret = -EFAULT;
		if (!ret)
			ret = b->err;
		if (ret)
			break;
		byte += n;
	}
	/* Only a walk that stopped early leaves bits for later windows. */
	pending_flush(b);
	return ret;
}

void iova_bitmap_set(struct iova_bitmap *b, unsigned long iova, size_t length)
{
	if (!length)
		return;
	unsigned long last = length - 1 > ULONG_MAX - iova
				     ? ULONG_MAX
				     : iova + (length - 1);
	iova = std::max(iova, b->iova);
	last = std::min(last, b->last_iova);
	if (iova > last)
		return;

	u64 lo = (iova - b->iova) >> b->pgshift;
	u64 hi = (last - b->iova) >> b->pgshift;

	if (!b->mapped) {
		user_set(b, lo, hi);
		return;
	}
	if (lo < b->win_first)
		user_set(b, lo, std::min(hi, b->win_first - 1));
	if (hi >= b->win_first && lo < b->win_end)
		buf_set(b->buf, std::max(lo, b->win_first) - b->win_first,
			std::min(hi, b->win_end - 1) - b->win_first);
	if (hi >= b->win_end)
		pending_add(b, std::max(lo, b->win_end), hi);
}
