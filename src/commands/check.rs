//! `check`: findings only; exit status 1 when any is a warning or worse.

use super::{health, io, summary_json};
use crate::cli::CheckArgs;
use crate::decode;
use crate::error::{Error, Result};
use crate::findings::Severity;
use crate::inspect::MapRef;
use crate::target::Target;
use std::io::Write;

pub fn check(t: &Target, refs: &[MapRef], a: &CheckArgs, out: &mut dyn Write) -> Result<bool> {
    let th = a.th.to_core();
    let mut bad = false;
    let mut list = Vec::new();
    let (mut warnings, mut errors) = (0usize, 0usize);
    for r in refs {
        let (m, h, f) = health(t, r, &th)?;
        if a.type_name.is_some() {
            super::type_fits(r, &m, &h)?;
        }
        bad |= f.iter().any(|x| x.severity >= Severity::Warning);
        warnings += f.iter().filter(|x| x.severity == Severity::Warning).count();
        errors += f.iter().filter(|x| x.severity == Severity::Error).count();
        if a.quiet && f.is_empty() {
            // --quiet: only the maps with something to say
        } else if a.json {
            list.push(summary_json(t, r, &m, &h, &f));
        } else {
            let worst = f.iter().map(|x| x.severity).max();
            writeln!(out, "{} ({}, {}, len {}): {}", r.name, m.name, m.imp.name(), h.len, worst.map(|s| s.as_str()).unwrap_or("ok")).map_err(io)?;
            for x in &f {
                writeln!(out, "  {:<7} {:<10} {}", x.severity.as_str(), x.kind, x.message).map_err(io)?;
            }
        }
        if decode::interrupted() {
            return Err(Error::Interrupted);
        }
    }
    if a.json {
        serde_json::to_writer(&mut *out, &list).map_err(|e| Error::Usage(e.to_string()))?;
        writeln!(out).map_err(io)?;
    } else if refs.is_empty() {
        writeln!(out, "no maps found").map_err(io)?;
    } else {
        let n = |k: usize, what: &str| format!("{k} {what}{}", if k == 1 { "" } else { "s" });
        writeln!(out, "{}: {}, {}", n(refs.len(), "map"), n(warnings, "warning"), n(errors, "error")).map_err(io)?;
    }
    Ok(bad)
}
