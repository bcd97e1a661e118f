"""The gdb extension (python/gomap.py) in real `gdb -nx -batch`: kernel cores of every toolchain,
live processes (`gdb -p`, and `gdb --args` + `run` + a breakpoint), locals, `gomap watch`, the
pretty-printer and every error path. Many commands run in one gdb per fixture; each command's
output is cut out of gdb's output by markers echoed between the commands.

What is compared: entries with the fixture's own ground truth; JSON byte for byte with the CLI's
for the same map; the pretty-printer's line with the CLI's text rendering of the same entries.

Env: GOMAP_GDB (gdb to run, default `gdb`), GOMAP_BIN (the CLI), GOMAP_NATIVE (the module), as
in the rest of the suite; GOMAP_TAGS restricts the matrix.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import time

import pytest

import fixturelib as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOMAP = os.environ.get("GOMAP_BIN", os.path.join(REPO, "target", "release", "gomap"))
GDB = os.environ.get("GOMAP_GDB") or shutil.which("gdb") or "gdb"
SOURCE = os.path.join(REPO, "python", "gomap.py")
LOCALS_SRC = os.path.join(REPO, "fixtures", "gdb_locals")

# Live processes, locals and watch run on a subset that covers classic and swiss maps.
LIVE_TAGS = ("go1.23", "go1.24-noswissmap", "go1.26", "go1.27-mapsplitgroup")
# The gdb-memory path (`set gomap-direct off`, what remote targets use): classic, PIE swiss, split groups.
GDB_MEMORY_TAGS = ("go1.21", "go1.26-pie", "go1.27-mapsplitgroup")


def _selected(tags):
    """`tags` restricted by GOMAP_TAGS; when none of them is selected, the first two selected tags
    (so a restricted run still exercises these paths instead of skipping them)."""
    chosen = F.selected_tags()
    if chosen is None:
        return list(tags)
    return [t for t in tags if t in chosen] or chosen[:2]


# ---- driving gdb -------------------------------------------------------------------------------------

MARK = "@@gomap-test@@"


class Gdb:
    """One batch gdb run: `out[i]` is the text command i printed (stdout and stderr, in order)."""

    def __init__(self, target_args, commands, timeout=180, env=None, source=SOURCE, cwd=None, pre=()):
        argv = [GDB, "-nx", "-batch", "-ex", "set pagination off", "-ex", "set width 0",
                "-ex", "set confirm off"] + list(pre)
        if source:
            argv += ["-ex", "source " + source]
        argv += ["-ex", "echo %s load\\n" % MARK]
        for i, c in enumerate(commands):
            argv += ["-ex", c, "-ex", "echo %s %d\\n" % (MARK, i)]
        argv += list(target_args)
        t0 = time.monotonic()
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           universal_newlines=True, timeout=timeout, env=env, cwd=cwd, errors="replace")
        self.seconds = time.monotonic() - t0
        self.text, self.commands = p.stdout, list(commands)
        parts = re.split(r"^%s (load|\d+)\n" % re.escape(MARK), p.stdout, flags=re.M)
        # parts = [before the load marker, "load", after it, "0", after marker 0, "1", ...]: the text
        # between marker i-1 (or "load") and marker i is what command i printed.
        self.preamble = parts[0]
        labels = parts[1::2]
        chunks = parts[2::2]
        self.out = {}
        for k, label in enumerate(labels):
            if label == "load":
                continue
            self.out[int(label)] = chunks[k - 1]
        self.tail = chunks[-1] if chunks else ""
        missing = [i for i in range(len(commands)) if i not in self.out]
        assert not missing, "gdb did not run commands %s (%s); output:\n%s" % (
            missing, [commands[i] for i in missing[:3]], self.text[-3000:])
        assert "Traceback" not in self.text, self.text[-3000:]
        assert "Python Exception" not in self.text, self.text[-3000:]

    def __getitem__(self, i):
        return self.out[i % len(self.commands)]


def one_error_line(text, needle, cmd=""):
    """A command that must fail: exactly one line, no traceback, saying `needle`."""
    lines = [l for l in text.splitlines() if l.strip()]
    assert len(lines) == 1, "%s: expected one error line, got:\n%s" % (cmd, text)
    assert "Traceback" not in text and "panicked" not in text, text
    assert needle.lower() in lines[0].lower(), "%s: %r not in %r" % (cmd, needle, lines[0])
    return lines[0]


def cli(*args, timeout=120):
    p = subprocess.run([GOMAP] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def cli_ok(*args):
    code, out, err = cli(*args)
    assert code in (0, 1) and not err, (args, code, err)
    return out


def printed(text):
    """`$N = VALUE` -> VALUE (one line)."""
    lines = [l for l in text.splitlines() if l.strip()]
    assert len(lines) == 1 and re.match(r"^\$\d+ = ", lines[0]), text
    return lines[0].split(" = ", 1)[1]


# ---- reading gdb's values ------------------------------------------------------------------------------

def split_top(body, sep=", "):
    """`body` split at `sep` outside brackets, braces, parentheses and quotes."""
    out, depth, cur, i, quote = [], 0, [], 0, None
    while i < len(body):
        c = body[i]
        if quote:
            cur.append(c)
            if c == "\\" and i + 1 < len(body):
                cur.append(body[i + 1])
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
            cur.append(c)
        elif c in "[{(":
            depth += 1
            cur.append(c)
        elif c in "]})":
            depth -= 1
            cur.append(c)
        elif depth == 0 and body.startswith(sep, i):
            out.append("".join(cur))
            cur = []
            i += len(sep)
            continue
        else:
            cur.append(c)
        i += 1
    if cur:
        out.append("".join(cur))
    return out


def gdb_map(value):
    """gdb's `map[K]V len=N = {[k] = v, ...}` -> (type, len or None for nil, [(k, v)], more)."""
    if re.match(r"^map\[[^ ]*(?: \{\})?[^ ]* nil$", value) or re.match(r"^[\w.]+ nil$", value):
        return value[:-4], None, [], False
    m = re.match(r"^(.*?) len=(\d+)(?: = \{(.*)\})?$", value, flags=re.S)
    assert m, value
    body = (m.group(3) or "").strip()
    # gdb appends "..." to the last child it printed when it stops at `print elements` (the
    # value's own "..." when a string was cut too: `"ab"......`).
    more = body.endswith("...")
    if more:
        body = body[:-3]
    items = []
    for part in split_top(body):
        k, _, v = part.strip().partition("] = ")
        assert k.startswith("["), (part, value)
        items.append((k[1:], v))
    return m.group(1), int(m.group(2)), items, more


