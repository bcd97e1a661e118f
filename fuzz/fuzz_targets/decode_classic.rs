//! Classic-map decoder over fuzzer-supplied memory (see src/lib.rs for the input format).
//! The map types come from GOMAP_FUZZ_CLASSIC_BIN, else the go1.23 fixture binary.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static FX: OnceLock<gomap_fuzz::Fixture> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let fx = FX.get_or_init(|| gomap_fuzz::Fixture::load(&gomap_fuzz::fixture_path("GOMAP_FUZZ_CLASSIC_BIN", "go1.23")).unwrap_or_else(|e| panic!("{e}")));
    gomap_fuzz::run_decode(fx, data);
});
