/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/tools/sim_vm.h> - a simulated device as a VMM holds it: created
 * from a spec string, its group in a type1v2 container, its device fd, and
 * guest memory (this process's) mapped at GUEST_IOVA. Optionally the
 * seeded workload plays the guest driver on it. Only the syscall surface.
 *
 * Or a VM of several devices (create_vm()): one container with every
 * device's group in it, one guest memory, and each device's BAR2 mmap'd
 * and mapped into the container at its P2P window, as a VMM maps BARs so
 * that devices reach each other's memory. The single-device calls act on
 * device 0.
 */
#ifndef UVFIO_TOOLS_SIM_VM_H
#define UVFIO_TOOLS_SIM_VM_H

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <uvfio/tools/workload.h>
#include <uvfio/tools/migration.h>

namespace uvfio::tools {

class SimVm
{
public:
	static constexpr __u64 GUEST_IOVA = 1ULL << 32;
	/* Device i's BAR2 is at P2P_IOVA + i * P2P_STRIDE in a VM's
	 * container (a BAR2 is at most 64 GiB, the stride). */
	static constexpr __u64 P2P_IOVA = 1ULL << 40;
	static constexpr __u64 P2P_STRIDE = 1ULL << 36;

	SimVm() = default;
	~SimVm();
	SimVm(const SimVm &) = delete;
	SimVm &operator=(const SimVm &) = delete;

	/*
	 * Create the device and open it; guest_size 0: no container, no
	 * guest memory (the device fd is opened by its BDF). 0 or -errno
	 * with *why set (the library has logged the spec's own problem).
	 */
	int create(const std::string &spec, size_t guest_size,
		   std::string *why);

	/*
	 * A VM: the devices of specs (at least one), their groups in one
	 * type1v2 container, guest_size bytes of guest memory (> 0) mapped
	 * at GUEST_IOVA, and each device's BAR2 (if it has one) mmap'd
	 * read-write and shared and mapped at its P2P window. 0 or -errno
	 * with *why set.
	 */
	int create_vm(const std::vector<std::string> &specs, size_t guest_size,
		      std::string *why);

	size_t devices() const { return devs_.size(); }
	int fd() const { return fd(0); }
	int fd(size_t i) const { return i < devs_.size() ? devs_[i].fd : -1; }
	/* Close the device fd (the last close: the driver's close_device)
	 * and open the device again. 0 or -errno. */
	int reopen();
	const std::string &bdf() const { return bdf(0); }
	const std::string &bdf(size_t i) const;
	GuestMemory guest() const;
	/* Device i's BAR2 window in the container, (iova, size); (0, 0) if
	 * not mapped (a single device, or one without a BAR2). */
	std::pair<__u64, __u64> p2p_window(size_t i) const;
	/* Device i's slice of guest memory, (offset, length): its workload's
	 * ring and data area. */
	std::pair<__u64, __u64> guest_slice(size_t i) const;

	/*
	 * Play the guest driver: bus mastering on, then the workload on
	 * the simulated DMA function (its BAR0 must be one). rate per second.
	 */
	int start_workload(__u64 seed, unsigned rate, std::string *why);
	/*
	 * The same on device i of a VM, in its guest slice; with peers, one
	 * descriptor in peer_share writes into another device's P2P window
	 * (peer_share 0: none).
	 */
	int start_workload(size_t i, __u64 seed, unsigned rate, bool peers,
			   std::string *why, unsigned peer_share = 4);
	/* Stop posting (every device's workload) and join. */
	void stop_workload();
	void stop_workload(size_t i);
	/* Stop posting and wait (at most timeout_ms) until the device has
	 * done what was posted. 0 or -errno. */
	int drain_workload(unsigned timeout_ms);
	int drain_workload(size_t i, unsigned timeout_ms);
	__u64 workload_completed() const;	/* all devices' */
	__u64 workload_completed(size_t i) const;
	/* Descriptors device i's workload completed into device peer's
	 * BAR2 (0 without peers, or for itself). */
	__u64 peer_writes_done(size_t i, size_t peer) const;
	/* The guest memory the workloads (the vCPUs) write: their rings, as
	 * (offset, length); empty without a workload. */
	std::vector<std::pair<__u64, __u64>> cpu_written() const;

private:
	struct Dev {
		std::string bdf;
		bool added = false;
		int group = -1, fd = -1;
		void *bar2 = nullptr;		/* its mmap, in a VM */
		size_t bar2_size = 0;
		__u64 p2p_iova = 0;		/* 0: not mapped */
		__u64 slice_off = 0, slice_size = 0;
		std::unique_ptr<sim_workload> workload;
		__u32 ring_entries = 0;
		std::vector<size_t> peer_of;	/* workload window -> device */
	};
	int add_device(const std::string &spec, std::string *why);
	int open_group(Dev &d, std::string *why);
	int map_guest(size_t guest_size, std::string *why);
	int map_bar2(size_t i, std::string *why);

	std::vector<Dev> devs_;
	int container_ = -1;
	void *guest_ = nullptr;
	size_t guest_size_ = 0;
};

/* The BDF a spec names (its bdf= key) in canonical form, or "" if none. */
std::string spec_bdf(const std::string &spec);

} // namespace uvfio::tools

#endif /* UVFIO_TOOLS_SIM_VM_H */
