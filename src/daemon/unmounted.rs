//! What uv or pip changed in a venv while it was not mounted.
//!
//! Unmounted, a venvfs venv shows them only its own files: for a distribution venvfs
//! installed, the `.dist-info` files an installer generates (RECORD among them), never the
//! layer's. Uninstalling it there removes those files and nothing else, so at the next
//! mount its layer would show again, RECORD and all (the wheel's own), as if installed.
//! That is detectable cheaply: the RECORD `install` wrote is gone, and no whiteout says it
//! was removed through the mount. Such a layer is dropped at mount, which honours what
//! uv or pip did (`uv sync` that removed or replaced a version, `pip uninstall`).
//! What they installed there is in the venv's own directory already and shows as it is.

use std::path::Path;

use crate::install::layout::Layout;
use crate::manifest::{manifest_path, Layer, Manifest};
use crate::upper_format::{classify, whiteout_name, EntryName, OPAQUE};

/// Drops from the manifest the layers whose distribution was uninstalled while the venv
/// was not mounted, saying which.
pub(super) fn drop_uninstalled(
    venv: &Path,
    manifest: &mut Manifest,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let layout = Layout::new(&crate::venv::python_version(venv)?);
    // (what installing wrote is in the generated layer, which uv and pip do not see)
    let generated = crate::layer::generated::GeneratedLayer::of(manifest, &manifest_path(venv))?;
    let mut notes = Vec::new();
    manifest.layers.retain(|l| {
        if !l.installed {
            return true;
        }
        // (nothing of it shows, and its cache entry may be gone by now, `uv cache clean`:
        // that must not keep the venv from mounting)
        if layout.uninstalled_through_mount(venv, l) {
            tracing::info!("{}: uninstalled through the mount: its layer is dropped", l.label());
            return false;
        }
        if uninstalled_unmounted(venv, generated.as_ref(), l, &layout) {
            notes.push(format!(
                "venvfs: {} was uninstalled from {} while it was not mounted (its RECORD is gone): its layer is dropped",
                l.label(),
                venv.display()
            ));
            return false;
        }
        true
    });
    Ok(notes)
}

/// What `venvfs mount` (and `materialize`) do to an unmounted venv's layers first, with one
/// read of the manifest (a venv of 1,000 layers has a manifest of 600 KB): layers whose
/// distribution was uninstalled while unmounted are dropped, layers whose uv cache entry
/// was pruned and made again are healed. Returns the manifest as saved and what to tell
/// the user.
pub(super) fn settle_layers(
    venv: &Path,
) -> Result<(Manifest, Vec<String>), Box<dyn std::error::Error>> {
    let path = manifest_path(venv);
    let mut manifest = Manifest::load(&path)?;
    let layers = manifest.layers.len();
    let mut notes = drop_uninstalled(venv, &mut manifest)?;
    notes.extend(clear_emptied_dirs(venv, &manifest)?);
    let healed = crate::install::heal::heal_pruned_layers(venv, &mut manifest)?;
    if manifest.layers.len() != layers || !healed.is_empty() {
        manifest.save(&path)?;
    }
    notes.extend(
        healed
            .iter()
            .map(|l| format!("healed layer {l} (its uv cache entry was made again)")),
    );
    Ok((manifest, notes))
}

/// Directories of the venv's own site-packages that hold nothing but venvfs's markers,
/// one of them an opaque one: what uv or pip leave when, while the venv is not mounted,
/// they uninstall a distribution that was installed through the mount over one removed
/// there. The directory was made again (opaque), and the marker is not in its RECORD, so
/// to them it is not empty and stays. Served, it would show empty: Python imports an empty
/// package directory as a namespace package, and an empty `.dist-info` is a distribution
/// without metadata. Each goes, and where a layer served has its name, a whiteout takes its
/// place (written first), so that nothing the directory hid comes back.
fn clear_emptied_dirs(
    venv: &Path,
    manifest: &Manifest,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let layout = Layout::new(&crate::venv::python_version(venv)?);
    let site = Path::new(layout.site_packages());
    let emptied: Vec<std::ffi::OsString> = std::fs::read_dir(venv.join(site))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| classify(&e.file_name()) == EntryName::Entry)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| markers_only(&e.path()) == Some(true))
        .map(|e| e.file_name())
        .collect();
    if emptied.is_empty() {
        return Ok(Vec::new());
    }
    // (a layer whose cache entry is gone shows nothing: see daemon/sources.rs)
    let shown = manifest.clone().split_gone().0;
    let lower =
        crate::lower::LowerTree::build(&shown, &manifest_path(venv), crate::lower::native_names())?;
    let mut notes = Vec::new();
    for name in emptied {
        let rel = site.join(&name);
        let at = venv.join(&rel);
        if lower
            .lookup_path(rel.as_os_str().as_encoded_bytes())
            .is_some()
        {
            let whiteout = at.with_file_name(whiteout_name(&name));
            crate::fsutil::write_atomic(&whiteout, b"", 0o644)
                .map_err(|e| format!("{}: {e}", whiteout.display()))?;
        }
        std::fs::remove_dir_all(&at).map_err(|e| format!("{}: {e}", at.display()))?;
        notes.push(format!(
            "venvfs: removed {}, which uv or pip emptied while {} was not mounted (only \
             venvfs's markers were left in it)",
            rel.display(),
            venv.display()
        ));
    }
    Ok(notes)
}

