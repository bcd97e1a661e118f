//! Classic Go maps (runtime.hmap, Go <= 1.23 and GOEXPERIMENT=noswissmap).
//!
//! Entries are the live slots (tophash >= minTopHash) of every bucket chain in `buckets` and, while
//! the map grows, in `oldbuckets`. Evacuation marks each old slot evacuatedX/Y before it copies the
//! entry, so a live slot exists in exactly one of the two arrays: walking both yields every entry
//! exactly once without computing Go's hash function.

use super::{changed_message, changed_since, interrupted, prefetch_slots, read_chunk, slot_addr, slot_bytes, ClassicStats, Health, Visitor, CHUNK_BYTES, MAX_BUCKETS, MAX_CHAIN};
use crate::error::{Error, Result};
use crate::layout::{ClassicLayout, MapType};
use crate::memory::{Memory, MemoryExt};
use std::collections::HashSet;

pub const EMPTY_REST: u8 = 0;
pub const EMPTY_ONE: u8 = 1;
pub const EVACUATED_X: u8 = 2;
pub const EVACUATED_Y: u8 = 3;
pub const EVACUATED_EMPTY: u8 = 4;
pub const MIN_TOP_HASH: u8 = 5;

pub const FLAG_ITERATOR: u64 = 1;
pub const FLAG_OLD_ITERATOR: u64 = 2;
pub const FLAG_HASH_WRITING: u64 = 4;
pub const FLAG_SAME_SIZE_GROW: u64 = 8;

/// The largest B a real map can have: 2^B buckets of at least 80 bytes must fit in memory.
const MAX_B: u64 = 40;

/// State letter of a tophash byte, for bucket dumps.
pub fn state_letter(top: u8) -> char {
    match top {
        EMPTY_REST => '_',
        EMPTY_ONE => 'd',
        EVACUATED_X => 'x',
        EVACUATED_Y => 'y',
        EVACUATED_EMPTY => 'e',
        _ => 'L',
    }
}

struct Walker<'a> {
    mem: &'a dyn Memory,
    m: &'a MapType,
    c: &'a ClassicLayout,
    h: Health,
    s: ClassicStats,
    want_entries: bool,
    visited: u64,
    /// Evacuation marks found in the current array, where only old buckets can have them.
    misplaced_evacuated: u64,
    /// Live targets: regions that read differently after they were decoded.
    changed: u64,
    kbuf: Vec<u8>,
    ebuf: Vec<u8>,
    /// The visitor has its entries and wants no more of the walk (`Visitor::stop_when_done`).
    done: bool,
    /// The bulk read of bucket arrays, when the source reads them from its file (`read_chunk`).
    chunk: Vec<u8>,
}

