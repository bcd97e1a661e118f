"""The census (`gomap maps`) of a large Go program nobody here wrote: the go command itself (cmd/go),
built from the GOROOT sources that every toolchain ships (no network needed), optimized as users ship
it, with the toolchain of each tag. The go command runs `go run fixtures/gocmd_child/main.go`: it loads
and builds that program (filling its package-level caches: packages, file hashes, build flags, the
standard library's tables) and then waits for it; the test takes a kernel core of the go command while
it waits (SIGABRT, GOTRACEBACK=crash), and also reads it live (`--pid`).

Ground truth comes from gdb, not from gomap and not from the program: tests/gdb_package_maps.py runs in
real gdb (batch mode, the program's own DWARF) and lists every package-level variable whose type is a
Go map, and maps held inline in package-level structs, with the header address and the header's own
count (`count`, or `used` for swiss maps). The census must list each of them at that address, under
one of the names gdb gives that address, with the same len and type. gdb also reads the header of
every other map the census found (maps in the heap, behind pointers, in other maps): same len.

Tags, and why only these: building cmd/go takes about 1-2 minutes of CPU per toolchain (once, cached
under ~/.cache/gomap/programs/toolchain) and the first `go run` compiles the child's dependencies
(once per toolchain, in the shared GOCACHE), so four toolchains are covered, one per map layout era:
go1.19 (classic maps, oldest toolchain, no malloc headers), go1.23 (classic maps, malloc headers, the
last classic-only release), go1.26 (swiss maps) and go1.27-mapsplitgroup (swiss maps with split
groups). GOMAP_TAGS restricts them as it does every suite.
"""

import functools
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

import fixturelib as F

GDB = os.environ.get("GOMAP_GDB") or shutil.which("gdb")
GDB_SCRIPT = os.path.join(F.REPO, "tests", "gdb_package_maps.py")
CHILD = os.path.join(F.REPO, "fixtures", "gocmd_child", "main.go")

COVERED = ["go1.19", "go1.23", "go1.26", "go1.27-mapsplitgroup"]
# The live test attaches to a running go command: one classic and one swiss toolchain.
LIVE = ["go1.23", "go1.26"]


# Every tag of the matrix (restricted by GOMAP_TAGS), and those of it that the go command covers.
ALL_TAGS = F.matrix_tags()
TAGS = [t for t in COVERED if t in ALL_TAGS]
LIVE_TAGS = [t for t in LIVE if t in ALL_TAGS]

pytestmark = pytest.mark.skipif(GDB is None, reason="gdb is not installed (it is the ground truth here)")


def gdb_truth(binary, target, headers=(), min_variables=1000):
    """tests/gdb_package_maps.py run in gdb on `target` (["CORE"] or ["-p", PID]): its JSON."""
    with tempfile.TemporaryDirectory(prefix="gomap-gdb-truth-") as tmp:
        out = os.path.join(tmp, "out.json")
        env = dict(os.environ, GOMAP_GDB_OUT=out)
        if headers:
            env["GOMAP_GDB_HEADERS"] = os.path.join(tmp, "headers.json")
            with open(env["GOMAP_GDB_HEADERS"], "w") as f:
                json.dump(list(headers), f)
        p = subprocess.run([GDB, "-batch", "-nx", "-x", GDB_SCRIPT, binary, *target], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=600)
        assert os.path.exists(out), "gdb wrote no truth (exit %s):\n%s" % (p.returncode, p.stdout[-3000:])
        with open(out) as f:
            doc = json.load(f)
    assert not doc["errors"], "gdb could not read: %s" % doc["errors"][:10]
    assert doc["variables"] > min_variables, "gdb saw only %d package variables" % doc["variables"]
    return doc


def census(*target):
    t0 = time.monotonic()
    code, out, err = F.gomap("maps", *target, "--json", timeout=300)
    secs = time.monotonic() - t0
    assert code == 0, "gomap maps %s failed: %s" % (" ".join(map(str, target)), err)
    return json.loads(out), secs


