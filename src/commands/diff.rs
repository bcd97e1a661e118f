//! `diff`: two snapshots of the same program compared map by map. A snapshot is a census (the
//! `maps --json` list), taken from a core now or read back from a saved file, so a snapshot kept
//! today can be compared with one taken next week.

use super::io;
use super::maps::row_json;
use crate::binary::Binary;
use crate::cli::{DiffArgs, MapsArgs};
use crate::error::{Error, Result};
use crate::findings::human;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The most maps one snapshot may list.
const MAX_MAPS: usize = 1_000_000;

/// One snapshot: where it came from and its census rows (the `maps --json` objects).
pub struct Snapshot {
    pub source: String,
    pub maps: Vec<Value>,
}

/// A census of one target as `maps --json` objects.
pub fn census(t: &crate::Target, a: &MapsArgs) -> Result<Vec<Value>> {
    let mut failed = Vec::new();
    let rows = crate::report::census(t, a, &mut failed)?;
    Ok(rows.iter().map(|r| row_json(t, r)).collect())
}

/// A saved `gomap maps --json` output (a list of map objects, or an object with a `maps` list).
pub fn read_snapshot(path: &Path) -> Result<Snapshot> {
    let text = std::fs::read(path).map_err(|e| Error::Io { path: path.display().to_string(), source: e })?;
    let bad = |why: String| Error::Usage(format!("{}: not a saved `gomap maps --json` output ({why})", path.display()));
    let v: Value = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    let list = match v {
        Value::Array(l) => l,
        Value::Object(mut o) => match o.remove("maps") {
            Some(Value::Array(l)) => l,
            _ => return Err(bad("an object without a `maps` list".into())),
        },
        _ => return Err(bad("neither a list nor an object".into())),
    };
    if list.len() > MAX_MAPS {
        return Err(bad(format!("more than {MAX_MAPS} maps")));
    }
    if let Some(i) = list.iter().position(|m| m.get("name").and_then(Value::as_str).is_none()) {
        return Err(bad(format!("map {i} has no `name`")));
    }
    Ok(Snapshot { source: path.display().to_string(), maps: list })
}

/// The census of each core of the same executable.
pub fn read_cores(bin: &Arc<Binary>, cores: &[PathBuf], a: &MapsArgs) -> Result<Vec<Snapshot>> {
    cores
        .iter()
        .map(|c| {
            let t = crate::open_target_with(bin.clone(), Some(c), None)?;
            let _census = crate::report::progress::Bar::spinner(&format!("census of {}", c.display()));
            Ok(Snapshot { source: format!("core {}", c.display()), maps: census(&t, a)? })
        })
        .collect()
}

fn str_of<'a>(m: &'a Value, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

fn bytes_of(m: &Value) -> Option<u64> {
    m.get("stats").and_then(|s| s.get("bytes")).and_then(Value::as_u64)
}

/// `{len, bytes, address}` of a present, non-nil map; null otherwise.
fn side(m: Option<&Value>) -> Value {
    match m {
        Some(m) if !matches!(str_of(m, "address"), "0x0" | "") => {
            json!({"len": m.get("len").and_then(Value::as_u64), "bytes": bytes_of(m), "address": str_of(m, "address"),
                   "worst": m.get("worst").cloned().unwrap_or(Value::Null)})
        }
        _ => Value::Null,
    }
}

fn kinds(m: Option<&Value>) -> BTreeSet<String> {
    m.and_then(|m| m.get("findings")).and_then(Value::as_array).map(|l| l.iter().filter_map(|f| f.get("kind").and_then(Value::as_str).map(str::to_string)).collect()).unwrap_or_default()
}

