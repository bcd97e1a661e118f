"""Reliability (RELIABILITY.md): gomap on corrupt cores and bad files, on a map that changes while
it is read, and proof that it never writes to what it inspects.

- corruption corpus: scripts/corrupt.py damages copies of a classic and a swiss fixture core in
  known ways; every command returns in bounded time with one precise error line, or with a
  `corrupt` finding naming what was impossible plus the entries that could still be read.
- live under change: fixtures/churn keeps growing, deleting from and replacing maps while the CLI
  (and gdb, when python/gomap.py loads) reads them: no crash, no hang, and a read that does not add
  up says so (`writing` or `corrupt`) instead of presenting torn data as exact.
- read-only: the core files' bytes and a stopped live process's writable memory hash the same
  before and after every command.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

import fixturelib as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOMAP = os.environ.get("GOMAP_BIN", os.path.join(REPO, "target", "release", "gomap"))
CORRUPT_PY = os.path.join(REPO, "scripts", "corrupt.py")
PANIC = ("panicked", "internal error", "RUST_BACKTRACE", "Traceback", "stack backtrace", "Segmentation fault")
# Every command on a fixture-sized input finishes in well under a second; the cap is for slow CI.
TIME_LIMIT = 30


def gomap(*args, timeout=TIME_LIMIT):
    t0 = time.monotonic()
    try:
        p = subprocess.run([GOMAP] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail("gomap %s did not return within %ss" % (" ".join(map(str, args)), timeout))
    for marker in PANIC:
        assert marker not in p.stderr and marker not in p.stdout, (args, p.stderr[-2000:])
    assert p.returncode in (0, 1, 2), (args, p.returncode, p.stderr)  # never killed by a signal
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def pick(impl, preferred):
    tags = F.all_tags(impl)
    if not tags:
        return None
    return preferred if preferred in tags else tags[0]


# ---- corruption corpus --------------------------------------------------------------------------

CLASSIC_MAP_CASES = ["overflow-cycle", "overflow-chain-cycle", "B-60", "buckets-unmapped", "count-far",
                     "tophash-garbage", "tophash-garbage-count", "string-len-2^40"]
SWISS_MAP_CASES = ["dirLen-out-of-range", "globalDepth-out-of-range", "table-unmapped", "table-in-two-runs",
                   "group-count", "count-far", "ctrl-garbage", "string-len-2^40"]
FILE_CASES = ["truncated-core", "core-of-another-binary", "empty-core", "empty-binary", "binary-as-core",
              "core-as-binary", "non-go-elf", "stripped-binary"]
CASES = ([("classic", c) for c in CLASSIC_MAP_CASES + FILE_CASES]
         + [("swiss", c) for c in SWISS_MAP_CASES + FILE_CASES])


class Corpus:
    """scripts/corrupt.py output per impl, made once per session in a temp dir."""

    def __init__(self, tmp_path_factory):
        self.tmp = tmp_path_factory
        self.made = {}
        self.originals = {}

    def cases(self, impl):
        if impl not in self.made:
            tag = pick(impl, {"classic": "go1.23", "swiss": "go1.26"}[impl])
            if tag is None:
                pytest.skip("no %s fixture selected" % impl)
            row = F.fixture(tag)
            others = [F.fixture(t) for t in F.all_tags(impl) if t != tag]
            out = str(self.tmp.mktemp("corrupt-" + tag))
            for p in (row["core"], row["binary"]):
                self.originals.setdefault(p, F.sha256_file(p))
            cmd = [sys.executable, CORRUPT_PY, "--fixture", row["dir"], "--out", out, "--gomap", GOMAP]
            if others:
                cmd += ["--other", others[0]["dir"]]
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                               timeout=600)
            assert r.returncode == 0, r.stdout
            with open(os.path.join(out, "cases.json")) as f:
                cases = {c["name"]: c for c in json.load(f)}
            self.made[impl] = (row, cases)
        return self.made[impl]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    return Corpus(tmp_path_factory)


def target_args(case):
    args = ["--binary", case["binary"]]
    if case["core"]:
        args += ["--core", case["core"]]
    return args


def corrupt_messages(doc):
    msgs = []
    for f in doc["findings"]:
        if f["kind"] == "corrupt":
            msgs.append(f["message"])
            msgs += [str(p) for p in (f.get("numbers") or {}).get("problems", [])]
    return msgs


@pytest.mark.parametrize("impl,name", CASES, ids=["%s-%s" % c for c in CASES])
def test_corruption_corpus(corpus, impl, name):
    row, cases = corpus.cases(impl)
    if name not in cases:
        pytest.fail("%s: corrupt.py could not make this case here (see its output)" % name)
    case = cases[name]
    hashes = {p: F.sha256_file(p) for p in (case["core"], case["binary"]) if p and os.path.getsize(p) < (1 << 31)}
    tgt = target_args(case)
    expr = case["expr"]
    if case["expect"] == "error":
        for cmd in (["show", expr, "--json"], ["show", expr], ["buckets", expr], ["check", expr], ["maps"]):
            code, out, err, dt = gomap(cmd[0], *tgt, *cmd[1:])
            assert code == 2, (cmd, code, out[:500], err)
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("gomap: error: "), err
            assert case["needle"].lower() in lines[0].lower(), (cmd, lines[0])
            assert out == ""
    else:
        code, out, err, dt = gomap("show", *tgt, expr, "--json", "--limit", "0")
        assert code == 0, err
        doc = json.loads(out)
        msgs = corrupt_messages(doc)
        assert any(case["needle"] in m for m in msgs), "%s: no corrupt finding naming %r: %s" % (name, case["needle"], msgs)
        assert all(f["severity"] == "error" for f in doc["findings"] if f["kind"] == "corrupt")
        assert len(doc["entries"]) >= case["min_entries"], (name, len(doc["entries"]))
        if case["exact_entries"]:
            truth = F.load_truth(row["truth"])["maps"][expr]
            diff = F.diff_entries(truth["entries"], doc["entries"])
            assert not diff, "%s: the entries that were safe to read differ from the truth:\n%s" % (name, diff)
        # The other views of the same map: text, raw buckets, the health check (exit 1: an error).
        code, out, err, _ = gomap("show", *tgt, expr)
        assert code == 0 and "corrupt" in out, (err, out[-2000:])
        code, out, err, _ = gomap("buckets", *tgt, expr, "--json")
        assert code == 0, err
        json.loads(out)
        code, out, err, _ = gomap("buckets", *tgt, expr)
        assert code == 0, err
        code, out, err, _ = gomap("check", *tgt, expr, "--json")
        if case.get("value_level"):
            assert code in (0, 1), err  # check reads no keys or values: it cannot see a bad string
        else:
            assert code == 1, (code, err)
            assert any(f["kind"] == "corrupt" for m in json.loads(out) for f in m["findings"])
    # Read-only: nothing the commands were given changed.
    for p, h in hashes.items():
        assert F.sha256_file(p) == h, "%s was modified" % p


def test_corrupt_core_census_survives(corpus):
    """`maps` and `check` over every variable of the damaged cores: bounded, and the damage shows."""
    for impl in ("classic", "swiss"):
        try:
            row, cases = corpus.cases(impl)
        except pytest.skip.Exception:
            continue
        case = cases["count-far"]
        code, out, err, dt = gomap("maps", *target_args(case), "--json")
        assert code == 0, err
        census = {m["name"]: m for m in json.loads(out)}
        assert census[case["expr"]]["findings"], census[case["expr"]]
        code, out, err, dt = gomap("check", *target_args(case))
        assert code == 1 and "corrupt" in out


def test_originals_untouched(corpus):
    """The cache's fixture cores and binaries, which corrupt.py copied from, are unchanged."""
    for impl in ("classic", "swiss"):
        try:
            corpus.cases(impl)
        except pytest.skip.Exception:
            pass
    assert corpus.originals
    for p, h in corpus.originals.items():
        assert F.sha256_file(p) == h, p


