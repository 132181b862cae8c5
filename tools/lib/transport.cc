// SPDX-License-Identifier: GPL-2.0-only
/* The two transports: the simulator's syscall surface and the kernel's. */
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include <uvfio/tools/transport.h>
#include <uvfio/uvfio.h>

namespace uvfio::tools {

namespace {

/* -1/errno to -errno, reading errno once, right after the call. */
template <typename T> T neg_errno(T ret)
{
	return ret < 0 ? static_cast<T>(-errno) : ret;
}

constexpr char PCI_DEVICES[] = "/sys/bus/pci/devices/";
constexpr char IOMMU_GROUP[] = "/iommu_group";

class SimTransport final : public Transport
{
public:
	const char *name() const override { return "sim"; }
	int open(const char *path, int) override
	{
		return neg_errno(uvfio_open(path));
	}
	/*
	 * The simulator has no sysfs, but it knows each device's group:
	 * answer the one link a VMM reads, with the kernel's relative target.
	 */
	int readlink(const char *path, std::string *target) override
	{
		std::string p = path;
		const size_t pre = sizeof(PCI_DEVICES) - 1;
		const size_t suf = sizeof(IOMMU_GROUP) - 1;
		if (p.size() <= pre + suf || p.compare(0, pre, PCI_DEVICES) ||
		    p.compare(p.size() - suf, suf, IOMMU_GROUP))
			return -ENOENT;
		std::string bdf = p.substr(pre, p.size() - pre - suf);
		if (bdf.find('/') != std::string::npos)
			return -ENOENT;
		int grp = uvfio_sim_iommu_group(bdf.c_str());
		if (grp < 0)
			return -ENOENT;
		*target = "../../../kernel/iommu_groups/" + std::to_string(grp);
		return 0;
	}
	int ioctl(int fd, unsigned long request, void *arg) override
	{
		return neg_errno(uvfio_ioctl(fd, request, arg));
	}
	ssize_t pread(int fd, void *buf, size_t count, off_t off) override
	{
		return neg_errno(uvfio_pread(fd, buf, count, off));
	}
	ssize_t pwrite(int fd, const void *buf, size_t count,
		       off_t off) override
	{
		return neg_errno(uvfio_pwrite(fd, buf, count, off));
	}
	ssize_t read(int fd, void *buf, size_t count) override
	{
		return neg_errno(uvfio_read(fd, buf, count));
	}
	ssize_t write(int fd, const void *buf, size_t count) override
	{
		return neg_errno(uvfio_write(fd, buf, count));
	}
	int close(int fd) override { return neg_errno(uvfio_close(fd)); }
	int mmap(int fd, off_t off, size_t len, int prot, void **addr) override
	{
		void *p = uvfio_mmap(nullptr, len, prot, MAP_SHARED, fd, off);
		if (p == MAP_FAILED)
			return -errno;
		*addr = p;
		return 0;
	}
};

int libc_ioctl(int fd, unsigned long request, void *arg)
{
	return ::ioctl(fd, request, arg);
}

int libc_open(const char *path, int flags)
{
	return ::open(path, flags);
}

class KernelTransport final : public Transport
{
public:
	explicit KernelTransport(const syscall_ops &ops) : ops_(ops)
	{
		if (!ops_.open)
			ops_.open = libc_open;
		if (!ops_.readlink)
			ops_.readlink = ::readlink;
		if (!ops_.ioctl)
			ops_.ioctl = libc_ioctl;
		if (!ops_.pread)
			ops_.pread = ::pread;
		if (!ops_.pwrite)
			ops_.pwrite = ::pwrite;
		if (!ops_.read)
			ops_.read = ::read;
		if (!ops_.write)
			ops_.write = ::write;
		if (!ops_.close)
			ops_.close = ::close;
		if (!ops_.mmap)
			ops_.mmap = ::mmap;
	}
	const char *name() const override { return "kernel"; }
	/* Not inherited by what the tools run (a shell, a child VMM). */
	int open(const char *path, int flags) override
	{
		return neg_errno(ops_.open(path, flags | O_CLOEXEC));
	}
	int readlink(const char *path, std::string *target) override
	{
		char buf[PATH_MAX];
		ssize_t n = ops_.readlink(path, buf, sizeof(buf));
		if (n < 0)
			return -errno;
		if (size_t(n) == sizeof(buf))
			return -ENAMETOOLONG;
		target->assign(buf, size_t(n));
		return 0;
	}
	int ioctl(int fd, unsigned long request, void *arg) override
	{
		return neg_errno(ops_.ioctl(fd, request, arg));
	}
	ssize_t pread(int fd, void *buf, size_t count, off_t off) override
	{
		return neg_errno(ops_.pread(fd, buf, count, off));
	}
	ssize_t pwrite(int fd, const void *buf, size_t count,
		       off_t off) override
	{
		return neg_errno(ops_.pwrite(fd, buf, count, off));
	}
	ssize_t read(int fd, void *buf, size_t count) override
	{
		return neg_errno(ops_.read(fd, buf, count));
	}
	ssize_t write(int fd, const void *buf, size_t count) override
	{
		return neg_errno(ops_.write(fd, buf, count));
	}
	int close(int fd) override { return neg_errno(ops_.close(fd)); }
	int mmap(int fd, off_t off, size_t len, int prot, void **addr) override
	{
		void *p = ops_.mmap(nullptr, len, prot, MAP_SHARED, fd, off);
		if (p == MAP_FAILED)
			return -errno;
		*addr = p;
		return 0;
	}

private:
	syscall_ops ops_;
};

} // namespace

std::unique_ptr<Transport> make_sim_transport()
{
	return std::make_unique<SimTransport>();
}

std::unique_ptr<Transport> make_kernel_transport(const syscall_ops &ops)
{
	return std::make_unique<KernelTransport>(ops);
}

} // namespace uvfio::tools
