//! `venvfs adopt` (issue 12): a venv uv filled with copies (`--link-mode=copy`) becomes a
//! venvfs venv whose distributions are layers of uv's unpacked wheels. Mounted, it shows
//! what it showed before: the same `pip list`, importlib.metadata, files and contents, the
//! user's edits and deletions kept; uv's cache is never written; and a `kill -9` at any
//! moment of an adopt leaves a venv that works, which a second adopt finishes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// The test wheels installed: pure Python and compiled, a `.pth`, and pip (to ask it).
const PACKAGES: &[&str] = &[
    "pip",
    "six",
    "idna",
    "click",
    "pyyaml",
    "markupsafe",
    "jinja2",
    "requests",
    "urllib3",
    "certifi",
    "charset_normalizer",
];

/// A wheel with what an installer rewrites or generates: a `#!python` script in
/// `.data/scripts` and a console script; plus `.data/data` and `.data/headers`.
fn demo_wheel(dir: &Path) -> PathBuf {
    let data = "demo_pkg-1.0.data";
    build_wheel(
        dir,
        "demo_pkg",
        "1.0",
        &[
            (
                "demo_pkg/__init__.py",
                b"VALUE = 42\ndef main():\n    print('main', VALUE)\n",
                true,
            ),
            ("demo_pkg/extra.py", b"X = 1\n", false),
            (
                &format!("{data}/scripts/demo-tool"),
                b"#!python\nimport demo_pkg\nprint('tool', demo_pkg.VALUE)\n",
                false,
            ),
            (
                &format!("{data}/headers/demo.h"),
                b"int demo(void);\n",
                false,
            ),
            (
                &format!("{data}/data/share/demo/readme.txt"),
                b"data\n",
                false,
            ),
            (
                "demo_pkg-1.0.dist-info/entry_points.txt",
                b"[console_scripts]\ndemo-main = demo_pkg:main\n",
                false,
            ),
        ],
    )
}

/// A scratch area with a uv cache of its own and a wheelhouse (the test wheels and the
/// demo wheel) that uv installs from, offline.
struct Setup {
    s: Scratch,
    cache: PathBuf,
    house: PathBuf,
    /// The demo wheel, in the wheelhouse.
    demo: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let s = Scratch::new();
        let house = s.path("wheelhouse");
        std::fs::create_dir_all(&house).unwrap();
        for p in PACKAGES.iter().chain(&["numpy"]) {
            let w = shared_wheel(&format!("{p}-"));
            std::os::unix::fs::symlink(&w, house.join(w.file_name().unwrap())).unwrap();
        }
        let demo = demo_wheel(&house);
        let cache = s.path("uv-cache");
        Setup {
            s,
            cache,
            house,
            demo,
        }
    }

    /// A venv made by `uv venv` and filled by `uv pip install --link-mode=copy`, with one
    /// file edited and one deleted afterwards, as users do.
    fn uv_copied_venv(&self, name: &str) -> PathBuf {
        self.uv_copied_venv_with(name, &[])
    }

    /// [`Setup::uv_copied_venv`] with more of the test wheels.
    fn uv_copied_venv_with(&self, name: &str, more: &[&str]) -> PathBuf {
        let venv = self.s.path(name);
        run_ok(
            uv().env("UV_CACHE_DIR", &self.cache)
                .args(["venv", "-q", "--python", "3.11"])
                .arg(&venv),
        );
        let mut args = vec!["install", "-q", "--link-mode=copy", "--no-deps"];
        args.extend(PACKAGES);
        args.push("demo_pkg");
        args.extend(more);
        uv_pip(&venv, &self.cache, &args, &self.house);
        let site = venv.join("lib/python3.11/site-packages");
        let six = site.join("six.py");
        let mut text = std::fs::read_to_string(&six).unwrap();
        text.push_str("\nEDITED_BY_THE_USER = True\n");
        std::fs::write(&six, text).unwrap();
        std::fs::remove_file(site.join("idna/codec.py")).unwrap();
        venv
    }

    fn adopt(&self, venv: &Path) -> Command {
        let mut cmd = venvfs();
        cmd.arg("adopt").arg(venv).env("UV_CACHE_DIR", &self.cache);
        cmd
    }
}

