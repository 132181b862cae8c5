// SPDX-License-Identifier: GPL-2.0-only
/*
 * A VFIO client written for the kernel only: plain open, ioctl, read,
 * pread, pwrite, mmap and close on /dev/vfio/N, the group found through
 * /sys/bus/pci/devices/BDF/iommu_group, the uAPI structs of <linux/vfio.h>
 * (and the uAPI definitions newer than the installed headers). It walks
 * what a VMM does with a device, then a pre-copy migration save with plain
 * read(2) (ENOMSG at the end of the pre-copy data) and ioctl(2)
 * VFIO_MIG_GET_PRECOPY_INFO, and loads the stream back, printing a
 * transcript of every result.
 *
 * Built twice: as is (run under uvfio-run; it links no uvfio library), and
 * with -DUSE_UVFIO, where the same calls go to uvfio_open, uvfio_ioctl, ...
 * on a device it creates itself. tests/preload/run.sh compares the two
 * transcripts: a client sees the same through the preload as through the
 * syscall surface.
 *
 * usage: kernel-client BDF [SPEC]   (SPEC: the device to create, USE_UVFIO)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uvfio/uapi/vfio.h>

/* The guest's memory, before mmap may mean uvfio_mmap. */
static void *guest_alloc(size_t size)
{
	return mmap(NULL, size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

/* An ioctl argument that is a number, as the variadic ioctl(2) takes it. */
#define ARG(x) ((void *)(uintptr_t)(x))

#ifdef USE_UVFIO
#include <uvfio/uvfio.h>
#define open(path, flags) uvfio_open(path)
#define close uvfio_close
#define ioctl uvfio_ioctl
#define read uvfio_read
#define write uvfio_write
#define pread uvfio_pread
#define pwrite uvfio_pwrite
#define mmap uvfio_mmap
#define dup uvfio_dup
#endif

#define GUEST_IOVA 0x100000000ULL
#define GUEST_SIZE (1 << 20)

static int failures;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                      \
			fprintf(stderr, " (errno %s)\n", strerror(errno)); \
			failures++;                                        \
		}                                                          \
	} while (0)

/* FNV-1a: a stable digest of a byte stream for the transcript. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n--)
		h = (h ^ *b++) * 0x100000001b3ULL;
	return h;
}

/* The group number, as QEMU finds it. */
static int find_group(const char *bdf)
{
#ifdef USE_UVFIO
	return uvfio_sim_iommu_group(bdf);
#else
	char path[256], link[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group",
		 bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -1;
	link[n] = '\0';
	return atoi(basename(link));
#endif
}

/* The fds this process has open. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;	/* the directory's own fd */
}

/*
 * Mappings of files without a name in the filesystem: a device region's
 * mapping is one (thread stacks and malloc arenas, which come and go with
 * the core's threads, are anonymous and not counted).
 */
static int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "/memfd:") != NULL;
	fclose(f);
	return n;
}

static int set_state(int device, uint32_t state, int *data_fd)
{
	struct {
		struct vfio_device_feature f;
		struct vfio_device_feature_mig_state s;
	} req;
	int ret;

	memset(&req, 0, sizeof(req));
	req.f.argsz = sizeof(req);
	req.f.flags = VFIO_DEVICE_FEATURE_SET |
		      VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	req.s.device_state = state;
	req.s.data_fd = -1;
	ret = ioctl(device, VFIO_DEVICE_FEATURE, &req);
	if (data_fd)
		*data_fd = req.s.data_fd;
	return ret;
}

static uint32_t get_state(int device)
{
	struct {
		struct vfio_device_feature f;
		struct vfio_device_feature_mig_state s;
	} req;

	memset(&req, 0, sizeof(req));
	req.f.argsz = sizeof(req);
	req.f.flags = VFIO_DEVICE_FEATURE_GET |
		      VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	if (ioctl(device, VFIO_DEVICE_FEATURE, &req))
		return ~0u;
	return req.s.device_state;
}

static void show_device(int device)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	unsigned int i;

	CHECK(!ioctl(device, VFIO_DEVICE_GET_INFO, &info), "GET_INFO");
	printf("device flags 0x%x regions %u irqs %u\n", info.flags,
	       info.num_regions, info.num_irqs);
	for (i = 0; i < info.num_regions; i++) {
		struct vfio_region_info ri = { .argsz = sizeof(ri), .index = i };

		if (ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &ri)) {
			printf("region %u errno %d\n", i, errno);
			continue;
		}
		printf("region %u size 0x%llx flags 0x%x offset 0x%llx\n", i,
		       (unsigned long long)ri.size, ri.flags,
		       (unsigned long long)ri.offset);
	}
	for (i = 0; i < info.num_irqs; i++) {
		struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = i };

		CHECK(!ioctl(device, VFIO_DEVICE_GET_IRQ_INFO, &ii), "IRQ %u",
		      i);
		printf("irq %u count %u flags 0x%x\n", i, ii.count, ii.flags);
	}
}

