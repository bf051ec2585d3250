//! The merged tree the mount shows: one node per name that has been looked at, keyed by
//! inode number. A directory's children are computed once, on first use, from the upper
//! directory (markers interpreted) and the lower tree; after that every change goes through
//! the overlay operations, which keep the in-memory children and the disk in step.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};
use parking_lot::Mutex;

use venvfs_api::{Error, FileKind, Ino, Result, ROOT};

use super::dirlist::Listing;
use crate::dir_table::{self, spread};
use crate::lower::{LowerTree, LOWER_ROOT};
use crate::rules::NameRules;
use crate::upper::{join, Rel, Upper};

pub struct Node {
    pub parent: Ino,
    pub name: Box<OsStr>,
    pub kind: FileKind,
    /// The entry exists in the upper layer at this node's path.
    pub upper: bool,
    /// The upper entry is a reference: a symlink to a regular file of a read-only source
    /// (uv's cache), shown as that file until its first change copies it up (see
    /// `overlay/reference.rs`).
    pub reference: bool,
    /// Removed from the tree (kept so open handles and the kernel's references stay valid).
    pub unlinked: bool,
    /// A `__pycache__` directory of a directory with lower modules, whose `.pyc` files
    /// the bytecode stores hold; or (not upper) a `.pyc` file of such a store, shown from
    /// there (see `overlay/bytecode.rs`).
    pub bytecode: bool,
    /// Files: the lower file shown while the node is not in the upper layer.
    /// Directories: the lower directory whose entries merge into this one (none when the
    /// directory is opaque; the original one when it was renamed).
    pub lower: Option<u32>,
    /// Directories, once their children are loaded (boxed: most nodes are files).
    pub dir: Option<Box<Dir>>,
    /// Further names of a hard-linked file, besides (`parent`, `name`) (boxed: hard links
    /// are rare, and a box is a third of an empty Vec in every node).
    #[allow(clippy::box_collection)]
    pub aliases: Option<Box<Vec<Name>>>,
    /// References the backend holds (see `FileSystem::reference`): kept in the node, the
    /// one place every node has, rather than a map beside the tree.
    pub refs: AtomicU64,
}

/// A name of a node: its parent directory and the name in it.
pub type Name = (Ino, Box<OsStr>);

/// A loaded directory's children (see [`Dir::children`]).
pub type Children = dir_table::Table<Ino>;

/// What a loaded directory node holds.
#[derive(Default)]
pub struct Dir {
    /// The merged children, by their names' keys under the mount's [`NameRules`] (the
    /// names themselves under POSIX rules; a node keeps the spelling it shows): see
    /// `dir_table`. [`Tree::entries`] lists them with their names.
    pub children: Children,
    /// The sorted listing while the kernel reads it (see `dirlist.rs`); dropped by every
    /// change to the children.
    pub listing: Mutex<Option<Listing>>,
}

impl Node {
    pub fn new(parent: Ino, name: &OsStr, kind: FileKind, upper: bool, lower: Option<u32>) -> Node {
        Node {
            parent,
            name: name.into(),
            kind,
            upper,
            reference: false,
            unlinked: false,
            bytecode: false,
            lower,
            dir: None,
            aliases: None,
            refs: AtomicU64::new(0),
        }
    }

    /// Whether the backend holds a reference to the node.
    pub fn referenced(&self) -> bool {
        self.refs.load(std::sync::atomic::Ordering::Relaxed) > 0
    }

    /// A directory's children, once loaded.
    pub fn children(&self) -> Option<&Children> {
        self.dir.as_ref().map(|d| &d.children)
    }

    /// The inode numbers of a loaded directory's children (one per name: a file with two
    /// names here comes twice).
    pub fn child_inos(&self) -> impl Iterator<Item = Ino> + '_ {
        self.children()
            .into_iter()
            .flat_map(|c| c.iter().map(|&(ino, _)| ino))
    }
}

