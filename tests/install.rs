//! `venvfs install` against `uv pip install --link-mode=copy` of the same wheels: the
//! mounted venvfs venv must hold the same files with the same contents, and Python's view
//! of its distributions must be the same.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

const WHEELS: &[&str] = &[
    "pip-",
    "wheel-",
    "numpy-",
    "six-",
    "click-",
    "ipykernel-",
    "setuptools-",
    "requests-",
    "urllib3-",
    "idna-",
    "certifi-",
    "charset_normalizer-",
    "sphinxcontrib_applehelp-",
    "sphinxcontrib_jsmath-",
];

fn uv() -> Command {
    Command::new("uv")
}

/// Files of a venv (symlink targets as content) with the venv path replaced, minus what
/// legitimately differs: bytecode, the interpreter links and activation scripts, uv's own
/// cache note, and INSTALLER (uv writes "uv", venvfs "venvfs"). RECORD is parsed into a set
/// of rows without those files' rows.
fn contents(venv: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![venv.to_owned()];
    let abs = venv.canonicalize().unwrap();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(venv).unwrap().to_string_lossy().into_owned();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                if name != "__pycache__" && name != ".venvfs" {
                    stack.push(p);
                }
                continue;
            }
            let skip = rel.starts_with("bin/activate")
                || rel.starts_with("bin/python")
                || [
                    "pyvenv.cfg",
                    "CACHEDIR.TAG",
                    ".gitignore",
                    ".lock",
                    "bin/deactivate.bat",
                    "bin/pydoc.bat",
                ]
                .contains(&rel.as_str())
                || name == "INSTALLER"
                || name == "uv_cache.json";
            if skip {
                continue;
            }
            let data = if meta.file_type().is_symlink() {
                std::fs::read_link(&p)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
                    .into_bytes()
            } else {
                std::fs::read(&p).unwrap()
            };
            let data = String::from_utf8_lossy(&data)
                .replace(abs.to_str().unwrap(), "VENV")
                .into_bytes();
            let data = if name == "RECORD" {
                let rows: BTreeSet<&str> = std::str::from_utf8(&data)
                    .unwrap()
                    .lines()
                    .filter(|l| !l.contains("/INSTALLER,") && !l.contains("/uv_cache.json,"))
                    // launchers embed the venv's path, so their hashes differ between venvs
                    // (their contents are compared above, with the path replaced)
                    .map(|l| {
                        if l.starts_with("../../../bin/") {
                            l.split(',').next().unwrap()
                        } else {
                            l
                        }
                    })
                    .collect();
                rows.into_iter().collect::<Vec<_>>().join("\n").into_bytes()
            } else {
                data
            };
            out.insert(rel, (data, meta.permissions().mode() & 0o777));
        }
    }
    out
}

/// Asserts two venvs hold the same files (see `contents`); returns how many were compared.
fn assert_same_files(ours: &Path, reference: &Path, when: &str) -> usize {
    let (a, b) = (contents(ours), contents(reference));
    let keys: BTreeSet<_> = a.keys().chain(b.keys()).collect();
    let diffs: Vec<_> = keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .collect();
    let shown = &diffs[..diffs.len().min(10)];
    assert!(
        diffs.is_empty(),
        "{when}, {} files differ from uv's, e.g. {shown:?}",
        diffs.len()
    );
    a.len()
}

