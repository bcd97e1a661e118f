"""gomap for LLDB: decode Go maps in a live process or a core file.

    (lldb) command script import /path/to/gomap/python/gomap_lldb.py
    (lldb) gomap show main.cache --limit 20
    (lldb) gomap show local            # a local of the selected frame (or box.index, a field)
    (lldb) gomap show 0xc000123400 --type 'map[string]int'
    (lldb) target variable main.cache  # len=N; -P 1 shows the entries as children
    (lldb) frame variable              # the map locals of a Go frame (LLDB 19: summaries only)

Everything that decodes a map happens in the Rust core (the `_gomap` native module) through the
debugger-neutral layer in gomap_common.py; this file only tells that layer what LLDB has loaded,
reads memory through LLDB when it cannot read the core file or /proc/PID/mem itself, finds the
selected frame's variables, and registers the command, a type summary, a synthetic children
provider, a frame recognizer and a stop hook.

LLDB 16 has no Go type system: it finds Go variables but cannot give them types, and it lists no
variables in Go frames. Names are therefore resolved from the binary's DWARF by the Rust core
(package-level variables, and the locals of the selected frame from its PC and CFA), and the
formatters get typed values from a small DWARF module of map type names that gomap adds to the
target (see "Go map types and variables LLDB can show" below).
Importing this file again replaces the command and the formatters; nothing is registered twice.
"""

import os
import shutil
import sys

import lldb  # noqa: F401  (only ever run inside LLDB)

_HERE = os.path.dirname(os.path.abspath(globals().get("__file__") or "gomap_lldb.py"))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import gomap_common as common  # noqa: E402

# gomap_common may have been imported from another checkout (e.g. by the gdb front end in the same
# Python): use the one next to this file.
if os.path.dirname(os.path.abspath(common.__file__)) != _HERE:
    import importlib.util as _ilu

    _spec = _ilu.spec_from_file_location("gomap_common", os.path.join(_HERE, "gomap_common.py"))
    common = _ilu.module_from_spec(_spec)
    _spec.loader.exec_module(common)
    sys.modules["gomap_common"] = common

CATEGORY = "gomap"
MAP_TYPE_REGEX = r"^map\["
RENDERED_TYPE_REGEX = r"^(string|\[\].*|interface \{.*)$"  # Go types whose C shape says little
MAX_CHILDREN = 10000  # synthetic children shown for one map (the summary gives the full len)
ELF_CORE = 4


def _one_line(msg):
    lines = [l.strip() for l in str(msg).strip().splitlines() if l.strip()]
    return " ".join(lines) if lines else "unknown error"


# ---- what LLDB has loaded ---------------------------------------------------------------------------

def _mapped_core_files():
    """Core files this LLDB has mapped (LLDB 16 has no SBProcess.GetCoreFile; it mmaps the core)."""
    out = []
    try:
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 6 or not parts[5].startswith("/"):
            continue
        path = parts[5]
        if path in out or path.endswith(" (deleted)"):
            continue
        try:
            with open(path, "rb") as f:
                head = f.read(18)
        except OSError:
            continue
        if len(head) == 18 and head[:4] == b"\x7fELF" and int.from_bytes(head[16:18], "little" if head[5] == 1 else "big") == ELF_CORE:
            out.append(path)
    return out


class LldbBackend(common.Backend):
    name = "lldb"

    def __init__(self):
        self.exe_ctx = None  # the command's execution context, when a command is running
        self.cur_target = None  # the target of the value or frame a formatter is working on
        self.cur_frame = None

    def using(self, target, frame=None):
        """Context for formatters and recognizers, which LLDB calls without `lldb.debugger`."""
        backend = self

        class _Ctx:
            def __enter__(self):
                self.saved = backend.cur_target, backend.cur_frame
                backend.cur_target, backend.cur_frame = target, frame

            def __exit__(self, *exc):
                backend.cur_target, backend.cur_frame = self.saved

        return _Ctx()

    # -- the target -------------------------------------------------------------------------------

    def target(self):
        ctx = self.exe_ctx
        if ctx is not None and ctx.target.IsValid():
            return ctx.target
        if self.cur_target is not None and self.cur_target.IsValid():
            return self.cur_target
        return lldb.debugger.GetSelectedTarget()

    def process(self):
        p = self.target().GetProcess()
        return p if p is not None and p.IsValid() else None

    def frame(self):
        ctx = self.exe_ctx
        if ctx is not None and ctx.frame.IsValid():
            return ctx.frame
        if self.cur_frame is not None and self.cur_frame.IsValid():
            return self.cur_frame
        p = self.process()
        if p is None:
            return None
        f = p.GetSelectedThread().GetSelectedFrame()
        return f if f.IsValid() else None

    def binary_path(self):
        t = self.target()
        if not t.IsValid():
            return None
        exe = t.GetExecutable()
        return exe.fullpath if exe.IsValid() else None

    def _is_core(self):
        p = self.process()
        return p is not None and p.GetPluginName() == "elf-core"

    def _debugger_memory_only(self):
        # GOMAP_MEMORY=debugger: read through LLDB even when the core file or /proc/PID/mem is
        # readable (how remote targets are read; the tests use it to cover that path).
        return os.environ.get("GOMAP_MEMORY") == "debugger"

    def is_core(self):
        """Whether LLDB debugs a core file (however it is read)."""
        return self._is_core()

    def core_path(self):
        if not self._is_core() or self._debugger_memory_only():
            return None
        cores = _mapped_core_files()
        # Several cores mapped (several targets in this LLDB): which is ours is not known, so read
        # through LLDB instead of guessing.
        return cores[0] if len(cores) == 1 else None

    def pid(self):
        p = self.process()
        if p is None or self._is_core() or not p.is_alive or self._debugger_memory_only():
            return None
        if self.target().GetPlatform().GetName() != "host":
            return None  # remote: the pid is on another machine; read through LLDB
        return p.GetProcessID() or None

    def thread_registers(self):
        """(thread id = LWP, pc, sp, fp) of every stopped thread, from each thread's newest frame."""
        p = self.process()
        out = []
        if p is None:
            return out
        for i in range(min(p.GetNumThreads(), 4096)):
            th = p.GetThreadAtIndex(i)
            f = th.GetFrameAtIndex(0)
            if f.IsValid():
                out.append((th.GetThreadID(), f.GetPC(), f.GetSP(), f.GetFP()))
        return out

    def read_memory(self, addr, size):
        p = self.process()
        err = lldb.SBError()
        if p is not None:
            data = p.ReadMemory(addr, size, err)
            if err.Success() and data is not None and len(data) == size:
                return bytes(data)
        # Cores leave out read-only file-backed mappings (.rodata): read those from the executable.
        t = self.target()
        err2 = lldb.SBError()
        data = t.ReadMemory(lldb.SBAddress(addr, t), size, err2)
        if err2.Success() and data is not None and len(data) == size:
            return bytes(data)
        raise IOError(_one_line(err.GetCString() or err2.GetCString() or "cannot read %#x" % addr))

    def memory_generation(self):
        p = self.process()
        if p is None:
            return 0
        return (p.GetProcessID(), p.GetStopID())

    def bias(self, session_dwarf_address):
        t = self.target()
        for name in ("runtime.buildVersion", "runtime.firstmoduledata"):
            link = session_dwarf_address(name)
            if link is None:
                continue
            here = _symbol_load_address(t, name)
            if here is not None:
                return (here - link) & 0xFFFFFFFFFFFFFFFF
        return None

    # -- expressions ----------------------------------------------------------------------------

    def resolve(self, expr):
        """A local of the selected frame (or a field path from one); None lets gomap resolve
        package-level names from DWARF, which says clearly when a name does not exist."""
        head, _, fields = expr.partition(".")
        if not head.isidentifier():
            return None
        frame = self.frame()
        if frame is None:
            return None
        session = LAYER.session()
        try:
            found = [l for l in session.frame_locals(frame.GetPC()) if l[0] == head]
        except Exception:
            return None  # not in a Go function with debug info: only package-level names
        if not found:
            return None
        # The innermost declaration wins (Go DWARF lists outer variables first).
        name, type_id, _type_name, kind, value = found[-1]
        try:
            return self._follow(session, frame, expr, name, type_id, kind, value, fields)
        except common.load_native().GomapError as e:
            raise common.UserError(str(e))  # a local that is not a map: say so, not "no such global"

    def _follow(self, session, frame, expr, name, type_id, kind, value, fields):
        if kind == "cfa":
            addr = (frame.GetCFA() + value) & 0xFFFFFFFFFFFFFFFF
            return session.follow(expr, name, type_id, fields, addr=addr)
        if kind == "addr":
            return session.follow(expr, name, type_id, fields, addr=value & 0xFFFFFFFFFFFFFFFF)
        if kind == "reg":
            reg = _register_value(frame, value)
            if reg is None:
                raise common.UserError("%s is in DWARF register %d, which LLDB cannot read here" % (name, value))
            return session.follow(expr, name, type_id, fields, value=reg)
        raise common.UserError("%s is %s in %s (build with -gcflags='all=-N -l' to keep locals in memory)"
                               % (name, kind, frame.GetFunctionName() or "this frame"))


