/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/tools/migration.h> - a migration client that speaks only the
 * VFIO uAPI, through a Transport: device probing and states, the data
 * streams (save, load, device to device), and a live migration with
 * pre-copy passes, a convergence policy and guest-memory dirty tracking,
 * failing the way QEMU does (fall back to RUNNING, else reset). Streams
 * move through either migration protocol: v2 (data fds) or v1 (the
 * migration region, <uvfio/tools/migration_v1.h>).
 *
 * Functions return 0 or -errno; where a user needs to know what failed,
 * an std::string *why gets one line (no trailing newline).
 */
#ifndef UVFIO_TOOLS_MIGRATION_H
#define UVFIO_TOOLS_MIGRATION_H

#include <linux/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <uvfio/tools/transport.h>

namespace uvfio::tools {

/* Names of VFIO_DEVICE_STATE_* ("running", "stop", "pre_copy_p2p"...). */
const char *state_name(__u32 state);
/* Parse a state name (case-insensitive, '-' or '_'); -EINVAL if unknown. */
int parse_state(const std::string &name, __u32 *state);

/* What a device offers, from VFIO_DEVICE_FEATURE probes. */
struct DeviceCaps {
	bool migration = false;
	__u64 migration_flags = 0;
	bool dma_logging = false;
	bool data_size = false;		/* MIG_DATA_SIZE answers */
	__u64 stop_copy_size = 0;
};

/* A device fd and the transport that reaches it. */
class Device
{
public:
	Device(Transport &t, int fd) : t_(t), fd_(fd) {}

	Transport &transport() const { return t_; }
	int fd() const { return fd_; }

	int probe(DeviceCaps *caps);
	int get_state(__u32 *state);
	/* SET; *data_fd (if given) gets the new stream's fd or -1. */
	int set_state(__u32 state, int *data_fd = nullptr);
	int data_size(__u64 *bytes);
	int precopy_info(int data_fd, __u64 *initial, __u64 *dirty);
	int reset();

private:
	Transport &t_;
	int fd_;
};

/* -------- streams -------- */

/*
 * A stream end that is not a descriptor (the v1 migration region's data
 * window): read and write as on a data fd, -errno on failure; read
 * returns 0 at the end of the stream and -ENOMSG for "nothing now".
 */
class StreamIo
{
public:
	virtual ~StreamIo() = default;
	virtual ssize_t read(void *buf, size_t count) = 0;
	virtual ssize_t write(const void *buf, size_t count) = 0;
};

/*
 * One end of a stream: a migration data fd reached through a transport,
 * a plain fd (file, pipe, socket) when transport is NULL, or, when io is
 * set, that object (transport and fd unused).
 */
struct Endpoint {
	Transport *transport = nullptr;
	int fd = -1;
	StreamIo *io = nullptr;

