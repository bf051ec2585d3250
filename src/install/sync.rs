//! `venvfs sync`, `install` and `uninstall` on a venv that is not mounted: work out which
//! wheels the venv should hold, read only their metadata, then change the venv's own files
//! in one transaction whose commit point is the atomic replacement of the manifest.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::progress::Progress;

use super::apply::{self, Planned};
use super::generated_layer;
use super::layout::Layout;
use super::txn::Txn;
use crate::finder::{self, Problem, Sources};
use crate::layer::generated::OwnView;
use crate::manifest::{manifest_path, Layer, Manifest};
use crate::name::PackageName;
use crate::pins::Pin;
use crate::tags::{TagRank, WheelFilename};

/// Something to install.
#[derive(Debug, Clone)]
pub enum Target {
    /// A `.whl` file or unpacked wheel directory named by its path.
    Wheel(PathBuf),
    /// `name==version`, to be found in the lock's paths, `--find-links`, the uv cache or
    /// the wheel store, else fetched.
    Pin(Pin),
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub find_links: Vec<PathBuf>,
    /// uv's caches to look in (`--cache-dir`, repeatable); empty: the user's own.
    pub cache_dirs: Vec<PathBuf>,
    /// Do not look in the uv cache.
    pub no_cache: bool,
    /// Refuse wheels whose sha256 cannot be checked against the pins.
    pub require_hashes: bool,
    /// Distributions sync leaves alone when pip installed them through the mount (the
    /// lock's editable projects).
    pub keep: Vec<PackageName>,
    /// Whether and where to fetch the wheels no local source has.
    pub fetch: crate::fetch::Settings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The venv holds exactly the targets afterwards.
    Sync,
    /// The targets are added (replacing other versions of the same distributions).
    Install,
}

/// What a command changed, for the uv-style summary.
#[derive(Debug, Default)]
pub struct Report {
    pub installed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
    pub elapsed: Duration,
    /// The venv's own files the change wrote or removed (venv-relative): what a mounted
    /// venv must look at again.
    pub touched: Vec<PathBuf>,
    /// Copies of layer files dropped from the venv's own directory (files, bytes).
    pub copies_dropped: (usize, u64),
}

impl Report {
    /// `Installed 2 packages in 12ms` and one ` + name==version` / ` - ...` line each.
    pub fn lines(&self) -> Vec<String> {
        let ms = self.elapsed.as_millis();
        let plural = |n: usize| if n == 1 { "package" } else { "packages" };
        let mut out = Vec::new();
        if self.installed.is_empty() && self.removed.is_empty() {
            out.push(format!(
                "Audited {} {} in {ms}ms",
                self.unchanged,
                plural(self.unchanged)
            ));
            return out;
        }
        if !self.removed.is_empty() {
            let n = self.removed.len();
            out.push(format!("Uninstalled {n} {} in {ms}ms", plural(n)));
        }
        if !self.installed.is_empty() {
            let n = self.installed.len();
            out.push(format!("Installed {n} {} in {ms}ms", plural(n)));
        }
        // by name, a removal before the install that replaces it, as uv prints them; the
        // same version removed and installed (a copy through the mount given back to its
        // layer) is one ` ~ ` line, uv's reinstall
        let name = |l: &String| l.split("==").next().unwrap_or(l).to_owned();
        let again = |l: &String| self.removed.contains(l) && self.installed.contains(l);
        let mut changes: Vec<(String, u8, String)> = self
            .removed
            .iter()
            .map(|l| match again(l) {
                true => (name(l), 0, format!(" ~ {l}")),
                false => (name(l), 0, format!(" - {l}")),
            })
            .chain(
                self.installed
                    .iter()
                    .filter(|l| !again(l))
                    .map(|l| (name(l), 1, format!(" + {l}"))),
            )
            .collect();
        changes.sort();
        out.extend(changes.into_iter().map(|(_, _, line)| line));
        let (files, bytes) = self.copies_dropped;
        if files > 0 {
            out.push(format!(
                "Dropped {files} copied {} ({:.1} MiB) that the layers serve",
                if files == 1 { "file" } else { "files" },
                bytes as f64 / (1 << 20) as f64
            ));
        }
        out
    }
}

