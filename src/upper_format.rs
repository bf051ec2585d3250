//! The upper layer's on-disk format: the names venvfs keeps for itself in the venv's own
//! directories. Plain files, so the format works on any filesystem and without privileges:
//! - `.wh.NAME`: a whiteout, NAME is deleted even if a lower layer has it;
//! - `.wh..wh..opq` inside a directory: the directory is opaque, no lower content shows;
//! - `.wh..wh..redirect` inside a directory: its lower content comes from the venv path
//!   written in the file (a lower directory that was renamed), not from its own path.
//!
//! Platform-neutral: the mount's upper layer reads these names, and the commands that change
//! an unmounted venv (which build on every platform) write and clear them.

use std::ffi::{OsStr, OsString};

/// What every name venvfs keeps for itself starts with.
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The marker of an opaque directory.
pub const OPAQUE: &str = ".wh..wh..opq";
/// The marker of a directory whose lower content comes from another venv path.
pub const REDIRECT: &str = ".wh..wh..redirect";

/// `.wh.NAME`: the whiteout that hides the layer entry NAME of the same directory.
pub fn whiteout_name(name: &OsStr) -> OsString {
    let mut n = OsString::from(".wh.");
    n.push(name);
    n
}

/// Names venvfs keeps for itself: whiteouts and directory markers.
pub fn is_marker(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(WHITEOUT_PREFIX)
}

/// What a name in a directory of the venv's own means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryName<'a> {
    /// An ordinary entry, shown as it is.
    Entry,
    /// A whiteout hiding the lower entry of this name.
    Whiteout(&'a OsStr),
    /// The directory's opaque marker ([`OPAQUE`]).
    Opaque,
    /// The directory's redirect marker ([`REDIRECT`]).
    Redirect,
}

/// Tells what the directory entry `name` means.
pub fn classify(name: &OsStr) -> EntryName<'_> {
    let bytes = name.as_encoded_bytes();
    if bytes == OPAQUE.as_bytes() {
        EntryName::Opaque
    } else if bytes == REDIRECT.as_bytes() {
        EntryName::Redirect
    } else if let Some(hidden) = bytes.strip_prefix(WHITEOUT_PREFIX) {
        // SAFETY: `hidden` is what follows the ASCII prefix in bytes from
        // `as_encoded_bytes`, a split the encoding allows after any non-empty UTF-8 text.
        EntryName::Whiteout(unsafe { OsStr::from_encoded_bytes_unchecked(hidden) })
    } else {
        EntryName::Entry
    }
}

/// Whether the venv's own directory at `root` hides the lower entry at venv-relative
/// `rel` ('/'-separated): a whiteout of it or of a directory above it, an opaque directory
/// above it, or an own file where a directory above it would be.
pub fn hides(root: &std::path::Path, rel: &str) -> bool {
    let mut dir = root.to_owned();
    let mut parts = rel.split('/').filter(|p| !p.is_empty()).peekable();
    while let Some(part) = parts.next() {
        if dir
            .join(whiteout_name(part.as_ref()))
            .symlink_metadata()
            .is_ok()
        {
            return true;
        }
        if parts.peek().is_none() {
            return false;
        }
        dir.push(part);
        match dir.symlink_metadata() {
            Err(_) => return false, // (nothing of the own below: nothing hides)
            Ok(m) if !m.is_dir() => return true,
            Ok(_) => {}
        }
        if dir.join(OPAQUE).symlink_metadata().is_ok() {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteout_name() {
        assert_eq!(super::whiteout_name("mod.py".as_ref()), ".wh.mod.py");
    }

    #[test]
    fn names_are_classified() {
        fn c(n: &str) -> EntryName<'_> {
            classify(OsStr::new(n))
        }
        assert_eq!(c("mod.py"), EntryName::Entry);
        assert_eq!(c(".whl"), EntryName::Entry);
        assert_eq!(c(".wh.mod.py"), EntryName::Whiteout(OsStr::new("mod.py")));
        assert_eq!(c(OPAQUE), EntryName::Opaque);
        assert_eq!(c(REDIRECT), EntryName::Redirect);
        // a whiteout of a marker-like name is still a whiteout
        assert_eq!(c(".wh..wh.x"), EntryName::Whiteout(OsStr::new(".wh.x")));
        let wh = super::whiteout_name(OsStr::new("é.py"));
        assert_eq!(classify(&wh), EntryName::Whiteout(OsStr::new("é.py")));
        for marker in [".wh.x", OPAQUE, REDIRECT] {
            assert!(is_marker(OsStr::new(marker)), "{marker}");
        }
        assert!(!is_marker(OsStr::new("wh.x")));
    }
}
