//! Many hosts, one venv: a venv directory on sshfs, mounted by several "hosts" at once —
//! here mount namespaces of this machine, each with its own sshfs connection to an sshd on
//! 127.0.0.1 that the test starts and stops — importing and writing at the same time, one
//! of them running `pip install`. Nothing written is lost or torn, the layers (uv's cache)
//! are not changed, and nothing is left behind: no mount, no namespace, no work directory.
//! With Debian's sshfs defaults (`contain_symlinks`) `venvfs sync` and `venvfs mount` refuse,
//! naming the option and the fix.
//!
//! Needs `sshfs`, `sshd` and `ssh-keygen` (Debian: `apt-get install sshfs openssh-server`;
//! `.ci/run` installs them); the test fails, saying so, when they are missing.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::sshd::{require, Sshd};
use common::*;

const HOSTS: usize = 3;

/// The mount namespace of a process, as `/proc/PID/ns/mnt` names it.
fn mnt_ns(pid: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Processes still in one of the namespaces.
fn processes_in(namespaces: &BTreeSet<String>) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid: u32 = name.parse().ok()?;
            namespaces.contains(&mnt_ns(&name)?).then_some(pid)
        })
        .collect()
}

/// The test's "hosts": each a shell in a mount namespace of its own, which mounts the
/// exported directory over sshfs on the same path (as a cluster's shared home directory
/// is), runs its part and unmounts. Dropping ends whatever is left in them (each process
/// by its id), so a failed test leaves no mount behind either.
struct Hosts {
    namespaces: BTreeSet<String>,
    dir: PathBuf,
}

