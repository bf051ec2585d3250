//! Bytecode compiled once for every venv: the `.pyc` files of a read-only layer's modules
//! live in a store outside the venvs, one copy per (layer, Python cache tag), and every
//! venv that uses the layer shows them in its `__pycache__` directories (see
//! `overlay/bytecode.rs` for how the mount shows and takes them).
//!
//! Why this is safe: Python validates a `.pyc` by the modification time and size of its
//! source recorded in the `.pyc`'s header, and a file of a read-only layer has the same
//! bytes, time and size in every venv that uses the layer. The store is keyed by the
//! layer's source path and the venv-relative path of the directory, and the cache tag is
//! in the file's name, as Python names it (`mod.cpython-311.pyc`).
//!
//! Rules the store keeps:
//! - a `.pyc` is shown only when its header matches the source the venv shows (magic of
//!   the venv's interpreter, timestamp-based, the source's mtime and size): a stale or
//!   foreign one is never served, whoever put it there;
//! - a stored `.pyc` never changes in place: the daemon writes it under a temporary name
//!   and links it to its name only if that name is free (two venvs compiling the same
//!   module at once both succeed; the first one's file stays); Python, writing through a
//!   `__pycache__` shown as a link to a store directory, replaces a file whole by rename.
//!   A mount that already showed a file checks, when it opens it, that it is still the
//!   same file;
//! - several stores may be read (one prepared ahead next to a shared cache, read-only);
//!   one, venvfs's own cache directory's, is written.

mod checked;
pub mod compile;
pub mod misses;

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// The variable that names further stores to read, prepared ahead (`venvfs compile
/// --store DIR`), separated like `PATH`.
pub const STORES_VAR: &str = "VENVFS_BYTECODE_STORES";
/// The variable that names the store to write, instead of `bytecode/` in venvfs's cache
/// directory.
pub const STORE_VAR: &str = "VENVFS_BYTECODE_STORE";
/// Set to `0` to show and keep bytecode per venv, as without venvfs.
pub const ENABLE_VAR: &str = "VENVFS_SHARED_BYTECODE";
/// The temporary names the store's writers use start with this.
const TEMP_PREFIX: &str = ".venvfs-tmp.";

/// The stores a mount reads and writes, and what a valid `.pyc` of its interpreter is.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Read in order: the first that has a valid `.pyc` serves it.
    pub read: Vec<PathBuf>,
    /// Where new `.pyc` files go (also the first of `read`), if anywhere.
    pub write: Option<PathBuf>,
    /// `sys.implementation.cache_tag`, such as `cpython-311`.
    pub cache_tag: String,
    /// The first four bytes of a `.pyc` of this interpreter.
    pub magic: [u8; 4],
    /// Names temporary files of this process apart from any other's.
    temp_id: String,
    next: std::sync::Arc<AtomicU64>,
    /// Names found without a valid `.pyc`, when they are remembered (stores on a network
    /// filesystem: see `misses.rs`).
    misses: Option<std::sync::Arc<misses::Misses>>,
    /// Files found valid, kept open for the open that follows, where the mount serves
    /// them itself (see `checked.rs`).
    checked: Option<std::sync::Arc<checked::Checked>>,
}

/// Where the environment puts shared bytecode (see [`Stores::locate`]; `venvfs doctor`
/// shows it).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Places {
    /// Turned off (`VENVFS_SHARED_BYTECODE=0`): each venv keeps its own.
    pub off: bool,
    /// The store written: `$VENVFS_BYTECODE_STORE`, else `bytecode/` of venvfs's writable
    /// cache directory.
    pub write: Option<PathBuf>,
    /// Where a store would be written but cannot be (`$VENVFS_BYTECODE_STORE` not
    /// writable, or `bytecode/` of a cache directory only read), when none is written.
    pub tried: Option<PathBuf>,
    /// The stores only read, in order: that cache directory's when it is not writable,
    /// and `$VENVFS_BYTECODE_STORES`.
    pub read: Vec<PathBuf>,
}

