//! What the heap itself says about an object's type (Go ≥ 1.22): a pointerful small object over
//! `minSizeForMallocHeader` bytes carries a malloc header, its type descriptor's address, in its
//! first word (its data follows); a pointerful large object's span records the type in
//! `mspan.largeType`. Before Go 1.22 the heap keeps pointer bitmaps, not types: nothing is typed.
//! Also whether a slot is allocated (`mspan.isFree`: below `freeIndexForScan`, or its `allocBits`
//! bit set). Offsets and constants from DWARF; every value read is checked by the caller.

use super::{IntField, Span, SpanLookup};
use crate::memory::{Memory, MemoryExt};
use crate::target::Target;

pub struct HeapTypes {
    /// `mallocHeaderSize` and `minSizeForMallocHeader`.
    header: u64,
    min_size: u64,
    large_type: IntField,
    free_index: Option<IntField>,
    alloc_bits: Option<IntField>,
    lookup: SpanLookup,
}

impl HeapTypes {
    /// The heap's typing rules, or why this target's heap types nothing.
    pub fn discover(t: &Target) -> std::result::Result<HeapTypes, String> {
        let rules = t.alloc_rules().map_err(|e| e.to_string())?;
        if rules.malloc_header == 0 {
            return Err("the heap types its objects from Go 1.22 on (malloc headers); this binary's runtime has none".into());
        }
        let d = &t.bin.dwarf;
        let span = d.named("runtime.mspan").ok_or("no runtime.mspan in DWARF")?;
        let large_type = IntField::discover(d, span, "largeType").ok_or("no mspan.largeType in DWARF")?;
        let lookup = t.span_lookup().cloned().ok_or("no arena index to find spans with")?;
        Ok(HeapTypes {
            header: rules.malloc_header,
            min_size: rules.min_size_for_header,
            large_type,
            free_index: IntField::discover(d, span, "freeIndexForScan").or_else(|| IntField::discover(d, span, "freeindex")),
            alloc_bits: IntField::discover(d, span, "allocBits"),
            lookup,
        })
    }

    fn mspan(&self, mem: &dyn Memory, addr: u64) -> Option<u64> {
        self.lookup.arena.span_of(mem, &self.lookup.heap, addr).ok().filter(|&p| p != 0)
    }

    /// The type descriptor of the object at `base` in span `s`, and where its data starts; None when
    /// the heap does not record it (pointer-free objects, small objects without a malloc header).
    pub fn typed(&self, mem: &dyn Memory, s: &Span, base: u64) -> Option<(u64, u64)> {
        if s.noscan {
            return None;
        }
        let (rtype, data) = if s.large {
            let ms = self.mspan(mem, s.base)?;
            (mem.uint_at(ms.wrapping_add(self.large_type.offset), self.large_type.size).ok()?, s.base)
        } else if s.elemsize > self.min_size {
            (mem.u64_at(base).ok()?, base.wrapping_add(self.header))
        } else {
            return None;
        };
        (rtype != 0).then_some((rtype, data))
    }

    /// Whether slot `index` of the span holding `addr` is allocated (None when unreadable).
    pub fn allocated(&self, mem: &dyn Memory, addr: u64, index: u64) -> Option<bool> {
        let (fi, ab) = (self.free_index?, self.alloc_bits?);
        let ms = self.mspan(mem, addr)?;
        let b = mem.bytes(ms, self.lookup.heap.span_size as usize).ok()?;
        if index < fi.get(&b) {
            return Some(true);
        }
        let bits = ab.get(&b);
        if bits == 0 {
            return None;
        }
        Some(mem.u8_at(bits.wrapping_add(index / 8)).ok()? & (1 << (index % 8)) != 0)
    }
}
