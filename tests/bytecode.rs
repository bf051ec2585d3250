//! Bytecode compiled once for every venv: `.pyc` files of the layers' modules go to a store
//! outside the venvs, and every venv using the same layers reads them from there.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The modules the tests import, from three wheels served in place and one unpacked.
const IMPORT: &str = "import six, idna, urllib3, certifi";

struct Setup {
    s: Scratch,
    store: PathBuf,
    wheels: Vec<PathBuf>,
    unpacked: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let s = Scratch::new();
        let store = s.path("venvfs-cache");
        let wheels: Vec<PathBuf> = ["six-", "idna-", "urllib3-"]
            .iter()
            .map(|p| shared_wheel(p))
            .collect();
        let unpacked = s.path("certifi-unpacked");
        unpack(&shared_wheel("certifi-"), &unpacked);
        Setup {
            s,
            store,
            wheels,
            unpacked,
        }
    }

    /// A venv at `name` with the setup's layers (the scratch venv for "venv").
    fn venv(&self, name: &str) -> PathBuf {
        let venv = self.s.path(name);
        if !venv.exists() {
            run_ok(
                Command::new("python3")
                    .args(["-m", "venv", "--without-pip"])
                    .arg(&venv),
            );
        }
        run_ok(venvfs().arg("install").arg(&venv).args(&self.wheels));
        run_ok(
            venvfs()
                .args(["layer", "add"])
                .arg(&venv)
                .arg(&self.unpacked),
        );
        venv
    }

    fn venvfs(&self) -> Command {
        let mut c = venvfs();
        c.env("VENVFS_CACHE_DIR", &self.store);
        c
    }

    fn mount(&self, venv: &Path) -> Mount {
        run_ok(self.venvfs().arg("mount").arg(venv));
        Mount::adopt(venv)
    }

    /// Mounts `venv` with the stored `.pyc` shown as files the daemon serves, not links.
    fn mount_showing_files(&self, venv: &Path) -> Mount {
        run_ok(
            self.venvfs()
                .env("VENVFS_BYTECODE_LINKS", "0")
                .arg("mount")
                .arg(venv),
        );
        Mount::adopt(venv)
    }

    /// A venv at `name` whose modules were imported once through its mount (compiled into
    /// the store), left unmounted.
    fn compiled(&self, name: &str) -> PathBuf {
        let venv = self.venv(name);
        let m = self.mount(&venv);
        import(&venv, IMPORT);
        m.unmount();
        venv
    }

    /// Mounts `venv` reading the bytecode store `store` too (its own store stays written).
    fn mount_reading(&self, venv: &Path, store: &Path) -> Mount {
        run_ok(
            self.venvfs()
                .env("VENVFS_BYTECODE_STORES", store)
                .arg("mount")
                .arg(venv),
        );
        Mount::adopt(venv)
    }

    /// Asserts that `pycache` shows at least `at_least` `.pyc` files, each a link to a
    /// file of the store.
    fn assert_links(&self, pycache: &Path, at_least: usize) {
        let store = self.store.join("bytecode");
        let mut n = 0;
        for e in std::fs::read_dir(pycache).unwrap() {
            let e = e.unwrap();
            let target = std::fs::read_link(e.path())
                .unwrap_or_else(|err| panic!("{} is not a link: {err}", e.path().display()));
            assert!(target.starts_with(&store), "{}", target.display());
            assert_eq!(target.file_name(), Some(e.file_name().as_os_str()));
            assert!(e.file_type().unwrap().is_symlink());
            n += 1;
        }
        assert!(n >= at_least, "{} holds {n} links", pycache.display());
    }

    /// Asserts that `pycache` is a link to the store's directory for it (its directory's
    /// modules all come from one layer) holding at least `at_least` `.pyc` files.
    fn assert_dir_link(&self, pycache: &Path, at_least: usize) -> PathBuf {
        let store = self.store.join("bytecode");
        let target = std::fs::read_link(pycache)
            .unwrap_or_else(|err| panic!("{} is not a link: {err}", pycache.display()));
        assert!(target.starts_with(&store), "{}", target.display());
        let rel: PathBuf = pycache.iter().skip_while(|c| *c != "lib").collect();
        assert!(
            target.ends_with(&rel),
            "{} for {}",
            target.display(),
            rel.display()
        );
        let n = std::fs::read_dir(&target)
            .unwrap()
            .filter(|e| {
                let e = e.as_ref().unwrap();
                e.file_type().unwrap().is_file() && e.path().extension().is_some_and(|x| x == "pyc")
            })
            .count();
        assert!(n >= at_least, "{} holds {n} .pyc", target.display());
        target
    }

    /// `sh -c script` in a mount namespace of its own (its mounts are gone with it), with
    /// this setup's environment and `$VENVFS` the venvfs under test.
    fn in_own_mount_namespace(&self, script: &str) -> Command {
        let mut cmd = Command::new(common::sshd::require("unshare"));
        cmd.args(["-m", "--propagation", "private", "sh", "-c", script]);
        with_env_of(&mut cmd, &self.venvfs());
        cmd.env("VENVFS", env!("CARGO_BIN_EXE_venvfs"));
        cmd
    }

    /// How many requests of `kind` the daemon of mounted `venv` has served.
    fn requests(&self, venv: &Path, kind: &str) -> u64 {
        served(&mut self.venvfs(), venv, kind)
    }

    /// Every file of the layers, to prove they were not changed.
    fn layers(&self) -> Vec<BTreeMap<PathBuf, (u32, u64, i64, u64)>> {
        let mut all: Vec<_> = self.wheels.iter().map(|w| snapshot(w)).collect();
        all.push(snapshot(&self.unpacked));
        all
    }

    /// The `.pyc` files of the store (its temporary files too), with their inode numbers.
    fn stored(&self) -> BTreeMap<PathBuf, u64> {
        use std::os::unix::fs::MetadataExt;
        let root = self.store.join("bytecode");
        if !root.exists() {
            return BTreeMap::new();
        }
        entries_below(&root)
            .into_iter()
            .filter(|(p, t)| t.is_file() && p.to_string_lossy().contains(".pyc") || is_temp(p))
            .map(|(p, _)| {
                let ino = std::fs::metadata(root.join(&p)).unwrap().ino();
                (p, ino)
            })
            .collect()
    }
}

