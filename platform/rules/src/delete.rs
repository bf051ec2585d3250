//! Deletion on Windows: delete-on-close and delete-pending.
//!
//! Why: Windows does not unlink a name while it is open. A program asks for deletion on an
//! open handle, and the file goes away when its last handle is closed (at `IRP_MJ_CLEANUP`,
//! Dokan's `Cleanup`). In between, the file is "delete pending": it still has its name, but
//! new opens fail with `STATUS_DELETE_PENDING`. Python's `os.remove` and `tempfile` work
//! this way on Windows, so a mount must keep this state per file.
//!
//! Two ways ask for deletion (NtCreateFile / CreateFile and `FILE_DISPOSITION_INFORMATION`
//! documentation, MS-FSA 2.1.5.4 "Server Requests Closing an Open" and 2.1.5.14.3
//! "FileDispositionInformation"):
//! - the create option `FILE_DELETE_ON_CLOSE` (Win32 `FILE_FLAG_DELETE_ON_CLOSE`) on one open:
//!   when that handle is cleaned up the file becomes delete pending, and this cannot be
//!   undone (setting `DeleteFile` to FALSE "has no effect if the handle was opened with
//!   FILE_FLAG_DELETE_ON_CLOSE"). Until then other opens still succeed (if they share
//!   delete, which the share rules check);
//! - `SetFileInformationByHandle(FileDispositionInfo, DeleteFile = TRUE)`: the file is delete
//!   pending at once; `DeleteFile = FALSE` on a handle clears it again.
//!
//! Either way a file with `FILE_ATTRIBUTE_READONLY` cannot be marked (`STATUS_CANNOT_DELETE`)
//! and a directory that is not empty cannot be marked (`STATUS_DIRECTORY_NOT_EMPTY`).

use std::collections::BTreeMap;

use super::RuleError;

/// NT create option `FILE_DELETE_ON_CLOSE`.
pub const FILE_DELETE_ON_CLOSE: u32 = 0x0000_1000;
/// `FILE_ATTRIBUTE_READONLY`.
pub const FILE_ATTRIBUTE_READONLY: u32 = 0x0000_0001;

/// A handle (open) of the file, as the caller numbers them.
pub type HandleId = u64;

/// What the caller knows about the file when it is to be marked for deletion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeleteTarget {
    /// The file has `FILE_ATTRIBUTE_READONLY`.
    pub read_only: bool,
    /// `Some(empty)` for a directory, `None` for a file.
    pub directory_empty: Option<bool>,
}

impl DeleteTarget {
    /// A file that is not read-only.
    pub const FILE: DeleteTarget = DeleteTarget {
        read_only: false,
        directory_empty: None,
    };
}

/// Whether a file may be marked for deletion: not when it is read-only.
pub fn check_not_read_only(read_only: bool) -> Result<(), RuleError> {
    if read_only {
        Err(RuleError::CannotDelete)
    } else {
        Ok(())
    }
}

/// Whether a directory may be marked for deletion: only when it is empty. The caller
/// checks emptiness (in the merged view) and passes the answer.
pub fn check_directory_empty(is_empty: bool) -> Result<(), RuleError> {
    if is_empty {
        Ok(())
    } else {
        Err(RuleError::DirectoryNotEmpty)
    }
}

/// Both checks for `target`: read-only first, then emptiness.
pub fn check_deletable(target: DeleteTarget) -> Result<(), RuleError> {
    check_not_read_only(target.read_only)?;
    match target.directory_empty {
        Some(empty) => check_directory_empty(empty),
        None => Ok(()),
    }
}

/// What to do when a handle is cleaned up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanupAction {
    /// Leave the file.
    Keep,
    /// That was the last handle of a delete-pending file: delete it now (a directory only if
    /// it is still empty; the caller checks).
    Delete,
}

/// The deletion state of one file and its open handles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteState {
    /// Open handles, and whether each was opened with `FILE_DELETE_ON_CLOSE`.
    handles: BTreeMap<HandleId, bool>,
    /// Marked through `FileDispositionInformation`; can be cleared.
    disposition: bool,
    /// A delete-on-close handle was cleaned up; cannot be cleared.
    closed_delete_on_close: bool,
}

impl DeleteState {
    /// A file with no handles and no deletion asked.
    pub fn new() -> DeleteState {
        DeleteState::default()
    }

    /// Whether the file is delete pending (new opens fail).
    pub fn is_delete_pending(&self) -> bool {
        self.disposition || self.closed_delete_on_close
    }

    /// Whether a new open may proceed: not while the file is delete pending.
    pub fn check_open(&self) -> Result<(), RuleError> {
        if self.is_delete_pending() {
            Err(RuleError::DeletePending)
        } else {
            Ok(())
        }
    }

    /// Record a new open `handle`. With `delete_on_close`, the file must be deletable
    /// (`target`). Fails while the file is delete pending. Reusing the id of an open handle
    /// replaces its record.
    pub fn open(
        &mut self,
        handle: HandleId,
        delete_on_close: bool,
        target: DeleteTarget,
    ) -> Result<(), RuleError> {
        self.check_open()?;
        if delete_on_close {
            check_deletable(target)?;
        }
        self.handles.insert(handle, delete_on_close);
        Ok(())
    }

