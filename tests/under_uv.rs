//! venvfs under uv: a uv project whose `.venv` is mounted by venvfs, driven by the real uv
//! (`uv add`, `uv run`, `uv remove`, `uv pip install`) in symlink link mode, which a venv's
//! activation script sets. uv's symlinks into its cache become references: shown as regular
//! files, copied up on the first change, never written through, and the venv's own
//! directory stays a fraction of a copied venv's.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// The bytes of every file below `dir` (a symlink counts as its target's length; on disk
/// a long target takes a block of its own, which `scripts/bench --only uv` counts), but
/// bytecode: the `.pyc` files Python writes are every venv's own, copied or not.
fn own_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.path().symlink_metadata().unwrap();
            if m.is_dir() && e.file_name() == "__pycache__" {
                continue;
            }
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

struct Project {
    s: Scratch,
    dir: PathBuf,
    venv: PathBuf,
    cache: PathBuf,
    wheels: PathBuf,
}

impl Project {
    /// `uv init --bare` in a scratch directory, its `.venv` made by `uv venv`.
    fn new() -> Project {
        let s = Scratch::new();
        let dir = s.path("proj");
        let cache = s.path("uv-cache");
        let wheels = shared_wheel("six-").parent().unwrap().to_owned();
        let p = Project {
            venv: dir.join(".venv"),
            dir,
            cache,
            wheels,
            s,
        };
        std::fs::create_dir(&p.dir).unwrap();
        // (the test wheels are CPython 3.11 on x86_64 Linux: the lock is kept to that)
        std::fs::write(
            p.dir.join("pyproject.toml"),
            "[project]\nname = \"proj\"\nversion = \"0.1.0\"\nrequires-python = \"==3.11.*\"\n\
             dependencies = []\n\n[tool.uv]\nenvironments = [\"sys_platform == 'linux' and \
             platform_machine == 'x86_64'\"]\n",
        )
        .unwrap();
        p.uv_ok(&["venv", "--python", "python3"]);
        p
    }

    /// uv in the project, offline, from the test wheels and the project's own cache.
    fn uv(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = uv();
        cmd.args(args)
            .current_dir(&self.dir)
            .env("UV_CACHE_DIR", &self.cache)
            .env("UV_NO_INDEX", "1")
            .env("UV_FIND_LINKS", &self.wheels)
            .env("UV_PYTHON_DOWNLOADS", "never")
            .env_remove("UV_LINK_MODE")
            .env_remove("VIRTUAL_ENV");
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    }

    fn uv_ok(&self, args: &[&str]) -> String {
        self.uv_in(args, &[])
    }

    fn uv_in(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.uv(args, env);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "uv {args:?} failed:\n{err}");
        assert!(
            !err.contains("Failed to hardlink") && !err.contains("falling back"),
            "uv {args:?} warned about copying:\n{err}"
        );
        err
    }

    fn python(&self, code: &str) -> String {
        run_ok(Command::new(self.venv.join("bin/python")).args(["-c", code]))
            .trim()
            .to_owned()
    }

    fn site(&self) -> PathBuf {
        self.venv.join("lib/python3.11/site-packages")
    }
}

