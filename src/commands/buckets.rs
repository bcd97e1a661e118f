//! `buckets`: the raw picture, every bucket (classic) or table and group (swiss) with its
//! tophash/ctrl bytes and slot states.

use super::{findings_of, header_json, io, stats_line, write_findings_text};
use crate::cli::BucketsArgs;
use crate::decode::{self, classic, swiss, TableInfo, Visitor};
use crate::error::{Error, Result};
use crate::findings::Finding;
use crate::inspect::MapRef;
use crate::layout::Impl;
use crate::target::Target;
use serde_json::{json, Value};
use std::io::Write;

/// Collects the raw picture for `buckets`, streaming JSON rows or building summarised text.
struct BucketDump<'a> {
    json: bool,
    out: Vec<u8>,
    sink: &'a mut dyn Write,
    range: Option<(u64, u64)>,
    rows: u64,
    // Text summarisation: runs of rows with the same state string collapse into one line.
    run: Option<(String, u64, u64, String)>,
    lines: u64,
    max_lines: u64,
    omitted: u64,
    cur_table: Option<usize>,
    table_open: bool,
    io_error: Option<std::io::Error>,
}

impl BucketDump<'_> {
    fn in_range(&self, i: u64) -> bool {
        self.range.map(|(a, b)| i >= a && i <= b).unwrap_or(true)
    }
    fn flush(&mut self) {
        if self.out.len() >= 1 << 16 {
            self.force_flush();
        }
    }
    fn force_flush(&mut self) {
        if let Err(e) = self.sink.write_all(&self.out) {
            self.io_error.get_or_insert(e);
        }
        self.out.clear();
    }
    fn text_row(&mut self, label: String, states: String, detail: String) {
        // Collapse consecutive rows of identical states when no range was asked for.
        if self.range.is_none() {
            if let Some((st, _first, n, _)) = self.run.as_mut() {
                if *st == states {
                    *n += 1;
                    return;
                }
            }
            self.end_run();
            self.run = Some((states, 1, 1, format!("{label}\t{detail}")));
            return;
        }
        self.line(format!("{label} {states} {detail}"));
    }
    fn end_run(&mut self) {
        if let Some((st, _, n, first)) = self.run.take() {
            let (label, detail) = first.split_once('\t').unwrap_or((&first, ""));
            if n == 1 {
                self.line(format!("{label} {st} {detail}"));
            } else {
                self.line(format!("{label} {st} {detail}   (and the next {} rows alike)", n - 1));
            }
        }
    }
    fn line(&mut self, s: String) {
        if self.lines >= self.max_lines {
            self.omitted += 1;
            return;
        }
        self.lines += 1;
        self.out.extend_from_slice(s.as_bytes());
        self.out.push(b'\n');
        self.flush();
    }
    fn sep(&mut self) {
        if self.rows > 0 {
            self.out.push(b',');
        }
        self.rows += 1;
    }
}

fn states(bytes: &[u8; 8], f: fn(u8) -> char) -> String {
    bytes.iter().map(|&b| f(b)).collect()
}

fn bytes_list(out: &mut Vec<u8>, b: &[u8; 8]) {
    out.push(b'[');
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(itoa::Buffer::new().format(*x).as_bytes());
    }
    out.push(b']');
}

impl Visitor for BucketDump<'_> {
    fn wants_buckets(&self) -> bool {
        true
    }
    fn classic_bucket(&mut self, old: bool, index: u64, chain: u32, addr: u64, tophash: &[u8; 8]) {
        if !self.in_range(index) {
            return;
        }
        let st = states(tophash, classic::state_letter);
        if self.json {
            self.sep();
            self.out.extend_from_slice(format!("{{\"array\":\"{}\",\"index\":{index},\"chain\":{chain},\"address\":\"{addr:#x}\",\"tophash\":", if old { "old" } else { "new" }).as_bytes());
            bytes_list(&mut self.out, tophash);
            self.out.extend_from_slice(format!(",\"states\":\"{st}\"}}").as_bytes());
            self.flush();
        } else {
            let th: Vec<String> = tophash.iter().map(|b| format!("{b:02x}")).collect();
            let label = if chain == 0 { format!("{} {index:>7}", if old { "old" } else { "new" }) } else { format!("  overflow {chain:>3}") };
            self.text_row(label, st, format!("{addr:#x} [{}]", th.join(" ")));
        }
    }
    fn swiss_table(&mut self, ti: &TableInfo) {
        if !self.in_range(ti.ordinal as u64) {
            return;
        }
        if self.json {
            if self.table_open {
                self.out.extend_from_slice(b"]}");
            }
            self.sep();
            self.out.extend_from_slice(
                format!(
                    "{{\"table\":{},\"address\":\"{:#x}\",\"dir_indexes\":[{},{}],\"used\":{},\"capacity\":{},\"growth_left\":{},\"local_depth\":{},\"index\":{},\"groups\":[",
                    ti.ordinal, ti.addr, ti.dir_first, ti.dir_first + ti.dir_count - 1, ti.used, ti.capacity, ti.growth_left, ti.local_depth, ti.index
                )
                .as_bytes(),
            );
            self.table_open = true;
            self.cur_table = Some(ti.ordinal);
        } else {
            self.end_run();
            self.line(format!(
                "table {} at {:#x}: directory [{}..{}] localDepth {} used {} capacity {} growthLeft {}",
                ti.ordinal, ti.addr, ti.dir_first, ti.dir_first + ti.dir_count - 1, ti.local_depth, ti.used, ti.capacity, ti.growth_left
            ));
        }
    }
    fn swiss_group(&mut self, table: Option<usize>, group: u64, addr: u64, ctrl: &[u8; 8]) {
        if let Some(tb) = table {
            if !self.in_range(tb as u64) {
                return;
            }
        }
        let st = states(ctrl, swiss::state_letter);
        if self.json {
            if table.is_none() {
                self.sep();
                self.out.extend_from_slice(b"{\"small\":true,");
            } else {
                if group > 0 {
                    self.out.push(b',');
                }
                self.out.push(b'{');
            }
            self.out.extend_from_slice(format!("\"group\":{group},\"address\":\"{addr:#x}\",\"ctrl\":").as_bytes());
            bytes_list(&mut self.out, ctrl);
            self.out.extend_from_slice(format!(",\"states\":\"{st}\"}}").as_bytes());
            self.flush();
        } else {
            let c: Vec<String> = ctrl.iter().map(|b| format!("{b:02x}")).collect();
            let label = if table.is_none() { "small group".to_string() } else { format!("  group {group:>5}") };
            self.text_row(label, st, format!("{addr:#x} [{}]", c.join(" ")));
        }
    }
}

