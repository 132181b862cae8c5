/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * brokennic - test-only: the conformance suite's negative control. It is
 * simnic with known defects, one per bug= name, switched on per device,
 * so the suite can prove each of its checks fails on the defect it is
 * meant to catch (tests/conformance/negative.sh).
 *
 *   errno         PRECOPY_INFO outside the pre-copy states fails with
 *                 ENOTTY instead of EINVAL
 *   stream        leaving STOP_COPY or PRE_COPY(_P2P) leaves the saving
 *                 file enabled
 *   dirty         each REPORT drops the highest dirty page it saw
 *   precopy_info  initial_bytes grows as the initial data is read
 *   p2p           RUNNING_P2P and PRE_COPY_P2P leave the DMA engine
 *                 running (it is quiesced only on the way to STOP), so a
 *                 peer saved meanwhile misses its writes
 *
 * None of this is in simnic's own paths: brokennic swaps in its own
 * migf_dev_ops, saving file_operations and vfio_log_ops, which wrap
 * simnic's. Only main.cc includes this file, and only when built with
 * SIMNIC_NEGATIVE_CONTROL (tests/conformance/meson.build compiles main.cc
 * and migf.cc into the plugin brokennic.so); the in-tree library never
 * registers brokennic.
 */
#ifndef UVFIO_DRIVERS_BROKENNIC_H
#define UVFIO_DRIVERS_BROKENNIC_H

#include <bit>

#include <uvfio/linux/uaccess.h>

#include "simnic.h"

namespace {

enum brokennic_bug {
	BROKENNIC_BUG_ERRNO = 1 << 0,
	BROKENNIC_BUG_STREAM = 1 << 1,
	BROKENNIC_BUG_DIRTY = 1 << 2,
	BROKENNIC_BUG_PRECOPY_INFO = 1 << 3,
	BROKENNIC_BUG_P2P = 1 << 4,
};

bool brokennic_has(const simnic_device *snic, unsigned int bug)
{
	return snic->brokennic_bugs & bug;
}

bool brokennic_p2p_state(enum vfio_device_mig_state s)
{
	return s == VFIO_DEVICE_STATE_RUNNING_P2P ||
	       s == VFIO_DEVICE_STATE_PRE_COPY_P2P;
}

/*
 * p2p: the engine goes on into the P2P states and is quiesced only when
 * the device leaves them for a state without DMA.
 */
struct file *brokennic_p2p_step(struct migf_dev *md,
				enum vfio_device_mig_state next)
{
	struct simdev *sd = &mig_to_simnic(md)->sd;
	const enum vfio_device_mig_state cur = md->mig_state;

	if (brokennic_p2p_state(cur) && !vfio_mig_state_running(next) &&
	    !brokennic_p2p_state(next))
		simdev_quiesce(sd);
	struct file *res = simnic_step(md, next);
	if (!IS_ERR(res) && vfio_mig_state_running(cur) &&
	    brokennic_p2p_state(next))
		simdev_unquiesce(sd);
	return res;
}

/* stream: the arcs that leave a saving state keep the file enabled. */
struct file *brokennic_step(struct migf_dev *md,
			    enum vfio_device_mig_state next)
{
	const enum vfio_device_mig_state cur = md->mig_state;

