//! Go values from a DWARF type and the bytes of the target, rendered as JSON (CONTRACT.md's rules)
//! or as Go-like text. A type is compiled once into a [`Plan`]; rendering an entry then costs no
//! DWARF look-ups and no allocation beyond the output buffer.

use crate::binary::{Die, DwarfInfo, TypeId};
use crate::memory::{le_uint, MemoryExt};
use crate::rtype::{RtLayout, RtShape};
use crate::target::Target;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

mod flat;
pub use flat::Flat;

/// reflect.Kind values as the Go linker records them in DW_AT_go_kind.
pub(crate) mod kind {
    pub const BOOL: u8 = 1;
    pub const INT: u8 = 2;
    pub const INT64: u8 = 6;
    pub const UINT: u8 = 7;
    pub const UINTPTR: u8 = 12;
    pub const FLOAT32: u8 = 13;
    pub const FLOAT64: u8 = 14;
    pub const COMPLEX64: u8 = 15;
    pub const COMPLEX128: u8 = 16;
    pub const ARRAY: u8 = 17;
    pub const CHAN: u8 = 18;
    pub const FUNC: u8 = 19;
    pub const INTERFACE: u8 = 20;
    pub const MAP: u8 = 21;
    pub const PTR: u8 = 22;
    pub const SLICE: u8 = 23;
    pub const STRING: u8 = 24;
    pub const STRUCT: u8 = 25;
    pub const UNSAFE_POINTER: u8 = 26;
}

/// Limits on what one value may make us read or print.
pub const MAX_STRING: u64 = 16 << 20;
pub const MAX_ITEMS: u64 = 4096;
const MAX_NESTING: u32 = 32;
/// Default string limit of text output (gdb's `print elements`); JSON has none below MAX_STRING.
pub const TEXT_MAX_STRING: u64 = 200;
/// How deep one key or value may nest through slices, interfaces, nested maps, structs and arrays.
/// Each level costs a few hundred bytes of Rust stack (a nested map's walk a few KiB), so this
/// bounds the stack whatever the data: see `render_is_bounded_on_a_small_stack`.
pub const MAX_DEPTH: u32 = 64;
/// How many times one object (slice array, boxed interface value, map) is rendered in full within
/// one key or value; later references print a `shared` marker. A DAG of 2^40 paths stays linear.
pub const MAX_SHARED: u32 = 2;
/// Output bytes one key or value may produce besides its strings' contents (brackets, numbers,
/// field names, markers). String contents have their own allowance: `MAX_STRING` bytes in all.
pub const ENTRY_BUDGET: usize = 1 << 20;
/// How many bytes of a string may be shown when its key or value has already shown `shown` bytes of
/// strings (0 for a string on its own): `max_string` for each string, and `MAX_STRING` for all the
/// strings of a key or value together (a slice of a thousand long strings does not print a thousand
/// times 16 MiB), but at least 16 bytes of each (within `max_string`), so every string shows a
/// prefix. The one cut rule of the general and the flat rendering.
pub(crate) fn string_allowance(max_string: u64, shown: u64) -> u64 {
    MAX_STRING.saturating_sub(shown).max(16).min(max_string)
}
/// A string length no address space can hold: a structurally impossible header, not a long string.
const IMPOSSIBLE_STRING: u64 = 1 << 48;

#[derive(Debug)]
pub enum Plan {
    Bool,
    Int(usize),
    Uint(usize),
    F32,
    F64,
    C64,
    C128,
    Str { ptr: usize, len: usize },
    /// Pointers, channels and unsafe.Pointer: shown as an address.
    Addr,
    /// A func value: a pointer to a funcval whose first word is the code address.
    Func,
    Slice { elem: TypeId, elem_size: u64, array: usize, len: usize, cap: usize },
    Array { elem: Box<Plan>, count: u64, stride: u64 },
    Struct(Vec<(String, usize, Plan)>),
    Iface { empty: bool },
    Map(TypeId),
    /// A type nested deeper than MAX_NESTING: legal, printed as an `elided` marker.
    Deep,
    /// A slice whose element type is known only from its runtime type descriptor (no DWARF).
    RtSlice { elem: u64, elem_size: u64 },
    /// A value we can only locate (a map without DWARF, an unreadable descriptor): its address.
    Opaque,
    Unknown(String),
}

impl Plan {
    /// Whether rendering this plan may follow a pointer into another object (a slice's array, an
    /// interface's boxed value, a nested map): only those can repeat or contain themselves.
    pub fn descends(&self) -> bool {
        match self {
            Plan::Slice { .. } | Plan::RtSlice { .. } | Plan::Iface { .. } | Plan::Map(_) => true,
            Plan::Struct(fields) => fields.iter().any(|(_, _, p)| p.descends()),
            Plan::Array { elem, .. } => elem.descends(),
            _ => false,
        }
    }

    /// Cheap, conservative: a scalar plan, rendered without the per-value bookkeeping.
    fn is_leaf(&self) -> bool {
        !matches!(
            self,
            Plan::Slice { .. } | Plan::RtSlice { .. } | Plan::Iface { .. } | Plan::Map(_) | Plan::Struct(_) | Plan::Array { .. }
        )
    }
}

/// Compiles the rendering plan for a type.
pub fn compile(d: &DwarfInfo, id: TypeId) -> Plan {
    compile_depth(d, id, 0)
}

pub(crate) fn go_kind(d: &DwarfInfo, mut id: TypeId) -> (u8, TypeId) {
    for _ in 0..16 {
        let Some(t) = d.get(id) else { return (0, id) };
        if t.go_kind != 0 {
            return (t.go_kind & 0x1f, id);
        }
        match t.die {
            Die::Typedef { target: Some(x) } => id = x,
            _ => break,
        }
    }
    (0, id)
}

