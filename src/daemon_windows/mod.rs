//! `venvfs mount`, `umount` and `status` on Windows, through the Dokan adapter
//! (`venvfs-dokan`).
//!
//! The venv directory itself is the mount point, so it keeps its path mounted or not; its
//! own content (the upper layer, with the `.venvfs` state) waits beside it while mounted
//! (see [`crate::mount_aside`] for why and how). `mount` without `--foreground` starts a
//! detached copy of itself ([`spawn`]) and waits until it says the venv is mounted or why it
//! could not be; [`serve`] runs the mount until Ctrl-C or `venvfs umount`.
//!
//! Not here yet (Linux-only for now): changing a mounted venv live (`sync`, `install`, ...
//! ask to unmount first), `venvfs run`, request statistics.

mod serve;
mod spawn;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::{MountArgs, RunArgs, StatusArgs, UmountArgs};
use crate::mount_aside;

type CmdResult = Result<(), Box<dyn Error>>;

/// An absolute path, spelled as given (no `\\?\` prefix, no resolving).
fn absolute(venv: &Path) -> Result<PathBuf, Box<dyn Error>> {
    std::path::absolute(venv).map_err(|e| format!("{}: {e}", venv.display()).into())
}

/// Whether the venv is mounted: its content is aside (a daemon serves it, or died; `mount`
/// and `umount` tell the two apart).
/// Whether `venv` is a mount left by a daemon that died: never here (a Dokan volume goes
/// with its process).
pub fn is_stale(_venv: &Path) -> bool {
    false
}

pub fn venv_is_mounted(venv: &Path) -> bool {
    std::path::absolute(venv).is_ok_and(|v| mount_aside::is_aside(&v))
}

pub fn mount(args: MountArgs) -> CmdResult {
    let venv = absolute(&args.venv)?;
    if mount_aside::is_aside(&venv) && !args.daemon_child {
        if venvfs_dokan::mount_points()
            .iter()
            .any(|p| same_path(p, &venv))
        {
            return Err(format!(
                "{} is already mounted; run `venvfs umount {}` first",
                venv.display(),
                venv.display()
            )
            .into());
        }
        // a daemon that died left the venv's content aside: put it back first
        mount_aside::restore(&venv)?;
        eprintln!(
            "{}: put back the venv's content a mount that died left aside",
            venv.display()
        );
    }
    crate::venv::python_version(&venv)?;
    // (refreshed while unmounted: the mount hides it)
    crate::venv::write_unmounted_guard(&venv)?;
    // activation sets uv's symlink link mode (on Linux the daemon does it through the
    // mount; here the venv is still its own directory)
    if let Err(e) = crate::activate::set_link_mode(&venv) {
        tracing::warn!(
            "cannot set uv's link mode in {}\\Scripts: {e}",
            venv.display()
        );
    }
    if args.foreground || args.daemon_child {
        serve::serve(&venv, &args)
    } else {
        spawn::spawn_daemon(&venv, &args)
    }
}

pub fn umount(args: UmountArgs) -> CmdResult {
    let venv = absolute(&args.venv)?;
    if !mount_aside::is_aside(&venv) {
        return Err(format!("{} is not mounted", venv.display()).into());
    }
    let had_mount = venvfs_dokan::unmount(&venv);
    // the daemon puts the content back once Dokan has let go of the mount point
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !mount_aside::is_aside(&venv) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !had_mount {
        // no mount and no daemon: one died; put its venv back
        mount_aside::restore(&venv)?;
        return Ok(());
    }
    Err(format!(
        "{} was unmounted but its daemon has not put the venv's content back from {}",
        venv.display(),
        mount_aside::aside_dir(&venv).display()
    )
    .into())
}

pub fn status(_args: &StatusArgs) -> CmdResult {
    let points = venvfs_dokan::mount_points();
    let mut any = false;
    for p in points.iter().filter(|p| mount_aside::is_aside(p)) {
        println!(
            "{}  (Dokan; its own content in {})",
            p.display(),
            mount_aside::aside_dir(p).display()
        );
        any = true;
    }
    if !any {
        println!("no venvfs mounts");
    }
    Ok(())
}

pub fn run(_args: RunArgs) -> CmdResult {
    Err("`venvfs run` is Linux-only for now: on Windows, `venvfs mount` the venv and run its Python".into())
}

/// Runs `change` on the venv directory: only while it is not mounted (changing a mounted
/// venv live is Linux-only for now).
pub fn change<T>(
    venv: &Path,
    change: impl FnOnce(&Path) -> Result<(T, Vec<PathBuf>), Box<dyn Error>>,
) -> Result<T, Box<dyn Error>> {
    refuse_mounted(venv)?;
    let _lock = crate::lock::VenvLock::acquire(venv, venv)?;
    Ok(change(venv)?.0)
}

/// Removes copies the layers show the same (`venvfs adopt`), on an unmounted venv.
pub fn remove_copies(
    venv: &Path,
    files: &[PathBuf],
    dirs: &[PathBuf],
    since: Option<std::time::SystemTime>,
) -> Result<(usize, u64), Box<dyn Error>> {
    refuse_mounted(venv)?;
    Ok(crate::install::adopt::remove_all(venv, files, dirs, since)?)
}

fn refuse_mounted(venv: &Path) -> CmdResult {
    if venv_is_mounted(venv) {
        return Err(format!(
            "{} is mounted: run `venvfs umount {}` first (changing a mounted venv is Linux-only for now)",
            venv.display(),
            venv.display()
        )
        .into());
    }
    Ok(())
}

/// The manifest: in the venv's own content, wherever that is now.
pub fn manifest_of(venv: &Path) -> PathBuf {
    crate::manifest::manifest_path(&own_dir_of(venv).unwrap_or_else(|| venv.to_owned()))
}

/// The venv's own content while mounted: aside.
pub fn own_dir_of(venv: &Path) -> Option<PathBuf> {
    let venv = std::path::absolute(venv).ok()?;
    mount_aside::is_aside(&venv).then(|| mount_aside::aside_dir(&venv))
}

/// Whether two Windows paths name the same place (case-insensitively, as NTFS compares).
fn same_path(a: &Path, b: &Path) -> bool {
    a.as_os_str().eq_ignore_ascii_case(b.as_os_str())
}
