//! Hostile and broken input through the real commands (`venvfs layer add`, `install`,
//! `mount`): each is refused with an error naming the file and the reason, a non-zero exit,
//! and no change to the cache or the venv.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

const SITE: &str = "lib/python3.11/site-packages";

/// One member of a hand-made zip: every byte of the name is kept as given (a zip library
/// would refuse or clean up the hostile ones).
struct Raw {
    name: Vec<u8>,
    data: Vec<u8>,
    /// Unix mode: regular file, directory or symlink
    mode: u32,
    crc_xor: u32,
}

fn file(name: &str, data: &[u8]) -> Raw {
    Raw {
        name: name.as_bytes().to_vec(),
        data: data.to_vec(),
        mode: 0o100644,
        crc_xor: 0,
    }
}

fn symlink(name: &str, target: &str) -> Raw {
    Raw {
        name: name.as_bytes().to_vec(),
        data: target.as_bytes().to_vec(),
        mode: 0o120777,
        crc_xor: 0,
    }
}

/// A stored-only zip of `entries`, plus the dist-info a wheel needs, with a RECORD that
/// tells the truth unless `record` is given.
fn raw_wheel(dir: &Path, name: &str, entries: Vec<Raw>, record: Option<&str>) -> PathBuf {
    let dist = format!("{name}-1.0.dist-info");
    let mut all = entries;
    all.push(file(
        &format!("{dist}/METADATA"),
        format!("Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n").as_bytes(),
    ));
    all.push(file(
        &format!("{dist}/WHEEL"),
        b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    ));
    let record = match record {
        Some(r) => r.to_owned(),
        None => {
            let mut r = String::new();
            for e in &all {
                r.push_str(&format!(
                    "{},,{}\n",
                    String::from_utf8_lossy(&e.name),
                    e.data.len()
                ));
            }
            r + &format!("{dist}/RECORD,,\n")
        }
    };
    all.push(file(&format!("{dist}/RECORD"), record.as_bytes()));

    let mut out = Vec::new();
    let mut central = Vec::new();
    let p16 = |v: &mut Vec<u8>, x: u16| v.extend(x.to_le_bytes());
    let p32 = |v: &mut Vec<u8>, x: u32| v.extend(x.to_le_bytes());
    for e in &all {
        let offset = out.len() as u32;
        let crc = crc32fast::hash(&e.data) ^ e.crc_xor;
        let len = e.data.len() as u32;
        p32(&mut out, 0x0403_4b50);
        for v in [20u16, 0, 0, 0, 0x21] {
            p16(&mut out, v);
        }
        for v in [crc, len, len] {
            p32(&mut out, v);
        }
        p16(&mut out, e.name.len() as u16);
        p16(&mut out, 0);
        out.extend(&e.name);
        out.extend(&e.data);

        p32(&mut central, 0x0201_4b50);
        for v in [(3u16 << 8) | 20, 20, 0, 0, 0, 0x21] {
            p16(&mut central, v);
        }
        for v in [crc, len, len] {
            p32(&mut central, v);
        }
        for v in [e.name.len() as u16, 0, 0, 0, 0] {
            p16(&mut central, v);
        }
        p32(&mut central, e.mode << 16);
        p32(&mut central, offset);
        central.extend(&e.name);
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    p32(&mut out, 0x0605_4b50);
    for v in [0u16, 0, all.len() as u16, all.len() as u16] {
        p16(&mut out, v);
    }
    p32(&mut out, central.len() as u32);
    p32(&mut out, cd_offset);
    p16(&mut out, 0);
    let path = dir.join(format!("{name}-1.0-py3-none-any.whl"));
    fs::write(&path, out).unwrap();
    path
}

/// Runs `venvfs ARGS... VENV SOURCE`, expecting a refusal whose message names `names` and
/// says `why`; the venv and the source must come out unchanged.
fn refused(s: &Scratch, args: &[&str], source: &Path, names: &[&str], why: &str) {
    let venv_before = snapshot(&s.venv);
    let source_before = snapshot(source);
    let out = run(venvfs().args(args).arg(&s.venv).arg(source));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "venvfs {args:?} accepted {}",
        source.display()
    );
    for n in names {
        assert!(
            err.contains(n),
            "venvfs {args:?}: {n:?} is not named in: {err}"
        );
    }
    assert!(
        err.contains(why),
        "venvfs {args:?}: {why:?} is not said in: {err}"
    );
    assert_eq!(
        venv_before,
        snapshot(&s.venv),
        "venvfs {args:?} changed the venv"
    );
    assert_eq!(
        source_before,
        snapshot(source),
        "venvfs {args:?} changed the source"
    );
}

