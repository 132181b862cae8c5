#!/bin/sh
# Contract: the conformance suite can fail, and fails precisely. The
# brokennic plugin (simnic with bug=NAME) has one known defect per name;
# each run must fail exactly the tests listed for it, no more, no fewer;
# with no defect every test passes. So does sramdev (a plugin with its own
# hardware model, not built on simdev) when it is built beside brokennic:
# its bug=nodirty (region writes in pre-copy not marked dirty) and
# bug=noresend (dirty pages never sent again) lose data in a pre-copy
# migration, which PreCopyKeepsRegionWrites, and only it, must catch.
#
# usage: negative.sh UVFIO_CONFORMANCE BROKENNIC_SO
set -u
suite=$1
plugin=$2
export UVFIO_DRIVER_PATH
UVFIO_DRIVER_PATH=$(dirname "$plugin")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

check() { # BUG EXPECTED_TESTS...  (on brokennic)
	check_spec "brokennic,mem=2M${1:+,bug=$1}" "$@"
}

check_spec() { # SPEC BUG EXPECTED_TESTS...
	spec=$1
	shift 2
	"$suite" --driver "$spec" >"$tmp/out" 2>&1
	rc=$?
	grep '^\[  FAILED  \] Drivers/' "$tmp/out" | grep -v ' ms)$' |
		sed 's/^.*Conformance\.\([A-Za-z0-9]*\)\/.*$/\1/' |
		sort -u >"$tmp/got"
	printf '%s\n' "$@" | sed '/^$/d' | sort -u >"$tmp/want"
	want_rc=1
	[ $# -eq 0 ] && want_rc=0
	if ! cmp -s "$tmp/got" "$tmp/want" || [ "$rc" -ne "$want_rc" ]; then
		echo "FAIL: $spec: exit $rc (want $want_rc); failed tests:"
		sed 's/^/  got:  /' "$tmp/got"
		sed 's/^/  want: /' "$tmp/want"
		tail -n 40 "$tmp/out"
		status=1
	else
		echo "ok: $spec fails: $(tr '\n' ' ' <"$tmp/got")"
	fi
}

check ""
check errno PrecopyInfoOnlyInPreCopyStates
check stream DataFdLeavingTheStateEndsTheStream
check dirty DirtyTrackingReportsEveryWrite
check precopy_info PrecopyInfoInitialBytesNeverGrow
check p2p P2PStatesStartNoDma

sramdev=$(dirname "$plugin")/sramdev.so
if [ -e "$sramdev" ]; then
	check_spec "sramdev,mem=1M" ""
	check_spec "sramdev,mem=1M,bug=nodirty" nodirty PreCopyKeepsRegionWrites
	check_spec "sramdev,mem=1M,bug=noresend" noresend PreCopyKeepsRegionWrites
else
	echo "note: $sramdev not built: its pre-copy controls not run"
fi
exit $status
