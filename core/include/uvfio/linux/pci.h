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

#include <cerrno>
#include <cstddef>

#include <uvfio/linux/device.h>
#include <uvfio/linux/module.h>
#include <uvfio/linux/types.h>

struct uvfio_spec;
struct pci_dev;
struct vfio_pci_core_device;

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

/* -------- IDs (a uvfio driver binds by spec name; see probe) -------- */

#define PCI_ANY_ID (~0u)

struct pci_device_id {
	u32 vendor, device;		/* vendor and device ID or PCI_ANY_ID */
	u32 subvendor, subdevice;	/* subsystem IDs or PCI_ANY_ID */
	u32 class_, class_mask;		/* the kernel's "class" */
	unsigned long driver_data;	/* data private to the driver */
	u32 override_only;
};

#define PCI_ID_F_VFIO_DRIVER_OVERRIDE 1

#define PCI_DEVICE(vend, dev)                                             \
	.vendor = (vend), .device = (dev), .subvendor = PCI_ANY_ID,       \
	.subdevice = PCI_ANY_ID

#define PCI_DRIVER_OVERRIDE_DEVICE_VFIO(vend, dev)                        \
	PCI_DEVICE(vend, dev), .override_only = PCI_ID_F_VFIO_DRIVER_OVERRIDE

/* -------- error handlers -------- */

typedef unsigned int pci_ers_result_t;
enum pci_ers_result {
	PCI_ERS_RESULT_NONE = 1,	/* no result/none/not supported */
	PCI_ERS_RESULT_CAN_RECOVER = 2,	/* device can recover */
	PCI_ERS_RESULT_NEED_RESET = 3,	/* device needs a reset */
	PCI_ERS_RESULT_DISCONNECT = 4,	/* device has completely failed */
	PCI_ERS_RESULT_RECOVERED = 5,	/* device has been recovered */
	PCI_ERS_RESULT_NO_AER_DRIVER = 6,
};

typedef unsigned int pci_channel_state_t;
enum pci_channel_state {
	pci_channel_io_normal = 1,	/* I/O channel is in normal state */
	pci_channel_io_frozen = 2,	/* I/O to channel is blocked */
	pci_channel_io_perm_failure = 3, /* PCI card is dead */
};

/*
 * The reset_done member of struct pci_error_handlers: the kernel's
 * void (*)(struct pci_dev *), which pci_core calls after every function
 * reset (VFIO_DEVICE_RESET, an FLR through config space), as the PCI core
 * does from pci_dev_restore().
 *
 * Compatibility path, to be removed once every driver in the tree takes
 * a pci_dev: it also accepts uvfio's older
 * void (*)(struct vfio_pci_core_device *), set on
 * vfio_pci_core_device.err_handler; pci_core calls that one with the core
 * device. New drivers use the kernel's form on pci_driver.err_handler.
 */
struct pci_reset_done_fn {
	void (*fn)(struct pci_dev *dev) = nullptr;
	void (*core_fn)(struct vfio_pci_core_device *vdev) = nullptr;

	constexpr pci_reset_done_fn() = default;
	constexpr pci_reset_done_fn(std::nullptr_t) {}
	constexpr pci_reset_done_fn(void (*f)(struct pci_dev *)) : fn(f) {}
	constexpr pci_reset_done_fn(void (*f)(struct vfio_pci_core_device *))
		: core_fn(f)
	{
	}
	explicit constexpr operator bool() const { return fn || core_fn; }
	/* Only the kernel's form can be called with a pci_dev. */
	void operator()(struct pci_dev *dev) const
	{
		if (fn)
			fn(dev);
	}
};

/**
 * struct pci_error_handlers - the kernel's members and signatures
 *
 * @reset_done: a function reset completed; the deferred-reset pattern of
 *              migration drivers lives here
 * @error_detected: a PCI bus error was detected on the device (uvfio has no
 *                  AER: never called; vfio_pci_core_aer_err_detected fits)
 * @mmio_enabled, @slot_reset, @reset_prepare, @resume,
 * @cor_error_detected: never called
 *
 * Order: C++ designated initializers must follow the declaration order,
 * and the kernel's VFIO variant drivers (mlx5, hisi_acc, pds, virtio, qat)
 * all write { .reset_done = ..., .error_detected = ... }, so reset_done
 * comes first here; the kernel declares error_detected first. The rest
 * follow in the kernel's order.
 */
