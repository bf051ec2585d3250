//! `venvfs materialize VENV`: the venvfs venv becomes a plain venv that needs no mount.
//!
//! What the plain venv holds is exactly what the mount shows: the venv is opened as an
//! [`Overlay`] (its layers merged, its own directory as the upper, markers interpreted; the
//! same code that serves the mount) and walked through the [`FileSystem`] calls the kernel
//! would make (`readdir`, `getattr`, `readlink`, `read`). Only where a file's bytes are is
//! asked of the overlay apart ([`Overlay::origin`]), so that a layer's file can be cloned or
//! hard-linked instead of read. venvfs's own state is hidden by the overlay already (the
//! `.venvfs` directory, whiteouts, opaque and redirect markers, the unmounted-venv guard);
//! the uv link mode that `bin/activate` sets is taken out afterwards.
//!
//! Crash safety: the plain venv is built beside the venv, in `VENV.materializing-PID` (a
//! sibling, so on the same filesystem), made durable (`syncfs`), and swapped with the venv
//! by one `renameat2(RENAME_EXCHANGE)`: before it, VENV is the venvfs venv untouched (the
//! build only reads it); after it, VENV is the complete plain venv and the sibling holds the
//! old venvfs venv, which is then removed. A run killed at any point leaves one or the
//! other at VENV, and its sibling is removed by the next run (one whose process is gone:
//! the PID in the name tells). Where the filesystem cannot exchange (`EINVAL`), the swap is
//! two renames through `VENV.venvfs-old-PID`; a run killed between them leaves no VENV, and
//! the next run puts the venvfs venv back first.

use std::collections::HashMap;
use std::error::Error;
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::progress::Progress;

use rustix::fs::{AtFlags, FlockOperation, RenameFlags, Timespec, Timestamps, CWD};
use venvfs_api::{Attr, FileKind, FileSystem, Ino, ROOT};

use crate::cli::{LinkMode, MaterializeArgs};
use crate::overlay::{Origin, Overlay};

/// Where the plain venv is built: `VENV.materializing-PID`.
const BUILDING: &str = ".materializing-";
/// Where the venvfs venv waits between the two renames of a swap without exchange.
const OLD: &str = ".venvfs-old-";

type CmdResult<T = ()> = Result<T, Box<dyn Error>>;

/// A venv directory that a daemon elsewhere may serve (another host sharing it over NFS
/// or sshfs, or a `venvfs run` job in a mount namespace of its own): materialize would
/// replace the directory from under that mount, which no lock can stop (`flock` does not
/// reach other hosts on sshfs). Each running daemon keeps a work directory in the venv,
/// named after its host, pid namespace and pid (`upper/work.rs`), and removes it when it
/// ends: one of a daemon not known to be gone means it may be serving the venv.
fn refuse_while_served_elsewhere(venv: &Path) -> CmdResult {
    use crate::upper::work::Owner;
    let me = Owner::this();
    let Ok(entries) = std::fs::read_dir(venv.join(crate::upper::WORK)) else {
        return Ok(());
    };
    let others: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let owner = Owner::parse(&name)?;
            if owner.is_gone(&me) {
                return None;
            }
            // (one of this machine's: a mount in another namespace, a `venvfs run` job)
            Some(if owner.host == me.host && owner.pid_ns == me.pid_ns {
                format!(
                    "this machine (pid {}: a `venvfs run` job, or a mount in another mount \
                     namespace; wait for it to end)",
                    owner.pid
                )
            } else {
                format!("{} (pid {})", owner.host, owner.pid)
            })
        })
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} may be mounted elsewhere, by the venvfs daemon of {}: materialize would replace \
         the directory from under that mount; unmount it there first (if that daemon is gone \
         for good, its host down, remove its directory in {}/{})",
        venv.display(),
        others.join(", "),
        venv.display(),
        crate::upper::WORK
    )
    .into())
}

