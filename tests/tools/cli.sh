#!/bin/sh
# Contract: vfio-mig-ctl's exit codes (0 done, 1 the operation failed,
# 2 usage), one-line messages on bad input, --help on every subcommand,
# state's arcs (one target or several in turn) and fsm's check of every
# driver, save | load through a pipe (save streaming: a file replaced
# only by a whole stream, so a fault, a full disk or a signal leaves it
# as it was; a failed save's pipe left truncated)
# and send/recv over loopback TCP round-tripping a device (the loaded
# state, saved again, has the saved stream's digest; send streams, so a
# failing source ends recv and the stream is not held in a file), bad
# inputs (short, corrupted or foreign files, a port in use, a peer
# leaving mid-stream), the listening port bound to loopback,
# and migrate ending verified for simnic (pre-copy, DMA logging) and
# simmin (stop-copy, IOMMU dirty pages) with the workload running; and
# --fault arming fault points (exit 1 when one fires, 2 for a bad one).
#
# conformance runs the suite: a JUnit report for a passing driver, exit 1
# for the brokennic plugin with a defect, 2 for an unknown driver.
#
# usage: cli.sh PATH_TO_VFIO_MIG_CTL [PATH_TO_BROKENNIC_SO [PATH_TO_PLUGSKEL_SO]]
set -u
ctl=$1
brokennic=${2:-}
plugskel=${3:-}
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
# The header names the driver: a simnic stream is not a simmin one. And
# endless input stops at a bad header instead of being read to its end
# (timeout: before, /dev/zero was read until the device's stream ended).
expect 1 "another driver of the same function" -- "$ctl" load "simmin,bdf=00:03.0,mem=4M" -i "$tmp/good.bin"
has "header refused" "$tmp/err" "another driver: the header named"
expect 1 "endless input stops at the header" -- timeout 60 "$ctl" load "$D" -i /dev/zero
has "header refused" "$tmp/err" "endless input: the header named"
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
# A full disk: the file size limit (SIGXFSZ ignored, so a write fails with
# EFBIG as ENOSPC would) is below the stream's 4 MiB but above the
# device's own files (64K of memory, no v1 region).
T=testdev,bdf=00:02.0,mig=stop_copy,mem=64K,state=4M,seed=5,mig_v1=off
expect 0 "save a 4M testdev" -- "$ctl" save "$T" -o "$tmp/full.bin"
cp "$tmp/full.bin" "$tmp/full.keep"
expect 1 "save onto a full disk" -- sh -c 'trap "" XFSZ; ulimit -f 1000
	exec "$0" save "$1" -o "$2"' "$ctl" "$T" "$tmp/full.bin"
cmp -s "$tmp/full.bin" "$tmp/full.keep" ||
	{ echo "FAIL: a save onto a full disk changed the file"; fails=$((fails + 1)); }
[ -z "$(ls -A "$tmp" | grep '^\.\(good\|full\)\.bin\.')" ] ||
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
rm -f "$tmp/recv.err"
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
# send connects first and streams as it reads: a source failing mid-save
# ends the receiver too (1: a truncated stream or the sender's error),
# instead of leaving it waiting for a connection (timeout: 124).
port3=$((port + 3))
: >"$tmp/recv.err"
timeout 60 "$ctl" recv "$D" --listen "127.0.0.1:$port3" 2>"$tmp/recv.err" &
rpid=$!
if wait_listening $rpid; then
	expect 1 "send, the source failing mid-stream" -- "$ctl" --fault mig.data.read:2 \
		send "$S" --to "127.0.0.1:$port3"
	wait $rpid; rc=$?
	[ $rc = 1 ] && echo "ok: a failed send ends recv" ||
		{ echo "FAIL: a failed send: recv exit $rc"; cat "$tmp/recv.err"; fails=$((fails + 1)); }
