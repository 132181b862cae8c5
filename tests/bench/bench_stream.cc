// SPDX-License-Identifier: GPL-2.0-only
/*
 * uvfio-bench-stream: device state from one device's STOP_COPY data fd into
 * another device's RESUMING fd, with the two engines of tools/lib in the
 * same run: the plain read()/write() engine with QEMU's sizes (1 MiB reads,
 * 32 KiB writes) as the baseline, and the io_uring engine. Reports GB/s for
 * each, their ratio, and the ratio to a memcpy of the same size measured in
 * the same run (medians over --runs), then checks that the destination's
 * device memory equals the source's after every run.
 *
 * Every run streams into a fresh destination, a device created for that
 * run and never migrated into, as in a real migration. The references
 * are measured in the same run: a memcpy of the same bytes between two
 * buffers already in memory, and the same bytes through a bare AF_UNIX
 * socketpair from one thread to another (the transport a data fd is).
 */
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <CLI/CLI.hpp>
#include <xxh_x86dispatch.h>
#include <fmt/core.h>

#include <uvfio/tools/migration.h>

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

/*
 * simnic parses the stream in place as it arrives (device memory straight
 * from the socket); testdev stages the whole stream and loads it at
 * RESUMING -> STOP, so that it never holds half a state (its tests rely
 * on that).
 */
std::string device_kind = "simnic";

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
		std::string spec =
			device_kind == "testdev"
				? "testdev,bdf=" + bdf +
					  ",mig=stop_copy,state=4K,mem=" +
					  std::to_string(mem_size)
				: "simnic,bdf=" + bdf +
					  ",mem=" + std::to_string(mem_size);
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
	void close()
	{
		if (mem)
			munmap(mem, size);
		if (fd >= 0)
			uvfio_close(fd);
		if (!bdf.empty())
			uvfio_sim_remove(bdf.c_str());
		mem = nullptr;
		fd = -1;
		bdf.clear();
	}
	~Device() { close(); }
};

/*
 * The floor under any stream of these bytes, in the same run: the one copy
 * the destination cannot avoid, done as the kernel's copy_to_user() does
 * it (rep movsb, a 4 KiB socket fragment at a time, through the cache),
 * from memory not in cache into memory not in cache; and the source's
 * XXH3 over memory not in cache. Seconds of each.
 */
void kernel_copy_4k(char *to, const char *from, size_t n)
{
#if defined(__x86_64__)
	asm volatile("rep movsb"
		     : "+D"(to), "+S"(from), "+c"(n)
		     :
		     : "memory");
#else
	std::memcpy(to, from, n);
#endif
}

struct Floor {
	double copy, hash;
};

Floor floor_once(const char *from, char *to, char *evict, size_t size)
{
	Floor f;
	/* Out of cache: a pass over as many other bytes. */
	std::memset(evict, 3, size);
	auto t = clock_type::now();
	for (size_t off = 0; off < size; off += 4096)
		kernel_copy_4k(to + off, from + off, std::min<size_t>(4096, size - off));
	f.copy = seconds_since(t);
	std::memset(evict, 4, size);
	t = clock_type::now();
	volatile XXH64_hash_t h = XXH3_64bits_dispatch(from, size);
	(void)h;
	f.hash = seconds_since(t);
	return f;
}

/*
 * The reference transport: size bytes from one buffer to another through
 * a bare socketpair, a writer thread and this one reading, in chunks of
 * the engine's size. Seconds, or < 0 on error.
 */
double socketpair_once(const char *from, char *to, size_t size, size_t chunk)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -1;
	auto t = clock_type::now();
	std::thread writer([&] {
		for (size_t off = 0; off < size;) {
			ssize_t w = write(sv[0], from + off,
					  std::min(chunk, size - off));
			if (w <= 0)
				break;
			off += static_cast<size_t>(w);
		}
	});
	size_t got = 0;
	while (got < size) {
		ssize_t r = read(sv[1], to + got, std::min(chunk, size - got));
		if (r <= 0)
			break;
		got += static_cast<size_t>(r);
	}
	writer.join();
	double s = seconds_since(t);
	::close(sv[0]);
	::close(sv[1]);
	return got == size ? s : -1;
}

