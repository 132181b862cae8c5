// SPDX-License-Identifier: GPL-2.0-only
/*
 * The simulated DMA function: registers, the engine thread, quiescing, the
 * device's own DMA dirty tracker and its migratable state.
 *
 * The engine holds the device lock only between DMA operations: a DMA
 * through the bus, an MSI-X message and the drain delay all run unlocked
 * with in_flight set, which is what quiesce, reset and bus-master clear
 * wait for. After any of them returns, the engine starts nothing new until
 * it is allowed to again.
 */
#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <thread>

#include <xxhash.h>

#include <uvfio/sim/simdev.h>

#include "sim_types.h"

namespace {

/* A log line through the bus: the platform prefixes the function's name. */
__attribute__((format(printf, 3, 4)))
void simdev_log(struct simdev *sd, int level, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!sd->bus.log)
		return;
	va_start(ap, fmt);
	std::vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sd->bus.log(sd->bus.opaque, level, msg);
}

/* Ask the platform whether this hit of a fault point fails. */
int simdev_should_fail(struct simdev *sd, const char *point)
{
	return sd->bus.should_fail ? sd->bus.should_fail(sd->bus.opaque, point)
				   : 0;
}

constexpr size_t CHUNK = 64 << 10;	/* the engine's bounce buffer */

u32 &reg(struct simdev *sd, u32 off)
{
	return sd->regs.r[off / 4];
}

u64 reg64(struct simdev *sd, u32 lo)
{
	return reg(sd, lo) | (u64)reg(sd, lo + 4) << 32;
}

void set_reg64(struct simdev *sd, u32 lo, u64 v)
{
	reg(sd, lo) = static_cast<u32>(v);
	reg(sd, lo + 4) = static_cast<u32>(v >> 32);
}

void reset_regs(struct simdev *sd)
{
	sd->regs = {};
	reg(sd, SIMDEV_REG_ID) = SIMDEV_ID_VALUE;
	reg(sd, SIMDEV_REG_VERSION) = SIMDEV_VERSION_VALUE;
}

u64 now_ns()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000000000ULL + (u64)ts.tv_nsec;
}

bool ring_size_valid(u32 size)
{
	return size && size <= SIMDEV_RING_MAX && !(size & (size - 1));
}

/* May the engine start a DMA now? Under lock. */
bool may_dma(struct simdev *sd)
{
	return !sd->exiting && sd->bus_master && !sd->quiesce &&
	       (reg(sd, SIMDEV_REG_CTRL) & SIMDEV_CTRL_ENABLE) &&
	       !(reg(sd, SIMDEV_REG_STATUS) &
		 (SIMDEV_STATUS_FAULT | SIMDEV_STATUS_BAD_DESC));
}

u32 status_value(struct simdev *sd)
{
	u32 st = reg(sd, SIMDEV_REG_STATUS) &
		 (SIMDEV_STATUS_FAULT | SIMDEV_STATUS_BAD_DESC);
	if (may_dma(sd))
		st |= SIMDEV_STATUS_ACTIVE;
	if (sd->quiesce)
		st |= SIMDEV_STATUS_QUIESCED;
	return st;
}

void wait_not_in_flight(struct simdev *sd, std::unique_lock<std::mutex> &l)
{
	sd->draining = true;
	sd->idle.wait(l, [sd] { return !sd->in_flight; });
	sd->draining = false;
}

constexpr u64 LOG_CP = SIMDEV_LOG_CHUNK_PAGES;
constexpr u64 LOG_CW = LOG_CP / 64;	/* words per chunk */

/*
 * Set bits [lo, hi] of a range's bitmap, after the DMA wrote the pages.
 * Always the RMW, with release, even for bits already set: the REPORT that
 * clears them then sees this write's data too, or leaves them set.
 *
 * Per chunk, the marker announces itself (markers + 1) before it loads
 * the chunk's buffer and leaves after its last OR. All four of those and
 * REPORT's swap and markers load are seq_cst: a marker that loaded the old
 * buffer incremented before the swap, so REPORT, which loads markers after
 * the swap, sees it until it has left (and then sees its ORs).
 */
void log_set_bits(const struct simdev_log_range &r, u64 lo, u64 hi)
{
	for (u64 c = lo / LOG_CP; c <= hi / LOG_CP; c++) {
		u64 base = c * LOG_CP;
		u64 clo = std::max(lo, base) - base;
		u64 chi = std::min(hi, base + LOG_CP - 1) - base;
		struct simdev_log_chunk &ch = r.chunks[c];
		std::atomic_ref<u32> markers(ch.markers);

		markers.fetch_add(1, std::memory_order_seq_cst);
		u64 *bits = std::atomic_ref<u64 *>(ch.bits).load(
			std::memory_order_seq_cst);
		for (u64 w = clo / 64; w <= chi / 64; w++) {
			u64 mask = ~0ULL;
			if (w == clo / 64)
				mask &= ~0ULL << (clo % 64);
			if (w == chi / 64)
				mask &= ~0ULL >> (63 - chi % 64);
			std::atomic_ref<u64>(bits[w]).fetch_or(
				mask, std::memory_order_release);
		}
		markers.fetch_sub(1, std::memory_order_seq_cst);
	}
}

