/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/tools/plugins.h> - the driver plugins on UVFIO_DRIVER_PATH, found
 * and loaded by a tool before it needs them.
 *
 * The core loads a plugin when a spec first names its driver; a tool that
 * must see a plugin's fault points or list its driver before any device
 * exists (vfio-mig-ctl --fault, drivers) loads it here, the way the core
 * would: the first NAME.so in the path's directories, in order, dlopen()ed
 * with RTLD_NOW | RTLD_LOCAL; its constructor registers the driver (and
 * its fault points) with the libuvfio.so this process has, so the core
 * later finds the driver registered and does not load it again.
 */
#ifndef UVFIO_TOOLS_PLUGINS_H
#define UVFIO_TOOLS_PLUGINS_H

#include <string>
#include <vector>

namespace uvfio::tools {

struct PluginFile {
	std::string name;	/* the spec name: the file's name less .so */
	std::string path;	/* DIR/NAME.so */
};

/*
 * The plugins on the path (colon-separated directories; the environment's
 * UVFIO_DRIVER_PATH when path is null), one per name, the first found, in
 * name order. Unreadable directories are skipped.
 */
std::vector<PluginFile> find_driver_plugins(const char *path = nullptr);

/*
 * The plugin of the spec name name on the path (as above): its file, or
 * "" if there is none.
 */
std::string find_driver_plugin(const std::string &name,
			       const char *path = nullptr);

/*
 * Load the plugin file. 0, or -EINVAL with *why (the dynamic loader's
 * message, naming the file).
 */
int load_driver_plugin(const PluginFile &p, std::string *why);

} // namespace uvfio::tools

#endif /* UVFIO_TOOLS_PLUGINS_H */
