//! The flat rendering (src/value/flat.rs) prints exactly what the general renderer prints, or hands
//! the entry back: here for the one rule no fixture map reaches, the string allowance that all the
//! strings of one key or value share (16 MiB; `--max-string` each). A struct value with two strings
//! that fit together is rendered flat, byte for byte as the general path; two that do not fit are
//! handed back, and the general path cuts the second to what is left.
//! The Target needs an executable (the go1.23 fixture's); the memory is a synthetic image.

use gomap::binary::Binary;
use gomap::memory::image::ImageMemory;
use gomap::target::Target;
use gomap::value::{Plan, Renderer, Style, MAX_STRING};
use std::sync::Arc;

const A: u64 = 0x1000_0000;
const B: u64 = 0x2000_0000;

fn entry(n_a: u64, n_b: u64) -> (Vec<u8>, Vec<u8>) {
    let key = 7u64.to_le_bytes().to_vec();
    let elem = [A, n_a, B, n_b].iter().flat_map(|w| w.to_le_bytes()).collect();
    (key, elem)
}

#[test]
fn flat_and_general_rendering_share_one_string_allowance() {
    let path = std::env::var_os("GOMAP_FUZZ_CLASSIC_BIN").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/gomap/fixtures/current/go1.23/maps")
    });
    let Ok(bin) = Binary::open(&path) else {
        eprintln!("skipping: no fixture executable at {} (scripts/fixtures.sh)", path.display());
        return;
    };
    let big = (MAX_STRING as usize) * 5 / 8; // 10 MiB: two of them exceed the shared 16 MiB
    let mut img = ImageMemory::new();
    img.map(A, vec![b'a'; big]).map(B, vec![b'b'; big]);
    let t = Target::with_bias(Arc::new(bin), Box::new(img), 0);
    let key = Plan::Int(8);
    let elem = Plan::Struct(vec![
        ("A".into(), 0, Plan::Str { ptr: 0, len: 8 }),
        ("B".into(), 16, Plan::Str { ptr: 0, len: 8 }),
    ]);
    let r = Renderer::new(&t, Style::Json, 1);
    let flat = r.flat(&key, &elem).expect("an int key and a struct of strings are flat");
    let general = |k: &[u8], e: &[u8]| {
        let mut out = b"{\"key\":".to_vec();
        r.value_with(&mut out, &key, k);
        out.extend_from_slice(b",\"value\":");
        r.value_with(&mut out, &elem, e);
        out.push(b'}');
        out
    };

    // 6 + 6 MiB: under the allowance; the flat path prints the general path's bytes.
    let (k, e) = entry(6 << 20, 6 << 20);
    let mut out = Vec::new();
    assert!(r.flat_entry_direct(&flat, &mut out, &k, &e, false));
    assert!(out == general(&k, &e), "flat and general renderings differ");
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["value"]["A"].as_str().map(str::len), Some(6 << 20));
    assert_eq!(doc["value"]["B"].as_str().map(str::len), Some(6 << 20));

    // 10 + 10 MiB: the general path cuts B to the 6 MiB left; the flat path hands the entry back.
    let (k, e) = entry(big as u64, big as u64);
    let mut out = b"untouched".to_vec();
    assert!(!r.flat_entry_direct(&flat, &mut out, &k, &e, false));
    assert_eq!(out, b"untouched");
    let g = general(&k, &e);
    let doc: serde_json::Value = serde_json::from_slice(&g).unwrap();
    assert_eq!(doc["value"]["A"].as_str().map(str::len), Some(big));
    assert_eq!(doc["value"]["B"]["len"], big as u64);
    assert_eq!(doc["value"]["B"]["prefix"].as_str().map(str::len), Some(MAX_STRING as usize - big));
}
