//! `venvfs mount` in the background: a detached copy of this program serves the mount;
//! this one waits until it says the venv is mounted, or shows why it could not be.

use std::io::{BufRead, BufReader, Read};
use std::os::windows::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::cli::MountArgs;

use super::serve::READY;
use super::CmdResult;

/// `DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP`: no console of its own, and the parent
/// console's Ctrl-C does not reach it.
const DETACHED: u32 = 0x0000_0008 | 0x0000_0200;

pub(super) fn spawn_daemon(venv: &Path, args: &MountArgs) -> CmdResult {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("mount")
        .arg(venv)
        .arg("--daemon-child")
        .arg("--memory-cache-mib")
        .arg(args.memory_cache_mib.to_string());
    if let Some(d) = &args.spill_dir {
        cmd.arg("--spill-dir").arg(d);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .creation_flags(DETACHED);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the background mount: {e}"))?;
    // (stderr read aside, so that a chatty child cannot block on a full pipe)
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if line == READY {
            println!(
                "{} mounted (`venvfs umount {}` unmounts)",
                venv.display(),
                venv.display()
            );
            return Ok(());
        }
        println!("{line}");
    }
    let status = child.wait()?;
    let errors = errors.join().unwrap_or_default();
    Err(match errors.trim() {
        "" => format!("the background mount exited ({status}) before mounting"),
        text => text.trim_start_matches("error: ").to_owned(),
    }
    .into())
}
