//! The operations a test case runs, what each one answers, and how they are generated.
//!
//! Ops name paths from a small fixed pool, so that generated sequences keep meeting each
//! other's results: creating over an existing name, renaming onto a directory just made,
//! removing a directory that just gained a file.

use std::collections::BTreeSet;

use proptest::prelude::*;

/// Every path an op can name (relative to the venv root). All sit below `lib/`, where the
/// lower layers are mapped; the two-level ones let directories hold directories, and the
/// three-level ones let a renamed directory take its content somewhere new.
pub const PATHS: [&str; 14] = [
    "lib/a",
    "lib/b",
    "lib/c",
    "lib/d",
    "lib/e",
    "lib/d/a",
    "lib/d/b",
    "lib/d/c",
    "lib/d/e",
    "lib/e/a",
    "lib/e/b",
    "lib/e/d",
    "lib/d/e/a",
    "lib/e/d/a",
];

/// The pool of a run under Windows rules: the POSIX pool, other spellings of its names (so
/// that sequences meet case clashes: a create of `lib/A` beside `lib/a`, a rename of
/// `lib/d` to `lib/D`, a path through `lib/D` that finds `lib/d`), and two names Windows
/// refuses (a DOS device name, a trailing dot).
pub const WINDOWS_PATHS: [&str; 24] = [
    "lib/a",
    "lib/b",
    "lib/c",
    "lib/d",
    "lib/e",
    "lib/d/a",
    "lib/d/b",
    "lib/d/c",
    "lib/d/e",
    "lib/e/a",
    "lib/e/b",
    "lib/e/d",
    "lib/d/e/a",
    "lib/e/d/a",
    "lib/A",
    "lib/B",
    "lib/D",
    "lib/E",
    "lib/D/b",
    "lib/d/A",
    "lib/e/D",
    "lib/E/D/a",
    "lib/Aux",
    "lib/e/b.",
];

/// Symlink targets. None of them resolves: the pool has no name `nowhere`, so every link
/// dangles, and following one (as the kernel does for an open, or for a link met in the
/// middle of a path) always ends in "not found". That keeps symlink resolution out of the
/// model while still checking that links are made, listed, read back and moved.
pub const TARGETS: [&str; 3] = ["nowhere", "../nowhere", "/nonexistent/venvfs-model"];

/// Open file slots: an op opens into a slot, later ops read, write or close through it.
pub const SLOTS: usize = 2;

/// How an `Open` op opens its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

impl Access {
    pub fn reads(self) -> bool {
        self != Access::Write
    }
    pub fn writes(self) -> bool {
        self != Access::Read
    }
}

/// A Windows share mode: what other opens may do while this one lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    pub read: bool,
    pub write: bool,
    pub delete: bool,
}

impl Share {
    pub const ALL: Share = Share {
        read: true,
        write: true,
        delete: true,
    };
}

