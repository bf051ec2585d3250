//! `venvfs materialize`: a venvfs venv (layers from uv's cache and from `.whl` files, edits
//! made through the mount) becomes a plain venv holding what `uv pip install
//! --link-mode=copy` of the same wheels holds, with the same edits, file for file; what the
//! mount showed (modes, times, links) is kept; venvfs's state goes; the cache is not
//! changed; a run killed at any moment leaves a working venv of one kind or the other.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SITE: &str = "lib/python3.11/site-packages";

/// A venvfs venv synced from wheels of which some are served from uv's cache (unpacked
/// layers) and the others, with the demo wheel, from `.whl` files.
/// The activation scripts venvfs makes set uv's link mode.
/// The activation scripts uv writes (on every system) that venvfs makes set the link mode.
const ACTIVATE: [&str; 6] = [
    "bin/activate",
    "bin/activate.fish",
    "bin/activate.csh",
    "bin/activate.ps1",
    "bin/activate.bat",
    "bin/deactivate.bat",
];

struct Setup {
    s: Scratch,
    venv: PathBuf,
    cache: PathBuf,
    house: PathBuf,
    /// Where the `.whl` layers come from (a `--find-links` directory).
    whl_house: PathBuf,
    reqs: PathBuf,
    wheels: Vec<PathBuf>,
    /// [`ACTIVATE`] as uv wrote them, before venvfs touched them.
    activate: [Vec<u8>; ACTIVATE.len()],
}

fn setup(from_cache: &[&str], from_whl: &[&str]) -> Setup {
    let s = Scratch::new();
    let all: Vec<&str> = from_cache.iter().chain(from_whl).copied().collect();
    let (house, wheels) = wheelhouse(&s, &all);
    let matching = |prefixes: &[&str]| -> Vec<PathBuf> {
        wheels
            .iter()
            .filter(|w| {
                let n = w.file_name().unwrap().to_string_lossy().into_owned();
                prefixes.iter().any(|p| n.starts_with(p)) || n.starts_with("demo_pkg-")
            })
            .cloned()
            .collect()
    };
    // uv's cache holds the first ones, unpacked, as installing with uv leaves them
    let cache = s.path("uv-cache");
    let cached_reqs = s.path("cached.txt");
    let cached: Vec<PathBuf> = matching(from_cache)
        .into_iter()
        .filter(|w| !w.to_string_lossy().contains("demo_pkg-"))
        .collect();
    std::fs::write(&cached_reqs, pins(&cached)).unwrap();
    let fill = s.path("fill");
    uv_venv(&fill);
    fill_uv_cache(&fill, &house, &cached_reqs, &cache);
    // the others are only found as wheel files
    let whl_house = s.path("whl-house");
    std::fs::create_dir_all(&whl_house).unwrap();
    for w in matching(from_whl) {
        std::os::unix::fs::symlink(&w, whl_house.join(w.file_name().unwrap())).unwrap();
    }
    let reqs = s.path("requirements.txt");
    std::fs::write(&reqs, pins(&wheels)).unwrap();
    let venv = s.path("v");
    let activate = make_venvfs_venv(&s, &venv, &reqs, &whl_house, &cache);
    let manifest = std::fs::read_to_string(venv.join(".venvfs/manifest.toml")).unwrap();
    assert_eq!(
        manifest.matches("archive-v0/").count(),
        from_cache.len(),
        "layers from uv's cache: {manifest}"
    );
    assert_eq!(
        manifest.matches(".whl\"").count(),
        from_whl.len() + 1,
        ".whl layers: {manifest}"
    );
    Setup {
        s,
        venv,
        cache,
        house,
        whl_house,
        reqs,
        wheels,
        activate,
    }
}

