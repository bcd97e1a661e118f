//! A map's memory as the allocator sized it: every heap object the map owns, looked up in the
//! [`HeapIndex`](super::HeapIndex) (or, when the heap cannot be read, sized with the binary's own
//! size classes), and what `make(map[K]V, len(m))` plus re-inserting every entry would allocate.

use super::{AllocRules, SpanLookup};
use crate::memory::Memory;
use crate::binary::{Die, DwarfInfo, TypeId};
use crate::decode::{ClassicStats, Health, SwissStats};
use crate::layout::{Impl, MapType};
use crate::memory::{le_uint, MemoryExt};
use crate::target::Target;
use serde_json::{json, Value};
use std::collections::HashSet;

/// Bytes and objects of one part of a map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Part {
    pub name: &'static str,
    pub bytes: u64,
    pub objects: u64,
}

#[derive(Clone, Debug, Default)]
pub struct MapBytes {
    /// Sum of the allocated sizes of the map's own objects.
    pub total: u64,
    pub parts: Vec<Part>,
    /// Every size came from the heap index (else some are estimates from the size classes).
    pub exact: bool,
    /// The heap in use of the whole target (mheap_.pagesInUse × page size).
    pub heap_in_use: Option<u64>,
    /// What `make(map[K]V, len)` and re-inserting the entries would allocate.
    pub rebuild: u64,
    /// Classic: overflow buckets taken from the preallocated region at the end of a bucket array.
    pub overflow_preallocated: u64,
    /// Classic: separately allocated overflow buckets of the current array holding live entries,
    /// and their bytes.
    pub overflow_separate: u64,
    pub overflow_bytes: u64,
    /// Classic: separately allocated overflow buckets of the current array with no live entry.
    pub stale_separate: u64,
    pub stale_bytes: u64,
    /// Classic, growing: the old array and its separately allocated overflow buckets.
    pub old_bytes: u64,
}

impl MapBytes {
    pub fn heap_share(&self) -> Option<f64> {
        self.heap_in_use.filter(|&u| u > 0).map(|u| self.total as f64 / u as f64)
    }

    pub fn heap_json(&self) -> Value {
        let mut m = serde_json::Map::with_capacity(self.parts.len());
        for p in &self.parts {
            m.insert(p.name.into(), json!({"bytes": p.bytes, "objects": p.objects}));
        }
        Value::Object(m)
    }

    /// "holds 38.4 MiB, 61% of the heap in use" (or "holds about ..., estimated").
    pub fn line(&self) -> String {
        let h = crate::findings::human(self.total);
        let mut s = if self.exact { format!("holds {h}") } else { format!("holds about {h} (estimated from size classes)") };
        if let Some(share) = self.heap_share() {
            s += &format!(", {} of the heap in use ({})", pct(share), crate::findings::human(self.heap_in_use.unwrap_or(0)));
        }
        s += &format!("; a rebuilt map would hold {}", crate::findings::human(self.rebuild));
        s
    }
}

fn pct(share: f64) -> String {
    if share >= 0.01 {
        format!("{:.0}%", share * 100.0)
    } else {
        format!("{:.2}%", share * 100.0)
    }
}

/// Sizes objects: from the heap index when it has them, else from the size classes.
struct Sizer<'a> {
    heap: Option<(&'a SpanLookup, &'a dyn Memory)>,
    rules: Option<&'a AllocRules>,
    seen: HashSet<u64>,
    exact: bool,
    parts: Vec<Part>,
}

