//! The typed walk: from the roots, breadth first through the heap, every object once, following
//! what the DWARF types say holds a reference: pointers, struct fields, arrays, slices (to their
//! capacity), interfaces (by their dynamic type), closures (their captured variables, where the
//! compiler describes them), channel buffers, `atomic.Pointer[T]`, and the keys and values of maps.
//! Breadth first means the first path that reaches a map is a shortest one.

use super::paths::{Paths, Step, NONE};
use super::roots::{Root, Stacks};
use crate::binary::{Die, TypeId};
use crate::decode::{self, Visitor};
use crate::memory::{le_uint, MemoryExt};
use crate::target::Target;
use crate::value::{direct_iface, go_kind, kind, Renderer, Style};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

#[path = "typing.rs"]
mod typing;

/// A heap object: its base and size, and where a visited bit for it can live (span, index).
#[derive(Clone, Copy, Debug)]
pub struct Obj {
    pub base: u64,
    pub size: u64,
    /// The span's number and the object's index in it; None when the view has no spans.
    pub slot: Option<(usize, u64)>,
}

/// Where heap objects are: the walk follows a pointer only into an object this says exists.
pub trait HeapView {
    /// The object containing `addr`. None when `addr` is not in a live heap object.
    fn object(&self, addr: u64) -> Option<Obj>;
    /// How many spans there are, and objects in span `i` (for visited bitmaps).
    fn spans(&self) -> usize {
        0
    }
    fn objects_in(&self, _span: usize) -> u64 {
        0
    }
    /// Span `i` itself (for what the heap records about its objects' types).
    fn span(&self, _i: usize) -> Option<crate::heap::Span> {
        None
    }
}

impl HeapView for crate::heap::HeapIndex {
    fn object(&self, addr: u64) -> Option<Obj> {
        let o = crate::heap::HeapIndex::object(self, addr)?;
        Some(Obj { base: o.base, size: o.size, slot: Some((o.span, o.index)) })
    }
    fn spans(&self) -> usize {
        crate::heap::HeapIndex::spans(self).len()
    }
    fn objects_in(&self, span: usize) -> u64 {
        crate::heap::HeapIndex::spans(self).get(span).map(|s| if s.large { 1 } else { s.nelems }).unwrap_or(0)
    }
    fn span(&self, i: usize) -> Option<crate::heap::Span> {
        crate::heap::HeapIndex::spans(self).get(i).copied()
    }
}

/// The heap seen only through readability, for targets whose heap index cannot be read: every
/// readable address is an object of unknown size starting there.
pub struct Readable<'a>(pub &'a Target);

impl HeapView for Readable<'_> {
    fn object(&self, addr: u64) -> Option<Obj> {
        self.0.mem.u8_at(addr).ok().map(|_| Obj { base: addr, size: 0, slot: None })
    }
}

/// Visited heap objects: a bitmap per span (allocated when the span is first touched), or a set of
/// bases when the view has no spans.
struct Visited {
    bits: Vec<Vec<u64>>,
    bases: HashSet<u64>,
}

impl Visited {
    fn new(heap: &dyn HeapView) -> Visited {
        Visited { bits: vec![Vec::new(); heap.spans()], bases: HashSet::new() }
    }

    /// Marks the object; false when it already was.
    fn insert(&mut self, heap: &dyn HeapView, o: &Obj) -> bool {
        match o.slot {
            Some((span, index)) if span < self.bits.len() => {
                let b = &mut self.bits[span];
                if b.is_empty() {
                    b.resize(heap.objects_in(span).div_ceil(64).max(1) as usize, 0);
                }
                let (w, bit) = ((index / 64) as usize, 1u64 << (index % 64));
                match b.get_mut(w) {
                    Some(x) if *x & bit == 0 => {
                        *x |= bit;
                        true
                    }
                    Some(_) => false,
                    None => self.bases.insert(o.base),
                }
            }
            _ => self.bases.insert(o.base),
        }
    }
}

/// Caps: the walk's memory and time stay bounded whatever the heap holds.
pub const MAX_OBJECTS: usize = 20_000_000;
const MAX_ELEMS: u64 = 1 << 24;
const CHUNK: u64 = 1 << 20;
const MAX_SHAPE_DEPTH: u32 = 24;
const MAX_HOLDERS: usize = 1000;

/// What in a value of one type can lead to a map.
#[derive(Debug)]
enum Shape {
    Ptr(TypeId),
    Map(TypeId),
    Chan(TypeId),
    Func,
    Iface { empty: bool },
    Slice { elem: TypeId, array: usize, cap: usize },
    Array { elem: Arc<Shape>, count: u64, stride: u64 },
    Struct(Vec<(Arc<str>, usize, Arc<Shape>)>),
    /// An `unsafe.Pointer`, followed where the heap records its pointee's type (typing.rs).
    Unsafe,
}

