/* SPDX-License-Identifier: GPL-2.0-only */
/* Between the runner and the tests: the targets in this run. */
#ifndef UVFIO_TOOLS_CONFORMANCE_SUITE_H
#define UVFIO_TOOLS_CONFORMANCE_SUITE_H

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "conformance.h"

namespace uvfio::conformance {

/* Where the tests put their devices, and where run() tries a spec. */
inline constexpr const char *kSrcBdf = "0000:7e:00.0";
inline constexpr const char *kDstBdf = "0000:7e:01.0";
inline constexpr const char *kProbeBdf = "0000:7e:02.0";

const std::vector<Target> &targets();
/* A transport to real devices, as Options::device_transport says. */
std::unique_ptr<tools::Transport> device_transport();
/* The real targets' peer (Options::peer), or "". */
const std::string &peer_device();
/* How GoogleTest prints a target (reports, JUnit value_param). */
void PrintTo(const Target &t, std::ostream *os);
/* A GoogleTest-safe name for the index-th target. */
std::string target_name(const Target &t, size_t index);

} // namespace uvfio::conformance

#endif /* UVFIO_TOOLS_CONFORMANCE_SUITE_H */