void log_free_ranges(struct simdev *sd)
{
	for (auto &r : sd->log_ranges)
		std::free(r.chunks);
	sd->log_ranges.clear();
	std::free(sd->log_slab);
	sd->log_slab = nullptr;
	sd->log_spare = nullptr;
	sd->log_slab_bytes = 0;
	sd->log_table_bytes = 0;
}

/*
 * Report and clear a whole chunk: swap its buffer for the spare, wait for
 * the markers that may still hold the old one, then hand it to fn, which
 * reads it with plain loads (it is REPORT's alone now) and normally clears
 * it as it goes; else its non-zero cache lines are zeroed here. It is kept
 * as the spare.
 */
void log_report_chunk(struct simdev *sd, const struct simdev_log_range &r,
		      u64 c, simdev_log_bits_fn fn, void *arg)
{
	struct simdev_log_chunk &ch = r.chunks[c];
	u64 *old = std::atomic_ref<u64 *>(ch.bits).exchange(
		sd->log_spare, std::memory_order_seq_cst);
	std::atomic_ref<u32> markers(ch.markers);
	for (unsigned spins = 0; markers.load(std::memory_order_seq_cst);
	     spins++)
		if (spins >= 64)
			std::this_thread::yield();	/* one was preempted */

	const u64 first = r.first_page + c * LOG_CP;
	if (!fn(arg, first * sd->log_page_size, sd->log_page_size, old,
		LOG_CP))
		for (u64 l = 0; l < LOG_CW; l += 8)
			if ((old[l] | old[l + 1] | old[l + 2] | old[l + 3]) |
			    (old[l + 4] | old[l + 5] | old[l + 6] | old[l + 7]))
				std::memset(old + l, 0, 64);
	sd->log_spare = old;
}

/*
 * Report and clear bits [lo, hi] of chunk c (chunk-relative) with atomic
 * test-and-clear of each word, for chunks the window covers in part and a
 * range's last, shorter chunk. Runs of up to kBatch words go to fn.
 */
void log_report_atomic(struct simdev *sd, const struct simdev_log_range &r,
		       u64 c, u64 lo, u64 hi, simdev_log_bits_fn fn, void *arg)
{
	constexpr u64 kBatch = 512;
	u64 batch[kBatch];
	const u64 ps = sd->log_page_size;
	const u64 first = r.first_page + c * LOG_CP;
	u64 *bits = std::atomic_ref<u64 *>(r.chunks[c].bits).load(
		std::memory_order_relaxed);	/* only REPORT swaps it */
	const u64 wlo = lo / 64, whi = hi / 64;

	for (u64 b = wlo; b <= whi; b += kBatch) {
		u64 bend = std::min(whi, b + kBatch - 1);
		bool any_set = false;
		for (u64 w = b; w <= bend; w++) {
			/*
			 * Zero words are the common case: skip a cache line
			 * of them at a time (never the edge words, which are
			 * masked).
			 */
			if (w % 8 == 0 && w != wlo) {
				while (w + 8 <= bend) {
					u64 any = 0;
					for (u64 k = 0; k < 8; k++)
						any |= std::atomic_ref<u64>(
							       bits[w + k])
							       .load(std::memory_order_relaxed);
					if (any)
						break;
					for (u64 k = 0; k < 8; k++)
						batch[w - b + k] = 0;
					w += 8;
				}
			}
			u64 mask = ~0ULL;
			if (w == wlo)
				mask &= ~0ULL << (lo % 64);
			if (w == whi)
				mask &= ~0ULL >> (63 - hi % 64);
			std::atomic_ref<u64> word(bits[w]);
			u64 v = 0;
			/*
			 * Test-and-clear: a bit DMA sets after this is left
			 * for the next REPORT, none is lost. Bits outside
			 * the window stay as they are.
			 */
			if (word.load(std::memory_order_relaxed) & mask)
				v = mask == ~0ULL
					    ? word.exchange(
						      0, std::memory_order_acquire)
					    : word.fetch_and(
						      ~mask,
						      std::memory_order_acquire) &
						      mask;
			batch[w - b] = v;
			any_set |= v != 0;
		}
		if (any_set)
			fn(arg, (first + b * 64) * ps, ps, batch,
			   (bend - b + 1) * 64);
	}
}

/* The registry behind simdev_find. */
std::mutex registry_lock;
std::vector<struct simdev *> registry;

