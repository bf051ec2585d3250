//! Plain conversions between `venvfs_api` types and `fuser` types.

use std::ffi::OsStr;
use std::time::{Duration, UNIX_EPOCH};

use fuser::{FileAttr, FileHandle, FileType, INodeNo, Request, TimeOrNow};
use venvfs_api::{
    Access, Allocate, AllocateHow, Attr, Caller, DirEntry, Entry, Error, Fh, FileKind, OpenRequest,
    Result, SetTime,
};

/// The block size reported when the core leaves `blksize` at zero.
const DEFAULT_BLKSIZE: u32 = 4096;

pub(crate) fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
    }
}

pub(crate) fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.crtime,
        kind: file_type(a.kind),
        // fuser ORs the permission bits into the mode: never let them touch the type bits.
        perm: a.perm & 0o7777,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: if a.blksize == 0 {
            DEFAULT_BLKSIZE
        } else {
            a.blksize
        },
        flags: 0,
    }
}

/// The attributes sent with a negative lookup: node id 0 tells the kernel "no such name"
/// and makes it cache that answer for the entry TTL.
pub(crate) fn negative_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: DEFAULT_BLKSIZE,
        flags: 0,
    }
}

/// An entry built from a directory listing alone, with a zero TTL. Used for "." and ".."
/// in readdirplus when their attributes cannot be fetched; the kernel takes only the inode
/// number and type from those two entries anyway.
pub(crate) fn listing_entry(e: &DirEntry) -> Entry {
    Entry {
        attr: Attr {
            ino: e.ino,
            size: 0,
            blocks: 0,
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind: e.kind,
            perm: 0,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: DEFAULT_BLKSIZE,
        },
        ttl: Duration::ZERO,
    }
}

pub(crate) fn is_dot(name: &OsStr) -> bool {
    name == "." || name == ".."
}

pub(crate) fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
    }
}

/// The core's handle for a FUSE file handle: 0 is what the kernel sends for files it
/// opened itself (opens skipped), which have none.
pub(crate) fn handle(fh: FileHandle) -> Option<Fh> {
    (fh.0 != 0).then_some(fh.0)
}

/// An open request from `open(2)` flags.
pub(crate) fn open_request(flags: i32) -> OpenRequest {
    OpenRequest {
        access: match flags & libc::O_ACCMODE {
            libc::O_WRONLY => Access::Write,
            libc::O_RDWR => Access::ReadWrite,
            _ => Access::Read,
        },
        truncate: flags & libc::O_TRUNC != 0,
        append: flags & libc::O_APPEND != 0,
        exclusive: flags & libc::O_EXCL != 0,
        // (POSIX opens share everything and delete nothing)
        ..OpenRequest::READ
    }
}

/// The kind and permission bits of a `mknod` mode.
pub(crate) fn special_file(mode: u32) -> (FileKind, u16) {
    (FileKind::from_mode(mode), (mode & 0o7777) as u16)
}

/// An allocation from `fallocate(2)` arguments; modes the core has no name for are
/// refused with EOPNOTSUPP, as filesystems do.
pub(crate) fn allocate(offset: u64, length: u64, mode: i32) -> Result<Allocate> {
    const KEEP: i32 = libc::FALLOC_FL_KEEP_SIZE;
    let how = match mode {
        0 => AllocateHow::Extend,
        KEEP => AllocateHow::KeepSize,
        m if m == libc::FALLOC_FL_PUNCH_HOLE | KEEP => AllocateHow::PunchHole,
        libc::FALLOC_FL_ZERO_RANGE => AllocateHow::Zero { keep_size: false },
        m if m == libc::FALLOC_FL_ZERO_RANGE | KEEP => AllocateHow::Zero { keep_size: true },
        _ => return Err(Error::Unsupported("this fallocate mode")),
    };
    Ok(Allocate {
        offset,
        length,
        how,
    })
}

pub(crate) fn set_time(t: TimeOrNow) -> SetTime {
    match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(t) => SetTime::At(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_cannot_change_type() {
        let e = listing_entry(&DirEntry {
            ino: 5,
            name: "x".into(),
            kind: FileKind::Dir,
            offset: 3,
        });
        let mut a = e.attr;
        a.perm = 0o177777;
        let fa = file_attr(&a);
        assert_eq!(fa.perm, 0o7777);
        assert_eq!(fa.kind, FileType::Directory);
        assert_eq!(fa.ino, INodeNo(5));
        assert_eq!(fa.blksize, DEFAULT_BLKSIZE);
    }

    #[test]
    fn open_flags_become_requests() {
        let r = open_request(libc::O_RDONLY);
        assert_eq!(r, OpenRequest::READ);
        let r = open_request(libc::O_WRONLY | libc::O_TRUNC | libc::O_APPEND);
        assert_eq!(r.access, Access::Write);
        assert!(r.truncate && r.append && !r.exclusive);
        let r = open_request(libc::O_RDWR | libc::O_CREAT | libc::O_EXCL);
        assert_eq!(r.access, Access::ReadWrite);
        assert!(r.exclusive && !r.truncate);
    }

    #[test]
    fn fallocate_modes() {
        let how = |m| allocate(0, 1, m).map(|a| a.how).ok();
        assert_eq!(how(0), Some(AllocateHow::Extend));
        assert_eq!(how(libc::FALLOC_FL_KEEP_SIZE), Some(AllocateHow::KeepSize));
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        assert_eq!(how(punch), Some(AllocateHow::PunchHole));
        // a hole without KEEP_SIZE is invalid in Linux too
        assert_eq!(how(libc::FALLOC_FL_PUNCH_HOLE), None);
        assert_eq!(how(libc::FALLOC_FL_COLLAPSE_RANGE), None);
    }

    #[test]
    fn handle_zero_is_none() {
        assert_eq!(handle(FileHandle(0)), None);
        assert_eq!(handle(FileHandle(7)), Some(7));
    }

    #[test]
    fn dots() {
        assert!(is_dot(OsStr::new(".")));
        assert!(is_dot(OsStr::new("..")));
        assert!(!is_dot(OsStr::new("...")));
        assert!(!is_dot(OsStr::new(".x")));
    }
}