#[derive(Clone, Debug)]
pub enum Op {
    /// `open(O_CREAT | O_EXCL)`, closed again.
    Create {
        path: &'static str,
        mode: u32,
    },
    /// Open for writing, write `data` at `offset`, close. With `by_inode` the file is never
    /// opened: the write names the inode only, as when the kernel skips opens.
    Write {
        path: &'static str,
        offset: u64,
        data: Vec<u8>,
        by_inode: bool,
    },
    /// The whole content of a file (opened and closed, or by inode as for `Write`).
    Read {
        path: &'static str,
        by_inode: bool,
    },
    /// `truncate(path, size)`.
    Truncate {
        path: &'static str,
        size: u64,
    },
    /// `chmod(path, mode)`.
    Chmod {
        path: &'static str,
        mode: u32,
    },
    /// `rename(from, to)`, or `renameat2(RENAME_NOREPLACE)`.
    Rename {
        from: &'static str,
        to: &'static str,
        noreplace: bool,
    },
    Unlink {
        path: &'static str,
    },
    Mkdir {
        path: &'static str,
        mode: u32,
    },
    Rmdir {
        path: &'static str,
    },
    /// A hard link `to` naming the same file as `from`.
    Link {
        from: &'static str,
        to: &'static str,
    },
    Symlink {
        target: &'static str,
        path: &'static str,
    },
    Readlink {
        path: &'static str,
    },
    /// `lstat`: kind, size, permission bits, link count.
    Stat {
        path: &'static str,
    },
    /// The names in a directory.
    List {
        path: &'static str,
    },
    /// Opens `path` into `slot`; if that works, what the slot held is closed. The last three
    /// fields are generated under Windows rules only: the share mode (`None`: none given,
    /// as every POSIX open; the core then shares everything), whether the open asks for the
    /// right to delete, and whether the file is deleted when this handle is closed.
    Open {
        slot: usize,
        path: &'static str,
        access: Access,
        truncate: bool,
        share: Option<Share>,
        delete: bool,
        delete_on_close: bool,
    },
    /// The whole content of the file open in `slot`, read through its handle.
    ReadOpen {
        slot: usize,
    },
    WriteOpen {
        slot: usize,
        offset: u64,
        data: Vec<u8>,
    },
    Close {
        slot: usize,
    },
    /// Windows rules: marks the file open in `slot` for deletion at its last close
    /// (`FileDispositionInformation`), or clears the mark.
    SetDeletePending {
        slot: usize,
        delete: bool,
    },
    /// `utimensat(path, [t, t])` (Windows: `SetFileTime`): the access and modification
    /// times of what `path` leads to become `TIMES[time]`; with `crtime`, the creation time
    /// is given too, as Windows gives it (the core keeps no creation time it is given, so
    /// nothing compares it). Only the modification time is compared (reads move the access
    /// time as the filesystem's `relatime` likes).
    SetTimes {
        path: &'static str,
        time: usize,
        crtime: bool,
    },
    /// `fsync` (Windows: `FlushFileBuffers`) through the handle in `slot`: succeeds and
    /// changes nothing visible.
    Fsync {
        slot: usize,
    },
    /// `fstat` (Windows: `GetFileInformationByHandle`) of the handle in `slot`.
    StatOpen {
        slot: usize,
    },
    /// `statfs` (Windows: `GetDiskFreeSpaceEx`): succeeds, with free space no more than the
    /// total, and changes nothing.
    Statfs,
    /// Drop the filesystem and open a new one on the same venv and layers: what was
    /// written stays, open files are gone.
    Remount,
}

/// The times `SetTimes` sets: whole seconds and fractions (multiples of 100 ns, what NTFS
/// keeps), since 1970.
pub const TIMES: [(u64, u32); 3] = [
    (1_000_000_000, 0),
    (1_600_000_000, 500_000_000),
    (2_000_000_000, 100),
];

/// `TIMES[i]` as a time.
pub fn time(i: usize) -> std::time::SystemTime {
    let (secs, nanos) = TIMES[i];
    std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos)
}

/// Error kinds, as errno classes: what a caller can tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Errno {
    NotFound,
    Exists,
    NotEmpty,
    NotDir,
    IsDir,
    Invalid,
    /// EPERM (a hard link to a directory).
    NotPermitted,
    /// EBADF (reading a handle open for writing only, or the reverse).
    BadHandle,
    /// Windows rules: the open conflicts with the share modes of the file's opens.
    SharingViolation,
    /// Windows rules: the file is marked for deletion.
    DeletePending,
    /// Windows rules: a name Windows refuses.
    InvalidName,
    Other(i32),
}

impl Errno {
    pub fn from_raw(errno: i32) -> Errno {
        match errno {
            libc::ENOENT => Errno::NotFound,
            libc::EEXIST => Errno::Exists,
            libc::ENOTEMPTY => Errno::NotEmpty,
            libc::ENOTDIR => Errno::NotDir,
            libc::EISDIR => Errno::IsDir,
            libc::EINVAL => Errno::Invalid,
            libc::EPERM => Errno::NotPermitted,
            libc::EBADF => Errno::BadHandle,
            e => Errno::Other(e),
        }
    }