/*
 * One descriptor being executed, outside the lock. Errors: -EFAULT with
 * fault_iova set (a DMA fault), -EINVAL (a bad descriptor).
 */
struct exec_ctx {
	struct simdev *sd;
	u64 fault_iova = 0;
	std::vector<u8> buf = std::vector<u8>(CHUNK);
};

int dev_range_ok(struct simdev *sd, u64 off, u64 len)
{
	return off <= sd->mem_size && len <= sd->mem_size - off;
}

int guest_rw(exec_ctx *x, u64 iova, void *buf, size_t len, bool write)
{
	struct simdev *sd = x->sd;
	int ret = sd->bus.dma_rw(sd->bus.opaque, iova, buf, len, write);
	if (ret) {
		/*
		 * Whatever the platform's reason, the device sees an aborted
		 * transaction: a DMA fault, not a bad descriptor.
		 */
		x->fault_iova = iova;
		return -EFAULT;
	}
	if (write) {
		std::lock_guard<std::mutex> l(sd->lock);
		set_reg64(sd, SIMDEV_REG_DMA_WRITES_LO,
			  reg64(sd, SIMDEV_REG_DMA_WRITES_LO) + 1);
		set_reg64(sd, SIMDEV_REG_DMA_BYTES_LO,
			  reg64(sd, SIMDEV_REG_DMA_BYTES_LO) + len);
		set_reg64(sd, SIMDEV_REG_LAST_WRITE_NS_LO, now_ns());
	}
	if (write)
		simdev_log_dirty(sd, iova, len);
	return 0;
}

/* Mark [off, off + len) of device memory dirty. Under mem_lock. */
void mem_mark_dirty(struct simdev *sd, u64 off, u64 len)
{
	if (!sd->mem_tracking || !len)
		return;
	for (u64 p = off / SIMDEV_MEM_PAGE; p <= (off + len - 1) / SIMDEV_MEM_PAGE;
	     p++) {
		u64 bit = 1ULL << (p % 64);
		if (!(sd->mem_dirty[p / 64] & bit)) {
			sd->mem_dirty[p / 64] |= bit;
			sd->mem_dirty_count++;
		}
	}
}

/* Read len bytes at a descriptor address (guest IOVA or device memory). */
int src_read(exec_ctx *x, bool dev, u64 addr, u64 pos, size_t len)
{
	if (dev) {
		simdev_mem_read(x->sd, addr + pos, x->buf.data(), len);
		return 0;
	}
	return guest_rw(x, addr + pos, x->buf.data(), len, false);
}

int dst_write(exec_ctx *x, bool dev, u64 addr, u64 pos, size_t len)
{
	if (dev) {
		simdev_mem_write(x->sd, addr + pos, x->buf.data(), len);
		return 0;
	}
	return guest_rw(x, addr + pos, x->buf.data(), len, true);
}

void pattern_fill(u8 *buf, u64 seed, u64 pos, size_t len)
{
	/* pos is a multiple of CHUNK, hence of 8: whole words but the last. */
	for (size_t i = 0; i < len; i += 8) {
		u64 w = simdev_pattern_word(seed, (pos + i) / 8);
		std::memcpy(buf + i, &w, std::min<size_t>(8, len - i));
	}
}

int exec_desc(exec_ctx *x, struct simdev_desc *d)
{
	struct simdev *sd = x->sd;
	bool sdev = d->flags & SIMDEV_DESC_SRC_DEV;
	bool ddev = d->flags & SIMDEV_DESC_DST_DEV;
	bool reads = d->opcode == SIMDEV_OP_COPY ||
		     d->opcode == SIMDEV_OP_READ_CHECKSUM;
	bool writes = d->opcode == SIMDEV_OP_COPY ||
		      d->opcode == SIMDEV_OP_FILL ||
		      d->opcode == SIMDEV_OP_WRITE_PATTERN;

	if (d->opcode > SIMDEV_OP_READ_CHECKSUM ||
	    (d->flags & ~SIMDEV_DESC_FLAGS) || d->len > SIMDEV_DESC_LEN_MAX ||
	    (reads && sdev && !dev_range_ok(sd, d->src, d->len)) ||
	    (writes && ddev && !dev_range_ok(sd, d->dst, d->len)) ||
	    (reads && !sdev && d->src + d->len < d->src) ||
	    (writes && !ddev && d->dst + d->len < d->dst))
		return -EINVAL;

	XXH3_state_t *hs = nullptr;
	if (d->opcode == SIMDEV_OP_READ_CHECKSUM) {
		hs = XXH3_createState();
		if (!hs)
			return -ENOMEM;
		XXH3_64bits_reset_withSeed(hs, d->arg);
	}
	int ret = 0;
	for (u64 pos = 0; pos < d->len && !ret; pos += CHUNK) {
		size_t n = static_cast<size_t>(std::min<u64>(CHUNK, d->len - pos));
		switch (d->opcode) {
		case SIMDEV_OP_COPY:
			ret = src_read(x, sdev, d->src, pos, n);
			if (!ret)
				ret = dst_write(x, ddev, d->dst, pos, n);
			break;
		case SIMDEV_OP_FILL:
			std::memset(x->buf.data(), static_cast<int>(d->arg & 0xff),
				    n);
			ret = dst_write(x, ddev, d->dst, pos, n);
			break;
		case SIMDEV_OP_WRITE_PATTERN:
			pattern_fill(x->buf.data(), d->arg, pos, n);
			ret = dst_write(x, ddev, d->dst, pos, n);
			break;
		case SIMDEV_OP_READ_CHECKSUM:
			ret = src_read(x, sdev, d->src, pos, n);
			if (!ret)
				XXH3_64bits_update(hs, x->buf.data(), n);
			break;
		}
	}
	if (hs) {
		if (!ret)
			d->result = XXH3_64bits_digest(hs);
		XXH3_freeState(hs);
	}
	return ret;
}