    /// `FileDispositionInformation` through `handle`: `delete` marks the file delete pending
    /// (if `target` is deletable), `!delete` clears a mark set this way. Through a handle
    /// opened with delete-on-close, clearing has no effect. An unknown handle is an invalid
    /// parameter.
    pub fn set_disposition(
        &mut self,
        handle: HandleId,
        delete: bool,
        target: DeleteTarget,
    ) -> Result<(), RuleError> {
        let Some(&delete_on_close) = self.handles.get(&handle) else {
            return Err(RuleError::InvalidParameter("unknown handle"));
        };
        if delete {
            check_deletable(target)?;
            self.disposition = true;
        } else if !delete_on_close {
            self.disposition = false;
        }
        Ok(())
    }

    /// `handle` is cleaned up (its last user closed it). Returns whether the file must now
    /// be deleted: when this was its last handle and it is delete pending. A delete-on-close
    /// handle makes the file delete pending as it goes. An unknown handle changes nothing.
    pub fn on_cleanup(&mut self, handle: HandleId) -> CleanupAction {
        let Some(delete_on_close) = self.handles.remove(&handle) else {
            return CleanupAction::Keep;
        };
        if delete_on_close {
            self.closed_delete_on_close = true;
        }
        if self.handles.is_empty() && self.is_delete_pending() {
            // The file is gone; a new file of the same name starts afresh.
            *self = DeleteState::new();
            CleanupAction::Delete
        } else {
            CleanupAction::Keep
        }
    }

    /// An open that was recorded and then failed (before the caller had the handle):
    /// forgets it without what a cleanup would do.
    pub fn abandon(&mut self, handle: HandleId) {
        self.handles.remove(&handle);
    }

