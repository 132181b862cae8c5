// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fuzz target: the uAPI dispatcher's argument handling.
 *
 * Contract: whatever sequence of uvfio_open/ioctl/pread/pwrite/read/write/
 * mmap/close calls userspace makes on device, group, container and data
 * fds, with whatever argsz, flags and fields, the core and the drivers
 * (simnic, testdev, simmin) validate it and answer 0 or -1/errno: no
 * crash, no sanitizer report, no hang, and once every fd is closed and the
 * devices are removed, no fd and no memory is left behind.
 *
 * Each input builds its own devices and removes them at the end, so inputs
 * are independent. An input is a list of operations; an ioctl operation
 * names the fd, the command (from a table of every uAPI command, or any
 * number) and the argument's bytes, which are placed to end at a guard page
 * (see fuzz_util.h). Fields that are pointers or fds in the real uAPI are
 * mapped to safe values: the fuzzer varies everything the core validates,
 * but cannot make the core write into the fuzzer's own memory, which a
 * real kernel would happily do to a buggy caller.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include <string>
#include <vector>

#include <uvfio/uvfio.h>

#include "fuzz_util.h"

using namespace uvfio_fuzz;

namespace {

/* Small devices: creating them for every input must be cheap. */
const char *const specs[] = {
	"simnic,bdf=0000:00:02.0,mem=64K,msix=4",
	("testdev,bdf=0000:00:03.0,mem=64K,msix=4,"
	 "mig=stop_copy|p2p|pre_copy,log=1,state=4K"),
	"simmin,bdf=0000:00:04.0,mem=64K,msix=4",
};
const char *const bdfs[] = {"0000:00:02.0", "0000:00:03.0", "0000:00:04.0"};
constexpr unsigned ndev = sizeof(bdfs) / sizeof(bdfs[0]);

const unsigned long commands[] = {
	VFIO_DEVICE_GET_INFO,	   VFIO_DEVICE_GET_REGION_INFO,
	VFIO_DEVICE_GET_IRQ_INFO,  VFIO_DEVICE_SET_IRQS,
	VFIO_DEVICE_RESET,	   VFIO_DEVICE_FEATURE,
	VFIO_GET_API_VERSION,	   VFIO_CHECK_EXTENSION,
	VFIO_SET_IOMMU,		   VFIO_IOMMU_GET_INFO,
	VFIO_IOMMU_MAP_DMA,	   VFIO_IOMMU_UNMAP_DMA,
	VFIO_IOMMU_DIRTY_PAGES,	   VFIO_GROUP_GET_STATUS,
	VFIO_GROUP_SET_CONTAINER,  VFIO_GROUP_UNSET_CONTAINER,
	VFIO_GROUP_GET_DEVICE_FD,  VFIO_MIG_GET_PRECOPY_INFO,
	VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
};
constexpr unsigned ncommands = sizeof(commands) / sizeof(commands[0]);

/* Offsets of the fields the harness maps (see the uAPI structs). */
constexpr size_t feature_data = sizeof(struct vfio_device_feature);
constexpr size_t logging_ranges_off =
	feature_data +
	offsetof(struct vfio_device_feature_dma_logging_control, ranges);
constexpr size_t logging_bitmap_off =
	feature_data +
	offsetof(struct vfio_device_feature_dma_logging_report, bitmap);
constexpr size_t mig_state_fd_off =
	feature_data + offsetof(struct vfio_device_feature_mig_state, data_fd);
constexpr size_t map_vaddr_off = offsetof(struct vfio_iommu_type1_dma_map, vaddr);
constexpr size_t unmap_bitmap_data_off =
	sizeof(struct vfio_iommu_type1_dma_unmap) +
	offsetof(struct vfio_bitmap, data);
constexpr size_t dirty_bitmap_data_off =
	sizeof(struct vfio_iommu_type1_dirty_bitmap) +
	offsetof(struct vfio_iommu_type1_dirty_bitmap_get, bitmap) +
	offsetof(struct vfio_bitmap, data);
constexpr size_t irq_set_data_off = offsetof(struct vfio_irq_set, data);

/* Fds not made by uvfio, for arguments that name an fd. */
struct harness_fds {
	int eventfd;
	int other;	/* open, but neither an eventfd nor a uvfio file */
};

harness_fds &hfds()
{
	static harness_fds h = [] {
		harness_fds v;
		v.eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		v.other = open("/dev/null", O_RDWR | O_CLOEXEC);
		FUZZ_CHECK(v.eventfd >= 0 && v.other >= 0);
		return v;
	}();
	return h;
}

/* UVFIO_FUZZ_DEBUG=1: what each operation did, to read a failing input. */
void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void trace(const char *fmt, ...)
{
	static const bool on = getenv("UVFIO_FUZZ_DEBUG");
	if (!on)
		return;
	va_list ap;
	va_start(ap, fmt);
	std::vfprintf(stderr, fmt, ap);
	va_end(ap);
	std::fputc('\n', stderr);
}

class Session
{
public:
	explicit Session(Input &in) : in_(in), mem_(UserMem::get()) {}