/// What Python and pip say about the venv: `pip list`, and for every distribution its
/// importlib.metadata name, version, files, RECORD and entry points; plus an import of each
/// package and the edit.
fn python_view(venv: &Path) -> String {
    let pip = run_ok(
        venv_program(venv, "python")
            .args(["-m", "pip", "list", "--format=freeze"])
            .env_remove("PYTHONPATH"),
    );
    let metadata = run_ok(venv_program(venv, "python").args([
        "-c",
        "import importlib.metadata as m, json\n\
         out = sorted([d.metadata['Name'], d.version, sorted(str(f) for f in (d.files or [])),\n\
                       d.read_text('RECORD'), sorted([e.group, e.name, e.value] for e in d.entry_points)]\n\
                      for d in m.distributions())\n\
         print(json.dumps(out))\n\
         import six, idna, click, yaml, markupsafe, jinja2, requests, urllib3, certifi, charset_normalizer, demo_pkg\n\
         assert six.EDITED_BY_THE_USER\n\
         print(yaml.__with_libyaml__, markupsafe.escape('<'), demo_pkg.VALUE)",
    ]));
    let tool = run_ok(&mut Command::new(venv.join("bin/demo-tool")));
    let main = run_ok(&mut Command::new(venv.join("bin/demo-main")));
    format!("{pip}\n{metadata}\n{tool}{main}")
}

/// The bytes of regular files in the venv's own directory (not its `.venvfs`).
fn own_bytes(venv: &Path) -> u64 {
    entries_below(venv)
        .iter()
        .filter(|(p, t)| t.is_file() && !p.starts_with(venv.join(".venvfs")))
        .map(|(p, _)| p.symlink_metadata().unwrap().len())
        .sum()
}

#[test]
fn adopt_of_a_uv_copied_venv_shows_the_same_venv_from_layers() {
    let setup = Setup::new();
    let venv = setup.uv_copied_venv("uv-venv");
    let site = venv.join("lib/python3.11/site-packages");
    let view = python_view(&venv);
    let files = contents(&venv);
    let bytes_before = own_bytes(&venv);
    let cache_before = snapshot(&setup.cache.join("archive-v0"));

    let out = run(&mut setup.adopt(&venv));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let n = PACKAGES.len() + 1;
    assert!(
        stdout.contains(&format!("Adopted {n} packages in ")),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" ~ six==1.17.0: "), "{stdout}");
    assert!(stdout.contains("1 edited file kept"), "{stdout}");
    assert!(stdout.contains("gave back "), "{stdout}");
    assert!(
        stderr.trim().is_empty(),
        "no distribution left out: {stderr}"
    );

    // the copies are gone; the edit, uv's files and the launchers stay
    let bytes_after = own_bytes(&venv);
    assert!(
        bytes_after * 10 < bytes_before,
        "the venv's own files went from {bytes_before} to only {bytes_after} bytes"
    );
    assert!(!site.join("requests/api.py").exists());
    assert!(!site.join("yaml").join("__init__.py").exists());
    assert!(std::fs::read_to_string(site.join("six.py"))
        .unwrap()
        .contains("EDITED_BY_THE_USER"));
    assert!(
        site.join("idna/.wh.codec.py").exists(),
        "the deletion stays"
    );
    for kept in [
        "six-1.17.0.dist-info/RECORD",
        "six-1.17.0.dist-info/INSTALLER",
        "demo_pkg-1.0.dist-info/RECORD",
    ] {
        assert!(site.join(kept).is_file(), "{kept}");
    }
    for launcher in ["bin/demo-main", "bin/demo-tool", "bin/pip"] {
        assert!(venv.join(launcher).is_file(), "{launcher}");
    }
    let manifest = std::fs::read_to_string(venv.join(".venvfs/manifest.toml")).unwrap();
    assert_eq!(manifest.matches("archive-v0/").count(), n, "{manifest}");
    // unmounted, the venv says it needs its mount
    let unmounted = run(Command::new(venv.join("bin/python")).args(["-c", "print(1)"]));
    assert!(!unmounted.status.success());
    assert!(
        String::from_utf8_lossy(&unmounted.stderr).contains("venvfs mount"),
        "{unmounted:?}"
    );

    {
        let m = Mount::new(&venv);
        assert_eq!(python_view(&venv), view);
        assert_eq!(contents(&venv), files, "files or contents changed");
        assert!(!site.join("idna/codec.py").exists());
        let listed = run_ok(venvfs().arg("list").arg(&venv));
        let line = listed
            .lines()
            .find(|l| l.starts_with("requests=="))
            .unwrap();
        assert!(line.trim_end().ends_with("layer"), "{listed}");
        // done: a second run finds nothing to do
        let again = run_ok(&mut setup.adopt(&venv));
        assert!(again.starts_with("Nothing to adopt"), "{again}");
        m.unmount();
    }
    assert_eq!(
        snapshot(&setup.cache.join("archive-v0")),
        cache_before,
        "uv's cache changed"
    );
}

