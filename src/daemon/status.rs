//! `venvfs status`: the mounted venvs, the distributions they show and where those come
//! from (the same inventory as `venvfs list`), and the upper size.

use std::path::Path;

use super::requests::read_requests;
use super::CmdResult;
use crate::cli::StatusArgs;
use crate::inventory::{self, human};
use crate::registry;

pub fn status(args: &StatusArgs) -> CmdResult {
    let mut mounts = venvfs_fuse::mounts();
    if let Some(venv) = &args.venv {
        let abs = super::absolute(venv).map_err(|e| format!("{}: {e}", venv.display()))?;
        mounts.retain(|m| m.mountpoint == abs);
        if mounts.is_empty() {
            let shown = abs.display();
            return Err(format!(
                "{shown} is not mounted: `venvfs mount {shown}` mounts it; `venvfs list {shown}` shows what it holds"
            )
            .into());
        }
    }
    if mounts.is_empty() {
        println!("no venv is mounted by venvfs");
        return Ok(());
    }
    for m in &mounts {
        let stale = venvfs_fuse::is_stale(&m.mountpoint);
        match registry::serving(&m.mountpoint) {
            Some(r) if !stale => {
                let r = &r;
                let upper = super::upper_path(r);
                println!("{}", m.mountpoint.display());
                println!("  daemon pid {}", r.pid);
                println!("  upper layer: {} on disk", human(registry::disk_usage(&upper)));
                distributions(&m.mountpoint, r, &upper);
                if args.requests {
                    match read_requests(r.pid) {
                        Some(text) => {
                            println!("  requests served since mounting:");
                            for line in text.lines() {
                                if let Some((op, n)) = line.split_once(' ') {
                                    println!("    {op:<12} {n:>10}");
                                }
                            }
                        }
                        None => println!("  requests served: the daemon did not answer"),
                    }
                }
            }
            _ if stale => println!(
                "{}\n  stale: its daemon died; `venvfs mount {}` recovers it, `venvfs umount {}` removes it",
                m.mountpoint.display(),
                m.mountpoint.display(),
                m.mountpoint.display()
            ),
            _ => println!("{}\n  mounted by a daemon of another user or session", m.mountpoint.display()),
        }
    }
    Ok(())
}

/// The distributions the mount shows, with their origins, and what to do about them.
fn distributions(venv: &Path, r: &registry::Record, upper: &Path) {
    // The layers as committed (the record tells what the daemon mounted with, and what
    // its last live change left; emptying the venv through the mount, `uv venv --clear`,
    // commits a manifest without layers and leaves the record as it was)
    let manifest = crate::manifest::manifest_path(upper);
    let layers = match crate::manifest::Manifest::load(&manifest) {
        Ok(m) if m.layers.len() != r.layers.len() => format!("{} layers", m.layers.len()),
        _ => format!("{} layers, {} entries", r.layers.len(), r.lower_entries),
    };
    let inv = match inventory::of_mount(venv, Some(upper)) {
        Ok(inv) => inv,
        Err(e) => {
            println!("  {layers}; distributions: cannot be listed: {e}");
            return;
        }
    };
    println!("  {layers}; {} distributions:", inv.dists.len());
    for line in inv.table() {
        println!("    {line}");
    }
    for p in inv.problems() {
        println!("  note: {p}");
    }
    let cache = inventory::cache_for_advice(&inv);
    for line in inventory::advice(venv, &inv, &cache) {
        println!("  {line}");
    }
}
