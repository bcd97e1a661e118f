//! The heap index (built from mheap_.allspans) against the runtime's own address-to-span map
//! (mheap_.arenas -> heapArena.spans), on every fixture core of the matrix.

use gomap::heap::arena::ArenaLayout;
use gomap::heap::HeapLayout;
use std::path::PathBuf;

#[test]
fn every_span_is_where_the_arena_index_says() {
    let home = std::env::var("GOMAP_CACHE").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/gomap"));
    let dir = home.join("fixtures/current");
    let mut tags: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join("core").exists()).collect())
        .unwrap_or_default();
    tags.sort();
    assert!(!tags.is_empty(), "no fixture cores under {}: run scripts/fixtures.sh", dir.display());
    for t in tags {
        let target = gomap::open_target(Some(&t.join("maps")), Some(&t.join("core")), None).expect("open");
        let hl = HeapLayout::discover(&target.bin.dwarf, target.bias).expect("heap layout");
        let al = ArenaLayout::discover(&target.bin.dwarf).expect("arena layout");
        let h = target.heap().expect("heap index");
        let (checked, wrong) = h.check_arenas(&*target.mem, &hl, &al).expect("arena reads");
        assert!(checked > 50, "{}: only {checked} spans", t.display());
        assert_eq!(wrong, 0, "{}: {wrong} of {checked} spans disagree with the arena index", t.display());
        assert_eq!(h.rejected(), 0, "{}", t.display());
        eprintln!("{}: {checked} spans agree with the arena index", t.file_name().unwrap_or_default().to_string_lossy());
    }
}