fn compile_depth(d: &DwarfInfo, id: TypeId, depth: u32) -> Plan {
    if depth > MAX_NESTING {
        return Plan::Deep;
    }
    let (k, kid) = go_kind(d, id);
    let size = d.size_of(id).unwrap_or(0) as usize;
    let layout_id = d.strip_typedefs(kid);
    let fld = |name: &str, default: usize| d.field(layout_id, name).map(|f| f.offset as usize).unwrap_or(default);
    match k {
        kind::BOOL => Plan::Bool,
        kind::INT..=kind::INT64 => Plan::Int(size),
        kind::UINT..=kind::UINTPTR => Plan::Uint(size),
        kind::FLOAT32 => Plan::F32,
        kind::FLOAT64 => Plan::F64,
        kind::COMPLEX64 => Plan::C64,
        kind::COMPLEX128 => Plan::C128,
        kind::STRING => Plan::Str { ptr: fld("str", 0), len: fld("len", 8) },
        kind::FUNC => Plan::Func,
        kind::PTR | kind::CHAN | kind::UNSAFE_POINTER => Plan::Addr,
        kind::MAP => Plan::Map(id),
        kind::INTERFACE => {
            let empty = d.field(layout_id, "_type").is_some() || d.name_of(kid).starts_with("interface {}");
            Plan::Iface { empty }
        }
        kind::SLICE => {
            let elem = d.get(kid).and_then(|t| t.go_elem).or_else(|| {
                d.field(layout_id, "array").and_then(|f| d.pointee(f.ty))
            });
            match elem {
                Some(e) => Plan::Slice {
                    elem: e,
                    elem_size: d.size_of(e).unwrap_or(0),
                    array: fld("array", 0),
                    len: fld("len", 8),
                    cap: fld("cap", 16),
                },
                None => Plan::Unknown(d.name_of(id).to_string()),
            }
        }
        kind::ARRAY => match d.get(layout_id).map(|t| &t.die) {
            Some(Die::Array { elem: Some(e), count }) => Plan::Array {
                elem: Box::new(compile_depth(d, *e, depth + 1)),
                count: *count,
                stride: d.size_of(*e).unwrap_or(0),
            },
            _ => Plan::Unknown(d.name_of(id).to_string()),
        },
        kind::STRUCT => match d.fields(layout_id) {
            Some(fields) => Plan::Struct(
                fields.iter().map(|f| (f.name.clone(), f.offset as usize, compile_depth(d, f.ty, depth + 1))).collect(),
            ),
            None => Plan::Unknown(d.name_of(id).to_string()),
        },
        _ => {
            // Types without DW_AT_go_kind (synthesized runtime types): fall back to the DWARF shape.
            match d.get(layout_id).map(|t| &t.die) {
                Some(Die::Pointer { .. }) | Some(Die::Func) => Plan::Addr,
                Some(Die::Base { encoding }) => match *encoding {
                    2 => Plan::Bool,
                    4 if size == 4 => Plan::F32,
                    4 => Plan::F64,
                    5 => Plan::Int(size),
                    _ => Plan::Uint(size),
                },
                Some(Die::Struct { fields }) => Plan::Struct(
                    fields.iter().map(|f| (f.name.clone(), f.offset as usize, compile_depth(d, f.ty, depth + 1))).collect(),
                ),
                _ => Plan::Unknown(d.name_of(id).to_string()),
            }
        }
    }
}

/// Compiled plans, shared by every render of a session.
#[derive(Default)]
pub struct Plans {
    cache: Mutex<HashMap<TypeId, Arc<Plan>>>,
    /// Plans of runtime type descriptors without a DWARF entry, by descriptor address.
    rt_cache: Mutex<HashMap<u64, Arc<Plan>>>,
    rt: std::sync::OnceLock<RtLayout>,
}

/// The DWARF type of a descriptor, unless GOMAP_DESCRIPTORS_ONLY=1 asks to render interface values
/// from their runtime type descriptors alone (how the tests check that path on every toolchain,
/// whichever types the linker happened to describe).
fn dwarf_of(t: &Target, rtype: u64) -> Option<TypeId> {
    if descriptors_only() {
        return None;
    }
    t.dwarf_type_of(rtype)
}

fn descriptors_only() -> bool {
    static ONLY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ONLY.get_or_init(|| std::env::var_os("GOMAP_DESCRIPTORS_ONLY").is_some_and(|v| v == "1"))
}

/// Path and shared-count identity of a descriptor-only type (DWARF type ids are DIE offsets, far below).
fn rt_key(rtype: u64) -> TypeId {
    rtype | 1 << 63
}

impl Plans {
    /// The plan of a runtime type descriptor: its DWARF type's when it has one, else one compiled
    /// from the descriptor itself.
    pub fn rtype(&self, t: &Target, rtype: u64) -> Arc<Plan> {
        if let Some(id) = dwarf_of(t, rtype) {
            return self.get(&t.bin.dwarf, id);
        }
        if let Some(p) = self.rt_cache.lock().ok().and_then(|c| c.get(&rtype).cloned()) {
            return p;
        }
        let p = Arc::new(self.compile_rtype(t, rtype, 0));
        if let Ok(mut c) = self.rt_cache.lock() {
            c.insert(rtype, p.clone());
        }
        p
    }

    pub(crate) fn rt_layout(&self, t: &Target) -> &RtLayout {
        self.rt.get_or_init(|| RtLayout::discover(&t.bin.dwarf))
    }

    fn compile_rtype(&self, t: &Target, rtype: u64, depth: u32) -> Plan {
        if depth > MAX_NESTING {
            return Plan::Deep;
        }
        if let Some(id) = dwarf_of(t, rtype) {
            return compile_depth(&t.bin.dwarf, id, depth);
        }
        let l = self.rt_layout(t);
        let size_of = |r: u64| l.kind_size(t, r).map(|(_, s)| s);
        match l.shape(t, rtype) {
            Some(RtShape::Scalar { kind, size }) => match kind {
                kind::BOOL => Plan::Bool,
                kind::INT..=kind::INT64 => Plan::Int(size as usize),
                kind::UINT..=kind::UINTPTR => Plan::Uint(size as usize),
                kind::FLOAT32 => Plan::F32,
                kind::FLOAT64 => Plan::F64,
                kind::COMPLEX64 => Plan::C64,
                kind::COMPLEX128 => Plan::C128,
                // The runtime's own string header: data pointer, then length.
                kind::STRING => Plan::Str { ptr: 0, len: 8 },
                kind::FUNC => Plan::Func,
                kind::PTR | kind::CHAN | kind::UNSAFE_POINTER => Plan::Addr,
                _ => Plan::Opaque,
            },
            Some(RtShape::Slice { elem }) => match size_of(elem) {
                Some(elem_size) if elem_size <= crate::memory::MAX_READ as u64 => Plan::RtSlice { elem, elem_size },
                _ => Plan::Opaque,
            },
            // Sizes come from the target's memory: an implausible one is not followed.
            Some(RtShape::Array { elem, len }) => match size_of(elem) {
                Some(stride) if stride <= crate::memory::MAX_READ as u64 => {
                    Plan::Array { elem: Box::new(self.compile_rtype(t, elem, depth + 1)), count: len, stride }
                }
                _ => Plan::Opaque,
            },
            Some(RtShape::Struct(fields)) => Plan::Struct(
                fields
                    .into_iter()
                    .map(|(name, off, typ)| (name, off as usize, self.compile_rtype(t, typ, depth + 1)))
                    .collect(),
            ),
            Some(RtShape::Iface { empty }) => Plan::Iface { empty },
            None => Plan::Opaque,
        }
    }

    /// Whether the runtime stores a value of this descriptor's type directly in an interface's data
    /// word: the compiler's rule (pointer-shaped types) applied to the descriptor's shape.
    pub(crate) fn rt_direct(&self, t: &Target, rtype: u64, depth: u32) -> bool {
        if depth > 8 {
            return false;
        }
        if let Some(id) = dwarf_of(t, rtype) {
            return direct_iface(&t.bin.dwarf, id, 0);
        }
        let l = self.rt_layout(t);
        match l.shape(t, rtype) {
            Some(RtShape::Scalar { kind, .. }) => {
                matches!(kind, kind::PTR | kind::CHAN | kind::MAP | kind::FUNC | kind::UNSAFE_POINTER)
            }
            Some(RtShape::Struct(f)) if f.len() == 1 => self.rt_direct(t, f[0].2, depth + 1),
            Some(RtShape::Array { elem, len: 1 }) => self.rt_direct(t, elem, depth + 1),
            _ => false,
        }
    }
}

