/*
 * NOT BUILT. drivers/skeleton/skeleton.cc with the mechanical part of a
 * kernel port applied (kernel includes, static instead of the anonymous
 * namespace, NULL, struct tags, no default member initializers, no casts
 * of void *), to measure what a port changes: see "Porting to the kernel"
 * in driver-guide.md for the diff size and for what is left (the lines
 * still marked uvfio:, std::vector/std::min, new, XXH3, the spec keys).
 * Regenerate it when the skeleton changes.
 */
// SPDX-License-Identifier: GPL-2.0-only
/*
 * skeleton - the smallest complete variant driver, to copy when starting
 * a new one (see Documentation/driver-guide.md). It drives the simulated
 * DMA function through pci_core and offers STOP_COPY migration: what every
 * migration driver must have, and nothing optional (no P2P, no PRE_COPY,
 * no DMA logging: the VMM takes guest dirty pages from the IOMMU).
 *
 * It builds in the tree (spec name "skeleton") and, unchanged, out of it
 * as a plugin against the installed library:
 *
 *   c++ -std=c++20 -fPIC -shared -DSKELETON_NAME='"mydrv"' \
 *       $(pkg-config --cflags uvfio libxxhash) skeleton.cc \
 *       $(pkg-config --libs uvfio libxxhash) -o mydrv.so
 *   UVFIO_DRIVER_PATH=. ... uvfio_sim_add("mydrv,bdf=0000:00:09.0")
 *
 * It is written as a kernel variant driver is (mlx5, mtty): the
 * migration_set_state loop over vfio_mig_get_next_state(), the
 * deferred-reset pattern in err_handler->reset_done(pdev), kernel locks
 * and guards. What a port still changes is marked "uvfio:" and listed,
 * measured against a kernel-shaped rewrite, in the guide's "Porting to
 * the kernel" (Documentation/skeleton-kernel.c).
 *
 * One file, over 600 lines, on purpose: it is copied whole to start a
 * driver, and a driver this size is one file in the kernel too.
 *
 * Spec: "skeleton,bdf=DDDD:BB:DD.F[,mem=SIZE][,msix=N][,seed=N]".
 * Stream: struct skel_hdr (who saved it, the configuration, an XXH3 of the
 * rest and one of itself), the device state (struct simdev_state), device
 * memory. A header that is not this device's fails the write completing
 * it, so a foreign stream or endless input stops there.
 */
#include <linux/anon_inodes.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/vfio_pci_core.h>
#include <linux/xxhash.h>

#include "skel_hw.h"	/* your device's commands (the simdev_* calls) */

#ifndef SKELETON_NAME
#define SKELETON_NAME "skeleton"
#endif

#define SKEL_MAGIC 0x4c454b53	/* "SKEL" */
#define SKEL_VERSION 2	/* 1 had no identity: refused */

struct skel_hdr {
	u32 magic;
	u32 version;
	u16 vendor;	/* the destination must match all of these */
	u16 device;
	u32 msix;
	char driver[16];	/* SKELETON_NAME, NUL-padded */
	u64 mem_size;
	u32 state_len;
	u32 reserved;
	u64 hash;	/* XXH3-64 of the state and memory that follow */
	u64 hdr_hash;	/* XXH3-64 of the header up to here */
};

struct skel_device;

/* A migration file. The driver holds a reference until it disables it. */
struct skel_migf {
	struct skel_device *skel;
	struct file *filp;
	struct mutex lock;
	bool disabled;	/* after this, read/write return -ENODEV */
	std::vector<u8> buf;	/* saving: header+state; resuming: all */
	u64 pos;		/* saving: bytes handed out */
	bool refused;	/* resuming: the header was not ours */
};

struct skel_device {
	struct vfio_pci_core_device core_device;	/* first, as in the kernel */
	struct simdev sd;				/* the hardware */
	struct mutex state_mutex;
	enum vfio_device_mig_state mig_state;
	spinlock_t reset_lock;
	bool deferred_reset;
	struct skel_migf *saving_migf;
	struct skel_migf *resuming_migf;
};

static struct skel_device *to_skel(struct vfio_device *vdev)
{
	return container_of(vdev, struct skel_device, core_device.vdev);
}

static u64 stream_size(const struct skel_device *skel)
{
	return sizeof(skel_hdr) + sizeof(struct simdev_state) +
	       skel->sd.mem_size;
}