/// `uv venv` + `venvfs sync` of `reqs`; returns [`ACTIVATE`] as uv wrote them.
fn make_venvfs_venv(
    s: &Scratch,
    venv: &Path,
    reqs: &Path,
    whl: &Path,
    cache: &Path,
) -> [Vec<u8>; ACTIVATE.len()] {
    uv_venv(venv);
    let activate = ACTIVATE.map(|a| std::fs::read(venv.join(a)).unwrap());
    run_ok(
        venvfs()
            .arg("sync")
            .arg(venv)
            .arg(reqs)
            .arg("--find-links")
            .arg(whl)
            .env("UV_CACHE_DIR", cache)
            .env("XDG_CACHE_HOME", s.path("xdg")),
    );
    activate
}

impl Setup {
    /// What must stay byte-identical: uv's unpacked wheels and the wheel files.
    fn sources(&self) -> Vec<BTreeMap<PathBuf, (u32, u64, i64, u64)>> {
        let mut all = vec![snapshot(&self.cache.join("archive-v0"))];
        all.extend(self.wheels.iter().map(|w| snapshot(w)));
        all
    }

    /// The same wheels installed by `uv pip install --link-mode=copy`.
    fn uv_reference(&self) -> PathBuf {
        let reference = self.s.path("uv-venv");
        uv_copy_venv(&reference, &self.house, &self.reqs);
        reference
    }
}

fn materialize(venv: &Path, args: &[&str]) -> std::process::Output {
    run(venvfs().arg("materialize").arg(venv).args(args))
}

fn materialize_ok(venv: &Path, args: &[&str]) -> (String, String) {
    let out = materialize(venv, args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "materialize failed: {stdout}\n{stderr}"
    );
    assert!(stdout.starts_with("Materialized "), "{stdout}");
    (stdout, stderr)
}

/// The same edits, made through the mount of a venvfs venv or on a plain venv's disk: a
/// new file, a layer file changed, one deleted, one made private, a layer directory
/// removed and made again (opaque), one renamed (redirect), a symlink and a hard link.
fn edit(venv: &Path, numpy: bool) {
    let site = venv.join(SITE);
    std::fs::write(site.join("mine.py"), "VALUE = 'mine'\n").unwrap();
    std::fs::hard_link(site.join("mine.py"), site.join("mine_again.py")).unwrap();
    std::os::unix::fs::symlink("six.py", site.join("six_link.py")).unwrap();
    let six = std::fs::read_to_string(site.join("six.py")).unwrap();
    std::fs::write(site.join("six.py"), format!("{six}\nEDITED = True\n")).unwrap();
    std::fs::remove_file(site.join("click/testing.py")).unwrap();
    std::fs::set_permissions(
        site.join("click/_compat.py"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let share = venv.join("share/demo_pkg");
    std::fs::remove_dir_all(&share).unwrap();
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("again.txt"), "made again\n").unwrap();
    if numpy {
        std::fs::rename(site.join("numpy/tests"), site.join("numpy/tests_moved")).unwrap();
    }
}

/// Everything a venv shows: per path, the kind, mode, modification time, and the content
/// (files) or target (symlinks); directories without their size, which is the
/// filesystem's business.
fn view(venv: &Path) -> BTreeMap<PathBuf, (u32, i64, i64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for (p, t) in entries_below(venv) {
        if p.iter().any(|c| c == "__pycache__") {
            // (bytecode: a mount may show a `__pycache__` as a link to the store's
            // directory, where the materialized venv has the directory; see
            // a_materialized_venv_holds_the_stored_pyc_as_files)
            continue;
        }
        let m = std::fs::symlink_metadata(&p).unwrap();
        let data = if t.is_file() {
            std::fs::read(&p).unwrap()
        } else if t.is_symlink() {
            std::fs::read_link(&p)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else {
            Vec::new()
        };
        out.insert(
            p.strip_prefix(venv).unwrap().to_owned(),
            (m.mode(), m.mtime(), m.mtime_nsec(), data),
        );
    }
    out
}

/// Names venvfs keeps for itself, anywhere in the venv.
fn venvfs_state(venv: &Path) -> Vec<PathBuf> {
    entries_below(venv)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n == ".venvfs" || n.starts_with(".wh.") || n == "_venvfs_unmounted.pth"
        })
        .collect()
}

