/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kmalloc and friends, for C-style driver structures. Memory from these holds
 * no C++ objects: structures with constructors use new/delete.
 */
#ifndef UVFIO_LINUX_SLAB_H
#define UVFIO_LINUX_SLAB_H

#include <cstdlib>

#include <uvfio/linux/types.h>

static inline void *kmalloc(size_t size, gfp_t) { return std::malloc(size); }
static inline void *kzalloc(size_t size, gfp_t) { return std::calloc(1, size); }
static inline void *kcalloc(size_t n, size_t size, gfp_t)
{
	return std::calloc(n, size);
}
static inline void *krealloc(void *p, size_t size, gfp_t)
{
	return std::realloc(p, size);
}
static inline void *kvzalloc(size_t size, gfp_t) { return std::calloc(1, size); }
static inline void kfree(const void *p) { std::free(const_cast<void *>(p)); }
static inline void kvfree(const void *p) { std::free(const_cast<void *>(p)); }

#endif /* UVFIO_LINUX_SLAB_H */
