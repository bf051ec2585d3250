//! Serving a mount: the overlay over the venv, the FUSE session, and the signals that
//! unmount it or ask for its request counts.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use venvfs_fuse::MountConfig;

use super::change::take_changes_live;
use super::requests::{format_requests, write_requests};
use super::spawn::{redirect_output, READY};
use super::{mount_flags, CmdResult};
use crate::cli::MountArgs;
use crate::manifest::{Manifest, STATE_DIR};
use crate::overlay::{Overlay, OverlayConfig};
use crate::registry;

/// The overlay of `venv` as its manifest describes it, ready to mount (`for_kernel`: a
/// kernel mount serves it; else venvfs reads it itself).
pub(super) fn open_overlay(
    venv: &Path,
    manifest: &Manifest,
    memory_cache_mib: u64,
    spill_dir: Option<&Path>,
    for_kernel: bool,
    others: bool,
) -> Result<std::sync::Arc<Overlay>, Box<dyn std::error::Error>> {
    raise_open_files_limit();
    let mut cfg = OverlayConfig {
        memory_budget: memory_cache_mib << 20,
        remote_read_budget: memory_cache_mib << 20,
        ..Default::default()
    };
    if let Some(d) = spill_dir {
        cfg.spill_dir = d.to_owned();
    }
    cfg.reference_roots = reference_roots(manifest);
    let mut stores = bytecode_stores(venv);
    let local = stores.as_ref().is_some_and(stores_are_local);
    if let Some(stores) = stores.as_mut().filter(|_| !local) {
        // (each check of a name there is a request to the server: see bytecode/misses.rs)
        stores.remember_misses();
    }
    // To the kernel, the stored `.pyc` files are shown as links to them: Python then opens
    // and reads the store's own file, so the `isatty` ioctl of every open (which the kernel
    // forwards to a FUSE filesystem whatever it answers) and the reads never reach the
    // daemon, and every venv shares one page cache of them. `VENVFS_BYTECODE_LINKS=0` shows
    // them as files. (What venvfs reads itself, `materialize`, gets the files.)
    cfg.bytecode_links =
        for_kernel && std::env::var_os("VENVFS_BYTECODE_LINKS").is_none_or(|v| v != "0") && local;
    if let Some(stores) = stores.as_mut().filter(|_| !cfg.bytecode_links) {
        // (served by the daemon: the open that checked a file serves it, one open a module)
        stores.keep_checked_files();
    }
    cfg.bytecode = stores.map(std::sync::Arc::new);
    // A whole `__pycache__` too, where it can be: Python then writes the store itself,
    // which other users of a mount (`--allow-other`) may not.
    cfg.pycache_links = !others;
    // On a filesystem other hosts mount too, a name may appear beneath the mount without
    // going through it (another host's daemon made it): the kernel must not remember that
    // a name is missing, so that once this daemon takes the name in (when the other's
    // entry gets in the way of one of its own) the kernel asks again.
    if let Some(fstype) = crate::doctor::shared_filesystem(venv) {
        tracing::debug!(
            "{} is on {fstype}: no negative entries cached",
            venv.display()
        );
        cfg.negative_ttl = std::time::Duration::ZERO;
    }
    // The kernel hands us modes with the caller's umask already applied: ours must not
    // mask them a second time.
    let callers = rustix::process::umask(rustix::fs::Mode::empty());
    let _ = CALLERS_UMASK.set(callers.bits());
    Ok(std::sync::Arc::new(Overlay::new(venv, manifest, cfg)?))
}

/// Raises the daemon's limit of open files to the most it may have. It keeps a file open
/// for every file open through the mount and a few hundred more between uses
/// (`overlay/open_files.rs`, `bytecode/checked.rs`); the usual default of 1,024 would make
/// a program that opens many files at once see EMFILE from the mount.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    let _ = CALLERS_OPEN_FILES.set(limit);
    if limit.current.is_some() && limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!("cannot raise the limit of open files: {e}");
        }
    }
}

/// The limit of open files the daemon was started with: what a command `venvfs run`
/// starts gets back.
pub(super) static CALLERS_OPEN_FILES: std::sync::OnceLock<rustix::process::Rlimit> =
    std::sync::OnceLock::new();

