//! Shared objects pushed into the kernel's page cache before their first read.
//!
//! A fresh mount's inodes have no page cache, so the first `dlopen` of an extension module
//! faults its pages in through the daemon, a round trip per readahead window, while the
//! importing process waits (the first import in a fresh venv reads ~100 MB of `.so` so).
//! When a large shared object is first looked up, a thread of its own reads it and hands
//! the pages to the kernel (FUSE: store notifications), on the other CPU while the
//! process goes on with its import, so that its faults find them there. Not for layers on
//! a network filesystem (see [`Overlay::on_network_filesystem`]).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
use venvfs_api::{Attr, FileKind, FileSystem, Ino, KernelCache};

use super::Overlay;

/// Files smaller than this are left to the kernel's own reads (a few round trips at most).
const SMALLEST: u64 = 64 << 10;
/// Bytes handed to the kernel at once.
const CHUNK: u32 = 1 << 20;
/// Files waiting; more are dropped (their first reads go through the daemon as before).
const QUEUE: usize = 256;

#[derive(Default)]
pub(super) struct Prefetch {
    queue: OnceLock<SyncSender<(Ino, u64)>>,
    /// Inodes queued while the kernel holds them (a file is pushed once per kernel inode:
    /// again after the kernel forgot it).
    seen: Mutex<HashSet<Ino>>,
}

/// What a node showed: pages read while it is the same are its pages. A copy-up (the node
/// turns upper), a removal or a live change of the layers (a new lower tree) changes it.
#[derive(PartialEq, Eq, Clone, Copy)]
struct Version {
    lower_tree: usize,
    lower: Option<u32>,
    upper: bool,
    unlinked: bool,
}

impl Overlay {
    /// Queues the file `attr` found under `name` when it is a shared object worth pushing:
    /// a layer's file (its content never changes in place).
    pub(super) fn prefetch_found(&self, name: &OsStr, attr: &Attr) {
        let Some(queue) = self.prefetch.queue.get() else {
            return;
        };
        if attr.kind != FileKind::File || attr.size < SMALLEST || !shared_object(name) {
            return;
        }
        if !self
            .prefetch_version(attr.ino)
            .is_some_and(|v| !v.upper && !v.unlinked)
            || self.on_network_filesystem(attr.ino)
        {
            return;
        }
        if !self.prefetch.seen.lock().insert(attr.ino) {
            return;
        }
        if let Err(TrySendError::Full((ino, _))) = queue.try_send((attr.ino, attr.size)) {
            self.prefetch.seen.lock().remove(&ino);
        }
    }

    /// The kernel let go of `ino`, and its pages with it (a dropped cache, memory
    /// pressure): its next lookup pushes it again.
    pub(super) fn prefetch_forgotten(&self, ino: Ino) {
        if self.prefetch.queue.get().is_some() {
            self.prefetch.seen.lock().remove(&ino);
        }
    }

    /// Whether `ino` is a file of a layer on a network filesystem. Those are not pushed:
    /// the whole file would be read from the server where a `dlopen` touches a part of it
    /// (two 25 MB OpenBLAS libraries of which an import maps 3 MB: each node's first
    /// import asked the server 6,000 reads instead of 2,700), and its reads are no faster
    /// for it (they wait on the server either way).
    fn on_network_filesystem(&self, ino: Ino) -> bool {
        let tree = self.tree.read();
        let Some(lid) = tree.get(ino).ok().and_then(|n| n.lower) else {
            return false;
        };
        let root = match &tree.lower.layers[tree.lower.node(lid).layer as usize] {
            crate::layer::Source::Dir { root } => root.as_path(),
            crate::layer::Source::Wheel(archive) => archive.path(),
        };
        self.remote_reads.is_remote(root)
    }

    fn prefetch_version(&self, ino: Ino) -> Option<Version> {
        let tree = self.tree.read();
        let node = tree.get(ino).ok()?;
        Some(Version {
            lower_tree: Arc::as_ptr(&tree.lower) as usize,
            lower: node.lower,
            upper: node.upper,
            unlinked: node.unlinked,
        })
    }
}

