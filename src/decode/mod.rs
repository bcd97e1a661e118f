//! Map decoders. Each walks the map's memory once, in bulk reads, and reports to a [`Visitor`]:
//! live entries (until the visitor has enough), and for the `buckets` command every bucket or group.
//! The walk always returns [`Health`]: the counts the findings are computed from. Every loop is capped
//! and every impossibility is recorded in `Health::corrupt` instead of being followed.

pub mod classic;
pub mod swiss;
#[cfg(test)]
mod tests;

use crate::error::Result;
use crate::layout::{Impl, MapType};
use crate::memory::Memory;
use crate::target::Target;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};

/// Bytes read per bulk read of a bucket or group array.
pub const CHUNK_BYTES: u64 = 1 << 20;
/// The most buckets, overflow buckets or groups one walk will visit.
pub const MAX_BUCKETS: u64 = 1 << 28;
/// The longest overflow chain followed before it is called a cycle or corruption.
pub const MAX_CHAIN: u32 = 1 << 16;
/// The most directory entries of a swiss map.
pub const MAX_DIR: u64 = 1 << 24;

/// Set by a front end (Ctrl-C in a debugger) to stop a long walk.
pub static INTERRUPT: AtomicBool = AtomicBool::new(false);

static HOOK: std::sync::Mutex<Option<fn() -> bool>> = std::sync::Mutex::new(None);

/// A front end's own interrupt poll (Python's signal flag inside gdb), consulted by `interrupted`.
pub fn set_interrupt_hook(hook: Option<fn() -> bool>) {
    if let Ok(mut h) = HOOK.lock() {
        *h = hook;
    }
}

