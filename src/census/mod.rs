//! Finding maps: today, every map reachable from package-level variables through struct fields
//! and pointers.

use crate::binary::{Die, TypeId};
use crate::inspect::MapRef;
use crate::memory::MemoryExt;
use crate::target::Target;

/// Every non-nil map reachable from package-level variables, through struct fields and pointers.
pub fn from_globals(t: &Target) -> Vec<MapRef> {
    let d = &t.bin.dwarf;
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for g in d.globals.values() {
        let addr = g.addr.wrapping_add(t.bias);
        collect(t, &g.name, addr, g.ty, 0, &mut out, &mut seen);
        if out.len() > 100_000 {
            break;
        }
    }
    out
}

fn collect(t: &Target, name: &str, addr: u64, ty: TypeId, depth: u32, out: &mut Vec<MapRef>, seen: &mut std::collections::HashSet<u64>) {
    let d = &t.bin.dwarf;
    if depth > 3 {
        return;
    }
    let Some(info) = d.get(ty) else { return };
    if info.go_kind & 0x1f == 21 || info.go_key.is_some() {
        if let Ok(h) = t.mem.u64_at(addr) {
            if h != 0 && seen.insert(h) && t.map_type(ty).is_ok() {
                out.push(MapRef { name: name.to_string(), addr: h, ty });
            }
        }
        return;
    }
    let s = d.strip_typedefs(ty);
    match d.get(s).map(|x| &x.die) {
        Some(Die::Struct { fields }) if !d.name_of(s).starts_with("sync.") => {
            for f in fields.iter().take(256) {
                collect(t, &format!("{name}.{}", f.name), addr.wrapping_add(f.offset), f.ty, depth + 1, out, seen);
            }
        }
        Some(Die::Pointer { target: Some(p) }) => {
            let ps = d.strip_typedefs(*p);
            if matches!(d.get(ps).map(|x| &x.die), Some(Die::Struct { .. })) {
                if let Ok(pa) = t.mem.u64_at(addr) {
                    if pa != 0 && seen.insert(pa ^ 1) {
                        collect(t, name, pa, *p, depth + 1, out, seen);
                    }
                }
            }
        }
        _ => {}
    }
}
