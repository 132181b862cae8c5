// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio_check_feature(): the full truth table over the GET/SET/PROBE flag
 * combinations, every supported_ops set and argsz below/at/above minsz.
 */
#include <gtest/gtest.h>

#include <uvfio/linux/vfio.h>

namespace {

constexpr u32 G = VFIO_DEVICE_FEATURE_GET;
constexpr u32 S = VFIO_DEVICE_FEATURE_SET;
constexpr u32 P = VFIO_DEVICE_FEATURE_PROBE;

/*
 * The kernel's documented order, stated as a decision list: asking for an
 * op the feature lacks is an error even with PROBE; PROBE then succeeds
 * without looking at argsz; otherwise at least one op is needed and the
 * payload must fit.
 */
int expected(u32 flags, size_t argsz, u32 supported, size_t minsz)
{
	const u32 asked = flags & (G | S);
	if (asked & ~supported)
		return -EINVAL;
	if (flags & P)
		return 0;
	if (asked == 0)
		return -EINVAL;
	return argsz >= minsz ? 1 : -EINVAL;
}

// Contract: every (flags, supported_ops, argsz) combination gives the
// kernel's result: 1 = do it, 0 = probe ok, -EINVAL otherwise.
TEST(CheckFeatureTest, FullTruthTable)
{
	const u32 supported_sets[] = {0, G, S, G | S};
	const size_t minsz = 8;
	const size_t argszs[] = {0, minsz - 1, minsz, minsz + 1};
	int rows = 0;
	for (u32 bits = 0; bits < 8; bits++) {
		u32 flags = ((bits & 1) ? G : 0) | ((bits & 2) ? S : 0) |
			    ((bits & 4) ? P : 0);
		/* The feature index is not vfio_check_feature's business. */
		flags |= 3;
		for (u32 supported : supported_sets) {
			for (size_t argsz : argszs) {
				EXPECT_EQ(vfio_check_feature(flags, argsz,
							     supported, minsz),
					  expected(flags, argsz, supported,
						   minsz))
					<< "flags=0x" << std::hex << flags
					<< " supported=0x" << supported
					<< std::dec << " argsz=" << argsz;
				rows++;
			}
		}
	}
	EXPECT_EQ(rows, 8 * 4 * 4);
}

// Contract: spot checks written out by hand from the uAPI documentation.
TEST(CheckFeatureTest, HandWrittenRows)
{
	/* GET on a GET-only feature with room for the payload: do it. */
	EXPECT_EQ(vfio_check_feature(G, 8, G, 8), 1);
	/* SET on a GET-only feature: EINVAL, with or without PROBE. */
	EXPECT_EQ(vfio_check_feature(S, 8, G, 8), -EINVAL);
	EXPECT_EQ(vfio_check_feature(S | P, 8, G, 8), -EINVAL);
	/* PROBE of a supported op ignores argsz. */
	EXPECT_EQ(vfio_check_feature(G | P, 0, G, 8), 0);
	/* PROBE alone (no op) succeeds for any feature. */
	EXPECT_EQ(vfio_check_feature(P, 0, 0, 8), 0);
	/* Neither GET nor SET without PROBE: EINVAL. */
	EXPECT_EQ(vfio_check_feature(0, 8, G | S, 8), -EINVAL);
	/* Payload too small. */
	EXPECT_EQ(vfio_check_feature(S, 7, S, 8), -EINVAL);
	/* minsz 0: any argsz will do. */
	EXPECT_EQ(vfio_check_feature(S, 0, S, 0), 1);
}

} // namespace
