//! The `.exe` launchers of entry points on Windows, in the format of pip's launchers (the
//! `t64.exe`/`w64.exe` family of distlib, which pip vendors): the launcher executable, then
//! the shebang line naming the interpreter, then a zip archive holding `__main__.py`.
//!
//! ```text
//! t64.exe bytes | #!C:\venv\Scripts\python.exe \n \r\n | PK.. __main__.py (stored) .. PK\5\6
//! ```
//!
//! The launcher reads the shebang just before the archive (found from the end-of-central-
//! directory record, whose offsets count from the archive's start) and runs that interpreter
//! with the `.exe` itself as the script: Python's `zipimport` finds the archive at the end of
//! the file and runs its `__main__.py`.
//!
//! Why pip's launchers and not uv's: uv's trampolines keep the interpreter path and the
//! archive in PE resources written by Windows' `UpdateResourceW`, which only Windows can
//! produce, so those bytes could neither be generated nor checked on Linux; and a launcher
//! crate of our own would mean a second Windows-only build (uv's is `no_std`, nightly, MSVC)
//! and a binary for every architecture to ship and keep signed. distlib's format is plain
//! bytes appended to the launcher, generated and checked on any system, and its launchers
//! come with every Windows Python that has pip (`ensurepip` bundles it), so nothing binary
//! enters this repository: they are read at install time from the base interpreter's pip,
//! else from a pip installed in the venv ([`for_venv`]). What differs from uv is only the
//! launcher executable; `__main__.py`, `Scripts\` names and RECORD rows are uv's.
//!
//! The bytes are what distlib's `ScriptMaker._write_script` writes on Windows with
//! `SOURCE_DATE_EPOCH=315532800` (1980-01-01, the zip epoch: a launcher's bytes, and so the
//! RECORD hash, do not depend on when it was written), including distlib's `\n\r\n` after the
//! shebang. `__main__.py` is the script uv zips into its own launchers, byte for byte.

use std::path::{Path, PathBuf};

/// The launcher executables of one architecture: console (`t`) and GUI (`w`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launchers {
    pub console: Vec<u8>,
    pub gui: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum LauncherError {
    #[error("Windows platform {0:?} has no pip launcher (x86, x64 and ARM64 only)")]
    UnsupportedPlatform(String),
    #[error("{0}: no `home` key, so the venv's base interpreter is unknown; recreate the venv (`venvfs create`)")]
    NoHome(PathBuf),
    #[error("{0}: not a Windows executable of a known architecture")]
    NotAnExe(PathBuf),
    #[error("cannot read pip's script launcher {path}: {source}\n  entry points on Windows are wrapped in the launchers of the base interpreter's pip: install pip there (`python -m ensurepip`)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Launchers {
    /// The launcher file names distlib picks for a Python whose `sysconfig.get_platform()`
    /// is `platform` (`win-amd64`, `win-arm64`, `win32`): console, GUI.
    pub fn file_names(platform: &str) -> Result<(String, String), LauncherError> {
        let suffix = match platform {
            "win-amd64" => "64",
            "win-arm64" => "64-arm",
            "win32" => "32",
            other => return Err(LauncherError::UnsupportedPlatform(other.to_owned())),
        };
        Ok((format!("t{suffix}.exe"), format!("w{suffix}.exe")))
    }

    /// The launchers in distlib's directory `dir` for `platform`.
    pub fn read(dir: &Path, platform: &str) -> Result<Launchers, LauncherError> {
        let (console, gui) = Launchers::file_names(platform)?;
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| LauncherError::Read { path, source })
        };
        Ok(Launchers {
            console: read(&console)?,
            gui: read(&gui)?,
        })
    }

    /// The launcher of a console or GUI entry point.
    pub fn for_script(&self, gui: bool) -> &[u8] {
        if gui {
            &self.gui
        } else {
            &self.console
        }
    }
}

