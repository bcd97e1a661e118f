"""The census (`gomap maps`, `gomap holders`) against fixtures/census: a program that holds maps in every
way the census must find them (globals, goroutine locals and arguments, a map on a goroutine's stack,
interfaces, slices, map values, pointers, a closure, a channel buffer, a cycle, atomic.Pointer, generics,
reflect, 10k small maps) and writes the truth about each: header address, len, type, the intended root and
path. Built optimized on every toolchain of the matrix; compared from the kernel core and from the live
process, field by field. Where the census genuinely cannot find a map on a toolchain, the test says so
(xfail with the reason), it never passes silently."""

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

import fixturelib as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GDB = os.environ.get("GOMAP_GDB") or shutil.which("gdb")
LLDB = F.LLDB

# Every map the fixture writes a truth record for (fixtures/census/main.go).
MAP_IDS = ["global", "any", "named_interface", "slice_struct_field", "outer", "map_value", "pointers", "closure",
           "chan_0", "chan_1", "shared", "cycle_root", "cycle_child", "atomic_pointer", "generic", "reflect_known",
           "reflect_new", "array_in_struct", "goroutine_local", "callee_arg", "stack", "unsafe_pointer", "unreached"]


TAGS = F.matrix_tags()
# The debugger front ends: one classic and one swiss toolchain (PIE for the swiss one).
DEBUGGER_TAGS = [t for t in ("go1.22", "go1.26-pie") if t in TAGS] or TAGS[:2]


def go_minor(row):
    m = re.match(r"go1\.(\d+)", row.get("go_version") or row["tag"])
    return int(m.group(1)) if m else 0


def known_gap(map_id, row):
    """Why the census cannot find this map on this toolchain, or None when it must."""
    if map_id in ("unsafe_pointer", "unreached") and go_minor(row) < 22:
        return ("the heap records its objects' types only from Go 1.22 on (malloc headers, mspan.largeType): before, "
                "neither an unsafe.Pointer's target nor an unreached map's buckets can be typed")
    if map_id == "closure" and go_minor(row) < 23:
        return "Go before 1.23 does not describe a closure's captured variables in DWARF (DW_AT_go_closure_offset)"
    return None


gomap = F.gomap


def gomap_json(*args):
    code, out, err = gomap(*args)
    assert code == 0, "gomap %s failed: %s" % (" ".join(map(str, args)), err)
    return json.loads(out)


@functools.lru_cache(maxsize=None)
def core_run(tag):
    """The fixture's core on `tag` and its census (JSON), taken once per session."""
    c = F.program_core("census", tag)
    target = ("--binary", c["binary"], "--core", c["core"])
    return c, target, gomap_json("maps", *target, "--json")


@functools.lru_cache(maxsize=None)
def live_run(tag):
    """The census of the fixture running live on `tag` (the process is gone afterwards)."""
    prog = F.program("census", tag)
    with F.LiveProgram(prog["binary"]) as live:
        pid, truth = live[0], live[1]
        rows = gomap_json("maps", "--pid", pid, "--json")
        holders = gomap_json("holders", "--pid", pid, "main.sharedA", "--json")
    return truth, rows, holders


def by_address(rows):
    return {r["address"]: r for r in rows}


def check_map(rows, tm, what):
    got = by_address(rows).get(tm["address"])
    assert got is not None, "%s: no map at %s in the census (%s)" % (what, tm["address"], tm["name"])
    assert got["name"] == tm["name"], what
    assert got["len"] == tm["len"], what
    assert got["type"] == tm["type"], what
    root = got["root"]
    assert root["kind"] == tm["kind"], what
    assert root["variable"] == (tm["variable"] or None), what
    if tm["kind"] == "goroutine":
        assert root["function"] == tm["function"], what
        assert root["goroutine"] == tm["goroutine"], what
    else:
        assert root["function"] is None and root["goroutine"] is None, what
    assert sum(1 for r in rows if r["address"] == tm["address"]) == 1, "%s listed twice" % what


