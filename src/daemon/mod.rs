//! `venvfs mount`, `umount` and `status`: the mount's life cycle on Linux.
//!
//! `mount` without `--foreground` starts a copy of itself in the background (its own session,
//! so closing the terminal does not stop it) and waits until that copy says the venv is
//! mounted or prints why it could not be; the user sees the same errors either way.
//!
//! One file a job: [`spawn`] starts the background daemon and waits for it, [`serve`] runs
//! the mount and answers signals, [`requests`] keeps the request counts `status --requests`
//! shows, [`change`] lets a command change a mounted venv live, [`status`] prints the
//! mounts, [`unmounted`] takes in what uv or pip uninstalled while the venv was unmounted. Mounting, unmounting and finding a venv's mount are here.

mod activation;
mod autofold;
mod change;
mod guard;
mod requests;
mod run;
mod serve;
mod sources;
mod spawn;
mod status;
mod unmounted;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::{MountArgs, UmountArgs};
use crate::manifest::{manifest_path, STATE_DIR};
use crate::registry;

pub use run::run;

pub use change::{change, remove_copies};
pub use status::status;

type CmdResult = Result<(), Box<dyn Error>>;

/// An absolute path without resolving symlinks through a possibly dead mount.
fn absolute(venv: &Path) -> std::io::Result<PathBuf> {
    let abs = std::path::absolute(venv)?;
    if venvfs_fuse::is_stale(&abs) {
        return Ok(abs);
    }
    abs.canonicalize()
}

/// [`absolute`] for a command that needs the venv to exist: a missing one is named, with
/// the commands that make one.
fn existing_venv(venv: &Path) -> Result<PathBuf, String> {
    let abs = absolute(venv).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "there is no venv at {shown}: make one first (`uv venv {shown}`, `venvfs create {shown}` or `python3 -m venv {shown}`)",
            shown = venv.display()
        ),
        _ => format!("{}: {e}", venv.display()),
    })?;
    if abs.is_file() {
        return Err(format!(
            "{} is a file: name the venv's directory (such as .venv)",
            venv.display()
        ));
    }
    Ok(abs)
}

fn is_mounted(venv: &Path) -> bool {
    venvfs_fuse::mounts().iter().any(|m| m.mountpoint == venv)
}

/// Whether a venv (any spelling of its path) is mounted by venvfs.
pub fn venv_is_mounted(venv: &Path) -> bool {
    absolute(venv).is_ok_and(|abs| is_mounted(&abs))
}

pub fn mount(args: MountArgs) -> CmdResult {
    let venv = existing_venv(&args.venv)?;
    if venvfs_fuse::is_stale(&venv) {
        venvfs_fuse::unmount(&venv, true).map_err(|e| {
            format!(
                "{}: a dead venvfs mount is in the way and could not be removed: {e}",
                venv.display()
            )
        })?;
        tracing::warn!(
            "{}: removed a stale mount left by a daemon that died",
            venv.display()
        );
    }
    if is_mounted(&venv) {
        let who = registry::serving(&venv).map(|r| format!(" (pid {})", r.pid));
        return Err(format!(
            "{} is already mounted{}; run `venvfs umount {}` first",
            venv.display(),
            who.unwrap_or_default(),
            venv.display()
        )
        .into());
    }
    crate::venv::python_version(&venv)?;
    refuse_hidden_interpreter(&venv)?;
    refuse_while_materialized(&venv)?;
    // (also for venvs made before the guard existed; the venv is not mounted yet here)
    crate::venv::write_unmounted_guard(&venv)?;
    // (layers uninstalled while unmounted, or whose uv cache entry was made again, are
    // settled by whoever serves: see serve.rs)
    if !args.daemon_child {
        // (a failure is only a note: the venv shows the same either way)
        match crate::install::adopt::finish_interrupted(&venv) {
            Ok(Some(r)) => eprintln!(
                "finished an interrupted `venvfs adopt`: {} copies removed, {} given back",
                r.files,
                crate::inventory::human(r.bytes)
            ),
            Ok(None) => {}
            Err(e) => eprintln!(
                "note: an interrupted `venvfs adopt` is unfinished ({e}); `venvfs adopt {}` finishes it",
                venv.display()
            ),
        }
    }
    if args.foreground || args.daemon_child {
        serve::serve(&venv, &args)
    } else {
        spawn::spawn_daemon(&venv, &args)?;
        Ok(())
    }
}

/// The overlay of an unmounted venv as `venvfs mount` would serve it, for
/// `venvfs materialize`: first what mount does to the venv's state (layers whose
/// distribution was uninstalled while unmounted are dropped, layers whose uv cache entry was
/// made again under a new id are healed: both crash-safe manifest changes), then the same
/// layers and upper. The caller must have checked that the venv is not mounted.
pub fn open_unmounted(
    venv: &Path,
) -> Result<std::sync::Arc<crate::overlay::Overlay>, Box<dyn Error>> {
    crate::venv::python_version(venv)?;
    let (manifest, notes) = unmounted::settle_layers(venv)?;
    for note in notes {
        eprintln!("{note}");
    }
    serve::open_overlay(venv, &manifest, 256, None, false, false)
}

