//! Who may mount, and who may use a mount: an unprivileged user mounting through
//! `fusermount3`, and other users kept out of a mount unless `--allow-other`.
//!
//! Commands run as `nobody` (uid 65534) through `setpriv` (or `runuser`), so these tests
//! need root; as another user they say so and pass without checking anything.

mod common;

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{run, run_ok, shared_wheel, snapshot};

const NOBODY: u32 = 65534;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum User {
    Root,
    Nobody,
}

/// A scratch directory others can traverse, and the mount namespace the test's commands
/// run in.
struct World {
    /// The machine's mount namespace, or a private one (see [`Private`]).
    private: Option<Private>,
    dir: tempfile::TempDir,
    /// A venvfs binary `nobody` can run.
    venvfs: PathBuf,
    /// `nobody`'s `$HOME` and `$XDG_RUNTIME_DIR` (where `venvfs status` finds daemons).
    home: PathBuf,
}

/// A private mount namespace, held open by a `sleep` we started, in which `/dev/fuse` is
/// `0666` as most distributions ship it. `fusermount3` opens `/dev/fuse` as the calling
/// user, so where it is `0600 root` no unprivileged user can mount FUSE at all; the
/// namespace gives the test that common setup without changing the machine's.
struct Private {
    holder: Child,
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Says why the test cannot run here, or `None` when it can.
fn cannot_switch_users() -> Option<&'static str> {
    if !is_root() {
        return Some("needs root to run commands as nobody");
    }
    None
}

/// The command prefix that runs a program as `nobody`, keeping the environment.
fn as_nobody_prefix() -> &'static [OsString] {
    static PREFIX: OnceLock<Vec<OsString>> = OnceLock::new();
    PREFIX.get_or_init(find_as_nobody_prefix)
}

fn find_as_nobody_prefix() -> Vec<OsString> {
    let have = |bin: &str| {
        Command::new(bin)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    let words: &[&str] = if have("setpriv") {
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ]
    } else if have("runuser") {
        &["runuser", "-m", "-u", "nobody", "--"]
    } else {
        panic!("neither setpriv nor runuser (util-linux) is installed: cannot run as nobody");
    };
    words.iter().map(OsString::from).collect()
}

impl World {
    /// A world for `nobody` to mount in: the machine itself when `nobody` may open
    /// `/dev/fuse`, else a private mount namespace where it may.
    fn for_unprivileged_mounts() -> World {
        let mut w = World::host();
        if !w.nobody_can_open_dev_fuse() {
            w.private = Some(w.private_namespace());
            assert!(
                w.nobody_can_open_dev_fuse(),
                "/dev/fuse is still not open to nobody in the private namespace"
            );
        }
        w
    }

    /// The machine's own mount namespace.
    fn host() -> World {
        let dir = tempfile::Builder::new()
            .prefix("venvfs-perm-")
            .tempdir()
            .unwrap();
        // Tempdirs are 0700: other users must be able to reach the venv.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        chown_nobody(&home);
        let mut w = World {
            private: None,
            dir,
            venvfs: PathBuf::from(env!("CARGO_BIN_EXE_venvfs")),
            home,
        };
        w.venvfs = w.venvfs_for_nobody();
        w
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `program` as `user`, in this world's mount namespace.
    fn cmd(&self, user: User, program: impl AsRef<OsStr>) -> Command {
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(p) = &self.private {
            argv.extend(
                ["nsenter", "-t", &p.holder.id().to_string(), "-m", "--"].map(OsString::from),
            );
        }
        if user == User::Nobody {
            argv.extend(as_nobody_prefix().iter().cloned());
        }
        argv.push(program.as_ref().to_owned());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).env_remove("PYTHONPATH");
        if user == User::Nobody {
            cmd.env("HOME", &self.home)
                .env("XDG_RUNTIME_DIR", &self.home)
                .env_remove("VENVFS_TEST_WHEELS");
        }
        cmd
    }

    fn venvfs(&self, user: User) -> Command {
        self.cmd(user, &self.venvfs)
    }

    /// The mount table of this world's namespace.
    fn mount_table(&self) -> String {
        let table = match &self.private {
            Some(p) => format!("/proc/{}/mounts", p.holder.id()),
            None => "/proc/mounts".to_owned(),
        };
        std::fs::read_to_string(table).unwrap()
    }

