//! `venvfs adopt`: a venv that uv or pip filled with copies becomes a venvfs venv. Each
//! installed distribution for which a source (uv's cache, `--find-links`) has the same
//! wheel becomes a layer of it, and the copies whose bytes and mode equal the layer's files
//! are removed, giving their disk back. What differs from the wheel stays in the venv's own
//! directory and shadows the layer: RECORD, INSTALLER, launchers and rewritten `#!python`
//! scripts (what the installer wrote), and the user's edits. Files of the wheel the venv
//! lacks (deleted after installing) get a whiteout, as `fold` does, so nothing shows that
//! did not show before.
//!
//! Crash safety is by order, in two steps:
//! 1. ([`plan`], [`commit_layers`], through [`crate::daemon::change`]) whiteouts are written
//!    and fsynced, then the manifest with the new layers replaces the old one atomically
//!    (the commit point) and the unmounted guard is written. A copy shadows its layer's
//!    file, so the venv shows the same bytes before and after.
//! 2. ([`removals`], [`remove_at`]) only then the copies are unlinked, one by one: with the
//!    layer committed, each removal lets the layer show the same bytes. Then the
//!    directories that left empty. A mounted venv's daemon does this step itself, under
//!    its tree lock, with the reload that shows it (`daemon::remove_copies`), so neither a
//!    program running in the venv nor a kill of the command sees a copy gone before the
//!    layer's file takes its place.
//!
//! A kill at any point leaves a venv that shows what it showed; running `adopt` again finds
//! the layers already there and removes what is left, and so does the next mount when a
//! run was interrupted ([`finish_interrupted`]).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::apply::{self, SourceFiles};
use super::fold::{own_dist_infos, Marks};
use super::layout::Layout;
use super::record::RecordRow;
use super::txn::Txn;
use crate::finder::{self, Candidate, Origin, Sources};
use crate::inventory::{human, venv_relative};
use crate::manifest::{manifest_path, Layer, Manifest};
use crate::name::PackageName;
use crate::tags::TagRank;
use crate::upper_format::whiteout_name;

type Error = Box<dyn std::error::Error>;

/// Where to look for wheels.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub find_links: Vec<PathBuf>,
    /// uv's caches to look in (`--cache-dir`, repeatable); empty: the user's own.
    pub cache_dirs: Vec<PathBuf>,
    /// Do not look in uv's cache.
    pub no_cache: bool,
}

/// One distribution to adopt (or whose adoption an interrupted run left unfinished).
#[derive(Debug, Clone)]
pub struct Adoption {
    pub layer: Layer,
    /// Not yet in the manifest.
    pub new: bool,
    /// Venv-relative entries of the wheel the venv lacks: whiteouts hide them.
    pub hidden: Vec<PathBuf>,
    /// Venv-relative copies equal to the layer's files, to remove, with the disk space each
    /// gives back (0 for a file with other hard links).
    pub copies: Vec<(PathBuf, u64)>,
    /// Files whose bytes differ from what their installed RECORD says: edited since.
    pub edited: usize,
    /// Venv-relative `.pyc` the installer compiled for modules among `copies` (pip does by
    /// default), with the disk each gives back: they go with them, being stale once the
    /// layer shows the module (its modification time is the wheel's, not the copy's), and
    /// the bytecode store serves what Python compiles next.
    pub bytecode: Vec<(PathBuf, u64)>,
}

/// What [`plan`] found.
#[derive(Debug, Default)]
pub struct Plan {
    pub adoptions: Vec<Adoption>,
    /// Distributions left as they are, and why.
    pub notes: Vec<String>,
    /// Distributions already served by a layer with nothing left to do.
    pub already: usize,
    /// Distributions linked into uv's cache (its symlink link mode), left to `fold`.
    pub linked: usize,
    /// Directories of the venv's own that the layers show and that may be left empty by
    /// the removals (or were, by an interrupted run): removed when empty.
    pub prune: BTreeSet<PathBuf>,
    /// Opaque directories above copies to remove, and directories whited out and made
    /// again (which show as opaque): `python -m venv --clear` on a mounted venv leaves
    /// `lib` so, with what pip then installs below it. The commit makes them plain, as
    /// `fold` does, or no layer would show through them.
    pub opaque: BTreeSet<PathBuf>,
    /// The whiteouts beside those made-again directories (venv-relative): they go too.
    pub stale_whiteouts: BTreeSet<PathBuf>,
    /// When the plan began looking: a copy changed since (uv or pip installing again
    /// meanwhile) is not removed, whatever its bytes are now.
    pub started: Option<std::time::SystemTime>,
}

/// What [`remove_at`] did.
#[derive(Debug, Default)]
pub struct Removed {
    pub files: usize,
    pub bytes: u64,
    /// Venv-relative paths removed (files and emptied directories).
    pub touched: Vec<PathBuf>,
    /// Copies that could not be removed, and why (they stay; the venv shows the same).
    pub failed: Vec<String>,
}

/// Finds the layer for an installed distribution (name, version, installed RECORD rows):
/// `Ok(Err(why))` when no source has it.
pub type Find<'a> =
    dyn FnMut(&str, &str, &[RecordRow]) -> Result<Result<Layer, String>, Error> + 'a;

/// Works out what adopting the venv (`venv`, as the user named it; its own directory
/// reached at `root`) takes, with wheels from the sources of `opts`; writes nothing.
pub fn plan(venv: &Path, root: &Path, opts: &Options) -> Result<Plan, Error> {
    let version = crate::venv::python_version(venv)?;
    // (the sources are opened, and the interpreter asked, only when a layer is new)
    let mut sources: Option<(Sources, TagRank)> = None;
    // (pip's cache, listed when first needed)
    let pip = (!opts.no_cache)
        .then(|| finder::pipcache::locate(Some(venv)))
        .flatten();
    let mut pip_wheels: Option<Vec<finder::pipcache::PipWheel>> = None;
    let mut find = |name: &str, ver: &str, rows: &[RecordRow]| {
        if sources.is_none() {
            let caches = if opts.no_cache {
                Vec::new()
            } else {
                finder::uvcache::locate_all(&opts.cache_dirs)
            };
            let interpreter = crate::interpreter::of_venv(venv)?;
            // (the wheels venvfs fetched before are a source too; adopt fetches nothing)
            let store = crate::fetch::Store::locate();
            // (and the wheels `python -m venv` installed pip and setuptools from, and those
            // pip or uv installed from a file)
            let mut dirs = opts.find_links.clone();
            dirs.extend(crate::venv::bundled_wheel_dirs(venv, &version));
            dirs.extend(installed_from_files(root, &version));
            sources = Some((
                Sources::new(&dirs, &caches, store.as_ref())?,
                TagRank::new(&interpreter.tags()),
            ));
        }
        let (sources, rank) = sources.as_mut().expect("just made");
        let mut chosen = choose(sources, rank, name, ver, rows, &version);
        // (pip's cache, last: what it holds is copied into the wheel store first)
        if let (Err(_), Some(pip)) = (&chosen, &pip) {
            let wheels = pip_wheels.get_or_insert_with(|| finder::pipcache::list(pip));
            sources.pip_cache = Some((pip.clone(), wheels.len()));
            let kept = finder::pipcache::into_store(wheels, &PackageName::new(name), ver)?;
            if !kept.is_empty() {
                sources.store.extend(kept);
                chosen = choose(sources, rank, name, ver, rows, &version);
            }
        }
        Ok(chosen.map_err(|why| format!("{why} (looked in {})", sources.describe())))
    };
    plan_with(root, &version, &mut find)
}

