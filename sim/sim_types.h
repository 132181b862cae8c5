/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The short scalar names sim's own files use. They are the <stdint.h>
 * types, the same ones the kernel side calls u8..u64, declared here so
 * that the hardware model needs no header of the core.
 */
#ifndef UVFIO_SIM_TYPES_H
#define UVFIO_SIM_TYPES_H

#include <stdint.h>

using u8 = uint8_t;
using u16 = uint16_t;
using u32 = uint32_t;
using u64 = uint64_t;

#endif /* UVFIO_SIM_TYPES_H */
