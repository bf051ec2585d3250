//! Healing layers whose uv cache entry was pruned and made again.
//!
//! A layer from uv's cache names an unpacked wheel by uv's random id
//! (`CACHE/archive-v0/<id>/`). `uv cache clean NAME` (or `uv cache prune`) removes it, and the
//! next `uv pip install` of the same wheel unpacks it again under a *new* id, so the old path
//! stays missing and the venv cannot be mounted. Before a mount, each missing layer of a uv
//! cache is looked for again in that cache: an entry of the same distribution and version
//! whose RECORD agrees with the one installing wrote into the venv (the same files with the
//! same hashes: the same wheel) takes its place in the manifest. Nothing is guessed: without
//! the installed RECORD, or with any file different, the layer stays missing and the mount
//! says how to restore it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::layout::Layout;
use super::record::parse_record;
use crate::finder::uvcache::UvCache;
use crate::layer::generated::OwnView;
use crate::manifest::{Layer, Manifest};
use crate::name::PackageName;

/// Points every missing uv-cache layer of the (unmounted) venv at a re-created entry of the
/// same wheel, if its cache has one, in `manifest` (the caller saves it when anything was
/// healed). Returns what was healed, as `name==version: old -> new` lines.
pub fn heal_pruned_layers(
    venv: &Path,
    manifest: &mut Manifest,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut caches: HashMap<PathBuf, UvCache> = HashMap::new();
    let mut healed = Vec::new();
    let mut layout = None;
    // (the installed RECORDs are in the generated layer, or for a venv installed before it,
    // in the own directory)
    let generated = manifest
        .generated_path(&crate::manifest::manifest_path(venv))
        .filter(|_| manifest.layers.iter().any(|l| !l.source.exists()))
        .and_then(|p| crate::layer::generated::GeneratedLayer::open(&p).ok());
    let view = OwnView::with(venv, generated);
    for layer in &mut manifest.layers {
        if layer.source.exists() {
            continue;
        }
        let Some(root) = layer
            .source
            .parent()
            .filter(|p| p.ends_with("archive-v0"))
            .and_then(Path::parent)
        else {
            continue;
        };
        let layout = match &layout {
            Some(l) => l,
            None => layout.insert(Layout::new(&crate::venv::python_version(venv)?)),
        };
        let Some(installed) = installed_rows(&view, layout, layer) else {
            continue;
        };
        let cache = caches
            .entry(root.to_owned())
            .or_insert_with(|| UvCache::open(root));
        let wanted = layer.package_name();
        let found = cache.entries.iter().find(|e| {
            PackageName::new(&e.name) == wanted
                && crate::finder::same_version(&e.version, &layer.version)
                && same_wheel(&cache.path_of(e), &installed)
        });
        if let Some(e) = found {
            let new = cache.path_of(e);
            healed.push(format!(
                "{}: {} -> {}",
                layer.label(),
                layer.source.display(),
                new.display()
            ));
            layer.source = new;
        }
    }
    Ok(healed)
}

/// The (path, hash) rows of the RECORD installing `layer` wrote, if the venv shows it.
fn installed_rows(
    view: &OwnView,
    layout: &Layout,
    layer: &Layer,
) -> Option<HashMap<String, String>> {
    let record = format!(
        "{}/{}-{}.dist-info/RECORD",
        layout.site_packages(),
        layer.name,
        layer.version
    );
    let text = String::from_utf8(view.read(&record).ok()?).ok()?;
    let rows = parse_record(&text).ok()?;
    Some(
        rows.into_iter()
            .filter_map(|r| Some((r.path, r.hash?)))
            .collect(),
    )
}

/// Whether the unpacked wheel `dir` is the one whose installed RECORD rows are `installed`:
/// every file of its own RECORD (but its `.data` files, which installing may rewrite) is
/// listed there with the same hash.
fn same_wheel(dir: &Path, installed: &HashMap<String, String>) -> bool {
    let Some(dist) = std::fs::read_dir(dir).ok().and_then(|rd| {
        rd.flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "dist-info"))
    }) else {
        return false;
    };
    let Ok(text) = std::fs::read_to_string(dist.join("RECORD")) else {
        return false;
    };
    let Ok(rows) = parse_record(&text) else {
        return false;
    };
    let data = dist
        .file_stem()
        .map(|s| format!("{}.data/", s.to_string_lossy()))
        .unwrap_or_default();
    let mut compared = 0;
    for row in rows {
        let Some(hash) = row.hash else { continue };
        if row.path.starts_with(&data) {
            continue;
        }
        if installed.get(&row.path) != Some(&hash) {
            return false;
        }
        compared += 1;
    }
    compared > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, text: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn same_files_same_hashes_is_the_same_wheel() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("new-id");
        write(
            &entry.join("six-1.17.0.dist-info/RECORD"),
            "six.py,sha256=abc,10\nsix-1.17.0.dist-info/RECORD,,\nsix-1.17.0.data/scripts/x,sha256=zzz,1\n",
        );
        let installed: HashMap<String, String> = [("six.py".to_owned(), "sha256=abc".to_owned())]
            .into_iter()
            .collect();
        assert!(same_wheel(&entry, &installed));
        let other: HashMap<String, String> = [("six.py".to_owned(), "sha256=xyz".to_owned())]
            .into_iter()
            .collect();
        assert!(!same_wheel(&entry, &other), "another build of the file");
        assert!(!same_wheel(&dir.path().join("absent"), &installed));
    }
}
