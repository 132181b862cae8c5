// SPDX-License-Identifier: GPL-2.0-only
/* Naming and opening a VFIO device the VMM way; see vfio_open.h. */
#include <fcntl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include <uvfio/tools/vfio_open.h>
#include <uvfio/uapi/vfio.h>

#include "lib_priv.h"

namespace uvfio::tools {

using detail::errstr;

namespace {

constexpr char PCI_DIR[] = "/sys/bus/pci/devices/";
constexpr char MDEV_DIR[] = "/sys/bus/mdev/devices/";
constexpr char DEV_DIR[] = "/dev/vfio/";
constexpr char CONTAINER[] = "/dev/vfio/vfio";

const char FORMS[] = "name a device as /sys/bus/pci/devices/DDDD:BB:DD.F, "
		     "/sys/bus/mdev/devices/UUID or /dev/vfio/N@NAME";

bool starts_with(const std::string &s, const char *prefix)
{
	return !s.compare(0, std::strlen(prefix), prefix);
}

bool all_of(const std::string &s, const char *chars)
{
	return !s.empty() && s.find_first_not_of(chars) == std::string::npos;
}

/* Lower-case hex digits of the widths given, separated by seps. */
bool hex_fields(const std::string &s, std::initializer_list<size_t> widths,
		const char *seps)
{
	size_t pos = 0, i = 0;
	for (size_t w : widths) {
		if (i && (pos >= s.size() || s[pos++] != seps[i - 1]))
			return false;
		if (s.size() < pos + w ||
		    !all_of(s.substr(pos, w), "0123456789abcdef"))
			return false;
		pos += w;
		i++;
	}
	return pos == s.size();
}

bool is_uuid(const std::string &s)
{
	return hex_fields(s, {8, 4, 4, 4, 12}, "----");
}

} // namespace

bool is_device_path(const std::string &arg)
{
	return !arg.empty() && arg[0] == '/';
}

bool is_pci_address(const std::string &s)
{
	/* DDDD:BB:DD.F, the function a single octal digit. */
	return s.size() == 12 && hex_fields(s.substr(0, 10), {4, 2, 2}, "::") &&
	       s[10] == '.' && s[11] >= '0' && s[11] <= '7';
}

int parse_device_path(const std::string &arg, DeviceName *out,
		      std::string *why)
{
	std::string p = arg;
	while (p.size() > 1 && p.back() == '/')
		p.pop_back();
	*out = {};
	out->arg = arg;
	auto bad = [&](const std::string &what) {
		*why = "\"" + arg + "\": " + what;
		return -EINVAL;
	};

	if (starts_with(p, PCI_DIR)) {
		std::string name = p.substr(sizeof(PCI_DIR) - 1);
		if (!is_pci_address(name))
			return bad("\"" + name + "\" is not a PCI address "
				   "(DDDD:BB:DD.F, lower-case hex, as in sysfs)");
		out->name = name;
		out->sysfs = p;
		return 0;
	}
	if (starts_with(p, MDEV_DIR)) {
		std::string name = p.substr(sizeof(MDEV_DIR) - 1);
		if (!is_uuid(name))
			return bad("\"" + name + "\" is not an mdev UUID "
				   "(8-4-4-4-12 lower-case hex digits)");
		out->name = name;
		out->sysfs = p;
		return 0;
	}
	if (starts_with(p, DEV_DIR)) {
		std::string rest = p.substr(sizeof(DEV_DIR) - 1);
		size_t at = rest.find('@');
		std::string grp = rest.substr(0, at);
		if (grp == "vfio")
			return bad("that is the container; " + std::string(FORMS));
		if (starts_with(grp, "devices/"))
			return bad("device files (VFIO cdev, iommufd) are not "
				   "supported; use the group: " +
				   std::string(FORMS));
		if (starts_with(grp, "noiommu-"))
			return bad("no-IOMMU groups are not supported");
		if (!all_of(grp, "0123456789") || grp.size() > 9)
			return bad("\"" + grp + "\" is not a group number; " +
				   std::string(FORMS));
		if (at == std::string::npos)
			return bad("which device of group " + grp + "? Name it: " +
				   std::string(DEV_DIR) + grp + "@DDDD:BB:DD.F "
				   "or " + DEV_DIR + grp + "@UUID");
		std::string name = rest.substr(at + 1);
		if (name.empty() || name.find_first_of("/@ \t\n") !=
					    std::string::npos)
			return bad("\"" + name + "\" is not a device name "
				   "(a PCI address or an mdev UUID)");
		out->name = name;
		out->group = DEV_DIR + grp;
		return 0;
	}
	return bad("not a VFIO device; " + std::string(FORMS));
}

int resolve_group(Transport &t, DeviceName *dn, std::string *why)
{
	if (!dn->group.empty())
		return 0;
	std::string link = dn->sysfs + "/iommu_group", target;
	int ret = t.readlink(link.c_str(), &target);
	if (ret) {
		*why = "cannot open " + dn->arg + ": readlink " + link + ": " +
		       errstr(ret);
		if (ret == -ENOENT)
			*why += " (no such device, or it has no IOMMU group)";
		return ret;
	}
	/* ../../../kernel/iommu_groups/N: the group is N. */
	std::string n = target.substr(target.rfind('/') + 1);
	if (!all_of(n, "0123456789") || n.size() > 9) {
		*why = "cannot open " + dn->arg + ": " + link + " points to \"" +
		       target + "\", not an IOMMU group";
		return -EINVAL;
	}
	dn->group = DEV_DIR + n;
	return 0;
}

VfioDevice::~VfioDevice()
{
	close();
}

void VfioDevice::close()
{
	/* Device, then group, then container, as a VMM tears down. */
	for (int *fd : {&fd_, &group_, &container_}) {
		if (*fd >= 0)
			t_.close(*fd);
		*fd = -1;
	}
	/* Only now: the container's DMA mappings are gone with it. */
	if (guest_)
		munmap(guest_, guest_size_);
	guest_ = nullptr;
	guest_size_ = 0;
}

int VfioDevice::open(const DeviceName &dn, std::string *why)
{
	close();
	dn_ = dn;
	int ret = resolve_group(t_, &dn_, why);
	if (ret)
		return ret;
	const std::string &grp = dn_.group;
	auto failed = [&](int err, const std::string &what) {
		*why = "cannot open " + dn_.arg + ": " + what;
		close();
		return err;
	};

	container_ = t_.open(CONTAINER, O_RDWR);
	if (container_ < 0) {
		ret = container_;
		container_ = -1;
		return failed(ret, std::string(CONTAINER) + ": " + errstr(ret));
	}
	ret = t_.ioctl(container_, VFIO_GET_API_VERSION, nullptr);
	if (ret < 0)
		return failed(ret, std::string(CONTAINER) +
					   ": VFIO_GET_API_VERSION: " + errstr(ret));
	if (ret != VFIO_API_VERSION)
		return failed(-EINVAL, std::string(CONTAINER) + " speaks VFIO "
				       "API version " + std::to_string(ret) +
				       ", not " + std::to_string(VFIO_API_VERSION));
	ret = t_.ioctl(container_, VFIO_CHECK_EXTENSION,
		       reinterpret_cast<void *>(uintptr_t(VFIO_TYPE1v2_IOMMU)));
	if (ret <= 0)
		return failed(ret < 0 ? ret : -ENODEV,
			      std::string(CONTAINER) + " offers no type1v2 "
			      "IOMMU" + (ret < 0 ? ": " + errstr(ret) : ""));

	group_ = t_.open(grp.c_str(), O_RDWR);
	if (group_ < 0) {
		ret = group_;
		group_ = -1;
		std::string hint;
		if (ret == -EBUSY)
			hint = " (the group is open elsewhere: a VM, another tool?)";
		else if (ret == -ENOENT)
			hint = " (no such group: is the device bound to vfio?)";
		return failed(ret, grp + ": " + errstr(ret) + hint);
	}
	struct vfio_group_status status = {};
	status.argsz = sizeof(status);
	if ((ret = t_.ioctl(group_, VFIO_GROUP_GET_STATUS, &status)) < 0)
		return failed(ret, grp + ": VFIO_GROUP_GET_STATUS: " + errstr(ret));
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE))
		return failed(-EPERM, grp + " is not viable: bind every device "
				      "of the group to vfio");
	if ((ret = t_.ioctl(group_, VFIO_GROUP_SET_CONTAINER, &container_)) < 0)
		return failed(ret, grp + ": VFIO_GROUP_SET_CONTAINER: " +
					   errstr(ret));
	ret = t_.ioctl(container_, VFIO_SET_IOMMU,
		       reinterpret_cast<void *>(uintptr_t(VFIO_TYPE1v2_IOMMU)));
	if (ret < 0)
		return failed(ret, std::string(CONTAINER) + ": VFIO_SET_IOMMU "
				   "type1v2: " + errstr(ret));
	if ((ret = reopen()))
		return failed(ret, grp + (ret == -ENODEV ? " has no device \""
							 : ": device \"") +
					   dn_.name + "\": " + errstr(ret));
	return 0;
}

