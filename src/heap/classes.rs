//! The allocator's sizing rules, read from the binary: size classes (`class_to_size`,
//! `class_to_allocnpages`, or `internal/runtime/gc.SizeClassToSize` / `SizeClassToNPages` since Go
//! 1.26), the page size, and the malloc header of Go ≥ 1.22. Used to size objects when the heap itself
//! cannot be read, and to size the map a rebuild would allocate.

use crate::binary::{Die, DwarfInfo};
use crate::error::{Error, Result};
use crate::memory::{le_uint, Memory, MemoryExt};

/// How `mallocgc` turns a requested size into the bytes it takes from the heap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocRules {
    pub page_size: u64,
    /// Object size of each size class; class 0 (large objects) is 0.
    pub class_size: Vec<u64>,
    /// Pages of a span of each class.
    pub class_npages: Vec<u64>,
    /// `mallocHeaderSize` (Go ≥ 1.22; 0 before): pointerful small objects above
    /// `minSizeForMallocHeader` carry this header inside their slot.
    pub malloc_header: u64,
    pub min_size_for_header: u64,
}

/// Size classes beyond this are not believed (Go has 68).
const MAX_CLASSES: u64 = 256;

impl AllocRules {
    /// Reads the tables through `mem` (a core or process has the executable's data mapped), with
    /// addresses shifted by the load `bias`.
    pub fn load(d: &DwarfInfo, mem: &dyn Memory, bias: u64) -> Result<AllocRules> {
        let page_size = page_size(d)?;
        let class_size = read_table(d, mem, bias, &["internal/runtime/gc.SizeClassToSize", "runtime.class_to_size"])?;
        let class_npages = read_table(d, mem, bias, &["internal/runtime/gc.SizeClassToNPages", "runtime.class_to_allocnpages"])?;
        let (malloc_header, min_size_for_header) = match (
            d.constant(&["runtime.mallocHeaderSize", "internal/runtime/gc.MallocHeaderSize"]),
            d.constant(&["runtime.minSizeForMallocHeader", "internal/runtime/gc.MinSizeForMallocHeader"]),
        ) {
            (Some(h), Some(m)) if (0..=64).contains(&h) && m > 0 => (h as u64, m as u64),
            _ => (0, 0),
        };
        let r = AllocRules { page_size, class_size, class_npages, malloc_header, min_size_for_header };
        r.check()?;
        Ok(r)
    }

    fn check(&self) -> Result<()> {
        let n = self.class_size.len();
        if n < 2 || self.class_npages.len() != n {
            return Err(Error::Layout("size class tables are missing or of different lengths".into()));
        }
        if self.class_size.windows(2).skip(1).any(|w| w[1] <= w[0]) || self.class_size[1] == 0 {
            return Err(Error::Layout("size class table is not increasing".into()));
        }
        Ok(())
    }

    /// The largest size served from a size class (`maxSmallSize`).
    pub fn max_small(&self) -> u64 {
        self.class_size.last().copied().unwrap_or(0)
    }

    /// Bytes the heap hands out for an allocation of `size` bytes (`mallocgc`): the small-object
    /// path rounds up to a size class after adding the malloc header to pointerful objects over
    /// `minSizeForMallocHeader` (`heapBitsInSpan`); sizes above `maxSmallSize - mallocHeaderSize` get
    /// whole pages of their own (`mallocgcLarge` / `allocLarge`). Noscan objects under 16 bytes go
    /// through the tiny allocator and share 16-byte blocks: they count as their own size here.
    pub fn alloc_size(&self, size: u64, pointers: bool) -> u64 {
        if size == 0 {
            return 0;
        }
        if size <= self.max_small().saturating_sub(self.malloc_header) {
            let mut s = size;
            if pointers && self.malloc_header > 0 && size > self.min_size_for_header {
                s += self.malloc_header;
            }
            if let Some(c) = self.class_size.iter().skip(1).find(|&&c| c >= s) {
                return *c;
            }
        }
        let p = self.page_size.max(1);
        size.div_ceil(p).saturating_mul(p)
    }
}

