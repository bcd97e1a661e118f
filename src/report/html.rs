//! The HTML report page: one string, with its style, script, data and SVG pictures inline.
//! Reads the census rows as `maps --json` objects, so fields the census adds later (`root`,
//! `stats.heap_share`) show up when present and are left out when not.

use super::svg::esc;
use crate::findings::human;
use serde_json::Value;
use std::fmt::Write;

/// Rows listed in the census table (the chart and pictures take the largest anyway).
const MAX_ROWS: usize = 5000;
/// Bars in a chart.
const MAX_BARS: usize = 15;

pub struct TargetInfo {
    pub binary: String,
    pub go_version: String,
    pub memory: String,
    pub seconds: f64,
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn bytes(v: &Value) -> u64 {
    v["stats"]["bytes"].as_u64().unwrap_or(0)
}

fn worst(v: &Value) -> (u8, String) {
    let mut best: Option<(u8, &Value)> = None;
    for f in v["findings"].as_array().into_iter().flatten() {
        let sev = match s(f, "severity") {
            "error" => 3,
            "warning" => 2,
            "info" => 1,
            _ => 0,
        };
        if best.map(|b| sev > b.0).unwrap_or(true) {
            best = Some((sev, f));
        }
    }
    match best {
        Some((sev, f)) => (sev, format!("{} {}", s(f, "severity"), s(f, "kind"))),
        None => (0, String::new()),
    }
}

/// A root as one label: "global main.cache", "goroutine 18 main.worker", or the kind alone.
fn root_label(v: &Value) -> Option<String> {
    let r = v.get("root")?;
    if let Some(s) = r.as_str() {
        return Some(s.to_string());
    }
    let kind = s(r, "kind");
    let mut l = kind.to_string();
    if let Some(g) = r.get("goroutine").and_then(Value::as_u64) {
        let _ = write!(l, " {g}");
    }
    for k in ["variable", "function"] {
        if !s(r, k).is_empty() {
            let _ = write!(l, " {}", s(r, k));
            break;
        }
    }
    Some(l)
}

/// Current time as `YYYY-MM-DD HH:MM:SS UTC` (days to civil date, proleptic Gregorian).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A horizontal bar chart (inline SVG) of (label, bytes), largest first.
fn chart(title: &str, bars: &[(String, u64)]) -> String {
    let max = bars.iter().map(|b| b.1).max().unwrap_or(1).max(1);
    let (w, label_w, row) = (900.0, 330.0, 18.0);
    let h = row * bars.len() as f64 + 8.0;
    let mut o = format!(r#"<h2>{}</h2><svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#, esc(title));
    for (i, (label, b)) in bars.iter().enumerate() {
        let y = i as f64 * row + 4.0;
        let bw = ((w - label_w - 90.0) * *b as f64 / max as f64).max(1.0);
        let _ = write!(
            o,
            r##"<g><title>{}: {}</title><text x="{:.0}" y="{:.1}" text-anchor="end">{}</text><rect x="{label_w}" y="{y:.1}" width="{bw:.1}" height="{:.0}" fill="#4c6ef5"/><text x="{:.1}" y="{:.1}">{}</text></g>"##,
            esc(label),
            human(*b),
            label_w - 6.0,
            y + 12.0,
            esc(&super::short(label, 48)),
            row - 4.0,
            label_w + bw + 4.0,
            y + 12.0,
            human(*b)
        );
    }
    o.push_str("</svg>");
    o
}

const STYLE: &str = "body{font-family:sans-serif;margin:20px;color:#212529;max-width:1000px}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px}h3{font-size:15px;margin:22px 0 6px}\
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 8px;border-bottom:1px solid #dee2e6;text-align:left}\
th{cursor:pointer;background:#f1f3f5;user-select:none}th.sorted{background:#dbe4ff}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.sev3{color:#c92a2a;font-weight:bold}.sev2{color:#e8590c;font-weight:bold}.sev1{color:#495057}\
.target td:first-child{color:#868e96}.pic{overflow-x:auto;border:1px solid #dee2e6;margin:6px 0}\
ul.findings{margin:4px 0;padding-left:20px;font-size:13px}code{font-size:12px}\
.box{max-height:440px;overflow-y:auto;display:inline-block;border:1px solid #dee2e6}";

/// Sorts the census table by the clicked column (numbers by their data-v value).
const SCRIPT: &str = r#"(function(){
var t=document.getElementById('census');if(!t)return;var hs=t.tHead.rows[0].cells;
function key(r,i){var c=r.cells[i];var v=c.getAttribute('data-v');return v===null?c.textContent:parseFloat(v);}
for(var i=0;i<hs.length;i++){(function(i){hs[i].addEventListener('click',function(){
var rows=Array.prototype.slice.call(t.tBodies[0].rows);var asc=hs[i].getAttribute('data-dir')!=='asc';
rows.sort(function(a,b){var x=key(a,i),y=key(b,i);if(x<y)return asc?-1:1;if(x>y)return asc?1:-1;return 0;});
for(var j=0;j<hs.length;j++){hs[j].className='';hs[j].removeAttribute('data-dir');}
hs[i].className='sorted';hs[i].setAttribute('data-dir',asc?'asc':'desc');
rows.forEach(function(r){t.tBodies[0].appendChild(r);});});})(i);}
var data=JSON.parse(document.getElementById('census-data').textContent);
document.getElementById('ready').textContent='gomap-report-ready '+data.length+' maps';
})();"#;

