//! The `gomap` command line as one function, called by the binary (src/main.rs) and by the Python
//! package's `gomap` command (`_gomap.cli_main`): one grammar, one behaviour, the same output,
//! messages and exit codes whichever way gomap was installed.

use crate::cli::{Cli, CliCmd, Cmd};
use crate::error::Error;
use clap::Parser;
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

/// Runs a command line (`argv[0]` is the program name) and returns the exit status: 0, 1 when
/// `check` found warnings, 2 for an error (one line on stderr). `frontends` is the directory of
/// the installed gdb/LLDB front ends when the caller knows it (the Python package does).
pub fn cli_main<I, T>(argv: I, frontends: Option<&Path>) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // A bug must never become a Rust backtrace in the user's terminal: one line, exit 2.
    std::panic::set_hook(Box::new(|info| {
        let msg = info.payload().downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| info.payload().downcast_ref::<String>().cloned()).unwrap_or_default();
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("gomap: internal error: {msg}{at} (please report it)");
    }));
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match std::panic::catch_unwind(|| run(&cli, frontends)) {
        Ok(Ok(code)) => code as u8,
        Ok(Err(Error::Io { path, source })) if path == "output" && source.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Ok(Err(e)) => {
            eprintln!("gomap: error: {e}");
            2
        }
        Err(_) => 2,
    }
}

fn run(cli: &Cli, frontends: Option<&Path>) -> crate::Result<i32> {
    let cmd = match &cli.cmd {
        CliCmd::Map(cmd) => cmd,
        CliCmd::Init(a) => {
            if cli.binary.is_some() || !cli.core.is_empty() || cli.pid.is_some() {
                return Err(Error::Usage("init reads no target: it takes no --binary, --core or --pid".into()));
            }
            return crate::commands::init::init(a, frontends, &mut std::io::stdout().lock());
        }
    };
    if cli.core.len() > 1 && !matches!(cmd, Cmd::Diff(_)) {
        return Err(Error::Usage(format!("--core is given {} times: only `diff` compares two cores", cli.core.len())));
    }
    if let Cmd::Top(a) = cmd {
        return crate::commands::top::run(cli.binary.as_deref(), cli.pid, !cli.core.is_empty(), a);
    }
    let stdout = std::io::stdout();
    let lock = stdout.lock();
    // Our own 64 KiB buffer straight onto fd 1: std's stdout is line-buffered and scans every write
    // for a newline, which showed up in profiles of multi-megabyte JSON dumps.
    let sink: Box<dyn Write> = match std::os::fd::AsFd::as_fd(&lock).try_clone_to_owned() {
        Ok(fd) => Box::new(std::fs::File::from(fd)),
        Err(_) => Box::new(lock),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, sink);
    let core = cli.core.first().map(|p| p.as_path());
    let code = match cmd {
        Cmd::Diff(a) if a.files.is_empty() => {
            let bin = match &cli.binary {
                Some(b) => std::sync::Arc::new(crate::binary::Binary::open(b)?),
                None => return Err(Error::Usage("diff --core OLD --core NEW needs --binary BIN".into())),
            };
            crate::commands::diff::diff_cores(&bin, &cli.core, a, &mut out)?;
            0
        }
        Cmd::Diff(a) => {
            if !cli.core.is_empty() || cli.pid.is_some() {
                return Err(Error::Usage("diff takes either two saved JSON files or --core OLD --core NEW, not both".into()));
            }
            crate::commands::diff::diff_files(a, &mut out)?;
            0
        }
        _ => {
            let t = match (cmd, cli.binary.as_deref()) {
                // `layout` describes the executable: it needs no memory but the file's own.
                (Cmd::Layout(_), Some(b)) if core.is_none() && cli.pid.is_none() => {
                    let bin = std::sync::Arc::new(crate::binary::Binary::open(b)?);
                    let mem = crate::memory::exe::ExeMemory { image: bin.image.clone(), path: b.to_path_buf() };
                    crate::Target::new(bin, Box::new(mem))
                }
                _ => crate::open_target_partial(cli.binary.as_deref(), core, cli.pid, cli.partial)?,
            };
            if t.mem.missing_bytes() > 0 {
                eprintln!(
                    "gomap: warning: {} is truncated: {} bytes of memory are missing; values there show as \"cut off\"",
                    t.mem.describe(),
                    t.mem.missing_bytes()
                );
            }
            crate::inspect::run(&t, cmd, None, &mut out)?
        }
    };
    out.flush().map_err(|e| Error::Io { path: "output".into(), source: e })?;
    Ok(code)
}
