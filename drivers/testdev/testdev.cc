// SPDX-License-Identifier: GPL-2.0-only
/*
 * testdev - a variant driver for exercising the core, in the spirit of the
 * kernel's samples/vfio-mdev. It embeds pci_core and can advertise migration
 * (any legal combination of flags) and DMA logging, so that every core path
 * has a user before the real drivers exist.
 *
 * Spec: "testdev,bdf=DDDD:BB:DD.F[,mem=SIZE][,msix=N][,mig=FLAGS][,log=0|1]
 *        [,state=SIZE]"
 *   mem    BAR2 (device memory) size, power of two, default 1M
 *   msix   MSI-X vectors, default 4
 *   mig    migration flags: none, or stop_copy joined by | with p2p and/or
 *          pre_copy; default none (no mig_ops)
 *   log    1 to offer vfio_log_ops, default 0
 *   state  device state size reported by MIG_DATA_SIZE, default 64K
 */
#include <uvfio/linux/vfio_pci_core.h>

namespace {

struct testdev_device {
	struct vfio_pci_core_device core_device;
	struct mutex state_mutex;
	enum vfio_device_mig_state mig_state = VFIO_DEVICE_STATE_RUNNING;
	u64 state_size = 0;
	u64 mem_size = 0;
	u32 msix = 0;
};

testdev_device *to_testdev(struct vfio_device *vdev)
{
	return container_of(vdev, struct testdev_device, core_device.vdev);
}

/* -------- migration (state only; the data stream is the core's next step) */

struct file *testdev_set_state(struct vfio_device *vdev,
			       enum vfio_device_mig_state new_state)
{
	testdev_device *tdev = to_testdev(vdev);
	mutex_guard g(&tdev->state_mutex);
	tdev->mig_state = new_state;
	return nullptr;
}

int testdev_get_state(struct vfio_device *vdev,
		      enum vfio_device_mig_state *curr_state)
{
	testdev_device *tdev = to_testdev(vdev);
	mutex_guard g(&tdev->state_mutex);
	*curr_state = tdev->mig_state;
	return 0;
}

int testdev_get_data_size(struct vfio_device *vdev,
			  unsigned long *stop_copy_length)
{
	*stop_copy_length = to_testdev(vdev)->state_size;
	return 0;
}

const struct vfio_migration_ops testdev_mig_ops = {
	.migration_set_state = testdev_set_state,
	.migration_get_state = testdev_get_state,
	.migration_get_data_size = testdev_get_data_size,
};

int testdev_log_start(struct vfio_device *, struct rb_root_cached *, u32,
		      u64 *)
{
	return 0;
}

int testdev_log_stop(struct vfio_device *) { return 0; }

int testdev_log_read_and_clear(struct vfio_device *, unsigned long,
			       unsigned long, struct iova_bitmap *)
{
	return 0;
}

const struct vfio_log_ops testdev_log_ops = {
	.log_start = testdev_log_start,
	.log_stop = testdev_log_stop,
	.log_read_and_clear = testdev_log_read_and_clear,
};

/* -------- device ops -------- */

int testdev_init_dev(struct vfio_device *vdev)
{
	testdev_device *tdev = to_testdev(vdev);
	int ret = vfio_pci_core_init_dev(vdev);
	if (ret)
		return ret;
	mutex_init(&tdev->state_mutex);
	return 0;
}

int testdev_open_device(struct vfio_device *vdev)
{
	testdev_device *tdev = to_testdev(vdev);
	int ret = vfio_pci_core_enable(&tdev->core_device);
	if (ret)
		return ret;
	{
		mutex_guard g(&tdev->state_mutex);
		tdev->mig_state = VFIO_DEVICE_STATE_RUNNING;
	}
	vfio_pci_core_finish_enable(&tdev->core_device);
	return 0;
}

void testdev_reset_done(struct vfio_pci_core_device *core)
{
	testdev_device *tdev = container_of(core, struct testdev_device,
					    core_device);
	mutex_guard g(&tdev->state_mutex);
	tdev->mig_state = VFIO_DEVICE_STATE_RUNNING;
}

const struct pci_error_handlers testdev_err_handlers = {
	.reset_done = testdev_reset_done,
};

const struct vfio_device_ops testdev_ops = {
	.name = "testdev-vfio-pci",
	.init = testdev_init_dev,
	.release = vfio_pci_core_release_dev,
	.open_device = testdev_open_device,
	.close_device = vfio_pci_core_close_device,
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

const char *const testdev_keys[] = {"mem", "msix", "mig", "log", "state",
				    nullptr};
const char *const mig_names[] = {"none", "stop_copy", "p2p", "pre_copy",
				 nullptr};
const u32 mig_values[] = {0, VFIO_MIGRATION_STOP_COPY, VFIO_MIGRATION_P2P,
			  VFIO_MIGRATION_PRE_COPY};

int testdev_probe(struct pci_dev *pdev, const struct uvfio_spec *spec)
{
	u64 mem, msix, log, state;
	u32 mig;
	int ret;

	if ((ret = uvfio_spec_get_size(spec, "mem", 1 << 20, PAGE_SIZE,
				       1ULL << 36, &mem)) ||
	    (ret = uvfio_spec_get_u64(spec, "msix", 4, 0, 2048, &msix)) ||
	    (ret = uvfio_spec_get_u64(spec, "log", 0, 0, 1, &log)) ||
	    (ret = uvfio_spec_get_size(spec, "state", 64 << 10, 0, 1ULL << 40,
				       &state)) ||
	    (ret = uvfio_spec_get_flags(spec, "mig", mig_names, mig_values, 0,
					&mig)))
		return ret;
	if (mem & (mem - 1)) {
		dev_err(&pdev->dev, "mem=%llu is not a power of two",
			(unsigned long long)mem);
		return -EINVAL;
	}
	if (mig && !(mig & VFIO_MIGRATION_STOP_COPY)) {
		dev_err(&pdev->dev, "mig= needs stop_copy");
		return -EINVAL;
	}

	testdev_device *tdev = vfio_alloc_device(testdev_device,
						 core_device.vdev, &pdev->dev,
						 &testdev_ops);
	if (IS_ERR(tdev))
		return static_cast<int>(PTR_ERR(tdev));

	struct vfio_pci_core_device *core = &tdev->core_device;
	tdev->mem_size = mem;
	tdev->msix = static_cast<u32>(msix);
	tdev->state_size = state;
	core->msix_count = static_cast<u32>(msix);
	core->bars[0].size = 4096;
	core->bars[2].size = mem;
	core->bars[2].mmap = true;
	core->err_handler = &testdev_err_handlers;
	if (mig) {
		core->vdev.mig_ops = &testdev_mig_ops;
		core->vdev.migration_flags = mig;
	}
	if (log)
		core->vdev.log_ops = &testdev_log_ops;

	ret = vfio_pci_core_register_device(core);
	if (ret) {
		vfio_put_device(&core->vdev);
		return ret;
	}
	pci_set_drvdata(pdev, tdev);
	return 0;
}

void testdev_remove(struct pci_dev *pdev)
{
	auto *tdev = static_cast<testdev_device *>(pci_get_drvdata(pdev));

	vfio_pci_core_unregister_device(&tdev->core_device);
	vfio_put_device(&tdev->core_device.vdev);
}

const struct pci_driver testdev_driver = {
	.name = "testdev-vfio-pci",
	.spec_name = "testdev",
	.spec_keys = testdev_keys,
	.description = "test variant driver (configurable migration/logging)",
	.probe = testdev_probe,
	.remove = testdev_remove,
};

} // namespace

module_pci_driver(testdev_driver)
