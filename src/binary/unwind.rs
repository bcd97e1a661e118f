//! Stack unwinding from the executable's `.debug_frame` call frame information (the Go linker emits
//! it for every function): at a PC, where the frame's CFA is relative to the stack pointer, and where
//! the return address is relative to the CFA. The census walks goroutine stacks with it from the
//! saved `sched.sp`/`sched.pc`; gimli parses the CIEs and FDEs.

use crate::error::{Error, Result};
use gimli::{BaseAddresses, CfaRule, DebugFrame, EndianSlice, RegisterRule, RunTimeEndian, UnwindSection};

type R<'a> = EndianSlice<'a, RunTimeEndian>;

/// The most FDEs indexed: a hostile binary cannot make the index unbounded.
const MAX_FDES: usize = 4_000_000;

pub struct Unwinder {
    data: Vec<u8>,
    endian: RunTimeEndian,
    /// (start, end, offset of the FDE), sorted by start.
    fdes: Vec<(u64, u64, usize)>,
    /// The DWARF number of the stack pointer register (x86-64: 7, arm64: 31).
    sp_reg: u16,
}

/// One step of an unwind: the frame's CFA and its caller's PC (0 when the CFI says there is none).
#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub cfa: u64,
    pub return_address_at: u64,
}

impl Unwinder {
    pub fn load(obj: &object::File<'_>) -> Result<Unwinder> {
        use object::{Architecture, Object, ObjectSection};
        let endian = if obj.is_little_endian() { RunTimeEndian::Little } else { RunTimeEndian::Big };
        let sp_reg = match obj.architecture() {
            Architecture::X86_64 => 7,
            Architecture::Aarch64 => 31,
            a => return Err(Error::Binary(format!("stack unwinding is not supported on {a:?}"))),
        };
        let data = match obj.section_by_name(".debug_frame") {
            Some(s) => s.uncompressed_data().map_err(|e| Error::Binary(format!("cannot decompress .debug_frame: {e}")))?.into_owned(),
            None => return Err(Error::Binary("the binary has no .debug_frame (call frame information): goroutine stacks cannot be walked".into())),
        };
        let mut u = Unwinder { data, endian, fdes: Vec::new(), sp_reg };
        u.index();
        Ok(u)
    }

    /// The unwinder of an executable held in memory (the frames fuzz target).
    pub fn from_bytes(data: &[u8]) -> Result<Unwinder> {
        let obj = object::File::parse(data).map_err(|e| Error::Binary(e.to_string()))?;
        Unwinder::load(&obj)
    }

    fn section(&self) -> DebugFrame<R<'_>> {
        let mut s = DebugFrame::new(&self.data, self.endian);
        s.set_address_size(8);
        s
    }

    fn index(&mut self) {
        let s = self.section();
        let bases = BaseAddresses::default();
        let mut entries = s.entries(&bases);
        let mut fdes = Vec::new();
        // A malformed entry ends the index: what was read before it still unwinds.
        while let Ok(Some(e)) = entries.next() {
            if let gimli::CieOrFde::Fde(p) = e {
                if let Ok(f) = p.parse(DebugFrame::cie_from_offset) {
                    let start = f.initial_address();
                    fdes.push((start, start.saturating_add(f.len()), f.offset()));
                }
            }
            if fdes.len() >= MAX_FDES {
                break;
            }
        }
        fdes.sort_unstable_by_key(|x| x.0);
        self.fdes = fdes;
    }

    /// The CFA of the frame executing at `pc` (link-time) whose stack pointer is `sp`, and where its
    /// return address is stored. None when no FDE covers `pc` or its rule is not SP-relative.
    pub fn step(&self, pc: u64, sp: u64) -> Option<Step> {
        let i = self.fdes.partition_point(|f| f.0 <= pc).checked_sub(1)?;
        let (start, end, off) = self.fdes[i];
        if !(start..end).contains(&pc) {
            return None;
        }
        let s = self.section();
        let bases = BaseAddresses::default();
        let fde = s.fde_from_offset(&bases, gimli::DebugFrameOffset(off), DebugFrame::cie_from_offset).ok()?;
        let mut ctx = gimli::UnwindContext::new();
        let row = fde.unwind_info_for_address(&s, &bases, &mut ctx, pc).ok()?;
        let cfa = match row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } if register.0 == self.sp_reg => sp.wrapping_add(*offset as u64),
            _ => return None,
        };
        let ra = fde.cie().return_address_register();
        let return_address_at = match row.register(ra) {
            Some(RegisterRule::Offset(o)) => cfa.wrapping_add(o as u64),
            // Go's CIE leaves the return address rule implicit at CFA-8 on x86-64.
            _ if self.sp_reg == 7 => cfa.wrapping_sub(8),
            _ => return None,
        };
        Some(Step { cfa, return_address_at })
    }
}