type Error = Box<dyn std::error::Error>;

/// A wheel to install, with where it came from.
struct Resolved {
    source: PathBuf,
    from_path: bool,
    /// The pin it satisfies (None for a path target).
    pin: Option<Pin>,
}

/// Installs `targets` into the venv (`Mode::Sync`: and removes everything else). `root` is
/// where the venv's own directory is reached: the venv itself, or beneath its mount.
pub fn apply(
    venv: &Path,
    root: &Path,
    targets: &[Target],
    mode: Mode,
    opts: &Options,
) -> Result<Report, Error> {
    let started = Instant::now();
    let version = crate::venv::python_version(venv)?;
    let layout = Layout::new(&version);
    let venv = venv
        .canonicalize()
        .map_err(|e| format!("{}: {e}", venv.display()))?;
    let manifest_file = manifest_path(root);
    let mut manifest = Manifest::load(&manifest_file)?;
    let interpreter = crate::interpreter::of_venv(&venv)?;
    let supported = interpreter.tags();
    let rank = TagRank::new(&supported);

    let resolved = resolve(targets, opts, &venv, &rank, &supported, &version)?;
    // what the venv shows of the files installing generated: its own over its generated layer
    let view = OwnView::new(root, &manifest)?;

    // Plan what is new; read only metadata, write nothing yet.
    let progress = Progress::counting(resolved.len() as u64, "reading wheel metadata");
    let mut unchanged: Vec<Layer> = Vec::new();
    let mut todo: Vec<&Resolved> = Vec::new();
    for r in &resolved {
        let existing = manifest.layers.iter().find(|l| l.source == r.source);
        match existing.filter(|l| intact(|rel| view.is_file(rel), l, &layout)) {
            Some(l) => {
                progress.inc(1);
                unchanged.push(l.clone());
            }
            None => todo.push(r),
        }
    }
    // Reading metadata is mostly waiting on directory listings: a few threads overlap it.
    let plans = crate::parallel::map(&todo, |r| {
        let plan = apply::plan(&r.source, &venv, &version, r.from_path);
        progress.inc(1);
        plan
    });
    let mut planned: Vec<Planned> = Vec::with_capacity(plans.len());
    for (r, plan) in todo.iter().zip(plans) {
        let plan = plan?;
        if let Some(pin) = &r.pin {
            let same_name = plan.layer.package_name() == PackageName::new(&pin.name);
            let same_version = plan.layer.version.parse::<pep440_rs::Version>().ok()
                == pin.version.parse::<pep440_rs::Version>().ok();
            if !same_name || !same_version {
                return Err(format!(
                    "{}: it holds {} {}, not {} {} as its name says; remove it from the cache",
                    r.source.display(),
                    plan.layer.name,
                    plan.layer.version,
                    pin.name,
                    pin.version
                )
                .into());
            }
        }
        planned.push(plan);
    }
    progress.finish();
    check_unique(planned.iter().map(|p| &p.layer).chain(&unchanged))?;
    // A venv installed before the generated layer keeps what installing wrote as files of
    // its own: those of its unchanged distributions move into the generated layer where
    // they are what installing writes now (an edited one stays, and shadows it).
    let old_style: Vec<&Resolved> = resolved
        .iter()
        .filter(|r| {
            unchanged.iter().any(|l| {
                let record = record_rel(l, &layout);
                l.source == r.source
                    && l.installed
                    && root.join(&record).is_file()
                    && !view.generated().is_some_and(|g| g.contains(&record))
            })
        })
        .collect();
    let migrations: Vec<Planned> = crate::parallel::map(&old_style, |r| {
        apply::plan(&r.source, &venv, &version, r.from_path)
    })
    .into_iter()
    .filter_map(Result::ok)
    .collect();

    let staying = |l: &Layer| {
        unchanged.contains(l)
            || (mode == Mode::Install
                && !l.name.is_empty()
                && !planned
                    .iter()
                    .any(|p| p.layer.package_name() == l.package_name()))
    };
    let mut removed: Vec<Layer> = manifest
        .layers
        .iter()
        .filter(|l| !staying(l))
        .cloned()
        .collect();
    if mode == Mode::Sync {
        // what pip or uv installed through the mount lives only in the venv's own directory
        let known: Vec<&Layer> = planned
            .iter()
            .map(|p| &p.layer)
            .chain(&manifest.layers)
            .collect();
        removed.extend(
            installed_through_the_mount(root, &layout, &known)
                .into_iter()
                .filter(|l| !opts.keep.contains(&l.package_name())),
        );
    }

    let mut txn = Txn::begin(root)?;
    let mut copies_dropped = (0, 0);
    let mut generated = generated_layer::Change::from(view.generated())?;
    let changed = (|| -> Result<(), Error> {
        for l in &removed {
            apply::remove_generated(&mut txn, &view, root, l, &layout, &mut generated)?;
        }
        for m in &migrations {
            apply::migrate(&mut txn, root, &m.generated, &mut generated)?;
        }
        let mut whiteouts = apply::Whiteouts::default();
        for p in &planned {
            let (files, bytes) = apply::drop_copies(&mut txn, root, p)?;
            copies_dropped.0 += files;
            copies_dropped.1 += bytes;
            // (the generated files show from under the own directory now: its markers
            // must not hide them either)
            let shown: Vec<String> = p
                .destinations
                .iter()
                .cloned()
                .chain(p.generated.files.iter().map(|(rel, _, _)| rel.clone()))
                .collect();
            whiteouts.clear(&mut txn, root, &shown)?;
            apply::write(&mut txn, root, &p.generated, &mut generated)
                .map_err(|e| format!("writing into {}: {e}", venv.display()))?;
        }
        txn.sync()?;
        Ok(())
    })();
    if let Err(e) = changed {
        txn.rollback();
        return Err(format!("{e}\n  nothing was changed").into());
    }
    drop(view);
    let mut layers: Vec<Layer> = planned.iter().map(|p| p.layer.clone()).collect();
    match mode {
        Mode::Sync => {
            // the order of the targets, so the same file gives the same venv
            let order = |l: &Layer| {
                resolved
                    .iter()
                    .position(|r| r.source == l.source)
                    .unwrap_or(usize::MAX)
            };
            layers.extend(unchanged.iter().cloned());
            layers.sort_by_key(order);
        }
        Mode::Install => layers.extend(manifest.layers.iter().filter(|l| staying(l)).cloned()),
    }
    manifest.layers = layers;
    let touched = commit(txn, generated, &mut manifest, root, &layout)?;
    crate::venv::write_unmounted_guard(root)?;
    Ok(Report {
        installed: planned.iter().map(|p| label(&p.layer)).collect(),
        removed: removed.iter().map(label).collect(),
        unchanged: unchanged.len(),
        elapsed: started.elapsed(),
        touched: relative(root, touched),
        copies_dropped,
    })
}

