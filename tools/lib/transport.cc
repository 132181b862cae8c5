// SPDX-License-Identifier: GPL-2.0-only
/* The two transports: the simulator's syscall surface and the kernel's. */
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

#include <uvfio/tools/transport.h>
#include <uvfio/uvfio.h>

namespace uvfio::tools {

namespace {

/* -1/errno to -errno, reading errno once, right after the call. */
template <typename T> T neg_errno(T ret)
{
	return ret < 0 ? static_cast<T>(-errno) : ret;
}

class SimTransport final : public Transport
{
public:
	const char *name() const override { return "sim"; }
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
};

int libc_ioctl(int fd, unsigned long request, void *arg)
{
	return ::ioctl(fd, request, arg);
}

class KernelTransport final : public Transport
{
public:
	explicit KernelTransport(const syscall_ops &ops) : ops_(ops)
	{
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
	}
	const char *name() const override { return "kernel"; }
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
