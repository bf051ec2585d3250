//! References: files of a read-only source (uv's cache) linked into the venv by a symlink,
//! shown as the regular files they point to.
//!
//! uv's symlink link mode (`UV_LINK_MODE=symlink`) installs a package by creating one
//! symlink per file into its cache's unpacked wheel (`archive-v0/<id>/...`). That call
//! reaches venvfs with its target: the one place where venvfs learns, for free, that a file
//! is a cache file. An upper symlink whose absolute target lies in a reference root (see
//! [`crate::upper::Upper::reference_target`]) and names a regular file is kept as it is on
//! disk (so an unmounted venv is a plain symlink venv), but the mount shows it as that file:
//! its content, size and mode. Its first change (a write, a truncate, any setattr, a hard
//! link, an xattr) copies it up into a regular upper file (`copyup.rs`), so the cache is never
//! written; an unlink or a rename moves only the link.
//!
//! The kernel insists that a `symlink` request answers with a symlink, so the node made for
//! the request stays a symlink, answered with a zero TTL, and the name is given a second
//! node, the regular file: the kernel's next use of the name looks it up again and finds
//! that one.

use std::sync::Arc;

use venvfs_api::{Attr, Error, Ino, Result};

use super::open_files::Desc;
use super::Overlay;
use crate::layer::Content;

impl Overlay {
    /// The attributes of reference `path` (node `ino`): those of the file it points to, as
    /// a file of the venv's (owned like the layers' files).
    pub(super) fn reference_attr(&self, path: &[u8], ino: Ino) -> Result<Attr> {
        let mut attr = self.upper.reference_attr(path, ino)?;
        attr.nlink = 1;
        attr.uid = self.uid;
        attr.gid = self.gid;
        Ok(attr)
    }

    /// The attributes of reference `ino` once it has no name (unlinked, or folded into a
    /// layer while the kernel held it): those of the cache file the registry keeps for it.
    pub(super) fn kept_reference_attr(&self, ino: Ino) -> Result<Attr> {
        let content = self.open_files.lower(ino, || Err(Error::NotFound))?;
        let Content::File(file) = &*content else {
            return Err(Error::NotFound);
        };
        let mut attr = self.upper.file_attr(file, ino)?;
        attr.nlink = 0;
        attr.uid = self.uid;
        attr.gid = self.gid;
        Ok(attr)
    }

    /// The content of reference `path` (node `ino`), opened once and kept in the registry.
    pub(super) fn reference_content(&self, path: &[u8], ino: Ino) -> Result<Arc<Content>> {
        self.open_files.lower(ino, || {
            let file = self.upper.open_reference(path)?;
            Ok(Content::File(Arc::new(file)))
        })
    }

    /// The descriptor that keeps reference `path` readable once it has no name.
    pub(super) fn reference_desc(&self, path: &[u8], ino: Ino) -> Result<Desc> {
        Ok(Desc::Lower(self.reference_content(path, ino)?))
    }
}