/// Inode numbers are indexes + 1 and are never reused while mounted.
pub struct Tree {
    nodes: Vec<Node>,
    /// The lower layers merged (replaced as a whole by a live change of the layers).
    pub lower: Arc<LowerTree>,
    /// Where `.pyc` files of the layers' modules are shared (see `overlay/bytecode.rs`).
    pub bytecode: Option<Arc<crate::bytecode::Stores>>,
    /// Stored `.pyc` files are shown as links to them (see `OverlayConfig::bytecode_links`).
    pub bytecode_links: bool,
    /// So are whole `__pycache__` directories where they can be (see
    /// `OverlayConfig::pycache_links`).
    pub pycache_links_on: bool,
    /// The files behind the bytecode nodes that are not in the upper layer.
    pub backings: HashMap<Ino, super::bytecode::Backing>,
    /// `__pycache__` nodes shown as links to a directory of the written store, with that
    /// directory (see `overlay/bytecode.rs`).
    pub pycache_links: HashMap<Ino, std::path::PathBuf>,
    /// Those of them whose store directory was made and checked in this mount.
    pub pycache_checked: parking_lot::Mutex<HashSet<Ino>>,
    /// Hashes names for the directories' [`Children`] (one for the mount: the lower tree,
    /// and its hasher, is replaced by a live change).
    hasher: dir_table::Hasher,
}

/// One entry of a directory's merged view.
pub struct Want {
    pub name: OsString,
    pub kind: FileKind,
    /// The upper layer has it.
    pub upper: bool,
    /// The upper entry is a reference (see [`Node::reference`]).
    pub reference: bool,
    /// The lower node it shows or merges (see [`Node::lower`]).
    pub lower: Option<u32>,
    /// See [`Node::bytecode`]; a stored `.pyc` comes with its file.
    pub bytecode: bool,
    pub stored: Option<super::bytecode::Backing>,
    /// A `__pycache__` shown as a link to this directory of the written store.
    pub link_dir: Option<std::path::PathBuf>,
}

impl Want {
    /// An entry of the upper layer or of the lower tree.
    pub fn new(name: OsString, kind: FileKind, upper: bool, lower: Option<u32>) -> Want {
        Want {
            name,
            kind,
            upper,
            reference: false,
            lower,
            bytecode: false,
            stored: None,
            link_dir: None,
        }
    }

    /// A node for this entry in directory `parent`.
    pub fn node(&self, parent: Ino) -> Node {
        let mut node = Node::new(parent, &self.name, self.kind, self.upper, self.lower);
        node.reference = self.reference;
        node.bytecode = self.bytecode;
        node
    }
}

impl Tree {
    pub fn new(
        lower: Arc<LowerTree>,
        bytecode: Option<Arc<crate::bytecode::Stores>>,
        bytecode_links: bool,
        pycache_links_on: bool,
    ) -> Tree {
        let root = Node::new(ROOT, OsStr::new(""), FileKind::Dir, true, Some(LOWER_ROOT));
        Tree {
            nodes: vec![root],
            lower,
            bytecode,
            bytecode_links,
            pycache_links_on,
            backings: HashMap::new(),
            pycache_links: HashMap::new(),
            pycache_checked: Default::default(),
            hasher: Default::default(),
        }
    }

    /// Adds a node for `want`, an entry of directory `parent` (not yet linked into its
    /// children).
    pub fn push_want(&mut self, parent: Ino, want: Want) -> Ino {
        let ino = self.push(want.node(parent));
        if let Some(b) = want.stored {
            self.backings.insert(ino, b);
        }
        if let Some(d) = want.link_dir {
            self.pycache_links.insert(ino, d);
        }
        ino
    }

    pub fn get(&self, ino: Ino) -> Result<&Node> {
        match self.nodes.get((ino as usize).wrapping_sub(1)) {
            Some(n) => Ok(n),
            None => Err(Error::StaleInode(ino)),
        }
    }

    pub fn get_mut(&mut self, ino: Ino) -> Result<&mut Node> {
        match self.nodes.get_mut((ino as usize).wrapping_sub(1)) {
            Some(n) => Ok(n),
            None => Err(Error::StaleInode(ino)),
        }
    }