    pub fn from_io(e: &std::io::Error) -> Errno {
        Errno::from_raw(e.raw_os_error().unwrap_or(-1))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// What `lstat` tells about an entry. Sizes and link counts of directories differ between
/// filesystems and are left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// Files: the content's length; symlinks: the target's.
    pub size: Option<u64>,
    pub perm: u16,
    /// Files only: how many names the file has.
    pub nlink: Option<u32>,
    /// Files and directories: the modification time. The model knows it only where a
    /// `SetTimes` set it and nothing has changed it since; where it does not (`None`), the
    /// time the others report is not compared (see [`Outcome::masked_like`]).
    pub mtime: Option<std::time::SystemTime>,
}

impl Meta {
    /// This, without the modification time where `expected` (the model's) has none.
    pub fn masked_like(mut self, expected: &Meta) -> Meta {
        if expected.mtime.is_none() {
            self.mtime = None;
        }
        self
    }
}

/// What an op answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Failed(Errno),
    Bytes(Data),
    Target(String),
    Stat(Meta),
    Names(BTreeSet<String>),
    /// The op names an empty slot: nothing was asked of the filesystem.
    NoHandle,
}

impl Outcome {
    /// This answer, without what the model's answer `expected` does not know (see
    /// [`Meta::mtime`]), so that the two compare on what the model knows.
    pub fn masked_like(self, expected: &Outcome) -> Outcome {
        match (self, expected) {
            (Outcome::Stat(m), Outcome::Stat(e)) => Outcome::Stat(m.masked_like(e)),
            (o, _) => o,
        }
    }
}

/// `got`, without the modification times the model's walk `expected` does not know.
pub fn walk_masked_like(got: Walk, expected: &Walk) -> Walk {
    got.into_iter()
        .map(|(path, mut seen)| {
            if let Some(e) = expected.get(&path) {
                seen.meta = seen.meta.masked_like(&e.meta);
            }
            (path, seen)
        })
        .collect()
}

impl<T> From<Result<T, Errno>> for Outcome
where
    T: Into<Outcome>,
{
    fn from(r: Result<T, Errno>) -> Outcome {
        match r {
            Ok(v) => v.into(),
            Err(e) => Outcome::Failed(e),
        }
    }
}

impl From<()> for Outcome {
    fn from(_: ()) -> Outcome {
        Outcome::Done
    }
}

/// File content, shown as text.
#[derive(Clone, PartialEq, Eq)]
pub struct Data(pub Vec<u8>);

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

impl From<Vec<u8>> for Outcome {
    fn from(v: Vec<u8>) -> Outcome {
        Outcome::Bytes(Data(v))
    }
}

impl From<String> for Outcome {
    fn from(t: String) -> Outcome {
        Outcome::Target(t)
    }
}

impl From<Meta> for Outcome {
    fn from(m: Meta) -> Outcome {
        Outcome::Stat(m)
    }
}

impl From<BTreeSet<String>> for Outcome {
    fn from(n: BTreeSet<String>) -> Outcome {
        Outcome::Names(n)
    }
}

/// One visible entry of a whole-tree walk: its metadata and, for files, the content and,
/// for symlinks, the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub meta: Meta,
    pub content: Option<Data>,
    pub target: Option<String>,
}

/// A whole visible tree: every path below the venv root.
pub type Walk = std::collections::BTreeMap<String, Seen>;

fn path_in(pool: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(pool)
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(&b"xyzXYZ"[..]), 1..6)
}

fn file_mode() -> impl Strategy<Value = u32> {
    prop::sample::select(&[0o600u32, 0o644, 0o755][..])
}

/// Modes for chmod and mkdir. The owner keeps every right, so that a test run by an
/// unprivileged user is not stopped by its own chmod (root is never stopped anyway).
fn dir_mode() -> impl Strategy<Value = u32> {
    prop::sample::select(&[0o700u32, 0o711, 0o750, 0o755, 0o775][..])
}

fn slot() -> impl Strategy<Value = usize> {
    0..SLOTS
}

fn access() -> impl Strategy<Value = Access> {
    prop_oneof![
        Just(Access::Read),
        Just(Access::Write),
        Just(Access::ReadWrite)
    ]
}

