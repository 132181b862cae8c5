#!/bin/sh
# Contract: a C program (C, not C++) built with `pkg-config --cflags --libs
# uvfio` against the *installed* library adds a device, opens it, reads
# VFIO_DEVICE_GET_INFO and closes it.
#
# usage: run.sh BUILD_DIR C_SOURCE
set -eu
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" >/dev/null
pc=$(find "$tmp/root" -name uvfio.pc | head -n1)
[ -n "$pc" ] || { echo "uvfio.pc was not installed"; exit 1; }
[ -n "$(find "$tmp/root" -path '*/include/uvfio/uvfio.h')" ] || {
	echo "uvfio/uvfio.h was not installed"; exit 1; }

export PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
cflags=$(pkg-config --cflags uvfio)
libs=$(pkg-config --libs uvfio)
echo "pkg-config: $cflags $libs"

# UVFIO_SANITIZE: the -fsanitize= of a sanitizer build (tests/meson.build).
san=${UVFIO_SANITIZE:-}
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror -pedantic $san $cflags -o "$tmp/c_program" \
	"$src" $libs

# The sysroot-prefixed -L path is where the installed library is.
libdir=$(pkg-config --libs-only-L uvfio | sed 's/^ *-L//; s/ *$//')
LD_LIBRARY_PATH="$libdir" "$tmp/c_program"
