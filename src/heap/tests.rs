//! The heap index on hand-built memory: spans written the way a runtime would, then garbage.

use super::*;
use crate::memory::image::ImageMemory;

const MHEAP: u64 = 0x1000;
const ALLSPANS: u64 = 0x2000;
const SPANS: u64 = 0x10000;
const PAGE: u64 = 8192;

fn layout() -> HeapLayout {
    let f = |offset, size| IntField { offset, size };
    HeapLayout {
        mheap: MHEAP,
        allspans_ptr: 0,
        allspans_len: 8,
        pages_in_use: Some(f(24, 8)),
        span_size: 40,
        start_addr: f(0, 8),
        npages: f(8, 8),
        nelems: f(16, 2),
        elemsize: f(24, 8),
        spanclass: f(32, 1),
        state: f(33, 1),
        in_use_state: 1,
        page_size: PAGE,
    }
}

/// (base, npages, nelems, elemsize, spanclass, state)
type Raw = (u64, u64, u64, u64, u8, u8);

fn image(spans: &[Raw], pages_in_use: u64) -> ImageMemory {
    let mut mheap = vec![0u8; 32];
    mheap[0..8].copy_from_slice(&ALLSPANS.to_le_bytes());
    mheap[8..16].copy_from_slice(&(spans.len() as u64).to_le_bytes());
    mheap[24..32].copy_from_slice(&pages_in_use.to_le_bytes());
    let mut ptrs = Vec::new();
    let mut structs = Vec::new();
    for (i, &(base, npages, nelems, elemsize, class, state)) in spans.iter().enumerate() {
        ptrs.extend_from_slice(&(SPANS + 40 * i as u64).to_le_bytes());
        let mut s = vec![0u8; 40];
        s[0..8].copy_from_slice(&base.to_le_bytes());
        s[8..16].copy_from_slice(&npages.to_le_bytes());
        s[16..18].copy_from_slice(&(nelems as u16).to_le_bytes());
        s[24..32].copy_from_slice(&elemsize.to_le_bytes());
        s[32] = class;
        s[33] = state;
        structs.extend(s);
    }
    let mut m = ImageMemory::new();
    m.map(MHEAP, mheap).map(ALLSPANS, ptrs).map(SPANS, structs);
    m
}

const A: u64 = 0xc000000000;

#[test]
fn finds_objects_in_small_and_large_spans() {
    let spans = [
        (A + 4 * PAGE, 4, 1, 4 * PAGE, 0, 1),      // large, listed out of order
        (A, 1, 170, 48, 5 << 1, 1),                // size class 5 (48 B), pointerful
        (A + PAGE, 1, 1024, 8, (1 << 1) | 1, 1),   // 8 B noscan
        (A + 2 * PAGE, 2, 0, 0, 0, 0),             // dead: recycled mspan struct
        (A + 2 * PAGE, 1, 8, 1024, 40 << 1, 2),    // manual (a stack): not heap
    ];
    let h = HeapIndex::read(&image(&spans, 6), &layout()).expect("index");
    assert_eq!(h.spans().len(), 3);
    assert!(h.spans().windows(2).all(|w| w[0].base < w[1].base));
    assert_eq!(h.page_size(), PAGE);
    assert_eq!(h.in_use_bytes(), 6 * PAGE);
    assert!(h.in_use_is_runtime_counter());

    let o = h.object(A + 100).expect("small object");
    assert_eq!((o.base, o.size, o.index), (A + 96, 48, 2));
    assert!(!h.spans()[o.span].noscan && !h.spans()[o.span].large);
    // The tail of a span past its last object belongs to no object.
    assert_eq!(h.object(A + 170 * 48), None);
    let o = h.object(A + PAGE + 15).expect("noscan object");
    assert_eq!((o.base, o.size), (A + PAGE + 8, 8));
    assert!(h.spans()[o.span].noscan);
    let o = h.object(A + 7 * PAGE + 1).expect("large object");
    assert_eq!((o.base, o.size, o.index), (A + 4 * PAGE, 4 * PAGE, 0));
    assert!(h.spans()[o.span].large);
    assert_eq!(h.object(A + 2 * PAGE), None, "dead and manual spans are not heap");
    assert_eq!(h.object(A + 8 * PAGE), None);
    assert_eq!(h.object(A - 1), None);
    assert_eq!(h.object(0), None);
    assert_eq!(h.object(u64::MAX), None);
}

