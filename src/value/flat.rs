//! `show --json` of a map whose key and value are flat (scalars, strings, pointers and structs of
//! those, the shape of most big maps: sessions, caches, indexes) rendered from a list of operations
//! compiled once per map, with the JSON text between the values (`{"key":`, `,"Name":`...) written
//! ahead as literals. [`Renderer::plan`] per entry dispatches on the plan, escapes every field name
//! and checks every string for UTF-8 and escapes; here an entry is a run over a short list, and a
//! string of plain ASCII is copied as it is.
//!
//! The output is byte-for-byte what [`Renderer::value_with`] prints: an entry takes this path only
//! when every string it prints is whole (under `--max-string` and the allowance of all the strings
//! of its key or value, exactly the cut rule of `Renderer::string`) and was gathered (`Renderer::gather`); any other entry is rendered again by
//! the general path, from its start.

use super::{float, hex, json_str, push_i64, push_u64, string_allowance, string_bytes, Plan, Renderer, Style, IMPOSSIBLE_STRING};
use crate::memory::le_uint;

/// How deep a flat key or value may nest structs (deeper: the general path).
const MAX_FLAT_DEPTH: u32 = 8;
/// The most operations one key or value may compile to (more: the general path).
const MAX_OPS: usize = 256;

#[derive(Clone, Copy, Debug)]
enum Op {
    /// `lits[from..to]`.
    Lit(u32, u32),
    Bool(usize),
    Int(usize, usize),
    Uint(usize, usize),
    F32(usize),
    F64(usize),
    /// Offsets of the data pointer and the length.
    Str(usize, usize),
    Addr(usize),
}

/// One key or value: its operations, and whether it is a struct (whose strings share one allowance,
/// as in the general rendering: `string_allowance`).
#[derive(Debug, Default)]
struct Part {
    ops: Vec<Op>,
    composite: bool,
}

/// The compiled rendering of a map's entries (see the module's comment).
#[derive(Debug, Default)]
pub struct Flat {
    key: Part,
    elem: Part,
    lits: Vec<u8>,
}

/// Bytes that a JSON string holds as they are and that are whole UTF-8 characters: printable ASCII
/// but for `"` and `\`.
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0x20;
    while i < 0x80 {
        t[i] = i != b'"' as usize && i != b'\\' as usize;
        i += 1;
    }
    t
};

/// Whether the first `n` (at most 16) bytes of `w` are all plain: one fixed-size pass the
/// compiler turns into a few vector compares.
#[inline]
fn plain16(w: &[u8; 16], n: usize) -> bool {
    let mut bad = 0u32;
    for (i, &c) in w.iter().enumerate() {
        let plain = c.wrapping_sub(0x20) < 0x60 && c != b'"' && c != b'\\';
        bad |= u32::from(!plain) << i;
    }
    bad & ((1u32 << n) - 1) == 0
}

/// `v[from..to]` appended: up to 16 bytes as one fixed-size copy (a variable-length
/// `extend_from_slice` is a `memcpy` call per literal), cut to length.
#[inline]
fn push_short(out: &mut Vec<u8>, v: &[u8], from: usize, to: usize) {
    let n = to.saturating_sub(from);
    if n <= 16 {
        if let Some(w) = v.get(from..from + 16).and_then(|w| <&[u8; 16]>::try_from(w).ok()) {
            let at = out.len();
            out.extend_from_slice(w);
            out.truncate(at + n);
            return;
        }
    }
    out.extend_from_slice(v.get(from..to).unwrap_or(&[]));
}

impl Flat {
    /// The flat rendering of entries of `key` and `elem` in JSON, or None when either is not flat.
    pub fn new(key: &Plan, elem: &Plan) -> Option<Flat> {
        let mut f = Flat::default();
        f.key = f.part(key)?;
        f.elem = f.part(elem)?;
        // Every literal can be read as 16 bytes (`push_short`).
        f.lits.extend_from_slice(&[0; 16]);
        Some(f)
    }

    fn part(&mut self, p: &Plan) -> Option<Part> {
        let mut part = Part { ops: Vec::new(), composite: !p.is_leaf() };
        self.compile(p, 0, &mut part.ops, 0)?;
        (part.ops.len() <= MAX_OPS).then_some(part)
    }

    fn lit(&mut self, ops: &mut Vec<Op>, bytes: &[u8]) {
        let from = self.lits.len() as u32;
        self.lits.extend_from_slice(bytes);
        let to = self.lits.len() as u32;
        // Adjacent literals become one.
        match ops.last_mut() {
            Some(Op::Lit(_, end)) if *end == from => *end = to,
            _ => ops.push(Op::Lit(from, to)),
        }
    }

    fn compile(&mut self, p: &Plan, base: usize, ops: &mut Vec<Op>, depth: u32) -> Option<()> {
        if ops.len() > MAX_OPS {
            return None;
        }
        match p {
            Plan::Bool => ops.push(Op::Bool(base)),
            Plan::Int(n) => ops.push(Op::Int(base, *n)),
            Plan::Uint(n) => ops.push(Op::Uint(base, *n)),
            Plan::F32 => ops.push(Op::F32(base)),
            Plan::F64 => ops.push(Op::F64(base)),
            Plan::Str { ptr, len } => ops.push(Op::Str(base.checked_add(*ptr)?, base.checked_add(*len)?)),
            Plan::Addr => ops.push(Op::Addr(base)),
            Plan::Struct(fields) if depth < MAX_FLAT_DEPTH => {
                self.lit(ops, b"{");
                for (i, (name, off, fp)) in fields.iter().enumerate() {
                    let mut l = Vec::with_capacity(name.len() + 4);
                    if i > 0 {
                        l.push(b',');
                    }
                    json_str(&mut l, name);
                    l.push(b':');
                    self.lit(ops, &l);
                    self.compile(fp, base.checked_add(*off)?, ops, depth + 1)?;
                }
                self.lit(ops, b"}");
            }
            _ => return None,
        }
        Some(())
    }
}

