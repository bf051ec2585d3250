//! The overlay called directly, without a kernel mount: fast checks of overlay semantics
//! (the real-mount tests in tests/mount.rs cover the same ground through FUSE).

use std::ffi::OsStr;
use std::path::Path;

use venvfs::manifest::{Layer, Manifest, Mapping};
use venvfs::overlay::{Overlay, OverlayConfig};
use venvfs_api::{Access, Caller, Error, FileSystem, Ino, Lookup, OpenRequest, RenameFlags, ROOT};

fn layer(source: &Path) -> Layer {
    Layer {
        source: source.to_owned(),
        name: String::new(),
        version: String::new(),
        map: vec![Mapping {
            from: String::new(),
            to: Some("lib".into()),
            skip: false,
        }],
        installed: false,
    }
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

struct Fixture {
    _tmp: tempfile::TempDir,
    venv: std::path::PathBuf,
    manifest: Manifest,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    write(&a.join("ns/one.py"), "one");
    write(&a.join("pkg/mod.py"), "A");
    write(&a.join("pkg/sub/deep.py"), "deep");
    write(&b.join("ns/two.py"), "two");
    write(&b.join("pkg/mod.py"), "B (hidden by a)");
    write(&b.join("pkg/only_b.py"), "only b");
    let venv = tmp.path().join("venv");
    std::fs::create_dir_all(venv.join("lib")).unwrap();
    write(&venv.join("pyvenv.cfg"), "version = 3.11.7\n");
    let manifest = Manifest {
        version: 1,
        generated: None,
        layers: vec![layer(&a), layer(&b)],
    };
    Fixture {
        _tmp: tmp,
        venv,
        manifest,
    }
}

fn open(f: &Fixture) -> Overlay {
    Overlay::new(&f.venv, &f.manifest, OverlayConfig::default()).unwrap()
}

fn resolve(fs: &Overlay, path: &str) -> Option<Ino> {
    let mut ino = ROOT;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        match fs.lookup(ino, OsStr::new(part)).unwrap() {
            Lookup::Found(e) => ino = e.attr.ino,
            Lookup::Missing { .. } => return None,
        }
    }
    Some(ino)
}

fn read(fs: &Overlay, path: &str) -> String {
    let ino = resolve(fs, path).unwrap_or_else(|| panic!("{path} missing"));
    let h = fs.open(ino, &OpenRequest::READ).unwrap();
    let data = fs.read(ino, Some(h.fh), 0, 1 << 20).unwrap();
    fs.release(ino, h.fh);
    String::from_utf8(data).unwrap()
}

/// Every entry of a directory but "." and "..", read piece by piece as the kernel does.
fn list(fs: &Overlay, ino: u64) -> Vec<venvfs_api::DirEntry> {
    let fh = fs.opendir(ino).unwrap().fh;
    let mut all = Vec::new();
    let mut offset = 2; // after "." and ".."
    loop {
        let piece = fs.readdir(ino, offset).unwrap();
        let Some(last) = piece.last() else { break };
        offset = last.offset;
        all.extend(piece);
    }
    fs.releasedir(ino, fh);
    all
}

fn names(fs: &Overlay, path: &str) -> Vec<String> {
    let mut names: Vec<String> = list(fs, resolve(fs, path).unwrap())
        .into_iter()
        .map(|e| e.name.into_string().unwrap())
        .collect();
    names.sort();
    names
}

const C: Caller = Caller {
    uid: 0,
    gid: 0,
    pid: 0,
};

#[test]
fn union_and_precedence() {
    let f = fixture();
    let fs = open(&f);
    assert_eq!(names(&fs, "lib/ns"), ["one.py", "two.py"]);
    assert_eq!(read(&fs, "lib/pkg/mod.py"), "A");
    assert_eq!(read(&fs, "lib/pkg/only_b.py"), "only b");
    assert_eq!(
        names(&fs, ""),
        ["lib", "pyvenv.cfg"],
        "the .venvfs state dir is hidden"
    );
}

