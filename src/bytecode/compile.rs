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
    let venv = std::path::absolute(&args.venv)?;
    crate::venv::python_version(&venv)?;
    let started = std::time::Instant::now();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let python = crate::interpreter::python_of(&venv);
    let mounted = crate::daemon::venv_is_mounted(&venv);
    let mut cmd = if mounted {
        if args.store.is_some() {
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
        c.arg("run").arg(&venv).arg("--").arg(&python);
        c
    };
    cmd.args(["-c", SCRIPT, &jobs.to_string()])
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .env_remove("PYTHONPYCACHEPREFIX")
        .env_remove("PYTHONPATH")
        .stdout(Stdio::piped());
    if let Some(store) = &args.store {
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
        return Err(format!("compiling {} failed ({status})", venv.display()).into());
    }
    let store = match &args.store {
        Some(s) => s.display().to_string(),
        None => "the shared store".to_owned(),
    };
    println!(
        "Compiled {compiled} modules of {} into {store} in {:.1?} ({read} were compiled already)",
        venv.display(),
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
