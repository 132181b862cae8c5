/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Scope-based cleanup with the kernel's spellings (include/linux/cleanup.h):
 *
 *	guard(mutex)(&dev->state_mutex);
 *	scoped_guard(spinlock_irqsave, &dev->reset_lock) {
 *		...
 *	}
 *	scoped_cond_guard(mutex_intr, return -EINTR, &dev->lock) { ... }
 *
 * and the macros that define guards: DEFINE_GUARD, DEFINE_GUARD_COND,
 * DEFINE_LOCK_GUARD_1, DEFINE_LOCK_GUARD_1_COND, with the kernel's
 * arguments (the lock and unlock expressions name the guarded object _T).
 * The kernel builds them on __attribute__((cleanup)); here a guard is a C++
 * object whose destructor unlocks, which is what the attribute does, on
 * every way out of the scope (return, break, goto out of it). A `break`
 * inside scoped_guard leaves the guarded block, as in the kernel.
 *
 * DEFINE_FREE()/__free()/no_free_ptr()/return_ptr() are the kernel's too
 * (GCC and clang support the cleanup attribute in C++).
 */
#ifndef UVFIO_LINUX_CLEANUP_H
#define UVFIO_LINUX_CLEANUP_H

#define __UVFIO_PASTE_(a, b) a##b
#define __UVFIO_PASTE(a, b) __UVFIO_PASTE_(a, b)
#ifndef __UNIQUE_ID
#define __UNIQUE_ID(prefix) __UVFIO_PASTE(__UVFIO_PASTE(__UNIQUE_ID_, prefix), __COUNTER__)
#endif

#define __cleanup(func) __attribute__((__cleanup__(func)))

/* -------- __free(): a pointer freed when it goes out of scope -------- */

#define DEFINE_FREE(_name, _type, _free)                                  \
	static inline void __free_##_name(void *p)                        \
	{                                                                 \
		_type _T = *(_type *)p;                                   \
		_free;                                                    \
	}

#define __free(_name) __cleanup(__free_##_name)

/* Take the pointer out of the cleanup's reach. */
#define no_free_ptr(p)                                                    \
	({                                                                \
		auto __ptr = (p);                                         \
		(p) = nullptr;                                            \
		__ptr;                                                    \
	})

#define return_ptr(p) return no_free_ptr(p)

/* -------- guards -------- */

/* Constructs a guard without locking (for the _COND variants). */
struct uvfio_guard_nolock_t {};
inline constexpr uvfio_guard_nolock_t uvfio_guard_nolock{};

/*
 * DEFINE_GUARD(name, type, lock, unlock): guard(name)(obj) runs lock with
 * _T = obj now and unlock at the end of the scope.
 */
#define DEFINE_GUARD(_name, _type, _lock, _unlock)                        \
	struct class_##_name##_t {                                        \
		_type _T;                                                 \
		bool __done = false;                                      \
		explicit class_##_name##_t(_type __l) : _T(__l)           \
		{                                                         \
			_lock;                                            \
		}                                                         \
		class_##_name##_t(_type __l, uvfio_guard_nolock_t)        \
			: _T(__l)                                         \
		{                                                         \
		}                                                         \
		~class_##_name##_t()                                      \
		{                                                         \
			if (_T) {                                         \
				_unlock;                                  \
			}                                                 \
		}                                                         \
		class_##_name##_t(const class_##_name##_t &) = delete;    \
		class_##_name##_t &operator=(const class_##_name##_t &) = \
			delete;                                           \
		explicit operator bool() const { return _T != nullptr; }  \
	};

/*
 * DEFINE_GUARD_COND(name, ext, condlock): the guard name##ext takes the
 * lock with condlock (true when taken); use it with scoped_cond_guard().
 */
#define DEFINE_GUARD_COND(_name, _ext, _condlock)                         \
	struct class_##_name##_ext##_t : class_##_name##_t {              \
		explicit class_##_name##_ext##_t(                         \
			decltype(class_##_name##_t::_T) __l)              \
			: class_##_name##_t(__l, uvfio_guard_nolock)      \
		{                                                         \
			if (_T && !(_condlock))                           \
				_T = nullptr;                             \
		}                                                         \
	};

/*
 * DEFINE_LOCK_GUARD_1(name, type, lock, unlock, members...): a guard over a
 * type * that keeps members of its own (flags for _irqsave); lock and
 * unlock see the guard as _T (_T->lock, _T->flags).
 */
#define DEFINE_LOCK_GUARD_1(_name, _type, _lock, _unlock, ...)            \
	struct class_##_name##_t {                                        \
		_type *lock;                                              \
		__VA_OPT__(__VA_ARGS__;)                                  \
		bool __done = false;                                      \
		explicit class_##_name##_t(_type *__l) : lock(__l)        \
		{                                                         \
			class_##_name##_t *_T = this;                     \
			_lock;                                            \
		}                                                         \
		class_##_name##_t(_type *__l, uvfio_guard_nolock_t)       \
			: lock(__l)                                       \
		{                                                         \
		}                                                         \
		~class_##_name##_t()                                      \
		{                                                         \
			class_##_name##_t *_T = this;                     \
			if (_T->lock) {                                   \
				_unlock;                                  \
			}                                                 \
		}                                                         \
		class_##_name##_t(const class_##_name##_t &) = delete;    \
		class_##_name##_t &operator=(const class_##_name##_t &) = \
			delete;                                           \
		explicit operator bool() const { return lock != nullptr; } \
	};

#define DEFINE_LOCK_GUARD_1_COND(_name, _ext, _condlock)                  \
	struct class_##_name##_ext##_t : class_##_name##_t {              \
		explicit class_##_name##_ext##_t(                         \
			decltype(class_##_name##_t::lock) __l)            \
			: class_##_name##_t(__l, uvfio_guard_nolock)      \
		{                                                         \
			class_##_name##_t *_T = this;                     \
			if (_T->lock && !(_condlock))                     \
				_T->lock = nullptr;                       \
		}                                                         \
	};

/* CLASS(name, var)(args): a guard object named var. */
#define CLASS(_name, var) class_##_name##_t var

/* guard(name)(args): hold the lock to the end of the enclosing scope. */
#define guard(_name) CLASS(_name, __UNIQUE_ID(guard))

#define __uvfio_scoped_guard(_name, _id, ...)                             \
	for (CLASS(_name, _id)(__VA_ARGS__); _id && !_id.__done;          \
	     _id.__done = true)

/* scoped_guard(name, args) { ... }: hold the lock for the block. */
#define scoped_guard(_name, ...)                                          \
	__uvfio_scoped_guard(_name, __UNIQUE_ID(scope), __VA_ARGS__)

#define __uvfio_scoped_cond_guard(_name, _fail, _id, ...)                 \
	for (CLASS(_name, _id)(__VA_ARGS__); !_id.__done;                 \
	     _id.__done = true)                                           \
		if (!_id) {                                               \
			_fail;                                            \
		} else

/*
 * scoped_cond_guard(name, fail, args) { ... }: run the block with the lock
 * if the conditional guard took it, else run fail (e.g. return -EINTR).
 */
#define scoped_cond_guard(_name, _fail, ...)                              \
	__uvfio_scoped_cond_guard(_name, _fail, __UNIQUE_ID(scope),       \
				  __VA_ARGS__)

#endif /* UVFIO_LINUX_CLEANUP_H */