fn is_temp(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(".venvfs-tmp"))
}

/// Runs the venv's Python with bytecode written and read as by default, verbose about
/// imports; returns its stderr.
fn import(venv: &Path, code: &str) -> String {
    let out = run(Command::new(venv.join("bin/python"))
        .args(["-v", "-c", code])
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .env_remove("PYTHONPYCACHEPREFIX")
        .env_remove("PYTHONPATH"));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{code} failed in {}: {err}",
        venv.display()
    );
    err
}

/// The `.pyc` files of the venv's site-packages that Python's verbose import says it used.
fn pycs_used(err: &str, venv: &Path) -> Vec<String> {
    let site = venv.join("lib").display().to_string();
    err.lines()
        .filter(|l| l.contains(" matches ") && l.contains(&site))
        .map(|l| l.to_owned())
        .collect()
}

/// The venv's modules Python's verbose import says it compiled from source (not read
/// from a `.pyc`).
fn compiled_from_source(err: &str, venv: &Path) -> Vec<String> {
    let site = venv.join("lib").display().to_string();
    err.lines()
        .filter(|l| l.starts_with("# code object from") && l.contains(&site))
        .filter(|l| !l.contains("__pycache__"))
        .map(|l| l.to_owned())
        .collect()
}

/// `.pyc` files in the venv's own directory (unmounted).
fn own_pycs(venv: &Path) -> Vec<PathBuf> {
    entries_below(venv)
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "pyc"))
        .map(|(p, _)| p)
        .collect()
}