/* This device's header, but for the hashes. */
static struct skel_hdr skel_make_hdr(const struct skel_device *skel)
{
	struct skel_hdr h = {SKEL_MAGIC, SKEL_VERSION};

	h.vendor = skel->core_device.vendor_id;
	h.device = skel->core_device.device_id;
	h.msix = skel->sd.msix_count;
	strncpy(h.driver, SKELETON_NAME, sizeof(h.driver) - 1);
	h.mem_size = skel->sd.mem_size;
	h.state_len = sizeof(struct simdev_state);
	return h;
}

/*
 * A stream's header against this device's: 0, or -EINVAL and why, as the
 * kernel's hisi_acc and mtty drivers refuse a stream whose magic, version,
 * device or configuration is not theirs.
 */
static int skel_check_hdr(const struct skel_device *skel,
		   const struct skel_hdr *h)
{
	struct device *dev = skel->core_device.vdev.dev;
	struct skel_hdr mine = skel_make_hdr(skel);

	if (h->magic != SKEL_MAGIC || h->version != SKEL_VERSION) {
		dev_err(dev, "resume: bad magic or version (%#x, %u)", h->magic,
			h->version);
		return -EINVAL;
	}
	if (XXH3_64bits(h, offsetof(struct skel_hdr, hdr_hash)) != h->hdr_hash) {
		dev_err(dev, "resume: header checksum mismatch");
		return -EINVAL;
	}
	mine.hash = h->hash;
	mine.hdr_hash = h->hdr_hash;
	if (memcmp(h, &mine, sizeof(mine))) {
		dev_err(dev, "resume: device configuration mismatch (%.16s "
			"%04x:%04x mem %llu msix %u, this device %s %04x:%04x "
			"mem %llu msix %u)", h->driver, h->vendor, h->device,
			(unsigned long long)h->mem_size, h->msix, SKELETON_NAME,
			mine.vendor, mine.device,
			(unsigned long long)mine.mem_size, mine.msix);
		return -EINVAL;
	}
	return 0;
}

/* -------- the data stream -------- */

static ssize_t skel_save_read(struct file *filp, char __user *buf, size_t len,
		       loff_t *pos)
{
	struct skel_migf *f = filp->private_data;
	struct skel_device *skel = f->skel;
	size_t done;

	if (pos)		/* a stream: no offsets */
		return -ESPIPE;
	guard(mutex)(&f->lock);
	if (f->disabled)
		return -ENODEV;
	while (done < len && f->pos < stream_size(skel)) {
		size_t n;
		if (f->pos < f->buf.size()) {	/* header and state */
			n = std::min<size_t>(len - done, f->buf.size() - f->pos);
			if (copy_to_user(buf + done, f->buf.data() + f->pos, n))
				return done ? ssize_t(done) : -EFAULT;
		} else {			/* device memory, read now */
			u64 off = f->pos - f->buf.size();
			u8 tmp[64 << 10];
			n = std::min<size_t>({len - done, sizeof(tmp),
					      size_t(skel->sd.mem_size - off)});
			simdev_mem_read(&skel->sd, off, tmp, n);
			if (copy_to_user(buf + done, tmp, n))
				return done ? ssize_t(done) : -EFAULT;
		}
		done += n;
		f->pos += n;
	}
	return ssize_t(done);	/* 0 at the end: end of stream */
}

static ssize_t skel_resume_write(struct file *filp, const char __user *buf,
			  size_t len, loff_t *pos)
{
	struct skel_migf *f = filp->private_data;

	if (pos)
		return -ESPIPE;
	guard(mutex)(&f->lock);
	if (f->disabled)
		return -ENODEV;
	if (f->refused)
		return -EINVAL;
	/* One byte of room past the end, so trailing bytes can be named. */
	if (len > stream_size(f->skel) + 1 - std::min<u64>(f->buf.size(),
		  stream_size(f->skel) + 1))
		return -EFBIG;
	size_t old = f->buf.size();
	try {
		f->buf.resize(old + len);
	} catch (...) {
		return -ENOMEM;
	}
	if (copy_from_user(f->buf.data() + old, buf, len)) {
		f->buf.resize(old);
		return -EFAULT;
	}
	/* The header as soon as it is whole: a bad one takes nothing. */
	if (old < sizeof(struct skel_hdr) &&
	    f->buf.size() >= sizeof(struct skel_hdr)) {
		struct skel_hdr h;

		memcpy(&h, f->buf.data(), sizeof(h));
		if (skel_check_hdr(f->skel, &h)) {
			f->refused = true;
			f->buf.resize(old);
			return -EINVAL;
		}
	}
	return ssize_t(len);
}