def params():
    out = []
    for tag in TAGS:
        row = F.fixture(tag)
        for mid in MAP_IDS:
            gap = known_gap(mid, row)
            marks = [pytest.mark.xfail(reason=gap, strict=True)] if gap else []
            out.append(pytest.param(tag, mid, marks=marks, id="%s-%s" % (tag, mid)))
    return out


@pytest.mark.parametrize("tag,map_id", params())
def test_core_census_finds_each_map(tag, map_id):
    c, _, rows = core_run(tag)
    check_map(rows, c["truth_doc"]["maps"][map_id], "%s %s (core)" % (tag, map_id))


@pytest.mark.parametrize("tag,map_id", params())
def test_live_census_finds_each_map(tag, map_id):
    truth, rows, _ = live_run(tag)
    check_map(rows, truth["maps"][map_id], "%s %s (live)" % (tag, map_id))


@pytest.mark.parametrize("tag", TAGS)
def test_ten_thousand_small_maps_each_once(tag):
    c, _, rows = core_run(tag)
    addrs = by_address(rows)
    many = c["truth_doc"]["many"]
    assert len(many) == 10000
    for i, (addr, n) in enumerate(many):
        r = addrs.get(addr)
        assert r is not None, "main.many[%d] at %s missing" % (i, addr)
        assert (r["name"], r["len"], r["type"], r["root"]["kind"]) == ("main.many[%d]" % i, int(n), "map[int]int", "global")
    assert len(addrs) == len(rows), "a map is listed twice"
    truth, live_rows, _ = live_run(tag)
    live = by_address(live_rows)
    assert all(live.get(a, {}).get("len") == int(n) for a, n in truth["many"])


@pytest.mark.parametrize("tag", TAGS)
def test_only_live_frame_variables_are_roots(tag):
    """Goroutine roots are the three frame variables the fixture keeps alive; main's `recs` map, which DWARF
    still places in main's frame after its last use, is dead by the runtime's stack maps and not listed."""
    c, _, rows = core_run(tag)
    truth = c["truth_doc"]
    want = sorted(tm["name"] for tm in truth["maps"].values() if tm["kind"] == "goroutine")
    assert sorted(r["name"] for r in rows if r["root"]["kind"] == "goroutine") == want
    # A dead map is garbage the collector has not freed yet: the heap may still prove it (root "other"),
    # but no root holds it.
    dead = set(truth["dead"])
    rooted = lambda rows: {r["address"] for r in rows if r["root"]["kind"] != "other"}  # noqa: E731
    assert dead and not dead & rooted(rows), "a dead frame variable's map is listed"
    truth, live_rows, _ = live_run(tag)
    assert sorted(r["name"] for r in live_rows if r["root"]["kind"] == "goroutine") == want
    assert not set(truth["dead"]) & rooted(live_rows)


@pytest.mark.parametrize("tag", TAGS)
def test_holders_every_path(tag):
    c, target, _ = core_run(tag)
    maps = c["truth_doc"]["maps"]
    got = gomap_json("holders", *target, "main.sharedA", "--json")
    assert got["address"] == maps["shared"]["address"]
    assert sorted(h["name"] for h in got["holders"]) == ["main.sharedA", "main.sharedB"]
    assert all(h["root"]["kind"] == "global" for h in got["holders"])
    # By address, for a map found elsewhere: the goroutine local and the cycle.
    tm = maps["goroutine_local"]
    got = gomap_json("holders", *target, tm["address"], "--type", tm["type"], "--json")
    assert [h["name"] for h in got["holders"]] == [tm["name"]]
    assert got["holders"][0]["root"]["goroutine"] == tm["goroutine"]
    tm = maps["cycle_child"]
    got = gomap_json("holders", *target, tm["address"], "--type", tm["type"], "--json")
    assert [h["name"] for h in got["holders"]] == [tm["name"]]
    _, _, live = live_run(tag)
    assert sorted(h["name"] for h in live["holders"]) == ["main.sharedA", "main.sharedB"]
    code, out, err = gomap("holders", *target, "main.sharedA")
    assert code == 0 and err == "", err
    assert out.splitlines()[0].startswith("holders of %s (map[int]string): 2 paths" % maps["shared"]["address"]), out
    code, out, err = gomap("holders", *target, "main.nilMap")
    assert code != 0 and "nil map" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("tag", TAGS)