fn imports(venv: &Path, modules: &str) {
    run_ok(venv_program(venv, "python").args(["-c", &format!("import {modules}")]));
}

const CHECK: &str =
    "six, click, yaml, jinja2, markupsafe, demo_pkg, demo_pkg_pth_mod, mine; assert six.EDITED";

#[test]
fn materialized_venv_matches_uv_copy_file_for_file_with_the_edits() {
    let st = setup(
        &["six-", "click-", "numpy-"],
        &["pyyaml-", "markupsafe-", "jinja2-"],
    );
    let sources = st.sources();
    let reference = st.uv_reference();
    edit(&reference, true);
    let venv = &st.venv;
    let shown = {
        let m = Mount::new(venv);
        edit(venv, true);
        imports(venv, &format!("{CHECK}, numpy"));
        let shown = view(venv);
        m.unmount();
        shown
    };
    assert!(
        !venvfs_state(venv).is_empty(),
        "the venvfs venv has markers"
    );
    let (stdout, _) = materialize_ok(venv, &[]);
    assert!(stdout.contains(" is a plain venv now"), "{stdout}");

    assert_eq!(
        venvfs_state(venv),
        Vec::<PathBuf>::new(),
        "venvfs's state is gone"
    );
    let compared = assert_same_files(venv, &reference, "materialized");
    assert!(compared > 1000, "only {compared} files compared");
    // what the mount showed, modes and times included (but venvfs's uv link mode in the
    // activation scripts, which is taken out: the scripts are uv's again)
    let mut now = view(venv);
    let mut before = shown;
    for (script, original) in ACTIVATE.iter().zip(&st.activate) {
        let activate = PathBuf::from(script);
        assert_eq!(&std::fs::read(venv.join(&activate)).unwrap(), original);
        assert!(String::from_utf8_lossy(&before[&activate].3).contains("UV_LINK_MODE"));
        now.remove(&activate);
        before.remove(&activate);
    }
    let differ: Vec<_> = before
        .keys()
        .chain(now.keys())
        .filter(|k| before.get(*k) != now.get(*k))
        .take(10)
        .collect();
    assert!(differ.is_empty(), "not as the mount showed: {differ:?}");
    // a hard link made through the mount is still one
    let ino = |rel: &str| std::fs::metadata(venv.join(SITE).join(rel)).unwrap().ino();
    assert_eq!(ino("mine.py"), ino("mine_again.py"));
    // no file of the venv is the cache's (clone mode: copies where reflinks are refused)
    for (p, t) in entries_below(venv) {
        if t.is_file() {
            assert_eq!(
                std::fs::metadata(&p).unwrap().nlink(),
                1 + (p.ends_with("mine.py") || p.ends_with("mine_again.py")) as u64,
                "{}",
                p.display()
            );
        }
    }
    // it works without a mount, and nothing was mounted
    imports(venv, &format!("{CHECK}, numpy"));
    let main = run_ok(&mut Command::new(venv.join("bin/demo_pkg-main")));
    assert_eq!(main.trim(), "main 42");
    assert!(!std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&venv.to_string_lossy().into_owned()));
    assert_eq!(st.sources(), sources, "the cache or a wheel changed");
    // nothing is left beside it
    let beside: Vec<_> = std::fs::read_dir(venv.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("v."))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
}

