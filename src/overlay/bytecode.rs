//! Shared bytecode in the mount: the `__pycache__` of a directory with modules from the
//! layers shows the `.pyc` files the bytecode stores hold for them (see
//! [`crate::bytecode`]), and what Python writes there for such a module goes to the store
//! instead of the venv's own directory.
//!
//! - A directory whose lower entries include modules (`*.py`) has a `__pycache__` entry
//!   (a bytecode directory node): the upper one if the venv has one, else one of no layer.
//!   It is listed only once it holds something, as a `__pycache__` only appears natively
//!   once Python wrote into it.
//! - Its `.pyc` entries for modules the venv shows from a layer come from the stores,
//!   checked against the module (magic, timestamp, size) before they are shown. A name
//!   the directory does not hold yet is looked for in the stores on each lookup (the
//!   kernel is told not to remember that it is missing): a `.pyc` another venv compiled
//!   meanwhile shows at once (from a store on a network filesystem, within a minute:
//!   `bytecode/misses.rs`).
//! - Python writes a `.pyc` as `<name>.<number>` and renames it to `<name>`: such a file,
//!   for a module of a layer, is made in the written store under a temporary name of
//!   the daemon's own, and the rename puts it in place there if it is a valid `.pyc` of
//!   the module and the name is free. When another venv put one there first, the file
//!   written stays the one this name shows for this mount (a file the kernel knows by
//!   its size must not change under it) and is removed at unmount.
//! - Anything else (a module the venv changed, a file of another name, a hash-based
//!   `.pyc`, a change to a stored file) goes to the venv's own directory, as it did before.
//! - Where stored files show as links, a `__pycache__` whose directory has modules of one
//!   layer only, and none of the venv's own, is itself a link to the written store's
//!   directory for them (when that store is the only one): Python finds, checks and
//!   writes the `.pyc` files there, and a fresh mount answers a lookup and a link read per
//!   directory instead of per module. Before the kernel first goes through such a link
//!   the daemon makes the directory and removes from it what does not match the modules
//!   (Python would fail an import on a corrupt `.pyc`). When a module of the venv's own
//!   appears there, the link becomes a bytecode directory node.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::Arc;

use venvfs_api::{Attr, Caller, Entry, Error, FileKind, Ino, Lookup, OpenRequest, Opened, Result};

use super::open_files::{Desc, UpperFile};
use super::tree::{Tree, Want};
use super::Overlay;
use crate::bytecode::{Source, Stores};

/// The name of the directories bytecode goes in.
pub const PYCACHE: &str = "__pycache__";

/// The file behind a bytecode node that is not in the upper layer.
#[derive(Debug, Clone)]
pub struct Backing {
    pub path: PathBuf,
    /// The file as it was found valid in a store; `None` for a file this daemon made (a
    /// temporary name of the written store, the node's own).
    pub stored: Option<std::fs::Metadata>,
}

impl Tree {
    /// Adds the `__pycache__` of directory `ino`, which has lower modules, to its entries
    /// `wanted` (`hidden`: the keys of its upper entries and whiteouts): marks the upper
    /// one, or adds one of no layer: a link to the store's directory for it where one can
    /// be (see [`Tree::pycache_link`]), else a bytecode directory.
    pub(super) fn pycache_want(
        &self,
        ino: Ino,
        hidden: &std::collections::HashSet<OsString>,
        wanted: &mut Vec<Want>,
    ) {
        let names = self.names();
        let upper_modules = wanted
            .iter()
            .any(|w| w.upper && w.name.as_encoded_bytes().ends_with(b".py"));
        let pycache = OsStr::new(PYCACHE);
        if let Some(w) = wanted.iter_mut().find(|w| names.eq(&w.name, pycache)) {
            // (the venv's own: it merges the stored ones; a layer's own is left alone)
            w.bytecode = w.upper && w.kind == FileKind::Dir;
            return;
        }
        if hidden.contains(&*names.key(pycache)) {
            return; // (a whiteout)
        }
        let mut want = match self.pycache_link(ino).filter(|_| !upper_modules) {
            Some(dir) => {
                let mut want = Want::new(pycache.into(), FileKind::Symlink, false, None);
                want.link_dir = Some(dir);
                want
            }
            None => Want::new(pycache.into(), FileKind::Dir, false, None),
        };
        want.bytecode = true;
        wanted.push(want);
    }

