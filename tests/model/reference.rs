//! The reference model: what the venv should look like, as a plain in-memory tree with
//! POSIX semantics (as Linux shows them on ext4). Files are nodes in an arena, named by
//! directory entries, so a hard link is two entries naming one node and a file stays
//! readable through an open handle after its last name is gone.

use std::collections::{BTreeMap, BTreeSet};

use super::ops::{Access, Data, Errno, Kind, Meta, Op, Outcome, Seen, Walk, SLOTS};
use super::start::{Seed, Start, UpperSeed, DIR_PERM, PYVENV_CFG};

type Id = usize;
const ROOT: Id = 0;

#[derive(Clone, Debug)]
enum Body {
    Dir(BTreeMap<String, Id>),
    File(Vec<u8>),
    Symlink(String),
}

#[derive(Clone, Debug)]
struct Node {
    body: Body,
    perm: u16,
    /// Names of a file or symlink (directories are never counted).
    nlink: u32,
}

#[derive(Clone, Copy, Debug)]
struct OpenFile {
    node: Id,
    access: Access,
}

#[derive(Clone, Debug)]
pub struct Model {
    nodes: Vec<Node>,
    slots: [Option<OpenFile>; SLOTS],
}

type Res<T> = Result<T, Errno>;

/// A layer or the upper as a tree, to merge them into the starting state.
#[derive(Clone, Debug, Default)]
struct Layer {
    children: BTreeMap<String, Entry>,
    opaque: bool,
    whiteouts: BTreeSet<String>,
}

#[derive(Clone, Debug)]
enum Entry {
    Dir(Layer),
    Leaf(Seed),
}

impl Layer {
    /// The directory at `dirs` (made on the way), or `None` if something that is not a
    /// directory is in the way (which hides what a lower layer has below it).
    fn dir_mut(&mut self, dirs: &[&str]) -> Option<&mut Layer> {
        let Some((first, rest)) = dirs.split_first() else {
            return Some(self);
        };
        let child = self
            .children
            .entry(first.to_string())
            .or_insert_with(|| Entry::Dir(Layer::default()));
        match child {
            Entry::Dir(d) => d.dir_mut(rest),
            Entry::Leaf(_) => None,
        }
    }

    /// Adds `seed` at `path` unless the path is taken (the first layer to place an entry
    /// at a path owns it; directories merge).
    fn add(&mut self, path: &str, seed: &Seed) {
        let parts: Vec<&str> = path.split('/').collect();
        let (name, dirs) = parts.split_last().unwrap();
        let Some(dir) = self.dir_mut(dirs) else {
            return;
        };
        let entry = match seed {
            Seed::Dir => Entry::Dir(Layer::default()),
            leaf => Entry::Leaf(leaf.clone()),
        };
        dir.children.entry(name.to_string()).or_insert(entry);
    }
}

impl Model {
    /// The merged view of `start`: the upper's entries over the lower layers', whiteouts
    /// hiding lower names (unless the upper has a real entry of that name), opaque
    /// directories hiding all lower content, directories of several layers merged.
    pub fn new(start: &Start) -> Model {
        let mut lower = Layer::default();
        for layer in start.settled_layers() {
            for (path, seed) in &layer {
                lower.add(&format!("lib/{path}"), seed);
            }
        }
        let mut upper = Layer::default();
        upper.add("lib", &Seed::Dir);
        upper.add(
            "pyvenv.cfg",
            &Seed::File {
                data: PYVENV_CFG.to_vec(),
                perm: 0o644,
            },
        );
        for (path, seed) in start.settled_upper() {
            let parts: Vec<&str> = path.split('/').collect();
            let (name, dirs) = parts.split_last().unwrap();
            match seed {
                UpperSeed::Entry(seed) => upper.add(path, &seed),
                UpperSeed::Whiteout => {
                    let dir = upper.dir_mut(dirs).expect("settled");
                    dir.whiteouts.insert(name.to_string());
                }
                UpperSeed::Opaque => {
                    let dir = upper.dir_mut(&parts).expect("settled");
                    dir.opaque = true;
                }
            }
        }
        let mut model = Model {
            nodes: Vec::new(),
            slots: Default::default(),
        };
        model.merge(Some(&upper), Some(&lower));
        model
    }

