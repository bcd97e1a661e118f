//! gomap-fuzz-seed BIN CORE OUTDIR
//!
//! Writes decoder fuzz seeds for BIN's package-level map variables: the exact bytes gomap reads
//! from CORE while it runs `show --json --limit 0 --depth 2` and `buckets` on each variable, as an input in the format of fuzz/src/harness.rs. The map types and their
//! order (the selector byte) come from the harness's own `map_types`.

use clap::Parser;
#[allow(dead_code)]
#[path = "../../src/harness.rs"]
mod harness;

use gomap::binary::Binary;
use gomap::cli::{Cmd, DebuggerCli};
use gomap::memory::core::CoreMemory;
use gomap::memory::Memory;
use gomap::Target;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Records every range read through it.
struct Recorder {
    inner: CoreMemory,
    log: Arc<Mutex<Vec<(u64, usize)>>>,
}

impl Memory for Recorder {
    fn read(&self, addr: u64, buf: &mut [u8]) -> gomap::Result<()> {
        let r = self.inner.read(addr, buf);
        if r.is_ok() {
            self.log.lock().unwrap().push((addr, buf.len()));
        }
        r
    }
    fn view(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let v = self.inner.view(addr, len);
        if v.is_some() {
            self.log.lock().unwrap().push((addr, len));
        }
        v
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn aux_entry(&self) -> Option<u64> {
        self.inner.aux_entry()
    }
}

const MAX_SEED: usize = 512 << 10;

/// Recorded reads merged into segments (overlapping and nearby ranges joined): (start, end).
fn segments(mut ranges: Vec<(u64, usize)>) -> Vec<(u64, u64)> {
    ranges.sort();
    let mut segs: Vec<(u64, u64)> = Vec::new();
    for (a, n) in ranges {
        let e = a + n as u64;
        match segs.last_mut() {
            Some((_, pe)) if a <= *pe + 64 => *pe = (*pe).max(e),
            _ => segs.push((a, e)),
        }
    }
    segs
}

/// Writes segments of memory as one input of the decoder format; returns its size.
fn write_input(t: &Target, first: u8, addr: u64, segs: Vec<(u64, u64)>, file: &Path) -> usize {
    let mut seed = vec![first];
    seed.extend_from_slice(&addr.to_le_bytes());
    for (a, e) in segs {
        let mut b = vec![0u8; (e - a) as usize];
        if t.mem.read(a, &mut b).is_err() {
            continue;
        }
        seed.extend_from_slice(&a.to_le_bytes());
        seed.extend_from_slice(&(b.len() as u32).to_le_bytes());
        seed.extend_from_slice(&b);
    }
    std::fs::write(file, &seed).unwrap();
    seed.len()
}

/// `--frames BIN CORE OUTDIR`: the bytes the goroutine walk reads from CORE (allgs, every g, the
/// stacks, firstmoduledata and the pclntab's stack maps), as one `frames` seed (OUTDIR/all) whose
/// probe PC is the first goroutine's first frame's.
fn frames_seeds(bin_path: &Path, core_path: &Path, out: &Path) {
    let bin = Arc::new(Binary::open(bin_path).unwrap_or_else(|e| panic!("{e}")));
    std::fs::create_dir_all(out).unwrap();
    let open = || {
        let core = CoreMemory::open(core_path, Some(bin.image.clone())).unwrap_or_else(|e| panic!("{e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        (Target::new(bin.clone(), Box::new(Recorder { inner: core, log: log.clone() })), log)
    };
    let (t, log) = open();
    let mut roots = Vec::new();
    let gs = gomap::census::roots::goroutines(&t, &mut roots).unwrap_or_else(|e| panic!("{e}"));
    let pc = gs.iter().find_map(|g| g.frames.first().map(|f| f.pc)).unwrap_or(0);
    let segs = segments(log.lock().unwrap().clone());
    let n = write_input(&t, 0, pc, segs, &out.join("all"));
    eprintln!("frames seed: {} goroutines, {} roots, {n} bytes", gs.len(), roots.len());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 5 && args[1] == "--frames" {
        frames_seeds(Path::new(&args[2]), Path::new(&args[3]), Path::new(&args[4]));
        return;
    }
    if args.len() != 4 {
        eprintln!("usage: gomap-fuzz-seed BIN CORE OUTDIR");
        std::process::exit(2);
    }
    let (bin_path, core_path, out) = (Path::new(&args[1]), Path::new(&args[2]), Path::new(&args[3]));
    let bin = Arc::new(Binary::open(bin_path).unwrap_or_else(|e| panic!("{e}")));
    let maps = harness::map_types(&bin);
    std::fs::create_dir_all(out).unwrap();
    let mut written = 0;
    for (index, (name, _, vars)) in maps.iter().enumerate() {
        for var in vars {
            for (bit, argv) in [(0u8, vec!["show", var.as_str(), "--json", "--limit", "0", "--depth", "2"]), (0x40, vec!["buckets", var.as_str(), "--json"])] {
                let core = CoreMemory::open(core_path, Some(bin.image.clone())).unwrap_or_else(|e| panic!("{e}"));
                let log = Arc::new(Mutex::new(Vec::new()));
                let t = Target::new(bin.clone(), Box::new(Recorder { inner: core, log: log.clone() }));
                let Some((addr, _)) = t.global_addr(var) else { continue };
                let header = match gomap::memory::MemoryExt::u64_at(&*t.mem, addr) {
                    Ok(h) => h,
                    Err(_) => continue,
                };
                let cmd: Cmd = DebuggerCli::try_parse_from(&argv).unwrap().cmd;
                let _ = gomap::inspect::run(&t, &cmd, None, &mut std::io::sink());
                let segs = segments(log.lock().unwrap().clone());
                let total: u64 = segs.iter().map(|(a, e)| e - a).sum();
                if total as usize > MAX_SEED {
                    eprintln!("skip {name} ({var}, {}): {total} bytes", argv[0]);
                    continue;
                }
                let file = out.join(format!("{}-{}-{}", argv[0], index, var.trim_start_matches("main.")));
                write_input(&t, (index as u8 & 0x3f) | bit, header, segs, &file);
                written += 1;
            }
        }
    }
    eprintln!("{written} seeds for {} map types in {}", maps.len(), out.display());
}