/// Commits a change: writes its generated layer (durably), saves the manifest that names
/// it (the commit point), then drops what the transaction moved aside and the generated
/// layer it replaced. On failure nothing is changed. Returns the paths the transaction
/// touched.
fn commit(
    txn: Txn,
    generated: generated_layer::Change,
    manifest: &mut Manifest,
    root: &Path,
    layout: &Layout,
) -> Result<Vec<PathBuf>, Error> {
    let state_dir = root.join(crate::manifest::STATE_DIR);
    let staged = match generated.stage(&state_dir, manifest) {
        Ok(staged) => staged,
        Err(e) => {
            txn.rollback();
            return Err(format!(
                "writing the generated layer into {}: {e}\n  nothing was changed",
                state_dir.display()
            )
            .into());
        }
    };
    if let Err(e) = manifest.save(&manifest_path(root)) {
        staged.discard();
        txn.rollback();
        return Err(e.into());
    }
    staged.finish(&state_dir);
    Ok(txn.commit_touched(&keep_dirs(root, layout)))
}

/// `paths` relative to `root`.
fn relative(root: &Path, paths: Vec<PathBuf>) -> Vec<PathBuf> {
    paths
        .into_iter()
        .filter_map(|p| p.strip_prefix(root).ok().map(Path::to_owned))
        .collect()
}

