//! Read-only everything: uv's cache on a read-only filesystem, `$HOME` read-only or unset,
//! a shared read-only uv cache under the user's own, the venv's parent read-only. Each
//! makes a venv, syncs it, mounts it, imports and writes through the mount, unmounts; the
//! read-only places are byte-identical afterwards and venvfs's own state went where it is
//! allowed. The read-only places are read-only bind mounts (the tests run as root, as
//! every mount test does); a guard unmounts each, also when the test fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A bind mount of `source` on `target`, read-only unless `writable`; dropping it unmounts.
struct Bind {
    target: PathBuf,
}

impl Bind {
    fn read_only(dir: &Path) -> Bind {
        let b = Bind::new(dir, dir);
        run_ok(
            Command::new("mount")
                .args(["-o", "remount,ro,bind"])
                .arg(dir),
        );
        let probe = dir.join(".venvfs-test-probe");
        let err = std::fs::write(&probe, b"x").expect_err("the bind mount is read-only");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        b
    }

    fn new(source: &Path, target: &Path) -> Bind {
        run_ok(Command::new("mount").arg("--bind").arg(source).arg(target));
        Bind {
            target: target.to_owned(),
        }
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.target)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.target).output();
        }
    }
}

/// `venvfs` with none of the user's directories: no XDG variables, `HOME` as given (or
/// unset), uv's cache as given.
fn bare_venvfs(home: Option<&Path>, uv_cache: &Path) -> Command {
    let mut c = venvfs();
    for v in [
        "XDG_CACHE_HOME",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "VENVFS_CACHE_DIR",
        "VENVFS_EXTRA_CACHE_DIRS",
    ] {
        c.env_remove(v);
    }
    match home {
        Some(h) => c.env("HOME", h),
        None => c.env_remove("HOME"),
    };
    c.env("UV_CACHE_DIR", uv_cache);
    c
}

/// A uv cache filled by uv with the wheels of `prefixes` (from the test wheels).
fn filled_cache(s: &Scratch, name: &str, prefixes: &[&str]) -> PathBuf {
    let house = s.path(&format!("{name}-house"));
    std::fs::create_dir_all(&house).unwrap();
    let mut wheels = Vec::new();
    for p in prefixes {
        let w = shared_wheel(p);
        std::os::unix::fs::symlink(&w, house.join(w.file_name().unwrap())).unwrap();
        wheels.push(w);
    }
    let reqs = s.path(&format!("{name}-reqs.txt"));
    std::fs::write(&reqs, pins(&wheels)).unwrap();
    let fill = s.path(&format!("{name}-fill"));
    uv_venv(&fill);
    let cache = s.path(name);
    fill_uv_cache(&fill, &house, &reqs, &cache);
    assert!(
        cache.join("archive-v0").is_dir(),
        "uv left no archive-v0 in {}",
        cache.display()
    );
    cache
}

/// A requirements file pinning the test wheels of `prefixes`.
fn reqs_for(s: &Scratch, prefixes: &[&str]) -> PathBuf {
    let wheels: Vec<PathBuf> = prefixes.iter().map(|p| shared_wheel(p)).collect();
    let reqs = s.path("requirements.txt");
    std::fs::write(&reqs, pins(&wheels)).unwrap();
    reqs
}

/// The layers' sources the venv's manifest names.
fn layer_sources(venv: &Path) -> String {
    std::fs::read_to_string(venv.join(".venvfs/manifest.toml")).unwrap()
}

