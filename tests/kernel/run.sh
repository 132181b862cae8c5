#!/bin/bash
# run.sh BUILD_DIR - uvfio's programs against the real kernel's VFIO: the
# test behind `make test-kernel`.
#
# Contract: Debian's own Linux 6.12 (fetch-kernel.sh, which also keeps its
# vfio, vfio_iommu_type1 and mdev modules) boots under QEMU (TCG) from a
# busybox initramfs with those modules, the kernel's mtty sample built
# for it (build-mtty.sh), and BUILD_DIR's vfio-mig-ctl and
# uvfio-conformance (and tests/parity's uvfio-parity once it is built)
# with their shared libraries. The guest (init.sh) creates two mtty
# devices, A and B, and runs on A, through group and container with plain
# system calls: vfio-mig-ctl info, fsm, save (A, and B before and after),
# load (into B) and conformance (B as the round trips' peer). The test
# passes when, and fails naming the command and showing its output
# unless:
#  - every guest command exits 0, and the guest powers off by itself;
#  - B re-saved after loading A's stream gives A's stream, and B's stream
#    before the load was not already A's (the save moved something);
#  - `vfio-mig-ctl fsm` prints on mtty, line by line, what it prints on a
#    uvfio simnic (the same migration flags: STOP_COPY|P2P|PRE_COPY), the
#    device's name aside;
#  - the suite's JUnit report has at least 12 tests run, none failed and
#    at most 4 skipped;
#  - the guest kernel logs no warning or oops;
#  - with uvfio-parity built: its output in the guest and under uvfio-run
#    on a simnic differ only as tests/parity/compare.sh allows.
# It prints what ran, the JUnit counts and the time of each phase; the
# guest's files (console, JUnit, streams, outputs) stay in
# BUILD_DIR/tests/kernel/results/.
#
# Downloads (once, then cached under BUILD_DIR): the kernel image into
# tests/qemu/cache/ (shared with the QEMU tests), the headers, kbuild and
# mtty.c into tests/kernel/cache/.
#
# Exit: 0 pass, 1 fail, 77 skip (UVFIO_QEMU_SKIP; or no network and
# UVFIO_GUEST_OFFLINE=skip), 2 usage.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
top=$(dirname "$(dirname "$here")")
. "$top/tests/qemu/lib.sh"
[ $# -eq 1 ] || { echo "usage: run.sh BUILD_DIR" >&2; exit 2; }
build=$(cd "$1" && pwd)
qemu_test_init
need_busybox

# Bounds: each guest command, the whole guest, the host's commands.
cmd_timeout=${UVFIO_KERNEL_CMD_TIMEOUT:-240}
guest_timeout=${UVFIO_KERNEL_GUEST_TIMEOUT:-420}
# The mdev type, and the two devices.
mtype=mtty-2
uuid_a=5a0d6a64-7e0c-4c1b-9d6e-0000000000a1
uuid_b=5a0d6a64-7e0c-4c1b-9d6e-0000000000b2

t0=$(date +%s.%N)
tlast=$t0
phases=()
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%6.1f s", b - a }'; }
phase() {	# phase NAME: the time since the last phase
	phases+=("$(printf '%-22s %s' "$1" "$(since "$tlast")")")
	tlast=$(date +%s.%N)
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
results=$build/tests/kernel/results
rm -rf "$results"
mkdir -p "$results"

# ---- the kernel, its modules, mtty.ko ----
guest_kernel "$build/tests/qemu/cache" --modules vfio,vfio_iommu_type1,mdev
kdir=$(dirname "$kernel")
phase "kernel and modules"
if ! mtty=$("$here/build-mtty.sh" "$kdir" "$build/tests/kernel/cache" 2>"$tmp/mtty.err"); then
	cat "$tmp/mtty.err"
	if [ "${UVFIO_GUEST_OFFLINE:-}" = skip ] && grep -q 'apt-get download failed' "$tmp/mtty.err"; then
		echo "SKIP: the kernel headers could not be fetched (UVFIO_GUEST_OFFLINE=skip)"
		exit 77
	fi
	echo "FAIL: mtty.ko could not be built (build-mtty.sh)"
	exit 1
fi
sed 's/^/  /' "$tmp/mtty.err"
echo "mtty: $mtty"
phase "mtty.ko"

# ---- the initramfs ----
programs=("$build/tools/vfio-mig-ctl" "$build/tools/conformance/uvfio-conformance")
for p in "${programs[@]}"; do
	[ -x "$p" ] || { echo "FAIL: $p not built (make build)"; exit 1; }
done
parity=$build/tests/parity/uvfio-parity
if [ -x "$parity" ]; then
	programs+=("$parity")
else
	parity=
fi
poke=$build/tests/kernel/region-poke
if [ ! -x "$poke" ] || [ "$here/region-poke.c" -nt "$poke" ]; then
	mkdir -p "$(dirname "$poke")"
	cc -static -O2 -Wall -Werror -o "$poke" "$here/region-poke.c" ||
		{ echo "FAIL: cannot build $poke"; exit 1; }
fi

stage=$tmp/stage
mkdir -p "$stage/bin" "$stage/lib"
files=()	# SRC DEST pairs for make_initramfs
for m in $(cat "$kdir/modules/load-order"); do
	files+=("$kdir/modules/$m" "lib/modules/$m")
done
{ cat "$kdir/modules/load-order"; echo mtty.ko; } >"$stage/load-order"
files+=("$mtty" lib/modules/mtty.ko "$stage/load-order" lib/modules/load-order)
files+=("$poke" uvfio/bin/region-poke)
declare -A libs
interp=
for p in "${programs[@]}"; do
	strip -o "$stage/bin/${p##*/}" "$p"
	files+=("$stage/bin/${p##*/}" "uvfio/bin/${p##*/}")
	# Its libraries, as the host's loader resolves them (RUNPATH included),
	# into one directory (LD_LIBRARY_PATH in the guest); the loader at
	# the path the program names.
	ldd "$p" >"$tmp/ldd" || { echo "FAIL: ldd $p failed"; exit 1; }
	if grep 'not found' "$tmp/ldd"; then
		echo "FAIL: $p: libraries not found"
		exit 1
	fi
	while read -r name arrow path _; do
		if [ "$arrow" = "=>" ] && [ -f "$path" ]; then
			libs[$name]=$path
		fi
	done <"$tmp/ldd"
	i=$(readelf -l "$p" | sed -n 's/.*program interpreter: \(.*\)]$/\1/p')
	[ -n "$i" ] || { echo "FAIL: $p names no program interpreter"; exit 1; }
	interp=$i
done
for name in "${!libs[@]}"; do
	strip --strip-debug -o "$stage/lib/$name" "${libs[$name]}"
	files+=("$stage/lib/$name" "uvfio/lib/$name")
done
files+=("$(readlink -f "$interp")" "${interp#/}")
make_initramfs "$tmp/initrd.gz" "$here/init.sh" "${files[@]}"
echo "initramfs: $(du -h "$tmp/initrd.gz" | cut -f1), ${#programs[@]} programs, ${#libs[@]} libraries"
phase "initramfs"

# ---- the guest ----
append="console=ttyS0 panic=-1 uvfio.type=$mtype uvfio.a=$uuid_a"
append+=" uvfio.b=$uuid_b uvfio.timeout=$cmd_timeout"
echo "guest: booting (TCG; at most $guest_timeout s)"
qrc=0
timeout -k 10 "$guest_timeout" "$qemu" -accel tcg -cpu max -m 512M -smp 1 \
	-nodefaults -display none -no-reboot -monitor none \
	-serial "file:$results/console.log" -serial "file:$tmp/ttyS1.log" \
	-kernel "$kernel" -initrd "$tmp/initrd.gz" -append "$append" \
	</dev/null >"$tmp/qemu.out" 2>"$tmp/qemu.err" || qrc=$?
phase "guest"

# The guest's items: files (base64), commands and their status.
tr -d '\r' <"$tmp/ttyS1.log" | awk -v dir="$tmp/b64" '
	BEGIN { system("mkdir -p " dir) }
	/^UVFIO-FILE / { f = dir "/" $2; printf "" >f; infile = 1; next }
	/^UVFIO-END / { close(f); infile = 0; next }
	infile { print >f; next }
	/^UVFIO-CMD / { print substr($0, 11) >(dir "/../cmds"); next }
	/^UVFIO-RC / { print $2, $3 >(dir "/../rcs"); next }
	/^UVFIO-DONE/ { print "done" >(dir "/../done") }'
for f in "$tmp"/b64/*; do
	[ -e "$f" ] || continue
	base64 -d <"$f" >"$results/${f##*/}" 2>/dev/null ||
		echo "(undecodable)" >"$results/${f##*/}"
done
touch "$tmp/cmds" "$tmp/rcs"
cp "$tmp/cmds" "$results/commands"

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
show() {	# show FILE: its last lines, indented
	if [ -s "$1" ]; then
		echo "  --- ${1##*/}"
		tail -n "${2:-40}" "$1" | sed 's/^/  /'
	fi
}
cmdline() { sed -n "s/^$1 //p" "$tmp/cmds"; }
status() { sed -n "s/^$1 //p" "$tmp/rcs"; }

[ "$qrc" -eq 0 ] || fail "QEMU exited $qrc$( [ "$qrc" -ne 124 ] || echo " (timed out after $guest_timeout s)")"
if [ "$qrc" -eq 0 ] && [ -s "$tmp/qemu.err" ]; then
	fail "QEMU wrote to stderr"
	show "$tmp/qemu.err"
fi
[ -f "$tmp/done" ] || fail "the guest did not finish (no UVFIO-DONE on ttyS1)"

# Every command: it ran and exited 0.
expected=()
for m in $(cat "$kdir/modules/load-order") mtty.ko; do
	expected+=("insmod-${m%.ko}")
done
expected+=(mdev-types create poke-a1 info fsm save-a save-b0 load-b save-b1
	poke-a2 conformance poke-a3 conformance-peer)
[ -z "$parity" ] || expected+=(parity)
for c in "${expected[@]}"; do
	rc=$(status "$c")
	if [ -z "$rc" ]; then
		if [ -n "$(cmdline "$c")" ]; then
			fail "guest: '$(cmdline "$c")' did not finish"
		else
			fail "guest: $c did not run (the guest stopped before it)"
		fi
	elif [ "$rc" != 0 ]; then
		fail "guest: '$(cmdline "$c")' exited $rc$( [ "$rc" != 137 ] || echo " (killed after $cmd_timeout s)")"
		show "$results/$c.out"
		show "$results/$c.err"
	fi
done

# Save and load moved A's state into B.
if [ "$(status load-b)" = 0 ] && [ "$(status save-b1)" = 0 ]; then
	if ! cmp -s "$results/a.bin" "$results/b1.bin"; then
		fail "B re-saved after loading A's stream differs from A's stream (a.bin, b1.bin)"
	elif cmp -s "$results/a.bin" "$results/b0.bin"; then
		fail "B's stream before the load was already A's: the round trip moved nothing"
	fi
fi

# The FSM matrix: mtty in the guest against a simnic here.
fsm_host=$results/fsm-simnic.out
"$build/tools/vfio-mig-ctl" fsm simnic,bdf=0000:00:02.0,mem=1M >"$fsm_host" 2>&1 ||
	fail "vfio-mig-ctl fsm simnic,bdf=0000:00:02.0,mem=1M exited $? on the host"
fsm_result="not compared"
if [ "$(status fsm)" = 0 ]; then
	# The first line names the device (and its group): not compared.
	norm='1s/^.* (\([a-z0-9_|]*\)): /DEVICE (\1): /'
	if diff -u --label simnic <(sed "$norm" "$fsm_host") \
		--label mtty <(sed "$norm" "$results/fsm.out") \
		>"$results/fsm.diff"; then
		fsm_result="identical ($(wc -l <"$fsm_host") lines)"
	else
		fsm_result="DIFFERENT"
		fail "vfio-mig-ctl fsm prints a different matrix on mtty than on simnic (fsm.diff)"
		show "$results/fsm.diff" 60
	fi
fi

# The suite's report: each test passed, failed or skipped.
junit=$results/junit.xml
junit_result="no report"
if [ -s "$junit" ]; then
	# One line per test: NAME<tab>passed|failed|skipped<tab>why skipped.
	awk '/<testcase / {
		if (n) print n "\t" r "\t" w
		n = $0; sub(/.*<testcase name="/, "", n); sub(/[/"].*/, "", n)
		r = /result="skipped"/ ? "skipped" : "passed"; w = ""
	}
	/<skipped message="/ {
		w = $0; sub(/.*<skipped message="/, "", w); sub(/".*/, "", w)
		sub(/.*&#x0A;/, "", w); gsub(/&apos;/, "\047", w)
	}
	/<failure/ { r = "failed" }
	END { if (n) print n "\t" r "\t" w }' "$junit" >"$results/junit.tests"
	tests=$(wc -l <"$results/junit.tests")
	failed=$(cut -f2 "$results/junit.tests" | grep -c '^failed$' || true)
	skipped=$(cut -f2 "$results/junit.tests" | grep -c '^skipped$' || true)
	ran=$((tests - skipped))
	junit_result="$tests tests: $ran run, $((ran - failed)) passed, $failed failed, $skipped skipped"
	[ "$ran" -ge 12 ] || fail "the suite ran $ran tests on mtty, fewer than 12"
	[ "$failed" -eq 0 ] || fail "$failed of the suite's tests failed on mtty: $(awk -F'\t' '$2 == "failed" { printf "%s ", $1 }' "$results/junit.tests")"
	[ "$skipped" -le 4 ] || fail "the suite skipped $skipped tests on mtty, more than 4"
	# The round trip moved something (A was poked after B got its state).
	if grep -q 'name="peer_state_before_load" value="already' "$junit"; then
		fail "the suite's round trip found B already in A's state: it proved nothing"
	fi
