// SPDX-License-Identifier: GPL-2.0-only
/*
 * testdev - a variant driver for exercising the core, in the spirit of the
 * kernel's samples/vfio-mdev. It embeds pci_core and can advertise migration
 * (any legal combination of flags) and DMA logging, so that every core path
 * has a user before the real drivers exist.
 *
 * Spec: "testdev,bdf=DDDD:BB:DD.F[,mem=SIZE][,msix=N][,mig=FLAGS][,log=0|1]
 *        [,state=SIZE][,seed=N]"
 *   mem    BAR2 (device memory) size, power of two, default 1M
 *   msix   MSI-X vectors, default 4
 *   mig    migration flags: none, or stop_copy joined by | with p2p and/or
 *          pre_copy; default none (no mig_ops)
 *   log    1 to offer vfio_log_ops, default 0
 *   state  bytes of device-internal state (in no BAR) that migrate, default
 *          64K; any size, so tests can pick awkward ones
 *   seed   seeds the internal state's content; default derived from the BDF
 *
 * Migration state is BAR0 (registers), BAR2 (device memory) and the internal
 * state. The stream is a sequence of records, each a 32-byte header and a
 * payload (see struct td_rec), magic "UVTD", version 2: CONFIG first, the
 * stream header (struct td_config: who saved it - vendor, device and
 * driver, struct mig_rec_ident - and the configuration the destination
 * must match: BAR2, internal state and BAR0 sizes, MSI-X count), then MEM
 * records for BAR2, BAR0, STATE records and END. Every record (the in-tree
 * drivers' struct mig_rec) carries a sequence number and an XXH3 hash over
 * its header and payload. The resume side checks CONFIG as soon as it has
 * its bytes: a bad one (wrong magic or version - version 1 had no identity
 * -, another device or configuration, a bad hash) fails that write with
 * EINVAL and a log line, takes nothing, and fails every later write and
 * RESUMING -> STOP the same way. It buffers the rest and checks all of it
 * at RESUMING -> STOP before it changes any device state: a gap, a bad
 * hash, truncation or trailing bytes fail the arc with EINVAL and a log
 * line naming the problem.
 *
 * PRE_COPY: the initial data is CONFIG and a full BAR2 image; pages of BAR2
 * written through the region write path after that are tracked and sent
 * again as dirty data. Writes through an mmap of BAR2 are not seen, so once
 * BAR2 has been mapped writable, STOP_COPY sends all of it again (as
 * simnic does). When nothing is left, read returns -ENOMSG until more pages
 * are dirtied or the device enters STOP_COPY, which sends what is still
 * dirty, BAR0, the internal state and END.
 *
 * Locking as in the kernel's mlx5 driver: state_mutex (the FSM) is taken
 * before a migration file's lock; reset_done defers to the state_mutex
 * holder when it cannot take the lock (the deferred-reset pattern).
 *
 * Files: this one (device ops, the FSM arcs, DMA logging), migf.cc (the
 * migration files and the loader), probe.cc (spec keys, probe, remove),
 * testdev.h; the files' lifecycle is drivers/common/migf.h.
 */
#include <mutex>

#include "testdev.h"

/* One arc of the FSM, from migf_set_state()'s walk. */
struct file *td_step(struct migf_dev *md, enum vfio_device_mig_state next)
{
	const int cur = md->mig_state, nxt = next;
	using namespace uvfio::mig_state;
	struct file *res;

	if (migf_step_data(md, next, &res))
		return res;
	/* Stopping and starting: testdev starts no DMA, nothing to quiesce. */
	if ((cur == RUNNING && (nxt == RUNNING_P2P || nxt == STOP)) ||
	    (cur == STOP && nxt == RUNNING) ||
	    (cur == RUNNING_P2P && (nxt == RUNNING || nxt == STOP)) ||
	    (cur == STOP && nxt == RUNNING_P2P) ||
	    (cur == PRE_COPY && nxt == PRE_COPY_P2P) ||
	    (cur == PRE_COPY_P2P && nxt == PRE_COPY))
		return nullptr;
	WARN_ON(true);
	return static_cast<struct file *>(ERR_PTR(-EINVAL));
}

namespace {

struct file *testdev_set_state(struct vfio_device *vdev,
			       enum vfio_device_mig_state new_state)
{
	return migf_set_state(&to_testdev(vdev)->mig, new_state);
}

int testdev_get_state(struct vfio_device *vdev,
		      enum vfio_device_mig_state *curr_state)
{
	return migf_get_state(&to_testdev(vdev)->mig, curr_state);
}

int testdev_get_data_size(struct vfio_device *vdev,
			  unsigned long *stop_copy_length)
{
	*stop_copy_length = td_stream_size(to_testdev(vdev));
	return 0;
}

} // namespace

/* Round-trip hook (uvfio_set_state_digest): what the stream carries. */
int testdev_state_digest(struct vfio_device *vdev, u64 *out)
{
	testdev_device *tdev = to_testdev(vdev);
	struct vfio_pci_core_device *core = &tdev->core_device;

	u64 h = XXH3_64bits(tdev->state.data(), tdev->state.size());
	h = XXH3_64bits_withSeed(core->bars[0].map, core->bars[0].size, h);
	*out = XXH3_64bits_withSeed(core->bars[2].map, tdev->mem_size, h);
	return 0;
}

const struct vfio_migration_ops testdev_mig_ops = {
	.migration_set_state = testdev_set_state,
	.migration_get_state = testdev_get_state,
	.migration_get_data_size = testdev_get_data_size,
};

