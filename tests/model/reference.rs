//! The reference model: what the venv should look like, as a plain in-memory tree with
//! POSIX semantics (as Linux shows them on ext4). Files are nodes in an arena, named by
//! directory entries, so a hard link is two entries naming one node and a file stays
//! readable through an open handle after its last name is gone.
//!
//! Told so ([`Model::windows`]), it follows the Windows rules of the core instead, as NTFS
//! shows them: names compared without regard to (ASCII) case but kept as spelled (an entry
//! shows the spelling it was made or last renamed with), Windows' invalid names refused,
//! share modes between the open slots, and deletion on close: a file opened with delete
//! on close, or marked through a handle, refuses new opens and loses its name with its last
//! handle. Removal by name (unlink, rmdir, rename over) stays immediate, as in the core,
//! where the Windows adapter sends it only at the last close.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use super::ops::{Access, Data, Errno, Kind, Meta, Op, Outcome, Seen, Share, Walk, SLOTS};
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
    /// The modification time a `SetTimes` gave it, until anything may have changed it
    /// since: a change of a file's content, of a directory's entries, or a copy-up into a
    /// directory (which the overlay makes for ops on entries below it). `None`: unknown,
    /// and not compared.
    mtime: Option<SystemTime>,
}

#[derive(Clone, Copy, Debug)]
struct OpenFile {
    node: Id,
    access: Access,
    /// Windows rules: what the open lets others do, whether it holds the right to delete,
    /// and whether the file goes when it is closed.
    share: Share,
    delete: bool,
    delete_on_close: bool,
}

/// What an open asks for, as share modes count it.
#[derive(Clone, Copy, Debug)]
struct Wants {
    read: bool,
    write: bool,
    delete: bool,
}

/// Windows rules: how a file open in the slots is marked for deletion.
#[derive(Clone, Copy, Debug, Default)]
struct Doomed {
    /// Through a handle (`SetDeletePending`); can be cleared again.
    marked: bool,
    /// A handle opened with delete on close was closed; cannot be undone.
    closed_delete_on_close: bool,
}

impl Doomed {
    fn pending(self) -> bool {
        self.marked || self.closed_delete_on_close
    }
}

#[derive(Clone, Debug)]
pub struct Model {
    nodes: Vec<Node>,
    slots: [Option<OpenFile>; SLOTS],
    /// Windows rules (else POSIX).
    windows: bool,
    /// Windows rules: the deletion state of files while the slots hold them.
    doomed: BTreeMap<Id, Doomed>,
}

type Res<T> = Result<T, Errno>;

/// A layer or the upper as a tree, to merge them into the starting state. Names are filed
/// under their keys (see [`Model::key`]) with the spelling they show.
#[derive(Clone, Debug, Default)]
struct Layer {
    children: BTreeMap<String, (String, Entry)>,
    opaque: bool,
    /// (keys)
    whiteouts: BTreeSet<String>,
}

/// How names compare: as they are, or uppercased (Windows rules).
type KeyFn = fn(&str) -> String;

fn posix_key(name: &str) -> String {
    name.to_string()
}

fn windows_key(name: &str) -> String {
    name.to_ascii_uppercase()
}

#[derive(Clone, Debug)]
enum Entry {
    Dir(Layer),
    Leaf(Seed),
}

impl Layer {
    /// The directory at `dirs` (made on the way), or `None` if something that is not a
    /// directory is in the way (which hides what a lower layer has below it).
    fn dir_mut(&mut self, dirs: &[&str], key: KeyFn) -> Option<&mut Layer> {
        let Some((first, rest)) = dirs.split_first() else {
            return Some(self);
        };
        let (_, child) = self
            .children
            .entry(key(first))
            .or_insert_with(|| (first.to_string(), Entry::Dir(Layer::default())));
        match child {
            Entry::Dir(d) => d.dir_mut(rest, key),
            Entry::Leaf(_) => None,
        }
    }

    /// Adds `seed` at `path` unless the path is taken (the first layer to place an entry
    /// at a path owns it; directories merge).
    fn add(&mut self, path: &str, seed: &Seed, key: KeyFn) {
        let parts: Vec<&str> = path.split('/').collect();
        let (name, dirs) = parts.split_last().unwrap();
        let Some(dir) = self.dir_mut(dirs, key) else {
            return;
        };
        let entry = match seed {
            Seed::Dir => Entry::Dir(Layer::default()),
            leaf => Entry::Leaf(leaf.clone()),
        };
        dir.children
            .entry(key(name))
            .or_insert((name.to_string(), entry));
    }
}