/* Send an MSI-X message, or hold it while quiesced. Under lock (l). */
void raise_irq(struct simdev *sd, std::unique_lock<std::mutex> &l, u32 vec)
{
	if (vec >= sd->msix_count)
		return;
	if (sd->quiesce) {
		if (vec < 32)
			sd->pending_irqs |= 1u << vec;
		return;
	}
	l.unlock();
	sd->bus.msix(sd->bus.opaque, vec);
	l.lock();
}

/* A DMA fault halts the engine until the driver clears STATUS.FAULT. */
void report_fault(struct simdev *sd, std::unique_lock<std::mutex> &l,
		  u64 iova, const char *what)
{
	reg(sd, SIMDEV_REG_STATUS) |= SIMDEV_STATUS_FAULT;
	set_reg64(sd, SIMDEV_REG_FAULT_IOVA_LO, iova);
	reg(sd, SIMDEV_REG_ERRORS)++;
	simdev_log(sd, SIMDEV_LOG_ERR,
		   "DMA fault at IOVA %#llx (%s); engine halted",
		   (unsigned long long)iova, what);
	u32 irq = reg(sd, SIMDEV_REG_IRQ_CTRL);
	if (irq & SIMDEV_IRQ_FAULT_EN)
		raise_irq(sd, l, SIMDEV_IRQ_FAULT_VEC(irq));
}

/* Fetch the descriptor at RING_HEAD. Under lock, drops it for the DMA. */
void fetch_one(struct simdev *sd, std::unique_lock<std::mutex> &l)
{
	u32 size = reg(sd, SIMDEV_REG_RING_SIZE);
	u32 idx = reg(sd, SIMDEV_REG_RING_HEAD);
	u64 iova = reg64(sd, SIMDEV_REG_RING_BASE_LO) +
		   (u64)(idx & (size - 1)) * sizeof(struct simdev_desc);
	struct simdev_desc d;

	l.unlock();
	int ret = sd->bus.dma_rw(sd->bus.opaque, iova, &d, sizeof(d), false);
	l.lock();
	if (ret) {
		report_fault(sd, l, iova, "descriptor fetch");
		return;
	}
	sd->fetched.emplace_back(idx, d);
	reg(sd, SIMDEV_REG_RING_HEAD) = idx + 1;
}

