//! Local variables of a function at a PC, from the executable's DWARF.
//!
//! LLDB has no Go type system: it lists no variables in Go frames. The LLDB front end asks this
//! module which variables are live at the selected frame's PC and where each one is (an offset
//! from the frame's CFA, an address, or a register); the debugger supplies the CFA and registers.
//! Only the simple location forms the Go compiler emits are understood (DW_OP_fbreg with a
//! DW_OP_call_frame_cfa frame base, DW_OP_call_frame_cfa + constant, DW_OP_addr, DW_OP_regN);
//! anything else (pieces spread over registers) is reported as such, never guessed.
//!
//! The index (function PC ranges) is built once per executable; the DIEs of one function are read
//! only when asked for.

use crate::error::{Error, Result};
use crate::binary::TypeId;
use gimli::{AttributeValue, EndianSlice, RunTimeEndian};
use std::path::Path;

type R<'a> = EndianSlice<'a, RunTimeEndian>;

/// Where a variable lives at one PC.
#[derive(Clone, Debug, PartialEq)]
pub enum Loc {
    /// At CFA + offset.
    Cfa(i64),
    /// At a (link-time) address.
    Addr(u64),
    /// Its value is in a DWARF register.
    Reg(u16),
    /// Not describable here (optimized out at this PC, split over registers, ...).
    Unavailable(&'static str),
}

#[derive(Clone, Debug)]
pub struct Local {
    pub name: String,
    pub ty: TypeId,
    pub loc: Loc,
}

struct Func {
    low: u64,
    high: u64,
    unit: usize,
    die: usize,
}

pub struct Frames {
    sections: gimli::DwarfSections<Vec<u8>>,
    endian: RunTimeEndian,
    funcs: Vec<Func>,
}

/// Caps: a hostile binary cannot make a lookup run forever.
const MAX_DIES: usize = 50_000_000;
const MAX_LOCALS: usize = 10_000;

/// The offset of a captured variable in its closure object, on the closure function's variables.
const DW_AT_GO_CLOSURE_OFFSET: gimli::DwAt = gimli::DwAt(0x2907);

impl Frames {
    pub fn load(path: &Path) -> Result<Frames> {
        let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let obj = object::File::parse(&data[..]).map_err(|e| Error::Binary(format!("{}: {e}", path.display())))?;
        Frames::from_object(&obj)
    }

    /// Indexes the functions of an executable held in memory (the frames fuzz target).
    pub fn from_bytes(data: &[u8]) -> Result<Frames> {
        let obj = object::File::parse(data).map_err(|e| Error::Binary(e.to_string()))?;
        Frames::from_object(&obj)
    }

    /// The PC ranges of the indexed functions (link-time), in address order.
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.funcs.iter().map(|f| (f.low, f.high))
    }

    /// Indexes the functions of an already parsed executable.
    pub fn from_object(obj: &object::File<'_>) -> Result<Frames> {
        use object::{Object, ObjectSection};
        let endian = if obj.is_little_endian() { RunTimeEndian::Little } else { RunTimeEndian::Big };
        let sections = gimli::DwarfSections::load(|id| -> Result<Vec<u8>> {
            match obj.section_by_name(id.name()) {
                Some(s) => s
                    .uncompressed_data()
                    .map(|c| c.into_owned())
                    .map_err(|e| Error::Binary(format!("cannot decompress {}: {e}", id.name()))),
                None => Ok(Vec::new()),
            }
        })?;
        let mut f = Frames { sections, endian, funcs: Vec::new() };
        f.index().map_err(|e| Error::Binary(format!("malformed DWARF: {e}")))?;
        f.funcs.sort_by_key(|x| x.low);
        Ok(f)
    }

