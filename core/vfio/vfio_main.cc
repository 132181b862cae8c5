// SPDX-License-Identifier: GPL-2.0-only
/*
 * The vfio_device core: allocation and lifetime, registration, device sets,
 * open/close, and the device fd's file operations with the uAPI dispatcher.
 * The counterpart of drivers/vfio/vfio_main.c.
 *
 * Over 600 lines on purpose: it stays one file, as the kernel's is, so
 * what a reader finds in vfio_main.c is here too. The migration and DMA
 * logging features, the FSM and the iova range helpers, which the kernel
 * also keeps there, are in their own vfio_*.cc files.
 */
#include <atomic>
#include <cerrno>
#include <map>
#include <mutex>
#include <string>

#include <uvfio/linux/fault-inject.h>
#include <uvfio/linux/slab.h>
#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio.h>

#include "vfio.h"
#include "vfio_migration.h"
#include "vfio_pfnmap.h"

DEFINE_FAULT_POINT(device_open, "device.open", EIO,
		   "the first open of a device: the driver's open_device "
		   "fails")

/* -------- registry of registered devices, by parent name -------- */

namespace {

struct vfio_registry {
	std::mutex lock;
	std::map<std::string, struct vfio_device *> devices;
	/* Device sets by set_id; a set lives while it has members. */
	std::map<void *, struct vfio_device_set *> dev_sets;
	std::atomic<unsigned int> next_index{0};
	std::atomic<long> request_interval_ms{10 * 1000};
};

vfio_registry &registry()
{
	static vfio_registry *r = new vfio_registry;
	return *r;
}

} // namespace

void vfio_set_unregister_request_interval_ms(long ms)
{
	registry().request_interval_ms.store(ms > 0 ? ms : 1);
}

/* -------- device sets -------- */

int vfio_assign_device_set(struct vfio_device *device, void *set_id)
{
	if (!set_id || WARN_ON(device->dev_set))
		return -EINVAL;

	vfio_registry &r = registry();
	struct vfio_device_set *dev_set;
	{
		std::lock_guard<std::mutex> l(r.lock);
		auto it = r.dev_sets.find(set_id);
		if (it != r.dev_sets.end()) {
			dev_set = it->second;
		} else {
			dev_set = new (std::nothrow) vfio_device_set;
			if (!dev_set)
				return -ENOMEM;
			dev_set->set_id = set_id;
			r.dev_sets.emplace(set_id, dev_set);
		}
		/* Membership changes under both locks: walkers hold either. */
		mutex_lock(&dev_set->lock);
		device->dev_set = dev_set;
		list_add_tail(&device->dev_set_list, &dev_set->device_list);
		dev_set->device_count++;
		mutex_unlock(&dev_set->lock);
	}
	return 0;
}

static void vfio_release_device_set(struct vfio_device *device)
{
	struct vfio_device_set *dev_set = device->dev_set;
	if (!dev_set)
		return;

	vfio_registry &r = registry();
	bool last;
	{
		std::lock_guard<std::mutex> l(r.lock);
		mutex_lock(&dev_set->lock);
		list_del(&device->dev_set_list);
		last = --dev_set->device_count == 0;
		mutex_unlock(&dev_set->lock);
		if (last)
			r.dev_sets.erase(dev_set->set_id);
	}
	device->dev_set = nullptr;
	if (last)
		delete dev_set;
}

unsigned int vfio_device_set_open_count(struct vfio_device_set *dev_set)
{
	struct vfio_device *cur;
	unsigned int open_count = 0;

	lockdep_assert_held(&dev_set->lock);
	list_for_each_entry(cur, &dev_set->device_list, dev_set_list)
		open_count += cur->open_count;
	return open_count;
}

struct vfio_device *vfio_find_device_in_devset(struct vfio_device_set *dev_set,
					       struct device *dev)
{
	struct vfio_device *cur;

