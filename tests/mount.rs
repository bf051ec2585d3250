//! Real FUSE mounts of real venvs, read and written by the real Python.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

const SITE: &str = "lib/python3.11/site-packages";

fn site(s: &Scratch, rel: &str) -> std::path::PathBuf {
    s.venv.join(SITE).join(rel)
}

#[test]
fn numpy_imports_from_a_wheel_file_and_from_an_unpacked_directory() {
    for unpacked in [false, true] {
        let s = Scratch::new();
        let whl = shared_wheel("numpy-");
        let layer = if unpacked {
            let dir = s.path("cache/numpy");
            unpack(&whl, &dir);
            dir
        } else {
            whl.clone()
        };
        let before = snapshot(&layer);
        let m = s.mount_with(&[&layer]);
        let out = s.python_ok("import numpy as np; a = np.arange(12).reshape(3, 4); print(int((a @ a.T).trace()), np.__version__)");
        assert_eq!(out, "506 2.4.6", "unpacked={unpacked}");
        m.unmount();
        assert_eq!(
            before,
            snapshot(&layer),
            "the layer changed (unpacked={unpacked})"
        );
    }
}

impl ScratchExt for Scratch {
    fn mount_with(&self, layers: &[&Path]) -> Mount {
        self.add_layers(layers);
        self.mount()
    }
}

trait ScratchExt {
    fn mount_with(&self, layers: &[&Path]) -> Mount;
}

#[test]
fn stored_and_deflated_members_read_back_exactly() {
    let s = Scratch::new();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let text = b"print('hello')\n".repeat(1000);
    let whl = build_wheel(
        s.dir.path(),
        "mixed",
        "1.0",
        &[
            ("mixed/__init__.py", b"X = 1\n", true),
            ("mixed/stored.bin", &big, true),
            ("mixed/deflated.bin", &big, false),
            ("mixed/text.py", &text, false),
            ("mixed/empty.txt", b"", true),
        ],
    );
    let before = snapshot(&whl);
    let m = s.mount_with(&[&whl]);
    assert_eq!(fs::read(site(&s, "mixed/stored.bin")).unwrap(), big);
    assert_eq!(fs::read(site(&s, "mixed/deflated.bin")).unwrap(), big);
    assert_eq!(fs::read(site(&s, "mixed/text.py")).unwrap(), text);
    assert_eq!(fs::read(site(&s, "mixed/empty.txt")).unwrap(), b"");
    // a read in the middle of a member
    let mut f = fs::File::open(site(&s, "mixed/stored.bin")).unwrap();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(1_234_567)).unwrap();
    let mut buf = [0u8; 100];
    f.read_exact(&mut buf).unwrap();
    assert_eq!(&buf[..], &big[1_234_567..1_234_667]);
    drop(f);
    assert_eq!(s.python_ok("import mixed; print(mixed.X)"), "1");
    m.unmount();
    assert_eq!(before, snapshot(&whl));
}