fi
# ... and holds no copy of the stream in a file (the memfd it once
# was): under a file size limit below the stream's 4 MiB (T, above) it
# still sends.
port4=$((port + 4))
: >"$tmp/recv.err"
timeout 60 "$ctl" recv "$(echo "$T" | sed 's/00:02.0/00:03.0/; s/,seed=5//')" \
	--listen "127.0.0.1:$port4" >/dev/null 2>"$tmp/recv.err" &
rpid=$!
if wait_listening $rpid; then
	expect 0 "send writes no copy of the stream" -- sh -c 'trap "" XFSZ
		ulimit -f 1000; exec "$0" send "$1" --to "$2"' "$ctl" "$T" "127.0.0.1:$port4"
	wait $rpid || { echo "FAIL: recv of a send under a file size limit: exit $?"
			cat "$tmp/recv.err"; fails=$((fails + 1)); }
fi

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
	expect 0,3 "migrate $drv" -- "$ctl" migrate --workload --json \
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

# ---- The manual's promises (issue 21) ----

# A fault that fires names the point, wherever it fires: opening the
# device is the operation failing (1), not usage (2); a prefix names the
# point under it that fired.
expect 1 "--fault device.open" -- "$ctl" --fault device.open info "$S"
has "fault point device.open fired" "$tmp/err" "open fault named"
expect 1 "--fault data read, named" -- "$ctl" --fault mig.data.read:2 save "$S" -o "$tmp/f.bin"
has "fault point mig.data.read fired" "$tmp/err" "data read fault named"
expect 1 "--fault a prefix names the point" -- "$ctl" --fault mig.arc save "$S" -o "$tmp/f.bin"
has "fault point mig.arc.RUNNING->RUNNING_P2P fired" "$tmp/err" "prefix fault named"
expect 1 "--fault load_state, named" -- "$ctl" --fault simdev.load_state load "$D" -i "$tmp/good.bin"
has "simdev.load_state" "$tmp/err" "load_state named"

# A plugin's own points: listed and armed once the plugin is loaded (by
# the spec naming it, or for --fault list every plugin on the path);
# drivers lists the plugins; a plugin that does not load says why
# without -v.
if [ -n "$plugskel" ]; then
	pdir=$(dirname "$plugskel")
	P=plugskel,bdf=00:02.0
	expect 0 "--fault list with a plugin" -- env UVFIO_DRIVER_PATH="$pdir" "$ctl" --fault list
	has '^plugskel\.save_state ' "$tmp/out" "plugin point listed"
	expect 1 "--fault a plugin's point" -- env UVFIO_DRIVER_PATH="$pdir" \
		"$ctl" --fault plugskel.save_state save "$P" -o "$tmp/p.bin"
	has "fault point plugskel.save_state fired" "$tmp/err" "plugin point named"
	expect 0 "drivers lists a plugin" -- env UVFIO_DRIVER_PATH="$pdir" "$ctl" drivers --json
	has '"spec_name": "plugskel"' "$tmp/out" "plugin driver listed"
	has "\"plugin\": \"$pdir/plugskel.so\"" "$tmp/out" "plugin file named"
	expect 0 "drivers, text" -- env UVFIO_DRIVER_PATH="$pdir" "$ctl" drivers
	has "^plugskel .*(plugin $pdir/plugskel.so)" "$tmp/out" "plugin in text"
fi
mkdir "$tmp/plugins"
# Long enough for the loader to read an ELF header, which it is not.
head -c 4096 /dev/zero | tr "\\0" x >"$tmp/plugins/badplug.so"
expect 2 "a plugin that does not load" -- env UVFIO_DRIVER_PATH="$tmp/plugins" \
	"$ctl" info badplug,bdf=00:02.0
has "driver plugin $tmp/plugins/badplug.so: .*ELF" "$tmp/err" "plugin load error shown"
expect 1 "drivers with a plugin that does not load" -- env UVFIO_DRIVER_PATH="$tmp/plugins" \
	"$ctl" drivers
