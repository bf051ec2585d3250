//! Writing the generated layer (see `layer/generated.rs`): the files installing generated
//! for all of a venv's wheels, in one archive in its state directory.
//!
//! A change (`sync`, `install`, `uninstall`) starts from the files of the archive the
//! manifest names, takes away those of the distributions it removes, adds those of the
//! wheels it installs, and writes the result as a new archive named after its content
//! (`generated-<sha256 prefix>.zip`), durable (fsynced, and its directory) before the
//! manifest that names it replaces the old manifest: that replacement stays the change's
//! one commit point. A crash before it leaves the old manifest naming the old archive,
//! which is still there; a crash after it leaves the new one naming the new archive. Either
//! way an archive no manifest names may be left over, and the next change removes it. The
//! archive the manifest named before a change is kept until the change after: a mount
//! keeps it open until it takes the new manifest (and an unlinked file stays readable
//! through the descriptors open on it, on a local disk), but a daemon on another host
//! sharing the venv is not told of the change, and over NFS it could no longer read a
//! file another host removed. So a venv holds one archive, or two after a change.
//!
//! Members are stored, not deflated (they are small, and stored ones are served in place),
//! sorted by path, with their unix mode and modification time (Info-ZIP's extended
//! timestamp): the same files give the same archive.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::generated::Generated;
use crate::layer::generated::GeneratedLayer;
use crate::manifest::Manifest;

/// What names a generated layer's archive: `generated-<hash>.zip`.
const PREFIX: &str = "generated-";
const SUFFIX: &str = ".zip";

/// One file of the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct File {
    content: Vec<u8>,
    mode: u32,
    /// Seconds since the epoch.
    mtime: u32,
}

/// The generated layer a change is making, from the one the venv has.
#[derive(Debug, Default)]
pub struct Change {
    files: BTreeMap<String, File>,
    changed: bool,
}

impl Change {
    /// Starts from the files of `current` (none: the venv has no generated layer yet).
    pub fn from(current: Option<&GeneratedLayer>) -> io::Result<Change> {
        let mut files = BTreeMap::new();
        if let Some(g) = current {
            for (rel, mode, mtime) in g.files() {
                let content = g.read(rel)?;
                files.insert(
                    rel.to_owned(),
                    File {
                        content,
                        mode,
                        mtime: unix_seconds(mtime),
                    },
                );
            }
        }
        Ok(Change {
            files,
            changed: false,
        })
    }

    /// Whether it holds a file at venv-relative `rel`.
    pub fn contains(&self, rel: &str) -> bool {
        self.files.contains_key(rel)
    }

    /// Takes away the file at venv-relative `rel`; returns whether there was one.
    pub fn remove(&mut self, rel: &str) -> bool {
        let removed = self.files.remove(rel).is_some();
        self.changed |= removed;
        removed
    }

    /// Takes away every file below the venv-relative directory `dir`.
    pub fn remove_below(&mut self, dir: &str) -> usize {
        let prefix = format!("{dir}/");
        let below: Vec<String> = self
            .files
            .range(prefix.clone()..)
            .map(|(p, _)| p)
            .take_while(|p| p.starts_with(&prefix))
            .cloned()
            .collect();
        for p in &below {
            self.files.remove(p);
        }
        self.changed |= !below.is_empty();
        below.len()
    }

    /// Adds the files generated for one wheel (replacing any at the same paths).
    pub fn add(&mut self, generated: &Generated) {
        for (rel, content, mode) in &generated.files {
            self.add_file(rel, content, *mode);
        }
    }

    /// Adds one file (replacing any at the same path).
    pub fn add_file(&mut self, rel: &str, content: &[u8], mode: u32) {
        self.files.insert(
            rel.to_owned(),
            File {
                content: content.to_vec(),
                mode,
                mtime: unix_seconds(SystemTime::now()),
            },
        );
        self.changed = true;
    }

