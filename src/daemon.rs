//! `venvfs mount`, `umount` and `status`: the mount's life cycle on Linux.
//!
//! `mount` without `--foreground` starts a copy of itself in the background (its own session,
//! so closing the terminal does not stop it) and waits until that copy says the venv is
//! mounted or prints why it could not be; the user sees the same errors either way.

use std::error::Error;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use venvfs_fuse::MountConfig;

use crate::cli::{MountArgs, StatusArgs, UmountArgs};
use crate::manifest::{manifest_path, Manifest, STATE_DIR};
use crate::overlay::{Overlay, OverlayConfig};
use crate::registry;

type CmdResult = Result<(), Box<dyn Error>>;

const READY: &str = "venvfs-ready";

/// An absolute path without resolving symlinks through a possibly dead mount.
fn absolute(venv: &Path) -> std::io::Result<PathBuf> {
    let abs = std::path::absolute(venv)?;
    if venvfs_fuse::is_stale(&abs) {
        return Ok(abs);
    }
    abs.canonicalize()
}

fn is_mounted(venv: &Path) -> bool {
    venvfs_fuse::mounts().iter().any(|m| m.mountpoint == venv)
}

/// Whether a venv (any spelling of its path) is mounted by venvfs.
pub fn venv_is_mounted(venv: &Path) -> bool {
    absolute(venv).is_ok_and(|abs| is_mounted(&abs))
}

pub fn mount(args: MountArgs) -> CmdResult {
    let venv = absolute(&args.venv).map_err(|e| format!("{}: {e}", args.venv.display()))?;
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
        let who = registry::list()
            .into_iter()
            .find(|r| r.venv == venv)
            .map(|r| format!(" (pid {})", r.pid));
        return Err(format!(
            "{} is already mounted{}; run `venvfs umount {}` first",
            venv.display(),
            who.unwrap_or_default(),
            venv.display()
        )
        .into());
    }
    crate::venv::python_version(&venv)?;
    // (also for venvs made before the guard existed; the venv is not mounted yet here)
    crate::venv::write_unmounted_guard(&venv)?;
    // uv links into the venv instead of copying (said once: when the script changes)
    match crate::activate::set_link_mode(&venv) {
        Ok(true) if !args.daemon_child => {
            if let Some(hint) = crate::activate::project_hint(&venv) {
                eprintln!("{hint}");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(
            "cannot set uv's link mode in {}/bin/activate: {e}",
            venv.display()
        ),
    }
    if args.foreground || args.daemon_child {
        serve(&venv, &args)
    } else {
        spawn_daemon(&venv, &args)
    }
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

fn spawn_daemon(venv: &Path, args: &MountArgs) -> CmdResult {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("mount").arg(venv).arg("--daemon-child");
    cmd.args(mount_flags(args));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| rustix::process::setsid().map(drop).map_err(Into::into));
    }
    let mut child = cmd.spawn()?;
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let stdout = BufReader::new(child.stdout.take().expect("piped"));
    let ready = stdout.lines().map_while(Result::ok).any(|l| l == READY);
    if ready {
        println!(
            "mounted {} (venvfs daemon pid {}); `venvfs umount {}` unmounts",
            venv.display(),
            child.id(),
            venv.display()
        );
        return Ok(());
    }
    let status = child.wait()?;
    let text = errors.join().unwrap_or_default();
    eprint!("{text}");
    Err(format!("mounting {} failed ({status})", venv.display()).into())
}

fn serve(venv: &Path, args: &MountArgs) -> CmdResult {
    let manifest_file = manifest_path(venv);
    let manifest = Manifest::load(&manifest_file)?;
    let mut cfg = OverlayConfig {
        memory_budget: args.memory_cache_mib << 20,
        ..Default::default()
    };
    if let Some(d) = &args.spill_dir {
        cfg.spill_dir = d.clone();
    }
    cfg.reference_roots = reference_roots(&manifest);
    let started = Instant::now();
    // The kernel hands us modes with the caller's umask already applied: ours must not
    // mask them a second time.
    rustix::process::umask(rustix::fs::Mode::empty());
    let overlay = std::sync::Arc::new(Overlay::new(venv, &manifest, cfg)?);
    let record = registry::Record {
        venv: venv.to_owned(),
        pid: std::process::id(),
        upper_fd: overlay.upper().fd().as_raw_fd(),
        layers: overlay.lower().labels.clone(),
        lower_entries: overlay.lower().len(),
        mount_flags: mount_flags(args)
            .into_iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect(),
    };
    // The log must be opened before the mount hides the venv's .venvfs directory.
    let log = if args.daemon_child {
        let path = venv.join(STATE_DIR).join("mount.log");
        Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?,
        )
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
    let took = started.elapsed();
    if let Err(e) = take_changes_live(&overlay, mounted.kernel_cache(), &record) {
        tracing::warn!(
            "cannot listen for live changes ({e}): `venvfs sync`/`install` will ask to remount"
        );
    }
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
    if let Err(e) = registry::write(&record) {
        tracing::warn!("cannot record the mount for `venvfs status`: {e}");
    }
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
    let stats = mounted.stats();
    let result = mounted.run();
    registry::remove(record.pid);
    tracing::info!(
        "unmounted {}; requests served: {}",
        venv.display(),
        format_requests(&stats.snapshot())
    );
    Ok(result?)
}

