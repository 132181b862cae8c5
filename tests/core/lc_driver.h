/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A minimal driver for lifecycle tests: it counts every callback and can be
 * told to fail init or open_device. It registers a vfio_device directly
 * (no pci_dev), with a parent struct device named like a BDF so that
 * uvfio_open() finds it.
 */
#ifndef UVFIO_TESTS_LC_DRIVER_H
#define UVFIO_TESTS_LC_DRIVER_H

#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include <uvfio/linux/vfio.h>

#include "test_util.h"

namespace uvfio_test {

struct LcCounters {
	std::atomic<int> init{0}, release{0}, open{0}, close{0}, request{0};
	int init_ret = 0;
	int open_ret = 0;
	std::atomic<bool> lock_held_in_open{false};
	std::atomic<bool> lock_held_in_close{false};
	std::vector<unsigned int> request_counts;
	std::mutex request_lock;
	std::function<void(unsigned int)> on_request;
};

struct lc_device {
	struct vfio_device vdev;
	LcCounters *c = nullptr;
};

inline LcCounters *&lc_pending()
{
	static LcCounters *p = nullptr;
	return p;
}

inline lc_device *to_lc(struct vfio_device *v)
{
	return container_of(v, struct lc_device, vdev);
}

inline int lc_init(struct vfio_device *v)
{
	LcCounters *c = lc_pending();
	to_lc(v)->c = c;
	c->init++;
	return c->init_ret;
}

inline void lc_release(struct vfio_device *v) { to_lc(v)->c->release++; }

inline int lc_open(struct vfio_device *v)
{
	LcCounters *c = to_lc(v)->c;
	c->lock_held_in_open = mutex_is_locked_by_me(&v->dev_set->lock);
	c->open++;
	return c->open_ret;
}

inline void lc_close(struct vfio_device *v)
{
	LcCounters *c = to_lc(v)->c;
	c->lock_held_in_close = mutex_is_locked_by_me(&v->dev_set->lock);
	c->close++;
}

inline void lc_request(struct vfio_device *v, unsigned int count)
{
	LcCounters *c = to_lc(v)->c;
	{
		std::lock_guard<std::mutex> l(c->request_lock);
		c->request_counts.push_back(count);
	}
	c->request++;
	if (c->on_request)
		c->on_request(count);
}

inline const struct vfio_device_ops lc_ops = {
	.name = "lc-test",
	.init = lc_init,
	.release = lc_release,
	.open_device = lc_open,
	.close_device = lc_close,
	.request = lc_request,
};

/* A parent device that outlives the vfio_device made on it. */
struct LcParent {
	struct device dev;
	LcParent() { dev.name = next_bdf(); }
};

/* Allocate an lc_device on parent with counters c. */
inline lc_device *lc_alloc(LcParent &parent, LcCounters &c)
{
	lc_pending() = &c;
	lc_device *d = vfio_alloc_device(lc_device, vdev, &parent.dev, &lc_ops);
	lc_pending() = nullptr;
	return d;
}

} // namespace uvfio_test

#endif /* UVFIO_TESTS_LC_DRIVER_H */
