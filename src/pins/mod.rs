//! What a venv should hold: exact pins read from a `pylock.toml` (PEP 751) or from a
//! requirements file of `name==version` lines.

pub mod pylock;
pub mod requirements;

use std::path::{Path, PathBuf};

/// One distribution the venv must hold, at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The name as written.
    pub name: String,
    pub version: String,
    /// Hashes any wheel of this pin must have (`sha256` hex), from `--hash` options.
    pub hashes: Vec<String>,
    /// The wheels the lock file lists for it (empty: any wheel of this name and version).
    pub wheels: Vec<LockedWheel>,
    /// Where it was read, `file:line`, for messages.
    pub origin: String,
}

/// A wheel named by a lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedWheel {
    /// The wheel's file name (`numpy-2.4.6-cp311-...whl`).
    pub filename: String,
    /// Where it is, when the lock gives a local path or a `file:` URL.
    pub path: Option<PathBuf>,
    /// Where it can be downloaded from, when the lock gives an http(s) URL.
    pub url: Option<String>,
    /// Its sha256, hex.
    pub sha256: Option<String>,
}

/// The result of reading a pin file: the pins that apply to this interpreter and the
/// `--find-links` directories it names.
#[derive(Debug, Default)]
pub struct PinFile {
    pub pins: Vec<Pin>,
    pub find_links: Vec<PathBuf>,
    /// Editable local projects (the lock's own project, as `uv export` lists it): venvfs
    /// installs wheels, so these are left for `pip install -e` through the mount, and sync
    /// keeps what such an install put there. (name, origin)
    pub editable: Vec<(String, String)>,
    /// The index a requirements file names (`--index-url`/`-i`), and its extra ones: where
    /// pins no local source has are fetched from, unless the command line names others.
    pub index_url: Option<String>,
    pub extra_index_urls: Vec<String>,
    /// `--no-index`: pins are not looked up on any index (the command line may name one).
    pub no_index: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{}: {why}", at(path, *line))]
pub struct PinError {
    pub path: PathBuf,
    /// 1-based; 0 when the problem is not on one line.
    pub line: usize,
    pub why: String,
}

/// `FILE:LINE`, or `FILE` for a problem not on one line.
fn at(path: &Path, line: usize) -> String {
    match line {
        0 => path.display().to_string(),
        n => format!("{}:{n}", path.display()),
    }
}

impl PinError {
    pub fn new(path: &Path, line: usize, why: impl Into<String>) -> PinError {
        PinError {
            path: path.to_owned(),
            line,
            why: why.into(),
        }
    }
}

/// Reads a pin file: `pylock.toml` / `pylock.*.toml` (or any `.toml`) as a lock file,
/// anything else as a requirements file. Markers are evaluated against `env`.
pub fn load(path: &Path, env: &pep508_rs::MarkerEnvironment) -> Result<PinFile, PinError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| PinError::new(path, 0, format!("cannot read it: {e}")))?;
    if path.extension().is_some_and(|x| x == "toml") {
        pylock::parse(&text, path, env)
    } else {
        requirements::parse(&text, path, env)
    }
}

/// A local path from a `file:` URL.
pub fn file_url_path(url: &str) -> Option<PathBuf> {
    let parsed = url::Url::parse(url).ok()?;
    if parsed.scheme() != "file" {
        return None;
    }
    parsed.to_file_path().ok()
}

/// A version written by a lock file, parsed; the error says what is wrong.
pub fn parse_version(v: &str) -> Result<pep440_rs::Version, String> {
    v.parse::<pep440_rs::Version>()
        .map_err(|e| format!("`{v}` is not a valid version: {e}"))
}
