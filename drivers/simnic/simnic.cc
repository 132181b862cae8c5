// SPDX-License-Identifier: GPL-2.0-only
/*
 * simnic - the variant driver for the simulated DMA function
 * (<uvfio/sim/simdev.h>), embedding pci_core as the kernel's variant
 * drivers embed vfio_pci_core_device.
 *
 * Spec: "simnic,bdf=DDDD:BB:DD.F[,mem=SIZE][,msix=N][,seed=N]
 *        [,drain_us=N]"
 *   mem       BAR2 (device memory), a power of two, default 64M
 *   msix      MSI-X vectors, 1 to 64, default 8
 *   seed      fills device memory with a reproducible pattern; default:
 *             device memory starts zeroed
 *   drain_us  extra time an in-flight descriptor takes to finish once the
 *             device is asked to quiesce (a slow device), default 0
 *
 * DMA logging: log_ops over the function's own tracker of the guest pages
 * its DMA writes; at most 4 ranges (more are combined).
 *
 * Migration: STOP_COPY and P2P. Entering STOP or RUNNING_P2P quiesces the
 * function: no new DMA or interrupt, the in-flight descriptor finishes
 * before the arc returns. The STOP_COPY stream is a 48-byte header
 * (struct simnic_hdr) followed by the device-internal state (struct
 * simdev_state) and device memory; the header carries the configuration
 * the destination must match and an XXH3 of what follows. The resume side
 * buffers the stream and checks all of it at RESUMING -> STOP before it
 * changes the device.
 *
 * Locking as in the kernel's mlx5 driver: state_mutex (the FSM) before a
 * migration file's lock; reset_done defers to the state_mutex holder.
 */
#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include <xxhash.h>

#include <uvfio/linux/interval_tree.h>
#include <uvfio/linux/iova_bitmap.h>
#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio_pci_simdev.h>

