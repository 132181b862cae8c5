/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/linux/vfio.h> - the VFIO driver API, shaped like the kernel's
 * include/linux/vfio.h: a variant driver embeds struct vfio_device in its own
 * structure, fills the ops tables below and registers. Member names, argument
 * order, return conventions (0 or -errno, ERR_PTR for pointers) and the
 * moments the core calls each callback follow the kernel.
 */
#ifndef UVFIO_LINUX_VFIO_H
#define UVFIO_LINUX_VFIO_H

#include <new>
#include <type_traits>

#include <uvfio/linux/completion.h>
#include <uvfio/linux/device.h>
#include <uvfio/linux/fs.h>
#include <uvfio/linux/interval_tree.h>
#include <uvfio/linux/kernel.h>
#include <uvfio/linux/list.h>
#include <uvfio/linux/mm.h>
#include <uvfio/linux/mutex.h>
#include <uvfio/linux/refcount.h>
#include <uvfio/uapi/vfio.h>

struct vfio_device;
struct vfio_device_ops;
struct vfio_info_cap;
struct iova_bitmap;
struct rb_root_cached;
struct vfio_device_private;

/*
 * A device set groups devices that must be opened and reset together (e.g.
 * functions behind one reset domain). Its lock is held around open_device and
 * close_device of every member, so a driver can reason about the whole set.
 */
struct vfio_device_set {
	void *set_id = nullptr;
	struct mutex lock;
	struct list_head device_list;
	unsigned int device_count = 0;
};

/* Which IOMMU model the device was registered with. */
enum vfio_group_type {
	VFIO_IOMMU = 0,		/* a physical device behind the IOMMU */
	VFIO_EMULATED_IOMMU,	/* mdev-style: DMA via vfio_pin_pages/dma_rw */
};

struct vfio_device {
	/* The parent device: the PCI function the driver bound to. */
	struct device *dev = nullptr;
	const struct vfio_device_ops *ops = nullptr;
	/* Set by the driver before registration to offer migration. */
	const struct vfio_migration_ops *mig_ops = nullptr;
	/* Set by the driver before registration to offer DMA logging. */
	const struct vfio_log_ops *log_ops = nullptr;
	struct vfio_device_set *dev_set = nullptr;
	struct list_head dev_set_list;
	/* VFIO_MIGRATION_* flags; STOP_COPY is mandatory with mig_ops. */
	unsigned int migration_flags = 0;

	/*
	 * Members below are private to the core. The first five are the
	 * kernel's own. The last three are uvfio's and stay here, in the
	 * driver's allocation, for two reasons: a driver embeds this
	 * structure, so its size and layout are part of every plugin built
	 * against this header (moving a member breaks loaded .so files); and
	 * vfio_alloc_device() is a macro whose inline template writes
	 * uvfio_owner and uvfio_free in the plugin's own code. priv is the
	 * opaque link to everything else the core keeps per device
	 * (core/vfio/vfio.h), so nothing else need ever be added here.
	 */
	unsigned int index = 0;
	struct device device;	/* device.kref is the object's lifetime */
	refcount_t refcount;	/* users of the registered device */
	unsigned int open_count = 0;	/* protected by dev_set->lock */
	struct completion comp;	/* last user gone during unregister */
	struct vfio_device_private *priv = nullptr;
	/*
	 * The structure that embeds this one and how to free it: the kernel
	 * kfree()s the container; C++ needs its type's delete, known only
	 * where vfio_alloc_device() was expanded.
	 */
	void *uvfio_owner = nullptr;
	void (*uvfio_free)(void *owner) = nullptr;
};

/**
 * struct vfio_device_ops - the driver's callbacks for a vfio_device
 *
 * @name: driver name, for logs
 * @init: set up the driver's private part of the device; called once by
 *        vfio_alloc_device(). Optional.
 * @release: undo @init; called when the last reference is put
 *           (vfio_put_device()). Optional.
 * @open_device: the first open of the device fd; its failure fails the open.
 *               Called with dev_set->lock held. Optional.
 * @close_device: the last close of the device fd. Called with dev_set->lock
 *                held. Optional.
 * @read: read from a region; *ppos encodes VFIO_PCI_INDEX_TO_OFFSET(index).
 * @write: write to a region, as @read.
 * @ioctl: every device-fd ioctl the core does not handle itself.
 * @mmap: map part of a region; see struct vm_area_struct.
 * @request: the core asks the user to release the device (unregister is
 *           waiting); count is how many times it has asked.
 * @match: match a name to this device (not used by uvfio's lookup). Optional.
 * @dma_unmap: userspace is unmapping [iova, iova + length) which the device
 *             has pinned; the driver must unpin it. Emulated-IOMMU devices.
 * @device_feature: VFIO_DEVICE_FEATURE for features the core does not handle.
 * @get_region_info_caps: fill @info (index given) and add capabilities to
 *                        @caps; when set, the core handles
 *                        VFIO_DEVICE_GET_REGION_INFO itself (argsz, the
 *                        capability chain, copying back).
 */