    /// Adds the merged directory of `upper` over `lower` and returns its node.
    fn merge(&mut self, upper: Option<&Layer>, lower: Option<&Layer>) -> Id {
        let id = self.push(Body::Dir(BTreeMap::new()), DIR_PERM);
        let mut children = BTreeMap::new();
        let lower = lower.filter(|_| !upper.is_some_and(|u| u.opaque));
        if let Some(u) = upper {
            for (name, entry) in &u.children {
                let child = match entry {
                    Entry::Dir(d) => {
                        let below = match lower.and_then(|l| l.children.get(name)) {
                            Some(Entry::Dir(l)) => Some(l),
                            _ => None,
                        };
                        self.merge(Some(d), below)
                    }
                    Entry::Leaf(seed) => self.leaf(seed),
                };
                children.insert(name.clone(), child);
            }
        }
        if let Some(l) = lower {
            for (name, entry) in &l.children {
                let hidden = upper.is_some_and(|u| u.whiteouts.contains(name));
                if children.contains_key(name) || hidden {
                    continue;
                }
                let child = match entry {
                    Entry::Dir(d) => self.merge(None, Some(d)),
                    Entry::Leaf(seed) => self.leaf(seed),
                };
                children.insert(name.clone(), child);
            }
        }
        self.nodes[id].body = Body::Dir(children);
        id
    }

    fn leaf(&mut self, seed: &Seed) -> Id {
        match seed {
            Seed::File { data, perm } => self.push(Body::File(data.clone()), *perm),
            Seed::Symlink(t) => self.push(Body::Symlink(t.to_string()), 0o777),
            Seed::Dir => unreachable!("directories are merged"),
        }
    }

    fn push(&mut self, body: Body, perm: u16) -> Id {
        let nlink = if matches!(body, Body::Dir(_)) { 0 } else { 1 };
        self.nodes.push(Node { body, perm, nlink });
        self.nodes.len() - 1
    }

    fn children(&self, dir: Id) -> &BTreeMap<String, Id> {
        match &self.nodes[dir].body {
            Body::Dir(c) => c,
            _ => unreachable!("not a directory"),
        }
    }

    fn children_mut(&mut self, dir: Id) -> &mut BTreeMap<String, Id> {
        match &mut self.nodes[dir].body {
            Body::Dir(c) => c,
            _ => unreachable!("not a directory"),
        }
    }

    fn is_dir(&self, id: Id) -> bool {
        matches!(self.nodes[id].body, Body::Dir(_))
    }

