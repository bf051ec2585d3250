//! `venvfs fold`: turns the references uv's symlink link mode leaves in a venv's own
//! directory (one symlink per wheel file into `CACHE/archive-v0/<id>/`) into a layer of that
//! unpacked wheel, and removes the links.
//!
//! On ext4 each link whose target is longer than 59 bytes takes a block of its own, so a
//! venv uv filled with links holds thousands of 4 KiB blocks that say nothing a layer could
//! not say in one manifest entry. Folding keeps what the venv shows exactly as it was: a
//! distribution is folded only when every link points at the file of the same wheel path in
//! one cache entry (so the layer shows what the links showed), and each file of the wheel
//! that has no link (deleted by the user or by uv) gets a whiteout so it stays hidden. uv's
//! own files (RECORD, INSTALLER, launchers: regular files) stay where they are.
//!
//! Platform-neutral: the commands reach the venv's own directory by path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::layout::Layout;
use super::txn::Txn;
use crate::inventory::{cache_entry, is_uv_cache_file, venv_relative};
use crate::manifest::{manifest_path, Layer, Manifest};
use crate::upper_format::{whiteout_name, EntryName, OPAQUE, REDIRECT};

type Error = Box<dyn std::error::Error>;

/// One distribution to fold.
#[derive(Debug)]
pub struct Fold {
    /// Its layer (`archive-v0/<id>`, the standard mappings, `installed`).
    pub layer: Layer,
    /// The links to remove (venv-relative).
    pub links: Vec<PathBuf>,
    /// Whiteouts left from an earlier uninstall at the links' own names (venv-relative):
    /// they would hide the layer's files once the links are gone.
    pub stale_whiteouts: Vec<PathBuf>,
    /// Files of the wheel with no link, to hide (venv-relative; the whiteout goes next to).
    pub hidden: Vec<PathBuf>,
    /// Opaque directories above links (venv-relative): uv removed a directory a layer
    /// showed (uninstalling through the mount) and made it again (installing the same
    /// package again), so the layers' content there is hidden, the new layer's too. The
    /// fold makes them plain again, with a whiteout for each name of the layers it hid.
    pub opaque: Vec<PathBuf>,
    /// The disk space the links take.
    pub link_bytes: u64,
    /// The `.pyc` an installer compiled through the links (`uv --compile-bytecode`) in
    /// the venv's own `__pycache__` directories (venv-relative), with the module each must
    /// match: once the layer shows the modules, they belong in the shared bytecode store.
    pub bytecode: Vec<(PathBuf, crate::bytecode::Source)>,
}

/// What [`plan`] found: the distributions to fold, and why others are not folded.
#[derive(Debug, Default)]
pub struct Plan {
    pub folds: Vec<Fold>,
    pub notes: Vec<String>,
}

/// What [`fold`] did.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub notes: Vec<String>,
    /// Venv-relative paths written or removed: what a mounted venv looks at again.
    pub touched: Vec<PathBuf>,
}

/// Whether any distribution in the venv's own site-packages (at `root`) has its METADATA
/// linked into a uv cache: one `lstat` per `.dist-info`, so commands can afford to ask
/// after every change.
pub fn has_references(root: &Path, layout: &Layout) -> bool {
    own_dist_infos(&root.join(layout.site_packages()))
        .iter()
        .any(|d| {
            let metadata = root.join(layout.site_packages()).join(d).join("METADATA");
            std::fs::read_link(metadata).is_ok_and(|t| is_uv_cache_file(&t))
        })
}

/// `.dist-info` directories in the own site-packages.
pub(super) fn own_dist_infos(site: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(site)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".dist-info"))
        .collect();
    out.sort();
    out
}

/// Finds the distributions of the venv's own directory (at `root`, a venv of Python
/// `python`, X.Y) that can be folded.
pub fn plan(root: &Path, python: &str) -> Plan {
    let layout = &Layout::new(python);
    let mut out = Plan::default();
    let site = Path::new(layout.site_packages());
    let mut marks = Marks::new(root);
    for dist_info in own_dist_infos(&root.join(site)) {
        match plan_one(root, python, layout, &dist_info, &mut marks) {
            Ok(Some(f)) => out.folds.push(f),
            Ok(None) => {}
            Err(why) => out.notes.push(format!(
                "{}: not folded: {why}",
                site.join(&dist_info).display()
            )),
        }
    }
    out
}

