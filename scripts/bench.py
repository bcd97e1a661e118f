#!/usr/bin/env python3
"""gomap's benchmark (run it through scripts/bench.sh, which builds gomap first).

Builds fixtures/bench (main.m map[int]int, main.s map[string]main.Record and main.b map[int]main.Big,
whose 136-byte values are stored indirectly; N entries each) with a
classic-map toolchain (Go 1.23) and a swiss one (Go 1.26), takes a kernel core per size, and measures
side by side on each core:

  * the CLI: `show --json --limit 0`, `check` and `buckets --json`: best wall time of N runs and the
    peak RSS of the child (getrusage), output to /dev/null; one extra run checks the entry count;
  * gomap inside gdb (`gomap show main.m --json --limit 0`, timed with gdb's Python clock so gdb start-up
    is excluded) against Go's own runtime-gdb.py (`print 'main.m'`, `set print elements unlimited`),
    under a time cap;
  * the decode rate in bytes of bucket/group memory per second, against a plain sequential read of the
    same bytes from the same core by a small C program (scripts/bench_floor.c): the floor;
  * issue 16, side by side with ratios: `show --json` on one thread (GOMAP_THREADS=1) and with worker
    threads (for the string map also threads gathering strings instead of prefetching them, GOMAP_GATHER=1),
    with a --baseline binary, and with --output FILE; inside gdb and LLDB `gomap show --output`
    and `print` / `target variable` after the session is open. CPU time (all threads) is printed
    beside every wall time: on a shared machine it is the stable figure.

Then it checks the targets of issues 6 and 16 and prints PASS/FAIL/UNKNOWN for each. Everything it builds lives in
${GOMAP_CACHE:-~/.cache/gomap}/bench.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("GOMAP_CACHE") or os.path.expanduser("~/.cache/gomap")
BENCH = os.path.join(CACHE, "bench")
GOMAP = os.path.join(ROOT, "target", "release", "gomap")
SRC = os.path.join(ROOT, "fixtures", "bench")
SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000, "10M": 10_000_000}
MAPS = {"main.m": "map[int]int", "main.s": "map[string]main.Record", "main.b": "map[int]main.Big"}
MB = 1 << 20


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(1)


# ---- fixtures ------------------------------------------------------------------------------------

def tag_specs():
    """What each toolchain tag is, from scripts/fixtures.sh (one source of truth for the matrix)."""
    out = subprocess.run([os.path.join(ROOT, "scripts", "fixtures.sh"), "--specs"], check=True,
                         capture_output=True, text=True).stdout
    return {s["tag"]: s for s in map(json.loads, out.splitlines())}


def go_env(spec):
    return dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="", GOENV="off", GOEXPERIMENT=spec["goexperiment"],
                CGO_ENABLED="0", GOCACHE=os.path.join(CACHE, "gocache"), GOPATH=os.path.join(CACHE, "gopath"),
                GOMODCACHE=os.path.join(CACHE, "gopath", "pkg", "mod"))


def go_version(spec):
    return subprocess.run([spec["go"], "env", "GOVERSION"], env=go_env(spec), check=True,
                          capture_output=True, text=True).stdout.strip()


def fixture_dir(tag, spec):
    h = hashlib.sha256()
    for f in sorted(os.listdir(SRC)):
        h.update(f.encode() + b"\0" + open(os.path.join(SRC, f), "rb").read())
    h.update(json.dumps(spec, sort_keys=True).encode())
    return os.path.join(BENCH, h.hexdigest()[:16], tag)


def check_core_pattern():
    pat = open("/proc/sys/kernel/core_pattern").read().strip()
    if not pat or pat.startswith("|") or "/" in pat:
        die(f"core_pattern is '{pat}': kernel cores must land in the cwd. As root: echo core > /proc/sys/kernel/core_pattern")
    return pat.split("%")[0]


def build_binary(tag, spec, d):
    binary = os.path.join(d, "bench")
    if os.path.exists(binary + ".ok"):
        return binary
    if not os.access(spec["go"], os.X_OK):
        die(f"{tag}: toolchain {spec['go']} missing (run scripts/toolchains.sh)")
    os.makedirs(d, exist_ok=True)
    flags = ["-trimpath", "-o", binary] + (["-buildmode=pie"] if spec["pie"] else [])
    log(f"{tag}: go build fixtures/bench")
    r = subprocess.run([spec["go"], "build"] + flags + ["."], cwd=SRC, env=go_env(spec), capture_output=True, text=True)
    if r.returncode != 0:
        die(f"{tag}: go build failed:\n{r.stderr}")
    open(binary + ".ok", "w").close()
    return binary


def take_core(tag, binary, n, d, prefix, timeout=900):
    """Runs the fixture with N entries per map until it reports ready, then aborts it into a kernel core."""
    core, ready = os.path.join(d, "core"), os.path.join(d, "ready.json")
    if os.path.exists(os.path.join(d, ".complete")):
        return core, json.load(open(ready))
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    log(f"{tag}: running the fixture with {n} entries per map and taking its core")
    env = dict(os.environ, GOTRACEBACK="crash", GOMAP_BENCH_N=str(n), GOMAP_READY=ready)

    def unlimited_core():
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    p = subprocess.Popen([binary], cwd=d, env=env, preexec_fn=unlimited_core,
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "run.log"), "w"))
    t0 = time.time()
    while not os.path.exists(ready):
        if p.poll() is not None:
            die(f"{tag}: fixture exited before it was ready (see {d}/run.log)")
        if time.time() - t0 > timeout:
            p.kill()
            die(f"{tag}: fixture not ready after {timeout}s")
        time.sleep(0.1)
    p.send_signal(signal.SIGABRT)
    p.wait()
    found = [f for f in (prefix, f"{prefix}.{p.pid}") if os.path.isfile(os.path.join(d, f))]
    found += [f for f in os.listdir(d) if f.startswith(prefix) and f not in found]
    if not found:
        die(f"{tag}: no core file in {d} after SIGABRT (core_pattern prefix '{prefix}'; check ulimit -c)")
    if found[0] != "core":
        os.rename(os.path.join(d, found[0]), core)
    info = json.load(open(ready))
    if info["pid"] != p.pid or info["len_m"] != n or info["len_s"] != n or info["len_b"] != n:
        die(f"{tag}: fixture summary {info} does not match the aborted process {p.pid} with {n} entries")
    open(os.path.join(d, ".complete"), "w").close()
    log(f"{tag}: core {os.path.getsize(core) / MB:.0f} MiB apparent, "
        f"{os.stat(core).st_blocks * 512 / MB:.0f} MiB on disk, built in {time.time() - t0:.1f}s")
    return core, info


# ---- measuring -----------------------------------------------------------------------------------

TIME = "/usr/bin/time"


def run_once(argv, stdout=None, env=None):
    """Runs argv; returns (wall seconds, peak RSS bytes of the child, exit status, stderr, CPU seconds).

    The peak RSS comes from GNU time, not from our own wait4: Linux carries the high-water RSS of the
    image a process exec()s away from into its ru_maxrss, so a child forked from this (large) Python
    process would report Python's RSS. GNU time is small, and so is that floor (~2 MB)."""
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile(mode="r") as rss:
        out = stdout if stdout is not None else subprocess.DEVNULL
        t0 = time.perf_counter()
        p = subprocess.Popen([TIME, "-f", "%M %U %S", "-o", rss.name] + argv, stdout=out, stderr=err,
                             env=dict(os.environ, **(env or {})))
        p.wait()
        wall = time.perf_counter() - t0
        err.seek(0)
        try:
            kb, user, sys_ = rss.read().strip().splitlines()[-1].split()
            peak, cpu = int(kb) * 1024, float(user) + float(sys_)
        except (ValueError, IndexError):
            peak, cpu = 0, None
        return wall, peak, p.returncode, err.read().decode(errors="replace"), cpu


