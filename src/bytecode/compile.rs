//! `venvfs compile VENV`: the bytecode of every module of a venv's layers, compiled into
//! the shared store ahead of the first import.
//!
//! Compiling goes through the mount, by the venv's own Python, exactly as an import would
//! (`SourceFileLoader.get_code`: a valid `.pyc` is read, anything else compiled and
//! written): so what lands in the store is what Python itself would write, checked and
//! put in place by the mount as any import's `.pyc` is. Several Python processes compile
//! at once; each reports every module it is done with, which drives the progress bar.

use std::error::Error;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cli::CompileArgs;

/// Run by the venv's Python, through the mount: argument 1 is the number of processes.
/// Prints the number of modules, then one line per module: `+` compiled, `=` read (its
/// `.pyc` was there), `! path: error` failed.
const SCRIPT: &str = r#"
import importlib.machinery, importlib.util, multiprocessing, os, sys, sysconfig
sys.dont_write_bytecode = False
def one(path):
    try:
        had = os.path.exists(importlib.util.cache_from_source(path))
        loader = importlib.machinery.SourceFileLoader("m", path)
        loader.get_code("m")
        return "=" if had else "+"
    except Exception as e:
        return "! %s: %s" % (path, str(e).splitlines()[0] if str(e) else type(e).__name__)
roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
paths = []
for root in sorted(roots):
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        paths += [os.path.join(d, f) for f in files if f.endswith(".py")]
print(len(paths), flush=True)
with multiprocessing.Pool(int(sys.argv[1])) as pool:
    for line in pool.imap_unordered(one, paths, chunksize=8):
        print(line, flush=True)
"#;

pub fn compile(args: &CompileArgs) -> Result<(), Box<dyn Error>> {
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    match args.targets.as_slice() {
        [venv] if venv.join("pyvenv.cfg").is_file() => {
            let venv = std::path::absolute(venv)?;
            compile_venv(
                &venv,
                &venv.display().to_string(),
                args.store.as_deref(),
                jobs,
            )
        }
        sources => compile_sources(sources, &args.python, args.store.as_deref(), jobs),
    }
}

/// Compiles layer sources without a venv of the user's: in venvs made for it (each
/// holding at most one version of a distribution), removed afterwards.
fn compile_sources(
    targets: &[PathBuf],
    python: &str,
    store: Option<&Path>,
    jobs: usize,
) -> Result<(), Box<dyn Error>> {
    let mut sources = Vec::new();
    for t in targets {
        sources.extend(expand(t)?);
    }
    if sources.is_empty() {
        return Err("no wheel found in the sources given".into());
    }
    let python = if python.chars().all(|c| c.is_ascii_digit() || c == '.') {
        format!("python{python}")
    } else {
        python.to_owned()
    };
    remove_abandoned_scratch();
    let scratch = tempfile::Builder::new()
        .prefix(&format!("{SCRATCH}{}-", std::process::id()))
        .tempdir()?;
    let venv_of = |i: usize| scratch.path().join(format!("v{i}"));
    make_venv(&python, &venv_of(0))?;
    let version = crate::venv::python_version(&venv_of(0))?;
    // one venv per set of distributions of distinct names
    let mut groups: Vec<crate::manifest::Manifest> = Vec::new();
    for source in sources {
        let layer = match crate::install::wheel_layer(&source, &version) {
            Ok(l) => l,
            Err(e) => {
                println!("skipped {}: {e}", source.display());
                continue;
            }
        };
        let name = layer.package_name();
        match groups
            .iter_mut()
            .find(|m| m.layers.iter().all(|l| l.package_name() != name))
        {
            Some(m) => m.layers.push(layer),
            None => groups.push(crate::manifest::Manifest {
                layers: vec![layer],
                ..Default::default()
            }),
        }
    }
    for (i, manifest) in groups.iter().enumerate() {
        let venv = venv_of(i);
        if !venv.exists() {
            make_venv(&python, &venv)?;
        }
        manifest.save(&crate::manifest::manifest_path(&venv))?;
        // (named by what it holds: the venv is a temporary one of this run)
        let shown = match &manifest.layers[..] {
            [one] => one.label(),
            more => format!("{} wheels", more.len()),
        };
        compile_venv(&venv, &shown, store, jobs)?;
    }
    Ok(())
}

