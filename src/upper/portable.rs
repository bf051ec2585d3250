//! An upper layer reached by path through `std::fs` only: what a mount whose upper lives
//! apart from the mount point uses where there are no directory descriptors to work from
//! (a Dokan mount on Windows). It builds and runs on every platform, so Linux tests cover
//! it (the core's tests run over both uppers).
//!
//! What a plain directory on every platform can hold, it holds: files, directories,
//! symlinks (on Windows they need the privilege or developer mode), hard links, times,
//! the read-only bit (all POSIX permission bits on Unix). Device nodes, owners (on Windows)
//! and extended attributes are refused as unsupported. `allocate` writes zeros where a
//! platform call would make a hole: same content, maybe more disk.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use venvfs_api::{Allocate, AllocateHow, Attr, FileKind, Ino, SetTime, StatFs, XattrSet};

use super::{References, Upper, Work};

pub struct PortableUpper {
    root: PathBuf,
    work: Work,
    references: References,
}

impl PortableUpper {
    /// Takes the directory `dir` as an upper layer.
    pub fn open(dir: &Path, references: References) -> io::Result<PortableUpper> {
        if !std::fs::metadata(dir)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(PortableUpper {
            root: dir.to_owned(),
            work: Work::default(),
            references,
        })
    }

    /// The path of `rel`. (Names venvfs reads back are UTF-8 where bytes are not names;
    /// any other bytes cannot name a file there, and become a name that does not exist.)
    fn full(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            return self.root.clone();
        }
        match crate::fsutil::os_str_from_bytes(rel) {
            Some(s) => self.root.join(s),
            None => self.root.join(String::from_utf8_lossy(rel).as_ref()),
        }
    }

    fn options(write: bool) -> OpenOptions {
        let mut o = OpenOptions::new();
        o.read(true).write(write);
        no_follow(&mut o);
        o
    }
}

impl Upper for PortableUpper {
    fn references(&self) -> &References {
        &self.references
    }

    fn target_attr(&self, target: &Path, ino: Ino) -> io::Result<Attr> {
        #[cfg(unix)]
        return Ok(attr_from_metadata(ino, &std::fs::metadata(target)?));
        #[cfg(windows)]
        self.file_attr(&File::open(target)?, ino)
    }