#[test]
fn a_second_venv_reads_the_bytecode_the_first_compiled() {
    let t = Setup::new();
    let before = t.layers();
    let one = t.venv("venv");
    let two = t.venv("venv2");

    // the first venv compiles: into the store, not into its own directory
    let m1 = t.mount(&one);
    let err = import(&one, IMPORT);
    assert!(pycs_used(&err, &one).is_empty(), "nothing to read yet");
    let stored = t.stored();
    assert!(
        stored.len() > 20,
        "the store holds the compiled modules: {stored:?}"
    );
    assert!(
        !stored.keys().any(|p| is_temp(p)),
        "no temporary files left: {stored:?}"
    );
    let site = one.join("lib/python3.11/site-packages");
    assert!(site.join("__pycache__/six.cpython-311.pyc").is_file());
    assert!(site.join("idna/__pycache__/core.cpython-311.pyc").is_file());
    // a package's `__pycache__` shows as a link to the store's directory for it (Python
    // wrote there itself); that of site-packages, whose modules come from several layers,
    // shows each stored file as a link to it (at once, in the venv that wrote it)
    t.assert_dir_link(&site.join("idna/__pycache__"), 5);
    t.assert_dir_link(&site.join("__pycache__"), 1);
    // the second import reads them, without one request to the daemon per module
    let ioctls = t.requests(&one, "ioctl");
    let again = import(&one, IMPORT);
    assert!(pycs_used(&again, &one).len() > 20, "{again}");
    let more = t.requests(&one, "ioctl") - ioctls;
    assert!(more <= 3, "{more} ioctls reached the daemon");
    m1.unmount();
    // others may read the store, only its owner may write it
    for (rel, kind) in entries_below(&t.store.join("bytecode")) {
        let mode = std::fs::metadata(t.store.join("bytecode").join(&rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        let want = if kind.is_dir() { 0o755 } else { 0o644 };
        assert_eq!(mode, want, "{} has mode {mode:o}", rel.display());
    }
    assert_eq!(
        own_pycs(&one),
        Vec::<PathBuf>::new(),
        "the first venv keeps no .pyc"
    );

    // the second venv writes nothing and reads the first one's
    let m2 = t.mount(&two);
    let err = import(&two, IMPORT);
    let used = pycs_used(&err, &two);
    assert!(
        used.len() >= stored.len(),
        "every module read from the store: {used:?}"
    );
    assert_eq!(t.stored(), stored, "the store is unchanged");
    let site = two.join("lib/python3.11/site-packages");
    let idna_store = t.assert_dir_link(&site.join("idna/__pycache__"), 5);
    t.assert_dir_link(&site.join("__pycache__"), 1);

    // a module the venv changed gets its own .pyc, in the venv: the `__pycache__` link
    // of its directory (gone through by the imports above) turns into the venv's own
    // directory, and the store keeps the layer's .pyc
    for (module, check) in [
        ("six.py", "import six; assert six.EDITED"),
        (
            "urllib3/exceptions.py",
            "import urllib3.exceptions as e; assert e.EDITED",
        ),
    ] {
        let path = site.join(module);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("\nEDITED = True\n");
        std::fs::write(&path, text).unwrap();
        let pyc = module.replace(".py", ".cpython-311.pyc matches");
        let pyc = pyc.rsplit('/').next().unwrap();
        let err = import(&two, check);
        assert!(!err.contains(pyc), "{err}");
        let err = import(&two, check);
        assert!(err.contains(pyc), "its own .pyc is read: {err}");
        let pycache = path.parent().unwrap().join("__pycache__");
        assert!(
            !std::fs::symlink_metadata(&pycache).unwrap().is_symlink(),
            "{} is still a link into the store",
            pycache.display()
        );
        assert_eq!(t.stored(), stored, "the store keeps the layer's .pyc");
    }

    // a package's link moved away stays the link it was; its name then shows the stored
    // files one by one, as links to them
    let pycache = site.join("idna/__pycache__");
    std::fs::rename(&pycache, two.join("moved-pycache")).unwrap();
    assert_eq!(
        std::fs::read_link(two.join("moved-pycache")).unwrap(),
        idna_store
    );
    t.assert_links(&pycache, 5);
    // such a link moved away stays the link it showed as; the store keeps its file
    let link = pycache.join("core.cpython-311.pyc");
    let target = std::fs::read_link(&link).unwrap();
    std::fs::rename(&link, two.join("moved")).unwrap();
    assert_eq!(std::fs::read_link(two.join("moved")).unwrap(), target);
    // (the name shows the store's file again: what a store holds is what the venv shows)
    assert_eq!(std::fs::read_link(&link).unwrap(), target);
    assert_eq!(t.stored(), stored);
    m2.unmount();
    assert_eq!(std::fs::read_link(two.join("moved")).unwrap(), target);
    assert_eq!(
        own_pycs(&two),
        vec![
            site.join("__pycache__/six.cpython-311.pyc"),
            site.join("urllib3/__pycache__/exceptions.cpython-311.pyc"),
        ]
    );
    assert_eq!(t.layers(), before, "the layers changed");
}

#[test]
fn with_links_off_the_stored_pyc_show_as_files() {
    let t = Setup::new();
    let before = t.layers();
    let venv = t.venv("venv");
    let m = t.mount_showing_files(&venv);
    import(&venv, IMPORT);
    let err = import(&venv, IMPORT);
    assert!(pycs_used(&err, &venv).len() > 20, "{err}");
    let pycache = venv.join("lib/python3.11/site-packages/idna/__pycache__");
    for e in std::fs::read_dir(&pycache).unwrap() {
        let e = e.unwrap();
        assert!(e.file_type().unwrap().is_file(), "{}", e.path().display());
    }
    assert!(t.stored().len() > 20);
    m.unmount();
    assert_eq!(own_pycs(&venv), Vec::<PathBuf>::new());
    assert_eq!(t.layers(), before, "the layers changed");
}

/// Where the mount serves the stored `.pyc` files itself (links off here; a store on a
/// network filesystem, in use), the open that checked a file serves it: one open each
/// per mount. (On a network filesystem every open, `fstat` and close is a request to the
/// server, on every node's first import.)
#[test]
fn a_stored_pyc_the_mount_serves_is_opened_once() {
    let t = Setup::new();
    let before = t.layers();
    let venv = t.compiled("venv");
    let m = t.mount_showing_files(&venv);
    let mut err = String::new();
    let log = t.s.path("opens.strace");
    let trace = daemon_calls(m.daemon_pid(), 5, "open,openat", &log, || {
        err = import(&venv, IMPORT);
    });
    assert!(pycs_used(&err, &venv).len() > 20, "{err}");
    let opened: Vec<&str> = trace
        .lines()
        .filter_map(|l| l.split('"').nth(1))
        .filter(|p| p.ends_with(".pyc"))
        .collect();
    let files: BTreeSet<&str> = opened.iter().copied().collect();
    assert!(
        files.len() > 20,
        "the trace misses the daemon's opens:\n{trace}"
    );
    assert_eq!(opened.len(), files.len(), "a .pyc opened twice:\n{trace}");
    m.unmount();
    assert_eq!(own_pycs(&venv), Vec::<PathBuf>::new());
    assert_eq!(t.layers(), before, "the layers changed");
}

#[test]
fn a_mount_others_use_shows_each_stored_pyc_and_writes_the_store_itself() {
    // (its other users may not write the store: Python must not write it through a
    // `__pycache__` link, the daemon does, for all of them)
    let t = Setup::new();
    let before = t.layers();
    let venv = t.venv("venv");
    run_ok(t.venvfs().arg("mount").arg("--allow-other").arg(&venv));
    let m = Mount::adopt(&venv);
    import(&venv, IMPORT);
    let pycache = venv.join("lib/python3.11/site-packages/idna/__pycache__");
    assert!(
        std::fs::symlink_metadata(&pycache).unwrap().is_dir(),
        "{} is not a directory",
        pycache.display()
    );
    t.assert_links(&pycache, 5);
    let err = import(&venv, IMPORT);
    assert!(pycs_used(&err, &venv).len() > 20, "{err}");
    assert!(t.stored().len() > 20);
    m.unmount();
    assert_eq!(own_pycs(&venv), Vec::<PathBuf>::new());
    assert_eq!(t.layers(), before, "the layers changed");
}

#[test]
fn a_materialized_venv_holds_the_stored_pyc_as_files() {
    let t = Setup::new();
    let before = t.layers();
    let venv = t.compiled("venv");
    let stored = t.stored();
    run_ok(t.venvfs().arg("materialize").arg(&venv));
    let pyc = venv.join("lib/python3.11/site-packages/idna/__pycache__/core.cpython-311.pyc");
    let meta = std::fs::symlink_metadata(&pyc).unwrap();
    assert!(meta.is_file(), "a file, not a link into the store");
    let (rel, _) = stored
        .iter()
        .find(|(p, _)| p.ends_with("idna/__pycache__/core.cpython-311.pyc"))
        .unwrap();
    let in_store = std::fs::read(t.store.join("bytecode").join(rel)).unwrap();
    assert_eq!(std::fs::read(&pyc).unwrap(), in_store);
    // the plain venv reads its own .pyc, compiling nothing
    let err = import(&venv, IMPORT);
    assert!(pycs_used(&err, &venv).len() > 20, "{err}");
    assert_eq!(compiled_from_source(&err, &venv), Vec::<String>::new());
    assert_eq!(t.stored(), stored);
    assert_eq!(t.layers(), before, "the layers changed");
}

/// The start of a test's script that mounts `export` over sshfs at `mnt` (`$mnt`), with
/// `options`; that mount and the venvfs mount of `venv` (`$venv`) are undone when the
/// script ends, however it ends.
fn sshfs_prelude(mnt: &Path, venv: &Path, export: &Path, options: &str) -> String {
    format!(
        "set -u\nmnt={mnt}\nvenv={venv}\n\
         trap '\"$VENVFS\" umount \"$venv\" >/dev/null 2>&1; \
         fusermount3 -u \"$mnt\" 2>/dev/null || umount -l \"$mnt\" 2>/dev/null || true' EXIT\n\
         sshfs -o {options} root@127.0.0.1:{export} \"$mnt\" || exit 2\n\
         grep -q \" $mnt fuse.sshfs \" /proc/self/mounts || exit 3\n",
        mnt = mnt.display(),
        venv = venv.display(),
        export = export.display(),
    )
}

/// A venv with nothing in it at `path`.
fn plain_venv(path: &Path) -> PathBuf {
    run_ok(
        Command::new("python3")
            .args(["-m", "venv", "--without-pip"])
            .arg(path),
    );
    path.to_owned()
}

/// What server log `log` says before the size a test's script wrote to `dir/mark`, and
/// between it and the one it wrote to `dir/end`.
fn logged_parts(log: &Path, dir: &Path) -> (String, String) {
    let offset = |name: &str| -> usize {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        text.trim().parse().unwrap()
    };
    let logged = std::fs::read(log).unwrap();
    let (mark, end) = (offset("mark"), offset("end"));
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (text(&logged[..mark]), text(&logged[mark..end]))
}

/// A setup for a test over sshfs (whose tools it needs).
fn setup_for_sshfs() -> Setup {
    for program in ["sshfs", "sshd", "ssh-keygen", "unshare", "fusermount3"] {
        common::sshd::require(program);
    }
    Setup::new()
}

/// A store on a network filesystem (sshfs here, an sshd of the test's own on 127.0.0.1,
/// mounted in a mount namespace of its own) is shown as files through the mount, not as
/// links: a link would send every open of a `.pyc` to the server.
#[test]
fn a_store_on_a_network_filesystem_shows_as_files() {
    use common::sshd::Sshd;
    let t = setup_for_sshfs();
    let before = t.layers();
    let venv = t.venv("venv");
    let root = t.s.path("sshfs-test");
    let export = root.join("export");
    std::fs::create_dir_all(&export).unwrap();
    let export = export.canonicalize().unwrap();
    let sshd = Sshd::start(&root.join("ssh"));
    let mnt = root.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let pycache = venv.join("lib/python3.11/site-packages/idna/__pycache__");
    let options = sshd.sshfs_options("no_contain_symlinks");
    let script = sshfs_prelude(&mnt, &venv, &export, &options)
        + &format!(
            "\
         VENVFS_BYTECODE_STORE=\"$mnt/store\" \"$VENVFS\" mount \"$venv\" || exit 4\n\
         for i in 1 2; do \"$venv/bin/python\" -c '{import}' || exit 5; done\n\
         find {pycache} -type l | wc -l > {out}/links\n\
         find {pycache} -type f | wc -l > {out}/files\n",
            import = IMPORT,
            pycache = pycache.display(),
            out = root.display(),
        );
    let mut cmd = t.in_own_mount_namespace(&script);
    cmd.env_remove("PYTHONDONTWRITEBYTECODE");
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(sshd);
    let count = |name: &str| -> usize {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
        text.trim().parse().unwrap()
    };
    assert_eq!(count("links"), 0, "no link into a store on sshfs");
    assert!(count("files") >= 5, "the store's .pyc show as files");
    let stored = entries_below(&export.join("store"))
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "pyc"))
        .count();
    assert!(
        stored > 20,
        "Python wrote into the store on sshfs: {stored}"
    );
    assert_eq!(own_pycs(&venv), Vec::<PathBuf>::new());
    assert_eq!(t.layers(), before, "the layers changed");
}