/// `_PageSize` as the compiler recorded it; else heap arena bytes over pages per arena (the length of
/// `heapArena.spans`).
pub fn page_size(d: &DwarfInfo) -> Result<u64> {
    if let Some(p) = d.constant(&["runtime._PageSize", "runtime.pageSize", "internal/runtime/gc.PageSize"]) {
        if p > 0 && (p as u64).is_power_of_two() {
            return Ok(p as u64);
        }
    }
    let arena = d.constant(&["runtime.heapArenaBytes"]).filter(|&a| a > 0).map(|a| a as u64);
    let pages = d
        .named("runtime.heapArena")
        .and_then(|h| d.field(h, "spans"))
        .and_then(|f| match d.get(d.strip_typedefs(f.ty)).map(|t| &t.die) {
            Some(Die::Array { count, .. }) if *count > 0 => Some(*count),
            _ => None,
        });
    match (arena, pages) {
        (Some(a), Some(n)) if (a / n).is_power_of_two() => Ok(a / n),
        _ => Err(Error::Layout("cannot find the runtime's page size (no runtime._PageSize in DWARF)".into())),
    }
}

/// The executable file as a memory source at link-time addresses: the size-class tables are
/// initialized data, so a target whose memory lacks them (a truncated core) still has them here.
pub struct ExeFile<'a>(pub &'a crate::memory::exe::ExeImage);

impl Memory for ExeFile<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let v = self.0.view(addr, buf.len()).ok_or_else(|| Error::unreadable(addr, buf.len(), "not in the executable file"))?;
        buf.copy_from_slice(v);
        Ok(())
    }
    fn describe(&self) -> String {
        "executable file".into()
    }
}

/// An array of unsigned integers that is a package-level variable.
fn read_table(d: &DwarfInfo, mem: &dyn Memory, bias: u64, names: &[&str]) -> Result<Vec<u64>> {
    let g = names
        .iter()
        .find_map(|n| d.globals.get(*n))
        .ok_or_else(|| Error::Layout(format!("no {} in the binary's DWARF", names.join(" or "))))?;
    let (elem, count) = match d.get(d.strip_typedefs(g.ty)).map(|t| &t.die) {
        Some(Die::Array { elem: Some(e), count }) => (*e, *count),
        _ => return Err(Error::Layout(format!("{} is not an array", g.name))),
    };
    let esize = d.size_of(elem).unwrap_or(0);
    if !(1..=8).contains(&esize) || count == 0 || count > MAX_CLASSES {
        return Err(Error::Layout(format!("{} has an unexpected shape", g.name)));
    }
    let bytes = mem.bytes(g.addr.wrapping_add(bias), (esize * count) as usize)?;
    Ok((0..count as usize).map(|i| le_uint(&bytes, i * esize as usize, esize as usize)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go 1.22's tables (the first classes and the last), as a test vector for the rounding rules.
    fn rules(header: u64) -> AllocRules {
        let class_size = vec![0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 27264, 28672, 32768];
        let class_npages = vec![1; class_size.len()];
        AllocRules { page_size: 8192, class_size, class_npages, malloc_header: header, min_size_for_header: 512 }
    }

    #[test]
    fn small_sizes_round_up_to_their_class() {
        let r = rules(0);
        assert_eq!(r.alloc_size(0, true), 0);
        assert_eq!(r.alloc_size(1, true), 8);
        assert_eq!(r.alloc_size(48, true), 48);
        assert_eq!(r.alloc_size(49, false), 64);
        assert_eq!(r.alloc_size(32768, true), 32768);
        assert_eq!(r.alloc_size(32769, true), 40960);
    }

    #[test]
    fn malloc_header_only_for_pointerful_objects_over_512_bytes() {
        let r = rules(8);
        assert_eq!(r.alloc_size(512, true), 512);
        assert_eq!(r.alloc_size(513, true), 576);
        assert_eq!(r.alloc_size(576, true), 640);
        assert_eq!(r.alloc_size(576, false), 576);
        // Between maxSmallSize - header and maxSmallSize an object is large, pointers or not.
        assert_eq!(r.alloc_size(32761, false), 32768); // four whole pages
        assert_eq!(r.alloc_size(32769, true), 40960);
        assert_eq!(r.alloc_size(32760, true), 32768);
    }
}
