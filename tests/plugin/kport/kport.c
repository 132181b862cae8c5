// SPDX-License-Identifier: GPL-2.0-only
/*
 * kport - a VFIO variant driver written as for the kernel, from
 * Documentation/driver-guide.md alone, to find what a kernel port trips
 * on. It is compiled as C++ (c++ -x c++) against uvfio and must stay
 * kernel C: no namespaces, no std::, no new/delete, no casts the kernel
 * would not need. Lines that exist only because this is uvfio say
 * "uvfio:" and are the findings listed in the guide's "Porting to the
 * kernel".
 *
 * The device: 64 KiB of prefetchable memory behind BAR2 (no DMA, no
 * registers). Migration: STOP_COPY only; the stream is a header and the
 * memory, snapshotted at STOP -> STOP_COPY as mtty does.
 */
/* uvfio: <uvfio/linux/...>; <linux/...> is the system's uAPI here. */
#include <uvfio/linux/module.h>
#include <uvfio/linux/pci.h>
#include <uvfio/linux/slab.h>
#include <uvfio/linux/spinlock.h>
#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio.h>
#include <uvfio/linux/vfio_pci_core.h>

#define KPORT_MEM_SIZE 0x10000
#define KPORT_MAGIC 0x54524f50	/* "PORT" */

struct kport_hdr {
	u32 magic;
	u32 size;
};

struct kport_migration_file {
	struct file *filp;
	struct mutex lock;
	struct kport_device *kdev;
	bool disabled;
	size_t filled;		/* bytes in data */
	u8 data[sizeof(struct kport_hdr) + KPORT_MEM_SIZE];
};

struct kport_device {
	struct vfio_pci_core_device core_device;
	struct mutex state_mutex;
	enum vfio_device_mig_state mig_state;
	spinlock_t reset_lock;
	bool deferred_reset;
	struct kport_migration_file *saving_migf;
	struct kport_migration_file *resuming_migf;
};

static struct kport_device *kport_drvdata(struct pci_dev *pdev)
{
	/* C++: void * needs a cast */
	struct vfio_pci_core_device *core_device =
		(struct vfio_pci_core_device *)dev_get_drvdata(&pdev->dev);

	return container_of(core_device, struct kport_device, core_device);
}

static u8 *kport_mem(struct kport_device *kdev)
{
	return kdev->core_device.bars[2].map;	/* uvfio: BAR2's memory */
}

static void kport_disable_fd(struct kport_migration_file *migf)
{
	mutex_lock(&migf->lock);
	migf->disabled = true;
	migf->filled = 0;
	mutex_unlock(&migf->lock);
}

static void kport_disable_fds(struct kport_device *kdev)
{
	if (kdev->saving_migf) {
		kport_disable_fd(kdev->saving_migf);
		fput(kdev->saving_migf->filp);
		kdev->saving_migf = NULL;
	}
	if (kdev->resuming_migf) {
		kport_disable_fd(kdev->resuming_migf);
		fput(kdev->resuming_migf->filp);
		kdev->resuming_migf = NULL;
	}
}

static void kport_state_mutex_unlock(struct kport_device *kdev)
{
again:
	spin_lock(&kdev->reset_lock);
	if (kdev->deferred_reset) {
		kdev->deferred_reset = false;
		spin_unlock(&kdev->reset_lock);
		kdev->mig_state = VFIO_DEVICE_STATE_RUNNING;
		kport_disable_fds(kdev);
		goto again;
	}
	mutex_unlock(&kdev->state_mutex);
	spin_unlock(&kdev->reset_lock);
}

static int kport_release_file(struct inode *inode, struct file *filp)
{
	struct kport_migration_file *migf =
		(struct kport_migration_file *)filp->private_data; /* C++ */

	kport_disable_fd(migf);
	mutex_destroy(&migf->lock);
	kfree(migf);
	return 0;
}