static int skel_release(struct inode *, struct file *filp)
{
	skel_migf_free(filp->private_data);
	return 0;
}

/* No PRE_COPY: no unlocked_ioctl (VFIO_MIG_GET_PRECOPY_INFO). */
static const struct file_operations skel_save_fops = {
	.owner = THIS_MODULE,
	.read = skel_save_read,
	.release = skel_release,
};

static const struct file_operations skel_resume_fops = {
	.owner = THIS_MODULE,
	.write = skel_resume_write,
	.release = skel_release,
};

static struct skel_migf *skel_migf_alloc(struct skel_device *skel, bool saving)
{
	auto *f = new (std::nothrow) skel_migf;
	if (!f)
		return NULL;
	f->skel = skel;
	mutex_init(&f->lock);
	f->filp = anon_inode_getfile(SKELETON_NAME "_mig",
				     saving ? &skel_save_fops : &skel_resume_fops,
				     f, saving ? O_RDONLY : O_WRONLY);
	if (IS_ERR(f->filp)) {
		delete f;
		return NULL;
	}
	stream_open(NULL, f->filp);
	return f;
}

/*
 * A driver's own fault point (Documentation/driver-guide.md): the
 * device's save-state command failing, after the file exists, so the
 * arc's own unwinding runs.
 */
DEFINE_FAULT_POINT(skel_save_state, SKELETON_NAME ".save_state", EIO,
		   SKELETON_NAME ": the device's save-state command fails "
		   "(STOP -> STOP_COPY)")

/* STOP -> STOP_COPY: the device is stopped; describe and hash it now. */
static struct file *skel_open_save(struct skel_device *skel)
{
	struct skel_migf *f = skel_migf_alloc(skel, true);
	if (!f)
		return ERR_PTR(-ENOMEM);
	int err = should_fail(&skel_save_state);
	if (err) {
		fput(f->filp);	/* its release frees f */
		return ERR_PTR(err);
	}
	struct skel_hdr h = skel_make_hdr(skel);
	struct simdev_state st;
	simdev_save_state(&skel->sd, &st);
	XXH3_state_t *hs = XXH3_createState();
	std::vector<u8> mem(std::min<u64>(skel->sd.mem_size, 1 << 20));
	if (!hs) {
		fput(f->filp);
		return ERR_PTR(-ENOMEM);
	}
	XXH3_64bits_reset(hs);
	XXH3_64bits_update(hs, &st, sizeof(st));
	for (u64 off = 0; off < skel->sd.mem_size; off += mem.size()) {
		simdev_mem_read(&skel->sd, off, mem.data(), mem.size());
		XXH3_64bits_update(hs, mem.data(), mem.size());
	}
	h.hash = XXH3_64bits_digest(hs);
	h.hdr_hash = XXH3_64bits(&h, offsetof(struct skel_hdr, hdr_hash));
	XXH3_freeState(hs);
	f->buf.resize(sizeof(h) + sizeof(st));
	std::memcpy(f->buf.data(), &h, sizeof(h));
	std::memcpy(f->buf.data() + sizeof(h), &st, sizeof(st));
	skel->saving_migf = f;
	return get_file(f->filp);
}

/* RESUMING -> STOP: check all of it, then load; never half a state. */
static int skel_load(struct skel_device *skel, struct skel_migf *f)
{
	struct device *dev = skel->core_device.vdev.dev;
	struct skel_hdr h;

	if (f->refused) {
		dev_err(dev, "resume: the stream's header was refused");
		return -EINVAL;
	}
	if (f->buf.size() < sizeof(h)) {
		dev_err(dev, "resume: stream truncated (%zu bytes)",
			f->buf.size());
		return -EINVAL;
	}
	std::memcpy(&h, f->buf.data(), sizeof(h));
	if (skel_check_hdr(skel, &h))	/* checked at the write; once more */
		return -EINVAL;
	if (f->buf.size() != stream_size(skel)) {
		dev_err(dev, "resume: stream %s (%zu bytes, %llu expected)",
			f->buf.size() < stream_size(skel) ? "truncated" :
			"has trailing bytes", f->buf.size(),
			(unsigned long long)stream_size(skel));
		return -EINVAL;
	}
	const u8 *payload = f->buf.data() + sizeof(h);
	if (XXH3_64bits(payload, f->buf.size() - sizeof(h)) != h.hash) {
		dev_err(dev, "resume: checksum mismatch");
		return -EINVAL;
	}
	struct simdev_state st;
	std::memcpy(&st, payload, sizeof(st));
	int ret = simdev_load_state(&skel->sd, &st);
	if (ret) {
		dev_err(dev, "resume: the device refused the state (%s)",
			strerror(-ret));
		return ret;
	}
	simdev_mem_write(&skel->sd, 0, payload + sizeof(st), skel->sd.mem_size);
	return 0;
}

