// SPDX-License-Identifier: GPL-2.0-only
/*
 * uvfio-migrate-example: a live migration between two simulated devices,
 * written only against <uvfio/uvfio.h> and the VFIO uAPI, in the order a
 * VMM such as QEMU uses it:
 *
 *   source RUNNING -> PRE_COPY, read passes while PRECOPY_INFO says there is
 *   data (ENOMSG from uvfio_read means "nothing more for now"), the guest
 *   dirties pages between passes; then PRE_COPY_P2P -> STOP_COPY on the same
 *   data fd, read to end of stream, STOP.
 *   destination RUNNING -> RESUMING first; every chunk read from the source
 *   is written to it at once in 32 KiB writes; RUNNING at the end.
 *
 * It prints a report and checks that the destination's device memory equals
 * the source's. vfio-mig-ctl (tools/) will do this for any driver; this
 * example stays as the smallest complete client.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uvfio/uvfio.h>

#define SRC "0000:00:0a.0"
#define DST "0000:00:0b.0"
#define SPEC ",mig=stop_copy|p2p|pre_copy,mem=16M,state=64K"
#define MEM (16u << 20)
#define READ_CHUNK (1u << 20)	/* QEMU's read size */
#define WRITE_CHUNK (32u << 10)	/* QEMU's write size on resume */
#define PASSES 3

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Write all of p to the destination's data fd in QEMU-sized writes. */
static int send_to(int rfd, const unsigned char *p, size_t len)
{
	for (size_t off = 0; off < len;) {
		size_t n = len - off < WRITE_CHUNK ? len - off : WRITE_CHUNK;
		ssize_t w = uvfio_write(rfd, p + off, n);
		if (w < 0) {
			perror("destination data fd");
			return -1;
		}
		off += (size_t)w;
	}
	return 0;
}

/* MIG_DEVICE_STATE SET; returns data_fd (or -1 for none), -2 on error. */
static int set_state(int fd, uint32_t state, const char *who)
{
	uint64_t buf[(sizeof(struct vfio_device_feature) +
		      sizeof(struct vfio_device_feature_mig_state) + 7) / 8] = {0};
	struct vfio_device_feature *f = (struct vfio_device_feature *)buf;
	struct vfio_device_feature_mig_state *m =
		(struct vfio_device_feature_mig_state *)f->data;

	f->argsz = sizeof(buf);
	f->flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	m->device_state = state;
	if (uvfio_ioctl(fd, VFIO_DEVICE_FEATURE, f)) {
		fprintf(stderr, "%s: state %u: %s\n", who, state, strerror(errno));
		return -2;
	}
	return m->data_fd;
}

static int precopy_info(int data_fd, struct vfio_precopy_info *info)
{
	memset(info, 0, sizeof(*info));
	info->argsz = sizeof(*info);
	return uvfio_ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, info);
}

/*
 * Move everything the source has now to the destination: until ENOMSG
 * (pre-copy) or end of stream. Bytes moved, or -1.
 */
static long drain(int data_fd, int rfd, unsigned char *chunk)
{
	long total = 0;
	for (;;) {
		ssize_t n = uvfio_read(data_fd, chunk, READ_CHUNK);
		if (n == 0 || (n < 0 && errno == ENOMSG))
			return total;
		if (n < 0) {
			perror("source data fd");
			return -1;
		}
		if (send_to(rfd, chunk, (size_t)n))
			return -1;
		total += n;
	}
}

/* Where a device's BAR2 (its memory) is on its fd, as a VMM finds it; -1. */
static off_t bar2_offset(int fd)
{
	struct vfio_region_info ri = {.argsz = sizeof(ri),
				      .index = VFIO_PCI_BAR2_REGION_INDEX};
	if (uvfio_ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri) || ri.size < MEM)
		return -1;
	return (off_t)ri.offset;
}

/* The guest writes some pages of device memory between passes. */
static int dirty_pages(int fd, off_t bar2, unsigned pass, unsigned count)
{
	unsigned char page[4096];
	for (unsigned i = 0; i < count; i++) {
		memset(page, (int)(pass * 31 + i), sizeof(page));
		off_t off = (off_t)(((i * 7919u + pass * 104729u) % (MEM / 4096)) * 4096u);
		if (uvfio_pwrite(fd, page, sizeof(page), bar2 + off) != sizeof(page))
			return -1;
	}
	return 0;
}

