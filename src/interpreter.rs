//! What a venv's interpreter is: its PEP 508 marker environment and the wheel tags it
//! accepts. Asked once by running the venv's Python, then remembered until the interpreter
//! binary changes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::tags::TagFacts;

/// The values of the PEP 508 environment markers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Markers {
    pub implementation_name: String,
    pub implementation_version: String,
    pub os_name: String,
    pub platform_machine: String,
    pub platform_python_implementation: String,
    pub platform_release: String,
    pub platform_system: String,
    pub platform_version: String,
    pub python_full_version: String,
    pub python_version: String,
    pub sys_platform: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interpreter {
    /// Identifies the binary the answer came from: resolved path, size, mtime.
    pub key: String,
    pub markers: Markers,
    pub tag_facts: TagFacts,
    /// How it names and stamps bytecode (absent in facts remembered by older versions,
    /// which are then asked again).
    #[serde(default)]
    pub bytecode: Option<BytecodeFacts>,
}

/// What a `.pyc` of this interpreter looks like: `sys.implementation.cache_tag` (the
/// `cpython-311` in `__pycache__/mod.cpython-311.pyc`) and `importlib.util.MAGIC_NUMBER`
/// (its first four bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BytecodeFacts {
    pub cache_tag: String,
    /// The magic number, as hex.
    pub magic: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InterpreterError {
    #[error(
        "{path}: the venv has no Python interpreter there; recreate the venv (`venvfs create`)"
    )]
    Missing { path: PathBuf },
    /// The filesystem hides the interpreter link (see `doctor::hidden_interpreter`).
    #[error("{0}")]
    Hidden(String),
    #[error("cannot run {path}: {why}")]
    Run { path: PathBuf, why: String },
}

/// Run with `-I -S`: no site-packages (so no `.pth` file runs, the unmounted guard
/// included), no environment variables, no user site.
const QUERY: &str = r#"
import json, os, platform, sys, sysconfig
def fmt(v):
    s = "%d.%d.%d" % (v.major, v.minor, v.micro)
    if v.releaselevel != "final":
        s += v.releaselevel[0] + str(v.serial)
    return s
def ver(text):
    try:
        parts = [int(x) for x in text.split(".")[:2]]
        return parts if len(parts) == 2 else None
    except (ValueError, AttributeError):
        return None
try:
    glibc = os.confstr("CS_GNU_LIBC_VERSION").split()[1]
except (AttributeError, ValueError, OSError, IndexError, TypeError):
    glibc = None
musl = None
if sys.platform.startswith("linux") and glibc is None:
    import glob, subprocess
    for ld in glob.glob("/lib/ld-musl-*.so.1"):
        out = subprocess.run([ld], stderr=subprocess.PIPE, text=True).stderr
        for line in out.splitlines():
            if line.startswith("Version "):
                musl = ver(line.split()[1])
impl = sys.implementation
from importlib._bootstrap_external import MAGIC_NUMBER
print(json.dumps({
    "bytecode": {"cache_tag": impl.cache_tag, "magic": MAGIC_NUMBER.hex()}
        if impl.cache_tag else None,
    "markers": {
        "implementation_name": impl.name,
        "implementation_version": fmt(impl.version),
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    },
    "tag_facts": {
        "implementation": impl.name,
        "version": list(sys.version_info[:2]),
        "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX") or "",
        "py_debug": bool(sysconfig.get_config_var("Py_DEBUG")),
        "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "platform": sysconfig.get_platform(),
        "is_64bit": sys.maxsize > 2**32,
        "glibc": ver(glibc),
        "musl": musl,
        "mac_version": ver(platform.mac_ver()[0]) if sys.platform == "darwin" else None,
        "machine": platform.machine(),
    },
}))
"#;

/// The venv's interpreter: `bin/python` (`Scripts/python.exe` on Windows).
pub fn python_of(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

fn key_of(python: &Path) -> Option<String> {
    let real = python.canonicalize().ok()?;
    let meta = std::fs::metadata(&real).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!(
        "{}:{}:{}",
        real.display(),
        meta.len(),
        mtime.as_nanos()
    ))
}