/// Layers and store on a network filesystem (sshfs, with an `sftp-server` of the test's
/// own logging every request it answers, and no sshfs cache of names and attributes, as
/// once it expired). The first import compiles certifi into the store; the kernel drops
/// the pages read (from the mount and from sshfs, as reclaim does on an idle node); the
/// second reads the stored `.pyc` and a layer's data file through the daemon, and finds
/// no `.pyc` of six (never written: `PYTHONDONTWRITEBYTECODE`); the pages are dropped
/// again; the third sends no request to the server: what the daemon read comes from its
/// memory, and the store's miss is not asked for again right away. Nor does the daemon
/// ask anything of its own while idle after it (its watch of the layers' sources, which
/// looks first within 2 s of the mount, leaves network filesystems alone).
#[test]
fn a_warm_import_from_a_network_filesystem_asks_the_server_nothing() {
    use common::sshd::Sshd;
    let t = setup_for_sshfs();
    let before = t.layers();
    let venv = plain_venv(&t.s.path("venv"));
    let root = t.s.path("sshfs-test");
    let export = root.join("export");
    for (name, wheel) in [("certifi", "certifi-"), ("six", "six-")] {
        unpack(&shared_wheel(wheel), &export.join("layers").join(name));
    }
    let export = export.canonicalize().unwrap();
    let layers_before = snapshot(&export.join("layers"));
    let log = root.join("sftp.log");
    let sshd = Sshd::start_logging(&root.join("ssh"), &log);
    let mnt = root.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    // (drops the page cache of every file below the directories it is given)
    let drop_pages = "import os, sys\n\
        for top in sys.argv[1:]:\n\
        \x20   for d, _, names in os.walk(top):\n\
        \x20       for n in names:\n\
        \x20           p = os.path.join(d, n)\n\
        \x20           if os.path.islink(p): continue\n\
        \x20           fd = os.open(p, os.O_RDONLY)\n\
        \x20           os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)\n\
        \x20           os.close(fd)\n";
    let options = sshd.sshfs_options("no_contain_symlinks,dir_cache=no");
    let script = sshfs_prelude(&mnt, &venv, &export, &options)
        + &format!(
            "py=\"$venv/bin/python\"\n\
         \"$VENVFS\" layer add \"$venv\" \"$mnt/layers/certifi\" \"$mnt/layers/six\" || exit 4\n\
         VENVFS_BYTECODE_STORE=\"$mnt/store\" \"$VENVFS\" mount \"$venv\" || exit 5\n\
         \"$py\" -c 'import certifi; open(certifi.where()).read()' || exit 6\n\
         python3 -c \"$DROP\" \"$venv/lib\" \"$mnt\" || exit 7\n\
         PYTHONDONTWRITEBYTECODE=1 \"$py\" -c \"$IMPORT\" || exit 8\n\
         python3 -c \"$DROP\" \"$venv/lib\" \"$mnt\" || exit 9\n\
         sleep 1\n\
         wc -c < {log} > {out}/mark\n\
         PYTHONDONTWRITEBYTECODE=1 \"$py\" -c \"$IMPORT\" || exit 10\n\
         sleep 2.5\n\
         wc -c < {log} > {out}/end\n",
            log = log.display(),
            out = root.display(),
        );
    let mut cmd = t.in_own_mount_namespace(&script);
    cmd.env("DROP", drop_pages)
        .env(
            "IMPORT",
            "import certifi, six; open(certifi.where()).read()",
        )
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .env_remove("PYTHONPYCACHEPREFIX")
        .env_remove("PYTHONPATH");
    let out = run(&mut cmd);
    drop(sshd);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // (the pause before the mark: sshfs closes a handle of the import before it a moment
    // after that import ends, and on a busy machine that close could land after the mark)
    let (first, last) = logged_parts(&log, &root);
    let asked: Vec<&str> = last
        .lines()
        .filter(|l| {
            ["store", "layers"]
                .iter()
                .any(|d| l.contains(&format!("\"{}/{d}", export.display())))
        })
        .collect();
    assert_eq!(asked, Vec::<&str>::new(), "requests to the server");
    // (and the first imports did reach it: the log is the server's)
    assert!(first.contains(&format!("\"{}/store/", export.display())));
    assert!(first.contains("cacert.pem"));
    assert_eq!(own_pycs(&venv), Vec::<PathBuf>::new());
    assert_eq!(snapshot(&export.join("layers")), layers_before);
    assert_eq!(t.layers(), before, "the layers changed");
}

