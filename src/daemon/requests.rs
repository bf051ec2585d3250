//! Request statistics: the daemon writes its counts on SIGUSR1, `venvfs status --requests`
//! asks for them and reads them.

use std::time::{Duration, Instant};

use crate::registry;

/// Writes the request counts where `venvfs status --requests` reads them: one `kind count`
/// line each.
pub(super) fn write_requests(pid: u32, stats: &venvfs_fuse::RequestStats) -> std::io::Result<()> {
    let text: String = stats
        .snapshot()
        .iter()
        .map(|(op, n)| format!("{op} {n}\n"))
        .collect();
    crate::fsutil::write_atomic(&registry::requests_file(pid), text.as_bytes(), 0o600)
}

pub(super) fn format_requests(counts: &[(&str, u64)]) -> String {
    let parts: Vec<String> = counts.iter().map(|(op, n)| format!("{op} {n}")).collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Asks a daemon for its request counts (SIGUSR1) and waits for it to write them.
pub(super) fn read_requests(pid: u32) -> Option<String> {
    let file = registry::requests_file(pid);
    let _ = std::fs::remove_file(&file);
    let pid = rustix::process::Pid::from_raw(pid as i32)?;
    rustix::process::kill_process(pid, rustix::process::Signal::USR1).ok()?;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(&file) {
            return Some(text);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}
