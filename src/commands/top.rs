//! `top --pid P`: the census of a running process every few seconds, read through /proc/PID/mem
//! without stopping it. A refreshing table on a terminal (q or Ctrl-C quits, b/g sort by bytes or
//! growth); one JSON object per sample on a line otherwise. A map that changes while it is read is
//! reported in a flagged sample, never followed into a crash.

use crate::cli::{TopArgs, TopOrder};
use crate::error::{Error, Result};
use crate::findings::human;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    // Only atomic stores: async-signal-safe.
    STOP.store(true, Ordering::Relaxed);
    crate::decode::INTERRUPT.store(true, Ordering::Relaxed);
}

/// The terminal in cbreak mode (keys without Enter, no echo; Ctrl-C still a signal), restored on drop.
struct Cbreak(Option<libc::termios>);

impl Cbreak {
    fn new() -> Cbreak {
        if !std::io::stdin().is_terminal() {
            return Cbreak(None);
        }
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed termios the call fills in.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return Cbreak(None);
            }
            let saved = t;
            t.c_lflag &= !(libc::ICANON | libc::ECHO);
            t.c_cc[libc::VMIN] = 0;
            t.c_cc[libc::VTIME] = 0;
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return Cbreak(None);
            }
            Cbreak(Some(saved))
        }
    }

    /// A key pressed within `ms` milliseconds, if any.
    fn key(&self, ms: i32) -> Option<u8> {
        self.0?;
        let mut p = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd; read into a one-byte buffer.
        unsafe {
            if libc::poll(&mut p, 1, ms) <= 0 {
                return None;
            }
            let mut b = 0u8;
            (libc::read(0, (&mut b as *mut u8).cast(), 1) == 1).then_some(b)
        }
    }
}

impl Drop for Cbreak {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            // SAFETY: restores the attributes read in `new`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}

fn terminal_rows() -> usize {
    // SAFETY: TIOCGWINSZ fills a winsize struct.
    unsafe {
        let mut w: libc::winsize = std::mem::zeroed();
        if libc::ioctl(1, libc::TIOCGWINSZ, &mut w) == 0 && w.ws_row > 0 {
            return w.ws_row as usize;
        }
    }
    40
}

/// One map in one sample.
struct Seen {
    len: u64,
    bytes: u64,
}

fn sample(t: &crate::Target, args: &crate::cli::MapsArgs, pid: u32, n: u64, started: Instant, first: &mut HashMap<String, Seen>, prev: &HashMap<String, Seen>) -> Result<(Value, HashMap<String, Seen>)> {
    let t0 = Instant::now();
    let mut failed = Vec::new();
    let rows = crate::report::census(t, args, &mut failed)?;
    let mut now = HashMap::new();
    let mut maps = Vec::new();
    let mut flagged = !failed.is_empty();
    for row in &rows {
        let name = row.r.name.clone();
        let (len, bytes) = (row.h.len, row.h.bytes);
        // On a live target a `corrupt` finding is a map caught between two states by the read, and
        // `writing` one whose write was in flight when its header was read.
        let changed = row.f.iter().any(|f| f.kind == "corrupt" || f.kind == "writing");
        flagged |= changed;
        let p = prev.get(&name);
        let f0 = first.entry(name.clone()).or_insert(Seen { len, bytes });
        let worst = crate::commands::maps::worst(&row.f).map(|x| x.kind);
        maps.push(json!({
            "name": name, "type": row.m.name, "address": format!("{:#x}", row.r.addr), "len": len, "bytes": bytes,
            "delta_len": p.map(|p| len as i64 - p.len as i64), "delta_bytes": p.map(|p| bytes as i64 - p.bytes as i64),
            "growth_bytes": bytes as i64 - f0.bytes as i64, "growth_len": len as i64 - f0.len as i64,
            "changed_during_read": changed, "worst": worst,
        }));
        now.insert(name, Seen { len, bytes });
    }
    let failed: Vec<Value> = failed.iter().map(|(n, e)| json!({"name": n, "error": e.to_string()})).collect();
    let v = json!({"sample": n, "pid": pid, "time": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0, "took": (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
                   "flagged": flagged, "total_bytes": rows.iter().map(|r| r.h.bytes).sum::<u64>(), "maps": maps, "failed": failed});
    Ok((v, now))
}

fn order(v: &mut Value, by: TopOrder) {
    if let Some(l) = v["maps"].as_array_mut() {
        let key = |m: &Value| match by {
            TopOrder::Bytes => m["bytes"].as_i64().unwrap_or(0),
            TopOrder::Growth => m["growth_bytes"].as_i64().unwrap_or(0),
        };
        l.sort_by(|a, b| key(b).cmp(&key(a)).then_with(|| a["name"].as_str().cmp(&b["name"].as_str())));
    }
}

fn signed(d: Option<i64>, bytes: bool) -> String {
    match d {
        None => "-".into(),
        Some(0) => "0".into(),
        Some(d) if bytes => super::diff::signed_human(d),
        Some(d) => format!("{d:+}"),
    }
}

fn screen(v: &Value, pid: u32, a: &TopArgs, by: TopOrder, go: &str) -> String {
    let mut s = String::from("\x1b[H\x1b[2J");
    let by_name = if by == TopOrder::Bytes { "bytes" } else { "growth" };
    s += &format!(
        "gomap top: pid {pid} ({go}), sample {} every {}s, sorted by {by_name}  [b] bytes  [g] growth  [q] quit\r\n",
        v["sample"], a.interval
    );
    let maps = v["maps"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    s += &format!(
        "{} maps, {} in maps; sample took {:.0} ms{}\r\n\r\n",
        maps.len(),
        human(v["total_bytes"].as_u64().unwrap_or(0)),
        v["took"].as_f64().unwrap_or(0.0) * 1000.0,
        if v["flagged"].as_bool() == Some(true) { "; FLAGGED: a map changed while it was read (marked *)" } else { "" }
    );
    s += &format!("{:<40} {:<26} {:>9} {:>8} {:>11} {:>11} {:>12}  worst\r\n", "name", "type", "len", "Δlen", "bytes", "Δbytes", "since start");
    let room = terminal_rows().saturating_sub(5).min(a.rows).max(1);
    for m in maps.iter().take(room) {
        let mark = if m["changed_during_read"].as_bool() == Some(true) { "*" } else { "" };
        let name = format!("{}{mark}", m["name"].as_str().unwrap_or(""));
        s += &format!(
            "{:<40} {:<26} {:>9} {:>8} {:>11} {:>11} {:>12}  {}\r\n",
            crate::report::short(&name, 40),
            crate::report::short(m["type"].as_str().unwrap_or(""), 26),
            m["len"].as_u64().unwrap_or(0),
            signed(m["delta_len"].as_i64(), false),
            human(m["bytes"].as_u64().unwrap_or(0)),
            signed(m["delta_bytes"].as_i64(), true),
            signed(m["growth_bytes"].as_i64(), true),
            m["worst"].as_str().unwrap_or("-")
        );
    }
    if maps.len() > room {
        s += &format!("... {} more maps\r\n", maps.len() - room);
    }
    s
}

/// Gone, or a zombie waiting for its parent: nothing left to sample.
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => matches!(s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()), Some("Z") | Some("X") | None),
        Err(_) => true,
    }
}

