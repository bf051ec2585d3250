//! The merged tree the mount shows: one node per name that has been looked at, keyed by
//! inode number. A directory's children are computed once, on first use, from the upper
//! directory (markers interpreted) and the lower tree; after that every change goes through
//! the overlay operations, which keep the in-memory children and the disk in step.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};
use parking_lot::Mutex;

use venvfs_api::{Error, FileKind, Ino, Result, ROOT};

use super::dirlist::Listing;
use crate::lower::{LowerTree, LOWER_ROOT};
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
}

/// A name of a node: its parent directory and the name in it.
pub type Name = (Ino, Box<OsStr>);

/// What a loaded directory node holds.
#[derive(Default)]
pub struct Dir {
    /// The merged children.
    pub children: HashMap<Box<OsStr>, Ino>,
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
            lower,
            dir: None,
            aliases: None,
        }
    }

    /// A directory's children, once loaded.
    pub fn children(&self) -> Option<&HashMap<Box<OsStr>, Ino>> {
        self.dir.as_ref().map(|d| &d.children)
    }
}

/// Inode numbers are indexes + 1 and are never reused while mounted.
pub struct Tree {
    nodes: Vec<Node>,
    /// The lower layers merged (replaced as a whole by a live change of the layers).
    pub lower: Arc<LowerTree>,
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
}

impl Want {
    /// A node for this entry in directory `parent`.
    pub fn node(&self, parent: Ino) -> Node {
        let mut node = Node::new(parent, &self.name, self.kind, self.upper, self.lower);
        node.reference = self.reference;
        node
    }
}

impl Tree {
    pub fn new(lower: Arc<LowerTree>) -> Tree {
        let root = Node::new(ROOT, OsStr::new(""), FileKind::Dir, true, Some(LOWER_ROOT));
        Tree {
            nodes: vec![root],
            lower,
        }
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

    /// Looks a name up in a loaded directory.
    pub fn child(&self, parent: Ino, name: &OsStr) -> Result<Option<Ino>> {
        let p = self.get(parent)?;
        match p.children() {
            Some(c) => Ok(c.get(name).copied()),
            None if p.kind != FileKind::Dir => Err(Error::NotDir),
            None => Err(Error::Invalid("directory not loaded")),
        }
    }

    /// A loaded directory's children, to change them.
    pub fn children_mut(&mut self, parent: Ino) -> Result<&mut HashMap<Box<OsStr>, Ino>> {
        let dir = self
            .get_mut(parent)?
            .dir
            .as_mut()
            .ok_or(Error::Invalid("directory not loaded"))?;
        *dir.listing.get_mut() = None;
        Ok(&mut dir.children)
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
        let mut children = HashMap::with_capacity(wanted.len());
        for want in wanted {
            let child = self.push(want.node(ino));
            children.insert(want.name.into_boxed_os_str(), child);
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
        let mut hidden = HashSet::new();
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
                hidden.insert(name.clone());
                wanted.push(Want {
                    name,
                    kind,
                    upper: true,
                    reference,
                    lower: child_lower,
                });
            }
            hidden.extend(listing.whiteouts);
        }
        if let Some(d) = lower_dir {
            for (name, lid) in lower.node(d).children() {
                if !hidden.contains(name) {
                    wanted.push(Want {
                        name: name.to_os_string(),
                        kind: lower.node(lid).kind,
                        upper: false,
                        reference: false,
                        lower: Some(lid),
                    });
                }
            }
        }
        Ok(wanted)
    }

    /// Removes the name `parent/name` of node `ino` (after unlink, rmdir, or being replaced
    /// by a rename). The node stays, marked unlinked, once its last name is gone, so open
    /// handles and the kernel's references stay valid.
    pub fn remove_name(&mut self, ino: Ino, parent: Ino, name: &OsStr) -> Result<()> {
        if let Ok(c) = self.children_mut(parent) {
            if c.get(name) == Some(&ino) {
                c.remove(name);
            }
        }
        let node = self.get_mut(ino)?;
        if node.parent == parent && *node.name == *name {
            match node.aliases.as_mut().and_then(|a| a.pop()) {
                Some((p, n)) => (node.parent, node.name) = (p, n),
                None => node.unlinked = true,
            }
        } else if let Some(a) = node.aliases.as_mut() {
            a.retain(|(p, n)| !(*p == parent && **n == *name));
        }
        if node.aliases.as_ref().is_some_and(|a| a.is_empty()) {
            node.aliases = None;
        }
        Ok(())
    }

    /// Moves the name `parent/name` of node `ino` to `new_parent/new_name`.
    pub fn move_name(&mut self, ino: Ino, from: (Ino, &OsStr), to: (Ino, &OsStr)) -> Result<()> {
        self.children_mut(from.0)?.remove(from.1);
        self.children_mut(to.0)?.insert(to.1.into(), ino);
        let node = self.get_mut(ino)?;
        if node.parent == from.0 && *node.name == *from.1 {
            (node.parent, node.name) = (to.0, to.1.into());
        } else if let Some(alias) = node
            .aliases
            .iter_mut()
            .flat_map(|a| a.iter_mut())
            .find(|(p, n)| *p == from.0 && **n == *from.1)
        {
            *alias = (to.0, to.1.into());
        }
        Ok(())
    }

    /// Adds another name for a file (a hard link).
    pub fn add_name(&mut self, ino: Ino, parent: Ino, name: &OsStr) -> Result<()> {
        self.children_mut(parent)?.insert(name.into(), ino);
        self.get_mut(ino)?
            .aliases
            .get_or_insert_with(Default::default)
            .push((parent, name.into()));
        Ok(())
    }
}