def gdb_text(v):
    """How gdb shows a Go value from the truth (ints, bools, plain strings, structs of those,
    pointers), or None when the truth does not say it the same way."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        if v.startswith("0x"):
            return v  # a pointer
        if all(32 <= ord(c) < 127 for c in v):
            return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
        return None
    return None


def gdb_struct(text):
    """`{X = 1, Y = -2, Name = "a"}` -> {"X": "1", ...}."""
    assert text.startswith("{") and text.endswith("}"), text
    if text == "{<No data fields>}":
        return {}
    return dict(p.split(" = ", 1) for p in split_top(text[1:-1]))


def expected_items(tm):
    """The truth's entries as gdb shows them: {key text: value text}, or None if not all sayable."""
    out = {}
    for e in tm["entries"]:
        k = gdb_text(e["key"])
        if k is None:
            return None
        if isinstance(e["value"], dict) and "address" not in e["value"]:
            fields = {f: gdb_text(x) for f, x in e["value"].items()}
            if None in fields.values():
                return None
            out[k] = fields
        else:
            v = gdb_text(e["value"])
            if v is None:
                return None
            out[k] = v
    return out


def print_expr(expr):
    """What to `print` in gdb for a truth map name: quote the global, fields follow."""
    head, _, rest = expr.partition(".")  # "main" . "srv.sessions"
    name, _, fields = rest.partition(".")
    return "'%s.%s'%s" % (head, name, "." + fields if fields else "")


# ---- the locals fixture (built here, cached outside the repository) ---------------------------------

