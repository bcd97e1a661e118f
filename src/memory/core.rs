//! ELF core files, memory-mapped. Segments the kernel did not dump (read-only file-backed mappings)
//! are read from the executable, so string literals and type descriptors resolve.

use super::exe::ExeImage;
use super::Memory;
use crate::error::{Error, Result};
use memmap2::Mmap;
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use std::path::Path;

const NT_FILE: u32 = 0x4649_4c45;
const AT_ENTRY: u64 = 9;
/// A cap on the threads read from a core's notes.
const MAX_THREADS: usize = 1 << 16;

/// x86-64 `struct elf_prstatus` (the kernel's ABI, linux/elfcore.h): `pr_pid` at 32, and from 112
/// `pr_reg`, a `struct user_regs_struct` (asm/user_64.h): r15 r14 r13 r12 rbp rbx r11 r10 r9 r8
/// rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs.
fn parse_prstatus(d: &[u8]) -> Option<super::ThreadRegs> {
    const PID: usize = 32;
    const REGS: usize = 112;
    let reg = |i: usize| -> Option<u64> { Some(u64::from_le_bytes(d.get(REGS + i * 8..REGS + i * 8 + 8)?.try_into().ok()?)) };
    let pid = u32::from_le_bytes(d.get(PID..PID + 4)?.try_into().ok()?);
    Some(super::ThreadRegs { lwp: pid as u64, bp: reg(4)?, pc: reg(16)?, sp: reg(19)? })
}

#[derive(Clone, Copy, Debug)]
struct Seg {
    vaddr: u64,
    memsz: u64,
    offset: u64,
    filesz: u64,
}

/// One NT_FILE entry: a file mapped into the process when it dumped.
#[derive(Clone, Debug)]
pub struct FileMapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub path: String,
}

pub struct CoreMemory {
    map: Mmap,
    segs: Vec<Seg>,
    pub files: Vec<FileMapping>,
    entry: Option<u64>,
    exe: Option<(ExeImage, u64)>,
    path: String,
    /// Whether `release` may drop pages: only for the file mapping `open` makes.
    release_pages: bool,
    /// The segment `find` returned last: a walk reads from one heap segment millions of times.
    last: std::sync::atomic::AtomicUsize,
    /// Address ranges the core's headers promise but a truncated file lacks (`--partial`).
    cut: Vec<(u64, u64)>,
    /// Every thread's registers, from the NT_PRSTATUS notes (x86-64 cores only).
    threads: Vec<super::ThreadRegs>,
    /// Small released ranges (file offsets, window-aligned) not dropped yet, and their bytes.
    pending: std::sync::Mutex<(Vec<(usize, usize)>, usize)>,
    /// The core file, for `read_file` (only when `open` mapped it).
    file: Option<std::fs::File>,
}

/// Releases below this size wait in `pending`: a census walks 200k small maps, and one `madvise`
/// each (with the TLB flush, and the refault of the window the next map shares) was half its time.
const RELEASE_DIRECT: usize = 1 << 20;
/// Pending windows are dropped together once they cover this much. (Arrays of 16 KiB and more are
/// read from the file, not through the mapping: see `decode::read_chunk`.)
const RELEASE_BATCH: usize = 32 << 20;

