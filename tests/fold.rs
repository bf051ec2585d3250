//! `venvfs fold` on a mounted venv uv filled with links into its cache (its symlink link
//! mode): the links become layers of uv's unpacked wheels, live, without the venv showing
//! anything different, and uv's cache is never written.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Symlinks below `dir` whose target is below `cache`.
fn links_into(dir: &Path, cache: &Path) -> Vec<PathBuf> {
    entries_below(dir)
        .into_iter()
        .filter(|(p, t)| t.is_symlink() && std::fs::read_link(p).unwrap().starts_with(cache))
        .map(|(p, _)| p)
        .collect()
}

/// Asserts that `venvfs list` shows each distribution named (a prefix of its line) as a
/// layer.
fn assert_layers(venv: &Path, names: &[&str]) {
    let listed = run_ok(venvfs().arg("list").arg(venv));
    for name in names {
        let line = listed
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} in {listed}"));
        assert!(line.trim_end().ends_with("layer"), "{listed}");
    }
}

/// A mounted scratch venv into which uv installed `packages` through the mount with its
/// symlink link mode, offline (`--no-index --find-links` the test wheels), with a cache of
/// the test's own: the venv, the cache and the mount.
fn uv_linked_venv(packages: &[&str]) -> (Scratch, PathBuf, Mount) {
    let s = Scratch::new();
    let wheels = shared_wheel("six-").parent().unwrap().to_owned();
    let cache = s.path("uv-cache");
    // (the daemon would fold by itself 2 s after uv's last link, before or during the
    // test's own fold on a loaded machine)
    let m = Mount::with_env(&s.venv, &[("VENVFS_FOLD_AFTER", "0")]);
    let mut args = vec!["install", "-q", "--link-mode=symlink"];
    args.extend(packages);
    uv_pip(&s.venv, &cache, &args, &wheels);
    (s, cache, m)
}

#[test]
fn fold_turns_uv_links_into_layers_live() {
    let (s, cache, m) = uv_linked_venv(&["six", "idna"]);
    let pid = m.daemon_pid();
    let before = s.python_ok("import six, idna; print(six.__version__, idna.__version__)");
    let listed = run_ok(venvfs().arg("list").arg(&s.venv));
    assert!(listed.contains("references"), "{listed}");
    let cache_before = snapshot(&cache.join("archive-v0"));

    let out = run_ok(venvfs().arg("fold").arg(&s.venv));
    assert!(
        out.contains(" ~ six==") && out.contains(" ~ idna=="),
        "{out}"
    );
    assert!(out.contains("Folded "), "{out}");
    assert_eq!(m.daemon_pid(), pid, "taken live, by the same daemon");
    assert_eq!(
        s.python_ok("import six, idna; print(six.__version__, idna.__version__)"),
        before
    );
    assert_layers(&s.venv, &["six==", "idna=="]);
    // nothing left to do
    let again = run_ok(venvfs().arg("fold").arg(&s.venv));
    assert_eq!(again.trim(), "Nothing to fold");
    m.unmount();

    assert_eq!(links_into(&s.venv, &cache), Vec::<PathBuf>::new());
    let m = s.mount();
    assert_eq!(
        s.python_ok("import six, idna; print(six.__version__, idna.__version__)"),
        before
    );
    // uv sees the same distributions, with its own RECORD
    let shown = run_ok(
        uv().env("UV_CACHE_DIR", &cache)
            .args(["pip", "list", "--python"])
            .arg(s.venv.join("bin/python")),
    );
    assert!(shown.contains("six") && shown.contains("idna"), "{shown}");
    m.unmount();
    assert_eq!(snapshot(&cache.join("archive-v0")), cache_before);
}

