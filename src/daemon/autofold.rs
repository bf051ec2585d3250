//! Folding what installers wrote while mounted. `uv sync`, `uv add` and `uv pip install` in
//! symlink link mode (which a venvfs venv's activation sets) make one link per file into
//! uv's cache, each a reference (see `overlay/reference.rs`), and each costing a disk block
//! of the venv's filesystem until `venvfs fold` turns a distribution's links into one
//! layer. Without that mode uv copies (as across filesystems), and pip always does: each
//! file costs what it weighs until `venvfs adopt` makes the distribution a layer of its
//! wheel and removes the copies. The daemon does both itself once the installer is done:
//! when links were made, or a distribution written (its `.dist-info/RECORD` made), and no
//! name was made in the venv's own directory for [`QUIET`], it folds that directory
//! (behind the mount, through its own descriptor) and takes the change live, as `venvfs
//! fold` and `adopt` would through the control socket.
//!
//! Links already there when the venv is mounted are folded the same way, once the mount
//! has been quiet as long, and so are copies in a venv with layers (uv or pip run while it
//! was not mounted; a plain venv mounted is left to `venvfs adopt`), but not on a
//! filesystem other hosts mount too (their daemons may serve those files).
//!
//! A command changing the venv at that moment holds the venv's lock: the fold waits for the
//! next quiet moment. Fold itself only folds a distribution whose every link points into one
//! cache entry, so links of a distribution uv is still installing are left for later; an
//! installer writing again meanwhile keeps what it wrote (a link or copy changed after the
//! fold began looking is not removed: see `adopt::remove_at`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::change::remove_in_batches;
use crate::control::Request;
use crate::lock::VenvLock;
use crate::overlay::{Overlay, Watch};

/// How long nothing is installed before the daemon folds, unless `VENVFS_FOLD_AFTER` says.
const QUIET: Duration = Duration::from_secs(2);

/// How long nothing is installed before the daemon folds: `VENVFS_FOLD_AFTER` seconds, else
/// [`QUIET`]; `None` (`VENVFS_FOLD_AFTER=0`): the daemon leaves uv's links and copies for
/// `venvfs fold`, `adopt`, `sync` or `install` (to look at them as the installer made them,
/// or in tests that fold themselves).
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

/// What the overlay tells: what was made, and when last.
struct Made {
    /// Links into uv's cache (its symlink link mode): for [`fold_now`].
    links: AtomicBool,
    /// Distributions written (a `RECORD` made in a `.dist-info`): for [`adopt_now`].
    dists: AtomicBool,
    last: Mutex<Instant>,
}

impl Watch for Made {
    fn reference_made(&self) {
        *self.last.lock() = Instant::now();
        self.links.store(true, Ordering::Release);
    }

    fn distribution_written(&self) {
        *self.last.lock() = Instant::now();
        self.dists.store(true, Ordering::Release);
    }

    // (pip extracts the wheel's RECORD among its files, then compiles every module for
    // seconds before it writes its own: quiet is counted from the last name made, not
    // from the last RECORD)
    fn entry_made(&self) {
        *self.last.lock() = Instant::now();
    }
}