#[test]
fn link_modes_and_what_is_refused() {
    let st = setup(&["six-", "click-"], &["pyyaml-", "markupsafe-", "jinja2-"]);
    let sources = st.sources();
    let six_in_cache = std::fs::read_dir(st.cache.join("archive-v0"))
        .unwrap()
        .map(|e| e.unwrap().path().join("six.py"))
        .find(|p| p.is_file())
        .expect("six is unpacked in uv's cache");
    let site = |venv: &Path, rel: &str| venv.join(SITE).join(rel);

    // a mounted venv is refused, and stays mounted and working
    {
        let _m = Mount::new(&st.venv);
        let out = materialize(&st.venv, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("is mounted") && err.contains("venvfs umount"),
            "{err}"
        );
        imports(&st.venv, "six, yaml");
    }

    // while a materialize runs (it holds the venv directory's lock), a second one and a
    // mount are refused
    {
        let dir = std::fs::File::open(&st.venv).unwrap();
        rustix::fs::flock(&dir, rustix::fs::FlockOperation::LockExclusive).unwrap();
        let out = materialize(&st.venv, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("is running"), "{err}");
        let out = run(venvfs().arg("mount").arg(&st.venv));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("is being materialized"),
            "{err}"
        );
    }

    // hardlink: the cache's files are linked (what uv's hardlink mode does), the members
    // of wheel files copied
    let (_, stderr) = materialize_ok(&st.venv, &["--link-mode", "hardlink"]);
    let cache_ino = std::fs::metadata(&six_in_cache).unwrap().ino();
    assert_eq!(
        std::fs::metadata(site(&st.venv, "six.py")).unwrap().ino(),
        cache_ino
    );
    assert_eq!(
        std::fs::metadata(site(&st.venv, "yaml/__init__.py"))
            .unwrap()
            .nlink(),
        1
    );
    assert!(stderr.contains(".whl layers were copied"), "{stderr}");
    assert_eq!(venvfs_state(&st.venv), Vec::<PathBuf>::new());
    imports(&st.venv, "six, click, yaml, jinja2, demo_pkg");

    // a plain venv is refused, unchanged
    let before = view(&st.venv);
    let out = materialize(&st.venv, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is not a venvfs venv"), "{err}");
    assert_eq!(view(&st.venv), before);

    // copy and clone: nothing shared with the cache
    for mode in ["copy", "clone"] {
        let venv = st.s.path(mode);
        make_venvfs_venv(&st.s, &venv, &st.reqs, &st.whl_house, &st.cache);
        materialize_ok(&venv, &["--link-mode", mode]);
        let m = std::fs::metadata(site(&venv, "six.py")).unwrap();
        assert_ne!(m.ino(), cache_ino);
        assert_eq!(m.nlink(), 1);
        assert_eq!(
            std::fs::read(site(&venv, "six.py")).unwrap(),
            std::fs::read(&six_in_cache).unwrap()
        );
        imports(&venv, "six, click, yaml, jinja2, demo_pkg");
    }

    // a venv whose layer is gone is refused, naming it, and left as it was
    let venv = st.s.path("broken");
    make_venvfs_venv(&st.s, &venv, &st.reqs, &st.whl_house, &st.cache);
    let gone = st.s.path("gone");
    std::fs::create_dir(&gone).unwrap();
    let wheel = build_wheel(
        &gone,
        "gone_pkg",
        "1.0",
        &[("gone_pkg.py", b"X = 1\n", false)],
    );
    run_ok(venvfs().arg("install").arg(&venv).arg(&wheel));
    std::fs::remove_file(&wheel).unwrap();
    let before = view(&venv);
    let out = materialize(&venv, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("gone_pkg-1.0-py3-none-any.whl"), "{err}");
    assert_eq!(view(&venv), before, "the venv changed");
    let beside: Vec<_> = std::fs::read_dir(&st.s.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".materializing-"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
    assert_eq!(st.sources(), sources, "the cache or a wheel changed");
}

/// A pseudo-random number below `n`.
fn random_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() % n.max(1)
}

/// How long a whole `venvfs materialize` takes, on a venv made as the setup's is.
fn whole_run_ms(st: &Setup) -> u64 {
    let probe = st.s.path("probe");
    make_venvfs_venv(&st.s, &probe, &st.reqs, &st.whl_house, &st.cache);
    let started = Instant::now();
    materialize_ok(&probe, &[]);
    started.elapsed().as_millis() as u64
}

/// What a run left beside the venv (`v.materializing-PID`, `v.venvfs-old-PID`).
fn beside(venv: &Path) -> Vec<String> {
    std::fs::read_dir(venv.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("v."))
        .collect()
}

fn is_venvfs_venv(venv: &Path) -> bool {
    venv.join(".venvfs/manifest.toml").is_file()
}

