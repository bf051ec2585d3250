//! The filesystem rules a mount follows, chosen per mount: POSIX for the Linux (FUSE) mount,
//! Windows for the Dokan mount.
//!
//! A crate of its own (the core re-exports it as `venvfs::rules`) because both the core and
//! the Dokan adapter (`venvfs-dokan`, which the core's Windows build depends on) apply them:
//! the core its share modes, names and delete pending; the adapter the disposition table.
//!
//! Why this is ordinary code: a Windows mount must behave like NTFS where programs can tell
//! the difference, that is case-insensitive but case-preserving names ([`names`]), the create
//! disposition table of NtCreateFile ([`disposition`]), share modes between opens
//! ([`share`]) and delete-on-close / delete-pending ([`delete`]). None of these needs a
//! Windows API, so they are kept as plain functions over plain Rust values, compiled and
//! tested on every platform (as rattler_vfs keeps its ProjFS name comparison ungated), and
//! the overlay core consults them per mount. The Dokan adapter then only translates between
//! Windows types and these.
//!
//! Errors are one enum, [`RuleError`], which becomes the API's error kinds
//! ([`venvfs_api::Error`]); the adapters map those in one place each (errno in the FUSE
//! adapter, NTSTATUS in the Dokan one). Each variant's documentation names both.

pub mod delete;
pub mod disposition;
pub mod names;
pub mod share;

use std::ffi::OsStr;

pub use delete::{CleanupAction, DeleteState, DeleteTarget, HandleId};
pub use disposition::{decide, Action, DirWish, Disposition, ExistingKind, Information};
pub use names::{valid_windows_name, NameError, NameRules, RenameKind};
pub use share::{Access, Share, ShareState};

/// Why an operation is refused under the rules of a mount.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// An open conflicts with the share modes of the opens already on the file
    /// (`STATUS_SHARING_VIOLATION`; errno `EACCES`, as the C runtime
    /// maps `ERROR_SHARING_VIOLATION`).
    #[error("sharing violation: the file is open in a mode that excludes this access")]
    SharingViolation,
    /// The file is marked for deletion (`STATUS_DELETE_PENDING`; errno `EACCES`, as Windows reports it
    /// through `ERROR_ACCESS_DENIED`).
    #[error("the file is pending deletion")]
    DeletePending,
    /// The name exists (`STATUS_OBJECT_NAME_COLLISION`; errno `EEXIST`).
    #[error("the name already exists")]
    NameCollision,
    /// The name does not exist (`STATUS_OBJECT_NAME_NOT_FOUND`; errno `ENOENT`).
    #[error("no such file or directory")]
    NotFound,
    /// A non-directory open names a directory (`STATUS_FILE_IS_A_DIRECTORY`; errno `EISDIR`).
    #[error("is a directory")]
    IsADirectory,
    /// A directory open names a file (`STATUS_NOT_A_DIRECTORY`; errno `ENOTDIR`).
    #[error("not a directory")]
    NotADirectory,
    /// The request itself is malformed (`STATUS_INVALID_PARAMETER`; errno `EINVAL`).
    #[error("invalid parameter: {0}")]
    InvalidParameter(&'static str),
    /// A read-only file cannot be deleted (`STATUS_CANNOT_DELETE`; errno `EACCES`).
    #[error("a read-only file cannot be deleted")]
    CannotDelete,
    /// A directory to delete is not empty (`STATUS_DIRECTORY_NOT_EMPTY`; errno `ENOTEMPTY`).
    #[error("directory is not empty")]
    DirectoryNotEmpty,
    /// The name is not allowed (`STATUS_OBJECT_NAME_INVALID`; errno `EINVAL`).
    #[error("invalid name: {0}")]
    InvalidName(#[from] NameError),
}

impl From<RuleError> for venvfs_api::Error {
    fn from(e: RuleError) -> venvfs_api::Error {
        use venvfs_api::Error;
        match e {
            RuleError::SharingViolation => Error::SharingViolation,
            RuleError::DeletePending => Error::DeletePending,
            RuleError::NameCollision => Error::Exists(Default::default()),
            RuleError::NotFound => Error::NotFound,
            RuleError::IsADirectory => Error::IsDir,
            RuleError::NotADirectory => Error::NotDir,
            RuleError::InvalidParameter(why) => Error::Invalid(why),
            RuleError::CannotDelete => Error::AccessDenied("a read-only file cannot be deleted"),
            RuleError::DirectoryNotEmpty => Error::NotEmpty,
            RuleError::InvalidName(why) => Error::InvalidName(why.to_string()),
        }
    }
}

/// The rules of one mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rules {
    names: NameRules,
    windows_opens: bool,
}

impl Rules {
    /// POSIX: names compared as bytes, no share modes, unlink removes the name at once.
    pub const fn posix() -> Rules {
        Rules {
            names: NameRules::Posix,
            windows_opens: false,
        }
    }

    /// Windows: names compared like NTFS, share modes enforced, deletion delayed to the last
    /// close (delete pending).
    pub const fn windows() -> Rules {
        Rules {
            names: NameRules::Windows,
            windows_opens: true,
        }
    }

    /// How names are compared.
    pub fn names(&self) -> NameRules {
        self.names
    }

    /// Whether opens check and record share modes ([`ShareState`]).
    pub fn share_modes(&self) -> bool {
        self.windows_opens
    }

    /// Whether deletion goes through delete-pending and the last close ([`DeleteState`]).
    pub fn delete_pending(&self) -> bool {
        self.windows_opens
    }

    /// Whether a new entry may be called `name`. Under POSIX rules the kernel has already
    /// refused what POSIX refuses (`/`, NUL, `.`, `..`), so every name passes here.
    pub fn check_new_name(&self, name: &OsStr) -> Result<(), RuleError> {
        match self.names {
            NameRules::Posix => Ok(()),
            NameRules::Windows => Ok(valid_windows_name(name)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_and_windows_bundles() {
        let p = Rules::posix();
        assert_eq!(p.names(), NameRules::Posix);
        assert!(!p.share_modes() && !p.delete_pending());
        assert_eq!(p.check_new_name(OsStr::new("nul.txt")), Ok(()));

        let w = Rules::windows();
        assert_eq!(w.names(), NameRules::Windows);
        assert!(w.share_modes() && w.delete_pending());
        assert_eq!(
            w.check_new_name(OsStr::new("nul.txt")),
            Err(RuleError::InvalidName(NameError::Reserved("NUL")))
        );
        assert_eq!(w.check_new_name(OsStr::new("setup.py")), Ok(()));
    }

    #[test]
    fn rule_errors_become_api_kinds() {
        use venvfs_api::Error;
        assert!(matches!(
            Error::from(RuleError::SharingViolation),
            Error::SharingViolation
        ));
        assert!(matches!(
            Error::from(RuleError::DirectoryNotEmpty),
            Error::NotEmpty
        ));
        assert!(matches!(
            Error::from(RuleError::InvalidName(NameError::TrailingDot)),
            Error::InvalidName(why) if why.contains("dot")
        ));
    }

    #[test]
    fn messages_carry_the_reason() {
        let e = RuleError::from(NameError::TrailingDot);
        assert_eq!(e.to_string(), "invalid name: the name ends with a dot");
        assert!(RuleError::InvalidParameter("unknown create disposition")
            .to_string()
            .contains("unknown create disposition"));
    }
}
