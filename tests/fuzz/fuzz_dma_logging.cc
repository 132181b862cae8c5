// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fuzz target: device DMA logging.
 *
 * Contract: on a simnic (it has log_ops) in a type1v2 container with guest
 * memory mapped, any sequence of DMA_LOGGING_START (any page_size,
 * num_ranges and ranges, overlapping, empty, wrapping or past the
 * aperture), DMA_LOGGING_REPORT (any iova, length, page_size and bitmap)
 * and DMA_LOGGING_STOP is answered with 0 or an errno, and a successful
 * REPORT writes nothing of the user's memory past the bytes its bitmap
 * occupies: ceil(length / page_size / 8).
 *
 * The ranges array and the bitmap live in the harness's data memory (or
 * are NULL, a guard page, a non-canonical address: fuzz_util.h); the
 * device and its container are made for each input and removed after it.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include <uvfio/sim/simdev_regs.h>
#include <uvfio/uvfio.h>

#include "fuzz_util.h"

using namespace uvfio_fuzz;

namespace {

const char *const spec = "simnic,bdf=0000:00:07.0,mem=64K,msix=2";
const char *const bdf = "0000:00:07.0";
constexpr uint64_t guest_iova = 1ULL << 32;
constexpr size_t feature_data = sizeof(struct vfio_device_feature);
/* What the bytes past a reported bitmap must still hold. */
constexpr uint8_t canary = 0xa5;
constexpr size_t canary_len = 64;

constexpr off_t bar0 = 0;
constexpr off_t config = off_t(VFIO_PCI_CONFIG_REGION_INDEX) << 40;
constexpr uint32_t ring_entries = 16;

/*
 * What the harness knows of the session: the ranges logging was started
 * with and the granule the driver chose, and the guest addresses the
 * device wrote since (first and last byte of each write) that no REPORT
 * has covered yet.
 */
struct Log {
	bool on = false;
	uint64_t granule = 0;
	std::vector<std::pair<uint64_t, uint64_t>> ranges; /* [first, last] */
	std::vector<uint64_t> written;

	bool logged(uint64_t a) const
	{
		for (auto [first, last] : ranges)
			if (a >= first && a <= last)
				return true;
		return false;
	}
	/* A REPORT of [iova, iova + length) happened: whatever it
	 * covered, and its granule around it, is no longer owed. */
	void covered(uint64_t iova, uint64_t length)
	{
		uint64_t lo = iova > granule ? iova - granule : 0;
		uint64_t end = iova + length;
		uint64_t hi = end < iova || end + granule < end ? ~0ULL
								: end + granule;
		std::erase_if(written, [&](uint64_t a) {
			return a >= lo && a < hi;
		});
	}
};

struct Vm {
	int container = -1, group = -1, device = -1;
	bool engine = false;
	uint32_t tail = 0;
	Log log;

	uint32_t reg(uint32_t off)
	{
		uint32_t v = 0;
		FUZZ_CHECK(uvfio_pread(device, &v, 4, bar0 + off) == 4);
		return v;
	}
	void set_reg(uint32_t off, uint32_t v)
	{
		FUZZ_CHECK(uvfio_pwrite(device, &v, 4, bar0 + off) == 4);
	}

	/* Play the guest driver: bus mastering, a ring in guest page 0. */
	void start_engine()
	{
		uint16_t cmd = 0;
		FUZZ_CHECK(uvfio_pread(device, &cmd, 2, config + 4) == 2);
		cmd |= 0x6;	/* memory space, bus master */
		FUZZ_CHECK(uvfio_pwrite(device, &cmd, 2, config + 4) == 2);
		set_reg(SIMDEV_REG_RING_BASE_LO, static_cast<uint32_t>(guest_iova));
		set_reg(SIMDEV_REG_RING_BASE_HI,
			static_cast<uint32_t>(guest_iova >> 32));
		set_reg(SIMDEV_REG_RING_SIZE, ring_entries);
		set_reg(SIMDEV_REG_CTRL, SIMDEV_CTRL_ENABLE);
		engine = true;
	}