impl Plans {
    pub fn get(&self, d: &DwarfInfo, id: TypeId) -> Arc<Plan> {
        if let Some(p) = self.cache.lock().ok().and_then(|c| c.get(&id).cloned()) {
            return p;
        }
        let p = Arc::new(compile(d, id));
        if let Ok(mut c) = self.cache.lock() {
            c.insert(id, p.clone());
        }
        p
    }
}

/// Output style.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Style {
    Json,
    Text,
}

/// Why a value was not rendered in full. None of these is an error: the data is legal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Elided {
    /// The object is already being rendered on the current path (it contains itself).
    Cycle(u64),
    /// The object was already rendered in full MAX_SHARED times within this key or value.
    Shared(u64),
    /// MAX_DEPTH levels of nesting.
    Depth,
    /// The key or value reached its output budget.
    Budget,
}

/// The state of rendering one key or value: the objects open on the current path, how often each
/// object was rendered in full, and where this key's or value's output started (its budget).
#[derive(Default)]
struct Walk {
    /// Nesting of `value_with` calls: a nested map's entries re-enter at level > 0.
    level: u32,
    /// Plan depth a nested map's entries continue from.
    depth_base: u32,
    /// Nested maps being expanded on the current path.
    maps_open: u32,
    start: usize,
    /// String bytes shown in the current key or value (against `MAX_STRING`, for all its strings).
    str_shown: u64,
    /// Output those string contents took (not counted against `ENTRY_BUDGET`).
    str_out: usize,
    path: Vec<(u64, TypeId)>,
    seen: HashMap<(u64, TypeId), u32>,
}

/// Renders values of one target. Counts the values it could not read, for the `corrupt` finding.
pub struct Renderer<'t> {
    pub t: &'t Target,
    pub style: Style,
    /// How many levels of nested maps to expand (0: show address and len only).
    pub map_depth: u32,
    /// Bytes of a string to print (longer ones are cut with a marker); capped at MAX_STRING.
    pub max_string: u64,
    pub errors: std::cell::Cell<u64>,
    pub first_error: std::cell::RefCell<Option<String>>,
    /// Values shown with an `elided` / `cycle` / `shared` marker or a cut string.
    pub elided: std::cell::Cell<u64>,
    walk: std::cell::RefCell<Walk>,
    /// String bytes of a batch of entries read ahead in address order ([`Renderer::gather`]).
    gathered: std::cell::RefCell<Gathered>,
}

/// The most bytes of one string a gathering pass copies (longer ones are read when rendered).
const GATHER_MAX_STRING: u64 = 4096;
/// The most string bytes one gathering pass holds: a batch beyond it reads the rest when rendered.
const GATHER_MAX_BYTES: usize = 16 << 20;
/// Strings of a struct array gathered ahead (longer arrays are read when rendered).
const GATHER_MAX_ARRAY: u64 = 16;

/// One string of a gathered batch: where it is, and where its bytes are in the arena.
#[derive(Clone, Copy)]
struct GRec {
    p: u64,
    n: u32,
    /// Offset in the arena, or `u32::MAX` when the bytes were not copied (unreadable, over a limit).
    off: u32,
}

/// The strings of a batch of entries, in the order their rendering asks for them, and their bytes
/// copied in address order. A map's strings sit all over the heap in hash order: read one by one,
/// each is a TLB and cache miss; read sorted by address, neighbours share pages and lines.
#[derive(Default)]
pub struct Gathered {
    recs: Vec<GRec>,
    /// `recs` in address order (kept for its memory).
    sorted: Vec<GRec>,
    arena: Vec<u8>,
    /// Index of the first string of each entry (and one past the last entry's).
    starts: Vec<u32>,
    /// The strings of the entry being rendered: `cur..end` of `recs`.
    cur: usize,
    end: usize,
}

impl<'t> Renderer<'t> {
    pub fn new(t: &'t Target, style: Style, map_depth: u32) -> Self {
        let max_string = if style == Style::Text { TEXT_MAX_STRING } else { MAX_STRING };
        Renderer {
            t,
            style,
            map_depth,
            max_string,
            errors: Default::default(),
            first_error: Default::default(),
            elided: Default::default(),
            walk: Default::default(),
            gathered: Default::default(),
        }
    }

