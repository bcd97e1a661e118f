//! `holders`: every path that keeps one map alive, each named from its root as in `maps`.

use super::io;
use super::maps::{root_json, root_text};
use crate::census;
use crate::cli::HoldersArgs;
use crate::error::{Error, Result};
use crate::inspect::MapRef;
use crate::target::Target;
use serde_json::json;
use std::io::Write;

pub fn holders(t: &Target, r: &MapRef, a: &HoldersArgs, out: &mut dyn Write) -> Result<()> {
    let m = t.map_type(r.ty)?;
    if r.addr == 0 {
        return Err(Error::Expr(format!("{} is a nil map: nothing holds it", r.name)));
    }
    let c = census::census(t, &census::Options { goroutines: true, holders_of: Some(r.addr) })?;
    let mut paths = c.holders;
    paths.dedup_by(|x, y| x.0 == y.0);
    let truncated = paths.len() > a.limit;
    paths.truncate(a.limit);
    if a.json {
        let list: Vec<_> = paths.iter().map(|(name, root)| json!({"name": name, "root": root_json(root)})).collect();
        let v = json!({"address": format!("{:#x}", r.addr), "type": m.name, "holders": list, "truncated": truncated, "notes": c.notes});
        serde_json::to_writer(&mut *out, &v).map_err(|e| Error::Usage(e.to_string()))?;
        writeln!(out).map_err(io)?;
        return Ok(());
    }
    writeln!(out, "holders of {:#x} ({}): {} path{}", r.addr, m.name, paths.len(), if paths.len() == 1 { "" } else { "s" }).map_err(io)?;
    for (name, root) in &paths {
        writeln!(out, "  {:<7} {name}", root_text(Some(root))).map_err(io)?;
    }
    if truncated {
        writeln!(out, "  ... more (--limit {})", a.limit).map_err(io)?;
    }
    if paths.is_empty() {
        writeln!(out, "  none found: no root reaches it through typed references (it may be garbage, or held through memory the walk cannot type)").map_err(io)?;
    }
    for n in &c.notes {
        writeln!(out, "note: {n}").map_err(io)?;
    }
    Ok(())
}
