// SPDX-License-Identifier: GPL-2.0-only
/*
 * simnic and simmin - the variant drivers of the simulated DMA function
 * (<uvfio/sim/simdev.h>), embedding pci_core as the kernel's variant
 * drivers embed vfio_pci_core_device. See simnic.h.
 *
 * Spec: "simnic,bdf=DDDD:BB:DD.F[,mem=SIZE][,msix=N][,seed=N]
 *        [,drain_us=N]", and the same for "simmin".
 *   mem       BAR2 (device memory), a power of two, default 64M
 *   msix      MSI-X vectors, 1 to 64, default 8
 *   seed      fills device memory with a reproducible pattern; default:
 *             device memory starts zeroed
 *   drain_us  extra time an in-flight descriptor takes to finish once the
 *             device is asked to quiesce (a slow device), default 0
 *
 * simnic: STOP_COPY | P2P | PRE_COPY, DMA logging over the function's own
 * tracker. simmin: STOP_COPY only, no logging.
 *
 * Leaving RUNNING or PRE_COPY for a state without DMA quiesces the
 * function (the arc returns once in-flight DMA is done); coming back lets
 * it go on. Pre-copy streams device memory while the device runs and sends
 * again what it wrote after sending.
 */
#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>


#include <uvfio/linux/interval_tree.h>
#include <uvfio/linux/iova_bitmap.h>

#include "simnic.h"

/* One arc of the FSM, from migf_set_state()'s walk. */
struct file *simnic_step(struct migf_dev *md, enum vfio_device_mig_state next)
{
	simnic_device *snic = mig_to_simnic(md);
	const int cur = md->mig_state, nxt = next;
	using namespace uvfio::mig_state;
	struct file *res;

	/* DMA first: stopped before anything is saved, after a load. */
	if (vfio_mig_state_running(cur) && !vfio_mig_state_running(nxt))
		simdev_quiesce(&snic->sd);

	if (migf_step_data(md, next, &res))
		return res;

	if (!vfio_mig_state_running(cur) && vfio_mig_state_running(nxt)) {
		simdev_unquiesce(&snic->sd);
		return nullptr;
	}
	/* The rest only moves between states with or without P2P DMA. */
	if ((cur == RUNNING && nxt == RUNNING_P2P) ||
	    (cur == RUNNING && nxt == STOP) ||
	    (cur == RUNNING_P2P && nxt == STOP) ||
	    (cur == STOP && nxt == RUNNING_P2P) ||
	    (cur == PRE_COPY && nxt == PRE_COPY_P2P))
		return nullptr;
	WARN_ON(true);
	return static_cast<struct file *>(ERR_PTR(-EINVAL));
}

namespace {

struct file *simnic_set_state(struct vfio_device *vdev,
			      enum vfio_device_mig_state new_state)
{
	return migf_set_state(&to_simnic(vdev)->mig, new_state);
}

int simnic_get_state(struct vfio_device *vdev,
		     enum vfio_device_mig_state *curr_state)
{
	return migf_get_state(&to_simnic(vdev)->mig, curr_state);
}

int simnic_get_data_size(struct vfio_device *vdev,
			 unsigned long *stop_copy_length)
{
	simnic_device *snic = to_simnic(vdev);

	mutex_lock(&snic->mig.state_mutex);
	*stop_copy_length = simnic_stop_copy_size(snic);
	migf_state_mutex_unlock(&snic->mig);
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

} // namespace

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

namespace {

/* The tracker's words go to the user's bitmap as words. */
bool simnic_report_bits(void *arg, u64 run_iova, u64 page_size, u64 *bits,
			u64 nbits)
{
	iova_bitmap_take_bits(static_cast<struct iova_bitmap *>(arg), run_iova,
			      page_size, bits, nbits);
	return true;
}

int simnic_log_read_and_clear(struct vfio_device *vdev, unsigned long iova,
			      unsigned long length, struct iova_bitmap *dirty)
{
	return simdev_log_read_and_clear_bits(&to_simnic(vdev)->sd, iova,
					      length, simnic_report_bits,
					      dirty);
}

} // namespace

const struct vfio_log_ops simnic_log_ops = {
	.log_start = simnic_log_start,
	.log_stop = simnic_log_stop,
	.log_read_and_clear = simnic_log_read_and_clear,
};

namespace {

/* Round-trip hook (uvfio_set_state_digest): device memory and state. */
int simnic_state_digest(struct vfio_device *vdev, u64 *out)
{
	simnic_device *snic = to_simnic(vdev);
	struct simdev_state st = {};

	simdev_save_state(&snic->sd, &st);
	*out = XXH3_64bits_withSeed(snic->sd.mem, snic->sd.mem_size,
				    XXH3_64bits(&st, sizeof(st)));
	return 0;
}

/* -------- device ops -------- */

int simnic_init_dev(struct vfio_device *vdev)
{
	simnic_device *snic = to_simnic(vdev);
	int ret = vfio_pci_core_init_dev(vdev);
	if (ret)
		return ret;
	migf_dev_init(&snic->mig, vdev, &simnic_migf_ops);
	return 0;
}

int simnic_open_device(struct vfio_device *vdev)
{
	simnic_device *snic = to_simnic(vdev);
	int ret = vfio_pci_core_enable(&snic->core_device);
	if (ret)
		return ret;
	/* Back to RUNNING, no file, the function going. */
	mutex_lock(&snic->mig.state_mutex);
	migf_reset(&snic->mig);
	migf_state_mutex_unlock(&snic->mig);
	vfio_pci_core_finish_enable(&snic->core_device);
	return 0;
}

void simnic_close_device(struct vfio_device *vdev)
{
	simnic_device *snic = to_simnic(vdev);

	mutex_lock(&snic->mig.state_mutex);
	migf_disable_fds(&snic->mig);
	migf_state_mutex_unlock(&snic->mig);
	simdev_log_stop(&snic->sd);
	vfio_pci_core_close_device(vdev);
}

void simnic_pci_aer_reset_done(struct pci_dev *pdev)
{
	auto *snic = static_cast<simnic_device *>(pci_get_drvdata(pdev));
	migf_reset_done(&snic->mig);
}

} // namespace

const struct pci_error_handlers simnic_err_handlers = {
	.reset_done = simnic_pci_aer_reset_done,
	.error_detected = vfio_pci_core_aer_err_detected,
};

namespace {

constexpr struct vfio_device_ops simnic_make_ops(const char *name)
{
	return {
		.name = name,
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
}

} // namespace

const struct vfio_device_ops simnic_ops = simnic_make_ops("simnic-vfio-pci");

/* -------- probe / remove -------- */

int simnic_probe_variant(struct pci_dev *pdev, const struct uvfio_spec *spec,
			 const struct simnic_variant *v)
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

