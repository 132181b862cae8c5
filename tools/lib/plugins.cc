// SPDX-License-Identifier: GPL-2.0-only
/* The driver plugins on UVFIO_DRIVER_PATH; see <uvfio/tools/plugins.h>. */
#include <dirent.h>
#include <dlfcn.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <map>

#include <uvfio/tools/plugins.h>

namespace uvfio::tools {

namespace {

/* As the core takes a spec name: a file name, never a path. */
bool name_ok(const std::string &name)
{
	if (name.empty() || name[0] == '.')
		return false;
	for (char c : name)
		if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' ||
		      c == '-' || c == '.'))
			return false;
	return true;
}

std::vector<std::string> path_dirs(const char *path)
{
	if (!path)
		path = std::getenv("UVFIO_DRIVER_PATH");
	std::vector<std::string> dirs;
	if (!path)
		return dirs;
	std::string all = path;
	for (size_t start = 0; start <= all.size();) {
		size_t colon = all.find(':', start);
		if (colon == std::string::npos)
			colon = all.size();
		if (colon > start)
			dirs.push_back(all.substr(start, colon - start));
		start = colon + 1;
	}
	return dirs;
}

} // namespace

std::vector<PluginFile> find_driver_plugins(const char *path)
{
	std::map<std::string, std::string> found;
	for (const std::string &dir : path_dirs(path)) {
		DIR *d = opendir(dir.c_str());
		if (!d)
			continue;
		while (struct dirent *e = readdir(d)) {
			std::string f = e->d_name;
			if (f.size() <= 3 || f.compare(f.size() - 3, 3, ".so"))
				continue;
			std::string name = f.substr(0, f.size() - 3);
			/* The first directory that has NAME.so wins. */
			if (name_ok(name) && !found.count(name))
				found[name] = dir + "/" + f;
		}
		closedir(d);
	}
	std::vector<PluginFile> out;
	for (auto &[name, file] : found)
		out.push_back({name, file});
	return out;
}

std::string find_driver_plugin(const std::string &name, const char *path)
{
	if (!name_ok(name))
		return "";
	for (const std::string &dir : path_dirs(path)) {
		std::string file = dir + "/" + name + ".so";
		if (!access(file.c_str(), F_OK))
			return file;
	}
	return "";
}

int load_driver_plugin(const PluginFile &p, std::string *why)
{
	/* Plugins stay loaded, as the core keeps them: their drivers and
	 * fault points live as long as the process. */
	if (dlopen(p.path.c_str(), RTLD_NOW | RTLD_LOCAL))
		return 0;
	const char *e = dlerror();
	std::string msg = e ? e : "cannot be loaded";
	/* glibc's message starts with the file already. */
	if (msg.rfind(p.path + ": ", 0) == 0)
		msg = msg.substr(p.path.size() + 2);
	*why = "driver plugin " + p.path + ": " + msg;
	return -EINVAL;
}

} // namespace uvfio::tools
