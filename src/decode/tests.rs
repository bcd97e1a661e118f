//! The decoders on hand-built memory: every layout feature and every kind of damage, with the
//! expected answer written down independently of the decoder (the fixture matrix proves the same
//! against real Go programs; these pin down the cases a real program rarely produces on demand).

use super::classic::{EMPTY_ONE, EMPTY_REST, EVACUATED_EMPTY, EVACUATED_X, EVACUATED_Y, FLAG_SAME_SIZE_GROW};
use super::swiss::{CTRL_DELETED, CTRL_EMPTY};
use super::*;
use crate::memory::image::ImageMemory;

fn classic_type(indirect_key: bool) -> MapType {
    crate::layout::reference::classic(indirect_key, 200)
}

fn swiss_type(split: bool) -> MapType {
    crate::layout::reference::swiss(split)
}

fn put(buf: &mut [u8], at: u64, size: u64, v: u64) {
    buf[at as usize..(at + size) as usize].copy_from_slice(&v.to_le_bytes()[..size as usize]);
}

/// A classic bucket: `slots[i] = Some((tophash, key, elem))` or `None` with the given empty tophash.
fn bucket(slots: &[(u8, u64, u64)], overflow: u64) -> Vec<u8> {
    let mut b = vec![0u8; 144];
    for (i, &(top, k, e)) in slots.iter().enumerate() {
        b[i] = top;
        put(&mut b, 8 + 8 * i as u64, 8, k);
        put(&mut b, 72 + 8 * i as u64, 8, e);
    }
    put(&mut b, 136, 8, overflow);
    b
}

fn hmap(count: u64, flags: u8, b: u8, buckets: u64, oldbuckets: u64, nevacuate: u64) -> Vec<u8> {
    let mut h = vec![0u8; 48];
    put(&mut h, 0, 8, count);
    h[8] = flags;
    h[9] = b;
    put(&mut h, 16, 8, buckets);
    put(&mut h, 24, 8, oldbuckets);
    put(&mut h, 32, 8, nevacuate);
    h
}

/// A swiss group for `m`'s slot layout: each slot is (ctrl, key, elem).
fn group(m: &MapType, slots: &[(u8, u64, u64)]) -> Vec<u8> {
    let Impl::Swiss(s) = &m.imp else { unreachable!() };
    let mut g = vec![0u8; 136];
    g[..8].fill(CTRL_EMPTY);
    for (i, &(c, k, e)) in slots.iter().enumerate() {
        g[i] = c;
        put(&mut g, s.slots.key_base + i as u64 * s.slots.key_stride, 8, k);
        put(&mut g, s.slots.elem_base + i as u64 * s.slots.elem_stride, 8, e);
    }
    g
}

fn table(used: u16, capacity: u16, growth_left: u16, local_depth: u8, groups: u64, ngroups: u64) -> Vec<u8> {
    let mut t = vec![0u8; 32];
    put(&mut t, 0, 2, used as u64);
    put(&mut t, 2, 2, capacity as u64);
    put(&mut t, 4, 2, growth_left as u64);
    t[6] = local_depth;
    put(&mut t, 16, 8, groups);
    put(&mut t, 24, 8, ngroups.wrapping_sub(1));
    t
}

fn swiss_header(used: u64, dir_ptr: u64, dir_len: u64, global_depth: u8) -> Vec<u8> {
    let mut h = vec![0u8; 48];
    put(&mut h, 0, 8, used);
    put(&mut h, 16, 8, dir_ptr);
    put(&mut h, 24, 8, dir_len);
    h[32] = global_depth;
    h[33] = if global_depth == 0 { 0 } else { 64 - global_depth };
    h
}

/// Collects entries as (first 8 key bytes, first 8 elem bytes), and bucket/group callbacks.
#[derive(Default)]
struct Collect {
    entries: Vec<(u64, u64)>,
    stop_after: Option<usize>,
    buckets: Vec<(bool, u64, u32, u64)>,
    tables: Vec<TableInfo>,
    groups: usize,
}

