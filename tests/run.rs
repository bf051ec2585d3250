//! `venvfs run VENV -- COMMAND`: a mount that lives as long as one command, in a private
//! mount namespace, with the command's exit code passed through and nothing left behind.

mod common;

use std::path::Path;
use std::process::Command;
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
    // with the venv activated, as `uv run` has it: `python` is the venv's
    let (status, out) = run(&[
        "python",
        "-c",
        "import six, sys, os; print(sys.prefix == os.environ['VIRTUAL_ENV'])",
    ]);
    assert_eq!((status, out.trim()), (Some(0), "True"));
    let (_, out) = run(&["sh", "-c", "command -v python"]);
    assert_eq!(out.trim(), python.to_str().unwrap());
    // exit codes, and death by a signal, come back
    assert_eq!(run(&["sh", "-c", "exit 3"]).0, Some(3));
    assert_eq!(run(&["sh", "-c", "kill -9 $$"]).0, Some(137));
    assert_no_work_directory(&s.venv);

    // venvfs killed: the command goes too, with what it left running in the background
    // (a process the command's shell started, which outlives the shell), and no mount
    // is left
    let marker = s.path("still-running");
    let background = s.path("background-pid");
    let script = format!(
        "sleep 60 & echo $! > {}; sleep 3; touch {}",
        background.display(),
        marker.display()
    );
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
    let pid = std::fs::read_to_string(&background).expect("the command started `sleep 60 &`");
    let proc_dir = Path::new("/proc").join(pid.trim());
    let state = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains(") Z"),
        "the command's background process lives on: {state}"
    );

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
    // (as a shell has it: 127 for a command that is not there)
    assert_eq!(out.status.code(), Some(127));
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

/// The unprivileged user the tests below run `venvfs` as (`nobody` on Debian).
const USER: u32 = 65534;

