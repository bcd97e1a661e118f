//! `show --json` of a big map on both cores: the walk stays on the calling thread and hands the
//! entries' bytes over in numbered batches; worker threads render batches with their own
//! [`Renderer`]; the calling thread writes the rendered batches in walk order. The output is
//! byte-for-byte what the one-thread path prints (the same walk order, the same rendering of each
//! entry, which depends on nothing but that entry), and memory stays bounded: at most
//! `QUEUE + workers + 1` batches are in flight, and their buffers are reused.
//!
//! Only for a core or an executable image (a live target re-reads each region after its entries are
//! rendered, which deferred rendering would defeat) and for maps of at least [`MIN_LEN`] entries.
//! `GOMAP_THREADS=1` turns it off (benchmarks compare both); `GOMAP_THREADS=N` (N >= 2) forces N
//! workers on every map, in batches of [`TEST_BATCH`] entries, so that the tests' small fixture maps
//! cross many batch boundaries.
//!
//! A worker starts loading the string bytes of the entry 16 ahead of the one it renders: a string
//! map's strings sit all over the heap in hash order, each a cache and TLB miss. `GOMAP_GATHER=1`
//! gathers a batch's strings first instead (`Renderer::gather`: every string the batch prints,
//! copied in address order into one buffer laid out in rendering order); with the flat rendering
//! (`value::Flat`) and batches of 4096 that was ~10 % more CPU than prefetching on 1M
//! string->struct entries (it had been ~10 % less with the general rendering and batches of 16384).
//! `GOMAP_BATCH=N` sets the entries per batch (benchmarks compare them).

use super::{entries_done, json_entry};
use crate::decode::{self, Health, Visitor};
use crate::error::Result;
use crate::layout::MapType;
use crate::target::Target;
use crate::value::{Flat, Plan as ValuePlan, Renderer};
use crate::report::progress::Bar;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

/// Entries per batch: big enough that handing one over costs nothing per entry, small enough that
/// a batch's output stays in a core's cache and the batches in flight stay a few MiB. 1M
/// string->struct entries on the bench cores, with the flat rendering: 4096 (4 queued) used the
/// same CPU as 16384 (1 queued) or a little less, 8-10 MB less RSS and less wall time (the pipeline
/// fills and drains faster); before the flat rendering 16384 had halved the time spent gathering
/// strings against 4096. 65536: over 100 MB of RSS.
const BATCH: usize = 4096;
/// Batches of [`BATCH`] entries waiting for a worker before the walk waits (more when smaller).
const QUEUE: usize = 4;
/// Smaller maps are rendered on the calling thread: starting threads would cost more than it saves.
pub const MIN_LEN: u64 = 1 << 16;
/// Entries per batch when GOMAP_THREADS forces the parallel path.
const TEST_BATCH: usize = 61;
/// How far ahead of the entry being rendered a worker starts loading string bytes.
const PREFETCH_AHEAD: usize = 16;

/// How a map is rendered in parallel: worker threads and entries per batch.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    workers: usize,
    batch: usize,
    /// Read each batch's strings in address order before rendering it (`GOMAP_GATHER=1`).
    gather: bool,
}

/// The parallel plan for a map of `len` entries on `t`, or None for the one-thread path.
pub fn plan(t: &Target, len: u64) -> Option<Plan> {
    if t.mem.is_live() {
        return None;
    }
    let gather = std::env::var("GOMAP_GATHER").is_ok_and(|v| v == "1");
    let batch = std::env::var("GOMAP_BATCH").ok().and_then(|v| v.parse::<usize>().ok()).filter(|&b| b > 0);
    match std::env::var("GOMAP_THREADS").ok().and_then(|v| v.parse::<usize>().ok()) {
        Some(n) => (n >= 2).then(|| Plan { workers: n.min(8), batch: batch.unwrap_or(TEST_BATCH), gather }),
        None => {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            (cores >= 2 && len >= MIN_LEN).then(|| Plan { workers: cores.min(8), batch: batch.unwrap_or(BATCH), gather })
        }
    }
}

/// One batch of entries: their key and element bytes back to back, `first` the index of its first
/// entry in the map's output (the comma before every entry but the very first).
struct Job {
    seq: u64,
    first: u64,
    keys: Vec<u8>,
    elems: Vec<u8>,
    count: usize,
}

/// A rendered batch and what its renderer counted (merged into the caller's renderer afterwards).
struct Done {
    seq: u64,
    out: Vec<u8>,
    /// The job's buffers, for the next job (fresh buffers of a big batch cost page faults).
    keys: Vec<u8>,
    elems: Vec<u8>,
    errors: u64,
    elided: u64,
    first_error: Option<String>,
}