impl Visitor for Collect {
    fn wants_entries(&self) -> bool {
        true
    }
    fn entry(&mut self, key: &[u8], elem: &[u8]) -> bool {
        self.entries.push((crate::memory::le_uint(key, 0, 8), crate::memory::le_uint(elem, 0, 8)));
        self.stop_after.map_or(true, |n| self.entries.len() < n)
    }
    fn wants_buckets(&self) -> bool {
        true
    }
    fn classic_bucket(&mut self, old: bool, index: u64, chain: u32, addr: u64, _tophash: &[u8; 8]) {
        self.buckets.push((old, index, chain, addr));
    }
    fn swiss_table(&mut self, t: &TableInfo) {
        self.tables.push(t.clone());
    }
    fn swiss_group(&mut self, _table: Option<usize>, _group: u64, _addr: u64, _ctrl: &[u8; 8]) {
        self.groups += 1;
    }
}

fn run(mem: &ImageMemory, m: &MapType, addr: u64) -> (Health, Collect) {
    let mut v = Collect::default();
    let h = walk_memory(mem, m, addr, &mut v).expect("walk");
    (h, v)
}

fn sorted(mut e: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    e.sort();
    e
}

fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

const H: u64 = 0x1000;
const B0: u64 = 0x2000;
const OLD: u64 = 0x8000;
const OVF: u64 = 0xA000;

// ---- classic ------------------------------------------------------------------------------------

#[test]
fn classic_nil_map_is_empty() {
    let (h, v) = run(&ImageMemory::new(), &classic_type(false), 0);
    assert_eq!((h.len, h.live, h.slots), (0, 0, 0));
    assert!(v.entries.is_empty() && h.corrupt.is_empty());
}

#[test]
fn classic_single_bucket_with_tombstone_and_empty_rest() {
    let mut mem = ImageMemory::new();
    mem.map(H, hmap(3, 0, 0, B0, 0, 0));
    mem.map(B0, bucket(&[(9, 1, 10), (EMPTY_ONE, 99, 99), (200, 2, 20), (5, 3, 30), (EMPTY_REST, 0, 0)], 0));
    let (h, v) = run(&mem, &classic_type(false), H);
    assert_eq!(sorted(v.entries), vec![(1, 10), (2, 20), (3, 30)]);
    assert_eq!((h.len, h.live, h.deleted, h.empty, h.slots), (3, 3, 1, 4, 8));
    let c = h.classic.unwrap();
    assert_eq!((c.b, c.buckets, c.overflow_buckets, c.longest_chain), (0, 1, 0, 1));
    assert!(h.corrupt.is_empty(), "{:?}", h.corrupt);
}

#[test]
fn classic_overflow_chain_is_followed_and_counted() {
    let mut mem = ImageMemory::new();
    let full = |base: u64| (0..8).map(|i| (10 + i as u8, base + i, base + i + 1000)).collect::<Vec<_>>();
    mem.map(H, hmap(19, 0, 1, B0, 0, 0));
    mem.map(B0, concat(&[bucket(&full(0), OVF), bucket(&[(7, 100, 1100)], 0)]));
    mem.map(OVF, concat(&[bucket(&full(200), OVF + 144), bucket(&[(7, 300, 1300), (8, 301, 1301)], 0)]));
    let (h, v) = run(&mem, &classic_type(false), H);
    assert_eq!(v.entries.len(), 19);
    assert!(v.entries.contains(&(301, 1301)) && v.entries.contains(&(100, 1100)));
    let c = h.classic.unwrap();
    assert_eq!((c.buckets, c.overflow_buckets, c.longest_chain, c.chains_with_overflow), (2, 2, 3, 1));
    let chain: Vec<_> = v.buckets.iter().filter(|b| b.1 == 0).map(|b| (b.2, b.3)).collect();
    assert_eq!(chain, vec![(0, B0), (1, OVF), (2, OVF + 144)]);
    assert!(h.corrupt.is_empty(), "{:?}", h.corrupt);
}