def locals_binary(row):
    """fixtures/gdb_locals built with the toolchain of a matrix row, cached under
    ${GOMAP_CACHE}/gdb_locals/<hash of sources + toolchain>/locals."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(LOCALS_SRC)):
        with open(os.path.join(LOCALS_SRC, name), "rb") as f:
            h.update(name.encode() + b"\0" + f.read() + b"\0")
    h.update(("%s|%s|%s|%s" % (row["go"], row["go_version"], row["goexperiment"], row["pie"])).encode())
    out_dir = os.path.join(F.CACHE, "gdb_locals", h.hexdigest()[:16])
    binary = os.path.join(out_dir, "locals")
    if os.path.exists(binary):
        return binary
    os.makedirs(out_dir, exist_ok=True)
    tmp = binary + ".tmp%d" % os.getpid()
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="", GOENV="off", GOEXPERIMENT=row["goexperiment"],
               CGO_ENABLED="0", GOCACHE=os.path.join(F.CACHE, "gocache"), GOPATH=os.path.join(F.CACHE, "gopath"),
               GOMODCACHE=os.path.join(F.CACHE, "gopath", "pkg", "mod"))
    cmd = [row["go"], "build", "-trimpath", "-gcflags=-N -l", "-o", tmp]
    if row["pie"]:
        cmd.append("-buildmode=pie")
    p = subprocess.run(cmd + ["."], cwd=LOCALS_SRC, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=600)
    assert p.returncode == 0, "building fixtures/gdb_locals with %s failed:\n%s" % (row["go"], p.stdout)
    os.rename(tmp, binary)
    return binary


class LocalsProcess:
    """The locals fixture running on its own, past its "ready" line (main.watched being written)."""

    def __init__(self, binary):
        self.binary = binary

    def __enter__(self):
        self.proc = subprocess.Popen([self.binary], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, universal_newlines=True,
                                     preexec_fn=F._child_setup, start_new_session=True)
        line = self.proc.stdout.readline()
        assert line.startswith("ready %d " % self.proc.pid), line
        return self.proc.pid

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


# ---- cores: every toolchain ------------------------------------------------------------------------

def _core_session(fixture, truth, extra=()):
    """One gdb on the core: every map as JSON and through the pretty-printer, plus `extra`."""
    exprs = list(truth["maps"])
    cmds = []
    for e in exprs:
        cmds.append("gomap show %s --json --limit 0" % e)
    for e in exprs:
        cmds.append("print %s" % print_expr(e))
    cmds += list(extra)
    return exprs, Gdb([fixture["binary"], fixture["core"]], cmds)


def test_core_every_map_json_equals_cli_and_truth(fixture, truth):
    core = ["--binary", fixture["binary"], "--core", fixture["core"]]
    extra = [
        "gomap show 'main.intMap' --json --limit 0",                   # 0: gdb's quoting
        "gomap show %s --type 'map[string]interface {}' --json --limit 0" % truth["maps"]["main.ifaceMap"]["address"],
        "gomap show main.srv.sessions",                                 # 2: text
        "gomap buckets main.tombMap --json",
        "gomap buckets main.growingMap --range 0:3",
        "gomap check main.intMap main.deletedMap --json",               # 5
        "gomap check main.deletedMap",
        "print $gomap_status",
        "gomap check main.nope",
        "print $gomap_status",
        "gomap maps --json",                                            # 10
        "gomap maps --sort waste",
        "gomap layout --json",
        "gomap layout",
        "gomap check main.intMap",                                      # 14
        "print $gomap_status",
    ]
    exprs, g = _core_session(fixture, truth, extra)
    assert g.preamble.count("gomap: loaded ") == 1, g.preamble
    n = len(exprs)
    for i, e in enumerate(exprs):
        want = cli_ok("show", *core, e, "--json", "--limit", "0")
        assert g[i] == want, "%s: gdb's JSON differs from the CLI's" % e
        doc = json.loads(g[i])
        assert doc["address"] == truth["maps"][e]["address"], e
        F.assert_map_matches_truth(doc, truth["maps"][e], e, fixture["impl"])
    x = 2 * n
    assert g[x] == g[exprs.index("main.intMap")], "'main.intMap' (gdb quoting) differs from main.intMap"
    tm = truth["maps"]["main.ifaceMap"]
    assert g[x + 1] == cli_ok("show", *core, tm["address"], "--type", "map[string]interface {}", "--json", "--limit", "0")
    F.assert_map_matches_truth(json.loads(g[x + 1]), tm, "ifaceMap by address", fixture["impl"])
    assert g[x + 2] == cli_ok("show", *core, "main.srv.sessions")
    assert g[x + 3] == cli_ok("buckets", *core, "main.tombMap", "--json")
    assert g[x + 4] == cli_ok("buckets", *core, "main.growingMap", "--range", "0:3") and "legend:" in g[x + 4]
    assert g[x + 5] == cli_ok("check", *core, "main.intMap", "main.deletedMap", "--json")
    assert "oversized" in g[x + 6]
    assert printed(g[x + 7]) == "1", "check with a warning sets $gomap_status 1"
    one_error_line(g[x + 8], "no package-level variable `main.nope`")
    assert printed(g[x + 9]) == "2", "an error sets $gomap_status 2, as the CLI's exit status"
    assert g[x + 10] == cli_ok("maps", *core, "--json")
    assert g[x + 11] == cli_ok("maps", *core, "--sort", "waste")
    assert g[x + 12] == cli_ok("layout", *core, "--json")
    assert json.loads(g[x + 12])["impl"] == fixture["impl"]
    assert "memory      core " in g[x + 13], g[x + 13]  # the fast path: the core file itself
    assert g[x + 14] == cli_ok("check", *core, "main.intMap")
    assert printed(g[x + 15]) == "0", "check of a healthy map sets $gomap_status 0"


def check_printed_map(got, tm, e, limit=100):
    """One `print` of a map against its truth: header, number of entries, and the entries
    themselves where the truth says them as gdb does (structs field by field)."""
    ty, n, items, more = gdb_map(got)
    assert ty == tm["type"], (e, got)
    if tm["address"] == "0x0":
        assert n is None and not items, (e, got)
        return items
    assert n == tm["len"], (e, got)
    assert len(items) == min(tm["len"], limit) and more == (tm["len"] > limit), (e, len(items), got[:300])
    want = expected_items(tm)
    if want is not None and len(items) == tm["len"]:
        have = {}
        for k, v in items:
            v = re.sub(r"^(-?\d+) '.*'$", r"\1", v)  # gdb shows 1-byte integers with their character too
            have[k] = gdb_struct(v) if isinstance(want.get(k), dict) else v
        assert have == want, (e, got)
    return items


def test_core_pretty_printer_matches_truth(fixture, truth):
    """`print` of every map: `map[K]V len=N = {[k] = v, ...}` (gdb's map display: children
    under the 'map' hint) with entries == truth, structs as fields, nested maps through the same
    printer; `set print elements 4` cuts entries (2 pairs) and strings; `set print pretty on`."""
    extra = ["set print elements 4", "print 'main.strMap'", "print 'main.bigMap'", "print 'main.litMap'",
             "set print elements 200", "print 'main.cfg'", "print 'main.nilMap'", "print &'main.intMap'",
             "set print pretty on", "print 'main.structMap'", "print 'main.emptyMap'"]
    exprs, g = _core_session(fixture, truth, extra)
    n = len(exprs)
    for i, e in enumerate(exprs):
        # gdb's default `print elements` is 200 children: 100 entries.
        check_printed_map(printed(g[n + i]), truth["maps"][e], e)
    nested = gdb_map(printed(g[n + exprs.index("main.nestedMap")]))[2]
    inner = {json.loads(k): v for k, v in nested}
    for x in truth["maps"]["main.nestedMap"]["entries"]:
        _, ilen, iitems, _ = gdb_map(inner[x["key"]])
        assert ilen == (None if x["value"]["address"] == "0x0" else x["value"]["len"]), (x, inner)
        assert len(iitems) == x["value"]["len"], inner  # the inner map expanded too
    x = 2 * n
    _, ln, items, more = gdb_map(printed(g[x + 1]))
    assert ln == 50 and len(items) == 2 and more, g[x + 1]
    assert all(k.endswith('"...') and len(json.loads(k[:-3])) == 4 for k, _ in items), g[x + 1]  # "key-"...
    _, ln, items, more = gdb_map(printed(g[x + 2]))
    assert ln == 1000000 and len(items) == 2 and more, g[x + 2][:300]
    lit = printed(g[x + 3])
    assert '["alph"...]' in lit or '["gamm"...]' in lit or '["unic"...]' in lit or '["beta"]' in lit, lit
    cfg = printed(g[x + 5])
    limits = printed(g[n + exprs.index("main.cfg.limits")])
    assert "limits = %s" % limits in cfg, cfg  # the printer inside a struct
    assert printed(g[x + 6]) == "map[string]int nil"
    assert re.match(r"^\(map\[int\]int \*\) 0x[0-9a-f]+", printed(g[x + 7])), g[x + 7]
    pretty = g[x + 9]
    assert pretty.startswith("$") and pretty.count("\n") >= 3 * 5, pretty  # one line per field
    assert re.search(r'^  \["origin"\] = \{$', pretty, flags=re.M) and re.search(r"^    X = 0,$", pretty, flags=re.M), pretty
    assert printed(g[x + 10]) == "map[string]int len=0", g[x + 10]


# ---- MI: what IDEs (VS Code's cppdbg, CLion) use ---------------------------------------------------------

def mi_parse(text):
    """The results of one MI record (`name=value,...` after `^done,`) as a dict; lists of results
    become lists of their values."""
    pos = 0

    def cstring():
        nonlocal pos
        assert text[pos] == '"'
        pos += 1
        out = bytearray()
        while text[pos] != '"':
            c = text[pos]
            if c == "\\":
                nxt = text[pos + 1]
                if nxt in "01234567":
                    out.append(int(text[pos + 1:pos + 4], 8))
                    pos += 4
                    continue
                out += {"n": b"\n", "t": b"\t", '"': b'"', "\\": b"\\"}.get(nxt, nxt.encode())
                pos += 2
                continue
            out += c.encode()
            pos += 1
        pos += 1
        return out.decode("utf-8", "replace")

    def value():
        nonlocal pos
        c = text[pos]
        if c == '"':
            return cstring()
        close = "}" if c == "{" else "]"
        pos += 1
        items, named = [], {}
        while text[pos] != close:
            if text[pos] in '"{[':
                items.append(value())
            else:
                name, v = result()
                named[name] = v
                items.append(v)
            if text[pos] == ",":
                pos += 1
        pos += 1
        return named if c == "{" else items

    def result():
        nonlocal pos
        eq = text.index("=", pos)
        name = text[pos:eq]
        pos = eq + 1
        return name, value()

    out = {}
    while pos < len(text):
        name, v = result()
        out[name] = v
        if pos < len(text) and text[pos] == ",":
            pos += 1
    return out


def mi_session(target_args, commands, timeout=180):
    """`gdb --interpreter=mi2` running `commands` (MI or CLI); returns one dict per command: the
    results of its ^done record, or {"error": msg}."""
    script = ["-enable-pretty-printing", "source " + SOURCE] + list(commands) + ["-gdb-exit"]
    p = subprocess.run([GDB, "-nx", "--interpreter=mi2"] + list(target_args), input="\n".join(script) + "\n",
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=timeout, errors="replace")
    records = [l for l in p.stdout.splitlines() if l.startswith(("^done", "^error", "^exit"))]
    assert "Traceback" not in p.stdout and "Python Exception" not in p.stdout, p.stdout[-3000:]
    # the first ^done is the target's load; then one per command
    results = []
    for r in records[2:2 + len(commands)]:
        if r.startswith("^error"):
            results.append({"error": mi_parse(r[len("^error,"):]).get("msg")})
        else:
            results.append(mi_parse(r[len("^done,"):]) if r.startswith("^done,") else {})
    assert len(results) == len(commands), p.stdout[-3000:]
    return results, p.stdout


MI_MAPS = ("main.intMap", "main.structMap", "main.nestedMap")


def check_mi(target_args, truth_maps):
    """One MI session: -var-create and -var-list-children of each map of MI_MAPS, then
    -var-list-children of each value child (names are known from the truth's len: a map's
    children are key, value, key, value... named [0], [1], ...)."""
    cmds = []
    for i, e in enumerate(MI_MAPS):
        cmds += ["-var-create m%d * %s" % (i, print_expr(e)), "-var-list-children --all-values m%d" % i]
        cmds += ["-var-list-children --all-values m%d.[%d]" % (i, 2 * j + 1) for j in range(truth_maps[e]["len"])]
    res, _ = mi_session(target_args, cmds)
    pos = 0
    for i, e in enumerate(MI_MAPS):
        tm = truth_maps[e]
        created, listed = res[pos], res[pos + 1]
        subs = res[pos + 2:pos + 2 + tm["len"]]
        pos += 2 + tm["len"]
        assert created.get("displayhint") == "map" and created.get("dynamic") == "1", created
        assert created["type"] == tm["type"], created
        kids = listed["children"]
        assert len(kids) == 2 * tm["len"], (e, listed)
        got = {}
        for j, (k, v) in enumerate(zip(kids[0::2], kids[1::2])):
            sub = subs[j]
            assert v["name"] == "m%d.[%d]" % (i, 2 * j + 1), v
            key = json.loads(k["value"]) if k["value"].startswith('"') else int(k["value"])
            if e == "main.intMap":
                assert sub.get("numchild") == "0", sub
                got[key] = int(v["value"])
            elif e == "main.structMap":
                assert v["type"] == "main.Point" and v["numchild"] == "3", v  # a struct: fields as children
                fields = {c["exp"]: c["value"] for c in sub["children"]}
                got[key] = {"X": int(fields["X"]), "Y": int(fields["Y"]), "Name": json.loads(fields["Name"])}
            else:
                assert v["type"] == "map[string]int" and v.get("displayhint") == "map", v  # the same printer
                got[key] = {"len": len(sub.get("children", [])) // 2}
        if e == "main.nestedMap":
            want = {x["key"]: {"len": x["value"]["len"]} for x in tm["entries"]}
        else:
            want = {x["key"]: x["value"] for x in tm["entries"]}
        assert got == want, (e, got, want)


def test_core_mi_children_equal_truth(fixture, truth):
    """MI varobjs, as VS Code's cppdbg and CLion create them: a scalar map's children are its
    keys and values; a struct-valued map's values have the struct's fields as children; a
    nested map's values are maps with their own children."""
    check_mi([fixture["binary"], fixture["core"]], truth["maps"])