/// A shared object of a layer on a network filesystem is not read whole ahead of its first
/// read, as one on a local disk is (see `overlay/prefetch.rs`): a `dlopen` maps a part of
/// it, and the rest would be requests and bytes from the server for nothing.
#[test]
fn a_shared_object_on_a_network_filesystem_is_not_read_ahead() {
    use common::sshd::Sshd;
    let t = setup_for_sshfs();
    let venv = plain_venv(&t.s.path("venv"));
    let root = t.s.path("sshfs-test");
    let export = root.join("export");
    let wheel = shared_wheel("pyyaml-");
    let wheel_before = snapshot(&wheel);
    unpack(&wheel, &export.join("layers/yaml"));
    let export = export.canonicalize().unwrap();
    let layers_before = snapshot(&export.join("layers"));
    let log = root.join("sftp.log");
    let sshd = Sshd::start_logging(&root.join("ssh"), &log);
    let mnt = root.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let site = venv.join("lib/python3.11/site-packages/yaml");
    let options = sshd.sshfs_options("no_contain_symlinks");
    let script = sshfs_prelude(&mnt, &venv, &export, &options)
        + &format!(
            "\
         \"$VENVFS\" layer add \"$venv\" \"$mnt/layers/yaml\" >/dev/null || exit 4\n\
         \"$VENVFS\" mount \"$venv\" >/dev/null || exit 5\n\
         sleep 1\n\
         wc -c < {log} > {out}/mark\n\
         stat -c %s {site}/_yaml.cpython-311-x86_64-linux-gnu.so || exit 6\n\
         head -c 64 {site}/__init__.py >/dev/null || exit 7\n\
         sleep 2\n\
         wc -c < {log} > {out}/end\n",
            log = log.display(),
            out = root.display(),
            site = site.display(),
        );
    let out = run(&mut t.in_own_mount_namespace(&script));
    drop(sshd);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.lines().any(|l| l == "2650176"),
        "the .so looked up: {said}"
    );
    let (_, between) = logged_parts(&log, &root);
    let reads = |name: &str| {
        between
            .lines()
            .filter(|l| l.contains(": read \"") && l.contains(name))
            .count()
    };
    assert!(
        reads("yaml/__init__.py") > 0,
        "the log misses the daemon's reads:\n{between}"
    );
    assert_eq!(
        reads("_yaml.cpython-311"),
        0,
        "the .so was read:\n{between}"
    );
    assert_eq!(snapshot(&export.join("layers")), layers_before);
    assert_eq!(snapshot(&wheel), wheel_before);
}

