// SPDX-License-Identifier: GPL-2.0-only
/*
 * IOMMU groups, "/dev/vfio/N". Each registered device is alone in a group
 * numbered by its index (uvfio_sim_iommu_group() tells the number, as the
 * iommu_group link in sysfs does). The group fd is how a device gets an
 * IOMMU: VFIO_GROUP_SET_CONTAINER attaches it to a container, and
 * VFIO_GROUP_GET_DEVICE_FD opens the device once the container has a model.
 * A device opened by BDF instead is behind no container, and its DMA fails.
 */
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <string>
#include <sys/mman.h>

#include <uvfio/linux/fs.h>
#include <uvfio/linux/kernel.h>
#include <uvfio/linux/uaccess.h>
#include <uvfio/uapi/vfio.h>

#include "vfio.h"
#include "container.h"

namespace {

struct group_registry {
	std::mutex lock;
	std::map<int, std::shared_ptr<vfio_group>> groups;
};

group_registry &registry()
{
	static group_registry *r = new group_registry;
	return *r;
}

std::shared_ptr<vfio_group> &group_of_file(struct file *filp)
{
	return *static_cast<std::shared_ptr<vfio_group> *>(filp->private_data);
}

long vfio_group_ioctl_get_status(vfio_group &g,
				 struct vfio_group_status __user *arg)
{
	size_t minsz = offsetofend(struct vfio_group_status, flags);
	struct vfio_group_status status;

	if (copy_from_user(&status, arg, minsz))
		return -EFAULT;
	if (status.argsz < minsz)
		return -EINVAL;
	status.flags = 0;
	{
		std::lock_guard<std::mutex> l(g.lock);
		/* Every device of the group is bound to vfio: viable. */
		if (g.device)
			status.flags |= VFIO_GROUP_FLAGS_VIABLE;
		if (g.container)
			status.flags |= VFIO_GROUP_FLAGS_CONTAINER_SET;
	}
	if (copy_to_user(arg, &status, minsz))
		return -EFAULT;
	return 0;
}

/*
 * In the kernel's order (vfio_group_ioctl_set_container()): the fd must be
 * open (EBADF), the group must have no container yet (EINVAL) and still a
 * device (ENODEV: the kernel's group without an iommu_group), and only
 * then is the fd's kind looked at: neither a container nor an iommufd is
 * EBADFD. An fd of the process that uvfio did not hand out is open but
 * not a container.
 */
long vfio_group_ioctl_set_container(vfio_group &g, int __user *arg)
{
	int fd;

	if (copy_from_user(&fd, arg, sizeof(fd)))
		return -EFAULT;
	if (fd < 0)
		return -EBADF;
	std::shared_ptr<vfio_container> c;
	struct file *filp = uvfio_fget(fd);
	if (filp) {
		c = vfio_container_from_file(filp);
		fput(filp);
	} else if (fcntl(fd, F_GETFD) < 0) {
		return -EBADF;
	}

	std::lock_guard<std::mutex> l(g.lock);
	if (g.container)
		return -EINVAL;
	if (!g.device)
		return -ENODEV;
	if (!c)
		return -EBADFD;
	return vfio_container_attach_group(c, &g);
}

long vfio_group_ioctl_unset_container(vfio_group &g)
{
	std::lock_guard<std::mutex> l(g.lock);
	if (!g.container)
		return -EINVAL;
	/* Device fds opened through the group still use the container. */
	if (g.device_fds)
		return -EBUSY;
	vfio_container_detach_group(&g);
	return 0;
}

long vfio_group_ioctl_get_device_fd(struct file *group_file, vfio_group &g,
				    const char __user *arg)
{
	char name[PAGE_SIZE];
	size_t n = 0;

	/* A NUL-terminated user string of at most a page, byte by byte. */
	for (;; n++) {
		if (n == sizeof(name))
			return -EINVAL;
		if (copy_from_user(&name[n], arg + n, 1))
			return -EFAULT;
		if (!name[n])
			break;
	}

	/*
	 * The kernel's order: the device by its name first (ENODEV), then
	 * the group's container (vfio_df_group_open()) and the container's
	 * IOMMU model (vfio_group_use_container()), both EINVAL.
	 */
	struct vfio_device *device;
	{
		std::lock_guard<std::mutex> l(g.lock);
		if (!g.device || strcmp(dev_name(g.device->dev), name))
			return -ENODEV;
		bool has_iommu = false;
		if (g.container) {
			std::shared_lock<std::shared_mutex> cl(g.container->lock);
			has_iommu = g.container->iommu != nullptr;
		}
		if (!has_iommu)
			return -EINVAL;
		device = vfio_device_get_registered(name);
		if (IS_ERR(device))
			return -ENODEV;
	}
	return vfio_device_fd_open(device, group_file);
}

long vfio_group_fops_unl_ioctl(struct file *filp, unsigned int cmd,
			       unsigned long arg)
{
	vfio_group &g = *group_of_file(filp);
	void __user *uarg = reinterpret_cast<void __user *>(arg);

	switch (cmd) {
	case VFIO_GROUP_GET_STATUS:
		return vfio_group_ioctl_get_status(
			g, static_cast<struct vfio_group_status *>(uarg));
	case VFIO_GROUP_SET_CONTAINER:
		return vfio_group_ioctl_set_container(g, static_cast<int *>(uarg));
	case VFIO_GROUP_UNSET_CONTAINER:
		return vfio_group_ioctl_unset_container(g);
	case VFIO_GROUP_GET_DEVICE_FD:
		return vfio_group_ioctl_get_device_fd(
			filp, g, static_cast<const char *>(uarg));
	default:
		return -ENOTTY;
	}
}

/*
 * Device fds hold the group file, so this runs after the last of them is
 * closed: the group leaves its container, as in the kernel.
 */
int vfio_group_fops_release(struct inode *, struct file *filp)
{
	auto *ref = static_cast<std::shared_ptr<vfio_group> *>(
		filp->private_data);
	vfio_group &g = **ref;
	{
		std::lock_guard<std::mutex> l(g.lock);
		vfio_container_detach_group(&g);
		g.opened = false;
	}
	delete ref;
	return 0;
}

const struct file_operations vfio_group_fops = {
	.read = nullptr,
	.write = nullptr,
	.unlocked_ioctl = vfio_group_fops_unl_ioctl,
	.mmap = nullptr,
	.release = vfio_group_fops_release,
};

} // namespace

