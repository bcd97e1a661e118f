//! A live process, read through /proc/PID/mem with positioned reads. The process is not stopped
//! (reading does not need it), so a map may change while we read it: decoders cap every loop and
//! the findings say when the map was being written.

use super::core::parse_auxv;
use super::Memory;
use crate::error::{Error, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;

const AT_ENTRY: u64 = 9;

pub struct LiveMemory {
    pid: u32,
    mem: File,
    entry: Option<u64>,
}

impl LiveMemory {
    pub fn open(pid: u32) -> Result<Self> {
        let path = format!("/proc/{pid}/mem");
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Err(Error::Process(format!("no process with pid {pid}")));
        }
        // Read-only: gomap never writes to the process it inspects.
        let mem = File::open(&path).map_err(|e| {
            Error::Process(format!("cannot read memory of pid {pid} ({e}); run as the same user or root, or check /proc/sys/kernel/yama/ptrace_scope"))
        })?;
        let entry = std::fs::read(format!("/proc/{pid}/auxv")).ok().and_then(|a| parse_auxv(&a, AT_ENTRY));
        let me = LiveMemory { pid, mem, entry };
        // A zero-length probe tells permission problems apart from unmapped addresses later.
        let mut b = [0u8; 1];
        if let Some(e) = entry {
            if let Err(err) = me.mem.read_at(&mut b, e) {
                return Err(Error::Process(format!("cannot read memory of pid {pid} ({err})")));
            }
        }
        Ok(me)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The executable the process runs, for `--pid` without `--binary`.
    pub fn exe_path(pid: u32) -> Result<std::path::PathBuf> {
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .map_err(|e| Error::Process(format!("cannot find the executable of pid {pid} ({e}); pass --binary")))
    }
}

impl Memory for LiveMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr.checked_add(done as u64).ok_or_else(|| Error::unreadable(addr, buf.len(), "address overflow"))?;
            // Offsets above i64::MAX are rejected by the kernel anyway; say so plainly.
            if a > i64::MAX as u64 {
                return Err(Error::unreadable(addr, buf.len(), "not a user-space address"));
            }
            match self.mem.read_at(&mut buf[done..], a) {
                Ok(0) => return Err(Error::unreadable(addr, buf.len(), format!("not mapped in pid {}", self.pid))),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::unreadable(addr, buf.len(), format!("pid {}: {e}", self.pid))),
            }
        }
        Ok(())
    }
    fn describe(&self) -> String {
        format!("pid {}", self.pid)
    }
    fn aux_entry(&self) -> Option<u64> {
        self.entry
    }
    fn is_live(&self) -> bool {
        true
    }
}
