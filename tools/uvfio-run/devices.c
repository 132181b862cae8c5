// SPDX-License-Identifier: GPL-2.0-only
/*
 * libuvfio-preload, the device side: which paths are ours, activation (open
 * libuvfio, create the devices uvfio-run names), and the sysfs a VFIO client
 * reads, laid out as real files and links in a private directory (the
 * "tree"), as umockdev does: a path of ours is rewritten into the tree and
 * the real libc call does the rest, so stat, readlink, realpath, opendir and
 * open of attribute files all behave as the kernel's sysfs does.
 *
 * For each device DDDD:BB:DD.F in group N the tree holds:
 *   sys/devices/pciDDDD:BB/BDF/        vendor device subsystem_vendor
 *       subsystem_device class revision config resource irq numa_node
 *       enable driver_override uevent modalias, and the links
 *       iommu_group -> ../../../kernel/iommu_groups/N
 *       driver -> ../../../bus/pci/drivers/vfio-pci
 *       subsystem -> ../../../bus/pci
 *   sys/bus/pci/devices/BDF -> ../../../devices/pciDDDD:BB/BDF
 *   sys/bus/pci/drivers/vfio-pci/BDF -> ../../../../devices/pciDDDD:BB/BDF
 *   sys/kernel/iommu_groups/N/devices/BDF -> (the device), N/type
 *   dev/vfio/vfio, dev/vfio/N          stand-ins for stat(2) and readdir
 *
 * Just over 600 lines: the tree's layout above and the code that builds
 * it are kept in one file so that they change together.
 */
#define _GNU_SOURCE
#undef _FILE_OFFSET_BITS

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "preload.h"

/*
 * Names built here are short (a BDF, a group number) under a tree path of at
 * most 255 bytes; gcc cannot see those bounds through the device table.
 */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define MAX_DEVICES 64
#define CONFIG_MAX 4096
/* PCI resources a sysfs "resource" file lists for an endpoint (with IOV). */
#define SYSFS_RESOURCES 13
/* The BAR and ROM regions of a vfio-pci device: indexes 0..6. */
#define PCI_REGIONS 7

/* Character devices of the stand-ins: vfio's misc minor, a group's major. */
#define VFIO_CONTAINER_RDEV makedev(10, 196)
#define VFIO_GROUP_MAJOR 242

struct sim_device {
	char bdf[16];		/* DDDD:BB:DD.F, as the launcher wrote it */
	char root[16];		/* pciDDDD:BB */
	const char *spec;
	int group;		/* -1 until created */
	unsigned char config[CONFIG_MAX];
	size_t config_len;
	struct {
		uint64_t start, size, flags;
	} res[PCI_REGIONS];
};

__thread int uvfio_preload_in_core __attribute__((tls_model("initial-exec")));
struct uvfio_preload_ops uvfio_preload_ops;

static struct sim_device devices[MAX_DEVICES];
static int ndevices;
static char *devices_env;	/* owned copy of UVFIO_RUN_DEVICES */
static pthread_once_t parse_once = PTHREAD_ONCE_INIT;
static pthread_once_t activate_once = PTHREAD_ONCE_INIT;

static int live;		/* activated, in this very process */
static int forked;		/* a fork(2) child of an activated process */
static pid_t owner_pid;
static char tree[256];		/* the private directory, no trailing '/' */
static size_t tree_len;