impl CoreMemory {
    /// Drops the page table entries of file bytes `first..end` (page-aligned, inside the mapping).
    fn drop_pages(&self, first: usize, end: usize) {
        if end > first {
            // SAFETY: `release_pages` is only set by `open`, whose mapping is a private, read-only
            // mapping of a file that is never written through it. MADV_DONTNEED there only drops page
            // table entries: the next access faults the same bytes back in from the page cache, so a
            // view handed out earlier still reads the same content.
            let _ = unsafe { self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, end - first) };
        }
    }

    /// Opens a core. With `exe`, bytes missing from the core are read from the executable, and the
    /// core is checked to belong to it.
    pub fn open(path: &Path, exe: Option<ExeImage>) -> Result<Self> {
        CoreMemory::open_partial(path, exe, false)
    }

    /// `open`; with `partial`, a truncated core is read for what it holds, and reads of what was cut
    /// off fail with an error that says so (instead of refusing the whole core).
    pub fn open_partial(path: &Path, exe: Option<ExeImage>, partial: bool) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the mapping is read-only and private; a core being rewritten under us would only
        // give wrong bytes, which every decoder already treats as untrusted.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let mut core = CoreMemory::parse(map, path.display().to_string(), exe, partial)?;
        core.release_pages = true;
        core.file = Some(file);
        Ok(core)
    }

    /// A core already in memory (fuzz targets and tests); `name` is how errors refer to it.
    pub fn from_bytes(name: &str, bytes: &[u8], exe: Option<ExeImage>) -> Result<Self> {
        let map = crate::binary::anon_copy(bytes).map_err(|e| Error::Core(format!("{name}: {e}")))?;
        CoreMemory::from_mmap(map, name.to_string(), exe)
    }

    /// Parses a mapped core. Every byte is untrusted: errors, never panics.
    pub fn from_mmap(map: Mmap, pname: String, exe: Option<ExeImage>) -> Result<Self> {
        CoreMemory::parse(map, pname, exe, false)
    }

    fn parse(map: Mmap, pname: String, exe: Option<ExeImage>, partial: bool) -> Result<Self> {
        let hdr = elf::FileHeader64::<object::Endianness>::parse(&map[..])
            .map_err(|_| Error::Core(format!("{pname}: not an ELF core file")))?;
        let endian = hdr.endian().map_err(|_| Error::Core(format!("{pname}: not an ELF core file")))?;
        if hdr.e_type(endian) != elf::ET_CORE {
            return Err(Error::Core(format!("{pname}: is an ELF file but not a core dump (pass it as --binary)")));
        }
        let phdrs = hdr
            .program_headers(endian, &map[..])
            .map_err(|e| Error::Core(format!("{pname}: unreadable program headers: {e}")))?;
        let mut segs = Vec::new();
        let mut files = Vec::new();
        let mut entry = None;
        let mut threads = Vec::new();
        let x86_64 = hdr.e_machine(endian) == elf::EM_X86_64;
        let mut need = 0u64;
        for ph in phdrs {
            match ph.p_type(endian) {
                elf::PT_LOAD => {
                    let s = Seg {
                        vaddr: ph.p_vaddr(endian),
                        memsz: ph.p_memsz(endian),
                        offset: ph.p_offset(endian),
                        filesz: ph.p_filesz(endian),
                    };
                    need = need.max(s.offset.saturating_add(s.filesz));
                    segs.push(s);
                }
                elf::PT_NOTE => {
                    let Ok(Some(mut notes)) = ph.notes(endian, &map[..]) else { continue };
                    while let Ok(Some(note)) = notes.next() {
                        if note.name() != b"CORE" {
                            continue;
                        }
                        match note.n_type(endian).0 {
                            NT_FILE => files = parse_nt_file(note.desc()),
                            x if x == elf::NT_AUXV.0 => entry = parse_auxv(note.desc(), AT_ENTRY),
                            x if x == elf::NT_PRSTATUS.0 && x86_64 && threads.len() < MAX_THREADS => {
                                threads.extend(parse_prstatus(note.desc()))
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        let mut cut = Vec::new();
        if need > map.len() as u64 {
            if !partial {
                return Err(Error::Core(format!(
                    "{pname}: core file is truncated ({} of {} bytes): it was cut short while being written (disk full, or ulimit -c too small); --partial reads what is there",
                    map.len(),
                    need
                )));
            }
            let have = map.len() as u64;
            for s in segs.iter_mut() {
                let end = s.offset.saturating_add(s.filesz);
                if end > have {
                    let kept = have.saturating_sub(s.offset).min(s.filesz);
                    cut.push((s.vaddr.saturating_add(kept), s.vaddr.saturating_add(s.filesz)));
                    s.filesz = kept;
                }
            }
        }
        if segs.is_empty() {
            return Err(Error::Core(format!("{pname}: core file has no memory segments")));
        }
        segs.sort_by_key(|s| s.vaddr);
        let mut core = CoreMemory { map, segs, files, entry, exe: None, path: pname, release_pages: false, last: Default::default(), cut, threads, pending: Default::default(), file: None };
        if let Some(exe) = exe {
            let bias = core.load_bias(&exe);
            core.check_belongs(&exe, bias)?;
            core.exe = Some((exe, bias));
        }
        Ok(core)
    }

    /// Where the process had the executable: the start of the NT_FILE mapping at file offset 0 of
    /// the file that holds the entry point. None without NT_FILE or auxv.
    fn mapped_base(&self) -> Option<(u64, &str)> {
        let e = self.entry?;
        let exe = self.files.iter().find(|f| f.start <= e && e < f.end)?;
        let base = self.files.iter().filter(|f| f.path == exe.path && f.offset == 0).map(|f| f.start).min()?;
        Some((base, &exe.path))
    }

    /// Runtime minus link-time address of the executable (0 unless PIE): from where NT_FILE says
    /// the file was mapped, else from the entry point.
    fn load_bias(&self, exe: &ExeImage) -> u64 {
        if !exe.pie {
            return 0;
        }
        match (self.mapped_base(), exe.header_page()) {
            (Some((base, _)), Some((vaddr, _))) => base.wrapping_sub(vaddr),
            _ => self.entry.map(|e| e.wrapping_sub(exe.entry)).unwrap_or(0),
        }
    }

    /// The core must be of this very build: the process's entry point must be the binary's (moved
    /// by the load bias), and the first page of the executable, which the kernel dumps (ELF and
    /// program headers, and the build-ID notes right after them), must equal the file's.
    fn check_belongs(&self, exe: &ExeImage, bias: u64) -> Result<()> {
        let who = match self.mapped_base().map(|(_, p)| p).or_else(|| self.files.first().map(|f| f.path.as_str())) {
            Some(p) => format!(" (the core is of {p})"),
            None => String::new(),
        };
        let mismatch = |what: String| {
            Err(Error::Core(format!(
                "{}: core file does not belong to this binary: {what}{who}; pass the executable the core was dumped from",
                self.path
            )))
        };
        let page = exe.header_page();
        let core_page = page.and_then(|(vaddr, p)| self.core_view(vaddr.wrapping_add(bias), p.len()));
        let ids = |core_page: &[u8]| match (build_ids(core_page), page.map(|(_, p)| build_ids(p))) {
            (Some(c), Some(Some(b))) if c != b => format!("build ID {c} in the core, {b} in the binary"),
            _ => "its ELF header page differs".to_string(),
        };
        if let Some(e) = self.entry {
            if e != exe.entry.wrapping_add(bias) {
                return match core_page {
                    Some(cp) if page.is_some_and(|(_, p)| p != cp) => mismatch(ids(cp)),
                    _ => mismatch(format!("entry point {e:#x} != {:#x}", exe.entry.wrapping_add(bias))),
                };
            }
        }
        if let (Some((_, p)), Some(cp)) = (page, core_page) {
            if p != cp {
                return mismatch(ids(cp));
            }
        }
        Ok(())
    }

    fn is_cut(&self, addr: u64, len: usize) -> bool {
        let end = addr.saturating_add(len as u64);
        self.cut.iter().any(|&(a, b)| addr < b && a < end)
    }

    fn find(&self, addr: u64) -> Option<&Seg> {
        use std::sync::atomic::Ordering::Relaxed;
        // The last segment found, when it is also what the search below would pick (the last one
        // starting at or below `addr`): same answer, without the search.
        let j = self.last.load(Relaxed);
        if let Some(s) = self.segs.get(j) {
            if s.vaddr <= addr && addr - s.vaddr < s.memsz && self.segs.get(j + 1).map_or(true, |n| n.vaddr > addr) {
                return Some(s);
            }
        }
        let i = self.segs.partition_point(|s| s.vaddr <= addr).checked_sub(1)?;
        let s = self.segs.get(i)?;
        self.last.store(i, Relaxed);
        (addr - s.vaddr < s.memsz).then_some(s)
    }

    /// Bytes that the core itself holds.
    fn core_view(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let s = self.find(addr)?;
        let rel = addr - s.vaddr;
        if rel.checked_add(len as u64)? > s.filesz {
            return None;
        }
        let start = usize::try_from(s.offset + rel).ok()?;
        self.map.get(start..start.checked_add(len)?)
    }

    fn exe_view(&self, addr: u64, len: usize) -> Option<&[u8]> {
        // What a truncated core lost is not the executable's initial bytes.
        if self.is_cut(addr, len) {
            return None;
        }
        let (exe, bias) = self.exe.as_ref()?;
        exe.view(addr.wrapping_sub(*bias), len)
    }
}

/// The build IDs in the first page of an ELF file as mapped: "go:<Go build ID>" and/or
/// "gnu:<hex>" from the PT_NOTE segments that lie inside the page. None when there is none.
pub fn build_ids(page: &[u8]) -> Option<String> {
    let hdr = elf::FileHeader64::<object::Endianness>::parse(page).ok()?;
    let endian = hdr.endian().ok()?;
    let mut ids = Vec::new();
    for ph in hdr.program_headers(endian, page).ok()? {
        let Ok(Some(mut notes)) = ph.notes(endian, page) else { continue };
        while let Ok(Some(note)) = notes.next() {
            match (note.name(), note.n_type(endian).0) {
                (b"Go", 4) => ids.push(format!("go:{}", String::from_utf8_lossy(note.desc()))),
                (b"GNU", t) if t == elf::NT_GNU_BUILD_ID.0 => {
                    ids.push(format!("gnu:{}", note.desc().iter().map(|b| format!("{b:02x}")).collect::<String>()))
                }
                _ => {}
            }
        }
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

fn parse_nt_file(desc: &[u8]) -> Vec<FileMapping> {
    let word = |i: usize| desc.get(i * 8..i * 8 + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    let (Some(count), Some(page)) = (word(0), word(1)) else { return Vec::new() };
    let count = count.min(1 << 16) as usize;
    let names_at = 16 + count * 24;
    let mut names = desc.get(names_at..).unwrap_or(&[]).split(|&b| b == 0);
    (0..count)
        .filter_map(|i| {
            let (start, end, off) = (word(2 + i * 3)?, word(3 + i * 3)?, word(4 + i * 3)?);
            let path = String::from_utf8_lossy(names.next()?).into_owned();
            Some(FileMapping { start, end, offset: off.saturating_mul(page), path })
        })
        .collect()
}

/// The value of one auxv entry (pairs of u64 words).
pub(crate) fn parse_auxv(desc: &[u8], key: u64) -> Option<u64> {
    desc.chunks_exact(16).find_map(|c| {
        let k = u64::from_le_bytes(c[..8].try_into().ok()?);
        (k == key).then(|| u64::from_le_bytes(c[8..].try_into().unwrap_or([0; 8])))
    })
}

impl Memory for CoreMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        match self.view(addr, buf.len()) {
            Some(v) => {
                buf.copy_from_slice(v);
                Ok(())
            }
            None => {
                // Slow path: the range straddles segments (or core and executable).
                let mut done = 0usize;
                while done < buf.len() {
                    let a = addr.wrapping_add(done as u64);
                    let chunk = match self.find(a) {
                        // Bytes left in the segment; `find` guarantees a - vaddr < memsz (no overflow
                        // even for a hostile memsz near 2^64).
                        Some(s) => usize::try_from(s.memsz - (a - s.vaddr)).unwrap_or(usize::MAX).min(buf.len() - done),
                        None => buf.len() - done,
                    };
                    // Within one segment, try the core then the executable, byte range by range.
                    let v = self
                        .core_view(a, chunk)
                        .or_else(|| self.exe_view(a, chunk))
                        .ok_or_else(|| {
                            let why = if self.is_cut(a, chunk) {
                                format!("cut off: {} is truncated", self.path)
                            } else {
                                format!("not in {}", self.path)
                            };
                            Error::unreadable(addr, buf.len(), why)
                        })?;
                    buf[done..done + chunk].copy_from_slice(v);
                    done += chunk;
                }
                Ok(())
            }
        }
    }
    fn view(&self, addr: u64, len: usize) -> Option<&[u8]> {
        self.core_view(addr, len).or_else(|| self.exe_view(addr, len))
    }
    fn release(&self, addr: u64, len: usize) {
        if !self.release_pages {
            return;
        }
        let Some(s) = self.find(addr) else { return };
        let rel = addr - s.vaddr;
        if rel.saturating_add(len as u64) > s.filesz {
            return;
        }
        let Ok(start) = usize::try_from(s.offset + rel) else { return };
        // Rounded out to the kernel's fault-around window (64 KiB): a fault maps that whole window,
        // and swiss maps' many small group arrays would otherwise leave their neighbours resident.
        // Dropping a page someone still needs only costs a fault to bring it back.
        const WINDOW: usize = 64 << 10;
        let first = start & !(WINDOW - 1);
        let end = start.saturating_add(len).next_multiple_of(WINDOW).min(self.map.len()) & !4095;
        if end <= first {
            return;
        }
        if end - first >= RELEASE_DIRECT {
            self.drop_pages(first, end);
            return;
        }
        let Ok(mut p) = self.pending.lock() else { return };
        let (ranges, bytes) = &mut *p;
        // Releases come in address order within a map and mostly across maps (the census sorts
        // them): merge with the last range when they touch.
        match ranges.last_mut() {
            Some(last) if first <= last.1 && end >= last.0 => {
                let (lo, hi) = (last.0.min(first), last.1.max(end));
                *bytes = (*bytes - (last.1 - last.0)) + (hi - lo);
                *last = (lo, hi);
            }
            _ => {
                ranges.push((first, end));
                *bytes += end - first;
            }
        }
        if *bytes >= RELEASE_BATCH || ranges.len() >= 4096 {
            ranges.sort_unstable();
            let mut cur: Option<(usize, usize)> = None;
            for &(lo, hi) in ranges.iter() {
                cur = match cur {
                    Some((a, b)) if lo <= b => Some((a, b.max(hi))),
                    Some((a, b)) => {
                        self.drop_pages(a, b);
                        Some((lo, hi))
                    }
                    None => Some((lo, hi)),
                };
            }
            if let Some((a, b)) = cur {
                self.drop_pages(a, b);
            }
            ranges.clear();
            *bytes = 0;
        }
    }
    fn read_file(&self, addr: u64, buf: &mut [u8]) -> bool {
        use std::os::unix::fs::FileExt;
        let Some(file) = &self.file else { return false };
        let Some(s) = self.find(addr) else { return false };
        let rel = addr - s.vaddr;
        // Only what `core_view` would hand out: bytes the core itself holds, inside the mapping.
        match rel.checked_add(buf.len() as u64) {
            Some(end) if end <= s.filesz => {}
            _ => return false,
        }
        let Some(off) = s.offset.checked_add(rel) else { return false };
        if off.saturating_add(buf.len() as u64) > self.map.len() as u64 {
            return false;
        }
        file.read_exact_at(buf, off).is_ok()
    }
    fn describe(&self) -> String {
        format!("core {}", self.path)
    }
    fn backing_file(&self) -> Option<&std::path::Path> {
        Some(std::path::Path::new(&self.path))
    }
    /// Bytes the core's headers describe but a truncated file does not hold.
    fn missing_bytes(&self) -> u64 {
        self.cut.iter().map(|(a, b)| b.saturating_sub(*a)).sum()
    }
    fn aux_entry(&self) -> Option<u64> {
        self.entry
    }
    fn threads(&self) -> &[super::ThreadRegs] {
        &self.threads
    }
}

#[cfg(test)]
mod prstatus_tests {
    use super::parse_prstatus;

    #[test]
    fn registers_at_the_kernel_offsets() {
        let mut d = vec![0u8; 336];
        d[32..36].copy_from_slice(&4242u32.to_le_bytes());
        d[144..152].copy_from_slice(&0x7000u64.to_le_bytes()); // rbp
        d[240..248].copy_from_slice(&0x401000u64.to_le_bytes()); // rip
        d[264..272].copy_from_slice(&0xc000_0100_00u64.to_le_bytes()); // rsp
        let r = parse_prstatus(&d).expect("a whole prstatus");
        assert_eq!((r.lwp, r.pc, r.sp, r.bp), (4242, 0x401000, 0xc000_0100_00, 0x7000));
    }

    #[test]
    fn a_short_note_is_no_thread() {
        for n in [0, 31, 36, 200, 271] {
            assert!(parse_prstatus(&vec![0xffu8; n]).is_none(), "{n} bytes");
        }
    }
}
