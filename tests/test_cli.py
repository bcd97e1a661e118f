"""The gomap CLI against the fixture matrix: every map of every toolchain, from the kernel core and
from the live process, compared with the ground truth the fixture program wrote about itself."""

import json
import os
import shutil
import subprocess

import pytest

import fixturelib as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOMAP = os.environ.get("GOMAP_BIN", os.path.join(REPO, "target", "release", "gomap"))


def gomap(*args, timeout=60, env=None):
    p = subprocess.run([GOMAP] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=timeout, env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout, p.stderr


def show_json(target, expr, *extra):
    limit = [] if "--limit" in extra else ["--limit", "0"]
    code, out, err = gomap("show", *target, expr, "--json", *limit, *extra)
    assert code == 0, "gomap show %s failed: %s" % (expr, err)
    assert err == ""
    return json.loads(out)


def core_target(fixture):
    return ["--binary", fixture["binary"], "--core", fixture["core"]]


def assert_map_matches(got, tm, expr, impl):
    F.assert_map_matches_truth(got, tm, expr, impl)
    kinds = {f["kind"] for f in got["findings"]}
    for k in F.expected_findings(tm, impl):
        assert k in kinds, "%s: expected finding %r, got %s" % (expr, k, sorted(kinds))
    # A healthy read of a consistent core never claims corruption.
    assert "corrupt" not in kinds, [f["message"] for f in got["findings"]]


def test_core_every_map_matches_truth(fixture, truth):
    assert truth["maps"], "the fixture wrote no maps"
    for expr, tm in truth["maps"].items():
        got = show_json(core_target(fixture), expr)
        assert got["address"] == tm["address"], expr
        assert_map_matches(got, tm, expr, fixture["impl"])


def test_worker_threads_print_the_same_bytes(fixture, truth, tmp_path):
    """`show --json` of a core renders big maps on worker threads (main.bigMap, 1M entries, takes that
    path by default in test_core_one_million_entries). GOMAP_THREADS=2 forces it on every map, in
    batches of 61 entries: the output must be byte-identical to one thread's and match the truth, also
    with --limit, --max-string and --output FILE."""
    target = core_target(fixture)
    prefixes = 0
    for expr, tm in truth["maps"].items():
        code, one, err = gomap("show", *target, expr, "--json", "--limit", "0", env={"GOMAP_THREADS": "1"})
        assert code == 0, err
        code, two, err = gomap("show", *target, expr, "--json", "--limit", "0", env={"GOMAP_THREADS": "2"})
        assert code == 0 and err == "", err
        assert two == one, expr
        assert_map_matches(json.loads(two), tm, expr, fixture["impl"])
        # Gathering each batch's strings first (the other way of the worker threads) prints the same.
        assert gomap("show", *target, expr, "--json", "--limit", "0", env={"GOMAP_THREADS": "2", "GOMAP_GATHER": "1"})[1] == one, expr
        # Cut strings leave the flat rendering of the worker threads for the general one, entry by entry.
        cut = [gomap("show", *target, expr, "--json", "--limit", "0", "--max-string", "4", env={"GOMAP_THREADS": n})[1] for n in ("1", "2")]
        assert cut[0] == cut[1], expr
        prefixes += cut[1].count('"prefix":')
    assert prefixes > 0
    cut = [gomap("show", *target, "main.growingMap", "--json", "--limit", "100", env={"GOMAP_THREADS": n})[1] for n in ("1", "2")]
    assert cut[0] == cut[1] and json.loads(cut[1])["truncated"] is True
    out = tmp_path / "growing.json"
    code, printed, err = gomap("show", *target, "main.growingMap", "--json", "--limit", "0", "--output", out, env={"GOMAP_THREADS": "2"})
    assert code == 0 and printed == "" and err == "", err
    assert out.read_text() == gomap("show", *target, "main.growingMap", "--json", "--limit", "0")[1]


def test_output_never_replaces_what_gomap_reads(bad_inputs):
    row = bad_inputs["row"]
    d0, b0 = F.sha256_file(row["core"]), F.sha256_file(row["binary"])
    for victim in (row["core"], row["binary"]):
        code, out, err = gomap("show", "--binary", row["binary"], "--core", row["core"], "main.bigMap", "--output", victim)
        assert code != 0 and "gomap is reading" in err and len(err.strip().splitlines()) == 1, err
    assert F.sha256_file(row["core"]) == d0 and F.sha256_file(row["binary"]) == b0


def test_core_one_million_entries(fixture):
    truth = F.load_truth(fixture["truth"], big=True)
    tm = truth["maps"]["main.bigMap"]
    got = show_json(core_target(fixture), "main.bigMap")
    assert tm["len"] >= 1000000
    assert_map_matches(got, tm, "main.bigMap", fixture["impl"])


def test_core_address_with_type(fixture, truth):
    for expr in ("main.structMap", "main.ifaceMap", "main.growingMap"):
        tm = truth["maps"][expr]
        got = show_json(core_target(fixture), tm["address"], "--type", tm["type"])
        assert_map_matches(got, tm, expr, fixture["impl"])


def test_classic_stats_match_what_the_fixture_measured(classic_tag, fixture, truth):
    """Bucket-level facts the fixture read from its own hmap (via unsafe) equal gomap's stats."""
    checked = 0
    for expr in ("main.growingMap", "main.sameSizeMap", "main.tombMap", "main.churnMap", "main.deletedMap"):
        facts = truth["maps"][expr]["facts"]
        st = show_json(core_target(fixture), expr, "--limit", "1")["stats"]
        assert st["B"] == facts["B"], expr
        assert st["flags"] == facts["flags"], expr
        assert st["growing"] == facts["oldbuckets"], expr
        if "overflow_buckets" in facts:
            assert st["overflow_buckets"] == facts["overflow_buckets"], expr
            assert st["longest_chain"] == facts["max_chain"], expr
        if "live_slots" in facts:
            assert st["live"] == facts["live_slots"] + facts.get("old_live_slots", 0), expr
        if "empty_one" in facts and not facts["oldbuckets"]:
            assert st["deleted"] == facts["empty_one"], expr
        if facts["oldbuckets"]:
            assert st["old_buckets"] == facts["old_buckets"], expr
            assert st["evacuated_old"] == facts["old_evacuated"], expr
            assert st["nevacuate"] == facts["nevacuate"], expr
            assert st["same_size_grow"] == facts["sameSizeGrow"], expr
        checked += 1
    assert checked == 5


def test_growing_map_reports_growth_and_old_array(classic_tag, fixture, truth):
    got = show_json(core_target(fixture), "main.growingMap", "--limit", "1")
    growing = [f for f in got["findings"] if f["kind"] == "growing"]
    assert len(growing) == 1
    n = growing[0]["numbers"]
    facts = truth["maps"]["main.growingMap"]["facts"]
    assert n["old_buckets"] == facts["old_buckets"]
    assert n["evacuated"] == facts["old_evacuated"]
    assert growing[0]["bytes"] > 0


def test_swiss_tombstones_and_oversized(swiss_tag, fixture):
    tomb = show_json(core_target(fixture), "main.tombMap", "--limit", "1")
    assert tomb["stats"]["deleted"] > 0
    deleted = show_json(core_target(fixture), "main.deletedMap", "--limit", "1")
    over = [f for f in deleted["findings"] if f["kind"] == "oversized"]
    assert over and over[0]["numbers"]["fill"] < 0.3 and over[0]["bytes"] >= 1 << 20


def test_check_exit_status(fixture):
    t = core_target(fixture)
    code, out, err = gomap("check", *t, "main.intMap", "main.litMap")
    assert code == 0, out + err
    code, out, err = gomap("check", *t, "main.deletedMap")
    assert code == 1 and "oversized" in out, out + err
    code, out, err = gomap("check", *t, "--json")
    assert code == 1
    names = {m["name"] for m in json.loads(out)}
    assert {"main.deletedMap", "main.intMap", "main.srv.sessions", "main.cfg.limits"} <= names


def test_maps_census_lists_every_fixture_map(fixture, truth):
    code, out, err = gomap("maps", *core_target(fixture), "--json")
    assert code == 0, err
    rows = {m["name"]: m for m in json.loads(out)}
    for expr, tm in truth["maps"].items():
        if tm["address"] == "0x0":
            assert expr not in rows  # nil maps hold nothing
            continue
        assert expr in rows, "%s missing from the census" % expr
        assert rows[expr]["len"] == tm["len"]
    code, out, err = gomap("maps", *core_target(fixture), "--sort", "waste")
    assert code == 0 and out.splitlines()[1].startswith("main.deletedMap"), out[:500]


def test_layout_reports_the_build(fixture):
    code, out, err = gomap("layout", *core_target(fixture), "--json")
    assert code == 0, err
    lay = json.loads(out)
    assert lay["go_version"] == fixture["go_version"]
    assert lay["impl"] == fixture["impl"]
    split = [m["split_groups"] for m in lay["map_types"] if m["impl"] == "swiss"]
    if fixture["tag"].endswith("mapsplitgroup"):
        assert split and all(split)
    else:
        assert not any(split)


def test_buckets_dump_agrees_with_len(fixture, truth):
    for expr in ("main.strMap", "main.growingMap", "main.tombMap"):
        code, out, err = gomap("buckets", *core_target(fixture), expr, "--json")
        assert code == 0, err
        doc = json.loads(out)
        if fixture["impl"] == "classic":
            live = sum(b["states"].count("L") for b in doc["buckets"])
            deleted = sum(b["states"].count("d") for b in doc["buckets"])
        else:
            groups = [g for t in doc["tables"] for g in (t.get("groups") or [t])]
            live = sum(g["states"].count("F") for g in groups)
            deleted = sum(g["states"].count("d") for g in groups)
        assert live == truth["maps"][expr]["len"], expr
        assert deleted == doc["stats"]["deleted"], expr
        code, text, err = gomap("buckets", *core_target(fixture), expr)
        assert code == 0 and "legend:" in text


def test_text_show(fixture):
    code, out, err = gomap("show", *core_target(fixture), "main.litMap")
    assert code == 0, err
    assert "map[string]string" in out and '"alpha"' in out.lower() or "entries (5 shown)" in out


@pytest.mark.parametrize("expr", ["main.intMap", "main.ifaceMap", "main.srv.sessions", "main.floatMap", "main.bigKeyMap"])
def test_live_process_matches_its_truth(fixture, expr):
    with F.LiveFixture(fixture) as (pid, truth, paths):
        tm = truth["maps"][expr]
        got = show_json(["--pid", pid], expr)  # --binary defaults to /proc/PID/exe
        assert_map_matches(got, tm, expr, fixture["impl"])
        got = show_json(["--binary", fixture["binary"], "--pid", pid], expr)
        assert_map_matches(got, tm, expr, fixture["impl"])


def test_live_process_every_map(swiss_tag, fixture):
    with F.LiveFixture(fixture) as (pid, truth, paths):
        for expr, tm in truth["maps"].items():
            assert_map_matches(show_json(["--pid", pid], expr), tm, expr, "swiss")


def test_live_process_every_map_classic(classic_tag, fixture):
    with F.LiveFixture(fixture) as (pid, truth, paths):
        for expr, tm in truth["maps"].items():
            assert_map_matches(show_json(["--pid", pid], expr), tm, expr, "classic")


# ---- bad input: one line, exit 2, no panic ----------------------------------------------------------

def one_error_line(code, out, err):
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gomap: error: "), err
    assert "panicked" not in err and "RUST_BACKTRACE" not in err
    return lines[0]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, fixture_matrix):
    d = tmp_path_factory.mktemp("bad")
    row = fixture_matrix.get("go1.26") or next(iter(fixture_matrix.values()))
    other = next(r for r in fixture_matrix.values() if r["tag"] != row["tag"])
    empty = d / "empty"
    empty.write_bytes(b"")
    truncated = d / "truncated-core"
    with open(row["core"], "rb") as f:
        truncated.write_bytes(f.read(2 << 20))
    stripped = d / "stripped"
    shutil.copy(row["binary"], stripped)
    subprocess.run(["strip", str(stripped)], check=True)
    return {"row": row, "other": other, "empty": str(empty), "truncated": str(truncated), "stripped": str(stripped)}