/// uv uninstalls a folded distribution through the mount (whiteouts for its files, its
/// directories removed) and links the same version again (its directories made anew,
/// opaque over the layer): the fold replaces the layer and makes those directories plain,
/// so no link stays and the venv shows what it showed.
#[test]
fn uninstalled_then_linked_again_by_uv_folds_again() {
    let (s, cache, m) = uv_linked_venv(&["six", "idna"]);
    let wheels = shared_wheel("six-").parent().unwrap().to_owned();
    run_ok(venvfs().arg("fold").arg(&s.venv));
    let before = s.python_ok("import idna, os; print(idna.__version__, sorted(os.listdir(os.path.dirname(idna.__file__))))");
    let cache_before = snapshot(&cache.join("archive-v0"));

    uv_pip(&s.venv, &cache, &["uninstall", "-q", "idna"], &wheels);
    uv_pip(
        &s.venv,
        &cache,
        &["install", "-q", "--link-mode=symlink", "idna"],
        &wheels,
    );
    run_ok(venvfs().arg("fold").arg(&s.venv));
    let listed = run_ok(venvfs().arg("list").arg(&s.venv));
    let line = listed.lines().find(|l| l.contains("idna==")).unwrap();
    assert!(line.trim_end().ends_with("layer"), "{listed}");
    assert_eq!(
        s.python_ok("import idna, os; print(idna.__version__, sorted(os.listdir(os.path.dirname(idna.__file__))))"),
        before
    );
    m.unmount();

    assert_eq!(links_into(&s.venv, &cache), Vec::<PathBuf>::new());
    let manifest = std::fs::read_to_string(s.venv.join(".venvfs/manifest.toml")).unwrap();
    assert_eq!(manifest.matches("name = \"idna\"").count(), 1, "{manifest}");
    let m = s.mount();
    assert_eq!(
        s.python_ok("import idna, os; print(idna.__version__, sorted(os.listdir(os.path.dirname(idna.__file__))))"),
        before
    );
    m.unmount();
    assert_eq!(snapshot(&cache.join("archive-v0")), cache_before);
}

/// uv uninstalls a folded distribution through the mount and its cache entry is cleaned
/// away (`uv cache clean`): the next fold, of another package uv linked, still folds (the
/// uninstalled layer, which shows nothing and cannot be read, leaves the manifest), and so
/// does the next mount.
#[test]
fn a_layer_uninstalled_and_cleaned_from_the_cache_does_not_stop_the_fold() {
    let (s, cache, m) = uv_linked_venv(&["six", "idna"]);
    let wheels = shared_wheel("six-").parent().unwrap().to_owned();
    run_ok(venvfs().arg("fold").arg(&s.venv));
    uv_pip(&s.venv, &cache, &["uninstall", "-q", "six"], &wheels);
    // (the mount hides the manifest: `layer list` reads it)
    let layers = run_ok(venvfs().args(["layer", "list"]).arg(&s.venv));
    let six_entry = layers
        .lines()
        .find_map(|l| l.strip_prefix("six==")?.split_once('\t'))
        .map(|(_, path)| PathBuf::from(path))
        .expect("six's layer is an entry of uv's cache");
    assert!(six_entry.starts_with(&cache), "{layers}");
    std::fs::remove_dir_all(&six_entry).unwrap();
    uv_pip(
        &s.venv,
        &cache,
        &["install", "-q", "--link-mode=symlink", "click"],
        &wheels,
    );
    // (uv unpacked click into it: from here on, venvfs only reads it)
    let cache_before = snapshot(&cache.join("archive-v0"));
    let folded = run_ok(venvfs().arg("fold").arg(&s.venv));
    assert!(folded.contains(" ~ click=="), "{folded}");
    s.python_ok("import idna, click");
    assert!(
        !s.python("import six").status.success(),
        "six stays uninstalled"
    );
    m.unmount();
    assert_eq!(links_into(&s.venv, &cache), Vec::<PathBuf>::new());
    let m = s.mount();
    s.python_ok("import idna, click");
    assert_layers(&s.venv, &["idna==", "click=="]);
    m.unmount();
    assert_eq!(snapshot(&cache.join("archive-v0")), cache_before);
}

