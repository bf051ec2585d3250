//! Serving a mounted venv until Ctrl-C or `venvfs umount`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::cli::MountArgs;
use crate::manifest::{manifest_path, Manifest};
use crate::mount_aside;
use crate::overlay::{Overlay, OverlayConfig};

use super::CmdResult;

/// What the daemon prints on stdout once the venv is mounted (`venvfs mount` waits for it).
pub(super) const READY: &str = "venvfs: mounted";

/// Moves the venv's content aside, serves it at the venv's path, and puts it back once
/// unmounted (whatever ended the mount).
pub(super) fn serve(venv: &Path, args: &MountArgs) -> CmdResult {
    let own = mount_aside::move_aside(venv)
        .map_err(|e| format!("{}: cannot make it a mount point: {e}", venv.display()))?;
    let served = serve_from(venv, &own, args);
    let restored = mount_aside::restore(venv);
    served?;
    restored.map_err(|e| format!("{}: after unmounting: {e}", venv.display()))?;
    Ok(())
}

fn serve_from(venv: &Path, own: &Path, args: &MountArgs) -> CmdResult {
    let manifest = Manifest::load(&manifest_path(own))?;
    let mut cfg = OverlayConfig {
        memory_budget: args.memory_cache_mib << 20,
        portable_upper: true,
        rules: crate::rules::Rules::windows(),
        ..OverlayConfig::default()
    };
    if let Some(d) = &args.spill_dir {
        cfg.spill_dir = d.clone();
    }
    let overlay = Overlay::new(own, &manifest, cfg)?;

    // Ctrl-C (and a console closing) unmounts; the mount then ends as `venvfs umount` ends it
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, done, point) = (Arc::clone(&stop), Arc::clone(&done), venv.to_owned());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if stop.swap(false, Ordering::Relaxed) {
                    tracing::info!("unmounting {}", point.display());
                    let _ = venvfs_dokan::unmount(&point);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let served = venvfs_dokan::serve(overlay, venv, || {
        if args.daemon_child {
            println!("{READY}");
        } else {
            eprintln!("{} mounted; Ctrl-C unmounts", venv.display());
        }
    });
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    Ok(served?)
}
