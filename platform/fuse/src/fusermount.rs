//! Mounting through the setuid `fusermount3` helper, for users who cannot open `/dev/fuse`
//! themselves (it is often `0600 root`).
//!
//! The protocol is libfuse's `fuse_mount_fusermount`: make a UNIX socket pair, run
//! `fusermount3 -o OPTIONS -- MOUNTPOINT` with `_FUSE_COMMFD` naming the end it inherits; it
//! opens `/dev/fuse`, mounts, sends the open device over the socket (`SCM_RIGHTS`) and exits.

use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use rustix::io::{fcntl_dupfd_cloexec, fcntl_setfd, Errno, FdFlags};
use rustix::net::{
    recvmsg, socketpair, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags,
    SocketFlags, SocketType,
};

/// The helpers tried, in order (fuse2's `fusermount` speaks the same protocol).
const HELPERS: [&str; 2] = ["fusermount3", "fusermount"];

/// The environment variable that tells the helper which inherited fd is its socket.
const COMM_FD_ENV: &str = "_FUSE_COMMFD";

/// Mount a FUSE filesystem on `mountpoint` (canonical) with the comma-separated `options`
/// through the first installed helper. Returns the connected `/dev/fuse` descriptor
/// (close-on-exec); the kernel's INIT request is waiting on it.
pub(crate) fn mount(mountpoint: &Path, options: &str) -> io::Result<OwnedFd> {
    for bin in HELPERS {
        match mount_with(Path::new(bin), mountpoint, options) {
            Err(Failure::NotInstalled) => continue,
            Err(Failure::Io(e)) => return Err(e),
            Ok(fd) => return Ok(fd),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "this user cannot open /dev/fuse and fusermount3 is not installed: install fuse3 \
         (e.g. apt-get install fuse3), or mount as root",
    ))
}

#[derive(Debug)]
enum Failure {
    /// The helper binary does not exist.
    NotInstalled,
    Io(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

impl From<Errno> for Failure {
    fn from(e: Errno) -> Self {
        Failure::Io(e.into())
    }
}

fn mount_with(bin: &Path, mountpoint: &Path, options: &str) -> Result<OwnedFd, Failure> {
    let (ours, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    // The child's stdio is set up on fds 0-2 before our pre_exec runs: keep clear of them.
    let theirs = if theirs.as_raw_fd() <= 2 {
        fcntl_dupfd_cloexec(&theirs, 3)?
    } else {
        theirs
    };
    let child = spawn(bin, &theirs, mountpoint, options);
    drop(theirs); // only the helper holds it now: its exit ends our recvmsg with EOF
    let child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Failure::NotInstalled),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", bin.display())).into()),
    };
    let received = receive_fd(&ours);
    drop(ours);
    // Without auto_unmount the helper exits right after sending.
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let fd = match received {
        Ok(Some(fd)) => fd,
        Ok(None) => {
            return Err(helper_failed(bin, mountpoint, options, &out.status, &stderr).into())
        }
        Err(e) => {
            let why = if stderr.is_empty() {
                e.to_string()
            } else {
                format!("{e}; it said: {stderr}")
            };
            return Err(io::Error::new(
                e.kind(),
                format!("receiving /dev/fuse from {}: {why}", bin.display()),
            )
            .into());
        }
    };
    if !out.status.success() {
        tracing::warn!(
            "{} mounted {} but exited with {}: {stderr}",
            bin.display(),
            mountpoint.display(),
            out.status
        );
    } else if !stderr.is_empty() {
        tracing::info!("{}: {stderr}", bin.display());
    }
    Ok(fd)
}

fn spawn(bin: &Path, theirs: &OwnedFd, mountpoint: &Path, options: &str) -> io::Result<Child> {
    let raw = theirs.as_raw_fd();
    let mut cmd = Command::new(bin);
    cmd.arg("-o")
        .arg(options)
        .arg("--")
        .arg(mountpoint)
        .env(COMM_FD_ENV, raw.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure only calls fcntl (async-signal-safe) on an fd that stays open in
    // the parent until spawn has returned, so it is open in the forked child too.
    unsafe {
        cmd.pre_exec(move || {
            let fd = BorrowedFd::borrow_raw(raw);
            fcntl_setfd(fd, FdFlags::empty())?; // let the helper inherit it
            Ok(())
        });
    }
    cmd.spawn()
}

/// The descriptor the helper sends, or `None` when it closed the socket without sending
/// one (it failed, and says why on stderr).
fn receive_fd(sock: impl AsFd) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        let mut iov = [IoSliceMut::new(&mut byte)];
        match recvmsg(
            sock.as_fd(),
            &mut iov,
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(Errno::INTR) => continue,
            other => break other?,
        }
    };
    if msg.bytes == 0 {
        return Ok(None);
    }
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message {
            if let Some(fd) = fds.next() {
                return Ok(Some(fd));
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "the helper sent a message without a file descriptor",
    ))
}

