"""Legal but hostile values (fixtures/hostile) and mistakes made loud, on every toolchain tag.

The fixture holds values that contain themselves (a slice, a map, interfaces), []any fan-out
cycles, a DAG of 2^40 paths, 200 nested maps, funcs, nil funcs and closures, interface values of
types the linker may give no DWARF entry, and long strings; it writes its own truth (each map's
len, reflect.Value.Pointer() and runtime.FuncForPC names of the funcs, the hidden values).

What is checked: `show --limit 0` and `--depth 50` finish quickly with small output, the right len,
markers instead of endless descents and no `corrupt` finding; funcs equal the fixture's truth; the
CLI runs inside a 512 KiB stack; real gdb and LLDB survive `print` and `gomap show` of each map.
"""

import json
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time

import pytest

import fixturelib as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOMAP = os.environ.get("GOMAP_BIN", os.path.join(REPO, "target", "release", "gomap"))
GDB = os.environ.get("GOMAP_GDB") or shutil.which("gdb") or "gdb"
LLDB = F.LLDB
GDB_SOURCE = os.path.join(REPO, "python", "gomap.py")
LLDB_PLUGIN = os.path.join(REPO, "python", "gomap_lldb.py")

HOSTILE = ["main.selfSlice", "main.selfMap", "main.selfIface", "main.fanout", "main.dag", "main.nested",
           "main.funcs", "main.hidden"]
SMALL = 64 << 10     # every hostile map fits in this much output
FAST = 10.0          # seconds per command, generous for a loaded machine


def _tags():
    try:
        return F.all_tags()
    except F.FixturesMissing as e:
        raise pytest.UsageError(str(e))


TAGS = _tags()


@pytest.fixture(scope="session")
def hostile_cores():
    """tag -> program_core("hostile", tag), built once per session (cached across sessions)."""
    cache = {}

    def get(tag):
        if tag not in cache:
            cache[tag] = F.program_core("hostile", tag)
        return cache[tag]
    return get


def run(args, timeout=60, preexec=None, env=None):
    t0 = time.monotonic()
    p = subprocess.run([GOMAP] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, preexec_fn=preexec, env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout, p.stderr.decode(errors="replace"), time.monotonic() - t0


def show_json(target, expr, *extra, env=None):
    code, out, err, secs = run(["show", *target, expr, "--json", *extra], env=env)
    assert code == 0 and not err, (expr, extra, code, err)
    assert secs < FAST, (expr, extra, secs)
    assert len(out) < SMALL, (expr, extra, len(out))
    return json.loads(out)


def walk(v):
    """Every JSON value inside v (v included)."""
    stack = [v]
    while stack:
        x = stack.pop()
        yield x
        if isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)


def markers(doc, word):
    return [x[word] for x in walk(doc["entries"]) if isinstance(x, dict) and list(x) == [word]]


def nested_levels(v):
    n = 0
    while isinstance(v, dict) and "entries" in v:
        n += 1
        v = v["entries"][0]["value"] if v["entries"] else None
    return n


def func_text(f):
    return "0x0" if f["pc"] == "0x0" else "%s %s" % (f["pc"], f["name"])


