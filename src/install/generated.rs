//! The files venvfs writes into a venv's own directory (the upper layer) for one wheel, so
//! that together with the wheel's read-only layer the venv holds exactly what
//! `uv pip install --link-mode=copy` would have put there: the entry point launchers in
//! `bin/`, `.data/scripts` files with their `#!python` shebang rewritten, and the
//! `.dist-info` files an installer adds (`INSTALLER`, `REQUESTED`, `direct_url.json`,
//! `uv_cache.json`) with the rewritten `RECORD`.
//!
//! Everything here is a pure function of the wheel's metadata files and the venv's path.
//! Modes are those uv gives under the usual umask 022: 0o755 for what it writes in `bin/`,
//! 0o644 for the rest.
//!
//! A Windows venv ([`VenvOs::Windows`]) gets the same files in its own scheme
//! (`Scripts\`, `Lib\site-packages`): entry points become `NAME.exe` launchers (pip's
//! launcher executable with uv's script appended, see `launcher.rs`) and `#!python` lines
//! name `Scripts\python.exe` (or `pythonw.exe`) and end in `\r\n`, as uv writes them there.

use std::path::Path;

use super::entry_points::{
    parse_entry_points, reserved_script_name, with_versioned_pip, EntryPointError,
};
use super::launcher::{launcher_exe, Launchers};
use super::layout::{DataKind, Layout, OsName};
use super::record::{hash_row, parse_record, write_record, RecordError, RecordRow};
use super::script::{
    launcher_script, launcher_script_with, rewrite_script_shebang, rewrite_script_shebang_nt,
    script_replaced_by_entry_point, shebang_nt,
};
use crate::manifest::join_rel;
use crate::name::PackageName;

/// Mode of the scripts uv writes or installs in `bin/`.
pub const SCRIPT_MODE: u32 = 0o755;
/// Mode of the other files uv writes.
pub const FILE_MODE: u32 = 0o644;

/// A file of the wheel's `{prefix}.data/scripts/` directory.
#[derive(Debug, Clone, Copy)]
pub struct DataScript<'a> {
    /// Its file name (scripts are a flat directory).
    pub name: &'a str,
    pub content: &'a [u8],
    /// The mode the wheel's layer gives it in `bin/`. uv makes every script executable, so a
    /// script lacking an execute bit is written out again with [`SCRIPT_MODE`].
    pub mode: u32,
}

/// The OS family of the venv (its [`Layout`]), and on Windows the launcher executables its
/// entry points are wrapped in.
#[derive(Debug, Clone, Copy)]
pub enum VenvOs<'a> {
    Posix,
    Windows(&'a Launchers),
}

impl VenvOs<'_> {
    pub fn os_name(&self) -> OsName {
        match self {
            VenvOs::Posix => OsName::Posix,
            VenvOs::Windows(_) => OsName::Nt,
        }
    }
}

/// What the generated files of one wheel depend on.
#[derive(Debug, Clone, Copy)]
pub struct WheelInstall<'a> {
    /// The `{name}-{version}` prefix of the wheel's `.dist-info` (and `.data`) directory.
    pub dist_info_prefix: &'a str,
    /// The project name (`Name:` of METADATA; the prefix's name part will do): normalized, it
    /// names the directory `.data/headers` goes to.
    pub name: &'a str,
    /// The venv's Python version, `X.Y`.
    pub python_version: &'a str,
    /// The venv's absolute path, as uv would see it; its `bin/python` (`Scripts\python.exe`)
    /// goes in shebangs and launchers.
    pub venv: &'a Path,
    /// The venv's OS family: where files go and what launchers look like.
    pub os: VenvOs<'a>,
    /// The wheel's `.dist-info/WHEEL`.
    pub wheel: &'a str,
    /// The wheel's `.dist-info/RECORD`.
    pub record: &'a str,
    /// The wheel's `.dist-info/entry_points.txt`, if it has one.
    pub entry_points: Option<&'a str>,
    /// The wheel's files (not directories) and their sizes, if known. uv fixes RECORD when it
    /// unpacks a wheel: rows for files the archive lacks are dropped (and repeated rows), and
    /// files RECORD lacks get a row with their size and no hash. With `None`, RECORD is
    /// trusted as it is.
    pub members: Option<&'a [(String, u64)]>,
    /// The files of `.data/scripts`.
    pub data_scripts: &'a [DataScript<'a>],
    /// The installer named in `INSTALLER` (uv writes `uv`; venvfs writes `venvfs`).
    pub installer: &'a str,
    /// Whether to write `REQUESTED`. uv always does, for dependencies too.
    pub requested: bool,
    /// `direct_url.json`, if any: uv writes one for a wheel installed from a file, see
    /// [`direct_url_for_wheel_file`].
    pub direct_url: Option<&'a str>,
    /// `uv_cache.json`, if any: uv writes one for a wheel installed from a file, see
    /// [`uv_cache_json`].
    pub uv_cache: Option<&'a str>,
}

/// A generated file: (venv-relative path, content, mode).
pub type GeneratedFile = (String, Vec<u8>, u32);

