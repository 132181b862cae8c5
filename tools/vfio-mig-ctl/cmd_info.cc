// SPDX-License-Identifier: GPL-2.0-only
/*
 * info: a device's regions, interrupts and migration support.
 */
#include <cerrno>
#include <cstring>

#include "commands.h"
#include "common.h"

namespace uvfio::mig_ctl {

namespace {

int cmd_info(const std::string &spec, bool as_json)
{
	CmdDevice d;
	if (int rc = d.open(spec))
		return rc;
	Transport *t = d.t.get();
	Device &dev = *d.dev;
	std::string why;

	struct vfio_device_info info = {};
	info.argsz = sizeof(info);
	int ret = t->ioctl(d.fd(), VFIO_DEVICE_GET_INFO, &info);
	if (ret)
		return fail(EXIT_FAIL, "GET_INFO: " + std::string(strerror(-ret)));
	DeviceCaps caps;
	if ((ret = dev.probe(&caps)))
		return fail(EXIT_FAIL, "probe: " + std::string(strerror(-ret)));
	__u32 state = 0;
	if (caps.migration)
		dev.get_state(&state);

	json regions = json::array();
	static const char *const rnames[] = {"BAR0", "BAR1", "BAR2", "BAR3", "BAR4",
					     "BAR5", "ROM", "CONFIG", "VGA"};
	for (__u32 i = 0; i < info.num_regions && i < 9; i++) {
		struct vfio_region_info r = {};
		r.argsz = sizeof(r);
		r.index = i;
		if (t->ioctl(d.fd(), VFIO_DEVICE_GET_REGION_INFO, &r) || !r.size)
			continue;
		regions.push_back({{"name", rnames[i]}, {"size", r.size},
				   {"offset", r.offset},
				   {"read", bool(r.flags & VFIO_REGION_INFO_FLAG_READ)},
				   {"write", bool(r.flags & VFIO_REGION_INFO_FLAG_WRITE)},
				   {"mmap", bool(r.flags & VFIO_REGION_INFO_FLAG_MMAP)}});
	}
	json j = d.report({{"flags", info.flags},
			   {"regions", regions},
			   {"irqs", info.num_irqs},
			   {"migration", caps.migration},
			   {"migration_flags", flags_text(caps.migration_flags)},
			   {"state", state_name(state)},
			   {"dma_logging", caps.dma_logging},
			   {"stop_copy_size", caps.stop_copy_size}});
	if (as_json) {
		emit_json(j);
		return 0;
	}
	fmt::print("device {}: {} regions, {} irqs\n", d.label(),
		   info.num_regions, info.num_irqs);
	for (auto &r : regions)
		fmt::print("  region {:<6} size {:>12}  {}{}{}\n",
			   r["name"].get<std::string>(), r["size"].get<__u64>(),
			   r["read"].get<bool>() ? "r" : "-",
			   r["write"].get<bool>() ? "w" : "-",
			   r["mmap"].get<bool>() ? "m" : "-");
	if (caps.migration)
		fmt::print("migration: {} (state {}), stop-copy size {} bytes\n",
			   flags_text(caps.migration_flags), state_name(state),
			   caps.stop_copy_size);
	else
		fmt::print("migration: not supported\n");
	fmt::print("dma logging: {}\n", caps.dma_logging ? "yes" : "no");
	return 0;
}

} // namespace

Command add_info(CLI::App &app)
{
	struct Args {
		std::string spec;
		bool as_json = false;
	};
	auto a = std::make_shared<Args>();
	auto *sub = app.add_subcommand("info", "show a device's regions, "
				       "interrupts and migration support");
	sub->add_option("device", a->spec, kDeviceHelp)->required();
	sub->add_flag("--json", a->as_json, "JSON output");
	return {sub, false, [a] { return cmd_info(a->spec, a->as_json); }};
}

} // namespace uvfio::mig_ctl
