//! Swiss-table Go maps (internal/runtime/maps, Go 1.24+).
//!
//! A small map (dirLen == 0) is one group at dirPtr. Otherwise dirPtr is a directory of dirLen table
//! pointers in which a table of local depth d appears 2^(globalDepth-d) times in a row: each table
//! is visited once. Tables grow by replacement, never incrementally, so every full slot of every
//! unique table is exactly one entry.

use super::{changed_message, changed_since, interrupted, prefetch_slots, read_chunk, slot_addr, slot_bytes, Health, SwissStats, TableInfo, Visitor, CHUNK_BYTES, MAX_BUCKETS, MAX_DIR};
use crate::error::{Error, Result};
use crate::layout::{MapType, SwissLayout};
use crate::memory::{le_uint, Memory, MemoryExt};
use std::collections::HashSet;

pub const CTRL_EMPTY: u8 = 0x80;
pub const CTRL_DELETED: u8 = 0xFE;

/// The largest table the runtime builds is 1024 slots; anything far beyond is corruption.
const MAX_TABLE_GROUPS: u64 = 1 << 20;

pub fn state_letter(c: u8) -> char {
    match c {
        CTRL_EMPTY => '_',
        CTRL_DELETED => 'd',
        c if c & 0x80 == 0 => 'F',
        _ => '?',
    }
}

struct Walker<'a> {
    mem: &'a dyn Memory,
    m: &'a MapType,
    l: &'a SwissLayout,
    h: Health,
    s: SwissStats,
    want_entries: bool,
    visited: u64,
    /// Live targets: regions that read differently after they were decoded.
    changed: u64,
    kbuf: Vec<u8>,
    ebuf: Vec<u8>,
    /// The visitor has its entries and wants no more of the walk (`Visitor::stop_when_done`).
    done: bool,
    /// The bulk read of group arrays, when the source reads them from its file (`read_chunk`).
    chunk: Vec<u8>,
}

pub fn walk(mem: &dyn Memory, m: &MapType, l: &SwissLayout, addr: u64, v: &mut dyn Visitor) -> Result<Health> {
    let mut h = Health { imp: "swiss", address: addr, ..Default::default() };
    let mut s = SwissStats { group_size: l.group_size, ..Default::default() };
    if addr == 0 {
        s.small = true;
        h.swiss = Some(s);
        return Ok(h);
    }
    let hdr = mem
        .bytes(addr, l.header_size as usize)
        .map_err(|e| Error::Expr(format!("map header at {addr:#x} is unreadable: {e}")))?;
    h.len = l.used.get(&hdr);
    h.writing = l.writing.get(&hdr) != 0;
    h.bytes = l.header_size;
    let dir_ptr = l.dir_ptr.get(&hdr);
    let dir_len = l.dir_len.get(&hdr) as i64;
    s.global_depth = l.global_depth.get(&hdr);
    s.dir_ptr = dir_ptr;
    let want_entries = v.wants_entries();
    let mut w = Walker { mem, m, l, h, s, want_entries, visited: 0, changed: 0, kbuf: Vec::new(), ebuf: Vec::new(), done: false, chunk: Vec::new() };
    if dir_len == 0 {
        w.s.small = true;
        if dir_ptr != 0 {
            match mem.bytes(dir_ptr, l.group_size as usize) {
                Ok(g) => {
                    let g = g.into_owned();
                    w.s.groups = 1;
                    w.s.capacity = 8;
                    w.group(&g, dir_ptr, None, 0, v);
                    if changed_since(mem, dir_ptr, &g) {
                        w.changed += 1;
                    }
                }
                Err(e) => w.h.corrupt(format!("the small map's group at {dir_ptr:#x} is unreadable: {e}")),
            }
        } else if w.h.len > 0 {
            w.h.corrupt(format!("used is {} but the map has no group", w.h.len));
        }
    } else {
        w.directory(dir_ptr, dir_len, v);
    }
    if changed_since(mem, addr, &hdr) {
        w.changed += 1;
    }
    if w.changed > 0 {
        w.h.corrupt(changed_message(w.changed));
    }
    if w.h.live != w.h.len && !interrupted() && !w.done {
        let why = if mem.is_live() { " (the map changed while it was read)" } else { "" };
        w.h.corrupt(format!("used says {} entries but {} full slots were found{why}", w.h.len, w.h.live));
    }
    w.h.swiss = Some(w.s);
    Ok(w.h)
}

