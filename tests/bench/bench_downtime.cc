// SPDX-License-Identifier: GPL-2.0-only
/*
 * uvfio-bench-downtime: a live migration of a busy simnic to another simnic
 * in the same process, measuring what pre-copy buys. The source runs the
 * seeded workload; after the initial image, each pre-copy pass waits until
 * the device has dirtied a set share of its memory (default 1%, from
 * PRECOPY_INFO) and sends it. Then, timed: source PRE_COPY_P2P, STOP_COPY,
 * the rest of the stream into the destination, destination STOP and
 * RUNNING. Reports the stop-copy bytes against the full state and the
 * downtime (medians over --runs), and checks that the destination's device
 * memory and registers equal the source's (outside the timed window).
 *
 * Guest memory is not migrated here (only device state); the workload's
 * vCPU (its thread) is stopped just before the window opens.
 */
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <uvfio/sim/simdev_regs.h>
#include <uvfio/sim/workload.h>
#include <uvfio/uapi/vfio.h>
#include <uvfio/uvfio.h>

namespace {

using clock_type = std::chrono::steady_clock;
constexpr off_t BAR0 = 0;
constexpr off_t BAR2 = off_t(VFIO_PCI_BAR2_REGION_INDEX) << 40;
constexpr off_t CONFIG = off_t(VFIO_PCI_CONFIG_REGION_INDEX) << 40;
constexpr __u64 GUEST_IOVA = 1ULL << 32;

double ms_between(clock_type::time_point a, clock_type::time_point b)
{
	return std::chrono::duration<double, std::milli>(b - a).count();
}

double median(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

int set_state(int fd, unsigned state, int *data_fd = nullptr)
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

/* A simnic in its own container, with guest memory mapped. */
struct Device {
	std::string bdf;
	int container = -1, group = -1, fd = -1;
	void *guest = nullptr;
	size_t guest_size = 0;

	int open(const std::string &b, size_t mem, size_t gsize, bool seed)
	{
		bdf = b;
		std::string spec = "simnic,bdf=" + bdf + ",mem=" +
				   std::to_string(mem) + (seed ? ",seed=1" : "");
		if (uvfio_sim_add(spec.c_str()))
			return -errno;
		container = uvfio_open("/dev/vfio/vfio");
		group = uvfio_open(("/dev/vfio/" +
				    std::to_string(uvfio_sim_iommu_group(b.c_str())))
					   .c_str());
		if (container < 0 || group < 0 ||
		    uvfio_ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) ||
		    uvfio_ioctl(container, VFIO_SET_IOMMU,
				reinterpret_cast<void *>(VFIO_TYPE1v2_IOMMU)))
			return -errno;
		fd = uvfio_ioctl(group, VFIO_GROUP_GET_DEVICE_FD,
				 const_cast<char *>(bdf.c_str()));
		if (fd < 0)
			return -errno;
		guest_size = gsize;
		guest = mmap(nullptr, gsize, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (guest == MAP_FAILED) {
			guest = nullptr;
			return -errno;
		}
		struct vfio_iommu_type1_dma_map map = {};
		map.argsz = sizeof(map);
		map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
		map.vaddr = reinterpret_cast<__u64>(guest);
		map.iova = GUEST_IOVA;
		map.size = gsize;
		if (uvfio_ioctl(container, VFIO_IOMMU_MAP_DMA, &map))
			return -errno;
		/* Bus mastering on, as the guest driver would. */
		__u16 cmd = 0;
		uvfio_pread(fd, &cmd, 2, CONFIG + 4);
		cmd |= 0x4;
		uvfio_pwrite(fd, &cmd, 2, CONFIG + 4);
		return 0;
	}
	~Device()
	{
		if (fd >= 0)
			uvfio_close(fd);
		if (group >= 0)
			uvfio_close(group);
		if (container >= 0)
			uvfio_close(container);
		if (guest)
			munmap(guest, guest_size);
		if (!bdf.empty())
			uvfio_sim_remove(bdf.c_str());
	}
};

struct precopy_info_t {
	__u64 initial, dirty;
};

int precopy_info(int fd, precopy_info_t *out)
{
	struct vfio_precopy_info info = {};
	info.argsz = sizeof(info);
	if (uvfio_ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, &info))
		return -errno;
	out->initial = info.initial_bytes;
	out->dirty = info.dirty_bytes;
	return 0;
}

/* Move from a saving fd to a resuming fd until "nothing now" or EOF. */
long long forward(int src, int dst, std::vector<char> &buf)
{
	long long total = 0;
	for (;;) {
		ssize_t n = uvfio_read(src, buf.data(), buf.size());
		if (n == 0 || (n < 0 && errno == ENOMSG))
			return total;
		if (n < 0)
			return -errno;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(dst, buf.data() + off, size_t(n - off));
			if (w < 0)
				return -errno;
			off += w;
		}
		total += n;
	}
}

