"""gomap for LLDB: decode Go maps in a live process or a core file.

    (lldb) command script import /path/to/gomap/python/gomap_lldb.py
    (lldb) gomap show main.cache --limit 20
    (lldb) gomap show local            # a local of the selected frame (or box.index, a field)
    (lldb) gomap show 0xc000123400 --type 'map[string]int'
    (lldb) target variable main.cache  # len=N; -P 1 shows the entries as children
    (lldb) frame variable -P 1         # the map locals of a Go frame, the same way

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

Usage: gomap SUBCOMMAND [OPTIONS] ARGS      (gomap SUBCOMMAND --help for its options)
Subcommands: show, buckets, check, maps, layout (the same options and JSON as the gomap CLI).
EXPR is a package-level variable (main.cache, main.srv.sessions), a local of the selected frame
or a field of one (box.index), or 0xADDR with --type 'map[K]V'.
`target variable main.m` and `frame variable` show maps as map[K]V with a summary (len=N);
add -P 1 to see their entries as children.
"""


class GomapCommand:
    def __init__(self, debugger, internal_dict):
        pass

    def get_short_help(self):
        return "Decode Go maps: gomap show|buckets|check|maps|layout EXPR (gomap SUBCOMMAND --help)."

    def get_long_help(self):
        text = None
        if _native is not None:
            try:
                text = _native.help_text([])
            except Exception:
                text = None
        return _LONG_HELP + ("\n" + text if text else "")

    def __call__(self, debugger, command, exe_ctx, result):
        BACKEND.exe_ctx = exe_ctx
        try:
            words = command.split()
            needs_memory = words and words[0] not in ("help",) and "--help" not in words and "-h" not in words
            if needs_memory and exe_ctx.target.IsValid() and not exe_ctx.process.IsValid():
                raise common.UserError("no process: launch the program, attach to it (lldb -p PID) or load a core (lldb BIN -c CORE) first")
            status, out = LAYER.run(command)
            if out:
                result.AppendMessage(out.rstrip("\n"))
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
            return "len=0 (nil)"
        length, impl, _items, _more = LAYER.summary(addr, name, 0)
        return "len=%d" % length
    except common.UserError as e:
        return "<gomap: %s>" % _one_line(e)
    except Exception as e:
        return "<gomap: %s>" % _one_line(e)


class MapChildren:
    """Synthetic children: one child per entry, named by the key, holding the value as text."""

    def __init__(self, valobj, internal_dict):
        self.valobj = valobj
        self.items = []

    def update(self):
        self.items = []
        try:
            m = _map_of_value(self.valobj)
            if m is not None and m[0] != 0:
                with BACKEND.using(self.valobj.GetTarget()):
                    _len, _impl, items, more = LAYER.summary(m[0], m[1], MAX_CHILDREN)
                self.items = items
        except Exception:
            self.items = []
        return False

    def num_children(self):
        return len(self.items)

    def has_children(self):
        return True

    def get_child_index(self, name):
        for i, (k, _v) in enumerate(self.items):
            if "[%s]" % k == name:
                return i
        return -1

    def get_child_at_index(self, index):
        if index < 0 or index >= len(self.items):
            return None
        key, value = self.items[index]
        return _text_value(self.valobj, "[%s]" % key, value)


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


def _types_module_source(type_names, variables):
    """Assembly for a DWARF 4 C unit: `typedef void *map[K]V;` per name (the map variable's value,
    the header pointer), `map[K]V NAME;` at an absolute address per variable, and per package a
    variable named for the package whose fields are its map variables."""
    L = ['\t.section .debug_abbrev,"",@progbits']
    abbrevs = [
        (1, 0x11, 1, [(0x13, 0x0B), (0x03, 0x08)]),              # compile_unit: language, name
        (2, 0x0F, 0, [(0x0B, 0x0B)]),                            # pointer_type (void *)
        (3, 0x16, 0, [(0x03, 0x08), (0x49, 0x13)]),              # typedef: name, type
        (4, 0x34, 0, [(0x03, 0x08), (0x49, 0x13), (0x3F, 0x19), (0x02, 0x18)]),  # variable
        (5, 0x13, 1, [(0x03, 0x08), (0x0B, 0x0F)]),              # structure_type: name, size
        (6, 0x0D, 0, [(0x03, 0x08), (0x49, 0x13), (0x38, 0x0F)]),  # member: name, type, offset
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
    labels = {}
    for i, name in enumerate(sorted(set(type_names))):
        labels[name] = ".Lt%d" % i
        L += [".Lt%d:" % i, "\t.byte 3", "\t.string %s" % _asm_string(name), "\t.long .Lvoidp - .Lcu"]
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
    L += ["\t.byte 0", ".Lend:", ""]
    return "\n".join(L)


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
    src = _types_module_source(types, variables)
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
    _STATE = {"modules": {}, "recognizers": set()}
    lldb._gomap_state = _STATE
_TYPE_MODULES = _STATE["modules"]


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
            if exe_ctx.target.IsValid():
                _ensure_types_module(exe_ctx.target)
        except Exception:
            pass
        return True  # never changes whether LLDB stops


def _prepare_target(debugger):
    """Formatters for `target variable` need the types module in the current target (it is
    added again by the first gomap command on a target loaded later)."""
    t = debugger.GetSelectedTarget()
    if not t.IsValid():
        return
    if t.GetProcess().IsValid():
        try:
            _ensure_types_module(t)
        except Exception as e:
            print("gomap: Go map types for frame/target variable unavailable: %s" % _one_line(e))
    exe = t.GetExecutable()
    if exe.IsValid() and exe.fullpath not in _STATE["recognizers"]:
        _STATE["recognizers"].add(exe.fullpath)
        ci = debugger.GetCommandInterpreter()
        res = lldb.SBCommandReturnObject()
        ci.HandleCommand("frame recognizer add -l %s.GoFrameRecognizer -s '%s' -x -n . -f false"
                         % (__name__, exe.GetFilename()), res)
        ci.HandleCommand("target stop-hook add -P %s.StopHook" % __name__, res)


# ---- registration (idempotent) ---------------------------------------------------------------------

def __lldb_init_module(debugger, internal_dict):
    mod = __name__
    ci = debugger.GetCommandInterpreter()

    def run(cmd):
        res = lldb.SBCommandReturnObject()
        ci.HandleCommand(cmd, res)
        return res

    run("command script add -o -c %s.GomapCommand gomap" % mod)
    run("type category delete %s" % CATEGORY)
    run("type summary add -e -w %s -x '%s' -F %s.map_summary" % (CATEGORY, MAP_TYPE_REGEX, mod))
    run("type synthetic add -w %s -x '%s' -l %s.MapChildren" % (CATEGORY, MAP_TYPE_REGEX, mod))
    run("type category enable %s" % CATEGORY)
    _prepare_target(debugger)
    if _native is not None:
        print("gomap: loaded %s (gomap %s)" % (_native.path, getattr(_native, "__version__", "?")))
    else:
        print("gomap: %s" % common.native_error())
