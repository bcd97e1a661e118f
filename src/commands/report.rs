//! `report -o FILE.html`: the census, its findings and the occupancy pictures of the largest maps in
//! one self-contained HTML file (styles, script, data and pictures inline; nothing is fetched).

use super::io;
use super::maps::row_json;
use crate::cli::ReportArgs;
use crate::error::{Error, Result};
use crate::findings::human;
use crate::report::html;
use crate::target::Target;
use serde_json::Value;
use std::io::Write;
use std::time::Instant;

pub fn report(t: &Target, a: &ReportArgs, out: &mut dyn Write) -> Result<()> {
    let started = Instant::now();
    let maps_args = crate::report::census_args(&a.th)?;
    let mut failed = Vec::new();
    let census = crate::report::progress::Bar::spinner("census");
    let mut rows = crate::report::census(t, &maps_args, &mut failed)?;
    census.finish();
    rows.sort_by_key(|r| std::cmp::Reverse(r.h.bytes));
    let json: Vec<Value> = rows.iter().map(|r| row_json(t, r)).collect();
    let th = a.th.to_core();
    let progress = crate::report::progress::Bar::new(rows.len().min(a.pictures) as u64, "pictures");
    let mut pictures = Vec::new();
    for row in rows.iter().take(a.pictures) {
        if crate::decode::interrupted() {
            return Err(Error::Interrupted);
        }
        let pic = crate::report::picture(t, &row.r, &th).map(|p| p.0).map_err(|e| e.to_string());
        pictures.push(pic);
        progress.inc();
    }
    progress.finish();
    let failed: Vec<(String, String)> = failed.into_iter().map(|(n, e)| (n, e.to_string())).collect();
    let target = html::TargetInfo {
        binary: t.bin.path.display().to_string(),
        go_version: t.bin.build.raw.clone(),
        memory: t.mem.describe(),
        seconds: started.elapsed().as_secs_f64(),
    };
    let page = html::page(&target, &json, &pictures, &failed);
    std::fs::write(&a.output, page.as_bytes()).map_err(|e| Error::Io { path: a.output.display().to_string(), source: e })?;
    let total: u64 = rows.iter().map(|r| r.h.bytes).sum();
    writeln!(
        out,
        "wrote {} ({}): {} maps, {} in maps, {} pictures, {:.2}s",
        a.output.display(),
        human(page.len() as u64),
        rows.len(),
        human(total),
        pictures.len(),
        target.seconds
    )
    .map_err(io)?;
    Ok(())
}
