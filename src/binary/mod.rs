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
        for s in obj.symbols() {
            if let Ok(n) = s.name() {
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
        let mut bin = Binary { path: path.to_path_buf(), image, build, dwarf, symbols };
        if bin.build.version.is_empty() {
            bin.build = BuildInfo::from_version("unknown");
        }
        Ok(bin)
    }

    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.symbols.get(name).copied()
    }
}

/// A read-only anonymous mapping holding a copy of `bytes`: lets in-memory inputs use the same
/// mmap-based readers as files.
pub fn anon_copy(bytes: &[u8]) -> std::io::Result<Mmap> {
    let mut m = memmap2::MmapMut::map_anon(bytes.len())?;
    m.copy_from_slice(bytes);
    m.make_read_only()
}
