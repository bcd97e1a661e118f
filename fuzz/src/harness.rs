//! Shared harness of the fuzz targets (also compiled into tests/fuzz_regressions.rs).
//!
//! The decoder targets take a real fixture binary's DWARF (every map type of its package-level
//! variables) and let the fuzzer supply the memory: the input is a selector byte, the header
//! address and an image of memory segments (format below). The seeds are the exact bytes gomap
//! reads when it decodes the fixture maps from their real cores (`gomap-fuzz-seed`, run by
//! scripts/fuzz.sh), so the fuzzer starts from deep, valid maps and mutates from there.
//!
//! Decoder input format (all little-endian):
//!   u8 selector: bits 0-5 pick the map type (modulo the number of types), bit 6 `buckets` instead
//!     of `show`, bit 7 text instead of JSON
//!   u64 header address
//!   repeated: u64 segment address, u32 length, that many bytes (the last one may be short)

use gomap::binary::{Binary, TypeId};
use gomap::cli::{BucketsArgs, Cmd, DebuggerCli, ShowArgs};
use gomap::decode::{self, Visitor};
use gomap::inspect::{self, MapRef};
use gomap::layout::MapType;
use gomap::memory::image::ImageMemory;
use gomap::Target;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A fixture binary with the map types the decoder targets choose from.
pub struct Fixture {
    pub bin: Arc<Binary>,
    pub maps: Vec<(String, TypeId)>,
    show_json: ShowArgs,
    show_text: ShowArgs,
    buckets_json: BucketsArgs,
    buckets_text: BucketsArgs,
}

fn cache() -> PathBuf {
    std::env::var_os("GOMAP_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/gomap"))
}

/// The fixture binary named by the environment variable `env`, else the built fixture of `tag`.
pub fn fixture_path(env: &str, tag: &str) -> PathBuf {
    match std::env::var_os(env) {
        Some(p) => PathBuf::from(p),
        None => cache().join("fixtures/current").join(tag).join("maps"),
    }
}

fn parse(argv: &[&str]) -> Cmd {
    match DebuggerCli::try_parse_from(argv) {
        Ok(c) => c.cmd,
        Err(e) => panic!("harness argv {argv:?}: {e}"),
    }
}

use clap::Parser;

/// The map types of a binary's package-level `main.*` variables, distinct and sorted by name: the
/// order the selector byte of a decoder input indexes. Each comes with the variables of that type.
/// The seed tool (fuzz/seed) uses the same list, so its seeds select the types they were made for.
pub fn map_types(bin: &Binary) -> Vec<(String, TypeId, Vec<String>)> {
    let mut maps: Vec<(String, TypeId, Vec<String>)> = Vec::new();
    for g in bin.dwarf.globals.values() {
        if !g.name.starts_with("main.") {
            continue;
        }
        if let Ok(m) = MapType::discover(&bin.dwarf, g.ty) {
            match maps.iter_mut().find(|(_, t, _)| *t == m.id) {
                Some((_, _, vars)) => vars.push(g.name.clone()),
                None => maps.push((m.name.clone(), m.id, vec![g.name.clone()])),
            }
        }
    }
    maps.sort();
    maps
}

impl Fixture {
    pub fn load(path: &Path) -> Result<Fixture, String> {
        let bin = match Binary::open(path) {
            Ok(b) => Arc::new(b),
            Err(e) => return Err(format!("fuzz fixture {}: {e} (build fixtures with scripts/fixtures.sh or set the env var)", path.display())),
        };
        let maps = map_types(&bin).into_iter().map(|(name, id, _)| (name, id)).collect();
        let show = |extra: &[&str]| match parse(&[&["show", "0x0", "--limit", "0", "--depth", "2"], extra].concat()) {
            Cmd::Show(a) => a,
            _ => unreachable!(),
        };
        let buckets = |extra: &[&str]| match parse(&[&["buckets", "0x0"], extra].concat()) {
            Cmd::Buckets(a) => a,
            _ => unreachable!(),
        };
        Ok(Fixture {
            bin,
            maps,
            show_json: show(&["--json"]),
            show_text: show(&[]),
            buckets_json: buckets(&["--json"]),
            buckets_text: buckets(&[]),
        })
    }