def check_hostile(target, truth):
    """Every hostile map through the CLI against the fixture's truth (core or live)."""
    docs = {}
    for expr in HOSTILE:
        for extra in ([], ["--depth", "50"], ["--depth", "1000"]):
            doc = show_json(target, expr, "--limit", "0", *extra)
            assert doc["len"] == truth["lens"][expr], (expr, extra)
            assert len(doc["entries"]) == doc["len"], (expr, extra)
            assert doc["truncated"] is False
            kinds = [f["kind"] for f in doc["findings"]]
            assert "corrupt" not in kinds, (expr, extra, doc["findings"])
            assert not [x for x in walk(doc["entries"]) if isinstance(x, dict) and "error" in x], (expr, extra)
            docs[(expr, tuple(extra))] = doc
        code, out, err, secs = run(["show", *target, expr, "--limit", "0", "--depth", "50"])
        assert code == 0 and not err and secs < FAST and len(out) < SMALL, (expr, code, err, secs, len(out))
    # The self-containing values print back-references to objects on their own path.
    for expr in ("main.selfSlice", "main.selfIface", "main.fanout"):
        assert markers(docs[(expr, ())], "cycle"), expr
    assert markers(docs[("main.selfMap", ("--depth", "50"))], "cycle")
    assert markers(docs[("main.selfIface", ("--depth", "50"))], "cycle")
    # The DAG of 2^40 paths: every level rendered, shared nodes after the second full rendering.
    dag = docs[("main.dag", ())]
    assert markers(dag, "shared")
    depth, v = 0, dag["entries"][0]["value"]
    while isinstance(v, dict) and v.get("items"):
        depth, v = depth + 1, v["items"][0]
    assert depth == 40, depth  # 40 levels of pairs above the empty leaf
    # 200 nested maps: --depth 50 expands exactly 50; a huge --depth stops at the depth limit.
    nested = docs[("main.nested", ("--depth", "50"))]["entries"][0]["value"]
    assert nested_levels(nested) == 50
    deep = docs[("main.nested", ("--depth", "1000"))]
    assert markers(deep, "elided") == ["depth"] and 30 < nested_levels(deep["entries"][0]["value"]) < 200
    # Funcs: the code address and name that reflect.Value.Pointer and runtime.FuncForPC report.
    funcs = {e["key"]: e["value"] for e in docs[("main.funcs", ())]["entries"]}
    assert funcs == {k: func_text(f) for k, f in truth["funcs"].items()}
    # Interface values whatever DWARF says about their dynamic types; GOMAP_DESCRIPTORS_ONLY=1 renders
    # every dynamic type from its runtime type descriptor, as for a type the linker left out of DWARF.
    for env in (None, {"GOMAP_DESCRIPTORS_ONLY": "1"}):
        doc = show_json(target, "main.hidden", "--limit", "0", env=env)
        hidden = {e["key"]: e["value"] for e in doc["entries"]}
        for k, want in truth["hidden"].items():
            assert F.canonical(hidden[k]["value"]) == F.canonical(want), (env, k, hidden[k])
        assert hidden["ptr"]["type"] == "*main.hiddenPoint" and hidden["ptr"]["value"].startswith("0x")
        fan = show_json(target, "main.fanout", "--limit", "0", env=env)
        assert markers(fan, "cycle") and not [f for f in fan["findings"] if f["kind"] == "corrupt"]
    return docs


@pytest.mark.parametrize("tag", TAGS)
def test_core_hostile_values(hostile_cores, tag):
    prog = hostile_cores(tag)
    check_hostile(["--binary", prog["binary"], "--core", prog["core"]], prog["truth_doc"])


@pytest.mark.parametrize("tag", TAGS)
def test_live_hostile_values(hostile_cores, tag):
    prog = hostile_cores(tag)
    with F.LiveProgram(prog["binary"]) as (pid, truth, _paths):
        check_hostile(["--pid", pid], truth)


def _small_stack():
    resource.setrlimit(resource.RLIMIT_STACK, (512 << 10, 512 << 10))


@pytest.mark.parametrize("tag", [t for t in ("go1.19", "go1.26") if t in TAGS] or TAGS[:1])
def test_rendering_fits_a_small_stack(hostile_cores, tag):
    """The deepest legal rendering (MAX_DEPTH levels of nested maps, each a full map walk) needs
    less than 512 KiB of stack: nothing a debugger's thread could not give."""
    prog = hostile_cores(tag)
    target = ["--binary", prog["binary"], "--core", prog["core"]]
    for expr in HOSTILE:
        code, out, err, _ = run(["show", *target, expr, "--limit", "0", "--depth", "100000", "--json"],
                                preexec=_small_stack)
        assert code == 0 and not err, (expr, code, err)
        json.loads(out)


