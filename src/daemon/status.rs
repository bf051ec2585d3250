//! `venvfs status`: the mounted venvs, their layers and upper size.

use std::path::PathBuf;

use super::requests::read_requests;
use super::CmdResult;
use crate::cli::StatusArgs;
use crate::registry;

pub fn status(args: &StatusArgs) -> CmdResult {
    let records = registry::list();
    let mounts = venvfs_fuse::mounts();
    if mounts.is_empty() {
        println!("no venv is mounted by venvfs");
        return Ok(());
    }
    for m in &mounts {
        let stale = venvfs_fuse::is_stale(&m.mountpoint);
        match records.iter().find(|r| r.venv == m.mountpoint) {
            Some(r) if !stale => {
                let upper = PathBuf::from(format!("/proc/{}/fd/{}", r.pid, r.upper_fd));
                println!("{}", m.mountpoint.display());
                println!("  daemon pid {}", r.pid);
                println!("  upper layer: {} on disk", human(registry::disk_usage(&upper)));
                println!("  {} layers, {} entries:", r.layers.len(), r.lower_entries);
                const SHOWN: usize = 20;
                for l in r.layers.iter().take(SHOWN) {
                    println!("    {l}");
                }
                if r.layers.len() > SHOWN {
                    println!("    ... and {} more (`venvfs layer list` lists them all)", r.layers.len() - SHOWN);
                }
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