fn plan_one(
    root: &Path,
    python: &str,
    layout: &Layout,
    dist_info: &str,
    marks: &mut Marks,
) -> Result<Option<Fold>, String> {
    let site = Path::new(layout.site_packages());
    let record = match std::fs::read(root.join(site).join(dist_info).join("RECORD")) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("RECORD: {e}")),
    };
    let rows = super::record::parse_record(&String::from_utf8_lossy(&record))
        .map_err(|e| e.to_string())?;
    // the links RECORD lists, and the one cache entry they point into
    let mut links: Vec<(PathBuf, PathBuf, u64)> = Vec::new();
    let mut entry: Option<PathBuf> = None;
    for row in rows {
        let Some(rel) = venv_relative(site, &row.path) else {
            continue;
        };
        let Ok(meta) = root.join(&rel).symlink_metadata() else {
            continue;
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        let Some(target) = std::fs::read_link(root.join(&rel))
            .ok()
            .filter(|t| is_uv_cache_file(t))
        else {
            continue;
        };
        let this = cache_entry(&target);
        match &entry {
            Some(e) if *e != this => {
                return Err(format!(
                    "its links point into two cache entries ({} and {})",
                    e.display(),
                    this.display()
                ))
            }
            Some(_) => {}
            None => entry = Some(this),
        }
        links.push((rel, target, disk_bytes(&meta)));
    }
    let Some(entry) = entry else {
        return Ok(None);
    };
    let prefix = dist_info.trim_end_matches(".dist-info");
    // (a layer of the same package may be listed: uv uninstalled it through the mount,
    // which hid its files behind whiteouts and opaque directories, and linked it again;
    // the fold replaces that layer, as `layer add` replaces another version, and makes
    // the opaque directories plain, so the layer shows through them)
    // (CACHE/archive-v0/ID: the cache is two levels up)
    let cache = entry.parent().and_then(Path::parent).unwrap_or(&entry);
    if !cache.join("CACHEDIR.TAG").is_file() {
        return Err(format!(
            "{} has no CACHEDIR.TAG, so it is not a uv cache",
            cache.display()
        ));
    }
    let source = entry
        .canonicalize()
        .map_err(|e| format!("{}: {e}", entry.display()))?;
    let entry_prefix = super::dist_info_prefix(&source).map_err(|e| e.to_string())?;
    if entry_prefix != prefix {
        return Err(format!(
            "its links point into {}, which holds {entry_prefix}.dist-info",
            entry.display()
        ));
    }
    let mut layer = super::layer_for(&source, prefix, python);
    layer.installed = true;
    // (checked as mount will check it, so a bad entry is refused now, not at mount)
    let listing = crate::layer::dir::scan(&source, &layer.label()).map_err(|e| e.to_string())?;

    let mut fold = Fold {
        layer,
        links: Vec::with_capacity(links.len()),
        stale_whiteouts: Vec::new(),
        hidden: Vec::new(),
        opaque: Vec::new(),
        link_bytes: 0,
        bytecode: Vec::new(),
    };
    let mut pycaches = HashMap::new();
    for (rel, target, bytes) in links {
        let pycache = rel.parent().unwrap_or(Path::new("")).join("__pycache__");
        let compiled = super::adopt::compiled_of(root, &pycache, &rel, &mut pycaches);
        if !compiled.is_empty() {
            if let Ok(meta) = std::fs::metadata(&target) {
                let source = crate::bytecode::Source {
                    mtime: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                    size: meta.len(),
                };
                fold.bytecode
                    .extend(compiled.into_iter().map(|(pyc, _)| (pyc, source)));
            }
        }
        let wheel_rel = target
            .strip_prefix(&entry)
            .ok()
            .and_then(|p| p.to_str())
            .map(|p| p.replace(std::path::MAIN_SEPARATOR, "/"))
            .unwrap_or_default();
        let shown_at = fold.layer.destination(&wheel_rel).map(PathBuf::from);
        if shown_at.as_ref() != Some(&rel) {
            return Err(format!(
                "{} links to {}, which the layer would show {}",
                rel.display(),
                target.display(),
                match shown_at {
                    Some(at) => format!("at {}", at.display()),
                    None => "nowhere".to_owned(),
                }
            ));
        }
        let parent = rel.parent().unwrap_or(Path::new(""));
        if marks.redirected_below(parent) {
            return Err(format!(
                "a directory above {} was renamed, which redirects the layers' content",
                rel.display()
            ));
        }
        // (a directory whose name also has a whiteout beside it shows nothing of the layers,
        // as an opaque one: uv removed the directory through the mount, then made it again
        // after its layer was dropped, as for six 1.17 -> 1.16 -> 1.17; the fold makes it
        // plain and the whiteout goes)
        for dir in parent
            .ancestors()
            .filter(|d| marks.is_opaque(d) || marks.whited_out(d))
        {
            if !fold.opaque.iter().any(|o| o == dir) {
                fold.opaque.push(dir.to_owned());
            }
            let beside = dir.with_file_name(whiteout_name(dir.file_name().unwrap_or_default()));
            if marks.whited_out(dir) && !fold.stale_whiteouts.contains(&beside) {
                fold.stale_whiteouts.push(beside);
            }
        }
        let stale = rel.with_file_name(whiteout_name(rel.file_name().unwrap_or_default()));
        if root.join(&stale).symlink_metadata().is_ok() {
            fold.stale_whiteouts.push(stale);
        }
        fold.links.push(rel);
        fold.link_bytes += bytes;
    }
    for e in listing
        .iter()
        .filter(|e| e.kind != venvfs_api::FileKind::Dir)
    {
        let Some(dest) = fold.layer.destination(&e.rel).map(PathBuf::from) else {
            continue;
        };
        if root.join(&dest).symlink_metadata().is_ok()
            || marks.hidden_below(dest.parent().unwrap_or(Path::new("")))
        {
            continue;
        }
        fold.hidden.push(dest);
    }
    Ok(Some(fold))
}