pub fn materialize(args: &MaterializeArgs) -> CmdResult {
    let started = Instant::now();
    let given =
        std::path::absolute(&args.venv).map_err(|e| format!("{}: {e}", args.venv.display()))?;
    if crate::daemon::is_stale(&given) || crate::daemon::venv_is_mounted(&given) {
        return Err(format!(
            "{} is mounted; unmount it first with `venvfs umount {}` (materialize replaces the \
             venv directory, which a mount covers)",
            given.display(),
            given.display()
        )
        .into());
    }
    // (the real directory, if VENV is a link to it: that is what gets replaced)
    let venv = given.canonicalize().unwrap_or(given);
    let (parent, name) = match (venv.parent(), venv.file_name()) {
        (Some(p), Some(n)) => (p.to_owned(), n.to_owned()),
        _ => return Err(format!("{}: not a venv directory", venv.display()).into()),
    };
    recover(&parent, &name, &venv)?;
    let manifest = crate::manifest::manifest_path(&venv);
    if !venv.is_dir() {
        return Err(format!("{}: no such directory", venv.display()).into());
    }
    crate::venv::python_version(&venv)?;
    if !manifest.is_file() {
        return Err(format!(
            "{} is not a venvfs venv (it has no {}): it is a plain venv already",
            venv.display(),
            manifest.display()
        )
        .into());
    }
    // One materialize of a venv at a time: a second one would find the first one's
    // directory beside it, or the venv gone from under it.
    let lock = File::open(&venv).map_err(|e| format!("{}: {e}", venv.display()))?;
    rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| format!("another `venvfs materialize {}` is running", venv.display()))?;
    refuse_while_served_elsewhere(&venv)?;

    // Ctrl-C (or SIGTERM) during the build stops it and removes what it built: the venv
    // stays as it was and nothing is left beside it. (From the switch on, the run is
    // finished first: a fraction of a second.)
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, std::sync::Arc::clone(&stop))?;
    }
    let overlay = crate::daemon::open_unmounted(&venv)?;
    let aside = parent.join(sibling(&name, BUILDING, std::process::id()));
    let built = build(&overlay, &venv, &aside, args.link_mode, &stop);
    drop(overlay);
    if stop.load(std::sync::atomic::Ordering::SeqCst) {
        let _ = remove_tree(&aside);
        eprintln!(
            "interrupted: {} is left as it was (a venvfs venv); nothing was kept of the plain \
             venv being built",
            venv.display()
        );
        std::process::exit(130);
    }
    // (mounted meanwhile: what was read may be half old, half new)
    let built = built.and_then(|stats| {
        if crate::daemon::venv_is_mounted(&venv) {
            return Err(format!(
                "{} was mounted while it was being materialized; nothing changed: run \
                 `venvfs umount {}` and materialize again",
                venv.display(),
                venv.display()
            )
            .into());
        }
        Ok(stats)
    });
    let stats = match built {
        Ok(stats) => stats,
        Err(e) => {
            let _ = remove_tree(&aside);
            return Err(e);
        }
    };
    // Durable before it is swapped in: a crash after the exchange must not leave a venv of
    // empty files. (One syncfs instead of an fsync per file: thousands of small files.)
    let dir = File::open(&aside)?;
    rustix::fs::syncfs(&dir).map_err(|e| format!("{}: cannot sync: {e}", aside.display()))?;
    drop(dir);
    let old = switch(&venv, &aside, &parent, &name)?;
    drop(lock);
    if let Err(e) = remove_tree(&old) {
        eprintln!(
            "warning: the old venvfs venv, moved to {}, could not be removed: {e}; the next \
             `venvfs materialize` beside it removes it, or remove it yourself",
            old.display()
        );
    }
    stats.report(&venv, args.link_mode, started);
    Ok(())
}

/// `NAME<what>PID`: a sibling of the venv.
fn sibling(name: &std::ffi::OsStr, what: &str, pid: u32) -> OsString {
    let mut s = name.to_owned();
    s.push(format!("{what}{pid}"));
    s
}

