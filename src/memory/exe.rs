//! The executable's own loadable segments, as a fallback memory source.
//!
//! Kernel core dumps leave out read-only file-backed mappings (.text, .rodata, type descriptors,
//! string literals): those bytes are read from the executable at the same address instead.

use crate::error::{Error, Result};
use memmap2::Mmap;
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use std::sync::Arc;

#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
}

#[derive(Clone)]
pub struct ExeImage {
    data: Arc<Mmap>,
    pub segments: Vec<Segment>,
    pub entry: u64,
    pub pie: bool,
}

impl ExeImage {
    pub fn parse(data: Arc<Mmap>) -> Result<Self> {
        let hdr = elf::FileHeader64::<object::Endianness>::parse(&data[..])
            .map_err(|e| Error::Binary(format!("not a 64-bit ELF executable: {e}")))?;
        let endian = hdr.endian().map_err(|e| Error::Binary(format!("bad ELF header: {e}")))?;
        let mut segments = Vec::new();
        for ph in hdr.program_headers(endian, &data[..]).map_err(|e| Error::Binary(format!("bad program headers: {e}")))? {
            if ph.p_type(endian) == elf::PT_LOAD {
                segments.push(Segment {
                    vaddr: ph.p_vaddr(endian),
                    memsz: ph.p_memsz(endian),
                    offset: ph.p_offset(endian),
                    filesz: ph.p_filesz(endian),
                });
            }
        }
        let entry = hdr.e_entry(endian);
        let pie = hdr.e_type(endian) == elf::ET_DYN;
        Ok(ExeImage { data, segments, entry, pie })
    }

    /// Bytes of the executable file at a link-time virtual address, if they are in the file.
    pub fn view(&self, vaddr: u64, len: usize) -> Option<&[u8]> {
        let s = self.segments.iter().find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz)?;
        let rel = vaddr - s.vaddr;
        if rel.checked_add(len as u64)? > s.filesz {
            return None;
        }
        let start = usize::try_from(s.offset.checked_add(rel)?).ok()?;
        self.data.get(start..start.checked_add(len)?)
    }

    /// The first page of the file as it is mapped: the ELF header and program headers, which the
    /// kernel also dumps into cores. Comparing the two tells whether a core belongs to this file.
    pub fn header_page(&self) -> Option<(u64, &[u8])> {
        let s = self.segments.iter().find(|s| s.offset == 0)?;
        let n = (s.filesz.min(4096)) as usize;
        Some((s.vaddr, self.data.get(..n)?))
    }
}

/// The executable file alone as memory: its PT_LOAD segments at their link-time addresses. For
/// commands that need no process (`layout`): static data reads, anything on the heap does not exist.
pub struct ExeMemory {
    pub image: ExeImage,
    pub path: std::path::PathBuf,
}

impl super::Memory for ExeMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        match self.image.view(addr, buf.len()) {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(Error::unreadable(addr, buf.len(), "not in the executable file (no core or process given)")),
        }
    }
    fn view(&self, addr: u64, len: usize) -> Option<&[u8]> {
        self.image.view(addr, len)
    }
    fn describe(&self) -> String {
        format!("executable {} only (no core or process)", self.path.display())
    }
}
