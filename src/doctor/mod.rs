//! `venvfs doctor [VENV]`: one report of what stands in the way of serving venvs, instead of
//! warnings spread over every command.
//!
//! Each check gathers facts (a device that opens or not, the mount table, a venv's
//! manifest and inventory) and hands them to a pure function that decides the findings, so
//! that the decisions are tested without the machine they describe. A finding says what is
//! wrong and the one command (or setting) that fixes it.
//!
//! Findings are `ok` (information), `warn` (works, or is a state the user chose, but costs
//! something: an unmounted venv, copies a layer could serve, uv told to copy) or `fail`
//! (something is broken: FUSE unusable, a stale mount, a layer whose source is gone). The
//! command exits 1 when any finding is `fail`, 0 otherwise.

mod system;
mod venv;

use std::path::Path;
use std::process::ExitCode;

use crate::cli::DoctorArgs;

/// Why the venv's interpreter cannot be reached on the filesystem the venv is on, with the
/// fix, when a filesystem hides it (sshfs's `contain_symlinks`): the doctor's own check, for
/// the commands that need the interpreter (`sync`, `install`, `mount`, `run`) to refuse with
/// the cause instead of a misleading "no interpreter". None when the link reads, or fails for
/// a reason the doctor has no finding for.
pub fn hidden_interpreter(venv: &Path) -> Option<String> {
    let (python, read) = system::LinkRead::follow(&crate::interpreter::python_of(venv));
    if !matches!(read, system::LinkRead::Error(..)) {
        return None;
    }
    let finding = system::python_link_finding(&system::FsFacts::gather(venv), &python, &read)?;
    (finding.status == Status::Fail).then(|| match finding.fix {
        Some(fix) => format!("{}; fix: {fix}", finding.detail),
        None => finding.detail,
    })
}

/// Filesystem types several hosts mount at once.
#[cfg(target_os = "linux")]
const SHARED: [&str; 14] = [
    "nfs",
    "nfs4",
    "lustre",
    "cifs",
    "smb3",
    "ceph",
    "gpfs",
    "beegfs",
    "9p",
    "afs",
    "fuse.sshfs",
    "fuse.glusterfs",
    "fuse.ceph-fuse",
    "fuse.gcsfuse",
];

/// The type of the filesystem `dir` is on when it is one that several hosts mount at once
/// (NFS, Lustre, sshfs, ...): there another daemon may change the venv directory beneath
/// this one's mount (see "Many hosts on one venv" in the README). A path that does not
/// exist yet (a store made when first written, a cache entry that is gone) is where its
/// nearest existing directory is. None on a local filesystem, or where the mount table
/// cannot say.
pub fn shared_filesystem(dir: &Path) -> Option<String> {
    #[cfg(target_os = "linux")]
    return shared_type(&venvfs_fuse::table(), dir);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        None
    }
}

/// Whether each of `paths` is on a local filesystem, as [`shared_filesystem`] tells, with
/// one read of the mount table for them all (a daemon asks this of every layer's source
/// while mounting).
#[cfg(target_os = "linux")]
pub fn on_local_filesystems<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Vec<bool> {
    let table = venvfs_fuse::table();
    paths
        .into_iter()
        .map(|p| shared_type(&table, p).is_none())
        .collect()
}

/// [`shared_filesystem`] of `path` in the mount table `table`: the mount that holds it
/// (symlinks resolved; for a path that is gone, its nearest existing directory), by the
/// table alone, asking the filesystem nothing but the path's resolution.
#[cfg(target_os = "linux")]
fn shared_type(table: &[venvfs_fuse::MountEntry], path: &Path) -> Option<String> {
    let abs = path.ancestors().find_map(|a| a.canonicalize().ok())?;
    let fstype = &venvfs_fuse::containing(table, &abs)?.fstype;
    SHARED.contains(&fstype.as_str()).then(|| fstype.clone())
}