    fn is_read_only_refusal(&self, e: &io::Error) -> bool {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ETXTBSY) {
            return true;
        }
        matches!(
            e.kind(),
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
        )
    }

    fn attr(&self, rel: &[u8], ino: Ino) -> io::Result<Attr> {
        #[cfg(unix)]
        return Ok(attr_from_metadata(
            ino,
            &std::fs::symlink_metadata(self.full(rel))?,
        ));
        // (through a handle, which knows the link count; opened for no data access, not
        // followed, directories too)
        #[cfg(windows)]
        self.file_attr(&open_for_meta(&self.full(rel), 0)?, ino)
    }

    fn file_attr(&self, file: &File, ino: Ino) -> io::Result<Attr> {
        #[cfg_attr(unix, allow(unused_mut))]
        let mut attr = attr_from_metadata(ino, &file.metadata()?);
        #[cfg(windows)]
        if let Some(n) = link_count(file) {
            attr.nlink = n;
        }
        Ok(attr)
    }

    fn set_file_meta(&self, file: &File, perm: u16, mtime: Option<SystemTime>) -> io::Result<()> {
        file.set_permissions(permissions(file.metadata()?.permissions(), perm))?;
        if let Some(t) = mtime {
            file.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))?;
        }
        Ok(())
    }

    fn set_times(
        &self,
        rel: &[u8],
        atime: Option<SetTime>,
        mtime: Option<SetTime>,
    ) -> io::Result<()> {
        let path = self.full(rel);
        if std::fs::symlink_metadata(&path)?.is_symlink() {
            // (std sets a link's times only by following it; a link's own times matter
            // to nobody venvfs serves)
            return Ok(());
        }
        let at = |t: SetTime| match t {
            SetTime::Now => SystemTime::now(),
            SetTime::At(t) => t,
        };
        let mut times = std::fs::FileTimes::new();
        if let Some(t) = atime {
            times = times.set_accessed(at(t));
        }
        if let Some(t) = mtime {
            times = times.set_modified(at(t));
        }
        open_for_times(&path)?.set_times(times)
    }

    fn chmod(&self, rel: &[u8], mode: u32) -> io::Result<()> {
        let path = self.full(rel);
        let now = std::fs::metadata(&path)?.permissions();
        std::fs::set_permissions(&path, permissions(now, mode as u16))
    }

    fn chown(&self, rel: &[u8], uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        #[cfg(unix)]
        return std::os::unix::fs::lchown(self.full(rel), uid, gid);
        #[cfg(not(unix))]
        {
            let _ = (rel, uid, gid);
            Err(unsupported("owners"))
        }
    }

    fn statfs(&self) -> io::Result<StatFs> {
        statfs(&self.root)
    }

    fn same_file(&self, a: &[u8], b: &[u8]) -> bool {
        let (a, b) = (self.full(a), self.full(b));
        // (both must exist and not be links: `is_same_file` follows links)
        let plain = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| !m.is_symlink());
        plain(&a) && plain(&b) && same_file::is_same_file(&a, &b).unwrap_or(false)
    }

    fn exists(&self, rel: &[u8]) -> bool {
        std::fs::symlink_metadata(self.full(rel)).is_ok()
    }

    fn open_rw(&self, rel: &[u8]) -> io::Result<File> {
        Self::options(true).open(self.full(rel))
    }

    fn open_ro(&self, rel: &[u8]) -> io::Result<File> {
        Self::options(false).open(self.full(rel))
    }

    fn create_file(&self, rel: &[u8], perm: u16) -> io::Result<File> {
        let mut o = Self::options(true);
        o.create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, perm as u32 & 0o7777);
        let file = o.open(self.full(rel))?;
        #[cfg(not(unix))]
        if perm & 0o222 == 0 {
            // (the handle keeps its write access; only later opens see the bit)
            file.set_permissions(permissions(file.metadata()?.permissions(), perm))?;
        }
        Ok(file)
    }

    fn allocate(&self, file: &File, a: Allocate) -> io::Result<()> {
        let size = file.metadata()?.len();
        let end = a.offset.saturating_add(a.length);
        match a.how {
            AllocateHow::Extend if end > size => file.set_len(end),
            AllocateHow::Extend | AllocateHow::KeepSize => Ok(()),
            AllocateHow::PunchHole | AllocateHow::Zero { keep_size: true } => {
                write_zeros(file, a.offset, end.min(size))
            }
            AllocateHow::Zero { keep_size: false } => write_zeros(file, a.offset, end),
        }
    }

    fn mkdir(&self, rel: &[u8], mode: u32) -> io::Result<()> {
        #[cfg_attr(not(unix), allow(unused_mut))]
        let mut b = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, mode & 0o7777);
        #[cfg(not(unix))]
        let _ = mode;
        b.create(self.full(rel))
    }

    fn mknod(&self, rel: &[u8], kind: FileKind, perm: u16, _rdev: u64) -> io::Result<()> {
        match kind {
            FileKind::File => self.create_file(rel, perm).map(drop),
            _ => Err(unsupported("special files")),
        }
    }

    fn unlink(&self, rel: &[u8]) -> io::Result<()> {
        let path = self.full(rel);
        // Windows keeps the name of a file deleted while open (the overlay keeps such a
        // file open for its holders) until the last handle closes, where POSIX frees it at
        // once: the file is moved into the work directory first (opened as std opens files,
        // sharing delete, it can be), so the name is free again at once
        #[cfg(windows)]
        let path = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {
                let aside = self.full(&self.temp());
                std::fs::rename(&path, &aside)?;
                aside
            }
            _ => path,
        };
        match std::fs::remove_file(&path) {
            // (a Windows symlink to a directory is removed as a directory)
            Err(e) if cfg!(windows) && std::fs::symlink_metadata(&path)?.is_symlink() => {
                std::fs::remove_dir(&path).map_err(|_| e)
            }
            r => r,
        }
    }

    fn rmdir(&self, rel: &[u8]) -> io::Result<()> {
        std::fs::remove_dir(self.full(rel))
    }

    fn rename(&self, from: &[u8], to: &[u8], noreplace: bool) -> io::Result<()> {
        let (from, to) = (self.full(from), self.full(to));
        if respelled(&from, &to) {
            // another spelling of the same entry on a case-insensitive filesystem: `to`
            // "exists" only as `from` itself
            std::fs::rename(&from, &to)?;
            if spelled(&to) {
                return Ok(());
            }
            // (NTFS changes the spelling so; a filesystem that kept the old one, as Wine's
            // does, is given the new one through a name of venvfs's own: not atomic, so only
            // where the direct way did not do it)
            let aside = to.with_file_name(format!(".wh..wh..respell.{}", std::process::id()));
            std::fs::rename(&from, &aside)?;
            return std::fs::rename(&aside, &to);
        }
        // (the overlay changes the upper only under its tree lock, so looking first is
        // as good as an atomic no-replace here)
        match std::fs::symlink_metadata(&to) {
            Ok(_) if noreplace => return Err(io::ErrorKind::AlreadyExists.into()),
            // Windows replaces files but not directories: an empty one goes first, as
            // POSIX rename replaces it
            Ok(m) if cfg!(windows) && m.is_dir() && std::fs::metadata(&from)?.is_dir() => {
                std::fs::remove_dir(&to)?
            }
            _ => {}
        }
        std::fs::rename(from, to)
    }

    fn symlink(&self, target: &OsStr, rel: &[u8]) -> io::Result<()> {
        #[cfg(unix)]
        return std::os::unix::fs::symlink(target, self.full(rel));
        #[cfg(windows)]
        {
            let link = self.full(rel);
            let resolved = link
                .parent()
                .map_or(PathBuf::from(target), |d| d.join(target));
            if resolved.is_dir() {
                std::os::windows::fs::symlink_dir(target, link)
            } else {
                std::os::windows::fs::symlink_file(target, link)
            }
        }
    }

    fn link(&self, from: &[u8], to: &[u8]) -> io::Result<()> {
        std::fs::hard_link(self.full(from), self.full(to))
    }

    fn readlink(&self, rel: &[u8]) -> io::Result<OsString> {
        Ok(std::fs::read_link(self.full(rel))?.into_os_string())
    }

    fn list_raw(&self, rel: &[u8]) -> io::Result<Vec<(OsString, FileKind)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.full(rel))? {
            let entry = entry?;
            out.push((entry.file_name(), kind_of(entry.file_type()?)));
        }
        Ok(out)
    }

    fn set_xattr(&self, _: &[u8], _: &OsStr, _: &[u8], _: XattrSet) -> io::Result<()> {
        Err(unsupported("extended attributes"))
    }

    fn get_xattr(&self, _: &[u8], _: &OsStr) -> io::Result<Vec<u8>> {
        Err(unsupported("extended attributes"))
    }

    fn list_xattr(&self, _: &[u8]) -> io::Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn remove_xattr(&self, _: &[u8], _: &OsStr) -> io::Result<()> {
        Err(unsupported("extended attributes"))
    }

    fn work(&self) -> &Work {
        &self.work
    }
}

