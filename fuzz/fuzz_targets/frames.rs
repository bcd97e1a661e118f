//! The goroutine stack walk and the frame/locals readers (CFI unwinding, DWARF locals and location
//! lists, the runtime's stack maps) on hostile stack memory, saved registers and pclntab: see
//! `run_frames` in fuzz/src/harness.rs. The executable is GOMAP_FUZZ_FRAMES_BIN, else the go1.26
//! fixture binary.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

static BIN: OnceLock<Option<Arc<gomap::binary::Binary>>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let bin = BIN.get_or_init(|| gomap::binary::Binary::open(&gomap_fuzz::fixture_path("GOMAP_FUZZ_FRAMES_BIN", "go1.26")).ok().map(Arc::new));
    if let Some(bin) = bin {
        gomap_fuzz::run_frames(bin, data);
    }
});
