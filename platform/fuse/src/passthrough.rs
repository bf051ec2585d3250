//! Bookkeeping for FUSE passthrough (the kernel reads a backing file directly).
//!
//! The kernel puts constraints on how the opens of one inode may be mixed, and breaks the
//! rules by failing `open(2)` with `EIO`:
//! - all passthrough opens of an inode must use the same backing id;
//! - while an inode has passthrough opens, every new open must be passthrough too;
//! - while an inode has cached (normal) opens, a passthrough open is refused.
//!
//! So this module remembers, per inode, the live backing id and the number of cached opens,
//! and decides for each open which mode to reply with. A backing id lives as long as one of
//! the file handles using it (it is closed in the kernel when the last `Arc` drops, at the
//! release of the last such handle).
//!
//! It is generic over the backing id type so the decisions can be tested without a kernel.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use venvfs_api::{Fh, Ino, Opened};

/// How to answer an open.
#[derive(Debug)]
pub(crate) enum Mode<B> {
    /// A normal open through the page cache; `keep_cache` as the core asked.
    Cached { keep_cache: bool },
    /// Let the kernel read the backing file directly (never with keep_cache).
    Passthrough(Arc<B>),
}

/// (st_dev, st_ino) of a backing file.
type FileId = (u64, u64);

#[derive(Debug)]
struct InodeState<B> {
    backing: Weak<B>,
    backing_file: FileId,
    cached_opens: usize,
}

impl<B> InodeState<B> {
    fn new() -> Self {
        InodeState {
            backing: Weak::new(),
            backing_file: (0, 0),
            cached_opens: 0,
        }
    }
}

#[derive(Debug)]
struct State<B> {
    /// Every handle opened while passthrough was granted: its inode and backing id, if any.
    handles: HashMap<Fh, (Ino, Option<Arc<B>>)>,
    inodes: HashMap<Ino, InodeState<B>>,
}

/// Passthrough state of one session.
#[derive(Debug)]
pub(crate) struct Passthrough<B> {
    /// The kernel granted FUSE_PASSTHROUGH; from then on every open is tracked.
    granted: AtomicBool,
    /// New backing ids may be created (cleared when the kernel refuses one).
    enabled: AtomicBool,
    state: Mutex<State<B>>,
}

impl<B> Passthrough<B> {
    pub(crate) fn new() -> Self {
        Passthrough {
            granted: AtomicBool::new(false),
            enabled: AtomicBool::new(false),
            state: Mutex::new(State {
                handles: HashMap::new(),
                inodes: HashMap::new(),
            }),
        }
    }

