//! The attributes of the venv's own directories and symbolic links, kept in memory from
//! one look at the disk to the next change the daemon makes to the venv directory.
//!
//! The kernel asks for them whenever it has dropped its own entry (its caches are
//! reclaimed under memory pressure, whatever the time to live the daemon gave): `bin` and
//! `bin/python` at each interpreter start, `lib/python3.X/site-packages` at each import
//! path walk. On a local disk each ask is a `statx`; on a network filesystem (a cluster's
//! home directory) it is a request to the server once its client's cache has expired, from
//! every node, for files that only change through the mount. Regular files are never
//! kept: their size and times move with every write to an open file.
//!
//! Kept attributes are exact for as long as the daemon is the only writer, which a mount
//! assumes anyway (the tree of names it shows is read from the disk once; another host's
//! changes show at the next mount). Every change of the upper forgets all of them (the
//! upper calls [`KeptAttrs::forget`] after each), and so does a reload, which follows a
//! change made beneath the mount. A look that raced a change keeps nothing: what it read
//! may be from before the change ([`KeptAttrs::generation`]).

use std::collections::HashMap;

use parking_lot::Mutex;
use venvfs_api::{Attr, FileKind, Ino};

/// How many attributes are kept at most: far more than the directories and links of a
/// venv's own (a few dozen); a venv whose packages are all copies in its own directory
/// keeps the first ones looked at.
const KEPT: usize = 4096;

#[derive(Default)]
pub struct KeptAttrs {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Bumped by each change: a look begun before it must not keep what it read.
    generation: u64,
    attrs: HashMap<Box<[u8]>, Attr>,
}

impl KeptAttrs {
    /// The kept attributes of `rel`, as node `ino`.
    pub fn get(&self, rel: &[u8], ino: Ino) -> Option<Attr> {
        let state = self.state.lock();
        let attr = state.attrs.get(rel)?;
        Some(Attr { ino, ..*attr })
    }

    /// The count of changes so far, to take before reading the disk and give to
    /// [`KeptAttrs::keep`] with what was read.
    pub fn generation(&self) -> u64 {
        self.state.lock().generation
    }

    /// Keeps `attr`, read from the disk for `rel` when the count of changes was
    /// `generation`, if it is a directory's or a link's and no change came since.
    pub fn keep(&self, rel: &[u8], attr: &Attr, generation: u64) {
        if !matches!(attr.kind, FileKind::Dir | FileKind::Symlink) {
            return;
        }
        let mut state = self.state.lock();
        if state.generation == generation && state.attrs.len() < KEPT {
            state.attrs.insert(rel.into(), *attr);
        }
    }

    /// A change of the upper begins: everything kept is forgotten when the returned guard
    /// goes, after the change.
    pub fn change(&self) -> Change<'_> {
        Change(self)
    }

    /// Forgets everything kept: the venv directory changed.
    pub fn forget(&self) {
        let mut state = self.state.lock();
        state.generation += 1;
        state.attrs.clear();
    }
}

/// A change of the upper under way ([`KeptAttrs::change`]).
pub struct Change<'a>(&'a KeptAttrs);

impl Drop for Change<'_> {
    fn drop(&mut self) {
        self.0.forget();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: FileKind) -> Attr {
        Attr {
            ino: 7,
            size: 0,
            blocks: 0,
            atime: std::time::UNIX_EPOCH,
            mtime: std::time::UNIX_EPOCH,
            ctime: std::time::UNIX_EPOCH,
            crtime: std::time::UNIX_EPOCH,
            kind,
            perm: 0o755,
            nlink: 2,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
        }
    }

    #[test]
    fn keeps_directories_and_links_until_a_change() {
        let kept = KeptAttrs::default();
        let g = kept.generation();
        kept.keep(b"bin", &attr(FileKind::Dir), g);
        kept.keep(b"bin/python", &attr(FileKind::Symlink), g);
        kept.keep(b"pyvenv.cfg", &attr(FileKind::File), g);
        assert_eq!(
            kept.get(b"bin", 3).map(|a| (a.ino, a.kind)),
            Some((3, FileKind::Dir))
        );
        assert!(kept.get(b"bin/python", 4).is_some());
        assert!(
            kept.get(b"pyvenv.cfg", 5).is_none(),
            "a regular file is never kept"
        );
        drop(kept.change());
        assert!(kept.get(b"bin", 3).is_none());
    }

    #[test]
    fn a_look_that_raced_a_change_keeps_nothing() {
        let kept = KeptAttrs::default();
        let before = kept.generation();
        kept.forget(); // (the change, while the look read the disk)
        kept.keep(b"bin", &attr(FileKind::Dir), before);
        assert!(kept.get(b"bin", 3).is_none());
        kept.keep(b"bin", &attr(FileKind::Dir), kept.generation());
        assert!(kept.get(b"bin", 3).is_some());
    }
}
