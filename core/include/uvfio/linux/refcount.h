/* SPDX-License-Identifier: GPL-2.0-only */
/* refcount_t and struct kref with the kernel's calls. */
#ifndef UVFIO_LINUX_REFCOUNT_H
#define UVFIO_LINUX_REFCOUNT_H

#include <atomic>

struct refcount_t {
	std::atomic<unsigned int> refs{0};
};

static inline void refcount_set(refcount_t *r, unsigned int n)
{
	r->refs.store(n, std::memory_order_relaxed);
}

static inline unsigned int refcount_read(const refcount_t *r)
{
	return r->refs.load(std::memory_order_relaxed);
}

static inline void refcount_inc(refcount_t *r)
{
	r->refs.fetch_add(1, std::memory_order_relaxed);
}

/* Take a reference unless the count already reached zero. */
static inline bool refcount_inc_not_zero(refcount_t *r)
{
	unsigned int old = r->refs.load(std::memory_order_relaxed);
	do {
		if (!old)
			return false;
	} while (!r->refs.compare_exchange_weak(old, old + 1,
						std::memory_order_acquire,
						std::memory_order_relaxed));
	return true;
}

/* Drop a reference; true when it was the last one. */
static inline bool refcount_dec_and_test(refcount_t *r)
{
	return r->refs.fetch_sub(1, std::memory_order_acq_rel) == 1;
}

struct kref {
	refcount_t refcount;
};

static inline void kref_init(struct kref *k) { refcount_set(&k->refcount, 1); }
static inline void kref_get(struct kref *k) { refcount_inc(&k->refcount); }

/* Drop a reference and call release on the last one. Returns 1 if called. */
static inline int kref_put(struct kref *k, void (*release)(struct kref *))
{
	if (refcount_dec_and_test(&k->refcount)) {
		release(k);
		return 1;
	}
	return 0;
}

#endif /* UVFIO_LINUX_REFCOUNT_H */