#[test]
fn uv_add_run_remove_in_a_mounted_venv_copies_nothing() {
    let p = Project::new();
    let m = Mount::new(&p.venv);
    let activate = std::fs::read_to_string(p.venv.join("bin/activate")).unwrap();
    assert!(
        activate.contains("UV_LINK_MODE=symlink"),
        "mounting makes activation set uv's link mode"
    );
    // the link mode set explicitly
    p.uv_in(&["add", "six"], &[("UV_LINK_MODE", "symlink")]);
    // in an activated shell with nothing set: the activation script sets it
    let script = format!(
        "unset UV_LINK_MODE; source {}/bin/activate && uv add numpy idna && echo mode=$UV_LINK_MODE",
        p.venv.display()
    );
    let shell = run(Command::new("bash")
        .args(["-c", &script])
        .current_dir(&p.dir)
        .env("UV_CACHE_DIR", &p.cache)
        .env("UV_NO_INDEX", "1")
        .env("UV_FIND_LINKS", &p.wheels)
        .env("UV_PYTHON_DOWNLOADS", "never"));
    let err = String::from_utf8_lossy(&shell.stderr);
    assert!(shell.status.success(), "{err}");
    assert!(!err.contains("Failed to hardlink"), "{err}");
    assert!(String::from_utf8_lossy(&shell.stdout).contains("mode=symlink"));
    // once uv is done, the daemon folds its links into layers by itself
    wait_folded(&p.venv, &["idna", "numpy", "six"]);

    // the mount shows regular files with the cache's content
    let module = p.site().join("six.py");
    let meta = module.symlink_metadata().unwrap();
    assert!(
        meta.file_type().is_file(),
        "a reference shows as a regular file"
    );
    assert_eq!(
        p.python("import six, idna, numpy; print(six.__version__, numpy.__version__)"),
        "1.17.0 2.4.6"
    );
    let cache_before = snapshot(&p.cache.join("archive-v0"));
    let served = own_bytes(&p.site().join("numpy"));
    // an edit through the mount copies up; the cache stays as it was
    let mut text = std::fs::read_to_string(&module).unwrap();
    text.push_str("\nEDITED = True\n");
    std::fs::write(&module, &text).unwrap();
    assert_eq!(p.python("import six; print(six.EDITED)"), "True");
    assert_eq!(snapshot(&p.cache.join("archive-v0")), cache_before);
    // uv run works in it
    p.uv_in(&["run", "python", "-c", "import numpy"], &[]);

    m.unmount();
    // on disk: links into the cache, the edited file, uv's own small files (bytes, not
    // blocks: see own_bytes)
    let own = own_bytes(&p.venv);
    assert!(
        own * 50 < served,
        "the venv's own directory holds {own} bytes; numpy alone is {served} through the mount"
    );
    assert!(
        module.symlink_metadata().unwrap().is_file(),
        "the edit was copied up"
    );
    assert!(
        !p.site().join("idna/core.py").exists(),
        "uv's links were folded into a layer"
    );

    // everything survives a remount; uv remove takes a package away
    let m = Mount::new(&p.venv);
    assert_eq!(p.python("import six; print(six.EDITED)"), "True");
    p.uv_in(&["remove", "idna"], &[("UV_LINK_MODE", "symlink")]);
    let gone = Command::new(p.venv.join("bin/python"))
        .args(["-c", "import idna"])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "uv remove removed idna");
    assert_eq!(p.python("import numpy; print(numpy.__version__)"), "2.4.6");
    drop(m);
    assert_eq!(snapshot(&p.cache.join("archive-v0")), cache_before);
    let _ = &p.s;
}

/// Waits until `venvfs list` shows each of `names` served from a layer (the daemon folds
/// uv's links a moment after uv made the last one).
fn wait_folded(venv: &Path, names: &[&str]) {
    wait_listed(venv, &format!("{names:?} served from layers"), |text| {
        names.iter().all(|name| {
            text.lines()
                .any(|l| l.starts_with(&format!("{name}==")) && l.trim_end().ends_with(" layer"))
        })
    });
}

