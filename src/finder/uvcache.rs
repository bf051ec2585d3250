//! An index of uv's cache: which distribution, version and tags each unpacked wheel in
//! `archive-v0/` holds, read from the dist-info inside it (uv's own pointer files change
//! between uv versions; the unpacked wheels do not). Entries there never change once
//! written, so the index is kept in venvfs's own cache directory and only new entries are
//! read on the next run. The uv cache itself is only ever read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What one archive entry holds. An entry that is not an unpacked wheel is remembered with
/// an empty name, so it is not read again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexFile {
    format: u32,
    cache: PathBuf,
    entries: Vec<Entry>,
}

const INDEX_FORMAT: u32 = 1;

/// The uv cache directory: `explicit`, else `$UV_CACHE_DIR`, else `$XDG_CACHE_HOME/uv`,
/// else `~/.cache/uv` (`%LOCALAPPDATA%\uv\cache` on Windows).
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_owned());
    }
    if let Some(p) = env_path("UV_CACHE_DIR") {
        return Some(p);
    }
    if cfg!(windows) {
        return env_path("LOCALAPPDATA").map(|d| d.join("uv").join("cache"));
    }
    if let Some(p) = env_path("XDG_CACHE_HOME") {
        return Some(p.join("uv"));
    }
    env_path("HOME").map(|h| h.join(".cache").join("uv"))
}

/// The variable naming shared uv caches looked up after the user's own (`:`-separated, `;`
/// on Windows), such as a read-only one a machine's administrator fills.
pub const EXTRA_CACHES_VAR: &str = "VENVFS_EXTRA_CACHE_DIRS";

/// Every uv cache to look in, in order: the `--cache-dir` directories when given, else the
/// user's own ([`locate`]); then those of `$VENVFS_EXTRA_CACHE_DIRS`. Each once.
pub fn locate_all(explicit: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    if explicit.is_empty() {
        out.extend(locate(None));
    } else {
        out.extend(explicit.iter().cloned());
    }
    if let Some(extra) = std::env::var_os(EXTRA_CACHES_VAR) {
        out.extend(std::env::split_paths(&extra).filter(|p| !p.as_os_str().is_empty()));
    }
    let mut seen = Vec::new();
    out.retain(|p| {
        let key = p.canonicalize().unwrap_or_else(|_| p.clone());
        let new = !seen.contains(&key);
        seen.push(key);
        new
    });
    out
}

fn env_path(k: &str) -> Option<PathBuf> {
    std::env::var_os(k)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The variable naming venvfs's own cache directory, before the XDG and home defaults.
pub const OWN_CACHE_VAR: &str = "VENVFS_CACHE_DIR";

/// Where venvfs's own cache directory may be, in order: `$VENVFS_CACHE_DIR`,
/// `$XDG_CACHE_HOME/venvfs`, `~/.cache/venvfs`.
pub fn own_cache_candidates() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    out.extend(env_path(OWN_CACHE_VAR));
    out.extend(env_path("XDG_CACHE_HOME").map(|d| d.join("venvfs")));
    out.extend(env_path("HOME").map(|h| h.join(".cache").join("venvfs")));
    out
}

/// venvfs's own cache directory, for what it only remembers to go faster (the index of uv's
/// cache, layer listings, interpreter facts): the first of [`own_cache_candidates`] that is
/// writable (made if missing), else the first that exists, to be read only (writing there
/// fails, and what would have been remembered is worked out again next time). `None` when
/// none is set or exists: nothing is remembered.
pub fn own_cache_dir() -> Option<PathBuf> {
    pick_own_cache(own_cache_candidates())
}

fn pick_own_cache(candidates: Vec<PathBuf>) -> Option<PathBuf> {
    if let Some(w) = candidates.iter().find(|d| writable_dir(d)) {
        return Some(w.clone());
    }
    candidates.into_iter().find(|d| d.is_dir())
}

/// The first of [`own_cache_candidates`] that is writable (made if missing), for what must be
/// kept (fetched wheels).
pub fn writable_own_cache_dir() -> Option<PathBuf> {
    own_cache_candidates().into_iter().find(|d| writable_dir(d))
}

/// Whether files can be made in `dir`, making it if missing. Never writes anything else:
/// the check is the kernel's (`access(W_OK)`, which also says no on a read-only mount).
pub fn writable_dir(dir: &Path) -> bool {
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    #[cfg(unix)]
    {
        rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).is_ok()
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(dir).is_ok_and(|m| !m.permissions().readonly())
    }
}

