// SPDX-License-Identifier: GPL-2.0-only
/* A simulated device with its container and guest memory; see sim_vm.h. */
#include <linux/pci_regs.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <uvfio/sim/simdev_regs.h>
#include <uvfio/tools/sim_vm.h>
#include <uvfio/uvfio.h>

namespace uvfio::tools {

std::string spec_bdf(const std::string &spec)
{
	size_t pos = 0;
	while ((pos = spec.find("bdf=", pos)) != std::string::npos) {
		if (pos == 0 || spec[pos - 1] == ',') {
			size_t end = spec.find(',', pos);
			std::string bdf = spec.substr(
				pos + 4, end == std::string::npos ?
						 std::string::npos : end - pos - 4);
			/* The canonical name has the domain: "BB:DD.F" is in 0000. */
			if (std::count(bdf.begin(), bdf.end(), ':') == 1)
				bdf = "0000:" + bdf;
			for (char &c : bdf)
				c = char(std::tolower(static_cast<unsigned char>(c)));
			return bdf;
		}
		pos += 4;
	}
	return "";
}

SimVm::~SimVm()
{
	stop_workload();
	if (fd_ >= 0)
		uvfio_close(fd_);
	if (group_ >= 0)
		uvfio_close(group_);
	if (container_ >= 0)
		uvfio_close(container_);
	if (guest_)
		munmap(guest_, guest_size_);
	if (added_)
		uvfio_sim_remove(bdf_.c_str());
}

int SimVm::create(const std::string &spec, size_t guest_size,
		  std::string *why)
{
	bdf_ = spec_bdf(spec);
	if (uvfio_sim_add(spec.c_str())) {
		int err = -errno;
		*why = "cannot create device \"" + spec + "\": " +
		       std::strerror(-err);
		return err;
	}
	added_ = true;
	if (!guest_size) {
		fd_ = uvfio_open(bdf_.c_str());
		if (fd_ < 0) {
			int err = -errno;
			*why = "cannot open " + bdf_ + ": " + std::strerror(-err);
			return err;
		}
		return 0;
	}
	int grp = uvfio_sim_iommu_group(bdf_.c_str());
	container_ = uvfio_open("/dev/vfio/vfio");
	group_ = grp < 0 ? -1 : uvfio_open(("/dev/vfio/" + std::to_string(grp)).c_str());
	if (container_ < 0 || group_ < 0 ||
	    uvfio_ioctl(group_, VFIO_GROUP_SET_CONTAINER, &container_) ||
	    uvfio_ioctl(container_, VFIO_SET_IOMMU,
			reinterpret_cast<void *>(VFIO_TYPE1v2_IOMMU))) {
		int err = -errno;
		*why = "cannot set up the container of " + bdf_ + ": " +
		       std::strerror(-err);
		return err;
	}
	fd_ = uvfio_ioctl(group_, VFIO_GROUP_GET_DEVICE_FD,
			  const_cast<char *>(bdf_.c_str()));
	if (fd_ < 0) {
		int err = -errno;
		*why = "cannot open " + bdf_ + ": " + std::strerror(-err);
		return err;
	}
	void *m = mmap(nullptr, guest_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		int err = -errno;
		*why = "cannot allocate guest memory: " + std::string(std::strerror(-err));
		return err;
	}
	guest_ = m;
	guest_size_ = guest_size;
	struct vfio_iommu_type1_dma_map map = {};
	map.argsz = sizeof(map);
	map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	map.vaddr = reinterpret_cast<__u64>(guest_);
	map.iova = GUEST_IOVA;
	map.size = guest_size;
	if (uvfio_ioctl(container_, VFIO_IOMMU_MAP_DMA, &map)) {
		int err = -errno;
		*why = "cannot map guest memory: " + std::string(std::strerror(-err));
		return err;
	}
	return 0;
}

int SimVm::reopen()
{
	if (fd_ >= 0)
		uvfio_close(fd_);
	fd_ = group_ >= 0 ? uvfio_ioctl(group_, VFIO_GROUP_GET_DEVICE_FD,
					const_cast<char *>(bdf_.c_str()))
			  : uvfio_open(bdf_.c_str());
	return fd_ < 0 ? -errno : 0;
}

GuestMemory SimVm::guest() const
{
	return {guest_, GUEST_IOVA, guest_size_, container_};
}

int SimVm::start_workload(__u64 seed, unsigned rate, std::string *why)
{
	struct vfio_region_info config = {}, bar2 = {};
	config.argsz = sizeof(config);
	config.index = VFIO_PCI_CONFIG_REGION_INDEX;
	bar2.argsz = sizeof(bar2);
	bar2.index = VFIO_PCI_BAR2_REGION_INDEX;
	__u16 cmd = 0;
	if (!guest_ || uvfio_ioctl(fd_, VFIO_DEVICE_GET_REGION_INFO, &config) ||
	    uvfio_ioctl(fd_, VFIO_DEVICE_GET_REGION_INFO, &bar2) ||
	    uvfio_pread(fd_, &cmd, 2, off_t(config.offset) + PCI_COMMAND) != 2) {
		*why = "the device has no guest memory or device memory";
		return -EINVAL;
	}
	cmd |= PCI_COMMAND_MASTER;
	if (uvfio_pwrite(fd_, &cmd, 2, off_t(config.offset) + PCI_COMMAND) != 2) {
		*why = "cannot enable bus mastering: " + std::string(std::strerror(errno));
		return -EIO;
	}
	sim_workload_config c;
	c.device_fd = fd_;
	c.guest = guest_;
	c.guest_iova = GUEST_IOVA;
	c.guest_size = guest_size_;
	c.dev_mem_size = bar2.size;
	c.seed = seed;
	c.rate = rate;
	c.max_len = static_cast<uint32_t>(std::min<__u64>(
		{64 << 10, bar2.size, guest_size_ / 2}));
	ring_entries_ = c.ring_entries;
	workload_ = std::make_unique<sim_workload>();
	int ret = workload_->start(c);
	if (ret) {
		workload_.reset();
		*why = "cannot start the workload (" + std::string(std::strerror(-ret)) +
		       "): is this the simulated DMA function?";
	}
	return ret;
}

void SimVm::stop_workload()
{
	if (workload_)
		workload_->stop();
}

int SimVm::drain_workload(unsigned timeout_ms)
{
	if (!workload_)
		return 0;
	workload_->stop();
	return workload_->wait_done(timeout_ms);
}

std::vector<std::pair<__u64, __u64>> SimVm::cpu_written() const
{
	if (!workload_)
		return {};
	/* The ring (the only memory the generator writes) from offset 0. */
	return {{0, __u64(ring_entries_) * sizeof(struct simdev_desc)}};
}

__u64 SimVm::workload_completed() const
{
	return workload_ ? workload_->completed() : 0;
}

} // namespace uvfio::tools
