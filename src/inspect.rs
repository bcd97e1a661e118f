//! The facade every front end calls: resolve an expression to a map, run a subcommand. Each
//! subcommand lives in its own file under `src/commands/`; output is streamed to a writer, so memory
//! stays bounded by what one entry needs.

use crate::binary::{Die, TypeId};
use crate::cli::Cmd;
use crate::commands;
use crate::decode;
use crate::error::{Error, Result};
use crate::memory::MemoryExt;
use crate::target::Target;
use std::io::Write;

/// A map found by an expression: its header address and DWARF map type.
#[derive(Clone, Debug)]
pub struct MapRef {
    pub name: String,
    pub addr: u64,
    pub ty: TypeId,
}

/// A debugger's evaluator: EXPR -> (value of the map variable = header address, type name).
/// `Ok(None)` means "not known to the debugger": gomap then resolves it from DWARF itself.
pub type Resolver<'a> = &'a dyn Fn(&str) -> Result<Option<(u64, String)>>;

fn parse_addr(s: &str) -> Option<u64> {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u64::from_str_radix(&h.replace('_', ""), 16).ok()
}

fn map_type_named(t: &Target, name: &str) -> Result<TypeId> {
    let d = &t.bin.dwarf;
    let name = name.trim();
    let id = d.named(name).ok_or_else(|| {
        let mut similar: Vec<&str> = d.by_name.keys().filter(|n| n.starts_with("map[")).map(|s| s.as_str()).collect();
        similar.sort();
        similar.truncate(5);
        Error::Expr(format!("no type `{name}` in the binary's DWARF (map types it has include: {})", similar.join(", ")))
    })?;
    t.map_type(id).map_err(|e| match e {
        Error::Expr(_) => Error::Expr(format!("`{name}` is not a map type")),
        e => e,
    })?;
    Ok(id)
}

pub fn resolve(t: &Target, expr: &str, type_name: Option<&str>, resolver: Option<Resolver<'_>>) -> Result<MapRef> {
    let expr = expr.trim();
    if let Some(addr) = parse_addr(expr) {
        let tn = type_name.ok_or_else(|| Error::Usage(format!("{expr}: an address needs --type 'map[K]V'")))?;
        return Ok(MapRef { name: expr.to_string(), addr, ty: map_type_named(t, tn)? });
    }
    if expr.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(Error::Usage(format!("{expr}: addresses are written in hex with a 0x prefix")));
    }
    if let Some(r) = resolver {
        if let Some((addr, tn)) = r(expr)? {
            let tn = type_name.map(str::to_string).unwrap_or(tn);
            return Ok(MapRef { name: expr.to_string(), addr, ty: map_type_named(t, &tn)? });
        }
    }
    resolve_global_path(t, expr)
}

/// `pkg.var` or `pkg.var.field.field`, following pointers between fields.
fn resolve_global_path(t: &Target, expr: &str) -> Result<MapRef> {
    let d = &t.bin.dwarf;
    let unquoted = expr.trim_matches('\'');
    let mut split = None;
    for (i, _) in unquoted.char_indices().filter(|(_, c)| *c == '.').chain([(unquoted.len(), '.')]).collect::<Vec<_>>().into_iter().rev() {
        if d.globals.contains_key(&unquoted[..i]) {
            split = Some(i);
            break;
        }
    }
    let Some(i) = split else {
        let last = unquoted.rsplit('.').next().unwrap_or(unquoted).to_lowercase();
        let mut near: Vec<&str> = d.globals.keys().filter(|n| n.to_lowercase().contains(&last)).map(|s| s.as_str()).take(5).collect();
        near.sort();
        let hint = if near.is_empty() { String::new() } else { format!(" (similar: {})", near.join(", ")) };
        return Err(Error::Expr(format!("no package-level variable `{unquoted}` in the binary's DWARF{hint}")));
    };
    let (addr, ty) = t.global_addr(&unquoted[..i]).ok_or_else(|| Error::Expr(format!("no variable {}", &unquoted[..i])))?;
    resolve_path(t, expr, &unquoted[..i], addr, ty, &unquoted[i..])
}

