//! Installing wheels into a venv that is not mounted: each wheel becomes a layer, and the
//! few files an installer generates (launchers, RECORD, INSTALLER, REQUESTED,
//! direct_url.json, rewritten `#!python` scripts) are written into the venv's own directory,
//! where they shadow the layer's. Only dist-info files and `.data/scripts` are read from a
//! wheel, never its payload.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::generated::{self, DataScript, Generated, VenvOs, WheelInstall};
use super::launcher::Launchers;
use super::layout::{Layout, OsName};
use super::txn::Txn;
use super::InstallError;
use crate::layer::generated::OwnView;
use crate::layer::wheel::{MemberCache, MemberKind, WheelArchive};
use crate::manifest::Layer;
use crate::upper_format::{self, EntryName};
use venvfs_api::FileKind;

/// A wheel ready to install: its layer and the files to write for it.
pub struct Planned {
    pub layer: Layer,
    pub generated: Generated,
    /// Venv-relative paths of the files the layer shows.
    pub destinations: Vec<String>,
    /// The venv-relative path, size and sha256 (`sha256=...`, from the wheel's RECORD) of
    /// the layer's files, to recognize copies of them in the venv's own directory.
    pub hashes: Vec<(String, Option<u64>, String)>,
}

/// Reads one file of a wheel source by its path in the wheel.
pub(super) type ReadFn = Box<dyn Fn(&str) -> Result<Vec<u8>, InstallError>>;

/// The files of a wheel source that installing reads.
pub(super) struct SourceFiles {
    /// (path, size) of every file.
    pub(super) members: Vec<(String, u64)>,
    /// The mode of every file, in the order of `members`.
    pub(super) modes: Vec<u32>,
    pub(super) read: ReadFn,
}

impl SourceFiles {
    /// (name, mode) of the files directly in `data_scripts` (`NAME-VERSION.data/scripts/`).
    fn scripts(&self, data_scripts: &str) -> Vec<(String, u32)> {
        self.members
            .iter()
            .zip(&self.modes)
            .filter_map(|((p, _), &mode)| Some((p.strip_prefix(data_scripts)?, mode)))
            .filter(|(n, _)| !n.contains('/'))
            .map(|(n, mode)| (n.to_owned(), mode))
            .collect()
    }
}

/// File `rel` of a wheel source (an unpacked wheel or a `.whl`), its name compared without
/// regard to ASCII case (a wheel may spell its `.dist-info` as its project does).
pub fn read_source_file(source: &Path, rel: &str) -> Result<Vec<u8>, InstallError> {
    let files = source_files(source)?;
    let name = files
        .members
        .iter()
        .map(|(p, _)| p.as_str())
        .find(|p| p.eq_ignore_ascii_case(rel))
        .unwrap_or(rel)
        .to_owned();
    (files.read)(&name)
}

/// Opens a wheel source once: its file list, and a reader of its files.
pub(super) fn source_files(source: &Path) -> Result<SourceFiles, InstallError> {
    let read_err = |path: PathBuf| {
        move |e| InstallError::Read {
            path: path.clone(),
            source: e,
        }
    };
    if source.is_dir() {
        // the listing a mount uses, so whatever it would refuse is refused now
        let label = source.display().to_string();
        let entries = crate::layer::listing::list(source, &label)?;
        let files = entries.iter().filter(|e| e.kind == FileKind::File);
        let members = files.clone().map(|e| (e.rel.clone(), e.size)).collect();
        let modes = files.map(|e| e.perm as u32).collect();
        let root = source.to_owned();
        Ok(SourceFiles {
            members,
            modes,
            read: Box::new(move |rel| {
                let p = root.join(rel);
                let size = std::fs::symlink_metadata(&p)
                    .map_err(read_err(p.clone()))?
                    .len();
                check_read_size(&p, rel, size)?;
                std::fs::read(&p).map_err(read_err(p))
            }),
        })
    } else {
        let archive = Arc::new(WheelArchive::open(source)?);
        let files: Vec<(usize, &crate::layer::wheel::Member)> = archive
            .members()
            .iter()
            .enumerate()
            .filter(|(_, m)| m.kind == MemberKind::File)
            .collect();
        let members = files
            .iter()
            .map(|(_, m)| (m.name.to_string(), m.size))
            .collect();
        let modes = files.iter().map(|(_, m)| m.mode).collect();
        let index: foldhash::HashMap<String, usize> = files
            .iter()
            .map(|&(i, m)| (m.name.to_string(), i))
            .collect();
        let cache = MemberCache::new(64 << 20, 64 << 20, std::env::temp_dir());
        let path = source.to_owned();
        Ok(SourceFiles {
            members,
            modes,
            read: Box::new(move |rel| {
                let index = *index.get(rel).ok_or_else(|| InstallError::NoMember {
                    path: path.clone(),
                    member: rel.to_owned(),
                })?;
                check_read_size(&path, rel, archive.members()[index].size)?;
                let data = cache.open(&archive, index)?;
                data.read_at(0, archive.members()[index].size as usize)
                    .map_err(read_err(path.clone()))
            }),
        })
    }
}

