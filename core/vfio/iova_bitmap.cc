// SPDX-License-Identifier: GPL-2.0-only
/*
 * iova_bitmap: the counterpart of drivers/vfio/iova_bitmap.c, one file as
 * it is. Over 600 lines because of the uvfio-only bulk paths
 * (iova_bitmap_set_bits(), iova_bitmap_take_bits()), whose fast loops
 * work inside the mapped window and so belong with it.
 *
 * The kernel pins the user's bitmap a chunk ("window") at a time and sets
 * bits in the pinned pages. Here a window is pinned with uvfio_pin_user()
 * and bits are set in the user's memory in place: nothing is copied, and a
 * window where nothing is dirty costs the pin only. Where the memory can
 * only be copied (uvfio_pin_user() says -EOPNOTSUPP), the window is copied
 * into a kernel buffer with copy_from_user once, fn sets bits there, and
 * the buffer goes back with copy_to_user only if a bit was set in it. A
 * bad user pointer fails the walk with -EFAULT before fn sees the window.
 *
 * Window layout: window k is bytes [k * W, (k + 1) * W) of the user's bitmap
 * (W a multiple of 8), clipped to the ceil(nbits / 8) bytes the bitmap
 * occupies. Bits are set a byte at a time, so nothing past those bytes is
 * read or written, even when the last u64 word is partial.
 *
 * iova_bitmap_set() with a range that leaves the mapped window:
 *  - bits in later windows are kept in a short sorted list of pending bit
 *    ranges and set when their window is mapped (if the list is full, or no
 *    walk is mapping a window, they are written to the user's memory at once);
 *  - bits in earlier windows, whose pins are released, are written to the
 *    user's memory at once.
 * Writing to user memory outside a window is a read-modify-write of the
 * edge bytes and a plain write of 0xff for the bytes in between, through
 * copy_{from,to}_user; a failure there is remembered and returned by
 * iova_bitmap_for_each() as -EFAULT.
 */
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <immintrin.h>

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

std::atomic<bool> force_generic{false};	/* a test knob */
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
	u8 *buf;             /* copy mode's window, allocated when first used */

	/* The mapped window, valid while mapped (inside fn). */
	bool mapped;
	u8 *win;        /* its first byte: the user's (pinned) or buf */
	bool copied;    /* win is buf: write it back if touched */
	bool touched;   /* a bit was set in win */
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

/*
 * Set bits [lo, hi] (relative to the window's bit 0) in the mapped window,
 * a byte at a time: the window may start at any byte of the user's memory
 * and its last byte may be the bitmap's last.
 */
