//! Where a venv's own content waits while the venv directory is a Dokan mount point.
//!
//! Why: on Windows a Dokan volume is mounted on a drive letter or on an empty NTFS folder,
//! so the venv directory cannot be both the mount point and the upper layer beneath it (as
//! it is under FUSE on Linux). `venvfs mount .venv` therefore renames the venv directory to
//! [`aside_dir`] (`.venv.venvfs-own`, beside it: one rename, so nothing is half moved),
//! makes an empty `.venv` for the mount point, and serves with the renamed directory as the
//! upper layer (its `.venvfs` state and manifest included). At unmount the two change back.
//! So the venv keeps its path whether mounted or not, and an unmounted venv is an ordinary
//! venv directory again: its Python then reports, through the venv's guard `.pth`, that
//! `venvfs mount` is missing.
//!
//! A daemon that dies leaves the pair behind (an empty or dead mount point, and the content
//! aside); [`restore`] puts them back, and `venvfs mount` calls it first.
//!
//! Plain `std::fs` operations, compiled and tested on every platform; only the Windows
//! mount uses them.

use std::io;
use std::path::{Path, PathBuf};

/// The directory holding `venv`'s own content while it is mounted: `<venv>.venvfs-own`
/// beside it.
pub fn aside_dir(venv: &Path) -> PathBuf {
    let mut name = venv.file_name().unwrap_or_default().to_os_string();
    name.push(".venvfs-own");
    venv.with_file_name(name)
}

/// Whether `venv`'s content is aside (mounted, or left so by a daemon that died).
pub fn is_aside(venv: &Path) -> bool {
    aside_dir(venv).is_dir()
}

/// Moves `venv`'s content aside and leaves an empty directory at its path for the mount
/// point; returns the directory that now holds the content.
pub fn move_aside(venv: &Path) -> io::Result<PathBuf> {
    let aside = aside_dir(venv);
    if aside.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists: a mount of {} is running, or one died (`venvfs umount` puts it back)",
                aside.display(),
                venv.display()
            ),
        ));
    }
    std::fs::rename(venv, &aside)?;
    if let Err(e) = std::fs::create_dir(venv) {
        // (put it back: the venv must not vanish because its mount point could not be made)
        let _ = std::fs::rename(&aside, venv);
        return Err(e);
    }
    Ok(aside)
}

/// Puts `venv`'s content back at its path once nothing is mounted there: the mount point
/// (empty) is removed and the aside directory renamed back. Returns whether there was
/// anything to put back. Refuses, changing nothing, if the mount point is not empty
/// (something was written into it while it was not mounted).
pub fn restore(venv: &Path) -> io::Result<bool> {
    let aside = aside_dir(venv);
    if !aside.is_dir() {
        return Ok(false);
    }
    match std::fs::read_dir(venv) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::DirectoryNotEmpty,
                    format!(
                        "{} is not empty, so the venv's content in {} cannot be put back; \
                         move what is in {} away and try again",
                        venv.display(),
                        aside.display(),
                        venv.display()
                    ),
                ));
            }
            std::fs::remove_dir(venv)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::rename(&aside, venv)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aside_and_back() {
        let tmp = tempfile::tempdir().unwrap();
        let venv = tmp.path().join(".venv");
        std::fs::create_dir_all(venv.join(".venvfs")).unwrap();
        std::fs::write(venv.join("pyvenv.cfg"), "version = 3.12.1\n").unwrap();
        assert_eq!(aside_dir(&venv), tmp.path().join(".venv.venvfs-own"));
        assert!(!is_aside(&venv));
        assert!(!restore(&venv).unwrap(), "nothing to put back");

        let aside = move_aside(&venv).unwrap();
        assert!(is_aside(&venv));
        assert!(aside.join("pyvenv.cfg").is_file() && aside.join(".venvfs").is_dir());
        assert_eq!(
            std::fs::read_dir(&venv).unwrap().count(),
            0,
            "an empty mount point"
        );
        assert!(move_aside(&venv).is_err(), "already aside");

        assert!(restore(&venv).unwrap());
        assert!(venv.join("pyvenv.cfg").is_file() && !aside.exists());
    }

    #[test]
    fn restore_after_a_crash_and_refusals() {
        let tmp = tempfile::tempdir().unwrap();
        let venv = tmp.path().join("env");
        std::fs::create_dir(&venv).unwrap();
        std::fs::write(venv.join("pyvenv.cfg"), "x").unwrap();
        move_aside(&venv).unwrap();
        // a mount point that vanished (a daemon that died, a user who removed it)
        std::fs::remove_dir(&venv).unwrap();
        assert!(restore(&venv).unwrap());
        assert!(venv.join("pyvenv.cfg").is_file());
        // something written into the unmounted mount point: nothing is lost
        move_aside(&venv).unwrap();
        std::fs::write(venv.join("stray"), "y").unwrap();
        let e = restore(&venv).unwrap_err();
        assert!(e.to_string().contains("not empty"), "{e}");
        assert!(venv.join("stray").is_file() && aside_dir(&venv).join("pyvenv.cfg").is_file());
    }
}
