//! Daemonizing: `venvfs mount` starts a copy of itself in its own session and waits for the
//! READY line (or the errors) it prints.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{mount_flags, CmdResult};
use crate::cli::MountArgs;

/// What the background daemon prints once the venv is mounted.
pub(super) const READY: &str = "venvfs-ready";

pub(super) fn spawn_daemon(venv: &Path, args: &MountArgs) -> CmdResult {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("mount").arg(venv).arg("--daemon-child");
    cmd.args(mount_flags(args));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| rustix::process::setsid().map(drop).map_err(Into::into));
    }
    let mut child = cmd.spawn()?;
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let stdout = BufReader::new(child.stdout.take().expect("piped"));
    // (what the daemon says before it is ready are notes for the user)
    let ready = stdout.lines().map_while(Result::ok).any(|l| {
        let done = l == READY;
        if !done {
            eprintln!("{l}");
        }
        done
    });
    if ready {
        println!(
            "mounted {} (venvfs daemon pid {}); `venvfs umount {}` unmounts",
            venv.display(),
            child.id(),
            venv.display()
        );
        return Ok(());
    }
    let status = child.wait()?;
    let text = errors.join().unwrap_or_default();
    eprint!("{text}");
    Err(format!("mounting {} failed ({status})", venv.display()).into())
}

/// Sends the daemon's stdout and stderr to its log file (closing the pipes to the parent).
pub(super) fn redirect_output(log: &std::fs::File) -> std::io::Result<()> {
    use std::io::Write;
    std::io::stdout().flush()?;
    rustix::stdio::dup2_stdout(log)?;
    rustix::stdio::dup2_stderr(log)?;
    Ok(())
}
