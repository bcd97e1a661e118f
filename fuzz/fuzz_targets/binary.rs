//! Executable parsing and DWARF layout discovery on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gomap_fuzz::run_binary(data);
});
