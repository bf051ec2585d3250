//! Reliability of a mounted venv: POSIX conformance (pjdfstest), data integrity (fsx), a
//! daemon killed with SIGKILL in the middle of writes, and a soak of concurrent importers and
//! writers. CI runs the short forms; `scripts/reliability --long` sets the variables below
//! for the long ones.
//!
//! - `VENVFS_FSX_OPS`: fsx operations per file (default 10,000)
//! - `VENVFS_KILL_ROUNDS`: mount / write / `kill -9` / remount / check rounds (default 8)
//! - `VENVFS_SOAK_SECS`: seconds of 16 importers and 4 writers (default 12)
//! - `VENVFS_SEED`: seed of the random choices (default: from the clock; printed)
//! - `VENVFS_RELIABILITY_LOGS`: a directory to keep the pjdfstest and fsx logs in
//!
//! pjdfstest and fsx (`cargo install --locked pjdfstest fsx`), root and a user named `tests`
//! are needed by the first two tests; without them these tests say so and pass, except under
//! CI (`CI` set), where they fail.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const SITE: &str = "lib/python3.11/site-packages";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small xorshift generator: the tests print their seed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn from_env(test: &str) -> Rng {
        let seed = env_u64(
            "VENVFS_SEED",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        );
        println!("reliability: {test}: VENVFS_SEED={seed}");
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The path of an external tool, on PATH or in `~/.cargo/bin`.
fn tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Whether what a test needs is here. Missing pieces fail the test under CI (which installs
/// them) and skip it elsewhere, saying what to install.
fn have(tools: &[&str], root_and_tests_user: bool) -> bool {
    let mut missing: Vec<String> = tools
        .iter()
        .filter(|t| tool(t).is_none())
        .map(|t| format!("{t} (cargo install --locked {t})"))
        .collect();
    if root_and_tests_user {
        if unsafe { libc::geteuid() } != 0 {
            missing.push("root".into());
        }
        let has_user = fs::read_to_string("/etc/passwd")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("tests:"));
        if !has_user {
            missing.push("a user named `tests` (useradd -M tests)".into());
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("this test needs {}", missing.join(", "));
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("SKIPPED: {msg}");
    false
}

fn keep_log(name: &str, text: &str) {
    if let Some(dir) = std::env::var_os("VENVFS_RELIABILITY_LOGS") {
        let dir = PathBuf::from(dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), text).unwrap();
    }
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Waits for a child at most `limit`; `None` (and the child killed) if it ran longer.
fn wait_at_most(mut child: Child, limit: Duration) -> Option<Output> {
    let started = Instant::now();
    loop {
        match child.try_wait().unwrap() {
            Some(_) => return Some(child.wait_with_output().unwrap()),
            None if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// pjdfstest
// ---------------------------------------------------------------------------------------------

/// The features Linux's native filesystems have, so that the suite checks them too, and a
/// short nap (the upper layer and the kernel keep nanosecond times). A second filesystem
/// for the EXDEV tests is added when there is one.
const PJDFSTEST_CONFIG: &str = "[features]\nposix_fallocate = {}\nrename_ctime = {}\nutime_now = {}\nutimensat = {}\n\n[settings]\nnaptime = 0.01\n";

/// Tests that pass natively and cannot run on any FUSE filesystem: glibc's
/// `pathconf(_PC_LINK_MAX)` knows the limits of ext4, xfs, btrfs, ... by their statfs magic
/// number and answers 127 ("unknown") for every other one, FUSE included, and pjdfstest skips
/// the test then. The daemon has no way to report a link limit.
const SKIPPED_ON_FUSE: &[&str] = &["link::link_count_max"];

struct PjdResult {
    summary: String,
    status: BTreeMap<String, String>,
}

fn pjdfstest(label: &str, config: &Path, dir: &Path) -> PjdResult {
    let out = run(Command::new(tool("pjdfstest").unwrap())
        .arg("-c")
        .arg(config)
        .arg("-p")
        .arg(dir));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    keep_log(&format!("pjdfstest-{label}.log"), &text);
    let summary = text
        .lines()
        .find_map(|l| l.strip_prefix("Summary: "))
        .unwrap_or_else(|| panic!("pjdfstest on {label} printed no summary:\n{text}"))
        .to_owned();
    let mut status = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some(name), Some(last)) = (words.next(), line.split_whitespace().last()) {
            if name.contains("::") && ["ok", "FAILED", "skipped"].contains(&last) {
                status.insert(name.to_owned(), last.to_owned());
            }
        }
    }
    println!("reliability: pjdfstest {label}: {summary}");
    PjdResult { summary, status }
}

fn with_status<'a>(r: &'a PjdResult, wanted: &str) -> BTreeSet<&'a str> {
    r.status
        .iter()
        .filter(|(_, s)| *s == wanted)
        .map(|(n, _)| n.as_str())
        .collect()
}

/// pjdfstest in a directory of the upper layer and in one that comes from a lower layer,
/// next to the same suite on the native filesystem: everything that passes natively passes
/// on the mount, except what no FUSE filesystem can run.
#[test]
fn pjdfstest_passes_what_native_passes_in_upper_and_lower_directories() {
    if !have(&["pjdfstest"], true) {
        return;
    }
    let s = Scratch::new();
    // pjdfstest switches to the user `tests`, which must reach the directories
    chmod(s.dir.path(), 0o755);
    // `.data/data` goes to the venv root: a lower directory with a short path (sockets are
    // bound by path, and a path in site-packages is too long for a socket address)
    let lowerdir = build_wheel(
        s.dir.path(),
        "lowerdir",
        "1.0",
        &[(
            "lowerdir-1.0.data/data/d/keep.txt",
            b"from a lower layer\n",
            false,
        )],
    );
    let six = shared_wheel("six-");
    let before = (snapshot(&lowerdir), snapshot(&six));
    s.add_layers(&[&lowerdir, &six]);
    // a directory on another filesystem, for the EXDEV tests (tmpfs, where there is one)
    let other_fs = Path::new("/dev/shm")
        .is_dir()
        .then(|| {
            tempfile::Builder::new()
                .prefix("venvfs-pjd-")
                .tempdir_in("/dev/shm")
        })
        .and_then(Result::ok)
        .filter(|d| {
            use std::os::unix::fs::MetadataExt;
            fs::metadata(d.path()).unwrap().dev() != fs::metadata(s.dir.path()).unwrap().dev()
        });
    let mut config_text = PJDFSTEST_CONFIG.to_owned();
    if let Some(d) = &other_fs {
        chmod(d.path(), 0o777);
        config_text = config_text.replacen(
            "[features]\n",
            &format!(
                "[features]\nsecondary_fs = {:?}\n",
                d.path().display().to_string()
            ),
            1,
        );
    }
    let config = s.path("pjdfstest.toml");
    fs::write(&config, config_text).unwrap();
    let native = s.path("n");
    fs::create_dir(&native).unwrap();
    chmod(&native, 0o777);

    let m = Mount::with_args(&s.venv, &["--allow-other"]);
    let upper = s.venv.join("u");
    fs::create_dir(&upper).unwrap();
    chmod(&upper, 0o777);
    let lower = s.venv.join("d");
    assert_eq!(
        fs::read(lower.join("keep.txt")).unwrap(),
        b"from a lower layer\n",
        "the directory comes from the lower layer"
    );
    chmod(&lower, 0o777);

    let native = pjdfstest("native", &config, &native);
    let results = [
        ("upper", pjdfstest("upper", &config, &upper)),
        ("lower", pjdfstest("lower", &config, &lower)),
    ];
    m.unmount();

    assert!(
        with_status(&native, "FAILED").is_empty(),
        "pjdfstest fails natively ({}): the machine, not venvfs, is at fault",
        native.summary
    );
    let native_ok = with_status(&native, "ok");
    assert!(native_ok.len() > 300, "{}", native.summary);
    for (label, r) in &results {
        let failed = with_status(r, "FAILED");
        assert!(failed.is_empty(), "{label}: {}: {failed:?}", r.summary);
        let ok = with_status(r, "ok");
        let missing: Vec<&&str> = native_ok
            .difference(&ok)
            .filter(|n| !SKIPPED_ON_FUSE.contains(n))
            .collect();
        assert!(
            missing.is_empty(),
            "{label}: these pass natively but not on the mount: {missing:?}"
        );
    }
    assert_eq!(
        before,
        (snapshot(&lowerdir), snapshot(&six)),
        "a layer changed"
    );
}

// ---------------------------------------------------------------------------------------------
// fsx
// ---------------------------------------------------------------------------------------------

/// Every operation fsx has on Linux, mmap and hole punching included.
const FSX_CONFIG: &str = "flen = 262144\n\n[weights]\nclose_open = 1\nread = 10\nwrite = 10\nmapread = 10\nmapwrite = 10\ninvalidate = 1\ntruncate = 2\nfsync = 1\nfdatasync = 1\nposix_fallocate = 2\npunch_hole = 2\nsendfile = 2\nposix_fadvise = 1\ncopy_file_range = 2\n";

/// Operations of one fsx process (see below).
const FSX_OPS_PER_RUN: u64 = 100_000;

/// fsx on a file made in the upper layer and on two lower files (one from a `.whl`, one from
/// an unpacked wheel) after a copy-up, all three at once.
#[test]
fn fsx_finds_no_mismatch_on_upper_and_copied_up_lower_files() {
    if !have(&["fsx"], false) {
        return;
    }
    let ops = env_u64("VENVFS_FSX_OPS", 10_000);
    let mut rng = Rng::from_env("fsx");
    let s = Scratch::new();
    let six = shared_wheel("six-");
    let idna = s.path("cache/idna");
    unpack(&shared_wheel("idna-"), &idna);
    let before = (snapshot(&six), snapshot(&idna));
    s.add_layers(&[&six, &idna]);
    let config = s.path("fsx.toml");
    fs::write(&config, FSX_CONFIG).unwrap();
    let m = s.mount();
    let site = s.venv.join(SITE);
    let files = [
        ("upper file", site.join("fsx-upper.bin")),
        ("lower file of a .whl", site.join("six.py")),
        ("lower file of a directory", site.join("idna/core.py")),
    ];
    // the copy-up keeps the lower content
    for (_, f) in &files[1..] {
        let original = fs::read(f).unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(f)
            .unwrap()
            .write_all(b"# copied up\n")
            .unwrap();
        assert_eq!(
            fs::read(f).unwrap(),
            [&original[..], b"# copied up\n"].concat()
        );
    }
    // fsx 0.3.2 never unmaps what its mapped reads map, so one process runs into
    // vm.max_map_count (65,530) after about 370,000 operations and slows down as its
    // mappings pile up: the operations are run as consecutive fsx processes of at most
    // FSX_OPS_PER_RUN each, on the same file (each starts by truncating it).
    let runs: Vec<u64> = (0..ops.div_ceil(FSX_OPS_PER_RUN))
        .map(|k| (ops - k * FSX_OPS_PER_RUN).min(FSX_OPS_PER_RUN))
        .collect();
    let seeds: Vec<Vec<u64>> = files
        .iter()
        .map(|_| runs.iter().map(|_| rng.next() % 1_000_000_007).collect())
        .collect();
    let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, (label, f))| {
                let (config, runs, seeds) = (&config, &runs, &seeds[i]);
                let artifacts = s.path(&format!("fsx-{i}"));
                fs::create_dir(&artifacts).unwrap();
                scope.spawn(move || {
                    let started = Instant::now();
                    let mut log = String::new();
                    let mut outcome = Ok(());
                    for (&n, &seed) in runs.iter().zip(seeds) {
                        let out = Command::new(tool("fsx").unwrap())
                            .arg("-f")
                            .arg(config)
                            .args(["-N", &n.to_string(), "-S", &seed.to_string(), "-P"])
                            .arg(&artifacts)
                            .arg(f)
                            .output()
                            .unwrap();
                        let text = format!(
                            "{}{}",
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        );
                        log.push_str(&format!("== fsx -N {n} -S {seed}\n{text}"));
                        if !(out.status.success() && text.contains("All operations completed A-OK!")) {
                            let tail: Vec<&str> = text.lines().rev().take(40).collect();
                            outcome = Err(format!("{label} (fsx -N {n} -S {seed}): {}", tail.join("\n")));
                            break;
                        }
                    }
                    keep_log(&format!("fsx-{i}.log"), &log);
                    println!(
                        "reliability: fsx {label}: {ops} operations in {} runs (seeds {seeds:?}) in {:.0} s: {}",
                        runs.len(),
                        started.elapsed().as_secs_f64(),
                        if outcome.is_ok() { "no mismatch" } else { "FAILED" }
                    );
                    outcome
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    m.unmount();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(before, (snapshot(&six), snapshot(&idna)), "a layer changed");
}

// ---------------------------------------------------------------------------------------------
// kill -9 during writes
// ---------------------------------------------------------------------------------------------

/// One directory a writer owns: its name (it moves between two), and its files.
#[derive(Clone, PartialEq, Debug)]
struct Slot {
    names: [String; 2],
    current: usize,
    files: BTreeMap<String, Vec<u8>>,
}

/// What one writer owns: a directory of an unpacked-wheel layer and one of a `.whl` layer.
type Owned = Vec<Slot>;

/// A writer's last finished state and, while an operation is under way, every state it may
/// leave behind.
#[derive(Default)]
struct Journal {
    done: Owned,
    in_flight: Vec<Owned>,
}

fn big_content(t: usize) -> Vec<u8> {
    (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761).wrapping_add(t as u32) >> 11) as u8)
        .collect()
}

/// Reads what a writer owns from the mount, or says what is inconsistent.
fn read_owned(site: &Path, expected: &Owned) -> Result<Owned, String> {
    let mut out = Vec::new();
    for slot in expected {
        let present: Vec<usize> = (0..2)
            .filter(|&i| fs::symlink_metadata(site.join(&slot.names[i])).is_ok())
            .collect();
        let [current] = present[..] else {
            return Err(format!(
                "of {:?}, {} exist (exactly one should)",
                slot.names,
                present.len()
            ));
        };
        let dir = site.join(&slot.names[current]);
        let mut files = BTreeMap::new();
        for e in fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = e.file_name().into_string().unwrap();
            if name.starts_with("tmp_") {
                continue; // a replacement that did not get renamed into place
            }
            let content = fs::read(e.path()).map_err(|err| format!("{name}: {err}"))?;
            files.insert(name, content);
        }
        out.push(Slot {
            names: slot.names.clone(),
            current,
            files,
        });
    }
    Ok(out)
}

