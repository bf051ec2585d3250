//! The upper layer: the venv's own disk content, behind one trait ([`Upper`]) so the
//! overlay does not care how it is reached.
//!
//! - [`posix::PosixUpper`] (Unix) works through a directory descriptor opened before the
//!   mount: the FUSE mount covers the venv directory's own path, so any path-based access
//!   from inside the daemon would go through the mount itself and deadlock. It keeps every
//!   POSIX property of the venv's files (modes, owners, device nodes, xattrs).
//! - [`portable::PortableUpper`] works by path through `std::fs` only, for an upper that
//!   lives apart from the mount point (a Dokan mount is a drive letter or an empty folder;
//!   the venv's own content stays where it is). What a plain Windows directory cannot hold
//!   (device nodes, owners, xattrs) it refuses with [`venvfs_api::Error::Unsupported`]-like
//!   errors. It builds, and is tested, on every platform.
//!
//! Bookkeeping that overlays need is kept as plain files ([`crate::upper_format`]), so it
//! works on any filesystem (ext4, NFS, NTFS) and without privileges. Every change is made
//! crash-safe by ordering: content is built under `.venvfs/work/` and renamed into place; a
//! whiteout is created before the entry it replaces is removed, and on load a real entry
//! wins over a whiteout of the same name (so a crash in between shows the old state, never
//! a lost file). Those orderings live in the provided methods here and in the overlay, so
//! both implementations share them.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use venvfs_api::{Allocate, Attr, FileKind, Ino, SetTime, StatFs, XattrSet};

use crate::manifest::STATE_DIR;
use crate::upper_format::EntryName;
pub use crate::upper_format::{is_marker, whiteout_name, OPAQUE, REDIRECT, WHITEOUT_PREFIX};

#[cfg(unix)]
mod kept_attrs;
pub mod portable;
#[cfg(unix)]
pub mod posix;
mod references;
pub mod work;

pub use references::References;
pub use work::Work;

/// Where copy-ups and atomic writes are built before they are renamed into place: one
/// directory per daemon below it ([`work`]).
pub const WORK: &str = ".venvfs/work";

/// A venv-relative path as bytes ("" is the venv root; `/` separates components; the
/// bytes of each name are its `OsStr::as_encoded_bytes`).
pub type Rel = Vec<u8>;

/// `dir/name` as a [`Rel`].
pub fn join(dir: &[u8], name: &OsStr) -> Rel {
    let mut p = dir.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name.as_encoded_bytes());
    p
}

/// What a directory of the upper layer holds, markers separated out.
#[derive(Default, Debug)]
pub struct Listing {
    pub entries: Vec<(OsString, FileKind)>,
    pub whiteouts: Vec<OsString>,
    pub opaque: bool,
    pub redirect: Option<Vec<u8>>,
}

/// The venv's own content, as the overlay uses it. Paths are venv-relative ([`Rel`]);
/// nothing follows a symlink except where a method says so.
pub trait Upper: Send + Sync {
    // ---- attributes ----

    /// The attributes of `rel` (not followed), as node `ino`.
    fn attr(&self, rel: &[u8], ino: Ino) -> io::Result<Attr>;
    /// Forgets attributes the upper keeps in memory (the POSIX upper keeps its directories'
    /// and links'): the venv directory was changed beneath it, not through its methods.
    fn forget_attrs(&self) {}
    /// The attributes of an open upper file (one that may have no name left), as `ino`.
    fn file_attr(&self, file: &File, ino: Ino) -> io::Result<Attr>;
    /// Gives an open file the permission bits `perm` and, if given, the modification time.
    fn set_file_meta(
        &self,
        file: &File,
        perm: u16,
        mtime: Option<std::time::SystemTime>,
    ) -> io::Result<()>;
    /// Sets the access and modification times of `rel` (`None` leaves one as it is).
    fn set_times(
        &self,
        rel: &[u8],
        atime: Option<SetTime>,
        mtime: Option<SetTime>,
    ) -> io::Result<()>;
    /// Sets both times of `rel` to `t` (a copied-up entry keeps its lower mtime).
    fn set_mtime(&self, rel: &[u8], t: std::time::SystemTime) -> io::Result<()> {
        self.set_times(rel, Some(SetTime::At(t)), Some(SetTime::At(t)))
    }
    fn chmod(&self, rel: &[u8], mode: u32) -> io::Result<()>;
    fn chown(&self, rel: &[u8], uid: Option<u32>, gid: Option<u32>) -> io::Result<()>;
    /// Usage figures of the filesystem the upper layer is on.
    fn statfs(&self) -> io::Result<StatFs>;
    /// Whether `a` and `b` are names of one file on disk (hard links).
    fn same_file(&self, a: &[u8], b: &[u8]) -> bool;
    /// Whether `rel` exists (not followed).
    fn exists(&self, rel: &[u8]) -> bool;

