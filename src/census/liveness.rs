//! Which stack words of a frame the garbage collector treats as live pointers at the frame's PC: the
//! runtime's own stack maps (`FUNCDATA_LocalsPointerMaps`, `FUNCDATA_ArgsPointerMaps`, indexed by
//! `PCDATA_StackMapIndex`) and stack objects (`FUNCDATA_StackObjects`), read from the module's
//! pclntab through `runtime.firstmoduledata`. A frame variable that DWARF still places on the stack
//! after its last use has its words cleared there, and no longer claims a map.
//!
//! Every structure is found by its DWARF name and field names; what cannot be read makes the frame
//! "unknown", and its variables are then judged by their DWARF location ranges alone.

use crate::memory::MemoryExt;
use crate::target::Target;

/// Caps on what one look-up reads.
const MAX_FUNCS: u64 = 4 << 20;
const MAX_PCVALUE_STEPS: usize = 1 << 20;
const MAX_BITS: u64 = 1 << 20;
const MAX_STACK_OBJECTS: u64 = 4096;

/// The module's function table and where the `_func` fields are.
pub struct Pclntab {
    pctab: u64,
    pclntable: u64,
    /// functab entries: (entry offset from `text`, offset of `_func` in `pclntable`).
    ftab: Vec<(u32, u32)>,
    text: u64,
    gofunc: u64,
    f_entry: u64,
    f_npcdata: u64,
    f_nfuncdata: u64,
    /// The table numbers, from the constants the compiler records in DWARF.
    pcdata_stack_map: u64,
    funcdata_args: u64,
    funcdata_locals: u64,
    funcdata_objects: Option<u64>,
    /// Size of a stack object record and where its `off`/`size` fields are.
    sobj: Option<(u64, u64, u64)>,
    quantum: u64,
}

/// The pointer words the collector scans in one frame.
pub struct FrameLiveness {
    /// (first word's address, number of words, one bit per word) for locals and arguments.
    locals: (u64, u64, Vec<u8>),
    args: (u64, u64, Vec<u8>),
    /// Stack objects: (address, size), live whenever a live pointer reaches them (taken as live).
    objects: Vec<(u64, u64)>,
}

impl FrameLiveness {
    /// Whether a variable stored in [addr, addr+size) holds a live pointer. None when none of its
    /// words is described by the maps (the caller then trusts DWARF).
    pub fn is_live(&self, addr: u64, size: u64) -> Option<bool> {
        if self.objects.iter().any(|&(a, s)| addr < a.saturating_add(s) && a < addr.saturating_add(size)) {
            return Some(true);
        }
        let mut described = false;
        let mut w = addr & !7;
        while w < addr.saturating_add(size.max(1)) {
            for (lo, n, bits) in [&self.locals, &self.args] {
                let (lo, n) = (*lo, *n);
                if w >= lo && w - lo < n * 8 {
                    described = true;
                    let i = (w - lo) / 8;
                    if bits.get((i / 8) as usize).is_some_and(|b| b & (1 << (i % 8)) != 0) {
                        return Some(true);
                    }
                }
            }
            match w.checked_add(8) {
                Some(n) => w = n,
                None => break,
            }
        }
        described.then_some(false)
    }
}