pub fn walk(mem: &dyn Memory, m: &MapType, c: &ClassicLayout, addr: u64, v: &mut dyn Visitor) -> Result<Health> {
    let mut h = Health { imp: "classic", address: addr, ..Default::default() };
    if addr == 0 {
        h.classic = Some(ClassicStats { bucket_size: c.bucket_size, ..Default::default() });
        return Ok(h);
    }
    let hdr = mem
        .bytes(addr, c.header_size as usize)
        .map_err(|e| Error::Expr(format!("map header at {addr:#x} is unreadable: {e}")))?;
    let mut s = ClassicStats {
        b: c.b.get(&hdr),
        flags: c.flags.get(&hdr),
        noverflow: c.noverflow.get(&hdr),
        bucket_size: c.bucket_size,
        oldbuckets: c.oldbuckets.get(&hdr),
        nevacuate: c.nevacuate.get(&hdr),
        ..Default::default()
    };
    h.len = c.count.get(&hdr);
    h.writing = s.flags & FLAG_HASH_WRITING != 0;
    h.iterating = s.flags & (FLAG_ITERATOR | FLAG_OLD_ITERATOR) != 0;
    h.bytes = c.header_size;
    let buckets = c.buckets.get(&hdr);
    s.buckets_addr = buckets;
    let want_entries = v.wants_entries();
    let mut w = Walker { mem, m, c, h, s, want_entries, visited: 0, misplaced_evacuated: 0, changed: 0, kbuf: Vec::new(), ebuf: Vec::new(), done: false, chunk: Vec::new() };
    if w.s.b > MAX_B {
        w.h.corrupt(format!("impossible B = {} (a map cannot have 2^{} buckets)", w.s.b, w.s.b));
        w.h.classic = Some(w.s);
        return Ok(w.h);
    }
    let nb = 1u64 << w.s.b;
    w.s.buckets = nb;
    w.s.same_size_grow = w.s.flags & FLAG_SAME_SIZE_GROW != 0;
    if buckets != 0 {
        w.array(buckets, nb, false, v);
    } else if h_len(&w) > 0 {
        w.h.corrupt(format!("count is {} but the bucket array pointer is nil", w.h.len));
    }
    if w.s.oldbuckets != 0 {
        let old_nb = if w.s.same_size_grow { nb } else { nb / 2 };
        if old_nb == 0 {
            w.h.corrupt("oldbuckets is set but B = 0 leaves no old array size");
        } else {
            w.s.old_buckets = old_nb;
            if w.s.nevacuate > old_nb {
                w.h.corrupt(format!("nevacuate {} is beyond the {} old buckets", w.s.nevacuate, old_nb));
            }
            let before = w.h.bytes;
            w.array(w.s.oldbuckets, old_nb, true, v);
            w.s.old_bytes = w.h.bytes - before;
        }
    }
    if changed_since(mem, addr, &hdr) {
        w.changed += 1;
    }
    if w.changed > 0 {
        w.h.corrupt(changed_message(w.changed));
    }
    if w.misplaced_evacuated > 0 {
        w.h.corrupt(format!(
            "{} slots of the current bucket array carry evacuation marks (tophash 2-4), which only old buckets can have",
            w.misplaced_evacuated
        ));
    }
    if w.h.live != w.h.len && !interrupted() && !w.done {
        let why = if mem.is_live() { " (the map changed while it was read)" } else { "" };
        w.h.corrupt(format!("count says {} entries but {} live slots were found{why}", w.h.len, w.h.live));
    }
    w.h.classic = Some(w.s);
    Ok(w.h)
}

fn h_len(w: &Walker<'_>) -> u64 {
    w.h.len
}