/// Whether the venv already holds exactly what `apply` would make it hold: then a
/// mounted venv need not be unmounted. Works through the mount; `manifest_file` is where
/// the manifest can be read (a mounted venv hides its `.venvfs`). Returns the number of
/// distributions audited.
pub fn up_to_date(
    venv: &Path,
    manifest_file: &Path,
    targets: &[Target],
    mode: Mode,
    opts: &Options,
) -> Result<Option<Report>, Error> {
    let started = Instant::now();
    let version = crate::venv::python_version(venv)?;
    let layout = Layout::new(&version);
    let venv = venv
        .canonicalize()
        .map_err(|e| format!("{}: {e}", venv.display()))?;
    let manifest = Manifest::load(manifest_file)?;
    let interpreter = crate::interpreter::of_venv(&venv)?;
    let supported = interpreter.tags();
    let rank = TagRank::new(&supported);
    // (a missing wheel is reported now, before a mounted venv is unmounted for nothing)
    let resolved = resolve(targets, opts, &venv, &rank, &supported, &version)?;
    let all_current = resolved.iter().all(|r| {
        manifest
            .layers
            .iter()
            .any(|l| l.source == r.source && intact(|rel| venv.join(rel).is_file(), l, &layout))
    });
    if !all_current {
        return Ok(None);
    }
    if mode == Mode::Sync {
        let extra_layer = manifest
            .layers
            .iter()
            .any(|l| !resolved.iter().any(|r| r.source == l.source));
        let known: Vec<&Layer> = manifest.layers.iter().collect();
        let extra_installed = installed_through_the_mount(&venv, &layout, &known)
            .iter()
            .any(|l| !opts.keep.contains(&l.package_name()));
        if extra_layer || extra_installed {
            return Ok(None);
        }
    }
    Ok(Some(Report {
        unchanged: resolved.len(),
        elapsed: started.elapsed(),
        ..Default::default()
    }))
}

/// Uninstalls distributions by name from the venv (`root` as for [`apply`]).
pub fn uninstall(venv: &Path, root: &Path, names: &[String]) -> Result<Report, Error> {
    let started = Instant::now();
    let version = crate::venv::python_version(venv)?;
    let layout = Layout::new(&version);
    let venv = venv
        .canonicalize()
        .map_err(|e| format!("{}: {e}", venv.display()))?;
    let manifest_file = manifest_path(root);
    let mut manifest = Manifest::load(&manifest_file)?;
    let mut chosen = Vec::new();
    for name in names {
        let wanted = PackageName::new(name);
        let layer = manifest
            .layers
            .iter()
            .find(|l| l.package_name() == wanted)
            .ok_or_else(|| {
                format!(
                    "{name} is not installed in {} (`venvfs layer list` shows what is)",
                    venv.display()
                )
            })?;
        chosen.push(layer.clone());
    }
    let view = OwnView::new(root, &manifest)?;
    let mut generated = generated_layer::Change::from(view.generated())?;
    let mut txn = Txn::begin(root)?;
    for layer in &chosen {
        if let Err(e) =
            apply::remove_generated(&mut txn, &view, root, layer, &layout, &mut generated)
        {
            txn.rollback();
            return Err(format!("{e}\n  nothing was changed").into());
        }
    }
    drop(view);
    manifest.layers.retain(|l| !chosen.contains(l));
    if let Err(e) = txn.sync() {
        txn.rollback();
        return Err(e.into());
    }
    let touched = commit(txn, generated, &mut manifest, root, &layout)?;
    Ok(Report {
        removed: chosen.iter().map(label).collect(),
        elapsed: started.elapsed(),
        touched: relative(root, touched),
        ..Default::default()
    })
}

