//! Names a bytecode store was found not to hold a valid `.pyc` for, remembered for a while
//! when the store is on a network filesystem.
//!
//! A mount asks the stores for a `.pyc` name its `__pycache__` does not hold yet each time
//! Python looks it up (the kernel is told not to remember the miss, so that a `.pyc` another
//! venv stores shows). On a local disk that costs a `stat`; on sshfs, NFS or Lustre a
//! request to the server for every such name of every import, on every node, once the
//! client's own attribute cache has expired (sshfs: 20 s). A name found missing (or stale)
//! is therefore not asked for again for [`MISS_TTL`]: a `.pyc` another node compiles
//! meanwhile shows here within that time, or at the next mount. Until then Python compiles
//! the module itself, as it does without a store, and what it writes goes to the store as
//! usual (the other node's file stays the one stored); a missing `.pyc` is never an error,
//! only a compile.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::Source;

/// How long a miss is remembered.
pub const MISS_TTL: Duration = Duration::from_secs(60);
/// Misses remembered at most (beyond it the expired ones go, then all).
const MAX_MISSES: usize = 1 << 16;

#[derive(Debug, Default)]
pub struct Misses {
    seen: Mutex<HashMap<(PathBuf, Source), Instant>>,
}

impl Misses {
    /// Whether `path` was found to hold no valid `.pyc` of `source` less than
    /// [`MISS_TTL`] ago.
    pub fn known(&self, path: &Path, source: &Source) -> bool {
        self.known_at(path, source, Instant::now())
    }

    fn known_at(&self, path: &Path, source: &Source, now: Instant) -> bool {
        let mut seen = self.seen.lock();
        let key = (path.to_owned(), *source);
        match seen.get(&key) {
            Some(&at) if now.saturating_duration_since(at) < MISS_TTL => true,
            Some(_) => {
                seen.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Remembers that `path` holds no valid `.pyc` of `source`.
    pub fn remember(&self, path: &Path, source: &Source) {
        self.remember_at(path, source, Instant::now())
    }

    fn remember_at(&self, path: &Path, source: &Source, now: Instant) {
        let mut seen = self.seen.lock();
        if seen.len() >= MAX_MISSES {
            seen.retain(|_, at| now.saturating_duration_since(*at) < MISS_TTL);
            if seen.len() >= MAX_MISSES {
                seen.clear();
            }
        }
        seen.insert((path.to_owned(), *source), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn a_miss_is_remembered_for_a_while_and_per_source() {
        let m = Misses::default();
        let p = Path::new("/store/k/__pycache__/m.cpython-311.pyc");
        let src = Source {
            mtime: SystemTime::UNIX_EPOCH,
            size: 10,
        };
        let t0 = Instant::now();
        assert!(!m.known_at(p, &src, t0));
        m.remember_at(p, &src, t0);
        assert!(m.known_at(p, &src, t0 + Duration::from_secs(1)));
        let edited = Source { size: 11, ..src };
        assert!(!m.known_at(p, &edited, t0), "another source is asked for");
        assert!(!m.known_at(p, &src, t0 + MISS_TTL), "expired");
        assert!(!m.known_at(p, &src, t0), "and forgotten");
    }
}