def runtime_gdb_py(row):
    """Go's own gdb support script of the toolchain that built a fixture, or None."""
    import glob

    root = os.path.dirname(os.path.dirname(row["go"]))
    found = sorted(glob.glob(os.path.join(root, "**", "src", "runtime", "runtime-gdb.py"), recursive=True))
    return found[0] if found else None


RUNTIME_GDB_TAGS = ("go1.21", "go1.24-noswissmap", "go1.26", "go1.27-mapsplitgroup")
RUNTIME_GDB_MAPS = ("main.intMap", "main.strMap", "main.litMap", "main.structMap", "main.nestedMap", "main.ifaceMap",
                    "main.sliceValMap", "main.ptrMap", "main.nilMap", "main.srv.sessions", "main.cfg")


@pytest.mark.parametrize("tag", _selected(RUNTIME_GDB_TAGS))
def test_runtime_gdb_py_before_or_after_gomap(tag, fixture_matrix):
    """With Go's runtime-gdb.py sourced first, or auto-loaded with the program after gomap was
    sourced, `print` of maps (and of the strings in them) is what it is without it, and gomap
    says once that it took over."""
    row = fixture_matrix[tag]
    script = runtime_gdb_py(row)
    assert script, "no runtime-gdb.py in the toolchain of %s (%s)" % (tag, row["go"])
    target = [row["binary"], row["core"]]
    cmds = ["print %s" % print_expr(e) for e in RUNTIME_GDB_MAPS] + ["info pretty-printer"]
    plain = Gdb(target, cmds)
    before = Gdb(target, cmds, source=None, pre=["-ex", "source " + script, "-ex", "source " + SOURCE])
    goroot_src = os.path.dirname(os.path.dirname(script))
    after = Gdb(target, cmds, source=None, pre=["-iex", "source " + SOURCE, "-iex", "set auto-load safe-path /",
                                                "-iex", "directory " + goroot_src])
    for g in (before, after):
        assert "Loading Go Runtime support." in g.text, g.text[:2000]  # Go's script did run
        assert g.text.count("gomap's printer takes over Go maps") == 1, g.text[:2000]
        for i, e in enumerate(RUNTIME_GDB_MAPS):
            assert g[i] == plain[i], (e, g[i], plain[i])
        printers = g[len(RUNTIME_GDB_MAPS)]
        assert re.search(r"pretty-printers:\n  gomap\n", printers) and "matcher" in printers, printers
    assert "takes over" not in plain.text
    check_printed_map(printed(plain[0]), F.load_truth(row["truth"])["maps"]["main.intMap"], "main.intMap")


