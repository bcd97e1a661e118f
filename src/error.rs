//! One error type for the whole engine. Every message is a single line that says what is wrong
//! and, where there is one, what to do about it: the front ends print it as-is.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or read at all.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The executable is not something we can use (not ELF, not Go, no DWARF, ...).
    #[error("{0}")]
    Binary(String),
    /// The core file is malformed, truncated or belongs to another executable.
    #[error("{0}")]
    Core(String),
    /// A live process could not be read.
    #[error("{0}")]
    Process(String),
    /// Memory of the target could not be read at an address.
    #[error("cannot read {len} bytes at {addr:#x} ({why})")]
    Unreadable { addr: u64, len: u64, why: String },
    /// The user named something that does not exist or is not a map.
    #[error("{0}")]
    Expr(String),
    /// The binary's runtime structures have a shape we do not understand.
    #[error("unsupported layout: {0}")]
    Layout(String),
    /// The map's own structure is impossible (and cannot be decoded safely at all).
    #[error("corrupt map: {0}")]
    Corrupt(String),
    /// Bad command-line usage.
    #[error("{0}")]
    Usage(String),
    /// The user interrupted a long command.
    #[error("interrupted")]
    Interrupted,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn unreadable(addr: u64, len: usize, why: impl fmt::Display) -> Self {
        Error::Unreadable { addr, len: len as u64, why: why.to_string() }
    }
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io { path: path.display().to_string(), source }
    }
}