/// Kills `venvfs materialize` at random moments, in rounds: after each, VENV is a working
/// venvfs venv (it mounts and imports) or a working plain venv, and a later run finishes
/// and leaves nothing beside it.
#[test]
fn a_killed_materialize_leaves_one_working_venv_or_the_other() {
    let rounds: usize = std::env::var("VENVFS_MATERIALIZE_KILL_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(8);
    let st = setup(&["six-", "click-"], &["numpy-", "pyyaml-"]);
    let sources = st.sources();
    let modules = "six, click, yaml, numpy, demo_pkg";
    let whole = whole_run_ms(&st);
    let venv = &st.venv;
    let (mut killed_as_venvfs, mut killed_as_plain) = (0, 0);
    for round in 0..rounds {
        if !is_venvfs_venv(venv) {
            std::fs::remove_dir_all(venv).unwrap();
            make_venvfs_venv(&st.s, venv, &st.reqs, &st.whl_house, &st.cache);
        }
        let delay = random_below(whole + whole / 4);
        let mut child = venvfs()
            .arg("materialize")
            .arg(venv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            venv.is_dir(),
            "round {round}: no venv after a kill at {delay} ms"
        );
        if is_venvfs_venv(venv) {
            killed_as_venvfs += 1;
            let m = Mount::new(venv);
            imports(venv, modules);
            m.unmount();
        } else {
            killed_as_plain += 1;
            assert_eq!(venvfs_state(venv), Vec::<PathBuf>::new(), "round {round}");
            imports(venv, modules);
        }
        eprintln!("round {round}: killed after {delay} of {whole} ms");
    }
    eprintln!("left a venvfs venv {killed_as_venvfs} times, a plain one {killed_as_plain} times");
    if is_venvfs_venv(venv) {
        materialize_ok(venv, &[]);
    } else {
        // a run on the plain venv still cleans what a killed one left beside it
        let _ = materialize(venv, &[]);
    }
    assert!(!is_venvfs_venv(venv));
    assert_eq!(venvfs_state(venv), Vec::<PathBuf>::new());
    imports(venv, modules);
    let beside = beside(venv);
    assert!(beside.is_empty(), "left beside the venv: {beside:?}");
    assert_eq!(st.sources(), sources, "the cache or a wheel changed");
}

/// Ctrl-C (SIGINT) while `venvfs materialize` builds the plain venv: it stops, exits 130,
/// and removes what it built; the venvfs venv is left as it was (it mounts and imports) and
/// nothing is left beside it. (One interrupted after the build finishes the switch.)
#[test]
fn ctrl_c_of_materialize_leaves_the_venv_as_it_was_and_nothing_beside() {
    let st = setup(&["six-"], &["numpy-", "pyyaml-"]);
    let sources = st.sources();
    let whole = whole_run_ms(&st);
    let venv = &st.venv;
    let mut interrupted = 0;
    for round in 0..3 {
        if !is_venvfs_venv(venv) {
            std::fs::remove_dir_all(venv).unwrap();
            make_venvfs_venv(&st.s, venv, &st.reqs, &st.whl_house, &st.cache);
        }
        let child = venvfs()
            .arg("materialize")
            .arg(venv)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(whole / 3));
        // SAFETY: a signal to our own child.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
        let out = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        let beside = beside(venv);
        assert!(beside.is_empty(), "round {round}: left beside: {beside:?}");
        if out.status.code() == Some(130) {
            interrupted += 1;
            assert!(said.contains("interrupted: "), "{said}");
            assert!(is_venvfs_venv(venv), "round {round}");
            let m = Mount::new(venv);
            imports(venv, "six, yaml, numpy, demo_pkg");
            m.unmount();
        } else {
            assert!(out.status.success(), "round {round}: {said}");
            assert!(!is_venvfs_venv(venv), "round {round}");
        }
    }
    assert!(
        interrupted > 0,
        "no run was interrupted (a run takes {whole} ms)"
    );
    assert_eq!(st.sources(), sources, "the cache or a wheel changed");
}