static void msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("uvfio-run: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int uvfio_preload_live(void)
{
	return __atomic_load_n(&live, __ATOMIC_ACQUIRE) && !forked;
}

/* -------- what uvfio-run asked for -------- */

/* UVFIO_RUN_DEVICES: one "BDF<TAB>SPEC" line per device. */
static void parse_env(void)
{
	const char *env = getenv(UVFIO_RUN_ENV_DEVICES);
	char *line, *save = NULL;

	if (!env || !(devices_env = strdup(env)))
		return;
	for (line = strtok_r(devices_env, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		struct sim_device *d = &devices[ndevices];
		char *tab = strchr(line, '\t');
		unsigned int dom, bus, dev, fn;

		if (ndevices == MAX_DEVICES) {
			msg("more than %d devices; ignoring the rest",
			    MAX_DEVICES);
			break;
		}
		if (!tab || tab - line >= (long)sizeof(d->bdf) ||
		    sscanf(line, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4) {
			msg("malformed %s line '%s'", UVFIO_RUN_ENV_DEVICES,
			    line);
			continue;
		}
		*tab = '\0';
		snprintf(d->bdf, sizeof(d->bdf), "%04x:%02x:%02x.%x", dom, bus,
			 dev, fn);
		snprintf(d->root, sizeof(d->root), "pci%04x:%02x", dom, bus);
		d->spec = tab + 1;
		d->group = -1;
		ndevices++;
	}
}

/* -------- activation -------- */

#define RESOLVE(lib, member, sym)                                          \
	(uvfio_preload_ops.member =                                        \
		 (__typeof__(uvfio_preload_ops.member))dlsym(lib, sym))

static int load_libuvfio(void)
{
	const char *path = getenv(UVFIO_RUN_ENV_LIB);
	void *lib;

	if (!path || !*path)
		path = "libuvfio.so.0";
	lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (!lib) {
		msg("cannot load %s: %s", path, dlerror());
		return -1;
	}
	if (!RESOLVE(lib, open, "uvfio_open") ||
	    !RESOLVE(lib, close, "uvfio_close") ||
	    !RESOLVE(lib, ioctl, "uvfio_ioctl") ||
	    !RESOLVE(lib, read, "uvfio_read") ||
	    !RESOLVE(lib, write, "uvfio_write") ||
	    !RESOLVE(lib, pread, "uvfio_pread") ||
	    !RESOLVE(lib, pwrite, "uvfio_pwrite") ||
	    !RESOLVE(lib, mmap, "uvfio_mmap") ||
	    !RESOLVE(lib, dup, "uvfio_dup") ||
	    !RESOLVE(lib, dup3, "uvfio_dup3") ||
	    !RESOLVE(lib, fcntl, "uvfio_fcntl") ||
	    !RESOLVE(lib, is_fd, "uvfio_is_fd")) {
		msg("%s lacks the calls uvfio-run needs (an older libuvfio?)",
		    path);
		return -1;
	}
	return 0;
}

/*
 * The device's config space through its config region, and the size and
 * kind of each BAR, as a host with the device bound to vfio-pci shows them.
 * The device is opened by its address (no group, no container) and closed
 * again before the program sees it.
 */
static int read_device(struct sim_device *d)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri) };
	uint64_t next32 = 0xf0000000ULL, next64 = 0x8000000000ULL;
	uint32_t io = 0xc000;
	ssize_t n;
	int fd, i;

	fd = uvfio_preload_ops.open(d->bdf);
	if (fd < 0)
		return -errno;
	ri.index = VFIO_PCI_CONFIG_REGION_INDEX;
	if (uvfio_preload_ops.ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri))
		goto fail;
	d->config_len = ri.size < CONFIG_MAX ? ri.size : CONFIG_MAX;
	n = uvfio_preload_ops.pread(fd, d->config, d->config_len,
				    (off_t)ri.offset);
	if (n < 0)
		goto fail;
	d->config_len = (size_t)n;

	/* Place the BARs as a host's firmware would: aligned to their size. */
	for (i = 0; i < PCI_REGIONS; i++) {
		uint32_t bar = 0;
		uint64_t *next;

		ri.argsz = sizeof(ri);
		ri.index = (uint32_t)i;
		if (uvfio_preload_ops.ioctl(fd, VFIO_DEVICE_GET_REGION_INFO,
					    &ri) || !ri.size)
			continue;
		if (i < 6 && 0x10 + 4 * i + 4 <= (int)d->config_len)
			memcpy(&bar, d->config + 0x10 + 4 * i, 4);
		d->res[i].size = ri.size;
		if (i < 6 && (bar & 1)) {	/* I/O space */
			d->res[i].start = (io + ri.size - 1) & ~(ri.size - 1);
			io = (uint32_t)(d->res[i].start + ri.size);
			d->res[i].flags = 0x40100 | (bar & 0x3);
			bar = (uint32_t)d->res[i].start | (bar & 0x3);
		} else {
			next = (i < 6 && (bar & 0x4)) ? &next64 : &next32;
			d->res[i].start = (*next + ri.size - 1) & ~(ri.size - 1);
			*next = d->res[i].start + ri.size;
			d->res[i].flags = 0x40200 | (i < 6 ? (bar & 0xf) : 0);
			if (bar & 0x8)
				d->res[i].flags |= 0x2000;	/* prefetch */
			if (bar & 0x4)
				d->res[i].flags |= 0x100000;	/* 64-bit */
			bar = (uint32_t)d->res[i].start | (bar & 0xf);
		}
		/* sysfs config shows the host's addresses, not vfio's zeros. */
		if (i < 6 && 0x10 + 4 * i + 4 <= (int)d->config_len) {
			memcpy(d->config + 0x10 + 4 * i, &bar, 4);
			if ((bar & 0x7) == 0x4 && i < 5) {
				uint32_t hi = (uint32_t)(d->res[i].start >> 32);
				memcpy(d->config + 0x14 + 4 * i, &hi, 4);
			}
		}
	}
	uvfio_preload_ops.close(fd);
	return 0;
