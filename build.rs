//! Names the build in `gomap --version` (and in the Python module's `__version__`, which the gdb and
//! LLDB front ends print when they load): the crate version plus the git revision it was built from.
//! Outside a git checkout (a source archive, a crates.io package) git has nothing to say and the
//! version says so; `GOMAP_BUILD_REVISION` lets a packager name the revision instead.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=GOMAP_BUILD_REVISION");
    let version = env!("CARGO_PKG_VERSION");
    let build = match std::env::var("GOMAP_BUILD_REVISION") {
        Ok(r) if !r.trim().is_empty() => format!("git {}", r.trim()),
        // Only a checkout whose top is this crate: a source archive unpacked inside some other
        // repository must not borrow that repository's revision.
        _ => match (git(&["rev-parse", "--show-toplevel"]), std::env::var("CARGO_MANIFEST_DIR")) {
            (Some(top), Ok(dir)) if same_dir(&top, &dir) => match git(&["rev-parse", "--short=12", "HEAD"]) {
                Some(rev) => {
                    // Rebuild when HEAD moves: HEAD itself, and the branch file it points at.
                    for p in ["HEAD", "packed-refs"] {
                        watch(git(&["rev-parse", "--git-path", p]));
                    }
                    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                        watch(git(&["rev-parse", "--git-path", &branch]));
                    }
                    format!("git {rev}")
                }
                None => "no git revision".to_string(),
            },
            _ => "no git revision: built from a source archive".to_string(),
        },
    };
    println!("cargo:rustc-env=GOMAP_VERSION={version} ({build})");
}

/// A file that does not exist would make cargo rerun this script on every build: skip it.
fn watch(path: Option<String>) {
    if let Some(p) = path.filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={p}");
    }
}

fn same_dir(a: &str, b: &str) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