#[test]
fn namespace_directories_are_the_union_of_their_distributions() {
    let s = Scratch::new();
    let apple = shared_wheel("sphinxcontrib_applehelp-");
    let jsmath = s.path("cache/jsmath");
    unpack(&shared_wheel("sphinxcontrib_jsmath-"), &jsmath);
    let _m = s.mount_with(&[&apple, &jsmath]);
    let mut names: Vec<String> = fs::read_dir(site(&s, "sphinxcontrib"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(
        names.contains(&"applehelp".to_owned()) && names.contains(&"jsmath".to_owned()),
        "{names:?}"
    );
    // (applehelp itself needs sphinx, which is not installed: find both without importing)
    let found = s.python_ok(
        "import importlib.util as u; print(all(u.find_spec(f'sphinxcontrib.{m}') for m in ('applehelp', 'jsmath')))",
    );
    assert_eq!(found, "True");
}

/// Lower file, lower directory, upper file: copy-up, whiteouts, opaque dirs, renames, and
/// all of it again after a remount. The layers must come out byte-identical.
#[test]
fn writes_go_to_the_upper_layer_and_survive_remount() {
    let s = Scratch::new();
    let requests = s.path("cache/requests");
    unpack(&shared_wheel("requests-"), &requests);
    let click = shared_wheel("click-");
    let before = (snapshot(&requests), snapshot(&click));
    let m = s.mount_with(&[&requests, &click]);

    // copy-up on write keeps mode and the untouched content
    let api = site(&s, "requests/api.py");
    let original = fs::read_to_string(&api).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(&api)
        .unwrap()
        .write_all(b"\n# edited\n")
        .unwrap();
    assert_eq!(
        fs::read_to_string(&api).unwrap(),
        format!("{original}\n# edited\n")
    );
    // chmod copies up too
    fs::set_permissions(site(&s, "click/core.py"), fs::Permissions::from_mode(0o600)).unwrap();
    // delete a lower file and a lower directory tree; remake the directory (opaque)
    fs::remove_file(site(&s, "requests/help.py")).unwrap();
    fs::remove_dir_all(site(&s, "click")).unwrap();
    fs::create_dir(site(&s, "click")).unwrap();
    fs::write(site(&s, "click/new.py"), "NEW = True\n").unwrap();
    // rename a lower directory, as pip does when it stashes a package during uninstall
    fs::rename(site(&s, "requests"), site(&s, "~equests")).unwrap();
    assert!(!site(&s, "requests").exists());
    // rename a lower file
    fs::rename(
        site(&s, "~equests/models.py"),
        site(&s, "~equests/models_moved.py"),
    )
    .unwrap();
    let check = |s: &Scratch| {
        assert!(!site(s, "requests").exists());
        assert!(fs::read_to_string(site(s, "~equests/api.py"))
            .unwrap()
            .ends_with("# edited\n"));
        assert!(!site(s, "~equests/help.py").exists());
        assert!(!site(s, "~equests/models.py").exists());
        assert!(site(s, "~equests/models_moved.py").exists());
        assert!(site(s, "~equests/sessions.py").exists());
        let mut click: Vec<_> = fs::read_dir(site(s, "click"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        click.sort();
        assert_eq!(
            click,
            ["new.py"],
            "a remade directory shows none of the lower one"
        );
    };
    check(&s);
    m.unmount();
    let _m = s.mount();
    check(&s);
    // back again
    fs::rename(site(&s, "~equests"), site(&s, "requests")).unwrap();
    assert!(site(&s, "requests/sessions.py").exists());
    drop(_m);
    assert_eq!(
        before,
        (snapshot(&requests), snapshot(&click)),
        "a layer changed"
    );
}

#[test]
fn python_writes_bytecode_of_layer_modules_to_the_shared_store_or_else_the_upper_layer() {
    let s = Scratch::new();
    let six = shared_wheel("six-");
    s.add_layers(&[&six]);
    let store = s.path("cache");
    let import = || {
        let out = run(Command::new(s.venv.join("bin/python"))
            .args(["-c", "import six, sys; print(six.__cached__)"])
            .env_remove("PYTHONDONTWRITEBYTECODE"));
        assert!(out.status.success());
        let cached = String::from_utf8(out.stdout).unwrap();
        assert!(Path::new(cached.trim()).exists(), "{cached}");
    };
    let pycache = s.venv.join(SITE).join("__pycache__");
    // shared: in the store, not in the venv
    run_ok(
        venvfs()
            .env("VENVFS_CACHE_DIR", &store)
            .arg("mount")
            .arg(&s.venv),
    );
    let m = Mount::adopt(&s.venv);
    import();
    m.unmount();
    assert!(
        !pycache.exists(),
        "the .pyc went to the venv's own directory"
    );
    let stored = entries_below(&store.join("bytecode"));
    assert!(
        stored
            .iter()
            .any(|(p, _)| p.ends_with("__pycache__/six.cpython-311.pyc")),
        "{stored:?}"
    );
    // turned off: the venv's own directory, as without venvfs; the wheel untouched
    run_ok(
        venvfs()
            .env("VENVFS_CACHE_DIR", &store)
            .env("VENVFS_SHARED_BYTECODE", "0")
            .arg("mount")
            .arg(&s.venv),
    );
    let m = Mount::adopt(&s.venv);
    import();
    m.unmount();
    assert!(pycache.read_dir().unwrap().count() >= 1);
    assert!(!s.venv.join(SITE).join("six.py").exists());
}

#[test]
fn concurrent_readers_and_writers() {
    let s = Scratch::new();
    let requests = s.path("cache/requests");
    unpack(&shared_wheel("requests-"), &requests);
    let before = snapshot(&requests);
    let _m = s.mount_with(&[&requests]);
    let root = site(&s, "requests");
    let files: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    let expected: Vec<Vec<u8>> = files
        .iter()
        .map(|p| fs::read(requests.join("requests").join(p.file_name().unwrap())).unwrap())
        .collect();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (files, expected) = (&files, &expected);
            scope.spawn(move || {
                for round in 0..50 {
                    let i = (t * 7 + round) % files.len();
                    assert_eq!(&fs::read(&files[i]).unwrap(), &expected[i]);
                }
            });
        }
        for t in 0..3 {
            let root = &root;
            scope.spawn(move || {
                for round in 0..50 {
                    let p = root.join(format!("w{t}_{round}.txt"));
                    fs::write(&p, format!("{t}:{round}")).unwrap();
                    assert_eq!(fs::read_to_string(&p).unwrap(), format!("{t}:{round}"));
                    if round % 2 == 0 {
                        fs::rename(&p, root.join(format!("r{t}_{round}.txt"))).unwrap();
                    } else {
                        fs::remove_file(&p).unwrap();
                    }
                }
            });
        }
    });
    let renamed = fs::read_dir(&root)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('r')
        })
        .count();
    assert_eq!(renamed, 3 * 25);
    drop(_m);
    assert_eq!(before, snapshot(&requests));
}