/// A venv that uv filled with copies through the mount (its default link mode across
/// filesystems): `venvfs sync` of the same pins drops the copies in favour of the layers,
/// says so, and the venv shows the same packages.
#[test]
fn sync_drops_the_copies_uv_made() {
    let s = Scratch::new();
    let wheels = shared_wheel("six-").parent().unwrap().to_owned();
    let cache = s.path("uv-cache");
    // (the daemon leaves the copies: this is about `sync` giving them back)
    let mount = || Mount::with_env(&s.venv, &[("VENVFS_FOLD_AFTER", "0")]);
    let m = mount();
    let out = run(uv()
        .args([
            "pip",
            "install",
            "--link-mode=copy",
            "--compile-bytecode",
            "--no-index",
            "--python",
        ])
        .arg(s.venv.join("bin/python"))
        .arg("--find-links")
        .arg(&wheels)
        .args(["six", "idna", "numpy"])
        .env("UV_CACHE_DIR", &cache));
    assert!(out.status.success(), "{out:?}");
    let before = s.python_ok("import six, idna, numpy; print(six.__version__, numpy.__version__)");
    let site = s.venv.join("lib/python3.11/site-packages");
    let served_wheels: Vec<_> = ["six-", "idna-", "numpy-"]
        .iter()
        .map(|w| snapshot(&shared_wheel(w)))
        .collect();
    drop(m);
    let copied = own_bytes(&s.venv);
    let compiled = |dir: &str| {
        std::fs::read_dir(site.join(dir).join("__pycache__"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".pyc"))
            .count()
    };
    assert!(compiled("idna") > 0, "uv compiled no bytecode");
    let m = mount();

    let pins = s.path("pins.txt");
    std::fs::write(&pins, "six==1.17.0\nidna==3.20\nnumpy==2.4.6\n").unwrap();
    let report = run_ok(
        venvfs()
            .arg("sync")
            .arg(&s.venv)
            .arg(&pins)
            .args(["--no-cache", "-f"])
            .arg(&wheels),
    );
    assert!(report.contains("Dropped "), "{report}");
    assert_eq!(
        s.python_ok("import six, idna, numpy; print(six.__version__, numpy.__version__)"),
        before
    );
    assert!(site.join("numpy/__init__.py").is_file());
    drop(m);
    let own = own_bytes(&s.venv);
    assert!(
        own * 20 < copied,
        "the venv's own directory still holds {own} of the {copied} bytes uv copied"
    );
    // (uv's bytecode of the modules given back went with them: the layer's files have
    // other modification times, so Python would only compile it again)
    assert_eq!(compiled("idna"), 0, "uv's bytecode of idna stayed");
    let after: Vec<_> = ["six-", "idna-", "numpy-"]
        .iter()
        .map(|w| snapshot(&shared_wheel(w)))
        .collect();
    assert_eq!(served_wheels, after, "a wheel changed");
}

