//! Finalizer and cleanup specials as roots. The runtime keeps, per span, a list of "specials"
//! (`mspan.specials`): records attached to one object of the span. Two kinds keep memory alive the
//! way a root does (runtime/mgcmark.go, markrootSpans):
//! - a finalizer (`runtime.SetFinalizer`): its function value (`specialfinalizer.fn`, a closure) is a
//!   root, and so is everything the finalized object refers to (the object itself is not marked, or it
//!   would never be finalized);
//! - a cleanup (`runtime.AddCleanup`, Go 1.24+): its function value (`specialCleanup.fn`, or
//!   `specialCleanup.cleanup.fn` and its argument `cleanup.arg` from Go 1.26) is a root.
//!
//! Kinds, field offsets and the in-use span state come from DWARF (`runtime._KindSpecialFinalizer`,
//! `runtime._KindSpecialCleanup`, `runtime.special`, ...), never from a version table.

use super::roots::{Root, RootKind, Stacks};
use crate::binary::{Die, TypeId};
use crate::error::{Error, Result};
use crate::heap::{HeapLayout, IntField};
use crate::memory::{le_uint, MemoryExt};
use crate::target::Target;
use crate::value::{go_kind, kind};

/// Caps: a corrupt span list or special chain cannot make this unbounded.
const MAX_SPECIALS_PER_SPAN: usize = 1 << 16;
const MAX_SPECIAL_ROOTS: usize = 1 << 20;
const CHUNK: u64 = 1 << 16;

/// A cleanup special: its kind, the offset of its function value, and of its argument pointer with
/// that field's type (Go 1.26+).
type CleanupLayout = (i64, u64, Option<(u64, TypeId)>);

struct Layout {
    heap: HeapLayout,
    specials: u64,
    next: u64,
    offset: IntField,
    kind: IntField,
    /// Kind, offset of the function value, offset of `ot` (the object's pointer type).
    finalizer: Option<(i64, u64, u64)>,
    cleanup: Option<CleanupLayout>,
}

fn layout(t: &Target) -> Result<Layout> {
    let d = &t.bin.dwarf;
    let miss = |what: &str| Error::Layout(format!("specials: no {what} in the binary's DWARF"));
    let heap = HeapLayout::discover(d, t.bias)?;
    let span = d.named("runtime.mspan").ok_or_else(|| miss("runtime.mspan"))?;
    let special = d.named("runtime.special").ok_or_else(|| miss("runtime.special"))?;
    let specials = d.field(span, "specials").ok_or_else(|| miss("mspan.specials"))?.offset;
    let next = d.field(special, "next").ok_or_else(|| miss("special.next"))?.offset;
    let offset = IntField::discover(d, special, "offset").ok_or_else(|| miss("special.offset"))?;
    let kind = IntField::discover(d, special, "kind").ok_or_else(|| miss("special.kind"))?;
    let finalizer = (|| {
        let k = d.constant(&["runtime._KindSpecialFinalizer"])?;
        let s = d.named("runtime.specialfinalizer")?;
        Some((k, d.field(s, "fn")?.offset, d.field(s, "ot")?.offset))
    })();
    let cleanup = (|| {
        let k = d.constant(&["runtime._KindSpecialCleanup"])?;
        let s = d.named("runtime.specialCleanup")?;
        if let Some(f) = d.field(s, "fn") {
            return Some((k, f.offset, None));
        }
        let c = d.field(s, "cleanup")?;
        let fnf = d.field(c.ty, "fn")?;
        let arg = d.field(c.ty, "arg").map(|a| (c.offset + a.offset, a.ty));
        Some((k, c.offset + fnf.offset, arg))
    })();
    Ok(Layout { heap, specials, next, offset, kind, finalizer, cleanup })
}

/// A DWARF type of kind func: the type a root holding a bare `*funcval` is scanned as (a Go func
/// value is exactly a pointer to its funcval), so the walk follows the closure's captured variables.
fn func_type(t: &Target) -> Option<TypeId> {
    let d = &t.bin.dwarf;
    if let Some(id) = d.named("func()") {
        if go_kind(d, id).0 == kind::FUNC {
            return Some(id);
        }
    }
    let mut ids: Vec<TypeId> = d.types.iter().filter(|(_, i)| matches!(i.die, Die::Func)).map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.into_iter().find(|&id| go_kind(d, id).0 == kind::FUNC)
}