/// The umask the daemon was started with, before it set its own to 0: what a command
/// `venvfs run` starts gets back.
pub(super) static CALLERS_UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

pub(super) fn serve(venv: &Path, args: &MountArgs) -> CmdResult {
    let started = Instant::now();
    // (the daemon settles the layers, so that a mount reads the manifest once; what it
    // says goes to stdout, which `venvfs mount` shows until the mount is ready)
    let (manifest, notes) = super::unmounted::settle_layers(venv)?;
    for note in notes {
        println!("{note}");
    }
    let overlay = open_overlay(
        venv,
        &manifest,
        args.memory_cache_mib,
        args.spill_dir.as_deref(),
        true,
        args.allow_other,
    )?;
    let record = record_of(venv, &overlay, mount_flags(args));
    // The log must be opened before the mount hides the venv's .venvfs directory.
    let log = if args.daemon_child {
        let path = venv.join(STATE_DIR).join("mount.log");
        // (the daemon's umask is 0 by now: the mode is said; one an older venvfs made 0666
        // is made the user's alone too)
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        log.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Some(log)
    } else {
        None
    };
    let mount_cfg = MountConfig {
        fsname: format!("venvfs:{}", venv.display()),
        allow_other: args.allow_other,
        threads: args.threads,
        passthrough: args.passthrough,
    };
    let mounted = venvfs_fuse::mount(std::sync::Arc::clone(&overlay), venv, &mount_cfg)
        .map_err(|e| format!("cannot mount {}: {e}{}", venv.display(), mount_hint(&e)))?;
    // The activation scripts are made to set uv's link mode now, in the venv's own
    // directory beneath the mount: the mount is made (a refused one changes nothing), and
    // no request has been answered yet, so the overlay has looked at nothing of the upper
    // and the kernel caches nothing of it. Through the mount each script would be a
    // copy-up (about 20 requests and an fsync: a third of a first mount's time).
    let patched =
        super::set_link_mode(&PathBuf::from(format!("/proc/self/fd/{}", record.upper_fd)));
    let took = started.elapsed();
    // (said once, when the script changed: how a uv project gets the same unactivated)
    if let Some(hint) = patched
        .then(|| crate::activate::project_hint(venv))
        .flatten()
    {
        println!("{hint}");
    }
    attach(&overlay, mounted.kernel_cache(), args.passthrough, &record);
    let unmounter = mounted.unmounter();
    let stats = mounted.stats();
    let mut signals = signal_hook::iterator::Signals::new([
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGUSR1,
    ])?;
    let shown = venv.display().to_string();
    let daemon = log.is_some();
    let pid = std::process::id();
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig == libc::SIGUSR1 {
                if let Err(e) = write_requests(pid, &stats) {
                    tracing::warn!("cannot write the request counts: {e}");
                }
                continue;
            }
            if sig == libc::SIGHUP && daemon {
                continue; // a daemon has no terminal to lose
            }
            match unmounter.unmount(false) {
                Ok(()) => break,
                Err(e) => tracing::error!(
                    "cannot unmount {shown}: {e}; close what uses it, or run `venvfs umount --lazy {shown}`"
                ),
            }
        }
    });
    if let Some(log) = &log {
        println!("{READY}");
        redirect_output(log)?;
    }
    tracing::info!(
        "mounted {} with {} layers ({} entries) in {took:.0?}",
        venv.display(),
        record.layers.len(),
        record.lower_entries
    );
    if log.is_none() {
        eprintln!(
            "venvfs: {} mounted; press Ctrl-C to unmount",
            venv.display()
        );
    }
    // (and again when the venv is made anew through the mount: see activation.rs)
    super::activation::watch(
        venv.to_owned(),
        PathBuf::from(format!("/proc/self/fd/{}", record.upper_fd)),
        std::sync::Arc::clone(&overlay),
    );
    let stats = mounted.stats();
    let result = mounted.run();
    registry::remove(record.pid);
    overlay.remove_bytecode_temps();
    if let Err(e) = overlay.upper().remove_work() {
        tracing::warn!("cannot remove the daemon's work directory: {e}");
    }
    tracing::info!(
        "unmounted {}; requests served: {}",
        venv.display(),
        format_requests(&stats.snapshot())
    );
    Ok(result?)
}

