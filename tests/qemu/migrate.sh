#!/bin/bash
# migrate.sh UVFIO_RUN CACHE_DIR MIG_GUEST MODE - Debian's QEMU 7.2 live-
# migrates a running Linux guest, and the simnic it drives, from one QEMU
# to another, each under uvfio-run with its own simnic.
#
# Contract: two unmodified qemu-system-x86_64 (TCG, -cpu max, 128 MiB),
# each started as `uvfio-run --device simnic,bdf=0000:00:02.0,mem=1M,seed=S
# -- qemu ... -device vfio-pci,host=0000:00:02.0,x-enable-migration=on`
# (the VFIO v1 migration region; QEMU takes the guest pages the device
# wrote from the type1 container's VFIO_IOMMU_DIRTY_PAGES), the source's
# and the destination's seeds different and random, the destination with
# `-incoming tcp:127.0.0.1:PORT` (PORT random in 20000-59999, another one
# while it is in use). Debian's Linux 6.12 boots on the source with a
# busybox initramfs whose only program is mig-guest (mig-guest.c; /init is
# mig-init.sh), which keeps the device busy. While it does, the source's
# monitor runs `migrate -d tcp:127.0.0.1:PORT` and `info migrate` is polled
# until it says completed. Then:
#  - the destination runs (`info status`), the source is postmigrate;
#  - the guest worked during the migration: the source's log (ttyS1) has
#    progress lines from after the migrate command, with a higher write or
#    descriptor count than before it, and on the destination the guest
#    carried on from the source's count (its RAM moved);
#  - the host sends "GO NONCE" to the destination's ttyS1 only, and the
#    guest answers there with "go nonce=NONCE" (so all it reports after
#    that ran on the destination, after switch-over) and
#    "verdict=ok nonce=NONCE mismatches=0": every check mig-guest made
#    passed, on the source and on the destination, and no "mismatch" line
#    was printed on either side;
#  - bar2, bar2-no-mmap: when the guest stopped writing, every one of
#    BAR2's 131072 words held the last value the guest wrote into it, or
#    for a word never written the source's seed= pattern (device memory
#    that did not move reads as the destination's), and each word still
#    held its value when the guest overwrote it, on whichever side; the
#    guest checked all of BAR2 at the start too. BAR0's SCRATCH carried
#    its value across. The host reads back through the destination's
#    monitor (`xp`, guest-physical) the last 8 values and every value a
#    progress line logged (source and destination) that no later write
#    replaced: at least 10 of them. no-mmap: BAR2 through QEMU's region
#    accesses (x-no-mmap=on) rather than mapped into the guest;
#  - dma: every descriptor's output (a WRITE_PATTERN of 4 KiB into guest
#    RAM that memmap= set aside at 4 MiB, 256 slots reused in turn, so
#    each page is rewritten many times after QEMU first copied it) and its
#    write-back (status DONE, seq = COUNTER after it) was intact when its
#    slot was reused or, for the last 256, on the destination once all
#    completed: each descriptor checked exactly once. RING_HEAD/TAIL/DONE,
#    COUNTER, DMA_BYTES, DMA_WRITES and ERRORS account for exactly the
#    descriptors posted on both sides (more than 512); four more posted on
#    the destination complete, numbered on. A page the device wrote after
#    QEMU had copied it and that was not sent again shows up as an older
#    descriptor's pattern. The host reads back the last 4 through `xp`;
#  - QEMU's trace (default events) shows the v1 path: device_state
#    RUNNING|SAVING (3) then SAVING (2) and the device's data saved on the
#    source, RESUMING (4), data loaded, RUNNING (1) on the destination,
#    and the source read guest RAM's dirty bitmap at least twice;
#  - on "END" the guest powers off: both QEMUs exit 0, with nothing on
#    stderr.
#  - nodev: the same harness and guest loop without any device (QEMU not
#    under uvfio-run), the words in the program's own memory: the
#    harness's control.
#  - dma-nodirty, the negative control: dma with the source's dirty-page
#    report broken (dirtyfault.so, named by UVFIO_DIRTYFAULT, loaded into
#    the source QEMU as a driver plugin, arms the fault point
#    iommu.dirty_bitmap: every GET_BITMAP fails with EFAULT). QEMU 7.2
#    reports the failures on stderr and migrates anyway; the test passes
#    only if it did, the guest's verdict on the destination is "fail", and
#    among its mismatches is a buffer slot holding an older descriptor's
#    pattern (a page the device wrote after QEMU copied it, not sent
#    again).
#
# Every wait is bounded; both QEMUs are killed on any exit. Environment:
# UVFIO_QEMU_SKIP=REASON skips (exit 77; the sanitizer builds set it),
# UVFIO_GUEST_OFFLINE=skip skips when the kernel cannot be downloaded.
# UVFIO_MIG_TRACE=EVENTS (a comma-separated list of QEMU trace patterns,
# default the vfio migration and dirty-bitmap events) and UVFIO_MIG_KEEP=DIR
# (keep every log there) help debugging.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
. "$here/lib.sh"
qemu_test_init
[ $# -eq 4 ] || { echo "usage: migrate.sh UVFIO_RUN CACHE_DIR MIG_GUEST nodev|bar2|bar2-no-mmap|dma|dma-nodirty" >&2; exit 2; }
uvfio_run=$1
cache=$2
guest_prog=$3
mode=$4
opts=
nodirty=
case $mode in
nodev) gmode=nodev ;;
bar2) gmode=bar2 ;;
bar2-no-mmap) gmode=bar2 opts=,x-no-mmap=on ;;
dma) gmode=dma ;;
dma-nodirty)
	gmode=dma
	nodirty=${UVFIO_DIRTYFAULT:-}
	[ -f "$nodirty" ] || { echo "FAIL: dma-nodirty needs UVFIO_DIRTYFAULT=.../dirtyfault.so"; exit 1; }
	;;
