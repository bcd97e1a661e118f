//! The heap index on arbitrary bytes, for a fuzz target: the bytes are mapped at one address and
//! read as mheap_ (at their start), the allspans array and the mspans it points to, with the field
//! layout of the unit tests. Panics only when an invariant of the index breaks.

use super::{HeapIndex, HeapLayout, IntField};
use crate::memory::image::ImageMemory;

/// Where the fuzz bytes are mapped.
pub const BASE: u64 = 0x10000;

pub fn layout() -> HeapLayout {
    let f = |offset, size| IntField { offset, size };
    HeapLayout {
        mheap: BASE,
        allspans_ptr: 0,
        allspans_len: 8,
        pages_in_use: Some(f(16, 8)),
        span_size: 40,
        start_addr: f(0, 8),
        npages: f(8, 8),
        nelems: f(16, 2),
        elemsize: f(24, 8),
        spanclass: f(32, 1),
        state: f(33, 1),
        in_use_state: 1,
        page_size: 8192,
        fingerprint: vec![f(24, 4)],
    }
}

/// Builds an index from `data` and probes it at addresses taken from `data`.
pub fn one(data: &[u8]) {
    let mut m = ImageMemory::new();
    m.map(BASE, data.to_vec());
    let l = layout();
    let _ = HeapIndex::fingerprint(&m, &l);
    let Ok(h) = HeapIndex::read(&m, &l) else { return };
    let page = h.page_size();
    for w in h.spans().windows(2) {
        assert!(w[0].base.saturating_add(w[0].npages.saturating_mul(page)) <= w[1].base, "spans overlap or are unsorted");
    }
    let probes = data.chunks_exact(8).take(4096).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
    for a in probes.chain(h.spans().iter().map(|s| s.base)) {
        if let Some(o) = h.object(a) {
            assert!(o.base <= a && a - o.base < o.size, "object {o:?} does not contain {a:#x}");
            assert!(o.span < h.spans().len());
        }
    }
}
