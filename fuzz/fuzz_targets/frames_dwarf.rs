//! The function index, CFI unwinder and locals reader built from a mutated executable (DWARF
//! `.debug_info`, location and range lists, `.debug_frame`): see `run_frames_dwarf` in
//! fuzz/src/harness.rs.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gomap_fuzz::run_frames_dwarf(data);
});