    /// The directory of the written store that the `__pycache__` of directory `ino` can
    /// be a link to (when the venv has no module of its own there: see
    /// [`Tree::pycache_want`]): when the mount shows such links (its users may write the
    /// store), the written store is the only one (a link shows one directory), and the
    /// directory's modules all come from one layer. Python then finds, validates
    /// and writes the `.pyc` files there itself, with no request reaching the daemon, and
    /// a fresh mount pays a lookup and a link read per directory instead of per module.
    fn pycache_link(&self, ino: Ino) -> Option<PathBuf> {
        let stores = self.bytecode.as_deref()?;
        let write = stores.write.as_ref()?;
        if !self.pycache_links_on || stores.read.len() != 1 {
            return None;
        }
        let [layer] = self.module_layers(ino)[..] else {
            return None;
        };
        let path = self.path(ino).ok()?;
        Some(Stores::dir_in(
            write,
            &self.lower.keys[layer as usize],
            &path,
        ))
    }

    /// Adds to the entries `wanted` of bytecode directory `ino` the stored `.pyc` files
    /// of the modules of its parent, except those the upper layer has (`hidden`).
    pub(super) fn stored_wants(
        &self,
        ino: Ino,
        hidden: &std::collections::HashSet<OsString>,
        wanted: &mut Vec<Want>,
    ) -> Result<()> {
        let Some(stores) = self.bytecode.as_deref() else {
            return Ok(());
        };
        let dir = self.get(ino)?.parent;
        let dir_path = self.path(dir)?;
        let names = self.names();
        for layer in self.module_layers(dir) {
            let key = &self.lower.keys[layer as usize];
            let source = |src: &OsStr| match self.lower_source(dir, src) {
                Some((l, s)) if l == layer => Some(s),
                _ => None,
            };
            for (name, stored) in stores.list(key, &dir_path, source) {
                if hidden.contains(&*names.key(&name)) {
                    continue;
                }
                wanted.push(self.stored_want(name, stored));
            }
        }
        Ok(())
    }

    /// The entry of `.pyc` file `stored` of a store, named `name`: the file, or a link to
    /// it (see [`Tree::bytecode_links`]).
    fn stored_want(&self, name: OsString, stored: crate::bytecode::Stored) -> Want {
        let kind = match self.bytecode_links {
            true => FileKind::Symlink,
            false => FileKind::File,
        };
        let mut want = Want::new(name, kind, false, None);
        want.bytecode = true;
        want.stored = Some(Backing {
            path: stored.path,
            stored: Some(stored.meta),
        });
        want
    }

    /// The target of bytecode link `ino`: the stored file's path, or the store's directory
    /// a `__pycache__` link shows.
    pub(super) fn bytecode_target(&self, ino: Ino) -> Option<&std::path::Path> {
        if let Some(dir) = self.pycache_links.get(&ino) {
            return Some(dir);
        }
        let b = self.backings.get(&ino)?;
        b.stored.as_ref().map(|_| b.path.as_path())
    }

    /// The layers that hold modules of loaded directory `dir`.
    fn module_layers(&self, dir: Ino) -> Vec<u32> {
        let mut layers: Vec<u32> = Vec::new();
        let Some(d) = self.get(dir).ok().and_then(|n| n.lower) else {
            return layers;
        };
        for (name, lid) in self.lower.children(d) {
            let layer = self.lower.node(lid).layer;
            if name.as_encoded_bytes().ends_with(b".py") && !layers.contains(&layer) {
                layers.push(layer);
            }
        }
        layers
    }

    /// The module `name` of loaded directory `dir`, if the venv shows it from a layer
    /// (unchanged): its layer, and what its `.pyc` must match.
    pub(super) fn lower_source(&self, dir: Ino, name: &OsStr) -> Option<(u32, Source)> {
        let n = self.get(self.child(dir, name).ok()??).ok()?;
        if n.upper || n.kind != FileKind::File {
            return None;
        }
        let l = self.lower.node(n.lower?);
        Some((
            l.layer,
            Source {
                mtime: l.mtime,
                size: l.size,
            },
        ))
    }