*) echo "migrate.sh: unknown mode $mode" >&2; exit 2 ;;
esac
[ -x "$guest_prog" ] || { echo "FAIL: no guest program $guest_prog"; exit 1; }
need_busybox
guest_kernel "$cache"

tmp=$(mktemp -d)
cleanup() {
	local n
	for n in "${!mon_pid[@]}"; do
		kill "${mon_pid[$n]}" 2>/dev/null || true
	done
	for n in "${!mon_pid[@]}"; do
		wait "${mon_pid[$n]}" 2>/dev/null || true
	done
	if [ -n "${UVFIO_MIG_KEEP:-}" ]; then
		mkdir -p "$UVFIO_MIG_KEEP"
		cp "$tmp"/*.log "$tmp"/*.trace "$tmp"/*.out "$tmp"/*.err \
			"$UVFIO_MIG_KEEP"/ 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP	# and so through cleanup

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
note() { echo "$(date +%T.%N | cut -c1-12) $*"; }
t0=$(date +%s%N)
elapsed() { echo "$((($(date +%s%N) - t0) / 1000000)) ms"; }

make_initramfs "$tmp/initrd.gz" "$here/mig-init.sh" "$guest_prog" bin/mig-guest

# Two seeds for the two simnics' device memory, different every run.
src_seed=$(printf '0x%x' $((RANDOM << 16 | RANDOM | 1 << 40)))
dst_seed=$(printf '0x%x' $((RANDOM << 16 | RANDOM | 2 << 40)))
# The guest keeps its hands off 2 MiB of RAM at 4 MiB (memmap=...$...):
# the DMA ring and buffers. Low on purpose: QEMU's first pass over RAM, in
# address order, copies them early, and the device rewrites every buffer
# page many times before switch-over, so each must be sent again (with
# the buffers near the end of RAM, only the few written in the last
# milliseconds would be).
dma=0x400000
bdf=0000:00:05.0
append="console=ttyS0 panic=-1 iomem=relaxed memmap=2M\$$dma"
append+=" uvfio.mode=$gmode uvfio.bdf=$bdf uvfio.dma=$dma"
append+=" uvfio.seed=$src_seed uvfio.seed2=$dst_seed"
events=${UVFIO_MIG_TRACE:-vfio_migration_*,vfio_save_*,vfio_load_*,vfio_update_pending,vfio_vmstate_change,vfio_get_dirty_bitmap}
tr ',' '\n' <<<"$events" >"$tmp/events"

# start_qemu SIDE SEED TTYS1 [QEMU ARGS...]: QEMU in the background, its
# monitor on $(mon_in SIDE)/$(mon_out SIDE), ttyS0 in SIDE.console.log.
start_qemu() {
	local side=$1 seed=$2 ttys1=$3
	shift 3
	local cmd=()
	if [ "$mode" != nodev ]; then
		cmd=("$uvfio_run" --device "simnic,bdf=0000:00:02.0,mem=1M,seed=$seed")
		if [ -n "$nodirty" ] && [ "$side" = src ]; then
			# A device QEMU does not use, whose driver breaks the
			# dirty-page report (dirtyfault.c).
			cmd=(env "UVFIO_DRIVER_PATH=$(dirname "$nodirty")" "${cmd[@]}"
				--device dirtyfault,bdf=0000:00:03.0)
		fi
		cmd+=(--)
	fi
	cmd+=("$qemu" -name "$side" -accel tcg -cpu max -m 128M -nodefaults
		-display none -no-reboot -monitor stdio
		-serial "file:$tmp/$side.console.log" -serial "$ttys1"
		-kernel "$kernel" -initrd "$tmp/initrd.gz" -append "$append"
		-trace "events=$tmp/events" -D "$tmp/$side.trace" -msg timestamp=on)
	if [ "$mode" != nodev ]; then
		cmd+=(-device "vfio-pci,host=0000:00:02.0,addr=05.0,x-enable-migration=on$opts")
	fi
	mon_open "$side"
	timeout 600 "${cmd[@]}" "$@" <"$(mon_in "$side")" \
		>"$(mon_out "$side")" 2>"$tmp/$side.err" &
	mon_attach "$side" $!
}
alive() { kill -0 "${mon_pid[$1]}" 2>/dev/null; }
# wait_line FILE REGEX SIDE TENTHS: FILE gets a line matching REGEX, while
# SIDE's QEMU lives, within TENTHS tenths of a second.
wait_line() {
	local i
	for ((i = 0; i < $4; i++)); do
		tr -d '\r' <"$1" 2>/dev/null | grep -qE "$2" && return 0
		alive "$3" || break
		sleep 0.1
	done
	tr -d '\r' <"$1" 2>/dev/null | grep -qE "$2"
}
# The k= of the last "progress" line in a guest log (0 if none).
last_k() {
	{ tr -d '\r' | sed -n 's/^UVFIO progress k=\([0-9]*\) .*/\1/p' | tail -n 1; } | grep . || echo 0
}
# The value of KEY= on the guest's line starting with "UVFIO WHAT".
field() {
	tr -d '\r' <"$1" | grep "^UVFIO $2" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$3=//p"
}
# wait_exit SIDE TENTHS: rc = the QEMU's exit status (124: it was killed
# by timeout, 143: by us after TENTHS).
wait_exit() {
	local i
	for ((i = 0; i < $2; i++)); do
		alive "$1" || break
		sleep 0.1
	done
	! alive "$1" || kill "${mon_pid[$1]}" 2>/dev/null || true
	rc=0
	wait "${mon_pid[$1]}" || rc=$?
	unset "mon_pid[$1]"
	mon_close "$1"
}