# DWARF register numbers of the Go architectures LLDB names differently.
_DWARF_REGS = {
    "x86_64": ["rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
               "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"],
}


def _register_value(frame, regno):
    triple = frame.GetThread().GetProcess().GetTarget().GetTriple() or ""
    arch = triple.split("-", 1)[0]
    if arch == "x86_64":
        names = _DWARF_REGS["x86_64"]
        name = names[regno] if regno < len(names) else None
    elif arch in ("aarch64", "arm64"):
        name = "x%d" % regno if regno <= 30 else None
    else:
        name = None
    if name is None:
        return None
    reg = frame.FindRegister(name)
    if not reg.IsValid():
        return None
    err = lldb.SBError()
    v = reg.GetValueAsUnsigned(err, 0)
    return None if err.Fail() else v


def _symbol_load_address(target, name):
    syms = target.FindSymbols(name)
    for i in range(syms.GetSize()):
        sym = syms.GetContextAtIndex(i).GetSymbol()
        if sym.IsValid():
            a = sym.GetStartAddress().GetLoadAddress(target)
            if a != lldb.LLDB_INVALID_ADDRESS:
                return a
    return None


BACKEND = LldbBackend()
LAYER = common.CommandLayer(BACKEND)


# ---- the command --------------------------------------------------------------------------------

_native = common.load_native()

_LONG_HELP = """Decode Go maps (hash maps and swiss tables) in this process or core file.

Usage: gomap SUBCOMMAND [OPTIONS] ARGS      (gomap SUBCOMMAND --help, or help gomap SUBCOMMAND)
Subcommands: show, buckets, check, maps, holders, layout (the same options and JSON as the gomap CLI),
watch (writes, deletes and growth of one map in a live process), help.
EXPR is a package-level variable (main.cache, main.srv.sessions), a local of the selected frame
or a field of one (box.index), or 0xADDR with --type 'map[K]V'.
`target variable main.m` and `frame variable` show maps as map[K]V with a summary (len=N, or nil);
add -P 1 (or more) to see their entries as children: typed values, so structs expand into fields,
pointers are pointers and nested maps expand in turn.
Tab completion: subcommands; with LLDB 18+ also option names, the values of options with a
fixed set (--sort, --roots) or a file (--output), and the names of package-level maps (offered
with the program's functions of the same prefix: LLDB's symbol completer).
LLDB 19's `frame variable` lists map locals but neither expands them (-P) nor selects one by
name: use gomap show NAME, or an IDE (lldb-dap's Locals expand them)."""

_SUBCOMMANDS = ("show", "buckets", "check", "maps", "holders", "layout")


class GomapSubcommand:
    """`gomap SUB ...`: the line goes to the Rust core's own argument grammar."""

    sub = None

    def __init__(self, debugger, internal_dict):
        pass

    def _help(self):
        if self.sub == "watch":
            return common.WATCH_HELP
        return (_native.help_text([self.sub]) if _native is not None else None) or _LONG_HELP

    def get_short_help(self):
        return " ".join(self._help().strip().split("\n\n")[0].split("\n")[0].split())

    def get_long_help(self):
        return self._help()

    def __call__(self, debugger, command, exe_ctx, result):
        _run_command(self.sub, command, exe_ctx, result, debugger)


def _short_letters(specs):
    """A unique one-letter short option per option (LLDB requires one): clap's own short if it has
    one, else the first free letter of the long name, else any free letter."""
    used = {"h"} | {sp[2] for sp in specs if sp[2]}
    out = {}
    for kind, name, short, *_rest in specs:
        if kind == "positional":
            continue
        if not short:
            pool = [c for c in name if c.isalpha()] + [c.upper() for c in name if c.isalpha()] + list("abcdefgijklmnopqrstuvwxyzABCDEFGIJKLMNOPQRSTUVWXYZ")
            short = next((c for c in pool if c not in used), "")
            used.add(short)
        out[name] = short
    return out