/// A map the walk reached, by the first (shortest) path.
pub struct Found {
    pub header: u64,
    pub ty: TypeId,
    pub path: u32,
}

enum Work {
    /// `count` values of type `ty` from `addr`.
    Object { addr: u64, ty: TypeId, count: u64, path: u32 },
    Entries { header: u64, ty: TypeId, path: u32 },
    Chan { addr: u64, ty: TypeId, path: u32 },
    Closure { addr: u64, path: u32 },
}

pub struct Walker<'a> {
    t: &'a Target,
    heap: &'a dyn HeapView,
    stacks: Option<Arc<Stacks>>,
    shapes: HashMap<TypeId, Option<Arc<Shape>>>,
    rtypes: HashMap<u64, (Arc<str>, Option<TypeId>)>,
    pub paths: Paths,
    objects: Visited,
    interior: HashSet<(u64, TypeId)>,
    maps: HashSet<u64>,
    pub found: Vec<Found>,
    queue: VecDeque<Work>,
    /// The node of the work item being scanned, and the steps inside it so far.
    cur: u32,
    pending: Vec<Step>,
    /// The key of the map entry being scanned, to name it in a path.
    cur_key: Option<(Vec<u8>, TypeId)>,
    holders_of: Option<u64>,
    pub holders: Vec<u32>,
    /// Why the walk did not see everything, if it did not.
    pub truncated: Option<String>,
    pub objects_visited: u64,
    /// What typing.rs keeps: the heap's own type records, descriptor names.
    typing: typing::State,
}

impl<'a> Walker<'a> {
    pub fn new(t: &'a Target, heap: &'a dyn HeapView, stacks: Option<Arc<Stacks>>, holders_of: Option<u64>) -> Self {
        Walker {
            t,
            heap,
            stacks,
            shapes: HashMap::new(),
            rtypes: HashMap::new(),
            paths: Paths::default(),
            objects: Visited::new(heap),
            interior: HashSet::new(),
            maps: HashSet::new(),
            found: Vec::new(),
            queue: VecDeque::new(),
            cur: NONE,
            pending: Vec::new(),
            cur_key: None,
            holders_of,
            holders: Vec::new(),
            truncated: None,
            objects_visited: 0,
            typing: Default::default(),
        }
    }

    /// Walks from every root (their order is the order of preference between equally short paths).
    pub fn run(&mut self, roots: &[Root]) -> crate::error::Result<()> {
        for (i, r) in roots.iter().enumerate() {
            let Some(shape) = self.shape(r.ty) else { continue };
            let size = self.t.bin.dwarf.size_of(r.ty).unwrap_or(0).min(CHUNK);
            let Ok(b) = self.t.mem.bytes(r.addr, size as usize) else { continue };
            self.cur = self.paths.push(NONE, Step::Root(i as u32));
            self.scan(&b, &shape);
        }
        let mut n = 0u64;
        while let Some(w) = self.queue.pop_front() {
            n += 1;
            if n % 1024 == 0 && decode::interrupted() {
                return Err(crate::error::Error::Interrupted);
            }
            match w {
                Work::Object { addr, ty, count, path } => self.object(addr, ty, count, path),
                Work::Entries { header, ty, path } => self.entries(header, ty, path),
                Work::Chan { addr, ty, path } => self.chan(addr, ty, path),
                Work::Closure { addr, path } => self.closure(addr, path),
            }
        }
        Ok(())
    }

    fn shape(&mut self, id: TypeId) -> Option<Arc<Shape>> {
        if let Some(s) = self.shapes.get(&id) {
            return s.clone();
        }
        let s = self.compile(id, 0).map(Arc::new);
        self.shapes.insert(id, s.clone());
        s
    }

