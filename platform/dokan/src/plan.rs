//! What a Dokan `create_file` does, decided before anything is touched: the core's
//! disposition table picks the action, and the desired access, share mode and create
//! options become the core's [`OpenRequest`].
//!
//! Dokan passes `ZwCreateFile`'s arguments as the kernel has them: NT dispositions
//! (`FILE_OPEN`, `FILE_OVERWRITE_IF`, ...), NT create options, and a desired access in which
//! the I/O manager has already mapped generic rights to specific ones (the generic bits are
//! still honoured, for callers that pass them).

use venvfs_api::{Access, OpenRequest, ShareMode};
use venvfs_rules::disposition::FILE_DIRECTORY_FILE;
use venvfs_rules::share::{FILE_APPEND_DATA, FILE_WRITE_DATA, GENERIC_ALL, GENERIC_WRITE};
use venvfs_rules::{self as rules, Action, DirWish, Disposition, ExistingKind, Share};

use crate::ntstatus::Failure;

/// NT create option `FILE_DELETE_ON_CLOSE`.
pub const FILE_DELETE_ON_CLOSE: u32 = 0x0000_1000;
/// `FILE_ATTRIBUTE_READONLY`.
pub const FILE_ATTRIBUTE_READONLY: u32 = 0x1;

/// The arguments of one `create_file` call that decide what it does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreateRequest {
    /// `DesiredAccess` (an `ACCESS_MASK`).
    pub desired_access: u32,
    /// `FileAttributes` for a created file (`FILE_ATTRIBUTE_*`).
    pub file_attributes: u32,
    /// `ShareAccess` (`FILE_SHARE_*`).
    pub share_access: u32,
    /// `CreateDisposition` (NT value, `FILE_SUPERSEDE` .. `FILE_OVERWRITE_IF`).
    pub disposition: u32,
    /// `CreateOptions` (`FILE_DIRECTORY_FILE`, `FILE_DELETE_ON_CLOSE`, ...).
    pub options: u32,
}

/// What to do for a `create_file`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub action: Action,
    /// The core open to make (`open`, or the request `create` gets); `None` when the caller
    /// asked for nothing a core open counts (only attributes, `READ_CONTROL`,
    /// `SYNCHRONIZE`): such a handle does its I/O by inode and takes no part in sharing.
    pub open: Option<OpenRequest>,
    /// Whether the handle names a directory.
    pub is_dir: bool,
    /// Permission bits for an entry the open creates.
    pub perm: u16,
    /// The file ends up read-only (`FILE_ATTRIBUTE_READONLY` on a created, overwritten or
    /// superseded file).
    pub read_only: bool,
}

/// Decides a `create_file` on a name that holds `existing` (`None`: nothing).
pub fn plan(req: &CreateRequest, existing: Option<ExistingKind>) -> Result<Plan, Failure> {
    let disposition = Disposition::from_nt(req.disposition)?;
    let wish = DirWish::from_create_options(req.options)?;
    let share = Share::from_bits(req.share_access)?;
    let action = rules::decide(disposition, existing, wish)?;
    let is_dir = action == Action::CreateDirectory
        || (action.existed() && existing == Some(ExistingKind::Directory));
    let wanted = rules::Access::from_mask(req.desired_access);
    let truncate = matches!(action, Action::Overwrite | Action::Supersede);
    let delete_on_close = req.options & FILE_DELETE_ON_CLOSE != 0;
    let counted = wanted.is_counted() || truncate || delete_on_close;
    // A directory's "write data" right is the right to add entries, not to write it: its
    // core open reads.
    let writes = !is_dir && (wanted.write || truncate);
    let access = match (wanted.read || !writes, writes) {
        (true, true) => Access::ReadWrite,
        (false, true) => Access::Write,
        _ => Access::Read,
    };
    let writes_data = req.desired_access & (FILE_WRITE_DATA | GENERIC_WRITE | GENERIC_ALL) != 0;
    let open = counted.then_some(OpenRequest {
        access,
        truncate,
        append: !is_dir && req.desired_access & FILE_APPEND_DATA != 0 && !writes_data,
        exclusive: action == Action::CreateFile,
        share: Some(ShareMode {
            read: share.read,
            write: share.write,
            delete: share.delete,
        }),
        delete: wanted.delete,
        delete_on_close,
    });
    // (the attributes of a created, overwritten or superseded file are the caller's)
    let fresh = (!is_dir && action.creates()) || truncate;
    let read_only = fresh && req.file_attributes & FILE_ATTRIBUTE_READONLY != 0;
    let perm = match (is_dir, read_only) {
        (true, _) => 0o755,
        (false, true) => 0o444,
        (false, false) => 0o644,
    };
    Ok(Plan {
        action,
        open,
        is_dir,
        perm,
        read_only,
    })
}

/// Whether create options ask for a directory (for messages and tests).
pub fn wants_directory(options: u32) -> bool {
    options & FILE_DIRECTORY_FILE != 0
}

#[cfg(test)]
mod tests {
    use venvfs_rules::share::{
        DELETE, FILE_READ_ATTRIBUTES, FILE_READ_DATA, FILE_SHARE_READ, GENERIC_READ, SYNCHRONIZE,
    };

