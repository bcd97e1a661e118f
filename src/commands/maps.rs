//! `maps`: the census table.

use super::{health, io, summary_json};
use crate::cli::{MapsArgs, SortKey};
use crate::decode;
use crate::error::{Error, Result};
use crate::decode::Health;
use crate::findings::{human, Finding};
use crate::inspect::MapRef;
use crate::layout::MapType;
use crate::target::Target;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;

/// One map of the census with its health: what `maps` prints a row of, and what the views
/// (report, diff, top) are built from.
pub struct Row {
    pub r: MapRef,
    pub m: Arc<MapType>,
    pub h: Health,
    pub f: Vec<Finding>,
    /// Bytes a rebuild would save (the `oversized` finding's bytes), 0 when none.
    pub waste: u64,
}

/// Every map the census finds, with its health, sorted as `a.sort` asks. Maps whose walk failed are
/// returned as (name, error) in `failed`.
pub fn collect(t: &Target, a: &MapsArgs, failed: &mut Vec<(String, Error)>) -> Result<Vec<Row>> {
    let th = a.th.to_core();
    let mut rows = Vec::new();
    for r in crate::census::from_globals(t) {
        if decode::interrupted() {
            return Err(Error::Interrupted);
        }
        match health(t, &r, &th) {
            Ok((m, h, f)) => {
                let waste = f.iter().find(|x| x.kind == "oversized").and_then(|x| x.bytes).unwrap_or(0);
                rows.push(Row { r, m, h, f, waste });
            }
            Err(e) => failed.push((r.name.clone(), e)),
        }
    }
    match a.sort {
        SortKey::Bytes => rows.sort_by(|x, y| y.h.bytes.cmp(&x.h.bytes)),
        SortKey::Waste => rows.sort_by(|x, y| y.waste.cmp(&x.waste).then(y.h.bytes.cmp(&x.h.bytes))),
        SortKey::Len => rows.sort_by(|x, y| y.h.len.cmp(&x.h.len)),
    }
    Ok(rows)
}

/// A census row as JSON (CONTRACT.md: the map object plus `worst`).
pub fn row_json(t: &Target, row: &Row) -> Value {
    let mut v = summary_json(t, &row.r, &row.m, &row.h, &row.f);
    let worst = row.f.iter().reduce(|a, b| if b.severity > a.severity { b } else { a }).map(|x| x.kind);
    v["worst"] = json!(worst);
    v
}

pub fn maps(t: &Target, a: &MapsArgs, out: &mut dyn Write) -> Result<()> {
    let mut failed = Vec::new();
    let rows = collect(t, a, &mut failed)?;
    if a.json {
        let list: Vec<Value> = rows.iter().map(|row| row_json(t, row)).collect();
        serde_json::to_writer(&mut *out, &list).map_err(|e| Error::Usage(e.to_string()))?;
        writeln!(out).map_err(io)?;
        return Ok(());
    }
    for (name, e) in &failed {
        writeln!(out, "{name}: {e}").map_err(io)?;
    }
    writeln!(out, "{:<40} {:<28} {:<7} {:>9} {:>9} {:>10} {:>6} {:>8} {:>4}  worst", "name", "type", "impl", "len", "slots", "bytes", "fill", "deleted", "grow").map_err(io)?;
    for Row { r, m, h, f, .. } in &rows {
        let worst = f.iter().reduce(|a, b| if b.severity > a.severity { b } else { a }).map(|x| format!("{} {}", x.severity.as_str(), x.kind)).unwrap_or_else(|| "-".into());
        let growing = h.classic.as_ref().map(|c| c.oldbuckets != 0).unwrap_or(false);
        writeln!(
            out,
            "{:<40} {:<28} {:<7} {:>9} {:>9} {:>10} {:>6.3} {:>8} {:>4}  {}",
            r.name, m.name, m.imp.name(), h.len, h.slots, human(h.bytes), h.fill(), h.deleted, if growing { "yes" } else { "-" }, worst
        )
        .map_err(io)?;
    }
    if rows.is_empty() {
        writeln!(out, "no non-nil maps reachable from package-level variables").map_err(io)?;
    }
    Ok(())
}
