#!/bin/busybox sh
# The guest's /init (busybox, Linux 6.12) for guest.sh: it drives the
# simnic seen through QEMU's vfio-pci as a driver would, with /dev/mem
# (devmem) and the device's sysfs files, and prints what it read, one
# "UVFIO key=value" line each, on the second serial port (ttyS1, apart
# from the kernel's console on ttyS0). guest.sh checks the values; this
# script decides nothing. Kernel command line (guest.sh sets it):
#   uvfio.bdf=DDDD:BB:DD.F   the device's address in the guest
#   uvfio.dma=PHYS           guest RAM the kernel was told to leave alone
#                            (memmap=...$PHYS): the descriptor ring and the
#                            DMA buffer, reachable through /dev/mem
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() { for kv in "$@"; do echo "UVFIO $kv"; done >/dev/ttyS1; }
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p"; }
hex() { printf '0x%x' "$1"; }
# One config-space byte, as a number.
cfg8() { printf '%d' "0x$(od -An -tx1 -j "$1" -N 1 "$D/config" | tr -d ' ')"; }

bdf=$(arg uvfio.bdf)
dma=$(arg uvfio.dma)
D=/sys/bus/pci/devices/$bdf
say devices="$(ls /sys/bus/pci/devices | tr '\n' ' ')"
if [ ! -d "$D" ]; then
	say error=no-device
	say finished=1
	poweroff -f
fi
say vendor="$(cat "$D/vendor")" device="$(cat "$D/device")" \
	class="$(cat "$D/class")"
[ -e "$D/driver" ] && say driver="$(basename "$(readlink "$D/driver")")"

# The capability list, from the config space the guest kernel reads.
caps=""
pos=$(cfg8 0x34)
n=0
while [ "$pos" -ne 0 ] && [ $n -lt 48 ]; do
	id=$(cfg8 "$pos")
	caps="$caps $(printf '%02x@%02x' "$id" "$pos")"
	if [ "$id" -eq 17 ]; then	# MSI-X: control, table and PBA
		ctl=$(( $(cfg8 $((pos + 2))) | ($(cfg8 $((pos + 3))) << 8) ))
		tbl=$(( $(cfg8 $((pos + 4))) | ($(cfg8 $((pos + 5))) << 8) ))
		pba=$(( $(cfg8 $((pos + 8))) | ($(cfg8 $((pos + 9))) << 8) ))
		say msix_ctl="$(hex "$ctl")" msix_table="$(hex "$tbl")" \
			msix_pba="$(hex "$pba")"
	fi
	pos=$(cfg8 $((pos + 1)))
	n=$((n + 1))
done
say caps="${caps# }"

# BAR0 and BAR2 from sysfs: "start end flags" per line, line N = BARN.
bar0=$(sed -n 1p "$D/resource" | cut -d' ' -f1)
bar2=$(sed -n 3p "$D/resource" | cut -d' ' -f1)
say bar0="$bar0" bar2="$bar2"
if [ $((bar0)) -eq 0 ] || [ $((bar2)) -eq 0 ]; then
	say error=bar0-or-bar2-unassigned
	say finished=1
	poweroff -f
fi
echo 1 >"$D/enable"	# memory decoding on (no driver does it)

r() { devmem $(($1)) "${2:-32}"; }
w() { devmem $(($1)) "$2" "$3"; }

# BAR0 registers.
say id="$(r bar0+0x00)" version="$(r bar0+0x04)"
w bar0+0x5c 32 0x5a5aa5a5
say scratch="$(r bar0+0x5c)"
say past_regs="$(r bar0+0x60)"

# BAR2: write, read back.
w bar2+0x100 64 0x0123456789abcdef
w bar2+0x108 64 0xfedcba9876543210
say bar2_0x100="$(r bar2+0x100 64)" bar2_0x108="$(r bar2+0x108 64)"

# The device's own view of its memory, through its DMA engine: descriptor 0
# copies BAR2 0x100..0x10f into guest RAM at dma+0x1000, descriptor 1
# fills BAR2 0x200..0x20f with 0xa5 bytes. Ring of 4 at dma.
ring=$((dma))
buf=$((dma + 0x1000))
i=0
while [ $i -lt 64 ]; do		# clear the ring and the buffer
	w ring+i*8 64 0
	w buf+i*8 64 0
	i=$((i + 1))
done
desc() {	# slot opcode flags src dst len arg
	b=$((ring + $1 * 64))
	w b+0 32 "$2"; w b+4 32 "$3"; w b+8 64 "$4"; w b+16 64 "$5"
	w b+24 64 "$6"; w b+32 64 "$7"
}
desc 0 1 2 0x100 "$buf" 16 0		# COPY, src in device memory
desc 1 2 4 0 0x200 16 0xa5		# FILL, dst in device memory
cmd=$(cfg8 4)
printf "\\$(printf '%03o' $((cmd | 4)))" |
	dd of="$D/config" bs=1 seek=4 count=1 conv=notrunc 2>/dev/null
say command="$(hex "$(cfg8 4)")"	# bus master on
w bar0+0x18 32 $((ring & 0xffffffff))	# RING_BASE
w bar0+0x1c 32 $((ring >> 32))
w bar0+0x14 32 4			# RING_SIZE
w bar0+0x08 32 1			# CTRL: ENABLE
say status_enabled="$(r bar0+0x0c)"
w bar0+0x28 32 2			# DOORBELL: tail 2
i=0	# wait for RING_DONE 2, at most 2 min: a bound on a hang, not a deadline
while [ "$(r bar0+0x2c)" != 0x00000002 ] && [ $i -lt 2400 ]; do
	usleep 50000
	i=$((i + 1))
done
say ring_done="$(r bar0+0x2c)" ring_head="$(r bar0+0x20)" \
	counter="$(r bar0+0x38)" errors="$(r bar0+0x58)" \
	dma_bytes="$(r bar0+0x40)" dma_writes="$(r bar0+0x48)" \
	status="$(r bar0+0x0c)"
say desc0_status="$(r ring+48)" desc0_seq="$(r ring+52)" \
	desc1_status="$(r ring+64+48)" desc1_seq="$(r ring+64+52)"
say copied0="$(r buf 64)" copied1="$(r buf+8 64)"
say filled0="$(r bar2+0x200 64)" filled1="$(r bar2+0x208 64)"
say finished=1
poweroff -f
