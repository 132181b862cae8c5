#!/bin/bash
# guest.sh UVFIO_RUN CACHE_DIR [VFIO_PCI_OPTS] - a Linux guest drives a
# simnic through Debian's QEMU under uvfio-run.
#
# Contract: Debian's unmodified qemu-system-x86_64 (TCG), started under
# `uvfio-run --device simnic,bdf=0000:00:02.0,mem=1M` with
# `-device vfio-pci,host=0000:00:02.0,addr=05.0` (plus VFIO_PCI_OPTS, e.g.
# ",x-no-mmap=on"), boots Debian's own Linux 6.12 (fetch-kernel.sh) with a
# busybox initramfs whose /init is guest-init.sh, and in that guest:
#  - /sys/bus/pci/devices/0000:00:05.0 is the simnic: vendor 0x1b36,
#    device 0x0010, an MSI-X capability with 8 vectors, table at BAR0 0x800
#    and PBA at BAR0 0xc00 (simdev.md, uvfio-spec.md);
#  - BAR0 reads as simdev.md documents: ID 0x44535655, VERSION 1, SCRATCH
#    keeps what is written, offsets past 0x5f read 0;
#  - words written to BAR2 through /dev/mem read back;
#  - they are in the simnic's own device memory: its DMA engine, programmed
#    by the guest (a ring in guest RAM, bus master on), copies them from
#    device memory into guest RAM, where the guest reads them, and fills
#    device memory with a byte the guest then reads through BAR2; the
#    counters and completions are as documented (2 descriptors, 144 bytes
#    and 3 writes to guest memory, no errors);
#  - the guest powers off and QEMU exits 0 with nothing on stderr.
#
# Environment: UVFIO_QEMU_SKIP=REASON skips (exit 77; the sanitizer builds
# set it). UVFIO_GUEST_OFFLINE=skip skips when the kernel cannot be
# downloaded; without it that is a failure.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
. "$here/lib.sh"
qemu_test_init
[ $# -ge 2 ] || { echo "usage: guest.sh UVFIO_RUN CACHE_DIR [VFIO_PCI_OPTS]" >&2; exit 2; }
uvfio_run=$1
cache=$2
opts=${3:-}
need_busybox
guest_kernel "$cache"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make_initramfs "$tmp/initrd.gz" "$here/guest-init.sh"

# The guest keeps its hands off 1 MiB of RAM at 96 MiB (memmap=...$...),
# so /dev/mem may reach it: the ring and the buffer the simnic DMAs into.
dma=0x6000000
bdf=0000:00:05.0
append="console=ttyS0 panic=-1 iomem=relaxed memmap=1M\$$dma"
append+=" uvfio.bdf=$bdf uvfio.dma=$dma"
rc=0
timeout 300 "$uvfio_run" --device simnic,bdf=0000:00:02.0,mem=1M -- \
	"$qemu" -accel tcg -cpu max -m 256M -nodefaults -display none \
	-no-reboot -monitor none -serial "file:$tmp/console.log" \
	-serial "file:$tmp/results.log" \
	-kernel "$kernel" -initrd "$tmp/initrd.gz" -append "$append" \
	-device "vfio-pci,host=0000:00:02.0,addr=05.0$opts" \
	</dev/null >"$tmp/stdout" 2>"$tmp/stderr" || rc=$?

# The guest's "UVFIO key=value" lines, into a table.
declare -A got
tr -d '\r' <"$tmp/results.log" 2>/dev/null | sed -n 's/^UVFIO //p' >"$tmp/results" || true
while IFS= read -r line; do
	got[${line%%=*}]=${line#*=}
done <"$tmp/results"

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect KEY VALUE: the guest printed KEY=VALUE (hex case does not matter).
expect() {
	local v=${got[$1]-<missing>}
	[ "${v,,}" = "${2,,}" ] || fail "$1: got $v, want $2"
}
num() { printf '%d' "${got[$1]:-0}" 2>/dev/null || echo 0; }

[ $rc -eq 0 ] || fail "QEMU exited $rc$( [ $rc -ne 124 ] || echo ': timed out')"
[ ! -s "$tmp/stderr" ] || fail "QEMU's stderr is not empty"
[ "${got[finished]:-}" = 1 ] || fail "the guest did not finish (no 'UVFIO finished=1' on ttyS1)"
[ -z "${got[error]+x}" ] || fail "guest: ${got[error]}"
if [ -s "$tmp/results" ]; then	# the guest got that far: what it saw
	[[ " ${got[devices]:-} " == *" $bdf "* ]] ||
		fail "$bdf not in the guest's /sys/bus/pci/devices: ${got[devices]:-<missing>}"
	expect vendor 0x1b36
	expect device 0x0010
	[[ " ${got[caps]:-} " == *" 11@"* ]] || fail "no MSI-X capability (11) in the guest's config space: ${got[caps]:-<missing>}"
	[ $(( $(num msix_ctl) & 0x7ff )) -eq 7 ] || fail "MSI-X table size field ${got[msix_ctl]:-<missing>}, want 7 (8 vectors)"
	expect msix_table 0x800		# offset 0x800, BIR 0
	expect msix_pba 0xc00
	for b in bar0 bar2; do
		v=$(num $b)
		[ "$v" -ne 0 ] || fail "$b not placed: ${got[$b]:-<missing>}"
	done
	expect id 0x44535655
	expect version 0x00000001
	expect scratch 0x5a5aa5a5
	expect past_regs 0x00000000
	expect bar2_0x100 0x0123456789abcdef
	expect bar2_0x108 0xfedcba9876543210
	expect status_enabled 0x00000001	# ACTIVE: enabled, bus master on
	expect ring_done 0x00000002
	expect ring_head 0x00000002
	expect counter 0x00000002
	expect errors 0x00000000
	expect dma_bytes 0x00000090		# 16 copied + 2 x 64 write-backs
	expect dma_writes 0x00000003
	expect status 0x00000001
	expect desc0_status 0x00000001		# DONE
	expect desc0_seq 0x00000001
	expect desc1_status 0x00000001
	expect desc1_seq 0x00000002
	expect copied0 0x0123456789abcdef	# BAR2 words, through the engine
	expect copied1 0xfedcba9876543210
	expect filled0 0xa5a5a5a5a5a5a5a5	# the engine's fill, through BAR2
	expect filled1 0xa5a5a5a5a5a5a5a5
fi

if [ $fails -ne 0 ]; then
	echo "--- guest results"
	cat "$tmp/results"
	echo "--- QEMU stderr"
	cat "$tmp/stderr"
	echo "--- guest console (last 60 lines)"
	tr -d '\r' <"$tmp/console.log" 2>/dev/null | tail -n 60
	exit 1
fi
echo "guest results:"
cat "$tmp/results"
echo "PASS: the guest drove the simnic${opts:+ ($opts)}"
