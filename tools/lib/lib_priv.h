/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What tools/lib's own files share (not installed): messages, timing,
 * VFIO_DEVICE_FEATURE buffers, endpoint I/O, and QEMU's recovery.
 */
#ifndef UVFIO_TOOLS_LIB_PRIV_H
#define UVFIO_TOOLS_LIB_PRIV_H

#include <sys/types.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <uvfio/tools/migration.h>
#include <uvfio/uapi/vfio.h>

namespace uvfio::tools::detail {

using clock_type = std::chrono::steady_clock;

inline double seconds_since(clock_type::time_point t)
{
	return std::chrono::duration<double>(clock_type::now() - t).count();
}

/* An errno (either sign) as text. */
inline std::string errstr(int err)
{
	return std::strerror(err < 0 ? -err : err);
}

/* The first reason wins: later failures are consequences of it. */
inline void say(std::string *why, const std::string &s)
{
	if (why && why->empty())
		*why = s;
}

/* A VFIO_DEVICE_FEATURE argument: header, then one payload T. */
template <typename T> struct Feature {
	alignas(8) unsigned char buf[sizeof(struct vfio_device_feature) +
				     sizeof(T)] = {};
	explicit Feature(__u32 flags)
	{
		hdr()->argsz = sizeof(buf);
		hdr()->flags = flags;
	}
	struct vfio_device_feature *hdr()
	{
		return reinterpret_cast<struct vfio_device_feature *>(buf);
	}
	T *data()
	{
		return reinterpret_cast<T *>(buf + sizeof(struct vfio_device_feature));
	}
};

/* Write all of buf to an endpoint, in chunks of at most chunk bytes. */
int write_all(const Endpoint &e, const char *buf, size_t len, size_t chunk);

/* One read from an endpoint, EINTR retried: bytes, 0 at EOF, or -errno. */
ssize_t read_some(const Endpoint &e, char *buf, size_t len);

/* QEMU's recovery: the fallback state, else a reset. */
void recover(Migration &mig, __u32 fallback);

/* -------- what migrate() and migrate_vm() share (live_migration.cc) */

/* memcpy of guest memory that the guest and devices may be writing. */
void copy_page(void *dst, const void *src, size_t len);

/*
 * Guest memory copied along dirty tracking: the union of every device's
 * DMA log when all have one (and dma_logging), else the container's IOMMU
 * dirty pages, which see every device in it.
 */
class GuestTracker
{
public:
	GuestTracker(std::vector<Device *> devs, const GuestMemory &s,
		     const GuestMemory &d);
	~GuestTracker() { stop(); }

	/* *mode: "dma-logging", "iommu" or "none". 0 or -errno. */
	int start(bool dma_logging, std::string *mode);
	void stop();
	/* Copy all of guest memory (the first pass); pages. */
	__u64 copy_all();
	/*
	 * Copy the pages dirtied since the last call; with no tracking,
	 * everything (only safe once the sources are stopped). Pages
	 * copied, or -errno.
	 */
	long long copy_dirty();

private:
	std::vector<Device *> devs_;
	GuestMemory s_, d_;
	std::vector<std::unique_ptr<DirtyTracker>> t_;
	std::vector<__u64> union_;
};

/* The vCPUs' writes (MigrateOptions::cpu_written) once they stopped;
 * pages. */
__u64 copy_cpu_written(const GuestMemory &s, const GuestMemory &d,
		       const std::vector<std::pair<__u64, __u64>> &ranges);

/* Save a device's state into memory (verification, outside downtime):
 * from and back to STOP. 0 or -errno with *why. */
int snapshot(Migration &mig, std::vector<char> *out, std::string *why);

/*
 * The convergence policy: switch over once the initial data is sent and
 * what is left (device data PRECOPY_INFO reports, and guest pages at the
 * last pass's count) would take no longer than the budget at the last
 * pass's rate.
 */
bool converged(const PassReport &p, __u64 initial, __u64 dirty,
	       double budget_ms);

} // namespace uvfio::tools::detail

#endif /* UVFIO_TOOLS_LIB_PRIV_H */