#[test]
fn killed_daemon_leaves_a_consistent_venv_that_mounts_again() {
    let s = Scratch::new();
    let requests = s.path("cache/requests");
    unpack(&shared_wheel("requests-"), &requests);
    let before = snapshot(&requests);
    let m = s.mount_with(&[&requests]);
    let pid = m.daemon_pid();
    // a writer busy renaming over lower files and creating new ones
    let root = site(&s, "requests");
    let writer = {
        let root = root.clone();
        std::thread::spawn(move || {
            for i in 0.. {
                let tmp = root.join(format!("tmp{i}"));
                if fs::write(&tmp, format!("version {i}\n")).is_err() {
                    return i;
                }
                if fs::rename(&tmp, root.join("api.py")).is_err() {
                    return i;
                }
            }
            unreachable!()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    run_ok(Command::new("kill").args(["-9", &pid.to_string()]));
    let rounds = writer.join().unwrap();
    assert!(rounds > 0);
    m.forget();
    // the next mount recovers the dead one
    let _m = s.mount();
    let api = fs::read_to_string(site(&s, "requests/api.py")).unwrap();
    assert!(api.starts_with("version "), "api.py is whole: {api:?}");
    assert!(site(&s, "requests/sessions.py").exists());
    drop(_m);
    assert_eq!(before, snapshot(&requests));
}

#[test]
fn missing_layer_makes_mount_refuse_and_name_it() {
    let s = Scratch::new();
    let six = s.path("cache/six");
    unpack(&shared_wheel("six-"), &six);
    s.add_layers(&[&six]);
    fs::remove_dir_all(&six).unwrap();
    let out = run(venvfs().arg("mount").arg(&s.venv));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&six.display().to_string()), "{err}");
    assert!(!venvfs_mounted(&s.venv));
}

#[test]
fn mounting_a_venv_that_is_not_there_says_how_to_make_one() {
    let s = Scratch::new();
    let missing = s.path("no-venv-here");
    let out = run(venvfs().arg("mount").arg(&missing));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("there is no venv at") && err.contains("uv venv"),
        "{err}"
    );
    assert!(!missing.exists(), "nothing is made");
}

fn venvfs_mounted(venv: &Path) -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&format!(" {} ", venv.display()))
}

