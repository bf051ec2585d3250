//! The venv's checks: is it a venv, a venvfs venv, mounted (by a live daemon, or a stale
//! mount), are its layers' sources there, where its distributions come from, and whether uv
//! is told to link packages into it rather than copy them.

use std::path::{Path, PathBuf};

use super::system::{self, FsFacts, LinkRead};
use super::{plural, Finding, Status};
use crate::install::layout::{Layout, OsName};
use crate::inventory::{self, Advice, AdviceKind, Inventory, Origin};

/// Whether and how the venv is mounted (only Linux mounts; elsewhere it is `Unsupported`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub enum MountState {
    /// Nothing can be mounted on this platform.
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    Unsupported,
    NotMounted,
    /// Mounted by a live daemon of ours.
    Mounted {
        pid: u32,
    },
    /// Mounted by venvfs, without a runtime record here (another user or session).
    Foreign,
    /// A FUSE mount whose daemon died.
    Stale,
}

/// What the venv's findings are decided from.
#[derive(Debug)]
pub struct VenvFacts {
    /// The venv as named on the command line (fix commands repeat it).
    pub venv: PathBuf,
    pub mount: MountState,
    pub is_venv: bool,
    /// The layers of `.venvfs/manifest.toml`; None without a manifest.
    pub layers: Option<usize>,
    pub inventory: Option<Result<Inventory, String>>,
    /// What to do about the inventory (`inventory::advice_items`).
    pub advice: Vec<Advice>,
    /// Whether uv's cache holds every distribution whose references dangle.
    pub dangling_in_cache: bool,
    /// The layout family of the venv (`bin/python` or `Scripts\python.exe`).
    pub os: OsName,
    /// Whether the main activation script (`bin/activate`, `Scripts\activate.bat`) sets
    /// `UV_LINK_MODE=symlink`; None without one.
    pub activation_links: Option<bool>,
    /// `activate::project_hint`: a uv project above the venv sets no link mode.
    pub project_hint: Option<String>,
}

/// Every check of the venv at `venv`.
pub fn findings(venv: &Path, cache: Option<&FsFacts>) -> Vec<Finding> {
    let facts = VenvFacts::gather(venv);
    // (a mount point shows the mount's filesystem: where the venv's own files are is the
    // filesystem of the directory it is in)
    let place = match facts.mount {
        MountState::NotMounted | MountState::Unsupported => FsFacts::gather(venv),
        _ => {
            let abs = std::path::absolute(venv).unwrap_or_else(|_| venv.to_owned());
            let mut f = FsFacts::gather(abs.parent().unwrap_or(&abs));
            f.path = venv.to_owned();
            f
        }
    };
    let mut out = decide(&facts);
    if facts.mount != MountState::Stale {
        out.push(system::venv_place_finding(&place));
        out.push(system::link_finding(cache, &place));
        let version = crate::venv::python_version(venv).unwrap_or_default();
        let python = venv.join(Layout::for_os(facts.os, &version).python());
        let (python, read) = LinkRead::follow(&python);
        out.extend(system::python_link_finding(&place, &python, &read));
    }
    out
}

impl VenvFacts {
    pub fn gather(venv: &Path) -> VenvFacts {
        let mount = mount_state(venv);
        let mut facts = VenvFacts {
            venv: venv.to_owned(),
            mount: mount.clone(),
            is_venv: false,
            layers: None,
            inventory: None,
            advice: Vec::new(),
            dangling_in_cache: false,
            os: OsName::of_venv(venv),
            activation_links: None,
            project_hint: None,
        };
        if mount == MountState::Stale {
            return facts; // (anything read through it fails)
        }
        facts.is_venv = venv.join("pyvenv.cfg").is_file();
        if !facts.is_venv {
            return facts;
        }
        let manifest = crate::daemon::manifest_of(venv);
        if manifest.exists() {
            facts.layers =
                Some(crate::manifest::Manifest::load(&manifest).map_or(0, |m| m.layers.len()));
        }
        if mount != MountState::Foreign {
            let inv = inventory::of_venv(venv).map_err(|e| e.to_string());
            if let Ok(inv) = &inv {
                let cache = inventory::cache_for_advice(inv);
                facts.advice = inventory::advice_items(venv, inv, &cache);
                facts.dangling_in_cache = dangling(inv)
                    .iter()
                    .all(|d| inventory::in_uv_cache(&cache, &d.name, &d.version));
            }
            facts.inventory = Some(inv);
        }
        let script =
            crate::activate::scripts_dir(venv).join(crate::activate::main_script(facts.os));
        facts.activation_links = std::fs::read_to_string(script)
            .ok()
            .map(|t| crate::activate::sets_link_mode(&t));
        facts.project_hint = crate::activate::project_hint(venv);
        facts
    }
}

