//! `venvfs run VENV -- COMMAND`: a mount that lives as long as one command, in a private
//! mount namespace, with the command's exit code passed through and nothing left behind.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// Whether the machine's mount table (this test's namespace) shows a venvfs mount of `venv`.
fn mounted_here(venv: &std::path::Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(&format!(" {} ", venv.display())))
}

#[test]
fn run_mounts_for_one_command_and_leaves_nothing() {
    let s = Scratch::new();
    let six = shared_wheel("six-");
    let before = snapshot(&six);
    run_ok(venvfs().arg("install").arg(&s.venv).arg(&six));
    let python = s.venv.join("bin/python");
    let run = |cmd: &[&str]| {
        let out = venvfs()
            .arg("run")
            .arg(&s.venv)
            .arg("--")
            .args(cmd)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // the command sees the venv mounted; the machine does not
    let code = format!(
        "import six, os; print(six.__version__, os.path.ismount({:?}))",
        s.venv.display().to_string()
    );
    let (status, out) = run(&[python.to_str().unwrap(), "-c", &code]);
    assert_eq!(status, Some(0));
    assert_eq!(out.trim(), "1.17.0 True");
    assert!(
        !mounted_here(&s.venv),
        "the mount stays in its own namespace"
    );
    // exit codes, and death by a signal, come back
    assert_eq!(run(&["sh", "-c", "exit 3"]).0, Some(3));
    assert_eq!(run(&["sh", "-c", "kill -9 $$"]).0, Some(137));
    assert_no_work_directory(&s.venv);

    // venvfs killed: the command goes too, and no mount is left
    let marker = s.path("still-running");
    let script = format!("sleep 3; touch {}", marker.display());
    let mut venvfs_run = venvfs()
        .arg("run")
        .arg(&s.venv)
        .args(["--", "sh", "-c", &script])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    venvfs_run.kill().unwrap();
    let _ = venvfs_run.wait();
    std::thread::sleep(Duration::from_secs(3));
    assert!(!marker.exists(), "the command ended with venvfs");
    assert!(!mounted_here(&s.venv));

    // an already mounted venv is used as it is (no second daemon on its directory)
    let m = s.mount();
    let pid = m.daemon_pid();
    let (status, out) = run(&[python.to_str().unwrap(), "-c", "import six; print('ok')"]);
    assert_eq!((status, out.trim()), (Some(0), "ok"));
    assert_eq!(m.daemon_pid(), pid);
    drop(m);
    assert_eq!(snapshot(&six), before, "the wheel changed");
    // (a command venvfs cannot start is an error, not a hang)
    let out = run_unstartable(&s.venv);
    assert!(out.contains("cannot run"), "{out}");
}

fn run_unstartable(venv: &std::path::Path) -> String {
    let out = venvfs()
        .arg("run")
        .arg(venv)
        .args(["--", "/nonexistent/program"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every daemon that served the venv removed its work directory when it ended.
fn assert_no_work_directory(venv: &Path) {
    let work = venv.join(".venvfs/work");
    if work.exists() {
        let left: Vec<_> = std::fs::read_dir(&work).unwrap().flatten().collect();
        assert!(
            left.is_empty(),
            "a daemon left its work directory: {left:?}"
        );
    }
}
