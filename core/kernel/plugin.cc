// SPDX-License-Identifier: GPL-2.0-only
/*
 * Out-of-tree drivers: a driver built as a shared object against the
 * installed library is found by its spec name in the directories of
 * UVFIO_DRIVER_PATH (colon-separated) as NAME.so and loaded with dlopen();
 * its module_pci_driver() constructor registers it. Plugins stay loaded:
 * their devices and ops tables may live as long as the process.
 *
 * The rules for finding and loading one live here only: uvfio_sim_add()
 * and the tools (through uvfio_driver_plugin*()) must see the same plugin
 * for a name, or a tool would list or arm one the core never loads.
 */
#include <dirent.h>
#include <dlfcn.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <new>
#include <set>
#include <string>

#include <uvfio/linux/kernel.h>
#include <uvfio/uvfio.h>

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

/* The plugins on UVFIO_DRIVER_PATH now: spec name -> DIR/NAME.so. */
std::map<std::string, std::string> plugins_on_path()
{
	std::map<std::string, std::string> found;
	const char *path = std::getenv("UVFIO_DRIVER_PATH");
	if (!path)
		return found;
	std::string dirs = path;
	for (size_t start = 0; start <= dirs.size();) {
		size_t colon = dirs.find(':', start);
		if (colon == std::string::npos)
			colon = dirs.size();
		std::string dir = dirs.substr(start, colon - start);
		start = colon + 1;
		if (dir.empty())
			continue;
		DIR *d = opendir(dir.c_str());
		if (!d)
			continue;
		while (struct dirent *e = readdir(d)) {
			std::string f = e->d_name;
			if (f.size() <= 3 || f.compare(f.size() - 3, 3, ".so"))
				continue;
			std::string name = f.substr(0, f.size() - 3);
			/* The first NAME.so found is the one: no silent
			 * fallback to a later directory's. */
			if (plugin_name_ok(name))
				found.emplace(name, dir + "/" + f);
		}
		closedir(d);
	}
	return found;
}

/*
 * dlopen() the plugin of name. 0, -ENOENT (none on the path) or -EINVAL
 * with *why: "driver plugin FILE: " and the loader's reason.
 */
int plugin_open(const std::string &name, std::string *why)
{
	if (!plugin_name_ok(name)) {
		*why = "'" + name + "' is not a driver plugin name";
		return -ENOENT;
	}
	auto all = plugins_on_path();
	auto it = all.find(name);
	if (it == all.end()) {
		*why = "no driver plugin " + name + ".so in UVFIO_DRIVER_PATH";
		return -ENOENT;
	}
	const std::string &file = it->second;
	if (dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL)) {
		pr_info("driver plugin %s loaded", file.c_str());
		return 0;
	}
	const char *e = dlerror();
	std::string msg = e ? e : "cannot be loaded";
	/* glibc's message starts with the file already. */
	if (msg.rfind(file + ": ", 0) == 0)
		msg.erase(0, file.size() + 2);
	*why = "driver plugin " + file + ": " + msg;
	return -EINVAL;
}

/* Strings handed out for the process's lifetime, each kept once. */
const char *keep(const std::string &s)
{
	static std::mutex m;
	/* Never freed: callers may use them until exit. */
	static auto *kept = new std::set<std::string>;
	std::lock_guard<std::mutex> l(m);
	return kept->insert(s).first->c_str();
}

} // namespace

int uvfio_plugin_load(const std::string &name)
{
	std::string why;
	int ret = plugin_open(name, &why);
	if (ret == -EINVAL)
		pr_err("%s", why.c_str());
	return ret;
}

int uvfio_driver_plugin(unsigned int idx, const char **name,
			const char **file)
{
	try {
		auto all = plugins_on_path();
		if (idx >= all.size()) {
			errno = ENOENT;
			return -1;
		}
		auto it = std::next(all.begin(), idx);
		if (name)
			*name = keep(it->first);
		if (file)
			*file = keep(it->second);
		return 0;
	} catch (const std::bad_alloc &) {
		errno = ENOMEM;
		return -1;
	}
}

int uvfio_driver_plugin_load(const char *name, char *why, size_t why_size)
{
	if (!name) {
		errno = EFAULT;
		return -1;
	}
	int ret;
	std::string reason;
	try {
		ret = 0;
		for (const struct pci_driver *d : uvfio_bus_drivers())
			if (!strcmp(d->spec_name, name)) {
				reason = std::string("driver ") + name +
					 " is registered already";
				ret = -EEXIST;
			}
		if (!ret)
			ret = plugin_open(name, &reason);
	} catch (const std::bad_alloc &) {
		ret = -ENOMEM;
		reason.clear();
	}
	if (!ret)
		return 0;
	if (reason.empty())
		reason = strerror(-ret);
	if (why && why_size) {
		size_t n = std::min(reason.size(), why_size - 1);
		memcpy(why, reason.data(), n);
		why[n] = '\0';
	}
	errno = -ret;
	return -1;
}