report() {
	local f
	echo "--- info migrate (source)"
	cat "$tmp/info-migrate" 2>/dev/null || true
	for f in src.log dst.out; do
		echo "--- guest ttyS1: $f (first 10, last 25 lines)"
		tr -d '\r' <"$tmp/$f" 2>/dev/null | head -n 10
		echo "..."
		tr -d '\r' <"$tmp/$f" 2>/dev/null | tail -n 25
	done
	for f in src dst; do
		echo "--- $f: QEMU stderr"
		cat "$tmp/$f.err" 2>/dev/null || true
		echo "--- $f: trace (last 30 lines)"
		tail -n 30 "$tmp/$f.trace" 2>/dev/null || true
		echo "--- $f: guest console (last 20 lines)"
		tr -d '\r' <"$tmp/$f.console.log" 2>/dev/null | tail -n 20
	done
}
finish() {
	if [ $fails -ne 0 ]; then
		report
		exit 1
	fi
}

# -------- the source boots and the guest gets going
note "source: booting ($mode; seeds $src_seed, $dst_seed)"
: >"$tmp/src.log"
start_qemu src "$src_seed" "file:$tmp/src.log"
mon_wait src || fail "source: no monitor prompt: QEMU did not start"
finish
if ! wait_line "$tmp/src.log" '^UVFIO (ready|fatal|exit)' src 1200; then
	fail "source: the guest did not get ready (no 'UVFIO ready' on ttyS1)"
