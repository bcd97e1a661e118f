//! The occupancy picture as SVG: a memory bar (where the bytes are, how much of each part holds live
//! entries), the bucket or group arrays slot by slot (or in scaled cells for large maps), the old array
//! beside the new one while a classic map grows, and a legend. Written by hand: a few rect and text
//! elements, no dependency.

use super::occupancy::{Cell, Occupancy, Strip, TableMark, BAD, DELETED, DETAIL_CHAIN, EMPTY, EVAC_EMPTY, EVAC_X, EVAC_Y, LIVE, NSTATES};
use crate::decode::Health;
use crate::findings::human;
use std::fmt::Write;

const W: f64 = 960.0;
const PAD: f64 = 10.0;
/// Slot square side and column pitch of the detailed picture.
const SLOT: f64 = 6.0;
const PITCH: f64 = 8.0;
/// Cell side and pitch of the scaled picture.
const CELL: f64 = 12.0;
const CELL_PITCH: f64 = 13.0;

pub const COLOURS: [&str; NSTATES] = ["#2f9e44", "#f08c00", "#dee2e6", "#4c6ef5", "#9c36b5", "#a5d8ff", "#e03131"];
/// Order in which a scaled cell stacks its states, bottom up (empty on top).
const STACK: [usize; NSTATES] = [LIVE, DELETED, EVAC_X, EVAC_Y, EVAC_EMPTY, BAD, EMPTY];

/// What the picture says about the map besides its slots.
pub struct Head<'a> {
    pub name: &'a str,
    pub type_name: &'a str,
    pub imp: &'a str,
    pub go_version: &'a str,
    /// Findings, one short line each ("warning oversized: ...").
    pub findings: Vec<String>,
}

pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

