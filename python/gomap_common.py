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
import json
import os
import re
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
    """Loads `_gomap` from beside this file (the pip package) or the repository's build."""
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
    if os.path.exists(os.path.join(HERE, "__init__.py")):  # the pip package: nothing to rebuild here
        _native_error = "%s; reinstall gomap (pip install --force-reinstall)" % (
            first_error or "no _gomap module in %s" % HERE)
    elif first_error:
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

    def thread_registers(self):
        """[(lwp, pc, sp, bp)] of the debugger's stopped threads (x86-64), for the census of running
        goroutines; [] when unknown."""
        return []

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
        # A core's own notes have its threads' registers; a live process's are only the debugger's.
        if argv[0] in ("maps", "holders") and not self.backend.is_core() and hasattr(session, "set_threads"):
            try:
                session.set_threads(self.backend.thread_registers())
            except Exception:  # registers are a bonus: without them a running goroutine is noted, not walked
                pass

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
        """(len, impl, [(key, value)], more) for pretty-printers; a walk stops after `limit`
        entries (0: only the len, from the header)."""
        return self._native_call(lambda s: s.summary(addr, type_name, limit))

    def map_info(self, type_name):
        """(key_name, key_size, key_typed, elem_name, elem_size, elem_typed) of a map type."""
        return self._native_call(lambda s: s.map_info(type_name))

    def entries(self, addr, type_name, skip, limit, render):
        """(len, [(key_addr, elem_addr, key_text, elem_text)], more): one page of entries; texts
        only for the sides `render` asks for (1: keys, 2: elements)."""
        return self._native_call(lambda s: s.entries(addr, type_name, skip, limit, render))

    def _native_call(self, fn):
        mod = load_native()
        if mod is None:
            raise UserError(native_error())
        try:
            return fn(self.session())
        except mod.GomapError as e:
            raise UserError(str(e))

    def render(self, addr, type_name):
        """The Go value of type `type_name` at addr, as gomap's text."""
        return self._native_call(lambda s: s.render(addr, type_name))

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


def go_type_by_name(name, find, pointer, array, depth=0):
    """A debugger's type for a Go type name: `find(name)` for the types the program's (or gomap's)
    DWARF names, else a pointer or array type built from its element's (`*T`, `[N]T`), else None."""
    if depth > 16:
        return None
    ty = find(name)
    if ty is not None:
        return ty
    if name.startswith("*"):
        target = go_type_by_name(name[1:], find, pointer, array, depth + 1)
        return pointer(target) if target is not None else None
    m = re.match(r"\[(\d+)\](.+)$", name)
    if m:
        elem = go_type_by_name(m.group(2), find, pointer, array, depth + 1)
        return array(elem, int(m.group(1))) if elem is not None else None
    return None



# ---- gomap watch: the debugger-neutral part -----------------------------------------------------------

WATCH_HELP = """Print every write, delete and growth step of one map while the program runs (live processes only).

Usage: gomap watch EXPR [--count N] [--type 'map[K]V']
Sets breakpoints on the entry of the runtime's map write functions of this Go version
(runtime.mapassign*, runtime.mapdelete*, runtime.mapclear, and growth: hashGrow/evacuate for
classic maps, (*Map).growToSmall/growToTable and (*table).rehash/grow/split for swiss maps),
conditioned on the map's header address, then continues. Each event prints a line with the
caller and the map's state before it (len; for classic maps the evacuation progress).
After N events (default 10) the program stops inside the runtime function of the last event
(bt shows who wrote); the breakpoints are removed. Ctrl-C stops early.
Every map write of the whole program traps into the debugger while watching: expect it to run slower."""

