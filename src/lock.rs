//! One change at a time per venv: `.venvfs/lock`, made with `O_EXCL` (atomic on local
//! filesystems, NFS and sshfs alike, where `flock` may not reach the server), held while a
//! command reads the manifest, changes the venv's files and writes the manifest back. So
//! `venvfs uninstall` on one host and `venvfs sync` on another cannot interleave and leave
//! the venv with neither's package set.
//!
//! The file names its holder ([`Owner`]: host, pid namespace, pid). A holder that is known
//! to be gone (this host, a pid that no longer runs) is taken over; one on another host is
//! waited for, then named in the error, with what to do if it is gone.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::upper::work::Owner;

/// How long a command waits for another change of the same venv to finish.
const WAIT: Duration = Duration::from_secs(60);

/// How old an empty lock file must be to be taken as left by a command killed while it
/// made it.
const EMPTY_GRACE: Duration = Duration::from_secs(2);

/// Whether the file at `path` was last modified more than `age` ago.
fn made_before(path: &Path, age: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|e| e > age)
}

/// The lock of one venv, released when dropped.
#[derive(Debug)]
pub struct VenvLock {
    /// The lock file (none for a venv without venvfs's state yet).
    path: Option<PathBuf>,
    /// `.venvfs`'s modification time before the lock file was made, and right after: when
    /// nothing else in `.venvfs` changed meanwhile (a change refused, or one that wrote
    /// nothing there), the first is put back as the lock goes, so that taking the lock
    /// leaves no trace.
    times: Option<(std::time::SystemTime, std::time::SystemTime)>,
}

impl VenvLock {
    /// Takes the lock of the venv whose own directory is `root` (the venv, or where its
    /// own files are reached beneath its mount), waiting up to a minute for another holder.
    pub fn acquire(root: &Path, shown: &Path) -> Result<VenvLock, String> {
        Self::acquire_within(root, shown, WAIT)
    }

    /// Takes the lock if nobody holds it (else the error names the holder).
    pub fn try_acquire(root: &Path, shown: &Path) -> Result<VenvLock, String> {
        Self::acquire_within(root, shown, Duration::ZERO)
    }

