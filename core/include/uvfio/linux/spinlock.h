/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * spinlock_t with the kernel's calls (include/linux/spinlock.h), so a
 * driver's short critical sections (a reset flag taken from reset_done,
 * a counter a device thread bumps) read as they will in the kernel.
 *
 * A uvfio thread is never interrupted by the device: the _irq, _irqsave
 * and _bh forms lock like spin_lock() and flags carries nothing. Underneath
 * is a std::mutex, so ThreadSanitizer sees the lock; it may sleep where a
 * kernel spinlock would spin, so nothing here catches sleeping under a
 * spinlock, which the kernel forbids: keep the sections short and call
 * nothing that sleeps (mutex_lock, copy_to_user, kzalloc(GFP_KERNEL)) in
 * them.
 */
#ifndef UVFIO_LINUX_SPINLOCK_H
#define UVFIO_LINUX_SPINLOCK_H

#include <atomic>
#include <mutex>
#include <thread>

#include <uvfio/linux/cleanup.h>
#include <uvfio/linux/mutex.h>

typedef struct spinlock {
	std::mutex m;
	std::atomic<std::thread::id> owner{};
} spinlock_t;

#define DEFINE_SPINLOCK(x) spinlock_t x
#define spin_lock_init(lock) ((void)(lock))

static inline void spin_lock(spinlock_t *lock)
{
	lock->m.lock();
	lock->owner.store(std::this_thread::get_id(), std::memory_order_relaxed);
}

static inline void spin_unlock(spinlock_t *lock)
{
	lock->owner.store(std::thread::id(), std::memory_order_relaxed);
	lock->m.unlock();
}

/* 1 if taken, 0 if held elsewhere. */
static inline int spin_trylock(spinlock_t *lock)
{
	if (!lock->m.try_lock())
		return 0;
	lock->owner.store(std::this_thread::get_id(), std::memory_order_relaxed);
	return 1;
}

static inline int spin_is_locked(spinlock_t *lock)
{
	return lock->owner.load(std::memory_order_relaxed) != std::thread::id();
}

static inline void spin_lock_irq(spinlock_t *lock) { spin_lock(lock); }
static inline void spin_unlock_irq(spinlock_t *lock) { spin_unlock(lock); }
static inline void spin_lock_bh(spinlock_t *lock) { spin_lock(lock); }
static inline void spin_unlock_bh(spinlock_t *lock) { spin_unlock(lock); }

#define spin_lock_irqsave(lock, flags)                                    \
	do {                                                              \
		(flags) = 0;                                              \
		spin_lock(lock);                                          \
	} while (0)

#define spin_unlock_irqrestore(lock, flags)                               \
	do {                                                              \
		(void)(flags);                                            \
		spin_unlock(lock);                                        \
	} while (0)

static inline bool uvfio_lock_held_by_me(spinlock_t *lock)
{
	return lock->owner.load(std::memory_order_relaxed) ==
	       std::this_thread::get_id();
}

/* The caller must hold lock; a violation is logged as a bug. */
#define assert_spin_locked(lock) lockdep_assert_held(lock)

/* guard(spinlock)(&l); scoped_guard(spinlock_irqsave, &l) { ... } */
DEFINE_LOCK_GUARD_1(spinlock, spinlock_t, spin_lock(_T->lock),
		    spin_unlock(_T->lock))
DEFINE_LOCK_GUARD_1_COND(spinlock, _try, spin_trylock(_T->lock))
DEFINE_LOCK_GUARD_1(spinlock_irq, spinlock_t, spin_lock_irq(_T->lock),
		    spin_unlock_irq(_T->lock))
DEFINE_LOCK_GUARD_1(spinlock_bh, spinlock_t, spin_lock_bh(_T->lock),
		    spin_unlock_bh(_T->lock))
DEFINE_LOCK_GUARD_1(spinlock_irqsave, spinlock_t,
		    spin_lock_irqsave(_T->lock, _T->flags),
		    spin_unlock_irqrestore(_T->lock, _T->flags),
		    unsigned long flags)

#endif /* UVFIO_LINUX_SPINLOCK_H */
