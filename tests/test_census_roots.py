"""Census roots beyond globals and parked goroutines, against fixtures/census_roots: a goroutine that is
running (spinning on a CPU) when the core is taken, holding a map only in its locals; a map reachable only
from the fields of an object with a finalizer; a map captured only by a finalizer's closure; (Go 1.24+) a map
captured only by a cleanup's closure. The program writes the truth (header address, len, type, intended root
and path); built optimized on every toolchain of the matrix, compared from the kernel core and, for what a
live process shows without being stopped, from the live process."""

import functools
import json
import os
import re
import shutil
import subprocess

import pytest

import fixturelib as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The spinner must still be running when the core is taken. GOTRACEBACK=crash first freezes the world
# (runtime.freezetheworld preempts every running goroutine; GODEBUG=dontfreezetheworld=1, Go 1.21+, skips
# that), and once freezing, a goroutine the scheduler preempts for running 10 ms (sysmon's asynchronous
# preemption) is never resumed: asyncpreemptoff=1 leaves the spinner's loop without a preemption point
# (burn is a leaf). Both are set live too, so the spinner is running whenever gomap looks.
RUN_ENV = {"GODEBUG": "dontfreezetheworld=1,asyncpreemptoff=1"}


TAGS = F.matrix_tags()


def go_minor(row):
    m = re.match(r"go1\.(\d+)", row.get("go_version") or row["tag"])
    return int(m.group(1)) if m else 0


def map_ids(row):
    ids = ["running", "finalized_object", "finalizer_closure"]
    if go_minor(row) >= 24:
        ids.append("cleanup_closure")  # runtime.AddCleanup is Go 1.24+
    return ids


def known_gap(map_id, row, live):
    """Why the census cannot find this map on this toolchain (core or live), or None when it must."""
    if map_id == "finalizer_closure" and go_minor(row) < 23:
        return "Go before 1.23 does not describe a closure's captured variables in DWARF (DW_AT_go_closure_offset)"
    if map_id == "running" and live:
        return ("a running goroutine's registers are in its thread, which gomap does not stop or ptrace in a live "
                "process (/proc has no registers of a running thread), so its stack is not walked")
    return None


def gomap_ok(*args):
    code, out, err = F.gomap(*args)
    assert code == 0, "gomap %s failed: %s" % (" ".join(map(str, args)), err)
    return out


@functools.lru_cache(maxsize=None)
def core_run(tag):
    """The fixture's core on `tag`, its census (JSON) and the text output (for its notes)."""
    c = F.program_core("census_roots", tag, run_env=RUN_ENV)
    target = ("--binary", c["binary"], "--core", c["core"])
    return c, target, json.loads(gomap_ok("maps", *target, "--json")), gomap_ok("maps", *target)


@functools.lru_cache(maxsize=None)
def live_run(tag):
    prog = F.program("census_roots", tag)
    with F.LiveProgram(prog["binary"], env=RUN_ENV) as live:
        pid, truth = live[0], live[1]
        rows = json.loads(gomap_ok("maps", "--pid", pid, "--json"))
        text = gomap_ok("maps", "--pid", pid)
    return truth, rows, text


def check_map(rows, tm, what):
    got = [r for r in rows if r["address"] == tm["address"]]
    assert got, "%s: no map at %s in the census (%s)" % (what, tm["address"], tm["name"])
    assert len(got) == 1, "%s listed twice" % what
    got = got[0]
    assert (got["len"], got["type"]) == (tm["len"], tm["type"]), what
    root = got["root"]
    assert root["kind"] == tm["kind"], (what, root)
    assert root["variable"] == tm["variable"], (what, root)
    assert root["function"] == tm["function"], (what, root)
    assert root["goroutine"] == tm.get("goroutine"), (what, root)
    name = tm["name"]
    if got["name"] != name and tm["variable"].startswith("cleanup("):
        # Go 1.24 and 1.25 wrap the cleanup in a closure of their own (runtime.AddCleanup's func1) that
        # captured it as `cleanup`: the path goes through that capture.
        name = name.replace(").", ").cleanup.", 1)
    assert got["name"] == name, what


def params(live):
    out = []
    for tag in TAGS:
        row = F.fixture(tag)
        for mid in map_ids(row):
            gap = known_gap(mid, row, live)
            marks = [pytest.mark.xfail(reason=gap, strict=True)] if gap else []
            out.append(pytest.param(tag, mid, marks=marks, id="%s-%s" % (tag, mid)))
    return out


@pytest.mark.parametrize("tag,map_id", params(live=False))
def test_core_root(tag, map_id):
    c, _, rows, _ = core_run(tag)
    check_map(rows, c["truth_doc"]["maps"][map_id], "%s %s (core)" % (tag, map_id))


@pytest.mark.parametrize("tag,map_id", params(live=True))
def test_live_root(tag, map_id):
    truth, rows, _ = live_run(tag)
    check_map(rows, truth["maps"][map_id], "%s %s (live)" % (tag, map_id))


