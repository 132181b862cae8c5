/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * sim-internal: write-protect tracking of the user's writable mappings of
 * device memory (simdev_wp.cc), the simulated PCIe path that lets the
 * function see CPU stores through a BAR mapping as a device sees writes.
 */
#ifndef UVFIO_SIM_SIMDEV_WP_H
#define UVFIO_SIM_SIMDEV_WP_H

#include <uvfio/sim/simdev.h>

/*
 * Tracking turned on or off: protect (or unprotect, waking any blocked
 * store) every user mapping of sd. Called with sd->mem_lock held.
 */
void simdev_wp_track(struct simdev *sd, bool on);
/*
 * Move the pages stored to through mappings into sd's tracker, each page
 * write-protected again before its bit leaves the store side, so a later
 * store faults and marks it anew. Called with sd->mem_lock held.
 */
void simdev_wp_fold(struct simdev *sd);
/* The device goes away: unprotect, unregister and forget its mappings. */
void simdev_wp_exit(struct simdev *sd);

#endif /* UVFIO_SIM_SIMDEV_WP_H */
