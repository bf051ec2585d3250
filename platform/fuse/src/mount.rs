//! Mounting, running and unmounting a venvfs FUSE session.

use std::ffi::CString;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};

use fuser::{INodeNo, MountOption, Notifier, Session, SessionACL, SessionUnmounter};
use venvfs_api::{FileSystem, Ino, KernelCache};

use crate::adapter::FuseAdapter;
use crate::mountinfo::mounts;
use crate::stats::RequestStats;

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
    /// `None` once [`Mounted::run`] has taken it.
    session: Option<Session<FuseAdapter<F>>>,
    unmounter: Unmounter,
    stats: Arc<RequestStats>,
    /// Mounted by `fusermount3` on our behalf: fuser's session holds no mount of its own
    /// (it neither unmounts on drop nor through its `SessionUnmounter`), so we do, by path.
    by_helper: bool,
}

impl<F: FileSystem> std::fmt::Debug for Mounted<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted")
            .field("mountpoint", &self.unmounter.mountpoint)
            .field("by_helper", &self.by_helper)
            .finish_non_exhaustive()
    }
}

/// Mount `fs` on `mountpoint`. Returns once the kernel has completed the FUSE handshake.
///
/// Root mounts through fuser (mount(2) directly). Any other user mounts through the
/// setuid `fusermount3` helper, as libfuse does: mount(2) of a FUSE filesystem needs
/// CAP_SYS_ADMIN, and fuser's own fallback would give up before reaching the helper when
/// `/dev/fuse` is not open to the user. Note that `fusermount3` opens `/dev/fuse` as the
/// calling user too, so an unprivileged mount needs `/dev/fuse` readable and writable by
/// that user (`0666` on common distributions); the error says so.
pub fn mount<F: FileSystem>(fs: F, mountpoint: &Path, cfg: &MountConfig) -> io::Result<Mounted<F>> {
    let mountpoint = mountpoint.canonicalize()?;
    let mut config = session_config(cfg);
    let adapter = FuseAdapter::new(fs, cfg.passthrough);
    let stats = adapter.stats();
    if is_root() {
        let mut session = Session::new(adapter, &mountpoint, &config)?;
        let unmounter = Unmounter {
            session: Arc::new(Mutex::new(Some(session.unmount_callable()))),
            mountpoint,
        };
        return Ok(Mounted {
            session: Some(session),
            unmounter,
            stats,
            by_helper: false,
        });
    }
    // Each extra worker's FUSE_DEV_IOC_CLONE opens /dev/fuse again; when this process may
    // not, the workers share the helper's descriptor instead.
    config.clone_fd = dev_fuse_usable();
    let fd = crate::fusermount::mount(&mountpoint, &helper_options(&config))?;
    // No fuser unmounter: it would do nothing for a session made from a descriptor.
    let unmounter = Unmounter {
        session: Arc::new(Mutex::new(None)),
        mountpoint,
    };
    let acl = config.acl;
    match Session::from_fd(adapter, fd, acl, config) {
        Ok(session) => Ok(Mounted {
            session: Some(session),
            unmounter,
            stats,
            by_helper: true,
        }),
        Err(e) => {
            if let Err(u) = unmount(&unmounter.mountpoint, true) {
                tracing::warn!(
                    "cannot remove the mount at {} after a failed FUSE handshake: {u}",
                    unmounter.mountpoint.display()
                );
            }
            Err(e)
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether this process can open `/dev/fuse` itself.
fn dev_fuse_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok()
}

/// The `-o` argument for `fusermount3`: the options fuser would pass to mount(2) (nodev
/// and nosuid included) and `allow_other` when the ACL asks for it.
fn helper_options(config: &fuser::Config) -> String {
    let mut options: Vec<String> = config.mount_options.iter().map(option_string).collect();
    if config.acl != SessionACL::Owner {
        options.push("allow_other".to_owned());
    }
    options.join(",")
}

/// A mount option as the kernel and `fusermount3` spell it (fuser's own is private).
fn option_string(option: &MountOption) -> String {
    match option {
        MountOption::FSName(name) => format!("fsname={name}"),
        MountOption::Subtype(subtype) => format!("subtype={subtype}"),
        MountOption::CUSTOM(value) => value.clone(),
        MountOption::AutoUnmount => "auto_unmount".to_owned(),
        MountOption::DefaultPermissions => "default_permissions".to_owned(),
        MountOption::Dev => "dev".to_owned(),
        MountOption::NoDev => "nodev".to_owned(),
        MountOption::Suid => "suid".to_owned(),
        MountOption::NoSuid => "nosuid".to_owned(),
        MountOption::RO => "ro".to_owned(),
        MountOption::RW => "rw".to_owned(),
        MountOption::Exec => "exec".to_owned(),
        MountOption::NoExec => "noexec".to_owned(),
        MountOption::Atime => "atime".to_owned(),
        MountOption::NoAtime => "noatime".to_owned(),
        MountOption::DirSync => "dirsync".to_owned(),
        MountOption::Sync => "sync".to_owned(),
        MountOption::Async => "async".to_owned(),
    }
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

    /// The counts of requests served so far, by kind (shared: they keep counting).
    pub fn stats(&self) -> Arc<RequestStats> {
        Arc::clone(&self.stats)
    }

    /// Tells the kernel to forget cached entries and inodes (FUSE notifications), for a
    /// core whose content changes live. Take it before [`Mounted::run`].
    pub fn kernel_cache(&self) -> Arc<dyn KernelCache> {
        let session = self.session.as_ref().expect("taken before run");
        Arc::new(Notifications(session.notifier(), Arc::clone(&self.stats)))
    }

    /// Where the filesystem is mounted (canonical path).
    pub fn mountpoint(&self) -> &Path {
        &self.unmounter.mountpoint
    }

    /// Serve kernel requests until the filesystem is unmounted.
    pub fn run(mut self) -> io::Result<()> {
        let session = self.session.take().expect("a Mounted is run once");
        if !self.by_helper {
            return session.run();
        }
        // fuser unmounts a session that ends while still mounted (an error in the serving
        // loop); do the same for a helper mount, so that it does not stay behind dead.
        let probe = session.as_fd().try_clone_to_owned();
        let result = session.run();
        if probe.is_ok_and(|fd| connected(fd.as_fd())) {
            self.unmount_on_drop();
        }
        result
    }

    fn unmount_on_drop(&self) {
        if let Err(e) = self.unmounter.unmount(true) {
            tracing::warn!("cannot unmount {}: {e}", self.mountpoint().display());
        }
    }
}

impl<F: FileSystem> Drop for Mounted<F> {
    fn drop(&mut self) {
        // A fuser-mounted session unmounts itself when dropped.
        if let Some(session) = self.session.as_ref().filter(|_| self.by_helper) {
            if connected(session.as_fd()) {
                self.unmount_on_drop();
            }
        }
    }
}

/// Whether a `/dev/fuse` descriptor is still connected to a mount: once the filesystem is
/// unmounted (or the connection aborted) the device polls as `POLLERR`.
fn connected(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    loop {
        // SAFETY: pfd is one valid pollfd for the duration of the call.
        match unsafe { libc::poll(&mut pfd, 1, 0) } {
            0 => return true,
            n if n > 0 => {
                return pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) == 0
            }
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            _ => return false,
        }
    }
}

/// [`KernelCache`] through FUSE notifications.
struct Notifications(Notifier, Arc<RequestStats>);

impl KernelCache for Notifications {
    fn invalidate_entry(&self, parent: Ino, name: &std::ffi::OsStr) {
        // ENOENT: the kernel has nothing cached under that name (or that parent) any more
        if let Err(e) = self.0.inval_entry(INodeNo(parent), name) {
            if e.raw_os_error() != Some(libc::ENOENT) {
                tracing::debug!("cannot invalidate {name:?} in inode {parent}: {e}");
            }
        }
    }

    fn invalidate_inode(&self, ino: Ino) {
        // offset 0, length 0: attributes and every cached page (a directory's listing too)
        if let Err(e) = self.0.inval_inode(INodeNo(ino), 0, 0) {
            if e.raw_os_error() != Some(libc::ENOENT) {
                tracing::debug!("cannot invalidate inode {ino}: {e}");
            }
        }
    }

    fn store(&self, ino: Ino, offset: u64, data: &[u8]) -> bool {
        match self.0.store(INodeNo(ino), offset, data) {
            Ok(()) => {
                self.1.count(crate::stats::Op::NotifyStore);
                true
            }
            Err(e) => {
                // ENOENT: the kernel has forgotten the inode
                if e.raw_os_error() != Some(libc::ENOENT) {
                    tracing::debug!("cannot store pages of inode {ino}: {e}");
                }
                false
            }
        }
    }
}

/// Unmounts a [`Mounted`] filesystem from any thread. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Unmounter {
    /// fuser's unmounter while it is unused; `None` afterwards, and from the start for a
    /// mount made by `fusermount3` (fuser's would do nothing there): then by path.
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
    if is_root() {
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
        if stderr.contains("busy") {
            // As umount2 would say it, so that callers can tell (and explain) it.
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        let msg = format!("{bin} -u {}: {}", path.display(), stderr.trim());
        return Err(io::Error::other(msg));
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
    fn helper_gets_the_mount_options_as_strings() {
        assert_eq!(
            helper_options(&session_config(&cfg("venvfs:/v"))),
            "fsname=venvfs:/v,subtype=venvfs,default_permissions,nodev,nosuid,allow_other"
        );
        let owner_only = MountConfig {
            allow_other: false,
            ..cfg("venvfs:/a,b")
        };
        assert_eq!(
            helper_options(&session_config(&owner_only)),
            "fsname=venvfs:/a_b,subtype=venvfs,default_permissions,nodev,nosuid"
        );
    }

    #[test]
    fn live_paths_are_not_stale() {
        assert!(!is_stale(Path::new("/")));
        assert!(!is_stale(Path::new("/nonexistent/venvfs/path")));
    }
}