def test_core_completion_help_and_errors(fixture, truth):
    b, c = fixture["binary"], fixture["core"]
    errors = [
        ("gomap show main.nope", "no package-level variable `main.nope`"),
        ("gomap show 'main.nope'", "no package-level variable `main.nope`"),
        ("gomap show nope", 'No symbol "nope" in current context'),
        ("gomap show main.cfg", "main.cfg has type main.Config, not a map"),
        ("gomap show main.srv.nofield", "no field `nofield`"),
        ("gomap show 0x10 --type 'map[string]int'", "unreadable"),
        ("gomap show 0x10", "--type"),
        ("gomap show 0x10 --type 'map[nope]x'", "no type"),
        ("gomap show main.intMap --bogus", "--bogus"),
        ("gomap show main.intMap --limit lots", "lots"),
        ("gomap show", "EXPR"),
        ("gomap buckets main.intMap --range 9:2", "--range"),
        ("gomap frobnicate", 'unknown subcommand "frobnicate"'),
        ("gomap watch main.intMap", "needs a live process"),
        ("gomap watch", "usage: gomap watch EXPR"),
        ("gomap watch main.intMap --count x", "--count"),
        ("gomap show main.intMap 'unbalanced", "unbalanced"),
    ]
    cmds = [e for e, _ in errors] + [
        "complete gomap s",
        "complete gomap show main.int",
        "complete gomap check main.",
        "complete gomap show --li",
        "complete gomap ",
        "help gomap",
        "gomap show --help",
        "help gomap show",
        "help gomap watch",
        "gomap",
        "source " + SOURCE,                       # sourcing again replaces, never duplicates
        "info pretty-printer",
        "print 'main.litMap'",
    ]
    g = Gdb([b, c], cmds)
    for i, (cmd, needle) in enumerate(errors):
        one_error_line(g[i], needle, cmd)
    x = len(errors)
    assert g[x].split() == ["gomap", "show"], g[x]
    assert g[x + 1].splitlines() == ["gomap show main.intMap"], g[x + 1]
    names = [l.split()[-1] for l in g[x + 2].splitlines()]
    maps = [e for e, tm in truth["maps"].items() if e.count(".") == 1]
    assert set(maps) <= set(names), (maps, names)
    assert "main.cfg" not in names  # a struct, not a map
    assert g[x + 3].splitlines() == ["gomap show --limit"], g[x + 3]
    assert sorted(l.split()[-1] for l in g[x + 4].splitlines()) == ["buckets", "check", "holders", "layout", "maps", "show", "watch"]
    for sub in ("show", "buckets", "check", "maps", "layout", "watch"):
        assert "gomap %s -- " % sub in g[x + 5], g[x + 5]
    assert "--limit <LIMIT>" in g[x + 6] and "--json" in g[x + 6] and "Usage:" in g[x + 6]
    assert "--limit <LIMIT>" in g[x + 7]
    assert "--count" in g[x + 8] and "live" in g[x + 8]
    assert "Usage: gomap SUBCOMMAND" in g[x + 9] and "watch" in g[x + 9]
    assert g[x + 10].startswith("gomap: loaded ")
    assert re.findall(r"^ +gomap$", g[x + 11], flags=re.M) == ["  gomap"], g[x + 11]  # on the executable only
    check_printed_map(printed(g[x + 12]), truth["maps"]["main.litMap"], "main.litMap")


