//! `show`: header, stats, entries and findings of one map.

use super::{findings_of, header_json, io, stats_line, write_findings_text, EntryWriter};
use crate::cli::ShowArgs;
use crate::decode::{self, Health};
use crate::error::{Error, Result};
use crate::findings::Finding;
use crate::inspect::MapRef;
use crate::layout::Impl;
use crate::target::Target;
use crate::value::{Renderer, Style};
use serde_json::{json, Value};
use std::io::Write;

/// `show` prints the header's len before the walk reads the header again: on a live process the two
/// reads can disagree, and the entries then belong to a different len than the one printed.
fn len_changed(h: &mut Health, printed: u64) {
    if h.len != printed {
        h.corrupt(format!("the header's count changed from {printed} to {} while the map was read", h.len));
    }
}

pub fn show(t: &Target, r: &MapRef, a: &ShowArgs, out: &mut dyn Write) -> Result<Vec<Finding>> {
    if let Some(path) = &a.output {
        let mut f = super::output_file(t, path)?;
        let found = show_to(t, r, a, &mut f)?;
        f.flush().map_err(|e| Error::io(path, e))?;
        return Ok(found);
    }
    show_to(t, r, a, out)
}

fn show_to(t: &Target, r: &MapRef, a: &ShowArgs, out: &mut dyn Write) -> Result<Vec<Finding>> {
    let m = t.map_type(r.ty)?;
    let len = t.map_len(r.ty, r.addr).map_err(|e| Error::Expr(format!("{}: map header unreadable: {e}", r.name)))?;
    let th = a.th.to_core();
    if a.type_name.is_some() {
        super::check_type_fits(t, r, &m)?;
    }
    if a.json {
        let style = Style::Json;
        let rend = Renderer::new(t, style, a.depth).with_max_string(a.max_string);
        let hdr = serde_json::to_string(&Value::Object(header_json(t, r, &m, len))).unwrap_or_default();
        out.write_all(&hdr.as_bytes()[..hdr.len() - 1]).map_err(io)?;
        out.write_all(b",\"entries\":[").map_err(io)?;
        // Streaming JSON to the terminal would tear through a bar: only when stdout goes elsewhere.
        let progress = if std::io::IsTerminal::is_terminal(&std::io::stdout()) { None } else { crate::report::progress::Bar::entries(len, a.limit) };
        let (mut h, more, io_err) = match super::parallel::plan(t, len) {
            Some(p) => {
                let w = super::parallel::walk_json(t, &m, r.addr, &rend, a.limit, p, out, progress)?;
                (w.health, w.more, w.io_error)
            }
            None => {
                let mut w = EntryWriter::new(&rend, Vec::with_capacity(1 << 17), Some(out), m.key, m.elem, a.limit);
                w.progress = progress;
                let h = decode::walk_map(t, &m, r.addr, &mut w)?;
                w.flush();
                (h, w.more, w.io_error.take())
            }
        };
        len_changed(&mut h, len);
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
    let rend = Renderer::new(t, Style::Text, a.depth).with_max_string(a.max_string);
    let mut w = EntryWriter::new(&rend, Vec::new(), None, m.key, m.elem, a.limit);
    w.progress = crate::report::progress::Bar::entries(len, a.limit);
    let mut h = decode::walk_map(t, &m, r.addr, &mut w)?;
    w.progress = None;
    len_changed(&mut h, len);
    let f = findings_of(&m, &h, &th, Some(&rend));
    let hdr = match &m.imp {
        Impl::Classic(_) => format!("classic ({})", m.header_type),
        Impl::Swiss(s) => format!("swiss ({}{})", m.header_type, if s.split { ", split groups" } else { "" }),
    };
    writeln!(out, "{}  {}  {}  {}", r.name, m.name, hdr, t.bin.build.raw).map_err(io)?;
    writeln!(out, "address {:#x}{}  len {}", r.addr, if r.addr == 0 { " (nil)" } else { "" }, len).map_err(io)?;
    writeln!(out, "{}", stats_line(&h)).map_err(io)?;
    writeln!(out, "entries ({} shown):", w.n).map_err(io)?;
    out.write_all(&w.out).map_err(io)?;
    if w.more {
        writeln!(out, "  ... ({} more; --limit 0 shows all)", h.live.saturating_sub(w.n)).map_err(io)?;
    }
    write_findings_text(out, &f).map_err(io)?;
    Ok(f)
}