#[cfg(target_os = "linux")]
fn mount_state(venv: &Path) -> MountState {
    let Ok(abs) = std::path::absolute(venv) else {
        return MountState::NotMounted;
    };
    if venvfs_fuse::is_stale(&abs) {
        return MountState::Stale;
    }
    if !crate::daemon::venv_is_mounted(venv) {
        return MountState::NotMounted;
    }
    let abs = abs.canonicalize().unwrap_or(abs);
    match crate::registry::serving(&abs) {
        Some(r) => MountState::Mounted { pid: r.pid },
        None => MountState::Foreign,
    }
}

#[cfg(not(target_os = "linux"))]
fn mount_state(_venv: &Path) -> MountState {
    MountState::Unsupported
}

/// Distributions whose references point into uv cache entries that are gone (not a
/// missing layer: the manifest's layers are reported on their own).
fn dangling(inv: &Inventory) -> Vec<&inventory::Dist> {
    inv.dists
        .iter()
        .filter(|d| d.source_missing.is_some() && d.origins.contains(&Origin::References))
        .filter(|d| !d.origins.contains(&Origin::Layer))
        .collect()
}

/// What the venv's facts mean.
pub fn decide(f: &VenvFacts) -> Vec<Finding> {
    let v = f.venv.display();
    let mount_cmd = format!("venvfs mount {v}");
    if f.mount == MountState::Stale {
        return vec![Finding::fail(
            "mount",
            "a stale mount: its daemon died, and what the kernel has not cached fails with \
             \"Transport endpoint is not connected\"",
            Some(mount_cmd),
        )];
    }
    if !f.is_venv {
        return vec![Finding::fail(
            "venv",
            format!("{v} has no pyvenv.cfg: not a virtual environment"),
            Some(format!("venvfs create {v}")),
        )];
    }
    let mut out = vec![match f.layers {
        Some(n) => Finding::ok(
            "venvfs-venv",
            format!(
                "a venvfs venv: {} in .venvfs/manifest.toml",
                plural(n, "layer", "layers")
            ),
        ),
        None => Finding::ok(
            "venvfs-venv",
            "a plain venv: no .venvfs/manifest.toml, venvfs has installed nothing in it",
        ),
    }];
    out.push(match (&f.mount, f.layers) {
        (MountState::Mounted { pid }, _) => Finding::ok(
            "mount",
            format!("mounted by venvfs; its daemon (pid {pid}) is running"),
        ),
        (MountState::Foreign, _) => Finding::warn(
            "mount",
            "mounted by a venvfs daemon of another user or session: its layers are not \
             examined from here",
            None,
        ),
        (MountState::Unsupported, _) => Finding::ok(
            "mount",
            "not mounted: this platform has no mounting backend yet",
        ),
        (MountState::NotMounted, Some(n)) if n > 0 => Finding::warn(
            "mount",
            "not mounted: its layers are not shown, and its Python says to mount it and \
             exits (a state, not a fault: sync, install and list work on it as it is)",
            Some(mount_cmd.clone()),
        ),
        (MountState::NotMounted, _) => Finding::ok(
            "mount",
            format!(
                "not mounted: it works as a plain venv; `{mount_cmd}` lets uv link packages \
                 into it instead of copying them"
            ),
        ),
        (MountState::Stale, _) => unreachable!("returned above"),
    });
    match &f.inventory {
        None => {}
        Some(Err(e)) => out.push(Finding::fail(
            "distributions",
            format!("cannot be listed: {e}"),
            None,
        )),
        Some(Ok(inv)) => out.extend(inventory_findings(f, inv)),
    }
    let script = match f.os {
        OsName::Posix => format!("bin/{}", crate::activate::main_script(f.os)),
        OsName::Nt => format!("Scripts\\{}", crate::activate::main_script(f.os)),
    };
    let set_it = match f.os {
        OsName::Posix => "export UV_LINK_MODE=symlink",
        OsName::Nt => "set UV_LINK_MODE=symlink",
    };
    out.push(match f.activation_links {
        Some(true) => Finding::ok(
            "uv-link-mode",
            format!("{script} sets UV_LINK_MODE=symlink while the venv is active"),
        ),
        Some(false) => Finding::warn(
            "uv-link-mode",
            format!(
                "{script} does not set UV_LINK_MODE=symlink: uv copies packages into the \
                 venv (venvfs mount sets it in the activation scripts)"
            ),
            Some(match f.mount {
                MountState::NotMounted => mount_cmd,
                _ => set_it.into(),
            }),
        ),
        None => Finding::warn(
            "uv-link-mode",
            format!("no {script}: nothing tells uv to link packages rather than copy them"),
            Some(set_it.into()),
        ),
    });
    if let Some(hint) = &f.project_hint {
        let setting = hint
            .split_once(":\n")
            .map_or(hint.as_str(), |(_, rest)| rest)
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("\n");
        out.push(Finding::warn(
            "uv-project",
            hint.lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("hint: ")
                .trim_end_matches(':')
                .to_owned(),
            Some(setting),
        ));
    }
    out
}

