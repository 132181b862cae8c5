// SPDX-License-Identifier: GPL-2.0-only
/* What vfio-mig-ctl's commands share; see common.h. */
#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include <uvfio/uvfio.h>

#include "common.h"

namespace uvfio::mig_ctl {

bool verbose = false;
Protocol protocol_opt = Protocol::V2;
StreamOptions stream_opt;
bool json_opt = false;

namespace {

/*
 * What the library said, for fail(). The log function runs on whichever
 * thread logs (the core serializes its calls); fail() reads on main's.
 */
std::mutex log_lock;
std::vector<std::string> lib_errors;	/* the last few error lines */
constexpr size_t kKeptErrors = 3;

/* The JSON document main prints at the end (emit_json(), fail()). */
json json_report;
bool have_report = false;
FILE *json_stream = stdout;
std::string first_error;

} // namespace

void lib_log(int level, const char *line, void *)
{
	std::string l = line;
	if (l.rfind("uvfio: ", 0) == 0)
		l = l.substr(7);
	{
		std::lock_guard<std::mutex> g(log_lock);
		if (level <= UVFIO_LOG_ERR) {
			/* A plugin's load error comes before the spec's own
			 * line; keep both, so neither needs -v. */
			if (lib_errors.size() == kKeptErrors)
				lib_errors.erase(lib_errors.begin());
			lib_errors.push_back(l);
		}
	}
	if (verbose)
		fmt::print(stderr, "{}\n", line);
}

std::string fired_fault_points()
{
	std::string s;
	const char *name;
	for (unsigned i = 0; !uvfio_fault_fired(i, &name); i++)
		s += (s.empty() ? "" : ", ") + std::string(name);
	return s;
}

int fail(int code, const std::string &what)
{
	std::string msg = what;
	{
		std::lock_guard<std::mutex> g(log_lock);
		std::string lib;
		for (const std::string &e : lib_errors)
			if (msg.find(e) == std::string::npos &&
			    lib.find(e) == std::string::npos)
				lib += (lib.empty() ? "" : "; ") + e;
		if (!lib.empty())
			msg += " [" + lib + "]";
	}
	/* The manual promises the point's name with every injected failure. */
	std::string points = fired_fault_points();
	if (!points.empty() && msg.find(points) == std::string::npos)
		msg += "; fault point " + points + " fired";
	fmt::print(stderr, "vfio-mig-ctl: {}\n", msg);
	if (first_error.empty())
		first_error = msg;
	return code;
}

int warn(int code, const std::string &what)
{
	std::string msg = "warning: " + what;
	fmt::print(stderr, "vfio-mig-ctl: {}\n", msg);
	if (first_error.empty())
		first_error = msg;
	return code;
}

void set_signal_json_fd(int fd);

void emit_json(const json &j, FILE *to)
{
	json_report = j;
	have_report = true;
	json_stream = to;
}

void set_json_stream(FILE *to)
{
	json_stream = to;
	set_signal_json_fd(to == stderr ? STDERR_FILENO : STDOUT_FILENO);
}

int finish_json(int rc)
{
	if (!json_opt)
		return rc;
	if (!rc) {
		if (have_report)
			fmt::print(json_stream, "{}\n", json_report.dump(2));
		return rc;
	}
	/* A failure is an object whatever the report was (drivers: a list). */
	json j = json::object();
	j["error"] = first_error.empty() ? std::string("failed") : first_error;
	j["exit"] = rc;
	std::string points = fired_fault_points();
	if (!points.empty())
		j["fault"] = points;
	if (have_report) {
		if (json_report.is_object()) {
			for (const auto &[k, v] : json_report.items())
				if (!j.contains(k))
					j[k] = v;
		} else {
			j["result"] = json_report;
		}
	}
	fmt::print(json_stream, "{}\n", j.dump(2));
	return rc;
}

namespace {

/*
 * For the signal handler, which may run on any thread: lock-free atomics
 * and plain buffers only. The path to remove is written into the buffer
 * not in use, then published, so the handler never reads half a name.
 */
char cleanup_bufs[2][PATH_MAX];
std::atomic<int> cleanup_active{-1};	/* which buffer, -1: none */
volatile sig_atomic_t json_fd = STDOUT_FILENO;
volatile sig_atomic_t json_on = 0;

void put(int fd, const char *s)
{
	size_t n = strlen(s);
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w <= 0)
			return;
		s += w;
		n -= size_t(w);
	}
}

