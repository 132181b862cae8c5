#!/bin/sh
# Contract: the conformance suite can fail, and fails precisely. The
# brokennic plugin (simnic with bug=NAME) has one known defect per name;
# each run must fail exactly the tests listed for it, no more, no fewer;
# with no defect every test passes.
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

check() { # BUG EXPECTED_TESTS...
	bug=$1
	shift
	spec="brokennic,mem=2M${bug:+,bug=$bug}"
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
check dirty DirtyLoggingReportsEveryWrite
check precopy_info PrecopyInfoInitialBytesNeverGrow
exit $status