@pytest.mark.parametrize("tag", [t for t in ("go1.19", "go1.26") if t in TAGS] or TAGS[:1])
def test_max_string(hostile_cores, tag):
    prog = hostile_cores(tag)
    target = ["--binary", prog["binary"], "--core", prog["core"]]
    n = prog["truth_doc"]["long_len"]
    # JSON: unlimited by default.
    doc = show_json(target, "main.longStrs")
    vals = {e["key"]: e["value"] for e in doc["entries"]}
    assert len(vals["long"]) == n and vals["long"].endswith("END") and vals["short"] == "ok"
    # JSON with --max-string: the prefix and the true length.
    doc = show_json(target, "main.longStrs", "--max-string", "5")
    vals = {e["key"]: e["value"] for e in doc["entries"]}
    assert vals["long"] == {"len": n, "prefix": "xxxxx"} and vals["short"] == "ok"
    # Text: 200 bytes by default, like gdb's `print elements`; 0 lifts the limit.
    code, out, err, _ = run(["show", *target, "main.longStrs"])
    line = [l for l in out.decode().splitlines() if l.startswith('  "long"')][0]
    assert line == '  "long": "%s"...(%d bytes)' % ("x" * 200, n), line[:300]
    code, out, err, _ = run(["show", *target, "main.longStrs", "--max-string", "0"])
    assert ('"%sEND"' % ("x" * (n - 3))) in out.decode()
    code, out, err, _ = run(["show", *target, "main.longStrs", "--max-string=x"])
    assert code == 2 and "max-string" in err


# ---- the debuggers survive every hostile value ------------------------------------------------------------

MARK = "@@hostile@@"


def json_in(text):
    """The JSON document a debugger command printed (other lines: the module's load message)."""
    docs = [l for l in text.splitlines() if l.startswith("{")]
    assert len(docs) == 1, text[-2000:]
    return json.loads(docs[0])


def gdb_session(args, commands, timeout=180):
    argv = [GDB, "-nx", "-batch", "-ex", "set pagination off", "-ex", "set width 0", "-ex", "source " + GDB_SOURCE,
            "-ex", "echo %s start\\n" % MARK]
    for i, c in enumerate(commands):
        argv += ["-ex", c, "-ex", "echo %s %d\\n" % (MARK, i)]
    p = subprocess.run(argv + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                       universal_newlines=True, timeout=timeout, errors="replace")
    # Command i printed what lies between marker i-1 (or "start") and marker i.
    parts = re.split(r"^%s (start|\d+)\n" % re.escape(MARK), p.stdout, flags=re.M)
    out = {int(label): parts[2 * k] for k, label in enumerate(parts[1::2]) if label != "start"}
    assert sorted(out) == list(range(len(commands))), "gdb died or stopped early:\n%s" % p.stdout[-3000:]
    for bad in ("Traceback", "Python Exception", "panicked", "Segmentation fault", "stack overflow"):
        assert bad not in p.stdout, p.stdout[-3000:]
    return out


def lldb_session(args, commands, timeout=180):
    with tempfile.NamedTemporaryFile("w", suffix=".lldb", delete=False) as f:
        f.write("\n".join(commands) + "\n")
        script = f.name
    try:
        p = subprocess.run([LLDB, "--no-lldbinit", "-b", *[str(a) for a in args],
                            "-o", "command script import " + LLDB_PLUGIN, "-o", "command source -e false " + script],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                           timeout=timeout, cwd=tempfile.gettempdir(), stdin=subprocess.DEVNULL, errors="replace")
    finally:
        os.unlink(script)
    assert p.returncode == 0, "lldb exited %s:\n%s" % (p.returncode, p.stdout[-3000:])
    for bad in ("Traceback", "panicked", "stack overflow", "PLEASE submit a bug report"):
        assert bad not in p.stdout, p.stdout[-3000:]
    blocks = re.split(r"^\(lldb\) ", p.stdout, flags=re.M)
    ran = [b.splitlines()[0] for b in blocks if b.splitlines() and b.splitlines()[0] in commands]
    assert ran[-len(commands):] == commands, "lldb stopped early:\n%s" % p.stdout[-3000:]
    return {b.splitlines()[0]: "\n".join(b.splitlines()[1:]) for b in blocks if b.splitlines()}


def debugger_commands(json_show):
    cmds = []
    for e in HOSTILE:
        cmds += ["gomap show %s --limit 0 --depth 50" % e, "gomap show %s --limit 0 --json --depth 1000" % e]
    return cmds