impl Places {
    pub fn of_env() -> Places {
        let off = std::env::var_os(ENABLE_VAR).is_some_and(|v| v == "0");
        let (write, tried) = match std::env::var_os(STORE_VAR).filter(|v| !v.is_empty()) {
            Some(dir) => match std::path::absolute(PathBuf::from(dir)) {
                Ok(dir) if crate::finder::uvcache::writable_dir(&dir) => (Some(dir), None),
                Ok(dir) => (None, Some(dir)),
                Err(_) => (None, None),
            },
            None => match crate::finder::uvcache::writable_own_cache_dir() {
                Some(d) => (Some(d.join("bytecode")), None),
                None => (None, None),
            },
        };
        let mut read: Vec<PathBuf> = Vec::new();
        if write.is_none() {
            read.extend(crate::finder::uvcache::own_cache_dir().map(|d| d.join("bytecode")));
        }
        if let Some(v) = std::env::var_os(STORES_VAR) {
            // (absolute: a mount may show a stored file as a link to it)
            read.extend(
                std::env::split_paths(&v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .filter_map(|p| std::path::absolute(p).ok()),
            );
        }
        let tried = tried.or_else(|| match write {
            None => crate::finder::uvcache::own_cache_candidates()
                .first()
                .map(|d| d.join("bytecode")),
            Some(_) => None,
        });
        Places {
            off,
            write,
            tried,
            read,
        }
    }
}

impl Stores {
    pub fn new(
        write: Option<PathBuf>,
        extra: Vec<PathBuf>,
        cache_tag: &str,
        magic: [u8; 4],
    ) -> Stores {
        let mut read: Vec<PathBuf> = write.iter().cloned().collect();
        read.extend(extra.into_iter().filter(|d| Some(d) != write.as_ref()));
        Stores {
            read,
            write,
            cache_tag: cache_tag.to_owned(),
            magic,
            temp_id: crate::upper::work::Owner::this().name(),
            next: Default::default(),
            misses: None,
            checked: None,
        }
    }

    /// Keeps the files found valid open for the open that serves them (see `checked.rs`):
    /// for a mount that reads them itself rather than show links to them.
    pub fn keep_checked_files(&mut self) {
        self.checked = Some(Default::default());
    }

    /// Remembers for a while the names found without a valid `.pyc` (see `misses.rs`).
    pub fn remember_misses(&mut self) {
        self.misses = Some(Default::default());
    }

    /// The stores of venvfs's cache directory (written when writable) and of
    /// `$VENVFS_BYTECODE_STORES` (read), for an interpreter with these facts; `None` when
    /// shared bytecode is turned off or no store can be found.
    pub fn locate(facts: &crate::interpreter::BytecodeFacts) -> Option<Stores> {
        let places = Places::of_env();
        if places.off || (places.write.is_none() && places.read.is_empty()) {
            return None;
        }
        let magic = parse_magic(&facts.magic)?;
        Some(Stores::new(
            places.write,
            places.read,
            &facts.cache_tag,
            magic,
        ))
    }

    /// The stores of the venv at `venv` (mounted or its own directory), from the facts of
    /// its interpreter; `None` (each venv keeps its own, as without venvfs) when turned
    /// off, or when neither the facts nor a store can be had.
    pub fn of_venv(venv: &Path) -> Option<Stores> {
        let facts = match crate::interpreter::of_venv(venv) {
            Ok(i) => i.bytecode?,
            Err(e) => {
                tracing::info!("bytecode kept in the venv: {e}");
                return None;
            }
        };
        Self::locate(&facts)
    }

    /// Takes into the written store a `.pyc` an installer compiled in the venv's own
    /// directory (`pyc`) for a module the layer whose source is `layer_source` now shows
    /// in venv directory `dir`, when it is a valid `.pyc` of that module (`source`: uv
    /// compiles through the links it makes, which show the files the layer shows). Whether
    /// the store holds a valid `.pyc` of that name now (this one, or one put there before).
    pub fn take_compiled(
        &self,
        pyc: &Path,
        layer_source: &Path,
        dir: &Path,
        source: &Source,
    ) -> bool {
        let Some(name) = pyc.file_name() else {
            return false;
        };
        if Stored::check(pyc, self.magic, source).is_err() {
            return false;
        }
        let key = layer_key(layer_source);
        let dir = dir.as_os_str().as_encoded_bytes();
        if let Some(write) = &self.write {
            if Stored::check(
                &Self::dir_in(write, &key, dir).join(name),
                self.magic,
                source,
            )
            .is_ok()
            {
                return true;
            }
        }
        let Ok((mut file, temp)) = self.create_temp(&key, dir) else {
            return false;
        };
        let copied = File::open(pyc).and_then(|mut from| std::io::copy(&mut from, &mut file));
        drop(file);
        match copied.ok().map(|_| self.publish(&temp, name, source)) {
            Some(Ok(_)) if !temp.exists() => true,
            Some(Ok(None)) => {
                let _ = std::fs::remove_file(&temp);
                true
            }
            _ => {
                let _ = std::fs::remove_file(&temp);
                false
            }
        }
    }

