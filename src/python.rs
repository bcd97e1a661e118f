//! The Python module `_gomap`, loaded by the gdb and LLDB front ends (python/gomap_common.py).
//!
//! It exposes the same subcommands as the CLI (parsed by the same clap grammar), over either a
//! file-backed target (core file or /proc/PID/mem: the fast path) or the debugger's own memory
//! callback. Every entry point is an error boundary: Rust errors and panics become `GomapError`
//! with one line of text, never an abort of the debugger.

use crate::binary::Binary;
use crate::cli::DebuggerCli;
use crate::decode;
use crate::error::{Error, Result};
use crate::inspect;
use crate::memory::{core::CoreMemory, live::LiveMemory, CallbackMemory, Memory};
use crate::target::Target;
use crate::value::{Renderer, Style};
use clap::Parser;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

create_exception!(_gomap, GomapError, PyException, "A gomap error: one line saying what is wrong.");

fn guard<T>(f: impl FnOnce() -> Result<T>) -> PyResult<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(GomapError::new_err(e.to_string())),
        Err(p) => {
            let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
            let at = PANIC_AT.with(|a| a.take()).map(|a| format!(" at {a}")).unwrap_or_default();
            Err(GomapError::new_err(format!("internal error: {msg}{at} (please report it)")))
        }
    }
}

thread_local! {
    /// Where the last panic on this thread happened, for `guard`'s one-line report.
    static PANIC_AT: std::cell::Cell<Option<String>> = const { std::cell::Cell::new(None) };
}

/// Inside a debugger a panic must not print Rust's multi-line report (and backtrace) over the
/// user's session: `guard` turns it into one `GomapError` line, and this hook only notes where it was.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
        PANIC_AT.with(|a| a.set(at));
    }));
}

/// Ctrl-C in the debugger sets Python's signal flag (gdb, LLDB 16) or the debugger's own
/// interrupt request (LLDB 17+, asked through the probe a front end set with
/// `set_interrupt_probe`); the walk polls both through this hook.
fn poll_python_signals() -> bool {
    static TICK: AtomicU32 = AtomicU32::new(0);
    if TICK.fetch_add(1, Ordering::Relaxed) % 8 != 0 {
        return false;
    }
    Python::attach(|py| {
        if py.check_signals().is_err() {
            return true;
        }
        let probe = INTERRUPT_PROBE.lock().ok().and_then(|p| p.as_ref().map(|f| f.clone_ref(py)));
        match probe {
            Some(f) => f.call0(py).and_then(|v| v.is_truthy(py)).unwrap_or(false),
            None => false,
        }
    })
}

/// A Python callable returning true when the user asked to interrupt (see `poll_python_signals`).
static INTERRUPT_PROBE: std::sync::Mutex<Option<Py<PyAny>>> = std::sync::Mutex::new(None);

/// set_interrupt_probe(callable or None): what long walks also poll for Ctrl-C, for debuggers
/// that do not turn Ctrl-C into a Python signal (LLDB 17+: `SBDebugger.InterruptRequested`).
#[pyfunction]
#[pyo3(signature = (probe=None))]
fn set_interrupt_probe(probe: Option<Py<PyAny>>) {
    if let Ok(mut p) = INTERRUPT_PROBE.lock() {
        *p = probe;
    }
}

#[pyclass(frozen)]
struct Session {
    t: Arc<Target>,
}

/// Parsed executables, kept across commands: a debugger session runs many commands on one binary,
/// and DWARF discovery is the slowest part of start-up. Keyed by path, size and mtime.
fn open_binary(path: &str) -> Result<Arc<Binary>> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    type Key = (String, u64, Option<std::time::SystemTime>);
    static CACHE: Mutex<Option<HashMap<Key, Arc<Binary>>>> = Mutex::new(None);
    let meta = std::fs::metadata(path).map_err(|e| Error::io(Path::new(path), e))?;
    let key = (path.to_string(), meta.len(), meta.modified().ok());
    if let Some(b) = CACHE.lock().ok().and_then(|c| c.as_ref().and_then(|m| m.get(&key).cloned())) {
        return Ok(b);
    }
    let b = Arc::new(Binary::open(Path::new(path))?);
    if let Ok(mut c) = CACHE.lock() {
        let m = c.get_or_insert_with(HashMap::new);
        if m.len() > 8 {
            m.clear();
        }
        m.insert(key, b.clone());
    }
    Ok(b)
}