fn helper_failed(
    bin: &Path,
    mountpoint: &Path,
    options: &str,
    status: &std::process::ExitStatus,
    stderr: &str,
) -> io::Error {
    let said = if stderr.is_empty() {
        "(no message)"
    } else {
        stderr
    };
    let mut msg = format!(
        "{} -o {options} -- {} failed ({status}): {said}",
        bin.display(),
        mountpoint.display()
    );
    let mut kind = io::ErrorKind::Other;
    if stderr.contains("user_allow_other") {
        kind = io::ErrorKind::PermissionDenied;
        msg.push_str(
            "\n  --allow-other as a normal user needs a line `user_allow_other` in /etc/fuse.conf",
        );
    } else if stderr.contains("/dev/fuse") && stderr.contains("Permission denied") {
        kind = io::ErrorKind::PermissionDenied;
        msg.push_str(&format!(
            "\n  {} opens /dev/fuse as the calling user, and /dev/fuse{} is not open to this \
             user: unprivileged FUSE mounts need it readable and writable by the user (mode \
             0666 on most distributions: `chmod 0666 /dev/fuse`, or a udev rule), or mount as \
             root",
            bin.display(),
            dev_fuse_mode()
        ));
    } else if stderr.contains("Operation not permitted") {
        kind = io::ErrorKind::PermissionDenied;
        msg.push_str(&format!(
            "\n  {} must be installed setuid root (as the fuse3 package does)",
            bin.display()
        ));
    }
    io::Error::new(kind, msg)
}

/// ` (mode 0600, owner 0)`, or nothing when it cannot be looked at.
fn dev_fuse_mode() -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/dev/fuse")
        .map(|m| format!(" (mode {:04o}, owner {})", m.mode() & 0o7777, m.uid()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in helper (Python) that sends an open file over the socket, or fails.
    fn fake_helper(dir: &Path, body: &str) -> std::path::PathBuf {
        let path = dir.join("fake-fusermount3");
        let script = format!(
            "#!/usr/bin/env python3\nimport os, socket, sys\n\
             sock = socket.socket(fileno=int(os.environ['_FUSE_COMMFD']))\n{body}\n"
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn python_available() -> bool {
        Command::new("python3").arg("-V").output().is_ok()
    }

    #[test]
    fn receives_the_descriptor_the_helper_sends() {
        if !python_available() {
            return;
        }
        let dir = tempfile_dir();
        let payload = dir.join("payload");
        std::fs::write(&payload, b"from the helper").unwrap();
        let args = dir.join("args");
        let helper = fake_helper(
            &dir,
            &format!(
                "open({args:?}, 'w').write(' '.join(sys.argv[1:]))\n\
                 f = open({payload:?}, 'rb')\n\
                 socket.send_fds(sock, [b'\\0'], [f.fileno()])"
            ),
        );
        let fd = mount_with(&helper, Path::new("/some/mnt"), "fsname=x,nodev").unwrap();
        let mut text = String::new();
        std::fs::File::from(fd).read_to_string(&mut text).unwrap();
        assert_eq!(text, "from the helper");
        assert_eq!(
            std::fs::read_to_string(&args).unwrap(),
            "-o fsname=x,nodev -- /some/mnt"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failing_helper_is_quoted() {
        if !python_available() {
            return;
        }
        let dir = tempfile_dir();
        let helper = fake_helper(
            &dir,
            "sys.stderr.write('fusermount3: option allow_other only allowed if \
             \\'user_allow_other\\' is set in /etc/fuse.conf\\n'); sys.exit(1)",
        );
        let Err(Failure::Io(e)) = mount_with(&helper, Path::new("/mnt"), "allow_other") else {
            panic!("the helper failed, mount_with did not");
        };
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        let msg = e.to_string();
        assert!(msg.contains("only allowed if 'user_allow_other'"), "{msg}");
        assert!(msg.contains("/etc/fuse.conf"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_helper_is_reported_as_such() {
        let missing = Path::new("/nonexistent/venvfs/fusermount3");
        assert!(matches!(
            mount_with(missing, Path::new("/mnt"), "nodev"),
            Err(Failure::NotInstalled)
        ));
    }

    fn tempfile_dir() -> std::path::PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "venvfs-fusermount-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
