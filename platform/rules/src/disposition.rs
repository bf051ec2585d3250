//! What an open does to the name it targets: the create disposition table of NtCreateFile.
//!
//! Why: on Windows one call, `NtCreateFile` (`IRP_MJ_CREATE`, Dokan's `ZwCreateFile`), both
//! opens and creates, and its `CreateDisposition` and `CreateOptions` decide between opening,
//! truncating, superseding, creating a file or creating a directory, or failing. The whole
//! table is [`decide`], one pure function, so every combination is tested on any platform.
//!
//! Sources: the `NtCreateFile` / `ZwCreateFile` documentation (dispositions `FILE_SUPERSEDE`
//! .. `FILE_OVERWRITE_IF`; `FILE_DIRECTORY_FILE` only with `FILE_CREATE`, `FILE_OPEN` or
//! `FILE_OPEN_IF`; the `IoStatusBlock.Information` values `FILE_CREATED`, `FILE_OPENED`,
//! `FILE_OVERWRITTEN`, `FILE_SUPERSEDED`), the `CreateFile` documentation (the Win32
//! dispositions, and `ERROR_ALREADY_EXISTS` after `CREATE_ALWAYS` / `OPEN_ALWAYS` found the
//! file), and MS-FSA 2.1.5.1 "Server Requests an Open of a File" for the order of the checks
//! and the status of each failure.

use super::RuleError;

/// The six NT create dispositions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// `FILE_SUPERSEDE` (0): replace an existing file by a new one, or create it.
    Supersede,
    /// `FILE_OPEN` (1): open an existing entry, fail if there is none.
    Open,
    /// `FILE_CREATE` (2): create, fail if the name exists.
    Create,
    /// `FILE_OPEN_IF` (3): open an existing entry, or create it.
    OpenIf,
    /// `FILE_OVERWRITE` (4): open and truncate an existing file, fail if there is none.
    Overwrite,
    /// `FILE_OVERWRITE_IF` (5): open and truncate an existing file, or create it.
    OverwriteIf,
}

/// Win32 `CREATE_NEW`.
pub const CREATE_NEW: u32 = 1;
/// Win32 `CREATE_ALWAYS`.
pub const CREATE_ALWAYS: u32 = 2;
/// Win32 `OPEN_EXISTING`.
pub const OPEN_EXISTING: u32 = 3;
/// Win32 `OPEN_ALWAYS`.
pub const OPEN_ALWAYS: u32 = 4;
/// Win32 `TRUNCATE_EXISTING`.
pub const TRUNCATE_EXISTING: u32 = 5;

/// NT create option `FILE_DIRECTORY_FILE`.
pub const FILE_DIRECTORY_FILE: u32 = 0x0000_0001;
/// NT create option `FILE_NON_DIRECTORY_FILE`.
pub const FILE_NON_DIRECTORY_FILE: u32 = 0x0000_0040;

impl Disposition {
    /// All six, in NT value order.
    pub const ALL: [Disposition; 6] = [
        Disposition::Supersede,
        Disposition::Open,
        Disposition::Create,
        Disposition::OpenIf,
        Disposition::Overwrite,
        Disposition::OverwriteIf,
    ];

    /// The disposition of an NT `CreateDisposition` value; others are an invalid parameter.
    pub fn from_nt(value: u32) -> Result<Disposition, RuleError> {
        usize::try_from(value)
            .ok()
            .and_then(|index| Disposition::ALL.get(index).copied())
            .ok_or(RuleError::InvalidParameter("unknown create disposition"))
    }

    /// The NT `CreateDisposition` value.
    pub fn as_nt(self) -> u32 {
        match self {
            Disposition::Supersede => 0,
            Disposition::Open => 1,
            Disposition::Create => 2,
            Disposition::OpenIf => 3,
            Disposition::Overwrite => 4,
            Disposition::OverwriteIf => 5,
        }
    }

