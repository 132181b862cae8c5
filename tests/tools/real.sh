#!/bin/sh
# Contract: vfio-mig-ctl's real-device mode. A device named by its path
# (/sys/bus/pci/devices/BDF, /dev/vfio/N@BDF) is opened through its group
# and container with plain system calls; under uvfio-run those reach a
# simulated device, and every command works on it as on a spec: info,
# state, fsm, save, load, send, recv, dirty, migrate (two devices), and
# conformance (vfio-mig-ctl's and uvfio-conformance's --device), with
# the same stream as the spec mode saves (one code path); --fault reaches
# the simulated device. Malformed names are usage errors (2), devices
# that do not open fail (1), each with one line naming the path and the
# errno text; what needs the in-process simulator (the workload) is
# refused on a real device (2).
#
# usage: real.sh VFIO_MIG_CTL UVFIO_RUN UVFIO_CONFORMANCE
set -u
ctl=$1
run=$2
suite=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
# A sanitizer build's runtime is in the program; the preload goes first.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

. "$(dirname "$0")/lib.sh"

B=0000:00:02.0
B2=0000:00:03.0
S="simnic,bdf=$B,mem=1M,seed=3"
S2="simnic,bdf=$B2,mem=1M"
P=/sys/bus/pci/devices/$B
P2=/sys/bus/pci/devices/$B2

# Names: malformed ones are usage errors without touching the system; a
# device that is not there fails, naming the path and errno.
expect 2 "group without a device name" -- "$ctl" info /dev/vfio/3
has "/dev/vfio/3@" "$tmp/err" "the form is named"
expect 2 "short PCI address in sysfs" -- "$ctl" info /sys/bus/pci/devices/00:02.0
expect 2 "not a UUID" -- "$ctl" state /sys/bus/mdev/devices/nope
expect 2 "the container" -- "$ctl" save /dev/vfio/vfio -o "$tmp/x"
expect 2 "not a VFIO path" -- "$ctl" fsm /tmp
expect 2 "a bare address is not a spec" -- "$ctl" info $B
has "/sys/bus/pci/devices/$B" "$tmp/err" "the path is suggested"
expect 2 "conformance: a device as --driver" -- "$ctl" conformance -d "$P"
expect 2 "conformance: malformed --device" -- "$ctl" conformance --device /dev/vfio/1
expect 2 "uvfio-conformance: malformed --device" -- "$suite" --device /dev/vfio/1
expect 1 "no such group" -- "$ctl" info /dev/vfio/99999@$B
has "/dev/vfio/" "$tmp/err" "the path is named"
has "No such file or directory" "$tmp/err" "the errno is named"