@pytest.mark.parametrize("tag", TAGS)
def test_running_goroutine_from_registers(tag):
    """The spinner really was running when the core was taken (the runtime's own crash traceback says
    so), its stack was walked (no note names it), and
    in a live process the note says plainly why a running goroutine is not walked."""
    c, _, rows, text = core_run(tag)
    tm = c["truth_doc"]["maps"]["running"]
    goid = tm["goroutine"]
    log = open(os.path.join(os.path.dirname(c["core"]), "run.log")).read()
    assert re.search(r"^goroutine %d [^\n]*\[running\]:" % goid, log, re.M), log[-3000:]
    assert not re.search(r"note: goroutine %d \(" % goid, text), text[-2000:]
    assert any(r["root"]["goroutine"] == goid for r in rows)
    truth, _, live_text = live_run(tag)
    m = re.search(r"note: goroutine %d \(running\): (.*)" % truth["maps"]["running"]["goroutine"], live_text)
    assert m and "without stopping it" in m.group(1), live_text[-2000:]


@pytest.mark.parametrize("tag", TAGS)
def test_holders_of_special_and_running_roots(tag):
    """`gomap holders 0xADDR` names the one path that keeps each of these maps, with the same root."""
    c, target, rows, _ = core_run(tag)
    for mid in map_ids(c["row"]):
        if known_gap(mid, c["row"], live=False):
            continue
        tm = c["truth_doc"]["maps"][mid]
        got = json.loads(gomap_ok("holders", *target, tm["address"], "--type", tm["type"], "--json"))
        row = next(r for r in rows if r["address"] == tm["address"])
        assert [(h["name"], h["root"]) for h in got["holders"]] == [(row["name"], row["root"])], (tag, mid, got)


@pytest.mark.parametrize("tag", TAGS)
def test_cleanup_only_where_it_exists(tag):
    """The fixture holds a cleanup's map exactly on the toolchains that have runtime.AddCleanup."""
    c, _, _, _ = core_run(tag)
    assert ("cleanup_closure" in c["truth_doc"]["maps"]) == (go_minor(c["row"]) >= 24)


GDB = os.environ.get("GOMAP_GDB") or shutil.which("gdb")
# One classic and one swiss toolchain (PIE for the swiss one), as tests/test_census.py does.
DEBUGGER_TAGS = [t for t in ("go1.22", "go1.26-pie") if t in TAGS] or TAGS[:2]


@pytest.mark.parametrize("tag", DEBUGGER_TAGS)
def test_gdb_attached_live_walks_running_goroutine(tag):
    """`gdb -p PID` stops every thread and knows its registers: the gdb front end hands them to the census,
    so the running goroutine's map is found live too, named as from the core; with gdb reading memory
    itself (`set gomap-direct off`) as well."""
    if GDB is None:
        pytest.fail("gdb is not installed", pytrace=False)
    prog = F.program("census_roots", tag)
    with F.LiveProgram(prog["binary"], env=RUN_ENV) as live:
        pid, truth = live[0], live[1]
        argv = [GDB, "-nx", "-batch", "-ex", "set pagination off", "-ex", "set width 0",
                "-ex", "source " + os.path.join(REPO, "python", "gomap.py"),
                "-ex", "echo @@0\\n", "-ex", "gomap maps --json",
                "-ex", "set gomap-direct off", "-ex", "echo @@1\\n", "-ex", "gomap maps --json",
                "-ex", "echo @@end\\n", "-p", str(pid), prog["binary"]]
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                           timeout=300, stdin=subprocess.DEVNULL)
    assert "Traceback" not in p.stdout and "Python Exception" not in p.stdout, p.stdout[-3000:]
    parts = re.split(r"^@@(\d+|end)\n", p.stdout, flags=re.M)
    outs = {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}
    for k in ("0", "1"):
        text = outs[k]
        rows = json.loads(text[text.index("["):])
        for mid in map_ids(F.fixture(tag)):
            if known_gap(mid, F.fixture(tag), live=False) is None:
                check_map(rows, truth["maps"][mid], "%s %s (gdb live, %s)" % (tag, mid, "direct" if k == "0" else "through gdb"))


LLDB = F.LLDB


@pytest.mark.parametrize("tag", DEBUGGER_TAGS)
def test_lldb_attached_live_walks_running_goroutine(tag):
    """`lldb -p PID`: the LLDB front end hands the stopped threads' registers over as gdb's does."""
    if LLDB is None:
        pytest.fail("lldb is not installed", pytrace=False)
    prog = F.program("census_roots", tag)
    with F.LiveProgram(prog["binary"], env=RUN_ENV) as live:
        pid, truth = live[0], live[1]
        p = subprocess.run([LLDB, "--no-lldbinit", "-b", "-p", str(pid),
                            "-o", "command script import " + os.path.join(REPO, "python", "gomap_lldb.py"),
                            "-o", "script print('@@0')", "-o", "gomap maps --json"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300,
                           stdin=subprocess.DEVNULL, cwd=os.path.dirname(prog["binary"]))
    assert "Traceback" not in p.stdout, p.stdout[-3000:]
    text = p.stdout.split("@@0\n", 1)[1]
    line = next(l for l in text.splitlines() if l.startswith("[{"))
    rows = json.loads(line)
    for mid in map_ids(F.fixture(tag)):
        if known_gap(mid, F.fixture(tag), live=False) is None:
            check_map(rows, truth["maps"][mid], "%s %s (lldb live)" % (tag, mid))