/// A venv whose interpreter the filesystem hides (sshfs's `contain_symlinks`) would mount
/// and serve files no Python of it can run: refused, naming the cause and its fix.
pub(super) fn refuse_hidden_interpreter(venv: &Path) -> CmdResult {
    match crate::doctor::hidden_interpreter(venv) {
        Some(why) => Err(format!("refusing to mount {}: {why}", venv.display()).into()),
        None => Ok(()),
    }
}

/// `venvfs materialize` holds an exclusive lock of the venv directory while it reads the
/// venv and swaps a plain one in: a mount then would change what it reads, and be swapped
/// away.
pub(super) fn refuse_while_materialized(venv: &Path) -> CmdResult {
    let dir = std::fs::File::open(venv).map_err(|e| format!("{}: {e}", venv.display()))?;
    rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockShared).map_err(|_| {
        format!(
            "{} is being materialized (`venvfs materialize` is turning it into a plain venv); \
             wait for it to finish",
            venv.display()
        )
    })?;
    Ok(())
}

/// Whether `venv` is a mount point left by a daemon that died.
pub fn is_stale(venv: &Path) -> bool {
    venvfs_fuse::is_stale(venv)
}

/// Makes the venv's activation set uv's symlink link mode: whether that changed its main
/// script (a failure is only logged: the venv works without).
pub(super) fn set_link_mode(venv: &Path) -> bool {
    crate::activate::set_link_mode(venv).unwrap_or_else(|e| {
        tracing::warn!(
            "cannot set uv's link mode in {}/bin/activate: {e}",
            venv.display()
        );
        false
    })
}

/// The `venvfs mount` options that reproduce `args` (also kept in the registry, so that a
/// command that must unmount a venv can mount it again the same way).
fn mount_flags(args: &MountArgs) -> Vec<std::ffi::OsString> {
    let mut flags: Vec<std::ffi::OsString> = vec![
        "--threads".into(),
        args.threads.to_string().into(),
        "--memory-cache-mib".into(),
        args.memory_cache_mib.to_string().into(),
    ];
    if args.allow_other {
        flags.push("--allow-other".into());
    }
    if args.passthrough {
        flags.push("--passthrough".into());
    }
    if let Some(d) = &args.spill_dir {
        flags.push("--spill-dir".into());
        flags.push(d.into());
    }
    flags
}

/// Unmounts, retrying for a moment while the mount is busy: files closed by processes that
/// just exited are released by the kernel a little later.
fn unmount_settled(venv: &Path) -> std::io::Result<()> {
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        match venvfs_fuse::unmount(venv, false) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(25));
            }
            other => return other,
        }
    }
}

pub fn umount(args: UmountArgs) -> CmdResult {
    let venv = absolute(&args.venv).map_err(|e| format!("{}: {e}", args.venv.display()))?;
    let stale = venvfs_fuse::is_stale(&venv);
    if !stale && !is_mounted(&venv) {
        return Err(format!("{} is not mounted by venvfs", venv.display()).into());
    }
    let daemon = registry::serving(&venv);
    let unmounted = if args.lazy || stale {
        venvfs_fuse::unmount(&venv, true)
    } else {
        unmount_settled(&venv)
    };
    unmounted.map_err(|e| {
        if e.raw_os_error() == Some(libc::EBUSY) {
            format!(
                "{} is busy: a process has files open in it or is inside it (see `fuser -vm {}`); close it, or use `venvfs umount --lazy`",
                venv.display(),
                venv.display()
            )
        } else {
            format!("cannot unmount {}: {e}", venv.display())
        }
    })?;
    // Wait for the daemon to finish, so that a `mount` right after this finds things clean.
    if let Some(r) = daemon {
        let deadline = Instant::now() + Duration::from_secs(10);
        while registry::alive(r.pid) && Instant::now() < deadline && !args.lazy {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    println!("unmounted {}", venv.display());
    Ok(())
}

/// The manifest of a venv, also while it is mounted (the mount hides `.venvfs`; the
/// daemon's directory fd still reaches it).
pub fn manifest_of(venv: &Path) -> PathBuf {
    match own_dir_of(venv) {
        Some(own) => own.join(STATE_DIR).join(crate::manifest::MANIFEST_FILE),
        None => manifest_path(venv),
    }
}

/// Where the venv's own directory is reached beneath its mount (the daemon's directory fd);
/// None when it is not mounted by a daemon of ours: then the venv directory is its own.
pub fn own_dir_of(venv: &Path) -> Option<PathBuf> {
    let abs = absolute(venv).unwrap_or_else(|_| venv.to_owned());
    // (a daemon just unmounted may not have removed its record yet: the venv directory
    // is then its own, not a view of the layers)
    registry::serving(&abs)
        .filter(|_| is_mounted(&abs))
        .map(|r| upper_path(&r))
}

/// `/proc/<daemon pid>/fd/<upper fd>`: the venv's own directory beneath the mount.
fn upper_path(r: &registry::Record) -> PathBuf {
    PathBuf::from(format!("/proc/{}/fd/{}", r.pid, r.upper_fd))
}
