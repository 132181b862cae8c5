#!/bin/sh
# bench_stream.sh: the issue's figure for the migration data path. RUNS
# separate processes of `uvfio-bench-stream --engine io_uring --runs 1`,
# each migrating a 1 GiB simnic into a fresh destination (created for that
# run, never resumed into), timed from the source's SET to STOP_COPY to the
# end of the destination's RESUMING -> STOP. Each process measures its own
# references in the same run: a memcpy of the same bytes and the same bytes
# through a bare AF_UNIX socketpair, thread to thread. Prints min, median
# and max of each ratio. Targets: median >= 0.5x memcpy and >= 0.8x
# socketpair.
#
# usage: bench_stream.sh PATH_TO_UVFIO_BENCH_STREAM [RUNS] [ARGS...]
set -eu
bin=$1
runs=${2:-3}
[ $# -ge 2 ] && shift 2 || shift $#
exec python3 - "$bin" "$runs" "$@" <<'PY'
import re, statistics, subprocess, sys

bin, runs, extra = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
mem, sock, gbs, bound = [], [], [], []
for r in range(runs):
    p = subprocess.run([bin, "--engine", "io_uring", "--runs", "1", *extra],
                       capture_output=True, text=True)
    out = p.stdout
    m = re.search(r"io_uring engine\s+([\d.]+) GB/s\s+\(([\d.]+)x memcpy.*?"
                  r"([\d.]+)x socketpair", out)
    if p.returncode or not m or "destination equal  yes" not in out:
        sys.stderr.write(out + p.stderr)
        sys.exit("bench_stream: run %d failed" % (r + 1))
    b = re.search(r"bound on 2 CPUs\s+([\d.]+)x memcpy", out)
    if b:
        bound.append(float(b.group(1)))
    gbs.append(float(m.group(1)))
    mem.append(float(m.group(2)))
    sock.append(float(m.group(3)))

def line(name, v, target):
    print("%-28s min %.2f  median %.2f  max %.2f  (target median >= %s)"
          % (name, min(v), statistics.median(v), max(v), target))

print("io_uring stream, 1 GiB simnic into a fresh destination, %d processes"
      % runs)
line("GB/s", gbs, "-")
line("ratio to memcpy", mem, "0.5")
line("ratio to bare socketpair", sock, "0.8")
if bound:
    print("%-28s min %.2f  median %.2f  max %.2f  (the stream's upper bound:"
          " the destination's one copy and the source's hash, in parallel,"
          " nothing else)" % ("bound, ratio to memcpy", min(bound),
                              statistics.median(bound), max(bound)))
PY
