//! What a venv holds as Python sees it, and where each distribution's files come from.
//!
//! The manifest says which layers venvfs installed, but uv and pip change a mounted venv
//! through the mount: `uv pip uninstall` whites a layer's files out, and what they install
//! lands in the venv's own directory, as copies or, in uv's symlink link mode, as
//! references (symlinks into uv's cache, shown as regular files). So the distributions are
//! read from the `.dist-info` directories the mounted view shows, and each file its RECORD
//! lists is looked up in the venv's own directory (beneath the mount): absent there, a
//! layer serves it; a symlink into a uv cache is a reference; a regular file is a copy.
//!
//! Platform-neutral and read-only: plain directory reads, no mount needed, so an unmounted
//! venv is described from its own directory and its manifest (what a mount would show).

use std::collections::BTreeSet;
use std::error::Error;
use std::path::{Component, Path, PathBuf};

use crate::finder::uvcache::UvCache;
use crate::install::layout::Layout;
use crate::manifest::{Layer, Manifest};
use crate::name::PackageName;
use crate::upper_format::{classify, EntryName};

/// Where files of a distribution come from, in the order they are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// A layer of the manifest (files absent from the venv's own directory).
    Layer,
    /// Symlinks into a uv cache in the venv's own directory (uv's symlink link mode).
    References,
    /// Regular files in the venv's own directory (pip, uv's copy mode, or edited files).
    Copies,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Layer => "layer",
            Origin::References => "references",
            Origin::Copies => "copies",
        }
    }
}

/// One distribution of the venv.
#[derive(Debug, Clone)]
pub struct Dist {
    pub name: PackageName,
    pub version: String,
    /// Its `.dist-info` directory's name in site-packages.
    pub dist_info: String,
    /// Where its files come from: one origin, or several (mixed). Never empty.
    pub origins: Vec<Origin>,
    /// Bytes of its regular files in the venv's own directory, generated ones included.
    pub own_bytes: u64,
    /// Of those, the bytes of the files the wheel holds (not the `.dist-info`, launchers
    /// or bytecode an installer writes): what a layer could serve instead.
    pub copy_bytes: u64,
    /// The source of the manifest's layer of the same name and version.
    pub layer: Option<PathBuf>,
    /// A source its files need that is gone: the layer's, or the uv cache entry its
    /// references point into (the cache entry was pruned).
    pub source_missing: Option<PathBuf>,
    /// What could not be read (a broken METADATA or RECORD); the rest is still reported.
    pub problems: Vec<String>,
}

impl Dist {
    /// `name==version`.
    pub fn pin(&self) -> String {
        format!("{}=={}", self.name, self.version)
    }

    /// Where its files come from, for people: `layer`, `references`, `copies (12.3 MiB)`,
    /// `mixed: layer, copies (4.0 KiB)`, `layer (source missing: PATH)`.
    pub fn origin_label(&self) -> String {
        let parts: Vec<String> = self
            .origins
            .iter()
            .map(|o| match o {
                Origin::Copies => format!("copies ({})", human(self.own_bytes)),
                other => other.as_str().to_owned(),
            })
            .collect();
        let mut label = match parts.as_slice() {
            [one] => one.clone(),
            many => format!("mixed: {}", many.join(", ")),
        };
        if let Some(gone) = &self.source_missing {
            label.push_str(&format!(" (source missing: {})", gone.display()));
        }
        label
    }

    /// For scripts: the same facts as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name.as_str(),
            "version": self.version,
            "dist_info": self.dist_info,
            "origin": match self.origins.as_slice() {
                [one] => one.as_str(),
                _ => "mixed",
            },
            "origins": self.origins.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
            "own_bytes": self.own_bytes,
            "copy_bytes": self.copy_bytes,
            "layer": self.layer.as_ref().map(|p| p.display().to_string()),
            "source_missing": self.source_missing.as_ref().map(|p| p.display().to_string()),
            "problems": self.problems,
        })
    }
}

/// The distributions of a venv, sorted by name, and the manifest's layers whose source is
/// gone (also those uninstalled through the mount: a mount refuses a missing layer).
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub dists: Vec<Dist>,
    pub missing_layers: Vec<Layer>,
}

