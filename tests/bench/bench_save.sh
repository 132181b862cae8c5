#!/bin/sh
# bench_save.sh: what vfio-mig-ctl save costs beyond the device it saves,
# and whether its time per GiB holds as the device grows: a testdev of
# 1 GiB and of 4 GiB (stop-copy only, all of it device memory), saved to a
# pipe (-o -, read by cat into /dev/null) and to a regular file (-o FILE,
# a temporary file fsync'd and renamed), RUNS times each; min/median/max.
#
# What is measured, sampled every 5 ms from /proc/PID while save runs:
#  - anon: peak RssAnon, the save's own memory (buffers, pipes' user side);
#  - memfd: peak total size of the memfds the process holds, less the
#    device's memory. A stream kept in a memfd (as save did before it
#    streamed) is here and not in RSS: a memfd's pages are in RSS only
#    where mapped;
#  - hwm-dev: ru_maxrss less the device's memory. ru_maxrss counts the
#    device's BAR pages once save has touched them (shmem, mapped: the
#    device's memory, allocated at creation, not save's), plus code and
#    anon memory;
#  - s/GiB: the save's own seconds (its report; device creation and
#    teardown, an fallocate and a munmap of the whole BAR, excluded) per
#    GiB of stream, and the 4 GiB case's median over the 1 GiB case's.
# Targets: anon and memfd at most 64 MiB; the 4 GiB s/GiB within 1.2x.
#
# usage: bench_save.sh PATH_TO_VFIO_MIG_CTL [RUNS] (SIZES="1G 4G")
set -eu
ctl=$1
runs=${2:-3}
sizes=${SIZES:-1G 4G}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-save.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

exec python3 - "$ctl" "$runs" "$tmp" $sizes <<'EOF'
import json, os, re, statistics, subprocess, sys, time

ctl, runs, tmp, sizes = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
MiB = 1 << 20

def size_bytes(s):
    return int(s[:-1]) << {"K": 10, "M": 20, "G": 30}[s[-1]]

def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("RssAnon", "RssShmem"):
                out[k] = int(v.split()[0]) * 1024
    return out

def memfd_bytes(pid):
    total = 0
    d = f"/proc/{pid}/fd"
    for fd in os.listdir(d):
        try:
            if os.readlink(f"{d}/{fd}").startswith("/memfd:"):
                total += os.stat(f"{d}/{fd}").st_size
        except OSError:
            pass
    return total

def one(size, sink):
    dev = size_bytes(size)
    spec = f"testdev,bdf=00:02.0,mig=stop_copy,mem={size}"
    out = os.path.join(tmp, "state.bin")
    args = [ctl, "save", spec, "-o", "-" if sink == "pipe" else out, "--json"]
    if sink == "pipe":
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        cat = subprocess.Popen(["cat"], stdin=p.stdout, stdout=subprocess.DEVNULL)
        p.stdout.close()
    else:
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        cat = None
    anon = memfd = 0
    while p.poll() is None:
        try:
            st = status(p.pid)
            anon = max(anon, st.get("RssAnon", 0))
            memfd = max(memfd, memfd_bytes(p.pid))
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    rc = p.returncode
    rep_text = p.stdout.read() if sink == "file" else p.stderr.read()
    if cat:
        cat.wait()
    if rc != 0:
        sys.exit(f"bench_save: save {spec} -> {sink} failed: {p.stderr.read()}")
    rep = json.loads(rep_text)
    if os.path.exists(out):
        os.unlink(out)
    return {"anon": anon, "memfd": max(0, memfd - dev), "secs": rep["seconds"],
            "gib": rep["bytes"] / (1 << 30)}

def maxrss_run(size, sink):
    # ru_maxrss of one more run, alone in a fresh child: RUSAGE_CHILDREN
    # is the maximum over all children, so measure it from a child.
    dev = size_bytes(size)
    spec = f"testdev,bdf=00:02.0,mig=stop_copy,mem={size}"
    code = ("import resource,subprocess,sys;"
            "subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,"
            "stderr=subprocess.DEVNULL,check=True);"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    dst = "/dev/null" if sink == "pipe" else os.path.join(tmp, "state.bin")
    kb = int(subprocess.run([sys.executable, "-c", code, ctl, "save", spec,
                             "-o", dst], capture_output=True, text=True,
                            check=True).stdout)
    if os.path.exists(dst) and sink == "file":
        os.unlink(dst)
    return kb * 1024 - dev

def mmm(v, scale=1.0, fmt="{:.1f}"):
    v = sorted(x * scale for x in v)
    return "/".join(fmt.format(x) for x in (v[0], statistics.median(v), v[-1]))

print(f"vfio-mig-ctl save, testdev (stop-copy), {runs} runs, min/median/max")
print(f"{'size':>5} {'sink':>5} {'anon MiB':>16} {'memfd MiB':>16} "
      f"{'hwm-dev MiB':>12} {'s/GiB':>18}")
per_gib = {}
worst = 0
for sink in ("pipe", "file"):
    for size in sizes:
        r = [one(size, sink) for _ in range(runs)]
        hwm = maxrss_run(size, sink)
        spg = [x["secs"] / x["gib"] for x in r]
        per_gib[(size, sink)] = statistics.median(spg)
        worst = max(worst, max(x["anon"] for x in r), max(x["memfd"] for x in r))
        print(f"{size:>5} {sink:>5} {mmm([x['anon'] for x in r], 1 / MiB):>16} "
              f"{mmm([x['memfd'] for x in r], 1 / MiB):>16} "
              f"{hwm / MiB:>12.1f} {mmm(spg, 1, '{:.3f}'):>18}")
ok = worst <= 64 * MiB
for sink in ("pipe", "file"):
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        ratio = per_gib[(hi, sink)] / per_gib[(lo, sink)]
        ok = ok and ratio <= 1.2
        print(f"{sink}: s/GiB at {hi} / at {lo} (medians): {ratio:.2f} "
              f"(target <= 1.2)")
print(f"peak anon or memfd beyond the device: {worst / MiB:.1f} MiB "
      f"(target <= 64)")
print("bench_save: " + ("within targets" if ok else "OUTSIDE TARGETS"))
EOF
