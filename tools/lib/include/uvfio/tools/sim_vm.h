/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/tools/sim_vm.h> - a simulated device as a VMM holds it: created
 * from a spec string, its group in a type1v2 container, its device fd, and
 * guest memory (this process's) mapped at GUEST_IOVA. Optionally the
 * seeded workload plays the guest driver on it. Only the syscall surface.
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

	int fd() const { return fd_; }
	/* Close the device fd (the last close: the driver's close_device)
	 * and open the device again. 0 or -errno. */
	int reopen();
	const std::string &bdf() const { return bdf_; }
	GuestMemory guest() const;

	/*
	 * Play the guest driver: bus mastering on, then the workload on
	 * the simulated DMA function (its BAR0 must be one). rate per second.
	 */
	int start_workload(__u64 seed, unsigned rate, std::string *why);
	void stop_workload();
	/* Stop posting and wait (at most timeout_ms) until the device has
	 * done what was posted. 0 or -errno. */
	int drain_workload(unsigned timeout_ms);
	__u64 workload_completed() const;
	/* The guest memory the workload (the vCPU) writes: its ring, as
	 * (offset, length); empty without a workload. */
	std::vector<std::pair<__u64, __u64>> cpu_written() const;

private:
	std::string bdf_;
	bool added_ = false;
	int container_ = -1, group_ = -1, fd_ = -1;
	void *guest_ = nullptr;
	size_t guest_size_ = 0;
	std::unique_ptr<sim_workload> workload_;
	__u32 ring_entries_ = 0;
};

/* The BDF a spec names (its bdf= key) in canonical form, or "" if none. */
std::string spec_bdf(const std::string &spec);

} // namespace uvfio::tools

#endif /* UVFIO_TOOLS_SIM_VM_H */
