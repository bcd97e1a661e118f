//! Command-line grammar, shared by the `gomap` binary and the debugger front ends (which parse the
//! same subcommands through the Python module), so every front end accepts exactly the same words.

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "gomap",
    version = env!("GOMAP_VERSION"),
    about = "Look inside Go maps in a core dump or a live process: entries, buckets, and why memory is held",
    after_help = "Examples:\n  gomap show --binary ./server --core core main.sessions\n  gomap check --pid 1234\n  gomap maps --binary ./server --core core --sort waste\n  gomap show --binary ./server --core core 0xc000123400 --type 'map[string]int'\n  gomap init gdb --write"
)]
pub struct Cli {
    /// The Go executable (with DWARF). Optional with --pid (defaults to /proc/PID/exe).
    #[arg(long, global = true, value_name = "BIN")]
    pub binary: Option<PathBuf>,
    /// A core dump of the process (`diff` takes two: --core OLD --core NEW).
    #[arg(long, global = true, value_name = "CORE", conflicts_with = "pid", action = ArgAction::Append)]
    pub core: Vec<PathBuf>,
    /// A running process (read through /proc/PID/mem; never stopped or written).
    #[arg(long, global = true, value_name = "PID")]
    pub pid: Option<u32>,
    /// Read a truncated core for what it holds; what was cut off shows as unreadable ("cut off").
    #[arg(long, global = true)]
    pub partial: bool,
    #[command(subcommand)]
    pub cmd: CliCmd,
}

/// What the command line runs: the map subcommands every front end shares, and `init`, which
/// only the command line has (it sets up the debuggers, it reads no target).
#[derive(Subcommand, Debug)]
pub enum CliCmd {
    #[command(flatten)]
    Map(Cmd),
    /// Print the line that loads gomap into gdb or LLDB; --write adds it to ~/.gdbinit or ~/.lldbinit.
    Init(InitArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Debugger {
    Gdb,
    Lldb,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The debugger to load gomap into.
    #[arg(value_enum)]
    pub debugger: Debugger,
    /// Append the line to ~/.gdbinit or ~/.lldbinit (once: nothing changes if it is there already).
    #[arg(long)]
    pub write: bool,
}

/// The same subcommands without target options, for gdb and LLDB (the debugger supplies the target).
#[derive(Parser, Debug)]
#[command(name = "gomap", no_binary_name = true, bin_name = "gomap", disable_version_flag = true, about = "Look inside Go maps: gomap show|buckets|check|maps|layout|diff|report")]
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
    /// Census of every live map: from package-level variables and every goroutine's frames through
    /// the heap, each once, by its shortest path.
    Maps(MapsArgs),
    /// Every path (up to a limit) that keeps one map alive.
    Holders(HoldersArgs),
    /// What the engine discovered in this binary: Go version, implementation, structure layouts.
    /// Needs only --binary.
    Layout(LayoutArgs),
    /// Compare two snapshots: --core OLD --core NEW, or two saved `maps --json` files.
    Diff(DiffArgs),
    /// Live census of a running process (--pid), refreshed every --interval seconds.
    Top(TopArgs),
    /// One self-contained HTML file: census, findings and occupancy pictures.
    Report(ReportArgs),
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
    /// Write the output to FILE instead (created or replaced), straight from gomap: inside gdb or
    /// LLDB the bytes never pass through the debugger.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub th: Thresholds,
}

#[derive(Args, Debug)]
pub struct BucketsArgs {
    /// A package-level variable (main.cache), a dotted path (main.srv.sessions), or 0xADDR with --type.
    pub expr: String,
    /// The map type of an address, e.g. 'map[string]int'.
    #[arg(long = "type", value_name = "T")]
    pub type_name: Option<String>,
    /// Only buckets (classic) or tables (swiss) I..J (inclusive; I alone for one).
    #[arg(long, value_name = "I[:J]")]
    pub range: Option<String>,
    /// JSON output: every bucket or group with its slot states (CONTRACT.md).
    #[arg(long)]
    pub json: bool,
    /// Write the occupancy picture (SVG) of the map to this file instead of the dump.
    #[arg(long, value_name = "OUT.svg")]
    pub picture: Option<PathBuf>,
    #[command(flatten)]
    pub th: Thresholds,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Maps to check; none means every map reachable from package-level variables.
    pub exprs: Vec<String>,
    /// The map type of addresses given as 0xADDR, e.g. 'map[string]int'.
    #[arg(long = "type", value_name = "T")]
    pub type_name: Option<String>,
    /// JSON output: a list of map objects with their findings (CONTRACT.md).
    #[arg(long)]
    pub json: bool,
    /// Only the maps with findings (the summary line still counts every map).
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub th: Thresholds,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum SortKey {
    /// Heap bytes the map holds.
    Bytes,
    /// Bytes a rebuilt map would save.
    Waste,
    /// Live entries.
    Len,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum RootsMode {
    /// Package-level variables and every goroutine's frames, through the heap.
    All,
    /// Package-level variables through struct fields and pointers only (fast).
    Globals,
}

#[derive(Args, Debug)]
pub struct MapsArgs {
    /// JSON output: a list of map objects, each with its worst finding (CONTRACT.md).
    #[arg(long)]
    pub json: bool,
    /// Order of the rows, largest first: heap bytes, bytes a rebuild would save, or entries.
    #[arg(long, value_enum, default_value_t = SortKey::Bytes)]
    pub sort: SortKey,
    /// Where the census starts.
    #[arg(long, value_enum, default_value_t = RootsMode::All)]
    pub roots: RootsMode,
    /// Only the first N maps after sorting (0 = all).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub top: usize,
    /// Only maps whose objects take at least B bytes.
    #[arg(long, default_value_t = 0, value_name = "B")]
    pub min_bytes: u64,
    #[command(flatten)]
    pub th: Thresholds,
}

#[derive(Args, Debug)]
pub struct HoldersArgs {
    /// The map: a package-level variable or dotted path, or 0xADDR (its header) with --type.
    pub expr: String,
    #[arg(long = "type", value_name = "T")]
    pub type_name: Option<String>,
    /// The most paths to print.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct LayoutArgs {
    /// JSON output: every offset and size, per map type.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// Two saved `gomap maps --json` outputs, OLD then NEW (instead of --core OLD --core NEW).
    #[arg(value_name = "OLD.json NEW.json")]
    pub files: Vec<PathBuf>,
    /// JSON output: {"before", "after", "total", "maps": [{name, type, before, after, delta, findings}]}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub th: Thresholds,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum TopOrder {
    Bytes,
    Growth,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    /// Seconds between samples.
    #[arg(long, default_value_t = 2.0, value_name = "S")]
    pub interval: f64,
    /// Order maps by their bytes or by their growth since the first sample.
    #[arg(long = "by", value_enum, default_value_t = TopOrder::Bytes)]
    pub order: TopOrder,
    /// Stop after this many samples (0 = until q or Ctrl-C).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub samples: u64,
    /// Rows shown on a terminal.
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub rows: usize,
    #[command(flatten)]
    pub th: Thresholds,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The HTML file to write.
    #[arg(short = 'o', long = "output", value_name = "FILE.html")]
    pub output: PathBuf,
    /// Maps (largest by bytes) that get their findings and occupancy picture.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub pictures: usize,
    #[command(flatten)]
    pub th: Thresholds,
}
