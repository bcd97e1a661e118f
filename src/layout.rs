//! Map layouts as data: every size and offset the decoders use, discovered from the DWARF types the
//! Go linker synthesizes for each map type. The implementation is chosen from the *shape* of the
//! header (a `buckets` field means classic hmap, a `dirPtr` field means swiss), never from the version.

use crate::binary::{Die, DwarfInfo, TypeId};
use crate::error::{Error, Result};

/// A field's place in a structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Off {
    pub offset: u64,
    pub size: u64,
}

impl Off {
    #[inline]
    pub fn get(&self, bytes: &[u8]) -> u64 {
        crate::memory::le_uint(bytes, self.offset as usize, self.size as usize)
    }
}

/// How the slots of a bucket or group are laid out: slot i's key is at `key_base + i*key_stride`.
#[derive(Clone, Copy, Debug)]
pub struct Slots {
    pub key_base: u64,
    pub key_stride: u64,
    pub elem_base: u64,
    pub elem_stride: u64,
    /// Key or element stored behind a pointer (types over 128 bytes).
    pub key_indirect: bool,
    pub elem_indirect: bool,
}

#[derive(Clone, Debug)]
pub struct ClassicLayout {
    pub header_size: u64,
    pub count: Off,
    pub flags: Off,
    pub b: Off,
    pub noverflow: Off,
    pub buckets: Off,
    pub oldbuckets: Off,
    pub nevacuate: Off,
    pub bucket_type: String,
    pub bucket_size: u64,
    pub tophash: u64,
    pub overflow: Off,
    pub slots: Slots,
}

#[derive(Clone, Debug)]
pub struct SwissLayout {
    pub header_size: u64,
    pub used: Off,
    pub dir_ptr: Off,
    pub dir_len: Off,
    pub global_depth: Off,
    pub global_shift: Off,
    pub writing: Off,
    pub table_type: String,
    pub table_size: u64,
    pub t_used: Off,
    pub t_capacity: Off,
    pub t_growth_left: Off,
    pub t_local_depth: Off,
    pub t_index: Off,
    pub t_groups_data: Off,
    pub t_groups_mask: Off,
    pub group_type: String,
    pub group_size: u64,
    pub ctrl: Off,
    /// Go 1.27 GOEXPERIMENT=mapsplitgroup: keys and elems in separate arrays.
    pub split: bool,
    pub slots: Slots,
}

#[derive(Clone, Debug)]
pub enum Impl {
    Classic(ClassicLayout),
    Swiss(SwissLayout),
}

impl Impl {
    pub fn name(&self) -> &'static str {
        match self {
            Impl::Classic(_) => "classic",
            Impl::Swiss(_) => "swiss",
        }
    }
}

/// Everything needed to decode one map type.
#[derive(Clone, Debug)]
pub struct MapType {
    pub id: TypeId,
    pub name: String,
    pub key: TypeId,
    pub elem: TypeId,
    pub key_size: u64,
    pub elem_size: u64,
    pub header_type: String,
    pub imp: Impl,
}

/// Shorthand for "the structure we expected is not there".
fn missing(what: &str, in_: &str) -> Error {
    Error::Layout(format!("{in_}: no field `{what}` in the binary's DWARF"))
}

pub(crate) fn off(d: &DwarfInfo, st: TypeId, names: &[&str]) -> Result<Off> {
    for n in names {
        if let Some(f) = d.field(st, n) {
            let size = d.size_of(f.ty).ok_or_else(|| Error::Layout(format!("{}.{n}: type without size", d.name_of(st))))?;
            return Ok(Off { offset: f.offset, size });
        }
    }
    Err(missing(names[0], d.name_of(st)))
}

