#!/bin/bash
# fetch-kernel.sh [--modules NAME,...] CACHE_DIR - print the path of a
# Debian 12 Linux 6.12 kernel image (vmlinuz) for the guest tests,
# downloading it once.
#
# Contract: the kernel is Debian's own, unmodified: the newest
# linux-image-6.12.*+deb12-amd64-unsigned in apt's lists, fetched with
# `apt-get download` and unpacked with dpkg-deb. CACHE_DIR/NAME/vmlinuz is
# kept (the 100 MB .deb is not), so a second run downloads nothing; with
# apt's lists missing and a kernel cached, the cached one is used. Missing
# or stale lists (a package the mirror dropped) get one apt-get update.
# Concurrent runs share the download through a lock.
#
# Next to it, CACHE_DIR/NAME/version holds the package's version (e.g.
# 6.12.118-1~deb12u1) and CACHE_DIR/NAME/release the kernel's release
# (uname -r, the modules' vermagic), for callers that need the matching
# headers.
#
# --modules NAME,...: also keep those modules of the package and every
# module they depend on (modinfo -F depends, Debian package kmod: the
# package ships no modules.dep, depmod makes it at install), uncompressed
# (.ko.xz -> .ko), in CACHE_DIR/NAME/modules/, with
# CACHE_DIR/NAME/modules/load-order naming them one per line in an order
# insmod can follow (dependencies first). That directory holds the set
# the last such call asked for (one caller today: tests/kernel). A cached
# kernel without them is fetched once more, and only the modules are
# added to it (its vmlinuz, which other tests may be reading, is left
# alone).
#
# Exit 0 with the path on stdout; 1 with one line on stderr when no kernel
# can be had; 2 for a usage error.
set -euo pipefail

usage() { echo "usage: fetch-kernel.sh [--modules NAME,...] CACHE_DIR" >&2; exit 2; }
want_modules=()
if [ "${1:-}" = --modules ]; then
	[ $# -ge 2 ] || usage
	IFS=, read -r -a want_modules <<<"$2"
	shift 2
fi
[ $# -eq 1 ] || usage
mkdir -p "$1"
cache=$(cd "$1" && pwd)	# absolute: download() runs in another directory
exec 9>"$cache/.lock"
flock 9

pattern='^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$'
newest() {
	apt-cache search --names-only "$pattern" 2>/dev/null |
		cut -d' ' -f1 | sort -V | tail -n 1
}
# Is the cached DIR complete: vmlinuz, its release and version, and
# every module asked for?
complete() {
	local m
	[ -f "$1/vmlinuz" ] || return 1
	[ ${#want_modules[@]} -gt 0 ] || return 0
	[ -s "$1/release" ] && [ -s "$1/version" ] &&
		[ -f "$1/modules/load-order" ] || return 1
	for m in "${want_modules[@]}"; do
		grep -qx "${m//-/_}" "$1/modules/requested" 2>/dev/null || return 1
	done
}
newest_cached() {
	local d
	for d in "$cache"/linux-image-*/vmlinuz; do
		if [ -f "$d" ] && complete "$(dirname "$d")"; then dirname "$d"; fi
	done | sort -V | tail -n 1
}

name=$(newest)
if [ -z "$name" ]; then
	cached=$(newest_cached)
	if [ -n "$cached" ]; then
		echo "$cached/vmlinuz"
		exit 0
	fi
	# No lists yet (a fresh machine): fetch them once.
	apt-get update -q >&2 || true
	name=$(newest)
fi
if [ -z "$name" ]; then
	echo "fetch-kernel: no package matching $pattern in apt's lists" \
		"(apt-get update failed or no network?)" >&2
	exit 1
fi

if complete "$cache/$name"; then
	echo "$cache/$name/vmlinuz"
	exit 0
fi

tmp=$(mktemp -d "$cache/.dl.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# apt's sandbox user cannot write into the build tree; apt warns and
# downloads as root, which is fine here.
download() {
	echo "fetch-kernel: downloading $name" >&2
	(cd "$tmp" && apt-get download -q "$name" >&2 2>"$tmp/apt.err")
}
if ! download; then
	# Old lists may name a kernel the mirror no longer has: refresh once.
	sed 's/^/fetch-kernel: /' "$tmp/apt.err" >&2
	apt-get update -q >&2 || true
	name=$(newest)
	if [ -n "$name" ] && complete "$cache/$name"; then
		echo "$cache/$name/vmlinuz"
		exit 0
	fi
	if [ -z "$name" ] || ! download; then
		sed 's/^/fetch-kernel: /' "$tmp/apt.err" >&2
		echo "fetch-kernel: apt-get download ${name:-linux-image-6.12} failed (no network?)" >&2
		exit 1
	fi
fi
deb=$(ls "$tmp"/*.deb)
mkdir "$tmp/x" "$tmp/$name"
members=('./boot/vmlinuz-*')
[ ${#want_modules[@]} -eq 0 ] || members+=('./lib/modules/*/kernel/*')
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" --wildcards "${members[@]}"
img=$(ls "$tmp"/x/boot/vmlinuz-*)
release=${img##*/vmlinuz-}
dpkg-deb -f "$deb" Version >"$tmp/$name/version"
echo "$release" >"$tmp/$name/release"
rm -f "$deb"

if [ ${#want_modules[@]} -gt 0 ]; then
	PATH=$PATH:/usr/sbin:/sbin
	command -v modinfo >/dev/null ||
		{ echo "fetch-kernel: modinfo not found (Debian package kmod)" >&2; exit 1; }
	# Every module of the package by its name (modinfo's: '-' is '_').
	declare -A path
	while IFS= read -r f; do
		b=${f##*/}
		b=${b%.ko*}
		path[${b//-/_}]=$f
	done < <(find "$tmp/x/lib/modules" -name '*.ko*')
	mkdir "$tmp/$name/modules"
	declare -A seen
	order=()
	# Depth first, dependencies before their users.
	add() {
		local m=${1//-/_} d deps
		[ -z "${seen[$m]:-}" ] || return 0
		seen[$m]=1
		[ -n "${path[$m]:-}" ] ||
			{ echo "fetch-kernel: no module $m in $name" >&2; exit 1; }
		deps=$(modinfo -F depends "${path[$m]}")
		for d in ${deps//,/ }; do add "$d"; done
		case ${path[$m]} in
		*.xz) xz -dc "${path[$m]}" >"$tmp/$name/modules/$m.ko" ;;
		*) cp "${path[$m]}" "$tmp/$name/modules/$m.ko" ;;
		esac
		order+=("$m.ko")
	}
	for m in "${want_modules[@]}"; do add "$m"; done
	printf '%s\n' "${order[@]}" >"$tmp/$name/modules/load-order"
	printf '%s\n' "${want_modules[@]//-/_}" >"$tmp/$name/modules/requested"
fi

# Into the cache: a new kernel whole; a cached one gets what it lacked,
# without replacing the vmlinuz another test may be about to boot.
mkdir -p "$cache/$name"
if [ ! -f "$cache/$name/vmlinuz" ]; then
	mv "$img" "$cache/$name/vmlinuz"
fi
mv -f "$tmp/$name/version" "$tmp/$name/release" "$cache/$name/"
if [ -d "$tmp/$name/modules" ]; then
	rm -rf "${cache:?}/${name:?}/modules"
	mv "$tmp/$name/modules" "$cache/$name/modules"
fi
echo "$cache/$name/vmlinuz"