    /// Where the `.pyc` files of the layer keyed `layer_key` for the venv directory `dir`
    /// (venv-relative) are, in store `store`.
    pub fn dir_in(store: &Path, layer_key: &str, dir: &[u8]) -> PathBuf {
        let mut p = store.join(layer_key);
        if !dir.is_empty() {
            p.push(crate::fsutil::os_str_from_bytes(dir).unwrap_or(OsStr::new("?")));
        }
        p.push("__pycache__");
        p
    }

    /// The first stored `.pyc` named `name` for that layer and directory whose header
    /// matches `source`.
    pub fn find(
        &self,
        layer_key: &str,
        dir: &[u8],
        name: &OsStr,
        source: &Source,
    ) -> Option<Stored> {
        let first = self.read.first()?;
        let key = Self::dir_in(first, layer_key, dir).join(name);
        if self.misses.as_ref().is_some_and(|m| m.known(&key, source)) {
            return None;
        }
        let found = self.read.iter().find_map(|store| {
            let path = Self::dir_in(store, layer_key, dir).join(name);
            self.check_and_keep(&path, source)
        });
        if let (None, Some(m)) = (&found, &self.misses) {
            m.remember(&key, source);
        }
        found
    }

    /// The `.pyc` at `path` if valid for `source`, its open file kept for
    /// [`Stores::open_checked`].
    fn check_and_keep(&self, path: &Path, source: &Source) -> Option<Stored> {
        let (stored, file) = Stored::check_open(path, self.magic, source).ok()?;
        if let Some(checked) = &self.checked {
            checked.keep(path, file, stored.meta.clone());
        }
        Some(stored)
    }

    /// The file found as `stored`, opened again unless its check's open file is still
    /// kept; `None` when the store no longer holds that file (removed or replaced since).
    pub fn open_checked(&self, stored: &Stored) -> std::io::Result<Option<File>> {
        let kept = self.checked.as_ref();
        if let Some(file) = kept.and_then(|c| c.take(&stored.path, &stored.meta)) {
            return Ok(Some(file));
        }
        let file = File::open(&stored.path)?;
        Ok(stored.is(&file).then_some(file))
    }

    /// Every valid `.pyc` stored for that layer and directory, as (name, stored), the first
    /// store's first; `sources` gives the source a name's `.pyc` must match.
    pub fn list(
        &self,
        layer_key: &str,
        dir: &[u8],
        sources: impl Fn(&OsStr) -> Option<Source>,
    ) -> Vec<(std::ffi::OsString, Stored)> {
        let mut out: Vec<(std::ffi::OsString, Stored)> = Vec::new();
        for store in &self.read {
            let at = Self::dir_in(store, layer_key, dir);
            let Ok(entries) = std::fs::read_dir(&at) else {
                continue;
            };
            let written = self.write.as_ref() == Some(store);
            for e in entries.flatten() {
                let name = e.file_name();
                if written && is_abandoned_temp(&name) {
                    // (left by a daemon killed while writing it)
                    let _ = std::fs::remove_file(at.join(&name));
                    continue;
                }
                if out.iter().any(|(n, _)| *n == name) {
                    continue;
                }
                let Some(source) = self.source_name(&name).and_then(|s| sources(&s)) else {
                    continue;
                };
                if let Some(stored) = self.check_and_keep(&at.join(&name), &source) {
                    out.push((name, stored));
                }
            }
        }
        out
    }

    /// The source file name (`mod.py`) whose bytecode `name` is, if `name` is a `.pyc` of
    /// this interpreter as Python names it (`mod.cpython-311.pyc`, `mod.cpython-311.opt-1.pyc`).
    pub fn source_name(&self, name: &OsStr) -> Option<std::ffi::OsString> {
        let name = name.to_str()?;
        let rest = name.strip_suffix(".pyc")?;
        let rest = rest
            .strip_suffix(".opt-1")
            .or_else(|| rest.strip_suffix(".opt-2"))
            .unwrap_or(rest);
        let stem = rest.strip_suffix(&self.cache_tag)?.strip_suffix('.')?;
        (!stem.is_empty()).then(|| format!("{stem}.py").into())
    }

