//! Live changes: a command writes the venv's own files beneath the mount and asks the
//! daemon (over the control socket) to take the new manifest.

use std::error::Error;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{absolute, is_mounted};
use crate::lock::VenvLock;
use crate::manifest::{Manifest, STATE_DIR};
use crate::overlay::Overlay;
use crate::registry;

/// Runs `change` on the venv's own directory, mounted or not: `change` gets where that
/// directory is reached (the venv itself; beneath the mount when mounted) and returns the
/// venv-relative paths it wrote or removed. A mounted venv then takes the change live
/// (see `overlay/reload.rs`): nothing is unmounted, and programs that have files open in
/// it keep them.
pub fn change<T>(
    venv: &Path,
    change: impl FnOnce(&Path) -> Result<(T, Vec<PathBuf>), Box<dyn Error>>,
) -> Result<T, Box<dyn Error>> {
    let abs = absolute(venv).map_err(|e| format!("{}: {e}", venv.display()))?;
    let shown = abs.display();
    if venvfs_fuse::is_stale(&abs) {
        return Err(format!(
            "{shown}: its venvfs daemon died; run `venvfs mount {shown}` (or `venvfs umount {shown}`) first"
        )
        .into());
    }
    if !is_mounted(&abs) {
        let _lock = VenvLock::acquire(&abs, &abs)?;
        return Ok(change(&abs)?.0);
    }
    let Some(record) = registry::list().into_iter().find(|r| r.venv == abs) else {
        return Err(format!(
            "{shown} is mounted by another user or session; run the command there, or unmount it there first"
        )
        .into());
    };
    let root = PathBuf::from(format!("/proc/{}/fd/{}", record.pid, record.upper_fd));
    let lock = VenvLock::acquire(&root, &abs)?;
    let (value, touched) = change(&root)?;
    drop(lock);
    crate::control::ask(record.pid, &crate::control::Request::Reload { touched }).map_err(
        |why| {
            format!(
                "the change is saved in {shown}, but its mount could not take it live: {why}\n  \
                 run `venvfs umount {shown} && venvfs mount {shown}` to see it"
            )
        },
    )?;
    Ok(value)
}

/// Answers the control socket: a command that changed the venv's layers (while mounted)
/// asks the daemon to take the new manifest.
pub(super) fn take_changes_live(
    overlay: &std::sync::Arc<Overlay>,
    cache: std::sync::Arc<dyn venvfs_api::KernelCache>,
    record: &registry::Record,
) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let overlay = std::sync::Arc::clone(overlay);
    let record = std::sync::Mutex::new(record.clone());
    // (the mount hides the venv's .venvfs; the daemon's own descriptor reaches it)
    let manifest_file = PathBuf::from(format!(
        "/proc/self/fd/{}",
        overlay
            .upper()
            .dir_fd()
            .expect("the POSIX upper")
            .as_raw_fd()
    ))
    .join(STATE_DIR)
    .join(crate::manifest::MANIFEST_FILE);
    crate::control::serve(std::process::id(), move |request| match request {
        crate::control::Request::Reload { touched } => {
            let started = Instant::now();
            let manifest = Manifest::load(&manifest_file).map_err(|e| e.to_string())?;
            let touched: Vec<Vec<u8>> = touched
                .iter()
                .map(|p| p.as_os_str().as_bytes().to_vec())
                .collect();
            let done = overlay
                .reload(&manifest, &touched, &*cache)
                .map_err(|e| e.to_string())?;
            let lower = overlay.lower();
            let mut record = record.lock().unwrap_or_else(|e| e.into_inner());
            record.layers = lower.labels.clone();
            record.lower_entries = lower.len();
            if let Err(e) = registry::write(&record) {
                tracing::warn!("cannot record the mount's new layers for `venvfs status`: {e}");
            }
            let text = format!(
                "{} layers; {} names changed in {} directories the kernel had seen, in {:.0?}",
                record.layers.len(),
                done.names,
                done.dirs,
                started.elapsed()
            );
            tracing::info!("took a change live: {text}");
            Ok(text)
        }
    })
}
