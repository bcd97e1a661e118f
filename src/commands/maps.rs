//! `maps`: the census table.

use super::{health, io, summary_json_with};
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
    let mut rows = Vec::with_capacity(found.len());
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
            Ok((m, mut h, f)) => {
                // What only the accounting read (done by now): 200k rows would keep it for nothing.
                if let Some(c) = &mut h.classic {
                    c.overflow_list = Vec::new();
                }
                if let Some(s) = &mut h.swiss {
                    s.table_list = Vec::new();
                }
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
    // Sorted through a permutation: a row is ~700 bytes, and a stable sort of 200k of them moved
    // them all and took a scratch buffer of half their size (a quarter of the census' peak memory).
    let mut order: Vec<usize> = (0..rows.len()).collect();
    match a.sort {
        SortKey::Bytes => order.sort_by(|&x, &y| rows[y].h.bytes.cmp(&rows[x].h.bytes)),
        SortKey::Waste => order.sort_by(|&x, &y| rows[y].waste.cmp(&rows[x].waste).then(rows[y].h.bytes.cmp(&rows[x].h.bytes))),
        SortKey::Len => order.sort_by(|&x, &y| rows[y].h.len.cmp(&rows[x].h.len)),
    }
    permute(&mut rows, order);
    if a.top != 0 {
        rows.truncate(a.top);
    }
    Ok(rows)
}

/// Reorders `v` in place so that the new `v[i]` is the old `v[order[i]]` (`order` a permutation),
/// by following its cycles with swaps.
fn permute<T>(v: &mut [T], mut order: Vec<usize>) {
    const DONE: usize = usize::MAX;
    for i in 0..v.len().min(order.len()) {
        let mut j = i;
        // Each step places one element and marks it: at most n steps over all cycles.
        while order[j] != DONE {
            let k = order[j];
            order[j] = DONE;
            if k == i || k >= v.len() {
                break;
            }
            v.swap(j, k);
            j = k;
        }
    }
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
        RootKind::Special { function } => json!({"kind": "other", "variable": root.variable, "function": function, "goroutine": null}),
        RootKind::Other => json!({"kind": "other", "variable": null, "function": null, "goroutine": null}),
    }
}

/// The short form of a root for the text table: `global`, `g18`.
pub fn root_text(root: Option<&Root>) -> String {
    match root.map(|r| &r.kind) {
        None | Some(RootKind::Global) => "global".into(),
        Some(RootKind::Goroutine { goid, .. }) => format!("g{goid}"),
        Some(RootKind::Special { .. }) => "other".into(),
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
    row_json_with(t, row, row.h.stats_json())
}

fn row_json_with(t: &Target, row: &Row, stats: Value) -> Value {
    let mut v = summary_json_with(t, &row.r, &row.m, &row.h, &row.f, stats);
    let worst = worst(&row.f).map(|x| x.kind);
    v["worst"] = json!(worst);
    if let Some(root) = &row.root {
        v["root"] = root_json(root);
    }
    v
}

/// Appends `row_json(t, row)` to `out` compactly, byte for byte as `serde_json::to_writer` would,
/// with the stats object written field by field instead of built (it was a third of the census' time).
fn write_row(out: &mut Vec<u8>, t: &Target, row: &Row) -> serde_json::Result<()> {
    let v = row_json_with(t, row, Value::Null);
    let Value::Object(o) = v else { return serde_json::to_writer(out, &v) };
    out.push(b'{');
    for (i, (k, x)) in o.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_key(out, k)?;
        if k == "stats" {
            out.push(b'{');
            let mut n = 0usize;
            let mut res = Ok(());
            row.h.stats_fields(&mut |k, x| {
                if res.is_ok() {
                    if n > 0 {
                        out.push(b',');
                    }
                    n += 1;
                    res = json_key(out, k).and_then(|_| serde_json::to_writer(&mut *out, &x));
                }
            });
            res?;
            out.push(b'}');
        } else {
            serde_json::to_writer(&mut *out, x)?;
        }
    }
    out.push(b'}');
    Ok(())
}

/// `"k":` as serde_json writes an object key (identifiers need no escaping).
fn json_key(out: &mut Vec<u8>, k: &str) -> serde_json::Result<()> {
    if k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        out.push(b'"');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\":");
    } else {
        serde_json::to_writer(&mut *out, k)?;
        out.push(b':');
    }
    Ok(())
}

const TYPE_WIDTH: usize = 28;
const NAME_WIDTH: usize = 72;

pub fn maps(t: &Target, a: &MapsArgs, out: &mut dyn Write) -> Result<()> {
    let mut failed = Vec::new();
    let mut sum = Summary::default();
    let rows = collect_with(t, a, &mut failed, &mut sum)?;
    if a.json {
        // One row at a time: a census of 200k maps is 100 MB of JSON, never held whole.
        let mut buf = Vec::with_capacity(1 << 17);
        buf.push(b'[');
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            write_row(&mut buf, t, row).map_err(|e| Error::Usage(e.to_string()))?;
            if buf.len() >= 1 << 16 {
                out.write_all(&buf).map_err(io)?;
                buf.clear();
            }
        }
        buf.extend_from_slice(b"]\n");
        out.write_all(&buf).map_err(io)?;
        out.flush().map_err(io)?;
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

#[cfg(test)]
mod tests {
    #[test]
    fn permute_matches_a_sorted_copy() {
        let v: Vec<u64> = (0..500u64).map(|i| (i * 7919) % 101).collect();
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&x, &y| v[y].cmp(&v[x]));
        let mut want = v.clone();
        want.sort_by(|x, y| y.cmp(x));
        let mut got = v.clone();
        super::permute(&mut got, order);
        assert_eq!(got, want);
        let mut one = vec![5u8];
        super::permute(&mut one, vec![0]);
        assert_eq!(one, vec![5]);
    }
}
