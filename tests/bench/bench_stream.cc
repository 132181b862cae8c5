// SPDX-License-Identifier: GPL-2.0-only
/*
 * uvfio-bench-stream: device state from one device's data fd into another
 * device's resume fd, the way a plain client does it: read() 1 MiB from the
 * source's STOP_COPY fd, write() it all to the destination's RESUMING fd,
 * until end of stream. Reports GB/s and the ratio to a memcpy of the same
 * size measured in the same run (medians over --runs), then checks that the
 * destination's device memory equals the source's.
 *
 * This is the plain path; the io_uring engine of tools/lib aims higher.
 */
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <uvfio/uapi/vfio.h>
#include <uvfio/uvfio.h>

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t)
{
	return std::chrono::duration<double>(clock_type::now() - t).count();
}

double median(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

int set_state(int fd, unsigned state, int *data_fd)
{
	alignas(8) unsigned char buf[sizeof(struct vfio_device_feature) +
				     sizeof(struct vfio_device_feature_mig_state)] = {};
	auto *f = reinterpret_cast<struct vfio_device_feature *>(buf);
	auto *m = reinterpret_cast<struct vfio_device_feature_mig_state *>(
		buf + sizeof(*f));
	f->argsz = sizeof(buf);
	f->flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	m->device_state = state;
	if (uvfio_ioctl(fd, VFIO_DEVICE_FEATURE, f))
		return -errno;
	if (data_fd)
		*data_fd = m->data_fd;
	return 0;
}

constexpr off_t bar2 = static_cast<off_t>(VFIO_PCI_BAR2_REGION_INDEX) << 40;

struct Device {
	std::string bdf;
	int fd = -1;
	unsigned char *mem = nullptr;
	size_t size = 0;

	int open(const std::string &b, size_t mem_size)
	{
		bdf = b;
		size = mem_size;
		std::string spec = "testdev,bdf=" + bdf + ",mig=stop_copy,state=4K,mem=" +
				   std::to_string(mem_size);
		if (uvfio_sim_add(spec.c_str()))
			return -errno;
		fd = uvfio_open(bdf.c_str());
		if (fd < 0)
			return -errno;
		void *p = uvfio_mmap(nullptr, size, PROT_READ | PROT_WRITE,
				     MAP_SHARED, fd, bar2);
		if (p == MAP_FAILED)
			return -errno;
		mem = static_cast<unsigned char *>(p);
		return 0;
	}
	~Device()
	{
		if (mem)
			munmap(mem, size);
		if (fd >= 0)
			uvfio_close(fd);
		if (!bdf.empty())
			uvfio_sim_remove(bdf.c_str());
	}
};

/* One migration: returns seconds for the stream loop, or < 0 on error. */
double stream_once(Device &src, Device &dst, size_t buf_size, size_t *bytes)
{
	int sfd = -1, rfd = -1;
	if (set_state(src.fd, VFIO_DEVICE_STATE_RUNNING, nullptr) ||
	    set_state(dst.fd, VFIO_DEVICE_STATE_RUNNING, nullptr) ||
	    set_state(dst.fd, VFIO_DEVICE_STATE_RESUMING, &rfd) ||
	    set_state(src.fd, VFIO_DEVICE_STATE_STOP_COPY, &sfd)) {
		fmt::print(stderr, "state change failed: {}\n", strerror(errno));
		return -1;
	}
	std::vector<char> buf(buf_size);
	size_t total = 0;
	auto t = clock_type::now();
	for (;;) {
		ssize_t n = read(sfd, buf.data(), buf.size());
		if (n < 0) {
			fmt::print(stderr, "read: {}\n", strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(rfd, buf.data() + off, n - off);
			if (w < 0) {
				fmt::print(stderr, "write: {}\n", strerror(errno));
				return -1;
			}
			off += w;
		}
		total += static_cast<size_t>(n);
	}
	double s = seconds_since(t);
	int ret = set_state(dst.fd, VFIO_DEVICE_STATE_STOP, nullptr);
	set_state(src.fd, VFIO_DEVICE_STATE_STOP, nullptr);
	uvfio_close(sfd);
	uvfio_close(rfd);
	if (ret) {
		fmt::print(stderr, "RESUMING -> STOP failed: {}\n", strerror(-ret));
		return -1;
	}
	*bytes = total;
	return s;
}

} // namespace

int main(int argc, char **argv)
{
	CLI::App app{"Stream device state between two simulated devices with "
		     "read()/write() and compare with memcpy"};
	size_t size_mib = 1024, buf_kib = 1024;
	int runs = 5;
	app.add_option("--size-mib", size_mib, "device memory per device (MiB)")
		->check(CLI::Range(1, 65536));
	app.add_option("--buffer-kib", buf_kib, "read/write buffer (KiB)")
		->check(CLI::Range(4, 65536));
	app.add_option("--runs", runs, "runs; medians are reported")
		->check(CLI::Range(1, 100));
	CLI11_PARSE(app, argc, argv);

	uvfio_set_log_level(UVFIO_LOG_ERR);
	size_t size = size_mib << 20;
	Device src, dst;
	if (src.open("0000:0b:00.0", size) || dst.open("0000:0b:00.1", size)) {
		fmt::print(stderr, "cannot set up devices: {}\n", strerror(errno));
		return 1;
	}
	/* Non-zero, non-uniform content so nothing is a zero page. */
	for (size_t i = 0; i < size; i += sizeof(unsigned long long)) {
		unsigned long long v = i * 0x9e3779b97f4a7c15ULL;
		std::memcpy(src.mem + i, &v, sizeof(v));
	}

	std::vector<char> a(size, 1), b(size, 2);
	std::vector<double> t_memcpy, t_stream;
	size_t bytes = 0;
	for (int r = 0; r < runs; r++) {
		auto t = clock_type::now();
		std::memcpy(b.data(), a.data(), size);
		t_memcpy.push_back(seconds_since(t));
		double s = stream_once(src, dst, buf_kib << 10, &bytes);
		if (s < 0)
			return 1;
		t_stream.push_back(s);
	}
	bool equal = !std::memcmp(src.mem, dst.mem, size);

	double memcpy_gbs = size / median(t_memcpy) / 1e9;
	double stream_gbs = bytes / median(t_stream) / 1e9;
	fmt::print("device memory      {} MiB per device, {} runs (medians)\n",
		   size_mib, runs);
	fmt::print("memcpy             {:.2f} GB/s\n", memcpy_gbs);
	fmt::print("data fd stream     {:.2f} GB/s  ({} bytes, read/write "
		   "{} KiB)\n", stream_gbs, bytes, buf_kib);
	fmt::print("ratio to memcpy    {:.2f}x  (target >= 0.25x)\n",
		   stream_gbs / memcpy_gbs);
	fmt::print("destination equal  {}\n", equal ? "yes" : "NO");
	return equal ? 0 : 1;
}
