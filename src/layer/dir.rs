//! Directory layers: an unpacked wheel (such as uv's `archive-v0/<id>/`) listed once at mount.

use std::path::{Component, Path};
use std::time::SystemTime;

use venvfs_api::FileKind;

use super::{LayerEntry, LayerError};

/// Lists every entry below `root`, depth first. Symlinks are read (their targets must stay
/// inside the layer) but not followed.
///
/// Everything is asked relative to the directory's own descriptor (`openat`, `fstatat`,
/// `readlinkat`): no path is resolved again from the root, which matters for the thousands
/// of files of a big layer and more on a network filesystem.
#[cfg(unix)]
pub fn scan(root: &Path, label: &str) -> Result<Vec<LayerEntry>, LayerError> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    use std::ffi::OsStr;
    use std::os::fd::OwnedFd;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::sync::Arc;

    let unreadable = |path: &Path| {
        let path = path.to_owned();
        move |e: rustix::io::Errno| LayerError::Unreadable {
            label: label.to_owned(),
            path,
            source: e.into(),
        }
    };
    let open_dir = |at: Option<&OwnedFd>, name: &Path, shown: &Path| {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        match at {
            // (the root may be reached through a symlink; nothing below it is followed)
            Some(dir) => rustix::fs::openat(dir, name, flags | OFlags::NOFOLLOW, Mode::empty()),
            None => rustix::fs::open(name, flags, Mode::empty()),
        }
        .map_err(unreadable(shown))
    };
    let mut out = Vec::new();
    // Directories still to list: the parent's descriptor (none for the root) and the path.
    // A directory is opened when its turn comes, so only its ancestors' are open at once.
    let mut pending: Vec<(Option<Arc<OwnedFd>>, String)> = vec![(None, String::new())];
    while let Some((parent, rel)) = pending.pop() {
        let shown = root.join(&rel);
        let fd = Arc::new(match &parent {
            None => open_dir(None, root, &shown)?,
            Some(p) => {
                let name = rel.rsplit('/').next().unwrap_or(&rel);
                open_dir(Some(p), Path::new(name), &shown)?
            }
        });
        let mut dir = rustix::fs::Dir::read_from(&fd).map_err(unreadable(&shown))?;
        while let Some(item) = dir.read() {
            let item = item.map_err(unreadable(&shown))?;
            let name_c = item.file_name();
            let raw = name_c.to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let Ok(name) = std::str::from_utf8(raw) else {
                return Err(LayerError::Unsafe {
                    label: label.to_owned(),
                    path: shown.join(OsStr::from_bytes(raw)),
                    why: "file name is not valid UTF-8, which wheels cannot contain".into(),
                });
            };
            let child_rel = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            };
            let path = || root.join(&child_rel);
            let st = rustix::fs::statat(&fd, name_c, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| unreadable(&path())(e))?;
            let kind = FileKind::from_mode(st.st_mode);
            let target = if kind == FileKind::Symlink {
                let t = rustix::fs::readlinkat(&fd, name_c, Vec::new())
                    .map_err(|e| unreadable(&path())(e))?;
                let t = std::ffi::OsString::from_vec(t.into_bytes());
                if escapes(&child_rel, Path::new(&t)) {
                    return Err(LayerError::Unsafe {
                        label: label.to_owned(),
                        path: path(),
                        why: format!(
                            "symlink to {} points outside the layer",
                            Path::new(&t).display()
                        ),
                    });
                }
                Some(t)
            } else {
                None
            };
            if kind == FileKind::Dir {
                pending.push((Some(Arc::clone(&fd)), child_rel.clone()));
            }
            out.push(LayerEntry {
                rel: child_rel,
                kind,
                perm: (st.st_mode & 0o7777) as u16,
                size: st.st_size as u64,
                mtime: crate::fsutil::system_time(st.st_mtime, st.st_mtime_nsec as i64),
                target,
                member: None,
            });
        }
    }
    Ok(out)
}

