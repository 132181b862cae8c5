#!/bin/bash
# uvfio-run-cli.sh UVFIO_RUN - uvfio-run's command line: bad input, exit
# status.
#
# Contract:
#  - bad input ends uvfio-run before COMMAND runs, with a non-zero exit and
#    exactly one line on stderr that names the problem: an unknown driver
#    in a spec, a BDF given to two --device, no COMMAND (with or without
#    --device), an unknown option;
#  - a COMMAND that does not exist: exit 127 and one line naming it, as
#    env(1) does;
#  - otherwise the exit status is COMMAND's (with or without "--"), and
#    uvfio-run adds nothing on stderr; --help prints the usage, exit 0.
#
# Environment: UVFIO_QEMU_SKIP=REASON (sanitizer builds): the cases that
# run a COMMAND under the preload are skipped (a sanitized preload cannot
# be loaded into an unsanitized program); the bad-input cases still run.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: uvfio-run-cli.sh UVFIO_RUN" >&2; exit 2; }
run=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
dev=simnic,bdf=0000:00:02.0,mem=1M

# bad WANT_IN_MESSAGE ARGS...: uvfio-run ARGS must fail before the command
# (touch $tmp/ran) runs, with one stderr line containing WANT_IN_MESSAGE.
bad() {
	local want=$1 rc=0
	shift
	rm -f "$tmp/ran"
	timeout 60 "$run" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
	local what="uvfio-run $*"
	[ $rc -ne 0 ] || fail "$what: exit 0"
	[ $rc -ne 124 ] || fail "$what: timed out"
	[ ! -e "$tmp/ran" ] || fail "$what: the command ran"
	[ "$(wc -l <"$tmp/err")" -eq 1 ] ||
		fail "$what: want one line on stderr, got $(wc -l <"$tmp/err")"
	grep -qiF -- "$want" "$tmp/err" || fail "$what: stderr does not name '$want'"
	echo "uvfio-run $* -> exit $rc: $(head -n 3 "$tmp/err")"
}

bad nosuchdrv --device nosuchdrv,bdf=0000:00:02.0 -- touch "$tmp/ran"
bad 0000:00:02.0 --device "$dev" --device simnic,bdf=0000:00:02.0 -- touch "$tmp/ran"
bad 00:02.0 --device "$dev" --device simmin,bdf=00:02.0 -- touch "$tmp/ran"
bad command
bad command --device "$dev"
bad command --device "$dev" --
bad --no-such-option --no-such-option -- touch "$tmp/ran"

# A command that does not exist: 127, as env(1).
for cmd in uvfio-no-such-command "$tmp/no/such/file"; do
	rc=0
	timeout 60 "$run" --device "$dev" -- "$cmd" arg >"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
	[ $rc -eq 127 ] || fail "uvfio-run -- $cmd: exit $rc, want 127"
	[ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -qF -- "$cmd" "$tmp/err" ||
		fail "uvfio-run -- $cmd: want one stderr line naming it, got: $(cat "$tmp/err")"
	echo "uvfio-run -- $cmd -> exit $rc: $(head -n 3 "$tmp/err")"
done

rc=0
"$run" --help >"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
[ $rc -eq 0 ] || fail "uvfio-run --help: exit $rc"
grep -q 'uvfio-run' "$tmp/out" && grep -q -- '--device' "$tmp/out" ||
	fail "uvfio-run --help: no usage on stdout"

if [ -n "${UVFIO_QEMU_SKIP:-}" ]; then
	echo "skipped the cases that run a command under the preload: $UVFIO_QEMU_SKIP"
else
	# ok WANT_RC ARGS...: uvfio-run ARGS exits WANT_RC, stderr empty.
	ok() {
		local want=$1 rc=0
		shift
		timeout 60 "$run" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
		[ $rc -eq "$want" ] || fail "uvfio-run $*: exit $rc, want $want"
		[ ! -s "$tmp/err" ] || fail "uvfio-run $*: stderr: $(cat "$tmp/err")"
	}
	ok 3 --device "$dev" -- sh -c 'exit 3'
	ok 5 --device "$dev" sh -c 'exit 5'
	ok 0 --device "$dev" --device simmin,bdf=0000:00:03.0,mem=1M -- true
	ok 0 -- true
	ok 0 true
	ok 1 --device "$dev" -- false
fi

[ $fails -eq 0 ] || exit 1
echo "PASS"