int vfio_group_register(struct vfio_device *device)
{
	std::shared_ptr<vfio_group> g;
	try {
		g = std::make_shared<vfio_group>();
		g->id = static_cast<int>(device->index);
		g->device = device;
		group_registry &r = registry();
		std::lock_guard<std::mutex> l(r.lock);
		r.groups.emplace(g->id, g);
	} catch (...) {
		return -ENOMEM;
	}
	device->priv->group = std::move(g);
	return 0;
}

void vfio_group_unregister(struct vfio_device *device)
{
	std::shared_ptr<vfio_group> g = std::move(device->priv->group);
	if (!g)
		return;
	{
		group_registry &r = registry();
		std::lock_guard<std::mutex> l(r.lock);
		r.groups.erase(g->id);
	}
	/* Every device fd is closed by now; a group fd may remain, empty. */
	std::lock_guard<std::mutex> l(g->lock);
	vfio_container_detach_group(g.get());
	g->device = nullptr;
}

int vfio_group_id_of(const char *name)
{
	group_registry &r = registry();
	std::lock_guard<std::mutex> l(r.lock);
	for (auto &[id, g] : r.groups) {
		std::lock_guard<std::mutex> gl(g->lock);
		if (g->device && !strcmp(dev_name(g->device->dev), name))
			return id;
	}
	return -ENOENT;
}

int vfio_group_open(const char *number)
{
	char *end;
	errno = 0;
	long id = strtol(number, &end, 10);
	if (!*number || *end || errno || id < 0 || id > INT_MAX)
		return -ENOENT;

	std::shared_ptr<vfio_group> g;
	{
		group_registry &r = registry();
		std::lock_guard<std::mutex> l(r.lock);
		auto it = r.groups.find(static_cast<int>(id));
		if (it == r.groups.end())
			return -ENOENT;
		g = it->second;
	}
	{
		/* One opener at a time, as the kernel's group fd. */
		std::lock_guard<std::mutex> l(g->lock);
		if (g->opened)
			return -EBUSY;
		g->opened = true;
	}
	std::shared_ptr<vfio_group> *ref = new (std::nothrow)
		std::shared_ptr<vfio_group>(g);
	if (!ref) {
		std::lock_guard<std::mutex> l(g->lock);
		g->opened = false;
		return -ENOMEM;
	}
	struct file *filp = anon_inode_getfile("[vfio-group]", &vfio_group_fops,
					       ref, O_RDWR);
	if (IS_ERR(filp)) {
		delete ref;
		std::lock_guard<std::mutex> l(g->lock);
		g->opened = false;
		return static_cast<int>(PTR_ERR(filp));
	}
	int real_fd = memfd_create("[vfio-group]", MFD_CLOEXEC);
	if (real_fd < 0)
		real_fd = -errno;
	return uvfio_fd_install(filp, real_fd);
}

void vfio_group_device_opened(struct file *group_file)
{
	vfio_group &g = *group_of_file(group_file);
	std::lock_guard<std::mutex> l(g.lock);
	g.device_fds++;
}

void vfio_group_device_closed(struct file *group_file)
{
	vfio_group &g = *group_of_file(group_file);
	std::lock_guard<std::mutex> l(g.lock);
	WARN_ON(!g.device_fds);
	g.device_fds--;
}