/// Links already in the venv when it is mounted (uv ran while it was not, or the daemon
/// that saw them did not fold) are folded by the new daemon once the mount is quiet.
#[test]
fn links_found_at_mount_are_folded_by_the_daemon() {
    let (s, cache, m) = uv_linked_venv(&["six"]);
    m.unmount();
    assert_ne!(links_into(&s.venv, &cache), Vec::<PathBuf>::new());
    let cache_before = snapshot(&cache.join("archive-v0"));
    let m = s.mount();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !run_ok(venvfs().arg("list").arg(&s.venv)).contains("layer") {
        assert!(std::time::Instant::now() < deadline, "not folded in 30 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_layers(&s.venv, &["six=="]);
    s.python_ok("import six");
    m.unmount();
    assert_eq!(links_into(&s.venv, &cache), Vec::<PathBuf>::new());
    assert_eq!(snapshot(&cache.join("archive-v0")), cache_before);
}

/// A directory of a linked package deleted before the fold (with its content) stays
/// deleted: the fold hides it whole, not file by file, which would leave it showing, empty.
#[test]
fn a_directory_deleted_before_the_fold_does_not_show_empty() {
    let (s, cache, m) = uv_linked_venv(&["urllib3"]);
    let cache_before = snapshot(&cache.join("archive-v0"));
    let contrib = s.venv.join("lib/python3.11/site-packages/urllib3/contrib");
    assert!(contrib.join("socks.py").exists());
    std::fs::remove_dir_all(&contrib).unwrap();
    let out = run_ok(venvfs().arg("fold").arg(&s.venv));
    assert!(out.contains(" ~ urllib3=="), "{out}");
    assert!(
        !contrib.exists(),
        "{:?}",
        std::fs::read_dir(&contrib).map(|d| d.count())
    );
    s.python_ok("import urllib3, urllib3.util");
    m.unmount();
    assert_eq!(links_into(&s.venv, &cache), Vec::<PathBuf>::new());
    let m = s.mount();
    assert!(!contrib.exists());
    s.python_ok("import urllib3, urllib3.util");
    m.unmount();
    assert_eq!(snapshot(&cache.join("archive-v0")), cache_before);
}

/// `venvfs install` folds the links uv left, once its own change is made.
#[test]
fn install_folds_the_links_uv_left() {
    let (s, cache, m) = uv_linked_venv(&["six"]);
    let out = run_ok(
        venvfs()
            .arg("install")
            .arg(&s.venv)
            .arg(shared_wheel("idna-")),
    );
    assert!(
        out.contains(" + idna==") && out.contains(" ~ six=="),
        "{out}"
    );
    s.python_ok("import six, idna");
    m.unmount();
    assert_eq!(links_into(&s.venv, &cache), Vec::<PathBuf>::new());
}

/// `venvfs sync` of pins that name a package uv linked: the package becomes a layer (here of
/// the wheel file, not of uv's cache entry), and its links go, so none is left to shadow it.
#[test]
fn sync_makes_a_linked_pin_a_layer_and_its_links_go() {
    let (s, cache, m) = uv_linked_venv(&["six"]);
    let cache_before = snapshot(&cache.join("archive-v0"));
    let wheels = shared_wheel("six-").parent().unwrap().to_owned();
    let pins = s.path("requirements.txt");
    std::fs::write(&pins, "six==1.17.0\nidna==3.20\n").unwrap();
    let out = run_ok(
        venvfs()
            .arg("sync")
            .arg(&s.venv)
            .arg(&pins)
            .arg("--find-links")
            .arg(&wheels)
            .arg("--no-cache"),
    );
    assert!(out.contains("idna==3.20"), "{out}");
    assert_layers(&s.venv, &["six==1.17.0", "idna==3.20"]);
    assert_eq!(
        s.python_ok("import six, idna; print(six.__version__, idna.__version__)"),
        "1.17.0 3.20"
    );
    m.unmount();
    assert_eq!(links_into(&s.venv, &cache), Vec::<PathBuf>::new());
    assert_eq!(snapshot(&cache.join("archive-v0")), cache_before);
}

/// A program that mapped a file uv linked (Python maps a `.so` it imports) keeps reading its
/// bytes when the fold takes the link away live, even once the kernel must read the mapped
/// pages again (their page cache dropped).
#[test]
fn a_mapped_link_keeps_its_bytes_when_folded() {
    use std::io::{BufRead, BufReader, Write};
    let (s, cache, m) = uv_linked_venv(&["six"]);
    let six = s.venv.join("lib/python3.11/site-packages/six.py");
    assert!(std::fs::symlink_metadata(&six).unwrap().is_symlink() || m.daemon_pid() > 0);
    let script = r#"
import ctypes, hashlib, mmap, os, sys
f = open(sys.argv[1], "rb")
m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
print(hashlib.sha256(m[:]).hexdigest(), flush=True)
sys.stdin.readline()
m.madvise(mmap.MADV_DONTNEED)
print(hashlib.sha256(m[:]).hexdigest(), flush=True)
# its attributes, asked of the daemon (AT_EMPTY_PATH | AT_STATX_FORCE_SYNC: not the
# kernel's cached ones): the size of the file it showed
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(256)
if libc.statx(f.fileno(), b"", 0x1000 | 0x2000, 0x7FF, buf) != 0:
    print("statx:", os.strerror(ctypes.get_errno()), flush=True)
else:
    print("size", int.from_bytes(buf.raw[40:48], "little"), flush=True)
"#;
    let mut py = std::process::Command::new(s.venv.join("bin/python"))
        .args(["-c", script])
        .arg(&six)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(py.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let folded = run_ok(venvfs().arg("fold").arg(&s.venv));
    assert!(folded.contains(" ~ six=="), "{folded}");
    // the mapped pages must be read again, from the daemon
    std::fs::write("/proc/sys/vm/drop_caches", "1").unwrap();
    writeln!(py.stdin.take().unwrap()).unwrap();
    let mut second = String::new();
    out.read_line(&mut second).unwrap();
    let mut size = String::new();
    out.read_line(&mut size).unwrap();
    let status = py.wait().unwrap();
    assert!(
        status.success(),
        "the mapped file could not be read: {status:?}"
    );
    assert_eq!(second, first);
    let shown = std::fs::metadata(&six).unwrap().len();
    assert_eq!(
        size.trim(),
        format!("size {shown}"),
        "a held, folded link's attributes"
    );
    m.unmount();
    assert_eq!(links_into(&s.venv, &cache), Vec::<PathBuf>::new());
}

/// uv installs version A, then B, then A again (`uv add six`, `uv add 'six<1.17'`, `uv add
/// 'six>=1.17'`): A's `.dist-info` directory is made again where a whiteout of its name
/// stayed (A's layer was dropped meanwhile, so nothing needed the whiteout replaced). The
/// fold takes such a directory as opaque, makes it plain and drops the whiteout, so the
/// links become a layer again.
#[test]
fn a_version_installed_again_after_another_folds_again() {
    let s = Scratch::new();
    let house = s.path("house");
    std::fs::create_dir_all(&house).unwrap();
    demo_wheel(&house, "demo_pkg", "1.0");
    demo_wheel(&house, "demo_pkg", "2.0");
    let cache = s.path("uv-cache");
    let m = Mount::with_env(&s.venv, &[("VENVFS_FOLD_AFTER", "0")]);
    let cache_before = || snapshot(&cache.join("archive-v0"));
    for version in ["1.0", "2.0", "1.0"] {
        let pin = format!("demo_pkg=={version}");
        uv_pip(
            &s.venv,
            &cache,
            &["install", "-q", "--link-mode=symlink", &pin],
            &house,
        );
        let out = run_ok(venvfs().arg("fold").arg(&s.venv));
        assert!(out.contains("Folded "), "{version}: {out}");
        let listed = run_ok(venvfs().arg("list").arg(&s.venv));
        let line = listed
            .lines()
            .find(|l| l.contains("demo-pkg=="))
            .unwrap_or_else(|| panic!("{version}: {listed}"));
        assert!(
            line.contains(&format!("demo-pkg=={version}")) && line.trim_end().ends_with("layer"),
            "{listed}"
        );
        assert_eq!(s.python_ok("import demo_pkg; print(demo_pkg.VALUE)"), "42");
    }
    let before = cache_before();
    m.unmount();
    assert_eq!(links_into(&s.venv, &cache), Vec::<PathBuf>::new());
    let m = s.mount();
    assert_eq!(s.python_ok("import demo_pkg; print(demo_pkg.VALUE)"), "42");
    let shown = run_ok(venvfs().arg("list").arg(&s.venv));
    assert!(shown.contains("demo-pkg==1.0"), "{shown}");
    m.unmount();
    assert_eq!(cache_before(), before, "uv's cache changed");
}

/// A distribution whose links do not all show what its layer would (a link made again to
/// another file of the entry) is not folded: a note names it and why, the command says
/// nothing was folded (not "Nothing to fold"), and the links keep working.
#[test]
fn links_that_cannot_be_folded_are_named_and_stay() {
    let (s, cache, m) = uv_linked_venv(&["six"]);
    let site = s.venv.join("lib/python3.11/site-packages");
    // (a reference shows as a regular file through the mount: its target is in the cache)
    let metadata = std::fs::read_dir(cache.join("archive-v0"))
        .unwrap()
        .map(|e| e.unwrap().path().join("six-1.17.0.dist-info/METADATA"))
        .find(|p| p.is_file())
        .expect("six in uv's cache");
    let cache_before = snapshot(&cache.join("archive-v0"));
    std::fs::remove_file(site.join("six.py")).unwrap();
    std::os::unix::fs::symlink(&metadata, site.join("six.py")).unwrap();
    let out = run(venvfs().arg("fold").arg(&s.venv));
    assert!(out.status.success(), "{out:?}");
    let (said, notes) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        notes.contains("six-1.17.0.dist-info: not folded: ") && notes.contains("six.py links to"),
        "{notes}"
    );
    assert!(
        said.starts_with("Nothing folded: the links of 1 distribution cannot be"),
        "{said}"
    );
    assert_eq!(
        std::fs::read(site.join("six.py")).unwrap(),
        std::fs::read(&metadata).unwrap()
    );
    m.unmount();
    assert!(!links_into(&s.venv, &cache).is_empty(), "the links stay");
    assert_eq!(snapshot(&cache.join("archive-v0")), cache_before);
}
