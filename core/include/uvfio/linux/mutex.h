/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * struct mutex with the kernel's calls, so driver locking reads as it would
 * in the kernel. The owner is tracked so that lockdep_assert_held() can check
 * the rule it documents instead of being a comment.
 */
#ifndef UVFIO_LINUX_MUTEX_H
#define UVFIO_LINUX_MUTEX_H

#include <atomic>
#include <mutex>
#include <thread>

struct mutex {
	std::mutex m;
	std::atomic<std::thread::id> owner{};
};

static inline void mutex_init(struct mutex *) {}
static inline void mutex_destroy(struct mutex *) {}

static inline void mutex_lock(struct mutex *lock)
{
	lock->m.lock();
	lock->owner.store(std::this_thread::get_id(), std::memory_order_relaxed);
}

/* Returns 1 if the lock was taken, 0 if it is held elsewhere. */
static inline int mutex_trylock(struct mutex *lock)
{
	if (!lock->m.try_lock())
		return 0;
	lock->owner.store(std::this_thread::get_id(), std::memory_order_relaxed);
	return 1;
}

static inline void mutex_unlock(struct mutex *lock)
{
	lock->owner.store(std::thread::id(), std::memory_order_relaxed);
	lock->m.unlock();
}

static inline bool mutex_is_locked_by_me(struct mutex *lock)
{
	return lock->owner.load(std::memory_order_relaxed) ==
	       std::this_thread::get_id();
}

void uvfio_lockdep_fail(const char *what, const char *file, int line);

/* The caller must hold lock; a violation is logged as a bug. */
#define lockdep_assert_held(lock)                                         \
	do {                                                              \
		if (!mutex_is_locked_by_me(lock))                         \
			uvfio_lockdep_fail(#lock, __FILE__, __LINE__);    \
	} while (0)

/* Scoped lock for C++ callers: the unlock balances the lock on every path. */
class mutex_guard
{
public:
	explicit mutex_guard(struct mutex *lock) : lock_(lock) { mutex_lock(lock_); }
	~mutex_guard() { mutex_unlock(lock_); }
	mutex_guard(const mutex_guard &) = delete;
	mutex_guard &operator=(const mutex_guard &) = delete;

private:
	struct mutex *lock_;
};

#endif /* UVFIO_LINUX_MUTEX_H */