    fn dwarf(&self) -> gimli::Dwarf<R<'_>> {
        self.sections.borrow(|s| EndianSlice::new(s, self.endian))
    }

    fn index(&mut self) -> gimli::Result<()> {
        let mut funcs = Vec::new();
        {
            let dwarf = self.dwarf();
            let mut units = dwarf.units();
            let mut dies = 0usize;
            while let Some(header) = units.next()? {
                let unit_off = header.offset().0;
                let unit = dwarf.unit(header)?;
                let mut cursor = unit.entries();
                while let Some(entry) = cursor.next_dfs()? {
                    dies += 1;
                    if dies > MAX_DIES {
                        return Err(gimli::Error::UnsupportedOffset);
                    }
                    if entry.tag() != gimli::DW_TAG_subprogram {
                        continue;
                    }
                    for (low, high) in pc_ranges(&dwarf, &unit, &entry)? {
                        funcs.push(Func { low, high, unit: unit_off, die: entry.offset().0 });
                    }
                }
            }
        }
        self.funcs = funcs;
        Ok(())
    }

    /// The function containing `pc` (link-time) and its variables live at `pc`.
    pub fn locals(&self, pc: u64) -> Result<(String, Vec<Local>)> {
        let Some(f) = self.func_at(pc) else {
            return Err(Error::Expr(format!("no Go function with debug info contains pc {pc:#x}")));
        };
        self.read_locals(f, pc).map_err(|e| Error::Binary(format!("malformed DWARF: {e}")))
    }

    fn func_at(&self, pc: u64) -> Option<&Func> {
        let i = self.funcs.partition_point(|f| f.low <= pc).checked_sub(1)?;
        let f = &self.funcs[i];
        (pc < f.high).then_some(f)
    }

    /// The name and entry PC of the function containing `pc` (link-time).
    pub fn function(&self, pc: u64) -> Option<(String, u64)> {
        let f = self.func_at(pc)?;
        let dwarf = self.dwarf();
        let header = dwarf.debug_info.header_from_offset(gimli::DebugInfoOffset(f.unit)).ok()?;
        let unit = dwarf.unit(header).ok()?;
        let mut cursor = unit.entries_at_offset(gimli::UnitOffset(f.die)).ok()?;
        let entry = cursor.next_dfs().ok()??;
        Some((name(&dwarf, &unit, &entry), f.low))
    }

    /// The variables a closure whose code starts at `entry` captured: name, offset in the closure
    /// object (DW_AT_go_closure_offset, emitted by Go 1.23 and later) and type. Empty when the
    /// compiler did not describe them.
    pub fn closure_vars(&self, entry: u64) -> Vec<(String, u64, TypeId)> {
        let Some(f) = self.func_at(entry) else { return Vec::new() };
        self.read_closure_vars(f).unwrap_or_default()
    }

    fn read_closure_vars(&self, f: &Func) -> gimli::Result<Vec<(String, u64, TypeId)>> {
        let dwarf = self.dwarf();
        let header = dwarf.debug_info.header_from_offset(gimli::DebugInfoOffset(f.unit))?;
        let unit = dwarf.unit(header)?;
        let mut cursor = unit.entries_at_offset(gimli::UnitOffset(f.die))?;
        let mut out = Vec::new();
        let mut first = true;
        while let Some(entry) = cursor.next_dfs()? {
            if first {
                first = false;
                continue;
            }
            if entry.depth() <= 0 || out.len() >= MAX_LOCALS {
                break;
            }
            if entry.tag() != gimli::DW_TAG_variable {
                continue;
            }
            let Some(off) = entry.attr_value(DW_AT_GO_CLOSURE_OFFSET).and_then(|v| v.udata_value()) else { continue };
            let ty = match entry.attr_value(gimli::DW_AT_type) {
                Some(AttributeValue::UnitRef(o)) => o.to_debug_info_offset(&unit.header).map(|d| d.0 as u64),
                Some(AttributeValue::DebugInfoRef(o)) => Some(o.0 as u64),
                _ => None,
            };
            if let Some(ty) = ty {
                out.push((name(&dwarf, &unit, &entry), off, ty));
            }
        }
        Ok(out)
    }

    fn read_locals(&self, f: &Func, pc: u64) -> gimli::Result<(String, Vec<Local>)> {
        let dwarf = self.dwarf();
        let header = dwarf.debug_info.header_from_offset(gimli::DebugInfoOffset(f.unit))?;
        let unit = dwarf.unit(header)?;
        let mut cursor = unit.entries_at_offset(gimli::UnitOffset(f.die))?;
        let mut out = Vec::new();
        let mut func_name = String::new();
        // Depth of a lexical block that does not contain pc: its subtree is skipped.
        let mut skip_below: Option<isize> = None;
        let mut first = true;
        while let Some(entry) = cursor.next_dfs()? {
            let depth = entry.depth();
            if first {
                first = false;
                func_name = name(&dwarf, &unit, &entry);
                if !frame_base_is_cfa(&entry) {
                    return Ok((func_name, out));
                }
                continue;
            }
            if depth <= 0 {
                break; // left the function's subtree
            }
            if let Some(d) = skip_below {
                if depth > d {
                    continue;
                }
                skip_below = None;
            }
            match entry.tag() {
                gimli::DW_TAG_lexical_block => {
                    let ranges = pc_ranges(&dwarf, &unit, &entry)?;
                    if !ranges.is_empty() && !ranges.iter().any(|&(lo, hi)| lo <= pc && pc < hi) {
                        skip_below = Some(depth);
                    }
                }
                gimli::DW_TAG_variable | gimli::DW_TAG_formal_parameter => {
                    let ty = match entry.attr_value(gimli::DW_AT_type) {
                        Some(AttributeValue::UnitRef(o)) => o.to_debug_info_offset(&unit.header).map(|d| d.0 as u64),
                        Some(AttributeValue::DebugInfoRef(o)) => Some(o.0 as u64),
                        _ => None,
                    };
                    let Some(ty) = ty else { continue };
                    let loc = match entry.attr_value(gimli::DW_AT_location) {
                        Some(AttributeValue::Exprloc(e)) => expr_loc(e, unit.encoding()),
                        Some(v) => match dwarf.attr_locations_offset(&unit, v)? {
                            Some(off) => {
                                let mut it = dwarf.locations(&unit, off)?;
                                let mut found = Loc::Unavailable("optimized out at this pc");
                                let mut n = 0;
                                while let Some(le) = it.next()? {
                                    n += 1;
                                    if n > MAX_LOCALS {
                                        break;
                                    }
                                    if le.range.begin <= pc && pc < le.range.end {
                                        found = expr_loc(le.data, unit.encoding());
                                        break;
                                    }
                                }
                                found
                            }
                            None => Loc::Unavailable("no location"),
                        },
                        None => Loc::Unavailable("no location"),
                    };
                    out.push(Local { name: name(&dwarf, &unit, &entry), ty, loc });
                    if out.len() >= MAX_LOCALS {
                        break;
                    }
                }
                _ => {}
            }
        }
        Ok((func_name, out))
    }
}