/// The files to write in the venv's own directory for one wheel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Generated {
    /// (venv-relative path, content, mode), e.g. `bin/pip` or
    /// `lib/python3.11/site-packages/pip-26.3.dist-info/RECORD`. Each path appears once.
    pub files: Vec<GeneratedFile>,
    /// Venv-relative paths where the wheel's layer shows a file uv does not install: a
    /// `.data/scripts` file that an entry point of a related name replaces (`tool.exe` for an
    /// entry point `tool`). They must be hidden (whited out) in the venv.
    pub hidden: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GeneratedError {
    #[error(transparent)]
    EntryPoints(#[from] EntryPointError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("WHEEL: {0}")]
    Wheel(String),
    #[error("Python version {0:?} is not of the form X.Y")]
    PythonVersion(String),
    #[error("{path}: `.data` holds only purelib, platlib, headers, scripts and data directories")]
    UnknownDataKind { path: String },
    #[error("{path}: `.data/scripts` must hold only files, not directories")]
    ScriptsSubdir { path: String },
    #[error("{path}: `.` or `..` in a `.data` path")]
    UnsafePath { path: String },
    #[error("{path}: would install `bin/{name}`, a name reserved for the venv's interpreter (`{reserved}`)")]
    Reserved {
        path: String,
        name: String,
        reserved: String,
    },
    #[error("`.data/scripts/{name}`: no such row in RECORD")]
    NotInRecord { name: String },
    #[error("{path}: RECORD lists this script but its content was not given")]
    MissingScript { path: String },
}

/// All the generated files of one wheel.
pub fn generate(wheel: &WheelInstall) -> Result<Generated, GeneratedError> {
    generate_with_rows(wheel, parse_record(wheel.record)?)
}

/// [`generate`] for a caller that has parsed `wheel.record` already.
pub fn generate_with_rows(
    wheel: &WheelInstall,
    rows: Vec<RecordRow>,
) -> Result<Generated, GeneratedError> {
    let plan = plan(wheel, rows)?;
    let mut files = plan.files;
    let record_path = format!("{}/RECORD", plan.dist_info);
    push_file(
        &mut files,
        record_path,
        write_record(&plan.rows).into_bytes(),
        FILE_MODE,
    );
    Ok(Generated {
        files,
        hidden: plan.hidden,
    })
}

/// The RECORD uv writes for the installed wheel: the wheel's rows (fixed as uv fixes them
/// on unpacking, see [`WheelInstall::members`]) with `.data` paths mapped to where the files
/// land (`../../../bin/NAME`, `../../../include/site/pythonX.Y/NAME/...`, `../../../DATA`,
/// or plain for purelib/platlib), re-hashed for rewritten scripts, plus rows for the
/// launchers and the `.dist-info` files written (not for RECORD: the wheel's own row stays).
/// Scripts that an entry point replaces keep their `.data/scripts/...` row, as uv leaves it.
pub fn installed_record(wheel: &WheelInstall) -> Result<String, GeneratedError> {
    Ok(write_record(
        &plan(wheel, parse_record(wheel.record)?)?.rows,
    ))
}

/// `direct_url.json` as uv writes it for a wheel installed from the file `path` (absolute):
/// its `file://` URL, percent-encoded like the `url` crate does, and no hash.
pub fn direct_url_for_wheel_file(path: &Path) -> String {
    let mut url = String::from("file://");
    for component in path.components() {
        let bytes = match component {
            // (Windows: the drive, `C:`, as in `file:///C:/...`)
            std::path::Component::Prefix(p) => p.as_os_str().as_encoded_bytes(),
            std::path::Component::Normal(name) => name.as_encoded_bytes(),
            std::path::Component::ParentDir => b"..",
            _ => continue,
        };
        url.push('/');
        for &b in bytes {
            if b <= b' ' || b >= 0x7f || br##""#<>?`{}%\"##.contains(&b) {
                url.push_str(&format!("%{b:02X}"));
            } else {
                url.push(char::from(b));
            }
        }
    }
    format!(r#"{{"url":"{url}","archive_info":{{}}}}"#)
}

/// `uv_cache.json` as uv writes it for a wheel installed from a file: the file's ctime (uv's
/// cache key for local files).
pub fn uv_cache_json(ctime_secs: u64, ctime_nanos: u32) -> String {
    format!(
        r#"{{"timestamp":{{"secs_since_epoch":{ctime_secs},"nanos_since_epoch":{ctime_nanos}}},"commit":null,"tags":null,"env":{{}},"directories":{{}}}}"#
    )
}

struct Plan {
    dist_info: String,
    files: Vec<GeneratedFile>,
    hidden: Vec<String>,
    rows: Vec<RecordRow>,
}

/// `rows`: `w.record`, parsed.
fn plan(w: &WheelInstall, mut rows: Vec<RecordRow>) -> Result<Plan, GeneratedError> {
    check_wheel_version(w.wheel)?;
    let minor = w
        .python_version
        .split_once('.')
        .filter(|(major, _)| major.parse::<u8>().is_ok())
        .and_then(|(_, minor)| minor.parse::<u8>().ok())
        .ok_or_else(|| GeneratedError::PythonVersion(w.python_version.to_owned()))?;
    let layout = Layout::for_os(w.os.os_name(), w.python_version);
    let site = layout.site_packages();
    // (spelled for the venv's OS, not the host's: the same bytes wherever this runs)
    let python = std::path::PathBuf::from(layout.absolute(w.venv, &layout.python()));
    let python_nt = |gui| layout.absolute(w.venv, &layout.script_python(gui));
    let rel = |target: &str| relative_path(site, target);

    if let Some(members) = w.members {
        rows = heal_record(rows, members, w.dist_info_prefix);
    }
    let entry_points = match w.entry_points {
        Some(text) => parse_entry_points(text)?,
        None => Vec::new(),
    };
    let launchers = with_versioned_pip(&entry_points, minor);

    let mut files = Vec::new();
    let mut hidden = Vec::new();
    let mut added = Vec::new();
    let mut launcher_paths = Vec::new();
    for ep in &launchers {
        let target = layout.entry_point(&ep.name);
        let content = match w.os {
            VenvOs::Posix => launcher_script(ep, &python).into_bytes(),
            VenvOs::Windows(exes) => {
                let python = python_nt(ep.gui);
                let script = launcher_script_with(ep, &shebang_nt(&python));
                launcher_exe(exes.for_script(ep.gui), &python, &script)
            }
        };
        added.push(hash_row(&rel(&target), &content));
        launcher_paths.push(target.clone());
        push_file(&mut files, target, content, SCRIPT_MODE);
    }

    // `.data`: map each row to where its file lands.
    let data = format!("{}.data/", w.dist_info_prefix);
    let name = PackageName::new(w.name);
    let scripts_dir = format!("{}/", layout.scheme.scripts);
    let mut data_files_in_bin = Vec::new();
    let mut scripts_seen: Vec<String> = Vec::new();
    for row in rows.iter_mut() {
        let Some(rest) = row.path.strip_prefix(&data) else {
            continue;
        };
        let path = row.path.clone();
        let (kind, sub) = rest
            .split_once('/')
            .filter(|(_, sub)| !sub.is_empty())
            .ok_or_else(|| GeneratedError::UnknownDataKind { path: path.clone() })?;
        if sub
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(GeneratedError::UnsafePath { path });
        }
        let target = match DataKind::parse(kind) {
            Some(DataKind::Scripts) => {
                if sub.contains('/') {
                    return Err(GeneratedError::ScriptsSubdir { path });
                }
                check_bin_name(&path, sub)?;
                scripts_seen.push(sub.to_owned());
                if script_replaced_by_entry_point(sub, &launchers) {
                    if !launcher_paths.contains(&layout.script(sub)) {
                        hidden.push(layout.script(sub));
                    }
                    continue;
                }
                let script = w
                    .data_scripts
                    .iter()
                    .find(|s| s.name == sub)
                    .ok_or_else(|| GeneratedError::MissingScript { path: path.clone() })?;
                let target = layout.script(sub);
                let rewritten = match w.os {
                    VenvOs::Posix => rewrite_script_shebang(script.content, &python),
                    VenvOs::Windows(_) => rewrite_script_shebang_nt(
                        script.content,
                        &python_nt(false),
                        &python_nt(true),
                    ),
                };
                if let Some(content) = rewritten {
                    let hashed = hash_row("", &content);
                    (row.hash, row.size) = (hashed.hash, hashed.size);
                    push_file(&mut files, target.clone(), content, SCRIPT_MODE);
                } else if w.os.os_name() == OsName::Posix && script.mode & 0o111 != 0o111 {
                    push_file(
                        &mut files,
                        target.clone(),
                        script.content.to_vec(),
                        SCRIPT_MODE,
                    );
                }
                target
            }
            Some(DataKind::Data) => {
                let target = join_rel(&layout.data_dir(DataKind::Data, &name), sub);
                if let Some(file) = target
                    .strip_prefix(&scripts_dir)
                    .filter(|n| !n.contains('/'))
                {
                    check_bin_name(&path, file)?;
                    data_files_in_bin.push(target.clone());
                }
                target
            }
            Some(kind) => join_rel(&layout.data_dir(kind, &name), sub),
            None => return Err(GeneratedError::UnknownDataKind { path }),
        };
        row.path = rel(&target);
    }
    if let Some(script) = w
        .data_scripts
        .iter()
        .find(|s| !scripts_seen.iter().any(|n| n == s.name))
    {
        return Err(GeneratedError::NotInRecord {
            name: script.name.to_owned(),
        });
    }
    // uv installs `.data/data` after writing the launchers: a data file wins over a launcher.
    files.retain(|(path, _, _)| !data_files_in_bin.contains(path));

    let dist_info = format!("{site}/{}.dist-info", w.dist_info_prefix);
    let mut write = |name: &str, content: &[u8]| {
        added.push(hash_row(
            &format!("{}.dist-info/{name}", w.dist_info_prefix),
            content,
        ));
        push_file(
            &mut files,
            format!("{dist_info}/{name}"),
            content.to_vec(),
            FILE_MODE,
        );
    };
    if w.requested {
        write("REQUESTED", b"");
    }
    if let Some(direct_url) = w.direct_url {
        write("direct_url.json", direct_url.as_bytes());
    }
    if let Some(cache) = w.uv_cache {
        write("uv_cache.json", cache.as_bytes());
    }
    write("INSTALLER", w.installer.as_bytes());

    rows.extend(added);
    Ok(Plan {
        dist_info,
        files,
        hidden,
        rows,
    })
}

