//! Where copy-ups and atomic writes are built before they are renamed into place: a work
//! directory of each daemon's own, `.venvfs/work/<owner>`, so that several daemons serving
//! one venv (mounts on several hosts sharing it over NFS or sshfs, or `venvfs run` from many
//! jobs) never build under the same name, and one that starts never removes what another is
//! still building (it used to empty `.venvfs/work`, and another host's copy-up in progress
//! failed with ENOENT).
//!
//! The owner is `<host>.<pid namespace>.<pid>`. A daemon clears, when it starts, the work
//! directories of owners it can tell are gone: on its own host and in its own pid namespace,
//! a process that no longer runs. Others' stay (a crashed daemon on another host leaves a
//! few temporary files behind, which cost some disk and nothing else).

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Rel, WORK};

/// One daemon's work directory.
#[derive(Debug)]
pub struct Work {
    /// `.venvfs/work/<owner>`.
    dir: String,
}

/// The number of the next temporary name (one count per process, which is what a work
/// directory belongs to).
static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Default for Work {
    fn default() -> Self {
        Work {
            dir: format!("{WORK}/{}", Owner::this().name()),
        }
    }
}

impl Work {
    /// The directory (venv-relative).
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// A fresh name in the directory.
    pub fn temp(&self) -> Rel {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("{}/{n}", self.dir).into_bytes()
    }
}

/// Who a work directory belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub host: String,
    /// The pid namespace (its inode number on Linux; 0 where unknown): pids compare only
    /// within one.
    pub pid_ns: u64,
    pub pid: u32,
}

impl Owner {
    /// This process.
    pub fn this() -> Owner {
        Owner {
            host: host_name(),
            pid_ns: pid_namespace(),
            pid: std::process::id(),
        }
    }

    pub fn name(&self) -> String {
        format!("{}.{}.{}", self.host, self.pid_ns, self.pid)
    }

    /// Reads a work directory's name back (host names may hold dots).
    pub fn parse(name: &str) -> Option<Owner> {
        let (rest, pid) = name.rsplit_once('.')?;
        let (host, pid_ns) = rest.rsplit_once('.')?;
        Some(Owner {
            host: host.to_owned(),
            pid_ns: pid_ns.parse().ok()?,
            pid: pid.parse().ok()?,
        })
    }

    /// Whether this owner is known to be gone, as seen from `me`: on the same host and in
    /// the same pid namespace, a process that does not run, or `me` itself (a directory of
    /// an earlier process with this pid: the daemon starting has built nothing yet).
    pub fn is_gone(&self, me: &Owner) -> bool {
        if self.host != me.host || self.pid_ns != me.pid_ns {
            return false;
        }
        self.pid == me.pid || (cfg!(target_os = "linux") && !crate::registry::alive(self.pid))
    }
}

/// What a name directly in `.venvfs/work` is left from, as far as cleaning goes: a work
/// directory of some owner, or a file of the layout before per-daemon directories
/// (`<pid>.<n>`, made on some host by a daemon that may still run there).
pub fn is_stale(name: &str, is_dir: bool, me: &Owner) -> bool {
    if is_dir {
        return Owner::parse(name).is_some_and(|o| o.is_gone(me));
    }
    // (a file of the old layout: its pid, on this host as far as anyone can tell)
    let pid = name.split('.').next().and_then(|p| p.parse::<u32>().ok());
    let old = Owner {
        pid: pid.unwrap_or(0),
        ..me.clone()
    };
    pid.is_none() || old.is_gone(me)
}

/// This machine's name.
fn host_name() -> String {
    #[cfg(unix)]
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok());
    #[cfg(not(unix))]
    let name = std::env::var("COMPUTERNAME").ok();
    let name = name.map(|n| n.trim().to_owned()).unwrap_or_default();
    // (a file name: nothing but what hosts are named with)
    let name: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '.' => c,
            _ => '_',
        })
        .collect();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

/// The inode number of this process's pid namespace (0 where there is none to read).
fn pid_namespace() -> u64 {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_round_trip_and_age() {
        let me = Owner::this();
        assert_eq!(Owner::parse(&me.name()), Some(me.clone()));
        let dotted = Owner {
            host: "node7.cluster.example".into(),
            pid_ns: 4026531836,
            pid: 42,
        };
        assert_eq!(Owner::parse(&dotted.name()), Some(dotted.clone()));
        assert!(!dotted.is_gone(&me), "another host: never known to be gone");
        assert!(me.is_gone(&me), "an earlier process with this pid");
        let other_ns = Owner {
            pid_ns: me.pid_ns + 1,
            pid: u32::MAX - 1,
            ..me.clone()
        };
        assert!(!other_ns.is_gone(&me), "another pid namespace");
        assert!(!is_stale("what", true, &me), "an unknown directory stays");
        assert!(is_stale("garbage", false, &me), "an unknown file goes");
        #[cfg(target_os = "linux")]
        {
            let dead = Owner {
                pid: u32::MAX - 1,
                ..me.clone()
            };
            assert!(dead.is_gone(&me));
            assert!(is_stale(&dead.name(), true, &me));
            assert!(is_stale(&format!("{}.3", u32::MAX - 1), false, &me));
            let parent = std::os::unix::process::parent_id();
            assert!(!is_stale(&format!("{parent}.3"), false, &me), "a live pid");
        }
    }
}
