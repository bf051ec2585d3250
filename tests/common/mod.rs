//! Shared pieces of the real-mount tests: a guard that always unmounts, venv and wheel
//! builders, and snapshots that prove the layers were not changed.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn venvfs() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_venvfs"));
    // venvfs's own cache (interpreter facts, uv-cache index, layer listings) for the
    // tests' throwaway caches stays out of the user's
    cmd.env(
        "XDG_CACHE_HOME",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("xdg-cache"),
    );
    // nor does it read the user's uv cache: without `UV_CACHE_DIR` (which a test may set
    // again) it looks in `$XDG_CACHE_HOME/uv`, above
    cmd.env_remove("UV_CACHE_DIR");
    // and never reaches the network: a pin no test source has is an error, not a download
    // (the fetch tests allow fetching, from an index of their own on 127.0.0.1)
    cmd.env("VENVFS_OFFLINE", "1");
    cmd
}

/// Gives `cmd` the environment changes `from` makes (a command that runs venvfs by another
/// program, such as `unshare`, with what [`venvfs`] sets).
pub fn with_env_of<'a>(cmd: &'a mut Command, from: &Command) -> &'a mut Command {
    for (k, v) in from.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd
}

/// Runs a command, panicking with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub mod index_server;
pub mod sshd;
mod wheels_dir;
pub use wheels_dir::test_wheels_dir;

/// The real PyPI wheel whose file name starts with `prefix`, from the test wheels'
/// directory (`test_wheels_dir`).
/// How many requests of `kind` the daemon of mounted `venv` has served, as `status
/// --requests` (run by `venvfs`, with its environment) tells.
pub fn served(venvfs: &mut Command, venv: &Path, kind: &str) -> u64 {
    let out = run_ok(venvfs.args(["status", "--requests"]));
    // (a line per venv, its details indented under it)
    let mut mine = false;
    for l in out.lines() {
        if !l.starts_with(' ') {
            mine = l.trim() == venv.display().to_string();
            continue;
        }
        let mut w = l.split_whitespace();
        if mine && w.next() == Some(kind) {
            return w.next().unwrap().parse().unwrap();
        }
    }
    0
}

pub fn shared_wheel(prefix: &str) -> PathBuf {
    let dir = test_wheels_dir().unwrap_or_else(|e| panic!("{e}"));
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list the test wheels in {}: {e}", dir.display()));
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(prefix) && n.ends_with(".whl")
        })
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "no {prefix}*.whl in {} (scripts/test-wheels fetches the wheels of tests/wheels.txt)",
            dir.display()
        )
    })
}

/// Unpacks a wheel into a directory, as uv's cache holds it.
pub fn unpack(wheel: &Path, dest: &Path) {
    run_ok(
        Command::new("python3")
            .args(["-m", "zipfile", "-e"])
            .arg(wheel)
            .arg(dest),
    );
}

