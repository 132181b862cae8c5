#!/bin/sh
# Contract: a program written for the kernel's VFIO only (plain open, ioctl,
# read, pread, mmap; the group from sysfs) runs unchanged under uvfio-run,
# drives a pre-copy migration with plain read(2) (ENOMSG) and ioctl(2)
# PRECOPY_INFO, closes every fd and mapping it got, and sees exactly what
# the same calls through uvfio_* see. A program that never touches
# /dev/vfio does not even load libuvfio.
#
# usage: run.sh UVFIO_RUN KERNEL_CLIENT KERNEL_CLIENT_UVFIO
set -eu
run=$1
plain=$2
surface=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A sanitizer build's runtime is in the client; the preload goes first.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

bdf=0000:00:02.0
spec="simnic,bdf=$bdf,mem=1M"
"$run" --device "$spec" -- "$plain" "$bdf" >"$tmp/preload.txt"
"$surface" "$bdf" "$spec" >"$tmp/surface.txt"
cat "$tmp/preload.txt"
diff -u "$tmp/surface.txt" "$tmp/preload.txt" ||
	{ echo "FAIL: the preload and the syscall surface differ"; exit 1; }
grep -q '^pre-copy read [1-9][0-9]* bytes, then ENOMSG$' "$tmp/preload.txt" ||
	{ echo "FAIL: no pre-copy data ended by ENOMSG"; exit 1; }
grep -q '^stop-copy read [0-9]* bytes, then EOF$' "$tmp/preload.txt" ||
	{ echo "FAIL: stop-copy did not end in EOF"; exit 1; }
grep -q '^fds left open 0, mappings left 0$' "$tmp/preload.txt" ||
	{ echo "FAIL: fds or mappings outlived their close"; exit 1; }

# Untouched: no libuvfio in a process that never opens /dev/vfio, and its
# output is its own.
maps=$("$run" --device "$spec" -- cat /proc/self/maps)
if echo "$maps" | grep -q 'libuvfio\.so'; then
	echo "FAIL: libuvfio loaded in a program that never touched /dev/vfio"
	exit 1
fi
[ "$("$run" --device "$spec" -- sh -c 'echo untouched; exit 7' ||
	echo "exit $?")" = "untouched
exit 7" ] || { echo "FAIL: exit status or output changed"; exit 1; }
echo "PASS"
