//! The system under test: venvfs's overlay, called directly, without a kernel mount.
//!
//! This is the only file that calls the venvfs core, so that a change of its API is adapted
//! here alone. Each op is one function taking the overlay and paths and answering an
//! [`Outcome`]. Paths are resolved as the kernel does, one `lookup` per component; a
//! symlink met on the way (or at the end, by an op that follows links) ends in "not found",
//! since every target the tests make dangles (see `ops::TARGETS`).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use venvfs::manifest::{Layer, Manifest, Mapping};
use venvfs::overlay::{Overlay, OverlayConfig};
use venvfs_api::{
    Caller, Entry, Error, Fh, FileKind, FileSystem, Ino, Lookup, OpenRequest, RenameFlags, SetAttr,
    SetTime, ShareMode, ROOT,
};

use super::ops::{Access, Data, Errno, Kind, Meta, Op, Outcome, Seen, Share, Walk, SLOTS};

type Res<T> = Result<T, Errno>;

const CALLER: Caller = Caller {
    uid: 0,
    gid: 0,
    pid: 0,
};

/// More than any test file holds: one read returns a whole file.
const READ_ALL: u32 = 1 << 16;

/// An open file: what the kernel keeps for an open file descriptor.
#[derive(Clone, Copy, Debug)]
pub struct Handle {
    ino: Ino,
    /// None: I/O by inode, as the FUSE adapter does for files the kernel opened itself.
    fh: Option<Fh>,
}

/// The overlay of a test case, with its open files.
pub struct Core {
    /// (none only while it is replaced by a remount)
    fs: Option<Overlay>,
    venv: PathBuf,
    layers: Vec<PathBuf>,
    cfg: OverlayConfig,
    slots: [Option<Handle>; SLOTS],
}

/// Opens the overlay of `venv` over the directory layers `layers` (top first), each mapped
/// under `lib/`.
pub fn mount(venv: &Path, layers: &[PathBuf], cfg: OverlayConfig) -> Overlay {
    let layer = |source: &PathBuf| Layer {
        source: source.clone(),
        name: String::new(),
        version: String::new(),
        map: vec![Mapping {
            from: String::new(),
            to: Some("lib".into()),
            skip: false,
        }],
        installed: false,
    };
    let manifest = Manifest {
        version: 1,
        generated: None,
        layers: layers.iter().map(layer).collect(),
    };
    Overlay::new(venv, &manifest, cfg).expect("overlay opens")
}

pub fn errno(e: Error) -> Errno {
    match e {
        Error::NotFound => Errno::NotFound,
        Error::Exists(_) => Errno::Exists,
        Error::NotDir => Errno::NotDir,
        Error::IsDir => Errno::IsDir,
        Error::NotEmpty => Errno::NotEmpty,
        Error::NotPermitted(_) => Errno::NotPermitted,
        Error::AccessDenied(_) => Errno::Other(libc::EACCES),
        Error::SharingViolation => Errno::SharingViolation,
        Error::DeletePending => Errno::DeletePending,
        Error::InvalidName(_) => Errno::InvalidName,
        Error::Invalid(_) => Errno::Invalid,
        Error::BadHandle(_) => Errno::BadHandle,
        Error::Os(io) => Errno::from_io(&io),
        Error::NameTooLong => Errno::Other(libc::ENAMETOOLONG),
        Error::StaleInode(_) => Errno::Other(libc::ESTALE),
        Error::NoAttr => Errno::Other(libc::ENODATA),
        Error::Range => Errno::Other(libc::ERANGE),
        Error::Unsupported(_) => Errno::Other(libc::EOPNOTSUPP),
        Error::NotImplemented => Errno::Other(libc::ENOSYS),
        Error::Corrupt { .. } => Errno::Other(libc::EIO),
    }
}

fn kind(k: FileKind) -> Kind {
    match k {
        FileKind::Dir => Kind::Dir,
        FileKind::Symlink => Kind::Symlink,
        FileKind::File => Kind::File,
        other => panic!("the tests make no {other:?}"),
    }
}

fn meta(e: &Entry) -> Meta {
    let kind = kind(e.attr.kind);
    Meta {
        kind,
        size: (kind != Kind::Dir).then_some(e.attr.size),
        perm: e.attr.perm,
        nlink: (kind == Kind::File).then_some(e.attr.nlink),
        mtime: (kind != Kind::Symlink).then_some(e.attr.mtime),
    }
}

fn lookup(fs: &Overlay, dir: Ino, name: &str) -> Res<Entry> {
    match fs.lookup(dir, OsStr::new(name)).map_err(errno)? {
        Lookup::Found(e) => Ok(e),
        Lookup::Missing { .. } => Err(Errno::NotFound),
    }
}

