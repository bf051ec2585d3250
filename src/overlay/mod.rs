//! The overlay: the merged view of the upper layer over the lower tree, and the operations
//! on it (lookup, read, write, create, rename, unlink, ...), in plain Rust types. The kernel
//! adapters in `platform/` drive it through [`venvfs_api::FileSystem`].

mod bytecode;
mod copyup;
mod dirlist;
mod io;
mod open_files;
mod ops;
mod origin;
mod prefetch;
mod reference;
mod reload;
mod remote_reads;
mod tree;

pub use origin::Origin;
pub use reload::Reloaded;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::RwLock;
use venvfs_api::{Attr, Caller, Entry, Error, FileKind, Ino, Result, ROOT};

use crate::layer::wheel::MemberCache;
use crate::layer::LayerError;
use crate::lower::LowerTree;
use crate::manifest::{Manifest, STATE_DIR};
use crate::rules::Rules;
use crate::upper::{join, References, Upper, WHITEOUT_PREFIX};
use open_files::OpenFiles;
use tree::Tree;

/// Tuning of an overlay; the defaults suit a venv.
#[derive(Clone, Debug)]
pub struct OverlayConfig {
    /// Kernel cache lifetime of lower entries and attributes (they cannot change while
    /// mounted, so this can be long).
    pub lower_ttl: Duration,
    /// The same for upper entries.
    pub upper_ttl: Duration,
    /// How long the kernel may remember that a name does not exist. Every creation goes
    /// through the mount, which updates the kernel's cache itself, so this can be long too.
    pub negative_ttl: Duration,
    /// Bytes of decompressed wheel members kept in memory.
    pub memory_budget: u64,
    /// Bytes of files on a network filesystem (directory layers, bytecode stores) kept in
    /// memory once read (see `overlay/remote_reads.rs`); 0: none.
    pub remote_read_budget: u64,
    /// Members larger than this are decompressed to a file in `spill_dir` instead.
    pub spill_threshold: u64,
    pub spill_dir: PathBuf,
    /// Read-only sources (uv's cache, the layers' directories) a symlink created in the
    /// venv may point into to be kept as a reference: shown as the file it points to,
    /// copied up on its first change (see `overlay/reference.rs`).
    pub reference_roots: Vec<PathBuf>,
    /// Where the upper layer lives, if not in the venv directory itself (a Dokan mount
    /// point must be an empty folder or a drive letter, so on Windows the upper lives
    /// apart). Its on-disk format is the same either way.
    pub upper_dir: Option<PathBuf>,
    /// Reach the upper by path through `std::fs` only ([`crate::upper::portable`]), as a
    /// Windows mount does, instead of through a directory descriptor.
    pub portable_upper: bool,
    /// The filesystem rules the mount follows: POSIX (the Linux mount), or Windows
    /// (case-insensitive names, share modes, delete pending; see [`crate::rules`]).
    pub rules: Rules,
    /// Where the `.pyc` files of the layers' modules are shared with other venvs (see
    /// `overlay/bytecode.rs`); `None`: each venv keeps its own.
    pub bytecode: Option<std::sync::Arc<crate::bytecode::Stores>>,
    /// Show the `.pyc` files found in the stores as symbolic links to them, rather than as
    /// files served through the mount: a program that opens one then reads the store's own
    /// file, with no request reaching the daemon (see `overlay/bytecode.rs`).
    pub bytecode_links: bool,
    /// With `bytecode_links`, also show a whole `__pycache__` as a link to the store's
    /// directory where it can be (see `overlay/bytecode.rs`): Python then writes the store
    /// itself, so only when the mount's users are its owner, who may write it.
    pub pycache_links: bool,
}

impl Default for OverlayConfig {
    fn default() -> Self {
        OverlayConfig {
            lower_ttl: Duration::from_secs(24 * 3600),
            upper_ttl: Duration::from_secs(24 * 3600),
            negative_ttl: Duration::from_secs(24 * 3600),
            memory_budget: 256 << 20,
            remote_read_budget: 256 << 20,
            spill_threshold: 4 << 20,
            spill_dir: std::env::temp_dir(),
            reference_roots: Vec::new(),
            upper_dir: None,
            portable_upper: false,
            rules: Rules::posix(),
            bytecode: None,
            bytecode_links: false,
            pycache_links: false,
        }
    }
}

