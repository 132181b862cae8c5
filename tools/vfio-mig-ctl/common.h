/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What vfio-mig-ctl's commands share: the exit codes, the global options,
 * the one-line error report, --fault, progress, the device a command
 * works on (CmdDevice) and the text and JSON helpers of the reports.
 */
#ifndef VFIO_MIG_CTL_COMMON_H
#define VFIO_MIG_CTL_COMMON_H

#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <vector>

#include <uvfio/tools/migration.h>
#include <uvfio/tools/plugins.h>
#include <uvfio/tools/migration_v1.h>
#include <uvfio/tools/sim_vm.h>
#include <uvfio/tools/vfio_open.h>

namespace uvfio::mig_ctl {

using namespace uvfio::tools;
using json = nlohmann::ordered_json;

/*
 * Exit codes: 0 success, 1 the operation failed, 2 usage error, 3 a
 * migration that verified but missed its downtime budget; a command ended
 * by SIGINT or SIGTERM exits 128 + the signal's number (130, 143).
 */
constexpr int EXIT_FAIL = 1;
constexpr int EXIT_USAGE = 2;
constexpr int EXIT_BUDGET = 3;

/* The global options, set by main before the command runs. */
extern bool verbose;			/* -v */
extern Protocol protocol_opt;		/* --protocol */
extern StreamOptions stream_opt;	/* --engine */
extern bool json_opt;			/* the command's --json */

/*
 * The library's log sink: keeps the error lines for fail(), and the fault
 * points that fired (the core logs each injection at info level).
 */
void lib_log(int level, const char *line, void *);

/* The fault points that fired so far, in order, ", "-separated; "" none. */
std::string fired_fault_points();

/*
 * One line on stderr: what failed, why, what the library said, and the
 * fault point that fired if one did. With --json the failure is also the
 * JSON object main prints at the end (finish_json()).
 */
int fail(int code, const std::string &what);

/*
 * A warning on stderr ("vfio-mig-ctl: warning: ..."), which is also the
 * JSON document's "error" when the command's exit code is code; code.
 */
int warn(int code, const std::string &what);

/*
 * A command's JSON report, printed by main when the command ends
 * (finish_json()): as it is on success; on failure with "error" and
 * "exit" added, so a script always gets one JSON document. to: where it
 * goes (stderr when the data stream is on stdout).
 */
void emit_json(const json &j, FILE *to = stdout);
/* Where a JSON failure goes when the command made no report. */
void set_json_stream(FILE *to);
/* Print the JSON document of a command that ended with rc; rc. */
int finish_json(int rc);

/*
 * SIGINT and SIGTERM end the command with a message (and with --json a
 * JSON object) and exit code 128 + signal, removing the temporary file
 * registered here first. set_cleanup_path("") unregisters it.
 */
void install_signal_handlers();
/*
 * Register the file before creating it (O_EXCL), so that no signal finds
 * it created and unregistered; unregister it once renamed or removed.
 */
void set_cleanup_path(const std::string &path);

/* Progress on stderr for streams longer than a second, if it is a tty. */
class ProgressBar
{
public:
	ProgressBar(const char *what, __u64 total)
		: what_(what), total_(total), t0_(clock::now()),
		  tty_(isatty(STDERR_FILENO))
	{
	}
	~ProgressBar()
	{
		if (shown_)
			fmt::print(stderr, "\n");
	}
	Progress fn()
	{
		return [this](__u64 bytes) { update(bytes); };
	}

private:
	using clock = std::chrono::steady_clock;
	void update(__u64 bytes);

