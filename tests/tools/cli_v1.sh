#!/bin/sh
# Contract: vfio-mig-ctl --protocol v1 drives the v1 migration region the
# core offers over v2 drivers, and moves the driver's own stream: what a
# v1 save writes is byte for byte what a v2 save writes, and loads either
# way. Round trips are verified by digest (the loaded state saved again
# equals the saved stream's XXH3): save v1 / load v1, save v1 / load v2,
# save v2 / load v1, through files and pipes; send/recv over TCP with
# either protocol on either side; migrate --protocol v1 verified, with
# pre-copy carrying device data on simnic and only stop-and-copy carrying
# it on simmin (no PRE_COPY: its pre-copy state has nothing pending).
# state steps through the v1 states printing the bits of each write, P2P
# states with NDMA where the region has it. Errors are one line, exit 1: a
# device without the region (mig_v1=off), a P2P state without NDMA,
# error as a target, a bad stream, a fault in the region's stream. Usage
# (2): an unknown protocol, --protocol v1 on a command that has no v1
# path. Under uvfio-run the same round trip works on a device named by
# its path (plain system calls, the window mmap'd through the preload).
#
# usage: cli_v1.sh VFIO_MIG_CTL [UVFIO_RUN]
set -u
ctl=$1
run=${2:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

. "$(dirname "$0")/lib.sh"
# digest FILE: the "digest" of a JSON report.
digest() {
	sed -n 's/.*"digest": "\([0-9a-f]*\)".*/\1/p' "$1"
}
# same_digest WHAT A B: two reports' digests, equal and not empty.
same_digest() {
	a=$(digest "$2"); b=$(digest "$3")
	if [ -z "$a" ] || [ "$a" != "$b" ]; then
		echo "FAIL: $1: digest '$a' vs '$b'"; fails=$((fails + 1))
	else
		echo "ok: $1 ($a)"
	fi
}

S=simnic,bdf=00:02.0,mem=2M,seed=7
D=simnic,bdf=00:03.0,mem=2M
v1="$ctl --protocol v1"

# -------- usage --------
expect 0 "--help names --protocol" -- "$ctl" --help
has "--protocol" "$tmp/out" "--help"
expect 2 "unknown protocol" -- "$ctl" --protocol v3 save "$S" -o "$tmp/x"
for sub in info fsm dirty; do
	expect 2 "--protocol v1 $sub" -- $v1 $sub "$S"
	has "applies to state, save, load, send, recv and migrate" "$tmp/err" "$sub"
done
expect 0 "--protocol v2 is the default's" -- "$ctl" --protocol v2 info "$S"
expect 2 "--protocol v1 drivers" -- $v1 drivers

# -------- state --------
expect 0 "state reads" -- $v1 state "$S" --json
has '"protocol": "v1"' "$tmp/out" "state json"
has '"state": "running"' "$tmp/out" "state json"
expect 0 "state steps through the v1 states" -- $v1 state "$S" \
	pre_copy stop_copy stop resuming
[ "$(cat "$tmp/out")" = "running -> pre_copy (RUNNING -> RUNNING|SAVING)
pre_copy -> stop_copy (RUNNING|SAVING -> SAVING)
stop_copy -> stop (SAVING -> STOP)
stop -> resuming (STOP -> RESUMING)" ] ||
	{ echo "FAIL: v1 state steps:"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 0 "state: stop-and-copy straight from running, and back" -- \
	$v1 state "$S" stop_copy running stop running
[ "$(cat "$tmp/out")" = "running -> stop_copy (RUNNING -> SAVING)
stop_copy -> running (SAVING -> RUNNING)
running -> stop (RUNNING -> STOP)
stop -> running (STOP -> RUNNING)" ] ||
	{ echo "FAIL: v1 stop-copy and back:"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 0 "state json arcs" -- $v1 state "$S" stop_copy stop --json
has '"from": "running"' "$tmp/out" "json from"
has '"to": "stop"' "$tmp/out" "json to"
[ "$(grep -c '"data_fd": false' "$tmp/out")" = 2 ] ||
	{ echo "FAIL: json arcs"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 0 "state: P2P states with NDMA (simnic has P2P)" -- $v1 state "$S" \
	running_p2p pre_copy_p2p pre_copy stop_copy
[ "$(cat "$tmp/out")" = "running -> running_p2p (RUNNING -> RUNNING|NDMA)
running_p2p -> pre_copy_p2p (RUNNING|NDMA -> RUNNING|SAVING|NDMA)
pre_copy_p2p -> pre_copy (RUNNING|SAVING|NDMA -> RUNNING|SAVING)
pre_copy -> stop_copy (RUNNING|SAVING -> SAVING)" ] ||
	{ echo "FAIL: v1 NDMA steps:"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 1 "state: P2P without NDMA (simmin)" -- $v1 state simmin,bdf=00:04.0 running_p2p
has "no NDMA capability" "$tmp/err" "NDMA named"
expect 1 "state: error is not settable" -- $v1 state "$S" error
has "not a state to set" "$tmp/err" "error refused"
# simmin has no PRE_COPY; v1's pre-copy state exists on every device.
expect 0 "state: pre-copy on a device without PRE_COPY" -- $v1 state \
	simmin,bdf=00:04.0 pre_copy
expect 1 "state: resuming nothing cannot run" -- $v1 state "$S" resuming running
has "resuming -> running: " "$tmp/err" "the write is named"
has "(device now " "$tmp/err" "device_state read again"
expect 1 "no v1 region (mig_v1=off)" -- $v1 state "$S,mig_v1=off"
has "no v1 migration region" "$tmp/err" "no region named"
expect 0 "mig_v1=off leaves v2" -- "$ctl" state "$S,mig_v1=off" stop

# -------- save / load, both protocols, both ways --------
expect 0 "save v1 to a file" -- $v1 save "$S" -o "$tmp/v1.bin" --json
cp "$tmp/out" "$tmp/save1.json"
has '"protocol": "v1"' "$tmp/save1.json" "save json"
expect 0 "save v2 to a file" -- "$ctl" save "$S" -o "$tmp/v2.bin" --json
cp "$tmp/out" "$tmp/save2.json"
has '"protocol": "v2"' "$tmp/save2.json" "save json"
if cmp -s "$tmp/v1.bin" "$tmp/v2.bin"; then
	echo "ok: a v1 save is the v2 stream, byte for byte"
else
	echo "FAIL: v1 and v2 saves differ"; fails=$((fails + 1))
fi
expect 0 "save v1 / load v1" -- $v1 load "$D" -i "$tmp/v1.bin" --json
same_digest "save v1 / load v1" "$tmp/save1.json" "$tmp/out"
expect 0 "save v1 / load v2" -- "$ctl" load "$D" -i "$tmp/v1.bin" --json
same_digest "save v1 / load v2" "$tmp/save1.json" "$tmp/out"
expect 0 "save v2 / load v1" -- $v1 load "$D" -i "$tmp/v2.bin" --json
same_digest "save v2 / load v1" "$tmp/save2.json" "$tmp/out"
has '"protocol": "v1"' "$tmp/out" "load json"
for pair in "v1 v1" "v1 v2" "v2 v1"; do
	set -- $pair
	"$ctl" --protocol "$1" save "$S" -o - --json 2>"$tmp/p.save" |
		"$ctl" --protocol "$2" load "$D" -i - --json >"$tmp/p.load"
	rc=$?
	[ $rc = 0 ] || { echo "FAIL: pipe $1 | $2: rc $rc"; fails=$((fails + 1)); }
	same_digest "save $1 | load $2 through a pipe" "$tmp/p.save" "$tmp/p.load"
done
expect 0 "save v1 --stop leaves it stopped" -- $v1 save "$S" -o "$tmp/s.bin" --stop
expect 0 "save v1, text" -- $v1 save "$S" -o "$tmp/s.bin"
has "(v1)" "$tmp/out" "text names v1"
# A bigger device: many windows' worth in each direction.
expect 0 "save v1, 32M" -- $v1 save simnic,bdf=00:05.0,mem=32M,seed=2 \
	-o "$tmp/big.bin" --json
cp "$tmp/out" "$tmp/big.json"
expect 0 "load v1, 32M" -- $v1 load simnic,bdf=00:06.0,mem=32M -i "$tmp/big.bin" --json
same_digest "32M save v1 / load v1" "$tmp/big.json" "$tmp/out"

# Bad streams through the region: refused, never running what it got.
head -c 100000 "$tmp/v2.bin" >"$tmp/short.bin"
expect 1 "load v1: truncated" -- $v1 load "$D" -i "$tmp/short.bin"
has "truncated" "$tmp/err" "truncation named"
cp "$tmp/v2.bin" "$tmp/bad.bin"
printf 'X' | dd of="$tmp/bad.bin" bs=1 seek=70000 conv=notrunc 2>/dev/null
expect 1 "load v1: corrupted" -- $v1 load "$D" -i "$tmp/bad.bin"
has "checksum" "$tmp/err" "corruption named"
expect 1 "load v1: another device type" -- $v1 load \
	"testdev,bdf=00:03.0,mig=stop_copy" -i "$tmp/v2.bin"
expect 1 "load v1: no region" -- $v1 load "$D,mig_v1=off" -i "$tmp/v2.bin"
has "no v1 migration region" "$tmp/err" "no region named"
expect 1 "save v1: no region" -- $v1 save "$S,mig_v1=off" -o "$tmp/x"
expect 1 "save v1: a fault in the stream" -- $v1 --fault mig.data.read:2 \
	save "$S" -o "$tmp/x"
expect 1 "load v1: a fault in the stream" -- $v1 --fault mig.data.write \
	load "$D" -i "$tmp/v2.bin"

# -------- send / recv --------
port=$((20000 + ($$ + 7919) % 20000))
for pair in "v1 v1" "v1 v2" "v2 v1"; do
	set -- $pair
	port=$((port + 1))
	# Emptied here: the background job truncates it only once it runs,
	# and the last pair's "listening" must not count for this one.
	: >"$tmp/recv.err"
	"$ctl" --protocol "$2" recv "$D" --listen "127.0.0.1:$port" --json \
		>"$tmp/recv.json" 2>"$tmp/recv.err" &
	rpid=$!
	# Until it listens (it says so), at most 60 s: a loaded machine can
	# take seconds to set the device up, and a send before the listen is
	# refused, leaving recv to wait for the test's timeout.
	for _ in $(seq 600); do
		grep -q listening "$tmp/recv.err" 2>/dev/null && break
		sleep 0.1
	done
	grep -q listening "$tmp/recv.err" ||
		{ echo "FAIL: recv $2 never listened"; fails=$((fails + 1)); }
	expect 0 "send $1 / recv $2" -- "$ctl" --protocol "$1" send "$S" \
		--to "127.0.0.1:$port" --json
	# A failed send leaves recv waiting for a connection: end it.
	grep -q '"verified": true' "$tmp/out" || kill $rpid 2>/dev/null
	has '"verified": true' "$tmp/out" "send $1 / recv $2 verified"
	has "\"protocol\": \"$1\"" "$tmp/out" "send json"
	wait $rpid || { echo "FAIL: recv $2: exit $?"; cat "$tmp/recv.err"; fails=$((fails + 1)); }
	has "\"protocol\": \"$2\"" "$tmp/recv.json" "recv json"
	same_digest "send $1 / recv $2 digests" "$tmp/out" "$tmp/recv.json"
done

# -------- migrate --------
expect 0,3 "migrate v1 simnic, pre-copy" -- $v1 migrate --workload --json \
	simnic,bdf=00:02.0,mem=8M,seed=3 simnic,bdf=00:03.0,mem=8M
has '"protocol": "v1"' "$tmp/out" "migrate json"
has '"verified": true' "$tmp/out" "simnic v1 verified"
has '"precopy": true' "$tmp/out" "simnic v1 pre-copy"
# The first pass carries the device's initial data.
python3 - "$tmp/out" <<'EOF' || fails=$((fails + 1))
import json, sys
r = json.load(open(sys.argv[1]))
if r["passes"][0]["device_bytes"] < 8 << 20:
    print("FAIL: simnic v1 pre-copy pass 1 carried", r["passes"][0]["device_bytes"])
    sys.exit(1)
print("ok: simnic v1 pre-copy carried", r["passes"][0]["device_bytes"], "bytes in pass 1")
EOF
expect 0,3 "migrate v1 simmin, stop-copy only" -- $v1 migrate --workload --json \
	simmin,bdf=00:02.0,mem=8M,seed=3 simmin,bdf=00:03.0,mem=8M
has '"verified": true' "$tmp/out" "simmin v1 verified"
python3 - "$tmp/out" <<'EOF' || fails=$((fails + 1))
import json, sys
r = json.load(open(sys.argv[1]))
pre = sum(p["device_bytes"] for p in r["passes"])
if pre or r["stop_copy_bytes"] < 8 << 20:
    print("FAIL: simmin v1: pre-copy", pre, "stop-copy", r["stop_copy_bytes"])
    sys.exit(1)
print("ok: simmin v1: nothing in pre-copy,", r["stop_copy_bytes"], "bytes in stop-copy")
EOF
expect 0,3 "migrate v1 --no-precopy" -- $v1 migrate --no-precopy --json \
	"$S" "$D"
has '"precopy": false' "$tmp/out" "no pre-copy"
has '"verified": true' "$tmp/out" "--no-precopy verified"
expect 0,3 "migrate v1, text" -- $v1 migrate "$S" "$D"
has "(v1)" "$tmp/out" "text names v1"
has "PASS" "$tmp/out" "text verified"
expect 1 "migrate v1: destination without the region" -- $v1 migrate "$S" "$D,mig_v1=off"
has "no v1 migration region" "$tmp/err" "no region named"
expect 1 "migrate v1: a fault in pre-copy" -- $v1 --fault mig.data.read:3 \
	migrate --workload "$S" "$D"

# -------- under uvfio-run: by path, plain system calls --------
if [ -n "$run" ]; then
	B=0000:00:02.0
	B2=0000:00:03.0
	P=/sys/bus/pci/devices/$B
	P2=/sys/bus/pci/devices/$B2
	expect 0 "uvfio-run: save v1 by path" -- "$run" --device "simnic,bdf=$B,mem=2M,seed=7" \
		-- $v1 save "$P" -o "$tmp/r1.bin" --json
	cp "$tmp/out" "$tmp/r1.json"
	if cmp -s "$tmp/r1.bin" "$tmp/v2.bin"; then
		echo "ok: by path, the same stream as the spec's"
	else
		echo "FAIL: by path, another stream"; fails=$((fails + 1))
	fi
	expect 0 "uvfio-run: load v1 by path" -- "$run" --device "simnic,bdf=$B2,mem=2M" \
		-- $v1 load "$P2" -i "$tmp/r1.bin" --json
	same_digest "uvfio-run: save v1 / load v1 by path" "$tmp/r1.json" "$tmp/out"
	expect 0 "uvfio-run: state v1 by path" -- "$run" --device "simnic,bdf=$B,mem=2M" \
		-- $v1 state "$P" stop_copy stop
	expect 0,3 "uvfio-run: migrate v1 by path" -- "$run" \
		--device "simnic,bdf=$B,mem=2M,seed=3" --device "simnic,bdf=$B2,mem=2M" \
		-- $v1 migrate --json "$P" "$P2"
	has '"verified": true' "$tmp/out" "uvfio-run migrate v1 verified"
	expect 1 "uvfio-run: no region by path" -- "$run" \
		--device "simnic,bdf=$B,mem=2M,mig_v1=off" -- $v1 save "$P" -o "$tmp/x"
	has "no v1 migration region" "$tmp/err" "no region named"
fi

if [ $fails != 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "all checks passed"