void win_set(struct iova_bitmap *b, u64 lo, u64 hi)
{
	u8 *p = b->win;
	u64 blo = lo / 8, bhi = hi / 8;
	u8 mlo = static_cast<u8>(0xffu << (lo % 8));
	u8 mhi = static_cast<u8>(0xffu >> (7 - hi % 8));

	b->touched = true;
	if (blo == bhi) {
		p[blo] |= mlo & mhi;
		return;
	}
	p[blo] |= mlo;
	std::memset(p + blo + 1, 0xff, bhi - blo - 1);
	p[bhi] |= mhi;
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
			win_set(b, lo - b->win_first, hi - b->win_first);
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

void uvfio_iova_bitmap_force_generic(bool on)
{
	force_generic.store(on, std::memory_order_relaxed);
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
	return b;
}

void iova_bitmap_free(struct iova_bitmap *bitmap)
{
	if (IS_ERR_OR_NULL(bitmap))
		return;
	kvfree(bitmap->buf);
	kfree(bitmap);
}

namespace {

/* Pin the window at user byte `byte`, n bytes, or copy it in: 0 or -errno. */
int window_map(struct iova_bitmap *b, u64 byte, size_t n)
{
	void *k;
	int ret = uvfio_pin_user(user_at(b, byte), n, &k);

	b->touched = false;
	if (!ret) {
		b->win = static_cast<u8 *>(k);
		b->copied = false;
		return 0;
	}
	if (ret != -EOPNOTSUPP)
		return ret;
	if (!b->buf) {
		b->buf = static_cast<u8 *>(kvzalloc(b->window_bytes, GFP_KERNEL));
		if (!b->buf)
			return -ENOMEM;
	}
	if (copy_from_user(b->buf, user_at(b, byte), n))
		return -EFAULT;
	b->win = b->buf;
	b->copied = true;
	return 0;
}

/* Release the window: a copied one goes back only if a bit changed. */
int window_unmap(struct iova_bitmap *b, u64 byte, size_t n)
{
	if (b->copied && b->touched &&
	    copy_to_user(user_at(b, byte), b->buf, n))
		return -EFAULT;
	return 0;
}

} // namespace

int iova_bitmap_for_each(struct iova_bitmap *b, void *opaque,
			 iova_bitmap_fn_t fn)
{
	int ret = 0;

	b->err = 0;
	b->npending = 0;
	for (u64 byte = 0; byte < b->nbytes;) {
		size_t n = static_cast<size_t>(
			std::min<u64>(b->window_bytes, b->nbytes - byte));

		ret = window_map(b, byte, n);
		if (ret)
			break;
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
		if (window_unmap(b, byte, n) && !ret)
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

	/* The common case: a driver reporting a page of the mapped window. */
	if (b->mapped && lo >= b->win_first && hi < b->win_end) {
		u64 wlo = lo - b->win_first;
		if (lo == hi) {
			b->win[wlo / 8] |= static_cast<u8>(1u << (wlo % 8));
			b->touched = true;
			return;
		}
		win_set(b, wlo, hi - b->win_first);
		return;
	}
	if (!b->mapped) {
		user_set(b, lo, hi);
		return;
	}
	if (lo < b->win_first)
		user_set(b, lo, std::min(hi, b->win_first - 1));
	if (hi >= b->win_first && lo < b->win_end)
		win_set(b, std::max(lo, b->win_first) - b->win_first,
			std::min(hi, b->win_end - 1) - b->win_first);
	if (hi >= b->win_end)
		pending_add(b, std::max(lo, b->win_end), hi);
}

namespace {

/*
 * iova_bitmap_set() per run of set bits in [lo, hi) of bits. A run that
 * ends at the top of the address space has no length that fits: its last
 * page goes on its own.
 */
void set_runs(struct iova_bitmap *b, unsigned long iova,
	      unsigned long page_size, const u64 *bits, u64 lo, u64 hi)
{
	u64 i = lo;
	while (i < hi) {
		u64 w = bits[i / 64] >> (i % 64);
		if (!w) {
			i = (i / 64 + 1) * 64;
			continue;
		}
		i += std::countr_zero(w);
		if (i >= hi)
			break;
		u64 j = i;
		while (j < hi && (bits[j / 64] >> (j % 64) & 1))
			j++;
		unsigned long run = iova + i * page_size;
		u64 n = j - i;
		if (n > 1 && (n - 1) * page_size > ULONG_MAX - run) {
			iova_bitmap_set(b, run, (n - 1) * page_size);
			iova_bitmap_set(b, run + (n - 1) * page_size,
					page_size);
		} else {
			iova_bitmap_set(b, run, n * page_size);
		}
		i = j;
	}
}

inline u64 load_u64(const u8 *p)
{
	u64 v;
	std::memcpy(&v, p, 8);
	return v;
}

inline void store_u64(u8 *p, u64 v)
{
	std::memcpy(p, &v, 8);
}

/* OR nwords words of bits into dst and zero them in bits, a word at a time. */
bool take_words_generic(u8 *dst, u64 *bits, u64 nwords)
{
	bool any = false;
	for (u64 k = 0; k < nwords; k++)
		if (u64 w = bits[k]) {
			store_u64(dst + k * 8, load_u64(dst + k * 8) | w);
			bits[k] = 0;
			any = true;
		}
	return any;
}

/*
 * OR nwords words of bits into dst and zero them in bits, in one pass over
 * both: a tracker's buffer is read once, and only its non-zero words are
 * written. Returns whether a bit was set. With AVX-512 a cache line of
 * each goes per step, the stores masked to the non-zero words, so there is
 * no branch per line to mispredict (at 0.1% dirty 40% of lines hold a
 * bit): 1.5x one memchr of the bitmap against 2.8x for a scan followed by
 * the ORs of the lines it found.
 */
__attribute__((target("avx512f"))) bool take_words_avx512(u8 *dst, u64 *bits,
							  u64 nwords)
{
	__m512i acc = _mm512_setzero_si512();
	u64 k = 0;
	for (; k + 8 <= nwords; k += 8) {
		__m512i v = _mm512_loadu_si512(bits + k);
		__mmask8 m = _mm512_test_epi64_mask(v, v);
		__m512i d = _mm512_maskz_loadu_epi64(m, dst + k * 8);
		_mm512_mask_storeu_epi64(dst + k * 8, m, _mm512_or_si512(d, v));
		_mm512_mask_storeu_epi64(bits + k, m, _mm512_setzero_si512());
		acc = _mm512_or_si512(acc, v);
	}
	bool any = _mm512_test_epi64_mask(acc, acc) != 0;
	/* The last words short of a cache line, a word at a time. */
	if (take_words_generic(dst + k * 8, bits + k, nwords - k))
		any = true;
	return any;
}

bool take_words(u8 *dst, u64 *bits, u64 nwords)
{
	static const bool avx512 = __builtin_cpu_supports("avx512f");
	return avx512 && !force_generic.load(std::memory_order_relaxed)
		       ? take_words_avx512(dst, bits, nwords)
		       : take_words_generic(dst, bits, nwords);
}

/*
 * iova_bitmap_set_bits(), or with take iova_bitmap_take_bits(): then bits'
 * words are zero on return.
 */
void set_bits(struct iova_bitmap *b, unsigned long iova,
	      unsigned long page_size, u64 *bits, u64 nbits, bool take)
{
	if (!nbits)
		return;
	const u64 nwords = (nbits + 63) / 64;
	if (take && nbits % 64 == 0 && b->mapped &&
	    page_size == (1UL << b->pgshift) && iova >= b->iova &&
	    !((iova - b->iova) & (page_size - 1))) {
		/* A tracker's buffer handed over whole: one pass, see above. */
		u64 first = (iova - b->iova) >> b->pgshift;
		if (first >= b->win_first && first < b->win_end &&
		    first % 8 == 0 && nbits <= b->win_end - first) {
			if (take_words(b->win + (first - b->win_first) / 8,
				       bits, nwords))
				b->touched = true;
			return;
		}
	}
	if (take) {
		set_bits(b, iova, page_size, bits, nbits, false);
		std::memset(bits, 0, nwords * 8);
		return;
	}
	if (!b->mapped || page_size != (1UL << b->pgshift)) {
		set_runs(b, iova, page_size, bits, 0, nbits);
		return;
	}
	/*
	 * Source bit i is bitmap bit i + off (off may be negative when the
	 * run starts below the bitmap; pages there are clipped), and the
	 * window holds bitmap bits [win_first, win_end): source bits [a, e).
	 * 128-bit arithmetic: none of this can wrap.
	 */
	using i128 = __int128;
	i128 delta = static_cast<i128>(iova) - static_cast<i128>(b->iova);
	i128 pgmask = (static_cast<i128>(1) << b->pgshift) - 1;
	if (delta & pgmask) {
		set_runs(b, iova, page_size, bits, 0, nbits);
		return;
	}
	i128 off = delta >> b->pgshift;
	i128 a = std::max<i128>(0, static_cast<i128>(b->win_first) - off);
	i128 e = std::min<i128>(nbits, static_cast<i128>(b->win_end) - off);
	if (a >= e) {
		set_runs(b, iova, page_size, bits, 0, nbits);
		return;
	}
	/* Outside the window: clipped, pending or written through. */
	set_runs(b, iova, page_size, bits, 0, static_cast<u64>(a));
	set_runs(b, iova, page_size, bits, static_cast<u64>(e), nbits);

	const u64 lo = static_cast<u64>(a), hi = static_cast<u64>(e) - 1;
	const i128 winbits = static_cast<i128>(b->win_end - b->win_first);
	/* Window bit of source bit 0: word k starts at q0 + 64 * k. */
	const i128 q0 = off - static_cast<i128>(b->win_first);
	u8 *win = b->win;
	bool any = false;

	/*
	 * The common case: all of it in the window at a byte boundary, so
	 * each source word ORs into 8 bytes of the window (the last word
	 * masked to nbits). Every word, zero or not: a sequential
	 * read-modify-write of the window beats skipping zero lines, whose
	 * branch is a coin toss at 0.1% dirty (40% of lines set), by 1.5x.
	 * The bytes written hold what they held or more bits.
	 */
	if (a == 0 && e == static_cast<i128>(nbits) && q0 >= 0 &&
	    q0 % 8 == 0 && q0 + static_cast<i128>(nwords) * 64 <= winbits) {
		u8 *dst = win + static_cast<u64>(q0) / 8;
		u64 k = 0;
		u64 full = nbits / 64;
		u64 acc = 0;
		for (; k < full; k++) {
			acc |= bits[k];
			store_u64(dst + k * 8, load_u64(dst + k * 8) | bits[k]);
		}
		any = acc != 0;
		for (; k < nwords; k++) {
			u64 w = bits[k];
			if (k == full)
				w &= ~0ULL >> (64 - nbits % 64);
			if (!w)
				continue;
			any = true;
			store_u64(dst + k * 8, load_u64(dst + k * 8) | w);
		}
		if (any)
			b->touched = true;
		return;
	}
	for (u64 k = lo / 64; k <= hi / 64; k++) {
		u64 w = bits[k];
		if (!w)
			continue;
		if (k == lo / 64)
			w &= ~0ULL << (lo % 64);
		if (k == hi / 64)
			w &= ~0ULL >> (63 - hi % 64);
		if (!w)
			continue;
		any = true;
		i128 q = q0 + static_cast<i128>(k) * 64;
		if (q >= 0 && q + 63 < winbits) {
			u64 bit = static_cast<u64>(q);
			u8 *p = win + bit / 8;
			unsigned s = bit % 8;
			if (!s) {
				store_u64(p, load_u64(p) | w);
			} else {
				store_u64(p, load_u64(p) | w << s);
				p[8] |= static_cast<u8>(w >> (64 - s));
			}
			continue;
		}
		/* A word across the window's edge: its bits inside, one by one. */
		for (; w; w &= w - 1) {
			u64 bit = static_cast<u64>(q + std::countr_zero(w));
			win[bit / 8] |= static_cast<u8>(1u << (bit % 8));
		}
	}
	if (any)
		b->touched = true;
}

} // namespace

void iova_bitmap_set_bits(struct iova_bitmap *b, unsigned long iova,
			  unsigned long page_size, const u64 *bits, u64 nbits)
{
	/* Read only: take is false. */
	set_bits(b, iova, page_size, const_cast<u64 *>(bits), nbits, false);
}

void iova_bitmap_take_bits(struct iova_bitmap *b, unsigned long iova,
			   unsigned long page_size, u64 *bits, u64 nbits)
{
	set_bits(b, iova, page_size, bits, nbits, true);
}