	simnic_device *snic = vfio_alloc_device(
		simnic_device, core_device.vdev, &pdev->dev, v->ops);
	if (IS_ERR(snic))
		return static_cast<int>(PTR_ERR(snic));

	struct vfio_pci_core_device *core = &snic->core_device;
	vfio_pci_simdev_describe(core, &snic->sd, mem, static_cast<u32>(msix));
	snic->sd.drain_us = static_cast<u32>(drain);
	snic->mig.ops = v->mig;
	core->device_id = v->device_id;
	core->vdev.mig_ops = &simnic_mig_ops;
	core->vdev.migration_flags = VFIO_MIGRATION_STOP_COPY;
	uvfio_set_state_digest(&core->vdev, simnic_state_digest);
	if (v->full) {
		core->vdev.migration_flags |= VFIO_MIGRATION_P2P |
					      VFIO_MIGRATION_PRE_COPY;
		core->vdev.log_ops = v->log_ops;
	}

	/* Before registration: reset_done may run from then on. */
	pci_set_drvdata(pdev, snic);
	ret = vfio_pci_core_register_device(core);
	if (ret) {
		pci_set_drvdata(pdev, NULL);
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
		pci_set_drvdata(pdev, NULL);
		vfio_put_device(&core->vdev);
		return ret;
	}
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

#ifdef SIMNIC_NEGATIVE_CONTROL
/*
 * tests/conformance builds this file as the brokennic plugin: the same
 * code, registered as brokennic with the defects of brokennic.h instead
 * of as simnic and simmin.
 */
#include "brokennic.h"
#else
namespace {

const struct vfio_device_ops simmin_ops = simnic_make_ops("simmin-vfio-pci");

const struct simnic_variant simnic_variant = {
	.ops = &simnic_ops,
	.device_id = 0x0010,
	.full = true,
	.mig = &simnic_migf_ops,
	.log_ops = &simnic_log_ops,
};

/* STOP_COPY only, no logging: its guest dirty pages come from the IOMMU. */
const struct simnic_variant simmin_variant = {
	.ops = &simmin_ops,
	.device_id = 0x0011,
	.full = false,
	.mig = &simnic_migf_ops,
	.log_ops = nullptr,
};

int simnic_probe(struct pci_dev *pdev, const struct uvfio_spec *spec)
{
	return simnic_probe_variant(pdev, spec, &simnic_variant);
}

int simmin_probe(struct pci_dev *pdev, const struct uvfio_spec *spec)
{
	return simnic_probe_variant(pdev, spec, &simmin_variant);
}

const char *const simnic_keys[] = {"mem", "msix", "seed", "drain_us",
				   nullptr};

const struct pci_driver simnic_driver = {
	.name = "simnic-vfio-pci",
	.spec_name = "simnic",
	.spec_keys = simnic_keys,
	.description = "simulated DMA NIC (STOP_COPY, P2P, PRE_COPY, logging)",
	.probe = simnic_probe,
	.remove = simnic_remove,
	.err_handler = &simnic_err_handlers,
};

const struct pci_driver simmin_driver = {
	.name = "simmin-vfio-pci",
	.spec_name = "simmin",
	.spec_keys = simnic_keys,
	.description = "simulated DMA NIC, STOP_COPY only (IOMMU dirty pages)",
	.probe = simmin_probe,
	.remove = simnic_remove,
	.err_handler = &simnic_err_handlers,
};

} // namespace

module_pci_driver(simnic_driver)
module_pci_driver(simmin_driver)
#endif
