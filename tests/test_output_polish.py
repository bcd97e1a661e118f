"""The CLI's text outputs as a reader sees them, on every toolchain of the matrix: `layout` from the
executable alone as a table, `check`'s summary line and `--quiet`, `maps`' worst column (the most
severe finding), one spelling of a nil map, and help for every option. Counts are checked against
the same command's JSON, and the nil map against the fixture's truth."""

import json
import os
import re
import subprocess

import fixturelib as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOMAP = os.environ.get("GOMAP_BIN", os.path.join(REPO, "target", "release", "gomap"))
SEVERITY = {"info": 0, "warning": 1, "error": 2}


def run(*args, code=(0, 1)):
    p = subprocess.run([GOMAP] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=120)
    assert p.returncode in code and not p.stderr, (args, p.returncode, p.stderr)
    return p.stdout


def test_layout_from_the_binary_alone_is_a_table(fixture):
    text = run("layout", "--binary", fixture["binary"])
    doc = json.loads(run("layout", "--binary", fixture["binary"], "--json"))
    assert doc["impl"] == fixture["impl"] and "no core or process" in doc["memory"]
    assert doc["map_types"] and not doc["errors"], doc["errors"]
    lines = text.splitlines()
    assert not any(l.lstrip().startswith('{"') for l in lines), text  # no raw JSON lines
    head = next(i for i, l in enumerate(lines) if re.match(r"^  TYPE +KEY +ELEM +(BUCKET|GROUP) +SLOTS", l))
    rows = lines[head + 1:]
    assert len(rows) == len(doc["map_types"]), text
    for r, m in zip(rows, doc["map_types"]):
        assert r.strip().startswith(m["type"] + " "), (r, m["type"])
        cells = r.strip()[len(m["type"]):].split()
        assert cells[:2] == [str(m["key_size"]), str(m["elem_size"])], (r, m)
    header = "  header  %s<K,V> (%d B): " % (doc["map_types"][0]["header"].split("<")[0], doc["map_types"][0]["header_size"])
    assert any(l.startswith(header) for l in lines), text
    # The same table with a core: only the memory line differs (and, for PIE, the runtime address
    # of the type descriptors, which the executable alone gives at link time).
    with_core = run("layout", "--binary", fixture["binary"], "--core", fixture["core"])
    differ = [(a, b) for a, b in zip(text.splitlines(), with_core.splitlines()) if a != b]
    assert differ[0][0].startswith("memory ") and "core " in differ[0][1], differ
    assert all(a.startswith("types base ") for a, _ in differ[1:]), differ
    assert len(text.splitlines()) == len(with_core.splitlines())


def test_check_summary_quiet_and_maps_worst(fixture, truth):
    target = ["--binary", fixture["binary"], "--core", fixture["core"]]
    docs = json.loads(run("check", *target, "--json"))
    text = run("check", *target)
    sev = [f["severity"] for d in docs for f in d["findings"]]
    plural = lambda n, w: "%d %s%s" % (n, w, "" if n == 1 else "s")  # noqa: E731
    summary = "%s: %s, %s" % (plural(len(docs), "map"), plural(sev.count("warning"), "warning"), plural(sev.count("error"), "error"))
    assert text.splitlines()[-1] == summary, text[-500:]
    quiet = run("check", *target, "--quiet")
    named = [l.split(" (")[0] for l in quiet.splitlines() if not l.startswith(" ") and "(" in l]
    assert named == [d["name"] for d in docs if d["findings"]], quiet
    assert quiet.splitlines()[-1] == summary
    assert [d["name"] for d in json.loads(run("check", *target, "--json", "--quiet"))] == named
    # maps: `worst` is the most severe finding (the first of them on ties), in JSON and text alike.
    rows = json.loads(run("maps", *target, "--json"))
    by_name = {d["name"]: d for d in docs}
    table = run("maps", *target)
    for row in rows:
        fs = by_name[row["name"]]["findings"] if row["name"] in by_name else row["findings"]
        if not fs:
            assert row["worst"] is None
            continue
        top = max(SEVERITY[f["severity"]] for f in fs)
        want = next(f for f in fs if SEVERITY[f["severity"]] == top)
        assert row["worst"] == want["kind"], (row["name"], fs)
        line = next(l for l in table.splitlines() if l.split()[:1] == [row["name"]])
        assert line.endswith("  %s %s" % (want["severity"], want["kind"])), line
    # One spelling of a nil map in text: nil.
    nil = truth["maps"]["main.nilMap"]
    assert nil["address"] == "0x0"
    assert "address 0x0 (nil)  len 0" in run("show", *target, "main.nilMap")
    nested = run("show", *target, "main.nestedMap")
    assert re.search(r'^  "nilInner": nil$', nested, flags=re.M), nested


def test_every_option_has_help():
    for sub in ("show", "buckets", "check", "maps", "layout"):
        text = run(sub, "--help", code=(0,))
        opts = re.findall(r"^\s+(?:-\w, )?(--[\w-]+)(?: <[^>]+>)?(.*)$", text, flags=re.M)
        assert opts, text
        # clap puts the help on the option's line or, with long help, on the next ones
        blocks = re.split(r"\n(?=\s+(?:-\w, )?--[\w-]+)", text.split("Options:", 1)[1])
        for b in blocks:
            first, _, rest = b.strip().partition("\n")
            name = re.match(r"(?:-\w, )?(--[\w-]+)", first)
            if not name:
                continue
            described = re.sub(r"^(?:-\w, )?--[\w-]+(?: <[^>]+>)?", "", first).strip() or rest.strip()
            assert described, "%s %s has no help:\n%s" % (sub, name.group(1), text)
