//! Property tests for hostile input, run by plain `cargo test` on stable (no fixtures needed):
//! synthetic classic and swiss maps in an `ImageMemory` (the layouts are the Go 1.23 hmap and the
//! Go 1.26 swiss map, written out by hand), synthetic ELF cores, and executables, all mutated by a
//! seeded generator. Seeds are fixed, so a failure names its case and reproduces exactly.
//!
//! Properties: valid maps decode exactly; no input panics; every walk is bounded; the counts a
//! walk reports are consistent; a header count that disagrees with the slots found is reported as
//! `corrupt`; the named corruptions of RELIABILITY.md produce the message that names them.

use gomap::binary::Binary;
use gomap::decode::{self, Health, Visitor};
use gomap::layout::{reference, MapType};
use gomap::memory::core::CoreMemory;
use gomap::memory::image::ImageMemory;
use gomap::memory::Memory;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    /// An "interesting" value: small, boundary, or random.
    fn interesting(&mut self) -> u64 {
        match self.below(6) {
            0 => self.below(16),
            1 => u64::MAX - self.below(4),
            2 => 1 << self.below(64),
            3 => (1 << self.below(64)) - 1,
            4 => i64::MAX as u64,
            _ => self.next(),
        }
    }
}

/// map[int64]int64 as Go 1.23 lays it out; with `indirect_key` the key is a 16-byte value stored
/// behind a pointer (as keys over 128 bytes are).
fn classic_type(indirect_key: bool) -> MapType {
    reference::classic(indirect_key, 16)
}

/// map[int64]int64 as Go 1.26 lays it out (slots [8]struct{key; elem}).
fn swiss_type() -> MapType {
    reference::swiss(false)
}

const HDR: u64 = 0x10_0000;
const ARR: u64 = 0x20_0000;
const OVF: u64 = 0x30_0000;
const KEYS: u64 = 0x40_0000;
const DIR: u64 = 0x50_0000;
const TABLES: u64 = 0x60_0000;
const GROUPS: u64 = 0x70_0000;

fn put(b: &mut [u8], at: usize, v: u64, size: usize) {
    b[at..at + size].copy_from_slice(&v.to_le_bytes()[..size]);
}

/// A valid classic map: (segments as (addr, bytes), expected entries).
fn classic_map(rng: &mut Rng, indirect_key: bool) -> (Vec<(u64, Vec<u8>)>, BTreeMap<i64, i64>) {
    let b = rng.below(4);
    let nb = 1u64 << b;
    let n = rng.below(nb * 13 / 2 + 1);
    let mut arr = vec![0u8; (nb * 144) as usize];
    let mut ovf: Vec<u8> = Vec::new();
    let mut keys: Vec<u8> = Vec::new();
    let mut want = BTreeMap::new();
    // Bucket i's chain, as byte offsets in (arr | ovf).
    let mut fill = vec![0usize; nb as usize];
    let mut tail: Vec<(bool, usize)> = (0..nb as usize).map(|i| (false, i * 144)).collect();
    for k in 0..n as i64 {
        let key = k * 7919 - 1000;
        let val = key.wrapping_mul(31);
        want.insert(key, val);
        let i = rng.below(nb) as usize;
        if fill[i] == 8 {
            let at = ovf.len();
            ovf.resize(at + 144, 0);
            let (in_ovf, t) = tail[i];
            let buf = if in_ovf { &mut ovf } else { &mut arr };
            put(buf, t + 136, OVF + at as u64, 8);
            tail[i] = (true, at);
            fill[i] = 0;
        }
        let (in_ovf, t) = tail[i];
        let slot = fill[i];
        fill[i] += 1;
        let kbytes = if indirect_key {
            let p = KEYS + keys.len() as u64;
            keys.extend_from_slice(&key.to_le_bytes());
            keys.extend_from_slice(&(!key).to_le_bytes());
            p
        } else {
            key as u64
        };
        let buf = if in_ovf { &mut ovf } else { &mut arr };
        buf[t + slot] = 5 + rng.below(251) as u8;
        put(buf, t + 8 + slot * 8, kbytes, 8);
        put(buf, t + 72 + slot * 8, val as u64, 8);
    }
    let mut hdr = vec![0u8; 48];
    put(&mut hdr, 0, n, 8);
    put(&mut hdr, 9, b, 1);
    put(&mut hdr, 16, ARR, 8);
    let mut segs = vec![(HDR, hdr), (ARR, arr)];
    if !ovf.is_empty() {
        segs.push((OVF, ovf));
    }
    if !keys.is_empty() {
        segs.push((KEYS, keys));
    }
    (segs, want)
}

