/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/tools/workload.h> - a guest driver for the simulated DMA function,
 * to keep a device busy during a migration. It uses only the syscall
 * surface (<uvfio/uvfio.h>): it programs the ring through BAR0 writes on
 * the device fd and posts descriptors into guest memory, which the caller
 * owns and has mapped into the device's container at guest_iova.
 *
 * Guest memory layout: the ring (ring_entries * 64 bytes) first, then the
 * data area from the next 4 KiB boundary. The descriptors (opcode, lengths,
 * addresses, seeds) come from a splitmix64 stream seeded with seed, and the
 * generator never writes the data area itself, so the same seed and count
 * give the same guest memory and device memory, however the run is timed
 * and however often the device is stopped and resumed meanwhile.
 *
 * Peers: with peers set, one descriptor in peer_share (a seeded choice)
 * writes into one of the peer windows (WRITE_PATTERN, FILL or COPY; dst
 * an IOVA in the window, no DST_DEV flag): DMA to another device's BAR
 * that the VMM mapped into the container, as a P2P-capable guest does.
 * Without peers the descriptor stream is the same as it always was.
 *
 * While the ring is full (a stopped device, or a fast generator) the
 * thread sleeps in 1 ms steps reading RING_DONE: it waits, it does not
 * spin. A failed BAR access (the device was reset, closed or removed)
 * ends the thread and is kept in error().
 */
#ifndef UVFIO_TOOLS_WORKLOAD_H
#define UVFIO_TOOLS_WORKLOAD_H

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

/* A peer device's BAR as the container maps it: [iova, iova + size). */
struct sim_workload_peer {
	uint64_t iova = 0;
	uint64_t size = 0;
};

struct sim_workload_config {
	int device_fd = -1;		/* from uvfio_open / GET_DEVICE_FD */
	void *guest = nullptr;		/* guest memory, as the CPU sees it */
	uint64_t guest_iova = 0;	/* where the container maps it */
	uint64_t guest_size = 0;	/* at least the ring plus 64 KiB */
	uint64_t dev_mem_size = 0;	/* BAR2 size (GET_REGION_INFO) */
	uint64_t seed = 0;
	uint32_t rate = 0;		/* descriptors per second; 0: no limit */
	uint64_t count = 0;		/* stop posting after this many; 0: no
					 * limit */
	uint32_t ring_entries = 256;	/* power of two, <= SIMDEV_RING_MAX */
	uint32_t max_len = 64 << 10;	/* longest transfer, bytes */
	int irq_vector = -1;		/* completion MSI-X vector; -1: none */
	/* Added later, so at the end: */
	const sim_workload_peer *peers = nullptr; /* copied by start() */
	uint32_t npeers = 0;
	uint32_t peer_share = 4;	/* 1 in peer_share descriptors goes to
					 * a peer; 0: none */
};

class sim_workload
{
public:
	sim_workload() = default;
	~sim_workload() { stop(); }
	sim_workload(const sim_workload &) = delete;
	sim_workload &operator=(const sim_workload &) = delete;

	/*
	 * Program the ring (the device's ring must be idle: RING_DONE equal
	 * to RING_TAIL) and start posting. 0, -EINVAL for a configuration
	 * that does not fit, -EBUSY when running or the ring is busy, or the
	 * errno of a failed BAR access.
	 */
	int start(const sim_workload_config &cfg);
	/* Stop posting and join the thread. Posted descriptors stay posted. */
	void stop();
	/*
	 * Wait until everything posted is complete (count reached and
	 * RING_DONE caught up), for at most timeout_ms. 0, -ETIMEDOUT, or
	 * the thread's error.
	 */
	int wait_done(unsigned int timeout_ms);

	uint64_t posted() const { return posted_.load(); }
	uint64_t completed() const { return completed_.load(); }
	int error() const { return error_.load(); }
	/*
	 * Descriptors into peer window i (the config's order) the device has
	 * completed, as the posting thread last saw RING_DONE (it reads it
	 * at least every 16 posts and while the ring is full); 0 for an i
	 * out of range.
	 */
	uint64_t peer_writes_done(uint32_t i) const;

private:
	void run();
	int read_reg(uint32_t off, uint32_t *val);
	int write_reg(uint32_t off, uint32_t val);
	void make_desc(void *desc);

	sim_workload_config cfg_;
	uint64_t rng_ = 0;
	uint64_t bar0_ = 0;		/* BAR0's offset on the device fd */
	uint64_t data_off_ = 0;		/* data area, from guest start */
	uint32_t tail_ = 0;		/* next index to post */
	uint32_t first_ = 0;		/* RING_TAIL at start */
	std::thread thread_;
	std::atomic<bool> stop_{false};
	std::atomic<uint64_t> posted_{0};
	std::atomic<uint64_t> completed_{0};
	std::atomic<int> error_{0};
	/* Added later, so at the end: */
	void note_done(uint32_t done);
	std::vector<sim_workload_peer> peers_;
	std::vector<int32_t> slot_peer_;	/* per ring slot: peer or -1 */
	std::unique_ptr<std::atomic<uint64_t>[]> peer_done_;
	uint32_t seen_done_ = 0;		/* RING_DONE note_done() counted */
	int32_t last_peer_ = -1;		/* make_desc()'s choice */
};

#endif /* UVFIO_TOOLS_WORKLOAD_H */