/// The disk space a link takes.
fn disk_bytes(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.blocks() * 512
    }
    #[cfg(not(unix))]
    {
        meta.len()
    }
}

/// Whether layer content below a directory of the venv's own can show: not when the
/// directory, or one above it, is whited out, opaque or redirected. Remembered per directory.
pub(super) struct Marks<'a> {
    root: &'a Path,
    hidden: HashMap<PathBuf, bool>,
}

impl<'a> Marks<'a> {
    pub(super) fn new(root: &'a Path) -> Self {
        Marks {
            root,
            hidden: HashMap::new(),
        }
    }

    /// Whether directory `dir` (venv-relative) is opaque.
    pub(super) fn is_opaque(&self, dir: &Path) -> bool {
        !dir.as_os_str().is_empty() && self.root.join(dir).join(OPAQUE).symlink_metadata().is_ok()
    }

    /// Whether directory `dir` (venv-relative) has a whiteout of its name beside it.
    pub(super) fn whited_out(&self, dir: &Path) -> bool {
        !dir.as_os_str().is_empty()
            && self
                .root
                .join(dir.with_file_name(whiteout_name(dir.file_name().unwrap_or_default())))
                .symlink_metadata()
                .is_ok()
    }

    /// Whether layer content below `dir` is hidden for good: `dir` or a directory above it
    /// was renamed (redirected). (Opaque and whited-out directories a fold can make plain.)
    pub(super) fn redirected_below(&self, dir: &Path) -> bool {
        dir.ancestors()
            .filter(|d| !d.as_os_str().is_empty())
            .any(|d| self.root.join(d.join(REDIRECT)).symlink_metadata().is_ok())
    }

    pub(super) fn hidden_below(&mut self, dir: &Path) -> bool {
        if dir.as_os_str().is_empty() {
            return false;
        }
        if let Some(&h) = self.hidden.get(dir) {
            return h;
        }
        let parent = dir.parent().unwrap_or(Path::new(""));
        let exists = |p: PathBuf| self.root.join(p).symlink_metadata().is_ok();
        let h = exists(dir.with_file_name(whiteout_name(dir.file_name().unwrap_or_default())))
            || exists(dir.join(OPAQUE))
            || exists(dir.join(REDIRECT))
            || self.hidden_below(parent);
        self.hidden.insert(dir.to_owned(), h);
        h
    }
}