/// The directory holding the last component of `path`, and that component.
fn parent<'p>(fs: &Overlay, path: &'p str) -> Res<(Ino, &'p OsStr)> {
    let parts: Vec<&str> = path.split('/').collect();
    let (name, dirs) = parts.split_last().unwrap();
    let mut at = ROOT;
    for part in dirs {
        // The kernel asks the filesystem to look a name up in directories only.
        let e = lookup(fs, at, part)?;
        match e.attr.kind {
            FileKind::Dir => at = e.attr.ino,
            FileKind::Symlink => return Err(Errno::NotFound),
            _ => return Err(Errno::NotDir),
        }
    }
    Ok((at, OsStr::new(*name)))
}

/// The entry at `path` itself (a symlink is not followed).
fn entry(fs: &Overlay, path: &str) -> Res<Entry> {
    let (dir, name) = parent(fs, path)?;
    lookup(fs, dir, name.to_str().unwrap())
}

/// What `path` leads to, symlinks followed (to nowhere).
fn follow(fs: &Overlay, path: &str) -> Res<Ino> {
    let e = entry(fs, path)?;
    match e.attr.kind {
        FileKind::Symlink => Err(Errno::NotFound),
        _ => Ok(e.attr.ino),
    }
}

pub fn create(fs: &Overlay, path: &str, mode: u32) -> Res<()> {
    let (dir, name) = parent(fs, path)?;
    let req = OpenRequest {
        access: venvfs_api::Access::Write,
        exclusive: true,
        ..OpenRequest::READ
    };
    let (entry, opened) = fs
        .create(&CALLER, dir, name, mode as u16, &req)
        .map_err(errno)?;
    fs.release(entry.attr.ino, opened.fh);
    Ok(())
}

pub fn write(fs: &Overlay, path: &str, offset: u64, data: &[u8], by_inode: bool) -> Res<()> {
    let ino = follow(fs, path)?;
    if by_inode {
        return write_handle(fs, Handle { ino, fh: None }, offset, data);
    }
    let h = open(fs, path, Access::Write, false)?;
    let written = write_handle(fs, h, offset, data);
    close(fs, h);
    written
}

pub fn read(fs: &Overlay, path: &str, by_inode: bool) -> Res<Vec<u8>> {
    let ino = follow(fs, path)?;
    if by_inode {
        return read_handle(fs, Handle { ino, fh: None });
    }
    let h = open(fs, path, Access::Read, false)?;
    let data = read_handle(fs, h);
    close(fs, h);
    data
}

fn setattr(fs: &Overlay, path: &str, set: SetAttr) -> Res<()> {
    let ino = follow(fs, path)?;
    fs.setattr(&CALLER, ino, set).map_err(errno)?;
    Ok(())
}

pub fn truncate(fs: &Overlay, path: &str, size: u64) -> Res<()> {
    let set = SetAttr {
        size: Some(size),
        ..Default::default()
    };
    setattr(fs, path, set)
}

pub fn chmod(fs: &Overlay, path: &str, mode: u32) -> Res<()> {
    let set = SetAttr {
        mode: Some(mode),
        ..Default::default()
    };
    setattr(fs, path, set)
}

/// Both times, and with `crtime` the creation time, as Dokan's `set_file_time` asks
/// (`info::set_times` in the adapter: the three given, no "now").
pub fn set_times(fs: &Overlay, path: &str, time: usize, crtime: bool) -> Res<()> {
    let t = super::ops::time(time);
    let set = SetAttr {
        atime: Some(SetTime::At(t)),
        mtime: Some(SetTime::At(t)),
        crtime: crtime.then_some(t),
        ..Default::default()
    };
    setattr(fs, path, set)
}

/// A flush of an open file, as both adapters send it: a directory's never reaches the core
/// (FUSE's fsyncdir and Dokan's flush of a directory handle answer without it).
pub fn fsync(fs: &Overlay, h: Handle) -> Res<()> {
    if fs.getattr(h.ino).map_err(errno)?.attr.kind == FileKind::Dir {
        return Ok(());
    }
    fs.fsync(h.ino, h.fh, false).map_err(errno)
}

/// The usage figures: asked for, checked for sense, and otherwise dropped.
pub fn statfs(fs: &Overlay) -> Res<()> {
    let st = fs.statfs().map_err(errno)?;
    assert!(
        st.bfree <= st.blocks && st.bavail <= st.blocks,
        "statfs: more free than there is: {st:?}"
    );
    Ok(())
}

pub fn rename(fs: &Overlay, from: &str, to: &str, noreplace: bool) -> Res<()> {
    let (dir, name) = parent(fs, from)?;
    let (new_dir, new_name) = parent(fs, to)?;
    let flags = RenameFlags {
        noreplace,
        exchange: false,
    };
    fs.rename(dir, name, new_dir, new_name, flags)
        .map_err(errno)
}