thread_local! {
    static NO_HOOK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as a worker of a parallel walk: `interrupted` reads only the flag here, never
/// the front end's hook (Python's would wait for the interpreter lock the walking thread holds).
pub fn no_interrupt_hook_on_this_thread() {
    NO_HOOK.with(|n| n.set(true));
}

/// Whether the user asked to stop. Walks call this once per bulk read, never per slot.
pub fn interrupted() -> bool {
    if INTERRUPT.load(Ordering::Relaxed) {
        return true;
    }
    if NO_HOOK.with(|n| n.get()) {
        return false;
    }
    let hook = HOOK.lock().ok().and_then(|h| *h);
    if let Some(f) = hook {
        if f() {
            INTERRUPT.store(true, Ordering::Relaxed);
            return true;
        }
    }
    false
}

/// One swiss table as the walk sees it.
#[derive(Clone, Debug, Default)]
pub struct TableInfo {
    pub ordinal: usize,
    pub addr: u64,
    /// Directory indexes that point to this table: first and count.
    pub dir_first: u64,
    pub dir_count: u64,
    pub used: u64,
    pub capacity: u64,
    pub growth_left: u64,
    pub local_depth: u64,
    pub index: i64,
    pub groups: u64,
    pub full: u64,
    pub deleted: u64,
}

pub trait Visitor {
    /// Wants live entries? The walk skips key/elem reads when not.
    fn wants_entries(&self) -> bool {
        false
    }
    /// A live entry's key and element bytes (after indirection). Return false for no more.
    fn entry(&mut self, _key: &[u8], _elem: &[u8]) -> bool {
        false
    }
    /// [`Visitor::entry`] with the addresses the key and element bytes were read from (the pointed-to
    /// object for an indirect slot), for front ends that hand debuggers typed values at those addresses.
    fn entry_at(&mut self, _key_addr: u64, _elem_addr: u64, key: &[u8], elem: &[u8]) -> bool {
        self.entry(key, elem)
    }
    /// True for a visitor that wants nothing but a page of entries: once `entry` returns false
    /// the walk stops at its next bulk read, so showing 200 entries of a million costs 200 entries
    /// (the health counts are then partial and not checked against the header).
    fn stop_when_done(&self) -> bool {
        false
    }
    /// A live slot's inline key and element bytes (empty for an indirect one), for every live slot of
    /// a bucket or group before any of them goes to `entry`: a visitor may start loading what they
    /// point to (string bytes), so that the cache misses of the slots overlap.
    fn prefetch(&mut self, _key: &[u8], _elem: &[u8]) {}
    fn wants_buckets(&self) -> bool {
        false
    }
    /// A classic bucket: `old` for the oldbuckets array, `chain` is 0 for the array bucket itself.
    fn classic_bucket(&mut self, _old: bool, _index: u64, _chain: u32, _addr: u64, _tophash: &[u8; 8]) {}
    fn swiss_table(&mut self, _t: &TableInfo) {}
    /// A swiss group; `table` is None for a small map's single group.
    fn swiss_group(&mut self, _table: Option<usize>, _group: u64, _addr: u64, _ctrl: &[u8; 8]) {}
}

/// A visitor that only collects health.
pub struct NoVisit;
impl Visitor for NoVisit {}

#[derive(Clone, Debug, Default)]
pub struct ClassicStats {
    pub b: u64,
    pub flags: u64,
    pub noverflow: u64,
    pub bucket_size: u64,
    pub buckets: u64,
    pub overflow_buckets: u64,
    pub longest_chain: u64,
    pub chains_with_overflow: u64,
    pub oldbuckets: u64,
    pub old_buckets: u64,
    pub old_overflow_buckets: u64,
    pub nevacuate: u64,
    pub evacuated_old: u64,
    pub same_size_grow: bool,
    pub evacuated_slots: u64,
    /// Overflow buckets of the current array that hold no live entry (still linked: the runtime
    /// never unlinks an overflow bucket outside growth).
    pub stale_buckets: u64,
    pub stale_bytes: u64,
    pub old_bytes: u64,
    /// hmap.buckets.
    pub buckets_addr: u64,
    /// Every overflow bucket the walk followed (capped at [`MAX_OBJECTS`]), for the heap accounting.
    pub overflow_list: Vec<OverflowBucket>,
    /// Tombstones in the worst chain and that chain's slots.
    pub worst_chain_tombstones: u64,
    pub worst_chain_slots: u64,
}

/// One overflow bucket as the walk found it.
#[derive(Clone, Copy, Debug, Default)]
pub struct OverflowBucket {
    pub addr: u64,
    pub old: bool,
    pub live: bool,
}

/// The most object addresses (overflow buckets, tables) one walk records for the heap accounting.
pub const MAX_OBJECTS: usize = 1 << 22;

#[derive(Clone, Debug, Default)]
pub struct SwissStats {
    pub small: bool,
    pub dir_len: u64,
    pub global_depth: u64,
    pub tables: u64,
    pub groups: u64,
    pub group_size: u64,
    pub capacity: u64,
    pub growth_left: u64,
    pub stale_groups: u64,
    pub stale_bytes: u64,
    /// Tables whose growthLeft is 0 while they hold tombstones: the next insert rehashes them.
    pub exhausted_tables: u64,
    pub worst_table_deleted: u64,
    pub worst_table_slots: u64,
    pub worst_table_addr: u64,
    /// Map.dirPtr: the directory, or a small map's group.
    pub dir_ptr: u64,
    /// Every unique table: (table address, groups.data, group count), capped at [`MAX_OBJECTS`].
    pub table_list: Vec<(u64, u64, u64)>,
}

#[derive(Clone, Debug, Default)]
pub struct Health {
    pub imp: &'static str,
    pub address: u64,
    /// What the header says (hmap.count / Map.used).
    pub len: u64,
    pub slots: u64,
    pub live: u64,
    pub deleted: u64,
    pub empty: u64,
    pub bytes: u64,
    pub writing: bool,
    pub iterating: bool,
    pub live_target: bool,
    pub corrupt: Vec<String>,
    pub classic: Option<ClassicStats>,
    pub swiss: Option<SwissStats>,
    pub interrupted: bool,
    /// The first few indirect key and element pointers of live slots (keys or values over 128
    /// bytes live in heap objects of their own): samples of their object size.
    pub indirect_keys: Vec<u64>,
    pub indirect_elems: Vec<u64>,
    /// The map's memory as the allocator sized it (set by [`walk_map`]).
    pub mem: Option<crate::heap::account::MapBytes>,
}

/// How many indirect pointers a walk samples.
pub const INDIRECT_SAMPLES: usize = 8;

impl Health {
    /// Samples the indirect key/element pointers of a live slot of bucket/group bytes `b`.
    pub(crate) fn sample_indirect(&mut self, b: &[u8], sl: &crate::layout::Slots, i: u64) {
        if sl.key_indirect && self.indirect_keys.len() < INDIRECT_SAMPLES {
            self.indirect_keys.push(crate::memory::le_uint(b, (sl.key_base + i * sl.key_stride) as usize, 8));
        }
        if sl.elem_indirect && self.indirect_elems.len() < INDIRECT_SAMPLES {
            self.indirect_elems.push(crate::memory::le_uint(b, (sl.elem_base + i * sl.elem_stride) as usize, 8));
        }
    }
}

impl Health {
    pub fn fill(&self) -> f64 {
        if self.slots == 0 {
            0.0
        } else {
            self.live as f64 / self.slots as f64
        }
    }

    pub fn corrupt(&mut self, msg: impl Into<String>) {
        if self.corrupt.len() < 32 {
            self.corrupt.push(msg.into());
        }
    }

    pub fn stats_json(&self) -> Value {
        // Sized for every key: growing the (ordered) map rehashed it four times per row.
        let mut m = Map::with_capacity(32);
        self.stats_fields(&mut |k, v| {
            m.insert(k.into(), v);
        });
        Value::Object(m)
    }

    /// The fields of [`Health::stats_json`], in its order, one call each: what the census streams
    /// straight to its output instead of building 200k ordered maps.
    pub fn stats_fields(&self, m: &mut dyn FnMut(&'static str, Value)) {
        m("slots", json!(self.slots));
        m("live", json!(self.live));
        m("deleted", json!(self.deleted));
        m("empty", json!(self.empty));
        m("bytes", json!(self.bytes));
        if let Some(mb) = &self.mem {
            m("bytes_exact", json!(mb.exact));
            m("heap", mb.heap_json());
            m("heap_share", json!(mb.heap_share().map(|x| (x * 1e6).round() / 1e6)));
            m("heap_in_use", json!(mb.heap_in_use));
            m("rebuild_bytes", json!(mb.rebuild));
        }
        m("fill", json!((self.fill() * 1e4).round() / 1e4));
        if let Some(c) = &self.classic {
            m("B", json!(c.b));
            m("flags", json!(c.flags));
            m("buckets", json!(c.buckets));
            m("bucket_size", json!(c.bucket_size));
            m("overflow_buckets", json!(c.overflow_buckets));
            m("noverflow", json!(c.noverflow));
            m("longest_chain", json!(c.longest_chain));
            m("growing", json!(c.oldbuckets != 0));
            m("oldbuckets", json!(format!("{:#x}", c.oldbuckets)));
            m("old_buckets", json!(c.old_buckets));
            m("evacuated_old", json!(c.evacuated_old));
            m("nevacuate", json!(c.nevacuate));
            m("same_size_grow", json!(c.same_size_grow));
            m("old_bytes", json!(c.old_bytes));
            m("evacuated_slots", json!(c.evacuated_slots));
            m("stale_buckets", json!(c.stale_buckets));
        }
        if let Some(s) = &self.swiss {
            m("small", json!(s.small));
            m("dir_len", json!(s.dir_len));
            m("global_depth", json!(s.global_depth));
            m("tables", json!(s.tables));
            m("groups", json!(s.groups));
            m("group_size", json!(s.group_size));
            m("capacity", json!(s.capacity));
            m("growth_left", json!(s.growth_left));
            m("stale_groups", json!(s.stale_groups));
            m("exhausted_tables", json!(s.exhausted_tables));
        }
    }
}

/// Walks the map at `addr` (the header's address) of type `m`.
pub fn walk(t: &Target, m: &MapType, addr: u64, v: &mut dyn Visitor) -> Result<Health> {
    walk_memory(&*t.mem, m, addr, v)
}

/// [`walk`] plus the map's memory from the heap index: `bytes` becomes the sum of the allocated sizes
/// of the map's objects. For the commands that report a map (not for nested maps being rendered).
pub fn walk_map(t: &Target, m: &MapType, addr: u64, v: &mut dyn Visitor) -> Result<Health> {
    let mut h = walk(t, m, addr, v)?;
    let mb = crate::heap::account::account(t, m, &h);
    h.bytes = mb.total;
    h.mem = Some(mb);
    Ok(h)
}

/// [`walk`] on any memory source: the decoders need nothing from the target but its bytes, so they
/// can be driven by synthetic images in tests and fuzzers.
pub fn walk_memory(mem: &dyn Memory, m: &MapType, addr: u64, v: &mut dyn Visitor) -> Result<Health> {
    let mut h = match &m.imp {
        Impl::Classic(c) => classic::walk(mem, m, c, addr, v)?,
        Impl::Swiss(s) => swiss::walk(mem, m, s, addr, v)?,
    };
    h.live_target = mem.is_live();
    h.interrupted = interrupted();
    Ok(h)
}

/// On a live target, whether the bytes decoded from `addr` read differently now: the region changed
/// while it was decoded, so what was reported from it may mix two states. A slot that reads the
/// same after its key and value were rendered still holds them, so the strings and objects it
/// points to were alive (and, being immutable or unchanged, correct) when they were read.
pub(crate) fn changed_since(mem: &dyn Memory, addr: u64, bytes: &[u8]) -> bool {
    if !mem.is_live() || bytes.is_empty() {
        return false;
    }
    let mut again = vec![0u8; bytes.len()];
    match mem.read(addr, &mut again) {
        Ok(()) => again != bytes,
        Err(_) => true,
    }
}

/// The one message for a live walk that saw its map change.
pub(crate) fn changed_message(regions: u64) -> String {
    format!("{regions} regions of the map (header, directory, tables, buckets or groups) changed while they were read: entries and counts may mix two states")
}

/// Hands the inline bytes of the live slots (bit i of `live` = slot i) of one bucket or group to
/// `Visitor::prefetch`. An indirect key or value (a pointer to a heap object of its own) is read by
/// the walk itself: the walk starts loading those objects here, so that their misses overlap too.
pub(crate) fn prefetch_slots(mem: &dyn Memory, v: &mut dyn Visitor, b: &[u8], sl: &crate::layout::Slots, live: u8) {
    if live == 0 {
        return;
    }
    for i in 0..8u64 {
        if live & (1 << i) != 0 {
            for (indirect, base, stride) in [(sl.key_indirect, sl.key_base, sl.key_stride), (sl.elem_indirect, sl.elem_base, sl.elem_stride)] {
                if indirect {
                    if let Some(obj) = mem.view(crate::memory::le_uint(b, (base + i * stride) as usize, 8), 1) {
                        crate::value::prefetch_read(obj.as_ptr());
                    }
                }
            }
            if sl.key_indirect && sl.elem_indirect {
                continue;
            }
            let inline = |indirect: bool, base: u64, stride: u64| -> &[u8] {
                if indirect {
                    &[]
                } else {
                    b.get((base + i * stride) as usize..).unwrap_or(&[])
                }
            };
            v.prefetch(inline(sl.key_indirect, sl.key_base, sl.key_stride), inline(sl.elem_indirect, sl.elem_base, sl.elem_stride));
        }
    }
}

/// Bulk reads from this size on go through the file (`read_chunk`); smaller ones through the mapping:
/// a census walks 220k small maps, and a `pread` each cost it more system time than the faults.
/// Below a Go 1.24+ table's group array (128 groups, 40-60 KiB for common slot sizes).
const FILE_READ_MIN: usize = 16 << 10;

/// `len` bytes of a bucket or group array at `addr` for a walk's bulk read: copied into `buf` from
/// the source's file when it has one and the read is at least [`FILE_READ_MIN`] (`Memory::read_file`:
/// no page faults, nothing mapped, nothing to release: the bool is true), else the source's bytes (a
/// view of a core's mapping).
pub(crate) fn read_chunk<'a>(mem: &'a dyn Memory, addr: u64, len: usize, buf: &'a mut Vec<u8>) -> Result<(std::borrow::Cow<'a, [u8]>, bool)> {
    use crate::memory::MemoryExt;
    if (FILE_READ_MIN..=crate::memory::MAX_READ).contains(&len) && !mem.is_live() && file_reads() {
        if buf.len() < len {
            buf.resize(len, 0);
        }
        if mem.read_file(addr, &mut buf[..len]) {
            return Ok((std::borrow::Cow::Borrowed(&buf[..len]), true));
        }
    }
    Ok((mem.bytes(addr, len)?, false))
}

/// `GOMAP_FILE_READS=0`: bulk reads through the mapping, as before `read_chunk` (benchmarks compare).
fn file_reads() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("GOMAP_FILE_READS").map_or(true, |v| v != "0"))
}

/// Reads a slot's key or elem: in place, or behind a pointer for indirect slots.
/// Where a slot's key or element lives: in the slot itself, or (indirect) where its pointer points.
pub(crate) fn slot_addr(slot_addr: u64, inline: &[u8], indirect: bool) -> u64 {
    if indirect {
        crate::memory::le_uint(inline, 0, 8)
    } else {
        slot_addr
    }
}

pub(crate) fn slot_bytes<'a>(
    mem: &dyn Memory,
    inline: &'a [u8],
    indirect: bool,
    size: u64,
    scratch: &'a mut Vec<u8>,
) -> Option<&'a [u8]> {
    if !indirect {
        return inline.get(..size as usize);
    }
    let p = crate::memory::le_uint(inline, 0, 8);
    scratch.resize(size as usize, 0);
    mem.read(p, scratch).ok()?;
    Some(&scratch[..])
}
