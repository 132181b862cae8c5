#!/bin/sh
# What uvfio-run costs, as ratios to the same work measured in the same run
# (min/median/max of RUNS interleaved runs):
# - a program that never touches /dev/vfio (dd with 1-byte reads and
#   writes: 2 system calls per byte) under uvfio-run / run plainly;
# - a 4-byte BAR0 pread(2) through the preload / uvfio_pread on the
#   syscall surface.
#
# usage: bench_preload.sh UVFIO_RUN BENCH_PRELOAD BENCH_PRELOAD_UVFIO [RUNS]
set -eu
run=$1
plain=$2
surface=$3
runs=${4:-5}
bdf=0000:00:02.0
spec="simnic,bdf=$bdf,mem=1M"

secs() {
	s=$(date +%s.%N)
	"$@" >/dev/null 2>&1
	awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'
}

# min median max of the numbers on stdin
stats() {
	sort -g | awk '{ v[NR] = $1 } END {
		printf "min %.2f  median %.2f  max %.2f\n", v[1],
			v[int((NR + 1) / 2)], v[NR] }'
}

: >/tmp/uvfio-bench-untouched.$$
: >/tmp/uvfio-bench-pread.$$
trap 'rm -f /tmp/uvfio-bench-untouched.$$ /tmp/uvfio-bench-pread.$$' EXIT
i=0
while [ "$i" -lt "$runs" ]; do
	a=$(secs dd if=/dev/zero of=/dev/null bs=1 count=1M)
	b=$(secs "$run" --device "$spec" -- dd if=/dev/zero of=/dev/null bs=1 count=1M)
	awk -v a="$a" -v b="$b" 'BEGIN { print b / a }' >>/tmp/uvfio-bench-untouched.$$
	p=$("$run" --device "$spec" -- "$plain" "$bdf" 200000)
	s=$("$surface" "$bdf" 200000 "$spec")
	awk -v a="$s" -v b="$p" 'BEGIN { print b / a }' >>/tmp/uvfio-bench-pread.$$
	echo "run $((i + 1)): dd ${a}s plain, ${b}s under uvfio-run; pread ${p} ns preload, ${s} ns uvfio_pread"
	i=$((i + 1))
done
echo "untouched program under uvfio-run / plain:  $(stats </tmp/uvfio-bench-untouched.$$)"
echo "pread(2) via preload / uvfio_pread:          $(stats </tmp/uvfio-bench-pread.$$)"
