// SPDX-License-Identifier: GPL-2.0-only
/*
 * dirty: the guest pages a busy device writes, through the tracker a
 * VMM would use for it (DMA logging, or the IOMMU's dirty pages).
 */
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstring>

#include "commands.h"
#include "common.h"

namespace uvfio::mig_ctl {

namespace {

/*
 * dirty: start dirty tracking of a device's guest memory, let the
 * workload run, report (read and clear) and stop, with a summary: pages,
 * their share of guest memory, and the ranges they form. A real device
 * gets no workload (it plays the simulated function in-process): the
 * report shows what it wrote by itself, and the second report is shown,
 * not checked (type1 reports every page of a device that cannot say).
 */
int cmd_dirty(const std::string &spec, unsigned ms, bool iommu, __u64 seed,
	      unsigned rate, size_t guest, bool as_json)
{
	CmdDevice d;
	if (int rc = d.open(spec, guest))
		return rc;
	std::string why;
	const bool workload = !d.is_real();
	DirtyTracker tr(*d.dev, d.guest());
	int ret = tr.start(!iommu);
	if (ret)
		return fail(EXIT_FAIL, "dirty: cannot start tracking: " +
					       std::string(strerror(-ret)));
	if (workload && d.vm.start_workload(seed, rate, &why))
		return fail(EXIT_FAIL, "dirty: workload: " + why);
	std::this_thread::sleep_for(std::chrono::milliseconds(ms));
	/* What was posted is done: nothing writes after the report. */
	if (workload && (ret = d.vm.drain_workload(10000)))
		return fail(EXIT_FAIL, "dirty: the workload did not finish: " +
					       std::string(strerror(-ret)));
	std::vector<__u64> bm;
	ret = tr.report(&bm);
	if (ret)
		return fail(EXIT_FAIL, "dirty: report: " + std::string(strerror(-ret)));
	/* A second report right away: read-and-clear leaves nothing. */
	std::vector<__u64> again;
	tr.report(&again);
	__u64 left = 0;
	for (__u64 w : again)
		left += __u64(__builtin_popcountll(w));
	std::string mode = tr.mode();
	tr.stop();

	__u64 pages = 0, npages = guest / DirtyTracker::PAGE;
	json ranges = json::array();
	std::string text;
	for (__u64 p = 0; p < npages;) {
		if (!(bm[p / 64] >> (p % 64) & 1)) {
			p++;
			continue;
		}
		__u64 q = p;
		while (q < npages && (bm[q / 64] >> (q % 64) & 1))
			q++;
		pages += q - p;
		__u64 iova = d.guest().iova + p * DirtyTracker::PAGE;
		ranges.push_back({{"iova", iova},
				  {"bytes", (q - p) * DirtyTracker::PAGE}});
		if (ranges.size() <= 8)
			text += fmt::format("  {:#x} + {} pages\n", iova, q - p);
		p = q;
	}
	json j = d.report({{"tracking", mode},
			   {"workload", workload},
			   {"workload_ms", ms},
			   {"workload_descriptors", d.vm.workload_completed()},
			   {"guest_pages", npages}, {"dirty_pages", pages},
			   {"dirty_ranges", ranges.size()}, {"after_clear", left},
			   {"ranges", ranges}});
	if (as_json) {
		emit_json(j);
	} else {
		std::string after = workload ?
			fmt::format("{} ms of workload ({} descriptors)", ms,
				    d.vm.workload_completed()) :
			fmt::format("{} ms (a real device: no workload)", ms);
		fmt::print("{}: {} dirty pages of {} ({:.1f}%) in {} ranges after "
			   "{}, by {}\n{}", d.label(), pages, npages,
			   100.0 * pages / std::max<__u64>(npages, 1),
			   ranges.size(), after, mode, text);
		if (ranges.size() > 8)
			fmt::print("  ... {} more ranges\n", ranges.size() - 8);
		fmt::print("read and cleared: a second report has {} pages\n", left);
	}
	/* Only a drained workload promises that nothing wrote since. */
	return left && workload ?
		fail(EXIT_FAIL, "dirty: pages left after read-and-clear") : 0;
}

} // namespace

Command add_dirty(CLI::App &app)
{
	struct Args {
		std::string spec;
		unsigned ms = 100, rate = 20000;
		__u64 seed = 1;
		size_t guest = 16 << 20;
		bool iommu = false;
		bool as_json = false;
		CLI::Option *seed_opt, *rate_opt;
	};
	auto a = std::make_shared<Args>();
	auto *sub = app.add_subcommand("dirty", "track the guest pages a busy "
				       "device writes: start, report, stop");
	sub->add_option("device", a->spec, "device: a spec (the simulated DMA "
			"function, with the workload) or a real device's "
			"path (no workload)")->required();
	/* Refused above an hour, rather than wrapped into forever. */
	sub->add_option("--ms", a->ms, "workload time between start and "
			"report (at most 3600000)")->capture_default_str()
		->check(number_in(0, 3600000, true));
	sub->add_flag("--iommu", a->iommu, "the IOMMU's dirty pages even if "
		      "the device does DMA logging");
	a->seed_opt = sub->add_option("--seed", a->seed, "workload seed")
		->capture_default_str();
	a->rate_opt = sub->add_option("--rate", a->rate, "workload descriptors "
				      "per second")
		->capture_default_str();
	sub->add_option("--guest-mem", a->guest, "guest memory (K/M/G/T, "
			"powers of 1024; 4K to 64G, whole pages)")
		->transform(size_in(4096, 1ULL << 36, 4096))
		->default_str("16M");
	sub->add_flag("--json", a->as_json, "JSON output");
	return {sub, false, [a] {
		if (is_device_path(a->spec) &&
		    (a->seed_opt->count() || a->rate_opt->count()))
			return fail(EXIT_USAGE, "dirty: --seed and --rate are "
				    "the workload's, which plays the simulated "
				    "function in-process; " + a->spec +
				    " is a real device");
		return cmd_dirty(a->spec, a->ms, a->iommu, a->seed, a->rate,
				 a->guest, a->as_json);
	}};
}

} // namespace uvfio::mig_ctl
