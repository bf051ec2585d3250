//! Changing the files of an unmounted venv so that a failure leaves it as it was: files to
//! remove or overwrite are first moved aside into `.venvfs/txn-<pid>/`, new files and the
//! directories made for them are remembered, and `rollback` undoes both. The manifest,
//! replaced atomically by the caller between `sync` and `commit`, is the commit point.

use std::io;
use std::path::{Path, PathBuf};

pub struct Txn {
    stash: PathBuf,
    /// (original path, where it was moved to)
    moved: Vec<(PathBuf, PathBuf)>,
    created: Vec<PathBuf>,
    created_dirs: Vec<PathBuf>,
    /// Directories known to exist (so that writing many files asks once per directory).
    existing_dirs: std::collections::HashSet<PathBuf>,
    /// The files written, still open: [`Txn::sync`] waits for their data.
    written: Vec<std::fs::File>,
}

impl Txn {
    pub fn begin(venv: &Path) -> io::Result<Txn> {
        let stash = venv
            .join(crate::manifest::STATE_DIR)
            .join(format!("txn-{}", std::process::id()));
        if stash.exists() {
            std::fs::remove_dir_all(&stash)?;
        }
        std::fs::create_dir_all(&stash)?;
        Ok(Txn {
            stash,
            moved: Vec::new(),
            created: Vec::new(),
            created_dirs: Vec::new(),
            existing_dirs: Default::default(),
            written: Vec::new(),
        })
    }

    /// Moves a file (or symlink) aside, if it exists.
    pub fn remove(&mut self, path: &Path) -> io::Result<bool> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if !m.is_dir() => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        if let Some(i) = self.created.iter().position(|p| p == path) {
            // written by this transaction: nothing to restore
            self.created.swap_remove(i);
            std::fs::remove_file(path)?;
            return Ok(true);
        }
        let aside = self.stash.join(self.moved.len().to_string());
        std::fs::rename(path, &aside)?;
        self.moved.push((path.to_owned(), aside));
        Ok(true)
    }

    /// Writes a file, moving any old one aside first. Not fsynced: [`Txn::sync`] makes all
    /// of them durable at once.
    pub fn write(&mut self, path: &Path, content: &[u8], mode: u32) -> io::Result<()> {
        self.remove(path)?;
        if let Some(parent) = path.parent().filter(|p| !self.existing_dirs.contains(*p)) {
            let mut missing = Vec::new();
            let mut d = parent;
            while !self.existing_dirs.contains(d) && !d.exists() {
                missing.push(d.to_owned());
                match d.parent() {
                    Some(p) => d = p,
                    None => break,
                }
            }
            std::fs::create_dir_all(parent)?;
            self.created_dirs.extend(missing.into_iter().rev());
            self.existing_dirs.insert(parent.to_owned());
        }
        // Whatever was there has been moved aside: the file is made in place (a crash
        // before the manifest commits leaves no layer that would show it).
        use std::io::Write;
        let mut f = crate::fsutil::create_new(path, mode)?;
        self.created.push(path.to_owned());
        f.write_all(content)?;
        // (the umask may have taken bits away)
        crate::fsutil::set_mode(&f, mode)?;
        // start writing the data out now; `sync` waits for it
        start_writeback(&f);
        self.written.push(f);
        Ok(())
    }

    /// Makes everything written so far durable, before the caller commits.
    ///
    /// Only this transaction's own files are waited for, not the whole filesystem's (a
    /// `syncfs` also waits for whatever else is being written there, such as another
    /// venv's copy of a whole package set): each written file (their writeback was started
    /// as they were written), then every directory whose entries changed.
    pub fn sync(&self) -> io::Result<()> {
        // (on threads: a few fsyncs waiting at once cost about what one does)
        crate::parallel::try_each_waiting(&self.written, |f| f.sync_data())?;
        let mut dirs: std::collections::BTreeSet<&Path> = std::collections::BTreeSet::new();
        dirs.insert(&self.stash);
        let changed = self
            .created
            .iter()
            .chain(self.moved.iter().map(|(orig, _)| orig));
        dirs.extend(changed.filter_map(|p| p.parent()));
        dirs.extend(self.created_dirs.iter().filter_map(|d| d.parent()));
        let dirs: Vec<&Path> = dirs.into_iter().collect();
        crate::parallel::try_each_waiting(&dirs, |d| crate::fsutil::sync_dir(d))
    }

    /// Undoes every change, newest first.
    pub fn rollback(mut self) {
        // (closed first: Windows may keep an open file's name until it is closed)
        self.written.clear();
        for p in self.created.drain(..).rev() {
            let _ = std::fs::remove_file(p);
        }
        for (orig, aside) in self.moved.drain(..).rev() {
            let _ = std::fs::rename(aside, orig);
        }
        for d in self.created_dirs.drain(..).rev() {
            let _ = std::fs::remove_dir(d);
        }
        let _ = std::fs::remove_dir_all(&self.stash);
    }

    /// Drops what was moved aside and prunes directories left empty by removals, up to (not
    /// including) the `keep` directories.
    pub fn commit(self, keep: &[PathBuf]) {
        let _ = self.commit_touched(keep);
    }

    /// [`Txn::commit`], returning every path (relative to `root`) whose file it wrote or
    /// removed, and every directory it made or emptied away: what a mounted venv must look
    /// at again to show the change.
    pub fn commit_touched(mut self, keep: &[PathBuf]) -> Vec<PathBuf> {
        let touched: Vec<PathBuf> = self
            .created
            .iter()
            .chain(self.moved.iter().map(|(orig, _)| orig))
            .chain(&self.created_dirs)
            .cloned()
            .collect();
        let emptied: std::collections::BTreeSet<PathBuf> = self
            .moved
            .iter()
            .filter_map(|(orig, _)| orig.parent().map(Path::to_owned))
            .collect();
        self.moved.clear();
        let _ = std::fs::remove_dir_all(&self.stash);
        for d in emptied.iter().rev() {
            let mut d = d.as_path();
            while !keep.iter().any(|k| k == d) && keep.iter().any(|k| d.starts_with(k)) {
                if std::fs::remove_dir(d).is_err() {
                    break;
                }
                match d.parent() {
                    Some(p) => d = p,
                    None => break,
                }
            }
        }
        touched
    }
}

