/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What tools/lib's own files share (not installed): messages, timing,
 * VFIO_DEVICE_FEATURE buffers, endpoint I/O, and QEMU's recovery.
 */
#ifndef UVFIO_TOOLS_LIB_PRIV_H
#define UVFIO_TOOLS_LIB_PRIV_H

#include <sys/types.h>

#include <chrono>
#include <cstring>
#include <string>

#include <uvfio/tools/migration.h>
#include <uvfio/uapi/vfio.h>

namespace uvfio::tools::detail {

using clock_type = std::chrono::steady_clock;

inline double seconds_since(clock_type::time_point t)
{
	return std::chrono::duration<double>(clock_type::now() - t).count();
}

/* An errno (either sign) as text. */
inline std::string errstr(int err)
{
	return std::strerror(err < 0 ? -err : err);
}

/* The first reason wins: later failures are consequences of it. */
inline void say(std::string *why, const std::string &s)
{
	if (why && why->empty())
		*why = s;
}

/* A VFIO_DEVICE_FEATURE argument: header, then one payload T. */
template <typename T> struct Feature {
	alignas(8) unsigned char buf[sizeof(struct vfio_device_feature) +
				     sizeof(T)] = {};
	explicit Feature(__u32 flags)
	{
		hdr()->argsz = sizeof(buf);
		hdr()->flags = flags;
	}
	struct vfio_device_feature *hdr()
	{
		return reinterpret_cast<struct vfio_device_feature *>(buf);
	}
	T *data()
	{
		return reinterpret_cast<T *>(buf + sizeof(struct vfio_device_feature));
	}
};

/* Write all of buf to an endpoint, in chunks of at most chunk bytes. */
int write_all(const Endpoint &e, const char *buf, size_t len, size_t chunk);

/* One read from an endpoint, EINTR retried: bytes, 0 at EOF, or -errno. */
ssize_t read_some(const Endpoint &e, char *buf, size_t len);

/* QEMU's recovery: the fallback state, else a reset. */
void recover(Migration &mig, __u32 fallback);

} // namespace uvfio::tools::detail

#endif /* UVFIO_TOOLS_LIB_PRIV_H */
