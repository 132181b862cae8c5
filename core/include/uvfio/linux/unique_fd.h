/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * UniqueFD: a move-only owner of a file descriptor. The destructor closes
 * it, so an fd can be neither leaked nor closed twice on any path.
 */
#ifndef UVFIO_LINUX_UNIQUE_FD_H
#define UVFIO_LINUX_UNIQUE_FD_H

#include <unistd.h>

#include <utility>

class UniqueFD
{
public:
	UniqueFD() = default;
	explicit UniqueFD(int fd) : fd_(fd) {}
	~UniqueFD() { reset(); }
	UniqueFD(UniqueFD &&other) noexcept : fd_(other.release()) {}
	UniqueFD &operator=(UniqueFD &&other) noexcept
	{
		reset(other.release());
		return *this;
	}
	UniqueFD(const UniqueFD &) = delete;
	UniqueFD &operator=(const UniqueFD &) = delete;

	int get() const { return fd_; }
	bool is_valid() const { return fd_ >= 0; }
	/* Give up ownership without closing. */
	int release() { return std::exchange(fd_, -1); }
	/* Close what is owned and own fd instead. */
	void reset(int fd = -1)
	{
		int old = std::exchange(fd_, fd);
		if (old >= 0)
			::close(old);
	}

private:
	int fd_ = -1;
};

#endif /* UVFIO_LINUX_UNIQUE_FD_H */
