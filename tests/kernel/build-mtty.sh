#!/bin/bash
# build-mtty.sh KERNEL_DIR CACHE_DIR - build the kernel's own mtty sample
# (samples/vfio-mdev/mtty.c) as a module for the Debian kernel in
# KERNEL_DIR (fetch-kernel.sh's CACHE/NAME: its release and version
# files), and print the path of mtty.ko.
#
# Contract: the module is built out of tree (make -C HEADERS M=DIR
# modules) against Debian's headers for exactly that kernel:
# linux-headers-ABI-amd64 and -common and linux-kbuild-ABI, of the image's
# package version (a different version is an error, not a fallback), with
# the compiler those headers name (gcc-12); mtty.c comes from
# linux-source-6.12 of the same version, streamed out of its 150 MB
# tarball (only that member is written). Nothing is installed: the
# packages are fetched with `apt-get download` and unpacked with
# `dpkg-deb -x` under CACHE_DIR/RELEASE/, where the headers, mtty.c and
# mtty.ko stay (the .debs do not), so a second run downloads and builds
# nothing. The module's vermagic is checked against the release.
#
# Exit 0 with the path on stdout; 1 with the reason on stderr.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: build-mtty.sh KERNEL_DIR CACHE_DIR" >&2; exit 2; }
kdir=$1
mkdir -p "$2"
cache=$(cd "$2" && pwd)	# absolute: apt-get runs in another directory
here=$(dirname "$(readlink -f "$0")")
PATH=$PATH:/usr/sbin:/sbin
die() { echo "build-mtty: $*" >&2; exit 1; }

release=$(cat "$kdir/release") || die "no $kdir/release (fetch-kernel.sh --modules)"
version=$(cat "$kdir/version") || die "no $kdir/version (fetch-kernel.sh --modules)"
abi=${release%-amd64}		# 6.12.118+deb12
case $release in
6.12.*+deb12-amd64) ;;
*) die "unexpected kernel release $release (want 6.12.N+deb12-amd64)" ;;
esac
dir=$cache/$release
ko=$dir/mtty/mtty.ko

exec 9>"$cache/.lock"
flock 9

vermagic_ok() {
	[ -f "$1" ] && [ "$(modinfo -F vermagic "$1" | cut -d' ' -f1)" = "$release" ]
}
if vermagic_ok "$ko"; then
	echo "$ko"
	exit 0
fi

headers=$dir/usr/src/linux-headers-$release
if [ ! -f "$dir/.unpacked" ] || [ ! -f "$dir/mtty/mtty.c" ]; then
	rm -rf "$dir"
	tmp=$(mktemp -d "$cache/.dl.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	pkgs=("linux-headers-$abi-amd64=$version" "linux-headers-$abi-common=$version"
	      "linux-kbuild-$abi=$version" "linux-source-6.12=$version")
	echo "build-mtty: downloading ${pkgs[*]}" >&2
	if ! (cd "$tmp" && apt-get download -q "${pkgs[@]}" >&2 2>"$tmp/apt.err"); then
		sed 's/^/build-mtty: /' "$tmp/apt.err" >&2
		die "apt-get download failed: the headers, kbuild and source of $version must come with the image (stale apt lists? run apt-get update)"
	fi
	mkdir "$tmp/root"
	for p in "${pkgs[@]}"; do
		deb=$(ls "$tmp/${p%%=*}"_*.deb)
		got=$(dpkg-deb -f "$deb" Version)
		[ "$got" = "$version" ] || die "$deb is version $got, the kernel $version"
		case $p in
		linux-source-*)
			# Only mtty.c, streamed: the tarball is never written out.
			mkdir -p "$tmp/root/mtty"
			dpkg-deb --fsys-tarfile "$deb" |
				tar -xO ./usr/src/linux-source-6.12.tar.xz |
				xz -dc | tar -xO linux-source-6.12/samples/vfio-mdev/mtty.c \
				>"$tmp/root/mtty/mtty.c"
			[ -s "$tmp/root/mtty/mtty.c" ] || die "no samples/vfio-mdev/mtty.c in $deb"
			;;
		*) dpkg-deb -x "$deb" "$tmp/root" ;;
		esac
		rm -f "$deb"
	done
	# The headers' Makefile includes the common half by its installed
	# path (/usr/src/...); point it at the unpacked one.
	sed -i "s|^include /usr/src/|include $dir/usr/src/|" \
		"$tmp/root/usr/src/linux-headers-$release/Makefile"
	grep -q "^include $dir/" "$tmp/root/usr/src/linux-headers-$release/Makefile" ||
		die "unexpected Makefile in linux-headers-$release"
	touch "$tmp/root/.unpacked"
	mv "$tmp/root" "$dir"
fi

cp "$here/Kbuild" "$dir/mtty/Kbuild"
# The headers name their compiler (x86_64-linux-gnu-gcc-12) and check
# nothing else; BTF for the module needs pahole (Debian's linux-kbuild
# depends on it).
command -v x86_64-linux-gnu-gcc-12 >/dev/null || die "x86_64-linux-gnu-gcc-12 not found (Debian package gcc-12)"
command -v pahole >/dev/null || die "pahole not found (Debian package pahole)"
if ! timeout 300 make -s -C "$headers" M="$dir/mtty" -j2 modules >"$dir/mtty/build.log" 2>&1; then
	cat "$dir/mtty/build.log" >&2
	die "make -C $headers M=$dir/mtty modules failed"
fi
vermagic_ok "$ko" || die "$ko: vermagic $(modinfo -F vermagic "$ko" 2>&1) is not $release"
echo "$ko"
