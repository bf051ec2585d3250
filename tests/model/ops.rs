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
    /// Opens `path` into `slot`; if that works, what the slot held is closed.
    Open {
        slot: usize,
        path: &'static str,
        access: Access,
        truncate: bool,
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
    /// Drop the filesystem and open a new one on the same venv and layers: what was
    /// written stays, open files are gone.
    Remount,
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

fn path() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&PATHS[..])
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

/// One op; the weights favour the ops that change the tree.
pub fn op() -> impl Strategy<Value = Op> {
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
            }
        }),
        4 => slot().prop_map(|slot| Op::ReadOpen { slot }),
        3 => (slot(), 0..16u64, data()).prop_map(|(slot, offset, data)| Op::WriteOpen {
            slot,
            offset,
            data
        }),
        1 => slot().prop_map(|slot| Op::Close { slot }),
        2 => Just(Op::Remount),
    ]
}

/// A few ops that make a case random single ops would rarely put together.
fn scenario() -> impl Strategy<Value = Vec<Op>> {
    prop_oneof![
        // A file kept open across the loss of its last name (unlinked, or replaced by a
        // rename over it) still reads and writes through the handle.
        (slot(), path(), path(), any::<bool>(), data()).prop_map(
            |(slot, path, other, by_rename, data)| vec![
                Op::Create { path, mode: 0o644 },
                Op::Open {
                    slot,
                    path,
                    access: Access::ReadWrite,
                    truncate: false,
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
        ),
        // A write through one name of a hard-linked file shows through the other.
        (path(), path(), 0..8u64, data(), any::<bool>()).prop_map(
            |(from, to, offset, data, by_inode)| vec![
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
        ),
    ]
}

/// Sequences of at most about `max` ops.
pub fn ops(max: usize) -> impl Strategy<Value = Vec<Op>> {
    let piece = prop_oneof![
        8 => op().prop_map(|op| vec![op]),
        1 => scenario(),
    ];
    prop::collection::vec(piece, 1..=max * 2 / 3).prop_map(|pieces| pieces.concat())
}