# ---- live under change ----------------------------------------------------------------------------

class Churn:
    """fixtures/churn built with a fixture's toolchain and running; killed on exit."""

    def __init__(self, row):
        self.row = row

    def __enter__(self):
        cache = F.CACHE
        self.tmp = tempfile.mkdtemp(prefix="gomap-churn-")
        self.binary = os.path.join(self.tmp, "churn")
        env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="", GOENV="off", CGO_ENABLED="0",
                   GOCACHE=os.path.join(cache, "gocache"), GOPATH=os.path.join(cache, "gopath"),
                   GOMODCACHE=os.path.join(cache, "gopath", "pkg", "mod"))
        if self.row.get("goexperiment"):
            env["GOEXPERIMENT"] = self.row["goexperiment"]
        r = subprocess.run([self.row["go"], "build", "-trimpath", "-o", self.binary, "."],
                           cwd=os.path.join(REPO, "fixtures", "churn"), env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)
        assert r.returncode == 0, r.stdout
        ready = os.path.join(self.tmp, "ready")
        self.proc = subprocess.Popen([self.binary], cwd=self.tmp, env=dict(os.environ, GOMAP_READY=ready),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=F._child_setup, start_new_session=True)
        deadline = time.monotonic() + 60
        while not os.path.exists(ready):
            assert self.proc.poll() is None, "churn exited"
            assert time.monotonic() < deadline, "churn never got ready"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        shutil.rmtree(self.tmp, ignore_errors=True)


