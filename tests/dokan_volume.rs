//! The Dokan adapter's callbacks (venvfs_dokan::Volume, which the Windows glue only
//! converts to and from Dokan's types) run against the real overlay under Windows rules, on
//! both uppers: what each Dokan callback does to the core, checked without Windows.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use venvfs::manifest::{Layer, Manifest, Mapping};
use venvfs::overlay::{Overlay, OverlayConfig};
use venvfs_dokan::info::TimeChange;
use venvfs_dokan::ntstatus::{self, *};
use venvfs_dokan::plan::{CreateRequest, FILE_DELETE_ON_CLOSE};
use venvfs_dokan::volume::{Created, Handle};
use venvfs_dokan::{pattern, Volume};
use venvfs_rules::disposition::FILE_DIRECTORY_FILE;
use venvfs_rules::share::{
    DELETE, FILE_READ_ATTRIBUTES, FILE_READ_DATA, FILE_SHARE_DELETE, FILE_SHARE_READ,
    FILE_SHARE_WRITE, FILE_WRITE_DATA, SYNCHRONIZE,
};

const FILE_OPEN: u32 = 1;
const FILE_CREATE: u32 = 2;
const FILE_OPEN_IF: u32 = 3;
const FILE_OVERWRITE_IF: u32 = 5;
const SHARE_ALL: u32 = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

struct Fixture {
    _tmp: tempfile::TempDir,
    venv: std::path::PathBuf,
    manifest: Manifest,
}

/// A venv whose one layer holds `Lib/pkg/mod.py` and `Lib/pkg/other.py`.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    write(&a.join("pkg/mod.py"), "print('mod')\n");
    write(&a.join("pkg/other.py"), "other");
    let venv = tmp.path().join("venv");
    std::fs::create_dir_all(venv.join("Lib")).unwrap();
    let manifest = Manifest {
        version: 1,
        generated: None,
        layers: vec![Layer {
            source: a,
            name: String::new(),
            version: String::new(),
            map: vec![Mapping {
                from: String::new(),
                to: Some("Lib".into()),
                skip: false,
            }],
            installed: false,
        }],
    };
    Fixture {
        _tmp: tmp,
        venv,
        manifest,
    }
}

fn volume(f: &Fixture, portable_upper: bool) -> Volume<Overlay> {
    let cfg = OverlayConfig {
        rules: venvfs::rules::Rules::windows(),
        portable_upper,
        ..OverlayConfig::default()
    };
    Volume::new(Overlay::new(&f.venv, &f.manifest, cfg).unwrap())
}

fn req(access: u32, share: u32, disposition: u32, options: u32) -> CreateRequest {
    CreateRequest {
        desired_access: access,
        file_attributes: 0,
        share_access: share,
        disposition,
        options,
    }
}

/// `create_file`, as the NTSTATUS Windows would see on failure.
fn create(v: &Volume<Overlay>, path: &str, r: CreateRequest) -> Result<Created, i32> {
    v.create(path, &r).map_err(|e| ntstatus::ntstatus(&e))
}

fn open(v: &Volume<Overlay>, path: &str, access: u32) -> Handle {
    create(v, path, req(access, SHARE_ALL, FILE_OPEN, 0))
        .unwrap_or_else(|s| panic!("open {path}: {:#x}", s as u32))
        .handle
}

/// CloseHandle: cleanup, then close.
fn close(v: &Volume<Overlay>, h: Handle, delete_on_close: bool) {
    v.cleanup(&h, delete_on_close);
    v.close(&h);
}

