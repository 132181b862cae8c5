// SPDX-License-Identifier: GPL-2.0-only
/* struct device reference counting (the kernel's drivers/base/core.c). */
#include <uvfio/linux/device.h>
#include <uvfio/linux/kernel.h>

void device_initialize(struct device *dev)
{
	kref_init(&dev->kref);
}

struct device *get_device(struct device *dev)
{
	if (dev)
		kref_get(&dev->kref);
	return dev;
}

static void device_kref_release(struct kref *kref)
{
	struct device *dev = container_of(kref, struct device, kref);
	if (dev->release)
		dev->release(dev);
}

void put_device(struct device *dev)
{
	if (dev)
		kref_put(&dev->kref, device_kref_release);
}