    fn compile(&mut self, id: TypeId, depth: u32) -> Option<Shape> {
        if depth > MAX_SHAPE_DEPTH {
            return None;
        }
        if let Some(s) = self.typing_shape(id) {
            return s;
        }
        let d = &self.t.bin.dwarf;
        let (k, kid) = go_kind(d, id);
        let layout = d.strip_typedefs(kid);
        let offset = |name: &str, default: usize| d.field(layout, name).map(|f| f.offset as usize).unwrap_or(default);
        match k {
            kind::PTR => {
                let p = d.pointee(kid)?;
                (!scalar(d, p)).then_some(Shape::Ptr(p))
            }
            kind::MAP => Some(Shape::Map(id)),
            kind::CHAN => Some(Shape::Chan(kid)),
            kind::FUNC => Some(Shape::Func),
            kind::INTERFACE => Some(Shape::Iface { empty: d.field(layout, "_type").is_some() || d.name_of(kid).starts_with("interface {}") }),
            kind::SLICE => {
                let elem = d.get(kid).and_then(|t| t.go_elem).or_else(|| d.field(layout, "array").and_then(|f| d.pointee(f.ty)))?;
                (!scalar(d, elem)).then_some(Shape::Slice { elem, array: offset("array", 0), cap: offset("cap", 16) })
            }
            kind::ARRAY => match d.get(layout).map(|t| t.die.clone()) {
                Some(Die::Array { elem: Some(e), count }) if count > 0 => {
                    let stride = d.size_of(e)?;
                    let elem = self.compile(e, depth + 1)?;
                    Some(Shape::Array { elem: Arc::new(elem), count, stride })
                }
                _ => None,
            },
            kind::STRUCT | 0 => {
                let info = d.get(layout)?;
                match info.die.clone() {
                    Die::Pointer { target: Some(p) } if k == 0 => Some(Shape::Ptr(p)),
                    Die::Struct { fields } => {
                        // sync/atomic.Pointer[T]: `v unsafe.Pointer` typed by its `_ [0]*T` field.
                        let atomic = d.name_of(layout).starts_with("sync/atomic.Pointer[").then(|| {
                            fields.iter().find_map(|f| match d.get(d.strip_typedefs(f.ty)).map(|x| &x.die) {
                                Some(Die::Array { elem: Some(e), count: 0 }) if f.name == "_" => Some(*e),
                                _ => None,
                            })
                        });
                        let mut out = Vec::new();
                        for f in fields.iter().take(1024) {
                            let s = match (atomic, f.name.as_str()) {
                                (Some(Some(ptr)), "v") => self.compile(ptr, depth + 1),
                                _ => self.compile(f.ty, depth + 1),
                            };
                            if let Some(s) = s {
                                out.push((Arc::from(f.name.as_str()), f.offset as usize, Arc::new(s)));
                            }
                        }
                        (!out.is_empty()).then_some(Shape::Struct(out))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The node for the current position: the work item's node plus the steps taken inside it.
    fn here(&mut self) -> u32 {
        let mut id = self.cur;
        for i in 0..self.pending.len() {
            let step = match &self.pending[i] {
                Step::Entry(n) => match &self.cur_key {
                    Some((k, ty)) => match key_text(self.t, k, *ty) {
                        Some(s) => Step::Key(s.into()),
                        None => Step::Entry(*n),
                    },
                    None => Step::Entry(*n),
                },
                s => s.clone(),
            };
            id = self.paths.push(id, step);
        }
        id
    }

    fn with_step(&mut self, step: Step, f: impl FnOnce(&mut Self)) {
        self.pending.push(step);
        f(self);
        self.pending.pop();
    }

    fn scan(&mut self, b: &[u8], shape: &Shape) {
        match shape {
            Shape::Ptr(p) => self.follow(word(b, 0), *p, 1),
            Shape::Map(id) => {
                let h = word(b, 0);
                if h != 0 {
                    self.map_ref(h, *id);
                }
            }
            Shape::Chan(id) => {
                let h = word(b, 0);
                if h != 0 && self.visit(h, *id) {
                    let path = self.here();
                    self.queue.push_back(Work::Chan { addr: h, ty: *id, path });
                }
            }
            Shape::Func => {
                let f = word(b, 0);
                if f != 0 && self.stacks.is_some() && self.visit(f, 0) {
                    let path = self.here();
                    self.queue.push_back(Work::Closure { addr: f, path });
                }
            }
            Shape::Iface { empty } => self.iface(word(b, 0), word(b, 8), *empty),
            Shape::Unsafe => self.unsafe_pointer(word(b, 0)),
            Shape::Slice { elem, array, cap } => {
                let (p, c) = (word(b, *array), word(b, *cap));
                if p != 0 && c != 0 {
                    self.follow(p, *elem, c.min(MAX_ELEMS));
                }
            }
            Shape::Array { elem, count, stride } => {
                for i in 0..*count {
                    let Some(sub) = i.checked_mul(*stride).and_then(|o| b.get(o as usize..)) else { break };
                    self.with_step(Step::Index(i), |w| w.scan(sub, elem));
                }
            }
            Shape::Struct(fields) => {
                for (name, off, s) in fields {
                    let Some(sub) = b.get(*off..) else { continue };
                    self.with_step(Step::Field(name.clone()), |w| w.scan(sub, s));
                }
            }
        }
    }

    fn iface(&mut self, w0: u64, data: u64, empty: bool) {
        if w0 == 0 {
            return;
        }
        let rtype = if empty { w0 } else {
            match self.t.itab_type(w0) {
                Ok(r) => r,
                Err(_) => return,
            }
        };
        let (name, ty) = match self.rtypes.get(&rtype) {
            Some(x) => x.clone(),
            None => {
                let (n, ty) = match self.t.runtime_type(rtype) {
                    (n, Some(ty)) => (n, Some(ty)),
                    (n, None) => self.runtime_made(rtype).map_or((n, None), |(n, ty)| (n, Some(ty))),
                };
                let v = (Arc::<str>::from(n.as_str()), ty);
                self.rtypes.insert(rtype, v.clone());
                v
            }
        };
        let Some(ty) = ty else { return };
        self.with_step(Step::Assert(name), |w| {
            if typing::direct_runtime_made(ty) || direct_iface(&w.t.bin.dwarf, ty, 0) {
                if let Some(s) = w.shape(ty) {
                    w.scan(&data.to_le_bytes(), &s);
                }
            } else {
                w.follow(data, ty, 1);
            }
        });
    }

    /// Marks the object at `p` (read as `ty`) visited; false when it was, or is not in the heap.
    fn visit(&mut self, p: u64, ty: TypeId) -> bool {
        let fresh = match self.heap.object(p) {
            Some(o) if p == o.base => self.objects.insert(self.heap, &o),
            Some(_) => self.interior.insert((p, ty)),
            // A package-level `&T{...}` is laid out by the linker in the executable's data, not
            // allocated: such static objects are few, so they are visited by (address, type).
            None if self.in_image(p) => self.interior.insert((p, ty)),
            None => return false,
        };
        if fresh {
            self.objects_visited += 1;
            if self.objects_visited as usize > MAX_OBJECTS {
                self.truncated.get_or_insert_with(|| format!("stopped after {MAX_OBJECTS} objects"));
                return false;
            }
        }
        fresh
    }

    /// Whether `p` lies in one of the executable's loaded segments (its static data).
    fn in_image(&self, p: u64) -> bool {
        let v = p.wrapping_sub(self.t.bias);
        self.t.bin.image.segments.iter().any(|s| v >= s.vaddr && v - s.vaddr < s.memsz)
    }

    fn follow(&mut self, p: u64, ty: TypeId, count: u64) {
        if p == 0 || self.shape(ty).is_none() || !self.visit(p, ty) {
            return;
        }
        let path = self.here();
        self.queue.push_back(Work::Object { addr: p, ty, count, path });
    }

    fn map_ref(&mut self, h: u64, ty: TypeId) {
        if self.holders_of == Some(h) && self.holders.len() < MAX_HOLDERS {
            let p = self.here();
            self.holders.push(p);
        }
        if self.maps.contains(&h) {
            return;
        }
        let Ok(m) = self.t.map_type(ty) else { return };
        self.maps.insert(h);
        let path = self.here();
        self.found.push(Found { header: h, ty, path });
        if self.shape(m.key).is_some() || self.shape(m.elem).is_some() {
            self.queue.push_back(Work::Entries { header: h, ty, path });
        }
    }

    fn object(&mut self, addr: u64, ty: TypeId, count: u64, path: u32) {
        let Some(shape) = self.shape(ty) else { return };
        let size = self.t.bin.dwarf.size_of(ty).unwrap_or(0);
        if size == 0 {
            return;
        }
        let mut count = count;
        if let Some(o) = self.heap.object(addr) {
            if o.size != 0 {
                count = count.min(o.base.saturating_add(o.size).saturating_sub(addr) / size);
            }
        }
        self.cur = path;
        let per = (CHUNK / size).max(1);
        let mut i = 0;
        while i < count {
            let n = per.min(count - i);
            let Ok(b) = self.t.mem.bytes(addr.wrapping_add(i.wrapping_mul(size)), (n * size) as usize) else { return };
            let b = b.into_owned();
            for j in 0..n {
                let sub = &b[(j * size) as usize..];
                if count == 1 {
                    self.scan(sub, &shape);
                } else {
                    self.with_step(Step::Index(i + j), |w| w.scan(sub, &shape));
                }
            }
            i += n;
        }
    }

    fn entries(&mut self, header: u64, ty: TypeId, path: u32) {
        let Ok(m) = self.t.map_type(ty) else { return };
        let (ks, vs) = (self.shape(m.key), self.shape(m.elem));
        self.cur = path;
        let t = self.t;
        let mut v = EntryScan { w: self, key_ty: m.key, ks, vs, n: 0 };
        let _ = decode::walk(t, &m, header, &mut v);
        self.cur_key = None;
    }

    fn chan(&mut self, addr: u64, ty: TypeId, path: u32) {
        let d = &self.t.bin.dwarf;
        let Some(elem) = d.get(ty).and_then(|x| x.go_elem) else { return };
        let Some(hchan) = d.pointee(ty).or_else(|| d.named("runtime.hchan")) else { return };
        let f = |n: &str| d.field(hchan, n).map(|x| x.offset);
        let (Some(q), Some(sz), Some(buf), Some(rx)) = (f("qcount"), f("dataqsiz"), f("buf"), f("recvx")) else { return };
        let Some(esize) = d.size_of(elem) else { return };
        let Some(shape) = self.shape(elem) else { return };
        let mem = &self.t.mem;
        let at = |o: u64| mem.u64_at(addr.wrapping_add(o));
        let (Ok(q), Ok(sz), Ok(buf), Ok(rx)) = (at(q), at(sz), at(buf), at(rx)) else { return };
        if sz == 0 || esize == 0 || buf == 0 {
            return;
        }
        self.cur = path;
        for i in 0..q.min(sz).min(MAX_ELEMS) {
            let slot = (rx.wrapping_add(i)) % sz;
            let Ok(b) = self.t.mem.bytes(buf.wrapping_add(slot.wrapping_mul(esize)), esize.min(CHUNK) as usize) else { return };
            let b = b.into_owned();
            self.with_step(Step::Buffer(i), |w| w.scan(&b, &shape));
        }
    }

    fn closure(&mut self, addr: u64, path: u32) {
        let Some(st) = self.stacks.clone() else { return };
        let Ok(pc) = self.t.mem.u64_at(addr) else { return };
        let vars = st.frames.closure_vars(pc.wrapping_sub(self.t.bias));
        self.cur = path;
        for (name, off, ty) in vars {
            let Some(shape) = self.shape(ty) else { continue };
            let size = self.t.bin.dwarf.size_of(ty).unwrap_or(8).min(CHUNK);
            let Ok(b) = self.t.mem.bytes(addr.wrapping_add(off), size as usize) else { continue };
            let b = b.into_owned();
            // `&x`: captured by reference; the path names the variable.
            let name: Arc<str> = Arc::from(name.trim_start_matches('&'));
            self.with_step(Step::Field(name), |w| w.scan(&b, &shape));
        }
    }
}

struct EntryScan<'w, 'a> {
    w: &'w mut Walker<'a>,
    key_ty: TypeId,
    ks: Option<Arc<Shape>>,
    vs: Option<Arc<Shape>>,
    n: u64,
}

impl Visitor for EntryScan<'_, '_> {
    fn wants_entries(&self) -> bool {
        true
    }
    fn entry(&mut self, k: &[u8], e: &[u8]) -> bool {
        let (ks, vs) = (self.ks.clone(), self.vs.clone());
        self.w.cur_key = Some((k.to_vec(), self.key_ty));
        self.w.with_step(Step::Entry(self.n), |w| {
            if let Some(s) = &ks {
                w.scan(k, s);
            }
            if let Some(s) = &vs {
                w.scan(e, s);
            }
        });
        self.n += 1;
        true
    }
}

fn word(b: &[u8], off: usize) -> u64 {
    le_uint(b, off, 8)
}

/// Types that hold no reference the walk follows (numbers, strings, bools).
fn scalar(d: &crate::binary::DwarfInfo, id: TypeId) -> bool {
    let (k, kid) = go_kind(d, id);
    match k {
        kind::BOOL..=kind::COMPLEX128 | kind::STRING => true,
        0 => matches!(d.get(d.strip_typedefs(kid)).map(|t| &t.die), Some(Die::Base { .. })),
        _ => false,
    }
}

/// A map key as Go would write it in an index expression, for keys of printable kinds.
fn key_text(t: &Target, k: &[u8], ty: TypeId) -> Option<String> {
    let (kd, _) = go_kind(&t.bin.dwarf, ty);
    if !(kind::BOOL..=kind::FLOAT64).contains(&kd) && kd != kind::STRING {
        return None;
    }
    let r = Renderer::new(t, Style::Text, 0);
    let mut out = Vec::new();
    r.value(&mut out, ty, k);
    if r.errors.get() != 0 || out.len() > 80 {
        return None;
    }
    String::from_utf8(out).ok()
}
