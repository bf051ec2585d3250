//! Mounting a core with Dokan, and unmounting it from anywhere (Ctrl-C, `venvfs umount`).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use dokan::{FileSystemMountError, FileSystemMounter, MountFlags, MountOptions};
use venvfs_api::FileSystem;
use widestring::U16CString;

use crate::handler::Handler;

/// Why a mount failed.
#[derive(Debug)]
pub enum MountError {
    /// The mount point cannot be passed to Windows (it holds a NUL).
    BadMountPoint,
    /// Dokan refused (no driver installed, the folder is not empty, ...).
    Dokan(FileSystemMountError),
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountError::BadMountPoint => write!(f, "the mount point's path contains a NUL"),
            MountError::Dokan(
                FileSystemMountError::DriverInstall | FileSystemMountError::Start,
            ) => {
                write!(f, "the Dokan driver is not available: install Dokany 2.x (https://github.com/dokan-dev/dokany/releases)")
            }
            MountError::Dokan(FileSystemMountError::MountPoint | FileSystemMountError::Mount) => {
                write!(f, "Dokan cannot mount there: a folder mount point must be an empty folder on NTFS, not already a mount point")
            }
            MountError::Dokan(e) => write!(f, "Dokan: {e}"),
        }
    }
}

impl std::error::Error for MountError {}

/// Serves `fs` at `mount_point` (a drive letter such as `V:` or an empty NTFS folder) until
/// it is unmounted; `mounted` runs once the volume is up. Returns after the unmount.
pub fn serve<F: FileSystem>(
    fs: F,
    mount_point: &Path,
    mounted: impl FnOnce(),
) -> Result<(), MountError> {
    let point = U16CString::from_os_str(mount_point).map_err(|_| MountError::BadMountPoint)?;
    let handler = Handler::new(fs);
    let options = MountOptions {
        // names are compared by the core under Windows rules; Dokan passes them as typed
        flags: MountFlags::empty(),
        // Dokan unmounts a volume whose request outlives this: the first read of a big
        // compressed wheel member decompresses all of it, which can take longer than
        // Dokan's default 15 s on a slow disk
        timeout: Duration::from_secs(120),
        ..MountOptions::default()
    };
    dokan::init();
    let result = {
        let mut mounter = FileSystemMounter::new(&handler, &point, &options);
        match mounter.mount() {
            Ok(volume) => {
                mounted();
                // dropping the volume waits until it is unmounted
                drop(volume);
                Ok(())
            }
            Err(e) => Err(MountError::Dokan(e)),
        }
    };
    dokan::shutdown();
    result
}

/// Unmounts the Dokan volume at `mount_point`; whether there was one.
pub fn unmount(mount_point: &Path) -> bool {
    match U16CString::from_os_str(mount_point) {
        Ok(point) => dokan::unmount(point),
        Err(_) => false,
    }
}

/// The mount points of the Dokan volumes running now (any program's), as paths.
pub fn mount_points() -> Vec<std::path::PathBuf> {
    let Some(list) = dokan::list_mount_points(false) else {
        return Vec::new();
    };
    list.into_iter()
        .filter_map(|m| m.mount_point)
        .map(|p| crate::path::from_device_path(&p.to_string_lossy()).into())
        .collect()
}
