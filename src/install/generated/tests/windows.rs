//! The generated files of a Windows venv, checked on any host.
//!
//! uv cannot run on Windows here, so the expectation is uv's RECORD for the same wheel on
//! Linux (`TINY_UV_RECORD`, written by uv 0.13.9) moved to the Windows scheme the way uv's
//! Windows code paths move it: `bin/` becomes `Scripts/` (two levels up from
//! `Lib/site-packages` instead of three), entry points become `NAME.exe`, and the files uv
//! writes itself (launchers, rewritten `#!python` scripts) are hashed from their new content,
//! whose format is checked by parsing it back.

use super::*;
use crate::install::launcher::{parse_launcher_exe, Launchers};

const VENV: &str = r"C:\Users\me\proj\.venv";
const PYTHON: &str = r"C:\Users\me\proj\.venv\Scripts\python.exe";
const PYTHONW: &str = r"C:\Users\me\proj\.venv\Scripts\pythonw.exe";

fn stub_launchers() -> Launchers {
    Launchers {
        console: b"MZ<t64.exe>".to_vec(),
        gui: b"MZ<w64.exe>".to_vec(),
    }
}

/// uv's RECORD row path for the same file on Windows.
fn windows_path(linux: &str) -> String {
    if let Some(name) = linux.strip_prefix("../../../bin/") {
        return format!("../../Scripts/{name}");
    }
    match linux.strip_prefix("../../../") {
        Some(rest) => format!("../../{rest}"),
        None => linux.to_owned(),
    }
}

fn file<'g>(g: &'g Generated, path: &str) -> &'g [u8] {
    &g.files
        .iter()
        .find(|(p, _, _)| p == path)
        .unwrap_or_else(|| panic!("{path} not generated"))
        .1
}