#[test]
fn write_copies_up_and_survives_reopen() {
    let f = fixture();
    {
        let fs = open(&f);
        let ino = resolve(&fs, "lib/pkg/mod.py").unwrap();
        let req = OpenRequest {
            access: Access::Write,
            truncate: true,
            ..OpenRequest::READ
        };
        let h = fs.open(ino, &req).unwrap();
        fs.write(ino, Some(h.fh), 0, b"edited").unwrap();
        fs.release(ino, h.fh);
        assert_eq!(read(&fs, "lib/pkg/mod.py"), "edited");
    }
    assert_eq!(
        std::fs::read_to_string(f.venv.join("lib/pkg/mod.py")).unwrap(),
        "edited"
    );
    let fs = open(&f);
    assert_eq!(read(&fs, "lib/pkg/mod.py"), "edited");
    assert_eq!(read(&fs, "lib/pkg/sub/deep.py"), "deep");
}

#[test]
fn whiteouts_and_opaque_dirs_survive_reopen() {
    let f = fixture();
    {
        let fs = open(&f);
        let pkg = resolve(&fs, "lib/pkg").unwrap();
        fs.unlink(pkg, OsStr::new("only_b.py")).unwrap();
        let sub = resolve(&fs, "lib/pkg/sub").unwrap();
        fs.unlink(sub, OsStr::new("deep.py")).unwrap();
        fs.rmdir(pkg, OsStr::new("sub")).unwrap();
        fs.mkdir(&C, pkg, OsStr::new("sub"), 0o755).unwrap();
        assert_eq!(
            names(&fs, "lib/pkg/sub"),
            Vec::<String>::new(),
            "a remade dir is opaque"
        );
    }
    let fs = open(&f);
    assert_eq!(names(&fs, "lib/pkg"), ["mod.py", "sub"]);
    assert_eq!(names(&fs, "lib/pkg/sub"), Vec::<String>::new());
}

#[test]
fn rename_lower_directory_keeps_content_across_reopen() {
    let f = fixture();
    {
        let fs = open(&f);
        let lib = resolve(&fs, "lib").unwrap();
        fs.rename(
            lib,
            OsStr::new("pkg"),
            lib,
            OsStr::new("~kg"),
            RenameFlags::default(),
        )
        .unwrap();
        assert!(resolve(&fs, "lib/pkg").is_none());
        assert_eq!(names(&fs, "lib/~kg"), ["mod.py", "only_b.py", "sub"]);
        // and back again, as pip does when it rolls an uninstall back
        fs.rename(
            lib,
            OsStr::new("~kg"),
            lib,
            OsStr::new("pkg"),
            RenameFlags::default(),
        )
        .unwrap();
        fs.rename(
            lib,
            OsStr::new("pkg"),
            lib,
            OsStr::new("moved"),
            RenameFlags::default(),
        )
        .unwrap();
    }
    let fs = open(&f);
    assert!(resolve(&fs, "lib/pkg").is_none());
    assert!(resolve(&fs, "lib/~kg").is_none());
    assert_eq!(names(&fs, "lib/moved"), ["mod.py", "only_b.py", "sub"]);
    assert_eq!(read(&fs, "lib/moved/sub/deep.py"), "deep");
    assert_eq!(read(&fs, "lib/moved/mod.py"), "A");
}

#[test]
fn reserved_names_are_refused() {
    let f = fixture();
    let fs = open(&f);
    let lib = resolve(&fs, "lib").unwrap();
    assert!(matches!(
        fs.mkdir(&C, lib, OsStr::new(".wh.x"), 0o755),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        fs.mkdir(&C, ROOT, OsStr::new(".venvfs"), 0o755),
        Err(Error::NotPermitted(_))
    ));
}

#[test]
fn missing_layer_is_named() {
    let mut f = fixture();
    f.manifest
        .layers
        .push(layer(Path::new("/nonexistent/cache/entry")));
    let err = Overlay::new(&f.venv, &f.manifest, OverlayConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("/nonexistent/cache/entry"), "{err}");
}

