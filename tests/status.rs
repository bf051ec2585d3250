//! `venvfs list` and `venvfs status` tell what a mounted venv holds after uv changed it
//! through the mount: the distributions `uv pip list` shows, each with where its files
//! come from (a layer, references into uv's cache, copies), and layers whose source the
//! cache lost.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;

/// name → version, as `uv pip list` shows the venv.
fn uv_list(venv: &Path, cache: &Path) -> BTreeMap<String, String> {
    let out = run_ok(
        uv().env("UV_CACHE_DIR", cache)
            .args(["pip", "list", "--format", "json", "--python"])
            .arg(venv.join("bin/python")),
    );
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    rows.iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_lowercase(),
                r["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// name → (version, origin label), from `venvfs list` lines.
fn parse_lines<'a>(lines: impl Iterator<Item = &'a str>) -> BTreeMap<String, (String, String)> {
    lines
        .filter_map(|l| {
            let (pin, origin) = l.trim().split_once("  ")?;
            let (name, version) = pin.split_once("==")?;
            Some((name.into(), (version.into(), origin.trim().into())))
        })
        .collect()
}

fn venvfs_list(venv: &Path) -> BTreeMap<String, (String, String)> {
    let out = run_ok(venvfs().arg("list").arg(venv));
    parse_lines(out.lines())
}

/// The block `venvfs status` prints for `venv` (run with `UV_CACHE_DIR` = `cache`).
fn status_block(venv: &Path, cache: &Path) -> String {
    let out = run_ok(venvfs().arg("status").env("UV_CACHE_DIR", cache));
    let mut lines = out.lines().skip_while(|l| Path::new(l) != venv);
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("status lists {}:\n{out}", venv.display()));
    let body: Vec<&str> = lines.take_while(|l| l.starts_with(' ')).collect();
    format!("{header}\n{}", body.join("\n"))
}

fn copy_wheel(prefix: &str, dir: &Path) -> PathBuf {
    let w = shared_wheel(prefix);
    let dest = dir.join(w.file_name().unwrap());
    std::fs::copy(&w, &dest).unwrap();
    dest
}