has "badplug.so: .*ELF" "$tmp/err" "drivers: plugin load error"
has '^simnic ' "$tmp/out" "drivers: the list all the same"

# --json: a failure is a JSON object too, {"error": ..., "exit": N}, on
# stdout (stderr for save -o -), for every command that takes --json.
# json_err FILE CODE WHAT: FILE holds such an object with exit CODE.
json_err() {
	python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert isinstance(j, dict) and j["exit"] == int(sys.argv[2]) and j["error"], j
' "$1" "$2" 2>"$tmp/json.err" && echo "ok: $3: JSON error" ||
		{ echo "FAIL: $3: no JSON error object:"; cat "$1" "$tmp/json.err"; fails=$((fails + 1)); }
}
expect 2 "info --json, unknown driver" -- "$ctl" info nosuch,bdf=00:01.0 --json
json_err "$tmp/out" 2 "info"
expect 2 "info --json, bad option" -- "$ctl" info --json --frobnicate "$S"
json_err "$tmp/out" 2 "usage"
expect 1 "state --json, unreachable" -- "$ctl" state simmin,bdf=00:02.0 pre_copy --json
json_err "$tmp/out" 1 "state"
expect 1 "fsm --json, fault" -- "$ctl" --fault device.open fsm "$S" --json
json_err "$tmp/out" 1 "fsm"
has '"fault": "device.open"' "$tmp/out" "fsm json names the fault"
expect 1 "save --json, fault" -- "$ctl" --fault mig.data.read save "$S" -o "$tmp/f.bin" --json
json_err "$tmp/out" 1 "save"
"$ctl" --fault mig.data.read save "$S" -o - --json >/dev/null 2>"$tmp/err.json"
sed -i '/^vfio-mig-ctl: /d' "$tmp/err.json"
json_err "$tmp/err.json" 1 "save -o -"
expect 1 "load --json, missing file" -- "$ctl" load "$D" -i "$tmp/nonexistent" --json
json_err "$tmp/out" 1 "load"
expect 1 "send --json, nobody listening" -- "$ctl" send "$S" --to "127.0.0.1:$((port + 2))" --json
json_err "$tmp/out" 1 "send"
expect 2 "recv --json, bad port" -- "$ctl" recv "$D" --listen 99999 --json
json_err "$tmp/out" 2 "recv"
expect 1 "dirty --json, fault" -- "$ctl" --fault log.read_and_clear dirty "$S" --ms 20 --json
json_err "$tmp/out" 1 "dirty"
expect 1 "migrate --json, fault" -- "$ctl" --fault mig.data.read:3 migrate "$S" "$D" --json
json_err "$tmp/out" 1 "migrate"
expect 1 "drivers --json, a plugin that does not load" -- env UVFIO_DRIVER_PATH="$tmp/plugins" \
	"$ctl" drivers --json
json_err "$tmp/out" 1 "drivers"
has '"spec_name": "simnic"' "$tmp/out" "drivers json keeps the list"

# A missed downtime budget: verified, but a warning, a JSON field and exit 3.
expect 3 "migrate over its downtime budget" -- "$ctl" migrate --downtime-budget 0.001 "$S" "$D" --json
has "warning: migrate: downtime .* exceeded the budget of 0.001 ms" "$tmp/err" "budget warning"
has '"downtime_budget_met": false' "$tmp/out" "budget JSON field"
has '"verified": true' "$tmp/out" "over budget, verified"
json_err "$tmp/out" 3 "migrate over budget"
# A fault that fired outranks the budget: 1, and its line alone.
expect 1 "a fault and a missed budget" -- "$ctl" --fault dma.write migrate --workload \
	--downtime-budget 0.001 "$S" "$D"
has "dma.write fired" "$tmp/err" "fault over budget named"
expect 0 "migrate within a generous budget" -- "$ctl" migrate --downtime-budget 600000 "$S" "$D" --json
has '"downtime_budget_met": true' "$tmp/out" "budget met"