    /// A fresh renderer with the same settings (style, depth, string limit) and no counts: one per
    /// thread of a parallel walk.
    pub fn like(&self) -> Renderer<'t> {
        let mut r = Renderer::new(self.t, self.style, self.map_depth);
        r.max_string = self.max_string;
        r
    }

    /// `--max-string N` (0: no limit below MAX_STRING).
    pub fn with_max_string(mut self, n: Option<u64>) -> Self {
        if let Some(n) = n {
            self.max_string = if n == 0 { MAX_STRING } else { n.min(MAX_STRING) };
        }
        self
    }

    /// Output of the current key or value so far besides string contents (0 outside one: a scalar
    /// rendered on its own).
    fn used(&self, out: &[u8]) -> usize {
        let w = self.walk.borrow();
        if w.level == 0 {
            0
        } else {
            out.len().saturating_sub(w.start).saturating_sub(w.str_out)
        }
    }

    fn over_budget(&self, out: &[u8]) -> bool {
        self.used(out) > ENTRY_BUDGET
    }

    /// Writes `bytes`, a string's contents, and counts them against the string allowance rather
    /// than the entry budget.
    fn string_contents(&self, out: &mut Vec<u8>, bytes: &[u8], json: bool) {
        let before = out.len();
        string_bytes(out, bytes, json);
        let mut w = self.walk.borrow_mut();
        if w.level > 0 {
            w.str_shown = w.str_shown.saturating_add(bytes.len() as u64);
            w.str_out = w.str_out.saturating_add(out.len() - before);
        }
    }

    /// Opens the object at `addr` of type `ty` for a full rendering, or says why not.
    fn enter(&self, out: &[u8], addr: u64, ty: TypeId, depth: u32) -> std::result::Result<(), Elided> {
        if depth >= MAX_DEPTH {
            return Err(Elided::Depth);
        }
        if self.over_budget(out) {
            return Err(Elided::Budget);
        }
        let mut w = self.walk.borrow_mut();
        if w.path.contains(&(addr, ty)) {
            return Err(Elided::Cycle(addr));
        }
        let n = w.seen.entry((addr, ty)).or_insert(0);
        if *n >= MAX_SHARED {
            return Err(Elided::Shared(addr));
        }
        *n += 1;
        w.path.push((addr, ty));
        Ok(())
    }

    fn leave(&self) {
        self.walk.borrow_mut().path.pop();
    }

    /// The marker printed in place of a value that is not rendered in full (README: "Values that
    /// contain themselves").
    pub fn elide(&self, out: &mut Vec<u8>, why: Elided) {
        self.elided.set(self.elided.get() + 1);
        let json = self.style == Style::Json;
        let (word, addr) = match why {
            Elided::Cycle(a) => ("cycle", Some(a)),
            Elided::Shared(a) => ("shared", Some(a)),
            Elided::Depth => ("depth", None),
            Elided::Budget => ("budget", None),
        };
        // JSON {"cycle":"0x.."} / {"elided":"depth"}; text <cycle 0x..> / <elided: depth>.
        let (open, mid, close): (&[u8], &[u8], &[u8]) = if json { (b"{\"", b"\":", b"}") } else { (b"<", b" ", b">") };
        out.extend_from_slice(open);
        match addr {
            Some(a) => {
                out.extend_from_slice(word.as_bytes());
                out.extend_from_slice(mid);
                hex(out, a, json);
            }
            None => {
                out.extend_from_slice(if json { b"elided\":\"" } else { b"elided: " });
                out.extend_from_slice(word.as_bytes());
                if json {
                    out.push(b'"');
                }
            }
        }
        out.extend_from_slice(close);
    }

    /// Whether a nested map at this point is expanded (`--depth`).
    fn expands_maps(&self) -> bool {
        self.walk.borrow().maps_open < self.map_depth
    }

    /// Opens a nested map whose entries render at plan depth `depth`; returns the depth to restore.
    fn open_map(&self, depth: u32) -> u32 {
        let mut w = self.walk.borrow_mut();
        w.maps_open += 1;
        std::mem::replace(&mut w.depth_base, depth)
    }

    fn close_map(&self, depth_base: u32) {
        let mut w = self.walk.borrow_mut();
        w.maps_open = w.maps_open.saturating_sub(1);
        w.depth_base = depth_base;
    }

    /// Whether the current key or value has used up its output budget (a nested map stops there).
    pub(crate) fn budget_spent(&self, out: &[u8]) -> bool {
        self.over_budget(out)
    }

    fn error(&self, out: &mut Vec<u8>, msg: String) {
        self.errors.set(self.errors.get() + 1);
        match self.style {
            Style::Json => {
                out.extend_from_slice(b"{\"error\":");
                json_str(out, &msg);
                out.push(b'}');
            }
            Style::Text => {
                out.extend_from_slice(b"<");
                out.extend_from_slice(msg.as_bytes());
                out.extend_from_slice(b">");
            }
        }
        let mut f = self.first_error.borrow_mut();
        if f.is_none() {
            *f = Some(msg);
        }
    }

    /// Renders the value of type `ty` whose bytes are `b`.
    pub fn value(&self, out: &mut Vec<u8>, ty: TypeId, b: &[u8]) {
        let plan = self.t.plans.get(&self.t.bin.dwarf, ty);
        self.value_with(out, &plan, b);
    }

    /// Renders with a plan the caller looked up once (`Plans::get`): the per-entry path of a walk,
    /// where a lock and a hash look-up per key and value cost more than rendering an int.
    /// A call at the top level starts a new key or value (fresh budget, path and shared counts);
    /// a nested map's entries continue the one they are part of.
    #[inline]
    pub fn value_with(&self, out: &mut Vec<u8>, plan: &Plan, b: &[u8]) {
        if plan.is_leaf() {
            return self.plan(out, plan, b, 0);
        }
        let depth = {
            let mut w = self.walk.borrow_mut();
            if w.level == 0 {
                w.start = out.len();
                w.str_shown = 0;
                w.str_out = 0;
                w.path.clear();
                if !w.seen.is_empty() {
                    w.seen.clear();
                }
                w.depth_base = 0;
            }
            w.level += 1;
            w.depth_base
        };
        self.plan(out, plan, b, depth);
        let mut w = self.walk.borrow_mut();
        w.level = w.level.saturating_sub(1);
    }

    /// Starts loading the string bytes a value's rendering will read (a string, or the string fields
    /// of a struct), without reading them: for a map of strings the walk is bound by cache misses
    /// on string bytes scattered over the heap, and hinting a bucket's worth of them at once lets
    /// those misses overlap.
    #[inline]
    pub fn prefetch(&self, p: &Plan, b: &[u8]) {
        match p {
            Plan::Str { ptr, len } => {
                if le_uint(b, *len, 8) != 0 {
                    if let Some(v) = self.t.mem.view(le_uint(b, *ptr, 8), 1) {
                        prefetch_read(v.as_ptr());
                    }
                }
            }
            Plan::Struct(fields) => {
                for (_, off, f) in fields {
                    if matches!(f, Plan::Str { .. }) {
                        self.prefetch(f, b.get(*off..).unwrap_or(&[]));
                    }
                }
            }
            _ => {}
        }
    }

    /// The gathering pass over a batch of `count` entries (fixed-size key and element records):
    /// lists the strings each entry's rendering will read (a string key or value, the string fields
    /// of a struct, recursively, and of short arrays), then copies their bytes in address order.
    /// [`Renderer::gathered_entry`] then points the renderer at entry `i`'s strings. The output is
    /// the same with or without it: a string is taken from the gathered bytes only when its address
    /// and length are the ones rendering asks for, and is read from memory otherwise.
    pub fn gather(&self, key: &Plan, elem: &Plan, keys: &[u8], ks: usize, elems: &[u8], es: usize, count: usize) {
        let mut g = self.gathered.borrow_mut();
        let g = &mut *g;
        g.recs.clear();
        g.arena.clear();
        g.starts.clear();
        g.cur = 0;
        g.end = 0;
        let limit = self.max_string.min(GATHER_MAX_STRING);
        fn rec(v: &[u8], size: usize, i: usize) -> &[u8] {
            v.get(i * size..(i + 1) * size).unwrap_or(&[])
        }
        let (mut kslots, mut eslots) = (Vec::new(), Vec::new());
        string_slots(key, 0, &mut kslots, 0);
        string_slots(elem, 0, &mut eslots, 0);
        for i in 0..count {
            g.starts.push(g.recs.len() as u32);
            for (slots, b) in [(&kslots, rec(keys, ks, i)), (&eslots, rec(elems, es, i))] {
                for &(ptr, len) in slots.iter() {
                    let n = le_uint(b, len, 8);
                    if n != 0 && n <= limit {
                        g.recs.push(GRec { p: le_uint(b, ptr, 8), n: n as u32, off: u32::MAX });
                    }
                }
            }
        }
        g.starts.push(g.recs.len() as u32);
        if g.recs.is_empty() {
            return;
        }
        // Each string's place in the arena is in rendering order, so that rendering reads the arena
        // front to back; the copies below write it in address order (writes do not stall).
        let mut total = 0usize;
        for r in g.recs.iter_mut() {
            if total + r.n as usize <= GATHER_MAX_BYTES {
                r.off = total as u32;
                total += r.n as usize;
            }
        }
        g.arena.resize(total, 0);
        // Counting sort of the strings by page (coarser when they span more pages than there are
        // strings): two linear passes, then the copies walk memory upwards.
        let (lo, hi) = g.recs.iter().fold((u64::MAX, 0u64), |(lo, hi), r| (lo.min(r.p), hi.max(r.p)));
        let n = g.recs.len();
        let mut shift = 12u32;
        while shift < 63 && ((hi - lo) >> shift) as usize > n.max(1 << 12) {
            shift += 1;
        }
        let buckets = ((hi - lo) >> shift) as usize + 2;
        let mut first = vec![0u32; buckets];
        for r in &g.recs {
            first[((r.p - lo) >> shift) as usize + 1] += 1;
        }
        for b in 1..buckets {
            first[b] += first[b - 1];
        }
        // The records themselves are moved into address order (a permutation of indexes would
        // make the copy loop below read `recs` at random, a miss per string on a big batch).
        let mut sorted = std::mem::take(&mut g.sorted);
        sorted.clear();
        sorted.resize(n, GRec { p: 0, n: 0, off: u32::MAX });
        for r in &g.recs {
            let b = ((r.p - lo) >> shift) as usize;
            if let Some(slot) = sorted.get_mut(first[b] as usize) {
                *slot = *r;
            }
            first[b] += 1;
        }
        drop(first);
        const AHEAD: usize = 8;
        let mut failed: Vec<u32> = Vec::new();
        for j in 0..n {
            if let Some(a) = sorted.get(j + AHEAD) {
                if let Some(v) = self.t.mem.view(a.p, 1) {
                    prefetch_read(v.as_ptr());
                }
            }
            let r = sorted[j];
            if r.off == u32::MAX {
                continue;
            }
            let dst = g.arena.get_mut(r.off as usize..r.off as usize + r.n as usize);
            match (self.t.mem.view(r.p, r.n as usize), dst) {
                (Some(v), Some(d)) => copy_short(d, v),
                // Read when rendered instead (and reported there if unreadable).
                _ => failed.push(r.off),
            }
        }
        g.sorted = sorted;
        if !failed.is_empty() {
            // Arena offsets are unique (every gathered string has at least one byte).
            failed.sort_unstable();
            for r in g.recs.iter_mut() {
                if failed.binary_search(&r.off).is_ok() {
                    r.off = u32::MAX;
                }
            }
        }
    }

    /// Renders entry `i` of the gathered batch next (its strings from the gathered bytes).
    pub fn gathered_entry(&self, i: usize) {
        let mut g = self.gathered.borrow_mut();
        let (cur, end) = match (g.starts.get(i), g.starts.get(i + 1)) {
            (Some(&a), Some(&b)) => (a as usize, b as usize),
            _ => (0, 0),
        };
        g.cur = cur;
        g.end = end;
    }

    /// Forgets the gathered batch (its memory stays for the next one).
    pub fn gathered_done(&self) {
        let mut g = self.gathered.borrow_mut();
        g.cur = 0;
        g.end = 0;
    }

    fn plan(&self, out: &mut Vec<u8>, p: &Plan, b: &[u8], depth: u32) {
        let json = self.style == Style::Json;
        match p {
            Plan::Bool => out.extend_from_slice(if b.first().copied().unwrap_or(0) != 0 { b"true" } else { b"false" }),
            Plan::Int(n) => {
                let v = le_uint(b, 0, *n);
                let shift = 64 - 8 * (*n).clamp(1, 8) as u32;
                let v = ((v << shift) as i64) >> shift;
                push_i64(out, v);
            }
            Plan::Uint(n) => push_u64(out, le_uint(b, 0, *n)),
            Plan::F32 => float(out, f32::from_bits(le_uint(b, 0, 4) as u32) as f64, true, json),
            Plan::F64 => float(out, f64::from_bits(le_uint(b, 0, 8)), false, json),
            Plan::C64 | Plan::C128 => {
                let (re, im, single) = if matches!(p, Plan::C64) {
                    (f32::from_bits(le_uint(b, 0, 4) as u32) as f64, f32::from_bits(le_uint(b, 4, 4) as u32) as f64, true)
                } else {
                    (f64::from_bits(le_uint(b, 0, 8)), f64::from_bits(le_uint(b, 8, 8)), false)
                };
                if json {
                    out.push(b'[');
                    float(out, re, single, true);
                    out.push(b',');
                    float(out, im, single, true);
                    out.push(b']');
                } else {
                    out.push(b'(');
                    float(out, re, single, false);
                    if !(im < 0.0) && !im.is_nan() {
                        out.push(b'+');
                    }
                    float(out, im, single, false);
                    out.extend_from_slice(b"i)");
                }
            }
            Plan::Str { ptr, len } => {
                let (p, n) = (le_uint(b, *ptr, 8), le_uint(b, *len, 8));
                self.string(out, p, n);
            }
            Plan::Addr | Plan::Opaque => hex(out, le_uint(b, 0, 8), json),
            Plan::Func => self.func(out, le_uint(b, 0, 8)),
            Plan::Deep => self.elide(out, Elided::Depth),
            Plan::Map(id) => self.nested_map(out, *id, le_uint(b, 0, 8), depth),
            Plan::Iface { empty } => self.iface(out, *empty, le_uint(b, 0, 8), le_uint(b, 8, 8), depth),
            Plan::Slice { elem, elem_size, array, len, cap } => {
                let (p, n, c) = (le_uint(b, *array, 8), le_uint(b, *len, 8), le_uint(b, *cap, 8));
                let plan = self.t.plans.get(&self.t.bin.dwarf, *elem);
                self.slice(out, *elem, &plan, *elem_size, p, n, c, depth);
            }
            Plan::RtSlice { elem, elem_size } => {
                // The runtime's slice header: array, len, cap.
                let (p, n, c) = (le_uint(b, 0, 8), le_uint(b, 8, 8), le_uint(b, 16, 8));
                let plan = self.t.plans.rtype(self.t, *elem);
                self.slice(out, rt_key(*elem), &plan, *elem_size, p, n, c, depth);
            }
            Plan::Array { elem, count, stride } => {
                if depth >= MAX_DEPTH {
                    return self.elide(out, Elided::Depth);
                }
                out.push(b'[');
                let mut shown = (*count).min(MAX_ITEMS);
                for i in 0..shown {
                    if i > 0 {
                        out.extend_from_slice(if json { b"," } else { b", " });
                    }
                    if self.over_budget(out) {
                        self.elide(out, Elided::Budget);
                        shown = i;
                        break;
                    }
                    let at = i.saturating_mul(*stride) as usize;
                    let sub = b.get(at..at.saturating_add(*stride as usize)).unwrap_or(&[]);
                    self.plan(out, elem, sub, depth + 1);
                }
                if shown < *count && shown == MAX_ITEMS {
                    out.extend_from_slice(if json { b",\"...\"" } else { b", ..." });
                }
                out.push(b']');
            }
            Plan::Struct(fields) => {
                if depth >= MAX_DEPTH {
                    return self.elide(out, Elided::Depth);
                }
                out.push(b'{');
                for (i, (name, off, fp)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(if json { b"," } else { b", " });
                    }
                    if json {
                        json_str(out, name);
                        out.push(b':');
                    } else {
                        out.extend_from_slice(name.as_bytes());
                        out.extend_from_slice(b": ");
                    }
                    self.plan(out, fp, b.get(*off..).unwrap_or(&[]), depth + 1);
                }
                out.push(b'}');
            }
            Plan::Unknown(name) => self.error(out, format!("cannot render values of type {name}")),
        }
    }

    fn string(&self, out: &mut Vec<u8>, p: u64, n: u64) {
        if n == 0 {
            out.extend_from_slice(b"\"\"");
            return;
        }
        if n >= IMPOSSIBLE_STRING {
            return self.error(out, format!("impossible string: {n} bytes at {p:#x}"));
        }
        // Cut at --max-string, and at what is left of the allowance of all the strings of this key or
        // value (a wrong --type reads garbage lengths; a hostile value repeats long strings).
        let before = {
            let w = self.walk.borrow();
            if w.level == 0 { 0 } else { w.str_shown }
        };
        let shown = n.min(string_allowance(self.max_string, before));
        let cut = shown < n;
        // A cut string must still exist whole: its last byte is in memory (a garbage length is not).
        if cut {
            if let Err(e) = self.t.mem.bytes(p.wrapping_add(n - 1), 1) {
                return self.error(out, format!("impossible string: {n} bytes at {p:#x} run into unreadable memory ({e})"));
            }
        }
        let json = self.style == Style::Json;
        if cut {
            self.elided.set(self.elided.get() + 1);
            if json {
                out.extend_from_slice(b"{\"len\":");
                push_u64(out, n);
                out.extend_from_slice(b",\"prefix\":");
            }
        }
        if !cut {
            let mut g = self.gathered.borrow_mut();
            if g.cur < g.end {
                if let Some(r) = g.recs.get(g.cur).copied() {
                    if r.p == p && u64::from(r.n) == n {
                        g.cur += 1;
                        if let Some(bytes) = g.arena.get(r.off as usize..r.off as usize + r.n as usize) {
                            return self.string_contents(out, bytes, json);
                        }
                    }
                }
            }
        }
        match self.t.mem.bytes(p, shown as usize) {
            Ok(bytes) => {
                // A cut may split a UTF-8 sequence: keep the prefix up to the last whole character.
                let bytes: &[u8] = if cut { valid_prefix(&bytes) } else { &bytes };
                self.string_contents(out, bytes, json);
            }
            Err(e) => self.error(out, format!("string of {n} bytes at {p:#x}: {e}")),
        }
        if cut {
            if json {
                out.push(b'}');
            } else {
                out.extend_from_slice(b"...(");
                push_u64(out, n);
                out.extend_from_slice(b" bytes)");
            }
        }
    }

    /// A func value: the funcval's first word is the code address; the symbol table names it.
    fn func(&self, out: &mut Vec<u8>, funcval: u64) {
        let json = self.style == Style::Json;
        if funcval == 0 {
            return hex(out, 0, json);
        }
        let pc = match self.t.mem.u64_at(funcval) {
            Ok(pc) => pc,
            Err(e) => return self.error(out, format!("func value {funcval:#x}: {e}")),
        };
        let name = self.t.bin.function_at(pc.wrapping_sub(self.t.bias));
        if json {
            out.push(b'"');
        }
        hex(out, pc, false);
        if let Some(name) = name {
            out.push(b' ');
            // Function names are plain Go identifiers and dots, but they come from the binary.
            let mut quoted = Vec::new();
            json_str(&mut quoted, name);
            out.extend_from_slice(&quoted[1..quoted.len() - 1]);
        }
        if json {
            out.push(b'"');
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn slice(&self, out: &mut Vec<u8>, elem: TypeId, plan: &Plan, elem_size: u64, p: u64, n: u64, c: u64, depth: u32) {
        let json = self.style == Style::Json;
        if json {
            out.extend_from_slice(b"{\"len\":");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b",\"cap\":");
            out.extend_from_slice(itoa::Buffer::new().format(c).as_bytes());
            out.extend_from_slice(b",\"items\":");
        }
        if n > c || (n > 0 && p == 0) {
            self.error(out, format!("impossible slice: len {n}, cap {c}, array {p:#x}"));
            // The slice object is already open: close it, or the JSON document breaks.
            if json {
                out.push(b'}');
            }
            return;
        }
        if n > 0 && plan.descends() {
            if let Err(why) = self.enter(out, p, elem, depth) {
                self.elide(out, why);
                if json {
                    out.push(b'}');
                }
                return;
            }
            self.slice_items(out, plan, elem_size, p, n, depth);
            self.leave();
        } else {
            self.slice_items(out, plan, elem_size, p, n, depth);
        }
        if json {
            out.push(b'}');
        }
    }

    fn slice_items(&self, out: &mut Vec<u8>, plan: &Plan, elem_size: u64, p: u64, n: u64, depth: u32) {
        let json = self.style == Style::Json;
        let shown = n.min(MAX_ITEMS);
        let bytes = match elem_size.checked_mul(shown) {
            Some(total) if total as usize <= crate::memory::MAX_READ => self.t.mem.bytes(p, total as usize),
            _ => Err(crate::error::Error::unreadable(p, usize::MAX, "slice too large")),
        };
        match bytes {
            Ok(bytes) => {
                out.push(b'[');
                let mut cut = shown < n;
                for i in 0..shown {
                    if i > 0 {
                        out.extend_from_slice(if json { b"," } else { b", " });
                    }
                    if self.over_budget(out) {
                        self.elide(out, Elided::Budget);
                        cut = false;
                        break;
                    }
                    let at = (i * elem_size) as usize;
                    self.plan(out, plan, bytes.get(at..at + elem_size as usize).unwrap_or(&[]), depth + 1);
                }
                if cut {
                    out.extend_from_slice(if json { b",\"...\"" } else { b", ..." });
                }
                out.push(b']');
            }
            Err(e) => self.error(out, e.to_string()),
        }
    }

    fn nested_map(&self, out: &mut Vec<u8>, id: TypeId, addr: u64, depth: u32) {
        let json = self.style == Style::Json;
        if addr != 0 && self.expands_maps() {
            if let Err(why) = self.enter(out, addr, id, depth) {
                return self.elide(out, why);
            }
            // Expanded: the nested map's entries, as an object of key/value pairs list.
            let saved = self.open_map(depth + 1);
            let r = crate::commands::nested_entries(self, id, addr, out);
            self.close_map(saved);
            self.leave();
            if let Err(e) = r {
                self.error(out, e.to_string());
            }
            return;
        }
        let len = self.t.map_len(id, addr);
        match len {
            Ok(len) => {
                if json {
                    out.extend_from_slice(b"{\"address\":");
                    hex(out, addr, true);
                    out.extend_from_slice(b",\"len\":");
                    out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
                    out.push(b'}');
                } else if addr == 0 {
                    out.extend_from_slice(b"nil"); // a nil map, spelled as every front end spells it
                } else {
                    out.extend_from_slice(b"map[len=");
                    out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
                    out.extend_from_slice(b" at ");
                    hex(out, addr, false);
                    out.push(b']');
                }
            }
            Err(e) => self.error(out, e.to_string()),
        }
    }

    fn iface(&self, out: &mut Vec<u8>, empty: bool, word0: u64, data: u64, depth: u32) {
        let json = self.style == Style::Json;
        if word0 == 0 {
            out.extend_from_slice(if json { b"null" } else { b"nil" });
            return;
        }
        let rtype = if empty { Ok(word0) } else { self.t.itab_type(word0) };
        let rtype = match rtype {
            Ok(r) => r,
            Err(e) => return self.error(out, e.to_string()),
        };
        let (name, ty) = self.t.runtime_type(rtype);
        let ty = if descriptors_only() { None } else { ty };
        // The dynamic type from DWARF, or else from its runtime type descriptor.
        let plans = &self.t.plans;
        let (key, plan, size, direct) = match ty {
            Some(ty) => {
                let d = &self.t.bin.dwarf;
                (ty, plans.get(d, ty), d.size_of(ty).unwrap_or(0), direct_iface(d, ty, 0))
            }
            None => {
                let size = plans.rt_layout(self.t).kind_size(self.t, rtype).map(|(_, s)| s).unwrap_or(0);
                (rt_key(rtype), plans.rtype(self.t, rtype), size, plans.rt_direct(self.t, rtype, 0))
            }
        };
        let boxed = !direct && size > 0 && !matches!(*plan, Plan::Opaque);
        let entered = if boxed { Some(self.enter(out, data, key, depth)) } else { None };
        // Text: Go-like `T(v)` for scalars, `T{...}` for composite literals.
        let literal = matches!(*plan, Plan::Struct(_)) && !matches!(entered, Some(Err(_)));
        if json {
            out.extend_from_slice(b"{\"type\":");
            json_str(out, &name);
            out.extend_from_slice(b",\"value\":");
        } else {
            out.extend_from_slice(name.as_bytes());
            if !literal {
                out.push(b'(');
            }
        }
        match entered {
            Some(Err(why)) => self.elide(out, why),
            _ if matches!(*plan, Plan::Opaque) => hex(out, data, json),
            _ if depth + 1 >= MAX_DEPTH => self.elide(out, Elided::Depth),
            _ if direct => self.plan(out, &plan, &data.to_le_bytes(), depth + 1),
            _ if size == 0 => self.plan(out, &plan, &[], depth + 1),
            _ => match self.t.mem.bytes(data, size.min(crate::memory::MAX_READ as u64) as usize) {
                Ok(b) => self.plan(out, &plan, &b, depth + 1),
                Err(e) => self.error(out, e.to_string()),
            },
        }
        if matches!(entered, Some(Ok(()))) {
            self.leave();
        }
        if json {
            out.push(b'}');
        } else if !literal {
            out.push(b')');
        }
    }

}