impl Inventory {
    /// One line per distribution, `name==version` and where it comes from, aligned.
    pub fn table(&self) -> Vec<String> {
        let width = self.dists.iter().map(|d| d.pin().len()).max().unwrap_or(0);
        self.dists
            .iter()
            .map(|d| format!("{:<width$}  {}", d.pin(), d.origin_label()))
            .collect()
    }

    /// What could not be read, for notes.
    pub fn problems(&self) -> impl Iterator<Item = &String> {
        self.dists.iter().flat_map(|d| &d.problems)
    }
}

/// What the inventory reads.
pub struct Sources<'a> {
    /// The venv as mounted (what Python sees); None when it is not mounted.
    pub view: Option<&'a Path>,
    /// The venv's own directory (beneath the mount when mounted).
    pub own: &'a Path,
    pub layout: &'a Layout,
    pub manifest: &'a Manifest,
}

/// The inventory of the venv at `venv`, mounted or not.
pub fn of_venv(venv: &Path) -> Result<Inventory, Box<dyn Error>> {
    of_mount(venv, crate::daemon::own_dir_of(venv).as_deref())
}

/// The inventory of the venv at `venv` whose own directory is `own` when it is mounted
/// (None: it is not mounted, and the venv directory is its own).
pub fn of_mount(venv: &Path, own: Option<&Path>) -> Result<Inventory, Box<dyn Error>> {
    let version = crate::venv::python_version(venv)?;
    let own_dir = own.unwrap_or(venv);
    let manifest = Manifest::load(&crate::manifest::manifest_path(own_dir))?;
    Ok(take(&Sources {
        view: own.map(|_| venv),
        own: own_dir,
        layout: &Layout::new(&version),
        manifest: &manifest,
    }))
}

/// Lists the distributions `sources` show and where their files come from.
pub fn take(sources: &Sources) -> Inventory {
    let site = Path::new(sources.layout.site_packages());
    let own_site = sources.own.join(site);
    let dist_infos = match sources.view {
        Some(view) => shown_dist_infos(&view.join(site)),
        None => unmounted_dist_infos(&own_site, sources.manifest),
    };
    // (unmounted, what installing wrote is read from the generated layer)
    let generated = match sources.view {
        Some(_) => None,
        None => crate::layer::generated::GeneratedLayer::of(
            sources.manifest,
            &crate::manifest::manifest_path(sources.own),
        )
        .ok()
        .flatten(),
    };
    let view = crate::layer::generated::OwnView::with(sources.own, generated);
    let mut dists: Vec<Dist> = dist_infos
        .into_iter()
        .map(|d| describe(sources, &view, site, &d))
        .collect();
    dists.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    let missing_layers = sources
        .manifest
        .layers
        .iter()
        .filter(|l| !l.source.exists())
        .cloned()
        .collect();
    Inventory {
        dists,
        missing_layers,
    }
}

/// `.dist-info` directories in a (mounted) site-packages.
fn shown_dist_infos(site: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(site) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".dist-info"))
        .collect()
}

/// What a mount would show of `.dist-info` directories: the own directory's, and the
/// layers' unless whited out (or hidden by an opaque site-packages).
fn unmounted_dist_infos(own_site: &Path, manifest: &Manifest) -> Vec<String> {
    let mut shown = BTreeSet::new();
    let mut hidden = BTreeSet::new();
    let mut opaque = false;
    for e in std::fs::read_dir(own_site).into_iter().flatten().flatten() {
        let name = e.file_name();
        match classify(&name) {
            EntryName::Whiteout(n) => {
                hidden.insert(n.to_string_lossy().into_owned());
            }
            EntryName::Opaque => opaque = true,
            EntryName::Redirect => {}
            EntryName::Entry if e.file_type().is_ok_and(|t| t.is_dir()) => {
                if let Some(n) = name.to_str().filter(|n| n.ends_with(".dist-info")) {
                    shown.insert(n.to_owned());
                }
            }
            EntryName::Entry => {}
        }
    }
    if !opaque {
        for l in manifest.layers.iter().filter(|l| !l.name.is_empty()) {
            let d = layer_dist_info(l);
            if !hidden.contains(&d) {
                shown.insert(d);
            }
        }
    }
    shown.into_iter().collect()
}

