//! Views for people: occupancy pictures (SVG) and the self-contained HTML report, fed by the same
//! walk and census data as the JSON output.

pub mod html;
pub mod occupancy;
pub mod progress;
pub mod svg;

use crate::commands::findings_of;
use crate::cli::{DebuggerCli, MapsArgs};
use crate::decode;
use crate::error::Error;
use clap::Parser;
use crate::error::Result;
use crate::findings::{Finding, Thresholds};
use crate::inspect::MapRef;
use crate::target::Target;

/// One walk of the map at `r` that gathers its occupancy; returns the SVG picture and the findings.
pub fn picture(t: &Target, r: &MapRef, th: &Thresholds) -> Result<(String, Vec<Finding>)> {
    let m = t.map_type(r.ty)?;
    let mut occ = occupancy::Occupancy::new(&m);
    let h = decode::walk_map(t, &m, r.addr, &mut occ)?;
    let f = findings_of(&m, &h, th, None);
    let head = svg::Head {
        name: &r.name,
        type_name: &m.name,
        imp: m.imp.name(),
        go_version: &t.bin.build.raw,
        findings: f.iter().map(|x| short(&format!("{} {}: {}", x.severity.as_str(), x.kind, x.message), 150)).collect(),
    };
    Ok((svg::render(&occ, &h, &head), f))
}

/// `s` cut to at most `n` characters, with an ellipsis when cut.
pub fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut o: String = s.chars().take(n.saturating_sub(1)).collect();
    o.push('…');
    o
}

/// The census options the views use: `maps`' defaults with the given thresholds. Parsed rather than
/// built field by field, so options the census grows keep their defaults here.
pub fn census_args(th: &crate::cli::Thresholds) -> Result<MapsArgs> {
    let argv = ["maps", "--json", "--sort", "bytes"].map(String::from);
    match DebuggerCli::try_parse_from(argv) {
        Ok(DebuggerCli { cmd: crate::cli::Cmd::Maps(mut a) }) => {
            a.th = th.clone();
            Ok(a)
        }
        _ => Err(Error::Usage("internal: the maps options did not parse".into())),
    }
}

/// The census every view is built from: `maps`' rows (the one place the views call the census, so a
/// change of its signature is one edit).
pub fn census(t: &Target, a: &MapsArgs, failed: &mut Vec<(String, Error)>) -> Result<Vec<crate::commands::maps::Row>> {
    crate::commands::maps::collect(t, a, failed)
}
