/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Shared by the fuzz targets: a reader for the fuzz input, the "user
 * memory" the targets hand to the syscall surface, and the checks that keep
 * one input from leaking into the next.
 *
 * User memory. The core copies uAPI arguments with copy_{from,to}_user,
 * which fail with EFAULT on memory that is not mapped (core/kernel/uaccess.cc), as
 * the kernel's do. So an argument of n bytes is placed to end exactly at a
 * PROT_NONE guard page: a core that reads past what the caller declared or
 * provided gets EFAULT, not the fuzzer's neighbouring heap, and ASan never
 * blames the harness for the core's validation. Pointers inside arguments
 * (DMA_LOGGING ranges and bitmaps, type1 bitmaps and vaddr) are never taken
 * raw from the input: map_ptr() turns them into NULL, a guard page, a
 * non-canonical address, or an address in this memory, so a fuzzed pointer
 * can make the core fail but never write over the fuzzer.
 */
#ifndef UVFIO_TESTS_FUZZ_UTIL_H
#define UVFIO_TESTS_FUZZ_UTIL_H

#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "../test_util.h"

namespace uvfio_fuzz {

/* Fail the input: libFuzzer (and the replay) report an abort as a crash. */
#define FUZZ_CHECK(cond)                                                    \
	do {                                                                \
		if (!(cond)) {                                              \
			std::fprintf(stderr, "%s:%d: check failed: %s\n",   \
				     __FILE__, __LINE__, #cond);            \
			std::abort();                                       \
		}                                                           \
	} while (0)

/* Consumes the input front to back; past its end every read is 0. */
class Input
{
public:
	Input(const uint8_t *data, size_t size) : p_(data), n_(size) {}

	bool empty() const { return n_ == 0; }
	size_t remaining() const { return n_; }

	uint8_t u8() { return static_cast<uint8_t>(take_int(1)); }
	uint16_t u16() { return static_cast<uint16_t>(take_int(2)); }
	uint32_t u32() { return static_cast<uint32_t>(take_int(4)); }
	uint64_t u64() { return take_int(8); }

	/* Copy up to n bytes into out; the rest of out is zeroed. */
	size_t bytes(void *out, size_t n)
	{
		size_t k = n < n_ ? n : n_;
		if (k)
			std::memcpy(out, p_, k);
		if (k < n)
			std::memset(static_cast<char *>(out) + k, 0, n - k);
		p_ += k;
		n_ -= k;
		return k;
	}

	/* The next n bytes (fewer at the end) without copying. */
	const uint8_t *take(size_t n, size_t *got)
	{
		size_t k = n < n_ ? n : n_;
		const uint8_t *p = p_;
		p_ += k;
		n_ -= k;
		*got = k;
		return p;
	}

private:
	uint64_t take_int(size_t w)
	{
		uint64_t v = 0;
		for (size_t i = 0; i < w && n_; i++, n_--)
			v |= static_cast<uint64_t>(*p_++) << (8 * i);
		return v;
	}

	const uint8_t *p_;
	size_t n_;
};

/*
 * One mapping, mapped once: [arg][guard][data][guard][guest][guard].
 * arg: where ioctl arguments and read/write buffers go (ending at a guard).
 * data: what pointers inside arguments point to (ranges, bitmaps).
 * guest: page-aligned memory for VFIO_IOMMU_MAP_DMA.
 */
class UserMem
{
public:
	static constexpr size_t page = 4096;
	static constexpr size_t arg_size = 16 * page;
	static constexpr size_t data_size = 16 * page;
	static constexpr size_t guest_size = 64 * page;

	static UserMem &get()
	{
		static UserMem *m = new UserMem;
		return *m;
	}

	/* Place n bytes of src (n <= arg_size) to end at the guard page. */
	void *arg_at_end(const void *src, size_t n)
	{
		char *p = arg_ + arg_size - n;
		if (n)
			std::memcpy(p, src, n);
		return p;
	}
	/*
	 * Place n bytes as an argument: at the guard when copies fault
	 * cleanly (at_end), otherwise at the start, zeros after it.
	 */
	void *place_arg(const void *src, size_t n, bool at_end)
	{
		if (at_end && vm_rw_ok_)
			return arg_at_end(src, n);
		std::memset(arg_, 0, arg_size);
		if (n)
			std::memcpy(arg_, src, n);
		return arg_;
	}
	char *arg() { return arg_; }
	char *data() { return data_; }
	char *guest() { return guest_; }
	/* The first byte nobody may touch, right after the arg area. */
	char *guard() { return arg_ + arg_size; }

	/*
	 * A pointer the core may be given: from the low 3 bits of raw, NULL,
	 * the guard page, a non-canonical address, or (most of the time) a
	 * place in data or guest memory chosen by the other bits. Without a
	 * faulting copy_from_user (see vm_rw_ok()) only real memory.
	 */
	uint64_t map_ptr(uint64_t raw)
	{
		uint64_t off = raw >> 3;
		switch (raw & 7) {
		case 0:
			return 0;
		case 1:
			if (vm_rw_ok_)
				return reinterpret_cast<uintptr_t>(guard());
			break;
		case 2:
			if (vm_rw_ok_)
				return 0xdead000000000000ULL + (off & 0xfff);
			break;
		case 3:
			return reinterpret_cast<uintptr_t>(guest_) +
			       off % guest_size;
		default:
			break;
		}
		return reinterpret_cast<uintptr_t>(data_) + off % data_size;
	}

	/* Forget what the last input wrote: every area reads as zeros. */
	void reset()
	{
		madvise(arg_, arg_size, MADV_DONTNEED);
		madvise(data_, data_size, MADV_DONTNEED);
		madvise(guest_, guest_size, MADV_DONTNEED);
	}

	/*
	 * Does copy_from_user fault cleanly here? It does unless
	 * process_vm_readv is forbidden (seccomp); then the core falls back
	 * to memcpy and a guard page would crash it, so the targets place
	 * arguments with room to spare instead.
	 */
	bool vm_rw_ok() const { return vm_rw_ok_; }

private:
	UserMem()
	{
		size_t total = arg_size + data_size + guest_size + 3 * page;
		char *base = static_cast<char *>(mmap(nullptr, total,
						      PROT_READ | PROT_WRITE,
						      MAP_PRIVATE | MAP_ANONYMOUS,
						      -1, 0));
		FUZZ_CHECK(base != MAP_FAILED);
		arg_ = base;
		data_ = arg_ + arg_size + page;
		guest_ = data_ + data_size + page;
		FUZZ_CHECK(!mprotect(arg_ + arg_size, page, PROT_NONE));
		FUZZ_CHECK(!mprotect(data_ + data_size, page, PROT_NONE));
		FUZZ_CHECK(!mprotect(guest_ + guest_size, page, PROT_NONE));

		char probe;
		struct iovec local = {&probe, 1};
		struct iovec remote = {guard(), 1};
		vm_rw_ok_ = process_vm_readv(getpid(), &local, 1, &remote, 1,
					     0) < 0 &&
			    errno == EFAULT;
	}

	char *arg_;
	char *data_;
	char *guest_;
	bool vm_rw_ok_;
};

/* Open file descriptors of this process (the unit tests' helper). */
using uvfio_test::count_open_fds;

/*
 * VFIO_DEVICE_FEATURE MIG_DEVICE_STATE: SET *state (set) or GET it into
 * *state. 0 or the errno; a SET's new data fd in *data_fd (or -1).
 */
inline int mig_device_state(int fd, bool set, uint32_t *state, int *data_fd)
{
	alignas(8) unsigned char buf[sizeof(struct vfio_device_feature) +
				     sizeof(struct vfio_device_feature_mig_state)] = {};
	auto *f = reinterpret_cast<struct vfio_device_feature *>(buf);
	auto *m = reinterpret_cast<struct vfio_device_feature_mig_state *>(
		f->data);
	f->argsz = sizeof(buf);
	f->flags = (set ? VFIO_DEVICE_FEATURE_SET : VFIO_DEVICE_FEATURE_GET) |
		   VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	m->device_state = *state;
	m->data_fd = -1;
	if (uvfio_ioctl(fd, VFIO_DEVICE_FEATURE, buf))
		return errno;
	*state = m->device_state;
	if (data_fd)
		*data_fd = m->data_fd;
	return 0;
}

} // namespace uvfio_fuzz

#endif /* UVFIO_TESTS_FUZZ_UTIL_H */
