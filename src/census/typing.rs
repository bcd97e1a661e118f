//! Typing what DWARF does not describe, for the walk: map types made at run time (`reflect.MapOf`),
//! laid out from their runtime type descriptors (`crate::rtmap`).

use super::{Shape, Walker};
use crate::binary::TypeId;
use crate::memory::MemoryExt;
use crate::rtmap;

impl Walker<'_> {
    /// The type id of a dynamic type without DWARF that the walk can still follow: a map type made
    /// at run time, whose layout its descriptor gives.
    pub(super) fn runtime_made(&self, rtype: u64) -> Option<(String, TypeId)> {
        let id = rtmap::type_id(rtype);
        if !rtmap::is_map(self.t, rtype) {
            return None;
        }
        self.t.map_type(id).ok().map(|m| (m.name.clone(), id))
    }

    /// The shape of the types typed here (Some): descriptor-only type ids, and `unsafe.Pointer`
    /// (which Go's DWARF describes as a pointer to nothing, without a kind). None for the others.
    pub(super) fn typing_shape(&mut self, id: TypeId) -> Option<Option<Shape>> {
        if rtmap::descriptor(id).is_some() {
            return Some(self.t.map_type(id).is_ok().then_some(Shape::Map(id)));
        }
        let d = &self.t.bin.dwarf;
        let unsafe_ptr = match d.get(d.strip_typedefs(id)) {
            Some(x) => matches!(x.die, crate::binary::Die::Pointer { target: None }) && matches!(x.go_kind & 0x1f, 0 | crate::value::kind::UNSAFE_POINTER),
            None => false,
        };
        unsafe_ptr.then(|| self.heap_typed().then_some(Shape::Unsafe))
    }
}

/// Whether a value of this type sits in an interface's data word itself: descriptor-only types
/// here are maps, which do.
pub(super) fn direct_runtime_made(id: TypeId) -> bool {
    rtmap::descriptor(id).is_some()
}

/// What the walk keeps for typing: the heap's type records (built on first use), and the DWARF
/// type of each descriptor the heap named.
#[derive(Default)]
pub(super) struct State {
    heap: std::cell::OnceCell<Option<crate::heap::types::HeapTypes>>,
    /// Why the heap types nothing, when it does not.
    pub(super) untyped: Option<String>,
    types: std::collections::HashMap<u64, Option<(std::sync::Arc<str>, TypeId)>>,
}

impl Walker<'_> {
    /// Whether the heap records its objects' types (Go ≥ 1.22, heap index readable).
    pub(super) fn heap_typed(&mut self) -> bool {
        if self.typing.heap.get().is_none() {
            let h = match crate::heap::types::HeapTypes::discover(self.t) {
                Ok(h) if self.heap.spans() > 0 => Some(h),
                Ok(_) => {
                    self.typing.untyped = Some("no heap index".into());
                    None
                }
                Err(e) => {
                    self.typing.untyped = Some(e);
                    None
                }
            };
            let _ = self.typing.heap.set(h);
        }
        matches!(self.typing.heap.get(), Some(Some(_)))
    }

    /// The type the heap records for the object whose data starts at `p`, as a DWARF type (with
    /// its name), and how many values of it the object holds. None for an interior pointer, an
    /// untyped object, or a type without DWARF.
    pub(super) fn heap_type(&mut self, p: u64) -> Option<(std::sync::Arc<str>, TypeId, u64)> {
        let o = self.heap.object(p)?;
        let span = self.heap.span(o.slot?.0)?;
        let ht = self.typing.heap.get()?.as_ref()?;
        let (rtype, data) = ht.typed(&*self.t.mem, &span, o.base)?;
        if data != p {
            return None;
        }
        let t = self.t;
        let (name, ty) = self
            .typing
            .types
            .entry(rtype)
            .or_insert_with(|| t.dwarf_type_of(rtype).map(|id| (std::sync::Arc::from(t.bin.dwarf.name_of(id)), id)))
            .clone()?;
        let size = t.bin.dwarf.size_of(ty).filter(|&s| s > 0)?;
        let room = o.base.saturating_add(o.size).saturating_sub(data);
        if size > room {
            return None;
        }
        // An array allocation records its element type: as many values as the object holds.
        Some((name, ty, (room / size).max(1)))
    }

    /// An `unsafe.Pointer`: followed as a `*T` when the heap records its pointee's type `T`.
    pub(super) fn unsafe_pointer(&mut self, p: u64) {
        if p == 0 || !self.heap_typed() {
            return;
        }
        let Some((name, ty, count)) = self.heap_type(p) else { return };
        self.with_step(super::Step::Cast(name), |w| w.follow(p, ty, count));
    }
}

impl Walker<'_> {
    /// Why `unsafe.Pointer` values were not followed, when the walk met some and the heap types nothing.
    pub fn unsafe_untyped(&self) -> Option<&str> {
        self.typing.untyped.as_deref()
    }
}

/// At most this many unreached maps are reported.
const MAX_UNREACHED: usize = 100_000;