fn name(dwarf: &gimli::Dwarf<R<'_>>, unit: &gimli::Unit<R<'_>>, entry: &gimli::DebuggingInformationEntry<R<'_>>) -> String {
    match entry.attr_value(gimli::DW_AT_name) {
        Some(v) => dwarf.attr_string(unit, v).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        None => String::new(),
    }
}

/// The PC ranges of a DIE (low/high pc in any DWARF 4/5 form, or DW_AT_ranges), capped.
fn pc_ranges<'a>(dwarf: &gimli::Dwarf<R<'a>>, unit: &gimli::Unit<R<'a>>, entry: &gimli::DebuggingInformationEntry<R<'a>>) -> gimli::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    if entry.attr_value(gimli::DW_AT_low_pc).is_none() && entry.attr_value(gimli::DW_AT_ranges).is_none() {
        return Ok(out);
    }
    let mut it = dwarf.die_ranges(unit, entry)?;
    while let Some(r) = it.next()? {
        if r.end > r.begin {
            out.push((r.begin, r.end));
        }
        if out.len() > 4096 {
            break;
        }
    }
    Ok(out)
}

fn frame_base_is_cfa(entry: &gimli::DebuggingInformationEntry<R<'_>>) -> bool {
    match entry.attr_value(gimli::DW_AT_frame_base) {
        Some(AttributeValue::Exprloc(e)) => e.0.slice() == [gimli::DW_OP_call_frame_cfa.0],
        _ => false,
    }
}

