//! The adapter's work, in plain Rust: each Dokan callback becomes one method here, over any
//! core that implements [`FileSystem`]. The Dokan glue (`handler.rs`, Windows only) converts
//! Dokan's types to these methods' arguments and their errors to NTSTATUS, nothing more; so
//! every decision the adapter makes runs in Linux tests too, against the real overlay.
//!
//! Dokan asks by path; the core by inode. A method walks the path from the root by
//! `lookup`s. An open handle ([`Handle`], Dokan's per-open context) holds its inode by a core
//! reference ([`FileSystem::reference`]) from `create_file` to `close_file`, so that I/O
//! Windows sends after `cleanup` (paging I/O of a mapped file) still reaches the file, and
//! its core open handle (`Fh`) from `create_file` to `cleanup`, which is the Windows "last
//! handle closed" that delete-on-close acts on.

use std::ffi::{OsStr, OsString};

use parking_lot::Mutex;
use venvfs_api::{
    Caller, Error, Fh, FileKind, FileSystem, Ino, Lookup, OpenRequest, RenameFlags, SetAttr, ROOT,
};
use venvfs_rules::{Action, ExistingKind};

use crate::info::{self, FileInformation, TimeChange};
use crate::ntstatus::Failure;
use crate::path;
use crate::plan::{self, CreateRequest};

pub type Result<T, E = Failure> = std::result::Result<T, E>;

/// One open of a file or directory (Dokan's context for it).
#[derive(Debug)]
pub struct Handle {
    ino: Ino,
    is_dir: bool,
    /// The core open, until `cleanup` releases it; `None` for handles that asked for no
    /// data access (see [`plan::Plan::open`]).
    fh: Mutex<Option<Fh>>,
}

impl Handle {
    pub fn ino(&self) -> Ino {
        self.ino
    }
    pub fn is_dir(&self) -> bool {
        self.is_dir
    }
    fn fh(&self) -> Option<Fh> {
        *self.fh.lock()
    }
}

/// What `create_file` reports besides the handle.
#[derive(Debug)]
pub struct Created {
    pub handle: Handle,
    /// The open created the entry (Dokan turns "opened an existing one" after an
    /// open-if/overwrite-if/supersede into Win32's `ERROR_ALREADY_EXISTS`).
    pub new_file_created: bool,
}

/// One listed entry.
#[derive(Clone, Debug)]
pub struct Found {
    pub name: OsString,
    pub info: FileInformation,
}

/// The mounted volume: the core, seen the way Dokan asks.
pub struct Volume<F> {
    fs: F,
    caller: Caller,
}

impl<F: FileSystem> Volume<F> {
    pub fn new(fs: F) -> Volume<F> {
        Volume {
            fs,
            caller: Caller::default(),
        }
    }

    pub fn core(&self) -> &F {
        &self.fs
    }

    /// The inode of a directory, walked to from the root. A missing name or a file on the
    /// way is "path not found", as Windows reports it.
    fn walk(&self, names: &[&OsStr]) -> Result<Ino> {
        let mut ino = ROOT;
        for name in names {
            match self.fs.lookup(ino, name)? {
                Lookup::Found(e) if e.attr.kind == FileKind::Dir => ino = e.attr.ino,
                _ => return Err(Failure::PathNotFound),
            }
        }
        Ok(ino)
    }