    /// The directory holding the last component of `path`, and that component. A missing
    /// directory on the way is ENOENT, a file ENOTDIR, a symlink ENOENT (it dangles).
    fn parent<'p>(&self, path: &'p str) -> Res<(Id, &'p str)> {
        let parts: Vec<&str> = path.split('/').collect();
        let (name, dirs) = parts.split_last().unwrap();
        let mut at = ROOT;
        for part in dirs {
            let next = *self.children(at).get(*part).ok_or(Errno::NotFound)?;
            match self.nodes[next].body {
                Body::Dir(_) => at = next,
                Body::File(_) => return Err(Errno::NotDir),
                Body::Symlink(_) => return Err(Errno::NotFound),
            }
        }
        Ok((at, *name))
    }

    /// The entry at `path` itself (a symlink is not followed).
    fn entry(&self, path: &str) -> Res<Id> {
        let (dir, name) = self.parent(path)?;
        self.children(dir).get(name).copied().ok_or(Errno::NotFound)
    }

    /// What `path` leads to, symlinks followed (to nowhere: they all dangle).
    fn follow(&self, path: &str) -> Res<Id> {
        let id = self.entry(path)?;
        match self.nodes[id].body {
            Body::Symlink(_) => Err(Errno::NotFound),
            _ => Ok(id),
        }
    }

    /// A new entry at `path`, which must not exist yet.
    fn make(&mut self, path: &str, body: Body, perm: u16) -> Res<()> {
        let (dir, name) = self.parent(path)?;
        if self.children(dir).contains_key(name) {
            return Err(Errno::Exists);
        }
        let id = self.push(body, perm);
        self.children_mut(dir).insert(name.to_string(), id);
        Ok(())
    }

    /// Removes the name `name` of `dir`, which names `id`.
    fn drop_name(&mut self, dir: Id, name: &str, id: Id) {
        self.children_mut(dir).remove(name);
        if !self.is_dir(id) {
            self.nodes[id].nlink -= 1;
        }
    }

    fn data_mut(&mut self, id: Id) -> Res<&mut Vec<u8>> {
        match &mut self.nodes[id].body {
            Body::File(data) => Ok(data),
            Body::Dir(_) => Err(Errno::IsDir),
            Body::Symlink(_) => unreachable!("symlinks are followed"),
        }
    }

    fn data(&self, id: Id) -> Res<Vec<u8>> {
        match &self.nodes[id].body {
            Body::File(data) => Ok(data.clone()),
            Body::Dir(_) => Err(Errno::IsDir),
            Body::Symlink(_) => unreachable!("symlinks are followed"),
        }
    }

    fn write(&mut self, id: Id, offset: u64, bytes: &[u8]) -> Res<()> {
        let data = self.data_mut(id)?;
        let end = offset as usize + bytes.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[offset as usize..end].copy_from_slice(bytes);
        Ok(())
    }

    fn rename(&mut self, from: &str, to: &str, noreplace: bool) -> Res<()> {
        let (sdir, sname) = self.parent(from)?;
        let (ddir, dname) = self.parent(to)?;
        let src = *self.children(sdir).get(sname).ok_or(Errno::NotFound)?;
        let dst = self.children(ddir).get(dname).copied();
        if noreplace && dst.is_some() {
            return Err(Errno::Exists);
        }
        // (the paths hold no symlinks here, so an ancestor's path is a prefix)
        let below =
            |path: &str, dir: &str| path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'));
        if below(to, from) {
            return Err(Errno::Invalid); // a directory into itself
        }
        if dst.is_some() && below(from, to) {
            return Err(Errno::NotEmpty); // over a directory that holds the source
        }
        if dst == Some(src) {
            return Ok(()); // two names of one file: nothing happens
        }
        if let Some(d) = dst {
            match (self.is_dir(src), self.is_dir(d)) {
                (true, false) => return Err(Errno::NotDir),
                (false, true) => return Err(Errno::IsDir),
                (true, true) if !self.children(d).is_empty() => return Err(Errno::NotEmpty),
                _ => {}
            }
            self.drop_name(ddir, dname, d);
        }
        self.children_mut(sdir).remove(sname);
        self.children_mut(ddir).insert(dname.to_string(), src);
        Ok(())
    }

    fn link(&mut self, from: &str, to: &str) -> Res<()> {
        let src = self.entry(from)?;
        let (ddir, dname) = self.parent(to)?;
        if self.children(ddir).contains_key(dname) {
            return Err(Errno::Exists);
        }
        if self.is_dir(src) {
            return Err(Errno::NotPermitted);
        }
        self.nodes[src].nlink += 1;
        self.children_mut(ddir).insert(dname.to_string(), src);
        Ok(())
    }

    fn unlink(&mut self, path: &str) -> Res<()> {
        let (dir, name) = self.parent(path)?;
        let id = *self.children(dir).get(name).ok_or(Errno::NotFound)?;
        if self.is_dir(id) {
            return Err(Errno::IsDir);
        }
        self.drop_name(dir, name, id);
        Ok(())
    }

    fn rmdir(&mut self, path: &str) -> Res<()> {
        let (dir, name) = self.parent(path)?;
        let id = *self.children(dir).get(name).ok_or(Errno::NotFound)?;
        if !self.is_dir(id) {
            return Err(Errno::NotDir);
        }
        if !self.children(id).is_empty() {
            return Err(Errno::NotEmpty);
        }
        self.drop_name(dir, name, id);
        Ok(())
    }

    fn meta(&self, id: Id) -> Meta {
        let node = &self.nodes[id];
        match &node.body {
            Body::Dir(_) => Meta {
                kind: Kind::Dir,
                size: None,
                perm: node.perm,
                nlink: None,
            },
            Body::File(data) => Meta {
                kind: Kind::File,
                size: Some(data.len() as u64),
                perm: node.perm,
                nlink: Some(node.nlink),
            },
            Body::Symlink(t) => Meta {
                kind: Kind::Symlink,
                size: Some(t.len() as u64),
                perm: node.perm,
                nlink: None,
            },
        }
    }

    fn open(&mut self, slot: usize, path: &str, access: Access, truncate: bool) -> Res<()> {
        let id = self.follow(path)?;
        if self.is_dir(id) && access.writes() {
            return Err(Errno::IsDir);
        }
        if truncate {
            self.data_mut(id)?.clear();
        }
        self.slots[slot] = Some(OpenFile { node: id, access });
        Ok(())
    }

    /// Applies `op` and answers what a POSIX filesystem would.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        match *op {
            Op::Create { path, mode } => {
                self.make(path, Body::File(Vec::new()), mode as u16).into()
            }
            Op::Write {
                path,
                offset,
                ref data,
                ..
            } => self
                .follow(path)
                .and_then(|id| self.write(id, offset, data))
                .into(),
            Op::Read { path, .. } => self.follow(path).and_then(|id| self.data(id)).into(),
            Op::Truncate { path, size } => self
                .follow(path)
                .and_then(|id| self.data_mut(id).map(|d| d.resize(size as usize, 0)))
                .into(),
            Op::Chmod { path, mode } => self
                .follow(path)
                .map(|id| self.nodes[id].perm = mode as u16)
                .into(),
            Op::Rename {
                from,
                to,
                noreplace,
            } => self.rename(from, to, noreplace).into(),
            Op::Unlink { path } => self.unlink(path).into(),
            Op::Mkdir { path, mode } => self
                .make(path, Body::Dir(BTreeMap::new()), mode as u16)
                .into(),
            Op::Rmdir { path } => self.rmdir(path).into(),
            Op::Link { from, to } => self.link(from, to).into(),
            Op::Symlink { target, path } => self
                .make(path, Body::Symlink(target.to_string()), 0o777)
                .into(),
            Op::Readlink { path } => self
                .entry(path)
                .and_then(|id| match &self.nodes[id].body {
                    Body::Symlink(t) => Ok(t.clone()),
                    _ => Err(Errno::Invalid),
                })
                .into(),
            Op::Stat { path } => self.entry(path).map(|id| self.meta(id)).into(),
            Op::List { path } => self
                .follow(path)
                .and_then(|id| match &self.nodes[id].body {
                    Body::Dir(c) => Ok(c.keys().cloned().collect::<BTreeSet<_>>()),
                    _ => Err(Errno::NotDir),
                })
                .into(),
            Op::Open {
                slot,
                path,
                access,
                truncate,
            } => self.open(slot, path, access, truncate).into(),
            Op::ReadOpen { slot } => match self.slots[slot] {
                None => Outcome::NoHandle,
                Some(f) if !f.access.reads() => Outcome::Failed(Errno::BadHandle),
                Some(f) => self.data(f.node).into(),
            },
            Op::WriteOpen {
                slot,
                offset,
                ref data,
            } => match self.slots[slot] {
                None => Outcome::NoHandle,
                Some(f) if !f.access.writes() => Outcome::Failed(Errno::BadHandle),
                Some(f) => self.write(f.node, offset, data).into(),
            },
            Op::Close { slot } => match self.slots[slot].take() {
                None => Outcome::NoHandle,
                Some(_) => Outcome::Done,
            },
            Op::Remount => {
                self.slots = Default::default();
                Outcome::Done
            }
        }
    }

    /// Every visible entry below the root.
    pub fn walk(&self) -> Walk {
        let mut out = Walk::new();
        let mut pending = vec![(String::new(), ROOT)];
        while let Some((path, dir)) = pending.pop() {
            for (name, &id) in self.children(dir) {
                let child = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}/{name}")
                };
                let (content, target) = match &self.nodes[id].body {
                    Body::Dir(_) => {
                        pending.push((child.clone(), id));
                        (None, None)
                    }
                    Body::File(data) => (Some(Data(data.clone())), None),
                    Body::Symlink(t) => (None, Some(t.clone())),
                };
                let meta = self.meta(id);
                out.insert(
                    child,
                    Seen {
                        meta,
                        content,
                        target,
                    },
                );
            }
        }
        out
    }
}