/// Cleans up after runs that were killed: the directories they left beside the venv
/// (named with their PID, so those of a run still going are left alone). A venvfs venv
/// left aside between the two renames of a swap without exchange (VENV missing) is put
/// back.
fn recover(parent: &Path, name: &std::ffi::OsStr, venv: &Path) -> CmdResult {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Ok(());
    };
    let prefix = name.as_encoded_bytes();
    let mut building = Vec::new();
    let mut old = Vec::new();
    for e in entries.flatten() {
        let file_name = e.file_name();
        let Some(rest) = file_name.as_encoded_bytes().strip_prefix(prefix) else {
            continue;
        };
        let (list, pid) = if let Some(pid) = rest.strip_prefix(BUILDING.as_bytes()) {
            (&mut building, pid)
        } else if let Some(pid) = rest.strip_prefix(OLD.as_bytes()) {
            (&mut old, pid)
        } else {
            continue;
        };
        let Some(pid) = std::str::from_utf8(pid)
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !crate::registry::alive(pid) {
            list.push(e.path());
        }
    }
    for o in old {
        if std::fs::symlink_metadata(venv).is_err() {
            std::fs::rename(&o, venv).map_err(|e| {
                format!(
                    "{} is missing and the venvfs venv an interrupted materialize left at {} \
                     cannot be moved back: {e}",
                    venv.display(),
                    o.display()
                )
            })?;
            eprintln!(
                "put back {} from {}, where an interrupted materialize left it",
                venv.display(),
                o.display()
            );
        } else {
            remove_leftover(&o)?;
        }
    }
    for b in building {
        remove_leftover(&b)?;
    }
    Ok(())
}

fn remove_leftover(path: &Path) -> CmdResult {
    remove_tree(path).map_err(|e| {
        format!(
            "cannot remove {}, left by an interrupted materialize: {e}",
            path.display()
        )
    })?;
    eprintln!(
        "removed {}, left by an interrupted materialize",
        path.display()
    );
    Ok(())
}

/// Puts the plain venv `aside` at `venv`; returns where the old venvfs venv is now.
fn switch(venv: &Path, aside: &Path, parent: &Path, name: &std::ffi::OsStr) -> CmdResult<PathBuf> {
    match rustix::fs::renameat_with(CWD, aside, CWD, venv, RenameFlags::EXCHANGE) {
        Ok(()) => {
            crate::fsutil::sync_dir(parent)?;
            return Ok(aside.to_owned());
        }
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {}
        Err(e) => {
            let _ = remove_tree(aside);
            let why = if e == rustix::io::Errno::BUSY || e == rustix::io::Errno::XDEV {
                " (is the venv directory a mount point, such as a container volume? \
                 materialize replaces the directory, which a mount point cannot be: \
                 materialize a venv inside it instead)"
            } else {
                ""
            };
            return Err(format!(
                "cannot swap the plain venv into {}: {e}{why}; the venvfs venv is unchanged",
                venv.display()
            )
            .into());
        }
    }
    let old = parent.join(sibling(name, OLD, std::process::id()));
    switch_by_renames(venv, aside, &old)?;
    crate::fsutil::sync_dir(parent)?;
    Ok(old)
}

/// The swap where the filesystem has no atomic exchange: two renames, the venvfs venv to
/// `old` first. A run killed between them leaves no venv, and the venvfs venv at `old`,
/// which the next run puts back ([`recover`]).
fn switch_by_renames(venv: &Path, aside: &Path, old: &Path) -> CmdResult {
    if let Err(e) = std::fs::rename(venv, old) {
        let _ = remove_tree(aside);
        return Err(format!("cannot move {} aside: {e}", venv.display()).into());
    }
    if let Err(e) = std::fs::rename(aside, venv) {
        let _ = std::fs::rename(old, venv);
        let _ = remove_tree(aside);
        return Err(format!(
            "cannot move the plain venv to {}: {e}; the venvfs venv is unchanged",
            venv.display()
        )
        .into());
    }
    Ok(())
}

/// What was made, for the summary.
#[derive(Default)]
struct Stats {
    files: u64,
    bytes: u64,
    cloned: u64,
    linked: u64,
    copied: u64,
    /// Copied because cloning or hard-linking failed (the first error said why).
    fell_back: u64,
    fallback_reason: Option<String>,
    /// `.whl` members, which hard-link mode copies.
    members_copied: u64,
    /// Devices whose filesystem refused to clone.
    cannot_clone: std::collections::HashSet<u64>,
    skipped_sockets: Vec<PathBuf>,
}