/// Both commands that take a wheel refuse it.
fn both_refuse(s: &Scratch, whl: &Path, names: &[&str], why: &str) {
    let shown = whl.display().to_string();
    let mut all = names.to_vec();
    all.push(&shown);
    refused(s, &["layer", "add"], whl, &all, why);
    refused(s, &["install"], whl, &all, why);
}

#[test]
fn a_truncated_wheel_is_refused() {
    let s = Scratch::new();
    let good = fs::read(shared_wheel("six-")).unwrap();
    for cut in [good.len() / 2, good.len() - 10, 100] {
        let whl = s.path("six-1.17.0-py2.py3-none-any.whl");
        fs::write(&whl, &good[..cut]).unwrap();
        both_refuse(&s, &whl, &[], "truncated");
    }
}

/// The commands read only dist-info members: a bad CRC there is refused at install; a bad
/// CRC in a module is found when it is read, which fails for that file only, and the log
/// names the wheel, the member and the reason.
#[test]
fn a_bad_crc_is_refused_where_read_and_named_in_the_log() {
    let s = Scratch::new();
    let mut wheel = vec![file("crcpkg/__init__.py", b"OK = 1\n")];
    let mut bad = file("crcpkg/bad.py", b"X = 2\n");
    bad.crc_xor = 0xdead_beef;
    wheel.push(bad);
    let whl = raw_wheel(s.dir.path(), "crcpkg", wheel, None);
    let before = snapshot(&whl);
    // RECORD's CRC broken instead
    let dir2 = s.path("other");
    fs::create_dir(&dir2).unwrap();
    let whl2 = {
        let w = raw_wheel(&dir2, "crcrec", vec![file("crcrec.py", b"Y = 3\n")], None);
        let mut bytes = fs::read(&w).unwrap();
        // flip the CRC field of RECORD in its central header (the last one)
        let name = b"crcrec-1.0.dist-info/RECORD";
        let at = bytes
            .windows(name.len())
            .rposition(|win| win == name)
            .unwrap();
        let crc_at = at - 46 + 16;
        bytes[crc_at] ^= 0xff;
        fs::write(&w, bytes).unwrap();
        w
    };
    refused(
        &s,
        &["install"],
        &whl2,
        &[&whl2.display().to_string(), "RECORD"],
        "CRC",
    );

    run_ok(venvfs().arg("install").arg(&s.venv).arg(&whl));
    let m = s.mount();
    assert_eq!(s.python_ok("import crcpkg; print(crcpkg.OK)"), "1");
    let err = fs::read(s.venv.join(SITE).join("crcpkg/bad.py")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    m.unmount();
    let log = fs::read_to_string(s.venv.join(".venvfs/mount.log")).unwrap();
    assert!(
        log.contains(&whl.display().to_string())
            && log.contains("crcpkg/bad.py")
            && log.contains("CRC"),
        "{log}"
    );
    assert_eq!(before, snapshot(&whl));
}

#[test]
fn members_that_escape_or_clash_are_refused() {
    let s = Scratch::new();
    let cases: Vec<(&str, Vec<Raw>, &str, &str)> = vec![
        (
            "absolute",
            vec![file("/etc/evil.py", b"x")],
            "/etc/evil.py",
            "absolute",
        ),
        (
            "dotdot",
            vec![file("pkg/../../evil.py", b"x")],
            "evil.py",
            "'..'",
        ),
        (
            "linkout",
            vec![
                file("pkg/__init__.py", b""),
                symlink("pkg/passwd", "../../../../../../etc/passwd"),
            ],
            "pkg/passwd",
            "escapes",
        ),
        (
            "linkabs",
            vec![symlink("pkg/passwd", "/etc/passwd")],
            "pkg/passwd",
            "absolute",
        ),
        (
            "dup",
            vec![file("pkg/a.py", b"1"), file("pkg/a.py", b"2")],
            "pkg/a.py",
            "appears twice",
        ),
        (
            "case",
            vec![file("pkg/Mod.py", b"1"), file("pkg/mod.py", b"2")],
            "pkg/mod.py",
            "only in case",
        ),
        (
            "casedir",
            vec![file("Pkg/a.py", b"1"), file("pkg/b.py", b"2")],
            "pkg",
            "only in case",
        ),
    ];
    for (name, entries, member, why) in cases {
        let dir = s.path(name);
        fs::create_dir(&dir).unwrap();
        let whl = raw_wheel(&dir, name, entries, None);
        both_refuse(&s, &whl, &[member], why);
    }
    // a name too long for any filesystem (255 bytes a component)
    let long = format!("pkg/{}.py", "x".repeat(260));
    let dir = s.path("toolong");
    fs::create_dir(&dir).unwrap();
    let whl = raw_wheel(&dir, "toolong", vec![file(&long, b"x")], None);
    both_refuse(&s, &whl, &["xxxx"], "255");
}

/// An unpacked wheel with a symlink out of the venv is refused by `layer add` and `install`
/// (not only later by `mount`).
#[test]
fn an_unpacked_wheel_with_an_escaping_symlink_is_refused() {
    let s = Scratch::new();
    let dir = s.path("cache/evil");
    unpack(&shared_wheel("six-"), &dir);
    let link = dir.join("passwd");
    std::os::unix::fs::symlink("../../../../../../../../etc/passwd", &link).unwrap();
    let shown = link.display().to_string();
    refused(&s, &["layer", "add"], &dir, &[&shown], "outside");
    refused(&s, &["install"], &dir, &[&shown], "outside");
}

/// RECORD that lies about a file's size, or cannot be parsed, is refused by `install`.
#[test]
fn a_record_that_lies_is_refused() {
    let s = Scratch::new();
    let dir = s.path("size");
    fs::create_dir(&dir).unwrap();
    let whl = raw_wheel(
        &dir,
        "liar",
        vec![file("liar.py", b"X = 1\n")],
        Some("liar.py,,999\nliar-1.0.dist-info/METADATA,,\nliar-1.0.dist-info/WHEEL,,\nliar-1.0.dist-info/RECORD,,\n"),
    );
    refused(
        &s,
        &["install"],
        &whl,
        &[&whl.display().to_string(), "liar.py"],
        "999",
    );
    let dir = s.path("hash");
    fs::create_dir(&dir).unwrap();
    let whl = raw_wheel(
        &dir,
        "liar",
        vec![file("liar.py", b"X = 1\n")],
        Some("liar.py,,6\nliar-1.0.dist-info/METADATA,,\nliar-1.0.dist-info/WHEEL,sha256=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,\nliar-1.0.dist-info/RECORD,,\n"),
    );
    refused(
        &s,
        &["install"],
        &whl,
        &[&whl.display().to_string(), "WHEEL"],
        "sha256",
    );
    let dir = s.path("garbled");
    fs::create_dir(&dir).unwrap();
    let whl = raw_wheel(
        &dir,
        "liar",
        vec![file("liar.py", b"X = 1\n")],
        Some("liar.py,,not-a-size\n"),
    );
    refused(
        &s,
        &["install"],
        &whl,
        &[&whl.display().to_string(), "RECORD line 1"],
        "not a whole number",
    );
}

/// A corrupt manifest stops every command that reads it, named, and is left as it was.
#[test]
fn a_corrupt_manifest_is_named_by_every_command() {
    let s = Scratch::new();
    let six = shared_wheel("six-");
    s.add_layers(&[&six]);
    let manifest = s.venv.join(".venvfs/manifest.toml");
    let shown = manifest.display().to_string();
    for garbage in [
        "version = 1\n[[layer]]\nsource = 42\n",
        "version = 7\n",
        "\u{0}\u{1}binary",
        "version = 1\n[[layer]]\nsource = \"relative/path.whl\"\nname = \"x\"\nversion = \"1\"\nmap = []\n",
    ] {
        fs::write(&manifest, garbage).unwrap();
        for args in [
            vec!["layer", "add"],
            vec!["install"],
            vec!["uninstall"],
            vec!["mount"],
        ] {
            let venv_before = snapshot(&s.venv);
            let mut cmd = venvfs();
            cmd.args(&args).arg(&s.venv);
            match args[0] {
                "uninstall" => {
                    cmd.arg("six");
                }
                "mount" => {}
                _ => {
                    cmd.arg(&six);
                }
            }
            let out = run(&mut cmd);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} accepted {garbage:?}");
            assert!(err.contains(&shown), "{args:?} on {garbage:?}: {err}");
            assert_eq!(venv_before, snapshot(&s.venv), "{args:?} changed the venv");
        }
    }
}