/// A valid swiss map: small (dirLen 0) or a directory of tables with repeated entries.
fn swiss_map(rng: &mut Rng) -> (Vec<(u64, Vec<u8>)>, BTreeMap<i64, i64>) {
    let mut want = BTreeMap::new();
    let mut hdr = vec![0u8; 48];
    let mut segs = Vec::new();
    let mut next_key = 0i64;
    let mut fill_group = |g: &mut [u8], rng: &mut Rng, want: &mut BTreeMap<i64, i64>| -> u64 {
        let mut full = 0;
        for i in 0..8 {
            let c: u8 = match rng.below(4) {
                0 => 0x80,
                1 => 0xFE,
                _ => rng.below(128) as u8,
            };
            g[i] = c;
            if c & 0x80 == 0 {
                let key = next_key * 104729 - 77;
                next_key += 1;
                want.insert(key, !key);
                put(g, 8 + i * 16, key as u64, 8);
                put(g, 16 + i * 16, !key as u64, 8);
                full += 1;
            }
        }
        full
    };
    if rng.below(3) == 0 {
        let mut g = vec![0u8; 136];
        let used = fill_group(&mut g, rng, &mut want);
        put(&mut hdr, 0, used, 8);
        put(&mut hdr, 16, GROUPS, 8);
        segs.push((GROUPS, g));
    } else {
        let gd = rng.below(3);
        let dir_len = 1u64 << gd;
        let mut dir = vec![0u8; (dir_len * 8) as usize];
        let mut tables = Vec::new();
        let mut groups = Vec::new();
        let mut total = 0;
        let mut i = 0u64;
        while i < dir_len {
            // A table of local depth ld covers 2^(gd-ld) consecutive entries, aligned.
            let mut ld = gd - rng.below(gd + 1);
            while i % (1 << (gd - ld)) != 0 {
                ld += 1;
            }
            let span = 1u64 << (gd - ld);
            let ngroups = 1u64 << rng.below(3);
            let taddr = TABLES + tables.len() as u64;
            let gaddr = GROUPS + groups.len() as u64;
            let mut used = 0;
            for _ in 0..ngroups {
                let mut g = vec![0u8; 136];
                used += fill_group(&mut g, rng, &mut want);
                groups.extend_from_slice(&g);
            }
            total += used;
            let mut t = vec![0u8; 32];
            put(&mut t, 0, used, 2);
            put(&mut t, 2, ngroups * 8, 2);
            put(&mut t, 4, (ngroups * 7).saturating_sub(used), 2);
            put(&mut t, 6, ld, 1);
            put(&mut t, 8, i, 8);
            put(&mut t, 16, gaddr, 8);
            put(&mut t, 24, ngroups - 1, 8);
            tables.extend_from_slice(&t);
            for j in i..i + span {
                put(&mut dir, (j * 8) as usize, taddr, 8);
            }
            i += span;
        }
        put(&mut hdr, 0, total, 8);
        put(&mut hdr, 16, DIR, 8);
        put(&mut hdr, 24, dir_len, 8);
        put(&mut hdr, 32, gd, 1);
        segs.push((DIR, dir));
        segs.push((TABLES, tables));
        segs.push((GROUPS, groups));
    }
    segs.insert(0, (HDR, hdr));
    (segs, want)
}

fn image(segs: &[(u64, Vec<u8>)]) -> ImageMemory {
    let mut m = ImageMemory::new();
    for (a, b) in segs {
        m.map(*a, b.clone());
    }
    m
}

struct Collect<'a> {
    m: &'a MapType,
    mem: &'a dyn Memory,
    entries: Vec<(i64, i64)>,
    buckets: u64,
}