/// The visitor on the walking thread: copies entries into batches and writes finished ones in order.
struct Batcher<'a> {
    batch: usize,
    ks: usize,
    es: usize,
    limit: u64,
    n: u64,
    more: bool,
    cur: Job,
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    /// Rendered batches that finished before an earlier one.
    early: BTreeMap<u64, Done>,
    next: u64,
    sent: u64,
    sink: &'a mut dyn Write,
    io_error: Option<std::io::Error>,
    /// Counts of the workers, merged in batch order.
    errors: u64,
    elided: u64,
    first_error: Option<String>,
    /// The entries bar of `show --limit 0` on a large map (stderr on a terminal only).
    progress: Option<Bar>,
    /// Buffers of finished jobs, and written output buffers (shared with the workers), for reuse.
    free_jobs: Vec<(Vec<u8>, Vec<u8>)>,
    free_out: &'a Mutex<Vec<Vec<u8>>>,
}

impl Batcher<'_> {
    fn new_job(&mut self, seq: u64) -> Job {
        let (keys, elems) = match self.free_jobs.pop() {
            Some((mut k, mut e)) => {
                k.clear();
                e.clear();
                (k, e)
            }
            None => (Vec::with_capacity(self.batch * self.ks), Vec::with_capacity(self.batch * self.es)),
        };
        Job { seq, first: self.n, keys, elems, count: 0 }
    }

    fn send(&mut self) {
        if self.cur.count == 0 {
            return;
        }
        let next = self.new_job(self.cur.seq + 1);
        let job = std::mem::replace(&mut self.cur, next);
        if let Some(tx) = &self.jobs {
            if tx.send(job).is_ok() {
                self.sent += 1;
            }
        }
        while let Ok(d) = self.done.try_recv() {
            self.take(d);
        }
    }

    /// A finished batch: written now if it is the next one, kept until then otherwise.
    fn take(&mut self, mut d: Done) {
        self.free_jobs.push((std::mem::take(&mut d.keys), std::mem::take(&mut d.elems)));
        self.early.insert(d.seq, d);
        while let Some(mut d) = self.early.remove(&self.next) {
            self.next += 1;
            self.errors += d.errors;
            self.elided += d.elided;
            if self.first_error.is_none() {
                self.first_error = d.first_error;
            }
            if self.io_error.is_none() {
                if let Err(e) = self.sink.write_all(&d.out) {
                    self.io_error = Some(e);
                }
            }
            d.out.clear();
            if let Ok(mut f) = self.free_out.lock() {
                f.push(std::mem::take(&mut d.out));
            }
        }
    }

    /// After the walk: the last batch, then every result.
    fn finish(&mut self) {
        self.send();
        self.jobs = None;
        while self.next < self.sent {
            match self.done.recv() {
                Ok(d) => self.take(d),
                Err(_) => break,
            }
        }
    }
}

impl Visitor for Batcher<'_> {
    fn wants_entries(&self) -> bool {
        true
    }
    fn entry(&mut self, k: &[u8], e: &[u8]) -> bool {
        if entries_done(self.limit, self.n, &mut self.more, self.io_error.is_some()) {
            return false;
        }
        // Fixed-size records: a short slice (never from the walkers) is padded, not misaligned.
        let (ko, eo) = (self.cur.keys.len(), self.cur.elems.len());
        self.cur.keys.extend_from_slice(k.get(..self.ks).unwrap_or(k));
        self.cur.keys.resize(ko + self.ks, 0);
        self.cur.elems.extend_from_slice(e.get(..self.es).unwrap_or(e));
        self.cur.elems.resize(eo + self.es, 0);
        self.cur.count += 1;
        self.n += 1;
        if self.n % 4096 == 0 {
            if let Some(p) = &self.progress {
                p.set(self.n);
            }
        }
        if self.cur.count == self.batch {
            self.send();
        }
        true
    }
}

/// Record `i` of `size` bytes.
fn at(v: &[u8], size: usize, i: usize) -> &[u8] {
    v.get(i * size..(i + 1) * size).unwrap_or(&[])
}

