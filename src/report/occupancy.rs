//! The occupancy of one map, gathered in one walk with bounded memory: every bucket (classic) or group
//! (swiss) is folded into a cell of a strip. Small arrays keep every unit's slot states; large ones are
//! aggregated into runs of units whose length doubles whenever the strip would exceed `MAX_CELLS`.

use crate::decode::{classic, swiss, Health, TableInfo, Visitor};
use crate::layout::{Impl, MapType};

/// Slot states drawn in a picture (indexes into `Cell::slots`).
pub const LIVE: usize = 0;
pub const DELETED: usize = 1;
pub const EMPTY: usize = 2;
pub const EVAC_X: usize = 3;
pub const EVAC_Y: usize = 4;
pub const EVAC_EMPTY: usize = 5;
pub const BAD: usize = 6;
pub const NSTATES: usize = 7;

/// Most cells per strip: a 1M-entry map is drawn in at most this many cells.
pub const MAX_CELLS: usize = 512;
/// Arrays up to this many buckets or groups are drawn slot by slot.
pub const MAX_DETAIL: usize = 256;
/// Overflow buckets kept per bucket in the detailed picture (the rest are counted).
pub const DETAIL_CHAIN: usize = 3;
/// Swiss tables whose headers are kept for labels.
pub const MAX_TABLES: usize = 64;

fn state_of(letter: char) -> u8 {
    (match letter {
        'L' | 'F' => LIVE,
        'd' => DELETED,
        '_' => EMPTY,
        'x' => EVAC_X,
        'y' => EVAC_Y,
        'e' => EVAC_EMPTY,
        _ => BAD,
    }) as u8
}

/// A run of consecutive buckets or groups (with their overflow chains).
#[derive(Clone, Debug, Default)]
pub struct Cell {
    /// Array buckets or groups in this run.
    pub units: u64,
    /// Slot states of those units and of their overflow buckets.
    pub slots: [u64; NSTATES],
    /// Overflow buckets hanging off this run.
    pub overflow: u64,
}

impl Cell {
    fn add(&mut self, o: &Cell) {
        self.units += o.units;
        self.overflow += o.overflow;
        for i in 0..NSTATES {
            self.slots[i] += o.slots[i];
        }
    }
    pub fn total_slots(&self) -> u64 {
        self.slots.iter().sum()
    }
}

/// One bucket or group of a detailed picture: its 8 slot states and the first overflow buckets.
#[derive(Clone, Debug)]
pub struct Unit {
    pub states: [u8; 8],
    pub chain: Vec<[u8; 8]>,
    pub chain_len: u64,
}

/// One array: the current buckets, the old buckets, or every swiss group in walk order.
#[derive(Clone, Debug)]
pub struct Strip {
    pub units: u64,
    pub overflow: u64,
    /// Units per cell.
    pub run: u64,
    pub cells: Vec<Cell>,
    /// Every unit, while the strip has at most `MAX_DETAIL`.
    pub detail: Option<Vec<Unit>>,
    pub totals: Cell,
    /// The part of `totals` that is in overflow buckets.
    pub overflow_totals: Cell,
}

impl Default for Strip {
    fn default() -> Self {
        Strip { units: 0, overflow: 0, run: 1, cells: Vec::new(), detail: Some(Vec::new()), totals: Cell::default(), overflow_totals: Cell::default() }
    }
}

impl Strip {
    fn push(&mut self, index: u64, overflow: bool, st: [u8; 8]) {
        while index / self.run >= MAX_CELLS as u64 {
            self.merge();
        }
        let ci = (index / self.run) as usize;
        if self.cells.len() <= ci {
            self.cells.resize(ci + 1, Cell::default());
        }
        let mut one = Cell::default();
        for s in st {
            one.slots[s as usize] += 1;
        }
        if overflow {
            one.overflow = 1;
            self.overflow += 1;
            self.overflow_totals.add(&one);
        } else {
            one.units = 1;
            self.units = self.units.max(index + 1);
        }
        self.cells[ci].add(&one);
        self.totals.add(&one);
        let mut too_many = false;
        if let Some(d) = self.detail.as_mut() {
            if overflow {
                if let Some(u) = d.last_mut() {
                    u.chain_len += 1;
                    if u.chain.len() < DETAIL_CHAIN {
                        u.chain.push(st);
                    }
                }
            } else if d.len() >= MAX_DETAIL {
                too_many = true;
            } else {
                d.push(Unit { states: st, chain: Vec::new(), chain_len: 0 });
            }
        }
        if too_many {
            self.detail = None;
        }
    }

    fn merge(&mut self) {
        let cells = std::mem::take(&mut self.cells);
        self.cells = cells
            .chunks(2)
            .map(|p| {
                let mut c = p[0].clone();
                if let Some(b) = p.get(1) {
                    c.add(b);
                }
                c
            })
            .collect();
        self.run *= 2;
    }

    /// Slots whose entry is live, and all slots.
    pub fn live_share(&self) -> (u64, u64) {
        (self.totals.slots[LIVE], self.totals.total_slots())
    }
}