#[test]
fn hard_links_are_one_inode_and_unlink_removes_only_that_name() {
    let f = fixture();
    let fs = open(&f);
    let pkg = resolve(&fs, "lib/pkg").unwrap();
    let ino = resolve(&fs, "lib/pkg/mod.py").unwrap();
    let e = fs.link(ino, pkg, OsStr::new("alias.py")).unwrap();
    assert_eq!(e.attr.ino, ino);
    assert_eq!(e.attr.nlink, 2);
    fs.unlink(pkg, OsStr::new("alias.py")).unwrap();
    assert_eq!(read(&fs, "lib/pkg/mod.py"), "A");
    fs.link(ino, pkg, OsStr::new("alias.py")).unwrap();
    fs.unlink(pkg, OsStr::new("mod.py")).unwrap();
    assert_eq!(read(&fs, "lib/pkg/alias.py"), "A");
    fs.rename(
        pkg,
        OsStr::new("alias.py"),
        pkg,
        OsStr::new("renamed.py"),
        RenameFlags::default(),
    )
    .unwrap();
    assert_eq!(read(&fs, "lib/pkg/renamed.py"), "A");
    assert!(
        resolve(&fs, "lib/pkg/mod.py").is_none(),
        "the lower file stays hidden"
    );
}

#[test]
fn inode_numbers_stay_stable_through_copy_up_and_rename() {
    let f = fixture();
    let fs = open(&f);
    let ino = resolve(&fs, "lib/pkg/mod.py").unwrap();
    let rw = OpenRequest {
        access: Access::ReadWrite,
        ..OpenRequest::READ
    };
    let h = fs.open(ino, &rw).unwrap(); // copies up
    fs.release(ino, h.fh);
    assert_eq!(resolve(&fs, "lib/pkg/mod.py"), Some(ino));
    let pkg = resolve(&fs, "lib/pkg").unwrap();
    let lib = resolve(&fs, "lib").unwrap();
    fs.rename(
        lib,
        OsStr::new("pkg"),
        lib,
        OsStr::new("pkg2"),
        RenameFlags::default(),
    )
    .unwrap();
    assert_eq!(resolve(&fs, "lib/pkg2"), Some(pkg));
    assert_eq!(resolve(&fs, "lib/pkg2/mod.py"), Some(ino));
    assert_eq!(fs.getattr(ino).unwrap().attr.ino, ino);
}