	/* The device fills [off, off + len) of guest memory (past page 0). */
	void dma_fill(uint64_t off, uint64_t len, uint8_t byte)
	{
		if (!engine)
			start_engine();
		auto *ring = reinterpret_cast<struct simdev_desc *>(
			UserMem::get().guest());
		struct simdev_desc &d = ring[tail % ring_entries];
		std::memset(&d, 0, sizeof(d));
		d.opcode = SIMDEV_OP_FILL;
		d.dst = guest_iova + off;
		d.len = len;
		d.arg = byte;
		tail++;
		set_reg(SIMDEV_REG_DOORBELL, tail);
		/* Wait for the device; a hang is libFuzzer's -timeout. */
		while (reg(SIMDEV_REG_RING_DONE) != tail)
			sched_yield();
		FUZZ_CHECK(__atomic_load_n(&d.status, __ATOMIC_ACQUIRE) ==
			   SIMDEV_DESC_DONE);
		if (log.on) {
			log.written.push_back(guest_iova + off);
			log.written.push_back(guest_iova + off + len - 1);
		}
	}

	bool open()
	{
		UserMem &mem = UserMem::get();
		int id = uvfio_sim_iommu_group(bdf);
		FUZZ_CHECK(id >= 0);
		std::string name = "/dev/vfio/" + std::to_string(id);
		container = uvfio_open("/dev/vfio/vfio");
		group = uvfio_open(name.c_str());
		FUZZ_CHECK(container >= 0 && group >= 0);
		FUZZ_CHECK(!uvfio_ioctl(group, VFIO_GROUP_SET_CONTAINER,
					&container));
		FUZZ_CHECK(!uvfio_ioctl(container, VFIO_SET_IOMMU,
					reinterpret_cast<void *>(
						VFIO_TYPE1v2_IOMMU)));
		struct vfio_iommu_type1_dma_map map = {};
		map.argsz = sizeof(map);
		map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
		map.vaddr = reinterpret_cast<uintptr_t>(mem.guest());
		map.iova = guest_iova;
		map.size = UserMem::guest_size;
		FUZZ_CHECK(!uvfio_ioctl(container, VFIO_IOMMU_MAP_DMA, &map));
		device = uvfio_ioctl(group, VFIO_GROUP_GET_DEVICE_FD,
				     const_cast<char *>(bdf));
		FUZZ_CHECK(device >= 0);
		return true;
	}

	~Vm()
	{
		for (int fd : {device, group, container})
			if (fd >= 0)
				FUZZ_CHECK(uvfio_close(fd) == 0);
	}
};

/* A page size: mostly a power of two, sometimes anything. */
uint64_t pick_page_size(Input &in)
{
	uint8_t sel = in.u8();
	if (sel & 0x80)
		return in.u64();
	return 1ULL << (sel % 64);
}

/* An IOVA or a length: near guest memory most of the time, or raw. */
uint64_t pick_iova(Input &in, bool length)
{
	uint8_t sel = in.u8();
	switch (sel & 3) {
	case 0:
		return in.u64();
	case 1:
		return (length ? 0 : guest_iova) + (in.u16() & 0xff) * 4096ULL;
	case 2:
		return (length ? 0 : guest_iova) + in.u32();
	default:
		/* The ends of the address space. */
		return length ? ~0ULL - in.u16() : ~0ULL - in.u32();
	}
}

struct Feature {
	alignas(8) uint8_t buf[sizeof(struct vfio_device_feature) + 32] = {};
	size_t payload = 0;

	Feature(uint32_t flags, size_t payload_size) : payload(payload_size)
	{
		auto *f = reinterpret_cast<struct vfio_device_feature *>(buf);
		f->argsz = static_cast<uint32_t>(size());
		f->flags = flags;
	}
	size_t size() const { return sizeof(struct vfio_device_feature) + payload; }
	void *data() { return buf + sizeof(struct vfio_device_feature); }

