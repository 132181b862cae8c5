// SPDX-License-Identifier: GPL-2.0-only
/*
 * Out-of-tree drivers: a driver built as a shared object against the
 * installed library is found by its spec name in the directories of
 * UVFIO_DRIVER_PATH (colon-separated) as NAME.so and loaded with dlopen();
 * its module_pci_driver() constructor registers it. Plugins stay loaded:
 * their devices and ops tables may live as long as the process.
 */
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include <uvfio/linux/kernel.h>

#include "bus.h"

namespace {

/* A spec name that is a file name, not a path. */
bool plugin_name_ok(const std::string &name)
{
	if (name.empty() || name[0] == '.')
		return false;
	for (char c : name)
		if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' ||
		      c == '-' || c == '.'))
			return false;
	return true;
}

} // namespace

int uvfio_plugin_load(const std::string &name)
{
	const char *path = std::getenv("UVFIO_DRIVER_PATH");
	if (!path || !*path || !plugin_name_ok(name))
		return -ENOENT;

	std::string dirs = path;
	for (size_t start = 0; start <= dirs.size();) {
		size_t colon = dirs.find(':', start);
		if (colon == std::string::npos)
			colon = dirs.size();
		std::string dir = dirs.substr(start, colon - start);
		start = colon + 1;
		if (dir.empty())
			continue;
		std::string file = dir + "/" + name + ".so";
		if (access(file.c_str(), F_OK))
			continue;
		/* The first NAME.so found is the one: no silent fallback. */
		if (!dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL)) {
			pr_err("driver plugin %s: %s", file.c_str(), dlerror());
			return -EINVAL;
		}
		pr_info("driver plugin %s loaded", file.c_str());
		return 0;
	}
	return -ENOENT;
}
