//! Layer sources that vanish while mounted: `uv cache clean NAME` or `uv cache prune` remove
//! the cache entries a mounted venv's layers are, and the daemon can no longer read their
//! files. Left in view, a program would find the package and fail on its files: an
//! `OSError` (EIO) reading a module, a `SIGBUS` in the `dlopen` of an extension module, and
//! every later fold or live change would fail to build the layers. So the daemon looks at
//! the layers' sources every [`EVERY`] and takes the change live (see `overlay/reload.rs`)
//! when one is gone: the venv then shows the rest, as if that layer were not installed
//! (Python's import finds no module, which programs handle), and shows it again if it comes
//! back. The manifest keeps the layer: at the next mount a re-downloaded entry of the same
//! wheel heals it, or the mount says how to restore it (`install/heal.rs`), and `venvfs
//! status` says so meanwhile. A fold or a reinstall of the same distribution replaces it
//! (`uv sync --reinstall-package NAME`).
//!
//! Only sources on local filesystems are looked at: on a network filesystem each look is a
//! request to the server, from every node, every few seconds; a layer gone there shows until
//! the next mount.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::control::Request;
use crate::manifest::source_gone;
use crate::overlay::Overlay;

/// How often the layers' sources are looked at.
const EVERY: Duration = Duration::from_secs(2);

/// Watches the served layers' sources, asking `take_live` to reload (which shows only the
/// layers whose source is there) when one goes or comes back.
pub(super) fn watch(
    overlay: Arc<Overlay>,
    take_live: impl Fn(Request) -> Result<String, String> + Send + 'static,
) {
    let spawned = std::thread::Builder::new()
        .name("sources".into())
        .spawn(move || {
            let mut local: HashMap<PathBuf, bool> = HashMap::new();
            // (where each source is, found out now, while mounting: on a network filesystem
            // finding out asks the server, and a warm import later must ask it nothing)
            find_out(&mut local, overlay.lower().layer_origins());
            // (sources found gone, so not served: looked at for coming back)
            let mut hidden: HashSet<PathBuf> = HashSet::new();
            loop {
                std::thread::sleep(EVERY);
                let served = overlay.lower().layer_origins().to_vec();
                // (layers a live change added)
                find_out(&mut local, &served);
                let gone: Vec<PathBuf> = served
                    .into_iter()
                    .filter(|p| local.get(p) == Some(&true) && source_gone(p))
                    .collect();
                let back: Vec<PathBuf> =
                    hidden.iter().filter(|p| !source_gone(p)).cloned().collect();
                if gone.is_empty() && back.is_empty() {
                    continue;
                }
                match take_live(Request::Reload {
                    touched: Vec::new(),
                }) {
                    Ok(_) => {
                        for p in &back {
                            tracing::info!("layer source {} is back: shown again", p.display());
                            hidden.remove(p);
                        }
                        hidden.extend(gone);
                    }
                    Err(e) => tracing::warn!("cannot take a change of the layers' sources: {e}"),
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch the layers' sources: {e}");
    }
}

/// Records in `local` whether each source of `served` it does not know yet is on a local
/// filesystem (one read of the mount table for them all).
fn find_out(local: &mut HashMap<PathBuf, bool>, served: &[PathBuf]) {
    let new: Vec<&PathBuf> = served.iter().filter(|p| !local.contains_key(*p)).collect();
    if new.is_empty() {
        return;
    }
    let found = crate::doctor::on_local_filesystems(new.iter().map(|p| p.as_path()));
    local.extend(new.into_iter().cloned().zip(found));
}