elif ! wait_line "$tmp/src.log" '^UVFIO progress' src 300; then
	fail "source: the guest got no further: $(grep -E 'fatal|exit' "$tmp/src.log" || true)"
fi
finish
tr -d '\r' <"$tmp/src.log" | grep '^UVFIO ready'
note "source: guest ready after $(elapsed)"

# -------- the destination waits on a random port
# Its ttyS1 is a pipe: QEMU reads dst.in (a fifo we write) and writes
# dst.out (a file).
mkfifo "$tmp/dst.in"
: >"$tmp/dst.out"
exec {dst_in}<>"$tmp/dst.in"	# read-write: never blocks, never EOF
port=
for try in 1 2 3 4 5 6 7 8; do
	p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
	start_qemu dst "$dst_seed" "pipe:$tmp/dst" -incoming "tcp:127.0.0.1:$p"
	if mon_wait dst 600 && hmp dst "info status" &&
		grep -q 'inmigrate' "$(mon_reply dst)"; then
		port=$p
		break
	fi
	wait_exit dst 50
	if grep -q 'Address already in use' "$tmp/dst.err"; then
		note "destination: port $p in use (try $try), another"
		continue
	fi
	fail "destination: did not start on port $p (exit $rc): $(cat "$tmp/dst.err")"
	break
done
[ -n "$port" ] || fail "destination: no free port after 8 tries"
finish
note "destination: waiting on tcp:127.0.0.1:$port"

# -------- migrate while the guest works
sleep 0.5	# the guest's loop has run a while (progress lines)
mark=$(stat -c %s "$tmp/src.log")
k_before=$(head -c "$mark" "$tmp/src.log" | last_k)
hmp src "migrate -d tcp:127.0.0.1:$port" || fail "source: no reply to migrate"
if grep -v '^(qemu)' "$(mon_reply src)" | grep -q .; then
	fail "source: migrate said: $(grep -v '^(qemu)' "$(mon_reply src)")"
fi
t_mig=$(date +%s%N)
status=
for ((i = 0; i < 2400; i++)); do	# 4 minutes: a bound on a hang
	hmp src "info migrate" || break
	status=$(sed -n 's/^Migration status: *\([a-z-]*\).*/\1/p' "$(mon_reply src)")
	case $status in completed | failed | cancelled) break ;; esac
	sleep 0.1
done
cp "$(mon_reply src)" "$tmp/info-migrate"
note "migration: ${status:-no status} after $((($(date +%s%N) - t_mig) / 1000000)) ms"
grep -E '^(total time|downtime|setup|transferred ram|dirty sync count|precopy ram|downtime ram|remaining ram)' "$tmp/info-migrate" | sed 's/^/  /' || true
[ "$status" = completed ] || fail "migration did not complete: status ${status:-<none>}"
finish

for ((i = 0; i < 300; i++)); do
	hmp dst "info status" || break
	grep -q 'VM status: running' "$(mon_reply dst)" && break
	sleep 0.1
done
grep -q 'VM status: running' "$(mon_reply dst)" ||
	fail "destination: not running after the migration: $(cat "$(mon_reply dst)")"
hmp src "info status" && grep -q 'postmigrate' "$(mon_reply src)" ||
	fail "source: not postmigrate: $(cat "$(mon_reply src)")"
finish

# -------- the guest checks, on the destination only
nonce=$(od -An -tx8 -N8 /dev/urandom | tr -d ' \n')
echo "GO $nonce" >&"$dst_in"
wait_line "$tmp/dst.out" '^UVFIO (verdict=|fatal)' dst 1800 ||
	fail "destination: no verdict from the guest"