/// A mounted venv takes the adoption live, without being unmounted.
#[test]
fn adopt_of_a_mounted_venv_is_taken_live() {
    let setup = Setup::new();
    let venv = setup.uv_copied_venv("uv-venv");
    let view = python_view(&venv);
    let files = contents(&venv);
    let m = Mount::new(&venv);
    let pid = m.daemon_pid();
    assert_eq!(python_view(&venv), view);
    let out = run_ok(&mut setup.adopt(&venv));
    assert!(out.contains("Adopted 12 packages"), "{out}");
    assert_eq!(m.daemon_pid(), pid, "taken live, by the same daemon");
    assert_eq!(python_view(&venv), view);
    assert_eq!(contents(&venv), files);
    m.unmount();
    assert!(!venv
        .join("lib/python3.11/site-packages/requests/api.py")
        .exists());
}

/// A venv pip made (copies, bytecode compiled at install, pip's own RECORD and INSTALLER)
/// adopts wheels from a `--find-links` directory: its layers are the `.whl` files, served
/// in place; pip and setuptools from the interpreter's own wheels. pip's bytecode of the
/// modules given back goes with them.
#[test]
fn adopt_of_a_pip_made_venv_with_wheels_from_find_links() {
    let setup = Setup::new();
    let venv = setup.s.path("pip-venv");
    run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run_ok(
        venv_program(&venv, "python")
            .args(["-m", "pip", "install", "-q", "--no-index", "--find-links"])
            .arg(&setup.house)
            .args(["six", "idna", "pyyaml", "demo_pkg"])
            // (pip compiles bytecode as users get it)
            .env_remove("PYTHONDONTWRITEBYTECODE"),
    );
    let site = venv.join("lib/python3.11/site-packages");
    assert!(
        site.join("idna/__pycache__").is_dir(),
        "pip compiled nothing"
    );
    let view = || {
        let pip =
            run_ok(venv_program(&venv, "python").args(["-m", "pip", "list", "--format=freeze"]));
        let metadata = run_ok(venv_program(&venv, "python").args([
            "-c",
            "import importlib.metadata as m, json\n\
             print(json.dumps(sorted([d.metadata['Name'], d.version, d.read_text('RECORD')]\n\
                                     for d in m.distributions())))\n\
             import six, idna, yaml, demo_pkg\n\
             print(yaml.safe_load('a: [1]'), idna.encode('example.com'), demo_pkg.VALUE)",
        ]));
        let tool = run_ok(&mut Command::new(venv.join("bin/demo-tool")));
        format!("{pip}\n{metadata}\n{tool}")
    };
    let before = view();
    let files = contents(&venv);
    let house_before = snapshot(&setup.house);

    let out = run(venvfs()
        .arg("adopt")
        .arg(&venv)
        .arg("--no-cache")
        .arg("--find-links")
        .arg(&setup.house));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // the four from --find-links, and pip and setuptools from the wheels `python -m venv`
    // installed them from (the base interpreter's ensurepip)
    assert!(
        !venvfs::venv::bundled_wheel_dirs(&venv, "3.11").is_empty(),
        "the test's python3 has no ensurepip wheels"
    );
    assert!(stdout.contains("Adopted 6 packages"), "{stdout}\n{stderr}");
    assert!(!stderr.contains("its files stay as copies"), "{stderr}");
    let manifest = std::fs::read_to_string(venv.join(".venvfs/manifest.toml")).unwrap();
    assert_eq!(manifest.matches(".whl\"").count(), 6, "{manifest}");
    assert!(!site.join("idna/core.py").exists());
    // pip's bytecode of the modules given back goes with them: it names the copies'
    // modification times, not the layer's, so Python would only compile it again
    assert!(
        !site.join("idna/__pycache__").exists(),
        "pip's stale bytecode of idna is left"
    );
    assert!(
        !site.join("pip/__init__.py").exists(),
        "pip's copies go too"
    );

    let m = Mount::new(&venv);
    assert_eq!(view(), before);
    assert!(contents(&venv) == files, "files or contents changed");
    m.unmount();
    assert_eq!(snapshot(&setup.house), house_before, "a wheel changed");
}