@pytest.mark.parametrize("tag", TAGS)
def test_gdb_survives_hostile_values(hostile_cores, tag):
    prog = hostile_cores(tag)
    cmds = debugger_commands(True) + ["print '%s'" % e for e in HOSTILE] + ["print 1+1"]
    out = gdb_session([prog["binary"], prog["core"]], cmds)
    for i, e in enumerate(HOSTILE):
        doc = json_in(out[2 * i + 1])
        assert doc["len"] == prog["truth_doc"]["lens"][e], e
        assert len(out[2 * i]) < SMALL and "len %d" % doc["len"] in out[2 * i], out[2 * i][:500]
    for i, e in enumerate(HOSTILE):
        printed = out[2 * len(HOSTILE) + i]
        assert re.match(r"^\$\d+ = ", printed) and len(printed) < SMALL, (e, printed[:500])
    assert out[len(cmds) - 1].strip().endswith("= 2")


@pytest.mark.parametrize("tag", TAGS)
def test_lldb_survives_hostile_values(hostile_cores, tag):
    if LLDB is None:
        pytest.fail("lldb is not installed", pytrace=False)
    prog = hostile_cores(tag)
    cmds = debugger_commands(True) + ["target variable -P 2 %s" % e for e in HOSTILE] + ["script print(6*7)"]
    out = lldb_session([prog["binary"], "-c", prog["core"]], cmds)
    for e in HOSTILE:
        doc = json_in(out["gomap show %s --limit 0 --json --depth 1000" % e])
        assert doc["len"] == prog["truth_doc"]["lens"][e], e
        text = out["target variable -P 2 %s" % e]
        assert "len=%d" % doc["len"] in text and len(text) < SMALL, (e, text[:500])
    assert "2" in out["script print(6*7)"]


# ---- mismatches are loud -----------------------------------------------------------------------------------

OTHER_BUILDS = [["-ldflags=-X main.variant=b"],   # same code, other data: same entry point
                ["-gcflags=all=-N -l"]]            # other code: another entry point (a negative PIE bias)


def _pie_and_not():
    specs = F.tag_specs()
    pie = [s["tag"] for s in specs if s["pie"]]
    non = [s["tag"] for s in specs if not s["pie"]]
    return ([t for t in ("go1.26",) if t in non] or non[:1]) + pie[:1]


@pytest.mark.parametrize("tag", _pie_and_not())
def test_core_of_another_build_is_refused(hostile_cores, tag):
    prog = hostile_cores(tag)
    for flags in OTHER_BUILDS:
        other = F.program("hostile", tag, flags)
        code, out, err, _ = run(["show", "--binary", other["binary"], "--core", prog["core"], "main.ints"])
        lines = [l for l in err.splitlines() if l.strip()]
        assert code == 2 and not out and len(lines) == 1, (flags, code, err)
        assert "does not belong to this binary" in lines[0] and "pass the executable" in lines[0], lines[0]
    # The right binary is accepted.
    code, out, err, _ = run(["show", "--binary", prog["binary"], "--core", prog["core"], "main.ints", "--json"])
    assert code == 0 and json.loads(out)["len"] == prog["truth_doc"]["lens"]["main.ints"], err


@pytest.mark.parametrize("tag", _pie_and_not())
def test_process_of_another_build_is_refused(hostile_cores, tag):
    prog = hostile_cores(tag)
    other = F.program("hostile", tag, OTHER_BUILDS[1])
    with F.LiveProgram(prog["binary"]) as (pid, truth, _paths):
        code, out, err, _ = run(["show", "--binary", other["binary"], "--pid", pid, "main.ints"])
        lines = [l for l in err.splitlines() if l.strip()]
        assert code != 0 and not out and len(lines) == 1 and "does not run" in lines[0], (code, err)


def _classic_and_swiss():
    specs = F.tag_specs()
    out = []
    for impl in ("classic", "swiss"):
        tags = [s["tag"] for s in specs if s["impl"] == impl]
        out += [t for t in ("go1.19", "go1.26") if t in tags][:1] or tags[:1]
    return out


