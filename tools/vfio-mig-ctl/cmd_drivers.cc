// SPDX-License-Identifier: GPL-2.0-only
/*
 * drivers: the registered device drivers (built-in and plugins).
 */
#include <uvfio/uvfio.h>

#include "commands.h"
#include "common.h"

namespace uvfio::mig_ctl {

namespace {

int cmd_drivers(bool as_json)
{
	json out = json::array();
	const char *spec, *name, *desc;
	for (unsigned i = 0; !uvfio_sim_driver(i, &spec, &name, &desc); i++) {
		if (as_json)
			out.push_back({{"spec_name", spec}, {"driver", name},
				       {"description", desc}});
		else
			fmt::print("{:<10} {:<18} {}\n", spec, name, desc);
	}
	if (as_json)
		fmt::print("{}\n", out.dump(2));
	return 0;
}

} // namespace

Command add_drivers(CLI::App &app)
{
	auto as_json = std::make_shared<bool>(false);
	auto *sub = app.add_subcommand("drivers", "list the device drivers");
	sub->add_flag("--json", *as_json, "JSON output");
	return {sub, false, [as_json] { return cmd_drivers(*as_json); }};
}

} // namespace uvfio::mig_ctl
