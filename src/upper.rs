//! The upper layer: the venv directory's own disk content, reached only through a directory
//! fd opened before the mount (the mount covers the directory's path, so any path-based
//! access from inside the daemon would go through the mount itself and deadlock).
//!
//! Bookkeeping that overlays need is kept as plain files, so it works on any filesystem
//! (ext4, NFS, NTFS) and without privileges:
//! - `.wh.NAME`: a whiteout, NAME is deleted even if a lower layer has it;
//! - `.wh..wh..opq` inside a directory: the directory is opaque, no lower content shows;
//! - `.wh..wh..redirect` inside a directory: its lower content comes from the venv path
//!   written in the file (a lower directory that was renamed), not from its own path.
//!
//! Every change is made crash-safe by ordering: content is built under `.venvfs/work/` and
//! renamed into place; a whiteout is created before the entry it replaces is removed, and on
//! load a real entry wins over a whiteout of the same name (so a crash in between shows the
//! old state, never a lost file).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags, Timestamps};
use venvfs_api::{Allocate, AllocateHow, Attr, FileKind, Ino, SetTime, StatFs, XattrSet};

use crate::manifest::STATE_DIR;

use crate::upper_format::EntryName;
pub use crate::upper_format::{OPAQUE, REDIRECT, WHITEOUT_PREFIX};
const WORK: &str = ".venvfs/work";

pub struct Upper {
    root: OwnedFd,
    counter: AtomicU64,
    /// Read-only sources whose regular files a symlink in the upper may refer to and be
    /// shown as (see [`Upper::reference_target`]).
    reference_roots: Vec<PathBuf>,
    /// uv caches found through the links themselves (see [`Upper::uv_cache_of`]), and the
    /// directories found not to be one.
    found_caches: parking_lot::Mutex<(Vec<PathBuf>, Vec<PathBuf>)>,
    /// Where the venv is mounted: no reference may point below it.
    mounted: PathBuf,
}

/// A venv-relative path as bytes ("" is the venv root).
pub type Rel = Vec<u8>;

pub fn join(dir: &[u8], name: &OsStr) -> Rel {
    let mut p = dir.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name.as_bytes());
    p
}

fn path(rel: &[u8]) -> &Path {
    if rel.is_empty() {
        Path::new(".")
    } else {
        Path::new(OsStr::from_bytes(rel))
    }
}

pub use crate::upper_format::{is_marker, whiteout_name};

/// What a directory of the upper layer holds, markers separated out.
#[derive(Default, Debug)]
pub struct Listing {
    pub entries: Vec<(OsString, FileKind)>,
    pub whiteouts: Vec<OsString>,
    pub opaque: bool,
    pub redirect: Option<Vec<u8>>,
}