fn parse_range(s: &str) -> Result<(u64, u64)> {
    let bad = || Error::Usage(format!("--range {s}: expected I or I:J with I <= J"));
    let (a, b) = match s.split_once(':') {
        Some((a, b)) => (a.trim().parse().map_err(|_| bad())?, if b.trim().is_empty() { u64::MAX } else { b.trim().parse().map_err(|_| bad())? }),
        None => {
            let a = s.trim().parse().map_err(|_| bad())?;
            (a, a)
        }
    };
    if a > b {
        return Err(bad());
    }
    Ok((a, b))
}

pub fn buckets(t: &Target, r: &MapRef, a: &BucketsArgs, out: &mut dyn Write) -> Result<Vec<Finding>> {
    let m = t.map_type(r.ty)?;
    let len = t.map_len(r.ty, r.addr).map_err(|e| Error::Expr(format!("{}: map header unreadable: {e}", r.name)))?;
    let range = a.range.as_deref().map(parse_range).transpose()?;
    let legend = match m.imp {
        Impl::Classic(_) => json!({"L": "live (tophash >= 5)", "d": "emptyOne (deleted)", "_": "emptyRest (this and all later slots empty)",
                                    "x": "evacuatedX", "y": "evacuatedY", "e": "evacuatedEmpty"}),
        Impl::Swiss(_) => json!({"F": "full (ctrl 0b0hhhhhhh)", "_": "empty (0x80)", "d": "deleted (0xFE tombstone)", "?": "impossible control byte"}),
    };
    let th = a.th.to_core();
    if a.json {
        let mut hdr = header_json(t, r, &m, len);
        hdr.insert("legend".into(), legend);
        let s = serde_json::to_string(&Value::Object(hdr)).unwrap_or_default();
        out.write_all(&s.as_bytes()[..s.len() - 1]).map_err(io)?;
        let key = if matches!(m.imp, Impl::Classic(_)) { "buckets" } else { "tables" };
        out.write_all(format!(",\"{key}\":[").as_bytes()).map_err(io)?;
        let mut d = BucketDump { json: true, out: Vec::with_capacity(1 << 17), sink: out, range, rows: 0, run: None, lines: 0, max_lines: u64::MAX, omitted: 0, cur_table: None, table_open: false, io_error: None };
        let h = decode::walk_map(t, &m, r.addr, &mut d)?;
        if d.table_open {
            d.out.extend_from_slice(b"]}");
        }
        d.force_flush();
        if let Some(e) = d.io_error.take() {
            return Err(io(e));
        }
        drop(d);
        let f = findings_of(&m, &h, &th, None);
        let tail = serde_json::to_string(&json!({"stats": h.stats_json(), "findings": f.iter().map(Finding::to_json).collect::<Vec<_>>()})).unwrap_or_default();
        out.write_all(b"],").map_err(io)?;
        out.write_all(&tail.as_bytes()[1..]).map_err(io)?;
        out.write_all(b"\n").map_err(io)?;
        return Ok(f);
    }
    writeln!(out, "{}  {}  {}  address {:#x}  len {}", r.name, m.name, m.imp.name(), r.addr, len).map_err(io)?;
    let legend_text: Vec<String> = legend.as_object().map(|o| o.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect()).unwrap_or_default();
    writeln!(out, "legend: {}", legend_text.join("  ")).map_err(io)?;
    let mut d = BucketDump { json: false, out: Vec::new(), sink: out, range, rows: 0, run: None, lines: 0, max_lines: if range.is_some() { u64::MAX } else { 200 }, omitted: 0, cur_table: None, table_open: false, io_error: None };
    let h = decode::walk_map(t, &m, r.addr, &mut d)?;
    d.end_run();
    let omitted = d.omitted;
    d.force_flush();
    if let Some(e) = d.io_error.take() {
        return Err(io(e));
    }
    drop(d);
    if omitted > 0 {
        writeln!(out, "... {omitted} more lines summarised away; use --range I:J to see them").map_err(io)?;
    }
    writeln!(out, "{}", stats_line(&h)).map_err(io)?;
    let f = findings_of(&m, &h, &th, None);
    write_findings_text(out, &f).map_err(io)?;
    Ok(f)
}
