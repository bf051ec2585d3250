//! The POSIX upper layer: the venv directory reached only through a directory fd opened
//! before the mount (the mount covers the directory's path, so any path-based access from
//! inside the daemon would go through the mount itself and deadlock). `*at` calls relative
//! to that fd keep every POSIX property of the venv's files: modes, owners, device nodes,
//! xattrs, birth times (statx).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, Timestamps};
use venvfs_api::{Allocate, AllocateHow, Attr, FileKind, Ino, SetTime, StatFs, XattrSet};

use super::kept_attrs::KeptAttrs;
use super::{join, References, Upper, Work};

/// `rel` as a path relative to the upper's directory fd ("." for the root).
fn path(rel: &[u8]) -> &Path {
    if rel.is_empty() {
        Path::new(".")
    } else {
        Path::new(OsStr::from_bytes(rel))
    }
}

pub struct PosixUpper {
    root: OwnedFd,
    work: Work,
    references: References,
    /// Attributes of the venv's own directories and links, forgotten at each change.
    kept: KeptAttrs,
}
impl PosixUpper {
    /// Opens the directory `dir` (not followed) as an upper layer.
    pub fn open(dir: &Path, references: References) -> io::Result<PosixUpper> {
        let root = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(PosixUpper {
            root,
            work: Work::default(),
            references,
            kept: KeptAttrs::default(),
        })
    }

