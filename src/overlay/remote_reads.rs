//! What the daemon read from files on a network filesystem, kept in its own memory.
//!
//! The kernel keeps what it read through the mount in the mount's page cache, and asks the
//! daemon again only for pages it no longer has. A machine that reclaims page cache it
//! finds idle (memory pressure, or proactive reclaim such as DAMON's, which on the
//! benchmark machine pages out what was not touched for a minute) drops those pages, and
//! the pages of the daemon's own reads of the backing file along with them: each page the
//! next import faults in again becomes a read of the layer file and, on sshfs, NFS or
//! Lustre, a request to the server (after sshfs's attribute cache expired, a `stat` of
//! every component of its path, an `open`, an `fstat` and a `close` as well, when the
//! descriptor was no longer open). With many nodes importing from one export, those
//! requests are what the server sees of every warm import.
//!
//! The files read through here cannot change: a layer file of a directory layer (uv's
//! `archive-v0/<id>/` entries are immutable once made) and a `.pyc` of a bytecode store
//! (linked into place once, never rewritten). Each is known by its path, size and
//! modification time (and, for a stored `.pyc`, its inode number): a file that another
//! one replaced under the same path is another file here. A file removed while mounted
//! (`uv cache clean`) keeps reading as it read, as it would through a descriptor the
//! daemon still held. Files on local disks are not kept: their pages come back from the
//! local disk at no cost to anyone else.
//!
//! Bytes are kept in aligned blocks, so that whatever ranges the kernel asks for later
//! (its readahead windows differ from run to run) are served from what was read before,
//! within a budget of bytes; the files least recently read go first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use lru::LruCache;
use parking_lot::Mutex;

/// Bytes read and kept at a time. Large enough that the kernel's readahead windows of a
/// later import (which differ from run to run) fall within blocks the first import read:
/// with 64 KiB blocks, and shared objects no longer read whole ahead on a network
/// filesystem (`prefetch.rs`), one node in two asked the server again in later imports
/// (figure 12: 1.7 and 2.4 requests per import); with 256 KiB, none did in three runs, and
/// a node's first import asks 13,800 requests (a native venv: 13,400).
const BLOCK: u64 = 256 << 10;

/// The identity of an immutable file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub path: PathBuf,
    pub size: u64,
    pub mtime: SystemTime,
    /// The inode number when known (0 when not).
    pub ino: u64,
}

impl FileKey {
    /// The identity of the file at `path` whose metadata is `meta`.
    pub fn of(path: &Path, meta: &std::fs::Metadata) -> FileKey {
        FileKey {
            path: path.to_owned(),
            size: meta.len(),
            mtime: crate::layer::dir::mtime_of(meta),
            ino: inode_number(meta),
        }
    }
}