/// The launchers for the Windows venv `venv`: those of the pip of its base interpreter (the
/// `home` of its `pyvenv.cfg`), else those of a pip installed in the venv itself, for the
/// architecture of the base interpreter's `python.exe`.
pub fn for_venv(venv: &Path) -> Result<Launchers, LauncherError> {
    let cfg = venv.join("pyvenv.cfg");
    let text = std::fs::read_to_string(&cfg).map_err(|source| LauncherError::Read {
        path: cfg.clone(),
        source,
    })?;
    let home = pyvenv_value(&text, "home").ok_or(LauncherError::NoHome(cfg))?;
    let home = Path::new(home);
    let python = home.join("python.exe");
    let exe = std::fs::read(&python).map_err(|source| LauncherError::Read {
        path: python.clone(),
        source,
    })?;
    let platform = pe_platform(&exe).ok_or(LauncherError::NotAnExe(python))?;
    Launchers::read(&distlib_dir(home), platform)
        .or_else(|base| Launchers::read(&distlib_dir(venv), platform).map_err(|_| base))
}

/// The value of `key` in a `pyvenv.cfg` (`key = value` lines).
pub fn pyvenv_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The `sysconfig.get_platform()` of a Windows executable, from the machine field of its PE
/// header: `win-amd64`, `win-arm64` or `win32`.
pub fn pe_platform(exe: &[u8]) -> Option<&'static str> {
    let at = |i: usize, n: usize| exe.get(i..i + n);
    if at(0, 2)? != b"MZ" {
        return None;
    }
    let pe = u32::from_le_bytes(at(0x3c, 4)?.try_into().ok()?) as usize;
    if at(pe, 4)? != b"PE\0\0" {
        return None;
    }
    match u16::from_le_bytes(at(pe + 4, 2)?.try_into().ok()?) {
        0x8664 => Some("win-amd64"),
        0xaa64 => Some("win-arm64"),
        0x014c => Some("win32"),
        _ => None,
    }
}

/// distlib's directory in the pip of a Windows Python installed in `home` (the `home` key of
/// a venv's `pyvenv.cfg`: the directory of the base `python.exe`).
pub fn distlib_dir(home: &Path) -> PathBuf {
    ["Lib", "site-packages", "pip", "_vendor", "distlib"]
        .iter()
        .fold(home.to_owned(), |p, c| p.join(c))
}

/// The shebang line distlib writes before the archive: `#!PYTHON`, quoted when the path has
/// a space, then `\n` and Windows' line separator.
pub fn shebang_line(python: &str) -> String {
    if python.contains(' ') && !python.starts_with('"') {
        format!("#!\"{python}\"\n\r\n")
    } else {
        format!("#!{python}\n\r\n")
    }
}

/// A launcher `.exe` for an entry point: `launcher`, the shebang naming `python` (a Windows
/// path), and a zip archive whose `__main__.py` is `script`.
pub fn launcher_exe(launcher: &[u8], python: &str, script: &str) -> Vec<u8> {
    let mut out = launcher.to_vec();
    out.extend_from_slice(shebang_line(python).as_bytes());
    out.extend_from_slice(&stored_zip("__main__.py", script.as_bytes()));
    out
}

/// The parts of a launcher `.exe` as the launcher itself finds them.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedLauncher<'a> {
    /// The launcher executable (everything before the shebang).
    pub launcher: &'a [u8],
    /// The interpreter named by the shebang, quotes removed.
    pub python: String,
    /// The archive's only member and its content.
    pub name: String,
    pub script: &'a [u8],
}

