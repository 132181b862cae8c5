/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * An independent oracle for the migration FSM: the single arcs the uAPI
 * defines, the rules for which states a path may pass through, and a
 * breadth-first search over them. Written from the uAPI's state diagram,
 * not from core/vfio/vfio_fsm.cc, so that the two can be checked against each
 * other (test_fsm.cc) and the core's SET path against both
 * (test_migration_core.cc).
 */
#ifndef UVFIO_TESTS_FSM_ORACLE_H
#define UVFIO_TESTS_FSM_ORACLE_H

#include <deque>
#include <optional>
#include <vector>

#include <uvfio/linux/vfio.h>

namespace uvfio_test {

using state = enum vfio_device_mig_state;

inline constexpr int N = UVFIO_DEVICE_NUM_STATES;
inline constexpr u32 SC = VFIO_MIGRATION_STOP_COPY;
inline constexpr u32 P2P = VFIO_MIGRATION_P2P;
inline constexpr u32 PRE = VFIO_MIGRATION_PRE_COPY;

inline constexpr state ERROR = VFIO_DEVICE_STATE_ERROR;
inline constexpr state STOP = VFIO_DEVICE_STATE_STOP;
inline constexpr state RUNNING = VFIO_DEVICE_STATE_RUNNING;
inline constexpr state STOP_COPY = VFIO_DEVICE_STATE_STOP_COPY;
inline constexpr state RESUMING = VFIO_DEVICE_STATE_RESUMING;
inline constexpr state RUNNING_P2P = VFIO_DEVICE_STATE_RUNNING_P2P;
/* Beyond the installed enum (see <uvfio/uapi/vfio.h>). */
inline constexpr state PRE_COPY =
	static_cast<state>(VFIO_DEVICE_STATE_PRE_COPY);
inline constexpr state PRE_COPY_P2P =
	static_cast<state>(VFIO_DEVICE_STATE_PRE_COPY_P2P);

/* Does a device with these migration_flags support state s? */
inline bool has(u32 flags, state s)
{
	switch (s) {
	case VFIO_DEVICE_STATE_STOP:
	case VFIO_DEVICE_STATE_RUNNING:
	case VFIO_DEVICE_STATE_STOP_COPY:
	case VFIO_DEVICE_STATE_RESUMING:
		return true;
	case VFIO_DEVICE_STATE_RUNNING_P2P:
		return flags & P2P;
	default:
		if (s == PRE_COPY)
			return flags & PRE;
		if (s == PRE_COPY_P2P)
			return (flags & PRE) && (flags & P2P);
		return false; /* ERROR is never a target */
	}
}

inline bool is_precopy(state s) { return s == PRE_COPY || s == PRE_COPY_P2P; }

inline bool is_saving(state s) { return s == STOP_COPY || is_precopy(s); }

/* The single arcs the uAPI defines, written from its state diagram. */
inline std::vector<state> arcs(u32 flags, state from)
{
	std::vector<state> out;
	bool p2p = flags & P2P;
	switch (static_cast<int>(from)) {
	case VFIO_DEVICE_STATE_STOP:
		out = {RUNNING_P2P, STOP_COPY, RESUMING};
		if (!p2p)
			out.push_back(RUNNING);
		break;
	case VFIO_DEVICE_STATE_RUNNING:
		out = {RUNNING_P2P, PRE_COPY};
		if (!p2p)
			out.push_back(STOP);
		break;
	case VFIO_DEVICE_STATE_STOP_COPY:
	case VFIO_DEVICE_STATE_RESUMING:
		out = {STOP};
		break;
	case VFIO_DEVICE_STATE_RUNNING_P2P:
		out = {STOP, RUNNING, PRE_COPY_P2P};
		break;
	case VFIO_DEVICE_STATE_PRE_COPY:
		out = {RUNNING, PRE_COPY_P2P};
		if (!p2p)
			out.push_back(STOP_COPY);
		break;
	case VFIO_DEVICE_STATE_PRE_COPY_P2P:
		out = {PRE_COPY, RUNNING_P2P, STOP_COPY};
		break;
	}
	std::vector<state> ok;
	for (state s : out)
		if (has(flags, s))
			ok.push_back(s);
	return ok;
}

/* Is from -> to a single arc of the uAPI for these flags? */
inline bool is_arc(u32 flags, state from, state to)
{
	if (!has(flags, from))
		return false;
	for (state a : arcs(flags, from))
		if (a == to)
			return true;
	return false;
}

/*
 * Does the arc from -> to open a new data stream (and so hand userspace a
 * data fd)? Pre-copy into STOP_COPY goes on with the pre-copy stream.
 */
inline bool arc_opens_stream(state from, state to)
{
	return (from == STOP && (to == STOP_COPY || to == RESUMING)) ||
	       (from == RUNNING && to == PRE_COPY) ||
	       (from == RUNNING_P2P && to == PRE_COPY_P2P);
}

/* Does the arc from -> to end the stream of state from? */
inline bool arc_ends_stream(state from, state to)
{
	if (from == RESUMING)
		return true;
	return is_saving(from) && !is_saving(to);
}

/*
 * May s appear in the middle of a path from src to dst? Never a state with
 * a data session of its own (STOP_COPY, RESUMING), and a pre-copy state
 * only to carry a pre-copy session on into STOP_COPY.
 */
inline bool may_pass(state src, state s, state dst)
{
	if (s == STOP_COPY || s == RESUMING)
		return false;
	if (is_precopy(s))
		return is_precopy(src) && dst == STOP_COPY;
	return true;
}

/* dist[s] = arcs from s to dst under the rules, -1 if unreachable. */
inline std::vector<int> distances_to(u32 flags, state src, state dst)
{
	/* Reverse BFS from dst over arcs whose source may be passed. */
	std::vector<int> dist(N, -1);
	dist[dst] = 0;
	std::deque<state> q{dst};
	while (!q.empty()) {
		state t = q.front();
		q.pop_front();
		for (int f = 1; f < N; f++) {
			state from = static_cast<state>(f);
			if (!has(flags, from) || dist[from] >= 0)
				continue;
			if (from != src && !may_pass(src, from, dst))
				continue;
			for (state a : arcs(flags, from)) {
				if (a == t) {
					dist[from] = dist[t] + 1;
					q.push_back(from);
					break;
				}
			}
		}
	}
	return dist;
}

/*
 * The arcs a SET from cur to target must perform, as the states entered in
 * order (empty when cur == target), or nullopt when the uAPI has no path:
 * either state unsupported (ERROR, out of range), or STOP_COPY back to
 * pre-copy, which the uAPI forbids although the arcs would allow it. Also
 * nullopt if the shortest path were not unique, which test_fsm.cc rules
 * out for every flag combination.
 */
inline std::optional<std::vector<state>> shortest_arcs(u32 flags, state cur,
						       state target)
{
	if (static_cast<int>(cur) < 0 || static_cast<int>(cur) >= N ||
	    static_cast<int>(target) < 0 || static_cast<int>(target) >= N ||
	    !has(flags, cur) || !has(flags, target))
		return std::nullopt;
	if (cur == STOP_COPY && is_precopy(target))
		return std::nullopt;

	std::vector<int> dist = distances_to(flags, cur, target);
	if (dist[cur] < 0)
		return std::nullopt;

	std::vector<state> path;
	state s = cur;
	while (s != target) {
		std::optional<state> step;
		for (state a : arcs(flags, s)) {
			if (dist[a] != dist[s] - 1 ||
			    (a != target && !may_pass(cur, a, target)))
				continue;
			if (step)
				return std::nullopt; /* ambiguous */
			step = a;
		}
		if (!step)
			return std::nullopt;
		path.push_back(*step);
		s = *step;
	}
	return path;
}

} // namespace uvfio_test

#endif /* UVFIO_TESTS_FSM_ORACLE_H */