/// A swiss table as labelled in the picture: where its groups start in the strip.
#[derive(Clone, Debug)]
pub struct TableMark {
    pub first_unit: u64,
    pub info: TableInfo,
}

/// The whole picture's data: strips, tables, and the sizes needed to say where the bytes are.
#[derive(Clone, Debug)]
pub struct Occupancy {
    pub classic: bool,
    /// Bytes of one bucket or group.
    pub unit_bytes: u64,
    pub header_bytes: u64,
    pub table_bytes: u64,
    pub new: Strip,
    pub old: Strip,
    pub tables: Vec<TableMark>,
    pub tables_total: u64,
    next_group: u64,
}

impl Occupancy {
    pub fn new(m: &MapType) -> Occupancy {
        let (classic, unit_bytes, header_bytes, table_bytes) = match &m.imp {
            Impl::Classic(c) => (true, c.bucket_size, c.header_size, 0),
            Impl::Swiss(s) => (false, s.group_size, s.header_size, s.table_size),
        };
        Occupancy { classic, unit_bytes, header_bytes, table_bytes, new: Strip::default(), old: Strip::default(), tables: Vec::new(), tables_total: 0, next_group: 0 }
    }

    /// The memory of the map in parts: (label, bytes, live slots, slots). Slots are 0 for parts that
    /// hold no entries (header, tables, directory).
    pub fn parts(&self, h: &Health) -> Vec<(&'static str, u64, u64, u64)> {
        let ub = self.unit_bytes;
        let mut p = Vec::new();
        if self.classic {
            let (l, s) = self.new.live_share();
            let o = &self.new.overflow_totals;
            let (lo, so) = (o.slots[LIVE], o.total_slots());
            p.push(("buckets", self.new.units * ub, l - lo, s - so));
            if self.new.overflow > 0 {
                p.push(("overflow buckets", self.new.overflow * ub, lo, so));
            }
            if self.old.units > 0 {
                let (l, s) = self.old.live_share();
                p.push(("old buckets (growing)", (self.old.units + self.old.overflow) * ub, l, s));
            }
        } else {
            let (l, s) = self.new.live_share();
            p.push(("groups", self.new.units * ub, l, s));
            let tables = self.tables_total * self.table_bytes;
            if tables > 0 {
                p.push(("tables", tables, 0, 0));
            }
        }
        p.retain(|x| x.1 > 0);
        let counted: u64 = p.iter().map(|x| x.1).sum();
        // Whatever else the walk counted (header, directory, extra): memory without entries.
        let rest = h.bytes.saturating_sub(counted).max(self.header_bytes.min(h.bytes));
        if rest > 0 {
            p.push(("header and other", rest, 0, 0));
        }
        p
    }
}

impl Visitor for Occupancy {
    fn wants_buckets(&self) -> bool {
        true
    }
    fn classic_bucket(&mut self, old: bool, index: u64, chain: u32, _addr: u64, tophash: &[u8; 8]) {
        let st = tophash.map(|b| state_of(classic::state_letter(b)));
        let strip = if old { &mut self.old } else { &mut self.new };
        strip.push(index, chain > 0, st);
    }
    fn swiss_table(&mut self, t: &TableInfo) {
        self.tables_total += 1;
        if self.tables.len() < MAX_TABLES {
            self.tables.push(TableMark { first_unit: self.next_group, info: t.clone() });
        }
    }
    fn swiss_group(&mut self, _table: Option<usize>, _group: u64, _addr: u64, ctrl: &[u8; 8]) {
        let st = ctrl.map(|b| state_of(swiss::state_letter(b)));
        self.new.push(self.next_group, false, st);
        self.next_group += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_stay_bounded_and_keep_totals() {
        let mut s = Strip::default();
        let n = 1_000_000u64;
        for i in 0..n {
            let st = if i % 3 == 0 { [LIVE as u8; 8] } else { [EMPTY as u8; 8] };
            s.push(i, false, st);
            if i % 1000 == 0 {
                s.push(i, true, [DELETED as u8; 8]);
            }
        }
        assert!(s.cells.len() <= MAX_CELLS);
        assert!(s.detail.is_none());
        assert_eq!(s.units, n);
        assert_eq!(s.overflow, 1000);
        let sum: u64 = s.cells.iter().map(|c| c.units).sum();
        assert_eq!(sum, n);
        assert_eq!(s.totals.slots[LIVE], n.div_ceil(3) * 8);
        assert_eq!(s.totals.slots[DELETED], 8000);
    }

    #[test]
    fn small_strips_keep_every_slot() {
        let mut s = Strip::default();
        s.push(0, false, [LIVE as u8; 8]);
        s.push(0, true, [DELETED as u8; 8]);
        s.push(1, false, [EMPTY as u8; 8]);
        let d = s.detail.as_ref().map(|d| d.len());
        assert_eq!(d, Some(2));
        assert_eq!(s.detail.as_ref().map(|d| d[0].chain_len), Some(1));
    }
}
