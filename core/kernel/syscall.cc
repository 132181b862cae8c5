// SPDX-License-Identifier: GPL-2.0-only
/*
 * The syscall surface: libc-shaped entry points. Each looks the fd up, calls
 * the file operation with the kernel's conventions (0 or a count, or -errno)
 * and turns -errno into -1/errno exactly once, here.
 */
#include <cerrno>
#include <climits>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uvfio/linux/fs.h>
#include <uvfio/linux/vfio.h>
#include <uvfio/uvfio.h>

#include "bus.h"
#include "vfio.h"
#include "vfio_migration.h"

namespace {

/* The largest single transfer, as the kernel's MAX_RW_COUNT. */
constexpr size_t max_rw_count = INT_MAX & PAGE_MASK;

template <typename T> T fail(long err, T value)
{
	errno = static_cast<int>(-err);
	return value;
}

/*
 * Nothing throws across the C boundary: an allocation failure deep in the
 * core (a std::map insert, a std::string) becomes -ENOMEM here.
 */
template <typename F> long no_throw(F f)
{
	try {
		return f();
	} catch (...) {
		return -ENOMEM;
	}
}

/* Holds a reference to the file behind an fd for one call. */
class fd_ref
{
public:
	explicit fd_ref(int fd) : f_(fd >= 0 ? uvfio_fget(fd) : nullptr) {}
	~fd_ref()
	{
		if (f_)
			fput(f_);
	}
	fd_ref(const fd_ref &) = delete;
	fd_ref &operator=(const fd_ref &) = delete;
	struct file *get() const { return f_; }

private:
	struct file *f_;
};

int device_open(const char *name)
{
	std::string bdf;
	if (uvfio_parse_bdf(name, &bdf, nullptr, nullptr, nullptr))
		return -ENOENT;

	struct vfio_device *device = vfio_device_get_registered(bdf.c_str());
	if (IS_ERR(device))
		return static_cast<int>(PTR_ERR(device));
	/* Takes over the registration reference, success or not. */
	return vfio_device_fd_open(device, nullptr);
}

/*
 * read/write/pread/pwrite share the VFS checks: the file's mode, pread on a
 * stream (ESPIPE), a missing operation (EINVAL), the MAX_RW_COUNT clamp and
 * the position lock for the non-positional calls.
 */
ssize_t do_rw(int fd, void *buf, size_t count, loff_t *pos_in, bool iswrite)
{
	fd_ref ref(fd);
	struct file *f = ref.get();
	if (!f)
		return -EBADF;
	/* As ksys_pread64()/ksys_pwrite64(): a stream is ESPIPE before the
	 * file's mode is looked at (vfs_read()/vfs_write()). */
	if (pos_in && !(f->f_mode & (iswrite ? FMODE_PWRITE : FMODE_PREAD)))
		return -ESPIPE;
	if (!(f->f_mode & (iswrite ? FMODE_WRITE : FMODE_READ)))
		return -EBADF;
	if (iswrite ? !f->f_op->write : !f->f_op->read)
		return -EINVAL;
	if (!count)
		return 0;
	if (count > max_rw_count)
		count = max_rw_count;

	char *p = static_cast<char *>(buf);
	if (pos_in)
		return iswrite ? f->f_op->write(f, p, count, pos_in)
			       : f->f_op->read(f, p, count, pos_in);
	/* Streams have no position to protect (and may block in read). */
	if (f->f_mode & FMODE_STREAM)
		return iswrite ? f->f_op->write(f, p, count, nullptr)
			       : f->f_op->read(f, p, count, nullptr);
	mutex_guard g(&f->f_pos_lock);
	return iswrite ? f->f_op->write(f, p, count, &f->f_pos)
		       : f->f_op->read(f, p, count, &f->f_pos);
}

} // namespace

