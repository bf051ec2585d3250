//! The machine's checks: whether FUSE can be used, and where uv's cache and the venv are
//! (filesystem, device, free space, read-only), which decides whether uv can hardlink
//! between them or copies every file.

use std::path::{Path, PathBuf};

use super::Finding;
use crate::inventory::human;

const FUSE_DEVICE: &str = "/dev/fuse";

/// What opening `/dev/fuse` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    Usable,
    Missing,
    Denied(String),
    Broken(String),
}

/// What decides whether this user can mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuseFacts {
    /// Whether the platform mounts with FUSE at all (Linux).
    pub supported: bool,
    pub root: bool,
    pub device: Device,
    /// `fusermount3` as found on `PATH`.
    pub fusermount: Option<PathBuf>,
    /// `/proc/sys/user/max_user_namespaces`.
    pub user_namespaces: Option<u64>,
}

impl FuseFacts {
    pub fn gather() -> FuseFacts {
        let device = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(FUSE_DEVICE)
        {
            Ok(_) => Device::Usable,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Device::Missing,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                Device::Denied(e.to_string())
            }
            Err(e) => Device::Broken(e.to_string()),
        };
        FuseFacts {
            supported: cfg!(target_os = "linux"),
            root: is_root(),
            device,
            fusermount: on_path("fusermount3"),
            user_namespaces: std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
                .ok()
                .and_then(|t| t.trim().parse().ok()),
        }
    }
}

#[cfg(unix)]
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}

/// The first file named `name` in a directory of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// What FUSE facts mean: whether `venvfs mount` can work for this user.
pub fn fuse_findings(f: &FuseFacts) -> Vec<Finding> {
    if !f.supported {
        return vec![Finding::ok(
            "fuse",
            "mounting needs Linux and FUSE; the Windows (Dokan) backend is not built yet, \
             so venvs are only created, synced and listed here",
        )];
    }
    let mut out = vec![match &f.device {
        Device::Usable => Finding::ok(
            "fuse-device",
            format!("{FUSE_DEVICE} can be opened by this user"),
        ),
        Device::Missing => Finding::fail(
            "fuse-device",
            format!(
                "{FUSE_DEVICE} does not exist: the fuse kernel module is not loaded (in a \
                 container: it was started without the device, `docker run --device /dev/fuse`); \
                 without FUSE, `venvfs materialize VENV` still turns a venvfs venv into a plain \
                 one, which needs no mount"
            ),
            Some("sudo modprobe fuse".into()),
        ),
        Device::Denied(e) => Finding::fail(
            "fuse-device",
            format!(
                "{FUSE_DEVICE} cannot be opened by this user ({e}); fusermount3 needs it \
                 readable and writable (mode 0666 on common distributions)"
            ),
            Some(format!("sudo chmod 0666 {FUSE_DEVICE}")),
        ),
        Device::Broken(e) => Finding::fail(
            "fuse-device",
            format!("{FUSE_DEVICE} cannot be opened: {e}"),
            Some("sudo modprobe fuse".into()),
        ),
    }];
    out.push(match (&f.fusermount, f.root) {
        (Some(p), _) => Finding::ok("fusermount3", format!("{}", p.display())),
        (None, true) => Finding::ok(
            "fusermount3",
            "not on PATH; not needed as root (the mount is made directly)",
        ),
        (None, false) => Finding::fail(
            "fusermount3",
            "not on PATH: a user other than root mounts and unmounts through it",
            Some("sudo apt-get install fuse3".into()),
        ),
    });
    out.push(Finding::ok(
        "user-namespaces",
        match f.user_namespaces {
            Some(0) => "disabled (max_user_namespaces = 0): FUSE inside a rootless container \
                        is not possible; mounts made here through fusermount3 are not affected"
                .to_owned(),
            Some(n) => format!("enabled (max_user_namespaces = {n})"),
            None => "not known (no /proc/sys/user/max_user_namespaces)".to_owned(),
        },
    ));
    out
}