    /// The `/proc/mounts` line of the venvfs mount at `path`, if any.
    fn mount_line(&self, path: &Path) -> Option<String> {
        let needle = format!(" {} fuse.venvfs ", path.display());
        self.mount_table()
            .lines()
            .find(|l| l.contains(&needle))
            .map(str::to_owned)
    }

    fn nobody_can_open_dev_fuse(&self) -> bool {
        self.cmd(User::Nobody, "sh")
            .args(["-c", "exec 3<>/dev/fuse"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A private mount namespace in which `/dev/fuse` is a `0666` node of the same device.
    /// The node lives on a tmpfs mounted only inside that namespace.
    fn private_namespace(&self) -> Private {
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sleep", "3600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("cannot run unshare (util-linux)");
        let private = Private { holder };
        let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
        let pid = private.holder.id().to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        while ns(&pid) == ns("self") || ns(&pid).is_none() {
            assert!(
                Instant::now() < deadline,
                "unshare did not make a namespace"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let rdev = std::fs::metadata("/dev/fuse").unwrap().rdev();
        let (major, minor) = (
            ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff),
            (rdev & 0xff) | ((rdev >> 12) & !0xff),
        );
        let devdir = self.path("dev");
        std::fs::create_dir(&devdir).unwrap();
        std::fs::set_permissions(&devdir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let d = devdir.display();
        let script = format!(
            "mount -t tmpfs -o mode=0700,size=64k venvfs-test {d} && \
             mknod -m 0666 {d}/fuse c {major} {minor} && mount --bind {d}/fuse /dev/fuse"
        );
        run_ok(
            Command::new("nsenter")
                .args(["-t", &pid, "-m", "--", "sh", "-c", &script])
                .env_remove("PYTHONPATH"),
        );
        private
    }

    /// `CARGO_BIN_EXE_venvfs` when `nobody` can run it, else a copy in the scratch dir.
    fn venvfs_for_nobody(&self) -> PathBuf {
        let ok = self
            .cmd(User::Nobody, "test")
            .arg("-x")
            .arg(&self.venvfs)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return self.venvfs.clone();
        }
        let bin = self.path("bin");
        std::fs::create_dir(&bin).unwrap();
        let copy = bin.join("venvfs");
        std::fs::copy(&self.venvfs, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        copy
    }

    /// A python3 that `nobody` can run (a pyenv build under /root is not one).
    fn python_for_nobody(&self) -> PathBuf {
        static PYTHON: OnceLock<PathBuf> = OnceLock::new();
        PYTHON.get_or_init(|| self.find_python_for_nobody()).clone()
    }

    fn find_python_for_nobody(&self) -> PathBuf {
        for candidate in ["python3", "/usr/bin/python3", "/usr/local/bin/python3"] {
            let ok = self
                .cmd(User::Nobody, candidate)
                .args(["-c", "import venv"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return PathBuf::from(candidate);
            }
        }
        panic!("no python3 that nobody can run (tried PATH, /usr/bin, /usr/local/bin)");
    }

    /// A new venv (`python -m venv --without-pip`), owned by `owner`.
    fn venv(&self, owner: User) -> PathBuf {
        let venv = self.path("venv");
        let python = match owner {
            User::Root => PathBuf::from("python3"),
            User::Nobody => self.python_for_nobody(),
        };
        run_ok(
            Command::new(python)
                .args(["-m", "venv", "--without-pip"])
                .arg(&venv)
                .env_remove("PYTHONPATH"),
        );
        if owner == User::Nobody {
            chown_nobody(&venv);
        }
        venv
    }

    /// Opens `path` as `nobody` with Python's `open(path, mode)`; writes `data` unless the
    /// mode reads. The content read, or the errno.
    fn nobody_open(&self, path: &Path, mode: &str, data: &str) -> Result<Vec<u8>, i32> {
        const SCRIPT: &str = "import sys\n\
            path, mode, data = sys.argv[1:4]\n\
            try:\n\
            \x20   with open(path, mode + 'b') as f:\n\
            \x20       sys.stdout.buffer.write(f.read()) if 'r' in mode else f.write(data.encode())\n\
            except OSError as e:\n\
            \x20   print(e.errno, file=sys.stderr)\n\
            \x20   sys.exit(3)\n";
        let out = run(self
            .cmd(User::Nobody, self.python_for_nobody())
            .args(["-c", SCRIPT])
            .arg(path)
            .args([mode, data]));
        match out.status.code() {
            Some(0) => Ok(out.stdout),
            Some(3) => Err(String::from_utf8_lossy(&out.stderr).trim().parse().unwrap()),
            _ => panic!(
                "python as nobody failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}

fn chown_nobody(path: &Path) {
    run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{NOBODY}:{NOBODY}"))
            .arg(path),
    );
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A venv mounted by `user`; dropping it unmounts, also when the test failed.
struct Mounted<'w> {
    world: &'w World,
    user: User,
    venv: PathBuf,
    active: bool,
}

impl<'w> Mounted<'w> {
    fn new(world: &'w World, user: User, venv: &Path, options: &[&str]) -> Mounted<'w> {
        // The guard exists before the mount does, so a half-finished mount is cleaned too.
        let guard = Mounted {
            world,
            user,
            venv: venv.to_owned(),
            active: true,
        };
        run_ok(world.venvfs(user).arg("mount").arg(venv).args(options));
        guard
    }

    /// `venvfs umount` as the user who mounted, checking that it worked.
    fn unmount(mut self) {
        self.active = false;
        run_ok(self.world.venvfs(self.user).arg("umount").arg(&self.venv));
        assert_eq!(self.world.mount_line(&self.venv), None, "still mounted");
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        let w = self.world;
        let _ = w.venvfs(self.user).arg("umount").arg(&self.venv).output();
        if w.mount_line(&self.venv).is_some() {
            let _ = w
                .cmd(User::Root, "fusermount3")
                .args(["-u", "-z", "--"])
                .arg(&self.venv)
                .output();
        }
        if w.mount_line(&self.venv).is_some() {
            let _ = w
                .cmd(User::Root, "umount")
                .arg("-l")
                .arg(&self.venv)
                .output();
        }
    }
}

/// The venv's `lib/pythonX.Y/site-packages`.
fn site_packages(venv: &Path) -> PathBuf {
    let lib = std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("python3")
        })
        .expect("the venv has lib/python3.X");
    lib.join("site-packages")
}

/// The version in a wheel's file name (`six-1.17.0-py2.py3-none-any.whl` → `1.17.0`).
fn wheel_version(wheel: &Path) -> String {
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    name.split('-').nth(1).unwrap().to_owned()
}

#[test]
fn an_unprivileged_user_mounts_through_fusermount3() {
    if let Some(why) = cannot_switch_users() {
        eprintln!("skipped: {why}");
        return;
    }
    let wheel = shared_wheel("six-");
    let before = snapshot(&wheel);
    let w = World::for_unprivileged_mounts();
    let venv = w.venv(User::Nobody);
    let six_py = site_packages(&venv).join("six.py");
    run_ok(
        w.venvfs(User::Nobody)
            .args(["layer", "add"])
            .arg(&venv)
            .arg(&wheel),
    );

    let m = Mounted::new(&w, User::Nobody, &venv, &[]);
    let line = w
        .mount_line(&venv)
        .expect("the mount is in the mount table");
    assert!(line.contains("user_id=65534"), "not nobody's mount: {line}");
    assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
    assert!(line.contains("default_permissions"), "{line}");
    assert!(!line.contains("allow_other"), "{line}");

    // Python as nobody imports the package from the wheel layer.
    let out = run(w
        .cmd(User::Nobody, venv.join("bin/python"))
        .args(["-c", "import six; print(six.__version__, six.__file__)"]));
    assert!(out.status.success(), "import six failed: {}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("{} {}", wheel_version(&wheel), six_py.display())
    );

    // nobody writes a new file, and edits a file of the layer (a copy-up).
    w.nobody_open(&venv.join("hello.txt"), "w", "written by nobody\n")
        .expect("nobody creates a file in its mount");
    w.nobody_open(&six_py, "a", "# edited by nobody\n")
        .expect("nobody edits a layer file of its mount");
    let read_back = w.nobody_open(&six_py, "r", "").unwrap();
    assert!(read_back.ends_with(b"# edited by nobody\n"));

    // `venvfs status` as nobody describes the mount.
    let status = run_ok(w.venvfs(User::Nobody).arg("status"));
    assert!(status.contains(&venv.display().to_string()), "{status}");
    assert!(status.contains("daemon pid"), "{status}");
    assert!(
        status.contains(&format!("six=={}", wheel_version(&wheel))),
        "{status}"
    );

    m.unmount();
    assert_eq!(w.mount_line(&venv), None);
    assert!(!std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .contains(&format!(" {} ", venv.display())));
    // What nobody wrote is in the venv directory itself, owned by nobody.
    let hello = venv.join("hello.txt");
    assert_eq!(
        std::fs::read_to_string(&hello).unwrap(),
        "written by nobody\n"
    );
    assert_eq!(std::fs::metadata(&hello).unwrap().uid(), NOBODY);
    let copied = std::fs::read(&six_py).expect("the edited six.py was copied up");
    assert_eq!(copied, read_back);
    assert_eq!(before, snapshot(&wheel), "the wheel layer changed");
}

#[test]
fn an_unprivileged_mount_without_dev_fuse_says_why() {
    if let Some(why) = cannot_switch_users() {
        eprintln!("skipped: {why}");
        return;
    }
    let w = World::host();
    if w.nobody_can_open_dev_fuse() {
        eprintln!("skipped: /dev/fuse is open to nobody on this machine");
        return;
    }
    let wheel = shared_wheel("six-");
    let before = snapshot(&wheel);
    let venv = w.venv(User::Nobody);
    run_ok(
        w.venvfs(User::Nobody)
            .args(["layer", "add"])
            .arg(&venv)
            .arg(&wheel),
    );
    // The daemon's own state (its log) may change; nothing else in the venv may.
    let state = venv.join(".venvfs");
    let venv_files = || {
        let mut files = snapshot(&venv);
        files.retain(|p, _| !p.starts_with(&state));
        files
    };
    let on_disk = venv_files();
    let m = Mounted {
        world: &w,
        user: User::Nobody,
        venv: venv.clone(),
        active: true,
    };
    let out = run(w.venvfs(User::Nobody).arg("mount").arg(&venv));
    assert!(!out.status.success(), "nobody mounted: {}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("fusermount3"), "{err}");
    assert!(err.contains("/dev/fuse"), "{err}");
    assert!(err.contains("0666"), "the fix is not named: {err}");
    assert_eq!(w.mount_line(&venv), None);
    drop(m);
    assert_eq!(on_disk, venv_files(), "the venv changed");
    assert_eq!(before, snapshot(&wheel), "the wheel layer changed");
}

#[test]
fn other_users_cannot_read_without_allow_other() {
    if let Some(why) = cannot_switch_users() {
        eprintln!("skipped: {why}");
        return;
    }
    let wheel = shared_wheel("six-");
    let before = snapshot(&wheel);
    let w = World::host();
    let venv = w.venv(User::Root);
    run_ok(
        w.venvfs(User::Root)
            .args(["layer", "add"])
            .arg(&venv)
            .arg(&wheel),
    );
    let six_py = site_packages(&venv).join("six.py");

    // Mounted by root as is: only root may use it.
    let m = Mounted::new(&w, User::Root, &venv, &[]);
    let content = std::fs::read(&six_py).unwrap();
    assert!(!content.is_empty());
    assert_eq!(
        w.nobody_open(&six_py, "r", ""),
        Err(libc::EACCES),
        "nobody read through a mount without allow_other"
    );
    assert_eq!(
        w.nobody_open(&venv.join("pyvenv.cfg"), "r", ""),
        Err(libc::EACCES),
        "nobody read the upper layer through a mount without allow_other"
    );
    m.unmount();

    // With --allow-other: nobody reads, and the file modes still hold (default_permissions).
    let m = Mounted::new(&w, User::Root, &venv, &["--allow-other"]);
    assert!(w.mount_line(&venv).unwrap().contains("allow_other"));
    assert_eq!(w.nobody_open(&six_py, "r", ""), Ok(content.clone()));
    let meta = std::fs::metadata(&six_py).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o644));
    assert_eq!(
        w.nobody_open(&six_py, "a", "# nobody was here\n"),
        Err(libc::EACCES),
        "nobody wrote root's 0644 file"
    );
    assert_eq!(
        w.nobody_open(&venv.join("new.txt"), "w", "x"),
        Err(libc::EACCES),
        "nobody created a file in root's 0755 venv"
    );
    assert_eq!(std::fs::read(&six_py).unwrap(), content);
    m.unmount();

    // Nothing was copied up or created, and the layer is untouched.
    assert!(!six_py.exists(), "six.py was copied up");
    assert!(!venv.join("new.txt").exists());
    assert_eq!(w.mount_line(&venv), None);
    assert_eq!(before, snapshot(&wheel), "the wheel layer changed");
}