impl Sizer<'_> {
    /// Counts the object holding `addr` under `part` (once, however often it is named) and returns
    /// the range of bytes it covers. `size`/`pointers` describe the request, for the estimate.
    fn add(&mut self, part: &'static str, addr: u64, size: u64, pointers: bool) -> (u64, u64) {
        if addr == 0 {
            return (0, 0);
        }
        let (base, bytes) = match self.object(addr) {
            Some(o) => (o.base, o.size),
            None => {
                self.exact = false;
                let a = self.rules.map(|r| r.alloc_size(size, pointers)).unwrap_or(size);
                (addr, a)
            }
        };
        if self.seen.insert(base) {
            self.bump(part, bytes, 1);
        }
        (base, base.saturating_add(bytes))
    }

    fn object(&self, addr: u64) -> Option<super::Object> {
        self.heap.and_then(|(l, mem)| l.object(mem, addr))
    }

    fn bump(&mut self, part: &'static str, bytes: u64, objects: u64) {
        match self.parts.iter_mut().find(|p| p.name == part) {
            Some(p) => {
                p.bytes = p.bytes.saturating_add(bytes);
                p.objects = p.objects.saturating_add(objects);
            }
            None => self.parts.push(Part { name: part, bytes, objects }),
        }
    }

    /// `n` objects that each hold one indirect key or value, sized from the sampled pointers.
    fn indirect(&mut self, part: &'static str, n: u64, samples: &[u64], size: u64, pointers: bool) {
        if n == 0 {
            return;
        }
        let sizes: Vec<Option<u64>> = samples.iter().map(|&p| self.object(p).map(|o| o.size)).collect();
        let each = match sizes.first() {
            Some(Some(s)) if sizes.iter().all(|x| *x == Some(*s)) => *s,
            _ => {
                self.exact = false;
                self.rules.map(|r| r.alloc_size(size, pointers)).unwrap_or(size)
            }
        };
        self.bump(part, n.saturating_mul(each), n);
    }
}

/// Whether values of type `id` contain pointers (what makes the allocator scan them).
pub fn has_pointers(d: &DwarfInfo, id: TypeId) -> bool {
    fn go(d: &DwarfInfo, id: TypeId, depth: u32) -> bool {
        if depth > 32 {
            return true;
        }
        let id = d.strip_typedefs(id);
        match d.get(id).map(|t| &t.die) {
            Some(Die::Base { .. }) => false,
            Some(Die::Struct { fields }) => fields.iter().any(|f| go(d, f.ty, depth + 1)),
            Some(Die::Array { elem: Some(e), count }) => *count > 0 && go(d, *e, depth + 1),
            Some(Die::Array { elem: None, .. }) => false,
            _ => true,
        }
    }
    go(d, id, 0)
}

fn named_has_pointers(t: &Target, name: &str) -> bool {
    t.bin.dwarf.named(name).map(|id| t.has_pointers(id)).unwrap_or(true)
}

