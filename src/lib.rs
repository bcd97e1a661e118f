//! gomap: look inside Go maps in core dumps, live processes and debuggers.
//!
//! Data flows one way: `binary` (ELF, build info, DWARF) and `memory` (core, live, debugger) feed a
//! [`target::Target`]; `layout` turns DWARF into sizes and offsets; `decode` walks a map's memory;
//! `value` renders keys and values; `findings` judges health; `inspect` runs the subcommands that
//! the CLI (`entry.rs`, run by `main.rs` and by the Python package's `gomap` command) and the Python module (`python.rs`) expose.

pub mod binary;
pub mod census;
pub mod cli;
pub mod commands;
pub mod decode;
pub mod entry;
pub mod error;
pub mod findings;
pub mod heap;
pub mod inspect;
pub mod layout;
pub mod memory;
pub mod report;
pub mod rtype;
pub mod rtmap;
pub mod target;
pub mod value;

#[cfg(feature = "python")]
mod python;

use std::path::Path;
use std::sync::Arc;

pub use error::{Error, Result};
pub use target::Target;

/// Opens a target the way the CLI names it: an executable plus a core file or a live pid.
pub fn open_target(binary: Option<&Path>, core: Option<&Path>, pid: Option<u32>) -> Result<Target> {
    open_target_partial(binary, core, pid, false)
}

/// `open_target`; with `partial`, a truncated core is read for what it holds (`--partial`).
pub fn open_target_partial(binary: Option<&Path>, core: Option<&Path>, pid: Option<u32>, partial: bool) -> Result<Target> {
    let exe_path = match (binary, pid) {
        (Some(b), _) => b.to_path_buf(),
        (None, Some(p)) => memory::live::LiveMemory::exe_path(p)?,
        (None, None) => return Err(Error::Usage("--binary BIN is required (with --core CORE or --pid PID)".into())),
    };
    let bin = Arc::new(binary::Binary::open(&exe_path)?);
    open_target_with_partial(bin, core, pid, partial)
}

/// Opens a target over an already parsed executable.
pub fn open_target_with(bin: Arc<binary::Binary>, core: Option<&Path>, pid: Option<u32>) -> Result<Target> {
    open_target_with_partial(bin, core, pid, false)
}

/// `open_target_with`; with `partial`, a truncated core is read for what it holds
/// (`Memory::missing_bytes` says how much is missing).
pub fn open_target_with_partial(bin: Arc<binary::Binary>, core: Option<&Path>, pid: Option<u32>, partial: bool) -> Result<Target> {
    let mem: Box<dyn memory::Memory> = match (core, pid) {
        (Some(c), _) => Box::new(memory::core::CoreMemory::open_partial(c, Some(bin.image.clone()), partial)?),
        (None, Some(p)) => {
            let live = memory::live::LiveMemory::open(p)?;
            check_live_exe(&bin, &live)?;
            Box::new(live)
        }
        (None, None) => return Err(Error::Usage("give --core CORE or --pid PID: the memory to read".into())),
    };
    Ok(Target::new(bin, mem))
}

/// The process must run this executable: compare the ELF header page it has mapped with the file's.
fn check_live_exe(bin: &binary::Binary, live: &memory::live::LiveMemory) -> Result<()> {
    use memory::Memory;
    let bias = match (bin.image.pie, live.aux_entry()) {
        (true, Some(e)) => e.wrapping_sub(bin.image.entry),
        _ => 0,
    };
    if let Some((vaddr, page)) = bin.image.header_page() {
        let mut buf = vec![0u8; page.len()];
        // Unreadable means the header is not where this binary's entry point puts it: another build.
        let differs = match live.read(vaddr.wrapping_add(bias), &mut buf) {
            Ok(()) => buf != page,
            Err(_) => true,
        };
        if differs {
            return Err(Error::Process(format!(
                "pid {} does not run {} (its mapped ELF header differs); pass the right --binary",
                live.pid(),
                bin.path.display()
            )));
        }
    }
    Ok(())
}