/// Where a directory is: its filesystem as the mount table and `statvfs` describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsFacts {
    pub path: PathBuf,
    pub exists: bool,
    /// `ext4`, `fuse.sshfs`, ...
    pub fstype: Option<String>,
    /// The mount's source (`/dev/sda1`, `host:/dir`).
    pub source: Option<String>,
    pub mountpoint: Option<PathBuf>,
    /// `st_dev`, as `major:minor` and as the number that decides hardlinking.
    pub device: Option<(u64, String)>,
    pub free: Option<u64>,
    pub read_only: Option<bool>,
}

impl FsFacts {
    pub fn gather(path: &Path) -> FsFacts {
        let mut f = FsFacts {
            path: path.to_owned(),
            exists: path.exists(),
            ..FsFacts::default()
        };
        if f.exists {
            fill(&mut f);
        }
        f
    }

    /// `ext4 (/dev/sda1, device 8:1), 12.3 GiB free, read-write`, with what is known.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut on = self.fstype.clone().unwrap_or_else(|| "a filesystem".into());
        let mut what = Vec::new();
        if let Some(s) = &self.source {
            what.push(s.clone());
        }
        if let Some((_, d)) = &self.device {
            what.push(format!("device {d}"));
        }
        if !what.is_empty() {
            on.push_str(&format!(" ({})", what.join(", ")));
        }
        parts.push(on);
        if let Some(free) = self.free {
            parts.push(format!("{} free", human(free)));
        }
        match self.read_only {
            Some(true) => parts.push("read-only".into()),
            Some(false) => parts.push("read-write".into()),
            None => {}
        }
        format!("{} on {}", self.path.display(), parts.join(", "))
    }
}

#[cfg(unix)]
fn fill(f: &mut FsFacts) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::metadata(&f.path) {
        let dev = m.dev();
        let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
        f.device = Some((dev, format!("{major}:{minor}")));
    }
    if let Ok(s) = rustix::fs::statvfs(&f.path) {
        f.free = Some(s.f_bavail.saturating_mul(s.f_frsize));
        f.read_only = Some(s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY));
    }
    #[cfg(target_os = "linux")]
    if let Ok(abs) = f.path.canonicalize() {
        let table = venvfs_fuse::table();
        if let Some(m) = venvfs_fuse::containing(&table, &abs) {
            f.fstype = Some(m.fstype.clone());
            f.source = Some(m.source.clone());
            f.mountpoint = Some(m.mountpoint.clone());
        }
    }
}

#[cfg(not(unix))]
fn fill(_f: &mut FsFacts) {}

/// A shared uv cache of `$VENVFS_EXTRA_CACHE_DIRS`, looked in after the user's own.
pub fn shared_cache_finding(c: &FsFacts) -> Finding {
    if c.exists {
        Finding::ok("uv-cache", format!("shared: {}", c.describe()))
    } else {
        Finding::warn(
            "uv-cache",
            format!(
                "shared: {} ({}) is not there",
                c.path.display(),
                crate::finder::uvcache::EXTRA_CACHES_VAR
            ),
            Some(format!(
                "remove it from {}",
                crate::finder::uvcache::EXTRA_CACHES_VAR
            )),
        )
    }
}

/// Where venvfs keeps its own cache (the index of uv's cache, layer listings, interpreter
/// facts, fetched wheels): a warning when no candidate is writable, since wheels can then
/// not be fetched (the rest is only slower).
pub fn own_cache_finding() -> Finding {
    use crate::finder::uvcache::{own_cache_candidates, writable_own_cache_dir, OWN_CACHE_VAR};
    match writable_own_cache_dir() {
        Some(d) => Finding::ok("venvfs-cache", d.display().to_string()),
        None => {
            let tried: Vec<String> = own_cache_candidates()
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            Finding::warn(
                "venvfs-cache",
                format!(
                    "no writable directory ({}): what venvfs remembers goes into each venv's \
                     .venvfs/ or is worked out again, and wheels cannot be fetched",
                    if tried.is_empty() {
                        "neither VENVFS_CACHE_DIR, XDG_CACHE_HOME nor HOME is set".to_owned()
                    } else {
                        format!("tried {}", tried.join(", "))
                    }
                ),
                Some(format!("set {OWN_CACHE_VAR} to a writable directory")),
            )
        }
    }
}