else
	fail "no JUnit report from the guest"
fi

# The kernel complained (a WARN_ON, an oops) while the programs ran.
if grep -E 'WARNING: CPU|BUG:|Oops:|Call Trace:' "$results/console.log" >"$tmp/warn"; then
	fail "the guest kernel logged a warning or an oops (console.log)"
	show "$tmp/warn"
fi

# The differential check, once tests/parity exists.
parity_result="skipped: $build/tests/parity/uvfio-parity is not built (tests/parity/ not there yet)"
if [ -n "$parity" ] && [ ! -x "$top/tests/parity/compare.sh" ]; then
	parity_result="not compared"
	fail "$build/tests/parity/uvfio-parity is built, but there is no tests/parity/compare.sh"
elif [ -n "$parity" ]; then
	if [ "$(status parity)" = 0 ]; then
		if timeout 120 "$build/tools/uvfio-run/uvfio-run" \
			--device simnic,bdf=0000:00:02.0,mem=1M -- "$parity" \
			/sys/bus/pci/devices/0000:00:02.0 >"$results/parity-simnic.out" \
			2>"$results/parity-simnic.err"; then
			if "$top/tests/parity/compare.sh" "$results/parity-simnic.out" \
				"$results/parity.out" >"$results/parity-compare.out" 2>&1; then
				parity_result="$(wc -l <"$results/parity.out") results, no difference beyond Documentation/kernel-parity.md"
			else
				parity_result="DIFFERENT"
				fail "tests/parity/compare.sh: uvfio (simnic) and the kernel (mtty) differ"
				show "$results/parity-compare.out" 60
			fi
		else
			parity_result="host run failed"
			fail "uvfio-parity under uvfio-run on a simnic exited $?"
			show "$results/parity-simnic.err"
		fi
	else
		parity_result="guest run failed"
	fi
