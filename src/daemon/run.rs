//! `venvfs run VENV -- COMMAND...`: a mount that lives exactly as long as one command.
//!
//! For batch jobs on shared machines. venvfs enters a mount namespace of its own (and a user
//! namespace first when not root: the kernel lets a user mount FUSE there when /dev/fuse is
//! open to them), makes every mount in it private, mounts the venv there and runs the
//! command in it. No other process sees the mount, and when the last process in the
//! namespace is gone the kernel drops it: nothing is left behind, whether the command ends,
//! is killed, or venvfs itself is killed (the command is then ended too, with what it left
//! running in the background: its venv is gone; see guard.rs).
//! The command runs with the venv activated (`python` is the venv's, as in `uv run`).
//! The command's exit code is venvfs's; a command killed by a signal gives 128 + the signal,
//! as a shell reports it. SIGTERM and SIGHUP sent to venvfs are passed on to the command;
//! a terminal's Ctrl-C reaches the command directly.
//!
//! A venv that is already mounted (by `venvfs mount`) is used as it is: the command runs in
//! it, and no second daemon writes the same venv directory.

use std::error::Error;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;

use venvfs_fuse::MountConfig;

use super::is_mounted;
use super::serve::{mount_hint, open_overlay};
use crate::cli::RunArgs;

pub fn run(args: RunArgs) -> Result<(), Box<dyn Error>> {
    if let Some(parent) = args.guard_of {
        std::process::exit(super::guard::guard(parent, &args.command));
    }
    let venv = super::existing_venv(&args.venv)?;
    crate::venv::python_version(&venv)?;
    super::refuse_hidden_interpreter(&venv)?;
    // (else `python` would be the next one on PATH, silently outside the venv)
    let python = venv.join("bin/python");
    if !python.exists() {
        return Err(format!(
            "{} does not lead to a Python interpreter (the one the venv was made with is \
             gone?); make the venv again with a Python that is there (`uv venv --clear {}` \
             keeps nothing, or `python3 -m venv --upgrade {}` keeps the venv's own files)",
            python.display(),
            venv.display(),
            venv.display()
        )
        .into());
    }
    let code = if is_mounted(&venv) {
        // (venvfs's own end leaves this venv mounted: the command needs no guard)
        run_command(&venv, &args.command, false)?
    } else {
        super::refuse_while_materialized(&venv)?;
        // (before any thread exists: the kernel refuses a new user namespace to a
        // multi-threaded process)
        enter_private_namespace()?;
        let manifest = crate::manifest::Manifest::load(&crate::manifest::manifest_path(&venv))?;
        let overlay = open_overlay(&venv, &manifest, 256, None, true, false)?;
        let cfg = MountConfig {
            fsname: format!("venvfs:{}", venv.display()),
            allow_other: false,
            threads: 4,
            passthrough: false,
        };
        let mounted = venvfs_fuse::mount(std::sync::Arc::clone(&overlay), &venv, &cfg)
            .map_err(|e| format!("cannot mount {}: {e}{}", venv.display(), mount_hint(&e)))?;
        // (recorded, and listening for changes, as `venvfs mount`'s daemon is: `venvfs
        // install`, `status` and uv's links work from within the command too)
        let record = super::serve::record_of(&venv, &overlay, Vec::new());
        super::serve::attach(&overlay, mounted.kernel_cache(), false, &record);
        let unmounter = mounted.unmounter();
        let serving = std::thread::spawn(move || mounted.run());
        let code = run_command(&venv, &args.command, true);
        crate::registry::remove(record.pid);
        if let Err(e) = unmounter.clone().unmount(true) {
            tracing::warn!("cannot unmount {}: {e}", venv.display());
        }
        let _ = serving.join();
        overlay.remove_bytecode_temps();
        // (as `venvfs mount`'s daemon does when it ends: no other daemon would ever clear it)
        if let Err(e) = overlay.upper().remove_work() {
            tracing::warn!("cannot remove the daemon's work directory: {e}");
        }
        code?
    };
    std::process::exit(code)
}