    /// Called from `init` when the kernel granted FUSE_PASSTHROUGH.
    pub(crate) fn grant(&self) {
        self.granted.store(true, Ordering::Relaxed);
        self.enabled.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_granted(&self) -> bool {
        self.granted.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State<B>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decide how to answer the open of `ino` that the core answered with `opened`, and
    /// remember the handle. `open_backing` registers a backing file with the kernel.
    pub(crate) fn choose(
        &self,
        ino: Ino,
        opened: &Opened,
        open_backing: impl FnOnce(&File) -> io::Result<B>,
    ) -> Mode<B> {
        let cached = Mode::Cached {
            keep_cache: opened.keep_cache,
        };
        if !self.is_granted() {
            return cached;
        }
        let mut guard = self.lock();
        let state = &mut *guard;
        let backing = opened
            .backing
            .as_ref()
            .and_then(|file| self.backing_for(state, ino, file, open_backing));
        if backing.is_none() {
            state
                .inodes
                .entry(ino)
                .or_insert_with(InodeState::new)
                .cached_opens += 1;
        }
        state.handles.insert(opened.fh, (ino, backing.clone()));
        match backing {
            Some(id) => Mode::Passthrough(id),
            None => cached,
        }
    }

    /// The backing id to use for a passthrough open of `ino`, or `None` when the open must
    /// be a cached one.
    fn backing_for(
        &self,
        state: &mut State<B>,
        ino: Ino,
        file: &File,
        open_backing: impl FnOnce(&File) -> io::Result<B>,
    ) -> Option<Arc<B>> {
        let id = file_id(file)?;
        if let Some(inode) = state.inodes.get(&ino) {
            if let Some(live) = inode.backing.upgrade() {
                // The kernel refuses a second backing file for the inode, and a cached open
                // too, as long as the handles using this one are open.
                return (inode.backing_file == id).then_some(live);
            }
            if inode.cached_opens > 0 {
                return None;
            }
        }
        if !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        match open_backing(file) {
            Ok(b) => {
                let b = Arc::new(b);
                let inode = state.inodes.entry(ino).or_insert_with(InodeState::new);
                inode.backing = Arc::downgrade(&b);
                inode.backing_file = id;
                Some(b)
            }
            Err(e) => {
                if self.enabled.swap(false, Ordering::Relaxed) {
                    tracing::debug!("passthrough disabled for this mount: {e}");
                }
                None
            }
        }
    }

    /// Forget handle `fh` (at release). Drops its backing id reference.
    pub(crate) fn release(&self, fh: Fh) {
        if !self.is_granted() {
            return;
        }
        let mut state = self.lock();
        let Some((ino, backing)) = state.handles.remove(&fh) else {
            return;
        };
        let Some(inode) = state.inodes.get_mut(&ino) else {
            return;
        };
        if backing.is_none() {
            inode.cached_opens = inode.cached_opens.saturating_sub(1);
        }
        drop(backing);
        if inode.cached_opens == 0 && inode.backing.strong_count() == 0 {
            state.inodes.remove(&ino);
        }
    }
}

fn file_id(file: &File) -> Option<FileId> {
    file.metadata().ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for a kernel backing id, numbered by creation order.
    #[derive(Debug, PartialEq)]
    struct Id(u32);

    fn files() -> (Arc<File>, Arc<File>) {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir();
        let pid = std::process::id();
        let a = dir.join(format!("venvfs-fuse-pt-a-{pid}-{n}"));
        let b = dir.join(format!("venvfs-fuse-pt-b-{pid}-{n}"));
        let fa = File::create(&a).expect("create a");
        let fb = File::create(&b).expect("create b");
        let _ = std::fs::remove_file(a);
        let _ = std::fs::remove_file(b);
        (Arc::new(fa), Arc::new(fb))
    }

    fn opened(fh: Fh, backing: Option<&Arc<File>>) -> Opened {
        Opened {
            fh,
            keep_cache: true,
            backing: backing.cloned(),
        }
    }

    fn is_pt(m: &Mode<Id>, want: u32) -> bool {
        matches!(m, Mode::Passthrough(id) if id.0 == want)
    }

    fn is_cached(m: &Mode<Id>) -> bool {
        matches!(m, Mode::Cached { keep_cache: true })
    }

    #[test]
    fn not_granted_means_cached_and_untracked() {
        let pt = Passthrough::<Id>::new();
        let (a, _) = files();
        let m = pt.choose(2, &opened(1, Some(&a)), |_| Ok(Id(1)));
        assert!(is_cached(&m));
        assert!(pt.lock().handles.is_empty());
    }

    #[test]
    fn shares_one_backing_id_per_inode() {
        let pt = Passthrough::<Id>::new();
        pt.grant();
        let (a, _) = files();
        let mut n = 0;
        let mut mk = |_: &File| {
            n += 1;
            Ok(Id(n))
        };
        assert!(is_pt(&pt.choose(2, &opened(1, Some(&a)), &mut mk), 1));
        assert!(is_pt(&pt.choose(2, &opened(2, Some(&a)), &mut mk), 1));
        pt.release(1);
        pt.release(2);
        assert!(pt.lock().inodes.is_empty());
        // After the last release a new id is registered.
        assert!(is_pt(&pt.choose(2, &opened(3, Some(&a)), &mut mk), 2));
    }

    #[test]
    fn cached_opens_block_passthrough() {
        let pt = Passthrough::<Id>::new();
        pt.grant();
        let (a, _) = files();
        assert!(is_cached(&pt.choose(2, &opened(1, None), |_| Ok(Id(1)))));
        assert!(is_cached(
            &pt.choose(2, &opened(2, Some(&a)), |_| Ok(Id(1)))
        ));
        pt.release(1);
        pt.release(2);
        assert!(is_pt(&pt.choose(2, &opened(3, Some(&a)), |_| Ok(Id(7))), 7));
    }

    #[test]
    fn open_without_backing_does_not_break_live_passthrough() {
        let pt = Passthrough::<Id>::new();
        pt.grant();
        let (a, _) = files();
        assert!(is_pt(&pt.choose(2, &opened(1, Some(&a)), |_| Ok(Id(1))), 1));
        // The kernel refuses this one (EIO) and releases it; meanwhile...
        assert!(is_cached(&pt.choose(2, &opened(2, None), |_| Ok(Id(2)))));
        // ...readers keep sharing the live id.
        assert!(is_pt(&pt.choose(2, &opened(3, Some(&a)), |_| Ok(Id(3))), 1));
        for fh in 1..=3 {
            pt.release(fh);
        }
        let state = pt.lock();
        assert!(state.inodes.is_empty() && state.handles.is_empty());
    }

    #[test]
    fn different_backing_file_is_not_mixed() {
        let pt = Passthrough::<Id>::new();
        pt.grant();
        let (a, b) = files();
        assert!(is_pt(&pt.choose(2, &opened(1, Some(&a)), |_| Ok(Id(1))), 1));
        assert!(is_cached(
            &pt.choose(2, &opened(2, Some(&b)), |_| Ok(Id(2)))
        ));
        // Another inode is independent.
        assert!(is_pt(&pt.choose(3, &opened(3, Some(&b)), |_| Ok(Id(3))), 3));
    }

    #[test]
    fn refusal_disables_new_ids_only() {
        let pt = Passthrough::<Id>::new();
        pt.grant();
        let (a, b) = files();
        assert!(is_pt(&pt.choose(2, &opened(1, Some(&a)), |_| Ok(Id(1))), 1));
        let refused = pt.choose(3, &opened(2, Some(&b)), |_| {
            Err(io::Error::from_raw_os_error(libc::EPERM))
        });
        assert!(is_cached(&refused));
        assert!(is_cached(
            &pt.choose(4, &opened(3, Some(&b)), |_| Ok(Id(9)))
        ));
        // The id that is already registered keeps being shared.
        assert!(is_pt(&pt.choose(2, &opened(4, Some(&a)), |_| Ok(Id(9))), 1));
    }

    #[test]
    fn release_of_unknown_handle_is_harmless() {
        let pt = Passthrough::<Id>::new();
        pt.grant();
        pt.release(42);
    }
}