@pytest.mark.parametrize("tag", _selected(GDB_MEMORY_TAGS))
def test_core_through_gdb_memory(tag, fixture_matrix):
    """`set gomap-direct off`: every read goes through gdb's memory API (what a remote target uses),
    with the PIE load bias found through gdb; the result is the same JSON as the CLI's."""
    row = fixture_matrix[tag]
    truth = F.load_truth(row["truth"])
    exprs = ["main.intMap", "main.structMap", "main.ifaceMap", "main.growingMap", "main.tombMap", "main.srv.sessions"]
    cmds = ["set gomap-direct off", "show gomap-direct", "gomap layout"] + \
           ["gomap show %s --json --limit 0" % e for e in exprs] + ["print 'main.litMap'", "set gomap-direct on", "gomap layout"]
    g = Gdb([row["binary"], row["core"]], cmds)
    assert "off" in g[1]
    assert re.search(r"^memory +gdb", g[2], flags=re.M), g[2]
    core = ["--binary", row["binary"], "--core", row["core"]]
    for i, e in enumerate(exprs):
        assert g[3 + i] == cli_ok("show", *core, e, "--json", "--limit", "0"), e
        F.assert_map_matches_truth(json.loads(g[3 + i]), truth["maps"][e], e, row["impl"])
    check_printed_map(printed(g[3 + len(exprs)]), truth["maps"]["main.litMap"], "main.litMap")
    assert re.search(r"^memory +core ", g[-1], flags=re.M), g[-1]


# ---- live processes ---------------------------------------------------------------------------------

LIVE_EXPRS = ("main.intMap", "main.strMap", "main.structMap", "main.floatMap", "main.ifaceMap", "main.bigKeyMap",
              "main.nestedMap", "main.srv.sessions", "main.growingMap", "main.tombMap", "main.uintMap")


@pytest.mark.parametrize("tag", _selected(LIVE_TAGS))
def test_attach_live_process(tag, fixture_matrix):
    """`gdb -p PID` on the running maps fixture: /proc/PID/mem directly, then through gdb's memory."""
    row = fixture_matrix[tag]
    with F.LiveFixture(row) as (pid, truth, paths):
        cmds = ["gomap show %s --json --limit 0" % e for e in LIVE_EXPRS]
        cmds += ["print 'main.litMap'", "gomap layout", "set gomap-direct off", "gomap show main.structMap --json --limit 0",
                 "gomap layout", "gomap watch main.intMap --count x", "print 'main.structMap'"]
        g = Gdb(["-p", str(pid), row["binary"]], cmds)
        check_mi(["-p", str(pid), row["binary"]], truth["maps"])  # what an IDE attached to it sees
        for i, e in enumerate(LIVE_EXPRS):
            doc = json.loads(g[i])
            assert doc["address"] == truth["maps"][e]["address"], e
            F.assert_map_matches_truth(doc, truth["maps"][e], e, row["impl"])
        x = len(LIVE_EXPRS)
        check_printed_map(printed(g[x]), truth["maps"]["main.litMap"], "main.litMap")
        check_printed_map(printed(g[x + 6]), truth["maps"]["main.structMap"], "main.structMap")
        assert re.search(r"^memory +pid %d " % pid, g[x + 1], flags=re.M), g[x + 1]  # /proc/PID/mem directly
        F.assert_map_matches_truth(json.loads(g[x + 3]), truth["maps"]["main.structMap"], "structMap via gdb memory", row["impl"])
        assert re.search(r"^memory +gdb", g[x + 4], flags=re.M), g[x + 4]
        one_error_line(g[x + 5], "--count")
        assert "detached" in g.tail or "Detaching" in g.text, g.tail  # gdb let the process go on
        os.kill(pid, 0)  # and it still runs


LOCAL_TRUTH = {
    "local": [{"key": "alpha", "value": 1}, {"key": "beta", "value": 2}, {"key": "gamma", "value": 3}],
    "nums": [{"key": i, "value": "n%d" % i} for i in range(5)],
    "box.index": [{"key": "x", "value": 10}, {"key": "y", "value": 20}],
}