# Ports: out of range is usage (2); 0 binds a free port, printed and in
# the JSON; the default host is loopback.
expect 2 "recv --listen 99999" -- "$ctl" recv "$D" --listen 99999
has "65535" "$tmp/err" "port range named"
expect 2 "send --to host:99999" -- "$ctl" send "$S" --to 127.0.0.1:99999
expect 2 "send --to 99999" -- "$ctl" send "$S" --to 99999
expect 2 "send --to port 0" -- "$ctl" send "$S" --to 127.0.0.1:0
rm -f "$tmp/recv.err"
"$ctl" recv "$D" --listen 0 --json >"$tmp/recv.json" 2>"$tmp/recv.err" &
rpid=$!
if wait_listening $rpid; then
	p0=$(sed -n 's/^recv: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$tmp/recv.err")
	if [ -z "$p0" ] || [ "$p0" = 0 ]; then
		echo "FAIL: --listen 0: no loopback port printed:"; cat "$tmp/recv.err"
		fails=$((fails + 1)); kill $rpid
	else
		# Bound to loopback, as it says: 127.0.0.1 listening (0A)
		# in /proc/net/tcp, not 0.0.0.0.
		grep -qi "^ *[0-9]*: 0100007F:$(printf %04X "$p0") 00000000:0000 0A" /proc/net/tcp ||
			{ echo "FAIL: --listen 0 is not bound to 127.0.0.1:"; cat /proc/net/tcp
			  fails=$((fails + 1)); }
		expect 0 "send to the port --listen 0 bound" -- "$ctl" send "$S" --to "$p0"
	fi
	wait $rpid || { echo "FAIL: recv --listen 0 exit $?"; fails=$((fails + 1)); }
	has "\"port\": $p0" "$tmp/recv.json" "bound port in the JSON"
	has "\"listen\": \"127.0.0.1:$p0\"" "$tmp/recv.json" "bound address in the JSON"
fi

# Numbers and sizes: no wrap, no zero guest, the spec grammar everywhere,
# short range messages.
expect 2 "dirty --ms 4294967295" -- "$ctl" dirty "$S" --ms 4294967295
has "out of range (0 to 3600000)" "$tmp/err" "--ms range"
expect 2 "--guest-mem 0" -- "$ctl" migrate --guest-mem 0 "$S" "$D"
expect 2 "--guest-mem not whole pages" -- "$ctl" migrate --guest-mem 5000 "$S" "$D"
expect 2 "--guest-mem not a size" -- "$ctl" migrate --guest-mem 16Q "$S" "$D"
for sz in 1M 1m 1MB 1MiB 1024K 0x100000 1048576; do
	expect 0 "--guest-mem $sz" -- "$ctl" dirty "$S" --ms 0 --guest-mem "$sz" --json
	has '"guest_pages": 256,' "$tmp/out" "--guest-mem $sz is 1 MiB"
done
expect 2 "--downtime-budget -1" -- "$ctl" migrate --downtime-budget -1 "$S" "$D"
if grep -q '[0-9]\{20\}' "$tmp/err"; then
	echo "FAIL: a range message with a huge number:"; cat "$tmp/err"; fails=$((fails + 1))
fi

# Signals: a message and 128 + N; with --json an object too. A shell
# starts a background job with SIGINT ignored, which the tool keeps: dfl
# starts it with SIGINT as a terminal's foreground job has it.
dfl() {
	exec python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$@"
}
rm -f "$tmp/recv.err"
"$ctl" recv "$D" --listen 0 --json >"$tmp/sig.out" 2>"$tmp/recv.err" &
rpid=$!
if wait_listening $rpid; then
	kill -TERM $rpid; wait $rpid; rc=$?
	[ $rc = 143 ] && grep -q "interrupted by SIGTERM" "$tmp/recv.err" &&
		grep -q '"exit": 143' "$tmp/sig.out" && echo "ok: SIGTERM" ||
		{ echo "FAIL: SIGTERM: exit $rc"; cat "$tmp/recv.err" "$tmp/sig.out"; fails=$((fails + 1)); }
fi
rm -f "$tmp/recv.err"
dfl "$ctl" recv "$D" --listen 0 >/dev/null 2>"$tmp/recv.err" &
rpid=$!
if wait_listening $rpid; then
	kill -INT $rpid; wait $rpid; rc=$?
	[ $rc = 130 ] && grep -q "interrupted by SIGINT" "$tmp/recv.err" && echo "ok: SIGINT" ||
		{ echo "FAIL: SIGINT: exit $rc"; cat "$tmp/recv.err"; fails=$((fails + 1)); }
fi
# A save interrupted while it writes its temporary file: the file it
# would replace stays, the temporary goes. Caught mid-stream by polling
# for the temporary; a larger device if the save was quicker than that.
caught=
for mem in 256M 1G; do
	cp "$tmp/keep.bin" "$tmp/sig.bin"
	"$ctl" save "simnic,bdf=00:02.0,mem=$mem" -o "$tmp/sig.bin" >/dev/null 2>"$tmp/sig.err" &
	spid=$!
	for _ in $(seq 2000); do
		ls -A "$tmp" | grep -q '^\.sig\.bin\.' && break
		kill -0 $spid 2>/dev/null || break
		sleep 0.005
	done
	kill -TERM $spid 2>/dev/null
	wait $spid; rc=$?
	[ $rc = 0 ] && continue
	caught=1
	if [ $rc = 143 ] && grep -q "interrupted by SIGTERM" "$tmp/sig.err" &&
	   cmp -s "$tmp/sig.bin" "$tmp/keep.bin" &&
	   ! ls -A "$tmp" | grep -q '^\.sig\.bin\.'; then
		echo "ok: SIGTERM during save: file kept, no temporary"
	else
		echo "FAIL: SIGTERM during save: exit $rc"; cat "$tmp/sig.err"; ls -A "$tmp"
		fails=$((fails + 1))
	fi
	break
done
[ -n "$caught" ] || { echo "FAIL: no save was slow enough to interrupt"; fails=$((fails + 1)); }

# save -o - refuses a terminal unless forced.
python3 - "$ctl" "$S" "$tmp" <<'PY'
import os, pty, sys
ctl, spec, tmp = sys.argv[1:4]
def run(*args):
    pid, fd = pty.fork()
    if pid == 0:
        err = os.open(tmp + "/tty.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(err, 2)
        os.execv(ctl, [ctl, "save", spec, "-o", "-", *args])
    n = 0
    try:
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            n += len(b)
    except OSError:
        pass
    return os.waitpid(pid, 0)[1] >> 8, n
rc, n = run()
msg = open(tmp + "/tty.err").read()
ok = rc == 2 and n == 0 and "terminal" in msg
print(("ok" if ok else "FAIL") + ": save -o - to a terminal: exit %d, %d bytes, %r" % (rc, n, msg))
rc2, n2 = run("--force")
ok2 = rc2 == 0 and n2 > 0
print(("ok" if ok2 else "FAIL") + ": save -o - --force to a terminal: exit %d, %d bytes" % (rc2, n2))
sys.exit(0 if ok and ok2 else 1)
PY
[ $? = 0 ] || fails=$((fails + 1))

# conformance: a filter that matches nothing is not a pass.
"$ctl" conformance -d simnic --filter 'NoSuchTest*' >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc != 0 ] && grep -q "matches no test" "$tmp/err" && echo "ok: conformance --filter matching nothing" ||
	{ echo "FAIL: conformance --filter matching nothing: exit $rc"; cat "$tmp/err"; fails=$((fails + 1)); }

if [ $fails != 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "all checks passed"
