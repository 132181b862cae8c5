/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The module boilerplate a kernel driver carries, so that it compiles here
 * unchanged: THIS_MODULE (for file_operations.owner and pci_driver's
 * driver.owner), MODULE_LICENSE() and friends, module_param() for a
 * driver's tunables. A uvfio driver is a part of the library or a plugin:
 * there is no module object (THIS_MODULE is a null pointer), the
 * MODULE_*() tags are dropped and module_param() only declares nothing
 * (the variable keeps its initializer; spec keys are uvfio's parameters).
 */
#ifndef UVFIO_LINUX_MODULE_H
#define UVFIO_LINUX_MODULE_H

struct module;

#define THIS_MODULE ((struct module *)0)

#define __UVFIO_MODULE_TAG(tag, value)                                    \
	static_assert(sizeof(value) > 0, tag)

#define MODULE_LICENSE(x) __UVFIO_MODULE_TAG("MODULE_LICENSE", x)
#define MODULE_AUTHOR(x) __UVFIO_MODULE_TAG("MODULE_AUTHOR", x)
#define MODULE_DESCRIPTION(x) __UVFIO_MODULE_TAG("MODULE_DESCRIPTION", x)
#define MODULE_VERSION(x) __UVFIO_MODULE_TAG("MODULE_VERSION", x)
#define MODULE_IMPORT_NS(ns) static_assert(true, #ns)
#define MODULE_DEVICE_TABLE(type, name)                                   \
	static_assert(sizeof(name) > 0, #type)
#define module_param(name, type, perm)                                    \
	static_assert(sizeof(name) > 0 && ((perm) | 1), #type)
#define MODULE_PARM_DESC(name, desc) static_assert(true, desc)

#endif /* UVFIO_LINUX_MODULE_H */