else
	echo "NOTE: the parity step is skipped: $build/tests/parity/uvfio-parity is not built"
fi
phase "checks"

if [ $fails -ne 0 ] || [ ! -f "$tmp/done" ]; then
	echo "--- guest console (last 40 lines; all of it in $results/console.log)"
	tail -n 40 "$results/console.log" | sed 's/^/  /'
fi

echo
echo "== make test-kernel: uvfio's programs on Linux $(cat "$kdir/release") ($(cat "$kdir/version")), mtty ($mtype)"
echo "commands run in the guest:"
while read -r c args; do
	printf '  %-4s %s\n' "$(status "$c")" "$args"
done <"$tmp/cmds"
echo "conformance (JUnit): $junit_result"
if [ -s "$results/junit.tests" ]; then
	awk -F'\t' '$2 != "passed" { print "  " $2 ": " $1 ($3 == "" ? "" : " (" $3 ")") }' \
		"$results/junit.tests"
fi
echo "fsm, mtty vs simnic: $fsm_result"
echo "parity: $parity_result"
echo "time:"
for p in "${phases[@]}"; do echo "  $p"; done
printf '  %-22s %s\n' total "$(since "$t0")"
echo "results: $results"
if [ $fails -ne 0 ]; then
	echo "FAIL: $fails check(s) failed"
	exit 1
fi
echo "PASS"