    /// Every node's inode number.
    pub fn inos(&self) -> impl Iterator<Item = Ino> {
        1..=self.nodes.len() as Ino
    }

    /// Adds a node (not yet linked into its parent's children).
    pub fn push(&mut self, node: Node) -> Ino {
        self.nodes.push(node);
        self.nodes.len() as Ino
    }

    /// The venv-relative path of a node.
    pub fn path(&self, mut ino: Ino) -> Result<Rel> {
        let mut parts: Vec<&OsStr> = Vec::new();
        while ino != ROOT {
            let n = self.get(ino)?;
            if n.unlinked {
                return Err(Error::NotFound);
            }
            parts.push(&n.name);
            ino = n.parent;
        }
        // one buffer, sized once: this runs on every getattr of an upper entry
        let len = parts.iter().map(|p| p.len() + 1).sum::<usize>();
        let mut p = Rel::with_capacity(len);
        for part in parts.iter().rev() {
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(part.as_encoded_bytes());
        }
        Ok(p)
    }

    /// Whether `ancestor` is `ino` or one of the directories above it.
    pub fn is_ancestor(&self, ancestor: Ino, mut ino: Ino) -> Result<bool> {
        loop {
            if ino == ancestor {
                return Ok(true);
            }
            if ino == ROOT {
                return Ok(false);
            }
            ino = self.get(ino)?.parent;
        }
    }

    pub fn loaded(&self, ino: Ino) -> bool {
        self.get(ino).map(|n| n.dir.is_some()).unwrap_or(true)
    }

    /// How names compare on this mount.
    pub fn names(&self) -> NameRules {
        self.lower.names()
    }