static void skel_disable_fd(struct skel_migf *f)
{
	mutex_lock(&f->lock);
	f->disabled = true;
	std::vector<u8>().swap(f->buf);
	mutex_unlock(&f->lock);
	fput(f->filp);
}

static void skel_disable_fds(struct skel_device *skel)
{
	if (skel->saving_migf) {
		skel_disable_fd(skel->saving_migf);
		skel->saving_migf = NULL;
	}
	if (skel->resuming_migf) {
		skel_disable_fd(skel->resuming_migf);
		skel->resuming_migf = NULL;
	}
}

/* -------- the FSM -------- */

/* One arc, cur -> new, with state_mutex held (mlx5's step_device_state). */
static struct file *skel_step_state(struct skel_device *skel,
			     enum vfio_device_mig_state new_state)
{
	enum vfio_device_mig_state cur = skel->mig_state;

	if (cur == VFIO_DEVICE_STATE_RUNNING &&
	    new_state == VFIO_DEVICE_STATE_STOP) {
		simdev_quiesce(&skel->sd);	/* returns when DMA is done */
		return NULL;
	}
	if (cur == VFIO_DEVICE_STATE_STOP &&
	    new_state == VFIO_DEVICE_STATE_RUNNING) {
		simdev_unquiesce(&skel->sd);
		return NULL;
	}
	if (cur == VFIO_DEVICE_STATE_STOP &&
	    new_state == VFIO_DEVICE_STATE_STOP_COPY)
		return skel_open_save(skel);
	if (cur == VFIO_DEVICE_STATE_STOP_COPY &&
	    new_state == VFIO_DEVICE_STATE_STOP) {
		skel_disable_fds(skel);
		return NULL;
	}
	if (cur == VFIO_DEVICE_STATE_STOP &&
	    new_state == VFIO_DEVICE_STATE_RESUMING) {
		struct skel_migf *f = skel_migf_alloc(skel, false);
		if (!f)
			return ERR_PTR(-ENOMEM);
		skel->resuming_migf = f;
		return get_file(f->filp);
	}
	if (cur == VFIO_DEVICE_STATE_RESUMING &&
	    new_state == VFIO_DEVICE_STATE_STOP) {
		struct skel_migf *f = skel->resuming_migf;
		int ret;

		scoped_guard(mutex, &f->lock)
			ret = skel_load(skel, f);
		if (ret)
			return ERR_PTR(ret);
		skel_disable_fds(skel);
		return NULL;
	}
	/* vfio_mig_get_next_state() does not return arcs we lack. */
	WARN_ON(true);
	return ERR_PTR(-EINVAL);
}

/* The deferred-reset pattern: a reset seen while state_mutex was held is
 * carried out by its holder here. */
static void skel_state_mutex_unlock(struct skel_device *skel)
{
again:
	spin_lock(&skel->reset_lock);
	if (skel->deferred_reset) {
		skel->deferred_reset = false;
		spin_unlock(&skel->reset_lock);
		skel->mig_state = VFIO_DEVICE_STATE_RUNNING;
		skel_disable_fds(skel);
		simdev_unquiesce(&skel->sd);
		goto again;
	}
	mutex_unlock(&skel->state_mutex);
	spin_unlock(&skel->reset_lock);
}

/* The core calls this once per SET with the final state; walk to it. */
static struct file *skel_set_state(struct vfio_device *vdev,
			    enum vfio_device_mig_state new_state)
{
	struct skel_device *skel = to_skel(vdev);
	enum vfio_device_mig_state next_state;
	struct file *res;
	int ret;

