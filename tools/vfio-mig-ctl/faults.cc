// SPDX-License-Identifier: GPL-2.0-only
/* --fault NAME[:N[+]][=ERRNO]: uvfio's fault points, armed before a command. */
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include <uvfio/tools/plugins.h>
#include <uvfio/uvfio.h>

#include "common.h"

namespace uvfio::mig_ctl {

int load_all_plugins(std::vector<PluginFile> *loaded)
{
	int rc = 0;
	for (const PluginFile &p : find_driver_plugins()) {
		std::string why;
		int ret = load_driver_plugin(p.name, &why);
		/* A driver of that name is registered (a built-in one wins,
		 * as in the core): not this plugin's to list. */
		if (ret == -EEXIST)
			continue;
		if (ret) {
			rc = fail(EXIT_FAIL, why);
			continue;
		}
		if (loaded)
			loaded->push_back(p);
	}
	return rc;
}

int load_spec_plugin(const std::string &spec)
{
	if (is_device_path(spec))
		return 0;
	std::string name = spec.substr(0, spec.find(','));
	if (name.empty())
		return 0;
	std::string why;
	int ret = load_driver_plugin(name, &why);
	/* Registered, or no plugin: the core takes the spec from here (and
	 * says "unknown driver" if it must). */
	if (ret == -EEXIST || ret == -ENOENT)
		return 0;
	/* A spec that creates no device is a usage error (2). */
	if (ret)
		return fail(EXIT_USAGE, why);
	return 0;
}

int print_fault_points()
{
	/* A plugin's points exist once it is loaded: load them all. */
	int rc = load_all_plugins(nullptr);
	const char *name, *doc;
	int err;
	for (unsigned int i = 0; !uvfio_fault_list(i, &name, &err, &doc); i++) {
		const char *ename = strerrorname_np(err);
		fmt::print("{:<36} {:<7} {}\n", name, ename ? ename : "?", doc);
	}
	return rc;
}

namespace {

/* An errno by name (EIO) or number; 0 if it is neither. */
int parse_errno(const std::string &s)
{
	if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos)
		return s.size() < 5 ? std::stoi(s) : 0;
	for (int e = 1; e < 4096; e++) {
		const char *n = strerrorname_np(e);
		if (n && s == n)
			return e;
	}
	return 0;
}

/* What --fault armed: the name and the hit that fails. */
std::vector<std::pair<std::string, unsigned int>> armed_faults;

} // namespace

int arm_fault(const std::string &arg)
{
	std::string name = arg, count, err;
	unsigned int nth = 1, flags = 0;
	int errnum = 0;

	if (size_t eq = name.find('='); eq != std::string::npos) {
		err = name.substr(eq + 1);
		name.resize(eq);
		errnum = parse_errno(err);
		if (!errnum)
			return fail(EXIT_USAGE, "--fault " + arg + ": \"" + err +
						"\" is not an errno (e.g. EIO or 5)");
	}
	if (size_t colon = name.find(':'); colon != std::string::npos) {
		count = name.substr(colon + 1);
		name.resize(colon);
		if (!count.empty() && count.back() == '+') {
			flags |= UVFIO_FAULT_PERSIST;
			count.pop_back();
		}
		if (count.empty() || count.size() > 9 ||
		    count.find_first_not_of("0123456789") != std::string::npos ||
		    !(nth = unsigned(std::stoul(count))))
			return fail(EXIT_USAGE, "--fault " + arg + ": the count "
					"must be a number from 1 (NAME[:N[+]][=ERRNO])");
	}
	if (uvfio_fault_set(name.c_str(), nth, errnum, flags)) {
		if (errno == ENOENT)
			return fail(EXIT_USAGE, "--fault " + arg + ": no fault "
					"point \"" + name + "\" (vfio-mig-ctl "
					"--fault list shows them)");
		return fail(EXIT_USAGE, "--fault " + arg + ": " +
						strerror(errno));
	}
	armed_faults.emplace_back(name, nth);
	return 0;
}

bool faults_armed()
{
	return !armed_faults.empty();
}

/*
 * A command that succeeded although an armed fault fired: the failure was
 * absorbed (a DMA fault halts the device's engine and migrates with its
 * state, say). It still counts as the operation failing, so say which.
 */
int check_fired_faults(int ret)
{
	/* A fault outranks a missed budget: the operation failed. */
	if (ret && ret != EXIT_BUDGET)
		return ret;
	for (const auto &[name, nth] : armed_faults) {
		long long hits = uvfio_fault_hits(name.c_str());
		if (hits < nth)
			continue;
		/* The point itself, when armed as a prefix ("dma"). */
		std::string points = fired_fault_points();
		std::string which = points.empty() || points == name ?
			name : name + " (" + points + ")";
		return fail(EXIT_FAIL, "--fault " + which + " fired; the "
				"command completed, but what it injected is "
				"in the device's state now");
	}
	return ret;
}

/*
 * --fault arms this process's simulator. A device named by its path is in
 * it only under uvfio-run (the preload shares the library); a kernel's
 * device has no fault points: say so rather than arm nothing.
 */
bool faults_reach(const std::string &name)
{
	return armed_faults.empty() || uvfio_sim_iommu_group(name.c_str()) >= 0;
}

int refuse_faults(const std::string &path)
{
	return fail(EXIT_USAGE, "--fault arms uvfio's fault points in this "
			"process; " + path + " is a device outside it (a "
			"kernel's), which has none");
}

} // namespace uvfio::mig_ctl
