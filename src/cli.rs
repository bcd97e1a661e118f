//! Command-line grammar, shared by the `gomap` binary and the debugger front ends (which parse the
//! same subcommands through the Python module), so every front end accepts exactly the same words.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "gomap",
    version,
    about = "Look inside Go maps in a core dump or a live process: entries, buckets, and why memory is held",
    after_help = "Examples:\n  gomap show --binary ./server --core core main.sessions\n  gomap check --pid 1234\n  gomap maps --binary ./server --core core --sort waste\n  gomap show --binary ./server --core core 0xc000123400 --type 'map[string]int'"
)]
pub struct Cli {
    /// The Go executable (with DWARF). Optional with --pid (defaults to /proc/PID/exe).
    #[arg(long, global = true, value_name = "BIN")]
    pub binary: Option<PathBuf>,
    /// A core dump of the process.
    #[arg(long, global = true, value_name = "CORE", conflicts_with = "pid")]
    pub core: Option<PathBuf>,
    /// A running process (read through /proc/PID/mem; never stopped or written).
    #[arg(long, global = true, value_name = "PID")]
    pub pid: Option<u32>,
    /// Read a truncated core for what it holds; what was cut off shows as unreadable ("cut off").
    #[arg(long, global = true)]
    pub partial: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The same subcommands without target options, for gdb and LLDB (the debugger supplies the target).
#[derive(Parser, Debug)]
#[command(name = "gomap", no_binary_name = true, bin_name = "gomap", disable_version_flag = true, about = "Look inside Go maps: gomap show|buckets|check|maps|layout")]
pub struct DebuggerCli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Header, stats, entries and findings of one map.
    Show(ShowArgs),
    /// The raw picture: every bucket (classic) or table and group (swiss) with tophash/ctrl bytes.
    Buckets(BucketsArgs),
    /// Findings only, for the named maps or every map reachable from package-level variables.
    /// Exit status 1 when any finding is at warning or above.
    Check(CheckArgs),
    /// Census of every map reachable from package-level variables.
    Maps(MapsArgs),
    /// What the engine discovered in this binary: Go version, implementation, structure layouts.
    Layout(LayoutArgs),
}

#[derive(Args, Debug, Clone)]
pub struct Thresholds {
    /// `oversized` when live/slots is below this fill ratio...
    #[arg(long, default_value_t = 0.3, value_name = "RATIO")]
    pub fill: f64,
    /// ...and rebuilding the map would save at least this many bytes.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub waste_floor: u64,
    /// `tombstones` when deleted slots are at least this share of used slots.
    #[arg(long, default_value_t = 0.25, value_name = "RATIO")]
    pub tombstones: f64,
    /// `overflow` is a warning from this overflow chain length on.
    #[arg(long, default_value_t = 8, value_name = "BUCKETS")]
    pub chain: u64,
}

impl Thresholds {
    pub fn to_core(&self) -> crate::findings::Thresholds {
        crate::findings::Thresholds { fill: self.fill, waste_floor: self.waste_floor, tombstone_share: self.tombstones, chain: self.chain }
    }
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// A package-level variable (main.cache), a dotted path (main.srv.sessions), or 0xADDR with --type.
    pub expr: String,
    /// The map type of an address, e.g. 'map[string]int'.
    #[arg(long = "type", value_name = "T")]
    pub type_name: Option<String>,
    /// Entries to print (0 = all).
    #[arg(long, default_value_t = 100)]
    pub limit: u64,
    /// Expand nested maps this many levels deep.
    #[arg(long, default_value_t = 0)]
    pub depth: u32,
    /// Bytes of each string to print; longer strings are cut with a marker and their length
    /// (default: 200 in text, no limit in JSON; 0 = no limit).
    #[arg(long, value_name = "N")]
    pub max_string: Option<u64>,
    /// JSON output (CONTRACT.md).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub th: Thresholds,
}

#[derive(Args, Debug)]
pub struct BucketsArgs {
    pub expr: String,
    #[arg(long = "type", value_name = "T")]
    pub type_name: Option<String>,
    /// Only buckets (classic) or tables (swiss) I..J (inclusive; I alone for one).
    #[arg(long, value_name = "I[:J]")]
    pub range: Option<String>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub th: Thresholds,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Maps to check; none means every map reachable from package-level variables.
    pub exprs: Vec<String>,
    #[arg(long = "type", value_name = "T")]
    pub type_name: Option<String>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub th: Thresholds,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum SortKey {
    Bytes,
    Waste,
    Len,
}

#[derive(Args, Debug)]
pub struct MapsArgs {
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_enum, default_value_t = SortKey::Bytes)]
    pub sort: SortKey,
    #[command(flatten)]
    pub th: Thresholds,
}

#[derive(Args, Debug)]
pub struct LayoutArgs {
    #[arg(long)]
    pub json: bool,
}
