//! `gomap init gdb|lldb`: the one line that loads the installed front end into a debugger, and with
//! `--write` that line appended (once) to ~/.gdbinit or ~/.lldbinit.
//!
//! The line names the front end by absolute path, so the debugger's own embedded Python (which knows
//! nothing of the virtual environment or `pip install --user` directory gomap went into) finds it;
//! the front end then loads the native module that sits next to it.

use crate::cli::{Debugger, InitArgs};
use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

impl Debugger {
    fn front_end(self) -> &'static str {
        match self {
            Debugger::Gdb => "gomap.py",
            Debugger::Lldb => "gomap_lldb.py",
        }
    }
    fn init_file(self) -> &'static str {
        match self {
            Debugger::Gdb => ".gdbinit",
            Debugger::Lldb => ".lldbinit",
        }
    }
}

/// `frontends`: the directory of the front ends, when the caller knows it (the Python package
/// passes its own); otherwise they are looked for (see `find_front_ends`).
pub fn init(a: &InitArgs, frontends: Option<&Path>, out: &mut dyn Write) -> Result<i32> {
    let dir = match frontends {
        Some(d) => d.to_path_buf(),
        None => find_front_ends()?,
    };
    let file = dir.join(a.debugger.front_end());
    let file = std::fs::canonicalize(&file).map_err(|e| Error::Usage(format!("{}: {e} (this gomap installation is incomplete: reinstall it)", file.display())))?;
    let line = load_line(a.debugger, &file)?;
    let io = |e| Error::Io { path: "output".into(), source: e };
    if !a.write {
        writeln!(out, "{line}").map_err(io)?;
        return Ok(0);
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).ok_or_else(|| Error::Usage(format!("HOME is not set: no ~/{} to write", a.debugger.init_file())))?;
    let rc = Path::new(&home).join(a.debugger.init_file());
    let text = match std::fs::read(&rc) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(&rc, e)),
    };
    if text.lines().any(|l| l.trim() == line) {
        writeln!(out, "gomap: {} already has: {line}", rc.display()).map_err(io)?;
        return Ok(0);
    }
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(&rc).map_err(|e| Error::io(&rc, e))?;
    let sep = if text.is_empty() || text.ends_with('\n') { "" } else { "\n" };
    f.write_all(format!("{sep}{line}\n").as_bytes()).map_err(|e| Error::io(&rc, e))?;
    writeln!(out, "gomap: added to {}: {line}", rc.display()).map_err(io)?;
    for (n, l) in text.lines().enumerate().filter(|(_, l)| l.contains(a.debugger.front_end())) {
        writeln!(out, "gomap: note: line {} loads another gomap, before this one: {}", n + 1, l.trim()).map_err(io)?;
    }
    writeln!(out, "gomap: uninstalling gomap leaves this line in {}: delete it by hand", rc.display()).map_err(io)?;
    Ok(0)
}

/// The debugger command that loads `file`.
fn load_line(d: Debugger, file: &Path) -> Result<String> {
    let p = file.to_str().filter(|p| !p.contains(['\n', '\r', '"'])).ok_or_else(|| Error::Usage(format!("{}: a debugger init file cannot name this path", file.display())))?;
    Ok(match d {
        // gdb's `source` takes the rest of the line as the file name, spaces included.
        Debugger::Gdb => format!("source {p}"),
        Debugger::Lldb if p.contains(char::is_whitespace) => format!("command script import \"{p}\""),
        Debugger::Lldb => format!("command script import {p}"),
    })
}

/// The front ends of a gomap that was not installed as the Python package (`cargo install`, or a
/// build in a checkout): the checkout's python/ when this binary is its target/<profile>/gomap,
/// else the installed Python package's, as python3 finds it.
fn find_front_ends() -> Result<PathBuf> {
    let has_both = |d: &Path| d.join("gomap.py").is_file() && d.join("gomap_lldb.py").is_file();
    if let Some(repo) = std::env::current_exe().ok().and_then(|e| Some(e.parent()?.parent()?.parent()?.to_path_buf())) {
        let dir = repo.join("python");
        if repo.join("Cargo.toml").is_file() && has_both(&dir) {
            return Ok(dir);
        }
    }
    // Without the working directory on sys.path: a gomap.py there is not the package.
    let probe = "import sys, importlib.util\nsys.path[:] = [p for p in sys.path if p not in ('', '.')]\n\
                 s = importlib.util.find_spec('gomap')\nprint((s and s.submodule_search_locations and s.submodule_search_locations[0]) or '')";
    if let Ok(o) = std::process::Command::new("python3").args(["-c", probe]).stderr(std::process::Stdio::null()).output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        if o.status.success() && dir.is_absolute() && has_both(&dir) {
            return Ok(dir);
        }
    }
    Err(Error::Usage(
        "this gomap has no debugger front ends (cargo installs the command line only) and python3 finds no gomap package: \
         install the package (pip install . in a gomap clone, or pip install gomap-*.whl) and run its `gomap init`"
            .into(),
    ))
}