/// Pairs the maps of two snapshots: by name (path) first, then the rest by address.
fn pair<'a>(old: &'a [Value], new: &'a [Value]) -> Vec<(Option<&'a Value>, Option<&'a Value>)> {
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, m) in old.iter().enumerate() {
        by_name.entry(str_of(m, "name")).or_default().push(i);
    }
    let mut used = vec![false; old.len()];
    let mut matched: Vec<Option<usize>> = vec![None; new.len()];
    for (j, m) in new.iter().enumerate() {
        if let Some(is) = by_name.get(str_of(m, "name")) {
            if let Some(&i) = is.iter().find(|&&i| !used[i]) {
                used[i] = true;
                matched[j] = Some(i);
            }
        }
    }
    let mut by_addr: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, m) in old.iter().enumerate().filter(|(i, _)| !used[*i]) {
        by_addr.entry(str_of(m, "address")).or_default().push(i);
    }
    for (j, m) in new.iter().enumerate() {
        if matched[j].is_some() {
            continue;
        }
        if let Some(is) = by_addr.get(str_of(m, "address")) {
            if let Some(&i) = is.iter().find(|&&i| !used[i] && str_of(&old[i], "type") == str_of(m, "type")) {
                used[i] = true;
                matched[j] = Some(i);
            }
        }
    }
    let mut out: Vec<_> = new.iter().zip(&matched).map(|(m, i)| (i.map(|i| &old[i]), Some(m))).collect();
    out.extend(old.iter().zip(&used).filter(|(_, u)| !**u).map(|(m, _)| (Some(m), None)));
    out
}

fn delta(a: Option<u64>, b: Option<u64>) -> i64 {
    b.unwrap_or(0) as i64 - a.unwrap_or(0) as i64
}

/// The comparison as JSON: `{"before": src, "after": src, "maps": [...], "total": {...}}`.
pub fn compare(old: &Snapshot, new: &Snapshot) -> Value {
    let mut rows: Vec<(i64, Value)> = pair(&old.maps, &new.maps)
        .into_iter()
        .map(|(a, b)| {
            let named = b.or(a).unwrap_or(&Value::Null);
            let (ka, kb) = (kinds(a), kinds(b));
            let (ba, bb) = (a.and_then(bytes_of), b.and_then(bytes_of));
            let (la, lb) = (a.and_then(|m| m.get("len")).and_then(Value::as_u64), b.and_then(|m| m.get("len")).and_then(Value::as_u64));
            let db = delta(ba, bb);
            let mut v = json!({
                "name": str_of(named, "name"), "type": str_of(named, "type"), "impl": str_of(named, "impl"),
                "before": side(a), "after": side(b),
                "delta": {"len": delta(la, lb), "bytes": db},
                "findings": {"appeared": kb.difference(&ka).collect::<Vec<_>>(), "cleared": ka.difference(&kb).collect::<Vec<_>>()},
            });
            if let (Some(a), Some(b)) = (a, b) {
                if str_of(a, "name") != str_of(b, "name") {
                    v["renamed_from"] = json!(str_of(a, "name"));
                }
            }
            (db, v)
        })
        .collect();
    rows.sort_by(|x, y| y.0.unsigned_abs().cmp(&x.0.unsigned_abs()).then_with(|| str_of(&x.1, "name").cmp(str_of(&y.1, "name"))));
    let total = |s: &Snapshot| s.maps.iter().filter_map(bytes_of).sum::<u64>();
    json!({"before": old.source, "after": new.source,
           "total": {"before": total(old), "after": total(new), "maps_before": old.maps.len(), "maps_after": new.maps.len()},
           "maps": rows.into_iter().map(|r| r.1).collect::<Vec<_>>()})
}

pub(crate) fn signed_human(d: i64) -> String {
    match d {
        0 => "0".into(),
        d if d > 0 => format!("+{}", human(d as u64)),
        d => format!("-{}", human(d.unsigned_abs())),
    }
}

fn side_text(v: &Value, key: &str, bytes: bool) -> String {
    match v.get(key).and_then(Value::as_u64) {
        None => "-".into(),
        Some(n) if bytes => human(n),
        Some(n) => n.to_string(),
    }
}