/// Function/variable indexes for frame locals, kept per executable like `open_binary`.
fn open_frames(path: &Path) -> Result<Arc<crate::binary::frames::Frames>> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    type Key = (std::path::PathBuf, u64, Option<std::time::SystemTime>);
    static CACHE: Mutex<Option<HashMap<Key, Arc<crate::binary::frames::Frames>>>> = Mutex::new(None);
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Some(f) = CACHE.lock().ok().and_then(|c| c.as_ref().and_then(|m| m.get(&key).cloned())) {
        return Ok(f);
    }
    let f = Arc::new(crate::binary::frames::Frames::load(path)?);
    if let Ok(mut c) = CACHE.lock() {
        let m = c.get_or_insert_with(HashMap::new);
        if m.len() > 8 {
            m.clear();
        }
        m.insert(key, f.clone());
    }
    Ok(f)
}

#[pymethods]
impl Session {
    /// Session.open(binary, core=None, pid=None): read a core file or a live process directly.
    #[staticmethod]
    #[pyo3(signature = (binary, core=None, pid=None))]
    fn open(binary: &str, core: Option<&str>, pid: Option<u32>) -> PyResult<Session> {
        guard(|| {
            let bin = open_binary(binary)?;
            // The debugger already opened this core: a truncated one is read for what it holds
            // (what was cut off reads as "cut off"), as the debugger itself does.
            let t = crate::open_target_with_partial(bin, core.map(Path::new), pid, true)?;
            Ok(Session { t: Arc::new(t) })
        })
    }

    /// Session.with_reader(binary, read, entry=None, bias=None, name="debugger"): memory through a
    /// callback read(addr, size) -> bytes that raises on unreadable memory.
    #[staticmethod]
    /// `live=False` when the debugger reads a core file.
    #[pyo3(signature = (binary, read, entry=None, bias=None, name="debugger".to_string(), live=true))]
    fn with_reader(binary: &str, read: Py<PyAny>, entry: Option<u64>, bias: Option<u64>, name: String, live: bool) -> PyResult<Session> {
        guard(|| {
            let bin = open_binary(binary)?;
            let mem = CallbackMemory::new(name, entry, move |addr, size| {
                Python::attach(|py| {
                    let r = read.call1(py, (addr, size)).map_err(|e| Error::unreadable(addr, size, e.value(py).to_string()))?;
                    let b = r.cast_bound::<PyBytes>(py).map_err(|_| Error::unreadable(addr, size, "reader did not return bytes"))?;
                    Ok(b.as_bytes().to_vec())
                })
            })
            .live(live);
            let mem: Box<dyn Memory> = Box::new(mem);
            let t = match bias {
                Some(b) => Target::with_bias(bin, mem, b),
                None => Target::new(bin, mem),
            };
            Ok(Session { t: Arc::new(t) })
        })
    }

    /// run(argv, resolver=None) -> (exit_status, output). `resolver(expr)` returns
    /// (header_address, map_type_name) or None to let gomap resolve the name from DWARF.
    #[pyo3(signature = (argv, resolver=None))]
    fn run(&self, py: Python<'_>, argv: Vec<String>, resolver: Option<Py<PyAny>>) -> PyResult<(i32, String)> {
        let cmd = match DebuggerCli::try_parse_from(&argv) {
            Ok(c) => c.cmd,
            Err(e) => {
                use clap::error::ErrorKind;
                let text = e.render().to_string();
                return match e.kind() {
                    ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Ok((0, text)),
                    _ => Err(GomapError::new_err(one_line_usage_error(&text))),
                };
            }
        };
        let res = resolver.map(|r| {
            move |expr: &str| -> Result<Option<(u64, String)>> {
                Python::attach(|py| {
                    let v = r.call1(py, (expr,)).map_err(|e| Error::Expr(e.value(py).to_string()))?;
                    if v.is_none(py) {
                        return Ok(None);
                    }
                    let (a, t): (u64, String) = v.extract(py).map_err(|_| Error::Expr(format!("{expr}: resolver returned a bad value")))?;
                    Ok(Some((a, t)))
                })
            }
        });
        let t = self.t.clone();
        let _ = py;
        let out = guard(|| {
            let mut buf: Vec<u8> = Vec::new();
            decode::set_interrupt_hook(Some(poll_python_signals));
            let r = inspect::run(&t, &cmd, res.as_ref().map(|f| f as &dyn Fn(&str) -> Result<Option<(u64, String)>>), &mut buf);
            decode::set_interrupt_hook(None);
            if decode::interrupted() {
                return Err(Error::Interrupted);
            }
            Ok((r?, String::from_utf8_lossy(&buf).into_owned()))
        });
        out
    }