    /// The `.pyc` name a temporary name Python writes (`mod.cpython-311.pyc.140234`) is for.
    pub fn final_name<'a>(&self, name: &'a OsStr) -> Option<&'a str> {
        let name = name.to_str()?;
        let (final_name, suffix) = name.rsplit_once('.')?;
        let ok = !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit());
        (ok && self.source_name(OsStr::new(final_name)).is_some()).then_some(final_name)
    }

    /// Makes a new file for a `.pyc` of that layer and directory in the written store,
    /// under a temporary name of this process's own.
    pub fn create_temp(&self, layer_key: &str, dir: &[u8]) -> std::io::Result<(File, PathBuf)> {
        let store = self.write.as_ref().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::ReadOnlyFilesystem, "no writable store")
        })?;
        let at = Self::dir_in(store, layer_key, dir);
        make_store_dir(&at)?;
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o644);
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = at.join(format!("{TEMP_PREFIX}{}.{n}", self.temp_id));
        let file = options.open(&path)?;
        Ok((file, path))
    }

    /// Makes directory `at` of the written store, for a `__pycache__` a mount shows as a
    /// link to it (Python writes there itself, atomically), and removes from it what
    /// Python must not find there: every `.pyc` of this interpreter, of a module `sources`
    /// knows, that does not match it (stale or foreign ones Python would pass over itself;
    /// a corrupt one would fail the import), and temporary files of a daemon killed while
    /// writing them. The next import compiles what was removed again.
    pub fn prepare_dir(
        &self,
        at: &Path,
        sources: impl Fn(&OsStr) -> Option<Source>,
    ) -> std::io::Result<()> {
        make_store_dir(at)?;
        for e in std::fs::read_dir(at)?.flatten() {
            let name = e.file_name();
            let bad = is_abandoned_temp(&name)
                || self
                    .source_name(&name)
                    .and_then(|s| sources(&s))
                    .is_some_and(|source| {
                        Stored::check(&at.join(&name), self.magic, &source).is_err()
                    });
            if bad {
                tracing::debug!("removed {:?} from the bytecode store", at.join(&name));
                let _ = std::fs::remove_file(at.join(&name));
            }
        }
        Ok(())
    }

    /// Puts the written `.pyc` at `temp` in place as `name` if it is a valid `.pyc` of
    /// `source` and the name is free, or holds a file no mount would show (stale,
    /// foreign, corrupt). `Ok(Some(path))`: in place, `temp` is gone; `Ok(None)`: another
    /// writer's valid file has the name already (`temp` stays); `Err`: not a valid `.pyc`
    /// of that source (`temp` stays).
    pub fn publish(
        &self,
        temp: &Path,
        name: &OsStr,
        source: &Source,
    ) -> Result<Option<Stored>, Invalid> {
        let stored = Stored::check(temp, self.magic, source)?;
        let path = temp.with_file_name(name);
        match std::fs::hard_link(temp, &path) {
            Ok(()) => {
                let _ = std::fs::remove_file(temp);
                Ok(Some(Stored { path, ..stored }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if Stored::check(&path, self.magic, source).is_ok() {
                    return Ok(None);
                }
                // (no mount shows the file there: replacing it changes nothing shown)
                std::fs::rename(temp, &path)?;
                Ok(Some(Stored { path, ..stored }))
            }
            Err(e) => Err(Invalid::Io(e)),
        }
    }

    /// Whether `path` is in the written store (and so may be removed).
    pub fn writes(&self, path: &Path) -> bool {
        self.write.as_ref().is_some_and(|w| path.starts_with(w))
    }
}

/// Makes directory `at` of a store and its parents. Others read a store (a venv may show
/// its files as links to them), only its owner writes: explicit modes, as the daemon runs
/// with umask 0.
fn make_store_dir(at: &Path) -> std::io::Result<()> {
    let mut dirs = std::fs::DirBuilder::new();
    dirs.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        dirs.mode(0o755);
    }
    dirs.create(at)
}