	if (brokennic_has(mig_to_simnic(md), BROKENNIC_BUG_P2P))
		return brokennic_p2p_step(md, next);
	if (brokennic_has(mig_to_simnic(md), BROKENNIC_BUG_STREAM) &&
	    ((cur == VFIO_DEVICE_STATE_STOP_COPY &&
	      next == VFIO_DEVICE_STATE_STOP) ||
	     (cur == VFIO_DEVICE_STATE_PRE_COPY &&
	      next == VFIO_DEVICE_STATE_RUNNING) ||
	     (cur == VFIO_DEVICE_STATE_PRE_COPY_P2P &&
	      next == VFIO_DEVICE_STATE_RUNNING_P2P)))
		return nullptr;
	return simnic_step(md, next);
}

/* precopy_info: initial_bytes counts part of what was read again. */
void brokennic_precopy_info(struct migf *f, struct vfio_precopy_info *info)
{
	simnic_precopy_info(f, info);
	if (brokennic_has(mig_to_simnic(f->md), BROKENNIC_BUG_PRECOPY_INFO))
		info->initial_bytes += f->w.bytes_read / 2 + 1;
}

/* errno: the wrong state answers ENOTTY, as if the ioctl did not exist. */
long brokennic_precopy_ioctl(struct file *filp, unsigned int cmd,
			     unsigned long arg)
{
	struct migf *f = file_to_migf(filp);
	struct migf_dev *md = f->md;
	size_t minsz = offsetofend(struct vfio_precopy_info, dirty_bytes);
	struct vfio_precopy_info info;
	long ret = migf_precopy_ioctl(filp, cmd, arg);

	/* Only the state's EINVAL: a short argsz keeps its own. */
	if (ret == -EINVAL &&
	    brokennic_has(mig_to_simnic(md), BROKENNIC_BUG_ERRNO) &&
	    !copy_from_user(&info, reinterpret_cast<void __user *>(arg),
			    minsz) &&
	    info.argsz >= minsz) {
		mutex_lock(&md->state_mutex);
		if (!migf_state_is_precopy(md->mig_state))
			ret = -ENOTTY;
		migf_state_mutex_unlock(md);
	}
	return ret;
}

const struct file_operations brokennic_save_fops = {
	.read = migf_save_read,
	.write = nullptr,
	.unlocked_ioctl = brokennic_precopy_ioctl,
	.mmap = nullptr,
	.release = migf_release,
};

const struct migf_dev_ops brokennic_migf_ops = {
	.magic = SN_MAGIC,
	.version = SN_VERSION,
	.save_fops = &brokennic_save_fops,
	.step = brokennic_step,
	.open_save = simnic_open_save,
	.open_resume = simnic_open_resume,
	.load = simnic_load,
	.produce = simnic_produce,
	.precopy_info = brokennic_precopy_info,
	.track_start = simnic_track_start,
	.track_flush = simnic_track_flush,
	.disabled = simnic_files_disabled,
	.reset = simnic_mig_reset,
};

/*
 * dirty: one REPORT window, the last dirty page held back (the highest
 * page seen so far, forwarded when a higher one comes) and never reported.
 */
struct brokennic_report {
	struct iova_bitmap *dirty;
	bool held = false;
	u64 held_iova = 0, held_size = 0;
};

bool brokennic_report_bits(void *arg, u64 run_iova, u64 page_size, u64 *bits,
			   u64 nbits)
{
	auto *r = static_cast<brokennic_report *>(arg);
	u64 k = nbits / 64;

	while (k && !bits[k - 1])
		k--;
	if (!k)
		return false;
	u64 top = (k - 1) * 64 + 63 - std::countl_zero(bits[k - 1]);
	if (r->held)
		iova_bitmap_set(r->dirty, r->held_iova, r->held_size);
	iova_bitmap_set_bits(r->dirty, run_iova, page_size, bits, top);
	r->held = true;
	r->held_iova = run_iova + top * page_size;
	r->held_size = page_size;
	return false;
}

/* The others simnic's own, simnic's stream and tracking. */
int brokennic_log_read_and_clear(struct vfio_device *vdev, unsigned long iova,
				 unsigned long length,
				 struct iova_bitmap *dirty)
{
	simnic_device *snic = to_simnic(vdev);

	if (!brokennic_has(snic, BROKENNIC_BUG_DIRTY))
		return simnic_log_ops.log_read_and_clear(vdev, iova, length,
							 dirty);
	brokennic_report r = {dirty};
	return simdev_log_read_and_clear_bits(&snic->sd, iova, length,
					      brokennic_report_bits, &r);
}

const struct vfio_log_ops brokennic_log_ops = {
	.log_start = simnic_log_start,
	.log_stop = simnic_log_stop,
	.log_read_and_clear = brokennic_log_read_and_clear,
};

const char *const brokennic_bug_names[] = {"errno", "stream", "dirty",
					   "precopy_info", "p2p", nullptr};
const u32 brokennic_bug_values[] = {
	BROKENNIC_BUG_ERRNO, BROKENNIC_BUG_STREAM, BROKENNIC_BUG_DIRTY,
	BROKENNIC_BUG_PRECOPY_INFO, BROKENNIC_BUG_P2P};

int brokennic_probe(struct pci_dev *pdev, const struct uvfio_spec *spec)
{
	static const struct simnic_variant variant = {
		.ops = &simnic_ops,
		.device_id = 0x0010,
		.full = true,
		.mig = &brokennic_migf_ops,
		.log_ops = &brokennic_log_ops,
	};
	u32 bugs = 0;
	int ret;

	if ((ret = uvfio_spec_get_flags(spec, "bug", brokennic_bug_names,
					brokennic_bug_values, 0, &bugs)))
		return ret;
	ret = simnic_probe_variant(pdev, spec, &variant);
	if (ret)
		return ret;
	/* Before the bus lists the function: no user can open it yet. */
	static_cast<simnic_device *>(pci_get_drvdata(pdev))->brokennic_bugs =
		bugs;
	return 0;
}

const char *const brokennic_keys[] = {"mem", "msix", "seed", "drain_us",
				      "bug", nullptr};

const struct pci_driver brokennic_driver = {
	.name = "brokennic-vfio-pci",
	.spec_name = "brokennic",
	.spec_keys = brokennic_keys,
	.description = "simnic with known defects (bug=errno|stream|dirty|"
		       "precopy_info|p2p), for testing the conformance suite",
	.probe = brokennic_probe,
	.remove = simnic_remove,
	.err_handler = &simnic_err_handlers,
};

} // namespace

module_pci_driver(brokennic_driver)

#endif /* UVFIO_DRIVERS_BROKENNIC_H */