class GomapParsedSubcommand(GomapSubcommand):
    """`gomap SUB ...` as an LLDB parsed command (LLDB 18+, `command script add -p`): LLDB knows
    the options from the Rust core's grammar, so Tab completes option names, the values of
    options with a fixed set of values (--sort, --roots) and file names (--output, --picture);
    `help gomap SUB` lists them. The parsed options are handed back to the same grammar."""

    def __init__(self, debugger, internal_dict):
        specs = (_native.options(self.sub) if _native is not None else None) or []
        shorts = _short_letters(specs)
        self._defs, self._kinds, self._values, self._positional = {}, {}, [], []
        for kind, name, _short, value_name, help_, possible, required, multiple in specs:
            if kind == "positional":
                self._positional.append((value_name or name, required, multiple))
                continue
            # A flag has no value_type (LLDB 19 gives every option with one an argument).
            d = {"short_option": shorts[name], "required": False, "help": help_ or name}
            if kind == "option":
                d["completion_type"] = lldb.eNoCompletion
                if possible:
                    d["value_type"] = lldb.eArgTypeValue
                    d["enum_values"] = [[v, v] for v in possible]
                elif value_name.upper() in ("FILE", "OUT.SVG") or value_name.lower().endswith(".svg"):
                    d["value_type"], d["completion_type"] = lldb.eArgTypeFilename, lldb.eDiskFileCompletion
                else:
                    d["value_type"] = lldb.eArgTypeValue
            self._defs[name] = d
            self._kinds[name] = kind
        self._defs["help"] = {"short_option": "h", "required": False, "help": "Print help"}
        self._kinds["help"] = "flag"

    def get_long_help(self):
        # LLDB lists the options itself (with the one-letter forms it requires): the rest of the
        # Rust core's help, up to its own option list.
        return self._help().split("\nOptions:")[0].rstrip() + "\n"

    def get_options_definition(self):
        return self._defs

    def get_args_definition(self):
        if not self._positional:
            return []
        _name, required, multiple = self._positional[0]
        repeat = ("plus" if required else "star") if multiple else ("plain" if required else "optional")
        # LLDB 19 completes an argument only as its type's table entry says (no completion hook for
        # Python commands before LLDB 20): a symbol, so Tab lists the code symbols of the target's
        # modules, which gomap's types module extends with the program's map variables.
        return [[{"arg_type": lldb.eArgTypeSymbol, "repeat": repeat}]]

    def get_flags(self):
        return 0

    def option_parsing_started(self):
        self._values = []

    def set_option_value(self, exe_ctx, opt_name, opt_value):
        kind = self._kinds.get(opt_name)
        if kind is None:
            return False
        if kind == "flag":
            self._values.append("--" + opt_name)
            return True
        value = opt_value
        enum = [v for v, _ in self._defs[opt_name].get("enum_values", [])]
        if enum:  # LLDB takes a unique prefix of an enum value; the Rust grammar wants it whole
            found = [v for v in enum if v.startswith(value or "")]
            value = found[0] if len(found) == 1 else value
        self._values += ["--" + opt_name, value if value is not None else ""]
        return True

    def __call__(self, debugger, args, exe_ctx, result):
        words = []
        if args is not None and hasattr(args, "GetSize"):
            for i in range(args.GetSize()):
                words.append(args.GetItemAtIndex(i).GetStringValue(1 << 16))
        elif args:
            words = list(args)
        argv = list(self._values) + (["--"] + words if words else [])
        self._values = []
        _run_command(self.sub, " ".join(argv), exe_ctx, result, debugger, argv=argv)


class GomapHelp:
    def __init__(self, debugger, internal_dict):
        pass

    def get_short_help(self):
        return "What gomap does, its subcommands and EXPR."

    def __call__(self, debugger, command, exe_ctx, result):
        sub = command.split()[0] if command.split() else None
        text = _native.help_text([sub]) if sub and _native is not None else None
        result.AppendMessage((text or _LONG_HELP).rstrip("\n"))
        result.SetStatus(lldb.eReturnStatusSuccessFinishResult)


_STREAM_CHUNK = 1 << 18


def _emit(debugger, result, text):
    """A command's output. LLDB 17+ prints a result only when the command ends and takes no Ctrl-C
    while doing so, and turns Ctrl-C into an interrupt request rather than a Python signal: a long
    output (a 1M-entry dump is tens of MB) is therefore written straight to the debugger's output in
    chunks, and Ctrl-C between two chunks stops it like Ctrl-C during the decoding."""
    out_file = debugger.GetOutputFile() if hasattr(debugger, "InterruptRequested") else None
    if len(text) <= _STREAM_CHUNK or out_file is None or not out_file.IsValid():
        result.AppendMessage(text)
        return
    result.SetImmediateOutputFile(out_file)
    interp = debugger.GetCommandInterpreter()
    for at in range(0, len(text), _STREAM_CHUNK):
        if debugger.InterruptRequested() or interp.WasInterrupted():
            result.Print("\n")
            raise KeyboardInterrupt
        result.Print(text[at:at + _STREAM_CHUNK])
    result.Print("\n")


def _run_command(sub, command, exe_ctx, result, debugger, argv=None):
    """Runs `gomap SUB`: `command` is the raw line (classic commands), or `argv` the arguments
    LLDB already parsed (parsed commands, LLDB 18+)."""
    BACKEND.exe_ctx = exe_ctx
    try:
        words = command.split() if argv is None else argv
        needs_memory = "--help" not in words and "-h" not in words
        if needs_memory and exe_ctx.target.IsValid() and not exe_ctx.process.IsValid():
            raise common.UserError("no process: launch the program, attach to it (lldb -p PID) or load a core (lldb BIN -c CORE) first")
        if sub == "watch":
            _watch(debugger, command, exe_ctx, result)
            return
        status, out = LAYER.run([sub] + (_split(command) if argv is None else argv))
        if out:
            _emit(debugger, result, out.rstrip("\n"))
        result.SetStatus(lldb.eReturnStatusSuccessFinishResult)
        try:  # formatters for a target loaded after the import; typed map variables
            _prepare_target(debugger)
        except Exception:
            pass
    except common.UserError as e:
        result.SetError("gomap: " + _one_line(e) if not str(e).startswith("gomap") else _one_line(e))
    except KeyboardInterrupt:
        result.SetError("gomap: interrupted")
    except Exception as e:  # never a traceback in the user's LLDB
        result.SetError("gomap: internal error: %s: %s" % (type(e).__name__, _one_line(e)))
    finally:
        BACKEND.exe_ctx = None


