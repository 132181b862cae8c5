/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * iova_bitmap: record dirty IOVA pages into a caller's (__user) bitmap, as
 * the kernel's <linux/iova_bitmap.h>.
 *
 * The bitmap describes [iova, iova + length) with one bit per page_size
 * page: bit i (u64 word i / 64, bit i % 64, words little-endian, starting at
 * bit 0 of the byte at data whatever data's alignment) stands for the page at
 * iova + i * page_size. It covers ((length - 1) / page_size) + 1 bits, and
 * only the ceil(bits / 8) bytes holding them are ever read or written.
 *
 * The bitmap is walked in windows: iova_bitmap_for_each() calls fn once per
 * window, in increasing IOVA order, with the IOVA range of a bounded chunk of
 * the bitmap; the windows together cover [iova, iova + length) exactly. From
 * fn, the driver calls iova_bitmap_set() for the dirty ranges it finds.
 * Bits are only ever set, never cleared: what the user's bitmap already
 * holds is kept.
 *
 * Not thread-safe: one walk at a time, and iova_bitmap_set() is called from
 * fn (or otherwise serialized with the walk).
 */
#ifndef UVFIO_LINUX_IOVA_BITMAP_H
#define UVFIO_LINUX_IOVA_BITMAP_H

#include <uvfio/linux/types.h>

struct iova_bitmap;

/* Called once per window; non-zero stops the walk and is returned. */
typedef int (*iova_bitmap_fn_t)(struct iova_bitmap *bitmap,
				unsigned long iova, size_t length,
				void *opaque);

/*
 * A bitmap for [iova, iova + length) at page_size granularity backed by the
 * user memory at data. ERR_PTR(-EINVAL) when length is 0 or page_size is not
 * a power of two, ERR_PTR(-EOVERFLOW) when iova + length - 1 wraps,
 * ERR_PTR(-ENOMEM). data is not touched here: a bad pointer makes
 * iova_bitmap_for_each() fail with -EFAULT.
 */
struct iova_bitmap *iova_bitmap_alloc(unsigned long iova, size_t length,
				      unsigned long page_size,
				      u64 __user *data);
void iova_bitmap_free(struct iova_bitmap *bitmap);

/*
 * Walk the whole bitmap, calling fn(bitmap, window_iova, window_length,
 * opaque) per window. Each window of the user's memory is pinned before fn
 * (-EFAULT without calling fn when it is not mapped writable) and bits are
 * set in it in place; where it can only be copied, it is copied in once
 * before fn and out once after it (also when fn fails), and only when fn
 * set a bit in it. Returns 0, fn's non-zero result, -EFAULT when the
 * user's bitmap cannot be read or written, or -ENOMEM. Each call walks the
 * whole bitmap from its first window.
 */
int iova_bitmap_for_each(struct iova_bitmap *bitmap, void *opaque,
			 iova_bitmap_fn_t fn);

/*
 * Mark [iova, iova + length) dirty. The range is clipped to the bitmap; the
 * parts outside the current window are not lost (later windows get them
 * when mapped, earlier ones are written to the user's memory directly).
 * Called outside a walk, it writes to the user's memory directly; a fault
 * there is then not reported.
 */
void iova_bitmap_set(struct iova_bitmap *bitmap, unsigned long iova,
		     size_t length);

/*
 * Mark dirty the pages whose bits are set in bits: bit i (word i / 64,
 * bit i % 64) stands for [iova + i * page_size, + page_size), for i below
 * nbits (bits past nbits in the last word are ignored). The same as
 * iova_bitmap_set() for each set bit, in one pass over the words: where
 * page_size is the bitmap's and the pages fall in the current window,
 * whole words are ORed into it. A uvfio addition, for drivers whose
 * tracker is itself a bitmap.
 */
void iova_bitmap_set_bits(struct iova_bitmap *bitmap, unsigned long iova,
			  unsigned long page_size, const u64 *bits, u64 nbits);

/*
 * iova_bitmap_set_bits(), and the words of bits (ceil(nbits / 64) of them)
 * are zero on return: for a tracker that hands over a buffer it owns (one
 * swapped out of the device's use), which is then read once and written
 * only where a bit was set. A uvfio addition.
 */
void iova_bitmap_take_bits(struct iova_bitmap *bitmap, unsigned long iova,
			   unsigned long page_size, u64 *bits, u64 nbits);

#endif /* UVFIO_LINUX_IOVA_BITMAP_H */
