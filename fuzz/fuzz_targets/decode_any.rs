//! Both decoders and the value renderer over the map types of every fixture layout (every tag of
//! the matrix, and the hostile-values program when GOMAP_FUZZ_HOSTILE_BIN names it): the first
//! input byte picks the layout, the rest is a decoder input (fuzz/src/harness.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static FXS: OnceLock<Vec<gomap_fuzz::Fixture>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let fxs = FXS.get_or_init(gomap_fuzz::load_every_layout);
    gomap_fuzz::run_decode_any(fxs, data);
});
