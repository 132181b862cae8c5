/* SPDX-License-Identifier: GPL-2.0-only */
/* Core-private: the simulated PCI bus. */
#ifndef UVFIO_CORE_BUS_H
#define UVFIO_CORE_BUS_H

#include <string>
#include <vector>

#include <uvfio/linux/pci.h>

/* Parse "DDDD:BB:DD.F" or "BB:DD.F"; any output may be NULL. 0 or -EINVAL. */
int uvfio_parse_bdf(const char *text, std::string *canonical, u16 *domain,
		    u8 *bus, u8 *devfn);

/*
 * A spec number: decimal, or hex after 0x; with sized, then an optional
 * binary suffix (K, M, G, T, alone or with B or iB; a lone B). The
 * grammar of Documentation/uvfio-spec.md, "Value types", and of
 * uvfio_parse_size(). 0, -EINVAL (not one) or -ERANGE (above 2^64 - 1).
 */
int uvfio_parse_u64(const char *text, bool sized, u64 *out);

/*
 * For tests: characters compared so far on this thread while spec keys
 * were looked up, the parse's only work that is not one pass.
 */
u64 uvfio_spec_key_work(void);

int uvfio_bus_add(const char *spec);
int uvfio_bus_remove(const char *bdf);
std::vector<const struct pci_driver *> uvfio_bus_drivers();
std::vector<std::string> uvfio_bus_devices();

/*
 * Load the plugin NAME.so from UVFIO_DRIVER_PATH (plugin.cc). 0 when it
 * loaded (whether it registered NAME is the caller's to check), -ENOENT
 * when there is no such file, -EINVAL (logged) when dlopen() fails.
 */
int uvfio_plugin_load(const std::string &name);

#endif /* UVFIO_CORE_BUS_H */