#[test]
fn list_and_status_show_what_uv_sees() {
    let s = Scratch::new();
    let wheels = shared_wheel("six-").parent().unwrap().to_owned();
    let cache = s.path("uv-cache");
    // layers from wheel files of the test's own, so that one can be deleted
    let layer_dir = s.path("layers");
    std::fs::create_dir(&layer_dir).unwrap();
    let six = copy_wheel("six-", &layer_dir);
    let idna = copy_wheel("idna-", &layer_dir);
    let certifi = copy_wheel("certifi-", &layer_dir);
    run_ok(
        venvfs()
            .arg("install")
            .arg(&s.venv)
            .args([&six, &idna, &certifi]),
    );
    let kept_layers = [snapshot(&idna), snapshot(&certifi)];

    let m = s.mount();
    uv_pip(
        &s.venv,
        &cache,
        &["install", "--link-mode=copy", "--no-deps", "click"],
        &wheels,
    );
    uv_pip(
        &s.venv,
        &cache,
        &["install", "--link-mode=symlink", "--no-deps", "urllib3"],
        &wheels,
    );
    uv_pip(&s.venv, &cache, &["uninstall", "certifi"], &wheels);
    let cache_before = snapshot(&cache.join("archive-v0"));

    let uv_sees = uv_list(&s.venv, &cache);
    let names: Vec<&str> = uv_sees.keys().map(String::as_str).collect();
    assert_eq!(names, ["click", "idna", "six", "urllib3"]);
    let origins = |listed: &BTreeMap<String, (String, String)>| -> BTreeMap<String, String> {
        listed
            .iter()
            .map(|(n, (_, o))| (n.clone(), o.clone()))
            .collect()
    };
    let versions = |listed: &BTreeMap<String, (String, String)>| -> BTreeMap<String, String> {
        listed
            .iter()
            .map(|(n, (v, _))| (n.clone(), v.clone()))
            .collect()
    };

    let listed = venvfs_list(&s.venv);
    assert_eq!(versions(&listed), uv_sees);
    let o = origins(&listed);
    assert_eq!(o["six"], "layer");
    assert_eq!(o["idna"], "layer");
    assert_eq!(o["urllib3"], "references");
    assert!(
        o["click"].starts_with("copies (") && o["click"].ends_with("KiB)"),
        "{o:?}"
    );

    // --json says the same
    let json = run_ok(venvfs().args(["list", "--json"]).arg(&s.venv));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let from_json: BTreeMap<String, (String, String)> = rows
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_owned();
            (s("name"), (s("version"), s("origin")))
        })
        .collect();
    assert_eq!(versions(&from_json), uv_sees);
    assert_eq!(from_json["click"].1, "copies");

    // status: the same distributions, and the copies uv's cache could serve as a layer
    let block = status_block(&s.venv, &cache);
    assert!(block.contains("  daemon pid "), "{block}");
    assert!(block.contains("  upper layer: "), "{block}");
    assert!(block.contains("; 4 distributions:"), "{block}");
    let in_status = parse_lines(block.lines().filter(|l| l.starts_with("    ")));
    assert_eq!(in_status, listed, "{block}");
    assert!(
        block.contains(&format!(
            "copies a layer could serve: `venvfs adopt {}`",
            s.venv.display()
        )),
        "{block}"
    );
    assert!(!block.contains("source missing"), "{block}");

    // the cache entry of a layer is removed: it is marked, and status says how to restore
    std::fs::remove_file(&six).unwrap();
    let listed = venvfs_list(&s.venv);
    assert_eq!(versions(&listed), uv_sees);
    assert_eq!(
        listed["six"].1,
        format!("layer (source missing: {})", six.display())
    );
    let block = status_block(&s.venv, &cache);
    let six_pin = format!("six=={}", uv_sees["six"]);
    let restore = block
        .lines()
        .find(|l| l.contains("source missing (the cache entry was removed)"))
        .unwrap_or_else(|| panic!("{block}"));
    assert!(
        restore.contains(&format!("{six_pin} ({})", six.display())),
        "{restore}"
    );
    assert!(
        restore.ends_with(&format!(
            "&& venvfs install {} {six_pin}`",
            s.venv.display()
        )),
        "{restore}"
    );
    // (the command's last step, with the wheel found again, restores it)
    std::fs::copy(shared_wheel("six-"), &six).unwrap();
    run_ok(
        venvfs()
            .arg("install")
            .arg(&s.venv)
            .arg(&six_pin)
            .arg("--find-links")
            .arg(&layer_dir),
    );
    assert_eq!(venvfs_list(&s.venv)["six"].1, "layer");
    assert_eq!(uv_list(&s.venv, &cache), uv_sees);

    m.unmount();
    // unmounted, the venv directory and its manifest tell the same
    let unmounted = venvfs_list(&s.venv);
    assert_eq!(versions(&unmounted), uv_sees);
    // (read from the layers' `.whl` files: no METADATA is missing)
    let out = run(venvfs().arg("list").arg(&s.venv));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "unmounted list");
    assert_eq!(
        origins(&unmounted),
        origins(&venvfs_list_mounted_again(&s.venv))
    );
    for (snap, path) in kept_layers.iter().zip([&idna, &certifi]) {
        assert_eq!(&snapshot(path), snap, "{} changed", path.display());
    }
    assert_eq!(snapshot(&cache.join("archive-v0")), cache_before);
}

/// `venvfs list` of the venv mounted again (and unmounted after).
fn venvfs_list_mounted_again(venv: &Path) -> BTreeMap<String, (String, String)> {
    let m = Mount::new(venv);
    let listed = venvfs_list(venv);
    m.unmount();
    listed
}

/// `venvfs status` run in another pid namespace that shares the runtime directory (a
/// container, an `unshare --pid` job: the 8-node figure's nodes) neither lists the host's
/// daemons nor takes them for dead, whose pids mean nothing there: it deleted their
/// records, and the host's `status` then called its own mount another session's.
#[test]
fn another_pid_namespace_leaves_the_daemons_records_alone() {
    let s = Scratch::new();
    run_ok(
        venvfs()
            .arg("install")
            .arg(&s.venv)
            .arg(shared_wheel("six-")),
    );
    let m = s.mount();
    let pid = m.daemon_pid();
    let host = venvfs();
    let mut inside = std::process::Command::new("unshare");
    inside
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(host.get_program())
        .arg("status");
    let out = run_ok(with_env_of(&mut inside, &host));
    assert!(
        !out.contains(&s.venv.display().to_string()) || !out.contains(&format!("pid {pid}")),
        "another pid namespace lists the host's daemon by a pid it cannot see: {out}"
    );
    assert_eq!(m.daemon_pid(), pid, "the host still knows its daemon");
    let status = run_ok(venvfs().arg("status").arg(&s.venv));
    assert!(status.contains(&format!("daemon pid {pid}")), "{status}");
}