	lockdep_assert_held(&dev_set->lock);
	list_for_each_entry(cur, &dev_set->device_list, dev_set_list)
		if (cur->dev == dev)
			return cur;
	return nullptr;
}

/* -------- allocation and lifetime -------- */

static void vfio_device_release(struct device *dev)
{
	struct vfio_device *device = container_of(dev, struct vfio_device,
						  device);

	vfio_release_device_set(device);
	if (device->ops->release)
		device->ops->release(device);
	delete device->priv;
	device->priv = nullptr;
	device->uvfio_free(device->uvfio_owner);
}

int vfio_init_device(struct vfio_device *device, struct device *dev,
		     const struct vfio_device_ops *ops)
{
	int ret;

	if (!ops || !device->uvfio_free) {
		WARN_ON(true);
		return -EINVAL;
	}

	device->dev = dev;
	device->ops = ops;
	device->priv = new (std::nothrow) vfio_device_private;
	if (!device->priv) {
		ret = -ENOMEM;
		goto out_free;
	}
	device->index = registry().next_index.fetch_add(1);
	device->device.name = "vfio" + std::to_string(device->index);
	init_completion(&device->comp);
	INIT_LIST_HEAD(&device->dev_set_list);

	if (ops->init) {
		ret = ops->init(device);
		if (ret)
			goto out_priv;
	}

	/* From here the last put_device() runs ops->release and frees. */
	device_initialize(&device->device);
	device->device.release = vfio_device_release;
	return 0;

out_priv:
	/* init failed: balance only what we did; ops->release is not called. */
	vfio_release_device_set(device);
	delete device->priv;
	device->priv = nullptr;
out_free:
	device->uvfio_free(device->uvfio_owner);
	return ret;
}

void vfio_put_device(struct vfio_device *device)
{
	put_device(&device->device);
}

/* -------- registration -------- */

static int vfio_device_check_ops(struct vfio_device *device)
{
	const struct vfio_migration_ops *mig = device->mig_ops;
	const struct vfio_log_ops *log = device->log_ops;

	if (mig) {
		if (!mig->migration_set_state || !mig->migration_get_state ||
		    !mig->migration_get_data_size) {
			dev_err(device->dev,
				"mig_ops lacks a mandatory callback");
			return -EINVAL;
		}
		if (!(device->migration_flags & VFIO_MIGRATION_STOP_COPY)) {
			dev_err(device->dev, "mig_ops without "
					     "VFIO_MIGRATION_STOP_COPY");
			return -EINVAL;
		}
		if (device->migration_flags &
		    ~(u32)(VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P |
			   VFIO_MIGRATION_PRE_COPY)) {
			dev_err(device->dev, "unknown migration_flags 0x%x",
				device->migration_flags);
			return -EINVAL;
		}
	} else if (device->migration_flags) {
		dev_err(device->dev, "migration_flags without mig_ops");
		return -EINVAL;
	}
	if (log && (!log->log_start || !log->log_stop ||
		    !log->log_read_and_clear)) {
		dev_err(device->dev, "log_ops lacks a mandatory callback");
		return -EINVAL;
	}
	return 0;
}

static int __vfio_register_dev(struct vfio_device *device,
			       enum vfio_group_type type)
{
	int ret;

	if (WARN_ON(!device->dev || !device->priv))
		return -EINVAL;
	if (device->priv->registered)
		return -EBUSY;

	ret = vfio_device_check_ops(device);
	if (ret)
		return ret;

	/* A device not in a set is in a set of its own. */
	if (!device->dev_set) {
		ret = vfio_assign_device_set(device, device);
		if (ret)
			return ret;
	}

