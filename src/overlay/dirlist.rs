//! Directory listings with stable offsets.
//!
//! A listing is read in pieces, each resuming after the offset of the last entry the kernel
//! got. If offsets were positions in a list, an entry added or removed between two pieces
//! would shift every later one, and a program deleting files as it lists a directory would
//! miss some; so listings used to be snapshotted at each open. Instead, an entry's offset is
//! a hash of its name (as ext4 does), and a listing is sorted by it: resuming after offset
//! `o` goes on with the entries whose offset is greater, whatever changed before. No open
//! is needed to list a directory, and the kernel adapter lets the kernel skip OPENDIR and
//! RELEASEDIR, a round trip each for every directory Python lists.
//!
//! "." and ".." take offsets 1 and 2, names 3 and above. Two names of one directory whose
//! 63-bit hashes are equal would share an offset, and a piece ending between them would
//! leave out the second: a chance of about N²/2⁶⁴ for a directory of N entries.

use std::ffi::OsStr;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use venvfs_api::{DirEntry, FileKind, Ino, Result};

use super::tree::Tree;
use super::Overlay;

/// Entries handed out per `readdir`: more than one kernel request (a page) can take.
const PIECE: usize = 256;

/// The offset of the entry named `name`.
pub fn offset_of(name: &OsStr) -> u64 {
    let mut h = DefaultHasher::new();
    name.as_encoded_bytes().hash(&mut h);
    (h.finish() >> 1).max(3)
}

/// A directory's entries sorted by offset, "." and ".." first.
pub type Listing = Arc<Vec<DirEntry>>;

fn listing(tree: &Tree, ino: Ino) -> Result<Listing> {
    let node = tree.get(ino)?;
    let children = tree.entries(ino)?;
    let mut entries = Vec::with_capacity(children.len() + 2);
    for (name, child) in children {
        if !tree.pycache_listed(child) {
            continue;
        }
        entries.push(DirEntry {
            ino: child,
            name: name.to_os_string(),
            kind: tree.get(child)?.kind,
            // (by key: an entry keeps its offset when only its spelling changes)
            offset: offset_of(&tree.key(name)),
        });
    }
    entries.sort_unstable_by(|a, b| (a.offset, &a.name).cmp(&(b.offset, &b.name)));
    let dot = |name: &str, ino, offset| DirEntry {
        ino,
        name: name.into(),
        kind: FileKind::Dir,
        offset,
    };
    entries.splice(0..0, [dot(".", ino, 1), dot("..", node.parent, 2)]);
    Ok(Arc::new(entries))
}

impl Overlay {
    /// The entries of directory `ino` after `offset`, a piece at a time. The sorted listing
    /// is kept on the node while the kernel reads it in pieces (and dropped with any change
    /// to the directory, or once the last piece is out: the kernel keeps listings itself).
    pub(super) fn list_dir(&self, ino: Ino, offset: u64) -> Result<Vec<DirEntry>> {
        self.with_loaded(ino, |tree| {
            let dir = tree
                .get(ino)?
                .dir
                .as_ref()
                .ok_or(venvfs_api::Error::NotDir)?;
            let mut kept = dir.listing.lock();
            let all = match &*kept {
                Some(l) => Arc::clone(l),
                None => kept.insert(listing(tree, ino)?).clone(),
            };
            let start = all.partition_point(|e| e.offset <= offset);
            let piece: Vec<DirEntry> = all[start..].iter().take(PIECE).cloned().collect();
            if start + piece.len() == all.len() {
                *kept = None;
            }
            Ok(piece)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_leave_room_for_dot_entries() {
        for name in ["", "a", ".", "..", "numpy", "numpy-2.4.6.dist-info"] {
            assert!(offset_of(OsStr::new(name)) >= 3);
            assert!(offset_of(OsStr::new(name)) < 1 << 63);
        }
        assert_eq!(offset_of(OsStr::new("x")), offset_of(OsStr::new("x")));
        assert_ne!(offset_of(OsStr::new("x")), offset_of(OsStr::new("y")));
    }
}
