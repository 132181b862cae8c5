#!/bin/bash
# fetch-kernel.sh CACHE_DIR - print the path of a Debian 12 Linux 6.12
# kernel image (vmlinuz) for the guest tests, downloading it once.
#
# Contract: the kernel is Debian's own, unmodified: the newest
# linux-image-6.12.*+deb12-amd64-unsigned in apt's lists, fetched with
# `apt-get download` and unpacked with dpkg-deb. CACHE_DIR/NAME/vmlinuz is
# kept (the 100 MB .deb is not), so a second run downloads nothing; with
# apt's lists missing and a kernel cached, the cached one is used. Missing
# or stale lists (a package the mirror dropped) get one apt-get update.
# Concurrent runs share the download through a lock.
#
# Exit 0 with the path on stdout; 1 with one line on stderr when no kernel
# can be had; 2 for a usage error.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: fetch-kernel.sh CACHE_DIR" >&2; exit 2; }
cache=$1
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

pattern='^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$'
newest() {
	apt-cache search --names-only "$pattern" 2>/dev/null |
		cut -d' ' -f1 | sort -V | tail -n 1
}
newest_cached() {
	local d
	for d in "$cache"/linux-image-*/vmlinuz; do
		if [ -f "$d" ]; then dirname "$d"; fi
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

if [ -f "$cache/$name/vmlinuz" ]; then
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
	if [ -n "$name" ] && [ -f "$cache/$name/vmlinuz" ]; then
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
mkdir "$tmp/x"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" --wildcards './boot/vmlinuz-*'
img=$(ls "$tmp"/x/boot/vmlinuz-*)
mkdir -p "$tmp/$name"
mv "$img" "$tmp/$name/vmlinuz"
rm -rf "${cache:?}/${name:?}"
mv "$tmp/$name" "$cache/$name"
echo "$cache/$name/vmlinuz"
