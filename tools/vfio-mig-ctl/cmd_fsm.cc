// SPDX-License-Identifier: GPL-2.0-only
/*
 * fsm: walk a device's whole transition matrix and check it against
 * the documented FSM.
 */
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <uvfio/tools/fsm.h>

#include "commands.h"
#include "common.h"
#include "stream.h"

namespace uvfio::mig_ctl {

namespace {

/*
 * Walk the whole transition matrix of a device: for every supported pair,
 * reset, go to `from`, SET `to`, and check the result against the
 * documented FSM (reachable iff there is a path; GET then reports `to`).
 * Leaving RESUMING needs a stream: the device's own state, saved first.
 */
int cmd_fsm(const std::string &spec, bool as_json)
{
	CmdDevice d;
	if (int rc = d.open(spec))
		return rc;
	Transport *t = d.t.get();
	Device &dev = *d.dev;
	std::string why;
	DeviceCaps caps;
	int ret = dev.probe(&caps);
	if (ret || !caps.migration)
		return fail(EXIT_FAIL, "the device does not support migration");
	MigrationV2 mig(dev);
	int snap = save_to_memfd(mig, false, &why);
	if (snap < 0)
		return fail(EXIT_FAIL, "cannot save the device: " + why);

	auto go = [&](__u32 s) -> int {
		int fd = -1;
		int r = dev.set_state(s, &fd);
		if (!r && fd >= 0) {
			if (s == VFIO_DEVICE_STATE_RESUMING) {
				lseek(snap, 0, SEEK_SET);
				r = plain_copy({nullptr, snap}, {t, fd}, false,
					       nullptr);
			}
			t->close(fd);
		}
		return r;
	};

	json rows = json::object();
	unsigned mismatches = 0, checked = 0;
	std::string table = fmt::format("{:<13}", "from \\ to");
	for (__u32 to = 1; to < NUM_MIG_STATES; to++)
		if (fsm_has_state(caps.migration_flags, to))
			table += fmt::format(" {:>13}", state_name(to));
	table += "\n";
	for (__u32 from = 1; from < NUM_MIG_STATES; from++) {
		if (!fsm_has_state(caps.migration_flags, from))
			continue;
		json row = json::object();
		table += fmt::format("{:<13}", state_name(from));
		for (__u32 to = 1; to < NUM_MIG_STATES; to++) {
			if (!fsm_has_state(caps.migration_flags, to))
				continue;
			std::vector<__u32> path;
			bool expect = fsm_path(caps.migration_flags, from, to, &path);
			dev.reset();
			if (go(from)) {
				row[state_name(to)] = "setup failed";
				table += fmt::format(" {:>13}", "setup?");
				mismatches++;
				continue;
			}
			int r = go(to);
			__u32 now = 0;
			dev.get_state(&now);
			bool ok = !r && now == to;
			bool good = ok == expect && (ok || r == -EINVAL || !expect);
			std::string cell = ok ? fmt::format("ok({})", path.size())
					      : std::string(strerrorname_np(-r) ?
							    strerrorname_np(-r) : "?");
			if (!good) {
				cell += "!";
				mismatches++;
			}
			checked++;
			row[state_name(to)] = cell;
			table += fmt::format(" {:>13}", cell);
		}
		rows[state_name(from)] = row;
		table += "\n";
	}
	close(snap);
	dev.reset();
	if (as_json)
		emit_json(d.report({{"migration_flags",
				     flags_text(caps.migration_flags)},
				    {"matrix", rows}, {"checked", checked},
				    {"mismatches", mismatches}}));
	else
		fmt::print("{} ({}): ok(n) = reached in n arcs, ! = not as "
			   "documented\n{}{} pairs checked against the documented "
			   "FSM: {}\n", d.label(), flags_text(caps.migration_flags),
			   table, checked,
			   mismatches ? fmt::format("{} differ", mismatches)
				      : std::string("all as documented"));
	return mismatches ? fail(EXIT_FAIL, fmt::format(
					    "fsm: {} transitions differ from the "
					    "documented FSM", mismatches))
			  : 0;
}

} // namespace

Command add_fsm(CLI::App &app)
{
	struct Args {
		std::string spec;
		bool as_json = false;
	};
	auto a = std::make_shared<Args>();
	auto *sub = app.add_subcommand("fsm", "walk a device's whole transition "
				       "matrix and check it");
	sub->add_option("device", a->spec, kDeviceHelp)->required();
	sub->add_flag("--json", a->as_json, "JSON output");
	return {sub, false, [a] { return cmd_fsm(a->spec, a->as_json); }};
}

} // namespace uvfio::mig_ctl