	const char *what_;
	__u64 total_;
	clock::time_point t0_;
	bool tty_, shown_ = false;
};

/* -------- --fault NAME[:N[+]][=ERRNO] (faults.cc) -------- */

/*
 * The points the library declares, one per line: name, errno, what; the
 * plugins on UVFIO_DRIVER_PATH loaded first, so that theirs are listed.
 * 0, or 1 after saying which plugin did not load.
 */
int print_fault_points();

/*
 * Load every plugin on UVFIO_DRIVER_PATH whose name no driver has yet
 * (loaded: those loaded). 0, or 1 after saying which did not load.
 */
int load_all_plugins(std::vector<PluginFile> *loaded);

/*
 * The plugin of a spec's driver, if it is not registered and a plugin of
 * that name is on UVFIO_DRIVER_PATH: loaded before --fault is armed, so
 * that its points can be. 0, or a usage error saying why it did not load
 * (without -v: the loader's own message).
 */
int load_spec_plugin(const std::string &spec);

/* Did --fault arm anything? */
bool faults_armed();

/*
 * Arm one --fault spec before the command runs: NAME fails its first hit,
 * NAME:N the Nth, NAME:N+ the Nth and every later one; =ERRNO overrides
 * the point's errno. 0, or a usage error (bad syntax, unknown point).
 */
int arm_fault(const std::string &arg);

/*
 * A command's exit code, made 1 if it succeeded although an armed fault
 * fired (the failure was absorbed into the device's state).
 */
int check_fired_faults(int ret);

/*
 * --fault arms this process's simulator; does it reach the device of
 * this name (always, when nothing is armed)?
 */
bool faults_reach(const std::string &name);

/* The usage error that --fault cannot reach the device at path. */
int refuse_faults(const std::string &path);

/* -------- option values -------- */

/*
 * A size as a device spec takes it (uvfio-spec.md): decimal, or hex with
 * 0x, and one optional suffix K, M, G or T in either case, powers of
 * 1024; the older option spellings KB, KiB, MB, MiB, ... (also powers of
 * 1024) and B still parse. 0, or -EINVAL (not a size, or over 64 bits).
 */
int parse_size(const std::string &s, __u64 *out);

/*
 * An option that is a size in [min, max], a multiple of align: CLI11's
 * transform, leaving the number in bytes. Its messages give the bounds as
 * sizes (64G), not as CLI11's digits.
 */
CLI::Validator size_in(__u64 min, __u64 max, __u64 align = 1);

/*
 * An option that is a number in [min, max] (CLI11's own range check
 * prints a double's maximum with all its 309 digits): checked as text,
 * so a value that does not fit is refused, never wrapped.
 */
CLI::Validator number_in(double min, double max, bool integer);

/* -------- report text -------- */

std::string hex64(__u64 v);
/* For text reports: " (v1)" when --protocol v1 moved the state. */
std::string via();
/* migration_flags as "stop_copy|p2p|pre_copy", or "none". */
std::string flags_text(__u64 f);

/*
 * A command's device, with a transport to it: created from its spec and
 * reached through the simulator, or a real device named by its path,
 * opened as a VMM opens it and reached through plain system calls. The
 * commands see only dev (and fd, guest); the rest is the same for both.
 */
struct CmdDevice {
	std::unique_ptr<Transport> t;
	SimVm vm;				/* a spec's */
	std::unique_ptr<VfioDevice> real;	/* a path's */
	std::unique_ptr<Device> dev;
	std::unique_ptr<Migration> mig;		/* by --protocol */

	/*
	 * guest: bytes of guest memory mapped for the device's DMA (0:
	 * none). 0, or the exit code after saying why: a bad spec or a
	 * malformed name is usage (2), a real device that does not open 1.
	 */
	int open(const std::string &arg, size_t guest = 0);

	/*
	 * The device's migration by --protocol (v1: its migration region,
	 * found and mapped). 0, or exit code 1 after one line saying why
	 * (a device without the v1 region, above all).
	 */
	int open_mig(const char *cmd);

	bool is_real() const { return real != nullptr; }
	int fd() const { return real ? real->fd() : vm.fd(); }
	/* Its name: a spec's BDF, a real device's name in its group. */
	const std::string &name() const
	{
		return real ? real->name().name : vm.bdf();
	}
	GuestMemory guest() const { return real ? real->guest() : vm.guest(); }
	/* For text: the name, and a real device's group. */
	std::string label() const
	{
		return real ? name() + " (" + real->name().group + ")" : name();
	}
	/*
	 * A JSON report: the device first ("bdf" for a PCI address, a real
	 * device's "device" and "group" too), then rest.
	 */
	json report(const json &rest) const;
};

} // namespace uvfio::mig_ctl

#endif /* VFIO_MIG_CTL_COMMON_H */