    /// The NT disposition that `CreateFile` passes for a Win32 `dwCreationDisposition`:
    /// `CREATE_NEW` -> `FILE_CREATE`, `CREATE_ALWAYS` -> `FILE_OVERWRITE_IF`, `OPEN_EXISTING`
    /// -> `FILE_OPEN`, `OPEN_ALWAYS` -> `FILE_OPEN_IF`, `TRUNCATE_EXISTING` ->
    /// `FILE_OVERWRITE`. Other values are an invalid parameter.
    pub fn from_win32(value: u32) -> Result<Disposition, RuleError> {
        match value {
            CREATE_NEW => Ok(Disposition::Create),
            CREATE_ALWAYS => Ok(Disposition::OverwriteIf),
            OPEN_EXISTING => Ok(Disposition::Open),
            OPEN_ALWAYS => Ok(Disposition::OpenIf),
            TRUNCATE_EXISTING => Ok(Disposition::Overwrite),
            _ => Err(RuleError::InvalidParameter(
                "unknown Win32 creation disposition",
            )),
        }
    }

    /// Whether this disposition creates the entry when the name does not exist.
    pub fn creates_if_missing(self) -> bool {
        !matches!(self, Disposition::Open | Disposition::Overwrite)
    }
}

/// What already exists under the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExistingKind {
    /// A file (anything that is not a directory).
    File,
    /// A directory.
    Directory,
}

/// What the create options say about the kind of entry wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DirWish {
    /// `FILE_DIRECTORY_FILE`: the entry must be (or is created as) a directory.
    Directory,
    /// `FILE_NON_DIRECTORY_FILE`: the entry must not be a directory.
    NonDirectory,
    /// Neither: either kind is opened, and a file is created.
    Either,
}

impl DirWish {
    /// The wish expressed by NT `CreateOptions`; both flags at once are an invalid parameter.
    pub fn from_create_options(options: u32) -> Result<DirWish, RuleError> {
        let dir = options & FILE_DIRECTORY_FILE != 0;
        let non_dir = options & FILE_NON_DIRECTORY_FILE != 0;
        match (dir, non_dir) {
            (true, true) => Err(RuleError::InvalidParameter(
                "FILE_DIRECTORY_FILE together with FILE_NON_DIRECTORY_FILE",
            )),
            (true, false) => Ok(DirWish::Directory),
            (false, true) => Ok(DirWish::NonDirectory),
            (false, false) => Ok(DirWish::Either),
        }
    }
}

/// What the caller must do for an open that [`decide`] allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Open the existing entry as it is.
    Open,
    /// Open the existing file and truncate it to zero bytes: same file (identity, times of
    /// creation), with the requested attributes merged into its own.
    Overwrite,
    /// Replace the existing file by a new empty one, with the requested attributes only.
    Supersede,
    /// Create a new empty file.
    CreateFile,
    /// Create a new empty directory.
    CreateDirectory,
}

/// The `IoStatusBlock.Information` an open reports on success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Information {
    /// `FILE_SUPERSEDED` (0).
    Superseded,
    /// `FILE_OPENED` (1).
    Opened,
    /// `FILE_CREATED` (2).
    Created,
    /// `FILE_OVERWRITTEN` (3).
    Overwritten,
}

impl Information {
    /// The NT value.
    pub fn as_nt(self) -> u32 {
        match self {
            Information::Superseded => 0,
            Information::Opened => 1,
            Information::Created => 2,
            Information::Overwritten => 3,
        }
    }
}

impl Action {
    /// What to report in `IoStatusBlock.Information`.
    pub fn information(self) -> Information {
        match self {
            Action::Open => Information::Opened,
            Action::Overwrite => Information::Overwritten,
            Action::Supersede => Information::Superseded,
            Action::CreateFile | Action::CreateDirectory => Information::Created,
        }
    }

    /// Whether the entry existed before. After `CREATE_ALWAYS` or `OPEN_ALWAYS` (NT
    /// `FILE_OVERWRITE_IF` / `FILE_OPEN_IF`) Win32 then succeeds with `ERROR_ALREADY_EXISTS`,
    /// which a Dokan adapter signals by its documented convention.
    pub fn existed(self) -> bool {
        matches!(self, Action::Open | Action::Overwrite | Action::Supersede)
    }

