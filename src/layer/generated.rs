//! The generated layer: the files installing wrote for all of a venv's wheels (launchers,
//! `#!python` scripts, RECORD, INSTALLER, REQUESTED, direct_url.json), kept in one archive
//! in the venv's state directory instead of one file each (and their directories) in the
//! venv's own directory. A venv of 37 distributions otherwise holds 148 `.dist-info` inodes
//! and a launcher per entry point of its own; with the archive it holds one file.
//!
//! The archive is a zip of stored (uncompressed) members at venv-relative paths carrying
//! their unix modes, so the mount serves it with the `.whl` machinery, in place: it is the
//! top-most lower layer, under the venv's own files and above every wheel layer. Whatever
//! a user, pip or uv writes over one of its files copies up as for any lower file, and
//! shadows it from then on; a deletion leaves a whiteout. Venvs installed before the
//! generated layer keep their generated files as own files, which win over the layer.
//!
//! This module reads it (for the commands that change or describe an unmounted venv);
//! `install/generated_layer.rs` writes it.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::wheel::{MemberCache, MemberKind, WheelArchive, WheelError};
use crate::manifest::{Layer, Manifest, Mapping};

/// An opened generated layer.
pub struct GeneratedLayer {
    archive: std::sync::Arc<WheelArchive>,
    /// venv-relative path -> member index (files only).
    files: HashMap<String, usize>,
    cache: MemberCache,
}

impl GeneratedLayer {
    /// Opens the archive at `path`.
    pub fn open(path: &Path) -> Result<GeneratedLayer, WheelError> {
        let archive = std::sync::Arc::new(WheelArchive::open(path)?);
        let files = archive
            .members()
            .iter()
            .enumerate()
            .filter(|(_, m)| m.kind == MemberKind::File)
            .map(|(i, m)| (m.name.to_string(), i))
            .collect();
        Ok(GeneratedLayer {
            archive,
            files,
            cache: MemberCache::new(16 << 20, 16 << 20, std::env::temp_dir()),
        })
    }

    /// The generated layer the manifest at `manifest_path` names, if any.
    pub fn of(
        manifest: &Manifest,
        manifest_path: &Path,
    ) -> Result<Option<GeneratedLayer>, WheelError> {
        match manifest.generated_path(manifest_path) {
            Some(path) => GeneratedLayer::open(&path).map(Some),
            None => Ok(None),
        }
    }

    /// Its archive's path.
    pub fn path(&self) -> &Path {
        self.archive.path()
    }

    /// Whether it holds a file at venv-relative `rel`.
    pub fn contains(&self, rel: &str) -> bool {
        self.files.contains_key(rel)
    }

    /// Its files: (venv-relative path, mode, modification time).
    pub fn files(&self) -> impl Iterator<Item = (&str, u32, std::time::SystemTime)> {
        self.files.iter().map(|(p, &i)| {
            let m = &self.archive.members()[i];
            (p.as_str(), m.mode, m.mtime)
        })
    }

    /// The bytes of its file at venv-relative `rel` (`NotFound` if it has none).
    pub fn read(&self, rel: &str) -> io::Result<Vec<u8>> {
        let &index = self.files.get(rel).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{rel} is not in {}", self.path().display()),
            )
        })?;
        let size = self.archive.members()[index].size;
        let data = self
            .cache
            .open(&self.archive, index)
            .map_err(io::Error::other)?;
        data.read_at(0, size as usize)
    }
}

/// The manifest layer that shows the archive at `path`: its members at their own paths.
pub fn layer(path: PathBuf) -> Layer {
    Layer {
        source: path,
        name: String::new(),
        version: String::new(),
        map: vec![Mapping {
            from: String::new(),
            to: Some(String::new()),
            skip: false,
        }],
        installed: false,
    }
}

/// The label the generated layer has in messages and `status`.
pub const LABEL: &str = "generated files";

/// What an unmounted venv shows of the files installing generated: its own directory
/// (`root`, the venv itself or reached beneath its mount) over its generated layer.
pub struct OwnView<'a> {
    root: &'a Path,
    generated: Option<GeneratedLayer>,
}

impl<'a> OwnView<'a> {
    /// The view of the venv whose own directory is `root`, with the generated layer its
    /// manifest names (none: a venv installed before the generated layer, or without one).
    pub fn new(root: &'a Path, manifest: &Manifest) -> Result<OwnView<'a>, WheelError> {
        let generated = GeneratedLayer::of(manifest, &crate::manifest::manifest_path(root))?;
        Ok(OwnView { root, generated })
    }

    /// The view of `root` over an already opened generated layer.
    pub fn with(root: &'a Path, generated: Option<GeneratedLayer>) -> OwnView<'a> {
        OwnView { root, generated }
    }

    pub fn generated(&self) -> Option<&GeneratedLayer> {
        self.generated.as_ref()
    }

    /// The file at venv-relative `rel` as the venv shows it: the own file, else the
    /// generated layer's unless a whiteout or opaque directory of the own hides it.
    pub fn read(&self, rel: &str) -> io::Result<Vec<u8>> {
        match std::fs::read(self.root.join(rel)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => match &self.generated {
                Some(g) if g.contains(rel) && !crate::upper_format::hides(self.root, rel) => {
                    g.read(rel)
                }
                _ => Err(e),
            },
            other => other,
        }
    }

    /// Whether the venv shows a file at venv-relative `rel` (own or generated).
    pub fn is_file(&self, rel: &str) -> bool {
        if self.root.join(rel).is_file() {
            return true;
        }
        self.generated
            .as_ref()
            .is_some_and(|g| g.contains(rel) && !crate::upper_format::hides(self.root, rel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_files_win_and_markers_hide() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let zip = root.join("g.zip");
        let files = vec![
            ("bin/tool".to_owned(), b"#!/py\n".to_vec(), 0o755),
            (
                "site/a-1.dist-info/RECORD".to_owned(),
                b"rec".to_vec(),
                0o644,
            ),
            ("site/b-1.dist-info/RECORD".to_owned(), b"b".to_vec(), 0o644),
        ];
        std::fs::write(&zip, crate::install::generated_layer::archive(&files)).unwrap();
        let g = GeneratedLayer::open(&zip).unwrap();
        let modes: HashMap<&str, u32> = g.files().map(|(p, m, _)| (p, m)).collect();
        assert_eq!(modes["bin/tool"], 0o755);
        assert_eq!(modes["site/a-1.dist-info/RECORD"], 0o644);
        let view = OwnView::with(root, Some(g));
        assert_eq!(view.read("bin/tool").unwrap(), b"#!/py\n");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/tool"), b"edited").unwrap();
        assert_eq!(view.read("bin/tool").unwrap(), b"edited");
        std::fs::create_dir_all(root.join("site")).unwrap();
        std::fs::write(root.join("site/.wh.a-1.dist-info"), b"").unwrap();
        assert!(!view.is_file("site/a-1.dist-info/RECORD"));
        assert!(view.is_file("site/b-1.dist-info/RECORD"));
        assert_eq!(
            view.read("site/a-1.dist-info/RECORD").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
