// SPDX-License-Identifier: GPL-2.0-only
/*
 * The workload generator: a guest driver for the simulated DMA function,
 * through the syscall surface only.
 */
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include <uvfio/sim/simdev_regs.h>
#include <uvfio/tools/workload.h>
#include <uvfio/uvfio.h>

namespace {

uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void sleep_ms(unsigned int ms)
{
	struct timespec ts = {static_cast<time_t>(ms / 1000),
			      static_cast<long>(ms % 1000) * 1000000L};
	nanosleep(&ts, nullptr);
}

/* BAR0's offset on the device fd, from GET_REGION_INFO. */
int bar0_offset(int fd, uint64_t *off, uint64_t *size)
{
	struct vfio_region_info info = {};
	info.argsz = sizeof(info);
	info.index = VFIO_PCI_BAR0_REGION_INDEX;
	if (uvfio_ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &info))
		return -errno;
	*off = info.offset;
	*size = info.size;
	return 0;
}

} // namespace

int sim_workload::read_reg(uint32_t off, uint32_t *val)
{
	if (uvfio_pread(cfg_.device_fd, val, 4,
			static_cast<off_t>(bar0_ + off)) != 4)
		return -errno;
	return 0;
}

int sim_workload::write_reg(uint32_t off, uint32_t val)
{
	if (uvfio_pwrite(cfg_.device_fd, &val, 4,
			 static_cast<off_t>(bar0_ + off)) != 4)
		return -errno;
	return 0;
}

int sim_workload::start(const sim_workload_config &cfg)
{
	if (thread_.joinable())
		return -EBUSY;
	uint64_t ring_bytes = uint64_t(cfg.ring_entries) *
			      sizeof(struct simdev_desc);
	uint64_t data_off = (ring_bytes + 4095) & ~4095ULL;
	if (cfg.device_fd < 0 || !cfg.guest || !cfg.ring_entries ||
	    cfg.ring_entries > SIMDEV_RING_MAX ||
	    (cfg.ring_entries & (cfg.ring_entries - 1)) || !cfg.max_len ||
	    cfg.max_len > SIMDEV_DESC_LEN_MAX ||
	    cfg.guest_size < data_off + cfg.max_len ||
	    cfg.dev_mem_size < cfg.max_len || (cfg.guest_iova & 63) ||
	    cfg.irq_vector >= int(SIMDEV_MSIX_MAX) ||
	    (cfg.npeers && !cfg.peers))
		return -EINVAL;
	for (uint32_t i = 0; i < cfg.npeers; i++)
		if (!cfg.peers[i].size)
			return -EINVAL;

	cfg_ = cfg;
	try {
		peers_.assign(cfg.peers, cfg.peers + cfg.npeers);
		slot_peer_.assign(cfg.ring_entries, -1);
		peer_done_ = std::make_unique<std::atomic<uint64_t>[]>(
			cfg.npeers ? cfg.npeers : 1);
	} catch (...) {
		return -ENOMEM;
	}
	/* The caller's array need not outlive start(). */
	cfg_.peers = nullptr;
	data_off_ = data_off;
	rng_ = cfg.seed;
	posted_ = 0;
	completed_ = 0;
	error_ = 0;
	stop_ = false;

	uint32_t tail, done, id;
	uint64_t bar0_size = 0;
	int ret = bar0_offset(cfg.device_fd, &bar0_, &bar0_size);
	if (ret)
		return ret;
	if (bar0_size < SIMDEV_BAR0_SIZE)
		return -EINVAL;
	if ((ret = read_reg(SIMDEV_REG_ID, &id)) ||
	    (ret = read_reg(SIMDEV_REG_RING_TAIL, &tail)) ||
	    (ret = read_reg(SIMDEV_REG_RING_DONE, &done)))
		return ret;
	if (id != SIMDEV_ID_VALUE)
		return -EINVAL;	/* not the simulated DMA function */
	if (tail != done)
		return -EBUSY;
	first_ = tail_ = seen_done_ = tail;
	std::memset(cfg.guest, 0, ring_bytes);

	uint32_t irq = 0;
	if (cfg.irq_vector >= 0)
		irq = SIMDEV_IRQ_CMPL_EN | uint32_t(cfg.irq_vector) << 8;
	if ((ret = write_reg(SIMDEV_REG_CTRL, 0)) ||
	    (ret = write_reg(SIMDEV_REG_RING_BASE_LO,
			     static_cast<uint32_t>(cfg.guest_iova))) ||
	    (ret = write_reg(SIMDEV_REG_RING_BASE_HI,
			     static_cast<uint32_t>(cfg.guest_iova >> 32))) ||
	    (ret = write_reg(SIMDEV_REG_RING_SIZE, cfg.ring_entries)) ||
	    (ret = write_reg(SIMDEV_REG_IRQ_CTRL, irq)) ||
	    (ret = write_reg(SIMDEV_REG_CTRL, SIMDEV_CTRL_ENABLE)))
		return ret;
	try {
		thread_ = std::thread(&sim_workload::run, this);
	} catch (...) {
		return -ENOMEM;
	}
	return 0;
}

void sim_workload::stop()
{
	stop_ = true;
	if (thread_.joinable())
		thread_.join();
}