    /// Index of a map type by name (for the seed tool and tests).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.maps.iter().position(|(n, _)| n == name)
    }
}

pub struct DecodeInput {
    pub selector: u8,
    pub addr: u64,
    pub image: ImageMemory,
}

fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

pub fn parse_decode_input(data: &[u8]) -> Option<DecodeInput> {
    let selector = *data.first()?;
    let addr = u64_at(data, 1)?;
    let mut image = ImageMemory::new();
    let mut at = 9usize;
    while at + 12 <= data.len() {
        let base = u64_at(data, at)?;
        let len = u32::from_le_bytes(data[at + 8..at + 12].try_into().ok()?) as usize;
        let start = at + 12;
        let end = start.saturating_add(len).min(data.len());
        image.map(base, data[start..end].to_vec());
        at = end;
    }
    Some(DecodeInput { selector, addr, image })
}

/// Counts what the walk reports, to check its invariants.
struct Counter {
    entries: u64,
    buckets: u64,
}

impl Visitor for Counter {
    fn wants_entries(&self) -> bool {
        true
    }
    fn entry(&mut self, _k: &[u8], _e: &[u8]) -> bool {
        self.entries += 1;
        true
    }
    fn wants_buckets(&self) -> bool {
        true
    }
    fn classic_bucket(&mut self, _old: bool, _i: u64, _c: u32, _a: u64, _t: &[u8; 8]) {
        self.buckets += 1;
    }
    fn swiss_group(&mut self, _t: Option<usize>, _g: u64, _a: u64, _c: &[u8; 8]) {
        self.buckets += 1;
    }
}

/// One decoder fuzz input: walk the map directly (checking the walk's invariants), then run the
/// `show` or `buckets` command over it (decoder + value renderer + findings) and check that JSON
/// output is valid JSON. Returns the size of that output (0: the input reached no command), what a
/// hostile value can amplify a few KB of memory into.
pub fn run_decode(fx: &Fixture, data: &[u8]) -> usize {
    let Some(inp) = parse_decode_input(data) else { return 0 };
    if fx.maps.is_empty() {
        return 0;
    }
    let (_, ty) = fx.maps[(inp.selector & 0x3f) as usize % fx.maps.len()];
    let t = Target::with_bias(fx.bin.clone(), Box::new(inp.image), 0);
    let Ok(m) = t.map_type(ty) else { return 0 };
    let mut c = Counter { entries: 0, buckets: 0 };
    if let Ok(h) = decode::walk(&t, &m, inp.addr, &mut c) {
        assert!(h.live + h.deleted + h.empty <= h.slots, "slot counts exceed slots: {h:?}");
        assert!(c.entries <= h.live, "visited {} entries but counted {} live slots", c.entries, h.live);
        assert_eq!(c.buckets * 8, h.slots, "slots must be 8 per visited bucket/group");
        if h.live != h.len {
            assert!(!h.corrupt.is_empty(), "count {} != live {} without a corrupt finding", h.len, h.live);
        }
    }
    let r = MapRef { name: "fuzz".into(), addr: inp.addr, ty };
    let json = inp.selector & 0x80 == 0;
    let mut out = Vec::new();
    let ok = if inp.selector & 0x40 == 0 {
        gomap::commands::show::show(&t, &r, if json { &fx.show_json } else { &fx.show_text }, &mut out).is_ok()
    } else {
        gomap::commands::buckets::buckets(&t, &r, if json { &fx.buckets_json } else { &fx.buckets_text }, &mut out).is_ok()
    };
    if ok && json {
        // Valid JSON whatever its depth: gomap's own nesting is bounded (value::MAX_DEPTH levels, up
        // to three JSON levels each for nested maps), but deeper than serde_json's default 128.
        let mut de = serde_json::Deserializer::from_slice(&out);
        de.disable_recursion_limit();
        let mut docs = de.into_iter::<serde_json::Value>();
        match (docs.next(), docs.next()) {
            (Some(Ok(_)), None) => {}
            (first, _) => panic!("invalid JSON output ({:?}): {}", first.map(|r| r.err()), String::from_utf8_lossy(&out[..out.len().min(2000)])),
        }
    }
    out.len()
}