struct vfio_device_ops {
	const char *name;
	int (*init)(struct vfio_device *vdev);
	void (*release)(struct vfio_device *vdev);
	int (*open_device)(struct vfio_device *vdev);
	void (*close_device)(struct vfio_device *vdev);
	ssize_t (*read)(struct vfio_device *vdev, char __user *buf,
			size_t count, loff_t *ppos);
	ssize_t (*write)(struct vfio_device *vdev, const char __user *buf,
			 size_t count, loff_t *ppos);
	long (*ioctl)(struct vfio_device *vdev, unsigned int cmd,
		      unsigned long arg);
	int (*mmap)(struct vfio_device *vdev, struct vm_area_struct *vma);
	void (*request)(struct vfio_device *vdev, unsigned int count);
	int (*match)(struct vfio_device *vdev, char *buf);
	void (*dma_unmap)(struct vfio_device *vdev, u64 iova, u64 length);
	int (*device_feature)(struct vfio_device *device, u32 flags,
			      void __user *arg, size_t argsz);
	int (*get_region_info_caps)(struct vfio_device *vdev,
				    struct vfio_region_info *info,
				    struct vfio_info_cap *caps);
};

/**
 * struct vfio_migration_ops - migration protocol v2 callbacks
 *
 * @migration_set_state: move the device to new_state, which the core has
 *   only checked is a state at all. Called once per MIG_DEVICE_STATE SET
 *   with the user's target, as in the kernel: the driver walks the arcs
 *   itself, asking vfio_mig_get_next_state() for each one under its state
 *   lock (see drivers/skeleton). Returns NULL, the struct file of the data
 *   stream the last arc opens, or ERR_PTR (the device stays where the
 *   failing arc left it). Data file reads and writes may run concurrently
 *   with it, as a user's read(2) can in the kernel: lock the file.
 * @migration_get_state: report the current state.
 * @migration_get_data_size: estimate of the bytes STOP_COPY will produce.
 */
struct vfio_migration_ops {
	struct file *(*migration_set_state)(
		struct vfio_device *device,
		enum vfio_device_mig_state new_state);
	int (*migration_get_state)(struct vfio_device *device,
				   enum vfio_device_mig_state *curr_state);
	int (*migration_get_data_size)(struct vfio_device *device,
				       unsigned long *stop_copy_length);
};

/**
 * struct vfio_log_ops - device DMA logging (dirty tracking) callbacks
 *
 * @log_start: start tracking the ranges in the interval tree; may round
 *             *page_size up to what the device supports.
 * @log_stop: stop tracking, drop all state.
 * @log_read_and_clear: report and clear dirty pages in [iova, iova + length)
 *                      into dirty; called once per iova_bitmap window.
 */
struct vfio_log_ops {
	int (*log_start)(struct vfio_device *device,
			 struct rb_root_cached *ranges, u32 nnodes,
			 u64 *page_size);
	int (*log_stop)(struct vfio_device *device);
	int (*log_read_and_clear)(struct vfio_device *device,
				  unsigned long iova, unsigned long length,
				  struct iova_bitmap *dirty);
};

/* -------- allocation and lifetime -------- */

/*
 * Core part of vfio_alloc_device(): set up device (embedded first in an
 * object allocated by the macro) and call ops->init. On failure the object
 * is freed and ops->release is not called. 0 or -errno.
 */
int vfio_init_device(struct vfio_device *device, struct device *dev,
		     const struct vfio_device_ops *ops);

namespace uvfio::detail {
template <typename T>
T *alloc_device(struct device *dev, const struct vfio_device_ops *ops)
{
	T *obj = new (std::nothrow) T{};
	if (!obj)
		return static_cast<T *>(ERR_PTR(-ENOMEM));
	/* The vfio_device is the first member (checked by the macro). */
	auto *vdev = reinterpret_cast<struct vfio_device *>(obj);
	vdev->uvfio_owner = obj;
	vdev->uvfio_free = [](void *owner) { delete static_cast<T *>(owner); };
	int ret = vfio_init_device(vdev, dev, ops);
	if (ret)
		return static_cast<T *>(ERR_PTR(ret));
	return obj;
}
} /* namespace uvfio::detail */

