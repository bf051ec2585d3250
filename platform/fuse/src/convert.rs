//! Plain conversions between `venvfs_api` types and `fuser` types.

use std::ffi::OsStr;
use std::time::{Duration, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo, Request, TimeOrNow};
use venvfs_api::{Attr, Caller, DirEntry, Entry, FileKind, SetTime};

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
        crtime: a.ctime,
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
    fn dots() {
        assert!(is_dot(OsStr::new(".")));
        assert!(is_dot(OsStr::new("..")));
        assert!(!is_dot(OsStr::new("...")));
        assert!(!is_dot(OsStr::new(".x")));
    }
}
