//! `venvfs install` against `uv pip install --link-mode=copy` of the same wheels: the
//! mounted venvfs venv must hold the same files with the same contents, and Python's view
//! of its distributions must be the same.

mod common;

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
    // (bytecode kept in the venv, as without shared bytecode: uninstall must clean it up)
    run_ok(
        venvfs()
            .env("VENVFS_SHARED_BYTECODE", "0")
            .arg("mount")
            .arg(&ours),
    );
    let _m = Mount::adopt(&ours);

    let compared = assert_same_files(&ours, &reference, "after install");
    assert!(compared > 2000, "only {compared} files compared");

    let python = |venv: &Path, code: &str| run_ok(venv_program(venv, "python").args(["-c", code]));
    let pip_list = |venv: &Path| {
        run_ok(venv_program(venv, "python").args(["-m", "pip", "list", "--format=freeze"]))
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
    assert!(
        run_ok(venv_program(&ours, "pip").arg("--version")).contains(&ours.display().to_string())
    );
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
fn install_into_a_mounted_venv_shows_at_once_and_a_broken_wheel_changes_nothing() {
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
    let pid = m.daemon_pid();
    // mounted: the change shows in the mounted view right away, without a remount
    let out = run(venvfs().arg("install").arg(&s.venv).arg(&six));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(s.python_ok("import six; print(six.__version__)"), "1.17.0");
    assert_eq!(m.daemon_pid(), pid, "taken live, not remounted");
    // a process inside the venv with one of the package's files open does not stop an
    // uninstall, and keeps reading the file it has open
    let module = s.venv.join("lib/python3.11/site-packages/six.py");
    let before = std::fs::read(&module).unwrap();
    let mut held = std::fs::File::open(&module).unwrap();
    let mut busy = Command::new("sleep")
        .arg("30")
        .current_dir(&s.venv)
        .spawn()
        .unwrap();
    let out = run(venvfs().arg("uninstall").arg(&s.venv).arg("six"));
    let _ = busy.kill();
    let _ = busy.wait();
    assert!(out.status.success(), "{out:?}");
    assert!(!module.exists(), "gone from the view at once");
    let mut still = Vec::new();
    std::io::Read::read_to_end(&mut held, &mut still).unwrap();
    assert_eq!(
        still, before,
        "an open file of a removed layer reads as before"
    );
    assert!(!s.python("import six").status.success());
    assert_eq!(m.daemon_pid(), pid);
    // a wheel with an entry point: its launcher and RECORD (the generated layer's) show at
    // once, an edit of the launcher copies up, and an uninstall takes both away at once
    let site = s.venv.join("lib/python3.11/site-packages");
    run_ok(
        venvfs()
            .arg("install")
            .arg(&s.venv)
            .arg(shared_wheel("wheel-")),
    );
    let launcher = s.venv.join("bin/wheel");
    let record = site.join("wheel-0.48.0.dist-info/RECORD");
    assert!(record.is_file(), "RECORD shows at once");
    assert_eq!(
        run_ok(Command::new(&launcher).arg("version")).trim(),
        "wheel 0.48.0"
    );
    let mut text = std::fs::read_to_string(&launcher).unwrap();
    text.push_str("# edited\n");
    std::fs::write(&launcher, &text).unwrap();
    assert_eq!(std::fs::read_to_string(&launcher).unwrap(), text);
    run_ok(venvfs().arg("uninstall").arg(&s.venv).arg("wheel"));
    assert!(!launcher.exists(), "the launcher is gone at once");
    assert!(!record.exists() && !site.join("wheel-0.48.0.dist-info").exists());
    assert_eq!(m.daemon_pid(), pid);
    drop(m);
    // unmounted: nothing of it is left in the venv's own directory
    assert!(!s.venv.join("bin/wheel").exists());
    assert!(!site.join("wheel-0.48.0.dist-info").exists());
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