/// pip installs a wheel file through the mount: copies (pip has no link mode). Once it is
/// done the daemon gives them back by itself, the wheel file that pip's `direct_url.json`
/// names becoming the layer (no uv cache has it), and pip's own copies go too (their
/// wheels are the interpreter's ensurepip ones).
#[test]
fn a_wheel_file_pip_installs_through_the_mount_is_given_back_by_the_daemon() {
    let setup = Setup::new();
    let venv = setup.s.path("pip-venv");
    run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    let wheel = setup.demo.clone();
    let house_before = snapshot(&setup.house);
    let no_cache = setup.s.path("empty-uv-cache");
    std::fs::create_dir_all(&no_cache).unwrap();
    let m = Mount::with_env(&venv, &[("UV_CACHE_DIR", no_cache.to_str().unwrap())]);
    run_ok(
        venv_program(&venv, "python")
            .args(["-m", "pip", "install", "-q", "--no-index", "--no-deps"])
            .arg(&wheel),
    );
    let site = venv.join("lib/python3.11/site-packages");
    assert!(site.join("demo_pkg/extra.py").is_file());
    wait_for_list(&venv, "demo-pkg==1.0", "layer");
    wait_listed(&venv, "pip served from a layer", |text| {
        text.lines()
            .any(|l| l.starts_with("pip==") && l.trim_end().ends_with(" layer"))
    });
    let layers = run_ok(venvfs().args(["layer", "list"]).arg(&venv));
    assert!(
        layers.contains(&format!("demo_pkg==1.0\t{}", wheel.display())),
        "{layers}"
    );
    assert_eq!(
        run_ok(
            venv_program(&venv, "python").args(["-c", "import demo_pkg; print(demo_pkg.VALUE)"])
        )
        .trim(),
        "42"
    );
    assert!(run_ok(&mut Command::new(venv.join("bin/demo-tool"))).contains("tool 42"));
    m.unmount();
    assert!(
        !site.join("demo_pkg/extra.py").exists(),
        "pip's copy of the wheel's module is given back"
    );
    assert!(
        !site.join("pip/__init__.py").exists(),
        "pip's copies go too"
    );
    let m = Mount::new(&venv);
    run_ok(venv_program(&venv, "python").args(["-c", "import demo_pkg, pip"]));
    m.unmount();
    assert_eq!(snapshot(&setup.house), house_before, "a wheel changed");
}

/// pip installs from a package index through the mount (here one on 127.0.0.1 that the test
/// starts and stops): copies, whose wheels only pip's HTTP cache holds afterwards (no uv
/// cache, no file). The daemon finds them there by the `.dist-info` inside each cached
/// body, keeps them in venvfs's wheel store, and gives the copies back; pip's cache is only
/// read, and the venv works once remounted. pip 23.3 and later keep each body as a file
/// of its own (`http-v2/`); older ones, such as the one `python -m venv` gives Python
/// 3.11.7, keep it inside a record with the response's headers (`http/`).
#[test]
fn what_pip_downloads_through_the_mount_is_given_back_from_pips_http_cache() {
    pip_downloads_are_given_back(true);
}

#[test]
fn what_an_old_pip_downloads_through_the_mount_is_given_back_from_its_http_cache() {
    pip_downloads_are_given_back(false);
}

