/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/tools/rlimit.h> - process limits a long-lived tool sets at start.
 */
#ifndef UVFIO_TOOLS_RLIMIT_H
#define UVFIO_TOOLS_RLIMIT_H

namespace uvfio::tools {

/*
 * Raise the soft RLIMIT_NOFILE to the hard limit. A simulated device costs
 * descriptors a kernel's does not (the core's end of every data fd, the
 * memfds behind groups, containers and BARs), so the default soft limit
 * of 1024 bounds how many devices and streams one process can hold; the
 * hard limit is what the administrator allows. Call it before any thread
 * starts. 0 (also when already raised), or -errno.
 */
int raise_nofile_limit();

} // namespace uvfio::tools

#endif /* UVFIO_TOOLS_RLIMIT_H */