impl MapType {
    /// Discovers the layout of the map type `id` (a `map[K]V` typedef, or a named type over one).
    pub fn discover(d: &DwarfInfo, id: TypeId) -> Result<MapType> {
        let mut t = d.get(id).ok_or_else(|| Error::Layout(format!("no DWARF type at {id:#x}")))?;
        let mut cur = id;
        // Named map types (type Cache map[string]int) are typedefs of the map[K]V typedef.
        for _ in 0..8 {
            if t.go_key.is_some() {
                break;
            }
            match t.die {
                Die::Typedef { target: Some(x) } => {
                    cur = x;
                    t = d.get(x).ok_or_else(|| Error::Layout(format!("dangling typedef in {}", d.name_of(id))))?;
                }
                _ => break,
            }
        }
        let name = d.name_of(id).to_string();
        let (Some(key), Some(elem)) = (t.go_key, t.go_elem) else {
            return Err(Error::Expr(format!("{name} is not a map type")));
        };
        let hdr_ptr = match t.die {
            Die::Typedef { target: Some(p) } => p,
            _ => cur,
        };
        let header = d
            .pointee(hdr_ptr)
            .map(|h| d.strip_typedefs(h))
            .ok_or_else(|| Error::Layout(format!("{name}: the map typedef does not point to a header structure")))?;
        let key_size = d.size_of(key).ok_or_else(|| Error::Layout(format!("{name}: key type has no size")))?;
        let elem_size = d.size_of(elem).ok_or_else(|| Error::Layout(format!("{name}: element type has no size")))?;
        let header_type = d.name_of(header).to_string();
        let imp = if d.field(header, "buckets").is_some() {
            Impl::Classic(classic(d, header, key, elem)?)
        } else if d.field(header, "dirPtr").is_some() {
            Impl::Swiss(swiss(d, header, key, elem)?)
        } else {
            let fields: Vec<_> = d.fields(header).unwrap_or(&[]).iter().map(|f| f.name.as_str()).collect();
            return Err(Error::Layout(format!(
                "{name}: map header {header_type} has neither `buckets` (classic) nor `dirPtr` (swiss); fields: {}",
                fields.join(", ")
            )));
        };
        Ok(MapType { id, name, key, elem, key_size, elem_size, header_type, imp })
    }
}

/// Whether a slot of type `slot` holds a `want` directly or a pointer to it.
fn indirect(d: &DwarfInfo, slot: TypeId, want: TypeId) -> bool {
    let s = d.strip_typedefs(slot);
    let w = d.strip_typedefs(want);
    s != w && d.pointee(s).map(|p| d.strip_typedefs(p)) == Some(w)
}

pub(crate) fn array_of(d: &DwarfInfo, arr: TypeId) -> Option<(TypeId, u64)> {
    match d.get(d.strip_typedefs(arr))?.die {
        Die::Array { elem: Some(e), count } => Some((e, count)),
        _ => None,
    }
}

fn classic(d: &DwarfInfo, h: TypeId, key: TypeId, elem: TypeId) -> Result<ClassicLayout> {
    let hname = d.name_of(h).to_string();
    let buckets_f = d.field(h, "buckets").ok_or_else(|| missing("buckets", &hname))?;
    let bucket = d
        .pointee(buckets_f.ty)
        .map(|b| d.strip_typedefs(b))
        .ok_or_else(|| Error::Layout(format!("{hname}.buckets is not a pointer to a bucket type")))?;
    let bname = d.name_of(bucket).to_string();
    let bucket_size = d.size_of(bucket).ok_or_else(|| Error::Layout(format!("{bname} has no size")))?;
    let keys = d.field(bucket, "keys").ok_or_else(|| missing("keys", &bname))?;
    let elems = d
        .field(bucket, "values")
        .or_else(|| d.field(bucket, "elems"))
        .ok_or_else(|| missing("values", &bname))?;
    let (kslot, kn) = array_of(d, keys.ty).ok_or_else(|| Error::Layout(format!("{bname}.keys is not an array")))?;
    let (eslot, en) = array_of(d, elems.ty).ok_or_else(|| Error::Layout(format!("{bname}.values is not an array")))?;
    let tophash = d.field(bucket, "tophash").ok_or_else(|| missing("tophash", &bname))?;
    let th_count = array_of(d, tophash.ty).map(|x| x.1).unwrap_or(0);
    if kn != 8 || en != 8 || th_count != 8 {
        return Err(Error::Layout(format!("{bname}: expected 8 slots per bucket, found {th_count} tophash, {kn} keys, {en} values")));
    }
    let ks = d.size_of(kslot).unwrap_or(0);
    let es = d.size_of(eslot).unwrap_or(0);
    let slots = Slots {
        key_base: keys.offset,
        key_stride: ks,
        elem_base: elems.offset,
        elem_stride: es,
        key_indirect: indirect(d, kslot, key),
        elem_indirect: indirect(d, eslot, elem),
    };
    let overflow = off(d, bucket, &["overflow"])?;
    classic_from(d, h, BucketPart { bucket_type: bname, bucket_size, tophash: tophash.offset, overflow, slots })
}

/// What differs between classic map types: the bucket.
pub(crate) struct BucketPart {
    pub bucket_type: String,
    pub bucket_size: u64,
    pub tophash: u64,
    pub overflow: Off,
    pub slots: Slots,
}

