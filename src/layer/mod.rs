//! Read-only layers: where a wheel's files come from.
//!
//! A layer is either a directory holding an unpacked wheel (a uv cache entry
//! `archive-v0/<id>/`) or a `.whl` file served in place. Both are immutable while mounted,
//! which is what lets the kernel cache them aggressively.

pub mod dir;
pub mod generated;
pub mod listing;
pub mod wheel;

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use venvfs_api::FileKind;

use crate::manifest::Layer;
use wheel::{MemberCache, MemberData, WheelArchive, WheelError};

/// One file, directory or symlink a layer holds, with its path inside the layer.
#[derive(Debug, Clone)]
pub struct LayerEntry {
    /// '/'-separated path relative to the layer root; never empty.
    pub rel: String,
    pub kind: FileKind,
    pub perm: u16,
    pub size: u64,
    pub mtime: SystemTime,
    /// Symlinks only: the link target.
    pub target: Option<OsString>,
    /// Wheel layers: the member index in the archive.
    pub member: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {label}: {path} is missing: {source}\n  the cache entry was removed or moved; re-create it (for uv: `uv pip install --no-deps --target \"$(mktemp -d)\" {label}`) and mount again, which finds the same wheel under its new id; or drop the layer from {manifest}")]
    Missing {
        label: String,
        path: PathBuf,
        manifest: String,
        source: std::io::Error,
    },
    #[error("layer {label}: cannot read {path}: {source}")]
    Unreadable {
        label: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("layer {label}: {path}: {why}\n  the layer is refused; remove it from the venv or rebuild the cache entry")]
    Unsafe {
        label: String,
        path: PathBuf,
        why: String,
    },
    #[error("layer {label}: {source}")]
    Wheel { label: String, source: WheelError },
}

/// An opened layer source.
pub enum Source {
    Dir { root: PathBuf },
    Wheel(Arc<WheelArchive>),
}

impl Source {
    /// Opens a layer and lists its entries. Reads directory metadata or the zip central
    /// directory only, never file contents.
    pub fn open(layer: &Layer, manifest: &Path) -> Result<(Source, Vec<LayerEntry>), LayerError> {
        let label = layer.label();
        let meta = std::fs::metadata(&layer.source).map_err(|source| LayerError::Missing {
            label: label.clone(),
            path: layer.source.clone(),
            manifest: manifest.display().to_string(),
            source,
        })?;
        if meta.is_dir() {
            let entries = listing::list(&layer.source, &label)?;
            Ok((
                Source::Dir {
                    root: layer.source.clone(),
                },
                entries,
            ))
        } else {
            let archive =
                WheelArchive::open(&layer.source).map_err(|source| LayerError::Wheel {
                    label: label.clone(),
                    source,
                })?;
            let entries =
                wheel_entries(&archive).map_err(|source| LayerError::Wheel { label, source })?;
            Ok((Source::Wheel(Arc::new(archive)), entries))
        }
    }

    /// A short description for logs and `status`.
    pub fn path(&self) -> &Path {
        match self {
            Source::Dir { root } => root,
            Source::Wheel(w) => w.path(),
        }
    }
}

fn wheel_entries(archive: &WheelArchive) -> Result<Vec<LayerEntry>, WheelError> {
    let mut out = Vec::with_capacity(archive.members().len());
    for (i, m) in archive.members().iter().enumerate() {
        let kind = match m.kind {
            wheel::MemberKind::File => FileKind::File,
            wheel::MemberKind::Dir => FileKind::Dir,
            wheel::MemberKind::Symlink => FileKind::Symlink,
        };
        let target = if kind == FileKind::Symlink {
            Some(archive.symlink_target(i)?.into())
        } else {
            None
        };
        out.push(LayerEntry {
            rel: m.name.to_string(),
            kind,
            perm: (m.mode & 0o7777) as u16,
            size: m.size,
            mtime: m.mtime,
            target,
            member: Some(i as u32),
        });
    }
    Ok(out)
}

/// Where a lower file's bytes are read from, once opened.
pub enum Content {
    /// A file of a directory layer.
    File(Arc<File>),
    /// A wheel member.
    Member(MemberData),
}

impl Content {
    pub fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        match self {
            Content::File(f) => read_file_at(f, offset, len),
            Content::Member(m) => m.read_at(offset, len),
        }
    }

    /// A local file holding exactly this content, if there is one (for FUSE passthrough).
    pub fn backing_file(&self) -> Option<Arc<File>> {
        match self {
            Content::File(f) => Some(f.clone()),
            Content::Member(m) => m.backing_file(),
        }
    }
}

/// Opens the content of a lower file.
pub fn open_content(
    source: &Source,
    members: &MemberCache,
    src_rel: &str,
    member: Option<u32>,
) -> Result<Content, venvfs_api::Error> {
    match source {
        Source::Dir { root } => {
            let path = root.join(src_rel);
            let file = open_nofollow(&path).map_err(|e| venvfs_api::Error::Corrupt {
                what: path.display().to_string(),
                why: format!("the layer file can no longer be opened ({e}); was the cache pruned?"),
            })?;
            Ok(Content::File(Arc::new(file)))
        }
        Source::Wheel(archive) => {
            let index = member.ok_or(venvfs_api::Error::Invalid("wheel entry without member"))?;
            members
                .open(archive, index as usize)
                .map(Content::Member)
                .map_err(|e| venvfs_api::Error::Corrupt {
                    what: archive.path().display().to_string(),
                    why: e.to_string(),
                })
        }
    }
}

#[cfg(unix)]
fn open_nofollow(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Opens a file for reading, refusing a symlink (checked just before: Windows has no
/// flag that makes the open itself fail on one).
#[cfg(not(unix))]
fn open_nofollow(path: &Path) -> std::io::Result<File> {
    if std::fs::symlink_metadata(path)?.is_symlink() {
        return Err(std::io::Error::other("is a symlink"));
    }
    File::open(path)
}

/// Reads up to `len` bytes at `offset`; shorter at end of file. The buffer is not zeroed
/// first (this serves every read the kernel sends for a file).
#[cfg(unix)]
pub fn read_file_at(f: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        match rustix::io::pread(f, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    buf.truncate(len); // (in case the allocation gave room for more)
    Ok(buf)
}

/// Reads up to `len` bytes at `offset`; shorter at end of file.
#[cfg(not(unix))]
pub fn read_file_at(f: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    let n = crate::fsutil::read_full_at(f, &mut buf, offset)?;
    buf.truncate(n);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    #[test]
    fn read_file_at_stops_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let f = super::open_nofollow(&p).unwrap();
        assert_eq!(super::read_file_at(&f, 3, 4).unwrap(), b"3456");
        assert_eq!(super::read_file_at(&f, 8, 100).unwrap(), b"89");
        assert!(super::read_file_at(&f, 20, 5).unwrap().is_empty());
    }
}