/* A descriptor drawn from the seeded stream. */
void sim_workload::make_desc(void *out)
{
	struct simdev_desc d = {};
	uint64_t data_size = cfg_.guest_size - data_off_;
	uint64_t r = splitmix64(&rng_);
	bool src_dev = r & 1, dst_dev = r & 2;

	d.len = 1 + splitmix64(&rng_) % cfg_.max_len;
	uint64_t g1 = cfg_.guest_iova + data_off_ +
		      splitmix64(&rng_) % (data_size - d.len + 1);
	uint64_t g2 = cfg_.guest_iova + data_off_ +
		      splitmix64(&rng_) % (data_size - d.len + 1);
	uint64_t m1 = splitmix64(&rng_) % (cfg_.dev_mem_size - d.len + 1);
	uint64_t m2 = splitmix64(&rng_) % (cfg_.dev_mem_size - d.len + 1);
	d.arg = splitmix64(&rng_);
	switch ((r >> 8) % 8) {
	case 0:
	case 1:
	case 2:
		d.opcode = SIMDEV_OP_COPY;
		break;
	case 3:
		d.opcode = SIMDEV_OP_FILL;
		break;
	case 4:
	case 5:
		d.opcode = SIMDEV_OP_WRITE_PATTERN;
		break;
	default:
		d.opcode = SIMDEV_OP_READ_CHECKSUM;
		break;
	}
	d.src = src_dev ? m1 : g1;
	d.dst = dst_dev ? m2 : g2;
	last_peer_ = -1;
	/*
	 * Drawn only with peers, so that a config without them keeps the
	 * descriptor stream it always had for its seed.
	 */
	if (!peers_.empty() && cfg_.peer_share &&
	    splitmix64(&rng_) % cfg_.peer_share == 0) {
		uint64_t r2 = splitmix64(&rng_);
		uint32_t w = uint32_t(r2 % peers_.size());
		const sim_workload_peer &p = peers_[w];
		static constexpr uint32_t ops[] = {SIMDEV_OP_WRITE_PATTERN,
						   SIMDEV_OP_FILL, SIMDEV_OP_COPY};
		d.opcode = ops[(r2 >> 32) % 3];
		/* Shorter only: COPY's source, drawn for d.len, still fits. */
		d.len = uint32_t(std::min<uint64_t>(d.len, p.size));
		d.dst = p.iova + splitmix64(&rng_) % (p.size - d.len + 1);
		dst_dev = false;
		last_peer_ = int32_t(w);
	}
	d.flags = (src_dev ? SIMDEV_DESC_SRC_DEV : 0) |
		  (dst_dev ? SIMDEV_DESC_DST_DEV : 0);
	if (cfg_.irq_vector >= 0)
		d.flags |= SIMDEV_DESC_IRQ;
	std::memcpy(out, &d, sizeof(d));
}

void sim_workload::run()
{
	using clock = std::chrono::steady_clock;
	const auto t0 = clock::now();
	auto *ring = static_cast<struct simdev_desc *>(cfg_.guest);
	uint32_t done = first_;
	int ret = 0;

	while (!stop_ && (!cfg_.count || posted_ < cfg_.count)) {
		/* A slot is free once the device completed what was in it. */
		while (!stop_ && tail_ - done >= cfg_.ring_entries) {
			if ((ret = read_reg(SIMDEV_REG_RING_DONE, &done)))
				goto out;
			note_done(done);
			completed_ = done - first_;
			if (tail_ - done >= cfg_.ring_entries)
				sleep_ms(1);
		}
		if (stop_)
			break;
		if (cfg_.rate) {
			auto due = t0 + std::chrono::microseconds(
						posted_ * 1000000 / cfg_.rate);
			std::this_thread::sleep_until(due);
		}
		make_desc(&ring[tail_ & (cfg_.ring_entries - 1)]);
		slot_peer_[tail_ & (cfg_.ring_entries - 1)] = last_peer_;
		tail_++;
		if ((ret = write_reg(SIMDEV_REG_DOORBELL, tail_)))
			goto out;
		posted_++;
		if (!(posted_ % 16) &&
		    (ret = read_reg(SIMDEV_REG_RING_DONE, &done)))
			goto out;
		note_done(done);
		completed_ = done - first_;
	}
out:
	if (ret)
		error_ = ret;
}

/* Count the peer writes among the descriptors completed since last time. */
void sim_workload::note_done(uint32_t done)
{
	if (peers_.empty())
		return;
	/* Never past what was posted: a reset device's counter is no news. */
	uint32_t n = std::min(done - seen_done_, tail_ - seen_done_);
	for (uint32_t k = 0; k < n; k++) {
		int32_t w = slot_peer_[(seen_done_ + k) & (cfg_.ring_entries - 1)];
		if (w >= 0)
			peer_done_[w].fetch_add(1, std::memory_order_relaxed);
	}
	seen_done_ += n;
}

uint64_t sim_workload::peer_writes_done(uint32_t i) const
{
	if (i >= peers_.size() || !peer_done_)
		return 0;
	return peer_done_[i].load(std::memory_order_relaxed);
}

int sim_workload::wait_done(unsigned int timeout_ms)
{
	auto deadline = std::chrono::steady_clock::now() +
			std::chrono::milliseconds(timeout_ms);
	if (thread_.joinable() && cfg_.count) {
		/* The thread ends by itself once it posted count. */
		while (posted_ < cfg_.count && !error_) {
			if (std::chrono::steady_clock::now() > deadline)
				return -ETIMEDOUT;
			sleep_ms(1);
		}
	}
	for (;;) {
		if (error_)
			return error_;
		uint32_t done;
		int ret = read_reg(SIMDEV_REG_RING_DONE, &done);
		if (ret)
			return ret;
		if (done - first_ >= posted_) {
			completed_ = done - first_;
			return 0;
		}
		if (std::chrono::steady_clock::now() > deadline)
			return -ETIMEDOUT;
		sleep_ms(1);
	}
}
