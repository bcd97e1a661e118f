//! Roots of the census: package-level variables, and every goroutine (`runtime.allgs`) with the
//! frames of its stack, unwound from its saved `sched.sp`/`sched.pc` with the executable's call frame
//! information, and the locals and arguments each frame holds at its PC.
//!
//! Liveness: a frame variable counts only where its DWARF location list covers the frame's PC, and
//! where the runtime's stack maps at that PC (`liveness.rs`) say one of its words is a live pointer:
//! DWARF often still describes a stack slot after the variable's last use. A frame whose stack maps
//! cannot be read keeps DWARF's answer.

use crate::binary::frames::{Frames, Loc};
use crate::binary::unwind::Unwinder;
use super::liveness::Pclntab;
use crate::binary::TypeId;
use crate::error::{Error, Result};
use crate::memory::MemoryExt;
use crate::target::Target;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What holds a root: a package-level variable, or a frame's variable in a goroutine.
#[derive(Clone, Debug, PartialEq)]
pub enum RootKind {
    Global,
    Goroutine { goid: u64, function: String },
    /// A finalizer or cleanup special (`specials.rs`): the function it runs; root.kind "other".
    Special { function: String },
    /// No root the walk follows: a map the heap proves but the typed walk did not reach.
    Other,
}

/// A named place the walk starts from: `ty` stored at `addr`.
#[derive(Clone, Debug)]
pub struct Root {
    pub kind: RootKind,
    pub variable: String,
    pub addr: u64,
    pub ty: TypeId,
}

