// SPDX-License-Identifier: GPL-2.0-only
/* The documented migration FSM for clients; see fsm.h. */
#include <deque>

#include <uvfio/tools/fsm.h>
#include <uvfio/uapi/vfio.h>

namespace uvfio::tools {

using namespace mig_state;

namespace {

/* May s be passed through on the way from src to dst? */
bool may_pass(__u32 src, __u32 s, __u32 dst)
{
	if (s == STOP_COPY || s == RESUMING)
		return false;
	if (fsm_is_precopy(s))
		return fsm_is_precopy(src) && dst == STOP_COPY;
	return true;
}

} // namespace

bool fsm_is_precopy(__u32 s)
{
	return s == PRE_COPY || s == PRE_COPY_P2P;
}

bool fsm_opens_stream(__u32 from, __u32 to)
{
	if (from == to || !(to == STOP_COPY || to == RESUMING || fsm_is_precopy(to)))
		return false;
	return !(fsm_is_precopy(from) && (to == STOP_COPY || fsm_is_precopy(to)));
}

bool fsm_has_state(__u64 flags, __u32 s)
{
	bool p2p = flags & VFIO_MIGRATION_P2P;
	bool pre = flags & VFIO_MIGRATION_PRE_COPY;
	switch (s) {
	case STOP:
	case RUNNING:
	case STOP_COPY:
	case RESUMING:
		return true;
	case RUNNING_P2P:
		return p2p;
	case PRE_COPY:
		return pre;
	case PRE_COPY_P2P:
		return pre && p2p;
	default:
		return false;	/* ERROR is no target */
	}
}

std::vector<__u32> fsm_arcs(__u64 flags, __u32 s)
{
	bool p2p = flags & VFIO_MIGRATION_P2P;
	std::vector<__u32> all, out;
	switch (s) {
	case STOP:
		all = {RUNNING_P2P, STOP_COPY, RESUMING};
		if (!p2p)
			all.push_back(RUNNING);
		break;
	case RUNNING:
		all = {RUNNING_P2P, PRE_COPY};
		if (!p2p)
			all.push_back(STOP);
		break;
	case STOP_COPY:
	case RESUMING:
		all = {STOP};
		break;
	case RUNNING_P2P:
		all = {STOP, RUNNING, PRE_COPY_P2P};
		break;
	case PRE_COPY:
		all = {RUNNING, PRE_COPY_P2P};
		if (!p2p)
			all.push_back(STOP_COPY);
		break;
	case PRE_COPY_P2P:
		all = {PRE_COPY, RUNNING_P2P, STOP_COPY};
		break;
	}
	if (!fsm_has_state(flags, s))
		return out;
	for (__u32 t : all)
		if (fsm_has_state(flags, t))
			out.push_back(t);
	return out;
}

bool fsm_path(__u64 flags, __u32 from, __u32 to, std::vector<__u32> *path)
{
	path->clear();
	if (!fsm_has_state(flags, from) || !fsm_has_state(flags, to))
		return false;
	if (from == to)
		return true;
	/* The uAPI has no way from STOP_COPY back into pre-copy. */
	if (from == STOP_COPY && fsm_is_precopy(to))
		return false;
	/* Breadth first from `from`, first found is shortest. */
	std::vector<int> prev(NUM_MIG_STATES, -1);
	std::deque<__u32> q{from};
	prev[from] = int(from);
	while (!q.empty()) {
		__u32 s = q.front();
		q.pop_front();
		if (s != from && !may_pass(from, s, to))
			continue;
		for (__u32 t : fsm_arcs(flags, s)) {
			if (prev[t] >= 0)
				continue;
			prev[t] = int(s);
			if (t == to) {
				for (__u32 x = to; x != from; x = __u32(prev[x]))
					path->insert(path->begin(), x);
				return true;
			}
			q.push_back(t);
		}
	}
	return false;
}

} // namespace uvfio::tools
