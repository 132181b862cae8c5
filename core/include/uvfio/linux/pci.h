/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The simulated PCI bus as a driver sees it: struct pci_dev for a function,
 * struct pci_driver to bind to functions created by uvfio_sim_add(), and the
 * spec keys the driver accepts.
 *
 * uvfio_sim_add("simnic,bdf=0000:00:03.0,mem=64M") creates a pci_dev named
 * "0000:00:03.0" and calls the probe of the driver whose spec_name is
 * "simnic", passing the parsed spec. uvfio_sim_remove() calls remove.
 */
#ifndef UVFIO_LINUX_PCI_H
#define UVFIO_LINUX_PCI_H

#include <uvfio/linux/device.h>
#include <uvfio/linux/types.h>

struct uvfio_spec;

struct pci_dev {
	struct device dev;	/* dev.name is the BDF, "DDDD:BB:DD.F" */
	u16 domain = 0;
	u8 bus = 0;
	u8 devfn = 0;		/* PCI_DEVFN(slot, func) */
	/* The simulated function behind this pci_dev (sim/), if any. */
	void *sim = nullptr;
	const struct pci_driver *driver = nullptr;
	const struct uvfio_spec *spec = nullptr;	/* valid during probe */
};

#define PCI_DEVFN(slot, func) ((((slot) & 0x1f) << 3) | ((func) & 0x07))
#define PCI_SLOT(devfn) (((devfn) >> 3) & 0x1f)
#define PCI_FUNC(devfn) ((devfn) & 0x07)

static inline void *pci_get_drvdata(struct pci_dev *pdev)
{
	return dev_get_drvdata(&pdev->dev);
}

static inline void pci_set_drvdata(struct pci_dev *pdev, void *data)
{
	dev_set_drvdata(&pdev->dev, data);
}

static inline const char *pci_name(const struct pci_dev *pdev)
{
	return dev_name(&pdev->dev);
}

/**
 * struct pci_driver - a driver that binds to simulated functions
 *
 * @name: the driver's name ("simnic-vfio-pci"), as the kernel module's
 * @spec_name: the name uvfio_sim_add() specs use ("simnic")
 * @spec_keys: NULL-terminated list of keys the driver accepts besides "bdf";
 *             any other key is rejected before probe with EINVAL
 * @description: one line for `vfio-mig-ctl drivers`
 * @probe: bind to pdev; read keys with uvfio_spec_get*(). 0 or -errno.
 * @remove: unbind from pdev (unregister, put the device).
 */
struct pci_driver {
	const char *name;
	const char *spec_name;
	const char *const *spec_keys;
	const char *description;
	int (*probe)(struct pci_dev *pdev, const struct uvfio_spec *spec);
	void (*remove)(struct pci_dev *pdev);
};

/* Make a driver available to uvfio_sim_add(). -EEXIST on a name clash. */
int pci_register_driver(const struct pci_driver *drv);
void pci_unregister_driver(const struct pci_driver *drv);

/* Register a built-in driver when the library is loaded. */
#define module_pci_driver(drv)                                            \
	__attribute__((constructor)) static void drv##_uvfio_register(void) \
	{                                                                 \
		pci_register_driver(&(drv));                              \
	}

/* -------- spec access, for probe -------- */

/* The value of key, or NULL when the spec does not set it. */
const char *uvfio_spec_get(const struct uvfio_spec *spec, const char *key);

/*
 * Parse key as a size (decimal, or hex with 0x) with an optional K/M/G/T
 * suffix (powers of 1024) into
 * *out; def when absent. -EINVAL (logged) when malformed or out of
 * [min, max].
 */
int uvfio_spec_get_size(const struct uvfio_spec *spec, const char *key,
			u64 def, u64 min, u64 max, u64 *out);

/* Parse key as an unsigned integer (decimal, or hex with 0x); as above. */
int uvfio_spec_get_u64(const struct uvfio_spec *spec, const char *key,
		       u64 def, u64 min, u64 max, u64 *out);

/*
 * Parse key as a '|'- or '+'-separated set of names from names[] (NULL
 * terminated), each standing for bit values[i]; def when absent.
 */
int uvfio_spec_get_flags(const struct uvfio_spec *spec, const char *key,
			 const char *const *names, const u32 *values, u32 def,
			 u32 *out);

#endif /* UVFIO_LINUX_PCI_H */
