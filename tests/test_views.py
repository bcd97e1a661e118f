"""Views for people: `diff` of two snapshots, `top` on a live process, the HTML `report` in a real
headless Chromium, and `buckets --picture`.

Ground truth comes from fixtures/snapshots (which maps it built in state A and in state B, and which
findings state B must add) and from the main fixture's truth.json. Two cores "of one process" are two
deterministic runs of the same binary, one stopped in state A and one in state B.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
import zlib

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixturelib  # noqa: E402

GOMAP = os.path.join(fixturelib.REPO, "target", "release", "gomap")


def gomap(*args, check=True, timeout=120):
    r = subprocess.run([GOMAP, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("gomap %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr))
    return r


# ---- the two snapshots --------------------------------------------------------------------------

_snaps = {}


def snapshots(tag):
    """(core A, core B) of fixtures/snapshots built with `tag`'s toolchain; cached per session."""
    if tag not in _snaps:
        a = fixturelib.program_core("snapshots", tag, run_env={"GOMAP_SNAPSHOT": "A"})
        b = fixturelib.program_core("snapshots", tag, run_env={"GOMAP_SNAPSHOT": "B"})
        _snaps[tag] = (a, b)
    return _snaps[tag]


def by_name(diff):
    return {m["name"]: m for m in diff["maps"]}


def check_diff_against_truth(d, ta, tb):
    maps = by_name(d)
    for name in set(ta["maps"]) | set(tb["maps"]):
        a, b = ta["maps"][name], tb["maps"][name]
        assert name in maps, "%s missing from the diff: %s" % (name, sorted(maps))
        m = maps[name]
        for side, t in (("before", a), ("after", b)):
            if t["nil"]:
                assert m[side] is None, "%s %s should be null (nil map): %s" % (name, side, m)
            else:
                assert m[side] is not None and m[side]["len"] == t["len"], "%s %s: %s vs truth %s" % (name, side, m[side], t)
                assert m[side]["bytes"] > 0
        assert m["delta"]["len"] == (0 if b["nil"] else b["len"]) - (0 if a["nil"] else a["len"]), m
        for kind in b.get("expect_appeared", []):
            assert kind in m["findings"]["appeared"], "%s: %s should have appeared: %s" % (name, kind, m["findings"])
        assert "renamed_from" not in m, m
    # Grows in bytes; shrinks in len but keeps its memory (a Go map never shrinks).
    assert maps["main.grow"]["delta"]["bytes"] > 0
    s = maps["main.shrink"]
    assert s["after"]["bytes"] >= 0.9 * s["before"]["bytes"], s
    assert maps["main.stay"]["delta"]["len"] == 0
    deltas = [abs(m["delta"]["bytes"]) for m in d["maps"]]
    assert deltas == sorted(deltas, reverse=True), "not sorted by |Δbytes|: %s" % deltas


def test_diff_of_two_cores_matches_the_programs_truth(fixture_tag, tmp_path):
    a, b = snapshots(fixture_tag)
    ta, tb = a["truth_doc"], b["truth_doc"]
    assert ta["state"] == "A" and tb["state"] == "B"
    d = json.loads(gomap("diff", "--binary", a["binary"], "--core", a["core"], "--core", b["core"], "--json").stdout)
    check_diff_against_truth(d, ta, tb)
    # The same comparison from two saved `maps --json` snapshots.
    files = []
    for p, name in ((a, "a.json"), (b, "b.json")):
        path = tmp_path / name
        path.write_text(gomap("maps", "--binary", p["binary"], "--core", p["core"], "--json").stdout)
        files.append(str(path))
    d2 = json.loads(gomap("diff", *files, "--json").stdout)
    assert d2["maps"] == d["maps"]
    # The text table names every map and says which appeared and which went away.
    text = gomap("diff", "--binary", a["binary"], "--core", a["core"], "--core", b["core"]).stdout
    for name in ta["maps"]:
        assert name in text
    line = {l.split()[0]: l for l in text.splitlines() if l.startswith("main.")}
    assert "new map" in line["main.appear"] and "gone" in line["main.gone"]


