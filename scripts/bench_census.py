#!/usr/bin/env python3
"""The census benchmark (issue 12): `gomap maps` on a core of fixtures/census_bench (a heap of over
500 MB holding over 200k maps: sessions in structs, maps in slices, maps of maps), per toolchain.
Prints wall time, CPU time and gomap's peak RSS (GNU time), and checks every map is found. Not part of
the test suite.

With a Delve binary (GOMAP_DLV=/path/to/dlv or --dlv PATH), the same core is opened by Delve in
headless mode (JSON-RPC) and timed side by side, as CPU time of the dlv process:
  - startup: `dlv core` loading the binary and the core, until its API server answers;
  - ListPackageVars("^main\\.") with the maps' lengths (what Delve can do without a census: it
    reaches the package variables only);
  - `len(PATH)` evaluated through Delve for a sample of the maps gomap's census found (every
    --dlv-every'th row, evenly spread), the time per map extrapolated to all of them, and each length
    compared with gomap's.
Delve runs with --check-go-version=false (recent Delve refuses older Go by default). Delve is not
built or fetched here; without it the comparison prints "not available".

Usage: scripts/bench_census.py [--dlv PATH] [--dlv-every N] [TAG ...]   (default: go1.23 go1.26)"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import fixturelib as F  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOMAP = os.path.join(REPO, "target", "release", "gomap")
TICK = os.sysconf("SC_CLK_TCK")


def census(prog, runs=3):
    """Best wall and CPU time and the peak RSS of `gomap maps --json` over `runs` runs, and its rows."""
    target = ["--binary", prog["binary"], "--core", prog["core"]]
    best, cpu, rss, out = None, None, 0, ""
    for _ in range(runs):
        t0 = time.monotonic()
        p = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", GOMAP, "maps", *target, "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True)
        dt = time.monotonic() - t0
        if p.returncode != 0:
            sys.exit("gomap failed: %s" % p.stderr[-2000:])
        user, sys_, kb = p.stderr.strip().splitlines()[-1].split()
        best = dt if best is None else min(best, dt)
        c = float(user) + float(sys_)
        cpu = c if cpu is None else min(cpu, c)
        rss = max(rss, int(kb))
        out = p.stdout
    return best, cpu, rss, json.loads(out)


class Dlv:
    """A headless `dlv core` and a JSON-RPC (API v2) connection to it."""

    def __init__(self, dlv, binary, core):
        self.p = subprocess.Popen([dlv, "core", binary, core, "--headless", "--api-version=2", "--listen=127.0.0.1:0",
                                   # Delve 1.27 refuses Go < 1.25 by default; the census core is go1.23 too
                                   "--check-go-version=false"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        addr = None
        deadline = time.monotonic() + 600
        for line in self.p.stdout:
            m = re.search(r"listening at: ([0-9.]+):(\d+)", line)
            if m:
                addr = (m.group(1), int(m.group(2)))
                break
            if time.monotonic() > deadline:
                break
        if addr is None:
            self.close()
            raise RuntimeError("dlv did not start")
        self.sock = socket.create_connection(addr, timeout=600)
        self.f = self.sock.makefile("rwb")
        self.id = 0
        self.call("GetVersion", {})  # the server answers once the core is loaded

    def call(self, method, arg):
        self.id += 1
        self.f.write(json.dumps({"method": "RPCServer." + method, "params": [arg], "id": self.id}).encode() + b"\n")
        self.f.flush()
        line = self.f.readline()
        if not line:
            raise RuntimeError("dlv closed the connection")
        r = json.loads(line)
        if r.get("error"):
            raise RuntimeError("%s: %s" % (method, r["error"]))
        return r["result"]

    def cpu(self):
        """User + system CPU seconds of the dlv process so far."""
        with open("/proc/%d/stat" % self.p.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def peak_rss_mib(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) >> 10
        return 0

    def close(self):
        try:
            self.call("Detach", {"Kill": False})
        except Exception:
            pass
        self.p.terminate()
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def delve(dlv, prog, rows, every):
    """Delve on the same core: startup, package variables, len() of sampled census paths."""
    cfg = {"FollowPointers": True, "MaxVariableRecurse": 1, "MaxStringLen": 64, "MaxArrayValues": 64, "MaxStructFields": -1}
    t0 = time.monotonic()
    d = Dlv(dlv, prog["binary"], prog["core"])
    try:
        start_cpu, start_wall = d.cpu(), time.monotonic() - t0
        c0, w0 = d.cpu(), time.monotonic()
        pv = d.call("ListPackageVars", {"Filter": "^main\\.", "Cfg": cfg})["Variables"]
        pv_cpu, pv_wall = d.cpu() - c0, time.monotonic() - w0
        maps = [(v["name"], v["len"]) for v in pv if v.get("type", "").startswith("map[")]
        sample = rows[::every]
        wrong = 0
        c0, w0 = d.cpu(), time.monotonic()
        for r in sample:
            v = d.call("Eval", {"Scope": {"GoroutineID": -1, "Frame": 0, "DeferredCall": 0}, "Expr": "len(%s)" % r["name"], "Cfg": cfg})["Variable"]
            if v.get("value") != str(r["len"]):
                wrong += 1
        ev_cpu, ev_wall = d.cpu() - c0, time.monotonic() - w0
        return {"start_cpu": start_cpu, "start_wall": start_wall, "pv_cpu": pv_cpu, "pv_wall": pv_wall, "pv_maps": maps,
                "sample": len(sample), "ev_cpu": ev_cpu, "ev_wall": ev_wall, "wrong": wrong, "rss": d.peak_rss_mib()}
    finally:
        d.close()


def run(tag, dlv, every):
    prog = F.program_core("census_bench", tag, timeout=900)
    truth = prog["truth_doc"]
    wall, cpu, rss, rows = census(prog)
    mine = sum(1 for r in rows if r["name"].startswith(("main.sessions", "main.shards", "main.groups")))
    size = os.path.getsize(prog["core"])
    print("%-8s heap in use %4d MiB  core %4d MiB  maps %d (program made %d, found %d of them)  census %.2f s wall, "
          "%.2f s CPU  peak RSS %d MiB" % (tag, truth["heap_inuse"] >> 20, size >> 20, len(rows), truth["maps"], mine,
                                           wall, cpu, rss >> 10))
    if not dlv:
        print("%-8s Delve: not available (set GOMAP_DLV=/path/to/dlv or --dlv PATH)" % tag)
    else:
        try:
            r = delve(dlv, prog, rows, every)
        except Exception as e:  # a Delve that cannot open this core is a result too
            print("%-8s Delve: failed: %s" % (tag, e))
        else:
            per = r["ev_cpu"] / max(r["sample"], 1)
            total = r["start_cpu"] + r["pv_cpu"] + per * len(rows)
            lens = ", ".join("%s len %s" % m for m in r["pv_maps"]) or "none"
            print("%-8s Delve: startup %.2f s CPU (%.2f s wall); ListPackageVars(^main.) %.2f s CPU: maps among them: %s"
                  % (tag, r["start_cpu"], r["start_wall"], r["pv_cpu"], lens))
            print("%-8s Delve: len() of %d census paths (every %dth row) %.2f s CPU (%.2f s wall), %.2f ms CPU per map, "
                  "%d lengths differ from gomap's; peak RSS %d MiB" % (tag, r["sample"], every, r["ev_cpu"], r["ev_wall"],
                                                                     1000 * per, r["wrong"], r["rss"]))
            print("%-8s ratio: Delve startup + package variables = %.1fx gomap's whole census; Delve reaching all %d maps "
                  "(extrapolated: startup + %d x per-map len()) = %.0f s CPU = %.0fx gomap's census"
                  % (tag, (r["start_cpu"] + r["pv_cpu"]) / cpu, len(rows), len(rows), total, total / cpu))
    return mine == truth["maps"]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dlv", default=os.environ.get("GOMAP_DLV"), help="a dlv binary to compare with (default $GOMAP_DLV)")
    ap.add_argument("--dlv-every", type=int, default=100, help="evaluate len() in Delve for every Nth census row")
    ap.add_argument("tags", nargs="*")
    a = ap.parse_args()
    ok = all([run(t, a.dlv, max(a.dlv_every, 1)) for t in (a.tags or ["go1.23", "go1.26"])])
    sys.exit(0 if ok else 1)
