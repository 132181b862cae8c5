// SPDX-License-Identifier: GPL-2.0-only
/*
 * drivers: the device drivers: built in, and the plugins on
 * UVFIO_DRIVER_PATH (loaded to be listed: a plugin registers its driver
 * when it loads).
 */
#include <uvfio/uvfio.h>

#include "commands.h"
#include "common.h"

namespace uvfio::mig_ctl {

namespace {

int cmd_drivers(bool as_json)
{
	/* A plugin that does not load is said (1), after the list. */
	std::vector<PluginFile> plugins;
	int rc = load_all_plugins(&plugins);
	json out = json::array();
	const char *spec, *name, *desc;
	for (unsigned i = 0; !uvfio_sim_driver(i, &spec, &name, &desc); i++) {
		std::string file;
		for (const PluginFile &p : plugins)
			if (p.name == spec)
				file = p.path;
		if (as_json) {
			json d = {{"spec_name", spec}, {"driver", name},
				  {"description", desc}};
			if (!file.empty())
				d["plugin"] = file;
			out.push_back(d);
		} else {
			fmt::print("{:<10} {:<18} {}{}\n", spec, name, desc,
				   file.empty() ? "" : " (plugin " + file + ")");
		}
	}
	if (as_json)
		emit_json(out);
	return rc;
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
