//! The Go executable: ELF sections, build info and DWARF, opened once and shared.

pub mod buildinfo;
pub mod dwarf;
pub mod frames;
pub mod unwind;

use crate::error::{Error, Result};
use crate::memory::exe::ExeImage;
pub use buildinfo::BuildInfo;
pub use dwarf::{Die, DwarfInfo, Field, Global, TypeId, TypeInfo};
use memmap2::Mmap;
use object::{Object, ObjectSection, ObjectSymbol};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Binary {
    pub path: PathBuf,
    pub image: ExeImage,
    pub build: BuildInfo,
    pub dwarf: DwarfInfo,
    /// A few runtime symbols the engine needs (link-time addresses).
    pub symbols: HashMap<String, u64>,
    /// Function symbols (link-time start address, name), sorted: names a func value's code address.
    pub functions: Vec<(u64, Box<str>)>,
}

const WANTED_SYMBOLS: &[&str] = &["runtime.types", "runtime.etypes", "runtime.firstmoduledata", "runtime.buildVersion"];

impl Binary {
    pub fn open(path: &Path) -> Result<Binary> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: read-only private mapping; the bytes are treated as untrusted input.
        let data = Arc::new(unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?);
        Binary::from_mmap(path, data)
    }

    /// Parses an executable already in memory (fuzz targets and tests); `path` only names it.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Binary> {
        Binary::from_mmap(path, Arc::new(anon_copy(bytes).map_err(|e| Error::io(path, e))?))
    }

    /// Parses a mapped executable. Every byte is untrusted: errors, never panics.
    pub fn from_mmap(path: &Path, data: Arc<Mmap>) -> Result<Binary> {
        let p = path.display();
        let obj = object::File::parse(&data[..]).map_err(|_| Error::Binary(format!("{p}: not an executable this tool can read (expected a 64-bit ELF Go binary)")))?;
        if obj.format() != object::BinaryFormat::Elf || !obj.is_64() {
            return Err(Error::Binary(format!("{p}: not a 64-bit ELF executable")));
        }
        if obj.kind() == object::ObjectKind::Core {
            return Err(Error::Binary(format!("{p}: is a core dump; pass it with --core and the executable with --binary")));
        }
        let mut symbols = HashMap::new();
        let mut functions = Vec::new();
        for s in obj.symbols() {
            if let Ok(n) = s.name() {
                if s.kind() == object::SymbolKind::Text && s.address() != 0 {
                    functions.push((s.address(), n.into()));
                }
                if WANTED_SYMBOLS.contains(&n) {
                    symbols.insert(n.to_string(), s.address());
                }
            }
        }
        let build = obj
            .section_by_name(".go.buildinfo")
            .and_then(|s| s.data().ok())
            .and_then(BuildInfo::parse);
        let build = match build {
            Some(b) => b,
            None if symbols.contains_key("runtime.buildVersion") => BuildInfo::default(),
            None => return Err(Error::Binary(format!("{p}: not a Go program (no .go.buildinfo section and no Go runtime symbols)"))),
        };
        let dwarf = DwarfInfo::load(&obj).map_err(|e| Error::Binary(format!("{p}: {e}")))?;
        if dwarf.types.is_empty() {
            return Err(Error::Binary(format!("{p}: the DWARF debug info has no types")));
        }
        let image = ExeImage::parse(data.clone())?;
        functions.sort_unstable();
        let mut bin = Binary { path: path.to_path_buf(), image, build, dwarf, symbols, functions };
        if bin.build.version.is_empty() {
            bin.build = BuildInfo::from_version("unknown");
        }
        Ok(bin)
    }

    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.symbols.get(name).copied()
    }

    /// The function whose code starts at or before the link-time address `pc` (the symbol table
    /// has no sizes for Go functions; the next symbol ends the previous one).
    pub fn function_at(&self, pc: u64) -> Option<&str> {
        let i = self.functions.partition_point(|(a, _)| *a <= pc);
        let (_, name) = self.functions.get(i.checked_sub(1)?)?;
        Some(name)
    }
}

/// A read-only anonymous mapping holding a copy of `bytes`: lets in-memory inputs use the same
/// mmap-based readers as files.
pub fn anon_copy(bytes: &[u8]) -> std::io::Result<Mmap> {
    let mut m = memmap2::MmapMut::map_anon(bytes.len())?;
    m.copy_from_slice(bytes);
    m.make_read_only()
}