/// The wheels a source names: a `.whl` file, an unpacked wheel (a directory holding a
/// `.dist-info`), or a uv cache (every unpacked wheel of its `archive-v0`).
fn expand(source: &Path) -> Result<Vec<PathBuf>, Box<dyn Error>> {
    let abs = source
        .canonicalize()
        .map_err(|e| format!("{}: {e}", source.display()))?;
    let has_dist_info = |d: &Path| {
        std::fs::read_dir(d).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".dist-info"))
        })
    };
    if abs.is_file() || has_dist_info(&abs) {
        return Ok(vec![abs]);
    }
    let archive = abs.join("archive-v0");
    if archive.is_dir() {
        let mut out: Vec<PathBuf> = std::fs::read_dir(&archive)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && has_dist_info(p))
            .collect();
        out.sort();
        return Ok(out);
    }
    Err(format!(
        "{}: not a venv, a wheel, an unpacked wheel or a uv cache directory",
        source.display()
    )
    .into())
}

fn make_venv(python: &str, venv: &Path) -> Result<(), Box<dyn Error>> {
    let out = Command::new(python)
        .args(["-m", "venv", "--without-pip"])
        .arg(venv)
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{python} -m venv failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}

/// Compiles the modules of venv `venv` through its mount (a private one when it is not
/// mounted), into `store` if given; `shown` names what is compiled in messages.
fn compile_venv(
    venv: &Path,
    shown: &str,
    store: Option<&Path>,
    jobs: usize,
) -> Result<(), Box<dyn Error>> {
    crate::venv::python_version(venv)?;
    let started = std::time::Instant::now();
    let python = crate::interpreter::python_of(venv);
    let mounted = crate::daemon::venv_is_mounted(venv);
    let mut cmd = if mounted {
        if store.is_some() {
            return Err(format!(
                "{} is mounted, and its mount writes its own store; unmount it to compile into --store",
                venv.display()
            )
            .into());
        }
        Command::new(&python)
    } else {
        // a mount of its own, gone when the compile is
        let mut c = Command::new(std::env::current_exe()?);
        c.arg("run").arg(venv).arg("--").arg(&python);
        c
    };
    cmd.args(["-c", SCRIPT, &jobs.to_string()])
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .env_remove("PYTHONPYCACHEPREFIX")
        .env_remove("PYTHONPATH")
        .stdout(Stdio::piped());
    if let Some(store) = store {
        std::fs::create_dir_all(store)
            .map_err(|e| format!("cannot make the store {}: {e}", store.display()))?;
        cmd.env(super::STORE_VAR, std::path::absolute(store)?);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let out = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut lines = out.lines();
    let total: u64 = match lines.next() {
        Some(Ok(l)) => l.trim().parse().unwrap_or(0),
        _ => 0,
    };
    let bar = crate::progress::Progress::counting(total, "Compiling");
    let (mut compiled, mut read, mut failed) = (0u64, 0u64, Vec::new());
    for line in lines {
        let line = line?;
        match line.as_bytes().first() {
            Some(b'+') => compiled += 1,
            Some(b'=') => read += 1,
            _ => failed.push(line.trim_start_matches("! ").to_owned()),
        }
        bar.inc(1);
    }
    bar.finish();
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("compiling {shown} failed ({status})").into());
    }
    let store = match store {
        Some(s) => s.display().to_string(),
        None => "the shared store".to_owned(),
    };
    println!(
        "Compiled {compiled} modules of {shown} into {store} in {:.1?} ({read} were compiled already)",
        started.elapsed()
    );
    if !failed.is_empty() {
        // (as compileall: modules that do not compile under this Python, such as a
        // package's Python 2 test files, are reported and skipped)
        println!("{} modules do not compile:", failed.len());
        for f in failed.iter().take(10) {
            println!("  {f}");
        }
        if failed.len() > 10 {
            println!("  ...");
        }
    }
    Ok(())
}

/// Whether a file is this user's (never taken for one elsewhere: nothing is removed).
#[cfg(unix)]
fn mine(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    m.uid() == rustix::process::getuid().as_raw()
}

#[cfg(not(unix))]
fn mine(_m: &std::fs::Metadata) -> bool {
    false
}

/// The name of the directories `venvfs compile` of layer sources works in, in the
/// temporary directory: `venvfs-compile-<pid>-<random>`.
const SCRATCH: &str = "venvfs-compile-";

/// Removes the work directories of earlier `venvfs compile` runs that were interrupted
/// (Ctrl-C, kill) before they could remove them: those whose process is gone. (Their
/// venvs' mounts were private to those processes, gone with them.)
fn remove_abandoned_scratch() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(SCRATCH))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        let ours = e.metadata().is_ok_and(|m| m.is_dir() && mine(&m));
        if let Some(pid) = pid.filter(|&p| ours && !crate::registry::alive(p)) {
            tracing::debug!(
                "removing {:?}, left by venvfs compile (pid {pid})",
                e.path()
            );
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
