//! `venvfs doctor VENV` on real venvs: healthy and mounted, unmounted, with a layer whose
//! source was deleted, and on sshfs with its default `contain_symlinks` (which hides the
//! venv's interpreter link) and without it; `--json` for scripts.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Runs `venvfs doctor VENV --json`: the exit code and the findings by check.
fn doctor_json(venv: &Path) -> (i32, Vec<serde_json::Value>) {
    let out = run(venvfs().arg("doctor").arg(venv).arg("--json"));
    let text = String::from_utf8_lossy(&out.stdout);
    let findings: Vec<serde_json::Value> = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("doctor --json is not JSON ({e}):\n{text}"));
    for f in &findings {
        for key in ["check", "status", "detail"] {
            assert!(f[key].is_string(), "{key} in {f}");
        }
        assert!(f["fix"].is_string() || f["fix"].is_null(), "{f}");
        assert!(["ok", "warn", "fail"].contains(&f["status"].as_str().unwrap()));
    }
    (out.status.code().unwrap(), findings)
}

fn finding<'a>(findings: &'a [serde_json::Value], check: &str) -> &'a serde_json::Value {
    findings
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no {check} finding in {findings:#?}"))
}

#[test]
fn doctor_tells_healthy_unmounted_and_broken_venvs_apart() {
    let s = Scratch::new();
    let six = s.path("cache/six");
    unpack(&shared_wheel("six-"), &six);
    run_ok(venvfs().arg("install").arg(&s.venv).arg(&six));

    // healthy and mounted: nothing wrong, exit 0
    let m = s.mount();
    let text = run(venvfs().arg("doctor").arg(&s.venv));
    let report = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.status.code(), Some(0), "{report}");
    assert!(!report.contains("\nfail "), "{report}");
    let (code, findings) = doctor_json(&s.venv);
    assert_eq!(code, 0);
    assert_eq!(finding(&findings, "mount")["status"], "ok");
    assert_eq!(finding(&findings, "layers")["status"], "ok");
    assert_eq!(finding(&findings, "uv-link-mode")["status"], "ok");
    m.unmount();

    // a stale mount (its daemon killed): exit 1, said with the command that mends it
    let m = s.mount();
    let pid = m.daemon_pid();
    run_ok(Command::new("kill").args(["-9", &pid.to_string()]));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, findings) = doctor_json(&s.venv);
    let mount = finding(&findings, "mount");
    assert_eq!(code, 1, "{findings:#?}");
    assert_eq!(mount["status"], "fail");
    assert!(
        mount["detail"].as_str().unwrap().contains("stale"),
        "{mount}"
    );
    assert_eq!(
        mount["fix"].as_str(),
        Some(format!("venvfs mount {}", s.venv.display()).as_str())
    );
    // and the fix works
    let _m = s.mount();
    assert_eq!(doctor_json(&s.venv).0, 0);
    drop(_m);
    m.forget();

    // unmounted: a state, not a fault (exit 0), said with the command that mounts it
    let (code, findings) = doctor_json(&s.venv);
    let mount = finding(&findings, "mount");
    assert_eq!(code, 0, "{findings:#?}");
    assert_eq!(mount["status"], "warn");
    assert_eq!(
        mount["fix"].as_str(),
        Some(format!("venvfs mount {}", s.venv.display()).as_str())
    );

    // the layer's source deleted: exit 1, naming the layer and how to restore it
    std::fs::remove_dir_all(&six).unwrap();
    let out = run(venvfs().arg("doctor").arg(&s.venv));
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let (code, findings) = doctor_json(&s.venv);
    assert_eq!(code, 1);
    let layers = finding(&findings, "layers");
    assert_eq!(layers["status"], "fail");
    let detail = layers["detail"].as_str().unwrap();
    assert!(
        detail.contains("six==1.17.0") && detail.contains(six.to_str().unwrap()),
        "{detail}"
    );
    assert!(
        layers["fix"]
            .as_str()
            .unwrap()
            .contains(&format!("venvfs install {} six==1.17.0", s.venv.display())),
        "{layers}"
    );
}

/// A venv on sshfs (an sshd of the test's own on 127.0.0.1, mounted in a mount namespace
/// of its own, so nothing shows outside it and the mount ends with the script): with
/// Debian's default `contain_symlinks` the venv's bin/python cannot be read, and doctor
/// says so and how to remount; with `no_contain_symlinks` the link is fine.
#[test]
fn doctor_finds_sshfs_hiding_the_interpreter_link() {
    use common::sshd::{require, Sshd};
    for program in ["sshfs", "sshd", "ssh-keygen", "unshare", "fusermount3"] {
        require(program);
    }
    let s = Scratch::new();
    let root = s.path("sshfs-test");
    let export = root.join("export");
    std::fs::create_dir_all(&export).unwrap();
    let export = export.canonicalize().unwrap();
    run_ok(venvfs().arg("create").arg(export.join("venv")));
    let sshd = Sshd::start(&root.join("ssh"));
    let mnt = root.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    // (each mount is undone when the script ends, however it ends)
    let script = format!(
        "set -u\nmnt={mnt}\n\
         trap 'fusermount3 -u \"$mnt\" 2>/dev/null || umount -l \"$mnt\" 2>/dev/null || true' EXIT\n\
         for run in 'hidden {default}' 'open {open}'; do\n\
           set -- $run\n\
           sshfs -o \"$2\" root@127.0.0.1:{export} \"$mnt\" || exit 2\n\
           grep -q \" $mnt fuse.sshfs \" /proc/self/mounts || exit 3\n\
           \"$VENVFS\" doctor \"$mnt/venv\" --json > {out}/$1.json\n\
           echo $? > {out}/$1.code\n\
           fusermount3 -u \"$mnt\" || exit 4\n\
         done\n",
        mnt = mnt.display(),
        out = root.display(),
        export = export.display(),
        default = sshd.sshfs_options(""),
        open = sshd.sshfs_options("no_contain_symlinks"),
    );
    let mut cmd = std::process::Command::new(require("unshare"));
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &script]);
    let base = venvfs();
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.env("VENVFS", env!("CARGO_BIN_EXE_venvfs"));
    let out = run(&mut cmd);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(sshd);
    let report = |name: &str| {
        let json = std::fs::read_to_string(root.join(format!("{name}.json"))).unwrap();
        let code = std::fs::read_to_string(root.join(format!("{name}.code"))).unwrap();
        let findings: Vec<serde_json::Value> = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("doctor --json is not JSON ({e}):\n{json}"));
        (findings, code.trim().to_owned())
    };
    let runs = [report("hidden"), report("open")];
    let (hidden, code) = &runs[0];
    assert_eq!(code, "1", "{hidden:#?}");
    let link = finding(hidden, "python-link");
    assert_eq!(link["status"], "fail", "{link}");
    assert!(
        link["detail"]
            .as_str()
            .unwrap()
            .contains("contain_symlinks"),
        "{link}"
    );
    let fix = link["fix"].as_str().unwrap();
    assert!(
        fix.contains("sshfs -o no_contain_symlinks")
            && fix.contains(&format!("root@127.0.0.1:{}", export.display()))
            && fix.contains(&mnt.display().to_string()),
        "{fix}"
    );
    let (open, _) = &runs[1];
    assert_eq!(finding(open, "python-link")["status"], "ok", "{open:#?}");
}
