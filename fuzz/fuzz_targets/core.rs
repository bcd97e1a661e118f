//! ELF core parsing (PT_LOAD, NT_FILE, auxv, the executable splice and the belongs-to check) on
//! arbitrary bytes. The executable is GOMAP_FUZZ_CORE_BIN, else the go1.23 fixture binary.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static EXE: OnceLock<Option<gomap::binary::Binary>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let exe = EXE.get_or_init(|| gomap::binary::Binary::open(&gomap_fuzz::fixture_path("GOMAP_FUZZ_CORE_BIN", "go1.23")).ok());
    gomap_fuzz::run_core(data, exe.as_ref());
});
