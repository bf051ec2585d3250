//! What Windows asks about files and the volume, in its terms, computed from the core's
//! attributes: file information (`BY_HANDLE_FILE_INFORMATION`, `WIN32_FIND_DATA`), time
//! changes (`SetFileTime`), attribute changes (`SetFileAttributes`), and the volume's
//! description.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use venvfs_api::{Attr, FileAttributes, SetAttr, SetTime, StatFs};

/// A file as `GetFileInformationByHandle` and `FindFirstFile` describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInformation {
    /// `FILE_ATTRIBUTE_*`.
    pub attributes: u32,
    pub creation_time: SystemTime,
    pub last_access_time: SystemTime,
    pub last_write_time: SystemTime,
    pub size: u64,
    pub links: u32,
    /// The file index (the file's identity on the volume): the core's inode number.
    pub index: u64,
}

impl FileInformation {
    pub fn of(attr: &Attr) -> FileInformation {
        FileInformation {
            attributes: attr.file_attributes().0,
            creation_time: attr.crtime,
            last_access_time: attr.atime,
            // Windows's "last write" is the content's modification time; its "change time"
            // (ctime) is not part of these structures.
            last_write_time: attr.mtime,
            size: attr.size,
            links: attr.nlink,
            index: attr.ino,
        }
    }
}

/// 100-nanosecond intervals between 1601-01-01 (the FILETIME epoch) and 1970-01-01.
pub const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;

/// A FILETIME (100 ns intervals since 1601-01-01 UTC) as a time; `None` if this platform's
/// `SystemTime` cannot hold it (Windows's stops short of 1601 itself). (Dokan's own types
/// carry `SystemTime`s; this is the conversion they make, kept here for tests and logs.)
pub fn from_filetime(ft: u64) -> Option<SystemTime> {
    let since_1601 =
        Duration::from_nanos(ft % 10_000_000 * 100) + Duration::from_secs(ft / 10_000_000);
    let offset = Duration::from_secs(FILETIME_UNIX_EPOCH / 10_000_000);
    match since_1601.checked_sub(offset) {
        Some(after) => UNIX_EPOCH.checked_add(after),
        None => UNIX_EPOCH.checked_sub(offset - since_1601),
    }
}

/// A time as a FILETIME; times before 1601 become 0.
pub fn to_filetime(t: SystemTime) -> u64 {
    let offset = Duration::from_secs(FILETIME_UNIX_EPOCH / 10_000_000);
    let since_1601 = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => offset + after,
        Err(before) => offset.saturating_sub(before.duration()),
    };
    u64::try_from(since_1601.as_nanos() / 100).unwrap_or(u64::MAX)
}

/// One of `SetFileTime`'s three times: set it, or leave it (Dokan also passes "stop/resume
/// updating it for this handle", which the core has no notion of: left as they are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeChange {
    Set(SystemTime),
    Keep,
}

/// The core change for `SetFileTime(creation, access, write)`; `None` if nothing changes.
pub fn set_times(creation: TimeChange, access: TimeChange, write: TimeChange) -> Option<SetAttr> {
    let at = |c: TimeChange| match c {
        TimeChange::Set(t) => Some(SetTime::At(t)),
        TimeChange::Keep => None,
    };
    let set = SetAttr {
        crtime: match creation {
            TimeChange::Set(t) => Some(t),
            TimeChange::Keep => None,
        },
        atime: at(access),
        mtime: at(write),
        ..SetAttr::default()
    };
    (set.crtime.is_some() || set.atime.is_some() || set.mtime.is_some()).then_some(set)
}

/// The core change for `SetFileAttributes(attributes)` on a file with permission bits
/// `perm`; `None` if nothing the core keeps changes. 0 means "leave them"; of the
/// attributes only `READONLY` is kept (as the owner's write bit).
pub fn set_attributes(attributes: u32, perm: u16) -> Option<SetAttr> {
    if attributes == 0 {
        return None;
    }
    let new = FileAttributes(attributes).apply_to_perm(perm);
    (new != perm).then_some(SetAttr {
        mode: Some(u32::from(new)),
        ..SetAttr::default()
    })
}

/// How much of a paging write (the cache manager writing back mapped pages) lands: paging
/// I/O never extends a file, so the part past its end `size` is dropped.
pub fn paging_write_len(offset: u64, len: usize, size: u64) -> usize {
    if offset >= size {
        return 0;
    }
    usize::try_from(size - offset).map_or(len, |room| len.min(room))
}

/// Free space as `GetDiskFreeSpaceEx` reports it: total, free, and available to the caller.
pub fn disk_space(st: &StatFs) -> (u64, u64, u64) {
    let unit = u64::from(if st.frsize != 0 { st.frsize } else { st.bsize });
    (
        st.blocks.saturating_mul(unit),
        st.bfree.saturating_mul(unit),
        st.bavail.saturating_mul(unit),
    )
}