/* Execute the oldest fetched descriptor and write its completion back. */
void execute_one(struct simdev *sd, std::unique_lock<std::mutex> &l,
		 exec_ctx *x)
{
	auto [idx, d] = sd->fetched.front();
	u32 size = reg(sd, SIMDEV_REG_RING_SIZE);
	u64 slot = reg64(sd, SIMDEV_REG_RING_BASE_LO) +
		   (u64)(idx & (size - 1)) * sizeof(struct simdev_desc);
	u64 seq = reg64(sd, SIMDEV_REG_COUNTER_LO) + 1;

	l.unlock();
	int ret = exec_desc(x, &d);
	if (sd->drain_us) {
		/* A slow device: finishing takes time once asked to stop. */
		bool slow;
		{
			std::lock_guard<std::mutex> g(sd->lock);
			slow = sd->draining || sd->quiesce;
		}
		if (slow) {
			struct timespec ts = {
				static_cast<time_t>(sd->drain_us / 1000000),
				static_cast<long>(sd->drain_us % 1000000) * 1000};
			nanosleep(&ts, nullptr);
		}
	}
	d.status = ret == -EFAULT ? SIMDEV_DESC_FAULT :
		   ret ? SIMDEV_DESC_BAD : SIMDEV_DESC_DONE;
	d.seq = static_cast<u32>(seq);
	if (ret)
		d.result = 0;
	u64 fault_iova = x->fault_iova;
	int wb = guest_rw(x, slot, &d, sizeof(d), true);
	l.lock();

	sd->fetched.pop_front();
	reg(sd, SIMDEV_REG_RING_DONE) = idx + 1;
	set_reg64(sd, SIMDEV_REG_COUNTER_LO, seq);
	if (ret == -EFAULT) {
		report_fault(sd, l, fault_iova, "descriptor data");
	} else if (wb) {
		report_fault(sd, l, slot, "completion write-back");
	} else if (ret) {
		reg(sd, SIMDEV_REG_STATUS) |= SIMDEV_STATUS_BAD_DESC;
		reg(sd, SIMDEV_REG_ERRORS)++;
		simdev_log(sd, SIMDEV_LOG_ERR, "bad descriptor %u (opcode %u "
			   "flags %#x len %llu); engine halted", idx, d.opcode,
			   d.flags, (unsigned long long)d.len);
	}
	u32 irq = reg(sd, SIMDEV_REG_IRQ_CTRL);
	if (!ret && !wb && (d.flags & SIMDEV_DESC_IRQ) &&
	    (irq & SIMDEV_IRQ_CMPL_EN))
		raise_irq(sd, l, SIMDEV_IRQ_CMPL_VEC(irq));
}

void engine_main(struct simdev *sd)
{
	exec_ctx x{sd};
	std::unique_lock<std::mutex> l(sd->lock);

	while (!sd->exiting) {
		bool ring = ring_size_valid(reg(sd, SIMDEV_REG_RING_SIZE));
		bool can = may_dma(sd) && ring;
		if (can && sd->fetched.size() < SIMDEV_PREFETCH &&
		    reg(sd, SIMDEV_REG_RING_HEAD) !=
			    reg(sd, SIMDEV_REG_RING_TAIL)) {
			sd->in_flight = true;
			fetch_one(sd, l);
		} else if (can && !sd->fetched.empty()) {
			sd->in_flight = true;
			execute_one(sd, l, &x);
		} else {
			sd->idle.notify_all();
			sd->wake.wait(l);
			continue;
		}
		sd->in_flight = false;
		sd->idle.notify_all();
	}
}

void write_reg(struct simdev *sd, u32 off, u32 val)
{
	switch (off) {
	case SIMDEV_REG_CTRL:
		reg(sd, off) = val & SIMDEV_CTRL_ENABLE;
		break;
	case SIMDEV_REG_STATUS:
		reg(sd, off) &= ~(val & (SIMDEV_STATUS_FAULT |
					 SIMDEV_STATUS_BAD_DESC));
		break;
	case SIMDEV_REG_IRQ_CTRL:
		reg(sd, off) = val & 0x00ffff03u;
		break;
	case SIMDEV_REG_RING_SIZE:
		/* Hardware keeps only sizes it can use. */
		if (!val || ring_size_valid(val))
			reg(sd, off) = val;
		break;
	case SIMDEV_REG_RING_BASE_LO:
		reg(sd, off) = val & ~63u;
		break;
	case SIMDEV_REG_RING_BASE_HI:
	case SIMDEV_REG_RING_TAIL:
	case SIMDEV_REG_SCRATCH:
		reg(sd, off) = val;
		break;
	case SIMDEV_REG_DOORBELL:
		reg(sd, SIMDEV_REG_RING_TAIL) = val;
		break;
	default:
		return;	/* read-only */
	}
	sd->wake.notify_all();
}

} // namespace

int simdev_init(struct simdev *sd)
{
	if (!sd->mem || !sd->mem_size || !sd->bus.dma_rw || !sd->bus.msix ||
	    sd->msix_count > SIMDEV_MSIX_MAX)
		return -EINVAL;
	reset_regs(sd);
	try {
		std::lock_guard<std::mutex> l(registry_lock);
		registry.push_back(sd);
	} catch (...) {
		return -ENOMEM;
	}
	try {
		sd->engine = std::thread(engine_main, sd);
	} catch (...) {
		std::lock_guard<std::mutex> l(registry_lock);
		std::erase(registry, sd);
		return -ENOMEM;
	}
	return 0;
}

void simdev_exit(struct simdev *sd)
{
	{
		std::lock_guard<std::mutex> l(sd->lock);
		sd->exiting = true;
		sd->wake.notify_all();
	}
	if (sd->engine.joinable())
		sd->engine.join();
	{
		std::lock_guard<std::mutex> l(registry_lock);
		std::erase(registry, sd);
	}
	/* The driver's log_stop may not have run (a device torn down). */
	std::unique_lock<std::shared_mutex> l(sd->log_lock);
	sd->logging = false;
	log_free_ranges(sd);
}

