//! Share modes: whether a new open of a file may coexist with the opens already on it.
//!
//! Why: on Windows every open says what it will do (read, write, delete) and what it lets
//! later opens do (`FILE_SHARE_READ`, `FILE_SHARE_WRITE`, `FILE_SHARE_DELETE`); an open that
//! conflicts fails with `STATUS_SHARING_VIOLATION`. Programs rely on it, for example to lock a
//! file against writers while they read it. POSIX has nothing like it, so a Windows mount has
//! to keep the state itself, per file.
//!
//! The model is the kernel's `SHARE_ACCESS` structure and `IoCheckShareAccess` (as described
//! in MS-FSA 2.1.5.1.2, "Algorithm to Check Sharing Access to an Existing Stream or
//! Directory"): counts of opens, readers, writers and deleters, and of opens that share
//! read, write and delete. Only the data and delete rights take part: an open that asks for
//! nothing but attributes, `READ_CONTROL` or `SYNCHRONIZE` is not counted and never conflicts.

use super::RuleError;

/// `FILE_READ_DATA` (`FILE_LIST_DIRECTORY` on a directory).
pub const FILE_READ_DATA: u32 = 0x0000_0001;
/// `FILE_WRITE_DATA` (`FILE_ADD_FILE` on a directory).
pub const FILE_WRITE_DATA: u32 = 0x0000_0002;
/// `FILE_APPEND_DATA` (`FILE_ADD_SUBDIRECTORY` on a directory).
pub const FILE_APPEND_DATA: u32 = 0x0000_0004;
/// `FILE_EXECUTE` (`FILE_TRAVERSE` on a directory).
pub const FILE_EXECUTE: u32 = 0x0000_0020;
/// `FILE_READ_ATTRIBUTES`: takes part in no sharing check.
pub const FILE_READ_ATTRIBUTES: u32 = 0x0000_0080;
/// `DELETE`.
pub const DELETE: u32 = 0x0001_0000;
/// `READ_CONTROL`: takes part in no sharing check.
pub const READ_CONTROL: u32 = 0x0002_0000;
/// `SYNCHRONIZE`: takes part in no sharing check.
pub const SYNCHRONIZE: u32 = 0x0010_0000;
/// `MAXIMUM_ALLOWED`.
pub const MAXIMUM_ALLOWED: u32 = 0x0200_0000;
/// `GENERIC_ALL`.
pub const GENERIC_ALL: u32 = 0x1000_0000;
/// `GENERIC_EXECUTE`.
pub const GENERIC_EXECUTE: u32 = 0x2000_0000;
/// `GENERIC_WRITE`.
pub const GENERIC_WRITE: u32 = 0x4000_0000;
/// `GENERIC_READ`.
pub const GENERIC_READ: u32 = 0x8000_0000;

/// `FILE_SHARE_READ`.
pub const FILE_SHARE_READ: u32 = 0x1;
/// `FILE_SHARE_WRITE`.
pub const FILE_SHARE_WRITE: u32 = 0x2;
/// `FILE_SHARE_DELETE`.
pub const FILE_SHARE_DELETE: u32 = 0x4;

/// What an open will do to the file, as far as sharing is concerned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Access {
    /// Reads or executes the data.
    pub read: bool,
    /// Writes or appends to the data.
    pub write: bool,
    /// Deletes or renames the file.
    pub delete: bool,
}

impl Access {
    /// The rights of a desired-access mask that sharing checks look at. Generic rights are
    /// mapped as the file object's generic mapping does (`GENERIC_READ` includes
    /// `FILE_READ_DATA`, `GENERIC_WRITE` includes `FILE_WRITE_DATA` and `FILE_APPEND_DATA`,
    /// `GENERIC_EXECUTE` includes `FILE_EXECUTE`, `GENERIC_ALL` all of them and `DELETE`).
    /// `MAXIMUM_ALLOWED` counts as everything: it is granted whatever the caller may have,
    /// which on a file the caller may write and delete is all of it.
    pub fn from_mask(mask: u32) -> Access {
        let everything = mask & (GENERIC_ALL | MAXIMUM_ALLOWED) != 0;
        Access {
            read: everything
                || mask & (FILE_READ_DATA | FILE_EXECUTE | GENERIC_READ | GENERIC_EXECUTE) != 0,
            write: everything || mask & (FILE_WRITE_DATA | FILE_APPEND_DATA | GENERIC_WRITE) != 0,
            delete: everything || mask & DELETE != 0,
        }
    }