    /// Writes the layer as a new archive in `state_dir` (durably) and names it in
    /// `manifest`, if anything changed. The caller saves the manifest, then calls
    /// [`Staged::finish`] (or [`Staged::discard`] if it could not).
    pub fn stage(self, state_dir: &Path, manifest: &mut Manifest) -> io::Result<Staged> {
        let old = manifest.generated.as_ref().map(|n| state_dir.join(n));
        if !self.changed {
            let keep = old.clone();
            return Ok(Staged {
                new: None,
                old,
                keep,
            });
        }
        if self.files.is_empty() {
            manifest.generated = None;
            return Ok(Staged {
                new: None,
                old,
                keep: None,
            });
        }
        let entries: Vec<Entry> = self
            .files
            .iter()
            .map(|(p, f)| Entry {
                path: p,
                content: &f.content,
                mode: f.mode,
                mtime: f.mtime,
            })
            .collect();
        let bytes = write_archive(&entries)?;
        let hash = super::record::sha256_digest(&bytes);
        // (`sha256=` and urlsafe base64: a file name once `-` and `_` are allowed)
        let digest = hash.trim_start_matches("sha256=");
        let name = format!("{PREFIX}{}{SUFFIX}", &digest[..digest.len().min(22)]);
        let path = state_dir.join(&name);
        if old.as_deref() != Some(path.as_path()) {
            crate::fsutil::write_atomic(&path, &bytes, 0o644)?;
        }
        manifest.generated = Some(name);
        Ok(Staged {
            new: Some(path.clone()),
            old,
            keep: Some(path),
        })
    }
}

/// A generated layer written but not yet committed (see [`Change::stage`]).
#[must_use]
pub struct Staged {
    /// The archive written (None: none was needed).
    new: Option<PathBuf>,
    /// The archive the manifest named before.
    old: Option<PathBuf>,
    /// The archive the new manifest names.
    keep: Option<PathBuf>,
}

impl Staged {
    /// After the manifest naming the new archive was saved: removes the archives other
    /// than that one and the one it replaces (those of earlier changes, and those left by
    /// a change that was killed).
    pub fn finish(self, state_dir: &Path) {
        let keep: Vec<&std::ffi::OsStr> = [self.keep.as_deref(), self.old.as_deref()]
            .into_iter()
            .flatten()
            .filter_map(Path::file_name)
            .collect();
        remove_unnamed(state_dir, &keep);
    }

    /// When the manifest could not be saved: removes the new archive.
    pub fn discard(self) {
        if let Some(new) = self.new.filter(|n| Some(n) != self.old.as_ref()) {
            let _ = std::fs::remove_file(new);
        }
    }
}

/// Removes the generated archives in `state_dir` other than those in `keep`. (Best effort:
/// what cannot be removed now, the next change tries again.)
pub fn remove_unnamed(state_dir: &Path, keep: &[&std::ffi::OsStr]) {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let s = name.to_string_lossy();
        if s.starts_with(PREFIX) && s.ends_with(SUFFIX) && !keep.contains(&name.as_os_str()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn unix_seconds(t: SystemTime) -> u32 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs().min(u32::MAX as u64) as u32)
}

/// One member to write.
struct Entry<'a> {
    path: &'a str,
    content: &'a [u8],
    mode: u32,
    mtime: u32,
}

/// An archive of `files` (venv-relative path, content, mode), as [`Change::stage`]
/// writes it, with the current time (for tests and tools).
pub fn archive(files: &[(String, Vec<u8>, u32)]) -> Vec<u8> {
    let now = unix_seconds(SystemTime::now());
    let entries: Vec<Entry> = files
        .iter()
        .map(|(p, c, m)| Entry {
            path: p,
            content: c,
            mode: *m,
            mtime: now,
        })
        .collect();
    write_archive(&entries).expect("a small archive")
}

