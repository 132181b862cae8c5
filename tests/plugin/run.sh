#!/bin/sh
# Contract: an out-of-tree driver builds against the *installed* library
# (pkg-config uvfio) as a shared object, and a program that knows nothing
# of it creates devices of it by spec name once UVFIO_DRIVER_PATH names its
# directory: the plugin is loaded on first use and its devices migrate. A
# name with no plugin is still "unknown driver".
#
# usage: run.sh BUILD_DIR DRIVER_SOURCE HOST_SOURCE
set -eu
build=$1
driver=$2
host=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" >/dev/null
pc=$(find "$tmp/root" -name uvfio.pc | head -n1)
[ -n "$pc" ] || { echo "uvfio.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
cflags=$(pkg-config --cflags uvfio)
libs=$(pkg-config --libs uvfio)
libdir=$(pkg-config --libs-only-L uvfio | sed 's/^ *-L//; s/ *$//')

# UVFIO_SANITIZE: the -fsanitize= of a sanitizer build (tests/meson.build).
san=${UVFIO_SANITIZE:-}

mkdir "$tmp/plugins"
# The skeleton, unchanged, under another spec name.
# shellcheck disable=SC2086
c++ -std=c++20 -Wall -Wextra -Werror -Wno-missing-field-initializers \
	-fPIC -shared -DSKELETON_NAME='"plugskel"' $san $cflags \
	-o "$tmp/plugins/plugskel.so" "$driver" $libs -lxxhash
# kport: a driver written in kernel C (tests/plugin/kport/), compiled as
# C++ with the warnings a kernel build has: no -Wunused-parameter (kernel
# callbacks leave parameters unused) and KBUILD_MODNAME, as kbuild sets it.
kport=$(dirname "$0")/kport/kport.c
# shellcheck disable=SC2086
c++ -x c++ -std=c++20 -Wall -Wextra -Werror -Wno-missing-field-initializers \
	-Wno-unused-parameter -fPIC -shared -DKBUILD_MODNAME='"kport"' \
	$san $cflags -o "$tmp/plugins/kport.so" "$kport" $libs
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror $san $cflags -o "$tmp/host" "$host" $libs

UVFIO_DRIVER_PATH="$tmp/nowhere:$tmp/plugins" LD_LIBRARY_PATH="$libdir" \
	"$tmp/host"
UVFIO_DRIVER_PATH="$tmp/plugins" LD_LIBRARY_PATH="$libdir" \
	"$tmp/host" kport 65536