/// The largest file install reads into memory (RECORD, WHEEL, entry_points.txt, a
/// `.data/scripts` file). Real ones are kilobytes, a script that is a compiled program tens
/// of megabytes; a wheel declaring more is refused rather than allowed to exhaust memory
/// (a deflated member can claim 1,032 times its compressed size).
const MAX_READ: u64 = 256 << 20;

fn check_read_size(source: &Path, rel: &str, size: u64) -> Result<(), InstallError> {
    if size > MAX_READ {
        return Err(InstallError::Generate {
            path: source.to_owned(),
            why: format!(
                "{rel} is {size} bytes, more than the {} MiB install reads of a file; the wheel is damaged or hostile",
                MAX_READ >> 20
            ),
        });
    }
    Ok(())
}

/// Works out the layer and generated files of a wheel for the venv at `venv` (absolute)
/// of Python `version`, reading only its metadata.
/// `from_path`: the wheel was named by its path (not found through a lock, `--find-links`
/// or the uv cache), so `direct_url.json` records where it came from, as uv does.
pub fn plan(
    source: &Path,
    venv: &Path,
    version: &str,
    from_path: bool,
) -> Result<Planned, InstallError> {
    let files = source_files(source)?;
    let tops = files
        .members
        .iter()
        .filter_map(|(p, _)| p.split('/').next());
    let prefix = super::dist_info_prefix_among(source, tops)?;
    let layer = Layer {
        installed: true,
        ..super::layer_for(source, &prefix, version)
    };
    let dist = format!("{prefix}.dist-info");
    let scripts_dir = format!("{prefix}.data/scripts/");
    let scripts = files.scripts(&scripts_dir);
    let read_total: u64 = files
        .members
        .iter()
        .filter(|(p, _)| p.starts_with(&scripts_dir) || p.starts_with(&format!("{dist}/")))
        .map(|(_, n)| *n)
        .fold(0, u64::saturating_add);
    if read_total > 4 * MAX_READ {
        return Err(InstallError::Generate {
            path: source.to_owned(),
            why: format!(
                "its .dist-info and .data/scripts files add up to {read_total} bytes, more than the {} MiB install reads; the wheel is damaged or hostile",
                (4 * MAX_READ) >> 20
            ),
        });
    }
    let text = |name: &str| -> Result<Option<String>, InstallError> {
        let rel = format!("{dist}/{name}");
        if !files.members.iter().any(|(p, _)| *p == rel) {
            return Ok(None);
        }
        Ok(Some(
            String::from_utf8_lossy(&(files.read)(&rel)?).into_owned(),
        ))
    };
    let wheel = text("WHEEL")?.ok_or_else(|| InstallError::NoMember {
        path: source.to_owned(),
        member: format!("{dist}/WHEEL"),
    })?;
    let record = text("RECORD")?.ok_or_else(|| InstallError::NoMember {
        path: source.to_owned(),
        member: format!("{dist}/RECORD"),
    })?;
    let entry_points = text("entry_points.txt")?;
    let script_bytes: Vec<(String, Vec<u8>, u32)> = scripts
        .iter()
        .map(|(name, mode)| {
            Ok((
                name.clone(),
                (files.read)(&format!("{prefix}.data/scripts/{name}"))?,
                *mode,
            ))
        })
        .collect::<Result<_, InstallError>>()?;
    let data_scripts: Vec<DataScript> = script_bytes
        .iter()
        .map(|(name, content, mode)| DataScript {
            name,
            content,
            mode: *mode,
        })
        .collect();
    let mut read_here: Vec<(String, &[u8])> = vec![(format!("{dist}/WHEEL"), wheel.as_bytes())];
    if let Some(text) = &entry_points {
        read_here.push((format!("{dist}/entry_points.txt"), text.as_bytes()));
    }
    for (name, content, _) in &script_bytes {
        read_here.push((format!("{prefix}.data/scripts/{name}"), content));
    }
    // (an unpacked wheel's sizes are not all known: they are not asked for, see dir_files)
    let sizes = (!source.is_dir()).then_some(files.members.as_slice());
    let rows = super::record::parse_record(&record).map_err(|e| InstallError::Generate {
        path: source.to_owned(),
        why: e.to_string(),
    })?;
    check_record(source, &rows, sizes, &read_here)?;
    let hashes = rows
        .iter()
        .filter_map(|r| {
            let hash = r.hash.clone()?;
            Some((layer.destination(&r.path)?, r.size, hash))
        })
        .collect();
    let direct_url =
        (from_path && !source.is_dir()).then(|| generated::direct_url_for_wheel_file(source));
    // (Windows: read from the base interpreter's pip only for a wheel that may need them)
    let launchers = match OsName::current() {
        OsName::Nt if entry_points.is_some() => Some(super::launcher::for_venv(venv).map_err(
            |e| InstallError::Generate {
                path: source.to_owned(),
                why: e.to_string(),
            },
        )?),
        OsName::Nt => Some(Launchers {
            console: Vec::new(),
            gui: Vec::new(),
        }),
        OsName::Posix => None,
    };
    let install = WheelInstall {
        dist_info_prefix: &prefix,
        name: &layer.name,
        python_version: version,
        venv,
        os: launchers.as_ref().map_or(VenvOs::Posix, VenvOs::Windows),
        wheel: &wheel,
        record: &record,
        entry_points: entry_points.as_deref(),
        members: Some(&files.members),
        data_scripts: &data_scripts,
        installer: "venvfs",
        requested: true,
        direct_url: direct_url.as_deref(),
        uv_cache: None,
    };
    let generated =
        generated::generate_with_rows(&install, rows).map_err(|e| InstallError::Generate {
            path: source.to_owned(),
            why: e.to_string(),
        })?;
    let destinations = files
        .members
        .iter()
        .filter_map(|(rel, _)| layer.destination(rel))
        .collect();
    Ok(Planned {
        layer,
        generated,
        destinations,
        hashes,
    })
}