	mutex_lock(&skel->state_mutex);
	while (new_state != skel->mig_state) {
		ret = vfio_mig_get_next_state(vdev, skel->mig_state,
					      new_state, &next_state);
		if (ret) {
			res = ERR_PTR(ret);
			break;
		}
		res = skel_step_state(skel, next_state);
		if (IS_ERR(res))
			break;
		skel->mig_state = next_state;
		if (WARN_ON(res && new_state != skel->mig_state)) {
			fput(res);
			res = ERR_PTR(-EINVAL);
			break;
		}
	}
	skel_state_mutex_unlock(skel);
	return res;
}

static int skel_get_state(struct vfio_device *vdev, enum vfio_device_mig_state *st)
{
	struct skel_device *skel = to_skel(vdev);
	mutex_lock(&skel->state_mutex);
	*st = skel->mig_state;
	skel_state_mutex_unlock(skel);
	return 0;
}

static int skel_get_data_size(struct vfio_device *vdev, unsigned long *len)
{
	*len = stream_size(to_skel(vdev));	/* exact */
	return 0;
}

/* What the stream carries, hashed: the conformance suite compares a
 * saved and a loaded device with it (uvfio_set_state_digest). */
static int skel_state_digest(struct vfio_device *vdev, u64 *out)
{
	struct skel_device *skel = to_skel(vdev);
	struct simdev_state st = {};

	simdev_save_state(&skel->sd, &st);
	*out = XXH3_64bits_withSeed(skel->sd.mem, skel->sd.mem_size,
				    XXH3_64bits(&st, sizeof(st)));
	return 0;
}

static const struct vfio_migration_ops skel_mig_ops = {
	.migration_set_state = skel_set_state,
	.migration_get_state = skel_get_state,
	.migration_get_data_size = skel_get_data_size,
};

static struct skel_device *skel_drvdata(struct pci_dev *pdev)
{
	struct vfio_pci_core_device *core_device =
		dev_get_drvdata(&pdev->dev);

	return container_of(core_device, struct skel_device, core_device);
}

/*
 * After a function reset (pci_core, as the kernel's PCI core). It may run
 * while another thread holds state_mutex: then that thread does the reset
 * when it unlocks.
 */
static void skel_pci_aer_reset_done(struct pci_dev *pdev)
{
	struct skel_device *skel = skel_drvdata(pdev);

	spin_lock(&skel->reset_lock);
	skel->deferred_reset = true;
	if (!mutex_trylock(&skel->state_mutex)) {
		spin_unlock(&skel->reset_lock);
		return;	/* the holder does it on unlock */
	}
	spin_unlock(&skel->reset_lock);
	skel_state_mutex_unlock(skel);
}

static const struct pci_error_handlers skel_err_handlers = {
	.reset_done = skel_pci_aer_reset_done,
	.error_detected = vfio_pci_core_aer_err_detected,
};

/* -------- device ops: pci_core does the PCI part -------- */

static int skel_init_dev(struct vfio_device *vdev)
{
	struct skel_device *skel = to_skel(vdev);

	mutex_init(&skel->state_mutex);
	spin_lock_init(&skel->reset_lock);
	return vfio_pci_core_init_dev(vdev);
}

static int skel_open_device(struct vfio_device *vdev)
{
	struct skel_device *skel = to_skel(vdev);
	int ret = vfio_pci_core_enable(&skel->core_device);
	if (ret)
		return ret;
	mutex_lock(&skel->state_mutex);
	skel->mig_state = VFIO_DEVICE_STATE_RUNNING;
	simdev_unquiesce(&skel->sd);
	skel_state_mutex_unlock(skel);
	vfio_pci_core_finish_enable(&skel->core_device);
	return 0;
}

static void skel_close_device(struct vfio_device *vdev)
{
	struct skel_device *skel = to_skel(vdev);
	mutex_lock(&skel->state_mutex);
	skel_disable_fds(skel);
	skel_state_mutex_unlock(skel);
	vfio_pci_core_close_device(vdev);
}

static const struct vfio_device_ops skel_ops = {
	.name = SKELETON_NAME "-vfio-pci",
	.init = skel_init_dev,
	.release = vfio_pci_core_release_dev,
	.open_device = skel_open_device,
	.close_device = skel_close_device,
	.read = vfio_pci_core_read,
	.write = vfio_pci_core_write,
	.ioctl = vfio_pci_core_ioctl,
	.mmap = vfio_pci_core_mmap,
	.request = vfio_pci_core_request,
	.match = NULL,
	.dma_unmap = NULL,
	.device_feature = vfio_pci_core_ioctl_feature,
	.get_region_info_caps = vfio_pci_core_get_region_info_caps,
};