/// Layers, distributions and their origins, references that dangle, copies a layer could
/// serve.
fn inventory_findings(f: &VenvFacts, inv: &Inventory) -> Vec<Finding> {
    let v = f.venv.display();
    let mut out = Vec::new();
    if inv.missing_layers.is_empty() {
        out.push(Finding::ok(
            "layers",
            format!(
                "every layer's source is there ({})",
                plural(f.layers.unwrap_or(0), "layer", "layers")
            ),
        ));
    }
    let again = if f.mount == MountState::NotMounted {
        "; if uv has unpacked the same wheel again, `venvfs mount` finds it by itself"
    } else {
        ""
    };
    for a in &f.advice {
        let what = &a.what;
        let (check, status, detail) = match a.kind {
            AdviceKind::SourceMissing => (
                "layers",
                Status::Fail,
                format!("source missing (the cache entry was removed): {what}{again}"),
            ),
            AdviceKind::UninstalledSourceMissing => (
                "layers",
                Status::Warn,
                format!("source missing for layers uninstalled through the mount: {what}"),
            ),
            AdviceKind::Servable => (
                "copies",
                Status::Warn,
                format!("{what} of the venv's own directory are copies a layer could serve"),
            ),
        };
        out.push(Finding {
            check,
            status,
            detail,
            fix: Some(a.command.clone()),
        });
    }
    let count = |o: Origin| inv.dists.iter().filter(|d| d.origins == [o]).count();
    let mixed = inv.dists.iter().filter(|d| d.origins.len() > 1).count();
    out.push(Finding::ok(
        "distributions",
        format!(
            "{}: {} from layers, {} references into uv's cache, {} copies, {} mixed \
             (`venvfs list {v}` shows each)",
            plural(inv.dists.len(), "distribution", "distributions"),
            count(Origin::Layer),
            count(Origin::References),
            count(Origin::Copies),
            mixed
        ),
    ));
    // (what cannot be read of a distribution whose source is gone follows from that)
    let readable = inv.dists.iter().filter(|d| d.source_missing.is_none());
    for p in readable.flat_map(|d| &d.problems) {
        out.push(Finding::warn(
            "distributions",
            p.clone(),
            Some("reinstall the distribution".into()),
        ));
    }
    let dangling = dangling(inv);
    if !dangling.is_empty() {
        let pins: Vec<String> = dangling.iter().map(|d| d.pin()).collect();
        let what: Vec<String> = dangling
            .iter()
            .map(|d| {
                let gone = d.source_missing.as_deref().unwrap_or(Path::new("?"));
                format!("{} ({})", d.pin(), gone.display())
            })
            .collect();
        out.push(Finding::fail(
            "references",
            format!(
                "links into uv cache entries that are gone: {}",
                what.join(", ")
            ),
            Some(inventory::restore_command(
                &f.venv,
                &pins,
                f.dangling_in_cache,
            )),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Status::{Fail, Warn};
    use super::*;
    use crate::manifest::Layer;

    fn facts(mount: MountState) -> VenvFacts {
        VenvFacts {
            venv: ".venv".into(),
            mount,
            is_venv: true,
            layers: Some(2),
            inventory: Some(Ok(Inventory::default())),
            advice: Vec::new(),
            dangling_in_cache: false,
            os: OsName::Posix,
            activation_links: Some(true),
            project_hint: None,
        }
    }

    /// A venv made on Windows: the findings name its `Scripts\activate.bat` and say how
    /// cmd sets the variable.
    #[test]
    fn a_windows_venvs_activation() {
        let f = decide(&VenvFacts {
            os: OsName::Nt,
            activation_links: None,
            ..facts(MountState::Mounted { pid: 7 })
        });
        let link = f.iter().find(|f| f.check == "uv-link-mode").unwrap();
        assert_eq!(
            link.detail,
            "no Scripts\\activate.bat: nothing tells uv to link packages rather than copy them"
        );
        assert_eq!(link.fix.as_deref(), Some("set UV_LINK_MODE=symlink"));
    }

    /// The layout is read off the venv: `Scripts\python.exe` without `bin` is Windows's.
    #[test]
    fn layout_of_a_venv_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(OsName::of_venv(dir.path()), OsName::current());
        std::fs::create_dir(dir.path().join("Scripts")).unwrap();
        std::fs::write(dir.path().join("Scripts/python.exe"), "").unwrap();
        assert_eq!(OsName::of_venv(dir.path()), OsName::Nt);
        std::fs::write(
            dir.path().join("Scripts/activate.bat"),
            "set UV_LINK_MODE=symlink\r\n",
        )
        .unwrap();
        let script =
            crate::activate::scripts_dir(dir.path()).join(crate::activate::main_script(OsName::Nt));
        assert!(crate::activate::sets_link_mode(
            &std::fs::read_to_string(script).unwrap()
        ));
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        assert_eq!(OsName::of_venv(dir.path()), OsName::Posix);
    }

    fn summary(f: &[Finding]) -> Vec<(&str, Status)> {
        f.iter().map(|f| (f.check, f.status)).collect()
    }

    #[test]
    fn a_healthy_mounted_venv() {
        let f = decide(&facts(MountState::Mounted { pid: 7 }));
        assert_eq!(
            summary(&f),
            [
                ("venvfs-venv", Status::Ok),
                ("mount", Status::Ok),
                ("layers", Status::Ok),
                ("distributions", Status::Ok),
                ("uv-link-mode", Status::Ok)
            ]
        );
        assert!(f[1].detail.contains("pid 7"));
    }

    #[test]
    fn unmounted_is_a_state_stale_is_a_fault() {
        let f = decide(&facts(MountState::NotMounted));
        assert_eq!(f[1].status, Warn);
        assert_eq!(f[1].fix.as_deref(), Some("venvfs mount .venv"));
        let plain = decide(&VenvFacts {
            layers: None,
            ..facts(MountState::NotMounted)
        });
        assert_eq!(plain[1].status, Status::Ok, "a plain venv works unmounted");
        let stale = decide(&facts(MountState::Stale));
        assert_eq!(summary(&stale), [("mount", Fail)]);
        assert_eq!(stale[0].fix.as_deref(), Some("venvfs mount .venv"));
        let not_a_venv = decide(&VenvFacts {
            is_venv: false,
            ..facts(MountState::NotMounted)
        });
        assert_eq!(summary(&not_a_venv), [("venv", Fail)]);
        assert_eq!(not_a_venv[0].fix.as_deref(), Some("venvfs create .venv"));
    }

    #[test]
    fn missing_layers_dangling_references_and_copies() {
        let layer: Layer = toml::from_str(
            "source = \"/c/uv/archive-v0/Gone\"\nname = \"six\"\nversion = \"1.17.0\"\nmap = []\n",
        )
        .unwrap();
        let inv = Inventory {
            dists: Vec::new(),
            missing_layers: vec![layer],
        };
        let f = VenvFacts {
            inventory: Some(Result::Ok(inv)),
            advice: vec![
                Advice {
                    kind: AdviceKind::SourceMissing,
                    what: "six==1.17.0 (/c/uv/archive-v0/Gone)".into(),
                    command: "venvfs install .venv six==1.17.0".into(),
                },
                Advice {
                    kind: AdviceKind::Servable,
                    what: "4.0 KiB".into(),
                    command: "venvfs adopt .venv".into(),
                },
            ],
            activation_links: Some(false),
            project_hint: Some(
                "hint: so that X, add to /p/pyproject.toml:\n  [tool.uv]\n  link-mode = \"symlink\"\n  (or export)".into(),
            ),
            ..facts(MountState::NotMounted)
        };
        let out = decide(&f);
        let layers = out.iter().find(|f| f.check == "layers").unwrap();
        assert_eq!(layers.status, Fail);
        assert!(layers.detail.contains("six==1.17.0"), "{layers:?}");
        assert!(layers.detail.contains("`venvfs mount` finds it"));
        assert_eq!(
            layers.fix.as_deref(),
            Some("venvfs install .venv six==1.17.0")
        );
        let copies = out.iter().find(|f| f.check == "copies").unwrap();
        assert_eq!(copies.status, Warn);
        let link = out.iter().find(|f| f.check == "uv-link-mode").unwrap();
        assert_eq!(
            (link.status, link.fix.as_deref()),
            (Warn, Some("venvfs mount .venv"))
        );
        let project = out.iter().find(|f| f.check == "uv-project").unwrap();
        assert_eq!(project.detail, "so that X, add to /p/pyproject.toml");
        assert_eq!(
            project.fix.as_deref(),
            Some("[tool.uv]\nlink-mode = \"symlink\"\n(or export)")
        );
    }
}
