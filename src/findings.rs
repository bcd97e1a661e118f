//! Findings: what is wrong or wasteful about a map, as data (kind, severity, numbers) first.
//! Text comes from the same numbers; thresholds are options with the defaults below.

use crate::decode::Health;
use crate::layout::{Impl, MapType};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Finding {
    pub kind: &'static str,
    pub severity: Severity,
    pub message: String,
    pub bytes: Option<u64>,
    pub numbers: Value,
}

impl Finding {
    pub fn to_json(&self) -> Value {
        let mut v = json!({"kind": self.kind, "severity": self.severity.as_str(), "message": self.message});
        if let Some(b) = self.bytes {
            v["bytes"] = json!(b);
        }
        v["numbers"] = self.numbers.clone();
        v
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    /// `oversized` when live/slots falls below this...
    pub fill: f64,
    /// ...and a rebuilt map would save at least this many bytes.
    pub waste_floor: u64,
    /// `tombstones` when deleted slots are at least this share of used slots.
    pub tombstone_share: f64,
    /// `overflow` is a warning from this chain length on.
    pub chain: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { fill: 0.3, waste_floor: 1 << 20, tombstone_share: 0.25, chain: 8 }
    }
}

pub fn human(bytes: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// Bytes a freshly built map of `len` entries would allocate (what rebuilding would leave).
pub fn rebuilt_bytes(m: &MapType, len: u64) -> u64 {
    match &m.imp {
        Impl::Classic(c) => {
            // Smallest B with len <= 6.5 * 2^B (and at most 8 entries in B = 0).
            let mut b = 0u32;
            while b < 40 && (len > 8 && len * 2 > 13 * (1u64 << b)) {
                b += 1;
            }
            c.header_size + (1u64 << b) * c.bucket_size
        }
        Impl::Swiss(s) => {
            if len <= 8 {
                return s.header_size + s.group_size;
            }
            // Capacity for a 7/8 load factor, in tables of at most 1024 slots.
            let cap = (len * 8).div_ceil(7).next_power_of_two();
            let groups = cap / 8;
            let tables = cap.div_ceil(1024).max(1);
            s.header_size + groups * s.group_size + tables * (s.table_size + 8)
        }
    }
}

pub fn analyze(m: &MapType, h: &Health, th: &Thresholds, value_errors: u64, first_value_error: Option<&str>) -> Vec<Finding> {
    let mut out = Vec::new();
    let pct = |a: u64, b: u64| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
    let mb = h.mem.clone().unwrap_or_default();
    if let Some(c) = &h.classic {
        // Bytes of the old array and its own overflow buckets: only `growing` counts them.
        let old_bytes = if h.mem.is_some() { mb.old_bytes } else { c.old_bytes };
        if c.oldbuckets != 0 {
            let kind = if c.same_size_grow { "same-size grow (too many overflow buckets)" } else { "doubling" };
            // Growth in progress is normal for a map that is being written; it is a problem when the
            // old array holds real memory: evacuation advances only in growWork, which mapassign and
            // mapdelete call, so a map that is now only read keeps both arrays.
            out.push(Finding {
                kind: "growing",
                severity: if old_bytes >= th.waste_floor { Severity::Warning } else { Severity::Info },
                message: format!(
                    "map is growing ({kind}): {} of {} old buckets evacuated (nevacuate {}); the old array and its overflow buckets still hold {}. \
                     Evacuation only advances on writes (growWork in mapassign/mapdelete): a map that is now only read keeps both arrays",
                    c.evacuated_old, c.old_buckets, c.nevacuate, human(old_bytes)
                ),
                bytes: Some(old_bytes),
                numbers: json!({"evacuated": c.evacuated_old, "old_buckets": c.old_buckets, "nevacuate": c.nevacuate,
                                "old_bytes": old_bytes, "same_size_grow": c.same_size_grow}),
            });
        }
        // Overflow buckets stay linked until the map grows (only hashGrow/evacuate drop them), so
        // after mass deletes whole overflow buckets hold nothing. Those allocated separately are
        // bytes a rebuild would not need; those from the preallocated region are part of the array.
        if c.stale_buckets > 0 {
            let total = c.overflow_buckets;
            out.push(Finding {
                kind: "stale",
                severity: if mb.stale_bytes >= th.waste_floor { Severity::Warning } else { Severity::Info },
                message: format!(
                    "{} of {} overflow buckets hold no live entry but stay linked (the runtime unlinks overflow buckets only when the map grows); \
                     {} of them were allocated separately: {}",
                    c.stale_buckets, total, mb.stale_separate, human(mb.stale_bytes)
                ),
                bytes: Some(mb.stale_bytes),
                numbers: json!({"stale_buckets": c.stale_buckets, "stale_separate": mb.stale_separate, "overflow_buckets": total}),
            });
        }
        if c.overflow_buckets > 0 {
            let warn = (c.longest_chain >= th.chain || c.overflow_buckets >= c.buckets) && mb.overflow_bytes >= th.waste_floor;
            out.push(Finding {
                kind: "overflow",
                severity: if warn { Severity::Warning } else { Severity::Info },
                message: format!(
                    "{} overflow buckets in {} chains (longest chain {} buckets) for {} buckets: {} from the array's preallocated overflow region (newoverflow takes those first, no extra memory), \
                     {} allocated separately holding live entries ({})",
                    c.overflow_buckets, c.chains_with_overflow, c.longest_chain, c.buckets, mb.overflow_preallocated, mb.overflow_separate, human(mb.overflow_bytes)
                ),
                bytes: Some(mb.overflow_bytes),
                numbers: json!({"overflow_buckets": c.overflow_buckets, "chains": c.chains_with_overflow,
                                "longest_chain": c.longest_chain, "buckets": c.buckets, "noverflow": c.noverflow,
                                "preallocated": mb.overflow_preallocated, "separate": mb.overflow_separate}),
            });
        }
    let used = h.live + h.deleted;
        if h.deleted >= 8 && pct(h.deleted, used) >= th.tombstone_share * 100.0 {
            out.push(Finding {
                kind: "tombstones",
                severity: if pct(h.deleted, used) >= 50.0 { Severity::Warning } else { Severity::Info },
                message: format!(
                    "{} deleted (emptyOne) slots, {:.0}% of used slots; worst chain has {} of {} slots deleted",
                    h.deleted, pct(h.deleted, used), c.worst_chain_tombstones, c.worst_chain_slots
                ),
                bytes: None,
                numbers: json!({"deleted": h.deleted, "live": h.live, "share": pct(h.deleted, used) / 100.0}),
            });
        }
    }
    if let Some(s) = &h.swiss {
        if s.stale_groups > 0 {
            out.push(Finding {
                kind: "stale",
                severity: if s.stale_bytes >= th.waste_floor || pct(s.stale_groups, s.groups) >= 25.0 { Severity::Warning } else { Severity::Info },
                message: format!("{} of {} groups hold only deleted slots ({})", s.stale_groups, s.groups, human(s.stale_bytes)),
                bytes: Some(s.stale_bytes),
                numbers: json!({"stale_groups": s.stale_groups, "groups": s.groups}),
            });
        }
        let used = h.live + h.deleted;
        if h.deleted >= 8 && (pct(h.deleted, used) >= th.tombstone_share * 100.0 || s.exhausted_tables > 0) {
            out.push(Finding {
                kind: "tombstones",
                severity: if s.exhausted_tables > 0 || pct(h.deleted, used) >= 50.0 { Severity::Warning } else { Severity::Info },
                message: format!(
                    "{} deleted (0xFE) slots, {:.0}% of used slots; worst table {:#x} has {} of {} slots deleted; \
                     {} tables have growthLeft 0 while holding tombstones (their next insert of a new key first prunes tombstones on Go >= 1.25, \
                     table.pruneTombstones, and otherwise rehashes the table in place or grows it, table.rehash)",
                    h.deleted, pct(h.deleted, used), s.worst_table_addr, s.worst_table_deleted, s.worst_table_slots, s.exhausted_tables
                ),
                bytes: None,
                numbers: json!({"deleted": h.deleted, "live": h.live, "share": pct(h.deleted, used) / 100.0,
                                "exhausted_tables": s.exhausted_tables, "worst_table_deleted": s.worst_table_deleted,
                                "worst_table_slots": s.worst_table_slots}),
            });
        }
    }
    // Oversized: the current structure against what a rebuild would allocate. The old array
    // (`growing`), stale and separately allocated overflow buckets (`stale`, `overflow`) are left
    // out, so no byte is counted by two findings.
    let (slots_now, bytes_now) = match &h.classic {
        Some(c) => {
            let old = if h.mem.is_some() { mb.old_bytes } else { c.old_bytes };
            ((c.buckets + c.overflow_buckets) * 8, h.bytes.saturating_sub(old + mb.stale_bytes + mb.overflow_bytes))
        }
        None => (h.slots, h.bytes),
    };
    let fill = if slots_now == 0 { 1.0 } else { h.live as f64 / slots_now as f64 };
    let rebuilt = if h.mem.is_some() { mb.rebuild } else { rebuilt_bytes(m, h.live) };
    let waste = bytes_now.saturating_sub(rebuilt);
    if slots_now > 0 && fill < th.fill && waste >= th.waste_floor {
        out.push(Finding {
            kind: "oversized",
            severity: Severity::Warning,
            message: format!(
                "{} live entries in {} slots (fill {:.3} < {}): the map holds {} and never shrinks; make(map, len) and re-inserting would allocate {} (saves {})",
                h.live, slots_now, fill, th.fill, human(bytes_now), human(rebuilt), human(waste)
            ),
            bytes: Some(waste),
            numbers: json!({"live": h.live, "slots": slots_now, "fill": fill, "bytes": bytes_now, "rebuilt_bytes": rebuilt,
                            "threshold_fill": th.fill, "waste_floor": th.waste_floor}),
        });
    }
    if h.writing {
        out.push(Finding {
            kind: "writing",
            severity: Severity::Warning,
            message: if h.live_target {
                "a write to this map is in progress (hashWriting/writing flag set); entries may be torn".into()
            } else {
                "a write was in flight when the process stopped (hashWriting/writing flag set): concurrent map writes, or a crash inside a map write".into()
            },
            bytes: None,
            numbers: json!({"writing": true}),
        });
    }
    if h.iterating {
        out.push(Finding {
            kind: "iterating",
            severity: Severity::Info,
            // mapiterinit sets iterator|oldIterator; nothing clears them when the iteration ends. Only
            // hashGrow touches them: it clears both and sets oldIterator if iterator was set.
            message: "iterator flags are set: an iteration started at some point (they stay set after it ends; only hashGrow rewrites them), so this is not proof of an iteration in flight".into(),
            bytes: None,
            numbers: json!({"iterating": true}),
        });
    }
    if !h.corrupt.is_empty() || value_errors > 0 {
        let mut problems = h.corrupt.clone();
        if value_errors > 0 {
            problems.push(format!("{value_errors} keys or values could not be read (first: {})", first_value_error.unwrap_or("?")));
        }
        let live_note = if h.live_target { " (live process: the map may have changed while it was read)" } else { "" };
        out.push(Finding {
            kind: "corrupt",
            severity: Severity::Error,
            message: format!("{}{}{live_note}", problems[0], if problems.len() > 1 { format!(" (+{} more)", problems.len() - 1) } else { String::new() }),
            bytes: None,
            numbers: json!({"problems": problems, "value_errors": value_errors}),
        });
    }
    // A map smaller than the waste floor is not worth a failing `check`: only corruption and a
    // write in flight stay warnings or errors there.
    if h.mem.is_some() && h.bytes < th.waste_floor {
        for f in out.iter_mut().filter(|f| f.kind != "corrupt" && f.kind != "writing") {
            f.severity = f.severity.min(Severity::Info);
        }
    }
    if h.interrupted {
        out.push(Finding {
            kind: "interrupted",
            severity: Severity::Info,
            message: "the walk was interrupted: counts are partial".into(),
            bytes: None,
            numbers: json!({}),
        });
    }
    out
}