/* -------- probe / remove -------- */

/*
 * uvfio: the spec's keys ("skeleton,bdf=...,mem=SIZE,msix=N,seed=N"). A
 * kernel driver reads its device's configuration from the device.
 */
const char *const skel_keys[] = {"mem", "msix", "seed", NULL};

static int skel_read_spec(struct pci_dev *pdev, u64 *mem, u64 *msix, u64 *seed)
{
	int ret;

	if ((ret = uvfio_spec_get_size(pdev->spec, "mem", 1 << 20, PAGE_SIZE,
				       1ULL << 32, mem)) ||
	    (ret = uvfio_spec_get_u64(pdev->spec, "msix", 4, 1,
				      SIMDEV_MSIX_MAX, msix)) ||
	    (ret = uvfio_spec_get_u64(pdev->spec, "seed", 0, 0, ~0ULL, seed)))
		return ret;
	if (*mem & (*mem - 1)) {
		dev_err(&pdev->dev, "mem=%llu is not a power of two",
			(unsigned long long)*mem);
		return -EINVAL;
	}
	return 0;
}

/* uvfio: fill device memory with the seed's pattern (seed=N given). */
static void skel_seed_memory(struct pci_dev *pdev, struct skel_device *skel, u64 seed)
{
	if (!uvfio_spec_get(pdev->spec, "seed"))
		return;
	for (u64 i = 0; i < skel->sd.mem_size; i += 8) {
		u64 w = simdev_pattern_word(seed, i / 8);
		memcpy(skel->core_device.bars[2].map + i, &w, 8);
	}
}

static int skel_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct vfio_pci_core_device *core;
	struct skel_device *skel;
	u64 mem, msix, seed;
	int ret;

	(void)id;
	ret = skel_read_spec(pdev, &mem, &msix, &seed);
	if (ret)
		return ret;
	skel = vfio_alloc_device(struct skel_device, core_device.vdev, &pdev->dev,
				 &skel_ops);
	if (IS_ERR(skel))
		return PTR_ERR(skel);
	core = &skel->core_device;
	/* uvfio: the simulated function; the kernel's PCI core reads the
	 * real one's BARs and capabilities. */
	vfio_pci_simdev_describe(core, &skel->sd, mem, msix);
	core->device_id = 0x00ff;
	core->vdev.mig_ops = &skel_mig_ops;
	core->vdev.migration_flags = VFIO_MIGRATION_STOP_COPY;
	/* uvfio: for the conformance suite's round trip. */
	uvfio_set_state_digest(&core->vdev, skel_state_digest);

	dev_set_drvdata(&pdev->dev, core);
	ret = vfio_pci_core_register_device(core);
	if (ret)
		goto out_put_vdev;
	skel_seed_memory(pdev, skel, seed);
	ret = vfio_pci_simdev_start(core, &skel->sd);
	if (ret)
		goto out_unregister;
	return 0;

out_unregister:
	vfio_pci_core_unregister_device(core);
out_put_vdev:
	vfio_put_device(&core->vdev);
	return ret;
}

static void skel_remove(struct pci_dev *pdev)
{
	struct skel_device *skel = skel_drvdata(pdev);

	vfio_pci_core_unregister_device(&skel->core_device);
	vfio_pci_simdev_stop(&skel->sd);	/* uvfio: the device's thread */
	vfio_put_device(&skel->core_device.vdev);
}

static const struct pci_device_id skel_pci_table[] = {
	{ PCI_DRIVER_OVERRIDE_DEVICE_VFIO(0x1b36, 0x00ff) },
	{}
};

MODULE_DEVICE_TABLE(pci, skel_pci_table);

static struct pci_driver skel_driver = {
	.name = SKELETON_NAME "-vfio-pci",
	.id_table = skel_pci_table,
	/* uvfio: devices are created by spec name, not matched by ID. */
	.spec_name = SKELETON_NAME,
	.spec_keys = skel_keys,
	.description = "skeleton variant driver (STOP_COPY) to copy from",
	.probe = skel_probe,
	.remove = skel_remove,
	.err_handler = &skel_err_handlers,
	.driver_managed_dma = true,
};

module_pci_driver(skel_driver);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("skeleton VFIO variant driver (STOP_COPY)");