def test_text_table_summary_and_options(tag):
    c, target, rows = core_run(tag)
    code, out, err = gomap("maps", *target)
    assert code == 0 and err == "", err
    lines = out.splitlines()
    header = lines[0]
    summary = [l for l in lines if re.match(r"^\d+ maps, ", l)]
    assert len(summary) == 1, out[-2000:]
    m = re.match(r"^(\d+) maps, .* in their objects \((\d+\.\d)% of the .* heap in use\); (\d+) goroutines and "
                 r"(\d+) heap objects walked$", summary[0])
    assert m, summary[0]
    assert int(m.group(1)) == len(rows) and 0 < float(m.group(2)) <= 100 and int(m.group(3)) >= 4
    # Columns stay aligned whatever the type's length: every row has its root and impl where the header
    # has them, and long types are cut with an ellipsis.
    root_col, impl_col = header.index("root"), header.index("impl")
    body = lines[1:lines.index(summary[0])]
    # A name longer than the name column gets a line of its own, the row follows it.
    is_row = lambda l: l[impl_col:impl_col + 7].strip() in ("classic", "swiss")  # noqa: E731
    long_names = [l for l in body if not is_row(l)]
    body = [l for l in body if is_row(l)]
    assert len(body) == len(rows)
    assert all(len(n) > root_col for n in long_names), long_names
    for l in body:
        assert re.match(r"(global|other|g\d+) ", l[root_col:]), l
        assert l[impl_col:impl_col + 7].strip() in ("classic", "swiss"), l
    assert any("…" in l for l in body), "no long type was cut"
    # --top, --min-bytes, --sort len.
    top = gomap_json("maps", *target, "--json", "--top", "5", "--sort", "len")
    assert [r["len"] for r in top] == sorted((r["len"] for r in rows), reverse=True)[:5]
    floor = 1024
    big = gomap_json("maps", *target, "--json", "--min-bytes", floor)
    assert big and all(r["stats"]["bytes"] >= floor for r in big)
    assert len(big) == sum(1 for r in rows if r["stats"]["bytes"] >= floor)
    # --roots globals: today's fast mode (package-level variables through fields and pointers only).
    fast = gomap_json("maps", *target, "--json", "--roots", "globals")
    names = {r["name"] for r in fast}
    assert "main.global" in names and "main.sharedA" in names
    assert not any(":" in n for n in names) and all("root" not in r for r in fast)
    # Maps only the heap proves (root "other") come with a note saying they may be garbage.
    if go_minor(F.fixture(tag)) >= 22:
        assert any("garbage not yet collected" in l for l in lines if l.startswith("note: ")), out[-2000:]


@pytest.mark.parametrize("tag", TAGS)
def test_stack_map_does_not_escape(tag):
    """The fixture's `onstack` map really lives on the goroutine's stack (the compiler says so)."""
    prog = F.program("census", tag, ["-gcflags=-m"])
    log = open(prog["build_log"]).read()
    src = open(os.path.join(REPO, "fixtures", "census", "main.go")).read().splitlines()
    line = next(i + 1 for i, l in enumerate(src) if "onstack := make(map[int]int)" in l)
    assert re.search(r"main\.go:%d:\d+: make\(map\[int\]int\) does not escape" % line, log), log[-3000:]


