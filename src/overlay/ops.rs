//! The filesystem operations, as the kernel adapters call them.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::{OFlags, Timestamps};
use std::sync::atomic::Ordering;

use venvfs_api::{
    Caller, DirEntry, Entry, Error, Fh, FileKind, FileSystem, Ino, Lookup, Opened, RenameFlags,
    Result, SetAttr, SetTime, StatFs, XattrReply, XattrSet, NO_HANDLE,
};

use super::copyup::to_timespec;
use super::files::PASSTHROUGH_MIN;
use super::handles::Handle;
use super::tree::{Node, Tree};
use super::{check_name, path_with, Overlay};
use crate::layer::read_file_at;
use crate::upper::{join, whiteout_name, OPAQUE, REDIRECT};

/// How a new entry is made in the upper layer.
enum Make<'a> {
    Dir(u32),
    Node(u32, u32),
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
        let kind = match make {
            Make::Dir(mode) if covers => {
                // A directory made where a lower one was deleted must not show the old content:
                // build it opaque in the work dir, then move it into place.
                let tmp = self.upper.temp();
                self.upper.mkdir(&tmp, mode)?;
                self.upper.touch(&join(&tmp, OsStr::new(OPAQUE)))?;
                self.upper.rename(&tmp, &path, true)?;
                FileKind::Dir
            }
            Make::Dir(mode) => {
                self.upper.mkdir(&path, mode)?;
                FileKind::Dir
            }
            Make::Node(mode, rdev) => {
                self.upper.mknod(&path, mode, rdev as u64)?;
                FileKind::from_mode(mode)
            }
            Make::Symlink(target) => {
                self.upper.symlink(target.as_os_str(), &path)?;
                FileKind::Symlink
            }
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
        check_name(parent, name)?;
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
        tree.children_mut(parent)?.insert(name.into(), ino);
        self.looked_up(tree, ino)
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

    fn find(&self, tree: &Tree, parent: Ino, name: &OsStr) -> Result<Ino> {
        tree.child(parent, name)?.ok_or(Error::NotFound)
    }

    fn upper_open_flags(flags: i32) -> OFlags {
        let keep = libc::O_ACCMODE | libc::O_APPEND | libc::O_TRUNC | libc::O_SYNC | libc::O_DSYNC;
        OFlags::from_bits_retain((flags & keep) as _)
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
        let src = self.find(tree, parent, name)?;
        let dst = tree.child(new_parent, new_name)?;
        if flags.exchange {
            return Err(Error::Invalid("RENAME_EXCHANGE is not supported"));
        }
        if dst == Some(src) {
            return Ok(());
        }
        if dst.is_some() && flags.noreplace {
            return Err(Error::Exists(new_name.to_owned()));
        }
        let src_kind = tree.get(src)?.kind;
        if let Some(d) = dst {
            let dst_kind = tree.get(d)?.kind;
            match (src_kind == FileKind::Dir, dst_kind == FileKind::Dir) {
                (true, false) => return Err(Error::NotDir),
                (false, true) => return Err(Error::IsDir),
                (true, true) => {
                    tree.load(d, &self.upper, &self.lower)?;
                    if !tree.get(d)?.children().is_some_and(|c| c.is_empty()) {
                        return Err(Error::NotEmpty);
                    }
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
                        self.upper.write_atomic(&marker, &self.lower.path_of(lid))?;
                    }
                }
                // Nothing below it comes from a lower layer; but where it lands, one may.
                None if self.covers_lower(tree, new_parent, new_name)? => {
                    self.upper.touch(&join(&src_path, OsStr::new(OPAQUE)))?;
                }
                None => {}
            }
        } else {
            self.copy_up(tree, src)?;
        }
        let src_path = path_with(tree, parent, name)?;
        let dst_path = path_with(tree, new_parent, new_name)?;
        self.whiteout_if_needed(tree, parent, name)?;
        if let Some(d) = dst {
            let dn = tree.get(d)?;
            if dn.upper && dn.kind == FileKind::Dir {
                self.upper.clear_markers(&dst_path)?;
            }
            self.keep_if_referenced(tree, d)?;
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
        tree.move_name(src, (parent, name), (new_parent, new_name))
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
        self.with_loaded(parent, |tree| match tree.child(parent, name)? {
            Some(ino) => Ok(Lookup::Found(self.looked_up(tree, ino)?)),
            None => Ok(Lookup::Missing {
                ttl: self.cfg.negative_ttl,
            }),
        })
    }

    fn getattr(&self, ino: Ino) -> Result<Entry> {
        let tree = self.tree.read();
        self.entry(&tree, ino)
    }

    fn setattr(&self, caller: &Caller, ino: Ino, set: SetAttr) -> Result<Entry> {
        let _ = caller;
        let mut tree = self.tree.write();
        let node = tree.get(ino)?;
        if !node.upper {
            let keep_data = set.size != Some(0);
            self.copy_up_file(&mut tree, ino, keep_data)?;
        }
        let unlinked = tree.get(ino)?.unlinked;
        if let Some(size) = set.size {
            let via_handle = set.fh.and_then(|fh| self.handles.upper_file(fh));
            match via_handle.as_deref() {
                Some(Handle::Upper { file, .. }) => file.set_len(size)?,
                // Kept open (unlinked while referenced, or recently used by inode).
                _ => match self.files.upper(ino, true) {
                    Some(f) => f.file.set_len(size)?,
                    None if unlinked => return Err(Error::NotFound),
                    None => self
                        .upper
                        .open_file(&tree.path(ino)?, OFlags::WRONLY, 0)?
                        .set_len(size)?,
                },
            }
        }
        if unlinked {
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
            let ts = |t: Option<SetTime>| match t {
                None => rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: rustix::fs::UTIME_OMIT,
                },
                Some(SetTime::Now) => rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: rustix::fs::UTIME_NOW,
                },
                Some(SetTime::At(t)) => to_timespec(t),
            };
            let times = Timestamps {
                last_access: ts(set.atime),
                last_modification: ts(set.mtime),
            };
            self.upper.utimes(&path, &times)?;
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
            return Ok(self.upper.readlink(&tree.path(ino)?)?);
        }
        let lid = node.lower.ok_or(Error::NotFound)?;
        let target = self
            .lower
            .node(lid)
            .target
            .as_deref()
            .ok_or(Error::Invalid("no target"))?;
        Ok(target.to_owned())
    }

    fn mknod(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> Result<Entry> {
        self.make_entry(caller, parent, name, Make::Node(mode, rdev))
    }

    fn mkdir(&self, caller: &Caller, parent: Ino, name: &OsStr, mode: u32) -> Result<Entry> {
        self.make_entry(caller, parent, name, Make::Dir(mode))
    }

    fn symlink(&self, caller: &Caller, parent: Ino, name: &OsStr, target: &Path) -> Result<Entry> {
        self.make_entry(caller, parent, name, Make::Symlink(target))
    }

    fn unlink(&self, parent: Ino, name: &OsStr) -> Result<()> {
        let mut tree = self.write_loaded(&[parent])?;
        let ino = self.find(&tree, parent, name)?;
        let node = tree.get(ino)?;
        if node.kind == FileKind::Dir {
            return Err(Error::IsDir);
        }
        let is_upper = node.upper;
        let path = path_with(&tree, parent, name)?;
        self.whiteout_if_needed(&mut tree, parent, name)?;
        if is_upper {
            self.keep_if_referenced(&tree, ino)?;
            self.upper.unlink(&path)?;
        }
        tree.remove_name(ino, parent, name)
    }

    fn rmdir(&self, parent: Ino, name: &OsStr) -> Result<()> {
        let mut tree = self.write_loaded(&[parent])?;
        let ino = self.find(&tree, parent, name)?;
        if tree.get(ino)?.kind != FileKind::Dir {
            return Err(Error::NotDir);
        }
        tree.load(ino, &self.upper, &self.lower)?;
        let node = tree.get(ino)?;
        if !node.children().is_some_and(|c| c.is_empty()) {
            return Err(Error::NotEmpty);
        }
        let is_upper = node.upper;
        let path = tree.path(ino)?;
        self.whiteout_if_needed(&mut tree, parent, name)?;
        if is_upper {
            self.upper.clear_markers(&path)?;
            self.upper.rmdir(&path)?;
        }
        tree.remove_name(ino, parent, name)
    }

    fn rename(
        &self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        check_name(new_parent, new_name)?;
        let mut tree = self.write_loaded(&[parent, new_parent])?;
        self.rename_locked(&mut tree, parent, name, new_parent, new_name, flags)
    }

    fn link(&self, ino: Ino, new_parent: Ino, new_name: &OsStr) -> Result<Entry> {
        check_name(new_parent, new_name)?;
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
        self.looked_up(&tree, ino)
    }

    fn open(&self, ino: Ino, flags: i32) -> Result<Opened> {
        let writes = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        if writes {
            let mut tree = self.tree.write();
            let keep_data = flags & libc::O_TRUNC == 0;
            self.copy_up_file(&mut tree, ino, keep_data)?;
            let file = self
                .upper
                .open_file(&tree.path(ino)?, Self::upper_open_flags(flags), 0)?;
            let fh = self.handles.insert(Handle::Upper { ino, file });
            return Ok(Opened {
                fh,
                keep_cache: false,
                backing: None,
            });
        }
        let big_lower = {
            let tree = self.tree.read();
            let node = tree.get(ino)?;
            node.lower.filter(|_| !node.upper).filter(|&lid| {
                // Only big files are worth a backing file for passthrough: the kernel
                // forgets a file's atime after each passthrough read, so the next stat of
                // it costs a round trip.
                let l = self.lower.node(lid);
                l.size >= PASSTHROUGH_MIN && l.member.is_none()
            })
        };
        let (handle, backing) = match big_lower {
            Some(lid) => {
                let content = self.open_lower(lid)?;
                let backing = content.backing_file();
                (Handle::Lower(content), backing)
            }
            // Opening costs nothing: the file is reached when a read needs it, which the
            // page cache mostly spares.
            None => (Handle::ByInode, None),
        };
        Ok(Opened {
            fh: self.handles.insert(handle),
            keep_cache: true,
            backing,
        })
    }

    fn create(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        _flags: i32,
    ) -> Result<(Entry, Opened)> {
        let (mut tree, path, covers) = self.prepare_create(parent, name)?;
        // Once the kernel has stopped sending opens (see `serves_without_open`) it sends no
        // RELEASE either, not even for the files it creates: a handle would never be
        // freed. The new file is served by inode like any other, starting with this
        // descriptor (read-write whatever the caller asked: the kernel checks the caller's
        // access, and one descriptor serves every opener; no O_APPEND, under which Linux
        // makes every pwrite append).
        let oflags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL;
        let file = self.upper.open_file(&path, oflags, mode & 0o7777)?;
        let entry = self.finish_create(&mut tree, caller, parent, name, FileKind::File, covers)?;
        self.files.put_upper(
            entry.attr.ino,
            super::files::UpperFile {
                file: std::sync::Arc::new(file),
                writable: true,
            },
        );
        Ok((
            entry,
            Opened {
                fh: NO_HANDLE,
                keep_cache: false,
                backing: None,
            },
        ))
    }

    fn read(&self, ino: Ino, fh: Fh, offset: u64, size: u32) -> Result<Vec<u8>> {
        let handle = match fh {
            NO_HANDLE => None,
            fh => Some(self.handles.get(fh)?),
        };
        match handle.as_deref() {
            None | Some(Handle::ByInode) => self.read_by_inode(ino, offset, size),
            Some(Handle::Lower(content)) => Ok(content.read_at(offset, size as usize)?),
            Some(Handle::Upper { file, .. }) => Ok(read_file_at(file, offset, size as usize)?),
        }
    }

    fn write(&self, ino: Ino, fh: Fh, offset: u64, data: &[u8]) -> Result<u32> {
        let write = |file: &std::fs::File| -> Result<u32> {
            file.write_all_at(data, offset)?;
            Ok(data.len() as u32)
        };
        if fh == NO_HANDLE {
            return write(&self.upper_file(ino, true)?.file);
        }
        match &*self.handles.get(fh)? {
            Handle::Upper { file, .. } => write(file),
            _ => Err(Error::BadHandle(fh)),
        }
    }

    fn fsync(&self, ino: Ino, fh: Fh, datasync: bool) -> Result<()> {
        let sync = |file: &std::fs::File| -> Result<()> {
            if datasync {
                file.sync_data()?
            } else {
                file.sync_all()?
            }
            Ok(())
        };
        if fh == NO_HANDLE {
            // Lower files have nothing to sync.
            return match self.tree.read().get(ino)?.upper {
                true => sync(&self.upper_file(ino, false)?.file),
                false => Ok(()),
            };
        }
        match &*self.handles.get(fh)? {
            Handle::Upper { file, .. } => sync(file),
            _ => Ok(()),
        }
    }

    fn release(&self, _ino: Ino, fh: Fh) {
        self.handles.remove(fh);
    }

    fn serves_without_open(&self) -> bool {
        true
    }

    fn forget(&self, ino: Ino, nlookup: u64) {
        let tree = self.tree.read();
        let Ok(node) = tree.get(ino) else { return };
        let before = node
            .lookups
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(nlookup))
            })
            .unwrap_or(0);
        if before <= nlookup {
            self.files.forgotten(ino);
        }
    }

    fn fallocate(&self, ino: Ino, fh: Fh, offset: u64, length: u64, mode: i32) -> Result<()> {
        let fallocate = |file: &std::fs::File| -> Result<()> {
            let flags = rustix::fs::FallocateFlags::from_bits_retain(mode as _);
            rustix::fs::fallocate(file, flags, offset, length).map_err(io::Error::from)?;
            Ok(())
        };
        if fh == NO_HANDLE {
            return fallocate(&self.upper_file(ino, true)?.file);
        }
        match &*self.handles.get(fh)? {
            Handle::Upper { file, .. } => fallocate(file),
            _ => Err(Error::BadHandle(fh)),
        }
    }

    fn opendir(&self, ino: Ino) -> Result<Opened> {
        if self.tree.read().get(ino)?.kind != FileKind::Dir {
            return Err(Error::NotDir);
        }
        // Listings need no handle (see dirlist.rs); every change to a directory goes
        // through the kernel, which then drops its cached listing itself.
        Ok(Opened {
            fh: NO_HANDLE,
            keep_cache: true,
            backing: None,
        })
    }

    fn readdir(&self, ino: Ino, _fh: Fh, offset: u64) -> Result<Vec<DirEntry>> {
        self.list_dir(ino, offset)
    }

    fn releasedir(&self, _ino: Ino, _fh: Fh) {}

    fn statfs(&self) -> Result<StatFs> {
        let s = self.upper.statvfs()?;
        Ok(StatFs {
            blocks: s.f_blocks,
            bfree: s.f_bfree,
            bavail: s.f_bavail,
            files: s.f_files,
            ffree: s.f_ffree,
            bsize: s.f_bsize as u32,
            namelen: s.f_namemax as u32,
            frsize: s.f_frsize as u32,
        })
    }

    fn setxattr(&self, ino: Ino, name: &OsStr, value: &[u8], how: XattrSet) -> Result<()> {
        let (_tree, path) = self.upper_path_for_change(ino)?;
        let flags = match how {
            XattrSet::Any => rustix::fs::XattrFlags::empty(),
            XattrSet::Create => rustix::fs::XattrFlags::CREATE,
            XattrSet::Replace => rustix::fs::XattrFlags::REPLACE,
        };
        rustix::fs::lsetxattr(self.upper.proc_path(&path), name, value, flags)
            .map_err(io::Error::from)?;
        Ok(())
    }

    fn getxattr(&self, ino: Ino, name: &OsStr, size: u32) -> Result<XattrReply> {
        let Some(path) = self.upper_path_if_upper(ino)? else {
            return Err(Error::NoAttr);
        };
        let p = self.upper.proc_path(&path);
        let len = rustix::fs::lgetxattr_query(&p, name).map_err(io::Error::from)?;
        let mut buf = vec![0u8; len];
        let n = rustix::fs::lgetxattr(&p, name, &mut buf[..]).map_err(io::Error::from)?;
        buf.truncate(n);
        Self::xattr_reply(buf, size)
    }

    fn listxattr(&self, ino: Ino, size: u32) -> Result<XattrReply> {
        let Some(path) = self.upper_path_if_upper(ino)? else {
            return Self::xattr_reply(Vec::new(), size);
        };
        let p = self.upper.proc_path(&path);
        let len = rustix::fs::llistxattr_query(&p).map_err(io::Error::from)?;
        let mut buf = vec![0u8; len];
        let n = rustix::fs::llistxattr(&p, &mut buf[..]).map_err(io::Error::from)?;
        buf.truncate(n);
        Self::xattr_reply(buf, size)
    }

    fn removexattr(&self, ino: Ino, name: &OsStr) -> Result<()> {
        if self.upper_path_if_upper(ino)?.is_none() {
            return Err(Error::NoAttr);
        }
        let (_tree, path) = self.upper_path_for_change(ino)?;
        rustix::fs::lremovexattr(self.upper.proc_path(&path), name).map_err(io::Error::from)?;
        Ok(())
    }
}
