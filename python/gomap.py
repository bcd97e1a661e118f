"""gomap for gdb: decode Go maps in a live process or a core file.

    (gdb) source /path/to/gomap/python/gomap.py
    (gdb) gomap show main.cache --limit 20
    (gdb) print 'main.cache'          # pretty-printed through the Rust core
    (gdb) gomap watch main.cache --count 5

Everything that decodes a map happens in the Rust core (the `_gomap` native module) through the
debugger-neutral layer in gomap_common.py; this file only tells that layer what gdb has loaded,
evaluates expressions with gdb, registers the commands and the pretty-printer, and implements
`gomap watch` (breakpoints on the runtime's map write functions: debugger control, not decoding).

Sourcing this file again replaces the commands and the pretty-printer and reconnects the event
handlers once; it never registers anything twice. tests/test_gdb.py drives all of it in real gdb.
"""

import json
import os
import re
import sys

import gdb  # noqa: F401  (only ever run inside gdb)
import gdb.printing

_HERE = os.path.dirname(os.path.abspath(globals().get("__file__") or "gomap.py"))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import gomap_common as common  # noqa: E402

# gomap_common may have been imported by an earlier `source` of a different checkout: use ours.
if os.path.dirname(os.path.abspath(common.__file__)) != _HERE:
    import importlib.util as _ilu

    _spec = _ilu.spec_from_file_location("gomap_common", os.path.join(_HERE, "gomap_common.py"))
    common = _ilu.module_from_spec(_spec)
    _spec.loader.exec_module(common)
    sys.modules["gomap_common"] = common

# State that must survive a second `source` (event handlers, pretty-printer, generation counter)
# lives on the gdb module, which is the one object every sourcing shares.
_STATE = getattr(gdb, "_gomap_state", None)
if _STATE is None:
    _STATE = {"generation": 0, "handlers": []}
    gdb._gomap_state = _STATE

MAX_PRINT_ELEMENTS = 100000  # `set print elements unlimited` still caps the pretty-printer here


def _one_line(msg):
    lines = [l.strip() for l in str(msg).strip().splitlines() if l.strip()]
    return " ".join(lines) if lines else "unknown error"


# ---- what gdb has loaded -------------------------------------------------------------------------

def _connection_type():
    """'native', 'core', 'remote', 'extended-remote', ... or None (no process, or an old gdb)."""
    try:
        conn = gdb.selected_inferior().connection
    except (AttributeError, gdb.error):
        return None
    if conn is None:
        return None
    return getattr(conn, "type", None)


def _core_from_info_target():
    try:
        text = gdb.execute("info target", to_string=True)
    except gdb.error:
        return None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("Local core dump file:"):
            for cand in lines[i:i + 2]:
                start = cand.find("`")
                end = cand.find("',", start + 1)
                if end < 0:
                    end = cand.rfind("'")
                if start >= 0 and end > start:
                    return cand[start + 1:end]
    return None


def _direct_allowed():
    return _STATE.get("direct", True)