    // ---- files ----

    /// Opens an existing file for reading and writing.
    fn open_rw(&self, rel: &[u8]) -> io::Result<File>;
    /// Opens an existing file for reading.
    fn open_ro(&self, rel: &[u8]) -> io::Result<File>;
    /// Creates a new file (failing if the name exists), open for reading and writing.
    fn create_file(&self, rel: &[u8], perm: u16) -> io::Result<File>;
    /// Allocates or frees space in an open upper file.
    fn allocate(&self, file: &File, a: Allocate) -> io::Result<()>;
    /// Whether an open for writing failed only because the file may not be written (a
    /// read-only file, filesystem or running program): a read-only open may still do.
    fn is_read_only_refusal(&self, e: &io::Error) -> bool;

    // ---- names ----

    fn mkdir(&self, rel: &[u8], mode: u32) -> io::Result<()>;
    /// Makes a special file (or an empty regular one).
    fn mknod(&self, rel: &[u8], kind: FileKind, perm: u16, rdev: u64) -> io::Result<()>;
    fn unlink(&self, rel: &[u8]) -> io::Result<()>;
    fn rmdir(&self, rel: &[u8]) -> io::Result<()>;
    /// Renames `from` to `to`; with `noreplace`, fails with `AlreadyExists` rather than
    /// replace an existing `to`.
    fn rename(&self, from: &[u8], to: &[u8], noreplace: bool) -> io::Result<()>;
    fn symlink(&self, target: &OsStr, rel: &[u8]) -> io::Result<()>;
    fn link(&self, from: &[u8], to: &[u8]) -> io::Result<()>;
    fn readlink(&self, rel: &[u8]) -> io::Result<OsString>;
    /// Every name in an upper directory, markers included.
    fn list_raw(&self, rel: &[u8]) -> io::Result<Vec<(OsString, FileKind)>>;

    // ---- extended attributes ----

    fn set_xattr(&self, rel: &[u8], name: &OsStr, value: &[u8], how: XattrSet) -> io::Result<()>;
    fn get_xattr(&self, rel: &[u8], name: &OsStr) -> io::Result<Vec<u8>>;
    /// The names of `rel`'s extended attributes, each followed by a NUL byte.
    fn list_xattr(&self, rel: &[u8]) -> io::Result<Vec<u8>>;
    fn remove_xattr(&self, rel: &[u8], name: &OsStr) -> io::Result<()>;

