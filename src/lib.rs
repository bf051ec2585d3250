//! venvfs: a Python package cache served as a virtual environment.
//!
//! The core is platform-neutral: [`layer`] reads wheel layers, [`lower`] merges them into an
//! in-memory tree, [`upper`] keeps the venv directory's own content and overlay markers, and
//! [`overlay`] implements the filesystem operations over both. Kernel adapters live in
//! `platform/` and only translate.
//!
//! Linux mounts with FUSE, Windows with Dokan (`daemon_windows/`, over the portable upper
//! and the Windows rules). Everything else builds on every platform: the overlay core with
//! the upper behind a trait (a POSIX one working from a directory descriptor, and a
//! portable one working by path through `std::fs`, which the Windows mount uses), the
//! commands that change an unmounted venv, and [`daemon`], which on other platforms is a
//! stand-in whose mount commands say that no backend is built.

pub mod activate;
pub mod bytecode;
pub mod cli;
#[cfg(target_os = "linux")]
pub mod control;
#[cfg(target_os = "linux")]
pub mod daemon;
#[cfg(windows)]
#[path = "daemon_windows/mod.rs"]
pub mod daemon;
#[cfg(not(any(target_os = "linux", windows)))]
#[path = "daemon_stub.rs"]
pub mod daemon;
pub mod dir_table;
pub mod doctor;
pub mod fetch;
pub mod finder;
pub mod fsutil;
pub mod install;
pub mod interpreter;
pub mod inventory;
pub mod layer;
pub mod lock;
pub mod logging;
pub mod lower;
pub mod manifest;
#[cfg(target_os = "linux")]
pub mod materialize;
pub mod mount_aside;
pub mod name;
pub mod overlay;
pub mod parallel;
pub mod pins;
pub mod progress;
pub mod registry;
/// The rules a mount follows (POSIX or Windows), in a crate of their own so that the Dokan
/// adapter applies the same ones the core does.
pub use venvfs_rules as rules;
pub mod tags;
pub mod upper;
pub mod upper_format;
pub mod venv;

/// Where the unit tests find the real PyPI wheels: the integration tests' lookup, shared.
#[cfg(test)]
#[path = "../tests/common/wheels_dir.rs"]
mod test_wheels;
