/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The streams vfio-mig-ctl's commands run: a save hashed (XXH3-64) as it
 * is read, with or without somewhere to write it, and a load checked by
 * saving again for the digest of what the device now holds.
 */
#ifndef VFIO_MIG_CTL_STREAM_H
#define VFIO_MIG_CTL_STREAM_H

#include <string>

#include "common.h"

namespace uvfio::mig_ctl {

/*
 * Save a device into a memfd (fsm's snapshot, reloaded many times); the
 * memfd, or -errno.
 */
int save_to_memfd(Migration &mig, bool leave_stopped, std::string *why,
		  const Progress &p = {});

/*
 * Save a device into out (< 0: nowhere) as the stream is read, with its
 * digest and length. 0 or -errno with *why; *out_err is the output's own
 * -errno when writing it failed (the save then fails too, with EPIPE).
 * A save that fails leaves out a truncated stream, never a whole one.
 */
int save_streaming(Migration &mig, int out, bool leave_stopped, __u64 *digest,
		   __u64 *len, int *out_err, std::string *why,
		   const Progress &p = {});

/*
 * Load a stream into a device, save it again for the digest of what it
 * now holds, and run it: 0 or -errno with *why.
 */
int load_digest_run(CmdDevice &d, int in_fd, StreamStats *st, __u64 *digest,
		    std::string *why, const Progress &progress = {});

/*
 * The report of a load that ran (load_digest_run()): JSON, or one line
 * saying it was `verb` ("loaded", "received").
 */
void print_loaded(const CmdDevice &d, const char *verb, const StreamStats &st,
		  __u64 digest, bool as_json, const json &extra = json::object());

} // namespace uvfio::mig_ctl

#endif /* VFIO_MIG_CTL_STREAM_H */
