/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Built as C11 against the installed library: proves <uvfio/uvfio.h> is a
 * C header and the syscall surface works from C.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <uvfio/uvfio.h>

#define CHECK(cond)                                                      \
	do {                                                             \
		if (!(cond)) {                                           \
			fprintf(stderr, "FAIL %s:%d: %s (errno %d %s)\n", \
				__FILE__, __LINE__, #cond, errno,        \
				strerror(errno));                        \
			return 1;                                        \
		}                                                        \
	} while (0)

int main(void)
{
	struct vfio_device_info info;
	uint64_t size = 0;
	int fd;

	/* The spec's size grammar, for tools to parse options with. */
	CHECK(uvfio_parse_size("16MiB", &size) == 0 && size == 16u << 20);
	CHECK(uvfio_parse_size("16MB", &size) == 0 && size == 16u << 20);
	CHECK(uvfio_parse_size("16 M", &size) == -1 && errno == EINVAL);

	CHECK(uvfio_sim_add("testdev,bdf=0000:00:05.0,mig=stop_copy") == 0);
	fd = uvfio_open("0000:00:05.0");
	CHECK(fd >= 0);

	memset(&info, 0, sizeof(info));
	info.argsz = sizeof(info);
	CHECK(uvfio_ioctl(fd, VFIO_DEVICE_GET_INFO, &info) == 0);
	CHECK(info.flags & VFIO_DEVICE_FLAGS_PCI);
	/* vfio-pci's regions and the v1 migration region (mig_ops). */
	CHECK(info.num_regions == VFIO_PCI_NUM_REGIONS + 1);
	CHECK(info.num_irqs == VFIO_PCI_NUM_IRQS);

	/* A uAPI addition newer than the 6.1 headers is usable from C. */
	CHECK(VFIO_DEVICE_STATE_PRE_COPY == 6);
	CHECK(sizeof(struct vfio_precopy_info) == 24);

	info.argsz = 4;
	CHECK(uvfio_ioctl(fd, VFIO_DEVICE_GET_INFO, &info) == -1);
	CHECK(errno == EINVAL);

	CHECK(uvfio_close(fd) == 0);
	CHECK(uvfio_close(fd) == -1 && errno == EBADF);
	CHECK(uvfio_sim_remove("0000:00:05.0") == 0);
	printf("c-api: ok\n");
	return 0;
}
