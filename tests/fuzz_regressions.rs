//! Replays every input the fuzzers ever crashed on (fuzz/regressions/TARGET/*) through the same
//! harness the fuzz targets run (fuzz/src/harness.rs), under plain `cargo test` on stable.
//! The decoder inputs need the fixture binaries their map types come from (go1.23 classic,
//! go1.26 swiss; scripts/fixtures.sh): without them those cases are skipped with a note.
//! Overflow regressions can fail only with overflow checks on: scripts/test.sh runs this file
//! under `--release` and again under `--profile checked` (see RELIABILITY.md).

#[allow(dead_code)]
#[path = "../fuzz/src/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions").join(target);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    v.sort();
    v
}

/// Runs `run` on every regression input of `target`, naming each first (a panic names its input).
fn replay(target: &str, files: Vec<PathBuf>, run: impl Fn(&[u8])) {
    for f in files {
        eprintln!("replaying {} ({target})", f.display());
        run(&std::fs::read(&f).unwrap());
    }
}

fn replay_decode(target: &str, env: &str, tag: &str) {
    let files = inputs(target);
    if files.is_empty() {
        return;
    }
    let fx = match harness::Fixture::load(&harness::fixture_path(env, tag)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("skipping {} {target} regression inputs: {e}", files.len());
            return;
        }
    };
    replay(target, files, |d| {
        harness::run_decode(&fx, d);
    });
}

#[test]
fn decode_classic_regressions() {
    replay_decode("decode_classic", "GOMAP_FUZZ_CLASSIC_BIN", "go1.23");
}

#[test]
fn decode_swiss_regressions() {
    replay_decode("decode_swiss", "GOMAP_FUZZ_SWISS_BIN", "go1.26");
}

#[test]
fn binary_regressions() {
    replay("binary", inputs("binary"), harness::run_binary);
}

#[test]
fn core_regressions() {
    let exe = gomap::binary::Binary::open(&harness::fixture_path("GOMAP_FUZZ_CORE_BIN", "go1.23")).ok();
    replay("core", inputs("core"), |d| harness::run_core(d, exe.as_ref()));
}

#[test]
fn decode_any_regressions() {
    let files = inputs("decode_any");
    if files.is_empty() {
        return;
    }
    let fxs = harness::load_every_layout();
    replay("decode_any", files, |d| {
        harness::run_decode_any(&fxs, d);
    });
}

#[test]
fn heap_regressions() {
    replay("heap", inputs("heap"), gomap::heap::fuzz::one);
}

#[test]
fn frames_regressions() {
    let files = inputs("frames");
    if files.is_empty() {
        return;
    }
    let bin = match gomap::binary::Binary::open(&harness::fixture_path("GOMAP_FUZZ_FRAMES_BIN", "go1.26")) {
        Ok(b) => std::sync::Arc::new(b),
        Err(e) => {
            eprintln!("skipping {} frames regression inputs: {e}", files.len());
            return;
        }
    };
    replay("frames", files, |d| harness::run_frames(&bin, d));
}

#[test]
fn frames_dwarf_regressions() {
    replay("frames_dwarf", inputs("frames_dwarf"), harness::run_frames_dwarf);
}

/// `decode_any` input (found as a libFuzzer timeout): a `map[string]main.D` with `type D []D` of the
/// hostile-values fixture, 330 entries of nested slices of a few KB of memory. It printed 107.8 MB
/// when string contents and structure shared one 17 MiB allowance per key or value; now the
/// structure of each has 1 MiB (+ the overshoot of the element being written when it ran out).
#[test]
fn decode_any_output_amplification_is_bounded() {
    let Some(hostile) = std::env::var_os("GOMAP_FUZZ_HOSTILE_BIN") else {
        eprintln!("skipping: GOMAP_FUZZ_HOSTILE_BIN is not set (scripts/test.sh sets it)");
        return;
    };
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/decode_any/output-amplification");
    let data = std::fs::read(f).unwrap();
    let fxs = harness::load_every_layout();
    assert!(fxs.iter().any(|fx| fx.bin.path == Path::new(&hostile)), "the hostile fixture did not load");
    // The output of the command the input selects (`show --json --limit 0`), as the fuzzer ran it.
    let len = harness::run_decode_any(&fxs, &data);
    eprintln!("output: {len} bytes");
    assert!(len > 100_000, "the input no longer reaches the nested slices ({len} bytes)");
    assert!(len < 24 << 20, "{len} bytes of output for a 53 KB input");
}