	device->priv->type = type;
	vfio_registry &r = registry();
	{
		std::lock_guard<std::mutex> l(r.lock);
		if (r.devices.count(device->dev->name)) {
			dev_err(device->dev, "a vfio device is already "
					     "registered for this device");
			return -EEXIST;
		}
		/* Users can be counted from the moment it is visible. */
		refcount_set(&device->refcount, 1);
		init_completion(&device->comp);
		r.devices.emplace(device->dev->name, device);
		device->priv->registered = true;
	}
	/* Each device is alone in its IOMMU group, numbered by its index. */
	ret = vfio_group_register(device);
	if (ret) {
		{
			std::lock_guard<std::mutex> l(r.lock);
			r.devices.erase(device->dev->name);
			device->priv->registered = false;
		}
		return ret;
	}
	/* The registry's pointer keeps the object alive while registered. */
	get_device(&device->device);
	dev_dbg(device->dev, "registered as %s (%s)", dev_name(&device->device),
		device->ops->name ? device->ops->name : "?");
	return 0;
}

int vfio_register_group_dev(struct vfio_device *device)
{
	return __vfio_register_dev(device, VFIO_IOMMU);
}

int vfio_register_emulated_iommu_dev(struct vfio_device *device)
{
	return __vfio_register_dev(device, VFIO_EMULATED_IOMMU);
}

struct vfio_device *vfio_device_get_registered(const char *name)
{
	vfio_registry &r = registry();
	std::lock_guard<std::mutex> l(r.lock);
	auto it = r.devices.find(name);
	if (it == r.devices.end())
		return static_cast<struct vfio_device *>(ERR_PTR(-ENOENT));
	if (!refcount_inc_not_zero(&it->second->refcount))
		return static_cast<struct vfio_device *>(ERR_PTR(-ENODEV));
	return it->second;
}

void vfio_device_put_registration(struct vfio_device *device)
{
	if (refcount_dec_and_test(&device->refcount))
		complete(&device->comp);
}

void vfio_unregister_group_dev(struct vfio_device *device)
{
	unsigned int i = 0;
	bool done;

	if (WARN_ON(!device->priv || !device->priv->registered))
		return;

	/* No new user can find the device from here on. */
	{
		vfio_registry &r = registry();
		std::lock_guard<std::mutex> l(r.lock);
		r.devices.erase(device->dev->name);
	}

	/* Drop the registration's own reference, then wait for the users. */
	vfio_device_put_registration(device);
	done = try_wait_for_completion(&device->comp);
	while (!done) {
		if (device->ops->request)
			device->ops->request(device, i++);
		done = wait_for_completion_timeout_ms(
			       &device->comp,
			       registry().request_interval_ms.load()) > 0;
	}
	device->priv->registered = false;
	/*
	 * Its memory is no longer reachable by other devices' DMA: the
	 * IOMMU mappings of it stay (the user unmaps them) and fault.
	 */
	vfio_pfnmap_forget_device(device);
	vfio_group_unregister(device);
	/* Balances the get_device() of __vfio_register_dev(). */
	put_device(&device->device);
}

/* -------- open and close -------- */

int vfio_device_open(struct vfio_device *device)
{
	int ret = 0;

	mutex_lock(&device->dev_set->lock);
	device->open_count++;
	if (device->open_count == 1) {
		/* As the driver's open_device failing: nothing to undo. */
		ret = should_fail(&device_open);
		if (!ret && device->ops->open_device)
			ret = device->ops->open_device(device);
		if (ret)
			device->open_count--;
	}
	mutex_unlock(&device->dev_set->lock);
	return ret;
}

void vfio_device_close(struct vfio_device *device)
{
	mutex_lock(&device->dev_set->lock);
	if (device->open_count == 1) {
		/* The migration core ends any live data stream first. */
		vfio_migration_device_close(device);
		if (device->ops->close_device)
			device->ops->close_device(device);
	}
	device->open_count--;
	mutex_unlock(&device->dev_set->lock);
}

