// SPDX-License-Identifier: GPL-2.0-only
/*
 * load: a device's state from a file or stdin, then run the device.
 */
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "commands.h"
#include "common.h"
#include "stream.h"

namespace uvfio::mig_ctl {

namespace {

int cmd_load(const std::string &spec, const std::string &in, bool as_json)
{
	int ifd = STDIN_FILENO;
	__u64 total = 0;
	if (in != "-") {
		ifd = open(in.c_str(), O_RDONLY | O_CLOEXEC);
		if (ifd < 0)
			return fail(EXIT_FAIL, "cannot open " + in + ": " +
						       strerror(errno));
		off_t end = lseek(ifd, 0, SEEK_END);
		total = end > 0 ? __u64(end) : 0;
		lseek(ifd, 0, SEEK_SET);
	}
	CmdDevice d;
	int rc = d.open(spec);
	if (!rc)
		rc = d.open_mig("load");
	if (rc) {
		if (ifd != STDIN_FILENO)
			close(ifd);
		return rc;
	}
	StreamStats st;
	std::string why;
	__u64 digest = 0;
	int ret;
	{
		ProgressBar bar("loading", total);
		ret = load_digest_run(d, ifd, &st, &digest, &why, bar.fn());
	}
	if (ifd != STDIN_FILENO)
		close(ifd);
	if (ret)
		return fail(EXIT_FAIL, "load: " + why);
	print_loaded(d, "loaded", st, digest, as_json);
	return 0;
}

} // namespace

Command add_load(CLI::App &app)
{
	struct Args {
		std::string spec, file;
		bool as_json = false;
	};
	auto a = std::make_shared<Args>();
	auto *sub = app.add_subcommand("load", "load a device's state from a "
				       "file or stdin and run it");
	sub->add_option("device", a->spec, kDeviceHelp)->required();
	sub->add_option("-i,--input", a->file, "file, or - for stdin")
		->required();
	sub->add_flag("--json", a->as_json, "JSON report");
	return {sub, true,
		[a] { return cmd_load(a->spec, a->file, a->as_json); }};
}

} // namespace uvfio::mig_ctl
