/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/tools/vfio_open.h> - a VFIO device named as an operator names it
 * on a host, opened the way a VMM opens it: the container (API version,
 * type1v2 offered), the group (viable), the group into the container, the
 * type1v2 IOMMU, the device fd by its name in the group; guest memory
 * mapped for DMA when a command needs it. Only through a Transport, so
 * the same code opens a kernel device (plain system calls, also under
 * uvfio-run) and a simulated one (uvfio_*).
 *
 * The names (see vfio-mig-ctl(1)):
 *   /sys/bus/pci/devices/DDDD:BB:DD.F   a PCI function
 *   /sys/bus/mdev/devices/UUID          a mediated device
 *   /dev/vfio/N@NAME                    NAME (address or UUID) in group N
 * For the sysfs names the group is found as QEMU finds it: the
 * device's iommu_group link, whose last component is N.
 */
#ifndef UVFIO_TOOLS_VFIO_OPEN_H
#define UVFIO_TOOLS_VFIO_OPEN_H

#include <linux/types.h>

#include <string>

#include <uvfio/tools/migration.h>
#include <uvfio/tools/transport.h>

namespace uvfio::tools {

/* A device name from the command line, parsed; nothing opened yet. */
struct DeviceName {
	std::string arg;	/* as given */
	std::string name;	/* in its group: PCI address or mdev UUID */
	std::string sysfs;	/* its sysfs directory, "" for /dev/vfio/N@ */
	std::string group;	/* "/dev/vfio/N", "" until resolved */
};

/* A path names a real device; anything else is a device spec. */
bool is_device_path(const std::string &arg);

/* Is s a canonical PCI address, DDDD:BB:DD.F (lower-case hex)? */
bool is_pci_address(const std::string &s);

/*
 * Parse one of the names above (a trailing '/' allowed). 0, or -EINVAL
 * with *why saying what is wrong and what the forms are.
 */
int parse_device_path(const std::string &arg, DeviceName *out,
		      std::string *why);

/*
 * Fill dn->group from the iommu_group link under dn->sysfs (nothing to
 * do when it is known). 0, or -errno with *why naming the link.
 */
int resolve_group(Transport &t, DeviceName *dn, std::string *why);

/* The container, group and device fds of one device, and guest memory. */
class VfioDevice
{
public:
	/* Where guest memory starts in the device's IOVA space. */
	static constexpr __u64 GUEST_IOVA = 1ULL << 32;

	explicit VfioDevice(Transport &t) : t_(t) {}
	~VfioDevice();
	VfioDevice(const VfioDevice &) = delete;
	VfioDevice &operator=(const VfioDevice &) = delete;

	/*
	 * Resolve the group and open the device through it. 0, or -errno
	 * with *why: one line naming the path or step and the errno text.
	 */
	int open(const DeviceName &dn, std::string *why);
	/* Anonymous guest memory of size bytes, mapped at GUEST_IOVA
	 * (VFIO_IOMMU_MAP_DMA, read and write). 0 or -errno with *why. */
	int map_guest(size_t size, std::string *why);
	/* Close the device fd (the last close resets the device in the
	 * kernel) and get a new one from the group. 0 or -errno. */
	int reopen();
	/* Close everything, guest memory last (after the container). */
	void close();

	Transport &transport() const { return t_; }
	const DeviceName &name() const { return dn_; }
	int fd() const { return fd_; }
	int group_fd() const { return group_; }
	int container_fd() const { return container_; }
	GuestMemory guest() const;

private:
	Transport &t_;
	DeviceName dn_;
	int container_ = -1, group_ = -1, fd_ = -1;
	void *guest_ = nullptr;
	size_t guest_size_ = 0;
};

} // namespace uvfio::tools

#endif /* UVFIO_TOOLS_VFIO_OPEN_H */