    /// Whether this open takes part in sharing at all.
    pub fn is_counted(self) -> bool {
        self.read || self.write || self.delete
    }
}

/// What an open lets later opens do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Share {
    /// `FILE_SHARE_READ`.
    pub read: bool,
    /// `FILE_SHARE_WRITE`.
    pub write: bool,
    /// `FILE_SHARE_DELETE`.
    pub delete: bool,
}

impl Share {
    /// Share nothing (share mode 0).
    pub const NONE: Share = Share {
        read: false,
        write: false,
        delete: false,
    };
    /// Share everything.
    pub const ALL: Share = Share {
        read: true,
        write: true,
        delete: true,
    };

    /// The share mode of an NT `ShareAccess` / Win32 `dwShareMode` value; bits other than
    /// the three share flags are an invalid parameter, as NtCreateFile has them.
    pub fn from_bits(bits: u32) -> Result<Share, RuleError> {
        if bits & !(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE) != 0 {
            return Err(RuleError::InvalidParameter("unknown share access bits"));
        }
        Ok(Share {
            read: bits & FILE_SHARE_READ != 0,
            write: bits & FILE_SHARE_WRITE != 0,
            delete: bits & FILE_SHARE_DELETE != 0,
        })
    }
}

/// The opens of one file, by count, like the kernel's `SHARE_ACCESS`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShareState {
    /// Counted opens (those with read, write or delete access).
    pub open_count: u32,
    /// Opens that read.
    pub readers: u32,
    /// Opens that write.
    pub writers: u32,
    /// Opens that delete.
    pub deleters: u32,
    /// Opens that share read.
    pub shared_read: u32,
    /// Opens that share write.
    pub shared_write: u32,
    /// Opens that share delete.
    pub shared_delete: u32,
}

impl ShareState {
    /// A file nobody has open.
    pub fn new() -> ShareState {
        ShareState::default()
    }

    /// Whether an open asking `access` and sharing `share` may join the current opens.
    ///
    /// It conflicts if it wants a right that some current open does not share, or if it
    /// does not share a right that some current open uses.
    pub fn check(&self, access: Access, share: Share) -> Result<(), RuleError> {
        if !access.is_counted() {
            return Ok(());
        }
        let denied_by_others = (access.read && self.shared_read < self.open_count)
            || (access.write && self.shared_write < self.open_count)
            || (access.delete && self.shared_delete < self.open_count);
        let denies_others = (self.readers != 0 && !share.read)
            || (self.writers != 0 && !share.write)
            || (self.deleters != 0 && !share.delete);
        if denied_by_others || denies_others {
            Err(RuleError::SharingViolation)
        } else {
            Ok(())
        }
    }

    /// Record an open that [`check`](Self::check) allowed. Opens that are not counted
    /// change nothing.
    pub fn add(&mut self, access: Access, share: Share) {
        self.count(access, share, u32::saturating_add);
    }

    /// Check and record in one step.
    pub fn open(&mut self, access: Access, share: Share) -> Result<(), RuleError> {
        self.check(access, share)?;
        self.add(access, share);
        Ok(())
    }

    /// Forget an open recorded with the same `access` and `share` (at its cleanup).
    /// Counts never go below zero, whatever the caller passes.
    pub fn remove(&mut self, access: Access, share: Share) {
        self.count(access, share, u32::saturating_sub);
    }

    /// Applies `op` (add or subtract one, saturating) to every count the open takes part in.
    fn count(&mut self, access: Access, share: Share, op: fn(u32, u32) -> u32) {
        if !access.is_counted() {
            return;
        }
        let step = |n: &mut u32, yes: bool| *n = op(*n, u32::from(yes));
        step(&mut self.open_count, true);
        step(&mut self.readers, access.read);
        step(&mut self.writers, access.write);
        step(&mut self.deleters, access.delete);
        step(&mut self.shared_read, share.read);
        step(&mut self.shared_write, share.write);
        step(&mut self.shared_delete, share.delete);
    }