/// The key of a layer in a store: its source's absolute path, hashed (the same layer used
/// by two venvs has one key).
pub fn layer_key(source: &Path) -> String {
    use sha2::Digest;
    let abs = std::path::absolute(source).unwrap_or_else(|_| source.to_owned());
    let digest = sha2::Sha256::digest(abs.as_os_str().as_encoded_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// What a `.pyc` must match: its source as the venv shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source {
    pub mtime: SystemTime,
    pub size: u64,
}

/// A stored `.pyc` found valid: where, and which file it was (so that a later open can
/// tell it is still the same one).
#[derive(Debug, Clone)]
pub struct Stored {
    pub path: PathBuf,
    pub meta: std::fs::Metadata,
}

#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    #[error("not a .pyc of this interpreter (magic number)")]
    Magic,
    #[error("a hash-based .pyc (only timestamp-based ones are shared)")]
    HashBased,
    #[error("written for another version of its source (mtime or size)")]
    Stale,
    #[error("no code object after the header")]
    Body,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Stored {
    /// Checks the `.pyc` at `path` against the interpreter's magic and its source.
    pub fn check(path: &Path, magic: [u8; 4], source: &Source) -> Result<Stored, Invalid> {
        Ok(Self::check_open(path, magic, source)?.0)
    }

    /// [`Stored::check`], giving the file it opened too.
    pub fn check_open(
        path: &Path,
        magic: [u8; 4],
        source: &Source,
    ) -> Result<(Stored, File), Invalid> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(Invalid::Body);
        }
        let mut head = [0u8; 17];
        file.read_exact(&mut head).map_err(|_| Invalid::Body)?;
        check_header(&head, magic, source)?;
        let stored = Stored {
            path: path.to_owned(),
            meta,
        };
        Ok((stored, file))
    }

    /// Whether `file` is still the file this was found as.
    pub fn is(&self, file: &File) -> bool {
        file.metadata().is_ok_and(|m| same_file(&m, &self.meta))
    }
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino() && a.len() == b.len()
}

#[cfg(not(unix))]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.len() == b.len() && a.modified().ok() == b.modified().ok()
}

/// Python's own checks of a timestamp-based `.pyc` (`importlib._bootstrap_external.
/// _classify_pyc` and `_validate_timestamp_pyc`), and that a code object follows.
fn check_header(head: &[u8; 17], magic: [u8; 4], source: &Source) -> Result<(), Invalid> {
    let word = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4 bytes"));
    if head[..4] != magic {
        return Err(Invalid::Magic);
    }
    if word(4) != 0 {
        return Err(Invalid::HashBased);
    }
    let mtime = source
        .mtime
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if word(8) != mtime as u32 || word(12) != source.size as u32 {
        return Err(Invalid::Stale);
    }
    // marshal's TYPE_CODE ('c'), with or without FLAG_REF
    if head[16] & 0x7f != b'c' {
        return Err(Invalid::Body);
    }
    Ok(())
}