    /// Whether the entry is created.
    pub fn creates(self) -> bool {
        !self.existed()
    }
}

/// The create disposition table: what an open with `disposition` and `wish` does when the
/// name holds `exists` (`None`: nothing).
///
/// Checks, in order:
/// 1. `FILE_DIRECTORY_FILE` with a disposition other than create, open or open-if is an
///    invalid parameter, whatever exists (the I/O manager refuses it before the file system
///    sees it).
/// 2. Nothing exists: open and overwrite fail with not-found; the others create a directory
///    if one was wished, else a file.
/// 3. Something exists and the disposition is create: name collision.
/// 4. A directory exists: a non-directory open fails with is-a-directory; open and open-if
///    open it; overwrite, overwrite-if and supersede fail with a name collision (a directory
///    is never truncated or replaced).
/// 5. A file exists: a directory open fails with not-a-directory; open and open-if open it,
///    overwrite and overwrite-if truncate it, supersede replaces it.
pub fn decide(
    disposition: Disposition,
    exists: Option<ExistingKind>,
    wish: DirWish,
) -> Result<Action, RuleError> {
    use Disposition::*;

    if wish == DirWish::Directory && !matches!(disposition, Create | Open | OpenIf) {
        return Err(RuleError::InvalidParameter(
            "FILE_DIRECTORY_FILE with a supersede or overwrite disposition",
        ));
    }
    let Some(kind) = exists else {
        return match disposition {
            Open | Overwrite => Err(RuleError::NotFound),
            Supersede | Create | OpenIf | OverwriteIf => Ok(match wish {
                DirWish::Directory => Action::CreateDirectory,
                DirWish::NonDirectory | DirWish::Either => Action::CreateFile,
            }),
        };
    };
    if disposition == Create {
        return Err(RuleError::NameCollision);
    }
    match kind {
        ExistingKind::Directory => {
            if wish == DirWish::NonDirectory {
                return Err(RuleError::IsADirectory);
            }
            match disposition {
                Open | OpenIf => Ok(Action::Open),
                Supersede | Overwrite | OverwriteIf | Create => Err(RuleError::NameCollision),
            }
        }
        ExistingKind::File => {
            if wish == DirWish::Directory {
                return Err(RuleError::NotADirectory);
            }
            match disposition {
                Open | OpenIf => Ok(Action::Open),
                Overwrite | OverwriteIf => Ok(Action::Overwrite),
                Supersede => Ok(Action::Supersede),
                Create => Err(RuleError::NameCollision),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action as A;
    use DirWish::{Directory as Dir, Either, NonDirectory as NonDir};
    use Disposition::*;
    use ExistingKind::{Directory as IsDir, File as IsFile};
    use RuleError as E;

    const INVALID: E = E::InvalidParameter("");

    /// One row of the table: disposition, what exists, wish, expected outcome.
    type Row = (
        Disposition,
        Option<ExistingKind>,
        DirWish,
        Result<Action, E>,
    );

    /// Compare errors by kind only: the reasons in InvalidParameter are prose.
    fn same(a: &Result<Action, RuleError>, b: &Result<Action, RuleError>) -> bool {
        match (a, b) {
            (Ok(x), Ok(y)) => x == y,
            (Err(x), Err(y)) => std::mem::discriminant(x) == std::mem::discriminant(y),
            _ => false,
        }
    }

    #[test]
    fn whole_table() {
        let table: [Row; 54] = [
            (Supersede, None, Dir, Err(INVALID)),
            (Supersede, None, NonDir, Ok(A::CreateFile)),
            (Supersede, None, Either, Ok(A::CreateFile)),
            (Supersede, Some(IsFile), Dir, Err(INVALID)),
            (Supersede, Some(IsFile), NonDir, Ok(A::Supersede)),
            (Supersede, Some(IsFile), Either, Ok(A::Supersede)),
            (Supersede, Some(IsDir), Dir, Err(INVALID)),
            (Supersede, Some(IsDir), NonDir, Err(E::IsADirectory)),
            (Supersede, Some(IsDir), Either, Err(E::NameCollision)),
            (Open, None, Dir, Err(E::NotFound)),
            (Open, None, NonDir, Err(E::NotFound)),
            (Open, None, Either, Err(E::NotFound)),
            (Open, Some(IsFile), Dir, Err(E::NotADirectory)),
            (Open, Some(IsFile), NonDir, Ok(A::Open)),
            (Open, Some(IsFile), Either, Ok(A::Open)),
            (Open, Some(IsDir), Dir, Ok(A::Open)),
            (Open, Some(IsDir), NonDir, Err(E::IsADirectory)),
            (Open, Some(IsDir), Either, Ok(A::Open)),
            (Create, None, Dir, Ok(A::CreateDirectory)),
            (Create, None, NonDir, Ok(A::CreateFile)),
            (Create, None, Either, Ok(A::CreateFile)),
            (Create, Some(IsFile), Dir, Err(E::NameCollision)),
            (Create, Some(IsFile), NonDir, Err(E::NameCollision)),
            (Create, Some(IsFile), Either, Err(E::NameCollision)),
            (Create, Some(IsDir), Dir, Err(E::NameCollision)),
            (Create, Some(IsDir), NonDir, Err(E::NameCollision)),
            (Create, Some(IsDir), Either, Err(E::NameCollision)),
            (OpenIf, None, Dir, Ok(A::CreateDirectory)),
            (OpenIf, None, NonDir, Ok(A::CreateFile)),
            (OpenIf, None, Either, Ok(A::CreateFile)),
            (OpenIf, Some(IsFile), Dir, Err(E::NotADirectory)),
            (OpenIf, Some(IsFile), NonDir, Ok(A::Open)),
            (OpenIf, Some(IsFile), Either, Ok(A::Open)),
            (OpenIf, Some(IsDir), Dir, Ok(A::Open)),
            (OpenIf, Some(IsDir), NonDir, Err(E::IsADirectory)),
            (OpenIf, Some(IsDir), Either, Ok(A::Open)),
            (Overwrite, None, Dir, Err(INVALID)),
            (Overwrite, None, NonDir, Err(E::NotFound)),
            (Overwrite, None, Either, Err(E::NotFound)),
            (Overwrite, Some(IsFile), Dir, Err(INVALID)),
            (Overwrite, Some(IsFile), NonDir, Ok(A::Overwrite)),
            (Overwrite, Some(IsFile), Either, Ok(A::Overwrite)),
            (Overwrite, Some(IsDir), Dir, Err(INVALID)),
            (Overwrite, Some(IsDir), NonDir, Err(E::IsADirectory)),
            (Overwrite, Some(IsDir), Either, Err(E::NameCollision)),
            (OverwriteIf, None, Dir, Err(INVALID)),
            (OverwriteIf, None, NonDir, Ok(A::CreateFile)),
            (OverwriteIf, None, Either, Ok(A::CreateFile)),
            (OverwriteIf, Some(IsFile), Dir, Err(INVALID)),
            (OverwriteIf, Some(IsFile), NonDir, Ok(A::Overwrite)),
            (OverwriteIf, Some(IsFile), Either, Ok(A::Overwrite)),
            (OverwriteIf, Some(IsDir), Dir, Err(INVALID)),
            (OverwriteIf, Some(IsDir), NonDir, Err(E::IsADirectory)),
            (OverwriteIf, Some(IsDir), Either, Err(E::NameCollision)),
        ];
        // The table is exhaustive: every combination exactly once.
        for d in Disposition::ALL {
            for e in [None, Some(IsFile), Some(IsDir)] {
                for w in [Dir, NonDir, Either] {
                    let rows = table
                        .iter()
                        .filter(|row| row.0 == d && row.1 == e && row.2 == w)
                        .count();
                    assert_eq!(rows, 1, "{d:?} {e:?} {w:?}");
                }
            }
        }
        for (d, e, w, expected) in &table {
            let got = decide(*d, *e, *w);
            assert!(
                same(&got, expected),
                "{d:?} {e:?} {w:?}: {got:?}, want {expected:?}"
            );
        }
    }

    #[test]
    fn information_and_existed() {
        assert_eq!(A::Open.information(), Information::Opened);
        assert_eq!(A::Overwrite.information(), Information::Overwritten);
        assert_eq!(A::Supersede.information(), Information::Superseded);
        assert_eq!(A::CreateFile.information(), Information::Created);
        assert_eq!(A::CreateDirectory.information(), Information::Created);
        assert_eq!(Information::Superseded.as_nt(), 0);
        assert_eq!(Information::Opened.as_nt(), 1);
        assert_eq!(Information::Created.as_nt(), 2);
        assert_eq!(Information::Overwritten.as_nt(), 3);
        for a in [A::Open, A::Overwrite, A::Supersede] {
            assert!(a.existed() && !a.creates());
        }
        for a in [A::CreateFile, A::CreateDirectory] {
            assert!(a.creates() && !a.existed());
        }
    }

    #[test]
    fn win32_always_dispositions_report_existing() {
        // CREATE_ALWAYS on an existing file: success, overwritten, "already exists".
        let create_always = Disposition::from_win32(CREATE_ALWAYS);
        assert_eq!(create_always, Ok(OverwriteIf));
        let action = decide(OverwriteIf, Some(IsFile), NonDir);
        assert_eq!(action, Ok(A::Overwrite));
        assert!(action.is_ok_and(|a| a.existed()));
        // OPEN_ALWAYS on a missing file: created, no "already exists".
        let action = decide(OpenIf, None, NonDir);
        assert!(action.is_ok_and(|a| !a.existed()));
    }

    #[test]
    fn nt_values_round_trip() {
        for (value, d) in Disposition::ALL.into_iter().enumerate() {
            let Ok(value) = u32::try_from(value) else {
                continue;
            };
            assert_eq!(Disposition::from_nt(value), Ok(d));
            assert_eq!(d.as_nt(), value);
        }
        for bad in [6, 7, 0x100, u32::MAX] {
            assert!(matches!(
                Disposition::from_nt(bad),
                Err(RuleError::InvalidParameter(_))
            ));
        }
    }

    #[test]
    fn win32_mapping() {
        assert_eq!(Disposition::from_win32(CREATE_NEW), Ok(Create));
        assert_eq!(Disposition::from_win32(CREATE_ALWAYS), Ok(OverwriteIf));
        assert_eq!(Disposition::from_win32(OPEN_EXISTING), Ok(Open));
        assert_eq!(Disposition::from_win32(OPEN_ALWAYS), Ok(OpenIf));
        assert_eq!(Disposition::from_win32(TRUNCATE_EXISTING), Ok(Overwrite));
        for bad in [0, 6, u32::MAX] {
            assert!(Disposition::from_win32(bad).is_err());
        }
        assert!(!Open.creates_if_missing());
        assert!(!Overwrite.creates_if_missing());
        assert!(Supersede.creates_if_missing() && OverwriteIf.creates_if_missing());
    }

    #[test]
    fn dir_wish_from_options() {
        assert_eq!(DirWish::from_create_options(0), Ok(Either));
        assert_eq!(DirWish::from_create_options(FILE_DIRECTORY_FILE), Ok(Dir));
        assert_eq!(
            DirWish::from_create_options(FILE_NON_DIRECTORY_FILE),
            Ok(NonDir)
        );
        // Unrelated option bits (FILE_DELETE_ON_CLOSE 0x1000) are ignored here.
        assert_eq!(
            DirWish::from_create_options(0x1000 | FILE_DIRECTORY_FILE),
            Ok(Dir)
        );
        assert!(
            DirWish::from_create_options(FILE_DIRECTORY_FILE | FILE_NON_DIRECTORY_FILE).is_err()
        );
    }
}
