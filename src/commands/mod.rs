//! One file per subcommand; this module holds what they share: entry streaming, header and stats
//! rendering, findings.

pub mod buckets;
pub mod check;
pub mod diff;
pub mod holders;
pub mod init;
pub mod layout;
pub mod maps;
pub mod parallel;
pub mod report;
pub mod show;
pub mod top;

use crate::binary::TypeId;
use crate::decode::{self, Health, Visitor};
use crate::error::{Error, Result};
use crate::findings::{self, human, Finding, Thresholds};
use crate::inspect::MapRef;
use crate::layout::MapType;
use crate::target::Target;
use crate::value::{hex, Plan, Renderer, Style, MAX_ITEMS};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;

/// Streams JSON or text entries into a buffer, flushing to the sink as it fills.
pub(crate) struct EntryWriter<'a, 'r> {
    pub(crate) r: &'a Renderer<'r>,
    pub(crate) out: Vec<u8>,
    pub(crate) sink: Option<&'a mut dyn Write>,
    pub(crate) key: Arc<Plan>,
    pub(crate) elem: Arc<Plan>,
    pub(crate) limit: u64,
    pub(crate) n: u64,
    pub(crate) more: bool,
    pub(crate) io_error: Option<std::io::Error>,
    /// A progress bar while listing every entry of a large map (stderr on a terminal only).
    pub(crate) progress: Option<crate::report::progress::Bar>,
    /// Entries of a nested map inside one key or value: text entries on one line, and the walk
    /// stops when that key or value has spent its output budget.
    nested: bool,
}

impl<'a, 'r> EntryWriter<'a, 'r> {
    /// The rendering plans of the key and element types are looked up once here, not per entry.
    pub(crate) fn new(r: &'a Renderer<'r>, out: Vec<u8>, sink: Option<&'a mut dyn Write>, key: TypeId, elem: TypeId, limit: u64) -> Self {
        let (key, elem) = (crate::rtmap::plan(r.t, key), crate::rtmap::plan(r.t, elem));
        EntryWriter { r, out, sink, key, elem, limit, n: 0, more: false, io_error: None, nested: false, progress: None }
    }

    pub(crate) fn flush(&mut self) {
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
        if entries_done(self.limit, self.n, &mut self.more, self.io_error.is_some()) {
            return false;
        }
        if self.nested && self.r.budget_spent(&self.out) {
            if self.n > 0 {
                self.out.extend_from_slice(if self.r.style == Style::Json { b"," } else { b", " });
            }
            self.r.elide(&mut self.out, crate::value::Elided::Budget);
            self.more = true;
            return false;
        }
        match self.r.style {
            Style::Text if self.nested => {
                if self.n > 0 {
                    self.out.extend_from_slice(b", ");
                }
                self.r.value_with(&mut self.out, &self.key, k);
                self.out.extend_from_slice(b": ");
                self.r.value_with(&mut self.out, &self.elem, e);
            }
            Style::Json => json_entry(self.r, &mut self.out, &self.key, &self.elem, k, e, self.n > 0),
            Style::Text => {
                self.out.extend_from_slice(b"  ");
                self.r.value_with(&mut self.out, &self.key, k);
                self.out.extend_from_slice(b": ");
                self.r.value_with(&mut self.out, &self.elem, e);
                self.out.push(b'\n');
            }
        }
        self.n += 1;
        if self.n % 4096 == 0 {
            if let Some(p) = &self.progress {
                p.set(self.n);
            }
        }
        if self.out.len() >= 1 << 16 {
            self.flush();
        }
        true
    }
}

/// Whether an entry writer takes no more entries: `--limit` reached (which sets `more`) or the
/// output failed.
#[inline]
pub(crate) fn entries_done(limit: u64, n: u64, more: &mut bool, io_failed: bool) -> bool {
    if limit != 0 && n >= limit {
        *more = true;
        return true;
    }
    io_failed
}

/// One JSON entry `{"key":K,"value":V}`, after a comma unless it is the first.
#[inline]
pub(crate) fn json_entry(r: &Renderer<'_>, out: &mut Vec<u8>, key: &Plan, elem: &Plan, k: &[u8], e: &[u8], comma: bool) {
    if comma {
        out.push(b',');
    }
    out.extend_from_slice(b"{\"key\":");
    r.value_with(out, key, k);
    out.extend_from_slice(b",\"value\":");
    r.value_with(out, elem, e);
    out.push(b'}');
}

/// Nested map expansion for `--depth`: {"address", "len", "entries": [...]} in place of the value.
/// The entries are rendered by the same renderer into the same buffer, so they share the enclosing
/// key's or value's budget, depth and cycle detection.
pub fn nested_entries(r: &Renderer<'_>, id: TypeId, addr: u64, out: &mut Vec<u8>) -> Result<()> {
    let t = r.t;
    let json = r.style == Style::Json;
    if addr == 0 && !json {
        out.extend_from_slice(b"nil");
        return Ok(());
    }
    let m = t.map_type(id)?;
    let len = t.map_len(id, addr)?;
    let mark = out.len();
    if json {
        out.extend_from_slice(b"{\"address\":");
        hex(out, addr, true);
        out.extend_from_slice(format!(",\"len\":{len},\"entries\":[").as_bytes());
    } else {
        out.extend_from_slice(format!("map[len={len}]{{").as_bytes());
    }
    let mut w = EntryWriter::new(r, std::mem::take(out), None, m.key, m.elem, MAX_ITEMS);
    w.nested = true;
    let walked = decode::walk(t, &m, addr, &mut w);
    *out = std::mem::take(&mut w.out);
    if let Err(e) = walked {
        out.truncate(mark);
        return Err(e);
    }
    if w.more && !r.budget_spent(out) {
        out.extend_from_slice(if json { b",\"...\"" } else { b", ..." });
    }
    out.extend_from_slice(if json { b"]}" } else { b"}" });
    Ok(())
}