/// Folds what [`plan`] finds in the venv's own directory at `root` (a venv of Python
/// `python`, X.Y) of a venv that is not mounted: [`commit_layers`], then the links go. A
/// failure before the manifest commits leaves the venv as it was; one after, links that
/// still shadow their layer's files (the same bytes), which the next fold removes.
pub fn fold(root: &Path, python: &str) -> Result<Report, Error> {
    let Committed {
        mut report,
        links,
        dirs,
        since,
    } = commit_layers(root, python)?;
    super::adopt::remove_all(root, &links, &dirs, since)
        .map_err(|why| format!("the layers are saved, but links are left: {why}"))?;
    report.touched.extend(links);
    report.touched.extend(dirs);
    Ok(report)
}

/// How the layers' names compare, as the mount on this host compares them (the fold reads
/// the venv's own directory on the host that mounts it).
/// Whether the directory of venv-relative `rel` is in the venv's own directory.
fn parent_exists(root: &Path, rel: &Path) -> bool {
    root.join(rel.parent().unwrap_or(Path::new("")))
        .symlink_metadata()
        .is_ok()
}

/// The whiteouts that hide the files `hidden` (venv-relative), by directory where they
/// can: a file whose directory the venv's own tree no longer has (uv or the user deleted
/// the directory with its content) is hidden by a whiteout of the topmost such directory,
/// so that the directory does not show up empty once the layer's files in it are hidden;
/// unless a layer that stays (in `staying`) has that directory too: it showed before the
/// fold, and still does, with the folded layer's files whited out one by one.
fn whiteouts_for(
    root: &Path,
    hidden: &[PathBuf],
    staying: &crate::lower::LowerTree,
) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for file in hidden {
        let mut top = None;
        let mut dir = file.parent().unwrap_or(Path::new(""));
        while !dir.as_os_str().is_empty() && root.join(dir).symlink_metadata().is_err() {
            top = Some(dir);
            dir = dir.parent().unwrap_or(Path::new(""));
        }
        let shown_by_others = |d: &Path| {
            staying
                .lookup_path(d.as_os_str().as_encoded_bytes())
                .is_some()
        };
        let rel = match top {
            Some(top) if !shown_by_others(top) => top.to_owned(),
            _ => file.clone(),
        };
        if seen.insert(rel.clone()) {
            out.push(rel);
        }
    }
    out
}

/// What makes opaque directories plain again without changing what they show.
#[derive(Debug, Default)]
pub(super) struct PlainAgain {
    /// Opaque markers to remove (venv-relative).
    pub(super) markers: Vec<PathBuf>,
    /// Whiteouts to write (venv-relative names they hide).
    pub(super) whiteouts: Vec<PathBuf>,
}

/// [`plain_again`] over the layers `manifest` (saved at `path`) shows: what makes the
/// opaque directories `opaque` of the venv's own directory at `root` plain without
/// changing what they show once those layers are served.
pub(super) fn plain_again_over(
    root: &Path,
    manifest: &Manifest,
    path: &Path,
    opaque: &[&PathBuf],
) -> Result<PlainAgain, Error> {
    if opaque.is_empty() {
        return Ok(PlainAgain::default());
    }
    // (a layer whose cache entry went meanwhile shows nothing: see daemon/sources.rs)
    let shown = manifest.clone().split_gone().0;
    let lower = crate::lower::LowerTree::build(&shown, path, crate::lower::native_names())?;
    plain_again(root, &lower, opaque)
}

/// For each opaque directory in `opaque` and every directory of the venv's own below it:
/// a whiteout for each name the layers of `lower` hold there that the venv's own
/// directory does not (an opaque directory shows only its own entries; once plain, it
/// shows the layers' too unless whited out), and its opaque markers, to remove. Refused
/// when a redirect lies below (a renamed directory: its own rules).
fn plain_again(
    root: &Path,
    lower: &crate::lower::LowerTree,
    opaque: &[&PathBuf],
) -> Result<PlainAgain, Error> {
    use std::ffi::OsString;
    let mut out = PlainAgain::default();
    let mut seen = std::collections::HashSet::new();
    let mut todo: Vec<PathBuf> = opaque.iter().map(|d| d.to_path_buf()).collect();
    while let Some(dir) = todo.pop() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        let mut own: std::collections::HashSet<OsString> = std::collections::HashSet::new();
        let at = |e: std::io::Error| format!("{}: {e}", root.join(&dir).display());
        for e in std::fs::read_dir(root.join(&dir)).map_err(at)? {
            let e = e.map_err(at)?;
            let name = e.file_name();
            match crate::upper_format::classify(&name) {
                EntryName::Opaque => {
                    out.markers.push(dir.join(OPAQUE));
                    continue;
                }
                EntryName::Redirect => {
                    return Err(format!("{} is a renamed directory", dir.display()).into())
                }
                EntryName::Whiteout(hidden) => {
                    own.insert(hidden.to_owned());
                    continue;
                }
                EntryName::Entry => {}
            }
            if e.file_type().map_err(at)?.is_dir() {
                todo.push(dir.join(&name));
            }
            own.insert(name);
        }
        let Some(id) = lower.lookup_path(dir.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        for (name, _) in lower.children(id) {
            if !own.contains(name) {
                out.whiteouts.push(dir.join(name));
            }
        }
    }
    Ok(out)
}

