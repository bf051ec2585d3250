//! The guard between `venvfs run` and its command: a process of its own (venvfs started
//! again, `venvfs run --guard-of PID VENV -- COMMAND`) that starts the command and ends
//! everything the command started when venvfs is gone.
//!
//! `venvfs run` serves the venv's mount itself. Killed with SIGKILL it cannot clean up, and
//! the kernel only tells a direct child (`PR_SET_PDEATHSIG`): the command would end, but
//! what it left running in the background (a worker pool, `cmd &` in a batch script)
//! would live on in the private namespace, where the venv no longer answers. The guard is
//! that direct child, and a child subreaper (`PR_SET_CHILD_SUBREAPER`): every orphan the
//! command leaves becomes its child, so it knows all of them. When told venvfs is gone it
//! ends them all (SIGTERM, then SIGKILL after a second), then itself. A PID namespace
//! would do it with no guard, but gives the command other PIDs than the machine's: MPI
//! ranks on one node then cannot reach each other's memory (`process_vm_readv` takes the
//! peer's PID), and names made of a PID (`/dev/shm` segments, lock files) collide between
//! jobs, each of which would be PID 2.
//!
//! Otherwise the guard is invisible: signals venvfs passes on (SIGTERM, SIGHUP) go to the
//! command, a terminal's Ctrl-C reaches the command directly, and the guard exits with the
//! command's exit code (128 + the signal when it was killed), or 127 and 126 when it cannot
//! be started, as a shell does.

use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The signal the kernel sends the guard when venvfs's main thread, which started it, ends
/// (`PR_SET_PDEATHSIG`): it ends only when venvfs does. One venvfs never passes on, so it
/// cannot be told from a SIGTERM meant for the command. (The parent's PID cannot tell
/// either: the signal comes as the main thread ends, while other threads still run.)
pub(super) const VENVFS_GONE: i32 = libc::SIGUSR1;

/// Runs `command` under the guard of `venvfs run` process `parent`; returns the exit code.
pub fn guard(parent: i32, command: &[OsString]) -> i32 {
    // (first: a signal before this would end the guard and leave the command unguarded)
    let signals = signal_hook::iterator::Signals::new([
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        VENVFS_GONE,
    ]);
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    }
    if parent_gone(parent) {
        return 128 + libc::SIGTERM; // (venvfs died before the guard was set up)
    }
    let Some((program, rest)) = command.split_first() else {
        eprintln!("venvfs run: no command given after `--`");
        return 2;
    };
    let mut cmd = Command::new(program);
    cmd.args(rest);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            // (should the guard itself be killed, the command still goes)
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return cannot_start(program, &e),
    };
    let pid = child.id() as i32;
    match signals {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                for sig in signals.forever() {
                    if sig == VENVFS_GONE {
                        VENVFS_IS_GONE.store(true, Ordering::SeqCst);
                        end_all();
                        std::process::exit(128 + libc::SIGTERM);
                    }
                    if sig != libc::SIGINT {
                        // SAFETY: sending a signal to our own child.
                        unsafe {
                            libc::kill(pid, sig);
                        }
                    }
                }
            });
        }
        // (the command runs; only a SIGTERM passed on, or venvfs's end, goes unnoticed)
        Err(e) => eprintln!("venvfs run: cannot watch for signals: {e}"),
    }
    // Reap every child (orphans the command left come here), until the command ends.
    let code = loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into the integer given.
        let reaped = unsafe { libc::waitpid(-1, &mut status, 0) };
        if reaped == pid {
            let status = std::process::ExitStatus::from_raw(status);
            break match (status.code(), status.signal()) {
                (Some(code), _) => code,
                (None, Some(sig)) => 128 + sig,
                _ => 1,
            };
        }
        if reaped < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break 1;
        }
    };
    // (venvfs died as the command ended: the background goes too; `end_all` waits for
    // the signal's own call to finish)
    if VENVFS_IS_GONE.load(Ordering::SeqCst) || parent_gone(parent) {
        end_all();
    }
    code
}

/// Says why `program` cannot be started, and gives the exit code a shell gives then (a
/// batch script can tell the two apart): 127 when it is not there, else 126.
pub(super) fn cannot_start(program: &OsStr, e: &std::io::Error) -> i32 {
    eprintln!("venvfs run: cannot run {}: {e}", program.to_string_lossy());
    if e.kind() == ErrorKind::NotFound {
        127
    } else {
        126
    }
}

/// Set when [`VENVFS_GONE`] came: the main thread, which the command's end wakes, must
/// not exit while the signal's thread is still ending the rest.
static VENVFS_IS_GONE: AtomicBool = AtomicBool::new(false);

/// Whether the `venvfs run` process that started the guard is gone (the guard has another
/// parent once it is all gone).
fn parent_gone(parent: i32) -> bool {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() != parent }
}

/// Ends every process below the guard: SIGTERM, and SIGKILL to what is left after a second.
/// Once at a time (the signal thread and the main one may both come here).
fn end_all() {
    static ENDING: Mutex<()> = Mutex::new(());
    let _one = ENDING.lock();
    let started = Instant::now();
    let mut sig = libc::SIGTERM;
    loop {
        let left = descendants();
        if left.is_empty() {
            return;
        }
        if started.elapsed() > Duration::from_secs(1) {
            sig = libc::SIGKILL;
        }
        for p in left {
            // SAFETY: signalling a process below us.
            unsafe {
                libc::kill(p, sig);
            }
        }
        // (the ended ones become zombies of their parents: reap those that are ours)
        // SAFETY: waitpid with WNOHANG and no status.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The processes below this one that are still running (zombies aside), from the kernel's
/// lists of each task's children.
fn descendants() -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![std::process::id() as i32];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(children) = std::fs::read_to_string(task.path().join("children")) else {
                continue;
            };
            for c in children
                .split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok())
            {
                if !is_zombie(c) {
                    out.push(c);
                }
                todo.push(c);
            }
        }
    }
    out
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        // (the state follows the command name, which is in parentheses and may hold any)
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}