pub fn run(binary: Option<&Path>, pid: Option<u32>, core_given: bool, a: &TopArgs) -> Result<i32> {
    if core_given {
        return Err(Error::Usage("top samples a running process (--pid PID); for a core use `maps` or `report`".into()));
    }
    let pid = pid.ok_or_else(|| Error::Usage("top needs --pid PID: the running process to sample".into()))?;
    if !a.interval.is_finite() || a.interval < 0.05 || a.interval > 86400.0 {
        return Err(Error::Usage(format!("--interval {}: give seconds between 0.05 and 86400", a.interval)));
    }
    let t = crate::open_target(binary, None, Some(pid))?;
    let args = crate::report::census_args(&a.th)?;
    let tty = std::io::stdout().is_terminal();
    // SAFETY: installs a handler that only stores to atomics.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
    STOP.store(false, Ordering::Relaxed);
    let keys = if tty { Some(Cbreak::new()) } else { None };
    let mut out = std::io::stdout();
    if tty {
        let _ = out.write_all(b"\x1b[?1049h\x1b[?25l");
    }
    let result = sample_loop(&t, &args, pid, a, tty, keys.as_ref(), &mut out);
    if tty {
        let _ = out.write_all(b"\x1b[?25h\x1b[?1049l");
        let _ = out.flush();
    }
    drop(keys);
    result
}

fn sample_loop(t: &crate::Target, args: &crate::cli::MapsArgs, pid: u32, a: &TopArgs, tty: bool, keys: Option<&Cbreak>, out: &mut dyn Write) -> Result<i32> {
    let started = Instant::now();
    let (mut first, mut prev) = (HashMap::new(), HashMap::new());
    let mut by = a.order;
    let go = t.bin.build.raw.clone();
    let io = |e: std::io::Error| Error::Io { path: "output".into(), source: e };
    let mut n = 0u64;
    loop {
        if STOP.load(Ordering::Relaxed) {
            return Ok(0);
        }
        if exited(pid) {
            if !tty {
                writeln!(out, "{}", json!({"exited": true, "pid": pid})).map_err(io)?;
            }
            eprintln!("gomap: process {pid} exited");
            return Ok(0);
        }
        crate::decode::INTERRUPT.store(false, Ordering::Relaxed);
        let due = Instant::now() + Duration::from_secs_f64(a.interval);
        n += 1;
        match sample(t, args, pid, n, started, &mut first, &prev) {
            Ok((mut v, now)) => {
                prev = now;
                order(&mut v, by);
                if tty {
                    out.write_all(screen(&v, pid, a, by, &go).as_bytes()).map_err(io)?;
                } else {
                    writeln!(out, "{v}").map_err(io)?;
                }
                out.flush().map_err(io)?;
            }
            Err(Error::Interrupted) => return Ok(0),
            Err(e) => {
                // The census itself failed (the process is exiting, memory vanished): a flagged sample.
                let v = json!({"sample": n, "flagged": true, "error": e.to_string(), "maps": []});
                if tty {
                    out.write_all(format!("\x1b[H\x1b[2Jgomap top: pid {pid}: sample {n} failed: {e}\r\n").as_bytes()).map_err(io)?;
                } else {
                    writeln!(out, "{v}").map_err(io)?;
                }
                out.flush().map_err(io)?;
            }
        }
        if a.samples > 0 && n >= a.samples {
            return Ok(0);
        }
        // Wait for the next sample, answering keys and Ctrl-C meanwhile. Capped by the interval.
        while Instant::now() < due {
            if STOP.load(Ordering::Relaxed) {
                return Ok(0);
            }
            let ms = due.saturating_duration_since(Instant::now()).as_millis().min(100) as i32;
            match keys.and_then(|k| k.key(ms)) {
                Some(b'q') | Some(b'Q') => return Ok(0),
                Some(b'b') => by = TopOrder::Bytes,
                Some(b'g') => by = TopOrder::Growth,
                Some(_) => {}
                None if keys.map(|k| k.0.is_none()).unwrap_or(true) => std::thread::sleep(Duration::from_millis(ms.max(1) as u64)),
                None => {}
            }
        }
    }
}