/// Fails loudly, saying why, when this kernel does not give an unprivileged user a user
/// namespace: the unprivileged path of `venvfs run` cannot be tested then, and a test that
/// passed without testing it would say something false.
fn require_unprivileged_user_namespaces() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test runs as root: it makes a /dev/fuse node and drops to uid {USER} itself"
    );
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    let max = read("/proc/sys/user/max_user_namespaces");
    assert!(
        max.as_deref() != Some("0"),
        "user namespaces are off (/proc/sys/user/max_user_namespaces is 0): \
         `sysctl user.max_user_namespaces=15000` to test venvfs run unprivileged"
    );
    let clone = read("/proc/sys/kernel/unprivileged_userns_clone");
    assert!(
        clone.as_deref() != Some("0"),
        "this kernel refuses user namespaces to unprivileged users \
         (kernel.unprivileged_userns_clone is 0): `sysctl kernel.unprivileged_userns_clone=1`"
    );
    let apparmor = read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    assert!(
        apparmor.as_deref() != Some("1"),
        "AppArmor refuses user namespaces to unprivileged users \
         (kernel.apparmor_restrict_unprivileged_userns is 1)"
    );
    // and what the sysctls do not tell (a seccomp filter, a container's policy): try it
    let out = run(&mut as_user(
        Command::new("unshare").args(["-U", "-r", "true"]),
    ));
    assert!(
        out.status.success(),
        "uid {USER} cannot make a user namespace here: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Python interpreter the unprivileged user can run: python3 on PATH, else the system's.
fn user_python() -> std::path::PathBuf {
    let on_path = Command::new("sh")
        .args(["-c", "command -v python3"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let candidates = on_path
        .into_iter()
        .filter(|p| !p.is_empty())
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .chain([std::path::PathBuf::from("/usr/bin/python3")]);
    for python in candidates {
        // (venvfs resolves the venv's interpreter link, so the user must see the whole path)
        let runs = |cmd: &mut Command| run(&mut as_user(cmd)).status.success();
        if runs(Command::new("realpath").arg(&python))
            && runs(Command::new(&python).args(["-c", "pass"]))
        {
            return python;
        }
    }
    panic!("no python3 that uid {USER} can run (on PATH, or /usr/bin/python3)")
}

/// `cmd` run as the unprivileged user, with no supplementary groups or capabilities.
fn as_user(cmd: &Command) -> Command {
    let mut wrapped = Command::new("setpriv");
    wrapped
        .arg(format!("--reuid={USER}"))
        .arg(format!("--regid={USER}"))
        .args(["--clear-groups", "--inh-caps=-all", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    wrapped
}

/// `cmd` run as the unprivileged user in a mount namespace of its own (private), where a
/// FUSE device node (10, 229) of `mode`, root's, is bind-mounted over /dev/fuse: the
/// machine's /dev/fuse is not touched. The node is made in a tmpfs mounted on `dir` in that
/// namespace only (a tmpfs /tmp is often `nodev`, where a node cannot be opened), so
/// nothing of it is left when the namespace ends.
fn as_user_with_fuse(dir: &Path, mode: u32, cmd: &Command) -> Command {
    let inner = as_user(cmd);
    let mut wrapped = Command::new("unshare");
    wrapped
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            "set -e; mount -t tmpfs -o mode=0755 venvfs-test-dev \"$1\"; \
             mknod -m \"$2\" \"$1/fuse\" c 10 229; mount --bind \"$1/fuse\" /dev/fuse; \
             shift 2; exec \"$@\"",
        )
        .arg("sh")
        .arg(dir)
        .arg(format!("{mode:o}"))
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    wrapped
}

/// Gives `root` and everything below it (symlinks themselves, not their targets) to the
/// unprivileged user.
fn give_to_user(root: &Path) {
    for (p, _) in entries_below(root) {
        std::os::unix::fs::lchown(&p, Some(USER), Some(USER)).unwrap();
    }
    std::os::unix::fs::lchown(root, Some(USER), Some(USER)).unwrap();
}

#[test]
fn run_as_an_unprivileged_user_mounts_in_a_user_namespace() {
    require_unprivileged_user_namespaces();
    let s = Scratch::new();
    // a venv of a Python the user can run (a Python under root's home is not theirs to)
    let base = user_python();
    let venv = s.path("user-venv");
    run_ok(
        Command::new(&base)
            .args(["-m", "venv", "--without-pip"])
            .arg(&venv),
    );
    // everything the user's venvfs reads or writes is the user's: the venv, the wheel (a
    // copy: the shared one stays as it is), venvfs's cache, the home directory, and venvfs
    // itself (a copy: the build directory need not be open to that user)
    let wheel = s.path(shared_wheel("six-").file_name().unwrap().to_str().unwrap());
    std::fs::copy(shared_wheel("six-"), &wheel).unwrap();
    let bin = s.path("venvfs");
    std::fs::copy(env!("CARGO_BIN_EXE_venvfs"), &bin).unwrap();
    std::fs::create_dir(s.path("home")).unwrap();
    give_to_user(s.dir.path());
    let before = snapshot(&wheel);
    let user_venvfs = |args: &[&std::ffi::OsStr]| {
        let mut cmd = venvfs();
        cmd.env("XDG_CACHE_HOME", s.path("home/.cache"))
            .env("HOME", s.path("home"));
        let mut with_bin = Command::new(&bin);
        with_bin.args(args);
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => with_bin.env(k, v),
                None => with_bin.env_remove(k),
            };
        }
        with_bin
    };
    run_ok(&mut as_user(&user_venvfs(&[
        "install".as_ref(),
        venv.as_os_str(),
        wheel.as_os_str(),
    ])));

    // /dev/fuse open to the user (0666): the command runs in the mounted venv, as root of a
    // user namespace that is the user outside it, and its exit code comes back
    let dev = s.path("dev");
    std::fs::create_dir(&dev).unwrap();
    let python = venv.join("bin/python");
    let code = format!(
        "import six, os, sys; print(six.__version__, os.path.ismount({:?}), \
         os.getuid(), open('/proc/self/uid_map').read().split()); sys.exit(7)",
        venv.display().to_string()
    );
    let run_cmd = user_venvfs(&[
        "run".as_ref(),
        venv.as_os_str(),
        "--".as_ref(),
        python.as_os_str(),
        "-c".as_ref(),
        code.as_ref(),
    ]);
    let out = run(&mut as_user_with_fuse(&dev, 0o666, &run_cmd));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "venvfs run failed: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("1.17.0 True 0 ['0', '{USER}', '1']"),
        "{stderr}"
    );
    assert!(!mounted_here(&venv), "a mount of the venv is left");
    assert!(
        !std::fs::read_to_string("/proc/mounts")
            .unwrap()
            .contains(&venv.display().to_string()),
        "a mount of the venv is left"
    );
    assert_no_work_directory(&venv);

    // /dev/fuse closed to the user (0600, root's, as some distributions have it): an error
    // that names /dev/fuse and what to do, and the command is not run
    let marker = s.path("home/ran");
    let touch = user_venvfs(&[
        "run".as_ref(),
        venv.as_os_str(),
        "--".as_ref(),
        "touch".as_ref(),
        marker.as_os_str(),
    ]);
    let out = run(&mut as_user_with_fuse(&dev, 0o600, &touch));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "venvfs run succeeded: {stderr}");
    assert!(
        stderr.contains("/dev/fuse") && stderr.contains("chmod 0666"),
        "the error does not say what to do about /dev/fuse: {stderr}"
    );
    assert!(!marker.exists(), "the command ran without its venv");
    assert!(!mounted_here(&venv));
    assert_eq!(snapshot(&wheel), before, "the wheel changed");
}