/// Refuse a file landing at `bin/NAME` that would shadow the venv's interpreter, as uv does.
fn check_bin_name(path: &str, name: &str) -> Result<(), GeneratedError> {
    let lower = name.to_ascii_lowercase();
    let stem = lower.strip_suffix(".exe").unwrap_or(&lower);
    match reserved_script_name(stem) {
        Some(reserved) => Err(GeneratedError::Reserved {
            path: path.to_owned(),
            name: name.to_owned(),
            reserved,
        }),
        None => Ok(()),
    }
}

fn push_file(files: &mut Vec<GeneratedFile>, path: String, content: Vec<u8>, mode: u32) {
    match files.iter_mut().find(|(p, _, _)| *p == path) {
        Some(slot) => *slot = (path, content, mode),
        None => files.push((path, content, mode)),
    }
}

/// RECORD as uv keeps it after unpacking: rows whose file is in the archive (each file's
/// first row; `./a` or `a/../b` spellings also match), plus a hashless row with its size for
/// every other file except the `.dist-info/RECORD.jws` and `RECORD.p7s` signatures.
fn heal_record(rows: Vec<RecordRow>, members: &[(String, u64)], prefix: &str) -> Vec<RecordRow> {
    let mut remaining: std::collections::HashMap<&str, Option<u64>> = members
        .iter()
        .map(|(p, s)| (p.as_str(), Some(*s)))
        .collect();
    let mut take = |path: &str| remaining.get_mut(path).and_then(Option::take).is_some();
    let mut healed: Vec<RecordRow> = rows
        .into_iter()
        .filter(|row| take(&row.path) || take(&normalize_path(&row.path)))
        .collect();
    let remaining: Vec<(&String, u64)> = members
        .iter()
        .filter_map(|(p, _)| Some((p, remaining.get(p.as_str()).copied().flatten()?)))
        .collect();
    let signatures = [
        format!("{prefix}.dist-info/RECORD.jws"),
        format!("{prefix}.dist-info/RECORD.p7s"),
    ];
    healed.extend(
        remaining
            .into_iter()
            .filter(|(p, _)| !signatures.contains(p))
            .map(|(path, size)| RecordRow {
                path: path.clone(),
                hash: None,
                size: Some(size),
            }),
    );
    healed
}

/// Lexical normalization of a `/` path: no empty or `.` components, `..` folded.
fn normalize_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

