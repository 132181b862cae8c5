#!/bin/sh
# Contract: Documentation/skeleton-kernel.c is what
# Documentation/skeleton-kernel.py makes of drivers/skeleton/skeleton.cc
# today, so the guide's "Porting to the kernel" diff describes the skeleton
# that ships. A skeleton change must regenerate it (and re-measure).
#
# usage: skeleton_kernel.sh SCRIPT SKELETON_CC COMMITTED_C
set -eu
out=$(mktemp "${TMPDIR:-/tmp}/skeleton-kernel.XXXXXX.c")
trap 'rm -f "$out"' EXIT
python3 "$1" "$2" "$out"
if ! cmp -s "$out" "$3"; then
	echo "skeleton-kernel.c is stale: run $1 $2 $3" >&2
	diff -u "$3" "$out" | head -40 >&2
	exit 1
fi
echo "skeleton-kernel.c matches the skeleton"