/// One op naming paths of `pool`; the weights favour the ops that change the tree.
fn op_in(pool: &'static [&'static str]) -> impl Strategy<Value = Op> {
    let path = || path_in(pool);
    prop_oneof![
        4 => (path(), file_mode()).prop_map(|(path, mode)| Op::Create { path, mode }),
        4 => (path(), 0..16u64, data(), any::<bool>()).prop_map(|(path, offset, data, by_inode)| Op::Write {
            path,
            offset,
            data,
            by_inode
        }),
        3 => (path(), any::<bool>()).prop_map(|(path, by_inode)| Op::Read { path, by_inode }),
        2 => (path(), 0..20u64).prop_map(|(path, size)| Op::Truncate { path, size }),
        2 => (path(), dir_mode()).prop_map(|(path, mode)| Op::Chmod { path, mode }),
        6 => (path(), path(), any::<bool>()).prop_map(|(from, to, noreplace)| Op::Rename {
            from,
            to,
            noreplace
        }),
        3 => path().prop_map(|path| Op::Unlink { path }),
        4 => (path(), dir_mode()).prop_map(|(path, mode)| Op::Mkdir { path, mode }),
        3 => path().prop_map(|path| Op::Rmdir { path }),
        3 => (path(), path()).prop_map(|(from, to)| Op::Link { from, to }),
        2 => (prop::sample::select(&TARGETS[..]), path())
            .prop_map(|(target, path)| Op::Symlink { target, path }),
        1 => path().prop_map(|path| Op::Readlink { path }),
        2 => path().prop_map(|path| Op::Stat { path }),
        2 => path().prop_map(|path| Op::List { path }),
        6 => (slot(), path(), access(), any::<bool>()).prop_map(|(slot, path, access, truncate)| {
            Op::Open {
                slot,
                path,
                // O_TRUNC with O_RDONLY is left unspecified by POSIX
                truncate: truncate && access.writes(),
                access,
                share: None,
                delete: false,
                delete_on_close: false,
            }
        }),
        4 => slot().prop_map(|slot| Op::ReadOpen { slot }),
        3 => (slot(), 0..16u64, data()).prop_map(|(slot, offset, data)| Op::WriteOpen {
            slot,
            offset,
            data
        }),
        1 => slot().prop_map(|slot| Op::Close { slot }),
        3 => (path(), 0..TIMES.len(), any::<bool>())
            .prop_map(|(path, time, crtime)| Op::SetTimes { path, time, crtime }),
        1 => slot().prop_map(|slot| Op::Fsync { slot }),
        2 => slot().prop_map(|slot| Op::StatOpen { slot }),
        1 => Just(Op::Statfs),
        2 => Just(Op::Remount),
    ]
}

/// One op, as a POSIX run generates it.
pub fn op() -> impl Strategy<Value = Op> {
    op_in(&PATHS)
}

/// A share mode: mostly one given (any of the eight), sometimes none.
fn share() -> impl Strategy<Value = Option<Share>> {
    prop_oneof![
        4 => (any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(read, write, delete)| Some(Share { read, write, delete })),
        1 => Just(None),
    ]
}

/// What a Windows open adds to a POSIX one: a share mode, the delete right, delete on
/// close (which asks for the delete right too, as Windows requires).
fn windows_open() -> impl Strategy<Value = (Option<Share>, bool, bool)> {
    (
        share(),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.25),
    )
        .prop_map(|(share, delete, doc)| (share, delete || doc, doc))
}

/// One op of a run under Windows rules: paths from [`WINDOWS_PATHS`], opens with share
/// modes and delete on close, and delete-pending marks. No hard links: after a remount the
/// core knows two links of one file as two inodes (it keeps no record of links across
/// mounts), each with its own share modes and delete state, where NTFS keeps one per file;
/// the model would have to copy that limitation to agree.
pub fn windows_op() -> impl Strategy<Value = Op> {
    let plain = (op_in(&WINDOWS_PATHS), windows_open())
        .prop_filter("no hard links under Windows rules", |(op, _)| {
            !matches!(op, Op::Link { .. })
        })
        .prop_map(|(op, (sh, del, doc))| match op {
            Op::Open {
                slot,
                path,
                access,
                truncate,
                ..
            } => Op::Open {
                slot,
                path,
                access,
                truncate,
                share: sh,
                delete: del,
                delete_on_close: doc,
            },
            op => op,
        });
    prop_oneof![
        20 => plain,
        2 => (slot(), prop::bool::weighted(0.8))
            .prop_map(|(slot, delete)| Op::SetDeletePending { slot, delete }),
    ]
}