/// A `.whl` layer that is gone, or replaced by garbage, makes `mount` refuse and name it.
#[test]
fn a_manifest_pointing_at_a_missing_or_broken_wheel_makes_mount_refuse() {
    let s = Scratch::new();
    let whl = s.path("six-1.17.0-py2.py3-none-any.whl");
    fs::copy(shared_wheel("six-"), &whl).unwrap();
    s.add_layers(&[&whl]);
    let shown = whl.display().to_string();
    for broken in [None, Some(&b"garbage"[..])] {
        match broken {
            None => fs::remove_file(&whl).unwrap(),
            Some(b) => fs::write(&whl, b).unwrap(),
        }
        let before = snapshot(&s.venv);
        let out = run(venvfs().arg("mount").arg(&s.venv));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(&shown), "{err}");
        assert!(!fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&format!(" {} ", s.venv.display())));
        assert_eq!(before, snapshot(&s.venv));
    }
}

/// A deflated RECORD that claims (and really inflates to) 300 MiB: `install` refuses it
/// before reading it, instead of holding it in memory.
#[test]
fn install_refuses_a_dist_info_bomb_without_reading_it() {
    let s = Scratch::new();
    let whl = s.path("bomb-1.0-py3-none-any.whl");
    run_ok(std::process::Command::new("python3").args([
        "-c",
        "import sys, zipfile\n\
         with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n\
         \x20   z.writestr('bomb.py', 'X = 1\\n')\n\
         \x20   z.writestr('bomb-1.0.dist-info/METADATA', 'Metadata-Version: 2.1\\nName: bomb\\nVersion: 1.0\\n')\n\
         \x20   z.writestr('bomb-1.0.dist-info/WHEEL', 'Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\n')\n\
         \x20   with z.open('bomb-1.0.dist-info/RECORD', 'w') as f:\n\
         \x20       for _ in range(300): f.write(bytes(1 << 20))\n",
    ]).arg(&whl));
    assert!(fs::metadata(&whl).unwrap().len() < 2 << 20, "a small file");
    let started = std::time::Instant::now();
    refused(
        &s,
        &["install"],
        &whl,
        &[&whl.display().to_string(), "bomb-1.0.dist-info/RECORD"],
        "MiB",
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