/// Where shared bytecode goes (see "Bytecode compiled once for every venv" in the README): a
/// warning when no store can be written, since every venv then compiles and keeps the
/// `.pyc` files of its modules itself (tens of MB each), as without venvfs. `network` is
/// the type of a shared filesystem the written store is on (served as files, not links).
pub fn bytecode_finding(places: &crate::bytecode::Places, network: Option<&str>) -> Finding {
    use crate::bytecode::{ENABLE_VAR, STORES_VAR, STORE_VAR};
    const CHECK: &str = "bytecode-store";
    let shown = |dirs: &[std::path::PathBuf]| {
        let all: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        all.join(", ")
    };
    if places.off {
        return Finding::ok(
            CHECK,
            format!("turned off ({ENABLE_VAR}=0): each venv keeps its own .pyc files"),
        );
    }
    let also = match places.read.is_empty() {
        true => String::new(),
        false => format!("; also read: {}", shown(&places.read)),
    };
    match &places.write {
        Some(w) => Finding::ok(
            CHECK,
            match network {
                Some(fs) => format!(
                    "{} (on {fs}: its .pyc files are served by the daemon, not shown as \
                     links){also}",
                    w.display()
                ),
                None => format!("{}{also}", w.display()),
            },
        ),
        None => {
            let tried = match &places.tried {
                Some(t) => format!(" ({} cannot be written)", t.display()),
                None => " (neither VENVFS_CACHE_DIR, XDG_CACHE_HOME nor HOME is set)".to_owned(),
            };
            let detail = match places.read.is_empty() {
                true => format!(
                    "no store{tried}: each venv compiles its modules and keeps their .pyc \
                     files in its own directory"
                ),
                false => format!(
                    "none written{tried}: modules the stores read ({}) lack are compiled \
                     into each venv's own directory",
                    shown(&places.read)
                ),
            };
            Finding::warn(
                CHECK,
                detail,
                Some(format!(
                    "set {STORE_VAR} to a writable directory, or {STORES_VAR} to a store \
                     compiled ahead (`venvfs compile --store DIR VENV`)"
                )),
            )
        }
    }
}

/// Where uv's cache is; only information.
pub fn cache_finding(cache: Option<&FsFacts>) -> Finding {
    match cache {
        None => Finding::ok(
            "uv-cache",
            "no location (neither UV_CACHE_DIR, XDG_CACHE_HOME nor HOME is set)",
        ),
        Some(c) if !c.exists => Finding::ok(
            "uv-cache",
            format!(
                "{} is not there yet: the first uv install fills it",
                c.path.display()
            ),
        ),
        Some(c) => Finding::ok("uv-cache", c.describe()),
    }
}

/// Where the venv is; read-only is a problem (every write to the venv lands there).
pub fn venv_place_finding(venv: &FsFacts) -> Finding {
    let detail = venv.describe();
    match (venv.read_only, &venv.mountpoint) {
        (Some(true), mountpoint) => Finding::fail(
            "venv-filesystem",
            format!("{detail}: nothing can be written to the venv (bytecode, installs, edits)"),
            Some(format!(
                "sudo mount -o remount,rw {}",
                mountpoint.as_deref().unwrap_or(&venv.path).display()
            )),
        ),
        _ => Finding::ok("venv-filesystem", detail),
    }
}