impl Visitor for Collect<'_> {
    fn wants_entries(&self) -> bool {
        true
    }
    fn entry(&mut self, k: &[u8], e: &[u8]) -> bool {
        assert_eq!(k.len() as u64, self.m.key_size);
        assert_eq!(e.len() as u64, self.m.elem_size);
        let _ = self.mem;
        self.entries.push((i64::from_le_bytes(k[..8].try_into().unwrap()), i64::from_le_bytes(e[..8].try_into().unwrap())));
        true
    }
    fn wants_buckets(&self) -> bool {
        true
    }
    fn classic_bucket(&mut self, _old: bool, _i: u64, _c: u32, _a: u64, _t: &[u8; 8]) {
        self.buckets += 1;
    }
    fn swiss_group(&mut self, _t: Option<usize>, _g: u64, _a: u64, _c: &[u8; 8]) {
        self.buckets += 1;
    }
}

/// Walks and checks the invariants every walk must keep, whatever the bytes.
fn walk_checked(m: &MapType, mem: &ImageMemory, case: &str) -> Option<(Health, Vec<(i64, i64)>)> {
    let start = Instant::now();
    let mut c = Collect { m, mem, entries: Vec::new(), buckets: 0 };
    let r = decode::walk_memory(mem, m, HDR, &mut c);
    assert!(start.elapsed() < Duration::from_secs(5), "{case}: walk took {:?}", start.elapsed());
    let h = r.ok()?;
    assert!(h.live + h.deleted + h.empty <= h.slots, "{case}: slot counts exceed slots: {h:?}");
    assert_eq!(c.buckets * 8, h.slots, "{case}: 8 slots per visited bucket/group");
    assert!(c.entries.len() as u64 <= h.live, "{case}: more entries than live slots");
    if h.live != h.len {
        assert!(!h.corrupt.is_empty(), "{case}: count {} != live {} but nothing reported corrupt", h.len, h.live);
    }
    assert!(h.corrupt.len() <= 32, "{case}: corrupt messages are capped");
    Some((h, c.entries))
}

fn sorted(want: &BTreeMap<i64, i64>) -> Vec<(i64, i64)> {
    want.iter().map(|(k, v)| (*k, *v)).collect()
}

#[test]
fn valid_classic_maps_decode_exactly() {
    for seed in 0..300 {
        let mut rng = Rng::new(seed);
        let ind = seed % 3 == 0;
        let (segs, want) = classic_map(&mut rng, ind);
        let m = classic_type(ind);
        let (h, mut got) = walk_checked(&m, &image(&segs), &format!("classic seed {seed}")).expect("valid map");
        got.sort();
        assert_eq!(got, sorted(&want), "classic seed {seed}");
        assert!(h.corrupt.is_empty(), "classic seed {seed}: {:?}", h.corrupt);
        assert_eq!(h.live, want.len() as u64);
    }
}

#[test]
fn valid_swiss_maps_decode_exactly() {
    for seed in 0..300 {
        let mut rng = Rng::new(seed);
        let (segs, want) = swiss_map(&mut rng);
        let m = swiss_type();
        let (h, mut got) = walk_checked(&m, &image(&segs), &format!("swiss seed {seed}")).expect("valid map");
        got.sort();
        assert_eq!(got, sorted(&want), "swiss seed {seed}");
        assert!(h.corrupt.is_empty(), "swiss seed {seed}: {:?}", h.corrupt);
    }
}

/// Random corruption of valid maps: interesting values written over header and array words,
/// random bytes flipped anywhere. Nothing may panic, hang or break the invariants.
fn mutate(rng: &mut Rng, segs: &mut [(u64, Vec<u8>)]) {
    for _ in 0..1 + rng.below(4) {
        let s = rng.below(segs.len() as u64) as usize;
        let buf = &mut segs[s].1;
        if buf.is_empty() {
            continue;
        }
        match rng.below(3) {
            0 => {
                let at = rng.below(buf.len() as u64) as usize;
                buf[at] = rng.next() as u8;
            }
            _ => {
                let at = (rng.below(buf.len() as u64 / 8 + 1) * 8) as usize;
                if at + 8 <= buf.len() {
                    let v = if rng.below(3) == 0 { segs[rng.below(segs.len() as u64) as usize].0 + rng.below(512) } else { rng.interesting() };
                    put(&mut segs[s].1, at, v, 8);
                }
            }
        }
    }
}

