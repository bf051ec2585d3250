//! The same ops on a plain directory of the machine's own filesystem, through std::fs: a
//! check of the model itself. The model and a real directory must agree on every op; where
//! they do not, the model is wrong, not the overlay.
//!
//! POSIX only: the directory is on the machine's own filesystem (ext4 and the like, case
//! sensitive, with neither share modes nor delete pending), so it has nothing to say about
//! the Windows rules, and runs under them compare the model with the overlay alone.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::fs::{symlink, DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::ops::{Access, Data, Errno, Kind, Meta, Op, Outcome, Seen, Walk, SLOTS};

pub struct RealDir {
    root: PathBuf,
    slots: [Option<File>; SLOTS],
}

fn res<T>(r: io::Result<T>) -> Result<T, Errno> {
    r.map_err(|e| Errno::from_io(&e))
}

/// The whole content of an open file, from its start.
fn read_all(file: &File) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = file.read_at(&mut buf, out.len() as u64)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

fn meta_of(m: &std::fs::Metadata) -> Meta {
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else {
        Kind::File
    };
    Meta {
        kind,
        size: (kind != Kind::Dir).then_some(m.len()),
        perm: (m.mode() & 0o7777) as u16,
        nlink: (kind == Kind::File).then_some(m.nlink() as u32),
        mtime: (kind != Kind::Symlink).then(|| m.modified().unwrap()),
    }
}

impl RealDir {
    /// A real directory holding `walk` (the model's starting tree).
    pub fn new(root: &Path, walk: &Walk) -> RealDir {
        // shallow paths first: a BTreeMap puts "lib" before "lib/a"
        for (path, seen) in walk {
            let at = root.join(path);
            match seen.meta.kind {
                Kind::Dir => std::fs::create_dir(&at).unwrap(),
                Kind::File => std::fs::write(&at, &seen.content.as_ref().unwrap().0).unwrap(),
                Kind::Symlink => symlink(seen.target.as_ref().unwrap(), &at).unwrap(),
            }
            if seen.meta.kind != Kind::Symlink {
                let perm = std::fs::Permissions::from_mode(seen.meta.perm as u32);
                std::fs::set_permissions(&at, perm).unwrap();
            }
        }
        RealDir {
            root: root.to_owned(),
            slots: Default::default(),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p)
    }

    fn write(&self, path: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(self.path(path))?;
        f.write_all_at(data, offset)
    }

    fn rename(&self, from: &str, to: &str, noreplace: bool) -> io::Result<()> {
        let flags = if noreplace {
            rustix::fs::RenameFlags::NOREPLACE
        } else {
            rustix::fs::RenameFlags::empty()
        };
        let cwd = rustix::fs::CWD;
        Ok(rustix::fs::renameat_with(
            cwd,
            self.path(from),
            cwd,
            self.path(to),
            flags,
        )?)
    }

    fn open(&mut self, slot: usize, path: &str, access: Access, truncate: bool) -> io::Result<()> {
        let f = OpenOptions::new()
            .read(access.reads())
            .write(access.writes())
            .truncate(truncate)
            .open(self.path(path))?;
        self.slots[slot] = Some(f);
        Ok(())
    }

    pub fn apply(&mut self, op: &Op) -> Outcome {
        match *op {
            Op::Create { path, mode } => res(OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(self.path(path))
                .map(drop))
            .into(),
            Op::Write {
                path,
                offset,
                ref data,
                ..
            } => res(self.write(path, offset, data)).into(),
            Op::Read { path, .. } => res(std::fs::read(self.path(path))).into(),
            Op::Truncate { path, size } => res(OpenOptions::new()
                .write(true)
                .open(self.path(path))
                .and_then(|f| f.set_len(size)))
            .into(),
            Op::Chmod { path, mode } => res(std::fs::set_permissions(
                self.path(path),
                std::fs::Permissions::from_mode(mode),
            ))
            .into(),
            Op::Rename {
                from,
                to,
                noreplace,
            } => res(self.rename(from, to, noreplace)).into(),
            Op::Unlink { path } => res(std::fs::remove_file(self.path(path))).into(),
            Op::Mkdir { path, mode } => res(std::fs::DirBuilder::new()
                .mode(mode)
                .create(self.path(path)))
            .into(),
            Op::Rmdir { path } => res(std::fs::remove_dir(self.path(path))).into(),
            Op::Link { from, to } => res(std::fs::hard_link(self.path(from), self.path(to))).into(),
            Op::Symlink { target, path } => res(symlink(target, self.path(path))).into(),
            Op::Readlink { path } => res(std::fs::read_link(self.path(path)))
                .map(|t| t.to_str().unwrap().to_owned())
                .into(),
            Op::Stat { path } => res(std::fs::symlink_metadata(self.path(path)))
                .map(|m| meta_of(&m))
                .into(),
            Op::List { path } => res(std::fs::read_dir(self.path(path)).and_then(|entries| {
                entries
                    .map(|e| Ok(e?.file_name().into_string().unwrap()))
                    .collect::<io::Result<BTreeSet<_>>>()
            }))
            .into(),
            Op::Open {
                slot,
                path,
                access,
                truncate,
                ..
            } => res(self.open(slot, path, access, truncate)).into(),
            Op::ReadOpen { slot } => match &self.slots[slot] {
                None => Outcome::NoHandle,
                Some(f) => res(read_all(f)).into(),
            },
            Op::WriteOpen {
                slot,
                offset,
                ref data,
            } => match &self.slots[slot] {
                None => Outcome::NoHandle,
                Some(f) => res(f.write_all_at(data, offset)).into(),
            },
            Op::Close { slot } => match self.slots[slot].take() {
                None => Outcome::NoHandle,
                Some(_) => Outcome::Done,
            },
            Op::SetTimes { path, time, .. } => {
                let t = super::ops::time(time);
                let times = std::fs::FileTimes::new().set_accessed(t).set_modified(t);
                res(File::open(self.path(path)).and_then(|f| f.set_times(times))).into()
            }
            Op::Fsync { slot } => match &self.slots[slot] {
                None => Outcome::NoHandle,
                Some(f) => res(f.sync_all()).into(),
            },
            Op::StatOpen { slot } => match &self.slots[slot] {
                None => Outcome::NoHandle,
                Some(f) => res(f.metadata()).map(|m| meta_of(&m)).into(),
            },
            Op::Statfs => res(rustix::fs::statvfs(&self.root).map_err(io::Error::from))
                .map(drop)
                .into(),
            Op::SetDeletePending { .. } => unreachable!("generated under Windows rules only"),
            Op::Remount => {
                self.slots = Default::default();
                Outcome::Done
            }
        }
    }

    /// Every entry below the root.
    pub fn walk(&self) -> Walk {
        let mut out = Walk::new();
        let mut pending = vec![self.root.clone()];
        while let Some(dir) = pending.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let at = e.unwrap().path();
                let m = std::fs::symlink_metadata(&at).unwrap();
                let meta = meta_of(&m);
                let (content, target) = match meta.kind {
                    Kind::Dir => {
                        pending.push(at.clone());
                        (None, None)
                    }
                    Kind::File => (Some(Data(std::fs::read(&at).unwrap())), None),
                    Kind::Symlink => {
                        let t = std::fs::read_link(&at).unwrap();
                        (None, Some(t.to_str().unwrap().to_owned()))
                    }
                };
                let rel = at.strip_prefix(&self.root).unwrap().to_str().unwrap();
                out.insert(
                    rel.to_owned(),
                    Seen {
                        meta,
                        content,
                        target,
                    },
                );
            }
        }
        out
    }
}
