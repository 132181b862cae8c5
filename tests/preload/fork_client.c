// SPDX-License-Identifier: GPL-2.0-only
/*
 * Threads, fork and exec under uvfio-run, with plain system calls only.
 *
 * Contract:
 * - threads: several threads reading the device's BAR0 and dup'ing and
 *   closing its fd at once all get the right answers;
 * - fork: a forked child sees the host's paths and the plain files behind
 *   the fds; what it does with them (close included) leaves the parent's
 *   device working;
 * - exec: a child executed without the preload sees the real system (the
 *   simulated device's sysfs is not there), and one executed with it gets
 *   its own devices.
 *
 * usage: fork-client BDF     (run under uvfio-run with a device at BDF)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/vfio.h>

#define THREADS 4
#define ROUNDS 2000
#define SIMDEV_ID 0x44535655u

static int device;
static off_t bar0;
static const char *bdf;

static int fail(const char *what)
{
	fprintf(stderr, "FAIL: %s (errno %s)\n", what, strerror(errno));
	exit(1);
}

static void *reader(void *arg)
{
	long bad = 0;
	int i;

	(void)arg;
	for (i = 0; i < ROUNDS; i++) {
		uint32_t id = 0;
		int fd = dup(device);

		if (fd < 0 || pread(fd, &id, 4, bar0) != 4 || id != SIMDEV_ID)
			bad++;
		if (fd >= 0 && close(fd))
			bad++;
	}
	return (void *)bad;
}

/* Run a shell command; its exit status. keep: with the preload. */
static int run(const char *cmd, int keep)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		fail("fork");
	if (!pid) {
		if (!keep)
			unsetenv("LD_PRELOAD");
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid)
		fail("waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int main(int argc, char **argv)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri) };
	struct vfio_device_info info = { .argsz = sizeof(info) };
	char path[256], link[256], cmd[512];
	pthread_t t[THREADS];
	int container, group, status, i;
	long bad = 0;
	ssize_t n;
	pid_t pid;

	if (argc != 2) {
		fprintf(stderr, "usage: %s BDF\n", argv[0]);
		return 2;
	}
	bdf = argv[1];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group",
		 bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		fail("readlink iommu_group");
	link[n] = '\0';
	container = open("/dev/vfio/vfio", O_RDWR);
	snprintf(path, sizeof(path), "/dev/vfio/%s", basename(link));
	group = open(path, O_RDWR);
	if (container < 0 || group < 0)
		fail("open container and group");
	if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) ||
	    ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		fail("container");
	device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (device < 0)
		fail("GET_DEVICE_FD");
	ri.index = VFIO_PCI_BAR0_REGION_INDEX;
	if (ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &ri))
		fail("GET_REGION_INFO");
	bar0 = (off_t)ri.offset;

	for (i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, reader, NULL);
	for (i = 0; i < THREADS; i++) {
		void *r;

		pthread_join(t[i], &r);
		bad += (long)r;
	}
	printf("threads: %d x %d reads through dups, %ld wrong\n", THREADS,
	       ROUNDS, bad);
	if (bad)
		return 1;

	pid = fork();
	if (pid < 0)
		fail("fork");
	if (!pid) {
		/* The host's sysfs, and the memfd behind the device fd. */
		snprintf(path, sizeof(path),
			 "/sys/bus/pci/devices/%s/iommu_group", bdf);
		n = readlink(path, link, sizeof(link) - 1);
		if (n >= 0 && strstr(link, "iommu_groups/") &&
		    !access("/sys/kernel/iommu_groups", F_OK))
			_exit(3);	/* a real host device there: ambiguous */
		if (ioctl(device, VFIO_DEVICE_GET_INFO, &info) == 0)
			_exit(1);	/* the child must not drive it */
		close(device);
		close(group);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) == 1) {
		fprintf(stderr, "FAIL: forked child drove the device\n");
		return 1;
	}
	if (ioctl(device, VFIO_DEVICE_GET_INFO, &info))
		fail("the parent's device after the child closed its copy");
	printf("fork: the child saw plain fds, the parent's device works\n");

	snprintf(cmd, sizeof(cmd),
		 "test -e /sys/bus/pci/devices/%s/iommu_group", bdf);
	if (run(cmd, 0) == 0 && access("/sys/kernel/iommu_groups", F_OK)) {
		fprintf(stderr, "FAIL: a child without the preload sees the "
				"simulated sysfs\n");
		return 1;
	}
	/*
	 * A sanitizer build's preload needs its runtime loaded first, which
	 * an unsanitized sh and readlink do not do: not testable there.
	 */
	if (getenv("UVFIO_SANITIZED") && *getenv("UVFIO_SANITIZED")) {
		printf("exec: without the preload the real system; with it: "
		       "skipped (%s)\n", getenv("UVFIO_SANITIZED"));
		goto out;
	}
	snprintf(cmd, sizeof(cmd),
		 "readlink /sys/bus/pci/devices/%s/iommu_group >/dev/null", bdf);
	if (run(cmd, 1)) {
		fprintf(stderr, "FAIL: a child with the preload has no "
				"devices\n");
		return 1;
	}
	printf("exec: without the preload the real system, with it its own "
	       "devices\n");
out:
	if (close(device) || close(group) || close(container))
		fail("close");
	printf("PASS\n");
	return 0;
}
