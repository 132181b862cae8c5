#!/bin/bash
# hmp.sh UVFIO_RUN mmap|no-mmap - Debian's QEMU realizes a simnic under
# uvfio-run, seen through its human monitor (HMP).
#
# Contract: `uvfio-run --device simnic,bdf=0000:00:02.0,mem=1M --
# qemu-system-x86_64 -accel tcg -nodefaults -display none -monitor stdio
# -device vfio-pci,host=0000:00:02.0` (with ",x-no-mmap=on" for no-mmap)
# starts, and on its monitor:
#  - `info pci` lists a PCI device 1b36:0010 (simnic) whose BAR0 (32-bit
#    memory, 4 KiB) and BAR2 (64-bit prefetchable memory, 1 MiB: mem=1M)
#    the firmware placed (an unplaced BAR shows as 0xffffffffffffffff);
#  - `info mtree` shows QEMU's MSI-X table at BAR0 + 0x800 (8 vectors,
#    0x80 bytes): QEMU found the MSI-X capability in the device's config
#    space and emulates its table where simdev.md puts it (vfio-pci leaves
#    the PBA to the device: no region for it to check here);
#  - BAR2 is mmap'd into the guest (a "BAR 2 mmaps[0]" region), or, with
#    x-no-mmap=on, it is not;
#  - `quit` ends QEMU with exit 0, and nothing was printed on stderr.
# The firmware runs while the test waits: `info pci` is asked until the
# BARs are placed, at most POLL times.
#
# Environment: UVFIO_QEMU_SKIP=REASON skips (exit 77; the sanitizer
# builds set it).
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
. "$here/lib.sh"
qemu_test_init
[ $# -eq 2 ] || { echo "usage: hmp.sh UVFIO_RUN mmap|no-mmap" >&2; exit 2; }
uvfio_run=$1
case $2 in
mmap) opts= ;;
no-mmap) opts=,x-no-mmap=on ;;
*) echo "hmp.sh: unknown mode $2" >&2; exit 2 ;;
esac

tmp=$(mktemp -d)
cleanup() {
	[ -z "${mon_pid[q]:-}" ] || kill "${mon_pid[q]}" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
mon_open q

timeout 120 "$uvfio_run" --device simnic,bdf=0000:00:02.0,mem=1M -- \
	"$qemu" -accel tcg -nodefaults -display none -monitor stdio \
	-device "vfio-pci,host=0000:00:02.0$opts" \
	<"$(mon_in q)" >"$(mon_out q)" 2>"$tmp/err" &
mon_attach q $!

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# The simnic's lines of an `info pci` reply: from its "Bus" line to "id".
simnic_block() {
	awk '/^ *Bus /{blk=""} {blk=blk $0 "\n"}
	     /^ *id "/{if (blk ~ /PCI device 1b36:0010/) printf "%s", blk}' "$(mon_reply q)"
}
# bar N: "ADDR END" of BARN in the simnic's block, if it is memory.
bar() {
	simnic_block | sed -n "s/^ *BAR$1: .*memory at \(0x[0-9a-f]*\) \[\(0x[0-9a-f]*\)\]\..*/\1 \2/p"
}
placed() {
	local a
	for n in 0 2; do
		a=$(bar $n | cut -d' ' -f1)
		[ -n "$a" ] && [ "$a" != 0xffffffffffffffff ] && [ $((a)) -ne 0 ] || return 1
	done
}

# The first prompt: the monitor is up (it runs commands once the machine
# is built).
if ! mon_wait q; then
	fail "no monitor prompt: QEMU did not start"
else
	tries=0
	while hmp q "info pci" && ! placed && ((++tries < 300)); do
		sleep 0.2
	done
	if [ -z "$(simnic_block)" ]; then
		fail "info pci lists no PCI device 1b36:0010"
	else
		simnic_block
		for n in 0 2; do
			read -r a _ < <(bar $n) || true
			if [ -z "${a:-}" ]; then
				fail "BAR$n is not a memory BAR in info pci"
			elif [ "$a" = 0xffffffffffffffff ] || [ $((a)) -eq 0 ]; then
				fail "BAR$n was not placed by the firmware: $a"
			fi
		done
		simnic_block | grep '^ *BAR0: 32 bit memory at 0x[0-9a-f]* \[' >/dev/null ||
			fail "BAR0 is not 32-bit memory"
		simnic_block | grep '^ *BAR2: 64 bit prefetchable memory at ' >/dev/null ||
			fail "BAR2 is not 64-bit prefetchable memory"
		read -r a0 e0 < <(bar 0) || true
		read -r a2 e2 < <(bar 2) || true
		[ $((e0 - a0 + 1)) -eq $((0x1000)) ] || fail "BAR0 is not 4 KiB: $a0-$e0"
		[ $((e2 - a2 + 1)) -eq $((0x100000)) ] || fail "BAR2 is not 1 MiB: $a2-$e2"

		if ! hmp q "info mtree"; then
			fail "no reply to info mtree"
		fi
		range() { printf '%016x-%016x' "$1" "$2"; }
		t=$(range $((a0 + 0x800)) $((a0 + 0x800 + 8 * 16 - 1)))
		grep -q "$t (prio [0-9]*, i/o): msix-table" "$(mon_reply q)" ||
			fail "no msix-table at $t in info mtree: no MSI-X capability seen"
		m=$(range "$a2" "$e2")
		if [ -z "$opts" ]; then
			grep -q "$m (prio [0-9]*, ramd): 0000:00:02.0 BAR 2 mmaps\[0\]" "$(mon_reply q)" ||
				fail "BAR2 is not mmap'd (no ramd region 'BAR 2 mmaps[0]' at $m)"
		elif grep -q 'BAR 2 mmaps' "$(mon_reply q)"; then
			fail "BAR2 is mmap'd despite x-no-mmap=on"
		fi
		grep -E 'msix-table|BAR [02]' "$(mon_reply q)" | sed 's/^ */mtree: /' | sort -u
	fi
fi

hmp q quit 50 || true
mon_close q
rc=0
wait "${mon_pid[q]}" || rc=$?
unset "mon_pid[q]"
[ $rc -eq 0 ] || fail "QEMU exited $rc after quit$( [ $rc -ne 124 ] || echo ': timed out')"
if [ -s "$tmp/err" ]; then
	fail "QEMU's stderr is not empty:"
	cat "$tmp/err"
fi
if [ $fails -ne 0 ]; then
	echo "--- QEMU's monitor output (last 80 lines)"
	tr -d '\r' <"$(mon_out q)" | tail -n 80
	exit 1
fi
echo "PASS: QEMU realized the simnic${opts:+ ($opts)}"