/// Mounts the venv with `cmd`'s environment, imports `modules`, edits six.py and adds a
/// file through the mount, reads them back, and unmounts.
fn mount_import_write(venv: &Path, mut cmd: impl FnMut() -> Command, modules: &str) {
    run_ok(cmd().arg("mount").arg(venv));
    let m = Mount::adopt(venv);
    py(venv, &["-c", &format!("import {modules}")]);
    let site = py(
        venv,
        &[
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
    );
    let site = PathBuf::from(site.trim());
    let six = site.join("six.py");
    let mut text = std::fs::read_to_string(&six).unwrap();
    text.push_str("\nEDITED = 1\n");
    std::fs::write(&six, &text).unwrap();
    std::fs::write(site.join("mine.py"), "MINE = 2\n").unwrap();
    let out = py(
        venv,
        &["-c", "import six, mine; print(six.EDITED + mine.MINE)"],
    );
    assert_eq!(out.trim(), "3");
    // (the umount goes through the same environment, to find the daemon's record)
    run_ok(cmd().arg("umount").arg(venv));
    m.forget();
    assert!(
        std::fs::read_to_string(&six)
            .unwrap()
            .ends_with("EDITED = 1\n"),
        "the edit is kept in the venv's own directory"
    );
}

#[test]
fn a_read_only_uv_cache_is_synced_from_and_served_unchanged() {
    let s = Scratch::new();
    let cache = filled_cache(&s, "uv-cache", &["six-", "click-"]);
    let reqs = reqs_for(&s, &["six-", "click-"]);
    let before = snapshot(&cache);
    let _ro = Bind::read_only(&cache);
    let venv = s.path("v");
    let xdg = s.path("xdg");
    let cmd = || {
        let mut c = venvfs();
        c.env("UV_CACHE_DIR", &cache).env("XDG_CACHE_HOME", &xdg);
        c
    };
    run_ok(cmd().arg("create").arg(&venv));
    let out = run(cmd().arg("sync").arg(&venv).arg(&reqs));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = layer_sources(&venv);
    assert_eq!(
        manifest
            .matches(&*cache.join("archive-v0").to_string_lossy())
            .count(),
        2,
        "both layers are entries of the read-only cache: {manifest}"
    );
    // the index of that cache is kept in venvfs's own (writable) directory
    assert!(
        std::fs::read_dir(xdg.join("venvfs"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("uv-index-")),
        "the index of the read-only cache is kept in venvfs's own directory"
    );
    mount_import_write(&venv, cmd, "six, click");

    // venvfs's own cache directory read-only too ($VENVFS_CACHE_DIR, holding what the run
    // above remembered): it is read, not written, and another venv syncs and mounts
    let own = xdg.join("venvfs");
    let own_before = snapshot(&own);
    let _own_ro = Bind::read_only(&own);
    let venv2 = s.path("v2");
    let cmd2 = || {
        let mut c = bare_venvfs(None, &cache);
        c.env("VENVFS_CACHE_DIR", &own);
        c
    };
    run_ok(cmd2().arg("create").arg(&venv2));
    run_ok(cmd2().arg("sync").arg(&venv2).arg(&reqs));
    mount_import_write(&venv2, cmd2, "six, click");
    assert_eq!(
        snapshot(&own),
        own_before,
        "the read-only own cache changed"
    );
    assert_eq!(snapshot(&cache), before, "the read-only uv cache changed");
}

/// `HOME` read-only, then unset, with no XDG variables: the same work succeeds, nothing is
/// written under `HOME`, and what venvfs remembers goes into the venv's `.venvfs/`.
#[test]
fn a_read_only_or_missing_home_directory_is_no_obstacle() {
    let s = Scratch::new();
    let cache = filled_cache(&s, "uv-cache", &["six-", "click-"]);
    let reqs = reqs_for(&s, &["six-", "click-"]);
    let cache_before = snapshot(&cache);
    let home = s.path("home");
    std::fs::create_dir_all(home.join(".cache")).unwrap();
    std::fs::write(home.join(".profile"), "# mine\n").unwrap();
    let home_before = snapshot(&home);
    let ro = Bind::read_only(&home);
    for (what, home) in [("read-only HOME", Some(home.as_path())), ("no HOME", None)] {
        let venv = s.path(&format!("v-{}", if home.is_some() { "ro" } else { "none" }));
        let cmd = || bare_venvfs(home, &cache);
        run_ok(cmd().arg("create").arg(&venv));
        let out = run(cmd().arg("sync").arg(&venv).arg(&reqs));
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            layer_sources(&venv)
                .matches(&*cache.join("archive-v0").to_string_lossy())
                .count(),
            2,
            "{what}: both layers come from uv's cache"
        );
        assert!(
            venv.join(".venvfs/interpreter.json").is_file(),
            "{what}: the interpreter's facts are remembered inside the venv"
        );
        // doctor says so, and what to set
        let doctor = run(cmd().args(["doctor", "--json"]));
        let findings: serde_json::Value = serde_json::from_slice(&doctor.stdout)
            .unwrap_or_else(|e| panic!("{what}: doctor --json: {e}"));
        let finding = |check: &str| {
            let all = findings.as_array().unwrap();
            let f = all.iter().find(|f| f["check"] == check);
            f.unwrap_or_else(|| panic!("{what}: no {check} finding: {findings}"))
                .clone()
        };
        let own = finding("venvfs-cache");
        assert_eq!(own["status"], "warn", "{what}: {own}");
        assert!(
            own["fix"].as_str().unwrap().contains("VENVFS_CACHE_DIR"),
            "{what}: {own}"
        );
        // and that every venv then keeps its own bytecode
        let pyc = finding("bytecode-store");
        assert_eq!(pyc["status"], "warn", "{what}: {pyc}");
        let (detail, fix) = (pyc["detail"].as_str(), pyc["fix"].as_str());
        assert!(
            detail.unwrap().contains("own directory")
                && fix.unwrap().contains("VENVFS_BYTECODE_STORE"),
            "{what}: {pyc}"
        );
        mount_import_write(&venv, cmd, "six, click");
        // again, now that the facts are remembered
        let out = run(cmd().arg("sync").arg(&venv).arg(&reqs));
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // a pin no local source has needs a writable place for the wheel: the error says which
    // directories were tried and what to set, before any download
    let more = s.path("more.txt");
    std::fs::write(&more, pins(&[shared_wheel("six-"), shared_wheel("idna-")])).unwrap();
    let venv = s.path("v-ro");
    let manifest_before = layer_sources(&venv);
    let out = run(bare_venvfs(Some(&home), &cache)
        .env("VENVFS_OFFLINE", "0")
        .arg("sync")
        .arg(&venv)
        .arg(&more)
        .args(["--index-url", "http://127.0.0.1:9/simple/"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("VENVFS_CACHE_DIR") && err.contains(&*home.to_string_lossy()),
        "{err}"
    );
    assert_eq!(layer_sources(&venv), manifest_before, "the venv changed");
    drop(ro);
    assert_eq!(
        snapshot(&home),
        home_before,
        "something was written under HOME"
    );
    assert_eq!(snapshot(&cache), cache_before, "uv's cache changed");
}

/// A shared read-only cache (`$VENVFS_EXTRA_CACHE_DIRS`) under the user's own: a sync that
/// needs both finds both, the user's own first; the shared one is not changed, and links uv
/// makes into it from inside the mount are references.
#[test]
fn two_uv_caches_are_looked_in_in_order() {
    let s = Scratch::new();
    let shared = filled_cache(&s, "shared-cache", &["six-", "click-"]);
    let own = filled_cache(&s, "own-cache", &["click-"]);
    let reqs = reqs_for(&s, &["six-", "click-"]);
    let shared_before = snapshot(&shared);
    let _ro = Bind::read_only(&shared);
    let xdg = s.path("xdg");
    let cmd = || {
        let mut c = venvfs();
        c.env("UV_CACHE_DIR", &own)
            .env("VENVFS_EXTRA_CACHE_DIRS", &shared)
            .env("XDG_CACHE_HOME", &xdg);
        c
    };
    let venv = s.path("v");
    run_ok(cmd().arg("create").arg(&venv));
    run_ok(cmd().arg("sync").arg(&venv).arg(&reqs));
    let manifest = layer_sources(&venv);
    let source_of = |name: &str| {
        manifest
            .split("[[layer]]")
            .find(|block| block.contains(&format!("name = \"{name}\"")))
            .and_then(|block| block.lines().find(|l| l.starts_with("source = ")))
            .unwrap_or_else(|| panic!("no layer of {name}: {manifest}"))
            .to_owned()
    };
    assert!(
        source_of("six").contains(&*shared.join("archive-v0").to_string_lossy()),
        "six only the shared cache has: {manifest}"
    );
    assert!(
        source_of("click").contains(&*own.join("archive-v0").to_string_lossy()),
        "click from the user's own cache, looked in first: {manifest}"
    );
    mount_import_write(&venv, cmd, "six, click");
    // a link into the shared cache made through the mount (as uv's symlink link mode makes
    // them) is a reference: its first write copies it into the venv
    run_ok(cmd().arg("mount").arg(&venv));
    let m = Mount::adopt(&venv);
    let six_source = source_of("six");
    let six_entry = six_source
        .trim_start_matches("source = ")
        .trim_matches('"')
        .to_owned();
    let site = venv.join("lib/python3.11/site-packages");
    assert!(site.is_dir(), "{} is not there", site.display());
    let link = site.join("linked_six.py");
    std::os::unix::fs::symlink(Path::new(&six_entry).join("six.py"), &link).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&link)
        .unwrap();
    std::io::Write::write_all(&mut f, b"\nLINKED = 1\n").unwrap();
    drop(f);
    py(
        &venv,
        &["-c", "import linked_six; assert linked_six.LINKED == 1"],
    );
    run_ok(cmd().arg("umount").arg(&venv));
    m.forget();
    assert!(
        std::fs::symlink_metadata(&link).unwrap().is_file(),
        "the written reference is the venv's own copy now"
    );
    let doctor =
        String::from_utf8_lossy(&run(cmd().args(["doctor", "--json"])).stdout).into_owned();
    assert!(
        doctor.contains(&format!("shared: {}", shared.display())),
        "doctor names the shared cache: {doctor}"
    );

    // the same with the caches named on the command line, in the other order
    let venv2 = s.path("v2");
    run_ok(cmd().arg("create").arg(&venv2));
    run_ok(
        cmd()
            .env_remove("VENVFS_EXTRA_CACHE_DIRS")
            .arg("sync")
            .arg(&venv2)
            .arg(&reqs)
            .arg("--cache-dir")
            .arg(&shared)
            .arg("--cache-dir")
            .arg(&own),
    );
    let manifest2 = layer_sources(&venv2);
    assert_eq!(
        manifest2
            .matches(&*shared.join("archive-v0").to_string_lossy())
            .count(),
        2,
        "both from the shared cache, named first: {manifest2}"
    );
    assert_eq!(snapshot(&shared), shared_before, "the shared cache changed");
}

/// The venv's parent directory read-only, the venv itself writable (a writable bind mount
/// of it inside a read-only one of its parent): everything venvfs writes goes into the
/// venv, its own cache directory or the runtime directory.
#[test]
fn a_read_only_parent_directory_of_the_venv_is_no_obstacle() {
    let s = Scratch::new();
    let cache = filled_cache(&s, "uv-cache", &["six-", "click-"]);
    let reqs = reqs_for(&s, &["six-", "click-"]);
    let cache_before = snapshot(&cache);
    let parent = s.path("parent");
    let venv = parent.join("v");
    let xdg = s.path("xdg");
    let cmd = || {
        let mut c = venvfs();
        c.env("UV_CACHE_DIR", &cache).env("XDG_CACHE_HOME", &xdg);
        c
    };
    run_ok(cmd().arg("create").arg(&venv));
    std::fs::write(parent.join("notes.txt"), "mine\n").unwrap();
    // the venv stays reachable, writable, at another path
    let keep = s.path("keep");
    std::fs::create_dir(&keep).unwrap();
    let keep_bind = Bind::new(&venv, &keep);
    let parent_ro = Bind::read_only(&parent);
    let venv_bind = Bind::new(&keep, &venv);
    assert!(
        std::fs::write(parent.join("x"), b"").is_err(),
        "the parent is read-only"
    );
    std::fs::write(venv.join(".probe"), b"").expect("the venv is writable");
    std::fs::remove_file(venv.join(".probe")).unwrap();
    let parent_names = || {
        let mut n: Vec<_> = std::fs::read_dir(&parent)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        n.sort();
        n
    };
    let names_before = parent_names();

    let out = run(cmd().arg("sync").arg(&venv).arg(&reqs));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    mount_import_write(&venv, cmd, "six, click");
    // a change while mounted, taken live
    run_ok(cmd().arg("mount").arg(&venv));
    let m = Mount::adopt(&venv);
    let only_six = s.path("six.txt");
    std::fs::write(&only_six, pins(&[shared_wheel("six-")])).unwrap();
    run_ok(cmd().arg("sync").arg(&venv).arg(&only_six));
    py(&venv, &["-c", "import six"]);
    run_ok(cmd().arg("umount").arg(&venv));
    m.forget();

    assert_eq!(parent_names(), names_before, "venvfs wrote beside the venv");
    drop(venv_bind);
    drop(parent_ro);
    drop(keep_bind);
    assert_eq!(
        std::fs::read_to_string(parent.join("notes.txt")).unwrap(),
        "mine\n"
    );
    assert_eq!(snapshot(&cache), cache_before, "uv's cache changed");
}