namespace {

constexpr u32 SN_MAGIC = 0x4e535655;	/* "UVSN" */
constexpr u16 SN_VERSION = 1;

struct simnic_hdr {
	u32 magic;
	u16 version;
	u16 hdr_len;	/* sizeof(simnic_hdr) */
	u64 mem_size;
	u32 msix;
	u32 state_len;	/* sizeof(simdev_state) */
	u64 payload_len;	/* state_len + mem_size */
	u64 hash;	/* XXH3 of the payload */
	u64 reserved;
};
static_assert(sizeof(simnic_hdr) == 48);

struct simnic_device;

/* One migration file: saving (read) or resuming (write). */
struct simnic_migf {
	simnic_device *snic = nullptr;
	struct file *filp = nullptr;
	struct mutex lock;
	bool disabled = false;
	/* Saving: header and state are copied; memory is read in place
	 * (the device is stopped, so it cannot change under the reader). */
	simnic_hdr hdr = {};
	struct simdev_state state = {};
	u64 pos = 0;
	/* Resuming: the stream so far. */
	std::vector<u8> in;
};

struct simnic_device {
	struct vfio_pci_core_device core_device;
	struct simdev sd;
	struct mutex state_mutex;
	enum vfio_device_mig_state mig_state = VFIO_DEVICE_STATE_RUNNING;
	std::mutex reset_lock;
	bool deferred_reset = false;
	simnic_migf *saving_migf = nullptr;
	simnic_migf *resuming_migf = nullptr;
};

simnic_device *to_simnic(struct vfio_device *vdev)
{
	return container_of(vdev, simnic_device, core_device.vdev);
}

u64 stream_size(const simnic_device *snic)
{
	return sizeof(simnic_hdr) + sizeof(struct simdev_state) +
	       snic->sd.mem_size;
}

/* -------- the saving file -------- */

ssize_t simnic_save_read(struct file *filp, char __user *buf, size_t len,
			 loff_t *pos)
{
	auto *f = static_cast<simnic_migf *>(filp->private_data);
	struct simdev *sd = &f->snic->sd;
	const u64 total = stream_size(f->snic);
	size_t done = 0;

	if (pos)
		return -ESPIPE;
	mutex_guard g(&f->lock);
	if (f->disabled) {
		dev_err(f->snic->core_device.vdev.dev,
			"read on a disabled migration file");
		return -ENODEV;
	}
	while (done < len && f->pos < total) {
		const u8 *src;
		u64 avail;
		if (f->pos < sizeof(f->hdr)) {
			src = reinterpret_cast<const u8 *>(&f->hdr) + f->pos;
			avail = sizeof(f->hdr) - f->pos;
		} else if (f->pos < sizeof(f->hdr) + sizeof(f->state)) {
			u64 o = f->pos - sizeof(f->hdr);
			src = reinterpret_cast<const u8 *>(&f->state) + o;
			avail = sizeof(f->state) - o;
		} else {
			u64 o = f->pos - sizeof(f->hdr) - sizeof(f->state);
			src = sd->mem + o;
			avail = sd->mem_size - o;
		}
		size_t n = static_cast<size_t>(std::min<u64>(avail, len - done));
		if (copy_to_user(buf + done, src, n))
			return done ? static_cast<ssize_t>(done) : -EFAULT;
		done += n;
		f->pos += n;
	}
	return static_cast<ssize_t>(done);	/* 0 at the end: EOF */
}

int simnic_migf_release(struct inode *, struct file *filp)
{
	delete static_cast<simnic_migf *>(filp->private_data);
	return 0;
}

const struct file_operations simnic_save_fops = {
	.read = simnic_save_read,
	.write = nullptr,
	.unlocked_ioctl = nullptr,
	.mmap = nullptr,
	.release = simnic_migf_release,
};

/* -------- the resuming file -------- */

ssize_t simnic_resume_write(struct file *filp, const char __user *buf,
			    size_t len, loff_t *pos)
{
	auto *f = static_cast<simnic_migf *>(filp->private_data);

	if (pos)
		return -ESPIPE;
	mutex_guard g(&f->lock);
	if (f->disabled) {
		dev_err(f->snic->core_device.vdev.dev,
			"write on a disabled migration file");
		return -ENODEV;
	}
	/* Room for one page past the end, so that trailing bytes are seen
	 * (and named) at RESUMING -> STOP rather than lost here. */
	if (len > stream_size(f->snic) + PAGE_SIZE - f->in.size())
		return -EFBIG;
	size_t old = f->in.size();
	try {
		f->in.resize(old + len);
	} catch (...) {
		return -ENOMEM;
	}
	if (copy_from_user(f->in.data() + old, buf, len)) {
		f->in.resize(old);
		return -EFAULT;
	}
	return static_cast<ssize_t>(len);
}

const struct file_operations simnic_resume_fops = {
	.read = nullptr,
	.write = simnic_resume_write,
	.unlocked_ioctl = nullptr,
	.mmap = nullptr,
	.release = simnic_migf_release,
};

/*
 * Check the whole stream, then load it: the device never holds half a
 * state. 0 or -EINVAL with one log line naming the problem.
 */
int simnic_load(simnic_device *snic, simnic_migf *f)
{
	struct device *dev = snic->core_device.vdev.dev;
	struct simdev *sd = &snic->sd;
	simnic_hdr h;

	if (f->in.size() < sizeof(h)) {
		dev_err(dev, "resume: stream truncated in its header "
			"(%zu bytes)", f->in.size());
		return -EINVAL;
	}
	std::memcpy(&h, f->in.data(), sizeof(h));
	if (h.magic != SN_MAGIC) {
		dev_err(dev, "resume: bad magic %#x", h.magic);
		return -EINVAL;
	}
	if (h.version != SN_VERSION || h.hdr_len != sizeof(h)) {
		dev_err(dev, "resume: unsupported stream version %u",
			h.version);
		return -EINVAL;
	}
	if (h.mem_size != sd->mem_size || h.msix != sd->msix_count ||
	    h.state_len != sizeof(struct simdev_state) ||
	    h.payload_len != h.state_len + h.mem_size) {
		dev_err(dev, "resume: device configuration mismatch (mem "
			"%llu msix %u, this device mem %llu msix %u)",
			(unsigned long long)h.mem_size, h.msix,
			(unsigned long long)sd->mem_size, sd->msix_count);
		return -EINVAL;
	}
	u64 have = f->in.size() - sizeof(h);
	if (have != h.payload_len) {
		dev_err(dev, "resume: stream %s (%llu payload bytes, %llu "
			"expected)", have < h.payload_len ? "truncated" :
			"has trailing bytes", (unsigned long long)have,
			(unsigned long long)h.payload_len);
		return -EINVAL;
	}
	const u8 *payload = f->in.data() + sizeof(h);
	if (XXH3_64bits(payload, h.payload_len) != h.hash) {
		dev_err(dev, "resume: checksum mismatch");
		return -EINVAL;
	}
	struct simdev_state st;
	std::memcpy(&st, payload, sizeof(st));
	int ret = simdev_load_state(sd, &st);
	if (ret) {
		dev_err(dev, "resume: device state out of range");
		return ret;
	}
	std::memcpy(sd->mem, payload + sizeof(st), sd->mem_size);
	return 0;
}

/* -------- the FSM -------- */

simnic_migf *simnic_migf_alloc(simnic_device *snic, bool saving)
{
	auto *f = new (std::nothrow) simnic_migf;
	if (!f)
		return nullptr;
	f->snic = snic;
	mutex_init(&f->lock);
	struct file *filp = anon_inode_getfile(
		"simnic_mig", saving ? &simnic_save_fops : &simnic_resume_fops,
		f, saving ? O_RDONLY : O_WRONLY);
	if (IS_ERR(filp)) {
		delete f;
		return nullptr;
	}
	stream_open(nullptr, filp);
	f->filp = filp;
	return f;
}

/* The driver keeps its own reference to each file until it disables it. */
void simnic_disable_fds(simnic_device *snic)
{
	for (simnic_migf **pf : {&snic->saving_migf, &snic->resuming_migf}) {
		simnic_migf *f = *pf;
		if (!f)
			continue;
		mutex_lock(&f->lock);
		f->disabled = true;
		std::vector<u8>().swap(f->in);
		mutex_unlock(&f->lock);
		*pf = nullptr;
		fput(f->filp);
	}
}

struct file *simnic_open_save(simnic_device *snic)
{
	simnic_migf *f = simnic_migf_alloc(snic, true);
	if (!f)
		return static_cast<struct file *>(ERR_PTR(-ENOMEM));
	struct simdev *sd = &snic->sd;
	simdev_save_state(sd, &f->state);
	f->hdr.magic = SN_MAGIC;
	f->hdr.version = SN_VERSION;
	f->hdr.hdr_len = sizeof(simnic_hdr);
	f->hdr.mem_size = sd->mem_size;
	f->hdr.msix = sd->msix_count;
	f->hdr.state_len = sizeof(struct simdev_state);
	f->hdr.payload_len = sizeof(struct simdev_state) + sd->mem_size;
	XXH3_state_t *hs = XXH3_createState();
	if (!hs) {
		fput(f->filp);
		return static_cast<struct file *>(ERR_PTR(-ENOMEM));
	}
	XXH3_64bits_reset(hs);
	XXH3_64bits_update(hs, &f->state, sizeof(f->state));
	XXH3_64bits_update(hs, sd->mem, sd->mem_size);
	f->hdr.hash = XXH3_64bits_digest(hs);
	XXH3_freeState(hs);
	snic->saving_migf = f;
	return get_file(f->filp);
}

struct file *simnic_open_resume(simnic_device *snic)
{
	simnic_migf *f = simnic_migf_alloc(snic, false);
	if (!f)
		return static_cast<struct file *>(ERR_PTR(-ENOMEM));
	try {
		f->in.reserve(stream_size(snic));
	} catch (...) {
		fput(f->filp);
		return static_cast<struct file *>(ERR_PTR(-ENOMEM));
	}
	snic->resuming_migf = f;
	return get_file(f->filp);
}

/* States in which the function runs and may start DMA. */
bool mig_state_running(int s)
{
	return s == VFIO_DEVICE_STATE_RUNNING ||
	       s == VFIO_DEVICE_STATE_PRE_COPY;
}

struct file *simnic_step(struct vfio_device *vdev,
			 enum vfio_device_mig_state next)
{
	simnic_device *snic = to_simnic(vdev);
	const int cur = snic->mig_state, nxt = next;

