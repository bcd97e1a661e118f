//! The facade every front end calls: resolve an expression to a map, run a subcommand, write the
//! report. Output is streamed to a writer, so memory stays bounded by what one entry needs.

use crate::binary::{Die, TypeId};
use crate::cli::{BucketsArgs, CheckArgs, Cmd, LayoutArgs, MapsArgs, ShowArgs, SortKey};
use crate::decode::{self, classic, swiss, Health, TableInfo, Visitor};
use crate::error::{Error, Result};
use crate::findings::{self, human, Finding, Severity, Thresholds};
use crate::layout::{Impl, MapType};
use crate::memory::MemoryExt;
use crate::target::Target;
use crate::value::{hex, Plan, Renderer, Style, MAX_ITEMS};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;

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
    t.map_type(ty).map_err(|e| match e {
        Error::Expr(_) => Error::Expr(format!("{path} is a {}, not a map", d.name_of(ty))),
        e => e,
    })?;
    let header = t.mem.u64_at(addr).map_err(|e| Error::Expr(format!("{path}: {e}")))?;
    Ok(MapRef { name: expr.to_string(), addr: header, ty })
}

/// Every non-nil map reachable from package-level variables, through struct fields and pointers.
pub fn census(t: &Target) -> Vec<MapRef> {
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

/// Streams JSON or text entries into a buffer, flushing to the sink as it fills.
struct EntryWriter<'a, 'r> {
    r: &'a Renderer<'r>,
    out: Vec<u8>,
    sink: Option<&'a mut dyn Write>,
    key: Arc<Plan>,
    elem: Arc<Plan>,
    limit: u64,
    n: u64,
    more: bool,
    io_error: Option<std::io::Error>,
}

impl<'a, 'r> EntryWriter<'a, 'r> {
    /// The rendering plans of the key and element types are looked up once here, not per entry.
    fn new(r: &'a Renderer<'r>, out: Vec<u8>, sink: Option<&'a mut dyn Write>, key: TypeId, elem: TypeId, limit: u64) -> Self {
        let d = &r.t.bin.dwarf;
        let (key, elem) = (r.t.plans.get(d, key), r.t.plans.get(d, elem));
        EntryWriter { r, out, sink, key, elem, limit, n: 0, more: false, io_error: None }
    }

    fn flush(&mut self) {
        if let Some(s) = self.sink.as_mut() {
            if !self.out.is_empty() {
                if let Err(e) = s.write_all(&self.out) {
                    self.io_error.get_or_insert(e);
                }
                self.out.clear();
            }
        }
    }
}

impl Visitor for EntryWriter<'_, '_> {
    fn wants_entries(&self) -> bool {
        true
    }
    fn prefetch(&mut self, k: &[u8], e: &[u8]) {
        self.r.prefetch(&self.key, k);
        self.r.prefetch(&self.elem, e);
    }
    fn entry(&mut self, k: &[u8], e: &[u8]) -> bool {
        if self.limit != 0 && self.n >= self.limit {
            self.more = true;
            return false;
        }
        if self.io_error.is_some() {
            return false;
        }
        match self.r.style {
            Style::Json => {
                if self.n > 0 {
                    self.out.push(b',');
                }
                self.out.extend_from_slice(b"{\"key\":");
                self.r.value_with(&mut self.out, &self.key, k);
                self.out.extend_from_slice(b",\"value\":");
                self.r.value_with(&mut self.out, &self.elem, e);
                self.out.push(b'}');
            }
            Style::Text => {
                self.out.extend_from_slice(b"  ");
                self.r.value_with(&mut self.out, &self.key, k);
                self.out.extend_from_slice(b": ");
                self.r.value_with(&mut self.out, &self.elem, e);
                self.out.push(b'\n');
            }
        }
        self.n += 1;
        if self.out.len() >= 1 << 16 {
            self.flush();
        }
        true
    }
}

/// Nested map expansion for `--depth`: {"address", "len", "entries": [...]} in place of the value.
pub fn nested_entries(r: &Renderer<'_>, id: TypeId, addr: u64, depth: u32, out: &mut Vec<u8>) -> Result<()> {
    let t = r.t;
    let m = t.map_type(id)?;
    let inner = Renderer::new(t, r.style, r.map_depth.saturating_sub(depth));
    let mut w = EntryWriter::new(&inner, Vec::new(), None, m.key, m.elem, MAX_ITEMS);
    let h = decode::walk(t, &m, addr, &mut w)?;
    if r.style == Style::Json {
        out.extend_from_slice(b"{\"address\":");
        hex(out, addr, true);
        out.extend_from_slice(format!(",\"len\":{},\"entries\":[", h.len).as_bytes());
        out.extend_from_slice(&w.out);
        out.extend_from_slice(b"]}");
    } else {
        out.extend_from_slice(format!("map[len={}]{{", h.len).as_bytes());
        let text = String::from_utf8_lossy(&w.out).trim_end().replace("\n  ", ", ");
        out.extend_from_slice(text.trim_start().as_bytes());
        out.push(b'}');
    }
    Ok(())
}

fn header_json(t: &Target, r: &MapRef, m: &MapType, len: u64) -> serde_json::Map<String, Value> {
    let mut o = serde_json::Map::new();
    o.insert("name".into(), json!(r.name));
    o.insert("type".into(), json!(m.name));
    o.insert("address".into(), json!(format!("{:#x}", r.addr)));
    o.insert("impl".into(), json!(m.imp.name()));
    o.insert("go_version".into(), json!(t.bin.build.version));
    o.insert("len".into(), json!(len));
    o
}

fn findings_of(m: &MapType, h: &Health, th: &Thresholds, r: Option<&Renderer<'_>>) -> Vec<Finding> {
    let (errs, first) = match r {
        Some(r) => (r.errors.get(), r.first_error.borrow().clone()),
        None => (0, None),
    };
    findings::analyze(m, h, th, errs, first.as_deref())
}

fn stats_line(h: &Health) -> String {
    let mut s = format!(
        "slots {} live {} deleted {} empty {} fill {:.3} bytes {}",
        h.slots, h.live, h.deleted, h.empty, h.fill(), human(h.bytes)
    );
    if let Some(c) = &h.classic {
        s += &format!("\nB {} buckets {} overflow {} (noverflow {}) longest chain {} flags {:#x}", c.b, c.buckets, c.overflow_buckets, c.noverflow, c.longest_chain, c.flags);
        if c.oldbuckets != 0 {
            s += &format!("\ngrowing: oldbuckets {:#x} ({} buckets, {} evacuated, nevacuate {}){}", c.oldbuckets, c.old_buckets, c.evacuated_old, c.nevacuate, if c.same_size_grow { " same-size" } else { "" });
        }
    }
    if let Some(w) = &h.swiss {
        if w.small {
            s += "\nsmall map: one group, no table";
        } else {
            s += &format!("\ndirectory {} entries (global depth {}) tables {} groups {} capacity {} growthLeft {}", w.dir_len, w.global_depth, w.tables, w.groups, w.capacity, w.growth_left);
        }
    }
    s
}

fn write_findings_text(out: &mut dyn Write, f: &[Finding]) -> std::io::Result<()> {
    if f.is_empty() {
        writeln!(out, "findings: none")?;
    } else {
        writeln!(out, "findings:")?;
        for x in f {
            writeln!(out, "  {:<7} {:<10} {}", x.severity.as_str(), x.kind, x.message)?;
        }
    }
    Ok(())
}

fn io(e: std::io::Error) -> Error {
    Error::Io { path: "output".into(), source: e }
}

/// `show` prints the header's len before the walk reads the header again: on a live process the two
/// reads can disagree, and the entries then belong to a different len than the one printed.
fn len_changed(h: &mut Health, printed: u64) {
    if h.len != printed {
        h.corrupt(format!("the header's count changed from {printed} to {} while the map was read", h.len));
    }
}

pub fn show(t: &Target, r: &MapRef, a: &ShowArgs, out: &mut dyn Write) -> Result<Vec<Finding>> {
    let m = t.map_type(r.ty)?;
    let len = t.map_len(r.ty, r.addr).map_err(|e| Error::Expr(format!("{}: map header unreadable: {e}", r.name)))?;
    let th = a.th.to_core();
    if a.json {
        let style = Style::Json;
        let rend = Renderer::new(t, style, a.depth);
        let hdr = serde_json::to_string(&Value::Object(header_json(t, r, &m, len))).unwrap_or_default();
        out.write_all(&hdr.as_bytes()[..hdr.len() - 1]).map_err(io)?;
        out.write_all(b",\"entries\":[").map_err(io)?;
        let mut w = EntryWriter::new(&rend, Vec::with_capacity(1 << 17), Some(out), m.key, m.elem, a.limit);
        let mut h = decode::walk(t, &m, r.addr, &mut w)?;
        len_changed(&mut h, len);
        w.flush();
        let (more, io_err) = (w.more, w.io_error.take());
        drop(w);
        if let Some(e) = io_err {
            return Err(io(e));
        }
        let f = findings_of(&m, &h, &th, Some(&rend));
        let tail = json!({"truncated": more, "stats": h.stats_json(), "findings": f.iter().map(Finding::to_json).collect::<Vec<_>>()});
        let tail = serde_json::to_string(&tail).unwrap_or_default();
        out.write_all(b"],").map_err(io)?;
        out.write_all(&tail.as_bytes()[1..]).map_err(io)?;
        out.write_all(b"\n").map_err(io)?;
        return Ok(f);
    }
    let rend = Renderer::new(t, Style::Text, a.depth);
    let mut w = EntryWriter::new(&rend, Vec::new(), None, m.key, m.elem, a.limit);
    let mut h = decode::walk(t, &m, r.addr, &mut w)?;
    len_changed(&mut h, len);
    let f = findings_of(&m, &h, &th, Some(&rend));
    let hdr = match &m.imp {
        Impl::Classic(_) => format!("classic ({})", m.header_type),
        Impl::Swiss(s) => format!("swiss ({}{})", m.header_type, if s.split { ", split groups" } else { "" }),
    };
    writeln!(out, "{}  {}  {}  {}", r.name, m.name, hdr, t.bin.build.raw).map_err(io)?;
    writeln!(out, "address {:#x}  len {}", r.addr, len).map_err(io)?;
    writeln!(out, "{}", stats_line(&h)).map_err(io)?;
    writeln!(out, "entries ({} shown):", w.n).map_err(io)?;
    out.write_all(&w.out).map_err(io)?;
    if w.more {
        writeln!(out, "  ... ({} more; --limit 0 shows all)", h.live.saturating_sub(w.n)).map_err(io)?;
    }
    write_findings_text(out, &f).map_err(io)?;
    Ok(f)
}

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
        let h = decode::walk(t, &m, r.addr, &mut d)?;
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
    let h = decode::walk(t, &m, r.addr, &mut d)?;
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

/// Health of one map without its entries (check, maps).
pub fn health(t: &Target, r: &MapRef, th: &Thresholds) -> Result<(Arc<MapType>, Health, Vec<Finding>)> {
    let m = t.map_type(r.ty)?;
    let h = decode::walk(t, &m, r.addr, &mut decode::NoVisit)?;
    let f = findings_of(&m, &h, th, None);
    Ok((m, h, f))
}

fn summary_json(t: &Target, r: &MapRef, m: &MapType, h: &Health, f: &[Finding]) -> Value {
    let mut o = header_json(t, r, m, h.len);
    o.insert("stats".into(), h.stats_json());
    o.insert("findings".into(), Value::Array(f.iter().map(Finding::to_json).collect()));
    Value::Object(o)
}

pub fn check(t: &Target, refs: &[MapRef], a: &CheckArgs, out: &mut dyn Write) -> Result<bool> {
    let th = a.th.to_core();
    let mut bad = false;
    let mut list = Vec::new();
    for r in refs {
        let (m, h, f) = health(t, r, &th)?;
        bad |= f.iter().any(|x| x.severity >= Severity::Warning);
        if a.json {
            list.push(summary_json(t, r, &m, &h, &f));
        } else {
            let worst = f.iter().map(|x| x.severity).max();
            writeln!(out, "{} ({}, {}, len {}): {}", r.name, m.name, m.imp.name(), h.len, worst.map(|s| s.as_str()).unwrap_or("ok")).map_err(io)?;
            for x in &f {
                writeln!(out, "  {:<7} {:<10} {}", x.severity.as_str(), x.kind, x.message).map_err(io)?;
            }
        }
        if decode::interrupted() {
            return Err(Error::Interrupted);
        }
    }
    if a.json {
        serde_json::to_writer(&mut *out, &list).map_err(|e| Error::Usage(e.to_string()))?;
        writeln!(out).map_err(io)?;
    } else if refs.is_empty() {
        writeln!(out, "no maps found").map_err(io)?;
    }
    Ok(bad)
}

pub fn maps(t: &Target, a: &MapsArgs, out: &mut dyn Write) -> Result<()> {
    let th = a.th.to_core();
    let mut rows = Vec::new();
    for r in census(t) {
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

pub fn layout(t: &Target, a: &LayoutArgs, out: &mut dyn Write) -> Result<()> {
    let d = &t.bin.dwarf;
    let mut types: Vec<(String, TypeId)> = d
        .types
        .iter()
        .filter(|(_, ti)| ti.go_key.is_some() && ti.name.starts_with("map["))
        .map(|(id, ti)| (ti.name.clone(), *id))
        .collect();
    types.sort();
    types.dedup_by(|a, b| a.0 == b.0);
    let mut per_type = Vec::new();
    let mut first_err = None;
    for (name, id) in &types {
        match t.map_type(*id) {
            Ok(m) => per_type.push(layout_json(&m)),
            Err(e) => {
                first_err.get_or_insert(format!("{name}: {e}"));
            }
        }
    }
    let chosen = per_type.first().map(|v| v["impl"].clone()).unwrap_or(json!(null));
    let why = match chosen.as_str() {
        Some("classic") => "map headers (hash<K,V>) have a `buckets` field: classic runtime.hmap layout",
        Some("swiss") => "map headers (map<K,V>) have `dirPtr`/`dirLen` fields: swiss-table layout (internal/runtime/maps)",
        _ => "no map types in this binary's DWARF",
    };
    let v = json!({
        "binary": t.bin.path.display().to_string(),
        "go_version": t.bin.build.version,
        "build": t.bin.build.raw,
        "experiments": t.bin.build.experiments,
        "pie": t.bin.image.pie,
        "load_bias": format!("{:#x}", t.bias),
        "memory": t.mem.describe(),
        "impl": chosen,
        "why": why,
        "types_base": t.types_base().map(|b| format!("{b:#x}")),
        "map_types": per_type,
        "errors": first_err,
    });
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &v).map_err(|e| Error::Usage(e.to_string()))?;
        writeln!(out).map_err(io)?;
        return Ok(());
    }
    writeln!(out, "binary      {}", t.bin.path.display()).map_err(io)?;
    writeln!(out, "go          {} (build string `{}`, experiments: {})", t.bin.build.version, t.bin.build.raw, if t.bin.build.experiments.is_empty() { "none".into() } else { t.bin.build.experiments.join(",") }).map_err(io)?;
    writeln!(out, "memory      {} (load bias {:#x}{})", t.mem.describe(), t.bias, if t.bin.image.pie { ", PIE" } else { "" }).map_err(io)?;
    writeln!(out, "impl        {} — {}", chosen.as_str().unwrap_or("none"), why).map_err(io)?;
    if let Some(tb) = t.types_base() {
        writeln!(out, "types base  {tb:#x} (runtime type descriptors; interface values resolve through it)").map_err(io)?;
    }
    writeln!(out, "map types   {}", per_type.len()).map_err(io)?;
    for v in &per_type {
        writeln!(out, "  {}", serde_json::to_string(v).unwrap_or_default()).map_err(io)?;
    }
    if let Some(e) = first_err {
        writeln!(out, "note: {e}").map_err(io)?;
    }
    Ok(())
}

fn layout_json(m: &MapType) -> Value {
    let o = |x: crate::layout::Off| json!([x.offset, x.size]);
    let slots = |s: &crate::layout::Slots| {
        json!({"key_base": s.key_base, "key_stride": s.key_stride, "elem_base": s.elem_base, "elem_stride": s.elem_stride,
               "key_indirect": s.key_indirect, "elem_indirect": s.elem_indirect})
    };
    match &m.imp {
        Impl::Classic(c) => json!({
            "type": m.name, "impl": "classic", "header": m.header_type, "header_size": c.header_size,
            "fields": {"count": o(c.count), "flags": o(c.flags), "B": o(c.b), "noverflow": o(c.noverflow), "buckets": o(c.buckets),
                       "oldbuckets": o(c.oldbuckets), "nevacuate": o(c.nevacuate)},
            "bucket": c.bucket_type, "bucket_size": c.bucket_size, "tophash": c.tophash, "overflow": o(c.overflow), "slots": slots(&c.slots),
            "key_size": m.key_size, "elem_size": m.elem_size,
        }),
        Impl::Swiss(s) => json!({
            "type": m.name, "impl": "swiss", "header": m.header_type, "header_size": s.header_size,
            "fields": {"used": o(s.used), "dirPtr": o(s.dir_ptr), "dirLen": o(s.dir_len), "globalDepth": o(s.global_depth),
                       "globalShift": o(s.global_shift), "writing": o(s.writing)},
            "table": s.table_type, "table_size": s.table_size,
            "table_fields": {"used": o(s.t_used), "capacity": o(s.t_capacity), "growthLeft": o(s.t_growth_left), "localDepth": o(s.t_local_depth),
                             "index": o(s.t_index), "groups.data": o(s.t_groups_data), "groups.lengthMask": o(s.t_groups_mask)},
            "group": s.group_type, "group_size": s.group_size, "ctrl": o(s.ctrl), "split_groups": s.split, "slots": slots(&s.slots),
            "key_size": m.key_size, "elem_size": m.elem_size,
        }),
    }
}

/// Runs one parsed subcommand. Returns the exit status: 0, or 1 when `check` found warnings.
pub fn run(t: &Target, cmd: &Cmd, resolver: Option<Resolver<'_>>, out: &mut dyn Write) -> Result<i32> {
    decode::INTERRUPT.store(false, std::sync::atomic::Ordering::Relaxed);
    match cmd {
        Cmd::Show(a) => {
            let r = resolve(t, &a.expr, a.type_name.as_deref(), resolver)?;
            show(t, &r, a, out)?;
            Ok(0)
        }
        Cmd::Buckets(a) => {
            let r = resolve(t, &a.expr, a.type_name.as_deref(), resolver)?;
            buckets(t, &r, a, out)?;
            Ok(0)
        }
        Cmd::Check(a) => {
            let refs = if a.exprs.is_empty() {
                census(t)
            } else {
                a.exprs.iter().map(|e| resolve(t, e, a.type_name.as_deref(), resolver)).collect::<Result<Vec<_>>>()?
            };
            Ok(if check(t, &refs, a, out)? { 1 } else { 0 })
        }
        Cmd::Maps(a) => {
            maps(t, a, out)?;
            Ok(0)
        }
        Cmd::Layout(a) => {
            layout(t, a, out)?;
            Ok(0)
        }
    }
}