/// Distributions whose `.dist-info` is in the venv's own site-packages (put there by pip
/// or uv through the mount) and is not one of `layers`, as layer-less stand-ins that
/// [`apply::remove_generated`] removes by their RECORD.
fn installed_through_the_mount(venv: &Path, layout: &Layout, layers: &[&Layer]) -> Vec<Layer> {
    let site = venv.join(layout.site_packages());
    let ours: std::collections::HashSet<String> = layers
        .iter()
        .map(|l| format!("{}-{}.dist-info", l.name, l.version))
        .collect();
    let Ok(entries) = std::fs::read_dir(&site) else {
        return Vec::new();
    };
    let mut found: Vec<Layer> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !ours.contains(n))
        .filter_map(|n| {
            let (name, ver) = n.strip_suffix(".dist-info")?.split_once('-')?;
            site.join(&n).join("RECORD").is_file().then(|| Layer {
                source: PathBuf::new(),
                name: name.to_owned(),
                version: ver.to_owned(),
                map: Vec::new(),
                installed: false,
            })
        })
        .collect();
    found.sort_by_key(Layer::package_name);
    found
}

/// Whether an installed layer is still whole: installing writes its RECORD (into the
/// generated layer; before it, into the venv's own directory), so one the venv does not
/// show (`shows`: whether it shows a file at a venv-relative path) means it was uninstalled
/// (or taken apart) through the mount, by pip or uv, and must be installed again.
fn intact(shows: impl Fn(&str) -> bool, l: &Layer, layout: &Layout) -> bool {
    shows(&record_rel(l, layout))
}

/// The venv-relative path of the RECORD installing `l` writes.
fn record_rel(l: &Layer, layout: &Layout) -> String {
    format!(
        "{}/{}-{}.dist-info/RECORD",
        layout.site_packages(),
        l.name,
        l.version
    )
}

fn label(l: &Layer) -> String {
    format!("{}=={}", l.package_name(), l.version)
}

/// Directories of a venv that stay even when a change empties them.
pub fn keep_dirs(venv: &Path, layout: &Layout) -> Vec<PathBuf> {
    vec![
        venv.to_owned(),
        venv.join(&layout.scheme.scripts),
        venv.join(layout.site_packages()),
    ]
}

fn check_unique<'a>(layers: impl Iterator<Item = &'a Layer>) -> Result<(), Error> {
    let mut seen = std::collections::HashMap::new();
    for l in layers {
        if let Some(other) = seen.insert(l.package_name(), l) {
            return Err(format!(
                "{} is given twice ({} and {}); name one version",
                l.name,
                other.source.display(),
                l.source.display()
            )
            .into());
        }
    }
    Ok(())
}

