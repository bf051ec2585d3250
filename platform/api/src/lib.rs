//! The interface between venvfs's platform-neutral core and its kernel adapters.
//!
//! The core (the `venvfs` crate) implements [`FileSystem`]; an adapter (`venvfs-fuse` on
//! Linux, a Dokan adapter on Windows) receives kernel requests, calls these methods and
//! translates the results. Nothing here knows about FUSE or Dokan: inode numbers, attributes
//! and errors are plain Rust types, and each adapter maps [`Error`] to its own error codes in
//! exactly one place.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Inode number. [`ROOT`] is the mount's root directory.
pub type Ino = u64;
/// The root directory's inode number.
pub const ROOT: Ino = 1;
/// A handle returned by `open`, `create` or `opendir`.
pub type Fh = u64;

/// What kind of object a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl FileKind {
    /// The kind encoded in the `S_IFMT` bits of a Unix mode.
    pub fn from_mode(mode: u32) -> FileKind {
        match mode & 0o170000 {
            0o040000 => FileKind::Dir,
            0o120000 => FileKind::Symlink,
            0o010000 => FileKind::Fifo,
            0o140000 => FileKind::Socket,
            0o020000 => FileKind::CharDevice,
            0o060000 => FileKind::BlockDevice,
            _ => FileKind::File,
        }
    }
}

/// Attributes of an inode, as `stat` would report them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub size: u64,
    pub blocks: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub kind: FileKind,
    /// Permission bits (including setuid, setgid and sticky), without the file type.
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
}

/// A looked-up name: its attributes and how long the kernel may cache them.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub attr: Attr,
    /// How long the name → inode binding and the attributes stay valid in kernel caches.
    pub ttl: Duration,
}

/// The result of a lookup. `Missing` is a cacheable "no such name" (a negative entry).
#[derive(Clone, Copy, Debug)]
pub enum Lookup {
    Found(Entry),
    Missing { ttl: Duration },
}

/// Who is asking.
#[derive(Clone, Copy, Debug, Default)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

/// An open file.
#[derive(Clone, Debug)]
pub struct Opened {
    pub fh: Fh,
    /// The file's content cannot change behind the kernel's back: keep its page cache.
    pub keep_cache: bool,
    /// A local file holding exactly this content, which the kernel may read directly
    /// (FUSE passthrough) instead of asking the filesystem for every read.
    pub backing: Option<Arc<File>>,
}

/// One directory entry, as listed by `readdir`.
#[derive(Clone, Debug)]
pub struct DirEntry {
    pub ino: Ino,
    pub name: OsString,
    pub kind: FileKind,
    /// Where a listing resumes after this entry (the `offset` to pass to `readdir`):
    /// stable while the entry exists, whatever else the directory gains or loses.
    pub offset: u64,
}

/// A time to set with `setattr`.
#[derive(Clone, Copy, Debug)]
pub enum SetTime {
    Now,
    At(SystemTime),
}

/// The changes asked for by `setattr` (chmod, chown, truncate, utimens).
#[derive(Clone, Copy, Debug, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
    /// The handle the change came through (ftruncate, fchmod), if any.
    pub fh: Option<Fh>,
}

/// Filesystem-wide usage figures (`statfs`).
#[derive(Clone, Copy, Debug, Default)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}

/// Flags of `rename`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RenameFlags {
    pub noreplace: bool,
    pub exchange: bool,
}

/// `setxattr` creation mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XattrSet {
    Any,
    Create,
    Replace,
}

/// Result of `getxattr` / `listxattr`: the value, or just its size when the caller asked
/// with a zero-sized buffer.
#[derive(Clone, Debug)]
pub enum XattrReply {
    Data(Vec<u8>),
    Size(u32),
}