/// The whole page. `rows` are census objects sorted by bytes (largest first); `pictures[i]` is the
/// picture (or the error drawing it) of `rows[i]`.
pub fn page(target: &TargetInfo, rows: &[Value], pictures: &[Result<String, String>], failed: &[(String, String)]) -> String {
    let mut o = String::with_capacity(1 << 16);
    let total: u64 = rows.iter().map(bytes).sum();
    let has_root = rows.iter().any(|r| r.get("root").is_some());
    let has_share = rows.iter().any(|r| r["stats"].get("heap_share").is_some());
    let _ = write!(o, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>gomap report: {}</title><style>{STYLE}</style></head><body>", esc(&target.binary));
    let _ = write!(o, "<h1>gomap report</h1><table class=\"target\">");
    for (k, v) in [
        ("binary", target.binary.clone()),
        ("Go version", target.go_version.clone()),
        ("target", target.memory.clone()),
        ("generated", utc_now()),
        ("time taken", format!("{:.2} s", target.seconds)),
        ("maps", format!("{} maps holding {}", rows.len(), human(total))),
        ("gomap", env!("CARGO_PKG_VERSION").to_string()),
    ] {
        let _ = write!(o, "<tr><td>{k}</td><td>{}</td></tr>", esc(&v));
    }
    o.push_str("</table>");
    let bars: Vec<(String, u64)> = rows.iter().take(MAX_BARS).map(|r| (s(r, "name").to_string(), bytes(r))).collect();
    o.push_str(&chart("Bytes by map", &bars));
    if has_root {
        let mut by: std::collections::BTreeMap<String, u64> = Default::default();
        for r in rows {
            *by.entry(root_label(r).unwrap_or_else(|| "(unknown root)".into())).or_default() += bytes(r);
        }
        let mut bars: Vec<(String, u64)> = by.into_iter().collect();
        bars.sort_by_key(|b| std::cmp::Reverse(b.1));
        bars.truncate(MAX_BARS);
        o.push_str(&chart("Bytes by root", &bars));
    }
    o.push_str("<h2>Census</h2><p>Click a column to sort.</p><div class=\"box\"><table id=\"census\"><thead><tr><th>name</th>");
    if has_root {
        o.push_str("<th>root</th>");
    }
    o.push_str("<th>type</th><th>impl</th><th>len</th><th>bytes</th>");
    if has_share {
        o.push_str("<th>heap share</th>");
    }
    o.push_str("<th>fill</th><th>worst finding</th></tr></thead><tbody>");
    for (i, r) in rows.iter().take(MAX_ROWS).enumerate() {
        let name = s(r, "name");
        let cell = if i < pictures.len() { format!("<a href=\"#map{i}\">{}</a>", esc(name)) } else { esc(name) };
        let _ = write!(o, "<tr><td>{cell}</td>");
        if has_root {
            let _ = write!(o, "<td>{}</td>", esc(&root_label(r).unwrap_or_default()));
        }
        let len = r["len"].as_u64().unwrap_or(0);
        let b = bytes(r);
        let _ = write!(o, "<td><code>{}</code></td><td>{}</td><td class=\"n\" data-v=\"{len}\">{len}</td><td class=\"n\" data-v=\"{b}\">{}</td>", esc(s(r, "type")), esc(s(r, "impl")), human(b));
        if has_share {
            match r["stats"]["heap_share"].as_f64() {
                Some(x) => {
                    let _ = write!(o, "<td class=\"n\" data-v=\"{x}\">{:.1}%</td>", x * 100.0);
                }
                None => o.push_str("<td class=\"n\" data-v=\"-1\">-</td>"),
            }
        }
        let fill = r["stats"]["fill"].as_f64().unwrap_or(0.0);
        let (sev, w) = worst(r);
        let _ = write!(o, "<td class=\"n\" data-v=\"{fill}\">{fill:.3}</td><td class=\"sev{sev}\" data-v=\"{sev}\">{}</td></tr>", esc(&w));
    }
    o.push_str("</tbody></table></div>");
    if rows.len() > MAX_ROWS {
        let _ = write!(o, "<p>{} more maps not listed (the {MAX_ROWS} largest are).</p>", rows.len() - MAX_ROWS);
    }
    if !failed.is_empty() {
        o.push_str("<h2>Maps that could not be read</h2><ul class=\"findings\">");
        for (n, e) in failed.iter().take(200) {
            let _ = write!(o, "<li><b>{}</b>: {}</li>", esc(n), esc(e));
        }
        o.push_str("</ul>");
    }
    if !pictures.is_empty() {
        let _ = write!(o, "<h2>The {} largest maps</h2>", pictures.len());
    }
    for (i, (r, p)) in rows.iter().zip(pictures).enumerate() {
        let _ = write!(o, "<h3 id=\"map{i}\">{} <code>{}</code> — {}, len {}</h3><ul class=\"findings\">", esc(s(r, "name")), esc(s(r, "type")), human(bytes(r)), r["len"]);
        let fs = r["findings"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        if fs.is_empty() {
            o.push_str("<li>no findings</li>");
        }
        for f in fs {
            let sev = match s(f, "severity") {
                "error" => 3,
                "warning" => 2,
                _ => 1,
            };
            let b = f.get("bytes").and_then(Value::as_u64).map(|b| format!(" ({})", human(b))).unwrap_or_default();
            let nums: Vec<String> = f["numbers"].as_object().into_iter().flatten().filter(|(_, v)| v.is_number() || v.is_boolean()).map(|(k, v)| format!("{k}={v}")).collect();
            let nums = if nums.is_empty() { String::new() } else { format!("<br><code>{}</code>", esc(&nums.join(" "))) };
            let _ = write!(o, "<li><span class=\"sev{sev}\">{} {}</span>{b}: {}{nums}</li>", esc(s(f, "severity")), esc(s(f, "kind")), esc(s(f, "message")));
        }
        o.push_str("</ul>");
        match p {
            Ok(svg) => {
                let _ = write!(o, "<div class=\"pic\">{svg}</div>");
            }
            Err(e) => {
                let _ = write!(o, "<p>picture unavailable: {}</p>", esc(e));
            }
        }
    }
    // The census itself, for scripts and for anyone saving the page: the same objects as `maps --json`.
    let data = serde_json::to_string(&rows[..rows.len().min(MAX_ROWS)]).unwrap_or_else(|_| "[]".into()).replace("</", "<\\/");
    let _ = write!(o, "<script type=\"application/json\" id=\"census-data\">{data}</script><p id=\"ready\"></p><script>{SCRIPT}</script></body></html>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roots_and_heap_share_show_when_the_census_has_them() {
        let t = TargetInfo { binary: "b<in>".into(), go_version: "go1.26".into(), memory: "core c".into(), seconds: 0.5 };
        let rows = vec![
            json!({"name": "main.a", "type": "map[int]int", "impl": "swiss", "len": 3, "root": {"kind": "global", "variable": "main.a"},
                   "stats": {"bytes": 4096, "fill": 0.5, "heap_share": 0.25}, "findings": [{"kind": "oversized", "severity": "warning", "message": "m</script>"}]}),
            json!({"name": "g.m", "type": "map[int]int", "impl": "swiss", "len": 1, "root": {"kind": "goroutine", "goroutine": 7, "function": "main.work"},
                   "stats": {"bytes": 100, "fill": 0.1}, "findings": []}),
        ];
        let page = page(&t, &rows, &[Ok("<svg></svg>".into())], &[]);
        assert!(page.contains("Bytes by root") && page.contains("goroutine 7 main.work"));
        assert!(page.contains("<th>heap share</th>") && page.contains("25.0%"));
        assert!(page.contains("warning oversized") && page.contains("b&lt;in&gt;"));
        // Data embedded in a script element cannot close it early.
        assert!(!page.contains("m</script>") && page.contains("m<\\/script>"));
        let plain = vec![json!({"name": "main.a", "type": "map[int]int", "len": 3, "stats": {"bytes": 1}, "findings": []})];
        let page = super::page(&t, &plain, &[], &[]);
        assert!(!page.contains("Bytes by root") && !page.contains("heap share"));
    }
}
