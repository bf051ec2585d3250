//! The manifest: which read-only layers a venv is made of, and where their files go.
//!
//! It lives at `<venv>/.venvfs/manifest.toml`, is plain TOML meant to be read by people, and is
//! always replaced atomically (written to a temporary file, fsynced, renamed over the old one),
//! so a crash leaves either the old manifest or the new one.
//!
//! ```toml
//! version = 1
//!
//! [[layer]]                       # listed top first: the first layer with a path wins
//! source = "/home/me/.cache/uv/archive-v0/Xy12/"   # a directory or a .whl file
//! name = "numpy"
//! version = "2.4.6"
//! map = [
//!   { from = "", to = "lib/python3.11/site-packages" },
//!   { from = "numpy-2.4.6.data", skip = true },
//!   { from = "numpy-2.4.6.data/scripts", to = "bin" },
//! ]
//! ```
//! A file of the layer goes where the mapping with the longest matching `from` prefix sends
//! it; a `skip` mapping hides what is below it.
//!
//! `generated = "generated-<hash>.zip"` (format version 2) names the venv's generated layer:
//! one archive in [`STATE_DIR`] holding the files installing wrote for all of the venv's
//! wheels (launchers, RECORD, INSTALLER, ...) at their venv paths, shown above every
//! `[[layer]]` and under the venv's own files (see `layer/generated.rs`). It is named by
//! its content and never rewritten in place: a change writes a new archive, and replacing
//! the manifest that names it is the change's commit point, as for the layers.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::name::PackageName;

/// The manifest format this build writes for a venv without a generated layer (as every
/// venvfs before the generated layer wrote it).
pub const FORMAT_VERSION: u32 = 1;
/// The format of a manifest that names a generated layer: a venvfs that does not know the
/// field must refuse such a venv, not show it without its launchers and RECORD files.
pub const FORMAT_VERSION_GENERATED: u32 = 2;
/// The venvfs state directory inside a venv (hidden from the mounted view).
pub const STATE_DIR: &str = ".venvfs";
/// The manifest's file name inside [`STATE_DIR`].
pub const MANIFEST_FILE: &str = "manifest.toml";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid venvfs manifest: {why}\n  fix or remove the file, then run the command again")]
    Parse { path: PathBuf, why: String },
    #[error("{path} has format version {found}, but this venvfs reads versions {FORMAT_VERSION} and {FORMAT_VERSION_GENERATED}: upgrade venvfs")]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One mapping rule of a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    /// A '/'-separated path prefix inside the layer ("" is the layer's root).
    pub from: String,
    /// Where that prefix lands in the venv, relative to the venv root ("" is the root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Hide everything below `from`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip: bool,
}

/// One read-only layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// An unpacked wheel directory or a `.whl` file.
    pub source: PathBuf,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    pub map: Vec<Mapping>,
    /// Installed by `venvfs install`/`sync`, which write its RECORD (and the other files an
    /// installer makes) into the venv's own site-packages: when that RECORD goes without
    /// the mount seeing it, uv or pip uninstalled the distribution while the venv was not
    /// mounted. (`layer add` writes none; manifests from before this field have none.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub installed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// The generated layer's file name in [`STATE_DIR`], if the venv has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<String>,
    #[serde(default, rename = "layer")]
    pub layers: Vec<Layer>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            version: FORMAT_VERSION,
            generated: None,
            layers: Vec::new(),
        }
    }
}

/// Where a venv's manifest is.
pub fn manifest_path(venv: &Path) -> PathBuf {
    venv.join(STATE_DIR).join(MANIFEST_FILE)
}

impl Manifest {
    /// The generated layer's archive, for the manifest at `manifest_path` (which may be
    /// reached beneath a mount), if the venv has one.
    pub fn generated_path(&self, manifest_path: &Path) -> Option<PathBuf> {
        let name = self.generated.as_ref()?;
        Some(manifest_path.parent()?.join(name))
    }
}

