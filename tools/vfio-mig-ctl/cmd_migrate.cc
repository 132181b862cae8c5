// SPDX-License-Identifier: GPL-2.0-only
/*
 * migrate: a live migration from one device to another in this process,
 * with a report of its passes, downtime and verification.
 */
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "commands.h"
#include "common.h"

namespace uvfio::mig_ctl {

namespace {

struct MigrateArgs {
	std::string src, dst;
	bool no_precopy = false;
	bool workload = false;
	__u64 seed = 1;
	unsigned rate = 20000;
	unsigned warmup_ms = 200;
	double budget_ms = 10;
	unsigned max_passes = 10;
	size_t guest = 16 << 20;
	bool as_json = false;
};

/*
 * migrate: each device with its own container and guest memory, in this
 * process; either may be a real device (no workload on one: it plays the
 * simulated function's guest driver in-process).
 */
int cmd_migrate(const MigrateArgs &a)
{
	CmdDevice src, dst;
	std::string why;
	if (a.workload && is_device_path(a.src))
		return fail(EXIT_USAGE, "--workload plays the simulated DMA "
				"function's guest driver in this process; " +
				a.src + " is a real device");
	if (int rc = src.open(a.src, a.guest))
		return rc;
	if (int rc = dst.open(a.dst, a.guest))
		return rc;
	if (int rc = src.open_mig("migrate"))
		return rc;
	if (int rc = dst.open_mig("migrate"))
		return rc;
	Device &s = *src.dev;
	if (a.workload) {
		if (src.vm.start_workload(a.seed, a.rate, &why))
			return fail(EXIT_FAIL, "workload: " + why);
		std::this_thread::sleep_for(
			std::chrono::milliseconds(a.warmup_ms));
	}
	MigrateOptions opt;
	opt.precopy = !a.no_precopy;
	opt.max_passes = a.max_passes;
	opt.downtime_budget_ms = a.budget_ms;
	opt.stream = stream_opt;
	opt.cpu_written = src.vm.cpu_written();
	MigrateReport r;
	__u64 estimate = 0;
	if (protocol_opt == Protocol::V2)
		s.data_size(&estimate);
	int ret;
	{
		ProgressBar bar("migrating", estimate);
		ret = migrate(*src.mig, src.guest(), *dst.mig, dst.guest(), opt,
			      [&] { src.vm.stop_workload(); }, &r, &why,
			      bar.fn());
	}
	if (ret)
		return fail(EXIT_FAIL, "migrate: " + why);

	json passes = json::array();
	for (auto &p : r.passes)
		passes.push_back({{"device_bytes", p.device_bytes},
				  {"guest_pages", p.guest_pages},
				  {"seconds", p.seconds}});
	double gbs = r.total_bytes / std::max(r.total_seconds, 1e-9) / 1e9;
	/* Migrated and verified, but the guest stopped longer than asked:
	 * a warning and its own exit code, for a script to decide. */
	const bool budget_met = r.downtime_ms <= a.budget_ms;
	json j = {{"source", src.name()}, {"destination", dst.name()},
		  {"protocol", protocol_name(protocol_opt)},
		  {"precopy", r.precopy}, {"dirty_tracking", r.dirty_tracking},
		  {"workload_descriptors", src.vm.workload_completed()},
		  {"passes", passes}, {"stop_copy_bytes", r.stop_copy_bytes},
		  {"final_guest_pages", r.final_guest_pages},
		  {"downtime_ms", r.downtime_ms},
		  {"downtime_budget_ms", a.budget_ms},
		  {"downtime_budget_met", budget_met},
		  {"total_seconds", r.total_seconds},
		  {"total_bytes", r.total_bytes}, {"throughput_gbs", gbs},
		  {"verified", r.verified}, {"verification", r.verify_detail}};
	if (a.as_json) {
		emit_json(j);
	} else {
		fmt::print("migration {} -> {}{}\n", src.label(), dst.label(),
			   via());
		fmt::print("  pre-copy          {}\n", r.precopy ? "yes" : "no");
		fmt::print("  dirty tracking    {}\n", r.dirty_tracking);
		if (a.workload)
			fmt::print("  workload          {} descriptors done by the "
				   "source\n", src.vm.workload_completed());
		for (size_t i = 0; i < r.passes.size(); i++)
			fmt::print("  pass {:<2}           {:>12} device bytes, {:>6} "
				   "guest pages, {:.1f} ms\n", i + 1,
				   r.passes[i].device_bytes, r.passes[i].guest_pages,
				   r.passes[i].seconds * 1e3);
		fmt::print("  stop-copy         {:>12} device bytes, {:>6} "
			   "guest pages\n", r.stop_copy_bytes, r.final_guest_pages);
		fmt::print("  downtime          {:.2f} ms (budget {} ms)\n",
			   r.downtime_ms, a.budget_ms);
		fmt::print("  total             {:.1f} MB in {:.3f} s, {:.2f} GB/s\n",
			   r.total_bytes / 1e6, r.total_seconds, gbs);
		fmt::print("  verification      {}: {}\n",
			   r.verified ? "PASS" : "FAIL", r.verify_detail);
	}
	if (!r.verified)
		return fail(EXIT_FAIL, "migrate: verification failed: " +
				       r.verify_detail);
	/* A fault that fired fails the command (main): its line is the one. */
	if (!budget_met && fired_fault_points().empty())
		return warn(EXIT_BUDGET, fmt::format(
			"migrate: downtime {:.2f} ms exceeded the budget of {} "
			"ms (exit {})", r.downtime_ms, a.budget_ms,
			EXIT_BUDGET));
	return 0;
}

} // namespace

Command add_migrate(CLI::App &app)
{
	auto m = std::make_shared<MigrateArgs>();
	auto *sub = app.add_subcommand("migrate", "live-migrate one device to "
				       "another in this process, with a report");
	sub->add_option("source", m->src, "source device: a spec or a path")
		->required();
	sub->add_option("destination", m->dst, "destination device: a spec or "
			"a path")->required();
	sub->add_flag("--no-precopy", m->no_precopy,
		      "stop-and-copy only, even if the source offers PRE_COPY");
	sub->add_flag("--workload", m->workload,
		      "run the seeded guest workload on the source meanwhile");
	sub->add_option("--seed", m->seed, "workload seed")->capture_default_str();
	sub->add_option("--rate", m->rate, "workload descriptors per second")
		->capture_default_str();
	sub->add_option("--warmup-ms", m->warmup_ms,
			"workload time before the migration starts")
		->capture_default_str()->check(number_in(0, 3600000, true));
	sub->add_option("--downtime-budget", m->budget_ms,
			"switch over when what is left fits (ms); exit 3 if "
			"the downtime exceeds it")
		->capture_default_str()->check(number_in(0.001, 3600000, false));
	sub->add_option("--max-passes", m->max_passes, "pre-copy passes at most")
		->capture_default_str()->check(number_in(1, 1000, true));
	/* As a device spec's sizes; 0 has no memory to migrate. */
	sub->add_option("--guest-mem", m->guest, "guest memory per device "
			"(K/M/G/T suffix, powers of 1024; 4K to 64G, whole "
			"pages)")
		->transform(size_in(4096, 1ULL << 36, 4096))
		->default_str("16M");
	sub->add_flag("--json", m->as_json, "JSON report");
	return {sub, true, [m] { return cmd_migrate(*m); }};
}

} // namespace uvfio::mig_ctl
