// SPDX-License-Identifier: GPL-2.0-only
/*
 * The cost of uvfio-run on a device's hot path: 4-byte BAR0 preads on a
 * device opened the kernel way, with plain pread(2) under uvfio-run, or
 * (-DUSE_UVFIO) with uvfio_pread on a device this program creates. Prints
 * nanoseconds per pread; tests/bench/bench_preload.sh takes the ratio.
 *
 * usage: bench-preload BDF N [SPEC]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <linux/vfio.h>

#ifdef USE_UVFIO
#include <uvfio/uvfio.h>
#define open(path, flags) uvfio_open(path)
#define ioctl uvfio_ioctl
#define pread uvfio_pread
#else
#include <sys/ioctl.h>
#endif

int main(int argc, char **argv)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri) };
	char path[256], link[256];
	struct timespec t0, t1;
	int container, group, device;
	long i, n;
	uint32_t id;

	if (argc < 3)
		return 2;
	n = atol(argv[2]);
#ifdef USE_UVFIO
	if (argc < 4 || uvfio_sim_add(argv[3]))
		return 2;
	snprintf(link, sizeof(link), "%d", uvfio_sim_iommu_group(argv[1]));
#else
	ssize_t len;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group",
		 argv[1]);
	len = readlink(path, link, sizeof(link) - 1);
	if (len < 0)
		return 1;
	link[len] = '\0';
#endif
	container = open("/dev/vfio/vfio", O_RDWR);
	snprintf(path, sizeof(path), "/dev/vfio/%s", basename(link));
	group = open(path, O_RDWR);
	if (container < 0 || group < 0 ||
	    ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) ||
	    ioctl(container, VFIO_SET_IOMMU, (void *)VFIO_TYPE1v2_IOMMU))
		return 1;
	device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, argv[1]);
	ri.index = VFIO_PCI_BAR0_REGION_INDEX;
	if (device < 0 || ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &ri))
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++)
		if (pread(device, &id, 4, (off_t)ri.offset) != 4)
			return 1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.1f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 +
			  (t1.tv_nsec - t0.tv_nsec)) / (double)n);
	return 0;
}
