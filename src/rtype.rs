//! Runtime type descriptors (`internal/abi.Type` and its kind-specific extensions; `runtime._type`,
//! `runtime.structtype`... before Go 1.21), read from the target. An interface value's dynamic type
//! often has no DWARF entry (the linker only describes types that variables and functions name);
//! its descriptor still says the kind, the size, and for composite types the element types, the
//! array length and the struct fields with their names and offsets. Every offset here is a DWARF
//! field offset of those runtime structures: nothing is hard-coded.

use crate::binary::DwarfInfo;
use crate::memory::MemoryExt;
use crate::target::Target;

/// Offsets of the descriptor fields the renderer reads, found by name in DWARF.
#[derive(Debug, Clone, Default)]
pub struct RtLayout {
    size: Option<u64>,
    kind: Option<u64>,
    array_elem: Option<u64>,
    array_len: Option<u64>,
    slice_elem: Option<u64>,
    struct_fields: Option<u64>,
    field_name: Option<u64>,
    field_typ: Option<u64>,
    field_offset: Option<u64>,
    field_size: Option<u64>,
    iface_methods: Option<u64>,
    name_bytes: Option<u64>,
}

fn type_named(d: &DwarfInfo, names: &[&str]) -> Option<u64> {
    names.iter().find_map(|n| d.named(n))
}

fn offset(d: &DwarfInfo, ty: Option<u64>, names: &[&str]) -> Option<u64> {
    let ty = ty?;
    names.iter().find_map(|n| d.field(ty, n)).map(|f| f.offset)
}

impl RtLayout {
    pub fn discover(d: &DwarfInfo) -> RtLayout {
        let base = type_named(d, &["internal/abi.Type", "runtime._type"]);
        let array = type_named(d, &["internal/abi.ArrayType", "runtime.arraytype"]);
        let slice = type_named(d, &["internal/abi.SliceType", "runtime.slicetype"]);
        let st = type_named(d, &["internal/abi.StructType", "runtime.structtype"]);
        let sf = type_named(d, &["internal/abi.StructField", "runtime.structfield"]);
        let it = type_named(d, &["internal/abi.InterfaceType", "runtime.interfacetype"]);
        let name = type_named(d, &["internal/abi.Name", "runtime.name"]);
        RtLayout {
            size: offset(d, base, &["Size_", "size"]),
            kind: offset(d, base, &["Kind_", "kind"]),
            array_elem: offset(d, array, &["Elem", "elem"]),
            array_len: offset(d, array, &["Len", "len"]),
            slice_elem: offset(d, slice, &["Elem", "elem"]),
            struct_fields: offset(d, st, &["Fields", "fields"]),
            field_name: offset(d, sf, &["Name", "name"]),
            field_typ: offset(d, sf, &["Typ", "typ"]),
            field_offset: offset(d, sf, &["Offset", "offset"]),
            field_size: sf.and_then(|t| d.size_of(t)),
            iface_methods: offset(d, it, &["Methods", "mhdr"]),
            name_bytes: offset(d, name, &["Bytes", "bytes"]),
        }
    }
}

/// What a descriptor says about one type.
#[derive(Debug, Clone)]
pub enum RtShape {
    Scalar { kind: u8, size: u64 },
    Slice { elem: u64 },
    Array { elem: u64, len: u64 },
    /// Fields: name, offset, type descriptor.
    Struct(Vec<(String, u64, u64)>),
    Iface { empty: bool },
}

/// Most fields a descriptor's struct may have before we call it implausible.
const MAX_FIELDS: u64 = 4096;

impl RtLayout {
    /// The kind (reflect.Kind) and size of a descriptor.
    pub fn kind_size(&self, t: &Target, rtype: u64) -> Option<(u8, u64)> {
        let kind = t.mem.u8_at(rtype.wrapping_add(self.kind?)).ok()? & 0x1f;
        let size = t.mem.u64_at(rtype.wrapping_add(self.size?)).ok()?;
        Some((kind, size))
    }

    /// Reads a descriptor's shape; None when the layout or the memory does not allow it.
    pub fn shape(&self, t: &Target, rtype: u64) -> Option<RtShape> {
        use crate::value::kind as k;
        let (kind, size) = self.kind_size(t, rtype)?;
        let word = |off: Option<u64>| t.mem.u64_at(rtype.wrapping_add(off?)).ok();
        Some(match kind {
            k::SLICE => RtShape::Slice { elem: word(self.slice_elem)? },
            k::ARRAY => RtShape::Array { elem: word(self.array_elem)?, len: word(self.array_len)? },
            k::INTERFACE => {
                // Methods is a slice: its len is the word after the data pointer.
                let methods = t.mem.u64_at(rtype.wrapping_add(self.iface_methods?).wrapping_add(8)).ok()?;
                RtShape::Iface { empty: methods == 0 }
            }
            k::STRUCT => {
                let at = rtype.wrapping_add(self.struct_fields?);
                let (data, len) = (t.mem.u64_at(at).ok()?, t.mem.u64_at(at.wrapping_add(8)).ok()?);
                if len > MAX_FIELDS {
                    return None;
                }
                let fsize = self.field_size?;
                let mut fields = Vec::with_capacity(len as usize);
                for i in 0..len {
                    let f = data.wrapping_add(i * fsize);
                    let name = self.name_at(t, f.wrapping_add(self.field_name?)).unwrap_or_else(|| format!("field{i}"));
                    let typ = t.mem.u64_at(f.wrapping_add(self.field_typ?)).ok()?;
                    let off = t.mem.u64_at(f.wrapping_add(self.field_offset?)).ok()?;
                    fields.push((name, off, typ));
                }
                RtShape::Struct(fields)
            }
            _ => RtShape::Scalar { kind, size },
        })
    }

    /// The abi.Name at `name` (a struct whose Bytes field points to a flags byte, a varint length
    /// and the bytes).
    fn name_at(&self, t: &Target, name: u64) -> Option<String> {
        let bytes = t.mem.u64_at(name.wrapping_add(self.name_bytes?)).ok()?;
        name_bytes(t, bytes)
    }
}

/// The text of an encoded name (flags byte, varint length, bytes) at `at`.
pub fn name_bytes(t: &Target, at: u64) -> Option<String> {
    let hdr = t.mem.bytes(at, 11).or_else(|_| t.mem.bytes(at, 3)).ok()?;
    let (mut len, mut i) = (0usize, 1usize);
    while i < hdr.len() {
        len |= ((hdr[i] & 0x7f) as usize) << (7 * (i - 1));
        if hdr[i] < 0x80 {
            break;
        }
        i += 1;
    }
    if len > 1 << 16 {
        return None;
    }
    let bytes = t.mem.bytes(at.wrapping_add(i as u64 + 1), len).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}
