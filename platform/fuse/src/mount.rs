//! Mounting, running and unmounting a venvfs FUSE session.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};

use fuser::{MountOption, Session, SessionACL, SessionUnmounter};
use venvfs_api::FileSystem;

use crate::adapter::FuseAdapter;
use crate::mountinfo::mounts;

/// The filesystem subtype: mounts show up as type `fuse.venvfs`.
pub const SUBTYPE: &str = "venvfs";

/// How to mount.
#[derive(Clone, Debug)]
pub struct MountConfig {
    /// The mount's source as shown in `/proc/mounts` (commas are replaced by `_`, as the
    /// mount helper would split the option list there).
    pub fsname: String,
    /// Let other users than the one mounting use the mount (`allow_other`; for non-root
    /// users this needs `user_allow_other` in /etc/fuse.conf).
    pub allow_other: bool,
    /// Kernel request worker threads (at least one is used).
    pub threads: usize,
    /// Let the kernel read files the core backs with a local file directly (FUSE
    /// passthrough). Quietly off when the kernel lacks it or we lack CAP_SYS_ADMIN.
    pub passthrough: bool,
}

/// A mounted filesystem, not yet serving. Call [`Mounted::run`] to serve it; dropping it
/// unmounts.
pub struct Mounted<F: FileSystem> {
    session: Session<FuseAdapter<F>>,
    unmounter: Unmounter,
}

impl<F: FileSystem> std::fmt::Debug for Mounted<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted")
            .field("mountpoint", &self.unmounter.mountpoint)
            .finish_non_exhaustive()
    }
}

/// Mount `fs` on `mountpoint`. Returns once the kernel has completed the FUSE handshake.
pub fn mount<F: FileSystem>(fs: F, mountpoint: &Path, cfg: &MountConfig) -> io::Result<Mounted<F>> {
    let mountpoint = mountpoint.canonicalize()?;
    let mut session = Session::new(
        FuseAdapter::new(fs, cfg.passthrough),
        &mountpoint,
        &session_config(cfg),
    )?;
    let unmounter = Unmounter {
        session: Arc::new(Mutex::new(Some(session.unmount_callable()))),
        mountpoint,
    };
    Ok(Mounted { session, unmounter })
}

fn session_config(cfg: &MountConfig) -> fuser::Config {
    let fsname = match cfg.fsname.replace(',', "_") {
        name if name.is_empty() => SUBTYPE.to_owned(),
        name => name,
    };
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName(fsname),
        // Not MountOption::Subtype: fuser hands that only to fusermount, so a root mount
        // (mount(2) directly) would show plain "fuse". The kernel takes subtype= itself.
        MountOption::CUSTOM(format!("subtype={SUBTYPE}")),
        MountOption::DefaultPermissions,
        // Device nodes and setuid bits have no business in a virtualenv: the core refuses
        // to create devices, and nodev only stops opening them (fifos still work).
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    config.acl = if cfg.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(cfg.threads.max(1));
    config.clone_fd = true;
    config
}

impl<F: FileSystem> Mounted<F> {
    /// Something another thread (a signal handler thread) can use to unmount.
    pub fn unmounter(&self) -> Unmounter {
        self.unmounter.clone()
    }

    /// Where the filesystem is mounted (canonical path).
    pub fn mountpoint(&self) -> &Path {
        &self.unmounter.mountpoint
    }

    /// Serve kernel requests until the filesystem is unmounted.
    pub fn run(self) -> io::Result<()> {
        self.session.run()
    }
}

/// Unmounts a [`Mounted`] filesystem from any thread. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Unmounter {
    session: Arc<Mutex<Option<SessionUnmounter>>>,
    mountpoint: PathBuf,
}

impl Unmounter {
    /// Unmount, which makes [`Mounted::run`] return. A plain unmount fails with
    /// `ResourceBusy` while the mount is in use; `lazy` detaches it at once and lets the
    /// session end when the last user is gone.
    pub fn unmount(&self, lazy: bool) -> io::Result<()> {
        if !lazy {
            let session = self
                .session
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            // fuser's unmounter is single-use, also when it fails; later tries go by path.
            if let Some(mut session) = session {
                return session.unmount();
            }
        }
        if !mounts().iter().any(|m| m.mountpoint == self.mountpoint) {
            return Ok(());
        }
        unmount(&self.mountpoint, lazy)
    }
}

/// Unmount the FUSE filesystem at `path`; `lazy` detaches it even when busy. As root this
/// is `umount2(2)`; otherwise (or when that is not permitted) `fusermount3 -u`, falling
/// back to `fusermount -u`.
pub fn unmount(path: &Path, lazy: bool) -> io::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let c_path = CString::new(path.as_os_str().as_bytes())?;
        let mut flags = libc::UMOUNT_NOFOLLOW;
        if lazy {
            flags |= libc::MNT_DETACH;
        }
        // SAFETY: c_path is a valid NUL-terminated string that outlives the call.
        if unsafe { libc::umount2(c_path.as_ptr(), flags) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EPERM) {
            return Err(err);
        }
    }
    fusermount_unmount(path, lazy)
}

fn fusermount_unmount(path: &Path, lazy: bool) -> io::Result<()> {
    for bin in ["fusermount3", "fusermount"] {
        let mut cmd = Command::new(bin);
        cmd.arg("-u");
        if lazy {
            cmd.arg("-z");
        }
        let out = match cmd.arg("--").arg(path).output() {
            Ok(out) => out,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let kind = if stderr.contains("busy") {
            io::ErrorKind::ResourceBusy
        } else {
            io::ErrorKind::Other
        };
        let msg = format!("{bin} -u {}: {}", path.display(), stderr.trim());
        return Err(io::Error::new(kind, msg));
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "cannot unmount: neither fusermount3 nor fusermount is installed",
    ))
}

/// Whether `path` is a dead FUSE mount: its server is gone (`ENOTCONN`) or the connection
/// was aborted (`ECONNABORTED`). Asks with `statfs(2)`, which always reaches the server
/// (a `stat` may be answered from the kernel's attribute cache).
pub fn is_stale(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: an all-zero statfs is a valid value for the kernel to overwrite.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is NUL-terminated and buf is a valid, writable statfs.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut buf) } == 0 {
        return false;
    }
    let err = io::Error::last_os_error().raw_os_error();
    matches!(err, Some(libc::ENOTCONN | libc::ECONNABORTED))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(fsname: &str) -> MountConfig {
        MountConfig {
            fsname: fsname.into(),
            allow_other: true,
            threads: 0,
            passthrough: false,
        }
    }

    #[test]
    fn config_options() {
        let c = session_config(&cfg("venvfs:/a,b"));
        assert!(c
            .mount_options
            .contains(&MountOption::FSName("venvfs:/a_b".into())));
        assert!(c
            .mount_options
            .contains(&MountOption::CUSTOM("subtype=venvfs".into())));
        assert!(c.mount_options.contains(&MountOption::DefaultPermissions));
        assert_eq!(c.acl, SessionACL::All);
        assert_eq!(c.n_threads, Some(1));
        assert!(c.clone_fd);
        let c = session_config(&cfg(""));
        assert!(c
            .mount_options
            .contains(&MountOption::FSName("venvfs".into())));
    }

    #[test]
    fn live_paths_are_not_stale() {
        assert!(!is_stale(Path::new("/")));
        assert!(!is_stale(Path::new("/nonexistent/venvfs/path")));
    }
}
