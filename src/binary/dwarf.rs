//! Types and package-level variables from the executable's DWARF.
//!
//! Go's linker describes every type the program uses, including synthesized runtime structures for
//! maps (`hash<K,V>`, `bucket<K,V>`, `map<K,V>`, `table<K,V>`, groups). We read them all once into a
//! flat table keyed by the DIE offset, so the rest of the engine can ask for sizes and offsets by name.

use crate::error::{Error, Result};
use gimli::{AttributeValue, DwAt, EndianSlice, RunTimeEndian};
use std::collections::{BTreeMap, HashMap};

/// A type is identified by the .debug_info offset of its DIE.
pub type TypeId = u64;

pub const DW_AT_GO_KIND: DwAt = DwAt(0x2900);
pub const DW_AT_GO_KEY: DwAt = DwAt(0x2901);
pub const DW_AT_GO_ELEM: DwAt = DwAt(0x2902);
pub const DW_AT_GO_RUNTIME_TYPE: DwAt = DwAt(0x2904);

#[derive(Clone, Debug)]
pub struct Field {
    pub name: String,
    pub offset: u64,
    pub ty: TypeId,
}

#[derive(Clone, Debug)]
pub enum Die {
    Base { encoding: u8 },
    Pointer { target: Option<TypeId> },
    Struct { fields: Vec<Field> },
    Array { elem: Option<TypeId>, count: u64 },
    Typedef { target: Option<TypeId> },
    Func,
    Other,
}

#[derive(Clone, Debug)]
pub struct TypeInfo {
    pub name: String,
    pub size: Option<u64>,
    pub die: Die,
    /// reflect.Kind as the Go linker records it (0 when absent).
    pub go_kind: u8,
    pub go_key: Option<TypeId>,
    pub go_elem: Option<TypeId>,
    pub runtime_type: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct Global {
    pub name: String,
    /// Link-time address (add the load bias for PIE).
    pub addr: u64,
    pub ty: TypeId,
}

#[derive(Default)]
pub struct DwarfInfo {
    pub types: HashMap<TypeId, TypeInfo>,
    pub by_name: HashMap<String, TypeId>,
    pub by_runtime_type: HashMap<u64, TypeId>,
    pub globals: BTreeMap<String, Global>,
    /// Package-level integer constants the Go compiler records (`runtime._PageSize`, `runtime.mSpanInUse`, ...).
    pub consts: HashMap<String, i64>,
}

type R<'a> = EndianSlice<'a, RunTimeEndian>;

/// A cap on DIEs read, so a hostile binary cannot make discovery run forever.
const MAX_DIES: usize = 50_000_000;

impl DwarfInfo {
    pub fn load(obj: &object::File<'_>) -> Result<DwarfInfo> {
        use object::{Object, ObjectSection};
        if obj.section_by_name(".debug_info").is_none() {
            return Err(Error::Binary(
                "the binary has no DWARF debug info (stripped, or built with -ldflags=-w): rebuild without -s/-w".into(),
            ));
        }
        let endian = if obj.is_little_endian() { RunTimeEndian::Little } else { RunTimeEndian::Big };
        // Only what type discovery reads: DIEs, abbreviations and strings. Line tables, location and
        // range lists are over half of a Go binary's compressed DWARF, and decompressing them was the
        // largest fixed cost of every command.
        use gimli::SectionId as S;
        let sections = gimli::DwarfSections::load(|id| -> Result<std::borrow::Cow<'_, [u8]>> {
            if !matches!(id, S::DebugInfo | S::DebugAbbrev | S::DebugStr | S::DebugStrOffsets | S::DebugLineStr | S::DebugAddr) {
                return Ok(std::borrow::Cow::Borrowed(&[][..]));
            }
            match obj.section_by_name(id.name()) {
                Some(s) => s
                    .uncompressed_data()
                    .map_err(|e| Error::Binary(format!("cannot decompress {}: {e}", id.name()))),
                None => Ok(std::borrow::Cow::Borrowed(&[][..])),
            }
        })?;
        let dwarf = sections.borrow(|s| EndianSlice::new(s, endian));
        let mut info = DwarfInfo::default();
        info.read_all(&dwarf).map_err(|e| Error::Binary(format!("malformed DWARF: {e}")))?;
        Ok(info)
    }

