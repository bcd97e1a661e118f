//! Memory sources: where the bytes of the inspected program come from.
//!
//! A source only ever *reads*. The engine talks to every source through [`Memory`], so a core file,
//! a live process and a debugger's memory callback are interchangeable. Sources that hold the whole
//! image in a mapping (cores) hand out zero-copy views; the others copy.

pub mod core;
pub mod exe;
pub mod image;
pub mod live;

use crate::error::{Error, Result};
use std::borrow::Cow;

/// The largest single read any decoder may ask for. A corrupt length field (a string of 2^40 bytes,
/// a bucket array of 2^60 buckets) must fail fast instead of allocating.
pub const MAX_READ: usize = 256 << 20;

pub trait Memory: Send + Sync {
    /// Fill `buf` with the bytes at `addr`, or fail without partial results.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()>;
    /// A zero-copy view of `len` bytes at `addr`, when the source has them contiguous in memory.
    fn view(&self, _addr: u64, _len: usize) -> Option<&[u8]> {
        None
    }
    /// A one-line description for headers and errors ("core /tmp/core", "pid 1234").
    fn describe(&self) -> String;
    /// The auxiliary vector's AT_ENTRY, if the source knows it: the runtime entry point, from which the
    /// load bias of a position-independent executable follows.
    fn aux_entry(&self) -> Option<u64> {
        None
    }
    /// The file this source maps, if any (a core): output files must never replace it.
    fn backing_file(&self) -> Option<&std::path::Path> {
        None
    }
    /// True when the target may change while we read it.
    fn is_live(&self) -> bool {
        false
    }
    /// A hint that the walk is done with these bytes: a source that maps them may drop their pages,
    /// so that streaming a map's bucket arrays keeps the resident set flat whatever the map's size.
    fn release(&self, _addr: u64, _len: usize) {}
    /// Fills `buf` with the bytes at `addr` by reading the file the source maps (a core), without
    /// mapping them: for a walk's bulk reads of bucket and group arrays, read once and in order,
    /// whose page faults, TLB misses and `release` cost more than the copy. False when the source
    /// cannot (not a file, bytes not in it): then `bytes`.
    fn read_file(&self, _addr: u64, _buf: &mut [u8]) -> bool {
        false
    }
    /// Bytes the source should hold but does not (a truncated core read with `--partial`).
    fn missing_bytes(&self) -> u64 {
        0
    }
    /// The registers of every thread, when the source has them (a core's NT_PRSTATUS notes, a
    /// debugger's threads). Empty for a live process read through /proc: its threads run on.
    fn threads(&self) -> &[ThreadRegs] {
        &[]
    }
}

/// One thread's registers (x86-64): enough to unwind its stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadRegs {
    /// The kernel's thread id (LWP), which the Go runtime keeps in `m.procid`.
    pub lwp: u64,
    pub pc: u64,
    pub sp: u64,
    pub bp: u64,
}

/// Typed little-endian reads on top of any source (Go targets we support are little-endian).
pub trait MemoryExt: Memory {
    fn bytes(&self, addr: u64, len: usize) -> Result<Cow<'_, [u8]>> {
        if len > MAX_READ {
            return Err(Error::unreadable(addr, len, format!("larger than the {} MiB read limit", MAX_READ >> 20)));
        }
        if let Some(v) = self.view(addr, len) {
            return Ok(Cow::Borrowed(v));
        }
        let mut buf = vec![0u8; len];
        self.read(addr, &mut buf)?;
        Ok(Cow::Owned(buf))
    }
    fn u8_at(&self, addr: u64) -> Result<u8> {
        let mut b = [0u8; 1];
        self.read(addr, &mut b)?;
        Ok(b[0])
    }
    fn u64_at(&self, addr: u64) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// An unsigned integer of 1, 2, 4 or 8 bytes.
    fn uint_at(&self, addr: u64, size: u64) -> Result<u64> {
        let mut b = [0u8; 8];
        let n = (size as usize).min(8);
        self.read(addr, &mut b[..n])?;
        Ok(u64::from_le_bytes(b))
    }
}
impl<T: Memory + ?Sized> MemoryExt for T {}