/// Told of changes made through the mount that its owner acts on later (the Linux daemon
/// folds uv's links into layers once uv is done).
pub trait Watch: Send + Sync {
    /// A link into a read-only source was made (a reference: see `reference.rs`).
    fn reference_made(&self);
    /// An installer (uv, pip) finished writing a distribution: a `RECORD` was made in a
    /// `.dist-info` directory.
    fn distribution_written(&self) {}
    /// A name was made in the upper layer (created, renamed or linked there): whoever
    /// installs is not done yet.
    fn entry_made(&self) {}
}

pub struct Overlay {
    tree: RwLock<Tree>,
    /// Who is told of changes (see [`Watch`]), once set.
    watch: std::sync::OnceLock<std::sync::Arc<dyn Watch>>,
    /// How many names were made in the upper layer through the mount (see
    /// [`Overlay::names_made`]).
    names_made: std::sync::atomic::AtomicU64,
    /// The targets of symbolic links of the venv's own directory, read once (see
    /// `Overlay::readlink`).
    link_targets: parking_lot::Mutex<foldhash::HashMap<Ino, std::ffi::OsString>>,
    upper: Box<dyn Upper>,
    /// Where the manifest is (layer sources named relative to it resolve from there).
    manifest_path: PathBuf,
    members: MemberCache,
    remote_reads: remote_reads::RemoteReads,
    prefetch: prefetch::Prefetch,
    /// The kernel's caches of the mount, once mounted (see [`Overlay::set_kernel_cache`]).
    kernel: std::sync::OnceLock<std::sync::Arc<dyn venvfs_api::KernelCache>>,
    open_files: OpenFiles,
    uid: u32,
    gid: u32,
    cfg: OverlayConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("cannot open the venv directory {path} as the upper layer: {source}\n  venvfs writes every change into the venv's own directory, so whoever mounts a venv must be able to write it: mount a venv of your own (a shared venv is mounted by its owner, with `--allow-other` for others to use it)")]
    Upper {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot take the venv's new layers: {0}")]
    Reload(#[from] venvfs_api::Error),
}

impl Overlay {
    /// Opens every layer of `manifest` and the upper layer: the venv directory `venv`
    /// itself, or `cfg.upper_dir`. Must be called before the mount covers the upper.
    pub fn new(venv: &Path, manifest: &Manifest, cfg: OverlayConfig) -> Result<Overlay, OpenError> {
        let manifest_path = crate::manifest::manifest_path(venv);
        let lower = LowerTree::build(manifest, &manifest_path, cfg.rules.names())?;
        let upper_dir = cfg.upper_dir.as_deref().unwrap_or(venv);
        let references = References::new(cfg.reference_roots.clone(), venv);
        let upper = if cfg.portable_upper {
            crate::upper::open_portable(upper_dir, references)
        } else {
            crate::upper::open(upper_dir, references)
        }
        .map_err(|source| OpenError::Upper {
            path: upper_dir.to_owned(),
            source,
        })?;
        let remote_reads = remote_reads::RemoteReads::new(cfg.remote_read_budget);
        // (asked now rather than at a first read, which may come in any later import)
        for store in cfg.bytecode.iter().flat_map(|s| &s.read) {
            remote_reads.keeps(store);
        }
        Ok(Overlay {
            watch: std::sync::OnceLock::new(),
            names_made: Default::default(),
            link_targets: Default::default(),
            tree: RwLock::new(Tree::new(
                std::sync::Arc::new(lower),
                cfg.bytecode.clone(),
                cfg.bytecode_links,
                cfg.bytecode_links && cfg.pycache_links,
            )),
            upper,
            manifest_path,
            members: MemberCache::new(
                cfg.memory_budget,
                cfg.spill_threshold,
                cfg.spill_dir.clone(),
            ),
            remote_reads,
            prefetch: prefetch::Prefetch::default(),
            kernel: Default::default(),
            open_files: OpenFiles::default(),
            uid: owner().0,
            gid: owner().1,
            cfg,
        })
    }

    /// How many names were made in the upper layer (created, renamed or linked there)
    /// through the mount so far: a count to compare with an earlier one, for a thread that
    /// would otherwise look at the venv's own directory over and over to find a file made
    /// anew (on a network filesystem each look is a request to the server).
    pub fn names_made(&self) -> u64 {
        self.names_made.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Tells `watch` of the changes [`Watch`] names from now on (once per overlay).
    pub fn set_watch(&self, watch: std::sync::Arc<dyn Watch>) {
        let _ = self.watch.set(watch);
    }

    /// Gives the overlay the kernel's caches of its mount, for the few changes it makes of
    /// its own accord that the kernel must hear of (see `overlay/bytecode.rs`).
    pub fn set_kernel_cache(&self, cache: std::sync::Arc<dyn venvfs_api::KernelCache>) {
        let _ = self.kernel.set(cache);
    }

    /// The merged lower tree (for status and benchmarks).
    pub fn lower(&self) -> std::sync::Arc<LowerTree> {
        std::sync::Arc::clone(&self.tree.read().lower)
    }

    pub fn upper(&self) -> &dyn Upper {
        &*self.upper
    }

    /// Attributes of a node: the upper file's own `stat`, or the lower entry's recorded ones.
    fn attr(&self, tree: &Tree, ino: Ino) -> Result<Attr> {
        let node = tree.get(ino)?;
        if node.bytecode && !node.upper {
            return self.bytecode_attr(tree, ino);
        }
        if node.upper {
            return Ok(match tree.path(ino) {
                Ok(path) if node.reference => self.reference_attr(&path, ino)?,
                Ok(path) => self.upper.attr(&path, ino)?,
                Err(_) if node.reference => self.kept_reference_attr(ino)?,
                // Unlinked but still held: reached through its pinned open file, or (a
                // directory) by the attributes kept when it was removed.
                Err(_) => match self.open_files.upper(ino, false) {
                    Some(f) => self.upper.file_attr(&f.file, ino)?,
                    None => return self.open_files.frozen_attr(ino).ok_or(Error::NotFound),
                },
            });
        }
        let Some(lid) = node.lower else {
            // a file of a layer that a live change removed, still held open
            return self.open_files.frozen_attr(ino).ok_or(Error::NotFound);
        };
        let mut attr = self.lower_attr(&tree.lower, lid, ino);
        if node.unlinked {
            // (a layer's file the venv removed while it was open: no name links to it)
            attr.nlink = 0;
        }
        Ok(attr)
    }

    /// The attributes of lower node `lid` of `lower`, as node `ino`.
    fn lower_attr(&self, lower: &LowerTree, lid: u32, ino: Ino) -> Attr {
        let l = lower.node(lid);
        let (size, nlink) = match l.kind {
            FileKind::Dir => (4096, 2),
            FileKind::Symlink => (lower.target(lid).map_or(0, |t| t.len() as u64), 1),
            _ => (l.size, 1),
        };
        Attr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: l.mtime,
            mtime: l.mtime,
            ctime: l.mtime,
            crtime: l.mtime,
            kind: l.kind,
            perm: l.perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
        }
    }

    fn entry(&self, tree: &Tree, ino: Ino) -> Result<Entry> {
        let attr = self.attr(tree, ino)?;
        let node = tree.get(ino)?;
        let ttl = if node.upper {
            self.cfg.upper_ttl
        } else if node.bytecode && node.kind == FileKind::File && tree.bytecode_links {
            // (a `.pyc` written through the mount: once stored, its name shows a link to
            // the stored file, which the kernel must look the name up again to find)
            Duration::ZERO
        } else {
            self.cfg.lower_ttl
        };
        Ok(Entry { attr, ttl })
    }

    /// Runs `f` with the tree read-locked and `dir` loaded.
    fn with_loaded<R>(&self, dir: Ino, f: impl FnOnce(&Tree) -> Result<R>) -> Result<R> {
        {
            let tree = self.tree.read();
            if tree.loaded(dir) {
                return f(&tree);
            }
        }
        let mut tree = self.tree.write();
        tree.load(dir, &*self.upper)?;
        f(&tree)
    }

    /// Write-locks the tree with the given directories loaded.
    fn write_loaded(&self, dirs: &[Ino]) -> Result<parking_lot::RwLockWriteGuard<'_, Tree>> {
        let mut tree = self.tree.write();
        for &d in dirs {
            tree.load(d, &*self.upper)?;
        }
        Ok(tree)
    }

    /// Another daemon on the same venv directory (another host, over a shared filesystem)
    /// made `parent/name` since this one loaded `parent`: the upper refused a name that the
    /// tree in memory has free. Takes `parent`'s names afresh from the upper and the layers
    /// (as a reload does), and `name` itself from the upper when the listing does not show
    /// it yet (a network filesystem may serve a directory's listing from a cache of its
    /// own, as sshfs does for 20 s), so that the other's entry shows from now on instead of
    /// staying hidden until the next mount.
    fn take_others_entries(&self, tree: &mut Tree, parent: Ino, name: &OsStr) -> Result<()> {
        self.upper.forget_attrs(); // (`parent` changed beneath this daemon)
        let lower = std::sync::Arc::clone(&tree.lower);
        let (mut subdirs, mut forget) = (Vec::new(), Vec::new());
        self.reconcile(
            tree,
            &lower,
            parent,
            &std::collections::HashSet::new(),
            &mut subdirs,
            &mut forget,
        )?;
        if tree.child(parent, name)?.is_none() {
            let path = path_with(tree, parent, name)?;
            let Ok(attr) = self.upper.attr(&path, 0) else {
                return Ok(()); // (gone again meanwhile)
            };
            let reference = attr.kind == FileKind::Symlink && self.upper.is_reference(&path);
            let below = tree.get(parent)?.lower.and_then(|d| lower.child(d, name));
            let lower_dir = match attr.kind {
                FileKind::Dir => match self.upper.markers(&path)? {
                    (_, Some(origin)) => lower.lookup_path(&origin),
                    (true, None) => None,
                    (false, None) => below.filter(|&l| lower.node(l).kind == FileKind::Dir),
                },
                _ => None,
            };
            let kind = if reference { FileKind::File } else { attr.kind };
            let mut node = tree::Node::new(parent, name, kind, true, lower_dir);
            node.reference = reference;
            let ino = tree.push(node);
            tree.insert_child(parent, name, ino)?;
            forget.push((parent, name.to_owned()));
        }
        if !forget.is_empty() {
            tracing::info!(
                "{} names changed by another daemon on the venv directory, taken in",
                forget.len()
            );
        }
        Ok(())
    }

    /// Whether a lower layer has an entry at `parent/name` that a whiteout must hide once the
    /// name is removed or replaced.
    fn covers_lower(&self, tree: &Tree, parent: Ino, name: &OsStr) -> Result<bool> {
        let lower_dir = tree.get(parent)?.lower;
        Ok(lower_dir.and_then(|d| tree.lower.child(d, name)).is_some())
    }

    /// Gives a newly made upper entry to the caller, as a root daemon serving other users must.
    fn chown_to_caller(&self, caller: &Caller, path: &[u8]) -> Result<()> {
        if self.uid == 0 && (caller.uid != 0 || caller.gid != 0) {
            self.upper.chown(path, Some(caller.uid), Some(caller.gid))?;
        }
        Ok(())
    }
}

