// SPDX-License-Identifier: GPL-2.0-only
/*
 * migrate: a live migration from one device to another in this process,
 * with a report of its passes, downtime and verification; with several
 * --pair, the devices of one VM migrated together (migrate_vm()).
 */
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "commands.h"
#include "common.h"

namespace uvfio::mig_ctl {

namespace {

/*
 * The exit of a migration that ran: 1 if it did not verify, 3 (a warning)
 * if it verified over its downtime budget, else 0.
 */
int migrate_exit(bool verified, const std::string &detail, double downtime_ms,
		 double budget_ms)
{
	if (!verified)
		return fail(EXIT_FAIL, "migrate: verification failed: " + detail);
	/* A fault that fired fails the command (main): its line is the one. */
	if (downtime_ms > budget_ms && fired_fault_points().empty())
		return warn(EXIT_BUDGET, fmt::format(
			"migrate: downtime {:.2f} ms exceeded the budget of {} "
			"ms (exit {})", downtime_ms, budget_ms, EXIT_BUDGET));
	return 0;
}

/*
 * The keys a pair's report and a VM's share: passes, totals, downtime
 * against its budget (missed: a warning and exit 3, for a script to
 * decide), verification.
 */
template <typename Report> json report_json(const Report &r, double budget_ms)
{
	json passes = json::array();
	for (auto &p : r.passes)
		passes.push_back({{"device_bytes", p.device_bytes},
				  {"guest_pages", p.guest_pages},
				  {"seconds", p.seconds}});
	return {{"protocol", protocol_name(protocol_opt)},
		{"precopy", r.precopy}, {"dirty_tracking", r.dirty_tracking},
		{"passes", passes}, {"stop_copy_bytes", r.stop_copy_bytes},
		{"final_guest_pages", r.final_guest_pages},
		{"downtime_ms", r.downtime_ms},
		{"downtime_budget_ms", budget_ms},
		{"downtime_budget_met", r.downtime_ms <= budget_ms},
		{"total_seconds", r.total_seconds},
		{"total_bytes", r.total_bytes},
		{"throughput_gbs",
		 r.total_bytes / std::max(r.total_seconds, 1e-9) / 1e9},
		{"verified", r.verified}, {"verification", r.verify_detail}};
}

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
	std::vector<std::pair<std::string, std::string>> pairs;	/* --pair */
	bool p2p_writes = true;
	bool unsafe_no_p2p = false;
};

int cmd_migrate_vm(const MigrateArgs &a);

/*
 * migrate: each device with its own container and guest memory, in this
 * process; either may be a real device (no workload on one: it plays the
 * simulated function's guest driver in-process).
 */
int cmd_migrate_one(const MigrateArgs &a)
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

	double gbs = r.total_bytes / std::max(r.total_seconds, 1e-9) / 1e9;
	json j = {{"source", src.name()}, {"destination", dst.name()},
		  {"workload_descriptors", src.vm.workload_completed()}};
	j.update(report_json(r, a.budget_ms));
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
	return migrate_exit(r.verified, r.verify_detail, r.downtime_ms,
			    a.budget_ms);
}

