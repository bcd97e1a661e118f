//! The `gomap` command-line front end.

use clap::Parser;
use gomap::cli::Cli;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    // A bug must never become a Rust backtrace in the user's terminal: one line, exit 2.
    std::panic::set_hook(Box::new(|info| {
        let msg = info.payload().downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| info.payload().downcast_ref::<String>().cloned()).unwrap_or_default();
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("gomap: internal error: {msg}{at} (please report it)");
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match std::panic::catch_unwind(|| run(&cli)) {
        Ok(Ok(code)) => ExitCode::from(code as u8),
        Ok(Err(gomap::Error::Io { path, source })) if path == "output" && source.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("gomap: error: {e}");
            ExitCode::from(2)
        }
        Err(_) => ExitCode::from(2),
    }
}

fn run(cli: &Cli) -> gomap::Result<i32> {
    let t = gomap::open_target_partial(cli.binary.as_deref(), cli.core.as_deref(), cli.pid, cli.partial)?;
    if t.mem.missing_bytes() > 0 {
        eprintln!(
            "gomap: warning: {} is truncated: {} bytes of memory are missing; values there show as \"cut off\"",
            t.mem.describe(),
            t.mem.missing_bytes()
        );
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
    let code = gomap::inspect::run(&t, &cli.cmd, None, &mut out)?;
    out.flush().map_err(|e| gomap::Error::Io { path: "output".into(), source: e })?;
    Ok(code)
}