    use super::*;
    use crate::ntstatus::{ntstatus, STATUS_OBJECT_NAME_COLLISION, STATUS_OBJECT_NAME_NOT_FOUND};

    const FILE_OPEN: u32 = 1;
    const FILE_CREATE: u32 = 2;
    const FILE_OPEN_IF: u32 = 3;
    const FILE_OVERWRITE_IF: u32 = 5;

    fn req(access: u32, disposition: u32, options: u32) -> CreateRequest {
        CreateRequest {
            desired_access: access,
            share_access: FILE_SHARE_READ,
            disposition,
            options,
            ..CreateRequest::default()
        }
    }

    #[test]
    fn stat_opens_touch_no_share_state() {
        let p = plan(
            &req(FILE_READ_ATTRIBUTES | SYNCHRONIZE, FILE_OPEN, 0),
            Some(ExistingKind::File),
        )
        .unwrap();
        assert_eq!(p.action, Action::Open);
        assert_eq!(p.open, None);
    }

    #[test]
    fn reading_an_existing_file() {
        let p = plan(&req(GENERIC_READ, FILE_OPEN, 0), Some(ExistingKind::File)).unwrap();
        let open = p.open.unwrap();
        assert_eq!(open.access, Access::Read);
        assert!(!open.truncate && !open.exclusive && !open.append);
        assert_eq!(
            open.share,
            Some(ShareMode {
                read: true,
                write: false,
                delete: false
            })
        );
    }

    #[test]
    fn create_always_overwrites_or_creates() {
        let r = req(FILE_WRITE_DATA, FILE_OVERWRITE_IF, 0);
        let p = plan(&r, Some(ExistingKind::File)).unwrap();
        assert_eq!(p.action, Action::Overwrite);
        let open = p.open.unwrap();
        assert!(open.truncate && open.access == Access::Write);
        let p = plan(&r, None).unwrap();
        assert_eq!(p.action, Action::CreateFile);
        assert!(p.open.unwrap().exclusive && !p.open.unwrap().truncate);
        assert_eq!(p.perm, 0o644);
    }

    #[test]
    fn append_only_access_appends() {
        let p = plan(&req(FILE_APPEND_DATA, FILE_OPEN_IF, 0), None).unwrap();
        let open = p.open.unwrap();
        assert!(open.append && open.access == Access::Write);
        let p = plan(
            &req(FILE_APPEND_DATA | FILE_WRITE_DATA, FILE_OPEN_IF, 0),
            None,
        )
        .unwrap();
        assert!(!p.open.unwrap().append);
    }

    #[test]
    fn directories() {
        let p = plan(&req(FILE_READ_DATA, FILE_CREATE, FILE_DIRECTORY_FILE), None).unwrap();
        assert_eq!(p.action, Action::CreateDirectory);
        assert!(p.is_dir && p.perm == 0o755);
        // adding entries is not writing the directory's data
        let p = plan(
            &req(FILE_WRITE_DATA, FILE_OPEN, 0),
            Some(ExistingKind::Directory),
        )
        .unwrap();
        assert!(p.is_dir);
        assert_eq!(p.open.unwrap().access, Access::Read);
        assert!(wants_directory(FILE_DIRECTORY_FILE) && !wants_directory(0));
    }

    #[test]
    fn delete_access_and_delete_on_close() {
        let p = plan(
            &req(DELETE, FILE_OPEN, FILE_DELETE_ON_CLOSE),
            Some(ExistingKind::File),
        )
        .unwrap();
        let open = p.open.unwrap();
        assert!(open.delete && open.delete_on_close);
        // DELETE alone is counted, as the kernel counts it
        let p = plan(&req(DELETE, FILE_OPEN, 0), Some(ExistingKind::File)).unwrap();
        assert!(p.open.is_some_and(|o| o.delete && !o.delete_on_close));
    }

    #[test]
    fn read_only_attribute_on_creation() {
        let mut r = req(FILE_WRITE_DATA, FILE_CREATE, 0);
        r.file_attributes = FILE_ATTRIBUTE_READONLY;
        let p = plan(&r, None).unwrap();
        assert!(p.read_only && p.perm == 0o444);
        // opening an existing file leaves its attributes alone
        let mut r = req(FILE_READ_DATA, FILE_OPEN_IF, 0);
        r.file_attributes = FILE_ATTRIBUTE_READONLY;
        assert!(!plan(&r, Some(ExistingKind::File)).unwrap().read_only);
    }

    #[test]
    fn table_failures_become_statuses() {
        let e = plan(&req(FILE_READ_DATA, FILE_OPEN, 0), None).unwrap_err();
        assert_eq!(ntstatus(&e), STATUS_OBJECT_NAME_NOT_FOUND);
        let e = plan(
            &req(FILE_READ_DATA, FILE_CREATE, 0),
            Some(ExistingKind::File),
        )
        .unwrap_err();
        assert_eq!(ntstatus(&e), STATUS_OBJECT_NAME_COLLISION);
        assert!(plan(&req(0, 9, 0), None).is_err(), "unknown disposition");
        let mut bad_share = req(0, FILE_OPEN, 0);
        bad_share.share_access = 0x80;
        assert!(plan(&bad_share, Some(ExistingKind::File)).is_err());
    }
}