def argv0(prog):
    """The go command's argv[0]. A go command built with a GOEXPERIMENT (go1.27-mapsplitgroup) calls
    itself go1.27.3-X:mapsplitgroup and passes that as -goversion to its toolchain's compile, which was
    built without the experiment and refuses ("version does not match go tool version"); cmd/go leaves
    the flag out when os.Args[0] contains "go_bootstrap" (as make.bash's bootstrap go command runs the
    tools), so that is its argv[0] there. Nothing else in cmd/go looks at its argv[0]."""
    return os.path.join(os.path.dirname(prog["binary"]), "go_bootstrap") if prog["row"]["goexperiment"] else None


@functools.lru_cache(maxsize=None)
def core_case(tag):
    """cmd/go of `tag`, its core while `go run` waits, the census of that core, and gdb's truth."""
    prog = F.toolchain_command("cmd/go", tag)
    # The core is cached per toolchain and per version of the child program.
    c = F.command_core(prog, ["run", CHILD], {}, "gorun-" + F.sha256_file(CHILD)[:12], argv0=argv0(prog))
    rows, secs = census("--binary", c["binary"], "--core", c["core"])
    truth = gdb_truth(c["binary"], [c["core"]], headers=[r["address"] for r in rows])
    return c, rows, secs, truth


def check_against_gdb(rows, truth, what):
    """Every map gdb found in a package variable is in the census with the same address, len and type,
    under one of the names gdb gives that address; every census map's len is the header's count as
    gdb reads it."""
    assert truth["maps"], "%s: gdb found no map in the package variables" % what
    names = {}
    for m in truth["maps"]:
        names.setdefault(m["address"], set()).add(m["name"])
    by_addr = {}
    for r in rows:
        assert r["address"] not in by_addr, "%s: %s listed twice" % (what, r["address"])
        by_addr[r["address"]] = r
    problems = []
    for m in truth["maps"]:
        r = by_addr.get(m["address"])
        if r is None:
            problems.append("missing: %s at %s (len %d, %s)" % (m["name"], m["address"], m["len"], m["type"]))
            continue
        if r["name"] not in names[m["address"]]:
            problems.append("%s at %s is named %s in the census" % (m["name"], m["address"], r["name"]))
        if r["len"] != m["len"]:
            problems.append("%s: len %d, gdb says %d" % (m["name"], r["len"], m["len"]))
        if r["type"] != m["type"]:
            problems.append("%s: type %s, gdb says %s" % (m["name"], r["type"], m["type"]))
    headers = truth.get("headers")
    if headers is not None:
        for r in rows:
            if headers.get(r["address"]) != r["len"]:
                problems.append("%s at %s: len %d, gdb reads %s in its header"
                                % (r["name"], r["address"], r["len"], headers.get(r["address"])))
    assert not problems, "%s: %d differences from gdb:\n%s" % (what, len(problems), "\n".join(problems[:40]))


@pytest.mark.parametrize("tag", TAGS)
def test_core_census_lists_every_package_map_of_cmd_go(tag):
    c, rows, secs, truth = core_case(tag)
    check_against_gdb(rows, truth, "%s core" % tag)
    print("%s: cmd/go core: %d maps in the census (%d held by package variables per gdb), %.2f s"
          % (tag, len(rows), len(truth["maps"]), secs))


@pytest.mark.parametrize("tag", TAGS)
def test_core_census_goes_far_beyond_the_globals(tag):
    """Most of the go command's maps live in heap objects (each loaded package, module and build
    action); the census must find them, through pointers and map values, not only the globals."""
    c, rows, secs, truth = core_case(tag)
    assert len(rows) > 3 * len(truth["maps"]), (len(rows), len(truth["maps"]))
    # The package cache's values (*load.Package) hold maps of their own: reached through a map value.
    through_cache = [r for r in rows if r["name"].startswith("cmd/go/internal/load.packageCache[")]
    assert len(through_cache) >= 10, [r["name"] for r in rows][:50]
    kinds = {r["root"]["kind"] for r in rows}
    assert "global" in kinds, kinds
    assert secs < 30, "census of cmd/go took %.1f s" % secs