fn pip_downloads_are_given_back(new_pip: bool) {
    let setup = Setup::new();
    let served: Vec<PathBuf> = ["six-", "idna-", "pyyaml-"]
        .iter()
        .map(|p| shared_wheel(p))
        .collect();
    let server = common::index_server::IndexServer::start(&served);
    let venv = setup.s.path("pip-venv");
    run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    // (pip 23.3 and later keep each body as a file of its own, `http-v2/`; the pip that
    // `python -m venv` gives Python 3.11 is older, and only read where it left copies)
    // (from a directory of its own: the daemon looks for wheels beside the files pip
    // installed from, and the shared directory holds those the index serves)
    let pip_wheel = shared_wheel("pip-");
    let alone = setup
        .s
        .path("pip-wheel")
        .join(pip_wheel.file_name().unwrap());
    std::fs::create_dir_all(alone.parent().unwrap()).unwrap();
    std::fs::copy(&pip_wheel, &alone).unwrap();
    if new_pip {
        run_ok(
            venv_program(&venv, "python")
                .args(["-m", "pip", "install", "-q", "--no-index"])
                .arg(&alone),
        );
    }
    let pip_cache = setup.s.path("pip-cache");
    let own_cache = setup.s.path("venvfs-cache");
    let no_uv_cache = setup.s.path("empty-uv-cache");
    std::fs::create_dir_all(&no_uv_cache).unwrap();
    // (the daemon finds pip's cache as pip does: here from its environment, or, with the
    // old pip, from a configuration file that sets it, as users with a home quota do)
    let conf = setup.s.path("pip.conf");
    std::fs::write(
        &conf,
        format!("[global]\ncache-dir = {}\n", pip_cache.display()),
    )
    .unwrap();
    let (how, where_) = if new_pip {
        ("PIP_CACHE_DIR", pip_cache.to_str().unwrap())
    } else {
        ("PIP_CONFIG_FILE", conf.to_str().unwrap())
    };
    let m = Mount::with_env(
        &venv,
        &[
            ("UV_CACHE_DIR", no_uv_cache.to_str().unwrap()),
            (how, where_),
            ("VENVFS_CACHE_DIR", own_cache.to_str().unwrap()),
        ],
    );
    run_ok(
        venv_program(&venv, "python")
            .args(["-m", "pip", "install", "-q", "--no-deps"])
            .args([
                "--index-url",
                &server.index_url(),
                "--trusted-host",
                "127.0.0.1",
            ])
            .args(["six", "idna", "pyyaml"])
            .env("PIP_CACHE_DIR", &pip_cache)
            .env_remove("PIP_FIND_LINKS")
            .env_remove("PIP_NO_CACHE_DIR"),
    );
    let site = venv.join("lib/python3.11/site-packages");
    assert!(site.join("idna/core.py").is_file());
    let (dir, ext) = if new_pip {
        ("http-v2", Some("body"))
    } else {
        ("http", None)
    };
    let bodies = entries_below(&pip_cache.join(dir))
        .into_iter()
        .filter(|(p, t)| t.is_file() && p.extension().and_then(|x| x.to_str()) == ext)
        .count();
    assert_eq!(
        bodies, 3,
        "pip keeps each wheel it downloaded in its HTTP cache's {dir}/"
    );
    let pip_cache_before = snapshot(&pip_cache);
    for pin in ["six==1.17.0", "idna==3.20", "pyyaml==6.0.3"] {
        wait_for_list(&venv, pin, "layer");
    }
    let layers = run_ok(venvfs().args(["layer", "list"]).arg(&venv));
    let stored = own_cache.join("wheels");
    for w in &served {
        let name = w.file_name().unwrap().to_str().unwrap();
        assert!(
            layers
                .lines()
                .any(|l| l.starts_with(name.split('-').next().unwrap())
                    && l.contains(stored.to_str().unwrap())),
            "{name} is a layer from venvfs's wheel store:\n{layers}"
        );
    }
    let check = "import six, idna, yaml; print(six.__version__, idna.__version__, yaml.__version__, yaml.__with_libyaml__)";
    let shown = run_ok(venv_program(&venv, "python").args(["-c", check]));
    m.unmount();
    assert!(
        !site.join("idna/core.py").exists(),
        "pip's copy is given back"
    );
    assert!(
        !site.join("yaml/__init__.py").exists(),
        "pip's copy is given back"
    );
    assert_eq!(
        snapshot(&pip_cache),
        pip_cache_before,
        "pip's cache changed"
    );
    let m = Mount::new(&venv);
    assert_eq!(
        run_ok(venv_program(&venv, "python").args(["-c", check])),
        shown
    );
    m.unmount();
    drop(server);
}

