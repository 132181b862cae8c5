// SPDX-License-Identifier: GPL-2.0-only
/*
 * The IOMMU container, "/dev/vfio/vfio": VFIO_GET_API_VERSION,
 * VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU (type1 or type1v2, once at least one
 * group is attached), and every other ioctl passed to the chosen model
 * (vfio_iommu_type1.cc). The DMA entry points drivers use, vfio_dma_rw()
 * and vfio_pin_pages(), reach the model through the device's group.
 */
#include <cerrno>
#include <sys/mman.h>

#include <uvfio/linux/fault-inject.h>
#include <uvfio/linux/fs.h>
#include <uvfio/linux/kernel.h>
#include <uvfio/uapi/vfio.h>

#include "vfio.h"
#include "container.h"

namespace {

std::shared_ptr<vfio_container> &container_of_file(struct file *filp)
{
	return *static_cast<std::shared_ptr<vfio_container> *>(
		filp->private_data);
}

/* Attach (or detach) every group's device to the model; lock held. */
void attach_all(vfio_container &c, bool attach)
{
	for (vfio_group *g : c.groups) {
		if (!g->device)
			continue;
		if (attach)
			vfio_iommu_type1_attach_device(c.iommu.get(), g->device);
		else
			vfio_iommu_type1_detach_device(c.iommu.get(), g->device);
	}
}

long vfio_ioctl_set_iommu(vfio_container &c, unsigned long arg)
{
	std::unique_lock<std::shared_mutex> l(c.lock);

	/*
	 * A model is chosen for groups, once: no group attached yet, or a
	 * model already set, is EINVAL (vfio_ioctl_set_iommu()).
	 */
	if (c.groups.empty() || c.iommu)
		return -EINVAL;
	/*
	 * type1 offers nesting, but the simulated IOMMU cannot nest: as the
	 * kernel's attach of a physical group on x86, whose IOMMU driver has
	 * no enable_nesting (vfio_iommu_type1_attach_group()).
	 */
	if (arg == VFIO_TYPE1_NESTING_IOMMU)
		return -EINVAL;
	if (!vfio_iommu_type1_check_extension(arg) ||
	    (arg != VFIO_TYPE1_IOMMU && arg != VFIO_TYPE1v2_IOMMU))
		return -ENODEV;
	struct vfio_iommu *iommu = vfio_iommu_type1_open(arg);
	if (IS_ERR(iommu))
		return PTR_ERR(iommu);
	try {
		c.iommu = std::shared_ptr<vfio_iommu>(iommu,
						      vfio_iommu_type1_release);
	} catch (...) {
		return -ENOMEM;	/* the deleter ran */
	}
	attach_all(c, true);
	return 0;
}

long vfio_fops_unl_ioctl(struct file *filp, unsigned int cmd,
			 unsigned long arg)
{
	vfio_container &c = *container_of_file(filp);
	std::shared_ptr<vfio_iommu> iommu;

	switch (cmd) {
	case VFIO_GET_API_VERSION:
		return VFIO_API_VERSION;
	case VFIO_SET_IOMMU:
		return vfio_ioctl_set_iommu(c, arg);
	default:
		break;
	}
	{
		std::shared_lock<std::shared_mutex> l(c.lock);
		iommu = c.iommu;
	}
	/*
	 * What a model could offer: the kernel asks each IOMMU driver with
	 * no IOMMU of its own, and type1 answers DMA_CC_IOMMU with 0 then.
	 */
	if (cmd == VFIO_CHECK_EXTENSION && !iommu)
		return arg == VFIO_DMA_CC_IOMMU
			       ? 0
			       : vfio_iommu_type1_check_extension(arg);
	/* Without a model the kernel has nobody to pass the ioctl to. */
	if (!iommu)
		return -EINVAL;
	return vfio_iommu_type1_ioctl(iommu.get(), cmd, arg);
}

int vfio_fops_release(struct inode *, struct file *filp)
{
	delete static_cast<std::shared_ptr<vfio_container> *>(
		filp->private_data);
	return 0;
}

const struct file_operations vfio_container_fops = {
	.read = nullptr,
	.write = nullptr,
	.unlocked_ioctl = vfio_fops_unl_ioctl,
	.mmap = nullptr,
	.release = vfio_fops_release,
};

/* The IOMMU model the device's DMA goes through, or NULL for none. */
std::shared_ptr<vfio_iommu> device_iommu(struct vfio_device *device)
{
	std::shared_ptr<vfio_group> group = device->priv->group;
	if (!group)
		return nullptr;
	std::shared_ptr<vfio_container> c;
	{
		std::lock_guard<std::mutex> l(group->lock);
		c = group->container;
	}
	if (!c)
		return nullptr;
	std::shared_lock<std::shared_mutex> l(c->lock);
	return c->iommu;
}

} // namespace