	~Session()
	{
		/* Last opened first; any order must work. */
		while (!fds_.empty()) {
			FUZZ_CHECK(uvfio_close(fds_.back()) == 0);
			fds_.pop_back();
		}
	}

	void run()
	{
		for (unsigned ops = 0; ops < 64 && !in_.empty(); ops++)
			step();
	}

private:
	/*
	 * Keep an fd the core gave us. A data fd blocks in read until the
	 * pump has data, the end or ENOMSG, as the kernel's does (a read
	 * that never returns is a finding: libFuzzer's -timeout); nonblock
	 * makes it answer EAGAIN instead.
	 */
	void track(int fd, bool nonblock = false)
	{
		trace("fd %d", fd);
		if (fd < 0)
			return;
		if (nonblock) {
			int fl = fcntl(fd, F_GETFL);
			FUZZ_CHECK(fl >= 0);
			FUZZ_CHECK(!fcntl(fd, F_SETFL, fl | O_NONBLOCK));
		}
		fds_.push_back(fd);
	}

	/* Any fd the harness knows, a harness fd, -1 or one not open. */
	int pick_fd(unsigned sel)
	{
		unsigned n = 4 + static_cast<unsigned>(fds_.size());
		sel %= n;
		switch (sel) {
		case 0:
			return -1;
		case 1:
			return hfds().eventfd;
		case 2:
			return hfds().other;
		case 3:
			return 1 << 20;
		default:
			return fds_[sel - 4];
		}
	}

	/* A MAP_DMA vaddr: mostly page-aligned guest memory. */
	uint64_t map_vaddr(uint64_t raw)
	{
		if ((raw & 3) == 3)
			return mem_.map_ptr(raw >> 2);
		size_t pages = UserMem::guest_size / UserMem::page;
		return reinterpret_cast<uintptr_t>(mem_.guest()) +
		       ((raw >> 2) % pages) * UserMem::page;
	}

	static bool has(size_t len, size_t off, size_t w)
	{
		return off + w <= len;
	}
	template <typename T> static T get(const uint8_t *b, size_t off)
	{
		T v;
		std::memcpy(&v, b + off, sizeof(v));
		return v;
	}
	template <typename T> static void put(uint8_t *b, size_t off, T v)
	{
		std::memcpy(b + off, &v, sizeof(v));
	}
	void fix_ptr(uint8_t *b, size_t len, size_t off)
	{
		if (has(len, off, 8))
			put<uint64_t>(b, off, mem_.map_ptr(get<uint64_t>(b, off)));
	}