# The host's own reading, through the destination's monitor (xp reads
# guest-physical memory, BAR2 included), of values the guest says it
# wrote: its last ones, and in bar2 mode every value its progress lines
# logged, on either side, that no later write replaced (write k and write
# k + 131072 go to the same word).
spot=0
xp_check() {	# PHYS VALUE WHAT
	hmp dst "xp /1gx $1" || { fail "destination: no reply to xp"; return 1; }
	got=$(sed -n 's/^[0-9a-f]*: \(0x[0-9a-f]*\)$/\1/p' "$(mon_reply dst)" | head -n 1)
	[ "${got,,}" = "${2,,}" ] ||
		fail "destination: xp $1 reads ${got:-<nothing>}, the guest wrote $2 ($3)"
	spot=$((spot + 1))
}
while read -r phys value; do
	xp_check "$phys" "$value" "its last write" || break
done < <(tr -d '\r' <"$tmp/dst.out" | sed -n 's/^UVFIO last k=[0-9]* phys=\(0x[0-9a-f]*\) value=\(0x[0-9a-f]*\)$/\1 \2/p')
logged=0
if [ "$gmode" = bar2 ]; then
	bar2=$(field "$tmp/src.log" ready bar2)
	k_end=$(field "$tmp/dst.out" checked writes)
	while read -r k word value; do
		[ $((k + 131072)) -gt "${k_end:-0}" ] || continue
		xp_check "$(printf '0x%x' $((bar2 + 8 * word)))" "$value" "write $k, logged" || break
		logged=$((logged + 1))
	done < <(cat "$tmp/src.log" "$tmp/dst.out" | tr -d '\r' |
		sed -n 's/^UVFIO progress k=\([0-9]*\) word=\([0-9]*\) value=\(0x[0-9a-f]*\) .*/\1 \2 \3/p' |
		awk '$1 > 0' | tail -n 100)
fi

echo "END" >&"$dst_in"
wait_exit dst 600
[ "$rc" -eq 0 ] || fail "destination: QEMU exited $rc after END"
hmp src quit 50 || true
wait_exit src 300
[ "$rc" -eq 0 ] || fail "source: QEMU exited $rc after quit"

# -------- what the guest said
k_src=$(last_k <"$tmp/src.log")
k_after=$(tail -c +$((mark + 1)) "$tmp/src.log" | grep -c '^UVFIO progress' || true)
k_go=$(field "$tmp/dst.out" go k)
echo "guest: count $k_before when migrate was sent, $k_src at the source's last progress line" \
	"($k_after lines during the migration), $k_go when GO arrived on the destination"
[ "$k_after" -ge 1 ] && [ "$k_src" -gt "$k_before" ] ||
	fail "the guest did not work during the migration (count $k_before before, $k_src last on the source)"
[ -n "$k_go" ] && [ "$k_go" -ge "$k_src" ] ||
	fail "the destination guest's count (${k_go:-none}) does not carry on from the source's ($k_src)"
grep -q "^UVFIO go nonce=$nonce " <(tr -d '\r' <"$tmp/dst.out") ||
	fail "the destination guest did not acknowledge GO $nonce"
verdict=$(tr -d '\r' <"$tmp/dst.out" | grep '^UVFIO verdict=' | tail -n 1 || true)
if [ -z "$nodirty" ]; then
	[ "$verdict" = "UVFIO verdict=ok nonce=$nonce mismatches=0" ] ||
		fail "guest verdict: ${verdict:-<none>} (want ok, nonce $nonce)"
	if cat "$tmp/src.log" "$tmp/dst.out" | tr -d '\r' | grep -E '^UVFIO (mismatch|fatal)'; then
		fail "the guest reported the mismatches above"
	fi
else
	# The negative control: the loss must be seen, and be what it is.
	[[ "$verdict" == "UVFIO verdict=fail nonce=$nonce mismatches="* ]] ||
		fail "guest verdict: ${verdict:-<none>}: with no dirty-page report, the check did not catch the lost pages"
	cat "$tmp/src.log" | tr -d '\r' | grep '^UVFIO mismatch' &&
		fail "the guest saw mismatches on the source, before the migration"
	lost=$(tr -d '\r' <"$tmp/dst.out" | grep -c '^UVFIO mismatch what=data .* kind=older-by-' || true)
	[ "$lost" -ge 1 ] ||
		fail "no buffer slot with an older descriptor's pattern among the mismatches"
	tr -d '\r' <"$tmp/dst.out" | grep '^UVFIO mismatch' | head -n 4
	nfail=$(grep -c 'Failed to get dirty bitmap' "$tmp/src.err" || true)
	[ "$nfail" -ge 1 ] ||
		fail "source: QEMU did not report a failed dirty bitmap: was the fault armed?"
	grep -m 1 'Failed to get dirty bitmap' "$tmp/src.err" || true
