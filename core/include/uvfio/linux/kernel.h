/* SPDX-License-Identifier: GPL-2.0-only */
/* The kernel's everyday helpers, for driver code. */
#ifndef UVFIO_LINUX_KERNEL_H
#define UVFIO_LINUX_KERNEL_H

#include <cerrno>
#include <cstddef>
#include <cstring>

#include <uvfio/linux/err.h>
#include <uvfio/linux/types.h>

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Offset of the first byte past member in type. */
#define offsetofend(type, member) \
	(offsetof(type, member) + sizeof(((type *)nullptr)->member))

/*
 * The structure embedding *ptr as member. Driver structures often hold C++
 * members (std::mutex, std::vector) that make them non-standard-layout;
 * offsetof on them is conditionally supported and fine for the non-virtual
 * types drivers use, so the warning is silenced here, once.
 */
#define container_of(ptr, type, member)                                      \
	({                                                                   \
		_Pragma("GCC diagnostic push")                               \
		_Pragma("GCC diagnostic ignored \"-Winvalid-offsetof\"")      \
		type *__c = reinterpret_cast<type *>(                        \
			reinterpret_cast<char *>(ptr) - offsetof(type, member)); \
		_Pragma("GCC diagnostic pop")                                \
		__c;                                                         \
	})

/*
 * min_t/max_t as in the kernel. Plain min()/max()/clamp() cannot be macros
 * here: they would break std::min( and std::max( in C++ code that includes
 * this header; write min_t() (or std::min) instead.
 */
#define min_t(type, x, y)                                                 \
	({                                                                \
		type __x = (x);                                           \
		type __y = (y);                                           \
		__x < __y ? __x : __y;                                    \
	})
#define max_t(type, x, y)                                                 \
	({                                                                \
		type __x = (x);                                           \
		type __y = (y);                                           \
		__x > __y ? __x : __y;                                    \
	})

#define U32_MAX ((u32)~0U)
#define U64_MAX ((u64)~0ULL)

#define BIT(nr) (1UL << (nr))
#define BIT_ULL(nr) (1ULL << (nr))

/*
 * WARN_ON: the condition is a driver or core bug. It is logged with its
 * location and evaluated like the kernel's (the value is returned).
 */
void uvfio_warn_on(const char *cond, const char *file, int line);
#define WARN_ON(cond)                                                  \
	({                                                             \
		bool __w = !!(cond);                                   \
		if (unlikely(__w))                                     \
			uvfio_warn_on(#cond, __FILE__, __LINE__);      \
		__w;                                                   \
	})

#endif /* UVFIO_LINUX_KERNEL_H */
