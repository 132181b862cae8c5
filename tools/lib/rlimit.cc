// SPDX-License-Identifier: GPL-2.0-only
/*
 * Process limits for the tools (see <uvfio/tools/rlimit.h>).
 */
#include <sys/resource.h>

#include <cerrno>

#include <uvfio/tools/rlimit.h>

namespace uvfio::tools {

int raise_nofile_limit()
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	if (rl.rlim_cur == rl.rlim_max)
		return 0;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	return 0;
}

} // namespace uvfio::tools
