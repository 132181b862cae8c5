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
	for (Dev &d : devs_)
		if (d.fd >= 0)
			uvfio_close(d.fd);
	for (Dev &d : devs_)
		if (d.group >= 0)
			uvfio_close(d.group);
	/* The container's mappings go with it, before their memory does. */
	if (container_ >= 0)
		uvfio_close(container_);
	for (Dev &d : devs_)
		if (d.bar2)
			munmap(d.bar2, d.bar2_size);
	if (guest_)
		munmap(guest_, guest_size_);
	for (Dev &d : devs_)
		if (d.added)
			uvfio_sim_remove(d.bdf.c_str());
}

const std::string &SimVm::bdf(size_t i) const
{
	static const std::string none;
	return i < devs_.size() ? devs_[i].bdf : none;
}

int SimVm::add_device(const std::string &spec, std::string *why)
{
	devs_.emplace_back();
	Dev &d = devs_.back();
	d.bdf = spec_bdf(spec);
	if (uvfio_sim_add(spec.c_str())) {
		int err = -errno;
		*why = "cannot create device \"" + spec + "\": " +
		       std::strerror(-err);
		return err;
	}
	d.added = true;
	return 0;
}

/* The device's group, attached to the container (made on first use). */
int SimVm::open_group(Dev &d, std::string *why)
{
	int grp = uvfio_sim_iommu_group(d.bdf.c_str());
	bool first = container_ < 0;
	if (first)
		container_ = uvfio_open("/dev/vfio/vfio");
	d.group = grp < 0 ? -1 : uvfio_open(("/dev/vfio/" + std::to_string(grp)).c_str());
	/* SET_IOMMU needs a group in the container: after the first. */
	if (container_ < 0 || d.group < 0 ||
	    uvfio_ioctl(d.group, VFIO_GROUP_SET_CONTAINER, &container_) ||
	    (first && uvfio_ioctl(container_, VFIO_SET_IOMMU,
				  reinterpret_cast<void *>(VFIO_TYPE1v2_IOMMU)))) {
		int err = -errno;
		*why = "cannot set up the container of " + d.bdf + ": " +
		       std::strerror(-err);
		return err;
	}
	d.fd = uvfio_ioctl(d.group, VFIO_GROUP_GET_DEVICE_FD,
			   const_cast<char *>(d.bdf.c_str()));
	if (d.fd < 0) {
		int err = -errno;
		*why = "cannot open " + d.bdf + ": " + std::strerror(-err);
		return err;
	}
	return 0;
}

