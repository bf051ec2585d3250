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
    /// Creation time (birth time where the upper filesystem records one; for lower files
    /// the time the layer recorded).
    pub crtime: SystemTime,
    pub kind: FileKind,
    /// Permission bits (including setuid, setgid and sticky), without the file type.
    /// Windows file attributes are derived from them and the kind (see
    /// [`Attr::file_attributes`]).
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
}

impl Attr {
    /// The Windows file attributes of this inode, derived from its kind and mode bits:
    /// a directory is `DIRECTORY`, a symlink a `REPARSE_POINT`, a file whose owner may not
    /// write it `READONLY`, and a file with none of these `NORMAL` (as Windows requires).
    pub fn file_attributes(&self) -> FileAttributes {
        let mut a = FileAttributes::empty();
        match self.kind {
            FileKind::Dir => a |= FileAttributes::DIRECTORY,
            FileKind::Symlink => a |= FileAttributes::REPARSE_POINT,
            _ => {}
        }
        if self.kind != FileKind::Dir && self.perm & 0o200 == 0 {
            a |= FileAttributes::READONLY;
        }
        if a.is_empty() {
            a = FileAttributes::NORMAL;
        }
        a
    }
}

/// Windows file attributes (`FILE_ATTRIBUTE_*`), as far as venvfs keeps them: the ones that
/// follow from a POSIX kind and mode. The values are Windows's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FileAttributes(pub u32);

impl FileAttributes {
    pub const READONLY: FileAttributes = FileAttributes(0x1);
    pub const HIDDEN: FileAttributes = FileAttributes(0x2);
    pub const DIRECTORY: FileAttributes = FileAttributes(0x10);
    pub const ARCHIVE: FileAttributes = FileAttributes(0x20);
    pub const NORMAL: FileAttributes = FileAttributes(0x80);
    pub const REPARSE_POINT: FileAttributes = FileAttributes(0x400);

    pub const fn empty() -> FileAttributes {
        FileAttributes(0)
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub const fn contains(self, other: FileAttributes) -> bool {
        self.0 & other.0 == other.0
    }

    /// The mode bits `perm` with the `READONLY` attribute applied: setting it clears every
    /// write bit, clearing it gives the owner write permission back (as Windows's
    /// readonly flag and `chmod u+w` do).
    pub fn apply_to_perm(self, perm: u16) -> u16 {
        if self.contains(FileAttributes::READONLY) {
            perm & !0o222
        } else if perm & 0o200 == 0 {
            perm | 0o200
        } else {
            perm
        }
    }
}

impl std::ops::BitOr for FileAttributes {
    type Output = FileAttributes;
    fn bitor(self, o: FileAttributes) -> FileAttributes {
        FileAttributes(self.0 | o.0)
    }
}

impl std::ops::BitOrAssign for FileAttributes {
    fn bitor_assign(&mut self, o: FileAttributes) {
        self.0 |= o.0
    }
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

/// What an open asks for: the access wanted and what to do to the file on the way.
/// Adapters build it from their kernel's request (open(2) flags on Linux; desired access
/// and a create disposition on Windows, through the core's disposition table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenRequest {
    pub access: Access,
    /// Empty the file first (O_TRUNC; an overwrite disposition).
    pub truncate: bool,
    /// Every write goes to the end of the file (O_APPEND; FILE_APPEND_DATA alone).
    pub append: bool,
    /// For `create`: fail if the name exists (O_EXCL; CREATE_NEW) instead of opening it.
    pub exclusive: bool,
    /// Windows share mode: what other opens of the file may do while this one is open.
    /// `None` (POSIX, and every FUSE open): no share checks at all.
    pub share: Option<ShareMode>,
    /// The open also asks for the right to delete or rename the file (Windows `DELETE`
    /// access, which share modes count).
    pub delete: bool,
    /// Delete the file once this handle is released (Windows `FILE_DELETE_ON_CLOSE`).
    pub delete_on_close: bool,
}

/// Which accesses other opens of a file may have while an open lasts (Windows
/// `FILE_SHARE_READ`, `FILE_SHARE_WRITE`, `FILE_SHARE_DELETE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShareMode {
    pub read: bool,
    pub write: bool,
    pub delete: bool,
}

impl ShareMode {
    /// Others may do anything (what a POSIX open amounts to).
    pub const ALL: ShareMode = ShareMode {
        read: true,
        write: true,
        delete: true,
    };
}

impl OpenRequest {
    /// A read-only open.
    pub const READ: OpenRequest = OpenRequest {
        access: Access::Read,
        truncate: false,
        append: false,
        exclusive: false,
        share: None,
        delete: false,
        delete_on_close: false,
    };