struct simdev *simdev_find(const char *name)
{
	std::lock_guard<std::mutex> l(registry_lock);
	for (struct simdev *sd : registry)
		if (sd->name == name)
			return sd;
	return nullptr;
}

void simdev_bar0_read(struct simdev *sd, u64 off, void *buf, size_t len)
{
	u8 snap[SIMDEV_NUM_REGS * 4];
	{
		std::lock_guard<std::mutex> l(sd->lock);
		std::memcpy(snap, sd->regs.r, sizeof(snap));
		u32 st = status_value(sd);
		std::memcpy(snap + SIMDEV_REG_STATUS, &st, 4);
		std::memset(snap + SIMDEV_REG_DOORBELL, 0, 4);	/* write-only */
	}
	u8 *out = static_cast<u8 *>(buf);
	for (size_t i = 0; i < len; i++)
		out[i] = off + i < sizeof(snap) ? snap[off + i] : 0;
}

void simdev_bar0_write(struct simdev *sd, u64 off, const void *buf,
		       size_t len)
{
	const u8 *in = static_cast<const u8 *>(buf);
	std::lock_guard<std::mutex> l(sd->lock);
	/* Whole aligned dwords only; the bytes of a partial one are dropped. */
	for (u64 o = (off + 3) & ~3ULL; o + 4 <= off + len; o += 4) {
		if (o >= SIMDEV_NUM_REGS * 4)
			break;
		u32 v;
		std::memcpy(&v, in + (o - off), 4);
		write_reg(sd, static_cast<u32>(o), v);
	}
}

void simdev_set_bus_master(struct simdev *sd, bool on)
{
	std::unique_lock<std::mutex> l(sd->lock);
	sd->bus_master = on;
	if (on)
		sd->wake.notify_all();
	else
		wait_not_in_flight(sd, l);	/* no DMA once it is off */
}

void simdev_quiesce(struct simdev *sd)
{
	std::unique_lock<std::mutex> l(sd->lock);
	sd->quiesce = true;
	wait_not_in_flight(sd, l);
}

void simdev_unquiesce(struct simdev *sd)
{
	u32 held;
	{
		std::lock_guard<std::mutex> l(sd->lock);
		sd->quiesce = false;
		held = sd->pending_irqs;
		sd->pending_irqs = 0;
		sd->wake.notify_all();
	}
	for (u32 v = 0; v < 32; v++)
		if (held & (1u << v))
			sd->bus.msix(sd->bus.opaque, v);
}

void simdev_reset(struct simdev *sd)
{
	std::unique_lock<std::mutex> l(sd->lock);
	wait_not_in_flight(sd, l);
	reset_regs(sd);
	sd->fetched.clear();
	sd->pending_irqs = 0;
}

void simdev_save_state(struct simdev *sd, struct simdev_state *st)
{
	std::lock_guard<std::mutex> l(sd->lock);
	*st = {};
	st->regs = sd->regs;
	st->pending_irqs = sd->pending_irqs;
	st->nr_fetched = static_cast<u32>(sd->fetched.size());
	for (size_t i = 0; i < sd->fetched.size(); i++) {
		st->fetched_index[i] = sd->fetched[i].first;
		st->fetched[i] = sd->fetched[i].second;
	}
}

int simdev_load_state(struct simdev *sd, const struct simdev_state *st)
{
	/* The device's own refusal of a state (a firmware load failing). */
	int err = simdev_should_fail(sd, SIMDEV_FAULT_LOAD_STATE);
	if (err)
		return err;
	u32 size = st->regs.r[SIMDEV_REG_RING_SIZE / 4];
	if (st->nr_fetched > SIMDEV_PREFETCH || (size && !ring_size_valid(size)))
		return -EINVAL;
	std::unique_lock<std::mutex> l(sd->lock);
	wait_not_in_flight(sd, l);
	sd->regs = st->regs;
	reg(sd, SIMDEV_REG_ID) = SIMDEV_ID_VALUE;
	reg(sd, SIMDEV_REG_VERSION) = SIMDEV_VERSION_VALUE;
	reg(sd, SIMDEV_REG_DOORBELL) = 0;
	sd->pending_irqs = st->pending_irqs;
	sd->fetched.clear();
	for (u32 i = 0; i < st->nr_fetched; i++)
		sd->fetched.emplace_back(st->fetched_index[i], st->fetched[i]);
	sd->wake.notify_all();
	return 0;
}

