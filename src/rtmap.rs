//! Map layouts built from a runtime map type descriptor, for map types no DWARF entry describes
//! (`reflect.MapOf` makes them at run time). The header, table and bucket/group structures are the
//! runtime's own (`runtime.hmap`, `runtime.bmap`; `internal/runtime/maps.Map`, `table`,
//! `ctrlGroup`), found by name in DWARF; the per-type numbers (key and element slot sizes, bucket or
//! group size, key/elem offsets in a group) come from the descriptor (`runtime.maptype`,
//! `internal/abi.MapType`, `OldMapType` or `SwissMapType`, each field's offset from DWARF), and are
//! checked against each other and against the key/elem descriptors' sizes before anything is decoded.
//!
//! Such a map type is named by a [`TypeId`] outside the DWARF range: the descriptor's address with
//! the top bit set ([`type_id`]). `Target::map_type` builds its layout from the descriptor.

use crate::binary::{DwarfInfo, TypeId};
use crate::error::{Error, Result};
use crate::layout::{array_of, classic_from, off, swiss_from, BucketPart, ClassicLayout, GroupPart, Impl, MapType, Off, Slots, SwissLayout};
use crate::memory::MemoryExt;
use crate::rtype::RtLayout;
use crate::target::Target;
use crate::value::kind;

const RT_BIT: u64 = 1 << 63;

/// The type id of the type a runtime descriptor at `rtype` describes (DWARF ids are DIE offsets,
/// far below the top bit).
pub fn type_id(rtype: u64) -> TypeId {
    rtype | RT_BIT
}

/// The descriptor address behind a [`type_id`]; None for DWARF type ids.
pub fn descriptor(id: TypeId) -> Option<u64> {
    (id & RT_BIT != 0).then_some(id & !RT_BIT)
}

/// The DWARF type of a descriptor when the binary has one (by `DW_AT_go_runtime_type`, else by the
/// descriptor's name), else its [`type_id`].
pub fn type_of(t: &Target, rtype: u64) -> TypeId {
    if let Some(id) = t.dwarf_type_of(rtype) {
        return id;
    }
    let (_, id) = t.runtime_type(rtype);
    id.unwrap_or_else(|| type_id(rtype))
}

/// Whether the descriptor at `rtype` is a map type's.
pub fn is_map(t: &Target, rtype: u64) -> bool {
    RtLayout::discover(&t.bin.dwarf).kind_size(t, rtype).is_some_and(|(k, _)| k == kind::MAP)
}

/// The first of `names` that DWARF has as a type.
fn named(d: &DwarfInfo, names: &[&str]) -> Option<TypeId> {
    names.iter().find_map(|n| d.named(n))
}

fn bad(name: &str, why: String) -> Error {
    Error::Layout(format!("{name}: runtime map type descriptor: {why}"))
}

/// Reads the descriptor field (first of `names` that the struct `st` has) as an unsigned integer.
fn field(t: &Target, st: TypeId, rtype: u64, names: &[&str]) -> Result<u64> {
    let f = off(&t.bin.dwarf, st, names)?;
    t.mem.uint_at(rtype.wrapping_add(f.offset), f.size)
}

fn opt_field(t: &Target, st: TypeId, rtype: u64, names: &[&str]) -> Option<u64> {
    field(t, st, rtype, names).ok()
}