/// Folds links into layers, and gives back copies a layer can serve, once uv or pip is
/// done. `own_dir` reaches the venv's own directory, `venv` is where it is mounted;
/// `take_live` takes a change live (a reload, or the removal of links or copies the new
/// layers show the same, done under the tree's lock).
pub(super) fn start(
    overlay: &Overlay,
    own_dir: PathBuf,
    venv: PathBuf,
    take_live: impl Fn(Request) -> Result<String, String> + Send + 'static,
) {
    let Some(quiet) = quiet() else {
        tracing::info!(
            "VENVFS_FOLD_AFTER=0: uv's links and copies are left for `venvfs fold` and `adopt`"
        );
        return;
    };
    // Links and copies left from before this mount (uv ran unmounted, or a fold failed)
    // are folded too, once the mount has been quiet as long. Not on a filesystem other
    // hosts mount too: their daemons may serve those files, and removing them from under
    // them would fail their reads until they remount; `venvfs fold` and `adopt` do it
    // when asked. (What is installed through this mount is new to the others, who see
    // it at their next mount: it is given back there too.)
    let shared = venv.parent().and_then(crate::doctor::shared_filesystem);
    if let Some(fstype) = &shared {
        tracing::info!(
            "the venv is on {fstype}, which other hosts may mount: links and copies already \
             there are left for `venvfs fold` and `venvfs adopt`"
        );
    }
    let layout = crate::venv::python_version(&own_dir)
        .ok()
        .filter(|_| shared.is_none())
        .map(|v| crate::install::layout::Layout::new(&v));
    let links = layout
        .as_ref()
        .is_some_and(|l| crate::install::fold::has_references(&own_dir, l));
    let copies = layout
        .as_ref()
        .is_some_and(|l| crate::install::adopt::has_copies(&own_dir, l));
    let made = Arc::new(Made {
        links: AtomicBool::new(links),
        dists: AtomicBool::new(copies),
        last: Mutex::new(Instant::now()),
    });
    overlay.set_watch(Arc::clone(&made) as Arc<dyn Watch>);
    std::thread::spawn(move || loop {
        std::thread::sleep(quiet / 4);
        let pending = made.links.load(Ordering::Acquire) || made.dists.load(Ordering::Acquire);
        if !pending || made.last.lock().elapsed() < quiet {
            continue;
        }
        // (the venv is being changed by a command: the next quiet moment)
        if made.links.swap(false, Ordering::AcqRel) && !fold_now(&own_dir, &take_live) {
            made.links.store(true, Ordering::Release);
        }
        if made.dists.swap(false, Ordering::AcqRel) && !adopt_now(&own_dir, &venv, &take_live) {
            made.dists.store(true, Ordering::Release);
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
    let asked = |r: &Request| take_live(r.clone());
    if let Err(e) = remove_in_batches(&committed.links, &committed.dirs, committed.since, asked) {
        tracing::warn!("folded uv's links, but cannot remove them all: {e}");
        return true;
    }
    for line in &committed.report.lines {
        tracing::info!("folded uv's links: {line}");
    }
    true
}

/// Gives back the copies uv (its default link mode across filesystems) or pip wrote
/// through the mount, as `venvfs adopt` would: each distribution whose wheel uv's cache,
/// venvfs's wheel store or the wheel file it was installed from has becomes a layer, and
/// its copies equal to the layer's files go (with the installer's bytecode of them).
/// Nothing is done when no copy would go. False if a command holds the venv's lock.
fn adopt_now(
    own_dir: &Path,
    venv: &Path,
    take_live: &impl Fn(Request) -> Result<String, String>,
) -> bool {
    use crate::install::adopt;
    let Ok(_lock) = VenvLock::try_acquire(own_dir, own_dir) else {
        return false;
    };
    let started = Instant::now();
    let plan = match adopt::plan(venv, own_dir, &adopt::Options::default()) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("cannot give back the copies uv or pip made: {e}");
            return true;
        }
    };
    for note in &plan.notes {
        tracing::debug!("copies left: {note}");
    }
    if plan.adoptions.iter().all(|a| a.copies.is_empty()) {
        return true;
    }
    // the layers first, the copies still shadowing their files; then the copies
    let touched = match adopt::commit_layers(own_dir, &plan) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("cannot give back the copies uv or pip made: {e}");
            return true;
        }
    };
    if let Err(e) = take_live(Request::Reload { touched }) {
        tracing::warn!("made layers of the copies uv or pip made, but cannot take them live: {e}");
        return true;
    }
    let (files, dirs) = adopt::removals(&plan);
    let asked = |r: &Request| take_live(r.clone());
    let (files, bytes) = match remove_in_batches(&files, &dirs, plan.started, asked) {
        Ok(done) => done,
        Err(e) => {
            tracing::warn!(
                "made layers of the copies uv or pip made, but cannot remove them all: {e}"
            );
            return true;
        }
    };
    if let Err(e) = adopt::mark_finished(own_dir) {
        tracing::warn!("cannot mark the adoption finished: {e}");
    }
    let removed = adopt::Removed {
        files,
        bytes,
        ..Default::default()
    };
    for line in adopt::lines(&plan, &removed, started.elapsed()) {
        tracing::info!("gave back the copies uv or pip made: {line}");
    }
    true
}