impl Root {
    /// The root as the first part of a path: `main.cache`, or `main.worker:sessions` for a frame's
    /// variable (function, colon, variable).
    pub fn display(&self) -> String {
        match &self.kind {
            RootKind::Global | RootKind::Special { .. } => self.variable.clone(),
            RootKind::Goroutine { function, .. } => format!("{function}:{}", self.variable),
            RootKind::Other => self.variable.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Frame {
    pub function: String,
    pub pc: u64,
    pub cfa: u64,
}

#[derive(Clone, Debug)]
pub struct Goroutine {
    pub goid: u64,
    pub status: String,
    pub wait_reason: String,
    pub frames: Vec<Frame>,
    /// Why the stack walk stopped early or did not start, if it did.
    pub note: Option<String>,
    /// Frame variables DWARF places on the stack that the runtime's stack maps say are dead.
    pub dead_vars: u64,
    /// Frames whose stack maps could not be read (their variables are judged by DWARF alone).
    pub unknown_liveness: u64,
}

/// Caps: a corrupt allgs or stack cannot make the walk unbounded.
const MAX_GOROUTINES: u64 = 1 << 20;
const MAX_FRAMES: usize = 4096;

/// Package-level variables, in name order. The runtime's own are left out (they hold the allocator
/// and scheduler, and goroutines are reached through `allgs` instead), except those that hold a map
/// in themselves, such as `runtime.reflectOffs.m`: those maps are the program's too.
pub fn globals(t: &Target) -> Vec<Root> {
    let d = &t.bin.dwarf;
    d.globals
        .values()
        .filter(|g| !(g.name.starts_with("runtime.") || g.name.starts_with("internal/runtime")) || holds_map(d, g.ty, 0))
        .map(|g| Root { kind: RootKind::Global, variable: g.name.clone(), addr: g.addr.wrapping_add(t.bias), ty: g.ty })
        .collect()
}

/// Whether a value of type `ty` is a map or has one among its struct fields (not behind a pointer).
fn holds_map(d: &crate::binary::DwarfInfo, ty: TypeId, depth: u32) -> bool {
    use crate::binary::Die;
    let (k, kid) = crate::value::go_kind(d, ty);
    if k == crate::value::kind::MAP {
        return true;
    }
    if depth > 4 || !(k == crate::value::kind::STRUCT || k == 0) {
        return false;
    }
    match d.get(d.strip_typedefs(kid)).map(|x| &x.die) {
        Some(Die::Struct { fields }) => fields.iter().take(256).any(|f| holds_map(d, f.ty, depth + 1)),
        _ => false,
    }
}

/// The executable's function index and call frame information, loaded once per executable.
pub struct Stacks {
    pub frames: Frames,
    pub unwind: Unwinder,
}

static STACKS: Mutex<Option<(PathBuf, Arc<Stacks>)>> = Mutex::new(None);

pub fn stacks(t: &Target) -> Result<Arc<Stacks>> {
    let path = t.bin.path.clone();
    if let Some((p, s)) = STACKS.lock().ok().and_then(|g| g.clone()) {
        if p == path {
            return Ok(s);
        }
    }
    let data = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let obj = object::File::parse(&data[..]).map_err(|e| Error::Binary(format!("{}: {e}", path.display())))?;
    let s = Arc::new(Stacks { frames: Frames::from_object(&obj)?, unwind: Unwinder::load(&obj)? });
    if let Ok(mut g) = STACKS.lock() {
        *g = Some((path, s.clone()));
    }
    Ok(s)
}

/// Field offsets of runtime.g, runtime.gobuf and runtime.stack, from DWARF.
struct GLayout {
    goid: u64,
    status: u64,
    waitreason: u64,
    sched_sp: u64,
    sched_pc: u64,
    syscallsp: Option<u64>,
    syscallpc: Option<u64>,
    stack_lo: u64,
    stack_hi: u64,
    /// `g.m` and `m.procid` (the thread's LWP id), to find a running goroutine's thread.
    m: Option<u64>,
    procid: Option<u64>,
}

fn g_layout(t: &Target) -> Result<GLayout> {
    let d = &t.bin.dwarf;
    let g = d.named("runtime.g").ok_or_else(|| Error::Binary("no runtime.g in DWARF".into()))?;
    let f = |name: &str| d.field(g, name).ok_or_else(|| Error::Binary(format!("runtime.g has no field {name}")));
    let sched = f("sched")?;
    let stack = f("stack")?;
    let sub = |parent: &crate::binary::Field, name: &str| {
        d.field(parent.ty, name).map(|x| parent.offset + x.offset).ok_or_else(|| Error::Binary(format!("runtime.g.{} has no field {name}", parent.name)))
    };
    Ok(GLayout {
        goid: f("goid")?.offset,
        status: f("atomicstatus")?.offset,
        waitreason: f("waitreason")?.offset,
        sched_sp: sub(sched, "sp")?,
        sched_pc: sub(sched, "pc")?,
        syscallsp: d.field(g, "syscallsp").map(|x| x.offset),
        syscallpc: d.field(g, "syscallpc").map(|x| x.offset),
        stack_lo: sub(stack, "lo")?,
        stack_hi: sub(stack, "hi")?,
        m: d.field(g, "m").map(|x| x.offset),
        procid: d.named("runtime.m").and_then(|m| d.field(m, "procid")).map(|x| x.offset),
    })
}

fn status_name(s: u32) -> &'static str {
    match s & !0x1000 {
        0 => "idle",
        1 => "runnable",
        2 => "running",
        3 => "syscall",
        4 => "waiting",
        6 => "dead",
        8 => "copystack",
        9 => "preempted",
        _ => "unknown",
    }
}

/// The runtime's text for a wait reason (`runtime.waitReasonStrings`), or its number.
fn wait_reason(t: &Target, r: u8) -> String {
    if r == 0 {
        return String::new();
    }
    let read = || -> Option<String> {
        let (addr, ty) = t.global_addr("runtime.waitReasonStrings")?;
        let n = t.bin.dwarf.size_of(ty)? / 16;
        if r as u64 >= n {
            return None;
        }
        let s = addr + r as u64 * 16;
        let (p, len) = (t.mem.u64_at(s).ok()?, t.mem.u64_at(s + 8).ok()?);
        let b = t.mem.bytes(p, len.min(128) as usize).ok()?;
        Some(String::from_utf8_lossy(&b).into_owned())
    };
    read().unwrap_or_else(|| format!("reason {r}"))
}

/// Every goroutine in `runtime.allgs` (dead ones left out) with its frames, and the roots its
/// frames hold: every local and argument whose location covers the frame's PC and is on the stack.
pub fn goroutines(t: &Target, roots: &mut Vec<Root>) -> Result<Vec<Goroutine>> {
    let (allgs, _) = t.global_addr("runtime.allgs").ok_or_else(|| Error::Binary("no runtime.allgs in DWARF".into()))?;
    let lay = g_layout(t)?;
    let st = stacks(t)?;
    let pcln = super::liveness::Pclntab::load(t);
    let arr = t.mem.u64_at(allgs)?;
    let n = t.mem.u64_at(allgs + 8)?.min(MAX_GOROUTINES);
    let mut out = Vec::new();
    for i in 0..n {
        if crate::decode::interrupted() {
            return Err(Error::Interrupted);
        }
        let Ok(g) = t.mem.u64_at(arr.wrapping_add(i * 8)) else { continue };
        if g == 0 {
            continue;
        }
        let Ok(status) = t.mem.uint_at(g.wrapping_add(lay.status), 4) else { continue };
        let status = status as u32;
        if status & !0x1000 == 6 || status & !0x1000 == 0 {
            continue;
        }
        let goid = t.mem.u64_at(g.wrapping_add(lay.goid)).unwrap_or(0);
        let reason = t.mem.u8_at(g.wrapping_add(lay.waitreason)).unwrap_or(0);
        // g.waitreason is only meaningful while waiting (Go 1.19 leaves the last one behind).
        let reason = if status & !0x1000 == 4 { wait_reason(t, reason) } else { String::new() };
        let mut gr = Goroutine { goid, status: status_name(status).into(), wait_reason: reason, frames: Vec::new(), note: None, dead_vars: 0, unknown_liveness: 0 };
        let word = |off: Option<u64>| off.and_then(|o| t.mem.u64_at(g.wrapping_add(o)).ok()).unwrap_or(0);
        let (mut sp, mut pc) = (word(Some(lay.sched_sp)), word(Some(lay.sched_pc)));
        if status & !0x1000 == 3 && word(lay.syscallsp) != 0 {
            (sp, pc) = (word(lay.syscallsp), word(lay.syscallpc));
        }
        let (lo, hi) = (word(Some(lay.stack_lo)), word(Some(lay.stack_hi)));
        if status & !0x1000 == 2 {
            match running_regs(t, &st, &lay, g, (lo, hi)) {
                Ok(Some((pc, sp))) => walk_stack(t, &st, pcln.as_ref(), &mut gr, pc, sp, (lo, hi), true, roots),
                // On its thread's system stack (systemstack, or a signal that did not interrupt
                // this goroutine): its own frames start where it saved them when it switched.
                Ok(None) if sp != 0 && pc != 0 && lo <= sp && sp < hi => walk_stack(t, &st, pcln.as_ref(), &mut gr, pc, sp, (lo, hi), false, roots),
                Ok(None) => gr.note = Some("its thread is on another stack and its saved registers are stale, so its stack is not walked".into()),
                Err(why) => gr.note = Some(why),
            }
        } else if sp == 0 || pc == 0 {
            gr.note = Some("no saved stack pointer".into());
        } else {
            walk_stack(t, &st, pcln.as_ref(), &mut gr, pc, sp, (lo, hi), false, roots);
        }
        out.push(gr);
    }
    Ok(out)
}

/// Signal handler entry points: their CFA is the kernel's `ucontext_t` of the interrupted code (the
/// x86-64 `rt_sigframe` is the restorer's address, then the ucontext; the handler is entered with
/// the stack pointer at the restorer's address).
fn is_sigtramp(function: &str) -> bool {
    matches!(function, "runtime.sigtramp" | "runtime.cgoSigtramp")
}

/// x86-64 `ucontext_t` (the kernel's ABI): uc_flags, uc_link, uc_stack (24 bytes), then
/// `uc_mcontext`, a `struct sigcontext`: r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip.
const UC_MCONTEXT: u64 = 40;
const SC_RSP: u64 = 15 * 8;
const SC_RIP: u64 = 16 * 8;
/// Frames unwound on a thread's signal or system stack looking for the signal frame.
const MAX_SIGNAL_FRAMES: usize = 64;

/// Where a running goroutine's own code is (pc, sp), from its thread's registers: the thread is
/// the one whose id is `g.m.procid`. When the thread is on another stack (stopped inside the
/// runtime's signal handler, as every thread of a GOTRACEBACK=crash core is), the frames there are
/// unwound up to the signal trampoline, whose signal frame holds the interrupted registers.
/// Ok(None): the thread is not in this goroutine's code (it is on its system stack).
fn running_regs(t: &Target, st: &Stacks, lay: &GLayout, g: u64, (lo, hi): (u64, u64)) -> std::result::Result<Option<(u64, u64)>, String> {
    let threads = t.threads();
    if threads.is_empty() {
        return Err(if t.mem.is_live() {
            "a live process's thread registers cannot be read without stopping it, so its stack is not walked (a core has them)".into()
        } else {
            "the target has no thread registers, so its stack is not walked".into()
        });
    }
    let (Some(m_off), Some(procid_off)) = (lay.m, lay.procid) else { return Err("no g.m or m.procid in DWARF".into()) };
    let m = t.mem.u64_at(g.wrapping_add(m_off)).map_err(|e| e.to_string())?;
    if m == 0 {
        return Err("it has no m".into());
    }
    let lwp = t.mem.u64_at(m.wrapping_add(procid_off)).map_err(|e| e.to_string())?;
    let th = threads.iter().find(|th| th.lwp == lwp).ok_or_else(|| format!("the target has no registers of its thread {lwp}"))?;
    let on_stack = |sp: u64| lo <= sp && sp < hi;
    if on_stack(th.sp) {
        return Ok(Some((th.pc, th.sp)));
    }
    // `exact`: pc is where the code stopped (registers), not a return address.
    let (mut pc, mut sp, mut exact) = (th.pc, th.sp, true);
    for _ in 0..MAX_SIGNAL_FRAMES {
        let lpc = pc.wrapping_sub(t.bias);
        let Some((function, entry)) = st.frames.function(lpc) else { break };
        let at = if exact || lpc == entry { lpc } else { lpc.wrapping_sub(1) };
        let Some(step) = st.unwind.step(at, sp) else { break };
        if is_sigtramp(&function) {
            let uc = step.cfa.wrapping_add(UC_MCONTEXT);
            let reg = |off: u64| t.mem.u64_at(uc.wrapping_add(off)).map_err(|e| e.to_string());
            let (ipc, isp) = (reg(SC_RIP)?, reg(SC_RSP)?);
            if on_stack(isp) {
                return Ok(Some((ipc, isp)));
            }
            // The signal interrupted the thread on its system stack: keep unwinding from there.
            (pc, sp, exact) = (ipc, isp, true);
            continue;
        }
        if function == "runtime.mstart" || function == "runtime.rt0_go" || function.starts_with("runtime.mstart") {
            break;
        }
        let Ok(ra) = t.mem.u64_at(step.return_address_at) else { break };
        if ra == 0 || step.cfa <= sp {
            break;
        }
        (pc, sp, exact) = (ra, step.cfa, false);
    }
    Ok(None)
}

/// Unwinds a goroutine's stack from (pc, sp); `exact`: `pc` is where the code was interrupted (a
/// thread's registers), not a return address, and the frame is not at a safe point, so its stack
/// map says nothing and DWARF alone judges its variables (the runtime scans such a frame
/// conservatively).
#[allow(clippy::too_many_arguments)]
fn walk_stack(t: &Target, st: &Stacks, pcln: Option<&Pclntab>, gr: &mut Goroutine, mut pc: u64, mut sp: u64, (lo, hi): (u64, u64), exact: bool, roots: &mut Vec<Root>) {
    for depth in 0..MAX_FRAMES {
        let lpc = pc.wrapping_sub(t.bias);
        let Some((function, entry)) = st.frames.function(lpc) else {
            gr.note = Some(format!("no function with debug info at pc {pc:#x}"));
            return;
        };
        // A saved or return PC follows a call: look up the call itself, except at a function's
        // first instruction (a goroutine that has not started yet).
        let at = if depth == 0 && (exact || lpc == entry) { lpc } else { lpc.wrapping_sub(1) };
        let Some(step) = st.unwind.step(at, sp) else {
            gr.note = Some(format!("no call frame information at {function}"));
            return;
        };
        let live = if depth == 0 && exact { None } else { pcln.and_then(|p| p.frame(t, pc, sp, step.cfa)) };
        if live.is_none() && !(depth == 0 && exact) {
            gr.unknown_liveness += 1;
        }
        if let Ok((_, locals)) = st.frames.locals(at) {
            for l in locals {
                if let Loc::Cfa(off) = l.loc {
                    let addr = step.cfa.wrapping_add(off as u64);
                    let size = t.bin.dwarf.size_of(l.ty).unwrap_or(8);
                    // The runtime's stack map has the last word on liveness; DWARF's range otherwise.
                    if live.as_ref().and_then(|v| v.is_live(addr, size)) == Some(false) {
                        gr.dead_vars += 1;
                        continue;
                    }
                    roots.push(Root {
                        kind: RootKind::Goroutine { goid: gr.goid, function: function.clone() },
                        // `&x`: a variable moved to the heap; its slot holds the pointer.
                        variable: l.name.trim_start_matches('&').to_string(),
                        addr,
                        ty: l.ty,
                    });
                }
            }
        }
        let done = function == "runtime.goexit" || function.starts_with("runtime.mstart") || function == "runtime.rt0_go";
        gr.frames.push(Frame { function, pc, cfa: step.cfa });
        if done {
            return;
        }
        let Ok(ra) = t.mem.u64_at(step.return_address_at) else { return };
        if ra == 0 || step.cfa <= sp || (hi != 0 && (step.cfa < lo || step.cfa > hi)) {
            return;
        }
        pc = ra;
        sp = step.cfa;
    }
}