/// A map caught mid-growth: old bucket 0 evacuated (its entries now live in the new array), old
/// bucket 1 not yet; every entry must come out exactly once.
#[test]
fn classic_growing_map_yields_each_entry_once() {
    let mut mem = ImageMemory::new();
    mem.map(H, hmap(5, 0, 2, B0, OLD, 1));
    mem.map(
        B0,
        concat(&[
            bucket(&[(20, 1, 10)], 0),
            bucket(&[], 0),
            bucket(&[(21, 2, 20), (22, 3, 30)], 0),
            bucket(&[], 0),
        ]),
    );
    mem.map(
        OLD,
        concat(&[
            bucket(&[(EVACUATED_X, 1, 10), (EVACUATED_Y, 2, 20), (EVACUATED_Y, 3, 30), (EVACUATED_EMPTY, 0, 0)], 0),
            bucket(&[(30, 4, 40), (31, 5, 50)], 0),
        ]),
    );
    let (h, v) = run(&mem, &classic_type(false), H);
    assert_eq!(sorted(v.entries), vec![(1, 10), (2, 20), (3, 30), (4, 40), (5, 50)]);
    let c = h.classic.unwrap();
    assert_eq!((c.buckets, c.old_buckets, c.evacuated_old, c.nevacuate, c.evacuated_slots), (4, 2, 1, 1, 3));
    assert_eq!(c.old_bytes, 2 * 144);
    assert!(v.buckets.iter().filter(|b| b.0).count() == 2);
    assert!(h.corrupt.is_empty(), "{:?}", h.corrupt);
}

#[test]
fn classic_same_size_grow_has_as_many_old_buckets_as_new() {
    let mut mem = ImageMemory::new();
    mem.map(H, hmap(1, FLAG_SAME_SIZE_GROW as u8, 1, B0, OLD, 0));
    mem.map(B0, concat(&[bucket(&[], 0), bucket(&[], 0)]));
    mem.map(OLD, concat(&[bucket(&[(EMPTY_ONE, 0, 0), (9, 7, 70)], 0), bucket(&[], 0)]));
    let (h, v) = run(&mem, &classic_type(false), H);
    assert_eq!(v.entries, vec![(7, 70)]);
    let c = h.classic.unwrap();
    assert!(c.same_size_grow);
    assert_eq!(c.old_buckets, 2);
}

#[test]
fn classic_indirect_keys_are_read_behind_their_pointers() {
    let mut mem = ImageMemory::new();
    let (k1, k2) = (0x5000u64, 0x5100u64);
    let mut key = vec![0u8; 200];
    put(&mut key, 0, 8, 41);
    key[199] = 0xEE;
    mem.map(k1, key.clone());
    put(&mut key, 0, 8, 42);
    mem.map(k2, key);
    mem.map(H, hmap(2, 0, 0, B0, 0, 0));
    mem.map(B0, bucket(&[(8, k1, 1), (9, k2, 2)], 0));
    let m = classic_type(true);
    let mut seen = Vec::new();
    struct Keys<'a>(&'a mut Vec<(usize, u64, u8)>);
    impl Visitor for Keys<'_> {
        fn wants_entries(&self) -> bool {
            true
        }
        fn entry(&mut self, key: &[u8], _elem: &[u8]) -> bool {
            self.0.push((key.len(), crate::memory::le_uint(key, 0, 8), key[199]));
            true
        }
    }
    let h = walk_memory(&mem, &m, H, &mut Keys(&mut seen)).unwrap();
    assert_eq!(seen, vec![(200, 41, 0xEE), (200, 42, 0xEE)]);
    assert!(h.corrupt.is_empty(), "{:?}", h.corrupt);
}

#[test]
fn classic_dangling_indirect_key_is_corrupt_not_fatal() {
    let mut mem = ImageMemory::new();
    mem.map(H, hmap(1, 0, 0, B0, 0, 0));
    mem.map(B0, bucket(&[(8, 0xdead_0000, 1)], 0));
    let (h, v) = run(&mem, &classic_type(true), H);
    assert!(v.entries.is_empty());
    assert!(h.corrupt.iter().any(|c| c.contains("key or value unreadable")), "{:?}", h.corrupt);
}

