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

    def thread_registers(self):
        """(lwp, rip, rsp, rbp) of every stopped thread (x86-64), read from each thread's newest
        frame; the selected thread and frame are restored."""
        out = []
        try:
            thread, frame = gdb.selected_thread(), gdb.selected_frame()
        except gdb.error:
            return out
        if thread is None:
            return out
        try:
            for th in gdb.selected_inferior().threads()[:4096]:
                if not th.is_valid() or th.is_running() or th.is_exited():
                    continue
                th.switch()
                f = gdb.newest_frame()
                regs = [int(f.read_register(r)) & 0xFFFFFFFFFFFFFFFF for r in ("rip", "rsp", "rbp")]
                out.append((th.ptid[1], regs[0], regs[1], regs[2]))
        except (gdb.error, ValueError):
            out = []
        finally:
            try:
                thread.switch()
                frame.select()
            except gdb.error:
                pass
        return out

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

_SUBCOMMANDS = ("show", "buckets", "check", "maps", "holders", "layout")
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
A pretty-printer is registered too: print m shows map[K]V len=N = {[k] = v, ...}, its entries as
children (set print elements 2N shows N entries; IDEs expand maps, structs and nested maps over MI).
gomap watch EXPR [--count N] reports writes, deletes and growth of one map in a live process.
Memory comes straight from the core file or /proc/PID/mem when gdb is on one (set gomap-direct off
to read through gdb instead, as for remote targets)."""

    def __init__(self):
        super().__init__("gomap", gdb.COMMAND_DATA, prefix=True)

    def invoke(self, arg, from_tty):
        words = arg.split()
        if words and words[0] not in ("help", "-h", "--help"):
            raise gdb.GdbError('gomap: unknown subcommand "%s"; try "help gomap"' % words[0])
        _write(self.__doc__ + "\n\nSubcommands: show, buckets, check, maps, holders, layout, watch.")


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


class _GdbFrame:
    """The frame of a watch breakpoint hit, as common.Watch reads it."""

    def __init__(self, frame):
        self.frame = frame

    def reg(self, name):
        return int(self.frame.read_register(name)) & 0xFFFFFFFFFFFFFFFF

    def name(self):
        return self.frame.name() or ""

    def read(self, addr, size):
        return bytes(gdb.selected_inferior().read_memory(addr, size))

    def callers(self):
        caller = self.frame.older()
        for _ in range(64):
            if caller is None:
                return
            sal = caller.find_sal()
            where = None
            if sal.symtab is not None:
                where = "%s:%d" % (os.path.basename(sal.symtab.filename), sal.line)
            yield caller.name() or "??", where
            caller = caller.older()


class _Watch(common.Watch):
    def __init__(self, *args):
        super().__init__(*args)
        self.breakpoints = []
        self.interrupted = False

    def state(self):
        _STATE["generation"] += 1  # the process ran since the last look
        return super().state()

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
            frame = _GdbFrame(gdb.selected_frame())
            if frame.reg(self.reg) != self.watch.addr:
                return False
            if self.watch.events >= self.watch.count:
                return True
            stop, line = self.watch.hit(self.func, self.kind, self.regs, frame)
            if line:
                gdb.write(line + "\n")
                gdb.flush()
            return stop
        except KeyboardInterrupt:  # Ctrl-C while we were deciding: stop here
            self.watch.interrupted = True
            return True
        except BaseException as e:  # a broken stop() would stop the process with a traceback
            self.watch.errors.append(_one_line(e))
            return False


class GomapWatch(gdb.Command):
    __doc__ = common.WATCH_HELP

    def __init__(self):
        super().__init__("gomap watch", gdb.COMMAND_BREAKPOINTS)

    def invoke(self, arg, from_tty):
        _guarded(self._invoke, arg)

    def complete(self, text, word):
        return _complete("watch", text, word)

    def _parse(self, arg):
        return common.parse_watch_args(gdb.string_to_argv(arg))

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
        regs = common.ARG_REGS.get(arch)
        if regs is None:
            raise common.UserError("gomap watch supports amd64 and arm64 Go programs only")
        doc = common.watch_target(LAYER, expr, type_name)
        addr = int(doc["address"], 16)
        w = _Watch(LAYER, addr, doc["type"], count, arch)
        found = []
        try:
            for func, kind, argi, nargs in common.WATCH_FUNCS:
                faddr = _function_address(func)
                if faddr is None:
                    continue
                w.breakpoints.append(_WatchBreakpoint(w, func, kind, argi, regs[:nargs], faddr))
                found.append(func)
            common.check_watch_functions(found)
            _write(common.watch_banner(expr, doc, len(found), count))
            try:
                gdb.execute("continue")
            except gdb.error as e:
                if w.events < count:
                    raise common.UserError("gomap watch: %s after %d event(s)" % (_one_line(e), w.events))
        finally:
            w.remove()
        _STATE["generation"] += 1
        for line in w.summary_lines(interrupted=w.interrupted):
            _write(line)


# ---- the pretty-printer ------------------------------------------------------------------------------

class GoMapPrinter:
    """`map[K]V len=N` with the entries as children (key, value, key, value, ...) under gdb's 'map'
    display hint, so print, `set print pretty`, `set print elements`, MI varobjs (IDEs) and
    `explore` all work. Keys and values are gdb values of their Go types at the slot addresses
    the core reports (structs expand into fields, nested maps come back through this printer);
    where gdb has no useful type (interfaces, slices, funcs) the child is the core's text.
    Children are produced lazily, a page at a time: gdb stops asking after `print elements`."""

    def __init__(self, val, type_name):
        self.val, self.type_name = val, type_name

    def _addr(self):
        return int(self.val) & 0xFFFFFFFFFFFFFFFF

    def to_string(self):
        try:
            addr = self._addr()
            if addr == 0:
                return "%s nil" % self.type_name
            length = LAYER.summary(addr, self.type_name, 0)[0]
            return "%s len=%d" % (self.type_name, length)
        except common.UserError as e:
            return "<gomap: %s>" % _one_line(e)
        except KeyboardInterrupt:
            return "<gomap: interrupted>"
        except Exception as e:
            return "<gomap: %s>" % _one_line(e)

    def display_hint(self):
        return "map"

    def children(self):
        try:
            addr = self._addr()
        except Exception:
            return iter(())
        if addr == 0:
            return iter(())
        return self._children(addr)

    def _children(self, addr):
        try:
            kname, ksize, ktyped, ename, esize, etyped = LAYER.map_info(self.type_name)
            ktype = _gdb_type(kname, ksize) if ktyped else None
            etype = _gdb_type(ename, esize) if etyped else None
            render = (0 if ktype is not None else 1) | (0 if etype is not None else 2)
            skip, page = 0, 32
            while skip < MAX_PRINT_ELEMENTS:
                _len, items, more = LAYER.entries(addr, self.type_name, skip, min(page, MAX_PRINT_ELEMENTS - skip), render)
                for i, (ka, ea, ktext, etext) in enumerate(items, skip):
                    yield "[%d]" % (2 * i), _typed_value(ktype, ka, ktext)
                    yield "[%d]" % (2 * i + 1), _typed_value(etype, ea, etext)
                if not more or not items:
                    return
                skip += len(items)
                page = min(page * 4, 4096)
        except (common.UserError, gdb.error) as e:
            yield "<gomap>", "<gomap: %s>" % _one_line(e)
        except KeyboardInterrupt:
            return


def _typed_value(ty, addr, text):
    if ty is None:
        return text
    return gdb.Value(addr).cast(ty.pointer()).dereference()


_GDB_TYPES = {}  # (executable, Go type name) -> gdb.Type or None


def _gdb_type(name, size):
    """gdb's type for a Go type name from the program's DWARF, or None. Go's DWARF names every
    type; gdb finds named ones as symbols (its own C `int` would shadow Go's, so symbols first),
    and pointer and array types are built from their element's. A size that does not match what
    the core reported means gdb picked another type of that name: no type then."""
    key = (BACKEND.binary_path(), name)
    if key not in _GDB_TYPES:
        if len(_GDB_TYPES) > 10000:
            _GDB_TYPES.clear()
        ty = None
        try:
            ty = _lookup_go_type(name, 0)
        except Exception:
            ty = None
        if ty is not None and ty.sizeof != size:
            ty = None
        _GDB_TYPES[key] = ty
    return _GDB_TYPES[key]


def _find_gdb_type(name):
    for domain in (gdb.SYMBOL_VAR_DOMAIN, gdb.SYMBOL_STRUCT_DOMAIN):
        try:
            sym = gdb.lookup_static_symbol(name, domain) or gdb.lookup_global_symbol(name, domain)
        except gdb.error:
            sym = None
        if sym is not None and sym.addr_class == gdb.SYMBOL_LOC_TYPEDEF:
            return sym.type
    for candidate in (name, "struct " + name):
        try:
            return gdb.lookup_type(candidate)
        except gdb.error:
            continue
    return None


def _lookup_go_type(name, depth):
    return common.go_type_by_name(name, _find_gdb_type, lambda t: t.pointer(),
                                  lambda t, n: t.array(n - 1) if n > 0 else t.array(0, -1))


class GoStringPrinter:
    """A Go string as "text" (gdb's own Go support prints the data pointer too). Registered with
    the map printer so that map keys and values print the same whether or not Go's
    runtime-gdb.py, which has a string printer of its own, is loaded; `set print elements`
    cuts it like any string."""

    def __init__(self, val):
        self.val = val

    def to_string(self):
        try:
            n = int(self.val["len"])
            if n <= 0:
                return ""
            return self.val["str"].lazy_string(length=min(n, 1 << 30))
        except gdb.error as e:
            return "<gomap: %s>" % _one_line(e)

    def display_hint(self):
        return "string"


class _TextPrinter:
    """A map child that gdb has no type for (an interface, a slice), as the core rendered it. gdb
    prints a text child as it is; MI turns it into a char array value, shown as text through this."""

    def __init__(self, val):
        self.val = val

    def to_string(self):
        return self.val.string()


class GoMapPrettyPrinter(gdb.printing.PrettyPrinter):
    def __init__(self):
        super().__init__("gomap")

    def __call__(self, val):
        try:
            ty = val.type
            if ty.code == gdb.TYPE_CODE_STRUCT and ty.name == "string":
                return GoStringPrinter(val)
            if ty.code == gdb.TYPE_CODE_ARRAY and ty.name is None and val.address is None \
                    and ty.target().name == "char":
                return _TextPrinter(val)  # a child gomap rendered as text (IDEs get it as a value)
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
    for name in ("stop", "cont", "new_objfile", "clear_objfiles", "exited", "memory_changed", "inferior_call",
                 "before_prompt"):
        registry = getattr(gdb.events, name, None)
        if registry is not None:
            handler = {"new_objfile": _on_new_objfile, "before_prompt": _refront_printers}.get(name, _bump)
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


def _is_go_runtime_printer(p):
    """One of the matchers Go's runtime-gdb.py registers (a closure over its printer class)."""
    for cell in getattr(p, "__closure__", None) or ():
        try:
            if getattr(cell.cell_contents, "__module__", "") and hasattr(cell.cell_contents, "pattern"):
                return getattr(cell.cell_contents, "__name__", "")
        except ValueError:  # an empty cell
            continue
    return ""


def _printer_for(objfile):
    """Registers the map printer first on one Go objfile (replacing an earlier sourcing's): gdb
    asks an objfile's printers in order, and Go's runtime-gdb.py (sourced by hand or auto-loaded
    with the program) registers a map printer of its own there, which would otherwise win."""
    try:
        if not objfile.is_valid():
            return
        printers = objfile.pretty_printers
        if printers and getattr(printers[0], "name", None) == "gomap":
            return
        if not _is_go_objfile(objfile):
            return
        rest = [p for p in printers if getattr(p, "name", None) != "gomap"]
        objfile.pretty_printers = [GoMapPrettyPrinter()] + rest
        if any(_is_go_runtime_printer(p) == "MapTypePrinter" for p in rest):
            _took_over()
    except Exception:
        pass


def _took_over():
    if not _STATE.get("took_over"):
        _STATE["took_over"] = True
        gdb.write("gomap: Go's runtime-gdb.py printers are loaded; gomap's printer takes over Go maps "
                  "(and strings, printed the same way)\n")


class _GoScriptObjfile:
    """The objfile as Go's runtime-gdb.py sees it. That script replaces the objfile's printer list
    (`goobjfile.pretty_printers = []`) and appends its own, which include a map printer: when gdb
    auto-loads it with the program no event follows, so the list it installs starts with gomap's."""

    def __init__(self, real):
        object.__setattr__(self, "_real", real)

    def __getattr__(self, name):
        return getattr(self._real, name)

    def __setattr__(self, name, value):
        if name == "pretty_printers":
            value = [GoMapPrettyPrinter()] + [p for p in value if getattr(p, "name", None) != "gomap"]
            _took_over()
        setattr(self._real, name, value)

    def __bool__(self):
        return True


def _from_go_script():
    try:
        return sys._getframe(2).f_code.co_filename.endswith("runtime-gdb.py")
    except Exception:
        return False


def _wrap_objfile_getters():
    """gdb.current_objfile / gdb.objfiles hand _GoScriptObjfile to runtime-gdb.py only."""
    real = _STATE.setdefault("real_getters", (gdb.current_objfile, gdb.objfiles))

    def current_objfile():
        o = real[0]()
        return _GoScriptObjfile(o) if o is not None and _from_go_script() else o

    def objfiles():
        objs = real[1]()
        return [_GoScriptObjfile(o) for o in objs] if _from_go_script() else objs

    current_objfile.__doc__, objfiles.__doc__ = real[0].__doc__, real[1].__doc__
    gdb.current_objfile, gdb.objfiles = current_objfile, objfiles


def _refront_printers(*_args):
    """Puts gomap's printer first again on every Go objfile: Go's runtime-gdb.py replaces an
    objfile's printer list when gdb auto-loads it (after the new_objfile event) or when it is
    sourced by hand, so this runs on the next objfile, after the event and before each prompt."""
    for objfile in gdb.objfiles():
        _printer_for(objfile)


def _on_new_objfile(event):
    _bump()
    _refront_printers()


def _register_printers():
    # Per objfile, so the printer goes with the program gdb loads (file, run, attach, core);
    # gdb consults every objfile's printers for every value, so the executable's is enough.
    gdb.pretty_printers[:] = [p for p in gdb.pretty_printers if getattr(p, "name", None) != "gomap"]
    for objfile in gdb.objfiles():
        _printer_for(objfile)


# ---- explore -----------------------------------------------------------------------------------

EXPLORE_ENTRIES = 200  # entries `explore` lists for one map


def _explore_map(ex, expr, printer, is_child):
    """One step of gdb's `explore` on a Go map, shaped like gdb's own struct explorer: the entries
    (from the printer's children, so the same typed values `print` shows), scalars inline, anything
    else a numbered choice to explore further (a struct's fields, a nested map's entries)."""
    summary = printer.to_string()  # one read of the header for the whole listing
    if summary.endswith((" nil", " len=0")):
        print("The value of '%s' is a Go map, %s, with no entries.\n" % (expr, summary))
        if is_child:
            ex.Explorer.return_to_parent_value_prompt()
        return False
    print("The value of '%s' is a Go map, %s, with the following entries:\n" % (expr, summary))
    kids = printer.children()
    choices, n = {}, 0
    for (_, key), (_, value) in zip(kids, kids):  # the children alternate key, value
        if n == EXPLORE_ENTRIES:
            print("  ... (only the first %d entries are listed)" % EXPLORE_ENTRIES)
            break
        ktext = str(key)
        if isinstance(value, gdb.Value) and value.type.name != "string" and not ex.Explorer.is_scalar_type(value.type):
            print("  [%s] = <Enter %d to explore this value of type '%s'>" % (ktext, n, value.type))
            choices[str(n)] = ("%s[%s]" % (ex.Explorer.guard_expr(expr), ktext), value)
        else:
            print("  [%s] = %s" % (ktext, value))
        n += 1
    print("")
    if choices:
        choice = input("Enter the entry number of choice: ")
        if choice in choices:
            ex.Explorer.explore_expr(choices[choice][0], choices[choice][1], True)
            return True
        if is_child:
            ex.Explorer.return_to_parent_value()
    elif is_child:
        ex.Explorer.return_to_parent_value_prompt()
    return False


def _hook_explore():
    """gdb's `explore` walks raw types (a Go map is a pointer to the runtime's header): Go maps get
    the entry explorer above instead, everything else gdb's own. Re-sourcing replaces the hook."""
    try:
        from gdb.command import explore as ex
    except Exception:
        return
    own = ex.Explorer.__dict__.get("explore_expr")
    own = getattr(own, "__func__", own)
    original = getattr(own, "_gomap_original", own)

    def explore_expr(expr, value, is_child):
        try:
            printer = GoMapPrettyPrinter()(value)
        except Exception:
            printer = None
        if not isinstance(printer, GoMapPrinter):
            return original(expr, value, is_child)
        while _explore_map(ex, expr, printer, is_child):
            pass
        return None

    explore_expr._gomap_original = original
    ex.Explorer.explore_expr = staticmethod(explore_expr)


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
    _wrap_objfile_getters()
    _register_printers()
    _hook_explore()
    _STATE["generation"] += 1  # a re-source starts from fresh sessions
    if _native is not None:
        gdb.write("gomap: loaded %s (gomap %s)\n" % (_native.path, getattr(_native, "__version__", "?")))
    else:
        gdb.write("gomap: %s\n" % common.native_error())


_register()
