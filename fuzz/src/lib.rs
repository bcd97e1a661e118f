//! The fuzz targets' harness lives in harness.rs, which has no libFuzzer dependency: the main
//! crate's `cargo test` includes the same file (tests/fuzz_regressions.rs) to replay every crash
//! input kept in fuzz/regressions/.
#[path = "harness.rs"]
mod harness;
pub use harness::*;