#[allow(clippy::too_many_arguments)]
fn render(r: &Renderer<'_>, key: &ValuePlan, elem: &ValuePlan, flat: Option<&Flat>, ks: usize, es: usize, j: &Job, gather: bool, mut out: Vec<u8>) -> Vec<u8> {
    out.reserve(j.count * (ks + es) * 2);
    if gather {
        // The batch's string bytes first, read in address order; then the entries in walk order,
        // each by the flat rendering when the map has one and the entry allows it.
        r.gather(key, elem, &j.keys, ks, &j.elems, es, j.count);
        for i in 0..j.count {
            let (k, e, comma) = (at(&j.keys, ks, i), at(&j.elems, es, i), j.first + i as u64 > 0);
            if flat.is_some_and(|f| r.flat_entry(f, &mut out, k, e, i, comma)) {
                continue;
            }
            r.gathered_entry(i);
            json_entry(r, &mut out, key, elem, k, e, comma);
        }
        r.gathered_done();
        return out;
    }
    for i in 0..j.count.min(PREFETCH_AHEAD) {
        r.prefetch(key, at(&j.keys, ks, i));
        r.prefetch(elem, at(&j.elems, es, i));
    }
    for i in 0..j.count {
        // The string bytes of an entry a little ahead start loading while this one is rendered:
        // the walk visits strings in hash order, one cache miss each.
        if i + PREFETCH_AHEAD < j.count {
            r.prefetch(key, at(&j.keys, ks, i + PREFETCH_AHEAD));
            r.prefetch(elem, at(&j.elems, es, i + PREFETCH_AHEAD));
        }
        let (k, e, comma) = (at(&j.keys, ks, i), at(&j.elems, es, i), j.first + i as u64 > 0);
        if flat.is_some_and(|f| r.flat_entry_direct(f, &mut out, k, e, comma)) {
            continue;
        }
        json_entry(r, &mut out, key, elem, k, e, comma);
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn worker(r: &Renderer<'_>, key: &ValuePlan, elem: &ValuePlan, flat: Option<&Flat>, ks: usize, es: usize, jobs: &Mutex<Receiver<Job>>, done: Sender<Done>, gather: bool, free_out: &Mutex<Vec<Vec<u8>>>) {
    decode::no_interrupt_hook_on_this_thread();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let buf = free_out.lock().ok().and_then(|mut f| f.pop()).unwrap_or_default();
        let out = render(r, key, elem, flat, ks, es, &job, gather, buf);
        let d = Done {
            seq: job.seq,
            out,
            keys: job.keys,
            elems: job.elems,
            errors: r.errors.replace(0),
            elided: r.elided.replace(0),
            first_error: r.first_error.borrow_mut().take(),
        };
        if done.send(d).is_err() {
            return;
        }
    }
}

/// What the parallel walk returns: the walk's health, whether entries were left out (--limit), and
/// the first write error.
pub struct Walked {
    pub health: Health,
    pub more: bool,
    pub io_error: Option<std::io::Error>,
}

/// Walks the map at `addr` and writes its entries as JSON (comma-separated, no brackets) to `sink`,
/// rendered by `workers` threads; `rend` is the caller's renderer, which receives the counts of the
/// workers' renderers and is the template for them (style, depth, string limit).
pub fn walk_json(t: &Target, m: &MapType, addr: u64, rend: &Renderer<'_>, limit: u64, p: Plan, sink: &mut dyn Write, progress: Option<Bar>) -> Result<Walked> {
    let (key, elem): (Arc<ValuePlan>, Arc<ValuePlan>) = (crate::rtmap::plan(t, m.key), crate::rtmap::plan(t, m.elem));
    let (ks, es) = (m.key_size as usize, m.elem_size as usize);
    let (jtx, jrx) = sync_channel::<Job>((QUEUE * BATCH / p.batch.max(1)).clamp(1, 4));
    let jrx = Mutex::new(jrx);
    let (dtx, drx) = channel::<Done>();
    let free_out = Mutex::new(Vec::new());
    // GOMAP_FLAT=0: every entry through the general rendering (benchmarks compare both).
    let flat = if std::env::var("GOMAP_FLAT").is_ok_and(|v| v == "0") { None } else { rend.flat(&key, &elem) };
    std::thread::scope(|sc| {
        for _ in 0..p.workers {
            let (r, dtx, jrx, key, elem, free_out, flat) = (rend.like(), dtx.clone(), &jrx, &key, &elem, &free_out, flat.as_ref());
            sc.spawn(move || worker(&r, key, elem, flat, ks, es, jrx, dtx, p.gather, free_out));
        }
        drop(dtx);
        let mut b = Batcher {
            batch: p.batch,
            ks,
            es,
            limit,
            n: 0,
            more: false,
            cur: Job { seq: 0, first: 0, keys: Vec::with_capacity(p.batch * ks), elems: Vec::with_capacity(p.batch * es), count: 0 },
            jobs: Some(jtx),
            done: drx,
            early: BTreeMap::new(),
            next: 0,
            sent: 0,
            sink,
            io_error: None,
            errors: 0,
            elided: 0,
            first_error: None,
            progress,
            free_jobs: Vec::new(),
            free_out: &free_out,
        };
        let walked = decode::walk_map(t, m, addr, &mut b);
        b.finish();
        rend.errors.set(rend.errors.get() + b.errors);
        rend.elided.set(rend.elided.get() + b.elided);
        if rend.first_error.borrow().is_none() {
            *rend.first_error.borrow_mut() = b.first_error.take();
        }
        Ok(Walked { health: walked?, more: b.more, io_error: b.io_error.take() })
    })
}