int vfio_device_fd_open(struct vfio_device *device, struct file *group_file)
{
	int ret = vfio_device_open(device);
	if (ret)
		goto err_put_registration;

	{
		auto *df = new (std::nothrow) vfio_device_file{device, nullptr};
		if (!df) {
			ret = -ENOMEM;
			goto err_close;
		}
		struct file *filp = anon_inode_getfile("[vfio-device]",
						       &vfio_device_fops, df,
						       O_RDWR);
		if (IS_ERR(filp)) {
			delete df;
			ret = static_cast<int>(PTR_ERR(filp));
			goto err_close;
		}
		/*
		 * From here the file's release balances open, registration
		 * and the group reference. The fd is a memfd: a real, unique
		 * number that is not mistaken for an eventfd or a data stream.
		 */
		if (group_file) {
			df->group_file = get_file(group_file);
			vfio_group_device_opened(group_file);
		}
		int real_fd = memfd_create("[vfio-device]", MFD_CLOEXEC);
		if (real_fd < 0)
			real_fd = -errno;
		return uvfio_fd_install(filp, real_fd);
	}

err_close:
	vfio_device_close(device);
err_put_registration:
	vfio_device_put_registration(device);
	return ret;
}

/* -------- uAPI helpers -------- */

int vfio_check_feature(u32 flags, size_t argsz, u32 supported_ops,
		       size_t minsz)
{
	if ((flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET)) &
	    ~supported_ops)
		return -EINVAL;
	if (flags & VFIO_DEVICE_FEATURE_PROBE)
		return 0;
	/* Without PROBE the caller must ask for exactly one operation. */
	if (!(flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET)))
		return -EINVAL;
	if (argsz < minsz)
		return -EINVAL;
	return 1;
}

struct vfio_info_cap_header *vfio_info_cap_add(struct vfio_info_cap *caps,
					       size_t size, u16 id, u16 version)
{
	/* Keep every header 8-byte aligned in the chain. */
	size_t aligned = (size + 7) & ~static_cast<size_t>(7);
	if (size < sizeof(struct vfio_info_cap_header) ||
	    caps->size + aligned < caps->size)
		return static_cast<struct vfio_info_cap_header *>(
			ERR_PTR(-EINVAL));

	void *buf = krealloc(caps->buf, caps->size + aligned, GFP_KERNEL);
	if (!buf) {
		kfree(caps->buf);
		caps->buf = nullptr;
		caps->size = 0;
		return static_cast<struct vfio_info_cap_header *>(
			ERR_PTR(-ENOMEM));
	}
	caps->buf = static_cast<struct vfio_info_cap_header *>(buf);
	char *base = static_cast<char *>(buf);
	auto *header =
		reinterpret_cast<struct vfio_info_cap_header *>(base + caps->size);
	std::memset(header, 0, aligned);
	header->id = id;
	header->version = version;

	/* Link the previous tail to the new capability. */
	if (caps->size) {
		size_t off = 0;
		for (;;) {
			auto *h = reinterpret_cast<struct vfio_info_cap_header *>(
				base + off);
			if (!h->next) {
				h->next = static_cast<u32>(caps->size);
				break;
			}
			off = h->next;
		}
	}
	caps->size += aligned;
	return header;
}

void vfio_info_cap_shift(struct vfio_info_cap *caps, size_t offset)
{
	char *base = reinterpret_cast<char *>(caps->buf);
	size_t off = 0;

	if (!caps->size)
		return;
	/* Links are relative to the buffer start until shifted. */
	for (;;) {
		auto *h = reinterpret_cast<struct vfio_info_cap_header *>(base +
									   off);
		if (!h->next)
			break;
		off = h->next;
		h->next = static_cast<u32>(h->next + offset);
	}
}

int vfio_info_add_capability(struct vfio_info_cap *caps,
			     struct vfio_info_cap_header *cap, size_t size)
{
	struct vfio_info_cap_header *header =
		vfio_info_cap_add(caps, size, cap->id, cap->version);
	if (IS_ERR(header))
		return static_cast<int>(PTR_ERR(header));
	std::memcpy(header + 1, cap + 1, size - sizeof(*header));
	return 0;
}

