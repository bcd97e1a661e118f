//! The runtime's own address-to-span map: `mheap_.arenas[l1][l2]` points to a `heapArena` whose
//! `spans[page]` is the mspan of every page (what `spanOf` reads). The index is built from
//! `allspans` (one read per span instead of one per page); this is the second opinion its tests
//! compare it with.

use super::{HeapIndex, HeapLayout};
use crate::binary::{Die, DwarfInfo, TypeId};
use crate::error::{Error, Result};
use crate::memory::{Memory, MemoryExt};

#[derive(Clone, Debug)]
pub struct ArenaLayout {
    /// Offset of `arenas` in mheap, and its two levels' lengths.
    pub arenas: u64,
    pub l1: u64,
    pub l2: u64,
    /// `arenaBaseOffset` and `heapArenaBytes`.
    pub base_offset: u64,
    pub arena_bytes: u64,
    /// Offset of `spans` in heapArena and its length (pages per arena).
    pub spans: u64,
    pub pages: u64,
}

fn array(d: &DwarfInfo, id: TypeId) -> Option<(Option<TypeId>, u64)> {
    match d.get(d.strip_typedefs(id)).map(|t| &t.die) {
        Some(Die::Array { elem, count }) => Some((*elem, *count)),
        _ => None,
    }
}

impl ArenaLayout {
    pub fn discover(d: &DwarfInfo) -> Result<ArenaLayout> {
        let miss = |w: &str| Error::Layout(format!("arena index: no {w} in the binary's DWARF"));
        let g = d.globals.get("runtime.mheap_").ok_or_else(|| miss("runtime.mheap_"))?;
        let f = d.field(g.ty, "arenas").ok_or_else(|| miss("mheap.arenas"))?;
        let (l1_elem, l1) = array(d, f.ty).ok_or_else(|| miss("arenas array"))?;
        let l2_ty = l1_elem.and_then(|e| d.pointee(e)).ok_or_else(|| miss("arenas' second level"))?;
        let (_, l2) = array(d, l2_ty).ok_or_else(|| miss("arenas' second level array"))?;
        let ha = d.named("runtime.heapArena").ok_or_else(|| miss("runtime.heapArena"))?;
        let sf = d.field(ha, "spans").ok_or_else(|| miss("heapArena.spans"))?;
        let (_, pages) = array(d, sf.ty).ok_or_else(|| miss("heapArena.spans array"))?;
        let base_offset = d.constant(&["runtime.arenaBaseOffsetUintptr", "runtime.arenaBaseOffset"]).ok_or_else(|| miss("arenaBaseOffset"))? as u64;
        let arena_bytes = d.constant(&["runtime.heapArenaBytes"]).filter(|&b| b > 0).ok_or_else(|| miss("heapArenaBytes"))? as u64;
        if l1 == 0 || l2 == 0 || pages == 0 || !l2.is_power_of_two() {
            return Err(Error::Layout("arena index: impossible array lengths".into()));
        }
        Ok(ArenaLayout { arenas: f.offset, l1, l2, base_offset, arena_bytes, spans: sf.offset, pages })
    }

    /// The mspan pointer the runtime's spanOf would return for `addr` (0 when none).
    pub fn span_of(&self, mem: &dyn Memory, h: &HeapLayout, addr: u64) -> Result<u64> {
        let ri = addr.wrapping_sub(self.base_offset) / self.arena_bytes;
        let (i1, i2) = if self.l1 == 1 { (0, ri) } else { (ri / self.l2, ri % self.l2) };
        if i1 >= self.l1 || i2 >= self.l2 {
            return Ok(0);
        }
        let l2 = mem.u64_at(h.mheap.wrapping_add(self.arenas.wrapping_add(i1.wrapping_mul(8))))?;
        if l2 == 0 {
            return Ok(0);
        }
        let arena = mem.u64_at(l2.wrapping_add(i2.wrapping_mul(8)))?;
        if arena == 0 {
            return Ok(0);
        }
        let page = (addr / h.page_size) % self.pages;
        mem.u64_at(arena.wrapping_add(self.spans.wrapping_add(page.wrapping_mul(8))))
    }
}

impl HeapIndex {
    /// Compares every indexed span with the arena index: (spans checked, spans whose first and last
    /// pages the arena index maps to an mspan with another start address).
    pub fn check_arenas(&self, mem: &dyn Memory, h: &HeapLayout, a: &ArenaLayout) -> Result<(u64, u64)> {
        let (mut checked, mut wrong) = (0u64, 0u64);
        let mut buf = vec![0u8; h.span_size as usize];
        for s in &self.spans {
            for p in [s.base, s.base + (s.npages - 1) * h.page_size] {
                let ms = a.span_of(mem, h, p)?;
                let ok = ms != 0 && mem.read(ms, &mut buf).is_ok() && h.start_addr.get(&buf) == s.base;
                wrong += u64::from(!ok);
            }
            checked += 1;
        }
        Ok((checked, wrong))
    }
}