/// Without the symlink link mode (no activated venv, no `link-mode` in the project), uv
/// copies into the mounted venv, as it does across filesystems. Once it is done the daemon
/// gives the copies back, as `venvfs adopt` would: each package becomes a layer of uv's
/// cache entry. An upgrade too: the version installed over one that was a layer replaces
/// that layer.
#[test]
fn copies_uv_makes_without_the_link_mode_are_given_back_by_the_daemon() {
    let p = Project::new();
    let house = p.s.path("house");
    std::fs::create_dir_all(&house).unwrap();
    for w in ["six-", "idna-"] {
        let wheel = shared_wheel(w);
        std::os::unix::fs::symlink(&wheel, house.join(wheel.file_name().unwrap())).unwrap();
    }
    demo_wheel(&house, "demo_pkg", "1.0");
    demo_wheel(&house, "demo_pkg", "2.0");
    let wheels_before = snapshot(&house);
    // (the daemon looks in the uv cache its environment names, as the user's uv does)
    let m = Mount::with_env(&p.venv, &[("UV_CACHE_DIR", p.cache.to_str().unwrap())]);
    let copy = [
        ("UV_LINK_MODE", "copy"),
        ("UV_FIND_LINKS", house.to_str().unwrap()),
    ];
    let out = p.uv(&["add", "six", "idna", "demo_pkg==1.0"], &copy);
    assert!(out.status.success(), "{out:?}");
    wait_folded(&p.venv, &["six", "idna", "demo-pkg"]);
    assert_eq!(
        p.python("import six, idna, demo_pkg; print(six.__version__, demo_pkg.VALUE)"),
        "1.17.0 42"
    );
    let first = snapshot(&p.cache.join("archive-v0"));

    // an upgrade: uv removes 1.0's files through the mount and copies 2.0's
    let out = p.uv(&["add", "demo_pkg==2.0"], &copy);
    assert!(out.status.success(), "{out:?}");
    // (uv unpacked 2.0 into its cache: from here on, venvfs only reads it)
    let cache_before = snapshot(&p.cache.join("archive-v0"));
    // (its files, that is: the directory archive-v0 has a new entry)
    let files = |snap: &std::collections::BTreeMap<PathBuf, (u32, u64, i64, u64)>| {
        snap.iter()
            .filter(|(_, v)| v.0 & 0o170000 == 0o100000)
            .map(|(k, v)| (k.clone(), *v))
            .collect::<Vec<_>>()
    };
    assert!(files(&first)
        .iter()
        .all(|(k, v)| cache_before.get(k) == Some(v)));
    wait_for_list(&p.venv, "demo-pkg==2.0", "layer");
    let version = "import importlib.metadata as m; print(m.version('demo_pkg'))";
    assert_eq!(p.python(version), "2.0");
    assert!(!p.site().join("demo_pkg-1.0.dist-info").exists());
    let served = own_bytes(&p.site());
    m.unmount();
    let own = own_bytes(&p.site());
    assert!(
        own * 10 < served,
        "the venv's own site-packages holds {own} bytes of the {served} it shows"
    );
    let m = Mount::new(&p.venv);
    assert_eq!(p.python(version), "2.0");
    assert_eq!(
        p.python("import six, idna, demo_pkg; print(six.__version__, demo_pkg.VALUE)"),
        "1.17.0 42"
    );
    drop(m);
    assert_eq!(snapshot(&p.cache.join("archive-v0")), cache_before);
    assert_eq!(snapshot(&house), wheels_before);
}

