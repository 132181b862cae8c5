// SPDX-License-Identifier: GPL-2.0-only
/* The helpers the conformance tests share; see fixture.h. */
#include "fixture.h"

namespace uvfio::conformance {

/* -------- log lines: the core's driver-bug reports fail the test -------- */

std::mutex g_log_lock;
std::vector<std::string> g_log;

void log_sink(int, const char *line, void *)
{
	std::lock_guard<std::mutex> l(g_log_lock);
	g_log.emplace_back(line);
}

/* -------- stream helpers, uAPI only -------- */

int read_stream(Transport &t, int fd, bytes *out, size_t chunk,
		__u64 limit)
{
	bytes buf(chunk);
	while (out->size() < limit) {
		ssize_t n = t.read(fd, buf.data(), buf.size());
		if (n == -EINTR)
			continue;
		if (n < 0)
			return int(n);
		if (n == 0)
			return 0;
		out->insert(out->end(), buf.begin(), buf.begin() + n);
	}
	return -EFBIG;
}

bool precopy_pause(int ret, bool real)
{
	return ret == -ENOMSG || (real && ret == 0);
}

int write_stream(Transport &t, int fd, const bytes &data,
		 size_t chunk)
{
	for (size_t off = 0; off < data.size();) {
		size_t n = std::min(chunk, data.size() - off);
		ssize_t w = t.write(fd, data.data() + off, n);
		if (w == -EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? int(w) : -EIO;
		off += static_cast<size_t>(w);
	}
	return 0;
}

int precopy_info(Transport &t, int fd, struct vfio_precopy_info *info,
		 __u32 argsz)
{
	*info = {};
	info->argsz = argsz;
	return t.ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, info);
}

bool bit(const std::vector<__u64> &bm, __u64 i)
{
	return bm[i / 64] >> (i % 64) & 1;
}

} // namespace uvfio::conformance
