/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Error pointers: a pointer-returning function returns -errno encoded in the
 * top 4095 values of the address space, as in the kernel.
 *
 * In C, ERR_PTR() returns void *, which converts to any object pointer
 * without a cast. C++ does not convert void * implicitly, so here ERR_PTR()
 * and ERR_CAST() return a small value that converts to any object pointer
 * type: `return ERR_PTR(-EINVAL);` from a function returning struct file *
 * compiles as it does in the kernel. IS_ERR(), PTR_ERR() and
 * IS_ERR_OR_NULL() take any pointer, that value included.
 */
#ifndef UVFIO_LINUX_ERR_H
#define UVFIO_LINUX_ERR_H

#include <cstdint>

#define MAX_ERRNO 4095

#define IS_ERR_VALUE(x) \
	((unsigned long)(x) >= (unsigned long)-MAX_ERRNO)

/*
 * What ERR_PTR() and ERR_CAST() return: an error pointer of no type yet.
 * It becomes a pointer of the type it is returned, assigned or passed as
 * (void * included); static_cast<T *>(ERR_PTR(e)), as older uvfio drivers
 * wrote it, still works.
 */
struct uvfio_err_ptr {
	void *ptr;

	template <typename T> constexpr operator T *() const
	{
		return static_cast<T *>(ptr);
	}
};

static inline uvfio_err_ptr ERR_PTR(long error)
{
	return {reinterpret_cast<void *>(error)};
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

/* An error pointer of one type passed on as another, as in the kernel. */
static inline uvfio_err_ptr ERR_CAST(const void *ptr)
{
	return {const_cast<void *>(ptr)};
}

/* The explicit form uvfio code has used: ERR_CAST<T>(ptr). */
template <typename T> static inline T *ERR_CAST(const void *ptr)
{
	return reinterpret_cast<T *>(const_cast<void *>(ptr));
}

/* 0, or the error in ptr (the kernel's PTR_ERR_OR_ZERO). */
static inline int PTR_ERR_OR_ZERO(const void *ptr)
{
	return IS_ERR(ptr) ? (int)PTR_ERR(ptr) : 0;
}

#endif /* UVFIO_LINUX_ERR_H */
