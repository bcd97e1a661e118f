//! `layout`: what the engine discovered in this binary.

use super::io;
use crate::binary::TypeId;
use crate::cli::LayoutArgs;
use crate::error::{Error, Result};
use crate::layout::{Impl, MapType};
use crate::target::Target;
use serde_json::{json, Value};
use std::io::Write;

pub fn layout(t: &Target, a: &LayoutArgs, out: &mut dyn Write) -> Result<()> {
    let d = &t.bin.dwarf;
    let mut types: Vec<(String, TypeId)> = d
        .types
        .iter()
        .filter(|(_, ti)| ti.go_key.is_some() && ti.name.starts_with("map["))
        .map(|(id, ti)| (ti.name.clone(), *id))
        .collect();
    types.sort();
    types.dedup_by(|a, b| a.0 == b.0);
    let mut per_type = Vec::new();
    let mut first_err = None;
    for (name, id) in &types {
        match t.map_type(*id) {
            Ok(m) => per_type.push(layout_json(&m)),
            Err(e) => {
                first_err.get_or_insert(format!("{name}: {e}"));
            }
        }
    }
    let chosen = per_type.first().map(|v| v["impl"].clone()).unwrap_or(json!(null));
    let why = match chosen.as_str() {
        Some("classic") => "map headers (hash<K,V>) have a `buckets` field: classic runtime.hmap layout",
        Some("swiss") => "map headers (map<K,V>) have `dirPtr`/`dirLen` fields: swiss-table layout (internal/runtime/maps)",
        _ => "no map types in this binary's DWARF",
    };
    let v = json!({
        "binary": t.bin.path.display().to_string(),
        "go_version": t.bin.build.version,
        "build": t.bin.build.raw,
        "experiments": t.bin.build.experiments,
        "pie": t.bin.image.pie,
        "load_bias": format!("{:#x}", t.bias),
        "memory": t.mem.describe(),
        "impl": chosen,
        "why": why,
        "types_base": t.types_base().map(|b| format!("{b:#x}")),
        "map_types": per_type,
        "errors": first_err,
    });
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &v).map_err(|e| Error::Usage(e.to_string()))?;
        writeln!(out).map_err(io)?;
        return Ok(());
    }
    writeln!(out, "binary      {}", t.bin.path.display()).map_err(io)?;
    writeln!(out, "go          {} (build string `{}`, experiments: {})", t.bin.build.version, t.bin.build.raw, if t.bin.build.experiments.is_empty() { "none".into() } else { t.bin.build.experiments.join(",") }).map_err(io)?;
    writeln!(out, "memory      {} (load bias {:#x}{})", t.mem.describe(), t.bias, if t.bin.image.pie { ", PIE" } else { "" }).map_err(io)?;
    writeln!(out, "impl        {} — {}", chosen.as_str().unwrap_or("none"), why).map_err(io)?;
    if let Some(tb) = t.types_base() {
        writeln!(out, "types base  {tb:#x} (runtime type descriptors; interface values resolve through it)").map_err(io)?;
    }
    writeln!(out, "map types   {}", per_type.len()).map_err(io)?;
    for v in &per_type {
        writeln!(out, "  {}", serde_json::to_string(v).unwrap_or_default()).map_err(io)?;
    }
    if let Some(e) = first_err {
        writeln!(out, "note: {e}").map_err(io)?;
    }
    Ok(())
}

fn layout_json(m: &MapType) -> Value {
    let o = |x: crate::layout::Off| json!([x.offset, x.size]);
    let slots = |s: &crate::layout::Slots| {
        json!({"key_base": s.key_base, "key_stride": s.key_stride, "elem_base": s.elem_base, "elem_stride": s.elem_stride,
               "key_indirect": s.key_indirect, "elem_indirect": s.elem_indirect})
    };
    match &m.imp {
        Impl::Classic(c) => json!({
            "type": m.name, "impl": "classic", "header": m.header_type, "header_size": c.header_size,
            "fields": {"count": o(c.count), "flags": o(c.flags), "B": o(c.b), "noverflow": o(c.noverflow), "buckets": o(c.buckets),
                       "oldbuckets": o(c.oldbuckets), "nevacuate": o(c.nevacuate)},
            "bucket": c.bucket_type, "bucket_size": c.bucket_size, "tophash": c.tophash, "overflow": o(c.overflow), "slots": slots(&c.slots),
            "key_size": m.key_size, "elem_size": m.elem_size,
        }),
        Impl::Swiss(s) => json!({
            "type": m.name, "impl": "swiss", "header": m.header_type, "header_size": s.header_size,
            "fields": {"used": o(s.used), "dirPtr": o(s.dir_ptr), "dirLen": o(s.dir_len), "globalDepth": o(s.global_depth),
                       "globalShift": o(s.global_shift), "writing": o(s.writing)},
            "table": s.table_type, "table_size": s.table_size,
            "table_fields": {"used": o(s.t_used), "capacity": o(s.t_capacity), "growthLeft": o(s.t_growth_left), "localDepth": o(s.t_local_depth),
                             "index": o(s.t_index), "groups.data": o(s.t_groups_data), "groups.lengthMask": o(s.t_groups_mask)},
            "group": s.group_type, "group_size": s.group_size, "ctrl": o(s.ctrl), "split_groups": s.split, "slots": slots(&s.slots),
            "key_size": m.key_size, "elem_size": m.elem_size,
        }),
    }
}