/// A file kept open across the loss of its last name (unlinked, or replaced by a rename
/// over it) still reads and writes through the handle.
fn kept_open(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<Op>> {
    (slot(), path_in(pool), path_in(pool), any::<bool>(), data()).prop_map(
        |(slot, path, other, by_rename, data)| {
            vec![
                Op::Create { path, mode: 0o644 },
                Op::Open {
                    slot,
                    path,
                    access: Access::ReadWrite,
                    truncate: false,
                    share: None,
                    delete: false,
                    delete_on_close: false,
                },
                if by_rename {
                    Op::Rename {
                        from: other,
                        to: path,
                        noreplace: false,
                    }
                } else {
                    Op::Unlink { path }
                },
                Op::ReadOpen { slot },
                Op::WriteOpen {
                    slot,
                    offset: 1,
                    data,
                },
                Op::ReadOpen { slot },
                Op::Close { slot },
            ]
        },
    )
}

/// A write through one name of a hard-linked file shows through the other.
fn linked(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<Op>> {
    (path_in(pool), path_in(pool), 0..8u64, data(), any::<bool>()).prop_map(
        |(from, to, offset, data, by_inode)| {
            vec![
                Op::Create {
                    path: from,
                    mode: 0o644,
                },
                Op::Link { from, to },
                Op::Write {
                    path: from,
                    offset,
                    data,
                    by_inode,
                },
                Op::Read { path: to, by_inode },
            ]
        },
    )
}

/// A file opened for deletion on close, or marked through a handle, while another handle
/// (sharing or not) is open: new opens fail until the last handle goes, and the name with
/// it.
fn doomed() -> impl Strategy<Value = Vec<Op>> {
    let pool = &WINDOWS_PATHS;
    (
        path_in(pool),
        path_in(pool),
        share(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(path, again, share, by_mark, first_last)| {
            let open = |slot, delete_on_close| Op::Open {
                slot,
                path,
                access: Access::Read,
                truncate: false,
                share: Some(Share::ALL),
                delete: delete_on_close,
                delete_on_close,
            };
            let mut ops = vec![
                Op::Create { path, mode: 0o644 },
                open(0, false),
                Op::Open {
                    slot: 1,
                    path: again,
                    access: Access::ReadWrite,
                    truncate: false,
                    share,
                    delete: !by_mark,
                    delete_on_close: !by_mark,
                },
            ];
            if by_mark {
                ops.push(Op::SetDeletePending {
                    slot: 1,
                    delete: true,
                });
            }
            let (first, last) = if first_last { (0, 1) } else { (1, 0) };
            ops.extend([
                Op::Close { slot: first },
                Op::Read {
                    path: again,
                    by_inode: false,
                },
                Op::Stat { path },
                Op::Close { slot: last },
                Op::Stat { path },
            ]);
            ops
        })
}

/// A few ops that make a case random single ops would rarely put together.
fn scenario() -> impl Strategy<Value = Vec<Op>> {
    prop_oneof![kept_open(&PATHS), linked(&PATHS)]
}

/// Sequences of at most about `max` ops.
pub fn ops(max: usize) -> impl Strategy<Value = Vec<Op>> {
    let piece = prop_oneof![
        8 => op().prop_map(|op| vec![op]),
        1 => scenario(),
    ];
    prop::collection::vec(piece, 1..=max * 2 / 3).prop_map(|pieces| pieces.concat())
}

/// Sequences of at most about `max` ops of a run under Windows rules.
pub fn windows_ops(max: usize) -> impl Strategy<Value = Vec<Op>> {
    let piece = prop_oneof![
        16 => windows_op().prop_map(|op| vec![op]),
        1 => kept_open(&WINDOWS_PATHS),
        1 => doomed(),
    ];
    prop::collection::vec(piece, 1..=max * 2 / 3).prop_map(|pieces| pieces.concat())
}