/// Split a launcher `.exe` written by [`launcher_exe`] (or by pip on Windows, when its archive
/// holds one stored member) back into its parts; `None` if it is not of that form.
pub fn parse_launcher_exe(exe: &[u8]) -> Option<ParsedLauncher<'_>> {
    let le16 = |at: usize| Some(u16::from_le_bytes(exe.get(at..at + 2)?.try_into().ok()?));
    let le32 = |at: usize| Some(u32::from_le_bytes(exe.get(at..at + 4)?.try_into().ok()?));
    let eocd = exe.len().checked_sub(22)?;
    if le32(eocd)? != EOCD_SIG || le16(eocd + 10)? != 1 {
        return None;
    }
    let cd_size = le32(eocd + 12)? as usize;
    let cd_offset = le32(eocd + 16)? as usize;
    let start = eocd.checked_sub(cd_size)?.checked_sub(cd_offset)?;
    let local = start + le32(eocd - cd_size + 42)? as usize;
    if le32(local)? != LOCAL_SIG || le16(local + 8)? != 0 {
        return None;
    }
    let size = le32(local + 22)? as usize;
    let name_len = le16(local + 26)? as usize;
    let extra_len = le16(local + 28)? as usize;
    let name = exe.get(local + 30..local + 30 + name_len)?;
    let data = local + 30 + name_len + extra_len;
    let script = exe.get(data..data + size)?;
    // The shebang: the last `#!` before the archive.
    let head = &exe[..start];
    let bang = head.windows(2).rposition(|w| w == b"#!")?;
    let line = std::str::from_utf8(&head[bang + 2..]).ok()?;
    let python = line.trim_end_matches(['\r', '\n']).trim_matches('"');
    Some(ParsedLauncher {
        launcher: &exe[..bang],
        python: python.to_owned(),
        name: String::from_utf8(name.to_vec()).ok()?,
        script,
    })
}

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;

