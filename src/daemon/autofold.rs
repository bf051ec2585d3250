//! Folding uv's links while mounted: `uv sync`, `uv add` and `uv pip install` in symlink
//! link mode (which a venvfs venv's activation sets) make one link per file into uv's cache,
//! each a reference (see `overlay/reference.rs`), and each costing a disk block of the venv's
//! filesystem until `venvfs fold` turns a distribution's links into one layer. The daemon
//! does that itself once uv is done: when links were made and none for [`QUIET`], it folds
//! the venv's own directory (behind the mount, through its own descriptor) and takes the
//! change live, as `venvfs fold` would through the control socket.
//!
//! Links already there when the venv is mounted are folded the same way, once the mount
//! has been quiet as long.
//!
//! A command changing the venv at that moment holds the venv's lock: the fold waits for the
//! next quiet moment. Fold itself only folds a distribution whose every link points into one
//! cache entry, so links of a distribution uv is still installing are left for later.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::change::REMOVE_BATCH;
use crate::control::Request;
use crate::lock::VenvLock;
use crate::overlay::{Overlay, Watch};

/// How long no link is made before the daemon folds, unless `VENVFS_FOLD_AFTER` says.
const QUIET: Duration = Duration::from_secs(2);

/// How long no link is made before the daemon folds: `VENVFS_FOLD_AFTER` seconds, else
/// [`QUIET`]; `None` (`VENVFS_FOLD_AFTER=0`): the daemon leaves uv's links for `venvfs fold`,
/// `sync` or `install` (to look at them as uv made them, or in tests that fold themselves).
fn quiet() -> Option<Duration> {
    let Some(value) = std::env::var_os("VENVFS_FOLD_AFTER") else {
        return Some(QUIET);
    };
    match value.to_str().and_then(|v| v.trim().parse::<f64>().ok()) {
        Some(0.0) => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        _ => {
            tracing::warn!(
                "VENVFS_FOLD_AFTER={value:?} is no number of seconds: folding after {QUIET:?}"
            );
            Some(QUIET)
        }
    }
}

/// What the overlay tells: when links were last made.
struct Links {
    made: AtomicBool,
    last: Mutex<Instant>,
}

impl Watch for Links {
    fn reference_made(&self) {
        *self.last.lock() = Instant::now();
        self.made.store(true, Ordering::Release);
    }
}

/// Folds links into layers once uv is done making them. `own_dir` reaches the venv's own
/// directory; `take_live` takes a change live (a reload, or the removal of links the new
/// layers show the same, done under the tree's lock).
pub(super) fn start(
    overlay: &Overlay,
    own_dir: PathBuf,
    take_live: impl Fn(Request) -> Result<String, String> + Send + 'static,
) {
    let Some(quiet) = quiet() else {
        tracing::info!("VENVFS_FOLD_AFTER=0: uv's links are left for `venvfs fold`");
        return;
    };
    // Links left from before this mount (uv ran unmounted, or a fold failed) are folded
    // too, once the mount has been quiet as long.
    let left = crate::venv::python_version(&own_dir).is_ok_and(|v| {
        crate::install::fold::has_references(&own_dir, &crate::install::layout::Layout::new(&v))
    });
    let links = Arc::new(Links {
        made: AtomicBool::new(left),
        last: Mutex::new(Instant::now()),
    });
    overlay.set_watch(Arc::clone(&links) as Arc<dyn Watch>);
    std::thread::spawn(move || loop {
        std::thread::sleep(quiet / 4);
        if !links.made.load(Ordering::Acquire) || links.last.lock().elapsed() < quiet {
            continue;
        }
        links.made.store(false, Ordering::Release);
        if !fold_now(&own_dir, &take_live) {
            // (the venv is being changed: the next quiet moment)
            links.made.store(true, Ordering::Release);
        }
    });
}

/// Folds what can be folded and takes it live; false if a command holds the venv's lock.
fn fold_now(own_dir: &Path, take_live: &impl Fn(Request) -> Result<String, String>) -> bool {
    let Ok(_lock) = VenvLock::try_acquire(own_dir, own_dir) else {
        return false;
    };
    let version = match crate::venv::python_version(own_dir) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("cannot fold uv's links: {e}");
            return true;
        }
    };
    // the layers first, the links still shadowing their files; then the links, removed in
    // batches under the tree's lock (as `venvfs fold` of a mounted venv has it done)
    let committed = match crate::install::fold::commit_layers(own_dir, &version) {
        Ok(c) if c.links.is_empty() => return true,
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot fold uv's links: {e}");
            return true;
        }
    };
    let touched = committed.report.touched.clone();
    if let Err(e) = take_live(Request::Reload { touched }) {
        tracing::warn!("folded uv's links, but cannot take the layers live: {e}");
        return true;
    }
    let batches: Vec<&[PathBuf]> = committed.links.chunks(REMOVE_BATCH).collect();
    for (i, batch) in batches.iter().enumerate() {
        let last = i + 1 == batches.len();
        let request = Request::RemoveCopies {
            files: batch.to_vec(),
            dirs: if last {
                committed.dirs.clone()
            } else {
                Vec::new()
            },
            since: committed.since,
        };
        if let Err(e) = take_live(request) {
            tracing::warn!("folded uv's links, but cannot remove them all: {e}");
            return true;
        }
    }
    for line in &committed.report.lines {
        tracing::info!("folded uv's links: {line}");
    }
    true
}