impl Manifest {
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: Option<u32>,
        }
        let parse_err = |e: toml::de::Error| ManifestError::Parse {
            path: path.to_owned(),
            why: e.to_string().trim().to_owned(),
        };
        let v: VersionOnly = toml::from_str(text).map_err(parse_err)?;
        match v.version {
            Some(FORMAT_VERSION | FORMAT_VERSION_GENERATED) => {}
            Some(found) => {
                return Err(ManifestError::Version {
                    path: path.to_owned(),
                    found,
                })
            }
            None => {
                return Err(ManifestError::Parse {
                    path: path.to_owned(),
                    why: "missing `version = 1`".into(),
                })
            }
        }
        let m: Manifest = toml::from_str(text).map_err(parse_err)?;
        m.validate().map_err(|why| ManifestError::Parse {
            path: path.to_owned(),
            why,
        })?;
        Ok(m)
    }

    /// Reads a manifest; a venv without one has no layers.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Manifest::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(source) => Err(ManifestError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(name) = &self.generated {
            if check_rel(name).is_err() || name.is_empty() || name.contains('/') {
                return Err(format!(
                    "generated {name:?} must be a file name in {STATE_DIR}"
                ));
            }
        }
        for (i, layer) in self.layers.iter().enumerate() {
            if !layer.source.is_absolute() {
                return Err(format!(
                    "layer {} source {:?} is not an absolute path",
                    i + 1,
                    layer.source
                ));
            }
            for m in &layer.map {
                check_rel(&m.from)
                    .map_err(|w| format!("layer {} map from {:?}: {w}", i + 1, m.from))?;
                match (&m.to, m.skip) {
                    (Some(to), false) => check_rel(to)
                        .map_err(|w| format!("layer {} map to {:?}: {w}", i + 1, to))?,
                    (None, true) => {}
                    _ => {
                        return Err(format!(
                            "layer {} map from {:?} needs exactly one of `to` and `skip = true`",
                            i + 1,
                            m.from
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# venvfs manifest: the read-only layers of this venv, top first.\n\
             # Written by venvfs; see its README for the format.\n",
        );
        let versioned = Manifest {
            version: if self.generated.is_some() {
                FORMAT_VERSION_GENERATED
            } else {
                FORMAT_VERSION
            },
            ..self.clone()
        };
        out.push_str(&toml::to_string(&versioned).expect("a manifest always serializes"));
        out
    }

    /// The manifest without the layers whose source is gone, and those layers: a cache
    /// entry removed while the venv is mounted (`uv cache clean`, `uv cache prune`). A
    /// mounted venv shows the others (see `daemon/sources.rs`); a source that cannot be
    /// looked at for another reason counts as there, so that its error is seen.
    pub fn split_gone(self) -> (Manifest, Vec<Layer>) {
        let (layers, gone) = self
            .layers
            .into_iter()
            .partition(|l| !source_gone(&l.source));
        (Manifest { layers, ..self }, gone)
    }

    /// Replaces the manifest at `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), ManifestError> {
        crate::fsutil::write_atomic(path, self.to_toml().as_bytes(), 0o644).map_err(|source| {
            ManifestError::Write {
                path: path.to_owned(),
                source,
            }
        })
    }
}

/// Whether a layer's source is gone (not merely unreadable).
pub fn source_gone(source: &Path) -> bool {
    matches!(std::fs::metadata(source), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

/// A venv-relative or layer-relative path: '/'-separated, no empty, "." or ".." parts.
fn check_rel(p: &str) -> Result<(), &'static str> {
    if p.is_empty() {
        return Ok(());
    }
    if p.starts_with('/') || p.contains('\\') || p.contains('\0') {
        return Err("must be a relative '/'-separated path");
    }
    if p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err("must not contain empty, '.' or '..' parts");
    }
    Ok(())
}

impl Layer {
    /// Where the layer path `rel` ('/'-separated) goes in the venv, or None if it is hidden.
    /// Returns the venv-relative destination ("" is the venv root).
    pub fn destination(&self, rel: &str) -> Option<String> {
        let (to, rest) = self.destination_parts(rel)?;
        Some(join_rel(to, rest))
    }

    /// [`Layer::destination`] as two parts to join with `/` (either may be empty), without
    /// building the string: the mapping's target and the rest of `rel` below its source.
    pub fn destination_parts<'a>(&'a self, rel: &'a str) -> Option<(&'a str, &'a str)> {
        let best = self
            .map
            .iter()
            .filter(|m| prefix_rest(rel, &m.from).is_some())
            .max_by_key(|m| m.from.len())?;
        if best.skip {
            return None;
        }
        let rest = prefix_rest(rel, &best.from)?;
        Some((best.to.as_deref().unwrap_or(""), rest))
    }

    /// The distribution the layer holds (its `name`, compared as PEP 503 says).
    pub fn package_name(&self) -> PackageName {
        PackageName::new(&self.name)
    }

    /// `name==version` as uv prints it in a summary (` ~ markdown-it-py==4.3.0`): the name
    /// normalized, where [`Layer::label`] keeps the wheel's spelling.
    pub fn pin(&self) -> String {
        format!("{}=={}", self.package_name(), self.version)
    }

    /// A short name for messages: `name==version`, else the source path.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            self.source.display().to_string()
        } else if self.version.is_empty() {
            self.name.clone()
        } else {
            format!("{}=={}", self.name, self.version)
        }
    }
}

