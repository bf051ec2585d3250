//! I/O by inode: every read, write, fsync, truncate and allocate reaches the inode's file
//! through the open-file registry (`open_files.rs`), whether the request came with a handle
//! or not, so there is one path for each.

use std::sync::Arc;

use venvfs_api::{Error, FileKind, Ino, Result};

use super::open_files::{Desc, UpperFile};
use super::remote_reads::FileKey;
use super::tree::Tree;
use super::Overlay;
use crate::layer::{open_content, read_file_at, Content, Source};
use crate::lower::LowerTree;

/// Lower files at least this big are handed to the kernel for passthrough when the mount
/// uses it.
pub const PASSTHROUGH_MIN: u64 = 256 << 10;

impl Overlay {
    /// Reads a file through the inode's own open file: the upper one, or the lower content.
    pub(super) fn read_by_inode(&self, ino: Ino, offset: u64, size: u32) -> Result<Vec<u8>> {
        self.read_by_inode_once(ino, offset, size, true)
    }

    /// [`Overlay::read_by_inode`]; `retry`: once more if a reference lost its link meanwhile.
    fn read_by_inode_once(&self, ino: Ino, offset: u64, size: u32, retry: bool) -> Result<Vec<u8>> {
        /// Where a node's content comes from.
        enum From {
            Upper,
            Lower(Arc<LowerTree>, u32),
            Reference(Vec<u8>),
            /// A `.pyc` of a bytecode store (see `bytecode.rs`), and its identity when
            /// what is read of it is kept in memory.
            Bytecode(Option<FileKey>),
            /// Only what the registry keeps (a file detached while held).
            Kept,
        }
        let from = {
            let tree = self.tree.read();
            let node = tree.get(ino)?;
            if node.kind == FileKind::Dir {
                return Err(Error::IsDir);
            }
            // A lower file unlinked while open still reads from its layer; one whose layer
            // a live change removed, or a reference that lost its name, from the content
            // the registry kept for it.
            match node.lower {
                _ if node.bytecode && !node.upper => From::Bytecode(self.stored_key(&tree, ino)),
                _ if node.reference => match tree.path(ino) {
                    Ok(path) => From::Reference(path),
                    Err(_) => From::Kept,
                },
                _ if node.upper => From::Upper,
                Some(lid) => From::Lower(Arc::clone(&tree.lower), lid),
                None => From::Kept,
            }
        };
        let content = match from {
            From::Bytecode(Some(key)) => {
                return self
                    .remote_reads
                    .read(&key, offset, size as usize, |at, n| {
                        let file = self.upper_file(ino, false)?.file;
                        Ok(read_file_at(&file, at, n)?)
                    });
            }
            From::Upper | From::Bytecode(None) => {
                let file = self.upper_file(ino, false)?.file;
                return Ok(read_file_at(&file, offset, size as usize)?);
            }
            From::Lower(tree, lid) => match self.remote_key(&tree, lid) {
                Some(key) => {
                    return self
                        .remote_reads
                        .read(&key, offset, size as usize, |at, n| {
                            Ok(self.lower_content(&tree, ino, lid)?.read_at(at, n)?)
                        });
                }
                None => self.lower_content(&tree, ino, lid)?,
            },
            From::Reference(path) => match self.reference_content(&path, ino) {
                Ok(content) => content,
                // The link went after the tree was read (a fold took the layer's file in
                // its place, or an unlink): the node is detached by now, and the registry
                // keeps the cache file it showed if the kernel holds it. A read that fails
                // here is a SIGBUS in a process that mapped the file.
                Err(_) if retry => return self.read_by_inode_once(ino, offset, size, false),
                Err(e) => return Err(e),
            },
            From::Kept => self.open_files.lower(ino, || Err(Error::NotFound))?,
        };
        Ok(content.read_at(offset, size as usize)?)
    }

    /// The identity of lower node `lid`'s file when what is read of it is kept in memory
    /// (a file of a directory layer on a network filesystem: see `remote_reads.rs`).
    fn remote_key(&self, lower: &LowerTree, lid: u32) -> Option<FileKey> {
        let l = lower.node(lid);
        match &lower.layers[l.layer as usize] {
            Source::Dir { root } if l.member.is_none() && self.remote_reads.keeps(root) => {
                Some(FileKey {
                    path: root.join(&*l.src),
                    size: l.size,
                    mtime: l.mtime,
                    ino: 0,
                })
            }
            _ => None,
        }
    }

