// SPDX-License-Identifier: GPL-2.0-only
/*
 * testdev's probe: the spec keys (testdev.cc's top comment lists them),
 * the PCI function they describe, and the internal state's seeded
 * content; remove, and the driver's registration.
 */
#include <algorithm>
#include <cstring>

#include "testdev.h"

namespace {

const char *const testdev_keys[] = {"mem",   "msix", "mig",     "log",
				    "state", "seed", "errstat", nullptr};
const char *const mig_names[] = {"none", "stop_copy", "p2p", "pre_copy",
				 nullptr};
const u32 mig_values[] = {0, VFIO_MIGRATION_STOP_COPY, VFIO_MIGRATION_P2P,
			  VFIO_MIGRATION_PRE_COPY};

int testdev_probe(struct pci_dev *pdev, const struct uvfio_spec *spec)
{
	u64 mem, msix, log, state, seed, errstat;
	u32 mig;
	int ret;
	const char *bdf = pdev->dev.name.c_str();

	if ((ret = uvfio_spec_get_size(spec, "mem", 1 << 20, PAGE_SIZE,
				       1ULL << 36, &mem)) ||
	    (ret = uvfio_spec_get_u64(spec, "msix", 4, 0, 2048, &msix)) ||
	    (ret = uvfio_spec_get_u64(spec, "log", 0, 0, 1, &log)) ||
	    (ret = uvfio_spec_get_size(spec, "state", 64 << 10, 0, 1ULL << 30,
				       &state)) ||
	    (ret = uvfio_spec_get_u64(spec, "seed",
				      XXH3_64bits(bdf, strlen(bdf)), 0,
				      ~0ULL, &seed)) ||
	    (ret = uvfio_spec_get_u64(spec, "errstat", 0, 0, 0xffff,
				      &errstat)) ||
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
	tdev->errstat = static_cast<u16>(errstat);
	tdev->msix = static_cast<u32>(msix);
	try {
		tdev->state.resize(state);
		tdev->dirty.resize((mem / TD_PAGE + 63) / 64);
	} catch (...) {
		vfio_put_device(&tdev->core_device.vdev);
		return -ENOMEM;
	}
	/* splitmix64: distinct content per device, reproducible per seed. */
	for (u64 i = 0; i < state; i += 8) {
		u64 z = (seed += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
		std::memcpy(tdev->state.data() + i, &z, std::min<u64>(8, state - i));
	}
	core->msix_count = static_cast<u32>(msix);
	core->bars[0].size = 4096;
	core->bars[2].size = mem;
	core->bars[2].mmap = true;
	core->bars[2].is_64 = true;	/* device memory: 64-bit, prefetchable */
	core->bars[2].prefetch = true;
	if (mig) {
		core->vdev.mig_ops = &testdev_mig_ops;
		core->vdev.migration_flags = mig;
		uvfio_set_state_digest(&core->vdev, testdev_state_digest);
	}
	if (log)
		core->vdev.log_ops = &testdev_log_ops;

	/* Before registration: reset_done may run from then on. */
	pci_set_drvdata(pdev, tdev);
	ret = vfio_pci_core_register_device(core);
	if (ret) {
		pci_set_drvdata(pdev, NULL);
		vfio_put_device(&core->vdev);
		return ret;
	}
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
	.err_handler = &testdev_err_handlers,
};

} // namespace

module_pci_driver(testdev_driver)