/// Copies of a layer's files in the venv's own directory (what uv's or pip's copy through
/// the mount leaves) hide the layer for good: each file at `root/dest` whose bytes equal
/// the layer's own (same size, same sha256 as its RECORD says) is moved out of the way, so
/// the layer shows it again; so is a link whose target has those bytes (a reference uv's
/// symlink link mode made into its cache: the same file, shown by the layer now). Only a
/// wheel whose `.dist-info` is in the venv's own directory is looked at (uv and pip always
/// write one); an edited file, and a link to anything else, stay. Returns the files and
/// bytes dropped.
pub fn drop_copies(txn: &mut Txn, root: &Path, p: &Planned) -> std::io::Result<(usize, u64)> {
    let dist = p.destinations.iter().find_map(|d| {
        d.split_once(".dist-info/")
            .map(|(dir, _)| format!("{dir}.dist-info"))
    });
    if !dist.is_some_and(|d| root.join(d).is_dir()) {
        return Ok((0, 0));
    }
    let (mut files, mut bytes) = (0, 0);
    let mut pycaches = std::collections::HashMap::new();
    for (dest, size, hash) in &p.hashes {
        let path = root.join(dest);
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        let meta = match meta.is_symlink() {
            true => match std::fs::metadata(&path) {
                Ok(target) => target,
                Err(_) => continue,
            },
            false => meta,
        };
        if !meta.is_file() || size.is_some_and(|n| n != meta.len()) {
            continue;
        }
        if super::record::sha256_digest(&std::fs::read(&path)?) == *hash && txn.remove(&path)? {
            files += 1;
            bytes += meta.len();
            // (the installer's bytecode of it, stale once the layer shows the module: see
            // `adopt::compiled_of`)
            let module = Path::new(dest);
            let pycache = module.parent().unwrap_or(Path::new("")).join("__pycache__");
            for (pyc, size) in super::adopt::compiled_of(root, &pycache, module, &mut pycaches) {
                if txn.remove(&root.join(pyc))? {
                    bytes += size;
                }
            }
        }
    }
    Ok((files, bytes))
}

