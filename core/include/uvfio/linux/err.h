/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Error pointers: a pointer-returning function returns -errno encoded in the
 * top 4095 values of the address space, as in the kernel.
 */
#ifndef UVFIO_LINUX_ERR_H
#define UVFIO_LINUX_ERR_H

#include <cstdint>

#define MAX_ERRNO 4095

#define IS_ERR_VALUE(x) \
	((unsigned long)(x) >= (unsigned long)-MAX_ERRNO)

static inline void *ERR_PTR(long error)
{
	return reinterpret_cast<void *>(error);
}

static inline long PTR_ERR(const void *ptr)
{
	return reinterpret_cast<long>(ptr);
}

static inline bool IS_ERR(const void *ptr)
{
	return IS_ERR_VALUE(reinterpret_cast<std::uintptr_t>(ptr));
}

static inline bool IS_ERR_OR_NULL(const void *ptr)
{
	return !ptr || IS_ERR(ptr);
}

/* ERR_PTR() converts to any object pointer type, as void * does in C. */
template <typename T> static inline T *ERR_CAST(const void *ptr)
{
	return reinterpret_cast<T *>(const_cast<void *>(ptr));
}

#endif /* UVFIO_LINUX_ERR_H */
