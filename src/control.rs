//! The daemon's control socket: how a command asks a running mount to take a change live.
//!
//! One Unix socket per daemon, next to its runtime record (`<pid>.sock` in
//! [`crate::registry::dir`]), so only the user who mounted can reach it. A request is one
//! line of JSON, the answer one line: `ok <what changed>` or `error <why>`. The command
//! waits for the answer, so it returns once the mounted view shows the change.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a command asks of a daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Take the manifest as it is on disk now; `touched` are the venv-relative paths of
    /// the venv's own files that the change wrote or removed.
    Reload { touched: Vec<PathBuf> },
    /// Remove these files of the venv's own directory, copies the layers show the same
    /// (`venvfs adopt`), then the directories left empty, and take the change as `Reload`
    /// does. The daemon does both itself, so a command killed midway leaves no removed
    /// file the daemon still believes in. The answer starts with `FILES BYTES `: how many
    /// were removed and the disk they gave back.
    RemoveCopies {
        files: Vec<PathBuf>,
        dirs: Vec<PathBuf>,
        /// Files changed at this time or later are left (see `adopt::remove_at`).
        #[serde(default)]
        since: Option<std::time::SystemTime>,
    },
}

/// Where daemon `pid` listens.
pub fn socket_path(pid: u32) -> PathBuf {
    crate::registry::socket_file(pid)
}

/// Listens for requests on behalf of daemon `pid` and answers each with `handle`, on a
/// thread of its own, for as long as the process runs.
pub fn serve(
    pid: u32,
    handle: impl Fn(Request) -> Result<String, String> + Send + 'static,
) -> std::io::Result<()> {
    crate::registry::own_dir()?;
    let path = socket_path(pid);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    // (the daemon runs with umask 0: the socket is its user's alone)
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    std::thread::Builder::new()
        .name("venvfs-control".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                if let Err(e) = answer(conn, &handle) {
                    tracing::warn!("control request failed: {e}");
                }
            }
        })?;
    Ok(())
}

fn answer(
    conn: UnixStream,
    handle: &impl Fn(Request) -> Result<String, String>,
) -> std::io::Result<()> {
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(request) => match handle(request) {
            Ok(done) => format!("ok {done}\n"),
            Err(why) => format!("error {}\n", why.replace('\n', " ")),
        },
        Err(e) => format!("error unreadable request: {e}\n"),
    };
    (&conn).write_all(reply.as_bytes())
}

/// Sends `request` to daemon `pid` and waits for its answer (the `ok` text, or the error).
pub fn ask(pid: u32, request: &Request) -> Result<String, String> {
    let path = socket_path(pid);
    let conn = UnixStream::connect(&path).map_err(|e| {
        format!(
            "cannot reach the venvfs daemon (pid {pid}) at {}: {e}",
            path.display()
        )
    })?;
    // A reload of thousands of layers takes a few seconds at most; a daemon that does not
    // answer in a minute is stuck.
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let mut text = serde_json::to_string(request).map_err(|e| e.to_string())?;
    text.push('\n');
    (&conn)
        .write_all(text.as_bytes())
        .map_err(|e| format!("cannot talk to the venvfs daemon (pid {pid}): {e}"))?;
    let mut reply = String::new();
    BufReader::new(&conn)
        .read_line(&mut reply)
        .map_err(|e| format!("no answer from the venvfs daemon (pid {pid}): {e}"))?;
    let reply = reply.trim_end();
    match reply.split_once(' ').unwrap_or((reply, "")) {
        ("ok", done) => Ok(done.to_owned()),
        ("error", why) => Err(why.to_owned()),
        _ => Err(format!("the venvfs daemon (pid {pid}) answered {reply:?}")),
    }
}
