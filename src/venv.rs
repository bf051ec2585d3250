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

/// Where the wheels `python -m venv` installs pip (and setuptools) from may be, for the venv
/// at `venv` of Python `version` (X.Y): the base interpreter's `ensurepip/_bundled`
/// (its `home` in pyvenv.cfg is its `bin`), and Debian's `/usr/share/python-wheels`.
/// Only those that exist.
pub fn bundled_wheel_dirs(venv: &Path, version: &str) -> Vec<PathBuf> {
    let home = std::fs::read_to_string(venv.join("pyvenv.cfg"))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == "home").then(|| PathBuf::from(v.trim()))
            })
        });
    let mut dirs = Vec::new();
    if let Some(prefix) = home.as_deref().and_then(Path::parent) {
        dirs.push(prefix.join(format!("lib/python{version}/ensurepip/_bundled")));
        dirs.push(prefix.join("Lib/ensurepip/_bundled"));
    }
    dirs.push(PathBuf::from("/usr/share/python-wheels"));
    dirs.retain(|d| d.is_dir());
    dirs
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

/// Writes (or refreshes) the guard of an unmounted venv, in the site-packages of the venv's
/// layout (`Lib\\site-packages` on Windows).
pub fn write_unmounted_guard(venv: &Path) -> Result<(), VenvError> {
    let version = python_version(venv)?;
    let shown = venv.canonicalize().unwrap_or_else(|_| venv.to_owned());
    let (rel, line) = unmounted_guard(&Layout::new(&version), &shown_path(&shown));
    let path = venv.join(rel);
    // unchanged: leave it be (a mount that is refused must not touch the venv)
    if std::fs::read(&path).is_ok_and(|old| old == line.as_bytes()) {
        return Ok(());
    }
    // (not flushed: every mount and change writes it again when it differs, and an empty
    // `.pth` left by a power failure does nothing)
    crate::fsutil::write_replaceable(&path, line.as_bytes(), 0o644)
        .map_err(|source| VenvError::Read { path, source })
}

/// The guard of the venv shown as `venv` on `layout`: where it goes (venv-relative) and
/// its one line of Python.
pub fn unmounted_guard(layout: &Layout, venv: &str) -> (String, String) {
    let rel = format!("{}/{UNMOUNTED_GUARD}", layout.site_packages());
    let message =
        format!("error: {venv} is a venvfs venv and is not mounted: run `venvfs mount {venv}`");
    // os._exit: a SystemExit raised while `site` runs ends in a fatal-error traceback.
    // ({:?} spells the string with the escapes a Python string literal reads back.)
    let line = format!(
        "import os, sys; sys.stderr.write({message:?} + chr(10)); sys.stderr.flush(); os._exit(1)\n"
    );
    (rel, line)
}

/// A path as a user types it: Windows's canonical paths are verbatim (`\\?\C:\v`,
/// `\\?\UNC\host\share\v`), which no message should show; they lose the prefix
/// (`C:\v`, `\\host\share\v`). Other paths are shown as they are.
pub fn shown_path(path: &Path) -> String {
    let s = path.display().to_string();
    if let Some(unc) = s.strip_prefix(r"\\?\UNC\") {
        return format!(r"\\{unc}");
    }
    match s.strip_prefix(r"\\?\") {
        Some(rest) if rest.as_bytes().get(1) == Some(&b':') => rest.to_owned(),
        _ => s,
    }
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
    fn guard_of_a_windows_venv() {
        let (rel, line) = unmounted_guard(&Layout::for_os(OsName::Nt, "3.12"), r"C:\v\.venv");
        assert_eq!(rel, "Lib/site-packages/_venvfs_unmounted.pth");
        assert_eq!(
            line,
            r#"import os, sys; sys.stderr.write("error: C:\\v\\.venv is a venvfs venv and is not mounted: run `venvfs mount C:\\v\\.venv`" + chr(10)); sys.stderr.flush(); os._exit(1)"#
                .to_owned()
                + "\n"
        );
        let (rel, _) = unmounted_guard(&Layout::for_os(OsName::Posix, "3.12"), "/v/.venv");
        assert_eq!(rel, "lib/python3.12/site-packages/_venvfs_unmounted.pth");
    }

    #[test]
    fn verbatim_paths_are_not_shown() {
        let shown = |p: &str| shown_path(Path::new(p));
        assert_eq!(shown(r"\\?\C:\Users\me\.venv"), r"C:\Users\me\.venv");
        assert_eq!(shown(r"\\?\UNC\host\share\.venv"), r"\\host\share\.venv");
        assert_eq!(shown(r"\\?\Volume{x}\v"), r"\\?\Volume{x}\v");
        assert_eq!(shown("/home/me/.venv"), "/home/me/.venv");
    }

    /// Where the guard lands on this system, and that it names the venv as it is typed.
    #[test]
    fn guard_is_written_where_this_systems_python_looks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pyvenv.cfg"), "version = 3.12.1\n").unwrap();
        let layout = Layout::new("3.12");
        std::fs::create_dir_all(dir.path().join(layout.site_packages())).unwrap();
        write_unmounted_guard(dir.path()).unwrap();
        let text = std::fs::read_to_string(
            dir.path()
                .join(layout.site_packages())
                .join(UNMOUNTED_GUARD),
        )
        .unwrap();
        assert!(!text.contains(r"\\\\?"), "{text}");
        assert!(text.contains("venvfs mount"), "{text}");
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