/// Whether the runtime stores a value of this type directly in an interface's data word
/// (pointer-shaped types), as the compiler decides it.
/// A string's bytes as a JSON string, or (not UTF-8) as `{"bytes":"hex"}` in JSON and Go-quoted in text.
#[inline]
fn string_bytes(out: &mut Vec<u8>, bytes: &[u8], json: bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => json_str(out, s),
        Err(_) if json => {
            out.extend_from_slice(b"{\"bytes\":\"");
            for &c in bytes.iter() {
                out.extend_from_slice(&HEX[c as usize]);
            }
            out.extend_from_slice(b"\"}");
        }
        Err(_) => go_quote_bytes(out, bytes),
    }
}

/// `d.copy_from_slice(s)` (same lengths) without a `memcpy` call for the short strings most keys
/// and names are: two overlapping fixed-size copies.
#[inline]
fn copy_short(d: &mut [u8], s: &[u8]) {
    let n = d.len().min(s.len());
    if (8..=16).contains(&n) {
        d[..8].copy_from_slice(&s[..8]);
        d[n - 8..n].copy_from_slice(&s[n - 8..n]);
    } else if (4..8).contains(&n) {
        d[..4].copy_from_slice(&s[..4]);
        d[n - 4..n].copy_from_slice(&s[n - 4..n]);
    } else {
        d[..n].copy_from_slice(&s[..n]);
    }
}

