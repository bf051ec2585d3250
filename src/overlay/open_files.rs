//! The open-file registry: one record per inode of what keeps its file reachable and of the
//! descriptor that serves its I/O.
//!
//! Every read, write, fsync, truncate and allocate goes through here, whether the request
//! came with a handle or not (the FUSE adapter lets the kernel skip opens, so most I/O names
//! only the inode). A record counts:
//! - the backend's references (FUSE: the inode is in the kernel's cache; see
//!   [`venvfs_api::FileSystem::reference`]) and
//! - the handles given out by `open` and `create` until their release (Dokan: every open
//!   file; FUSE: only with passthrough, when opens are not skipped);
//!
//! and holds the inode's one open descriptor: the upper file, or the lower content (a
//! directory layer's file or a wheel member). While a file has a handle, or has lost its
//! last name while still referenced (it may be open in the kernel without the daemon
//! knowing), its descriptor is *pinned*: that is what keeps an unlinked-but-open file's data
//! reachable, and it is released when the last user is gone, whichever backend reports it.
//! Other descriptors are a bounded cache, closed least recently used first.
//!
//! Under Windows rules a record also keeps its file's share-mode counts and delete state
//! ([`crate::rules::share`], [`crate::rules::delete`]): an open that conflicts with the
//! opens already there, or that comes while the file is delete pending, is refused before
//! it changes anything, and `release` says when the last handle of a file marked for
//! deletion is gone.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;
use venvfs_api::{Access, Attr, Error, Fh, Ino, Result};

use crate::layer::Content;
use crate::rules::{self, CleanupAction, DeleteState, DeleteTarget, Share, ShareState};

/// Idle lower descriptors kept open.
const LOWER_OPEN: usize = 64;
/// Idle upper descriptors kept open.
const UPPER_OPEN: usize = 256;

/// An upper file opened for I/O.
#[derive(Clone)]
pub struct UpperFile {
    pub file: Arc<File>,
    /// Opened read-write (else read-only: the daemon may not write it).
    pub writable: bool,
}

/// The descriptor that serves an inode's I/O.
#[derive(Clone)]
pub enum Desc {
    Lower(Arc<Content>),
    Upper(UpperFile),
}

#[derive(Default)]
struct Record {
    /// The backend held the file when it lost its last name (the count itself is kept in
    /// the tree's node: see `OpenFiles::let_go`).
    kernel: bool,
    /// Open handles.
    handles: u32,
    /// The file lost its last name.
    unlinked: bool,
    desc: Option<Desc>,
    /// The attributes of a file whose layer a live change removed while it was held (the
    /// lower tree that described it is gone), or of an upper directory removed while held
    /// (no descriptor to stat it through).
    frozen: Option<Box<Attr>>,
    /// Under Windows rules, while handles are open or a deletion is pending (boxed: most
    /// records never have one).
    windows: Option<Box<WindowsOpens>>,
}

/// The Windows state of a file's opens.
#[derive(Default)]
struct WindowsOpens {
    share: ShareState,
    delete: DeleteState,
}

/// What a handle opened under Windows rules asked for.
#[derive(Clone, Copy, Debug)]
pub struct WindowsOpen {
    pub access: rules::Access,
    pub share: Share,
    pub delete_on_close: bool,
    /// The file, as far as deleting it is concerned.
    pub target: DeleteTarget,
}

/// An open handle: its inode, the data access it was opened for, and under Windows rules
/// what it counts in the share modes.
struct Handle {
    ino: Ino,
    access: Access,
    windows: Option<(rules::Access, Share)>,
}

impl Record {
    /// Whether the descriptor must stay open.
    fn pinned(&self) -> bool {
        self.handles > 0 || (self.unlinked && self.kernel)
    }

    fn unused(&self) -> bool {
        !self.kernel && self.handles == 0 && self.desc.is_none()
    }

    /// Nothing holds the unlinked file any more: let go of what kept it reachable.
    fn let_go_if_unheld(&mut self) {
        if !self.kernel && self.handles == 0 && self.unlinked {
            self.desc = None;
            self.frozen = None;
        }
    }
}

struct Inner {
    records: HashMap<Ino, Record>,
    /// Open handles.
    handles: HashMap<Fh, Handle>,
    /// Unpinned inodes with an open descriptor, by kind, least recently used first.
    idle_lower: LruCache<Ino, ()>,
    idle_upper: LruCache<Ino, ()>,
}

