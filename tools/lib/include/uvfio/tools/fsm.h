/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/tools/fsm.h> - the migration state machine as the uAPI documents
 * it, for a client that wants to know the arcs a SET will take (QEMU knows
 * them too): the single arcs per migration_flags, and the shortest path
 * the kernel walks, which passes through no state with a data stream of
 * its own (STOP_COPY, RESUMING) and through pre-copy states only to carry
 * a pre-copy stream on into STOP_COPY.
 */
#ifndef UVFIO_TOOLS_FSM_H
#define UVFIO_TOOLS_FSM_H

#include <linux/types.h>

#include <vector>

#include <uvfio/uapi/vfio.h>

namespace uvfio::tools {

constexpr __u32 NUM_MIG_STATES = 8;

/*
 * The states by their uAPI names, without the prefix, for code that
 * spells out FSM tables (using namespace uvfio::tools::mig_state).
 */
namespace mig_state {
inline constexpr __u32 ERROR = VFIO_DEVICE_STATE_ERROR;
inline constexpr __u32 STOP = VFIO_DEVICE_STATE_STOP;
inline constexpr __u32 RUNNING = VFIO_DEVICE_STATE_RUNNING;
inline constexpr __u32 STOP_COPY = VFIO_DEVICE_STATE_STOP_COPY;
inline constexpr __u32 RESUMING = VFIO_DEVICE_STATE_RESUMING;
inline constexpr __u32 RUNNING_P2P = VFIO_DEVICE_STATE_RUNNING_P2P;
inline constexpr __u32 PRE_COPY = VFIO_DEVICE_STATE_PRE_COPY;
inline constexpr __u32 PRE_COPY_P2P = VFIO_DEVICE_STATE_PRE_COPY_P2P;
} // namespace mig_state

/* PRE_COPY or PRE_COPY_P2P? */
bool fsm_is_precopy(__u32 s);

/*
 * Does a SET from `from` to `to` (one the FSM allows) return a new data
 * fd? It does on entering a state with a stream (STOP_COPY, RESUMING,
 * the pre-copy states), except where a pre-copy stream carries on: into
 * the other pre-copy state, or into STOP_COPY.
 */
bool fsm_opens_stream(__u32 from, __u32 to);

/* Does a device with these migration_flags have state s? */
bool fsm_has_state(__u64 flags, __u32 s);

/* The states one arc away from s. */
std::vector<__u32> fsm_arcs(__u64 flags, __u32 s);

/*
 * The states a SET from `from` to `to` passes through, `to` last; empty
 * when from == to; false when there is no path (a state not supported,
 * or STOP_COPY back into pre-copy), which the core answers with EINVAL.
 */
bool fsm_path(__u64 flags, __u32 from, __u32 to, std::vector<__u32> *path);

} // namespace uvfio::tools

#endif /* UVFIO_TOOLS_FSM_H */