int simdev_log_start(struct simdev *sd,
		     std::vector<std::pair<u64, u64>> ranges, u64 page_size)
{
	if (!page_size || (page_size & (page_size - 1)))
		return -EINVAL;
	for (const auto &[s, e] : ranges)
		if (s >= e)
			return -EINVAL;
	std::sort(ranges.begin(), ranges.end());

	/* Page spans [first, last]; ranges sharing a page get one bitmap. */
	std::vector<std::pair<u64, u64>> spans;
	u64 pages = 0;
	try {
		for (const auto &[s, e] : ranges) {
			u64 first = s / page_size, last = (e - 1) / page_size;
			if (!spans.empty() && first <= spans.back().second)
				spans.back().second =
					std::max(spans.back().second, last);
			else
				spans.emplace_back(first, last);
		}
	} catch (...) {
		return -ENOMEM;
	}
	for (const auto &[first, last] : spans) {
		if (last - first >= SIMDEV_LOG_MAX_PAGES - pages)
			return -E2BIG;
		pages += last - first + 1;
	}

	/* One allocation holds every buffer: ranges' words, then the spare. */
	u64 words = 0;
	bool whole = false;
	for (const auto &[first, last] : spans) {
		u64 n = last - first + 1;
		words += (n + 63) / 64;
		whole |= n >= LOG_CP;
	}
	u64 slab_words = words + (whole ? LOG_CW : 0);

	std::unique_lock<std::shared_mutex> l(sd->log_lock);
	if (sd->logging)
		return -EBUSY;
	try {
		/*
		 * calloc: a large bitmap costs memory only where DMA has
		 * marked pages, and START stays cheap.
		 */
		sd->log_slab = static_cast<u64 *>(std::calloc(slab_words, 8));
		if (!sd->log_slab)
			throw std::bad_alloc();
		sd->log_slab_bytes = slab_words * 8;
		sd->log_spare = whole ? sd->log_slab + words : nullptr;
		u64 *next = sd->log_slab;
		for (const auto &[first, last] : spans) {
			struct simdev_log_range r = {first, last - first + 1,
						     nullptr};
			u64 n = (r.nbits + LOG_CP - 1) / LOG_CP;
			r.chunks = static_cast<struct simdev_log_chunk *>(
				std::calloc(n, sizeof(*r.chunks)));
			if (!r.chunks)
				throw std::bad_alloc();
			sd->log_table_bytes += n * sizeof(*r.chunks);
			for (u64 c = 0; c < n; c++)
				r.chunks[c].bits = next + c * LOG_CW;
			next += (r.nbits + 63) / 64;
			try {
				sd->log_ranges.push_back(r);
			} catch (...) {
				std::free(r.chunks);
				throw;
			}
		}
	} catch (...) {
		log_free_ranges(sd);
		return -ENOMEM;
	}
	sd->log_page_size = page_size;
	sd->logging = true;
	return 0;
}

void simdev_log_stop(struct simdev *sd)
{
	std::unique_lock<std::shared_mutex> l(sd->log_lock);
	sd->logging = false;
	log_free_ranges(sd);
}

void simdev_log_dirty(struct simdev *sd, u64 iova, u64 len)
{
	if (!len)
		return;
	std::shared_lock<std::shared_mutex> l(sd->log_lock);
	if (!sd->logging)
		return;
	u64 ps = sd->log_page_size;
	u64 first = iova / ps;
	/* A write that wraps the IOVA space ends at its top. */
	u64 last = (len - 1 > ~0ULL - iova ? ~0ULL : iova + len - 1) / ps;
	for (const auto &r : sd->log_ranges) {
		u64 lo = std::max(first, r.first_page);
		u64 hi = std::min(last, r.first_page + r.nbits - 1);
		if (lo <= hi)
			log_set_bits(r, lo - r.first_page, hi - r.first_page);
	}
}

int simdev_log_read_and_clear_bits(struct simdev *sd, u64 iova, u64 length,
				   simdev_log_bits_fn fn, void *arg)
{
	std::lock_guard<std::mutex> rl(sd->log_report_lock);
	std::shared_lock<std::shared_mutex> l(sd->log_lock);
	if (!sd->logging)
		return -EINVAL;
	if (!length)
		return 0;
	const u64 ps = sd->log_page_size;
	const u64 first = iova / ps;
	const u64 last = (length - 1 > ~0ULL - iova ? ~0ULL
						    : iova + length - 1) / ps;

	for (const auto &r : sd->log_ranges) {
		if (r.first_page > last)
			break;	/* sorted */
		u64 lo = std::max(first, r.first_page);
		u64 hi = std::min(last, r.first_page + r.nbits - 1);
		if (lo > hi)
			continue;
		lo -= r.first_page;
		hi -= r.first_page;
		for (u64 c = lo / LOG_CP; c <= hi / LOG_CP; c++) {
			u64 base = c * LOG_CP;
			u64 clo = std::max(lo, base) - base;
			u64 chi = std::min(hi, base + LOG_CP - 1) - base;
			/* Whole chunks only: a short last one is never swapped. */
			if (clo == 0 && chi == LOG_CP - 1)
				log_report_chunk(sd, r, c, fn, arg);
			else
				log_report_atomic(sd, r, c, clo, chi, fn, arg);
		}
	}
	return 0;
}

