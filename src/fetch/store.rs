//! venvfs's wheel store: the `.whl` files it fetched, kept in `wheels/` of its own cache
//! directory and served in place as layers, as any `--find-links` wheel is.
//!
//! Layout: `wheels/<sha256>/<file name>`, one directory per wheel, named by the hash of its
//! bytes. A file there was checked before it got there and never changes afterwards, so two
//! indexes serving different files of one name cannot collide, and a layer's source path
//! stays valid for as long as the store keeps it.
//!
//! A download is written to a temporary file in `wheels/.tmp/`, fsynced, checked, and only
//! then linked to its final name, so a partial file is never visible under `wheels/<sha256>/`.
//! Two processes fetching the same wheel at once both finish: the first to link its copy
//! wins, and the other finds that name taken by identical bytes and drops its own.

use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::tags::WheelFilename;

/// Temporary files older than this are from a process that died; they are removed.
const STALE: Duration = Duration::from_secs(24 * 3600);

/// How a temporary file's name starts: `download.<owner>.<random>.part`.
const DOWNLOAD: &str = "download.";

/// The process that writes the temporary file `name` (see [`crate::upper::work::Owner`]).
fn downloader(name: &str) -> Option<crate::upper::work::Owner> {
    let owner_and_random = name.strip_prefix(DOWNLOAD)?.strip_suffix(".part")?;
    let (owner, _) = owner_and_random.rsplit_once('.')?;
    crate::upper::work::Owner::parse(owner)
}

#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

/// A wheel the store holds.
#[derive(Debug, Clone)]
pub struct Stored {
    pub path: PathBuf,
    pub filename: String,
    pub sha256: String,
}

impl Store {
    /// The store in venvfs's cache directory (`$VENVFS_CACHE_DIR/wheels`, else
    /// `$XDG_CACHE_HOME/venvfs/wheels`, else `~/.cache/venvfs/wheels`), to look in: a
    /// read-only one is read.
    pub fn locate() -> Option<Store> {
        Some(Self::at(
            crate::finder::uvcache::own_cache_dir()?.join("wheels"),
        ))
    }

    /// The store to fetch into: in the first of those directories that is writable.
    pub fn locate_writable() -> Option<Store> {
        Some(Self::at(
            crate::finder::uvcache::writable_own_cache_dir()?.join("wheels"),
        ))
    }

    fn at(root: PathBuf) -> Store {
        // (absolute: layers are recorded by their source's path)
        Store {
            root: std::path::absolute(&root).unwrap_or(root),
        }
    }

    /// Where the wheel of that hash and name is kept.
    pub fn path_of(&self, sha256: &str, filename: &str) -> PathBuf {
        self.root.join(sha256).join(filename)
    }