static off_t region_offset(int device, unsigned int index, uint64_t *size)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = index };

	if (ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &ri))
		return -1;
	*size = ri.size;
	return (off_t)ri.offset;
}

static void show_regions(int device)
{
	unsigned char cfg[64];
	uint32_t id = 0, word = 0x5a5aa5a5, back = 0;
	uint64_t size;
	off_t off;
	void *bar;
	int dupfd;

	off = region_offset(device, VFIO_PCI_CONFIG_REGION_INDEX, &size);
	CHECK(pread(device, cfg, sizeof(cfg), off) == sizeof(cfg), "config");
	printf("config vendor %02x%02x device %02x%02x cmd %02x%02x\n", cfg[1],
	       cfg[0], cfg[3], cfg[2], cfg[5], cfg[4]);
	printf("config digest %016llx\n",
	       (unsigned long long)fnv(0xcbf29ce484222325ULL, cfg, sizeof(cfg)));

	off = region_offset(device, VFIO_PCI_BAR0_REGION_INDEX, &size);
	CHECK(pread(device, &id, 4, off) == 4, "BAR0 ID");
	printf("bar0 id 0x%08x\n", id);

	/* BAR2 through its mapping, read back through the region. */
	off = region_offset(device, VFIO_PCI_BAR2_REGION_INDEX, &size);
	bar = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   device, off);
	CHECK(bar != MAP_FAILED, "mmap BAR2");
	if (bar != MAP_FAILED) {
		memcpy((char *)bar + 4096, &word, 4);
		CHECK(pread(device, &back, 4, off + 4096) == 4, "BAR2 pread");
		printf("bar2 mmap write, pread 0x%08x\n", back);
		CHECK(!munmap(bar, (size_t)size), "munmap");
	}
	word = 0x0badcafe;
	CHECK(pwrite(device, &word, 4, off + 8192) == 4, "BAR2 pwrite");
	CHECK(pread(device, &back, 4, off + 8192) == 4, "BAR2 pread");
	printf("bar2 pwrite, pread 0x%08x\n", back);

	/* A dup stands for the same device. */
	dupfd = dup(device);
	CHECK(dupfd >= 0, "dup");
	CHECK(pread(dupfd, &id, 4,
		    region_offset(device, VFIO_PCI_BAR0_REGION_INDEX, &size)) ==
		      4,
	      "pread on the dup");
	printf("dup bar0 id 0x%08x\n", id);
	CHECK(!close(dupfd), "close dup");
}

/* Read a data fd until it has nothing now (ENOMSG) or ends (0). */
static size_t drain(int fd, uint64_t *h, char **stream, size_t *len,
		    int *end_errno)
{
	static char buf[65536];
	size_t total = 0;

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0) {
			*end_errno = n ? errno : 0;
			return total;
		}
		*h = fnv(*h, buf, (size_t)n);
		*stream = realloc(*stream, *len + (size_t)n);
		memcpy(*stream + *len, buf, (size_t)n);
		*len += (size_t)n;
		total += (size_t)n;
	}
}

static void migrate(int device)
{
	struct {
		struct vfio_device_feature f;
		struct vfio_device_feature_migration m;
	} mig;
	struct vfio_precopy_info pi = { .argsz = sizeof(pi) };
	uint64_t h = 0xcbf29ce484222325ULL;
	char *stream = NULL;
	size_t len = 0, n;
	int data_fd = -1, next_fd = -1, err = 0;

	memset(&mig, 0, sizeof(mig));
	mig.f.argsz = sizeof(mig);
	mig.f.flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION;
	CHECK(!ioctl(device, VFIO_DEVICE_FEATURE, &mig), "MIGRATION");
	printf("migration flags 0x%llx\n", (unsigned long long)mig.m.flags);

	CHECK(!set_state(device, VFIO_DEVICE_STATE_PRE_COPY, &data_fd),
	      "PRE_COPY");
	printf("state %u data fd %s\n", get_state(device),
	       data_fd >= 0 ? "yes" : "no");
	CHECK(!ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, &pi), "PRECOPY_INFO");
	printf("precopy info initial %llu dirty %llu\n",
	       (unsigned long long)pi.initial_bytes,
	       (unsigned long long)pi.dirty_bytes);
	n = drain(data_fd, &h, &stream, &len, &err);
	printf("pre-copy read %zu bytes, then %s\n", n,
	       err == ENOMSG ? "ENOMSG" : strerror(err));
	CHECK(n == pi.initial_bytes + pi.dirty_bytes, "pre-copy bytes");
	CHECK(!ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, &pi), "PRECOPY_INFO");
	printf("precopy info after initial %llu dirty %llu\n",
	       (unsigned long long)pi.initial_bytes,
	       (unsigned long long)pi.dirty_bytes);

	/* PRE_COPY -> STOP_COPY goes on on the same fd. */
	CHECK(!set_state(device, VFIO_DEVICE_STATE_STOP_COPY, &next_fd),
	      "STOP_COPY");
	printf("stop-copy new fd %s\n", next_fd >= 0 ? "yes" : "no");
	n = drain(data_fd, &h, &stream, &len, &err);
	printf("stop-copy read %zu bytes, then %s\n", n,
	       err ? strerror(err) : "EOF");
	printf("stream %zu bytes digest %016llx\n", len,
	       (unsigned long long)h);
	CHECK(!set_state(device, VFIO_DEVICE_STATE_STOP, NULL), "STOP");
	CHECK(!close(data_fd), "close data fd");

	/* The stream loads back into the device it came from. */
	CHECK(!set_state(device, VFIO_DEVICE_STATE_RESUMING, &data_fd),
	      "RESUMING");
	CHECK(write(data_fd, stream, len) == (ssize_t)len, "write stream");
	CHECK(!set_state(device, VFIO_DEVICE_STATE_STOP, NULL), "load");
	CHECK(!close(data_fd), "close data fd");
	CHECK(!set_state(device, VFIO_DEVICE_STATE_RUNNING, NULL), "RUNNING");
	printf("loaded back, state %u\n", get_state(device));
	free(stream);
}

