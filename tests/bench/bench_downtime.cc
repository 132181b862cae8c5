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
#include <uvfio/tools/migration.h>
#include <uvfio/tools/sim_vm.h>
#include <uvfio/uapi/vfio.h>
#include <uvfio/uvfio.h>

namespace {

using clock_type = std::chrono::steady_clock;
constexpr off_t BAR0 = 0;
constexpr off_t BAR2 = off_t(VFIO_PCI_BAR2_REGION_INDEX) << 40;

double ms_between(clock_type::time_point a, clock_type::time_point b)
{
	return std::chrono::duration<double, std::milli>(b - a).count();
}

double median(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

using namespace uvfio::tools;

/* Move from a saving fd to a resuming fd until "nothing now" or EOF. */
long long forward(Transport &t, int src, int dst)
{
	StreamStats st;
	int ret = plain_copy({&t, src}, {&t, dst}, true, &st);
	return ret ? ret : (long long)st.bytes;
}

/* Device memory and registers (but the last-write time and STATUS). */
bool same_device(SimVm &a, SimVm &b, size_t mem)
{
	std::vector<char> x(mem), y(mem);
	if (uvfio_pread(a.fd(), x.data(), mem, BAR2) != ssize_t(mem) ||
	    uvfio_pread(b.fd(), y.data(), mem, BAR2) != ssize_t(mem) || x != y)
		return false;
	for (__u32 off = 0; off < SIMDEV_NUM_REGS * 4; off += 4) {
		if (off == SIMDEV_REG_STATUS || off == SIMDEV_REG_LAST_WRITE_NS_LO ||
		    off == SIMDEV_REG_LAST_WRITE_NS_HI)
			continue;
		__u32 u = 0, v = 1;
		uvfio_pread(a.fd(), &u, 4, BAR0 + off);
		uvfio_pread(b.fd(), &v, 4, BAR0 + off);
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
	char a[64], b[64];
	std::snprintf(a, sizeof(a), "simnic,bdf=0000:0c:%02x.0,mem=%zu,seed=1",
		      run, mem);
	std::snprintf(b, sizeof(b), "simnic,bdf=0000:0c:%02x.1,mem=%zu", run, mem);
	SimVm src, dst;
	std::string why;
	int ret;
	if ((ret = src.create(a, 16 << 20, &why)) ||
	    (ret = dst.create(b, 16 << 20, &why)) ||
	    (ret = src.start_workload(42 + run, 20000, &why))) {
		fmt::print(stderr, "{}\n", why);
		return ret;
	}
	auto t = make_sim_transport();
	Device s(*t, src.fd()), d(*t, dst.fd());
	if ((ret = s.data_size(&r->full_bytes)))
		return ret;

	int sfd, dfd;
	if ((ret = d.set_state(VFIO_DEVICE_STATE_STOP)) ||
	    (ret = d.set_state(VFIO_DEVICE_STATE_RESUMING, &dfd)) ||
	    (ret = s.set_state(VFIO_DEVICE_STATE_PRE_COPY, &sfd)))
		return ret;

	/* The initial image, while the device runs. */
	long long n = forward(*t, sfd, dfd);
	if (n < 0)
		return int(n);
	r->initial_bytes = n;

	/* Passes: wait for dirty_pct of memory, then send it. */
	const __u64 target = __u64(double(mem) * dirty_pct / 100.0);
	for (int p = 0; p <= passes; p++) {
		__u64 initial = 0, dirty = 0;
		auto give_up = clock_type::now() + std::chrono::seconds(10);
		do {
			std::this_thread::sleep_for(std::chrono::microseconds(200));
			if ((ret = s.precopy_info(sfd, &initial, &dirty)))
				return ret;
		} while (dirty < target && clock_type::now() < give_up);
		if (p == passes)
			break;	/* this share is the stop-copy's */
		n = forward(*t, sfd, dfd);
		if (n < 0)
			return int(n);
		r->pass_bytes.push_back(n);
	}

	/* The vCPU stops, then the timed window. */
	src.stop_workload();
	auto t0 = clock_type::now();
	if ((ret = s.set_state(VFIO_DEVICE_STATE_PRE_COPY_P2P)) ||
	    (ret = s.set_state(VFIO_DEVICE_STATE_STOP_COPY)))
		return ret;
	n = forward(*t, sfd, dfd);
	if (n < 0)
		return int(n);
	r->stop_copy_bytes = n;
	uvfio_close(dfd);
	ret = d.set_state(VFIO_DEVICE_STATE_STOP);
	auto t1 = clock_type::now();
	if (ret)
		return ret;
	/* Outside the window: is the destination what the source was? */
	r->equal = same_device(src, dst, mem);
	auto t2 = clock_type::now();
	if ((ret = d.set_state(VFIO_DEVICE_STATE_RUNNING)))
		return ret;
	auto t3 = clock_type::now();
	r->downtime_ms = ms_between(t0, t1) + ms_between(t2, t3);
	uvfio_close(sfd);
	s.set_state(VFIO_DEVICE_STATE_STOP);
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
