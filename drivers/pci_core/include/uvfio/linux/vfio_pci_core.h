/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/linux/vfio_pci_core.h> - the vfio-pci-core equivalent that every
 * variant driver embeds, as kernel variant drivers embed
 * struct vfio_pci_core_device.
 *
 * It implements the PCI part of the device uAPI: GET_INFO, GET_REGION_INFO,
 * GET_IRQ_INFO, SET_IRQS (INTx, MSI-X, ERR and REQ eventfds, with the
 * kernel's loopback triggers), RESET, and region read/write/mmap at
 * VFIO_PCI_INDEX_TO_OFFSET offsets. A variant driver points its
 * vfio_device_ops at the vfio_pci_core_* functions and adds migration and
 * logging ops of its own.
 *
 * The hardware description (BAR sizes, MSI-X vectors, IDs) is set by the
 * variant driver in its init callback, after vfio_pci_core_init_dev().
 */
#ifndef UVFIO_LINUX_VFIO_PCI_CORE_H
#define UVFIO_LINUX_VFIO_PCI_CORE_H

#include <atomic>
#include <mutex>
#include <vector>

#include <uvfio/linux/pci.h>
#include <uvfio/linux/unique_fd.h>
#include <uvfio/linux/vfio.h>
#include <uvfio/sim/pci_config.h>

#define PCI_STD_NUM_BARS 6
#define PCI_CFG_SPACE_EXP_SIZE 4096

#define VFIO_PCI_OFFSET_SHIFT 40
#define VFIO_PCI_OFFSET_TO_INDEX(off) ((off) >> VFIO_PCI_OFFSET_SHIFT)
#define VFIO_PCI_INDEX_TO_OFFSET(index) ((u64)(index) << VFIO_PCI_OFFSET_SHIFT)
#define VFIO_PCI_OFFSET_MASK (((u64)(1) << VFIO_PCI_OFFSET_SHIFT) - 1)

/*
 * One BAR: a memfd the driver and userspace mappings share. With regs,
 * region reads and writes go to the device model (hw_ops->bar_rw) instead:
 * registers with no memory behind them, or, with mmap too, memory the
 * model wants to see accessed (it then uses map itself).
 */
struct vfio_pci_bar {
	u64 size = 0;		/* 0: BAR not implemented */
	bool mmap = false;	/* userspace may mmap it */
	bool regs = false;	/* region access goes to hw_ops->bar_rw */
	bool is_64 = false;	/* 64-bit BAR: the next BAR must be absent */
	bool prefetch = false;	/* prefetchable memory */
	UniqueFD memfd;
	u8 *map = nullptr;	/* the core's own mapping of memfd */
};

/* One interrupt vector's eventfd (dup of the user's fd, owned here). */
struct vfio_pci_irq_ctx {
	UniqueFD trigger;
};

struct vfio_pci_core_device;
struct vfio_pci_region;

/*
 * A device-specific region (index VFIO_PCI_NUM_REGIONS + n), as in
 * vfio-pci-core: its type and subtype go to GET_REGION_INFO as a
 * VFIO_REGION_INFO_CAP_TYPE capability; the ops serve it.
 *
 * @rw: a read or write at *ppos (region index included); the byte count or
 *	-errno, advancing *ppos.
 * @release: the device is going away. Optional.
 * @mmap: map part of the region (only called with
 *	VFIO_REGION_INFO_FLAG_MMAP). Optional.
 * @add_capability: further GET_REGION_INFO capabilities. Optional.
 */
struct vfio_pci_regops {
	ssize_t (*rw)(struct vfio_pci_core_device *vdev, char __user *buf,
		      size_t count, loff_t *ppos, bool iswrite);
	void (*release)(struct vfio_pci_core_device *vdev,
			struct vfio_pci_region *region);
	int (*mmap)(struct vfio_pci_core_device *vdev,
		    struct vfio_pci_region *region,
		    struct vm_area_struct *vma);
	int (*add_capability)(struct vfio_pci_core_device *vdev,
			      struct vfio_pci_region *region,
			      struct vfio_info_cap *caps);
};

struct vfio_pci_region {
	u32 type;
	u32 subtype;
	const struct vfio_pci_regops *ops;
	void *data;
	size_t size;
	u32 flags;	/* VFIO_REGION_INFO_FLAG_* */
};

/*
 * The device model behind a function with register BARs and DMA (what
 * the kernel reaches through the PCI bus and the device's own MMIO).
 * pci_core calls every member with igate held; none may take igate, and
 * the model's own threads must not either (they signal MSI-X through
 * vfio_pci_core_signal_msix, which does not).
 *
 * @bar_rw: an access to a BAR marked regs, inside the BAR and outside the
 *	MSI-X table. For a BAR with mmap too, it is also called without
 *	igate, from another device's DMA engine (peer-to-peer DMA into a
 *	mapping of the BAR): there it may take only the model's leaf locks,
 *	never one held while the model waits for its engine.
 * @set_bus_master: the command register's bus-master bit changed (by the
 *	user, open, close or reset). Turning it off returns only when no DMA
 *	is in flight.
 * @flr: function-level reset of the model (config space is reset by
 *	pci_core); returns once the model is idle and reset.
 */
struct vfio_pci_hw_ops {
	void (*bar_rw)(struct vfio_pci_core_device *vdev, int bar, u64 off,
		       void *buf, size_t count, bool iswrite);
	void (*set_bus_master)(struct vfio_pci_core_device *vdev, bool on);
	void (*flr)(struct vfio_pci_core_device *vdev);
	/*
	 * uvfio only (may be NULL): the user mapped [off, off + len) of a
	 * mmap-able BAR at addr, writable or not, so that the model can see
	 * CPU stores through it. Called without igate.
	 */
	void (*user_mapped)(struct vfio_pci_core_device *vdev, int bar,
			    u64 off, void *addr, u64 len, bool writable);
};

struct vfio_pci_core_device {
	struct vfio_device vdev;
	struct pci_dev *pdev = nullptr;

	/* Hardware description, set by the variant driver's init. */
	u16 vendor_id = 0x1b36;
	u16 device_id = 0x0001;
	u32 msix_count = 0;
	/* Where the MSI-X capability says the table and PBA live. */
	u8 msix_bar = 0;
	u32 msix_table_offset = 0;
	u32 msix_pba_offset = 0;	/* 0: right after the table */
	bool has_intx = true;
	bool is_pcie = true;
	struct vfio_pci_bar bars[PCI_STD_NUM_BARS];

	/*
	 * The simulated function's config space, built at register time
	 * from the description above. Under igate.
	 */
	struct sim_pci_config config;
	/*
	 * vfio-pci's view of it (vfio_pci_config.cc), under igate: per byte,
	 * perm_virt says which bits the core emulates in vconfig, perm_write
	 * which bits the user may write (to vconfig if emulated, else to the
	 * function). Everything else reads from the function and ignores
	 * writes.
	 */
	u8 vconfig[PCI_CFG_SPACE_EXP_SIZE] = {};
	u8 perm_virt[PCI_CFG_SPACE_EXP_SIZE] = {};
	u8 perm_write[PCI_CFG_SPACE_EXP_SIZE] = {};

	const struct vfio_pci_hw_ops *hw_ops = nullptr;
	void *hw_data = nullptr;	/* the model, for hw_ops */
	bool bus_master = false;	/* last value told to hw_ops, igate */

	/*
	 * Interrupt state, protected by igate. irq_lock, taken inside igate,
	 * also guards irq_type and msix so that the device model can signal
	 * MSI-X while an igate holder waits for it.
	 */
	struct mutex igate;
	std::mutex irq_lock;
	int irq_type = VFIO_PCI_NUM_IRQS;	/* none */
	struct vfio_pci_irq_ctx intx;
	bool intx_masked = false;
	bool intx_pending = false;
	std::vector<struct vfio_pci_irq_ctx> msix;
	struct vfio_pci_irq_ctx err_trigger;
	struct vfio_pci_irq_ctx req_trigger;

	/*
	 * Device-specific regions, added before the device is registered:
	 * the driver's own, then the v1 migration region that
	 * vfio_pci_core_register_device() adds. Fixed from registration on.
	 */
	std::vector<struct vfio_pci_region> region;
	u32 num_regions = 0;

	/*
	 * Compatibility path: uvfio's older place for the error handlers,
	 * whose reset_done takes this device. pci_core calls it after a
	 * function reset when it is not the pci_driver's err_handler (the
	 * kernel's place, called with the pci_dev). Drivers still using it:
	 * testdev, simnic; new drivers set pci_driver.err_handler.
	 */
	const struct pci_error_handlers *err_handler = nullptr;
	bool reset_works = true;
	unsigned long resets = 0;	/* completed function resets */
	/*
	 * The command register's memory decode bit, as last synced (under
	 * igate); read without it by peer-to-peer DMA into a BAR mapping,
	 * which a function not decoding memory does not take.
	 */
	std::atomic<bool> mem_decode{false};
};

/* ops->init / ops->release parts every variant driver calls. */
int vfio_pci_core_init_dev(struct vfio_device *core_vdev);
void vfio_pci_core_release_dev(struct vfio_device *core_vdev);

/*
 * Allocate the BARs described by the variant driver and register. The
 * driver's mig_ops/log_ops must be set before. A device with mig_ops also
 * gets the v1 migration region (Documentation/migration-v1.md) as its
 * first device-specific region, unless the spec being probed has
 * mig_v1=off. 0 or -errno.
 */
int vfio_pci_core_register_device(struct vfio_pci_core_device *vdev);
void vfio_pci_core_unregister_device(struct vfio_pci_core_device *vdev);

/* open_device: enable the function (interrupts off). */
int vfio_pci_core_enable(struct vfio_pci_core_device *vdev);
void vfio_pci_core_finish_enable(struct vfio_pci_core_device *vdev);
/* close_device: disable interrupts, drop the user's eventfds. */
void vfio_pci_core_close_device(struct vfio_device *core_vdev);

long vfio_pci_core_ioctl(struct vfio_device *core_vdev, unsigned int cmd,
			 unsigned long arg);
int vfio_pci_core_ioctl_feature(struct vfio_device *device, u32 flags,
				void __user *arg, size_t argsz);
int vfio_pci_core_get_region_info_caps(struct vfio_device *core_vdev,
				       struct vfio_region_info *info,
				       struct vfio_info_cap *caps);
ssize_t vfio_pci_core_read(struct vfio_device *core_vdev, char __user *buf,
			   size_t count, loff_t *ppos);
ssize_t vfio_pci_core_write(struct vfio_device *core_vdev,
			    const char __user *buf, size_t count, loff_t *ppos);
int vfio_pci_core_mmap(struct vfio_device *core_vdev,
		       struct vm_area_struct *vma);
void vfio_pci_core_request(struct vfio_device *core_vdev, unsigned int count);

/*
 * Signal an interrupt as the hardware would: MSI-X vector, or INTx (held
 * pending while masked). Returns 0, or -EINVAL when no trigger is set.
 * signal_msix takes only irq_lock: callable from a device-model thread
 * while another thread holds igate.
 */
int vfio_pci_core_signal_msix(struct vfio_pci_core_device *vdev, u32 vector);
int vfio_pci_core_signal_intx(struct vfio_pci_core_device *vdev);

/*
 * Reset the function (VFIO_DEVICE_RESET) as pci_try_reset_function does:
 * save the config state (header, PM, MSI-X and PCIe control registers),
 * reset the function (the device model's flr, or for a function without
 * one BAR0 memory to zero; device memory in BAR2 and up keeps its content;
 * status error bits and device-specific config clear), restore the saved
 * state, then run the driver's err_handler->reset_done(pdev) (the
 * pci_driver's, as the kernel's PCI core does; see err_handler above for
 * the older place). A config write of
 * Initiate FLR does the same. The user's emulated config (vconfig) stays.
 */
int vfio_pci_core_reset(struct vfio_pci_core_device *vdev);

/*
 * The kernel's error_detected handler for vfio-pci devices (signals the ERR
 * eventfd), for a variant driver's pci_error_handlers. drvdata must be the
 * vfio_pci_core_device, as the kernel requires. Not called by uvfio (no AER).
 */
pci_ers_result_t vfio_pci_core_aer_err_detected(struct pci_dev *pdev,
						pci_channel_state_t state);

/*
 * Add a device-specific region, before vfio_pci_core_register_device();
 * it gets index VFIO_PCI_NUM_REGIONS + the number added before it. 0,
 * -EINVAL (no ops or no rw) or -ENOMEM.
 */
int vfio_pci_core_register_dev_region(struct vfio_pci_core_device *vdev,
				      unsigned int type, unsigned int subtype,
				      const struct vfio_pci_regops *ops,
				      size_t size, u32 flags, void *data);


#endif /* UVFIO_LINUX_VFIO_PCI_CORE_H */