    /// summary(addr, type_name, limit) -> (len, impl, [(key_text, value_text)], more):
    /// for pretty-printers and LLDB children.
    fn summary(&self, addr: u64, type_name: &str, limit: u64) -> PyResult<(u64, String, Vec<(String, String)>, bool)> {
        guard(|| {
            let r = inspect::resolve(&self.t, &format!("{addr:#x}"), Some(type_name), None)?;
            let m = self.t.map_type(r.ty)?;
            let rend = Renderer::new(&self.t, Style::Text, 0);
            let mut v = Pairs { r: &rend, key: m.key, elem: m.elem, limit, items: Vec::new(), more: false };
            let h = decode::walk(&self.t, &m, addr, &mut v)?;
            let (items, more) = (v.items, v.more);
            Ok((h.len, m.imp.name().to_string(), items, more))
        })
    }

    /// map_info(type_name) -> the key and element types as (key_name, key_size, key_typed, elem_name, elem_size, elem_typed)). `typed` says whether a
    /// debugger's own value of that type shows the Go value (scalars, strings, arrays, structs,
    /// pointers, maps); for the others (interfaces, slices, funcs) front ends show gomap's text.
    fn map_info(&self, type_name: &str) -> PyResult<(String, u64, bool, String, u64, bool)> {
        guard(|| {
            let d = &self.t.bin.dwarf;
            let id = d.named(type_name).ok_or_else(|| Error::Expr(format!("no type {type_name} in the binary")))?;
            let m = self.t.map_type(id)?;
            let typed = |id: u64| matches!(go_kind(d, id), 1..=18 | 21 | 22 | 24..=26);
            Ok((d.name_of(m.key).to_string(), m.key_size, typed(m.key), d.name_of(m.elem).to_string(), m.elem_size, typed(m.elem)))
        })
    }

    /// entries(addr, type_name, skip, limit, render) -> (len, [(key_addr, elem_addr, key_text,
    /// elem_text)], more): the entries after the first `skip` in walk order, with the addresses
    /// of their key and element (front ends build typed debugger values there); texts are
    /// rendered only for the sides `render` asks for (bit 1: keys, bit 2: elements), else None.
    /// A walk stops after `limit` entries, so a front end paging through a big map pays for the
    /// pages it shows.
    fn entries(&self, addr: u64, type_name: &str, skip: u64, limit: u64, render: u8) -> PyResult<(u64, Vec<Entry>, bool)> {
        guard(|| {
            let r = inspect::resolve(&self.t, &format!("{addr:#x}"), Some(type_name), None)?;
            let m = self.t.map_type(r.ty)?;
            let rend = Renderer::new(&self.t, Style::Text, 0);
            let mut v = Slots { r: &rend, key: m.key, elem: m.elem, skip, limit, render, seen: 0, items: Vec::new(), more: false };
            let h = decode::walk(&self.t, &m, addr, &mut v)?;
            Ok((h.len, v.items, v.more))
        })
    }

