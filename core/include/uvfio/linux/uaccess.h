/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Copies between driver memory and the caller's (__user) memory.
 *
 * As in the kernel they return the number of bytes NOT copied (0 on success),
 * and a driver turns a non-zero result into -EFAULT. A bad user pointer is
 * detected, not dereferenced: the copy goes through process_vm_readv(2) /
 * process_vm_writev(2) on this process, so an unmapped or read-only address
 * fails the copy instead of crashing the process.
 */
#ifndef UVFIO_LINUX_UACCESS_H
#define UVFIO_LINUX_UACCESS_H

#include <uvfio/linux/types.h>

unsigned long copy_from_user(void *to, const void __user *from,
			     unsigned long n);
unsigned long copy_to_user(void __user *to, const void *from, unsigned long n);

/*
 * uvfio only (a kernel driver calls copy_to_user()): copy_to_user() of
 * memory the caller vouches for. The saving pump of a migration data fd
 * may then queue references to the pages of from instead of a copy, so the
 * reader copies the bytes once, as from a kernel driver's read(), and not
 * twice. Until the reader has taken them, a write to that memory shows in
 * the stream. So only for memory that holds still while the device is
 * stopped (device memory in STOP_COPY, never freed under the stream), and
 * only for bytes a hash in the stream covers, which turns such a write
 * into a stream the destination rejects rather than wrong state.
 * mig_rec_emit_ref() payloads are that.
 */
unsigned long uvfio_copy_to_user_stable(void __user *to, const void *from,
					unsigned long n);

/*
 * uvfio only, what pin_user_pages() gives a kernel driver that updates
 * user memory in place (iova_bitmap): [uaddr, uaddr + n) faulted in
 * writable, and in *kaddr the address to read and write it at directly.
 * 0; -EFAULT when a byte of it is not mapped; -EOPNOTSUPP when it can
 * only be reached by copy_{from,to}_user (no way to check it here, or it
 * is not mapped writable: the copies tell which). Unlike a kernel pin,
 * nothing holds the pages: a thread of the caller unmapping them
 * meanwhile crashes the access instead of failing it.
 */
int uvfio_pin_user(void __user *uaddr, unsigned long n, void **kaddr);

/* Duplicate n user bytes into kmalloc()ed memory; ERR_PTR(-EFAULT/-ENOMEM). */
void *memdup_user(const void __user *src, size_t len);

/* Write one value to user memory: 0 or -EFAULT. */
#define put_user(x, ptr)                                                  \
	({                                                                \
		__typeof__(*(ptr)) __pu_val = (x);                        \
		copy_to_user((ptr), &__pu_val, sizeof(__pu_val)) ? -EFAULT \
								  : 0;    \
	})

#endif /* UVFIO_LINUX_UACCESS_H */