/// A scratch area with a fresh venv (python3 -m venv --without-pip).
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub venv: PathBuf,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("venvfs-test-")
            .tempdir()
            .unwrap();
        let venv = dir.path().join("venv");
        run_ok(
            Command::new("python3")
                .args(["-m", "venv", "--without-pip"])
                .arg(&venv),
        );
        Scratch { dir, venv }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn add_layers(&self, sources: &[&Path]) {
        run_ok(
            venvfs()
                .args(["layer", "add"])
                .arg(&self.venv)
                .args(sources),
        );
    }

    pub fn mount(&self) -> Mount {
        Mount::new(&self.venv)
    }

    pub fn python(&self, code: &str) -> Output {
        run(Command::new(self.venv.join("bin/python"))
            .args(["-c", code])
            .env_remove("PYTHONPATH"))
    }

    pub fn python_ok(&self, code: &str) -> String {
        let out = self.python(code);
        assert!(
            out.status.success(),
            "python failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// A mounted venv; dropping it unmounts, also when the test panicked.
pub struct Mount {
    pub venv: PathBuf,
    active: bool,
}

impl Mount {
    pub fn new(venv: &Path) -> Mount {
        Mount::with_args(venv, &[])
    }

    /// Mounts with extra `venvfs mount` options (such as `--allow-other`).
    pub fn with_args(venv: &Path, args: &[&str]) -> Mount {
        run_ok(venvfs().arg("mount").args(args).arg(venv));
        Mount {
            venv: venv.to_owned(),
            active: true,
        }
    }

    /// Mounts with variables in the environment of `venvfs mount` (and so of its daemon).
    pub fn with_env(venv: &Path, vars: &[(&str, &str)]) -> Mount {
        run_ok(venvfs().arg("mount").arg(venv).envs(vars.iter().copied()));
        Mount {
            venv: venv.to_owned(),
            active: true,
        }
    }

    /// Takes charge of a mount the test made itself (to read what `venvfs mount` said).
    pub fn adopt(venv: &Path) -> Mount {
        Mount {
            venv: venv.to_owned(),
            active: true,
        }
    }

    /// Unmounts now, checking that it worked.
    pub fn unmount(mut self) {
        run_ok(venvfs().arg("umount").arg(&self.venv));
        self.active = false;
    }

    /// The daemon's pid, from `venvfs status`.
    pub fn daemon_pid(&self) -> u32 {
        let status = run_ok(&mut venvfs_status());
        let mut lines = status
            .lines()
            .skip_while(|l| Path::new(l.trim()) != self.venv);
        lines.next();
        let pid_line = lines.next().expect("status lists the mount");
        pid_line
            .trim()
            .strip_prefix("daemon pid ")
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Marks the mount as already gone (the test killed or unmounted it itself).
    pub fn forget(mut self) {
        self.active = false;
    }
}

fn venvfs_status() -> Command {
    let mut c = venvfs();
    c.arg("status");
    c
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.active {
            let ok = venvfs()
                .arg("umount")
                .arg(&self.venv)
                .output()
                .is_ok_and(|o| o.status.success());
            if !ok {
                let _ = Command::new("fusermount3")
                    .arg("-u")
                    .arg("-z")
                    .arg(&self.venv)
                    .output();
                let _ = Command::new("umount").arg("-l").arg(&self.venv).output();
            }
        }
    }
}

/// Every file below a directory (or a single file) with its mode, size, mtime and content
/// hash: compare before and after a test to prove nothing was changed.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, u64, i64, u64)> {
    use std::hash::{Hash, Hasher};
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let digest = if m.is_file() {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::fs::read(&p).unwrap().hash(&mut h);
            h.finish()
        } else {
            0
        };
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        out.insert(p, (m.mode(), m.len(), m.mtime(), digest));
    }
    out
}

/// A wheel built for a test: `files` are (path, content, stored?) at the wheel root,
/// dist-info (METADATA, WHEEL, RECORD) added.
pub fn build_wheel(
    dest_dir: &Path,
    name: &str,
    version: &str,
    files: &[(&str, &[u8], bool)],
) -> PathBuf {
    use zip::write::SimpleFileOptions;
    let path = dest_dir.join(format!("{name}-{version}-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let dist = format!("{name}-{version}.dist-info");
    let mut record = String::new();
    let mut all: Vec<(String, Vec<u8>, bool)> = files
        .iter()
        .map(|(p, c, s)| ((*p).to_owned(), c.to_vec(), *s))
        .collect();
    all.push((
        format!("{dist}/METADATA"),
        format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").into_bytes(),
        false,
    ));
    all.push((
        format!("{dist}/WHEEL"),
        b"Wheel-Version: 1.0\nGenerator: venvfs-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
            .to_vec(),
        false,
    ));
    for (p, c, stored) in &all {
        let method = if *stored {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        let mode = if p.contains("/scripts/") {
            0o755
        } else {
            0o644
        };
        zip.start_file(
            p.as_str(),
            SimpleFileOptions::default()
                .compression_method(method)
                .unix_permissions(mode),
        )
        .unwrap();
        zip.write_all(c).unwrap();
        record.push_str(&format!("{p},,\n"));
    }
    record.push_str(&format!("{dist}/RECORD,,\n"));
    zip.start_file(format!("{dist}/RECORD"), SimpleFileOptions::default())
        .unwrap();
    zip.write_all(record.as_bytes()).unwrap();
    zip.finish().unwrap();
    path
}

/// uv, with its cache (and any Python it downloads) under the tests' target directory, so
/// that the tests never write into the user's uv cache or home directory. A test that needs
/// a cache of its own sets `UV_CACHE_DIR` again.
pub fn uv() -> Command {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut cmd = Command::new("uv");
    cmd.env("UV_CACHE_DIR", tmp.join("uv-cache"))
        .env("UV_PYTHON_INSTALL_DIR", tmp.join("uv-python"));
    cmd
}

/// `uv pip ARGS --python VENV/bin/python`, offline, with a uv cache of the test's own.
pub fn uv_pip(venv: &Path, cache: &Path, args: &[&str], find_links: &Path) {
    run_ok(
        uv().env("UV_CACHE_DIR", cache)
            .env_remove("UV_LINK_MODE")
            .arg("pip")
            .args(args)
            .arg("--python")
            .arg(venv.join("bin/python"))
            .env("UV_NO_INDEX", "1")
            .env("UV_FIND_LINKS", find_links),
    );
}

/// Every entry below `dir` (not `dir` itself), with its type; symlinks are not followed.
pub fn entries_below(dir: &Path) -> Vec<(PathBuf, std::fs::FileType)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            }
            out.push((e.path(), t));
        }
    }
    out
}