/// The map at `fields` (dotted, may be empty) from a variable `var` of type `ty` stored at `addr`,
/// following pointers between fields. Shared by package-level names and debugger frame locals.
pub fn resolve_path(t: &Target, expr: &str, var: &str, addr: u64, ty: TypeId, fields: &str) -> Result<MapRef> {
    let d = &t.bin.dwarf;
    let (mut addr, mut ty) = (addr, ty);
    let mut path = var.to_string();
    for field in fields.split('.').filter(|s| !s.is_empty()) {
        // Follow pointers to the struct that has the field.
        for _ in 0..4 {
            let s = d.strip_typedefs(ty);
            match d.get(s).map(|x| &x.die) {
                Some(Die::Pointer { target: Some(p) }) => {
                    let p = *p;
                    addr = t.mem.u64_at(addr).map_err(|e| Error::Expr(format!("{path}: {e}")))?;
                    if addr == 0 {
                        return Err(Error::Expr(format!("{path} is a nil pointer")));
                    }
                    ty = p;
                }
                _ => break,
            }
        }
        let f = d.field(ty, field).ok_or_else(|| {
            let names: Vec<_> = d.fields(ty).unwrap_or(&[]).iter().map(|f| f.name.clone()).collect();
            Error::Expr(format!("{path} ({}) has no field `{field}` (fields: {})", d.name_of(ty), names.join(", ")))
        })?;
        addr += f.offset;
        ty = f.ty;
        path = format!("{path}.{field}");
    }
    // An interface holding a map (whose type may have been made at run time): the map it holds.
    if let Some((header, mty)) = crate::rtmap::map_in_iface(t, addr, ty) {
        return Ok(MapRef { name: expr.to_string(), addr: header, ty: mty });
    }
    t.map_type(ty).map_err(|e| match e {
        Error::Expr(_) => Error::Expr(format!("{path} is a {}, not a map", d.name_of(ty))),
        e => e,
    })?;
    let header = t.mem.u64_at(addr).map_err(|e| Error::Expr(format!("{path}: {e}")))?;
    Ok(MapRef { name: expr.to_string(), addr: header, ty })
}

/// Runs one parsed subcommand. Returns the exit status: 0, or 1 when `check` found warnings.
pub fn run(t: &Target, cmd: &Cmd, resolver: Option<Resolver<'_>>, out: &mut dyn Write) -> Result<i32> {
    decode::INTERRUPT.store(false, std::sync::atomic::Ordering::Relaxed);
    match cmd {
        Cmd::Show(a) => {
            let r = resolve(t, &a.expr, a.type_name.as_deref(), resolver)?;
            commands::show::show(t, &r, a, out)?;
            Ok(0)
        }
        Cmd::Buckets(a) => {
            let r = resolve(t, &a.expr, a.type_name.as_deref(), resolver)?;
            commands::buckets::buckets(t, &r, a, out)?;
            Ok(0)
        }
        Cmd::Check(a) => {
            let refs = if a.exprs.is_empty() {
                crate::census::from_globals(t)
            } else {
                a.exprs.iter().map(|e| resolve(t, e, a.type_name.as_deref(), resolver)).collect::<Result<Vec<_>>>()?
            };
            Ok(if commands::check::check(t, &refs, a, out)? { 1 } else { 0 })
        }
        Cmd::Maps(a) => {
            commands::maps::maps(t, a, out)?;
            Ok(0)
        }
        Cmd::Holders(a) => {
            let r = resolve(t, &a.expr, a.type_name.as_deref(), resolver)?;
            commands::holders::holders(t, &r, a, out)?;
            Ok(0)
        }
        Cmd::Layout(a) => {
            commands::layout::layout(t, a, out)?;
            Ok(0)
        }
        Cmd::Diff(a) => {
            // Two cores need two targets: only the command line opens those (main.rs).
            commands::diff::diff_files(a, out)?;
            Ok(0)
        }
        Cmd::Report(a) => {
            commands::report::report(t, a, out)?;
            Ok(0)
        }
        Cmd::Top(_) => Err(Error::Usage("top samples a live process from the command line: gomap top --pid PID".into())),
    }
}
