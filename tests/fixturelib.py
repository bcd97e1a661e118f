"""Helpers for gomap's test suites: the fixture matrix, ground truth, and live fixture processes.

Python 3 standard library only. The fixtures themselves are built by scripts/fixtures.sh into
${GOMAP_CACHE:-~/.cache/gomap}/fixtures/<hash>/<tag>/ (binary `maps`, kernel `core`, `truth.json`,
`truth.json.big.json`, `build.json`); see that script's --help.

Environment: GOMAP_CACHE (cache root), GOMAP_TAGS (comma list restricting the matrix).
"""

import ctypes
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES_SH = os.path.join(REPO, "scripts", "fixtures.sh")
CACHE = os.environ.get("GOMAP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "gomap")
GOMAP = os.environ.get("GOMAP_BIN", os.path.join(REPO, "target", "release", "gomap"))


def gomap(*args, timeout: float = 120):
    """Runs the gomap CLI: (exit status, stdout, stderr)."""
    p = subprocess.run([GOMAP] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


class FixturesMissing(RuntimeError):
    """The fixture matrix (or a requested tag) has not been built."""


# ---- the matrix ---------------------------------------------------------------------------------

def _run_script(*args: str, timeout: float = 60) -> str:
    env = dict(os.environ, GOMAP_CACHE=CACHE)
    r = subprocess.run([FIXTURES_SH, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=timeout)
    if r.returncode != 0:
        raise FixturesMissing("scripts/fixtures.sh %s failed: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


def tag_specs() -> List[Dict[str, Any]]:
    """Every tag of the matrix and what it is ({"tag","impl","go","goexperiment","pie","cgo"}),
    restricted by GOMAP_TAGS; builds nothing."""
    specs = [json.loads(line) for line in _run_script("--specs").splitlines() if line.strip()]
    wanted = selected_tags()
    if wanted is not None:
        known = {s["tag"] for s in specs}
        unknown = [t for t in wanted if t not in known]
        if unknown:
            raise FixturesMissing("GOMAP_TAGS names unknown tags %s (known: %s)" % (unknown, sorted(known)))
        specs = [s for s in specs if s["tag"] in wanted]
    return specs


def all_tags(impl: Optional[str] = None) -> List[str]:
    """Tag names (restricted by GOMAP_TAGS), optionally only those of one impl ("classic"/"swiss")."""
    return [s["tag"] for s in tag_specs() if impl is None or s["impl"] == impl]


def matrix_tags() -> List[str]:
    """all_tags() for parametrizing tests when a module is imported; [] when the matrix is missing. Then
    nothing passes for want of tags: the suite's tests that take `fixture_matrix` fail, and a module run
    on its own collects no test (pytest exits 5)."""
    try:
        return all_tags()
    except FixturesMissing:
        return []


def selected_tags() -> Optional[List[str]]:
    raw = os.environ.get("GOMAP_TAGS", "").strip()
    if not raw:
        return None
    return [t.strip() for t in raw.split(",") if t.strip()]


def fixture_dir() -> str:
    """The fixture set for the current sources (it may not be built yet)."""
    return _run_script("--dir").strip()


def _read_matrix(d: str) -> List[Dict[str, Any]]:
    path = os.path.join(d, "matrix.json")
    if not os.path.exists(path):
        raise FixturesMissing("no %s: run scripts/fixtures.sh" % path)
    with open(path) as f:
        rows = json.load(f)
    out = []
    for row in rows:
        # Paths are rebuilt from the directory actually read, so a moved cache still works.
        tdir = os.path.join(d, row["tag"])
        row = dict(row, dir=tdir, binary=os.path.join(tdir, "maps"), core=os.path.join(tdir, "core"),
                   truth=os.path.join(tdir, "truth.json"), big_truth=os.path.join(tdir, "truth.json.big.json"))
        out.append(row)
    return out


def matrix(tags: Optional[Iterable[str]] = None, current: bool = False) -> List[Dict[str, Any]]:
    """Built fixtures as dicts: tag, impl, go, go_version, goexperiment, pie, cgo, big, pid, dir,
    binary, core, truth, big_truth (absolute paths). Restricted to `tags`, else to GOMAP_TAGS.
    current=True reads ${GOMAP_CACHE}/fixtures/current (the last build) instead of the set that
    matches the current sources. Raises FixturesMissing when a requested tag is not built."""
    d = os.path.join(CACHE, "fixtures", "current") if current else fixture_dir()
    rows = _read_matrix(os.path.realpath(d))
    wanted = list(tags) if tags is not None else selected_tags()
    if wanted is None:
        wanted = all_tags()
    by_tag = {r["tag"]: r for r in rows}
    missing = [t for t in wanted if t not in by_tag]
    if missing:
        raise FixturesMissing("fixtures not built for %s in %s: run scripts/fixtures.sh --tags %s"
                              % (missing, d, ",".join(missing)))
    return [by_tag[t] for t in wanted]


def fixture(tag: str) -> Dict[str, Any]:
    return matrix([tag])[0]


def ensure_matrix(tags: Optional[Iterable[str]] = None, timeout: float = 1800) -> List[Dict[str, Any]]:
    """matrix(), building what is missing with scripts/fixtures.sh first (slow only the first time)."""
    wanted = list(tags) if tags is not None else (selected_tags() or all_tags())
    try:
        return matrix(wanted)
    except FixturesMissing:
        pass
    env = dict(os.environ, GOMAP_CACHE=CACHE)
    r = subprocess.run([FIXTURES_SH, "--tags", ",".join(wanted)], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=timeout)
    if r.returncode != 0:
        raise FixturesMissing("scripts/fixtures.sh --tags %s failed:\n%s" % (",".join(wanted), r.stdout[-4000:]))
    return matrix(wanted)


# ---- ground truth ---------------------------------------------------------------------------------

def load_truth(path: str, big: bool = False) -> Dict[str, Any]:
    """A truth.json document: {"go_version","pid","impl","cgo","big_truth","maps": {EXPR: {...}}}.
    Each map: type, address ("0x..."), len, entries [{"key","value"}], expect_classic, expect_swiss
    (finding kinds that must be reported), facts (what the fixture measured in memory).
    big=True merges the maps of the .big.json companion (main.bigMap, 1M entries by default)."""
    with open(path) as f:
        doc = json.load(f)
    if big:
        bpath = os.path.join(os.path.dirname(path), doc.get("big_truth") or os.path.basename(path) + ".big.json")
        with open(bpath) as f:
            doc["maps"].update(json.load(f)["maps"])
    return doc


def expected_findings(truth_map: Dict[str, Any], impl: str) -> List[str]:
    return list(truth_map["expect_" + impl])


def _norm(v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return v
    if isinstance(v, float):
        # Compare floats by value: 1.0 == 1 and -0.0 == 0 (Go's encoder writes float 1 as `1`,
        # which Python reads as int). Integers stay exact (no float rounding of big ints).
        if math.isfinite(v) and v.is_integer():
            return int(v)
        return v
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


def canonical(value: Any) -> str:
    """One value as canonical JSON text (see canonical_entries)."""
    return json.dumps(_norm(value), sort_keys=True, separators=(",", ":"))


def canonical_entries(entries: Iterable[Dict[str, Any]]) -> List[str]:
    """Sorted canonical JSON strings of {"key","value"} pairs: compare two renderings of a map with ==
    (a multiset: the two NaN keys of floatMap stay two entries). Extra fields are ignored."""
    return sorted(canonical({"key": e["key"], "value": e["value"]}) for e in entries)


def diff_entries(expected: Iterable[Dict[str, Any]], got: Iterable[Dict[str, Any]], limit: int = 10) -> str:
    """A short human-readable difference between two entry lists ("" when equal)."""
    from collections import Counter
    a, b = Counter(canonical_entries(expected)), Counter(canonical_entries(got))
    missing, extra = list((a - b).elements()), list((b - a).elements())
    if not missing and not extra:
        return ""
    lines = ["%d missing, %d unexpected" % (len(missing), len(extra))]
    lines += ["  - " + m for m in missing[:limit]] + ["  + " + x for x in extra[:limit]]
    return "\n".join(lines)


# ---- live fixture processes --------------------------------------------------------------------

class Live(NamedTuple):
    pid: int
    truth: Dict[str, Any]
    paths: Dict[str, str]   # tag, binary, dir (temp cwd), truth, big_truth, log


_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    # Die with the parent (even if it is SIGKILLed) and never leave a core behind.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except Exception:
        pass


class LiveFixture:
    """Run a fixture binary, wait for its truth, yield Live(pid, truth, paths); SIGKILL it on exit.

        with LiveFixture("go1.26") as (pid, truth, paths):
            ...  # inspect /proc/<pid>/mem, attach gdb, run the CLI with --pid

    `tag` may also be a matrix row (dict). big sets GOMAP_BIG (bigMap size; default 1000 here to keep
    start-up fast; pass 1000000 for the cores' size). big_truth=True merges the .big.json maps.
    The process is started in a fresh temp dir, in its own session, with PR_SET_PDEATHSIG so it dies
    even if the test runner is killed. Note: it is tied to the *thread* that started it.
    """

    def __init__(self, tag, big: int = 1000, timeout: float = 120, big_truth: bool = False,
                 env: Optional[Dict[str, str]] = None):
        self.row = tag if isinstance(tag, dict) else fixture(tag)
        self.big, self.timeout, self.big_truth, self.extra_env = big, timeout, big_truth, env or {}
        self.proc: Optional[subprocess.Popen] = None
        self.tmp: Optional[str] = None

    def __enter__(self) -> Live:
        self.tmp = tempfile.mkdtemp(prefix="gomap-live-%s-" % self.row["tag"])
        truth = os.path.join(self.tmp, "truth.json")
        log = os.path.join(self.tmp, "stderr.log")
        env = dict(os.environ, GOMAP_TRUTH=truth, GOMAP_BIG=str(self.big), GOTRACEBACK="all")
        env.update(self.extra_env)
        try:
            with open(log, "w") as logf:
                self.proc = subprocess.Popen([self.row["binary"]], cwd=self.tmp, env=env,
                                             stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                             preexec_fn=_child_setup, start_new_session=True)
            deadline = time.monotonic() + self.timeout
            while not os.path.exists(truth):
                if self.proc.poll() is not None:
                    raise RuntimeError("fixture %s exited with %s before writing its truth: %s"
                                       % (self.row["tag"], self.proc.returncode, _tail(log)))
                if time.monotonic() > deadline:
                    raise RuntimeError("fixture %s wrote no truth within %ss" % (self.row["tag"], self.timeout))
                time.sleep(0.02)
            doc = load_truth(truth, big=self.big_truth)
            if doc["pid"] != self.proc.pid:
                raise RuntimeError("truth pid %s != started pid %s" % (doc["pid"], self.proc.pid))
        except BaseException:
            self._cleanup()
            raise
        paths = {"tag": self.row["tag"], "binary": self.row["binary"], "dir": self.tmp, "truth": truth,
                 "big_truth": truth + ".big.json", "log": log}
        return Live(self.proc.pid, doc, paths)

    def __exit__(self, *exc) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                except PermissionError:
                    self.proc.kill()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


def _tail(path: str, n: int = 2000) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


# The LLDB the tests drive: $GOMAP_LLDB, else the lldb-19 scripts/toolchains.sh installs, else an older one.
LLDB = os.environ.get("GOMAP_LLDB") or shutil.which("lldb-19") or shutil.which("lldb-16") or shutil.which("lldb")


def interrupt_when_started(argv: List[str], marker: str = "start", delay: float = 0.3,
                           timeout: float = 120) -> Tuple[str, int]:
    """Runs a debugger in batch mode, sends it SIGINT (Ctrl-C) `delay` seconds after it printed the
    line `marker`, and returns (the output after the marker, exit status)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         universal_newlines=True)
    try:
        while True:
            line = p.stdout.readline()
            assert line, "%s ended before the commands ran" % argv[0]
            if line.strip() == marker:
                break
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        out = p.stdout.read()
        p.wait(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
    return out, p.returncode


def assert_map_matches_truth(got: Dict[str, Any], tm: Dict[str, Any], expr: str, impl: str) -> None:
    """A gomap JSON map document (CLI, gdb or LLDB) against the fixture's own truth for that map:
    exactly the same entries, len and type, the expected implementation, nothing cut off."""
    diff = diff_entries(tm["entries"], got["entries"])
    assert not diff, "%s: entries differ from the fixture's truth:\n%s" % (expr, diff)
    assert got["len"] == tm["len"], expr
    assert got["type"] == tm["type"], expr
    assert got["impl"] == impl, expr
    assert got["truncated"] is False, expr


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- more fixture programs: fixtures/<name>, built per tag, with a kernel core and its truth -------
#
# Every suite that needs its own Go program (hostile values, heap truth, census, snapshots) uses these,
# so each program is built once per toolchain and its core taken once, cached outside the repository:
#   ${GOMAP_CACHE}/programs/<name>/<hash of sources + toolchain + flags>/{<name>, core, truth.json, run.log}
# The program writes its truth to $GOMAP_TRUTH (a JSON object with at least "pid") once its state is
# built, then blocks (`for { time.Sleep(time.Hour) }`); gomap's tests read it from a core or live.

import fcntl  # noqa: E402


def _program_hash(name: str, row: Dict[str, Any], flags: Iterable[str], env: Dict[str, str]) -> str:
    src = os.path.join(REPO, "fixtures", name)
    h = hashlib.sha256()
    for root, _dirs, files in sorted(os.walk(src)):
        for fn in sorted(files):
            p = os.path.join(root, fn)
            with open(p, "rb") as f:
                h.update(os.path.relpath(p, src).encode() + b"\0" + f.read() + b"\0")
    h.update(("%s|%s|%s|%s|%s|%s" % (row["go"], row.get("go_version", ""), row["goexperiment"], row["pie"],
                                      row.get("cgo", False), sorted(flags))).encode())
    h.update(json.dumps(sorted(env.items())).encode())
    return h.hexdigest()[:16]


def go_vars(row: Dict[str, Any]) -> Dict[str, str]:
    """The go command's environment for a matrix row's toolchain (offline, the shared caches)."""
    return dict(GOTOOLCHAIN="local", GOFLAGS="", GOENV="off", GOEXPERIMENT=row["goexperiment"],
                CGO_ENABLED="1" if row.get("cgo") else "0", GOCACHE=os.path.join(CACHE, "gocache"),
                GOPATH=os.path.join(CACHE, "gopath"), GOMODCACHE=os.path.join(CACHE, "gopath", "pkg", "mod"))


def _go_env(row: Dict[str, Any]) -> Dict[str, str]:
    return dict(os.environ, **go_vars(row))


class _Lock:
    """An exclusive lock file, so two test runs (or two checkouts) never build the same thing at once."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.f = open(self.path, "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def _write_json(path: str, doc: Any) -> None:
    with open(path, "w") as f:
        json.dump(doc, f)


def _go_build(row: Dict[str, Any], flags: List[str], target: str, cwd: str, env: Dict[str, str],
              out: Dict[str, Any], timeout: float, what: str, before_rename=None) -> None:
    """`go build` of `target` with `row`'s toolchain (PIE when the tag is) into out["binary"], the log in
    out["build_log"]; the binary appears only once whole. The caller holds the build's lock."""
    os.makedirs(out["dir"], exist_ok=True)
    cmd = [row["go"], "build", "-trimpath", *flags, "-o", out["binary"] + ".tmp"]
    if row["pie"]:
        cmd.append("-buildmode=pie")
    p = subprocess.run(cmd + [target], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=timeout)
    with open(out["build_log"], "w") as f:
        f.write(p.stdout)
    if p.returncode != 0:
        raise FixturesMissing("building %s with %s failed:\n%s" % (what, row["go"], p.stdout[-4000:]))
    if before_rename is not None:
        before_rename()
    os.rename(out["binary"] + ".tmp", out["binary"])


def program(name: str, tag, flags: Iterable[str] = (), env: Optional[Dict[str, str]] = None,
            timeout: float = 600) -> Dict[str, Any]:
    """fixtures/<name> built with the toolchain of `tag` (a tag or a matrix row), optimized as users
    ship it unless `flags` (extra `go build` flags, e.g. ["-gcflags=-m"]) say otherwise.
    Returns {"tag", "row", "dir", "binary", "build_log"}; cached, built once."""
    row = tag if isinstance(tag, dict) else fixture(tag)
    flags = list(flags)
    env = dict(env or {})
    d = os.path.join(CACHE, "programs", name, _program_hash(name, row, flags, env), row["tag"])
    binary = os.path.join(d, name)
    out = {"tag": row["tag"], "row": row, "dir": d, "binary": binary, "build_log": os.path.join(d, "build.log")}
    _mark_used(os.path.dirname(d))
    if os.path.exists(binary):
        return out
    with _Lock(d + ".lock"):
        if os.path.exists(binary):
            return out
        _go_build(row, flags, ".", os.path.join(REPO, "fixtures", name), dict(_go_env(row), **env), out, timeout,
                  "fixtures/" + name)
    _prune_stale(os.path.dirname(os.path.dirname(d)), keep=os.path.dirname(d))
    return out


# A build of a fixture program (with its cores) nothing has used for this long is removed when a newer
# build of the same program is made: every edit of a fixture's source makes a new hash directory.
STALE_DAYS = 3


def _mark_used(path: str) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def _prune_stale(parent: str, keep: str) -> None:
    cutoff = time.time() - STALE_DAYS * 86400
    try:
        entries = os.listdir(parent)
    except OSError:
        return
    for e in entries:
        path = os.path.join(parent, e)
        try:
            if path == keep or not os.path.isdir(path) or os.stat(path).st_mtime >= cutoff:
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)


def program_core(name: str, tag, flags: Iterable[str] = (), env: Optional[Dict[str, str]] = None,
                 run_env: Optional[Dict[str, str]] = None, timeout: float = 300) -> Dict[str, Any]:
    """program(), run until it writes $GOMAP_TRUTH, then aborted (SIGABRT, GOTRACEBACK=crash) into a
    kernel core. Returns program()'s dict plus "core", "truth" (path), "truth_doc" (parsed).
    Cached: the core is taken once per build (and per `run_env`)."""
    prog = program(name, tag, flags, env)
    tagdir = prog["dir"]
    if run_env:
        tagdir = os.path.join(tagdir, "run-" + hashlib.sha256(json.dumps(sorted(run_env.items())).encode()).hexdigest()[:12])
    core, truth = os.path.join(tagdir, "core"), os.path.join(tagdir, "truth.json")
    done = os.path.join(tagdir, ".complete")
    if not os.path.exists(done):
        with _Lock(tagdir + ".core.lock"):
            if not os.path.exists(done):
                _take_core(prog["binary"], tagdir, core, truth, dict(run_env or {}), timeout)
                open(done, "w").close()
    doc = load_truth(truth) if name == "maps" else json.load(open(truth))
    return dict(prog, core=core, truth=truth, truth_doc=doc)


def _take_core(binary: str, d: str, core: str, truth: str, run_env: Dict[str, str], timeout: float,
               args: Iterable[str] = (), argv0: Optional[str] = None) -> None:
    os.makedirs(d, exist_ok=True)
    for p in (core, truth):
        if os.path.exists(p):
            os.unlink(p)
    pat = open("/proc/sys/kernel/core_pattern").read().strip()
    if pat.startswith("|") or "/" in pat or not pat:
        raise FixturesMissing("core_pattern %r does not write a file in the cwd (as root: echo core > "
                              "/proc/sys/kernel/core_pattern)" % pat)
    log = os.path.join(d, "run.log")

    def limits():
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    env = dict(os.environ, GOMAP_TRUTH=truth, GOTRACEBACK="crash", **run_env)
    with open(log, "w") as logf:
        proc = subprocess.Popen([argv0 or binary, *args], executable=binary, cwd=d, env=env, stdin=subprocess.DEVNULL,
                                stdout=logf, stderr=logf, preexec_fn=limits, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not os.path.exists(truth):
            if proc.poll() is not None:
                raise FixturesMissing("%s exited with %s before writing its truth: %s" % (binary, proc.returncode, _tail(log)))
            if time.monotonic() > deadline:
                raise FixturesMissing("%s wrote no truth within %ss" % (binary, timeout))
            time.sleep(0.05)
        # The truth file is written whole before the program blocks; give it a moment to be renamed/closed.
        _wait_json(truth, proc, log)
        proc.send_signal(signal.SIGABRT)
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        # Children the program started (e.g. the go command's `go run` child) are in its session.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    prefix = pat.split("%")[0]
    for cand in [os.path.join(d, prefix), os.path.join(d, "%s.%d" % (prefix, proc.pid))] + \
            [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.startswith(prefix)]:
        if os.path.isfile(cand) and os.path.getsize(cand) > 0 and not cand.endswith((".lock", ".json", ".log")):
            if cand != core:
                os.rename(cand, core)
            return
    raise FixturesMissing("no core file in %s after SIGABRT (core_pattern %r)" % (d, pat))


def _wait_json(path: str, proc, log: str, timeout: float = 30) -> Dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path) as f:
                return json.load(f)
        except (ValueError, OSError):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise FixturesMissing("%s: truth is not valid JSON: %s" % (path, _tail(log)))
            time.sleep(0.05)


class LiveProgram:
    """A fixture program (a path from program()) running until it wrote its truth; killed on exit.

        with LiveProgram(prog["binary"]) as (pid, truth, paths): ...
    """

    def __init__(self, binary: str, env: Optional[Dict[str, str]] = None, timeout: float = 120,
                 args: Iterable[str] = (), argv0: Optional[str] = None):
        self.binary, self.extra_env, self.timeout, self.args = binary, env or {}, timeout, list(args)
        self.argv0 = argv0
        self.proc: Optional[subprocess.Popen] = None
        self.tmp: Optional[str] = None

    def __enter__(self) -> Live:
        self.tmp = tempfile.mkdtemp(prefix="gomap-live-")
        truth, log = os.path.join(self.tmp, "truth.json"), os.path.join(self.tmp, "stderr.log")
        env = dict(os.environ, GOMAP_TRUTH=truth, GOTRACEBACK="all", **self.extra_env)
        try:
            with open(log, "w") as logf:
                self.proc = subprocess.Popen([self.argv0 or self.binary, *self.args], executable=self.binary,
                                             cwd=self.tmp, env=env, stdin=subprocess.DEVNULL,
                                             stdout=logf, stderr=logf, preexec_fn=_child_setup,
                                             start_new_session=True)
            deadline = time.monotonic() + self.timeout
            while not os.path.exists(truth):
                if self.proc.poll() is not None:
                    raise RuntimeError("%s exited with %s before writing its truth: %s"
                                       % (self.binary, self.proc.returncode, _tail(log)))
                if time.monotonic() > deadline:
                    raise RuntimeError("%s wrote no truth within %ss" % (self.binary, self.timeout))
                time.sleep(0.02)
            doc = _wait_json(truth, self.proc, log)
        except BaseException:
            LiveFixture._cleanup(self)  # same clean-up: kill the group, remove the temp dir
            raise
        return Live(self.proc.pid, doc, {"binary": self.binary, "dir": self.tmp, "truth": truth, "log": log})

    def __exit__(self, *exc) -> None:
        LiveFixture._cleanup(self)


# ---- programs nobody here wrote: commands of the toolchain's own distribution -------------------------
#
# A large real Go program for the census and the debugger front ends, with no network: every toolchain
# ships the sources of its commands (cmd/go, cmd/compile, ...) in GOROOT/src/cmd. Built once per
# toolchain, optimized as users ship them, cached under
#   ${GOMAP_CACHE}/programs/toolchain/<command>/<hash of toolchain + experiment + flags>/<tag>/<command>

def goroot(row: Dict[str, Any]) -> str:
    """The GOROOT of a matrix row's toolchain."""
    r = subprocess.run([row["go"], "env", "GOROOT"], env=_go_env(row), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    if r.returncode != 0 or not r.stdout.strip():
        raise FixturesMissing("%s env GOROOT failed: %s" % (row["go"], r.stderr.strip()))
    return r.stdout.strip()


def toolchain_command(pkg: str, tag, timeout: float = 1800) -> Dict[str, Any]:
    """`pkg` (a command of the standard distribution, e.g. "cmd/go") built from the GOROOT sources of
    `tag`'s toolchain with that toolchain (the tag's GOEXPERIMENT, PIE and cgo), like program().
    Returns {"tag", "row", "dir", "binary", "build_log", "goroot", "build_seconds"}; cached, built once."""
    row = tag if isinstance(tag, dict) else fixture(tag)
    name = pkg.rstrip("/").split("/")[-1]
    key = hashlib.sha256(("%s|%s|%s|%s|%s|%s" % (pkg, row["go"], row.get("go_version", ""), row["goexperiment"],
                                                 row["pie"], row.get("cgo", False))).encode()).hexdigest()[:16]
    d = os.path.join(CACHE, "programs", "toolchain", name, key, row["tag"])
    binary = os.path.join(d, name)
    meta = os.path.join(d, "build.json")
    root = goroot(row)
    out = {"tag": row["tag"], "row": row, "dir": d, "binary": binary, "build_log": os.path.join(d, "build.log"),
           "goroot": root}
    if not os.path.exists(binary):
        with _Lock(d + ".lock"):
            if not os.path.exists(binary):
                t0 = time.monotonic()
                _go_build(row, [], pkg, d, _go_env(row), out, timeout, pkg,
                          before_rename=lambda: _write_json(meta, {"pkg": pkg, "go": row["go"],
                                                                   "seconds": round(time.monotonic() - t0, 1)}))
    try:
        with open(meta) as f:
            out["build_seconds"] = json.load(f)["seconds"]
    except (OSError, ValueError, KeyError):
        out["build_seconds"] = None
    return out


def command_core(prog: Dict[str, Any], args: Iterable[str], run_env: Dict[str, str], key: str,
                 timeout: float = 600, argv0: Optional[str] = None) -> Dict[str, Any]:
    """A kernel core of `prog` (from toolchain_command) run with `args` in a directory of its own,
    taken (SIGABRT, GOTRACEBACK=crash) once $GOMAP_TRUTH exists: something the program started (a
    `go run` child) writes it when the program has done its work and waits. `key` names the run in the
    cache; `argv0` is the program's argv[0] (its path by default). Returns prog plus "core", "truth" (path), "truth_doc", "run_dir"."""
    d = os.path.join(prog["dir"], "run-" + key)
    core, truth, done = os.path.join(d, "core"), os.path.join(d, "truth.json"), os.path.join(d, ".complete")
    if not os.path.exists(done):
        with _Lock(d + ".core.lock"):
            if not os.path.exists(done):
                tmp = os.path.join(d, "tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                os.makedirs(tmp)
                env = dict(go_vars(prog["row"]), GOROOT=prog["goroot"], GOTMPDIR=tmp, **run_env)
                _take_core(prog["binary"], d, core, truth, env, timeout, args=args, argv0=argv0)
                shutil.rmtree(tmp, ignore_errors=True)
                open(done, "w").close()
    with open(truth) as f:
        doc = json.load(f)
    return dict(prog, core=core, truth=truth, truth_doc=doc, run_dir=d)