#[test]
fn mutated_classic_maps_never_panic() {
    for seed in 0..3000 {
        let mut rng = Rng::new(1_000_000 + seed);
        let ind = seed % 2 == 0;
        let (mut segs, _) = classic_map(&mut rng, ind);
        mutate(&mut rng, &mut segs);
        walk_checked(&classic_type(ind), &image(&segs), &format!("mutated classic seed {seed}"));
    }
}

#[test]
fn mutated_swiss_maps_never_panic() {
    for seed in 0..3000 {
        let mut rng = Rng::new(2_000_000 + seed);
        let (mut segs, _) = swiss_map(&mut rng);
        mutate(&mut rng, &mut segs);
        walk_checked(&swiss_type(), &image(&segs), &format!("mutated swiss seed {seed}"));
    }
}

fn corrupt_of(m: &MapType, segs: &[(u64, Vec<u8>)]) -> (Health, Vec<(i64, i64)>) {
    walk_checked(m, &image(segs), "named corruption").expect("the walk itself succeeds")
}

fn has(h: &Health, needle: &str) -> bool {
    h.corrupt.iter().any(|s| s.contains(needle))
}

#[test]
fn classic_named_corruptions() {
    let m = classic_type(false);
    let mut rng = Rng::new(7);
    let (base, want) = loop {
        let (s, w) = classic_map(&mut rng, false);
        if w.len() > 20 {
            break (s, w);
        }
    };
    // Overflow cycle: the first bucket's overflow points to itself.
    let mut s = base.clone();
    put(&mut s[1].1, 136, ARR, 8);
    let (h, _) = corrupt_of(&m, &s);
    assert!(has(&h, "loops back"), "{:?}", h.corrupt);
    // B = 60.
    let mut s = base.clone();
    s[0].1[9] = 60;
    let (h, got) = corrupt_of(&m, &s);
    assert!(has(&h, "impossible B = 60"), "{:?}", h.corrupt);
    assert!(got.is_empty());
    // Count far from the real number.
    let mut s = base.clone();
    put(&mut s[0].1, 0, 1 << 40, 8);
    let (h, got) = corrupt_of(&m, &s);
    assert!(has(&h, "count says 1099511627776 entries"), "{:?}", h.corrupt);
    assert_eq!(got.len(), want.len(), "entries are still read");
    // Bucket array in unmapped memory.
    let mut s = base.clone();
    put(&mut s[0].1, 16, 0xdead_0000_0000, 8);
    let (h, _) = corrupt_of(&m, &s);
    assert!(has(&h, "unreadable"), "{:?}", h.corrupt);
    // Overflow pointer into unmapped memory: the rest of the map is still read.
    let mut s = base.clone();
    put(&mut s[1].1, 136, 0xdead_0000_0000, 8);
    let (h, got) = corrupt_of(&m, &s);
    assert!(has(&h, "overflow bucket 0xdead00000000"), "{:?}", h.corrupt);
    assert!(!got.is_empty());
}

#[test]
fn swiss_named_corruptions() {
    let m = swiss_type();
    let mut rng = Rng::new(11);
    let base = loop {
        let (s, w) = swiss_map(&mut rng);
        if s.len() == 4 && w.len() > 10 && s[1].1.len() >= 16 {
            break s;
        }
    };
    // dirLen out of range, and not 2^globalDepth.
    let mut s = base.clone();
    put(&mut s[0].1, 24, 1 << 40, 8);
    let (h, _) = corrupt_of(&m, &s);
    assert!(has(&h, "impossible directory length"), "{:?}", h.corrupt);
    let mut s = base.clone();
    put(&mut s[0].1, 24, u64::MAX, 8);
    let (h, _) = corrupt_of(&m, &s);
    assert!(has(&h, "impossible directory length -1"), "{:?}", h.corrupt);
    // globalDepth out of range.
    let mut s = base.clone();
    s[0].1[32] = 200;
    let (h, _) = corrupt_of(&m, &s);
    assert!(has(&h, "global depth 200"), "{:?}", h.corrupt);
    // A table pointer into unmapped memory: the other tables are still read.
    let mut s = base.clone();
    put(&mut s[1].1, 0, 0xdead_0000_0000, 8);
    let (h, _) = corrupt_of(&m, &s);
    assert!(has(&h, "table 0xdead00000000 is unreadable"), "{:?}", h.corrupt);
    // ctrl garbage: 0x81..0xFD are impossible control bytes.
    let mut s = base.clone();
    let g = s.iter_mut().find(|(a, _)| *a == GROUPS).unwrap();
    g.1[0] = 0x9A;
    let (h, _) = corrupt_of(&m, &s);
    assert!(has(&h, "impossible control byte 0x9a"), "{:?}", h.corrupt);
}