/* The devices of one VM: the sources in one, the destinations in another. */
int cmd_migrate_vm(const MigrateArgs &a)
{
	std::vector<std::string> srcs, dsts;
	for (auto &[s, d] : a.pairs) {
		/* One container, one guest memory: simulated in this process. */
		if (is_device_path(s) || is_device_path(d))
			return fail(EXIT_USAGE, "migrate: several pairs are one VM "
				    "of devices simulated here; " +
				    (is_device_path(s) ? s : d) + " is a real device");
		for (const std::string *spec : {&s, &d})
			if (spec_bdf(*spec).empty())
				return fail(EXIT_USAGE, "device spec \"" + *spec +
					    "\" has no bdf=");
		srcs.push_back(s);
		dsts.push_back(d);
	}
	if (protocol_opt != Protocol::V2)
		return fail(EXIT_USAGE, "migrate: several pairs migrate through "
			    "v2 only (v1 has no P2P states)");
	/* Printed, not kept: a failure's own line stays the JSON "error". */
	if (a.unsafe_no_p2p)
		fmt::print(stderr, "vfio-mig-ctl: warning: {}\n",
			   "--unsafe-no-p2p: UNSAFE, devices are stopped and saved "
			"one at a time without the P2P step, so a peer's DMA into "
			"a device already saved is lost");
	SimVm src, dst;
	std::string why;
	/* A spec that creates no device is usage, as for one pair, unless
	 * an armed fault made it fail. */
	const int bad_spec = fired_fault_points().empty() ? EXIT_USAGE : EXIT_FAIL;
	if (src.create_vm(srcs, a.guest, &why))
		return fail(bad_spec, why);
	if (dst.create_vm(dsts, a.guest, &why))
		return fail(bad_spec, why);
	auto t = make_sim_transport();
	std::vector<std::unique_ptr<Device>> devs;
	std::vector<std::unique_ptr<MigrationV2>> migs;
	std::vector<VmDevice> list;
	for (size_t i = 0; i < srcs.size(); i++) {
		for (const SimVm *vm : {&src, &dst}) {
			devs.push_back(std::make_unique<Device>(*t, vm->fd(i)));
			migs.push_back(std::make_unique<MigrationV2>(*devs.back()));
		}
		list.push_back({migs[2 * i].get(), migs[2 * i + 1].get(),
				src.bdf(i)});
	}
	if (a.workload) {
		for (size_t i = 0; i < srcs.size(); i++)
			if (src.start_workload(i, a.seed + i, a.rate, a.p2p_writes,
					       &why))
				return fail(EXIT_FAIL, "workload on " + src.bdf(i) +
						       ": " + why);
		std::this_thread::sleep_for(
			std::chrono::milliseconds(a.warmup_ms));
	}
	VmMigrateOptions opt;
	opt.base.precopy = !a.no_precopy;
	opt.base.max_passes = a.max_passes;
	opt.base.downtime_budget_ms = a.budget_ms;
	opt.base.stream = stream_opt;
	opt.base.cpu_written = src.cpu_written();
	opt.unsafe_no_p2p = a.unsafe_no_p2p;
	__u64 estimate = 0;
	for (auto &d : devs) {
		__u64 n = 0;
		if (!d->data_size(&n))
			estimate += n;
	}
	VmMigrateReport r;
	int ret;
	{
		ProgressBar bar("migrating", estimate / 2);
		ret = migrate_vm(list, src.guest(), dst.guest(), opt,
				 [&] { src.stop_workload(); }, &r, &why, bar.fn());
	}
	src.stop_workload();
	if (ret)
		return fail(EXIT_FAIL, "migrate: " + why);

	json devices = json::array();
	for (size_t i = 0; i < r.devices.size(); i++) {
		const VmDeviceReport &d = r.devices[i];
		__u64 peer = 0;
		for (size_t j = 0; j < src.devices(); j++)
			peer += src.peer_writes_done(i, j);
		devices.push_back({{"source", d.name}, {"destination", dst.bdf(i)},
				   {"pass_bytes", d.pass_bytes},
				   {"stop_copy_bytes", d.stop_copy_bytes},
				   {"workload_descriptors", src.workload_completed(i)},
				   {"peer_writes", peer},
				   {"verified", d.verified},
				   {"verification", d.verify_detail}});
	}
	double gbs = r.total_bytes / std::max(r.total_seconds, 1e-9) / 1e9;
	json j = {{"devices", devices},
		  {"order", r.p2p ? "p2p" : "unsafe-no-p2p"}};
	j.update(report_json(r, a.budget_ms));
	if (a.as_json) {
		emit_json(j);
	} else {
		fmt::print("migration of a VM, {} devices, {} order\n",
			   r.devices.size(), r.p2p ? "P2P" : "UNSAFE (no P2P)");
		for (size_t i = 0; i < r.devices.size(); i++) {
			const VmDeviceReport &d = r.devices[i];
			__u64 pre = 0;
			for (__u64 b : d.pass_bytes)
				pre += b;
			fmt::print("  {} -> {}\n", d.name, dst.bdf(i));
			fmt::print("    pre-copy        {:>12} device bytes in {} "
				   "passes\n", pre, d.pass_bytes.size());
			fmt::print("    stop-copy       {:>12} device bytes\n",
				   d.stop_copy_bytes);
			if (a.workload)
				fmt::print("    workload        {} descriptors, {} "
					   "into peers\n", src.workload_completed(i),
					   devices[i]["peer_writes"].get<__u64>());
			fmt::print("    verification    {}: {}\n",
				   d.verified ? "PASS" : "FAIL", d.verify_detail);
		}
		fmt::print("  pre-copy          {}\n", r.precopy ? "yes" : "no");
		fmt::print("  dirty tracking    {}\n", r.dirty_tracking);
		for (size_t i = 0; i < r.passes.size(); i++)
			fmt::print("  pass {:<2}           {:>12} device bytes, {:>6} "
				   "guest pages, {:.1f} ms\n", i + 1,
				   r.passes[i].device_bytes, r.passes[i].guest_pages,
				   r.passes[i].seconds * 1e3);
		fmt::print("  stop-copy         {:>12} device bytes, {:>6} "
			   "guest pages\n", r.stop_copy_bytes, r.final_guest_pages);
		fmt::print("  downtime          {:.2f} ms (budget {} ms), the whole "
			   "VM\n", r.downtime_ms, a.budget_ms);
		fmt::print("  total             {:.1f} MB in {:.3f} s, {:.2f} GB/s\n",
			   r.total_bytes / 1e6, r.total_seconds, gbs);
		fmt::print("  verification      {}: {}\n",
			   r.verified ? "PASS" : "FAIL", r.verify_detail);
	}
	return migrate_exit(r.verified, r.verify_detail, r.downtime_ms,
			    a.budget_ms);
}

