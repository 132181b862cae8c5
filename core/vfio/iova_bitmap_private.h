/* SPDX-License-Identifier: GPL-2.0-only */
/* Core-private knobs of iova_bitmap.cc (for tests). */
#ifndef UVFIO_CORE_IOVA_BITMAP_PRIVATE_H
#define UVFIO_CORE_IOVA_BITMAP_PRIVATE_H

#include <cstddef>

/*
 * Bytes of user bitmap per iova_bitmap window for bitmaps allocated from now
 * on, rounded up to a multiple of 8; 0 restores the default (2 MiB: the
 * bitmap memory one page of page pointers would pin in the kernel).
 */
void uvfio_iova_bitmap_set_window_bytes(size_t bytes);

/* The current setting, in bytes. */
size_t uvfio_iova_bitmap_window_bytes(void);

/*
 * iova_bitmap_take_bits() without its AVX-512 loop even where the CPU has
 * it, so the portable loop is tested on every machine.
 */
void uvfio_iova_bitmap_force_generic(bool on);

#endif /* UVFIO_CORE_IOVA_BITMAP_PRIVATE_H */
