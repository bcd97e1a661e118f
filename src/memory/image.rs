//! An in-memory image: a few byte ranges at chosen addresses. It is the memory source of the
//! decoders' unit tests and of the fuzz targets (whose bytes come from the fuzzer), and it behaves
//! like a core: reads inside one range succeed, anything else is unreadable.

use super::Memory;
use crate::error::{Error, Result};

#[derive(Default, Clone, Debug)]
pub struct ImageMemory {
    segments: Vec<(u64, Vec<u8>)>,
}

impl ImageMemory {
    pub fn new() -> ImageMemory {
        ImageMemory::default()
    }

    /// Maps `bytes` at `addr`. Later segments win where ranges overlap.
    pub fn map(&mut self, addr: u64, bytes: Vec<u8>) -> &mut Self {
        self.segments.push((addr, bytes));
        self
    }

    fn find(&self, addr: u64, len: usize) -> Option<&[u8]> {
        self.segments.iter().rev().find_map(|(base, bytes)| {
            let off = addr.checked_sub(*base)? as usize;
            bytes.get(off..off.checked_add(len)?)
        })
    }
}

impl Memory for ImageMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        match self.find(addr, buf.len()) {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(Error::unreadable(addr, buf.len(), "not in the image")),
        }
    }
    fn view(&self, addr: u64, len: usize) -> Option<&[u8]> {
        self.find(addr, len)
    }
    fn describe(&self) -> String {
        format!("memory image ({} segments)", self.segments.len())
    }
}