impl Inner {
    /// Puts an unpinned record's descriptor under the idle bound (closing the least
    /// recently used one beyond it), or takes a pinned one out.
    fn settle(&mut self, ino: Ino) {
        self.idle_lower.pop(&ino);
        self.idle_upper.pop(&ino);
        let Some(r) = self.records.get(&ino) else {
            return;
        };
        if r.pinned() {
            return;
        }
        let (idle, cap) = match r.desc {
            None => {
                if r.unused() {
                    self.records.remove(&ino);
                }
                return;
            }
            Some(Desc::Lower(_)) => (&mut self.idle_lower, LOWER_OPEN),
            Some(Desc::Upper(_)) => (&mut self.idle_upper, UPPER_OPEN),
        };
        idle.put(ino, ());
        if idle.len() > cap {
            if let Some((old, ())) = idle.pop_lru() {
                self.close(old);
            }
        }
    }

    /// Closes an idle record's descriptor.
    fn close(&mut self, ino: Ino) {
        if let Some(r) = self.records.get_mut(&ino) {
            r.desc = None;
            if r.unused() {
                self.records.remove(&ino);
            }
        }
    }

    fn touch(&mut self, ino: Ino) {
        // (`get` marks it most recently used; pinned inodes are in neither)
        if self.idle_upper.get(&ino).is_none() {
            self.idle_lower.get(&ino);
        }
    }
}

pub struct OpenFiles {
    next_fh: AtomicU64,
    inner: Mutex<Inner>,
}

impl Default for OpenFiles {
    fn default() -> Self {
        OpenFiles {
            next_fh: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                records: HashMap::new(),
                handles: HashMap::new(),
                idle_lower: LruCache::unbounded(),
                idle_upper: LruCache::unbounded(),
            }),
        }
    }
}

impl OpenFiles {
    /// The backend's last reference to `ino` is gone (the tree counts them): what an
    /// unlinked or detached file kept for the backend goes, unless a handle still holds it.
    pub fn let_go(&self, ino: Ino) {
        let mut inner = self.inner.lock();
        if let Some(r) = inner.records.get_mut(&ino) {
            r.kernel = false;
            r.let_go_if_unheld();
        }
        inner.settle(ino);
    }