int vfio_set_irqs_validate_and_prepare(struct vfio_irq_set *hdr, int num_irqs,
				       int max_irq_type, size_t *data_size)
{
	size_t minsz = offsetofend(struct vfio_irq_set, count);
	size_t size;

	if (hdr->argsz < minsz || hdr->index >= (u32)max_irq_type ||
	    hdr->count >= (U32_MAX - hdr->start) ||
	    (hdr->flags & ~(u32)(VFIO_IRQ_SET_DATA_TYPE_MASK |
				 VFIO_IRQ_SET_ACTION_TYPE_MASK)))
		return -EINVAL;

	if (data_size)
		*data_size = 0;

	if (num_irqs < 0 || hdr->start >= (u32)num_irqs ||
	    hdr->start + hdr->count > (u32)num_irqs)
		return -EINVAL;

	switch (hdr->flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
	case VFIO_IRQ_SET_DATA_NONE:
		size = 0;
		break;
	case VFIO_IRQ_SET_DATA_BOOL:
		size = sizeof(u8);
		break;
	case VFIO_IRQ_SET_DATA_EVENTFD:
		size = sizeof(s32);
		break;
	default:
		return -EINVAL;
	}

	if (size) {
		if (hdr->argsz - minsz < hdr->count * size)
			return -EINVAL;
		if (!data_size)
			return -EINVAL;
		*data_size = hdr->count * size;
	}
	return 0;
}

/* -------- the device fd -------- */

static long vfio_get_region_info(struct vfio_device *device,
				 struct vfio_region_info __user *arg)
{
	size_t minsz = offsetofend(struct vfio_region_info, offset);
	struct vfio_region_info info = {};
	struct vfio_info_cap caps = {nullptr, 0};
	long ret;

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;

	/* The driver sees only the input fields. */
	u32 argsz = info.argsz;
	u32 index = info.index;
	info = {};
	info.argsz = argsz;
	info.index = index;
	ret = device->ops->get_region_info_caps(device, &info, &caps);
	if (ret)
		goto out_free;

	if (caps.size) {
		info.flags |= VFIO_REGION_INFO_FLAG_CAPS;
		if (info.argsz < sizeof(info) + caps.size) {
			/* Too small: tell the caller the size it needs. */
			info.argsz = static_cast<u32>(sizeof(info) + caps.size);
			info.cap_offset = 0;
		} else {
			vfio_info_cap_shift(&caps, sizeof(info));
			if (copy_to_user(arg + 1, caps.buf, caps.size)) {
				ret = -EFAULT;
				goto out_free;
			}
			info.cap_offset = sizeof(info);
		}
	}
	if (copy_to_user(arg, &info, minsz))
		ret = -EFAULT;
out_free:
	kfree(caps.buf);
	return ret;
}

static long vfio_ioctl_device_feature(struct vfio_device *device,
				      struct vfio_device_feature __user *arg)
{
	size_t minsz = offsetofend(struct vfio_device_feature, flags);
	struct vfio_device_feature feature;

	if (copy_from_user(&feature, arg, minsz))
		return -EFAULT;
	if (feature.argsz < minsz)
		return -EINVAL;
	if (feature.flags &
	    ~(u32)(VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_SET |
		   VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_PROBE))
		return -EINVAL;
	/* GET and SET together only make sense as a PROBE of both. */
	if (!(feature.flags & VFIO_DEVICE_FEATURE_PROBE) &&
	    (feature.flags & VFIO_DEVICE_FEATURE_SET) &&
	    (feature.flags & VFIO_DEVICE_FEATURE_GET))
		return -EINVAL;

	u32 flags = feature.flags;
	size_t argsz = feature.argsz - minsz;
	void __user *data = reinterpret_cast<char *>(arg) + minsz;