    fn stat(&self, rel: &[u8]) -> io::Result<rustix::fs::Stat> {
        Ok(rustix::fs::statat(
            &self.root,
            path(rel),
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    fn open_file(&self, rel: &[u8], flags: OFlags, mode: u32) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.root,
            path(rel),
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        Ok(File::from(fd))
    }

    fn utimes(&self, rel: &[u8], times: &rustix::fs::Timestamps) -> io::Result<()> {
        Ok(rustix::fs::utimensat(
            &self.root,
            path(rel),
            times,
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// A path that reaches `rel` without going through the mount, for the path-only xattr
    /// calls: the kernel resolves /proc/self/fd/N to the directory the fd was opened on.
    fn proc_path(&self, rel: &[u8]) -> PathBuf {
        use std::os::fd::AsRawFd;
        let mut p = PathBuf::from(format!("/proc/self/fd/{}", self.root.as_raw_fd()));
        if !rel.is_empty() {
            p.push(OsStr::from_bytes(rel));
        }
        p
    }
}

impl Upper for PosixUpper {
    fn references(&self) -> &References {
        &self.references
    }

    fn target_attr(&self, target: &Path, ino: Ino) -> io::Result<Attr> {
        let st = rustix::fs::statx(
            rustix::fs::CWD,
            target,
            AtFlags::empty(),
            rustix::fs::StatxFlags::BASIC_STATS | rustix::fs::StatxFlags::BTIME,
        )?;
        Ok(attr_from_statx(ino, &st))
    }

    fn dir_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(self.root.as_fd())
    }

    fn is_read_only_refusal(&self, e: &io::Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(libc::EACCES | libc::EPERM | libc::EROFS | libc::ETXTBSY)
        )
    }

    /// The attributes of `rel`, as node `ino`.
    fn attr(&self, rel: &[u8], ino: Ino) -> io::Result<Attr> {
        if let Some(attr) = self.kept.get(rel, ino) {
            return Ok(attr);
        }
        let generation = self.kept.generation();
        let st = rustix::fs::statx(
            &self.root,
            path(rel),
            AtFlags::SYMLINK_NOFOLLOW,
            rustix::fs::StatxFlags::BASIC_STATS | rustix::fs::StatxFlags::BTIME,
        )?;
        let attr = attr_from_statx(ino, &st);
        self.kept.keep(rel, &attr, generation);
        Ok(attr)
    }

    fn forget_attrs(&self) {
        self.kept.forget();
    }

    /// The attributes of an open upper file (one that may have no name left), as node `ino`.
    fn file_attr(&self, file: &File, ino: Ino) -> io::Result<Attr> {
        let st = rustix::fs::statx(
            file,
            "",
            AtFlags::EMPTY_PATH,
            rustix::fs::StatxFlags::BASIC_STATS | rustix::fs::StatxFlags::BTIME,
        )?;
        Ok(attr_from_statx(ino, &st))
    }

    /// Gives an open file the permission bits and modification time of `perm`/`mtime`.
    fn set_file_meta(
        &self,
        file: &File,
        perm: u16,
        mtime: Option<std::time::SystemTime>,
    ) -> io::Result<()> {
        let _change = self.kept.change();
        rustix::fs::fchmod(file, Mode::from_raw_mode(perm as u32 & 0o7777))?;
        if let Some(t) = mtime {
            rustix::fs::futimens(file, &timestamps(t))?;
        }
        Ok(())
    }

    /// Sets the access and modification times of `rel` (`None` leaves one as it is).
    fn set_times(
        &self,
        rel: &[u8],
        atime: Option<SetTime>,
        mtime: Option<SetTime>,
    ) -> io::Result<()> {
        let _change = self.kept.change();
        let ts = |t: Option<SetTime>| match t {
            None => rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
            Some(SetTime::Now) => rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_NOW,
            },
            Some(SetTime::At(t)) => to_timespec(t),
        };
        let times = Timestamps {
            last_access: ts(atime),
            last_modification: ts(mtime),
        };
        self.utimes(rel, &times)
    }

    fn chmod(&self, rel: &[u8], mode: u32) -> io::Result<()> {
        let _change = self.kept.change();
        Ok(rustix::fs::chmodat(
            &self.root,
            path(rel),
            Mode::from_raw_mode(mode & 0o7777),
            AtFlags::empty(),
        )?)
    }

    fn chown(&self, rel: &[u8], uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        let _change = self.kept.change();
        let uid = uid.map(rustix::fs::Uid::from_raw);
        let gid = gid.map(rustix::fs::Gid::from_raw);
        Ok(rustix::fs::chownat(
            &self.root,
            path(rel),
            uid,
            gid,
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// Usage figures of the filesystem the upper layer is on.
    fn statfs(&self) -> io::Result<StatFs> {
        let s = rustix::fs::fstatvfs(&self.root)?;
        Ok(StatFs {
            blocks: s.f_blocks,
            bfree: s.f_bfree,
            bavail: s.f_bavail,
            files: s.f_files,
            ffree: s.f_ffree,
            bsize: s.f_bsize as u32,
            namelen: s.f_namemax as u32,
            frsize: s.f_frsize as u32,
        })
    }

    /// Whether `a` and `b` are names of one file on disk (hard links).
    fn same_file(&self, a: &[u8], b: &[u8]) -> bool {
        match (self.stat(a), self.stat(b)) {
            (Ok(x), Ok(y)) => (x.st_dev, x.st_ino) == (y.st_dev, y.st_ino),
            _ => false,
        }
    }

    fn exists(&self, rel: &[u8]) -> bool {
        self.stat(rel).is_ok()
    }

    /// Opens an existing file for reading and writing.
    fn open_rw(&self, rel: &[u8]) -> io::Result<File> {
        self.open_file(rel, OFlags::RDWR, 0)
    }

    /// Opens an existing file for reading.
    fn open_ro(&self, rel: &[u8]) -> io::Result<File> {
        self.open_file(rel, OFlags::RDONLY, 0)
    }

    /// Creates a new file (failing if the name exists), open for reading and writing.
    fn create_file(&self, rel: &[u8], perm: u16) -> io::Result<File> {
        let _change = self.kept.change();
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL;
        self.open_file(rel, flags, perm as u32 & 0o7777)
    }

    /// Allocates or frees space in an open upper file.
    fn allocate(&self, file: &File, a: Allocate) -> io::Result<()> {
        use rustix::fs::FallocateFlags as F;
        let flags = match a.how {
            AllocateHow::Extend => F::empty(),
            AllocateHow::KeepSize => F::KEEP_SIZE,
            AllocateHow::PunchHole => F::PUNCH_HOLE | F::KEEP_SIZE,
            AllocateHow::Zero { keep_size: false } => F::ZERO_RANGE,
            AllocateHow::Zero { keep_size: true } => F::ZERO_RANGE | F::KEEP_SIZE,
        };
        Ok(rustix::fs::fallocate(file, flags, a.offset, a.length)?)
    }

    fn mkdir(&self, rel: &[u8], mode: u32) -> io::Result<()> {
        let _change = self.kept.change();
        Ok(rustix::fs::mkdirat(
            &self.root,
            path(rel),
            Mode::from_raw_mode(mode),
        )?)
    }

    fn mknod(&self, rel: &[u8], kind: FileKind, perm: u16, rdev: u64) -> io::Result<()> {
        let _change = self.kept.change();
        use rustix::fs::FileType as T;
        let kind = match kind {
            FileKind::File => T::RegularFile,
            FileKind::Fifo => T::Fifo,
            FileKind::Socket => T::Socket,
            FileKind::CharDevice => T::CharacterDevice,
            FileKind::BlockDevice => T::BlockDevice,
            FileKind::Dir | FileKind::Symlink => {
                return Err(io::Error::from_raw_os_error(libc::EINVAL))
            }
        };
        Ok(rustix::fs::mknodat(
            &self.root,
            path(rel),
            kind,
            Mode::from_raw_mode(perm as u32 & 0o7777),
            rdev,
        )?)
    }

    fn unlink(&self, rel: &[u8]) -> io::Result<()> {
        let _change = self.kept.change();
        Ok(rustix::fs::unlinkat(
            &self.root,
            path(rel),
            AtFlags::empty(),
        )?)
    }

    fn rmdir(&self, rel: &[u8]) -> io::Result<()> {
        let _change = self.kept.change();
        Ok(rustix::fs::unlinkat(
            &self.root,
            path(rel),
            AtFlags::REMOVEDIR,
        )?)
    }

    /// Renames `from` to `to`; with `noreplace`, fails with `EEXIST` rather than replace an
    /// existing `to`.
    fn rename(&self, from: &[u8], to: &[u8], noreplace: bool) -> io::Result<()> {
        let _change = self.kept.change();
        let flags = if noreplace {
            rustix::fs::RenameFlags::NOREPLACE
        } else {
            rustix::fs::RenameFlags::empty()
        };
        let renamed =
            rustix::fs::renameat_with(&self.root, path(from), &self.root, path(to), flags);
        match renamed {
            // Network filesystems (NFS, sshfs, ...) take no renameat2 flags. The daemon is
            // the only writer of the venv directory and changes it under the tree lock, so
            // looking first is as good there.
            Err(rustix::io::Errno::INVAL) if noreplace => {
                if self.exists(to) {
                    return Err(io::Error::from_raw_os_error(libc::EEXIST));
                }
                Ok(rustix::fs::renameat(
                    &self.root,
                    path(from),
                    &self.root,
                    path(to),
                )?)
            }
            // sshfs (libfuse's high-level API) first moves a file it holds open aside
            // (`.fuse_hidden…`) when a rename replaces it; when another host replaced that
            // file meanwhile, the rename fails with ENOENT though both names are there.
            // Tried again while the source is there: each try is a whole rename.
            Err(rustix::io::Errno::NOENT) if !noreplace => {
                for _ in 0..10 {
                    if !self.exists(from) {
                        break;
                    }
                    match rustix::fs::renameat(&self.root, path(from), &self.root, path(to)) {
                        Err(rustix::io::Errno::NOENT) => {
                            std::thread::sleep(std::time::Duration::from_millis(5))
                        }
                        r => return Ok(r?),
                    }
                }
                Err(io::Error::from_raw_os_error(libc::ENOENT))
            }
            r => Ok(r?),
        }
    }

    fn symlink(&self, target: &OsStr, rel: &[u8]) -> io::Result<()> {
        let _change = self.kept.change();
        Ok(rustix::fs::symlinkat(target, &self.root, path(rel))?)
    }

    fn link(&self, from: &[u8], to: &[u8]) -> io::Result<()> {
        let _change = self.kept.change();
        Ok(rustix::fs::linkat(
            &self.root,
            path(from),
            &self.root,
            path(to),
            AtFlags::empty(),
        )?)
    }

    fn readlink(&self, rel: &[u8]) -> io::Result<OsString> {
        let t = rustix::fs::readlinkat(&self.root, path(rel), Vec::new())?;
        Ok(OsString::from_vec(t.into_bytes()))
    }

    /// Every name in an upper directory, markers included.
    fn list_raw(&self, rel: &[u8]) -> io::Result<Vec<(OsString, FileKind)>> {
        let fd = rustix::fs::openat(
            &self.root,
            path(rel),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut out = Vec::new();
        for entry in rustix::fs::Dir::read_from(&fd)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let name = OsStr::from_bytes(name).to_owned();
            let kind = match entry.file_type() {
                rustix::fs::FileType::Unknown => {
                    FileKind::from_mode(self.stat(&join(rel, &name))?.st_mode)
                }
                t => FileKind::from_mode(t.as_raw_mode()),
            };
            out.push((name, kind));
        }
        Ok(out)
    }

    fn set_xattr(&self, rel: &[u8], name: &OsStr, value: &[u8], how: XattrSet) -> io::Result<()> {
        let _change = self.kept.change();
        let flags = match how {
            XattrSet::Any => rustix::fs::XattrFlags::empty(),
            XattrSet::Create => rustix::fs::XattrFlags::CREATE,
            XattrSet::Replace => rustix::fs::XattrFlags::REPLACE,
        };
        Ok(rustix::fs::lsetxattr(
            self.proc_path(rel),
            name,
            value,
            flags,
        )?)
    }

    fn get_xattr(&self, rel: &[u8], name: &OsStr) -> io::Result<Vec<u8>> {
        let p = self.proc_path(rel);
        let len = rustix::fs::lgetxattr_query(&p, name)?;
        let mut buf = vec![0u8; len];
        let n = rustix::fs::lgetxattr(&p, name, &mut buf[..])?;
        buf.truncate(n);
        Ok(buf)
    }

    /// The names of `rel`'s extended attributes, each followed by a NUL byte.
    fn list_xattr(&self, rel: &[u8]) -> io::Result<Vec<u8>> {
        let p = self.proc_path(rel);
        let len = rustix::fs::llistxattr_query(&p)?;
        let mut buf = vec![0u8; len];
        let n = rustix::fs::llistxattr(&p, &mut buf[..])?;
        buf.truncate(n);
        Ok(buf)
    }

    fn remove_xattr(&self, rel: &[u8], name: &OsStr) -> io::Result<()> {
        let _change = self.kept.change();
        Ok(rustix::fs::lremovexattr(self.proc_path(rel), name)?)
    }

    /// A fresh name in the work directory.
    fn work(&self) -> &Work {
        &self.work
    }
}

fn attr_from_statx(ino: Ino, st: &rustix::fs::Statx) -> Attr {
    let time =
        |t: rustix::fs::StatxTimestamp| crate::fsutil::system_time(t.tv_sec, t.tv_nsec as i64);
    let mode = st.stx_mode as u32;
    // (a filesystem without birth times leaves btime out of stx_mask: the change time is
    // the closest it knows)
    let crtime = if st.stx_mask & rustix::fs::StatxFlags::BTIME.bits() != 0 {
        time(st.stx_btime)
    } else {
        time(st.stx_ctime)
    };
    Attr {
        ino,
        size: st.stx_size,
        blocks: st.stx_blocks,
        atime: time(st.stx_atime),
        mtime: time(st.stx_mtime),
        ctime: time(st.stx_ctime),
        crtime,
        kind: FileKind::from_mode(mode),
        perm: (mode & 0o7777) as u16,
        nlink: st.stx_nlink,
        uid: st.stx_uid,
        gid: st.stx_gid,
        rdev: libc::makedev(st.stx_rdev_major, st.stx_rdev_minor) as u32,
        blksize: st.stx_blksize,
    }
}

fn timestamps(t: std::time::SystemTime) -> Timestamps {
    let ts = to_timespec(t);
    Timestamps {
        last_access: ts,
        last_modification: ts,
    }
}

fn to_timespec(t: std::time::SystemTime) -> rustix::fs::Timespec {
    let (tv_sec, nsec) = crate::fsutil::time_parts(t);
    rustix::fs::Timespec {
        tv_sec,
        tv_nsec: nsec as _,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory's and a link's attributes are read from disk once and then kept until
    /// the upper changes anything; a regular file's are read each time.
    #[test]
    fn directories_and_links_are_read_once_until_a_change() {
        use std::os::unix::fs::PermissionsExt;
        let venv = tempfile::tempdir().unwrap();
        let dir = venv.path();
        std::fs::create_dir(dir.join("bin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/python3", dir.join("bin/python")).unwrap();
        std::fs::write(dir.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        let upper = super::super::open(dir, References::default()).unwrap();
        let perm = |rel: &[u8]| upper.attr(rel, 1).unwrap().perm;
        assert_eq!(perm(b"bin"), 0o755);
        assert_eq!(
            upper.attr(b"bin/python", 2).unwrap().kind,
            FileKind::Symlink
        );
        let size = upper.attr(b"pyvenv.cfg", 3).unwrap().size;
        // changed beneath the upper (another host, say): what was kept still shows
        std::fs::set_permissions(dir.join("bin"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::remove_file(dir.join("bin/python")).unwrap();
        std::fs::write(dir.join("pyvenv.cfg"), "home = /usr/local/bin\n").unwrap();
        assert_eq!(perm(b"bin"), 0o755);
        assert_eq!(upper.attr(b"bin/python", 2).unwrap().ino, 2);
        assert_ne!(
            upper.attr(b"pyvenv.cfg", 3).unwrap().size,
            size,
            "a file is read again"
        );
        // any change through the upper, and every kept attribute is read again
        upper.mkdir(b"include", 0o755).unwrap();
        assert_eq!(perm(b"bin"), 0o700);
        assert!(upper.attr(b"bin/python", 2).is_err());
        upper.forget_attrs();
        upper.chmod(b"bin", 0o750).unwrap();
        assert_eq!(perm(b"bin"), 0o750);
    }
}
