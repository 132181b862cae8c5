// SPDX-License-Identifier: GPL-2.0-only
/*
 * uvfio-bench-report: what VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT costs
 * over a large logged range, as a VMM asks it once per pre-copy round.
 *
 * A simnic logs 1 TiB of IOVA at 4 KiB pages (268M pages, a 32 MiB user
 * bitmap). For 0%, 0.1% and 1% of those pages dirty, the pages are marked
 * as the device's DMA marks them (simdev_log_dirty, what the engine calls
 * after each guest write; driving the engine itself would need an IOMMU
 * mapping behind every page), then one REPORT over the whole 1 TiB is
 * timed. The reference, measured in the same run between REPORTs, is one
 * memchr over a 32 MiB buffer: the least a reader of that bitmap pays.
 * Ratios to the reference's median are printed (median, min, max over
 * --runs), with the tracker's memory next to one bit per logged page.
 *
 * Every REPORT is checked: the user's bitmap must hold exactly the pages
 * dirtied, and a second REPORT must find nothing. Exit 1 if not.
 */
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <sys/mman.h>
#include <vector>

#include <uvfio/sim/simdev.h>
#include <uvfio/uapi/vfio.h>
#include <uvfio/uvfio.h>

namespace {

using clock_type = std::chrono::steady_clock;

constexpr __u64 kLogged = 1ULL << 40;	/* 1 TiB */
constexpr __u64 kPage = 4096;
constexpr __u64 kPages = kLogged / kPage;
constexpr size_t kBitmapBytes = kPages / 8;	/* 32 MiB */
const char *const kBdf = "0000:00:1e.0";

double seconds(clock_type::time_point t)
{
	return std::chrono::duration<double>(clock_type::now() - t).count();
}

struct Stats {
	double median, min, max;
};

Stats stats(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	return {v[v.size() / 2], v.front(), v.back()};
}

int feature(int fd, __u32 flags, void *payload, size_t len)
{
	std::vector<__u64> buf((sizeof(struct vfio_device_feature) + len + 7) / 8);
	auto *f = reinterpret_cast<struct vfio_device_feature *>(buf.data());
	f->argsz = static_cast<__u32>(sizeof(*f) + len);
	f->flags = flags;
	std::memcpy(f->data, payload, len);
	int ret = uvfio_ioctl(fd, VFIO_DEVICE_FEATURE, f) ? -errno : 0;
	std::memcpy(payload, f->data, len);
	return ret;
}

int log_start(int fd)
{
	struct vfio_device_feature_dma_logging_range range = {0, kLogged};
	struct vfio_device_feature_dma_logging_control c = {};
	c.page_size = kPage;
	c.num_ranges = 1;
	c.ranges = reinterpret_cast<uintptr_t>(&range);
	return feature(fd, VFIO_DEVICE_FEATURE_SET |
				   VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
		       &c, sizeof(c));
}

int report(int fd, void *bitmap)
{
	struct vfio_device_feature_dma_logging_report r = {};
	r.iova = 0;
	r.length = kLogged;
	r.page_size = kPage;
	r.bitmap = reinterpret_cast<uintptr_t>(bitmap);
	return feature(fd, VFIO_DEVICE_FEATURE_GET |
				   VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
		       &r, sizeof(r));
}

/* The reference: one scan of 32 MiB that finds nothing. Seconds. */
double memchr_once(const unsigned char *buf)
{
	auto t = clock_type::now();
	const void *hit = std::memchr(buf, 1, kBitmapBytes);
	double s = seconds(t);
	if (hit)
		std::abort();	/* the buffer is all zero */
	return s;
}

} // namespace

