// SPDX-License-Identifier: GPL-2.0-only
/* What vfio-mig-ctl's commands share; see common.h. */
#include <cerrno>
#include <cstring>

#include <uvfio/uvfio.h>

#include "common.h"

namespace uvfio::mig_ctl {

bool verbose = false;
Protocol protocol_opt = Protocol::V2;
StreamOptions stream_opt;

namespace {
std::string last_lib_error;	/* the library's last error line */
} // namespace

void lib_log(int level, const char *line, void *)
{
	if (level <= UVFIO_LOG_ERR)
		last_lib_error = line;
	if (verbose)
		fmt::print(stderr, "{}\n", line);
}

int fail(int code, const std::string &what)
{
	std::string msg = "vfio-mig-ctl: " + what;
	if (!last_lib_error.empty() &&
	    msg.find(last_lib_error) == std::string::npos) {
		std::string lib = last_lib_error;
		if (lib.rfind("uvfio: ", 0) == 0)
			lib = lib.substr(7);
		msg += " [" + lib + "]";
	}
	fmt::print(stderr, "{}\n", msg);
	return code;
}

void ProgressBar::update(__u64 bytes)
{
	double s = std::chrono::duration<double>(clock::now() - t0_).count();
	if (!tty_ || s < 1.0)
		return;
	double rate = bytes / s;
	std::string eta;
	if (total_ > bytes && rate > 0)
		eta = fmt::format("  ETA {:.0f} s", (total_ - bytes) / rate);
	fmt::print(stderr, "\r{}: {:.1f} MiB  {:.1f} MiB/s{}   ", what_,
		   bytes / 1048576.0, rate / 1048576.0, eta);
	shown_ = true;
}

std::string hex64(__u64 v)
{
	return fmt::format("{:016x}", v);
}

std::string via()
{
	return protocol_opt == Protocol::V1 ? " (v1)" : "";
}

std::string flags_text(__u64 f)
{
	std::string s;
	if (f & VFIO_MIGRATION_STOP_COPY)
		s += "stop_copy";
	if (f & VFIO_MIGRATION_P2P)
		s += "|p2p";
	if (f & VFIO_MIGRATION_PRE_COPY)
		s += "|pre_copy";
	return s.empty() ? "none" : s;
}

namespace {

/* A device from a spec, or the usage error that it is not one. */
int make_device(SimVm &vm, const std::string &spec, size_t guest,
		std::string *why)
{
	if (spec_bdf(spec).empty()) {
		*why = "device spec \"" + spec + "\" has no bdf=";
		/* An operator's first guess for a host device: say the form. */
		if (is_pci_address(spec) || is_pci_address("0000:" + spec))
			*why = "\"" + spec + "\" is not a device spec; a real "
			       "device is named by its path, e.g. "
			       "/sys/bus/pci/devices/" +
			       (spec.size() == 7 ? "0000:" + spec : spec);
		return -EINVAL;
	}
	return vm.create(spec, guest, why);
}

} // namespace

int CmdDevice::open(const std::string &arg, size_t guest)
{
	std::string why;
	if (is_device_path(arg)) {
		DeviceName dn;
		if (parse_device_path(arg, &dn, &why))
			return fail(EXIT_USAGE, why);
		t = make_kernel_transport();
		real = std::make_unique<VfioDevice>(*t);
		if (real->open(dn, &why) ||
		    (guest && real->map_guest(guest, &why)))
			return fail(EXIT_FAIL, why);
		if (!faults_reach(dn.name))
			return refuse_faults(arg);
		dev = std::make_unique<Device>(*t, real->fd());
		return 0;
	}
	t = make_sim_transport();
	if (make_device(vm, arg, guest, &why))
		return fail(EXIT_USAGE, why);
	dev = std::make_unique<Device>(*t, vm.fd());
	return 0;
}

int CmdDevice::open_mig(const char *cmd)
{
	std::string why;
	if (open_migration(*dev, protocol_opt, &mig, &why))
		return fail(EXIT_FAIL, fmt::format(
			"{} --protocol {}: {}: {}", cmd,
			protocol_name(protocol_opt), label(), why));
	return 0;
}

json CmdDevice::report(const json &rest) const
{
	json j = json::object();
	if (!real || is_pci_address(name()))
		j["bdf"] = name();
	if (real) {
		j["device"] = name();
		j["group"] = real->name().group;
	}
	for (const auto &[k, v] : rest.items())
		j[k] = v;
	return j;
}

} // namespace uvfio::mig_ctl