    /// type_graph(map_type_names, max_types=4000) -> [(id, name, kind, size, target, count, encoding,
    /// [(field, offset, type id)])]: the DWARF shape of the key and element types of these maps and of
    /// the types they are built from, for debuggers without Go types (LLDB gets them as C types).
    /// kind: "base" (encoding: DW_ATE_*), "struct" (fields), "ptr" (target, 0 = untyped or beyond the
    /// depth followed), "array" (target, count), "typedef" (target), "map" (a map type: the front
    /// end's own map typedef), "opaque" (size only). Pointers are followed 3 deep, types capped.
    #[pyo3(signature = (map_types, max_types=4000))]
    fn type_graph(&self, map_types: Vec<String>, max_types: usize) -> PyResult<Vec<TypeNode>> {
        guard(|| {
            use crate::binary::Die;
            let d = &self.t.bin.dwarf;
            let mut queue: std::collections::VecDeque<(u64, u32)> = std::collections::VecDeque::new();
            for name in &map_types {
                if let Some(m) = d.named(name).and_then(|id| self.t.map_type(id).ok()) {
                    queue.push_back((m.key, 0));
                    queue.push_back((m.elem, 0));
                }
            }
            let mut seen = std::collections::HashSet::new();
            let mut out: Vec<TypeNode> = Vec::new();
            while let Some((id, ptr_depth)) = queue.pop_front() {
                if out.len() >= max_types || !seen.insert(id) {
                    continue;
                }
                let Some(t) = d.get(id) else { continue };
                let size = d.size_of(id).unwrap_or(0);
                let is_map = t.go_kind & 0x1f == 21 || (t.name.starts_with("map[") && matches!(t.die, Die::Typedef { .. }));
                let node = if is_map {
                    (id, t.name.clone(), "map".to_string(), 8, 0, 0, 0, Vec::new())
                } else {
                    match &t.die {
                        Die::Base { encoding } => {
                            // DW_ATE_* from the Go kind (the DIE's own attribute as a fallback).
                            let ate = match go_kind(d, id) {
                                1 => 2,
                                2..=6 => 5,
                                7..=12 => 7,
                                13 | 14 => 4,
                                15 | 16 => 3,
                                _ => *encoding,
                            };
                            (id, t.name.clone(), "base".into(), size, 0, 0, ate, Vec::new())
                        }
                        Die::Struct { fields } => {
                            for f in fields {
                                queue.push_back((f.ty, ptr_depth));
                            }
                            let fs = fields.iter().map(|f| (f.name.clone(), f.offset, f.ty)).collect();
                            (id, t.name.clone(), "struct".into(), size, 0, 0, 0, fs)
                        }
                        Die::Pointer { target } => {
                            let target = target.filter(|_| ptr_depth < 3).unwrap_or(0);
                            if target != 0 {
                                queue.push_back((target, ptr_depth + 1));
                            }
                            (id, t.name.clone(), "ptr".into(), 8, target, 0, 0, Vec::new())
                        }
                        Die::Array { elem: Some(e), count } => {
                            queue.push_back((*e, ptr_depth));
                            (id, t.name.clone(), "array".into(), size, *e, *count, 0, Vec::new())
                        }
                        Die::Typedef { target: Some(x) } => {
                            queue.push_back((*x, ptr_depth));
                            (id, t.name.clone(), "typedef".into(), size, *x, 0, 0, Vec::new())
                        }
                        _ => (id, t.name.clone(), "opaque".into(), size, 0, 0, 0, Vec::new()),
                    }
                };
                out.push(node);
            }
            Ok(out)
        })
    }

    /// render(addr, type_name) -> the Go value of that type at addr, as gomap's text shows it (for
    /// debugger summaries of strings, slices and interfaces).
    fn render(&self, addr: u64, type_name: &str) -> PyResult<String> {
        guard(|| {
            let d = &self.t.bin.dwarf;
            let id = d.named(type_name).ok_or_else(|| Error::Expr(format!("no type {type_name} in the binary")))?;
            let size = d.size_of(id).unwrap_or(0).min(1 << 16) as usize;
            let mut bytes = vec![0u8; size];
            self.t.mem.read(addr, &mut bytes)?;
            let rend = Renderer::new(&self.t, Style::Text, 0);
            let mut b = Vec::new();
            rend.value(&mut b, id, &bytes);
            Ok(String::from_utf8_lossy(&b).into_owned())
        })
    }

    /// set_threads([(lwp, pc, sp, bp), ...]): the registers of the debugger's stopped threads (x86-64),
    /// so the census walks running goroutines from them; an empty list forgets them.
    fn set_threads(&self, regs: Vec<(u64, u64, u64, u64)>) {
        let regs = regs.into_iter().take(1 << 16).map(|(lwp, pc, sp, bp)| crate::memory::ThreadRegs { lwp, pc, sp, bp }).collect();
        self.t.set_threads(regs);
    }