/// A zip (APPNOTE 6.3: 4.3.7 local file header, 4.3.12 central directory header, 4.3.16
/// end of central directory record) of stored members. No zip64: a generated layer is
/// far below its limits (65,535 members, 4 GiB), and one beyond them is refused.
fn write_archive(entries: &[Entry]) -> io::Result<Vec<u8>> {
    const LOCAL: u32 = 0x0403_4b50;
    const CENTRAL: u32 = 0x0201_4b50;
    const END: u32 = 0x0605_4b50;
    const UTF8: u16 = 1 << 11;
    const MADE_BY_UNIX: u16 = (3 << 8) | 20;
    const NEEDED: u16 = 10;
    const S_IFREG: u32 = 0o100_000;
    let too_big = || io::Error::other("the generated layer is too big for a zip without zip64");
    if entries.len() > u16::MAX as usize {
        return Err(too_big());
    }
    let mut out: Vec<u8> = Vec::new();
    let mut central: Vec<u8> = Vec::new();
    for e in entries {
        let offset = u32::try_from(out.len()).map_err(|_| too_big())?;
        let size = u32::try_from(e.content.len()).map_err(|_| too_big())?;
        let crc = crc32fast::hash(e.content);
        let (time, date) = dos_time(e.mtime);
        let name = e.path.as_bytes();
        let name_len = u16::try_from(name.len()).map_err(|_| too_big())?;
        // Info-ZIP extended timestamp: flags (bit 0: mtime present), mtime
        let mut extra = Vec::with_capacity(9);
        extra.extend_from_slice(&0x5455u16.to_le_bytes());
        extra.extend_from_slice(&5u16.to_le_bytes());
        extra.push(1);
        extra.extend_from_slice(&e.mtime.to_le_bytes());
        let common = |buf: &mut Vec<u8>| {
            buf.extend_from_slice(&NEEDED.to_le_bytes());
            buf.extend_from_slice(&UTF8.to_le_bytes());
            buf.extend_from_slice(&0u16.to_le_bytes()); // stored
            buf.extend_from_slice(&time.to_le_bytes());
            buf.extend_from_slice(&date.to_le_bytes());
            buf.extend_from_slice(&crc.to_le_bytes());
            buf.extend_from_slice(&size.to_le_bytes());
            buf.extend_from_slice(&size.to_le_bytes());
            buf.extend_from_slice(&name_len.to_le_bytes());
            buf.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        };
        out.extend_from_slice(&LOCAL.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name);
        out.extend_from_slice(&extra);
        out.write_all(e.content)?;

        central.extend_from_slice(&CENTRAL.to_le_bytes());
        central.extend_from_slice(&MADE_BY_UNIX.to_le_bytes());
        common(&mut central);
        central.extend_from_slice(&0u16.to_le_bytes()); // comment length
        central.extend_from_slice(&0u16.to_le_bytes()); // disk number start
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&((S_IFREG | (e.mode & 0o7777)) << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name);
        central.extend_from_slice(&extra);
    }
    let cd_offset = u32::try_from(out.len()).map_err(|_| too_big())?;
    let cd_size = u32::try_from(central.len()).map_err(|_| too_big())?;
    out.extend_from_slice(&central);
    out.extend_from_slice(&END.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // this disk
    out.extend_from_slice(&0u16.to_le_bytes()); // disk with the central directory
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    u32::try_from(out.len()).map_err(|_| too_big())?;
    Ok(out)
}

/// MS-DOS (time, date) of `secs` since the epoch, in UTC (1980 at the earliest).
fn dos_time(secs: u32) -> (u16, u16) {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // civil from days (Howard Hinnant's algorithm)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if year < 1980 {
        return (0, (1 << 5) | 1);
    }
    let date = (((year - 1980).min(127) as u16) << 9) | ((month as u16) << 5) | day as u16;
    let time = ((h as u16) << 11) | ((m as u16) << 5) | (s as u16 / 2);
    (time, date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated(files: &[(&str, &str, u32)]) -> Generated {
        Generated {
            files: files
                .iter()
                .map(|(p, c, m)| (p.to_string(), c.as_bytes().to_vec(), *m))
                .collect(),
            hidden: Vec::new(),
        }
    }

    #[test]
    fn a_change_writes_a_new_archive_and_finish_keeps_it_and_the_one_before() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path();
        let mut manifest = Manifest::default();
        let mut c = Change::from(None).unwrap();
        c.add(&generated(&[
            ("bin/a", "#!a", 0o755),
            ("s/a-1.dist-info/RECORD", "ra", 0o644),
            ("s/b-1.dist-info/RECORD", "rb", 0o644),
        ]));
        let staged = c.stage(state, &mut manifest).unwrap();
        let first = manifest.generated.clone().unwrap();
        staged.finish(state);
        let g = GeneratedLayer::open(&state.join(&first)).unwrap();
        assert_eq!(g.read("bin/a").unwrap(), b"#!a");
        let modes: BTreeMap<&str, u32> = g.files().map(|(p, m, _)| (p, m)).collect();
        assert_eq!(modes["bin/a"], 0o755);
        assert_eq!(modes["s/b-1.dist-info/RECORD"], 0o644);

        // unchanged: nothing written
        let c = Change::from(Some(&g)).unwrap();
        c.stage(state, &mut manifest).unwrap().finish(state);
        assert_eq!(manifest.generated.as_deref(), Some(first.as_str()));

        let mut c = Change::from(Some(&g)).unwrap();
        assert_eq!(c.remove_below("s/a-1.dist-info"), 1);
        assert!(c.remove("bin/a"));
        let staged = c.stage(state, &mut manifest).unwrap();
        let second = manifest.generated.clone().unwrap();
        assert_ne!(first, second);
        staged.finish(state);
        assert!(state.join(&first).exists(), "the one before is kept");
        // (closed: Windows does not remove a file that is open)
        drop(g);
        let g = GeneratedLayer::open(&state.join(&second)).unwrap();
        let left: Vec<&str> = g.files().map(|(p, _, _)| p).collect();
        assert_eq!(left, ["s/b-1.dist-info/RECORD"]);

        // a manifest that cannot be saved: the new archive goes
        let mut c = Change::from(Some(&g)).unwrap();
        c.add(&generated(&[("bin/c", "c", 0o755)]));
        let mut m2 = manifest.clone();
        let staged = c.stage(state, &mut m2).unwrap();
        let third = m2.generated.clone().unwrap();
        assert!(state.join(&third).exists());
        staged.discard();
        assert!(!state.join(&third).exists());
        assert!(state.join(&second).exists());

        // emptied: no generated layer; the one before is kept, the older one goes
        let mut c = Change::from(Some(&g)).unwrap();
        c.remove_below("s/b-1.dist-info");
        c.stage(state, &mut manifest).unwrap().finish(state);
        assert_eq!(manifest.generated, None);
        drop(g);
        assert!(
            !state.join(&first).exists(),
            "the one before the one before is gone"
        );
        let left: Vec<_> = std::fs::read_dir(state).unwrap().flatten().collect();
        assert_eq!(left.len(), 1);
        Staged {
            new: None,
            old: None,
            keep: None,
        }
        .finish(state);
        assert_eq!(std::fs::read_dir(state).unwrap().count(), 0);
    }

    #[test]
    fn dos_dates() {
        // 2026-12-02 01:02:04 UTC
        let (time, date) = dos_time(1_796_173_324);
        assert_eq!(date >> 9, 2026 - 1980);
        assert_eq!((date >> 5) & 0xf, 12);
        assert_eq!(date & 0x1f, 2);
        assert_eq!(
            (time >> 11, (time >> 5) & 0x3f, (time & 0x1f) * 2),
            (1, 2, 4)
        );
    }
}