#[test]
fn a_stale_or_corrupt_pyc_in_the_store_is_never_served() {
    let t = Setup::new();
    let before = t.layers();
    let venv = t.compiled("venv");
    let root = t.store.join("bytecode");
    let find = |suffix: &str| {
        t.stored()
            .into_keys()
            .find(|p| p.to_string_lossy().ends_with(suffix))
            .map(|p| root.join(p))
            .unwrap_or_else(|| panic!("no {suffix} in the store"))
    };
    // stale: another source's timestamp; corrupt: no code object after the header
    let core = find("idna/__pycache__/core.cpython-311.pyc");
    let mut bytes = std::fs::read(&core).unwrap();
    bytes[8] ^= 0xff;
    std::fs::write(&core, &bytes).unwrap();
    // (six's `__pycache__` shows each stored file; idna's is a link to the store's
    // directory, where Python itself would read a corrupt one and fail the import)
    for corrupt in [
        "/__pycache__/six.cpython-311.pyc",
        "idna/__pycache__/idnadata.cpython-311.pyc",
    ] {
        let path = find(corrupt);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(16);
        bytes.extend(b"garbage");
        std::fs::write(&path, &bytes).unwrap();
    }
    // a foreign one: another interpreter's magic number
    let idna = find("idna/__pycache__/__init__.cpython-311.pyc");
    let mut bytes = std::fs::read(&idna).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&idna, &bytes).unwrap();

    let m = t.mount(&venv);
    let err = import(&venv, IMPORT);
    let used = pycs_used(&err, &venv).join("\n");
    let checked = [
        "idna/__pycache__/core.cpython-311.pyc",
        "site-packages/__pycache__/six.cpython-311.pyc",
        "idna/__pycache__/idnadata.cpython-311.pyc",
        "idna/__pycache__/__init__.cpython-311.pyc",
    ];
    for bad in checked {
        assert!(!used.contains(bad), "{bad} was served: {used}");
    }
    // compiled again, and put in place of the bad ones
    let err = import(&venv, IMPORT);
    let used = pycs_used(&err, &venv).join("\n");
    for good in checked {
        assert!(used.contains(good), "{good} not read: {used}");
    }
    m.unmount();
    assert_eq!(own_pycs(&venv), Vec::<PathBuf>::new());
    assert_eq!(t.layers(), before, "the layers changed");
}