@pytest.mark.parametrize("tag", _classic_and_swiss())
def test_wrong_type_is_loud(hostile_cores, tag):
    """main.ints (a map[int]int of 10000) read at its address as map[string]string: an error naming
    --type, nothing printed; the right type is accepted."""
    prog = hostile_cores(tag)
    target = ["--binary", prog["binary"], "--core", prog["core"]]
    addr = prog["truth_doc"]["ints_addr"]
    for cmd in (["show", addr, "--limit", "0"], ["show", addr, "--json", "--limit", "0"], ["check", addr]):
        code, out, err, secs = run([*cmd[:1], *target, *cmd[1:], "--type", "map[string]string"])
        lines = [l for l in err.splitlines() if l.strip()]
        assert code not in (0, 1) and not out and len(lines) == 1, (cmd, code, out[:300], err)
        assert "does not look like a map of this type" in lines[0] and "check --type" in lines[0], lines[0]
        assert secs < FAST
    doc = show_json(target, addr, "--type", "map[int]int", "--limit", "3")
    assert doc["len"] == 10000 and len(doc["entries"]) == 3
    for e in doc["entries"]:
        assert e["value"] == 3 * e["key"]


# ---- truncated cores ---------------------------------------------------------------------------------------

def _file_offset(core, addr):
    """File offset of a virtual address in an ELF64 core (PT_LOAD with file bytes)."""
    import struct
    with open(core, "rb") as f:
        eh = f.read(64)
        phoff, phentsize, phnum = struct.unpack_from("<Q", eh, 32)[0], *struct.unpack_from("<HH", eh, 54)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    for i in range(phnum):
        p_type, _flags, off, vaddr, _paddr, filesz = struct.unpack_from("<IIQQQQ", ph, i * phentsize)
        if p_type == 1 and vaddr <= addr < vaddr + filesz:
            return off + (addr - vaddr)
    raise AssertionError("%#x not in %s" % (addr, core))


@pytest.mark.parametrize("tag", _classic_and_swiss())
def test_truncated_core_partial(hostile_cores, tag, tmp_path):
    prog = hostile_cores(tag)
    addr = int(prog["truth_doc"]["ints_addr"], 16)
    at = _file_offset(prog["core"], addr)
    seen_cut = False
    want_funcs = {k: func_text(f) for k, f in prog["truth_doc"]["funcs"].items()}
    for keep in (at + 256, at - 4096):
        cut = str(tmp_path / "core")
        with open(prog["core"], "rb") as src, open(cut, "wb") as dst:
            dst.write(src.read(keep))
        target = ["--binary", prog["binary"], "--core", cut]
        code, out, err, _ = run(["show", *target, "main.ints"])
        lines = [l for l in err.splitlines() if l.strip()]
        assert code == 2 and not out and len(lines) == 1 and "truncated" in lines[0] and "--partial" in lines[0], err
        # --partial: what is there is read, what is missing is marked, nothing crashes or hangs.
        code, out, err, secs = run(["show", "--partial", *target, "main.ints", "--json", "--limit", "0"])
        assert secs < FAST and "panicked" not in err
        warn = [l for l in err.splitlines() if "warning" in l]
        assert len(warn) == 1 and "truncated" in warn[0], err
        if code == 0:
            doc = json.loads(out)
            assert doc["len"] == 10000
            for e in doc["entries"]:
                assert e["value"] == 3 * e["key"] or "cut off" in json.dumps(e), e
            seen_cut |= "cut off" in out.decode()
        else:
            errs = [l for l in err.splitlines() if "error" in l]
            assert code == 2 and len(errs) == 1 and "cut off" in errs[0], err
            seen_cut = True
        code, out, err, _ = run(["maps", "--partial", *target])
        assert code in (0, 1) and "panicked" not in err, err
        # main.funcs: its header (below main.ints on the heap) survives, its global may not (a PIE's
        # data segment lies above the heap): the right funcs, or one error that says "cut off".
        code, out, err, _ = run(["show", "--partial", *target, "main.funcs", "--json"])
        funcs_readable = code == 0
        if funcs_readable:
            assert {e["key"]: e["value"] for e in json.loads(out)["entries"]} == want_funcs
        else:
            assert "cut off" in [l for l in err.splitlines() if "error" in l][0], err
        # gdb already opened the core: gomap reads what is there, as gdb does.
        got = gdb_session([prog["binary"], cut], ["gomap show main.funcs --json"])
        if funcs_readable:
            assert {e["key"]: e["value"] for e in json_in(got[0])["entries"]} == want_funcs
        else:
            # gdb itself evaluates `main.funcs`: where the core lost the data segment, gdb reads the
            # executable's initial value (a nil map). gomap cannot tell; README notes it.
            assert "cut off" in got[0] or json_in(got[0])["address"] == "0x0", got[0]
    assert seen_cut