/// The `.dist-info` directory a layer installs (named as install names it).
fn layer_dist_info(l: &Layer) -> String {
    format!("{}-{}.dist-info", l.name, l.version)
}

/// Reads a `.dist-info` file as the venv shows it: through the mount, or unmounted, from
/// the own directory over the generated layer (`own`), and then the layer's source (a
/// directory, or a `.whl` file).
fn read_dist_file(
    sources: &Sources,
    own: &crate::layer::generated::OwnView,
    site: &Path,
    dist_info: &str,
    file: &str,
) -> std::io::Result<Vec<u8>> {
    let rel = site.join(dist_info).join(file);
    if let Some(view) = sources.view {
        return std::fs::read(view.join(rel));
    }
    let rel_str: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match own.read(&rel_str.join("/")) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let layer = sources
                .manifest
                .layers
                .iter()
                .find(|l| layer_dist_info(l) == dist_info);
            match layer {
                Some(l) if l.source.is_dir() => std::fs::read(l.source.join(dist_info).join(file)),
                Some(l) => crate::install::apply::read_source_file(
                    &l.source,
                    &format!("{dist_info}/{file}"),
                )
                .map_err(std::io::Error::other),
                None => Err(e),
            }
        }
        other => other,
    }
}

/// What the files of one RECORD are in the venv's own directory.
#[derive(Default)]
struct Tally {
    below: usize,
    references: usize,
    copies: usize,
    own_bytes: u64,
    copy_bytes: u64,
    dangling: Option<PathBuf>,
}