fail:
	i = -errno;
	uvfio_preload_ops.close(fd);
	return i;
}

static int put_file(const char *dir, const char *name, const void *data,
		    size_t len)
{
	char path[512];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len)
		ret = -EIO;
	close(fd);
	return ret;
}

static int put_text(const char *dir, const char *name, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(text))
		return -EINVAL;
	return put_file(dir, name, text, (size_t)n);
}

/* mkdir -p of tree + rel; rel starts with '/'. */
static int put_dir(const char *rel)
{
	char path[512];
	char *p;

	snprintf(path, sizeof(path), "%s%s", tree, rel);
	for (p = path + tree_len + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

static int put_link(const char *target, const char *fmt, ...)
{
	char rel[256], path[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s%s", tree, rel);
	if (symlink(target, path))
		return -errno;
	return 0;
}

static uint16_t cfg16(const struct sim_device *d, size_t off)
{
	return off + 2 <= d->config_len ?
		       (uint16_t)(d->config[off] | d->config[off + 1] << 8) :
		       0;
}

static int put_device(const struct sim_device *d)
{
	char rel[256], dir[512], res[SYSFS_RESOURCES * 60 + 1], target[128];
	uint32_t class = 0;
	size_t off = 0;
	int i, ret;

	snprintf(rel, sizeof(rel), "/sys/devices/%s/%s", d->root, d->bdf);
	snprintf(dir, sizeof(dir), "%s%s", tree, rel);
	if (d->config_len > 0xb)
		class = (uint32_t)d->config[0xb] << 16 |
			(uint32_t)d->config[0xa] << 8 | d->config[0x9];
	for (i = 0; i < SYSFS_RESOURCES; i++) {
		uint64_t s = 0, e = 0, f = 0;

		if (i < PCI_REGIONS && d->res[i].size) {
			s = d->res[i].start;
			e = s + d->res[i].size - 1;
			f = d->res[i].flags;
		}
		off += (size_t)snprintf(res + off, sizeof(res) - off,
					"0x%016llx 0x%016llx 0x%016llx\n",
					(unsigned long long)s,
					(unsigned long long)e,
					(unsigned long long)f);
	}
	ret = put_dir(rel);
	ret = ret ?: put_text(dir, "vendor", "0x%04x\n", cfg16(d, 0));
	ret = ret ?: put_text(dir, "device", "0x%04x\n", cfg16(d, 2));
	ret = ret ?: put_text(dir, "subsystem_vendor", "0x%04x\n",
			      cfg16(d, 0x2c));
	ret = ret ?: put_text(dir, "subsystem_device", "0x%04x\n",
			      cfg16(d, 0x2e));
	ret = ret ?: put_text(dir, "class", "0x%06x\n", class);
	ret = ret ?: put_text(dir, "revision", "0x%02x\n",
			      d->config_len > 8 ? d->config[8] : 0);
	ret = ret ?: put_file(dir, "config", d->config, d->config_len);
	ret = ret ?: put_file(dir, "resource", res, off);
	ret = ret ?: put_text(dir, "irq", "0\n");
	ret = ret ?: put_text(dir, "numa_node", "-1\n");
	ret = ret ?: put_text(dir, "enable", "0\n");
	ret = ret ?: put_text(dir, "driver_override", "vfio-pci\n");
	ret = ret ?: put_text(dir, "modalias",
			      "pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X\n",
			      cfg16(d, 0), cfg16(d, 2), cfg16(d, 0x2c),
			      cfg16(d, 0x2e), class >> 16, (class >> 8) & 0xff,
			      class & 0xff);
	ret = ret ?: put_text(dir, "uevent",
			      "DRIVER=vfio-pci\nPCI_CLASS=%X\nPCI_ID=%04X:%04X\n"
			      "PCI_SUBSYS_ID=%04X:%04X\nPCI_SLOT_NAME=%s\n",
			      class, cfg16(d, 0), cfg16(d, 2), cfg16(d, 0x2c),
			      cfg16(d, 0x2e), d->bdf);
	if (ret)
		return ret;

	snprintf(target, sizeof(target), "../../../kernel/iommu_groups/%d",
		 d->group);
	ret = put_link(target, "%s/iommu_group", rel);
	ret = ret ?: put_link("../../../bus/pci/drivers/vfio-pci",
			      "%s/driver", rel);
	ret = ret ?: put_link("../../../bus/pci", "%s/subsystem", rel);

	snprintf(target, sizeof(target), "../../../devices/%s/%s", d->root,
		 d->bdf);
	ret = ret ?: put_link(target, "/sys/bus/pci/devices/%s", d->bdf);
	snprintf(target, sizeof(target), "../../../../devices/%s/%s", d->root,
		 d->bdf);
	ret = ret ?: put_link(target, "/sys/bus/pci/drivers/vfio-pci/%s",
			      d->bdf);

	snprintf(rel, sizeof(rel), "/sys/kernel/iommu_groups/%d/devices",
		 d->group);
	ret = ret ?: put_dir(rel);
	ret = ret ?: put_link(target, "%s/%s", rel, d->bdf);
	snprintf(dir, sizeof(dir), "%s/sys/kernel/iommu_groups/%d", tree,
		 d->group);
	ret = ret ?: put_text(dir, "type", "DMA\n");
	ret = ret ?: put_text(dir, "reserved_regions", "%s", "");
	snprintf(dir, sizeof(dir), "%s/dev/vfio", tree);
	snprintf(rel, sizeof(rel), "%d", d->group);
	ret = ret ?: put_text(dir, rel, "%s", "");
	return ret;
}

static int rm_entry(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

static void remove_tree(void)
{
	if (getpid() != owner_pid || !tree_len)
		return;
	uvfio_preload_in_core++;
	nftw(tree, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	uvfio_preload_in_core--;
}

static void child_after_fork(void)
{
	/*
	 * The copy of libuvfio in a child has none of its threads: the fds
	 * are plain files (memfd, socket) to it, and paths are the host's.
	 */
	forked = 1;
}

static int build_tree(void)
{
	const char *tmp = getenv("TMPDIR");
	int i, ret;

	if (!tmp || !*tmp)
		tmp = "/tmp";
	snprintf(tree, sizeof(tree), "%s/uvfio-run.XXXXXX", tmp);
	if (!mkdtemp(tree)) {
		msg("cannot create a directory in %s: %s", tmp,
		    strerror(errno));
		tree[0] = '\0';
		return -1;
	}
	tree_len = strlen(tree);
	owner_pid = getpid();
	atexit(remove_tree);

	ret = put_dir("/sys/bus/pci/drivers/vfio-pci");
	ret = ret ?: put_dir("/sys/bus/pci/devices");
	ret = ret ?: put_dir("/sys/kernel/iommu_groups");
	ret = ret ?: put_dir("/dev/vfio");
	if (!ret) {
		char dir[512];

		snprintf(dir, sizeof(dir), "%s/dev/vfio", tree);
		ret = put_text(dir, "vfio", "%s", "");
	}
	for (i = 0; !ret && i < ndevices; i++)
		if (devices[i].group >= 0)
			ret = put_device(&devices[i]);
	if (ret) {
		msg("cannot lay out sysfs in %s: %s", tree, strerror(-ret));
		return -1;
	}
	return 0;
}

static void activate(void)
{
	int (*sim_add)(const char *spec);
	int (*sim_group)(const char *bdf);
	int i, ret;

	uvfio_preload_in_core++;
	if (load_libuvfio())
		goto out;
	sim_add = (int (*)(const char *))dlsym(RTLD_DEFAULT, "uvfio_sim_add");
	sim_group = (int (*)(const char *))dlsym(RTLD_DEFAULT,
						 "uvfio_sim_iommu_group");
	if (!sim_add || !sim_group)
		goto out;
	for (i = 0; i < ndevices; i++) {
		struct sim_device *d = &devices[i];

		if (sim_add(d->spec)) {
			msg("cannot create device '%s': %s", d->spec,
			    strerror(errno));
			continue;
		}
		d->group = sim_group(d->bdf);
		ret = d->group < 0 ? -errno : read_device(d);
		if (ret) {
			msg("device %s: cannot read its config space: %s",
			    d->bdf, strerror(-ret));
			d->group = -1;
		}
	}
	if (build_tree())
		goto out;
	pthread_atfork(NULL, NULL, child_after_fork);
	__atomic_store_n(&live, 1, __ATOMIC_RELEASE);
out:
	uvfio_preload_in_core--;
}

/* -------- paths -------- */

/* s starts with prefix, and the match ends at a path component's end. */
static const char *component_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strncmp(s, prefix, n) || (s[n] && s[n] != '/'))
		return NULL;
	return s + n;
}

static int owns_bdf_path(const char *path)
{
	char buf[64];
	int i;

	for (i = 0; i < ndevices; i++) {
		const struct sim_device *d = &devices[i];

		snprintf(buf, sizeof(buf), "/sys/bus/pci/devices/%s", d->bdf);
		if (component_prefix(path, buf))
			return 1;
		snprintf(buf, sizeof(buf), "/sys/devices/%s/%s", d->root,
			 d->bdf);
		if (component_prefix(path, buf))
			return 1;
	}
	return 0;
}

static int owns_group_path(const char *path)
{
	const char *p = path + strlen("/sys/kernel/iommu_groups/");
	char *end;
	long n;
	int i;

	if (*p < '0' || *p > '9')
		return 0;
	n = strtol(p, &end, 10);
	if (*end && *end != '/')
		return 0;
	for (i = 0; i < ndevices; i++)
		if (devices[i].group >= 0 && devices[i].group == n)
			return 1;
	return 0;
}

static int activated(void)
{
	pthread_once(&activate_once, activate);
	return uvfio_preload_live();
}

static enum uvfio_preload_path to_tree(enum uvfio_preload_path kind,
				       const char *path, char *buf, size_t len)
{
	if ((size_t)snprintf(buf, len, "%s%s", tree, path) >= len)
		return UVFIO_PATH_PASS;
	return kind;
}

enum uvfio_preload_path uvfio_preload_classify(const char *path, char *buf,
					       size_t len)
{
	const char *rest;

	if (!path || path[0] != '/' || forked)
		return UVFIO_PATH_PASS;
	if (path[1] == 'd') {
		rest = component_prefix(path, "/dev/vfio");
		if (!rest || !activated())
			return UVFIO_PATH_PASS;
		/* The directory itself is the tree's; its entries open. */
		if (!rest[0] || !rest[1] || strchr(rest + 1, '/'))
			return to_tree(UVFIO_PATH_TREE, path, buf, len);
		return to_tree(UVFIO_PATH_DEV, path, buf, len);
	}
	if (strncmp(path, "/sys/", 5))
		return UVFIO_PATH_PASS;

	pthread_once(&parse_once, parse_env);
	if (owns_bdf_path(path) ||
	    component_prefix(path, "/sys/bus/pci/drivers/vfio-pci")) {
		if (!activated())
			return UVFIO_PATH_PASS;
		return to_tree(UVFIO_PATH_TREE, path, buf, len);
	}
	if (!strncmp(path, "/sys/kernel/iommu_groups/", 25) && activated() &&
	    owns_group_path(path))
		return to_tree(UVFIO_PATH_TREE, path, buf, len);
	return UVFIO_PATH_PASS;
}

char *uvfio_preload_untree(char *path)
{
	if (path && tree_len && !strncmp(path, tree, tree_len) &&
	    (path[tree_len] == '/' || !path[tree_len]))
		memmove(path, path + tree_len, strlen(path + tree_len) + 1);
	return path;
}

dev_t uvfio_preload_dev_rdev(const char *path)
{
	const char *name = strrchr(path, '/') + 1;

	if (!strcmp(name, "vfio"))
		return VFIO_CONTAINER_RDEV;
	return makedev(VFIO_GROUP_MAJOR, (unsigned int)atoi(name));
}

__attribute__((constructor)) static void preload_init(void)
{
	pthread_once(&parse_once, parse_env);
}