@pytest.mark.parametrize("tag", _selected(LIVE_TAGS))
def test_run_to_breakpoint_locals(tag, fixture_matrix):
    """`gdb --args locals` + `run` to a breakpoint: locals, arguments and fields of the selected frame."""
    row = fixture_matrix[tag]
    binary = locals_binary(row)
    impl = row["impl"]
    cmds = ["break main.marker", "run", "up", "info locals"]
    exprs = ["local", "nums", "box.index", "(*box).index", "*&local"]
    cmds += ["gomap show %s --json --limit 0" % e for e in exprs]
    cmds += ["print local", "print nums", "print box.index", "print *box",
             "gomap show notMap", "gomap show n", "gomap show nope", "gomap show box.nofield",
             "complete gomap show lo", "complete gomap show n", "gomap show local --limit 2",
             "gomap show main.watched --json", "print 'main.watched'", "gomap layout",
             # then on to where main.watched is new, and watch it grow from empty
             "delete", "tbreak fmt.Println", "continue", "gomap watch main.watched --count 40", "kill"]
    g = Gdb(["--args", binary], cmds)
    assert "main.withLocals" in g[2], g[2]
    for i, e in enumerate(exprs):
        doc = json.loads(g[4 + i])
        want = LOCAL_TRUTH["box.index" if "box" in e else e.strip("*&")]
        assert F.diff_entries(want, doc["entries"]) == "", (e, doc)
        assert doc["impl"] == impl and doc["len"] == len(want) and doc["name"] == e
        assert doc["type"] == ("main.Index" if "box" in e else "map[int]string" if e == "nums" else "map[string]int")
    x = 4 + len(exprs)
    assert gdb_map(printed(g[x]))[:2] == ("map[string]int", 3)
    assert sorted(gdb_map(printed(g[x]))[2]) == [('"alpha"', "1"), ('"beta"', "2"), ('"gamma"', "3")]
    assert gdb_map(printed(g[x + 1]))[:2] == ("map[int]string", 5)
    assert sorted(gdb_map(printed(g[x + 1]))[2]) == [(str(i), '"n%d"' % i) for i in range(5)]
    # box.index has a named map type (type Index map[string]int): printed and decoded all the same.
    assert printed(g[x + 2]) in ('main.Index len=2 = {["x"] = 10, ["y"] = 20}', 'main.Index len=2 = {["y"] = 20, ["x"] = 10}')
    assert 'index = %s}' % printed(g[x + 2]) in printed(g[x + 3]), g[x + 3]
    one_error_line(g[x + 4], "notMap has type int, not a map")
    one_error_line(g[x + 5], "n has type int, not a map")
    one_error_line(g[x + 6], 'No symbol "nope" in current context')
    one_error_line(g[x + 7], "nofield")
    assert g[x + 8].splitlines() == ["gomap show local"], g[x + 8]
    assert set(g[x + 9].splitlines()) == {"gomap show nums"}, g[x + 9]  # maps only: not n, notMap
    assert "entries (2 shown)" in g[x + 10] and "1 more" in g[x + 10], g[x + 10]
    nil = json.loads(g[x + 11])
    assert nil["address"] == "0x0" and nil["len"] == 0
    assert printed(g[x + 12]) == "map[int]int nil"
    assert re.search(r"^memory +pid \d+ ", g[x + 13], flags=re.M), g[x + 13]
    watch = g[x + 17]
    events = re.findall(r"^gomap watch: #(\d+) (\w+) (.*)$", watch, flags=re.M)
    assert [int(n) for n, _, _ in events] == list(range(1, 41)), watch
    seen = [(k, int(re.match(r"key (-?\d+)", rest).group(1))) for _, k, rest in events if k in ("write", "delete")]
    assert seen[0] == ("write", 0) and seen == _program_order(seen[0], len(seen)), watch
    grows = [rest for _, k, rest in events if k == "grow"]
    if impl == "classic":  # 8 slots in one bucket: hashGrow at the 9th entry, then evacuation
        assert grows and all(r.startswith("(hashGrow) from main.main") for r in grows), watch
        assert re.search(r"^gomap watch: #\d+ evacuate old bucket 0 .*growing: 0/1 old buckets evacuated", watch, flags=re.M), watch
    else:  # a small map (one group), then a table, then its rehash and grow
        assert [r.split()[0] for r in grows][:3] == ["(growToSmall)", "(growToTable)", "(rehash)"], watch


def _program_order(first, n):
    """The locals fixture's writes and deletes of main.watched from event `first` on:
    for i: watched[i] = ...; if i%3 == 2: delete(watched, i-1)."""
    kind, key = first
    i, at_delete = (key + 1, True) if kind == "delete" else (key, False)
    out = []
    while len(out) < n:
        if not at_delete:
            out.append(("write", i))
        if i % 3 == 2 and len(out) < n:
            out.append(("delete", i - 1))
        i, at_delete = i + 1, False
    return out


@pytest.mark.parametrize("tag", _selected(LIVE_TAGS))
def test_watch_sees_writes_of_one_map(tag, fixture_matrix):
    """`gomap watch main.watched --count 20` on an attached process: 20 events of that map only, in
    the program's order, each once (main.noise, written as often with negative keys, never shows),
    then the program is stopped in the runtime with main.main as the writer."""
    row = fixture_matrix[tag]
    binary = locals_binary(row)
    with LocalsProcess(binary) as pid:
        cmds = ["gomap watch main.watched --count 20", "bt", "info breakpoints", "gomap show main.watched --json --limit 0",
                "gomap watch main.noise --count 1", "gomap watch main.watched --count 0", "gomap watch 0x10 --type 'map[int]int'",
                "gomap watch main.nope", "gomap watch --help", "gomap watch main.names --count 3"]
        g = Gdb(["-p", str(pid), binary], cmds, timeout=120)
    out = g[0]
    events = re.findall(r"^gomap watch: #(\d+) (write|delete|grow|evacuate|clear)(.*)$", out, flags=re.M)
    assert [int(n) for n, _, _ in events] == list(range(1, 21)), out
    head = out.splitlines()[0]
    assert re.match(r"gomap watch: main\.watched map\[int\]int at 0x[0-9a-f]+ \((classic|swiss), go1\.\d+", head), head
    assert "(%s, " % row["impl"] in head
    seen = []
    for _, kind, rest in events:
        if kind in ("write", "delete"):
            m = re.match(r" key (-?\d+) from main\.main \(main\.go:\d+\) \[len \d+", rest)
            assert m, rest
            seen.append((kind, int(m.group(1))))
        else:
            assert re.search(r"\[len \d+", rest), rest
    assert len(seen) >= 5, out  # the rest: growth steps while the map is young
    # Exactly the program's sequence: nothing of main.noise, nothing missed, nothing twice.
    assert seen == _program_order(seen[0], len(seen)), out
    assert "20 events seen" in out, out
    assert "runtime" in g[1] and "main.main" in g[1], g[1]  # stopped inside the runtime, called from main.main
    assert "No breakpoints or watchpoints" in g[2], g[2]  # everything removed
    assert json.loads(g[3])["len"] > 0
    assert re.findall(r"^gomap watch: #1 write key (-?\d+) ", g[4], flags=re.M)[0].startswith("-"), g[4]
    one_error_line(g[5], "--count")
    one_error_line(g[6], "unreadable")
    one_error_line(g[7], "no package-level variable `main.nope`")
    assert "Usage: gomap watch EXPR" in g[8]
    keys = re.findall(r'^gomap watch: #\d write key "(k\d)" from main\.main ', g[9], flags=re.M)
    assert len(keys) == 3, g[9]  # string keys, read from the faststr arguments