impl Stats {
    fn report(&self, venv: &Path, mode: LinkMode, started: Instant) {
        let how = [
            (self.cloned, "cloned"),
            (self.linked, "hard-linked"),
            (self.copied, "copied"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect::<Vec<_>>()
        .join(", ");
        println!(
            "Materialized {} files ({:.1} MiB) in {} ms{}",
            self.files,
            self.bytes as f64 / (1 << 20) as f64,
            started.elapsed().as_millis(),
            if how.is_empty() {
                String::new()
            } else {
                format!(": {how}")
            }
        );
        if self.fell_back > 0 {
            let what = match mode {
                LinkMode::Clone => "cloned",
                _ => "hard-linked",
            };
            eprintln!(
                "note: {} files could not be {what} ({}) and were copied instead, as uv does",
                self.fell_back,
                self.fallback_reason.as_deref().unwrap_or("")
            );
        }
        if mode == LinkMode::Hardlink && self.members_copied > 0 {
            eprintln!(
                "note: {} files of .whl layers were copied: a wheel file has no file per member \
                 to link",
                self.members_copied
            );
        }
        for s in &self.skipped_sockets {
            eprintln!(
                "note: {} is a socket, left out (a socket cannot be copied)",
                s.display()
            );
        }
        println!("{} is a plain venv now; it needs no mount", venv.display());
    }
}

/// One entry of the merged view, its path relative to the venv.
struct Item {
    rel: PathBuf,
    ino: Ino,
    attr: Attr,
}

/// Every entry of the merged view, each directory before what it holds.
fn plan(fs: &Overlay) -> CmdResult<Vec<Item>> {
    let mut items = Vec::new();
    let mut stack = vec![(ROOT, PathBuf::new())];
    while let Some((dir, rel)) = stack.pop() {
        let mut offset = 0;
        loop {
            let piece = fs
                .readdir(dir, offset)
                .map_err(|e| format!("cannot list {}: {e}", shown(&rel)))?;
            let Some(last) = piece.last() else { break };
            offset = last.offset;
            for e in piece {
                if e.name == "." || e.name == ".." {
                    continue;
                }
                let child = rel.join(&e.name);
                let attr = fs
                    .getattr(e.ino)
                    .map_err(|err| format!("{}: {err}", child.display()))?
                    .attr;
                if attr.kind == FileKind::Dir {
                    stack.push((e.ino, child.clone()));
                }
                items.push(Item {
                    rel: child,
                    ino: e.ino,
                    attr,
                });
            }
        }
    }
    Ok(items)
}

fn shown(rel: &Path) -> String {
    if rel.as_os_str().is_empty() {
        "the venv's root".into()
    } else {
        rel.display().to_string()
    }
}

/// Builds the plain venv at `aside` from the merged view of `fs` (the venv `venv`).
fn build(
    fs: &Overlay,
    venv: &Path,
    aside: &Path,
    mode: LinkMode,
    stop: &std::sync::atomic::AtomicBool,
) -> CmdResult<Stats> {
    let items = plan(fs)?;
    let total: u64 = items
        .iter()
        .filter(|i| i.attr.kind == FileKind::File)
        .map(|i| i.attr.size)
        .sum();
    let progress = Progress::bytes(total, "Materializing");
    let mut stats = Stats::default();
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(aside)
        .map_err(|e| format!("cannot create {}: {e}", aside.display()))?;
    let root = fs.getattr(ROOT)?.attr;
    let owner = Owner::of_venv(venv)?;
    let mut dirs = vec![(aside.to_owned(), root)];
    // upper files with several names: the first name made, to link the others to
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for item in &items {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        let dest = aside.join(&item.rel);
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", item.rel.display());
        match item.attr.kind {
            FileKind::Dir => {
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&dest)
                    .map_err(|e| fail(&e))?;
                dirs.push((dest, item.attr));
            }
            FileKind::Symlink => {
                let target = fs.readlink(item.ino).map_err(|e| fail(&e))?;
                std::os::unix::fs::symlink(&target, &dest).map_err(|e| fail(&e))?;
                owner.give(&dest, &item.attr).map_err(|e| fail(&e))?;
                set_times(&dest, item.attr.mtime, true).map_err(|e| fail(&e))?;
            }
            FileKind::File => {
                let origin = fs.origin(item.ino).map_err(|e| fail(&e))?;
                // a file of the venv's own with several names keeps them (the overlay
                // numbers each name apart when it loads them: the disk's inode tells)
                if let (Origin::Upper(rel), true) = (&origin, item.attr.nlink > 1) {
                    let m = std::fs::symlink_metadata(venv.join(os_path(rel)?))
                        .map_err(|e| fail(&e))?;
                    let key = (m.dev(), m.ino());
                    if let Some(first) = links.get(&key) {
                        std::fs::hard_link(first, &dest).map_err(|e| fail(&e))?;
                        stats.files += 1;
                        continue;
                    }
                    links.insert(key, dest.clone());
                }
                let linked =
                    file(fs, venv, item, &origin, &dest, mode, &mut stats).map_err(|e| fail(&e))?;
                // (never a hard link to the cache: that would change the cache's file)
                if !linked {
                    owner.give_file(&dest, &item.attr).map_err(|e| fail(&e))?;
                }
                stats.files += 1;
                stats.bytes += item.attr.size;
                progress.inc(item.attr.size);
            }
            FileKind::Fifo | FileKind::CharDevice | FileKind::BlockDevice => {
                let kind = match item.attr.kind {
                    FileKind::Fifo => rustix::fs::FileType::Fifo,
                    FileKind::CharDevice => rustix::fs::FileType::CharacterDevice,
                    _ => rustix::fs::FileType::BlockDevice,
                };
                rustix::fs::mknodat(
                    CWD,
                    &dest,
                    kind,
                    rustix::fs::Mode::from_raw_mode(item.attr.perm as u32 & 0o7777),
                    item.attr.rdev as u64,
                )
                .map_err(|e| fail(&e))?;
                owner.give(&dest, &item.attr).map_err(|e| fail(&e))?;
                set_times(&dest, item.attr.mtime, false).map_err(|e| fail(&e))?;
            }
            FileKind::Socket => stats.skipped_sockets.push(item.rel.clone()),
        }
    }
    progress.finish();
    unset_link_mode(aside)?;
    // Directories last, deepest first: filling one changes its time, and a read-only one
    // could not be filled.
    for (dir, attr) in dirs.iter().rev() {
        let fail = |e: std::io::Error| format!("{}: {e}", dir.display());
        owner.give(dir, attr).map_err(fail)?;
        std::fs::set_permissions(
            dir,
            std::os::unix::fs::PermissionsExt::from_mode(attr.perm as u32 & 0o7777),
        )
        .map_err(fail)?;
        set_times(dir, attr.mtime, false).map_err(fail)?;
    }
    Ok(stats)
}

/// Puts the regular file `item` at `dest`, from `origin`.
fn file(
    fs: &Overlay,
    venv: &Path,
    item: &Item,
    origin: &Origin,
    dest: &Path,
    mode: LinkMode,
    stats: &mut Stats,
) -> std::io::Result<bool> {
    let source = match origin {
        Origin::Upper(rel) => Some(venv.join(os_path(rel)?)),
        Origin::ReadOnly(p) => Some(p.clone()),
        Origin::Member => None,
    };
    if mode == LinkMode::Hardlink {
        match (origin, &source) {
            (Origin::ReadOnly(p), _) => match std::fs::hard_link(p, dest) {
                Ok(()) => {
                    stats.linked += 1;
                    return Ok(true);
                }
                Err(e) => stats.fell_back(&e),
            },
            (Origin::Member, _) => stats.members_copied += 1,
            _ => {}
        }
    }
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)?;
    let written = match source {
        Some(source) => {
            let mut src = File::open(&source)?;
            // (a filesystem that refused once is not asked again for every file)
            let dev = std::os::unix::fs::MetadataExt::dev(&src.metadata()?);
            if mode == LinkMode::Clone && !stats.cannot_clone.contains(&dev) {
                match rustix::fs::ioctl_ficlone(&out, &src) {
                    Ok(()) => {
                        stats.cloned += 1;
                        out.metadata()?.len()
                    }
                    Err(e) => {
                        stats.fell_back(&std::io::Error::from(e));
                        stats.cannot_clone.insert(dev);
                        stats.copied += 1;
                        std::io::copy(&mut src, &mut out)?
                    }
                }
            } else if mode == LinkMode::Clone {
                stats.fell_back += 1;
                stats.copied += 1;
                std::io::copy(&mut src, &mut out)?
            } else {
                stats.copied += 1;
                std::io::copy(&mut src, &mut out)?
            }
        }
        None => {
            stats.copied += 1;
            let mut offset = 0u64;
            loop {
                let chunk = fs
                    .read(item.ino, None, offset, 1 << 20)
                    .map_err(std::io::Error::other)?;
                if chunk.is_empty() {
                    break;
                }
                out.write_all(&chunk)?;
                offset += chunk.len() as u64;
            }
            offset
        }
    };
    if written != item.attr.size {
        return Err(std::io::Error::other(format!(
            "{written} bytes where the venv shows {}: it changed while being materialized",
            item.attr.size
        )));
    }
    rustix::fs::fchmod(
        &out,
        rustix::fs::Mode::from_raw_mode(item.attr.perm as u32 & 0o7777),
    )?;
    out.set_times(
        std::fs::FileTimes::new()
            .set_accessed(item.attr.mtime)
            .set_modified(item.attr.mtime),
    )?;
    Ok(false)
}