    /// Whether a type name is a Go map type in this binary.
    fn is_map_type(&self, type_name: &str) -> bool {
        self.t.bin.dwarf.named(type_name).map(|id| self.t.map_type(id).is_ok()).unwrap_or(false)
    }

    /// Names of package-level variables that hold maps (for tab completion).
    fn map_globals(&self) -> Vec<String> {
        let d = &self.t.bin.dwarf;
        d.globals.values().filter(|g| d.get(g.ty).map(|t| t.go_key.is_some() || t.go_kind & 0x1f == 21).unwrap_or(false)).map(|g| g.name.clone()).collect()
    }

    /// Link-time address of a package-level variable (front ends compute PIE bias from it).
    fn dwarf_address(&self, name: &str) -> Option<u64> {
        self.t.bin.dwarf.globals.get(name).map(|g| g.addr)
    }

    /// Type name of a package-level variable.
    fn global_type(&self, name: &str) -> Option<String> {
        let d = &self.t.bin.dwarf;
        d.globals.get(name).map(|g| d.name_of(g.ty).to_string())
    }

    /// frame_locals(pc) -> [(name, type_id, type_name, kind, value)]: the variables of the Go
    /// function containing `pc` (a runtime address) that are live there. kind is "cfa" (value =
    /// offset from the frame's CFA), "addr" (value = runtime address), "reg" (value = DWARF
    /// register number holding the value) or "unavailable" (value 0). For debuggers without Go
    /// variable support (LLDB).
    fn frame_locals(&self, pc: u64) -> PyResult<Vec<(String, u64, String, String, i64)>> {
        guard(|| {
            let frames = open_frames(&self.t.bin.path)?;
            let (_func, locals) = frames.locals(pc.wrapping_sub(self.t.bias))?;
            let d = &self.t.bin.dwarf;
            Ok(locals
                .into_iter()
                .map(|l| {
                    use crate::binary::frames::Loc;
                    let (kind, v) = match l.loc {
                        Loc::Cfa(o) => ("cfa".to_string(), o),
                        Loc::Addr(a) => ("addr".to_string(), a.wrapping_add(self.t.bias) as i64),
                        Loc::Reg(r) => ("reg".to_string(), r as i64),
                        Loc::Unavailable(why) => (why.to_string(), 0),
                    };
                    (l.name, l.ty, d.name_of(l.ty).to_string(), kind, v)
                })
                .collect())
        })
    }

    /// follow(expr, var, type_id, fields, addr=None, value=None) -> (header, map type name): the
    /// map at the dotted `fields` path from a variable stored at `addr`, or whose value (a map or
    /// a pointer, e.g. from a register) is `value`.
    #[pyo3(signature = (expr, var, type_id, fields, addr=None, value=None))]
    fn follow(&self, expr: &str, var: &str, type_id: u64, fields: &str, addr: Option<u64>, value: Option<u64>) -> PyResult<(u64, String)> {
        guard(|| {
            let t = &self.t;
            let d = &t.bin.dwarf;
            let r = match (addr, value) {
                (Some(a), _) => inspect::resolve_path(t, expr, var, a, type_id, fields)?,
                (None, Some(v)) => {
                    if fields.is_empty() && t.map_type(type_id).is_ok() {
                        inspect::MapRef { name: expr.to_string(), addr: v, ty: type_id }
                    } else if let Some(p) = d.pointee(type_id) {
                        if v == 0 {
                            return Err(Error::Expr(format!("{var} is a nil pointer")));
                        }
                        inspect::resolve_path(t, expr, &format!("(*{var})"), v, p, fields)?
                    } else {
                        return Err(Error::Expr(format!("{var} is a {}, not a map", d.name_of(type_id))));
                    }
                }
                (None, None) => return Err(Error::Expr(format!("{var}: no address and no value"))),
            };
            // A named map type (`type Index map[string]int`) is a typedef of the map typedef:
            // report the map[K]V name, which is what type lookups by name understand.
            let mut id = r.ty;
            for _ in 0..8 {
                if d.name_of(id).starts_with("map[") {
                    break;
                }
                match d.get(id).map(|x| &x.die) {
                    Some(crate::binary::Die::Typedef { target: Some(next) }) => id = *next,
                    _ => break,
                }
            }
            let id = if d.name_of(id).starts_with("map[") { id } else { r.ty };
            Ok((r.addr, d.name_of(id).to_string()))
        })
    }

