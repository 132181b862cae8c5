/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/sim/simdev.h> - the simulated DMA function behind BAR0 and BAR2:
 * its registers, its DMA engine (a thread), its own DMA dirty tracker and
 * the device-internal state that migrates. The programming model a guest
 * driver sees is in <uvfio/sim/simdev_regs.h>.
 *
 * The function sits on a platform the driver provides (struct simdev_bus):
 * DMA goes through it (the IOMMU: the device sees only IOVAs), and so do
 * MSI-X messages, log lines and fault points. The function needs nothing
 * else from the kernel side: whoever binds it (drivers/pci_core's
 * vfio_pci_simdev.cc) connects the bus to the core. The engine calls the
 * bus with no lock of its own held.
 *
 * Locking: every call takes the device's lock. Callers may hold their own
 * locks (pci_core's igate) around register access and reset, as long as the
 * bus callbacks never take them: the engine may be inside one while the
 * caller waits for it to go idle.
 */
#ifndef UVFIO_SIM_SIMDEV_H
#define UVFIO_SIM_SIMDEV_H

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <stdint.h>

#include <uvfio/sim/simdev_regs.h>

/* Log levels of simdev_bus.log: the kernel's KERN_* numbers. */
#define SIMDEV_LOG_ERR 3
#define SIMDEV_LOG_WARNING 4
#define SIMDEV_LOG_INFO 6
#define SIMDEV_LOG_DEBUG 7

/*
 * The function's fault points, asked through simdev_bus.should_fail by
 * name; the platform declares them where its fault registry is.
 */
#define SIMDEV_FAULT_LOAD_STATE "simdev.load_state"	/* default EIO */

/* What the function reaches outside itself. */
struct simdev_bus {
	/* DMA to or from guest memory at an IOVA: 0 or -errno (-EFAULT for
	 * an IOVA the IOMMU does not map). */
	int (*dma_rw)(void *opaque, uint64_t iova, void *buf, size_t len,
		      bool write);
	/* An MSI-X message for vector. */
	void (*msix)(void *opaque, uint32_t vector);
	/*
	 * One log line (no newline) at a SIMDEV_LOG_* level; the platform
	 * says whose it is. NULL: lines are dropped.
	 */
	void (*log)(void *opaque, int level, const char *msg);
	/*
	 * Whether this hit of the fault point named point fails: 0, or the
	 * -errno to fail with. NULL: nothing ever fails.
	 */
	int (*should_fail)(void *opaque, const char *point);
	void *opaque;
};

/* The registers that are state (counters included), in BAR0 order. */
struct simdev_regs {
	uint32_t r[SIMDEV_NUM_REGS];
};

/*
 * Device-internal state that migrates beside device memory: the register
 * file, the descriptors fetched but not yet executed, and interrupts held
 * back while the device was quiesced.
 */
struct simdev_state {
	struct simdev_regs regs;
	uint32_t nr_fetched;
	uint32_t pending_irqs;	/* bit per vector below 32 */
	struct simdev_desc fetched[SIMDEV_PREFETCH];
	uint32_t fetched_index[SIMDEV_PREFETCH];
};

/*
 * The tracker's bitmaps come in chunks of SIMDEV_LOG_CHUNK_PAGES pages
 * (a chunk of bitmap is 32 KiB). A REPORT whose window covers a whole
 * chunk swaps that chunk's bitmap with the tracker's one spare (zeroed)
 * chunk and reads the old one with plain loads; see simdev.cc.
 */
#define SIMDEV_LOG_CHUNK_PAGES (1ULL << 18)

/*
 * One chunk of a range's bitmap. bits and markers are touched through
 * std::atomic_ref only: markers counts the DMA markers between loading
 * bits and their last OR into it, so a REPORT that swapped bits out knows
 * when the old buffer is its own.
 */
struct simdev_log_chunk {
	uint64_t *bits;
	uint32_t markers;
};

/*
 * One logged range: pages [first_page, first_page + nbits) of log_page_size,
 * bit i in chunk i / SIMDEV_LOG_CHUNK_PAGES, at bit i % 64 of word
 * (i % SIMDEV_LOG_CHUNK_PAGES) / 64 of its bits. Ranges whose pages overlap
 * are merged, so a page has one bit. Only whole chunks are ever swapped:
 * a range's last, shorter chunk keeps its buffer.
 */
struct simdev_log_range {
	uint64_t first_page;
	uint64_t nbits;
	struct simdev_log_chunk *chunks;	/* ceil(nbits / CHUNK_PAGES) */
};

struct simdev_wp_dev;

struct simdev {
	/* Set before simdev_init. */
	std::string name;		/* for simdev_find: the BDF */
	uint8_t *mem = nullptr;		/* device memory (BAR2) */
	uint64_t mem_size = 0;
	uint32_t msix_count = 0;
	struct simdev_bus bus = {};
	/* Extra time an in-flight descriptor takes to finish once a quiesce
	 * has been asked for: a slow device. Microseconds. */
	uint32_t drain_us = 0;

	/* Internal: under lock. */
	std::mutex lock;
	std::condition_variable wake;	/* the engine: work or exit */
	std::condition_variable idle;	/* quiescers: nothing in flight */
	struct simdev_regs regs = {};
	std::deque<std::pair<uint32_t, struct simdev_desc>> fetched;
	uint32_t pending_irqs = 0;
	bool bus_master = false;
	bool quiesce = false;		/* migration: no new DMA */
	bool in_flight = false;		/* the engine is executing one */
	bool exiting = false;
	bool draining = false;		/* a quiesce waits on in_flight */
	std::thread engine;

	/*
	 * Device memory: the engine, the driver and region access go
	 * through mem_lock (an mmap does not). While tracking is on, every
	 * write through it marks its 4 KiB pages dirty (bit per page).
	 */
	std::mutex mem_lock;
	bool mem_tracking = false;
	bool mem_mapped = false;	/* a user mapping it cannot track */
	/* Its write-protected user mappings (simdev_wp.cc, under its lock). */
	struct simdev_wp_dev *wp = nullptr;
	std::vector<uint64_t> mem_dirty;
	uint64_t mem_dirty_count = 0;
	uint64_t mem_cursor = 0;	/* where the next dirty scan starts */

	/*
	 * DMA logging: the device's own tracker of guest pages it wrote, a
	 * bitmap per logged range as a device keeps in its own memory, in
	 * chunks. The DMA path and REPORT hold log_lock shared; start and
	 * stop hold it exclusive, so a bitmap never goes away under a marker.
	 * Markers OR into bitmap words atomically. REPORT, serialized by
	 * log_report_lock, either swaps a whole chunk's buffer with log_spare
	 * (then waits for the chunk's markers) or test-and-clears words
	 * atomically (chunks the window covers in part).
	 */
	std::shared_mutex log_lock;
	std::mutex log_report_lock;
	bool logging = false;
	uint64_t log_page_size = 0;
	std::vector<struct simdev_log_range> log_ranges;	/* sorted */
	uint64_t *log_slab = nullptr;	/* every bitmap buffer, spare too */
	uint64_t *log_spare = nullptr;	/* a zeroed chunk; REPORT's only */
	uint64_t log_slab_bytes = 0;
	uint64_t log_table_bytes = 0;	/* the chunk tables */
};

/* Start the engine. 0 or -errno. */
int simdev_init(struct simdev *sd);
/* Stop and join the engine. */
void simdev_exit(struct simdev *sd);

/* BAR0 access, any length and alignment inside the BAR. */
void simdev_bar0_read(struct simdev *sd, uint64_t off, void *buf, size_t len);
void simdev_bar0_write(struct simdev *sd, uint64_t off, const void *buf,
		       size_t len);

/* The command register's bus-master bit, as the platform sets it. */
void simdev_set_bus_master(struct simdev *sd, bool on);

/*
 * Quiesce: no new DMA or interrupt after return; an in-flight descriptor
 * completes first (after drain_us). Interrupts raised meanwhile are held
 * and sent on unquiesce. Idempotent.
 */
void simdev_quiesce(struct simdev *sd);
void simdev_unquiesce(struct simdev *sd);

/*
 * Function-level reset: waits for the engine to be idle, then clears the
 * registers, fetched descriptors and held interrupts. Device memory keeps
 * its content, and logging is the driver's, so it stays as it is.
 */
void simdev_reset(struct simdev *sd);

/* Device-internal state, for migration. Load expects a quiesced device
 * and returns -EINVAL for a state it cannot hold (bad ring size, too many
 * fetched descriptors). */
void simdev_save_state(struct simdev *sd, struct simdev_state *st);
int simdev_load_state(struct simdev *sd, const struct simdev_state *st);

/* Wait until nothing is in flight and nothing fetched is executable. */
void simdev_wait_idle(struct simdev *sd);

/*
 * Device memory through mem_lock: what region access and a migration
 * driver use. A write marks its pages dirty while tracking is on.
 */
#define SIMDEV_MEM_PAGE 4096
void simdev_mem_read(struct simdev *sd, uint64_t off, void *buf, size_t len);
void simdev_mem_write(struct simdev *sd, uint64_t off, const void *buf,
		      size_t len);

/*
 * Device-memory dirty tracking, for pre-copy. Start clears the set (0 or
 * -ENOMEM); take_dirty hands out the next run of dirty pages (at most
 * max_len bytes, from a cursor that wraps) and clears them, false when
 * none is left; dirty_bytes is what is dirty now. mark_all makes every
 * page dirty, for writes the tracker cannot see (through a user mapping
 * it could not write-protect, which simdev_mem_note_mapped records).
 */
int simdev_mem_track_start(struct simdev *sd);
void simdev_mem_track_stop(struct simdev *sd);
bool simdev_mem_take_dirty(struct simdev *sd, uint64_t max_len, uint64_t *off,
			   uint64_t *len);
uint64_t simdev_mem_dirty_bytes(struct simdev *sd);
void simdev_mem_mark_all(struct simdev *sd);
void simdev_mem_note_mapped(struct simdev *sd);
bool simdev_mem_was_mapped(struct simdev *sd);

/*
 * The user mapped device memory [off, off + len) writable at addr. Stores
 * through it reach the tracker as writes do: while tracking is on the
 * mapping is write-protected (userfaultfd) and a store marks its page.
 * Without userfaultfd write-protect for shared memory the mapping is
 * recorded with simdev_mem_note_mapped instead. A munmap(2) needs no call:
 * a range that is gone is dropped when next touched. simdev_exit forgets
 * the device's mappings and lets any store blocked on them go on.
 */
void simdev_mem_user_mapped(struct simdev *sd, void *addr, uint64_t off,
			    uint64_t len);

/*
 * DMA logging: record guest pages of page_size inside ranges that DMA
 * writes touch. Start replaces nothing: -EBUSY if logging is on. The
 * tracker holds a bit per page of the ranges, at most SIMDEV_LOG_MAX_PAGES
 * pages in all (8 TiB at 4 KiB, 256 MiB of bitmap): -E2BIG past that,
 * as a device's tracker has a capacity.
 */
#define SIMDEV_LOG_MAX_PAGES (1ULL << 31)
int simdev_log_start(struct simdev *sd,
		     std::vector<std::pair<uint64_t, uint64_t>> ranges,
		     uint64_t page_size);
void simdev_log_stop(struct simdev *sd);
/*
 * Reports and clears the dirty pages in [iova, iova + length): calls fn with
 * runs of the tracker's bitmap, bit i of bits (word i / 64, bit i % 64) for
 * the page at run_iova + i * page_size, nbits bits (a multiple of 64; the
 * words may be zero). Runs come in increasing IOVA order and do not overlap;
 * bits for pages outside the window are zero. A page is reported by one call
 * only, and DMA racing with the call either shows in it or stays for the
 * next one. Pages outside the window are neither read nor cleared.
 *
 * The words are fn's for the call: it may clear them, and returns true when
 * it has left every one zero (iova_bitmap_take_bits() does), false when the
 * tracker is to clear them. A whole chunk then costs one pass over its
 * buffer, in fn. fn runs under log_lock (shared) and log_report_lock: it
 * must not start, stop or report. -EINVAL when logging is off.
 */
typedef bool (*simdev_log_bits_fn)(void *arg, uint64_t run_iova,
				   uint64_t page_size, uint64_t *bits,
				   uint64_t nbits);
int simdev_log_read_and_clear_bits(struct simdev *sd, uint64_t iova,
				   uint64_t length, simdev_log_bits_fn fn,
				   void *arg);

/* The same, one call of fn per dirty page, in increasing IOVA order. */
int simdev_log_read_and_clear(struct simdev *sd, uint64_t iova,
			      uint64_t length,
			      void (*fn)(void *arg, uint64_t page_iova,
					 uint64_t page_size),
			      void *arg);

/*
 * What the DMA engine does after each write to guest memory: mark the
 * logged pages [iova, iova + len) touches. Any thread, no lock held.
 * Exported so tests and benchmarks can dirty pages as the device's DMA
 * does without an IOMMU mapping behind every page.
 */
void simdev_log_dirty(struct simdev *sd, uint64_t iova, uint64_t len);

/*
 * Bytes the tracker holds now: its bitmaps (a bit per logged page), the spare
 * chunk (when a range has a whole chunk), the chunk tables (16 bytes per
 * chunk) and the range table; 0 when off.
 */
uint64_t simdev_log_bytes(struct simdev *sd);

/*
 * For tests and benchmarks: the function named name (sd->name, which
 * the binding sets to the PCI function's BDF), between its simdev_init
 * and simdev_exit; NULL if none.
 */
struct simdev *simdev_find(const char *name);

#endif /* UVFIO_SIM_SIMDEV_H */
