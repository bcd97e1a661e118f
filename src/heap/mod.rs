//! The allocator's view of the target: which spans are in use, which object any heap address
//! belongs to, and how big that object is as allocated.
//!
//! Read once per target from `runtime.mheap_`: `allspans` lists every `mspan` the runtime ever
//! created (a freed span's struct is recycled, and its `state` says so); the ones in state
//! `mSpanInUse` are the heap's spans. Field names, offsets and the constants (`_PageSize`,
//! `mSpanInUse`) come from the binary's DWARF. Everything read is untrusted: loops are capped,
//! impossible spans are dropped and counted, overlapping spans are dropped.

pub mod account;
pub mod arena;
pub mod classes;
pub mod fuzz;
pub mod types;

pub use classes::AllocRules;

use crate::binary::{DwarfInfo, TypeId};
use crate::error::{Error, Result};
use crate::memory::{le_uint, Memory, MemoryExt};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub base: u64,
    pub npages: u64,
    pub elemsize: u64,
    pub nelems: u64,
    pub spanclass: u8,
    /// The span holds pointer-free objects (`spanclass & 1`).
    pub noscan: bool,
    /// Size class 0: one object of whole pages.
    pub large: bool,
}

impl Span {
    pub fn bytes(&self, page_size: u64) -> u64 {
        self.npages.saturating_mul(page_size)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Object {
    pub base: u64,
    /// The object's size as allocated: the span's elemsize, or its whole pages for a large object.
    pub size: u64,
    /// Index into [`HeapIndex::spans`].
    pub span: usize,
    /// The object's index in its span.
    pub index: u64,
}

/// An unsigned integer field, possibly inside wrappers such as `atomic.Uint8` or `mSpanStateBox`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntField {
    pub offset: u64,
    pub size: u64,
}

impl IntField {
    pub fn get(&self, bytes: &[u8]) -> u64 {
        le_uint(bytes, self.offset as usize, self.size as usize)
    }

    /// `name` in struct `ty`, descending through single-value wrapper structs.
    pub fn discover(d: &DwarfInfo, ty: TypeId, name: &str) -> Option<IntField> {
        let f = d.field(ty, name)?;
        let (mut offset, mut t) = (f.offset, f.ty);
        for _ in 0..4 {
            match d.fields(t) {
                None => {
                    let size = d.size_of(t)?;
                    return (1..=8).contains(&size).then_some(IntField { offset, size });
                }
                Some(fields) => {
                    let inner = fields
                        .iter()
                        .find(|f| matches!(f.name.as_str(), "value" | "v" | "s" | "u"))
                        .or_else(|| {
                            let mut real = fields.iter().filter(|f| f.name != "_" && f.name != "noCopy");
                            let one = real.next();
                            if real.next().is_some() {
                                None
                            } else {
                                one
                            }
                        })?;
                    offset += inner.offset;
                    t = inner.ty;
                }
            }
        }
        None
    }
}

/// Where the heap's structures are: everything [`HeapIndex::read`] needs, from DWARF (or built by
/// hand in tests and fuzz targets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeapLayout {
    /// Runtime address of `runtime.mheap_`.
    pub mheap: u64,
    /// Offsets in mheap of `allspans`' data pointer and length.
    pub allspans_ptr: u64,
    pub allspans_len: u64,
    /// `mheap.pagesInUse`: the runtime's count of pages in in-use spans.
    pub pages_in_use: Option<IntField>,
    pub span_size: u64,
    pub start_addr: IntField,
    pub npages: IntField,
    pub nelems: IntField,
    pub elemsize: IntField,
    pub spanclass: IntField,
    pub state: IntField,
    /// The value of `runtime.mSpanInUse`.
    pub in_use_state: u64,
    pub page_size: u64,
    /// mheap counters that change whenever the set of spans can have changed (sweepgen,
    /// pagesSwept, pagesInUse): a live target's index is rebuilt when they read differently.
    pub fingerprint: Vec<IntField>,
}