/// Refuses a RECORD that lies: a row whose size differs from the file's (sizes are known
/// from a `.whl`'s central directory, so this reads no payload; an unpacked wheel's are not
/// asked for, so `members` is None for it), or whose
/// sha256 differs from that of a file installing read anyway (WHEEL, entry_points.txt,
/// `.data/scripts`). Rows for files the wheel lacks are left to the healing uv does.
fn check_record(
    source: &Path,
    rows: &[super::record::RecordRow],
    members: Option<&[(String, u64)]>,
    read: &[(String, &[u8])],
) -> Result<(), InstallError> {
    let lie = |why: String| InstallError::Generate {
        path: source.to_owned(),
        why: format!(
            "RECORD lies: {why}; the wheel was altered or built wrongly, rebuild or re-download it"
        ),
    };
    let sizes: foldhash::HashMap<&str, u64> = members
        .unwrap_or_default()
        .iter()
        .map(|(p, n)| (p.as_str(), *n))
        .collect();
    let read: foldhash::HashMap<&str, &[u8]> = read.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    for row in rows {
        if let (Some(declared), Some(&actual)) = (row.size, sizes.get(row.path.as_str())) {
            if declared != actual {
                return Err(lie(format!(
                    "it gives {} a size of {declared} bytes, but the file has {actual}",
                    row.path
                )));
            }
        }
        let Some(hash) = row.hash.as_deref().filter(|h| h.starts_with("sha256=")) else {
            continue;
        };
        if let Some(content) = read.get(row.path.as_str()) {
            let actual = super::record::sha256_digest(content);
            if actual != hash {
                return Err(lie(format!(
                    "it gives {} the hash {hash}, but the file's is {actual}",
                    row.path
                )));
            }
        }
    }
    Ok(())
}

/// Puts a wheel's generated files into the generated layer `layer` is making (an own file
/// at one of their paths, which would shadow it, goes: installing replaces it), and writes
/// into the (unmounted) venv directory the whiteouts that hide layer files an installer
/// would not install.
pub fn write(
    txn: &mut Txn,
    venv: &Path,
    generated: &Generated,
    layer: &mut super::generated_layer::Change,
) -> std::io::Result<()> {
    for (rel, _, _) in &generated.files {
        txn.remove(&venv.join(rel))?;
    }
    layer.add(generated);
    for rel in &generated.hidden {
        write_whiteout(txn, &venv.join(rel))?;
    }
    Ok(())
}