/// Whether uv would hardlink from its cache into the venv, or copy; only information.
pub fn link_finding(cache: Option<&FsFacts>, venv: &FsFacts) -> Finding {
    let check = "uv-cache-to-venv";
    let (Some((cache_dev, cache_d)), Some((venv_dev, venv_d))) =
        (cache.and_then(|c| c.device.as_ref()), venv.device.as_ref())
    else {
        return Finding::ok(
            check,
            "not compared: uv's cache is not there yet (or this platform has no device numbers)",
        );
    };
    if cache_dev == venv_dev {
        Finding::ok(
            check,
            format!(
                "one filesystem (device {venv_d}): uv can hardlink its cache into the venv, \
                 but an edit through a hardlink changes the cache; venvfs layers serve the \
                 same files and copy them before a write"
            ),
        )
    } else {
        Finding::ok(
            check,
            format!(
                "different filesystems (cache on device {cache_d}, venv on {venv_d}): uv \
                 cannot hardlink and falls back to a full copy of every package; venvfs \
                 serves them from the cache in place instead (what it is for)"
            ),
        )
    }
}

/// What reading `bin/python`'s link gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkRead {
    Target(PathBuf),
    /// Not a symlink (a copied interpreter, or a launcher on Windows).
    NotALink,
    Missing,
    /// The raw OS error.
    Error(i32, String),
}