    fn describe(&self) -> String {
        format!("{} ({}), memory: {}", self.t.bin.path.display(), self.t.bin.build.raw, self.t.mem.describe())
    }

    fn go_version(&self) -> String {
        self.t.bin.build.version.clone()
    }
}

struct Pairs<'a, 'r> {
    r: &'a Renderer<'r>,
    key: u64,
    elem: u64,
    limit: u64,
    items: Vec<(String, String)>,
    more: bool,
}

impl decode::Visitor for Pairs<'_, '_> {
    fn wants_entries(&self) -> bool {
        true
    }
    fn stop_when_done(&self) -> bool {
        true
    }
    fn entry(&mut self, k: &[u8], e: &[u8]) -> bool {
        if self.items.len() as u64 >= self.limit {
            self.more = true;
            return false;
        }
        let (mut kb, mut eb) = (Vec::new(), Vec::new());
        self.r.value(&mut kb, self.key, k);
        self.r.value(&mut eb, self.elem, e);
        self.items.push((String::from_utf8_lossy(&kb).into_owned(), String::from_utf8_lossy(&eb).into_owned()));
        true
    }
}

/// reflect.Kind of a type, through typedefs (0 when DWARF does not say).
fn go_kind(d: &crate::binary::DwarfInfo, mut id: u64) -> u8 {
    for _ in 0..16 {
        let Some(t) = d.get(id) else { return 0 };
        if t.go_kind != 0 {
            return t.go_kind & 0x1f;
        }
        match t.die {
            crate::binary::Die::Typedef { target: Some(x) } => id = x,
            _ => return 0,
        }
    }
    0
}

type Entry = (u64, u64, Option<String>, Option<String>);
type TypeNode = (u64, String, String, u64, u64, u64, u8, Vec<(String, u64, u64)>);

/// Collects one page of entries with their addresses for `Session.entries`.
struct Slots<'a, 'r> {
    r: &'a Renderer<'r>,
    key: u64,
    elem: u64,
    skip: u64,
    limit: u64,
    render: u8,
    seen: u64,
    items: Vec<Entry>,
    more: bool,
}

impl Slots<'_, '_> {
    fn text(&self, id: u64, bytes: &[u8]) -> String {
        let mut b = Vec::new();
        self.r.value(&mut b, id, bytes);
        String::from_utf8_lossy(&b).into_owned()
    }
}

impl decode::Visitor for Slots<'_, '_> {
    fn wants_entries(&self) -> bool {
        true
    }
    fn stop_when_done(&self) -> bool {
        true
    }
    fn entry_at(&mut self, ka: u64, ea: u64, k: &[u8], e: &[u8]) -> bool {
        self.seen += 1;
        if self.seen <= self.skip {
            return true;
        }
        if self.items.len() as u64 >= self.limit {
            self.more = true;
            return false;
        }
        let kt = (self.render & 1 != 0).then(|| self.text(self.key, k));
        let et = (self.render & 2 != 0).then(|| self.text(self.elem, e));
        self.items.push((ka, ea, kt, et));
        true
    }
}

/// clap's error as one line: its first paragraph (the message and, for missing arguments, their
/// names) and the usage line, e.g. "the following required arguments were not provided: <EXPR>
/// (usage: show [OPTIONS] <EXPR>)".
fn one_line_usage_error(text: &str) -> String {
    let mut paras = text.split("\n\n");
    let first: Vec<&str> = paras.next().unwrap_or("").lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let mut msg = first.join(" ");
    msg = msg.trim_start_matches("error: ").trim().to_string();
    if msg.is_empty() {
        msg = "bad arguments".to_string();
    }
    if let Some(u) = paras.flat_map(str::lines).map(str::trim).find(|l| l.starts_with("Usage: ")) {
        msg = format!("{msg} (usage: {})", u.trim_start_matches("Usage: "));
    }
    msg
}