#[test]
fn sixteen_processes_in_four_venvs_import_while_the_store_fills() {
    let t = Setup::new();
    let before = t.layers();
    let venvs: Vec<PathBuf> = (0..4).map(|i| t.venv(&format!("v{i}"))).collect();
    let mounts: Vec<Mount> = venvs.iter().map(|v| t.mount(v)).collect();
    let code = format!("{IMPORT}; import idna.codec, idna.uts46data, urllib3.util.ssltransport");
    let children: Vec<_> = (0..16)
        .map(|i| {
            Command::new(venvs[i % 4].join("bin/python"))
                .args(["-c", &code])
                .env_remove("PYTHONDONTWRITEBYTECODE")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // afterwards every venv reads every module from the store
    let stored = t.stored();
    for v in &venvs {
        let err = import(v, &code);
        let compiled = compiled_from_source(&err, v);
        assert!(
            compiled.is_empty(),
            "compiled again in {}: {compiled:?}",
            v.display()
        );
        assert!(pycs_used(&err, v).len() > 20);
    }
    drop(mounts);
    assert!(
        !t.stored().keys().any(|p| is_temp(p)),
        "temporary files left in the store"
    );
    assert!(stored.len() > 20);
    for v in &venvs {
        assert_eq!(own_pycs(v), Vec::<PathBuf>::new(), "{}", v.display());
    }
    assert_eq!(t.layers(), before, "the layers changed");
}

#[test]
fn a_store_compiled_ahead_serves_every_venv_read_only() {
    let t = Setup::new();
    let before = t.layers();
    let venv = t.venv("venv");
    // compiled ahead into a store of its own (the venv is not mounted: a mount of its own
    // for the compile, gone afterwards)
    let shared = t.s.path("shared-store");
    let out = run_ok(
        t.venvfs()
            .arg("compile")
            .arg("--store")
            .arg(&shared)
            .arg(&venv),
    );
    assert!(out.starts_with("Compiled "), "{out}");
    assert!(!is_mounted(&venv), "the compile's mount is gone");
    let compiled: Vec<_> = entries_below(&shared)
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "pyc"))
        .collect();
    assert!(compiled.len() > 50, "{out}: {compiled:?}");
    assert!(compiled.iter().all(|(p, _)| !is_temp(p)));
    // a venv reading that store (and writing its own elsewhere) compiles nothing
    let m = t.mount_reading(&venv, &shared);
    let err = import(&venv, IMPORT);
    let compiled_now = compiled_from_source(&err, &venv);
    assert!(
        compiled_now.is_empty(),
        "compiled at import: {compiled_now:?}"
    );
    assert!(pycs_used(&err, &venv).len() > 20);
    assert!(
        t.stored().is_empty(),
        "nothing written to the venv's own store"
    );
    // compiling a mounted venv goes through its mount, into its store; a second compile
    // finds everything compiled
    let out = run_ok(t.venvfs().arg("compile").arg(&venv));
    assert!(out.contains("Compiled 0 modules"), "{out}");
    m.unmount();
    assert_eq!(own_pycs(&venv), Vec::<PathBuf>::new());
    assert_eq!(t.layers(), before, "the layers changed");
}