/// The read-only sources a symlink created in the venv may point into to be kept as a
/// reference: uv's cache (as this process's environment names it, and canonical), and the
/// uv caches the venv's layers come from (the directory above their `archive-v0`).
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
    if let Some(uv) = crate::finder::uvcache::locate(None) {
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

/// Answers the control socket: a command that changed the venv's layers (while mounted)
/// asks the daemon to take the new manifest.
fn take_changes_live(
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
        overlay.upper().fd().as_raw_fd()
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

/// Writes the request counts where `venvfs status --requests` reads them: one `kind count`
/// line each.
fn write_requests(pid: u32, stats: &venvfs_fuse::RequestStats) -> std::io::Result<()> {
    let text: String = stats
        .snapshot()
        .iter()
        .map(|(op, n)| format!("{op} {n}\n"))
        .collect();
    crate::fsutil::write_atomic(&registry::requests_file(pid), text.as_bytes(), 0o600)
}

fn format_requests(counts: &[(&str, u64)]) -> String {
    let parts: Vec<String> = counts.iter().map(|(op, n)| format!("{op} {n}")).collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Asks a daemon for its request counts (SIGUSR1) and waits for it to write them.
fn read_requests(pid: u32) -> Option<String> {
    let file = registry::requests_file(pid);
    let _ = std::fs::remove_file(&file);
    let pid = rustix::process::Pid::from_raw(pid as i32)?;
    rustix::process::kill_process(pid, rustix::process::Signal::USR1).ok()?;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(&file) {
            return Some(text);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

fn mount_hint(e: &std::io::Error) -> &'static str {
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

/// Sends the daemon's stdout and stderr to its log file (closing the pipes to the parent).
fn redirect_output(log: &std::fs::File) -> std::io::Result<()> {
    use std::io::Write;
    std::io::stdout().flush()?;
    rustix::stdio::dup2_stdout(log)?;
    rustix::stdio::dup2_stderr(log)?;
    Ok(())
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
    let abs = absolute(venv).map_err(|e| format!("{}: {e}", venv.display()))?;
    let shown = abs.display();
    if venvfs_fuse::is_stale(&abs) {
        return Err(format!(
            "{shown}: its venvfs daemon died; run `venvfs mount {shown}` (or `venvfs umount {shown}`) first"
        )
        .into());
    }
    if !is_mounted(&abs) {
        return Ok(change(&abs)?.0);
    }
    let Some(record) = registry::list().into_iter().find(|r| r.venv == abs) else {
        return Err(format!(
            "{shown} is mounted by another user or session; run the command there, or unmount it there first"
        )
        .into());
    };
    let root = PathBuf::from(format!("/proc/{}/fd/{}", record.pid, record.upper_fd));
    let (value, touched) = change(&root)?;
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
    let daemon = registry::list().into_iter().find(|r| r.venv == venv);
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

pub fn status(args: &StatusArgs) -> CmdResult {
    let records = registry::list();
    let mounts = venvfs_fuse::mounts();
    if mounts.is_empty() {
        println!("no venv is mounted by venvfs");
        return Ok(());
    }
    for m in &mounts {
        let stale = venvfs_fuse::is_stale(&m.mountpoint);
        match records.iter().find(|r| r.venv == m.mountpoint) {
            Some(r) if !stale => {
                let upper = PathBuf::from(format!("/proc/{}/fd/{}", r.pid, r.upper_fd));
                println!("{}", m.mountpoint.display());
                println!("  daemon pid {}", r.pid);
                println!("  upper layer: {} on disk", human(registry::disk_usage(&upper)));
                println!("  {} layers, {} entries:", r.layers.len(), r.lower_entries);
                const SHOWN: usize = 20;
                for l in r.layers.iter().take(SHOWN) {
                    println!("    {l}");
                }
                if r.layers.len() > SHOWN {
                    println!("    ... and {} more (`venvfs layer list` lists them all)", r.layers.len() - SHOWN);
                }
                if args.requests {
                    match read_requests(r.pid) {
                        Some(text) => {
                            println!("  requests served since mounting:");
                            for line in text.lines() {
                                if let Some((op, n)) = line.split_once(' ') {
                                    println!("    {op:<12} {n:>10}");
                                }
                            }
                        }
                        None => println!("  requests served: the daemon did not answer"),
                    }
                }
            }
            _ if stale => println!(
                "{}\n  stale: its daemon died; `venvfs mount {}` recovers it, `venvfs umount {}` removes it",
                m.mountpoint.display(),
                m.mountpoint.display(),
                m.mountpoint.display()
            ),
            _ => println!("{}\n  mounted by a daemon of another user or session", m.mountpoint.display()),
        }
    }
    Ok(())
}

/// The manifest of a venv, also while it is mounted (the mount hides `.venvfs`; the
/// daemon's directory fd still reaches it).
pub fn manifest_of(venv: &Path) -> PathBuf {
    let abs = absolute(venv).unwrap_or_else(|_| venv.to_owned());
    match registry::list().into_iter().find(|r| r.venv == abs) {
        Some(r) => PathBuf::from(format!("/proc/{}/fd/{}", r.pid, r.upper_fd))
            .join(STATE_DIR)
            .join(crate::manifest::MANIFEST_FILE),
        None => manifest_path(venv),
    }
}

pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
