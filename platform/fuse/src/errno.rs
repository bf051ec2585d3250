//! The one place where [`venvfs_api::Error`] becomes a Linux errno, and where failed
//! requests are logged.

use std::io;

use venvfs_api::Error;

/// The errno the kernel should see for `err`.
///
/// `StaleInode` maps to `ESTALE`, not `ENOENT`: the core only reports it when the kernel
/// names an inode the core no longer knows. For path-based system calls the VFS answers
/// `ESTALE` by repeating the path walk once with `LOOKUP_REVAL`, which makes FUSE revalidate
/// the cached dentries and look the name up afresh, so the caller gets the current file
/// instead of a spurious "no such file". On an open file descriptor "stale file handle" is
/// the honest answer.
pub fn errno(err: &Error) -> i32 {
    match err {
        Error::NotFound => libc::ENOENT,
        Error::Exists(_) => libc::EEXIST,
        Error::NotDir => libc::ENOTDIR,
        Error::IsDir => libc::EISDIR,
        Error::NotEmpty => libc::ENOTEMPTY,
        Error::NotPermitted(_) => libc::EPERM,
        Error::AccessDenied(_) => libc::EACCES,
        // Windows rules on a Linux mount (tests): what the C runtime on Windows reports
        // for a sharing violation and a delete-pending file.
        Error::SharingViolation | Error::DeletePending => libc::EACCES,
        Error::Invalid(_) | Error::InvalidName(_) => libc::EINVAL,
        Error::NameTooLong => libc::ENAMETOOLONG,
        Error::StaleInode(_) => libc::ESTALE,
        Error::BadHandle(_) => libc::EBADF,
        Error::NoAttr => libc::ENODATA,
        Error::Range => libc::ERANGE,
        Error::Unsupported(_) => libc::EOPNOTSUPP,
        Error::NotImplemented => libc::ENOSYS,
        Error::Corrupt { .. } => libc::EIO,
        Error::Os(e) => os_errno(e),
    }
}

/// The errno of an `io::Error`: its raw OS error when it has a valid one, else a guess
/// from its kind (errors built with `io::Error::new` carry no number), else `EIO`.
fn os_errno(e: &io::Error) -> i32 {
    if let Some(n) = e.raw_os_error().filter(|&n| n > 0) {
        return n;
    }
    match e.kind() {
        io::ErrorKind::NotFound => libc::ENOENT,
        io::ErrorKind::PermissionDenied => libc::EACCES,
        io::ErrorKind::AlreadyExists => libc::EEXIST,
        io::ErrorKind::InvalidInput => libc::EINVAL,
        io::ErrorKind::Unsupported => libc::EOPNOTSUPP,
        io::ErrorKind::OutOfMemory => libc::ENOMEM,
        _ => libc::EIO,
    }
}

/// Log a failed request. Routine misses (`ENOENT`, `ENODATA`) go to trace level, corrupt
/// layer content to error level with its message (it names the wheel and member), the
/// rest to debug level.
pub(crate) fn log_failure(op: &'static str, ino: u64, err: &Error, errno: i32) {
    match err {
        Error::Corrupt { .. } => tracing::error!(op, ino, "{err}"),
        _ if matches!(errno, libc::ENOENT | libc::ENODATA | libc::ENOSYS) => {
            tracing::trace!(op, ino, errno, "{err}")
        }
        _ => tracing::debug!(op, ino, errno, "{err}"),
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    #[test]
    fn maps_every_kind() {
        let cases = [
            (Error::NotFound, libc::ENOENT),
            (Error::Exists(OsString::from("x")), libc::EEXIST),
            (Error::NotDir, libc::ENOTDIR),
            (Error::IsDir, libc::EISDIR),
            (Error::NotEmpty, libc::ENOTEMPTY),
            (Error::NotPermitted("chown"), libc::EPERM),
            (Error::AccessDenied("write"), libc::EACCES),
            (Error::SharingViolation, libc::EACCES),
            (Error::InvalidName("nul".into()), libc::EINVAL),
            (Error::DeletePending, libc::EACCES),
            (Error::Invalid("flags"), libc::EINVAL),
            (Error::NameTooLong, libc::ENAMETOOLONG),
            (Error::StaleInode(7), libc::ESTALE),
            (Error::BadHandle(3), libc::EBADF),
            (Error::NoAttr, libc::ENODATA),
            (Error::Range, libc::ERANGE),
            (Error::Unsupported("mknod"), libc::EOPNOTSUPP),
            (
                Error::Corrupt {
                    what: "a.whl:a/b.py".into(),
                    why: "crc".into(),
                },
                libc::EIO,
            ),
        ];
        for (err, want) in cases {
            assert_eq!(errno(&err), want, "{err:?}");
        }
    }

    #[test]
    fn os_errors_keep_their_number() {
        assert_eq!(errno(&Error::os(libc::ENOSPC)), libc::ENOSPC);
        assert_eq!(errno(&Error::os(libc::EXDEV)), libc::EXDEV);
        assert_eq!(
            errno(&Error::from(io::Error::from_raw_os_error(libc::EACCES))),
            libc::EACCES
        );
    }

    #[test]
    fn os_errors_without_number() {
        let other = Error::Os(io::Error::other("boom"));
        assert_eq!(errno(&other), libc::EIO);
        let nf = Error::Os(io::Error::new(io::ErrorKind::NotFound, "gone"));
        assert_eq!(errno(&nf), libc::ENOENT);
        let data = Error::Os(io::Error::new(io::ErrorKind::InvalidData, "bad zip"));
        assert_eq!(errno(&data), libc::EIO);
        // A nonsensical raw number must not reach the kernel.
        assert_eq!(errno(&Error::os(0)), libc::EIO);
        assert_eq!(errno(&Error::os(-5)), libc::EIO);
    }
}
