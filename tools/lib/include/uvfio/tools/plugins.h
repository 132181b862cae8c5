/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/tools/plugins.h> - the driver plugins on UVFIO_DRIVER_PATH, found
 * and loaded by a tool before it needs them.
 *
 * The core loads a plugin when a spec first names its driver; a tool that
 * must see a plugin's fault points or list its driver before any device
 * exists (vfio-mig-ctl --fault, drivers) loads it here. These wrap the
 * core's own calls (uvfio_driver_plugin(), uvfio_driver_plugin_load() in
 * <uvfio/uvfio.h>), so a tool finds the file the core would and loads it
 * the same way: the plugin's constructor registers the driver (and its
 * fault points) with the libuvfio.so this process has, so the core later
 * finds the driver registered and does not load it again.
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
 * The plugins on UVFIO_DRIVER_PATH, loaded or not, one per name (the first
 * directory's), in name order.
 */
std::vector<PluginFile> find_driver_plugins();

/* The file of the plugin of spec name name, or "" if there is none. */
std::string find_driver_plugin(const std::string &name);

/*
 * Load the plugin of spec name name. 0, or -errno with *why (may be null)
 * saying why: -ENOENT (no such plugin), -EEXIST (a driver of that name is
 * registered: nothing loaded), -EINVAL (the loader's message, naming the
 * file).
 */
int load_driver_plugin(const std::string &name, std::string *why);

} // namespace uvfio::tools

#endif /* UVFIO_TOOLS_PLUGINS_H */