struct pci_error_handlers {
	struct pci_reset_done_fn reset_done;
	pci_ers_result_t (*error_detected)(struct pci_dev *dev,
					   pci_channel_state_t error);
	pci_ers_result_t (*mmio_enabled)(struct pci_dev *dev);
	pci_ers_result_t (*slot_reset)(struct pci_dev *dev);
	void (*reset_prepare)(struct pci_dev *dev);
	void (*resume)(struct pci_dev *dev);
	void (*cor_error_detected)(struct pci_dev *dev);
};

/*
 * The probe member of struct pci_driver. uvfio binds a driver to a function
 * by spec name (uvfio_sim_add("NAME,bdf=...")), not by IDs, and takes either
 * form of probe:
 *
 * - the kernel's int (*)(struct pci_dev *, const struct pci_device_id *):
 *   id is the first entry of the driver's id_table (or a zeroed ID without
 *   one); the spec is still reachable as pdev->spec during probe;
 * - uvfio's int (*)(struct pci_dev *, const struct uvfio_spec *).
 */
struct pci_probe_fn {
	int (*fn)(struct pci_dev *dev, const struct pci_device_id *id) = nullptr;
	int (*spec_fn)(struct pci_dev *dev,
		       const struct uvfio_spec *spec) = nullptr;

	constexpr pci_probe_fn() = default;
	constexpr pci_probe_fn(std::nullptr_t) {}
	constexpr pci_probe_fn(int (*f)(struct pci_dev *,
					const struct pci_device_id *))
		: fn(f)
	{
	}
	constexpr pci_probe_fn(int (*f)(struct pci_dev *,
					const struct uvfio_spec *))
		: spec_fn(f)
	{
	}
	explicit constexpr operator bool() const { return fn || spec_fn; }
	/* What the bus calls; defined below struct pci_driver. */
	inline int operator()(struct pci_dev *dev,
			      const struct uvfio_spec *spec) const;
};

/**
 * struct pci_driver - a driver that binds to simulated functions
 *
 * Members in the kernel's order (name, id_table, probe, remove,
 * err_handler, driver_managed_dma), with uvfio's between them, so both a
 * kernel initializer and uvfio's older one compile.
 *
 * @name: the driver's name ("simnic-vfio-pci"), as the kernel module's
 * @id_table: the kernel's ID table; uvfio does not match on it (see
 *            pci_probe_fn), probe gets its first entry. Optional.
 * @spec_name: uvfio only: the name uvfio_sim_add() specs use ("simnic")
 * @spec_keys: uvfio only: NULL-terminated list of keys the driver accepts
 *             besides "bdf"; any other key is rejected before probe with
 *             EINVAL
 * @description: uvfio only: one line for `vfio-mig-ctl drivers`
 * @probe: bind to pdev; read keys with uvfio_spec_get*(). 0 or -errno.
 * @remove: unbind from pdev (unregister, put the device).
 * @err_handler: the kernel's error handlers; pci_core calls
 *               err_handler->reset_done(pdev) after a function reset.
 * @driver_managed_dma: the kernel's flag for VFIO drivers (true for them);
 *                      not used by uvfio.
 */
struct pci_driver {
	const char *name;
	const struct pci_device_id *id_table;
	const char *spec_name;
	const char *const *spec_keys;
	const char *description;
	struct pci_probe_fn probe;
	void (*remove)(struct pci_dev *pdev);
	const struct pci_error_handlers *err_handler;
	bool driver_managed_dma;
};

inline int pci_probe_fn::operator()(struct pci_dev *dev,
				    const struct uvfio_spec *spec) const
{
	static const struct pci_device_id no_id = {};

	if (spec_fn)
		return spec_fn(dev, spec);
	if (!fn)
		return -ENODEV;
	const struct pci_device_id *id =
		dev->driver && dev->driver->id_table ? dev->driver->id_table
						     : &no_id;
	return fn(dev, id);
}

/* Make a driver available to uvfio_sim_add(). -EEXIST on a name clash. */
int pci_register_driver(const struct pci_driver *drv);
void pci_unregister_driver(const struct pci_driver *drv);

/*
 * Register a driver when the library (or the plugin) is loaded, as the
 * kernel's module_pci_driver() does at module load; a trailing ';' is
 * allowed.
 */
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
 * suffix, alone or followed by B or iB (all powers of 1024; the grammar of
 * uvfio_parse_size() in <uvfio/uvfio.h>) into *out; def when absent.
 * -EINVAL (logged) when malformed or out of [min, max].
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