def _split(command):
    import shlex

    try:
        return shlex.split(command)
    except ValueError as e:
        raise common.UserError("cannot parse arguments: %s" % e)


# ---- watch ------------------------------------------------------------------------------------------

class _LldbFrame:
    """The frame of a watch breakpoint hit, as common.Watch reads it."""

    def __init__(self, frame):
        self.frame = frame

    def reg(self, name):
        v = self.frame.FindRegister(name)
        if not v.IsValid():
            raise common.UserError("no register %s" % name)
        return v.GetValueAsUnsigned() & 0xFFFFFFFFFFFFFFFF

    def name(self):
        return self.frame.GetFunctionName() or ""

    def read(self, addr, size):
        return BACKEND.read_memory(addr, size)

    def callers(self):
        thread = self.frame.GetThread()
        for i in range(self.frame.GetFrameID() + 1, min(thread.GetNumFrames(), 64)):
            f = thread.GetFrameAtIndex(i)
            le = f.GetLineEntry()
            where = None
            if le.IsValid() and le.GetFileSpec().IsValid() and le.GetLine():
                where = "%s:%d" % (le.GetFileSpec().GetFilename(), le.GetLine())
            yield f.GetFunctionName() or "??", where


_WATCH = {}


def _watch_stop(frame, bp_loc, internal_dict):
    """Breakpoint callback of `gomap watch`: False lets the program go on."""
    w = _WATCH.get("current")
    if w is None:
        return False
    info = w.bps.get(bp_loc.GetBreakpoint().GetID())
    if info is None:
        return False
    func, kind, argi, regs = info
    try:
        view = _LldbFrame(frame)
        if view.reg(regs[argi]) != w.addr:
            return False
        if w.events >= w.count:
            return True
        with BACKEND.using(frame.GetThread().GetProcess().GetTarget(), frame):
            stop, line = w.hit(func, kind, regs, view)
        if line:
            print(line, flush=True)
        return stop
    except KeyboardInterrupt:
        w.interrupted = True
        return True
    except BaseException as e:  # a broken callback would stop the process with a traceback
        w.errors.append(_one_line(e))
        return False


def _arch(target):
    triple = (target.GetTriple() or "").split("-", 1)[0]
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(triple)


def _watch(debugger, command, exe_ctx, result):
    parsed = common.parse_watch_args(_split(command))
    if parsed is None:
        result.AppendMessage(common.WATCH_HELP)
        return
    expr, count, type_name = parsed
    target, process = exe_ctx.target, exe_ctx.process
    if BACKEND._is_core():
        raise common.UserError("gomap watch needs a live process; this is a core file (use gomap show / check)")
    if not process.IsValid() or not process.is_alive:
        raise common.UserError("gomap watch needs a live process: launch it or attach to it first")
    arch = _arch(target)
    if arch is None:
        raise common.UserError("gomap watch supports amd64 and arm64 Go programs only")
    regs = common.ARG_REGS[arch]
    doc = common.watch_target(LAYER, expr, type_name)
    w = common.Watch(LAYER, int(doc["address"], 16), doc["type"], count, arch)
    w.bps, w.interrupted = {}, False
    found, made = [], []
    try:
        for func, kind, argi, nargs in common.WATCH_FUNCS:
            addr = _symbol_load_address(target, func)
            if addr is None:
                continue
            bp = target.BreakpointCreateByAddress(addr)
            if not bp.IsValid():
                continue
            made.append(bp)
            bp.SetScriptCallbackFunction("%s._watch_stop" % __name__)
            w.bps[bp.GetID()] = (func, kind, argi, regs[:nargs])
            found.append(func)
        common.check_watch_functions(found)
        _quiet_sigurg(debugger, target)
        print(common.watch_banner(expr, doc, len(found), count), flush=True)
        was_async = debugger.GetAsync()
        debugger.SetAsync(False)
        _WATCH["current"] = w
        try:
            err = process.Continue()
            if err.Fail():
                raise common.UserError("gomap watch: %s after %d event(s)" % (_one_line(err.GetCString()), w.events))
        finally:
            _WATCH["current"] = None
            debugger.SetAsync(was_async)
    finally:
        for bp in made:
            target.BreakpointDelete(bp.GetID())
    lines = w.summary_lines(interrupted=w.interrupted)
    if process.GetState() == lldb.eStateExited:
        lines.append("gomap watch: the program exited (status %d)" % process.GetExitStatus())
    result.AppendMessage("\n".join(lines))
    result.SetStatus(lldb.eReturnStatusSuccessFinishResult)


def _is_go_target(target):
    return target.IsValid() and target.FindSymbols("runtime.buildVersion").GetSize() > 0


def _quiet_sigurg(debugger, target):
    """Go preempts goroutines with SIGURG, many times a second: LLDB would stop on each. Pass it to
    the program without stopping or printing, once per target (and say so once)."""
    if not _is_go_target(target):
        return
    key = target.GetExecutable().fullpath
    if key in _STATE["sigurg"]:
        return
    res = lldb.SBCommandReturnObject()
    debugger.GetCommandInterpreter().HandleCommand("process handle -p true -s false -n false SIGURG", res)
    if res.Succeeded():
        _STATE["sigurg"].add(key)
        if not _STATE.get("sigurg_said"):
            _STATE["sigurg_said"] = True
            print("gomap: SIGURG (Go's preemption signal) now passes to the program without stopping LLDB "
                  "(process handle -s true SIGURG to stop on it again)")


# ---- formatters: summary and children for values of type map[K]V --------------------------------------

def _map_of_value(valobj):
    """(header address, map type name) of an SBValue of a Go map type, or None."""
    v = valobj.GetNonSyntheticValue() if valobj.IsSynthetic() else valobj
    ty = v.GetType()
    name = ty.GetName() if ty.IsValid() else None
    if not name or not name.startswith("map["):
        return None
    err = lldb.SBError()
    data = v.GetData()
    addr = data.GetUnsignedInt64(err, 0) if data.IsValid() and data.GetByteSize() >= 8 else None
    if addr is None or err.Fail():
        raise common.UserError(_one_line(err.GetCString() or v.GetError().GetCString() or "cannot read the map variable"))
    return addr, name


