//! Paths from a root to a map, kept as a tree of steps: each visited object or map stores the node
//! of the step that first reached it, so a path costs one node per hop, and names are only built
//! for the maps that are printed.

/// One step of a path.
#[derive(Clone, Debug)]
pub enum Step {
    /// The root with this index (in the census' roots).
    Root(u32),
    /// `.field`
    Field(std::sync::Arc<str>),
    /// `[i]` of an array or slice.
    Index(u64),
    /// `[key]` of a map entry whose key prints as Go.
    Key(Box<str>),
    /// `[#i]`: the i-th entry of a map whose key cannot be printed.
    Entry(u64),
    /// `.(T)`: an interface's dynamic value.
    Assert(std::sync::Arc<str>),
    /// `[buffer i]`: the i-th value waiting in a channel's buffer.
    Buffer(u64),
    /// `(*T)(...)`: an `unsafe.Pointer` read as a pointer to `T`, the type the heap records for its pointee.
    Cast(std::sync::Arc<str>),
}

pub const NONE: u32 = u32::MAX;

#[derive(Default)]
pub struct Paths {
    nodes: Vec<(u32, Step)>,
}

impl Paths {
    pub fn push(&mut self, parent: u32, step: Step) -> u32 {
        self.nodes.push((parent, step));
        (self.nodes.len() - 1) as u32
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The root index a path starts from.
    pub fn root(&self, mut id: u32) -> Option<u32> {
        for _ in 0..self.nodes.len() {
            let (parent, step) = self.nodes.get(id as usize)?;
            if let Step::Root(r) = step {
                return Some(*r);
            }
            id = *parent;
        }
        None
    }

    /// The path as a Go-like expression; `root_name` names a root index.
    pub fn name(&self, mut id: u32, root_name: &dyn Fn(u32) -> String) -> String {
        let mut steps = Vec::new();
        while let Some((parent, step)) = self.nodes.get(id as usize) {
            steps.push(step);
            if steps.len() > self.nodes.len() {
                break;
            }
            id = *parent;
        }
        let mut s = String::new();
        for step in steps.iter().rev() {
            match step {
                Step::Root(r) => s.push_str(&root_name(*r)),
                Step::Field(f) => {
                    s.push('.');
                    s.push_str(f);
                }
                Step::Index(i) => s.push_str(&format!("[{i}]")),
                Step::Key(k) => {
                    s.push('[');
                    s.push_str(k);
                    s.push(']');
                }
                Step::Entry(i) => s.push_str(&format!("[#{i}]")),
                Step::Assert(t) => {
                    s.push_str(".(");
                    s.push_str(t);
                    s.push(')');
                }
                Step::Buffer(i) => s.push_str(&format!("[buffer {i}]")),
                Step::Cast(t) => s = format!("(*{t})({s})"),
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn names_read_like_go() {
        let mut p = Paths::default();
        let root = p.push(NONE, Step::Root(0));
        let srv = p.push(root, Step::Field(Arc::from("cache")));
        let shard = p.push(srv, Step::Index(3));
        let m = p.push(shard, Step::Field(Arc::from("m")));
        let key = p.push(m, Step::Key("\"k7\"".into()));
        let entry = p.push(m, Step::Entry(2));
        let iface = p.push(root, Step::Assert(Arc::from("main.mapHolder")));
        let chan = p.push(root, Step::Buffer(0));
        let cast = p.push(root, Step::Cast(Arc::from("main.Blob")));
        let cast_m = p.push(cast, Step::Field(Arc::from("m")));
        let name = |id| p.name(id, &|r| format!("root{r}"));
        assert_eq!(name(m), "root0.cache[3].m");
        assert_eq!(name(key), "root0.cache[3].m[\"k7\"]");
        assert_eq!(name(entry), "root0.cache[3].m[#2]");
        assert_eq!(name(iface), "root0.(main.mapHolder)");
        assert_eq!(name(chan), "root0[buffer 0]");
        assert_eq!(name(cast_m), "(*main.Blob)(root0).m");
        assert_eq!(p.root(key), Some(0));
        assert_eq!(p.root(12345), None);
    }
}