    /// Every wheel in the store (none when it does not exist yet).
    pub fn list(&self) -> Vec<Stored> {
        let Ok(dirs) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for d in dirs.flatten() {
            let Ok(sha256) = d.file_name().into_string() else {
                continue;
            };
            if sha256.starts_with('.') {
                continue;
            }
            let Ok(files) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for f in files.flatten() {
                let Ok(filename) = f.file_name().into_string() else {
                    continue;
                };
                if WheelFilename::parse(&filename).is_some() {
                    out.push(Stored {
                        path: f.path(),
                        filename,
                        sha256: sha256.clone(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// A new temporary file for a download, in the store's own filesystem so that keeping
    /// it is a link, not a copy. Removes what dead processes left there.
    pub fn temp_file(&self) -> io::Result<tempfile::NamedTempFile> {
        let dir = self.root.join(".tmp");
        std::fs::create_dir_all(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        // (named by their process: one of this host that is gone, killed or interrupted
        // with Ctrl-C, left its partial download, which goes now; the store may be shared
        // by hosts, whose processes this one cannot see: theirs go after a day)
        let me = crate::upper::work::Owner::this();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let now = SystemTime::now();
            for e in rd.flatten() {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|age| age > STALE);
                let left = downloader(&e.file_name().to_string_lossy())
                    .is_some_and(|o| o.pid != me.pid && o.is_gone(&me));
                if old || left {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        tempfile::Builder::new()
            .prefix(&format!("{DOWNLOAD}{}.", me.name()))
            .suffix(".part")
            .tempfile_in(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))
    }

    /// Keeps a downloaded and checked file as `filename` with hash `sha256`: fsyncs it,
    /// makes it readable by all (a mount serves it to other users too) and links it in
    /// place. When another process kept the same wheel meanwhile, that one stays.
    pub fn keep(
        &self,
        file: tempfile::NamedTempFile,
        sha256: &str,
        filename: &str,
    ) -> io::Result<PathBuf> {
        if WheelFilename::parse(filename).is_none() || filename.contains(['/', '\\']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{filename}` is not a wheel file name"),
            ));
        }
        crate::fsutil::set_mode(file.as_file(), 0o644)?;
        file.as_file().sync_all()?;
        let dir = self.root.join(sha256);
        std::fs::create_dir_all(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        let target = dir.join(filename);
        match file.persist_noclobber(&target) {
            Ok(_) => {}
            // the same bytes, kept by another process since: the temporary file goes
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.error.kind(),
                    format!("{}: {}", target.display(), e.error),
                ))
            }
        }
        let _ = crate::fsutil::sync_dir(&dir);
        let _ = crate::fsutil::sync_dir(&self.root);
        Ok(target)
    }

    /// Whether the store holds that wheel already.
    pub fn has(&self, sha256: &str, filename: &str) -> Option<PathBuf> {
        let p = self.path_of(sha256, filename);
        p.is_file().then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn keeps_files_whole_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store {
            root: dir.path().join("wheels"),
        };
        assert!(store.list().is_empty());
        let name = "six-1.17.0-py2.py3-none-any.whl";
        let mut a = store.temp_file().unwrap();
        a.write_all(b"same bytes").unwrap();
        let mut b = store.temp_file().unwrap();
        b.write_all(b"same bytes").unwrap();
        // nothing is listed while the downloads are under way
        assert!(store.list().is_empty());
        let p1 = store.keep(a, "ab12", name).unwrap();
        let p2 = store.keep(b, "ab12", name).unwrap();
        assert_eq!(p1, p2);
        assert_eq!(std::fs::read(&p1).unwrap(), b"same bytes");
        let listed = store.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].sha256, "ab12");
        assert_eq!(store.has("ab12", name), Some(p1));
        // both temporary files are gone
        assert_eq!(
            std::fs::read_dir(dir.path().join("wheels/.tmp"))
                .unwrap()
                .count(),
            0
        );
        let c = store.temp_file().unwrap();
        assert!(store.keep(c, "cd34", "../evil.whl").is_err());
    }

    // (elsewhere no process is known gone: a partial download goes after a day)
    #[cfg(target_os = "linux")]
    #[test]
    fn a_partial_download_of_a_process_that_is_gone_goes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store {
            root: dir.path().join("wheels"),
        };
        let first = store.temp_file().unwrap();
        let tmp = dir.path().join("wheels/.tmp");
        let me = crate::upper::work::Owner::this();
        let gone = crate::upper::work::Owner {
            pid: 999_999_999, // (more than any pid the kernel gives)
            ..me.clone()
        };
        let elsewhere = crate::upper::work::Owner {
            host: "another-host".into(),
            ..gone.clone()
        };
        for owner in [&gone, &elsewhere] {
            std::fs::write(
                tmp.join(format!("{DOWNLOAD}{}.Ab3xYz.part", owner.name())),
                b"x",
            )
            .unwrap();
        }
        let _second = store.temp_file().unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        // (this process's own, a download under way, stays: so does another host's)
        assert_eq!(left.len(), 3, "{left:?}");
        assert!(left.iter().any(|n| n.contains("another-host")));
        let gone_file = format!("{DOWNLOAD}{}.Ab3xYz.part", gone.name());
        assert!(!left.contains(&gone_file), "{left:?}");
        assert!(first.path().exists());
    }
}