/// Where the strings are that rendering `p` reads, in the order it reads them (see `Renderer::plan`):
/// (pointer offset, length offset) of a string, of the string fields of a struct (recursively) and
/// of the strings of a short array, from `base`.
fn string_slots(p: &Plan, base: usize, out: &mut Vec<(usize, usize)>, depth: u32) {
    match p {
        Plan::Str { ptr, len } => out.push((base.saturating_add(*ptr), base.saturating_add(*len))),
        Plan::Struct(fields) if depth < MAX_DEPTH => {
            for (_, off, f) in fields {
                string_slots(f, base.saturating_add(*off), out, depth + 1);
            }
        }
        Plan::Array { elem, count, stride } if depth < MAX_DEPTH && *count <= GATHER_MAX_ARRAY && matches!(**elem, Plan::Str { .. } | Plan::Struct(_)) => {
            for i in 0..*count {
                string_slots(elem, base.saturating_add((i.saturating_mul(*stride)) as usize), out, depth + 1);
            }
        }
        _ => {}
    }
}

pub(crate) fn direct_iface(d: &DwarfInfo, id: TypeId, depth: u32) -> bool {
    if depth > 8 {
        return false;
    }
    let (k, kid) = go_kind(d, id);
    match k {
        kind::PTR | kind::CHAN | kind::MAP | kind::FUNC | kind::UNSAFE_POINTER => true,
        kind::STRUCT => match d.fields(kid) {
            Some([f]) => direct_iface(d, f.ty, depth + 1),
            _ => false,
        },
        kind::ARRAY => match d.get(d.strip_typedefs(kid)).map(|t| &t.die) {
            Some(Die::Array { elem: Some(e), count: 1 }) => direct_iface(d, *e, depth + 1),
            _ => false,
        },
        _ => false,
    }
}

