//! The filesystem operations, as the kernel adapters call them.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::Arc;

use venvfs_api::{
    Allocate, Caller, DirEntry, Entry, Error, Fh, FileKind, FileSystem, Ino, Lookup, OpenRequest,
    Opened, RenameFlags, Result, SetAttr, StatFs, XattrReply, XattrSet, ROOT,
};

use super::io::PASSTHROUGH_MIN;
use super::open_files::{Desc, WindowsOpen};
use super::tree::{Node, Tree};
use super::{check_name, path_with, Overlay};
use crate::manifest::{MANIFEST_FILE, STATE_DIR};
use crate::rules::{CleanupAction, DeleteTarget};
use crate::upper::{join, whiteout_name, OPAQUE, REDIRECT};

/// How many targets of the venv's own links the daemon keeps (a venv has a handful:
/// `bin/python` and its kin, `lib64`; uv's links into its cache are references, not these).
const KEPT_LINKS: usize = 4096;

/// How a new entry is made in the upper layer.
enum Make<'a> {
    Dir(u16),
    Node(FileKind, u16, u64),
    Symlink(&'a Path),
}

impl Overlay {
    /// Creates `parent/name` in the upper layer, hiding any lower entry of that name.
    fn make_entry(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &OsStr,
        make: Make<'_>,
    ) -> Result<Entry> {
        let (mut tree, path, covers) = self.prepare_create(parent, name)?;
        let made = (|| -> std::io::Result<FileKind> {
            Ok(match make {
                Make::Dir(mode) if covers => {
                    // A directory made where a lower one was deleted must not show the old
                    // content: build it opaque in the work dir, then move it into place.
                    let tmp = self.upper.temp();
                    self.upper.mkdir(&tmp, mode as u32)?;
                    self.upper.touch(&join(&tmp, OsStr::new(OPAQUE)))?;
                    self.upper.rename(&tmp, &path, true)?;
                    FileKind::Dir
                }
                Make::Dir(mode) => {
                    self.upper.mkdir(&path, mode as u32)?;
                    FileKind::Dir
                }
                Make::Node(kind, perm, rdev) => {
                    self.upper.mknod(&path, kind, perm, rdev)?;
                    kind
                }
                Make::Symlink(target) => {
                    self.upper.symlink(target.as_os_str(), &path)?;
                    FileKind::Symlink
                }
            })
        })();
        let kind = match made {
            Ok(kind) => kind,
            // (another host made the name meanwhile: it shows from now on)
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                self.take_others_entries(&mut tree, parent, name)?;
                return Err(Error::Exists(name.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        self.finish_create(&mut tree, caller, parent, name, kind, covers)
    }

    /// Checks that `parent/name` can be created and readies the parent in the upper layer.
    /// Returns the locked tree, the new entry's upper path, and whether a lower entry of
    /// that name is hidden by a whiteout (which the new entry will replace).
    fn prepare_create(
        &self,
        parent: Ino,
        name: &OsStr,
    ) -> Result<(parking_lot::RwLockWriteGuard<'_, Tree>, Vec<u8>, bool)> {
        check_name(self.cfg.rules, parent, name)?;
        let mut tree = self.write_loaded(&[parent])?;
        if tree.child(parent, name)?.is_some() {
            return Err(Error::Exists(name.to_owned()));
        }
        self.copy_up_dir(&mut tree, parent)?;
        let path = path_with(&tree, parent, name)?;
        let covers = self.covers_lower(&tree, parent, name)?;
        Ok((tree, path, covers))
    }

    /// Records a created upper entry: drops the whiteout it replaces, gives it to the caller
    /// and links a node for it.
    fn finish_create(
        &self,
        tree: &mut Tree,
        caller: &Caller,
        parent: Ino,
        name: &OsStr,
        kind: FileKind,
        covers: bool,
    ) -> Result<Entry> {
        let path = path_with(tree, parent, name)?;
        if covers {
            let wh = path_with(tree, parent, &whiteout_name(name))?;
            self.upper.remove_if_present(&wh)?;
        }
        self.chown_to_caller(caller, &path)?;
        let mut node = Node::new(parent, name, kind, true, None);
        if kind == FileKind::Dir {
            node.dir = Some(Default::default()); // new and empty: nothing to load
        }
        let ino = tree.push(node);
        tree.insert_child(parent, name, ino)?;
        self.entry_made(tree, parent, name)?;
        self.entry(tree, ino)
    }

    /// `dir/name` is a new name in the upper layer (made, renamed or linked there): it is
    /// counted, a module's bytecode link gives way (see `bytecode.rs`), and the watch is told, and
    /// told apart when it is a distribution's `.dist-info/RECORD` (an installer writes it
    /// last; pip also extracts the wheel's own first).
    fn entry_made(&self, tree: &mut Tree, dir: Ino, name: &OsStr) -> Result<()> {
        self.names_made
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        if let Some(watch) = self.watch.get() {
            watch.entry_made();
            let dist_info = || {
                tree.get(dir)
                    .is_ok_and(|d| d.name.as_encoded_bytes().ends_with(b".dist-info"))
            };
            if name == "RECORD" && dist_info() {
                watch.distribution_written();
            }
        }
        self.module_changed(tree, dir, name)
    }

    /// Writes a whiteout for `parent/name` if a lower entry of that name exists.
    fn whiteout_if_needed(&self, tree: &mut Tree, parent: Ino, name: &OsStr) -> Result<()> {
        if self.covers_lower(tree, parent, name)? {
            self.copy_up_dir(tree, parent)?;
            self.upper
                .touch(&path_with(tree, parent, &whiteout_name(name))?)?;
        }
        Ok(())
    }

    /// After a removal from `parent`: when that emptied the venv's root (`rm -rf .venv`,
    /// `uv venv --clear`, `python -m venv --clear` through the mount), the venv holds
    /// nothing, so its manifest is committed without layers: they would otherwise come
    /// back on any later mount beside a venv made afresh in the same directory. The view
    /// does not change (whiteouts at the root hide every layer entry until the next
    /// mount, after which no layer is left to hide), so the tree in memory is left as it
    /// is. A failure only leaves the layers hidden, as they already are: logged, and the
    /// removal stands.
    fn forget_layers_if_emptied(&self, tree: &Tree, parent: Ino) {
        let emptied = parent == ROOT
            && tree
                .get(ROOT)
                .is_ok_and(|n| n.children().is_some_and(|c| c.is_empty()));
        if !emptied || tree.lower.labels.is_empty() {
            return;
        }
        let manifest = join(STATE_DIR.as_bytes(), OsStr::new(MANIFEST_FILE));
        let none = crate::manifest::Manifest::default().to_toml();
        match self.upper.write_atomic(&manifest, none.as_bytes()) {
            Ok(()) => tracing::info!(
                "every entry of the venv was removed: its {} layers are dropped from the manifest",
                tree.lower.labels.len()
            ),
            Err(e) => tracing::warn!(
                "every entry of the venv was removed, but its manifest could not be emptied: {e}"
            ),
        }
    }

    /// Opens `ino` as `req` asks; under Windows rules `reserved` is the handle already
    /// counted for it.
    fn open_as(&self, ino: Ino, req: &OpenRequest, reserved: Option<Fh>) -> Result<Opened> {
        if req.changes_content() {
            let file = {
                let mut tree = self.tree.write();
                self.copy_up_file(&mut tree, ino, !req.truncate)?;
                self.upper_file_in(&tree, ino, true)?
            };
            if req.truncate {
                file.file.set_len(0)?;
            }
            return Ok(Opened {
                fh: self.handle_for(ino, req.access, Some(Desc::Upper(file)), reserved),
                keep_cache: false,
                backing: None,
            });
        }
        let big_lower = {
            let tree = self.tree.read();
            let node = tree.get(ino)?;
            let lid = node.lower.filter(|_| !node.upper).filter(|&lid| {
                // Only big files are worth a backing file for passthrough: the kernel
                // forgets a file's atime after each passthrough read, so the next stat of
                // it costs a round trip.
                let l = tree.lower.node(lid);
                l.size >= PASSTHROUGH_MIN && l.member.is_none()
            });
            lid.map(|lid| (Arc::clone(&tree.lower), lid))
        };
        // Opening a small file costs nothing: it is reached when a read needs it, which
        // the page cache mostly spares.
        let (desc, backing) = match big_lower {
            Some((lower, lid)) => {
                let content = self.lower_content(&lower, ino, lid)?;
                let backing = content.backing_file();
                (Some(Desc::Lower(content)), backing)
            }
            None => (None, None),
        };
        Ok(Opened {
            fh: self.handle_for(ino, req.access, desc, reserved),
            keep_cache: true,
            backing,
        })
    }

    /// The handle of an open of `ino` whose descriptor (if it needs one) is `desc`: a new
    /// one, or `reserved` given the descriptor.
    fn handle_for(
        &self,
        ino: Ino,
        access: venvfs_api::Access,
        desc: Option<Desc>,
        reserved: Option<Fh>,
    ) -> Fh {
        match reserved {
            None => self.open_files.open(ino, access, desc),
            Some(fh) => {
                if let Some(d) = desc {
                    self.open_files.put(ino, d);
                }
                fh
            }
        }
    }

    /// What an open of `ino` counts under Windows rules; `None` under POSIX rules.
    fn windows_open(&self, ino: Ino, req: &OpenRequest) -> Result<Option<WindowsOpen>> {
        if !self.cfg.rules.share_modes() {
            return Ok(None);
        }
        let share = req.share.unwrap_or(venvfs_api::ShareMode::ALL);
        Ok(Some(WindowsOpen {
            access: crate::rules::Access {
                read: req.access.reads(),
                write: req.access.writes() || req.truncate,
                delete: req.delete || req.delete_on_close,
            },
            share: crate::rules::Share {
                read: share.read,
                write: share.write,
                delete: share.delete,
            },
            delete_on_close: req.delete_on_close,
            target: self.delete_target(ino)?,
        }))
    }

    /// File `ino` as far as deleting it is concerned: read-only? an empty directory?
    fn delete_target(&self, ino: Ino) -> Result<DeleteTarget> {
        let attr = self.getattr(ino)?.attr;
        let directory_empty = match attr.kind {
            FileKind::Dir => Some(self.with_loaded(ino, |tree| {
                Ok(tree.get(ino)?.children().is_some_and(|c| c.is_empty()))
            })?),
            _ => None,
        };
        Ok(DeleteTarget {
            read_only: attr.perm & 0o222 == 0,
            directory_empty,
        })
    }

    /// Deletes file `ino`, whose last handle went while it was marked for deletion
    /// (Windows rules): the name it has now.
    fn delete_on_release(&self, ino: Ino) {
        let name = {
            let tree = self.tree.read();
            match tree.get(ino) {
                Ok(n) if !n.unlinked => Some((n.parent, n.name.to_os_string(), n.kind)),
                _ => None,
            }
        };
        let Some((parent, name, kind)) = name else {
            return;
        };
        let deleted = if kind == FileKind::Dir {
            self.rmdir(parent, &name)
        } else {
            self.unlink(parent, &name)
        };
        if let Err(e) = deleted {
            tracing::warn!("cannot delete {name:?} at its last close: {e}");
        }
    }

    /// Upper directory `ino` is about to lose its name (rmdir, or replaced by a rename).
    /// Open handles keep it a directory to their holders, but unlike a file it has no open
    /// descriptor to be stat'ed through once its path is gone: while something holds it,
    /// its attributes are kept as they are now (as for a node a live change detached).
    fn removing_dir(&self, tree: &Tree, ino: Ino) -> Result<()> {
        if !tree.get(ino)?.upper || !self.held(tree, ino)? {
            return Ok(());
        }
        let attr = self.attr(tree, ino)?;
        let referenced = tree.get(ino)?.referenced();
        self.open_files
            .detach(ino, referenced, Some(attr), || Ok(None))
    }

    /// Whether a backend reference or a handle holds `ino`.
    pub(super) fn held(&self, tree: &Tree, ino: Ino) -> Result<bool> {
        Ok(tree.get(ino)?.referenced() || self.open_files.has_handles(ino))
    }

    fn find(&self, tree: &Tree, parent: Ino, name: &OsStr) -> Result<Ino> {
        tree.child(parent, name)?.ok_or(Error::NotFound)
    }

    fn rename_locked(
        &self,
        tree: &mut Tree,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        // (under case-insensitive rules: the spellings on disk of the entries named)
        let name = &*tree.spelling(parent, name);
        let dst_spelling = tree.spelling(new_parent, new_name).into_owned();
        let src = self.find(tree, parent, name)?;
        let mut dst = tree.child(new_parent, new_name)?;
        if dst == Some(src) && parent == new_parent && name != new_name && dst_spelling == name {
            // Another spelling of the same entry (`foo` -> `FOO` under Windows rules):
            // the entry moves to its new spelling, replacing nothing. (Not two hard links
            // of one file, even of one name in two directories: renaming one over the
            // other does nothing.)
            dst = None;
        }
        if flags.exchange {
            return Err(Error::Invalid("RENAME_EXCHANGE is not supported"));
        }
        // (checked in the order Linux's rename(2) checks them)
        if dst.is_some() && flags.noreplace {
            return Err(Error::Exists(new_name.to_owned()));
        }
        if tree.is_ancestor(src, new_parent)? {
            return Err(Error::Invalid("a directory cannot move into itself"));
        }
        if let Some(d) = dst {
            if tree.is_ancestor(d, parent)? {
                return Err(Error::NotEmpty);
            }
        }
        if dst == Some(src) {
            return Ok(());
        }
        let s = tree.get(src)?;
        if s.bytecode && !s.upper && s.kind != FileKind::Dir {
            let dst_is_dir = dst.map(|d| tree.get(d).map(|n| n.kind == FileKind::Dir));
            if dst_is_dir.transpose()? != Some(true)
                && self.rename_bytecode(tree, src, (parent, name), new_parent, new_name, dst)?
            {
                return Ok(());
            }
        }
        let src_kind = tree.get(src)?.kind;
        if let Some(d) = dst {
            // Two names of one upper file that the tree knows as two nodes (hard links
            // made before a remount): POSIX renames do nothing then, and so does rename(2)
            // on the upper, so the tree must not change either.
            let both_upper = tree.get(src)?.upper && tree.get(d)?.upper;
            if both_upper && src_kind != FileKind::Dir {
                let (a, b) = (tree.path(src)?, tree.path(d)?);
                if self.upper.same_file(&a, &b) {
                    return Ok(());
                }
            }
        }
        if let Some(d) = dst {
            let dst_kind = tree.get(d)?.kind;
            match (src_kind == FileKind::Dir, dst_kind == FileKind::Dir) {
                (true, false) => return Err(Error::NotDir),
                (false, true) => return Err(Error::IsDir),
                (true, true) if !self.empty_for_removal(tree, d)? => {
                    return Err(Error::NotEmpty);
                }
                _ => {}
            }
        }
        self.copy_up_dir(tree, new_parent)?;
        if src_kind == FileKind::Dir {
            self.copy_up_dir(tree, src)?;
            let src_path = tree.path(src)?;
            match tree.get(src)?.lower {
                // The lower content must follow the directory to its new name.
                Some(lid) => {
                    let marker = join(&src_path, OsStr::new(REDIRECT));
                    if !self.upper.exists(&marker) {
                        self.upper.write_atomic(&marker, &tree.lower.path_of(lid))?;
                    }
                }
                // Nothing below it comes from a lower layer; but where it lands, one may.
                None if self.covers_lower(tree, new_parent, new_name)? => {
                    self.upper.touch(&join(&src_path, OsStr::new(OPAQUE)))?;
                }
                None => {}
            }
        } else if !tree.get(src)?.reference {
            // (a reference moves as the link it is on disk)
            self.copy_up(tree, src)?;
        }
        let src_path = path_with(tree, parent, name)?;
        let dst_path = path_with(tree, new_parent, new_name)?;
        self.whiteout_if_needed(tree, parent, name)?;
        if let Some(d) = dst {
            let dn = tree.get(d)?;
            let (is_upper, is_dir) = (dn.upper, dn.kind == FileKind::Dir);
            // (the replaced entry as spelled on disk: another spelling than the new one,
            // under case-insensitive rules, goes first, as one name holds one entry)
            let old_path = path_with(tree, new_parent, &dst_spelling)?;
            if is_upper && is_dir {
                self.removing_dir(tree, d)?;
                self.upper.clear_markers(&old_path)?;
            }
            self.unlinking(tree, d)?;
            if is_upper && dst_spelling != new_name {
                if is_dir {
                    self.upper.rmdir(&old_path)?;
                } else {
                    self.upper.unlink(&old_path)?;
                }
            }
        }
        self.upper.rename(&src_path, &dst_path, false)?;
        if self.covers_lower(tree, new_parent, new_name)? {
            self.upper.remove_if_present(&path_with(
                tree,
                new_parent,
                &whiteout_name(new_name),
            )?)?;
        }
        if let Some(d) = dst {
            tree.remove_name(d, new_parent, new_name)?;
        }
        tree.move_name(src, (parent, name), (new_parent, new_name))?;
        self.entry_made(tree, new_parent, new_name)
    }

    /// Resolves a node to its upper path for a change, copying it up first.
    fn upper_path_for_change(
        &self,
        ino: Ino,
    ) -> Result<(parking_lot::RwLockWriteGuard<'_, super::Tree>, Vec<u8>)> {
        let mut tree = self.tree.write();
        self.copy_up(&mut tree, ino)?;
        let path = tree.path(ino)?;
        Ok((tree, path))
    }

    fn xattr_reply(data: Vec<u8>, size: u32) -> Result<XattrReply> {
        if size == 0 {
            Ok(XattrReply::Size(data.len() as u32))
        } else if data.len() > size as usize {
            Err(Error::Range)
        } else {
            Ok(XattrReply::Data(data))
        }
    }

    /// The upper path of a node for reading xattrs, or None for lower nodes (which have none).
    fn upper_path_if_upper(&self, ino: Ino) -> Result<Option<Vec<u8>>> {
        let tree = self.tree.read();
        if tree.get(ino)?.upper {
            Ok(Some(tree.path(ino)?))
        } else {
            Ok(None)
        }
    }
}

impl FileSystem for Overlay {
    fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Lookup> {
        if name.len() > super::NAME_MAX {
            return Err(Error::NameTooLong);
        }
        let found = self.with_loaded(parent, |tree| match tree.child(parent, name)? {
            Some(ino) => Ok(Some(Lookup::Found(self.entry(tree, ino)?))),
            None => Ok(None),
        })?;
        if let Some(found) = found {
            if let Lookup::Found(e) = &found {
                self.prefetch_found(name, &e.attr);
            }
            return Ok(found);
        }
        if let Some(bytecode) = self.lookup_bytecode(parent, name)? {
            return Ok(bytecode);
        }
        match self.with_loaded(parent, |tree| tree.child(parent, name))? {
            // (made by a bytecode lookup meanwhile)
            Some(ino) => Ok(Lookup::Found(self.getattr(ino)?)),
            None => Ok(Lookup::Missing {
                ttl: self.cfg.negative_ttl,
            }),
        }
    }

    fn getattr(&self, ino: Ino) -> Result<Entry> {
        let tree = self.tree.read();
        self.entry(&tree, ino)
    }

    fn setattr(&self, caller: &Caller, ino: Ino, set: SetAttr) -> Result<Entry> {
        let _ = caller;
        let mut tree = self.tree.write();
        let node = tree.get(ino)?;
        if node.bytecode && !node.upper {
            let own = tree.backings.get(&ino).is_some_and(|b| b.stored.is_none());
            let only_size = set.mode.is_none()
                && set.uid.is_none()
                && set.gid.is_none()
                && set.atime.is_none()
                && set.mtime.is_none();
            if own && only_size {
                if let Some(size) = set.size {
                    self.bytecode_file(&tree, ino, true)?.file.set_len(size)?;
                }
                return self.entry(&tree, ino);
            }
            self.bytecode_to_upper(&mut tree, ino)?;
        }
        let node = tree.get(ino)?;
        if !node.upper || node.reference {
            let keep_data = set.size != Some(0);
            self.copy_up_file(&mut tree, ino, keep_data)?;
        }
        if let Some(size) = set.size {
            self.upper_file_in(&tree, ino, true)?.file.set_len(size)?;
        }
        if tree.get(ino)?.unlinked {
            return self.entry(&tree, ino);
        }
        let path = tree.path(ino)?;
        if let Some(mode) = set.mode {
            self.upper.chmod(&path, mode)?;
        }
        if set.uid.is_some() || set.gid.is_some() {
            self.upper.chown(&path, set.uid, set.gid)?;
        }
        if set.atime.is_some() || set.mtime.is_some() {
            self.upper.set_times(&path, set.atime, set.mtime)?;
        }
        self.entry(&tree, ino)
    }

    fn readlink(&self, ino: Ino) -> Result<OsString> {
        let tree = self.tree.read();
        let node = tree.get(ino)?;
        if node.kind != FileKind::Symlink {
            return Err(Error::Invalid("not a symlink"));
        }
        if node.upper {
            // A link's target never changes, nor does a node stop being that link (a new
            // link at the name is a new node, and inode numbers are not reused): read once.
            // The kernel keeps a link's target in page cache, and asks again when that is
            // reclaimed (idle pages are, on machines that reclaim proactively); on a
            // network filesystem each read costs requests to the server (sshfs: an `lstat`
            // of every directory on the way), for every process that starts the venv's
            // `bin/python`. (A link another host makes anew shows at the next mount, as
            // its other changes do.)
            if let Some(t) = self.link_targets.lock().get(&ino) {
                return Ok(t.clone());
            }
            let target = self.upper.readlink(&tree.path(ino)?)?;
            let mut kept = self.link_targets.lock();
            if kept.len() < KEPT_LINKS {
                kept.insert(ino, target.clone());
            }
            return Ok(target);
        }
        if node.bytecode {
            let target = tree.bytecode_target(ino).ok_or(Error::NotFound)?;
            self.check_pycache_dir(&tree, ino);
            return Ok(target.as_os_str().to_owned());
        }
        let lid = node.lower.ok_or(Error::NotFound)?;
        let target = tree.lower.target(lid).ok_or(Error::Invalid("no target"))?;
        Ok(target.to_owned())
    }

    fn mknod(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &OsStr,
        kind: FileKind,
        perm: u16,
        rdev: u64,
    ) -> Result<Entry> {
        self.make_entry(caller, parent, name, Make::Node(kind, perm, rdev))
    }

    fn mkdir(&self, caller: &Caller, parent: Ino, name: &OsStr, perm: u16) -> Result<Entry> {
        self.make_entry(caller, parent, name, Make::Dir(perm))
    }

    fn symlink(&self, caller: &Caller, parent: Ino, name: &OsStr, target: &Path) -> Result<Entry> {
        // A link to a file of a read-only source becomes a reference (see reference.rs):
        // the kernel gets the link it asked for, not to be cached, and the name a second
        // node, the file it shows. Whether it is one is told by the target the request
        // carries, before the tree is locked: uv makes thousands of links in a row, from
        // several threads, and each would otherwise stat its target into the cache (and
        // read the link back) while every other request waits for the tree.
        let reference = self.upper.references().target(target).is_some();
        let entry = self.make_entry(caller, parent, name, Make::Symlink(target))?;
        if !reference {
            return Ok(entry);
        }
        let mut tree = self.tree.write();
        let mut file = Node::new(parent, name, FileKind::File, true, None);
        file.reference = true;
        let ino = tree.push(file);
        tree.insert_child(parent, name, ino)?;
        drop(tree);
        if let Some(watch) = self.watch.get() {
            watch.reference_made();
        }
        Ok(Entry {
            attr: entry.attr,
            ttl: std::time::Duration::ZERO,
        })
    }

    fn unlink(&self, parent: Ino, name: &OsStr) -> Result<()> {
        let mut tree = self.write_loaded(&[parent])?;
        let name = &*tree.spelling(parent, name);
        let ino = self.find(&tree, parent, name)?;
        let node = tree.get(ino)?;
        if node.kind == FileKind::Dir {
            return Err(Error::IsDir);
        }
        let is_upper = node.upper;
        if node.bytecode && !is_upper {
            self.unlink_bytecode(&mut tree, ino)?;
            tree.remove_name(ino, parent, name)?;
            return Ok(());
        }
        let path = path_with(&tree, parent, name)?;
        self.whiteout_if_needed(&mut tree, parent, name)?;
        if is_upper {
            self.unlinking(&tree, ino)?;
            self.upper.unlink(&path)?;
        }
        tree.remove_name(ino, parent, name)?;
        self.forget_layers_if_emptied(&tree, parent);
        Ok(())
    }

    fn rmdir(&self, parent: Ino, name: &OsStr) -> Result<()> {
        let mut tree = self.write_loaded(&[parent])?;
        let name = &*tree.spelling(parent, name);
        let ino = self.find(&tree, parent, name)?;
        if tree.get(ino)?.kind != FileKind::Dir {
            return Err(Error::NotDir);
        }
        if !self.empty_for_removal(&mut tree, ino)? {
            return Err(Error::NotEmpty);
        }
        let is_upper = tree.get(ino)?.upper;
        let path = tree.path(ino)?;
        self.whiteout_if_needed(&mut tree, parent, name)?;
        if is_upper {
            self.removing_dir(&tree, ino)?;
            self.upper.clear_markers(&path)?;
            self.upper.rmdir(&path)?;
        }
        tree.remove_name(ino, parent, name)?;
        self.forget_layers_if_emptied(&tree, parent);
        Ok(())
    }

    fn rename(
        &self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        check_name(self.cfg.rules, new_parent, new_name)?;
        let mut tree = self.write_loaded(&[parent, new_parent])?;
        self.rename_locked(&mut tree, parent, name, new_parent, new_name, flags)
    }

    fn link(&self, ino: Ino, new_parent: Ino, new_name: &OsStr) -> Result<Entry> {
        check_name(self.cfg.rules, new_parent, new_name)?;
        let mut tree = self.write_loaded(&[new_parent])?;
        if tree.child(new_parent, new_name)?.is_some() {
            return Err(Error::Exists(new_name.to_owned()));
        }
        let kind = tree.get(ino)?.kind;
        if kind == FileKind::Dir {
            return Err(Error::NotPermitted("hard links to directories"));
        }
        self.copy_up_dir(&mut tree, new_parent)?;
        self.copy_up(&mut tree, ino)?;
        let from = tree.path(ino)?;
        let to = path_with(&tree, new_parent, new_name)?;
        self.upper.link(&from, &to)?;
        if self.covers_lower(&tree, new_parent, new_name)? {
            self.upper.remove_if_present(&path_with(
                &tree,
                new_parent,
                &whiteout_name(new_name),
            )?)?;
        }
        // Both names are one inode, to the kernel as on disk.
        tree.add_name(ino, new_parent, new_name)?;
        self.entry_made(&mut tree, new_parent, new_name)?;
        self.entry(&tree, ino)
    }

    fn open(&self, ino: Ino, req: &OpenRequest) -> Result<Opened> {
        let Some(w) = self.windows_open(ino, req)? else {
            return self.open_as(ino, req, None);
        };
        // (checked and counted before the open changes anything: a refused open must
        // not have truncated or copied up the file)
        let fh = self.open_files.open_windows(ino, req.access, w)?;
        self.open_as(ino, req, Some(fh))
            .inspect_err(|_| self.open_files.abandon(fh))
    }

    fn create(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &OsStr,
        perm: u16,
        req: &OpenRequest,
    ) -> Result<(Entry, Opened)> {
        if !req.exclusive {
            let existing = self.with_loaded(parent, |tree| tree.child(parent, name))?;
            if let Some(ino) = existing {
                let opened = self.open(ino, req)?;
                return Ok((self.getattr(ino)?, opened));
            }
        }
        if let Some(made) = self.create_bytecode(caller, parent, name, req)? {
            return Ok(made);
        }
        let (mut tree, path, covers) = self.prepare_create(parent, name)?;
        // One read-write descriptor serves every opener (the kernel checks the caller's
        // access); no O_APPEND, under which Linux makes every pwrite append: the adapter
        // gives each write its offset.
        let file = match self.upper.create_file(&path, perm) {
            Ok(file) => file,
            // Another host made the name meanwhile: it shows from now on, and an open
            // without O_EXCL opens it, as it would have had this daemon known of it.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                self.take_others_entries(&mut tree, parent, name)?;
                let existing = tree.child(parent, name)?;
                drop(tree);
                return match existing {
                    Some(ino) if !req.exclusive => {
                        let opened = self.open(ino, req)?;
                        Ok((self.getattr(ino)?, opened))
                    }
                    _ => Err(Error::Exists(name.to_owned())),
                };
            }
            Err(e) => return Err(e.into()),
        };
        let entry = self.finish_create(&mut tree, caller, parent, name, FileKind::File, covers)?;
        let file = super::open_files::UpperFile {
            file: std::sync::Arc::new(file),
            writable: true,
        };
        let ino = entry.attr.ino;
        let fh = match self.cfg.rules.share_modes() {
            false => self
                .open_files
                .open(ino, req.access, Some(Desc::Upper(file))),
            // (a new file: nothing to conflict with, but delete-on-close counts)
            true => {
                drop(tree);
                let w = self.windows_open(ino, req)?.expect("under Windows rules");
                let fh = self.open_files.open_windows(ino, req.access, w)?;
                self.open_files.put(ino, Desc::Upper(file));
                fh
            }
        };
        Ok((
            entry,
            Opened {
                fh,
                keep_cache: false,
                backing: None,
            },
        ))
    }

    fn read(&self, ino: Ino, fh: Option<Fh>, offset: u64, size: u32) -> Result<Vec<u8>> {
        self.open_files.check(fh, ino, false)?;
        self.read_by_inode(ino, offset, size)
    }

    fn write(&self, ino: Ino, fh: Option<Fh>, offset: u64, data: &[u8]) -> Result<u32> {
        self.open_files.check(fh, ino, true)?;
        crate::fsutil::write_all_at(&self.upper_file(ino, true)?.file, data, offset)?;
        Ok(data.len() as u32)
    }

    fn fsync(&self, ino: Ino, _fh: Option<Fh>, datasync: bool) -> Result<()> {
        // Lower files and references (files of a read-only source) have nothing to sync.
        {
            let tree = self.tree.read();
            let node = tree.get(ino)?;
            if !node.upper || node.reference {
                return Ok(());
            }
        }
        let file = self.upper_file(ino, false)?.file;
        if datasync {
            file.sync_data()?
        } else {
            file.sync_all()?
        }
        Ok(())
    }

    fn release(&self, ino: Ino, fh: Fh) {
        if self.open_files.release(fh) == CleanupAction::Delete {
            self.delete_on_release(ino);
        }
    }

    fn set_delete_pending(&self, ino: Ino, fh: Fh, delete: bool) -> Result<()> {
        if !self.cfg.rules.delete_pending() {
            return Err(Error::Unsupported(
                "delete pending: the mount follows POSIX rules",
            ));
        }
        let target = self.delete_target(ino)?;
        self.open_files.set_delete_pending(fh, delete, target)
    }

    fn reference(&self, ino: Ino) {
        if let Ok(node) = self.tree.read().get(ino) {
            node.refs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn unreference(&self, ino: Ino, count: u64) {
        let last = {
            let tree = self.tree.read();
            let Ok(node) = tree.get(ino) else { return };
            let sub = |n: u64| Some(n.saturating_sub(count));
            let before = node
                .refs
                .fetch_update(
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                    sub,
                )
                .unwrap_or(0);
            before > 0 && before <= count
        };
        if last {
            self.open_files.let_go(ino);
            self.prefetch_forgotten(ino);
        }
    }

    fn allocate(&self, ino: Ino, _fh: Option<Fh>, how: Allocate) -> Result<()> {
        Ok(self
            .upper
            .allocate(&self.upper_file(ino, true)?.file, how)?)
    }

    fn opendir(&self, ino: Ino) -> Result<Opened> {
        if self.tree.read().get(ino)?.kind != FileKind::Dir {
            return Err(Error::NotDir);
        }
        // Listings need no handle (see dirlist.rs); every change to a directory goes
        // through the kernel, which then drops its cached listing itself.
        Ok(Opened {
            fh: 0,
            keep_cache: true,
            backing: None,
        })
    }

    fn readdir(&self, ino: Ino, offset: u64) -> Result<Vec<DirEntry>> {
        self.list_dir(ino, offset)
    }

    fn releasedir(&self, _ino: Ino, _fh: Fh) {}

    fn statfs(&self) -> Result<StatFs> {
        Ok(self.upper.statfs()?)
    }

    fn setxattr(&self, ino: Ino, name: &OsStr, value: &[u8], how: XattrSet) -> Result<()> {
        let (_tree, path) = self.upper_path_for_change(ino)?;
        Ok(self.upper.set_xattr(&path, name, value, how)?)
    }

    fn getxattr(&self, ino: Ino, name: &OsStr, size: u32) -> Result<XattrReply> {
        let Some(path) = self.upper_path_if_upper(ino)? else {
            return Err(Error::NoAttr);
        };
        Self::xattr_reply(self.upper.get_xattr(&path, name)?, size)
    }

    fn listxattr(&self, ino: Ino, size: u32) -> Result<XattrReply> {
        let Some(path) = self.upper_path_if_upper(ino)? else {
            return Self::xattr_reply(Vec::new(), size);
        };
        Self::xattr_reply(self.upper.list_xattr(&path)?, size)
    }

    fn removexattr(&self, ino: Ino, name: &OsStr) -> Result<()> {
        if self.upper_path_if_upper(ino)?.is_none() {
            return Err(Error::NoAttr);
        }
        let (_tree, path) = self.upper_path_for_change(ino)?;
        Ok(self.upper.remove_xattr(&path, name)?)
    }
}