/// Whether directory `dir` holds only markers (whiteouts, opaque markers and directories
/// holding only those), one of them an opaque marker: `Some(false)` when it holds markers
/// only but none opaque, None when it holds anything else.
fn markers_only(dir: &Path) -> Option<bool> {
    let mut opaque = false;
    for e in std::fs::read_dir(dir).ok()? {
        let e = e.ok()?;
        match classify(&e.file_name()) {
            EntryName::Opaque => opaque = true,
            EntryName::Whiteout(_) => {}
            EntryName::Redirect => return None,
            EntryName::Entry => {
                if !e.file_type().ok()?.is_dir() {
                    return None;
                }
                opaque |= markers_only(&e.path())?;
            }
        }
    }
    Some(opaque)
}

/// Whether the RECORD that installing `l` wrote is gone from the venv's own directory
/// (and its generated layer: uv and pip cannot see, so cannot remove, the RECORD there),
/// and not through the mount (which leaves a whiteout or an opaque directory in its way).
fn uninstalled_unmounted(
    venv: &Path,
    generated: Option<&crate::layer::generated::GeneratedLayer>,
    l: &Layer,
    layout: &Layout,
) -> bool {
    let record = format!(
        "{}/{}-{}.dist-info/RECORD",
        layout.site_packages(),
        l.name,
        l.version
    );
    !venv.join(&record).exists()
        && !generated.is_some_and(|g| g.contains(&record))
        && !removed_through_mount(venv, &record)
}

/// Whether the venv path `rel` (or a directory above it) was removed through the mount.
fn removed_through_mount(venv: &Path, rel: &str) -> bool {
    let mut dir = venv.to_owned();
    for part in rel.split('/') {
        if dir
            .join(whiteout_name(part.as_ref()))
            .symlink_metadata()
            .is_ok()
        {
            return true;
        }
        dir.push(part);
        if !dir.is_dir() {
            return false;
        }
        if dir.join(OPAQUE).symlink_metadata().is_ok() {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = "lib/python3.11/site-packages";

    #[test]
    fn a_record_removed_through_the_mount_is_told_from_one_removed_unmounted() {
        let venv = tempfile::tempdir().unwrap();
        let v = venv.path();
        let record = format!("{SITE}/six-1.0.dist-info/RECORD");
        let site = v.join(SITE);
        std::fs::create_dir_all(site.join("six-1.0.dist-info")).unwrap();
        assert!(!removed_through_mount(v, &record), "simply gone");
        std::fs::write(site.join("six-1.0.dist-info/.wh.RECORD"), b"").unwrap();
        assert!(removed_through_mount(v, &record), "a whiteout of it");
        std::fs::remove_dir_all(site.join("six-1.0.dist-info")).unwrap();
        std::fs::write(site.join(".wh.six-1.0.dist-info"), b"").unwrap();
        assert!(
            removed_through_mount(v, &record),
            "a whiteout of its directory"
        );
        std::fs::remove_file(site.join(".wh.six-1.0.dist-info")).unwrap();
        std::fs::write(site.join(OPAQUE), b"").unwrap();
        assert!(
            removed_through_mount(v, &record),
            "remade through the mount"
        );
    }

    #[test]
    fn a_directory_of_markers_only_is_told_from_one_with_content() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("pkg");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join(".wh.mod.py"), b"").unwrap();
        assert_eq!(markers_only(&d), Some(false), "whiteouts only: left alone");
        std::fs::write(d.join("sub").join(OPAQUE), b"").unwrap();
        assert_eq!(markers_only(&d), Some(true), "an opaque one below");
        std::fs::write(d.join("sub/x.py"), b"").unwrap();
        assert_eq!(markers_only(&d), None, "a file");
        std::fs::remove_file(d.join("sub/x.py")).unwrap();
        std::fs::write(d.join(crate::upper_format::REDIRECT), b"").unwrap();
        assert_eq!(markers_only(&d), None, "a renamed directory");
    }
}