// ---- cores -------------------------------------------------------------------------------------

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;

fn note(name: &[u8], ty: u32, desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
    n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    n.extend_from_slice(&ty.to_le_bytes());
    n.extend_from_slice(name);
    n.push(0);
    while n.len() % 4 != 0 {
        n.push(0);
    }
    n.extend_from_slice(desc);
    while n.len() % 4 != 0 {
        n.push(0);
    }
    n
}

/// A small but well-formed x86-64 ELF core: auxv and NT_FILE notes, two PT_LOAD segments.
fn synthetic_core() -> (Vec<u8>, Vec<(u64, Vec<u8>)>) {
    let mut auxv = Vec::new();
    for (k, v) in [(6u64, 4096u64), (9, 0x401000), (0, 0)] {
        auxv.extend_from_slice(&k.to_le_bytes());
        auxv.extend_from_slice(&v.to_le_bytes());
    }
    let mut ntfile = Vec::new();
    for w in [1u64, 4096, 0x400000, 0x401000, 0] {
        ntfile.extend_from_slice(&w.to_le_bytes());
    }
    ntfile.extend_from_slice(b"/tmp/prog\0");
    let notes = [note(b"CORE", 6, &auxv), note(b"CORE", 0x4649_4c45, &ntfile)].concat();
    let segs: Vec<(u64, Vec<u8>)> = vec![(0xc000_0000, (0..4096u32).map(|i| (i * 7) as u8).collect()), (0x7f00_0000_0000, vec![0xAB; 512])];
    let phnum = 1 + segs.len();
    let mut data_at = 64 + 56 * phnum;
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // 64-bit
    out[5] = 1; // little-endian
    out[6] = 1;
    put(&mut out, 16, 4, 2); // ET_CORE
    put(&mut out, 18, 62, 2); // x86-64
    put(&mut out, 20, 1, 4);
    put(&mut out, 32, 64, 8); // e_phoff
    put(&mut out, 52, 64, 2); // e_ehsize
    put(&mut out, 54, 56, 2);
    put(&mut out, 56, phnum as u64, 2);
    let ph = |ty: u32, off: usize, vaddr: u64, filesz: usize, memsz: usize| {
        let mut p = vec![0u8; 56];
        put(&mut p, 0, ty as u64, 4);
        put(&mut p, 8, off as u64, 8);
        put(&mut p, 16, vaddr, 8);
        put(&mut p, 32, filesz as u64, 8);
        put(&mut p, 40, memsz as u64, 8);
        p
    };
    let mut phdrs = ph(PT_NOTE, data_at, 0, notes.len(), 0);
    data_at += notes.len();
    for (a, b) in &segs {
        phdrs.extend(ph(PT_LOAD, data_at, *a, b.len(), b.len() * 2));
        data_at += b.len();
    }
    out.extend(phdrs);
    out.extend(notes);
    for (_, b) in &segs {
        out.extend_from_slice(b);
    }
    (out, segs)
}

#[test]
fn synthetic_core_reads_back() {
    let (bytes, segs) = synthetic_core();
    let core = CoreMemory::from_bytes("synthetic", &bytes, None).expect("well-formed core");
    assert_eq!(core.aux_entry(), Some(0x401000));
    assert_eq!(core.files.len(), 1);
    assert_eq!(core.files[0].path, "/tmp/prog");
    for (a, b) in &segs {
        let mut buf = vec![0u8; b.len()];
        core.read(*a, &mut buf).unwrap();
        assert_eq!(&buf, b);
        // Past filesz (memsz is larger): not in the core.
        assert!(core.read(a + b.len() as u64, &mut [0u8; 8]).is_err());
    }
}

