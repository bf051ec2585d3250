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
use crate::upper_format::{whiteout_name, OPAQUE};

/// Drops from the manifest the layers whose distribution was uninstalled while the venv
/// was not mounted, saying which.
pub(super) fn drop_uninstalled(venv: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let path = manifest_path(venv);
    let mut manifest = Manifest::load(&path)?;
    let layout = Layout::new(&crate::venv::python_version(venv)?);
    let (gone, kept): (Vec<Layer>, Vec<Layer>) = manifest
        .layers
        .into_iter()
        .partition(|l| l.installed && uninstalled_unmounted(venv, l, &layout));
    if gone.is_empty() {
        return Ok(());
    }
    manifest.layers = kept;
    manifest.save(&path)?;
    for l in &gone {
        eprintln!(
            "venvfs: {} was uninstalled from {} while it was not mounted (its RECORD is gone): its layer is dropped",
            l.label(),
            venv.display()
        );
    }
    Ok(())
}

/// Whether the RECORD that installing `l` wrote is gone from the venv's own directory,
/// and not through the mount (which leaves a whiteout or an opaque directory in its way).
fn uninstalled_unmounted(venv: &Path, l: &Layer, layout: &Layout) -> bool {
    let record = format!(
        "{}/{}-{}.dist-info/RECORD",
        layout.site_packages(),
        l.name,
        l.version
    );
    !venv.join(&record).exists() && !removed_through_mount(venv, &record)
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
}
