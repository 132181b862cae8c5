/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A program that only knows the syscall surface: it creates two devices of
 * the plugin driver "plugskel" (loaded from UVFIO_DRIVER_PATH), migrates
 * one into the other with STOP_COPY and checks device memory arrived.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

#define BAR2 (2ULL << 40)

static int set_state(int fd, unsigned state, int *data_fd)
{
	union {
		struct vfio_device_feature f;
		unsigned char b[sizeof(struct vfio_device_feature) +
				sizeof(struct vfio_device_feature_mig_state)];
	} u;
	struct vfio_device_feature_mig_state *m =
		(struct vfio_device_feature_mig_state *)(u.b + sizeof(u.f));
	memset(&u, 0, sizeof(u));
	u.f.argsz = sizeof(u);
	u.f.flags = VFIO_DEVICE_FEATURE_SET |
		    VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	m->device_state = state;
	if (uvfio_ioctl(fd, VFIO_DEVICE_FEATURE, &u))
		return -1;
	if (data_fd)
		*data_fd = m->data_fd;
	return 0;
}

int main(void)
{
	static unsigned char a[1 << 20], b[1 << 20], buf[1 << 16];
	int src, dst, sfd, dfd;
	ssize_t n;

	CHECK(uvfio_sim_add("nosuchplugin,bdf=0000:00:08.0") == -1 &&
	      errno == ENOENT);
	CHECK(uvfio_sim_add("plugskel,bdf=0000:00:09.0,seed=5") == 0);
	CHECK(uvfio_sim_add("plugskel,bdf=0000:00:09.1") == 0);
	src = uvfio_open("0000:00:09.0");
	dst = uvfio_open("0000:00:09.1");
	CHECK(src >= 0 && dst >= 0);

	CHECK(set_state(src, VFIO_DEVICE_STATE_STOP_COPY, &sfd) == 0);
	CHECK(set_state(dst, VFIO_DEVICE_STATE_RESUMING, &dfd) == 0);
	while ((n = read(sfd, buf, sizeof(buf))) > 0)
		CHECK(write(dfd, buf, (size_t)n) == n);
	CHECK(n == 0);
	uvfio_close(dfd);
	CHECK(set_state(dst, VFIO_DEVICE_STATE_STOP, NULL) == 0);
	CHECK(set_state(dst, VFIO_DEVICE_STATE_RUNNING, NULL) == 0);
	uvfio_close(sfd);
	CHECK(set_state(src, VFIO_DEVICE_STATE_RUNNING, NULL) == 0);

	CHECK(uvfio_pread(src, a, sizeof(a), (off_t)BAR2) == (ssize_t)sizeof(a));
	CHECK(uvfio_pread(dst, b, sizeof(b), (off_t)BAR2) == (ssize_t)sizeof(b));
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	CHECK(a[0] | a[1] | a[2] | a[3]);	/* the seed filled it */

	CHECK(uvfio_close(src) == 0 && uvfio_close(dst) == 0);
	CHECK(uvfio_sim_remove("0000:00:09.0") == 0);
	CHECK(uvfio_sim_remove("0000:00:09.1") == 0);
	printf("plugin driver loaded and migrated\n");
	return 0;
}