def churn_rows():
    rows = []
    for impl, pref in (("classic", "go1.23"), ("swiss", "go1.26")):
        tag = pick(impl, pref)
        if tag:
            rows.append(tag)
    return rows


def check_read(doc, expr):
    """A read of a changing map: consistent, or flagged. Returns 'clean' or 'flagged'."""
    kinds = {f["kind"] for f in doc["findings"]}
    flagged = "writing" in kinds or "corrupt" in kinds
    entries = doc["entries"]
    if expr == "main.churnMap":
        torn = [e for e in entries if e["value"] != e["key"] * 3 + 1]
    else:
        torn = [e for e in entries if e["value"] != "v" + e["key"]]
    keys = [json.dumps(e["key"]) for e in entries]
    duplicated = len(keys) != len(set(keys))
    adds_up = len(entries) == doc["len"] == doc["stats"]["live"]
    if torn or duplicated or not adds_up:
        assert flagged, ("%s: a read that does not add up was presented as exact: len %s, %d entries, "
                         "live %s, %d torn, duplicates %s, findings %s"
                         % (expr, doc["len"], len(entries), doc["stats"]["live"], len(torn), duplicated, kinds))
        return "flagged"
    return "flagged" if flagged else "clean"


@pytest.mark.parametrize("tag", churn_rows())
def test_live_map_under_change_cli(tag):
    row = F.fixture(tag)
    with Churn(row) as ch:
        seen = {"clean": 0, "flagged": 0}
        t_end = time.monotonic() + 20
        n = 0
        while time.monotonic() < t_end or n < 10:
            expr = "main.churnMap" if n % 3 else "main.churnStr"
            code, out, err, dt = gomap("show", "--pid", ch.proc.pid, expr, "--json", "--limit", "0")
            assert code == 0, err
            doc = json.loads(out)
            seen[check_read(doc, expr)] += 1
            # The other commands must survive the change too.
            if n % 4 == 0:
                code, out, err, _ = gomap("buckets", "--pid", ch.proc.pid, expr, "--json")
                assert code == 0, err
                json.loads(out)
                code, out, err, _ = gomap("check", "--pid", ch.proc.pid, "--json")
                assert code in (0, 1), err
                json.loads(out)
            n += 1
        assert ch.proc.poll() is None, "the inspected process died"
        print("%s: %d reads, %s" % (tag, n, seen))
        # No false alarms: with the writer stopped, a read is clean (unless it stopped mid-write).
        os.kill(ch.proc.pid, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 10
            while proc_state(ch.proc.pid) != "T":
                assert time.monotonic() < deadline
                time.sleep(0.01)
            for expr in ("main.churnMap", "main.churnStr"):
                code, out, err, _ = gomap("show", "--pid", ch.proc.pid, expr, "--json", "--limit", "0")
                assert code == 0, err
                doc = json.loads(out)
                kinds = {f["kind"] for f in doc["findings"]}
                if "writing" not in kinds:
                    assert "corrupt" not in kinds, [f["message"] for f in doc["findings"]]
                    assert check_read(doc, expr) == "clean"
        finally:
            os.kill(ch.proc.pid, signal.SIGCONT)


def _gdb_usable():
    if not os.path.exists(os.path.join(REPO, "python", "gomap.py")):
        return "python/gomap.py does not exist"
    try:
        subprocess.run(["gdb", "--version"], stdout=subprocess.PIPE, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "no gdb"
    return None


@pytest.mark.parametrize("tag", churn_rows())
def test_live_map_under_change_gdb(tag):
    why = _gdb_usable()
    if why:
        pytest.fail("gdb with gomap is not usable here: %s (scripts/setup.sh installs and builds it)" % why, pytrace=False)
    row = F.fixture(tag)
    with Churn(row) as ch:
        for i in range(4):
            expr = "main.churnMap" if i % 2 == 0 else "main.churnStr"
            try:
                p = subprocess.run(["gdb", "-nx", "-p", str(ch.proc.pid), "-batch",
                                    "-ex", "source %s" % os.path.join(REPO, "python", "gomap.py"),
                                    "-ex", "gomap show %s --json --limit 0" % expr],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                   timeout=120)
            except subprocess.TimeoutExpired:
                pytest.fail("gdb + gomap hung on a changing map")
            assert "Traceback" not in p.stderr + p.stdout and "panicked" not in p.stderr + p.stdout, p.stderr[-3000:]
            line = next((l for l in p.stdout.splitlines() if l.startswith("{")), None)
            assert line, "no JSON from gdb: stdout %s stderr %s" % (p.stdout[-2000:], p.stderr[-2000:])
            doc = json.loads(line)
            # gdb stops the process while it reads: the map is frozen, but a write may have been in flight.
            check_read(doc, expr)
            time.sleep(0.3)
        # Detached: the process runs on.
        assert ch.proc.poll() is None, "gdb left the process dead"
        st = open("/proc/%d/stat" % ch.proc.pid).read().split(")")[1].split()[0]
        assert st in ("R", "S", "D"), "process left in state %s" % st


# ---- read-only proof on a live process -------------------------------------------------------------

def writable_memory_digest(pid):
    """sha256 over every writable private mapping of a (stopped) process, read via /proc/PID/mem."""
    h = hashlib.sha256()
    total = 0
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        for line in maps:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if "w" not in parts[1] or (len(parts) > 5 and parts[5].startswith("[v")):
                continue
            h.update(parts[0].encode())
            at = lo
            while at < hi:
                n = min(hi - at, 1 << 20)
                try:
                    mem.seek(at)
                    chunk = mem.read(n)
                except OSError:
                    chunk = b"<unreadable>"
                h.update(chunk)
                total += len(chunk)
                at += n
    return h.hexdigest(), total


def proc_state(pid):
    return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0]


@pytest.mark.parametrize("tag", churn_rows())
def test_live_process_memory_unchanged(tag):
    """Stop a fixture process, checksum its writable memory, run every command, checksum again."""
    with F.LiveFixture(tag) as (pid, truth, paths):
        os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while proc_state(pid) != "T":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        d0, size = writable_memory_digest(pid)
        assert size > 0
        commands = [["show", "main.tombMap", "--json", "--limit", "0"], ["show", "main.ifaceMap", "--depth", "2"],
                    ["buckets", "main.growingMap", "--json"], ["check"], ["maps", "--json"], ["layout"]]
        for cmd in commands:
            code, out, err, _ = gomap(cmd[0], "--pid", pid, *cmd[1:])
            assert code in (0, 1), (cmd, err)
            d, _ = writable_memory_digest(pid)
            assert d == d0, "%s changed the memory of the process" % cmd
            assert proc_state(pid) == "T", "%s resumed the stopped process" % cmd
        os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("tag", churn_rows())
def test_core_bytes_unchanged_by_every_command(tag):
    row = F.fixture(tag)
    before = {p: F.sha256_file(p) for p in (row["core"], row["binary"])}
    mtime = os.stat(row["core"]).st_mtime_ns
    tgt = ["--binary", row["binary"], "--core", row["core"]]
    for cmd in (["show", "main.tombMap", "--json", "--limit", "0", "--depth", "3"], ["show", "main.nestedMap", "--depth", "2"],
                ["buckets", "main.growingMap", "--json"], ["buckets", "main.tombMap", "--range", "0:3"],
                ["check"], ["maps", "--json"], ["layout", "--json"]):
        code, out, err, _ = gomap(cmd[0], *tgt, *cmd[1:])
        assert code in (0, 1), (cmd, err)
    assert {p: F.sha256_file(p) for p in before} == before
    assert os.stat(row["core"]).st_mtime_ns == mtime


@pytest.mark.parametrize("impl", ["classic", "swiss"])
def test_gdb_on_corrupt_core(corpus, impl):
    """gdb with the damaged core: every damaged map is one report with its `corrupt` finding, never a
    Python traceback or a dead gdb."""
    why = _gdb_usable()
    if why:
        pytest.fail("gdb with gomap is not usable here: %s (scripts/setup.sh installs and builds it)" % why, pytrace=False)
    row, cases = corpus.cases(impl)
    maps = [c for c in cases.values() if c["expect"] == "corrupt" and not c.get("value_level")]
    core = maps[0]["core"]
    cmd = ["gdb", "-nx", "-batch", row["binary"], core, "-ex", "source %s" % os.path.join(REPO, "python", "gomap.py")]
    for c in maps:
        cmd += ["-ex", "gomap check %s --json" % c["expr"]]
    cmd += ["-ex", "echo GDB-STILL-ALIVE\\n"]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("gdb + gomap hung on a corrupt core")
    both = p.stdout + p.stderr
    assert "Traceback" not in both and "panicked" not in both, both[-3000:]
    assert "GDB-STILL-ALIVE" in p.stdout, both[-3000:]
    docs = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("[{")]
    assert len(docs) == len(maps), both[-3000:]
    for c, doc in zip(maps, docs):
        msgs = corrupt_messages(doc[0])
        assert any(c["needle"] in m for m in msgs), (c["name"], msgs)
