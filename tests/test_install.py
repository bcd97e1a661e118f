"""gomap as users install it: the pip package built from this tree (maturin, once per session),
installed into fresh environments outside the clone (a virtual environment, `pip install --user`);
its `gomap` command against the CLI binary and the fixtures' truth; `gomap init gdb|lldb` loading
the installed front ends into real gdb and LLDB from a working directory that is not the clone;
`--write` into a temporary HOME; and what `pip uninstall` leaves behind.

The wheel is built into target/wheel (its own cargo target directory: maturin builds the library
with other flags than `cargo build`, and sharing target/release would rebuild it on every switch).
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

import fixturelib as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.environ.get("GOMAP_BIN", os.path.join(REPO, "target", "release", "gomap"))
GDB = shutil.which("gdb")
LLDB = F.LLDB
FRONT_ENDS = ("gomap.py", "gomap_common.py", "gomap_lldb.py")


def run(argv, env=None, cwd=None, timeout=300):
    p = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                       universal_newlines=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def env_with(**changes):
    """The test's environment with changes; None removes a variable."""
    env = dict(os.environ)
    for k, v in changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def system_python():
    """python3 as a user's shell finds it (pip install --user; the lone CLI asks it for the package)."""
    python = shutil.which("python3")
    assert python, "python3 is not on PATH"
    return python