	if (cur == VFIO_DEVICE_STATE_STOP && nxt == VFIO_DEVICE_STATE_STOP_COPY)
		return simnic_open_save(snic);
	if (cur == VFIO_DEVICE_STATE_STOP_COPY && nxt == VFIO_DEVICE_STATE_STOP) {
		simnic_disable_fds(snic);
		return nullptr;
	}
	if (cur == VFIO_DEVICE_STATE_STOP && nxt == VFIO_DEVICE_STATE_RESUMING)
		return simnic_open_resume(snic);
	if (cur == VFIO_DEVICE_STATE_RESUMING && nxt == VFIO_DEVICE_STATE_STOP) {
		simnic_migf *f = snic->resuming_migf;
		if (f) {
			mutex_guard g(&f->lock);
			int ret = simnic_load(snic, f);
			if (ret)
				return static_cast<struct file *>(ERR_PTR(ret));
		}
		simnic_disable_fds(snic);
		return nullptr;
	}
	/*
	 * RUNNING <-> RUNNING_P2P <-> STOP: leaving RUNNING quiesces the
	 * function (it returns once in-flight DMA is done); entering RUNNING
	 * lets it go on, with the interrupts it held back.
	 */
	bool stopping = mig_state_running(cur) &&
			(nxt == VFIO_DEVICE_STATE_RUNNING_P2P ||
			 nxt == VFIO_DEVICE_STATE_STOP);
	bool starting = (cur == VFIO_DEVICE_STATE_RUNNING_P2P ||
			 cur == VFIO_DEVICE_STATE_STOP) &&
			nxt == VFIO_DEVICE_STATE_RUNNING;
	bool stays = (cur == VFIO_DEVICE_STATE_RUNNING_P2P &&
		      nxt == VFIO_DEVICE_STATE_STOP) ||
		     (cur == VFIO_DEVICE_STATE_STOP &&
		      nxt == VFIO_DEVICE_STATE_RUNNING_P2P);
	if (stopping) {
		simdev_quiesce(&snic->sd);
		return nullptr;
	}
	if (starting) {
		simdev_unquiesce(&snic->sd);
		return nullptr;
	}
	if (stays)
		return nullptr;
	WARN_ON(true);
	return static_cast<struct file *>(ERR_PTR(-EINVAL));
}

/* Back to RUNNING after a reset or at open: files gone, function going. */
void simnic_reset_mig(simnic_device *snic)
{
	snic->mig_state = VFIO_DEVICE_STATE_RUNNING;
	simnic_disable_fds(snic);
	simdev_unquiesce(&snic->sd);
}

/* Unlock state_mutex, first running a reset that arrived meanwhile. */
void simnic_state_mutex_unlock(simnic_device *snic)
{
	for (;;) {
		std::unique_lock<std::mutex> l(snic->reset_lock);
		if (!snic->deferred_reset) {
			mutex_unlock(&snic->state_mutex);
			return;
		}
		snic->deferred_reset = false;
		l.unlock();
		simnic_reset_mig(snic);
	}
}

struct file *simnic_set_state(struct vfio_device *vdev,
			      enum vfio_device_mig_state new_state)
{
	simnic_device *snic = to_simnic(vdev);