#[cfg(unix)]
fn inode_number(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode_number(_: &std::fs::Metadata) -> u64 {
    0
}

pub struct RemoteReads {
    budget: u64,
    inner: Mutex<Inner>,
    /// Whether a directory (a layer's root, a store) is on a network filesystem, once asked.
    remote: Mutex<HashMap<PathBuf, bool>>,
}

struct Inner {
    /// Each file's blocks, by block number; the files least recently read first.
    files: LruCache<FileKey, HashMap<u64, Arc<[u8]>>>,
    bytes: u64,
}

impl RemoteReads {
    pub fn new(budget: u64) -> RemoteReads {
        RemoteReads {
            budget,
            inner: Mutex::new(Inner {
                files: LruCache::unbounded(),
                bytes: 0,
            }),
            remote: Mutex::new(HashMap::new()),
        }
    }

    /// Whether files below `root` (a layer's root directory, a bytecode store) are kept:
    /// it is on a network filesystem, and there is a budget.
    pub fn keeps(&self, root: &Path) -> bool {
        self.budget > 0 && self.is_remote(root)
    }

    /// Whether `root` (a layer's root directory or wheel, a bytecode store) is on a
    /// network filesystem (asked once per root).
    pub fn is_remote(&self, root: &Path) -> bool {
        if let Some(&r) = self.remote.lock().get(root) {
            return r;
        }
        let remote = crate::doctor::shared_filesystem(root).is_some();
        self.remote.lock().insert(root.to_owned(), remote);
        remote
    }

    /// Reads `len` bytes at `offset` of file `key` (fewer at its end): what is kept, the
    /// rest through `read_at(offset, len)` on the file itself, in whole blocks, kept.
    pub fn read<E>(
        &self,
        key: &FileKey,
        offset: u64,
        len: usize,
        read_at: impl Fn(u64, usize) -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, E> {
        let end = (offset + len as u64).min(key.size);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let n = at / BLOCK;
            let block = match self.get(key, n) {
                Some(b) => b,
                None => {
                    let b: Arc<[u8]> = read_at(n * BLOCK, BLOCK as usize)?.into();
                    self.put(key, n, Arc::clone(&b));
                    b
                }
            };
            let from = (at - n * BLOCK) as usize;
            let to = ((end - n * BLOCK) as usize).min(block.len());
            if from >= to {
                break; // (the file is shorter than its size said)
            }
            out.extend_from_slice(&block[from..to]);
            at = n * BLOCK + to as u64;
        }
        Ok(out)
    }

    fn get(&self, key: &FileKey, n: u64) -> Option<Arc<[u8]>> {
        let mut inner = self.inner.lock();
        inner.files.get(key)?.get(&n).cloned()
    }

    fn put(&self, key: &FileKey, n: u64, block: Arc<[u8]>) {
        let len = block.len() as u64;
        if len > self.budget {
            return;
        }
        let mut inner = self.inner.lock();
        let blocks = inner.files.get_or_insert_mut(key.clone(), HashMap::new);
        let replaced = blocks.insert(n, block).map_or(0, |b| b.len() as u64);
        inner.bytes = inner.bytes + len - replaced;
        while inner.bytes > self.budget {
            let Some((_, blocks)) = inner.files.pop_lru() else {
                break;
            };
            inner.bytes -= blocks.values().map(|b| b.len() as u64).sum::<u64>();
        }
    }

    /// Bytes kept (for tests).
    #[cfg(test)]
    fn kept(&self) -> u64 {
        self.inner.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn key(name: &str, size: u64) -> FileKey {
        FileKey {
            path: PathBuf::from(name),
            size,
            mtime: SystemTime::UNIX_EPOCH,
            ino: 0,
        }
    }

    #[test]
    fn ranges_read_again_come_from_memory() {
        // (sizes in 64 KiB units of blocks: `s` of them a block)
        let s = (BLOCK / (64 << 10)) as usize;
        let data: Vec<u8> = (0..300_000 * s as u32).map(|i| (i % 251) as u8).collect();
        let k = key("f", data.len() as u64);
        let r = RemoteReads::new(1 << 24);
        let reads = Cell::new(0);
        let read_at = |off: u64, len: usize| -> Result<Vec<u8>, ()> {
            reads.set(reads.get() + 1);
            let off = off as usize;
            Ok(data[off.min(data.len())..(off + len).min(data.len())].to_vec())
        };
        let windows = [
            (0, 4096),
            (70_000 * s, 100_000 * s),
            (299_990 * s, 4096),
            (400_000 * s, 10),
        ];
        for (off, len) in windows {
            let got = r.read(&k, off as u64, len, read_at).unwrap();
            let (a, b) = (off, (off + len).min(data.len()));
            assert_eq!(got, data[a.min(b)..b], "at {off}");
        }
        assert_eq!(reads.get(), 4, "blocks 0, 1, 2 and 4");
        // (other windows over the same bytes: only block 3 is new)
        for _ in 0..2 {
            for (off, len) in [(4096, 131_072 * s), (0, 300_000 * s), (200_000 * s, 1)] {
                let got = r.read(&k, off as u64, len, read_at).unwrap();
                assert_eq!(got, data[off..off + len]);
            }
        }
        assert_eq!(reads.get(), 5, "nothing read twice");
        assert_eq!(r.kept(), data.len() as u64);
        // another file at the same path (replaced: another size) is read afresh
        let other = key("f", 10);
        r.read(&other, 0, 10, |_, _| Ok::<_, ()>(vec![7; 10]))
            .unwrap();
        assert_eq!(r.read(&other, 0, 10, read_at).unwrap(), vec![7; 10]);
    }

    #[test]
    fn the_budget_holds() {
        let r = RemoteReads::new(3 * BLOCK);
        let read_at = |_: u64, len: usize| Ok::<_, &str>(vec![1u8; len]);
        for name in ["a", "b", "c", "d"] {
            r.read(&key(name, 10 * BLOCK), 0, BLOCK as usize, read_at)
                .unwrap();
        }
        assert_eq!(r.kept(), 3 * BLOCK);
        // "a", least recently read, went first
        let again = Cell::new(false);
        r.read(&key("a", 10 * BLOCK), 0, 1, |o, l| {
            again.set(true);
            read_at(o, l)
        })
        .unwrap();
        assert!(again.get());
        let failed = r.read(&key("e", 10 * BLOCK), 0, 1, |_, _| Err("gone"));
        assert!(failed.is_err());
        assert_eq!(r.kept(), 3 * BLOCK);
    }
}