/// A program running in the mounted venv through the adoption keeps reading the copies it
/// has open (their data stays reachable, as an unlinked file's does) and imports what it
/// had not imported yet from the layers. The test makes the file's reads reach the
/// daemon after the adoption, with a descriptor it no longer keeps idle: it reads 500
/// other files meanwhile, and drops the file's pages from the kernel's cache.
#[test]
fn a_program_running_in_the_mounted_venv_keeps_its_open_copies() {
    use std::io::{BufRead, BufReader, Write};
    let setup = Setup::new();
    let venv = setup.uv_copied_venv("uv-venv");
    let site = venv.join("lib/python3.11/site-packages");
    let api = std::fs::read(site.join("requests/api.py")).unwrap();
    let _m = Mount::new(&venv);
    let mut program = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import sys, os, yaml\n\
             f = open(os.path.join(os.path.dirname(yaml.__file__), '..', 'requests', 'api.py'), 'rb')\n\
             head = f.read(100)\n\
             for d, _, names in os.walk(os.path.join(os.path.dirname(yaml.__file__), '..', 'pip')):\n\
             \x20   for n in names:\n\
             \x20       open(os.path.join(d, n), 'rb').read()\n\
             print('ready', flush=True)\n\
             sys.stdin.readline()\n\
             os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)\n\
             rest = f.read()\n\
             sys.stdout.buffer.write(head + rest)\n\
             import requests, jinja2\n\
             print(yaml.safe_load('a: 1'), requests.__version__ != '', jinja2.Template('{{ x }}').render(x=2))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(program.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");

    let adopted = run_ok(&mut setup.adopt(&venv));
    assert!(adopted.contains("Adopted 12 packages"), "{adopted}");

    program.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut out, &mut rest).unwrap();
    let status = program.wait().unwrap();
    assert!(status.success(), "the program failed after the adoption");
    assert!(rest.starts_with(&api), "the open copy read differently");
    let tail = String::from_utf8_lossy(&rest[api.len()..]).into_owned();
    assert_eq!(tail.trim(), "{'a': 1} True 2");
}

/// A small pseudo-random generator: the delays of the kill test, from a seed it prints.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Checks the venv works and shows `view` and `files`: unmounted when no copy was removed
/// yet (no guard), and mounted in any case.
fn check_works(
    venv: &Path,
    view: &str,
    files: &std::collections::BTreeMap<String, (Vec<u8>, u32)>,
    when: &str,
) {
    let guard = venv.join("lib/python3.11/site-packages/_venvfs_unmounted.pth");
    if !guard.exists() {
        assert_eq!(python_view(venv), view, "{when}, unmounted");
    }
    let m = Mount::new(venv);
    assert_eq!(python_view(venv), view, "{when}, mounted");
    let now = contents(venv);
    let differ: Vec<_> = files
        .keys()
        .chain(now.keys())
        .filter(|k| files.get(*k) != now.get(*k))
        .take(5)
        .collect();
    assert!(differ.is_empty(), "{when}: files differ, e.g. {differ:?}");
    m.unmount();
}

/// How far an adopt got: whether the manifest is written, and how many copies of numpy's
/// files are left (of about 1,000).
fn adopt_state(venv: &Path) -> String {
    let layers = std::fs::read_to_string(venv.join(".venvfs/manifest.toml"))
        .map(|m| m.matches("[[layer]]").count())
        .unwrap_or(0);
    let numpy = venv.join("lib/python3.11/site-packages/numpy");
    let copies = if numpy.exists() {
        entries_below(&numpy)
            .iter()
            .filter(|(_, t)| t.is_file())
            .count()
    } else {
        0
    };
    format!("{layers} layers committed, {copies} numpy copies left")
}