/// Whether `to` names the entry `from` in another spelling (`foo` -> `FOO` on a
/// case-insensitive filesystem such as NTFS): one directory, names equal but for case, one
/// file.
fn respelled(from: &Path, to: &Path) -> bool {
    let same_name = match (from.file_name(), to.file_name()) {
        (Some(a), Some(b)) => {
            a != b && a.to_string_lossy().to_lowercase() == b.to_string_lossy().to_lowercase()
        }
        _ => false,
    };
    same_name && from.parent() == to.parent() && same_file::is_same_file(from, to).unwrap_or(false)
}

/// Whether `path`'s directory lists it spelled exactly so.
fn spelled(path: &Path) -> bool {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return true;
    };
    std::fs::read_dir(dir).is_ok_and(|entries| entries.flatten().any(|e| e.file_name() == name))
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("this upper layer keeps no {what}"),
    )
}

/// Opens never follow a symlink at the last component.
fn no_follow(o: &mut OpenOptions) {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(o, libc::O_NOFOLLOW);
    #[cfg(windows)]
    std::os::windows::fs::OpenOptionsExt::custom_flags(o, FILE_FLAG_OPEN_REPARSE_POINT);
}

#[cfg(windows)]
const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
#[cfg(windows)]
const FILE_FLAG_BACKUP_SEMANTICS: u32 = 0x0200_0000;

/// A handle to set the times of a file or directory through.
fn open_for_times(path: &Path) -> io::Result<File> {
    #[cfg(unix)]
    return File::open(path);
    // (FILE_WRITE_ATTRIBUTES only)
    #[cfg(windows)]
    open_for_meta(path, 0x100)
}