impl Renderer<'_> {
    /// The flat rendering of this renderer's entries of `key` and `elem`, when it has one (JSON only).
    pub fn flat(&self, key: &Plan, elem: &Plan) -> Option<Flat> {
        if self.style != Style::Json {
            return None;
        }
        Flat::new(key, elem)
    }

    /// Entry `i` of the gathered batch as `json_entry` prints it, key bytes `k` and element bytes
    /// `e`: true when done, false (and `out` as it was) when the entry needs the general path.
    pub fn flat_entry(&self, f: &Flat, out: &mut Vec<u8>, k: &[u8], e: &[u8], i: usize, comma: bool) -> bool {
        let g = self.gathered.borrow();
        let (cur, end) = match (g.starts.get(i), g.starts.get(i + 1)) {
            (Some(&a), Some(&b)) => (a as usize, b as usize),
            _ => return false,
        };
        self.flat_any(f, out, k, e, Some(&g), cur, end, comma)
    }

    /// [`Renderer::flat_entry`] for an entry that was not gathered: its strings are read from memory.
    pub fn flat_entry_direct(&self, f: &Flat, out: &mut Vec<u8>, k: &[u8], e: &[u8], comma: bool) -> bool {
        self.flat_any(f, out, k, e, None, 0, 0, comma)
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn flat_any(&self, f: &Flat, out: &mut Vec<u8>, k: &[u8], e: &[u8], g: Option<&super::Gathered>, mut cur: usize, end: usize, comma: bool) -> bool {
        let mark = out.len();
        if comma {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"key\":");
        let mut ok = self.flat_part(f, &f.key, out, k, g, &mut cur, end);
        if ok {
            out.extend_from_slice(b",\"value\":");
            ok = self.flat_part(f, &f.elem, out, e, g, &mut cur, end);
        }
        if !ok {
            out.truncate(mark);
            return false;
        }
        out.push(b'}');
        true
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn flat_part(&self, f: &Flat, part: &Part, out: &mut Vec<u8>, b: &[u8], g: Option<&super::Gathered>, cur: &mut usize, end: usize) -> bool {
        // A struct's strings share one allowance (`string_allowance`): a string the
        // general path would cut sends the entry there.
        let mut shown: u64 = 0;
        for op in &part.ops {
            match *op {
                Op::Lit(from, to) => push_short(out, &f.lits, from as usize, to as usize),
                Op::Bool(o) => out.extend_from_slice(if b.get(o).copied().unwrap_or(0) != 0 { b"true" } else { b"false" }),
                Op::Int(o, n) => {
                    let v = le_uint(b, o, n);
                    let shift = 64 - 8 * n.clamp(1, 8) as u32;
                    push_i64(out, ((v << shift) as i64) >> shift);
                }
                Op::Uint(o, n) => push_u64(out, le_uint(b, o, n)),
                Op::F32(o) => float(out, f32::from_bits(le_uint(b, o, 4) as u32) as f64, true, true),
                Op::F64(o) => float(out, f64::from_bits(le_uint(b, o, 8)), false, true),
                Op::Addr(o) => hex(out, le_uint(b, o, 8), true),
                Op::Str(po, lo) => {
                    let (p, n) = (le_uint(b, po, 8), le_uint(b, lo, 8));
                    if n == 0 {
                        out.extend_from_slice(b"\"\"");
                        continue;
                    }
                    if n >= IMPOSSIBLE_STRING {
                        return false;
                    }
                    if n > string_allowance(self.max_string, if part.composite { shown } else { 0 }) {
                        return false;
                    }
                    shown = shown.saturating_add(n);
                    let (bytes, window) = match g {
                        Some(g) => {
                            let Some(r) = g.recs.get(*cur).filter(|r| *cur < end && r.p == p && u64::from(r.n) == n) else { return false };
                            let Some(bytes) = g.arena.get(r.off as usize..r.off as usize + r.n as usize) else { return false };
                            *cur += 1;
                            let off = r.off as usize;
                            (bytes, g.arena.get(off..off + 16).and_then(|w| <&[u8; 16]>::try_from(w).ok()))
                        }
                        // Not gathered: the bytes where they are (else the general path reads them).
                        None => match self.t.mem.view(p, n as usize) {
                            Some(v) => (v, None),
                            None => return false,
                        },
                    };
                    match window {
                        // Most keys and names: 16 bytes at once, checked and copied whole.
                        Some(w) if bytes.len() <= 16 && plain16(w, bytes.len()) => {
                            out.push(b'"');
                            let at = out.len();
                            out.extend_from_slice(w);
                            out.truncate(at + bytes.len());
                            out.push(b'"');
                        }
                        _ if bytes.iter().fold(true, |a, &c| a & PLAIN[c as usize]) => {
                            out.reserve(bytes.len() + 2);
                            out.push(b'"');
                            out.extend_from_slice(bytes);
                            out.push(b'"');
                        }
                        _ => string_bytes(out, bytes, true),
                    }
                }
            }
        }
        true
    }
}