/// Whether the own directory at `root` of a venv with layers holds a distribution
/// installed as copies (its METADATA a file of its own): what uv or pip wrote while the
/// venv was not mounted, which its daemon gives back once mounted (`daemon/autofold.rs`).
/// A plain venv mounted is left to `venvfs adopt`: giving its copies back would make it
/// need the mount.
pub fn has_copies(root: &Path, layout: &Layout) -> bool {
    let site = root.join(layout.site_packages());
    own_dist_infos(&site).iter().any(|d| {
        site.join(d)
            .join("METADATA")
            .symlink_metadata()
            .is_ok_and(|m| m.is_file())
    }) && Manifest::load(&manifest_path(root)).is_ok_and(|m| !m.layers.is_empty())
}

/// The directories of the wheel files the venv's own distributions were installed from
/// (`pip install ./x.whl`, `uv pip install ./x.whl`), as their `direct_url.json` names them
/// (PEP 610: a `file:` URL), where such a file still is.
fn installed_from_files(root: &Path, version: &str) -> BTreeSet<PathBuf> {
    let layout = Layout::new(version);
    let site = root.join(layout.site_packages());
    own_dist_infos(&site)
        .iter()
        .filter_map(|d| std::fs::read_to_string(site.join(d).join("direct_url.json")).ok())
        .filter_map(|text| {
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            let wheel = crate::pins::file_url_path(json.get("url")?.as_str()?)?;
            let is_wheel = wheel.extension().is_some_and(|x| x == "whl") && wheel.is_file();
            is_wheel.then(|| wheel.parent().map(Path::to_owned))?
        })
        .collect()
}