	bool valid() const { return io || fd >= 0; }
};

struct StreamStats {
	__u64 bytes = 0;
	double seconds = 0;
};

/* Called now and then with the bytes moved so far. */
using Progress = std::function<void(__u64 bytes)>;

/*
 * The plain engine: read() into one buffer, write() it all, as QEMU does
 * (1 MiB reads from a data fd, 32 KiB writes into a resuming one). With
 * until_pause, a -ENOMSG from the source ends the copy (pre-copy: nothing
 * now); otherwise only EOF does. -errno on a failed read or write (a
 * plain source or sink that ends early is -EPIPE / -EIO).
 */
int plain_copy(const Endpoint &src, const Endpoint &dst, bool until_pause,
	       StreamStats *stats, const Progress &progress = {});

struct UringOptions {
	unsigned depth = 8;		/* chunks in flight or queued */
	size_t chunk = 1 << 20;		/* bytes per operation */
	bool splice = true;		/* zero-copy through pipes if it can */
};

/*
 * The io_uring engine: copy in_fd to out_fd until EOF, reading the next
 * chunk while the last is written (see uring_engine.cc). Both are real
 * descriptors: a data fd of either transport, a file, a pipe or a socket.
 * A pre-copy pause cannot be seen on a raw data fd (it just has no data),
 * so pre-copy passes use plain_copy; this is for STOP_COPY and loads.
 * -errno on failure.
 */
int uring_copy(int in_fd, int out_fd, StreamStats *stats,
	       const Progress &progress = {}, const UringOptions &opt = {});

/* Which engine moves a stream that runs to its end. */
struct StreamOptions {
	bool uring = true;		/* io_uring; false: plain_copy */
	UringOptions uring_opt;
};

/* Copy src to dst until EOF with the engine so chooses (the plain one
 * when either end is a StreamIo: io_uring needs descriptors). */
int copy_to_eof(const Endpoint &src, const Endpoint &dst,
		const StreamOptions &so, StreamStats *stats,
		const Progress &progress = {});

/* -------- the two migration protocols -------- */

/*
 * Which uAPI moves a device's migration state: v2, VFIO_DEVICE_FEATURE
 * MIG_DEVICE_STATE and data fds (Linux 5.18 on); v1, the migration
 * region (VFIO_REGION_TYPE_MIGRATION_DEPRECATED, Linux 5.8 to 5.17, and
 * uvfio over v2 drivers). The driver's stream is the same either way.
 */
enum class Protocol { V2, V1 };

const char *protocol_name(Protocol p);	/* "v1", "v2" */
/* "v1" or "v2"; -EINVAL otherwise. */
int parse_protocol(const std::string &name, Protocol *p);

/*
 * One device's migration through one protocol: its state, named with the
 * v2 values (VFIO_DEVICE_STATE_*) whatever the protocol, and its streams
 * as Endpoints. A stream begins when the device enters a saving state
 * from a state without one, or RESUMING; it goes on from PRE_COPY into
 * STOP_COPY, as a v2 data fd does.
 */
class Migration
{
public:
	virtual ~Migration() = default;
	virtual Protocol protocol() const = 0;
	/* The device (feature probes, dirty tracking, reset). */
	virtual Device &device() = 0;
	virtual int get_state(__u32 *state) = 0;
	/*
	 * Set the state. *stream (if given) gets the stream this state
	 * began, or an endpoint that is not valid(). 0 or -errno.
	 */
	virtual int set_state(__u32 state, Endpoint *stream = nullptr) = 0;
	/* Done with a stream set_state gave. */
	virtual void close_stream(Endpoint *stream) = 0;
	/*
	 * Pre-copy: what the device has for the stream now. v1 knows only
	 * pending_bytes, reported as dirty with initial 0.
	 */
	virtual int precopy_info(const Endpoint &stream, __u64 *initial,
				 __u64 *dirty) = 0;
	/* VFIO_DEVICE_RESET (ends any stream). */
	virtual int reset() = 0;
	/* After a stream failed: what the protocol saw, one line, or "". */
	virtual std::string stream_error() const { return {}; }
};

/* v2: the feature ioctls and data fds of a Device. */
class MigrationV2 final : public Migration
{
public:
	explicit MigrationV2(Device &dev) : dev_(dev) {}
	Protocol protocol() const override { return Protocol::V2; }
	Device &device() override { return dev_; }
	int get_state(__u32 *state) override { return dev_.get_state(state); }
	int set_state(__u32 state, Endpoint *stream = nullptr) override;
	void close_stream(Endpoint *stream) override;
	int precopy_info(const Endpoint &stream, __u64 *initial,
			 __u64 *dirty) override;
	int reset() override { return dev_.reset(); }

private:
	Device &dev_;
};

/*
 * A device's migration through protocol p: v2 always; v1 when the device
 * has the migration region (see <uvfio/tools/migration_v1.h>), else
 * -ENODEV with *why. 0 or -errno.
 */
int open_migration(Device &dev, Protocol p, std::unique_ptr<Migration> *out,
		   std::string *why);

/*
 * Save a device's state into dst: to STOP_COPY (the core walks the path),
 * the stream to EOF, then back to the state it had (leave_stopped: STOP).
 * On failure the device is brought back to that state, or reset. When the
 * device will run again and dst is not a regular file, the io_uring engine
 * copies instead of splicing, so that what sits in dst is not device
 * memory by reference (see uvfio_copy_to_user_stable()).
 */
int save_device(Device &dev, const Endpoint &dst, bool leave_stopped,
		StreamStats *stats, std::string *why,
		const Progress &progress = {}, const StreamOptions &so = {});
/* The same through either protocol (v1: SAVING, the region's loop). */
int save_device(Migration &mig, const Endpoint &dst, bool leave_stopped,
		StreamStats *stats, std::string *why,
		const Progress &progress = {}, const StreamOptions &so = {});

/*
 * Load a device from src: STOP, RESUMING, the stream to EOF, STOP (where
 * the driver checks it), then RUNNING if run. On a bad or short stream the
 * device is reset (it is never left running what it half-loaded).
 */
int load_device(Device &dev, const Endpoint &src, bool run,
		StreamStats *stats, std::string *why,
		const Progress &progress = {}, const StreamOptions &so = {});
/* The same through either protocol (v1: RESUMING straight from the
 * state it is in, as the KABI's sequence has it, then the region's loop). */
int load_device(Migration &mig, const Endpoint &src, bool run,
		StreamStats *stats, std::string *why,
		const Progress &progress = {}, const StreamOptions &so = {});

/* -------- live migration -------- */

/* Guest memory as a VMM holds it: mapped into the device's container. */
struct GuestMemory {
	void *host = nullptr;
	__u64 iova = 0;
	__u64 size = 0;
	int container = -1;	/* for the IOMMU's dirty tracking */
};

/*
 * Dirty tracking of guest memory for a device: its DMA logging, or the
 * IOMMU container's dirty pages. A bitmap has a bit per 4 KiB page of the
 * guest memory from its IOVA.
 */
/*
 * The device's DMA logging (VFIO_DEVICE_FEATURE_DMA_LOGGING_*): START over
 * ranges ((iova, length) pairs) at page_size, STOP, and REPORT (read and
 * clear) of [iova, iova + length) into bitmap, resized to a bit per page
 * of page_size from iova. 0 or -errno.
 */
int dma_logging_start(Transport &t, int fd, __u64 page_size,
		      const std::vector<std::pair<__u64, __u64>> &ranges);
int dma_logging_stop(Transport &t, int fd);
int dma_logging_report(Transport &t, int fd, __u64 iova, __u64 length,
		       __u64 page_size, std::vector<__u64> *bitmap);

/*
 * The container's type1 dirty tracking, VFIO_IOMMU_DIRTY_PAGES with flag
 * VFIO_IOMMU_DIRTY_PAGES_FLAG_START or _STOP. 0 or -errno.
 */
int iommu_dirty_pages(Transport &t, int container, __u32 flag);

/*
 * VFIO_IOMMU_DIRTY_PAGES GET_BITMAP (read and clear) of [iova, iova +
 * size) into bitmap, resized to a bit per page of page_size from iova.
 * 0 or -errno.
 */
int iommu_dirty_bitmap(Transport &t, int container, __u64 iova, __u64 size,
		       __u64 page_size, std::vector<__u64> *bitmap);

class DirtyTracker
{
public:
	static constexpr __u64 PAGE = 4096;

