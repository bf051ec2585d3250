//! The one place where the core's error kinds become NTSTATUS values, and where failed
//! requests are logged.
//!
//! The values are Windows's own (`ntstatus.h`), spelled here so that the table compiles and
//! is tested on every platform; the Dokan glue hands them to Dokan as they are.

use std::io;

use venvfs_api::Error;
use venvfs_rules::RuleError;

/// An NTSTATUS value (`winapi::shared::ntdef::NTSTATUS` is an `i32` too).
pub type NtStatus = i32;

// (`as i32`: NTSTATUS error values have the top bit set; they are written in hex as
// Windows documents them.)
pub const STATUS_SUCCESS: NtStatus = 0;
pub const STATUS_BUFFER_OVERFLOW: NtStatus = 0x8000_0005_u32 as i32;
pub const STATUS_NOT_IMPLEMENTED: NtStatus = 0xC000_0002_u32 as i32;
pub const STATUS_INVALID_HANDLE: NtStatus = 0xC000_0008_u32 as i32;
pub const STATUS_INVALID_PARAMETER: NtStatus = 0xC000_000D_u32 as i32;
pub const STATUS_ACCESS_DENIED: NtStatus = 0xC000_0022_u32 as i32;
pub const STATUS_BUFFER_TOO_SMALL: NtStatus = 0xC000_0023_u32 as i32;
pub const STATUS_OBJECT_NAME_INVALID: NtStatus = 0xC000_0033_u32 as i32;
pub const STATUS_OBJECT_NAME_NOT_FOUND: NtStatus = 0xC000_0034_u32 as i32;
pub const STATUS_OBJECT_NAME_COLLISION: NtStatus = 0xC000_0035_u32 as i32;
pub const STATUS_OBJECT_PATH_NOT_FOUND: NtStatus = 0xC000_003A_u32 as i32;
pub const STATUS_SHARING_VIOLATION: NtStatus = 0xC000_0043_u32 as i32;
pub const STATUS_NO_EAS_ON_FILE: NtStatus = 0xC000_0052_u32 as i32;
pub const STATUS_DELETE_PENDING: NtStatus = 0xC000_0056_u32 as i32;
pub const STATUS_DISK_FULL: NtStatus = 0xC000_007F_u32 as i32;
pub const STATUS_INSUFFICIENT_RESOURCES: NtStatus = 0xC000_009A_u32 as i32;
pub const STATUS_FILE_IS_A_DIRECTORY: NtStatus = 0xC000_00BA_u32 as i32;
pub const STATUS_NOT_SUPPORTED: NtStatus = 0xC000_00BB_u32 as i32;
pub const STATUS_UNEXPECTED_IO_ERROR: NtStatus = 0xC000_00E9_u32 as i32;
pub const STATUS_DIRECTORY_NOT_EMPTY: NtStatus = 0xC000_0101_u32 as i32;
pub const STATUS_FILE_CORRUPT_ERROR: NtStatus = 0xC000_0102_u32 as i32;
pub const STATUS_NOT_A_DIRECTORY: NtStatus = 0xC000_0103_u32 as i32;
pub const STATUS_NAME_TOO_LONG: NtStatus = 0xC000_0106_u32 as i32;
pub const STATUS_FILE_DELETED: NtStatus = 0xC000_0123_u32 as i32;

/// Why a request failed: a core error, or something only the adapter sees (it walks Dokan's
/// paths itself).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Core(#[from] Error),
    /// A directory on the way to the name is missing, or is not a directory
    /// (`STATUS_OBJECT_PATH_NOT_FOUND`, Win32 `ERROR_PATH_NOT_FOUND`).
    #[error("a directory on the path is missing")]
    PathNotFound,
    /// The path is not valid UTF-16, or names a stream (`STATUS_OBJECT_NAME_INVALID`).
    #[error("invalid path: {0}")]
    InvalidPath(&'static str),
}

impl From<RuleError> for Failure {
    fn from(e: RuleError) -> Failure {
        Failure::Core(e.into())
    }
}

/// The NTSTATUS Windows should see for `failure`.
pub fn ntstatus(failure: &Failure) -> NtStatus {
    match failure {
        Failure::Core(e) => core_status(e),
        Failure::PathNotFound => STATUS_OBJECT_PATH_NOT_FOUND,
        Failure::InvalidPath(_) => STATUS_OBJECT_NAME_INVALID,
    }
}