impl Upper {
    /// Opens the venv directory as the upper layer and readies its work directory.
    pub fn open(venv: &Path) -> io::Result<Upper> {
        let root = rustix::fs::open(
            venv,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let upper = Upper {
            root,
            counter: AtomicU64::new(0),
            reference_roots: Vec::new(),
            found_caches: Default::default(),
            mounted: venv.to_owned(),
        };
        for d in [STATE_DIR, WORK] {
            match rustix::fs::mkdirat(&upper.root, d, Mode::from_raw_mode(0o700)) {
                Ok(()) => {}
                Err(e) if e == rustix::io::Errno::EXIST => {}
                Err(e) => return Err(e.into()),
            }
        }
        upper.clean_work()?;
        Ok(upper)
    }

    /// Sets the read-only sources that references may point into. `mounted` is where the
    /// venv is mounted: nothing below it can be a source (the daemon would ask itself).
    pub fn set_reference_roots(&mut self, roots: Vec<PathBuf>, mounted: &Path) {
        self.mounted = mounted.to_owned();
        self.reference_roots = roots
            .into_iter()
            .filter(|r| !r.starts_with(mounted) && !mounted.starts_with(r))
            .collect();
    }

    /// The file the entry `rel` refers to, if it is a reference: a symlink whose target is
    /// an absolute path, without `..`, inside one of the reference roots or inside the
    /// unpacked wheels of any uv cache (`CACHE/archive-v0/...`, CACHE holding uv's
    /// `CACHEDIR.TAG`: whichever cache uv was told to use), naming a regular file
    /// (followed; a dangling or directory target is no reference).
    pub fn reference_target(&self, rel: &[u8]) -> Option<PathBuf> {
        let target = rustix::fs::readlinkat(&self.root, path(rel), Vec::new()).ok()?;
        let target = PathBuf::from(OsString::from_vec(target.into_bytes()));
        let plain = target.is_absolute()
            && !target
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir));
        // (never below the mount: the daemon would ask itself)
        if !plain || target.starts_with(&self.mounted) {
            return None;
        }
        let known = self.reference_roots.iter().any(|r| target.starts_with(r));
        if !known && self.uv_cache_of(&target).is_none() {
            return None;
        }
        let st = rustix::fs::stat(&target).ok()?;
        (FileKind::from_mode(st.st_mode) == FileKind::File).then_some(target)
    }

    /// The uv cache `target` is an unpacked-wheel file of, if any: the directory above its
    /// `archive-v0` component, when it holds the `CACHEDIR.TAG` uv writes. Remembered, so
    /// each cache is looked at once.
    fn uv_cache_of(&self, target: &Path) -> Option<PathBuf> {
        let mut cache = PathBuf::new();
        let mut parts = target.components();
        for c in parts.by_ref() {
            if c.as_os_str() == "archive-v0" {
                break;
            }
            cache.push(c);
        }
        parts.next()?; // (an entry below archive-v0)
        let mut found = self.found_caches.lock();
        if found.0.contains(&cache) {
            return Some(cache);
        }
        if found.1.contains(&cache) || cache.starts_with(&self.mounted) {
            return None;
        }
        if cache.join("CACHEDIR.TAG").is_file() {
            found.0.push(cache.clone());
            Some(cache)
        } else {
            found.1.push(cache);
            None
        }
    }

    /// Whether the entry `rel` is a reference (see [`Upper::reference_target`]).
    pub fn is_reference(&self, rel: &[u8]) -> bool {
        self.reference_target(rel).is_some()
    }

    /// The attributes of the file reference `rel` points to, as node `ino`.
    pub fn reference_attr(&self, rel: &[u8], ino: Ino) -> io::Result<Attr> {
        let target = self.reference_target(rel).ok_or(io::ErrorKind::NotFound)?;
        let st = rustix::fs::statx(
            rustix::fs::CWD,
            &target,
            AtFlags::empty(),
            rustix::fs::StatxFlags::BASIC_STATS | rustix::fs::StatxFlags::BTIME,
        )?;
        Ok(attr_from_statx(ino, &st))
    }

    /// Opens the file reference `rel` points to, for reading.
    pub fn open_reference(&self, rel: &[u8]) -> io::Result<File> {
        let target = self.reference_target(rel).ok_or(io::ErrorKind::NotFound)?;
        File::open(target)
    }

    /// The directory fd (for `status` and statfs).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Removes leftovers of copy-ups a killed daemon did not finish.
    fn clean_work(&self) -> io::Result<()> {
        for (name, kind) in self.list_raw(WORK.as_bytes())? {
            let rel = join(WORK.as_bytes(), &name);
            if kind == FileKind::Dir {
                self.remove_tree(&rel)?;
            } else {
                self.unlink(&rel)?;
            }
        }
        Ok(())
    }

    fn remove_tree(&self, rel: &[u8]) -> io::Result<()> {
        for (name, kind) in self.list_raw(rel)? {
            let child = join(rel, &name);
            if kind == FileKind::Dir {
                self.remove_tree(&child)?;
            } else {
                self.unlink(&child)?;
            }
        }
        self.rmdir(rel)
    }

    /// A fresh name in the work directory.
    pub fn temp(&self) -> Rel {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{WORK}/{}.{n}", std::process::id()).into_bytes()
    }

    fn stat(&self, rel: &[u8]) -> io::Result<rustix::fs::Stat> {
        Ok(rustix::fs::statat(
            &self.root,
            path(rel),
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// The attributes of `rel`, as node `ino`.
    pub fn attr(&self, rel: &[u8], ino: Ino) -> io::Result<Attr> {
        let st = rustix::fs::statx(
            &self.root,
            path(rel),
            AtFlags::SYMLINK_NOFOLLOW,
            rustix::fs::StatxFlags::BASIC_STATS | rustix::fs::StatxFlags::BTIME,
        )?;
        Ok(attr_from_statx(ino, &st))
    }

    /// The attributes of an open upper file (one that may have no name left), as node `ino`.
    pub fn file_attr(file: &File, ino: Ino) -> io::Result<Attr> {
        let st = rustix::fs::statx(
            file,
            "",
            AtFlags::EMPTY_PATH,
            rustix::fs::StatxFlags::BASIC_STATS | rustix::fs::StatxFlags::BTIME,
        )?;
        Ok(attr_from_statx(ino, &st))
    }

    /// Opens an existing file for reading and writing.
    pub fn open_rw(&self, rel: &[u8]) -> io::Result<File> {
        self.open_file(rel, OFlags::RDWR, 0)
    }

    /// Opens an existing file for reading.
    pub fn open_ro(&self, rel: &[u8]) -> io::Result<File> {
        self.open_file(rel, OFlags::RDONLY, 0)
    }

    /// Creates a new file (failing if the name exists), open for reading and writing.
    pub fn create_file(&self, rel: &[u8], perm: u16) -> io::Result<File> {
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL;
        self.open_file(rel, flags, perm as u32 & 0o7777)
    }

    /// Gives an open file the permission bits and modification time of `perm`/`mtime`.
    pub fn set_file_meta(
        file: &File,
        perm: u16,
        mtime: Option<std::time::SystemTime>,
    ) -> io::Result<()> {
        rustix::fs::fchmod(file, Mode::from_raw_mode(perm as u32 & 0o7777))?;
        if let Some(t) = mtime {
            rustix::fs::futimens(file, &timestamps(t))?;
        }
        Ok(())
    }

    /// Sets the access and modification times of `rel` (`None` leaves one as it is).
    pub fn set_times(
        &self,
        rel: &[u8],
        atime: Option<SetTime>,
        mtime: Option<SetTime>,
    ) -> io::Result<()> {
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

    /// Sets both times of `rel` to `t` (a copied-up entry keeps its lower mtime).
    pub fn set_mtime(&self, rel: &[u8], t: std::time::SystemTime) -> io::Result<()> {
        self.utimes(rel, &timestamps(t))
    }

    /// Allocates or frees space in an open upper file.
    pub fn allocate(file: &File, a: Allocate) -> io::Result<()> {
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

    /// Usage figures of the filesystem the upper layer is on.
    pub fn statfs(&self) -> io::Result<StatFs> {
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

    pub fn set_xattr(
        &self,
        rel: &[u8],
        name: &OsStr,
        value: &[u8],
        how: XattrSet,
    ) -> io::Result<()> {
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

    pub fn get_xattr(&self, rel: &[u8], name: &OsStr) -> io::Result<Vec<u8>> {
        let p = self.proc_path(rel);
        let len = rustix::fs::lgetxattr_query(&p, name)?;
        let mut buf = vec![0u8; len];
        let n = rustix::fs::lgetxattr(&p, name, &mut buf[..])?;
        buf.truncate(n);
        Ok(buf)
    }

    /// The names of `rel`'s extended attributes, each followed by a NUL byte.
    pub fn list_xattr(&self, rel: &[u8]) -> io::Result<Vec<u8>> {
        let p = self.proc_path(rel);
        let len = rustix::fs::llistxattr_query(&p)?;
        let mut buf = vec![0u8; len];
        let n = rustix::fs::llistxattr(&p, &mut buf[..])?;
        buf.truncate(n);
        Ok(buf)
    }

    pub fn remove_xattr(&self, rel: &[u8], name: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::lremovexattr(self.proc_path(rel), name)?)
    }

    /// Whether `a` and `b` are names of one file on disk (hard links).
    pub fn same_file(&self, a: &[u8], b: &[u8]) -> bool {
        match (self.stat(a), self.stat(b)) {
            (Ok(x), Ok(y)) => (x.st_dev, x.st_ino) == (y.st_dev, y.st_ino),
            _ => false,
        }
    }

    pub fn exists(&self, rel: &[u8]) -> bool {
        self.stat(rel).is_ok()
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

    pub fn mkdir(&self, rel: &[u8], mode: u32) -> io::Result<()> {
        Ok(rustix::fs::mkdirat(
            &self.root,
            path(rel),
            Mode::from_raw_mode(mode),
        )?)
    }

    pub fn mknod(&self, rel: &[u8], kind: FileKind, perm: u16, rdev: u64) -> io::Result<()> {
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

    pub fn unlink(&self, rel: &[u8]) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(
            &self.root,
            path(rel),
            AtFlags::empty(),
        )?)
    }

    pub fn rmdir(&self, rel: &[u8]) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(
            &self.root,
            path(rel),
            AtFlags::REMOVEDIR,
        )?)
    }

    /// Unlinks a file if it exists.
    pub fn remove_if_present(&self, rel: &[u8]) -> io::Result<()> {
        match self.unlink(rel) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// Renames `from` to `to`; with `noreplace`, fails with `EEXIST` rather than replace an
    /// existing `to`.
    pub fn rename(&self, from: &[u8], to: &[u8], noreplace: bool) -> io::Result<()> {
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
            r => Ok(r?),
        }
    }

    pub fn symlink(&self, target: &OsStr, rel: &[u8]) -> io::Result<()> {
        Ok(rustix::fs::symlinkat(target, &self.root, path(rel))?)
    }

    pub fn link(&self, from: &[u8], to: &[u8]) -> io::Result<()> {
        Ok(rustix::fs::linkat(
            &self.root,
            path(from),
            &self.root,
            path(to),
            AtFlags::empty(),
        )?)
    }

    pub fn readlink(&self, rel: &[u8]) -> io::Result<OsString> {
        let t = rustix::fs::readlinkat(&self.root, path(rel), Vec::new())?;
        Ok(OsString::from_vec(t.into_bytes()))
    }

    pub fn chmod(&self, rel: &[u8], mode: u32) -> io::Result<()> {
        Ok(rustix::fs::chmodat(
            &self.root,
            path(rel),
            Mode::from_raw_mode(mode & 0o7777),
            AtFlags::empty(),
        )?)
    }

    pub fn chown(&self, rel: &[u8], uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
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

    /// Every name in an upper directory, markers included.
    pub fn list_raw(&self, rel: &[u8]) -> io::Result<Vec<(OsString, FileKind)>> {
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

    /// An upper directory's entries with the overlay markers interpreted.
    pub fn list(&self, rel: &[u8]) -> io::Result<Listing> {
        let mut listing = Listing::default();
        let at_root = rel.is_empty();
        for (name, kind) in self.list_raw(rel)? {
            let bytes = name.as_bytes();
            if (at_root && bytes == STATE_DIR.as_bytes())
                || bytes == crate::venv::UNMOUNTED_GUARD.as_bytes()
            {
                continue;
            }
            match crate::upper_format::classify(&name) {
                EntryName::Opaque => listing.opaque = true,
                EntryName::Redirect => listing.redirect = Some(self.read_small(&join(rel, &name))?),
                EntryName::Whiteout(hidden) => listing.whiteouts.push(hidden.to_owned()),
                EntryName::Entry => listing.entries.push((name, kind)),
            }
        }
        // A real entry wins over a whiteout of the same name: that pair is what a crash
        // between "create whiteout" and "remove entry" (or the reverse) leaves behind.
        listing
            .whiteouts
            .retain(|w| !listing.entries.iter().any(|(n, _)| n == w));
        Ok(listing)
    }

    /// The markers of a directory only (cheaper than a listing).
    pub fn markers(&self, rel: &[u8]) -> io::Result<(bool, Option<Vec<u8>>)> {
        let opaque = self.exists(&join(rel, OsStr::new(OPAQUE)));
        let redirect = match self.read_small(&join(rel, OsStr::new(REDIRECT))) {
            Ok(v) => Some(v),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok((opaque, redirect))
    }

    fn read_small(&self, rel: &[u8]) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let mut f = self.open_file(rel, OFlags::RDONLY, 0)?;
        let mut v = Vec::new();
        f.read_to_end(&mut v)?;
        Ok(v)
    }

    /// Creates (or replaces) a small file atomically: temp file, fsync, rename.
    pub fn write_atomic(&self, rel: &[u8], content: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let tmp = self.temp();
        let mut f = self.open_file(&tmp, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, 0o644)?;
        f.write_all(content)?;
        f.sync_all()?;
        self.rename(&tmp, rel, false)
    }

    /// Creates an empty marker file (whiteout or opaque) if it is not there yet.
    pub fn touch(&self, rel: &[u8]) -> io::Result<()> {
        match self.open_file(rel, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, 0o644) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes the files venvfs keeps hidden in a directory (before removing or replacing
    /// it, once it is empty in the merged view): its markers, and the unmounted-venv guard
    /// (site-packages holds it, and a listing hides it, so `rm -rf` through the mount
    /// must not find site-packages still holding a file it never saw).
    pub fn clear_markers(&self, rel: &[u8]) -> io::Result<()> {
        for (name, _) in self.list_raw(rel)? {
            if is_marker(&name) || name.as_bytes() == crate::venv::UNMOUNTED_GUARD.as_bytes() {
                self.unlink(&join(rel, &name))?;
            }
        }
        Ok(())
    }
}

use std::os::unix::ffi::OsStringExt;

/// Whether an open for writing failed only because the file may not be written.
pub fn is_read_only_refusal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EACCES | libc::EPERM | libc::EROFS | libc::ETXTBSY)
    )
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