impl Walker<'_> {
    fn array(&mut self, base: u64, n: u64, old: bool, v: &mut dyn Visitor) {
        let bs = self.c.bucket_size;
        if bs == 0 {
            return;
        }
        let per_chunk = (CHUNK_BYTES / bs).max(1);
        let mut i = 0u64;
        while i < n {
            if interrupted() || self.done {
                return;
            }
            if self.visited > MAX_BUCKETS {
                self.h.corrupt(format!("stopped after {MAX_BUCKETS} buckets (the walk's limit)"));
                return;
            }
            let k = per_chunk.min(n - i);
            let at = base.wrapping_add(i * bs);
            let mut buf = std::mem::take(&mut self.chunk);
            let (chunk, copied) = match read_chunk(self.mem, at, (k * bs) as usize, &mut buf) {
                Ok(b) => b,
                Err(e) => {
                    self.h.corrupt(format!("{}bucket array is unreadable at bucket {i}: {e}", if old { "old " } else { "" }));
                    self.chunk = buf;
                    return;
                }
            };
            for j in 0..k {
                let b = &chunk[(j * bs) as usize..((j + 1) * bs) as usize];
                self.chain(b, at.wrapping_add(j * bs), old, i + j, v);
            }
            if changed_since(self.mem, at, &chunk) {
                self.changed += 1;
            }
            drop(chunk);
            self.chunk = buf;
            if !copied {
                self.mem.release(at, (k * bs) as usize);
            }
            i += k;
        }
    }

    /// A bucket and its overflow chain.
    fn chain(&mut self, first: &[u8], addr: u64, old: bool, index: u64, v: &mut dyn Visitor) {
        let bs = self.c.bucket_size;
        let mut tomb = 0u64;
        let evacuated = (EVACUATED_X..=EVACUATED_EMPTY).contains(&first[self.c.tophash as usize]);
        if old && evacuated {
            self.s.evacuated_old += 1;
        }
        let (_, d) = self.bucket(first, addr, old, index, 0, v);
        tomb += d;
        let mut len = 1u64;
        let mut next = self.c.overflow.get(first);
        let mut seen: Vec<u64> = Vec::new();
        let mut seen_set: HashSet<u64> = HashSet::new();
        let mut buf = Vec::new();
        while next != 0 {
            if len as u32 > MAX_CHAIN || self.visited > MAX_BUCKETS {
                self.h.corrupt(format!("overflow chain of bucket {index} is longer than {MAX_CHAIN}"));
                break;
            }
            // Cycle detection: a short linear list, then a set for long chains.
            let cycle = if seen.len() < 64 {
                let c = seen.contains(&next) || next == addr;
                seen.push(next);
                c
            } else {
                !seen_set.insert(next)
            };
            if cycle {
                self.h.corrupt(format!("overflow chain of bucket {index} loops back to {next:#x}"));
                break;
            }
            buf.resize(bs as usize, 0);
            if let Err(e) = self.mem.read(next, &mut buf) {
                self.h.corrupt(format!("overflow bucket {next:#x} of bucket {index} is unreadable: {e}"));
                break;
            }
            let b = std::mem::take(&mut buf);
            let (l, d) = self.bucket(&b, next, old, index, len as u32, v);
            if self.s.overflow_list.len() < super::MAX_OBJECTS {
                self.s.overflow_list.push(super::OverflowBucket { addr: next, old, live: l > 0 });
            }
            if !old && l == 0 {
                self.s.stale_buckets += 1;
                self.s.stale_bytes += bs;
            }
            if changed_since(self.mem, next, &b) {
                self.changed += 1;
            }
            tomb += d;
            if old {
                self.s.old_overflow_buckets += 1;
            } else {
                self.s.overflow_buckets += 1;
            }
            len += 1;
            next = self.c.overflow.get(&b);
            buf = b;
        }
        if len > 1 && !old {
            self.s.chains_with_overflow += 1;
        }
        if !old {
            self.s.longest_chain = self.s.longest_chain.max(len);
        }
        if tomb > self.s.worst_chain_tombstones {
            self.s.worst_chain_tombstones = tomb;
            self.s.worst_chain_slots = len * 8;
        }
    }

    /// One bucket: counts its slots and hands live entries to the visitor. Returns (live, tombstones).
    fn bucket(&mut self, b: &[u8], addr: u64, old: bool, index: u64, chain: u32, v: &mut dyn Visitor) -> (u64, u64) {
        self.visited += 1;
        self.h.bytes += self.c.bucket_size;
        self.h.slots += 8;
        let th = self.c.tophash as usize;
        let mut tophash = [0u8; 8];
        tophash.copy_from_slice(&b[th..th + 8]);
        if v.wants_buckets() {
            v.classic_bucket(old, index, chain, addr, &tophash);
        }
        let (mut live, mut tomb) = (0, 0);
        let sl = &self.c.slots;
        if self.want_entries {
            let mask = tophash.iter().enumerate().fold(0u8, |m, (i, &t)| if t >= MIN_TOP_HASH { m | 1 << i } else { m });
            prefetch_slots(self.mem, v, b, sl, mask);
        }
        for (i, &top) in tophash.iter().enumerate() {
            match top {
                EMPTY_REST => self.h.empty += 1,
                EMPTY_ONE => {
                    self.h.deleted += 1;
                    tomb += 1;
                }
                EVACUATED_X | EVACUATED_Y => {
                    self.s.evacuated_slots += 1;
                    self.misplaced_evacuated += u64::from(!old);
                }
                EVACUATED_EMPTY => {
                    self.h.empty += 1;
                    self.misplaced_evacuated += u64::from(!old);
                }
                _ => {
                    live += 1;
                    if sl.key_indirect || sl.elem_indirect {
                        self.h.sample_indirect(b, sl, i as u64);
                    }
                    if self.want_entries {
                        let ko = (sl.key_base + i as u64 * sl.key_stride) as usize;
                        let eo = (sl.elem_base + i as u64 * sl.elem_stride) as usize;
                        let kin = b.get(ko..ko + sl.key_stride as usize).unwrap_or(&[]);
                        let ein = b.get(eo..eo + sl.elem_stride as usize).unwrap_or(&[]);
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
                            _ => self.h.corrupt(format!("slot {i} of bucket {addr:#x}: key or value unreadable")),
                        }
                        self.kbuf = kb;
                        self.ebuf = eb;
                    }
                }
            }
        }
        self.h.live += live;
        (live, tomb)
    }
}