#[test]
fn kill_9_at_any_moment_of_adopt_leaves_a_working_venv_that_adopt_finishes() {
    let setup = Setup::new();
    // how long a whole adopt takes, to spread the kills over it
    // (numpy's 1,000 files make the removals long enough for kills to land in them)
    let timed = setup.uv_copied_venv_with("timed", &["numpy"]);
    let started = Instant::now();
    run_ok(&mut setup.adopt(&timed));
    let full = started.elapsed().as_millis() as u64;

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill test seed {seed}, a whole adopt takes {full} ms");
    let mut rng = Lcg(seed);
    for round in 0..6 {
        let venv = setup.uv_copied_venv_with(&format!("round{round}"), &["numpy"]);
        let view = python_view(&venv);
        let files = contents(&venv);
        // (the first round is killed at once, the others anywhere up to the whole run)
        let delay = if round == 0 { 0 } else { rng.below(full + 20) };
        let mut child = setup
            .adopt(&venv)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let when = format!(
            "round {round}, killed after {delay} ms ({status}): {}",
            adopt_state(&venv)
        );
        eprintln!("{when}");
        let site = venv.join("lib/python3.11/site-packages");
        let committed = std::fs::read_to_string(venv.join(".venvfs/manifest.toml"))
            .is_ok_and(|m| m.contains("[[layer]]"));
        if round % 2 == 0 {
            // checked as it was left (mounting it finishes an interrupted adopt), then a
            // second adopt finds the rest done
            check_works(&venv, &view, &files, &when);
            if committed {
                assert!(
                    !site.join("requests/api.py").exists(),
                    "{when}: the mount did not finish the adopt"
                );
            }
            let out = run_ok(&mut setup.adopt(&venv));
            assert!(
                out.contains("Adopted ") || out.starts_with("Nothing to adopt"),
                "{when}: {out}"
            );
        } else {
            // a second adopt finishes the job, then the venv is checked
            let out = run_ok(&mut setup.adopt(&venv));
            assert!(
                out.contains("Adopted ") || out.starts_with("Nothing to adopt"),
                "{when}: {out}"
            );
            check_works(&venv, &view, &files, &when);
        }
        assert!(
            !site.join("requests/api.py").exists(),
            "{when}: copies left after the second adopt"
        );
        assert!(!venv.join(".venvfs/adopt-unfinished").exists(), "{when}");
        assert!(site.join("idna/.wh.codec.py").exists(), "{when}");
        check_works(&venv, &view, &files, &format!("{when}, then adopted again"));
    }
}

/// The same with the venv mounted: the removals are the daemon's, so what a killed adopt
/// leaves shows the same at once, through the mount that stays.
#[test]
fn kill_9_of_adopt_on_a_mounted_venv_leaves_the_mounted_view_as_it_was() {
    let setup = Setup::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill test seed {seed}");
    let mut rng = Lcg(seed);
    for round in 0..3 {
        let venv = setup.uv_copied_venv_with(&format!("round{round}"), &["numpy"]);
        let view = python_view(&venv);
        let files = contents(&venv);
        let m = Mount::new(&venv);
        let delay = rng.below(1500);
        let mut child = setup
            .adopt(&venv)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let when = format!("mounted round {round}, killed after {delay} ms ({status})");
        eprintln!("{when}");
        assert_eq!(python_view(&venv), view, "{when}");
        assert!(contents(&venv) == files, "{when}: files differ");
        let out = run_ok(&mut setup.adopt(&venv));
        assert!(
            out.contains("Adopted ") || out.starts_with("Nothing to adopt"),
            "{when}: {out}"
        );
        assert_eq!(python_view(&venv), view, "{when}, then adopted again");
        assert!(
            contents(&venv) == files,
            "{when}, then adopted again: files differ"
        );
        m.unmount();
        assert!(
            !venv
                .join("lib/python3.11/site-packages/requests/api.py")
                .exists(),
            "{when}: copies left after the second adopt"
        );
    }
}