# Under uvfio-run: every command on the simulated device, by its path.
expect 0 "info" -- "$run" --device "$S" -- "$ctl" info "$P" --json
has '"device": "'$B'"' "$tmp/out" "info names the device"
has '"migration_flags": "stop_copy|p2p|pre_copy"' "$tmp/out" "info"
group=$(sed -n 's/.*"group": "\(.*\)".*/\1/p' "$tmp/out")
[ -n "$group" ] || { echo "FAIL: no group in info"; fails=$((fails + 1)); }
expect 0 "info by /dev/vfio/N@BDF" -- "$run" --device "$S" -- "$ctl" info "$group@$B"
has "device $B ($group)" "$tmp/out" "info text"
expect 0 "state set" -- "$run" --device "$S" -- "$ctl" state "$P" stop_copy
[ "$(cat "$tmp/out")" = "running -> running_p2p
running_p2p -> stop
stop -> stop_copy (data fd)" ] || { echo "FAIL: state arcs:"; cat "$tmp/out"; fails=$((fails + 1)); }
expect 1 "state unreachable" -- "$run" --device "simmin,bdf=$B,mem=1M" -- "$ctl" state "$P" pre_copy
for drv in simnic simmin; do
	expect 0 "fsm $drv" -- "$run" --device "$drv,bdf=$B,mem=1M" -- "$ctl" fsm "$P" --json
	has '"mismatches": 0' "$tmp/out" "fsm $drv"
done

# One code path: the real mode saves what the spec mode saves.
expect 0 "save, spec mode" -- "$ctl" save "$S" -o "$tmp/spec.bin" --json
d0=$(grep -o '"digest": "[0-9a-f]*"' "$tmp/out")
expect 0 "save" -- "$run" --device "$S" -- "$ctl" save "$P" -o "$tmp/good.bin" --json
d1=$(grep -o '"digest": "[0-9a-f]*"' "$tmp/out")
[ -n "$d1" ] && [ "$d1" = "$d0" ] || { echo "FAIL: real $d1, spec $d0"; fails=$((fails + 1)); }
expect 0 "load" -- "$run" --device "$S2" -- "$ctl" load "$P2" -i "$tmp/good.bin" --json
d2=$(grep -o '"digest": "[0-9a-f]*"' "$tmp/out")
[ "$d2" = "$d1" ] || { echo "FAIL: loaded $d2, saved $d1"; fails=$((fails + 1)); }
"$run" --device "$S" -- "$ctl" save "$P" -o - 2>/dev/null |
	"$run" --device "$S2" -- "$ctl" --engine plain load "$P2" -i - --json >"$tmp/load.json"
rc=$?
d3=$(grep -o '"digest": "[0-9a-f]*"' "$tmp/load.json")
if [ $rc != 0 ] || [ "$d3" != "$d1" ]; then
	echo "FAIL: save | load: rc $rc, $d3"; fails=$((fails + 1))
else
	echo "ok: save | load through a pipe"
fi
head -c 100000 "$tmp/good.bin" >"$tmp/short.bin"
expect 1 "load truncated" -- "$run" --device "$S2" -- "$ctl" load "$P2" -i "$tmp/short.bin"
has "truncated" "$tmp/err" "truncation named"

port=$((20000 + $$ % 20000 + 7))
"$run" --device "$S2" -- "$ctl" recv "$P2" --listen "127.0.0.1:$port" --json \
	>"$tmp/recv.json" 2>"$tmp/recv.err" &
rpid=$!
sleep 0.5
expect 0 "send over TCP" -- "$run" --device "$S" -- "$ctl" send "$P" --to "127.0.0.1:$port" --json
has '"verified": true' "$tmp/out" "send verified"
wait $rpid || { echo "FAIL: recv exit $?"; cat "$tmp/recv.err"; fails=$((fails + 1)); }

for how in dma-logging iommu; do
	flag=; [ $how = iommu ] && flag=--iommu
	expect 0 "dirty by $how" -- "$run" --device "$S" -- "$ctl" dirty "$P" --ms 10 $flag --json
	has "\"tracking\": \"$how\"" "$tmp/out" "dirty $how"
	has '"workload": false' "$tmp/out" "dirty $how"
done
expect 2 "dirty: no workload on a real device" -- "$run" --device "$S" -- "$ctl" dirty "$P" --seed 2

expect 0,3 "migrate two real devices" -- "$run" --device "$S" --device "$S2" -- \
	"$ctl" migrate "$P" "$P2" --json
has '"verified": true' "$tmp/out" "migrate verified"
expect 0,3 "migrate a spec into a real device" -- "$run" --device "$S2" -- \
	"$ctl" migrate --workload "$S" "$P2" --json
has '"verified": true' "$tmp/out" "migrate spec -> real verified"
expect 2 "migrate: no workload on a real source" -- "$run" --device "$S" --device "$S2" -- \
	"$ctl" migrate --workload "$P" "$P2"
expect 1 "a group open twice" -- "$run" --device "$S" -- "$ctl" migrate "$P" "$P"
has "busy" "$tmp/err" "EBUSY named"
expect 1 "a device its group has not" -- "$run" --device "$S" -- "$ctl" info "$group@$B2"
has "No such device" "$tmp/err" "ENODEV named"
expect 1 "a device sysfs has not" -- "$run" --device "$S" -- "$ctl" info "$P2"
has "readlink $P2/iommu_group" "$tmp/err" "the link named"

# Fault points reach a simulated device under uvfio-run.
expect 1 "--fault under uvfio-run" -- "$run" --device "$S" -- \
	"$ctl" --fault 'mig.arc.RUNNING_P2P->STOP=EBUSY' state "$P" stop
has "Device or resource busy (device now running_p2p)" "$tmp/err" "arc errno"

# The conformance suite on the one device, opened for each test.
expect 0 "conformance --device" -- "$run" --device "simnic,bdf=$B,mem=2M" -- \
	"$ctl" conformance --device "$P" --junit "$tmp/junit.xml"
grep -q '<testsuites tests="[1-9][0-9]*" failures="0"' "$tmp/junit.xml" &&
	grep -q 'skipped="4"' "$tmp/junit.xml" ||
	{ echo "FAIL: junit"; head -3 "$tmp/junit.xml"; fails=$((fails + 1)); }
# With a peer, the round trip runs too (one skip fewer), loading into it.
expect 0 "conformance --device --peer" -- "$run" --device "simnic,bdf=$B,mem=2M" \
	--device "simnic,bdf=$B2,mem=2M" -- \
	"$ctl" conformance --device "$P" --peer "$P2" --junit "$tmp/junit.xml"
grep -q '<testsuites tests="[1-9][0-9]*" failures="0"' "$tmp/junit.xml" &&
	grep -q 'skipped="3"' "$tmp/junit.xml" ||
	{ echo "FAIL: junit with a peer"; head -3 "$tmp/junit.xml"; fails=$((fails + 1)); }
expect 2 "conformance --peer without --device" -- "$ctl" conformance --peer "$P2"
for drv in simmin skeleton "testdev,mig=stop_copy|p2p|pre_copy,log=1,mem=2M"; do
	expect 0 "uvfio-conformance --device ($drv)" -- "$run" --device "$drv,bdf=$B" -- \
		"$suite" --device "$P"
done

if [ $fails != 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "all checks passed"