# (symbol, event kind, which integer argument holds the map header (0 = receiver/1st, 1 = 2nd,
# 2 = 3rd), how many integer argument registers the function takes). Go's register ABI (1.17+):
# integer arguments in RAX, RBX, RCX, RDI, RSI, R8.. (amd64) or R0, R1, R2.. (arm64); at a
# function's first instruction they are still in those registers (a string takes two).
WATCH_FUNCS = [
    # classic (runtime/map.go, map_fast*.go) and swiss (internal/runtime/maps linknamed to runtime.*)
    ("runtime.mapassign", "write", 1, 3),
    ("runtime.mapassign_fast32", "write", 1, 3),
    ("runtime.mapassign_fast32ptr", "write", 1, 3),
    ("runtime.mapassign_fast64", "write", 1, 3),
    ("runtime.mapassign_fast64ptr", "write", 1, 3),
    ("runtime.mapassign_faststr", "write", 1, 4),
    ("runtime.mapdelete", "delete", 1, 3),
    ("runtime.mapdelete_fast32", "delete", 1, 3),
    ("runtime.mapdelete_fast64", "delete", 1, 3),
    ("runtime.mapdelete_faststr", "delete", 1, 4),
    ("runtime.mapclear", "clear", 1, 2),
    # classic growth: hashGrow(t, h) starts it, evacuate(t, h, oldbucket) moves one old bucket
    ("runtime.hashGrow", "grow", 1, 2),
    ("runtime.evacuate", "evacuate", 1, 3),
    ("runtime.evacuate_fast32", "evacuate", 1, 3),
    ("runtime.evacuate_fast64", "evacuate", 1, 3),
    ("runtime.evacuate_faststr", "evacuate", 1, 3),
    # swiss growth: (m *Map) growToSmall/growToTable(typ); (t *table) rehash/split(typ, m),
    # grow(typ, m, newCapacity)
    ("internal/runtime/maps.(*Map).growToSmall", "grow", 0, 2),
    ("internal/runtime/maps.(*Map).growToTable", "grow", 0, 2),
    ("internal/runtime/maps.(*table).rehash", "grow", 2, 3),
    ("internal/runtime/maps.(*table).grow", "grow", 2, 4),
    ("internal/runtime/maps.(*table).split", "grow", 2, 3),
]

ARG_REGS = {
    "amd64": ("rax", "rbx", "rcx", "rdi", "rsi"),
    "arm64": ("x0", "x1", "x2", "x3", "x4"),
}
SP_REG = {"amd64": "rsp", "arm64": "sp"}
G_REG = {"amd64": "r14", "arm64": "x28"}  # the current goroutine, in Go's register ABI




def parse_watch_args(argv):
    """`EXPR [--count N] [--type T]` -> (expr, count, type name or None), or None for --help."""
    count, type_name, exprs = 10, None, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            return None
        if a in ("--count", "-n", "--type") or a.startswith(("--count=", "--type=")):
            if "=" in a:
                a, v = a.split("=", 1)
            else:
                i += 1
                if i >= len(argv):
                    raise UserError("gomap watch: %s needs a value" % a)
                v = argv[i]
            if a == "--type":
                type_name = v
            else:
                try:
                    count = int(v, 0)
                except ValueError:
                    raise UserError("gomap watch: --count wants a number, not %r" % v)
                if count < 1:
                    raise UserError("gomap watch: --count must be at least 1")
        elif a.startswith("-") and not a[1:2].isdigit():
            raise UserError("gomap watch: unknown option %s (see help gomap watch)" % a)
        else:
            exprs.append(a)
        i += 1
    if len(exprs) != 1:
        raise UserError("usage: gomap watch EXPR [--count N] [--type 'map[K]V']")
    return exprs[0], count, type_name


def watch_target(layer, expr, type_name):
    """The core's JSON header of the map to watch; a nil map cannot be watched."""
    argv = ["show", expr, "--json", "--limit", "1"] + (["--type", type_name] if type_name else [])
    _, out = layer.run(argv)
    doc = json.loads(out)
    if int(doc["address"], 16) == 0:
        raise UserError("%s is a nil map: nothing to watch yet (a write to a nil map panics)" % expr)
    return doc


def check_watch_functions(found):
    if not any(k == "write" for f, k, _, _ in WATCH_FUNCS if f in found):
        raise UserError("no runtime map write function found in the symbol table (stripped binary?)")


def watch_banner(expr, doc, nbreakpoints, count):
    return "gomap watch: %s %s at %s (%s, %s): %d breakpoints, stopping after %d event%s" % (
        expr, doc["type"], doc["address"], doc.get("impl"), doc.get("go_version"), nbreakpoints, count,
        "" if count == 1 else "s")


def key_type(map_type):
    """K of "map[K]V" (brackets balanced), or ""."""
    if not map_type.startswith("map["):
        return ""
    depth = 0
    for i, c in enumerate(map_type[3:], 3):
        depth += {"[": 1, "]": -1}.get(c, 0)
        if depth == 0:
            return map_type[4:i]
    return ""


