//! Facts about a venv directory on disk (PEP 405).

use std::path::{Path, PathBuf};

use crate::install::layout::{Layout, OsName};

#[derive(Debug, thiserror::Error)]
pub enum VenvError {
    #[error("{0} is not a virtual environment: it has no pyvenv.cfg\n  create one first, e.g. `python3 -m venv --without-pip {0}`")]
    NotAVenv(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: cannot tell the Python version (no `version_info`/`version` key and no lib/pythonX.Y directory)")]
    NoVersion(PathBuf),
}

/// The `X.Y` Python version of a venv, from pyvenv.cfg (`version_info` as uv writes it,
/// `version` as the venv module does), else from its single `lib/pythonX.Y` directory.
pub fn python_version(venv: &Path) -> Result<String, VenvError> {
    let cfg = venv.join("pyvenv.cfg");
    let text = match std::fs::read_to_string(&cfg) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(VenvError::NotAVenv(venv.to_owned()))
        }
        Err(source) => return Err(VenvError::Read { path: cfg, source }),
    };
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if matches!(key.trim(), "version_info" | "version") {
            let mut parts = value.trim().split('.');
            if let (Some(major), Some(minor)) = (parts.next(), parts.next()) {
                return Ok(format!("{major}.{minor}"));
            }
        }
    }
    let lib = venv.join("lib");
    let found: Vec<String> = std::fs::read_dir(&lib)
        .map_err(|source| VenvError::Read {
            path: lib.clone(),
            source,
        })?
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_prefix("python")
                .map(str::to_owned)
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(VenvError::NoVersion(venv.to_owned())),
    }
}

/// The program and leading arguments that run the interpreter `python` on `os`: a path or
/// command name as it is; a version `X.Y` as `pythonX.Y` on POSIX, and on Windows (where no
/// `pythonX.Y` is on PATH) through the Python launcher, `py -X.Y`.
pub fn interpreter_command(python: &str, os: OsName) -> (String, Vec<String>) {
    let is_version = !python.is_empty() && python.chars().all(|c| c.is_ascii_digit() || c == '.');
    match (is_version, os) {
        (true, OsName::Posix) => (format!("python{python}"), Vec::new()),
        (true, OsName::Nt) => ("py".into(), vec![format!("-{python}")]),
        (false, _) => (python.to_owned(), Vec::new()),
    }
}

/// A `.pth` file kept in the venv's own site-packages: Python runs it at startup, so a venv
/// whose mount is missing says so in one line instead of failing later with an ImportError.
/// The mount hides it, so it only ever runs when the venv is not mounted.
pub const UNMOUNTED_GUARD: &str = "_venvfs_unmounted.pth";

/// Writes (or refreshes) the guard of an unmounted venv.
pub fn write_unmounted_guard(venv: &Path) -> Result<(), VenvError> {
    let version = python_version(venv)?;
    let path = venv
        .join(Layout::new(&version).site_packages())
        .join(UNMOUNTED_GUARD);
    let shown = venv.canonicalize().unwrap_or_else(|_| venv.to_owned());
    let message = format!(
        "error: {} is a venvfs venv and is not mounted: run `venvfs mount {}`",
        shown.display(),
        shown.display()
    );
    // os._exit: a SystemExit raised while `site` runs ends in a fatal-error traceback.
    let line = format!(
        "import os, sys; sys.stderr.write({message:?} + chr(10)); sys.stderr.flush(); os._exit(1)\n"
    );
    // unchanged: leave it be (a mount that is refused must not touch the venv)
    if std::fs::read(&path).is_ok_and(|old| old == line.as_bytes()) {
        return Ok(());
    }
    crate::fsutil::write_atomic(&path, line.as_bytes(), 0o644)
        .map_err(|source| VenvError::Read { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreter_commands() {
        let cmd = |p, os| interpreter_command(p, os);
        assert_eq!(cmd("3.12", OsName::Posix), ("python3.12".into(), vec![]));
        assert_eq!(cmd("3.12", OsName::Nt), ("py".into(), vec!["-3.12".into()]));
        assert_eq!(cmd("3", OsName::Nt), ("py".into(), vec!["-3".into()]));
        for os in [OsName::Posix, OsName::Nt] {
            assert_eq!(
                cmd("/usr/bin/python3", os),
                ("/usr/bin/python3".into(), vec![])
            );
            assert_eq!(
                cmd(r"C:\Py\python.exe", os),
                (r"C:\Py\python.exe".into(), vec![])
            );
        }
    }

    #[test]
    fn version_from_a_windows_venvs_cfg() {
        // What `python -m venv` writes on Windows (3.11+), and what uv writes.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pyvenv.cfg"),
            "home = C:\\Python311\ninclude-system-site-packages = false\nversion = 3.11.9\nexecutable = C:\\Python311\\python.exe\ncommand = C:\\Python311\\python.exe -m venv C:\\v\n",
        )
        .unwrap();
        assert_eq!(python_version(dir.path()).unwrap(), "3.11");
    }
}