    /// Whether bytecode directory `ino` (of no layer, not in the upper) holds something a
    /// listing of its parent should show it for.
    pub(super) fn pycache_listed(&self, ino: Ino) -> bool {
        let Ok(node) = self.get(ino) else {
            return false;
        };
        if let Some(dir) = self.pycache_links.get(&ino) {
            // (as a `__pycache__` appears natively: once Python wrote into it)
            return std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
        }
        if !node.bytecode || node.upper || node.kind != FileKind::Dir {
            return true;
        }
        if let Some(c) = node.children() {
            return !c.is_empty();
        }
        let (Some(stores), Ok(dir_path)) = (self.bytecode.as_deref(), self.path(node.parent))
        else {
            return false;
        };
        self.module_layers(node.parent).iter().any(|&layer| {
            let key = &self.lower.keys[layer as usize];
            stores
                .read
                .iter()
                .any(|s| Stores::dir_in(s, key, &dir_path).is_dir())
        })
    }
}

impl Overlay {
    fn stores(&self) -> Option<&Stores> {
        self.cfg.bytecode.as_deref()
    }

    /// A lookup of `name`, which loaded directory `parent` does not hold: a `.pyc` some
    /// venv stored since the directory was loaded, or the `__pycache__` a removal took
    /// away (Python looks it up before writing into it). `None`: nothing of bytecode.
    pub(super) fn lookup_bytecode(&self, parent: Ino, name: &OsStr) -> Result<Option<Lookup>> {
        let Some(stores) = self.stores() else {
            return Ok(None);
        };
        // (most names missing are none of bytecode's: a read lock tells)
        if !self.tree.read().get(parent)?.bytecode
            && !self.cfg.rules.names().eq(name, OsStr::new(PYCACHE))
        {
            return Ok(None);
        }
        let missing = Lookup::Missing {
            ttl: std::time::Duration::ZERO,
        };
        let mut tree = self.tree.write();
        let p = tree.get(parent)?;
        if p.bytecode && p.kind == FileKind::Dir {
            let dir = p.parent;
            let Some(src) = stores.source_name(name) else {
                return Ok(Some(missing));
            };
            let Some((layer, source)) = tree.lower_source(dir, &src) else {
                return Ok(Some(missing));
            };
            let dir_path = tree.path(dir)?;
            let key = &tree.lower.keys[layer as usize];
            let Some(stored) = stores.find(key, &dir_path, name, &source) else {
                return Ok(Some(missing));
            };
            if tree.child(parent, name)?.is_some() {
                // (made meanwhile, by another lookup)
                return Ok(None);
            }
            let want = tree.stored_want(name.into(), stored);
            let ino = tree.push_want(parent, want);
            tree.insert_child(parent, name, ino)?;
            return Ok(Some(Lookup::Found(self.entry(&tree, ino)?)));
        }
        let names = tree.names();
        let has_modules = p.lower.is_some_and(|d| {
            tree.lower
                .children(d)
                .any(|(n, _)| n.as_encoded_bytes().ends_with(b".py"))
        });
        if !names.eq(name, OsStr::new(PYCACHE)) || !has_modules {
            return Ok(None);
        }
        if tree.child(parent, name)?.is_some() {
            return Ok(None);
        }
        let mut want = Want::new(PYCACHE.into(), FileKind::Dir, false, None);
        want.bytecode = true;
        let ino = tree.push_want(parent, want);
        tree.insert_child(parent, name, ino)?;
        Ok(Some(Lookup::Found(self.entry(&tree, ino)?)))
    }

    /// The attributes of bytecode node `ino` that is not in the upper layer.
    pub(super) fn bytecode_attr(&self, tree: &Tree, ino: Ino) -> Result<Attr> {
        let node = tree.get(ino)?;
        let link_dir = tree.pycache_links.get(&ino);
        if node.kind == FileKind::Dir || link_dir.is_some() {
            // as its parent's lower directory
            let parent = tree.get(node.parent)?;
            let mut attr = match parent.lower {
                Some(lid) => self.lower_attr(&tree.lower, lid, ino),
                None => self.attr(tree, node.parent)?,
            };
            attr.ino = ino;
            attr.perm = 0o755;
            if let Some(dir) = link_dir {
                as_link_to(&mut attr, dir);
            }
            return Ok(attr);
        }
        // (a stored file never changes: its attributes are those it was checked with)
        if let Some(b) = tree.backings.get(&ino).filter(|b| b.stored.is_some()) {
            let meta = b.stored.as_ref().expect("stored");
            let mut attr = crate::upper::portable::attr_from_metadata(ino, meta);
            if node.kind == FileKind::Symlink {
                as_link_to(&mut attr, &b.path);
            }
            return Ok(attr);
        }
        let file = self.bytecode_file(tree, ino, false)?;
        self.upper.file_attr(&file.file, ino).map_err(Into::into)
    }