fn describe(state: &Owned) -> String {
    state
        .iter()
        .map(|s| {
            let files: Vec<String> = s
                .files
                .iter()
                .map(|(n, c)| format!("{n}({} bytes)", c.len()))
                .collect();
            format!("{}: {}", s.names[s.current], files.join(" "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One writer: creates, appends to, replaces, deletes and renames files and renames its
/// directories, until an operation fails (the daemon was killed) or `stop` is set.
fn writer(
    t: usize,
    round: u64,
    site: &Path,
    mut rng: Rng,
    journal: &Mutex<Journal>,
    killed: &AtomicBool,
    stop: &AtomicBool,
) -> Result<u64, String> {
    let mut state = journal.lock().unwrap().done.clone();
    let mut ops = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let k = ops;
        ops += 1;
        let si = rng.below(state.len() as u64) as usize;
        let slot = &state[si];
        let dir = site.join(&slot.names[slot.current]);
        let names: Vec<String> = slot.files.keys().cloned().collect();
        let pick = |rng: &mut Rng| names[rng.below(names.len() as u64) as usize].clone();
        let mut after = state.clone();
        let mut also: Vec<Owned> = Vec::new();
        let line = format!("t{t} r{round} op{k}\n").into_bytes();
        let op = rng.below(12);
        let action: Box<dyn FnOnce() -> std::io::Result<()>> = match op {
            // append one line (copies a lower file up first); often the big file
            0..=3 if !names.is_empty() => {
                let name = if op == 0 && slot.files.contains_key("big.bin") {
                    "big.bin".to_owned()
                } else {
                    pick(&mut rng)
                };
                after[si].files.get_mut(&name).unwrap().extend(&line);
                let path = dir.join(&name);
                Box::new(move || {
                    fs::OpenOptions::new()
                        .append(true)
                        .open(path)?
                        .write_all(&line)
                })
            }
            // replace a file whole: write aside, rename over it
            4 | 5 if !names.is_empty() => {
                let name = pick(&mut rng);
                let content = line.repeat(1 + k as usize % 40);
                after[si].files.insert(name.clone(), content.clone());
                let (tmp, path) = (dir.join(format!("tmp_{t}_{k}")), dir.join(&name));
                Box::new(move || {
                    fs::write(&tmp, &content)?;
                    fs::rename(&tmp, &path)
                })
            }
            // create a file and write it
            6 | 7 => {
                let name = format!("r{round}n{k}.txt");
                let mut empty = state.clone();
                empty[si].files.insert(name.clone(), Vec::new());
                also.push(empty);
                after[si].files.insert(name.clone(), line.clone());
                let path = dir.join(&name);
                Box::new(move || {
                    fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(path)?
                        .write_all(&line)
                })
            }
            // delete a file
            8 if names.len() > 2 => {
                let name = pick(&mut rng);
                after[si].files.remove(&name);
                let path = dir.join(&name);
                Box::new(move || fs::remove_file(path))
            }
            // rename a file
            9 | 10 if !names.is_empty() => {
                let name = pick(&mut rng);
                let new = format!("r{round}m{k}.txt");
                let content = after[si].files.remove(&name).unwrap();
                after[si].files.insert(new.clone(), content);
                let (from, to) = (dir.join(&name), dir.join(&new));
                Box::new(move || fs::rename(from, to))
            }
            // rename the directory (a lower one the first time)
            _ => {
                after[si].current = 1 - slot.current;
                let to = site.join(&slot.names[1 - slot.current]);
                Box::new(move || fs::rename(dir, to))
            }
        };
        also.push(after.clone());
        journal.lock().unwrap().in_flight = also;
        if let Err(e) = action() {
            if killed.load(Ordering::SeqCst) {
                return Ok(ops - 1);
            }
            return Err(format!("writer {t}, op {k} ({op}), before any kill: {e}"));
        }
        state = after;
        let mut j = journal.lock().unwrap();
        j.done = state.clone();
        j.in_flight.clear();
    }
    Ok(ops)
}

/// The daemon is killed with SIGKILL at a random moment while four writers create,
/// overwrite, rename and delete files and rename directories, across entries of an unpacked
/// wheel, a `.whl` and the upper layer; again and again. Each time the next `venvfs mount`
/// replaces the dead mount, and every writer's files show either the state before its last
/// operation or the state after it (no torn file, no lost or doubled rename, no whiteout
/// hiding a file that should show). The layers are byte-identical at the end, the work
/// directory is empty, and no mount is left.
#[test]
fn kill_9_during_writes_leaves_old_or_new_state_every_time() {
    const WRITERS: usize = 4;
    let rounds = env_u64("VENVFS_KILL_ROUNDS", 8);
    let mut rng = Rng::from_env("kill -9");
    let s = Scratch::new();
    // an unpacked wheel with a directory per writer, and a .whl with another
    let dir_layer = s.path("cache/killdir");
    let mut whl_files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut initial: Vec<Owned> = Vec::new();
    for t in 0..WRITERS {
        let mut slots = Vec::new();
        for (prefix, in_whl) in [("a", false), ("b", true)] {
            let name = format!("{prefix}{t}");
            let mut files = BTreeMap::new();
            for i in 0..5 {
                files.insert(format!("f{i}.py"), format!("# {name} f{i}\n").into_bytes());
            }
            files.insert("big.bin".to_owned(), big_content(t));
            for (f, c) in &files {
                if in_whl {
                    whl_files.push((format!("{name}/{f}"), c.clone()));
                } else {
                    fs::create_dir_all(dir_layer.join(&name)).unwrap();
                    fs::write(dir_layer.join(&name).join(f), c).unwrap();
                }
            }
            slots.push(Slot {
                names: [name.clone(), format!("{name}_moved")],
                current: 0,
                files,
            });
        }
        initial.push(slots);
    }
    let dist = dir_layer.join("killdir-1.0.dist-info");
    fs::create_dir_all(&dist).unwrap();
    fs::write(
        dist.join("METADATA"),
        "Metadata-Version: 2.1\nName: killdir\nVersion: 1.0\n",
    )
    .unwrap();
    fs::write(
        dist.join("WHEEL"),
        "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n",
    )
    .unwrap();
    fs::write(dist.join("RECORD"), "").unwrap();
    let whl_refs: Vec<(&str, &[u8], bool)> = whl_files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice(), false))
        .collect();
    let whl = build_wheel(s.dir.path(), "killwhl", "1.0", &whl_refs);
    let six = shared_wheel("six-");
    let before = (snapshot(&dir_layer), snapshot(&whl), snapshot(&six));
    s.add_layers(&[&dir_layer, &whl, &six]);
    let site = s.venv.join(SITE);

    let mut states = initial;
    let mut total_ops = 0;
    for round in 0..rounds {
        let m = s.mount();
        // the state after the last round, as the new mount shows it
        for (t, owned) in states.iter().enumerate() {
            let shown = read_owned(&site, owned).unwrap();
            assert_eq!(
                &shown, owned,
                "round {round}, writer {t}: the remount changed it"
            );
        }
        let pid = m.daemon_pid();
        let journals: Vec<Mutex<Journal>> = states
            .iter()
            .map(|o| {
                Mutex::new(Journal {
                    done: o.clone(),
                    in_flight: Vec::new(),
                })
            })
            .collect();
        let killed = AtomicBool::new(false);
        let stop = AtomicBool::new(false);
        let wait = Duration::from_millis(30 + rng.below(600));
        let results: Vec<Result<u64, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = journals
                .iter()
                .enumerate()
                .map(|(t, j)| {
                    let (site, killed, stop) = (&site, &killed, &stop);
                    let wrng = Rng(rng.next() | 1);
                    scope.spawn(move || writer(t, round, site, wrng, j, killed, stop))
                })
                .collect();
            std::thread::sleep(wait);
            killed.store(true, Ordering::SeqCst);
            run_ok(Command::new("kill").args(["-9", &pid.to_string()]));
            // a writer whose every operation happened to finish before the kill stops here
            std::thread::sleep(Duration::from_millis(100));
            stop.store(true, Ordering::SeqCst);
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // (the guard of the dead mount stays armed until a new mount replaces it, so a
        // failure in between still removes it)
        let dead = m;
        for r in &results {
            total_ops += r.as_ref().map_err(|e| e.clone()).unwrap();
        }
        // the dead mount is still there until the next mount replaces it (what the kernel
        // has cached still shows; anything that needs the daemon fails)
        let stale = fs::write(s.venv.join("probe-after-kill"), "").unwrap_err();
        assert_eq!(stale.raw_os_error(), Some(libc::ENOTCONN), "{stale}");
        if round == 0 {
            // a command on the dead mount says what happened and what to run
            let out = venvfs().arg("list").arg(&s.venv).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success());
            assert!(
                err.contains("daemon died") && err.contains("venvfs mount"),
                "{err}"
            );
        }
        let m = s.mount();
        dead.forget();
        for (t, j) in journals.iter().enumerate() {
            let j = j.lock().unwrap();
            let shown = read_owned(&site, &j.done)
                .unwrap_or_else(|e| panic!("round {round}, writer {t}: {e}"));
            let allowed = std::iter::once(&j.done).chain(&j.in_flight);
            assert!(
                allowed.clone().any(|a| *a == shown),
                "round {round} (killed after {wait:?}), writer {t}: the mount shows\n  {}\nbut only these are allowed:\n  {}",
                describe(&shown),
                allowed.map(describe).collect::<Vec<_>>().join("\n  ")
            );
            states[t] = shown;
        }
        assert_eq!(s.python_ok("import six; print(six.__version__)"), "1.17.0");
        m.unmount();
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&format!(" {} ", s.venv.display())),
        "a mount is left"
    );
    let work: Vec<_> = fs::read_dir(s.venv.join(".venvfs/work")).unwrap().collect();
    assert!(work.is_empty(), "left in the work directory: {work:?}");
    assert_eq!(
        before,
        (snapshot(&dir_layer), snapshot(&whl), snapshot(&six)),
        "a layer changed"
    );
    println!(
        "reliability: kill -9: {rounds} rounds, {total_ops} writer operations, every file old or new"
    );
}