    /// Opens a handle on `ino` for `access`, keeping `desc` (when given) as its descriptor
    /// while it is open.
    pub fn open(&self, ino: Ino, access: Access, desc: Option<Desc>) -> Fh {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed) + 1;
        let mut inner = self.inner.lock();
        let r = inner.records.entry(ino).or_default();
        r.handles += 1;
        if let Some(d) = desc {
            r.desc = Some(d);
        }
        inner.handles.insert(
            fh,
            Handle {
                ino,
                access,
                windows: None,
            },
        );
        inner.settle(ino);
        fh
    }

    /// Opens a handle on `ino` under Windows rules, before the open changes anything (the
    /// caller gives the handle its descriptor with [`OpenFiles::put`] once it has one, or
    /// releases it if the open fails after all). Refused while the file is delete pending,
    /// when the share modes of the opens already there exclude it, or when it asks for
    /// deletion on close of a file that cannot be deleted.
    pub fn open_windows(&self, ino: Ino, access: Access, w: WindowsOpen) -> Result<Fh> {
        let mut inner = self.inner.lock();
        let r = inner.records.entry(ino).or_default();
        let state = r.windows.get_or_insert_with(Default::default);
        let checked = state
            .delete
            .check_open()
            .and_then(|()| state.share.check(w.access, w.share))
            .and_then(|()| match w.delete_on_close {
                true => rules::delete::check_deletable(w.target),
                false => Ok(()),
            });
        if let Err(e) = checked {
            if state.share.is_idle() && !state.delete.is_delete_pending() {
                r.windows = None;
            }
            inner.settle(ino);
            return Err(e.into());
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed) + 1;
        state.share.add(w.access, w.share);
        state.delete.open(fh, w.delete_on_close, w.target)?;
        r.handles += 1;
        inner.handles.insert(
            fh,
            Handle {
                ino,
                access,
                windows: Some((w.access, w.share)),
            },
        );
        inner.settle(ino);
        Ok(fh)
    }

    /// Takes back a handle [`OpenFiles::open_windows`] gave for an open that then failed:
    /// no deletion on close comes of it.
    pub fn abandon(&self, fh: Fh) {
        let mut inner = self.inner.lock();
        if let Some(ino) = inner.handles.get(&fh).map(|h| h.ino) {
            if let Some(state) = inner.records.get_mut(&ino).and_then(|r| r.windows.as_mut()) {
                state.delete.abandon(fh);
            }
        }
        drop(inner);
        self.release(fh);
    }

    /// Marks the file open as `fh` for deletion at its last release, or clears the mark
    /// (Windows rules).
    pub fn set_delete_pending(&self, fh: Fh, delete: bool, target: DeleteTarget) -> Result<()> {
        let mut inner = self.inner.lock();
        let ino = match inner.handles.get(&fh) {
            Some(h) if h.windows.is_some() => h.ino,
            _ => return Err(Error::BadHandle(fh)),
        };
        let state = inner
            .records
            .get_mut(&ino)
            .and_then(|r| r.windows.as_mut())
            .ok_or(Error::BadHandle(fh))?;
        Ok(state.delete.set_disposition(fh, delete, target)?)
    }

    /// Checks that I/O on `ino` through handle `fh` (if any) is what the handle was opened
    /// for: reading (`write` false) or writing.
    pub fn check(&self, fh: Option<Fh>, ino: Ino, write: bool) -> Result<()> {
        let Some(fh) = fh else { return Ok(()) };
        match self.inner.lock().handles.get(&fh) {
            Some(h) if h.ino == ino => {
                let allowed = if write {
                    h.access.writes()
                } else {
                    h.access.reads()
                };
                allowed.then_some(()).ok_or(Error::BadHandle(fh))
            }
            _ => Err(Error::BadHandle(fh)),
        }
    }

    /// Closes handle `fh`. Says [`CleanupAction::Delete`] when it was the last handle of a
    /// file marked for deletion (Windows rules): the caller deletes it.
    pub fn release(&self, fh: Fh) -> CleanupAction {
        let mut inner = self.inner.lock();
        let Some(h) = inner.handles.remove(&fh) else {
            return CleanupAction::Keep;
        };
        let mut action = CleanupAction::Keep;
        if let Some(r) = inner.records.get_mut(&h.ino) {
            r.handles = r.handles.saturating_sub(1);
            if let (Some((access, share)), Some(state)) = (h.windows, r.windows.as_mut()) {
                state.share.remove(access, share);
                action = state.delete.on_cleanup(fh);
                if state.delete.handle_count() == 0 {
                    r.windows = None;
                }
            }
            r.let_go_if_unheld();
        }
        inner.settle(h.ino);
        action
    }

    /// The open lower content of `ino`, or the one `open` gives (then kept).
    pub fn lower(&self, ino: Ino, open: impl FnOnce() -> Result<Content>) -> Result<Arc<Content>> {
        {
            let mut inner = self.inner.lock();
            if let Some(Desc::Lower(c)) = inner.records.get(&ino).and_then(|r| r.desc.as_ref()) {
                let c = Arc::clone(c);
                inner.touch(ino);
                return Ok(c);
            }
        }
        // Opened without the lock: it may decompress a wheel member.
        let content = Arc::new(open()?);
        self.put(ino, Desc::Lower(Arc::clone(&content)));
        Ok(content)
    }

    /// The open upper file of `ino`, if any; `None` also when a writable one is needed and
    /// the open one is read-only.
    pub fn upper(&self, ino: Ino, write: bool) -> Option<UpperFile> {
        let mut inner = self.inner.lock();
        match inner.records.get(&ino).and_then(|r| r.desc.as_ref()) {
            Some(Desc::Upper(f)) if f.writable || !write => {
                let f = f.clone();
                inner.touch(ino);
                Some(f)
            }
            _ => None,
        }
    }

    /// Makes `desc` the descriptor of `ino`.
    pub fn put(&self, ino: Ino, desc: Desc) {
        let mut inner = self.inner.lock();
        inner.records.entry(ino).or_default().desc = Some(desc);
        inner.settle(ino);
    }

    /// The node was copied up: its lower content is no longer what it shows.
    pub fn copied_up(&self, ino: Ino) {
        let mut inner = self.inner.lock();
        if let Some(r) = inner.records.get_mut(&ino) {
            if matches!(r.desc, Some(Desc::Lower(_))) {
                r.desc = None;
            }
        }
        inner.settle(ino);
    }

    /// File `ino` is about to lose its last name; `referenced`: the backend holds it. If
    /// anything still holds it, its
    /// descriptor (`open` gives it when none is open) is pinned until the last holder is
    /// gone; otherwise it is closed.
    pub fn unlinking(
        &self,
        ino: Ino,
        referenced: bool,
        open: impl FnOnce() -> Result<Desc>,
    ) -> Result<()> {
        let needs_open = {
            let mut inner = self.inner.lock();
            let r = inner.records.entry(ino).or_default();
            r.unlinked = true;
            r.kernel = referenced;
            let held = referenced || r.handles > 0;
            if !held {
                r.desc = None;
            }
            let needs_open = held && r.desc.is_none();
            inner.settle(ino);
            needs_open
        };
        if needs_open {
            // (without the lock: opening may come back here, as a reference's content does)
            let desc = open()?;
            let mut inner = self.inner.lock();
            if let Some(r) = inner.records.get_mut(&ino) {
                r.desc.get_or_insert(desc);
            }
            inner.settle(ino);
        }
        Ok(())
    }

    /// Whether a handle holds `ino`.
    pub fn has_handles(&self, ino: Ino) -> bool {
        let inner = self.inner.lock();
        inner.records.get(&ino).is_some_and(|r| r.handles > 0)
    }

    /// A live change took node `ino` out of the view (`referenced`: the backend holds it).
    /// If something holds it, it keeps
    /// serving: its open descriptor (or the one `open` gives, for a lower file) and `attr`
    /// stay pinned until the last holder lets go; otherwise they are dropped now.
    pub fn detach(
        &self,
        ino: Ino,
        referenced: bool,
        attr: Option<Attr>,
        open: impl FnOnce() -> Result<Option<Desc>>,
    ) -> Result<()> {
        if !referenced && !self.has_handles(ino) {
            let mut inner = self.inner.lock();
            if let Some(r) = inner.records.get_mut(&ino) {
                r.desc = None;
                r.unlinked = true;
            }
            inner.settle(ino);
            return Ok(());
        }
        let has_desc = {
            let inner = self.inner.lock();
            inner.records.get(&ino).is_some_and(|r| r.desc.is_some())
        };
        let desc = if has_desc { None } else { open()? };
        let mut inner = self.inner.lock();
        let r = inner.records.entry(ino).or_default();
        r.unlinked = true;
        r.kernel = referenced;
        r.frozen = attr.map(Box::new);
        if desc.is_some() {
            r.desc = desc;
        }
        inner.settle(ino);
        Ok(())
    }

    /// The attributes kept for a detached file (see [`OpenFiles::detach`]), or for a
    /// directory removed while held.
    pub fn frozen_attr(&self, ino: Ino) -> Option<Attr> {
        let inner = self.inner.lock();
        inner.records.get(&ino)?.frozen.as_deref().copied()
    }

    /// Open descriptors, pinned ones included.
    #[cfg(test)]
    fn open_descriptors(&self) -> usize {
        let inner = self.inner.lock();
        inner.records.values().filter(|r| r.desc.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper_file() -> UpperFile {
        UpperFile {
            file: Arc::new(tempfile::tempfile().expect("tempfile")),
            writable: true,
        }
    }

    #[test]
    fn unlinked_file_stays_open_while_referenced() {
        let reg = OpenFiles::default();
        reg.put(7, Desc::Upper(upper_file()));
        reg.unlinking(7, true, || unreachable!("already open"))
            .unwrap();
        // far more idle files than the bound: the pinned one stays
        for ino in 100..(100 + UPPER_OPEN as u64 * 2) {
            reg.put(ino, Desc::Upper(upper_file()));
        }
        assert!(reg.upper(7, true).is_some());
        reg.let_go(7);
        assert!(
            reg.upper(7, false).is_none(),
            "closed with its last reference"
        );
        assert_eq!(reg.open_descriptors(), UPPER_OPEN);
    }

    #[test]
    fn unlinked_file_stays_open_while_a_handle_is() {
        let reg = OpenFiles::default();
        let fh = reg.open(3, Access::ReadWrite, Some(Desc::Upper(upper_file())));
        reg.unlinking(3, false, || unreachable!("already open"))
            .unwrap();
        assert!(reg.upper(3, false).is_some());
        assert!(reg.check(Some(fh), 3, true).is_ok());
        assert!(
            reg.check(Some(fh), 4, false).is_err(),
            "another inode's handle"
        );
        reg.release(fh);
        assert!(reg.upper(3, false).is_none());
        assert!(reg.check(Some(fh), 3, false).is_err(), "released");
        assert_eq!(reg.open_descriptors(), 0);
    }

    #[test]
    fn unheld_unlinked_file_is_closed_at_once() {
        let reg = OpenFiles::default();
        reg.put(5, Desc::Upper(upper_file()));
        reg.unlinking(5, false, || unreachable!("not held: nothing to open"))
            .unwrap();
        assert!(reg.upper(5, false).is_none());
    }

    #[test]
    fn idle_descriptors_are_bounded() {
        let reg = OpenFiles::default();
        for ino in 0..(UPPER_OPEN as u64 + 10) {
            reg.put(ino, Desc::Upper(upper_file()));
        }
        assert_eq!(reg.open_descriptors(), UPPER_OPEN);
        assert!(
            reg.upper(0, false).is_none(),
            "least recently used closed first"
        );
        assert!(reg.upper(UPPER_OPEN as u64 + 9, false).is_some());
        // closed idle descriptors leave no record behind
        assert!(!reg.inner.lock().records.contains_key(&0));
    }

    #[test]
    fn read_only_descriptor_does_not_serve_writes() {
        let reg = OpenFiles::default();
        let mut f = upper_file();
        f.writable = false;
        reg.put(9, Desc::Upper(f));
        assert!(reg.upper(9, false).is_some());
        assert!(reg.upper(9, true).is_none());
    }
}