/// Moves the generated files of an installed wheel that a venv from before the generated
/// layer keeps as its own files into the generated layer `layer` is making, where the own
/// file is exactly what installing writes (content and mode); an own file that differs
/// (edited) stays, and shadows the layer's. Returns the files moved.
pub fn migrate(
    txn: &mut Txn,
    venv: &Path,
    generated: &Generated,
    layer: &mut super::generated_layer::Change,
) -> std::io::Result<usize> {
    let mut moved = 0;
    for (rel, content, mode) in &generated.files {
        let path = venv.join(rel);
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        if !meta.is_file() || meta.len() != content.len() as u64 || !same_mode(&meta, *mode) {
            continue;
        }
        if std::fs::read(&path)? == *content && txn.remove(&path)? {
            layer.add_file(rel, content, *mode);
            moved += 1;
        }
    }
    Ok(moved)
}

#[cfg(unix)]
fn same_mode(meta: &std::fs::Metadata, mode: u32) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777 == mode
}

/// (Windows files have no mode bits to compare.)
#[cfg(not(unix))]
fn same_mode(_meta: &std::fs::Metadata, _mode: u32) -> bool {
    true
}

/// Writes the whiteout that hides the layer entry at `path` (`DIR/.wh.NAME`).
pub fn write_whiteout(txn: &mut Txn, path: &Path) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(upper_format::whiteout_name)
        .unwrap_or_default();
    txn.write(&path.with_file_name(name), b"", 0o644)
}