fi
case $gmode in
bar2)
	[ "$(field "$tmp/src.log" ready initial_bad)" = 0 ] ||
		fail "BAR2 did not hold the source's seed pattern at the start"
	[ "$(field "$tmp/dst.out" checked words)" = 131072 ] ||
		fail "the guest did not check all 131072 words of BAR2"
	[ "$spot" -ge 8 ] && [ "$logged" -ge 10 ] ||
		fail "only $spot values read back through the monitor ($logged from progress lines)"
	;;
dma)
	n=$(field "$tmp/dst.out" checked descriptors)
	[ "${n:-0}" -gt 512 ] ||
		fail "only ${n:-0} descriptors: the 256 slots were not reused twice"
	[ "$(field "$tmp/dst.out" checked verified)" = "$n" ] &&
		[ "$(field "$tmp/dst.out" checked ring_verified)" = "$n" ] ||
		fail "the guest did not check every descriptor's output and write-back"
	tr -d '\r' <"$tmp/dst.out" | grep -q '^UVFIO registers when=continued' ||
		fail "the device did not carry on after the migration"
	[ "$spot" -ge 4 ] || fail "only $spot values read back through the monitor"
	;;
esac
# The v1 path, as QEMU's trace shows it (with the default events): the
# source wrote device_state RUNNING|SAVING (3), then SAVING (2), and saved
# the device's data; the destination RESUMING (4), loaded data, RUNNING
# (1); guest RAM's dirty bitmap (the section from 1 MiB, which holds the
# DMA buffers) was read from the container at least twice while the
# device was being migrated (a failed read is not traced).
if [ "$mode" != nodev ] && [ -z "${UVFIO_MIG_TRACE:-}" ]; then
	states() { sed -n 's/.*vfio_migration_set_state .* state \([0-9]*\)$/\1/p' "$1" | tr '\n' ' '; }
	src_states=$(states "$tmp/src.trace")
	dst_states=$(states "$tmp/dst.trace")
	syncs=$(grep -c 'vfio_get_dirty_bitmap .* iova=0x100000 ' "$tmp/src.trace" || true)
	echo "QEMU's v1 device_state writes: source ${src_states:-none}; destination ${dst_states:-none};" \
		"$syncs reads of guest RAM's dirty bitmap"
	grep -qE ' 3( [0-9]+)* 2 ' <<<" $src_states" ||
		fail "source: QEMU's trace has no RUNNING|SAVING then SAVING"
	grep -qE ' 4( [0-9]+)* 1 ' <<<" $dst_states" ||
		fail "destination: QEMU's trace has no RESUMING then RUNNING"
	grep -q 'vfio_save_complete_precopy' "$tmp/src.trace" ||
		fail "source: QEMU did not complete saving the device"
	grep -q 'vfio_load_state_device_data' "$tmp/dst.trace" ||
		fail "destination: QEMU loaded no device data"
	[ -n "$nodirty" ] || [ "$syncs" -ge 2 ] ||
		fail "source: guest RAM's dirty bitmap was read $syncs times, want 2 or more"
fi
# QEMU says nothing on stderr; in the negative control, only that each
# GET_BITMAP failed.
for side in src dst; do
	! grep -v 'Failed to get dirty bitmap' "$tmp/$side.err" >/dev/null ||
		fail "$side: QEMU's stderr is not empty"
	[ -n "$nodirty" ] || [ ! -s "$tmp/$side.err" ] ||
		fail "$side: QEMU's stderr is not empty"
done
finish
tr -d '\r' <"$tmp/dst.out" | grep -E '^UVFIO (go|checked|registers|verdict)'
echo "host: $spot values read back through the destination's monitor ($logged logged in progress lines)"
if [ -n "$nodirty" ]; then
	echo "PASS: $mode: with the dirty-page report broken, the guest found ${verdict##*mismatches=} pages it had lost ($(elapsed))"
else
	echo "PASS: $mode: the guest and its simnic migrated ($(elapsed))"
fi