/// The sum of the allocated sizes of everything the map at `h.address` owns.
pub fn account(t: &Target, m: &MapType, h: &Health) -> MapBytes {
    // A handful of objects: looked up one by one through the arena index rather than by building the
    // whole heap index (which `census` needs, and which tests/heap_arena.rs shows agrees).
    let lookup = t.span_lookup();
    let in_use = lookup.and_then(|l| l.in_use_bytes(&*t.mem)).or_else(|| t.heap().ok().map(|h| h.in_use_bytes()));
    let rules = t.alloc_rules().ok();
    let heap = lookup.map(|l| (l, &*t.mem));
    let mut s = Sizer { heap, rules: rules.as_deref(), seen: HashSet::new(), exact: heap.is_some(), parts: Vec::new() };
    let mut out = MapBytes::default();
    if h.address == 0 {
        out.exact = true;
        out.heap_in_use = in_use;
        return out;
    }
    match &m.imp {
        Impl::Classic(c) => {
            let none = ClassicStats::default();
            let cs = h.classic.as_ref().unwrap_or(&none);
            let bs = c.bucket_size;
            let bptrs = named_has_pointers(t, &c.bucket_type);
            s.add("header", h.address, c.header_size, true);
            let array_bytes = |b: u64| bucket_count(b).saturating_mul(bs);
            let cur = s.add("buckets", cs.buckets_addr, array_bytes(cs.b), bptrs);
            let mut old = (0, 0);
            if cs.oldbuckets != 0 {
                let ob = if cs.same_size_grow { cs.b } else { cs.b.saturating_sub(1) };
                let before = part_bytes(&s, "old_buckets");
                old = s.add("old_buckets", cs.oldbuckets, array_bytes(ob), bptrs);
                out.old_bytes = out.old_bytes.saturating_add(part_bytes(&s, "old_buckets") - before);
            }
            for o in &cs.overflow_list {
                let region = if o.old { old } else { cur };
                if o.addr >= region.0 && o.addr < region.1 {
                    out.overflow_preallocated += 1;
                    continue;
                }
                let part = if o.old { "old_overflow" } else { "overflow" };
                let before = part_bytes(&s, part);
                s.add(part, o.addr, bs, bptrs);
                let got = part_bytes(&s, part) - before;
                if o.old {
                    out.old_bytes = out.old_bytes.saturating_add(got);
                } else if o.live {
                    out.overflow_separate += 1;
                    out.overflow_bytes = out.overflow_bytes.saturating_add(got);
                } else {
                    out.stale_separate += 1;
                    out.stale_bytes = out.stale_bytes.saturating_add(got);
                }
            }
            extra(t, m, h.address, &mut s);
        }
        Impl::Swiss(l) => {
            let none = SwissStats::default();
            let ss = h.swiss.as_ref().unwrap_or(&none);
            let gptrs = named_has_pointers(t, &l.group_type);
            s.add("header", h.address, l.header_size, true);
            if ss.small {
                s.add("groups", ss.dir_ptr, l.group_size, gptrs);
            } else {
                s.add("directory", ss.dir_ptr, ss.dir_len.saturating_mul(8), true);
                for &(tp, data, ngroups) in &ss.table_list {
                    s.add("tables", tp, l.table_size, true);
                    s.add("groups", data, ngroups.saturating_mul(l.group_size), gptrs);
                }
            }
        }
    }
    let (ki, ei) = indirect_flags(m);
    if ki {
        s.indirect("indirect_keys", h.live, &h.indirect_keys, m.key_size, t.has_pointers(m.key));
    }
    if ei {
        s.indirect("indirect_values", h.live, &h.indirect_elems, m.elem_size, t.has_pointers(m.elem));
    }
    out.total = s.parts.iter().fold(0u64, |a, p| a.saturating_add(p.bytes));
    out.exact = s.exact;
    out.parts = s.parts;
    out.heap_in_use = in_use;
    out.rebuild = rebuild_bytes(t, m, h.live).unwrap_or(0);
    out
}

fn part_bytes(s: &Sizer<'_>, name: &str) -> u64 {
    s.parts.iter().find(|p| p.name == name).map(|p| p.bytes).unwrap_or(0)
}

fn indirect_flags(m: &MapType) -> (bool, bool) {
    match &m.imp {
        Impl::Classic(c) => (c.slots.key_indirect, c.slots.elem_indirect),
        Impl::Swiss(l) => (l.slots.key_indirect, l.slots.elem_indirect),
    }
}

/// Buckets `makeBucketArray` allocates for 2^b: from b = 4 on, 2^(b-4) preallocated overflow
/// buckets follow the array (the runtime also rounds the count up to fill the size class).
fn bucket_count(b: u64) -> u64 {
    let b = b.min(62);
    (1u64 << b) + if b >= 4 { 1u64 << (b - 4) } else { 0 }
}

/// hmap.extra, its overflow slices' headers (`new([]*bmap)`) and their backing arrays.
fn extra(t: &Target, m: &MapType, addr: u64, s: &mut Sizer<'_>) {
    let d = &t.bin.dwarf;
    let Some(hdr) = d.named(&m.header_type) else { return };
    let Some(f) = d.field(hdr, "extra") else { return };
    let Some(ext_ty) = d.pointee(f.ty) else { return };
    let Ok(ext) = t.mem.u64_at(addr.wrapping_add(f.offset)) else { return };
    if ext == 0 {
        return;
    }
    let ext_size = d.size_of(ext_ty).unwrap_or(24);
    s.add("extra", ext, ext_size, true);
    for name in ["overflow", "oldoverflow"] {
        let Some(of) = d.field(ext_ty, name) else { continue };
        let Ok(sp) = t.mem.u64_at(ext.wrapping_add(of.offset)) else { continue };
        if sp == 0 {
            continue;
        }
        let slice_ty = d.pointee(of.ty);
        let slice_size = slice_ty.and_then(|x| d.size_of(x)).unwrap_or(24);
        s.add("extra", sp, slice_size, true);
        let (arr_off, cap_off) = match slice_ty {
            Some(st) => (d.field(st, "array").map(|x| x.offset).unwrap_or(0), d.field(st, "cap").map(|x| x.offset).unwrap_or(16)),
            None => (0, 16),
        };
        let Ok(b) = t.mem.bytes(sp, slice_size as usize) else { continue };
        let (arr, cap) = (le_uint(&b, arr_off as usize, 8), le_uint(&b, cap_off as usize, 8));
        if arr != 0 && cap <= 1 << 32 {
            s.add("extra", arr, cap * 8, true);
        }
    }
}