fn read_all(v: &Volume<Overlay>, path: &str) -> String {
    let h = open(v, path, FILE_READ_DATA);
    let mut buf = vec![0; 4096];
    let n = v.read(&h, 0, &mut buf).unwrap();
    close(v, h, false);
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

fn listing(v: &Volume<Overlay>, path: &str, pat: &str) -> Vec<String> {
    let h = open(v, path, FILE_READ_DATA);
    let mut names = Vec::new();
    v.list(
        &h,
        |n| pattern::is_name_in_expression(pat, n.to_str().unwrap(), true),
        |found| {
            names.push(found.name.into_string().unwrap());
            true
        },
    )
    .unwrap();
    close(v, h, false);
    names.sort();
    names
}

#[test]
fn opens_reads_and_stats_through_paths() {
    for portable in [false, true] {
        let f = fixture();
        let v = volume(&f, portable);
        // names in any case, as NTFS finds them
        assert_eq!(read_all(&v, "\\LIB\\Pkg\\MOD.PY"), "print('mod')\n");
        let h = open(&v, "\\Lib\\pkg\\mod.py", FILE_READ_ATTRIBUTES | SYNCHRONIZE);
        let info = v.information(&h).unwrap();
        assert_eq!(info.size, 13);
        assert_eq!(info.attributes, 0x80, "NORMAL");
        assert_eq!(info.index, h.ino());
        close(&v, h, false);
        let root = open(&v, "\\", FILE_READ_ATTRIBUTES);
        assert!(root.is_dir());
        assert_eq!(v.information(&root).unwrap().attributes & 0x10, 0x10);
        close(&v, root, false);
        assert_eq!(
            create(
                &v,
                "\\Lib\\nope.py",
                req(FILE_READ_DATA, SHARE_ALL, FILE_OPEN, 0)
            )
            .err(),
            Some(STATUS_OBJECT_NAME_NOT_FOUND)
        );
        assert_eq!(
            create(
                &v,
                "\\Lib\\nodir\\x.py",
                req(FILE_READ_DATA, SHARE_ALL, FILE_OPEN, 0)
            )
            .err(),
            Some(STATUS_OBJECT_PATH_NOT_FOUND)
        );
        assert_eq!(
            create(
                &v,
                "\\Lib\\pkg\\mod.py\\x",
                req(FILE_READ_DATA, SHARE_ALL, FILE_OPEN, 0)
            )
            .err(),
            Some(STATUS_OBJECT_PATH_NOT_FOUND),
            "a file on the way"
        );
        assert_eq!(
            create(
                &v,
                "\\Lib\\pkg",
                req(FILE_READ_DATA, SHARE_ALL, FILE_OPEN, 0x40)
            )
            .err(),
            Some(STATUS_FILE_IS_A_DIRECTORY),
            "FILE_NON_DIRECTORY_FILE on a directory"
        );
    }
}

#[test]
fn creates_writes_and_dispositions() {
    for portable in [false, true] {
        let f = fixture();
        let v = volume(&f, portable);
        let rw = FILE_READ_DATA | FILE_WRITE_DATA;
        let c = create(&v, "\\Lib\\new.txt", req(rw, SHARE_ALL, FILE_CREATE, 0)).unwrap();
        assert!(c.new_file_created);
        assert_eq!(
            v.write(&c.handle, 0, b"hello world", false, false).unwrap(),
            11
        );
        assert_eq!(
            v.write(&c.handle, 0, b"!", true, false).unwrap(),
            1,
            "to EOF"
        );
        // a paging write never extends the file
        assert_eq!(v.write(&c.handle, 10, b"XYZ", false, true).unwrap(), 2);
        v.flush(&c.handle).unwrap();
        close(&v, c.handle, false);
        assert_eq!(read_all(&v, "\\lib\\NEW.TXT"), "hello worlXY");
        assert!(f.venv.join("Lib/new.txt").is_file());

        assert_eq!(
            create(&v, "\\Lib\\NEW.txt", req(rw, SHARE_ALL, FILE_CREATE, 0)).err(),
            Some(STATUS_OBJECT_NAME_COLLISION)
        );
        let c = create(&v, "\\Lib\\new.txt", req(rw, SHARE_ALL, FILE_OPEN_IF, 0)).unwrap();
        assert!(
            !c.new_file_created,
            "opened: Win32 then says ERROR_ALREADY_EXISTS"
        );
        close(&v, c.handle, false);
        // CREATE_ALWAYS on a lower file: truncated in the upper, the layer untouched
        let c = create(
            &v,
            "\\Lib\\pkg\\other.py",
            req(rw, SHARE_ALL, FILE_OVERWRITE_IF, 0),
        )
        .unwrap();
        assert!(!c.new_file_created);
        assert_eq!(v.information(&c.handle).unwrap().size, 0);
        close(&v, c.handle, false);
        assert_eq!(read_all(&v, "\\Lib\\pkg\\other.py"), "");

        // set_end_of_file, set_allocation_size, set_file_time, set_file_attributes
        let h = open(&v, "\\Lib\\new.txt", rw);
        v.set_size(&h, 5).unwrap();
        v.set_allocation(&h, 100).unwrap();
        assert_eq!(
            v.information(&h).unwrap().size,
            5,
            "a larger allocation keeps the size"
        );
        v.set_allocation(&h, 3).unwrap();
        assert_eq!(v.information(&h).unwrap().size, 3);
        let t = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        v.set_times(&h, TimeChange::Keep, TimeChange::Keep, TimeChange::Set(t))
            .unwrap();
        assert_eq!(v.information(&h).unwrap().last_write_time, t);
        v.set_attributes(&h, 0x1).unwrap();
        assert_eq!(v.information(&h).unwrap().attributes, 0x1, "READONLY");
        close(&v, h, false);
        let del = create(&v, "\\Lib\\new.txt", req(DELETE, SHARE_ALL, FILE_OPEN, 0))
            .unwrap()
            .handle;
        assert_eq!(
            v.set_delete(&del, true).map_err(|e| ntstatus::ntstatus(&e)),
            Err(STATUS_ACCESS_DENIED),
            "a read-only file cannot be deleted"
        );
        v.set_attributes(&del, 0x80).unwrap();
        v.set_delete(&del, true).unwrap();
        close(&v, del, true);
        assert_eq!(
            create(
                &v,
                "\\Lib\\new.txt",
                req(FILE_READ_DATA, SHARE_ALL, FILE_OPEN, 0)
            )
            .err(),
            Some(STATUS_OBJECT_NAME_NOT_FOUND)
        );
        assert!(v.disk_space().unwrap().0 > 0);
    }
}

#[test]
fn share_modes_and_delete_pending() {
    for portable in [false, true] {
        let f = fixture();
        let v = volume(&f, portable);
        let path = "\\Lib\\pkg\\mod.py";
        let reader = create(&v, path, req(FILE_READ_DATA, FILE_SHARE_READ, FILE_OPEN, 0))
            .unwrap()
            .handle;
        assert_eq!(
            create(&v, path, req(FILE_WRITE_DATA, SHARE_ALL, FILE_OPEN, 0)).err(),
            Some(STATUS_SHARING_VIOLATION)
        );
        // attributes only: no sharing check
        let stat = open(&v, path, FILE_READ_ATTRIBUTES);
        close(&v, stat, false);
        close(&v, reader, false);

        // DeleteFile: open with DELETE, set the disposition, close
        let a = open(&v, path, FILE_READ_DATA);
        let d = open(&v, path, DELETE);
        v.set_delete(&d, true).unwrap();
        close(&v, d, false);
        assert_eq!(
            create(&v, path, req(FILE_READ_DATA, SHARE_ALL, FILE_OPEN, 0)).err(),
            Some(STATUS_DELETE_PENDING),
            "still open elsewhere"
        );
        close(&v, a, false);
        assert_eq!(
            create(&v, path, req(FILE_READ_DATA, SHARE_ALL, FILE_OPEN, 0)).err(),
            Some(STATUS_OBJECT_NAME_NOT_FOUND),
            "gone with its last handle"
        );

        // FILE_DELETE_ON_CLOSE on a created temporary file
        let tmp = create(
            &v,
            "\\Lib\\tmp.bin",
            req(
                FILE_WRITE_DATA | DELETE,
                SHARE_ALL,
                FILE_CREATE,
                FILE_DELETE_ON_CLOSE,
            ),
        )
        .unwrap()
        .handle;
        v.write(&tmp, 0, b"x", false, false).unwrap();
        close(&v, tmp, true);
        assert!(!f.venv.join("Lib/tmp.bin").exists());
    }
}

#[test]
fn directories_listing_and_renames() {
    for portable in [false, true] {
        let f = fixture();
        let v = volume(&f, portable);
        let d = create(
            &v,
            "\\Lib\\Data",
            req(FILE_READ_DATA, SHARE_ALL, FILE_CREATE, FILE_DIRECTORY_FILE),
        )
        .unwrap();
        assert!(d.new_file_created && d.handle.is_dir());
        // FlushFileBuffers on a directory handle (the core syncs files only)
        v.flush(&d.handle).unwrap();
        close(&v, d.handle, false);
        assert_eq!(listing(&v, "\\Lib", "*"), [".", "..", "Data", "pkg"]);
        assert_eq!(listing(&v, "\\", "*"), ["Lib"], "no dots at the root");
        assert_eq!(listing(&v, "\\lib\\PKG", "*.PY"), ["mod.py", "other.py"]);
        assert_eq!(listing(&v, "\\Lib\\pkg", "o*"), ["other.py"]);

        // MoveFile, with and without replacing
        v.rename("\\Lib\\pkg\\other.py", "\\Lib\\Data\\moved.py", false)
            .unwrap();
        assert_eq!(read_all(&v, "\\Lib\\data\\MOVED.py"), "other");
        let e = v
            .rename("\\Lib\\pkg\\mod.py", "\\Lib\\Data\\moved.py", false)
            .map_err(|e| ntstatus::ntstatus(&e));
        assert_eq!(e, Err(STATUS_OBJECT_NAME_COLLISION));
        v.rename("\\Lib\\pkg\\mod.py", "\\Lib\\Data\\moved.py", true)
            .unwrap();
        assert_eq!(read_all(&v, "\\Lib\\Data\\moved.py"), "print('mod')\n");
        // a case-only rename keeps one entry, spelled anew
        v.rename("\\Lib\\Data\\moved.py", "\\Lib\\Data\\Moved.py", false)
            .unwrap();
        assert_eq!(listing(&v, "\\Lib\\Data", "<.py"), ["Moved.py"]);

        // RemoveDirectory: refused while not empty, done at the close once empty
        let dir = open(&v, "\\Lib\\Data", DELETE);
        assert_eq!(
            v.set_delete(&dir, true).map_err(|e| ntstatus::ntstatus(&e)),
            Err(STATUS_DIRECTORY_NOT_EMPTY)
        );
        close(&v, dir, false);
        let file = open(&v, "\\Lib\\Data\\moved.py", DELETE);
        v.set_delete(&file, true).unwrap();
        close(&v, file, true);
        let dir = open(&v, "\\Lib\\Data", DELETE);
        v.set_delete(&dir, true).unwrap();
        close(&v, dir, true);
        assert_eq!(listing(&v, "\\Lib", "*"), [".", "..", "pkg"]);
        assert_eq!(
            create(
                &v,
                "\\Lib\\bad:name",
                req(FILE_READ_DATA, SHARE_ALL, FILE_CREATE, 0)
            )
            .err(),
            Some(STATUS_OBJECT_NAME_INVALID)
        );
        assert_eq!(
            create(
                &v,
                "\\Lib\\CON",
                req(FILE_READ_DATA, SHARE_ALL, FILE_CREATE, 0)
            )
            .err(),
            Some(STATUS_OBJECT_NAME_INVALID)
        );
    }
}