int VfioDevice::reopen()
{
	if (fd_ >= 0)
		t_.close(fd_);
	fd_ = t_.ioctl(group_, VFIO_GROUP_GET_DEVICE_FD,
		       const_cast<char *>(dn_.name.c_str()));
	if (fd_ < 0) {
		int err = fd_;
		fd_ = -1;
		return err;
	}
	return 0;
}

int VfioDevice::map_guest(size_t size, std::string *why)
{
	void *m = mmap(nullptr, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		int err = -errno;
		*why = "cannot allocate guest memory: " + errstr(err);
		return err;
	}
	struct vfio_iommu_type1_dma_map map = {};
	map.argsz = sizeof(map);
	map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	map.vaddr = reinterpret_cast<__u64>(m);
	map.iova = GUEST_IOVA;
	map.size = size;
	int ret = t_.ioctl(container_, VFIO_IOMMU_MAP_DMA, &map);
	if (ret < 0) {
		munmap(m, size);
		*why = "cannot map guest memory for " + dn_.arg +
		       ": VFIO_IOMMU_MAP_DMA: " + errstr(ret);
		/* The kernel pins what it maps, against RLIMIT_MEMLOCK. */
		if (ret == -ENOMEM || ret == -EPERM)
			*why += " (the locked-memory limit? ulimit -l)";
		return ret;
	}
	guest_ = m;
	guest_size_ = size;
	return 0;
}

GuestMemory VfioDevice::guest() const
{
	return {guest_, GUEST_IOVA, guest_size_, container_};
}

} // namespace uvfio::tools