/// The volume's label.
pub const VOLUME_NAME: &str = "venvfs";
/// The filesystem name shown to Windows. "NTFS", as Dokan's own examples answer: some
/// programs (and parts of Windows) only offer features they know on volumes that say so,
/// and the mount follows NTFS's rules for names, share modes and deletion.
pub const FILESYSTEM_NAME: &str = "NTFS";
/// Longest name (UTF-16 code units), as NTFS.
pub const MAX_COMPONENT_LENGTH: u32 = 255;
/// `FILE_CASE_PRESERVED_NAMES | FILE_UNICODE_ON_DISK`: names keep their spelling and are
/// compared case-insensitively (no `FILE_CASE_SENSITIVE_SEARCH`), stored as Unicode.
pub const FILESYSTEM_FLAGS: u32 = 0x2 | 0x4;
/// A fixed serial number, so that a path's volume looks the same across remounts.
pub const VOLUME_SERIAL: u32 = 0x7665_6e76; // "venv"

#[cfg(test)]
mod tests {
    use venvfs_api::FileKind;

    use super::*;

    fn attr(kind: FileKind, perm: u16) -> Attr {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        Attr {
            ino: 42,
            size: 7,
            blocks: 1,
            atime: t + Duration::from_secs(2),
            mtime: t + Duration::from_secs(1),
            ctime: t + Duration::from_secs(3),
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
    fn file_information_from_attributes() {
        let a = attr(FileKind::File, 0o444);
        let i = FileInformation::of(&a);
        assert_eq!(i.attributes, FileAttributes::READONLY.0);
        assert_eq!((i.creation_time, i.last_write_time), (a.crtime, a.mtime));
        assert_eq!(i.last_access_time, a.atime);
        assert_eq!((i.size, i.index, i.links), (7, 42, 1));
        let d = FileInformation::of(&attr(FileKind::Dir, 0o755));
        assert_eq!(d.attributes, FileAttributes::DIRECTORY.0);
    }

    #[test]
    fn filetimes() {
        assert_eq!(to_filetime(UNIX_EPOCH), FILETIME_UNIX_EPOCH);
        assert_eq!(from_filetime(FILETIME_UNIX_EPOCH), Some(UNIX_EPOCH));
        // 2023-11-14T22:13:20.1234567Z, to the 100 ns
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_700);
        assert_eq!(to_filetime(t), 133_444_736_001_234_567);
        assert_eq!(from_filetime(to_filetime(t)), Some(t));
        // before 1970, and before 1601
        let old = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(from_filetime(to_filetime(old)), Some(old));
        // (Windows's SystemTime cannot go before 1601 at all)
        if let Some(ancient) = UNIX_EPOCH.checked_sub(Duration::from_secs(400 * 366 * 86_400)) {
            assert_eq!(to_filetime(ancient), 0);
        }
        if let Some(t) = from_filetime(0) {
            assert_eq!(to_filetime(t), 0);
        }
    }

    #[test]
    fn time_changes() {
        let t = UNIX_EPOCH + Duration::from_secs(5);
        assert!(set_times(TimeChange::Keep, TimeChange::Keep, TimeChange::Keep).is_none());
        let s = set_times(TimeChange::Set(t), TimeChange::Keep, TimeChange::Set(t)).unwrap();
        assert_eq!(s.crtime, Some(t));
        assert!(s.atime.is_none());
        assert!(matches!(s.mtime, Some(SetTime::At(x)) if x == t));
    }

    #[test]
    fn attribute_changes() {
        assert!(set_attributes(0, 0o644).is_none(), "0: no change");
        assert_eq!(set_attributes(0x1, 0o644).unwrap().mode, Some(0o444));
        assert_eq!(set_attributes(0x80, 0o444).unwrap().mode, Some(0o644));
        assert!(
            set_attributes(0x20, 0o644).is_none(),
            "ARCHIVE alone: nothing kept"
        );
    }

    #[test]
    fn paging_writes_never_extend() {
        assert_eq!(paging_write_len(0, 10, 100), 10);
        assert_eq!(paging_write_len(95, 10, 100), 5);
        assert_eq!(paging_write_len(100, 10, 100), 0);
        assert_eq!(paging_write_len(200, 10, 100), 0);
    }

    #[test]
    fn free_space() {
        let st = StatFs {
            blocks: 10,
            bfree: 4,
            bavail: 3,
            frsize: 4096,
            bsize: 512,
            ..StatFs::default()
        };
        assert_eq!(disk_space(&st), (40960, 16384, 12288));
        let st = StatFs { frsize: 0, ..st };
        assert_eq!(disk_space(&st).0, 5120);
    }
}
