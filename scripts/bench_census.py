#!/usr/bin/env python3
"""The census benchmark (issue 12): `gomap maps` on a core of fixtures/census_bench (a heap of over
500 MB holding over 200k maps: sessions in structs, maps in slices, maps of maps), per toolchain.
Prints wall time and gomap's peak RSS (GNU time), and checks every map is found. Not part of the
test suite. Usage: scripts/bench_census.py [TAG ...]   (default: go1.23 go1.26)"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import fixturelib as F  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOMAP = os.path.join(REPO, "target", "release", "gomap")


def run(tag, runs=3):
    prog = F.program_core("census_bench", tag, timeout=900)
    truth = prog["truth_doc"]
    target = ["--binary", prog["binary"], "--core", prog["core"]]
    best, cpu, rss, out = None, None, 0, ""
    for _ in range(runs):
        t0 = time.monotonic()
        p = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", GOMAP, "maps", *target, "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True)
        dt = time.monotonic() - t0
        if p.returncode != 0:
            sys.exit("%s: gomap failed: %s" % (tag, p.stderr[-2000:]))
        user, sys_, kb = p.stderr.strip().splitlines()[-1].split()
        best = dt if best is None else min(best, dt)
        c = float(user) + float(sys_)
        cpu = c if cpu is None else min(cpu, c)
        rss = max(rss, int(kb))
        out = p.stdout
    rows = json.loads(out)
    mine = sum(1 for r in rows if r["name"].startswith(("main.sessions", "main.shards", "main.groups")))
    size = os.path.getsize(prog["core"])
    print("%-8s heap in use %4d MiB  core %4d MiB  maps %d (program made %d, found %d of them)  census %.2f s wall, "
          "%.2f s CPU  peak RSS %d MiB" % (tag, truth["heap_inuse"] >> 20, size >> 20, len(rows), truth["maps"], mine,
                                           best, cpu, rss >> 10))
    return mine == truth["maps"]


if __name__ == "__main__":
    tags = sys.argv[1:] or ["go1.23", "go1.26"]
    ok = all([run(t) for t in tags])
    sys.exit(0 if ok else 1)
