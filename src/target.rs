//! A target: one Go executable plus one memory source (core, live process or debugger), with the
//! caches every command shares (map layouts, rendering plans, the module's type base).

use crate::binary::{Binary, TypeId};
use crate::error::{Error, Result};
use crate::heap::{AllocRules, HeapIndex, HeapLayout, SpanLookup};
use crate::layout::{Impl, MapType};
use crate::memory::{Memory, MemoryExt};
use crate::value::Plans;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// A heap index, or why it could not be built, with the fingerprint it was built at.
type HeapCache = (Option<Vec<u64>>, std::result::Result<Arc<HeapIndex>, String>);

pub struct Target {
    pub bin: Arc<Binary>,
    pub mem: Box<dyn Memory>,
    /// Load bias: runtime address minus link-time address (non-zero for PIE).
    pub bias: u64,
    pub plans: Plans,
    layouts: Mutex<HashMap<TypeId, Arc<MapType>>>,
    types_base: OnceLock<Option<u64>>,
    /// The heap index with the fingerprint it was built at (empty for a core, which cannot change).
    heap: Mutex<Option<HeapCache>>,
    heap_layout: OnceLock<std::result::Result<HeapLayout, String>>,
    alloc_rules: OnceLock<std::result::Result<Arc<AllocRules>, String>>,
    span_lookup: OnceLock<Option<SpanLookup>>,
    /// Thread registers a debugger front end handed over (gdb knows every stopped thread's).
    threads: Mutex<Vec<crate::memory::ThreadRegs>>,
    /// `heap::account::has_pointers` per type: the census accounts for 200k maps of a few types.
    pointers: Mutex<HashMap<TypeId, bool>>,
}

impl Target {
    pub fn new(bin: Arc<Binary>, mem: Box<dyn Memory>) -> Target {
        let bias = match (bin.image.pie, mem.aux_entry()) {
            (true, Some(e)) => e.wrapping_sub(bin.image.entry),
            _ => 0,
        };
        Target::with_bias(bin, mem, bias)
    }

    pub fn with_bias(bin: Arc<Binary>, mem: Box<dyn Memory>, bias: u64) -> Target {
        Target { bin, mem, bias, plans: Plans::default(), layouts: Default::default(), types_base: OnceLock::new(), heap: Mutex::new(None), heap_layout: OnceLock::new(), alloc_rules: OnceLock::new(), span_lookup: OnceLock::new(), threads: Mutex::new(Vec::new()), pointers: Default::default() }
    }

    /// Every thread's registers: the ones a debugger handed over (`set_threads`), else the memory
    /// source's own (a core's notes); empty for a live process read directly.
    pub fn threads(&self) -> Vec<crate::memory::ThreadRegs> {
        match self.threads.lock() {
            Ok(t) if !t.is_empty() => t.clone(),
            _ => self.mem.threads().to_vec(),
        }
    }

    /// Thread registers from a debugger, replacing the previous ones (a live target has moved on).
    pub fn set_threads(&self, regs: Vec<crate::memory::ThreadRegs>) {
        if let Ok(mut t) = self.threads.lock() {
            *t = regs;
        }
    }

    /// The layout of a map type, discovered once.
    pub fn map_type(&self, id: TypeId) -> Result<Arc<MapType>> {
        if let Some(m) = self.layouts.lock().ok().and_then(|l| l.get(&id).cloned()) {
            return Ok(m);
        }
        let m = Arc::new(match crate::rtmap::descriptor(id) {
            // A map type made at run time: its layout from the runtime type descriptor.
            Some(rtype) => crate::rtmap::from_descriptor(self, rtype)?,
            None => MapType::discover(&self.bin.dwarf, id)?,
        });
        if let Ok(mut l) = self.layouts.lock() {
            l.insert(id, m.clone());
        }
        Ok(m)
    }

    /// Whether values of type `id` hold pointers ([`crate::heap::account::has_pointers`]), once per type.
    pub fn has_pointers(&self, id: TypeId) -> bool {
        if let Some(&b) = self.pointers.lock().ok().and_then(|c| c.get(&id).copied()).as_ref() {
            return b;
        }
        let b = crate::heap::account::has_pointers(&self.bin.dwarf, id);
        if let Ok(mut c) = self.pointers.lock() {
            c.insert(id, b);
        }
        b
    }

    /// The heap index (spans and objects), built on first use and shared by every command. A live
    /// target's index is rebuilt when the heap's counters show that its spans may have changed
    /// (a debugger session keeps its target while the process runs).
    pub fn heap(&self) -> Result<Arc<HeapIndex>> {
        let fail = |e: &str| Error::Layout(format!("heap index unavailable: {e}"));
        let layout = self
            .heap_layout
            .get_or_init(|| HeapLayout::discover(&self.bin.dwarf, self.bias).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| fail(e))?;
        let fp = if self.mem.is_live() { HeapIndex::fingerprint(&*self.mem, layout) } else { Some(Vec::new()) };
        let mut cache = self.heap.lock().map_err(|_| fail("lock poisoned"))?;
        if let Some((f, r)) = cache.as_ref() {
            if fp.is_some() && *f == fp {
                return r.clone().map_err(|e| fail(&e));
            }
        }
        let r = HeapIndex::read(&*self.mem, layout).map(Arc::new).map_err(|e| e.to_string());
        *cache = Some((fp, r.clone()));
        r.map_err(|e| fail(&e))
    }