	/*
	 * The ioctl, with the argument ending at the guard page. mode may
	 * make argsz short or long, or a PROBE of the feature.
	 */
	int ioctl(int fd, uint8_t mode, void **placed = nullptr)
	{
		auto *f = reinterpret_cast<struct vfio_device_feature *>(buf);
		if (mode & 1)
			f->argsz = static_cast<uint32_t>(size() - (mode >> 4));
		if (mode & 2)
			f->argsz += mode >> 4;
		if (mode & 4)
			f->flags |= VFIO_DEVICE_FEATURE_PROBE;
		void *arg = UserMem::get().place_arg(buf, size(), true);
		if (placed)
			*placed = arg;
		return uvfio_ioctl(fd, VFIO_DEVICE_FEATURE, arg);
	}
};

void do_start(Vm &vm, Input &in)
{
	UserMem &mem = UserMem::get();
	Feature f(VFIO_DEVICE_FEATURE_SET |
			  VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
		  sizeof(struct vfio_device_feature_dma_logging_control));
	auto *c = static_cast<struct vfio_device_feature_dma_logging_control *>(
		f.data());
	c->page_size = pick_page_size(in);
	uint16_t n = in.u16();
	c->num_ranges = (n & 0x8000) ? n : n % 8;
	/* The ranges array in data memory, filled from the input. */
	size_t max = UserMem::data_size / sizeof(
		struct vfio_device_feature_dma_logging_range);
	size_t at = in.u8() % 16;
	auto *r = reinterpret_cast<struct vfio_device_feature_dma_logging_range *>(
		mem.data()) + at;
	for (size_t i = 0; i < c->num_ranges && at + i < max && !in.empty();
	     i++) {
		r[i].iova = pick_iova(in, false);
		r[i].length = pick_iova(in, true);
	}
	uint8_t where = in.u8();
	c->ranges = (where & 7) == 7 ? mem.map_ptr(in.u64())
				     : reinterpret_cast<uintptr_t>(r);
	uint8_t mode = in.u8();
	void *arg = nullptr;
	if (f.ioctl(vm.device, mode, &arg) || (mode & 4))
		return;
	/* Logging is on: what the core read and the granule it answered. */
	struct vfio_device_feature_dma_logging_control done;
	std::memcpy(&done, static_cast<char *>(arg) + feature_data, sizeof(done));
	vm.log = Log();
	vm.log.on = true;
	vm.log.granule = done.page_size;
	/* The fuzzer may place the ranges anywhere: no aligned access. */
	const char *used = reinterpret_cast<const char *>(
		static_cast<uintptr_t>(done.ranges));
	for (uint32_t i = 0; i < done.num_ranges; i++) {
		struct vfio_device_feature_dma_logging_range r;
		std::memcpy(&r, used + i * sizeof(r), sizeof(r));
		vm.log.ranges.emplace_back(r.iova, r.iova + r.length - 1);
	}
}

void do_report(Vm &vm, Input &in)
{
	UserMem &mem = UserMem::get();
	Feature f(VFIO_DEVICE_FEATURE_GET |
			  VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
		  sizeof(struct vfio_device_feature_dma_logging_report));
	auto *r = static_cast<struct vfio_device_feature_dma_logging_report *>(
		f.data());
	r->iova = pick_iova(in, false);
	r->length = pick_iova(in, true);
	r->page_size = pick_page_size(in);

	/*
	 * The bitmap in data memory, with a canary after the bytes it
	 * occupies when those fit (a huge bitmap runs into the guard).
	 */
	size_t at = in.u16() % UserMem::data_size;
	uint8_t *bitmap = reinterpret_cast<uint8_t *>(mem.data()) + at;
	uint64_t nbytes = 0;
	bool checked = false;
	if (r->length && r->page_size &&
	    !(r->page_size & (r->page_size - 1))) {
		unsigned shift = static_cast<unsigned>(
			__builtin_ctzll(r->page_size));
		uint64_t nbits = ((r->length - 1) >> shift) + 1;
		nbytes = nbits / 8 + (nbits % 8 != 0);
		checked = nbytes + canary_len <= UserMem::data_size - at;
		if (checked)
			std::memset(bitmap + nbytes, canary, canary_len);
	}
	uint8_t where = in.u8();
	r->bitmap = (where & 7) == 7 ? mem.map_ptr(in.u64())
				     : reinterpret_cast<uintptr_t>(bitmap);
	uint8_t mode = in.u8();
	int ret = f.ioctl(vm.device, mode);
	if (mode & 4)
		return;	/* a PROBE reports nothing */
	if (ret == 0 && checked &&
	    r->bitmap == reinterpret_cast<uintptr_t>(bitmap))
		for (size_t i = 0; i < canary_len; i++)
			FUZZ_CHECK(bitmap[nbytes + i] == canary);

	/* Every logged write inside the report is in the bitmap. */
	if (ret == 0 && vm.log.on) {
		auto *bits = reinterpret_cast<const uint8_t *>(
			static_cast<uintptr_t>(r->bitmap));
		unsigned shift = static_cast<unsigned>(
			__builtin_ctzll(r->page_size));
		unsigned checked_writes = 0;
		for (uint64_t a : vm.log.written) {
			if (!vm.log.logged(a) || a < r->iova ||
			    a - r->iova >= r->length)
				continue;
			checked_writes++;
			uint64_t bit = (a - r->iova) >> shift;
			if (!(bits[bit / 8] & (1u << (bit % 8)))) {
				std::fprintf(stderr, "write at 0x%llx not "
					     "reported\n",
					     static_cast<unsigned long long>(a));
				FUZZ_CHECK(!"a logged DMA write is reported");
			}
		}
		if (getenv("UVFIO_FUZZ_DEBUG"))
			std::fprintf(stderr, "REPORT 0x%llx+0x%llx: %u writes "
				     "found in the bitmap\n",
				     static_cast<unsigned long long>(r->iova),
				     static_cast<unsigned long long>(r->length),
				     checked_writes);
	}
	/* Reported, or lost with a failed walk as in the kernel. */
	if (vm.log.on && r->length)
		vm.log.covered(r->iova, r->length);
}

void do_stop(Vm &vm, Input &in)
{
	Feature f(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
		  0);
	uint8_t mode = in.u8();
	if (!f.ioctl(vm.device, mode) && !(mode & 4))
		vm.log = Log();
}

/* A FILL of up to 64 KiB somewhere in guest pages 1.. */
void do_dma(Vm &vm, Input &in)
{
	uint64_t room = UserMem::guest_size - UserMem::page;
	uint64_t off = UserMem::page + in.u32() % room;
	uint64_t len = 1 + in.u16() % (UserMem::guest_size - off);
	vm.dma_fill(off, len, in.u8());
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
	uvfio_set_log_level(UVFIO_LOG_ERR - 1);
	UserMem::get();
	return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Input in(data, size);
	UserMem::get().reset();
	int fds_before = count_open_fds();

	FUZZ_CHECK(uvfio_sim_add(spec) == 0);
	{
		Vm vm;
		vm.open();
		for (unsigned ops = 0; ops < 32 && !in.empty(); ops++) {
			switch (in.u8() % 5) {
			case 0:
			case 1:
				do_start(vm, in);
				break;
			case 2:
				do_report(vm, in);
				break;
			case 3:
				do_stop(vm, in);
				break;
			case 4:
				do_dma(vm, in);
				break;
			}
		}
	}
	FUZZ_CHECK(uvfio_sim_remove(bdf) == 0);
	FUZZ_CHECK(count_open_fds() == fds_before);
	return 0;
}