impl Walker<'_> {
    fn directory(&mut self, dir_ptr: u64, dir_len: i64, v: &mut dyn Visitor) {
        self.s.dir_len = dir_len.max(0) as u64;
        if dir_len < 0 || dir_len as u64 > MAX_DIR {
            self.h.corrupt(format!("impossible directory length {dir_len}"));
            return;
        }
        let gd = self.s.global_depth;
        if gd >= 64 || 1u64 << gd != dir_len as u64 {
            self.h.corrupt(format!("directory length {dir_len} does not match global depth {gd} (expected 2^{gd})"));
        }
        let dir = match self.mem.bytes(dir_ptr, dir_len as usize * 8) {
            Ok(d) => d.into_owned(),
            Err(e) => {
                self.h.corrupt(format!("the directory at {dir_ptr:#x} is unreadable: {e}"));
                return;
            }
        };
        self.h.bytes += dir_len as u64 * 8;
        // Run-length deduplication: a table fills a contiguous run of directory entries.
        let mut runs: Vec<(u64, u64, u64)> = Vec::new();
        for i in 0..dir_len as usize {
            let p = le_uint(&dir, i * 8, 8);
            match runs.last_mut() {
                Some((q, _, n)) if *q == p => *n += 1,
                _ => runs.push((p, i as u64, 1)),
            }
        }
        let mut seen = HashSet::new();
        for (ordinal, (tp, first, count)) in runs.into_iter().enumerate() {
            if interrupted() || self.done {
                return;
            }
            if !seen.insert(tp) {
                self.h.corrupt(format!("table {tp:#x} appears in two separate runs of the directory"));
                continue;
            }
            if tp == 0 {
                self.h.corrupt(format!("directory entries {first}..{} are nil", first + count));
                continue;
            }
            self.table(ordinal, tp, first, count, v);
        }
        if changed_since(self.mem, dir_ptr, &dir) {
            self.changed += 1;
        }
    }

    fn table(&mut self, ordinal: usize, tp: u64, first: u64, count: u64, v: &mut dyn Visitor) {
        let l = self.l;
        let tb = match self.mem.bytes(tp, l.table_size as usize) {
            Ok(b) => b.into_owned(),
            Err(e) => {
                self.h.corrupt(format!("table {tp:#x} is unreadable: {e}"));
                return;
            }
        };
        let mut ti = TableInfo {
            ordinal,
            addr: tp,
            dir_first: first,
            dir_count: count,
            used: l.t_used.get(&tb),
            capacity: l.t_capacity.get(&tb),
            growth_left: l.t_growth_left.get(&tb),
            local_depth: l.t_local_depth.get(&tb),
            index: l.t_index.get(&tb) as i64,
            ..Default::default()
        };
        let data = l.t_groups_data.get(&tb);
        let mask = l.t_groups_mask.get(&tb);
        self.s.tables += 1;
        self.h.bytes += l.table_size;
        let gd = self.s.global_depth;
        if ti.local_depth > gd || (gd < 64 && ti.local_depth <= gd && count != 1u64 << (gd - ti.local_depth)) {
            self.h.corrupt(format!(
                "table {tp:#x} has local depth {} but fills {count} directory entries (global depth {gd})",
                ti.local_depth
            ));
        }
        let ngroups = mask.wrapping_add(1);
        if mask == u64::MAX || !ngroups.is_power_of_two() || ngroups > MAX_TABLE_GROUPS {
            self.h.corrupt(format!("table {tp:#x} has an impossible group count (lengthMask {mask:#x})"));
            v.swiss_table(&ti);
            return;
        }
        if ti.capacity != ngroups * 8 {
            self.h.corrupt(format!("table {tp:#x}: capacity {} != {ngroups} groups x 8 slots", ti.capacity));
        }
        ti.groups = ngroups;
        if self.s.table_list.len() < super::MAX_OBJECTS {
            self.s.table_list.push((tp, data, ngroups));
        }
        self.s.groups += ngroups;
        self.s.capacity += ngroups * 8;
        self.s.growth_left += ti.growth_left;
        if v.wants_buckets() {
            v.swiss_table(&ti);
        }
        let gs = l.group_size;
        let per_chunk = (CHUNK_BYTES / gs.max(1)).max(1);
        let mut g = 0u64;
        let (live0, del0) = (self.h.live, self.h.deleted);
        while g < ngroups {
            if interrupted() || self.done || self.visited > MAX_BUCKETS {
                break;
            }
            let k = per_chunk.min(ngroups - g);
            let at = data.wrapping_add(g * gs);
            let mut buf = std::mem::take(&mut self.chunk);
            let (chunk, copied) = match read_chunk(self.mem, at, (k * gs) as usize, &mut buf) {
                Ok(b) => b,
                Err(e) => {
                    self.h.corrupt(format!("groups of table {tp:#x} are unreadable at group {g}: {e}"));
                    self.chunk = buf;
                    break;
                }
            };
            for j in 0..k {
                let gb = &chunk[(j * gs) as usize..((j + 1) * gs) as usize];
                self.group(gb, at.wrapping_add(j * gs), Some(ordinal), g + j, v);
            }
            if changed_since(self.mem, at, &chunk) {
                self.changed += 1;
            }
            drop(chunk);
            self.chunk = buf;
            if !copied {
                self.mem.release(at, (k * gs) as usize);
            }
            g += k;
        }
        if changed_since(self.mem, tp, &tb) {
            self.changed += 1;
        }
        let full = self.h.live - live0;
        let deleted = self.h.deleted - del0;
        if full != ti.used && !self.done {
            self.h.corrupt(format!("table {tp:#x}: used says {} but {full} slots are full", ti.used));
        }
        if ti.growth_left == 0 && deleted > 0 {
            self.s.exhausted_tables += 1;
        }
        let share = |d: u64, n: u64| if n == 0 { 0.0 } else { d as f64 / n as f64 };
        if deleted > 0 && share(deleted, ngroups * 8) > share(self.s.worst_table_deleted, self.s.worst_table_slots) {
            self.s.worst_table_deleted = deleted;
            self.s.worst_table_slots = ngroups * 8;
            self.s.worst_table_addr = tp;
        }
    }

    fn group(&mut self, g: &[u8], addr: u64, table: Option<usize>, index: u64, v: &mut dyn Visitor) {
        self.visited += 1;
        self.h.bytes += self.l.group_size;
        self.h.slots += 8;
        let co = self.l.ctrl.offset as usize;
        let mut ctrl = [0u8; 8];
        ctrl.copy_from_slice(&g[co..co + 8]);
        if v.wants_buckets() {
            v.swiss_group(table, index, addr, &ctrl);
        }
        let (mut full, mut deleted) = (0u64, 0u64);
        let sl = &self.l.slots;
        if self.want_entries {
            let mask = ctrl.iter().enumerate().fold(0u8, |m, (i, &c)| if c & 0x80 == 0 { m | 1 << i } else { m });
            prefetch_slots(self.mem, v, g, sl, mask);
        }
        for (i, &c) in ctrl.iter().enumerate() {
            match c {
                CTRL_EMPTY => self.h.empty += 1,
                CTRL_DELETED => deleted += 1,
                c if c & 0x80 == 0 => {
                    full += 1;
                    if sl.key_indirect || sl.elem_indirect {
                        self.h.sample_indirect(g, sl, i as u64);
                    }
                    if self.want_entries {
                        let ko = (sl.key_base + i as u64 * sl.key_stride) as usize;
                        let eo = (sl.elem_base + i as u64 * sl.elem_stride) as usize;
                        let kin = g.get(ko..).unwrap_or(&[]);
                        let ein = g.get(eo..).unwrap_or(&[]);
                        let (mut kb, mut eb) = (std::mem::take(&mut self.kbuf), std::mem::take(&mut self.ebuf));
                        let key = slot_bytes(self.mem, kin, sl.key_indirect, self.m.key_size, &mut kb);
                        let elem = slot_bytes(self.mem, ein, sl.elem_indirect, self.m.elem_size, &mut eb);
                        match (key, elem) {
                            (Some(k), Some(e)) => {
                                let ka = slot_addr(addr.wrapping_add(ko as u64), kin, sl.key_indirect);
                                let ea = slot_addr(addr.wrapping_add(eo as u64), ein, sl.elem_indirect);
                                if !v.entry_at(ka, ea, k, e) {
                                    self.want_entries = false;
                                    self.done = v.stop_when_done();
                                }
                            }
                            _ => self.h.corrupt(format!("slot {i} of group {addr:#x}: key or value unreadable")),
                        }
                        self.kbuf = kb;
                        self.ebuf = eb;
                    }
                }
                c => {
                    self.h.corrupt(format!("group {addr:#x} slot {i} has impossible control byte {c:#04x}"));
                }
            }
        }
        self.h.live += full;
        self.h.deleted += deleted;
        if full == 0 && deleted > 0 {
            self.s.stale_groups += 1;
            self.s.stale_bytes += self.l.group_size;
        }
    }
}
