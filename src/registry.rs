//! Runtime records of running mounts, so `venvfs status` can describe them. One small TOML
//! file per daemon in `$XDG_RUNTIME_DIR/venvfs` (else, or when that is not writable,
//! `/tmp/venvfs-<uid>`), removed when the daemon exits; records of dead processes are
//! ignored and cleaned up.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub venv: PathBuf,
    pub pid: u32,
    /// The daemon's fd of the venv directory: `/proc/<pid>/fd/<fd>` reaches the upper layer
    /// beneath the mount.
    pub upper_fd: i32,
    pub layers: Vec<String>,
    pub lower_entries: usize,
    /// The `venvfs mount` options it was started with.
    #[serde(default)]
    pub mount_flags: Vec<String>,
    /// The mount namespace the daemon mounted in (`mnt:[…]`): the same venv path may be
    /// mounted by one daemon in each namespace of a machine (jobs, containers), every one
    /// of them recorded here. None in records written before it was kept.
    #[serde(default)]
    pub mount_namespace: Option<String>,
    /// The daemon's pid namespace (`pid:[…]`): its pid means nothing in another one (a
    /// container's, a `unshare --pid` job's) sharing this directory, where it must neither
    /// be listed nor taken for dead. None in records written before it was kept.
    #[serde(default)]
    pub pid_namespace: Option<String>,
}

/// This process's pid namespace, as `/proc/self/ns/pid` names it.
pub fn pid_namespace() -> Option<String> {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// This process's mount namespace, as `/proc/self/ns/mnt` names it.
pub fn mount_namespace() -> Option<String> {
    std::fs::read_link("/proc/self/ns/mnt")
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// The running daemon that serves `venv` (an absolute path) as this process sees it: the
/// one that mounted it in this process's mount namespace. Another namespace's daemon of
/// the same path (another job's, another container's) is not this one's mount.
pub fn serving(venv: &Path) -> Option<Record> {
    let here = mount_namespace();
    let mut candidates: Vec<Record> = list().into_iter().filter(|r| r.venv == venv).collect();
    // (records without a namespace only when no record names this one)
    candidates.sort_by_key(|r| r.mount_namespace.is_none());
    candidates
        .into_iter()
        .find(|r| r.mount_namespace.is_none() || r.mount_namespace == here)
}

/// `$XDG_RUNTIME_DIR/venvfs`, else (unset, or not writable) `/tmp/venvfs-<uid>`.
pub fn dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() && crate::finder::uvcache::writable_dir(&PathBuf::from(&d)) => {
            PathBuf::from(d).join("venvfs")
        }
        _ => std::env::temp_dir().join(format!("venvfs-{}", user())),
    }
}

/// Who runs this, for a runtime directory of their own: the uid.
#[cfg(unix)]
fn user() -> String {
    rustix::process::getuid().as_raw().to_string()
}

/// Who runs this, for a runtime directory of their own: the user name (the temporary
/// directory is per user already on Windows).
#[cfg(not(unix))]
fn user() -> String {
    std::env::var("USERNAME").unwrap_or_default()
}

fn file_for(pid: u32) -> PathBuf {
    dir().join(format!("{pid}.toml"))
}

/// Where daemon `pid` listens for control requests (the socket is made by `control.rs`).
pub fn socket_file(pid: u32) -> PathBuf {
    dir().join(format!("{pid}.sock"))
}

/// Where a daemon writes its request counts when sent SIGUSR1 (`venvfs status --requests`).
pub fn requests_file(pid: u32) -> PathBuf {
    dir().join(format!("{pid}.requests"))
}

pub fn write(record: &Record) -> std::io::Result<()> {
    let text = toml::to_string(record).map_err(std::io::Error::other)?;
    crate::fsutil::write_atomic(&file_for(record.pid), text.as_bytes(), 0o600)
}

pub fn remove(pid: u32) {
    let _ = std::fs::remove_file(file_for(pid));
    let _ = std::fs::remove_file(requests_file(pid));
    let _ = std::fs::remove_file(dir().join(format!("{pid}.sock")));
}

/// Whether a process runs (a zombie, exited but not yet reaped, does not count).
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // the state letter follows the parenthesised command name, which may contain spaces
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z") | Some("X") | None)
}

/// Records of daemons that are still running.
pub fn list() -> Vec<Record> {
    let Ok(entries) = std::fs::read_dir(dir()) else {
        return Vec::new();
    };
    let here = pid_namespace();
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let Some(rec) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| toml::from_str::<Record>(&t).ok())
        else {
            continue;
        };
        if rec.pid_namespace.is_some() && rec.pid_namespace != here {
            continue; // (another pid namespace's daemon: alive or not, this one cannot tell)
        }
        if alive(rec.pid) {
            out.push(rec);
        } else {
            // (and what the dead daemon left: its control socket and request counts)
            let _ = std::fs::remove_file(socket_file(rec.pid));
            let _ = std::fs::remove_file(requests_file(rec.pid));
            let _ = std::fs::remove_file(&path);
        }
    }
    out.sort_by(|a, b| a.venv.cmp(&b.venv));
    out
}

/// Bytes used by the files below a directory (not following symlinks).
pub fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            total += allocated(&m);
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

/// Bytes a file takes on disk.
#[cfg(unix)]
fn allocated(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.blocks() * 512
}

/// Bytes a file takes on disk: its length (the standard library gives no allocation size).
#[cfg(not(unix))]
fn allocated(m: &std::fs::Metadata) -> u64 {
    m.len()
}
