//! venvfs: a Python package cache served as a virtual environment.
//!
//! The core is platform-neutral: [`layer`] reads wheel layers, [`lower`] merges them into an
//! in-memory tree, [`upper`] keeps the venv directory's own content and overlay markers, and
//! [`overlay`] implements the filesystem operations over both. Kernel adapters live in
//! `platform/` and only translate.
//!
//! Only Linux can mount so far (FUSE). Elsewhere the upper layer, the lower tree and the
//! overlay over them, which work through Unix directory descriptors, are left out, and
//! [`daemon`] is a stand-in whose mount commands say that no backend is built; the rest
//! (creating, syncing and installing into an unmounted venv) is platform-neutral.

pub mod activate;
pub mod cli;
#[cfg(target_os = "linux")]
pub mod control;
#[cfg(target_os = "linux")]
pub mod daemon;
#[cfg(not(target_os = "linux"))]
#[path = "daemon_stub.rs"]
pub mod daemon;
pub mod doctor;
pub mod fetch;
pub mod finder;
pub mod fsutil;
pub mod install;
pub mod interpreter;
pub mod inventory;
pub mod layer;
pub mod logging;
#[cfg(unix)]
pub mod lower;
pub mod manifest;
pub mod name;
#[cfg(unix)]
pub mod overlay;
pub mod parallel;
pub mod pins;
pub mod registry;
pub mod rules;
pub mod tags;
#[cfg(unix)]
pub mod upper;
pub mod upper_format;
pub mod venv;

/// Where the unit tests find the real PyPI wheels: the integration tests' lookup, shared.
#[cfg(test)]
#[path = "../tests/common/wheels_dir.rs"]
mod test_wheels;