class Watch:
    """One `gomap watch`: counts events on one map and says what each was. An adapter sets the
    breakpoints and calls `hit` with a view of the stopped frame: reg(name) -> int, name() ->
    function name, read(addr, size) -> bytes, callers() -> (name, "file:line" or None) outwards."""

    def __init__(self, layer, addr, type_name, count, arch):
        self.layer, self.addr, self.type_name, self.count, self.arch = layer, addr, type_name, count, arch
        self.last_sig = self.last_state = None
        self.refired = 0
        self.events = 0
        self.errors = []

    def state(self):
        """The map's state before this event, as (text, everything the core reported about it):
        len and, for classic maps, the evacuation progress."""
        try:
            status, out = self.layer.run(["show", "%#x" % self.addr, "--type", self.type_name, "--json", "--limit", "1"])
            doc = json.loads(out)
            st = doc.get("stats", {})
            text = "len %s" % doc.get("len")
            if doc.get("impl") == "classic":
                text += " B %s" % st.get("B")
                if st.get("growing"):
                    text += " growing: %s/%s old buckets evacuated (nevacuate %s)" % (
                        st.get("evacuated_old"), st.get("old_buckets"), st.get("nevacuate"))
            elif "tables" in st:
                text += " tables %s capacity %s growthLeft %s" % (st.get("tables"), st.get("capacity"), st.get("growth_left"))
            return "[" + text + "]", out
        except Exception as e:
            return "[state unavailable: %s]" % " ".join(str(e).split()), None

    def hit(self, func, kind, regs, frame):
        """One breakpoint hit on this map: (stop the program?, line to print or None)."""
        # A signal delivered to a thread stopped at the breakpoint (Go's preemption SIGURG, sent
        # all the more because the debugger holds the thread) runs the function's first
        # instruction again, sometimes after the goroutine moved to another thread: the same
        # goroutine, stack pointer, arguments and map state hit the breakpoint twice or more.
        # Those are one call. (Two genuine identical calls in a row that leave the map as it was,
        # such as m[k] = 1; m[k] = 2 from one frame, are folded too: the value is stored after
        # mapassign returns.)
        sig = (frame.reg(G_REG[self.arch]), func, frame.reg(SP_REG[self.arch]), tuple(frame.reg(r) for r in regs))
        text, state = self.state()
        if sig == self.last_sig and state == self.last_state and state is not None:
            self.refired += 1
            return False, None
        self.last_sig, self.last_state = sig, state
        self.events += 1
        try:
            line = self.describe(kind, regs, frame, text)
        except Exception as e:
            line = "gomap watch: #%d %s (%s)" % (self.events, kind, " ".join(str(e).split()))
        return self.events >= self.count, line

    def describe(self, kind, regs, frame, state_text):
        parts = ["gomap watch: #%d %s" % (self.events, kind)]
        try:
            fname = frame.name()
            if kind == "grow":
                parts.append("(%s)" % fname.rsplit(".", 1)[-1])
            elif kind == "evacuate":
                parts.append("old bucket %d" % frame.reg(regs[2]))
            elif kind in ("write", "delete") and fname.endswith(("_fast64", "_fast32")):
                # The key itself is the third integer argument of the fast variants.
                bits = 32 if fname.endswith("_fast32") else 64
                key = frame.reg(regs[2]) & ((1 << bits) - 1)
                if key_type(self.type_name) in ("int", "int64", "int32", "rune") and key >> (bits - 1):
                    key -= 1 << bits
                parts.append("key %d" % key)
            elif kind in ("write", "delete") and fname.endswith("_faststr"):
                ptr, n = frame.reg(regs[2]), frame.reg(regs[3])
                data = frame.read(ptr, min(n, 64)) if n else b""
                text = json.dumps(data.decode("utf-8", "replace"), ensure_ascii=False)
                parts.append("key %s%s" % (text, "..." if n > 64 else ""))
        except Exception:
            pass
        try:
            for name, where in frame.callers():
                if not name.startswith(("runtime.", "internal/runtime/")):
                    parts.append("from " + name + (" (%s)" % where if where else ""))
                    break
        except Exception:
            pass
        parts.append(state_text)
        return " ".join(p for p in parts if p)

    def summary_lines(self, interrupted=False):
        out = []
        if self.errors:
            out.append("gomap watch: %d breakpoint error(s), first: %s" % (len(self.errors), self.errors[0]))
        if self.refired:
            out.append("gomap watch: %d repeated hit%s of the same call not counted (a signal such as Go's "
                       "preemption runs a breakpoint's instruction again)" % (self.refired, "" if self.refired == 1 else "s"))
        if self.events >= self.count:
            out.append("gomap watch: %d event%s seen; stopped in the runtime (bt shows the writer)"
                       % (self.events, "" if self.events == 1 else "s"))
        else:
            out.append("gomap watch: %s after %d event%s" % ("interrupted" if interrupted else "stopped", self.events,
                                                             "" if self.events == 1 else "s"))
        return out