/// The layout of the map type whose descriptor is at `rtype`.
pub fn from_descriptor(t: &Target, rtype: u64) -> Result<MapType> {
    let d = &t.bin.dwarf;
    let rl = RtLayout::discover(d);
    let (k, _) = rl.kind_size(t, rtype).ok_or_else(|| bad(&format!("type@{rtype:#x}"), "unreadable".into()))?;
    if k != kind::MAP {
        return Err(Error::Expr(format!("{} is not a map type", t.runtime_type(rtype).0)));
    }
    // Which implementation the runtime has: its header structure says.
    let hmap = d.named("runtime.hmap").filter(|&h| d.field(h, "buckets").is_some());
    let smap = d.named("internal/runtime/maps.Map").filter(|&h| d.field(h, "dirPtr").is_some());
    let candidates = ["internal/abi.MapType", "internal/abi.SwissMapType", "internal/abi.OldMapType", "runtime.maptype"];
    let desc = |want: &str| candidates.iter().filter_map(|n| d.named(n)).find(|&s| d.field(s, want).is_some());
    let nodesc = || bad(&format!("type@{rtype:#x}"), "no map type descriptor structure in DWARF".into());
    let key_rt = field(t, desc("Key").or_else(|| desc("key")).ok_or_else(nodesc)?, rtype, &["Key", "key"])?;
    let elem_rt = field(t, desc("Elem").or_else(|| desc("elem")).ok_or_else(nodesc)?, rtype, &["Elem", "elem"])?;
    // A type made at run time keeps its name in the runtime's reflectOffs table, not in the
    // module: the name is written as Go writes a map type, from the key's and elem's names.
    let name = format!("map[{}]{}", t.runtime_type(key_rt).0, t.runtime_type(elem_rt).0);
    let (_, key_size) = rl.kind_size(t, key_rt).ok_or_else(|| bad(&name, format!("key descriptor {key_rt:#x} unreadable")))?;
    let (_, elem_size) = rl.kind_size(t, elem_rt).ok_or_else(|| bad(&name, format!("elem descriptor {elem_rt:#x} unreadable")))?;
    let (imp, header_type) = match (smap.zip(desc("GroupSize")), hmap.zip(desc("BucketSize").or_else(|| desc("bucketsize")))) {
        (Some((h, st)), _) => (Impl::Swiss(swiss(t, &name, h, st, rtype, key_size, elem_size)?), d.name_of(h).to_string()),
        (None, Some((h, st))) => (Impl::Classic(classic(t, &name, h, st, rtype, key_size, elem_size)?), d.name_of(h).to_string()),
        _ => return Err(bad(&name, "the binary's DWARF has no runtime map header and descriptor structures".into())),
    };
    Ok(MapType { id: type_id(rtype), name, key: type_of(t, key_rt), elem: type_of(t, elem_rt), key_size, elem_size, header_type, imp })
}

/// A slot of `slot` bytes for a value of `size` bytes: inline, or (indirect) a pointer to it.
fn indirect(name: &str, what: &str, slot: u64, size: u64) -> Result<bool> {
    if slot == size {
        Ok(false)
    } else if slot == 8 && size > 8 {
        Ok(true)
    } else {
        Err(bad(name, format!("{what} slot of {slot} bytes for a {what} of {size} bytes")))
    }
}

fn classic(t: &Target, name: &str, h: TypeId, st: TypeId, rtype: u64, key_size: u64, elem_size: u64) -> Result<ClassicLayout> {
    let d = &t.bin.dwarf;
    let bmap = d.named("runtime.bmap").ok_or_else(|| bad(name, "no runtime.bmap in DWARF".into()))?;
    let tophash = d.field(bmap, "tophash").ok_or_else(|| bad(name, "no runtime.bmap.tophash in DWARF".into()))?;
    let (th_elem, n) = array_of(d, tophash.ty).ok_or_else(|| bad(name, "runtime.bmap.tophash is not an array".into()))?;
    if n != 8 {
        return Err(bad(name, format!("expected 8 slots per bucket, runtime.bmap has {n}")));
    }
    // Keys start where a bucket's data does: after bmap, aligned for any key (dataOffset).
    let th_end = tophash.offset + n * d.size_of(th_elem).unwrap_or(1);
    let key_base = th_end.div_ceil(8) * 8;
    let ks = field(t, st, rtype, &["KeySize", "keysize"])?;
    let vs = field(t, st, rtype, &["ValueSize", "valuesize", "elemsize"])?;
    let bucket_size = field(t, st, rtype, &["BucketSize", "bucketsize"])?;
    let elem_base = key_base + n * ks;
    let overflow = elem_base + n * vs;
    if overflow + 8 != bucket_size {
        return Err(bad(name, format!("bucket of {bucket_size} bytes does not hold 8 keys of {ks}, 8 values of {vs} and an overflow pointer")));
    }
    same_size(t, st, rtype, &["Bucket", "bucket"], bucket_size, name)?;
    let slots = Slots {
        key_base,
        key_stride: ks,
        elem_base,
        elem_stride: vs,
        key_indirect: indirect(name, "key", ks, key_size)?,
        elem_indirect: indirect(name, "value", vs, elem_size)?,
    };
    let bucket = BucketPart { bucket_type: format!("bucket<{name}>"), bucket_size, tophash: tophash.offset, overflow: Off { offset: overflow, size: 8 }, slots };
    classic_from(d, h, bucket)
}