class GdbBackend(common.Backend):
    name = "gdb"

    def binary_path(self):
        try:
            ps = gdb.current_progspace()
            fn = ps.filename if ps is not None else None
            if not fn:
                objs = gdb.objfiles()
                fn = objs[0].filename if objs else None
            return fn
        except gdb.error:
            return None

    def core_file(self):
        """The core file gdb is debugging, or None."""
        ctype = _connection_type()
        if ctype is not None and ctype != "core":
            return None
        ps = gdb.current_progspace()
        if hasattr(ps, "core_filename"):  # gdb 14+
            return ps.core_filename
        if ctype is None and gdb.selected_inferior().pid == 0:
            return None
        return _core_from_info_target()

    def live_pid(self):
        """Pid of a live process on this machine (a core sets the inferior's pid too), or None."""
        inf = gdb.selected_inferior()
        if not inf.pid:
            return None
        ctype = _connection_type()
        if ctype is None:
            if self.core_file():
                return None
        elif ctype != "native":
            return None  # remote: the pid is on another machine; read through gdb
        return inf.pid

    def is_core(self):
        """Whether gdb debugs a core file (however it is read)."""
        return self.core_file() is not None

    # What the layer reads directly (the fast path); `set gomap-direct off` reads through gdb instead.
    def core_path(self):
        return self.core_file() if _direct_allowed() else None

    def pid(self):
        return self.live_pid() if _direct_allowed() else None

    def target_key(self):
        inf = gdb.selected_inferior()
        return (self.binary_path(), self.core_file(), inf.num, inf.pid, _direct_allowed())

    def read_memory(self, addr, size):
        return bytes(gdb.selected_inferior().read_memory(addr, size))

    def memory_generation(self):
        return _STATE["generation"]

    def bias(self, session_dwarf_address):
        for name in ("runtime.buildVersion", "runtime.firstmoduledata"):
            try:
                link = session_dwarf_address(name)
                if link is None:
                    continue
                here = int(gdb.parse_and_eval("&'%s'" % name))
                return (here - link) & 0xFFFFFFFFFFFFFFFF
            except Exception:
                continue
        return None

    # -- expressions -------------------------------------------------------------------------------

    def _evaluate(self, expr):
        """gdb's value for EXPR, or None when gdb has no such symbol.

        Dotted Go names are never handed to gdb's Go parser unquoted: gdb 13 crashes (SIGSEGV) on
        `main.nope` once package main's symbols are loaded. Every `a.b.c` chain is rewritten to
        quote its longest prefix that is a known symbol (`'main.srv'.sessions`), and an expression
        naming no known symbol is not evaluated at all."""
        out, pos = [], 0
        for m in _CHAIN_RE.finditer(expr):
            chain = m.group("chain")
            if chain is None:
                continue
            before = expr[:m.start()].rstrip()
            if before.endswith((".", "->")):
                continue  # a field of something evaluated before: gdb handles it
            rewritten = _quote_chain(chain)
            if rewritten is None:
                return None
            out.append(expr[pos:m.start()])
            out.append(rewritten)
            pos = m.end()
        out.append(expr[pos:])
        return gdb.parse_and_eval("".join(out))

    def resolve(self, expr):
        try:
            val = self._evaluate(expr)
        except gdb.MemoryError as e:
            raise common.UserError("%s: %s" % (expr, _one_line(e)))
        except gdb.error as e:
            if not _gomap_can_resolve(expr):
                msg = _one_line(e)
                raise common.UserError(msg if expr in msg else "%s: %s" % (expr, msg))
            val = None  # a package-level path gdb's Go parser does not take: gomap follows it in DWARF
        if val is None:
            return None  # not something gdb knows: gomap resolves globals and dotted paths itself
        return self._map_of(expr, val)

    def _map_of(self, expr, val):
        if val.is_optimized_out:
            raise common.UserError("%s is optimized out here (build with -gcflags='all=-N -l' to keep locals)" % expr)
        ty = val.type
        name = _map_type_name(ty)
        if name is None and ty.strip_typedefs().code == gdb.TYPE_CODE_PTR:
            # A pointer to a map variable (&m, a *map field): follow it once.
            target = ty.strip_typedefs().target()
            if _map_type_name(target) is not None:
                try:
                    val = val.dereference()
                    val.fetch_lazy()
                except gdb.error as e:
                    raise common.UserError("%s: %s" % (expr, _one_line(e)))
                ty = val.type
                name = _map_type_name(ty)
        if name is None or not LAYER.is_map_type(name):
            raise common.UserError("%s has type %s, not a map" % (expr, _type_text(ty)))
        try:
            return int(val) & 0xFFFFFFFFFFFFFFFF, name
        except gdb.error as e:
            raise common.UserError("%s: %s" % (expr, _one_line(e)))


# A quoted string/char (skipped) or a chain of identifiers joined by dots (Go package paths may
# contain '/' and '.', as in github.com/org/pkg.cache).
_CHAIN_RE = re.compile(r"""'[^']*'|"(?:\\.|[^"\\])*"|(?P<chain>(?<![\w$])[A-Za-z_][\w/-]*(?:\.[A-Za-z_][\w/-]*)+)""")