/// Little-endian unsigned integer of `size` bytes from a byte slice (missing bytes read as zero).
#[inline]
pub fn le_uint(bytes: &[u8], off: usize, size: usize) -> u64 {
    let mut b = [0u8; 8];
    let n = size.min(8);
    if let Some(src) = off.checked_add(n).and_then(|end| bytes.get(off..end)) {
        b[..n].copy_from_slice(src);
    }
    u64::from_le_bytes(b)
}

/// Memory from a closure: the adapter a debugger front end uses (gdb/LLDB read callbacks), with a
/// page cache so that the many small reads of headers and strings cost one callback per page.
pub struct CallbackMemory<F: Fn(u64, usize) -> Result<Vec<u8>> + Send + Sync> {
    read_fn: F,
    name: String,
    entry: Option<u64>,
    cache: std::sync::Mutex<std::collections::HashMap<u64, std::sync::Arc<Vec<u8>>>>,
    /// False when the debugger reads a core (findings then speak of a core, not a running process).
    live: bool,
}

const PAGE: u64 = 4096;
const CACHE_PAGES: usize = 16384; // 64 MiB at most

impl<F: Fn(u64, usize) -> Result<Vec<u8>> + Send + Sync> CallbackMemory<F> {
    pub fn new(name: String, entry: Option<u64>, read_fn: F) -> Self {
        CallbackMemory { read_fn, name, entry, cache: Default::default(), live: true }
    }

    /// Whether the memory behind the callback can change (a process) or not (a core).
    pub fn live(mut self, live: bool) -> Self {
        self.live = live;
        self
    }
    fn page(&self, page: u64) -> Result<std::sync::Arc<Vec<u8>>> {
        if let Some(p) = self.cache.lock().ok().and_then(|c| c.get(&page).cloned()) {
            return Ok(p);
        }
        let data = (self.read_fn)(page, PAGE as usize)?;
        if data.len() != PAGE as usize {
            return Err(Error::unreadable(page, PAGE as usize, "short read"));
        }
        let data = std::sync::Arc::new(data);
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE_PAGES {
                c.clear();
            }
            c.insert(page, data.clone());
        }
        Ok(data)
    }
}

impl<F: Fn(u64, usize) -> Result<Vec<u8>> + Send + Sync> Memory for CallbackMemory<F> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        // Large reads (bucket arrays) go straight through in one call; small ones through the cache.
        if buf.len() as u64 >= 4 * PAGE {
            let data = (self.read_fn)(addr, buf.len())?;
            if data.len() != buf.len() {
                return Err(Error::unreadable(addr, buf.len(), "short read"));
            }
            buf.copy_from_slice(&data);
            return Ok(());
        }
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr.checked_add(done as u64).ok_or_else(|| Error::unreadable(addr, buf.len(), "address overflow"))?;
            let page = a & !(PAGE - 1);
            let off = (a - page) as usize;
            let p = self.page(page).or_else(|_| {
                // The page may straddle the end of a mapping: fall back to the exact bytes.
                let n = (buf.len() - done).min(PAGE as usize - off);
                let d = (self.read_fn)(a, n)?;
                let mut v = vec![0u8; PAGE as usize];
                if d.len() != n {
                    return Err(Error::unreadable(a, n, "short read"));
                }
                v[off..off + n].copy_from_slice(&d);
                Ok(std::sync::Arc::new(v))
            })?;
            let n = (buf.len() - done).min(PAGE as usize - off);
            buf[done..done + n].copy_from_slice(&p[off..off + n]);
            done += n;
        }
        Ok(())
    }
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn aux_entry(&self) -> Option<u64> {
        self.entry
    }
    fn is_live(&self) -> bool {
        self.live
    }
}