/// The name of the function a funcval runs; for the runtime's own wrapper around a cleanup
/// (`runtime.AddCleanup[...].func1`, Go 1.24 and 1.25), the user's function it captured.
fn funcval_name(t: &Target, st: Option<&Stacks>, fv: u64) -> String {
    let Some(st) = st else { return format!("{fv:#x}") };
    let name = |fv: u64| -> Option<String> {
        let pc = t.mem.u64_at(fv).ok()?;
        st.frames.function(pc.wrapping_sub(t.bias)).map(|(n, _)| n)
    };
    let Some(n) = name(fv) else { return format!("{fv:#x}") };
    if n.starts_with("runtime.AddCleanup") {
        if let Ok(pc) = t.mem.u64_at(fv) {
            for (v, off, _) in st.frames.closure_vars(pc.wrapping_sub(t.bias)) {
                if v.trim_start_matches('&') == "cleanup" {
                    // Captured by value: the slot is the func value; by reference (`&cleanup`): a
                    // pointer to it.
                    let Ok(mut inner) = t.mem.u64_at(fv.wrapping_add(off)) else { continue };
                    if v.starts_with('&') {
                        let Ok(x) = t.mem.u64_at(inner) else { continue };
                        inner = x;
                    }
                    if let Some(n) = name(inner) {
                        return n;
                    }
                }
            }
        }
    }
    n
}

/// The roots finalizer and cleanup specials hold, appended to `roots`. Returns how many specials
/// were found (finalizers, cleanups).
pub fn roots(t: &Target, st: Option<&Stacks>, roots: &mut Vec<Root>) -> Result<(u64, u64)> {
    let l = layout(t)?;
    if l.finalizer.is_none() && l.cleanup.is_none() {
        return Err(Error::Layout("specials: no runtime._KindSpecialFinalizer in the binary's DWARF".into()));
    }
    let d = &t.bin.dwarf;
    let fty = func_type(t);
    let mem = &*t.mem;
    let h = &l.heap;
    let arr = mem.u64_at(h.mheap.wrapping_add(h.allspans_ptr))?;
    let n = mem.u64_at(h.mheap.wrapping_add(h.allspans_len))?.min(crate::heap::MAX_SPANS);
    let mut buf = vec![0u8; h.span_size as usize];
    let need = [d.named("runtime.specialfinalizer"), d.named("runtime.specialCleanup"), d.named("runtime.special")]
        .iter()
        .filter_map(|x| x.and_then(|x| d.size_of(x)))
        .max()
        .unwrap_or(0)
        .clamp(24, 256);
    let mut sb = vec![0u8; need as usize];
    let (mut finalizers, mut cleanups) = (0u64, 0u64);
    let mut start = 0u64;
    while start < n {
        if crate::decode::interrupted() {
            return Err(Error::Interrupted);
        }
        let k = (n - start).min(CHUNK);
        let ptrs = mem.bytes(arr.wrapping_add(start * 8), (k * 8) as usize)?;
        for i in 0..k as usize {
            let p = le_uint(&ptrs, i * 8, 8);
            if p == 0 || mem.read(p, &mut buf).is_err() || h.state.get(&buf) != h.in_use_state {
                continue;
            }
            let base = h.start_addr.get(&buf);
            let mut sp = le_uint(&buf, l.specials as usize, 8);
            for _ in 0..MAX_SPECIALS_PER_SPAN {
                if sp == 0 || roots.len() > MAX_SPECIAL_ROOTS || mem.read(sp, &mut sb).is_err() {
                    break;
                }
                let kind = l.kind.get(&sb) as i64;
                let obj = base.wrapping_add(l.offset.get(&sb));
                if let Some((_, fn_off, ot_off)) = l.finalizer.filter(|f| f.0 == kind) {
                    finalizers += 1;
                    let fv = le_uint(&sb, fn_off as usize, 8);
                    let function = if fv != 0 { funcval_name(t, st, fv) } else { String::new() };
                    // The object's type: the DWARF type of `ot` (*T), pointed at.
                    let ot = le_uint(&sb, ot_off as usize, 8);
                    let pty = t.dwarf_type_of(ot);
                    let elem = pty.and_then(|p| d.pointee(p));
                    let shown = match pty {
                        Some(p) => format!("({})({obj:#x})", d.name_of(p)),
                        None => format!("{obj:#x}"),
                    };
                    if let Some(ty) = elem {
                        roots.push(Root { kind: RootKind::Special { function: function.clone() }, variable: shown, addr: obj, ty });
                    }
                    if let (Some(ty), true) = (fty, fv != 0) {
                        roots.push(Root { kind: RootKind::Special { function }, variable: format!("finalizer({obj:#x})"), addr: sp.wrapping_add(fn_off), ty });
                    }
                } else if let Some((_, fn_off, arg)) = l.cleanup.filter(|c| c.0 == kind) {
                    cleanups += 1;
                    let fv = le_uint(&sb, fn_off as usize, 8);
                    let function = if fv != 0 { funcval_name(t, st, fv) } else { String::new() };
                    if let (Some(ty), true) = (fty, fv != 0) {
                        roots.push(Root { kind: RootKind::Special { function: function.clone() }, variable: format!("cleanup({obj:#x})"), addr: sp.wrapping_add(fn_off), ty });
                    }
                    if let Some((off, ty)) = arg {
                        roots.push(Root { kind: RootKind::Special { function }, variable: format!("cleanup({obj:#x}).arg"), addr: sp.wrapping_add(off), ty });
                    }
                }
                sp = le_uint(&sb, l.next as usize, 8);
            }
        }
        start += k;
    }
    Ok((finalizers, cleanups))
}