impl Model {
    /// The merged view of `start`: the upper's entries over the lower layers', whiteouts
    /// hiding lower names (unless the upper has a real entry of that name), opaque
    /// directories hiding all lower content, directories of several layers merged.
    pub fn new(start: &Start) -> Model {
        Model::build(start, false)
    }

    /// The same under Windows rules: names of the layers and the upper meet by their keys,
    /// an entry showing the spelling of the first to place it (the upper, else the topmost
    /// layer).
    pub fn windows(start: &Start) -> Model {
        Model::build(start, true)
    }

    fn build(start: &Start, windows: bool) -> Model {
        let key: KeyFn = if windows { windows_key } else { posix_key };
        let mut lower = Layer::default();
        for layer in start.settled_layers() {
            for (path, seed) in &layer {
                lower.add(&format!("lib/{path}"), seed, key);
            }
        }
        let mut upper = Layer::default();
        upper.add("lib", &Seed::Dir, key);
        upper.add(
            "pyvenv.cfg",
            &Seed::File {
                data: PYVENV_CFG.to_vec(),
                perm: 0o644,
            },
            key,
        );
        for (path, seed) in start.settled_upper() {
            let parts: Vec<&str> = path.split('/').collect();
            let (name, dirs) = parts.split_last().unwrap();
            match seed {
                UpperSeed::Entry(seed) => upper.add(path, &seed, key),
                UpperSeed::Whiteout => {
                    let dir = upper.dir_mut(dirs, key).expect("settled");
                    dir.whiteouts.insert(key(name));
                }
                UpperSeed::Opaque => {
                    let dir = upper.dir_mut(&parts, key).expect("settled");
                    dir.opaque = true;
                }
            }
        }
        let mut model = Model {
            nodes: Vec::new(),
            slots: Default::default(),
            windows,
            doomed: BTreeMap::new(),
        };
        model.merge(Some(&upper), Some(&lower));
        model
    }

    /// How names are compared: as they are (POSIX) or uppercased (Windows; the pool's
    /// names are ASCII).
    fn key(&self, name: &str) -> String {
        match self.windows {
            true => name.to_ascii_uppercase(),
            false => name.to_string(),
        }
    }