impl HeapLayout {
    pub fn discover(d: &DwarfInfo, bias: u64) -> Result<HeapLayout> {
        let miss = |what: &str| Error::Layout(format!("heap index: no {what} in the binary's DWARF"));
        let g = d.globals.get("runtime.mheap_").ok_or_else(|| miss("runtime.mheap_"))?;
        let all = d.field(g.ty, "allspans").ok_or_else(|| miss("mheap.allspans"))?;
        let ptr = d.field(all.ty, "array").ok_or_else(|| miss("allspans.array"))?.offset;
        let len = d.field(all.ty, "len").ok_or_else(|| miss("allspans.len"))?.offset;
        let span_ty = d.named("runtime.mspan").ok_or_else(|| miss("runtime.mspan"))?;
        let span_size = d.size_of(span_ty).filter(|&s| s > 0 && s <= 4096).ok_or_else(|| miss("mspan size"))?;
        let f = |name: &str| IntField::discover(d, span_ty, name).ok_or_else(|| miss(&format!("mspan.{name}")));
        let in_use_state = d.constant(&["runtime.mSpanInUse"]).ok_or_else(|| miss("runtime.mSpanInUse"))?;
        Ok(HeapLayout {
            mheap: g.addr.wrapping_add(bias),
            allspans_ptr: all.offset + ptr,
            allspans_len: all.offset + len,
            pages_in_use: IntField::discover(d, g.ty, "pagesInUse"),
            span_size,
            start_addr: f("startAddr")?,
            npages: f("npages")?,
            nelems: f("nelems")?,
            elemsize: f("elemsize")?,
            spanclass: f("spanclass")?,
            state: f("state")?,
            in_use_state: in_use_state as u64,
            page_size: classes::page_size(d)?,
            fingerprint: ["sweepgen", "pagesSwept", "pagesInUse"].iter().filter_map(|n| IntField::discover(d, g.ty, n)).collect(),
        })
    }
}

/// At most this many spans are read: 16M spans is 128 GiB of heap in 8 KiB spans.
pub const MAX_SPANS: u64 = 1 << 24;
/// A span larger than this (1 TiB) is not believed.
const MAX_SPAN_BYTES: u64 = 1 << 40;
/// `allspans` is read in chunks of this many pointers.
const CHUNK: u64 = 1 << 16;

pub struct HeapIndex {
    spans: Vec<Span>,
    page_size: u64,
    in_use: u64,
    /// Whether `in_use` is the runtime's own counter (else the sum of the spans read).
    in_use_counted: bool,
    /// Entries of allspans that could not be read or made no sense.
    rejected: u64,
}

impl HeapIndex {
    /// Builds the index of a target through its DWARF names.
    pub fn load(t: &crate::target::Target) -> Result<HeapIndex> {
        let layout = HeapLayout::discover(&t.bin.dwarf, t.bias)?;
        HeapIndex::read(&*t.mem, &layout)
    }

    /// The values that change when the span set may have changed: allspans' pointer and length
    /// and the layout's fingerprint counters (None when unreadable).
    pub fn fingerprint(mem: &dyn Memory, l: &HeapLayout) -> Option<Vec<u64>> {
        let mut v = vec![mem.u64_at(l.mheap.wrapping_add(l.allspans_ptr)).ok()?, mem.u64_at(l.mheap.wrapping_add(l.allspans_len)).ok()?];
        for f in &l.fingerprint {
            v.push(mem.uint_at(l.mheap.wrapping_add(f.offset), f.size).ok()?);
        }
        Some(v)
    }

    /// Builds the index from memory laid out as `l` says.
    pub fn read(mem: &dyn Memory, l: &HeapLayout) -> Result<HeapIndex> {
        let page_size = l.page_size;
        if page_size == 0 || !page_size.is_power_of_two() {
            return Err(Error::Layout(format!("heap index: page size {page_size} is not a power of two")));
        }
        let arr = mem.u64_at(l.mheap.wrapping_add(l.allspans_ptr))?;
        let n = mem.u64_at(l.mheap.wrapping_add(l.allspans_len))?;
        if n > MAX_SPANS {
            return Err(Error::Layout(format!("heap index: mheap_.allspans claims {n} spans (more than {MAX_SPANS})")));
        }
        let mut spans = Vec::new();
        let mut rejected = 0u64;
        let mut buf = vec![0u8; l.span_size as usize];
        let mut start = 0u64;
        while start < n {
            let k = (n - start).min(CHUNK);
            let at = arr.wrapping_add(start * 8);
            let ptrs = mem.bytes(at, (k * 8) as usize)?;
            for i in 0..k as usize {
                let p = le_uint(&ptrs, i * 8, 8);
                if p == 0 || mem.read(p, &mut buf).is_err() {
                    rejected += 1;
                    continue;
                }
                if l.state.get(&buf) != l.in_use_state {
                    continue;
                }
                match span_from(&buf, l) {
                    Some(s) => spans.push(s),
                    None => rejected += 1,
                }
            }
            start += k;
        }
        spans.sort_unstable_by_key(|s| s.base);
        // Overlapping spans cannot both be right: keep the first, drop the rest.
        let mut end = 0u64;
        spans.retain(|s| {
            if s.base < end {
                rejected += 1;
                return false;
            }
            end = s.base + s.npages * page_size;
            true
        });
        let counted = l.pages_in_use.and_then(|f| {
            let b = mem.bytes(l.mheap.wrapping_add(f.offset), f.size as usize).ok()?;
            le_uint(&b, 0, f.size as usize).checked_mul(page_size)
        });
        let summed: u64 = spans.iter().map(|s| s.npages * page_size).sum();
        Ok(HeapIndex {
            in_use: counted.unwrap_or(summed),
            in_use_counted: counted.is_some(),
            spans,
            page_size,
            rejected,
        })
    }

