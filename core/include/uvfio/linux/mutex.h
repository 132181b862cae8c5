/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * struct mutex with the kernel's calls, so driver locking reads as it would
 * in the kernel. The owner is tracked so that lockdep_assert_held() can check
 * the rule it documents instead of being a comment.
 */
#ifndef UVFIO_LINUX_MUTEX_H
#define UVFIO_LINUX_MUTEX_H

#include <atomic>
#include <pthread.h>
#include <thread>

#include <uvfio/linux/cleanup.h>

/*
 * An aggregate over a pthread mutex, so that it works wherever the kernel's
 * does: as a member with no initializer, and in memory from kzalloc()
 * (zeroed memory is an unlocked mutex, as PTHREAD_MUTEX_INITIALIZER is on
 * glibc; mutex_init() initializes it in any case), which lets a driver
 * kzalloc() a structure that embeds one, as kernel drivers do.
 */
struct mutex {
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	std::atomic<std::thread::id> owner{};
};

#define DEFINE_MUTEX(name) struct mutex name
static inline void mutex_init(struct mutex *lock)
{
	pthread_mutex_init(&lock->m, nullptr);
	lock->owner.store(std::thread::id(), std::memory_order_relaxed);
}
static inline void mutex_destroy(struct mutex *) {}

static inline void mutex_lock(struct mutex *lock)
{
	pthread_mutex_lock(&lock->m);
	lock->owner.store(std::this_thread::get_id(), std::memory_order_relaxed);
}

/* Returns 1 if the lock was taken, 0 if it is held elsewhere. */
static inline int mutex_trylock(struct mutex *lock)
{
	if (pthread_mutex_trylock(&lock->m))
		return 0;
	lock->owner.store(std::this_thread::get_id(), std::memory_order_relaxed);
	return 1;
}

static inline void mutex_unlock(struct mutex *lock)
{
	lock->owner.store(std::thread::id(), std::memory_order_relaxed);
	pthread_mutex_unlock(&lock->m);
}

/* No signals reach a uvfio thread: these never fail. */
static inline int mutex_lock_interruptible(struct mutex *lock)
{
	mutex_lock(lock);
	return 0;
}

static inline int mutex_lock_killable(struct mutex *lock)
{
	mutex_lock(lock);
	return 0;
}

static inline bool mutex_is_locked_by_me(struct mutex *lock)
{
	return lock->owner.load(std::memory_order_relaxed) ==
	       std::this_thread::get_id();
}

static inline bool mutex_is_locked(struct mutex *lock)
{
	return lock->owner.load(std::memory_order_relaxed) !=
	       std::thread::id();
}

/* lockdep_assert_held() on a mutex (spinlock.h adds spinlocks). */
static inline bool uvfio_lock_held_by_me(struct mutex *lock)
{
	return mutex_is_locked_by_me(lock);
}

void uvfio_lockdep_fail(const char *what, const char *file, int line);

/* The caller must hold lock; a violation is logged as a bug. */
#define lockdep_assert_held(lock)                                         \
	do {                                                              \
		if (!uvfio_lock_held_by_me(lock))                         \
			uvfio_lockdep_fail(#lock, __FILE__, __LINE__);    \
	} while (0)

/*
 * The kernel's guards (<linux/cleanup.h>): guard(mutex)(&lock);
 * scoped_guard(mutex, &lock) { ... }; scoped_cond_guard(mutex_try, ...)
 * and (mutex_intr, ...).
 */
DEFINE_GUARD(mutex, struct mutex *, mutex_lock(_T), mutex_unlock(_T))
DEFINE_GUARD_COND(mutex, _try, mutex_trylock(_T))
DEFINE_GUARD_COND(mutex, _intr, mutex_lock_interruptible(_T) == 0)

/*
 * Scoped lock for C++ callers: the unlock balances the lock on every path.
 * uvfio's older spelling of guard(mutex)(lock); both work.
 */
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