/// [`plan`] for a venv of Python `version` (X.Y), with layers from `find`.
pub fn plan_with(root: &Path, version: &str, find: &mut Find) -> Result<Plan, Error> {
    let layout = Layout::new(version);
    let site = Path::new(layout.site_packages());
    let manifest = Manifest::load(&manifest_path(root))?;
    let mut out = Plan {
        started: Some(crate::fsutil::file_clock_now()),
        ..Plan::default()
    };

    let mut chosen: Vec<(Layer, bool, Vec<RecordRow>)> = Vec::new();
    for dist_info in own_dist_infos(&root.join(site)) {
        let record_path = root.join(site).join(&dist_info).join("RECORD");
        let text = match std::fs::read_to_string(&record_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.notes
                    .push(format!("{dist_info}: no RECORD, so it is not adopted"));
                continue;
            }
            Err(e) => return Err(format!("{}: {e}", record_path.display()).into()),
        };
        let rows = match super::record::parse_record(&text) {
            Ok(r) => r,
            Err(e) => {
                out.notes.push(format!("{dist_info}: RECORD: {e}"));
                continue;
            }
        };
        // (uv's symlink link mode: links into its cache, which `fold` makes a layer of)
        let metadata = root.join(site).join(&dist_info).join("METADATA");
        if std::fs::read_link(&metadata).is_ok_and(|t| crate::inventory::is_uv_cache_file(&t)) {
            out.linked += 1;
            continue;
        }
        let prefix = dist_info.trim_end_matches(".dist-info");
        let (name, ver) = prefix.split_once('-').unwrap_or((prefix, ""));
        let package = PackageName::new(name);
        let label = format!("{package}=={ver}");
        if let Some(l) = manifest.layers.iter().find(|l| l.package_name() == package) {
            if finder::same_version(&l.version, ver) {
                chosen.push((l.clone(), false, rows));
                continue;
            }
            // (uv or pip uninstalled that version through the mount and installed this
            // one: its layer gives way to this one's, as in `fold`)
            if !layout.uninstalled_through_mount(root, l) {
                out.notes.push(format!(
                    "{label}: not adopted: the manifest has a layer of {} {} (hidden); \
                     `venvfs sync` or `venvfs uninstall` sorts that out",
                    l.name, l.version
                ));
                continue;
            }
        }
        match find(name, ver, &rows)? {
            Ok(layer) if layer.name == name && layer.version == ver => {
                chosen.push((layer, true, rows))
            }
            Ok(layer) => out.notes.push(format!(
                "{label}: not adopted: its wheel {} names its .dist-info {}-{}, not {dist_info}",
                layer.source.display(),
                layer.name,
                layer.version
            )),
            Err(why) => out.notes.push(format!(
                "{label}: its files stay as copies: {why} (`venvfs install VENV {label}` \
                 fetches its wheel and gives them back)"
            )),
        }
    }

    // Which layer shows each path once the new ones are on top (in the order
    // `commit_layers` puts them, by name): a copy is removed only when its own layer is
    // the one that will show it.
    chosen.sort_by_key(|c| c.0.package_name());
    let mut order: Vec<Layer> = chosen.iter().filter(|c| c.1).map(|c| c.0.clone()).collect();
    order.extend(manifest.layers.iter().cloned());
    let mut marks = Marks::new(root);
    // (directories that stay even when emptied)
    let keep: [&Path; 2] = [Path::new(&layout.scheme.scripts), site];
    let listings: Vec<Result<SourceFiles, String>> = order
        .iter()
        .map(|l| apply::source_files(&l.source).map_err(|e| e.to_string()))
        .collect();
    let mut shown_by: HashMap<String, usize> = HashMap::new();
    for (i, (l, files)) in order.iter().zip(&listings).enumerate() {
        if let Ok(files) = files {
            for (rel, _) in &files.members {
                if let Some(dest) = l.destination(rel) {
                    shown_by.entry(dest).or_insert(i);
                }
            }
        }
    }

    // (each `__pycache__` listed once: its names)
    let mut pycaches: HashMap<PathBuf, Vec<String>> = HashMap::new();
    for (layer, new, rows) in chosen {
        let i = order
            .iter()
            .position(|l| *l == layer)
            .expect("every chosen layer is in the order");
        let files = match &listings[i] {
            Ok(f) => f,
            Err(why) => {
                out.notes
                    .push(format!("{}: not adopted: {why}", layer.label()));
                continue;
            }
        };
        let installed: HashMap<PathBuf, Option<String>> = rows
            .iter()
            .filter_map(|r| Some((venv_relative(site, &r.path)?, r.hash.clone())))
            .collect();
        let mut a = Adoption {
            layer: layer.clone(),
            new,
            hidden: Vec::new(),
            copies: Vec::new(),
            edited: 0,
            bytecode: Vec::new(),
        };
        let mut hidden: BTreeSet<PathBuf> = BTreeSet::new();
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        for ((rel, _), &mode) in files.members.iter().zip(&files.modes) {
            let Some(dest) = layer.destination(rel) else {
                continue;
            };
            let dest_path = PathBuf::from(&dest);
            let parent = dest_path.parent().unwrap_or(Path::new("")).to_owned();
            if marks.hidden_below(&parent) {
                // (a copy below opaque directories: the commit makes them plain)
                let copy = root
                    .join(&dest_path)
                    .symlink_metadata()
                    .is_ok_and(|m| m.is_file());
                if !copy || marks.redirected_below(&parent) {
                    continue;
                }
                for d in parent.ancestors() {
                    if marks.is_opaque(d) {
                        out.opaque.insert(d.to_owned());
                    } else if marks.whited_out(d) {
                        out.opaque.insert(d.to_owned());
                        out.stale_whiteouts.insert(
                            d.with_file_name(whiteout_name(d.file_name().unwrap_or_default())),
                        );
                    }
                }
            }
            let mut d = parent.as_path();
            while !d.as_os_str().is_empty() && !keep.contains(&d) && dirs.insert(d.to_owned()) {
                d = d.parent().unwrap_or(Path::new(""));
            }
            let at = root.join(&dest_path);
            let meta = match at.symlink_metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if new {
                        // hide the topmost directory the venv lacks, or the file
                        let mut top = dest_path.clone();
                        while let Some(p) = top.parent() {
                            if p.as_os_str().is_empty() || root.join(p).symlink_metadata().is_ok() {
                                break;
                            }
                            top = p.to_owned();
                        }
                        let whiteout =
                            top.with_file_name(whiteout_name(top.file_name().unwrap_or_default()));
                        if root.join(&whiteout).symlink_metadata().is_err() {
                            hidden.insert(top);
                        }
                    }
                    continue;
                }
                Err(e) => return Err(format!("{}: {e}", at.display()).into()),
            };
            if !meta.is_file() {
                continue;
            }
            let own_whiteout =
                dest_path.with_file_name(whiteout_name(dest_path.file_name().unwrap_or_default()));
            if root.join(&own_whiteout).symlink_metadata().is_ok() {
                continue;
            }
            if same_file(root, &dest_path, &meta, files, &layer.source, rel, mode)? {
                if shown_by.get(&dest) == Some(&i) {
                    let pycache = parent.join("__pycache__");
                    let compiled = compiled_of(root, &pycache, &dest_path, &mut pycaches);
                    if !compiled.is_empty() {
                        dirs.insert(pycache);
                        a.bytecode.extend(compiled);
                    }
                    a.copies.push((dest_path, given_back(&meta)));
                }
            } else if let Some(Some(hash)) = installed.get(&dest_path) {
                let bytes = std::fs::read(&at).map_err(|e| format!("{}: {e}", at.display()))?;
                if super::record::sha256_digest(&bytes) != *hash {
                    a.edited += 1;
                }
            }
        }
        a.hidden = hidden.into_iter().collect();
        if !a.new && a.copies.is_empty() {
            out.already += 1;
            // (directories an interrupted run emptied)
            out.prune.extend(
                dirs.into_iter().filter(|d| {
                    std::fs::read_dir(root.join(d)).is_ok_and(|mut e| e.next().is_none())
                }),
            );
            continue;
        }
        out.prune.extend(dirs);
        out.adoptions.push(a);
    }
    out.adoptions.sort_by_key(|a| a.layer.package_name());
    Ok(out)
}

/// The `.pyc` in `pycache` (venv-relative, reached at `root`) of module `module`
/// (`dir/name.py`): `name.TAG.pyc` and `name.TAG.opt-N.pyc`, with the disk each gives back.
pub(super) fn compiled_of(
    root: &Path,
    pycache: &Path,
    module: &Path,
    listed: &mut HashMap<PathBuf, Vec<String>>,
) -> Vec<(PathBuf, u64)> {
    let Some(stem) = module
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".py"))
    else {
        return Vec::new();
    };
    let names = listed.entry(pycache.to_owned()).or_insert_with(|| {
        std::fs::read_dir(root.join(pycache))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    });
    names
        .iter()
        .filter(|n| {
            n.strip_prefix(stem)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|rest| {
                    let parts: Vec<&str> = rest.split('.').collect();
                    match parts.as_slice() {
                        [_tag, "pyc"] => true,
                        [_tag, opt, "pyc"] => opt.starts_with("opt-"),
                        _ => false,
                    }
                })
        })
        .filter_map(|n| {
            let rel = pycache.join(n);
            let meta = root.join(&rel).symlink_metadata().ok()?;
            meta.is_file().then(|| (rel, given_back(&meta)))
        })
        .collect()
}