#[test]
fn truncated_cores_are_refused_cleanly() {
    let (bytes, _) = synthetic_core();
    for n in 0..bytes.len() {
        match CoreMemory::from_bytes("cut", &bytes[..n], None) {
            Ok(_) => panic!("a core cut to {n} of {} bytes was accepted", bytes.len()),
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.contains('\n'), "one line: {msg}");
                if n >= 64 + 56 * 3 {
                    assert!(msg.contains("truncated"), "cut to {n}: {msg}");
                }
            }
        }
    }
}

#[test]
fn mutated_cores_never_panic() {
    let (bytes, _) = synthetic_core();
    for seed in 0..5000 {
        let mut rng = Rng::new(3_000_000 + seed);
        let mut b = bytes.clone();
        for _ in 0..1 + rng.below(6) {
            if rng.below(2) == 0 {
                let at = rng.below(b.len() as u64) as usize;
                b[at] = rng.next() as u8;
            } else {
                // Header and program-header words are where the interesting damage is.
                let at = rng.below((64 + 56 * 3) as u64 / 4) as usize * 4;
                let v = rng.interesting();
                let n = [2usize, 4, 8][rng.below(3) as usize].min(b.len() - at);
                b[at..at + n].copy_from_slice(&v.to_le_bytes()[..n]);
            }
        }
        if let Ok(core) = CoreMemory::from_bytes("mutated", &b, None) {
            for f in core.files.clone() {
                let _ = core.read(f.start, &mut [0u8; 64]);
            }
            let a = rng.interesting();
            let mut buf = vec![0u8; rng.below(8192) as usize];
            let _ = core.read(a, &mut buf);
            let _ = core.read(0xc000_0000, &mut [0u8; 16]);
        }
    }
}

// ---- executables -------------------------------------------------------------------------------

#[test]
fn garbage_executables_are_refused_cleanly() {
    let (core, _) = synthetic_core();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![("empty", Vec::new()), ("text", b"#!/bin/sh\necho hi\n".to_vec()), ("core", core)];
    let mut rng = Rng::new(99);
    cases.push(("random", (0..4096).map(|_| rng.next() as u8).collect()));
    // The test executable itself: a real ELF, but not a Go program.
    if let Ok(me) = std::fs::read("/proc/self/exe") {
        cases.push(("non-go elf", me.clone()));
        cases.push(("truncated elf", me[..me.len() / 3].to_vec()));
    }
    for (what, bytes) in cases {
        let e = match Binary::from_bytes(std::path::Path::new(what), &bytes) {
            Ok(_) => panic!("{what} accepted as a Go executable"),
            Err(e) => e.to_string(),
        };
        assert!(!e.contains('\n') && e.starts_with(what), "{what}: {e}");
    }
}

#[test]
fn mutated_elf_headers_never_panic() {
    let Ok(me) = std::fs::read("/proc/self/exe") else { return };
    // Mutate only the ELF header and program/section header tables of a copy of the first part
    // and the section headers at the end: that is where parsers go wrong.
    let shoff = u64::from_le_bytes(me[40..48].try_into().unwrap()) as usize;
    for seed in 0..200 {
        let mut rng = Rng::new(4_000_000 + seed);
        let mut b = me.clone();
        for _ in 0..1 + rng.below(4) {
            let region = if rng.below(2) == 0 || shoff >= b.len() { 0..512 } else { shoff..b.len() };
            let at = region.start + rng.below((region.end - region.start) as u64) as usize;
            let v = rng.interesting().to_le_bytes();
            let n = (1 + rng.below(8) as usize).min(b.len() - at);
            b[at..at + n].copy_from_slice(&v[..n]);
        }
        let _ = Binary::from_bytes(std::path::Path::new("mutated"), &b);
    }
}

// ---- live targets that change under the reader ------------------------------------------------