namespace {

/*
 * DMA logging: testdev performs no DMA, so there is never a dirty page to
 * report; what it keeps is the session rule the real drivers have (one
 * START at a time, REPORT only inside a session).
 */
int testdev_log_start(struct vfio_device *vdev, struct rb_root_cached *,
		      u32, u64 *)
{
	testdev_device *tdev = to_testdev(vdev);
	std::lock_guard<std::mutex> l(tdev->dirty_lock);
	if (tdev->logging)
		return -EINVAL;
	tdev->logging = true;
	return 0;
}

int testdev_log_stop(struct vfio_device *vdev)
{
	testdev_device *tdev = to_testdev(vdev);
	std::lock_guard<std::mutex> l(tdev->dirty_lock);
	tdev->logging = false;
	return 0;
}

int testdev_log_read_and_clear(struct vfio_device *vdev, unsigned long,
			       unsigned long, struct iova_bitmap *)
{
	testdev_device *tdev = to_testdev(vdev);
	std::lock_guard<std::mutex> l(tdev->dirty_lock);
	return tdev->logging ? 0 : -EINVAL;
}

} // namespace

const struct vfio_log_ops testdev_log_ops = {
	.log_start = testdev_log_start,
	.log_stop = testdev_log_stop,
	.log_read_and_clear = testdev_log_read_and_clear,
};

namespace {

/* -------- device ops -------- */

int testdev_init_dev(struct vfio_device *vdev)
{
	testdev_device *tdev = to_testdev(vdev);
	int ret = vfio_pci_core_init_dev(vdev);
	if (ret)
		return ret;
	migf_dev_init(&tdev->mig, vdev, &td_migf_ops);
	return 0;
}

int testdev_open_device(struct vfio_device *vdev)
{
	testdev_device *tdev = to_testdev(vdev);
	int ret = vfio_pci_core_enable(&tdev->core_device);
	if (ret)
		return ret;
	/*
	 * errstat: Status error bits the function latches before the user
	 * sees it, after the reset at enable (an FLR clears them again).
	 */
	{
		mutex_guard g(&tdev->core_device.igate);
		sim_pci_config_set_status_errors(&tdev->core_device.config,
						 tdev->errstat);
	}
	mutex_lock(&tdev->mig.state_mutex);
	migf_reset(&tdev->mig);
	migf_state_mutex_unlock(&tdev->mig);
	vfio_pci_core_finish_enable(&tdev->core_device);
	return 0;
}

void testdev_close_device(struct vfio_device *vdev)
{
	testdev_device *tdev = to_testdev(vdev);

	mutex_lock(&tdev->mig.state_mutex);
	migf_disable_fds(&tdev->mig);
	staging_buffer().swap(tdev->staging);
	migf_state_mutex_unlock(&tdev->mig);
	testdev_log_stop(vdev);
	vfio_pci_core_close_device(vdev);
}

/* Region writes to BAR2 dirty pages while pre-copy tracks them. */
ssize_t testdev_write(struct vfio_device *vdev, const char __user *buf,
		      size_t count, loff_t *ppos)
{
	testdev_device *tdev = to_testdev(vdev);
	u64 pos = static_cast<u64>(*ppos);

	if (VFIO_PCI_OFFSET_TO_INDEX(pos) != VFIO_PCI_BAR2_REGION_INDEX)
		return vfio_pci_core_write(vdev, buf, count, ppos);
	std::lock_guard<std::mutex> l(tdev->mem_lock);
	ssize_t ret = vfio_pci_core_write(vdev, buf, count, ppos);
	/* After the write: a page sent before it lands is sent again. */
	if (ret > 0)
		td_mark_dirty(tdev, pos & VFIO_PCI_OFFSET_MASK,
			      static_cast<u64>(ret));
	return ret;
}

/*
 * A function reset returns the FSM to RUNNING and disables the migration
 * files. If state_mutex is busy, its holder does it on unlock.
 */
void testdev_pci_aer_reset_done(struct pci_dev *pdev)
{
	testdev_device *tdev =
		static_cast<testdev_device *>(pci_get_drvdata(pdev));
	migf_reset_done(&tdev->mig);
}

} // namespace

const struct pci_error_handlers testdev_err_handlers = {
	.reset_done = testdev_pci_aer_reset_done,
	.error_detected = vfio_pci_core_aer_err_detected,
};

namespace {

/* BAR2 mapped writable: from now on its writes escape the tracker. */
int testdev_mmap(struct vfio_device *vdev, struct vm_area_struct *vma)
{
	int ret = vfio_pci_core_mmap(vdev, vma);
	if (!ret && (vma->vm_pgoff >> (VFIO_PCI_OFFSET_SHIFT - PAGE_SHIFT)) ==
			    VFIO_PCI_BAR2_REGION_INDEX &&
	    (vma->vm_flags & VM_WRITE)) {
		testdev_device *tdev = to_testdev(vdev);
		std::lock_guard<std::mutex> l(tdev->dirty_lock);
		tdev->mapped = true;
	}
	return ret;
}

} // namespace

const struct vfio_device_ops testdev_ops = {
	.name = "testdev-vfio-pci",
	.init = testdev_init_dev,
	.release = vfio_pci_core_release_dev,
	.open_device = testdev_open_device,
	.close_device = testdev_close_device,
	.read = vfio_pci_core_read,
	.write = testdev_write,
	.ioctl = vfio_pci_core_ioctl,
	.mmap = testdev_mmap,
	.request = vfio_pci_core_request,
	.match = nullptr,
	.dma_unmap = nullptr,
	.device_feature = vfio_pci_core_ioctl_feature,
	.get_region_info_caps = vfio_pci_core_get_region_info_caps,
};