/// The bucket's or group's own descriptor (field `names` of the map descriptor) says `size` bytes too.
fn same_size(t: &Target, st: TypeId, rtype: u64, names: &[&str], size: u64, name: &str) -> Result<()> {
    let Some(a) = opt_field(t, st, rtype, names).filter(|&a| a != 0) else { return Ok(()) };
    match RtLayout::discover(&t.bin.dwarf).kind_size(t, a) {
        Some((_, s)) if s != size => Err(bad(name, format!("{} descriptor says {s} bytes, the map descriptor {size}", names[0].to_lowercase()))),
        _ => Ok(()),
    }
}

fn swiss(t: &Target, name: &str, h: TypeId, st: TypeId, rtype: u64, key_size: u64, elem_size: u64) -> Result<SwissLayout> {
    let d = &t.bin.dwarf;
    let table = d.named("internal/runtime/maps.table").ok_or_else(|| bad(name, "no internal/runtime/maps.table in DWARF".into()))?;
    let ctrl_size = named(d, &["internal/runtime/maps.ctrlGroup"]).and_then(|c| d.size_of(c)).unwrap_or(8);
    let n = d.constant(&["internal/abi.SwissMapGroupSlots", "internal/abi.MapGroupSlots"]).unwrap_or(8) as u64;
    if n != 8 {
        return Err(bad(name, format!("expected 8 slots per group, the runtime has {n}")));
    }
    let group_size = field(t, st, rtype, &["GroupSize"])?;
    let (kflag, eflag) = swiss_flags(t, st, rtype);
    let (split, slots) = match opt_field(t, st, rtype, &["KeysOff"]) {
        // Go 1.27: the descriptor gives both layouts' formulas (key(i) = KeysOff + i*KeyStride ...).
        Some(keys_off) => {
            let ks = field(t, st, rtype, &["KeyStride"])?;
            let elems_off = field(t, st, rtype, &["ElemsOff"])?;
            let es = field(t, st, rtype, &["ElemStride"])?;
            // Interleaved slots put each elem inside its key's slot; split groups put all elems after all keys.
            let interleaved = ks == es && elems_off >= keys_off && elems_off - keys_off < ks.max(1);
            // The last elem ends inside the last slot (interleaved) or at the end of the elem array (split).
            let elems_end = if interleaved { keys_off.saturating_add(n * ks) } else { elems_off.saturating_add(n * es) };
            if keys_off < ctrl_size || elems_end > group_size || keys_off.saturating_add(n * ks) > group_size {
                return Err(bad(name, format!("keys at {keys_off}+i*{ks}, elems at {elems_off}+i*{es} do not fit a group of {group_size} bytes")));
            }
            let (kslot, eslot) = if interleaved { (elems_off - keys_off, ks - (elems_off - keys_off)) } else { (ks, es) };
            let key_indirect = slot_indirect(name, "key", kslot, key_size, kflag)?;
            let elem_indirect = slot_indirect(name, "elem", eslot, elem_size, eflag)?;
            (!interleaved, Slots { key_base: keys_off, key_stride: ks, elem_base: elems_off, elem_stride: es, key_indirect, elem_indirect })
        }
        None => {
            let slot = field(t, st, rtype, &["SlotSize"])?;
            let elem_off = field(t, st, rtype, &["ElemOff"])?;
            let key_base = ctrl_size;
            if key_base + n * slot != group_size || elem_off > slot {
                return Err(bad(name, format!("group of {group_size} bytes does not hold a control word and 8 slots of {slot} (elem at {elem_off})")));
            }
            let key_indirect = slot_indirect(name, "key", elem_off, key_size, kflag)?;
            let elem_indirect = slot_indirect(name, "elem", slot - elem_off, elem_size, eflag)?;
            (false, Slots { key_base, key_stride: slot, elem_base: key_base + elem_off, elem_stride: slot, key_indirect, elem_indirect })
        }
    };
    same_size(t, st, rtype, &["Group"], group_size, name)?;
    let group = GroupPart { group_type: format!("group<{name}>"), group_size, ctrl: Off { offset: 0, size: ctrl_size }, split, slots };
    swiss_from(d, h, table, group)
}