#[test]
fn classic_overflow_cycle_is_reported_and_ends() {
    let mut mem = ImageMemory::new();
    mem.map(H, hmap(2, 0, 0, B0, 0, 0));
    mem.map(B0, bucket(&[(8, 1, 1)], OVF));
    mem.map(OVF, bucket(&[(9, 2, 2)], B0)); // points back at the array bucket
    let (h, v) = run(&mem, &classic_type(false), H);
    assert_eq!(sorted(v.entries), vec![(1, 1), (2, 2)]);
    assert!(h.corrupt.iter().any(|c| c.contains("loops back")), "{:?}", h.corrupt);
}

#[test]
fn classic_impossible_b_is_corrupt_without_reading() {
    let mut mem = ImageMemory::new();
    mem.map(H, hmap(1, 0, 60, B0, 0, 0));
    let (h, v) = run(&mem, &classic_type(false), H);
    assert!(v.entries.is_empty());
    assert!(h.corrupt.iter().any(|c| c.contains("impossible B = 60")), "{:?}", h.corrupt);
}

#[test]
fn classic_count_mismatch_and_unreadable_array_are_reported() {
    let mut mem = ImageMemory::new();
    mem.map(H, hmap(1000, 0, 0, B0, 0, 0));
    mem.map(B0, bucket(&[(8, 1, 1)], 0));
    let (h, _) = run(&mem, &classic_type(false), H);
    assert!(h.corrupt.iter().any(|c| c.contains("count says 1000 entries but 1 live")), "{:?}", h.corrupt);

    let mut mem = ImageMemory::new();
    mem.map(H, hmap(1, 0, 3, 0x7777_0000, 0, 0));
    let (h, _) = run(&mem, &classic_type(false), H);
    assert!(h.corrupt.iter().any(|c| c.contains("unreadable at bucket 0")), "{:?}", h.corrupt);
}

#[test]
fn unreadable_header_is_an_error() {
    let mut v = Collect::default();
    assert!(walk_memory(&ImageMemory::new(), &classic_type(false), H, &mut v).is_err());
    assert!(walk_memory(&ImageMemory::new(), &swiss_type(false), H, &mut v).is_err());
}

#[test]
fn a_visitor_can_stop_early() {
    let mut mem = ImageMemory::new();
    mem.map(H, hmap(8, 0, 0, B0, 0, 0));
    mem.map(B0, bucket(&(0..8).map(|i| (10, i, i)).collect::<Vec<_>>(), 0));
    let mut v = Collect { stop_after: Some(3), ..Default::default() };
    let h = walk_memory(&mem, &classic_type(false), H, &mut v).unwrap();
    assert_eq!(v.entries.len(), 3);
    assert_eq!(h.live, 8, "health still covers the whole map");
}

// ---- swiss --------------------------------------------------------------------------------------

const DIR: u64 = 0x3000;
const T1: u64 = 0x4000;
const T2: u64 = 0x4100;
const T3: u64 = 0x4200;
const G1: u64 = 0x10000;
const G2: u64 = 0x20000;
const G3: u64 = 0x30000;

#[test]
fn swiss_small_map_reads_its_single_group() {
    for split in [false, true] {
        let m = swiss_type(split);
        let mut mem = ImageMemory::new();
        mem.map(H, swiss_header(2, G1, 0, 0));
        mem.map(G1, group(&m, &[(0x11, 1, 10), (CTRL_DELETED, 9, 9), (0x7f, 2, 20)]));
        let (h, v) = run(&mem, &m, H);
        assert_eq!(sorted(v.entries), vec![(1, 10), (2, 20)], "split={split}");
        assert_eq!((h.live, h.deleted, h.empty, h.slots), (2, 1, 5, 8));
        let s = h.swiss.unwrap();
        assert!(s.small && s.groups == 1 && s.capacity == 8);
        assert!(h.corrupt.is_empty(), "{:?}", h.corrupt);
    }
}