/// `target` relative to `base`, both venv-relative `/` paths (`../../../bin/pip` for
/// `bin/pip` from `lib/python3.11/site-packages`).
fn relative_path(base: &str, target: &str) -> String {
    let base = normalize_path(base);
    let target = normalize_path(target);
    let base: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    let target: Vec<&str> = target.split('/').filter(|p| !p.is_empty()).collect();
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut parts = vec![".."; base.len() - common];
    parts.extend(&target[common..]);
    parts.join("/")
}

/// `Wheel-Version` as uv checks it: present, `major.minor`, major 1 (or the ancient 0.1).
fn check_wheel_version(text: &str) -> Result<(), GeneratedError> {
    let version = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| *k == "Wheel-Version")
        .map(|(_, v)| v.trim());
    let Some((major, minor)) = version.and_then(|v| v.split_once('.')) else {
        return Err(GeneratedError::Wheel(format!(
            "invalid Wheel-Version {version:?}"
        )));
    };
    if major != "1" && (major, minor) != ("0", "1") {
        return Err(GeneratedError::Wheel(format!(
            "unsupported wheel major version {major} (expected 1)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::collections::BTreeSet;

    mod windows;

    #[test]
    fn helpers() {
        let site = "lib/python3.11/site-packages";
        assert_eq!(relative_path(site, "bin/pip"), "../../../bin/pip");
        assert_eq!(relative_path(site, &format!("{site}/a/b.py")), "a/b.py");
        assert_eq!(
            relative_path(site, "lib/python3.11/x/./y/../z"),
            "../x/z",
            "normalized like uv's relative_to"
        );
        assert_eq!(normalize_path("./a//b/../c/."), "a/c");
        assert_eq!(
            uv_cache_json(1795302344, 539293937),
            r#"{"timestamp":{"secs_since_epoch":1795302344,"nanos_since_epoch":539293937},"commit":null,"tags":null,"env":{},"directories":{}}"#
        );
        assert_eq!(
            direct_url_for_wheel_file(Path::new("/work/shared/wheels/pip-26.3-py3-none-any.whl")),
            r#"{"url":"file:///work/shared/wheels/pip-26.3-py3-none-any.whl","archive_info":{}}"#
        );
        // What uv 0.13.9 wrote for a wheel in a directory with awkward characters.
        assert_eq!(
            direct_url_for_wheel_file(Path::new(
                "/tmp/probe/a b+c%d[é]{x}^`~!$&'()*,;=@/probe-1.0-py3-none-any.whl"
            )),
            r#"{"url":"file:///tmp/probe/a%20b+c%25d[%C3%A9]%7Bx%7D^%60~!$&'()*,;=@/probe-1.0-py3-none-any.whl","archive_info":{}}"#
        );
        assert!(check_wheel_version("Wheel-Version: 1.0\nGenerator: x\n").is_ok());
        assert!(check_wheel_version("Wheel-Version: 1.9\n").is_ok());
        assert!(check_wheel_version("Wheel-Version: 0.1\n").is_ok());
        assert!(check_wheel_version("Wheel-Version: 2.0\n").is_err());
        assert!(check_wheel_version("Wheel-Version: 1\n").is_err());
        assert!(check_wheel_version("Generator: x\n\nWheel-Version: 1.0\n").is_err());
    }

    fn tiny_members() -> Vec<(&'static str, &'static [u8], u32)> {
        vec![
            ("tiny/__init__.py", b"def f(): pass\n", 0o644),
            (
                "tiny/cli.py",
                b"class main:\n  @staticmethod\n  def sub(): print('hi')\n",
                0o644,
            ),
            ("tiny/gui.py", b"def run(): pass\n", 0o644),
            ("tiny/a,b.py", b"# comma\n", 0o644),
            ("tiny/notinrecord.py", b"# not in record\n", 0o644),
            (
                "tiny_pkg-1.0.data/scripts/hello",
                b"#!python\nprint('hello')\n",
                0o644,
            ),
            (
                "tiny_pkg-1.0.data/scripts/hellow",
                b"#!pythonw -u\r\nprint('hellow')\n",
                0o644,
            ),
            (
                "tiny_pkg-1.0.data/scripts/plain.sh",
                b"#!/bin/sh\necho plain\n",
                0o644,
            ),
            (
                "tiny_pkg-1.0.data/scripts/execsh",
                b"#!/bin/sh\necho exec\n",
                0o755,
            ),
            ("tiny_pkg-1.0.data/scripts/short", b"#!py", 0o644),
            ("tiny_pkg-1.0.data/scripts/onlyshebang", b"#!python", 0o644),
            (
                "tiny_pkg-1.0.data/scripts/mycli",
                b"#!python\nshadowed by entry point\n",
                0o755,
            ),
            ("tiny_pkg-1.0.data/scripts/tinygui.exe", b"MZ fake\n", 0o644),
            ("tiny_pkg-1.0.data/headers/tiny.h", b"int x;\n", 0o644),
            ("tiny_pkg-1.0.data/headers/sub/tiny2.h", b"int y;\n", 0o644),
            ("tiny_pkg-1.0.data/data/share/tiny/x.txt", b"data\n", 0o644),
            ("tiny_pkg-1.0.data/purelib/tinypure.py", b"x=1\n", 0o644),
            ("tiny_pkg-1.0.data/platlib/tinyplat.py", b"y=1\n", 0o644),
            (
                "tiny_pkg-1.0.dist-info/METADATA",
                b"Metadata-Version: 2.1\nName: Tiny_Pkg\nVersion: 1.0\n",
                0o644,
            ),
            ("tiny_pkg-1.0.dist-info/WHEEL", TINY_WHEEL.as_bytes(), 0o644),
            (
                "tiny_pkg-1.0.dist-info/entry_points.txt",
                TINY_ENTRY_POINTS.as_bytes(),
                0o644,
            ),
            (
                "tiny_pkg-1.0.dist-info/RECORD",
                TINY_RECORD.as_bytes(),
                0o644,
            ),
        ]
    }

    const TINY_WHEEL: &str =
        "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: false\nTag: py3-none-any\n";
    const TINY_ENTRY_POINTS: &str = "# comment\n[console_scripts]\nmycli = tiny.cli:main.sub\nex =tiny:f [extra1, extra2]\n[gui_scripts]\ntinygui=tiny.gui:run\n[other.group]\nnot = a.script:x\n";
    /// The hand-made wheel's RECORD: it lists a file the wheel lacks (`tiny/ghost.py`) and
    /// misses one it has (`tiny/notinrecord.py`).
    const TINY_RECORD: &str = r#"tiny/__init__.py,sha256=ty97UXtvhJZ9qsy9xdZSPKU2S57h6h-MpCvcTGtDkTY,14
tiny/cli.py,sha256=In6_FmtI68lP2v672HHm7L8LNSsswe6LU6HbgKWI4Wo,53
tiny/gui.py,sha256=yDJ805kCTnY0QQPThZDY6cCKjd5r1FDvwdSBlsTFh8c,16
"tiny/a,b.py",sha256=uAmrzRz5F9I3LGSpOp_Fv0R3rBFfuGf9bNdOkOD3J8c,8
tiny_pkg-1.0.data/scripts/hello,sha256=xjssbYZmuRvR0kEj8uz-NEgDPdfhXCfsViTRmYSzslE,24
tiny_pkg-1.0.data/scripts/hellow,sha256=uNHW-3yWYilYOuUGENDXCRWFagnq1AGHb6_RiDFLz3A,30
tiny_pkg-1.0.data/scripts/plain.sh,sha256=ldxifzyi1Njz3HBf9YgZo79oLX81835tpahJS5ERrSE,21
tiny_pkg-1.0.data/scripts/execsh,sha256=W7EQvc9JyT9Nrd0mc08LX4u-YI5fmZyjStr383OjNUo,20
tiny_pkg-1.0.data/scripts/short,sha256=Ql2WIRI8I7HZtLlk4FVA2wKnrZjmkCOSqCuenAKo_X4,4
tiny_pkg-1.0.data/scripts/onlyshebang,sha256=23z1xlLXtCQ4G32Uv1L25YtZhNcRnCfyDXi8OftMxAE,8
tiny_pkg-1.0.data/scripts/mycli,sha256=2mTTubqMZ1TG_o0K3g8lHG8XQ7crYb9V8sG1gu2gy6c,33
tiny_pkg-1.0.data/scripts/tinygui.exe,sha256=Z9zjTx_I3AlFtjHZ1s32XK5X9KS_P_xj4g7FbX0h6_A,8
tiny_pkg-1.0.data/headers/tiny.h,sha256=fHJfMIVKRgM92U9yisawjK8QhFmTzT7UjkAHnNsKdqY,7
tiny_pkg-1.0.data/headers/sub/tiny2.h,sha256=S5gE_b0eY2FSGiodYkFJ0ThHlLFp6tOFfXIzkmfMFTo,7
tiny_pkg-1.0.data/data/share/tiny/x.txt,sha256=Zmey0aq2oAyqWu5a-K2fFGXlZ6vxwgnRVyfVez6Pbl8,5
tiny_pkg-1.0.data/purelib/tinypure.py,sha256=mHUu4o1UhL3CgU-3CttqCy-zH2qbjueugf0vyc8wCzs,4
tiny_pkg-1.0.data/platlib/tinyplat.py,sha256=3z95ijk7uMjBgijXWEK0spML57Qm4ecLzhYX5nZi8Jg,4
tiny_pkg-1.0.dist-info/METADATA,sha256=DMnwHzvbCa8BBIXReaue5xxVJM8HTn2BlJvWLUSdlv4,50
tiny_pkg-1.0.dist-info/WHEEL,sha256=ygjQAJ4XAt54gn-uFPahOstLssc5KfifuL8gs2FeDzc,76
tiny_pkg-1.0.dist-info/entry_points.txt,sha256=NTc3krWibSs19se_UoqMXbxUBHVEAOQyBNzKH0634Fk,148
tiny/ghost.py,sha256=abc,3
tiny_pkg-1.0.dist-info/RECORD,,
"#;

    /// The RECORD uv 0.13.9 wrote installing the wheel from `/tmp/tw` into the venv `/tmp/y`.
    const TINY_UV_RECORD: &str = r#"../../../bin/ex,sha256=XS01d3bxNCI7Lmb-Gs6-nEESlq80A09ZsZE5yJtPHxA,281
../../../bin/execsh,sha256=W7EQvc9JyT9Nrd0mc08LX4u-YI5fmZyjStr383OjNUo,20
../../../bin/hello,sha256=yAapLML08IWon2negRaVLE_TZXt49PUQ0GSpXgS8Gx0,35
../../../bin/hellow,sha256=mwygBB0gOnCo5AGmrgwJcLCvpEnMYc5_ePjPJk9JYvU,36
../../../bin/mycli,sha256=E11Wkvg9il2ArxwDEw_Sr9lbJtCcI2AN_muT_y9KN9Q,295
../../../bin/onlyshebang,sha256=rSJu092zKBvjrDTffML5YbJ6anDcUcWFxKbKGKalIVc,20
../../../bin/plain.sh,sha256=ldxifzyi1Njz3HBf9YgZo79oLX81835tpahJS5ERrSE,21
../../../bin/short,sha256=Ql2WIRI8I7HZtLlk4FVA2wKnrZjmkCOSqCuenAKo_X4,4
../../../bin/tinygui,sha256=7n9JjBiKIqkocRlLNY2VUfye_EFXowfJ68XHE643Hn4,289
../../../include/site/python3.11/tiny-pkg/sub/tiny2.h,sha256=S5gE_b0eY2FSGiodYkFJ0ThHlLFp6tOFfXIzkmfMFTo,7
../../../include/site/python3.11/tiny-pkg/tiny.h,sha256=fHJfMIVKRgM92U9yisawjK8QhFmTzT7UjkAHnNsKdqY,7
../../../share/tiny/x.txt,sha256=Zmey0aq2oAyqWu5a-K2fFGXlZ6vxwgnRVyfVez6Pbl8,5
tiny/__init__.py,sha256=ty97UXtvhJZ9qsy9xdZSPKU2S57h6h-MpCvcTGtDkTY,14
"tiny/a,b.py",sha256=uAmrzRz5F9I3LGSpOp_Fv0R3rBFfuGf9bNdOkOD3J8c,8
tiny/cli.py,sha256=In6_FmtI68lP2v672HHm7L8LNSsswe6LU6HbgKWI4Wo,53
tiny/gui.py,sha256=yDJ805kCTnY0QQPThZDY6cCKjd5r1FDvwdSBlsTFh8c,16
tiny/notinrecord.py,,16
tiny_pkg-1.0.data/scripts/mycli,sha256=2mTTubqMZ1TG_o0K3g8lHG8XQ7crYb9V8sG1gu2gy6c,33
tiny_pkg-1.0.data/scripts/tinygui.exe,sha256=Z9zjTx_I3AlFtjHZ1s32XK5X9KS_P_xj4g7FbX0h6_A,8
tiny_pkg-1.0.dist-info/INSTALLER,sha256=5hhM4Q4mYTT9z6QB6PGpUAW81PGNFrYrdXMj4oM_6ak,2
tiny_pkg-1.0.dist-info/METADATA,sha256=DMnwHzvbCa8BBIXReaue5xxVJM8HTn2BlJvWLUSdlv4,50
tiny_pkg-1.0.dist-info/RECORD,,
tiny_pkg-1.0.dist-info/REQUESTED,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0
tiny_pkg-1.0.dist-info/WHEEL,sha256=ygjQAJ4XAt54gn-uFPahOstLssc5KfifuL8gs2FeDzc,76
tiny_pkg-1.0.dist-info/direct_url.json,sha256=rbiBLGZ8hNFwjJIF_f3JxOpQ6AQ_urrghghK9gBdJq4,72
tiny_pkg-1.0.dist-info/entry_points.txt,sha256=NTc3krWibSs19se_UoqMXbxUBHVEAOQyBNzKH0634Fk,148
tiny_pkg-1.0.dist-info/uv_cache.json,sha256=TvxY_u2Pig0QpFAq-WSYjweIbK-oEgZkpxXpC4sfbwc,127
tinyplat.py,sha256=3z95ijk7uMjBgijXWEK0spML57Qm4ecLzhYX5nZi8Jg,4
tinypure.py,sha256=mHUu4o1UhL3CgU-3CttqCy-zH2qbjueugf0vyc8wCzs,4
"#;

    /// Every generated file outside `RECORD` has the row RECORD gives it (relative to
    /// site-packages), and the modes are uv's.
    fn assert_files_match_record(g: &Generated, site: &str) {
        let (record_path, record, _) = g
            .files
            .iter()
            .find(|(p, _, _)| p.ends_with(".dist-info/RECORD"))
            .expect("RECORD generated");
        assert!(record_path.starts_with(site));
        let rows = parse_record(std::str::from_utf8(record).unwrap()).unwrap();
        for (path, content, mode) in &g.files {
            if path == record_path {
                continue;
            }
            let want = hash_row(&relative_path(site, path), content);
            assert!(rows.contains(&want), "{path}: no row {want:?}");
            let expected_mode = if path.starts_with("bin/") || path.starts_with("Scripts/") {
                0o755
            } else {
                0o644
            };
            assert_eq!(*mode, expected_mode, "{path}");
        }
    }

    // The expected files are what uv writes on Linux: a POSIX venv (`bin/`, shebang lines);
    // Windows venvs are in `windows.rs`. Both are checked on every host.
    #[test]
    fn tiny_wheel_like_uv() {
        let members = tiny_members();
        let sizes: Vec<(String, u64)> = members
            .iter()
            .map(|(p, c, _)| (p.to_string(), c.len() as u64))
            .collect();
        let scripts: Vec<DataScript> = members
            .iter()
            .filter_map(|(p, c, m)| {
                Some(DataScript {
                    name: p.strip_prefix("tiny_pkg-1.0.data/scripts/")?,
                    content: c,
                    mode: *m,
                })
            })
            .collect();
        let direct_url =
            direct_url_for_wheel_file(Path::new("/tmp/tw/tiny_pkg-1.0-py3-none-any.whl"));
        let cache = uv_cache_json(1795307116, 151010618);
        let install = WheelInstall {
            dist_info_prefix: "tiny_pkg-1.0",
            name: "Tiny_Pkg",
            python_version: "3.11",
            venv: Path::new("/tmp/y"),
            os: VenvOs::Posix,
            wheel: TINY_WHEEL,
            record: TINY_RECORD,
            entry_points: Some(TINY_ENTRY_POINTS),
            members: Some(&sizes),
            data_scripts: &scripts,
            installer: "uv",
            requested: true,
            direct_url: Some(&direct_url),
            uv_cache: Some(&cache),
        };
        assert_eq!(installed_record(&install).unwrap(), TINY_UV_RECORD);

        let g = generate(&install).unwrap();
        let site = "lib/python3.11/site-packages";
        assert_files_match_record(&g, site);
        let paths: BTreeSet<&str> = g.files.iter().map(|(p, _, _)| p.as_str()).collect();
        let di = "lib/python3.11/site-packages/tiny_pkg-1.0.dist-info";
        let expected: BTreeSet<String> = [
            "bin/mycli",
            "bin/ex",
            "bin/tinygui",
            "bin/hello",
            "bin/hellow",
            "bin/onlyshebang",
            // Installed unchanged, but they lack the execute bits uv adds.
            "bin/plain.sh",
            "bin/short",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(
            [
                "REQUESTED",
                "direct_url.json",
                "uv_cache.json",
                "INSTALLER",
                "RECORD",
            ]
            .iter()
            .map(|n| format!("{di}/{n}")),
        )
        .collect();
        assert_eq!(paths, expected.iter().map(String::as_str).collect());
        assert_eq!(g.hidden, ["bin/tinygui.exe"]);
        let file = |p: &str| &g.files.iter().find(|(q, _, _)| q == p).unwrap().1;
        assert_eq!(
            file("bin/hellow"),
            b"#!/tmp/y/bin/python\nprint('hellow')\n"
        );
        assert_eq!(file("bin/short"), b"#!py");

        // Without the member list, RECORD is taken as it is.
        let trusting = WheelInstall {
            members: None,
            ..install
        };
        let record = installed_record(&trusting).unwrap();
        assert!(record.contains("tiny/ghost.py,sha256=abc,3\n"));
        assert!(!record.contains("notinrecord"));

        // venvfs's own choices: no REQUESTED, its own INSTALLER, nothing from a path.
        let venvfs = WheelInstall {
            installer: "venvfs",
            requested: false,
            direct_url: None,
            uv_cache: None,
            ..install
        };
        let g = generate(&venvfs).unwrap();
        assert_files_match_record(&g, site);
        let launcher = &g.files.iter().find(|(p, _, _)| p == "bin/mycli").unwrap().1;
        assert_eq!(
            file("bin/mycli"),
            launcher,
            "same launcher whatever the metadata"
        );
        let dist_info: Vec<&str> = g
            .files
            .iter()
            .filter_map(|(p, _, _)| p.strip_prefix(&format!("{di}/")))
            .collect();
        assert_eq!(dist_info, ["INSTALLER", "RECORD"]);
        assert_eq!(
            g.files
                .iter()
                .find(|(p, _, _)| p.ends_with("INSTALLER"))
                .unwrap()
                .1,
            b"venvfs"
        );
    }

    #[test]
    fn data_errors() {
        let wheel = "Wheel-Version: 1.0\n";
        let run = |record: &str, scripts: &[DataScript]| {
            generate(&WheelInstall {
                dist_info_prefix: "p-1",
                name: "p",
                python_version: "3.12",
                venv: Path::new("/v"),
                os: VenvOs::Posix,
                wheel,
                record,
                entry_points: None,
                members: None,
                data_scripts: scripts,
                installer: "venvfs",
                requested: true,
                direct_url: None,
                uv_cache: None,
            })
        };
        let script = |name| DataScript {
            name,
            content: b"#!python\n",
            mode: 0o644,
        };
        assert!(matches!(
            run("p-1.data/weird/x,,\n", &[]),
            Err(GeneratedError::UnknownDataKind { .. })
        ));
        assert!(matches!(
            run("p-1.data/x,,\n", &[]),
            Err(GeneratedError::UnknownDataKind { .. })
        ));
        assert!(matches!(
            run("p-1.data/scripts/d/x,,\n", &[]),
            Err(GeneratedError::ScriptsSubdir { .. })
        ));
        assert!(matches!(
            run("p-1.data/data/../../etc/x,,\n", &[]),
            Err(GeneratedError::UnsafePath { .. })
        ));
        assert!(matches!(
            run(
                "p-1.data/scripts/Python3.12.exe,,\n",
                &[script("Python3.12.exe")]
            ),
            Err(GeneratedError::Reserved { .. })
        ));
        assert!(matches!(
            run("p-1.data/data/bin/python,,\n", &[]),
            Err(GeneratedError::Reserved { .. })
        ));
        assert!(matches!(
            run("p-1.data/scripts/a,,\n", &[]),
            Err(GeneratedError::MissingScript { .. })
        ));
        assert!(matches!(
            run("", &[script("a")]),
            Err(GeneratedError::NotInRecord { .. })
        ));
        assert!(matches!(
            generate(&WheelInstall {
                python_version: "3",
                ..run_args()
            }),
            Err(GeneratedError::PythonVersion(_))
        ));
        // A `.data/data` file landing in `bin/` wins over a launcher of the same name.
        let g = generate(&WheelInstall {
            record: "p-1.data/data/bin/tool,sha256=x,1\n",
            entry_points: Some("[console_scripts]\ntool = m:f\n"),
            ..run_args()
        })
        .unwrap();
        assert!(g.files.iter().all(|(p, _, _)| p != "bin/tool"));
        let record = std::str::from_utf8(&g.files.last().unwrap().1).unwrap();
        let tool_rows = record
            .lines()
            .filter(|l| l.starts_with("../../../bin/tool,"));
        assert_eq!(tool_rows.count(), 2, "{record}");
        assert!(record.contains("../../../bin/tool,sha256=x,1\n"));
    }

    fn run_args() -> WheelInstall<'static> {
        WheelInstall {
            dist_info_prefix: "p-1",
            name: "p",
            python_version: "3.12",
            venv: Path::new("/v"),
            os: VenvOs::Posix,
            wheel: "Wheel-Version: 1.0\n",
            record: "",
            entry_points: None,
            members: None,
            data_scripts: &[],
            installer: "venvfs",
            requested: true,
            direct_url: None,
            uv_cache: None,
        }
    }

    /// A real wheel of the test set (`crate::test_wheels`): (dist-info prefix, files with
    /// content and the mode venvfs's layer gives them), or `None` if the wheels are not there.
    fn read_wheel(file: &str) -> Option<(String, Vec<GeneratedFile>)> {
        use std::io::Read;
        let dir = match crate::test_wheels::test_wheels_dir() {
            Ok(dir) => dir,
            Err(e) => {
                eprintln!("skipped: {e}");
                return None;
            }
        };
        let path = dir.join(file);
        let Ok(f) = std::fs::File::open(&path) else {
            eprintln!("skipped: {} is not there", path.display());
            return None;
        };
        let mut zip = zip::ZipArchive::new(f).unwrap();
        let mut files = Vec::new();
        for i in 0..zip.len() {
            let mut m = zip.by_index(i).unwrap();
            if m.is_dir() {
                continue;
            }
            let mut content = Vec::new();
            m.read_to_end(&mut content).unwrap();
            let mode = if m.unix_mode().unwrap_or(0) & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            files.push((m.name().unwrap().into_owned(), content, mode));
        }
        let prefix = files
            .iter()
            .find_map(|(n, _, _)| n.split('/').next()?.strip_suffix(".dist-info"))
            .map(str::to_owned)
            .unwrap();
        Some((prefix, files))
    }

    fn sha256_hex(text: &str) -> String {
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Generate for a wheel of `/work/shared/wheels` as uv 0.13.9 installed it (from that
    /// directory, into the venv `/tmp/z`).
    fn real_wheel(file: &str) -> Option<(String, Generated)> {
        let (prefix, files) = read_wheel(file)?;
        let text = |name: &str| {
            let path = format!("{prefix}.dist-info/{name}");
            files
                .iter()
                .find(|(n, _, _)| *n == path)
                .map(|(_, c, _)| String::from_utf8(c.clone()).unwrap())
        };
        let (wheel, record, entry_points) = (
            text("WHEEL").unwrap(),
            text("RECORD").unwrap(),
            text("entry_points.txt"),
        );
        let sizes: Vec<(String, u64)> = files
            .iter()
            .map(|(n, c, _)| (n.clone(), c.len() as u64))
            .collect();
        let scripts_dir = format!("{prefix}.data/scripts/");
        let scripts: Vec<DataScript> = files
            .iter()
            .filter_map(|(n, c, m)| {
                Some(DataScript {
                    name: n.strip_prefix(&scripts_dir)?,
                    content: c,
                    mode: *m,
                })
            })
            .collect();
        let direct_url = direct_url_for_wheel_file(&Path::new("/work/shared/wheels").join(file));
        // The ctime of the wheels when uv installed them.
        let cache = uv_cache_json(1795302344, 539293937);
        let g = generate(&WheelInstall {
            dist_info_prefix: &prefix,
            name: prefix.split('-').next().unwrap(),
            python_version: "3.11",
            venv: Path::new("/tmp/z"),
            os: VenvOs::Posix,
            wheel: &wheel,
            record: &record,
            entry_points: entry_points.as_deref(),
            members: Some(&sizes),
            data_scripts: &scripts,
            installer: "uv",
            requested: true,
            direct_url: Some(&direct_url),
            uv_cache: Some(&cache),
        })
        .unwrap();
        assert_files_match_record(&g, "lib/python3.11/site-packages");
        let record = g
            .files
            .iter()
            .find(|(p, _, _)| {
                *p == format!("lib/python3.11/site-packages/{prefix}.dist-info/RECORD")
            })
            .map(|(_, c, _)| String::from_utf8(c.clone()).unwrap())
            .unwrap();
        Some((record, g))
    }

    // The expected files are what uv writes on Linux: a POSIX venv (`bin/`, shebang lines);
    // Windows venvs are in `windows.rs`. Both are checked on every host.
    #[test]
    fn pip_like_uv() {
        let Some((record, g)) = real_wheel("pip-26.3-py3-none-any.whl") else {
            return;
        };
        // The rows uv added to pip's own (all of which it kept).
        let (_, files) = read_wheel("pip-26.3-py3-none-any.whl").unwrap();
        let wheel_record = &files
            .iter()
            .find(|(n, _, _)| n == "pip-26.3.dist-info/RECORD")
            .unwrap()
            .1;
        let wheel_rows: BTreeSet<RecordRow> =
            parse_record(std::str::from_utf8(wheel_record).unwrap())
                .unwrap()
                .into_iter()
                .collect();
        let ours: BTreeSet<RecordRow> = parse_record(&record).unwrap().into_iter().collect();
        let added: BTreeSet<RecordRow> = ours.difference(&wheel_rows).cloned().collect();
        let uv_added: BTreeSet<RecordRow> = parse_record(
            "../../../bin/pip,sha256=T_WOHFodaYFWsXtnVF4eLiFVukePTcCVcfHL58gYWEU,303
../../../bin/pip3,sha256=T_WOHFodaYFWsXtnVF4eLiFVukePTcCVcfHL58gYWEU,303
../../../bin/pip3.11,sha256=T_WOHFodaYFWsXtnVF4eLiFVukePTcCVcfHL58gYWEU,303
pip-26.3.dist-info/INSTALLER,sha256=5hhM4Q4mYTT9z6QB6PGpUAW81PGNFrYrdXMj4oM_6ak,2
pip-26.3.dist-info/REQUESTED,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0
pip-26.3.dist-info/direct_url.json,sha256=26LIBc2y8-YQJe8sAbab1GaF1uOAbF3svPxshA39ZVc,80
pip-26.3.dist-info/uv_cache.json,sha256=waAYtpPMzTenM1ceqCU_LpgY4VxeHr1VZXB5Hnm8lkI,127
",
        )
        .unwrap()
        .into_iter()
        .collect();
        assert_eq!(added, uv_added);
        assert!(wheel_rows.is_subset(&ours));
        // And byte for byte: the SHA-256 of the RECORD uv wrote.
        assert_eq!(
            sha256_hex(&record),
            "d9c610a0fb34501743844882b0a4c7ae0781e490b4be03ff0fa79b885fe8322b"
        );
        let pip = &g.files.iter().find(|(p, _, _)| p == "bin/pip").unwrap().1;
        assert!(pip.starts_with(b"#!/tmp/z/bin/python\n# -*- coding: utf-8 -*-\n"));
        assert!(g.hidden.is_empty());
    }

    // The expected files are what uv writes on Linux: a POSIX venv (`bin/`, shebang lines);
    // Windows venvs are in `windows.rs`. Both are checked on every host.
    #[test]
    fn numpy_and_ipykernel_like_uv() {
        // SHA-256 of the RECORD files uv wrote.
        for (wheel, digest, bin) in [
            (
                "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
                "383820ebd087ab3c28af4a93dd7e6a8cd5ffacd7dfeaeef7e1fe1581ef28ea31",
                &["bin/f2py", "bin/numpy-config"][..],
            ),
            (
                "ipykernel-7.4.0-py3-none-any.whl",
                "5503a2f4600341c627e8b81a3f1af21099ea9ef2e0d4422fccabff46e9bb55ed",
                &[][..],
            ),
        ] {
            let Some((record, g)) = real_wheel(wheel) else {
                return;
            };
            assert_eq!(sha256_hex(&record), digest, "{wheel}");
            let generated_bin: Vec<&str> = g
                .files
                .iter()
                .map(|(p, _, _)| p.as_str())
                .filter(|p| p.starts_with("bin/"))
                .collect();
            assert_eq!(generated_bin, bin);
        }
    }
}