    /// Whether the open may change the file's content.
    pub fn changes_content(&self) -> bool {
        self.access.writes() || self.truncate
    }
}

/// The data access an open asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Access {
    #[default]
    Read,
    Write,
    ReadWrite,
}

impl Access {
    pub fn reads(self) -> bool {
        self != Access::Write
    }
    pub fn writes(self) -> bool {
        self != Access::Read
    }
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
    /// Set the creation time (Windows's SetFileTime; FUSE on macOS).
    pub crtime: Option<SystemTime>,
    /// The handle the change came through (ftruncate, fchmod), if any.
    pub fh: Option<Fh>,
}

/// Space to allocate or free in a file (fallocate on Linux; SetAllocationSize and
/// FSCTL_SET_ZERO_DATA on Windows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocate {
    pub offset: u64,
    pub length: u64,
    pub how: AllocateHow,
}

/// What an [`Allocate`] does to the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocateHow {
    /// Reserve blocks; the file grows to cover the range.
    Extend,
    /// Reserve blocks; the file's size stays.
    KeepSize,
    /// Free the range's blocks; it reads as zeros; the size stays.
    PunchHole,
    /// Make the range read as zeros (blocks stay allocated); `keep_size` as for the others.
    Zero { keep_size: bool },
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
    /// The caller may not access the file this way (EACCES; STATUS_ACCESS_DENIED).
    #[error("access denied: {0}")]
    AccessDenied(&'static str),
    /// Another open of the file does not share the access asked for (Windows share
    /// modes; STATUS_SHARING_VIOLATION).
    #[error("the file is open elsewhere without sharing this access")]
    SharingViolation,
    /// The file is marked for deletion once its last handle closes; it cannot be opened
    /// again (STATUS_DELETE_PENDING).
    #[error("the file is being deleted")]
    DeletePending,
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    #[error("name too long")]
    NameTooLong,
    /// A name the mount's rules do not allow (Windows: reserved device names, `<>:"|?*`,
    /// a trailing dot or space).
    #[error("invalid name: {0}")]
    InvalidName(String),
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

/// The filesystem operations the core implements and the adapters drive.
///
/// Every method takes `&self`: implementations are called from several kernel worker
/// threads at once.
///
/// I/O (`read`, `write`, `fsync`, `allocate`, `setattr`) works by inode: the handle an
/// adapter passes, when it has one, only says which open the request came through. So an
/// adapter may let its kernel skip opens of files altogether (FUSE can) and pass `None`.
/// What keeps a file reachable once it loses its last name is counted in one place in the
/// core: the handles given out by `open`/`create` until `release`, and the references
/// taken with [`FileSystem::reference`] until [`FileSystem::unreference`].
pub trait FileSystem: Send + Sync + 'static {
    fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Lookup>;
    /// The kernel holds one more reference to `ino`, by which it may reach it without a
    /// handle (FUSE: each entry handed to the kernel, its lookup count). While any is held,
    /// the file's data stays reachable even if it loses its last name.
    fn reference(&self, _ino: Ino) {}
    /// `count` references taken with [`FileSystem::reference`] are gone (FUSE: the kernel
    /// forgot the inode `count` times).
    fn unreference(&self, _ino: Ino, _count: u64) {}
    fn getattr(&self, ino: Ino) -> Result<Entry>;
    fn setattr(&self, caller: &Caller, ino: Ino, set: SetAttr) -> Result<Entry>;
    fn readlink(&self, ino: Ino) -> Result<OsString>;
    /// Makes a special file (FIFO, socket, device); `rdev` is the device number for devices.
    fn mknod(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &OsStr,
        kind: FileKind,
        perm: u16,
        rdev: u64,
    ) -> Result<Entry>;
    fn mkdir(&self, caller: &Caller, parent: Ino, name: &OsStr, perm: u16) -> Result<Entry>;
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
    /// Opens an existing file.
    fn open(&self, ino: Ino, req: &OpenRequest) -> Result<Opened>;
    /// Creates `parent/name` and opens it. Without `req.exclusive`, an existing file of that
    /// name is opened instead (with `req.truncate` applied).
    fn create(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &OsStr,
        perm: u16,
        req: &OpenRequest,
    ) -> Result<(Entry, Opened)>;
    fn read(&self, ino: Ino, fh: Option<Fh>, offset: u64, size: u32) -> Result<Vec<u8>>;
    fn write(&self, ino: Ino, fh: Option<Fh>, offset: u64, data: &[u8]) -> Result<u32>;
    /// Called on every close(2) of a file. Filesystems that write through at once (as the
    /// venvfs overlay does) have nothing to do and answer [`Error::NotImplemented`], which
    /// spares a kernel round trip per close from then on.
    fn flush(&self, _ino: Ino, _fh: Option<Fh>) -> Result<()> {
        Err(Error::NotImplemented)
    }
    fn fsync(&self, ino: Ino, fh: Option<Fh>, datasync: bool) -> Result<()>;
    /// The handle is closed (its last user is gone). A file marked for deletion goes
    /// with its last handle (see [`FileSystem::set_delete_pending`]).
    fn release(&self, ino: Ino, fh: Fh);
    /// Marks the file open as `fh` for deletion when its last handle is released, or
    /// (`delete` false) clears such a mark (Windows `FileDispositionInformation`).
    /// Meanwhile new opens of it fail with [`Error::DeletePending`]. A read-only file, or
    /// a directory that is not empty, cannot be marked. Only mounts under Windows rules
    /// delete this way.
    fn set_delete_pending(&self, _ino: Ino, _fh: Fh, _delete: bool) -> Result<()> {
        Err(Error::Unsupported(
            "delete pending: the mount follows POSIX rules",
        ))
    }
    fn allocate(&self, ino: Ino, fh: Option<Fh>, how: Allocate) -> Result<()>;
    /// Opens a directory. `keep_cache` in the reply lets the kernel cache its listing until
    /// a change made through the mount invalidates it. Listing needs no handle: an adapter
    /// may let its kernel skip directory opens.
    fn opendir(&self, ino: Ino) -> Result<Opened>;
    /// The next entries of a directory after the one whose [`DirEntry::offset`] is
    /// `offset` (0: from the start, "." and ".." first). Returns an empty list at the end.
    fn readdir(&self, ino: Ino, offset: u64) -> Result<Vec<DirEntry>>;
    fn releasedir(&self, ino: Ino, fh: Fh);
    fn statfs(&self) -> Result<StatFs>;
    fn setxattr(&self, ino: Ino, name: &OsStr, value: &[u8], how: XattrSet) -> Result<()>;
    fn getxattr(&self, ino: Ino, name: &OsStr, size: u32) -> Result<XattrReply>;
    fn listxattr(&self, ino: Ino, size: u32) -> Result<XattrReply>;
    fn removexattr(&self, ino: Ino, name: &OsStr) -> Result<()>;
}

