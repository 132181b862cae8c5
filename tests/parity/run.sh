#!/bin/sh
# Contract: uvfio-parity runs on a simulated device under uvfio-run as it
# runs on a kernel device (plain system calls): every unit runs to its end
# (no "._run", "._open", "._setup" or "._cleanup" line), every line is
# "ID: result" with a unique dotted ID, two runs print the same text, and
# compared with the kernel's expected output (kernel-6.12.expected,
# derived from the Linux 6.12 source) every difference is listed in
# Documentation/kernel-parity.md with the results it gives there. The
# comparison can fail: an unlisted difference and a stale row each fail
# it. A device without DMA logging ops gets ENOTTY from the core for every
# logging feature. A device that does not open is exit 1, a malformed
# name exit 2.
#
# usage: run.sh UVFIO_RUN UVFIO_PARITY COMPARE_SH EXPECTED DOC
set -u
run=$1
parity=$2
compare=$3
expected=$4
doc=$5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
# A sanitizer build's runtime is in the program; the preload goes first.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

B=0000:00:02.0
S="simnic,bdf=$B,mem=1M"
P=/sys/bus/pci/devices/$B

for i in 1 2; do
	"$run" --device "$S" -- "$parity" "$P" >"$tmp/out$i" 2>"$tmp/err$i"
	rc=$?
	[ "$rc" -eq 0 ] || { fail "run $i exited $rc"; cat "$tmp/err$i"; }
done

n=$(wc -l <"$tmp/out1")
echo "uvfio-parity: $n checks"
[ "$n" -ge 300 ] || fail "only $n lines"
bad=$(grep -cvE '^[A-Za-z0-9_.>-]+: [^ ].*$' "$tmp/out1")
[ "$bad" -eq 0 ] || { fail "$bad malformed lines"; grep -vE '^[A-Za-z0-9_.>-]+: [^ ].*$' "$tmp/out1"; }
dups=$(cut -d: -f1 "$tmp/out1" | sort | uniq -d)
[ -z "$dups" ] || fail "IDs printed twice: $dups"
if grep -E '^[^:]*\._(run|open|setup|cleanup): ' "$tmp/out1"; then
	fail "a unit did not run cleanly"
fi
diff -u "$tmp/out1" "$tmp/out2" >"$tmp/diff" ||
	{ fail "two runs differ"; cat "$tmp/diff"; }
for id in feature.argsz_short 'fsm.RUNNING->RESUMING' 'fsm.STOP_COPY->PRE_COPY' \
	datafd.stop_copy.end group.set_container.twice type1.map.same \
	logging.start.overlap; do
	grep -q "^$id: " "$tmp/out1" || fail "no $id"
done

# Against the kernel's expected output, through the document.
"$compare" "$tmp/out1" "$expected" "$doc" >"$tmp/cmp" ||
	{ fail "differences the document does not list"; }
cat "$tmp/cmp"

# The comparison fails where it must: an unlisted difference, a stale row.
sed 's/^feature\.argsz_short: .*/feature.argsz_short: ENOTTY/' "$expected" >"$tmp/unlisted"
"$compare" "$tmp/out1" "$tmp/unlisted" "$doc" >"$tmp/cmp2"
[ $? -eq 1 ] && grep -q '^UNLISTED  feature.argsz_short: ' "$tmp/cmp2" ||
	fail "an unlisted difference passed"
sed 's/^type1\.map\.vaddr_no_access: .*/type1.map.vaddr_no_access: EPERM/' "$expected" >"$tmp/stale"
"$compare" "$tmp/out1" "$tmp/stale" "$doc" >"$tmp/cmp3"
[ $? -eq 1 ] && grep -q '^STALE     type1.map.vaddr_no_access ' "$tmp/cmp3" ||
	fail "a stale row passed"
grep -v '^fsm\.STOP->RUNNING: ' "$tmp/out1" >"$tmp/missing"
"$compare" "$tmp/missing" "$expected" "$doc" >"$tmp/cmp4"
[ $? -eq 1 ] && grep -q '^UNLISTED  fsm.STOP->RUNNING: uvfio: (absent)' "$tmp/cmp4" ||
	fail "a check on one side only passed"

# No DMA logging ops: the core says ENOTTY before looking at anything else
# but the header.
"$run" --device "simmin,bdf=$B,mem=1M" -- "$parity" --unit logging "$P" >"$tmp/nolog" 2>&1 ||
	fail "logging unit on simmin"
grep -q '^logging.log_ops: no$' "$tmp/nolog" || fail "simmin has no log_ops"
if grep -E '^logging\.no_log_ops\.' "$tmp/nolog" | grep -vE '\.argsz_short: EINVAL$' |
	grep -v ': ENOTTY$'; then
	fail "a logging feature without log_ops did not give ENOTTY"
fi

# Exit status: a device that is not there, a malformed name.
"$run" --device "$S" -- "$parity" /sys/bus/pci/devices/0000:00:09.0 >/dev/null 2>"$tmp/err"
[ $? -eq 1 ] || fail "a missing device is not exit 1"
"$parity" /tmp >/dev/null 2>&1
[ $? -eq 2 ] || fail "a malformed name is not exit 2"

[ "$fails" -eq 0 ] || { echo "$fails failures"; exit 1; }
echo "PASS"