/// The wheel of `name` `version` whose RECORD agrees most with the installed one (the
/// same path with the same hash), among those the sources have for this interpreter, the
/// best ranked first (as `sync` would choose). Which one is chosen never changes what the
/// venv shows (files it lacks are hidden, files that differ shadow the layer's), only how
/// many copies can go.
fn choose(
    sources: &Sources,
    rank: &TagRank,
    name: &str,
    version: &str,
    installed: &[RecordRow],
    python: &str,
) -> Result<Layer, String> {
    let wanted = PackageName::new(name);
    let mut candidates: Vec<Candidate> = sources
        .find_links
        .iter()
        .filter(|c| {
            PackageName::new(&c.name) == wanted && finder::same_version(&c.version, version)
        })
        .cloned()
        .collect();
    candidates.extend(sources.uv_cache_candidates(&wanted, version));
    candidates.extend(
        sources
            .store
            .iter()
            .filter(|c| {
                PackageName::new(&c.name) == wanted && finder::same_version(&c.version, version)
            })
            .cloned(),
    );
    let found = candidates.len();
    let mut ranked: Vec<(Origin, usize, Candidate)> = candidates
        .into_iter()
        .filter_map(|c| Some((c.origin, rank.rank(&c.tags)?, c)))
        .collect();
    if ranked.is_empty() {
        return Err(if found == 0 {
            "no wheel of it was found".to_owned()
        } else {
            format!("{found} wheel(s) of it were found, none for this interpreter")
        });
    }
    ranked.sort_by_key(|a| (a.0, a.1));
    let wanted_rows: HashMap<&str, &str> = installed
        .iter()
        .filter_map(|r| Some((r.path.as_str(), r.hash.as_deref()?)))
        .collect();
    let mut best: Option<(usize, Layer)> = None;
    let mut problems = Vec::new();
    // (the best few: they are read to compare)
    for (_, _, c) in ranked.into_iter().take(4) {
        let source = c.path.canonicalize().unwrap_or(c.path.clone());
        let agreed = (|| -> Result<(usize, Layer), String> {
            let files = apply::source_files(&source).map_err(|e| e.to_string())?;
            let tops = files
                .members
                .iter()
                .filter_map(|(p, _)| p.split('/').next());
            let prefix = super::dist_info_prefix_among(&source, tops).map_err(|e| e.to_string())?;
            let record =
                (files.read)(&format!("{prefix}.dist-info/RECORD")).map_err(|e| e.to_string())?;
            let rows = super::record::parse_record(&String::from_utf8_lossy(&record))
                .map_err(|e| e.to_string())?;
            let n = rows
                .iter()
                .filter(|r| {
                    r.hash
                        .as_deref()
                        .is_some_and(|h| wanted_rows.get(r.path.as_str()) == Some(&h))
                })
                .count();
            if source.is_dir() {
                // (checked as mount will check it, so a bad entry is refused now)
                crate::layer::dir::scan(&source, &source.display().to_string())
                    .map_err(|e| e.to_string())?;
            }
            let layer = Layer {
                installed: true,
                ..super::layer_for(&source, &prefix, python)
            };
            Ok((n, layer))
        })();
        match agreed {
            // (the first, best ranked, unless a later one agrees more: the copies are
            // compared byte for byte anyway, so a RECORD without hashes is no obstacle)
            Ok((n, layer)) if best.as_ref().is_none_or(|(b, _)| n > *b) => best = Some((n, layer)),
            Ok(_) => {}
            Err(why) => problems.push(format!("{}: {why}", source.display())),
        }
    }
    match best {
        Some((_, layer)) => Ok(layer),
        None => Err(problems.join("; ")),
    }
}

/// Whether the venv's file at `rel_dest` has the bytes and mode of the layer's file `rel`.
fn same_file(
    root: &Path,
    dest: &Path,
    meta: &std::fs::Metadata,
    files: &SourceFiles,
    source: &Path,
    rel: &str,
    layer_mode: u32,
) -> Result<bool, Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o7777 != layer_mode & 0o7777 {
            return Ok(false);
        }
    }
    #[cfg(not(unix))]
    let _ = layer_mode;
    let at = root.join(dest);
    if source.is_dir() {
        let theirs = source.join(rel);
        let Ok(their_meta) = theirs.symlink_metadata() else {
            return Ok(false);
        };
        if !their_meta.is_file() || their_meta.len() != meta.len() {
            return Ok(false);
        }
        return Ok(same_content(&at, &theirs)?);
    }
    let size = files
        .members
        .iter()
        .find(|(p, _)| p == rel)
        .map(|(_, n)| *n);
    if size != Some(meta.len()) {
        return Ok(false);
    }
    let Ok(theirs) = (files.read)(rel) else {
        return Ok(false);
    };
    let ours = std::fs::read(&at).map_err(|e| format!("{}: {e}", at.display()))?;
    Ok(ours == theirs)
}

/// Whether two files hold the same bytes, read a piece at a time.
fn same_content(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut fa, &mut ba)?;
        let m = read_full(&mut fb, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
    fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    }
}

/// The disk space removing a file gives back: its blocks, unless another hard link keeps
/// them (uv's hardlink mode).
fn given_back(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            0
        } else {
            meta.blocks() * 512
        }
    }
    #[cfg(not(unix))]
    {
        meta.len()
    }
}

/// The disk blocks of a directory.
fn dir_bytes(path: &Path) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        path.symlink_metadata()
            .map(|m| m.blocks() * 512)
            .unwrap_or(0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        0
    }
}

