// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-mig-ctl: inspect VFIO devices and migrate them, through the uAPI
 * only (tools/lib). A device is named by a spec string (uvfio_sim_add()'s;
 * the simulated device lives for the duration of the command and is
 * reached through uvfio_*), or by a path, a real device (the kernel's, or
 * a simulated one under uvfio-run) opened through its group and container
 * with plain system calls (see <uvfio/tools/vfio_open.h>).
 *
 * Exit codes: 0 success, 1 the operation failed (an armed --fault that
 * fires included), 2 usage error (bad options, a device spec that does
 * not create a device, an unknown fault point), 3 a migration that
 * verified but missed its downtime budget, 128 + N ended by signal N
 * (SIGINT, SIGTERM).
 *
 * Here: the global options and the dispatch. Each command is in its own
 * cmd_*.cc (commands.h); what they share is in common.h and stream.h.
 */
#include <csignal>
#include <string>
#include <vector>

#include <uvfio/tools/rlimit.h>
#include <uvfio/uvfio.h>

#include "commands.h"
#include "common.h"

using namespace uvfio::mig_ctl;

int main(int argc, char **argv)
{
	CLI::App app{"Inspect and migrate VFIO devices through the VFIO uAPI.\n"
		     "A device is a spec string, a simulated device created "
		     "for the command,\ne.g. \"simnic,bdf=0000:00:02.0,"
		     "mem=64M\" (see uvfio-spec.md); or a path, a real\n"
		     "device opened through its group: /sys/bus/pci/devices/"
		     "BDF,\n/sys/bus/mdev/devices/UUID or /dev/vfio/N@NAME (a "
		     "simulated one under uvfio-run)."};
	app.require_subcommand(1);
	app.footer("Exit status: 0 done, 1 the operation failed (a fault that "
		   "fired included),\n2 usage error, 3 migrate verified but "
		   "over its downtime budget,\n130/143 interrupted by "
		   "SIGINT/SIGTERM. With --json a failure is a JSON\nobject "
		   "too: {\"error\": ..., \"exit\": N}. See vfio-mig-ctl(1).");
	app.add_flag("-v,--verbose", verbose, "print the library's log lines");
	std::string engine = "uring";
	app.add_option("--engine", engine, "stream engine for streams that run "
		       "to their end: uring (io_uring, splice) or plain "
		       "(read/write, QEMU's sizes)")
		->check(CLI::IsMember({"uring", "plain"}))->capture_default_str();
	std::string protocol = "v2";
	app.add_option("--protocol", protocol,
		       "migration uAPI for state, save, load, send, recv and "
		       "migrate: v2 (VFIO_DEVICE_FEATURE and data fds) or v1 "
		       "(the migration region)")
		->check(CLI::IsMember({"v1", "v2"}))->capture_default_str();
	/* Before --fault list: a plugin's load error is reported as it is. */
	uvfio_set_log_fn(lib_log, nullptr);
	uvfio_set_log_level(UVFIO_LOG_ERR);
	std::vector<std::string> faults;
	int list_rc = 0;
	app.add_option("--fault", faults, "arm a fault point before the "
		       "command: NAME[:N[+]][=ERRNO] (repeatable; "
		       "--fault list shows the points, plugins' included)")
		->allow_extra_args(false)	/* one NAME per --fault */
		->each([&list_rc](const std::string &v) {
			if (v == "list") {
				list_rc = print_fault_points();
				throw CLI::Success();
			}
		});

	/* In the order --help lists them. */
	const Command commands[] = {
		add_drivers(app), add_info(app), add_state(app),
		add_fsm(app), add_save(app), add_load(app),
		add_send(app), add_recv(app), add_dirty(app),
		add_migrate(app), add_conformance(app),
	};

	try {
		app.parse(argc, argv);
	} catch (const CLI::CallForHelp &e) {
		return app.exit(e);
	} catch (const CLI::CallForAllHelp &e) {
		return app.exit(e);
	} catch (const CLI::Success &e) {
		return list_rc ? list_rc : app.exit(e);
	} catch (const CLI::ParseError &e) {
		fmt::print(stderr, "vfio-mig-ctl: {}\nRun with --help for more "
			   "information.\n", e.what());
		/* --json promises JSON on every failure, usage included. */
		for (int i = 1; i < argc; i++)
			if (std::string(argv[i]) == "--json") {
				fmt::print("{}\n", json{{"error", e.what()},
							{"exit", EXIT_USAGE}}
							.dump(2));
				break;
			}
		return EXIT_USAGE;
	}

	const Command *cmd = nullptr;
	for (const Command &c : commands)
		if (*c.sub)
			cmd = &c;

	if (const CLI::Option *o = cmd->sub->get_option_no_throw("--json"))
		json_opt = o->count() > 0;
	stream_opt.uring = engine == "uring";
	parse_protocol(protocol, &protocol_opt);
	/* The other commands speak v2 (or none): say so, do not ignore it. */
	if (protocol_opt == Protocol::V1 && !cmd->speaks_v1)
		return finish_json(fail(EXIT_USAGE, "--protocol v1 applies to "
					"state, save, load, send, recv and "
					"migrate"));
	/* A peer that goes away is an error to report, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	/*
	 * Before any device or thread exists: a simulated device's data
	 * fds and memfds count against this process (conformance holds
	 * every driver's). Failing to raise it only leaves the default.
	 */
	raise_nofile_limit();
	uvfio_set_log_level(verbose ? UVFIO_LOG_DEBUG : UVFIO_LOG_ERR);
	/*
	 * The plugins the command's specs name, before --fault: their
	 * points exist only once they are loaded.
	 */
	for (const CLI::Option *o : cmd->sub->get_options())
		if (o->get_positional() || o->check_lname("driver") ||
		    o->check_lname("pair"))
			for (const std::string &v : o->results())
				if (int ret = load_spec_plugin(v))
					return finish_json(ret);
	for (const std::string &f : faults)
		if (int ret = arm_fault(f))
			return finish_json(ret);
	/*
	 * The core logs each injection at info level: seen (not printed
	 * without -v), it names the point that fired in the message.
	 */
	if (faults_armed() && !verbose)
		uvfio_set_log_level(UVFIO_LOG_INFO);
	install_signal_handlers();
	return finish_json(check_fired_faults(cmd->run()));
}
