/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * struct device: a named, reference-counted object with driver data, and the
 * dev_*() log calls drivers use. Log lines go through uvfio's log sink
 * (stderr by default, see uvfio_set_log_fn()).
 */
#ifndef UVFIO_LINUX_DEVICE_H
#define UVFIO_LINUX_DEVICE_H

#include <string>

#include <uvfio/linux/refcount.h>
#include <uvfio/linux/types.h>

struct device {
	std::string name;
	struct device *parent = nullptr;
	void *driver_data = nullptr;
	struct kref kref;
	/* Called when the last reference is put. */
	void (*release)(struct device *dev) = nullptr;
};

/* Set up dev with one reference. */
void device_initialize(struct device *dev);
struct device *get_device(struct device *dev);
void put_device(struct device *dev);

static inline const char *dev_name(const struct device *dev)
{
	return dev->name.c_str();
}

static inline void *dev_get_drvdata(const struct device *dev)
{
	return dev->driver_data;
}

static inline void dev_set_drvdata(struct device *dev, void *data)
{
	dev->driver_data = data;
}

/* Log levels as the kernel's KERN_* number them. */
#define LOGLEVEL_ERR 3
#define LOGLEVEL_WARNING 4
#define LOGLEVEL_INFO 6
#define LOGLEVEL_DEBUG 7

void uvfio_dev_printk(int level, const struct device *dev, const char *fmt,
		      ...) __attribute__((format(printf, 3, 4)));
void uvfio_printk(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define dev_err(dev, ...) uvfio_dev_printk(LOGLEVEL_ERR, dev, __VA_ARGS__)
#define dev_warn(dev, ...) uvfio_dev_printk(LOGLEVEL_WARNING, dev, __VA_ARGS__)
#define dev_info(dev, ...) uvfio_dev_printk(LOGLEVEL_INFO, dev, __VA_ARGS__)
#define dev_dbg(dev, ...) uvfio_dev_printk(LOGLEVEL_DEBUG, dev, __VA_ARGS__)
#define pr_err(...) uvfio_printk(LOGLEVEL_ERR, __VA_ARGS__)
#define pr_warn(...) uvfio_printk(LOGLEVEL_WARNING, __VA_ARGS__)
#define pr_info(...) uvfio_printk(LOGLEVEL_INFO, __VA_ARGS__)
#define pr_debug(...) uvfio_printk(LOGLEVEL_DEBUG, __VA_ARGS__)

#endif /* UVFIO_LINUX_DEVICE_H */
