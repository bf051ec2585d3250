//! Stored `.pyc` files kept open from their check to the open that follows it.
//!
//! A mount checks each stored `.pyc` before it shows it (open, `fstat`, read the header);
//! Python's import opens it right after. On a store on a network filesystem each open,
//! `fstat` and close is a request to the server: opening the file a second time cost
//! three requests per module on every node's first import (figure 12: 22,000 requests
//! against 13,400 for a native venv). The check's open file serves the read instead, when
//! it is still the same file (same identity and size as the one the mount showed).
//!
//! Bounded: a directory's load checks every `.pyc` stored in it, most of which a program
//! never imports; the least recently checked are closed first.

use std::fs::{File, Metadata};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use lru::LruCache;
use parking_lot::Mutex;

/// Checked files kept open at most. (The daemon raises its own limit of open files at
/// start: `daemon/serve.rs`.)
const KEPT: usize = 512;

pub struct Checked {
    files: Mutex<LruCache<PathBuf, (File, Metadata)>>,
}

impl Default for Checked {
    fn default() -> Self {
        Checked {
            files: Mutex::new(LruCache::new(NonZeroUsize::new(KEPT).expect("not zero"))),
        }
    }
}

impl std::fmt::Debug for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Checked({} open)", self.files.lock().len())
    }
}

impl Checked {
    /// Keeps `file`, just checked at `path` and found to be `meta`.
    pub fn keep(&self, path: &Path, file: File, meta: Metadata) {
        self.files.lock().put(path.to_owned(), (file, meta));
    }

    /// The file checked at `path`, if kept and still the one `meta` describes.
    pub fn take(&self, path: &Path, meta: &Metadata) -> Option<File> {
        let (file, kept) = self.files.lock().pop(path)?;
        super::same_file(&kept, meta).then_some(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_file_serves_once_and_only_as_the_file_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.pyc"), dir.path().join("b.pyc"));
        std::fs::write(&a, b"aaaa").unwrap();
        std::fs::write(&b, b"bbbbbb").unwrap();
        let checked = Checked::default();
        let meta_a = std::fs::metadata(&a).unwrap();
        let meta_b = std::fs::metadata(&b).unwrap();
        checked.keep(&a, File::open(&a).unwrap(), meta_a.clone());
        checked.keep(&b, File::open(&b).unwrap(), meta_b.clone());
        assert!(checked.take(&a, &meta_a).is_some());
        assert!(checked.take(&a, &meta_a).is_none(), "taken once");
        // (a mount that showed another file at that path gets nothing)
        assert!(checked.take(&b, &meta_a).is_none());
    }
}