/// Everything that can go wrong, by kind. Variants carry what failed so logs can say it;
/// adapters translate the kind (errno on Linux, NTSTATUS on Windows) in one place each.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such file or directory")]
    NotFound,
    #[error("{0:?} already exists")]
    Exists(OsString),
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory is not empty")]
    NotEmpty,
    #[error("operation not permitted: {0}")]
    NotPermitted(&'static str),
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    #[error("name too long")]
    NameTooLong,
    #[error("unknown inode {0}")]
    StaleInode(Ino),
    #[error("unknown file handle {0}")]
    BadHandle(Fh),
    #[error("no such attribute")]
    NoAttr,
    #[error("attribute buffer too small")]
    Range,
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    /// The operation has nothing to do for this filesystem, ever: the kernel may stop
    /// sending it (FUSE treats ENOSYS that way for flush, fsyncdir, ...).
    #[error("not implemented")]
    NotImplemented,
    /// A layer's content could not be served (corrupt member, vanished cache entry).
    #[error("{what}: {why}")]
    Corrupt { what: String, why: String },
    /// An operating-system error from the upper layer or a backing file.
    #[error(transparent)]
    Os(#[from] io::Error),
}

impl Error {
    /// An OS error from a raw error number.
    pub fn os(errno: i32) -> Error {
        Error::Os(io::Error::from_raw_os_error(errno))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The file handle of I/O on a file that was never opened (see
/// [`FileSystem::serves_without_open`]); handles given out by `open` are never this.
pub const NO_HANDLE: Fh = 0;

/// The filesystem operations the core implements and the adapters drive.
///
/// Every method takes `&self`: implementations are called from several kernel worker
/// threads at once.
pub trait FileSystem: Send + Sync + 'static {
    fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Lookup>;
    /// The kernel dropped `nlookup` references to `ino`.
    fn forget(&self, _ino: Ino, _nlookup: u64) {}
    fn getattr(&self, ino: Ino) -> Result<Entry>;
    fn setattr(&self, caller: &Caller, ino: Ino, set: SetAttr) -> Result<Entry>;
    fn readlink(&self, ino: Ino) -> Result<OsString>;
    fn mknod(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> Result<Entry>;
    fn mkdir(&self, caller: &Caller, parent: Ino, name: &OsStr, mode: u32) -> Result<Entry>;
    fn unlink(&self, parent: Ino, name: &OsStr) -> Result<()>;
    fn rmdir(&self, parent: Ino, name: &OsStr) -> Result<()>;
    fn symlink(&self, caller: &Caller, parent: Ino, name: &OsStr, target: &Path) -> Result<Entry>;
    fn rename(
        &self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<()>;
    fn link(&self, ino: Ino, new_parent: Ino, new_name: &OsStr) -> Result<Entry>;
    /// Open a file. `flags` are the `open(2)` flags (O_ACCMODE, O_TRUNC, O_APPEND, ...).
    fn open(&self, ino: Ino, flags: i32) -> Result<Opened>;
    /// Whether `read`, `write`, `fsync`, `fallocate` and `setattr` of regular files work
    /// with [`NO_HANDLE`], for files that were never opened: then an adapter may let the
    /// kernel skip opens (and releases) altogether, which spares two round trips per open
    /// file. Such a filesystem must keep the data of a file that loses its last name while
    /// the kernel still references it (it may be open) until [`FileSystem::forget`].
    fn serves_without_open(&self) -> bool {
        false
    }
    fn create(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> Result<(Entry, Opened)>;
    fn read(&self, ino: Ino, fh: Fh, offset: u64, size: u32) -> Result<Vec<u8>>;
    fn write(&self, ino: Ino, fh: Fh, offset: u64, data: &[u8]) -> Result<u32>;
    /// Called on every close(2) of a file. Filesystems that write through at once (as the
    /// venvfs overlay does) have nothing to do and answer [`Error::NotImplemented`], which
    /// spares a kernel round trip per close from then on.
    fn flush(&self, _ino: Ino, _fh: Fh) -> Result<()> {
        Err(Error::NotImplemented)
    }
    fn fsync(&self, ino: Ino, fh: Fh, datasync: bool) -> Result<()>;
    fn release(&self, ino: Ino, fh: Fh);
    fn fallocate(&self, ino: Ino, fh: Fh, offset: u64, length: u64, mode: i32) -> Result<()>;
    /// Open a directory. `keep_cache` in the reply lets the kernel cache its listing until
    /// a change made through the mount invalidates it. A filesystem that
    /// [serves without open](FileSystem::serves_without_open) lists directories without
    /// it too, and the adapter may let the kernel skip directory opens.
    fn opendir(&self, ino: Ino) -> Result<Opened>;
    /// The next entries of a directory after the one whose [`DirEntry::offset`] is
    /// `offset` (0: from the start, "." and ".." first). Returns an empty list at the end.
    fn readdir(&self, ino: Ino, fh: Fh, offset: u64) -> Result<Vec<DirEntry>>;
    fn releasedir(&self, ino: Ino, fh: Fh);
    fn statfs(&self) -> Result<StatFs>;
    fn setxattr(&self, ino: Ino, name: &OsStr, value: &[u8], how: XattrSet) -> Result<()>;
    fn getxattr(&self, ino: Ino, name: &OsStr, size: u32) -> Result<XattrReply>;
    fn listxattr(&self, ino: Ino, size: u32) -> Result<XattrReply>;
    fn removexattr(&self, ino: Ino, name: &OsStr) -> Result<()>;
}