    /// The entry of `dir` that `name` names: its spelling and node.
    fn find(&self, dir: Id, name: &str) -> Option<(String, Id)> {
        let children = self.children(dir);
        if !self.windows {
            return children.get(name).map(|&id| (name.to_string(), id));
        }
        children
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(n, &id)| (n.clone(), id))
    }

    /// Windows rules refuse DOS device names (whatever the extension or case), reserved
    /// characters, and a trailing dot or space.
    fn check_name(&self, name: &str) -> Res<()> {
        if !self.windows {
            return Ok(());
        }
        let stem = name.split('.').next().unwrap_or("");
        let stem = stem.trim_end_matches(' ').to_ascii_uppercase();
        let numbered = |prefix: &str| {
            stem.len() == 4 && stem.starts_with(prefix) && matches!(stem.as_bytes()[3], b'1'..=b'9')
        };
        let device = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
            || numbered("COM")
            || numbered("LPT");
        let bad_char = name.chars().any(|c| c < ' ' || "<>:\"/\\|?*".contains(c));
        if device || bad_char || name.ends_with('.') || name.ends_with(' ') {
            return Err(Errno::InvalidName);
        }
        Ok(())
    }

    /// Adds the merged directory of `upper` over `lower` and returns its node.
    fn merge(&mut self, upper: Option<&Layer>, lower: Option<&Layer>) -> Id {
        let id = self.push(Body::Dir(BTreeMap::new()), DIR_PERM);
        let mut children = BTreeMap::new();
        let lower = lower.filter(|_| !upper.is_some_and(|u| u.opaque));
        if let Some(u) = upper {
            for (key, (name, entry)) in &u.children {
                let child = match entry {
                    Entry::Dir(d) => {
                        let below = match lower.and_then(|l| l.children.get(key)) {
                            Some((_, Entry::Dir(l))) => Some(l),
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
            for (key, (name, entry)) in &l.children {
                let hidden = upper.is_some_and(|u| u.whiteouts.contains(key));
                if upper.is_some_and(|u| u.children.contains_key(key)) || hidden {
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
        self.nodes.push(Node {
            body,
            perm,
            nlink,
            mtime: None,
        });
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
            let (_, next) = self.find(at, part).ok_or(Errno::NotFound)?;
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
        self.find(dir, name)
            .map(|(_, id)| id)
            .ok_or(Errno::NotFound)
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
        self.check_name(name)?;
        if self.find(dir, name).is_some() {
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

    /// The content of file `id`, to change (so its modification time is no longer known).
    fn data_mut(&mut self, id: Id) -> Res<&mut Vec<u8>> {
        if !self.is_dir(id) {
            self.nodes[id].mtime = None;
        }
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
        self.check_name(dname)?;
        let (sname, src) = self.find(sdir, sname).ok_or(Errno::NotFound)?;
        let sname = sname.as_str();
        let found = self.find(ddir, dname);
        let mut dst = found.as_ref().map(|&(_, id)| id);
        if self.windows && dst == Some(src) && sname != dname {
            // another spelling of the entry itself (no hard links under Windows rules): a
            // case-only rename, which replaces nothing
            dst = None;
        }
        if noreplace && dst.is_some() {
            return Err(Errno::Exists);
        }
        // (the paths hold no symlinks here, so an ancestor's path is a prefix)
        let below = |path: &str, dir: &str| {
            let (path, dir) = (self.key(path), self.key(dir));
            path.strip_prefix(&dir).is_some_and(|r| r.starts_with('/'))
        };
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
            // (as spelled: under Windows rules one entry is left, spelled anew)
            let (dspelled, _) = found.expect("found");
            self.drop_name(ddir, &dspelled, d);
        }
        self.children_mut(sdir).remove(sname);
        self.children_mut(ddir).insert(dname.to_string(), src);
        Ok(())
    }

    fn link(&mut self, from: &str, to: &str) -> Res<()> {
        let src = self.entry(from)?;
        let (ddir, dname) = self.parent(to)?;
        self.check_name(dname)?;
        if self.find(ddir, dname).is_some() {
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
        let (name, id) = self.find(dir, name).ok_or(Errno::NotFound)?;
        if self.is_dir(id) {
            return Err(Errno::IsDir);
        }
        self.drop_name(dir, &name, id);
        Ok(())
    }

    fn rmdir(&mut self, path: &str) -> Res<()> {
        let (dir, name) = self.parent(path)?;
        let (name, id) = self.find(dir, name).ok_or(Errno::NotFound)?;
        if !self.is_dir(id) {
            return Err(Errno::NotDir);
        }
        if !self.children(id).is_empty() {
            return Err(Errno::NotEmpty);
        }
        self.drop_name(dir, &name, id);
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
                mtime: node.mtime,
            },
            Body::File(data) => Meta {
                kind: Kind::File,
                size: Some(data.len() as u64),
                perm: node.perm,
                nlink: Some(node.nlink),
                mtime: node.mtime,
            },
            Body::Symlink(t) => Meta {
                kind: Kind::Symlink,
                size: Some(t.len() as u64),
                perm: node.perm,
                nlink: None,
                mtime: None,
            },
        }
    }

    /// Opens `path` into `slot` as `op` (an `Op::Open`) says.
    fn open(&mut self, op: &Op) -> Res<()> {
        let Op::Open {
            slot,
            path,
            access,
            truncate,
            share,
            delete,
            delete_on_close,
        } = *op
        else {
            unreachable!("an open")
        };
        let id = self.follow(path)?;
        let share = share.unwrap_or(Share::ALL);
        let delete = delete || delete_on_close;
        if self.windows {
            let wants = Wants {
                read: access.reads(),
                write: access.writes() || truncate,
                delete,
            };
            // (before the open changes anything)
            self.check_windows_open(id, wants, share)?;
            if delete_on_close {
                self.check_deletable(id)?;
            }
        }
        if self.is_dir(id) && access.writes() {
            return Err(Errno::IsDir);
        }
        if truncate {
            self.data_mut(id)?.clear();
        }
        let new = OpenFile {
            node: id,
            access,
            share,
            delete,
            delete_on_close,
        };
        if let Some(old) = self.slots[slot].replace(new) {
            self.release(old);
        }
        Ok(())
    }

    /// Windows rules: whether a new open of `id` asking `wants` and sharing `share` may
    /// join the opens in the slots. Not while the file is delete pending; not if it wants
    /// what an open there does not share, or does not share what an open there does.
    fn check_windows_open(&self, id: Id, wants: Wants, share: Share) -> Res<()> {
        if self.doomed.get(&id).is_some_and(|d| d.pending()) {
            return Err(Errno::DeletePending);
        }
        for o in self.slots.iter().flatten().filter(|o| o.node == id) {
            let denied = (wants.read && !o.share.read)
                || (wants.write && !o.share.write)
                || (wants.delete && !o.share.delete);
            let denies = (o.access.reads() && !share.read)
                || (o.access.writes() && !share.write)
                || (o.delete && !share.delete);
            if denied || denies {
                return Err(Errno::SharingViolation);
            }
        }
        Ok(())
    }

    /// Windows rules: an open of `path` that lasts one op (`Read` and `Write` by path),
    /// sharing everything.
    fn check_brief_open(&self, id: Id, write: bool) -> Res<()> {
        if !self.windows {
            return Ok(());
        }
        let wants = Wants {
            read: !write,
            write,
            delete: false,
        };
        self.check_windows_open(id, wants, Share::ALL)
    }

    /// Whether `id` may be marked for deletion: not a read-only file (EACCES), not a
    /// directory that holds anything.
    fn check_deletable(&self, id: Id) -> Res<()> {
        if self.nodes[id].perm & 0o222 == 0 {
            return Err(Errno::Other(libc::EACCES));
        }
        match &self.nodes[id].body {
            Body::Dir(c) if !c.is_empty() => Err(Errno::NotEmpty),
            _ => Ok(()),
        }
    }

    /// The handle `f`, taken out of its slot, is closed. Under Windows rules a handle
    /// opened with delete on close makes its file delete pending, and the last handle of a
    /// delete-pending file takes its name with it.
    fn release(&mut self, f: OpenFile) {
        if !self.windows {
            return;
        }
        let doomed = self.doomed.entry(f.node).or_default();
        doomed.closed_delete_on_close |= f.delete_on_close;
        if self.slots.iter().flatten().any(|o| o.node == f.node) {
            return;
        }
        if self.doomed.remove(&f.node).is_some_and(|d| d.pending()) {
            self.delete_name_of(f.node);
        }
    }

    /// Deletes the name `id` has now, if any (a directory only if it is still empty).
    fn delete_name_of(&mut self, id: Id) {
        self.forget_times_above_node(id);
        let mut pending = vec![ROOT];
        while let Some(dir) = pending.pop() {
            for (name, &child) in self.children(dir) {
                if child == id {
                    let name = name.clone();
                    if !self.is_dir(id) || self.children(id).is_empty() {
                        self.drop_name(dir, &name, id);
                    }
                    return;
                }
                if self.is_dir(child) {
                    pending.push(child);
                }
            }
        }
    }

    /// Windows rules: `SetDeletePending` through the handle `f`.
    fn set_delete_pending(&mut self, f: OpenFile, delete: bool) -> Res<()> {
        if !self.windows {
            return Err(Errno::Other(libc::EOPNOTSUPP));
        }
        if delete {
            self.check_deletable(f.node)?;
            self.doomed.entry(f.node).or_default().marked = true;
        } else if !f.delete_on_close {
            // (through a delete-on-close handle, clearing does nothing)
            self.doomed.entry(f.node).or_default().marked = false;
        }
        Ok(())
    }

    /// The directories above `path` (the root and each one on the way that exists) forget
    /// their modification times: the op may change their entries or copy an entry up into
    /// them, whether or not it succeeds.
    fn forget_times_above(&mut self, path: &str) {
        let parts: Vec<&str> = path.split('/').collect();
        let mut at = ROOT;
        self.nodes[ROOT].mtime = None;
        for part in &parts[..parts.len() - 1] {
            match self.find(at, part) {
                Some((_, next)) if self.is_dir(next) => {
                    at = next;
                    self.nodes[at].mtime = None;
                }
                _ => return,
            }
        }
    }

    /// Every directory on a path to `id` forgets its modification time (a write through a
    /// handle copies the file up into its directory).
    fn forget_times_above_node(&mut self, id: Id) {
        let mut above = Vec::new();
        self.dirs_above(ROOT, id, &mut Vec::new(), &mut above);
        for dir in above {
            self.nodes[dir].mtime = None;
        }
    }

    fn dirs_above(&self, dir: Id, id: Id, chain: &mut Vec<Id>, out: &mut Vec<Id>) {
        chain.push(dir);
        for &child in self.children(dir).values() {
            if child == id {
                out.extend(chain.iter().copied());
            }
            if self.is_dir(child) {
                self.dirs_above(child, id, chain, out);
            }
        }
        chain.pop();
    }

    /// `id` and everything below it forget their modification times (a directory moved
    /// by a rename may be copied up with its content).
    fn forget_times_below(&mut self, id: Id) {
        self.nodes[id].mtime = None;
        if self.is_dir(id) {
            let children: Vec<Id> = self.children(id).values().copied().collect();
            for child in children {
                self.forget_times_below(child);
            }
        }
    }

    /// What an op may change besides what it says: the modification times of the
    /// directories above the paths it names (and, for a rename, of what it moves).
    fn forget_times(&mut self, op: &Op) {
        match *op {
            Op::Create { path, .. }
            | Op::Write { path, .. }
            | Op::Truncate { path, .. }
            | Op::Chmod { path, .. }
            | Op::SetTimes { path, .. }
            | Op::Unlink { path }
            | Op::Mkdir { path, .. }
            | Op::Rmdir { path }
            | Op::Symlink { path, .. }
            | Op::Open { path, .. } => self.forget_times_above(path),
            Op::Rename { from, to, .. } => {
                if let Ok(id) = self.entry(from) {
                    self.forget_times_below(id);
                }
                self.forget_times_above(from);
                self.forget_times_above(to);
            }
            Op::Link { from, to } => {
                self.forget_times_above(from);
                self.forget_times_above(to);
            }
            Op::WriteOpen { slot, .. } => {
                if let Some(f) = self.slots[slot] {
                    self.forget_times_above_node(f.node);
                }
            }
            Op::Read { .. }
            | Op::Readlink { .. }
            | Op::Stat { .. }
            | Op::List { .. }
            | Op::ReadOpen { .. }
            | Op::Close { .. }
            | Op::SetDeletePending { .. }
            | Op::Fsync { .. }
            | Op::StatOpen { .. }
            | Op::Statfs
            | Op::Remount => {}
        }
    }

    /// Applies `op` and answers what a POSIX filesystem would.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        self.forget_times(op);
        match *op {
            Op::Create { path, mode } => {
                self.make(path, Body::File(Vec::new()), mode as u16).into()
            }
            Op::Write {
                path,
                offset,
                ref data,
                by_inode,
            } => self
                .follow(path)
                .and_then(|id| {
                    if !by_inode {
                        self.check_brief_open(id, true)?;
                    }
                    self.write(id, offset, data)
                })
                .into(),
            Op::Read { path, by_inode } => self
                .follow(path)
                .and_then(|id| {
                    if !by_inode {
                        self.check_brief_open(id, false)?;
                    }
                    self.data(id)
                })
                .into(),
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
            Op::Open { .. } => self.open(op).into(),
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
                Some(f) => {
                    self.release(f);
                    Outcome::Done
                }
            },
            Op::SetDeletePending { slot, delete } => match self.slots[slot] {
                None => Outcome::NoHandle,
                Some(f) => self.set_delete_pending(f, delete).into(),
            },
            Op::SetTimes { path, time, .. } => self
                .follow(path)
                .map(|id| self.nodes[id].mtime = Some(super::ops::time(time)))
                .into(),
            // (flushing changes nothing anyone can see)
            Op::Fsync { slot } => match self.slots[slot] {
                None => Outcome::NoHandle,
                Some(_) => Outcome::Done,
            },
            Op::StatOpen { slot } => match self.slots[slot] {
                None => Outcome::NoHandle,
                Some(f) => self.meta(f.node).into(),
            },
            Op::Statfs => Outcome::Done,
            Op::Remount => {
                // handles go with the filesystem, deleting nothing
                self.slots = Default::default();
                self.doomed.clear();
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