/// The interpreter of a venv that is not mounted. The answer is remembered in venvfs's
/// cache directory (shared by every venv of the same interpreter) when that is writable,
/// else in the venv's `.venvfs/`, until the interpreter binary changes.
pub fn of_venv(venv: &Path) -> Result<Interpreter, InterpreterError> {
    let python = python_of(venv);
    let key = key_of(&python).ok_or_else(|| match crate::doctor::hidden_interpreter(venv) {
        Some(why) => InterpreterError::Hidden(why),
        None => InterpreterError::Missing {
            path: python.clone(),
        },
    })?;
    let remembered = match crate::finder::uvcache::writable_own_cache_dir() {
        Some(dir) => {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(key.as_bytes());
            let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            dir.join(format!("interpreter-{hex}.json"))
        }
        None => venv
            .join(crate::manifest::STATE_DIR)
            .join("interpreter.json"),
    };
    if let Ok(text) = std::fs::read_to_string(&remembered) {
        if let Ok(i) = serde_json::from_str::<Interpreter>(&text) {
            if i.key == key && i.bytecode.is_some() {
                return Ok(i);
            }
        }
    }
    let mut interpreter = query(&python)?;
    interpreter.key = key;
    if let Ok(text) = serde_json::to_string_pretty(&interpreter) {
        // only a cache: without it the next run asks again
        let _ = crate::fsutil::write_atomic(&remembered, text.as_bytes(), 0o644);
    }
    Ok(interpreter)
}

/// Runs `python` once to learn its markers and tag facts.
pub fn query(python: &Path) -> Result<Interpreter, InterpreterError> {
    let run_err = |why: String| InterpreterError::Run {
        path: python.to_owned(),
        why,
    };
    let out = std::process::Command::new(python)
        .args(["-I", "-S", "-c", QUERY])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| run_err(e.to_string()))?;
    if !out.status.success() {
        return Err(run_err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    #[derive(Deserialize)]
    struct Answer {
        markers: Markers,
        tag_facts: TagFacts,
        bytecode: Option<BytecodeFacts>,
    }
    let a: Answer = serde_json::from_slice(&out.stdout)
        .map_err(|e| run_err(format!("unexpected answer: {e}")))?;
    Ok(Interpreter {
        key: String::new(),
        markers: a.markers,
        tag_facts: a.tag_facts,
        bytecode: a.bytecode,
    })
}

impl Interpreter {
    /// The tags it accepts, best first.
    pub fn tags(&self) -> Vec<String> {
        crate::tags::supported(&self.tag_facts)
    }

    /// The marker environment, for evaluating PEP 508 markers.
    pub fn marker_env(&self) -> Result<pep508_rs::MarkerEnvironment, String> {
        let m = &self.markers;
        pep508_rs::MarkerEnvironment::try_from(pep508_rs::MarkerEnvironmentBuilder {
            implementation_name: &m.implementation_name,
            implementation_version: &m.implementation_version,
            os_name: &m.os_name,
            platform_machine: &m.platform_machine,
            platform_python_implementation: &m.platform_python_implementation,
            platform_release: &m.platform_release,
            platform_system: &m.platform_system,
            platform_version: &m.platform_version,
            python_full_version: &m.python_full_version,
            python_version: &m.python_version,
            sys_platform: &m.sys_platform,
        })
        .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    /// The tags computed from the facts the query gathers equal what `packaging` (vendored
    /// in pip) says for the same interpreter, in the same order.
    /// (It runs the real python3, of a POSIX layout; there is none under Wine.)
    #[cfg(unix)]
    #[test]
    fn tags_match_packaging() {
        let python = which("python3");
        let check = std::process::Command::new(&python)
            .args(["-c", "import pip._vendor.packaging.tags"])
            .status();
        if !check.is_ok_and(|s| s.success()) {
            eprintln!("skipped: {} has no pip to compare with", python.display());
            return;
        }
        let out = std::process::Command::new(&python)
            .args([
                "-c",
                "from pip._vendor.packaging.tags import sys_tags\nfor t in sys_tags(): print(t)",
            ])
            .output()
            .unwrap();
        let expected: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        let interpreter = super::query(&python).unwrap();
        let mut ours = interpreter.tags();
        // packaging before 22 (pip 23 vendors 21.3) does not list `cp3XX-none-any`
        if !expected
            .iter()
            .any(|t| t.starts_with("cp") && t.ends_with("-none-any"))
        {
            ours.retain(|t| !(t.starts_with("cp") && t.ends_with("-none-any")));
        }
        let first_difference = ours.iter().zip(&expected).position(|(a, b)| a != b);
        assert_eq!(
            (first_difference, ours.len()),
            (None, expected.len()),
            "first difference: {:?} vs {:?}",
            first_difference.map(|i| &ours[i]),
            first_difference.map(|i| &expected[i])
        );
        interpreter.marker_env().unwrap();
    }

    #[cfg(unix)]
    fn which(name: &str) -> std::path::PathBuf {
        std::env::var_os("PATH")
            .and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join(name))
                    .find(|p| p.exists())
            })
            .expect("python3 on PATH")
    }
}