fn core_status(err: &Error) -> NtStatus {
    match err {
        Error::NotFound => STATUS_OBJECT_NAME_NOT_FOUND,
        Error::Exists(_) => STATUS_OBJECT_NAME_COLLISION,
        Error::NotDir => STATUS_NOT_A_DIRECTORY,
        Error::IsDir => STATUS_FILE_IS_A_DIRECTORY,
        Error::NotEmpty => STATUS_DIRECTORY_NOT_EMPTY,
        Error::NotPermitted(_) | Error::AccessDenied(_) => STATUS_ACCESS_DENIED,
        Error::SharingViolation => STATUS_SHARING_VIOLATION,
        Error::DeletePending => STATUS_DELETE_PENDING,
        Error::Invalid(_) => STATUS_INVALID_PARAMETER,
        Error::NameTooLong => STATUS_NAME_TOO_LONG,
        Error::InvalidName(_) => STATUS_OBJECT_NAME_INVALID,
        // an inode the core no longer knows: the file went while this handle was open
        Error::StaleInode(_) => STATUS_FILE_DELETED,
        Error::BadHandle(_) => STATUS_INVALID_HANDLE,
        Error::NoAttr => STATUS_NO_EAS_ON_FILE,
        Error::Range => STATUS_BUFFER_TOO_SMALL,
        Error::Unsupported(_) => STATUS_NOT_SUPPORTED,
        Error::NotImplemented => STATUS_NOT_IMPLEMENTED,
        Error::Corrupt { .. } => STATUS_FILE_CORRUPT_ERROR,
        Error::Os(e) => os_status(e),
    }
}

/// The status of an I/O error from the upper layer: by its Win32 error code where it has
/// one (on Windows), else by its kind.
fn os_status(e: &io::Error) -> NtStatus {
    if cfg!(windows) {
        if let Some(status) = e.raw_os_error().and_then(win32_status) {
            return status;
        }
    }
    match e.kind() {
        io::ErrorKind::NotFound => STATUS_OBJECT_NAME_NOT_FOUND,
        io::ErrorKind::PermissionDenied => STATUS_ACCESS_DENIED,
        io::ErrorKind::AlreadyExists => STATUS_OBJECT_NAME_COLLISION,
        io::ErrorKind::InvalidInput => STATUS_INVALID_PARAMETER,
        io::ErrorKind::DirectoryNotEmpty => STATUS_DIRECTORY_NOT_EMPTY,
        io::ErrorKind::IsADirectory => STATUS_FILE_IS_A_DIRECTORY,
        io::ErrorKind::NotADirectory => STATUS_NOT_A_DIRECTORY,
        io::ErrorKind::StorageFull => STATUS_DISK_FULL,
        io::ErrorKind::Unsupported => STATUS_NOT_SUPPORTED,
        io::ErrorKind::OutOfMemory => STATUS_INSUFFICIENT_RESOURCES,
        _ => STATUS_UNEXPECTED_IO_ERROR,
    }
}

/// The Win32 errors the upper layer's file operations report that `io::ErrorKind` does
/// not tell apart (a sharing violation is just "uncategorized" to std).
fn win32_status(code: i32) -> Option<NtStatus> {
    Some(match code {
        2 => STATUS_OBJECT_NAME_NOT_FOUND,        // ERROR_FILE_NOT_FOUND
        3 => STATUS_OBJECT_PATH_NOT_FOUND,        // ERROR_PATH_NOT_FOUND
        5 => STATUS_ACCESS_DENIED,                // ERROR_ACCESS_DENIED
        32 => STATUS_SHARING_VIOLATION,           // ERROR_SHARING_VIOLATION
        80 | 183 => STATUS_OBJECT_NAME_COLLISION, // ERROR_FILE_EXISTS, ERROR_ALREADY_EXISTS
        112 => STATUS_DISK_FULL,                  // ERROR_DISK_FULL
        145 => STATUS_DIRECTORY_NOT_EMPTY,        // ERROR_DIR_NOT_EMPTY
        206 => STATUS_NAME_TOO_LONG,              // ERROR_FILENAME_EXCED_RANGE
        303 => STATUS_DELETE_PENDING,             // ERROR_DELETE_PENDING
        _ => return None,
    })
}