    /// The key `name` is filed under in a directory's children.
    pub fn key<'a>(&self, name: &'a OsStr) -> Cow<'a, OsStr> {
        self.lower.names().key(name)
    }

    /// How the entry `name` of `parent` is spelled on disk and in listings: under
    /// case-insensitive rules an existing entry keeps its own spelling whatever a caller
    /// writes (`FOO` finds `foo`); otherwise, or for a new name, `name` itself.
    pub fn spelling<'a>(&self, parent: Ino, name: &'a OsStr) -> Cow<'a, OsStr> {
        if self.names().is_case_sensitive() {
            return Cow::Borrowed(name);
        }
        match self.child(parent, name) {
            Ok(Some(ino)) => match self.name_in(ino, parent, name) {
                Some(own) if own != name => Cow::Owned(own.to_owned()),
                _ => Cow::Borrowed(name),
            },
            _ => Cow::Borrowed(name),
        }
    }

    /// The name of node `ino` in directory `parent` that has the key of `name` (a node
    /// with hard links has several).
    fn name_in(&self, ino: Ino, parent: Ino, name: &OsStr) -> Option<&OsStr> {
        let node = self.get(ino).ok()?;
        if node.parent == parent && *node.name == *name {
            return Some(&node.name); // (the usual case, spared the key)
        }
        let names = self.names();
        std::iter::once((node.parent, &node.name))
            .chain(
                node.aliases
                    .iter()
                    .flat_map(|a| a.iter().map(|(p, n)| (*p, n))),
            )
            .find(|(p, n)| *p == parent && names.eq(n, name))
            .map(|(_, n)| &**n)
    }

    /// Files `ino` as `name` in the loaded directory `parent` (in place of the node filed
    /// under that name, if any). `ino` takes the name in the node itself afterwards, if it
    /// has not yet.
    pub fn insert_child(&mut self, parent: Ino, name: &OsStr, ino: Ino) -> Result<()> {
        let short = self.short(name);
        self.change_children(parent, |tree, c| {
            dir_table::file(c, short, ino, |&(i, h)| {
                h == short && tree.name_in(i, parent, name).is_some()
            })
        })
    }

    /// Looks a name up in a loaded directory.
    pub fn child(&self, parent: Ino, name: &OsStr) -> Result<Option<Ino>> {
        let p = self.get(parent)?;
        match p.children() {
            Some(c) => {
                let short = self.short(name);
                let same =
                    |&(i, h): &(Ino, u32)| h == short && self.name_in(i, parent, name).is_some();
                Ok(c.find(spread(short), same).map(|&(i, _)| i))
            }
            None if p.kind != FileKind::Dir => Err(Error::NotDir),
            None => Err(Error::Invalid("directory not loaded")),
        }
    }

    /// The entries of a loaded directory: each name it shows, with its node.
    pub fn entries(&self, dir: Ino) -> Result<Vec<(&OsStr, Ino)>> {
        let p = self.get(dir)?;
        let children = p.children().ok_or(Error::NotDir)?;
        let mut out = Vec::with_capacity(children.len());
        for &(ino, short) in children {
            let node = self.get(ino)?;
            let name = match &node.aliases {
                None => &node.name,
                // (a file with several names: the one of this directory this entry files;
                // two names of one file in one directory whose 32 bits are equal would
                // show the same name twice, a chance of 1 in 4 billion)
                Some(aliases) => std::iter::once((node.parent, &node.name))
                    .chain(aliases.iter().map(|(p, n)| (*p, n)))
                    .find(|(p, n)| *p == dir && self.short(n) == short)
                    .map_or(&node.name, |(_, n)| n),
            };
            out.push((&**name, ino));
        }
        Ok(out)
    }

    /// The 32 bits of the hash of `name`'s key a directory's [`Children`] keep.
    fn short(&self, name: &OsStr) -> u32 {
        self.hasher.short(&self.key(name))
    }

    /// Changes the children of loaded directory `parent` with `f`, which may read the rest
    /// of the tree (the children are taken out meanwhile); drops the directory's listing.
    fn change_children<R>(
        &mut self,
        parent: Ino,
        f: impl FnOnce(&Tree, &mut Children) -> R,
    ) -> Result<R> {
        let dir = self
            .get_mut(parent)?
            .dir
            .as_mut()
            .ok_or(Error::Invalid("directory not loaded"))?;
        *dir.listing.get_mut() = None;
        let mut children = std::mem::take(&mut dir.children);
        let r = f(self, &mut children);
        if let Some(dir) = self.get_mut(parent)?.dir.as_mut() {
            dir.children = children;
        }
        Ok(r)
    }

    /// Computes a directory's merged children from the upper and lower layers.
    pub fn load(&mut self, ino: Ino, upper: &dyn Upper) -> Result<()> {
        let node = self.get(ino)?;
        if node.dir.is_some() {
            return Ok(());
        }
        if node.kind != FileKind::Dir {
            return Err(Error::NotDir);
        }
        let wanted = self.wanted(ino, upper)?;
        let mut children = Children::with_capacity(wanted.len());
        for want in wanted {
            let short = self.short(&want.name);
            let child = self.push_want(ino, want);
            let name = &self.get(child)?.name;
            dir_table::file(&mut children, short, child, |&(i, h)| {
                h == short && self.name_in(i, ino, name).is_some()
            });
        }
        self.get_mut(ino)?.dir = Some(Box::new(Dir {
            children,
            listing: Mutex::default(),
        }));
        Ok(())
    }

    /// What directory `ino` holds in the merged view, read afresh from the upper directory
    /// (markers interpreted) and the lower tree.
    pub fn wanted(&self, ino: Ino, upper: &dyn Upper) -> Result<Vec<Want>> {
        let node = self.get(ino)?;
        let lower: &LowerTree = &self.lower;
        let lower_dir = node.lower;
        let mut wanted = Vec::new();
        // (keys: under case-insensitive rules `FOO` in the upper hides `foo` below)
        let mut hidden: HashSet<OsString> = HashSet::new();
        let names = self.names();
        if node.upper {
            let path = self.path(ino)?;
            let listing = upper.list(&path)?;
            for (name, mut kind) in listing.entries {
                let lower_child = lower_dir.and_then(|d| lower.child(d, &name));
                let reference =
                    kind == FileKind::Symlink && upper.is_reference(&join(&path, &name));
                if reference {
                    kind = FileKind::File;
                }
                let child_lower = if kind == FileKind::Dir {
                    let (opaque, redirect) = upper.markers(&join(&path, &name))?;
                    match redirect {
                        Some(origin) => lower.lookup_path(&origin),
                        None if opaque => None,
                        None => lower_child.filter(|&l| lower.node(l).kind == FileKind::Dir),
                    }
                } else {
                    None
                };
                hidden.insert(names.key(&name).into_owned());
                let mut want = Want::new(name, kind, true, child_lower);
                want.reference = reference;
                wanted.push(want);
            }
            hidden.extend(listing.whiteouts.iter().map(|w| names.key(w).into_owned()));
        }
        let mut modules = false;
        if let Some(d) = lower_dir {
            for (name, lid) in lower.children(d) {
                modules |= name.as_encoded_bytes().ends_with(b".py");
                if !hidden.contains(&*names.key(name)) {
                    let kind = lower.node(lid).kind;
                    wanted.push(Want::new(name.to_os_string(), kind, false, Some(lid)));
                }
            }
        }
        if node.bytecode {
            self.stored_wants(ino, &hidden, &mut wanted)?;
        } else if modules && self.bytecode.is_some() {
            self.pycache_want(ino, &hidden, &mut wanted);
        }
        Ok(wanted)
    }

    /// Removes the name `parent/name` of node `ino` (after unlink, rmdir, or being replaced
    /// by a rename). The node stays, marked unlinked, once its last name is gone, so open
    /// handles and the kernel's references stay valid.
    pub fn remove_name(&mut self, ino: Ino, parent: Ino, name: &OsStr) -> Result<()> {
        let names = self.names();
        let short = self.short(name);
        let _ = self.change_children(parent, |tree, c| {
            let this = |&(i, h): &(Ino, u32)| {
                h == short && i == ino && tree.name_in(i, parent, name).is_some()
            };
            if let Ok(slot) = c.find_entry(spread(short), this) {
                slot.remove();
            }
        });
        let node = self.get_mut(ino)?;
        if node.parent == parent && names.eq(&node.name, name) {
            match node.aliases.as_mut().and_then(|a| a.pop()) {
                Some((p, n)) => (node.parent, node.name) = (p, n),
                None => node.unlinked = true,
            }
        } else if let Some(a) = node.aliases.as_mut() {
            a.retain(|(p, n)| !(*p == parent && names.eq(n, name)));
        }
        if node.aliases.as_ref().is_some_and(|a| a.is_empty()) {
            node.aliases = None;
        }
        Ok(())
    }

    /// Moves the name `parent/name` of node `ino` to `new_parent/new_name`.
    pub fn move_name(&mut self, ino: Ino, from: (Ino, &OsStr), to: (Ino, &OsStr)) -> Result<()> {
        let names = self.names();
        let short = self.short(from.1);
        self.change_children(from.0, |tree, c| {
            let named =
                |&(i, h): &(Ino, u32)| h == short && tree.name_in(i, from.0, from.1).is_some();
            if let Ok(slot) = c.find_entry(spread(short), named) {
                slot.remove();
            }
        })?;
        self.insert_child(to.0, to.1, ino)?;
        let node = self.get_mut(ino)?;
        if node.parent == from.0 && names.eq(&node.name, from.1) {
            (node.parent, node.name) = (to.0, to.1.into());
        } else if let Some(alias) = node
            .aliases
            .iter_mut()
            .flat_map(|a| a.iter_mut())
            .find(|(p, n)| *p == from.0 && names.eq(n, from.1))
        {
            *alias = (to.0, to.1.into());
        }
        Ok(())
    }

    /// Adds another name for a file (a hard link).
    pub fn add_name(&mut self, ino: Ino, parent: Ino, name: &OsStr) -> Result<()> {
        self.insert_child(parent, name, ino)?;
        self.get_mut(ino)?
            .aliases
            .get_or_insert_with(Default::default)
            .push((parent, name.into()));
        Ok(())
    }
}