/// The daemon gives copies back only once nothing has been made in the venv for a while,
/// not two seconds after an installer's RECORD: pip extracts the wheel's own RECORD among
/// its files, then compiles every module for seconds before it writes its own, and giving
/// back in between would race the installer.
#[test]
fn copies_are_given_back_only_once_nothing_is_being_written() {
    let p = Project::new();
    let _m = Mount::with_env(&p.venv, &[("UV_CACHE_DIR", p.cache.to_str().unwrap())]);
    let out = p.uv(&["pip", "install", "six"], &[("UV_LINK_MODE", "copy")]);
    assert!(out.status.success(), "{out:?}");
    // (an installer still at work: a file made every 300 ms for 4 s)
    let busy = std::time::Instant::now();
    let mut n = 0;
    while busy.elapsed() < std::time::Duration::from_secs(4) {
        std::fs::write(p.site().join(format!("busy-{n}.txt")), "x").unwrap();
        n += 1;
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let listed = run_ok(venvfs().arg("list").arg(&p.venv));
    let six = listed.lines().find(|l| l.starts_with("six==")).unwrap();
    assert!(
        six.contains("copies"),
        "given back while writing went on:\n{listed}"
    );
    wait_for_list(&p.venv, "six==1.17.0", "layer");
    assert_eq!(p.python("import six; print(six.__version__)"), "1.17.0");
}

/// uv run while the venv is not mounted installs copies into its own directory (its
/// change is honoured at the next mount); that mount's daemon gives them back too, once
/// quiet, as it does with copies made through the mount.
#[test]
fn copies_uv_made_while_unmounted_are_given_back_at_the_next_mount() {
    let p = Project::new();
    let with_cache = [("UV_CACHE_DIR", p.cache.to_str().unwrap())];
    let m = Mount::with_env(&p.venv, &with_cache);
    p.uv_in(&["pip", "install", "six"], &[("UV_LINK_MODE", "symlink")]);
    wait_folded(&p.venv, &["six"]);
    m.unmount();
    let out = p.uv(&["pip", "install", "idna"], &[("UV_LINK_MODE", "copy")]);
    assert!(out.status.success(), "{out:?}");
    let site = p.site();
    assert!(site.join("idna/core.py").is_file(), "uv wrote no copies");
    let cache_before = snapshot(&p.cache.join("archive-v0"));
    let m = Mount::with_env(&p.venv, &with_cache);
    wait_folded(&p.venv, &["six", "idna"]);
    assert_eq!(
        p.python("import six, idna; print(six.__version__, idna.__version__)"),
        "1.17.0 3.20"
    );
    m.unmount();
    assert!(!site.join("idna/core.py").exists(), "the copies stayed");
    assert_eq!(snapshot(&p.cache.join("archive-v0")), cache_before);
}

/// `uv sync --compile-bytecode` (or `UV_COMPILE_BYTECODE=1`, as uv's guide for container
/// images says) in a mounted venv: uv compiles every module through the links it just
/// made, into the venv's own `__pycache__` directories. Once the daemon folds the links,
/// those `.pyc` (valid for the layer's files, which the links showed) move to the shared
/// bytecode store: the venv keeps none of them, Python reads them from the store
/// (compiling nothing, writing nothing into the venv), and a second venv of the same
/// packages finds them there too.
#[test]
fn bytecode_uv_compiles_through_the_mount_moves_to_the_shared_store() {
    let p = Project::new();
    let store = p.s.path("bytecode-store");
    let cache = p.cache.to_str().unwrap().to_owned();
    let mount_env = [
        ("UV_CACHE_DIR", cache.as_str()),
        ("VENVFS_BYTECODE_STORE", store.to_str().unwrap()),
    ];
    let m = Mount::with_env(&p.venv, &mount_env);
    let symlink = [("UV_LINK_MODE", "symlink"), ("UV_COMPILE_BYTECODE", "1")];
    p.uv_in(&["add", "six", "idna", "click"], &symlink);
    wait_folded(&p.venv, &["six", "idna", "click"]);
    let idna_core = "lib/python3.11/site-packages/idna/__pycache__/core.cpython-311.pyc";
    // (the daemon removes them after the layers commit: wait for that too)
    let own = |venv: &Path| {
        entries_below(venv)
            .into_iter()
            .filter(|(path, _)| {
                path.extension().is_some_and(|x| x == "pyc")
                    && !path.starts_with(venv.join(".venvfs"))
            })
            .count()
    };
    let started = std::time::Instant::now();
    let check = "import six, idna, click, idna.core; print(idna.core.__cached__)";
    // (shown as a link to the store's directory, once nothing of the venv's own is there)
    let pycache = p.site().join("idna/__pycache__");
    while !pycache.symlink_metadata().is_ok_and(|m| m.is_symlink()) {
        assert!(
            started.elapsed().as_secs() < 30,
            "{} is not a link to the store",
            pycache.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(pycache.join("core.cpython-311.pyc").is_file());
    assert!(p
        .python(check)
        .ends_with("idna/__pycache__/core.cpython-311.pyc"));
    m.unmount();
    assert_eq!(own(&p.venv), 0, "the venv's own directory keeps no .pyc");
    let stored: Vec<PathBuf> = entries_below(&store)
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| path.ends_with(idna_core))
        .collect();
    assert_eq!(
        stored.len(),
        1,
        "the store holds idna's core.pyc: {stored:?}"
    );
    let stored_before = snapshot(&store);

    // Python imports them from the store: nothing compiled, nothing written
    let m = Mount::with_env(&p.venv, &mount_env);
    run_ok(
        Command::new(p.venv.join("bin/python"))
            .args(["-c", check])
            .env_remove("PYTHONDONTWRITEBYTECODE"),
    );
    m.unmount();
    assert_eq!(own(&p.venv), 0, "an import compiled into the venv");
    assert_eq!(snapshot(&store), stored_before, "an import compiled again");
}