/// The kernel's caches of a mounted filesystem, for a core whose content changes by another
/// route than the kernel's own requests (a live change of its layers): the adapter tells
/// its kernel to drop what it remembers. FUSE: notifications; a backend whose kernel caches
/// nothing the core must revoke does nothing.
pub trait KernelCache: Send + Sync {
    /// Forget the name `name` in directory `parent` (a positive or a negative entry).
    fn invalidate_entry(&self, parent: Ino, name: &OsStr);
    /// Forget the attributes and cached content (pages, a directory's listing) of `ino`.
    fn invalidate_inode(&self, ino: Ino);
    /// Put `data`, the content of `ino` at `offset`, into the kernel's page cache ahead of
    /// a read (FUSE: a store notification). False when the kernel took none of it (it does
    /// not know the inode, or the backend has no such cache).
    fn store(&self, _ino: Ino, _offset: u64, _data: &[u8]) -> bool {
        false
    }
}

/// A kernel cache that remembers nothing (no mount, or a backend without one).
pub struct NoKernelCache;

impl KernelCache for NoKernelCache {
    fn invalidate_entry(&self, _parent: Ino, _name: &OsStr) {}
    fn invalidate_inode(&self, _ino: Ino) {}
}

/// A shared filesystem serves as itself, so that its owner can keep a handle on it (to
/// change it live) while an adapter drives it.
impl<T: FileSystem> FileSystem for Arc<T> {
    fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Lookup> {
        (**self).lookup(parent, name)
    }
    fn reference(&self, ino: Ino) {
        (**self).reference(ino)
    }
    fn unreference(&self, ino: Ino, count: u64) {
        (**self).unreference(ino, count)
    }
    fn getattr(&self, ino: Ino) -> Result<Entry> {
        (**self).getattr(ino)
    }
    fn setattr(&self, caller: &Caller, ino: Ino, set: SetAttr) -> Result<Entry> {
        (**self).setattr(caller, ino, set)
    }
    fn readlink(&self, ino: Ino) -> Result<OsString> {
        (**self).readlink(ino)
    }
    fn mknod(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &OsStr,
        kind: FileKind,
        perm: u16,
        rdev: u64,
    ) -> Result<Entry> {
        (**self).mknod(caller, parent, name, kind, perm, rdev)
    }
    fn mkdir(&self, caller: &Caller, parent: Ino, name: &OsStr, perm: u16) -> Result<Entry> {
        (**self).mkdir(caller, parent, name, perm)
    }
    fn unlink(&self, parent: Ino, name: &OsStr) -> Result<()> {
        (**self).unlink(parent, name)
    }
    fn rmdir(&self, parent: Ino, name: &OsStr) -> Result<()> {
        (**self).rmdir(parent, name)
    }
    fn symlink(&self, caller: &Caller, parent: Ino, name: &OsStr, target: &Path) -> Result<Entry> {
        (**self).symlink(caller, parent, name, target)
    }
    fn rename(
        &self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        (**self).rename(parent, name, new_parent, new_name, flags)
    }
    fn link(&self, ino: Ino, new_parent: Ino, new_name: &OsStr) -> Result<Entry> {
        (**self).link(ino, new_parent, new_name)
    }
    fn open(&self, ino: Ino, req: &OpenRequest) -> Result<Opened> {
        (**self).open(ino, req)
    }
    fn create(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &OsStr,
        perm: u16,
        req: &OpenRequest,
    ) -> Result<(Entry, Opened)> {
        (**self).create(caller, parent, name, perm, req)
    }
    fn read(&self, ino: Ino, fh: Option<Fh>, offset: u64, size: u32) -> Result<Vec<u8>> {
        (**self).read(ino, fh, offset, size)
    }
    fn write(&self, ino: Ino, fh: Option<Fh>, offset: u64, data: &[u8]) -> Result<u32> {
        (**self).write(ino, fh, offset, data)
    }
    fn flush(&self, ino: Ino, fh: Option<Fh>) -> Result<()> {
        (**self).flush(ino, fh)
    }
    fn fsync(&self, ino: Ino, fh: Option<Fh>, datasync: bool) -> Result<()> {
        (**self).fsync(ino, fh, datasync)
    }
    fn release(&self, ino: Ino, fh: Fh) {
        (**self).release(ino, fh)
    }
    fn set_delete_pending(&self, ino: Ino, fh: Fh, delete: bool) -> Result<()> {
        (**self).set_delete_pending(ino, fh, delete)
    }
    fn allocate(&self, ino: Ino, fh: Option<Fh>, how: Allocate) -> Result<()> {
        (**self).allocate(ino, fh, how)
    }
    fn opendir(&self, ino: Ino) -> Result<Opened> {
        (**self).opendir(ino)
    }
    fn readdir(&self, ino: Ino, offset: u64) -> Result<Vec<DirEntry>> {
        (**self).readdir(ino, offset)
    }
    fn releasedir(&self, ino: Ino, fh: Fh) {
        (**self).releasedir(ino, fh)
    }
    fn statfs(&self) -> Result<StatFs> {
        (**self).statfs()
    }
    fn setxattr(&self, ino: Ino, name: &OsStr, value: &[u8], how: XattrSet) -> Result<()> {
        (**self).setxattr(ino, name, value, how)
    }
    fn getxattr(&self, ino: Ino, name: &OsStr, size: u32) -> Result<XattrReply> {
        (**self).getxattr(ino, name, size)
    }
    fn listxattr(&self, ino: Ino, size: u32) -> Result<XattrReply> {
        (**self).listxattr(ino, size)
    }
    fn removexattr(&self, ino: Ino, name: &OsStr) -> Result<()> {
        (**self).removexattr(ino, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: FileKind, perm: u16) -> Attr {
        let t = SystemTime::UNIX_EPOCH;
        Attr {
            ino: 2,
            size: 0,
            blocks: 0,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind,
            perm,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
        }
    }

    #[test]
    fn windows_attributes_follow_kind_and_mode() {
        assert_eq!(
            attr(FileKind::File, 0o644).file_attributes(),
            FileAttributes::NORMAL
        );
        assert_eq!(
            attr(FileKind::File, 0o444).file_attributes(),
            FileAttributes::READONLY
        );
        assert_eq!(
            attr(FileKind::Dir, 0o555).file_attributes(),
            FileAttributes::DIRECTORY
        );
        assert_eq!(
            attr(FileKind::Symlink, 0o777).file_attributes(),
            FileAttributes::REPARSE_POINT
        );
    }

    #[test]
    fn readonly_attribute_maps_to_write_bits() {
        assert_eq!(FileAttributes::READONLY.apply_to_perm(0o664), 0o444);
        assert_eq!(FileAttributes::NORMAL.apply_to_perm(0o444), 0o644);
        assert_eq!(FileAttributes::NORMAL.apply_to_perm(0o755), 0o755);
    }

    #[test]
    fn open_requests() {
        assert!(!OpenRequest::READ.changes_content());
        let w = OpenRequest {
            access: Access::Write,
            ..OpenRequest::READ
        };
        assert!(w.changes_content() && !w.access.reads());
        let t = OpenRequest {
            truncate: true,
            ..OpenRequest::READ
        };
        assert!(t.changes_content());
    }
}
