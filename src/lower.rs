//! The merged lower tree: every read-only layer's files at their venv paths, built in memory
//! once at mount so that lookups, `stat` and directory listings of lower entries never touch
//! the cache's filesystem (which may be slow or remote).
//!
//! Layers are merged top first: the first layer to place a file at a path owns it;
//! directories are the union of all layers' directories (namespace packages such as
//! `sphinxcontrib/` show every distribution's modules).

use std::ffi::OsStr;
use std::path::Path;
use std::time::SystemTime;

use venvfs_api::FileKind;

use crate::dir_table::{self, spread};
use crate::layer::{LayerEntry, LayerError, Source};
use crate::manifest::Manifest;
use crate::rules::NameRules;

/// The name rules of the platform venvfs runs on, for a tree a command builds outside a
/// mount (POSIX's case-sensitive names; Windows' case-insensitive ones there).
pub fn native_names() -> NameRules {
    if cfg!(windows) {
        crate::rules::Rules::windows().names()
    } else {
        crate::rules::Rules::posix().names()
    }
}

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
    /// Path inside a directory layer ("" for implicit directories and wheel members).
    pub src: Box<str>,
    pub member: Option<u32>,
    /// A directory's entries (see [`Children`]; boxed: most nodes are files, and an empty
    /// table still takes 32 bytes).
    children: Option<Box<Children>>,
    /// Set for directories that no layer lists itself, only creates by holding files below.
    pub implicit: bool,
}

impl LowerNode {
    /// A directory's entries' nodes.
    pub fn child_ids(&self) -> impl Iterator<Item = LowerId> + '_ {
        self.children
            .iter()
            .flat_map(|c| c.iter().map(|&(id, _)| id))
    }
}

/// A directory's entries, by their names' keys under the tree's [`NameRules`] (the name
/// itself under POSIX rules; a node keeps the spelling shown): see `dir_table`.
type Children = dir_table::Table<LowerId>;

pub struct LowerTree {
    pub nodes: Vec<LowerNode>,
    pub layers: Vec<Source>,
    /// `name==version` (or the source path) of each layer, for messages.
    pub labels: Vec<String>,
    /// Each layer's source (what a lower file's identity is relative to).
    pub origins: Vec<std::path::PathBuf>,
    /// Each layer's key in the bytecode stores (see [`crate::bytecode::layer_key`]).
    pub keys: Vec<String>,
    /// How names compare: which entries of different layers are one.
    names: NameRules,
    /// Hashes names' keys for the directories' [`Children`] tables.
    hasher: dir_table::Hasher,
    /// The targets of symbolic links, by node (beside the nodes: wheels have next to
    /// none, and a field would cost every node 16 bytes).
    targets: foldhash::HashMap<LowerId, Box<OsStr>>,
}

impl LowerTree {
    /// Opens every layer of the manifest and merges them. Fails, naming the layer, if any
    /// layer is missing, unreadable or unsafe.
    /// Names compare under `names`: under Windows rules `Foo/` of one layer and `foo/`
    /// of another are one directory (shown as the first layer spells it).
    pub fn build(
        manifest: &Manifest,
        manifest_path: &Path,
        names: NameRules,
    ) -> Result<LowerTree, LayerError> {
        let mut tree = LowerTree {
            nodes: Vec::new(),
            layers: Vec::new(),
            labels: Vec::new(),
            origins: Vec::new(),
            keys: Vec::new(),
            names,
            hasher: Default::default(),
            targets: Default::default(),
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
        // The generated layer first: under the venv's own files, above every wheel.
        let generated = manifest
            .generated_path(manifest_path)
            .map(crate::layer::generated::layer);
        let layers: Vec<&crate::manifest::Layer> =
            generated.iter().chain(&manifest.layers).collect();
        crate::parallel::for_each_in_order(
            &layers,
            |l| open(l),
            |i, opened| {
                let (source, entries, layer_mtime) = opened?;
                let layer = layers[i];
                let mut last_dir = None;
                let mut dest: Vec<&str> = Vec::new();
                for entry in &entries {
                    if let Some((to, rest)) = layer.destination_parts(&entry.rel) {
                        dest.clear();
                        let parts = to.split('/').chain(rest.split('/'));
                        dest.extend(parts.filter(|p| !p.is_empty()));
                        last_dir = tree.insert(&dest, entry, i as u32, layer_mtime, last_dir);
                    }
                }
                tree.layers.push(source);
                tree.labels.push(match generated.is_some() && i == 0 {
                    true => crate::layer::generated::LABEL.to_owned(),
                    false => layer.label(),
                });
                tree.origins.push(layer.source.clone());
                tree.keys.push(crate::bytecode::layer_key(&layer.source));
                Ok(())
            },
        )?;
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
            origins: Vec::new(),
            keys: Vec::new(),
            names: NameRules::Posix,
            hasher: Default::default(),
            targets: Default::default(),
        }
    }

    /// The labels of the manifest's `[[layer]]`s, without the generated layer's (what
    /// `status` counts as the venv's layers).
    pub fn layer_labels(&self) -> Vec<String> {
        self.labels[self.first_wheel()..].to_vec()
    }

    /// The source of each layer, as [`LowerTree::layer_labels`] lists them (the generated
    /// layer, in the venv's own directory, aside).
    pub fn layer_origins(&self) -> &[std::path::PathBuf] {
        &self.origins[self.first_wheel()..]
    }

    /// The index of the first layer that is not the generated layer.
    fn first_wheel(&self) -> usize {
        let generated = self
            .labels
            .first()
            .is_some_and(|l| l == crate::layer::generated::LABEL);
        generated as usize
    }

    /// How this tree compares names.
    pub fn names(&self) -> NameRules {
        self.names
    }