	DirtyTracker(Device &dev, const GuestMemory &mem) : dev_(dev), mem_(mem)
	{
	}
	~DirtyTracker() { stop(); }

	/* Start: DMA logging if prefer_device and the device has it, else
	 * the IOMMU. 0 or -errno. */
	int start(bool prefer_device);
	/* Read and clear into bitmap (resized to fit). 0 or -errno. */
	int report(std::vector<__u64> *bitmap);
	void stop();
	/* "dma-logging", "iommu" or "none". */
	const char *mode() const;

private:
	enum { NONE, DMA_LOG, IOMMU } mode_ = NONE;
	Device &dev_;
	GuestMemory mem_;
};

struct MigrateOptions {
	bool precopy = true;		/* when the source offers it */
	unsigned max_passes = 10;	/* pre-copy passes at most */
	double downtime_budget_ms = 10;	/* switch over when it fits */
	unsigned min_pass_ms = 5;	/* let the device dirty between passes */
	StreamOptions stream;		/* for the stop-copy stream */
	/*
	 * Guest memory the CPU writes, as (offset, length) from its start:
	 * what a VMM learns from the CPU's dirty log (KVM's), which no device
	 * or IOMMU tracker sees. Copied again once the source has stopped.
	 */
	std::vector<std::pair<__u64, __u64>> cpu_written;
};

struct PassReport {
	__u64 device_bytes = 0;
	__u64 guest_pages = 0;
	double seconds = 0;
};

struct MigrateReport {
	bool precopy = false;
	std::string dirty_tracking;	/* "dma-logging", "iommu" or "none" */
	std::vector<PassReport> passes;
	__u64 stop_copy_bytes = 0;
	__u64 final_guest_pages = 0;
	double downtime_ms = 0;		/* source leaves RUNNING-like states
					 * to destination RUNNING */
	double total_seconds = 0;	/* start to destination loaded */
	__u64 total_bytes = 0;
	bool verified = false;		/* destination equal to source */
	std::string verify_detail;
};

/*
 * Migrate src into dst (both in this process; dst fresh). Guest memory
 * follows the device's dirty tracking: DMA logging if src has it, else the
 * IOMMU's; each pass copies the pages dirtied since the last. Before
 * dst runs, its state is saved again and compared with the source's
 * (outside the downtime), as is guest memory. on_stop runs when the
 * source's vCPUs must stop (before the device leaves running), e.g. to
 * stop a workload. Failure: the source goes back to RUNNING (else is
 * reset), the destination is reset.
 */
int migrate(Device &src, GuestMemory src_mem, Device &dst,
	    GuestMemory dst_mem, const MigrateOptions &opt,
	    const std::function<void()> &on_stop, MigrateReport *report,
	    std::string *why, const Progress &progress = {});
/*
 * The same through either protocol (both sides by theirs). v1 has no
 * migration_flags: pre-copy is RUNNING|SAVING whenever opt.precopy (the
 * KABI requires every device to accept it; one without pre-copy data
 * reports no pending bytes until stop-and-copy).
 */
int migrate(Migration &src, GuestMemory src_mem, Migration &dst,
	    GuestMemory dst_mem, const MigrateOptions &opt,
	    const std::function<void()> &on_stop, MigrateReport *report,
	    std::string *why, const Progress &progress = {});

/* -------- several devices, one VM (vm_migration.cc) -------- */

/* One device of a VM: its source, its destination, its name. */
struct VmDevice {
	Migration *src = nullptr;
	Migration *dst = nullptr;
	std::string name;	/* in messages and the report, e.g. its BDF */
};

struct VmMigrateOptions {
	MigrateOptions base;	/* passes, budget, stream, cpu_written */
	/*
	 * UNSAFE: migrate devices without VFIO_MIGRATION_P2P together, and
	 * skip the P2P step: each device is stopped and saved while the
	 * others still run, so a peer's DMA into a device already saved is
	 * lost. A negative control, or a VM whose devices never talk.
	 */
	bool unsafe_no_p2p = false;
	/* Just before device i (devs' order) leaves its running state. */
	std::function<void(size_t i)> on_device_stop;
	/* Once device i's stop-copy stream is in its destination, loaded. */
	std::function<void(size_t i)> on_device_saved;
};

struct VmDeviceReport {
	std::string name;
	std::vector<__u64> pass_bytes;	/* pre-copy, per pass */
	__u64 stop_copy_bytes = 0;
	bool verified = false;		/* its two re-saved states equal */
	std::string verify_detail;
};

struct VmMigrateReport {
	bool precopy = false;
	bool p2p = false;		/* the P2P step ran */
	std::string dirty_tracking;	/* "dma-logging" (the union of every
					 * device's), "iommu" or "none" */
	std::vector<VmDeviceReport> devices;
	std::vector<PassReport> passes;	/* all devices' bytes per pass */
	__u64 stop_copy_bytes = 0;	/* all devices' */
	__u64 final_guest_pages = 0;
	double downtime_ms = 0;		/* first source leaves a running
					 * state to last destination RUNNING */
	double total_seconds = 0;
	__u64 total_bytes = 0;
	bool verified = false;		/* every device and guest memory */
	std::string verify_detail;	/* names the devices that differ */
};

/*
 * Migrate the devices of one VM, which share guest memory, into their
 * destinations, as QEMU (8.1 on) orders it: destinations STOP ->
 * RESUMING; guest memory's first pass; pre-copy when every source
 * offers it (passes round-robin over the streams, converging on their
 * sum); then on_stop (the vCPUs), every source into its P2P state
 * (PRE_COPY_P2P or RUNNING_P2P) before any goes further, each to
 * STOP_COPY with its stream to EOF and its destination to STOP, guest
 * memory's last dirty pages; after verification every destination to
 * RUNNING_P2P before any runs.
 *
 * More than one device needs VFIO_MIGRATION_P2P on all of them
 * (sources and destinations): otherwise -EOPNOTSUPP with *why naming the
 * device, nothing changed, unless opt.unsafe_no_p2p. Guest memory's
 * dirty tracking is the union of the sources' DMA logs, or the
 * container's dirty pages when one lacks DMA logging. v2 only.
 *
 * After every source stopped (outside the downtime) each pair is saved
 * again and compared, and guest memory: writes that reached a source
 * after it was saved fail the verification of that device. Failure: the
 * sources go back to RUNNING (else are reset), the destinations are
 * reset. 0 or -errno.
 */
int migrate_vm(const std::vector<VmDevice> &devs, GuestMemory src_mem,
	       GuestMemory dst_mem, const VmMigrateOptions &opt,
	       const std::function<void()> &on_stop, VmMigrateReport *report,
	       std::string *why, const Progress &progress = {});

} // namespace uvfio::tools

#endif /* UVFIO_TOOLS_MIGRATION_H */