/// Deleting entries while listing a directory (as `for e in os.scandir(d): os.unlink(e)`
/// does) neither skips nor repeats the others: a listing resumes by a stable offset.
#[test]
fn listing_while_deleting_sees_every_entry_once() {
    let f = fixture();
    let fs = open(&f);
    let dir = fs
        .mkdir(&C, ROOT, OsStr::new("many"), 0o755)
        .unwrap()
        .attr
        .ino;
    let count = 1000;
    for i in 0..count {
        let name = format!("f{i:04}");
        let req = OpenRequest {
            access: Access::Write,
            exclusive: true,
            ..OpenRequest::READ
        };
        let (e, o) = fs.create(&C, dir, OsStr::new(&name), 0o644, &req).unwrap();
        fs.release(e.attr.ino, o.fh);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut offset = 2;
    loop {
        let piece = fs.readdir(dir, offset).unwrap();
        let Some(last) = piece.last() else { break };
        offset = last.offset;
        for e in piece {
            assert!(seen.insert(e.name.clone()), "{:?} listed twice", e.name);
            fs.unlink(dir, &e.name).unwrap();
        }
    }
    assert_eq!(seen.len(), count);
    assert!(list(&fs, dir).is_empty());
}

/// A kernel cache that records what it is told to forget.
#[derive(Default)]
struct Forgets {
    names: std::sync::Mutex<Vec<(Ino, String)>>,
    inodes: std::sync::Mutex<Vec<Ino>>,
}

impl venvfs_api::KernelCache for Forgets {
    fn invalidate_entry(&self, parent: Ino, name: &OsStr) {
        let name = name.to_string_lossy().into_owned();
        self.names.lock().unwrap().push((parent, name));
    }
    fn invalidate_inode(&self, ino: Ino) {
        self.inodes.lock().unwrap().push(ino);
    }
}

/// A live change of the layers: new names show, removed ones go, an unchanged file keeps
/// its inode, a removed layer's file that is held open keeps reading, and the kernel is
/// told exactly which names changed.
#[test]
fn reload_changes_layers_live() {
    let f = fixture();
    let fs = open(&f);
    let pkg = resolve(&fs, "lib/pkg").unwrap();
    let kept = resolve(&fs, "lib/pkg/mod.py").unwrap();
    let only_b = resolve(&fs, "lib/pkg/only_b.py").unwrap();
    // a process holds only_b.py open (the kernel holds a reference)
    fs.reference(only_b);
    assert!(resolve(&fs, "lib/pkg/only_c.py").is_none());

    // layer b goes, layer c comes
    let c = f.venv.parent().unwrap().join("c");
    write(&c.join("pkg/only_c.py"), "only c");
    let mut manifest = f.manifest.clone();
    manifest.layers.pop();
    manifest.layers.push(layer(&c));
    let forgets = Forgets::default();
    fs.reload(&manifest, &[], &forgets).unwrap();

    assert_eq!(names(&fs, "lib/pkg"), ["mod.py", "only_c.py", "sub"]);
    assert_eq!(names(&fs, "lib/ns"), ["one.py"]);
    assert_eq!(
        resolve(&fs, "lib/pkg/mod.py"),
        Some(kept),
        "same file, same inode"
    );
    assert_eq!(read(&fs, "lib/pkg/only_c.py"), "only c");
    // the held file of the removed layer still reads and stats
    let data = fs.read(only_b, None, 0, 100).unwrap();
    assert_eq!(data, b"only b");
    assert_eq!(fs.getattr(only_b).unwrap().attr.size, 6);
    fs.unreference(only_b, 1);
    assert!(
        fs.read(only_b, None, 0, 100).is_err(),
        "let go with its last holder"
    );

    // (lib/ns was never looked into before the change: the kernel has nothing of it to
    // forget)
    let mut told = forgets.names.lock().unwrap().clone();
    told.sort();
    let expected = vec![(pkg, "only_b.py".to_owned()), (pkg, "only_c.py".to_owned())];
    assert_eq!(told, expected);
    assert_eq!(*forgets.inodes.lock().unwrap(), vec![pkg]);
}

/// A symlink made into a uv cache's unpacked wheel is a reference: shown as the file it
/// points to, copied up on its first write, unlinked as a link (also while held open),
/// and the cache file is never written. (Unix only: Wine, which runs the Windows build of
/// this file, makes no symbolic links.)
#[test]
#[cfg(unix)]
fn links_into_a_uv_cache_are_references() {
    let f = fixture();
    let cache = f.venv.parent().unwrap().join("uv-cache");
    write(
        &cache.join("CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55",
    );
    write(&cache.join("archive-v0/abc/six.py"), "print('six')\n");
    write(&cache.join("archive-v0/abc/other.py"), "other\n");
    let snapshot = |p: &Path| std::fs::read(p).unwrap();
    let before = (
        snapshot(&cache.join("archive-v0/abc/six.py")),
        snapshot(&cache.join("archive-v0/abc/other.py")),
    );
    let fs = open(&f);
    let lib = resolve(&fs, "lib").unwrap();
    let link = |name: &str, target: &str| {
        let e = fs
            .symlink(
                &C,
                lib,
                OsStr::new(name),
                &cache.join("archive-v0/abc").join(target),
            )
            .unwrap();
        // the kernel gets the link it asked for, not to be cached
        assert_eq!(e.attr.kind, venvfs_api::FileKind::Symlink);
        assert_eq!(e.ttl, std::time::Duration::ZERO);
    };
    link("six.py", "six.py");
    link("other.py", "other.py");
    // a link elsewhere stays a link
    fs.symlink(&C, lib, OsStr::new("elsewhere"), Path::new("/usr/bin/env"))
        .unwrap();
    let six = resolve(&fs, "lib/six.py").unwrap();
    let attr = fs.getattr(six).unwrap().attr;
    assert_eq!(attr.kind, venvfs_api::FileKind::File);
    assert_eq!(attr.size, 13);
    assert_eq!(read(&fs, "lib/six.py"), "print('six')\n");
    let other = resolve(&fs, "lib/elsewhere").unwrap();
    assert_eq!(
        fs.getattr(other).unwrap().attr.kind,
        venvfs_api::FileKind::Symlink
    );

    // the first write copies up
    fs.write(six, None, 0, b"PRINT").unwrap();
    assert_eq!(read(&fs, "lib/six.py"), "PRINT('six')\n");
    assert!(f
        .venv
        .join("lib/six.py")
        .symlink_metadata()
        .unwrap()
        .is_file());
    // a held reference unlinked keeps reading
    let held = resolve(&fs, "lib/other.py").unwrap();
    fs.reference(held);
    fs.unlink(lib, OsStr::new("other.py")).unwrap();
    assert_eq!(fs.read(held, None, 0, 100).unwrap(), b"other\n");
    fs.unreference(held, 1);
    assert!(resolve(&fs, "lib/other.py").is_none());
    assert_eq!(
        (
            snapshot(&cache.join("archive-v0/abc/six.py")),
            snapshot(&cache.join("archive-v0/abc/other.py"))
        ),
        before,
        "the cache is never written"
    );
    // after a remount the link on disk is a reference again
    fs.symlink(
        &C,
        lib,
        OsStr::new("again.py"),
        &cache.join("archive-v0/abc/other.py"),
    )
    .unwrap();
    drop(fs);
    let fs = open(&f);
    let again = resolve(&fs, "lib/again.py").unwrap();
    assert_eq!(
        fs.getattr(again).unwrap().attr.kind,
        venvfs_api::FileKind::File
    );
    assert_eq!(read(&fs, "lib/again.py"), "other\n");
}

/// A lower file deleted through the mount while the kernel holds it keeps its content and
/// attributes across a live change that renumbers the lower tree (a new layer on top).
#[test]
fn a_held_deleted_lower_file_survives_a_reload() {
    let f = fixture();
    let fs = open(&f);
    let sub = resolve(&fs, "lib/pkg/sub").unwrap();
    let deep = resolve(&fs, "lib/pkg/sub/deep.py").unwrap();
    fs.reference(deep);
    fs.unlink(sub, OsStr::new("deep.py")).unwrap();
    // a new layer on top: every lower node of the old tree gets another number
    let c = f.venv.parent().unwrap().join("c");
    for i in 0..50 {
        write(&c.join(format!("zz/f{i}.py")), "x");
    }
    let mut manifest = f.manifest.clone();
    manifest.layers.insert(0, layer(&c));
    fs.reload(&manifest, &[], &Forgets::default()).unwrap();
    assert_eq!(fs.getattr(deep).unwrap().attr.size, 4);
    assert_eq!(fs.read(deep, None, 0, 100).unwrap(), b"deep");
    fs.unreference(deep, 1);
    assert!(resolve(&fs, "lib/pkg/sub/deep.py").is_none());
}

// ---- Windows rules (what a Dokan mount follows), run here over both uppers ----

/// A venv over two layers that spell one directory and one file differently:
/// `Pkg/Mod.py` (top) and `pkg/mod.py` + `pkg/other.py`.
fn windows_fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    write(&a.join("Pkg/Mod.py"), "A");
    write(&b.join("pkg/mod.py"), "B (hidden by a)");
    write(&b.join("pkg/other.py"), "other");
    let venv = tmp.path().join("venv");
    std::fs::create_dir_all(venv.join("lib")).unwrap();
    let manifest = Manifest {
        version: 1,
        generated: None,
        layers: vec![layer(&a), layer(&b)],
    };
    Fixture {
        _tmp: tmp,
        venv,
        manifest,
    }
}

fn open_windows(f: &Fixture, portable_upper: bool) -> Overlay {
    let cfg = OverlayConfig {
        rules: venvfs::rules::Rules::windows(),
        portable_upper,
        ..OverlayConfig::default()
    };
    Overlay::new(&f.venv, &f.manifest, cfg).unwrap()
}

/// Names under Windows rules: found in any case, shown as first spelled, layers that
/// differ in case merged, clashes refused, case-only renames kept, reserved and invalid
/// names refused; all of it the same after a remount.
#[test]
fn windows_rules_names() {
    for portable_upper in [false, true] {
        let f = windows_fixture();
        {
            let fs = open_windows(&f, portable_upper);
            assert_eq!(
                names(&fs, "lib"),
                ["Pkg"],
                "one directory, the top layer's spelling"
            );
            assert_eq!(names(&fs, "lib/pkg"), ["Mod.py", "other.py"]);
            assert_eq!(read(&fs, "lib/PKG/MOD.PY"), "A", "the top layer wins");
            let pkg = resolve(&fs, "lib/pKg").unwrap();
            let exclusive = OpenRequest {
                exclusive: true,
                ..OpenRequest::READ
            };
            let clash = fs.create(&C, pkg, OsStr::new("OTHER.py"), 0o644, &exclusive);
            assert!(matches!(clash, Err(Error::Exists(_))), "{clash:?}");
            // a case-only rename of a lower file, then of an upper directory
            fs.rename(
                pkg,
                OsStr::new("mod.py"),
                pkg,
                OsStr::new("MOD.py"),
                RenameFlags::default(),
            )
            .unwrap();
            assert_eq!(names(&fs, "lib/pkg"), ["MOD.py", "other.py"]);
            assert_eq!(read(&fs, "lib/pkg/mod.py"), "A");
            fs.unlink(pkg, OsStr::new("OTHER.PY")).unwrap();
            let lib = resolve(&fs, "lib").unwrap();
            let new = fs
                .mkdir(&C, lib, OsStr::new("new"), 0o755)
                .unwrap()
                .attr
                .ino;
            fs.create(&C, new, OsStr::new("x"), 0o644, &OpenRequest::READ)
                .unwrap();
            fs.create(&C, new, OsStr::new("y"), 0o644, &OpenRequest::READ)
                .unwrap();
            fs.rename(
                lib,
                OsStr::new("NEW"),
                lib,
                OsStr::new("New"),
                RenameFlags::default(),
            )
            .unwrap();
            // replacing an entry spelled otherwise leaves one entry, spelled anew
            fs.rename(
                new,
                OsStr::new("X"),
                new,
                OsStr::new("Y"),
                RenameFlags::default(),
            )
            .unwrap();
            assert_eq!(names(&fs, "lib/new"), ["Y"]);
            for (name, why) in [
                ("a:b", "a colon"),
                ("CON", "a device name"),
                ("x.", "a trailing dot"),
            ] {
                let r = fs.mkdir(&C, lib, OsStr::new(name), 0o755);
                assert!(matches!(r, Err(Error::InvalidName(_))), "{why}: {r:?}");
            }
            let r = fs.mkdir(&C, ROOT, OsStr::new(".VENVFS"), 0o755);
            assert!(matches!(r, Err(Error::NotPermitted(_))), "{r:?}");
            let r = fs.mkdir(&C, lib, OsStr::new(".WH.x"), 0o755);
            assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
        }
        let fs = open_windows(&f, portable_upper);
        assert_eq!(names(&fs, "lib"), ["New", "Pkg"], "upper {portable_upper}");
        assert_eq!(names(&fs, "lib/pkg"), ["MOD.py"]);
        assert_eq!(names(&fs, "lib/NEW"), ["Y"]);
        assert_eq!(read(&fs, "lib/pkg/mod.py"), "A");
        // the venv's own directory holds one spelling of each
        let mut own: Vec<String> = std::fs::read_dir(f.venv.join("lib/New"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        own.sort();
        assert!(
            own == ["Y"] || own == ["y"],
            "upper {portable_upper}: one file on disk, got {own:?}"
        );
    }
}

/// An open under Windows rules: `access`, sharing `share`, deleting on close or not.
fn windows_open(
    access: Access,
    share: venvfs_api::ShareMode,
    delete_on_close: bool,
) -> OpenRequest {
    OpenRequest {
        access,
        share: Some(share),
        delete: delete_on_close,
        delete_on_close,
        ..OpenRequest::READ
    }
}

/// Share modes and delete pending under Windows rules, on a lower file (so a refused open
/// must not copy it up) and on an upper one; under POSIX rules neither applies.
#[test]
fn windows_rules_share_modes_and_delete_pending() {
    use venvfs_api::ShareMode;
    let read_only = ShareMode {
        read: true,
        write: false,
        delete: false,
    };
    for portable_upper in [false, true] {
        let f = windows_fixture();
        let fs = open_windows(&f, portable_upper);
        let other = resolve(&fs, "lib/pkg/other.py").unwrap();
        let reader = fs
            .open(other, &windows_open(Access::Read, read_only, false))
            .unwrap();
        // a second reader sharing reads is fine; a writer is not, nor a reader that
        // refuses to share reads with the first
        let second = fs
            .open(other, &windows_open(Access::Read, ShareMode::ALL, false))
            .unwrap();
        let writer = fs.open(
            other,
            &windows_open(Access::ReadWrite, ShareMode::ALL, false),
        );
        assert!(matches!(writer, Err(Error::SharingViolation)), "{writer:?}");
        let exclusive = fs.open(
            other,
            &windows_open(Access::Read, ShareMode::default(), false),
        );
        assert!(
            matches!(exclusive, Err(Error::SharingViolation)),
            "{exclusive:?}"
        );
        let truncating = OpenRequest {
            truncate: true,
            ..windows_open(Access::Write, ShareMode::ALL, false)
        };
        assert!(fs.open(other, &truncating).is_err());
        assert_eq!(
            read(&fs, "lib/pkg/other.py"),
            "other",
            "a refused open changes nothing"
        );
        assert!(
            !f.venv.join("lib/pkg/other.py").exists(),
            "a refused open copies nothing up"
        );
        fs.release(other, second.fh);
        fs.release(other, reader.fh);
        let writer = fs
            .open(
                other,
                &windows_open(Access::ReadWrite, ShareMode::ALL, false),
            )
            .unwrap();
        fs.release(other, writer.fh);

        // delete on close: the name stays until the last handle goes; new opens are
        // refused meanwhile
        let pkg = resolve(&fs, "lib/pkg").unwrap();
        let (e, made) = fs
            .create(
                &C,
                pkg,
                OsStr::new("tmp.txt"),
                0o644,
                &windows_open(Access::ReadWrite, ShareMode::ALL, false),
            )
            .unwrap();
        let tmp = e.attr.ino;
        let doomed = fs
            .open(tmp, &windows_open(Access::Read, ShareMode::ALL, true))
            .unwrap();
        fs.release(tmp, doomed.fh);
        assert!(
            resolve(&fs, "lib/pkg/tmp.txt").is_some(),
            "another handle is open"
        );
        let late = fs.open(tmp, &windows_open(Access::Read, ShareMode::ALL, false));
        assert!(matches!(late, Err(Error::DeletePending)), "{late:?}");
        fs.release(tmp, made.fh);
        assert!(
            resolve(&fs, "lib/pkg/tmp.txt").is_none(),
            "gone with its last handle"
        );
        assert!(!f.venv.join("lib/pkg/tmp.txt").exists());

        // a disposition mark can be cleared again; set, it deletes a lower file at the
        // last close (a whiteout hides it)
        let h = fs
            .open(other, &windows_open(Access::Read, ShareMode::ALL, false))
            .unwrap();
        fs.set_delete_pending(other, h.fh, true).unwrap();
        fs.set_delete_pending(other, h.fh, false).unwrap();
        fs.release(other, h.fh);
        assert_eq!(read(&fs, "lib/pkg/other.py"), "other");
        let h = fs
            .open(other, &windows_open(Access::Read, ShareMode::ALL, false))
            .unwrap();
        fs.set_delete_pending(other, h.fh, true).unwrap();
        fs.release(other, h.fh);
        assert!(resolve(&fs, "lib/pkg/other.py").is_none());
        // a directory that is not empty cannot be marked
        let h = fs
            .open(pkg, &windows_open(Access::Read, ShareMode::ALL, false))
            .unwrap();
        let r = fs.set_delete_pending(pkg, h.fh, true);
        assert!(r.is_err(), "{r:?}");
        fs.release(pkg, h.fh);
        drop(fs);
        let fs = open_windows(&f, portable_upper);
        assert_eq!(names(&fs, "lib/pkg"), ["Mod.py"], "the deletions persist");
    }
    // POSIX rules: share modes are not checked, delete pending is not offered
    let f = windows_fixture();
    let fs = open(&f);
    let other = resolve(&fs, "lib/pkg/other.py").unwrap();
    let a = fs
        .open(
            other,
            &windows_open(Access::Read, venvfs_api::ShareMode::default(), false),
        )
        .unwrap();
    let b = fs
        .open(
            other,
            &windows_open(Access::ReadWrite, venvfs_api::ShareMode::default(), false),
        )
        .unwrap();
    assert!(fs.set_delete_pending(other, a.fh, true).is_err());
    fs.release(other, a.fh);
    fs.release(other, b.fh);
}

/// Two daemons on one venv directory (two hosts sharing it over NFS or sshfs): what one
/// makes after the other loaded a directory gets in the other's way only as it would on
/// one host. A name the other made shows once this one tries to make it too; a copy-up
/// the other made first is the file this one's change lands in. (Linux's daemons: the
/// Windows adapter serves no shared venv directory.)
#[cfg(unix)]
#[test]
fn two_daemons_on_one_venv_directory() {
    fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
        out
    }

    let f = fixture();
    let (a, b) = (open(&f), open(&f));
    // both look into lib/pkg before either changes anything
    assert_eq!(names(&a, "lib/pkg"), names(&b, "lib/pkg"));
    let pkg_a = resolve(&a, "lib/pkg").unwrap();
    let pkg_b = resolve(&b, "lib/pkg").unwrap();

    // `mkdir -p` on both: b's mkdir finds a's directory, which then shows in b
    a.mkdir(&C, pkg_a, OsStr::new("data"), 0o755).unwrap();
    assert!(
        resolve(&b, "lib/pkg/data").is_none(),
        "b's view is b's until told"
    );
    let again = b.mkdir(&C, pkg_b, OsStr::new("data"), 0o755);
    assert!(again.is_err(), "{again:?}");
    let data_b = resolve(&b, "lib/pkg/data").expect("a's directory shows in b now");
    // and b can work in it
    let (e, o) = b
        .create(&C, data_b, OsStr::new("from_b"), 0o644, &OpenRequest::READ)
        .unwrap();
    b.release(e.attr.ino, o.fh);
    assert!(f.venv.join("lib/pkg/data/from_b").exists());

    // an open(O_CREAT) of a file a made meanwhile opens a's file; O_EXCL says EEXIST
    let write = OpenRequest {
        access: Access::Write,
        ..OpenRequest::READ
    };
    let (e, o) = a
        .create(&C, pkg_a, OsStr::new("log.txt"), 0o644, &write)
        .unwrap();
    a.write(e.attr.ino, Some(o.fh), 0, b"from a").unwrap();
    a.release(e.attr.ino, o.fh);
    let exclusive = OpenRequest {
        exclusive: true,
        ..OpenRequest::READ
    };
    assert!(matches!(
        b.create(&C, pkg_b, OsStr::new("log.txt"), 0o644, &exclusive),
        Err(Error::Exists(_))
    ));
    let (e, o) = b
        .create(&C, pkg_b, OsStr::new("log.txt"), 0o644, &OpenRequest::READ)
        .unwrap();
    assert_eq!(b.read(e.attr.ino, Some(o.fh), 0, 100).unwrap(), b"from a");
    b.release(e.attr.ino, o.fh);

    // a copies a layer file up and edits it; b's edit of the same file lands in a's copy
    let mod_a = resolve(&a, "lib/pkg/mod.py").unwrap();
    let h = a.open(mod_a, &write).unwrap();
    a.write(mod_a, Some(h.fh), 0, b"a").unwrap();
    a.release(mod_a, h.fh);
    let mod_b = resolve(&b, "lib/pkg/mod.py").unwrap();
    let h = b.open(mod_b, &write).unwrap();
    b.write(mod_b, Some(h.fh), 1, b"b").unwrap();
    b.release(mod_b, h.fh);
    assert_eq!(
        std::fs::read_to_string(f.venv.join("lib/pkg/mod.py")).unwrap(),
        "ab",
        "b changed a's copy, which a had made first"
    );
    // (no temporary file of either left in the work directories)
    let work = f.venv.join(".venvfs/work");
    let left: Vec<_> = walk(&work).into_iter().filter(|p| p.is_file()).collect();
    assert!(left.is_empty(), "{left:?}");
}