	mutex_lock(&snic->state_mutex);
	struct file *res = vfio_mig_step_to_state(vdev, &snic->mig_state,
						  new_state, simnic_step);
	simnic_state_mutex_unlock(snic);
	return res;
}

int simnic_get_state(struct vfio_device *vdev,
		     enum vfio_device_mig_state *curr_state)
{
	simnic_device *snic = to_simnic(vdev);

	mutex_lock(&snic->state_mutex);
	*curr_state = snic->mig_state;
	simnic_state_mutex_unlock(snic);
	return 0;
}

/* Exact: the stream has a fixed size. */
int simnic_get_data_size(struct vfio_device *vdev,
			 unsigned long *stop_copy_length)
{
	*stop_copy_length = stream_size(to_simnic(vdev));
	return 0;
}

const struct vfio_migration_ops simnic_mig_ops = {
	.migration_set_state = simnic_set_state,
	.migration_get_state = simnic_get_state,
	.migration_get_data_size = simnic_get_data_size,
};

/*
 * DMA logging: the function's own tracker records the guest pages its DMA
 * writes touch. Like real devices it tracks a few ranges only: more are
 * combined (vfio_combine_iova_ranges), so pages in the gaps may be
 * reported too, never fewer than were written.
 */
constexpr u32 SIMNIC_LOG_MAX_RANGES = 4;

int simnic_log_start(struct vfio_device *vdev, struct rb_root_cached *ranges,
		     u32 nnodes, u64 *page_size)
{
	simnic_device *snic = to_simnic(vdev);
	std::vector<std::pair<u64, u64>> spans;

	if (nnodes > SIMNIC_LOG_MAX_RANGES) {
		vfio_combine_iova_ranges(ranges, nnodes, SIMNIC_LOG_MAX_RANGES);
		nnodes = SIMNIC_LOG_MAX_RANGES;
	}
	try {
		for (struct interval_tree_node *n =
			     interval_tree_iter_first(ranges, 0, ULONG_MAX);
		     n; n = interval_tree_iter_next(n, 0, ULONG_MAX))
			spans.emplace_back(n->start, u64(n->last) + 1);
	} catch (...) {
		return -ENOMEM;
	}
	/* The tracker's granule is at least a page. */
	*page_size = std::max<u64>(*page_size, PAGE_SIZE);
	int ret = simdev_log_start(&snic->sd, std::move(spans), *page_size);
	return ret == -EBUSY ? -EINVAL : ret;	/* one session at a time */
}

int simnic_log_stop(struct vfio_device *vdev)
{
	simdev_log_stop(&to_simnic(vdev)->sd);
	return 0;
}

void simnic_report_page(void *arg, u64 page_iova, u64 page_size)
{
	iova_bitmap_set(static_cast<struct iova_bitmap *>(arg), page_iova,
			page_size);
}

int simnic_log_read_and_clear(struct vfio_device *vdev, unsigned long iova,
			      unsigned long length, struct iova_bitmap *dirty)
{
	return simdev_log_read_and_clear(&to_simnic(vdev)->sd, iova, length,
					 simnic_report_page, dirty);
}

const struct vfio_log_ops simnic_log_ops = {
	.log_start = simnic_log_start,
	.log_stop = simnic_log_stop,
	.log_read_and_clear = simnic_log_read_and_clear,
};

/* -------- device ops -------- */

int simnic_init_dev(struct vfio_device *vdev)
{
	simnic_device *snic = to_simnic(vdev);
	int ret = vfio_pci_core_init_dev(vdev);
	if (ret)
		return ret;
	mutex_init(&snic->state_mutex);
	return 0;
}

int simnic_open_device(struct vfio_device *vdev)
{
	simnic_device *snic = to_simnic(vdev);
	int ret = vfio_pci_core_enable(&snic->core_device);
	if (ret)
		return ret;
	mutex_lock(&snic->state_mutex);
	simnic_reset_mig(snic);
	simnic_state_mutex_unlock(snic);
	vfio_pci_core_finish_enable(&snic->core_device);
	return 0;
}

void simnic_close_device(struct vfio_device *vdev)
{
	simnic_device *snic = to_simnic(vdev);

	mutex_lock(&snic->state_mutex);
	simnic_disable_fds(snic);
	simnic_state_mutex_unlock(snic);
	simdev_log_stop(&snic->sd);
	vfio_pci_core_close_device(vdev);
}

void simnic_reset_done(struct vfio_pci_core_device *core)
{
	simnic_device *snic = container_of(core, simnic_device, core_device);
	{
		std::lock_guard<std::mutex> l(snic->reset_lock);
		snic->deferred_reset = true;
		if (!mutex_trylock(&snic->state_mutex))
			return;
	}
	simnic_state_mutex_unlock(snic);
}

const struct pci_error_handlers simnic_err_handlers = {
	.reset_done = simnic_reset_done,
};

const struct vfio_device_ops simnic_ops = {
	.name = "simnic-vfio-pci",
	.init = simnic_init_dev,
	.release = vfio_pci_core_release_dev,
	.open_device = simnic_open_device,
	.close_device = simnic_close_device,
	.read = vfio_pci_core_read,
	.write = vfio_pci_core_write,
	.ioctl = vfio_pci_core_ioctl,
	.mmap = vfio_pci_core_mmap,
	.request = vfio_pci_core_request,
	.match = nullptr,
	.dma_unmap = nullptr,
	.device_feature = vfio_pci_core_ioctl_feature,
	.get_region_info_caps = vfio_pci_core_get_region_info_caps,
};

/* -------- probe / remove -------- */

const char *const simnic_keys[] = {"mem", "msix", "seed", "drain_us",
				   nullptr};

int simnic_probe(struct pci_dev *pdev, const struct uvfio_spec *spec)
{
	u64 mem, msix, seed, drain;
	int ret;

	if ((ret = uvfio_spec_get_size(spec, "mem", 64 << 20, PAGE_SIZE,
				       1ULL << 36, &mem)) ||
	    (ret = uvfio_spec_get_u64(spec, "msix", 8, 1, SIMDEV_MSIX_MAX,
				      &msix)) ||
	    (ret = uvfio_spec_get_u64(spec, "seed", 0, 0, ~0ULL, &seed)) ||
	    (ret = uvfio_spec_get_u64(spec, "drain_us", 0, 0, 10000000,
				      &drain)))
		return ret;
	if (mem & (mem - 1)) {
		dev_err(&pdev->dev, "mem=%llu is not a power of two",
			(unsigned long long)mem);
		return -EINVAL;
	}

	simnic_device *snic = vfio_alloc_device(simnic_device,
						core_device.vdev, &pdev->dev,
						&simnic_ops);
	if (IS_ERR(snic))
		return static_cast<int>(PTR_ERR(snic));

	struct vfio_pci_core_device *core = &snic->core_device;
	vfio_pci_simdev_describe(core, &snic->sd, mem, static_cast<u32>(msix));
	snic->sd.drain_us = static_cast<u32>(drain);
	core->device_id = 0x0010;
	core->err_handler = &simnic_err_handlers;
	core->vdev.mig_ops = &simnic_mig_ops;
	core->vdev.migration_flags = VFIO_MIGRATION_STOP_COPY |
				     VFIO_MIGRATION_P2P;
	core->vdev.log_ops = &simnic_log_ops;

	ret = vfio_pci_core_register_device(core);
	if (ret) {
		vfio_put_device(&core->vdev);
		return ret;
	}
	/* Before the engine exists: nothing else touches memory yet. */
	if (uvfio_spec_get(spec, "seed")) {
		for (u64 i = 0; i < mem; i += 8) {
			u64 w = simdev_pattern_word(seed, i / 8);
			std::memcpy(core->bars[2].map + i, &w, 8);
		}
	}
	ret = vfio_pci_simdev_start(core, &snic->sd);
	if (ret) {
		vfio_pci_core_unregister_device(core);
		vfio_put_device(&core->vdev);
		return ret;
	}
	pci_set_drvdata(pdev, snic);
	return 0;
}

void simnic_remove(struct pci_dev *pdev)
{
	auto *snic = static_cast<simnic_device *>(pci_get_drvdata(pdev));

	/* Unregister waits for the user to close: the engine is idle and
	 * bus mastering off by then. */
	vfio_pci_core_unregister_device(&snic->core_device);
	vfio_pci_simdev_stop(&snic->sd);
	vfio_put_device(&snic->core_device.vdev);
}

const struct pci_driver simnic_driver = {
	.name = "simnic-vfio-pci",
	.spec_name = "simnic",
	.spec_keys = simnic_keys,
	.description = "simulated DMA NIC (STOP_COPY, P2P)",
	.probe = simnic_probe,
	.remove = simnic_remove,
};

} // namespace

module_pci_driver(simnic_driver)
