#!/bin/sh
# Contract: vfio-mig-ctl's exit codes (0 done, 1 the operation failed,
# 2 usage), one-line messages on bad input, --help on every subcommand,
# state's arcs (one target or several in turn) and fsm's check of every
# driver, save | load through a pipe (save streaming: a file replaced
# only by a whole stream, a failed save's pipe left truncated)
# and send/recv over loopback TCP round-tripping a device (the loaded
# state, saved again, has the saved stream's digest), bad inputs (short,
# corrupted or foreign files, a port in use, a peer leaving mid-stream),
# and migrate ending verified for simnic (pre-copy, DMA logging) and
# simmin (stop-copy, IOMMU dirty pages) with the workload running; and
# --fault arming fault points (exit 1 when one fires, 2 for a bad one).
#
# conformance runs the suite: a JUnit report for a passing driver, exit 1
# for the brokennic plugin with a defect, 2 for an unknown driver.
#
# usage: cli.sh PATH_TO_VFIO_MIG_CTL [PATH_TO_BROKENNIC_SO]
set -u
ctl=$1
brokennic=${2:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

. "$(dirname "$0")/lib.sh"

S=simnic,bdf=00:02.0,mem=4M,seed=7
D=simnic,bdf=00:03.0,mem=4M

expect 0 "--help" -- "$ctl" --help
for sub in drivers info state fsm save load send recv dirty migrate conformance; do
	expect 0 "$sub --help" -- "$ctl" "$sub" --help
done
expect 2 "no subcommand" -- "$ctl"
expect 2 "unknown option" -- "$ctl" info --frobnicate "$S"
expect 2 "missing spec" -- "$ctl" info
expect 2 "unknown driver" -- "$ctl" info nosuch,bdf=00:01.0
expect 2 "malformed spec" -- "$ctl" info "simnic,bdf=zz:01.0"
expect 2 "spec without bdf" -- "$ctl" info simnic,mem=4M
expect 2 "bad key value" -- "$ctl" info "simnic,bdf=00:01.0,mem=3M"
expect 2 "unknown state" -- "$ctl" state "$S" flying
expect 0 "drivers --json" -- "$ctl" drivers --json
grep -q '"spec_name": "simmin"' "$tmp/out" || { echo "FAIL: drivers"; fails=$((fails + 1)); }
expect 0 "info --json" -- "$ctl" info "$S" --json
grep -q '"migration_flags": "stop_copy|p2p|pre_copy"' "$tmp/out" ||
	{ echo "FAIL: info json"; fails=$((fails + 1)); }
expect 0 "state set" -- "$ctl" state "$S" stop_copy
[ "$(cat "$tmp/out")" = "running -> running_p2p
running_p2p -> stop
stop -> stop_copy (data fd)" ] || { echo "FAIL: state arcs:"; cat "$tmp/out"; fails=$((fails + 1)); }
# Several targets, in turn, on the one device the command creates.
expect 0 "state steps" -- "$ctl" state "$S" stop stop_copy running
[ "$(cat "$tmp/out")" = "running -> running_p2p
running_p2p -> stop
stop -> stop_copy (data fd)
stop_copy -> stop
stop -> running_p2p
running_p2p -> running" ] || { echo "FAIL: state steps:"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 0 "state json names the protocol" -- "$ctl" state "$S" stop --json
grep -q '"protocol": "v2"' "$tmp/out" || { echo "FAIL: state json"; fails=$((fails + 1)); }
for drv in simnic simmin skeleton "testdev,mig=stop_copy|pre_copy"; do
	expect 0 "fsm $drv" -- "$ctl" fsm "$drv,bdf=00:04.0" --json
	grep -q '"mismatches": 0' "$tmp/out" || { echo "FAIL: fsm $drv"; fails=$((fails + 1)); }
done
expect 1 "state unreachable" -- "$ctl" state simmin,bdf=00:02.0 pre_copy

# save | load through a pipe, digests equal.
"$ctl" save "$S" -o - --json 2>"$tmp/save.json" |
	"$ctl" load "$D" -i - --json >"$tmp/load.json"
rc=$?
d1=$(grep -o '"digest": "[0-9a-f]*"' "$tmp/save.json")
d2=$(grep -o '"digest": "[0-9a-f]*"' "$tmp/load.json")
if [ $rc != 0 ] || [ -z "$d1" ] || [ "$d1" != "$d2" ]; then
	echo "FAIL: save | load: rc $rc, '$d1' vs '$d2'"; fails=$((fails + 1))
else
	echo "ok: save | load round trip ($d1)"
fi

# Bad inputs to load: the device is never left running what it got.
expect 0 "save to a file" -- "$ctl" save "$S" -o "$tmp/good.bin"
head -c 100000 "$tmp/good.bin" >"$tmp/short.bin"
expect 1 "truncated file" -- "$ctl" load "$D" -i "$tmp/short.bin"
grep -q "truncated" "$tmp/err" || { echo "FAIL: truncation not named"; fails=$((fails + 1)); }
cp "$tmp/good.bin" "$tmp/bad.bin"
printf 'X' | dd of="$tmp/bad.bin" bs=1 seek=70000 conv=notrunc 2>/dev/null
expect 1 "corrupted file" -- "$ctl" load "$D" -i "$tmp/bad.bin"
grep -q "checksum" "$tmp/err" || { echo "FAIL: corruption not named"; fails=$((fails + 1)); }
expect 1 "another device type" -- "$ctl" load "testdev,bdf=00:03.0,mig=stop_copy" -i "$tmp/good.bin"
expect 1 "another memory size" -- "$ctl" load "simnic,bdf=00:03.0,mem=8M" -i "$tmp/good.bin"
expect 1 "missing file" -- "$ctl" load "$D" -i "$tmp/nonexistent"
# Unreadable: a directory (permissions do not stop root).
expect 1 "unreadable file" -- "$ctl" load "$D" -i "$tmp"
expect 1 "unwritable output" -- "$ctl" save "$S" -o "$tmp/no/such/dir/x"

# save streams: a file is replaced only by a whole stream (a temporary
# file, renamed once the save succeeded), so a failed save leaves the old
# file as it was and no temporary behind; a symlink's target is replaced.
# On a pipe a failed save, even one that fails after its stream's end,
# leaves a truncated stream, which load rejects.
cp "$tmp/good.bin" "$tmp/keep.bin"
expect 1 "failed save keeps the file" -- "$ctl" --fault mig.data.read:2 save "$S" -o "$tmp/good.bin"
cmp -s "$tmp/good.bin" "$tmp/keep.bin" ||
	{ echo "FAIL: a failed save changed the file"; fails=$((fails + 1)); }
expect 1 "failed return keeps the file" -- "$ctl" --fault 'mig.arc.STOP_COPY->STOP' save "$S" -o "$tmp/good.bin"
cmp -s "$tmp/good.bin" "$tmp/keep.bin" ||
	{ echo "FAIL: a save that failed at its end changed the file"; fails=$((fails + 1)); }
[ -z "$(ls -A "$tmp" | grep '^\.good\.bin\.')" ] ||
	{ echo "FAIL: temporary files left:"; ls -A "$tmp"; fails=$((fails + 1)); }
ln -s good.bin "$tmp/link.bin"
expect 0 "save through a symlink" -- "$ctl" save "$S" -o "$tmp/link.bin"
[ -L "$tmp/link.bin" ] && cmp -s "$tmp/good.bin" "$tmp/keep.bin" ||
	{ echo "FAIL: symlink replaced, or its target not saved"; fails=$((fails + 1)); }
"$ctl" --fault 'mig.arc.STOP_COPY->STOP' save "$S" -o - 2>"$tmp/save.err" |
	"$ctl" load "$D" -i - >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ $rc != 1 ] || ! grep -q "truncated" "$tmp/err"; then
	echo "FAIL: a failed save's stream loaded: load exit $rc"; cat "$tmp/err"
	fails=$((fails + 1))
else
	echo "ok: a failed save's stream is truncated"
fi

# send / recv over loopback TCP: verified round trip, a port in use, a
# sender that disconnects mid-stream, nobody listening.
# recv says when it listens; a loaded machine can take seconds to get
# there, and a send before it is refused. At most 60 s, then recv ($1 its
# pid) is ended so that nothing waits for the test's timeout.
wait_listening() {
	for _ in $(seq 600); do
		grep -q listening "$tmp/recv.err" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "FAIL: recv never listened"; fails=$((fails + 1))
	kill "$1" 2>/dev/null
	return 1
}

port=$((20000 + $$ % 20000))
"$ctl" recv "$D" --listen "127.0.0.1:$port" --json >"$tmp/recv.json" 2>"$tmp/recv.err" &
rpid=$!
wait_listening $rpid
expect 0 "send over TCP" -- "$ctl" send "$S" --to "127.0.0.1:$port" --json
grep -q '"verified": true' "$tmp/out" || { echo "FAIL: send not verified"; fails=$((fails + 1)); kill $rpid 2>/dev/null; }
wait $rpid || { echo "FAIL: recv exit $?"; cat "$tmp/recv.err"; fails=$((fails + 1)); }

port=$((port + 1))
: >"$tmp/recv.err"	# not the last recv's "listening"
"$ctl" recv "$D" --listen "127.0.0.1:$port" 2>"$tmp/recv.err" &
rpid=$!
wait_listening $rpid
expect 1 "port already in use" -- "$ctl" recv "$D" --listen "127.0.0.1:$port"
grep -q "in use" "$tmp/err" || { echo "FAIL: port in use not named"; fails=$((fails + 1)); }
python3 -c "
import socket, sys
s = socket.create_connection(('127.0.0.1', $port))
s.sendall(open(sys.argv[1], 'rb').read()[:200000])
s.close()" "$tmp/good.bin"
wait $rpid
rc=$?
if [ $rc != 1 ] || ! grep -q "truncated" "$tmp/recv.err"; then
	echo "FAIL: peer disconnect: recv exit $rc"; cat "$tmp/recv.err"; fails=$((fails + 1))
else
	echo "ok: peer disconnecting mid-stream"
fi
expect 1 "nobody listening" -- "$ctl" send "$S" --to "127.0.0.1:$((port + 1))"
expect 2 "bad address" -- "$ctl" send "$S" --to "localhost:http"

# dirty: both trackers see the workload's writes, and clear on read.
for how in dma-logging iommu; do
	flag=; [ $how = iommu ] && flag=--iommu
	expect 0 "dirty by $how" -- "$ctl" dirty "$S" --ms 50 $flag --json
	grep -q "\"tracking\": \"$how\"" "$tmp/out" &&
	grep -q '"after_clear": 0' "$tmp/out" && ! grep -q '"dirty_pages": 0,' "$tmp/out" ||
		{ echo "FAIL: dirty $how"; cat "$tmp/out"; fails=$((fails + 1)); }
done
expect 1 "dirty on a device without DMA" -- "$ctl" dirty testdev,bdf=00:05.0

# Live migration with the workload.
for drv in simnic simmin; do
	expect 0 "migrate $drv" -- "$ctl" migrate --workload --json \
		"$drv,bdf=00:02.0,mem=8M,seed=3" "$drv,bdf=00:03.0,mem=8M"
	grep -q '"verified": true' "$tmp/out" ||
		{ echo "FAIL: $drv not verified"; fails=$((fails + 1)); }
done
expect 2 "migrate bad budget" -- "$ctl" migrate --downtime-budget -1 "$S" "$D"

# The conformance suite.
expect 0 "conformance with a JUnit report" -- "$ctl" conformance -d simnic \
	--filter '*Fsm*:*DataFd*' --junit "$tmp/junit.xml"
grep -q '<testsuites tests="[1-9][0-9]*" failures="0"' "$tmp/junit.xml" ||
	{ echo "FAIL: junit report"; head -3 "$tmp/junit.xml"; fails=$((fails + 1)); }
expect 2 "conformance unknown driver" -- "$ctl" conformance -d nosuch
expect 2 "conformance spec with a bdf" -- "$ctl" conformance -d simnic,bdf=00:01.0
expect 1 "conformance unwritable report" -- "$ctl" conformance -d simnic \
	--junit "$tmp/no/such/dir/j.xml"
if [ -n "$brokennic" ]; then
	UVFIO_DRIVER_PATH=$(dirname "$brokennic") "$ctl" conformance \
		-d brokennic,mem=2M,bug=errno --filter '*PrecopyInfo*' \
		--junit "$tmp/broken.xml" >"$tmp/out" 2>&1
	rc=$?
	if [ $rc = 1 ] && grep -q 'failures="1"' "$tmp/broken.xml"; then
		echo "ok: conformance fails a broken driver"
	else
		echo "FAIL: conformance on brokennic: exit $rc"; tail "$tmp/out"
		fails=$((fails + 1))
	fi
fi

# --fault: a point that fires fails the command with one line (1); an
# unknown point or bad syntax is a usage error that says how to list the
# points (2); the list names every arc; a point that never fires changes
# nothing.
expect 0 "--fault list" -- "$ctl" --fault list
grep -q '^mig\.arc\.STOP->STOP_COPY ' "$tmp/out" && grep -q '^mig\.data\.read ' "$tmp/out" ||
	{ echo "FAIL: --fault list"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 2 "--fault unknown point" -- "$ctl" --fault no.such info "$S"
grep -q -- "--fault list" "$tmp/err" || { echo "FAIL: no hint"; fails=$((fails + 1)); }
expect 2 "--fault bad count" -- "$ctl" --fault mig.arc:0 info "$S"
expect 2 "--fault bad errno" -- "$ctl" --fault mig.arc=ENOPE info "$S"
expect 0 "--fault that never fires" -- "$ctl" --fault 'mig.arc.RESUMING->STOP' info "$S"
expect 1 "--fault arc" -- "$ctl" --fault 'mig.arc.STOP->STOP_COPY' save "$S" -o "$tmp/f.bin"
expect 1 "--fault arc with errno" -- "$ctl" --fault 'mig.arc.RUNNING_P2P->STOP=EBUSY' state "$S" stop
grep -q "Device or resource busy (device now running_p2p)" "$tmp/err" ||
	{ echo "FAIL: arc errno"; cat "$tmp/err"; fails=$((fails + 1)); }
expect 1 "--fault arc to ERROR" -- "$ctl" --fault 'mig.error.RUNNING_P2P->STOP' state "$S" stop
grep -q "(device now error)" "$tmp/err" ||
	{ echo "FAIL: arc to ERROR"; cat "$tmp/err"; fails=$((fails + 1)); }
expect 1 "--fault data read" -- "$ctl" --fault mig.data.read:2 save "$S" -o "$tmp/f.bin"
expect 1 "--fault data read, plain engine" -- "$ctl" --engine plain --fault mig.data.read:2 save "$S" -o "$tmp/f.bin"
expect 1 "--fault data write" -- "$ctl" --fault mig.data.write load "$D" -i "$tmp/good.bin"
expect 1 "--fault device refuses the state" -- "$ctl" --fault simdev.load_state load "$D" -i "$tmp/good.bin"
expect 1 "--fault log read" -- "$ctl" --fault log.read_and_clear dirty "$S" --ms 20
expect 1 "--fault IOMMU bitmap" -- "$ctl" --fault iommu.dirty_bitmap dirty "$S" --ms 20 --iommu
expect 1 "--fault pre-copy read in migrate" -- "$ctl" --fault mig.data.read:3 migrate --workload "$S" "$D"
expect 1 "--fault repeated" -- "$ctl" --fault 'mig.arc.RUNNING->PRE_COPY:2' --fault 'mig.error.STOP->RESUMING' migrate "$S" "$D"
# A DMA fault is absorbed: the engine halts and the fault migrates with the
# device, so migrate completes; the fault fired all the same (1, named).
expect 1 "--fault absorbed by the device" -- "$ctl" --fault dma.write migrate --workload "$S" "$D"
grep -q -- "--fault dma.write fired" "$tmp/err" ||
	{ echo "FAIL: absorbed fault not named"; cat "$tmp/err"; fails=$((fails + 1)); }

if [ $fails != 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "all checks passed"