def map_summary(valobj, internal_dict):
    with BACKEND.using(valobj.GetTarget()):
        return _map_summary(valobj)


def _map_summary(valobj):
    try:
        m = _map_of_value(valobj)
        if m is None:
            return None
        addr, name = m
        if addr == 0:
            return "nil"
        length, impl, _items, _more = LAYER.summary(addr, name, 0)
        return "len=%d" % length
    except common.UserError as e:
        return "<gomap: %s>" % _one_line(e)
    except Exception as e:
        return "<gomap: %s>" % _one_line(e)


class MapChildren:
    """Synthetic children: one child per entry, named by the key as gomap renders it, holding the
    value as a typed LLDB value at its slot (structs expand into fields, pointers are pointers,
    nested maps come back through this provider; the Go types are in gomap's types module), or
    as text where the module has no type for it (interfaces, slices: see `value_summary`).
    Entries are decoded a page at a time, as LLDB asks for them."""

    PAGE = 256

    def __init__(self, valobj, internal_dict):
        self.valobj = valobj
        self.map = None
        self.count = 0
        self.pages = {}
        self.etype = None
        self.render = 3

    def update(self):
        self.map, self.count, self.pages, self.etype = None, 0, {}, None
        try:
            m = _map_of_value(self.valobj)
            if m is not None and m[0] != 0:
                target = self.valobj.GetTarget()
                with BACKEND.using(target):
                    length = LAYER.summary(m[0], m[1], 0)[0]
                    _k, _ks, _kt, ename, esize, etyped = LAYER.map_info(m[1])
                # Untyped for gdb (interfaces, slices) is typed here: value_summary renders them.
                self.etype = _lldb_type(target, ename, esize)
                self.render = 1 | (0 if self.etype is not None else 2)
                self.map, self.count = m, min(length, MAX_CHILDREN)
        except Exception:
            self.map, self.count = None, 0
        return False

    def num_children(self):
        return self.count

    def has_children(self):
        return True

    def _entry(self, index):
        page = index // self.PAGE
        if page not in self.pages:
            try:
                with BACKEND.using(self.valobj.GetTarget()):
                    _len, items, _more = LAYER.entries(self.map[0], self.map[1], page * self.PAGE, self.PAGE, self.render)
            except Exception:
                items = []
            if len(self.pages) > 64:
                self.pages.clear()
            self.pages[page] = items
        items = self.pages[page]
        i = index - page * self.PAGE
        return items[i] if i < len(items) else None

    def get_child_index(self, name):
        for i in range(self.count):
            e = self._entry(i)
            if e is not None and "[%s]" % e[2] == name:
                return i
        return -1

    def get_child_at_index(self, index):
        if self.map is None or index < 0 or index >= self.count:
            return None
        e = self._entry(index)
        if e is None:
            return None
        _ka, ea, ktext, etext = e
        name = "[%s]" % ktext
        if self.etype is not None:
            return self.valobj.CreateValueFromAddress(name, ea, self.etype)
        return _text_value(self.valobj, name, etext)


def _lldb_type(target, name, size):
    """The LLDB type for a Go type name, from gomap's types module of this target, or None."""
    module = _types_module(target)
    if module is None:
        return None

    def find(n):
        t = module.FindFirstType(n)
        return t if t.IsValid() else None

    ty = common.go_type_by_name(name, find, lambda t: t.GetPointerType(), lambda t, n: t.GetArrayType(n))
    if ty is None or not ty.IsValid() or ty.GetByteSize() != size:
        return None
    return ty


def _types_module(target):
    obj = _TYPE_MODULES.get((target.GetExecutable().fullpath, target.GetProcess().GetProcessID()))
    if not obj:
        return None
    m = target.FindModule(lldb.SBFileSpec(obj))
    return m if m.IsValid() else None


def value_summary(valobj, internal_dict):
    """Go strings, slices and interfaces (types from gomap's module) as gomap renders them."""
    try:
        addr = valobj.GetLoadAddress()
        if addr == lldb.LLDB_INVALID_ADDRESS:
            return None
        with BACKEND.using(valobj.GetTarget()):
            return LAYER.render(addr, valobj.GetTypeName())
    except Exception as e:
        return "<gomap: %s>" % _one_line(e)


def _text_value(parent, name, text):
    """A child showing one Go value: numbers and bools as such, anything else as its text."""
    target = parent.GetTarget()
    order, size = target.GetByteOrder(), target.GetAddressByteSize()
    err = lldb.SBError()
    data = lldb.SBData()
    ty = None
    if text in ("true", "false"):
        data.SetData(err, bytes([text == "true"]), order, size)
        ty = target.GetBasicType(lldb.eBasicTypeBool)
    else:
        try:
            n = int(text, 10)
            if -(1 << 63) <= n < (1 << 63):
                data = lldb.SBData.CreateDataFromSInt64Array(order, size, [n])
                ty = target.GetBasicType(lldb.eBasicTypeLongLong)
            elif 0 <= n < (1 << 64):
                data = lldb.SBData.CreateDataFromUInt64Array(order, size, [n])
                ty = target.GetBasicType(lldb.eBasicTypeUnsignedLongLong)
        except ValueError:
            pass
    if ty is None:
        if len(text) >= 2 and text[0] == text[-1] == '"':
            try:
                import json

                text = json.loads(text)  # a Go string: LLDB quotes the C string itself
            except ValueError:
                pass
        raw = text.encode("utf-8", "replace") + b"\0"
        data.SetData(err, raw, order, size)
        ty = target.GetBasicType(lldb.eBasicTypeChar).GetArrayType(len(raw))
    return parent.CreateValueFromData(name, data, ty)


# ---- Go map types and variables LLDB can show ---------------------------------------------------------
#
# LLDB 16 has no Go type system: Go variables come without types, Go frames without variables, so
# no formatter can ever apply to them. gomap gives LLDB a small DWARF module of its own (a C unit,
# assembled with `as` into ~/.cache/gomap/lldb/) that declares, by name only, one typedef per Go
# map type of the program (`map[string]int`, a struct holding the header pointer) and the
# package-level map variables with those types at their runtime addresses. `target variable`
# then finds typed values, whose summary and children come from the Rust core like every other
# gomap output. A frame recognizer hands `frame variable` the map locals of Go frames the same way.

