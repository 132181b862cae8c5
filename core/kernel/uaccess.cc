// SPDX-License-Identifier: GPL-2.0-only
/*
 * copy_{from,to}_user: a bad user pointer must fail the call with EFAULT, as
 * it does in the kernel, not crash the process. process_vm_readv/writev on
 * our own pid checks every page for us; where the syscall is unavailable
 * (seccomp), only a NULL pointer is caught.
 */
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <uvfio/linux/err.h>
#include <uvfio/linux/slab.h>
#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/unique_fd.h>

#include "procmap.h"
#include "runtime.h"

namespace {

std::atomic<bool> vm_rw_works{true};

/* The core buffer this thread is passing to a driver as __user memory. */
thread_local const char *kbuf_lo;
thread_local const char *kbuf_hi;
thread_local uaccess_sink *kbuf_sink;

bool in_kernel_buffer(const void *p, unsigned long n)
{
	const char *c = static_cast<const char *>(p);
	return kbuf_lo && c >= kbuf_lo && c <= kbuf_hi &&
	       n <= static_cast<unsigned long>(kbuf_hi - c);
}

/* Returns bytes not copied. */
unsigned long checked_copy(void *to, const void *from, unsigned long n,
			   bool to_user, bool stable = false)
{
	if (!n)
		return 0;
	const void *user = to_user ? to : from;
	if (!user)
		return n;
	/* Memory the core owns and vouches for needs no page check. */
	if (in_kernel_buffer(user, n)) {
		if (kbuf_sink &&
		    (to_user ? kbuf_sink->copy_out(static_cast<char *>(to) -
							   kbuf_lo,
						   from, n, stable)
			     : kbuf_sink->copy_in(static_cast<const char *>(
							  from) - kbuf_lo,
						  to, n)))
			return 0;
		std::memcpy(to, from, n);
		return 0;
	}
	if (vm_rw_works.load(std::memory_order_relaxed)) {
		struct iovec local = {to_user ? const_cast<void *>(from) : to, n};
		struct iovec remote = {const_cast<void *>(user), n};
		ssize_t r = to_user ? process_vm_writev(getpid(), &local, 1,
							&remote, 1, 0)
				    : process_vm_readv(getpid(), &local, 1,
						       &remote, 1, 0);
		if (r == static_cast<ssize_t>(n))
			return 0;
		if (r >= 0)
			return n - r;
		if (errno != ENOSYS && errno != EPERM)
			return n;
		vm_rw_works.store(false, std::memory_order_relaxed);
	}
	std::memcpy(to, from, n);
	return 0;
}


/* Cleared on a kernel without PROCMAP_QUERY (before 6.11). */
std::atomic<bool> procmap_query_works{true};

/*
 * Whether [lo, hi] lies in private anonymous mappings that are writable,
 * asked of the VMAs alone, without touching a page: 1 yes, 0 not known
 * (ask the pages). Private anonymous memory is the case worth it: a write
 * there can only fault pages in. A file or shared mapping can still fail
 * a write that its VMA allows (past the end of its file), so those take
 * MADV_POPULATE_WRITE, whose page walk costs a cache miss per page: 0.6x
 * a scan of the bitmap, for a REPORT over 1 TiB.
 */
int vmas_writable_anon(std::uintptr_t lo, std::uintptr_t hi)
{
	if (!procmap_query_works.load(std::memory_order_relaxed))
		return 0;
	/*
	 * Opened per call, a few microseconds: a cached fd would answer for
	 * the parent after a fork, and would be an fd the caller never
	 * opened.
	 */
	UniqueFD maps(open("/proc/self/maps", O_RDONLY | O_CLOEXEC));
	if (!maps.is_valid())
		return 0;
	for (std::uintptr_t addr = lo;;) {
		struct procmap_query q = {};
		q.size = sizeof(q);
		q.query_flags = PROCMAP_QUERY_VMA_WRITABLE;
		q.query_addr = addr;
		if (ioctl(maps.get(), PROCMAP_QUERY_IOCTL, &q)) {
			if (errno == ENOTTY || errno == EINVAL)
				procmap_query_works.store(
					false, std::memory_order_relaxed);
			return 0;	/* ENOENT: a hole or read-only */
		}
		if (q.inode || q.dev_major || q.dev_minor)
			return 0;
		if (q.vma_end == 0 || q.vma_end - 1 >= hi)
			return 1;
		addr = q.vma_end;
	}
}

} // namespace

uaccess_kernel_buffer::uaccess_kernel_buffer(const void *buf, size_t len,
					     uaccess_sink *sink)
	: lo_(kbuf_lo), hi_(kbuf_hi), sink_(kbuf_sink)
{
	kbuf_lo = static_cast<const char *>(buf);
	kbuf_hi = kbuf_lo + len;
	kbuf_sink = sink;
}

uaccess_kernel_buffer::~uaccess_kernel_buffer()
{
	kbuf_lo = lo_;
	kbuf_hi = hi_;
	kbuf_sink = sink_;
}

unsigned long copy_from_user(void *to, const void __user *from, unsigned long n)
{
	return checked_copy(to, from, n, false);
}

unsigned long copy_to_user(void __user *to, const void *from, unsigned long n)
{
	return checked_copy(to, from, n, true);
}

unsigned long uvfio_copy_to_user_stable(void __user *to, const void *from,
					unsigned long n)
{
	return checked_copy(to, from, n, true, true);
}

int uvfio_pin_user(void __user *uaddr, unsigned long n, void **kaddr)
{
	auto addr = reinterpret_cast<std::uintptr_t>(uaddr);

	if (!n) {
		*kaddr = uaddr;
		return 0;
	}
	if (!uaddr || n - 1 > UINTPTR_MAX - addr)
		return -EFAULT;
	/* Copies with a core buffer may be redirected (a sink): copy them. */
	if (in_kernel_buffer(uaddr, n))
		return kbuf_sink ? -EOPNOTSUPP : (*kaddr = uaddr, 0);
	/* Without page checks, copies are plain memcpy anyway. */
	if (!vm_rw_works.load(std::memory_order_relaxed)) {
		*kaddr = uaddr;
		return 0;
	}
	/*
	 * One madvise per call checks every page as a write fault would,
	 * without copying a byte: ENOMEM for a hole. EINVAL is a mapping that
	 * is not writable (or a kernel without MADV_POPULATE_WRITE): copies
	 * then decide what faults.
	 */
	static const std::uintptr_t page = sysconf(_SC_PAGESIZE);
	std::uintptr_t lo = addr & ~(page - 1);
	std::uintptr_t hi = addr + (n - 1);
	if (vmas_writable_anon(addr, hi)) {
		*kaddr = uaddr;
		return 0;
	}
	if (madvise(reinterpret_cast<void *>(lo), hi - lo + 1,
		    MADV_POPULATE_WRITE)) {
		if (errno == EINVAL)
			return -EOPNOTSUPP;
		return -EFAULT;
	}
	*kaddr = uaddr;
	return 0;
}

void *memdup_user(const void __user *src, size_t len)
{
	void *p = kmalloc(len ? len : 1, GFP_KERNEL);
	if (!p)
		return ERR_PTR(-ENOMEM);
	if (copy_from_user(p, src, len)) {
		kfree(p);
		return ERR_PTR(-EFAULT);
	}
	return p;
}