#[test]
fn a_venvfs_install_matches_uv_pip_install_file_for_file() {
    let s = Scratch::new();
    let wheels: Vec<_> = WHEELS.iter().map(|w| shared_wheel(w)).collect();
    let before: Vec<_> = wheels.iter().map(|w| snapshot(w)).collect();
    let reference = s.path("uv-venv");
    run_ok(uv().args(["venv", "-q"]).arg(&reference));
    run_ok(
        uv().args([
            "pip",
            "install",
            "-q",
            "--link-mode=copy",
            "--no-deps",
            "-p",
        ])
        .arg(reference.join("bin/python"))
        .args(&wheels),
    );
    let ours = s.path("venvfs-venv");
    run_ok(uv().args(["venv", "-q"]).arg(&ours));
    let out = run_ok(venvfs().arg("install").arg(&ours).args(&wheels));
    assert!(
        out.starts_with(&format!("Installed {} packages in ", WHEELS.len())),
        "{out}"
    );
    let _m = Mount::new(&ours);

    let compared = assert_same_files(&ours, &reference, "after install");
    assert!(compared > 2000, "only {compared} files compared");

    let python =
        |venv: &Path, code: &str| run_ok(Command::new(venv.join("bin/python")).args(["-c", code]));
    let pip_list = |venv: &Path| {
        run_ok(Command::new(venv.join("bin/python")).args(["-m", "pip", "list", "--format=freeze"]))
    };
    assert_eq!(pip_list(&ours), pip_list(&reference));
    let metadata = "import importlib.metadata as m, json\n\
        ds = sorted(m.distributions(), key=lambda d: d.metadata['Name'])\n\
        print(json.dumps([(d.metadata['Name'], d.version, sorted(str(f) for f in d.files or [] if f.name != 'uv_cache.json'), \
        sorted((e.group, e.name, e.value) for e in d.entry_points)) for d in ds]))";
    // (uv also records its own uv_cache.json, left out above)
    let (m_ours, m_ref) = (python(&ours, metadata), python(&reference, metadata));
    assert!(
        m_ours == m_ref,
        "importlib.metadata differs:\n{m_ours:.2000}\n{m_ref:.2000}"
    );
    // console scripts run, and the packages work
    assert!(run_ok(Command::new(ours.join("bin/numpy-config")).arg("--version")).contains("2.4.6"));
    assert!(run_ok(Command::new(ours.join("bin/pip")).arg("--version"))
        .contains(&ours.display().to_string()));
    python(
        &ours,
        "import numpy, requests, click, six; assert numpy.arange(5).sum() == 10",
    );
    // uninstall two (one with console scripts and compiled extensions) from both
    // leave bytecode for uninstall to clean up
    run_ok(
        Command::new(ours.join("bin/python"))
            .args(["-c", "import numpy, wheel"])
            .env_remove("PYTHONDONTWRITEBYTECODE"),
    );
    drop(_m);
    let site = ours.join("lib/python3.11/site-packages");
    assert!(
        site.join("numpy/__pycache__").is_dir(),
        "bytecode went to the venv's own directory"
    );
    let out = run_ok(
        venvfs()
            .args(["uninstall"])
            .arg(&ours)
            .args(["numpy", "Wheel"]),
    );
    assert!(out.starts_with("Uninstalled 2 packages in "), "{out}");
    for gone in [
        "numpy",
        "numpy-2.4.6.dist-info",
        "wheel",
        "wheel-0.48.0.dist-info",
    ] {
        assert!(
            !site.join(gone).exists(),
            "{gone} is left in the venv's own directory"
        );
    }
    run_ok(
        uv().args(["pip", "uninstall", "-q", "-p"])
            .arg(reference.join("bin/python"))
            .args(["numpy", "wheel"]),
    );
    let _m = Mount::new(&ours);
    assert_same_files(&ours, &reference, "after uninstall");
    assert!(!ours.join("bin/wheel").exists() && !ours.join("bin/f2py").exists());
    assert_eq!(pip_list(&ours), pip_list(&reference));
    drop(_m);
    let after: Vec<_> = wheels.iter().map(|w| snapshot(w)).collect();
    assert_eq!(before, after, "a wheel changed");
}

#[test]
fn install_refuses_a_mounted_venv_and_a_broken_wheel_without_changing_anything() {
    let s = Scratch::new();
    let six = shared_wheel("six-");
    let broken = s.path("broken-1.0-py3-none-any.whl");
    std::fs::write(&broken, b"not a zip").unwrap();
    let out = run(venvfs().arg("install").arg(&s.venv).arg(&six).arg(&broken));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&broken.display().to_string()));
    assert!(
        !s.venv.join(".venvfs/manifest.toml").exists(),
        "nothing installed"
    );
    assert!(!s
        .venv
        .join("lib/python3.11/site-packages/six-1.17.0.dist-info")
        .exists());
    let m = s.mount();
    let out = run(venvfs().arg("install").arg(&s.venv).arg(&six));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is mounted"));
    m.unmount();
}

#[test]
fn create_install_mount_import() {
    let s = Scratch::new();
    let venv = s.path("made");
    let out = run_ok(
        venvfs()
            .arg("create")
            .arg(&venv)
            .args(["--python", "python3"]),
    );
    assert!(out.starts_with("Created "), "{out}");
    run_ok(venvfs().arg("install").arg(&venv).arg(shared_wheel("six-")));
    let _m = Mount::new(&venv);
    let out = run_ok(
        Command::new(venv.join("bin/python")).args(["-c", "import six; print(six.__version__)"]),
    );
    assert_eq!(out.trim(), "1.17.0");
    let bad = run(venvfs()
        .arg("create")
        .arg(s.path("other"))
        .args(["--python", "/nonexistent/python"]));
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--python"));
}