impl LinkRead {
    pub fn of(path: &Path) -> LinkRead {
        match std::fs::read_link(path) {
            Ok(t) => LinkRead::Target(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LinkRead::Missing,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => LinkRead::NotALink,
            Err(e) => LinkRead::Error(e.raw_os_error().unwrap_or(0), e.to_string()),
        }
    }

    /// Follows `path`'s relative links (a venv's `bin/python` is often `python3.11`, itself
    /// the absolute link to the base interpreter, as `venvfs create` and `python -m venv`
    /// make them) to the first link whose target is absolute or that cannot be read: that
    /// link and what reading it gave. A chain longer than a few links stops where it is.
    pub fn follow(path: &Path) -> (PathBuf, LinkRead) {
        let mut at = path.to_owned();
        for _ in 0..8 {
            match LinkRead::of(&at) {
                LinkRead::Target(t) if t.is_relative() => {
                    at = at.parent().unwrap_or(Path::new("")).join(t);
                }
                read => return (at, read),
            }
        }
        let read = LinkRead::of(&at);
        (at, read)
    }
}

#[cfg(unix)]
const DENIED: [i32; 2] = [libc::EPERM, libc::EACCES];
#[cfg(not(unix))]
const DENIED: [i32; 0] = [];

/// The venv's interpreter link as a filesystem shows it. On sshfs, `contain_symlinks` (on
/// by default in Debian's sshfs 3.7) makes `readlink` of an absolute symlink fail with
/// `EPERM`, and a venv's `bin/python` is one (it points at the base interpreter, outside
/// the mount): the venv cannot start. `no_contain_symlinks` lets the link through as it is;
/// `transform_symlinks` does not help (its relative targets hold `..`, also refused).
/// None when there is nothing to say (no `bin/python`, not a link).
pub fn python_link_finding(venv: &FsFacts, python: &Path, read: &LinkRead) -> Option<Finding> {
    let check = "python-link";
    let sshfs = venv.fstype.as_deref() == Some("fuse.sshfs");
    match read {
        LinkRead::Target(t) => Some(Finding::ok(
            check,
            format!("{} -> {}", python.display(), t.display()),
        )),
        LinkRead::NotALink | LinkRead::Missing => None,
        LinkRead::Error(errno, e) if sshfs && DENIED.contains(errno) => {
            let mountpoint = venv
                .mountpoint
                .as_deref()
                .unwrap_or(Path::new("MOUNTPOINT"));
            let source = venv.source.as_deref().unwrap_or("HOST:DIR");
            Some(Finding::fail(
                check,
                format!(
                    "{} cannot be read ({e}): it is an absolute symlink to the base interpreter, \
                     outside the sshfs mount, and sshfs refuses such links by default \
                     (contain_symlinks), so the venv's Python cannot start",
                    python.display()
                ),
                Some(format!(
                    "fusermount3 -u {m} && sshfs -o no_contain_symlinks {source} {m}",
                    m = mountpoint.display()
                )),
            ))
        }
        LinkRead::Error(_, e) => Some(Finding::warn(
            check,
            format!("{} cannot be read: {e}", python.display()),
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> FuseFacts {
        FuseFacts {
            supported: true,
            root: false,
            device: Device::Usable,
            fusermount: Some("/usr/bin/fusermount3".into()),
            user_namespaces: Some(0),
        }
    }

    fn statuses(f: &[Finding]) -> Vec<(&str, super::super::Status)> {
        f.iter().map(|f| (f.check, f.status)).collect()
    }

    #[test]
    fn fuse_usable_or_not() {
        use super::super::Status::*;
        let all = fuse_findings(&facts());
        assert_eq!(
            statuses(&all),
            [
                ("fuse-device", Ok),
                ("fusermount3", Ok),
                ("user-namespaces", Ok)
            ],
            "user namespaces are information only"
        );
        let denied = fuse_findings(&FuseFacts {
            device: Device::Denied("Permission denied".into()),
            fusermount: None,
            ..facts()
        });
        assert_eq!(denied[0].status, Fail);
        assert_eq!(denied[0].fix.as_deref(), Some("sudo chmod 0666 /dev/fuse"));
        assert_eq!(denied[1].status, Fail);
        assert_eq!(denied[1].fix.as_deref(), Some("sudo apt-get install fuse3"));
        let root = fuse_findings(&FuseFacts {
            root: true,
            fusermount: None,
            device: Device::Missing,
            ..facts()
        });
        assert_eq!(root[0].fix.as_deref(), Some("sudo modprobe fuse"));
        assert_eq!(root[1].status, Ok, "root needs no fusermount3");
        let elsewhere = fuse_findings(&FuseFacts {
            supported: false,
            ..facts()
        });
        assert_eq!(statuses(&elsewhere), [("fuse", Ok)]);
    }

    fn place(dev: u64, fstype: &str) -> FsFacts {
        FsFacts {
            path: "/v".into(),
            exists: true,
            fstype: Some(fstype.into()),
            source: Some("host:/home".into()),
            mountpoint: Some("/mnt/home".into()),
            device: Some((dev, format!("0:{dev}"))),
            free: Some(2048),
            read_only: Some(false),
        }
    }

    #[test]
    fn places_and_hardlinks() {
        let venv = place(51, "ext4");
        assert_eq!(
            venv.describe(),
            "/v on ext4 (host:/home, device 0:51), 2.0 KiB free, read-write"
        );
        let across = link_finding(Some(&place(50, "ext4")), &venv);
        assert!(across.detail.contains("full copy"), "{across:?}");
        assert_eq!(across.status, super::super::Status::Ok);
        assert!(link_finding(Some(&place(51, "ext4")), &venv)
            .detail
            .contains("can hardlink"));
        assert!(link_finding(None, &venv).detail.starts_with("not compared"));
        let ro = venv_place_finding(&FsFacts {
            read_only: Some(true),
            ..venv.clone()
        });
        assert_eq!(ro.status, super::super::Status::Fail);
        assert_eq!(
            ro.fix.as_deref(),
            Some("sudo mount -o remount,rw /mnt/home")
        );
        assert_eq!(
            cache_finding(Some(&FsFacts {
                path: "/c".into(),
                ..FsFacts::default()
            }))
            .detail,
            "/c is not there yet: the first uv install fills it"
        );
    }

    #[test]
    #[cfg(unix)]
    fn relative_links_are_followed_to_the_absolute_one() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink("/usr/bin/python3.11", bin.join("python3.11")).unwrap();
        std::os::unix::fs::symlink("python3.11", bin.join("python3")).unwrap();
        std::os::unix::fs::symlink("python3", bin.join("python")).unwrap();
        let (at, read) = LinkRead::follow(&bin.join("python"));
        assert_eq!(at, bin.join("python3.11"));
        assert_eq!(read, LinkRead::Target("/usr/bin/python3.11".into()));
        // a loop stops
        std::os::unix::fs::symlink("loop", bin.join("loop")).unwrap();
        assert_eq!(LinkRead::follow(&bin.join("loop")).0, bin.join("loop"));
    }

    #[test]
    #[cfg(unix)]
    fn sshfs_hides_absolute_links() {
        let python = Path::new("/mnt/home/p/.venv/bin/python");
        let eperm = LinkRead::Error(libc::EPERM, "Operation not permitted".into());
        let f = python_link_finding(&place(51, "fuse.sshfs"), python, &eperm).unwrap();
        assert_eq!(f.status, super::super::Status::Fail);
        assert!(f.detail.contains("contain_symlinks"), "{f:?}");
        assert_eq!(
            f.fix.as_deref(),
            Some("fusermount3 -u /mnt/home && sshfs -o no_contain_symlinks host:/home /mnt/home")
        );
        let eacces = LinkRead::Error(libc::EACCES, "Permission denied".into());
        assert_eq!(
            python_link_finding(&place(51, "fuse.sshfs"), python, &eacces)
                .unwrap()
                .status,
            super::super::Status::Fail
        );
        // elsewhere the same error is not sshfs's doing
        let other = python_link_finding(&place(51, "nfs4"), python, &eperm).unwrap();
        assert_eq!(other.status, super::super::Status::Warn);
        assert_eq!(other.fix, None);
        let fine = LinkRead::Target("/usr/bin/python3.11".into());
        assert_eq!(
            python_link_finding(&place(51, "fuse.sshfs"), python, &fine)
                .unwrap()
                .status,
            super::super::Status::Ok
        );
        assert_eq!(
            python_link_finding(&place(51, "fuse.sshfs"), python, &LinkRead::NotALink),
            None
        );
    }

    #[test]
    fn where_bytecode_goes() {
        use crate::bytecode::Places;
        let p = |s: &str| std::path::PathBuf::from(s);
        let written = Places {
            write: Some(p("/home/u/.cache/venvfs/bytecode")),
            read: vec![p("/shared/pyc")],
            ..Places::default()
        };
        let f = bytecode_finding(&written, None);
        assert_eq!(f.status, super::super::Status::Ok);
        assert_eq!(
            f.detail,
            "/home/u/.cache/venvfs/bytecode; also read: /shared/pyc"
        );
        let f = bytecode_finding(&written, Some("fuse.sshfs"));
        assert!(f.detail.contains("on fuse.sshfs"), "{}", f.detail);
        // a read-only home with a store compiled ahead: modules it lacks go into each venv
        let read_only = Places {
            tried: Some(p("/home/u/.cache/venvfs/bytecode")),
            read: vec![p("/shared/pyc")],
            ..Places::default()
        };
        let f = bytecode_finding(&read_only, None);
        assert_eq!(f.status, super::super::Status::Warn);
        assert!(f.detail.contains("/shared/pyc") && f.detail.contains("cannot be written"));
        assert!(f.fix.unwrap().contains("VENVFS_BYTECODE_STORE "));
        let none = Places::default();
        let f = bytecode_finding(&none, None);
        assert_eq!(f.status, super::super::Status::Warn);
        assert!(f.detail.starts_with("no store"), "{}", f.detail);
        let off = Places {
            off: true,
            ..written
        };
        assert_eq!(
            bytecode_finding(&off, None).status,
            super::super::Status::Ok
        );
    }
}