	switch (flags & VFIO_DEVICE_FEATURE_MASK) {
	case VFIO_DEVICE_FEATURE_MIGRATION:
		return vfio_ioctl_device_feature_migration(device, flags, data,
							   argsz);
	case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
		return vfio_ioctl_device_feature_mig_device_state(device, flags,
								  data, argsz);
	case VFIO_DEVICE_FEATURE_MIG_DATA_SIZE:
		return vfio_ioctl_device_feature_migration_data_size(
			device, flags, data, argsz);
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
		return vfio_ioctl_device_feature_logging_start(device, flags,
							       data, argsz);
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
		return vfio_ioctl_device_feature_logging_stop(device, flags,
							      data, argsz);
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
		return vfio_ioctl_device_feature_logging_report(device, flags,
								data, argsz);
	default:
		if (unlikely(!device->ops->device_feature))
			return -ENOTTY;
		return device->ops->device_feature(device, flags, data, argsz);
	}
}

static long vfio_device_fops_unl_ioctl(struct file *filp, unsigned int cmd,
				       unsigned long arg)
{
	auto *df = static_cast<struct vfio_device_file *>(filp->private_data);
	struct vfio_device *device = df->device;
	void __user *uptr = reinterpret_cast<void __user *>(arg);

	switch (cmd) {
	case VFIO_DEVICE_FEATURE:
		return vfio_ioctl_device_feature(
			device, static_cast<struct vfio_device_feature *>(uptr));
	case VFIO_DEVICE_RESET:
		if (device->mig_ops && device->ops->ioctl)
			return vfio_migration_device_reset(device, cmd, arg);
		break;
	case VFIO_DEVICE_GET_REGION_INFO:
		if (device->ops->get_region_info_caps)
			return vfio_get_region_info(
				device, static_cast<struct vfio_region_info *>(uptr));
		break;
	default:
		break;
	}
	if (unlikely(!device->ops->ioctl))
		return -EINVAL;
	return device->ops->ioctl(device, cmd, arg);
}

static ssize_t vfio_device_fops_read(struct file *filp, char __user *buf,
				     size_t count, loff_t *ppos)
{
	auto *df = static_cast<struct vfio_device_file *>(filp->private_data);
	struct vfio_device *device = df->device;

	if (unlikely(!device->ops->read))
		return -EINVAL;
	return device->ops->read(device, buf, count, ppos);
}

static ssize_t vfio_device_fops_write(struct file *filp, const char __user *buf,
				      size_t count, loff_t *ppos)
{
	auto *df = static_cast<struct vfio_device_file *>(filp->private_data);
	struct vfio_device *device = df->device;

	if (unlikely(!device->ops->write))
		return -EINVAL;
	return device->ops->write(device, buf, count, ppos);
}

static int vfio_device_fops_mmap(struct file *filp, struct vm_area_struct *vma)
{
	auto *df = static_cast<struct vfio_device_file *>(filp->private_data);
	struct vfio_device *device = df->device;

	if (unlikely(!device->ops->mmap))
		return -EINVAL;
	int ret = device->ops->mmap(device, vma);
	if (ret)
		return ret;
	/* Device memory: type1's MAP_DMA must find it again by its file. */
	return vfio_pfnmap_record(device, vma);
}

static int vfio_device_fops_release(struct inode *, struct file *filp)
{
	auto *df = static_cast<struct vfio_device_file *>(filp->private_data);
	struct vfio_device *device = df->device;

	vfio_device_close(device);
	/* Balances vfio_device_get_registered() in the open path. */
	vfio_device_put_registration(device);
	if (df->group_file) {
		vfio_group_device_closed(df->group_file);
		fput(df->group_file);
	}
	delete df;
	return 0;
}

const struct file_operations vfio_device_fops = {
	.read = vfio_device_fops_read,
	.write = vfio_device_fops_write,
	.unlocked_ioctl = vfio_device_fops_unl_ioctl,
	.mmap = vfio_device_fops_mmap,
	.release = vfio_device_fops_release,
};