std::shared_ptr<vfio_container> vfio_container_from_file(struct file *filp)
{
	if (!filp || filp->f_op != &vfio_container_fops)
		return nullptr;
	return container_of_file(filp);
}

int vfio_container_attach_group(const std::shared_ptr<vfio_container> &c,
				vfio_group *group)
{
	std::unique_lock<std::shared_mutex> l(c->lock);
	try {
		c->groups.push_back(group);
	} catch (...) {
		return -ENOMEM;
	}
	group->container = c;
	if (c->iommu && group->device)
		vfio_iommu_type1_attach_device(c->iommu.get(), group->device);
	return 0;
}

void vfio_container_detach_group(vfio_group *group)
{
	std::shared_ptr<vfio_container> c = std::move(group->container);
	if (!c)
		return;
	std::unique_lock<std::shared_mutex> l(c->lock);
	if (c->iommu && group->device)
		vfio_iommu_type1_detach_device(c->iommu.get(), group->device);
	std::erase(c->groups, group);
	/* The last group out takes the model with it. */
	if (c->groups.empty())
		c->iommu.reset();
}

int vfio_container_open(void)
{
	std::shared_ptr<vfio_container> *ref;
	try {
		ref = new std::shared_ptr<vfio_container>(
			std::make_shared<vfio_container>());
	} catch (...) {
		return -ENOMEM;
	}
	struct file *filp = anon_inode_getfile("[vfio-container]",
					       &vfio_container_fops, ref,
					       O_RDWR);
	if (IS_ERR(filp)) {
		delete ref;
		return static_cast<int>(PTR_ERR(filp));
	}
	int real_fd = memfd_create("[vfio-container]", MFD_CLOEXEC);
	if (real_fd < 0)
		real_fd = -errno;
	return uvfio_fd_install(filp, real_fd);
}

/* -------- the driver-facing DMA API -------- */

/*
 * Device DMA through the IOMMU: an injected failure is the IOMMU refusing
 * the access (a translation fault), which the device sees as it sees an
 * unmapped IOVA.
 */
DEFINE_FAULT_POINT(dma_read, "dma.read", EFAULT,
		   "a device DMA read from guest memory (vfio_dma_rw) faults")
DEFINE_FAULT_POINT(dma_write, "dma.write", EFAULT,
		   "a device DMA write to guest memory (vfio_dma_rw) faults")

int vfio_dma_rw(struct vfio_device *device, dma_addr_t iova, void *data,
		size_t len, bool write)
{
	if (!data || !len)
		return -EINVAL;
	std::shared_ptr<vfio_iommu> iommu = device_iommu(device);
	if (!iommu)
		return -EINVAL;
	int err = should_fail(write ? &dma_write : &dma_read);
	if (err)
		return err;
	return vfio_iommu_type1_dma_rw(iommu.get(), iova, data, len, write);
}

int vfio_pin_pages(struct vfio_device *device, dma_addr_t iova, int npage,
		   int prot, struct page **pages)
{
	/* Only drivers that hear about unmaps (dma_unmap) may pin. */
	if (!pages || npage <= 0 || !device->ops->dma_unmap)
		return -EINVAL;
	std::shared_ptr<vfio_iommu> iommu = device_iommu(device);
	if (!iommu)
		return -EINVAL;
	return vfio_iommu_type1_pin_pages(iommu.get(), device, iova, npage,
					  prot,
					  reinterpret_cast<void **>(pages));
}

void vfio_unpin_pages(struct vfio_device *device, dma_addr_t iova, int npage)
{
	std::shared_ptr<vfio_iommu> iommu = device_iommu(device);
	if (WARN_ON(!iommu))
		return;
	vfio_iommu_type1_unpin_pages(iommu.get(), device, iova, npage);
}
