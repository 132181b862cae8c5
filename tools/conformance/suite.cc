// SPDX-License-Identifier: GPL-2.0-only
/*
 * The conformance tests. Each drives a driver only through the syscall
 * surface (what a VMM can do), through a Transport (the simulator's for
 * specs, plain system calls for a real device), and states the uAPI
 * contract it checks. Every test also fails when the core logs a "driver
 * bug" while it runs: the core checks some duties a user cannot see (a
 * data file left enabled after its state was left, a data file from the
 * wrong arc).
 *
 * A real device is opened by each test through its group and closed at
 * the end; a driver may keep its migration state across the last close
 * (the uAPI does not say; mtty does), so a test that finds it elsewhere
 * than RUNNING resets it first. A test that needs a second device uses
 * the peer when one is given (--peer), or loads the device's own stream
 * back into it; the round trip needs the peer. What needs the simulator
 * (the state digest, the workload that plays the DMA function) is
 * skipped. PreCopyKeepsRegionWrites writes a real device's prefetchable
 * memory BARs too (device memory: run the suite on test hardware only);
 * mtty has none (its BARs are I/O ports) and is migrated unchanged.
 *
 * What the kernel (Linux 6.12, its mtty sample) showed the uAPI leaves to
 * the driver, and the suite therefore accepts from a real device:
 * migration state kept across close; 0 (end of file) rather than ENOMSG
 * at pre-copy's temporary end (the uAPI's "should", which QEMU does not
 * rely on); DMA_LOGGING_REPORT unsupported (EOPNOTSUPP: Debian's kernel
 * has no CONFIG_IOMMUFD, and iova_bitmap is a stub without it).
 */
#include "fixture.h"

namespace uvfio::conformance {

/*
 * The tests, by area: fsm_data_fd.cc, save_restore.cc, precopy_writes.cc,
 * dma.cc, qemu.cc; their fixture and helpers in fixture.{h,cc}. Each runs
 * once per target.
 */
INSTANTIATE_TEST_SUITE_P(
	Drivers, Conformance, ::testing::ValuesIn(targets()),
	[](const ::testing::TestParamInfo<Target> &info) {
		return target_name(info.param, info.index);
	});

} // namespace uvfio::conformance
