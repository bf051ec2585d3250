//! I/O by inode, without an open handle.
//!
//! Every open of a venv file would cost a round trip to the daemon (Python opens one file
//! per imported module), so the kernel adapter lets the kernel skip opens of regular files
//! when the core serves I/O without them (see [`venvfs_api::FileSystem::serves_without_open`]).
//! Reads, writes, fsyncs and truncates then arrive with file handle 0 and name only the
//! inode. This module keeps what serves them:
//! - lower content by inode (a directory layer's file, or a wheel member), the most recently
//!   used ones open;
//! - upper files by inode, the most recently used ones open;
//! - upper files unlinked while the kernel still references them (it may have them open):
//!   they stay open, so their data stays reachable, until the kernel forgets the inode.

use std::collections::HashMap;
use std::fs::File;
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;
use rustix::fs::OFlags;
use venvfs_api::{Error, FileKind, Ino, Result};

use super::tree::Tree;
use super::Overlay;
use crate::layer::{open_content, read_file_at, Content};

/// Lower files kept open at once.
const LOWER_OPEN: usize = 64;
/// Upper files kept open at once.
const UPPER_OPEN: usize = 256;

/// An upper file opened for I/O by inode.
#[derive(Clone)]
pub struct UpperFile {
    pub file: Arc<File>,
    /// Opened read-write (else read-only: the daemon may not write it).
    pub writable: bool,
}

pub struct InodeFiles {
    lower: Mutex<LruCache<Ino, Arc<Content>>>,
    upper: Mutex<LruCache<Ino, UpperFile>>,
    orphans: Mutex<HashMap<Ino, UpperFile>>,
}

impl Default for InodeFiles {
    fn default() -> Self {
        let cap = |n| NonZeroUsize::new(n).expect("non-zero");
        InodeFiles {
            lower: Mutex::new(LruCache::new(cap(LOWER_OPEN))),
            upper: Mutex::new(LruCache::new(cap(UPPER_OPEN))),
            orphans: Mutex::new(HashMap::new()),
        }
    }
}

impl InodeFiles {
    /// The open lower content of `ino`, or the one `open` gives (then remembered).
    pub fn lower(&self, ino: Ino, open: impl FnOnce() -> Result<Content>) -> Result<Arc<Content>> {
        if let Some(c) = self.lower.lock().get(&ino) {
            return Ok(Arc::clone(c));
        }
        // Opened without the lock: it may decompress a wheel member.
        let content = Arc::new(open()?);
        self.lower.lock().put(ino, Arc::clone(&content));
        Ok(content)
    }

    /// The open upper file of `ino` (an unlinked one first), if any; `None` also when a
    /// writable one is needed and the open one is read-only.
    pub fn upper(&self, ino: Ino, write: bool) -> Option<UpperFile> {
        let usable = |f: &UpperFile| f.writable || !write;
        if let Some(f) = self.orphans.lock().get(&ino) {
            return Some(f.clone());
        }
        self.upper.lock().get(&ino).filter(|f| usable(f)).cloned()
    }

    pub fn put_upper(&self, ino: Ino, file: UpperFile) {
        self.upper.lock().put(ino, file);
    }

    /// The node was copied up: its lower content is no longer what it shows.
    pub fn copied_up(&self, ino: Ino) {
        self.lower.lock().pop(&ino);
    }

    /// Keeps `file` (the upper file of `ino`, about to lose its last name) open until
    /// [`InodeFiles::forgotten`].
    pub fn orphan(&self, ino: Ino, file: UpperFile) {
        self.upper.lock().pop(&ino);
        self.orphans.lock().insert(ino, file);
    }

    /// The kernel no longer references `ino`: nothing can reach it any more.
    pub fn forgotten(&self, ino: Ino) {
        self.orphans.lock().remove(&ino);
        self.upper.lock().pop(&ino);
        self.lower.lock().pop(&ino);
    }
}

/// Lower files at least this big are handed to the kernel for passthrough when the mount
/// uses it.
pub const PASSTHROUGH_MIN: u64 = 256 << 10;

impl Overlay {
    /// Reads a file through the inode's own open file: the upper one, or the lower content.
    pub(super) fn read_by_inode(&self, ino: Ino, offset: u64, size: u32) -> Result<Vec<u8>> {
        let lower = {
            let tree = self.tree.read();
            let node = tree.get(ino)?;
            if node.kind == FileKind::Dir {
                return Err(Error::IsDir);
            }
            // A lower file unlinked while open still reads from its layer.
            match node.lower {
                Some(lid) if !node.upper => Some(lid),
                _ => None,
            }
        };
        match lower {
            Some(lid) => {
                let content = self.files.lower(ino, || self.open_lower(lid))?;
                Ok(content.read_at(offset, size as usize)?)
            }
            None => Ok(read_file_at(
                &self.upper_file(ino, false)?.file,
                offset,
                size as usize,
            )?),
        }
    }

    /// The upper file of `ino`, open for reading (and writing when `write`; a lower file is
    /// copied up first).
    pub(super) fn upper_file(&self, ino: Ino, write: bool) -> Result<UpperFile> {
        if let Some(f) = self.files.upper(ino, write) {
            return Ok(f);
        }
        let path = if write {
            let mut tree = self.tree.write();
            self.copy_up_file(&mut tree, ino, true)?;
            tree.path(ino)?
        } else {
            self.tree.read().path(ino)?
        };
        let f = self.open_upper_for_io(&path, write)?;
        self.files.put_upper(ino, f.clone());
        Ok(f)
    }

    /// Opens an upper file read-write, or read-only when reading is all that is asked and
    /// the daemon may not write it.
    fn open_upper_for_io(&self, path: &[u8], write: bool) -> Result<UpperFile> {
        match self.upper.open_file(path, OFlags::RDWR, 0) {
            Ok(f) => Ok(UpperFile {
                file: Arc::new(f),
                writable: true,
            }),
            Err(e) if !write && read_only_reason(&e) => Ok(UpperFile {
                file: Arc::new(self.upper.open_file(path, OFlags::RDONLY, 0)?),
                writable: false,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the content of lower node `lid`, naming the layer in the log if it fails.
    pub(super) fn open_lower(&self, lid: u32) -> Result<Content> {
        let l = self.lower.node(lid);
        let source = &self.lower.layers[l.layer as usize];
        open_content(source, &self.members, &l.src, l.member).inspect_err(|e| {
            tracing::error!(
                "layer {}: cannot serve {}: {e}",
                self.lower.labels[l.layer as usize],
                String::from_utf8_lossy(&self.lower.path_of(lid))
            );
        })
    }

    /// Called before upper file `ino` loses a name on disk: when that is its last name and
    /// the kernel still references it (it may hold it open without the daemon knowing),
    /// keep it open so that reads, writes and stat through the kernel's reference still work.
    pub(super) fn keep_if_referenced(&self, tree: &Tree, ino: Ino) -> Result<()> {
        let node = tree.get(ino)?;
        let referenced = node.lookups.load(Ordering::Relaxed) > 0;
        if !node.upper || node.kind != FileKind::File || node.aliases.is_some() || !referenced {
            return Ok(());
        }
        let file = match self.files.upper(ino, false) {
            Some(f) => f,
            None => self.open_upper_for_io(&tree.path(ino)?, false)?,
        };
        self.files.orphan(ino, file);
        Ok(())
    }
}

/// Whether an open for writing failed only because the file may not be written.
fn read_only_reason(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EACCES | libc::EPERM | libc::EROFS | libc::ETXTBSY)
    )
}
