//! Whole-venv operations on a mounted venv (`rm -rf`, `uv venv --clear`, `python -m venv
//! --clear`), and uv changing the venv while it is not mounted: the venv ends up as they
//! say, and nothing they removed comes back at the next mount (unmounted, uv sees none of
//! the distributions venvfs installed: their `.dist-info` is in the generated layer).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A venv with six and idna installed by venvfs, and snapshots of their wheels.
fn installed() -> (Scratch, Vec<(PathBuf, Snapshot)>) {
    let s = Scratch::new();
    let wheels = [shared_wheel("six-"), shared_wheel("idna-")];
    run_ok(venvfs().arg("install").arg(&s.venv).args(&wheels));
    let snaps = wheels
        .into_iter()
        .map(|w| (w.clone(), snapshot(&w)))
        .collect();
    (s, snaps)
}

type Snapshot = std::collections::BTreeMap<PathBuf, (u32, u64, i64, u64)>;

fn assert_wheels_unchanged(snaps: &[(PathBuf, Snapshot)]) {
    for (wheel, before) in snaps {
        assert_eq!(&snapshot(wheel), before, "{} changed", wheel.display());
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

fn layers(venv: &Path) -> String {
    run_ok(venvfs().args(["layer", "list"]).arg(venv))
}

/// Neither package imports, and site-packages shows neither.
fn assert_gone(s: &Scratch) {
    let out = s.python("import six");
    assert!(!out.status.success(), "six imports again");
    let site = s.venv.join("lib/python3.11/site-packages");
    let left: Vec<String> = names(&site)
        .into_iter()
        .filter(|n| n.starts_with("six") || n.starts_with("idna"))
        .collect();
    assert!(left.is_empty(), "site-packages still shows {left:?}");
}

fn manifest_text(venv: &Path) -> String {
    std::fs::read_to_string(venv.join(".venvfs/manifest.toml")).unwrap()
}

#[test]
fn rm_rf_through_the_mount_empties_the_venv_and_nothing_comes_back() {
    let (s, snaps) = installed();
    let m = s.mount();
    s.python_ok("import six, idna");
    // `rm -rf VENV/*`, then `rm -rf VENV`, which fails on the mount point only
    for name in names(&s.venv) {
        run_ok(Command::new("rm").arg("-rf").arg(s.venv.join(name)));
    }
    let out = run(Command::new("rm").arg("-rf").arg(&s.venv));
    assert!(!out.status.success(), "the mount point cannot go");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("busy"), "{err}");
    assert!(names(&s.venv).is_empty(), "left: {:?}", names(&s.venv));
    m.unmount();
    let manifest = manifest_text(&s.venv);
    assert!(!manifest.contains("[[layer]]"), "{manifest}");
    // a venv made again in the directory shows nothing of the old one
    run_ok(
        Command::new("python3")
            .args(["-m", "venv", "--without-pip"])
            .arg(&s.venv),
    );
    let m = s.mount();
    assert_gone(&s);
    assert_eq!(layers(&s.venv), "");
    m.unmount();
    assert_wheels_unchanged(&snaps);
}

/// A command that clears the venv at a path.
type Clear = fn(&Path) -> Command;

#[test]
fn venv_clear_through_the_mount_makes_a_fresh_venv() {
    let clears: [(&str, Clear); 2] = [
        ("uv venv --clear", |v| {
            let mut c = uv();
            c.args(["venv", "--clear", "--python", "python3"]).arg(v);
            c
        }),
        ("python3 -m venv --clear", |v| {
            let mut c = Command::new("python3");
            c.args(["-m", "venv", "--clear", "--without-pip"]).arg(v);
            c
        }),
    ];
    for (what, clear) in clears {
        let (s, snaps) = installed();
        let m = s.mount();
        s.python_ok("import six, idna");
        let out = run(&mut clear(&s.venv));
        assert!(
            out.status.success(),
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_gone(&s);
        s.python_ok("import sys; assert sys.prefix != sys.base_prefix");
        // the new activation script tells uv to link again (the venv maker wrote one
        // without), and status counts no layer
        let activate = s.venv.join("bin/activate");
        let start = std::time::Instant::now();
        while !std::fs::read_to_string(&activate).is_ok_and(|t| t.contains("UV_LINK_MODE")) {
            assert!(
                start.elapsed().as_secs() < 10,
                "{what}: bin/activate not patched again"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let status = run_ok(venvfs().arg("status").arg(&s.venv));
        assert!(status.contains(" 0 layers;"), "{what}: {status}");
        m.unmount();
        assert!(!manifest_text(&s.venv).contains("[[layer]]"), "{what}");
        let m = s.mount();
        assert_gone(&s);
        assert_eq!(layers(&s.venv), "", "{what}");
        m.unmount();
        assert_wheels_unchanged(&snaps);
    }
}

/// The daemon looks for a new activation script (see the test above) only after names were
/// made through the mount: an idle mount asks the venv's own directory nothing. (On a
/// network filesystem each look is a request to the server: it looked every 2 s.)
#[test]
fn an_idle_mount_looks_at_nothing_in_the_venvs_own_directory() {
    let (s, snaps) = installed();
    // a file of the venv's own that nothing has looked at: the trace's control
    std::fs::write(s.venv.join("control.txt"), "x").unwrap();
    let m = s.mount();
    s.python_ok("import six, idna");
    // every file and stat call of the daemon's threads for 6 s (three of the old looks)
    let log = s.path("daemon.strace");
    let trace = daemon_calls(m.daemon_pid(), 6, "%file,%stat", &log, || {
        assert!(s.venv.join("control.txt").is_file());
    });
    let why = "an idle daemon looked at the activation script";
    assert_traced(&trace, "control.txt", "activate", why);
    m.unmount();
    assert_wheels_unchanged(&snaps);
}

/// The target of a link of the venv's own (`bin/python`) is read from disk once: the kernel
/// asks again when its copy is reclaimed, and on a network filesystem each read costs
/// requests to the server, for every process that starts the venv's Python.
#[test]
fn a_link_of_the_venvs_own_is_read_from_disk_once() {
    let (s, snaps) = installed();
    std::os::unix::fs::symlink("somewhere", s.venv.join("control-link")).unwrap();
    let m = s.mount();
    let python = s.venv.join("bin/python");
    let target = std::fs::read_link(&python).unwrap();
    let log = s.path("links.strace");
    let trace = daemon_calls(m.daemon_pid(), 4, "readlink,readlinkat", &log, || {
        // the kernel forgets its copy of the link (needs root)
        std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop the page cache (root)");
        assert_eq!(std::fs::read_link(&python).unwrap(), target);
        let control = std::fs::read_link(s.venv.join("control-link")).unwrap();
        assert_eq!(control, Path::new("somewhere"));
    });
    let why = "the daemon read bin/python again";
    assert_traced(&trace, "control-link", "bin/python", why);
    m.unmount();
    assert_wheels_unchanged(&snaps);
}

#[test]
fn what_uv_uninstalls_while_unmounted_stays_uninstalled() {
    let (s, snaps) = installed();
    let python = s.venv.join("bin/python");
    let m = s.mount();
    // (uv remembers the interpreter it asked while mounted, so later it does not run the
    // venv's Python, whose guard would stop it)
    let listed = run_ok(uv().args(["pip", "list", "--python"]).arg(&python));
    assert!(listed.contains("six"), "{listed}");
    // idna uninstalled through the mount: the mount saw it, its whiteouts keep it gone
    run_ok(
        uv().args(["pip", "uninstall", "--python"])
            .arg(&python)
            .arg("idna"),
    );
    m.unmount();
    // Unmounted, uv sees nothing of what venvfs installed: its `.dist-info` files are in
    // the generated layer, not in the venv's own directory, so there is nothing of six
    // for uv to uninstall, and nothing it could half remove.
    let listed = run(uv().args(["pip", "list", "--python"]).arg(&python));
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains("six"),
        "{listed:?}"
    );
    let own_before = snapshot(&s.venv.join("lib"));
    let _ = run(uv()
        .args(["pip", "uninstall", "--python"])
        .arg(&python)
        .arg("six"));
    assert_eq!(snapshot(&s.venv.join("lib")), own_before);
    let out = run(venvfs().arg("mount").arg(&s.venv));
    let m = Mount::adopt(&s.venv);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("uninstalled"), "{said}");
    s.python_ok("import six");
    // through the mount uv uninstalls it, and it stays gone across a remount
    run_ok(
        uv().args(["pip", "uninstall", "--python"])
            .arg(&python)
            .arg("six"),
    );
    m.unmount();
    let m = s.mount();
    assert_gone(&s);
    // (and its layer, which showed nothing any more, is dropped at that mount)
    let left = layers(&s.venv);
    assert!(!left.contains("idna"), "removed through the mount: {left}");
    let listed = run_ok(uv().args(["pip", "list", "--python"]).arg(&python));
    assert!(
        !listed.contains("six") && !listed.contains("idna"),
        "{listed}"
    );
    m.unmount();
    assert_wheels_unchanged(&snaps);
}

/// `python -m venv --clear` through the mount leaves `lib` made again (opaque); pip's
/// copies installed below it are given back by `venvfs adopt` (which makes `lib` plain,
/// so the new layers show through), live, and the venv shows the same after a remount.
#[test]
fn copies_installed_after_venv_clear_are_adopted() {
    let (s, snaps) = installed();
    let m = s.mount();
    run_ok(
        Command::new("python3")
            .args(["-m", "venv", "--clear", "--without-pip"])
            .arg(&s.venv),
    );
    assert_gone(&s);
    let cache = s.path("uv-cache");
    let wheels = shared_wheel("six-").parent().unwrap().to_owned();
    uv_pip(
        &s.venv,
        &cache,
        &["install", "--link-mode=copy", "six"],
        &wheels,
    );
    s.python_ok("import six");
    let copies = run_ok(venvfs().arg("status").arg(&s.venv));
    assert!(copies.contains("copies"), "{copies}");
    let said = run_ok(
        venvfs()
            .arg("adopt")
            .arg(&s.venv)
            .arg("--find-links")
            .arg(&wheels)
            .env("UV_CACHE_DIR", &cache),
    );
    assert!(said.contains("six==1.17.0: 5 copies removed"), "{said}");
    s.python_ok("import six, sys; assert six.__file__.startswith(sys.prefix)");
    let status = run_ok(venvfs().arg("status").arg(&s.venv));
    assert!(
        status.contains("six==1.17.0") && !status.contains("copies"),
        "{status}"
    );
    m.unmount();
    let site = s.venv.join("lib/python3.11/site-packages");
    assert!(!site.join("six.py").exists(), "the copy is still there");
    assert!(
        !s.venv.join("lib/.wh..wh..opq").exists(),
        "lib is still opaque"
    );
    let m = s.mount();
    s.python_ok("import six, sys; assert six.__file__.startswith(sys.prefix)");
    let out = s.python("import idna");
    assert!(!out.status.success(), "idna (cleared) shows again");
    m.unmount();
    assert_wheels_unchanged(&snaps);
}

/// idna installed by venvfs, uninstalled through the mount and installed again as copies
/// by uv (its directories made again: opaque), then uninstalled by uv while unmounted: uv
/// leaves the directories, which hold only venvfs's markers. The next mount removes them,
/// so `import idna` fails as uv meant, rather than finding an empty namespace package.
#[test]
fn a_package_uv_removed_while_unmounted_leaves_no_empty_directory() {
    let (s, snaps) = installed();
    let cache = s.path("uv-cache");
    let wheels = shared_wheel("idna-").parent().unwrap().to_owned();
    let m = s.mount();
    uv_pip(&s.venv, &cache, &["uninstall", "idna"], &wheels);
    uv_pip(
        &s.venv,
        &cache,
        &["install", "--link-mode=copy", "idna"],
        &wheels,
    );
    s.python_ok("import idna; assert idna.__file__");
    m.unmount();
    let site = s.venv.join("lib/python3.11/site-packages");
    assert!(
        site.join("idna/.wh..wh..opq").exists(),
        "the test's premise"
    );
    uv_pip(&s.venv, &cache, &["uninstall", "idna"], &wheels);
    assert!(site.join("idna").is_dir(), "uv left the directory");
    let out = run(venvfs().arg("mount").arg(&s.venv));
    let m = Mount::adopt(&s.venv);
    assert!(out.status.success(), "{out:?}");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("removed lib/python3.11/site-packages/idna, which uv or pip emptied"),
        "{said}"
    );
    let out = s.python("import idna");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No module named 'idna'"),
        "{out:?}"
    );
    let left: Vec<String> = names(&site)
        .into_iter()
        .filter(|n| n.starts_with("idna"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    s.python_ok("import six");
    m.unmount();
    assert_wheels_unchanged(&snaps);
}