def test_diff_rejects_bad_input(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    good = tmp_path / "good.json"
    good.write_text("[]")
    for args in (["diff", str(good)], ["diff", str(bad), str(good)], ["diff", str(good), str(tmp_path / "missing.json")]):
        r = gomap(*args, check=False)
        assert r.returncode == 2, (args, r)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("gomap: error:"), r.stderr
    row = fixturelib.matrix()[0]
    r = gomap("show", "--binary", row["binary"], "--core", row["core"], "--core", row["core"], "main.intMap", check=False)
    assert r.returncode == 2 and "only `diff`" in r.stderr, r.stderr
    # Two identical snapshots: nothing changed.
    d = json.loads(gomap("diff", "--binary", row["binary"], "--core", row["core"], "--core", row["core"], "--json").stdout)
    assert d["maps"] and all(m["delta"] == {"len": 0, "bytes": 0} for m in d["maps"])


# ---- top ------------------------------------------------------------------------------------------

def _proc_state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


@pytest.mark.parametrize("tag", ["go1.23", "go1.26"])
def test_top_json_lines_show_the_growth(tag):
    if fixturelib.selected_tags() is not None and tag not in fixturelib.selected_tags():
        pytest.skip("tag %s not selected by GOMAP_TAGS" % tag)
    prog = fixturelib.program("snapshots", tag)
    env = {"GOMAP_SNAPSHOT": "grow", "GOMAP_GROW_STEP": "3000", "GOMAP_GROW_MS": "250"}
    with fixturelib.LiveProgram(prog["binary"], env=env) as (pid, truth, _):
        g = truth["grow"]
        r = gomap("top", "--pid", str(pid), "--interval", "0.4", "--samples", "6", timeout=60)
        assert _proc_state(pid) in "RS", "the sampled process was stopped"
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(lines) == 6 and [l["sample"] for l in lines] == list(range(1, 7))
    lens = []
    for l in lines:
        m = {x["name"]: x for x in l["maps"]}[g["map"]]
        lens.append(m["len"])
        if not m["changed_during_read"]:
            # A consistent read sees whole steps: the program adds `step` entries at a time...
            assert m["len"] % g["step"] == 0 or l["flagged"], (m, l["flagged"])
        assert l["flagged"] == (any(x["changed_during_read"] for x in l["maps"]) or bool(l["failed"]))
    # ...every period_ms, so 6 samples 0.4 s apart see it grow by several steps.
    assert lens[0] >= g["start"] and lens[-1] >= lens[0] + 2 * g["step"], lens
    last = {x["name"]: x for x in lines[-1]["maps"]}[g["map"]]
    assert last["growth_bytes"] > 0 and last["growth_len"] == lens[-1] - lens[0]
    assert lines[1]["maps"][0]["delta_bytes"] is not None and lines[0]["maps"][0]["delta_bytes"] is None


class _TmuxTop:
    """`gomap top ARGS` in a detached tmux session; its exit status lands in a file."""

    def __init__(self, tmux, name, args, exit_file):
        # A private server socket: nothing shared with a user's tmux or another test run.
        self.tmux, self.name, self.exit_file = [tmux, "-L", "gomap-views-%d" % os.getpid()], name, exit_file
        cmd = "%s top %s; echo $? > %s" % (GOMAP, args, exit_file)
        for attempt in range(3):
            # A server whose last session just ended may still be shutting down: start again.
            r = subprocess.run(self.tmux + ["new-session", "-d", "-s", name, "-x", "180", "-y", "40", cmd],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
            if r.returncode == 0:
                break
            time.sleep(0.3)
        assert r.returncode == 0, "tmux new-session failed: %s" % r.stdout

    def screens(self, *needles, want=1):
        """Captures of the pane showing every needle, up to `want` of them (10 s at most)."""
        got, cap = [], ""
        for _ in range(40):
            time.sleep(0.25)
            cap = subprocess.run(self.tmux + ["capture-pane", "-p", "-t", self.name], stdout=subprocess.PIPE,
                                 universal_newlines=True).stdout
            if all(n in cap for n in needles):
                got.append(cap)
            if len(got) >= want:
                break
        assert got, "top never showed %s: %r" % (needles, cap)
        return got

    def quit_with(self, key):
        subprocess.run(self.tmux + ["send-keys", "-t", self.name, key], check=True)
        for _ in range(40):
            if os.path.exists(self.exit_file):
                break
            time.sleep(0.1)
        assert os.path.exists(self.exit_file), "top did not quit on %s" % key
        return open(self.exit_file).read().strip()

    def kill(self):
        subprocess.run(self.tmux + ["kill-session", "-t", self.name], stderr=subprocess.DEVNULL)


def test_top_refreshes_in_place_on_a_terminal():
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.fail("tmux is needed for the terminal test of top (apt-get install tmux)")
    tag = (fixturelib.selected_tags() or ["go1.26"])[0]
    prog = fixturelib.program("snapshots", tag)
    env = {"GOMAP_SNAPSHOT": "grow", "GOMAP_GROW_STEP": "1000", "GOMAP_GROW_MS": "200"}
    with fixturelib.LiveProgram(prog["binary"], env=env) as (pid, truth, paths):
        sessions = []
        try:
            top = _TmuxTop(tmux, "gomap-top-%d" % os.getpid(), "--pid %d --interval 0.3" % pid,
                           os.path.join(paths["dir"], "q.exit"))
            sessions.append(top)
            screens = top.screens("main.live", want=4)
            assert len(screens) >= 2, screens
            s = screens[-1]
            assert "gomap top: pid %d" % pid in s and "[q] quit" in s
            # Refreshed in place: one header on the screen, not a scrolling log.
            assert s.count("gomap top:") == 1, s
            assert top.quit_with("q") == "0"
            assert _proc_state(pid) in "RS"
            # Ctrl-C quits as cleanly, sorted by growth this time.
            top = _TmuxTop(tmux, "gomap-top-c-%d" % os.getpid(), "--pid %d --interval 0.3 --by growth" % pid,
                           os.path.join(paths["dir"], "c.exit"))
            sessions.append(top)
            top.screens("sorted by growth", "main.live")
            assert top.quit_with("C-c") == "0"
            assert _proc_state(pid) in "RS"
        finally:
            for t in sessions:
                t.kill()


def test_top_needs_a_live_process():
    row = fixturelib.matrix()[0]
    r = gomap("top", "--binary", row["binary"], "--core", row["core"], check=False)
    assert r.returncode == 2 and "--pid" in r.stderr and r.stderr.count("\n") == 1, r.stderr


# ---- pictures -------------------------------------------------------------------------------------

def svg_text(path):
    root = ET.parse(path).getroot()  # well-formed XML or this raises
    return " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))


def test_buckets_picture(fixture, truth, tmp_path):
    names = ["main.intMap", "main.deletedMap", "main.growingMap" if fixture["impl"] == "classic" else "main.tombMap"]
    for name in names:
        out = tmp_path / (name + ".svg")
        r = gomap("buckets", "--binary", fixture["binary"], "--core", fixture["core"], name, "--picture", str(out))
        assert str(out) in r.stdout
        text = svg_text(out)
        tm = truth["maps"][name]
        assert name in text and ("len %d " % tm["len"]) in text, text[:300]
        assert "live" in text and ("emptyRest" in text if fixture["impl"] == "classic" else "tombstone" in text)
        for kind in fixturelib.expected_findings(tm, fixture["impl"]):
            assert kind in text, "%s: finding %s not in the picture" % (name, kind)
        facts = tm.get("facts") or {}
        if fixture["impl"] == "classic" and facts:
            old = facts.get("old_buckets", 0)
            live = facts["live_slots"] + facts.get("old_live_slots", 0)
            slots = 8 * (facts["buckets"] + facts["overflow_buckets"] + old + facts.get("old_overflow_buckets", 0))
            assert "%d slots, %d live" % (slots, live) in text, (name, facts, text[:400])
            if old:
                assert "current array: %d buckets (B = %d), %d overflow buckets" % (facts["buckets"], facts["B"], facts["overflow_buckets"]) in text
                assert "old array: %d of %d buckets evacuated (nevacuate %d)" % (facts["old_evacuated"], old, facts["nevacuate"]) in text
            else:
                assert "bucket array: %d buckets (B = %d), %d overflow buckets" % (facts["buckets"], facts["B"], facts["overflow_buckets"]) in text
                # The memory bar keeps the array and its overflow buckets apart.
                assert "of its %d slots hold a live entry" % (8 * facts["buckets"]) in text
                if facts["overflow_buckets"]:
                    assert "of its %d slots hold a live entry" % (8 * facts["overflow_buckets"]) in text
        elif facts:
            assert "%d slots, %d live" % (facts["slots"], facts["full"]) in text, (name, facts, text[:400])
            if facts["tables"]:
                assert "%d tables, %d groups" % (facts["tables"], facts["groups"]) in text
    if fixture["impl"] == "swiss":
        # Few groups: drawn slot by slot, each table labelled with its own numbers and tombstones.
        facts = truth["maps"]["main.churnMap"]["facts"]
        out = tmp_path / "churn.svg"
        gomap("buckets", "--binary", fixture["binary"], "--core", fixture["core"], "main.churnMap", "--picture", str(out))
        text = svg_text(out)
        if facts["tables"] == 1:
            assert "table 0: used %d of %d slots, growthLeft %d, %d tombstones" % (
                facts["used"], facts["capacity"], facts["growth_left"], facts["deleted"]) in text, text
    nil = tmp_path / "nil.svg"
    gomap("buckets", "--binary", fixture["binary"], "--core", fixture["core"], "main.nilMap", "--picture", str(nil))
    assert "nil map: no memory allocated" in svg_text(nil)
    # A 1M-entry map stays a small, scaled picture.
    big = tmp_path / "big.svg"
    gomap("buckets", "--binary", fixture["binary"], "--core", fixture["core"], "main.bigMap", "--picture", str(big))
    assert os.path.getsize(big) < 150_000
    assert "scaled: each cell is a run of" in svg_text(big)
    r = gomap("buckets", "--binary", fixture["binary"], "--core", fixture["core"], "main.intMap", "--picture",
              str(tmp_path / "x.png"), check=False)
    assert r.returncode == 2 and "SVG" in r.stderr


# ---- the report in a real browser -----------------------------------------------------------------

def chromium():
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "chromium"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=900)
        p = shutil.which("chromium")
        if p:
            return p
    pytest.fail("Chromium is needed for the report test (apt-get install chromium)")


def png_colours(path):
    """Distinct RGB(A) colours of an 8-bit PNG (non-interlaced), decoded with zlib and the PNG filters."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype = hdr[0], hdr[1], hdr[2], hdr[3]
    assert depth == 8 and ctype in (2, 6), hdr
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    colours = set()
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if y % 4 == 0:  # every 4th row is plenty to count colours
            colours.update(bytes(line[i:i + bpp]) for i in range(0, stride, bpp * 2))
        prev = line
    return colours


@pytest.mark.parametrize("which", ["classic", "swiss"])
def test_report_in_headless_chromium(which, tmp_path):
    tags = [t for t in fixturelib.all_tags(which)]
    if not tags:
        pytest.skip("no %s tag selected" % which)
    row = fixturelib.matrix([tags[0]])[0]
    out = tmp_path / "report.html"
    r = gomap("report", "--binary", row["binary"], "--core", row["core"], "-o", str(out))
    assert "wrote" in r.stdout and r.stderr == ""  # no progress bar when stderr is not a terminal
    size = os.path.getsize(out)
    assert size < 1_500_000, "report of a core with a 1M-entry map is %d bytes" % size
    html = out.read_text()
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html, "report fetches"
    names = [m["name"] for m in json.loads(gomap("maps", "--binary", row["binary"], "--core", row["core"], "--json").stdout)]
    browser = chromium()
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir=%s" % (tmp_path / "profile")]
    dom = subprocess.run(common + ["--enable-logging=stderr", "--v=0", "--dump-dom", out.as_uri()], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert "gomap-report-ready %d maps" % len(names) in dom.stdout, "the report's script did not run: %s" % dom.stderr[-2000:]
    # The page logs nothing: any console line (an error, an uncaught exception) is a failure.
    errors = [l for l in dom.stderr.splitlines() if "CONSOLE" in l or "Uncaught" in l]
    assert not errors, errors
    for n in names:
        assert n in dom.stdout, "%s not named in the report" % n
    if which == "classic":
        # Findings come with their numbers: the growing map's evacuation, as the fixture measured it.
        facts = fixturelib.load_truth(row["truth"])["maps"]["main.growingMap"]["facts"]
        assert "evacuated=%d old_buckets=%d nevacuate=%d" % (facts["old_evacuated"], facts["old_buckets"], facts["nevacuate"]) in dom.stdout
    shot = tmp_path / "shot.png"
    subprocess.run(common + ["--screenshot=%s" % shot, "--window-size=1100,2600", out.as_uri()], stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, timeout=120)
    colours = png_colours(str(shot))
    # Text, charts and slot colours: a blank or unstyled page has a handful.
    assert len(colours) > 40, len(colours)
    for c in ("2f9e44", "4c6ef5"):  # live slots in the pictures, the bars of the chart
        assert bytes.fromhex(c) in {x[:3] for x in colours}, "colour #%s not drawn" % c


# ---- progress -------------------------------------------------------------------------------------

def test_progress_bar_only_on_a_terminal(tmp_path):
    """`show --limit 0` of a 1M-entry map draws a bar on stderr when stderr is a terminal (a pty here),
    and nothing when it is a pipe; the entries on stdout are the same either way."""
    import pty  # noqa: F401  (os.openpty needs the pty support it documents)
    row = fixturelib.matrix()[0]
    argv = [GOMAP, "show", "--binary", row["binary"], "--core", row["core"], "main.bigMap", "--limit", "0"]
    master, slave = os.openpty()
    out_tty = tmp_path / "tty.txt"
    with open(out_tty, "w") as f:
        p = subprocess.Popen(argv, stdout=f, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert p.wait(timeout=120) == 0
    assert b"entries [" in seen and b"/1000000" in seen, seen[:400]
    piped = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert piped.returncode == 0 and piped.stderr == b""
    assert piped.stdout == out_tty.read_bytes()


def test_top_ends_when_the_process_exits_and_report_reads_a_live_process(tmp_path):
    tag = (fixturelib.selected_tags() or ["go1.26"])[0]
    prog = fixturelib.program("snapshots", tag)
    with fixturelib.LiveProgram(prog["binary"], env={"GOMAP_SNAPSHOT": "B"}) as (pid, truth, _):
        out = tmp_path / "live.html"
        r = gomap("report", "--pid", str(pid), "-o", str(out))
        html = out.read_text()
        assert "pid %d" % pid in html
        for name, tm in truth["maps"].items():
            assert (name in html) != tm["nil"], name
        top = subprocess.Popen([GOMAP, "top", "--pid", str(pid), "--interval", "0.2"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, universal_newlines=True)
        try:
            first = json.loads(top.stdout.readline())
            assert {m["name"]: m["len"] for m in first["maps"]}["main.grow"] == truth["maps"]["main.grow"]["len"]
            os.kill(pid, 9)
            rest, err = top.communicate(timeout=20)
        finally:
            if top.poll() is None:
                top.kill()
        assert top.returncode == 0, err
        assert json.loads(rest.splitlines()[-1]) == {"exited": True, "pid": pid}
        assert "exited" in err and "panicked" not in err


def test_top_flags_a_map_that_changes_under_the_read():
    tag = (fixturelib.selected_tags() or ["go1.26"])[0]
    prog = fixturelib.program("snapshots", tag)
    with fixturelib.LiveProgram(prog["binary"], env={"GOMAP_SNAPSHOT": "churn"}) as (pid, truth, _):
        r = gomap("top", "--pid", str(pid), "--interval", "0.05", "--samples", "30", timeout=120)
        assert _proc_state(pid) in "RS", "the sampled process was stopped"
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(lines) == 30 and r.stderr == ""
    flagged = 0
    for l in lines:
        m = {x["name"]: x for x in l["maps"]}.get(truth["churn"]["map"])
        assert l["flagged"] == (any(x["changed_during_read"] for x in l["maps"]) or bool(l["failed"]))
        if m is not None and not m["changed_during_read"]:
            assert 20000 <= m["len"] <= 70000, m  # a consistent read sees one of the program's states
        flagged += l["flagged"]
    # The writer never pauses: some samples catch the map mid-change, and say so.
    assert flagged >= 1, "30 samples of a map written without pause, none flagged"
