//! venvfs's Windows adapter: serves a [`venvfs_api::FileSystem`] as a Dokan volume.
//!
//! An adapter translates and nothing more (as `venvfs-fuse` does for Linux). Dokan asks by
//! path with NT create semantics; the core answers by inode with its own error kinds and
//! applies the Windows rules (names, share modes, delete pending) itself. Between them:
//! - [`volume`]: every Dokan callback as a plain method over the core (path walks, the
//!   per-open context, delete on close); tested on Linux against the real overlay;
//! - [`plan`]: `create_file`'s arguments through the core's disposition table into one
//!   core open request;
//! - [`ntstatus`]: the one table from the core's error kinds to NTSTATUS;
//! - [`info`], [`pattern`], [`path`], [`security`]: conversions (attributes, FILETIMEs,
//!   listing patterns, paths, the fixed security descriptor);
//! - `handler` and `mount` (Windows only): the `dokan` crate's `FileSystemHandler` calling
//!   [`volume`], and mounting / unmounting.
//!
//! Everything but the last two compiles and is tested on every platform.

pub mod info;
pub mod ntstatus;
pub mod path;
pub mod pattern;
pub mod plan;
pub mod security;
pub mod volume;

#[cfg(windows)]
mod handler;
#[cfg(windows)]
mod mount;

#[cfg(windows)]
pub use handler::Handler;
#[cfg(windows)]
pub use mount::{mount_points, serve, unmount, MountError};
pub use volume::Volume;
