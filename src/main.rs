//! The `gomap` command-line front end: all of it is `gomap::entry::cli_main`, which the Python
//! package's `gomap` command runs too.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(gomap::entry::cli_main(std::env::args_os(), None))
}