pub fn unlink(fs: &Overlay, path: &str) -> Res<()> {
    let (dir, name) = parent(fs, path)?;
    fs.unlink(dir, name).map_err(errno)
}

pub fn mkdir(fs: &Overlay, path: &str, mode: u32) -> Res<()> {
    let (dir, name) = parent(fs, path)?;
    fs.mkdir(&CALLER, dir, name, mode as u16).map_err(errno)?;
    Ok(())
}

pub fn rmdir(fs: &Overlay, path: &str) -> Res<()> {
    let (dir, name) = parent(fs, path)?;
    fs.rmdir(dir, name).map_err(errno)
}

pub fn link(fs: &Overlay, from: &str, to: &str) -> Res<()> {
    let ino = entry(fs, from)?.attr.ino;
    let (dir, name) = parent(fs, to)?;
    fs.link(ino, dir, name).map_err(errno)?;
    Ok(())
}

pub fn symlink(fs: &Overlay, target: &str, path: &str) -> Res<()> {
    let (dir, name) = parent(fs, path)?;
    fs.symlink(&CALLER, dir, name, Path::new(target))
        .map_err(errno)?;
    Ok(())
}

pub fn readlink(fs: &Overlay, path: &str) -> Res<String> {
    let ino = entry(fs, path)?.attr.ino;
    let target = fs.readlink(ino).map_err(errno)?;
    Ok(target.into_string().unwrap())
}

pub fn stat(fs: &Overlay, path: &str) -> Res<Meta> {
    Ok(meta(&entry(fs, path)?))
}

/// The names in directory `ino`, read piece by piece as the kernel does.
fn names(fs: &Overlay, ino: Ino) -> Res<BTreeSet<String>> {
    let fh = fs.opendir(ino).map_err(errno)?.fh;
    let mut names = BTreeSet::new();
    let mut offset = 2; // after "." and ".."
    loop {
        let piece = fs.readdir(ino, offset).map_err(errno)?;
        let Some(last) = piece.last() else { break };
        offset = last.offset;
        names.extend(piece.into_iter().map(|e| e.name.into_string().unwrap()));
    }
    fs.releasedir(ino, fh);
    Ok(names)
}

pub fn list(fs: &Overlay, path: &str) -> Res<BTreeSet<String>> {
    names(fs, follow(fs, path)?)
}

pub fn open(fs: &Overlay, path: &str, access: Access, truncate: bool) -> Res<Handle> {
    open_as(fs, path, access, truncate, None, false, false)
}

/// An open with the Windows parts of a request too: a share mode (`None`: none given), the
/// right to delete, deletion on close.
pub fn open_as(
    fs: &Overlay,
    path: &str,
    access: Access,
    truncate: bool,
    share: Option<Share>,
    delete: bool,
    delete_on_close: bool,
) -> Res<Handle> {
    let ino = follow(fs, path)?;
    let req = OpenRequest {
        access: match access {
            Access::Read => venvfs_api::Access::Read,
            Access::Write => venvfs_api::Access::Write,
            Access::ReadWrite => venvfs_api::Access::ReadWrite,
        },
        truncate,
        share: share.map(|s| ShareMode {
            read: s.read,
            write: s.write,
            delete: s.delete,
        }),
        delete,
        delete_on_close,
        ..OpenRequest::READ
    };
    let fh = fs.open(ino, &req).map_err(errno)?.fh;
    // as the Dokan adapter holds the inode from `create_file` to `close_file` (and the
    // kernel holds what it looked up)
    fs.reference(ino);
    Ok(Handle { ino, fh: Some(fh) })
}

pub fn read_handle(fs: &Overlay, h: Handle) -> Res<Vec<u8>> {
    fs.read(h.ino, h.fh, 0, READ_ALL).map_err(errno)
}

pub fn write_handle(fs: &Overlay, h: Handle, offset: u64, data: &[u8]) -> Res<()> {
    let n = fs.write(h.ino, h.fh, offset, data).map_err(errno)?;
    assert_eq!(n as usize, data.len(), "short write");
    Ok(())
}

/// Closes an open: its handle released, then its reference dropped (Dokan's `cleanup`,
/// then `close_file`).
pub fn close(fs: &Overlay, h: Handle) {
    if let Some(fh) = h.fh {
        fs.release(h.ino, fh);
        fs.unreference(h.ino, 1);
    }
}