/// The runtime record of a daemon of this process serving `overlay` at `venv`.
pub(super) fn record_of(
    venv: &Path,
    overlay: &Overlay,
    mount_flags: Vec<std::ffi::OsString>,
) -> registry::Record {
    registry::Record {
        venv: venv.to_owned(),
        pid: std::process::id(),
        upper_fd: overlay
            .upper()
            .dir_fd()
            .expect("the POSIX upper")
            .as_raw_fd(),
        layers: overlay.lower().layer_labels(),
        lower_entries: overlay.lower().len(),
        mount_flags: mount_flags
            .into_iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect(),
        mount_namespace: registry::mount_namespace(),
        pid_namespace: registry::pid_namespace(),
    }
}

/// What a daemon does once its mount is up, `venvfs mount`'s and `venvfs run`'s alike: the
/// overlay gets the kernel's cache to tell of changes, shared objects are pushed ahead
/// (not with passthrough, where the kernel reads the files itself), live changes are
/// listened for, and the mount is recorded for `venvfs status` and for the commands
/// that change a mounted venv.
pub(super) fn attach(
    overlay: &std::sync::Arc<Overlay>,
    cache: std::sync::Arc<dyn venvfs_api::KernelCache>,
    passthrough: bool,
    record: &registry::Record,
) {
    overlay.set_kernel_cache(std::sync::Arc::clone(&cache));
    if !passthrough {
        overlay.start_prefetch(std::sync::Arc::clone(&cache));
    }
    if let Err(e) = take_changes_live(overlay, cache, record) {
        tracing::warn!(
            "cannot listen for live changes ({e}): `venvfs sync`/`install` will ask to remount"
        );
    }
    if let Err(e) = registry::write(record) {
        tracing::warn!("cannot record the mount for `venvfs status`: {e}");
    }
}

/// Where the venv's `.pyc` files of layer modules are shared (see `crate::bytecode`).
fn bytecode_stores(venv: &Path) -> Option<crate::bytecode::Stores> {
    let stores = crate::bytecode::Stores::of_venv(venv)?;
    tracing::debug!(
        "bytecode shared: written to {:?}, read from {:?}",
        stores.write,
        stores.read
    );
    Some(stores)
}

/// Whether every bytecode store is on a local filesystem. On a network filesystem (a store
/// shared by the nodes of a cluster) a link would send each open of a `.pyc` to the
/// server; served through the mount, its content stays in the mount's page cache.
fn stores_are_local(stores: &crate::bytecode::Stores) -> bool {
    stores.write.iter().chain(&stores.read).all(|store| {
        match crate::doctor::shared_filesystem(store) {
            Some(fstype) => {
                tracing::debug!("{} is on {fstype}: .pyc shown as files", store.display());
                false
            }
            None => true,
        }
    })
}

pub(super) fn mount_hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOENT) if !Path::new("/dev/fuse").exists() => {
            "\n  /dev/fuse is missing: load the fuse module (modprobe fuse)"
        }
        Some(libc::EPERM) | Some(libc::EACCES) => {
            "\n  mounting needs root or fusermount3 (apt-get install fuse3)"
        }
        _ => "",
    }
}

/// The read-only sources a symlink created in the venv may point into to be kept as a
/// reference, besides any uv cache the link itself shows (see `Upper::reference_target`):
/// uv's caches as this process's environment names them (its own and those of
/// `$VENVFS_EXTRA_CACHE_DIRS`, and canonical), and the uv caches
/// the venv's layers come from (the directory above their `archive-v0`).
fn reference_roots(manifest: &Manifest) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    let mut add = |p: PathBuf| {
        if let Ok(c) = p.canonicalize() {
            if !roots.contains(&c) {
                roots.push(c);
            }
        }
        if p.is_absolute() && !roots.contains(&p) {
            roots.push(p);
        }
    };
    for uv in crate::finder::uvcache::locate_all(&[]) {
        add(uv);
    }
    for layer in &manifest.layers {
        let archives = layer.source.parent().filter(|p| p.ends_with("archive-v0"));
        if let Some(cache) = archives.and_then(Path::parent) {
            add(cache.to_owned());
        }
    }
    roots
}
