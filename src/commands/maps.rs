//! `maps`: the census table.

use super::{health, io, summary_json};
use crate::census::{self, Root, RootKind};
use crate::cli::{MapsArgs, RootsMode, SortKey};
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
    /// Where the map's path starts (None in the `--roots globals` fast mode).
    pub root: Option<Root>,
}

/// The census behind the rows: what it walked and what it could not do.
#[derive(Default)]
pub struct Summary {
    pub goroutines: usize,
    pub objects: u64,
    pub heap_in_use: Option<u64>,
    /// Every map found and their bytes, before --min-bytes and --top.
    pub maps: usize,
    pub bytes: u64,
    pub notes: Vec<String>,
}

/// Every map the census finds, with its health, sorted, filtered and cut as `a` asks. Maps whose
/// walk failed are returned as (name, error) in `failed`.
pub fn collect(t: &Target, a: &MapsArgs, failed: &mut Vec<(String, Error)>) -> Result<Vec<Row>> {
    collect_with(t, a, failed, &mut Summary::default())
}

pub fn collect_with(t: &Target, a: &MapsArgs, failed: &mut Vec<(String, Error)>, sum: &mut Summary) -> Result<Vec<Row>> {
    let th = a.th.to_core();
    let found: Vec<(MapRef, Option<Root>)> = match a.roots {
        RootsMode::Globals => census::from_globals(t).into_iter().map(|r| (r, None)).collect(),
        RootsMode::All => {
            let c = census::census(t, &census::Options { goroutines: true, holders_of: None })?;
            sum.goroutines = c.goroutines.len();
            sum.objects = c.objects;
            sum.notes = c.notes;
            sum.heap_in_use = c.heap_in_use;
            c.maps.into_iter().map(|m| (m.r, Some(m.root))).collect()
        }
    };
    let mut rows = Vec::new();
    let heap = heap_ranges(t);
    // In address order, each page is faulted in about once between two releases below.
    let mut found = found;
    found.sort_by_key(|(r, _)| r.addr);
    for (i, (r, root)) in found.into_iter().enumerate() {
        if decode::interrupted() {
            return Err(Error::Interrupted);
        }
        // Small maps' headers and groups are scattered over the heap, and every page fault on a core
        // maps a whole window around it: hand the heap's pages back now and then, so that resident
        // memory stays bounded by a batch of maps rather than the whole heap.
        if i % 8192 == 8191 {
            for &(lo, hi) in &heap {
                t.mem.release(lo, (hi - lo) as usize);
            }
        }
        match health(t, &r, &th) {
            Ok((m, h, f)) => {
                sum.maps += 1;
                sum.bytes += h.bytes;
                if h.bytes < a.min_bytes {
                    continue;
                }
                let waste = f.iter().find(|x| x.kind == "oversized").and_then(|x| x.bytes).unwrap_or(0);
                rows.push(Row { r, m, h, f, waste, root });
            }
            Err(e) => failed.push((r.name.clone(), e)),
        }
    }
    match a.sort {
        SortKey::Bytes => rows.sort_by(|x, y| y.h.bytes.cmp(&x.h.bytes)),
        SortKey::Waste => rows.sort_by(|x, y| y.waste.cmp(&x.waste).then(y.h.bytes.cmp(&x.h.bytes))),
        SortKey::Len => rows.sort_by(|x, y| y.h.len.cmp(&x.h.len)),
    }
    if a.top != 0 {
        rows.truncate(a.top);
    }
    Ok(rows)
}