    fn acquire_within(root: &Path, shown: &Path, wait: Duration) -> Result<VenvLock, String> {
        let state_dir = root.join(crate::manifest::STATE_DIR);
        if !state_dir.is_dir() {
            // A venv venvfs has not changed yet: nothing to lock in, and making `.venvfs`
            // for the lock would change the venv even when the change is refused. (Two
            // first changes of one venv at once are not serialized.)
            return Ok(VenvLock {
                path: None,
                times: None,
            });
        }
        let path = state_dir.join("lock");
        let me = Owner::this();
        let mtime = |d: &Path| std::fs::metadata(d).and_then(|m| m.modified()).ok();
        let started = Instant::now();
        let mut told = false;
        loop {
            let before = mtime(&state_dir);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", me.name());
                    let times = before.zip(mtime(&state_dir));
                    return Ok(VenvLock {
                        path: Some(path),
                        times,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(format!(
                        "cannot lock {} for a change ({}): {e}",
                        shown.display(),
                        path.display()
                    ));
                }
            }
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            if holder.is_empty() && made_before(&path, EMPTY_GRACE) {
                // (its maker was killed between making it and naming itself in it, which it
                // does at once: an empty lock this old has no holder)
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let owner = Owner::parse(holder.trim());
            if owner
                .as_ref()
                .is_some_and(|o| o.is_gone(&me) && o.pid != me.pid)
            {
                // (a command killed while it held the lock: nothing is half done, as every
                // change commits by replacing the manifest)
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let who = match &owner {
                Some(o) => format!("process {} on host {}", o.pid, o.host),
                None => "another process".to_owned(),
            };
            if started.elapsed() >= wait {
                return Err(format!(
                    "{} is being changed by {who}; try again when it is done, or, if that \
                     process is gone, remove {}",
                    shown.display(),
                    path.display()
                ));
            }
            if !told {
                eprintln!(
                    "venvfs: waiting for {who}, which is changing {}",
                    shown.display()
                );
                told = true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for VenvLock {
    fn drop(&mut self) {
        let Some(path) = &self.path else { return };
        let dir = path.parent().expect("in .venvfs");
        let untouched = self.times.filter(|&(_, with_lock)| {
            std::fs::metadata(dir).and_then(|m| m.modified()).ok() == Some(with_lock)
        });
        let _ = std::fs::remove_file(path);
        #[cfg(unix)]
        if let Some((before, _)) = untouched {
            let _ = std::fs::File::open(dir).and_then(|d| d.set_modified(before));
        }
        #[cfg(not(unix))]
        let _ = untouched;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn venv() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(crate::manifest::STATE_DIR)).unwrap();
        d
    }

    #[test]
    #[cfg(unix)]
    fn a_lock_taken_and_let_go_leaves_no_trace() {
        let d = venv();
        let state = d.path().join(crate::manifest::STATE_DIR);
        let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        std::fs::File::open(&state)
            .unwrap()
            .set_modified(old)
            .unwrap();
        drop(VenvLock::acquire(d.path(), d.path()).unwrap());
        assert_eq!(std::fs::metadata(&state).unwrap().modified().unwrap(), old);
        // a change that wrote into .venvfs keeps its time
        let lock = VenvLock::acquire(d.path(), d.path()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(state.join("manifest.toml"), b"x").unwrap();
        drop(lock);
        assert_ne!(std::fs::metadata(&state).unwrap().modified().unwrap(), old);
    }

    #[test]
    #[cfg(unix)]
    fn an_empty_lock_left_by_a_killed_maker_is_taken_over_once_old() {
        let d = venv();
        let lock_file = d.path().join(".venvfs").join("lock");
        std::fs::write(&lock_file, b"").unwrap();
        // (just made: its maker may be naming itself in it now)
        let err = VenvLock::acquire_within(d.path(), d.path(), Duration::from_millis(150));
        assert!(err.is_err());
        let old = std::time::SystemTime::now() - EMPTY_GRACE * 2;
        std::fs::File::options()
            .write(true)
            .open(&lock_file)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let lock = VenvLock::acquire_within(d.path(), d.path(), Duration::ZERO).unwrap();
        assert!(!std::fs::read_to_string(&lock_file).unwrap().is_empty());
        drop(lock);
    }

    #[test]
    fn a_venv_without_state_is_left_without() {
        let d = tempfile::tempdir().unwrap();
        drop(VenvLock::acquire(d.path(), d.path()).unwrap());
        assert!(!d.path().join(crate::manifest::STATE_DIR).exists());
    }

    #[test]
    fn one_holder_at_a_time() {
        let d = venv();
        let lock = VenvLock::acquire(d.path(), d.path()).unwrap();
        let lock_file = d.path().join(".venvfs").join("lock");
        assert!(lock_file.exists());
        // (this process holds it: a second taker waits, then names the holder)
        let again = VenvLock::acquire_within(d.path(), d.path(), Duration::from_millis(250));
        let err = again.unwrap_err();
        assert!(err.contains("is being changed by process"), "{err}");
        assert!(err.contains(&lock_file.display().to_string()), "{err}");
        drop(lock);
        assert!(!lock_file.exists());
        VenvLock::acquire(d.path(), d.path()).unwrap();
    }

    #[test]
    fn a_holder_on_another_host_is_waited_for_and_one_gone_here_is_taken_over() {
        let d = venv();
        let lock_file = d.path().join(".venvfs").join("lock");
        let me = Owner::this();
        let elsewhere = Owner {
            host: format!("{}-other", me.host),
            ..me.clone()
        };
        std::fs::write(&lock_file, elsewhere.name()).unwrap();
        let err =
            VenvLock::acquire_within(d.path(), d.path(), Duration::from_millis(150)).unwrap_err();
        assert!(err.contains(&elsewhere.host), "{err}");
        if cfg!(target_os = "linux") {
            let gone = Owner {
                pid: u32::MAX - 1,
                ..me.clone()
            };
            std::fs::write(&lock_file, gone.name()).unwrap();
            let lock = VenvLock::acquire_within(d.path(), d.path(), Duration::ZERO).unwrap();
            assert_eq!(
                std::fs::read_to_string(&lock_file).unwrap().trim(),
                me.name()
            );
            drop(lock);
        }
    }
}