/// A classic layout: the header's fields from the header structure `h` (DWARF), the bucket's from `b`.
pub(crate) fn classic_from(d: &DwarfInfo, h: TypeId, b: BucketPart) -> Result<ClassicLayout> {
    Ok(ClassicLayout {
        header_size: d.size_of(h).ok_or_else(|| Error::Layout(format!("{} has no size", d.name_of(h))))?,
        count: off(d, h, &["count"])?,
        flags: off(d, h, &["flags"])?,
        b: off(d, h, &["B"])?,
        noverflow: off(d, h, &["noverflow"])?,
        buckets: off(d, h, &["buckets"])?,
        oldbuckets: off(d, h, &["oldbuckets"])?,
        nevacuate: off(d, h, &["nevacuate"])?,
        bucket_type: b.bucket_type,
        bucket_size: b.bucket_size,
        tophash: b.tophash,
        overflow: b.overflow,
        slots: b.slots,
    })
}

fn swiss(d: &DwarfInfo, h: TypeId, key: TypeId, elem: TypeId) -> Result<SwissLayout> {
    let hname = d.name_of(h).to_string();
    let dir = d.field(h, "dirPtr").ok_or_else(|| missing("dirPtr", &hname))?;
    // dirPtr is **table<K,V>.
    let table = d
        .pointee(dir.ty)
        .and_then(|p| d.pointee(p))
        .map(|t| d.strip_typedefs(t))
        .ok_or_else(|| Error::Layout(format!("{hname}.dirPtr is not a **table")))?;
    let tname = d.name_of(table).to_string();
    let groups = d.field(table, "groups").ok_or_else(|| missing("groups", &tname))?;
    let gref = d.strip_typedefs(groups.ty);
    let data = d.field(gref, "data").ok_or_else(|| missing("data", d.name_of(gref)))?;
    let group = d
        .pointee(data.ty)
        .map(|g| d.strip_typedefs(g))
        .ok_or_else(|| Error::Layout(format!("{}.data is not a pointer to a group", d.name_of(gref))))?;
    let gname = d.name_of(group).to_string();
    let group_size = d.size_of(group).ok_or_else(|| Error::Layout(format!("{gname} has no size")))?;
    let ctrl = off(d, group, &["ctrl"])?;
    let (split, slots) = if let Some(slots_f) = d.field(group, "slots") {
        let (slot, n) = array_of(d, slots_f.ty).ok_or_else(|| Error::Layout(format!("{gname}.slots is not an array")))?;
        if n != 8 {
            return Err(Error::Layout(format!("{gname}: expected 8 slots per group, found {n}")));
        }
        let stride = d.size_of(slot).unwrap_or(0);
        let k = d.field(slot, "key").ok_or_else(|| missing("key", d.name_of(slot)))?;
        let e = d.field(slot, "elem").ok_or_else(|| missing("elem", d.name_of(slot)))?;
        (
            false,
            Slots {
                key_base: slots_f.offset + k.offset,
                key_stride: stride,
                elem_base: slots_f.offset + e.offset,
                elem_stride: stride,
                key_indirect: indirect(d, k.ty, key),
                elem_indirect: indirect(d, e.ty, elem),
            },
        )
    } else {
        let keys = d.field(group, "keys").ok_or_else(|| missing("slots", &gname))?;
        let elems = d.field(group, "elems").ok_or_else(|| missing("elems", &gname))?;
        let (kslot, kn) = array_of(d, keys.ty).ok_or_else(|| Error::Layout(format!("{gname}.keys is not an array")))?;
        let (eslot, en) = array_of(d, elems.ty).ok_or_else(|| Error::Layout(format!("{gname}.elems is not an array")))?;
        if kn != 8 || en != 8 {
            return Err(Error::Layout(format!("{gname}: expected 8 keys and elems per group, found {kn} and {en}")));
        }
        (
            true,
            Slots {
                key_base: keys.offset,
                key_stride: d.size_of(kslot).unwrap_or(0),
                elem_base: elems.offset,
                elem_stride: d.size_of(eslot).unwrap_or(0),
                key_indirect: indirect(d, kslot, key),
                elem_indirect: indirect(d, eslot, elem),
            },
        )
    };
    swiss_from(d, h, table, GroupPart { group_type: gname, group_size, ctrl, split, slots })
}

/// What differs between swiss map types: the group.
pub(crate) struct GroupPart {
    pub group_type: String,
    pub group_size: u64,
    pub ctrl: Off,
    pub split: bool,
    pub slots: Slots,
}