/// The location a Go compiler's expression describes, for the forms it emits.
fn expr_loc(e: gimli::Expression<R<'_>>, enc: gimli::Encoding) -> Loc {
    use gimli::Operation as Op;
    let mut ops = e.operations(enc);
    let mut list = Vec::new();
    loop {
        match ops.next() {
            Ok(Some(op)) => list.push(op),
            Ok(None) => break,
            Err(_) => return Loc::Unavailable("malformed location"),
        }
        if list.len() > 8 {
            return Loc::Unavailable("location too complex");
        }
    }
    // A single 8-byte piece is the whole value (Go writes DW_OP_piece even for one register).
    if let [.., Op::Piece { size_in_bits: 64, bit_offset: None }] = list.as_slice() {
        if list.iter().filter(|o| matches!(o, Op::Piece { .. })).count() == 1 {
            list.pop();
        }
    }
    match list.as_slice() {
        [Op::FrameOffset { offset }] => Loc::Cfa(*offset),
        [Op::CallFrameCFA] => Loc::Cfa(0),
        [Op::CallFrameCFA, Op::PlusConstant { value }] => Loc::Cfa(*value as i64),
        [Op::CallFrameCFA, Op::SignedConstant { value }, Op::Plus] => Loc::Cfa(*value),
        [Op::CallFrameCFA, Op::UnsignedConstant { value }, Op::Plus] => Loc::Cfa(*value as i64),
        [Op::Address { address }] => Loc::Addr(*address),
        [Op::Register { register }] => Loc::Reg(register.0),
        [] => Loc::Unavailable("optimized out at this pc"),
        _ => Loc::Unavailable("split over registers at this pc"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(bytes: &[u8]) -> Loc {
        let enc = gimli::Encoding { address_size: 8, format: gimli::Format::Dwarf32, version: 4 };
        expr_loc(gimli::Expression(EndianSlice::new(bytes, RunTimeEndian::Little)), enc)
    }

    #[test]
    fn location_forms_the_go_compiler_emits() {
        assert_eq!(loc(&[0x91, 0x98, 0x77]), Loc::Cfa(-1128)); // DW_OP_fbreg -1128
        assert_eq!(loc(&[0x9c]), Loc::Cfa(0)); // DW_OP_call_frame_cfa
        assert_eq!(loc(&[0x9c, 0x23, 0x10]), Loc::Cfa(16)); // call_frame_cfa; plus_uconst 16
        assert_eq!(loc(&[0x03, 0x60, 0x94, 0x59, 0, 0, 0, 0, 0]), Loc::Addr(0x599460)); // DW_OP_addr
        assert_eq!(loc(&[0x50]), Loc::Reg(0)); // DW_OP_reg0
        assert_eq!(loc(&[0x53, 0x93, 0x08]), Loc::Reg(3)); // DW_OP_reg3; DW_OP_piece 8
        // A string split over two registers is not one place.
        assert!(matches!(loc(&[0x50, 0x93, 0x08, 0x53, 0x93, 0x08]), Loc::Unavailable(_)));
        assert!(matches!(loc(&[]), Loc::Unavailable(_)));
        // Truncated bytes never panic.
        assert!(matches!(loc(&[0x91]), Loc::Unavailable(_)));
        assert!(matches!(loc(&[0x91, 0x98, 0x77, 0x03, 0x60]), Loc::Unavailable(_)));
    }
}