int cmd_migrate(MigrateArgs a)
{
	/* SRC DST is one pair, before the --pair ones. */
	if (a.src.empty() != a.dst.empty())
		return fail(EXIT_USAGE, "migrate: a source without a destination");
	if (!a.src.empty())
		a.pairs.insert(a.pairs.begin(), {a.src, a.dst});
	if (a.pairs.empty())
		return fail(EXIT_USAGE, "migrate: no device: give SRC DST or "
			    "--pair SRC DST");
	if (a.pairs.size() == 1) {
		if (a.unsafe_no_p2p)
			return fail(EXIT_USAGE, "migrate: --unsafe-no-p2p is for "
				    "several pairs");
		a.src = a.pairs[0].first;
		a.dst = a.pairs[0].second;
		return cmd_migrate_one(a);
	}
	return cmd_migrate_vm(a);
}

} // namespace

Command add_migrate(CLI::App &app)
{
	auto m = std::make_shared<MigrateArgs>();
	auto *sub = app.add_subcommand("migrate", "live-migrate one device to "
				       "another in this process, or the devices "
				       "of one VM (several --pair), with a report");
	sub->add_option("source", m->src, "source device: a spec or a path");
	sub->add_option("destination", m->dst, "destination device: a spec or "
			"a path");
	sub->add_option("--pair", m->pairs, "SRC DST: a device of the VM and "
			"its destination (repeatable; SOURCE DESTINATION is one "
			"more). Several pairs are one VM: specs only, one "
			"container and guest memory per side, each BAR2 mapped "
			"for P2P, migrated in QEMU's order, which needs "
			"VFIO_MIGRATION_P2P on every device");
	sub->add_flag("--p2p-writes,!--no-p2p-writes", m->p2p_writes,
		      "with --workload and several pairs: 1 descriptor in 4 "
		      "writes into a peer's BAR2 (default on)");
	sub->add_flag("--unsafe-no-p2p", m->unsafe_no_p2p,
		      "UNSAFE: migrate several devices without the P2P step "
		      "(also when one lacks P2P): each is stopped and saved "
		      "while the others run, losing their writes into it");
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
	sub->add_option("--guest-mem", m->guest, "guest memory per device, or "
			"of the VM with several pairs (K/M/G/T suffix, powers "
			"of 1024; 4K to 64G, whole pages)")
		->transform(size_in(4096, 1ULL << 36, 4096))
		->default_str("16M");
	sub->add_flag("--json", m->as_json, "JSON report");
	return {sub, true, [m] { return cmd_migrate(*m); }};
}

} // namespace uvfio::mig_ctl