    /// Point lookups of heap objects through the runtime's arena index (no index to build).
    pub fn span_lookup(&self) -> Option<&SpanLookup> {
        self.span_lookup.get_or_init(|| SpanLookup::discover(&self.bin.dwarf, self.bias).ok()).as_ref()
    }

    /// The allocator's size classes and rules, read from the binary's data once.
    pub fn alloc_rules(&self) -> Result<Arc<AllocRules>> {
        self.alloc_rules
            .get_or_init(|| {
                AllocRules::load(&self.bin.dwarf, &*self.mem, self.bias)
                    .or_else(|_| AllocRules::load(&self.bin.dwarf, &crate::heap::classes::ExeFile(&self.bin.image), 0))
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|e| Error::Layout(format!("size classes unavailable: {e}")))
    }

    /// The number of entries the header claims (hmap.count / Map.used).
    pub fn map_len(&self, id: TypeId, addr: u64) -> Result<u64> {
        if addr == 0 {
            return Ok(0);
        }
        let m = self.map_type(id)?;
        let f = match &m.imp {
            Impl::Classic(c) => c.count,
            Impl::Swiss(s) => s.used,
        };
        self.mem.uint_at(addr.wrapping_add(f.offset), f.size)
    }

    /// Start of the module's type descriptors: interface type words are offsets from here.
    pub fn types_base(&self) -> Option<u64> {
        *self.types_base.get_or_init(|| {
            let d = &self.bin.dwarf;
            if let Some(g) = d.globals.get("runtime.firstmoduledata") {
                if let Some(f) = d.field(g.ty, "types") {
                    if let Ok(v) = self.mem.u64_at(g.addr.wrapping_add(self.bias).wrapping_add(f.offset)) {
                        if v != 0 {
                            return Some(v);
                        }
                    }
                }
            }
            self.bin.symbol("runtime.types").map(|a| a.wrapping_add(self.bias))
        })
    }

    /// The concrete type descriptor of an itab.
    pub fn itab_type(&self, itab: u64) -> Result<u64> {
        let d = &self.bin.dwarf;
        let off = ["internal/abi.ITab", "runtime.itab"]
            .iter()
            .filter_map(|n| d.named(n))
            .find_map(|t| d.field(t, "Type").or_else(|| d.field(t, "_type")).map(|f| f.offset))
            .unwrap_or(8);
        self.mem.u64_at(itab.wrapping_add(off))
    }

    /// The DWARF type a runtime type descriptor describes, when the linker gave it one.
    pub fn dwarf_type_of(&self, rtype: u64) -> Option<TypeId> {
        let base = self.types_base()?;
        self.bin.dwarf.by_runtime_type.get(&rtype.wrapping_sub(base)).copied()
    }

    /// Name and DWARF type of a runtime type descriptor.
    pub fn runtime_type(&self, rtype: u64) -> (String, Option<TypeId>) {
        let d = &self.bin.dwarf;
        if let Some(id) = self.dwarf_type_of(rtype) {
            return (d.name_of(id).to_string(), Some(id));
        }
        let name = self.descriptor_name(rtype).unwrap_or_else(|| format!("type@{rtype:#x}"));
        let id = d.named(&name);
        (name, id)
    }

    /// Reads a type's name from its descriptor (abi.Type.Str, a name offset into the module).
    fn descriptor_name(&self, rtype: u64) -> Option<String> {
        let d = &self.bin.dwarf;
        let t = ["internal/abi.Type", "runtime._type"].iter().find_map(|n| d.named(n))?;
        let str_f = d.field(t, "Str").or_else(|| d.field(t, "str"))?;
        let tflag_f = d.field(t, "TFlag").or_else(|| d.field(t, "tflag"))?;
        let nameoff = self.mem.uint_at(rtype.wrapping_add(str_f.offset), 4).ok()? as u32 as i32;
        let tflag = self.mem.u8_at(rtype.wrapping_add(tflag_f.offset)).ok()?;
        let base = self.types_base()?;
        let mut s = crate::rtype::name_bytes(self, base.wrapping_add(nameoff as i64 as u64))?;
        if tflag & 2 != 0 && s.starts_with('*') {
            s.remove(0);
        }
        Some(s)
    }

    /// The runtime address of a package-level variable.
    pub fn global_addr(&self, name: &str) -> Option<(u64, TypeId)> {
        self.bin.dwarf.globals.get(name).map(|g| (g.addr.wrapping_add(self.bias), g.ty))
    }

    pub fn check_readable(&self, addr: u64, len: usize, what: &str) -> Result<()> {
        let mut b = vec![0u8; len.min(64)];
        self.mem.read(addr, &mut b).map_err(|e| Error::Expr(format!("{what}: {e}")))
    }
}
