//! Live changes of a mounted venv: `install`, `uninstall`, `sync` and `layer add|remove`
//! take effect without unmounting, while a program keeps files of the venv open and imports
//! in a loop (as a Jupyter kernel or an editor's language server does).

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The loop a long-running Python keeps up while the venv changes under it: it holds
/// six.py open and reads it again and again (it must not change), and imports a module of
/// a package that stays installed throughout in a fresh namespace each round. It stops
/// when `stop` exists and prints its rounds and errors.
const LOOP: &str = r#"
import importlib, os, sys, time, traceback
stop = sys.argv[1]
import six
held = open(six.__file__, 'rb')
first = held.read()
rounds = errors = 0
while not os.path.exists(stop):
    try:
        held.seek(0)
        if held.read() != first:
            raise RuntimeError("the open file changed")
        importlib.invalidate_caches()
        sys.modules.pop('six', None)
        importlib.import_module('six')
        os.listdir(os.path.dirname(six.__file__))
        rounds += 1
    except Exception:
        errors += 1
        traceback.print_exc()
    time.sleep(0.005)
print(rounds, errors)
"#;

#[test]
fn changes_apply_live_while_a_program_imports() {
    let s = Scratch::new();
    let names = ["six-", "click-", "idna-", "certifi-"];
    let wheels: Vec<_> = names.iter().map(|n| shared_wheel(n)).collect();
    let before: Vec<_> = wheels.iter().map(|w| snapshot(w)).collect();
    let house = s.path("house");
    std::fs::create_dir(&house).unwrap();
    for w in &wheels {
        std::fs::copy(w, house.join(w.file_name().unwrap())).unwrap();
    }
    run_ok(venvfs().arg("install").arg(&s.venv).arg(&wheels[0]));
    let m = s.mount();
    let pid = m.daemon_pid();

    let stop = s.path("stop");
    let mut looping = Command::new(s.venv.join("bin/python"))
        .args(["-c", LOOP])
        .arg(&stop)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // (writing bytecode through the mount, as Python does by default: a removed package's
    // __pycache__ must not keep it importable)
    let shows = |code: &str| {
        Command::new(s.venv.join("bin/python"))
            .args(["-c", code])
            .env_remove("PYTHONDONTWRITEBYTECODE")
            .output()
            .unwrap()
            .status
            .success()
    };
    let timed = |cmd: &mut Command| {
        let t = Instant::now();
        run_ok(cmd);
        t.elapsed()
    };
    // install: visible to a new process at once
    let took = timed(venvfs().arg("install").arg(&s.venv).args(&wheels[1..3]));
    assert!(
        shows("import click, idna"),
        "installed packages import at once"
    );
    // uninstall
    timed(venvfs().arg("uninstall").arg(&s.venv).arg("click"));
    assert!(
        !shows("import click"),
        "an uninstalled package is gone at once"
    );
    assert!(shows("import idna, six"));
    // sync to another set
    let pins = s.path("pins.txt");
    std::fs::write(&pins, "six==1.17.0\ncertifi==2026.10.18\n").unwrap();
    // (a relative --find-links directory: the layers must still be found by the daemon)
    run_ok(
        venvfs()
            .arg("sync")
            .arg(&s.venv)
            .arg(&pins)
            .args(["--no-cache", "-f", "house"])
            .current_dir(s.dir.path()),
    );
    assert!(shows("import certifi, six"));
    assert!(
        !shows("import idna"),
        "sync removed what the pins do not name"
    );
    // layers by hand
    let unpacked = s.path("idna-unpacked");
    unpack(&wheels[2], &unpacked);
    run_ok(venvfs().args(["layer", "add"]).arg(&s.venv).arg(&unpacked));
    assert!(shows("import idna"));
    run_ok(venvfs().args(["layer", "remove"]).arg(&s.venv).arg("idna"));
    assert!(!shows("import idna"));

    std::fs::write(&stop, b"").unwrap();
    let mut out = String::new();
    looping
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    looping
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(looping.wait().unwrap().success(), "{err}");
    let counts: Vec<u64> = out.split_whitespace().map(|n| n.parse().unwrap()).collect();
    assert_eq!(counts.len(), 2, "{out}");
    assert!(counts[0] > 10, "the loop ran: {out}");
    assert_eq!(counts[1], 0, "errors in the importing program:\n{err}");
    assert_eq!(m.daemon_pid(), pid, "never unmounted");
    eprintln!(
        "live: install of 2 packages took {took:?}; the importing loop ran {} rounds with no error",
        counts[0]
    );
    drop(m);
    let after: Vec<_> = wheels.iter().map(|w| snapshot(w)).collect();
    assert_eq!(before, after, "a wheel changed");
}