/// Links uv's symlink link mode made into its cache through the mount (references, shown
/// as files) become files of the plain venv, which then needs the cache no more.
#[test]
fn links_into_uvs_cache_become_files() {
    let st = setup(&["six-"], &["pyyaml-"]);
    let venv = &st.venv;
    let idna = shared_wheel("idna-");
    {
        let _m = Mount::new(venv);
        run_ok(
            uv().args([
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--no-index",
                "--link-mode=symlink",
                "--python",
            ])
            .arg(venv.join("bin/python"))
            .arg("-f")
            .arg(idna.parent().unwrap())
            .arg("idna")
            .env("UV_CACHE_DIR", &st.cache),
        );
        imports(venv, "idna, six, yaml");
    }
    let module = venv.join(SITE).join("idna/core.py");
    let target = std::fs::read_link(&module).expect("uv linked the module into its cache");
    assert!(target.starts_with(&st.cache), "{}", target.display());
    let sources = st.sources();
    materialize_ok(venv, &[]);
    let m = std::fs::symlink_metadata(&module).unwrap();
    assert!(m.is_file(), "a file now");
    assert_eq!(m.nlink(), 1);
    assert_eq!(
        std::fs::read(&module).unwrap(),
        std::fs::read(&target).unwrap()
    );
    let links: Vec<_> = entries_below(venv)
        .into_iter()
        .filter(|(p, t)| t.is_symlink() && std::fs::read_link(p).unwrap().starts_with(&st.cache))
        .collect();
    assert!(links.is_empty(), "links into the cache are left: {links:?}");
    imports(venv, "idna, six, yaml");
    assert_eq!(st.sources(), sources, "the cache or a wheel changed");
}

/// Run by root on a venv another user owns (`sudo venvfs materialize`), the plain venv is
/// that user's, but for hard links to the cache, which stay the cache's. (As another user,
/// the test says so and checks nothing: only root can give files away.)
#[test]
fn run_by_root_the_plain_venv_belongs_to_the_venvs_owner() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: nothing to check (only root gives files to another user)");
        return;
    }
    let st = setup(&["six-"], &["pyyaml-"]);
    let sources = st.sources();
    let nobody = (65534, 65534);
    let owners = |venv: &Path| -> Vec<(PathBuf, (u32, u32))> {
        let mut all = vec![(venv.to_owned(), std::fs::metadata(venv).unwrap())];
        all.extend(
            entries_below(venv)
                .into_iter()
                .map(|(p, _)| (p.clone(), std::fs::symlink_metadata(&p).unwrap())),
        );
        all.into_iter()
            .map(|(p, m)| (p, (m.uid(), m.gid())))
            .collect()
    };
    for mode in ["clone", "hardlink"] {
        let venv = st.s.path(mode);
        make_venvfs_venv(&st.s, &venv, &st.reqs, &st.whl_house, &st.cache);
        run_ok(Command::new("chown").args(["-R", "65534:65534"]).arg(&venv));
        materialize_ok(&venv, &["--link-mode", mode]);
        let six = venv.join(SITE).join("six.py");
        let cache_files: std::collections::HashSet<u64> = entries_below(&st.cache)
            .into_iter()
            .map(|(p, _)| std::fs::symlink_metadata(p).unwrap().ino())
            .collect();
        let wrong: Vec<_> = owners(&venv)
            .into_iter()
            .filter(|(p, o)| {
                let linked = cache_files.contains(&std::fs::symlink_metadata(p).unwrap().ino());
                *o != nobody && !(mode == "hardlink" && linked)
            })
            .collect();
        assert!(wrong.is_empty(), "{mode}: {wrong:?}");
        let six_owner = std::fs::metadata(&six).unwrap().uid();
        assert_eq!(
            six_owner,
            if mode == "hardlink" { 0 } else { 65534 },
            "{mode}"
        );
        imports(&venv, "six, yaml, demo_pkg");
    }
    assert_eq!(st.sources(), sources, "the cache or a wheel changed");
}
