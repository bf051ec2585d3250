//! Linux kernel adapter for venvfs: serves a [`venvfs_api::FileSystem`] through FUSE
//! (the `fuser` crate).
//!
//! - [`mount`] mounts a filesystem and returns a [`Mounted`] session; [`Mounted::run`]
//!   serves it until it is unmounted, which an [`Unmounter`] can do from another thread.
//! - [`FuseAdapter`] is the request translator itself (no filesystem logic in it).
//! - [`errno`] is the one mapping from [`venvfs_api::Error`] to errno values.
//! - [`RequestStats`] counts the requests served, by kind.
//! - [`unmount`], [`is_stale`] and [`mounts`] deal with mounts by path, e.g. leftovers of a
//!   crashed server.

#![warn(missing_docs)]

mod adapter;
mod convert;
mod errno;
mod fusermount;
mod mount;
mod mountinfo;
mod passthrough;
mod stats;

pub use adapter::FuseAdapter;
pub use errno::errno;
pub use mount::{is_stale, mount, unmount, MountConfig, Mounted, Unmounter, SUBTYPE};
pub use mountinfo::{containing, mounts, parse_table, table, MountEntry, MountInfo};
pub use stats::{Op, RequestStats};