/// `x.so`, `x.cpython-311-x86_64-linux-gnu.so`, `libfoo.so.1.2`.
fn shared_object(name: &OsStr) -> bool {
    let name = name.as_encoded_bytes();
    name.ends_with(b".so") || name.windows(4).any(|w| w == b".so.")
}

impl Overlay {
    /// Pushes large shared objects into `cache` from a thread of its own as they are first
    /// looked up (once per overlay; `VENVFS_PREFETCH=0` leaves it off).
    pub fn start_prefetch(self: &Arc<Self>, cache: Arc<dyn KernelCache>) {
        if std::env::var_os("VENVFS_PREFETCH").is_some_and(|v| v == "0") {
            return;
        }
        let (tx, rx) = sync_channel(QUEUE);
        if self.prefetch.queue.set(tx).is_err() {
            return;
        }
        let overlay = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("prefetch".into())
            .spawn(move || push_all(&overlay, &*cache, &rx));
        if let Err(e) = spawned {
            tracing::debug!("no prefetch thread: {e}");
        }
    }
}

fn push_all(overlay: &Weak<Overlay>, cache: &dyn KernelCache, rx: &Receiver<(Ino, u64)>) {
    while let Ok((ino, size)) = rx.recv() {
        let Some(overlay) = overlay.upgrade() else {
            return;
        };
        push(&overlay, cache, ino, size);
    }
}

/// Reads `ino` as the kernel would and stores it, chunk by chunk; stops at the first
/// chunk the kernel does not take (it forgot the inode) or the core cannot read.
///
/// A write through the mount may change the file while a chunk is on its way: the kernel
/// puts written bytes in the page cache before it asks the daemon, and a store that comes
/// after them would bring back the old bytes. Such a write copies the file up first, so
/// the node is checked after each store, and if it changed, the kernel is told to drop
/// what it holds of it and read it again. (Waiting for the store instead, in the write,
/// would deadlock: the store waits for the pages the write keeps locked.)
fn push(overlay: &Overlay, cache: &dyn KernelCache, ino: Ino, size: u64) {
    let Some(was) = overlay.prefetch_version(ino) else {
        return;
    };
    let mut offset = 0;
    while offset < size {
        let data = match FileSystem::read(overlay, ino, None, offset, CHUNK) {
            Ok(data) if !data.is_empty() => data,
            Ok(_) => return,
            Err(e) => {
                tracing::debug!("prefetch: cannot read inode {ino} at {offset}: {e}");
                return;
            }
        };
        let stored = match offset {
            0 => store_once_known(cache, ino, &data),
            _ => cache.store(ino, offset, &data),
        };
        if overlay.prefetch_version(ino) != Some(was) {
            cache.invalidate_inode(ino);
            return;
        }
        if !stored {
            tracing::debug!("prefetch: the kernel took no pages of inode {ino} at {offset}");
            if offset == 0 {
                // (a later lookup may find it known)
                overlay.prefetch.seen.lock().remove(&ino);
            }
            return;
        }
        offset += data.len() as u64;
    }
}

/// Stores the first chunk of `ino`. The inode was queued by the lookup that finds it,
/// whose answer the kernel may not have taken yet (a directory listing answers after
/// looking up every entry, and the waiting process must be scheduled): the kernel knows
/// no such inode until then, so this tries again for a while.
fn store_once_known(cache: &dyn KernelCache, ino: Ino, data: &[u8]) -> bool {
    let mut wait = std::time::Duration::from_millis(1);
    for _ in 0..8 {
        if cache.store(ino, 0, data) {
            return true;
        }
        std::thread::sleep(wait);
        wait *= 2;
    }
    cache.store(ino, 0, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_objects_by_name() {
        for yes in [
            "a.so",
            "_x.cpython-311-x86_64-linux-gnu.so",
            "libz.so.1.2.13",
        ] {
            assert!(shared_object(OsStr::new(yes)), "{yes}");
        }
        for no in ["a.py", "so", "a.sox", "a.pyc", "libz.a"] {
            assert!(!shared_object(OsStr::new(no)), "{no}");
        }
    }
}
