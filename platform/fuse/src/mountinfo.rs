//! Listing venvfs mounts from `/proc/self/mountinfo`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::mount::SUBTYPE;

/// A venvfs mount found in the mount table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountInfo {
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// Its source (`MountConfig::fsname`).
    pub fsname: String,
}

/// The mounts of type `fuse.venvfs` visible to this process, in mount order. Empty when
/// the mount table cannot be read.
pub fn mounts() -> Vec<MountInfo> {
    read_table().map(|table| parse(&table)).unwrap_or_default()
}

/// `/proc/self/mountinfo`, read in one go: the kernel renders the table again for every
/// `read`, and `std::fs::read` starts with 32 bytes (a proc file's size is 0), so it
/// would take eight reads for a table of twenty mounts.
fn read_table() -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(64 << 10);
    std::fs::File::open("/proc/self/mountinfo")?.read_to_end(&mut out)?;
    Ok(out)
}

/// Any mount of the mount table, as `venvfs doctor` describes where a path lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// `ext4`, `fuse.sshfs`, `nfs4`, ...
    pub fstype: String,
    /// The mount's source (a device, `host:/dir`, ...).
    pub source: String,
    /// `major:minor`, as `st_dev` of the files on it.
    pub device: String,
    /// The per-mount options (`rw`, `ro`, `nosuid`, ...).
    pub options: String,
}

/// Every mount visible to this process, in mount order. Empty when the mount table cannot
/// be read.
pub fn table() -> Vec<MountEntry> {
    read_table()
        .map(|table| parse_table(&table))
        .unwrap_or_default()
}

/// The mount that holds `path` (absolute, symlinks resolved): the one whose mount point is
/// the longest prefix of it, the last mounted among equals (it covers the others).
pub fn containing<'a>(table: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    table
        .iter()
        .enumerate()
        .filter(|(_, m)| path.starts_with(&m.mountpoint))
        .max_by_key(|(i, m)| (m.mountpoint.components().count(), *i))
        .map(|(_, m)| m)
}

/// Parse mountinfo lines: `id parent major:minor root mountpoint options [optional...] -
/// fstype source superoptions`.
pub fn parse_table(table: &[u8]) -> Vec<MountEntry> {
    table
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            let sep = fields.iter().position(|f| *f == b"-")?;
            let mountpoint = fields.get(4).filter(|_| sep > 4)?;
            let (ty, source) = (fields.get(sep + 1)?, fields.get(sep + 2)?);
            let text = |f: &[u8]| String::from_utf8_lossy(&unescape(f)).into_owned();
            Some(MountEntry {
                mountpoint: PathBuf::from(OsString::from_vec(unescape(mountpoint))),
                fstype: text(ty),
                source: text(source),
                device: text(fields[2]),
                options: text(fields[5]),
            })
        })
        .collect()
}

fn parse(table: &[u8]) -> Vec<MountInfo> {
    let fstype = format!("fuse.{SUBTYPE}");
    parse_table(table)
        .into_iter()
        .filter(|m| m.fstype == fstype)
        .map(|m| MountInfo {
            mountpoint: m.mountpoint,
            fsname: m.source,
        })
        .collect()
}

/// Undo the kernel's octal escapes (`\040` for space, `\011`, `\012`, `\134`).
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if let Some(b) = octal(&field[i..]) {
            out.push(b);
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

fn octal(s: &[u8]) -> Option<u8> {
    match s {
        [b'\\', d @ ..] if d.len() >= 3 && d[..3].iter().all(|c| (b'0'..=b'7').contains(c)) => {
            let v = d[..3].iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
            u8::try_from(v).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
97 22 0:50 / /tmp/my\\040venv rw,nosuid,nodev,relatime shared:55 - fuse.venvfs venvfs:/x\\040y rw,user_id=0,group_id=0,default_permissions,allow_other
98 22 0:51 / /tmp/other rw,relatime - fuse.sshfs host:/ rw,user_id=0,group_id=0
99 22 0:52 / /tmp/back\\134slash\\012nl rw,relatime - fuse.venvfs src rw
garbage line
";

    #[test]
    fn finds_venvfs_mounts() {
        let got = parse(TABLE.as_bytes());
        assert_eq!(
            got,
            vec![
                MountInfo {
                    mountpoint: PathBuf::from("/tmp/my venv"),
                    fsname: "venvfs:/x y".into(),
                },
                MountInfo {
                    mountpoint: PathBuf::from("/tmp/back\\slash\nnl"),
                    fsname: "src".into(),
                },
            ]
        );
    }

    #[test]
    fn finds_the_mount_holding_a_path() {
        let all = parse_table(TABLE.as_bytes());
        assert_eq!(all.len(), 4);
        assert_eq!(all[2].fstype, "fuse.sshfs");
        assert_eq!(all[2].device, "0:51");
        assert_eq!(all[2].options, "rw,relatime");
        let at = |p: &str| containing(&all, Path::new(p)).map(|m| m.mountpoint.clone());
        assert_eq!(at("/tmp/other/a/b"), Some(PathBuf::from("/tmp/other")));
        assert_eq!(
            at("/tmp/othera"),
            None,
            "a prefix by components, not by bytes"
        );
        assert_eq!(at("/proc/1"), Some(PathBuf::from("/proc")));
    }

    #[test]
    fn unescape_leaves_other_backslashes() {
        assert_eq!(unescape(b"a\\x"), b"a\\x");
        assert_eq!(unescape(b"a\\04"), b"a\\04");
        assert_eq!(unescape(b"\\777"), b"\\777");
        assert_eq!(unescape(b"\\040\\011"), b" \t");
    }
}
