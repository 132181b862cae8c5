// SPDX-License-Identifier: GPL-2.0-only
/*
 * region-poke SYSFS_DIR INDEX OFFSET BYTE - write one byte into region
 * INDEX of a VFIO device at OFFSET and print what reads back there, in
 * hex. The device is opened as a VMM opens it (container, group by the
 * iommu_group link under SYSFS_DIR, type1v2, the device by the last
 * component of SYSFS_DIR).
 *
 * The kernel test runs it in the guest to give an mtty device a state of
 * its own (its scratch register, BAR0 offset 7, travels in the migration
 * stream), so that a save/load round trip between two mtty devices moves
 * something a fresh device does not already have. Static: the initramfs
 * has the C library only for uvfio's own programs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/vfio.h>

static int fail(const char *what)
{
	fprintf(stderr, "region-poke: %s: %s\n", what, strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	char link[PATH_MAX], group_path[PATH_MAX + 16], path[PATH_MAX];
	struct vfio_group_status status = { .argsz = sizeof(status) };
	struct vfio_region_info ri = { .argsz = sizeof(ri) };
	const char *name, *group;
	unsigned char v, back;
	unsigned long off;
	int container, grp, dev;
	ssize_t n;

	if (argc != 5) {
		fprintf(stderr, "usage: region-poke SYSFS_DIR INDEX OFFSET BYTE\n");
		return 2;
	}
	ri.index = strtoul(argv[2], NULL, 0);
	off = strtoul(argv[3], NULL, 0);
	v = strtoul(argv[4], NULL, 0);
	name = strrchr(argv[1], '/');
	name = name ? name + 1 : argv[1];

	snprintf(path, sizeof(path), "%s/iommu_group", argv[1]);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return fail(path);
	link[n] = 0;
	group = strrchr(link, '/');
	snprintf(group_path, sizeof(group_path), "/dev/vfio/%s",
		 group ? group + 1 : link);

	container = open("/dev/vfio/vfio", O_RDWR);
	if (container < 0)
		return fail("/dev/vfio/vfio");
	grp = open(group_path, O_RDWR);
	if (grp < 0)
		return fail(group_path);
	if (ioctl(grp, VFIO_GROUP_GET_STATUS, &status))
		return fail("VFIO_GROUP_GET_STATUS");
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		errno = EBUSY;
		return fail("group not viable");
	}
	if (ioctl(grp, VFIO_GROUP_SET_CONTAINER, &container))
		return fail("VFIO_GROUP_SET_CONTAINER");
	if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		return fail("VFIO_SET_IOMMU");
	dev = ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, name);
	if (dev < 0)
		return fail("VFIO_GROUP_GET_DEVICE_FD");
	if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &ri))
		return fail("VFIO_DEVICE_GET_REGION_INFO");
	if (off >= ri.size) {
		errno = EINVAL;
		return fail("offset past the region");
	}
	if (pwrite(dev, &v, 1, (off_t)(ri.offset + off)) != 1)
		return fail("pwrite");
	if (pread(dev, &back, 1, (off_t)(ri.offset + off)) != 1)
		return fail("pread");
	printf("0x%02x\n", back);
	close(dev);
	close(grp);
	close(container);
	return 0;
}