def _gomap_can_resolve(expr):
    """Whether gomap's own resolver (package-level variables and dotted paths through their
    fields, read from DWARF) could still make sense of EXPR after gdb failed on it; if not,
    gdb's error is the one to show (a local, an operator, a missing field of a local)."""
    chain = expr.strip().strip("'")
    if not re.fullmatch(r"[A-Za-z_][\w/-]*(?:\.[A-Za-z_][\w/-]*)+", chain):
        return False
    parts = chain.split(".")
    for i in range(len(parts), 0, -1):
        sym = _symbol(".".join(parts[:i]))
        if sym is not None:
            return not sym.needs_frame  # a global: gomap's DWARF walk; a local: gdb's word
    return True


def _symbol(name):
    """A variable (local, argument or global) named `name` as gdb knows it, or None."""
    sym = None
    try:
        sym = gdb.lookup_symbol(name)[0]
    except gdb.error:  # no frame selected
        pass
    if sym is None:
        for lookup in (gdb.lookup_global_symbol, gdb.lookup_static_symbol):
            try:
                sym = lookup(name)
            except gdb.error:
                sym = None
            if sym is not None:
                break
    if sym is not None and (sym.is_variable or sym.is_argument):
        return sym
    return None


def _quote_chain(chain):
    """`main.srv.sessions` -> `'main.srv'.sessions` (longest symbol prefix quoted), or None."""
    parts = chain.split(".")
    for i in range(len(parts), 0, -1):
        head = ".".join(parts[:i])
        if _symbol(head) is not None:
            return "'%s'" % head + "".join("." + p for p in parts[i:])
    return None


def _type_text(ty):
    try:
        return ty.name or str(ty)
    except Exception:
        return "value of unknown type"


def _map_type_name(ty):
    """The name of a Go map type for gomap ("map[K]V", or a named map type such as main.Index), or
    None. Go's DWARF gives a map type as a typedef `map[K]V` of a pointer to the runtime header; a
    named map type is a typedef of its own (main.Index) straight to that pointer, which only the
    core can tell from a typedef of some other pointer."""
    for _ in range(8):
        if ty is None or ty.code != gdb.TYPE_CODE_TYPEDEF:
            return None
        name = ty.name or ""
        if name.startswith("map["):
            return name
        if name and ty.strip_typedefs().code == gdb.TYPE_CODE_PTR and _is_map_typedef(name):
            return name
        ty = ty.target()
    return None


_MAP_TYPEDEFS = {}  # (executable, typedef name) -> whether the core says it is a map type


def _is_map_typedef(name):
    key = (BACKEND.binary_path(), name)
    known = _MAP_TYPEDEFS.get(key)
    if known is None:
        if len(_MAP_TYPEDEFS) > 10000:
            _MAP_TYPEDEFS.clear()
        known = _MAP_TYPEDEFS[key] = bool(LAYER.is_map_type(name))
    return known


BACKEND = GdbBackend()
LAYER = common.CommandLayer(BACKEND)


# ---- the error boundary -----------------------------------------------------------------------------

def _guarded(fn, *args):
    try:
        return fn(*args)
    except gdb.GdbError:
        raise
    except common.UserError as e:
        raise gdb.GdbError(_one_line(e))
    except KeyboardInterrupt:
        raise gdb.GdbError("interrupted")
    except gdb.error as e:
        raise gdb.GdbError("gomap: " + _one_line(e))
    except Exception as e:  # never a traceback in the user's gdb
        raise gdb.GdbError("gomap: internal error: %s: %s" % (type(e).__name__, _one_line(e)))


def _write(text):
    if text and not text.endswith("\n"):
        text += "\n"
    # In pieces, so Ctrl-C (or `q` at the pager) stops a million-line dump promptly.
    start = 0
    try:
        while start < len(text):
            end = text.rfind("\n", start, start + (1 << 16)) + 1
            if end <= start:  # inside one long line (a JSON document)
                end = start + (1 << 16)
            gdb.write(text[start:end])
            start = end
    except KeyboardInterrupt:
        if start and text[start - 1] != "\n":
            gdb.write("\n")  # the error line starts on a line of its own
        raise


def _set_status(status):
    try:
        gdb.set_convenience_variable("gomap_status", int(status))
    except Exception:
        pass


# ---- commands -------------------------------------------------------------------------------------

_SUBCOMMANDS = ("show", "buckets", "check", "maps", "layout")
if common._native is None:
    common._native_error = None  # sourcing again (after a build) tries to load the module again
