//! Where no mounting backend is built (neither Linux nor Windows): the
//! daemon's commands with the same signatures. Mounting fails with a clear error, and
//! since nothing can be mounted, every venv counts as unmounted, so `create`, `sync`,
//! `install`, `uninstall` and `layer` work on the venv directory directly.

use std::error::Error;
use std::path::{Path, PathBuf};

use crate::cli::{MountArgs, StatusArgs, UmountArgs};

type CmdResult = Result<(), Box<dyn Error>>;

const NO_BACKEND: &str =
    "mounting needs the Linux FUSE backend or the Windows Dokan backend; this build has neither";

pub fn mount(_args: MountArgs) -> CmdResult {
    Err(NO_BACKEND.into())
}

pub fn umount(_args: UmountArgs) -> CmdResult {
    Err(NO_BACKEND.into())
}

pub fn status(_args: &StatusArgs) -> CmdResult {
    Err(NO_BACKEND.into())
}

pub fn run(_args: crate::cli::RunArgs) -> CmdResult {
    Err(NO_BACKEND.into())
}

/// Never mounted: nothing here can mount.
/// Whether `venv` is a mount left by a daemon that died: never (nothing mounts here).
pub fn is_stale(_venv: &Path) -> bool {
    false
}

pub fn venv_is_mounted(_venv: &Path) -> bool {
    false
}

/// Runs `change` on the venv directory itself (it cannot be mounted).
pub fn change<T>(
    venv: &Path,
    change: impl FnOnce(&Path) -> Result<(T, Vec<PathBuf>), Box<dyn Error>>,
) -> Result<T, Box<dyn Error>> {
    let _lock = crate::lock::VenvLock::acquire(venv, venv)?;
    Ok(change(venv)?.0)
}

/// Removes copies the layers show the same (`venvfs adopt`): the venv is never mounted here.
pub fn remove_copies(
    venv: &Path,
    files: &[PathBuf],
    dirs: &[PathBuf],
    since: Option<std::time::SystemTime>,
) -> Result<(usize, u64), Box<dyn Error>> {
    Ok(crate::install::adopt::remove_all(venv, files, dirs, since)?)
}

/// The manifest in the venv directory (never hidden by a mount here).
pub fn manifest_of(venv: &Path) -> PathBuf {
    crate::manifest::manifest_path(venv)
}

/// Never mounted: the venv directory is its own directory.
pub fn own_dir_of(_venv: &Path) -> Option<PathBuf> {
    None
}