_TYPES_DIR = os.path.join(os.environ.get("GOMAP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "gomap"), "lldb")


def _uleb(n):
    out = []
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return out


def _asm_string(text):
    """A gas string literal: printable ASCII as is, every other byte as an octal escape."""
    return '"%s"' % "".join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\' else "\\%03o" % b
                            for b in text.encode("utf-8"))


def _types_module_source(type_names, variables, graph=()):
    """Assembly for a DWARF 4 C unit: `typedef void *map[K]V;` per name (the map variable's value,
    the header pointer), `map[K]V NAME;` at an absolute address per variable, per package a
    variable named for the package whose fields are its map variables, and the Go key and element
    types of the maps as C types (`graph`, from the core's `type_graph`: base types, structs with
    their fields, pointers, arrays), so that synthetic children can be typed values."""
    L = ['\t.section .debug_abbrev,"",@progbits']
    abbrevs = [
        (1, 0x11, 1, [(0x13, 0x0B), (0x03, 0x08)]),              # compile_unit: language, name
        (2, 0x0F, 0, [(0x0B, 0x0B)]),                            # pointer_type (void *)
        (3, 0x16, 0, [(0x03, 0x08), (0x49, 0x13)]),              # typedef: name, type
        (4, 0x34, 0, [(0x03, 0x08), (0x49, 0x13), (0x3F, 0x19), (0x02, 0x18)]),  # variable
        (5, 0x13, 1, [(0x03, 0x08), (0x0B, 0x0F)]),              # structure_type: name, size
        (6, 0x0D, 0, [(0x03, 0x08), (0x49, 0x13), (0x38, 0x0F)]),  # member: name, type, offset
        (7, 0x0F, 0, [(0x0B, 0x0B), (0x49, 0x13)]),              # pointer_type: size, type
        (8, 0x24, 0, [(0x03, 0x08), (0x3E, 0x0B), (0x0B, 0x0F)]),  # base_type: name, encoding, size
        (9, 0x01, 1, [(0x49, 0x13)]),                            # array_type: element type
        (10, 0x21, 0, [(0x37, 0x0F)]),                           # subrange_type: count
    ]
    for code, tag, children, attrs in abbrevs:
        L.append("\t.byte %s" % ",".join(str(b) for b in _uleb(code) + _uleb(tag) + [children]))
        for a, f in attrs:
            L.append("\t.byte %s" % ",".join(str(b) for b in _uleb(a) + _uleb(f)))
        L.append("\t.byte 0,0")
    L.append("\t.byte 0")
    L += ['\t.section .debug_info,"",@progbits', ".Lcu:", "\t.long .Lend - .Lstart", ".Lstart:",
          "\t.short 4", "\t.long 0", "\t.byte 8",
          "\t.byte 1", "\t.byte 0x0c", "\t.string %s" % _asm_string("gomap Go map types"),
          ".Lvoidp:", "\t.byte 2", "\t.byte 8"]
    graph = list(graph)
    names = set(type_names) | {name for _id, name, kind, *_ in graph if kind == "map"}
    labels = {}
    for i, name in enumerate(sorted(names)):
        labels[name] = ".Lt%d" % i
        L += [".Lt%d:" % i, "\t.byte 3", "\t.string %s" % _asm_string(name), "\t.long .Lvoidp - .Lcu"]
    L += _graph_source(graph, labels)
    packages = {}
    for name, type_name, addr in variables:
        if type_name not in labels:
            continue
        L += ["\t.byte 4", "\t.string %s" % _asm_string(name), "\t.long %s - .Lcu" % labels[type_name],
              "\t.byte 9", "\t.byte 3", "\t.quad %#x" % addr]
        pkg, _, var = name.rpartition(".")
        if pkg.isidentifier() and var.isidentifier():
            packages.setdefault(pkg, []).append((var, labels[type_name], addr))
    # LLDB reads `target variable main.m` as field m of a variable main: give it one, a struct
    # per package whose fields are its map variables, at their distances from the first.
    for i, (pkg, members) in enumerate(sorted(packages.items())):
        base = min(a for _, _, a in members)
        size = max(a for _, _, a in members) - base + 8
        L += [".Lpkg%d:" % i, "\t.byte 5", "\t.string %s" % _asm_string("package " + pkg), "\t.uleb128 %#x" % size]
        for var, label, addr in sorted(members, key=lambda m: m[2]):
            L += ["\t.byte 6", "\t.string %s" % _asm_string(var), "\t.long %s - .Lcu" % label,
                  "\t.uleb128 %#x" % (addr - base)]
        L += ["\t.byte 0",
              "\t.byte 4", "\t.string %s" % _asm_string(pkg), "\t.long .Lpkg%d - .Lcu" % i,
              "\t.byte 9", "\t.byte 3", "\t.quad %#x" % base]
    L += ["\t.byte 0", ".Lend:"]
    L += _completion_symbols(name for name, type_name, _addr in variables if type_name in labels)
    return "\n".join(L + [""])


def _completion_symbols(names):
    """A local code symbol per map variable name, in a .text that LLDB never loads: LLDB 19 completes
    a Python command's argument only through the completer its argument type names in LLDB's table,
    and the symbol completer (`eArgTypeSymbol`) lists code symbols of every module, so `gomap show
    main.se<Tab>` finds `main.sessions` here (next to the program's functions of that prefix)."""
    out = []
    for name in sorted(set(names)):
        if not name or not all(32 < ord(c) < 127 and c not in '"\\' for c in name):
            continue  # gas quotes symbol names; such a name is left out of completion only
        q = '"%s"' % name
        out += ["\t.type %s, @function" % q, "%s:" % q, "\t.byte 0", "\t.size %s, 1" % q]
    return (["\t.text"] + out) if out else []


def _graph_source(graph, map_labels):
    """DIEs for the core's type graph (see Session.type_graph); maps refer to the map typedefs."""
    ids = {node[0] for node in graph}
    label = {}
    for node in graph:
        tid, name, kind = node[0], node[1], node[2]
        label[tid] = map_labels[name] if kind == "map" and name in map_labels else ".Ly%d" % tid

    def ref(tid):
        return ("\t.long %s - .Lcu" % label[tid]) if tid in ids else "\t.long .Lvoidp - .Lcu"

    L = []
    for tid, name, kind, size, target, count, encoding, fields in graph:
        if kind == "map":
            continue
        L.append("%s:" % label[tid])
        if kind == "base":
            L += ["\t.byte 8", "\t.string %s" % _asm_string(name), "\t.byte %d" % (encoding or 7),
                  "\t.uleb128 %d" % size]
        elif kind == "struct" or kind == "opaque":
            L += ["\t.byte 5", "\t.string %s" % _asm_string(name), "\t.uleb128 %d" % size]
            for fname, offset, ftype in fields:
                L += ["\t.byte 6", "\t.string %s" % _asm_string(fname or "_"), ref(ftype), "\t.uleb128 %d" % offset]
            L.append("\t.byte 0")
        elif kind == "ptr":
            L += ["\t.byte 7", "\t.byte 8", ref(target) if target else "\t.long .Lvoidp - .Lcu"]
        elif kind == "array":
            L += ["\t.byte 9", ref(target), "\t.byte 10", "\t.uleb128 %d" % count, "\t.byte 0"]
        else:  # typedef
            L += ["\t.byte 3", "\t.string %s" % _asm_string(name), ref(target)]
    return L


def _ensure_types_module(target):
    """Adds gomap's module of Go map types and package-level map variables to `target` once."""
    import hashlib
    import json
    import subprocess

    key = (target.GetExecutable().fullpath, target.GetProcess().GetProcessID())
    if key in _TYPE_MODULES:
        return _TYPE_MODULES[key]  # added, or failed once (not retried on every command)
    _TYPE_MODULES[key] = None
    session = LAYER.session()
    _status, out = LAYER.run(["layout", "--json"])
    types = [m["type"] for m in json.loads(out).get("map_types", []) if m.get("type")]
    bias = BACKEND.bias(session.dwarf_address) or 0
    variables = []
    for name in session.map_globals():
        link = session.dwarf_address(name)
        tn = session.global_type(name)
        if link is not None and tn:
            variables.append((name, tn, (link + bias) & 0xFFFFFFFFFFFFFFFF))
    try:
        graph = session.type_graph(types)
    except Exception:
        graph = []  # children are then shown as text
    src = _types_module_source(types, variables, graph)
    digest = hashlib.sha256(src.encode()).hexdigest()[:16]
    os.makedirs(_TYPES_DIR, exist_ok=True)
    obj = os.path.join(_TYPES_DIR, "gotypes-%s.o" % digest)
    if not os.path.exists(obj):
        asm = shutil.which("as")
        if asm is None:
            raise common.UserError("the assembler `as` (binutils) is needed to show Go maps in frame/target variable")
        tmp = "%s.%d" % (obj, os.getpid())  # another LLDB may be writing the same module
        with open(tmp + ".s", "w") as f:
            f.write(src)
        try:
            r = subprocess.run([asm, "-o", tmp, tmp + ".s"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True, timeout=60)
            if r.returncode != 0:
                raise common.UserError("as failed on the Go map types module: %s" % _one_line(r.stdout))
            os.replace(tmp, obj)
        finally:
            for leftover in (tmp, tmp + ".s"):
                if os.path.exists(leftover):
                    os.unlink(leftover)
    # Adding a module flushes the stack frames: keep the user's selected thread and frame.
    process = target.GetProcess()
    thread = process.GetSelectedThread() if process.IsValid() else None
    tid = thread.GetThreadID() if thread is not None and thread.IsValid() else None
    fidx = thread.GetSelectedFrame().GetFrameID() if tid is not None else None
    # A module from an earlier process of this target (other addresses) must not answer for this one.
    ours, present = os.path.realpath(_TYPES_DIR), False
    for i in reversed(range(target.GetNumModules())):
        m = target.GetModuleAtIndex(i)
        path = os.path.realpath(m.GetFileSpec().fullpath or "/")
        if path == os.path.realpath(obj):
            present = True
        elif os.path.dirname(path) == ours:
            target.RemoveModule(m)
    if not present:
        debugger = target.GetDebugger()
        if debugger.GetSelectedTarget() == target:
            # The command (unlike SBTarget.AddModule) flushes the stack frames, so a frame whose
            # variables were asked for before the types existed is recognized again.
            res = lldb.SBCommandReturnObject()
            debugger.GetCommandInterpreter().HandleCommand('target modules add "%s"' % obj, res)
            ok = res.Succeeded()
        else:
            ok = target.AddModule(obj, None, None).IsValid()
        if not ok:
            raise common.UserError("LLDB did not load %s" % obj)
    if tid is not None:
        process.SetSelectedThreadByID(tid)
        process.GetSelectedThread().SetSelectedFrame(fidx)
    _TYPE_MODULES[key] = obj
    return obj


# Survives a second `command script import` (which re-executes this file): the modules already
# added to targets, and the executables a frame recognizer is registered for.
_STATE = getattr(lldb, "_gomap_state", None)
if _STATE is None:
    _STATE = {"modules": {}, "recognizers": set(), "sigurg": set()}
    lldb._gomap_state = _STATE
_TYPE_MODULES = _STATE["modules"]
_STATE.setdefault("sigurg", set())


def _map_sbtype(target, type_name):
    ty = target.FindFirstType(type_name)
    return ty if ty.IsValid() else None


class GoFrameRecognizer:
    """Map locals of a Go frame as typed values for `frame variable`."""

    def get_recognized_arguments(self, frame):
        target = frame.GetThread().GetProcess().GetTarget()
        with BACKEND.using(target, frame):
            try:
                return self._arguments(target, frame)
            except Exception:
                return []

    def _arguments(self, target, frame):
        if not _TYPE_MODULES.get((target.GetExecutable().fullpath, target.GetProcess().GetProcessID())):
            return []  # adding the types module here would invalidate this very frame
        values = {}
        for name, _type_id, type_name, kind, value in LAYER.session().frame_locals(frame.GetPC()):
            if not type_name.startswith("map[") or kind not in ("cfa", "addr", "reg"):
                continue
            ty = target.FindFirstType(type_name)
            if not ty.IsValid():
                continue
            if kind == "reg":
                word = _register_value(frame, value)
                if word is None:
                    continue
                data = lldb.SBData.CreateDataFromUInt64Array(target.GetByteOrder(), target.GetAddressByteSize(), [word])
                v = target.CreateValueFromData(name, data, ty)
            else:
                addr = (frame.GetCFA() + value if kind == "cfa" else value) & 0xFFFFFFFFFFFFFFFF
                v = target.CreateValueFromAddress(name, lldb.SBAddress(addr, target), ty)
            v.SetPreferSyntheticValue(True)
            values[name] = v  # the innermost declaration of a name wins
        return list(values.values())


class StopHook:
    """Adds the types module at the first stop of a process launched or attached after import."""

    def __init__(self, target, extra_args, internal_dict):
        pass

    def handle_stop(self, exe_ctx, stream):
        try:
            t = exe_ctx.target
            if t.IsValid() and _is_go_target(t):
                _quiet_sigurg(t.GetDebugger(), t)
                _add_recognizer(t.GetDebugger(), t, stop_hook=False)
                _ensure_types_module(t)
        except Exception:
            pass
        return True  # never changes whether LLDB stops


def _prepare_target(debugger):
    """Formatters for `target variable` need the types module in the current target (it is
    added again by the first gomap command on a target loaded later)."""
    t = debugger.GetSelectedTarget()
    if not t.IsValid():
        # Imported before any target (an ~/.lldbinit): a stop hook on LLDB's dummy target is
        # copied into every target created later, and does the set-up at its first stop.
        # SIGURG goes there too (whether the program will be Go is not known yet; SIGURG is Go's).
        if not _STATE.get("dummy_hook"):
            _STATE["dummy_hook"] = True
            ci, res = debugger.GetCommandInterpreter(), lldb.SBCommandReturnObject()
            ci.HandleCommand("target stop-hook add -P %s.StopHook" % __name__, res)
            ci.HandleCommand("process handle -p true -s false -n false SIGURG", res)
            _recognized_in_variables(ci)
            if res.Succeeded() and not _STATE.get("sigurg_said"):
                _STATE["sigurg_said"] = True
                print("gomap: SIGURG (Go's preemption signal) will pass to the programs of new targets without "
                      "stopping LLDB (process handle -s true SIGURG to stop on it again)")
        return
    try:
        _quiet_sigurg(debugger, t)
    except Exception:
        pass
    if t.GetProcess().IsValid():
        try:
            _ensure_types_module(t)
        except Exception as e:
            print("gomap: Go map types for frame/target variable unavailable: %s" % _one_line(e))
    _add_recognizer(debugger, t, stop_hook=not _STATE.get("dummy_hook"))


def _recognized_in_variables(ci):
    """SBFrame.GetVariables(args, locals, statics, in_scope), which IDEs call (lldb-dap's Locals),
    lists a frame recognizer's values only with this setting: the map locals then appear there,
    and the SB API expands them into typed entries (LLDB 19's `frame variable` printer does not)."""
    res = lldb.SBCommandReturnObject()
    ci.HandleCommand("settings set -g target.display-recognized-arguments true", res)  # targets to come
    ci.HandleCommand("settings set target.display-recognized-arguments true", res)  # the current one


def _add_recognizer(debugger, t, stop_hook):
    """The frame recognizer for this executable (and the stop hook, unless the dummy target's
    copy is already there), once."""
    exe = t.GetExecutable()
    if exe.IsValid() and exe.fullpath not in _STATE["recognizers"]:
        _STATE["recognizers"].add(exe.fullpath)
        ci = debugger.GetCommandInterpreter()
        res = lldb.SBCommandReturnObject()
        ci.HandleCommand("frame recognizer add -l %s.GoFrameRecognizer -s '%s' -x -n . -f false"
                         % (__name__, exe.GetFilename()), res)
        _recognized_in_variables(ci)
        if stop_hook:
            ci.HandleCommand("target stop-hook add -P %s.StopHook" % __name__, res)


# ---- registration (idempotent) ---------------------------------------------------------------------

def _quote(text):
    """An LLDB command-line argument for a one-line text without single quotes or backticks."""
    return "'%s'" % text.replace("'", '"').replace("`", '"')


def _interrupt_probe(debugger_id):
    def probe():
        d = lldb.SBDebugger.FindDebuggerWithID(debugger_id)
        return d.IsValid() and (d.InterruptRequested() or d.GetCommandInterpreter().WasInterrupted())
    return probe


def __lldb_init_module(debugger, internal_dict):
    mod = __name__
    ci = debugger.GetCommandInterpreter()

    def run(cmd):
        res = lldb.SBCommandReturnObject()
        ci.HandleCommand(cmd, res)
        return res

    # A container, so that LLDB completes the subcommands and `help gomap` is one text.
    run("command script delete gomap")
    run("command container add -o -h %s -H %s gomap" % (
        _quote("Decode Go maps (hash maps and swiss tables) in this process or core file."),
        _quote('gomap SUBCOMMAND [OPTIONS] ARGS, where EXPR is a package-level variable (main.cache), a local '
               'or a field of one (box.index), or 0xADDR --type "map[K]V". "gomap help" says more; '
               '"help gomap SUBCOMMAND" lists the options of one.')))
    parsed = _native is not None and hasattr(_native, "options")
    for sub in _SUBCOMMANDS + ("watch",):
        cls = "Gomap_" + sub
        if parsed and sub != "watch":
            # LLDB 18+: a parsed command, so that LLDB completes its options (LLDB 16 refuses -p).
            globals()[cls] = type(cls, (GomapParsedSubcommand,), {"sub": sub})
            if run("command script add -p -o -c %s.%s gomap %s" % (mod, cls, sub)).Succeeded():
                continue
        globals()[cls] = type(cls, (GomapSubcommand,), {"sub": sub})
        # A classic command completes its words with one completer: symbols, so map names complete
        # (`gomap watch main.wat<Tab>`); without it where LLDB has no -C.
        if not run("command script add -o -C symbol -c %s.%s gomap %s" % (mod, cls, sub)).Succeeded():
            run("command script add -o -c %s.%s gomap %s" % (mod, cls, sub))
    run("command script add -o -c %s.GomapHelp gomap help" % mod)
    run("type category delete %s" % CATEGORY)
    run("type summary add -e -w %s -x '%s' -F %s.map_summary" % (CATEGORY, MAP_TYPE_REGEX, mod))
    run("type synthetic add -w %s -x '%s' -l %s.MapChildren" % (CATEGORY, MAP_TYPE_REGEX, mod))
    run("type summary add -w %s -x '%s' -F %s.value_summary" % (CATEGORY, RENDERED_TYPE_REGEX, mod))
    run("type category enable %s" % CATEGORY)
    _prepare_target(debugger)
    if _native is not None and hasattr(_native, "set_interrupt_probe") and hasattr(debugger, "InterruptRequested"):
        # LLDB 17+ turns Ctrl-C during a command into an interrupt request, not a Python signal.
        _native.set_interrupt_probe(_interrupt_probe(debugger.GetID()))
    if _native is not None:
        print("gomap: loaded %s (gomap %s)" % (_native.path, getattr(_native, "__version__", "?")))
    else:
        print("gomap: %s" % common.native_error())