/// Logs a failed request: routine misses at trace level, corrupt layer content at error
/// level (its message names the wheel and member), the rest at debug level.
pub fn log_failure(op: &'static str, path: &str, failure: &Failure, status: NtStatus) {
    let status = status as u32;
    match failure {
        Failure::Core(Error::Corrupt { .. }) => tracing::error!(op, path, "{failure}"),
        Failure::Core(Error::NotFound | Error::NotImplemented) | Failure::PathNotFound => {
            tracing::trace!(op, path, status, "{failure}")
        }
        _ => tracing::debug!(op, path, status, "{failure}"),
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    #[test]
    fn maps_every_kind() {
        let cases = [
            (Error::NotFound, STATUS_OBJECT_NAME_NOT_FOUND),
            (
                Error::Exists(OsString::from("x")),
                STATUS_OBJECT_NAME_COLLISION,
            ),
            (Error::NotDir, STATUS_NOT_A_DIRECTORY),
            (Error::IsDir, STATUS_FILE_IS_A_DIRECTORY),
            (Error::NotEmpty, STATUS_DIRECTORY_NOT_EMPTY),
            (Error::NotPermitted("x"), STATUS_ACCESS_DENIED),
            (Error::AccessDenied("x"), STATUS_ACCESS_DENIED),
            (Error::SharingViolation, STATUS_SHARING_VIOLATION),
            (Error::DeletePending, STATUS_DELETE_PENDING),
            (Error::Invalid("x"), STATUS_INVALID_PARAMETER),
            (Error::NameTooLong, STATUS_NAME_TOO_LONG),
            (Error::InvalidName("CON".into()), STATUS_OBJECT_NAME_INVALID),
            (Error::StaleInode(7), STATUS_FILE_DELETED),
            (Error::BadHandle(7), STATUS_INVALID_HANDLE),
            (Error::NoAttr, STATUS_NO_EAS_ON_FILE),
            (Error::Range, STATUS_BUFFER_TOO_SMALL),
            (Error::Unsupported("x"), STATUS_NOT_SUPPORTED),
            (Error::NotImplemented, STATUS_NOT_IMPLEMENTED),
            (
                Error::Corrupt {
                    what: "w".into(),
                    why: "y".into(),
                },
                STATUS_FILE_CORRUPT_ERROR,
            ),
            (
                Error::Os(io::Error::from(io::ErrorKind::StorageFull)),
                STATUS_DISK_FULL,
            ),
            (
                Error::Os(io::Error::other("anything else")),
                STATUS_UNEXPECTED_IO_ERROR,
            ),
        ];
        for (err, status) in cases {
            assert_eq!(ntstatus(&Failure::Core(err)), status);
        }
        assert_eq!(
            ntstatus(&Failure::PathNotFound),
            STATUS_OBJECT_PATH_NOT_FOUND
        );
        assert_eq!(
            ntstatus(&Failure::InvalidPath("stream")),
            STATUS_OBJECT_NAME_INVALID
        );
    }

    #[test]
    fn rule_errors_get_their_documented_status() {
        use venvfs_rules::NameError;
        let cases = [
            (RuleError::SharingViolation, STATUS_SHARING_VIOLATION),
            (RuleError::DeletePending, STATUS_DELETE_PENDING),
            (RuleError::NameCollision, STATUS_OBJECT_NAME_COLLISION),
            (RuleError::NotFound, STATUS_OBJECT_NAME_NOT_FOUND),
            (RuleError::IsADirectory, STATUS_FILE_IS_A_DIRECTORY),
            (RuleError::NotADirectory, STATUS_NOT_A_DIRECTORY),
            (RuleError::InvalidParameter("x"), STATUS_INVALID_PARAMETER),
            (RuleError::DirectoryNotEmpty, STATUS_DIRECTORY_NOT_EMPTY),
            (
                RuleError::InvalidName(NameError::TrailingDot),
                STATUS_OBJECT_NAME_INVALID,
            ),
            // (STATUS_CANNOT_DELETE reaches Win32 callers as ERROR_ACCESS_DENIED too)
            (RuleError::CannotDelete, STATUS_ACCESS_DENIED),
        ];
        for (err, status) in cases {
            assert_eq!(ntstatus(&Failure::from(err.clone())), status, "{err:?}");
        }
    }

    #[test]
    fn win32_codes_std_does_not_tell_apart() {
        assert_eq!(win32_status(32), Some(STATUS_SHARING_VIOLATION));
        assert_eq!(win32_status(303), Some(STATUS_DELETE_PENDING));
        assert_eq!(win32_status(3), Some(STATUS_OBJECT_PATH_NOT_FOUND));
        assert_eq!(win32_status(9999), None);
    }

    #[test]
    fn values_are_windows_own() {
        // spot checks against ntstatus.h
        assert_eq!(STATUS_OBJECT_NAME_NOT_FOUND as u32, 0xC000_0034);
        assert_eq!(STATUS_SHARING_VIOLATION as u32, 0xC000_0043);
        assert_eq!(STATUS_BUFFER_OVERFLOW as u32, 0x8000_0005);
    }
}
