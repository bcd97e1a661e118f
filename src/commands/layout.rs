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
    text_table(&per_type, out)?;
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

/// `name @offset:size` for each field of a JSON object of [offset, size] pairs, in offset order.
fn fields_text(fields: &Value) -> String {
    let mut list: Vec<(u64, u64, &str)> = fields
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (v[0].as_u64().unwrap_or(0), v[1].as_u64().unwrap_or(0), k.as_str())).collect())
        .unwrap_or_default();
    list.sort();
    list.iter().map(|(o, z, k)| format!("{k} @{o}:{z}")).collect::<Vec<_>>().join("  ")
}

/// The text form of `layout`: the runtime structures once (they are the same for every map type
/// of a binary, so each distinct one is printed once), then one row per map type.
fn text_table(per_type: &[Value], out: &mut dyn Write) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for v in per_type {
        let mut lines = vec![format!("  header  {} ({} B): {}", generic(&v["header"]), v["header_size"], fields_text(&v["fields"]))];
        if v["impl"] == "swiss" {
            lines.push(format!("  table   {} ({} B): {}", generic(&v["table"]), v["table_size"], fields_text(&v["table_fields"])));
        }
        for l in lines {
            if seen.insert(l.clone()) {
                writeln!(out, "{l}").map_err(io)?;
            }
        }
    }
    if per_type.is_empty() {
        return Ok(());
    }
    let rows: Vec<[String; 5]> = per_type
        .iter()
        .map(|v| {
            let swiss = v["impl"] == "swiss";
            let sl = &v["slots"];
            let ind = |b: &Value| if b.as_bool().unwrap_or(false) { " (indirect)" } else { "" };
            let mut slots = format!(
                "{} @{}: keys @{}+{}{}, elems @{}+{}{}",
                if swiss { "ctrl" } else { "tophash" },
                if swiss { v["ctrl"][0].clone() } else { v["tophash"].clone() },
                sl["key_base"], sl["key_stride"], ind(&sl["key_indirect"]), sl["elem_base"], sl["elem_stride"], ind(&sl["elem_indirect"])
            );
            if !swiss {
                slots.push_str(&format!(", overflow @{}", v["overflow"][0]));
            } else if v["split_groups"].as_bool().unwrap_or(false) {
                slots.push_str(", split groups");
            }
            let size = if swiss { &v["group_size"] } else { &v["bucket_size"] };
            [v["type"].as_str().unwrap_or("?").to_string(), v["key_size"].to_string(), v["elem_size"].to_string(), size.to_string(), slots]
        })
        .collect();
    let unit = if per_type[0]["impl"] == "swiss" { "GROUP" } else { "BUCKET" };
    let head = ["TYPE".to_string(), "KEY".into(), "ELEM".into(), unit.into(), "SLOTS (offset+stride in bytes)".into()];
    let w: Vec<usize> = (0..4).map(|i| rows.iter().map(|r| r[i].chars().count()).chain([head[i].len()]).max().unwrap_or(0)).collect();
    for r in std::iter::once(&head).chain(rows.iter()) {
        writeln!(out, "  {:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}  {}", r[0], r[1], r[2], r[3], r[4], w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3]).map_err(io)?;
    }
    Ok(())
}

/// `hash<string,int>` -> `hash<K,V>`: the header's generic name, the same for every map type.
fn generic(header: &Value) -> String {
    let h = header.as_str().unwrap_or("?");
    match h.find('<') {
        Some(i) => format!("{}<K,V>", &h[..i]),
        None => h.to_string(),
    }
}