/// Step 1: the whiteouts, then the manifest with the new layers on top (the commit point),
/// then the guard that makes the unmounted venv say it must be mounted. Nothing the venv
/// shows changes. Returns the venv-relative paths written.
pub fn commit_layers(root: &Path, plan: &Plan) -> Result<Vec<PathBuf>, Error> {
    if plan.adoptions.is_empty() {
        return Ok(Vec::new());
    }
    // (so that the next mount finishes the job if this run does not)
    let marker = unfinished_marker(root);
    std::fs::create_dir_all(marker.parent().unwrap_or(root))
        .and_then(|()| crate::fsutil::write_atomic(&marker, b"", 0o644))
        .map_err(|e| format!("{}: {e}", marker.display()))?;
    let new: Vec<&Adoption> = plan.adoptions.iter().filter(|a| a.new).collect();
    if new.is_empty() && plan.opaque.is_empty() {
        return Ok(Vec::new());
    }
    let path = manifest_path(root);
    let mut manifest = Manifest::load(&path)?;
    for a in new.iter().rev() {
        let package = a.layer.package_name();
        manifest
            .layers
            .retain(|l| l.name.is_empty() || l.package_name() != package);
        manifest.layers.insert(0, a.layer.clone());
    }
    let opaque: Vec<&PathBuf> = plan.opaque.iter().collect();
    let unhide = super::fold::plain_again_over(root, &manifest, &path, &opaque)
        .map_err(|e| format!("{e}\n  nothing was changed"))?;
    let mut txn = Txn::begin(root)?;
    let done = (|| -> Result<(), Error> {
        let hidden: BTreeSet<&PathBuf> = new
            .iter()
            .flat_map(|a| &a.hidden)
            .chain(&unhide.whiteouts)
            .collect();
        for rel in hidden {
            apply::write_whiteout(&mut txn, &root.join(rel))?;
        }
        for rel in &plan.stale_whiteouts {
            txn.remove(&root.join(rel))?;
        }
        txn.sync()?;
        if !new.is_empty() {
            manifest.save(&path)?;
        }
        Ok(())
    })();
    if let Err(e) = done {
        txn.rollback();
        return Err(format!("{e}\n  nothing was changed").into());
    }
    let version = crate::venv::python_version(root)?;
    let mut touched: Vec<PathBuf> = txn
        .commit_touched(&super::sync::keep_dirs(root, &Layout::new(&version)))
        .into_iter()
        .filter_map(|p| p.strip_prefix(root).ok().map(Path::to_owned))
        .collect();
    // The opaque markers go after the commit point, as in `fold`: until then an opaque
    // directory shows its copies; after, the same made plain. (Killed in between, the
    // next adopt finds the copies below it and does it again.)
    for marker in unhide.markers {
        std::fs::remove_file(root.join(&marker))
            .map_err(|e| format!("the layers are saved, but {}: {e}", marker.display()))?;
        touched.push(marker);
    }
    crate::venv::write_unmounted_guard(root)?;
    Ok(touched)
}

/// Step 2, once the layers are committed: what to remove, the copies the layers now serve
/// (venv-relative) and the directories above them that may be left empty (the layers show
/// them), deepest first.
pub fn removals(plan: &Plan) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let files = plan
        .adoptions
        .iter()
        .flat_map(|a| {
            a.copies
                .iter()
                .chain(&a.bytecode)
                .map(|(rel, _)| rel.clone())
        })
        .collect();
    let mut dirs: Vec<PathBuf> = plan.prune.iter().cloned().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    (files, dirs)
}

/// Removes `files` and then the `dirs` left empty (deepest first) from the venv's own
/// directory at `root`; paths that are not plain relative ones are skipped, and so are
/// files changed at `since` or later (when the plan that chose them began looking: made
/// again by an installer since, they may no longer be what the layer shows). Each removal
/// on its own leaves the venv showing the same bytes. A mounted venv's daemon runs this
/// itself, with the reload that follows (`venvfs adopt` asks it over the control socket),
/// so a command killed midway leaves no removed file the daemon still believes in, and no
/// request through the mount changes a file between its check and its removal.
pub fn remove_at(
    root: &Path,
    files: &[PathBuf],
    dirs: &[PathBuf],
    since: Option<std::time::SystemTime>,
) -> Removed {
    let plain = |p: &&PathBuf| {
        !p.as_os_str().is_empty()
            && p.components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
    };
    let mut out = Removed::default();
    for rel in files.iter().filter(plain) {
        let path = root.join(rel);
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        // (a copy, or a link into the cache `venvfs fold` folded: either shows the same
        // bytes as the layer's file)
        if !meta.is_file() && !meta.is_symlink() {
            continue;
        }
        if since.is_some_and(|t| crate::fsutil::changed_since(&meta, t)) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                out.files += 1;
                out.bytes += given_back(&meta);
                out.touched.push(rel.clone());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => out.failed.push(format!("{}: {e}", path.display())),
        }
    }
    for rel in dirs.iter().filter(plain) {
        let path = root.join(rel);
        let blocks = dir_bytes(&path);
        if std::fs::remove_dir(&path).is_ok() {
            out.bytes += blocks;
            out.touched.push(rel.clone());
        }
    }
    out
}

/// [`remove_at`], failing (after removing what it could) if anything could not be removed;
/// the files removed and the disk given back.
pub fn remove_all(
    root: &Path,
    files: &[PathBuf],
    dirs: &[PathBuf],
    since: Option<std::time::SystemTime>,
) -> Result<(usize, u64), String> {
    let r = remove_at(root, files, dirs, since);
    if !r.failed.is_empty() {
        return Err(format!(
            "{} removed, but not all: {}",
            r.files,
            r.failed.join("; ")
        ));
    }
    Ok((r.files, r.bytes))
}

/// [`removals`] and [`remove_at`] on a venv that is not mounted (`root` is the venv).
pub fn remove_copies(root: &Path, plan: &Plan) -> Result<Removed, Error> {
    let (files, dirs) = removals(plan);
    Ok(remove_at(root, &files, &dirs, plan.started))
}

/// Left in the venv's `.venvfs` from step 1 until the copies are removed: a venv mounted
/// with it there had an adopt interrupted, which the mount finishes
/// ([`finish_interrupted`]).
pub const UNFINISHED: &str = "adopt-unfinished";

fn unfinished_marker(root: &Path) -> PathBuf {
    root.join(crate::manifest::STATE_DIR).join(UNFINISHED)
}