def test_source_without_native_module(tmp_path):
    """A checkout that has not been built: one line saying how to build, and commands fail cleanly."""
    for name in ("gomap.py", "gomap_common.py"):
        shutil.copy(os.path.join(REPO, "python", name), str(tmp_path / name))
    env = {k: v for k, v in os.environ.items() if k != "GOMAP_NATIVE"}
    g = Gdb([], ["gomap show main.m", "help gomap", "print 1"], source=str(tmp_path / "gomap.py"), env=env)
    lines = [l for l in g.preamble.splitlines() if l.startswith("gomap:")]
    assert len(lines) == 1 and "cargo build --release --features python" in lines[0], g.preamble
    one_error_line(g[0], "not built")
    assert "gomap" in g[1]
    assert printed(g[2]) == "1"


def test_ctrl_c_interrupts_a_long_command(fixture_matrix):
    """SIGINT (Ctrl-C) during a 1M-entry dump stops that command with one line; gdb goes on."""
    row = fixture_matrix.get("go1.23") or next(iter(fixture_matrix.values()))
    long_cmd = "gomap show main.bigMap --limit 0"
    argv = [GDB, "-nx", "-batch", "-ex", "source " + SOURCE, "-ex", "echo start\\n"] + \
           ["-ex", long_cmd] * 3 + ["-ex", "print 12345", row["binary"], row["core"]]
    out, returncode = F.interrupt_when_started(argv)
    assert [l for l in out.splitlines() if "interrupted" in l] == ["interrupted"], out[-2000:]
    assert out.count("findings:") < 3, out[-2000:]  # one of the three dumps was cut short
    assert "$1 = 12345" in out and "Traceback" not in out
    assert returncode == 0


def test_rust_panic_is_one_error_not_a_dead_gdb(fixture_matrix):
    """A panic in the Rust core (which should never happen) reaches gdb as one GomapError line:
    no Rust report or backtrace on the terminal, and gdb and gomap go on working."""
    row = fixture_matrix.get("go1.26") or next(iter(fixture_matrix.values()))
    probe = ("python exec(\"import sys\\nm = sys.modules['_gomap']\\ntry:\\n m._panic_probe()\\n"
             "except m.GomapError as e:\\n print('caught: %s' % e)\")")
    g = Gdb([row["binary"], row["core"]], [probe, "gomap show main.intMap --json", "print 7"])
    line = one_error_line(g[0], "caught: internal error: panic probe")
    assert "please report it" in line
    assert "panicked" not in g.text and "stack backtrace" not in g.text, g.text[-2000:]
    assert json.loads(g[1])["len"] == 10
    assert printed(g[2]) == "7"


def _explore(fixture, expr, answers):
    """gdb's interactive `explore EXPR` on the core, answered line by line from `answers`."""
    p = subprocess.run([GDB, "-nx", "-batch", "-ex", "source " + SOURCE, "-ex", "file " + fixture["binary"],
                        "-ex", "core " + fixture["core"], "-ex", "explore %s" % print_expr(expr)],
                       input="".join(a + "\n" for a in answers), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=120)
    return p.stdout[p.stdout.find("The value of"):]


def _explored_entries(text):
    """The entries of the first map listing in an `explore` transcript: [(key, shown), ...]."""
    lines = text.split("with the following entries:\n", 1)[1].lstrip("\n").split("\n\n", 1)[0]
    return [re.match(r"  \[(.*)\] = (.*)$", line).groups() for line in lines.splitlines()]


def test_explore_walks_map_entries(fixture, truth):
    """`explore` on a Go map lists its entries (scalars and strings inline, the rest numbered) and
    goes into a struct value's fields and a nested map's entries, like gdb's own struct explorer."""
    lit = _explored_entries(_explore(fixture, "main.litMap", []))
    want = {x["key"]: x["value"] for x in truth["maps"]["main.litMap"]["entries"]}
    assert {json.loads(k): json.loads(v) for k, v in lit} == want, lit
    listed = _explored_entries(_explore(fixture, "main.structMap", []))
    far = next(v for k, v in listed if json.loads(k) == "far")
    choice = re.match(r"<Enter (\d+) to explore this value of type 'main.Point'>", far).group(1)
    text = _explore(fixture, "main.structMap", [choice, ""])
    point = next(x["value"] for x in truth["maps"]["main.structMap"]["entries"] if x["key"] == "far")
    assert "is a struct/class of type 'main.Point'" in text, text
    for field in ("X", "Y"):
        assert re.search(r"^\s+%s = %d \.\. \(Value of type 'int'\)$" % (field, point[field]), text, flags=re.M), text
    listed = _explored_entries(_explore(fixture, "main.nestedMap", []))
    inner = next(x["value"] for x in truth["maps"]["main.nestedMap"]["entries"] if x["key"] == "inner1")
    choice = re.match(r"<Enter (\d+) ", next(v for k, v in listed if json.loads(k) == "inner1")).group(1)
    text = _explore(fixture, "main.nestedMap", [choice, ""])
    nested = text.split("is a Go map", 2)[2]
    assert nested.startswith(", map[string]int len=%d," % inner["len"]), nested[:300]
    assert len(_explored_entries(nested)) == inner["len"], nested[:500]
    assert "Traceback" not in text
