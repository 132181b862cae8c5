#!/bin/sh
# Contract: a C program (C, not C++) built with `pkg-config --cflags --libs
# uvfio` against the *installed* library adds a device, opens it, reads
# VFIO_DEVICE_GET_INFO and closes it, and parses a size as specs do.
#
# Contract: the install carries what a driver author needs without the
# source tree: every Documentation/*.md page under share/doc/uvfio, the
# skeleton driver (and its kernel-shaped form) under
# share/doc/uvfio/examples, building against the installed headers alone,
# a header declaring every call the installed driver guide names, and no
# made-up URL (uvfio.pc has none).
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

bad=0
missing() { echo "not installed: $*"; bad=1; }
top=$(cd "$(dirname "$0")/../.." && pwd)
docdir=$(find "$tmp/root" -type d -path '*/share/doc/uvfio' | head -n1)
[ -n "$docdir" ] || { echo "share/doc/uvfio was not installed"; exit 1; }
for page in "$top"/Documentation/*.md; do
	cmp -s "$page" "$docdir/${page##*/}" || missing "${page#"$top"/}"
done
for f in drivers/skeleton/skeleton.cc Documentation/skeleton-kernel.c; do
	cmp -s "$top/$f" "$docdir/examples/${f##*/}" ||
		missing "$f as examples/${f##*/}"
done
if grep -q '^URL:' "$pc"; then
	echo "uvfio.pc names a URL: $(grep '^URL:' "$pc")"; bad=1
fi
if grep -rl 'example\.invalid' "$tmp/root"; then
	echo "the files above name example.invalid"; bad=1
fi
# Every call the guide names as `name()` has a declaration (or macro) in an
# installed header, but those it names from elsewhere: libc's dlopen, the
# kernel drivers it compares with, and the in-tree drivers' shared record
# code (drivers/common, not part of the driver API).
inc=$(find "$tmp/root" -type d -path '*/include/uvfio' | head -n1)
for fn in $(grep -o '`[A-Za-z][A-Za-z0-9_]*()`' "$docdir/driver-guide.md" |
	    tr -d '`()' | sort -u); do
	case $fn in
	dlopen | mlx5vf_pci_set_device_state | mtty_set_state | \
	mig_rec_emit_ref) continue ;;
	esac
	grep -rqE "(\b$fn[[:space:]]*\(|\(\*$fn\))" "$inc" ||
		{ echo "driver-guide.md names $fn(), no installed header has it"; bad=1; }
done
[ "$bad" = 0 ] || exit 1

# The installed skeleton builds from the installed headers alone.
# shellcheck disable=SC2086
c++ -std=c++20 -Wall -Wextra -Werror -Wno-missing-field-initializers \
	-fsyntax-only $cflags "$docdir/examples/skeleton.cc"

# UVFIO_SANITIZE: the -fsanitize= of a sanitizer build (tests/meson.build).
san=${UVFIO_SANITIZE:-}
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror -pedantic $san $cflags -o "$tmp/c_program" \
	"$src" $libs

# The sysroot-prefixed -L path is where the installed library is.
libdir=$(pkg-config --libs-only-L uvfio | sed 's/^ *-L//; s/ *$//')
LD_LIBRARY_PATH="$libdir" "$tmp/c_program"