/// If `path` is `prefix` or below it, the part after the prefix ("" if equal).
fn prefix_rest<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix('/')
    }
}

pub fn join_rel(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}/{b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `p` (from the root) made an absolute path of this platform: on a drive on Windows.
    fn abs(p: &str) -> PathBuf {
        if cfg!(windows) {
            format!("C:{p}").into()
        } else {
            p.into()
        }
    }

    fn wheel_layer() -> Layer {
        Layer {
            source: abs("/c/numpy"),
            name: "numpy".into(),
            version: "2.4.6".into(),
            installed: false,
            map: vec![
                Mapping {
                    from: "".into(),
                    to: Some("lib/python3.11/site-packages".into()),
                    skip: false,
                },
                Mapping {
                    from: "numpy-2.4.6.data".into(),
                    to: None,
                    skip: true,
                },
                Mapping {
                    from: "numpy-2.4.6.data/scripts".into(),
                    to: Some("bin".into()),
                    skip: false,
                },
                Mapping {
                    from: "numpy-2.4.6.data/data".into(),
                    to: Some("".into()),
                    skip: false,
                },
            ],
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let l = wheel_layer();
        assert_eq!(
            l.destination("numpy/__init__.py").unwrap(),
            "lib/python3.11/site-packages/numpy/__init__.py"
        );
        assert_eq!(l.destination("numpy-2.4.6.data"), None);
        assert_eq!(l.destination("numpy-2.4.6.data/headers/x.h"), None);
        assert_eq!(
            l.destination("numpy-2.4.6.data/scripts/f2py").unwrap(),
            "bin/f2py"
        );
        assert_eq!(l.destination("numpy-2.4.6.data/scripts").unwrap(), "bin");
        assert_eq!(
            l.destination("numpy-2.4.6.data/data/share/x").unwrap(),
            "share/x"
        );
        // a sibling whose name merely starts with the prefix is not below it
        assert_eq!(
            l.destination("numpy-2.4.6.datax/y").unwrap(),
            "lib/python3.11/site-packages/numpy-2.4.6.datax/y"
        );
    }

    #[test]
    fn round_trip() {
        let m = Manifest {
            version: 1,
            generated: None,
            layers: vec![wheel_layer()],
        };
        let text = m.to_toml();
        assert_eq!(Manifest::parse(&text, Path::new("m.toml")).unwrap(), m);
        // a generated layer makes it version 2, which an older venvfs refuses
        let g = Manifest {
            version: 2,
            generated: Some("generated-0123.zip".into()),
            ..m
        };
        let text = g.to_toml();
        assert!(text.contains("version = 2"), "{text}");
        assert_eq!(Manifest::parse(&text, Path::new("m.toml")).unwrap(), g);
        let bad = text.replace("generated-0123.zip", "../x.zip");
        assert!(Manifest::parse(&bad, Path::new("m.toml")).is_err());
    }

    #[test]
    fn bad_manifests_name_the_file_and_reason() {
        let p = Path::new("/v/.venvfs/manifest.toml");
        let e = Manifest::parse("version = 3", p).unwrap_err().to_string();
        assert!(
            e.contains("/v/.venvfs/manifest.toml") && e.contains("upgrade"),
            "{e}"
        );
        let e = Manifest::parse("[[layer]]\nsource='x'", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("version"), "{e}");
        let e = Manifest::parse("version = 1\n[[layer]]\nsource = 'rel'\nmap = []", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute"), "{e}");
        let bad = format!(
            "version = 1\n[[layer]]\nsource = '{}'\nmap = [{{ from = '../x', to = '' }}]",
            abs("/x").display()
        );
        let e = Manifest::parse(&bad, p).unwrap_err().to_string();
        assert!(e.contains("'..'"), "{e}");
        let e = Manifest::parse("version = 1\n[[layer]\n", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid"), "{e}");
    }
}