    fn read_all(&mut self, dwarf: &gimli::Dwarf<R<'_>>) -> gimli::Result<()> {
        let mut units = dwarf.units();
        let mut dies = 0usize;
        while let Some(header) = units.next()? {
            let unit = bare_unit(dwarf, header)?;
            let mut cursor = unit.entries();
            // The open struct / array whose children we are reading, with its depth.
            let mut parent: Option<(TypeId, isize)> = None;
            while let Some(entry) = cursor.next_dfs()? {
                let depth = entry.depth();
                dies += 1;
                if dies > MAX_DIES {
                    return Err(gimli::Error::UnsupportedOffset);
                }
                if let Some((_, d)) = parent {
                    if depth <= d {
                        parent = None;
                    }
                }
                let off = match entry.offset().to_debug_info_offset(&unit.header) {
                    Some(o) => o.0 as u64,
                    None => continue,
                };
                let tag = entry.tag();
                let name = match entry.attr_value(gimli::DW_AT_name) {
                    Some(v) => dwarf.attr_string(&unit, v).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
                    None => String::new(),
                };
                let ty = ref_attr(&unit, entry.attr_value(gimli::DW_AT_type));
                match tag {
                    gimli::DW_TAG_member => {
                        if let Some((p, _)) = parent {
                            let offset = match entry.attr_value(gimli::DW_AT_data_member_location) {
                                Some(v) => v.udata_value().unwrap_or(0),
                                None => 0,
                            };
                            if let (Some(t), Some(TypeInfo { die: Die::Struct { fields }, .. })) = (ty, self.types.get_mut(&p)) {
                                fields.push(Field { name, offset, ty: t });
                            }
                        }
                        continue;
                    }
                    gimli::DW_TAG_subrange_type => {
                        if let Some((p, _)) = parent {
                            let count = match entry.attr_value(gimli::DW_AT_count) {
                                Some(v) => v.udata_value(),
                                None => entry.attr_value(gimli::DW_AT_upper_bound).and_then(|v| v.udata_value()).map(|u| u + 1),
                            };
                            if let Some(TypeInfo { die: Die::Array { count: c, .. }, .. }) = self.types.get_mut(&p) {
                                *c = count.unwrap_or(0);
                            }
                        }
                        continue;
                    }
                    gimli::DW_TAG_constant if depth == 1 => {
                        if let Some(v) = entry.attr_value(gimli::DW_AT_const_value) {
                            if let Some(c) = v.sdata_value().or_else(|| v.udata_value().map(|u| u as i64)) {
                                if !name.is_empty() {
                                    self.consts.insert(name, c);
                                }
                            }
                        }
                        continue;
                    }
                    gimli::DW_TAG_variable if depth == 1 => {
                        if let (Some(t), Some(addr)) = (ty, location_addr(entry.attr_value(gimli::DW_AT_location))) {
                            if !name.is_empty() {
                                self.globals.insert(name.clone(), Global { name, addr, ty: t });
                            }
                        }
                        continue;
                    }
                    _ => {}
                }
                let die = match tag {
                    gimli::DW_TAG_base_type => Die::Base {
                        encoding: entry.attr_value(gimli::DW_AT_encoding).and_then(|v| v.udata_value()).unwrap_or(0) as u8,
                    },
                    gimli::DW_TAG_pointer_type => Die::Pointer { target: ty },
                    gimli::DW_TAG_structure_type => Die::Struct { fields: Vec::new() },
                    gimli::DW_TAG_array_type => Die::Array { elem: ty, count: 0 },
                    gimli::DW_TAG_typedef => Die::Typedef { target: ty },
                    gimli::DW_TAG_subroutine_type => Die::Func,
                    gimli::DW_TAG_unspecified_type | gimli::DW_TAG_interface_type => Die::Other,
                    _ => continue,
                };
                let is_container = matches!(die, Die::Struct { .. } | Die::Array { .. });
                let info = TypeInfo {
                    name,
                    size: entry.attr_value(gimli::DW_AT_byte_size).and_then(|v| v.udata_value()),
                    die,
                    go_kind: entry.attr_value(DW_AT_GO_KIND).and_then(|v| v.udata_value()).unwrap_or(0) as u8,
                    go_key: ref_attr(&unit, entry.attr_value(DW_AT_GO_KEY)),
                    go_elem: ref_attr(&unit, entry.attr_value(DW_AT_GO_ELEM)),
                    runtime_type: match entry.attr_value(DW_AT_GO_RUNTIME_TYPE) {
                        Some(AttributeValue::Addr(a)) => Some(a),
                        Some(v) => v.udata_value(),
                        None => None,
                    },
                };
                if !info.name.is_empty() {
                    self.by_name.entry(info.name.clone()).or_insert(off);
                }
                if let Some(rt) = info.runtime_type {
                    self.by_runtime_type.entry(rt).or_insert(off);
                }
                self.types.insert(off, info);
                if is_container && entry.has_children() {
                    parent = Some((off, depth));
                }
            }
        }
        Ok(())
    }

