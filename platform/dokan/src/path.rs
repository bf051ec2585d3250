//! Dokan's paths: `\` for the volume's root, `\dir\name` below it. The core is asked by
//! inode, so the adapter walks a path one name at a time; this splits it.

use std::ffi::OsStr;

use crate::ntstatus::Failure;

/// The names of a Dokan path, root first. `\` and the empty path are the root (no names).
/// Empty components (`\a\\b`, a trailing `\`) are skipped, as Windows's own parser does;
/// a `:` (a named stream, `file:stream`) is refused: the volume does not offer streams.
pub fn components(path: &str) -> Result<Vec<&OsStr>, Failure> {
    if path.contains(':') {
        return Err(Failure::InvalidPath("named streams are not supported"));
    }
    Ok(path
        .split(['\\', '/'])
        .filter(|c| !c.is_empty())
        .map(OsStr::new)
        .collect())
}

/// The parent's names and the last name of a path; `None` for the root.
pub fn split_last(path: &str) -> Result<Option<(Vec<&OsStr>, &OsStr)>, Failure> {
    let mut names = components(path)?;
    Ok(names.pop().map(|last| (names, last)))
}

/// A UTF-16 path as Dokan passes it, as text: unpaired surrogates cannot name anything the
/// core stores.
pub fn from_utf16(path: &[u16]) -> Result<String, Failure> {
    String::from_utf16(path).map_err(|_| Failure::InvalidPath("not valid UTF-16"))
}

/// A mount point as Dokan lists it (`\\DosDevices\\C:\\proj\\.venv`, `\\??\\V:`) as a
/// Win32 path (`C:\\proj\\.venv`, `V:`).
pub fn from_device_path(p: &str) -> String {
    for prefix in ["\\DosDevices\\", "\\??\\"] {
        if let Some(rest) = p.strip_prefix(prefix) {
            return rest.to_owned();
        }
    }
    p.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_names() {
        assert!(components("\\").unwrap().is_empty());
        assert!(components("").unwrap().is_empty());
        assert_eq!(
            components("\\Lib\\site-packages").unwrap(),
            ["Lib", "site-packages"]
        );
        assert_eq!(components("\\a\\\\b\\").unwrap(), ["a", "b"]);
        assert!(split_last("\\").unwrap().is_none());
        let (parent, name) = split_last("\\Scripts\\python.exe").unwrap().unwrap();
        assert_eq!(parent, ["Scripts"]);
        assert_eq!(name, "python.exe");
        let (parent, name) = split_last("\\pyvenv.cfg").unwrap().unwrap();
        assert!(parent.is_empty());
        assert_eq!(name, "pyvenv.cfg");
    }

    #[test]
    fn device_paths() {
        assert_eq!(from_device_path("\\DosDevices\\V:"), "V:");
        assert_eq!(from_device_path("\\??\\C:\\p\\.venv"), "C:\\p\\.venv");
        assert_eq!(from_device_path("C:\\x"), "C:\\x");
    }

    #[test]
    fn streams_and_bad_utf16_are_invalid_names() {
        assert!(matches!(
            components("\\a.txt:Zone.Identifier"),
            Err(Failure::InvalidPath(_))
        ));
        let good: Vec<u16> = "\\Lib\\é".encode_utf16().collect();
        assert_eq!(from_utf16(&good).unwrap(), "\\Lib\\é");
        assert!(from_utf16(&[0x5c, 0xD800]).is_err());
    }
}