impl Walker<'_> {
    /// Maps the walk did not reach but the heap proves: an allocated header object (in a span of
    /// the header's size class) whose bucket array (classic) or first table's group array (swiss)
    /// is an object the heap types as that map type's bucket or group type, with the header's
    /// fields consistent with it. Go ≥ 1.22 only (malloc headers); such maps may be garbage the
    /// collector has not freed yet.
    pub fn unreached(&mut self) -> Vec<(u64, TypeId)> {
        let mut out = Vec::new();
        if !self.heap_typed() {
            return out;
        }
        let t = self.t;
        let d = &t.bin.dwarf;
        let Ok(rules) = t.alloc_rules() else { return out };
        let hdr = d.named("runtime.hmap").filter(|&h| d.field(h, "buckets").is_some()).or_else(|| d.named("internal/runtime/maps.Map").filter(|&h| d.field(h, "dirPtr").is_some()));
        let Some(hdr) = hdr else { return out };
        let Some(hsize) = d.size_of(hdr) else { return out };
        let class = rules.alloc_size(hsize, true);
        let mut index: Option<std::collections::HashMap<u64, TypeId>> = None;
        for i in 0..self.heap.spans() {
            let Some(s) = self.heap.span(i) else { continue };
            if s.noscan || s.large || s.elemsize != class {
                continue;
            }
            let Ok(b) = t.mem.bytes(s.base, (s.nelems * s.elemsize).min(1 << 24) as usize) else { continue };
            let b = b.into_owned();
            for j in 0..s.nelems {
                let h = s.base + j * s.elemsize;
                let Some(hb) = b.get((j * s.elemsize) as usize..((j + 1) * s.elemsize) as usize) else { break };
                if self.maps.contains(&h) || hb.iter().all(|&x| x == 0) {
                    continue;
                }
                let Some(array) = self.header_array(hdr, hb) else { continue };
                let Some((rtype, data, room)) = self.typed_object(array) else { continue };
                if data != array {
                    continue;
                }
                let index = index.get_or_insert_with(|| array_index(t, &self.found));
                let Some(&ty) = index.get(&rtype) else { continue };
                if !self.header_fits(ty, hb, room) {
                    continue;
                }
                let alloc = self.typing.heap.get().and_then(|x| x.as_ref()).and_then(|ht| ht.allocated(&*t.mem, h, j));
                if alloc != Some(true) {
                    continue;
                }
                self.maps.insert(h);
                out.push((h, ty));
                if out.len() >= MAX_UNREACHED {
                    return out;
                }
            }
        }
        out
    }

    /// The heap object at `p`: its recorded type, where its data starts, and the bytes from there.
    fn typed_object(&self, p: u64) -> Option<(u64, u64, u64)> {
        let o = self.heap.object(p)?;
        let span = self.heap.span(o.slot?.0)?;
        let ht = self.typing.heap.get()?.as_ref()?;
        let (rtype, data) = ht.typed(&*self.t.mem, &span, o.base)?;
        Some((rtype, data, o.base.saturating_add(o.size).saturating_sub(data)))
    }

    /// The array a plausible map header's bytes point to: classic `buckets`; swiss: the group
    /// itself for a small map (`dirLen` 0), else the first table's groups.
    fn header_array(&self, hdr: TypeId, hb: &[u8]) -> Option<u64> {
        let t = self.t;
        let d = &t.bin.dwarf;
        let get = |name: &str| {
            let f = crate::layout::off(d, hdr, &[name]).ok()?;
            (hb.len() as u64 >= f.offset + f.size).then(|| f.get(hb))
        };
        if let Some(buckets) = get("buckets") {
            let b = get("B")?;
            return (b <= 40 && buckets != 0 && get("count")? < 1 << 48).then_some(buckets);
        }
        let (dir, len, depth) = (get("dirPtr")?, get("dirLen")?, get("globalDepth")?);
        if dir == 0 || get("used")? >= 1 << 48 {
            return None;
        }
        if len == 0 {
            return (depth == 0).then_some(dir);
        }
        if depth >= 20 || len != 1 << depth {
            return None;
        }
        let table = t.mem.u64_at(dir).ok().filter(|&x| x != 0)?;
        let tt = d.named("internal/runtime/maps.table")?;
        let groups = d.field(tt, "groups")?;
        let data = d.field(d.strip_typedefs(groups.ty), "data")?;
        t.mem.u64_at(table.wrapping_add(groups.offset + data.offset)).ok().filter(|&x| x != 0)
    }

    /// Whether the header's numbers fit the array of `room` bytes of map type `ty`.
    fn header_fits(&self, ty: TypeId, hb: &[u8], room: u64) -> bool {
        let Ok(m) = self.t.map_type(ty) else { return false };
        match &m.imp {
            crate::layout::Impl::Classic(c) => {
                let b = c.b.get(hb).min(62);
                (1u64 << b).saturating_mul(c.bucket_size) <= room
            }
            crate::layout::Impl::Swiss(s) => s.dir_len.get(hb) != 0 || s.group_size <= room,
        }
    }
}

/// Map types by their bucket (classic) or group (swiss) type descriptor: every DWARF map type
/// with a runtime type, and the runtime-made map types the walk met.
fn array_index(t: &crate::target::Target, found: &[super::Found]) -> std::collections::HashMap<u64, TypeId> {
    let d = &t.bin.dwarf;
    let mut out = std::collections::HashMap::new();
    let (Some(base), Some(off)) = (t.types_base(), rtmap::array_type_offset(d)) else { return out };
    let add = |rtype: u64, id: TypeId, out: &mut std::collections::HashMap<u64, TypeId>| {
        if let Ok(a) = t.mem.u64_at(rtype.wrapping_add(off)) {
            if a != 0 {
                // Named map types share their underlying map type's array type: the map[K]V name wins.
                let e = out.entry(a).or_insert(id);
                if !d.name_of(*e).starts_with("map[") && d.name_of(id).starts_with("map[") {
                    *e = id;
                }
            }
        }
    };
    for (&rt, &id) in &d.by_runtime_type {
        if d.get(id).is_some_and(|x| x.go_kind & 0x1f == crate::value::kind::MAP) {
            add(base.wrapping_add(rt), id, &mut out);
        }
    }
    for f in found {
        if let Some(rtype) = rtmap::descriptor(f.ty) {
            add(rtype, f.ty, &mut out);
        }
    }
    out
}