    /// Whether no counted open remains.
    pub fn is_idle(&self) -> bool {
        self.open_count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(bits: u32) -> Share {
        Share::from_bits(bits).unwrap_or(Share::NONE)
    }

    const R: u32 = FILE_SHARE_READ;
    const W: u32 = FILE_SHARE_WRITE;
    const D: u32 = FILE_SHARE_DELETE;

    #[test]
    fn access_from_mask() {
        let a = Access::from_mask;
        assert_eq!(
            a(FILE_READ_DATA),
            Access {
                read: true,
                write: false,
                delete: false
            }
        );
        assert_eq!(
            a(FILE_WRITE_DATA),
            Access {
                read: false,
                write: true,
                delete: false
            }
        );
        assert_eq!(a(FILE_APPEND_DATA), a(FILE_WRITE_DATA));
        assert_eq!(a(FILE_EXECUTE), a(FILE_READ_DATA));
        assert_eq!(a(GENERIC_READ), a(FILE_READ_DATA));
        assert_eq!(a(GENERIC_EXECUTE), a(FILE_READ_DATA));
        assert_eq!(a(GENERIC_WRITE), a(FILE_WRITE_DATA));
        assert_eq!(
            a(DELETE),
            Access {
                read: false,
                write: false,
                delete: true
            }
        );
        let all = Access {
            read: true,
            write: true,
            delete: true,
        };
        assert_eq!(a(GENERIC_ALL), all);
        assert_eq!(a(MAXIMUM_ALLOWED), all);
        assert_eq!(a(GENERIC_READ | GENERIC_WRITE | DELETE), all);
        for attrs in [
            0,
            FILE_READ_ATTRIBUTES,
            SYNCHRONIZE,
            READ_CONTROL,
            FILE_READ_ATTRIBUTES | SYNCHRONIZE | READ_CONTROL,
            0x100, // FILE_WRITE_ATTRIBUTES
        ] {
            assert!(!a(attrs).is_counted(), "{attrs:#x}");
        }
    }

    #[test]
    fn share_from_bits() {
        assert_eq!(Share::from_bits(0), Ok(Share::NONE));
        assert_eq!(Share::from_bits(R | W | D), Ok(Share::ALL));
        assert_eq!(
            Share::from_bits(W),
            Ok(Share {
                read: false,
                write: true,
                delete: false
            })
        );
        assert!(Share::from_bits(8).is_err());
        assert!(Share::from_bits(u32::MAX).is_err());
    }

    #[test]
    fn two_readers_sharing_read() {
        let mut s = ShareState::new();
        let read = Access::from_mask(GENERIC_READ);
        assert_eq!(s.open(read, share(R)), Ok(()));
        assert_eq!(s.open(read, share(R)), Ok(()));
        assert_eq!(s.open_count, 2);
        assert_eq!(s.readers, 2);
    }

    #[test]
    fn reader_not_sharing_read_blocks_readers() {
        let mut s = ShareState::new();
        let read = Access::from_mask(GENERIC_READ);
        assert_eq!(s.open(read, share(0)), Ok(()));
        assert_eq!(
            s.check(read, share(R | W | D)),
            Err(RuleError::SharingViolation)
        );
        // Sharing nothing also shuts out writers, though the first open does not write.
        let write = Access::from_mask(GENERIC_WRITE);
        assert_eq!(
            s.check(write, share(R | W | D)),
            Err(RuleError::SharingViolation)
        );
    }

    #[test]
    fn second_open_must_share_what_first_uses() {
        let mut s = ShareState::new();
        let read = Access::from_mask(GENERIC_READ);
        assert_eq!(s.open(read, share(R | W)), Ok(()));
        // The newcomer reads but denies read to others, while the first open reads.
        assert_eq!(s.check(read, share(W)), Err(RuleError::SharingViolation));
        assert_eq!(s.check(read, share(R)), Ok(()));
    }

    #[test]
    fn writer_while_another_denies_write() {
        let mut s = ShareState::new();
        assert_eq!(s.open(Access::from_mask(GENERIC_READ), share(R)), Ok(()));
        let write = Access::from_mask(GENERIC_WRITE);
        assert_eq!(
            s.check(write, share(R | W)),
            Err(RuleError::SharingViolation)
        );
        // Reading alongside is still fine.
        assert_eq!(s.check(Access::from_mask(GENERIC_READ), share(R)), Ok(()));
    }

    #[test]
    fn two_writers_sharing_write() {
        let mut s = ShareState::new();
        let rw = Access::from_mask(GENERIC_READ | GENERIC_WRITE);
        assert_eq!(s.open(rw, share(R | W)), Ok(()));
        assert_eq!(s.open(rw, share(R | W)), Ok(()));
        // A third that denies write conflicts with the writers already there.
        assert_eq!(s.check(rw, share(R)), Err(RuleError::SharingViolation));
    }

    #[test]
    fn delete_needs_share_delete() {
        let mut s = ShareState::new();
        let delete = Access::from_mask(DELETE);
        assert_eq!(s.open(Access::from_mask(GENERIC_READ), share(R)), Ok(()));
        assert_eq!(
            s.check(delete, share(R | W | D)),
            Err(RuleError::SharingViolation)
        );

        let mut s = ShareState::new();
        assert_eq!(
            s.open(Access::from_mask(GENERIC_READ), share(R | D)),
            Ok(())
        );
        assert_eq!(s.open(delete, share(R | W | D)), Ok(()));
        // Now an open that does not share delete conflicts with the deleter.
        assert_eq!(
            s.check(Access::from_mask(GENERIC_READ), share(R)),
            Err(RuleError::SharingViolation)
        );
    }

    #[test]
    fn attribute_only_opens_never_conflict() {
        let mut s = ShareState::new();
        assert_eq!(s.open(Access::from_mask(GENERIC_ALL), share(0)), Ok(()));
        let stat = Access::from_mask(FILE_READ_ATTRIBUTES | SYNCHRONIZE);
        assert_eq!(s.check(stat, share(0)), Ok(()));
        assert_eq!(s.open(stat, share(0)), Ok(()));
        assert_eq!(s.open_count, 1);

        // And they block nobody, even sharing nothing.
        let mut s = ShareState::new();
        assert_eq!(s.open(stat, share(0)), Ok(()));
        assert!(s.is_idle());
        assert_eq!(s.open(Access::from_mask(GENERIC_ALL), share(0)), Ok(()));
    }

    #[test]
    fn exclusive_open_blocks_everything_counted() {
        let mut s = ShareState::new();
        assert_eq!(s.open(Access::from_mask(GENERIC_READ), share(0)), Ok(()));
        for mask in [GENERIC_READ, GENERIC_WRITE, DELETE, FILE_EXECUTE] {
            assert_eq!(
                s.check(Access::from_mask(mask), Share::ALL),
                Err(RuleError::SharingViolation),
                "{mask:#x}"
            );
        }
    }

    #[test]
    fn remove_restores() {
        let mut s = ShareState::new();
        let read = Access::from_mask(GENERIC_READ);
        let write = Access::from_mask(GENERIC_WRITE);
        let before = s;
        assert_eq!(s.open(read, share(0)), Ok(()));
        assert_eq!(s.check(write, Share::ALL), Err(RuleError::SharingViolation));
        s.remove(read, share(0));
        assert_eq!(s, before);
        assert_eq!(s.check(write, Share::ALL), Ok(()));

        // Removing one of two keeps the other's effect.
        assert_eq!(s.open(read, share(R)), Ok(()));
        assert_eq!(s.open(read, share(R)), Ok(()));
        s.remove(read, share(R));
        assert_eq!(s.check(write, Share::ALL), Err(RuleError::SharingViolation));
        s.remove(read, share(R));
        assert!(s.is_idle());
        assert_eq!(s.check(write, Share::ALL), Ok(()));
    }

    #[test]
    fn remove_never_underflows() {
        let mut s = ShareState::new();
        s.remove(Access::from_mask(GENERIC_ALL), Share::ALL);
        assert_eq!(s, ShareState::new());
        // Removing an attribute-only open is a no-op too.
        s.remove(Access::from_mask(FILE_READ_ATTRIBUTES), Share::NONE);
        assert_eq!(s, ShareState::new());
    }
}
