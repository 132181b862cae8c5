/* SPDX-License-Identifier: GPL-2.0-only */
/* Shared helpers for the unit tests. */
#ifndef UVFIO_TESTS_TEST_UTIL_H
#define UVFIO_TESTS_TEST_UTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include <cerrno>

#include <uvfio/uapi/vfio.h>
#include <uvfio/uvfio.h>

namespace uvfio_test {

/*
 * A VFIO_DEVICE_FEATURE argument: the header followed by one payload T,
 * argsz covering both (tests change it to probe the checks).
 */
template <typename T> struct FeatureArg {
	alignas(8) unsigned char buf[sizeof(struct vfio_device_feature) +
				     sizeof(T)] = {};

	explicit FeatureArg(__u32 flags)
	{
		f()->argsz = sizeof(buf);
		f()->flags = flags;
	}
	struct vfio_device_feature *f()
	{
		return reinterpret_cast<struct vfio_device_feature *>(buf);
	}
	T *d()
	{
		return reinterpret_cast<T *>(buf +
					     sizeof(struct vfio_device_feature));
	}
	/* The ioctl on fd: 0 or the errno. */
	int ioctl(int fd)
	{
		return uvfio_ioctl(fd, VFIO_DEVICE_FEATURE, f()) ? errno : 0;
	}
};

/* Open file descriptors of this process. */
inline int count_open_fds()
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while (struct dirent *e = readdir(d))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the DIR's own fd */
}

/* A unique BDF per call, so tests never collide. */
inline std::string next_bdf()
{
	static std::atomic<unsigned int> n{0};
	unsigned int v = n.fetch_add(1);
	char buf[32];
	std::snprintf(buf, sizeof(buf), "0000:%02x:%02x.%x", 0x10 + (v >> 8),
		      (v >> 3) & 0x1f, v & 7);
	return buf;
}

/* Captures log lines for the lifetime of the object. */
class LogCapture
{
public:
	LogCapture()
	{
		uvfio_set_log_fn(&LogCapture::sink, this);
		old_level_ = uvfio_set_log_level(UVFIO_LOG_DEBUG);
	}
	~LogCapture()
	{
		uvfio_set_log_fn(nullptr, nullptr);
		uvfio_set_log_level(old_level_);
	}
	LogCapture(const LogCapture &) = delete;
	LogCapture &operator=(const LogCapture &) = delete;

	std::vector<std::string> lines(int max_level = UVFIO_LOG_DEBUG)
	{
		std::lock_guard<std::mutex> l(lock_);
		std::vector<std::string> out;
		for (auto &[lvl, s] : lines_)
			if (lvl <= max_level)
				out.push_back(s);
		return out;
	}

	bool contains(const std::string &needle)
	{
		for (auto &s : lines())
			if (s.find(needle) != std::string::npos)
				return true;
		return false;
	}

private:
	static void sink(int level, const char *line, void *opaque)
	{
		auto *self = static_cast<LogCapture *>(opaque);
		std::lock_guard<std::mutex> l(self->lock_);
		self->lines_.emplace_back(level, line);
	}

	std::mutex lock_;
	std::vector<std::pair<int, std::string>> lines_;
	int old_level_;
};

/* A testdev device added for one test and removed after it. */
class SimDevice
{
public:
	explicit SimDevice(const std::string &extra = "")
		: bdf_(next_bdf())
	{
		std::string spec = "testdev,bdf=" + bdf_;
		if (!extra.empty())
			spec += "," + extra;
		added_ = uvfio_sim_add(spec.c_str()) == 0;
	}
	~SimDevice()
	{
		if (added_)
			uvfio_sim_remove(bdf_.c_str());
	}
	SimDevice(const SimDevice &) = delete;
	SimDevice &operator=(const SimDevice &) = delete;

	bool added() const { return added_; }
	const std::string &bdf() const { return bdf_; }
	const char *name() const { return bdf_.c_str(); }

private:
	std::string bdf_;
	bool added_;
};

/*
 * Whether this kernel lets userfaultfd write-protect shared memory (5.19+,
 * root or vm.unprivileged_userfaultfd): then simnic sees CPU stores through
 * a BAR mmap; otherwise it resends all of its memory.
 */
inline bool uffd_wp_shmem(void)
{
	int fd = int(syscall(SYS_userfaultfd, O_CLOEXEC));
	if (fd < 0)
		return false;
	struct uffdio_api api = {};
	api.api = UFFD_API;
	api.features = UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	bool ok = !ioctl(fd, UFFDIO_API, &api) &&
		  (api.features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
	close(fd);
	return ok;
}

} // namespace uvfio_test

#endif /* UVFIO_TESTS_TEST_UTIL_H */
