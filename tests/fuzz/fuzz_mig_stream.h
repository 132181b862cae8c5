/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The devices of the mig-stream fuzz target, shared with its seed
 * generator: a saved stream loads only into a device configured as the one
 * that saved it, so both make them from the same specs.
 *
 * An input is a selector byte and the stream: bit 0 of the selector picks
 * the device (testdev, simnic), bit 1 asks the harness to recompute every
 * record's checksum before the stream is written (so mutations reach the
 * loaders' checks behind the checksum; the drivers themselves are
 * unchanged), bit 2 closes the data fd before RESUMING -> STOP instead of
 * after it.
 */
#ifndef UVFIO_TESTS_FUZZ_MIG_STREAM_H
#define UVFIO_TESTS_FUZZ_MIG_STREAM_H

namespace uvfio_fuzz {

/* Spec without ",bdf=...", and the keys the saving side adds. */
inline const char *const mig_stream_specs[] = {
	"testdev,mem=16K,msix=2,mig=stop_copy|p2p|pre_copy,state=256",
	"simnic,mem=16K,msix=2",
};

constexpr unsigned char MIG_SEL_SIMNIC = 1;
constexpr unsigned char MIG_SEL_FIX_HASH = 2;
constexpr unsigned char MIG_SEL_CLOSE_FIRST = 4;

} // namespace uvfio_fuzz

#endif /* UVFIO_TESTS_FUZZ_MIG_STREAM_H */