/// A hint to the CPU to bring the cache line at `p` in; it never faults, whatever `p` is.
#[inline(always)]
pub(crate) fn prefetch_read(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints the cache; it does not dereference `p` and cannot fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Decimal digits straight into the output. Every copy has a length known at compile time: a
/// variable-length `extend_from_slice` of an itoa buffer became a memcpy call per integer, which
/// was a fifth of a 1M-entry int map's decode (and `ilog10` to size the number cost as much again).
#[inline]
pub fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    // Digits are written backwards to end at buf[20]; the 20-byte window starting at the first
    // digit is then appended whole and the surplus truncated.
    let mut buf = [b'0'; 40];
    let mut i = 20;
    while v >= 10_000 {
        let r = (v % 10_000) as usize;
        v /= 10_000;
        let (hi, lo) = (r / 100 * 2, r % 100 * 2);
        i -= 4;
        buf[i..i + 2].copy_from_slice(&PAIRS[hi..hi + 2]);
        buf[i + 2..i + 4].copy_from_slice(&PAIRS[lo..lo + 2]);
    }
    while v >= 100 {
        let d = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    }
    if v >= 10 {
        let d = v as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    let start = out.len();
    if let Ok(window) = <&[u8; 20]>::try_from(&buf[i..i + 20]) {
        out.extend_from_slice(window);
    }
    out.truncate(start + (20 - i));
}

#[inline]
pub fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

static PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

static HEX: [[u8; 2]; 256] = {
    let digits = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [digits[i >> 4], digits[i & 15]];
        i += 1;
    }
    t
};