#[test]
fn tiny_wheel_in_a_windows_venv() {
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
    let direct_url = direct_url_for_wheel_file(Path::new("/tmp/tw/tiny_pkg-1.0-py3-none-any.whl"));
    let cache = uv_cache_json(1795307116, 151010618);
    let launchers = stub_launchers();
    let install = WheelInstall {
        dist_info_prefix: "tiny_pkg-1.0",
        name: "Tiny_Pkg",
        python_version: "3.11",
        venv: Path::new(VENV),
        os: VenvOs::Windows(&launchers),
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
    let g = generate(&install).unwrap();
    let site = "Lib/site-packages";
    assert_files_match_record(&g, site);

    let paths: BTreeSet<&str> = g.files.iter().map(|(p, _, _)| p.as_str()).collect();
    let di = "Lib/site-packages/tiny_pkg-1.0.dist-info";
    let expected: BTreeSet<String> = [
        "Scripts/mycli.exe",
        "Scripts/ex.exe",
        "Scripts/tinygui.exe",
        "Scripts/hello",
        "Scripts/hellow",
        "Scripts/onlyshebang",
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
    // `.data/scripts/mycli` is replaced by the entry point's `mycli.exe`, so the layer's
    // `Scripts/mycli` must not show; `tinygui.exe` is overwritten by the launcher itself.
    assert_eq!(g.hidden, ["Scripts/mycli"]);

    // `#!python` lines name the venv's interpreter (`pythonw.exe` for `#!pythonw`), CRLF.
    assert_eq!(
        file(&g, "Scripts/hello"),
        format!("#!{PYTHON}\r\nprint('hello')\n").as_bytes()
    );
    assert_eq!(
        file(&g, "Scripts/hellow"),
        format!("#!{PYTHONW}\r\nprint('hellow')\n").as_bytes()
    );
    assert_eq!(
        file(&g, "Scripts/onlyshebang"),
        format!("#!{PYTHON}\r\n").as_bytes()
    );

    // Launchers: pip's console or GUI executable, the interpreter, uv's script.
    for (exe, launcher, python, import, call) in [
        ("mycli", "MZ<t64.exe>", PYTHON, "main", "main.sub"),
        ("ex", "MZ<t64.exe>", PYTHON, "f", "f"),
        ("tinygui", "MZ<w64.exe>", PYTHONW, "run", "run"),
    ] {
        let bytes = file(&g, &format!("Scripts/{exe}.exe"));
        let parsed = parse_launcher_exe(bytes).unwrap();
        assert_eq!(parsed.launcher, launcher.as_bytes(), "{exe}");
        assert_eq!(parsed.python, python, "{exe}");
        assert_eq!(parsed.name, "__main__.py");
        let script = std::str::from_utf8(parsed.script).unwrap();
        assert!(
            script.starts_with(&format!("#!{python}\n# -*- coding: utf-8 -*-\n")),
            "{script}"
        );
        assert!(script.contains(&format!(" import {import}\n")), "{script}");
        assert!(
            script.ends_with(&format!("sys.exit({call}())\n")),
            "{script}"
        );
    }

    // RECORD: uv's Linux rows in the Windows scheme, re-hashed where the content is
    // uv's own (launchers and rewritten scripts), the same elsewhere.
    let record = installed_record(&install).unwrap();
    let ours: BTreeSet<RecordRow> = parse_record(&record).unwrap().into_iter().collect();
    let launchers_of = ["ex", "mycli", "tinygui"];
    let expected: BTreeSet<RecordRow> = parse_record(TINY_UV_RECORD)
        .unwrap()
        .into_iter()
        .map(|row| {
            let mut path = windows_path(&row.path);
            if let Some(name) = path.strip_prefix("../../Scripts/") {
                if launchers_of.contains(&name) {
                    path = format!("{path}.exe");
                }
            }
            let target = format!("{site}/{path}");
            let target = normalize_path(&target);
            match g.files.iter().find(|(p, _, _)| *p == target) {
                Some((_, content, _)) if !path.ends_with("RECORD") => hash_row(&path, content),
                _ => RecordRow { path, ..row },
            }
        })
        .collect();
    assert_eq!(ours, expected);
    // (rows whose content did not change kept uv's hashes)
    assert!(record.contains(
        "../../Scripts/plain.sh,sha256=ldxifzyi1Njz3HBf9YgZo79oLX81835tpahJS5ERrSE,21\n"
    ));
    assert!(record.contains("../../include/site/python3.11/tiny-pkg/tiny.h,"));
    assert!(record.contains("../../share/tiny/x.txt,"));
}

#[test]
fn entry_points_need_launchers_only_on_windows() {
    let launchers = stub_launchers();
    let eps = "[console_scripts]\ntool.py = m:f\n";
    let args = WheelInstall {
        entry_points: Some(eps),
        venv: Path::new(r"C:\v"),
        os: VenvOs::Windows(&launchers),
        ..run_args()
    };
    let g = generate(&args).unwrap();
    // `.py` dropped from the launcher's name, as uv and pip do on Windows.
    let exe = parse_launcher_exe(file(&g, "Scripts/tool.exe")).unwrap();
    assert_eq!(exe.python, r"C:\v\Scripts\python.exe");
    let record = std::str::from_utf8(file(&g, "Lib/site-packages/p-1.dist-info/RECORD")).unwrap();
    assert!(
        record.starts_with("../../Scripts/tool.exe,sha256="),
        "{record}"
    );
    // The same wheel in a POSIX venv keeps the name.
    let posix = generate(&WheelInstall {
        entry_points: Some(eps),
        ..run_args()
    })
    .unwrap();
    assert!(posix.files.iter().any(|(p, _, _)| p == "bin/tool.py"));
}

/// pip's wheel from the test set, installed in a Windows venv of Python 3.11: its three
/// console launchers (`pip3.11` added, as uv does everywhere) and uv's other rows.
#[test]
fn pip_in_a_windows_venv() {
    let Some((prefix, files)) = read_wheel("pip-26.3-py3-none-any.whl") else {
        return;
    };
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
    let launchers = stub_launchers();
    let g = generate(&WheelInstall {
        dist_info_prefix: &prefix,
        name: "pip",
        python_version: "3.11",
        venv: Path::new(VENV),
        os: VenvOs::Windows(&launchers),
        wheel: &wheel,
        record: &record,
        entry_points: entry_points.as_deref(),
        members: Some(&sizes),
        data_scripts: &[],
        installer: "uv",
        requested: true,
        direct_url: None,
        uv_cache: None,
    })
    .unwrap();
    assert_files_match_record(&g, "Lib/site-packages");
    let scripts: Vec<&str> = g
        .files
        .iter()
        .map(|(p, _, _)| p.as_str())
        .filter(|p| p.starts_with("Scripts/"))
        .collect();
    assert_eq!(
        scripts,
        ["Scripts/pip.exe", "Scripts/pip3.exe", "Scripts/pip3.11.exe"]
    );
    let pip = parse_launcher_exe(file(&g, "Scripts/pip.exe")).unwrap();
    assert_eq!(pip.python, PYTHON);
    let uv_linux_script = crate::install::script::launcher_script(
        &crate::install::entry_points::EntryPoint {
            name: "pip".into(),
            module: "pip._internal.cli.main".into(),
            function: "cli".into(),
            gui: false,
        },
        Path::new("/tmp/z/bin/python"),
    );
    assert_eq!(
        std::str::from_utf8(pip.script).unwrap(),
        uv_linux_script.replace("#!/tmp/z/bin/python", &format!("#!{PYTHON}"))
    );
    // The wheel's rows are all kept; the added ones are the three launchers and the
    // `.dist-info` files, all with a hash.
    let ours = parse_record(
        std::str::from_utf8(file(
            &g,
            &format!("Lib/site-packages/{prefix}.dist-info/RECORD"),
        ))
        .unwrap(),
    )
    .unwrap();
    let theirs = parse_record(&record).unwrap();
    assert!(theirs.iter().all(|r| ours.contains(r)));
    let added: Vec<&str> = ours
        .iter()
        .filter(|r| !theirs.contains(r))
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(
        added,
        [
            "../../Scripts/pip.exe",
            "../../Scripts/pip3.11.exe",
            "../../Scripts/pip3.exe",
            "pip-26.3.dist-info/INSTALLER",
            "pip-26.3.dist-info/REQUESTED",
        ]
    );
    assert!(g.hidden.is_empty());
}