/*
 * Construct dev_struct (value-initialized, so C++ members work) and call
 * ops->init. Returns the new structure or an ERR_PTR; the last
 * vfio_put_device() frees it. As in the kernel, the vfio_device must be the
 * first member of the driver's structure (possibly nested:
 * "core_device.vdev").
 */
#define vfio_alloc_device(dev_struct, member, dev, ops)                      \
	({                                                                   \
		static_assert(std::is_same_v<                                \
				      decltype(((dev_struct *)nullptr)->member), \
				      struct vfio_device>,                   \
			      #member " is not a struct vfio_device");       \
		_Pragma("GCC diagnostic push")                               \
		_Pragma("GCC diagnostic ignored \"-Winvalid-offsetof\"")      \
		static_assert(offsetof(dev_struct, member) == 0,             \
			      #member " must be the first member");          \
		_Pragma("GCC diagnostic pop")                                \
		uvfio::detail::alloc_device<dev_struct>((dev), (ops));       \
	})

/* Drop a reference; the last one calls ops->release and frees the device. */
void vfio_put_device(struct vfio_device *device);

/* -------- registration -------- */

/*
 * Make the device visible to userspace. Rejects an incomplete ops table with
 * -EINVAL: mig_ops without all three callbacks or without
 * VFIO_MIGRATION_STOP_COPY, log_ops without all three callbacks, and a name
 * already registered (-EEXIST).
 */
int vfio_register_group_dev(struct vfio_device *device);
int vfio_register_emulated_iommu_dev(struct vfio_device *device);

/*
 * Hide the device from new opens, then wait until every user has closed it,
 * calling ops->request while waiting (at once, then every request interval).
 */
void vfio_unregister_group_dev(struct vfio_device *device);

/* Interval between ops->request calls during unregister (default 10 s). */
void vfio_set_unregister_request_interval_ms(long ms);

/* -------- device sets -------- */

/* Put the device in the set identified by set_id (before registration). */
int vfio_assign_device_set(struct vfio_device *device, void *set_id);
/* Sum of open counts in the set; the caller holds dev_set->lock. */
unsigned int vfio_device_set_open_count(struct vfio_device_set *dev_set);
/* The member of the set whose parent is dev, or NULL; lock held. */
struct vfio_device *
vfio_find_device_in_devset(struct vfio_device_set *dev_set, struct device *dev);

/* -------- uAPI helpers -------- */

/*
 * Common checks of a VFIO_DEVICE_FEATURE request for one feature. Returns
 * 1 when the caller should perform the GET or SET, 0 for a successful
 * PROBE, -EINVAL when flags ask for an op not in supported_ops, ask for none
 * (without PROBE), or argsz is below minsz.
 */
int vfio_check_feature(u32 flags, size_t argsz, u32 supported_ops,
		       size_t minsz);

/* A growing buffer of vfio_info_cap_header chained by offset. */
struct vfio_info_cap {
	struct vfio_info_cap_header *buf;
	size_t size;
};

/* Append a zeroed capability of size bytes; ERR_PTR(-ENOMEM). */
struct vfio_info_cap_header *vfio_info_cap_add(struct vfio_info_cap *caps,
					       size_t size, u16 id,
					       u16 version);
/* Add offset to every `next` link (the chain follows a struct in argsz). */
void vfio_info_cap_shift(struct vfio_info_cap *caps, size_t offset);
/* Append a copy of cap (size bytes, header included). */
int vfio_info_add_capability(struct vfio_info_cap *caps,
			     struct vfio_info_cap_header *cap, size_t size);

/*
 * Validate a VFIO_DEVICE_SET_IRQS header for an index with num_irqs vectors
 * (max_irq_type indexes exist) and compute the size of the data that follows.
 */
int vfio_set_irqs_validate_and_prepare(struct vfio_irq_set *hdr, int num_irqs,
				       int max_irq_type, size_t *data_size);

/*
 * Reduce the cur_nodes disjoint ranges in root to req_nodes for a device
 * that tracks fewer ranges than were asked for: while too many remain, the
 * two neighbours (in address order) with the smallest gap between them are
 * joined, the lower-addressed pair on a tie. The first keeps its start and
 * takes the second's last, so every address covered stays covered; the
 * second is only unlinked (its memory is the caller's). Nothing happens when
 * req_nodes >= cur_nodes. req_nodes == 0 is a caller bug: it WARNs and
 * leaves the tree unchanged (the kernel, which WARNs too, would first have
 * folded everything into one range). Overlapping input ranges are bridged
 * first and never shortened.
 */
void vfio_combine_iova_ranges(struct rb_root_cached *root, u32 cur_nodes,
			      u32 req_nodes);

/* -------- DMA through the device's IOMMU -------- */

/*
 * Copy len bytes between data and the device's IOVA space through the
 * container's mappings (the simulated device's DMA, or an emulated-IOMMU
 * driver's access to guest memory). 0, or -EINVAL when the device is behind
 * no container with an IOMMU model, -EFAULT when any byte is unmapped or
 * not permitted (nothing is copied then). A write is dirty-tracked.
 */
int vfio_dma_rw(struct vfio_device *device, dma_addr_t iova, void *data,
		size_t len, bool write);

/*
 * Pin npage pages from iova (page aligned) with prot (IOMMU_READ/WRITE) and
 * return them in pages[] (page_address() gives the memory). The driver must
 * have ops->dma_unmap, where it unpins when userspace unmaps the range.
 * Returns npage or -errno.
 */
int vfio_pin_pages(struct vfio_device *device, dma_addr_t iova, int npage,
		   int prot, struct page **pages);
void vfio_unpin_pages(struct vfio_device *device, dma_addr_t iova, int npage);

/*
 * uvfio only (the kernel has no pump between a data fd and the driver):
 * run a function reset the core did not start, such as an FLR the user
 * asks for through config space, the way VFIO_DEVICE_RESET runs: the live
 * migration data stream is quiesced first and ends with a successful
 * reset, so the driver is never called on the file the reset disabled.
 * Returns reset()'s result. Must not be called from a path that holds the
 * core's migration lock (a migration arc or VFIO_DEVICE_RESET).
 */
int uvfio_device_reset(struct vfio_device *device,
		       int (*reset)(struct vfio_device *device));

/*
 * uvfio only: the conformance suite's round-trip check. digest hashes
 * everything the driver's migration stream carries (device memory,
 * registers, internal state), so that a device saved and a device loaded
 * from that stream give the same value. The core calls it under the
 * migration lock with the device out of the running states; 0 or -errno.
 * Set once, before registration. Userspace reaches it through
 * uvfio_sim_state_digest().
 */
void uvfio_set_state_digest(struct vfio_device *device,
			    int (*digest)(struct vfio_device *device, u64 *out));

/* -------- the v1 migration region (uvfio only) -------- */

/*
 * uvfio offers the v1 migration region (VFIO_REGION_TYPE_MIGRATION_DEPRECATED,
 * removed from the kernel in 5.18) over any driver with mig_ops: the core
 * translates the region's device_state into MIG_DEVICE_STATE walks and
 * serves its data window from the same data streams a v2 user gets
 * (Documentation/migration-v1.md). pci_core exposes it as the device-specific
 * region VFIO_PCI_NUM_REGIONS + n; a driver does nothing.
 *
 * Layout: struct vfio_device_migration_info at offset 0, trapped; the data
 * window from UVFIO_MIG_V1_DATA_OFFSET to the end of the region, which is
 * memory and may be mmap()ed (sparse-mmap capability).
 */
#define UVFIO_MIG_V1_DATA_OFFSET 0x1000UL
#define UVFIO_MIG_V1_DATA_SIZE 0x100000UL
#define UVFIO_MIG_V1_REGION_SIZE (UVFIO_MIG_V1_DATA_OFFSET + UVFIO_MIG_V1_DATA_SIZE)

/*
 * Give a device with mig_ops the region's state (its data window's memory),
 * before registration. 0, -EINVAL (no mig_ops, or registered already) or
 * -errno of the window's allocation.
 */
int vfio_mig_v1_init(struct vfio_device *device);

/*
 * Region access at off (from the region's start): the migration_info
 * fields at their own width and offset, the data window at any width. The
 * byte count, or -errno.
 */
ssize_t vfio_mig_v1_rw(struct vfio_device *device, char __user *buf,
		       size_t count, u64 off, bool iswrite);

/* mmap of part of the data window, off from the region's start. 0 or -errno. */
int vfio_mig_v1_mmap(struct vfio_device *device, struct vm_area_struct *vma,
		     u64 off);

/*
 * The region's capabilities besides its type: the sparse-mmap area of the
 * data window and, with VFIO_MIGRATION_P2P, VFIO_REGION_INFO_CAP_MIG_NDMA.
 */
int vfio_mig_v1_add_capability(struct vfio_device *device,
			       struct vfio_info_cap *caps);

/* -------- migration FSM -------- */

/*
 * uvfio only (kernel drivers spell each state out): the states by their
 * short names, for a driver's arc tests and the core's next-step grid.
 * Bring them into a function or file with
 * `using namespace uvfio::mig_state;`; a kernel port writes
 * VFIO_DEVICE_STATE_STOP for STOP and so on.
 */
namespace uvfio::mig_state {
/* The enum's type, though PRE_COPY* may be int macros (uvfio/uapi/vfio.h). */
#define UVFIO_MIG_STATE(name)                                                \
	inline constexpr enum vfio_device_mig_state name =                   \
		static_cast<enum vfio_device_mig_state>(VFIO_DEVICE_STATE_##name)
UVFIO_MIG_STATE(ERROR);
UVFIO_MIG_STATE(STOP);
UVFIO_MIG_STATE(RUNNING);
UVFIO_MIG_STATE(STOP_COPY);
UVFIO_MIG_STATE(RESUMING);
UVFIO_MIG_STATE(RUNNING_P2P);
UVFIO_MIG_STATE(PRE_COPY);
UVFIO_MIG_STATE(PRE_COPY_P2P);
#undef UVFIO_MIG_STATE
} /* namespace uvfio::mig_state */

/*
 * uvfio only: what a state means, in one place for the core and drivers.
 * A value that is no state (above UVFIO_DEVICE_STATE_MAX) is none of them.
 */

/* The function runs and may start DMA of its own: RUNNING, PRE_COPY. */
static inline bool vfio_mig_state_running(int state)
{
	return state == VFIO_DEVICE_STATE_RUNNING ||
	       state == VFIO_DEVICE_STATE_PRE_COPY;
}

/* Pre-copy, with or without P2P DMA: PRE_COPY, PRE_COPY_P2P. */
static inline bool vfio_mig_state_precopy(int state)
{
	return state == VFIO_DEVICE_STATE_PRE_COPY ||
	       state == VFIO_DEVICE_STATE_PRE_COPY_P2P;
}

/* A saving data stream is read in it: STOP_COPY and the pre-copy states. */
static inline bool vfio_mig_state_saving(int state)
{
	return state == VFIO_DEVICE_STATE_STOP_COPY ||
	       vfio_mig_state_precopy(state);
}

/* The states with a data stream (a data_fd): saving ones and RESUMING. */
static inline bool vfio_mig_state_has_data(int state)
{
	return vfio_mig_state_saving(state) ||
	       state == VFIO_DEVICE_STATE_RESUMING;
}

/*
 * The enum's name without VFIO_DEVICE_STATE_ ("PRE_COPY_P2P"), as the arc
 * fault points spell states; NULL for a value that is no state.
 */
const char *vfio_mig_state_name(int state);

/*
 * The next state on the shortest path from cur_fsm to new_fsm that the
 * device supports (its migration_flags). -EINVAL when either state is
 * unsupported or there is no path (e.g. STOP_COPY back to PRE_COPY). The
 * arc's fault points fire here (Documentation/driver-guide.md): the
 * injected errno, with the device left in cur_fsm ("mig.arc.*") or
 * reported as ERROR by the core until a reset ("mig.error.*").
 */
int vfio_mig_get_next_state(struct vfio_device *device,
			    enum vfio_device_mig_state cur_fsm,
			    enum vfio_device_mig_state new_fsm,
			    enum vfio_device_mig_state *next_fsm);

/*
 * Compatibility helper, uvfio only (a kernel port replaces it with the
 * loop it stands for): step one arc at a time from *cur to target with
 * step(), updating *cur after each arc that succeeded (so a failure leaves
 * *cur at the state reached, or ERROR when a "mig.error.*" fault point
 * broke the device). Returns the data file of the last arc, NULL, or an
 * ERR_PTR: the step's error, -EINVAL for no path, or -EINVAL when an
 * intermediate arc returned a file (a driver bug; the file is released).
 */
struct file *vfio_mig_step_to_state(
	struct vfio_device *device, enum vfio_device_mig_state *cur,
	enum vfio_device_mig_state target,
	struct file *(*step)(struct vfio_device *device,
			     enum vfio_device_mig_state next));

/*
 * Compatibility stub, uvfio only: always 0. The arc fault points
 * ("mig.arc.CUR->NEXT", "mig.error.CUR->NEXT") fire in
 * vfio_mig_get_next_state(), which every driver's loop calls.
 */
int vfio_mig_arc_should_fail(enum vfio_device_mig_state cur,
			     enum vfio_device_mig_state next,
			     enum vfio_device_mig_state *fail_state);

#endif /* UVFIO_LINUX_VFIO_H */