extern "C" void on_signal(int sig)
{
	/* A save's temporary file is not the user's: never leave it. */
	int active = cleanup_active.load(std::memory_order_acquire);
	if (active >= 0)
		unlink(cleanup_bufs[active]);
	const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
	put(STDERR_FILENO, "vfio-mig-ctl: interrupted by ");
	put(STDERR_FILENO, name);
	put(STDERR_FILENO, "; the command did not complete\n");
	if (json_on) {
		put(json_fd, "{\"error\": \"interrupted by ");
		put(json_fd, name);
		put(json_fd, sig == SIGINT ? "\", \"exit\": 130}\n"
					   : "\", \"exit\": 143}\n");
	}
	_exit(128 + sig);
}

} // namespace

void set_signal_json_fd(int fd)
{
	json_fd = fd;
}

void install_signal_handlers()
{
	json_on = json_opt;
	json_fd = json_stream == stderr ? STDERR_FILENO : STDOUT_FILENO;
	struct sigaction sa = {};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGINT);
	sigaddset(&sa.sa_mask, SIGTERM);
	for (int sig : {SIGINT, SIGTERM}) {
		/* Ignored from the start (a shell's background job, nohup):
		 * stays ignored, as the shell meant. */
		struct sigaction old;
		if (!sigaction(sig, nullptr, &old) && old.sa_handler == SIG_IGN)
			continue;
		sigaction(sig, &sa, nullptr);
	}
}

void set_cleanup_path(const std::string &path)
{
	if (path.empty() || path.size() >= PATH_MAX) {
		cleanup_active.store(-1, std::memory_order_release);
		return;
	}
	int next = cleanup_active.load(std::memory_order_relaxed) == 0 ? 1 : 0;
	memcpy(cleanup_bufs[next], path.c_str(), path.size() + 1);
	cleanup_active.store(next, std::memory_order_release);
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

int parse_size(const std::string &s, __u64 *out)
{
	/*
	 * The spec grammar, from the library, so a size means the same on
	 * the command line and in a spec. "16Mi" is the one spelling options
	 * took before that the grammar does not: it is "16MiB".
	 */
	std::string t = s;
	if (t.size() >= 2 && (t.back() == 'i' || t.back() == 'I') &&
	    strchr("kmgtKMGT", t[t.size() - 2]))
		t += 'B';
	uint64_t v;
	if (uvfio_parse_size(t.c_str(), &v))
		return -errno;
	*out = v;
	return 0;
}

namespace {

/* A size for a message: 64G, 4K, or bytes. */
std::string size_text(__u64 v)
{
	static const char units[] = "KMGT";
	for (int i = 4; i > 0; i--)
		if (v && !(v % (1ULL << (10 * i))))
			return std::to_string(v >> (10 * i)) + units[i - 1];
	return std::to_string(v);
}

} // namespace

CLI::Validator size_in(__u64 min, __u64 max, __u64 align)
{
	std::string desc = "SIZE " + size_text(min) + ".." + size_text(max);
	return CLI::Validator(
		[min, max, align](std::string &v) -> std::string {
			__u64 n;
			if (parse_size(v, &n))
				return "\"" + v + "\" is not a size (e.g. 16M: "
				       "K, M, G or T, powers of 1024)";
			if (n < min || n > max)
				return v + " is out of range (" +
				       size_text(min) + " to " +
				       size_text(max) + ")";
			if (n % align)
				return v + " is not a multiple of " +
				       size_text(align);
			v = std::to_string(n);
			return "";
		},
		desc);
}

CLI::Validator number_in(double min, double max, bool integer)
{
	auto text = [](double x) {
		return x == std::floor(x) && std::fabs(x) < 1e15 ?
			fmt::format("{:.0f}", x) : fmt::format("{:g}", x);
	};
	std::string desc = fmt::format("{}..{}", text(min), text(max));
	return CLI::Validator(
		[=](std::string &v) -> std::string {
			const char *p = v.c_str();
			char *end;
			errno = 0;
			double x = std::strtod(p, &end);
			bool ok = end != p && !*end && !errno &&
				  std::isfinite(x);
			if (ok && integer)
				ok = v.find_first_not_of("0123456789") ==
				     std::string::npos;
			if (!ok)
				return "\"" + v + "\" is not " +
				       (integer ? "a whole number" : "a number");
			if (x < min || x > max)
				return v + " is out of range (" + text(min) +
				       " to " + text(max) + ")";
			return "";
		},
		desc);
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
		/* A spec that creates no device is usage, unless an armed
		 * fault made the probe or the open fail: that is the
		 * operation failing, as on a real device. */
		return fail(fired_fault_points().empty() ? EXIT_USAGE
							 : EXIT_FAIL, why);
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