impl Hosts {
    /// Starts `script` (sh) in a new mount namespace; `$1` is `name`.
    fn spawn(&mut self, name: &str, script: &str, env: &[(&str, String)]) -> Child {
        let body = self.dir.join(format!("{name}.sh"));
        std::fs::write(&body, script).unwrap();
        let mut cmd = Command::new(require("unshare"));
        cmd.args(["-m", "--propagation", "private", "sh"])
            .arg(&body)
            .arg(name)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.dir.join(format!("{name}.out"))).unwrap())
            .stderr(std::fs::File::create(self.dir.join(format!("{name}.err"))).unwrap());
        let base = venvfs();
        for (k, v) in base.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.env("VENVFS", env!("CARGO_BIN_EXE_venvfs"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        // the namespace, once the shell is in it
        let deadline = Instant::now() + Duration::from_secs(5);
        let outer = mnt_ns("self");
        loop {
            match mnt_ns(&child.id().to_string()) {
                Some(ns) if Some(&ns) != outer.as_ref() => {
                    self.namespaces.insert(ns);
                    break;
                }
                // (already ended: its output says why)
                None => break,
                Some(_) if Instant::now() > deadline => break,
                Some(_) => {}
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child
    }

    fn output(&self, name: &str) -> String {
        let read = |ext: &str| {
            std::fs::read_to_string(self.dir.join(format!("{name}.{ext}"))).unwrap_or_default()
        };
        format!("stdout:\n{}\nstderr:\n{}", read("out"), read("err"))
    }

    /// Waits for a host's script; panics with its output when it failed.
    fn wait_ok(&self, name: &str, mut child: Child) {
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "host {name} failed ({status}):\n{}",
            self.output(name)
        );
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for pid in processes_in(&self.namespaces) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

/// The part of every host's script that mounts the export over sshfs on its own path and
/// unmounts whatever it mounted when the script ends, however it ends.
fn sshfs_prelude(export: &Path, options: &str) -> String {
    format!(
        "set -eu\nexport_dir={e}\n\
         cleanup() {{ \"$VENVFS\" umount \"$export_dir/venv\" >/dev/null 2>&1 || true; \
         fusermount3 -u \"$export_dir\" 2>/dev/null || umount -l \"$export_dir\" 2>/dev/null || true; }}\n\
         trap cleanup EXIT\n\
         sshfs -o {options} root@127.0.0.1:\"$export_dir\" \"$export_dir\"\n\
         grep -q \" $export_dir fuse.sshfs \" /proc/self/mounts\n",
        e = export.display()
    )
}

/// What each host runs in the venv while the others do the same: imports in fresh
/// interpreters, its own files, the same file replaced by all, a layer file replaced by
/// all, its own layer file changed in place and removed, a layer file removed by all, a
/// new file in a layer directory; host 0 also runs `pip install`.
const WORK: &str = r##"
import os, subprocess, sys, sysconfig, time
i, venv, sync, wheels = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
site = sysconfig.get_paths()["purelib"]
def blob(tag):
    line = tag.encode() + b"\n"
    return line * (65536 // len(line) + 1)
def flag(name):
    open(os.path.join(sync, name), "w").close()
def wait(name):
    deadline = time.time() + 30
    while not os.path.exists(os.path.join(sync, name)):
        if time.time() > deadline:
            sys.exit("timed out waiting for " + name)
        time.sleep(0.01)
flag(f"ready.{i}")
wait("go")
pip = None
if i == 0:
    pip = subprocess.Popen([sys.executable, "-m", "pip", "install", "-q", "--no-index",
                            "--no-deps", "--find-links", wheels, "click"],
                           env=dict(os.environ, PIP_NO_CACHE_DIR="1",
                                    PIP_DISABLE_PIP_VERSION_CHECK="1"))
own = os.path.join(venv, "share", f"host{i}")
os.makedirs(own, exist_ok=True)
for k in range(20):
    with open(os.path.join(own, f"f{k}.bin"), "wb") as f:
        f.write(blob(f"host{i} file{k}"))
    if k % 5 == 0:
        for m in ("six", "idna", "certifi", "urllib3"):
            subprocess.run([sys.executable, "-c", f"import {m}"], check=True)
for r in range(10):
    tmp = os.path.join(venv, "share", f".common.{i}.tmp")
    with open(tmp, "wb") as f:
        f.write(blob(f"host{i} round{r}"))
    os.replace(tmp, os.path.join(venv, "share", "common.bin"))
six = os.path.join(site, "six.py")
with open(os.path.join(sync, "six.orig"), "rb") as f:
    original = f.read()
with open(six + f".tmp{i}", "wb") as f:
    f.write(original + f"# host{i}\n".encode())
os.replace(six + f".tmp{i}", six)
mine = ["certifi/__main__.py", "idna/cli.py", "urllib3/contrib/pyopenssl.py"][i]
with open(os.path.join(site, mine), "a") as f:
    f.write(f"# host{i}\n")
gone = ["idna/codec.py", "idna/compat.py", "urllib3/contrib/emscripten/fetch.py"][i]
os.remove(os.path.join(site, gone))
try:
    os.remove(os.path.join(site, "urllib3/contrib/socks.py"))
except FileNotFoundError:
    pass
with open(os.path.join(site, "idna", f"host{i}.txt"), "w") as f:
    f.write(f"host{i}\n")
deadline = time.time() + 60
while pip is not None or not os.path.exists(os.path.join(sync, "pip.done")):
    if time.time() > deadline:
        sys.exit("timed out waiting for pip install in host0")
    for m in ("six", "idna", "certifi", "urllib3"):
        subprocess.run([sys.executable, "-c", f"import {m}"], check=True)
    if pip is not None:
        if pip.wait() != 0:
            sys.exit("pip install failed")
        flag("pip.done")
        pip = None
flag(f"done.{i}")
"##;

/// Run after every host unmounted, in a fresh mount over sshfs: what the hosts did is
/// all there.
const CHECK: &str = r##"
import base64, csv, hashlib, importlib.metadata, os, sys, sysconfig
venv, sync = sys.argv[1], sys.argv[2]
site = sysconfig.get_paths()["purelib"]
import six, idna, certifi, urllib3, click
print("click", click.__version__ if hasattr(click, "__version__") else "?")
dist = importlib.metadata.distribution("click")
rows = 0
for path, digest, size in csv.reader(dist.read_text("RECORD").splitlines()):
    if not digest:
        continue
    algo, want = digest.split("=", 1)
    with open(os.path.join(site, path), "rb") as f:
        got = base64.urlsafe_b64encode(hashlib.new(algo, f.read()).digest()).rstrip(b"=")
    assert got.decode() == want, path
    rows += 1
print("click files", rows)
with open(os.path.join(sync, "six.orig"), "rb") as f:
    original = f.read()
with open(os.path.join(site, "six.py"), "rb") as f:
    got = f.read()
assert got in [original + f"# host{i}\n".encode() for i in range(3)], got[-40:]
for i, mine in enumerate(["certifi/__main__.py", "idna/cli.py", "urllib3/contrib/pyopenssl.py"]):
    with open(os.path.join(site, mine)) as f:
        text = f.read()
    assert text.endswith(f"# host{i}\n"), (mine, text[-40:])
    with open(os.path.join(site, "idna", f"host{i}.txt")) as f:
        assert f.read() == f"host{i}\n"
for gone in ["idna/codec.py", "idna/compat.py", "urllib3/contrib/emscripten/fetch.py",
             "urllib3/contrib/socks.py"]:
    assert not os.path.exists(os.path.join(site, gone)), gone
print("checked")
"##;

#[test]
fn hosts_share_one_venv_over_sshfs() {
    for program in ["sshfs", "sshd", "ssh-keygen", "unshare", "fusermount3"] {
        require(program);
    }
    let t0 = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("venvfs-hosts-")
        .tempdir()
        .unwrap();
    let root = tmp.path().canonicalize().unwrap();
    // (VENVFS_KEEP_TEST_DIR=1 keeps the directory, its scripts and their output, to look at)
    if std::env::var_os("VENVFS_KEEP_TEST_DIR").is_some() {
        eprintln!("keeping {}", tmp.keep().display());
    }
    let sshd = Sshd::start(&root.join("ssh"));
    let sync = root.join("sync");
    std::fs::create_dir_all(&sync).unwrap();
    let mut hosts = Hosts {
        namespaces: BTreeSet::new(),
        dir: root.join("hosts"),
    };
    std::fs::create_dir_all(&hosts.dir).unwrap();

    // the venv, synced here from a uv cache of the test's own, in the exported directory
    let export = root.join("export");
    std::fs::create_dir_all(&export).unwrap();
    let venv = export.join("venv");
    let wheels = test_wheels_dir().unwrap();
    let names = ["six-", "idna-", "certifi-", "urllib3-", "pip-"];
    let picked: Vec<PathBuf> = names.iter().map(|n| shared_wheel(n)).collect();
    let reqs = root.join("requirements.txt");
    std::fs::write(&reqs, pins(&picked)).unwrap();
    let cache = root.join("uv-cache");
    let fill = root.join("fill");
    uv_venv(&fill);
    fill_uv_cache(&fill, &wheels, &reqs, &cache);
    uv_venv(&venv);
    run_ok(
        venvfs()
            .arg("sync")
            .arg(&venv)
            .arg(&reqs)
            .env("UV_CACHE_DIR", &cache),
    );
    let layers_before = snapshot(&cache);
    let six_orig = std::fs::read(cache_file(&cache, "six.py")).unwrap();
    std::fs::write(sync.join("six.orig"), &six_orig).unwrap();
    let env = |extra: &[(&'static str, String)]| {
        let mut v: Vec<(&'static str, String)> =
            vec![("UV_CACHE_DIR", cache.display().to_string())];
        v.extend(extra.iter().cloned());
        v
    };

    // Debian's sshfs defaults hide the venv's interpreter link: sync and mount say why
    let refused = format!(
        "{}\
         if \"$VENVFS\" sync \"$export_dir/venv\" {reqs} >/dev/null 2>\"$export_dir/../sync/sync.err\"; \
         then echo 'sync succeeded'; exit 1; fi\n\
         if \"$VENVFS\" mount \"$export_dir/venv\" 2>\"$export_dir/../sync/mount.err\"; \
         then echo 'mount succeeded'; exit 1; fi\n",
        sshfs_prelude(&export, &sshd.sshfs_options("")),
        reqs = reqs.display()
    );
    let child = hosts.spawn("defaults", &refused, &env(&[]));
    hosts.wait_ok("defaults", child);
    for cmd in ["sync", "mount"] {
        let err = std::fs::read_to_string(sync.join(format!("{cmd}.err"))).unwrap();
        assert!(
            err.contains("contain_symlinks") && err.contains("-o no_contain_symlinks"),
            "`venvfs {cmd}` on sshfs with contain_symlinks does not name the cause and fix: {err}"
        );
    }

    // the hosts, at once
    let work = root.join("work.py");
    std::fs::write(&work, WORK).unwrap();
    let options = sshd.sshfs_options("no_contain_symlinks");
    // (`venvfs status` in each namespace names that namespace's own daemon: the registry
    // of running daemons is the machine's, and holds one for the same path per namespace)
    let script = format!(
        "{}mounted=$(\"$VENVFS\" mount \"$export_dir/venv\")\n\
         echo \"$mounted\"\n\
         pid=$(echo \"$mounted\" | sed -n 's/.*venvfs daemon pid \\([0-9]*\\).*/\\1/p')\n\
         \"$VENVFS\" status | grep -q \"daemon pid $pid\\$\" || \
         {{ echo \"status names another daemon than $pid\"; \"$VENVFS\" status; exit 1; }}\n\
         \"$export_dir/venv/bin/python\" {work} \"$HOST\" \"$export_dir/venv\" {sync} {wheels}\n\
         \"$VENVFS\" umount \"$export_dir/venv\"\n\
         n=0; while ! fusermount3 -u \"$export_dir\" 2>/dev/null && [ $n -lt 40 ]; do sleep 0.05; n=$((n+1)); done\n\
         if grep -q \" $export_dir fuse.sshfs \" /proc/self/mounts; then \
         for p in /proc/[0-9]*; do ls -l $p/cwd $p/fd 2>/dev/null | grep -q \"$export_dir\" && \
         echo \"holder: $(cat $p/cmdline | tr '\\0' ' ') $(readlink $p/ns/mnt)\"; done; \
         echo \"self: $(readlink /proc/self/ns/mnt)\"; exit 1; fi\n\
         trap - EXIT\n",
        sshfs_prelude(&export, &options),
        work = work.display(),
        sync = sync.display(),
        wheels = wheels.display(),
    );
    let children: Vec<(String, Child)> = (0..HOSTS)
        .map(|i| {
            let name = format!("host{i}");
            let child = hosts.spawn(&name, &script, &env(&[("HOST", i.to_string())]));
            (name, child)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut children = children;
    while (0..HOSTS).any(|i| !sync.join(format!("ready.{i}")).exists()) {
        let ended = children
            .iter_mut()
            .any(|(_, c)| c.try_wait().unwrap().is_some());
        if ended || Instant::now() > deadline {
            for (name, _) in &children {
                eprintln!("{name}: {}", hosts.output(name));
            }
            panic!("the hosts did not all mount (in time)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(sync.join("go"), "").unwrap();
    for (name, child) in children {
        hosts.wait_ok(&name, child);
    }

    // every host's own files complete; the shared one is one writer's complete version
    let blob = |tag: &str| {
        let line = format!("{tag}\n").into_bytes();
        line.repeat(65536 / line.len() + 1)
    };
    for i in 0..HOSTS {
        for k in 0..20 {
            let got = std::fs::read(export.join(format!("venv/share/host{i}/f{k}.bin"))).unwrap();
            assert!(
                got == blob(&format!("host{i} file{k}")),
                "host{i} f{k} torn"
            );
        }
    }
    let common = std::fs::read(export.join("venv/share/common.bin")).unwrap();
    assert!(
        (0..HOSTS).any(|i| common == blob(&format!("host{i} round9"))),
        "common.bin is no writer's last version ({} bytes)",
        common.len()
    );

    // a fresh mount over sshfs sees all of it, pip's package complete
    let check = root.join("check.py");
    std::fs::write(&check, CHECK).unwrap();
    let script = format!(
        "{}\"$VENVFS\" mount \"$export_dir/venv\"\n\
         \"$export_dir/venv/bin/python\" {check} \"$export_dir/venv\" {sync}\n",
        sshfs_prelude(&export, &options),
        check = check.display(),
        sync = sync.display(),
    );
    let child = hosts.spawn("check", &script, &env(&[]));
    hosts.wait_ok("check", child);
    let out = hosts.output("check");
    assert!(out.contains("checked"), "{out}");

    // nothing left behind
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_in(&hosts.namespaces).is_empty() {
        assert!(
            Instant::now() < deadline,
            "processes left in the hosts' namespaces: {:?}",
            processes_in(&hosts.namespaces)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.contains(&*root.to_string_lossy()),
        "mounts left: {mounts}"
    );
    let work_dirs: Vec<_> = std::fs::read_dir(venv.join(".venvfs/work"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(work_dirs.is_empty(), "work directories left: {work_dirs:?}");
    assert_eq!(snapshot(&cache), layers_before, "the layers changed");

    // what cannot be made safe is refused: materialize while a daemon of another host may
    // serve the venv (its work directory is there) would swap the directory from under it
    let other = venv.join(".venvfs/work/otherhost.4026531836.42");
    std::fs::create_dir_all(&other).unwrap();
    let out = run(venvfs().arg("materialize").arg(&venv));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("otherhost (pid 42)"),
        "materialize with another host's daemon about: {err}"
    );
    std::fs::remove_dir(&other).unwrap();
    assert!(
        venv.join(".venvfs/manifest.toml").is_file(),
        "the venv was left as it was"
    );
    drop(sshd);
    eprintln!("many hosts: {:.1} s", t0.elapsed().as_secs_f64());
}

/// A file of uv's cache by name (the unpacked wheel's copy).
fn cache_file(cache: &Path, name: &str) -> PathBuf {
    entries_below(cache)
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| p.file_name().is_some_and(|n| n == name))
        .unwrap_or_else(|| panic!("no {name} in {}", cache.display()))
}
