//! Directory layers: an unpacked wheel (such as uv's `archive-v0/<id>/`) listed once at mount.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path};
use std::time::SystemTime;

use venvfs_api::FileKind;

use super::{LayerEntry, LayerError};

/// Lists every entry below `root`, depth first. Symlinks are read (their targets must stay
/// inside the layer) but not followed.
pub fn scan(root: &Path, label: &str) -> Result<Vec<LayerEntry>, LayerError> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let dir = if rel.is_empty() {
            root.to_owned()
        } else {
            root.join(&rel)
        };
        let unreadable = |source| LayerError::Unreadable {
            label: label.to_owned(),
            path: dir.clone(),
            source,
        };
        for item in std::fs::read_dir(&dir).map_err(unreadable)? {
            let item = item.map_err(unreadable)?;
            let name = item.file_name();
            let Some(name) = name.to_str() else {
                return Err(LayerError::Unsafe {
                    label: label.to_owned(),
                    path: item.path(),
                    why: "file name is not valid UTF-8, which wheels cannot contain".into(),
                });
            };
            let child_rel = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            };
            let meta = item.metadata().map_err(|source| LayerError::Unreadable {
                label: label.to_owned(),
                path: item.path(),
                source,
            })?;
            let kind = FileKind::from_mode(meta.mode());
            let target = if kind == FileKind::Symlink {
                let t =
                    std::fs::read_link(item.path()).map_err(|source| LayerError::Unreadable {
                        label: label.to_owned(),
                        path: item.path(),
                        source,
                    })?;
                if escapes(&child_rel, &t) {
                    return Err(LayerError::Unsafe {
                        label: label.to_owned(),
                        path: item.path(),
                        why: format!("symlink to {} points outside the layer", t.display()),
                    });
                }
                Some(t.into_os_string())
            } else {
                None
            };
            if kind == FileKind::Dir {
                stack.push(child_rel.clone());
            }
            out.push(LayerEntry {
                rel: child_rel,
                kind,
                perm: (meta.permissions().mode() & 0o7777) as u16,
                size: meta.len(),
                mtime: mtime_of(&meta),
                target,
                member: None,
            });
        }
    }
    Ok(out)
}

pub fn mtime_of(meta: &std::fs::Metadata) -> SystemTime {
    crate::fsutil::system_time(meta.mtime(), meta.mtime_nsec())
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
}