int main(void)
{
	size_t total = 0;
	unsigned char *chunk = malloc(READ_CHUNK);
	unsigned char *a = malloc(MEM), *b = malloc(MEM);
	int src = -1, dst = -1, sfd = -1, rfd = -1, ret = 1;
	long pass_bytes[PASSES + 1] = {0};

	uvfio_set_log_level(UVFIO_LOG_ERR);
	if (!chunk || !a || !b ||
	    uvfio_sim_add("testdev,bdf=" SRC SPEC) ||
	    uvfio_sim_add("testdev,bdf=" DST SPEC)) {
		perror("setup");
		return 1;
	}
	src = uvfio_open(SRC);
	dst = uvfio_open(DST);
	if (src < 0 || dst < 0) {
		perror("open");
		goto out;
	}
	off_t src_bar2 = bar2_offset(src), dst_bar2 = bar2_offset(dst);
	if (src_bar2 < 0 || dst_bar2 < 0) {
		fprintf(stderr, "no 16 MiB BAR2 on the devices\n");
		goto out;
	}
	/* The guest's data before migration. */
	for (unsigned i = 0; i < MEM; i++)
		a[i] = (unsigned char)(i * 131 + (i >> 12));
	if (uvfio_pwrite(src, a, MEM, src_bar2) != (ssize_t)MEM)
		goto out;

	double t0 = now();
	rfd = set_state(dst, VFIO_DEVICE_STATE_RESUMING, "destination");
	if (rfd < 0)
		goto out;
	sfd = set_state(src, VFIO_DEVICE_STATE_PRE_COPY, "source");
	if (sfd < 0)
		goto out;
	for (unsigned p = 0; p < PASSES; p++) {
		struct vfio_precopy_info info;
		if (precopy_info(sfd, &info)) {
			perror("PRECOPY_INFO");
			goto out;
		}
		printf("pass %u: PRECOPY_INFO initial %llu, dirty %llu bytes\n", p,
		       (unsigned long long)info.initial_bytes,
		       (unsigned long long)info.dirty_bytes);
		long n = drain(sfd, rfd, chunk);
		if (n < 0)
			goto out;
		pass_bytes[p] = n;
		total += (size_t)n;
		if (dirty_pages(src, src_bar2, p, 64 >> p))
			goto out;
	}
	double t_stop = now();
	if (set_state(src, VFIO_DEVICE_STATE_PRE_COPY_P2P, "source") != -1 ||
	    set_state(src, VFIO_DEVICE_STATE_STOP_COPY, "source") != -1)
		goto out;
	pass_bytes[PASSES] = drain(sfd, rfd, chunk);
	if (pass_bytes[PASSES] < 0 ||
	    set_state(src, VFIO_DEVICE_STATE_STOP, "source") != -1)
		goto out;
	total += (size_t)pass_bytes[PASSES];
	if (set_state(dst, VFIO_DEVICE_STATE_RUNNING, "destination") != -1)
		goto out;
	double t_end = now();

	if (uvfio_pread(src, a, MEM, src_bar2) != (ssize_t)MEM ||
	    uvfio_pread(dst, b, MEM, dst_bar2) != (ssize_t)MEM)
		goto out;
	int equal = !memcmp(a, b, MEM);

	printf("\nmigration report (testdev, 16 MiB device memory)\n");
	for (unsigned p = 0; p < PASSES; p++)
		printf("  pre-copy pass %u   %10ld bytes\n", p, pass_bytes[p]);
	printf("  stop-copy          %10ld bytes\n", pass_bytes[PASSES]);
	printf("  total stream       %10zu bytes\n", total);
	printf("  downtime           %10.2f ms (STOP_COPY to destination RUNNING)\n",
	       (t_end - t_stop) * 1e3);
	printf("  total time         %10.2f ms, %.2f GB/s\n", (t_end - t0) * 1e3,
	       total / (t_end - t0) / 1e9);
	printf("  verification       %s\n",
	       equal ? "destination equals source" : "MISMATCH");
	ret = equal ? 0 : 1;
out:
	if (sfd >= 0)
		uvfio_close(sfd);
	if (rfd >= 0)
		uvfio_close(rfd);
	if (src >= 0)
		uvfio_close(src);
	if (dst >= 0)
		uvfio_close(dst);
	uvfio_sim_remove(SRC);
	uvfio_sim_remove(DST);
	free(chunk);
	free(a);
	free(b);
	return ret;
}