/*
 * One migration with an engine: seconds from the source's SET to
 * STOP_COPY to the end of the destination's RESUMING -> STOP, which
 * loads what arrived (the stop-copy a VMM waits for), or < 0 on error.
 */
uvfio::tools::UringOptions uring_opt;

void perf_ctl(const char *cmd)
{
	const char *path = getenv("UVFIO_BENCH_PERF_CTL");
	if (!path)
		return;
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, cmd, strlen(cmd)) < 0) {
		/* A profiling aid: a profiler gone is not the bench's failure. */
	}
	close(fd);
}

double stream_once(Device &src, Device &dst, bool uring, size_t *bytes)
{
	using namespace uvfio::tools;
	int sfd = -1, rfd = -1;
	if (set_state(src.fd, VFIO_DEVICE_STATE_RUNNING, nullptr) ||
	    set_state(dst.fd, VFIO_DEVICE_STATE_RUNNING, nullptr) ||
	    set_state(dst.fd, VFIO_DEVICE_STATE_RESUMING, &rfd)) {
		fmt::print(stderr, "state change failed: {}\n", strerror(errno));
		return -1;
	}
	/*
	 * For a profiler to see the stream alone: UVFIO_BENCH_MARK prints a
	 * line, UVFIO_BENCH_PERF_CTL names `perf record -D -1 --control
	 * fifo:CTL` 's fifo, enabled for the timed window only.
	 */
	if (getenv("UVFIO_BENCH_MARK"))
		fmt::print(stderr, "stream start\n");
	perf_ctl("enable\n");
	auto t = clock_type::now();
	if (set_state(src.fd, VFIO_DEVICE_STATE_STOP_COPY, &sfd)) {
		fmt::print(stderr, "state change failed: {}\n", strerror(errno));
		return -1;
	}
	/* Both engines on the raw fds, as on a kernel device. */
	auto raw = make_kernel_transport();
	StreamStats st;
	int ret = uring ? uring_copy(sfd, rfd, &st, {}, uring_opt)
			: plain_copy({raw.get(), sfd}, {raw.get(), rfd}, false, &st);
	uvfio_close(sfd);
	uvfio_close(rfd);
	if (ret) {
		fmt::print(stderr, "{} engine: {}\n", uring ? "io_uring" : "plain",
			   strerror(-ret));
		return -1;
	}
	ret = set_state(dst.fd, VFIO_DEVICE_STATE_STOP, nullptr);
	double seconds = seconds_since(t);
	perf_ctl("disable\n");
	set_state(src.fd, VFIO_DEVICE_STATE_STOP, nullptr);
	if (ret) {
		fmt::print(stderr, "RESUMING -> STOP failed: {}\n", strerror(-ret));
		return -1;
	}
	*bytes = st.bytes;
	return seconds;
}

} // namespace