/* Device memory and registers (but the last-write time and STATUS). */
bool same_device(Device &a, Device &b, size_t mem)
{
	std::vector<char> x(mem), y(mem);
	if (uvfio_pread(a.fd, x.data(), mem, BAR2) != ssize_t(mem) ||
	    uvfio_pread(b.fd, y.data(), mem, BAR2) != ssize_t(mem) || x != y)
		return false;
	for (__u32 off = 0; off < SIMDEV_NUM_REGS * 4; off += 4) {
		if (off == SIMDEV_REG_STATUS || off == SIMDEV_REG_LAST_WRITE_NS_LO ||
		    off == SIMDEV_REG_LAST_WRITE_NS_HI)
			continue;
		__u32 u = 0, v = 1;
		uvfio_pread(a.fd, &u, 4, BAR0 + off);
		uvfio_pread(b.fd, &v, 4, BAR0 + off);
		if (u != v)
			return false;
	}
	return true;
}

struct Result {
	double downtime_ms = 0;
	unsigned long long full_bytes = 0, initial_bytes = 0, stop_copy_bytes = 0;
	std::vector<unsigned long long> pass_bytes;
	bool equal = false;
};

int run_once(size_t mem, double dirty_pct, int passes, unsigned run,
	     Result *r)
{
	char a[32], b[32];
	std::snprintf(a, sizeof(a), "0000:0c:%02x.0", run);
	std::snprintf(b, sizeof(b), "0000:0c:%02x.1", run);
	Device src, dst;
	int ret;
	if ((ret = src.open(a, mem, 16 << 20, true)) ||
	    (ret = dst.open(b, mem, 16 << 20, false)))
		return ret;

	sim_workload w;
	sim_workload_config c;
	c.device_fd = src.fd;
	c.guest = src.guest;
	c.guest_iova = GUEST_IOVA;
	c.guest_size = src.guest_size;
	c.dev_mem_size = mem;
	c.seed = 42 + run;
	c.rate = 20000;
	c.max_len = 64 << 10;
	if ((ret = w.start(c)))
		return ret;

	{
		alignas(8) unsigned char buf[sizeof(struct vfio_device_feature) +
					     sizeof(struct vfio_device_feature_mig_data_size)] = {};
		auto *f = reinterpret_cast<struct vfio_device_feature *>(buf);
		f->argsz = sizeof(buf);
		f->flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE;
		if (uvfio_ioctl(src.fd, VFIO_DEVICE_FEATURE, f))
			return -errno;
		r->full_bytes = reinterpret_cast<struct vfio_device_feature_mig_data_size *>(
					buf + sizeof(*f))->stop_copy_length;
	}

	int sfd, dfd;
	if ((ret = set_state(dst.fd, VFIO_DEVICE_STATE_STOP)) ||
	    (ret = set_state(dst.fd, VFIO_DEVICE_STATE_RESUMING, &dfd)) ||
	    (ret = set_state(src.fd, VFIO_DEVICE_STATE_PRE_COPY, &sfd)))
		return ret;
	std::vector<char> buf(1 << 20);

	/* The initial image, while the device runs. */
	long long n = forward(sfd, dfd, buf);
	if (n < 0)
		return int(n);
	r->initial_bytes = n;

	/* Passes: wait for dirty_pct of memory, then send it. */
	const __u64 target = __u64(double(mem) * dirty_pct / 100.0);
	for (int p = 0; p <= passes; p++) {
		precopy_info_t info{};
		auto give_up = clock_type::now() + std::chrono::seconds(10);
		do {
			std::this_thread::sleep_for(std::chrono::microseconds(200));
			if ((ret = precopy_info(sfd, &info)))
				return ret;
		} while (info.dirty < target && clock_type::now() < give_up);
		if (p == passes)
			break;	/* this share is the stop-copy's */
		n = forward(sfd, dfd, buf);
		if (n < 0)
			return int(n);
		r->pass_bytes.push_back(n);
	}

	/* The vCPU stops, then the timed window. */
	w.stop();
	auto t0 = clock_type::now();
	if ((ret = set_state(src.fd, VFIO_DEVICE_STATE_PRE_COPY_P2P)) ||
	    (ret = set_state(src.fd, VFIO_DEVICE_STATE_STOP_COPY)))
		return ret;
	n = forward(sfd, dfd, buf);
	if (n < 0)
		return int(n);
	r->stop_copy_bytes = n;
	uvfio_close(dfd);
	ret = set_state(dst.fd, VFIO_DEVICE_STATE_STOP);
	auto t1 = clock_type::now();
	if (ret)
		return ret;
	/* Outside the window: is the destination what the source was? */
	r->equal = same_device(src, dst, mem);
	auto t2 = clock_type::now();
	if ((ret = set_state(dst.fd, VFIO_DEVICE_STATE_RUNNING)))
		return ret;
	auto t3 = clock_type::now();
	r->downtime_ms = ms_between(t0, t1) + ms_between(t2, t3);
	uvfio_close(sfd);
	set_state(src.fd, VFIO_DEVICE_STATE_STOP);
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	CLI::App app{"Live-migrate a busy simnic with pre-copy and report the "
		     "stop-copy size and the downtime"};
	size_t mem_mib = 256;
	double dirty_pct = 1.0;
	int passes = 3, runs = 5;
	app.add_option("--mem-mib", mem_mib, "device memory (MiB)")
		->check(CLI::Range(1, 4096));
	app.add_option("--dirty-pct", dirty_pct,
		       "device memory the workload dirties per pass (%)")
		->check(CLI::Range(0.01, 50.0));
	app.add_option("--passes", passes, "pre-copy passes after the initial "
		       "image")->check(CLI::Range(0, 100));
	app.add_option("--runs", runs, "runs; medians are reported")
		->check(CLI::Range(1, 50));
	CLI11_PARSE(app, argc, argv);

	uvfio_set_log_level(UVFIO_LOG_ERR);
	size_t mem = mem_mib << 20;
	std::vector<double> down, ratio;
	Result last;
	bool all_equal = true;
	for (int i = 0; i < runs; i++) {
		Result r;
		int ret = run_once(mem, dirty_pct, passes, unsigned(i), &r);
		if (ret) {
			fmt::print(stderr, "run {}: {}\n", i, strerror(-ret));
			return 1;
		}
		down.push_back(r.downtime_ms);
		ratio.push_back(100.0 * double(r.stop_copy_bytes) /
				double(r.full_bytes));
		all_equal = all_equal && r.equal;
		last = r;
	}
	double d = median(down), s = median(ratio);
	fmt::print("device memory      {} MiB, workload dirtying {}% per pass, "
		   "{} runs (medians)\n", mem_mib, dirty_pct, runs);
	fmt::print("full state         {} bytes\n", last.full_bytes);
	fmt::print("initial pass       {} bytes (the full image, and what the "
		   "device dirtied while it was sent)\n", last.initial_bytes);
	for (size_t p = 0; p < last.pass_bytes.size(); p++)
		fmt::print("pre-copy pass {}    {} bytes ({:.2f}%)\n", p + 1,
			   last.pass_bytes[p],
			   100.0 * double(last.pass_bytes[p]) / double(mem));
	fmt::print("stop-copy          {:.2f}% of the full state  (target <= 5%)\n",
		   s);
	fmt::print("downtime           {:.2f} ms  (target <= 10 ms; source "
		   "PRE_COPY_P2P to destination RUNNING)\n", d);
	fmt::print("destination equal  {}\n", all_equal ? "yes" : "NO");
	return all_equal ? 0 : 1;
}