extern "C" {

int uvfio_sim_add(const char *spec)
{
	long ret = no_throw([&] { return uvfio_bus_add(spec); });
	return ret ? fail(ret, -1) : 0;
}

int uvfio_parse_size(const char *text, uint64_t *size)
{
	if (!text || !size)
		return fail(-EFAULT, -1);
	u64 v;
	int ret = uvfio_parse_u64(text, true, &v);
	if (ret)
		return fail(ret, -1);
	*size = v;
	return 0;
}

int uvfio_sim_remove(const char *bdf)
{
	long ret = no_throw([&] { return uvfio_bus_remove(bdf); });
	return ret ? fail(ret, -1) : 0;
}

int uvfio_open(const char *name)
{
	if (!name)
		return fail(-EFAULT, -1);
	long ret = no_throw([&] {
		if (!strcmp(name, "/dev/vfio/vfio"))
			return vfio_container_open();
		if (!strncmp(name, "/dev/vfio/", 10))
			return vfio_group_open(name + 10);
		return device_open(name);
	});
	return ret < 0 ? fail(ret, -1) : static_cast<int>(ret);
}

int uvfio_ioctl(int fd, unsigned long request, void *arg)
{
	fd_ref ref(fd);
	struct file *f = ref.get();
	if (!f)
		return fail(-EBADF, -1);
	if (!f->f_op->unlocked_ioctl)
		return fail(-ENOTTY, -1);
	/* The ioctl syscall takes an unsigned int command, as here. */
	long ret = no_throw([&] {
		return f->f_op->unlocked_ioctl(
			f, static_cast<unsigned int>(request),
			reinterpret_cast<unsigned long>(arg));
	});
	if (ret < 0)
		return fail(ret, -1);
	return static_cast<int>(ret);
}

ssize_t uvfio_pread(int fd, void *buf, size_t count, off_t offset)
{
	if (offset < 0)
		return fail(-EINVAL, (ssize_t)-1);
	loff_t pos = offset;
	ssize_t ret = do_rw(fd, buf, count, &pos, false);
	return ret < 0 ? fail(ret, (ssize_t)-1) : ret;
}

ssize_t uvfio_pwrite(int fd, const void *buf, size_t count, off_t offset)
{
	if (offset < 0)
		return fail(-EINVAL, (ssize_t)-1);
	loff_t pos = offset;
	ssize_t ret = do_rw(fd, const_cast<void *>(buf), count, &pos, true);
	return ret < 0 ? fail(ret, (ssize_t)-1) : ret;
}

ssize_t uvfio_read(int fd, void *buf, size_t count)
{
	ssize_t ret = do_rw(fd, buf, count, nullptr, false);
	return ret < 0 ? fail(ret, (ssize_t)-1) : ret;
}

ssize_t uvfio_write(int fd, const void *buf, size_t count)
{
	ssize_t ret = do_rw(fd, const_cast<void *>(buf), count, nullptr, true);
	return ret < 0 ? fail(ret, (ssize_t)-1) : ret;
}

void *uvfio_mmap(void *addr, size_t length, int prot, int flags, int fd,
		 off_t offset)
{
	fd_ref ref(fd);
	struct file *f = ref.get();
	if (!f)
		return fail(-EBADF, MAP_FAILED);
	if (!f->f_op->mmap)
		return fail(-ENODEV, MAP_FAILED);
	if (!length || offset < 0 || (offset & ~PAGE_MASK) ||
	    length > SIZE_MAX - PAGE_SIZE)
		return fail(-EINVAL, MAP_FAILED);

	struct vm_area_struct vma = {};
	vma.vm_start = 0;
	vma.vm_end = (length + PAGE_SIZE - 1) & PAGE_MASK;
	vma.vm_pgoff = static_cast<unsigned long>(offset) >> PAGE_SHIFT;
	vma.vm_flags = ((prot & PROT_READ) ? VM_READ : 0) |
		       ((prot & PROT_WRITE) ? VM_WRITE : 0) |
		       ((flags & MAP_SHARED) ? VM_SHARED : 0);
	vma.backing_fd = -1;
	int ret = f->f_op->mmap(f, &vma);
	if (ret)
		return fail(ret, MAP_FAILED);
	if (vma.backing_fd < 0)
		return fail(-EINVAL, MAP_FAILED);
	/* mmap(2) sets errno itself on failure. */
	void *map = mmap(addr, length, prot, flags, vma.backing_fd,
			 vma.backing_offset);
	if (map != MAP_FAILED && vma.vm_ops && vma.vm_ops->mapped) {
		/* The driver learns where, to see stores through it. */
		int saved = errno;
		vma.vm_start = reinterpret_cast<unsigned long>(map);
		vma.vm_end += vma.vm_start;
		vma.vm_ops->mapped(&vma);
		errno = saved;
	}
	return map;
}

int uvfio_sim_iommu_group(const char *bdf)
{
	if (!bdf)
		return fail(-EFAULT, -1);
	long ret = no_throw([&] {
		std::string name;
		if (uvfio_parse_bdf(bdf, &name, nullptr, nullptr, nullptr))
			return -ENOENT;
		return vfio_group_id_of(name.c_str());
	});
	return ret < 0 ? fail(ret, -1) : static_cast<int>(ret);
}

int uvfio_sim_state_digest(int fd, uint64_t *digest)
{
	if (!digest)
		return fail(-EFAULT, -1);
	fd_ref f(fd);
	if (!f.get())
		return fail(-EBADF, -1);
	long ret = no_throw([&] {
		if (f.get()->f_op != &vfio_device_fops)
			return -EINVAL;
		auto *df = static_cast<struct vfio_device_file *>(
			f.get()->private_data);
		u64 v = 0;
		int r = vfio_migration_state_digest(df->device, &v);
		if (!r)
			*digest = v;
		return r;
	});
	return ret ? fail(ret, -1) : 0;
}

int uvfio_sim_driver(unsigned int idx, const char **spec_name,
		     const char **name, const char **description)
{
	long ret = no_throw([&] {
		auto drivers = uvfio_bus_drivers();
		if (idx >= drivers.size())
			return -ENOENT;
		const struct pci_driver *d = drivers[idx];
		if (spec_name)
			*spec_name = d->spec_name;
		if (name)
			*name = d->name;
		if (description)
			*description = d->description ? d->description : "";
		return 0;
	});
	return ret ? fail(ret, -1) : 0;
}

int uvfio_close(int fd)
{
	int ret = uvfio_fd_close(fd);
	return ret ? fail(ret, -1) : 0;
}

int uvfio_dup(int oldfd)
{
	int ret = uvfio_fd_dup(oldfd, -1, 0, 0);
	return ret < 0 ? fail(ret, -1) : ret;
}

int uvfio_dup3(int oldfd, int newfd, int flags)
{
	if (newfd < 0)
		return fail(-EBADF, -1);
	int ret = uvfio_fd_dup(oldfd, newfd, 0, flags);
	return ret < 0 ? fail(ret, -1) : ret;
}

int uvfio_fcntl(int fd, int cmd, long arg)
{
	if (cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC) {
		if (!uvfio_fd_owned(fd))
			return fail(-EBADF, -1);
		return fcntl(fd, cmd, arg);
	}
	if (arg < 0 || arg > INT_MAX)
		return fail(-EINVAL, -1);
	int ret = uvfio_fd_dup(fd, -1, static_cast<int>(arg),
			       cmd == F_DUPFD_CLOEXEC ? O_CLOEXEC : 0);
	return ret < 0 ? fail(ret, -1) : ret;
}

int uvfio_is_fd(int fd)
{
	return uvfio_fd_owned(fd) ? 1 : 0;
}

} /* extern "C" */