/// Global depth 2, three tables: T1 (local depth 1) fills directory entries 0 and 1, T2 and T3 one
/// each. T1 must be read once.
fn directory_map(m: &MapType) -> ImageMemory {
    let mut mem = ImageMemory::new();
    mem.map(H, swiss_header(6, DIR, 4, 2));
    let mut dir = vec![0u8; 32];
    for (i, t) in [T1, T1, T2, T3].iter().enumerate() {
        put(&mut dir, 8 * i as u64, 8, *t);
    }
    mem.map(DIR, dir);
    mem.map(T1, table(3, 16, 4, 1, G1, 2));
    mem.map(T2, table(2, 8, 5, 2, G2, 1));
    mem.map(T3, table(1, 8, 0, 2, G3, 1));
    mem.map(G1, concat(&[group(m, &[(1, 1, 10), (2, 2, 20)]), group(m, &[(CTRL_DELETED, 0, 0), (3, 3, 30)])]));
    mem.map(G2, group(m, &[(4, 4, 40), (CTRL_DELETED, 0, 0), (5, 5, 50)]));
    mem.map(G3, group(m, &[(CTRL_DELETED, 0, 0), (CTRL_DELETED, 0, 0), (6, 6, 60)]));
    mem
}

#[test]
fn swiss_directory_dedupes_tables_and_counts_tombstones() {
    for split in [false, true] {
        let m = swiss_type(split);
        let (h, v) = run(&directory_map(&m), &m, H);
        assert_eq!(sorted(v.entries), (1..=6).map(|i| (i, i * 10)).collect::<Vec<_>>(), "split={split}");
        assert_eq!((h.live, h.deleted, h.slots), (6, 4, 32));
        let s = h.swiss.unwrap();
        assert_eq!((s.dir_len, s.tables, s.groups, s.capacity, s.growth_left), (4, 3, 4, 32, 9));
        assert_eq!(s.exhausted_tables, 1, "T3 has growthLeft 0 and tombstones");
        assert_eq!((s.worst_table_addr, s.worst_table_deleted, s.worst_table_slots), (T3, 2, 8));
        let runs: Vec<_> = v.tables.iter().map(|t| (t.addr, t.dir_first, t.dir_count, t.local_depth)).collect();
        assert_eq!(runs, vec![(T1, 0, 2, 1), (T2, 2, 1, 2), (T3, 3, 1, 2)]);
        assert_eq!(v.groups, 4);
        assert!(h.corrupt.is_empty(), "{:?}", h.corrupt);
    }
}

#[test]
fn swiss_stale_group_is_all_tombstones() {
    let m = swiss_type(false);
    let mut mem = ImageMemory::new();
    mem.map(H, swiss_header(1, DIR, 1, 0));
    let mut dir = vec![0u8; 8];
    put(&mut dir, 0, 8, T1);
    mem.map(DIR, dir);
    mem.map(T1, table(1, 16, 3, 0, G1, 2));
    mem.map(G1, concat(&[group(&m, &[(CTRL_DELETED, 0, 0); 8]), group(&m, &[(0x33, 1, 1)])]));
    let (h, _) = run(&mem, &m, H);
    let s = h.swiss.unwrap();
    assert_eq!((s.stale_groups, s.stale_bytes), (1, 136));
    assert_eq!(h.deleted, 8);
}

#[test]
fn swiss_damage_is_reported_not_fatal() {
    let m = swiss_type(false);

    // A directory whose length does not match the global depth, and a table repeated in two runs.
    let mut mem = directory_map(&m);
    let mut dir = vec![0u8; 32];
    for (i, t) in [T1, T2, T1, T3].iter().enumerate() {
        put(&mut dir, 8 * i as u64, 8, *t);
    }
    mem.map(DIR, dir);
    mem.map(H, swiss_header(6, DIR, 4, 3));
    let (h, _) = run(&mem, &m, H);
    assert!(h.corrupt.iter().any(|c| c.contains("does not match global depth 3")), "{:?}", h.corrupt);
    assert!(h.corrupt.iter().any(|c| c.contains("appears in two separate runs")), "{:?}", h.corrupt);

    // An impossible directory length is refused before anything is read.
    let mut mem = ImageMemory::new();
    mem.map(H, swiss_header(1, DIR, 1 << 40, 40));
    let (h, _) = run(&mem, &m, H);
    assert!(h.corrupt.iter().any(|c| c.contains("impossible directory length")), "{:?}", h.corrupt);

    // A table pointer into unmapped memory, an impossible group count, a bad control byte.
    let mut mem = directory_map(&m);
    let mut dir = vec![0u8; 32];
    for (i, t) in [T1, T1, 0x6666_0000, T3].iter().enumerate() {
        put(&mut dir, 8 * i as u64, 8, *t);
    }
    mem.map(DIR, dir);
    mem.map(T3, table(1, 8, 0, 2, G3, 3));
    mem.map(G1, concat(&[group(&m, &[(1, 1, 10), (0x81, 2, 20)]), group(&m, &[(CTRL_DELETED, 0, 0), (3, 3, 30)])]));
    let (h, v) = run(&mem, &m, H);
    assert_eq!(sorted(v.entries), vec![(1, 10), (3, 30)], "what can be read still is");
    for want in ["0x66660000", "impossible group count", "impossible control byte 0x81", "used says 6 entries"] {
        assert!(h.corrupt.iter().any(|c| c.contains(want)), "{want}: {:?}", h.corrupt);
    }
}

