// SPDX-License-Identifier: GPL-2.0-only
/*
 * The migration protocol v2 state machine: the next-step table, the states
 * each migration_flags combination supports, and the arc-by-arc walk that
 * drivers share.
 */
#include <cerrno>
#include <cstdio>

#include <uvfio/linux/fault-inject.h>
#include <uvfio/linux/vfio.h>

#include "vfio.h"
#include "vfio_migration.h"

namespace {

using namespace uvfio::mig_state;
constexpr int NSTATES = UVFIO_DEVICE_NUM_STATES;

/* Short names so the table below reads as a grid. */
constexpr int ERR = ERROR, RUN = RUNNING, SC = STOP_COPY, RES = RESUMING,
	      RP2P = RUNNING_P2P, PC = PRE_COPY, PCP2P = PRE_COPY_P2P;

/*
 * next_step[cur][target]: the first state on the way from cur to target when
 * every optional state is supported. Arcs through a state the device lacks
 * are skipped by looking the next step up again from that state.
 *
 * The path rules the table encodes: the *_P2P states sit between a running
 * and a stopped state; STOP is the hub between saving, resuming and running;
 * PRE_COPY is reached only from RUNNING (PRE_COPY_P2P from RUNNING_P2P or
 * PRE_COPY) and leads to STOP_COPY only through PRE_COPY_P2P; STOP_COPY
 * cannot go back to pre-copy (ERROR marks "no path").
 */
constexpr int next_step[NSTATES][NSTATES] = {
	/* to:  ERR    STOP   RUN    SC     RES    RP2P   PC     PCP2P */
	{ERR,   ERR,   ERR,   ERR,   ERR,   ERR,   ERR,   ERR},	/* ERROR */
	{ERR,   STOP,  RP2P,  SC,    RES,   RP2P,  RP2P,  RP2P},	/* STOP */
	{ERR,   RP2P,  RUN,   RP2P,  RP2P,  RP2P,  PC,    RP2P},	/* RUNNING */
	{ERR,   STOP,  STOP,  SC,    STOP,  STOP,  ERR,   ERR},	/* STOP_COPY */
	{ERR,   STOP,  STOP,  STOP,  RES,   STOP,  STOP,  STOP},	/* RESUMING */
	{ERR,   STOP,  RUN,   STOP,  STOP,  RP2P,  RUN,   PCP2P},	/* RUNNING_P2P */
	{ERR,   RUN,   RUN,   PCP2P, RUN,   RUN,   PC,    PCP2P},	/* PRE_COPY */
	{ERR,   RP2P,  RP2P,  SC,    RP2P,  RP2P,  PC,    PCP2P},	/* PRE_COPY_P2P */
};

/* The migration_flags a state needs; ERROR is never a valid target. */
constexpr u32 state_flags[NSTATES] = {
	~0U,						/* ERROR */
	VFIO_MIGRATION_STOP_COPY,			/* STOP */
	VFIO_MIGRATION_STOP_COPY,			/* RUNNING */
	VFIO_MIGRATION_STOP_COPY,			/* STOP_COPY */
	VFIO_MIGRATION_STOP_COPY,			/* RESUMING */
	VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P,	/* RUNNING_P2P */
	VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY, /* PRE_COPY */
	VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P |
		VFIO_MIGRATION_PRE_COPY,		/* PRE_COPY_P2P */
};

bool supported(u32 migration_flags, unsigned int state)
{
	return state < NSTATES &&
	       (state_flags[state] & migration_flags) == state_flags[state];
}

/* The enum's names without VFIO_DEVICE_STATE_. */
constexpr const char *state_names[NSTATES] = {
	"ERROR",       "STOP",	       "RUNNING",  "STOP_COPY",
	"RESUMING",    "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P",
};

int next_state(u32 flags, unsigned int cur, unsigned int target,
	       unsigned int *next_fsm);

/*
 * The arc fault points by flavour, cur and next: "mig.arc.CUR->NEXT" fails
 * the arc, "mig.error.CUR->NEXT" fails it and breaks the device. Only arcs
 * some device can take are named and registered; the others stay zero,
 * which should_fail() never fails.
 */
enum { ARC_FAILS, ARC_BREAKS, ARC_FLAVOURS };

struct arc_fault_point {
	char name[48];
	struct fault_point point;
};

arc_fault_point arc_points[ARC_FLAVOURS][NSTATES][NSTATES];

/*
 * Declare one point per arc any flags combination can take, in both
 * flavours, so that every arc can be listed and armed by name.
 */
__attribute__((constructor)) void declare_arc_fault_points()
{
	static constexpr struct {
		const char *prefix;
		const char *doc;
	} flavour[ARC_FLAVOURS] = {
		{"mig.arc", "the arc fails; the device stays in the state it "
			    "left"},
		{"mig.error", "the arc fails and breaks the device: ERROR "
			      "until reset"},
	};
	constexpr u32 combos[] = {
		VFIO_MIGRATION_STOP_COPY,
		VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P,
		VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY,
		VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P |
			VFIO_MIGRATION_PRE_COPY,
	};
	bool arc[NSTATES][NSTATES] = {};
	for (u32 flags : combos)
		for (unsigned int cur = 1; cur < NSTATES; cur++)
			for (unsigned int target = 1; target < NSTATES; target++) {
				unsigned int next;
				if (cur != target &&
				    !next_state(flags, cur, target, &next))
					arc[cur][next] = true;
			}
	for (unsigned int cur = 1; cur < NSTATES; cur++)
		for (unsigned int next = 1; next < NSTATES; next++) {
			if (!arc[cur][next])
				continue;
			for (int f = 0; f < ARC_FLAVOURS; f++) {
				arc_fault_point &p = arc_points[f][cur][next];
				snprintf(p.name, sizeof(p.name), "%s.%s->%s",
					 flavour[f].prefix, state_names[cur],
					 state_names[next]);
				p.point = {p.name, EIO, flavour[f].doc};
				fault_point_register(p.name, EIO,
						     flavour[f].doc);
			}
		}
}

int next_state(u32 flags, unsigned int cur, unsigned int target,
	       unsigned int *next_fsm)
{
	if (!supported(flags, cur) || !supported(flags, target))
		return -EINVAL;

	unsigned int next = next_step[cur][target];
	/*
	 * Skip states this device lacks. Each skip moves strictly closer to
	 * the target, so at most NSTATES steps; an ERROR step means there is
	 * no path (STOP_COPY cannot return to pre-copy) and must not be
	 * looked up again, or the walk would never end.
	 */
	for (int guard = 0; next != ERROR && !supported(flags, next); guard++) {
		if (guard == NSTATES)
			return -EINVAL;
		next = next_step[next][target];
	}
	if (next == ERROR)
		return -EINVAL;
	*next_fsm = next;
	return 0;
}

} // namespace