/// A program of a test venv (`bin/python`, `bin/pip`, ...), with pip kept out of the
/// user's home directory: no cache, and no version check (which writes a file there).
pub fn venv_program(venv: &Path, program: &str) -> Command {
    let mut cmd = Command::new(venv.join("bin").join(program));
    cmd.env("PIP_NO_CACHE_DIR", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
    cmd
}

/// Files of a venv (symlink targets as content) with the venv path replaced, minus what
/// legitimately differs: bytecode, the interpreter links and activation scripts, uv's own
/// cache note, and INSTALLER (uv writes "uv", venvfs "venvfs"). RECORD is parsed into a set
/// of rows without those files' rows.
pub fn contents(venv: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![venv.to_owned()];
    let abs = venv.canonicalize().unwrap();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(venv).unwrap().to_string_lossy().into_owned();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if name == "__pycache__" {
                // (bytecode: a directory, or a link to a store's directory in a mount)
                continue;
            }
            if meta.is_dir() {
                if name != ".venvfs" {
                    stack.push(p);
                }
                continue;
            }
            // (activation scripts: venvfs sets uv's link mode in them, PowerShell's too)
            let skip = rel.starts_with("bin/activate")
                || rel == "bin/Activate.ps1"
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
pub fn assert_same_files(ours: &Path, reference: &Path, when: &str) -> usize {
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

/// A wheel with every part an installer must place: `.data/scripts` (one `#!python`, one
/// shell script), `.data/headers`, `.data/data`, a console script, a `.pth` file, stored and
/// deflated members.
pub fn demo_wheel(dir: &Path, name: &str, version: &str) -> PathBuf {
    let data = format!("{name}-{version}.data");
    let dist = format!("{name}-{version}.dist-info");
    let tool = format!("#!python\nimport {name}\nprint('tool', {name}.VALUE)\n");
    let init = "VALUE = 42\ndef main():\n    print('main', VALUE)\n".to_string();
    let pth = format!("{name}_extra\n");
    let big = vec![7u8; 200_000];
    build_wheel(
        dir,
        name,
        version,
        &[
            (&format!("{name}/__init__.py"), init.as_bytes(), true),
            (&format!("{name}/big.bin"), &big, true),
            (&format!("{name}.pth"), pth.as_bytes(), false),
            (
                &format!("{name}_extra/{name}_pth_mod.py"),
                b"OK = 1\n",
                false,
            ),
            (
                &format!("{data}/scripts/{name}-tool"),
                tool.as_bytes(),
                false,
            ),
            (
                &format!("{data}/scripts/{name}-plain"),
                b"#!/bin/sh\necho plain\n",
                true,
            ),
            (
                &format!("{data}/headers/{name}.h"),
                b"int demo(void);\n",
                false,
            ),
            (
                &format!("{data}/data/share/{name}/readme.txt"),
                b"data\n",
                false,
            ),
            (
                &format!("{dist}/entry_points.txt"),
                format!("[console_scripts]\n{name}-main = {name}:main\n").as_bytes(),
                false,
            ),
        ],
    )
}

/// A `--find-links` directory: links to the shared wheels and the demo wheel.
pub fn wheelhouse(s: &Scratch, shared: &[&str]) -> (PathBuf, Vec<PathBuf>) {
    let dir = s.path("wheelhouse");
    std::fs::create_dir_all(&dir).unwrap();
    let mut wheels = Vec::new();
    for w in shared {
        let src = shared_wheel(w);
        let link = dir.join(src.file_name().unwrap());
        std::os::unix::fs::symlink(&src, &link).unwrap();
        wheels.push(src);
    }
    wheels.push(demo_wheel(&dir, "demo_pkg", "1.0"));
    (dir, wheels)
}

/// `name==version` lines for the wheels.
pub fn pins(wheels: &[PathBuf]) -> String {
    wheels
        .iter()
        .map(|w| {
            let n = w.file_name().unwrap().to_string_lossy();
            let mut parts = n.split('-');
            format!("{}=={}\n", parts.next().unwrap(), parts.next().unwrap())
        })
        .collect()
}

pub fn py(venv: &Path, args: &[&str]) -> String {
    run_ok(venv_program(venv, "python").args(args))
}

pub fn uv_venv(path: &Path) {
    run_ok(uv().args(["venv", "-q", "--python", "3.11"]).arg(path));
}

/// A venv at `path` with the pins of `reqs` installed from the wheelhouse `house` by
/// `uv pip install --link-mode=copy`: what venvfs's venvs are compared with.
pub fn uv_copy_venv(path: &Path, house: &Path, reqs: &Path) {
    uv_venv(path);
    run_ok(
        uv().args([
            "pip",
            "install",
            "-q",
            "--link-mode=copy",
            "--no-deps",
            "--no-index",
        ])
        .arg("--python")
        .arg(path.join("bin/python"))
        .arg("--find-links")
        .arg(house)
        .arg("-r")
        .arg(reqs),
    );
}

/// Fills the uv cache `cache` the way users do, by installing the pins of `reqs` from the
/// wheelhouse `house` into the venv `fill` with uv once.
pub fn fill_uv_cache(fill: &Path, house: &Path, reqs: &Path, cache: &Path) -> String {
    run_ok(
        uv().args([
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--python",
        ])
        .arg(fill.join("bin/python"))
        .arg("-f")
        .arg(house)
        .arg("-r")
        .arg(reqs)
        .env("UV_CACHE_DIR", cache),
    )
}

/// Waits until `venvfs list` shows `pin` (`name==version`) served as `how` (`layer`).
pub fn wait_for_list(venv: &Path, pin: &str, how: &str) {
    wait_listed(venv, &format!("{pin} served as {how}"), |text| {
        text.lines().any(|l| {
            l.starts_with(&format!("{pin} ")) && l.trim_end().ends_with(&format!(" {how}"))
        })
    });
}

/// Waits (30 s at most) until what `venvfs list` prints is `ok`.
pub fn wait_listed(venv: &Path, what: &str, ok: impl Fn(&str) -> bool) {
    let started = std::time::Instant::now();
    loop {
        let out = venvfs().arg("list").arg(venv).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if ok(&text) {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "not {what} after 30 s:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// The system calls `calls` (strace's `-e trace=`) daemon `pid` makes over `secs` seconds,
/// while `during` runs (after strace had a second to attach).
pub fn daemon_calls(pid: u32, secs: u32, calls: &str, log: &Path, during: impl FnOnce()) -> String {
    let mut strace = Command::new("timeout")
        .args(["-s", "INT", &secs.to_string(), "strace", "-f", "-qq", "-e"])
        .arg(format!("trace={calls}"))
        .arg("-o")
        .arg(log)
        .args(["-p", &pid.to_string()])
        .spawn()
        .expect("timeout and strace (apt-get install strace)");
    std::thread::sleep(std::time::Duration::from_millis(1000));
    during();
    let status = strace.wait().unwrap();
    let trace = std::fs::read_to_string(log).unwrap_or_else(|e| panic!("no strace log: {e}"));
    assert_eq!(
        status.code(),
        Some(124),
        "strace did not run its time:\n{trace}"
    );
    trace
}

/// That `trace` shows the daemon at `control` (so the trace sees what it does) and never
/// at `unseen`.
pub fn assert_traced(trace: &str, control: &str, unseen: &str, why: &str) {
    assert!(
        trace.contains(control),
        "the trace misses the daemon at {control}:\n{trace}"
    );
    assert!(!trace.contains(unseen), "{why}:\n{trace}");
}