/// The command of `venvfs run` is an ordinary process of its caller's: it keeps the
/// caller's umask (the daemon's own is 0, which would make everything it writes writable
/// by all) and limit of open files (the daemon raises its own), started inside the venv it sees the mounted venv there, and `venvfs install`
/// and `status` from within it reach the run's own daemon, whose runtime directory is its
/// user's alone.
#[test]
fn the_command_of_run_keeps_its_umask_and_directory_and_reaches_its_daemon() {
    let s = Scratch::new();
    let six = shared_wheel("six-");
    let click = shared_wheel("click-");
    let before = (snapshot(&six), snapshot(&click));
    run_ok(venvfs().arg("install").arg(&s.venv).arg(&six));
    let site = s.venv.join("lib/python3.11/site-packages");
    let made = s.venv.join("made-in-run");
    let script = format!(
        "umask; touch {made}; mkdir {made}.d; cat six.py | head -c 9; echo; \
         {bin} install {venv} {click} >/dev/null && python -c 'import click; print(click.__name__)' \
         && {bin} status {venv} >/dev/null && echo status-ok; ulimit -Sn",
        made = made.display(),
        bin = env!("CARGO_BIN_EXE_venvfs"),
        venv = s.venv.display(),
        click = click.display(),
    );
    let runner = format!(
        "umask 027 && ulimit -Sn 1000 && exec {} run {} -- sh -c \"$0\"",
        env!("CARGO_BIN_EXE_venvfs"),
        s.venv.display()
    );
    let cmd = venvfs();
    let out = Command::new("sh")
        .args(["-c", &runner, &script])
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .current_dir(&site)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{err}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"0027"), "the caller's umask: {text}");
    assert_eq!(
        lines.get(1),
        Some(&"# Copyrig"),
        "six.py read in the mounted site-packages: {text}"
    );
    assert_eq!(
        lines.get(2),
        Some(&"click"),
        "a live install within the run: {text}\n{err}"
    );
    assert_eq!(lines.get(3), Some(&"status-ok"), "{text}\n{err}");
    // (the daemon raises its own limit of open files; the command keeps the caller's)
    assert_eq!(
        lines.get(4),
        Some(&"1000"),
        "the caller's limit of open files: {text}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&made), 0o640, "a file the command made");
    assert_eq!(
        mode(&made.with_extension("d")),
        0o750,
        "a directory the command made"
    );
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let uid = run_ok(Command::new("id").arg("-u"));
        let dir = std::env::temp_dir().join(format!("venvfs-{}", uid.trim()));
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    assert!(!mounted_here(&s.venv));
    assert_eq!(
        (snapshot(&six), snapshot(&click)),
        before,
        "a wheel changed"
    );
}

/// `venvfs run` on a venv that is not there, or whose interpreter is gone, says so instead
/// of failing on a bare path error or running the next `python` on `PATH`.
#[test]
fn run_names_a_missing_venv_and_a_missing_interpreter() {
    let s = Scratch::new();
    let nowhere = s.path("nowhere");
    let out = run(venvfs().arg("run").arg(&nowhere).args(["--", "true"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("there is no venv at") && err.contains("uv venv"),
        "{err}"
    );
    let bin = s.venv.join("bin");
    for name in ["python", "python3", "python3.11"] {
        let _ = std::fs::remove_file(bin.join(name));
    }
    std::os::unix::fs::symlink("/nonexistent/python3.11", bin.join("python")).unwrap();
    let out = run(venvfs()
        .arg("run")
        .arg(&s.venv)
        .args(["--", "python", "-c", "print('ran')"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("does not lead to a Python interpreter"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ran"));
    assert!(!mounted_here(&s.venv));
}