fn parse_magic(hex: &str) -> Option<[u8; 4]> {
    if hex.len() != 8 {
        return None;
    }
    let mut out = [0u8; 4];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Whether `name` is a temporary file of a store writer that is gone (kill -9): such files
/// may be removed.
pub fn is_abandoned_temp(name: &OsStr) -> bool {
    let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
        return false;
    };
    let id = rest.rsplit_once('.').map_or(rest, |(id, _)| id);
    let me = crate::upper::work::Owner::this();
    crate::upper::work::Owner::parse(id).is_some_and(|o| o != me && o.is_gone(&me))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 4] = [0xa7, 0x0d, 0x0d, 0x0a];

    fn stores(dir: &Path) -> Stores {
        Stores::new(Some(dir.to_owned()), Vec::new(), "cpython-311", MAGIC)
    }

    fn pyc(source: &Source, flags: u32) -> Vec<u8> {
        let secs = source
            .mtime
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;
        let mut v = MAGIC.to_vec();
        v.extend(flags.to_le_bytes());
        v.extend(secs.to_le_bytes());
        v.extend((source.size as u32).to_le_bytes());
        v.extend(b"\xe3rest of a code object");
        v
    }

    fn source() -> Source {
        Source {
            mtime: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
            size: 1234,
        }
    }

    #[test]
    fn names_python_gives_bytecode() {
        let s = stores(Path::new("/x"));
        let src = |n: &str| {
            s.source_name(OsStr::new(n))
                .map(|s| s.into_string().unwrap())
        };
        assert_eq!(src("mod.cpython-311.pyc").as_deref(), Some("mod.py"));
        assert_eq!(src("mod.cpython-311.opt-2.pyc").as_deref(), Some("mod.py"));
        assert_eq!(src("a.b.cpython-311.pyc").as_deref(), Some("a.b.py"));
        assert_eq!(src("mod.cpython-312.pyc"), None);
        assert_eq!(src("mod.pyc"), None);
        assert_eq!(src(".cpython-311.pyc"), None);
        let fin = |n: &'static str| s.final_name(OsStr::new(n));
        assert_eq!(
            fin("mod.cpython-311.pyc.140234"),
            Some("mod.cpython-311.pyc")
        );
        assert_eq!(fin("mod.cpython-311.pyc"), None);
        assert_eq!(fin("mod.cpython-311.pyc.tmp"), None);
    }

    #[test]
    fn only_valid_pycs_are_published_and_found() {
        let dir = tempfile::tempdir().unwrap();
        let s = stores(dir.path());
        let src = source();
        let write = |bytes: &[u8]| {
            let (mut f, path) = s.create_temp("k", b"lib/pkg").unwrap();
            std::io::Write::write_all(&mut f, bytes).unwrap();
            path
        };
        let name = OsStr::new("m.cpython-311.pyc");
        // stale, hash-based, foreign, cut short: refused, temp kept for the caller
        let stale = Source { size: 1, ..src };
        for bad in [
            pyc(&stale, 0),
            pyc(&src, 1),
            [&[0u8; 4][..], &pyc(&src, 0)[4..]].concat(),
            pyc(&src, 0)[..12].to_vec(),
        ] {
            let t = write(&bad);
            assert!(s.publish(&t, name, &src).is_err());
            assert!(t.exists());
        }
        assert!(s.find("k", b"lib/pkg", name, &src).is_none());
        let t = write(&pyc(&src, 0));
        let stored = s.publish(&t, name, &src).unwrap().unwrap();
        assert!(!t.exists());
        assert_eq!(
            stored.path,
            Stores::dir_in(dir.path(), "k", b"lib/pkg").join(name)
        );
        // a second writer keeps its own file; the first one's stays in place
        let t2 = write(&pyc(&src, 0));
        assert!(s.publish(&t2, name, &src).unwrap().is_none());
        assert!(s.find("k", b"lib/pkg", name, &src).is_some());
        assert!(s.find("k", b"lib/pkg", name, &stale).is_none());
        let listed = s.list("k", b"lib/pkg", |n| (n == "m.py").then_some(src));
        assert_eq!(listed.len(), 1);
        // a store file that is changed in place is not the file found before
        let f = File::open(&stored.path).unwrap();
        assert!(stored.is(&f));
        std::fs::remove_file(&stored.path).unwrap();
        std::fs::write(&stored.path, b"x").unwrap();
        assert!(!stored.is(&File::open(&stored.path).unwrap()));
    }

    // (a process known gone is one of this host's that no longer runs: known on Linux)
    #[cfg(target_os = "linux")]
    #[test]
    fn temporary_files_of_gone_writers_are_told_apart() {
        let me = crate::upper::work::Owner::this();
        let gone = crate::upper::work::Owner {
            pid: 4_000_000_000,
            ..me.clone()
        };
        let name = |o: &crate::upper::work::Owner| format!("{TEMP_PREFIX}{}.7", o.name());
        assert!(is_abandoned_temp(OsStr::new(&name(&gone))));
        assert!(!is_abandoned_temp(OsStr::new(&name(&me))));
        let elsewhere = crate::upper::work::Owner {
            host: "another-host".into(),
            ..gone
        };
        assert!(!is_abandoned_temp(OsStr::new(&name(&elsewhere))));
        assert!(!is_abandoned_temp(OsStr::new("m.cpython-311.pyc")));
    }

    #[test]
    fn magic_numbers_parse() {
        assert_eq!(parse_magic("a70d0d0a"), Some(MAGIC));
        assert_eq!(parse_magic("a70d0d"), None);
        assert_eq!(parse_magic("zz0d0d0a"), None);
    }
}