	/*
	 * Make the raw argument safe to pass as cmd's: every pointer and fd
	 * field is mapped, by the command number alone, so a raw command
	 * that happens to be a real one is made safe too.
	 */
	void fix_arg(unsigned long cmd, uint8_t *b, size_t len, uint8_t mode)
	{
		switch (cmd) {
		/*
		 * One number, two commands: VFIO_DEVICE_FEATURE on a device,
		 * VFIO_IOMMU_DIRTY_PAGES on a container. Their pointers are
		 * at different offsets; map both (a feature never reads the
		 * other's, or its flags are refused).
		 */
		case VFIO_DEVICE_FEATURE: {
			static_assert(VFIO_DEVICE_FEATURE ==
				      VFIO_IOMMU_DIRTY_PAGES);
			fix_ptr(b, len, dirty_bitmap_data_off);
			if (!has(len, 4, 4))
				break;
			uint32_t feat = get<uint32_t>(b, 4) &
					VFIO_DEVICE_FEATURE_MASK;
			if (feat == VFIO_DEVICE_FEATURE_DMA_LOGGING_START)
				fix_ptr(b, len, logging_ranges_off);
			else if (feat == VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT)
				fix_ptr(b, len, logging_bitmap_off);
			break;
		}
		case VFIO_IOMMU_MAP_DMA:
			if (has(len, map_vaddr_off, 8))
				put<uint64_t>(b, map_vaddr_off,
					      map_vaddr(get<uint64_t>(
						      b, map_vaddr_off)));
			break;
		case VFIO_IOMMU_UNMAP_DMA:
			fix_ptr(b, len, unmap_bitmap_data_off);
			break;
		case VFIO_DEVICE_SET_IRQS:
			if (!has(len, 4, 4) ||
			    !(get<uint32_t>(b, 4) & VFIO_IRQ_SET_DATA_EVENTFD))
				break;
			for (size_t off = irq_set_data_off; has(len, off, 4);
			     off += 4)
				put<int32_t>(b, off,
					     pick_fd(get<uint32_t>(b, off)));
			break;
		case VFIO_GROUP_SET_CONTAINER:
			if (has(len, 0, 4))
				put<int32_t>(b, 0, pick_fd(get<uint32_t>(b, 0)));
			break;
		case VFIO_GROUP_GET_DEVICE_FD:
			/* Sometimes a real name, so the open path is reached. */
			if (mode & 4) {
				const char *name = bdfs[(mode >> 3) % ndev];
				size_t n = std::strlen(name) + 1;
				if (n <= len)
					std::memcpy(b + len - n, name, n);
			}
			break;
		default:
			break;
		}
	}

	void do_ioctl()
	{
		int fd = pick_fd(in_.u8());
		uint8_t sel = in_.u8();
		unsigned long cmd = sel < ncommands ? commands[sel] :
			sel == 0xff ? in_.u32() : commands[sel % ncommands];
		uint8_t mode = in_.u8();
		size_t len = in_.u16() % (UserMem::arg_size + 1);

		/* Commands whose argument is a value, not a pointer. */
		if (cmd == VFIO_SET_IOMMU || cmd == VFIO_CHECK_EXTENSION) {
			uvfio_ioctl(fd, cmd,
				    reinterpret_cast<void *>(
					    static_cast<uintptr_t>(mode & 15)));
			return;
		}

		std::vector<uint8_t> b(len);
		in_.bytes(b.data(), len);
		/* Often the caller means what it says: argsz = its size. */
		if ((mode & 1) && len >= 4)
			put<uint32_t>(b.data(), 0, static_cast<uint32_t>(len));
		fix_arg(cmd, b.data(), len, mode);

		auto *arg = static_cast<uint8_t *>(
			mem_.place_arg(b.data(), len, !(mode & 2)));
		void *argp = len || (mode & 0x80) ? arg : nullptr;
		int ret = uvfio_ioctl(fd, cmd, argp);
		trace("ioctl(%d, 0x%lx, %zu bytes) = %d (%s)", fd, cmd, len,
		      ret, ret < 0 ? std::strerror(errno) : "ok");

		/* The fds a successful call gave the caller are ours to close. */
		if (ret >= 0 && cmd == VFIO_GROUP_GET_DEVICE_FD)
			track(ret);
		if (ret == 0 && cmd == VFIO_DEVICE_FEATURE && argp &&
		    has(len, mig_state_fd_off, 4)) {
			uint32_t flags = get<uint32_t>(b.data(), 4);
			if ((flags & VFIO_DEVICE_FEATURE_MASK) ==
				    VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE &&
			    (flags & VFIO_DEVICE_FEATURE_SET) &&
			    !(flags & VFIO_DEVICE_FEATURE_PROBE))
				track(get<int32_t>(arg, mig_state_fd_off),
				      mode & 0x40);
		}
	}

