//! Finding maps: the census of every live map, each by its shortest path from a root (package-level
//! variables, goroutines' frames) through the heap (`roots`, `walk`, `paths`), and the fast mode that
//! only looks at package-level variables through struct fields and pointers (`from_globals`).

pub mod liveness;
pub mod paths;
pub mod roots;
pub mod specials;
pub mod walk;

use crate::binary::{Die, TypeId};
use crate::error::Result;
pub use roots::{Goroutine, Root, RootKind};
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
        // sync's other types hold no map of the program's; a sync.Map (before Go 1.24) holds its
        // entries in the `dirty` map.
        Some(Die::Struct { fields }) if !d.name_of(s).starts_with("sync.") || d.name_of(s) == "sync.Map" => {
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

/// What to look for.
#[derive(Default)]
pub struct Options {
    /// Also the goroutines' frames (false: package-level variables only, through the heap).
    pub goroutines: bool,
    /// Collect every path that holds the map with this header address.
    pub holders_of: Option<u64>,
}

/// A map of the census: its reference (name = its shortest path) and the root that path starts at.
pub struct Mapped {
    pub r: MapRef,
    pub root: Root,
}

pub struct Census {
    pub maps: Vec<Mapped>,
    pub goroutines: Vec<Goroutine>,
    /// Paths to `Options::holders_of`, each with its root.
    pub holders: Vec<(String, Root)>,
    pub objects: u64,
    /// The heap in use (MemStats.HeapInuse), when the heap index could be read.
    pub heap_in_use: Option<u64>,
    /// What the census could not do (no goroutines, a truncated walk), one line each.
    pub notes: Vec<String>,
}

/// Every map reachable from the roots, once each, by its shortest path.
pub fn census(t: &Target, opts: &Options) -> Result<Census> {
    let mut roots = roots::globals(t);
    let mut notes = Vec::new();
    let mut goroutines = Vec::new();
    let stacks = match roots::stacks(t) {
        Ok(s) => Some(s),
        Err(e) => {
            notes.push(format!("closures and frames not walked: {e}"));
            None
        }
    };
    if opts.goroutines {
        match roots::goroutines(t, &mut roots) {
            Ok(g) => {
                // Goroutines whose stacks were not (fully) walked: their maps may be missing.
                let partial: Vec<_> = g.iter().filter_map(|g| g.note.as_ref().map(|n| (g, n))).collect();
                for (g, n) in partial.iter().take(5) {
                    notes.push(format!("goroutine {} ({}{}): {n}", g.goid, g.status, if g.wait_reason.is_empty() { String::new() } else { format!(", {}", g.wait_reason) }));
                }
                if partial.len() > 5 {
                    notes.push(format!("{} more goroutines with partial stacks", partial.len() - 5));
                }
                goroutines = g
            }
            Err(crate::error::Error::Interrupted) => return Err(crate::error::Error::Interrupted),
            Err(e) => notes.push(format!("goroutines not walked: {e}")),
        }
    }
    if opts.goroutines {
        if let Err(e) = specials::roots(t, stacks.as_deref(), &mut roots) {
            notes.push(format!("finalizers and cleanups not read: {e}"));
        }
    }
    let index = t.heap();
    let readable = walk::Readable(t);
    let heap: &dyn walk::HeapView = match &index {
        Ok(h) => &**h,
        Err(e) => {
            notes.push(format!("{e}: pointers are followed wherever memory is readable"));
            &readable
        }
    };
    let mut w = walk::Walker::new(t, heap, stacks, opts.holders_of);
    w.run(&roots)?;
    if let Some(why) = &w.truncated {
        notes.push(format!("walk truncated: {why}"));
    }
    if let Some(why) = w.unsafe_untyped() {
        notes.push(format!("unsafe.Pointer values not followed: {why}"));
    }
    // Maps the heap proves that no root reached (typing.rs), after the walk: the walk's names win.
    let unreached = if opts.holders_of.is_none() { w.unreached() } else { Vec::new() };
    if !unreached.is_empty() {
        notes.push(format!(
            "{} maps (root \"other\") are reached from no root the census walks: held through memory it cannot type, or garbage not yet collected",
            unreached.len()
        ));
    }
    let root_name = |i: u32| roots.get(i as usize).map(Root::display).unwrap_or_default();
    let root_of = |path: u32| w.paths.root(path).and_then(|i| roots.get(i as usize)).cloned();
    let mut maps = Vec::with_capacity(w.found.len());
    for f in &w.found {
        let Some(root) = root_of(f.path) else { continue };
        maps.push(Mapped { r: MapRef { name: w.paths.name(f.path, &root_name), addr: f.header, ty: f.ty }, root });
    }
    for (h, ty) in unreached {
        let root = Root { kind: RootKind::Other, variable: String::new(), addr: 0, ty: 0 };
        maps.push(Mapped { r: MapRef { name: format!("<unreached {h:#x}>"), addr: h, ty }, root });
    }
    let holders = w.holders.iter().filter_map(|&p| Some((w.paths.name(p, &root_name), root_of(p)?))).collect();
    let heap_in_use = index.as_ref().ok().map(|h| h.in_use_bytes());
    Ok(Census { maps, goroutines, holders, objects: w.objects_visited, heap_in_use, notes })
}