#[test]
fn swiss_small_map_without_group_but_with_entries_is_corrupt() {
    let m = swiss_type(false);
    let mut mem = ImageMemory::new();
    mem.map(H, swiss_header(3, 0, 0, 0));
    let (h, _) = run(&mem, &m, H);
    assert!(h.corrupt.iter().any(|c| c.contains("no group")), "{:?}", h.corrupt);
}

/// A visitor that wants one page of entries with their addresses, then nothing (the debuggers'
/// children): `entry_at` reports where each key and element is (behind the pointer for an indirect
/// key), and the walk ends at its next bulk read instead of visiting the rest of the map.
#[test]
fn entries_come_with_their_addresses_and_a_page_walk_stops_early() {
    struct Page {
        want: usize,
        got: Vec<(u64, u64, u64)>,
    }
    impl Visitor for Page {
        fn wants_entries(&self) -> bool {
            true
        }
        fn stop_when_done(&self) -> bool {
            true
        }
        fn entry_at(&mut self, ka: u64, ea: u64, key: &[u8], _elem: &[u8]) -> bool {
            if self.got.len() == self.want {
                return false;
            }
            self.got.push((ka, ea, crate::memory::le_uint(key, 0, 8)));
            true
        }
    }
    // Classic, indirect keys: key addresses are the pointed-to objects, elements are in the bucket.
    let mut mem = ImageMemory::new();
    let mut key = vec![0u8; 200];
    put(&mut key, 0, 8, 41);
    mem.map(0x5000, key);
    mem.map(H, hmap(1, 0, 0, B0, 0, 0));
    mem.map(B0, bucket(&[(8, 0x5000, 7)], 0));
    let mut v = Page { want: 10, got: Vec::new() };
    walk_memory(&mem, &classic_type(true), H, &mut v).unwrap();
    assert_eq!(v.got, vec![(0x5000, B0 + 72, 41)]);
    // Swiss, a directory of two tables with a full group each: one entry wanted, the second table
    // is never visited, and the partial walk is not reported as a count mismatch.
    let m = swiss_type(false);
    let Impl::Swiss(s) = &m.imp else { unreachable!() };
    let full: Vec<(u8, u64, u64)> = (0..8).map(|i| (i as u8, 100 + i, 200 + i)).collect();
    let (t0, t1, g0, g1, dir) = (0x7000u64, 0x7100u64, 0x8000u64, 0x9000u64, 0x6000u64);
    let mut mem = ImageMemory::new();
    mem.map(H, swiss_header(16, dir, 2, 1));
    mem.map(dir, concat(&[t0.to_le_bytes().to_vec(), t1.to_le_bytes().to_vec()]));
    mem.map(t0, table(8, 8, 0, 1, g0, 1));
    mem.map(t1, table(8, 8, 0, 1, g1, 1));
    mem.map(g0, group(&m, &full));
    mem.map(g1, group(&m, &full));
    let mut v = Page { want: 1, got: Vec::new() };
    let h = walk_memory(&mem, &m, H, &mut v).unwrap();
    assert_eq!(v.got, vec![(g0 + s.slots.key_base, g0 + s.slots.elem_base, 100)]);
    assert_eq!(h.live, 8, "the walk stopped after the first table");
    assert!(h.corrupt.is_empty(), "{:?}", h.corrupt);
    assert_eq!(h.len, 16);
}
