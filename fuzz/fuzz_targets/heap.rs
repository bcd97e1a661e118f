//! The heap index (src/heap) on arbitrary mheap_/allspans/mspan bytes: hostile span tables must
//! not crash, loop or break the index's invariants (sorted, disjoint spans; objects inside them).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gomap::heap::fuzz::one(data);
});
