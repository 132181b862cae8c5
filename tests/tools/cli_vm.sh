#!/bin/sh
# Contract: vfio-mig-ctl migrate with several --pair migrates the devices
# of one VM: with --workload (peers written by default) and --json, one
# JSON document with a section per device (each verified, each stop-copy
# non-empty, peer writes done), the whole VM's totals and downtime, exit
# 0 (or 3, verified but over the budget, as a slow sanitizer run may
# be); SRC DST positional counts as one more pair; a simmin among
# simnics is refused, exit 1, naming it and VFIO_MIGRATION_P2P, and with
# --json the refusal is the JSON error; --unsafe-no-p2p migrates the same
# VM with a warning line that says it is unsafe; usage errors (a lone
# source, --unsafe-no-p2p with one pair, --protocol v1 with several)
# exit 2; migrate SRC DST alone still works.
#
# usage: cli_vm.sh PATH_TO_VFIO_MIG_CTL
set -u
ctl=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

. "$(dirname "$0")/lib.sh"

P1="simnic,bdf=00:01.0,mem=1M,seed=3 simnic,bdf=00:11.0,mem=1M"
P2="simnic,bdf=00:02.0,mem=1M,seed=4 simnic,bdf=00:12.0,mem=1M"
P3="simnic,bdf=00:03.0,mem=1M simnic,bdf=00:13.0,mem=1M"
MIN="simmin,bdf=00:04.0,mem=1M simmin,bdf=00:14.0,mem=1M"

# $P1.. are two words each, split on purpose.
# shellcheck disable=SC2086
expect 0,3 "migrate --pair x3 --workload --json" -- "$ctl" migrate --json \
	--workload --warmup-ms 50 --guest-mem 4M --pair $P1 --pair $P2 --pair $P3
if python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["verified"] is True, j["verification"]
assert j["order"] == "p2p" and j["precopy"] is True
assert j["dirty_tracking"] == "dma-logging"
assert len(j["devices"]) == 3
assert [d["source"] for d in j["devices"]] == \
	["0000:00:01.0", "0000:00:02.0", "0000:00:03.0"]
assert [d["destination"] for d in j["devices"]] == \
	["0000:00:11.0", "0000:00:12.0", "0000:00:13.0"]
for d in j["devices"]:
	assert d["verified"] is True and d["stop_copy_bytes"] > 0, d
	assert d["peer_writes"] > 0, d
assert j["stop_copy_bytes"] == sum(d["stop_copy_bytes"] for d in j["devices"])
assert j["downtime_ms"] > 0 and j["total_bytes"] > 0
' "$tmp/out"; then echo "ok: the VM report"
else echo "FAIL: the VM report:"; cat "$tmp/out"; fails=$((fails + 1)); fi

# shellcheck disable=SC2086
expect 0,3 "migrate SRC DST --pair (two pairs), text" -- "$ctl" migrate \
	--guest-mem 4M $P1 --pair $P2
has "migration of a VM, 2 devices, P2P order" "$tmp/out" "VM text header"
has "0000:00:01.0 -> 0000:00:11.0" "$tmp/out" "positional pair first"
has "verification      PASS" "$tmp/out" "VM verified"

# shellcheck disable=SC2086
expect 1 "a device without P2P among several" -- "$ctl" migrate \
	--guest-mem 4M --pair $P1 --pair $MIN
has "0000:00:04.0.*VFIO_MIGRATION_P2P" "$tmp/err" "refusal names the device"
# shellcheck disable=SC2086
expect 1 "the refusal, --json" -- "$ctl" migrate --json \
	--guest-mem 4M --pair $P1 --pair $MIN
if python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["exit"] == 1 and "VFIO_MIGRATION_P2P" in j["error"], j
' "$tmp/out"; then echo "ok: the refusal's JSON"
else echo "FAIL: the refusal's JSON:"; cat "$tmp/out"; fails=$((fails + 1)); fi

# The warning is one line more than a failure's one: not expect().
# shellcheck disable=SC2086
"$ctl" migrate --unsafe-no-p2p --json --guest-mem 4M --pair $P1 --pair $MIN \
	>"$tmp/out" 2>"$tmp/err"
rc=$?
case $rc in 0|3) echo "ok: --unsafe-no-p2p migrates (exit $rc)" ;;
*) echo "FAIL: --unsafe-no-p2p: exit $rc"; cat "$tmp/err"; fails=$((fails + 1)) ;;
esac
has "warning: --unsafe-no-p2p: UNSAFE" "$tmp/err" "the unsafe warning"
if python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["order"] == "unsafe-no-p2p" and j["dirty_tracking"] == "iommu", j
assert j["verified"] is True, j
' "$tmp/out"; then echo "ok: the unsafe order's report"
else echo "FAIL: the unsafe order's report:"; cat "$tmp/out"; fails=$((fails + 1)); fi

expect 2 "a source without a destination" -- "$ctl" migrate simnic,bdf=00:01.0
expect 2 "no device" -- "$ctl" migrate
# shellcheck disable=SC2086
expect 2 "--unsafe-no-p2p with one pair" -- "$ctl" migrate --unsafe-no-p2p $P1
# shellcheck disable=SC2086
expect 2 "--protocol v1 with several pairs" -- "$ctl" --protocol v1 migrate \
	--pair $P1 --pair $P2
# shellcheck disable=SC2086
expect 2 "a bad spec among the pairs" -- "$ctl" migrate --pair $P1 \
	--pair nosuch,bdf=00:05.0 simnic,bdf=00:15.0
# shellcheck disable=SC2086
expect 0,3 "migrate SRC DST, one pair as before" -- "$ctl" migrate --json $P1
if python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["source"] == "0000:00:01.0" and j["verified"] is True, j
' "$tmp/out"; then echo "ok: one pair's report as before"
else echo "FAIL: one pair's report:"; cat "$tmp/out"; fails=$((fails + 1)); fi
# shellcheck disable=SC2086
expect 0,3 "--pair SRC DST alone is one pair" -- "$ctl" migrate --json --pair $P1
has '"source": "0000:00:01.0"' "$tmp/out" "--pair alone, single report"

if [ $fails != 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "all checks passed"