def maturin():
    for cand in (os.path.join(os.path.dirname(sys.executable), "maturin"), shutil.which("maturin")):
        if cand and os.access(cand, os.X_OK):
            return cand
    pytest.fail("maturin is not installed (scripts/setup.sh installs it next to pytest)", pytrace=False)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    code, so, se = run([maturin(), "build", "--release", "--target-dir", os.path.join(REPO, "target", "wheel"),
                        "-o", out], cwd=REPO, timeout=1800)
    assert code == 0, "maturin build failed:\n%s" % (so + se)[-4000:]
    wheels = glob.glob(os.path.join(str(out), "gomap-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def make_venv(path, wheel):
    """A fresh virtual environment with the wheel installed by pip (this pip, told which Python:
    a venv without its own copy of pip is made in a fraction of the time)."""
    code, so, se = run([sys.executable, "-m", "venv", "--without-pip", path])
    assert code == 0, se
    code, so, se = run([sys.executable, "-m", "pip", "--python", os.path.join(path, "bin", "python"), "install",
                        "--no-index", "--no-cache-dir", "-q", wheel])
    assert code == 0, so + se
    return os.path.join(path, "bin")


def user_env(base):
    """An environment whose `pip install --user` and user site are at `base`."""
    return env_with(PYTHONUSERBASE=base, PIP_USER=None, VIRTUAL_ENV=None, PYTHONPATH=None)


def user_install(wheel, base):
    """`pip install --user` with the user base at `base`; returns the environment that sees it."""
    env = user_env(base)
    code, out, err = run([system_python(), "-m", "pip", "install", "--user", "--break-system-packages", "--no-index",
                          "--no-cache-dir", "-q", "--no-warn-script-location", wheel], env=env)
    assert code == 0, out + err
    return env


@pytest.fixture(scope="session")
def venv_bin(wheel, tmp_path_factory):
    return make_venv(str(tmp_path_factory.mktemp("installed") / "venv"), wheel)


@pytest.fixture
def elsewhere(tmp_path):
    """A working directory that is not the clone."""
    d = tmp_path / "cwd"
    d.mkdir()
    return str(d)


@pytest.fixture(scope="session")
def any_fixture(fixture_matrix):
    return fixture_matrix.get("go1.26") or next(iter(fixture_matrix.values()))


def package_dir(bin_dir):
    found = glob.glob(os.path.join(os.path.dirname(bin_dir), "lib", "python3*", "site-packages", "gomap"))
    assert len(found) == 1, found
    return os.path.realpath(found[0])


def expected_version():
    with open(os.path.join(REPO, "Cargo.toml")) as f:
        version = re.search(r'(?m)^version\s*=\s*"([^"]+)"', f.read()).group(1)
    code, rev, _ = run(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"])
    assert code == 0, "the suite runs in a git checkout; build.rs names its revision"
    return "%s (git %s)" % (version, rev.strip())


def init_line(bin_dir, debugger, env=None):
    code, out, err = run([os.path.join(bin_dir, "gomap"), "init", debugger], env=env)
    assert (code, err) == (0, ""), err
    assert out.endswith("\n") and out.count("\n") == 1, "init prints one line: %r" % out
    return out.strip()


def json_docs(text):
    return [json.loads(l) for l in text.splitlines() if l.startswith('{"name"')]


def show_commands(truth):
    exprs = sorted(truth["maps"])
    return exprs, ["gomap show %s --json --limit 0" % e for e in exprs]


def assert_all_match(docs, exprs, truth, impl, output):
    assert len(docs) == len(exprs), "expected %d JSON maps, got %d:\n%s" % (len(exprs), len(docs), output[-3000:])
    for expr, got in zip(exprs, docs):
        F.assert_map_matches_truth(got, truth["maps"][expr], expr, impl)


def gdb_session(line_args, fixture, commands, env=None, cwd=None, nx=True):
    argv = [GDB] + (["-nx"] if nx else []) + ["-batch"] + line_args
    for c in commands:
        argv += ["-ex", c]
    return run(argv + [fixture["binary"], fixture["core"]], env=env, cwd=cwd)


def lldb_session(line_args, fixture, commands, env=None, cwd=None, no_init=True):
    argv = [LLDB] + (["--no-lldbinit"] if no_init else []) + ["-b"] + line_args
    for c in commands:
        argv += ["-o", c]
    return run(argv + [fixture["binary"], "-c", fixture["core"]], env=env, cwd=cwd)


def assert_session_decodes(session, line_args, pkg, fixture, truth, cwd):
    """A debugger session started with `line_args` says it loaded the package's module, with this
    build's version, and decodes every map of the fixture as its truth says."""
    exprs, commands = show_commands(truth)
    code, out, err = session(line_args, fixture, commands, cwd=cwd)
    loaded = "gomap: loaded %s (gomap %s)" % (os.path.join(pkg, "_gomap.abi3.so"), expected_version())
    assert loaded in out, out[-2000:] + err[-2000:]
    assert_all_match(json_docs(out), exprs, truth, fixture["impl"], out + err)


def test_wheel_holds_the_module_the_front_ends_and_the_command(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for f in FRONT_ENDS:
            with open(os.path.join(REPO, "python", f), "rb") as src:
                assert z.read("gomap/" + f) == src.read(), "gomap/%s in the wheel is not python/%s" % (f, f)
        assert "gomap/_gomap.abi3.so" in names, sorted(names)
        assert "gomap/__init__.py" in names
        entry_points = next(z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert re.search(r"(?m)^gomap\s*=\s*gomap:main$", entry_points), entry_points
    assert "-abi3-" in os.path.basename(wheel)


def test_installed_command_behaves_exactly_like_the_cli(venv_bin, any_fixture, elsewhere):
    """Same stdout, stderr and exit status as target/release/gomap, for output, findings (exit 1),
    errors (exit 2) and clap's own usage errors, help and version."""
    assert os.access(CLI, os.X_OK), "%s is not built (cargo build --release --features python)" % CLI
    b, c = any_fixture["binary"], any_fixture["core"]
    expr = sorted(F.load_truth(any_fixture["truth"])["maps"])[0]
    cases = [
        ["--version"], ["--help"], [], ["nope"], ["show"], ["show", "--help"], ["init"], ["init", "vim"],
        ["init", "gdb", "--core", c],
        ["show", "--binary", b, "--core", c, expr, "--json", "--limit", "0"],
        ["show", "--binary", b, "--core", c, expr],
        ["check", "--binary", b, "--core", c],
        ["maps", "--binary", b, "--core", c, "--json"],
        ["layout", "--binary", b, "--core", c],
        ["show", "--binary", b, "--core", c, "main.noSuchMap"],
        ["show", "--binary", os.path.join(elsewhere, "missing"), "--core", c, expr],
        ["show", "--core", c, expr],
    ]
    on_path = env_with(PATH=venv_bin + os.pathsep + os.environ.get("PATH", ""))
    codes = set()
    for argv in cases:
        want = run([CLI] + argv, env=on_path, cwd=elsewhere)  # the same environment: clap reads COLUMNS
        got = run(["gomap"] + argv, env=on_path, cwd=elsewhere)
        assert got == want, "gomap %s: the installed command differs from %s" % (" ".join(argv), CLI)
        codes.add(want[0])
    assert codes == {0, 1, 2}, "the cases should cover success, findings and errors: %s" % codes
    code, out, _ = run(["gomap", "--version"], env=on_path)
    assert out == "gomap %s\n" % expected_version()


def test_installed_command_decodes_every_map_of_the_core(venv_bin, fixture, truth, elsewhere):
    g = os.path.join(venv_bin, "gomap")
    for expr, tm in sorted(truth["maps"].items()):
        code, out, err = run([g, "show", "--binary", fixture["binary"], "--core", fixture["core"], expr, "--json",
                              "--limit", "0"], cwd=elsewhere)
        assert (code, err) == (0, ""), err
        F.assert_map_matches_truth(json.loads(out), tm, expr, fixture["impl"])


def test_init_line_loads_the_installed_front_end_into_gdb(venv_bin, fixture, truth, elsewhere):
    line = init_line(venv_bin, "gdb")
    pkg = package_dir(venv_bin)
    assert line == "source %s" % os.path.join(pkg, "gomap.py")
    # As ~/.gdbinit would hold it: a file with only that line, from a directory that is not the clone.
    linefile = os.path.join(elsewhere, "gdbinit")
    with open(linefile, "w") as f:
        f.write(line + "\n")
    assert_session_decodes(gdb_session, ["-x", linefile], pkg, fixture, truth, elsewhere)


def test_init_line_loads_the_installed_front_end_into_lldb(venv_bin, fixture, truth, elsewhere):
    line = init_line(venv_bin, "lldb")
    pkg = package_dir(venv_bin)
    assert line == "command script import %s" % os.path.join(pkg, "gomap_lldb.py")
    assert_session_decodes(lldb_session, ["-o", line], pkg, fixture, truth, elsewhere)


def test_write_appends_the_line_once_and_the_debuggers_read_it(venv_bin, any_fixture, tmp_path, elsewhere):
    home = tmp_path / "home"
    home.mkdir()
    env = env_with(HOME=home, GOMAP_CACHE=None)
    truth = F.load_truth(any_fixture["truth"])
    exprs, commands = show_commands(truth)
    exprs, commands = exprs[:2], commands[:2]
    g = os.path.join(venv_bin, "gomap")
    for debugger, rc, before in (("gdb", ".gdbinit", "set pagination off"), ("lldb", ".lldbinit", None)):
        path = home / rc
        if before is not None:
            path.write_text(before)  # an existing file without a final newline
        line = init_line(venv_bin, debugger, env=env)
        code, out, err = run([g, "init", debugger, "--write"], env=env, cwd=elsewhere)
        assert (code, err) == (0, ""), err
        assert out.splitlines()[0] == "gomap: added to %s: %s" % (path, line)
        assert "uninstalling gomap leaves this line in %s" % path in out
        code, out, err = run([g, "init", debugger, "--write"], env=env, cwd=elsewhere)
        assert (code, err, out) == (0, "", "gomap: %s already has: %s\n" % (path, line))
        want = ([before] if before is not None else []) + [line]
        assert path.read_text() == "\n".join(want) + "\n"
    # Plain sessions (no -nx, no --no-lldbinit) read HOME's init files and load gomap from them.
    code, out, err = gdb_session([], any_fixture, commands, env=env, cwd=elsewhere, nx=False)
    assert_all_match(json_docs(out), exprs, truth, any_fixture["impl"], out + err)
    code, out, err = lldb_session([], any_fixture, commands, env=env, cwd=elsewhere, no_init=False)
    assert_all_match(json_docs(out), exprs, truth, any_fixture["impl"], out + err)


def test_user_install_loads_into_gdb_by_its_path(wheel, any_fixture, tmp_path, elsewhere):
    """`pip install --user` (into a temporary user base): the debugger's Python knows nothing of
    that directory; the init line's absolute path is all it needs."""
    base = tmp_path / "userbase"
    env = user_install(wheel, base)
    line = init_line(str(base / "bin"), "gdb", env=env)
    assert line.startswith("source %s" % os.path.realpath(str(base))) and line.endswith("/gomap/gomap.py"), line
    truth = F.load_truth(any_fixture["truth"])
    exprs, commands = show_commands(truth)
    code, out, err = gdb_session(["-ex", line], any_fixture, commands[:3], env=env_with(PYTHONUSERBASE=None),
                                 cwd=elsewhere)
    assert_all_match(json_docs(out), exprs[:3], truth, any_fixture["impl"], out + err)


def test_uninstall_leaves_only_what_write_added(wheel, any_fixture, tmp_path, elsewhere):
    venv = str(tmp_path / "venv")
    bin_dir = make_venv(venv, wheel)
    home = tmp_path / "home"
    home.mkdir()
    env = env_with(HOME=home, GOMAP_CACHE=None)
    g = os.path.join(bin_dir, "gomap")
    notes = []
    for debugger in ("gdb", "lldb"):
        code, out, err = run([g, "init", debugger, "--write"], env=env, cwd=elsewhere)
        assert code == 0, err
        notes.append(out)
    # Use both front ends once, so that whatever they leave (bytecode caches, LLDB's type modules) exists.
    expr = sorted(F.load_truth(any_fixture["truth"])["maps"])[0]
    for session in (gdb_session, lldb_session):
        code, out, err = session([], any_fixture, ["gomap show %s --json" % expr], env=env, cwd=elsewhere, **(
            {"nx": False} if session is gdb_session else {"no_init": False}))
        assert len(json_docs(out)) == 1, out + err
    code, out, err = run([sys.executable, "-m", "pip", "--python", os.path.join(bin_dir, "python"), "uninstall", "-y",
                          "gomap"])
    assert code == 0, out + err
    left = [os.path.relpath(os.path.join(d, n), venv) for d, dirs, files in os.walk(venv) for n in dirs + files
            if "gomap" in n.lower()]
    assert left == [], "pip uninstall left %s" % left
    in_home = sorted(os.path.relpath(os.path.join(d, n), str(home)) for d, _, files in os.walk(str(home)) for n in files)
    # LLDB's own history is LLDB's; gomap's LLDB type modules are a cache (README: "Uninstall").
    ours = [p for p in in_home if not p.startswith(".lldb/") and not p.startswith(".cache/gomap/lldb/")]
    assert ours == [".gdbinit", ".lldbinit"], in_home
    for note, rc in zip(notes, (".gdbinit", ".lldbinit")):
        assert "uninstalling gomap leaves this line in %s" % (home / rc) in note


def test_cli_without_the_package_answers_init(wheel, tmp_path, elsewhere):
    """A gomap installed by cargo has no front ends of its own: in a checkout it names the checkout's
    python/, elsewhere the front ends of the gomap package python3 finds, else it says what to do."""
    code, out, err = run([CLI, "init", "lldb"], cwd=elsewhere)
    assert (code, out, err) == (0, "command script import %s\n" % os.path.join(REPO, "python", "gomap_lldb.py"), "")
    lone = tmp_path / "bin" / "gomap"  # as `cargo install` leaves it: no checkout around it
    lone.parent.mkdir()
    shutil.copy(CLI, str(lone))
    base = tmp_path / "userbase"
    env = user_env(base)
    code, out, err = run([lone, "init", "gdb"], env=env, cwd=elsewhere)
    assert code == 2 and out == "" and err.count("\n") == 1, (code, out, err)
    assert err.startswith("gomap: error: this gomap has no debugger front ends") and "pip install" in err, err
    user_install(wheel, base)
    code, out, err = run([lone, "init", "gdb"], env=env, cwd=elsewhere)
    assert (code, err) == (0, ""), err
    assert out == "source %s\n" % os.path.join(package_dir(str(base / "bin")), "gomap.py"), out


def test_damaged_install_is_one_line_everywhere(wheel, any_fixture, tmp_path, elsewhere):
    """An install whose native module cannot load (damaged, or for another machine): the command and
    both debuggers say so in one line that names the fix, and the debuggers carry on."""
    bin_dir = make_venv(str(tmp_path / "venv"), wheel)
    so = os.path.join(package_dir(bin_dir), "_gomap.abi3.so")
    with open(so, "wb") as f:
        f.write(b"not a shared object\n")
    fix = "reinstall gomap (pip install --force-reinstall)"
    code, out, err = run([os.path.join(bin_dir, "gomap"), "--version"], cwd=elsewhere)
    assert code == 2 and out == "" and err.count("\n") == 1, (code, out, err)
    assert err.startswith("gomap: error: cannot load the gomap native module") and fix in err, err
    expr = sorted(F.load_truth(any_fixture["truth"])["maps"])[0]
    pkg = package_dir(bin_dir)
    # `gomap init` needs the module too: the lines are written as it would print them. gdb goes on
    # after a failed command; LLDB's batch mode stops at one, so there the check comes first.
    gdb_line = ["-ex", "source %s" % os.path.join(pkg, "gomap.py")]
    lldb_line = ["-o", "command script import %s" % os.path.join(pkg, "gomap_lldb.py")]
    for session, line, commands in ((gdb_session, gdb_line, ["gomap show %s" % expr, "echo still here\\n"]),
                                    (lldb_session, lldb_line, ["script print('still here')", "gomap show %s" % expr])):
        code, out, err = session(line, any_fixture, commands, cwd=elsewhere)
        text = out + err
        assert code >= 0 and "Traceback" not in text and "still here" in text, text[-2000:]
        # Once when the front end loads, once more as the error of `gomap show`.
        assert "gomap: cannot load %s" % so in text and text.count(fix) >= 2, text[-2000:]