    /// The first of `names` that is a recorded integer constant.
    pub fn constant(&self, names: &[&str]) -> Option<i64> {
        names.iter().find_map(|n| self.consts.get(*n).copied())
    }

    pub fn get(&self, id: TypeId) -> Option<&TypeInfo> {
        self.types.get(&id)
    }

    pub fn named(&self, name: &str) -> Option<TypeId> {
        self.by_name.get(name).copied()
    }

    /// Follows typedefs to the type that has the layout.
    pub fn strip_typedefs(&self, mut id: TypeId) -> TypeId {
        for _ in 0..16 {
            match self.types.get(&id) {
                Some(TypeInfo { die: Die::Typedef { target: Some(t) }, .. }) => id = *t,
                _ => break,
            }
        }
        id
    }

    /// The size of a type, looking through typedefs.
    pub fn size_of(&self, id: TypeId) -> Option<u64> {
        let t = self.types.get(&id)?;
        t.size.or_else(|| match t.die {
            Die::Typedef { target: Some(x) } if x != id => self.size_of(self.strip_typedefs(x)),
            Die::Pointer { .. } | Die::Func => Some(8),
            _ => None,
        })
    }

    pub fn fields(&self, id: TypeId) -> Option<&[Field]> {
        match &self.types.get(&self.strip_typedefs(id))?.die {
            Die::Struct { fields } => Some(fields),
            _ => None,
        }
    }

    pub fn field(&self, id: TypeId, name: &str) -> Option<&Field> {
        self.fields(id)?.iter().find(|f| f.name == name)
    }

    pub fn pointee(&self, id: TypeId) -> Option<TypeId> {
        match self.types.get(&self.strip_typedefs(id))?.die {
            Die::Pointer { target } => target,
            _ => None,
        }
    }

    pub fn name_of(&self, id: TypeId) -> &str {
        self.types.get(&id).map(|t| t.name.as_str()).unwrap_or("?")
    }
}

/// A unit as `Dwarf::unit` builds it, minus the line program (its .debug_line is not loaded).
fn bare_unit<'a>(dwarf: &gimli::Dwarf<R<'a>>, header: gimli::UnitHeader<R<'a>>) -> gimli::Result<gimli::Unit<R<'a>>> {
    let abbreviations = dwarf.abbreviations(&header)?;
    let (mut str_offsets_base, mut addr_base) = (
        gimli::DebugStrOffsetsBase::default_for_encoding_and_file(header.encoding(), dwarf.file_type),
        gimli::DebugAddrBase(0),
    );
    {
        let mut cursor = header.entries(&abbreviations);
        if let Some(root) = cursor.next_dfs()? {
            if let Some(AttributeValue::DebugStrOffsetsBase(b)) = root.attr_value(gimli::DW_AT_str_offsets_base) {
                str_offsets_base = b;
            }
            if let Some(AttributeValue::DebugAddrBase(b)) = root.attr_value(gimli::DW_AT_addr_base) {
                addr_base = b;
            }
        }
    }
    Ok(gimli::Unit {
        abbreviations,
        name: None,
        comp_dir: None,
        low_pc: 0,
        str_offsets_base,
        addr_base,
        loclists_base: gimli::DebugLocListsBase::default_for_encoding_and_file(header.encoding(), dwarf.file_type),
        rnglists_base: gimli::DebugRngListsBase::default_for_encoding_and_file(header.encoding(), dwarf.file_type),
        line_program: None,
        dwo_id: None,
        header,
    })
}

fn ref_attr(unit: &gimli::Unit<R<'_>>, v: Option<AttributeValue<R<'_>>>) -> Option<TypeId> {
    match v? {
        AttributeValue::UnitRef(o) => o.to_debug_info_offset(&unit.header).map(|d| d.0 as u64),
        AttributeValue::DebugInfoRef(o) => Some(o.0 as u64),
        _ => None,
    }
}

/// A global's address from a `DW_OP_addr ADDR` location expression.
fn location_addr(v: Option<AttributeValue<R<'_>>>) -> Option<u64> {
    match v? {
        AttributeValue::Exprloc(e) => {
            let b = e.0.slice();
            if b.len() == 9 && b[0] == gimli::DW_OP_addr.0 {
                Some(u64::from_le_bytes(b[1..9].try_into().ok()?))
            } else {
                None
            }
        }
        _ => None,
    }
}