def peak_anon(argv):
    """Peak anonymous memory (RssAnon) of one untimed run, sampled every 5 ms from /proc.

    Peak RSS also counts the core's file pages that the mmap has touched: clean page cache the kernel
    can drop at any time and shares with every reader of the file. What gomap itself allocates is
    the anonymous part, and that is what must not grow with the map."""
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    return peak


def best_of(argv, runs, ok=(0,), env=None):
    """Best wall time, median, peak RSS and the least CPU time (user + system, all threads) of N runs."""
    times, cpus, rss = [], [], 0
    for _ in range(runs):
        wall, peak, rc, err, cpu = run_once(argv, env=env)
        if rc not in ok:
            return {"error": f"exit {rc}: {err.strip().splitlines()[-1] if err.strip() else ''}"}
        times.append(wall)
        cpus.append(cpu or 0.0)
        rss = max(rss, peak)
    return {"time": min(times), "median": sorted(times)[len(times) // 2], "rss": rss, "cpu": min(cpus)}


def count_entries(argv):
    """One more run, streamed through a pipe: how many entries the JSON holds (without parsing it all)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    needle, n, tail, size = b'{"key":', 0, b"", 0
    while True:
        chunk = p.stdout.read(1 << 20)
        if not chunk:
            break
        size += len(chunk)
        buf = tail + chunk
        n += buf.count(needle)
        tail = buf[-(len(needle) - 1):]
        n -= tail.count(needle)  # never: the needle is longer than the tail
    p.wait()
    return n, size


def spot_check(argv, name, n):
    """Full parse for small maps: entries must be exactly what the fixture stored."""
    out = subprocess.run(argv, check=True, capture_output=True).stdout
    doc = json.loads(out)
    entries = doc["entries"]
    if len(entries) != n:
        return f"{len(entries)} entries, expected {n}"
    if name == "main.m":
        bad = [e for e in entries if e["key"] != e["value"] * 7919]
    elif name == "main.b":
        bad = [e for e in entries if e["key"] != e["value"]["ID"] or e["value"]["Name"] != f"big-{e['key'] % 1000}"]
    else:
        bad = [e for e in entries if e["key"] != f"key-{e['value']['ID']}" or e["value"]["Name"] != f"name-{e['value']['ID'] % 1000}"]
    return f"{len(bad)} wrong entries, e.g. {bad[0]}" if bad else None


def core_segments(core):
    with open(core, "rb") as f:
        hdr = f.read(64)
        phoff, = struct.unpack_from("<Q", hdr, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", hdr, 0x36)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    segs = []
    for i in range(phnum):
        p_type, _flags, off, vaddr, _paddr, filesz = struct.unpack_from("<IIQQQQ", ph, i * phentsize)
        if p_type == 1 and filesz:
            segs.append((vaddr, filesz, off))
    return sorted(segs)


def floor_ranges(buckets_json_path, core):
    """(file offset, length) of every bucket or group the `buckets --json` dump lists, coalesced."""
    data = open(buckets_json_path, "rb").read()
    stats = json.JSONDecoder().raw_decode(data[data.rindex(b'"stats":') + 8:].decode())[0]
    size = stats.get("bucket_size") or stats.get("group_size")
    rows = re.finditer(rb'"(?:chain":\d+|group":\d+),"address":"0x([0-9a-f]+)"', data)
    addrs = sorted(int(m.group(1), 16) for m in rows)
    del data
    ranges = []
    for a in addrs:
        if ranges and ranges[-1][0] + ranges[-1][1] == a:
            ranges[-1][1] += size
        else:
            ranges.append([a, size])
    segs = core_segments(core)
    out, total = [], 0
    for a, n in ranges:
        while n > 0:
            seg = next((s for s in segs if s[0] <= a < s[0] + s[1]), None)
            if seg is None:
                raise RuntimeError(f"bucket memory at {a:#x} is not in the core")
            k = min(n, seg[0] + seg[1] - a)
            out.append((seg[2] + a - seg[0], k))
            total += k
            a, n = a + k, n - k
    return out, total, len(addrs)


def build_floor():
    exe = os.path.join(BENCH, "bench_floor")
    src = os.path.join(ROOT, "scripts", "bench_floor.c")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        os.makedirs(BENCH, exist_ok=True)
        subprocess.run(["gcc", "-O2", "-o", exe, src], check=True)
    return exe


def floor_time(floor_exe, core, ranges, runs):
    with tempfile.NamedTemporaryFile(suffix=".ranges", delete=False) as f:
        for off, n in ranges:
            f.write(struct.pack("<QQ", off, n))
        path = f.name
    try:
        best = None
        for _ in range(runs):
            out = subprocess.run([floor_exe, core, path], check=True, capture_output=True, text=True).stdout.split()
            best = float(out[0]) if best is None else min(best, float(out[0]))
        return best
    finally:
        os.unlink(path)


LLDB = next((p for p in (os.environ.get("GOMAP_LLDB") or "", "/usr/bin/lldb-19", "/usr/bin/lldb-16", "/usr/bin/lldb") if p and os.access(p, os.X_OK)), None)


def gdb_run(binary, core, pre, commands, repeat, count, cap, lldb=False):
    """One gdb (or LLDB) process: `pre` commands, then each of `commands` timed inside the debugger.
    Returns results or None on timeout."""
    job = json.dumps({"commands": commands, "repeat": repeat, "count": count})
    if lldb:
        argv = [LLDB, "--no-lldbinit", "-b", binary, "-c", core]
        for c in pre:
            argv += ["-o", c]
        argv += ["-o", f"script exec(open({json.dumps(os.path.join(ROOT, 'scripts', 'bench_lldb.py'))}).read())"]
    else:
        argv = ["gdb", "-nx", "-batch", "-iex", "set auto-load no", "-ex", "set pagination off", "-ex", "set confirm off"]
        for c in pre:
            argv += ["-ex", c]
        argv += ["-ex", f"python exec(open({json.dumps(os.path.join(ROOT, 'scripts', 'bench_gdb.py'))}).read())", binary, core]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ, GOMAP_BENCH_GDB=job),
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=cap)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return None
    res = [json.loads(line[len(b"BENCHRESULT "):]) for line in out.splitlines() if line.startswith(b"BENCHRESULT ")]
    if not res:
        return [{"error": "gdb printed no result: " + out.decode(errors="replace").strip()[-300:], "times": []}]
    return res


# ---- report --------------------------------------------------------------------------------------

def fmt_t(t):
    if t is None:
        return "-"
    return f"{t * 1000:.1f} ms" if t < 1 else f"{t:.2f} s"


def fmt_rss(r):
    return "-" if r is None else f"{r / MB:.0f} MB"


def fmt_rate(bytes_, t):
    return "-" if not t else f"{bytes_ / t / 1e9:.2f} GB/s"


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    gdbv = subprocess.run(["gdb", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem / (1 << 20), 1), "kernel": platform.release(),
            "gdb": gdbv, "rustc": rustc, "load": os.getloadavg()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10k,100k,1M,10M", help="comma list of " + ",".join(SIZES))
    ap.add_argument("--tags", default="go1.23,go1.26", help="toolchain tags (scripts/fixtures.sh --list)")
    ap.add_argument("--runs", type=int, default=5, help="runs per CLI measurement (best is reported; 10M uses at most 3)")
    ap.add_argument("--cap", type=float, default=120, help="seconds runtime-gdb.py may take per map before it is stopped")
    ap.add_argument("--gdb-max", default="1M", help="largest size measured inside gdb")
    ap.add_argument("--no-gdb", action="store_true", help="skip the gdb measurements")
    ap.add_argument("--quick", action="store_true", help="smoke run: 10k and 100k, 2 runs, runtime-gdb.py cap 30 s")
    ap.add_argument("--baseline", metavar="GOMAP", help="another gomap binary (e.g. a build of main) whose `show --json` "
                    "is measured on the same cores, for the before/after columns")
    ap.add_argument("--no-lldb", action="store_true", help="skip the LLDB measurements")
    ap.add_argument("--json", help="also write every number to this file")
    ap.add_argument("--build-only", action="store_true", help="build the fixtures and cores, measure nothing")
    ap.add_argument("--report", metavar="JSON", help="print the report of an earlier run (--json FILE) again, measure nothing")
    a = ap.parse_args()
    if a.report:
        results = json.load(open(a.report))
        tags, sizes = list(results["tags"]), [s for s in SIZES if any(s in t["sizes"] for t in results["tags"].values())]
        results["targets"] = targets(results, tags, sizes, results["args"]["cap"])
        report(results, tags, sizes)
        return 0 if all(t["status"] != "FAIL" for t in results["targets"]) else 1
    if a.quick:
        a.sizes, a.runs, a.cap = "10k,100k", 2, 30
    sizes = [s for s in a.sizes.split(",") if s]
    for s in sizes:
        if s not in SIZES:
            die(f"unknown size {s} (known: {', '.join(SIZES)})")
    sizes.sort(key=SIZES.get)
    tags = a.tags.split(",")
    if not os.access(GOMAP, os.X_OK):
        die(f"{GOMAP} missing: run scripts/bench.sh (it builds gomap first)")
    if not os.access(TIME, os.X_OK):
        die(f"{TIME} (GNU time, Debian package 'time') is needed to measure peak RSS")
    specs = tag_specs()
    prefix = check_core_pattern()
    floor_exe = build_floor()
    have_gdb = not a.no_gdb and subprocess.run(["which", "gdb"], capture_output=True).returncode == 0
    started = time.time()

    results = {"machine": machine(), "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "args": vars(a), "tags": {}}
    for tag in tags:
        if tag not in specs:
            die(f"unknown tag {tag}")
        spec = specs[tag]
        d = fixture_dir(tag, spec)
        binary = build_binary(tag, spec, d)
        gover = go_version(spec)
        goroot = subprocess.run([spec["go"], "env", "GOROOT"], env=go_env(spec), capture_output=True, text=True).stdout.strip()
        rtgdb = os.path.join(goroot, "src", "runtime", "runtime-gdb.py")
        tr = results["tags"][tag] = {"go_version": gover, "impl": spec["impl"], "sizes": {}}
        rtgdb_over = None  # the size at which runtime-gdb.py first hit the cap
        for size in sizes:
            n = SIZES[size]
            core, info = take_core(tag, binary, n, os.path.join(d, size), prefix)
            if a.build_only:
                continue
            runs = min(a.runs, 3) if n >= 10_000_000 else a.runs
            sr = tr["sizes"][size] = {"n": n, "core_bytes": os.path.getsize(core), "maps": {}}
            base = ["--binary", binary, "--core", core]
            sr["startup"] = best_of([GOMAP, "layout"] + base, runs)
            for name in MAPS:
                log(f"{tag} {size} {name}: CLI")
                r = sr["maps"][name] = {}
                show = [GOMAP, "show"] + base + [name, "--json", "--limit", "0"]
                r["show"] = best_of(show, runs)
                # The same on one thread (GOMAP_THREADS=1), the baseline binary, and to a file with
                # --output (what the debuggers are compared with).
                r["show1"] = best_of(show, runs, env={"GOMAP_THREADS": "1"})
                if name == "main.s":
                    # The worker threads' alternative to prefetching strings entry by entry:
                    # gathering each batch's strings in address order first (key kept for old reports).
                    r["show_prefetch"] = best_of(show, runs, env={"GOMAP_GATHER": "1"})
                if a.baseline:
                    r["show_base"] = best_of([a.baseline] + show[1:], runs)
                with tempfile.TemporaryDirectory() as td:
                    r["show_out"] = best_of(show + ["--output", os.path.join(td, "out.json")], runs)
                if "error" not in r["show"]:
                    r["show"]["anon"] = peak_anon(show)
                r["check"] = best_of([GOMAP, "check"] + base + [name], runs, ok=(0, 1))
                bk = [GOMAP, "buckets"] + base + [name, "--json"]
                r["buckets"] = best_of(bk, runs)
                cnt, out_bytes = count_entries(show)
                r["entries"], r["json_bytes"] = cnt, out_bytes
                if cnt != n:
                    r["wrong"] = f"{cnt} entries in the JSON, expected {n}"
                elif n <= 100_000:
                    r["wrong"] = spot_check(show, name, n)
                with tempfile.NamedTemporaryFile(suffix=".json") as f:
                    subprocess.run(bk, stdout=f, check=True)
                    ranges, total, items = floor_ranges(f.name, core)
                r["bucket_bytes"], r["bucket_items"], r["ranges"] = total, items, len(ranges)
                r["floor"] = floor_time(floor_exe, core, ranges, runs)
            if have_gdb and n <= SIZES[a.gdb_max]:
                log(f"{tag} {size}: gomap inside gdb")
                g = gdb_run(binary, core, [f"source {os.path.join(ROOT, 'python', 'gomap.py')}"],
                            [f"gomap show {name} --json --limit 0" for name in MAPS], 3, '{"key":', 600)
                for name, res in zip(MAPS, g or []):
                    sr["maps"][name]["gdb"] = res
                # Issue 16: --output FILE (written by gomap, not through the debugger) and `print`
                # with the default `print elements`, after a first command has opened the session.
                with tempfile.TemporaryDirectory() as td:
                    out = os.path.join(td, "out.json")
                    cmds = ["gomap layout"]
                    for name in MAPS:
                        cmds += [f"gomap show {name} --json --limit 0 --output {out}", f"print '{name}'"]
                    g = gdb_run(binary, core, [f"source {os.path.join(ROOT, 'python', 'gomap.py')}"], cmds, 3, None, 600)
                    for i, name in enumerate(MAPS):
                        if g and len(g) > 2 + 2 * i:
                            sr["maps"][name]["gdb_out"], sr["maps"][name]["gdb_print"] = g[1 + 2 * i], g[2 + 2 * i]
                    if LLDB and not a.no_lldb:
                        log(f"{tag} {size}: gomap inside LLDB")
                        cmds = ["gomap layout"]
                        for name in MAPS:
                            cmds += [f"gomap show {name} --json --limit 0 --output {out}", f"target variable {name}"]
                        g = gdb_run(binary, core, [f"command script import {os.path.join(ROOT, 'python', 'gomap_lldb.py')}"],
                                    cmds, 3, None, 600, lldb=True)
                        for i, name in enumerate(MAPS):
                            if g and len(g) > 2 + 2 * i:
                                sr["maps"][name]["lldb_out"], sr["maps"][name]["lldb_print"] = g[1 + 2 * i], g[2 + 2 * i]
                if rtgdb_over is None:
                    log(f"{tag} {size}: runtime-gdb.py print 'main.m' (cap {a.cap:.0f}s)")
                    rg = gdb_run(binary, core, ["set print elements unlimited", f"source {rtgdb}"],
                                 ["print 'main.m'"], 1, "] = ", a.cap)
                    if rg is None:
                        rtgdb_over = size
                        sr["maps"]["main.m"]["rtgdb"] = {"timeout": a.cap}
                    else:
                        sr["maps"]["main.m"]["rtgdb"] = rg[0]
                else:
                    sr["maps"]["main.m"]["rtgdb"] = {"skipped": f"over the {a.cap:.0f}s cap at {rtgdb_over}"}
    if a.build_only:
        return 0
    results["elapsed"] = time.time() - started
    if a.json:  # first: the numbers survive a bug in the report
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    results["targets"] = targets(results, tags, sizes, a.cap)
    report(results, tags, sizes)
    return 0 if all(t["status"] != "FAIL" for t in results["targets"]) else 1


def gdb_times(r):
    g = r.get("gdb")
    if not g or g.get("error") or not g.get("times"):
        return None, None
    return g["times"][0], min(g["times"])


def dbg_best(r, key):
    """(best wall, least CPU) of a debugger measurement, or None."""
    g = r.get(key)
    if not g or g.get("error") or not g.get("times"):
        return None
    return min(g["times"]), min(g.get("cpu") or [0.0])


def fmt_tc(t, cpu):
    return f"{fmt_t(t)} ({fmt_t(cpu)} CPU)" if cpu else fmt_t(t)


def xratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def targets(res, tags, sizes, cap):
    out = []

    def add(name, status, detail):
        out.append({"target": name, "status": status, "detail": detail})

    for tag in tags:
        tr = res["tags"][tag]
        label = f"{tag} ({tr['impl']})"
        s1 = tr["sizes"].get("1M")
        # Issue 16. Wall time on a loaded machine measures the other engineers' load as much as
        # gomap: every target shows the CPU figure beside it, and "UNKNOWN" means the CPU figure
        # meets the target while the wall time does not.
        if s1 and "main.s" in s1["maps"]:
            sh = s1["maps"]["main.s"]["show"]
            if "error" not in sh:
                ok_mem = sh["rss"] < 100 * MB and not s1["maps"]["main.s"].get("wrong")
                st = "PASS" if sh["time"] < 0.15 and ok_mem else "UNKNOWN" if ok_mem and sh["cpu"] / 2 < 0.15 else "FAIL"
                pf = s1["maps"]["main.s"].get("show_prefetch") or {}
                add(f"1M string->struct show --json < 0.15 s, < 100 MB, {label}", st,
                    f"{fmt_tc(sh['time'], sh['cpu'])}, {fmt_rss(sh['rss'])} ({xratio(sh['time'], 0.15)} the target's wall time; "
                    f"CPU over 2 cores {xratio(sh['cpu'] / 2, 0.15)}); one thread {fmt_tc(s1['maps']['main.s']['show1'].get('time'), s1['maps']['main.s']['show1'].get('cpu'))}; "
                    f"threads gathering instead of prefetching {fmt_tc(pf.get('time'), pf.get('cpu'))}")
        if s1:
            for name, r in s1["maps"].items():
                cli = r.get("show_out", {})
                for dbg in ("gdb", "lldb"):
                    d = dbg_best(r, f"{dbg}_out")
                    if d is None or "error" in cli:
                        continue
                    st = "PASS" if d[0] <= 1.5 * cli["time"] else "UNKNOWN" if d[1] <= 1.5 * cli["cpu"] else "FAIL"
                    add(f"{dbg} show --output within 1.5x of the CLI, 1M {name}, {label}", st,
                        f"{dbg} {fmt_tc(*d)}, CLI {fmt_tc(cli['time'], cli['cpu'])}: wall {xratio(d[0], cli['time'])}, CPU {xratio(d[1], cli['cpu'])}")
                    p = dbg_best(r, f"{dbg}_print")
                    if p is not None:
                        st = "PASS" if p[0] < 0.05 else "UNKNOWN" if p[1] < 0.05 else "FAIL"
                        add(f"{dbg} print of 1M {name} (default print elements) < 50 ms, {label}", st, fmt_tc(*p))
                base = r.get("show_base")
                if base and "error" not in base and "error" not in r["show1"]:
                    # Same thread count as the baseline (one): the heap accounting's cost, not the
                    # parallel walk's gain. 10 % is the noise of this machine.
                    one = r["show1"]
                    st = "PASS" if one["cpu"] <= 1.10 * base["cpu"] else "FAIL"
                    add(f"show with heap accounting no slower than the baseline, 1M {name}, {label}", st,
                        f"one thread {fmt_tc(one['time'], one['cpu'])}, baseline {fmt_tc(base['time'], base['cpu'])}: CPU {xratio(one['cpu'], base['cpu'])}")
        s1 = tr["sizes"].get("1M")
        if s1:
            sh = s1["maps"]["main.m"]["show"]
            if "error" in sh:
                add(f"1M show --json < 0.15 s, < 100 MB, {label}", "FAIL", sh["error"])
            else:
                ok = sh["time"] < 0.15 and sh["rss"] < 100 * MB and not s1["maps"]["main.m"].get("wrong")
                add(f"1M show --json < 0.15 s, < 100 MB, {label}", "PASS" if ok else "FAIL",
                    f"main.m {fmt_t(sh['time'])}, {fmt_rss(sh['rss'])}")
        s100 = tr["sizes"].get("100k")
        if s100 and "gdb" in s100["maps"]["main.m"]:
            r = s100["maps"]["main.m"]
            first, best = gdb_times(r)
            rg = r.get("rtgdb", {})
            name = f"gdb >= 1000x runtime-gdb.py at 100k, {label}"
            if first is None:
                add(name, "FAIL", f"gomap in gdb failed: {(r.get('gdb') or {}).get('error')}")
            elif "timeout" in rg:
                ratio = rg["timeout"] / best
                add(name, "PASS" if ratio >= 1000 else "UNKNOWN",
                    f"runtime-gdb.py did not finish in {rg['timeout']:.0f} s; gomap {fmt_t(best)} (best of 3): ratio > {ratio:.0f}x")
            elif rg.get("error") or not rg.get("count"):
                add(name, "N/A", f"runtime-gdb.py cannot print the map ({rg.get('error') or rg.get('head', '')[:80]!r}); gomap {fmt_t(first)}")
            elif rg["count"] < s100["n"]:
                add(name, "N/A", f"runtime-gdb.py is wrong for this layout: it printed {rg['count']} of {s100['n']} entries "
                    + (f"(then `{rg['inner_error'][:60]}`) " if rg.get("inner_error") else "")
                    + f"in {fmt_t(rg['times'][0])}, so there is no like-for-like ratio; gomap printed all of them in {fmt_t(first)}")
            else:
                # gomap's first command in a gdb session also opens its session (the binary's DWARF,
                # once per gdb session, like gdb's own symbol loading that is excluded from both sides):
                # the target is judged on the commands after it; the first call's ratio is shown too.
                ratio, ratio1 = rg["times"][0] / best, rg["times"][0] / first
                add(name, "PASS" if ratio >= 1000 else "FAIL",
                    f"runtime-gdb.py {fmt_t(rg['times'][0])}, gomap {fmt_t(best)} (best of 3): {ratio:.0f}x; "
                    f"first call of the session {fmt_t(first)}: {ratio1:.0f}x")
        s10 = tr["sizes"].get("10M")
        if s10:
            for name in MAPS:
                c = s10["maps"][name]["check"]
                ok = "error" not in c and c["time"] < 1
                add(f"check on 10M < 1 s, {name}, {label}", "PASS" if ok else "FAIL",
                    c.get("error") or f"{fmt_t(c['time'])}, {fmt_rss(c['rss'])}")
        if len(sizes) >= 2:
            lo, hi = tr["sizes"][sizes[0]], tr["sizes"][sizes[-1]]
            for name in MAPS:
                a, b = lo["maps"][name]["show"], hi["maps"][name]["show"]
                if "error" in a or "error" in b:
                    continue
                # Bounded: at the largest size gomap's own (anonymous) memory may not exceed the
                # smallest size's by more than 32 MiB. Peak RSS, which adds the core's page cache the
                # mmap touched, is shown beside it.
                ok = b["anon"] <= a["anon"] + 32 * MB
                add(f"streamed memory independent of size, {name}, {label}", "PASS" if ok else "FAIL",
                    f"show --json peak anonymous memory {fmt_rss(a['anon'])} at {sizes[0]}, {fmt_rss(b['anon'])} at {sizes[-1]} "
                    f"(peak RSS with the core's page cache: {fmt_rss(a['rss'])}, {fmt_rss(b['rss'])})")
    return out


def table_head(*cols):
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))


def report(res, tags, sizes):
    m = res["machine"]
    p = print
    p(f"\n# gomap benchmark ({res['started']}, {res['elapsed']:.0f} s)\n")
    p(f"machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Linux {m['kernel']}, load {m['load'][0]:.2f}; {m['gdb']}; {m['rustc']}")
    p(f"CLI: best of {res['args']['runs']} runs (10M: 3), wall time of the whole command (process start, DWARF, "
      f"decode, output to /dev/null); RSS: peak of the child, including the core's page cache its mmap touched; "
      f"anon: peak anonymous memory, what gomap itself allocates (one extra untimed run).\n")
    for tag in tags:
        tr = res["tags"][tag]
        p(f"## {tag}: {tr['go_version']}, {tr['impl']} maps\n")
        table_head("size", "map", "show --json", "check", "buckets --json", "JSON out", "bucket bytes", "floor read", "check rate", "show rate")
        for size in sizes:
            sr = tr["sizes"][size]
            for name, r in sr["maps"].items():
                cells = []
                for k in ("show", "check", "buckets"):
                    x = r[k]
                    cell = x["error"] if "error" in x else f"{fmt_t(x['time'])}, {fmt_rss(x['rss'])}"
                    if "anon" in x:
                        cell += f" (anon {fmt_rss(x['anon'])})"
                    cells.append(cell)
                ok = "" if not r.get("wrong") else f" **{r['wrong']}**"
                bb = r["bucket_bytes"]
                p(f"| {size} | {name} | {' | '.join(cells)} | {r['json_bytes'] / MB:.1f} MB{ok} | {bb / MB:.1f} MB | "
                  f"{fmt_t(r['floor'])} ({fmt_rate(bb, r['floor'])}) | {fmt_rate(bb, r['check'].get('time'))} | "
                  f"{fmt_rate(bb, r['show'].get('time'))} |")
        p("")
        st = ", ".join(f"{s} {fmt_t(tr['sizes'][s]['startup'].get('time'))}" for s in sizes)
        p(f"fixed start-up (`gomap layout`, same core): {st}\n")
        if any("gdb" in r or "rtgdb" in r for s in sizes for r in tr["sizes"][s]["maps"].values()):
            p("| size | map | gomap in gdb (first / best of 3) | runtime-gdb.py `print` | ratio (best / first) |")
            p("|---|---|---|---|---|")
            for size in sizes:
                for name, r in tr["sizes"][size]["maps"].items():
                    if "gdb" not in r and "rtgdb" not in r:
                        continue
                    first, best = gdb_times(r)
                    g = r.get("gdb") or {}
                    gcell = f"{fmt_t(first)} / {fmt_t(best)}" if first is not None else f"failed: {g.get('error')}"
                    if g.get("count") is not None and g["count"] != tr["sizes"][size]["n"]:
                        gcell += f" ({g['count']} entries!)"
                    rg = r.get("rtgdb")
                    ratio = "-"
                    if rg is None:
                        rcell = "not run"
                    elif "timeout" in rg:
                        rcell = f"> {rg['timeout']:.0f} s cap (stopped)"
                        if first:
                            ratio = f"> {rg['timeout'] / best:.0f}x / > {rg['timeout'] / first:.0f}x"
                    elif "skipped" in rg:
                        rcell = f"not run ({rg['skipped']})"
                    elif rg.get("error"):
                        rcell = f"error: {rg['error'][:80]}"
                    else:
                        rcell = f"{fmt_t(rg['times'][0])}, {rg['count']} entries printed"
                        if rg["count"] < tr["sizes"][size]["n"]:
                            rcell += f" of {tr['sizes'][size]['n']}: WRONG"
                            if rg.get("inner_error"):
                                rcell += f", then `{rg['inner_error'][:60]}`"
                            ratio = "n/a (wrong output)"
                        elif first:
                            ratio = f"{rg['times'][0] / best:.0f}x / {rg['times'][0] / first:.0f}x"
                    p(f"| {size} | {name} | {gcell} | {rcell} | {ratio} |")
            p("")
    p("## Speed II (issue 16): side by side, ratios to the CLI\n")
    p("Wall time is the best of N runs; CPU is user + system of all threads (the CLI from GNU time, the debuggers "
      "from Python's process_time inside them); on a loaded machine the CPU figures are the stable ones.\n")
    for tag in tags:
        tr = res["tags"][tag]
        p(f"### {tag} ({tr['impl']})\n")
        table_head("size", "map", "CLI show --json, one thread", "CLI, parallel", "CLI, parallel, gather instead of prefetch", "baseline binary", "CLI --output", "gdb --output (ratio)",
                   "LLDB --output (ratio)", "gdb show to string (ratio)", "gdb print", "LLDB target variable")
        for size in sizes:
            for name, r in tr["sizes"][size]["maps"].items():
                def cli(k):
                    x = r.get(k)
                    return "-" if not x else x.get("error") or f"{fmt_tc(x['time'], x.get('cpu'))}, {fmt_rss(x['rss'])}"
                cout = r.get("show_out") or {}
                cells = [cli("show1"), cli("show"), cli("show_prefetch"), cli("show_base"), cli("show_out")]
                for k in ("gdb_out", "lldb_out", "gdb"):
                    d = dbg_best(r, k)
                    cells.append("-" if d is None else f"{fmt_tc(*d)} ({xratio(d[0], cout.get('time'))} wall, {xratio(d[1], cout.get('cpu'))} CPU)")
                for k in ("gdb_print", "lldb_print"):
                    d = dbg_best(r, k)
                    cells.append("-" if d is None else fmt_tc(*d))
                p(f"| {size} | {name} | " + " | ".join(cells) + " |")
        p("")
    p("Delve: not measured here. It is a Go program (go install github.com/go-delve/delve/cmd/dlv) and this machine "
      "reaches Go modules only through the toolchains' own caches, not PyPI or crates.io; BENCHMARKS.md quotes an "
      "earlier run (35 s, 3.8 GiB for 1M int->int).\n")
    p("## targets\n")
    for t in res["targets"]:
        p(f"- **{t['status']}** {t['target']}: {t['detail']}")
    p("")


if __name__ == "__main__":
    sys.exit(main())