@pytest.mark.parametrize("tag", TAGS)
def test_fast_mode_lists_every_package_map_of_cmd_go(tag):
    """`--roots globals` (package-level variables through fields and pointers only) must list every map
    gdb finds in the package variables too, with the same len. The go command on go1.19/go1.23 showed it
    skipping the maps inside sync.Map globals (cmd/go/internal/load.resolvedImportCache.m.dirty: 731)."""
    c, _, _, truth = core_case(tag)
    code, out, err = F.gomap("maps", "--binary", c["binary"], "--core", c["core"], "--roots", "globals", "--json")
    assert code == 0, err
    fast = {r["address"]: r for r in json.loads(out)}
    names = {}
    for m in truth["maps"]:
        names.setdefault(m["address"], set()).add(m["name"])
    problems = ["%s at %s: %s" % (m["name"], m["address"], "missing" if m["address"] not in fast else
                                  "len %d, gdb says %d" % (fast[m["address"]]["len"], m["len"]))
                for m in truth["maps"] if fast.get(m["address"], {}).get("len") != m["len"]]
    problems += ["%s named %s" % (m["name"], fast[m["address"]]["name"]) for m in truth["maps"]
                 if m["address"] in fast and fast[m["address"]]["name"] not in names[m["address"]]]
    assert not problems, "%s --roots globals: %d differences from gdb:\n%s" % (tag, len(problems), "\n".join(problems[:40]))


def live_env(prog, tmp):
    return dict(F.go_vars(prog["row"]), GOROOT=prog["goroot"], GOTMPDIR=tmp)


@pytest.mark.parametrize("tag", LIVE_TAGS)
def test_live_census_of_cmd_go(tag):
    prog = F.toolchain_command("cmd/go", tag)
    with tempfile.TemporaryDirectory(prefix="gomap-gotmp-") as tmp:
        with F.LiveProgram(prog["binary"], env=live_env(prog, tmp), args=["run", CHILD], timeout=300,
                           argv0=argv0(prog)) as live:
            pid = live[0]
            rows, secs = census("--pid", pid)
            truth = gdb_truth(prog["binary"], ["-p", str(pid)], headers=[r["address"] for r in rows])
            # The go command only waits for its child: nothing changed between the two readings.
            assert os.path.exists("/proc/%d" % pid)
    check_against_gdb(rows, truth, "%s live" % tag)
    assert len(rows) > 3 * len(truth["maps"]), (len(rows), len(truth["maps"]))


# ---- maps the runtime's own package variables hold --------------------------------------------------
# cmd/go's core on go1.23 showed the census missing runtime.reflectOffs.m/.minv (the census left every
# runtime.* variable out of its roots). fixtures/runtime_maps fills them deterministically
# (reflect.MapOf); small, so every tag of the matrix is covered, against gdb's reading of all its
# package maps.

@pytest.mark.parametrize("tag", ALL_TAGS)
def test_census_lists_the_runtimes_own_package_maps(tag):
    c = F.program_core("runtime_maps", tag)
    rows, _ = census("--binary", c["binary"], "--core", c["core"])
    truth = gdb_truth(c["binary"], [c["core"]], headers=[r["address"] for r in rows], min_variables=100)
    runtime = [m for m in truth["maps"] if m["name"].startswith("runtime.reflectOffs.")]
    assert len(runtime) == 2 and all(m["len"] > 0 for m in runtime), truth["maps"]
    check_against_gdb(rows, truth, "%s runtime_maps core" % tag)
    by_addr = {r["address"]: r for r in rows}
    for m in runtime:
        assert by_addr[m["address"]]["root"] == {"kind": "global", "variable": "runtime.reflectOffs",
                                                 "function": None, "goroutine": None}, m