/*
 * The arc fault points fire here, where a driver's migration_set_state
 * loop asks for its next arc, as the kernel's drivers (mtty, mlx5) all
 * do: "mig.arc.CUR->NEXT" fails the request before the driver changes
 * anything, which leaves the device in CUR as a failing step would;
 * "mig.error.CUR->NEXT" fails it too and breaks the device, which the
 * core then reports as ERROR until a reset (a driver is not told: its
 * hardware broke under it).
 */
int vfio_mig_get_next_state(struct vfio_device *device,
			    enum vfio_device_mig_state cur_fsm,
			    enum vfio_device_mig_state new_fsm,
			    enum vfio_device_mig_state *next_fsm)
{
	unsigned int c = cur_fsm, n;
	int ret = next_state(device->migration_flags, cur_fsm, new_fsm, &n);
	if (ret)
		return ret;

	ret = should_fail(&arc_points[ARC_FAILS][c][n].point);
	if (ret)
		return ret;
	ret = should_fail(&arc_points[ARC_BREAKS][c][n].point);
	if (ret) {
		if (device->priv)
			device->priv->mig_broken = true;
		return ret;
	}
	*next_fsm = static_cast<enum vfio_device_mig_state>(n);
	return 0;
}

const char *vfio_mig_state_name(int state)
{
	return state >= 0 && state < NSTATES ? state_names[state] : nullptr;
}

bool vfio_mig_device_broken(struct vfio_device *device)
{
	return device->priv && device->priv->mig_broken;
}

int vfio_mig_arc_should_fail(enum vfio_device_mig_state,
			     enum vfio_device_mig_state,
			     enum vfio_device_mig_state *)
{
	/* The points fire in vfio_mig_get_next_state() now. */
	return 0;
}

struct file *vfio_mig_step_to_state(
	struct vfio_device *device, enum vfio_device_mig_state *cur,
	enum vfio_device_mig_state target,
	struct file *(*step)(struct vfio_device *device,
			     enum vfio_device_mig_state next))
{
	struct file *res = nullptr;
	enum vfio_device_mig_state next;

	while (*cur != target) {
		int ret = vfio_mig_get_next_state(device, *cur, target, &next);
		if (ret) {
			if (vfio_mig_device_broken(device))
				*cur = VFIO_DEVICE_STATE_ERROR;
			return static_cast<struct file *>(ERR_PTR(ret));
		}
		res = step(device, next);
		if (IS_ERR(res))
			return res;
		*cur = next;
		/* A data file may only come from the last arc. */
		if (res && *cur != target) {
			dev_err(device->dev,
				"driver bug: arc to state %d returned a data "
				"file before the target %d",
				static_cast<int>(next), static_cast<int>(target));
			fput(res);
			return static_cast<struct file *>(ERR_PTR(-EINVAL));
		}
	}
	return res;
}