impl Stats {
    fn fell_back(&mut self, e: &std::io::Error) {
        self.fell_back += 1;
        self.fallback_reason.get_or_insert_with(|| e.to_string());
    }
}

/// Who the entries made belong to. Run by a user, that user (as any file they make).
/// Run by root on a venv another user owns (`sudo venvfs materialize`), that user: the
/// overlay shows the layers' files as belonging to whoever serves them, root here, so
/// what root would own goes to the venv directory's owner, and what belongs to someone
/// else in the venv's own directory stays theirs.
#[derive(Clone, Copy)]
struct Owner(Option<(u32, u32)>);

impl Owner {
    fn of_venv(venv: &Path) -> std::io::Result<Owner> {
        if !rustix::process::geteuid().is_root() {
            return Ok(Owner(None));
        }
        let m = std::fs::metadata(venv)?;
        Ok(Owner((m.uid() != 0).then(|| (m.uid(), m.gid()))))
    }

    /// Gives `path` (not followed) its owner.
    fn give(self, path: &Path, attr: &Attr) -> std::io::Result<()> {
        let Some((uid, gid)) = self.0 else {
            return Ok(());
        };
        let (uid, gid) = match attr.uid {
            0 => (uid, gid),
            _ => (attr.uid, attr.gid),
        };
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
    }