pub fn write(d: &Value, json: bool, out: &mut dyn Write) -> Result<()> {
    if json {
        serde_json::to_writer(&mut *out, d).map_err(|e| Error::Usage(e.to_string()))?;
        writeln!(out).map_err(io)?;
        return Ok(());
    }
    writeln!(out, "before: {}\nafter:  {}", str_of(d, "before"), str_of(d, "after")).map_err(io)?;
    writeln!(out, "{:<40} {:<26} {:>9} {:>9} {:>9} {:>11} {:>11} {:>11}  findings", "name", "type", "len was", "len now", "Δlen", "bytes was", "bytes now", "Δbytes").map_err(io)?;
    for m in d["maps"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let (b, a) = (&m["before"], &m["after"]);
        let mut f: Vec<String> = Vec::new();
        if b.is_null() {
            f.push("new map".into());
        }
        if a.is_null() {
            f.push("gone".into());
        }
        f.extend(m["findings"]["appeared"].as_array().into_iter().flatten().filter_map(Value::as_str).map(|k| format!("+{k}")));
        f.extend(m["findings"]["cleared"].as_array().into_iter().flatten().filter_map(Value::as_str).map(|k| format!("-{k}")));
        let dl = m["delta"]["len"].as_i64().unwrap_or(0);
        writeln!(
            out,
            "{:<40} {:<26} {:>9} {:>9} {:>9} {:>11} {:>11} {:>11}  {}",
            str_of(m, "name"),
            crate::report::short(str_of(m, "type"), 26),
            side_text(b, "len", false),
            side_text(a, "len", false),
            if dl > 0 { format!("+{dl}") } else { dl.to_string() },
            side_text(b, "bytes", true),
            side_text(a, "bytes", true),
            signed_human(m["delta"]["bytes"].as_i64().unwrap_or(0)),
            f.join(" ")
        )
        .map_err(io)?;
    }
    let t = &d["total"];
    let (tb, ta) = (t["before"].as_u64().unwrap_or(0), t["after"].as_u64().unwrap_or(0));
    writeln!(
        out,
        "total: {} maps {} -> {} maps {} ({})",
        t["maps_before"], human(tb), t["maps_after"], human(ta), signed_human(ta as i64 - tb as i64)
    )
    .map_err(io)?;
    Ok(())
}

/// `diff OLD.json NEW.json`.
pub fn diff_files(a: &DiffArgs, out: &mut dyn Write) -> Result<()> {
    let [old, new] = a.files.as_slice() else {
        return Err(Error::Usage(format!("diff takes two saved `maps --json` files (OLD NEW), not {}", a.files.len())));
    };
    let d = compare(&read_snapshot(old)?, &read_snapshot(new)?);
    write(&d, a.json, out)
}

/// `diff --binary B --core OLD --core NEW`.
pub fn diff_cores(bin: &Arc<Binary>, cores: &[PathBuf], a: &DiffArgs, out: &mut dyn Write) -> Result<()> {
    if cores.len() != 2 || !a.files.is_empty() {
        return Err(Error::Usage("diff compares two snapshots: --core OLD --core NEW, or OLD.json NEW.json".into()));
    }
    let s = read_cores(bin, cores, &crate::report::census_args(&a.th)?)?;
    write(&compare(&s[0], &s[1]), a.json, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, addr: &str, len: u64, bytes: u64, kinds: &[&str]) -> Value {
        json!({"name": name, "type": "map[int]int", "address": addr, "len": len, "stats": {"bytes": bytes},
               "findings": kinds.iter().map(|k| json!({"kind": k})).collect::<Vec<_>>()})
    }

    #[test]
    fn pairs_by_name_then_address_and_sorts_by_change() {
        let old = Snapshot { source: "a".into(), maps: vec![m("main.a", "0x10", 1, 100, &[]), m("main.old", "0x20", 5, 500, &["stale"]), m("main.gone", "0x30", 1, 50, &[])] };
        let new = Snapshot { source: "b".into(), maps: vec![m("main.a", "0x10", 10, 1000, &["oversized"]), m("main.renamed", "0x20", 5, 500, &[]), m("main.new", "0x40", 2, 200, &[])] };
        let d = compare(&old, &new);
        let names: Vec<&str> = d["maps"].as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["main.a", "main.new", "main.gone", "main.renamed"]);
        let a = &d["maps"][0];
        assert_eq!(a["delta"]["bytes"], 900);
        assert_eq!(a["findings"]["appeared"], json!(["oversized"]));
        assert_eq!(d["maps"][1]["before"], Value::Null);
        assert_eq!(d["maps"][2]["after"], Value::Null);
        assert_eq!(d["maps"][3]["renamed_from"], "main.old");
        assert_eq!(d["maps"][3]["findings"]["cleared"], json!(["stale"]));
    }
}