/// Runs the command to its end, in the venv as its activation would have it (as `uv run`
/// does: `python` and the venv's scripts found first on `PATH`, `VIRTUAL_ENV` set, uv told
/// to link), and returns its exit code (128 + signal when killed).
fn run_command(
    venv: &std::path::Path,
    command: &[std::ffi::OsString],
    guarded: bool,
) -> Result<i32, Box<dyn Error>> {
    let (program, rest) = command.split_first().ok_or("no command given after `--`")?;
    // When this venvfs serves the mount, the command is started by a guard, venvfs again,
    // which ends what the command leaves running should venvfs be killed (see guard.rs);
    // it gives back the command's exit code, and 127 or 126 when it cannot be started.
    let (mut cmd, death_signal) = if guarded {
        let mut cmd = Command::new("/proc/self/exe");
        // (as `ps` shows it)
        cmd.arg0("venvfs")
            .arg("run")
            .arg("--guard-of")
            .arg(std::process::id().to_string())
            .arg(venv)
            .arg("--")
            .args(command);
        (cmd, super::guard::VENVFS_GONE)
    } else {
        let mut cmd = Command::new(program);
        cmd.args(rest);
        (cmd, libc::SIGTERM)
    };
    // The working directory by its path again: started inside the venv, this process's
    // directory is the one the mount now covers, and the command must see the mount's.
    if let Ok(cwd) = std::env::current_dir() {
        cmd.current_dir(cwd);
    }
    for (var, value) in activated(venv) {
        match value {
            Some(v) => cmd.env(var, v),
            None => cmd.env_remove(var),
        };
    }
    // (the daemon's own umask is 0, which the command must not inherit: it would make
    // every file it writes, in the venv or anywhere, writable by all)
    let umask = super::serve::CALLERS_UMASK.get().copied().unwrap_or(0o022);
    // (nor its raised limit of open files: some programs size tables by it)
    let open_files = super::serve::CALLERS_OPEN_FILES
        .get()
        .map(|l| libc::rlimit {
            rlim_cur: l.current.unwrap_or(libc::RLIM_INFINITY),
            rlim_max: l.maximum.unwrap_or(libc::RLIM_INFINITY),
        });
    // SAFETY: prctl, umask and setrlimit are async-signal-safe and touch no memory of the
    // parent.
    unsafe {
        cmd.pre_exec(move || {
            // told when venvfs goes (the guard then ends the command)
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::umask(umask as libc::mode_t);
            if let Some(limit) = &open_files {
                libc::setrlimit(libc::RLIMIT_NOFILE, limit);
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) if guarded => {
            return Err(format!(
                "cannot start venvfs again (/proc/self/exe) to run the command: {e}"
            )
            .into())
        }
        Err(e) => return Ok(super::guard::cannot_start(program, &e)),
    };
    let pid = child.id() as i32;
    // Ctrl-C reaches the command from the terminal; venvfs waits for it to end.
    let mut signals =
        signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM, libc::SIGHUP])?;
    let handle = signals.handle();
    let forward = std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig != libc::SIGINT {
                // SAFETY: sending a signal to our own child.
                unsafe {
                    libc::kill(pid, sig);
                }
            }
        }
    });
    let status = child.wait()?;
    handle.close();
    let _ = forward.join();
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => 1,
    })
}

/// What activating `venv` changes in the environment (`None`: unset). A changed `PATH` is
/// also where the command itself is looked for.
fn activated(venv: &std::path::Path) -> Vec<(&'static str, Option<std::ffi::OsString>)> {
    let bin = venv.join("bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path)))
        .unwrap_or(path);
    let mut vars = vec![
        ("PATH", Some(path)),
        ("VIRTUAL_ENV", Some(venv.as_os_str().to_owned())),
        ("PYTHONHOME", None),
    ];
    if std::env::var_os("UV_LINK_MODE").is_none() {
        vars.push(("UV_LINK_MODE", Some("symlink".into())));
    }
    vars
}

/// Moves this process into a mount namespace of its own, with every mount private to it
/// (and into a user namespace first when not root).
fn enter_private_namespace() -> Result<(), Box<dyn Error>> {
    use rustix::thread::UnshareFlags;
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    // SAFETY: new mount and user namespaces change no memory or descriptor this process
    // holds (the flags that would, CLONE_FILES and CLONE_FS, are not asked for).
    let unshare = |flags| unsafe { rustix::thread::unshare_unsafe(flags) };
    if uid == 0 {
        unshare(UnshareFlags::NEWNS)
            .map_err(|e| format!("cannot make a private mount namespace: {e}"))?;
    } else {
        unshare(UnshareFlags::NEWUSER | UnshareFlags::NEWNS).map_err(|e| {
            format!(
                "venvfs run needs root, or user namespaces (this kernel refused one: {e}; \
                 see /proc/sys/user/max_user_namespaces)"
            )
        })?;
        // root inside the namespace is this user outside it
        std::fs::write("/proc/self/setgroups", "deny")?;
        std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
        std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
        if std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .is_err()
        {
            return Err(
                "venvfs run as a user needs /dev/fuse open to that user (chmod 0666 \
                        /dev/fuse, as common distributions have it), or root"
                    .into(),
            );
        }
    }
    // mounts made here must not propagate back to the machine's namespace
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::PRIVATE | rustix::mount::MountPropagationFlags::REC,
    )
    .map_err(|e| format!("cannot make the mounts of the namespace private: {e}"))?;
    Ok(())
}