/// How a finding weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One result of a check: what was found and, when something is to be done, how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Which check (`fuse-device`, `mount`, `layers`, ...).
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    /// The command or setting that fixes it.
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: &'static str, detail: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn warn(check: &'static str, detail: impl Into<String>, fix: Option<String>) -> Finding {
        Finding {
            check,
            status: Status::Warn,
            detail: detail.into(),
            fix,
        }
    }

    pub fn fail(check: &'static str, detail: impl Into<String>, fix: Option<String>) -> Finding {
        Finding {
            check,
            status: Status::Fail,
            detail: detail.into(),
            fix,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "check": self.check,
            "status": self.status.as_str(),
            "detail": self.detail,
            "fix": self.fix,
        })
    }
}

/// Every check: the machine's (FUSE, uv's cache) and, given a venv, the venv's.
pub fn collect(venv: Option<&Path>) -> Vec<Finding> {
    let mut findings = system::fuse_findings(&system::FuseFacts::gather());
    let cache = crate::finder::uvcache::locate(None).map(|p| system::FsFacts::gather(&p));
    findings.push(system::cache_finding(cache.as_ref()));
    let primary = crate::finder::uvcache::locate(None);
    for shared in crate::finder::uvcache::locate_all(&[]) {
        if Some(&shared) != primary.as_ref() {
            findings.push(system::shared_cache_finding(&system::FsFacts::gather(
                &shared,
            )));
        }
    }
    findings.push(system::own_cache_finding());
    let places = crate::bytecode::Places::of_env();
    let network = places.write.as_deref().and_then(shared_filesystem);
    findings.push(system::bytecode_finding(&places, network.as_deref()));
    if let Some(venv) = venv {
        findings.extend(venv::findings(venv, cache.as_ref()));
    }
    findings
}

/// Whether the findings hold a failure (the exit status).
pub fn failed(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.status == Status::Fail)
}

/// The report for people: one line a finding, its fix indented below, and a summary.
pub fn render(findings: &[Finding]) -> String {
    let width = findings.iter().map(|f| f.check.len()).max().unwrap_or(0);
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{:<4}  {:<width$}  {}\n",
            f.status.as_str(),
            f.check,
            f.detail
        ));
        if let Some(fix) = &f.fix {
            for (i, line) in fix.lines().enumerate() {
                let lead = if i == 0 { "fix: " } else { "     " };
                out.push_str(&format!("{:<4}  {:<width$}  {lead}{line}\n", "", ""));
            }
        }
    }
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    let (fails, warns) = (count(Status::Fail), count(Status::Warn));
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    out.push_str(&match (fails, warns) {
        (0, 0) => "nothing wrong\n".to_owned(),
        (0, w) => format!(
            "nothing wrong; {} worth a look\n",
            plural(w, "warning", "warnings")
        ),
        (f, w) => format!(
            "{}, {}\n",
            plural(f, "problem", "problems"),
            plural(w, "warning", "warnings")
        ),
    });
    out
}

/// `1 layer`, `2 layers`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `venvfs doctor`: prints the report (or JSON) and exits 1 when something is wrong.
pub fn main(args: &DoctorArgs) -> ExitCode {
    let findings = collect(args.venv.as_deref());
    if args.json {
        let all: Vec<serde_json::Value> = findings.iter().map(Finding::to_json).collect();
        println!("{}", serde_json::Value::Array(all));
    } else {
        print!("{}", render(&findings));
    }
    if failed(&findings) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_and_exit_status() {
        let healthy = vec![Finding::ok("a", "fine")];
        assert!(!failed(&healthy));
        assert_eq!(render(&healthy), "ok    a  fine\nnothing wrong\n");
        let broken = vec![
            Finding::warn("mount", "not mounted", Some("venvfs mount v".into())),
            Finding::fail("layers", "gone", Some("x\ny".into())),
        ];
        assert!(failed(&broken), "a failure fails");
        assert!(!failed(&broken[..1]), "a warning alone does not");
        assert_eq!(
            render(&broken),
            "warn  mount   not mounted\n      \
             \x20       fix: venvfs mount v\n\
             fail  layers  gone\n      \
             \x20       fix: x\n      \
             \x20            y\n\
             1 problem, 1 warning\n"
        );
        let json = broken[0].to_json();
        assert_eq!(json["status"], "warn");
        assert_eq!(json["fix"], "venvfs mount v");
        assert!(Finding::ok("a", "b").to_json()["fix"].is_null());
    }
}