#[test]
fn a_wheel_with_an_escaping_path_is_refused() {
    let s = Scratch::new();
    let whl = build_wheel(
        s.dir.path(),
        "evil",
        "1.0",
        &[("../../escape.py", b"x", false)],
    );
    let out = run(venvfs().args(["layer", "add"]).arg(&s.venv).arg(&whl));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("escape.py") && err.contains(&whl.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_corrupt_member_gives_eio_for_that_file_only() {
    let s = Scratch::new();
    let whl = build_wheel(
        s.dir.path(),
        "broken",
        "1.0",
        &[
            ("broken/__init__.py", b"OK = 1\n", false),
            ("broken/bad.txt", &b"corrupt me ".repeat(500), false),
        ],
    );
    // flip a byte inside bad.txt's compressed data
    let mut bytes = fs::read(&whl).unwrap();
    let name = b"broken/bad.txt";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 5;
    bytes[at] ^= 0xff;
    fs::write(&whl, &bytes).unwrap();
    let _m = s.mount_with(&[&whl]);
    let err = fs::read(site(&s, "broken/bad.txt")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(s.python_ok("import broken; print(broken.OK)"), "1");
}

#[test]
fn a_layer_that_disappears_while_mounted_gives_eio() {
    let s = Scratch::new();
    let six = s.path("cache/six");
    unpack(&shared_wheel("six-"), &six);
    let _m = s.mount_with(&[&six]);
    fs::remove_dir_all(&six).unwrap();
    let err = fs::read(site(&s, "six.py")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(s.venv.join("pyvenv.cfg").exists());
}

/// The rest of the POSIX surface, on lower and upper entries: symlinks, hard links, xattrs,
/// truncate, utimens, fifos, rename over an existing file, statfs.
#[test]
fn links_xattrs_times_and_the_rest_work_on_lower_and_upper_entries() {
    use std::os::unix::fs::MetadataExt;
    let s = Scratch::new();
    let six = shared_wheel("six-");
    let before = snapshot(&six);
    let _m = s.mount_with(&[&six]);
    let lower = site(&s, "six.py");
    let size = fs::metadata(&lower).unwrap().len();
    // symlink to a lower file, read through it
    std::os::unix::fs::symlink("six.py", site(&s, "six_link.py")).unwrap();
    assert_eq!(
        fs::read_link(site(&s, "six_link.py")).unwrap(),
        Path::new("six.py")
    );
    assert_eq!(fs::metadata(site(&s, "six_link.py")).unwrap().len(), size);
    // hard link of a lower file copies it up, then both names are one file
    fs::hard_link(&lower, site(&s, "six_hard.py")).unwrap();
    assert_eq!(fs::metadata(&lower).unwrap().nlink(), 2);
    fs::OpenOptions::new()
        .append(true)
        .open(site(&s, "six_hard.py"))
        .unwrap()
        .write_all(b"#x\n")
        .unwrap();
    assert!(fs::read_to_string(&lower).unwrap().ends_with("#x\n"));
    // xattrs: set on a lower file (copy-up), read back, list, remove
    let dist = site(&s, "six-1.17.0.dist-info/METADATA");
    let xattrs = format!(
        "import os\np = {:?}\nos.setxattr(p, 'user.venvfs', b'yes')\n\
         print(os.getxattr(p, 'user.venvfs').decode(), 'user.venvfs' in os.listxattr(p))\n\
         os.removexattr(p, 'user.venvfs')\nprint('user.venvfs' in os.listxattr(p))",
        dist.display().to_string()
    );
    let got = run_ok(Command::new("python3").args(["-c", &xattrs]));
    assert_eq!(got, "yes True\nFalse\n");
    // truncate and utimens on a lower file
    let wheel_file = site(&s, "six-1.17.0.dist-info/WHEEL");
    fs::OpenOptions::new()
        .write(true)
        .open(&wheel_file)
        .unwrap()
        .set_len(4)
        .unwrap();
    assert_eq!(fs::read(&wheel_file).unwrap().len(), 4);
    let record = site(&s, "six-1.17.0.dist-info/RECORD");
    run_ok(
        Command::new("touch")
            .args(["-d", "2001-02-03 04:05:06 UTC"])
            .arg(&record),
    );
    assert_eq!(fs::metadata(&record).unwrap().mtime(), 981173106);
    // a fifo
    run_ok(Command::new("mkfifo").arg(site(&s, "pipe")));
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &fs::metadata(site(&s, "pipe")).unwrap().file_type()
    ));
    // rename a new file over a lower one
    fs::write(site(&s, "new.txt"), "replacement").unwrap();
    fs::rename(
        site(&s, "new.txt"),
        site(&s, "six-1.17.0.dist-info/top_level.txt"),
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(site(&s, "six-1.17.0.dist-info/top_level.txt")).unwrap(),
        "replacement"
    );
    // statfs answers
    run_ok(Command::new("df").arg(&s.venv));
    drop(_m);
    assert_eq!(before, snapshot(&six));
}

/// The kernel applies the caller's umask; the daemon must not apply its own on top.
#[test]
fn new_entries_get_exactly_the_callers_mode() {
    let s = Scratch::new();
    let six = shared_wheel("six-");
    let _m = s.mount_with(&[&six]);
    let out = s.python_ok(&format!(
        "import os, stat\nos.umask(0)\nd = '{0}/d'\nos.mkdir(d, 0o777)\nfd = os.open('{0}/f', os.O_CREAT | os.O_WRONLY, 0o666)\nos.close(fd)\nprint(oct(stat.S_IMODE(os.stat(d).st_mode)), oct(stat.S_IMODE(os.stat('{0}/f').st_mode)))",
        site(&s, "").display()
    ));
    assert_eq!(out, "0o777 0o666");
}

#[test]
fn a_corrupt_manifest_makes_mount_refuse_and_name_it() {
    let s = Scratch::new();
    s.add_layers(&[&shared_wheel("six-")]);
    let manifest = s.venv.join(".venvfs/manifest.toml");
    let mut text = fs::read_to_string(&manifest).unwrap();
    text.push_str("garbage [[\n");
    fs::write(&manifest, &text).unwrap();
    let activate = fs::read_to_string(s.venv.join("bin/activate")).unwrap();
    assert!(!activate.contains("UV_LINK_MODE"), "the test's premise");
    let out = run(venvfs().arg("mount").arg(&s.venv));
    assert!(!out.status.success());
    // (a mount patches the activation scripts before it starts serving: not a refused one)
    assert_eq!(
        fs::read_to_string(s.venv.join("bin/activate")).unwrap(),
        activate,
        "bin/activate is left as it was"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&manifest.display().to_string()) && err.contains("line"),
        "{err}"
    );
    assert!(!venvfs_mounted(&s.venv));
    assert_eq!(
        fs::read_to_string(&manifest).unwrap(),
        text,
        "the manifest is left as it was"
    );
}

/// Unmounted, the venv's Python says in one line what to run; mounted, the guard is invisible.
#[test]
fn an_unmounted_venvfs_venv_says_how_to_mount_it() {
    let s = Scratch::new();
    s.add_layers(&[&shared_wheel("six-")]);
    let out = s.python("import six");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("venvfs mount")
            && err.contains(&s.venv.canonicalize().unwrap().display().to_string()),
        "{err}"
    );
    let m = s.mount();
    assert_eq!(s.python_ok("import six, os; print(six.__version__, '_venvfs_unmounted.pth' in os.listdir(os.path.dirname(six.__file__)))"), "1.17.0 False");
    m.unmount();
    assert_eq!(s.python("pass").status.code(), Some(1));
}