/// The longest name (bytes) the overlay accepts, as Linux filesystems do.
pub const NAME_MAX: usize = 255;

/// Refuses names the overlay keeps for itself (compared as the mount's rules compare
/// names), and names the mount's rules do not allow.
fn check_name(rules: Rules, parent: Ino, name: &OsStr) -> Result<()> {
    if name.len() > NAME_MAX {
        return Err(Error::NameTooLong);
    }
    let names = rules.names();
    let key = names.key(name);
    let key = key.as_encoded_bytes();
    let reserved = |what: &str| key == names.key(OsStr::new(what)).as_encoded_bytes();
    if key.starts_with(&names.key(OsStr::new(".wh.")).as_encoded_bytes()[..WHITEOUT_PREFIX.len()]) {
        return Err(Error::Invalid(
            "names starting with .wh. are reserved for venvfs whiteouts",
        ));
    }
    if reserved(crate::venv::UNMOUNTED_GUARD) {
        return Err(Error::NotPermitted(
            "the name is reserved for venvfs's unmounted-venv guard",
        ));
    }
    if parent == ROOT && reserved(STATE_DIR) {
        return Err(Error::NotPermitted(
            "the venv's .venvfs directory is reserved for venvfs",
        ));
    }
    Ok(rules.check_new_name(name)?)
}

fn path_with(tree: &Tree, parent: Ino, name: &OsStr) -> Result<Vec<u8>> {
    Ok(join(&tree.path(parent)?, name))
}

/// Who owns what the layers show: the user serving the mount (on Windows, where files
/// have no POSIX owner, 0).
fn owner() -> (u32, u32) {
    #[cfg(unix)]
    return (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    #[cfg(not(unix))]
    (0, 0)
}