	/* A region offset: a region index, then an offset in it. */
	off_t pick_offset()
	{
		uint8_t sel = in_.u8();
		if (sel == 0xff)
			return static_cast<off_t>(in_.u64());
		uint64_t index = (sel & 0x7f) % 10;
		uint64_t off = (sel & 0x80) ? in_.u32() : in_.u16() & 0xfff;
		return static_cast<off_t>((index << 40) + off);
	}

	void do_rw(bool write, bool positional)
	{
		int fd = pick_fd(in_.u8());
		off_t off = positional ? pick_offset() : 0;
		size_t count = in_.u16() % (UserMem::arg_size + 1);
		void *buf;
		if (write) {
			std::vector<uint8_t> b(count);
			in_.bytes(b.data(), count);
			buf = mem_.place_arg(b.data(), count, true);
		} else {
			buf = mem_.vm_rw_ok() ? mem_.guard() - count
					      : mem_.arg();
		}
		ssize_t ret;
		if (positional)
			ret = write ? uvfio_pwrite(fd, buf, count, off)
				    : uvfio_pread(fd, buf, count, off);
		else
			ret = write ? uvfio_write(fd, buf, count)
				    : uvfio_read(fd, buf, count);
		trace("%s(%d, %zu, 0x%llx) = %zd (%s)",
		      write ? "write" : "read", fd, count,
		      static_cast<unsigned long long>(off), ret,
		      ret < 0 ? std::strerror(errno) : "ok");
	}

	void do_mmap()
	{
		int fd = pick_fd(in_.u8());
		off_t off = pick_offset() & ~static_cast<off_t>(0xfff);
		size_t len = (in_.u8() % 4 + 1) * UserMem::page;
		int prot = in_.u8() & (PROT_READ | PROT_WRITE);
		void *p = uvfio_mmap(nullptr, len, prot, MAP_SHARED, fd, off);
		if (p != MAP_FAILED)
			FUZZ_CHECK(!munmap(p, len));
	}

	void step()
	{
		uint8_t op = in_.u8();
		switch (op % 12) {
		case 0:
			track(uvfio_open(bdfs[in_.u8() % ndev]));
			break;
		case 1: {
			int id = uvfio_sim_iommu_group(bdfs[in_.u8() % ndev]);
			FUZZ_CHECK(id >= 0);
			std::string name = "/dev/vfio/" + std::to_string(id);
			track(uvfio_open(name.c_str()));
			break;
		}
		case 2:
			track(uvfio_open("/dev/vfio/vfio"));
			break;
		case 3: {
			if (fds_.empty())
				break;
			size_t i = in_.u8() % fds_.size();
			FUZZ_CHECK(uvfio_close(fds_[i]) == 0);
			fds_.erase(fds_.begin() + static_cast<long>(i));
			break;
		}
		case 4:
		case 5:
		case 6:
			do_ioctl();
			break;
		case 7:
			do_rw(false, true);
			break;
		case 8:
			do_rw(true, true);
			break;
		case 9:
			do_rw(false, false);
			break;
		case 10:
			do_rw(true, false);
			break;
		case 11:
			if (op & 0x80) {
				do_mmap();
				break;
			}
			/* What pointers in arguments point to. */
			{
				size_t off = in_.u16() % UserMem::data_size;
				size_t n = in_.u8();
				if (n > UserMem::data_size - off)
					n = UserMem::data_size - off;
				in_.bytes(mem_.data() + off, n);
			}
			break;
		}
	}

	Input &in_;
	UserMem &mem_;
	std::vector<int> fds_;
};

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
	/* Drivers log every refused argument; the fuzzer needs no stream. */
	uvfio_set_log_level(UVFIO_LOG_ERR - 1);
	hfds();
	UserMem::get();
	return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Input in(data, size);
	UserMem::get().reset();
	int fds_before = count_open_fds();

	for (const char *spec : specs)
		FUZZ_CHECK(uvfio_sim_add(spec) == 0);
	{
		Session s(in);
		s.run();
	}
	for (const char *bdf : bdfs)
		FUZZ_CHECK(uvfio_sim_remove(bdf) == 0);

	/* Every fd the input opened, and every one the core made, is gone. */
	FUZZ_CHECK(count_open_fds() == fds_before);
	return 0;
}
