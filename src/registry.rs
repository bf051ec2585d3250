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

/// The runtime directory ([`dir`]), made if it is not there: this user's alone (0700).
/// Commands act on what its records say (which daemon serves a venv, which descriptor
/// reaches its own directory), so one that another user owns is refused, and one others
/// may write (as a venvfs before 2026-12 made it, 0777) is made this user's alone again.
pub fn own_dir() -> std::io::Result<PathBuf> {
    let dir = dir();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(&dir)?;
    check_owned(&dir)?;
    Ok(dir)
}

/// [`dir`], if it is there and this user's (see [`own_dir`]).
fn existing_dir() -> Option<PathBuf> {
    let dir = dir();
    match check_owned(&dir) {
        Ok(()) => Some(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!("{e}");
            None
        }
    }
}

#[cfg(unix)]
fn check_owned(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(dir)?;
    let me = rustix::process::getuid().as_raw();
    if !meta.is_dir() || meta.uid() != me {
        return Err(std::io::Error::other(format!(
            "{} is not a directory of yours (owner uid {}, yours {me}): venvfs keeps its records \
             of running mounts there, and will not use another's; remove it, or set \
             XDG_RUNTIME_DIR to a directory of your own",
            dir.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owned(dir: &Path) -> std::io::Result<()> {
    std::fs::metadata(dir).map(|_| ())
}

/// Who runs this, for a runtime directory of their own: the uid, as the machine knows it.
/// In a user namespace (an unprivileged `venvfs run`), where the user is root, that is the
/// uid it maps to outside: `/tmp/venvfs-0` is root's.
#[cfg(unix)]
fn user() -> String {
    let uid = rustix::process::getuid().as_raw();
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    outside_uid(uid, &map).unwrap_or(uid).to_string()
}

/// `uid` of this user namespace as its parent's, by the lines of its `uid_map` (`inside
/// outside count`).
#[cfg(unix)]
fn outside_uid(uid: u32, uid_map: &str) -> Option<u32> {
    uid_map.lines().find_map(|line| {
        let mut n = line.split_whitespace().map(|n| n.parse::<u64>().ok());
        let (inside, outside, count) = (n.next()??, n.next()??, n.next()??);
        let uid = u64::from(uid);
        (inside <= uid && uid < inside + count)
            .then(|| u32::try_from(outside + (uid - inside)).ok())
            .flatten()
    })
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
    own_dir()?;
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
    let Some(Ok(entries)) = existing_dir().map(std::fs::read_dir) else {
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_uid_is_named_as_outside_its_user_namespace() {
        let identity = "         0          0 4294967295\n";
        assert_eq!(outside_uid(1000, identity), Some(1000));
        assert_eq!(outside_uid(0, "0 1002 1\n"), Some(1002));
        assert_eq!(outside_uid(5, "0 1002 1\n"), None);
        assert_eq!(outside_uid(7, "0 100000 65536\n"), Some(100007));
        assert_eq!(outside_uid(7, ""), None);
    }
}
