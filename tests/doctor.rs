//! `venvfs doctor VENV` on real venvs: healthy and mounted, unmounted, and with a layer
//! whose source was deleted; `--json` for scripts.

mod common;

use std::path::Path;

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