static ssize_t kport_save_read(struct file *filp, char __user *buf,
			       size_t len, loff_t *pos)
{
	struct kport_migration_file *migf =
		(struct kport_migration_file *)filp->private_data; /* C++ */
	loff_t *off = &filp->f_pos;
	size_t n;

	if (pos)
		return -ESPIPE;

	guard(mutex)(&migf->lock);
	if (migf->disabled)
		return -ENODEV;
	if (*off >= (loff_t)migf->filled)
		return 0;
	n = min_t(size_t, len, migf->filled - *off);
	if (copy_to_user(buf, migf->data + *off, n))
		return -EFAULT;
	*off += n;
	return n;
}

static ssize_t kport_resume_write(struct file *filp, const char __user *buf,
				  size_t len, loff_t *pos)
{
	struct kport_migration_file *migf =
		(struct kport_migration_file *)filp->private_data; /* C++ */

	if (pos)
		return -ESPIPE;

	guard(mutex)(&migf->lock);
	if (migf->disabled)
		return -ENODEV;
	if (len > sizeof(migf->data) - migf->filled)
		return -EFBIG;
	if (copy_from_user(migf->data + migf->filled, buf, len))
		return -EFAULT;
	migf->filled += len;
	return len;
}

static const struct file_operations kport_save_fops = {
	.owner = THIS_MODULE,
	.read = kport_save_read,
	.compat_ioctl = compat_ptr_ioctl,
	.release = kport_release_file,
};

static const struct file_operations kport_resume_fops = {
	.owner = THIS_MODULE,
	.write = kport_resume_write,
	.release = kport_release_file,
};

static struct kport_migration_file *
kport_alloc_file(struct kport_device *kdev, const struct file_operations *fops,
		 int flags)
{
	struct kport_migration_file *migf;

	migf = (struct kport_migration_file *)kzalloc(sizeof(*migf),
						      GFP_KERNEL_ACCOUNT); /* C++ */
	if (!migf)
		return ERR_PTR(-ENOMEM);
	migf->filp = anon_inode_getfile("kport_mig", fops, migf, flags);
	if (IS_ERR(migf->filp)) {
		int ret = PTR_ERR(migf->filp);

		kfree(migf);
		return ERR_PTR(ret);
	}
	stream_open(migf->filp->f_inode, migf->filp);
	mutex_init(&migf->lock);
	migf->kdev = kdev;
	return migf;
}

static struct file *kport_save(struct kport_device *kdev)
{
	struct kport_migration_file *migf;
	struct kport_hdr hdr = { .magic = KPORT_MAGIC, .size = KPORT_MEM_SIZE };

	migf = kport_alloc_file(kdev, &kport_save_fops, O_RDONLY);
	if (IS_ERR(migf))
		return ERR_CAST(migf);
	memcpy(migf->data, &hdr, sizeof(hdr));
	memcpy(migf->data + sizeof(hdr), kport_mem(kdev), KPORT_MEM_SIZE);
	migf->filled = sizeof(migf->data);
	get_file(migf->filp);
	kdev->saving_migf = migf;
	return migf->filp;
}

static struct file *kport_resume(struct kport_device *kdev)
{
	struct kport_migration_file *migf;

	migf = kport_alloc_file(kdev, &kport_resume_fops, O_WRONLY);
	if (IS_ERR(migf))
		return ERR_CAST(migf);
	get_file(migf->filp);
	kdev->resuming_migf = migf;
	return migf->filp;
}

static int kport_load(struct kport_device *kdev)
{
	struct kport_migration_file *migf = kdev->resuming_migf;
	struct device *dev = &kdev->core_device.pdev->dev;
	struct kport_hdr hdr;

	guard(mutex)(&migf->lock);
	if (migf->filled != sizeof(migf->data)) {
		dev_err(dev, "resume: stream truncated (%zu bytes)\n",
			migf->filled);
		return -EINVAL;
	}
	memcpy(&hdr, migf->data, sizeof(hdr));
	if (hdr.magic != KPORT_MAGIC || hdr.size != KPORT_MEM_SIZE) {
		dev_err(dev, "resume: bad magic or size\n");
		return -EINVAL;
	}
	memcpy(kport_mem(kdev), migf->data + sizeof(hdr), KPORT_MEM_SIZE);
	return 0;
}

