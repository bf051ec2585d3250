//! Remembered listings of uv's unpacked wheels.
//!
//! uv never changes an `archive-v0/<id>/` directory once it has made one: it unpacks a wheel
//! aside and renames the directory into place, and pruning deletes whole entries. So the
//! listing of such a layer (every entry with its kind, mode, size, mtime and link target) is
//! made once and kept in venvfs's own cache, keyed by the layer's path and checked against
//! the directory's identity (device, inode, ctime, mtime). `sync` and `mount` then read one
//! small file instead of listing and `stat`-ing thousands of files: that is most of their
//! time for a big environment, and more on a network filesystem. Any other directory layer
//! is listed afresh every time, since nothing promises it does not change.
//!
//! The file is only a cache: a missing, stale, torn or foreign one is ignored and replaced.

use std::path::{Path, PathBuf};

use venvfs_api::FileKind;

use super::{dir, LayerEntry, LayerError};

const MAGIC: &[u8; 8] = b"VENVFSL\0";
/// Bump when the encoding or what a scan refuses changes.
const FORMAT: u32 = 1;

/// The entries of a directory layer, from the remembered listing when it is one of uv's
/// unpacked wheels and still the same directory.
#[cfg(unix)]
pub fn list(root: &Path, label: &str) -> Result<Vec<LayerEntry>, LayerError> {
    list_in(
        crate::finder::uvcache::own_cache_dir().as_deref(),
        root,
        label,
    )
}

/// Not remembered where there are no inode numbers and change times (Windows, through the
/// standard library): the times left cannot tell a remade cache entry from the old one.
#[cfg(not(unix))]
pub fn list(root: &Path, label: &str) -> Result<Vec<LayerEntry>, LayerError> {
    list_in(None, root, label)
}

/// [`list`], remembering listings below `cache` (venvfs's cache directory).
fn list_in(cache: Option<&Path>, root: &Path, label: &str) -> Result<Vec<LayerEntry>, LayerError> {
    let Some(file) = cache.and_then(|c| cache_file(c, root)) else {
        return dir::scan(root, label);
    };
    let ident = std::fs::metadata(root)
        .map(|m| Identity::of(&m))
        .map_err(|source| LayerError::Unreadable {
            label: label.to_owned(),
            path: root.to_owned(),
            source,
        })?;
    if let Some(entries) = std::fs::read(&file)
        .ok()
        .and_then(|b| decode(&b, root, &ident))
    {
        return Ok(entries);
    }
    let entries = dir::scan(root, label)?;
    // only a cache: if it cannot be written, the next run lists the layer again
    let _ = crate::fsutil::write_atomic(&file, &encode(root, &ident, &entries), 0o644);
    Ok(entries)
}

/// Whether `root` is an entry of a uv cache's archive directory (`.../archive-vN/<id>`).
fn is_uv_archive_entry(root: &Path) -> bool {
    root.parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("archive-v"))
        .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
}

fn cache_file(cache: &Path, root: &Path) -> Option<PathBuf> {
    use sha2::Digest;
    if !is_uv_archive_entry(root) {
        return None;
    }
    let digest = sha2::Sha256::digest(root.as_os_str().as_encoded_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    Some(cache.join("layers").join(hex))
}

#[derive(Debug, PartialEq, Eq)]
struct Identity([i64; 6]);

impl Identity {
    #[cfg(unix)]
    fn of(m: &std::fs::Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt;
        Identity([
            m.dev() as i64,
            m.ino() as i64,
            m.ctime(),
            m.ctime_nsec(),
            m.mtime(),
            m.mtime_nsec(),
        ])
    }

    /// (Only the modification time: see [`list`].)
    #[cfg(not(unix))]
    fn of(m: &std::fs::Metadata) -> Identity {
        let modified = m.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
        let (secs, nsec) = crate::fsutil::time_parts(modified);
        Identity([0, 0, 0, 0, secs, nsec as i64])
    }
}

fn encode(root: &Path, ident: &Identity, entries: &[LayerEntry]) -> Vec<u8> {
    let mut w = Vec::with_capacity(64 + entries.len() * 64);
    w.extend_from_slice(MAGIC);
    put_u32(&mut w, FORMAT);
    for v in ident.0 {
        w.extend_from_slice(&v.to_le_bytes());
    }
    put_bytes(&mut w, root.as_os_str().as_encoded_bytes());
    put_u32(&mut w, entries.len() as u32);
    for e in entries {
        put_bytes(&mut w, e.rel.as_bytes());
        w.push(kind_code(e.kind));
        w.extend_from_slice(&e.perm.to_le_bytes());
        w.extend_from_slice(&e.size.to_le_bytes());
        let (secs, nsec) = crate::fsutil::time_parts(e.mtime);
        w.extend_from_slice(&secs.to_le_bytes());
        put_u32(&mut w, nsec);
        put_bytes(
            &mut w,
            e.target
                .as_deref()
                .map_or(&[][..], std::ffi::OsStr::as_encoded_bytes),
        );
    }
    let crc = crc32fast::hash(&w);
    put_u32(&mut w, crc);
    w
}

fn decode(bytes: &[u8], root: &Path, ident: &Identity) -> Option<Vec<LayerEntry>> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let mut r = Reader(body);
    if r.take(8)? != MAGIC || r.u32()? != FORMAT {
        return None;
    }
    let mut found = [0i64; 6];
    for v in &mut found {
        *v = r.i64()?;
    }
    if Identity(found) != *ident || r.bytes()? != root.as_os_str().as_encoded_bytes() {
        return None;
    }
    let count = r.u32()? as usize;
    let mut entries = Vec::with_capacity(count.min(body.len() / 16));
    for _ in 0..count {
        let rel = std::str::from_utf8(r.bytes()?).ok()?.to_owned();
        let kind = kind_of(r.take(1)?[0])?;
        let perm = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
        let size = r.u64()?;
        let secs = r.i64()?;
        let nsec = r.u32()?;
        let target = r.bytes()?;
        entries.push(LayerEntry {
            rel,
            kind,
            perm,
            size,
            mtime: crate::fsutil::system_time(secs, nsec as i64),
            target: match kind {
                FileKind::Symlink => Some(crate::fsutil::os_str_from_bytes(target)?.to_owned()),
                _ => None,
            },
            member: None,
        });
    }
    r.0.is_empty().then_some(entries)
}

