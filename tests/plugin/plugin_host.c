/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A program that only knows the syscall surface: it creates two devices of
 * a plugin driver (loaded from UVFIO_DRIVER_PATH), migrates one into the
 * other with STOP_COPY and checks device memory (BAR2) arrived.
 *
 * It also lists the plugins on the path by the core's call, finds NAME's
 * file there, and sees a loaded plugin's name refused as registered.
 *
 * usage: plugin_host [NAME [BYTES]]: NAME (default "plugskel") is
 * created with seed=5 and its seeded memory compared; with BYTES, NAME
 * takes no keys and the host writes BYTES of BAR2 itself first.
 */
#include <stdlib.h>
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

int main(int argc, char **argv)
{
	static unsigned char a[1 << 20], b[1 << 20], buf[1 << 16];
	const char *name = argc > 1 ? argv[1] : "plugskel";
	size_t size = argc > 2 ? (size_t)strtoul(argv[2], NULL, 0) : sizeof(a);
	char spec[128];
	int src, dst, sfd, dfd;
	size_t i;
	ssize_t n;

	CHECK(size > 0 && size <= sizeof(a));
	{
		const char *pname, *pfile;
		char why[256];
		int listed = 0;
		for (i = 0; !uvfio_driver_plugin((unsigned)i, &pname, &pfile); i++)
			if (!strcmp(pname, name)) {
				size_t fl = strlen(pfile), nl = strlen(name);
				CHECK(fl > nl + 4 && pfile[fl - nl - 4] == '/' &&
				      !strncmp(pfile + fl - nl - 3, name, nl) &&
				      !strcmp(pfile + fl - 3, ".so"));
				listed = 1;
			}
		CHECK(listed);
		CHECK(uvfio_driver_plugin_load("nosuchplugin", why,
					       sizeof(why)) == -1 &&
		      errno == ENOENT);
	}
	CHECK(uvfio_sim_add("nosuchplugin,bdf=0000:00:08.0") == -1 &&
	      errno == ENOENT);
	snprintf(spec, sizeof(spec), "%s,bdf=0000:00:09.0%s", name,
		 argc > 2 ? "" : ",seed=5");
	CHECK(uvfio_sim_add(spec) == 0);
	CHECK(uvfio_driver_plugin_load(name, NULL, 0) == -1 && errno == EEXIST);
	snprintf(spec, sizeof(spec), "%s,bdf=0000:00:09.1", name);
	CHECK(uvfio_sim_add(spec) == 0);
	src = uvfio_open("0000:00:09.0");
	dst = uvfio_open("0000:00:09.1");
	CHECK(src >= 0 && dst >= 0);
	if (argc > 2) {
		for (i = 0; i < size; i++)
			a[i] = (unsigned char)(i * 7 + 1);
		CHECK(uvfio_pwrite(src, a, size, (off_t)BAR2) ==
		      (ssize_t)size);
	}

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

	CHECK(uvfio_pread(src, a, size, (off_t)BAR2) == (ssize_t)size);
	CHECK(uvfio_pread(dst, b, size, (off_t)BAR2) == (ssize_t)size);
	CHECK(memcmp(a, b, size) == 0);
	CHECK(a[0] | a[1] | a[2] | a[3]);	/* the seed or the host filled it */

	CHECK(uvfio_close(src) == 0 && uvfio_close(dst) == 0);
	CHECK(uvfio_sim_remove("0000:00:09.0") == 0);
	CHECK(uvfio_sim_remove("0000:00:09.1") == 0);
	printf("plugin driver %s loaded and migrated\n", name);
	return 0;
}
