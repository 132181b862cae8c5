#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""
layering.py: fail on an #include that crosses the layers the wrong way.

The layers and what each may include (Documentation/architecture.md,
"Layers"):

    uapi/       the ABI                      -> uapi
    core/       the kernel side              -> core, uapi
    sim/        the simulated hardware       -> sim
    drivers/    variant drivers              -> drivers, the driver API
                                                (core/include), sim, uapi
    tools/      userspace                    -> tools, uapi
    tests/, Documentation/                   -> anything

One file is its own layer: the simulated device's register map
(sim/include/uvfio/sim/simdev_regs.h, C), the hardware's programming
interface, as a datasheet is. The device, its drivers and userspace that
programs it (the guest-side workload) include it.

Each #include is resolved to the file in the tree that provides it: a
quoted name next to the including file first, then in every include/
directory of the tree, then in the core's private directories; a name the
tree does not provide is a system header and allowed. The layer is the
provider's: core/include/ is the driver API ("core-api"), the rest of
core/ is core-private, which nothing outside core/ may include.

usage: layering.py SOURCE_ROOT       check the tree; exit 1 on a violation
       layering.py --self-test       check that a planted violation fails
"""
import os
import re
import sys
import tempfile

SOURCE_EXT = (".c", ".cc", ".cpp", ".h", ".hpp")
SKIP_DIRS = {".git", "subprojects"}
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')

REGS = os.path.join("sim", "include", "uvfio", "sim", "simdev_regs.h")

ALLOWED = {
    "uapi": {"uapi"},
    "core-api": {"core-api", "core-private", "uapi"},
    "core-private": {"core-api", "core-private", "uapi"},
    "sim": {"sim", "regs"},
    "drivers": {"drivers", "core-api", "sim", "regs", "uapi"},
    "tools": {"tools", "regs", "uapi"},
    "regs": set(),
}


def layer_of(rel):
    """The layer of a tree-relative path, or None (free: tests, docs)."""
    if rel == REGS:
        return "regs"
    parts = rel.split(os.sep)
    top = parts[0]
    if top == "core":
        return "core-api" if len(parts) > 1 and parts[1] == "include" \
            else "core-private"
    if top in ("uapi", "sim", "drivers", "tools"):
        return top
    return None


def is_build_dir(root, name):
    return name.startswith("build") or \
        os.path.exists(os.path.join(root, name, "meson-private"))


def source_files(top):
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs
                         if d not in SKIP_DIRS and not is_build_dir(root, d))
        for f in sorted(files):
            if f.endswith(SOURCE_EXT):
                yield os.path.join(root, f)


def search_dirs(top):
    """include/ directories anywhere, then core's private directories."""
    inc, private = [], []
    for root, dirs, _ in os.walk(top):
        dirs[:] = sorted(d for d in dirs
                         if d not in SKIP_DIRS and not is_build_dir(root, d))
        rel = os.path.relpath(root, top)
        if os.path.basename(root) == "include":
            inc.append(root)
            dirs[:] = []    # headers below are reached through it
        elif rel == "core" or (rel.startswith("core" + os.sep) and
                               "include" not in rel.split(os.sep)):
            private.append(root)
    return inc + private


def resolve(top, dirs, including, quote, name):
    if quote == '"':
        p = os.path.join(os.path.dirname(including), name)
        if os.path.isfile(p):
            return p
    for d in dirs:
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return p
    return None


def check(top):
    top = os.path.abspath(top)
    dirs = search_dirs(top)
    bad = []
    nfiles = 0
    for path in source_files(top):
        rel = os.path.relpath(path, top)
        layer = layer_of(rel)
        if layer is None:
            continue
        nfiles += 1
        with open(path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                m = INCLUDE_RE.match(line)
                if not m:
                    continue
                target = resolve(top, dirs, path, m.group(1), m.group(2))
                if target is None:
                    continue    # a system header
                tlayer = layer_of(os.path.relpath(target, top))
                if tlayer not in ALLOWED[layer]:
                    bad.append("%s:%d: %s (%s) includes %s (%s)" % (
                        rel, lineno, m.group(2), layer,
                        os.path.relpath(target, top), tlayer or "tests"))
    return nfiles, bad


def self_test():
    """A tree with one allowed and one forbidden include of each kind."""
    cases = {
        "sim/a.cc": ('#include <uvfio/linux/types.h>\n', True),
        "sim/b.cc": ('#include <uvfio/sim/x.h>\n#include <cstdint>\n', False),
        "tools/a.cc": ('#include "../tests/t.h"\n', True),
        "tools/b.cc": ('#include <uvfio/linux/types.h>\n', True),
        "tools/c.cc": ('#include <uvfio/uvfio.h>\n', False),
        "drivers/a.cc": ('#include "vfio.h"\n', True),  # core-private
        "drivers/b.cc": ('#include <uvfio/linux/types.h>\n'
                         '#include <uvfio/sim/x.h>\n', False),
        "core/a.cc": ('#include <uvfio/sim/x.h>\n', True),
        "core/b.cc": ('#include "vfio.h"\n#include <uvfio/uvfio.h>\n', False),
        "core/c.cc": ('#include <uvfio/sim/simdev_regs.h>\n', True),
        "tools/d.cc": ('#include <uvfio/sim/simdev_regs.h>\n', False),
    }
    headers = ["core/include/uvfio/linux/types.h", "core/vfio.h",
               "sim/include/uvfio/sim/x.h", "uapi/include/uvfio/uvfio.h",
               REGS,
               "tests/t.h"]
    ok = True
    for name, (text, must_fail) in cases.items():
        with tempfile.TemporaryDirectory() as top:
            for h in headers:
                os.makedirs(os.path.join(top, os.path.dirname(h)),
                            exist_ok=True)
                open(os.path.join(top, h), "w").close()
            p = os.path.join(top, name)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(text)
            _, bad = check(top)
            bad = [b for b in bad if b.startswith(name)]
            if bool(bad) != must_fail:
                print("self-test: %s: %s" % (
                    name, "not caught" if must_fail else "; ".join(bad)))
                ok = False
    print("self-test: %s" % ("passed" if ok else "FAILED"))
    return 0 if ok else 1


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    nfiles, bad = check(argv[1])
    for b in bad:
        print(b)
    print("layering: %d files checked, %d forbidden include%s" % (
        nfiles, len(bad), "" if len(bad) == 1 else "s"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
