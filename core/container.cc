// SPDX-License-Identifier: GPL-2.0-only
/*
 * The IOMMU container, "/dev/vfio/vfio".
 *
 * Present: VFIO_GET_API_VERSION and VFIO_CHECK_EXTENSION (no IOMMU model is
 * offered yet, so every extension reports 0). The type1v2 model arrives with
 * the dirty-tracking work; see Documentation/uapi.md.
 */
#include <cerrno>
#include <sys/mman.h>

#include <uvfio/linux/fs.h>
#include <uvfio/linux/kernel.h>
#include <uvfio/uapi/vfio.h>

#include "vfio.h"

static long vfio_fops_unl_ioctl(struct file *, unsigned int cmd,
				unsigned long arg)
{
	switch (cmd) {
	case VFIO_GET_API_VERSION:
		return VFIO_API_VERSION;
	case VFIO_CHECK_EXTENSION:
		(void)arg;
		return 0;
	default:
		return -ENOTTY;
	}
}

static int vfio_fops_release(struct inode *, struct file *)
{
	return 0;
}

static const struct file_operations vfio_container_fops = {
	.read = nullptr,
	.write = nullptr,
	.unlocked_ioctl = vfio_fops_unl_ioctl,
	.mmap = nullptr,
	.release = vfio_fops_release,
};

int vfio_container_open(void)
{
	struct file *filp = anon_inode_getfile("[vfio-container]",
					       &vfio_container_fops, nullptr,
					       O_RDWR);
	if (IS_ERR(filp))
		return static_cast<int>(PTR_ERR(filp));
	int real_fd = memfd_create("[vfio-container]", MFD_CLOEXEC);
	if (real_fd < 0)
		real_fd = -errno;
	return uvfio_fd_install(filp, real_fd);
}