static struct file *
kport_step_device_state_locked(struct kport_device *kdev, u32 next)
{
	u32 cur = kdev->mig_state;	/* C++: "new" is a keyword */
	int ret;

	if (cur == VFIO_DEVICE_STATE_RUNNING && next == VFIO_DEVICE_STATE_STOP)
		return NULL;	/* no DMA to stop */
	if (cur == VFIO_DEVICE_STATE_STOP && next == VFIO_DEVICE_STATE_RUNNING)
		return NULL;
	if (cur == VFIO_DEVICE_STATE_STOP && next == VFIO_DEVICE_STATE_STOP_COPY)
		return kport_save(kdev);
	if (cur == VFIO_DEVICE_STATE_STOP_COPY && next == VFIO_DEVICE_STATE_STOP) {
		kport_disable_fds(kdev);
		return NULL;
	}
	if (cur == VFIO_DEVICE_STATE_STOP && next == VFIO_DEVICE_STATE_RESUMING)
		return kport_resume(kdev);
	if (cur == VFIO_DEVICE_STATE_RESUMING && next == VFIO_DEVICE_STATE_STOP) {
		ret = kport_load(kdev);
		if (ret)
			return ERR_PTR(ret);
		kport_disable_fds(kdev);
		return NULL;
	}

	/* vfio_mig_get_next_state() does not use arcs other than the above */
	WARN_ON(true);
	return ERR_PTR(-EINVAL);
}

static struct file *
kport_set_device_state(struct vfio_device *vdev,
		       enum vfio_device_mig_state new_state)
{
	struct kport_device *kdev =
		container_of(vdev, struct kport_device, core_device.vdev);
	enum vfio_device_mig_state next_state;
	struct file *res = NULL;
	int ret;

	mutex_lock(&kdev->state_mutex);
	while (new_state != kdev->mig_state) {
		ret = vfio_mig_get_next_state(vdev, kdev->mig_state,
					      new_state, &next_state);
		if (ret) {
			res = ERR_PTR(ret);
			break;
		}
		res = kport_step_device_state_locked(kdev, next_state);
		if (IS_ERR(res))
			break;
		kdev->mig_state = next_state;
		if (WARN_ON(res && new_state != kdev->mig_state)) {
			fput(res);
			res = ERR_PTR(-EINVAL);
			break;
		}
	}
	kport_state_mutex_unlock(kdev);
	return res;
}

static int kport_get_state(struct vfio_device *vdev,
			   enum vfio_device_mig_state *curr_state)
{
	struct kport_device *kdev =
		container_of(vdev, struct kport_device, core_device.vdev);

	mutex_lock(&kdev->state_mutex);
	*curr_state = kdev->mig_state;
	kport_state_mutex_unlock(kdev);
	return 0;
}

static int kport_get_data_size(struct vfio_device *vdev,
			       unsigned long *stop_copy_length)
{
	*stop_copy_length = sizeof(struct kport_hdr) + KPORT_MEM_SIZE;
	return 0;
}

static const struct vfio_migration_ops kport_pci_mig_ops = {
	.migration_set_state = kport_set_device_state,
	.migration_get_state = kport_get_state,
	.migration_get_data_size = kport_get_data_size,
};

static int kport_pci_init_dev(struct vfio_device *core_vdev)
{
	struct kport_device *kdev =
		container_of(core_vdev, struct kport_device, core_device.vdev);

	mutex_init(&kdev->state_mutex);
	spin_lock_init(&kdev->reset_lock);
	kdev->mig_state = VFIO_DEVICE_STATE_RUNNING;
	core_vdev->migration_flags = VFIO_MIGRATION_STOP_COPY;
	core_vdev->mig_ops = &kport_pci_mig_ops;
	return vfio_pci_core_init_dev(core_vdev);
}

