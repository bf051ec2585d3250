//! Counts of the requests the kernel sent, by kind: what a workload costs in round trips to
//! the daemon (whatever the kernel answers from its own caches never shows up here); and
//! of the pages the daemon pushed to the kernel unasked (`notify_store`, a notification of
//! up to 1 MiB each).

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! ops {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// A kind of FUSE request.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum Op { $($variant),* }

        impl Op {
            /// Every kind, in protocol order.
            pub const ALL: &'static [Op] = &[$(Op::$variant),*];

            /// The request's name as the FUSE protocol spells it (lower case).
            pub fn name(self) -> &'static str {
                match self { $(Op::$variant => $name),* }
            }
        }
    };
}

ops! {
    Lookup => "lookup",
    Forget => "forget",
    Getattr => "getattr",
    Setattr => "setattr",
    Readlink => "readlink",
    Symlink => "symlink",
    Mknod => "mknod",
    Mkdir => "mkdir",
    Unlink => "unlink",
    Rmdir => "rmdir",
    Rename => "rename",
    Link => "link",
    Open => "open",
    Read => "read",
    Write => "write",
    Statfs => "statfs",
    Release => "release",
    Fsync => "fsync",
    Setxattr => "setxattr",
    Getxattr => "getxattr",
    Listxattr => "listxattr",
    Removexattr => "removexattr",
    Flush => "flush",
    Opendir => "opendir",
    Readdir => "readdir",
    Releasedir => "releasedir",
    Fsyncdir => "fsyncdir",
    Access => "access",
    Create => "create",
    Ioctl => "ioctl",
    Fallocate => "fallocate",
    Readdirplus => "readdirplus",
    NotifyStore => "notify_store",
}

/// Request counters, shared between the adapter's worker threads and whoever reports them.
#[derive(Debug)]
pub struct RequestStats {
    counts: Vec<AtomicU64>,
}

impl Default for RequestStats {
    fn default() -> Self {
        RequestStats {
            counts: Op::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl RequestStats {
    /// Counts one request.
    pub fn count(&self, op: Op) {
        self.counts[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The requests of each kind received so far, kinds never seen left out.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        Op::ALL
            .iter()
            .map(|&op| (op.name(), self.counts[op as usize].load(Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind() {
        let s = RequestStats::default();
        s.count(Op::Lookup);
        s.count(Op::Lookup);
        s.count(Op::Readdirplus);
        assert_eq!(s.snapshot(), vec![("lookup", 2), ("readdirplus", 1)]);
        assert_eq!(Op::ALL.len(), Op::NotifyStore as usize + 1);
    }
}