/// Lists every entry below `root`, depth first. Symlinks are read (their targets must stay
/// inside the layer) but not followed.
///
/// Without Unix directory descriptors, by path: a directory is listed, and its entries
/// `lstat`-ed, through its path from the root. Permission bits are made up as Windows has
/// none: 0o755 for directories, 0o644 for files (0o444 if read-only), 0o777 for symlinks.
#[cfg(not(unix))]
pub fn scan(root: &Path, label: &str) -> Result<Vec<LayerEntry>, LayerError> {
    let unreadable = |path: &Path| {
        let path = path.to_owned();
        move |source: std::io::Error| LayerError::Unreadable {
            label: label.to_owned(),
            path,
            source,
        }
    };
    let mut out = Vec::new();
    // Directories still to list, relative to the root ("" is the root, which may be reached
    // through a symlink; nothing below it is followed).
    let mut pending = vec![String::new()];
    while let Some(rel) = pending.pop() {
        let shown = root.join(&rel);
        for item in std::fs::read_dir(&shown).map_err(unreadable(&shown))? {
            let item = item.map_err(unreadable(&shown))?;
            let file_name = item.file_name();
            let Some(name) = file_name.to_str() else {
                return Err(LayerError::Unsafe {
                    label: label.to_owned(),
                    path: shown.join(&file_name),
                    why: "file name is not valid UTF-8, which wheels cannot contain".into(),
                });
            };
            let child_rel = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            };
            let path = item.path();
            let meta = std::fs::symlink_metadata(&path).map_err(unreadable(&path))?;
            let (kind, perm) = if meta.is_symlink() {
                (FileKind::Symlink, 0o777)
            } else if meta.is_dir() {
                (FileKind::Dir, 0o755)
            } else if meta.permissions().readonly() {
                (FileKind::File, 0o444)
            } else {
                (FileKind::File, 0o644)
            };
            let mut size = meta.len();
            let target = if kind == FileKind::Symlink {
                let t = std::fs::read_link(&path).map_err(unreadable(&path))?;
                if escapes(&child_rel, &t) {
                    return Err(LayerError::Unsafe {
                        label: label.to_owned(),
                        path,
                        why: format!("symlink to {} points outside the layer", t.display()),
                    });
                }
                // (as `lstat` gives it on Unix)
                size = t.as_os_str().len() as u64;
                Some(t.into_os_string())
            } else {
                None
            };
            if kind == FileKind::Dir {
                pending.push(child_rel.clone());
            }
            out.push(LayerEntry {
                rel: child_rel,
                kind,
                perm,
                size,
                mtime: mtime_of(&meta),
                target,
                member: None,
            });
        }
    }
    Ok(out)
}

#[cfg(unix)]
pub fn mtime_of(meta: &std::fs::Metadata) -> SystemTime {
    use std::os::unix::fs::MetadataExt;
    crate::fsutil::system_time(meta.mtime(), meta.mtime_nsec())
}

#[cfg(not(unix))]
pub fn mtime_of(meta: &std::fs::Metadata) -> SystemTime {
    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Whether a symlink at layer path `link_rel` with target `target` resolves outside the layer.
pub fn escapes(link_rel: &str, target: &Path) -> bool {
    if target.is_absolute() {
        return true;
    }
    // depth of the directory holding the link
    let mut depth = link_rel.split('/').count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return true,
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_escape() {
        assert!(!escapes("a/b/link", Path::new("../c")));
        assert!(!escapes("a/link", Path::new("b/../c")));
        assert!(escapes("a/link", Path::new("../../etc")));
        assert!(escapes("link", Path::new("../x")));
        assert!(escapes("a/link", Path::new("/etc/passwd")));
        assert!(escapes("a/link", Path::new("b/../../../x")));
    }

    #[test]
    fn scan_lists_everything_below_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("pkg/sub")).unwrap();
        std::fs::write(root.join("pkg/mod.py"), "x = 1\n").unwrap();
        std::fs::write(root.join("pkg/sub/data.txt"), "").unwrap();
        let mut found: Vec<_> = scan(root, "t")
            .unwrap()
            .into_iter()
            .map(|e| (e.rel, e.kind, e.size))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        let sizes: Vec<_> = found.iter().map(|(_, _, s)| *s).collect();
        let found: Vec<_> = found.into_iter().map(|(r, k, _)| (r, k)).collect();
        assert_eq!(
            found,
            [
                ("pkg".to_owned(), FileKind::Dir),
                ("pkg/mod.py".to_owned(), FileKind::File),
                ("pkg/sub".to_owned(), FileKind::Dir),
                ("pkg/sub/data.txt".to_owned(), FileKind::File),
            ]
        );
        assert_eq!((sizes[1], sizes[3]), (6, 0));
    }
}