/// Like [`indirect`], for a swiss slot whose room includes alignment padding: inline when the value
/// fits, a pointer when it is larger than the room (the runtime stores values over 128 bytes so).
/// `flag` is the descriptor's own indirect flag, when DWARF names its bit: both must agree.
fn slot_indirect(name: &str, what: &str, room: u64, size: u64, flag: Option<bool>) -> Result<bool> {
    let by_size = if size <= room {
        false
    } else if room >= 8 {
        true
    } else {
        return Err(bad(name, format!("{what} room of {room} bytes for a {what} of {size} bytes")));
    };
    match flag {
        Some(f) if f != by_size && !(f && room >= 8) => Err(bad(name, format!("the {what} is {} by its flags, not by its sizes", if f { "indirect" } else { "inline" }))),
        Some(f) => Ok(f),
        None => Ok(by_size),
    }
}

/// The descriptor's indirect-key and indirect-elem flags, when DWARF has the flag constants.
fn swiss_flags(t: &Target, st: TypeId, rtype: u64) -> (Option<bool>, Option<bool>) {
    let d = &t.bin.dwarf;
    let flags = opt_field(t, st, rtype, &["Flags"]);
    let bit = |names: &[&str]| Some(flags? & d.constant(names).filter(|&c| c > 0)? as u64 != 0);
    (bit(&["internal/abi.SwissMapIndirectKey", "internal/abi.MapIndirectKey"]), bit(&["internal/abi.SwissMapIndirectElem", "internal/abi.MapIndirectElem"]))
}

/// The map an interface value at `addr` (of DWARF type `ty`) holds: its header and map type (a DWARF
/// one, or one made at run time). None when `ty` is not an interface or the value is not a map.
pub fn map_in_iface(t: &Target, addr: u64, ty: TypeId) -> Option<(u64, TypeId)> {
    let d = &t.bin.dwarf;
    let (k, kid) = crate::value::go_kind(d, ty);
    if k != kind::INTERFACE {
        return None;
    }
    let empty = d.field(d.strip_typedefs(kid), "_type").is_some() || d.name_of(kid).starts_with("interface {}");
    let (w0, data) = (t.mem.u64_at(addr).ok()?, t.mem.u64_at(addr.wrapping_add(8)).ok()?);
    if w0 == 0 {
        return None;
    }
    let rtype = if empty { w0 } else { t.itab_type(w0).ok()? };
    let id = type_of(t, rtype);
    // Maps are pointer-shaped: the data word is the header itself.
    t.map_type(id).ok().map(|_| (data, id))
}

/// The offset, in a map type descriptor, of its bucket (classic) or group (swiss) type descriptor.
pub fn array_type_offset(d: &DwarfInfo) -> Option<u64> {
    let candidates = ["internal/abi.MapType", "internal/abi.SwissMapType", "internal/abi.OldMapType", "runtime.maptype"];
    candidates.iter().filter_map(|n| d.named(n)).find_map(|s| ["Group", "Bucket", "bucket"].iter().find_map(|f| d.field(s, f)).map(|f| f.offset))
}

/// The rendering plan of a key or elem type: its DWARF type's, or its descriptor's for a type id
/// made from a descriptor.
pub fn plan(t: &Target, id: TypeId) -> std::sync::Arc<crate::value::Plan> {
    match descriptor(id) {
        Some(rtype) => t.plans.rtype(t, rtype),
        None => t.plans.get(&t.bin.dwarf, id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_ids_made_from_descriptors_are_told_apart() {
        let id = type_id(0xc000_1234_5678);
        assert_eq!(descriptor(id), Some(0xc000_1234_5678));
        assert_eq!(descriptor(0x4_2a31), None);
    }

    #[test]
    fn classic_slots_inline_or_indirect_by_their_sizes() {
        assert!(!indirect("m", "key", 2, 2).unwrap());
        assert!(indirect("m", "key", 8, 200).unwrap());
        assert!(indirect("m", "key", 4, 2).is_err());
    }

    #[test]
    fn swiss_slots_agree_with_the_flags_when_known() {
        // map[int16]float32: the key's room in a slot is 4 bytes (padding), the elem's 4.
        assert!(!slot_indirect("m", "key", 4, 2, None).unwrap());
        assert!(slot_indirect("m", "elem", 8, 300, Some(true)).unwrap());
        assert!(slot_indirect("m", "elem", 8, 300, Some(false)).is_err());
        assert!(slot_indirect("m", "key", 2, 16, None).is_err());
    }
}