/// Parses argv and returns the help text (for `help gomap` and completion), or None.
#[pyfunction]
fn help_text(argv: Vec<String>) -> Option<String> {
    match DebuggerCli::try_parse_from(argv.iter().chain([&"--help".to_string()])) {
        Ok(_) => None,
        Err(e) => Some(e.render().to_string()),
    }
}

/// Subcommand names, for completion.
#[pyfunction]
fn subcommands() -> Vec<String> {
    use clap::CommandFactory;
    DebuggerCli::command().get_subcommands().map(|c| c.get_name().to_string()).collect()
}

/// One argument of a subcommand's grammar: (kind "option" | "flag" | "positional", long name (or
/// the positional's name), short letter or "", value name, help, possible values, required,
/// repeatable).
type ArgSpec = (String, String, String, String, String, Vec<String>, bool, bool);

/// options(sub) -> [ArgSpec], or None for an unknown subcommand: the clap grammar of one
/// subcommand, for debuggers that parse and complete options themselves (LLDB 18+ parsed
/// commands). `--help` is left out (the front end adds its own).
#[pyfunction]
fn options(sub: &str) -> Option<Vec<ArgSpec>> {
    use clap::CommandFactory;
    let cmd = DebuggerCli::command();
    let sc = cmd.get_subcommands().find(|c| c.get_name() == sub)?;
    let mut out = Vec::new();
    for a in sc.get_arguments() {
        let id = a.get_id().as_str();
        if id == "help" || a.is_hide_set() {
            continue;
        }
        let takes = a.get_action().takes_values();
        let kind = if a.is_positional() { "positional" } else if takes { "option" } else { "flag" };
        let name = a.get_long().map(str::to_string).unwrap_or_else(|| id.to_string());
        let short = a.get_short().map(|c| c.to_string()).unwrap_or_default();
        let value = a.get_value_names().and_then(|v| v.first()).map(|v| v.to_string()).unwrap_or_default();
        let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
        let possible = a.get_possible_values().iter().filter(|v| !v.is_hide_set()).map(|v| v.get_name().to_string()).collect();
        let multiple = matches!(a.get_action(), clap::ArgAction::Append) || a.get_num_args().is_some_and(|n| n.max_values() > 1);
        out.push((kind.to_string(), name, short, value, help, possible, a.is_required_set(), multiple));
    }
    Some(out)
}

/// Checks that a core file opens (for the debugger fast path), without keeping it.
#[pyfunction]
fn probe_core(core: &str) -> bool {
    CoreMemory::open(Path::new(core), None).is_ok()
}

/// Whether a pid's memory is readable by us.
#[pyfunction]
fn probe_pid(pid: u32) -> bool {
    LiveMemory::open(pid).is_ok()
}

/// Panics inside the error boundary, so tests can prove that a Rust panic (which should never
/// happen) reaches the debugger as a `GomapError` and not as an abort of the debugger.
#[pyfunction]
fn _panic_probe() -> PyResult<()> {
    guard(|| -> Result<()> { panic!("panic probe") })
}

/// The `gomap` command of the Python package: the CLI itself (`entry::cli_main`), given the
/// package's directory so that `gomap init` names the front ends installed with it.
#[pyfunction]
#[pyo3(signature = (argv, frontends=None))]
fn cli_main(py: Python<'_>, argv: Vec<std::ffi::OsString>, frontends: Option<std::path::PathBuf>) -> u8 {
    py.detach(|| crate::entry::cli_main(argv, frontends.as_deref()))
}

#[pymodule]
fn _gomap(m: &Bound<'_, PyModule>) -> PyResult<()> {
    quiet_panics();
    m.add_class::<Session>()?;
    m.add("GomapError", m.py().get_type::<GomapError>())?;
    m.add_function(wrap_pyfunction!(help_text, m)?)?;
    m.add_function(wrap_pyfunction!(subcommands, m)?)?;
    m.add_function(wrap_pyfunction!(probe_core, m)?)?;
    m.add_function(wrap_pyfunction!(probe_pid, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_probe, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(set_interrupt_probe, m)?)?;
    m.add_function(wrap_pyfunction!(options, m)?)?;
    m.add("__version__", env!("GOMAP_VERSION"))?;
    Ok(())
}