/// What [`commit_layers`] did, and what is left to remove.
#[derive(Debug, Default)]
pub struct Committed {
    pub report: Report,
    /// The links now shadowing their layers' files (venv-relative), to remove, and the
    /// `.pyc` uv compiled through them, which the bytecode store holds now.
    pub links: Vec<PathBuf>,
    /// The directories that may be left empty by that, deepest first (venv-relative).
    pub dirs: Vec<PathBuf>,
    /// When the fold began looking: a link changed since (uv installing again meanwhile)
    /// is not removed (see [`super::adopt::remove_at`]).
    pub since: Option<std::time::SystemTime>,
}

/// The first step of a fold, in one transaction whose commit point is the manifest: the
/// layers of what [`plan`] finds join the manifest, the whiteouts they need are written, and
/// old whiteouts at the links' names go. The links stay: each still shows its cache file,
/// the same bytes as the layer's file it shadows, so the venv shows the same before and
/// after. Removing them is the second step: [`super::adopt::remove_at`], done by the daemon
/// of a mounted venv itself so that no request finds a link gone before the tree knows.
pub fn commit_layers(root: &Path, python: &str) -> Result<Committed, Error> {
    let since = Some(crate::fsutil::file_clock_now());
    let layout = &Layout::new(python);
    let path = manifest_path(root);
    let mut manifest = Manifest::load(&path)?;
    // Layers uninstalled through the mount whose cache entry is gone since (`uv cache
    // clean`) show nothing and cannot be read: no tree of the layers could be built with
    // them, so they go now (the next mount drops every uninstalled layer).
    manifest.layers.retain(|l| {
        !(l.installed && !l.source.exists() && layout.uninstalled_through_mount(root, l))
    });
    let plan = plan(root, python);
    let mut report = Report {
        notes: plan.notes,
        ..Report::default()
    };
    if plan.folds.is_empty() {
        return Ok(Committed {
            report,
            ..Committed::default()
        });
    }
    let hidden: Vec<PathBuf> = plan.folds.iter().flat_map(|f| f.hidden.clone()).collect();
    let hidden = if hidden.iter().any(|h| !parent_exists(root, h)) {
        // (the layers that stay: what shows in a directory the venv's own lost)
        let mut staying = manifest.clone();
        staying.layers.retain(|l| {
            l.name.is_empty()
                || !plan
                    .folds
                    .iter()
                    .any(|f| f.layer.package_name() == l.package_name())
        });
        // (a layer whose cache entry went meanwhile shows nothing: see daemon/sources.rs)
        let lower = crate::lower::LowerTree::build(
            &staying.split_gone().0,
            &path,
            crate::lower::native_names(),
        )?;
        whiteouts_for(root, &hidden, &lower)
    } else {
        hidden
    };
    // on top, in the order found, replacing other versions (and a layer of the same
    // version uv uninstalled and linked again) as `layer add` does
    for f in plan.folds.iter().rev() {
        let package = f.layer.package_name();
        manifest
            .layers
            .retain(|l| l.name.is_empty() || l.package_name() != package);
        manifest.layers.insert(0, f.layer.clone());
    }
    let opaque: Vec<&PathBuf> = plan.folds.iter().flat_map(|f| &f.opaque).collect();
    let unhide = plain_again_over(root, &manifest, &path, &opaque)?;
    let mut txn = Txn::begin(root)?;
    let done = (|| -> Result<(), Error> {
        for rel in &unhide.whiteouts {
            super::apply::write_whiteout(&mut txn, &root.join(rel))?;
        }
        for f in &plan.folds {
            for rel in &f.stale_whiteouts {
                txn.remove(&root.join(rel))?;
            }
        }
        for rel in &hidden {
            super::apply::write_whiteout(&mut txn, &root.join(rel))?;
        }
        txn.sync()?;
        manifest.save(&path)?;
        Ok(())
    })();
    if let Err(e) = done {
        txn.rollback();
        return Err(e);
    }
    let touched = txn.commit_touched(&super::sync::keep_dirs(root, layout));
    report.touched = touched
        .into_iter()
        .filter_map(|p| p.strip_prefix(root).ok().map(Path::to_owned))
        .collect();
    // The opaque markers go after the commit point, as the links do: until then an
    // opaque directory shows its links, as before; once the layer is listed and the
    // whiteouts are written, the directory shows the same made plain. (Killed in
    // between, the next fold finds the links under it and does it again.)
    for marker in unhide.markers {
        std::fs::remove_file(root.join(&marker))
            .map_err(|e| format!("the layers are saved, but {}: {e}", marker.display()))?;
        report.touched.push(marker);
    }
    let mut links: Vec<PathBuf> = plan.folds.iter().flat_map(|f| f.links.clone()).collect();
    // (the bytecode uv compiled through the links goes to the shared store, and from the
    // venv's own directory once the store has it)
    let stores = plan
        .folds
        .iter()
        .any(|f| !f.bytecode.is_empty())
        .then(|| crate::bytecode::Stores::of_venv(root))
        .flatten();
    let mut moved = 0;
    for (f, stores) in plan
        .folds
        .iter()
        .filter_map(|f| Some((f, stores.as_ref()?)))
    {
        for (pyc, source) in &f.bytecode {
            let dir = pyc.parent().and_then(Path::parent).unwrap_or(Path::new(""));
            if stores.take_compiled(&root.join(pyc), &f.layer.source, dir, source) {
                links.push(pyc.clone());
                moved += 1;
            }
        }
    }
    // (every directory below site-packages or bin holding a link, deepest first: those
    // left empty go, the others stay)
    let keep: Vec<PathBuf> = super::sync::keep_dirs(Path::new(""), layout);
    let mut dirs: Vec<PathBuf> = links
        .iter()
        .flat_map(|l| l.ancestors().skip(1).map(Path::to_owned))
        .filter(|d| {
            !keep.contains(d)
                && keep
                    .iter()
                    .any(|k| d.starts_with(k) && !k.as_os_str().is_empty())
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    let (mut n, mut bytes) = (0, 0);
    for f in &plan.folds {
        report.lines.push(format!(
            " ~ {}: {} links folded",
            f.layer.pin(),
            f.links.len()
        ));
        n += f.links.len();
        bytes += f.link_bytes;
    }
    report.lines.push(format!(
        "Folded {n} links of {} {} into layers: {} of links removed",
        plan.folds.len(),
        if plan.folds.len() == 1 {
            "distribution"
        } else {
            "distributions"
        },
        crate::inventory::human(bytes)
    ));
    if moved > 0 {
        report.lines.push(format!(
            "Moved {moved} modules' bytecode uv compiled to the shared bytecode store"
        ));
    }
    Ok(Committed {
        report,
        links,
        dirs,
        since,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const SITE: &str = "lib/python3.11/site-packages";

    /// A uv cache holding one unpacked wheel `pkg 1.0`, and a venv uv filled with links to
    /// it, as its symlink link mode does; `pkg/mod.py` was deleted from the venv.
    struct Fixture {
        _dir: tempfile::TempDir,
        cache: PathBuf,
        entry: PathBuf,
        venv: PathBuf,
    }

    fn put(path: &Path, content: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        put(
            &cache.join("CACHEDIR.TAG"),
            "Signature: 8a477f597d28d172789f06886806bc55",
        );
        let entry = cache.join("archive-v0/Id1");
        for f in [
            "pkg/__init__.py",
            "pkg/mod.py",
            "pkg-1.0.dist-info/METADATA",
            "pkg-1.0.dist-info/WHEEL",
            "pkg-1.0.dist-info/RECORD",
            "pkg-1.0.data/scripts/tool",
        ] {
            put(&entry.join(f), f);
        }
        let venv = dir.path().join("venv");
        let site = venv.join(SITE);
        for f in [
            "pkg/__init__.py",
            "pkg-1.0.dist-info/METADATA",
            "pkg-1.0.dist-info/WHEEL",
        ] {
            std::fs::create_dir_all(site.join(f).parent().unwrap()).unwrap();
            symlink(entry.join(f), site.join(f)).unwrap();
        }
        put(&site.join("pkg-1.0.dist-info/INSTALLER"), "uv");
        put(&venv.join("bin/tool"), "#!python\n");
        put(
            &site.join("pkg-1.0.dist-info/RECORD"),
            "pkg/__init__.py,,\npkg/mod.py,,\npkg-1.0.dist-info/METADATA,,\n\
             pkg-1.0.dist-info/WHEEL,,\npkg-1.0.dist-info/INSTALLER,,\n\
             pkg-1.0.dist-info/RECORD,,\n../../../bin/tool,,\n",
        );
        Fixture {
            _dir: dir,
            cache,
            entry,
            venv,
        }
    }

    fn manifest(f: &Fixture) -> Manifest {
        Manifest::load(&manifest_path(&f.venv)).unwrap()
    }

    #[test]
    fn fold_makes_a_layer_removes_links_and_hides_what_was_deleted() {
        let f = fixture();
        assert!(has_references(&f.venv, &Layout::new("3.11")));
        let p = plan(&f.venv, "3.11");
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        let [one] = p.folds.as_slice() else {
            panic!("{p:?}")
        };
        assert_eq!(one.links.len(), 3);
        // (the wheel's RECORD and its script are shadowed by uv's files: nothing to hide)
        assert_eq!(one.hidden, [Path::new(SITE).join("pkg/mod.py")]);

        let report = fold(&f.venv, "3.11").unwrap();
        assert_eq!(report.lines[0], " ~ pkg==1.0: 3 links folded", "{report:?}");
        let site = f.venv.join(SITE);
        for l in ["pkg/__init__.py", "pkg-1.0.dist-info/METADATA"] {
            assert!(site.join(l).symlink_metadata().is_err(), "{l} stays");
        }
        assert!(site.join("pkg/.wh.mod.py").is_file());
        assert!(site.join("pkg-1.0.dist-info/RECORD").is_file());
        assert!(site.join("pkg-1.0.dist-info/INSTALLER").is_file());
        assert!(f.venv.join("bin/tool").is_file());
        let m = manifest(&f);
        assert_eq!(m.layers.len(), 1);
        let layer = &m.layers[0];
        assert_eq!(layer.source, f.entry.canonicalize().unwrap());
        assert_eq!(
            (layer.name.as_str(), layer.version.as_str()),
            ("pkg", "1.0")
        );
        assert!(layer.installed);
        assert_eq!(
            layer.destination("pkg/mod.py").unwrap(),
            format!("{SITE}/pkg/mod.py")
        );
        assert!(report
            .touched
            .contains(&Path::new(SITE).join("pkg/__init__.py")));
        // done once: nothing left to fold, and no stash left behind
        assert!(!has_references(&f.venv, &Layout::new("3.11")));
        assert!(fold(&f.venv, "3.11").unwrap().lines.is_empty());
        assert_eq!(
            std::fs::read_dir(f.venv.join(".venvfs")).unwrap().count(),
            1
        );
    }

    #[test]
    fn links_the_layer_would_not_show_as_they_are_are_not_folded() {
        // a link to another file of the wheel than its own path
        let f = fixture();
        let link = f.venv.join(SITE).join("pkg/__init__.py");
        std::fs::remove_file(&link).unwrap();
        symlink(f.entry.join("pkg/mod.py"), &link).unwrap();
        let p = plan(&f.venv, "3.11");
        assert!(p.folds.is_empty());
        assert!(p.notes[0].contains("would show at"), "{:?}", p.notes);

        // a cache without CACHEDIR.TAG
        let f = fixture();
        std::fs::remove_file(f.cache.join("CACHEDIR.TAG")).unwrap();
        let p = plan(&f.venv, "3.11");
        assert!(p.folds.is_empty() && p.notes[0].contains("CACHEDIR.TAG"));

        // links into two entries
        let f = fixture();
        let other = f.cache.join("archive-v0/Id2/pkg-1.0.dist-info/WHEEL");
        put(&other, "x");
        let wheel = f.venv.join(SITE).join("pkg-1.0.dist-info/WHEEL");
        std::fs::remove_file(&wheel).unwrap();
        symlink(&other, &wheel).unwrap();
        let p = plan(&f.venv, "3.11");
        assert!(p.folds.is_empty() && p.notes[0].contains("two cache entries"));

        // a redirected directory above a link would show other content
        let f = fixture();
        put(&f.venv.join(SITE).join("pkg").join(REDIRECT), "");
        let p = plan(&f.venv, "3.11");
        assert!(
            p.folds.is_empty() && p.notes[0].contains("was renamed"),
            "{p:?}"
        );
    }

    #[test]
    fn uninstalled_and_linked_again_replaces_its_layer_and_opens_opaque_dirs() {
        // uv uninstalled the layer `pkg` through the mount (its directory went: a
        // whiteout, then an opaque directory when uv made it again) and linked it again
        let f = fixture();
        let mut m = Manifest::default();
        m.layers
            .push(crate::install::layer_for(&f.entry, "pkg-1.0", "3.11"));
        m.save(&manifest_path(&f.venv)).unwrap();
        let pkg = f.venv.join(SITE).join("pkg");
        put(&pkg.join(OPAQUE), "");
        fold(&f.venv, "3.11").unwrap();
        let m = manifest(&f);
        assert_eq!(m.layers.len(), 1, "{m:?}");
        assert!(!pkg.join(OPAQUE).exists(), "the directory is plain again");
        assert!(!pkg.join("__init__.py").exists(), "the link went");
        // (pkg/mod.py did not show in the opaque directory: it stays hidden)
        assert!(pkg.join(".wh.mod.py").exists());
        assert!(!pkg.join(".wh.__init__.py").exists());
    }

    #[test]
    fn a_deleted_directory_is_hidden_whole_unless_a_staying_layer_has_it() {
        // pkg/sub/ was deleted from the venv with its file (no link left in it)
        let f = fixture();
        put(&f.entry.join("pkg/sub/z.py"), "z");
        fold(&f.venv, "3.11").unwrap();
        let pkg = f.venv.join(SITE).join("pkg");
        assert!(pkg.join(".wh.sub").exists());
        assert!(!pkg.join("sub").exists(), "no directory made for whiteouts");

        // another layer, which stays, shows pkg/sub/ too: its files still show
        let f = fixture();
        put(&f.entry.join("pkg/sub/z.py"), "z");
        let other = f.cache.join("archive-v0/Id2");
        for file in [
            "pkg/sub/y.py",
            "other-1.0.dist-info/METADATA",
            "other-1.0.dist-info/WHEEL",
            "other-1.0.dist-info/RECORD",
        ] {
            put(&other.join(file), file);
        }
        let mut m = Manifest::default();
        m.layers
            .push(crate::install::layer_for(&other, "other-1.0", "3.11"));
        m.save(&manifest_path(&f.venv)).unwrap();
        fold(&f.venv, "3.11").unwrap();
        let pkg = f.venv.join(SITE).join("pkg");
        assert!(!pkg.join(".wh.sub").exists());
        assert!(pkg.join("sub/.wh.z.py").exists());
        assert_eq!(manifest(&f).layers.len(), 2);
    }

    #[test]
    fn a_stale_whiteout_at_a_link_goes_with_it() {
        let f = fixture();
        let stale = f.venv.join(SITE).join("pkg/.wh.__init__.py");
        put(&stale, "");
        fold(&f.venv, "3.11").unwrap();
        assert!(!stale.exists());
    }

    #[test]
    fn a_failure_leaves_the_venv_as_it_was() {
        let f = fixture();
        // (a directory where the manifest goes: saving it fails)
        std::fs::create_dir_all(manifest_path(&f.venv).join("x")).unwrap();
        let before: Vec<_> = walk(&f.venv);
        assert!(fold(&f.venv, "3.11").is_err());
        assert_eq!(walk(&f.venv), before);
        let link = f.venv.join(SITE).join("pkg/__init__.py");
        assert_eq!(
            std::fs::read_link(link).unwrap(),
            f.entry.join("pkg/__init__.py")
        );
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            out.push(e.path());
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()));
            }
        }
        out.sort();
        out
    }
}