/// Removes what installing a wheel wrote (the files its installed RECORD lists, as `view`
/// shows it) from an unmounted venv's own directory, with their bytecode and any edits
/// made to its files, and from the generated layer `generated` is making (with the rest of
/// its `.dist-info`). The layer itself is dropped by the caller; [`Txn::commit`] prunes
/// emptied directories.
pub fn remove_generated(
    txn: &mut Txn,
    view: &OwnView,
    venv: &Path,
    layer: &Layer,
    layout: &Layout,
    generated: &mut super::generated_layer::Change,
) -> Result<usize, InstallError> {
    let site = venv.join(layout.site_packages());
    let dist_rel = format!(
        "{}/{}-{}.dist-info",
        layout.site_packages(),
        layer.name,
        layer.version
    );
    generated.remove_below(&dist_rel);
    // (the generated layer's files go even where the own directory hides them, as `pip
    // uninstall` through the mount leaves it: the RECORD read below is then not there)
    if let Some(text) = view
        .generated()
        .and_then(|g| g.read(&format!("{dist_rel}/RECORD")).ok())
    {
        for row in super::record::parse_record(&String::from_utf8_lossy(&text)).unwrap_or_default()
        {
            if let Some(rel) = confined(venv, &site, Path::new(&row.path))
                .and_then(|path| venv_relative(venv, &path))
            {
                generated.remove(&rel);
            }
        }
    }
    let record_path = venv.join(&dist_rel).join("RECORD");
    let text = match view.read(&format!("{dist_rel}/RECORD")) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(InstallError::Read {
                path: record_path,
                source: e,
            })
        }
    };
    let rows = super::record::parse_record(&text).map_err(|e| InstallError::Generate {
        path: record_path.clone(),
        why: e.to_string(),
    })?;
    let mut removed = 0;
    for row in rows {
        let rel = Path::new(&row.path);
        // RECORD paths are relative to site-packages; never follow one out of the venv
        let Some(path) = confined(venv, &site, rel) else {
            continue;
        };
        if let Some(rel) = venv_relative(venv, &path) {
            generated.remove(&rel);
        }
        let mut targets = vec![path.clone()];
        if path.extension().is_some_and(|x| x == "py") {
            targets.extend(bytecode_of(&path));
        }
        for t in targets {
            if txn.remove(&t).map_err(|e| InstallError::Read {
                path: t.clone(),
                source: e,
            })? {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// The markers of the venv's own directories, listed once per change however many wheels
/// it installs (a venv's top directories are shared by all of them).
#[derive(Default)]
pub struct Whiteouts {
    /// Venv-relative directory -> its markers, or `None` if the directory is not in the
    /// venv's own directory.
    listed: foldhash::HashMap<String, Option<Markers>>,
}

/// The markers of one directory of the venv's own that can hide a layer's files.
#[derive(Default)]
struct Markers {
    /// Its whiteouts, as (hidden name, whiteout path).
    whiteouts: Vec<(String, PathBuf)>,
    /// The path of its opaque marker, if it has one: no lower content shows in it.
    opaque: Option<PathBuf>,
}

impl Markers {
    fn is_empty(&self) -> bool {
        self.whiteouts.is_empty() && self.opaque.is_none()
    }
}

impl Whiteouts {
    /// The markers of venv directory `dir` ("" is the root), or `None` if it (or one of
    /// its ancestors) is not in the venv's own directory.
    fn of(&mut self, venv: &Path, dir: &str) -> Option<&Markers> {
        if !self.listed.contains_key(dir) {
            let parent_exists = match dir.rsplit_once('/') {
                Some((parent, _)) => self.of(venv, parent).is_some(),
                None => dir.is_empty() || self.of(venv, "").is_some(),
            };
            let listing = parent_exists
                .then(|| std::fs::read_dir(venv.join(dir)).ok())
                .flatten()
                .map(|entries| {
                    let mut markers = Markers::default();
                    for e in entries.flatten() {
                        let name = e.file_name();
                        match upper_format::classify(&name) {
                            EntryName::Whiteout(target) => {
                                if let Some(target) = target.to_str() {
                                    markers.whiteouts.push((target.to_owned(), e.path()));
                                }
                            }
                            EntryName::Opaque => markers.opaque = Some(e.path()),
                            EntryName::Entry | EntryName::Redirect => {}
                        }
                    }
                    markers
                });
            self.listed.insert(dir.to_owned(), listing);
        }
        self.listed[dir].as_ref()
    }

    /// Removes the markers in the venv's own directory that hide any of `destinations`
    /// or their directories, so that a reinstalled layer shows again: whiteouts (left by
    /// `pip uninstall` through the mount), and the opaque markers of the directories the
    /// layer has files in (left where such a directory was deleted and made again, as
    /// `pip install` through the mount does after `pip uninstall`). As with a whiteout of
    /// a directory, the other layers' content of such a directory shows again too.
    pub fn clear(
        &mut self,
        txn: &mut Txn,
        venv: &Path,
        destinations: &[String],
    ) -> std::io::Result<()> {
        // Only directories of the venv's own can hold markers: list each directory the
        // layer has files in once (and its ancestors, through `of`), and look closer only
        // if one of them holds any.
        let mut dirs: foldhash::HashSet<&str> = Default::default();
        let mut any = false;
        for d in destinations {
            let dir = d.rsplit_once('/').map_or("", |(dir, _)| dir);
            if dirs.insert(dir) {
                any |= self.ancestors_have_markers(venv, dir);
            }
        }
        if !any {
            return Ok(());
        }
        // every path the layer shows, directories included; and its directories alone,
        // the root included
        let mut shown: foldhash::HashSet<&str> = destinations.iter().map(String::as_str).collect();
        let mut shown_dirs: foldhash::HashSet<&str> = [""].into_iter().collect();
        for &dir in &dirs {
            let mut p = dir;
            while !p.is_empty() && shown_dirs.insert(p) {
                shown.insert(p);
                p = p.rsplit_once('/').map_or("", |(up, _)| up);
            }
        }
        let mut hidden = Vec::new();
        for (dir, markers) in &self.listed {
            let Some(markers) = markers else { continue };
            for (target, path) in &markers.whiteouts {
                let rel = if dir.is_empty() {
                    target.clone()
                } else {
                    format!("{dir}/{target}")
                };
                if shown.contains(rel.as_str()) {
                    hidden.push(path.clone());
                }
            }
            if let Some(opaque) = markers
                .opaque
                .as_ref()
                .filter(|_| shown_dirs.contains(dir.as_str()))
            {
                hidden.push(opaque.clone());
            }
        }
        for path in hidden {
            txn.remove(&path)?;
        }
        Ok(())
    }

    /// Whether `dir` or one of its ancestors holds a marker in the venv's own directory.
    fn ancestors_have_markers(&mut self, venv: &Path, dir: &str) -> bool {
        let mut d = dir;
        loop {
            if self.of(venv, d).is_some_and(|m| !m.is_empty()) {
                return true;
            }
            if d.is_empty() {
                return false;
            }
            d = d.rsplit_once('/').map_or("", |(up, _)| up);
        }
    }
}

/// `path` below `venv` as a '/'-separated venv-relative path.
fn venv_relative(venv: &Path, path: &Path) -> Option<String> {
    let parts: Option<Vec<&str>> = path
        .strip_prefix(venv)
        .ok()?
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect();
    Some(parts?.join("/"))
}

/// `site/rel` with `..` resolved lexically, if it stays inside the venv.
fn confined(venv: &Path, site: &Path, rel: &Path) -> Option<PathBuf> {
    use std::path::Component;
    if rel.is_absolute() {
        return None;
    }
    let mut out = site.to_owned();
    for c in rel.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    (out.starts_with(venv) && out != venv).then_some(out)
}

/// The `__pycache__/<stem>.*.pyc` files of a module.
/// Removes from the venv's own directory (`root`) the bytecode Python wrote for the
/// modules that `layer` provides, as `uninstall` does for a wheel it installed: without
/// it, a removed package's `__pycache__` would keep its directory importable (as an empty
/// namespace package). `manifest` names the manifest, for messages.
pub fn remove_layer_bytecode(
    txn: &mut Txn,
    root: &Path,
    layer: &Layer,
    manifest: &Path,
) -> Result<usize, Box<dyn std::error::Error>> {
    let (_, entries) = crate::layer::Source::open(layer, manifest)?;
    let mut removed = 0;
    for entry in entries.iter().filter(|e| e.rel.ends_with(".py")) {
        let Some((to, rest)) = layer.destination_parts(&entry.rel) else {
            continue;
        };
        let mut path = root.to_owned();
        for part in to
            .split('/')
            .chain(rest.split('/'))
            .filter(|p| !p.is_empty())
        {
            path.push(part);
        }
        for pyc in bytecode_of(&path) {
            if txn.remove(&pyc)? {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

fn bytecode_of(py: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(stem)) = (py.parent(), py.file_stem()) else {
        return Vec::new();
    };
    let prefix = format!("{}.", stem.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir.join("__pycache__")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.starts_with(&prefix) && n.ends_with(".pyc")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upper_format::{whiteout_name, OPAQUE};

    /// Installs a layer showing `destinations` over the venv's own directory `v`, as
    /// `sync` does, and commits (keeping site-packages, as `sync` does).
    fn clear(v: &Path, destinations: &[&str]) {
        let destinations: Vec<String> = destinations.iter().map(|d| d.to_string()).collect();
        let mut txn = Txn::begin(v).unwrap();
        Whiteouts::default()
            .clear(&mut txn, v, &destinations)
            .unwrap();
        txn.sync().unwrap();
        txn.commit(&[v.to_owned(), v.join(SITE)]);
    }

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }

    const SITE: &str = "lib/python3.11/site-packages";

    /// Planning pip's wheel for a venv of this host: on Windows its launchers are `.exe`
    /// files made of the base interpreter's pip launchers (the Windows check runs this
    /// under Wine); elsewhere shebang scripts in `bin/`.
    #[test]
    fn plan_makes_the_hosts_launchers() {
        use crate::install::launcher::{distlib_dir, parse_launcher_exe};
        let wheel = match crate::test_wheels::test_wheels_dir() {
            Ok(dir) => dir.join("pip-26.3-py3-none-any.whl"),
            Err(e) => return eprintln!("skipped: {e}"),
        };
        if !wheel.is_file() {
            return eprintln!("skipped: {} is not there", wheel.display());
        }
        let t = tempfile::tempdir().unwrap();
        let (home, venv) = (t.path().join("Python311"), t.path().join("venv"));
        // A base interpreter: an x64 `python.exe` header and pip's launchers (stand-ins).
        let mut exe = b"MZ".to_vec();
        exe.resize(0x3c, 0);
        exe.extend_from_slice(&0x40u32.to_le_bytes());
        exe.extend_from_slice(b"PE\0\0\x64\x86");
        touch(&home.join("python.exe"));
        std::fs::write(home.join("python.exe"), exe).unwrap();
        let distlib = distlib_dir(&home);
        std::fs::create_dir_all(&distlib).unwrap();
        std::fs::write(distlib.join("t64.exe"), b"MZ console").unwrap();
        std::fs::write(distlib.join("w64.exe"), b"MZ gui").unwrap();
        std::fs::create_dir_all(&venv).unwrap();
        let cfg = format!("home = {}\nversion = 3.11.9\n", home.display());
        std::fs::write(venv.join("pyvenv.cfg"), cfg).unwrap();

        let p = plan(&wheel, &venv, "3.11", true).unwrap();
        let file = |path: &str| {
            let found = p.generated.files.iter().find(|(f, _, _)| f == path);
            found.map(|(_, content, _)| content.as_slice())
        };
        if cfg!(windows) {
            let pip = parse_launcher_exe(file("Scripts/pip3.11.exe").unwrap()).unwrap();
            assert_eq!(pip.launcher, b"MZ console");
            assert!(
                pip.python.ends_with(r"venv\Scripts\python.exe"),
                "{}",
                pip.python
            );
            assert!(file("Lib/site-packages/pip-26.3.dist-info/RECORD").is_some());
            assert!(p
                .destinations
                .iter()
                .any(|d| d == "Lib/site-packages/pip/__init__.py"));
        } else {
            assert!(file("bin/pip3.11").unwrap().starts_with(b"#!/"));
            assert!(p
                .destinations
                .iter()
                .any(|d| d == &format!("{SITE}/pip/__init__.py")));
        }
    }

    #[test]
    fn whiteouts_of_a_new_layer_are_removed() {
        let venv = tempfile::tempdir().unwrap();
        let v = venv.path();
        let site = v.join(SITE);
        let hides_dir = site.join(whiteout_name("foo".as_ref()));
        let hides_file = site.join("foo").join(whiteout_name("a.py".as_ref()));
        let other = site.join(whiteout_name("bar".as_ref()));
        for p in [&hides_dir, &hides_file, &other] {
            touch(p);
        }
        clear(v, &[&format!("{SITE}/foo/a.py")]);
        assert!(!hides_dir.exists(), "the whiteout of its directory is gone");
        assert!(!hides_file.exists(), "the whiteout of its file is gone");
        assert!(other.exists(), "a whiteout of another name stays");
    }

    #[test]
    fn opaque_directories_a_new_layer_has_files_in_are_made_plain() {
        let venv = tempfile::tempdir().unwrap();
        let v = venv.path();
        let site = v.join(SITE);
        // `foo/` was deleted through the mount and made again (as `pip install` does after
        // `pip uninstall`): opaque, so no lower content shows in it
        let own = site.join("foo/own.py");
        let opaque = site.join("foo").join(OPAQUE);
        let elsewhere = site.join("baz").join(OPAQUE);
        for p in [&own, &opaque, &elsewhere] {
            touch(p);
        }
        clear(v, &[&format!("{SITE}/foo/sub/a.py")]);
        assert!(!opaque.exists(), "the new layer's files show in foo/");
        assert!(own.exists(), "the venv's own files stay");
        assert!(
            elsewhere.exists(),
            "a directory the layer has no files in stays opaque"
        );
    }

    #[test]
    fn an_opaque_directory_left_empty_is_pruned() {
        let venv = tempfile::tempdir().unwrap();
        let v = venv.path();
        let opaque = v.join(SITE).join("foo/sub").join(OPAQUE);
        touch(&opaque);
        clear(v, &[&format!("{SITE}/foo/sub/a.py")]);
        assert!(!opaque.exists());
        assert!(
            !v.join(SITE).join("foo").exists(),
            "nothing of the venv's own is left in foo/"
        );
        assert!(v.join(SITE).exists());
    }
}