pub fn hex(out: &mut Vec<u8>, v: u64, quoted: bool) {
    // The same text as format!("{v:#x}"), without a String per pointer.
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut x = v;
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[(x & 15) as usize];
        x >>= 4;
        if x == 0 {
            break;
        }
    }
    i -= 2;
    buf[i] = b'0';
    buf[i + 1] = b'x';
    if quoted {
        i -= 1;
        buf[i] = b'"';
    }
    out.extend_from_slice(&buf[i..]);
    if quoted {
        out.push(b'"');
    }
}

pub fn float(out: &mut Vec<u8>, v: f64, single: bool, json: bool) {
    let special: Option<&[u8]> = if v.is_nan() {
        Some(b"NaN")
    } else if v == f64::INFINITY {
        Some(b"+Inf")
    } else if v == f64::NEG_INFINITY {
        Some(b"-Inf")
    } else {
        None
    };
    match special {
        Some(s) => {
            if json {
                out.push(b'"');
            }
            out.extend_from_slice(s);
            if json {
                out.push(b'"');
            }
        }
        None if !single && float_short(out, v) => {}
        None => {
            let mut buf = ryu::Buffer::new();
            let s = if single { buf.format_finite(v as f32) } else { buf.format_finite(v) };
            out.extend_from_slice(s.strip_suffix(".0").unwrap_or(s).as_bytes());
        }
    }
}

/// Floats that are multiples of 1/16 below 1e11 in magnitude (whole numbers, halves, quarters: most
/// floats in real data): their exact decimal has at most 15 significant digits, and a double tells
/// apart every decimal of 15 digits, so no shorter decimal maps to the same double and the exact one
/// is what ryu's shortest round-trip form prints. Written directly, a fifth of the cost. False for
/// anything else (ryu renders it).
#[inline]
fn float_short(out: &mut Vec<u8>, v: f64) -> bool {
    let s = v * 16.0;
    if v == 0.0 || v.is_nan() || v.abs() >= 1e11 || s != s.trunc() {
        return false;
    }
    let u = s.abs() as u64;
    if v < 0.0 {
        out.push(b'-');
    }
    push_u64(out, u / 16);
    let mut frac = (u % 16) * 625; // sixteenths as ten-thousandths
    if frac != 0 {
        let mut digits = 4;
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        out.push(b'.');
        let mut div = [1, 10, 100, 1000][digits - 1];
        while div > 0 {
            out.push(b'0' + (frac / div % 10) as u8);
            div /= 10;
        }
    }
    true
}

/// Bytes a JSON string must escape: control characters, '"' and '\\'.
static JSON_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// A JSON string literal (also used for valid UTF-8 strings in text output).
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Most strings need no escape: one scan without branches, then one copy.
    if !bytes.iter().fold(false, |a, &c| a | JSON_ESCAPE[c as usize]) {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    out.push(b'"');
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let esc: Option<&[u8]> = match c {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(format!("\\u{:04x}", c).as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The longest prefix that does not end inside a UTF-8 sequence (a cut string stays readable).
fn valid_prefix(b: &[u8]) -> &[u8] {
    match std::str::from_utf8(b) {
        Ok(_) => b,
        Err(e) if e.error_len().is_none() => &b[..e.valid_up_to()],
        Err(_) => b,
    }
}

/// A Go-quoted string for bytes that are not valid UTF-8 ("\xff" escapes).
fn go_quote_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'"');
    for chunk in b.utf8_chunks() {
        let v = chunk.valid();
        let mut tmp = Vec::new();
        json_str(&mut tmp, v);
        out.extend_from_slice(&tmp[1..tmp.len() - 1]);
        for &c in chunk.invalid() {
            out.extend_from_slice(b"\\x");
            out.extend_from_slice(&HEX[c as usize]);
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_addresses_render_like_format() {
        let mut cases: Vec<u64> = vec![0, 1, 9, 10, 99, 100, 101, 999, 1000, 65535, 1 << 53, (1 << 53) + 1, u64::MAX, u64::MAX - 1];
        for p in 0..20 {
            let x = 10u64.pow(p);
            cases.extend([x - 1, x, x + 1]);
        }
        for v in cases {
            let mut out = Vec::new();
            push_u64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
            for i in [v as i64, (v as i64).wrapping_neg(), i64::MIN, i64::MAX] {
                out.clear();
                push_i64(&mut out, i);
                assert_eq!(out, i.to_string().as_bytes());
            }
            out.clear();
            hex(&mut out, v, false);
            assert_eq!(out, format!("{v:#x}").as_bytes());
            out.clear();
            hex(&mut out, v, true);
            assert_eq!(out, format!("\"{v:#x}\"").as_bytes());
        }
    }

    /// The direct path for sixteenths prints what ryu prints (and declines what it cannot).
    #[test]
    fn short_floats_render_like_ryu() {
        let mut cases = vec![0.0, -0.0, 0.0625, 0.5, 1.0, -1.25, 3.75, 1e-5, 0.1, 1e11, 99_999_999_999.9375, -99_999_999_999.9375, 1e15, f64::MIN_POSITIVE, 5e-324];
        for i in 0..100_000u64 {
            let x = (i * 7_919_993) as f64 / 16.0;
            cases.extend([x, -x, x * 1024.0, x / 3.0, (i as f64).powi(3) / 4.0]);
        }
        for v in cases {
            let (mut out, mut want) = (Vec::new(), Vec::new());
            float(&mut out, v, false, true);
            let mut buf = ryu::Buffer::new();
            let s = buf.format_finite(v);
            want.extend_from_slice(s.strip_suffix(".0").unwrap_or(s).as_bytes());
            assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want), "{v:e}");
        }
    }

    #[test]
    fn json_strings_escape_what_json_needs() {
        for s in ["", "plain", "a\"b", "back\\slash", "nl\n\t\r", "\u{1}\u{1f}x", "ünïcode ✓", "end\""] {
            let mut out = Vec::new();
            json_str(&mut out, s);
            assert_eq!(serde_json::from_slice::<String>(&out).ok().as_deref(), Some(s));
        }
    }
}