int SimVm::map_guest(size_t guest_size, std::string *why)
{
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

/*
 * Device i's BAR2 into the container, as QEMU maps a BAR's mmap so that
 * peers' DMA reaches it. A device without a mappable BAR2 gets no window.
 */
int SimVm::map_bar2(size_t i, std::string *why)
{
	Dev &d = devs_[i];
	struct vfio_region_info bar2 = {};
	bar2.argsz = sizeof(bar2);
	bar2.index = VFIO_PCI_BAR2_REGION_INDEX;
	if (uvfio_ioctl(d.fd, VFIO_DEVICE_GET_REGION_INFO, &bar2) ||
	    !bar2.size || !(bar2.flags & VFIO_REGION_INFO_FLAG_MMAP))
		return 0;
	if (bar2.size > P2P_STRIDE) {
		*why = d.bdf + ": BAR2 is larger than a P2P window";
		return -EINVAL;
	}
	void *m = uvfio_mmap(nullptr, bar2.size, PROT_READ | PROT_WRITE,
			     MAP_SHARED, d.fd, off_t(bar2.offset));
	if (m == MAP_FAILED) {
		int err = -errno;
		*why = "cannot mmap BAR2 of " + d.bdf + ": " + std::strerror(-err);
		return err;
	}
	d.bar2 = m;
	d.bar2_size = bar2.size;
	struct vfio_iommu_type1_dma_map map = {};
	map.argsz = sizeof(map);
	map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	map.vaddr = reinterpret_cast<__u64>(m);
	map.iova = P2P_IOVA + i * P2P_STRIDE;
	map.size = bar2.size;
	if (uvfio_ioctl(container_, VFIO_IOMMU_MAP_DMA, &map)) {
		int err = -errno;
		*why = "cannot map BAR2 of " + d.bdf + " for P2P: " +
		       std::strerror(-err);
		return err;
	}
	d.p2p_iova = map.iova;
	return 0;
}

int SimVm::create(const std::string &spec, size_t guest_size,
		  std::string *why)
{
	if (!devs_.empty())
		return -EBUSY;
	int ret = add_device(spec, why);
	if (ret)
		return ret;
	Dev &d = devs_[0];
	if (!guest_size) {
		d.fd = uvfio_open(d.bdf.c_str());
		if (d.fd < 0) {
			int err = -errno;
			*why = "cannot open " + d.bdf + ": " + std::strerror(-err);
			return err;
		}
		return 0;
	}
	if ((ret = open_group(d, why)))
		return ret;
	return map_guest(guest_size, why);
}

int SimVm::create_vm(const std::vector<std::string> &specs, size_t guest_size,
		     std::string *why)
{
	int ret;
	if (!devs_.empty())
		return -EBUSY;
	if (specs.empty() || !guest_size) {
		*why = "a VM needs a device and guest memory";
		return -EINVAL;
	}
	devs_.reserve(specs.size());
	for (const std::string &spec : specs)
		if ((ret = add_device(spec, why)))
			return ret;
	for (Dev &d : devs_)
		if ((ret = open_group(d, why)))
			return ret;
	if ((ret = map_guest(guest_size, why)))
		return ret;
	/* Equal slices, whole pages: each device's own ring and data. */
	__u64 slice = (guest_size / devs_.size()) & ~__u64(4095);
	for (size_t i = 0; i < devs_.size(); i++) {
		devs_[i].slice_off = i * slice;
		devs_[i].slice_size = slice;
		if ((ret = map_bar2(i, why)))
			return ret;
	}
	return 0;
}

int SimVm::reopen()
{
	if (devs_.empty())
		return -ENODEV;
	Dev &d = devs_[0];
	if (d.fd >= 0)
		uvfio_close(d.fd);
	d.fd = d.group >= 0 ? uvfio_ioctl(d.group, VFIO_GROUP_GET_DEVICE_FD,
					  const_cast<char *>(d.bdf.c_str()))
			    : uvfio_open(d.bdf.c_str());
	return d.fd < 0 ? -errno : 0;
}

GuestMemory SimVm::guest() const
{
	return {guest_, GUEST_IOVA, guest_size_, container_};
}

std::pair<__u64, __u64> SimVm::p2p_window(size_t i) const
{
	if (i >= devs_.size() || !devs_[i].p2p_iova)
		return {0, 0};
	return {devs_[i].p2p_iova, devs_[i].bar2_size};
}

std::pair<__u64, __u64> SimVm::guest_slice(size_t i) const
{
	if (i >= devs_.size())
		return {0, 0};
	if (devs_.size() == 1)
		return {0, guest_size_};
	return {devs_[i].slice_off, devs_[i].slice_size};
}

int SimVm::start_workload(__u64 seed, unsigned rate, std::string *why)
{
	return start_workload(0, seed, rate, false, why);
}

int SimVm::start_workload(size_t i, __u64 seed, unsigned rate, bool peers,
			  std::string *why, unsigned peer_share)
{
	if (i >= devs_.size()) {
		*why = "no such device in the VM";
		return -EINVAL;
	}
	Dev &d = devs_[i];
	int fd = d.fd;
	struct vfio_region_info config = {}, bar2 = {};
	config.argsz = sizeof(config);
	config.index = VFIO_PCI_CONFIG_REGION_INDEX;
	bar2.argsz = sizeof(bar2);
	bar2.index = VFIO_PCI_BAR2_REGION_INDEX;
	__u16 cmd = 0;
	if (!guest_ || uvfio_ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &config) ||
	    uvfio_ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &bar2) ||
	    uvfio_pread(fd, &cmd, 2, off_t(config.offset) + PCI_COMMAND) != 2) {
		*why = "the device has no guest memory or device memory";
		return -EINVAL;
	}
	cmd |= PCI_COMMAND_MASTER;
	if (uvfio_pwrite(fd, &cmd, 2, off_t(config.offset) + PCI_COMMAND) != 2) {
		*why = "cannot enable bus mastering: " + std::string(std::strerror(errno));
		return -EIO;
	}
	auto [off, len] = guest_slice(i);
	std::vector<sim_workload_peer> windows;
	d.peer_of.clear();
	if (peers)
		for (size_t j = 0; j < devs_.size(); j++)
			if (j != i && devs_[j].p2p_iova) {
				windows.push_back({devs_[j].p2p_iova,
						   devs_[j].bar2_size});
				d.peer_of.push_back(j);
			}
	sim_workload_config c;
	c.device_fd = fd;
	c.guest = static_cast<char *>(guest_) + off;
	c.guest_iova = GUEST_IOVA + off;
	c.guest_size = len;
	c.dev_mem_size = bar2.size;
	c.seed = seed;
	c.rate = rate;
	c.max_len = static_cast<uint32_t>(std::min<__u64>(
		{64 << 10, bar2.size, len / 2}));
	c.peers = windows.data();
	c.npeers = uint32_t(windows.size());
	c.peer_share = peer_share;
	d.ring_entries = c.ring_entries;
	d.workload = std::make_unique<sim_workload>();
	int ret = d.workload->start(c);
	if (ret) {
		d.workload.reset();
		*why = "cannot start the workload (" + std::string(std::strerror(-ret)) +
		       "): is this the simulated DMA function?";
	}
	return ret;
}