/// Under a type the user gave (`--type` on an address), a walk that disagrees with its own header
/// beyond what a write in flight (or, in a running process, the program's own writes) explains
/// means the bytes are not a map of that type: refuse, instead of printing garbage as entries.
pub(crate) fn type_fits(r: &MapRef, m: &MapType, h: &Health) -> Result<()> {
    let slack = if h.live_target {
        64.max(h.len / 10)
    } else if h.writing {
        16
    } else {
        1
    };
    let diff = h.live.abs_diff(h.len);
    if diff <= slack && h.corrupt.is_empty() {
        return Ok(());
    }
    let impossible = match h.corrupt.len() {
        0 => String::new(),
        n => format!(", {n}{} impossible structures", if n >= 32 { "+" } else { "" }),
    };
    Err(Error::Expr(format!(
        "{}: does not look like a map of this type ({}: the header says len {}, the walk found {} live slots{impossible}); check --type",
        r.name, m.name, h.len, h.live
    )))
}

/// `type_fits` before anything is printed: one walk that only counts.
pub(crate) fn check_type_fits(t: &Target, r: &MapRef, m: &MapType) -> Result<()> {
    let h = decode::walk(t, m, r.addr, &mut decode::NoVisit)?;
    type_fits(r, m, &h)
}

pub(crate) fn header_json(t: &Target, r: &MapRef, m: &MapType, len: u64) -> serde_json::Map<String, Value> {
    // Room for what the callers add (stats, findings, worst, root, ...) without rehashing.
    let mut o = serde_json::Map::with_capacity(16);
    o.insert("name".into(), json!(r.name));
    o.insert("type".into(), json!(m.name));
    o.insert("address".into(), json!(format!("{:#x}", r.addr)));
    o.insert("impl".into(), json!(m.imp.name()));
    o.insert("go_version".into(), json!(t.bin.build.version));
    o.insert("len".into(), json!(len));
    o
}

pub(crate) fn findings_of(m: &MapType, h: &Health, th: &Thresholds, r: Option<&Renderer<'_>>) -> Vec<Finding> {
    let (errs, first) = match r {
        Some(r) => (r.errors.get(), r.first_error.borrow().clone()),
        None => (0, None),
    };
    findings::analyze(m, h, th, errs, first.as_deref())
}

pub(crate) fn stats_line(h: &Health) -> String {
    let mut s = format!(
        "slots {} live {} deleted {} empty {} fill {:.3} bytes {}",
        h.slots, h.live, h.deleted, h.empty, h.fill(), human(h.bytes)
    );
    if let Some(mb) = &h.mem {
        s += &format!("\n{}", mb.line());
    }
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

pub(crate) fn write_findings_text(out: &mut dyn Write, f: &[Finding]) -> std::io::Result<()> {
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

/// `--output FILE`: the file, opened for writing, unless it is the executable or the core being read
/// (gomap never writes to what it inspects; truncating a mapped core would also crash the walk).
pub(crate) fn output_file(t: &Target, path: &std::path::Path) -> Result<std::io::BufWriter<std::fs::File>> {
    use std::os::unix::fs::MetadataExt;
    let f = std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(path).map_err(|e| Error::io(path, e))?;
    let me = f.metadata().map_err(|e| Error::io(path, e))?;
    let inspected = [Some(t.bin.path.as_path()), t.mem.backing_file()];
    for p in inspected.into_iter().flatten() {
        if std::fs::metadata(p).is_ok_and(|m| m.dev() == me.dev() && m.ino() == me.ino()) {
            return Err(Error::io(path, std::io::Error::other(format!("that is {}, which gomap is reading: choose another output file", p.display()))));
        }
    }
    f.set_len(0).map_err(|e| Error::io(path, e))?;
    Ok(std::io::BufWriter::with_capacity(1 << 20, f))
}

pub(crate) fn io(e: std::io::Error) -> Error {
    Error::Io { path: "output".into(), source: e }
}

/// Health of one map without its entries (check, maps).
pub fn health(t: &Target, r: &MapRef, th: &Thresholds) -> Result<(Arc<MapType>, Health, Vec<Finding>)> {
    let m = t.map_type(r.ty)?;
    let h = decode::walk_map(t, &m, r.addr, &mut decode::NoVisit)?;
    let f = findings_of(&m, &h, th, None);
    Ok((m, h, f))
}

pub(crate) fn summary_json(t: &Target, r: &MapRef, m: &MapType, h: &Health, f: &[Finding]) -> Value {
    summary_json_with(t, r, m, h, f, h.stats_json())
}

/// [`summary_json`] with `stats` as given (the census writes a placeholder and streams the stats).
pub(crate) fn summary_json_with(t: &Target, r: &MapRef, m: &MapType, h: &Health, f: &[Finding], stats: Value) -> Value {
    let mut o = header_json(t, r, m, h.len);
    o.insert("stats".into(), stats);
    o.insert("findings".into(), Value::Array(f.iter().map(Finding::to_json).collect()));
    Value::Object(o)
}
