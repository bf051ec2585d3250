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

/// `venv` made absolute, refused when its daemon died (a stale mount).
fn live_venv(venv: &Path) -> Result<PathBuf, Box<dyn Error>> {
    let abs = absolute(venv).map_err(|e| format!("{}: {e}", venv.display()))?;
    if venvfs_fuse::is_stale(&abs) {
        let shown = abs.display();
        return Err(format!(
            "{shown}: its venvfs daemon died; run `venvfs mount {shown}` (or `venvfs umount {shown}`) first"
        )
        .into());
    }
    Ok(abs)
}

/// Runs `change` on the venv's own directory, mounted or not: `change` gets where that
/// directory is reached (the venv itself; beneath the mount when mounted) and returns the
/// venv-relative paths it wrote or removed. A mounted venv then takes the change live
/// (see `overlay/reload.rs`): nothing is unmounted, and programs that have files open in
/// it keep them.
pub fn change<T>(
    venv: &Path,
    change: impl FnOnce(&Path) -> Result<(T, Vec<PathBuf>), Box<dyn Error>>,
) -> Result<T, Box<dyn Error>> {
    let abs = live_venv(venv)?;
    let shown = abs.display();
    if !is_mounted(&abs) {
        let _lock = VenvLock::acquire(&abs, &abs)?;
        return Ok(change(&abs)?.0);
    }
    let Some(record) = registry::serving(&abs) else {
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
    let overlay_for_watch = std::sync::Arc::clone(overlay);
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
    let own_dir = PathBuf::from(format!(
        "/proc/self/fd/{}",
        overlay
            .upper()
            .dir_fd()
            .expect("the POSIX upper")
            .as_raw_fd()
    ));
    let auto_dir = own_dir.clone();
    let mounted_at = record
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .venv
        .clone();
    let handle = std::sync::Arc::new(move |request| {
        let started = Instant::now();
        let manifest = Manifest::load(&manifest_file).map_err(|e| e.to_string())?;
        // (a layer whose cache entry was removed meanwhile is not shown: see sources.rs)
        let (manifest, gone) = manifest.split_gone();
        for l in &gone {
            tracing::warn!(
                "layer {}: its source {} is gone (a cache entry removed while mounted): not shown                  until it is back; `venvfs status` says how to restore it",
                l.label(),
                l.source.display()
            );
        }
        let bytes = |paths: &[PathBuf]| -> Vec<Vec<u8>> {
            paths
                .iter()
                .map(|p| p.as_os_str().as_bytes().to_vec())
                .collect()
        };
        let (done, removed) = match request {
            crate::control::Request::Reload { touched } => {
                let done = overlay.reload(&manifest, &bytes(&touched), &*cache);
                (done, None)
            }
            crate::control::Request::RemoveCopies { files, dirs, since } => {
                // (removed while the tree is locked: no request sees a copy gone before
                // the tree shows the layer's file in its place)
                let mut removed = None;
                let done = overlay.reload_after(&manifest, &*cache, &bytes(&files), || {
                    let r = crate::install::adopt::remove_at(&own_dir, &files, &dirs, since);
                    let touched = bytes(&r.touched);
                    removed = Some(r);
                    touched
                });
                (done, removed)
            }
        };
        let done = done.map_err(|e| e.to_string())?;
        let lower = overlay.lower();
        let mut record = record.lock().unwrap_or_else(|e| e.into_inner());
        record.layers = lower.layer_labels();
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
        match removed {
            Some(r) if !r.failed.is_empty() => Err(format!(
                "{} copies removed, but not all: {}",
                r.files,
                r.failed.join("; ")
            )),
            Some(r) => Ok(format!("{} {} {text}", r.files, r.bytes)),
            None => Ok(text),
        }
    });
    // uv's links are folded by the daemon itself once uv is done (see autofold.rs)
    let take = std::sync::Arc::clone(&handle);
    super::autofold::start(&overlay_for_watch, auto_dir, mounted_at, move |request| {
        take(request)
    });
    // a layer's source removed while mounted stops showing (see sources.rs)
    let take = std::sync::Arc::clone(&handle);
    super::sources::watch(overlay_for_watch, move |request| take(request));
    crate::control::serve(std::process::id(), move |request| handle(request))
}

/// Removes copies the layers show the same from the venv's own directory (`venvfs adopt`):
/// by the daemon of a mounted venv, which takes the change live; when the venv is not
/// mounted, directly; files changed at `since` or later are left. Returns the files
/// removed and the disk given back.
pub fn remove_copies(
    venv: &Path,
    files: &[PathBuf],
    dirs: &[PathBuf],
    since: Option<std::time::SystemTime>,
) -> Result<(usize, u64), Box<dyn Error>> {
    let abs = live_venv(venv)?;
    let shown = abs.display();
    if !is_mounted(&abs) {
        return Ok(crate::install::adopt::remove_all(&abs, files, dirs, since)?);
    }
    let Some(record) = registry::serving(&abs) else {
        return Err(format!(
            "{shown} is mounted by another user or session; run the command there, or unmount it there first"
        )
        .into());
    };
    remove_in_batches(files, dirs, since, |request| {
        crate::control::ask(record.pid, request)
    })
    .map_err(|why| {
        format!(
            "the layers are saved in {shown}, but its mount could not remove the copies: {why}\n  \
             run `venvfs adopt {shown}` again"
        )
        .into()
    })
}

/// Has a mounted venv's daemon remove `files`, then `dirs` (see [`remove_copies`]), by
/// asking `ask` (the control socket, or the daemon's own handler) for one batch at a time:
/// requests to the mount wait while the daemon removes a batch, so a program running in
/// the venv pauses briefly a few times rather than once for long, and each answer comes
/// well within the control socket's timeout. Returns the files removed and the disk given
/// back.
pub(super) fn remove_in_batches(
    files: &[PathBuf],
    dirs: &[PathBuf],
    since: Option<std::time::SystemTime>,
    ask: impl Fn(&crate::control::Request) -> Result<String, String>,
) -> Result<(usize, u64), String> {
    let batches: Vec<&[PathBuf]> = if files.is_empty() {
        vec![&[]]
    } else {
        files.chunks(REMOVE_BATCH).collect()
    };
    let (mut removed, mut bytes) = (0, 0);
    for (i, batch) in batches.iter().enumerate() {
        let last = i + 1 == batches.len();
        let request = crate::control::Request::RemoveCopies {
            files: batch.to_vec(),
            dirs: if last { dirs.to_vec() } else { Vec::new() },
            since,
        };
        let answer = ask(&request)?;
        let mut parts = answer.split(' ');
        let mut number = || {
            parts
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        removed += number() as usize;
        bytes += number();
    }
    Ok((removed, bytes))
}

/// The copies a mounted venv's daemon removes per request. It opens those the kernel
/// holds before removing them (see `Overlay::reload_after`), so this also bounds the
/// descriptors that opens at once (a common limit is 1,024 per process).
pub(super) const REMOVE_BATCH: usize = 200;
