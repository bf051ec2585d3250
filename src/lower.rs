//! The merged lower tree: every read-only layer's files at their venv paths, built in memory
//! once at mount so that lookups, `stat` and directory listings of lower entries never touch
//! the cache's filesystem (which may be slow or remote).
//!
//! Layers are merged top first: the first layer to place a file at a path owns it;
//! directories are the union of all layers' directories (namespace packages such as
//! `sphinxcontrib/` show every distribution's modules).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

use venvfs_api::FileKind;

use crate::layer::{LayerEntry, LayerError, Source};
use crate::manifest::Manifest;

pub type LowerId = u32;
/// The venv root in the lower tree.
pub const LOWER_ROOT: LowerId = 0;

pub struct LowerNode {
    pub name: Box<OsStr>,
    pub parent: LowerId,
    pub kind: FileKind,
    pub perm: u16,
    pub size: u64,
    pub mtime: SystemTime,
    /// Index of the layer in [`LowerTree::layers`]; for implicit directories the first layer
    /// that needed them.
    pub layer: u32,
    /// Path inside the layer ("" for implicit directories).
    pub src: Box<str>,
    pub member: Option<u32>,
    pub target: Option<Box<OsStr>>,
    pub children: HashMap<Box<OsStr>, LowerId>,
    /// Set for directories that no layer lists itself, only creates by holding files below.
    pub implicit: bool,
}

pub struct LowerTree {
    pub nodes: Vec<LowerNode>,
    pub layers: Vec<Source>,
    /// `name==version` (or the source path) of each layer, for messages.
    pub labels: Vec<String>,
}

impl LowerTree {
    /// Opens every layer of the manifest and merges them. Fails, naming the layer, if any
    /// layer is missing, unreadable or unsafe.
    pub fn build(manifest: &Manifest, manifest_path: &Path) -> Result<LowerTree, LayerError> {
        let mut tree = LowerTree {
            nodes: Vec::new(),
            layers: Vec::new(),
            labels: Vec::new(),
        };
        tree.nodes.push(dir_node(
            OsStr::new(""),
            LOWER_ROOT,
            0,
            SystemTime::UNIX_EPOCH,
        ));
        // Listing a layer is mostly waiting on the filesystem (more so a network one):
        // a few threads list layers ahead while this one merges them in order.
        let open = |layer: &crate::manifest::Layer| {
            let (source, entries) = Source::open(layer, manifest_path)?;
            let mtime = std::fs::metadata(&layer.source)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            Ok((source, entries, mtime))
        };
        // Listing a layer is mostly waiting on the filesystem: a few threads list layers
        // ahead while this one merges them, in the manifest's order.
        crate::parallel::for_each_in_order(&manifest.layers, open, |i, opened| {
            let (source, entries, layer_mtime) = opened?;
            let layer = &manifest.layers[i];
            for entry in entries {
                if let Some(dest) = layer.destination(&entry.rel) {
                    tree.insert(&dest, &entry, i as u32, layer_mtime);
                }
            }
            tree.layers.push(source);
            tree.labels.push(layer.label());
            Ok(())
        })?;
        Ok(tree)
    }

    /// An empty tree (a venv with no layers).
    pub fn empty() -> LowerTree {
        LowerTree {
            nodes: vec![dir_node(
                OsStr::new(""),
                LOWER_ROOT,
                0,
                SystemTime::UNIX_EPOCH,
            )],
            layers: Vec::new(),
            labels: Vec::new(),
        }
    }

    fn insert(&mut self, dest: &str, entry: &LayerEntry, layer: u32, layer_mtime: SystemTime) {
        let mut cur = LOWER_ROOT;
        let mut parts = dest.split('/').filter(|p| !p.is_empty()).peekable();
        if parts.peek().is_none() {
            return; // the venv root itself: nothing to record
        }
        while let Some(part) = parts.next() {
            let last = parts.peek().is_none();
            let name = OsStr::new(part);
            if let Some(&child) = self.nodes[cur as usize].children.get(name) {
                let existing = &mut self.nodes[child as usize];
                if existing.kind != FileKind::Dir {
                    return; // a higher layer put a file here; it hides this entry
                }
                if last {
                    if entry.kind == FileKind::Dir && existing.implicit {
                        existing.perm = entry.perm;
                        existing.mtime = entry.mtime;
                        existing.implicit = false;
                    }
                    return;
                }
                cur = child;
                continue;
            }
            let id = self.nodes.len() as LowerId;
            let node = if last {
                LowerNode {
                    name: name.into(),
                    parent: cur,
                    kind: entry.kind,
                    perm: entry.perm,
                    size: entry.size,
                    mtime: entry.mtime,
                    layer,
                    src: entry.rel.as_str().into(),
                    member: entry.member,
                    target: entry.target.as_deref().map(Into::into),
                    children: HashMap::new(),
                    implicit: false,
                }
            } else {
                dir_node(name, cur, layer, layer_mtime)
            };
            self.nodes.push(node);
            self.nodes[cur as usize].children.insert(name.into(), id);
            cur = id;
        }
    }

    pub fn node(&self, id: LowerId) -> &LowerNode {
        &self.nodes[id as usize]
    }

    pub fn child(&self, dir: LowerId, name: &OsStr) -> Option<LowerId> {
        self.nodes[dir as usize].children.get(name).copied()
    }

    /// Looks up a venv-relative path ("a/b/c" as bytes).
    pub fn lookup_path(&self, path: &[u8]) -> Option<LowerId> {
        let mut cur = LOWER_ROOT;
        for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            cur = self.child(cur, OsStr::from_bytes(part))?;
        }
        Some(cur)
    }

    /// The venv-relative path of a node, as bytes.
    pub fn path_of(&self, mut id: LowerId) -> Vec<u8> {
        let mut parts: Vec<&[u8]> = Vec::new();
        while id != LOWER_ROOT {
            let n = self.node(id);
            parts.push(n.name.as_bytes());
            id = n.parent;
        }
        parts.reverse();
        parts.join(&b'/')
    }

    /// Number of entries (for `status` and benchmarks).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }
}

fn dir_node(name: &OsStr, parent: LowerId, layer: u32, mtime: SystemTime) -> LowerNode {
    LowerNode {
        name: name.into(),
        parent,
        kind: FileKind::Dir,
        perm: 0o755,
        size: 4096,
        mtime,
        layer,
        src: "".into(),
        member: None,
        target: None,
        children: HashMap::new(),
        implicit: true,
    }
}