int main(int argc, char **argv)
{
	int runs = 7;
	const char *only = nullptr;
	for (int i = 1; i < argc; i++) {
		if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) {
			runs = std::max(5, std::atoi(argv[++i]));
		} else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) {
			only = argv[++i];
		} else {
			std::fprintf(stderr, "usage: %s [--runs N (>= 5)] "
				     "[--only 0%%|0.1%%|1%%] (one case, for a "
				     "profile)\n", argv[0]);
			return 2;
		}
	}

	std::string spec = std::string("simnic,bdf=") + kBdf + ",mem=1M";
	if (uvfio_sim_add(spec.c_str())) {
		std::perror("uvfio_sim_add");
		return 1;
	}
	int fd = uvfio_open(kBdf);
	if (fd < 0) {
		std::perror("uvfio_open");
		return 1;
	}
	int ret = log_start(fd);
	struct simdev *sd = simdev_find(kBdf);
	if (ret || !sd) {
		std::fprintf(stderr, "DMA_LOGGING_START: %s\n",
			     ret ? std::strerror(-ret) : "no simdev");
		return 1;
	}

	/* Both buffers faulted in: neither side pays for first touches. */
	auto *bitmap = static_cast<unsigned char *>(
		mmap(nullptr, kBitmapBytes, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	auto *ref = static_cast<unsigned char *>(
		mmap(nullptr, kBitmapBytes, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	std::vector<unsigned char> want(kBitmapBytes);
	if (bitmap == MAP_FAILED || ref == MAP_FAILED) {
		std::perror("mmap");
		return 1;
	}
	std::memset(bitmap, 0xff, kBitmapBytes);
	std::memset(ref, 0xff, kBitmapBytes);
	std::memset(ref, 0, kBitmapBytes);

	/*
	 * The tracker's bitmap is calloc()ed: pages DMA never marked are the
	 * zero page, which a scan reads from cache. Mark a page in each of
	 * its 4 KiB and report once, so every case reads real memory, as
	 * a long-running migration's tracker is.
	 */
	for (__u64 p = 0; p < kPages; p += 4096 * 8)
		simdev_log_dirty(sd, p * kPage, kPage);
	if (report(fd, bitmap)) {
		std::fprintf(stderr, "REPORT failed\n");
		return 1;
	}

	__u64 tracker = simdev_log_bytes(sd);
	std::printf("REPORT over 1 TiB at 4 KiB pages (%llu pages, %zu MiB "
		    "bitmap), %d runs\n",
		    (unsigned long long)kPages, kBitmapBytes >> 20, runs);
	std::printf("tracker: %llu bytes, %.4f bits per logged page "
		    "(target: at most 1 bit per page plus a constant)\n",
		    (unsigned long long)tracker, tracker * 8.0 / kPages);

	struct Case {
		const char *name;
		double fraction;
		double target;	/* median ratio; 0: none */
		std::vector<double> secs;
	};
	std::vector<Case> cases = {{"0%", 0.0, 0, {}},
				   {"0.1%", 0.001, 2, {}},
				   {"1%", 0.01, 5, {}}};
	if (only) {
		std::erase_if(cases, [only](const Case &c) {
			return std::strcmp(c.name, only);
		});
		if (cases.empty()) {
			std::fprintf(stderr, "no case %s\n", only);
			return 2;
		}
	}
	std::vector<double> ref_secs;
	std::mt19937_64 rng(42);
	bool correct = true;

	for (auto &c : cases) {
		/* Distinct pages, the same set in every run of the case. */
		std::fill(want.begin(), want.end(), 0);
		std::vector<__u64> pages;
		__u64 n = static_cast<__u64>(kPages * c.fraction);
		while (pages.size() < n) {
			__u64 p = rng() % kPages;
			if (want[p / 8] & (1u << (p % 8)))
				continue;
			want[p / 8] |= static_cast<unsigned char>(1u << (p % 8));
			pages.push_back(p);
		}
		for (int r = 0; r < runs; r++) {
			for (__u64 p : pages)
				simdev_log_dirty(sd, p * kPage, kPage);
			std::memset(bitmap, 0, kBitmapBytes);
			ref_secs.push_back(memchr_once(ref));

			auto t = clock_type::now();
			ret = report(fd, bitmap);
			c.secs.push_back(seconds(t));
			if (ret) {
				std::fprintf(stderr, "REPORT: %s\n",
					     std::strerror(-ret));
				return 1;
			}
			if (std::memcmp(bitmap, want.data(), kBitmapBytes)) {
				std::fprintf(stderr, "%s run %d: the bitmap is "
					     "not the pages dirtied\n", c.name, r);
				correct = false;
			}
			/* Read and clear: nothing is left to report. */
			std::memset(bitmap, 0, kBitmapBytes);
			if (report(fd, bitmap) ||
			    std::find_if(bitmap, bitmap + kBitmapBytes,
					 [](unsigned char b) { return b; }) !=
				    bitmap + kBitmapBytes) {
				std::fprintf(stderr, "%s run %d: a second REPORT "
					     "found dirty pages\n", c.name, r);
				correct = false;
			}
		}
	}

	Stats rs = stats(ref_secs);
	std::printf("reference: memchr of 32 MiB, median %.3f ms (min %.3f, "
		    "max %.3f)\n",
		    rs.median * 1e3, rs.min * 1e3, rs.max * 1e3);
	std::printf("%-6s %10s %8s %8s %8s %8s\n", "dirty", "median ms",
		    "median", "min", "max", "target");
	for (auto &c : cases) {
		Stats s = stats(c.secs);
		double ratio = s.median / rs.median;
		char target[32] = "-";
		if (c.target)
			std::snprintf(target, sizeof(target), "<=%gx %s",
				      c.target, ratio <= c.target ? "ok" : "MISS");
		std::printf("%-6s %10.3f %7.2fx %7.2fx %7.2fx %8s\n", c.name,
			    s.median * 1e3, ratio, s.min / rs.median,
			    s.max / rs.median, target);
	}
	if (!correct)
		std::printf("FAIL: a REPORT did not return exactly the pages "
			    "dirtied\n");
	uvfio_close(fd);
	uvfio_sim_remove(kBdf);
	return correct ? 0 : 1;
}