    /// The directory descriptor the upper works from, if it has one: how the Linux
    /// daemon reaches the venv's own files behind its mount (`/proc/PID/fd/N`).
    #[cfg(unix)]
    fn dir_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }

    // ---- references into read-only sources ----

    /// The read-only sources references may point into.
    fn references(&self) -> &References;
    /// The attributes of file `target` (followed), as node `ino`.
    fn target_attr(&self, target: &Path, ino: Ino) -> io::Result<Attr>;

    /// The file the entry `rel` refers to, if it is a reference: a symlink whose target
    /// [`References::target`] accepts.
    fn reference_target(&self, rel: &[u8]) -> Option<PathBuf> {
        let link = self.readlink(rel).ok()?;
        self.references().target(Path::new(&link))
    }

    /// Whether the entry `rel` is a reference (see [`Upper::reference_target`]).
    fn is_reference(&self, rel: &[u8]) -> bool {
        self.reference_target(rel).is_some()
    }

    /// The attributes of the file reference `rel` points to, as node `ino`.
    fn reference_attr(&self, rel: &[u8], ino: Ino) -> io::Result<Attr> {
        let target = self.reference_target(rel).ok_or(io::ErrorKind::NotFound)?;
        self.target_attr(&target, ino)
    }

    /// Opens the file reference `rel` points to, for reading.
    fn open_reference(&self, rel: &[u8]) -> io::Result<File> {
        let target = self.reference_target(rel).ok_or(io::ErrorKind::NotFound)?;
        File::open(target)
    }

    // ---- built on the above: the same for every upper ----

    /// This upper's work directory.
    fn work(&self) -> &Work;

    /// A fresh name in the work directory.
    fn temp(&self) -> Rel {
        self.work().temp()
    }

    /// Unlinks a file if it exists.
    fn remove_if_present(&self, rel: &[u8]) -> io::Result<()> {
        match self.unlink(rel) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// An upper directory's entries with the overlay markers interpreted.
    fn list(&self, rel: &[u8]) -> io::Result<Listing> {
        let mut listing = Listing::default();
        let at_root = rel.is_empty();
        for (name, kind) in self.list_raw(rel)? {
            let bytes = name.as_encoded_bytes();
            if (at_root && bytes == STATE_DIR.as_bytes())
                || bytes == crate::venv::UNMOUNTED_GUARD.as_bytes()
            {
                continue;
            }
            match crate::upper_format::classify(&name) {
                EntryName::Opaque => listing.opaque = true,
                EntryName::Redirect => listing.redirect = Some(self.read_small(&join(rel, &name))?),
                EntryName::Whiteout(hidden) => listing.whiteouts.push(hidden.to_owned()),
                EntryName::Entry => listing.entries.push((name, kind)),
            }
        }
        // A real entry wins over a whiteout of the same name: that pair is what a crash
        // between "create whiteout" and "remove entry" (or the reverse) leaves behind.
        listing
            .whiteouts
            .retain(|w| !listing.entries.iter().any(|(n, _)| n == w));
        Ok(listing)
    }

    /// The markers of a directory only (cheaper than a listing).
    fn markers(&self, rel: &[u8]) -> io::Result<(bool, Option<Vec<u8>>)> {
        let opaque = self.exists(&join(rel, OsStr::new(OPAQUE)));
        let redirect = match self.read_small(&join(rel, OsStr::new(REDIRECT))) {
            Ok(v) => Some(v),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok((opaque, redirect))
    }

    /// The content of a small file (a marker).
    fn read_small(&self, rel: &[u8]) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let mut v = Vec::new();
        self.open_ro(rel)?.read_to_end(&mut v)?;
        Ok(v)
    }

    /// Creates (or replaces) a small file atomically: temp file, fsync, rename.
    fn write_atomic(&self, rel: &[u8], content: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let tmp = self.temp();
        let mut f = self.create_file(&tmp, 0o644)?;
        f.write_all(content)?;
        f.sync_all()?;
        drop(f);
        self.rename(&tmp, rel, false)
    }

    /// Creates an empty marker file (whiteout or opaque) if it is not there yet.
    fn touch(&self, rel: &[u8]) -> io::Result<()> {
        match self.create_file(rel, 0o644) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes the files venvfs keeps hidden in a directory (before removing or replacing
    /// it, once it is empty in the merged view): its markers, and the unmounted-venv guard
    /// (site-packages holds it, and a listing hides it, so `rm -rf` through the mount
    /// must not find site-packages still holding a file it never saw).
    fn clear_markers(&self, rel: &[u8]) -> io::Result<()> {
        for (name, _) in self.list_raw(rel)? {
            if is_marker(&name)
                || name.as_encoded_bytes() == crate::venv::UNMOUNTED_GUARD.as_bytes()
            {
                self.unlink(&join(rel, &name))?;
            }
        }
        Ok(())
    }

    /// Removes leftovers of copy-ups that daemons killed on this host did not finish (see
    /// [`work`]: other daemons' work directories stay).
    fn clean_work(&self) -> io::Result<()> {
        let me = work::Owner::this();
        for (name, kind) in self.list_raw(WORK.as_bytes())? {
            let is_dir = kind == FileKind::Dir;
            if !work::is_stale(&name.to_string_lossy(), is_dir, &me) {
                continue;
            }
            let rel = join(WORK.as_bytes(), &name);
            match is_dir {
                true => self.remove_tree(&rel)?,
                false => self.unlink(&rel)?,
            }
        }
        Ok(())
    }

    /// Removes this upper's work directory, at the end of a mount (nothing is being built
    /// any more).
    fn remove_work(&self) -> io::Result<()> {
        self.remove_tree(self.work().dir().as_bytes())
    }

    /// Removes `rel` and everything below it.
    fn remove_tree(&self, rel: &[u8]) -> io::Result<()> {
        for (name, kind) in self.list_raw(rel)? {
            let child = join(rel, &name);
            if kind == FileKind::Dir {
                self.remove_tree(&child)?;
            } else {
                self.unlink(&child)?;
            }
        }
        self.rmdir(rel)
    }
}

/// Makes the state and work directories of a new upper and clears what daemons gone left
/// in the work directory.
fn ready(upper: &dyn Upper) -> io::Result<()> {
    let mkdir = |d: &str| match upper.mkdir(d.as_bytes(), 0o700) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    };
    mkdir(STATE_DIR)?;
    mkdir(WORK)?;
    // (its own directory after the cleaning, which takes one of an earlier process with
    // the same pid for stale)
    upper.clean_work()?;
    mkdir(upper.work().dir())
}

/// Opens the venv directory `dir` as the upper layer with this platform's implementation
/// (the POSIX one where there is one), its work directory readied.
pub fn open(dir: &Path, references: References) -> io::Result<Box<dyn Upper>> {
    #[cfg(unix)]
    let upper: Box<dyn Upper> = Box::new(posix::PosixUpper::open(dir, references)?);
    #[cfg(not(unix))]
    let upper: Box<dyn Upper> = Box::new(portable::PortableUpper::open(dir, references)?);
    ready(&*upper)?;
    Ok(upper)
}

/// Opens `dir` as the upper layer through `std::fs` paths only ([`portable::PortableUpper`]),
/// its work directory readied: what a Windows mount uses, here for tests on any platform.
pub fn open_portable(dir: &Path, references: References) -> io::Result<Box<dyn Upper>> {
    let upper: Box<dyn Upper> = Box::new(portable::PortableUpper::open(dir, references)?);
    ready(&*upper)?;
    Ok(upper)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opening an upper clears what daemons known to be gone left in the work directory,
    /// and nothing another host (or a live daemon here) may still be building.
    #[test]
    fn work_directories_of_others_survive_an_open() {
        let venv = tempfile::tempdir().unwrap();
        let work = venv.path().join(WORK);
        let me = work::Owner::this();
        let elsewhere = work::Owner {
            host: format!("{}-other", me.host),
            ..me.clone()
        };
        let gone_here = work::Owner {
            pid: u32::MAX - 1,
            ..me.clone()
        };
        for owner in [&elsewhere, &gone_here, &me] {
            std::fs::create_dir_all(work.join(owner.name())).unwrap();
            std::fs::write(work.join(owner.name()).join("0"), b"half a copy").unwrap();
        }
        for portable in [false, true] {
            let upper = match portable {
                false => open(venv.path(), References::default()),
                true => open_portable(venv.path(), References::default()),
            }
            .unwrap();
            assert!(
                work.join(elsewhere.name()).join("0").exists(),
                "another host's"
            );
            assert!(
                !work.join(me.name()).join("0").exists(),
                "an earlier process with this pid"
            );
            if cfg!(target_os = "linux") {
                assert!(!work.join(gone_here.name()).exists(), "a dead daemon's");
            }
            let tmp = upper.temp();
            assert!(tmp.starts_with(upper.work().dir().as_bytes()));
            upper.write_atomic(b"marker", b"x").unwrap();
            upper.remove_work().unwrap();
            assert!(!work.join(me.name()).exists());
        }
    }
}