/// Finds a wheel for every target, fetching those no local source has (unless offline),
/// or lists every one that has none.
fn resolve(
    targets: &[Target],
    opts: &Options,
    venv: &Path,
    rank: &TagRank,
    supported: &[String],
    version: &str,
) -> Result<Vec<Resolved>, Error> {
    let needs_sources = targets.iter().any(|t| matches!(t, Target::Pin(_)));
    let caches = if opts.no_cache || !needs_sources {
        Vec::new()
    } else {
        finder::uvcache::locate_all(&opts.cache_dirs)
    };
    let store = crate::fetch::Store::locate();
    let mut sources = if needs_sources {
        Some(Sources::new(&opts.find_links, &caches, store.as_ref())?)
    } else {
        None
    };
    let mut out: Vec<Option<Resolved>> = Vec::new();
    // pins no local source has: (place in `out`, pin, wheels found for other interpreters)
    let mut absent: Vec<(usize, &Pin, Vec<String>)> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for t in targets {
        match t {
            Target::Wheel(path) => out.push(Some(path_target(path, rank, supported, version)?)),
            Target::Pin(pin) => {
                let sources = sources.as_ref().expect("made when there are pins");
                match finder::choose(pin, sources, rank, opts.require_hashes) {
                    Ok(c) => out.push(Some(Resolved {
                        source: c.candidate.path,
                        from_path: false,
                        pin: Some(pin.clone()),
                    })),
                    Err(Problem::NotFound { incompatible }) => {
                        absent.push((out.len(), pin, incompatible));
                        out.push(None);
                    }
                    Err(Problem::HashMismatch {
                        path,
                        expected,
                        actual,
                    }) => refused.push(format!(
                        "  {}=={}  ({}): {} has sha256 {actual}, but the pin says {}; it was refused. Remove or replace that file",
                        pin.name,
                        pin.version,
                        pin.origin,
                        path.display(),
                        expected.join(" or ")
                    )),
                    Err(Problem::Unverifiable { found }) => refused.push(format!(
                        "  {}=={}  ({}): only {found} was found, which has no wheel file to check the pinned sha256 against (--require-hashes); put the wheel in a --find-links directory",
                        pin.name, pin.version, pin.origin
                    )),
                }
            }
        }
    }
    // what pip downloaded (its cache) is looked for next: copied into the wheel store
    let pip = (!opts.no_cache && !absent.is_empty())
        .then(|| finder::pipcache::locate(Some(venv)))
        .flatten();
    if let (Some(pip), Some(sources)) = (pip, sources.as_mut()) {
        let wheels = finder::pipcache::list(&pip);
        sources.pip_cache = Some((pip, wheels.len()));
        let mut still = Vec::new();
        for (slot, pin, incompatible) in absent {
            let name = crate::name::PackageName::new(&pin.name);
            let kept = finder::pipcache::into_store(&wheels, &name, &pin.version)?;
            let found = !kept.is_empty();
            sources.store.extend(kept);
            match found.then(|| finder::choose(pin, sources, rank, opts.require_hashes)) {
                Some(Ok(c)) => {
                    out[slot] = Some(Resolved {
                        source: c.candidate.path,
                        from_path: false,
                        pin: Some(pin.clone()),
                    })
                }
                _ => still.push((slot, pin, incompatible)),
            }
        }
        absent = still;
    }
    // what no local source has is fetched, unless something is wrong already
    let mut missing: Vec<String> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    let fetching = !absent.is_empty() && refused.is_empty() && !opts.fetch.offline;
    let outcomes = if fetching {
        let pins: Vec<&Pin> = absent.iter().map(|(_, p, _)| *p).collect();
        crate::fetch::fetch_all(&pins, &opts.fetch, rank, opts.require_hashes)?
    } else {
        Vec::new()
    };
    let mut outcomes = outcomes.into_iter();
    for (slot, pin, incompatible) in &absent {
        let label = format!("  {}=={}  ({})", pin.name, pin.version, pin.origin);
        let mut line = label.clone();
        if !incompatible.is_empty() {
            line.push_str(&format!(
                "\n      found, but built for other interpreters or platforms: {}",
                incompatible.join(", ")
            ));
        }
        match outcomes.next() {
            Some(crate::fetch::Outcome::Fetched(path)) => {
                out[*slot] = Some(Resolved {
                    source: path,
                    from_path: false,
                    pin: Some((*pin).clone()),
                })
            }
            Some(crate::fetch::Outcome::Unavailable(why)) => {
                missing.push(format!("{line}\n      not fetched: {why}"))
            }
            Some(crate::fetch::Outcome::Failed(why)) => failed.push(format!("{label}: {why}")),
            None => missing.push(line),
        }
    }
    let unresolved = Unresolved {
        missing,
        refused,
        failed,
    };
    if unresolved.is_empty() {
        return Ok(out.into_iter().flatten().collect());
    }
    let sources = sources.as_ref().expect("made when there are pins");
    Err(unresolved
        .message(targets, sources, opts.fetch.offline, version, supported)
        .into())
}

/// The pins left without a wheel, one message line (or a few) each.
struct Unresolved {
    /// no source has them, and they were not fetched
    missing: Vec<String>,
    /// a local file of theirs is wrong
    refused: Vec<String>,
    /// fetching them went wrong
    failed: Vec<String>,
}