    /// The open file behind bytecode node `ino` (not in the upper layer): for writing,
    /// only a file this daemon is making.
    pub(super) fn bytecode_file(&self, tree: &Tree, ino: Ino, write: bool) -> Result<UpperFile> {
        if let Some(f) = self.open_files.upper(ino, write) {
            return Ok(f);
        }
        let backing = tree.backings.get(&ino).ok_or(Error::NotFound)?;
        let file = match &backing.stored {
            None => std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&backing.path)?,
            Some(_) if write => return Err(Error::AccessDenied("a shared .pyc")),
            Some(meta) => {
                let stored = crate::bytecode::Stored {
                    path: backing.path.clone(),
                    meta: meta.clone(),
                };
                let stores = self.stores().ok_or(Error::NotFound)?;
                // (None: removed or replaced in the store since the kernel learned its size)
                stores.open_checked(&stored)?.ok_or(Error::NotFound)?
            }
        };
        let f = UpperFile {
            file: Arc::new(file),
            writable: backing.stored.is_none(),
        };
        self.open_files.put(ino, Desc::Upper(f.clone()));
        Ok(f)
    }

    /// Creates `name` in bytecode directory `parent` in the written store when it is a
    /// `.pyc` (or Python's temporary name for one) of a module of a layer; `None` when it
    /// belongs in the venv's own directory.
    pub(super) fn create_bytecode(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &OsStr,
        req: &OpenRequest,
    ) -> Result<Option<(Entry, Opened)>> {
        let _ = caller;
        let Some(stores) = self.stores().filter(|s| s.write.is_some()) else {
            return Ok(None);
        };
        if self.cfg.rules.share_modes() {
            return Ok(None);
        }
        let pyc = stores.final_name(name).map(OsStr::new).unwrap_or(name);
        let Some(src) = stores.source_name(pyc) else {
            return Ok(None);
        };
        let mut tree = self.write_loaded(&[parent])?;
        let p = tree.get(parent)?;
        if !p.bytecode || p.kind != FileKind::Dir {
            return Ok(None);
        }
        let dir = p.parent;
        let Some((layer, _)) = tree.lower_source(dir, &src) else {
            return Ok(None);
        };
        if tree.child(parent, name)?.is_some() {
            return Err(Error::Exists(name.to_owned()));
        }
        super::check_name(self.cfg.rules, parent, name)?;
        let key = tree.lower.keys[layer as usize].clone();
        let (file, path) = match stores.create_temp(&key, &tree.path(dir)?) {
            Ok(made) => made,
            Err(e) => {
                tracing::debug!("bytecode store: cannot make a file ({e}); into the venv");
                return Ok(None);
            }
        };
        let mut want = Want::new(name.into(), FileKind::File, false, None);
        want.bytecode = true;
        want.stored = Some(Backing { path, stored: None });
        let ino = tree.push_want(parent, want);
        tree.insert_child(parent, name, ino)?;
        let file = UpperFile {
            file: Arc::new(file),
            writable: true,
        };
        let fh = self
            .open_files
            .open(ino, req.access, Some(Desc::Upper(file)));
        let entry = self.entry(&tree, ino)?;
        Ok(Some((
            entry,
            Opened {
                fh,
                keep_cache: false,
                backing: None,
            },
        )))
    }

    /// A rename of bytecode file `src` (not in the upper layer) to `new_parent/new_name`,
    /// replacing `dst`: a file this daemon made, renamed to the `.pyc` name of its module
    /// in the same directory, goes in place in the store (see the module's comment).
    /// `false`: the rename is an ordinary one (the file was moved to the venv's own
    /// directory for it).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn rename_bytecode(
        &self,
        tree: &mut Tree,
        src: Ino,
        from: (Ino, &OsStr),
        new_parent: Ino,
        new_name: &OsStr,
        dst: Option<Ino>,
    ) -> Result<bool> {
        let published = (|| {
            let stores = self.stores()?;
            let backing = tree.backings.get(&src)?;
            if backing.stored.is_some() || from.0 != new_parent {
                return None;
            }
            let dir = tree.get(new_parent).ok()?.parent;
            let src_name = stores.source_name(new_name)?;
            let (_, source) = tree.lower_source(dir, &src_name)?;
            match stores.publish(&backing.path, new_name, &source) {
                Ok(Some(stored)) => Some(Backing {
                    path: stored.path,
                    stored: Some(stored.meta),
                }),
                // another writer's is in place: this one stays the node's own
                Ok(None) => Some(backing.clone()),
                Err(why) => {
                    tracing::debug!("{new_name:?} not shared: {why}");
                    None
                }
            }
        })();
        let Some(backing) = published else {
            self.bytecode_to_upper(tree, src)?;
            return Ok(false);
        };
        let stored = backing.stored.clone().map(|meta| crate::bytecode::Stored {
            path: backing.path.clone(),
            meta,
        });
        tree.backings.insert(src, backing);
        if let Some(d) = dst {
            let dn = tree.get(d)?;
            if dn.upper && dn.kind == FileKind::File {
                let path = super::path_with(tree, new_parent, new_name)?;
                self.unlinking(tree, d)?;
                self.upper.unlink(&path)?;
            }
            tree.remove_name(d, new_parent, new_name)?;
        }
        match stored {
            // The name shows a link to the stored file; the file written stays what the
            // kernel knows by the name until it looks the name up again, which it does at
            // its next use of it (such a file's entry has a zero TTL: `Overlay::entry`).
            Some(stored) if tree.bytecode_links => {
                tree.remove_name(src, from.0, from.1)?;
                let want = tree.stored_want(new_name.into(), stored);
                let link = tree.push_want(new_parent, want);
                tree.insert_child(new_parent, new_name, link)?;
            }
            _ => tree.move_name(src, from, (new_parent, new_name))?,
        }
        Ok(true)
    }

    /// Makes bytecode file `ino` an ordinary upper file at its name (for a change the
    /// store does not take), with its content.
    pub(super) fn bytecode_to_upper(&self, tree: &mut Tree, ino: Ino) -> Result<()> {
        let node = tree.get(ino)?;
        if node.upper || !node.bytecode || node.kind == FileKind::Dir {
            return Ok(());
        }
        let parent = node.parent;
        let link = node.kind == FileKind::Symlink;
        self.copy_up_dir(tree, parent)?;
        let path = tree.path(ino)?;
        if link {
            // (a link stays the link it was shown as)
            let target = tree.bytecode_target(ino).ok_or(Error::NotFound)?;
            self.upper.symlink(target.as_os_str(), &path)?;
            tree.backings.remove(&ino);
            tree.pycache_links.remove(&ino);
            let node = tree.get_mut(ino)?;
            node.upper = true;
            node.bytecode = false;
            return Ok(());
        }
        let source = self.bytecode_file(tree, ino, false)?;
        let attr = self.upper.file_attr(&source.file, ino)?;
        let tmp = self.upper.temp();
        let result = (|| -> Result<()> {
            let mut out = self.upper.create_file(&tmp, 0o600)?;
            std::io::copy(&mut &*source.file, &mut out)?;
            self.upper
                .set_file_meta(&out, attr.perm, Some(attr.mtime))?;
            self.upper.rename(&tmp, &path, false)?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = self.upper.remove_if_present(&tmp);
            return Err(e);
        }
        if let Some(b) = tree.backings.remove(&ino) {
            if b.stored.is_none() {
                let _ = std::fs::remove_file(&b.path);
            }
        }
        let node = tree.get_mut(ino)?;
        node.upper = true;
        node.bytecode = false;
        self.open_files.copied_up(ino);
        Ok(())
    }

    /// Makes the store's directory that `__pycache__` link `ino` shows, once per mount,
    /// and takes out of it what Python must not find there (see
    /// [`Stores::prepare_dir`]): the kernel reads a link before it goes through it.
    pub(super) fn check_pycache_dir(&self, tree: &Tree, ino: Ino) {
        let (Some(stores), Some(at)) = (self.stores(), tree.pycache_links.get(&ino)) else {
            return;
        };
        // (held while checking: a second reader must not go through to a missing directory)
        let mut checked = tree.pycache_checked.lock();
        if !checked.insert(ino) {
            return;
        }
        let Ok(dir) = tree.get(ino).map(|n| n.parent) else {
            return;
        };
        let sources = |src: &OsStr| tree.lower_source(dir, src).map(|(_, s)| s);
        if let Err(e) = stores.prepare_dir(at, sources) {
            tracing::warn!("cannot prepare {} for bytecode: {e}", at.display());
        }
    }

    /// `dir/name` is now an entry of the upper layer (made, copied up, renamed or linked
    /// there): when it is a module, a `__pycache__` of `dir` shown as a link into the
    /// store becomes a bytecode directory, so that the module gets a `.pyc` of its own in
    /// the venv (through the link, Python would write it into the store). The kernel is
    /// told to forget the link, from a thread of its own: the request under way may hold
    /// the directory's lock. (A module removed needs nothing: nothing imports it.)
    pub(super) fn module_changed(&self, tree: &mut Tree, dir: Ino, name: &OsStr) -> Result<()> {
        if tree.pycache_links.is_empty() || !name.as_encoded_bytes().ends_with(b".py") {
            return Ok(());
        }
        let pycache = OsStr::new(PYCACHE);
        if tree.get(dir)?.children().is_none() {
            return Ok(()); // (not loaded: nothing of it shown yet)
        }
        let Some(link) = tree.child(dir, pycache)? else {
            return Ok(());
        };
        if !tree.pycache_links.contains_key(&link) {
            return Ok(());
        }
        tree.remove_name(link, dir, pycache)?;
        let mut want = Want::new(pycache.into(), FileKind::Dir, false, None);
        want.bytecode = true;
        let ino = tree.push_want(dir, want);
        tree.insert_child(dir, pycache, ino)?;
        if let Some(cache) = self.kernel.get().cloned() {
            std::thread::spawn(move || cache.invalidate_entry(dir, OsStr::new(PYCACHE)));
        }
        Ok(())
    }

    /// Removes bytecode file `ino` (not in the upper layer): a file this daemon made, or
    /// one of the written store (a `.pyc` is derived data: the next import makes it
    /// again). One of a store only read cannot be removed.
    pub(super) fn unlink_bytecode(&self, tree: &mut Tree, ino: Ino) -> Result<()> {
        if tree.pycache_links.contains_key(&ino) {
            return Ok(()); // (only the link: the store's directory serves other venvs)
        }
        let backing = tree.backings.get(&ino).ok_or(Error::NotFound)?;
        let removable =
            backing.stored.is_none() || self.stores().is_some_and(|s| s.writes(&backing.path));
        if !removable {
            return Err(Error::NotPermitted(
                "a .pyc of a bytecode store that is only read",
            ));
        }
        // (whoever holds it open keeps reading it)
        let _ = self.bytecode_file(tree, ino, false);
        match std::fs::remove_file(&backing.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Whether loaded-or-not directory `ino` is empty for a removal: `__pycache__`
    /// entries that hold nothing (bytecode directories of no layer) do not count.
    pub(super) fn empty_for_removal(&self, tree: &mut Tree, ino: Ino) -> Result<bool> {
        tree.load(ino, &*self.upper)?;
        let children: Vec<Ino> = tree.get(ino)?.child_inos().collect();
        for child in children {
            if let Some(dir) = tree.pycache_links.get(&child) {
                if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
                    return Ok(false);
                }
                continue;
            }
            let n = tree.get(child)?;
            if !(n.bytecode && !n.upper && n.kind == FileKind::Dir) {
                return Ok(false);
            }
            tree.load(child, &*self.upper)?;
            if !tree.get(child)?.children().is_some_and(|c| c.is_empty()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Removes the files this daemon made in the written store that no name of the store
    /// took (at unmount).
    pub fn remove_bytecode_temps(&self) {
        let tree = self.tree.read();
        for b in tree.backings.values() {
            if b.stored.is_none() {
                let _ = std::fs::remove_file(&b.path);
            }
        }
    }
}

/// Makes `attr` those of a symbolic link to `target` (a bytecode link: to a stored file, or
/// to a store's directory).
fn as_link_to(attr: &mut Attr, target: &std::path::Path) {
    attr.kind = FileKind::Symlink;
    attr.size = target.as_os_str().len() as u64;
    attr.blocks = 0;
    attr.perm = 0o777;
    attr.nlink = 1;
}