@pytest.mark.parametrize("tag", TAGS)
def test_runtime_made_map_show_and_holders(tag):
    """The reflect.MapOf map (no DWARF type: its layout comes from the runtime type descriptor) is shown and its
    holders found through the interface that holds it, on the core and on the live process."""
    c, target, _ = core_run(tag)
    tm = c["truth_doc"]["maps"]["reflect_new"]
    got = gomap_json("show", *target, "main.reflectB", "--json")
    assert (got["address"], got["type"], got["len"]) == (tm["address"], tm["type"], tm["len"])
    want = {int(k): v for k, v in tm["entries"].items()}
    assert {e["key"]: e["value"] for e in got["entries"]} == want
    h = gomap_json("holders", *target, "main.reflectB", "--json")
    assert (h["address"], h["type"]) == (tm["address"], tm["type"])
    assert [x["name"] for x in h["holders"]] == [tm["name"]]
    prog = F.program("census", tag)
    with F.LiveProgram(prog["binary"]) as live:
        pid, truth = live[0], live[1]
        tm = truth["maps"]["reflect_new"]
        got = gomap_json("show", "--pid", pid, "main.reflectB", "--json")
    assert (got["address"], got["type"], got["len"]) == (tm["address"], tm["type"], tm["len"])
    assert {e["key"]: e["value"] for e in got["entries"]} == {int(k): v for k, v in tm["entries"].items()}


def _debugger_ok(tool):
    if tool is None:
        pytest.fail("the debugger is not installed", pytrace=False)


@pytest.mark.parametrize("tag", DEBUGGER_TAGS)
def test_gdb_maps_and_holders(tag):
    _debugger_ok(GDB)
    c, target, rows = core_run(tag)
    cmds = ["gomap maps --json", "gomap holders main.sharedA --json", "gomap maps --top 3"]
    argv = [GDB, "-nx", "-batch", "-ex", "set pagination off", "-ex", "set width 0",
            "-ex", "source " + os.path.join(REPO, "python", "gomap.py")]
    for i, cmd in enumerate(cmds):
        argv += ["-ex", "echo @@%d\\n" % i, "-ex", cmd]
    argv += ["-ex", "echo @@end\\n", c["binary"], c["core"]]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    assert "Traceback" not in p.stdout and "Python Exception" not in p.stdout, p.stdout[-3000:]
    parts = re.split(r"^@@(\d+|end)\n", p.stdout, flags=re.M)
    outs = {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}
    _same_as_cli(outs["0"], outs["1"], outs["2"], target, rows)


@pytest.mark.parametrize("tag", DEBUGGER_TAGS)
def test_lldb_maps_and_holders(tag):
    _debugger_ok(LLDB)
    c, target, rows = core_run(tag)
    cmds = ["gomap maps --json", "gomap holders main.sharedA --json", "gomap maps --top 3"]
    with tempfile.NamedTemporaryFile("w", suffix=".lldb", delete=False) as f:
        for i, cmd in enumerate(cmds):
            f.write("script print('@@%d')\n%s\n" % (i, cmd))
        f.write("script print('@@end')\n")
        script = f.name
    try:
        p = subprocess.run([LLDB, "--no-lldbinit", "-b", c["binary"], "-c", c["core"],
                            "-o", "command script import " + os.path.join(REPO, "python", "gomap_lldb.py"),
                            "-o", "command source -e false " + script],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300,
                           stdin=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    finally:
        os.unlink(script)
    assert "Traceback" not in p.stdout, p.stdout[-3000:]
    outs, cur = {}, None
    for line in p.stdout.splitlines():
        m = re.match(r"^@@(\d+|end)$", line)
        if m:
            cur = m.group(1)
            outs[cur] = []
        elif cur is not None and not line.startswith("(lldb) "):
            outs[cur].append(line)
    _same_as_cli(*("\n".join(outs[k]) for k in ("0", "1", "2")), target, rows)


def _same_as_cli(maps_json, holders_json, top_text, target, rows):
    got = json.loads(maps_json.strip())
    assert by_address(got).keys() == by_address(rows).keys()
    assert {r["address"]: (r["name"], r["root"]) for r in got} == {r["address"]: (r["name"], r["root"]) for r in rows}
    h = json.loads(holders_json.strip())
    assert sorted(x["name"] for x in h["holders"]) == ["main.sharedA", "main.sharedB"]
    lines = top_text.strip().splitlines()
    assert lines[0].startswith("name ") and re.match(r"^%d maps, .*; 3 shown$" % len(rows), lines[4]), top_text