    /// The parent directory's inode and the last name of a path (`None`: the root).
    fn parent_of<'p>(&self, path: &'p str) -> Result<Option<(Ino, &'p OsStr)>> {
        match path::split_last(path)? {
            None => Ok(None),
            Some((parent, name)) => Ok(Some((self.walk(&parent)?, name))),
        }
    }

    /// `create_file` (ZwCreateFile): the disposition table decides, then one core call
    /// opens, truncates, creates a file or a directory.
    pub fn create(&self, path: &str, req: &CreateRequest) -> Result<Created> {
        let (parent, existing) = match self.parent_of(path)? {
            None => (None, Some((ROOT, FileKind::Dir))),
            Some((parent, name)) => {
                let existing = match self.fs.lookup(parent, name)? {
                    Lookup::Found(e) => Some((e.attr.ino, e.attr.kind)),
                    Lookup::Missing { .. } => None,
                };
                (Some((parent, name)), existing)
            }
        };
        let kind = existing.map(|(_, kind)| match kind {
            FileKind::Dir => ExistingKind::Directory,
            _ => ExistingKind::File,
        });
        let plan = plan::plan(req, kind)?;
        let (ino, fh) = match (plan.action, existing, parent) {
            (Action::Open | Action::Overwrite | Action::Supersede, Some((ino, _)), _) => {
                let fh = self.open_core(ino, plan.open.as_ref())?;
                if plan.read_only {
                    self.set_read_only(ino, fh);
                }
                (ino, fh)
            }
            (Action::CreateFile, None, Some((parent, name))) => {
                let open = plan.open.unwrap_or(OpenRequest {
                    exclusive: true,
                    ..OpenRequest::READ
                });
                let (e, opened) = self
                    .fs
                    .create(&self.caller, parent, name, plan.perm, &open)?;
                let fh = match plan.open {
                    Some(_) => Some(opened.fh),
                    None => {
                        self.fs.release(e.attr.ino, opened.fh);
                        None
                    }
                };
                (e.attr.ino, fh)
            }
            (Action::CreateDirectory, None, Some((parent, name))) => {
                let e = self.fs.mkdir(&self.caller, parent, name, plan.perm)?;
                (e.attr.ino, self.open_core(e.attr.ino, plan.open.as_ref())?)
            }
            // (the table only creates what is missing, and the root always exists)
            _ => return Err(Error::Invalid("create disposition against the volume root").into()),
        };
        self.fs.reference(ino);
        Ok(Created {
            handle: Handle {
                ino,
                is_dir: plan.is_dir,
                fh: Mutex::new(fh),
            },
            new_file_created: plan.action.creates(),
        })
    }

    fn open_core(&self, ino: Ino, req: Option<&OpenRequest>) -> Result<Option<Fh>> {
        match req {
            Some(req) => Ok(Some(self.fs.open(ino, req)?.fh)),
            None => Ok(None),
        }
    }

    /// FILE_ATTRIBUTE_READONLY on an overwritten or superseded file (a created one got it
    /// in its mode already). Best effort: the open itself has succeeded.
    fn set_read_only(&self, ino: Ino, fh: Option<Fh>) {
        let set = SetAttr {
            mode: Some(0o444),
            fh,
            ..SetAttr::default()
        };
        if let Err(e) = self.fs.setattr(&self.caller, ino, set) {
            tracing::debug!(ino, "cannot make the file read-only: {e}");
        }
    }

    /// `cleanup`: the last user handle of this open is closed. A delete-on-close open
    /// marks the file first; the core deletes it when its last open goes.
    pub fn cleanup(&self, h: &Handle, delete_on_close: bool) {
        let Some(fh) = h.fh.lock().take() else {
            return;
        };
        if delete_on_close {
            if let Err(e) = self.fs.set_delete_pending(h.ino, fh, true) {
                tracing::debug!(ino = h.ino, "delete on close refused: {e}");
            }
        }
        self.fs.release(h.ino, fh);
    }

    /// `close_file`: the file object is gone; so is its reference.
    pub fn close(&self, h: &Handle) {
        if let Some(fh) = h.fh.lock().take() {
            // (Dokan always cleans up first; this is for a context dropped without it)
            self.fs.release(h.ino, fh);
        }
        self.fs.unreference(h.ino, 1);
    }

    /// `read_file`: fills `buf` from `offset`; returns the bytes read.
    pub fn read(&self, h: &Handle, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let size = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let data = self.fs.read(h.ino, h.fh(), offset, size)?;
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok(n)
    }

    /// `write_file`: at `offset`, or at the end (`to_eof`); a paging write (`paging_io`)
    /// never extends the file.
    pub fn write(
        &self,
        h: &Handle,
        offset: u64,
        data: &[u8],
        to_eof: bool,
        paging_io: bool,
    ) -> Result<usize> {
        let (offset, data) = if to_eof {
            (self.fs.getattr(h.ino)?.attr.size, data)
        } else if paging_io {
            let size = self.fs.getattr(h.ino)?.attr.size;
            (
                offset,
                &data[..info::paging_write_len(offset, data.len(), size)],
            )
        } else {
            (offset, data)
        };
        if data.is_empty() {
            return Ok(0);
        }
        Ok(self.fs.write(h.ino, h.fh(), offset, data)? as usize)
    }

    /// `flush_file_buffers` (FlushFileBuffers): the data to stable storage. A directory's
    /// handle succeeds without the core, which syncs files only (NTFS flushes a directory;
    /// the FUSE adapter answers fsyncdir alike, without the core).
    pub fn flush(&self, h: &Handle) -> Result<()> {
        if h.is_dir {
            return Ok(());
        }
        Ok(self.fs.fsync(h.ino, h.fh(), false)?)
    }

    /// `get_file_information`.
    pub fn information(&self, h: &Handle) -> Result<FileInformation> {
        Ok(FileInformation::of(&self.fs.getattr(h.ino)?.attr))
    }

    /// `find_files` / `find_files_with_pattern`: every entry of the directory whose name
    /// `wanted` accepts, passed to `emit` until it returns false (Dokan's buffer is full).
    /// `.` and `..` are listed except at the root, as NTFS lists them.
    pub fn list(
        &self,
        h: &Handle,
        mut wanted: impl FnMut(&OsStr) -> bool,
        mut emit: impl FnMut(Found) -> bool,
    ) -> Result<()> {
        let mut offset = 0;
        loop {
            let entries = self.fs.readdir(h.ino, offset)?;
            let Some(last) = entries.last() else {
                return Ok(());
            };
            offset = last.offset;
            for e in entries {
                let dot = e.name == "." || e.name == "..";
                if (dot && h.ino == ROOT) || !wanted(&e.name) {
                    continue;
                }
                let attr = match self.fs.getattr(e.ino) {
                    Ok(entry) => entry.attr,
                    // (gone since the listing was read)
                    Err(Error::StaleInode(_) | Error::NotFound) => continue,
                    Err(other) => return Err(other.into()),
                };
                let found = Found {
                    name: e.name,
                    info: FileInformation::of(&attr),
                };
                if !emit(found) {
                    return Ok(());
                }
            }
        }
    }

    /// `set_file_attributes`: only READONLY is kept (as the write bits).
    pub fn set_attributes(&self, h: &Handle, attributes: u32) -> Result<()> {
        let perm = self.fs.getattr(h.ino)?.attr.perm;
        if let Some(set) = info::set_attributes(attributes, perm) {
            self.fs
                .setattr(&self.caller, h.ino, SetAttr { fh: h.fh(), ..set })?;
        }
        Ok(())
    }

    /// `set_file_time`.
    pub fn set_times(
        &self,
        h: &Handle,
        creation: TimeChange,
        access: TimeChange,
        write: TimeChange,
    ) -> Result<()> {
        if let Some(set) = info::set_times(creation, access, write) {
            self.fs
                .setattr(&self.caller, h.ino, SetAttr { fh: h.fh(), ..set })?;
        }
        Ok(())
    }

    /// `delete_file` / `delete_directory`: Windows sets (or clears) the delete disposition
    /// of this open; the core checks the file may go (not read-only, an empty directory)
    /// and deletes it when its last open is released.
    pub fn set_delete(&self, h: &Handle, delete: bool) -> Result<()> {
        let fh = h.fh().ok_or(Error::AccessDenied(
            "the handle was not opened for deletion",
        ))?;
        Ok(self.fs.set_delete_pending(h.ino, fh, delete)?)
    }

    /// `move_file`: a rename, replacing an existing target only if asked to.
    pub fn rename(&self, from: &str, to: &str, replace: bool) -> Result<()> {
        let (parent, name) = self
            .parent_of(from)?
            .ok_or(Error::AccessDenied("the volume root cannot be renamed"))?;
        let (new_parent, new_name) = self
            .parent_of(to)?
            .ok_or(Error::AccessDenied("nothing can replace the volume root"))?;
        let flags = RenameFlags {
            noreplace: !replace,
            exchange: false,
        };
        Ok(self.fs.rename(parent, name, new_parent, new_name, flags)?)
    }

    /// `set_end_of_file`.
    pub fn set_size(&self, h: &Handle, size: u64) -> Result<()> {
        let set = SetAttr {
            size: Some(size),
            fh: h.fh(),
            ..SetAttr::default()
        };
        self.fs.setattr(&self.caller, h.ino, set)?;
        Ok(())
    }

    /// `set_allocation_size`: an allocation below the file's end truncates it there (as
    /// NTFS does); a larger one reserves nothing (the upper filesystem allocates as the
    /// file is written).
    pub fn set_allocation(&self, h: &Handle, alloc: u64) -> Result<()> {
        if alloc < self.fs.getattr(h.ino)?.attr.size {
            self.set_size(h, alloc)?;
        }
        Ok(())
    }

    /// `get_disk_free_space`: (total, free, available) bytes of the upper filesystem.
    pub fn disk_space(&self) -> Result<(u64, u64, u64)> {
        Ok(info::disk_space(&self.fs.statfs()?))
    }
}