/// A handle on `path` (not followed; a directory too: backup semantics) with the access
/// rights `access` only.
#[cfg(windows)]
fn open_for_meta(path: &Path, access: u32) -> io::Result<File> {
    use std::os::windows::fs::OpenOptionsExt;
    let mut o = OpenOptions::new();
    o.access_mode(access)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT);
    o.open(path)
}

/// The number of names (hard links) of an open file.
#[cfg(windows)]
fn link_count(file: &File) -> Option<u32> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Storage::FileSystem::{
        GetFileInformationByHandle, BY_HANDLE_FILE_INFORMATION,
    };
    // SAFETY: an all-zero BY_HANDLE_FILE_INFORMATION is valid (plain integers), and the
    // handle is open for the call's duration.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    let ok = unsafe { GetFileInformationByHandle(file.as_raw_handle() as _, &mut info) };
    (ok != 0).then_some(info.nNumberOfLinks)
}

/// `now` with the permission bits of `perm` (on Windows: only read-only or not).
fn permissions(now: std::fs::Permissions, perm: u16) -> std::fs::Permissions {
    #[cfg(unix)]
    {
        let _ = now;
        std::os::unix::fs::PermissionsExt::from_mode(perm as u32 & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let mut p = now;
        p.set_readonly(perm & 0o222 == 0);
        p
    }
}

fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    let zeros = vec![0u8; 64 << 10];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64) as usize;
        crate::fsutil::write_all_at(file, &zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

fn kind_of(t: std::fs::FileType) -> FileKind {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return FileKind::Fifo;
        } else if t.is_socket() {
            return FileKind::Socket;
        } else if t.is_char_device() {
            return FileKind::CharDevice;
        } else if t.is_block_device() {
            return FileKind::BlockDevice;
        }
    }
    if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_dir() {
        FileKind::Dir
    } else {
        FileKind::File
    }
}

pub(crate) fn attr_from_metadata(ino: Ino, m: &Metadata) -> Attr {
    let mtime = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let kind = kind_of(m.file_type());
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let ctime = crate::fsutil::system_time(m.ctime(), m.ctime_nsec());
        Attr {
            ino,
            size: m.size(),
            blocks: m.blocks(),
            atime: m.accessed().unwrap_or(mtime),
            mtime,
            ctime,
            crtime: m.created().unwrap_or(ctime),
            kind,
            perm: (m.mode() & 0o7777) as u16,
            nlink: m.nlink() as u32,
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev() as u32,
            blksize: m.blksize() as u32,
        }
    }
    #[cfg(not(unix))]
    {
        // Windows keeps no POSIX mode: directories and files are open to all, less the
        // write bits of a read-only file; no owner but the mount's (the adapter's view)
        let perm = match kind {
            FileKind::Dir => 0o755,
            _ if m.permissions().readonly() => 0o444,
            _ => 0o644,
        };
        Attr {
            ino,
            size: if kind == FileKind::Dir { 0 } else { m.len() },
            blocks: m.len().div_ceil(512),
            atime: m.accessed().unwrap_or(mtime),
            mtime,
            ctime: mtime,
            crtime: m.created().unwrap_or(mtime),
            kind,
            perm,
            nlink: if kind == FileKind::Dir { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
        }
    }
}

#[cfg(unix)]
fn statfs(root: &Path) -> io::Result<StatFs> {
    let s = rustix::fs::statvfs(root)?;
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

#[cfg(windows)]
fn statfs(root: &Path) -> io::Result<StatFs> {
    use std::os::windows::ffi::OsStrExt;
    use windows_sys::Win32::Storage::FileSystem::GetDiskFreeSpaceExW;
    let wide: Vec<u16> = root.as_os_str().encode_wide().chain([0]).collect();
    let (mut avail, mut total, mut free) = (0u64, 0u64, 0u64);
    // SAFETY: `wide` is NUL-terminated and the three outputs are valid u64s.
    if unsafe { GetDiskFreeSpaceExW(wide.as_ptr(), &mut avail, &mut total, &mut free) } == 0 {
        return Err(io::Error::last_os_error());
    }
    const BSIZE: u64 = 4096;
    Ok(StatFs {
        blocks: total / BSIZE,
        bfree: free / BSIZE,
        bavail: avail / BSIZE,
        files: 0,
        ffree: 0,
        bsize: BSIZE as u32,
        namelen: 255,
        frsize: BSIZE as u32,
    })
}