namespace {

struct per_page {
	void (*fn)(void *arg, u64 page_iova, u64 page_size);
	void *arg;
};

bool per_page_bits(void *arg, u64 run_iova, u64 ps, u64 *bits, u64 nbits)
{
	auto *p = static_cast<per_page *>(arg);
	for (u64 w = 0; w < nbits / 64; w++)
		for (u64 v = bits[w]; v; v &= v - 1)
			p->fn(p->arg,
			      run_iova + (w * 64 + std::countr_zero(v)) * ps, ps);
	return false;
}

} // namespace

int simdev_log_read_and_clear(struct simdev *sd, u64 iova, u64 length,
			      void (*fn)(void *arg, u64 page_iova,
					 u64 page_size),
			      void *arg)
{
	per_page p = {fn, arg};
	return simdev_log_read_and_clear_bits(sd, iova, length, per_page_bits,
					      &p);
}

u64 simdev_log_bytes(struct simdev *sd)
{
	std::shared_lock<std::shared_mutex> l(sd->log_lock);
	return sd->log_slab_bytes + sd->log_table_bytes +
	       sd->log_ranges.size() * sizeof(struct simdev_log_range);
}

void simdev_mem_read(struct simdev *sd, u64 off, void *buf, size_t len)
{
	std::lock_guard<std::mutex> l(sd->mem_lock);
	std::memcpy(buf, sd->mem + off, len);
}

void simdev_mem_write(struct simdev *sd, u64 off, const void *buf,
		      size_t len)
{
	std::lock_guard<std::mutex> l(sd->mem_lock);
	std::memcpy(sd->mem + off, buf, len);
	mem_mark_dirty(sd, off, len);
}

int simdev_mem_track_start(struct simdev *sd)
{
	u64 words = (sd->mem_size / SIMDEV_MEM_PAGE + 63) / 64;
	std::lock_guard<std::mutex> l(sd->mem_lock);
	try {
		sd->mem_dirty.assign(words, 0);
	} catch (...) {
		return -ENOMEM;
	}
	sd->mem_dirty_count = 0;
	sd->mem_cursor = 0;
	sd->mem_tracking = true;
	return 0;
}

void simdev_mem_track_stop(struct simdev *sd)
{
	std::lock_guard<std::mutex> l(sd->mem_lock);
	sd->mem_tracking = false;
	std::vector<u64>().swap(sd->mem_dirty);
	sd->mem_dirty_count = 0;
}

bool simdev_mem_take_dirty(struct simdev *sd, u64 max_len, u64 *off,
			   u64 *len)
{
	std::lock_guard<std::mutex> l(sd->mem_lock);
	const u64 pages = sd->mem_size / SIMDEV_MEM_PAGE;
	const u64 max_pages = std::max<u64>(1, max_len / SIMDEV_MEM_PAGE);

	if (!sd->mem_tracking || !sd->mem_dirty_count)
		return false;
	/* The first dirty page at or after the cursor, wrapping once. */
	u64 p = sd->mem_cursor % pages;
	for (u64 n = 0; n < pages; n++, p = (p + 1) % pages) {
		if (!(p % 64) && !sd->mem_dirty[p / 64] && n + 64 <= pages) {
			n += 63;
			p += 63;
			continue;
		}
		if (sd->mem_dirty[p / 64] & (1ULL << (p % 64)))
			break;
	}
	u64 first = p, count = 0;
	while (p < pages && count < max_pages &&
	       (sd->mem_dirty[p / 64] & (1ULL << (p % 64)))) {
		sd->mem_dirty[p / 64] &= ~(1ULL << (p % 64));
		sd->mem_dirty_count--;
		count++;
		p++;
	}
	sd->mem_cursor = p % pages;
	*off = first * SIMDEV_MEM_PAGE;
	*len = count * SIMDEV_MEM_PAGE;
	return true;
}

u64 simdev_mem_dirty_bytes(struct simdev *sd)
{
	std::lock_guard<std::mutex> l(sd->mem_lock);
	return sd->mem_dirty_count * SIMDEV_MEM_PAGE;
}

void simdev_mem_mark_all(struct simdev *sd)
{
	std::lock_guard<std::mutex> l(sd->mem_lock);
	mem_mark_dirty(sd, 0, sd->mem_size);
}

void simdev_mem_note_mapped(struct simdev *sd)
{
	std::lock_guard<std::mutex> l(sd->mem_lock);
	sd->mem_mapped = true;
}

bool simdev_mem_was_mapped(struct simdev *sd)
{
	std::lock_guard<std::mutex> l(sd->mem_lock);
	return sd->mem_mapped;
}