// ---------------------------------------------------------------------------------------------
// soak
// ---------------------------------------------------------------------------------------------

const IMPORT: &str = "import requests, click, jinja2, yaml, six, numpy\n\
assert requests.utils.quote('a b') == 'a%20b'\n\
assert jinja2.Template('{{ x }}').render(x=6) == '6'\n\
assert yaml.safe_load('a: [1, 2]') == {'a': [1, 2]}\n\
assert int(numpy.arange(4).sum()) == 6\n\
assert click.style('x', bold=True).endswith('x\\x1b[0m')\n";

/// One writer of the soak: files of its own next to the modules being imported (new ones,
/// and lower ones it copies up, appends to and replaces), checking each read-back.
fn soak_writer(t: usize, site: &Path, deadline: Instant, ops: &AtomicU64) -> Result<(), String> {
    let err = |what: &str, e: std::io::Error| format!("writer {t}: {what}: {e}");
    let lower = [
        "requests-2.34.2.dist-info/METADATA",
        "click-8.5.1.dist-info/METADATA",
        "six-1.17.0.dist-info/METADATA",
        "idna-3.20.dist-info/METADATA",
    ][t % 4];
    let lower = site.join(lower);
    let mut expected = fs::read(&lower).map_err(|e| err("read lower", e))?;
    let own_dir = site.join(format!("soak{t}"));
    fs::create_dir(&own_dir).map_err(|e| err("mkdir", e))?;
    let mut k = 0u64;
    while Instant::now() < deadline {
        k += 1;
        // a new module next to the ones being imported, renamed, then maybe deleted
        let dir = if k % 2 == 0 { "requests" } else { "click" };
        let new = site.join(dir).join(format!("soak_{t}_{k}.py"));
        let content = format!("X = {k}\n").repeat(1 + (k % 100) as usize);
        fs::write(&new, &content).map_err(|e| err("create", e))?;
        let renamed = new.with_extension("moved");
        fs::rename(&new, &renamed).map_err(|e| err("rename", e))?;
        if fs::read_to_string(&renamed).map_err(|e| err("read back", e))? != content {
            return Err(format!(
                "writer {t}: {} reads back wrong",
                renamed.display()
            ));
        }
        if k % 3 != 0 {
            fs::remove_file(&renamed).map_err(|e| err("delete", e))?;
        }
        // a lower file: appended to, sometimes replaced whole
        if k % 10 == 0 {
            let tmp = own_dir.join("tmp");
            expected = format!("replaced {k}\n").into_bytes();
            fs::write(&tmp, &expected).map_err(|e| err("write aside", e))?;
            fs::rename(&tmp, &lower).map_err(|e| err("rename over lower", e))?;
        } else {
            let line = format!("appended {k}\n");
            fs::OpenOptions::new()
                .append(true)
                .open(&lower)
                .and_then(|mut f| f.write_all(line.as_bytes()))
                .map_err(|e| err("append", e))?;
            expected.extend(line.as_bytes());
        }
        if fs::read(&lower).map_err(|e| err("read lower", e))? != expected {
            return Err(format!("writer {t}: {} reads back wrong", lower.display()));
        }
        // an upper directory of its own
        fs::write(own_dir.join(format!("f{}", k % 20)), &content).map_err(|e| err("write", e))?;
        ops.fetch_add(1, Ordering::Relaxed);
        // writers at full speed would leave the importers little of a 2-core machine
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// 16 processes import packages (numpy, requests, jinja2, yaml, click, six; writing their
/// bytecode) over and over while 4 writers change files in the same directories, for
/// `VENVFS_SOAK_SECS`: no error, no process stuck, the layers untouched.
#[test]
fn sixteen_importers_and_four_writers_at_once() {
    let secs = env_u64("VENVFS_SOAK_SECS", 12);
    let s = Scratch::new();
    let requests = s.path("cache/requests");
    unpack(&shared_wheel("requests-"), &requests);
    let mut layers: Vec<PathBuf> = vec![requests];
    for w in [
        "click-",
        "urllib3-",
        "idna-",
        "certifi-",
        "charset_normalizer-",
        "six-",
        "jinja2-",
        "markupsafe-",
        "pyyaml-",
        "numpy-",
    ] {
        layers.push(shared_wheel(w));
    }
    let refs: Vec<&Path> = layers.iter().map(|p| p.as_path()).collect();
    let before: Vec<_> = layers.iter().map(|l| snapshot(l)).collect();
    s.add_layers(&refs);
    let m = s.mount();
    let site = s.venv.join(SITE);
    // every import works before the soak starts, and writes its bytecode, which the soak's
    // imports then read while the writers write
    let warm = run(Command::new(s.venv.join("bin/python"))
        .args(["-c", IMPORT])
        .env_remove("PYTHONDONTWRITEBYTECODE"));
    assert!(
        warm.status.success(),
        "{}",
        String::from_utf8_lossy(&warm.stderr)
    );

    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let imports = Arc::new(AtomicU64::new(0));
    let writes = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let python = s.venv.join("bin/python");
    // plain threads reporting on a channel: a deadlock shows as threads that never report
    let (done, finished) = std::sync::mpsc::channel::<()>();
    for i in 0..16 {
        let (python, imports, errors, done) = (
            python.clone(),
            imports.clone(),
            errors.clone(),
            done.clone(),
        );
        std::thread::spawn(move || {
            while Instant::now() < deadline {
                let child = Command::new(&python)
                    .args(["-c", IMPORT])
                    .env_remove("PYTHONDONTWRITEBYTECODE")
                    .env_remove("PYTHONPATH")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                match wait_at_most(child, Duration::from_secs(120)) {
                    None => {
                        errors
                            .lock()
                            .unwrap()
                            .push(format!("importer {i}: stuck for 120 s"));
                        break;
                    }
                    Some(out) if !out.status.success() => {
                        errors.lock().unwrap().push(format!(
                            "importer {i}: {}",
                            String::from_utf8_lossy(&out.stderr)
                        ));
                        break;
                    }
                    Some(_) => {
                        imports.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            let _ = done.send(());
        });
    }
    for t in 0..4 {
        let (site, writes, errors, done) =
            (site.clone(), writes.clone(), errors.clone(), done.clone());
        std::thread::spawn(move || {
            if let Err(e) = soak_writer(t, &site, deadline, &writes) {
                errors.lock().unwrap().push(e);
            }
            let _ = done.send(());
        });
    }
    for n in 0..20 {
        let left = (deadline + Duration::from_secs(150)).saturating_duration_since(Instant::now());
        if finished.recv_timeout(left).is_err() {
            panic!(
                "{} of 20 importers and writers still running 150 s after the end: deadlock?",
                20 - n
            );
        }
    }
    let elapsed = started.elapsed();
    let errors = errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let (imports, writes) = (
        imports.load(Ordering::Relaxed),
        writes.load(Ordering::Relaxed),
    );
    assert!(
        imports >= 16 && writes > 0,
        "{imports} imports, {writes} writes"
    );
    // the daemon still answers, and what was written is there
    s.python_ok(IMPORT);
    // and holds a bounded number of descriptors, however many files came and went (the
    // kernel sends no RELEASE for created files once it has stopped sending opens: a
    // handle per created file once ran the daemon out of descriptors in under a minute)
    let fds = fs::read_dir(format!("/proc/{}/fd", m.daemon_pid()))
        .unwrap()
        .count();
    assert!(fds < 1_000, "the daemon holds {fds} descriptors");
    m.unmount();
    let after: Vec<_> = layers.iter().map(|l| snapshot(l)).collect();
    assert!(before == after, "a layer changed");
    println!(
        "reliability: soak {secs} s ({:.0} s with the last runs): {imports} imports by 16 processes, {writes} writer rounds by 4 threads, no error; {fds} descriptors open in the daemon at the end",
        elapsed.as_secs_f64()
    );
}
