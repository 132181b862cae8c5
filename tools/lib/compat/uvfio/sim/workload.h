/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/sim/workload.h> - kept so programs that included the workload
 * generator from here still build: the generator is a guest driver, not
 * hardware, and now lives with the other userspace code as
 * <uvfio/tools/workload.h>. New code includes that.
 */
#ifndef UVFIO_SIM_WORKLOAD_H
#define UVFIO_SIM_WORKLOAD_H

#include <uvfio/tools/workload.h>

#endif /* UVFIO_SIM_WORKLOAD_H */