void SimVm::stop_workload()
{
	for (Dev &d : devs_)
		if (d.workload)
			d.workload->stop();
}

void SimVm::stop_workload(size_t i)
{
	if (i < devs_.size() && devs_[i].workload)
		devs_[i].workload->stop();
}

int SimVm::drain_workload(unsigned timeout_ms)
{
	int ret = 0;
	stop_workload();
	for (Dev &d : devs_)
		if (d.workload && !ret)
			ret = d.workload->wait_done(timeout_ms);
	return ret;
}

int SimVm::drain_workload(size_t i, unsigned timeout_ms)
{
	if (i >= devs_.size() || !devs_[i].workload)
		return 0;
	devs_[i].workload->stop();
	return devs_[i].workload->wait_done(timeout_ms);
}

std::vector<std::pair<__u64, __u64>> SimVm::cpu_written() const
{
	/* The rings (the only memory the generators write), each at the
	 * start of its slice. */
	std::vector<std::pair<__u64, __u64>> v;
	for (size_t i = 0; i < devs_.size(); i++)
		if (devs_[i].workload)
			v.push_back({guest_slice(i).first,
				     __u64(devs_[i].ring_entries) *
					     sizeof(struct simdev_desc)});
	return v;
}

__u64 SimVm::workload_completed() const
{
	__u64 n = 0;
	for (size_t i = 0; i < devs_.size(); i++)
		n += workload_completed(i);
	return n;
}

__u64 SimVm::workload_completed(size_t i) const
{
	return i < devs_.size() && devs_[i].workload
		       ? devs_[i].workload->completed() : 0;
}

__u64 SimVm::peer_writes_done(size_t i, size_t peer) const
{
	if (i >= devs_.size() || !devs_[i].workload)
		return 0;
	const Dev &d = devs_[i];
	for (size_t w = 0; w < d.peer_of.size(); w++)
		if (d.peer_of[w] == peer)
			return d.workload->peer_writes_done(uint32_t(w));
	return 0;
}

} // namespace uvfio::tools
