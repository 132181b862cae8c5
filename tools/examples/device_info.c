// SPDX-License-Identifier: GPL-2.0-only
/*
 * uvfio-device-info: print what the VFIO uAPI says about a simulated device.
 *
 * A C program written only against <uvfio/uvfio.h>: swap the uvfio_ names for
 * open/ioctl/close on /dev/vfio/devices/vfioN and it runs on a real device.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uvfio/uvfio.h>

static const char *const default_spec =
	"testdev,bdf=0000:00:01.0,mem=1M,msix=4,mig=stop_copy|p2p|pre_copy";

static const char *const region_names[] = {
	"BAR0", "BAR1", "BAR2", "BAR3", "BAR4", "BAR5", "ROM", "CONFIG", "VGA",
};
static const char *const irq_names[] = {"INTX", "MSI", "MSIX", "ERR", "REQ"};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: uvfio-device-info [SPEC]\n"
		"\n"
		"Create the simulated device SPEC, open it and print its device,\n"
		"region, interrupt and migration information.\n"
		"\n"
		"SPEC is DRIVER,bdf=DDDD:BB:DD.F[,key=value...]\n"
		"default: %s\n",
		default_spec);
}

static int extract_bdf(const char *spec, char *bdf, size_t len)
{
	const char *p = strstr(spec, "bdf=");
	size_t n;

	if (!p)
		return -1;
	p += 4;
	n = strcspn(p, ",");
	if (n + 1 > len)
		return -1;
	memcpy(bdf, p, n);
	bdf[n] = '\0';
	return 0;
}

static void print_migration(int fd)
{
	struct {
		struct vfio_device_feature hdr;
		struct vfio_device_feature_migration mig;
	} f;
	struct {
		struct vfio_device_feature hdr;
		struct vfio_device_feature_mig_data_size size;
	} d;

	memset(&f, 0, sizeof(f));
	f.hdr.argsz = sizeof(f);
	f.hdr.flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION;
	if (uvfio_ioctl(fd, VFIO_DEVICE_FEATURE, &f)) {
		printf("migration: not supported (%s)\n", strerror(errno));
		return;
	}
	printf("migration: flags 0x%llx%s%s%s\n",
	       (unsigned long long)f.mig.flags,
	       f.mig.flags & VFIO_MIGRATION_STOP_COPY ? " STOP_COPY" : "",
	       f.mig.flags & VFIO_MIGRATION_P2P ? " P2P" : "",
	       f.mig.flags & VFIO_MIGRATION_PRE_COPY ? " PRE_COPY" : "");

	memset(&d, 0, sizeof(d));
	d.hdr.argsz = sizeof(d);
	d.hdr.flags = VFIO_DEVICE_FEATURE_GET |
		      VFIO_DEVICE_FEATURE_MIG_DATA_SIZE;
	if (!uvfio_ioctl(fd, VFIO_DEVICE_FEATURE, &d))
		printf("  stop-copy size estimate: %llu bytes\n",
		       (unsigned long long)d.size.stop_copy_length);
}

int main(int argc, char **argv)
{
	const char *spec = default_spec;
	struct vfio_device_info info;
	char bdf[32];
	unsigned int i;
	int fd, ret = 1;

	if (argc > 2) {
		usage(stderr);
		return 2;
	}
	if (argc == 2) {
		if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
			usage(stdout);
			return 0;
		}
		spec = argv[1];
	}
	if (extract_bdf(spec, bdf, sizeof(bdf))) {
		fprintf(stderr, "uvfio-device-info: spec has no bdf=\n");
		return 2;
	}
	if (uvfio_sim_add(spec)) {
		fprintf(stderr, "uvfio-device-info: cannot add %s: %s\n", spec,
			strerror(errno));
		return errno == EINVAL || errno == ENOENT ? 2 : 1;
	}
	fd = uvfio_open(bdf);
	if (fd < 0) {
		fprintf(stderr, "uvfio-device-info: open %s: %s\n", bdf,
			strerror(errno));
		goto out_remove;
	}

	memset(&info, 0, sizeof(info));
	info.argsz = sizeof(info);
	if (uvfio_ioctl(fd, VFIO_DEVICE_GET_INFO, &info)) {
		fprintf(stderr, "uvfio-device-info: VFIO_DEVICE_GET_INFO: %s\n",
			strerror(errno));
		goto out_close;
	}
	printf("device %s: flags 0x%x%s%s, %u regions, %u irqs\n", bdf,
	       info.flags, info.flags & VFIO_DEVICE_FLAGS_PCI ? " PCI" : "",
	       info.flags & VFIO_DEVICE_FLAGS_RESET ? " RESET" : "",
	       info.num_regions, info.num_irqs);

	for (i = 0; i < info.num_regions; i++) {
		struct vfio_region_info reg;

		memset(&reg, 0, sizeof(reg));
		reg.argsz = sizeof(reg);
		reg.index = i;
		if (uvfio_ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &reg))
			continue;
		if (!reg.size)
			continue;
		printf("  region %-6s size %10llu offset 0x%llx %s%s%s\n",
		       i < 9 ? region_names[i] : "?",
		       (unsigned long long)reg.size,
		       (unsigned long long)reg.offset,
		       reg.flags & VFIO_REGION_INFO_FLAG_READ ? "r" : "-",
		       reg.flags & VFIO_REGION_INFO_FLAG_WRITE ? "w" : "-",
		       reg.flags & VFIO_REGION_INFO_FLAG_MMAP ? "m" : "-");
	}
	for (i = 0; i < info.num_irqs; i++) {
		struct vfio_irq_info irq;

		memset(&irq, 0, sizeof(irq));
		irq.argsz = sizeof(irq);
		irq.index = i;
		if (uvfio_ioctl(fd, VFIO_DEVICE_GET_IRQ_INFO, &irq))
			continue;
		printf("  irq    %-6s count %u flags 0x%x\n",
		       i < 5 ? irq_names[i] : "?", irq.count, irq.flags);
	}
	print_migration(fd);
	ret = 0;

out_close:
	uvfio_close(fd);
out_remove:
	if (uvfio_sim_remove(bdf))
		fprintf(stderr, "uvfio-device-info: remove %s: %s\n", bdf,
			strerror(errno));
	return ret;
}