def test_errors_are_one_clear_line(bad_inputs):
    row, other = bad_inputs["row"], bad_inputs["other"]
    b, c = row["binary"], row["core"]
    cases = [
        (["show", "--binary", b, "--core", c, "main.nope"], "no package-level variable"),
        (["show", "--binary", b, "--core", c, "main.cfg"], "not a map"),
        (["show", "--binary", b, "--core", c, "main.srv.nofield"], "no field"),
        (["show", "--binary", b, "--core", c, "0x10", "--type", "map[string]int"], "unreadable"),
        (["show", "--binary", b, "--core", c, "0x10"], "--type"),
        (["show", "--binary", b, "--core", c, "0x10", "--type", "map[nope]x"], "no type"),
        (["show", "--binary", b, "--core", other["core"], "main.intMap"], "does not belong"),
        (["show", "--binary", b, "--core", bad_inputs["truncated"], "main.intMap"], "truncated"),
        (["show", "--binary", b, "--core", bad_inputs["empty"], "main.intMap"], "not an ELF core"),
        (["show", "--binary", bad_inputs["stripped"], "--core", c, "main.intMap"], "DWARF"),
        (["show", "--binary", "/bin/true", "--core", c, "main.intMap"], "not a Go program"),
        (["show", "--binary", bad_inputs["empty"], "--core", c, "main.intMap"], "64-bit ELF"),
        (["show", "--binary", "/nonexistent", "--core", c, "main.intMap"], "No such file"),
        (["show", "--binary", c, "--core", c, "main.intMap"], "core dump"),
        (["show", "--binary", b, "--core", b, "main.intMap"], "not a core dump"),
        (["show", "--binary", b, "--pid", "999999999", "main.intMap"], "no process"),
        (["show", "--binary", b, "main.intMap"], "--core"),
        (["buckets", "--binary", b, "--core", c, "main.intMap", "--range", "9:2"], "--range"),
    ]
    for args, needle in cases:
        line = one_error_line(*gomap(*args))
        assert needle.lower() in line.lower(), (args, line)


def test_usage_errors_exit_2(bad_inputs):
    code, out, err = gomap("show")
    assert code == 2 and "EXPR" in err
    code, out, err = gomap("frobnicate")
    assert code == 2
    code, out, err = gomap("--help")
    assert code == 0 and "show" in out and "buckets" in out


def test_core_file_is_never_written(bad_inputs):
    row = bad_inputs["row"]
    before = os.stat(row["core"])
    d0, b0 = F.sha256_file(row["core"]), F.sha256_file(row["binary"])
    for cmd in (["show", "main.bigMap", "--json", "--limit", "0"], ["buckets", "main.tombMap", "--json"], ["check"], ["maps"], ["layout"]):
        code, out, err = gomap(cmd[0], "--binary", row["binary"], "--core", row["core"], *cmd[1:])
        assert code in (0, 1), err
    assert F.sha256_file(row["core"]) == d0 and F.sha256_file(row["binary"]) == b0
    assert os.stat(row["core"]).st_mtime == before.st_mtime