static int kport_pci_open_device(struct vfio_device *core_vdev)
{
	struct kport_device *kdev =
		container_of(core_vdev, struct kport_device, core_device.vdev);
	int ret;

	ret = vfio_pci_core_enable(&kdev->core_device);
	if (ret)
		return ret;
	kdev->mig_state = VFIO_DEVICE_STATE_RUNNING;
	vfio_pci_core_finish_enable(&kdev->core_device);
	return 0;
}

static void kport_pci_close_device(struct vfio_device *core_vdev)
{
	struct kport_device *kdev =
		container_of(core_vdev, struct kport_device, core_device.vdev);

	mutex_lock(&kdev->state_mutex);
	kport_disable_fds(kdev);
	kport_state_mutex_unlock(kdev);
	vfio_pci_core_close_device(core_vdev);
}

static const struct vfio_device_ops kport_pci_ops = {
	.name = "kport-vfio-pci",
	.init = kport_pci_init_dev,
	.release = vfio_pci_core_release_dev,
	.open_device = kport_pci_open_device,
	.close_device = kport_pci_close_device,
	.read = vfio_pci_core_read,
	.write = vfio_pci_core_write,
	.ioctl = vfio_pci_core_ioctl,
	.mmap = vfio_pci_core_mmap,
	.request = vfio_pci_core_request,
	.device_feature = vfio_pci_core_ioctl_feature,
};

static int kport_pci_probe(struct pci_dev *pdev,
			   const struct pci_device_id *id)
{
	struct kport_device *kdev;
	int ret;

	kdev = vfio_alloc_device(kport_device, core_device.vdev, &pdev->dev,
				 &kport_pci_ops);
	if (IS_ERR(kdev))
		return PTR_ERR(kdev);

	/* uvfio: describe the function; the kernel reads its BARs. */
	kdev->core_device.device_id = 0x4b50;
	kdev->core_device.bars[2].size = KPORT_MEM_SIZE;
	kdev->core_device.bars[2].prefetch = true;

	dev_set_drvdata(&pdev->dev, &kdev->core_device);
	ret = vfio_pci_core_register_device(&kdev->core_device);
	if (ret)
		goto out_put_vdev;
	return 0;

out_put_vdev:
	vfio_put_device(&kdev->core_device.vdev);
	return ret;
}

static void kport_pci_remove(struct pci_dev *pdev)
{
	struct kport_device *kdev = kport_drvdata(pdev);

	vfio_pci_core_unregister_device(&kdev->core_device);
	vfio_put_device(&kdev->core_device.vdev);
}

static const struct pci_device_id kport_pci_table[] = {
	{ PCI_DRIVER_OVERRIDE_DEVICE_VFIO(0x1b36, 0x4b50) },
	{}
};

MODULE_DEVICE_TABLE(pci, kport_pci_table);

static void kport_pci_aer_reset_done(struct pci_dev *pdev)
{
	struct kport_device *kdev = kport_drvdata(pdev);

	spin_lock(&kdev->reset_lock);
	kdev->deferred_reset = true;
	if (!mutex_trylock(&kdev->state_mutex)) {
		spin_unlock(&kdev->reset_lock);
		return;
	}
	spin_unlock(&kdev->reset_lock);
	kport_state_mutex_unlock(kdev);
}

static const struct pci_error_handlers kport_err_handlers = {
	.reset_done = kport_pci_aer_reset_done,
	.error_detected = vfio_pci_core_aer_err_detected,
};

static struct pci_driver kport_pci_driver = {
	.name = KBUILD_MODNAME,
	.id_table = kport_pci_table,
	.spec_name = "kport",	/* uvfio: devices are made by spec name */
	.probe = kport_pci_probe,
	.remove = kport_pci_remove,
	.err_handler = &kport_err_handlers,
	.driver_managed_dma = true,
};

module_pci_driver(kport_pci_driver);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kport: a kernel-shaped VFIO variant driver");
