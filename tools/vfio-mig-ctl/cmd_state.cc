// SPDX-License-Identifier: GPL-2.0-only
/*
 * state: get a device's migration state, or set it, printing each arc.
 */
#include <cerrno>
#include <cstring>

#include <uvfio/tools/fsm.h>

#include "commands.h"
#include "common.h"

namespace uvfio::mig_ctl {

namespace {

/* A v1 device_state for messages: its state's name, or the bits. */
std::string v1_state_text(__u32 bits)
{
	__u32 st;
	if (v1_state_of_bits(bits, &st))
		return state_name(st);
	return "invalid (" + v1_bits_text(bits) + ")";
}

/*
 * state: print the state, or set each target in turn. v2: one SET per
 * arc of the path the core would walk, printed with whether it opened a
 * data fd (closed at once). v1: one read-modify-write of device_state per
 * target, printed with the bits before and after; after a refused write
 * the state is read again, as the KABI says.
 */
int cmd_state(const std::string &spec, const std::vector<std::string> &targets,
	      bool as_json)
{
	std::vector<__u32> wants;
	for (const std::string &target : targets) {
		__u32 want;
		if (parse_state(target, &want))
			return fail(EXIT_USAGE, "unknown state \"" + target + "\"");
		wants.push_back(want);
	}
	CmdDevice d;
	if (int rc = d.open(spec))
		return rc;
	if (int rc = d.open_mig("state"))
		return rc;
	const bool v1 = protocol_opt == Protocol::V1;
	Transport *t = d.t.get();
	Device &dev = *d.dev;
	DeviceV1 *region = v1 ? &static_cast<MigrationV1 &>(*d.mig).region()
			      : nullptr;
	DeviceCaps caps;
	__u32 from = 0, bits = 0;
	int ret;
	if (v1) {
		if ((ret = region->read_state(&bits)))
			return fail(EXIT_FAIL, "cannot read device_state: " +
						       std::string(strerror(-ret)));
		if (!v1_state_of_bits(bits, &from))
			return fail(EXIT_FAIL, "device_state reads " +
					v1_bits_text(bits) + ", which the v1 "
					"KABI calls invalid");
	} else if ((ret = dev.probe(&caps)) || (ret = dev.get_state(&from))) {
		return fail(EXIT_FAIL, "cannot read the state: " +
					       std::string(strerror(-ret)));
	}
	const char *proto = protocol_name(protocol_opt);
	if (wants.empty()) {
		if (as_json)
			emit_json(d.report({{"protocol", proto},
					    {"state", state_name(from)}}));
		else
			fmt::print("{}\n", state_name(from));
		return 0;
	}
	json arcs = json::array();
	__u32 cur = from;
	for (__u32 want : wants) {
		if (want == cur) {
			if (!as_json)
				fmt::print("{} (already)\n", state_name(cur));
			continue;
		}
		if (v1) {
			__u32 want_bits;
			ret = v1_bits_of_state(want, region->region().ndma,
					       &want_bits);
			if (ret == -EOPNOTSUPP)
				return fail(EXIT_FAIL, fmt::format(
					"{} -> {}: the migration region has no NDMA "
					"capability, which the P2P states need: {}",
					state_name(cur), state_name(want),
					strerror(-ret)));
			if (ret)
				return fail(EXIT_FAIL, fmt::format(
					"{} -> {}: not a state to set (the device "
					"enters it on a failed transition; a reset "
					"leaves it): {}", state_name(cur),
					state_name(want), strerror(-ret)));
			__u32 before = bits;
			ret = d.mig->set_state(want);
			__u32 now = 0;
			int r2 = region->read_state(&now);
			if (ret)
				return fail(EXIT_FAIL, fmt::format(
					"{} -> {}: {} (device now {})",
					state_name(cur), state_name(want),
					strerror(-ret), r2 ? "unreadable" :
					v1_state_text(now)));
			bits = now;
			arcs.push_back({{"from", state_name(cur)},
					{"to", state_name(want)},
					{"data_fd", false}});
			if (!as_json)
				fmt::print("{} -> {} ({} -> {})\n",
					   state_name(cur), state_name(want),
					   v1_bits_text(before),
					   v1_bits_text(now));
			cur = want;
			continue;
		}
		/* One SET per arc of the path the core would walk, printed. */
		std::vector<__u32> path;
		if (!fsm_path(caps.migration_flags, cur, want, &path))
			return fail(EXIT_FAIL, fmt::format(
				"{} -> {}: no path for this device ({}): {}",
				state_name(cur), state_name(want),
				flags_text(caps.migration_flags), strerror(EINVAL)));
		for (__u32 next : path) {
			int fd = -1;
			ret = dev.set_state(next, &fd);
			if (ret) {
				__u32 prev = cur;
				dev.get_state(&cur);
				return fail(EXIT_FAIL, fmt::format(
					"arc {} -> {}: {} (device now {})",
					state_name(prev), state_name(next),
					strerror(-ret), state_name(cur)));
			}
			bool data_fd = fd >= 0;
			if (fd >= 0)
				t->close(fd);
			arcs.push_back({{"from", state_name(cur)},
					{"to", state_name(next)},
					{"data_fd", data_fd}});
			if (!as_json)
				fmt::print("{} -> {}{}\n", state_name(cur),
					   state_name(next),
					   data_fd ? " (data fd)" : "");
			cur = next;
		}
	}
	if (as_json)
		emit_json(d.report({{"protocol", proto},
				    {"from", state_name(from)},
				    {"to", state_name(wants.back())},
				    {"arcs", arcs}}));
	return 0;
}

} // namespace

Command add_state(CLI::App &app)
{
	struct Args {
		std::string spec;
		std::vector<std::string> targets;
		bool as_json = false;
	};
	auto a = std::make_shared<Args>();
	auto *sub = app.add_subcommand("state", "get the migration state, or "
				       "set it, printing each arc");
	sub->add_option("device", a->spec, kDeviceHelp)->required();
	sub->add_option("target", a->targets, "state(s) to set, in turn: "
			"running, stop, stop_copy, resuming, running_p2p, "
			"pre_copy, pre_copy_p2p");
	sub->add_flag("--json", a->as_json, "JSON output");
	return {sub, true,
		[a] { return cmd_state(a->spec, a->targets, a->as_json); }};
}

} // namespace uvfio::mig_ctl
