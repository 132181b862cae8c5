/* SPDX-License-Identifier: GPL-2.0-only */
/* struct completion: a one-way "it is done" signal with a count. */
#ifndef UVFIO_LINUX_COMPLETION_H
#define UVFIO_LINUX_COMPLETION_H

#include <chrono>
#include <condition_variable>
#include <mutex>

struct completion {
	std::mutex m;
	std::condition_variable cv;
	unsigned int done = 0;
};

static inline void init_completion(struct completion *x)
{
	std::lock_guard<std::mutex> l(x->m);
	x->done = 0;
}

static inline void complete(struct completion *x)
{
	std::lock_guard<std::mutex> l(x->m);
	x->done++;
	x->cv.notify_all();
}

static inline void wait_for_completion(struct completion *x)
{
	std::unique_lock<std::mutex> l(x->m);
	x->cv.wait(l, [x] { return x->done > 0; });
	x->done--;
}

/* Consume one completion if there is one. True if one was consumed. */
static inline bool try_wait_for_completion(struct completion *x)
{
	std::lock_guard<std::mutex> l(x->m);
	if (!x->done)
		return false;
	x->done--;
	return true;
}

/*
 * Wait at most timeout_ms. Returns the remaining time in ms (at least 1) if
 * the completion came, 0 on timeout.
 */
static inline long wait_for_completion_timeout_ms(struct completion *x,
						  long timeout_ms)
{
	using clock = std::chrono::steady_clock;
	auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
	std::unique_lock<std::mutex> l(x->m);
	if (!x->cv.wait_until(l, deadline, [x] { return x->done > 0; }))
		return 0;
	x->done--;
	auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
		deadline - clock::now());
	return left.count() > 0 ? left.count() : 1;
}

#endif /* UVFIO_LINUX_COMPLETION_H */
