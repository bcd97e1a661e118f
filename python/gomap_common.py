"""The debugger-neutral command layer shared by gomap.py (gdb) and gomap_lldb.py (LLDB).

Everything a command does happens in the Rust core (the `_gomap` native module); this layer only
1. finds and loads the native module,
2. opens a session on whatever the debugger has loaded, choosing the fastest memory source
   (the core file or /proc/PID/mem directly, else the debugger's own memory reads),
3. runs a command line through the core's own argument grammar, with the debugger as the
   evaluator of EXPR, and turns every failure into one line for the debugger to show.

An adapter implements `Backend` for its debugger; nothing here imports gdb or lldb.
"""

import importlib.machinery
import importlib.util
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

_native = None
_native_error = None


def native_candidates():
    """Where the module may be, best first. The set-up copies the Python build to target/python/
    (cargo never writes there: a plain `cargo build` or `cargo test` replaces target/*/libgomap.so
    with a library that has no Python entry point); a fresher cargo build is tried before the copy."""
    env = os.environ.get("GOMAP_NATIVE")
    if env:
        yield env
    for name in ("_gomap.abi3.so", "_gomap.so"):
        yield os.path.join(HERE, name)
    builds = [os.path.join(REPO, "target", "python", "_gomap.abi3.so")]
    builds += [os.path.join(REPO, "target", profile, "libgomap.so") for profile in ("release", "debug")]
    existing = [p for p in builds if os.path.exists(p)]
    for path in sorted(existing, key=os.path.getmtime, reverse=True):
        yield path


def load_native():
    """Loads `_gomap` from the repository's build, without pip or environment variables."""
    global _native, _native_error
    if _native is not None or _native_error is not None:
        return _native
    first_error = None
    for path in native_candidates():
        if not os.path.exists(path):
            continue
        try:
            loader = importlib.machinery.ExtensionFileLoader("_gomap", path)
            spec = importlib.util.spec_from_file_location("_gomap", path, loader=loader)
            mod = importlib.util.module_from_spec(spec)
            loader.exec_module(mod)
        except Exception as e:  # a stale build, or one without the python feature: try the next
            first_error = first_error or "cannot load %s (%s)" % (path, e)
            continue
        sys.modules["_gomap"] = mod
        _native = mod
        _native.path = path
        return _native
    if first_error:
        _native_error = "%s; rebuild with: cargo build --release --features python" % first_error
    else:
        _native_error = (
            "the gomap native module is not built; run the README's set-up "
            "(or: cargo build --release --features python in %s)" % REPO
        )
    return None


def native_error():
    return _native_error


class UserError(Exception):
    """One line for the debugger to print as an error."""


class Backend:
    """What an adapter tells the layer about the debugger's current target."""

    name = "debugger"

    def binary_path(self):
        """Path of the executable the debugger has loaded, or None."""
        raise NotImplementedError

    def core_path(self):
        """Path of the core file being debugged, or None."""
        return None

    def pid(self):
        """Pid of a live local process being debugged, or None."""
        return None

    def read_memory(self, addr, size):
        """Bytes of the target; raises on unreadable memory."""
        raise NotImplementedError

    def bias(self, session_dwarf_address):
        """Load bias (runtime minus link-time address) or None if unknown. The argument maps a
        global's name to its link-time address, so the adapter can compare with the debugger's."""
        return None

    def resolve(self, expr):
        """(map header address, map type name) for EXPR, or None to let gomap resolve it."""
        return None

    def is_core(self):
        """Whether the debugger reads a core file (not a process that may change)."""
        return False

    def target_key(self):
        """Identifies the current target: a new key means a new session."""
        return (self.binary_path(), self.core_path(), self.pid())

    def memory_generation(self):
        """Changes whenever the target's memory may have changed (each stop of a live process)."""
        return 0


class CommandLayer:
    def __init__(self, backend):
        self.backend = backend
        self._session = None
        self._key = None
        self._gen = None
        self._direct = False
        self.last_resolve_error = None

    def session(self):
        mod = load_native()
        if mod is None:
            raise UserError(native_error())
        b = self.backend
        key = b.target_key()
        gen = b.memory_generation()
        # A file-backed session reads fresh memory on every call; only debugger-memory sessions
        # cache pages, so those are renewed whenever the target may have run.
        if self._session is not None and self._key == key and (self._direct or self._gen == gen):
            return self._session
        binary = b.binary_path()
        if not binary:
            raise UserError("no Go program loaded: load the executable first (file BIN, or start the debugger with it)")
        if not os.path.exists(binary):
            raise UserError("the loaded executable %s does not exist on this machine" % binary)
        session = None
        core, pid = b.core_path(), b.pid()
        direct = False
        try:
            if core and os.path.isfile(core) and os.access(core, os.R_OK):
                session, direct = mod.Session.open(binary, core=core), True
            elif pid and os.access("/proc/%d/mem" % pid, os.R_OK) and mod.probe_pid(pid):
                session, direct = mod.Session.open(binary, pid=pid), True
        except mod.GomapError as e:
            raise UserError(str(e))
        if session is None:
            try:
                probe = mod.Session.with_reader(binary, b.read_memory, bias=0, name=b.name)
                bias = b.bias(probe.dwarf_address)
                # A core read through the debugger is still a core: findings must not call it a process.
                session = mod.Session.with_reader(binary, b.read_memory, bias=bias, name=b.name, live=not b.is_core())
            except mod.GomapError as e:
                raise UserError(str(e))
        self._session, self._key, self._gen, self._direct = session, key, gen, direct
        return session

    def run(self, argv):
        """Runs a gomap command line (a string or a list); returns (exit status, output text)."""
        mod = load_native()
        if mod is None:
            raise UserError(native_error())
        if isinstance(argv, str):
            try:
                argv = shlex.split(argv)
            except ValueError as e:
                raise UserError("cannot parse arguments: %s" % e)
        if not argv or argv[0] in ("help", "-h", "--help"):
            return 0, mod.help_text([])
        # --help needs no target.
        if "--help" in argv or "-h" in argv:
            return 0, mod.help_text([a for a in argv if a not in ("--help", "-h")]) or ""
        session = self.session()

        def resolver(expr):
            try:
                return self.backend.resolve(expr)
            except UserError:
                raise
            except Exception as e:  # the debugger could not evaluate it: let gomap try DWARF
                self.last_resolve_error = str(e)
                return None

        try:
            return session.run(argv, resolver)
        except mod.GomapError as e:
            raise UserError(str(e))
        except KeyboardInterrupt:
            raise UserError("interrupted")

    def summary(self, addr, type_name, limit):
        """(len, impl, [(key, value)], more) for pretty-printers."""
        mod = load_native()
        if mod is None:
            raise UserError(native_error())
        try:
            return self.session().summary(addr, type_name, limit)
        except mod.GomapError as e:
            raise UserError(str(e))

    def is_map_type(self, type_name):
        try:
            return self.session().is_map_type(type_name)
        except Exception:
            return False

    def complete(self, text, words):
        """Completion candidates: subcommands first, then map globals."""
        mod = load_native()
        if mod is None:
            return []
        if len(words) <= 1:
            return [s for s in mod.subcommands() if s.startswith(text)]
        try:
            names = self.session().map_globals()
        except Exception:
            return []
        return sorted(n for n in names if n.startswith(text))


def format_map_summary(type_name, length, items, more):
    """`map[string]int len=3 {"a": 1, ...}` — the pretty-printer's one line."""
    body = ", ".join("%s: %s" % kv for kv in items)
    if more:
        body += ", ..."
    return "%s len=%d {%s}" % (type_name, length, body)