impl Pclntab {
    pub fn load(t: &Target) -> Option<Pclntab> {
        let d = &t.bin.dwarf;
        let (md, mty) = t.global_addr("runtime.firstmoduledata")?;
        let fo = |name: &str| d.field(mty, name).map(|f| f.offset);
        let word = |name: &str| fo(name).and_then(|o| t.mem.u64_at(md + o).ok());
        let (pctab, pclntable, ftab, nftab) = (word("pctab")?, word("pclntable")?, word("ftab")?, t.mem.u64_at(md + fo("ftab")? + 8).ok()?);
        let (text, gofunc) = (word("text")?, word("gofunc")?);
        let func = d.named("runtime._func")?;
        let f = |names: &[&str]| names.iter().find_map(|n| d.field(func, n)).map(|x| x.offset);
        let (f_entry, f_npcdata, f_nfuncdata) = (f(&["entryOff", "entryoff"])?, f(&["npcdata"])?, f(&["nfuncdata"])?);
        if nftab == 0 || nftab > MAX_FUNCS {
            return None;
        }
        let raw = t.mem.bytes(ftab, (nftab * 8) as usize).ok()?;
        let ftab = raw.chunks_exact(8).map(|c| (u32::from_le_bytes([c[0], c[1], c[2], c[3]]), u32::from_le_bytes([c[4], c[5], c[6], c[7]]))).collect();
        let sobj = d.named("runtime.stackObjectRecord").and_then(|r| Some((d.size_of(r)?, d.field(r, "off")?.offset, d.field(r, "size")?.offset)));
        let c = |n: &str| d.constant(&[&format!("internal/abi.{n}"), &format!("runtime._{n}")]).and_then(|v| u64::try_from(v).ok());
        let (pcdata_stack_map, funcdata_args, funcdata_locals) = (c("PCDATA_StackMapIndex")?, c("FUNCDATA_ArgsPointerMaps")?, c("FUNCDATA_LocalsPointerMaps")?);
        let funcdata_objects = c("FUNCDATA_StackObjects");
        // The PC quantum is 1 on amd64, the only architecture whose frame layout `frame` knows.
        let quantum = 1;
        Some(Pclntab { pctab, pclntable, ftab, text, gofunc, f_entry, f_npcdata, f_nfuncdata, pcdata_stack_map, funcdata_args, funcdata_locals, funcdata_objects, sobj, quantum })
    }

    /// The `_func` containing `pc` (runtime address) and its entry PC.
    fn func(&self, t: &Target, pc: u64) -> Option<(u64, u64)> {
        let off = u32::try_from(pc.checked_sub(self.text)?).ok()?;
        let i = self.ftab.partition_point(|e| e.0 <= off).checked_sub(1)?;
        // The last entry is the end sentinel.
        if i + 1 >= self.ftab.len() {
            return None;
        }
        let f = self.pclntable.checked_add(self.ftab[i].1 as u64)?;
        let entry = self.text.checked_add(t.mem.uint_at(f.checked_add(self.f_entry)?, 4).ok()?)?;
        Some((f, entry))
    }

    fn pcdata_value(&self, t: &Target, f: u64, entry: u64, table: u64, target: u64) -> Option<i32> {
        let npcdata = t.mem.uint_at(f.checked_add(self.f_npcdata)?, 4).ok()?;
        if table >= npcdata {
            return None;
        }
        let off = t.mem.uint_at(f.checked_add(self.f_nfuncdata + 1 + table * 4)?, 4).ok()?;
        if off == 0 {
            return None;
        }
        let mut p = self.pctab.checked_add(off)?;
        let (mut pc, mut val) = (entry, -1i32);
        let mut buf = Vec::new();
        for step in 0..MAX_PCVALUE_STEPS {
            if buf.len() < 10 {
                buf = t.mem.bytes(p, 256).or_else(|_| t.mem.bytes(p, 20)).ok()?.into_owned();
                buf.reverse();
            }
            let uv = varint(&mut buf, &mut p)?;
            if uv == 0 && step > 0 {
                return None;
            }
            val = val.wrapping_add((-((uv & 1) as i32)) ^ ((uv >> 1) as i32));
            pc = pc.wrapping_add(varint(&mut buf, &mut p)? as u64 * self.quantum);
            if target < pc {
                return Some(val);
            }
        }
        None
    }

    fn funcdata(&self, t: &Target, f: u64, i: u64) -> Option<u64> {
        let nfuncdata = t.mem.u8_at(f.checked_add(self.f_nfuncdata)?).ok()? as u64;
        if i >= nfuncdata {
            return None;
        }
        let npcdata = t.mem.uint_at(f.checked_add(self.f_npcdata)?, 4).ok()?;
        let off = t.mem.uint_at(f.checked_add(self.f_nfuncdata + 1 + npcdata * 4 + i * 4)?, 4).ok()?;
        if off == 0xffff_ffff {
            return None;
        }
        self.gofunc.checked_add(off)
    }

    /// Bit vector `index` of the stack map at `m`: (words, bits).
    fn bitmap(&self, t: &Target, m: u64, index: i32) -> Option<(u64, Vec<u8>)> {
        let n = t.mem.uint_at(m, 4).ok()? as u32 as i32;
        let nbit = t.mem.uint_at(m.checked_add(4)?, 4).ok()? as u32 as u64;
        if nbit == 0 {
            return Some((0, Vec::new()));
        }
        if index < 0 || index >= n || nbit > MAX_BITS {
            return None;
        }
        let per = nbit.div_ceil(8);
        let b = t.mem.bytes(m.checked_add(8 + index as u64 * per)?, per as usize).ok()?;
        Some((nbit, b.into_owned()))
    }