struct Svg {
    s: String,
    /// Rects of a strip batched into one path per fill: a 512-cell picture stays a few tens of KiB.
    batch: Vec<(&'static str, String)>,
}

/// A coordinate with at most one decimal and no trailing ".0".
fn n(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

impl Svg {
    fn cell(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &'static str) {
        let i = match self.batch.iter().position(|b| b.0 == fill) {
            Some(i) => i,
            None => {
                self.batch.push((fill, String::new()));
                self.batch.len() - 1
            }
        };
        let d = &mut self.batch[i].1;
        let _ = write!(d, "M{} {}h{}v{}h-{}z", n(x), n(y), n(w), n(h), n(w));
    }
    fn flush(&mut self) {
        for (fill, d) in std::mem::take(&mut self.batch) {
            let _ = write!(self.s, r#"<path fill="{fill}" d="{d}"/>"#);
        }
    }
    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str) {
        let _ = write!(self.s, r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}"/>"#);
    }
    fn text(&mut self, x: f64, y: f64, size: u32, bold: bool, t: &str) {
        let weight = if bold { r#" font-weight="bold""# } else { "" };
        let _ = write!(self.s, r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}"{weight}>{}</text>"#, esc(t));
    }
}

/// The picture of one map. `h` is the walk's health (totals), `occ` what the same walk saw.
pub fn render(occ: &Occupancy, h: &Health, head: &Head<'_>) -> String {
    let mut g = Svg { s: String::with_capacity(1 << 14), batch: Vec::new() };
    let mut y = PAD;
    g.text(PAD, y + 14.0, 15, true, &format!("{} · {} · {}", head.name, head.type_name, head.imp));
    y += 22.0;
    let (live, slots) = (occ.new.totals.slots[LIVE] + occ.old.totals.slots[LIVE], occ.new.totals.total_slots() + occ.old.totals.total_slots());
    g.text(
        PAD,
        y + 12.0,
        12,
        false,
        &format!("len {} · {} slots, {} live ({:.1}%) · {} · {}", h.len, slots, live, pct(live, slots), human(h.bytes), head.go_version),
    );
    y += 20.0;
    y = memory_bar(&mut g, occ, h, y);
    for f in head.findings.iter().take(6) {
        g.text(PAD, y + 12.0, 12, false, f);
        y += 16.0;
    }
    y += 6.0;
    let unit = if occ.classic { "bucket" } else { "group" };
    let growing = occ.classic && occ.old.units > 0;
    let scaled = occ.new.detail.is_none() || (growing && occ.old.detail.is_none());
    let panel_h = if growing {
        let pw = (W - 3.0 * PAD) / 2.0;
        let c = h.classic.clone().unwrap_or_default();
        let title = format!("current array: {} buckets (B = {}), {} overflow buckets", occ.new.units, c.b, occ.new.overflow);
        g.text(PAD, y + 12.0, 12, true, &title);
        let lh = strip_panel(&mut g, &occ.new, &[], PAD, y + 10.0, pw, unit, "", scaled) + 10.0;
        let title = format!("old array: {} of {} buckets evacuated (nevacuate {})", c.evacuated_old, c.old_buckets, c.nevacuate);
        let x = 2.0 * PAD + pw;
        // The old array, with its evacuation progress above it.
        g.rect(x, y + 17.0, pw, 6.0, COLOURS[EMPTY]);
        g.rect(x, y + 17.0, pw * pct(c.evacuated_old, c.old_buckets.max(1)) / 100.0, 6.0, COLOURS[EVAC_X]);
        g.text(x, y + 12.0, 12, true, &title);
        let rh = strip_panel(&mut g, &occ.old, &[], x, y + 10.0, pw, unit, "", scaled) + 10.0;
        lh.max(rh)
    } else {
        let title = if h.address == 0 {
            "nil map: no memory allocated".to_string()
        } else if occ.new.units == 0 {
            format!("no {unit} allocated yet (the runtime allocates on the first insert)")
        } else if occ.classic {
            let b = h.classic.as_ref().map(|c| c.b).unwrap_or(0);
            format!("bucket array: {} buckets (B = {}), {} overflow buckets", occ.new.units, b, occ.new.overflow)
        } else if occ.tables_total == 0 {
            "small map: one group, no table".to_string()
        } else {
            format!("{} tables, {} groups", occ.tables_total, occ.new.units)
        };
        strip_panel(&mut g, &occ.new, &occ.tables, PAD, y, W - 2.0 * PAD, unit, &title, scaled)
    };
    y += panel_h + 8.0;
    y = legend(&mut g, occ, y, scaled);
    let scale = if scaled {
        let run = occ.new.run.max(occ.old.run);
        format!(
            "scaled: each cell is a run of up to {run} {unit}s{}, coloured by the share of their slots in each state{}",
            if occ.classic { " with their overflow buckets" } else { "" },
            if occ.classic { "; a red corner marks overflow buckets" } else { "" }
        )
    } else if occ.classic {
        format!("each column is one bucket, its 8 slots top to bottom; overflow buckets hang below (first {DETAIL_CHAIN} shown, a red bar means more)")
    } else {
        "each column is one group, its 8 slots (ctrl bytes) top to bottom".to_string()
    };
    g.text(PAD, y + 12.0, 11, false, &scale);
    if !occ.classic && occ.tables_total > occ.tables.len() as u64 {
        y += 16.0;
        g.text(PAD, y + 12.0, 11, false, &format!("table boundaries are marked for the first {} of {} tables", occ.tables.len(), occ.tables_total));
    }
    y += 22.0;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{y:.0}" viewBox="0 0 {W} {y:.0}" font-family="sans-serif"><rect width="100%" height="100%" fill="#ffffff"/>{}</svg>"##,
        g.s
    )
}

/// Where the bytes are: one segment per part, its live share drawn dark.
fn memory_bar(g: &mut Svg, occ: &Occupancy, h: &Health, mut y: f64) -> f64 {
    let parts = occ.parts(h);
    let total: u64 = parts.iter().map(|p| p.1).sum::<u64>().max(1);
    let width = W - 2.0 * PAD;
    let mut x = PAD;
    const PART: [&str; 4] = ["#b2f2bb", "#ffec99", "#d0bfff", "#ced4da"];
    for (i, (label, bytes, live, slots)) in parts.iter().enumerate() {
        let w = (width * *bytes as f64 / total as f64).max(1.0);
        let light = if *slots == 0 { PART[3] } else { PART[i.min(2)] };
        let _ = write!(g.s, "<g><title>{}: {}</title>", esc(label), human(*bytes));
        g.rect(x, y, w, 20.0, light);
        if *slots > 0 {
            g.rect(x, y, w * *live as f64 / *slots as f64, 20.0, COLOURS[LIVE]);
        }
        g.s.push_str("</g>");
        x += w;
    }
    y += 24.0;
    for (i, (label, bytes, live, slots)) in parts.iter().enumerate() {
        let light = if *slots == 0 { PART[3] } else { PART[i.min(2)] };
        g.rect(PAD, y + 3.0, 10.0, 10.0, light);
        let what = if *slots == 0 { "no entries".to_string() } else { format!("{:.1}% of its {} slots hold a live entry", pct(*live, *slots), slots) };
        g.text(PAD + 14.0, y + 12.0, 12, false, &format!("{label}: {} ({:.1}% of the map): {what}", human(*bytes), pct(*bytes, total)));
        y += 16.0;
    }
    y + 4.0
}

/// One array drawn in a panel of width `w` at (x, y), with a title line. Returns the height used.
#[allow(clippy::too_many_arguments)]
fn strip_panel(g: &mut Svg, s: &Strip, tables: &[TableMark], x: f64, y: f64, w: f64, unit: &str, title: &str, scaled: bool) -> f64 {
    if !title.is_empty() {
        g.text(x, y + 12.0, 12, true, title);
    }
    let top = y + 18.0;
    let h = match (&s.detail, scaled) {
        (Some(d), false) => detail(g, d, tables, x, top, w),
        _ => cells(g, s, tables, x, top, w, unit),
    };
    g.flush();
    h + 18.0
}

/// Runs of equal states in a column of 8 slots, drawn as one rect each.
fn column(g: &mut Svg, st: &[u8; 8], x: f64, y: f64) {
    let mut i = 0;
    while i < 8 {
        let mut j = i + 1;
        while j < 8 && st[j] == st[i] {
            j += 1;
        }
        g.cell(x, y + i as f64 * SLOT, SLOT, (j - i) as f64 * SLOT, COLOURS[(st[i] as usize).min(NSTATES - 1)]);
        i = j;
    }
}

fn detail(g: &mut Svg, d: &[super::occupancy::Unit], tables: &[TableMark], x0: f64, y0: f64, w: f64) -> f64 {
    let cols = ((w / PITCH).floor() as usize).max(1);
    // Swiss tables each start a labelled row when there are few of them.
    let labelled = !tables.is_empty() && tables.len() <= 16;
    let mut segments: Vec<(Option<String>, usize, usize)> = Vec::new();
    if labelled {
        for (i, t) in tables.iter().enumerate() {
            let end = tables.get(i + 1).map(|n| n.first_unit as usize).unwrap_or(d.len()).min(d.len());
            let ti = &t.info;
            let a = (t.first_unit as usize).min(end);
            // Tombstones counted from the groups drawn (the table header has no such count).
            let deleted = d[a..end].iter().flat_map(|u| u.states).filter(|&st| st as usize == DELETED).count();
            let label = format!(
                "table {}: used {} of {} slots, growthLeft {}, {deleted} tombstones, localDepth {}, directory [{}..{}]",
                ti.ordinal, ti.used, ti.capacity, ti.growth_left, ti.local_depth, ti.dir_first, ti.dir_first + ti.dir_count.max(1) - 1
            );
            segments.push((Some(label), a, end));
        }
    } else {
        segments.push((None, 0, d.len()));
    }
    let col_h = 8.0 * SLOT;
    let mut y = y0;
    for (label, a, b) in segments {
        if let Some(l) = label {
            g.text(x0, y + 10.0, 11, false, &l);
            y += 14.0;
        }
        let mut i = a;
        while i < b {
            let row = &d[i..(i + cols).min(b)];
            let chain_rows = row.iter().map(|u| u.chain.len()).max().unwrap_or(0);
            let more = row.iter().any(|u| u.chain_len as usize > u.chain.len());
            for (c, u) in row.iter().enumerate() {
                let x = x0 + c as f64 * PITCH;
                column(g, &u.states, x, y);
                for (k, ov) in u.chain.iter().enumerate() {
                    let oy = y + col_h + 4.0 + k as f64 * (col_h + 4.0);
                    g.cell(x + SLOT / 2.0 - 0.5, oy - 4.0, 1.0, 4.0, "#495057");
                    column(g, ov, x, oy);
                }
                if u.chain_len as usize > u.chain.len() {
                    g.cell(x, y + col_h + 1.0 + u.chain.len() as f64 * (col_h + 4.0) + 2.0, SLOT, 2.0, COLOURS[BAD]);
                }
                if !labelled && tables.iter().any(|t| t.first_unit as usize == i + c && i + c > 0) {
                    g.cell(x - 1.5, y - 2.0, 1.0, col_h + 4.0, "#212529");
                }
            }
            y += col_h + chain_rows as f64 * (col_h + 4.0) + if more { 6.0 } else { 0.0 } + 6.0;
            i += cols;
        }
    }
    y - y0
}

fn cells(g: &mut Svg, s: &Strip, tables: &[TableMark], x0: f64, y0: f64, w: f64, unit: &str) -> f64 {
    let cols = ((w / CELL_PITCH).floor() as usize).max(1);
    let rows = s.cells.len().div_ceil(cols);
    // One tooltip for the strip (per-cell tooltips would multiply the page size).
    let _ = write!(g.s, "<g><title>{}</title>", esc(&cell_title(&s.totals, unit, 0, s.units.saturating_sub(1))));
    let mut corners: Vec<(f64, f64, u8)> = Vec::new();
    for (i, c) in s.cells.iter().enumerate() {
        let (r, k) = (i / cols, i % cols);
        let (x, y) = (x0 + k as f64 * CELL_PITCH, y0 + r as f64 * CELL_PITCH);
        let total = c.total_slots();
        if total == 0 {
            g.cell(x, y, CELL, CELL, "#f8f9fa");
        } else {
            let mut top = y + CELL;
            for st in STACK {
                let cnt = c.slots[st];
                if cnt == 0 {
                    continue;
                }
                let hgt = CELL * cnt as f64 / total as f64;
                top -= hgt;
                g.cell(x, top, CELL, hgt, COLOURS[st]);
            }
        }
        if c.overflow > 0 {
            // Opacity in 4 steps by overflow buckets per bucket.
            let q = (1.0 + 3.0 * (c.overflow as f64 / c.units.max(1) as f64).min(1.0)).round() as u8;
            corners.push((x + CELL - 6.0, y, q));
        }
        if tables.iter().any(|t| t.first_unit > 0 && t.first_unit / s.run == i as u64) {
            corners.push((x - 1.0, y - 1.0, 0));
        }
    }
    g.flush();
    const CORNER: [&str; 5] = ["#212529", "#e03131/0.4", "#e03131/0.6", "#e03131/0.8", "#e03131"];
    let mut d: [String; 5] = Default::default();
    for (x, y, q) in corners {
        if q == 0 {
            let _ = write!(d[0], "M{} {}h1v{}h-1z", n(x), n(y), n(CELL + 2.0));
        } else {
            let _ = write!(d[q as usize], "M{} {}h6v6z", n(x), n(y));
        }
    }
    for (fill, d) in CORNER.iter().zip(d) {
        if !d.is_empty() {
            let (f, op) = fill.split_once('/').map(|(f, o)| (f, format!(r#" fill-opacity="{o}""#))).unwrap_or((fill, String::new()));
            let _ = write!(g.s, r#"<path fill="{f}"{op} d="{d}"/>"#);
        }
    }
    g.s.push_str("</g>");
    rows as f64 * CELL_PITCH
}

fn cell_title(c: &Cell, unit: &str, a: u64, b: u64) -> String {
    let mut t = if a == b { format!("{unit} {a}:") } else { format!("{unit}s {a}-{b}:") };
    for (st, name) in [(LIVE, "live"), (DELETED, "deleted"), (EMPTY, "empty"), (EVAC_X, "evacuated X"), (EVAC_Y, "evacuated Y"), (EVAC_EMPTY, "evacuated empty"), (BAD, "impossible")] {
        if c.slots[st] > 0 {
            let _ = write!(t, " {} {name}", c.slots[st]);
        }
    }
    if c.overflow > 0 {
        let _ = write!(t, "; {} overflow buckets", c.overflow);
    }
    t
}

fn legend(g: &mut Svg, occ: &Occupancy, y: f64, scaled: bool) -> f64 {
    let items: Vec<(usize, &str)> = if occ.classic {
        let mut v = vec![(LIVE, "live (tophash >= 5)"), (DELETED, "emptyOne (deleted)"), (EMPTY, "emptyRest")];
        if occ.old.units > 0 {
            v.extend([(EVAC_X, "evacuatedX"), (EVAC_Y, "evacuatedY"), (EVAC_EMPTY, "evacuatedEmpty")]);
        }
        if scaled {
            v.push((BAD, "overflow buckets (corner)"));
        }
        v
    } else {
        vec![(LIVE, "full"), (DELETED, "deleted (tombstone 0xFE)"), (EMPTY, "empty (0x80)")]
    };
    let mut x = PAD;
    for (st, label) in items {
        g.rect(x, y + 2.0, 10.0, 10.0, COLOURS[st]);
        g.text(x + 14.0, y + 11.0, 11, false, label);
        x += 24.0 + 6.5 * label.len() as f64;
    }
    y + 18.0
}