fn put_u32(w: &mut Vec<u8>, v: u32) {
    w.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    put_u32(w, b.len() as u32);
    w.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

fn kind_code(k: FileKind) -> u8 {
    match k {
        FileKind::File => 0,
        FileKind::Dir => 1,
        FileKind::Symlink => 2,
        _ => 3,
    }
}

fn kind_of(code: u8) -> Option<FileKind> {
    match code {
        0 => Some(FileKind::File),
        1 => Some(FileKind::Dir),
        2 => Some(FileKind::Symlink),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn sample() -> Vec<LayerEntry> {
        let at = |s| SystemTime::UNIX_EPOCH + std::time::Duration::new(s, 7);
        vec![
            LayerEntry {
                rel: "pkg".into(),
                kind: FileKind::Dir,
                perm: 0o755,
                size: 4096,
                mtime: at(1_700_000_000),
                target: None,
                member: None,
            },
            LayerEntry {
                rel: "pkg/mod.py".into(),
                kind: FileKind::File,
                perm: 0o644,
                size: 123,
                mtime: at(1_700_000_001),
                target: None,
                member: None,
            },
            LayerEntry {
                rel: "pkg/link".into(),
                kind: FileKind::Symlink,
                perm: 0o777,
                size: 6,
                mtime: at(1_700_000_002),
                target: Some("mod.py".into()),
                member: None,
            },
        ]
    }

    fn same(a: &[LayerEntry], b: &[LayerEntry]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                (&x.rel, x.kind, x.perm, x.size, x.mtime, &x.target)
                    == (&y.rel, y.kind, y.perm, y.size, y.mtime, &y.target)
            })
    }

    #[test]
    fn round_trip_and_refusals() {
        let root = Path::new("/c/uv/archive-v0/abc");
        let ident = Identity([1, 2, 3, 4, 5, 6]);
        let bytes = encode(root, &ident, &sample());
        assert!(same(&decode(&bytes, root, &ident).unwrap(), &sample()));
        // another directory, or the same path made again
        assert!(decode(&bytes, Path::new("/c/uv/archive-v0/abd"), &ident).is_none());
        assert!(decode(&bytes, root, &Identity([1, 2, 3, 4, 5, 7])).is_none());
        // torn or damaged
        for cut in [0, 1, 8, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut], root, &ident).is_none(), "cut {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        assert!(decode(&flipped, root, &ident).is_none());
    }

    #[cfg(unix)]
    #[test]
    fn a_remade_entry_is_listed_again() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("venvfs-cache");
        let root = tmp.path().join("uv/archive-v0/id1");
        std::fs::create_dir_all(root.join("pkg")).unwrap();
        std::fs::write(root.join("pkg/a.py"), "a").unwrap();
        let names = |e: Vec<LayerEntry>| e.into_iter().map(|e| e.rel).collect::<Vec<_>>();
        let first = names(list_in(Some(&cache), &root, "x").unwrap());
        assert_eq!(first.len(), 2);
        assert_eq!(std::fs::read_dir(cache.join("layers")).unwrap().count(), 1);
        // read back from the cache
        assert_eq!(names(list_in(Some(&cache), &root, "x").unwrap()), first);
        // uv prunes the entry and unpacks another wheel under the same name
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::create_dir_all(root.join("other")).unwrap();
        std::fs::write(root.join("other/b.py"), "bb").unwrap();
        let mut again = names(list_in(Some(&cache), &root, "x").unwrap());
        again.sort();
        assert_eq!(again, ["other", "other/b.py"]);
    }

    #[test]
    fn only_uv_archive_entries_are_remembered() {
        assert!(is_uv_archive_entry(Path::new("/x/uv/archive-v0/Ab12")));
        assert!(is_uv_archive_entry(Path::new("/x/uv/archive-v12/Ab12")));
        assert!(!is_uv_archive_entry(Path::new("/x/wheels/numpy")));
        assert!(!is_uv_archive_entry(Path::new("/x/archive-vX/a")));
        assert!(!is_uv_archive_entry(Path::new("/x/archive-v/a")));
    }
}