    /// The live pointer words of the frame at `pc` (a saved or return PC, runtime address) whose
    /// stack pointer is `sp` and CFA `cfa` (amd64: the return address is at CFA-8, the saved frame
    /// pointer below it).
    pub fn frame(&self, t: &Target, pc: u64, sp: u64, cfa: u64) -> Option<FrameLiveness> {
        let (f, entry) = self.func(t, pc)?;
        let mut index = -1;
        if pc != entry {
            index = self.pcdata_value(t, f, entry, self.pcdata_stack_map, pc.checked_sub(1)?)?;
        }
        let index = index.max(0);
        let mut varp = cfa.wrapping_sub(8);
        if varp > sp {
            varp -= 8; // the saved frame pointer
        }
        let mut locals = (0, Vec::new());
        if varp > sp {
            let m = self.funcdata(t, f, self.funcdata_locals)?;
            locals = self.bitmap(t, m, index)?;
        }
        let args = match self.funcdata(t, f, self.funcdata_args) {
            Some(m) => self.bitmap(t, m, index).unwrap_or((0, Vec::new())),
            None => (0, Vec::new()),
        };
        let mut objects = Vec::new();
        let objs = self.funcdata_objects.and_then(|i| self.funcdata(t, f, i));
        if let (Some(p), Some((rsize, off_f, size_f))) = (objs, self.sobj) {
            let n = t.mem.u64_at(p).unwrap_or(0).min(MAX_STACK_OBJECTS);
            for i in 0..n {
                let Some(r) = p.checked_add(8).and_then(|r| r.checked_add(i.checked_mul(rsize)?)) else { break };
                let (Ok(off), Ok(size)) = (t.mem.uint_at(r.wrapping_add(off_f), 4), t.mem.uint_at(r.wrapping_add(size_f), 4)) else { break };
                let off = off as u32 as i32 as i64;
                let base = if off < 0 { varp } else { cfa };
                objects.push((base.wrapping_add(off as u64), size));
            }
        }
        Some(FrameLiveness { locals: (varp.wrapping_sub(locals.0 * 8), locals.0, locals.1), args: (cfa, args.0, args.1), objects })
    }
}

/// An unsigned LEB128 varint from `buf` (bytes reversed, so the next byte is last), advancing `p`.
fn varint(buf: &mut Vec<u8>, p: &mut u64) -> Option<u32> {
    let mut v = 0u32;
    for shift in (0..35).step_by(7) {
        let b = buf.pop()?;
        *p = p.wrapping_add(1);
        v |= ((b & 0x7f) as u32) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_truncation() {
        let mut p = 0;
        let mut b: Vec<u8> = vec![0x96, 0x01, 0x05];
        b.reverse();
        assert_eq!(varint(&mut b, &mut p), Some(150));
        assert_eq!(varint(&mut b, &mut p), Some(5));
        assert_eq!(p, 3);
        assert_eq!(varint(&mut b, &mut p), None); // out of bytes: no panic
        let mut endless = vec![0xffu8; 8];
        assert_eq!(varint(&mut endless, &mut p), None); // longer than 5 bytes
    }

    #[test]
    fn a_variable_is_live_by_its_words_bits() {
        // Locals: 4 words from 0x1000, word 1 live. Args: 2 words from 0x2000, word 0 live.
        // A stack object at 0x1010..0x1018.
        let l = FrameLiveness { locals: (0x1000, 4, vec![0b0010]), args: (0x2000, 2, vec![0b01]), objects: vec![(0x1010, 8)] };
        assert_eq!(l.is_live(0x1000, 8), Some(false));
        assert_eq!(l.is_live(0x1008, 8), Some(true));
        assert_eq!(l.is_live(0x1000, 16), Some(true)); // a two-word value with one live word
        assert_eq!(l.is_live(0x1010, 8), Some(true)); // stack object
        assert_eq!(l.is_live(0x1018, 8), Some(false));
        assert_eq!(l.is_live(0x2000, 8), Some(true));
        assert_eq!(l.is_live(0x2008, 8), Some(false));
        assert_eq!(l.is_live(0x3000, 8), None); // not described: DWARF decides
        assert_eq!(l.is_live(u64::MAX - 4, 8), None); // no overflow
    }
}