/// Bytes `make(map[K]V, len)` followed by `len` inserts allocates, by this binary's rules.
pub fn rebuild_bytes(t: &Target, m: &MapType, len: u64) -> Option<u64> {
    let r = t.alloc_rules().ok()?;
    let d = &t.bin.dwarf;
    let (ki, ei) = indirect_flags(m);
    let indirect = len.saturating_mul(
        (if ki { r.alloc_size(m.key_size, t.has_pointers(m.key)) } else { 0 }).saturating_add(if ei { r.alloc_size(m.elem_size, t.has_pointers(m.elem)) } else { 0 }),
    );
    let body = match &m.imp {
        Impl::Classic(c) => {
            let bptrs = named_has_pointers(t, &c.bucket_type);
            let hdr = r.alloc_size(c.header_size, true);
            // makemap: the smallest B with !overLoadFactor(hint, B), i.e. hint <= 8 or
            // hint <= loadFactorNum * (2^B / loadFactorDen). Go 1.21 has loadFactorNum 12, the others 13.
            let num = d.constant(&["runtime.loadFactorNum"]).filter(|&n| n > 0).unwrap_or(13) as u64;
            let den = d.constant(&["runtime.loadFactorDen"]).filter(|&n| n > 0).unwrap_or(2) as u64;
            let mut b = 0u64;
            while b < 62 && len > 8 && len > num.saturating_mul((1u64 << b) / den) {
                b += 1;
            }
            if len == 0 {
                hdr
            } else if b == 0 {
                // B = 0: no array at make time; the first insert allocates one bucket.
                hdr.saturating_add(r.alloc_size(c.bucket_size, bptrs))
            } else {
                let ext = if b >= 4 { r.alloc_size(d.named("runtime.mapextra").and_then(|x| d.size_of(x)).unwrap_or(24), true) } else { 0 };
                hdr.saturating_add(r.alloc_size(bucket_count(b).saturating_mul(c.bucket_size), bptrs)).saturating_add(ext)
            }
        }
        Impl::Swiss(l) => {
            let gptrs = named_has_pointers(t, &l.group_type);
            let hdr = r.alloc_size(l.header_size, true);
            let slots = d.constant(&["internal/abi.SwissMapGroupSlots", "internal/abi.MapGroupSlots"]).filter(|&n| n > 0).unwrap_or(8) as u64;
            let load = d.constant(&["internal/runtime/maps.maxAvgGroupLoad"]).filter(|&n| n > 0).unwrap_or(7) as u64;
            let max_table = d.constant(&["internal/runtime/maps.maxTableCapacity"]).filter(|&n| n > 0).unwrap_or(1024) as u64;
            if len == 0 {
                hdr
            } else if len <= slots {
                // NewMap allocates nothing for hint <= 8; the first insert allocates the small group.
                hdr.saturating_add(r.alloc_size(l.group_size, gptrs))
            } else {
                // NewMap: targetCapacity = hint*8/maxAvgGroupLoad, split over a power-of-two directory
                // of tables of at most maxTableCapacity slots, each rounded up to a power of two.
                let target = len.saturating_mul(slots) / load;
                let dir = target.div_ceil(max_table).max(1).checked_next_power_of_two()?;
                let per = (target / dir).max(slots).checked_next_power_of_two()?;
                let groups = per / slots;
                let per_table = r.alloc_size(l.table_size, true).saturating_add(r.alloc_size(groups.saturating_mul(l.group_size), gptrs));
                hdr.saturating_add(r.alloc_size(dir.saturating_mul(8), true)).saturating_add(dir.saturating_mul(per_table))
            }
        }
    };
    Some(body.saturating_add(indirect))
}