    /// [`Owner::give`] for a regular file made with its mode: a change of owner clears the
    /// set-user-ID and set-group-ID bits, which are given back.
    fn give_file(self, path: &Path, attr: &Attr) -> std::io::Result<()> {
        if self.0.is_none() {
            return Ok(());
        }
        self.give(path, attr)?;
        if attr.perm & 0o6000 != 0 {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                path,
                std::fs::Permissions::from_mode(attr.perm as u32 & 0o7777),
            )?;
        }
        Ok(())
    }
}

/// A venv-relative path of the overlay as a path.
fn os_path(rel: &[u8]) -> std::io::Result<&Path> {
    crate::fsutil::os_str_from_bytes(rel)
        .map(Path::new)
        .ok_or_else(|| std::io::Error::other("a path that is not valid here"))
}

/// Sets a path's access and modification times to `t` (of a symlink itself when `link`).
fn set_times(path: &Path, t: SystemTime, link: bool) -> std::io::Result<()> {
    let (sec, nsec) = crate::fsutil::time_parts(t);
    let ts = Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    let flags = if link {
        AtFlags::SYMLINK_NOFOLLOW
    } else {
        AtFlags::empty()
    };
    rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        flags,
    )?;
    Ok(())
}

/// Takes out of the activation scripts the uv link mode venvfs made them set (see
/// [`crate::activate::unset_link_mode`]), keeping each script's mode and time.
fn unset_link_mode(root: &Path) -> CmdResult {
    let dir = crate::activate::scripts_dir(root);
    let times: Vec<_> = crate::activate::SCRIPTS
        .iter()
        .filter_map(|s| {
            let p = dir.join(s);
            Some((
                p.clone(),
                std::fs::symlink_metadata(&p).ok()?.modified().ok()?,
            ))
        })
        .collect();
    let changed =
        crate::activate::unset_link_mode(root).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (script, mtime) in times {
        if changed.iter().any(|c| script.ends_with(c)) {
            set_times(&script, mtime, false)?;
        }
    }
    Ok(())
}

