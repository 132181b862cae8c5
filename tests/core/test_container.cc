// SPDX-License-Identifier: GPL-2.0-only
/*
 * Groups and the container through the uAPI: the legacy type1 flow a VMM
 * uses (container, group, SET_CONTAINER, SET_IOMMU, GET_DEVICE_FD), the
 * kernel's errno for each misuse, and a device's DMA reaching the user's
 * memory only through the container's mappings.
 */
#include <gtest/gtest.h>

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include <uvfio/linux/vfio.h>
#include <uvfio/uapi/vfio.h>
#include <uvfio/uvfio.h>

#include "test_util.h"

using namespace uvfio_test;

namespace {

int err(int r)
{
	return r < 0 ? errno : 0;
}

std::string group_path(const char *bdf)
{
	return "/dev/vfio/" + std::to_string(uvfio_sim_iommu_group(bdf));
}

unsigned int group_flags(int group)
{
	struct vfio_group_status st = {};
	st.argsz = sizeof(st);
	EXPECT_EQ(uvfio_ioctl(group, VFIO_GROUP_GET_STATUS, &st), 0);
	return st.flags;
}

// Contract: the type1 flow works and each step checks like the kernel:
// one opener per group (EBUSY); GET_STATUS reports VIABLE and
// CONTAINER_SET; SET_CONTAINER wants an open fd (EBADF) that is a
// container (EBADFD), once (EINVAL); SET_IOMMU needs a group (EINVAL), a
// known type (ENODEV) and happens once (EINVAL); GET_DEVICE_FD wants the
// device's name (ENODEV, looked at first) and the model (EINVAL);
// UNSET_CONTAINER fails while a device fd is open (EBUSY) and without a
// container (EINVAL).
TEST(ContainerTest, Type1Flow)
{
	SimDevice dev("mig=stop_copy");
	ASSERT_TRUE(dev.added());
	ASSERT_GE(uvfio_sim_iommu_group(dev.name()), 0);
	EXPECT_EQ(err(uvfio_sim_iommu_group("0000:ff:1f.7")), ENOENT);

	int container = uvfio_open("/dev/vfio/vfio");
	ASSERT_GE(container, 0);
	EXPECT_EQ(uvfio_ioctl(container, VFIO_CHECK_EXTENSION,
			      reinterpret_cast<void *>(VFIO_TYPE1v2_IOMMU)),
		  1);
	EXPECT_EQ(err(uvfio_ioctl(container, VFIO_SET_IOMMU,
				  reinterpret_cast<void *>(VFIO_TYPE1v2_IOMMU))),
		  EINVAL);

	int group = uvfio_open(group_path(dev.name()).c_str());
	ASSERT_GE(group, 0);
	EXPECT_EQ(err(uvfio_open(group_path(dev.name()).c_str())), EBUSY);
	EXPECT_EQ(group_flags(group), unsigned{VFIO_GROUP_FLAGS_VIABLE});
	EXPECT_EQ(err(uvfio_ioctl(group, VFIO_GROUP_UNSET_CONTAINER, nullptr)),
		  EINVAL);
	EXPECT_EQ(err(uvfio_ioctl(group, VFIO_GROUP_GET_DEVICE_FD,
				  const_cast<char *>(dev.name()))),
		  EINVAL);
	char nobody[] = "0000:00:00.0";
	EXPECT_EQ(err(uvfio_ioctl(group, VFIO_GROUP_GET_DEVICE_FD, nobody)),
		  ENODEV);
	int bad = -1;
	EXPECT_EQ(err(uvfio_ioctl(group, VFIO_GROUP_SET_CONTAINER, &bad)), EBADF);
	EXPECT_EQ(err(uvfio_ioctl(group, VFIO_GROUP_SET_CONTAINER, &group)),
		  EBADFD);
	EXPECT_EQ(uvfio_ioctl(group, VFIO_GROUP_SET_CONTAINER, &container), 0);
	EXPECT_EQ(group_flags(group),
		  unsigned{VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET});
	EXPECT_EQ(err(uvfio_ioctl(group, VFIO_GROUP_SET_CONTAINER, &container)),
		  EINVAL);

	EXPECT_EQ(err(uvfio_ioctl(container, VFIO_SET_IOMMU,
				  reinterpret_cast<void *>(99))),
		  ENODEV);
	EXPECT_EQ(uvfio_ioctl(container, VFIO_SET_IOMMU,
			      reinterpret_cast<void *>(VFIO_TYPE1v2_IOMMU)),
		  0);
	EXPECT_EQ(err(uvfio_ioctl(container, VFIO_SET_IOMMU,
				  reinterpret_cast<void *>(VFIO_TYPE1v2_IOMMU))),
		  EINVAL);

	char other[] = "0000:00:00.0";
	EXPECT_EQ(err(uvfio_ioctl(group, VFIO_GROUP_GET_DEVICE_FD, other)),
		  ENODEV);
	int device = uvfio_ioctl(group, VFIO_GROUP_GET_DEVICE_FD,
				 const_cast<char *>(dev.name()));
	ASSERT_GE(device, 0);
	struct vfio_device_info info = {};
	info.argsz = sizeof(info);
	EXPECT_EQ(uvfio_ioctl(device, VFIO_DEVICE_GET_INFO, &info), 0);
	EXPECT_EQ(err(uvfio_ioctl(group, VFIO_GROUP_UNSET_CONTAINER, nullptr)),
		  EBUSY);
	EXPECT_EQ(uvfio_close(device), 0);
	EXPECT_EQ(uvfio_ioctl(group, VFIO_GROUP_UNSET_CONTAINER, nullptr), 0);
	/* The last group out took the model: SET_IOMMU needs a group again. */
	EXPECT_EQ(err(uvfio_ioctl(container, VFIO_IOMMU_GET_INFO, &info)),
		  EINVAL);
	EXPECT_EQ(uvfio_close(group), 0);
	EXPECT_EQ(uvfio_close(container), 0);
}

/* A device registered directly, whose "hardware" does DMA on request. */
struct dma_device {
	struct vfio_device vdev;
};

const struct vfio_device_ops dma_ops = {
	.name = "dma-test",
};

// Contract: a device's DMA reaches the user's memory only through the
// container's mappings: a write into a mapped IOVA lands in the buffer, an
// unmapped IOVA is -EFAULT and changes nothing, a device opened by BDF (no
// container) or whose group left the container cannot DMA at all.
TEST(ContainerTest, DeviceDmaGoesThroughMappings)
{
	struct device parent;
	parent.name = next_bdf();
	dma_device *d = vfio_alloc_device(dma_device, vdev, &parent, &dma_ops);
	ASSERT_FALSE(IS_ERR(d));
	ASSERT_EQ(vfio_register_group_dev(&d->vdev), 0);

	char byte = 1;
	EXPECT_EQ(vfio_dma_rw(&d->vdev, 0x100000, &byte, 1, true), -EINVAL);

	int container = uvfio_open("/dev/vfio/vfio");
	int group = uvfio_open(group_path(parent.name.c_str()).c_str());
	ASSERT_GE(container, 0);
	ASSERT_GE(group, 0);
	ASSERT_EQ(uvfio_ioctl(group, VFIO_GROUP_SET_CONTAINER, &container), 0);
	ASSERT_EQ(uvfio_ioctl(container, VFIO_SET_IOMMU,
			      reinterpret_cast<void *>(VFIO_TYPE1v2_IOMMU)),
		  0);

	const size_t len = 1 << 20;
	void *mem = mmap(nullptr, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(mem, MAP_FAILED);
	struct vfio_iommu_type1_dma_map map = {};
	map.argsz = sizeof(map);
	map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	map.vaddr = reinterpret_cast<uintptr_t>(mem);
	map.iova = 0x100000;
	map.size = len;
	ASSERT_EQ(uvfio_ioctl(container, VFIO_IOMMU_MAP_DMA, &map), 0);

	const char msg[] = "written by the device";
	EXPECT_EQ(vfio_dma_rw(&d->vdev, 0x100000 + 4096, const_cast<char *>(msg),
			      sizeof(msg), true),
		  0);
	EXPECT_EQ(memcmp(static_cast<char *>(mem) + 4096, msg, sizeof(msg)), 0);
	char back[sizeof(msg)] = {};
	EXPECT_EQ(vfio_dma_rw(&d->vdev, 0x100000 + 4096, back, sizeof(back),
			      false),
		  0);
	EXPECT_EQ(memcmp(back, msg, sizeof(msg)), 0);
	/* Running off the end of the mapping faults and copies nothing. */
	std::vector<char> big(8192, 'x');
	EXPECT_EQ(vfio_dma_rw(&d->vdev, 0x100000 + len - 4096, big.data(),
			      big.size(), true),
		  -EFAULT);
	EXPECT_NE(static_cast<char *>(mem)[len - 4096], 'x');
	EXPECT_EQ(vfio_dma_rw(&d->vdev, 0x10, &byte, 1, true), -EFAULT);

	EXPECT_EQ(uvfio_close(group), 0);	/* leaves the container */
	EXPECT_EQ(vfio_dma_rw(&d->vdev, 0x100000, &byte, 1, true), -EINVAL);
	EXPECT_EQ(uvfio_close(container), 0);
	munmap(mem, len);
	vfio_unregister_group_dev(&d->vdev);
	vfio_put_device(&d->vdev);
}

} // namespace