_native = common.load_native()


def _help(sub):
    if _native is None:
        return None
    try:
        return _native.help_text([sub] if sub else [])
    except Exception:
        return None


class GomapPrefix(gdb.Command):
    """Decode Go maps (hash maps and swiss tables) in this process or core file.

Usage: gomap SUBCOMMAND [OPTIONS] ARGS   (gomap SUBCOMMAND --help for its options)
EXPR is anything gdb can evaluate to a map (a global such as main.cache, a local,
a field such as s.index), or 0xADDR with --type 'map[K]V'.
After each command $gomap_status holds its exit status (check: 1 = findings at warning or above).
A pretty-printer is registered too: print m shows map[K]V len=N {k: v, ...} (set print elements N).
gomap watch EXPR [--count N] reports writes, deletes and growth of one map in a live process.
Memory comes straight from the core file or /proc/PID/mem when gdb is on one (set gomap-direct off
to read through gdb instead, as for remote targets)."""

    def __init__(self):
        super().__init__("gomap", gdb.COMMAND_DATA, prefix=True)

    def invoke(self, arg, from_tty):
        words = arg.split()
        if words and words[0] not in ("help", "-h", "--help"):
            raise gdb.GdbError('gomap: unknown subcommand "%s"; try "help gomap"' % words[0])
        _write(self.__doc__ + "\n\nSubcommands: show, buckets, check, maps, layout, watch.")


def _option_words(sub):
    if sub == "watch":
        return ["--count", "--type", "--help"]
    return sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", _help(sub) or "")))


def _local_map_names(prefix):
    out = []
    try:
        block = gdb.selected_frame().block()
    except (gdb.error, RuntimeError):
        return out
    seen = set()
    while block is not None and not block.is_global:
        for sym in block:
            if sym.is_variable or sym.is_argument:
                try:
                    if sym.name not in seen and sym.name.startswith(prefix) and _map_type_name(sym.type):
                        seen.add(sym.name)
                        out.append(sym.name)
                except Exception:
                    pass
        if block.function is not None:
            break
        block = block.superblock
    return out