int main(int argc, char **argv)
{
	struct vfio_group_status gs = { .argsz = sizeof(gs) };
	struct vfio_iommu_type1_info ii = { .argsz = sizeof(ii) };
	struct vfio_iommu_type1_dma_map map = { .argsz = sizeof(map) };
	struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof(unmap) };
	int container, group, device, n, fds, maps;
	const char *bdf;
	char path[64];
	void *guest;

	if (argc < 2) {
		fprintf(stderr, "usage: %s BDF [SPEC]\n", argv[0]);
		return 2;
	}
	bdf = argv[1];
#ifdef USE_UVFIO
	if (argc < 3 || uvfio_sim_add(argv[2])) {
		perror("uvfio_sim_add");
		return 2;
	}
#endif
	n = find_group(bdf);
	if (n < 0) {
		fprintf(stderr, "no IOMMU group for %s: %s\n", bdf,
			strerror(errno));
		return 1;
	}
	printf("group %d\n", n);
	/* From here, whatever the program opens or maps it must give back. */
	fds = count_fds();
	maps = count_maps();

	container = open("/dev/vfio/vfio", O_RDWR);
	CHECK(container >= 0, "open container");
	printf("api %d type1v2 %d\n", ioctl(container, VFIO_GET_API_VERSION, NULL),
	       ioctl(container, VFIO_CHECK_EXTENSION, ARG(VFIO_TYPE1v2_IOMMU)));

	snprintf(path, sizeof(path), "/dev/vfio/%d", n);
	group = open(path, O_RDWR);
	CHECK(group >= 0, "open %s", path);
	CHECK(open(path, O_RDWR) < 0 && errno == EBUSY, "second group open");
	CHECK(!ioctl(group, VFIO_GROUP_GET_STATUS, &gs), "GROUP_GET_STATUS");
	printf("group flags 0x%x\n", gs.flags);
	CHECK(!ioctl(group, VFIO_GROUP_SET_CONTAINER, &container),
	      "SET_CONTAINER");
	CHECK(!ioctl(container, VFIO_SET_IOMMU, ARG(VFIO_TYPE1v2_IOMMU)),
	      "SET_IOMMU");
	CHECK(!ioctl(container, VFIO_IOMMU_GET_INFO, &ii), "IOMMU_GET_INFO");
	printf("iommu flags 0x%x pgsizes 0x%llx\n", ii.flags,
	       (unsigned long long)ii.iova_pgsizes);

	guest = guest_alloc(GUEST_SIZE);
	CHECK(guest != MAP_FAILED, "guest memory");
	map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	map.vaddr = (uintptr_t)guest;
	map.iova = GUEST_IOVA;
	map.size = GUEST_SIZE;
	CHECK(!ioctl(container, VFIO_IOMMU_MAP_DMA, &map), "MAP_DMA");

	device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, (void *)bdf);
	CHECK(device >= 0, "GET_DEVICE_FD");
	CHECK(ioctl(group, VFIO_GROUP_GET_DEVICE_FD, (void *)"0000:ff:1f.7") < 0 &&
		      errno == ENODEV,
	      "GET_DEVICE_FD of another name");
	show_device(device);
	show_regions(device);
	CHECK(!ioctl(device, VFIO_DEVICE_RESET, NULL), "RESET");
	migrate(device);

	CHECK(!close(device), "close device");
	unmap.iova = GUEST_IOVA;
	unmap.size = GUEST_SIZE;
	CHECK(!ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap), "UNMAP_DMA");
	printf("unmapped 0x%llx\n", (unsigned long long)unmap.size);
	CHECK(!ioctl(group, VFIO_GROUP_UNSET_CONTAINER, NULL), "UNSET_CONTAINER");
	CHECK(!close(group), "close group");
	CHECK(!close(container), "close container");
	munmap(guest, GUEST_SIZE);

	printf("fds left open %d, mappings left %d\n", count_fds() - fds,
	       count_maps() - maps);
	printf("failures %d\n", failures);
	return failures ? 1 : 0;
}