/// The heap's in-use spans merged into contiguous ranges (empty without a heap index).
fn heap_ranges(t: &Target) -> Vec<(u64, u64)> {
    let Ok(h) = t.heap() else { return Vec::new() };
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in h.spans() {
        let (lo, hi) = (s.base, s.base.saturating_add(s.npages.saturating_mul(h.page_size())));
        match out.last_mut() {
            Some(last) if last.1 == lo => last.1 = hi,
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// CONTRACT.md's `root` object.
pub fn root_json(root: &Root) -> Value {
    match &root.kind {
        RootKind::Global => json!({"kind": "global", "variable": root.variable, "function": null, "goroutine": null}),
        RootKind::Goroutine { goid, function } => json!({"kind": "goroutine", "variable": root.variable, "function": function, "goroutine": goid}),
        RootKind::Other => json!({"kind": "other", "variable": null, "function": null, "goroutine": null}),
    }
}

/// The short form of a root for the text table: `global`, `g18`.
pub fn root_text(root: Option<&Root>) -> String {
    match root.map(|r| &r.kind) {
        None | Some(RootKind::Global) => "global".into(),
        Some(RootKind::Goroutine { goid, .. }) => format!("g{goid}"),
        Some(RootKind::Other) => "other".into(),
    }
}

/// `s` cut to `w` characters, the cut marked with `…`, so a long type never shifts the columns.
pub fn fit(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        return s.to_string();
    }
    let mut out: String = s.chars().take(w.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The most severe finding, the first of them on ties.
pub fn worst(f: &[Finding]) -> Option<&Finding> {
    f.iter().reduce(|a, b| if b.severity > a.severity { b } else { a })
}

/// A census row as JSON (CONTRACT.md: the map object plus `worst`).
pub fn row_json(t: &Target, row: &Row) -> Value {
    let mut v = summary_json(t, &row.r, &row.m, &row.h, &row.f);
    let worst = worst(&row.f).map(|x| x.kind);
    v["worst"] = json!(worst);
    if let Some(root) = &row.root {
        v["root"] = root_json(root);
    }
    v
}

const TYPE_WIDTH: usize = 28;
const NAME_WIDTH: usize = 72;

pub fn maps(t: &Target, a: &MapsArgs, out: &mut dyn Write) -> Result<()> {
    let mut failed = Vec::new();
    let mut sum = Summary::default();
    let rows = collect_with(t, a, &mut failed, &mut sum)?;
    if a.json {
        // One row at a time: a census of 200k maps is 100 MB of JSON, never held whole.
        let mut w = std::io::BufWriter::with_capacity(1 << 16, &mut *out);
        w.write_all(b"[").map_err(io)?;
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                w.write_all(b",").map_err(io)?;
            }
            serde_json::to_writer(&mut w, &row_json(t, row)).map_err(|e| Error::Usage(e.to_string()))?;
        }
        w.write_all(b"]\n").map_err(io)?;
        w.flush().map_err(io)?;
        return Ok(());
    }
    for (name, e) in &failed {
        writeln!(out, "{name}: {e}").map_err(io)?;
    }
    // The name column is as wide as the longest name up to a cap; a longer name gets a line of its
    // own, so the columns after it stay aligned.
    let nw = rows.iter().map(|r| r.r.name.chars().count()).filter(|&n| n <= NAME_WIDTH).max().unwrap_or(4).max(4);
    writeln!(out, "{:<nw$} {:<7} {:<TYPE_WIDTH$} {:<7} {:>9} {:>9} {:>10} {:>6} {:>8} {:>4}  worst", "name", "root", "type", "impl", "len", "slots", "bytes", "fill", "deleted", "grow").map_err(io)?;
    for Row { r, m, h, f, root, .. } in &rows {
        let worst = worst(f).map(|x| format!("{} {}", x.severity.as_str(), x.kind)).unwrap_or_else(|| "-".into());
        let growing = h.classic.as_ref().map(|c| c.oldbuckets != 0).unwrap_or(false);
        let name = if r.name.chars().count() > nw {
            writeln!(out, "{}", r.name).map_err(io)?;
            ""
        } else {
            r.name.as_str()
        };
        writeln!(
            out,
            "{:<nw$} {:<7} {:<TYPE_WIDTH$} {:<7} {:>9} {:>9} {:>10} {:>6.3} {:>8} {:>4}  {}",
            name, root_text(root.as_ref()), fit(&m.name, TYPE_WIDTH), m.imp.name(), h.len, h.slots, human(h.bytes), h.fill(), h.deleted, if growing { "yes" } else { "-" }, worst
        )
        .map_err(io)?;
    }
    if rows.is_empty() {
        writeln!(out, "no non-nil maps found").map_err(io)?;
    }
    let mut line = format!("{} maps, {} in their objects", sum.maps, human(sum.bytes));
    if let Some(h) = sum.heap_in_use.filter(|&h| h > 0) {
        line += &format!(" ({:.1}% of the {} heap in use)", 100.0 * sum.bytes as f64 / h as f64, human(h));
    }
    if a.roots == RootsMode::All {
        line += &format!("; {} goroutines and {} heap objects walked", sum.goroutines, sum.objects);
    }
    if rows.len() != sum.maps {
        line += &format!("; {} shown", rows.len());
    }
    writeln!(out, "{line}").map_err(io)?;
    for n in &sum.notes {
        writeln!(out, "note: {n}").map_err(io)?;
    }
    Ok(())
}
