//! Progress bars for long work, on stderr only when stderr is a terminal (silent in pipes, tests
//! and debuggers' batch mode).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

pub struct Bar(Option<ProgressBar>);

impl Bar {
    /// A bar of `len` steps labelled `what`; a spinner when `len` is 0 (unknown).
    pub fn new(len: u64, what: &str) -> Bar {
        if !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let pb = if len == 0 { ProgressBar::new_spinner() } else { ProgressBar::new(len) };
        pb.set_draw_target(ProgressDrawTarget::stderr());
        let style = if len == 0 { "{spinner} {msg} {pos} [{elapsed}]" } else { "{msg} [{bar:40}] {pos}/{len} [{elapsed}, {eta} left]" };
        if let Ok(s) = ProgressStyle::with_template(style) {
            pb.set_style(s.progress_chars("=> "));
        }
        pb.set_message(what.to_string());
        if len == 0 {
            pb.enable_steady_tick(std::time::Duration::from_millis(120));
        }
        Bar(Some(pb))
    }

    /// A spinner for work of unknown length (a census).
    pub fn spinner(what: &str) -> Bar {
        Bar::new(0, what)
    }

    /// A bar over the entries of a map when listing all of a large one.
    pub fn entries(len: u64, limit: u64) -> Option<Bar> {
        (limit == 0 && len >= 100_000 && std::io::stderr().is_terminal()).then(|| Bar::new(len, "entries"))
    }
    pub fn inc(&self) {
        if let Some(p) = &self.0 {
            p.inc(1);
        }
    }
    pub fn set(&self, pos: u64) {
        if let Some(p) = &self.0 {
            p.set_position(pos);
        }
    }
    pub fn finish(&self) {
        if let Some(p) = &self.0 {
            p.finish_and_clear();
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.finish();
    }
}