    /// The identity of the stored `.pyc` behind bytecode node `ino` when what is read of
    /// it is kept in memory (its store is on a network filesystem). A file this daemon is
    /// still writing is not a stored one.
    fn stored_key(&self, tree: &Tree, ino: Ino) -> Option<FileKey> {
        let backing = tree.backings.get(&ino)?;
        let meta = backing.stored.as_ref()?;
        let stores = self.cfg.bytecode.as_deref()?;
        let store = stores.read.iter().find(|s| backing.path.starts_with(s))?;
        self.remote_reads
            .keeps(store)
            .then(|| FileKey::of(&backing.path, meta))
    }

    /// The open lower content of node `ino` (lower node `lid` of `lower`).
    pub(super) fn lower_content(
        &self,
        lower: &LowerTree,
        ino: Ino,
        lid: u32,
    ) -> Result<Arc<Content>> {
        self.open_files.lower(ino, || self.open_lower(lower, lid))
    }

    /// The upper file of `ino`, open for reading (and writing when `write`; a lower file is
    /// copied up first).
    pub(super) fn upper_file(&self, ino: Ino, write: bool) -> Result<UpperFile> {
        if let Some(f) = self.open_files.upper(ino, write) {
            return Ok(f);
        }
        if write {
            let mut tree = self.tree.write();
            self.copy_up_file(&mut tree, ino, true)?;
            self.upper_file_in(&tree, ino, write)
        } else {
            self.upper_file_in(&self.tree.read(), ino, write)
        }
    }

    /// The upper file of `ino` (which must be in the upper layer), with the tree locked.
    pub(super) fn upper_file_in(&self, tree: &Tree, ino: Ino, write: bool) -> Result<UpperFile> {
        if let Some(f) = self.open_files.upper(ino, write) {
            return Ok(f);
        }
        let node = tree.get(ino)?;
        if node.bytecode && !node.upper {
            return self.bytecode_file(tree, ino, write);
        }
        // (an unlinked file has no path: it is reachable only while the registry pins it)
        let f = self.open_upper_for_io(&tree.path(ino)?, write)?;
        self.open_files.put(ino, Desc::Upper(f.clone()));
        Ok(f)
    }

    /// Opens an upper file read-write, or read-only when reading is all that is asked and
    /// the daemon may not write it.
    fn open_upper_for_io(&self, path: &[u8], write: bool) -> std::io::Result<UpperFile> {
        match self.upper.open_rw(path) {
            Ok(f) => Ok(UpperFile {
                file: Arc::new(f),
                writable: true,
            }),
            Err(e) if !write && self.upper.is_read_only_refusal(&e) => Ok(UpperFile {
                file: Arc::new(self.upper.open_ro(path)?),
                writable: false,
            }),
            Err(e) => Err(e),
        }
    }

    /// Opens the content of lower node `lid`, naming the layer in the log if it fails.
    pub(super) fn open_lower(&self, lower: &LowerTree, lid: u32) -> Result<Content> {
        let l = lower.node(lid);
        let source = &lower.layers[l.layer as usize];
        open_content(source, &self.members, &l.src, l.member).inspect_err(|e| {
            tracing::error!(
                "layer {}: cannot serve {}: {e}",
                lower.labels[l.layer as usize],
                String::from_utf8_lossy(&lower.path_of(lid))
            );
        })
    }

    /// Called before node `ino` loses a name on disk: when that is its last name, the
    /// registry keeps its upper file open for as long as a handle or a backend reference
    /// holds it (it may be open in the kernel without the daemon knowing), so reads,
    /// writes and stat through it still work.
    pub(super) fn unlinking(&self, tree: &Tree, ino: Ino) -> Result<()> {
        let node = tree.get(ino)?;
        if !node.upper || node.kind != FileKind::File || node.aliases.is_some() {
            return Ok(());
        }
        let path = tree.path(ino)?;
        let referenced = node.referenced();
        if node.reference {
            return self
                .open_files
                .unlinking(ino, referenced, || self.reference_desc(&path, ino));
        }
        self.open_files.unlinking(ino, referenced, || {
            Ok(Desc::Upper(self.open_upper_for_io(&path, false)?))
        })
    }
}
