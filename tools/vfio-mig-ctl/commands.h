/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vfio-mig-ctl's commands, one file each (cmd_*.cc). Each add_* adds its
 * subcommand and options to the program and says how to run it; main
 * adds them all, parses, and runs the one given.
 */
#ifndef VFIO_MIG_CTL_COMMANDS_H
#define VFIO_MIG_CTL_COMMANDS_H

#include <functional>
#include <vector>

#include <CLI/CLI.hpp>

namespace uvfio::mig_ctl {

struct Command {
	CLI::App *sub;			/* its subcommand */
	bool speaks_v1;			/* does --protocol v1 apply? */
	std::function<int()> run;	/* the exit code */
};

/* The help text of a device argument. */
inline constexpr const char *kDeviceHelp =
	"device: a spec, or a real device's path";

Command add_drivers(CLI::App &app);
Command add_info(CLI::App &app);
Command add_state(CLI::App &app);
Command add_fsm(CLI::App &app);
Command add_save(CLI::App &app);
Command add_load(CLI::App &app);
Command add_send(CLI::App &app);
Command add_recv(CLI::App &app);
Command add_dirty(CLI::App &app);
Command add_migrate(CLI::App &app);
Command add_conformance(CLI::App &app);

} // namespace uvfio::mig_ctl

#endif /* VFIO_MIG_CTL_COMMANDS_H */