int main(int argc, char **argv)
{
	CLI::App app{"Stream device state between two simulated devices with "
		     "the plain and the io_uring engine, against memcpy"};
	size_t size_mib = 1024;
	int runs = 5;
	app.add_option("--size-mib", size_mib, "device memory per device (MiB)")
		->check(CLI::Range(1, 65536));
	app.add_option("--runs", runs, "runs; medians are reported")
		->check(CLI::Range(1, 100));
	bool no_splice = false;
	size_t chunk_kib = uring_opt.chunk >> 10;
	app.add_option("--depth", uring_opt.depth, "io_uring: chunks in flight")
		->check(CLI::Range(2, 64));
	app.add_option("--chunk-kib", chunk_kib, "io_uring: bytes per operation")
		->check(CLI::Range(4, 65536));
	app.add_flag("--no-splice", no_splice,
		     "io_uring: registered buffers instead of splice");
	std::string engine = "both";
	app.add_option("--engine", engine,
		       "run only one engine (to profile it): plain, io_uring "
		       "or both; ratios need both")
		->check(CLI::IsMember({"plain", "io_uring", "both"}));
	app.add_option("--device", device_kind,
		       "the device model: simnic (parses in place) or "
		       "testdev (stages, loads at STOP)")
		->check(CLI::IsMember({"simnic", "testdev"}));
	CLI11_PARSE(app, argc, argv);
	uring_opt.splice = !no_splice;
	uring_opt.chunk = chunk_kib << 10;

	uvfio_set_log_level(UVFIO_LOG_ERR);
	size_t size = size_mib << 20;
	Device src;
	if (src.open("0000:0b:00.0", size)) {
		fmt::print(stderr, "cannot set up devices: {}\n", strerror(errno));
		return 1;
	}
	/* Non-zero, non-uniform content so nothing is a zero page. */
	for (size_t i = 0; i < size; i += sizeof(unsigned long long)) {
		unsigned long long v = i * 0x9e3779b97f4a7c15ULL;
		std::memcpy(src.mem + i, &v, sizeof(v));
	}

	std::vector<char> a(size, 1), b(size, 2), c(size, 3);
	std::vector<double> t_memcpy, t_sock, t_plain, t_uring, t_kcopy, t_hash;
	size_t bytes = 0;
	bool equal = true;
	int serial = 1;
	for (int r = 0; r < runs; r++) {
		auto t = clock_type::now();
		std::memcpy(b.data(), a.data(), size);
		t_memcpy.push_back(seconds_since(t));
		double s = socketpair_once(a.data(), b.data(), size,
					   uring_opt.chunk);
		if (s < 0) {
			fmt::print(stderr, "socketpair reference failed\n");
			return 1;
		}
		t_sock.push_back(s);
		Floor f = floor_once(a.data(), b.data(), c.data(), size);
		t_kcopy.push_back(f.copy);
		t_hash.push_back(f.hash);
		for (bool uring : {false, true}) {
			if (engine != "both" && uring != (engine == "io_uring"))
				continue;
			/* A fresh destination: created now, never resumed into. */
			Device dst;
			if (dst.open(fmt::format("0000:0b:01.{}", serial++ % 8),
				     size)) {
				fmt::print(stderr, "cannot create the destination: "
					   "{}\n", strerror(errno));
				return 1;
			}
			s = stream_once(src, dst, uring, &bytes);
			if (s < 0)
				return 1;
			(uring ? t_uring : t_plain).push_back(s);
			equal = equal && !std::memcmp(src.mem, dst.mem, size);
		}
	}

	double memcpy_gbs = size / median(t_memcpy) / 1e9;
	fmt::print("device memory      {} MiB per device, {} runs (medians), "
		   "{} bytes per stream\n", size_mib, runs, bytes);
	double sock_gbs = size / median(t_sock) / 1e9;
	fmt::print("memcpy             {:.2f} GB/s\n", memcpy_gbs);
	fmt::print("socketpair         {:.2f} GB/s  ({:.2f}x memcpy; bare, "
		   "thread to thread)\n", sock_gbs, sock_gbs / memcpy_gbs);
	double kcopy = median(t_memcpy) / median(t_kcopy);
	double hash = median(t_memcpy) / median(t_hash);
	fmt::print("kernel-style copy  {:.2f}x memcpy  (rep movsb, 4 KiB at a "
		   "time, out of cache: the destination's one copy at best)\n",
		   kcopy);
	fmt::print("XXH3, out of cache {:.2f}x memcpy  (the source's hash at "
		   "best)\n", hash);
	fmt::print("bound on 2 CPUs    {:.2f}x memcpy  (the two above in "
		   "parallel and nothing else: no syscall, no hand-off, no "
		   "destination hash)\n", std::min(kcopy, hash));
	double plain_gbs = 0, uring_gbs = 0;
	if (!t_plain.empty()) {
		plain_gbs = bytes / median(t_plain) / 1e9;
		fmt::print("plain engine       {:.2f} GB/s  ({:.2f}x memcpy; read "
			   "1 MiB, write 32 KiB)\n", plain_gbs,
			   plain_gbs / memcpy_gbs);
	}
	if (!t_uring.empty()) {
		uring_gbs = bytes / median(t_uring) / 1e9;
		fmt::print("io_uring engine    {:.2f} GB/s  ({:.2f}x memcpy, target "
			   ">= 0.5x; {:.2f}x socketpair, target >= 0.8x)\n",
			   uring_gbs, uring_gbs / memcpy_gbs,
			   uring_gbs / sock_gbs);
	}
	if (plain_gbs > 0 && uring_gbs > 0)
		fmt::print("io_uring / plain   {:.2f}x  (target >= 1.5x)\n",
			   uring_gbs / plain_gbs);
	fmt::print("destination equal  {}\n", equal ? "yes" : "NO");
	return equal ? 0 : 1;
}