/// One binary fuzz input: parse it as an executable; when that succeeds, discover every map type
/// of its globals, compile value plans for keys and elements, and print `layout` and `maps` over
/// an empty memory image (every read fails: the commands must still answer).
pub fn run_binary(data: &[u8]) {
    let Ok(bin) = Binary::from_bytes(Path::new("fuzz-input"), data) else { return };
    let bin = Arc::new(bin);
    for g in bin.dwarf.globals.values().take(512) {
        if let Ok(m) = MapType::discover(&bin.dwarf, g.ty) {
            let _ = gomap::value::compile(&bin.dwarf, m.key);
            let _ = gomap::value::compile(&bin.dwarf, m.elem);
        }
    }
    let t = Target::new(bin, Box::new(ImageMemory::new()));
    for argv in [&["layout", "--json"][..], &["layout"][..], &["maps", "--json"][..]] {
        let cmd = parse(argv);
        let _ = inspect::run(&t, &cmd, None, &mut Vec::new());
    }
}

/// One core fuzz input: parse it as a core (alone, and against the fixture executable when one is
/// given), then read around every file mapping and at addresses taken from the input's tail.
pub fn run_core(data: &[u8], exe: Option<&Binary>) {
    use gomap::memory::core::CoreMemory;
    use gomap::memory::{Memory, MemoryExt};
    let mut cores = Vec::new();
    if let Ok(c) = CoreMemory::from_bytes("fuzz-core", data, None) {
        cores.push(c);
    }
    if let Some(b) = exe {
        if let Ok(c) = CoreMemory::from_bytes("fuzz-core", data, Some(b.image.clone())) {
            cores.push(c);
        }
    }
    let tail = |i: usize| data.len().checked_sub(8 * (i + 1)).and_then(|at| u64_at(data, at)).unwrap_or(0);
    for c in &cores {
        let _ = c.aux_entry();
        let mut probes: Vec<(u64, usize)> = c.files.iter().take(64).flat_map(|f| [(f.start, 64), (f.end.wrapping_sub(8), 16)]).collect();
        probes.push((tail(0), (tail(1) % 4096) as usize));
        probes.push((tail(2), 8));
        for (addr, len) in probes {
            let mut buf = vec![0u8; len];
            let ok = c.read(addr, &mut buf).is_ok();
            if let Some(v) = c.view(addr, len) {
                assert!(ok && v == &buf[..], "view and read disagree at {addr:#x}+{len}");
            }
            let _ = c.bytes(addr, len);
        }
    }
}

/// Every fixture layout at once, for `decode_any`: the `maps` binary of each built tag of the
/// matrix (sorted by tag: go1.19 classic through go1.27 mapsplitgroup, PIE and cgo included),
/// then the hostile-values program named by GOMAP_FUZZ_HOSTILE_BIN (self-containing slices, maps
/// and interfaces, funcs) when set. An input's first byte picks one (modulo how many loaded).
pub fn load_every_layout() -> Vec<Fixture> {
    let dir = cache().join("fixtures/current");
    let mut tags: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path().join("maps"))).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    tags.sort();
    if let Some(h) = std::env::var_os("GOMAP_FUZZ_HOSTILE_BIN") {
        tags.push(PathBuf::from(h));
    }
    tags.iter().filter_map(|p| Fixture::load(p).ok()).collect()
}

/// One `decode_any` input: a fixture selector byte, then a decoder input (format above); returns
/// `run_decode`'s output size.
pub fn run_decode_any(fxs: &[Fixture], data: &[u8]) -> usize {
    let Some((&pick, rest)) = data.split_first() else { return 0 };
    if fxs.is_empty() {
        return 0;
    }
    run_decode(&fxs[pick as usize % fxs.len()], rest)
}

