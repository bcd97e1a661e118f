//! `maps`: the census table.

use super::{health, io, summary_json};
use crate::cli::{MapsArgs, SortKey};
use crate::decode;
use crate::error::{Error, Result};
use crate::findings::human;
use crate::target::Target;
use serde_json::{json, Value};
use std::io::Write;

pub fn maps(t: &Target, a: &MapsArgs, out: &mut dyn Write) -> Result<()> {
    let th = a.th.to_core();
    let mut rows = Vec::new();
    for r in crate::census::from_globals(t) {
        if decode::interrupted() {
            return Err(Error::Interrupted);
        }
        match health(t, &r, &th) {
            Ok((m, h, f)) => {
                let waste = f.iter().find(|x| x.kind == "oversized").and_then(|x| x.bytes).unwrap_or(0);
                rows.push((r, m, h, f, waste));
            }
            Err(e) => {
                if !a.json {
                    writeln!(out, "{}: {e}", r.name).map_err(io)?;
                }
            }
        }
    }
    match a.sort {
        SortKey::Bytes => rows.sort_by(|x, y| y.2.bytes.cmp(&x.2.bytes)),
        SortKey::Waste => rows.sort_by(|x, y| y.4.cmp(&x.4).then(y.2.bytes.cmp(&x.2.bytes))),
        SortKey::Len => rows.sort_by(|x, y| y.2.len.cmp(&x.2.len)),
    }
    if a.json {
        let list: Vec<Value> = rows
            .iter()
            .map(|(r, m, h, f, _)| {
                let mut v = summary_json(t, r, m, h, f);
                let worst = f.iter().rev().max_by_key(|x| x.severity).map(|x| x.kind);
                v["worst"] = json!(worst);
                v
            })
            .collect();
        serde_json::to_writer(&mut *out, &list).map_err(|e| Error::Usage(e.to_string()))?;
        writeln!(out).map_err(io)?;
        return Ok(());
    }
    writeln!(out, "{:<40} {:<28} {:<7} {:>9} {:>9} {:>10} {:>6} {:>8} {:>4}  worst", "name", "type", "impl", "len", "slots", "bytes", "fill", "deleted", "grow").map_err(io)?;
    for (r, m, h, f, _) in &rows {
        let worst = f.iter().rev().max_by_key(|x| x.severity).map(|x| format!("{} {}", x.severity.as_str(), x.kind)).unwrap_or_else(|| "-".into());
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