impl Unresolved {
    fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.refused.is_empty() && self.failed.is_empty()
    }

    /// All of them in one message, with what would get the missing ones.
    fn message(
        &self,
        targets: &[Target],
        sources: &Sources,
        offline: bool,
        version: &str,
        supported: &[String],
    ) -> String {
        let Unresolved {
            missing,
            refused,
            failed,
        } = self;
        let mut msg = String::new();
        if !failed.is_empty() {
            msg.push_str(&format!(
                "{} wheel(s) could not be fetched:\n{}\n",
                failed.len(),
                failed.join("\n")
            ));
        }
        if !refused.is_empty() {
            msg.push_str(&format!(
                "{} wheel(s) refused:\n{}\n",
                refused.len(),
                refused.join("\n")
            ));
        }
        if !missing.is_empty() {
            let pins: Vec<String> = targets
                .iter()
                .filter_map(|t| match t {
                    Target::Pin(p) => Some(format!("{}=={}", p.name, p.version)),
                    Target::Wheel(_) => None,
                })
                .filter(|p| missing.iter().any(|m| m.starts_with(&format!("  {p}  "))))
                .collect();
            let list = pins.join(" ");
            let offline = if offline {
                " (--offline: nothing was fetched; without it venvfs fetches them from the index)"
            } else {
                ""
            };
            msg.push_str(&format!(
                "no usable wheel for {} of {} requirements (looked in {}){offline}:\n{}\n\
                 this venv's Python {version} accepts these tags, best first: {}\n\
                 to get them another way, either fill uv's cache:\n    \
                 uv pip install --no-deps --python {version} --target \"$(mktemp -d)\" {list}\n\
                 or make a wheelhouse and pass it with --find-links:\n    \
                 pip download --no-deps --only-binary=:all: --python-version {version} -d wheels {list}",
                missing.len(),
                targets.len(),
                sources.describe(),
                missing.join("\n"),
                summarize_tags(supported),
            ));
        }
        msg.trim_end().to_owned()
    }
}

/// A `.whl` file or unpacked wheel named by its path, checked against the interpreter.
fn path_target(
    path: &Path,
    rank: &TagRank,
    supported: &[String],
    version: &str,
) -> Result<Resolved, Error> {
    let source = path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if source.is_file() {
        let file = source.file_name().unwrap_or_default().to_string_lossy();
        match WheelFilename::parse(&file) {
            Some(w) if rank.rank(&w.tags).is_none() => {
                return Err(format!(
                    "{}: its tags ({}) do not fit this venv's Python {version}, which accepts {}",
                    source.display(),
                    w.tags.join(", "),
                    summarize_tags(supported)
                )
                .into())
            }
            Some(_) => {}
            None => {
                return Err(format!(
                    "{}: not a wheel file name (NAME-VERSION-PY-ABI-PLATFORM.whl)",
                    source.display()
                )
                .into())
            }
        }
    }
    Ok(Resolved {
        source,
        from_path: true,
        pin: None,
    })
}

/// The first few tags and the count, for messages.
fn summarize_tags(tags: &[String]) -> String {
    const SHOWN: usize = 4;
    let mut s = tags
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if tags.len() > SHOWN {
        s.push_str(&format!(
            ", ..., {} ({} in all)",
            tags.last().map(String::as_str).unwrap_or(""),
            tags.len()
        ));
    }
    s
}

#[cfg(test)]
mod report_tests {
    use super::*;

    #[test]
    fn the_same_version_removed_and_installed_is_one_reinstall_line() {
        let r = Report {
            installed: vec!["b==2".into(), "c==1".into()],
            removed: vec!["a==1".into(), "b==1".into(), "c==1".into()],
            ..Report::default()
        };
        let lines = r.lines();
        assert_eq!(
            &lines[2..],
            [" - a==1", " - b==1", " + b==2", " ~ c==1"].map(String::from)
        );
    }
}