/// The unpacked wheels of a uv cache.
pub struct UvCache {
    pub root: PathBuf,
    pub entries: Vec<Entry>,
}

impl UvCache {
    pub fn archive_dir(root: &Path) -> PathBuf {
        root.join("archive-v0")
    }

    pub fn path_of(&self, e: &Entry) -> PathBuf {
        Self::archive_dir(&self.root).join(&e.id)
    }

    /// Reads the index, adding entries that appeared since and dropping those that are
    /// gone. A cache without `archive-v0` is empty.
    pub fn open(root: &Path) -> UvCache {
        let root = root.canonicalize().unwrap_or_else(|_| root.to_owned());
        let archive = Self::archive_dir(&root);
        let ids: Vec<String> = match std::fs::read_dir(&archive) {
            Ok(rd) => rd
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect(),
            Err(_) => Vec::new(),
        };
        let index_path = index_path(&root);
        let mut known: HashMap<String, Entry> = index_path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<IndexFile>(&b).ok())
            .filter(|f| f.format == INDEX_FORMAT && f.cache == root)
            .map(|f| f.entries.into_iter().map(|e| (e.id.clone(), e)).collect())
            .unwrap_or_default();
        let before = known.len();
        let mut entries = Vec::with_capacity(ids.len());
        let mut added = 0;
        for id in ids {
            let entry = match known.remove(&id) {
                Some(e) => e,
                None => {
                    added += 1;
                    read_entry(&archive.join(&id), &id)
                }
            };
            entries.push(entry);
        }
        let dropped = known.len();
        if added > 0 || dropped > 0 || before != entries.len() {
            tracing::debug!("uv cache index: {added} new, {dropped} gone");
            if let Some(p) = &index_path {
                let file = IndexFile {
                    format: INDEX_FORMAT,
                    cache: root.clone(),
                    entries: entries.clone(),
                };
                if let Ok(bytes) = serde_json::to_vec(&file) {
                    // only a cache: without it the next run reads the entries again
                    let _ = crate::fsutil::write_atomic(p, &bytes, 0o644);
                }
            }
        }
        entries.retain(|e| !e.name.is_empty());
        UvCache { root, entries }
    }
}

fn index_path(root: &Path) -> Option<PathBuf> {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(root.as_os_str().as_encoded_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Some(own_cache_dir()?.join(format!("uv-index-{hex}.json")))
}

/// What an archive entry holds, from its `.dist-info/METADATA` and `WHEEL`.
pub fn read_entry(dir: &Path, id: &str) -> Entry {
    let mut entry = Entry {
        id: id.to_owned(),
        name: String::new(),
        version: String::new(),
        build: None,
        tags: Vec::new(),
    };
    let Ok(rd) = std::fs::read_dir(dir) else {
        return entry;
    };
    let dist: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "dist-info"))
        .collect();
    let [dist] = dist.as_slice() else {
        return entry;
    };
    let (Ok(metadata), Ok(wheel)) = (
        std::fs::read(dist.join("METADATA")),
        std::fs::read_to_string(dist.join("WHEEL")),
    ) else {
        return entry;
    };
    let headers = crate::finder::metadata_headers(&metadata);
    let (Some(name), Some(version)) = (headers.name, headers.version) else {
        return entry;
    };
    for line in wheel.lines() {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim() {
                "Tag" => entry.tags.push(v.trim().to_owned()),
                "Build" => entry.build = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    entry.name = name;
    entry.version = version;
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_cache_is_the_first_writable_candidate() {
        let d = tempfile::tempdir().unwrap();
        // a directory that cannot be made: its parent is a file
        let file = d.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let impossible = file.join("venvfs");
        let second = d.path().join("second/venvfs");
        let third = d.path().join("third/venvfs");
        assert_eq!(
            pick_own_cache(vec![impossible.clone(), second.clone(), third.clone()]),
            Some(second.clone())
        );
        assert!(second.is_dir(), "made when missing");
        assert!(!third.exists(), "nothing made past the one chosen");
        assert_eq!(pick_own_cache(vec![impossible.clone()]), None);
        assert_eq!(pick_own_cache(Vec::new()), None);
    }
}