    /// How many handles are open.
    pub fn handle_count(&self) -> usize {
        self.handles.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: DeleteTarget = DeleteTarget::FILE;
    const READ_ONLY: DeleteTarget = DeleteTarget {
        read_only: true,
        directory_empty: None,
    };
    const EMPTY_DIR: DeleteTarget = DeleteTarget {
        read_only: false,
        directory_empty: Some(true),
    };
    const FULL_DIR: DeleteTarget = DeleteTarget {
        read_only: false,
        directory_empty: Some(false),
    };

    #[test]
    fn checks() {
        assert_eq!(check_not_read_only(false), Ok(()));
        assert_eq!(check_not_read_only(true), Err(RuleError::CannotDelete));
        assert_eq!(check_directory_empty(true), Ok(()));
        assert_eq!(
            check_directory_empty(false),
            Err(RuleError::DirectoryNotEmpty)
        );
        assert_eq!(check_deletable(FILE), Ok(()));
        assert_eq!(check_deletable(EMPTY_DIR), Ok(()));
        assert_eq!(check_deletable(FULL_DIR), Err(RuleError::DirectoryNotEmpty));
        assert_eq!(check_deletable(READ_ONLY), Err(RuleError::CannotDelete));
        let read_only_full_dir = DeleteTarget {
            read_only: true,
            directory_empty: Some(false),
        };
        assert_eq!(
            check_deletable(read_only_full_dir),
            Err(RuleError::CannotDelete)
        );
    }

    #[test]
    fn plain_open_and_close_keeps() {
        let mut s = DeleteState::new();
        assert_eq!(s.open(1, false, FILE), Ok(()));
        assert!(!s.is_delete_pending());
        assert_eq!(s.on_cleanup(1), CleanupAction::Keep);
        assert_eq!(s.handle_count(), 0);
    }

    #[test]
    fn delete_on_close_single_handle() {
        let mut s = DeleteState::new();
        assert_eq!(s.open(1, true, FILE), Ok(()));
        // Not pending until the handle goes.
        assert!(!s.is_delete_pending());
        assert_eq!(s.on_cleanup(1), CleanupAction::Delete);
        assert_eq!(s, DeleteState::new());
    }

    #[test]
    fn delete_on_close_refused_for_read_only_and_full_directory() {
        let mut s = DeleteState::new();
        assert_eq!(s.open(1, true, READ_ONLY), Err(RuleError::CannotDelete));
        assert_eq!(s.open(1, true, FULL_DIR), Err(RuleError::DirectoryNotEmpty));
        assert_eq!(s.handle_count(), 0);
        assert_eq!(s.open(1, true, EMPTY_DIR), Ok(()));
        // Without delete-on-close a read-only file opens fine.
        assert_eq!(DeleteState::new().open(1, false, READ_ONLY), Ok(()));
    }

    #[test]
    fn disposition_marks_and_blocks_new_opens() {
        let mut s = DeleteState::new();
        assert_eq!(s.open(1, false, FILE), Ok(()));
        assert_eq!(s.set_disposition(1, true, FILE), Ok(()));
        assert!(s.is_delete_pending());
        assert_eq!(s.check_open(), Err(RuleError::DeletePending));
        assert_eq!(s.open(2, false, FILE), Err(RuleError::DeletePending));
        assert_eq!(s.on_cleanup(1), CleanupAction::Delete);
    }

    #[test]
    fn disposition_can_be_cleared() {
        let mut s = DeleteState::new();
        assert_eq!(s.open(1, false, FILE), Ok(()));
        assert_eq!(s.open(2, false, FILE), Ok(()));
        assert_eq!(s.set_disposition(1, true, FILE), Ok(()));
        // Any handle may clear it.
        assert_eq!(s.set_disposition(2, false, FILE), Ok(()));
        assert!(!s.is_delete_pending());
        assert_eq!(s.open(3, false, FILE), Ok(()));
        assert_eq!(s.on_cleanup(1), CleanupAction::Keep);
        assert_eq!(s.on_cleanup(2), CleanupAction::Keep);
        assert_eq!(s.on_cleanup(3), CleanupAction::Keep);
    }

    #[test]
    fn disposition_refused_for_read_only_and_full_directory() {
        let mut s = DeleteState::new();
        assert_eq!(s.open(1, false, FILE), Ok(()));
        assert_eq!(
            s.set_disposition(1, true, READ_ONLY),
            Err(RuleError::CannotDelete)
        );
        assert_eq!(
            s.set_disposition(1, true, FULL_DIR),
            Err(RuleError::DirectoryNotEmpty)
        );
        assert!(!s.is_delete_pending());
        // Clearing needs no check.
        assert_eq!(s.set_disposition(1, false, READ_ONLY), Ok(()));
    }

    #[test]
    fn disposition_through_unknown_handle() {
        let mut s = DeleteState::new();
        assert!(matches!(
            s.set_disposition(7, true, FILE),
            Err(RuleError::InvalidParameter(_))
        ));
        assert!(!s.is_delete_pending());
        assert_eq!(s.on_cleanup(7), CleanupAction::Keep);
    }

    #[test]
    fn clearing_does_not_cancel_delete_on_close() {
        let mut s = DeleteState::new();
        assert_eq!(s.open(1, true, FILE), Ok(()));
        assert_eq!(s.set_disposition(1, false, FILE), Ok(()));
        assert_eq!(s.on_cleanup(1), CleanupAction::Delete);

        // Nor can another handle clear it once the delete-on-close handle is gone.
        let mut s = DeleteState::new();
        assert_eq!(s.open(1, true, FILE), Ok(()));
        assert_eq!(s.open(2, false, FILE), Ok(()));
        assert_eq!(s.on_cleanup(1), CleanupAction::Keep);
        assert_eq!(s.set_disposition(2, false, FILE), Ok(()));
        assert!(s.is_delete_pending());
        assert_eq!(s.on_cleanup(2), CleanupAction::Delete);
    }

    #[test]
    fn two_handles_delete_on_close_closed_first() {
        let mut s = DeleteState::new();
        assert_eq!(s.open(1, true, FILE), Ok(()));
        assert_eq!(s.open(2, false, FILE), Ok(()));
        assert_eq!(s.on_cleanup(1), CleanupAction::Keep);
        // Now pending: the file lives on for handle 2, but nobody new may open it.
        assert!(s.is_delete_pending());
        assert_eq!(s.open(3, false, FILE), Err(RuleError::DeletePending));
        assert_eq!(s.on_cleanup(2), CleanupAction::Delete);
    }

    #[test]
    fn two_handles_delete_on_close_closed_last() {
        let mut s = DeleteState::new();
        assert_eq!(s.open(1, true, FILE), Ok(()));
        assert_eq!(s.open(2, false, FILE), Ok(()));
        assert_eq!(s.on_cleanup(2), CleanupAction::Keep);
        assert!(!s.is_delete_pending());
        // Still openable while the delete-on-close handle is open.
        assert_eq!(s.open(3, false, FILE), Ok(()));
        assert_eq!(s.on_cleanup(3), CleanupAction::Keep);
        assert_eq!(s.on_cleanup(1), CleanupAction::Delete);
    }

    #[test]
    fn state_resets_after_delete() {
        let mut s = DeleteState::new();
        assert_eq!(s.open(1, false, FILE), Ok(()));
        assert_eq!(s.set_disposition(1, true, FILE), Ok(()));
        assert_eq!(s.on_cleanup(1), CleanupAction::Delete);
        // A new file under the same name (same state slot) is not pending.
        assert_eq!(s.open(1, false, FILE), Ok(()));
        assert_eq!(s.on_cleanup(1), CleanupAction::Keep);
    }

    #[test]
    fn cleanup_twice_is_harmless() {
        let mut s = DeleteState::new();
        assert_eq!(s.open(1, false, FILE), Ok(()));
        assert_eq!(s.open(2, false, FILE), Ok(()));
        assert_eq!(s.set_disposition(2, true, FILE), Ok(()));
        assert_eq!(s.on_cleanup(1), CleanupAction::Keep);
        assert_eq!(s.on_cleanup(1), CleanupAction::Keep);
        assert_eq!(s.on_cleanup(2), CleanupAction::Delete);
        assert_eq!(s.on_cleanup(2), CleanupAction::Keep);
    }
}
