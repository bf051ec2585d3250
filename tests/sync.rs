//! `venvfs sync` (the issue's acceptance): a venv synced from a requirements file or a
//! pylock.toml and mounted holds what `uv pip install --link-mode=copy` of the same wheels
//! gives, file for file, and behaves the same under pip, uv and importlib.metadata; pip and uv
//! keep working through the mount; wheels come from --find-links, lock paths and uv's
//! cache; bad input is refused with the file and line, changing nothing.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Shared wheels whose dependencies are all in the set, so `pip check` is clean.
const SHARED: &[&str] = &[
    "pip-",
    "numpy-",
    "six-",
    "click-",
    "setuptools-",
    "requests-",
    "urllib3-",
    "idna-",
    "certifi-",
    "charset_normalizer-",
    "sphinxcontrib_applehelp-",
    "sphinxcontrib_jsmath-",
    "jinja2-",
    "markupsafe-",
    "pyyaml-",
];

#[test]
fn sync_matches_uv_file_for_file_and_pip_and_uv_work_through_the_mount() {
    let s = Scratch::new();
    let (house, wheels) = wheelhouse(&s, SHARED);
    let before: Vec<_> = wheels.iter().map(|w| snapshot(w)).collect();
    let reqs = s.path("requirements.txt");
    std::fs::write(&reqs, format!("# pinned\n{}", pins(&wheels))).unwrap();

    let reference = s.path("uv-venv");
    uv_copy_venv(&reference, &house, &reqs);
    let ours = s.path("venvfs-venv");
    uv_venv(&ours);
    let fresh_inodes = inodes(&ours);
    let out = run_ok(
        venvfs()
            .arg("sync")
            .arg(&ours)
            .arg(&reqs)
            .arg("--find-links")
            .arg(&house)
            .arg("--no-cache"),
    );
    assert!(
        out.starts_with(&format!("Installed {} packages in ", wheels.len())),
        "{out}"
    );
    assert!(
        out.contains(" + demo-pkg==1.0\n") && out.contains(" + numpy==2.4.6\n"),
        "{out}"
    );
    // nothing was copied: only small generated files are in the venv's own directory
    let own = dir_size(&ours);
    assert!(own < 2 << 20, "the venv's own directory holds {own} bytes");
    // and not even those as files of their own: they are one generated layer, so the
    // venv's own directory holds no .dist-info and no launcher, and its inodes do not grow
    // with the packages: `.venvfs/` with the manifest and the generated layer, and the
    // unmounted-venv guard, whatever the number of wheels (issue 15: at most 1% of the
    // inodes of uv's copy for the 37-package set)
    assert_own_dir_holds_no_generated_files(&ours);
    let (own_inodes, copy_inodes) = (inodes(&ours), inodes(&reference));
    eprintln!("inodes: fresh venv {fresh_inodes}, synced {own_inodes}, uv's copy {copy_inodes}");
    assert!(
        own_inodes <= fresh_inodes + 4,
        "syncing {} wheels took the venv's own directory from {fresh_inodes} to {own_inodes} inodes",
        wheels.len()
    );
    let m = Mount::new(&ours);

    let compared = assert_same_files(&ours, &reference, "after sync");
    assert!(compared > 2000, "only {compared} files compared");
    let pip_list = |v: &Path| py(v, &["-m", "pip", "list", "--format=freeze"]);
    let uv_list = |v: &Path| {
        run_ok(
            uv().args(["pip", "list", "--format=freeze", "--python"])
                .arg(v.join("bin/python")),
        )
    };
    assert_eq!(pip_list(&ours), pip_list(&reference));
    assert_eq!(uv_list(&ours), uv_list(&reference));
    assert!(uv_list(&ours).contains("demo-pkg==1.0"));
    py(&ours, &["-m", "pip", "check"]);
    let metadata = "import importlib.metadata as m, json\n\
        ds = sorted(m.distributions(), key=lambda d: d.metadata['Name'])\n\
        print(json.dumps([(d.metadata['Name'], d.version, sorted(str(f) for f in d.files or [] if f.name != 'uv_cache.json'), \
        sorted((e.group, e.name, e.value) for e in d.entry_points)) for d in ds]))";
    assert_eq!(
        py(&ours, &["-c", metadata]),
        py(&reference, &["-c", metadata])
    );
    // scripts run, .pth files take effect, the packages work
    let script = |name: &str| run_ok(&mut Command::new(ours.join("bin").join(name)));
    assert_eq!(script("demo_pkg-main").trim(), "main 42");
    assert_eq!(script("demo_pkg-tool").trim(), "tool 42");
    assert_eq!(script("demo_pkg-plain").trim(), "plain");
    assert!(
        std::fs::read_to_string(ours.join("bin/demo_pkg-tool"))
            .unwrap()
            .starts_with(&format!(
                "#!{}",
                ours.canonicalize().unwrap().join("bin/python").display()
            )),
        "the #!python script names the venv's interpreter"
    );
    assert!(ours
        .join("include/site/python3.11/demo-pkg/demo_pkg.h")
        .is_file());
    assert!(ours.join("share/demo_pkg/readme.txt").is_file());
    py(
        &ours,
        &[
            "-c",
            "import demo_pkg_pth_mod, numpy, requests, yaml, jinja2\n\
assert numpy.linalg.inv(numpy.eye(3)).trace() == 3\n\
r = requests.Request('GET', 'http://example.org', params={'q': 'x y'}).prepare()\n\
assert r.url == 'http://example.org/?q=x+y', r.url\n\
assert yaml.safe_load('a: [1, 2]') == {'a': [1, 2]}\n\
assert jinja2.Template('{{ x }}!').render(x=1) == '1!'",
        ],
    );

    // pip uninstall through the mount removes exactly that distribution's files and keeps
    // the namespace directory another distribution shares; the same in the reference
    for v in [&ours, &reference] {
        py(
            v,
            &[
                "-m",
                "pip",
                "uninstall",
                "-q",
                "-y",
                "sphinxcontrib-applehelp",
            ],
        );
    }
    assert!(ours
        .join("lib/python3.11/site-packages/sphinxcontrib/jsmath")
        .is_dir());
    assert_same_files(&ours, &reference, "after pip uninstall");
    // pip install and uv pip install of other wheels into the mounted venv
    let extra = demo_wheel(&s.path(""), "extra_pip", "2.0");
    let extra_uv = demo_wheel(&s.path(""), "extra_uv", "3.0");
    for v in [&ours, &reference] {
        py(
            v,
            &[
                "-m",
                "pip",
                "install",
                "-q",
                "--no-index",
                "--no-deps",
                extra.to_str().unwrap(),
            ],
        );
        run_ok(
            uv().args([
                "pip",
                "install",
                "-q",
                "--link-mode=copy",
                "--no-deps",
                "--python",
            ])
            .arg(v.join("bin/python"))
            .arg(&extra_uv),
        );
    }
    assert_same_files(&ours, &reference, "after pip and uv install");
    // a generated launcher and RECORD edited through the mount are copied up, as any
    // lower file, and stay edited across a remount (the same edit in the reference)
    let launcher = "bin/demo_pkg-main";
    let record = "lib/python3.11/site-packages/six-1.17.0.dist-info/RECORD";
    for v in [&ours, &reference] {
        for rel in [launcher, record] {
            let mut text = std::fs::read_to_string(v.join(rel)).unwrap();
            text.push_str("# edited\n");
            std::fs::write(v.join(rel), text).unwrap();
        }
    }
    m.unmount();
    for rel in [launcher, record] {
        assert!(
            std::fs::read_to_string(ours.join(rel))
                .unwrap()
                .ends_with("# edited\n"),
            "{rel} is copied up into the venv's own directory"
        );
    }
    let m = Mount::new(&ours);
    assert_same_files(&ours, &reference, "after a remount");
    assert_eq!(
        run_ok(&mut Command::new(ours.join(launcher))).trim(),
        "main 42",
        "the edited launcher runs"
    );
    assert_eq!(
        run_ok(&mut Command::new(ours.join("bin/extra_uv-main"))).trim(),
        "main 42"
    );
    // sync again: what pip removed comes back, what pip and uv added goes
    let out = run_ok(
        venvfs()
            .arg("sync")
            .arg(&ours)
            .arg(&reqs)
            .args(["--no-cache", "-f"])
            .arg(&house),
    );
    assert!(out.contains(" + sphinxcontrib-applehelp=="), "{out}");
    let names = py(&ours, &["-m", "pip", "list", "--format=freeze"]);
    assert!(names.contains("sphinxcontrib-applehelp=="), "{names}");
    assert!(names.contains("sphinxcontrib-jsmath=="), "{names}");
    py(
        &ours,
        &["-c", "import importlib.util as u\nassert u.find_spec('sphinxcontrib.applehelp') and u.find_spec('sphinxcontrib.jsmath')"],
    );
    assert!(
        !ours.join("bin/extra_uv-main").exists(),
        "sync removed what uv added"
    );
    drop(m);
    assert!(
        std::fs::read_to_string(ours.join(launcher))
            .unwrap()
            .ends_with("# edited\n"),
        "sync leaves an edited launcher of an unchanged distribution alone"
    );
    let archives: Vec<_> = std::fs::read_dir(ours.join(".venvfs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("generated-"))
        .collect();
    // (the one the manifest names, and the one before, which a mount elsewhere may read)
    assert!(
        (1..=2).contains(&archives.len()),
        "generated layers left: {archives:?}"
    );
    let after: Vec<_> = wheels.iter().map(|w| snapshot(w)).collect();
    assert_eq!(before, after, "a wheel changed");
}

/// Inodes below (and of) `dir`: what a venv costs an inode quota.
fn inodes(dir: &Path) -> usize {
    entries_below(dir).len() + 1
}

/// The venv's own directory (unmounted) holds no `.dist-info` directory and no launcher:
/// installing put them into the generated layer. (`bin/` keeps the venv's interpreter
/// links and activation scripts.)
fn assert_own_dir_holds_no_generated_files(venv: &Path) {
    for (p, _) in entries_below(venv) {
        let rel = p.strip_prefix(venv).unwrap_or(&p);
        let name = rel.file_name().unwrap_or_default().to_string_lossy();
        assert!(
            !name.ends_with(".dist-info"),
            "{} is in the venv's own directory",
            rel.display()
        );
        if rel.parent() == Some(Path::new("bin")) {
            assert!(
                name.starts_with("python")
                    || name.starts_with("activate")
                    || name.starts_with("Activate")
                    || name.starts_with("deactivate")
                    || name.starts_with("pydoc"),
                "{} is in the venv's own directory",
                rel.display()
            );
        }
    }
}

fn dir_size(dir: &Path) -> u64 {
    entries_below(dir)
        .iter()
        .filter(|(_, t)| t.is_file())
        .map(|(p, _)| p.symlink_metadata().unwrap().len())
        .sum()
}

#[test]
fn sync_from_a_pylock_written_by_uv_checks_hashes_and_changes_versions() {
    let s = Scratch::new();
    let (house, wheels) = wheelhouse(
        &s,
        &[
            "requests-",
            "urllib3-",
            "idna-",
            "certifi-",
            "charset_normalizer-",
            "six-",
        ],
    );
    let before: Vec<_> = wheels.iter().map(|w| snapshot(w)).collect();
    let input = s.path("in.txt");
    std::fs::write(&input, "requests\nsix\ndemo_pkg\n").unwrap();
    let lock = s.path("pylock.toml");
    run_ok(
        uv().args([
            "pip",
            "compile",
            "-q",
            "--no-index",
            "--python-version",
            "3.11",
            "-f",
        ])
        .arg(&house)
        .arg(&input)
        .arg("-o")
        .arg(&lock),
    );
    let text = std::fs::read_to_string(&lock).unwrap();
    assert!(text.contains("sha256"), "uv writes hashes: {text}");
    let venv = s.path("v");
    run_ok(venvfs().arg("create").arg(&venv));
    let out = run_ok(venvfs().arg("sync").arg(&venv).arg(&lock).arg("--no-cache"));
    assert!(out.starts_with("Installed 7 packages"), "{out}");
    {
        let _m = Mount::new(&venv);
        py(&venv, &["-c", "import requests, six, demo_pkg"]);
    }
    // a new version of one package: only it changes
    let v2 = demo_wheel(&house, "demo_pkg", "2.0");
    std::fs::write(&input, "requests\nsix\ndemo_pkg==2.0\n").unwrap();
    run_ok(
        uv().args([
            "pip",
            "compile",
            "-q",
            "--no-index",
            "--python-version",
            "3.11",
            "-f",
        ])
        .arg(&house)
        .arg(&input)
        .arg("-o")
        .arg(&lock),
    );
    let out = run_ok(venvfs().arg("sync").arg(&venv).arg(&lock).arg("--no-cache"));
    assert!(
        out.contains("Uninstalled 1 package") && out.contains(" - demo-pkg==1.0\n + demo-pkg==2.0"),
        "{out}"
    );
    // a wheel that is not the one locked is refused, and nothing changes
    let manifest = std::fs::read(venv.join(".venvfs/manifest.toml")).unwrap();
    let replaced = std::fs::read(&v2).unwrap();
    std::fs::write(&v2, b"not the locked wheel").unwrap();
    let out = run(venvfs().arg("sync").arg(&venv).arg(&lock).arg("--no-cache"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("refused") && err.contains("demo_pkg-2.0-py3-none-any.whl has sha256"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(venv.join(".venvfs/manifest.toml")).unwrap(),
        manifest
    );
    std::fs::write(&v2, replaced).unwrap();
    let after: Vec<_> = wheels.iter().map(|w| snapshot(w)).collect();
    assert_eq!(before, after, "a wheel changed");
}

#[test]
fn sync_from_uvs_cache_serves_its_unpacked_wheels_in_place() {
    let s = Scratch::new();
    let cache = s.path("uv-cache");
    let (house, wheels) = wheelhouse(&s, &["six-", "click-", "numpy-"]);
    let reqs = s.path("r.txt");
    std::fs::write(&reqs, pins(&wheels[..2])).unwrap();
    // fill uv's cache the way users do: by installing with uv once
    let fill = s.path("fill");
    uv_venv(&fill);
    let fill_cache = |reqs: &Path| fill_uv_cache(&fill, &house, reqs, &cache);
    fill_cache(&reqs);
    let cache_before = snapshot(&cache.join("archive-v0"));
    let venv = s.path("v");
    run_ok(venvfs().arg("create").arg(&venv));
    let xdg = s.path("xdg");
    let sync = |reqs: &Path| {
        run(venvfs()
            .arg("sync")
            .arg(&venv)
            .arg(reqs)
            .env("UV_CACHE_DIR", &cache)
            .env("XDG_CACHE_HOME", &xdg))
    };
    let out = sync(&reqs);
    assert!(out.status.success(), "{out:?}");
    let manifest = std::fs::read_to_string(venv.join(".venvfs/manifest.toml")).unwrap();
    assert!(
        manifest.matches("archive-v0/").count() == 2,
        "layers point into uv's cache: {manifest}"
    );
    {
        let _m = Mount::new(&venv);
        py(&venv, &["-c", "import six, click"]);
    }
    assert_eq!(
        snapshot(&cache.join("archive-v0")),
        cache_before,
        "uv's cache changed"
    );
    // missing pins are all listed, with what would fetch them
    std::fs::write(
        &reqs,
        format!("{}absent==1.0\nnumpy==2.4.6\n", pins(&wheels[..2])),
    )
    .unwrap();
    let out = sync(&reqs);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no usable wheel for 2 of 4"), "{err}");
    assert!(
        err.contains("absent==1.0  (") && err.contains("numpy==2.4.6  ("),
        "{err}"
    );
    assert!(
        err.contains("uv pip install --no-deps") && err.contains("pip download"),
        "{err}"
    );
    assert!(
        err.contains("cp311-cp311-manylinux"),
        "the acceptable tags: {err}"
    );
    // the index picks up what uv adds to its cache since
    std::fs::write(s.path("numpy.txt"), "numpy==2.4.6\n").unwrap();
    fill_cache(&s.path("numpy.txt"));
    std::fs::write(&reqs, format!("{}numpy==2.4.6\n", pins(&wheels[..2]))).unwrap();
    let out = sync(&reqs);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(" + numpy==2.4.6"));
    let _m = Mount::new(&venv);
    py(
        &venv,
        &["-c", "import numpy; assert numpy.ones(3).sum() == 3"],
    );
}

#[test]
fn bad_pin_files_are_refused_with_file_and_line_and_change_nothing() {
    let s = Scratch::new();
    let (house, wheels) = wheelhouse(&s, &["six-"]);
    let venv = s.path("v");
    run_ok(venvfs().arg("create").arg(&venv));
    let good = s.path("good.txt");
    std::fs::write(&good, pins(&wheels[..1])).unwrap();
    run_ok(
        venvfs()
            .arg("sync")
            .arg(&venv)
            .arg(&good)
            .arg("--no-cache")
            .arg("-f")
            .arg(&house),
    );
    let state = snapshot(&venv);
    for (file, text, needle) in [
        ("r1.txt", "six==1.17.0\nnumpy>=2\n", "r1.txt:2: `numpy>=2` is not an exact pin"),
        ("r2.txt", "six==1.17.0 --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000\n", "has sha256"),
        ("pylock.toml", "lock-version = \"1.0\"\n[[packages]]\nname = \"six\"\n", "pylock.toml:3: six comes from a source without a version"),
        ("pylock.bad.toml", "lock-version = \"1.0\"\n[[packages]\n", "pylock.bad.toml:2: not a valid pylock.toml"),
        ("r3.txt", "-e ./src\n", "r3.txt:1: editable"),
    ] {
        let path = s.path(file);
        std::fs::write(&path, text).unwrap();
        let out = run(venvfs().arg("sync").arg(&venv).arg(&path).arg("--no-cache").arg("-f").arg(&house));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file} accepted");
        assert!(err.contains(needle), "{file}: {err}");
        assert_eq!(snapshot(&venv), state, "{file} changed the venv");
    }
    // a wheel for another platform is refused, naming its tags
    let other = s.path("other-1.0-cp312-cp312-win_amd64.whl");
    std::fs::copy(shared_wheel("six-"), &other).unwrap();
    let out = run(venvfs().arg("install").arg(&venv).arg(&other));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cp312-cp312-win_amd64"));
    assert_eq!(snapshot(&venv), state);
}

#[test]
fn syncing_a_mounted_venv_shows_the_change_at_once_and_leaves_a_current_one_alone() {
    let s = Scratch::new();
    let (house, wheels) = wheelhouse(&s, &["six-", "click-"]);
    let venv = s.path("v");
    run_ok(venvfs().arg("create").arg(&venv));
    let (one, two) = (s.path("one.txt"), s.path("two.txt"));
    std::fs::write(&one, pins(&wheels[..1])).unwrap();
    std::fs::write(&two, pins(&wheels[..2])).unwrap();
    let sync = |file: &Path| {
        run(venvfs()
            .arg("sync")
            .arg(&venv)
            .arg(file)
            .args(["--no-cache", "-f"])
            .arg(&house))
    };
    assert!(sync(&one).status.success());
    let m = Mount::new(&venv);
    let pid = m.daemon_pid();
    let out = sync(&one);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Audited 1 package"));
    assert_eq!(m.daemon_pid(), pid, "a current venv is not remounted");
    let out = sync(&two);
    assert!(out.status.success(), "{out:?}");
    py(&venv, &["-c", "import click, six"]);
    assert_eq!(
        m.daemon_pid(),
        pid,
        "the change is taken live, not by a remount"
    );
    // and back: click goes at once
    assert!(sync(&one).status.success());
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", "import click"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "click is gone");
    assert_eq!(m.daemon_pid(), pid);
}

/// A venv `venvfs sync` filled with six and click from a uv cache of the test's own: the
/// cache, the venv, and six's entry in the cache.
fn six_and_click_from_uv_cache(
    s: &Scratch,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let cache = s.path("uv-cache");
    let (house, wheels) = wheelhouse(s, &["six-", "click-"]);
    let reqs = s.path("r.txt");
    std::fs::write(&reqs, pins(&wheels)).unwrap();
    let fill = s.path("fill");
    uv_venv(&fill);
    fill_uv_cache(&fill, &house, &reqs, &cache);
    let venv = s.path("v");
    run_ok(venvfs().arg("create").arg(&venv));
    run_ok(
        venvfs()
            .arg("sync")
            .arg(&venv)
            .arg(&reqs)
            .env("UV_CACHE_DIR", &cache)
            .env("XDG_CACHE_HOME", s.path("xdg")),
    );
    let manifest = std::fs::read_to_string(venv.join(".venvfs/manifest.toml")).unwrap();
    let six_entry = std::fs::read_dir(cache.join("archive-v0"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| manifest.contains(&p.display().to_string()) && p.join("six.py").exists())
        .expect("six's layer is an entry of uv's cache");
    (cache, venv, six_entry)
}

/// `uv cache clean six` and a re-download unpack six again under a new archive id: the next
/// mount finds the same wheel there (same RECORD) and serves it; with no such entry, the
/// mount refuses and names the package and how to restore it.
#[test]
fn a_pruned_cache_entry_made_again_heals_at_mount() {
    let s = Scratch::new();
    let (cache, venv, six_entry) = six_and_click_from_uv_cache(&s);
    // pruned, and unpacked again under a new id
    let again = cache.join("archive-v0/made-again-id");
    std::fs::rename(&six_entry, &again).unwrap();
    let cache_before = snapshot(&cache.join("archive-v0"));
    let mount = run(venvfs()
        .arg("mount")
        .arg(&venv)
        .env("XDG_CACHE_HOME", s.path("xdg")));
    let err = String::from_utf8_lossy(&mount.stderr);
    assert!(mount.status.success(), "{err}");
    let m = Mount::adopt(&venv);
    assert!(err.contains("healed layer six==1.17.0"), "{err}");
    py(&venv, &["-c", "import six, click"]);
    m.unmount();
    assert_eq!(
        snapshot(&cache.join("archive-v0")),
        cache_before,
        "uv's cache changed"
    );
    // gone for good: the mount refuses, naming the package and the fix
    std::fs::remove_dir_all(&again).unwrap();
    let out = run(venvfs()
        .arg("mount")
        .arg(&venv)
        .env("XDG_CACHE_HOME", s.path("xdg")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("six==1.17.0") && err.contains("uv pip install"),
        "{err}"
    );
}

/// `uv cache clean six` while the venv is mounted: within seconds the mount stops showing
/// six (an import then finds no module, instead of failing on files the daemon can no
/// longer read: EIO, or SIGBUS in an extension's `dlopen`), click still imports, `venvfs
/// status` names what is missing, a live install still works (the layers are built without
/// the gone one), and once the entry is back six shows again.
#[test]
fn a_cache_entry_removed_while_mounted_stops_showing_until_it_is_back() {
    let s = Scratch::new();
    let (cache, venv, six_entry) = six_and_click_from_uv_cache(&s);
    // (each entry: the test's own renames change archive-v0's mtime)
    let entries = || -> Vec<_> {
        let mut all: Vec<_> = std::fs::read_dir(cache.join("archive-v0"))
            .unwrap()
            .flatten()
            .map(|e| snapshot(&e.path()))
            .collect();
        all.sort_by_key(|m| format!("{m:?}"));
        all
    };
    let cache_before = entries();
    let idna = shared_wheel("idna-");
    let idna_before = snapshot(&idna);
    let m = Mount::new(&venv);
    py(&venv, &["-c", "import six, click"]);
    let site = venv.join("lib/python3.11/site-packages");
    // (a program that has six open while its entry goes: the kernel holds its node)
    let holder = std::fs::File::open(site.join("six.py")).unwrap();
    // (and nodes the kernel knows of but the daemon never read: looked up only)
    for name in ["LICENSE", "top_level.txt", "WHEEL"] {
        std::fs::metadata(site.join("six-1.17.0.dist-info").join(name)).unwrap();
    }
    let shows_six = || site.join("six.py").exists();
    let within = |what: &str, want: bool| {
        let start = std::time::Instant::now();
        while shows_six() != want {
            assert!(start.elapsed().as_secs() < 10, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    // removed as `uv cache clean six` does (a rename would not do: the daemon's
    // descriptors of the entry follow it), kept aside with its times to put back
    let aside = s.path("six-entry-aside");
    run_ok(Command::new("cp").arg("-a").arg(&six_entry).arg(&aside));
    std::fs::remove_dir_all(&six_entry).unwrap();
    within("six still shows 10 s after its cache entry went", false);
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", "import six"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ModuleNotFoundError"), "{err}");
    py(&venv, &["-c", "import click"]);
    // every other file the mount shows is still the right one (the kernel held nodes of
    // six's layer, whose files can no longer be opened: taking them out of the view must
    // not leave the tree half changed)
    let click_entry = std::fs::read_dir(cache.join("archive-v0"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("click/core.py").exists())
        .expect("click's cache entry");
    for e in std::fs::read_dir(click_entry.join("click"))
        .unwrap()
        .flatten()
    {
        let shown = std::fs::read(site.join("click").join(e.file_name()));
        assert_eq!(
            shown.ok(),
            std::fs::read(e.path()).ok(),
            "{:?} shows other bytes",
            e.file_name()
        );
    }
    let status = run_ok(venvfs().arg("status").arg(&venv));
    assert!(
        status.contains("source missing") && status.contains("six==1.17.0"),
        "{status}"
    );
    run_ok(venvfs().arg("install").arg(&venv).arg(&idna));
    py(&venv, &["-c", "import idna, click"]);
    drop(holder);
    // back (a restore by hand, or a backup): shown again
    run_ok(Command::new("cp").arg("-a").arg(&aside).arg(&six_entry));
    within(
        "six does not show again 10 s after its cache entry came back",
        true,
    );
    py(&venv, &["-c", "import six, click, idna"]);
    m.unmount();
    assert_eq!(entries(), cache_before, "uv's cache changed");
    assert_eq!(snapshot(&idna), idna_before, "the wheel changed");
}

/// A distribution uninstalled through the mount (`uv pip uninstall`, `uv remove`) leaves its
/// layer hidden under whiteouts; once its cache entry is gone too (`uv cache clean`), the
/// next mount drops that layer instead of refusing to mount for a package nobody uses.
#[test]
fn a_layer_uninstalled_through_the_mount_needs_no_cache_entry() {
    let s = Scratch::new();
    let (cache, venv, six_entry) = six_and_click_from_uv_cache(&s);
    let m = Mount::new(&venv);
    run_ok(
        uv().args(["pip", "uninstall", "--python"])
            .arg(venv.join("bin/python"))
            .arg("six"),
    );
    // the cache entry cleaned away (as `uv cache clean six` does): status says that the
    // next mount drops the layer (and not `venvfs uninstall six`, which would remove what
    // is installed under the name now too)
    std::fs::remove_dir_all(&six_entry).unwrap();
    let status = run_ok(venvfs().arg("status").arg(&venv));
    let advice = status
        .lines()
        .find(|l| l.contains("uninstalled through the mount"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        advice.contains(&format!(
            "venvfs umount {0} && venvfs mount {0}",
            venv.display()
        )),
        "{advice}"
    );
    m.unmount();
    let cache_before = snapshot(&cache.join("archive-v0"));
    let m = Mount::new(&venv);
    py(&venv, &["-c", "import click"]);
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", "import six"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "six stays uninstalled");
    let listed = run_ok(venvfs().arg("layer").arg("list").arg(&venv));
    assert!(!listed.contains("six"), "{listed}");
    assert!(listed.contains("click"), "{listed}");
    let status = run_ok(venvfs().arg("status").arg(&venv));
    assert!(status.contains("click"), "{status}");
    assert!(!status.contains("source missing"), "{status}");
    m.unmount();
    assert_eq!(
        snapshot(&cache.join("archive-v0")),
        cache_before,
        "uv's cache changed"
    );
}

/// A sync killed at any moment (kill -9) leaves the venv consistent: its manifest names a
/// generated layer that exists, which holds the RECORD of every distribution it installed
/// (the archive is written before the manifest that names it, the commit point), and the
/// next sync finishes the job: the venv then shows exactly the pins, with their launchers,
/// and the generated layers of killed syncs are gone.
#[test]
fn a_sync_killed_at_any_moment_leaves_a_consistent_venv() {
    let s = Scratch::new();
    let (house, wheels) = wheelhouse(&s, &["pip-", "six-", "click-", "wheel-", "setuptools-"]);
    let (a, b) = (s.path("a.txt"), s.path("b.txt"));
    // a: pip six click demo; b: six wheel setuptools demo (each change removes and adds)
    std::fs::write(
        &a,
        pins(&[&wheels[0], &wheels[1], &wheels[2], &wheels[5]].map(|w| w.to_path_buf())),
    )
    .unwrap();
    std::fs::write(
        &b,
        pins(&[&wheels[1], &wheels[3], &wheels[4], &wheels[5]].map(|w| w.to_path_buf())),
    )
    .unwrap();
    let check = r#"
import sys, tomllib, zipfile, os
venv = sys.argv[1]
path = os.path.join(venv, ".venvfs", "manifest.toml")
if not os.path.exists(path):
    sys.exit(0)
m = tomllib.load(open(path, "rb"))
names = set()
if "generated" in m:
    names = set(zipfile.ZipFile(os.path.join(venv, ".venvfs", m["generated"])).namelist())
for l in m.get("layer", []):
    record = f"lib/python3.11/site-packages/{l['name']}-{l['version']}.dist-info/RECORD"
    assert record in names or os.path.isfile(os.path.join(venv, record)), f"{record} missing"
"#;
    let mut seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for round in 0..16 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = std::time::Duration::from_micros((seed >> 33) % 60_000);
        let file = if round % 2 == 0 { &a } else { &b };
        let mut child = venvfs()
            .arg("sync")
            .arg(&s.venv)
            .arg(file)
            .args(["--no-cache", "--offline", "-f"])
            .arg(&house)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let out = run(Command::new("python3").args(["-c", check]).arg(&s.venv));
        assert!(
            out.status.success(),
            "after a kill {delay:?} into a sync: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    run_ok(
        venvfs()
            .arg("sync")
            .arg(&s.venv)
            .arg(&b)
            .args(["--no-cache", "--offline", "-f"])
            .arg(&house),
    );
    let _m = s.mount();
    let listed = s.python_ok(
        "import importlib.metadata as m\nprint(sorted(d.metadata['Name'] for d in m.distributions()))",
    );
    assert_eq!(listed, "['demo_pkg', 'setuptools', 'six', 'wheel']");
    assert_eq!(
        run_ok(Command::new(s.venv.join("bin/wheel")).arg("version")).trim(),
        "wheel 0.48.0"
    );
    assert!(!s.venv.join("bin/pip").exists());
    drop(_m);
    let archives = std::fs::read_dir(s.venv.join(".venvfs"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("generated-"))
        .count();
    assert!((1..=2).contains(&archives), "{archives} generated layers");
}

/// A venv installed before the generated layer (its generated files are files of its own,
/// its manifest of format version 1) keeps working, and the next sync moves what
/// installing wrote into the generated layer, but for a file the user edited, which
/// stays and shadows it.
#[test]
fn a_venv_from_before_the_generated_layer_moves_into_it_at_the_next_sync() {
    let s = Scratch::new();
    let (house, wheels) = wheelhouse(&s, &["six-", "wheel-", "click-"]);
    let reqs = s.path("reqs.txt");
    std::fs::write(&reqs, pins(&wheels)).unwrap();
    let sync = || {
        run_ok(
            venvfs()
                .arg("sync")
                .arg(&s.venv)
                .arg(&reqs)
                .args(["--no-cache", "-f"])
                .arg(&house),
        )
    };
    sync();
    // as an older venvfs left it: the generated files unpacked into the own directory
    let unpack = r#"
import tomllib, zipfile, os, re, sys
v = sys.argv[1]
path = os.path.join(v, ".venvfs", "manifest.toml")
m = tomllib.load(open(path, "rb"))
archive = os.path.join(v, ".venvfs", m["generated"])
z = zipfile.ZipFile(archive)
for i in z.infolist():
    p = os.path.join(v, i.filename)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    open(p, "wb").write(z.read(i))
    os.chmod(p, (i.external_attr >> 16) & 0o7777)
z.close()
os.remove(archive)
text = re.sub(r"^generated = .*\n", "", open(path).read(), flags=re.M)
open(path, "w").write(text.replace("version = 2", "version = 1"))
"#;
    run_ok(Command::new("python3").args(["-c", unpack]).arg(&s.venv));
    let site = s.venv.join("lib/python3.11/site-packages");
    assert!(site.join("six-1.17.0.dist-info/RECORD").is_file());
    let launcher = s.venv.join("bin/wheel");
    let mut edited = std::fs::read_to_string(&launcher).unwrap();
    edited.push_str("# edited\n");
    std::fs::write(&launcher, &edited).unwrap();
    let m = s.mount();
    let shown = |s: &Scratch| {
        s.python_ok(
            "import importlib.metadata as m\nprint(sorted((d.metadata['Name'], len(d.files)) for d in m.distributions()))",
        )
    };
    let before = shown(&s);
    assert_eq!(
        run_ok(Command::new(&launcher).arg("version")).trim(),
        "wheel 0.48.0"
    );
    drop(m);

    let out = sync();
    assert!(out.starts_with("Audited 4 packages"), "{out}");
    assert!(
        !site.join("six-1.17.0.dist-info").exists() && !s.venv.join("bin/demo_pkg-main").exists(),
        "the generated files moved into the generated layer"
    );
    assert_eq!(std::fs::read_to_string(&launcher).unwrap(), edited);
    let m = s.mount();
    assert_eq!(shown(&s), before);
    assert!(site.join("six-1.17.0.dist-info/RECORD").is_file());
    assert_eq!(std::fs::read_to_string(&launcher).unwrap(), edited);
    assert_eq!(
        run_ok(&mut Command::new(s.venv.join("bin/demo_pkg-main"))).trim(),
        "main 42"
    );
    drop(m);
}