fn describe(
    sources: &Sources,
    own: &crate::layer::generated::OwnView,
    site: &Path,
    dist_info: &str,
) -> Dist {
    let mut problems = Vec::new();
    let shown = |file: &str| site.join(dist_info).join(file).display().to_string();
    let (dir_name, dir_version) = dist_info
        .trim_end_matches(".dist-info")
        .split_once('-')
        .unwrap_or((dist_info.trim_end_matches(".dist-info"), ""));
    let (name, version) = match read_dist_file(sources, own, site, dist_info, "METADATA") {
        Ok(bytes) => {
            let h = crate::finder::metadata_headers(&bytes);
            match (h.name, h.version) {
                (Some(n), Some(v)) if !n.is_empty() && !v.is_empty() => (n, v),
                _ => {
                    problems.push(format!(
                        "{}: no Name or Version header; named after its directory (reinstall the distribution to repair it)",
                        shown("METADATA")
                    ));
                    (dir_name.to_owned(), dir_version.to_owned())
                }
            }
        }
        Err(e) => {
            problems.push(format!(
                "{}: {e}; named after its directory (reinstall the distribution to repair it)",
                shown("METADATA")
            ));
            (dir_name.to_owned(), dir_version.to_owned())
        }
    };
    let name = PackageName::new(&name);
    let layer =
        sources.manifest.layers.iter().find(|l| {
            l.package_name() == name && crate::finder::same_version(&l.version, &version)
        });
    let mut tally = Tally::default();
    match read_dist_file(sources, own, site, dist_info, "RECORD") {
        Ok(bytes) => match crate::install::record::parse_record(&String::from_utf8_lossy(&bytes)) {
            Ok(rows) => {
                for row in rows {
                    tally_file(&mut tally, sources.own, site, dist_info, &row.path);
                }
            }
            Err(e) => problems.push(format!(
                "{}: {e}; its files are not counted",
                shown("RECORD")
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && layer.is_some() => {}
        Err(e) => problems.push(format!(
            "{}: {e}; its files are not counted",
            shown("RECORD")
        )),
    }
    let mut origins = Vec::new();
    // (files absent from the own directory are a layer's only if the manifest has it)
    if layer.is_some() && (tally.below > 0 || tally.references + tally.copies == 0) {
        origins.push(Origin::Layer);
    }
    if tally.references > 0 {
        origins.push(Origin::References);
    }
    if tally.copies > 0 || origins.is_empty() {
        origins.push(Origin::Copies);
    }
    let source_missing = match layer {
        Some(l) if origins.contains(&Origin::Layer) && !l.source.exists() => Some(l.source.clone()),
        _ => tally.dangling,
    };
    Dist {
        name,
        version,
        dist_info: dist_info.to_owned(),
        origins,
        own_bytes: tally.own_bytes,
        copy_bytes: tally.copy_bytes,
        layer: layer.map(|l| l.source.clone()),
        source_missing,
        problems,
    }
}

/// Looks up one RECORD path (relative to site-packages) in the venv's own directory.
fn tally_file(tally: &mut Tally, own: &Path, site: &Path, dist_info: &str, record_path: &str) {
    let Some(rel) = venv_relative(site, record_path) else {
        return; // (outside the venv: nothing of the venv's)
    };
    // what an installer writes: the .dist-info, launchers and scripts, bytecode
    let generated = rel.starts_with(site.join(dist_info))
        || !rel.starts_with(site)
        || rel.components().any(|c| c.as_os_str() == "__pycache__");
    let path = own.join(&rel);
    let Ok(meta) = path.symlink_metadata() else {
        if !generated {
            tally.below += 1;
        }
        return;
    };
    if meta.is_dir() {
        return;
    }
    if meta.file_type().is_symlink() {
        if let Some(target) = std::fs::read_link(&path)
            .ok()
            .filter(|t| is_uv_cache_file(t))
        {
            if !generated {
                tally.references += 1;
            }
            if !target.exists() && tally.dangling.is_none() {
                tally.dangling = Some(cache_entry(&target));
            }
            return;
        }
    }
    tally.own_bytes += meta.len();
    if !generated {
        tally.copies += 1;
        tally.copy_bytes += meta.len();
    }
}

/// A RECORD path (relative to site-packages, `../../../bin/x` for a script) as a path
/// relative to the venv; None when it is absolute or leaves the venv.
pub(crate) fn venv_relative(site: &Path, record_path: &str) -> Option<PathBuf> {
    let mut out: Vec<Component> = site.components().collect();
    for c in Path::new(record_path).components() {
        match c {
            Component::Normal(_) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out.into_iter().collect())
}

/// Whether a symlink target is a file of an unpacked wheel in a uv cache
/// (`CACHE/archive-v0/ID/...`, absolute, no `..`): what uv's symlink link mode makes.
pub(crate) fn is_uv_cache_file(target: &Path) -> bool {
    target.is_absolute()
        && !target.components().any(|c| c == Component::ParentDir)
        && target
            .components()
            .skip_while(|c| c.as_os_str() != "archive-v0")
            .nth(2)
            .is_some()
}

/// The unpacked wheel (`CACHE/archive-v0/ID`) a uv cache file belongs to.
pub(crate) fn cache_entry(target: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    let mut parts = target.components();
    for c in parts.by_ref() {
        out.push(c);
        if c.as_os_str() == "archive-v0" {
            break;
        }
    }
    out.extend(parts.next());
    out
}

/// What an [`advice`] line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdviceKind {
    /// Layers the venv's distributions need whose source is gone.
    SourceMissing,
    /// Layers uninstalled through the mount whose source is gone.
    UninstalledSourceMissing,
    /// Copies in the venv's own directory that a layer could serve.
    Servable,
}

/// One piece of advice: what is wrong or wasted, and the command that deals with it.
#[derive(Debug, Clone)]
pub struct Advice {
    pub kind: AdviceKind,
    /// What it is about (`a==1 (PATH), b==2 (PATH)`, or the bytes of copies).
    pub what: String,
    pub command: String,
}

impl Advice {
    /// The advice as one line for people.
    pub fn line(&self) -> String {
        let (what, command) = (&self.what, &self.command);
        match self.kind {
            AdviceKind::SourceMissing => format!(
                "source missing (the cache entry was removed): {what}; restore with `{command}`"
            ),
            AdviceKind::UninstalledSourceMissing => format!(
                "source missing for layers uninstalled through the mount: {what}; nothing of them shows, and the next mount drops them: `{command}`"
            ),
            AdviceKind::Servable => format!(
                "{what} of the venv's own directory are copies a layer could serve: `{command}`"
            ),
        }
    }
}

/// The command that installs `pins` into `venv` as layers: from uv's cache when it holds
/// them all (`in_cache`), else after uv has put them there.
pub fn restore_command(venv: &Path, pins: &[String], in_cache: bool) -> String {
    let venv_s = venv.display();
    let list = pins.join(" ");
    let install = format!("venvfs install {venv_s} {list}");
    if in_cache {
        install
    } else {
        // (by version, not the venv's bin/python: uv cannot run that one while the venv is
        // not mounted, where `venvfs doctor` gives this advice too)
        let python =
            crate::venv::python_version(venv).unwrap_or_else(|_| format!("{venv_s}/bin/python"));
        format!(
            "uv pip install --no-deps --python {python} --target \"$(mktemp -d)\" {list} && {install}"
        )
    }
}

/// What to do about an inventory, one line each: see [`advice_items`].
pub fn advice(venv: &Path, inv: &Inventory, uv_caches: &[UvCache]) -> Vec<String> {
    advice_items(venv, inv, uv_caches)
        .iter()
        .map(Advice::line)
        .collect()
}

/// What to do about an inventory: layers whose source is gone and the command that
/// restores them (`uv_caches` are where `venvfs install` will look), layers uninstalled
/// through the mount whose source is gone, and the bytes of copies a layer could serve
/// (distributions installed through the mount that uv's cache holds).
pub fn advice_items(venv: &Path, inv: &Inventory, uv_caches: &[UvCache]) -> Vec<Advice> {
    let in_cache = |name: &PackageName, version: &str| in_uv_cache(uv_caches, name, version);
    let venv_s = venv.display();
    let mut items = Vec::new();
    let (needed, dropped): (Vec<&Layer>, Vec<&Layer>) = inv.missing_layers.iter().partition(|l| {
        inv.dists
            .iter()
            .any(|d| d.name == l.package_name() && d.origins.contains(&Origin::Layer))
    });
    if !needed.is_empty() {
        let pins: Vec<String> = needed.iter().map(|l| l.label()).collect();
        let all_cached = needed
            .iter()
            .all(|l| in_cache(&l.package_name(), &l.version));
        items.push(Advice {
            kind: AdviceKind::SourceMissing,
            what: describe_layers(&needed),
            command: restore_command(venv, &pins, all_cached),
        });
    }
    if !dropped.is_empty() {
        // (not `venvfs uninstall NAME`: that would also remove what is installed under the
        // name now, such as uv's editable install of the project itself)
        items.push(Advice {
            kind: AdviceKind::UninstalledSourceMissing,
            what: describe_layers(&dropped),
            command: if crate::daemon::venv_is_mounted(venv) {
                format!("venvfs umount {venv_s} && venvfs mount {venv_s}")
            } else {
                format!("venvfs mount {venv_s}")
            },
        });
    }
    let servable: Vec<&Dist> = inv
        .dists
        .iter()
        .filter(|d| d.layer.is_none() && d.copy_bytes > 0 && in_cache(&d.name, &d.version))
        .collect();
    if !servable.is_empty() {
        let bytes: u64 = servable.iter().map(|d| d.copy_bytes).sum();
        // (adopt keeps what the installer wrote and the user's edits; it finds the wheels
        // itself, and leaves alone what it has none of)
        items.push(Advice {
            kind: AdviceKind::Servable,
            what: human(bytes),
            command: format!("venvfs adopt {venv_s}"),
        });
    }
    items
}

/// uv's caches, opened only when advice about `inv` may find something in them: a layer or
/// references whose source is gone, copies a layer could serve.
pub fn cache_for_advice(inv: &Inventory) -> Vec<UvCache> {
    let may_use_cache = !inv.missing_layers.is_empty()
        || inv
            .dists
            .iter()
            .any(|d| (d.layer.is_none() && d.copy_bytes > 0) || d.source_missing.is_some());
    if !may_use_cache {
        return Vec::new();
    }
    crate::finder::uvcache::locate_all(&[])
        .iter()
        .map(|root| UvCache::open(root))
        .collect()
}

/// Whether one of uv's caches holds an unpacked wheel of `name` at `version`.
pub fn in_uv_cache(uv_caches: &[UvCache], name: &PackageName, version: &str) -> bool {
    uv_caches.iter().any(|c| {
        c.entries.iter().any(|e| {
            PackageName::new(&e.name) == *name && crate::finder::same_version(&e.version, version)
        })
    })
}

/// `a==1 (PATH), b==2 (PATH)`.
fn describe_layers(layers: &[&Layer]) -> String {
    layers
        .iter()
        .map(|l| format!("{} ({})", l.label(), l.source.display()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Bytes for people: `512 B`, `12.3 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::layout::OsName;
    use crate::manifest::Mapping;

    const SITE: &str = "lib/python3.11/site-packages";

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// A `.dist-info` with METADATA and a RECORD listing `files` (site-packages-relative).
    fn dist(root: &Path, name: &str, version: &str, files: &[&str]) {
        let d = format!("{SITE}/{name}-{version}.dist-info");
        write(
            root,
            &format!("{d}/METADATA"),
            &format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nbody: x\n"),
        );
        let mut record: String = files.iter().map(|f| format!("{f},,\n")).collect();
        record.push_str(&format!(
            "{name}-{version}.dist-info/METADATA,,\n{name}-{version}.dist-info/RECORD,,\n"
        ));
        write(root, &format!("{d}/RECORD"), &record);
    }

    fn layer(name: &str, version: &str, source: PathBuf) -> Layer {
        Layer {
            source,
            name: name.into(),
            version: version.into(),
            map: vec![Mapping {
                from: String::new(),
                to: Some(SITE.into()),
                skip: false,
            }],
            installed: false,
        }
    }

    fn labels(inv: &Inventory) -> Vec<(String, String)> {
        inv.dists
            .iter()
            .map(|d| (d.pin(), d.origin_label()))
            .collect()
    }

    #[cfg(unix)]
    #[test]
    fn origins_of_a_mounted_view() {
        let t = tempfile::tempdir().unwrap();
        let (view, own, cache) = (
            t.path().join("view"),
            t.path().join("own"),
            t.path().join("uv"),
        );
        let entry = cache.join("archive-v0/AbC1");
        write(&entry, "refpkg/__init__.py", "x = 1\n");
        let layer_src = t.path().join("wheels/lay");
        std::fs::create_dir_all(&layer_src).unwrap();

        // a layer, with what install wrote in the own directory
        dist(
            &view,
            "Lay_Pkg",
            "1.0",
            &[
                "lay/__init__.py",
                "../../../bin/lay",
                "Lay_Pkg-1.0.dist-info/INSTALLER",
            ],
        );
        write(
            &own,
            &format!("{SITE}/Lay_Pkg-1.0.dist-info/RECORD"),
            "generated",
        );
        write(
            &own,
            &format!("{SITE}/Lay_Pkg-1.0.dist-info/INSTALLER"),
            "venvfs\n",
        );
        write(&own, "bin/lay", "#!python\n");
        // copies (pip, uv's copy mode), bytecode included in RECORD
        dist(
            &view,
            "cop",
            "2.0",
            &[
                "cop/__init__.py",
                "cop/__pycache__/__init__.cpython-311.pyc",
            ],
        );
        write(&own, &format!("{SITE}/cop/__init__.py"), "0123456789");
        write(
            &own,
            &format!("{SITE}/cop/__pycache__/__init__.cpython-311.pyc"),
            "pyc",
        );
        write(&own, &format!("{SITE}/cop-2.0.dist-info/RECORD"), "r");
        // references (uv's symlink mode), and references whose cache entry was pruned
        dist(&view, "refpkg", "3.0", &["refpkg/__init__.py"]);
        std::fs::create_dir_all(own.join(SITE).join("refpkg")).unwrap();
        std::os::unix::fs::symlink(
            entry.join("refpkg/__init__.py"),
            own.join(SITE).join("refpkg/__init__.py"),
        )
        .unwrap();
        dist(&view, "pruned", "1.0", &["pruned.py"]);
        let gone = cache.join("archive-v0/Gone9/pruned.py");
        std::os::unix::fs::symlink(&gone, own.join(SITE).join("pruned.py")).unwrap();
        // a layer with one edited file; a layer whose source is gone
        dist(&view, "mix", "1.0", &["mix/a.py", "mix/b.py"]);
        write(&own, &format!("{SITE}/mix/a.py"), "edited");
        dist(&view, "lost", "0.5", &["lost.py"]);
        // a broken METADATA is reported, named after its directory
        write(
            &view,
            &format!("{SITE}/broken-0.1.dist-info/METADATA"),
            "\u{0}garbage",
        );
        write(
            &view,
            &format!("{SITE}/broken-0.1.dist-info/RECORD"),
            "broken.py,,\n",
        );
        write(&own, &format!("{SITE}/broken.py"), "b");
        // what is not a distribution
        write(&view, &format!("{SITE}/six.py"), "");
        std::fs::create_dir_all(view.join(SITE).join("notes.dist-info.bak")).unwrap();

        let lost_src = t.path().join("wheels/lost-0.5-py3-none-any.whl");
        let manifest = Manifest {
            layers: vec![
                layer("lay-pkg", "1.0.0", layer_src.clone()),
                layer("mix", "1.0", layer_src.clone()),
                layer("lost", "0.5", lost_src.clone()),
                layer("gone-too", "2", t.path().join("gone-too")),
            ],
            ..Manifest::default()
        };
        let layout = Layout::for_os(OsName::Posix, "3.11");
        let inv = take(&Sources {
            view: Some(&view),
            own: &own,
            layout: &layout,
            manifest: &manifest,
        });
        assert_eq!(
            labels(&inv),
            [
                ("broken==0.1", "copies (1 B)".to_owned()),
                ("cop==2.0", "copies (14 B)".to_owned()),
                ("lay-pkg==1.0", "layer".to_owned()),
                (
                    "lost==0.5",
                    format!("layer (source missing: {})", lost_src.display())
                ),
                ("mix==1.0", "mixed: layer, copies (6 B)".to_owned()),
                (
                    "pruned==1.0",
                    format!(
                        "references (source missing: {})",
                        cache.join("archive-v0/Gone9").display()
                    )
                ),
                ("refpkg==3.0", "references".to_owned()),
            ]
            .map(|(p, l)| (p.to_owned(), l))
        );
        let by = |n: &str| inv.dists.iter().find(|d| d.name.as_str() == n).unwrap();
        assert_eq!(
            by("cop").copy_bytes,
            10,
            "bytecode and RECORD are not payload"
        );
        assert_eq!(by("lay-pkg").own_bytes, "generated".len() as u64 + 7 + 9);
        assert_eq!(by("lay-pkg").copy_bytes, 0);
        assert_eq!(by("lay-pkg").layer.as_deref(), Some(layer_src.as_path()));
        assert_eq!(
            by("broken").problems.len(),
            1,
            "{:?}",
            by("broken").problems
        );
        assert!(by("broken").problems[0].contains("broken-0.1.dist-info/METADATA"));
        assert!(by("cop").problems.is_empty());
        let missing: Vec<&str> = inv.missing_layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(missing, ["lost", "gone-too"]);

        let json = by("mix").to_json();
        assert_eq!(json["origin"], "mixed");
        assert_eq!(json["origins"], serde_json::json!(["layer", "copies"]));

        // advice: the missing layer shown, the one uninstalled, and copies uv's cache holds
        let uv = UvCache {
            root: cache.clone(),
            entries: vec![crate::finder::uvcache::Entry {
                id: "X".into(),
                name: "cop".into(),
                version: "2.0".into(),
                build: None,
                tags: vec![],
            }],
        };
        let advice = advice(Path::new("/v"), &inv, std::slice::from_ref(&uv));
        assert_eq!(advice.len(), 3, "{advice:#?}");
        assert!(advice[0].contains("lost==0.5"), "{}", advice[0]);
        assert!(advice[0]
            .contains("--target \"$(mktemp -d)\" lost==0.5 && venvfs install /v lost==0.5`"));
        assert!(
            advice[1].contains("the next mount drops them: `venvfs mount /v`"),
            "{}",
            advice[1]
        );
        assert_eq!(
            advice[2],
            "10 B of the venv's own directory are copies a layer could serve: `venvfs adopt /v`"
        );
    }

    #[test]
    fn an_unmounted_venv_is_its_own_directory_and_its_layers() {
        let t = tempfile::tempdir().unwrap();
        let own = t.path().join("venv");
        let src = t.path().join("cache/archive-v0/Id1");
        dist(&src, "kept", "1.0", &["kept.py"]);
        // (a layer source is a wheel's root, site-packages is where its map sends it)
        let kept_src = src.join(SITE);
        dist(&own, "kept", "1.0", &["kept.py"]);
        let removed_src = t.path().join("removed.whl");
        std::fs::write(&removed_src, "").unwrap();
        write(&own, &format!("{SITE}/.wh.removed-2.0.dist-info"), "");
        // only added (`layer add`): no RECORD of the venv's own, the layer's is read
        let added_src = t.path().join("added");
        write(
            &added_src,
            "added-3.0.dist-info/METADATA",
            "Name: added\nVersion: 3.0\n",
        );
        write(&added_src, "added-3.0.dist-info/RECORD", "added.py,,\n");
        // installed with copies while mounted
        dist(&own, "copied", "4.0", &["copied.py"]);
        write(&own, &format!("{SITE}/copied.py"), "1234");
        let manifest = Manifest {
            layers: vec![
                layer("kept", "1.0", kept_src),
                layer("removed", "2.0", removed_src),
                layer("added", "3.0", added_src),
            ],
            ..Manifest::default()
        };
        let inv = take(&Sources {
            view: None,
            own: &own,
            layout: &Layout::for_os(OsName::Posix, "3.11"),
            manifest: &manifest,
        });
        let want = [
            ("added==3.0", "layer"),
            ("copied==4.0", "copies (135 B)"),
            ("kept==1.0", "layer"),
        ];
        assert_eq!(
            labels(&inv),
            want.map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert_eq!(
            inv.dists[1].copy_bytes, 4,
            "its METADATA and RECORD are not payload"
        );
        assert!(inv.missing_layers.is_empty());
        assert!(inv.problems().next().is_none());
    }

    #[test]
    fn record_paths_and_cache_links() {
        let site = Path::new(SITE);
        assert_eq!(
            venv_relative(site, "../../../bin/x"),
            Some(PathBuf::from("bin/x"))
        );
        assert_eq!(
            venv_relative(site, "./a/b.py"),
            Some(PathBuf::from(format!("{SITE}/a/b.py")))
        );
        assert_eq!(venv_relative(site, "../../../../etc/passwd"), None);
        assert_eq!(venv_relative(site, "/etc/passwd"), None);
        // (absolute paths as the platform spells them)
        let abs = |p: &str| {
            PathBuf::from(if cfg!(windows) {
                format!("C:{p}")
            } else {
                p.into()
            })
        };
        assert!(is_uv_cache_file(&abs("/c/uv/archive-v0/Id/pkg/m.py")));
        assert!(!is_uv_cache_file(&abs("/c/uv/archive-v0/Id")));
        assert!(!is_uv_cache_file(Path::new("uv/archive-v0/Id/m.py")));
        assert!(!is_uv_cache_file(&abs("/c/archive-v0/../x/y/z")));
        assert!(!is_uv_cache_file(&abs("/usr/lib/x.py")));
        assert_eq!(
            cache_entry(&abs("/c/uv/archive-v0/Id/pkg/m.py")),
            abs("/c/uv/archive-v0/Id")
        );
        assert_eq!(human(512), "512 B");
        assert_eq!(human(12_900_000), "12.3 MiB");
    }
}