/// Starts writing `f`'s dirty pages to disk without waiting (`sync_file_range`), so that
/// the fsyncs of [`Txn::sync`] find the data written and its blocks allocated in one
/// journal transaction, rather than each making its own.
#[cfg(target_os = "linux")]
fn start_writeback(f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; the call only schedules writeback. Failing (a
    // filesystem without it) leaves the work to the fsyncs.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Elsewhere the fsyncs of [`Txn::sync`] do all the writing.
#[cfg(not(target_os = "linux"))]
fn start_writeback(_f: &std::fs::File) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_and_commit_keeps() {
        let venv = tempfile::tempdir().unwrap();
        let v = venv.path();
        std::fs::create_dir_all(v.join("bin")).unwrap();
        std::fs::write(v.join("bin/old"), b"old").unwrap();
        std::fs::write(v.join("bin/same"), b"before").unwrap();
        let mut t = Txn::begin(v).unwrap();
        t.remove(&v.join("bin/old")).unwrap();
        t.write(&v.join("bin/same"), b"after", 0o755).unwrap();
        t.write(&v.join("lib/x/new.dist-info/RECORD"), b"r", 0o644)
            .unwrap();
        assert!(!v.join("bin/old").exists());
        t.rollback();
        assert_eq!(std::fs::read(v.join("bin/old")).unwrap(), b"old");
        assert_eq!(std::fs::read(v.join("bin/same")).unwrap(), b"before");
        assert!(
            !v.join("lib").exists(),
            "directories made for new files are removed"
        );

        let mut t = Txn::begin(v).unwrap();
        t.remove(&v.join("bin/old")).unwrap();
        t.write(&v.join("bin/same"), b"after", 0o755).unwrap();
        t.sync().unwrap();
        t.commit(&[v.join("bin")]);
        assert!(!v.join("bin/old").exists());
        assert_eq!(std::fs::read(v.join("bin/same")).unwrap(), b"after");
        let state: Vec<_> = std::fs::read_dir(v.join(".venvfs")).unwrap().collect();
        assert!(state.is_empty(), "the stash is gone");
    }
}