/// A "live process" whose bytes at one address flip after they were first read, as if the program
/// wrote there while gomap decoded it.
struct Changing {
    img: ImageMemory,
    at: u64,
    reads: std::sync::atomic::AtomicU64,
}

impl Memory for Changing {
    fn read(&self, addr: u64, buf: &mut [u8]) -> gomap::Result<()> {
        self.img.read(addr, buf)?;
        let end = addr + buf.len() as u64;
        if (addr..end).contains(&self.at) && self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0 {
            buf[(self.at - addr) as usize] ^= 0x5A;
        }
        Ok(())
    }
    fn describe(&self) -> String {
        "changing".into()
    }
    fn is_live(&self) -> bool {
        true
    }
}

#[test]
fn live_maps_that_change_while_read_are_flagged() {
    for (what, m, (segs, _)) in [
        ("classic", classic_type(false), classic_map(&mut Rng::new(5), false)),
        ("swiss", swiss_type(), swiss_map(&mut Rng::new(6))),
    ] {
        // Every segment, at a byte of a slot that the count check alone would not notice.
        let mut flagged = 0;
        for (base, bytes) in &segs {
            let at = base + (bytes.len() as u64 / 2) / 8 * 8 + 9;
            if at >= base + bytes.len() as u64 {
                continue;
            }
            // Unchanged: a live read of a still map adds up and is not flagged.
            let still = Changing { img: image(&segs), at: u64::MAX, reads: Default::default() };
            let h = decode::walk_memory(&still, &m, HDR, &mut decode::NoVisit).unwrap();
            assert!(h.corrupt.is_empty(), "{what}: {:?}", h.corrupt);
            let mem = Changing { img: image(&segs), at, reads: Default::default() };
            let mut c = Collect { m: &m, mem: &mem, entries: Vec::new(), buckets: 0 };
            let h = decode::walk_memory(&mem, &m, HDR, &mut c).unwrap();
            let read_twice = mem.reads.load(std::sync::atomic::Ordering::Relaxed) > 1;
            if read_twice {
                assert!(has(&h, "changed while they were read"), "{what} segment {base:#x}: {:?}", h.corrupt);
                flagged += 1;
            }
        }
        assert!(flagged >= 2, "{what}: only {flagged} segments were re-read");
    }
}

#[test]
fn core_segment_reaching_the_top_of_the_address_space() {
    // Regression (fuzz/regressions/core/segment-end-overflow): a PT_LOAD whose vaddr + memsz
    // overflows made a read that straddles two segments compute its end with an overflowing add.
    let (mut bytes, segs) = synthetic_core();
    let ph2 = 64 + 56 * 2; // the second PT_LOAD
    put(&mut bytes, ph2 + 16, u64::MAX - 100, 8); // vaddr
    put(&mut bytes, ph2 + 40, 1000, 8); // memsz: vaddr + memsz wraps
    let core = CoreMemory::from_bytes("wrap", &bytes, None).expect("still a core");
    // More than the segment's 512 file bytes: no zero-copy view, so the segment-by-segment path runs.
    let mut buf = vec![0u8; 600];
    assert!(core.read(u64::MAX - 100, &mut buf).is_err());
    let mut buf = vec![0u8; 64];
    core.read(u64::MAX - 100, &mut buf).expect("inside the segment's file bytes");
    let mut big = vec![0u8; segs[0].1.len() + 16];
    assert!(core.read(segs[0].0, &mut big).is_err(), "reading past a segment's file bytes fails cleanly");
}

#[test]
fn evacuation_marks_in_the_current_array_are_corrupt() {
    let m = classic_type(false);
    let (mut segs, want) = classic_map(&mut Rng::new(21), false);
    // Turn the empty slots of bucket 0 into evacuatedX/Y/Empty marks.
    let arr = &mut segs[1].1;
    let mut marked = 0;
    for i in 0..8 {
        if arr[i] < 5 {
            arr[i] = 2 + (i % 3) as u8;
            marked += 1;
        }
    }
    let (h, got) = corrupt_of(&m, &segs);
    if marked > 0 {
        assert!(has(&h, &format!("{marked} slots of the current bucket array carry evacuation marks")), "{:?}", h.corrupt);
    }
    assert_eq!(got.len(), want.len(), "the live entries are all still read");
}