/// A full upper disk: writes fail with ENOSPC, a copy-up that does not fit leaves the lower
/// file as it was (no half copy), earlier writes are intact, and reads go on.
#[test]
fn a_full_upper_disk_gives_enospc_and_loses_nothing() {
    struct Tmpfs(std::path::PathBuf);
    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).output();
        }
    }
    let s = Scratch::new();
    let small = s.path("small");
    fs::create_dir(&small).unwrap();
    run_ok(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
            .arg(&small),
    );
    let _tmpfs = Tmpfs(small.clone());
    let venv = small.join("venv");
    run_ok(
        Command::new("python3")
            .args(["-m", "venv", "--without-pip"])
            .arg(&venv),
    );
    let numpy = shared_wheel("numpy-");
    let before = snapshot(&numpy);
    run_ok(venvfs().args(["layer", "add"]).arg(&venv).arg(&numpy));
    let m = Mount::new(&venv);
    let site = venv.join(SITE);
    fs::write(site.join("early.txt"), "written before the disk filled").unwrap();
    let mut filled = None;
    for i in 0..20 {
        if let Err(e) = fs::write(site.join(format!("fill{i}")), vec![7u8; 1 << 20]) {
            filled = Some(e);
            break;
        }
    }
    let err = filled.expect("a 6 MiB disk fills up");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    // a copy-up of a 30 MB lower file cannot fit
    let so = fs::read_dir(site.join("numpy/_core"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("_multiarray_umath"))
        .unwrap();
    let original = fs::read(&so).unwrap();
    // (the copy-up happens at the first write: opens of files never reach the daemon)
    let mut f = fs::OpenOptions::new().append(true).open(&so).unwrap();
    let err = f.write_all(b"more").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    drop(f);
    assert_eq!(
        fs::read(&so).unwrap(),
        original,
        "the lower file shows unchanged"
    );
    assert_eq!(
        fs::read_to_string(site.join("early.txt")).unwrap(),
        "written before the disk filled"
    );
    // Python imports from the layers on the full disk (its bytecode writes fail quietly)
    let out = run(Command::new(venv.join("bin/python"))
        .args(["-c", "import numpy; print(int(numpy.arange(4).sum()))"])
        .env_remove("PYTHONDONTWRITEBYTECODE"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "6",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // freeing space makes writes work again
    for i in 0..20 {
        let _ = fs::remove_file(site.join(format!("fill{i}")));
    }
    fs::write(site.join("after.txt"), "ok").unwrap();
    drop(original);
    m.unmount();
    assert!(
        venv.join(".venvfs/work")
            .read_dir()
            .unwrap()
            .next()
            .is_none(),
        "no half copy left"
    );
    assert_eq!(before, snapshot(&numpy));
}

/// A large shared object's pages are pushed to the kernel's page cache as soon as it is
/// looked up (by a thread of the daemon), so that the `dlopen` of a first import finds them
/// there instead of faulting each readahead window in through the daemon; what is pushed
/// is its bytes, and a write after it is read back. Other files are not pushed. (Whether
/// the pages are still resident when read is the kernel's business: this machine's
/// proactive reclaim may already have taken pages nobody touched, so the test counts the
/// pushes rather than the resident pages.)
#[test]
fn a_large_shared_object_is_pushed_to_the_page_cache_when_looked_up() {
    for unpacked in [false, true] {
        let s = Scratch::new();
        let big: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        let so = "fast/_ext.cpython-311-x86_64-linux-gnu.so";
        let whl = build_wheel(
            s.dir.path(),
            "fast",
            "1.0",
            &[
                ("fast/__init__.py", b"", true),
                (so, &big, false),
                ("fast/data.bin", &big, false),
            ],
        );
        let layer = if unpacked {
            let dir = s.path("cache/fast");
            unpack(&whl, &dir);
            dir
        } else {
            whl
        };
        let before = snapshot(&layer);
        let m = s.mount_with(&[&layer]);
        let pushes = || served(&mut venvfs(), &s.venv, "notify_store");
        let (so, data) = (site(&s, so), site(&s, "fast/data.bin"));
        fs::metadata(&data).unwrap();
        fs::metadata(&so).unwrap();
        // 3 chunks of at most 1 MiB
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while pushes() < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        fs::metadata(&so).unwrap();
        assert_eq!(pushes(), 3, "pushes of the .so alone (unpacked={unpacked})");
        assert_eq!(fs::read(&so).unwrap(), big, "unpacked={unpacked}");
        assert_eq!(fs::read(&data).unwrap(), big);
        // a write through the mount (a copy-up) reads back, in the page cache too
        let mut f = fs::OpenOptions::new().write(true).open(&so).unwrap();
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(2_500_000)).unwrap();
        f.write_all(b"edited").unwrap();
        drop(f);
        let mut want = big.clone();
        want[2_500_000..2_500_006].copy_from_slice(b"edited");
        assert_eq!(fs::read(&so).unwrap(), want, "unpacked={unpacked}");
        m.unmount();
        assert_eq!(before, snapshot(&layer), "unpacked={unpacked}");
    }
}