/// Marks the adoption done (after step 2).
pub fn mark_finished(root: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(unfinished_marker(root)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// At mount, before serving: when an adopt was interrupted (its marker is there), removes
/// the copies the layers it committed serve, as running `adopt` again would. Looks for no
/// wheels: distributions without a layer stay as they are. None when there was nothing
/// to finish.
pub fn finish_interrupted(venv: &Path) -> Result<Option<Removed>, Error> {
    if unfinished_marker(venv).symlink_metadata().is_err() {
        return Ok(None);
    }
    let version = crate::venv::python_version(venv)?;
    let mut find = |_: &str, _: &str, _: &[RecordRow]| Ok(Err(String::new()));
    let plan = plan_with(venv, &version, &mut find)?;
    let removed = remove_copies(venv, &plan)?;
    if removed.failed.is_empty() {
        mark_finished(venv)?;
    }
    Ok(Some(removed))
}

/// The summary lines: one per distribution, then the total.
pub fn lines(plan: &Plan, removed: &Removed, elapsed: std::time::Duration) -> Vec<String> {
    let mut out = Vec::new();
    for a in &plan.adoptions {
        let mut line = format!(
            " ~ {}: {} {} removed",
            a.layer.pin(),
            a.copies.len(),
            if a.copies.len() == 1 {
                "copy"
            } else {
                "copies"
            }
        );
        if !a.bytecode.is_empty() {
            line.push_str(&format!(" and {} of their .pyc", a.bytecode.len()));
        }
        if a.edited > 0 {
            line.push_str(&format!(
                ", {} edited {} kept",
                a.edited,
                if a.edited == 1 { "file" } else { "files" }
            ));
        }
        if !a.new {
            line.push_str(" (layer already there)");
        }
        out.push(line);
    }
    let n = plan.adoptions.iter().filter(|a| a.new).count();
    let before = plan.adoptions.len() - n;
    out.push(format!(
        "Adopted {n} {}{} in {}ms: gave back {} ({} copies removed)",
        if n == 1 { "package" } else { "packages" },
        match before {
            0 => String::new(),
            _ => format!(" (and the copies of {before} already layers)"),
        },
        elapsed.as_millis(),
        human(removed.bytes),
        removed.files
    ));
    out
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const SITE: &str = "lib/python3.11/site-packages";

    fn put(path: &Path, content: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// A uv cache entry of `pkg 1.0`, and a venv into which it was installed as copies:
    /// `pkg/edited.py` edited since, `pkg/gone.py` and the whole `pkg/sub/` deleted, the
    /// `#!python` script rewritten, uv's RECORD and INSTALLER.
    struct Fixture {
        _dir: tempfile::TempDir,
        entry: PathBuf,
        venv: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("cache/archive-v0/Id1");
        let wheel_files = [
            ("pkg/__init__.py", "init"),
            ("pkg/mod.py", "mod"),
            ("pkg/edited.py", "orig"),
            ("pkg/gone.py", "gone"),
            ("pkg/sub/deep.py", "deep"),
            ("pkg/data/x.txt", "x"),
            ("pkg-1.0.dist-info/METADATA", "Name: pkg\nVersion: 1.0\n"),
            ("pkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n"),
            ("pkg-1.0.data/scripts/tool", "#!python\n"),
        ];
        let mut record = String::new();
        for (f, c) in wheel_files {
            put(&entry.join(f), c);
            record.push_str(&format!(
                "{f},{},{}\n",
                crate::install::record::sha256_digest(c.as_bytes()),
                c.len()
            ));
        }
        put(
            &entry.join("pkg-1.0.dist-info/RECORD"),
            &format!("{record}pkg-1.0.dist-info/RECORD,,\n"),
        );

        let venv = dir.path().join("venv");
        put(&venv.join("pyvenv.cfg"), "version_info = 3.11.7\n");
        let site = venv.join(SITE);
        let mut installed = String::new();
        for (f, c) in wheel_files {
            if f.starts_with("pkg-1.0.data") {
                continue;
            }
            installed.push_str(&format!(
                "{f},{},{}\n",
                crate::install::record::sha256_digest(c.as_bytes()),
                c.len()
            ));
            if !matches!(f, "pkg/gone.py" | "pkg/sub/deep.py") {
                put(&site.join(f), c);
            }
        }
        put(&site.join("pkg/edited.py"), "changed");
        put(&venv.join("bin/tool"), "#!/venv/bin/python\n");
        put(&site.join("pkg-1.0.dist-info/INSTALLER"), "uv");
        put(
            &site.join("pkg-1.0.dist-info/RECORD"),
            &format!(
                "{installed}../../../bin/tool,{},20\npkg-1.0.dist-info/INSTALLER,,\n\
                 pkg-1.0.dist-info/RECORD,,\n",
                crate::install::record::sha256_digest(b"#!/venv/bin/python\n")
            ),
        );
        Fixture {
            _dir: dir,
            entry,
            venv,
        }
    }

    fn plan_of(f: &Fixture) -> Plan {
        let entry = f.entry.clone();
        let mut find = |name: &str, ver: &str, _: &[RecordRow]| {
            assert_eq!((name, ver), ("pkg", "1.0"));
            Ok(Ok(Layer {
                installed: true,
                ..crate::install::layer_for(&entry, "pkg-1.0", "3.11")
            }))
        };
        plan_with(&f.venv, "3.11", &mut find).unwrap()
    }

    fn manifest(f: &Fixture) -> Manifest {
        Manifest::load(&manifest_path(&f.venv)).unwrap()
    }

    fn rels(paths: &[(PathBuf, u64)]) -> Vec<String> {
        let mut out: Vec<String> = paths
            .iter()
            .map(|(p, _)| p.strip_prefix(SITE).unwrap().display().to_string())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn equal_copies_go_after_the_layer_commits_and_the_rest_stays() {
        let f = fixture();
        let site = f.venv.join(SITE);
        let p = plan_of(&f);
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        let [a] = p.adoptions.as_slice() else {
            panic!("{p:?}")
        };
        assert!(a.new);
        assert_eq!(
            rels(&a.copies),
            [
                "pkg-1.0.dist-info/METADATA",
                "pkg-1.0.dist-info/WHEEL",
                "pkg/__init__.py",
                "pkg/data/x.txt",
                "pkg/mod.py"
            ]
        );
        assert_eq!(a.edited, 1);
        // a deleted directory is hidden whole
        assert_eq!(
            a.hidden,
            [
                Path::new(SITE).join("pkg/gone.py"),
                Path::new(SITE).join("pkg/sub")
            ]
        );

        // step 1: whiteouts, manifest, guard; no copy removed yet
        let touched = commit_layers(&f.venv, &p).unwrap();
        assert!(touched.contains(&Path::new(SITE).join("pkg/.wh.gone.py")));
        assert!(site.join("pkg/.wh.sub").exists());
        assert_eq!(manifest(&f).layers, std::slice::from_ref(&a.layer));
        assert!(site.join(crate::venv::UNMOUNTED_GUARD).is_file());
        assert!(site.join("pkg/mod.py").is_file());

        // step 2
        let removed = remove_copies(&f.venv, &p).unwrap();
        assert_eq!(removed.files, 5);
        assert!(!site.join("pkg/data").exists(), "an emptied directory goes");
        assert!(removed.bytes > 0);
        for gone in [
            "pkg/mod.py",
            "pkg/__init__.py",
            "pkg-1.0.dist-info/METADATA",
        ] {
            assert!(!site.join(gone).exists(), "{gone}");
        }
        assert_eq!(
            std::fs::read_to_string(site.join("pkg/edited.py")).unwrap(),
            "changed"
        );
        assert!(site.join("pkg-1.0.dist-info/RECORD").is_file());
        assert!(site.join("pkg-1.0.dist-info/INSTALLER").is_file());
        assert!(f.venv.join("bin/tool").is_file());
        let lines = lines(&p, &removed, std::time::Duration::from_millis(5));
        assert_eq!(
            lines[0],
            " ~ pkg==1.0: 5 copies removed, 1 edited file kept"
        );
        assert!(
            lines[1].starts_with("Adopted 1 package in 5ms: gave back "),
            "{lines:?}"
        );

        // a mounted venv's daemon is told of the files and the directories above them
        assert!(removed
            .touched
            .contains(&Path::new(SITE).join("pkg/mod.py")));
        assert!(!removed.touched.contains(&PathBuf::from(SITE)));
        let (_, dirs) = removals(&p);
        assert_eq!(
            dirs,
            [
                Path::new(SITE).join("pkg/data"),
                Path::new(SITE).join("pkg/sub"),
                Path::new(SITE).join("pkg"),
                Path::new(SITE).join("pkg-1.0.dist-info")
            ]
        );

        mark_finished(&f.venv).unwrap();

        // done: nothing left, and no stash behind
        let again = plan_of(&f);
        assert!(
            again.adoptions.is_empty() && again.already == 1,
            "{again:?}"
        );
        let state: Vec<_> = std::fs::read_dir(f.venv.join(".venvfs")).unwrap().collect();
        assert_eq!(
            state.len(),
            1,
            "{:?}",
            state
                .iter()
                .map(|e| e.as_ref().unwrap().file_name())
                .collect::<Vec<_>>()
        );
    }

    /// The installer's bytecode of a module given back goes with it (stale once the layer
    /// shows the module); that of a module that stays (edited, or no copy) stays.
    #[test]
    fn the_installers_bytecode_of_modules_given_back_goes_with_them() {
        let f = fixture();
        let site = f.venv.join(SITE);
        for name in [
            "mod.cpython-311.pyc",
            "mod.cpython-311.opt-1.pyc",
            "gone.cpython-311.pyc",
            "model.cpython-311.pyc",
        ] {
            put(&site.join("pkg/__pycache__").join(name), "bytecode");
        }
        let p = plan_of(&f);
        assert_eq!(
            rels(&p.adoptions[0].bytecode),
            [
                "pkg/__pycache__/mod.cpython-311.opt-1.pyc",
                "pkg/__pycache__/mod.cpython-311.pyc"
            ]
        );
        commit_layers(&f.venv, &p).unwrap();
        remove_copies(&f.venv, &p).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(site.join("pkg/__pycache__"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["gone.cpython-311.pyc", "model.cpython-311.pyc"]);
    }

    /// An installer that writes a file again between the plan and the removals (uv or pip
    /// run while the daemon adopts by itself) keeps it: its bytes are no longer the ones
    /// the plan compared.
    #[test]
    fn a_copy_written_again_after_the_plan_stays() {
        let f = fixture();
        let site = f.venv.join(SITE);
        let p = plan_of(&f);
        commit_layers(&f.venv, &p).unwrap();
        std::fs::remove_file(site.join("pkg/mod.py")).unwrap();
        put(&site.join("pkg/mod.py"), "a newer version's module\n");
        let removed = remove_copies(&f.venv, &p).unwrap();
        assert_eq!(removed.files, 4, "{removed:?}");
        assert_eq!(
            std::fs::read_to_string(site.join("pkg/mod.py")).unwrap(),
            "a newer version's module\n"
        );
    }

    #[test]
    fn an_interrupted_adopt_is_finished_by_the_next() {
        let f = fixture();
        let site = f.venv.join(SITE);
        // killed during step 1, after some whiteouts: the next plan starts over
        let p = plan_of(&f);
        put(&site.join("pkg/.wh.gone.py"), "");
        let p2 = plan_of(&f);
        assert_eq!(p2.adoptions[0].hidden, [Path::new(SITE).join("pkg/sub")]);
        assert_eq!(p2.adoptions[0].copies, p.adoptions[0].copies);

        // killed during step 2, after one removal
        commit_layers(&f.venv, &p2).unwrap();
        let mut part = Plan::default();
        let mut a = p2.adoptions[0].clone();
        a.copies.truncate(1);
        part.adoptions.push(a);
        assert_eq!(remove_copies(&f.venv, &part).unwrap().files, 1);
        let p3 = plan_of(&f);
        let [a] = p3.adoptions.as_slice() else {
            panic!("{p3:?}")
        };
        assert!(!a.new && a.hidden.is_empty());
        assert_eq!(a.copies.len(), 4);
        // (the already committed layer is not committed again)
        assert!(commit_layers(&f.venv, &p3).unwrap().is_empty());
        // killed after the files, before the directories they left empty
        let (files, _) = removals(&p3);
        assert_eq!(remove_at(&f.venv, &files, &[], p3.started).files, 4);
        assert!(site.join("pkg/data").is_dir());
        let p4 = plan_of(&f);
        assert!(p4.adoptions.is_empty(), "{p4:?}");
        assert_eq!(p4.prune, BTreeSet::from([Path::new(SITE).join("pkg/data")]));
        remove_copies(&f.venv, &p4).unwrap();
        assert!(!site.join("pkg/data").exists());
        assert_eq!(manifest(&f).layers.len(), 1);
        let done = plan_of(&f);
        assert!(
            done.adoptions.is_empty() && done.prune.is_empty(),
            "{done:?}"
        );
    }

    #[test]
    fn the_next_mount_finishes_an_interrupted_adopt() {
        let f = fixture();
        let site = f.venv.join(SITE);
        assert!(finish_interrupted(&f.venv).unwrap().is_none());
        let p = plan_of(&f);
        commit_layers(&f.venv, &p).unwrap();
        assert!(f.venv.join(".venvfs").join(UNFINISHED).is_file());
        // (killed here)
        let removed = finish_interrupted(&f.venv).unwrap().unwrap();
        assert_eq!(removed.files, 5);
        assert!(!site.join("pkg/mod.py").exists() && !site.join("pkg/data").exists());
        assert!(!f.venv.join(".venvfs").join(UNFINISHED).exists());
        assert!(finish_interrupted(&f.venv).unwrap().is_none());
    }

    #[test]
    fn copies_that_would_not_show_the_same_stay() {
        let f = fixture();
        let site = f.venv.join(SITE);
        // another mode than the layer's
        let m = site.join("pkg/mod.py");
        std::fs::set_permissions(&m, std::fs::Permissions::from_mode(0o755)).unwrap();
        // a whiteout at its own name (removed through a mount, made again)
        put(&site.join("pkg/.wh.__init__.py"), "");
        let p = plan_of(&f);
        assert_eq!(
            rels(&p.adoptions[0].copies),
            [
                "pkg-1.0.dist-info/METADATA",
                "pkg-1.0.dist-info/WHEEL",
                "pkg/data/x.txt"
            ]
        );
        // an opaque directory: nothing of the layer shows below it
        put(&site.join("pkg").join(crate::upper_format::OPAQUE), "");
        let p = plan_of(&f);
        assert!(
            !p.adoptions[0]
                .hidden
                .iter()
                .any(|h| h.starts_with(Path::new(SITE).join("pkg"))),
            "{p:?}"
        );
    }

    #[test]
    fn copies_below_an_opaque_directory_are_adopted_and_it_is_made_plain() {
        // `python -m venv --clear` on a mounted venv, then pip: `lib` was removed through
        // the mount and made again (opaque), so a layer listed before (`old`, whose files
        // the venv has no copies of) shows nothing below it; nor would a new layer
        let f = fixture();
        let site = f.venv.join(SITE);
        let old = f.entry.with_file_name("Id2");
        put(&old.join("old/x.py"), "x");
        put(&old.join("old-1.0.dist-info/METADATA"), "Name: old\n");
        put(&old.join("old-1.0.dist-info/RECORD"), "old/x.py,,\n");
        let mut m = Manifest::default();
        m.layers.push(Layer {
            installed: true,
            ..crate::install::layer_for(&old, "old-1.0", "3.11")
        });
        std::fs::create_dir_all(manifest_path(&f.venv).parent().unwrap()).unwrap();
        m.save(&manifest_path(&f.venv)).unwrap();
        let opaque = f.venv.join("lib").join(crate::upper_format::OPAQUE);
        put(&opaque, "");
        let p = plan_of(&f);
        assert_eq!(p.opaque, BTreeSet::from([PathBuf::from("lib")]));
        assert_eq!(
            rels(&p.adoptions[0].copies),
            [
                "pkg-1.0.dist-info/METADATA",
                "pkg-1.0.dist-info/WHEEL",
                "pkg/__init__.py",
                "pkg/data/x.txt",
                "pkg/mod.py"
            ]
        );
        let touched = commit_layers(&f.venv, &p).unwrap();
        // made plain: what it hid stays hidden (the old layer's files, the files of the
        // wheel the venv lacks), and the marker goes after the manifest
        for hidden in [
            ".wh.old",
            ".wh.old-1.0.dist-info",
            "pkg/.wh.gone.py",
            "pkg/.wh.sub",
        ] {
            assert!(site.join(hidden).is_file(), "{hidden}");
        }
        assert!(!opaque.exists());
        assert!(touched.contains(&Path::new("lib").join(crate::upper_format::OPAQUE)));
        assert_eq!(manifest(&f).layers.len(), 2);
        let removed = remove_copies(&f.venv, &p).unwrap();
        assert_eq!(removed.files, 5);
        // and nothing is left to do
        let again = plan_of(&f);
        assert!(
            again.adoptions.is_empty() && again.opaque.is_empty(),
            "{again:?}"
        );
    }

    #[test]
    fn a_copy_another_layer_on_top_would_hide_stays() {
        // `other 1.0` ships pkg/mod.py too, with other bytes; its layer goes above pkg's
        let f = fixture();
        let other = f.entry.with_file_name("Id2");
        put(&other.join("pkg/mod.py"), "other");
        put(&other.join("other-1.0.dist-info/METADATA"), "Name: other\n");
        put(
            &other.join("other-1.0.dist-info/WHEEL"),
            "Wheel-Version: 1.0\n",
        );
        put(&other.join("other-1.0.dist-info/RECORD"), "pkg/mod.py,,\n");
        put(
            &f.venv.join(SITE).join("other-1.0.dist-info/RECORD"),
            "pkg/mod.py,,\nother-1.0.dist-info/RECORD,,\n",
        );
        let (entry, other_entry) = (f.entry.clone(), other.clone());
        let mut find = |name: &str, _: &str, _: &[RecordRow]| {
            let (source, prefix) = match name {
                "pkg" => (&entry, "pkg-1.0"),
                _ => (&other_entry, "other-1.0"),
            };
            Ok(Ok(Layer {
                installed: true,
                ..crate::install::layer_for(source, prefix, "3.11")
            }))
        };
        let p = plan_with(&f.venv, "3.11", &mut find).unwrap();
        let pkg = p.adoptions.iter().find(|a| a.layer.name == "pkg").unwrap();
        assert!(
            !rels(&pkg.copies).contains(&"pkg/mod.py".to_owned()),
            "{:?}",
            pkg.copies
        );
        assert!(rels(&pkg.copies).contains(&"pkg/__init__.py".to_owned()));
        // (the order the plan assumed is the manifest's)
        commit_layers(&f.venv, &p).unwrap();
        let names: Vec<String> = manifest(&f).layers.into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["other", "pkg"]);
    }

    #[test]
    fn a_distribution_linked_into_uvs_cache_is_left_to_fold() {
        let f = fixture();
        let metadata = f.venv.join(SITE).join("pkg-1.0.dist-info/METADATA");
        std::fs::remove_file(&metadata).unwrap();
        std::os::unix::fs::symlink(f.entry.join("pkg-1.0.dist-info/METADATA"), &metadata).unwrap();
        let p = plan_of(&f);
        assert!(p.adoptions.is_empty() && p.notes.is_empty(), "{p:?}");
        assert_eq!(p.linked, 1);
    }

    #[test]
    fn no_source_leaves_the_copies_and_says_why() {
        let f = fixture();
        let mut find = |_: &str, _: &str, _: &[RecordRow]| Ok(Err("no wheel of it".to_owned()));
        let p = plan_with(&f.venv, "3.11", &mut find).unwrap();
        assert!(p.adoptions.is_empty());
        assert_eq!(
            p.notes,
            [
                "pkg==1.0: its files stay as copies: no wheel of it (`venvfs install VENV \
              pkg==1.0` fetches its wheel and gives them back)"
            ]
        );
        assert!(commit_layers(&f.venv, &p).unwrap().is_empty());
        assert!(!manifest_path(&f.venv).exists());
    }
}