#[test]
fn in_use_falls_back_to_the_spans_read() {
    let mut l = layout();
    l.pages_in_use = None;
    let h = HeapIndex::read(&image(&[(A, 3, 1, 3 * PAGE, 0, 1)], 0), &l).expect("index");
    assert_eq!(h.in_use_bytes(), 3 * PAGE);
    assert!(!h.in_use_is_runtime_counter());
}

#[test]
fn impossible_and_overlapping_spans_are_dropped() {
    let spans = [
        (A, 2, 1, 2 * PAGE, 0, 1),                 // good large span
        (A + PAGE, 1, 1, PAGE, 0, 1),              // overlaps the first
        (A + 3, 1, 1, PAGE, 0, 1),                 // unaligned
        (0, 1, 1, PAGE, 0, 1),                     // null base
        (A + 8 * PAGE, 0, 1, 0, 0, 1),             // no pages
        (A + 9 * PAGE, 1, 2000, 8, 2, 1),          // more objects than fit
        (A + 10 * PAGE, 1, 10, 0, 4, 1),           // elemsize 0
        (A + 11 * PAGE, 1, 1, 123, 0, 1),          // large span whose elemsize is not its pages
        (u64::MAX - PAGE + 1, 4, 1, 4 * PAGE, 0, 1), // wraps the address space
        (A + 12 * PAGE, 1 << 40, 1, 0, 0, 1),      // absurd size
    ];
    let h = HeapIndex::read(&image(&spans, 2), &layout()).expect("index");
    assert_eq!(h.spans().len(), 1);
    assert_eq!(h.rejected(), spans.len() as u64 - 1);
    assert_eq!(h.object(A + PAGE + 5).map(|o| o.base), Some(A));
}

#[test]
fn unreadable_or_absurd_allspans_is_an_error_not_a_panic() {
    let mut m = image(&[], 0);
    let mut mheap = vec![0u8; 32];
    mheap[0..8].copy_from_slice(&ALLSPANS.to_le_bytes());
    mheap[8..16].copy_from_slice(&(MAX_SPANS + 1).to_le_bytes());
    m.map(MHEAP, mheap);
    assert!(HeapIndex::read(&m, &layout()).is_err());
    // A length the array does not back: the read fails cleanly.
    let mut mheap = vec![0u8; 32];
    mheap[0..8].copy_from_slice(&ALLSPANS.to_le_bytes());
    mheap[8..16].copy_from_slice(&1000u64.to_le_bytes());
    m.map(MHEAP, mheap);
    assert!(HeapIndex::read(&m, &layout()).is_err());
    assert!(HeapIndex::read(&ImageMemory::new(), &layout()).is_err());
    let mut l = layout();
    l.page_size = 3000;
    assert!(HeapIndex::read(&image(&[], 0), &l).is_err());
}

#[test]
fn garbage_spans_never_panic() {
    // A small deterministic generator: every mspan field is noise, pointers dangle or wrap.
    let mut x = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..200 {
        let n = (next() % 64) as usize;
        let spans: Vec<Raw> = (0..n)
            .map(|_| {
                let base = match next() % 3 {
                    0 => next(),
                    1 => A + (next() % 64) * PAGE,
                    _ => next() & !(PAGE - 1),
                };
                (base, next() % 9, next() % 2048, next() % 40000, next() as u8, (next() % 3) as u8)
            })
            .collect();
        let mut m = image(&spans, next());
        if round % 5 == 0 {
            // Some allspans entries point nowhere.
            let ptrs: Vec<u8> = (0..n).flat_map(|_| next().to_le_bytes()).collect();
            m.map(ALLSPANS, ptrs);
        }
        let h = match HeapIndex::read(&m, &layout()) {
            Ok(h) => h,
            Err(_) => continue,
        };
        assert!(h.spans().windows(2).all(|w| w[0].base + w[0].npages * PAGE <= w[1].base));
        for _ in 0..64 {
            let a = if next() % 2 == 0 { next() } else { A + next() % (80 * PAGE) };
            if let Some(o) = h.object(a) {
                assert!(o.base <= a && a < o.base + o.size, "{a:#x} outside {o:?}");
            }
        }
    }
}