fn is_mounted(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(&format!(" {} ", path.display())))
}

#[test]
fn sources_compile_without_a_venv_for_every_venv_using_them() {
    let t = Setup::new();
    let before = t.layers();
    // the wheels and the unpacked one, compiled for this Python with no venv of the user's
    let shared = t.s.path("shared-store");
    // (what an interrupted compile left: removed, its process being gone)
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let left = std::env::temp_dir().join(format!("venvfs-compile-{gone_pid}-test"));
    std::fs::create_dir_all(left.join("v0")).unwrap();
    let out = run_ok(
        t.venvfs()
            .arg("compile")
            .arg("--store")
            .arg(&shared)
            .args(&t.wheels)
            .arg(&t.unpacked),
    );
    assert!(out.contains("Compiled "), "{out}");
    assert!(!left.exists(), "an interrupted compile's directory stays");
    // a venv made afterwards from the same sources reads them all
    let venv = t.venv("venv");
    let m = t.mount_reading(&venv, &shared);
    let err = import(&venv, IMPORT);
    let compiled = compiled_from_source(&err, &venv);
    assert!(compiled.is_empty(), "compiled at import: {compiled:?}");
    m.unmount();
    // a source that is none of those is refused, naming it
    let out = run(t.venvfs().arg("compile").arg(t.s.path("nothing-here")));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing-here"));
    assert_eq!(t.layers(), before, "the layers changed");
}
