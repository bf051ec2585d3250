//! venvfs: a Python package cache served as a virtual environment.
//!
//! The core is platform-neutral: [`layer`] reads wheel layers, [`lower`] merges them into an
//! in-memory tree, [`upper`] keeps the venv directory's own content and overlay markers, and
//! [`overlay`] implements the filesystem operations over both. Kernel adapters live in
//! `platform/` and only translate.

pub mod cli;
#[cfg(target_os = "linux")]
pub mod daemon;
pub mod finder;
pub mod fsutil;
pub mod install;
pub mod interpreter;
pub mod layer;
pub mod logging;
pub mod lower;
pub mod manifest;
pub mod overlay;
pub mod parallel;
pub mod pins;
pub mod registry;
pub mod tags;
pub mod upper;
pub mod venv;
pub mod whiteout;
