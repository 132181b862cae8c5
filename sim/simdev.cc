// SPDX-License-Identifier: GPL-2.0-only
/*
 * The simulated DMA function: registers, the engine thread, quiescing
 * and its migratable state. Device memory and its pre-copy dirty tracking
 * are simdev_mem.cc; the DMA dirty tracker (DMA logging) simdev_log.cc.
 *
 * The engine holds the device lock only between DMA operations: a DMA
 * through the bus, an MSI-X message and the drain delay all run unlocked
 * with in_flight set, which is what quiesce, reset and bus-master clear
 * wait for. After any of them returns, the engine starts nothing new until
 * it is allowed to again.
 */
#include <algorithm>
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
#include "simdev_wp.h"

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
	simdev_log_stop(sd);
	/* Stores blocked on its mappings go on, into memory nobody tracks. */
	simdev_wp_exit(sd);
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