/// A zip archive of one stored (uncompressed) file, as Python's `zipfile` writes it on
/// Windows for a `ZipInfo` dated 1980-01-01 00:00:00: version 2.0, made on MS-DOS, external
/// attributes `0o600 << 16`, offsets counted from the archive's start.
fn stored_zip(name: &str, content: &[u8]) -> Vec<u8> {
    let crc = crc32fast::hash(content);
    let size = u32::try_from(content.len()).expect("a launcher script is far below 4 GiB");
    let name_len = u16::try_from(name.len()).expect("a short member name");
    const VERSION: u16 = 20;
    const DOS_DATE: u16 = 1 << 5 | 1; // 1980-01-01
    let mut header = Vec::new();
    for v in [VERSION, 0, 0, 0, DOS_DATE] {
        header.extend_from_slice(&v.to_le_bytes());
    }
    for v in [crc, size, size] {
        header.extend_from_slice(&v.to_le_bytes());
    }
    header.extend_from_slice(&name_len.to_le_bytes());
    header.extend_from_slice(&0u16.to_le_bytes());

    let mut out = LOCAL_SIG.to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(content);

    let cd_offset = u32::try_from(out.len()).expect("small archive");
    out.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
    out.extend_from_slice(&VERSION.to_le_bytes()); // made by: 2.0, MS-DOS
    out.extend_from_slice(&header);
    out.extend_from_slice(&[0; 6]); // comment length, disk number, internal attributes
    out.extend_from_slice(&(0o600u32 << 16).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    out.extend_from_slice(name.as_bytes());
    let cd_size = u32::try_from(out.len()).expect("small archive") - cd_offset;

    out.extend_from_slice(&EOCD_SIG.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // this disk, the central directory's disk
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// black's console launcher script as uv writes it for a venv in
    /// `C:\Program Files\Py` (uv's template; its shebang is not quoted).
    const BLACK: &str = "#!C:\\Program Files\\Py\\Scripts\\python.exe\n# -*- coding: utf-8 -*-\nimport sys\nfrom black import patched_main\nif __name__ == \"__main__\":\n    if sys.argv[0].endswith(\"-script.pyw\"):\n        sys.argv[0] = sys.argv[0][:-11]\n    elif sys.argv[0].endswith(\".exe\"):\n        sys.argv[0] = sys.argv[0][:-4]\n    sys.exit(patched_main())\n";

    /// What distlib 0.4 (pip 26's vendored copy) `ScriptMaker._write_script` wrote for
    /// [`BLACK`] with `_is_nt` forced on, `os.linesep = "\r\n"`, `sys.platform = "win32"`,
    /// `SOURCE_DATE_EPOCH=315532800`, the launcher stubbed as `<launcher t>`, and the
    /// shebang `_get_shebang` builds on Windows for that interpreter.
    const DISTLIB_BLACK_EXE: &str = "3c6c61756e6368657220743e232122433a5c50726f6772616d2046696c65735c50795c536372697074735c707974686f6e2e657865220a0d0a504b03041400000000000000210049b4ca0d45010000450100000b0000005f5f6d61696e5f5f2e70792321433a5c50726f6772616d2046696c65735c50795c536372697074735c707974686f6e2e6578650a23202d2a2d20636f64696e673a207574662d38202d2a2d0a696d706f7274207379730a66726f6d20626c61636b20696d706f727420706174636865645f6d61696e0a6966205f5f6e616d655f5f203d3d20225f5f6d61696e5f5f223a0a202020206966207379732e617267765b305d2e656e64737769746828222d7363726970742e70797722293a0a20202020202020207379732e617267765b305d203d207379732e617267765b305d5b3a2d31315d0a20202020656c6966207379732e617267765b305d2e656e64737769746828222e65786522293a0a20202020202020207379732e617267765b305d203d207379732e617267765b305d5b3a2d345d0a202020207379732e6578697428706174636865645f6d61696e2829290a504b010214001400000000000000210049b4ca0d45010000450100000b00000000000000000000008001000000005f5f6d61696e5f5f2e7079504b05060000000001000100390000006e0100000000";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn bytes_are_distlibs() {
        let exe = launcher_exe(
            b"<launcher t>",
            r"C:\Program Files\Py\Scripts\python.exe",
            BLACK,
        );
        assert_eq!(exe, unhex(DISTLIB_BLACK_EXE));
    }

    #[test]
    fn parses_back() {
        let exe = launcher_exe(b"MZ\x90\0fake", r"C:\v\Scripts\pythonw.exe", "print(1)\n");
        let parsed = parse_launcher_exe(&exe).unwrap();
        assert_eq!(
            parsed,
            ParsedLauncher {
                launcher: b"MZ\x90\0fake",
                python: r"C:\v\Scripts\pythonw.exe".into(),
                name: "__main__.py".into(),
                script: b"print(1)\n",
            }
        );
        let quoted = launcher_exe(b"L", r"C:\a b\python.exe", "x");
        assert_eq!(
            parse_launcher_exe(&quoted).unwrap().python,
            r"C:\a b\python.exe"
        );
        assert_eq!(parse_launcher_exe(b"MZ not a launcher"), None);
        assert_eq!(parse_launcher_exe(&exe[..exe.len() - 1]), None);
    }

    #[test]
    fn archive_reads_as_a_zip() {
        use std::io::Read;
        let exe = launcher_exe(b"MZ launcher", r"C:\v\Scripts\python.exe", BLACK);
        // (a reader that, like Python's zipimport, allows data before the archive)
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(exe)).unwrap();
        assert_eq!(zip.len(), 1);
        let mut member = zip.by_name("__main__.py").unwrap();
        assert_eq!(member.compression(), zip::CompressionMethod::Stored);
        let mut text = String::new();
        member.read_to_string(&mut text).unwrap();
        assert_eq!(text, BLACK);
    }

    #[test]
    fn launcher_names_and_place() {
        let names = |p| Launchers::file_names(p).unwrap();
        assert_eq!(names("win-amd64"), ("t64.exe".into(), "w64.exe".into()));
        assert_eq!(
            names("win-arm64"),
            ("t64-arm.exe".into(), "w64-arm.exe".into())
        );
        assert_eq!(names("win32"), ("t32.exe".into(), "w32.exe".into()));
        assert!(Launchers::file_names("linux-x86_64").is_err());
        let dir = distlib_dir(Path::new("home"));
        assert!(dir.ends_with("Lib/site-packages/pip/_vendor/distlib"));
    }

    /// The first bytes of a PE file for `machine`: the `MZ` stub pointing at a `PE` header.
    fn pe(machine: u16) -> Vec<u8> {
        let mut exe = b"MZ".to_vec();
        exe.resize(0x3c, 0);
        exe.extend_from_slice(&0x40u32.to_le_bytes());
        exe.extend_from_slice(b"PE\0\0");
        exe.extend_from_slice(&machine.to_le_bytes());
        exe
    }

    #[test]
    fn platform_of_an_exe() {
        assert_eq!(pe_platform(&pe(0x8664)), Some("win-amd64"));
        assert_eq!(pe_platform(&pe(0xaa64)), Some("win-arm64"));
        assert_eq!(pe_platform(&pe(0x14c)), Some("win32"));
        assert_eq!(pe_platform(&pe(0x1234)), None);
        assert_eq!(pe_platform(b"\x7fELF"), None);
        assert_eq!(pe_platform(&pe(0x8664)[..0x44]), None);
    }

    #[test]
    fn launchers_of_a_venv() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("Python312");
        let distlib = distlib_dir(&home);
        std::fs::create_dir_all(&distlib).unwrap();
        std::fs::write(home.join("python.exe"), pe(0xaa64)).unwrap();
        std::fs::write(distlib.join("t64-arm.exe"), b"t").unwrap();
        std::fs::write(distlib.join("w64-arm.exe"), b"w").unwrap();
        let venv = dir.path().join("venv");
        std::fs::create_dir(&venv).unwrap();
        let cfg = format!(
            "home = {}\ninclude-system-site-packages = false\nversion = 3.12.4\n",
            home.display()
        );
        std::fs::write(venv.join("pyvenv.cfg"), cfg).unwrap();
        let l = for_venv(&venv).unwrap();
        assert_eq!(
            (l.console.as_slice(), l.gui.as_slice()),
            (&b"t"[..], &b"w"[..])
        );
        std::fs::write(venv.join("pyvenv.cfg"), "version = 3.12.4\n").unwrap();
        assert!(matches!(for_venv(&venv), Err(LauncherError::NoHome(_))));
    }

    /// pip's real console launcher runs what [`launcher_exe`] writes: the interpreter of the
    /// shebang, given the `.exe` itself and the arguments, and its exit status comes back.
    /// Windows only (the Windows check runs it under Wine). The "interpreter" is this test
    /// executable, whose [`launcher_child`] test writes the arguments it was given.
    #[cfg(windows)]
    #[test]
    fn pips_launcher_runs_it() {
        use std::io::Read;
        let dir = match crate::test_wheels::test_wheels_dir() {
            Ok(dir) => dir,
            Err(e) => return eprintln!("skipped: {e}"),
        };
        let Ok(wheel) = std::fs::File::open(dir.join("pip-26.3-py3-none-any.whl")) else {
            return eprintln!("skipped: no pip wheel in {}", dir.display());
        };
        let mut zip = zip::ZipArchive::new(wheel).unwrap();
        let mut t64 = Vec::new();
        zip.by_name("pip/_vendor/distlib/t64.exe")
            .unwrap()
            .read_to_end(&mut t64)
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let (probe, out) = (tmp.path().join("probe.exe"), tmp.path().join("args.txt"));
        let me = std::env::current_exe().unwrap();
        std::fs::write(
            &probe,
            launcher_exe(&t64, &me.to_string_lossy(), "unused\n"),
        )
        .unwrap();
        let child = "install::launcher::tests::launcher_child";
        let status = std::process::Command::new(&probe)
            .args(["--exact", child])
            .env("VENVFS_LAUNCHER_CHILD", &out)
            .status()
            .unwrap();
        assert!(status.success(), "{status}");
        let args = std::fs::read_to_string(&out).unwrap();
        let args: Vec<&str> = args.lines().collect();
        assert!(args[1].ends_with("probe.exe"), "{args:?}");
        assert_eq!(args[2..], ["--exact", child]);
    }

    /// The interpreter [`pips_launcher_runs_it`] starts through the launcher: with
    /// `VENVFS_LAUNCHER_CHILD` set, it writes its arguments there (else it does nothing).
    #[test]
    fn launcher_child() {
        if let Some(out) = std::env::var_os("VENVFS_LAUNCHER_CHILD") {
            let args: Vec<String> = std::env::args().collect();
            std::fs::write(out, args.join("\n")).unwrap();
        }
    }

    #[test]
    fn reads_pips_launchers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t64.exe"), b"console").unwrap();
        std::fs::write(dir.path().join("w64.exe"), b"gui").unwrap();
        let l = Launchers::read(dir.path(), "win-amd64").unwrap();
        assert_eq!(
            (l.for_script(false), l.for_script(true)),
            (&b"console"[..], &b"gui"[..])
        );
        let err = Launchers::read(dir.path(), "win32")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t32.exe") && err.contains("ensurepip"),
            "{err}"
        );
    }
}
