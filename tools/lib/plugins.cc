// SPDX-License-Identifier: GPL-2.0-only
/*
 * The driver plugins on UVFIO_DRIVER_PATH; see <uvfio/tools/plugins.h>.
 * The core decides which file is a name's plugin and how it is loaded
 * (uvfio_driver_plugin*()): a tool asks it rather than repeat the rules.
 */
#include <cerrno>

#include <uvfio/tools/plugins.h>
#include <uvfio/uvfio.h>

namespace uvfio::tools {

std::vector<PluginFile> find_driver_plugins()
{
	std::vector<PluginFile> out;
	const char *name, *file;
	for (unsigned int i = 0; !uvfio_driver_plugin(i, &name, &file); i++)
		out.push_back({name, file});
	return out;
}

std::string find_driver_plugin(const std::string &name)
{
	for (const PluginFile &p : find_driver_plugins())
		if (p.name == name)
			return p.path;
	return "";
}

int load_driver_plugin(const std::string &name, std::string *why)
{
	char reason[1024];
	if (!uvfio_driver_plugin_load(name.c_str(), reason, sizeof(reason)))
		return 0;
	int err = errno;
	if (why)
		*why = reason;
	return -err;
}

} // namespace uvfio::tools