    /// A directory's entries: (name as shown, node).
    pub fn children(&self, dir: LowerId) -> impl Iterator<Item = (&OsStr, LowerId)> {
        self.nodes[dir as usize]
            .child_ids()
            .map(|id| (&*self.nodes[id as usize].name, id))
    }

    /// Places `entry` at the venv path `dest` (its components), creating the directories
    /// on the way. A layer lists a directory's entries one after the other, so `hint` (the
    /// directory of the previous entry, as this returned it) usually spares the walk from
    /// the root.
    fn insert(
        &mut self,
        dest: &[&str],
        entry: &LayerEntry,
        layer: u32,
        layer_mtime: SystemTime,
        hint: Option<(LowerId, usize)>,
    ) -> Option<(LowerId, usize)> {
        let (&last, dirs) = dest.split_last()?;
        let parent = match hint {
            Some((id, depth)) if depth == dirs.len() && self.is_at(id, dirs) => id,
            _ => {
                let mut cur = LOWER_ROOT;
                for part in dirs {
                    cur = self.dir_child(cur, part, layer, layer_mtime)?;
                }
                cur
            }
        };
        let name = OsStr::new(last);
        if let Some(child) = self.child(parent, name) {
            let existing = &mut self.nodes[child as usize];
            if existing.kind == FileKind::Dir && entry.kind == FileKind::Dir && existing.implicit {
                existing.perm = entry.perm;
                existing.mtime = entry.mtime;
                existing.implicit = false;
            }
            // otherwise a higher layer has it: it hides this entry
            return Some((parent, dirs.len()));
        }
        let id = self.nodes.len() as LowerId;
        if let Some(t) = &entry.target {
            self.targets.insert(id, t.as_os_str().into());
        }
        self.nodes.push(LowerNode {
            name: name.into(),
            parent,
            kind: entry.kind,
            perm: entry.perm,
            size: entry.size,
            mtime: entry.mtime,
            layer,
            // (a wheel member is found by its index: its name needs no second copy)
            src: match entry.member {
                Some(_) => "".into(),
                None => entry.rel.as_str().into(),
            },
            member: entry.member,
            children: None,
            implicit: false,
        });
        self.add_child(parent, name, id);
        Some((parent, dirs.len()))
    }

    /// The directory `name` in `dir`, made (implicit) if missing; `None` if a higher layer
    /// put a file there, which hides everything this layer has below it.
    fn dir_child(
        &mut self,
        dir: LowerId,
        name: &str,
        layer: u32,
        mtime: SystemTime,
    ) -> Option<LowerId> {
        let name = OsStr::new(name);
        if let Some(child) = self.child(dir, name) {
            return (self.nodes[child as usize].kind == FileKind::Dir).then_some(child);
        }
        let id = self.nodes.len() as LowerId;
        self.nodes.push(dir_node(name, dir, layer, mtime));
        self.add_child(dir, name, id);
        Some(id)
    }

    /// Whether node `id` is at the venv path `dirs`, compared from the node up.
    fn is_at(&self, mut id: LowerId, dirs: &[&str]) -> bool {
        for part in dirs.iter().rev() {
            let n = &self.nodes[id as usize];
            if n.name.as_encoded_bytes() != part.as_bytes() {
                return false;
            }
            id = n.parent;
        }
        id == LOWER_ROOT
    }

    pub fn node(&self, id: LowerId) -> &LowerNode {
        &self.nodes[id as usize]
    }

    /// The target of symbolic link `id` (None for other kinds).
    pub fn target(&self, id: LowerId) -> Option<&OsStr> {
        self.targets.get(&id).map(|t| &**t)
    }

    pub fn child(&self, dir: LowerId, name: &OsStr) -> Option<LowerId> {
        let children = self.nodes[dir as usize].children.as_deref()?;
        let key = self.names.key(name);
        let short = self.hasher.short(&key);
        let same = |&(id, h): &(LowerId, u32)| {
            h == short && *self.names.key(&self.nodes[id as usize].name) == *key
        };
        children.find(spread(short), same).map(|&(id, _)| id)
    }

    /// Enters node `id`, named `name`, in directory `dir`'s table (which has no entry of
    /// that name).
    fn add_child(&mut self, dir: LowerId, name: &OsStr, id: LowerId) {
        let short = self.hasher.short(&self.names.key(name));
        self.nodes[dir as usize]
            .children
            .get_or_insert_with(Default::default)
            .insert_unique(spread(short), (id, short), |&(_, h)| spread(h));
    }

    /// Looks up a venv-relative path ("a/b/c" as bytes).
    pub fn lookup_path(&self, path: &[u8]) -> Option<LowerId> {
        let mut cur = LOWER_ROOT;
        for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            cur = self.child(cur, crate::fsutil::os_str_from_bytes(part)?)?;
        }
        Some(cur)
    }

    /// The venv-relative path of a node, as bytes.
    pub fn path_of(&self, mut id: LowerId) -> Vec<u8> {
        let mut parts: Vec<&[u8]> = Vec::new();
        while id != LOWER_ROOT {
            let n = self.node(id);
            parts.push(n.name.as_encoded_bytes());
            id = n.parent;
        }
        parts.reverse();
        parts.join(&b'/')
    }

    /// What a lower file is, independent of this tree's numbering: the same file of the
    /// same layer source compares equal across trees built from different manifests.
    pub fn identity(&self, id: LowerId) -> (&std::path::Path, &str, Option<u32>, u64, SystemTime) {
        let n = self.node(id);
        (
            &self.origins[n.layer as usize],
            &n.src,
            n.member,
            n.size,
            n.mtime,
        )
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
        children: None,
        implicit: true,
    }
}