class GomapSub(gdb.Command):
    sub = None

    def __init__(self):
        super().__init__("gomap " + self.sub, gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        _set_status(2)  # the CLI's exit status for an error; a command that runs sets its own
        _guarded(self._invoke, arg)

    def _invoke(self, arg):
        try:
            argv = gdb.string_to_argv(arg)
        except Exception as e:
            raise common.UserError("cannot parse arguments: %s" % e)
        status, out = LAYER.run([self.sub] + argv)
        _set_status(status)
        _write(out)

    def complete(self, text, word):
        return _complete(self.sub, text, word)


def _complete(sub, text, word):
    """Options, then locals and package-level variables holding maps. gdb breaks words at '-' and
    '/' (and more), so candidates are computed for the whole last token and cut to `word`."""
    try:
        word = word or ""
        token = "" if not text or text[-1].isspace() else text.split()[-1]
        if not token.endswith(word):
            token = word
        if token.startswith("-"):
            cands = [o for o in _option_words(sub) if o.startswith(token)]
        elif sub in ("maps", "layout"):
            cands = []
        else:
            cands = _local_map_names(token) + LAYER.complete(token, ["gomap", sub, token])
        cut = len(token) - len(word)
        return [c[cut:] for c in cands]
    except Exception:
        return []


def _make_sub(name):
    text = _help(name)
    if text:
        # gdb lists the first line in `help gomap`: clap's about text, unwrapped.
        about, _, rest = text.strip("\n").partition("\n\n")
        doc = " ".join(about.split()) + "\n\n" + rest
    else:
        doc = "gomap %s: see help gomap (the native module is not built)" % name
    return type("Gomap_" + name, (GomapSub,), {"sub": name, "__doc__": doc})


# ---- watch ------------------------------------------------------------------------------------------

# (symbol, event kind, which integer argument holds the map header (0 = receiver/1st, 1 = 2nd,
# 2 = 3rd), how many integer argument registers the function takes). Go's register ABI (1.17+):
# integer arguments in RAX, RBX, RCX, RDI, RSI, R8.. (amd64) or R0, R1, R2.. (arm64); at a
# function's first instruction they are still in those registers (a string takes two).
_WATCH_FUNCS = [
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

_ARG_REGS = {
    "amd64": ("rax", "rbx", "rcx", "rdi", "rsi"),
    "arm64": ("x0", "x1", "x2", "x3", "x4"),
}
_SP_REG = {"amd64": "rsp", "arm64": "sp"}
_G_REG = {"amd64": "r14", "arm64": "x28"}  # the current goroutine, in Go's register ABI


def _arch():
    try:
        name = gdb.selected_frame().architecture().name()
    except (gdb.error, RuntimeError):
        name = gdb.selected_inferior().architecture().name() if hasattr(gdb.selected_inferior(), "architecture") else ""
    if "x86-64" in name or "x86_64" in name:
        return "amd64"
    if "aarch64" in name:
        return "arm64"
    return None


def _function_address(name):
    for lookup in (gdb.lookup_global_symbol, gdb.lookup_static_symbol):
        try:
            sym = lookup(name)
        except gdb.error:
            sym = None
        if sym is not None and sym.addr_class == gdb.SYMBOL_LOC_BLOCK:
            try:
                return int(sym.value().address)
            except gdb.error:
                pass
    try:
        return int(gdb.parse_and_eval("&'%s'" % name))
    except gdb.error:
        return None


def _key_type(map_type):
    """K of "map[K]V" (brackets balanced), or ""."""
    if not map_type.startswith("map["):
        return ""
    depth = 0
    for i, c in enumerate(map_type[3:], 3):
        depth += {"[": 1, "]": -1}.get(c, 0)
        if depth == 0:
            return map_type[4:i]
    return ""


def _u64(reg_value):
    return int(reg_value) & 0xFFFFFFFFFFFFFFFF


class _Watch:
    """One `gomap watch`: the breakpoints, the count, the lines printed."""

    def __init__(self, addr, type_name, impl, count, expr, arch):
        self.addr, self.type_name, self.impl, self.count, self.expr = addr, type_name, impl, count, expr
        self.arch = arch
        self.last_sig = self.last_state = None
        self.refired = 0
        self.events = 0
        self.breakpoints = []
        self.errors = []
        self.interrupted = False

    def describe_hit(self, kind, regs, frame, state_text):
        parts = ["gomap watch: #%d %s" % (self.events, kind)]
        try:
            fname = frame.name() or ""
            if kind == "grow":
                parts.append("(%s)" % fname.rsplit(".", 1)[-1])
            elif kind == "evacuate":
                parts.append("old bucket %d" % _u64(frame.read_register(regs[2])))
            elif kind in ("write", "delete") and fname.endswith(("_fast64", "_fast32")):
                # The key itself is the third integer argument of the fast variants.
                bits = 32 if fname.endswith("_fast32") else 64
                key = _u64(frame.read_register(regs[2])) & ((1 << bits) - 1)
                if _key_type(self.type_name) in ("int", "int64", "int32", "rune") and key >> (bits - 1):
                    key -= 1 << bits
                parts.append("key %d" % key)
            elif kind in ("write", "delete") and fname.endswith("_faststr"):
                ptr, n = _u64(frame.read_register(regs[2])), _u64(frame.read_register(regs[3]))
                data = bytes(gdb.selected_inferior().read_memory(ptr, min(n, 64))) if n else b""
                text = json.dumps(data.decode("utf-8", "replace"), ensure_ascii=False)
                parts.append("key %s%s" % (text, "..." if n > 64 else ""))
        except Exception:
            pass
        try:
            caller = frame.older()
            while caller is not None and (caller.name() or "").startswith(("runtime.", "internal/runtime/")):
                caller = caller.older()
            if caller is not None:
                sal = caller.find_sal()
                where = caller.name() or "??"
                if sal.symtab is not None:
                    where += " (%s:%d)" % (os.path.basename(sal.symtab.filename), sal.line)
                parts.append("from " + where)
        except Exception:
            pass
        parts.append(state_text)
        return " ".join(p for p in parts if p)

    def state(self):
        """The map's state before this event, as (text, everything the core reported about it):
        len and, for classic maps, the evacuation progress."""
        _STATE["generation"] += 1  # the process ran since the last look
        try:
            status, out = LAYER.run(["show", "%#x" % self.addr, "--type", self.type_name, "--json", "--limit", "1"])
            doc = json.loads(out)
            st = doc.get("stats", {})
            text = "len %s" % doc.get("len")
            if doc.get("impl") == "classic":
                text += " B %s" % st.get("B")
                if st.get("growing"):
                    text += " growing: %s/%s old buckets evacuated (nevacuate %s)" % (
                        st.get("evacuated_old"), st.get("old_buckets"), st.get("nevacuate"))
            else:
                if "tables" in st:
                    text += " tables %s capacity %s growthLeft %s" % (st.get("tables"), st.get("capacity"), st.get("growth_left"))
            return "[" + text + "]", out
        except Exception as e:
            return "[state unavailable: %s]" % _one_line(e), None

    def hit(self, bp, frame):
        """One breakpoint hit on this map; True to stop the program."""
        # A signal delivered to a thread stopped at the breakpoint (Go's preemption SIGURG, sent
        # all the more because gdb holds the thread) runs the function's first instruction again,
        # sometimes after the goroutine moved to another thread: the same goroutine, stack
        # pointer, arguments and map state hit the breakpoint twice or more. Those are one call.
        # (Two genuine identical calls in a row that leave the map as it was, such as m[k] = 1;
        # m[k] = 2 from one frame, are folded too: the value is stored after mapassign returns.)
        sig = (_u64(frame.read_register(_G_REG[self.arch])), bp.func, _u64(frame.read_register(_SP_REG[self.arch])),
               tuple(_u64(frame.read_register(r)) for r in bp.regs))  # its arguments only
        text, state = self.state()
        if sig == self.last_sig and state == self.last_state and state is not None:
            self.refired += 1
            return False
        self.last_sig, self.last_state = sig, state
        self.events += 1
        try:
            line = self.describe_hit(bp.kind, bp.regs, frame, text)
        except Exception as e:
            line = "gomap watch: #%d %s (%s)" % (self.events, bp.kind, _one_line(e))
        gdb.write(line + "\n")
        gdb.flush()
        return self.events >= self.count

    def remove(self):
        for bp in self.breakpoints:
            try:
                if bp.is_valid():
                    bp.delete()
            except Exception:
                pass
        self.breakpoints = []


class _WatchBreakpoint(gdb.Breakpoint):
    def __init__(self, watch, func, kind, argi, regs, addr):
        super().__init__("*%#x" % addr, gdb.BP_BREAKPOINT, internal=True)
        self.silent = True
        self.watch, self.func, self.kind, self.regs = watch, func, kind, regs
        self.reg = regs[argi]

    def stop(self):
        try:
            frame = gdb.selected_frame()
            if _u64(frame.read_register(self.reg)) != self.watch.addr:
                return False
            if self.watch.events >= self.watch.count:
                return True
            return self.watch.hit(self, frame)
        except KeyboardInterrupt:  # Ctrl-C while we were deciding: stop here
            self.watch.interrupted = True
            return True
        except BaseException as e:  # a broken stop() would stop the process with a traceback
            self.watch.errors.append(_one_line(e))
            return False


class GomapWatch(gdb.Command):
    """Print every write, delete and growth step of one map while the program runs (live processes only).

Usage: gomap watch EXPR [--count N] [--type 'map[K]V']
Sets breakpoints on the entry of the runtime's map write functions of this Go version
(runtime.mapassign*, runtime.mapdelete*, runtime.mapclear, and growth: hashGrow/evacuate for
classic maps, (*Map).growToSmall/growToTable and (*table).rehash/grow/split for swiss maps),
conditioned on the map's header address, then continues. Each event prints a line with the
caller and the map's state before it (len; for classic maps the evacuation progress).
After N events (default 10) the program stops inside the runtime function of the last event
(bt shows who wrote); the breakpoints are removed. Ctrl-C stops early.
Every map write of the whole program traps into gdb while watching: expect it to run slower."""

    def __init__(self):
        super().__init__("gomap watch", gdb.COMMAND_BREAKPOINTS)

    def invoke(self, arg, from_tty):
        _guarded(self._invoke, arg)

    def complete(self, text, word):
        return _complete("watch", text, word)

    def _parse(self, arg):
        argv = gdb.string_to_argv(arg)
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
                        raise common.UserError("gomap watch: %s needs a value" % a)
                    v = argv[i]
                if a == "--type":
                    type_name = v
                else:
                    try:
                        count = int(v, 0)
                    except ValueError:
                        raise common.UserError("gomap watch: --count wants a number, not %r" % v)
                    if count < 1:
                        raise common.UserError("gomap watch: --count must be at least 1")
            elif a.startswith("-") and not a[1:2].isdigit():
                raise common.UserError("gomap watch: unknown option %s (see help gomap watch)" % a)
            else:
                exprs.append(a)
            i += 1
        if len(exprs) != 1:
            raise common.UserError("usage: gomap watch EXPR [--count N] [--type 'map[K]V']")
        return exprs[0], count, type_name

    def _invoke(self, arg):
        parsed = self._parse(arg)
        if parsed is None:
            _write(self.__doc__)
            return
        expr, count, type_name = parsed
        inf = gdb.selected_inferior()
        if BACKEND.core_file():
            raise common.UserError("gomap watch needs a live process; this is a core file (use gomap show / check)")
        if not inf.pid:
            raise common.UserError("gomap watch needs a live process: start it (run) or attach to it first")
        arch = _arch()
        regs = _ARG_REGS.get(arch)
        if regs is None:
            raise common.UserError("gomap watch supports amd64 and arm64 Go programs only")
        argv = ["show", expr, "--json", "--limit", "1"] + (["--type", type_name] if type_name else [])
        _, out = LAYER.run(argv)
        doc = json.loads(out)
        addr = int(doc["address"], 16)
        if addr == 0:
            raise common.UserError("%s is a nil map: nothing to watch yet (a write to a nil map panics)" % expr)
        w = _Watch(addr, doc["type"], doc.get("impl"), count, expr, arch)
        found = []
        try:
            for func, kind, argi, nargs in _WATCH_FUNCS:
                faddr = _function_address(func)
                if faddr is None:
                    continue
                w.breakpoints.append(_WatchBreakpoint(w, func, kind, argi, regs[:nargs], faddr))
                found.append(func)
            if not any(k == "write" for f, k, _, _ in _WATCH_FUNCS if f in found):
                raise common.UserError("no runtime map write function found in the symbol table (stripped binary?)")
            _write("gomap watch: %s %s at %#x (%s, %s): %d breakpoints, stopping after %d event%s"
                   % (expr, doc["type"], addr, doc.get("impl"), doc.get("go_version"), len(found), count,
                      "" if count == 1 else "s"))
            try:
                gdb.execute("continue")
            except gdb.error as e:
                if w.events < count:
                    raise common.UserError("gomap watch: %s after %d event(s)" % (_one_line(e), w.events))
        finally:
            w.remove()
        _STATE["generation"] += 1
        if w.errors:
            _write("gomap watch: %d breakpoint error(s), first: %s" % (len(w.errors), w.errors[0]))
        if w.refired:
            _write("gomap watch: %d repeated hit%s of the same call not counted (a signal such as Go's "
                   "preemption runs a breakpoint's instruction again)" % (w.refired, "" if w.refired == 1 else "s"))
        if w.events >= count:
            _write("gomap watch: %d event%s seen; stopped in the runtime (bt shows the writer)"
                   % (w.events, "" if w.events == 1 else "s"))
        else:
            _write("gomap watch: %s after %d event%s" % ("interrupted" if w.interrupted else "stopped", w.events,
                                                         "" if w.events == 1 else "s"))


# ---- the pretty-printer ------------------------------------------------------------------------------

class GoMapPrinter:
    def __init__(self, val, type_name):
        self.val, self.type_name = val, type_name

    def to_string(self):
        try:
            return self._summary()
        except common.UserError as e:
            return "<gomap: %s>" % _one_line(e)
        except KeyboardInterrupt:
            return "<gomap: interrupted>"
        except Exception as e:
            return "<gomap: %s>" % _one_line(e)

    def _summary(self):
        try:
            addr = int(self.val) & 0xFFFFFFFFFFFFFFFF
        except gdb.error as e:
            return "<gomap: %s>" % _one_line(e)
        if addr == 0:
            return "%s len=0 {} (nil)" % self.type_name
        limit = None
        try:
            limit = gdb.parameter("print elements")
        except Exception:
            pass
        if not limit or limit < 0 or limit > MAX_PRINT_ELEMENTS:
            limit = MAX_PRINT_ELEMENTS
        length, _impl, items, more = LAYER.summary(addr, self.type_name, int(limit))
        return common.format_map_summary(self.type_name, length, items, more)


class GoMapPrettyPrinter(gdb.printing.PrettyPrinter):
    def __init__(self):
        super().__init__("gomap")

    def __call__(self, val):
        try:
            ty = val.type
            if ty.code != gdb.TYPE_CODE_TYPEDEF or ty.strip_typedefs().code != gdb.TYPE_CODE_PTR:
                return None  # every Go map type is a typedef of a pointer: the cheap test first
            name = _map_type_name(ty)
            return GoMapPrinter(val, name) if name else None
        except Exception:
            return None


# ---- registration (idempotent) ---------------------------------------------------------------------

def _bump(*_args):
    _STATE["generation"] += 1


def _connect_events():
    for registry, handler in _STATE["handlers"]:
        try:
            registry.disconnect(handler)
        except Exception:
            pass
    _STATE["handlers"] = []
    for name in ("stop", "cont", "new_objfile", "clear_objfiles", "exited", "memory_changed", "inferior_call"):
        registry = getattr(gdb.events, name, None)
        if registry is not None:
            handler = _on_new_objfile if name == "new_objfile" else _bump
            registry.connect(handler)
            _STATE["handlers"].append((registry, handler))


def _is_go_objfile(objfile):
    """A Go executable or shared library: it has the Go runtime's version variable."""
    if objfile.owner is not None:
        return False  # a separate debug file: its owner gets the printer
    for lookup in ("lookup_global_symbol", "lookup_static_symbol"):
        try:
            if getattr(objfile, lookup)("runtime.buildVersion") is not None:
                return True
        except Exception:
            pass
    return False


def _printer_for(objfile):
    """Registers the map printer on one Go objfile (replacing an earlier sourcing's)."""
    try:
        if not objfile.is_valid() or not _is_go_objfile(objfile):
            return
        objfile.pretty_printers[:] = [p for p in objfile.pretty_printers if getattr(p, "name", None) != "gomap"]
        objfile.pretty_printers.append(GoMapPrettyPrinter())
    except Exception:
        pass


def _on_new_objfile(event):
    _bump()
    _printer_for(event.new_objfile)


def _register_printers():
    # Per objfile, so the printer goes with the program gdb loads (file, run, attach, core);
    # gdb consults every objfile's printers for every value, so the executable's is enough.
    gdb.pretty_printers[:] = [p for p in gdb.pretty_printers if getattr(p, "name", None) != "gomap"]
    for objfile in gdb.objfiles():
        _printer_for(objfile)


class GomapDirect(gdb.Parameter):
    """When on (the default), gomap reads a local core file or /proc/PID/mem itself, much faster
than asking gdb for memory. When off, every read goes through gdb's memory API, as it always does
for remote targets. Nothing is ever written either way."""

    set_doc = "Set whether gomap reads the core file or /proc/PID/mem directly."
    show_doc = "Show whether gomap reads the core file or /proc/PID/mem directly."

    def __init__(self):
        super().__init__("gomap-direct", gdb.COMMAND_DATA, gdb.PARAM_BOOLEAN)
        self.value = _STATE.get("direct", True)

    def get_set_string(self):
        _STATE["direct"] = bool(self.value)
        return ""

    def get_show_string(self, svalue):
        return "gomap reads the core file or /proc/PID/mem directly: %s." % svalue


def _register():
    GomapPrefix()
    for sub in _SUBCOMMANDS:
        _make_sub(sub)()
    GomapWatch()
    GomapDirect()
    _connect_events()
    _register_printers()
    _STATE["generation"] += 1  # a re-source starts from fresh sessions
    if _native is not None:
        gdb.write("gomap: loaded %s (gomap %s)\n" % (_native.path, getattr(_native, "__version__", "?")))
    else:
        gdb.write("gomap: %s\n" % common.native_error())


_register()