/// One `frames` fuzz input: the goroutine stack walk and the frame/locals readers on hostile
/// memory. A decoder-format input (selector, u64 PC, memory segments) over the frames fixture
/// binary (`bin`): the image is the whole memory: `runtime.allgs`, every `g` with its saved SP/PC
/// (the registers of a parked goroutine), the stacks, `runtime.firstmoduledata` and the pclntab
/// with its stack maps. `census::roots::goroutines` walks every goroutine (CFI unwinding, DWARF
/// locals at each PC, stack-map liveness); then the readers are probed directly at the input's PC
/// (and its neighbours) with hostile stack pointers. Seeds: the exact bytes the walk reads from a
/// real core (`gomap-fuzz-seed --frames`).
pub fn run_frames(bin: &Arc<Binary>, data: &[u8]) {
    use gomap::binary::frames::Loc;
    use gomap::census::{liveness::Pclntab, roots};
    let Some(inp) = parse_decode_input(data) else { return };
    let pc = inp.addr;
    let t = Target::with_bias(bin.clone(), Box::new(inp.image), 0);
    let mut found = Vec::new();
    if let Ok(gs) = roots::goroutines(&t, &mut found) {
        for g in &gs {
            assert!(g.frames.len() <= 4096, "goroutine {} has {} frames", g.goid, g.frames.len());
        }
    }
    let Ok(st) = roots::stacks(&t) else { return };
    let pcln = Pclntab::load(&t);
    for pc in [pc, pc.wrapping_sub(1), pc.wrapping_add(1)] {
        if let Ok((_, locals)) = st.frames.locals(pc) {
            assert!(locals.len() <= 10_000, "{} locals at {pc:#x}", locals.len());
            for sp in HOSTILE_SPS {
                let Some(step) = st.unwind.step(pc, sp) else { continue };
                let live = pcln.as_ref().and_then(|p| p.frame(&t, pc, sp, step.cfa));
                for l in &locals {
                    if let (Loc::Cfa(off), Some(live)) = (&l.loc, &live) {
                        let _ = live.is_live(step.cfa.wrapping_add(*off as u64), t.bin.dwarf.size_of(l.ty).unwrap_or(8));
                    }
                }
            }
        }
        let _ = st.frames.function(pc);
        let _ = st.frames.closure_vars(pc);
    }
}

/// Stack pointers the readers are probed with: around zero, around the top of the address space,
/// unaligned.
const HOSTILE_SPS: [u64; 6] = [0, 8, 0x7fff_0000_0000, u64::MAX - 7, u64::MAX, 0xc000_0000_1003];

/// One `frames_dwarf` fuzz input: an executable (its DWARF `.debug_info`/`.debug_loc(lists)`/
/// `.debug_ranges`/`.debug_frame`, mutated). The function index, the unwinder and the locals reader
/// are built from it and probed at the start, middle and end of up to 256 of its functions.
pub fn run_frames_dwarf(data: &[u8]) {
    use gomap::binary::frames::Frames;
    use gomap::binary::unwind::Unwinder;
    let frames = Frames::from_bytes(data).ok();
    let unwind = Unwinder::from_bytes(data).ok();
    let mut pcs: Vec<u64> = Vec::new();
    if let Some(f) = &frames {
        let stride = (f.ranges().count() / 256).max(1);
        for (lo, hi) in f.ranges().step_by(stride).take(256) {
            pcs.extend([lo, lo.wrapping_add(1), lo.wrapping_add(hi.wrapping_sub(lo) / 2), hi.wrapping_sub(1)]);
        }
    }
    pcs.extend([0, u64::MAX]);
    for &pc in &pcs {
        if let Some(f) = &frames {
            let _ = f.locals(pc);
            let _ = f.function(pc);
            let _ = f.closure_vars(pc);
        }
        if let Some(u) = &unwind {
            for sp in HOSTILE_SPS {
                let _ = u.step(pc, sp);
            }
        }
    }
}
