//! Open file and directory handles.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use venvfs_api::{Error, Fh, Ino, Result};

use crate::layer::Content;

pub enum Handle {
    /// A lower file, read-only.
    Lower(Content),
    /// A file of the upper layer.
    Upper { ino: Ino, file: File },
    /// A file read through the inode's own open file (see `files.rs`).
    ByInode,
}

#[derive(Default)]
pub struct Handles {
    next: AtomicU64,
    map: RwLock<HashMap<Fh, Arc<Handle>>>,
}

impl Handles {
    pub fn insert(&self, h: Handle) -> Fh {
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.map.write().insert(fh, Arc::new(h));
        fh
    }

    pub fn get(&self, fh: Fh) -> Result<Arc<Handle>> {
        self.map
            .read()
            .get(&fh)
            .cloned()
            .ok_or(Error::BadHandle(fh))
    }

    pub fn remove(&self, fh: Fh) {
        self.map.write().remove(&fh);
    }

    /// `fstat` through any open upper handle of `ino` (for files unlinked while open).
    pub fn fstat_any(&self, ino: Ino) -> Option<Result<rustix::fs::Stat>> {
        let map = self.map.read();
        map.values().find_map(|h| match &**h {
            Handle::Upper { ino: i, file } if *i == ino => {
                Some(rustix::fs::fstat(file).map_err(|e| Error::Os(e.into())))
            }
            _ => None,
        })
    }

    /// The upper file behind a handle, if it is one.
    pub fn upper_file(&self, fh: Fh) -> Option<Arc<Handle>> {
        self.get(fh)
            .ok()
            .filter(|h| matches!(**h, Handle::Upper { .. }))
    }
}