    /// In-use spans, sorted by base address, not overlapping.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// The span containing `addr`, by binary search.
    pub fn span_of(&self, addr: u64) -> Option<usize> {
        let i = self.spans.partition_point(|s| s.base <= addr).checked_sub(1)?;
        let s = &self.spans[i];
        (addr - s.base < s.npages * self.page_size).then_some(i)
    }

    /// The object any address inside it belongs to (None outside in-use spans and in a span's tail).
    pub fn object(&self, addr: u64) -> Option<Object> {
        let i = self.span_of(addr)?;
        object_in(&self.spans[i], i, addr, self.page_size)
    }

    /// Heap in use (MemStats.HeapInuse): `mheap_.pagesInUse` × page size when readable, else the
    /// pages of the in-use spans read.
    pub fn in_use_bytes(&self) -> u64 {
        self.in_use
    }

    /// True when [`in_use_bytes`](Self::in_use_bytes) is the runtime's own counter.
    pub fn in_use_is_runtime_counter(&self) -> bool {
        self.in_use_counted
    }

    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// Entries of `allspans` that could not be read or were impossible (a truncated core, or garbage).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}

/// The object of span `s` (index `i`) that holds `addr`.
fn object_in(s: &Span, i: usize, addr: u64, page: u64) -> Option<Object> {
    if addr < s.base || addr - s.base >= s.npages * page {
        return None;
    }
    if s.large {
        return Some(Object { base: s.base, size: s.npages * page, span: i, index: 0 });
    }
    let index = (addr - s.base) / s.elemsize;
    (index < s.nelems).then(|| Object { base: s.base + index * s.elemsize, size: s.elemsize, span: i, index })
}

/// Point lookups without building the index: the runtime's own `spanOf` through the arena index
/// (three reads per address), for commands that size a handful of objects.
#[derive(Clone, Debug)]
pub struct SpanLookup {
    pub heap: HeapLayout,
    pub arena: arena::ArenaLayout,
}

impl SpanLookup {
    pub fn discover(d: &DwarfInfo, bias: u64) -> Result<SpanLookup> {
        Ok(SpanLookup { heap: HeapLayout::discover(d, bias)?, arena: arena::ArenaLayout::discover(d)? })
    }

    /// The object holding `addr` (its `span` field is meaningless here: usize::MAX).
    pub fn object(&self, mem: &dyn Memory, addr: u64) -> Option<Object> {
        let ms = self.arena.span_of(mem, &self.heap, addr).ok().filter(|&p| p != 0)?;
        let b = mem.bytes(ms, self.heap.span_size as usize).ok()?;
        if self.heap.state.get(&b) != self.heap.in_use_state {
            return None;
        }
        object_in(&span_from(&b, &self.heap)?, usize::MAX, addr, self.heap.page_size)
    }

    /// `mheap_.pagesInUse` × page size.
    pub fn in_use_bytes(&self, mem: &dyn Memory) -> Option<u64> {
        let f = self.heap.pages_in_use?;
        mem.uint_at(self.heap.mheap.wrapping_add(f.offset), f.size).ok()?.checked_mul(self.heap.page_size)
    }
}

/// One in-use span from its mspan bytes, or None when its numbers are impossible.
fn span_from(b: &[u8], l: &HeapLayout) -> Option<Span> {
    let page = l.page_size;
    let base = l.start_addr.get(b);
    let npages = l.npages.get(b);
    let elemsize = l.elemsize.get(b);
    let nelems = l.nelems.get(b);
    let spanclass = l.spanclass.get(b) as u8;
    let bytes = npages.checked_mul(page)?;
    if base == 0 || base % page != 0 || npages == 0 || bytes > MAX_SPAN_BYTES || base.checked_add(bytes).is_none() {
        return None;
    }
    let large = spanclass >> 1 == 0;
    if large {
        if elemsize != bytes {
            return None;
        }
    } else if elemsize == 0 || nelems == 0 || nelems.checked_mul(elemsize)? > bytes {
        return None;
    }
    Some(Span { base, npages, elemsize, nelems: if large { 1 } else { nelems }, spanclass, noscan: spanclass & 1 == 1, large })
}

#[cfg(test)]
mod tests;