/// A swiss layout: the header's and table's fields from the structures `h` and `table` (DWARF), the
/// group's from `g`.
pub(crate) fn swiss_from(d: &DwarfInfo, h: TypeId, table: TypeId, g: GroupPart) -> Result<SwissLayout> {
    let tname = d.name_of(table).to_string();
    let groups = d.field(table, "groups").ok_or_else(|| missing("groups", &tname))?;
    let gref = d.strip_typedefs(groups.ty);
    let data = d.field(gref, "data").ok_or_else(|| missing("data", d.name_of(gref)))?;
    let mask = off(d, gref, &["lengthMask"])?;
    Ok(SwissLayout {
        header_size: d.size_of(h).ok_or_else(|| Error::Layout(format!("{} has no size", d.name_of(h))))?,
        used: off(d, h, &["used"])?,
        dir_ptr: off(d, h, &["dirPtr"])?,
        dir_len: off(d, h, &["dirLen"])?,
        global_depth: off(d, h, &["globalDepth"])?,
        global_shift: off(d, h, &["globalShift"])?,
        writing: off(d, h, &["writing"])?,
        table_type: tname.clone(),
        table_size: d.size_of(table).ok_or_else(|| Error::Layout(format!("{tname} has no size")))?,
        t_used: off(d, table, &["used"])?,
        t_capacity: off(d, table, &["capacity"])?,
        t_growth_left: off(d, table, &["growthLeft"])?,
        t_local_depth: off(d, table, &["localDepth"])?,
        t_index: off(d, table, &["index"])?,
        t_groups_data: Off { offset: groups.offset + data.offset, size: 8 },
        t_groups_mask: Off { offset: groups.offset + mask.offset, size: mask.size },
        group_type: g.group_type,
        group_size: g.group_size,
        ctrl: g.ctrl,
        split: g.split,
        slots: g.slots,
    })
}

/// Reference layouts of `map[int64]int64`, written out by hand from the Go runtime's structures
/// (Go 1.23 `hmap`/`bmap`; Go 1.26 `maps.Map`/`table`/`group`; Go 1.27 mapsplitgroup groups), for the
/// unit tests, property tests and fuzzers that build map images in memory without a Go binary. Real
/// decoding never uses them: layouts always come from the binary's DWARF.
#[doc(hidden)]
pub mod reference {
    use super::*;

    fn off(offset: u64, size: u64) -> Off {
        Off { offset, size }
    }

    /// hmap of 48 bytes; bucket = tophash[8], keys[8], elems[8], overflow pointer (144 bytes). With
    /// `indirect_key` each key slot holds a pointer to a `key_size`-byte key.
    pub fn classic(indirect_key: bool, key_size: u64) -> MapType {
        MapType {
            id: 1,
            name: "map[int64]int64".into(),
            key: 2,
            elem: 3,
            key_size: if indirect_key { key_size } else { 8 },
            elem_size: 8,
            header_type: "hash<int64,int64>".into(),
            imp: Impl::Classic(ClassicLayout {
                header_size: 48,
                count: off(0, 8),
                flags: off(8, 1),
                b: off(9, 1),
                noverflow: off(10, 2),
                buckets: off(16, 8),
                oldbuckets: off(24, 8),
                nevacuate: off(32, 8),
                bucket_type: "bucket<int64,int64>".into(),
                bucket_size: 144,
                tophash: 0,
                overflow: off(136, 8),
                slots: Slots { key_base: 8, key_stride: 8, elem_base: 72, elem_stride: 8, key_indirect: indirect_key, elem_indirect: false },
            }),
        }
    }

    /// Map of 48 bytes, table of 32, group = ctrl word + 8 slots (136 bytes): slots of {key, elem},
    /// or with `split` keys[8] then elems[8] (same size, other offsets).
    pub fn swiss(split: bool) -> MapType {
        let slots = if split {
            Slots { key_base: 8, key_stride: 8, elem_base: 72, elem_stride: 8, key_indirect: false, elem_indirect: false }
        } else {
            Slots { key_base: 8, key_stride: 16, elem_base: 16, elem_stride: 16, key_indirect: false, elem_indirect: false }
        };
        MapType {
            id: 1,
            name: "map[int64]int64".into(),
            key: 2,
            elem: 3,
            key_size: 8,
            elem_size: 8,
            header_type: "map<int64,int64>".into(),
            imp: Impl::Swiss(SwissLayout {
                header_size: 48,
                used: off(0, 8),
                dir_ptr: off(16, 8),
                dir_len: off(24, 8),
                global_depth: off(32, 1),
                global_shift: off(33, 1),
                writing: off(34, 1),
                table_type: "table<int64,int64>".into(),
                table_size: 32,
                t_used: off(0, 2),
                t_capacity: off(2, 2),
                t_growth_left: off(4, 2),
                t_local_depth: off(6, 1),
                t_index: off(8, 8),
                t_groups_data: off(16, 8),
                t_groups_mask: off(24, 8),
                group_type: "group<int64,int64>".into(),
                group_size: 136,
                ctrl: off(0, 8),
                split,
                slots,
            }),
        }
    }
}