/// Removes a directory tree, also one with directories made read-only.
fn remove_tree(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    let mut stack = vec![path.to_owned()];
    while let Some(d) = stack.pop() {
        let _ = std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700));
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    std::fs::remove_dir_all(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PID no process can have (above the kernel's largest `pid_max`).
    const DEAD: u32 = 4_000_000_000;

    fn dir_with(path: &Path, file: &str) {
        std::fs::create_dir_all(path).unwrap();
        std::fs::write(path.join(file), file).unwrap();
    }

    #[test]
    fn leftovers_of_dead_runs_go_and_a_venv_left_aside_comes_back() {
        let tmp = tempfile::tempdir().unwrap();
        let venv = tmp.path().join("v");
        let at = |s: OsString| tmp.path().join(s);
        let name = std::ffi::OsStr::new("v");
        // killed between the two renames of a swap without exchange: no venv
        dir_with(&at(sibling(name, OLD, DEAD)), "venvfs");
        dir_with(&at(sibling(name, BUILDING, DEAD)), "plain");
        recover(tmp.path(), name, &venv).unwrap();
        assert!(venv.join("venvfs").is_file(), "the venvfs venv is back");
        assert!(!at(sibling(name, BUILDING, DEAD)).exists());
        // killed after the swap: the old venv goes; a live run's directories stay, and so
        // do other names
        dir_with(&at(sibling(name, OLD, DEAD)), "old");
        dir_with(&at(sibling(name, BUILDING, 1)), "live");
        dir_with(&at(sibling(name, BUILDING, std::process::id())), "mine");
        dir_with(&tmp.path().join("v.materializing-x"), "other");
        dir_with(&tmp.path().join("vv.materializing-5"), "other");
        recover(tmp.path(), name, &venv).unwrap();
        assert!(venv.join("venvfs").is_file());
        assert!(!at(sibling(name, OLD, DEAD)).exists());
        assert!(at(sibling(name, BUILDING, 1)).exists());
        assert!(at(sibling(name, BUILDING, std::process::id())).exists());
        assert!(tmp.path().join("v.materializing-x").exists());
        assert!(tmp.path().join("vv.materializing-5").exists());
    }

    #[test]
    fn the_switch_exchanges_the_two_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let (venv, aside) = (tmp.path().join("v"), tmp.path().join("v.materializing-1"));
        dir_with(&venv, "venvfs");
        dir_with(&aside, "plain");
        let old = switch(&venv, &aside, tmp.path(), std::ffi::OsStr::new("v")).unwrap();
        assert!(venv.join("plain").is_file());
        assert!(old.join("venvfs").is_file());
    }

    #[test]
    fn the_swap_by_renames_and_a_run_killed_between_them() {
        let tmp = tempfile::tempdir().unwrap();
        let name = std::ffi::OsStr::new("v");
        let venv = tmp.path().join(name);
        let aside = tmp.path().join(sibling(name, BUILDING, DEAD));
        let old = tmp.path().join(sibling(name, OLD, DEAD));
        dir_with(&venv, "venvfs");
        dir_with(&aside, "plain");
        switch_by_renames(&venv, &aside, &old).unwrap();
        assert!(venv.join("plain").is_file() && old.join("venvfs").is_file());
        assert!(!aside.exists());
        // the next run removes the old venv
        recover(tmp.path(), name, &venv).unwrap();
        assert!(venv.join("plain").is_file() && !old.exists());
        // killed after the first rename: the next run puts the venvfs venv back and
        // drops the plain one that was not swapped in
        std::fs::remove_dir_all(&venv).unwrap();
        dir_with(&old, "venvfs");
        dir_with(&aside, "plain");
        recover(tmp.path(), name, &venv).unwrap();
        assert!(venv.join("venvfs").is_file() && !venv.join("plain").exists());
        assert!(!old.exists() && !aside.exists());
    }

    #[test]
    fn read_only_directories_are_removed_too() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("t");
        dir_with(&tree.join("a/b"), "f");
        for d in ["a/b", "a"] {
            std::fs::set_permissions(tree.join(d), std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        remove_tree(&tree).unwrap();
    }
}