/// Every visible entry below the root.
pub fn walk(fs: &Overlay) -> Walk {
    let mut out = Walk::new();
    let mut pending = vec![(String::new(), ROOT)];
    while let Some((path, dir)) = pending.pop() {
        for name in names(fs, dir).unwrap() {
            let e = lookup(fs, dir, &name).unwrap();
            let child = if path.is_empty() {
                name
            } else {
                format!("{path}/{name}")
            };
            let h = Handle {
                ino: e.attr.ino,
                fh: None,
            };
            let (content, target) = match e.attr.kind {
                FileKind::Dir => {
                    pending.push((child.clone(), e.attr.ino));
                    (None, None)
                }
                FileKind::Symlink => {
                    let t = fs.readlink(e.attr.ino).unwrap();
                    (None, Some(t.into_string().unwrap()))
                }
                _ => (Some(Data(read_handle(fs, h).unwrap())), None),
            };
            out.insert(
                child,
                Seen {
                    meta: meta(&e),
                    content,
                    target,
                },
            );
        }
    }
    out
}

impl Core {
    /// The overlay of `venv` over `layers`, opened (and reopened at each remount) with
    /// `cfg`.
    pub fn new(venv: &Path, layers: &[PathBuf], cfg: OverlayConfig) -> Core {
        Core {
            fs: Some(mount(venv, layers, cfg.clone())),
            venv: venv.to_owned(),
            layers: layers.to_vec(),
            cfg,
            slots: [None; SLOTS],
        }
    }

    fn fs(&self) -> &Overlay {
        self.fs.as_ref().expect("mounted")
    }

    pub fn walk(&self) -> Walk {
        walk(self.fs())
    }

    /// Runs `op` and answers what the overlay said.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        let fs = self.fs.as_ref().expect("mounted");
        match *op {
            Op::Create { path, mode } => create(fs, path, mode).into(),
            Op::Write {
                path,
                offset,
                ref data,
                by_inode,
            } => write(fs, path, offset, data, by_inode).into(),
            Op::Read { path, by_inode } => read(fs, path, by_inode).into(),
            Op::Truncate { path, size } => truncate(fs, path, size).into(),
            Op::Chmod { path, mode } => chmod(fs, path, mode).into(),
            Op::Rename {
                from,
                to,
                noreplace,
            } => rename(fs, from, to, noreplace).into(),
            Op::Unlink { path } => unlink(fs, path).into(),
            Op::Mkdir { path, mode } => mkdir(fs, path, mode).into(),
            Op::Rmdir { path } => rmdir(fs, path).into(),
            Op::Link { from, to } => link(fs, from, to).into(),
            Op::Symlink { target, path } => symlink(fs, target, path).into(),
            Op::Readlink { path } => readlink(fs, path).into(),
            Op::Stat { path } => stat(fs, path).into(),
            Op::List { path } => list(fs, path).into(),
            Op::Open {
                slot,
                path,
                access,
                truncate,
                share,
                delete,
                delete_on_close,
            } => match open_as(fs, path, access, truncate, share, delete, delete_on_close) {
                Ok(h) => {
                    if let Some(old) = self.slots[slot].replace(h) {
                        close(fs, old);
                    }
                    Outcome::Done
                }
                Err(e) => Outcome::Failed(e),
            },
            Op::ReadOpen { slot } => match self.slots[slot] {
                None => Outcome::NoHandle,
                Some(h) => read_handle(fs, h).into(),
            },
            Op::WriteOpen {
                slot,
                offset,
                ref data,
            } => match self.slots[slot] {
                None => Outcome::NoHandle,
                Some(h) => write_handle(fs, h, offset, data).into(),
            },
            Op::Close { slot } => match self.slots[slot].take() {
                None => Outcome::NoHandle,
                Some(h) => {
                    close(fs, h);
                    Outcome::Done
                }
            },
            Op::SetDeletePending { slot, delete } => match self.slots[slot] {
                None => Outcome::NoHandle,
                Some(h) => {
                    let fh = h.fh.expect("slots hold opened handles");
                    fs.set_delete_pending(h.ino, fh, delete)
                        .map_err(errno)
                        .into()
                }
            },
            Op::SetTimes { path, time, crtime } => set_times(fs, path, time, crtime).into(),
            Op::Fsync { slot } => match self.slots[slot] {
                None => Outcome::NoHandle,
                Some(h) => fsync(fs, h).into(),
            },
            Op::StatOpen { slot } => match self.slots[slot] {
                None => Outcome::NoHandle,
                Some(h) => fs.getattr(h.ino).map(|e| meta(&e)).map_err(errno).into(),
            },
            Op::Statfs => statfs(fs).into(),
            Op::Remount => {
                // the daemon goes away with its open files; a new one starts on the venv
                self.slots = [None; SLOTS];
                self.fs = None;
                self.fs = Some(mount(&self.venv, &self.layers, self.cfg.clone()));
                Outcome::Done
            }
        }
    }
}
