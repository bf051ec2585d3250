//! Where a wheel's files go in a venv: the install scheme (the binary distribution format
//! spec, "Installing a wheel"; `sysconfig`'s venv scheme), as uv's `Layout` describes it.
//! One description, built once from the venv's Python version, for the layers' mappings,
//! the files an installer generates and the commands that look into a venv.

use crate::manifest::{join_rel, Layer};
use crate::name::PackageName;

/// The operating system family whose venv layout applies (Python's `os.name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsName {
    /// `lib/pythonX.Y/site-packages`, `bin`.
    Posix,
    /// Windows: `Lib/site-packages`, `Scripts`, interpreters and launchers ending in `.exe`.
    Nt,
}

impl OsName {
    /// As Python's `os.name` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            OsName::Posix => "posix",
            OsName::Nt => "nt",
        }
    }

    /// Where a venv of this family keeps its scripts and interpreter: `bin` (`Scripts`).
    pub fn scripts_dir(self) -> &'static str {
        match self {
            OsName::Posix => "bin",
            OsName::Nt => "Scripts",
        }
    }

    /// The family whose layout the venv at `venv` has: Windows's if it has
    /// `Scripts/python.exe` and no `bin` (a venv made on Windows, looked at from anywhere),
    /// POSIX's if it has `bin`; this system's if it has neither yet.
    pub fn of_venv(venv: &std::path::Path) -> OsName {
        let has = |rel: &str| std::fs::symlink_metadata(venv.join(rel)).is_ok();
        if has("Scripts/python.exe") && !has("bin") {
            OsName::Nt
        } else if has("bin") {
            OsName::Posix
        } else {
            OsName::current()
        }
    }

    /// The family of the system venvfs is built for.
    pub fn current() -> OsName {
        if cfg!(windows) {
            OsName::Nt
        } else {
            OsName::Posix
        }
    }
}

/// The venv-relative directories (`/`-separated, "" is the venv root) of an install scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheme {
    /// Pure-Python modules: `lib/pythonX.Y/site-packages` (`Lib/site-packages` on Windows).
    pub purelib: String,
    /// Modules with compiled code: the same directory in a venv.
    pub platlib: String,
    /// Scripts and console-script launchers: `bin` (`Scripts` on Windows).
    pub scripts: String,
    /// Data files: the venv root.
    pub data: String,
    /// C headers: `include/site/pythonX.Y`, in a directory of the distribution's name (on
    /// Windows too: uv takes it from neither `sysconfig` nor the venv module).
    pub include: String,
}

/// The install scheme of a venv of one Python version on one OS family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub scheme: Scheme,
    pub os_name: OsName,
}

/// A `NAME-VERSION.data/<kind>` directory of a wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    Purelib,
    Platlib,
    Scripts,
    Headers,
    Data,
}

impl DataKind {
    /// Every kind, in the order the layers' mappings list them.
    pub const ALL: [DataKind; 5] = [
        DataKind::Purelib,
        DataKind::Platlib,
        DataKind::Scripts,
        DataKind::Headers,
        DataKind::Data,
    ];

    /// The directory's name in the wheel.
    pub fn as_str(self) -> &'static str {
        match self {
            DataKind::Purelib => "purelib",
            DataKind::Platlib => "platlib",
            DataKind::Scripts => "scripts",
            DataKind::Headers => "headers",
            DataKind::Data => "data",
        }
    }

    /// The kind a `.data` subdirectory's name stands for; None for any other name.
    pub fn parse(name: &str) -> Option<DataKind> {
        DataKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl Layout {
    /// The layout of a venv of Python `version` (`X.Y`) on this system.
    pub fn new(version: &str) -> Layout {
        Layout::for_os(OsName::current(), version)
    }

    /// The layout of a venv of Python `version` (`X.Y`) on `os_name`.
    pub fn for_os(os_name: OsName, version: &str) -> Layout {
        let scheme = match os_name {
            OsName::Posix => {
                let site = format!("lib/python{version}/site-packages");
                Scheme {
                    purelib: site.clone(),
                    platlib: site,
                    scripts: OsName::Posix.scripts_dir().into(),
                    data: String::new(),
                    include: format!("include/site/python{version}"),
                }
            }
            // `sysconfig`'s `nt_venv` scheme (what `python -m venv` lays out on Windows).
            OsName::Nt => Scheme {
                purelib: "Lib/site-packages".into(),
                platlib: "Lib/site-packages".into(),
                scripts: OsName::Nt.scripts_dir().into(),
                data: String::new(),
                include: format!("include/site/python{version}"),
            },
        };
        Layout { scheme, os_name }
    }

    /// Where the venv's modules are: `lib/pythonX.Y/site-packages` (`Lib/site-packages`).
    pub fn site_packages(&self) -> &str {
        &self.scheme.purelib
    }

    /// Whether the distribution of `layer` was uninstalled through the mount (by uv, pip
    /// or `rm`): the venv's own directory at `root` hides its RECORD (a whiteout of it or
    /// of its `.dist-info`, or an opaque directory made in their place), so nothing of the
    /// layer shows that the user did not remove.
    pub fn uninstalled_through_mount(&self, root: &std::path::Path, layer: &Layer) -> bool {
        let record = format!(
            "{}/{}-{}.dist-info/RECORD",
            self.site_packages(),
            layer.name,
            layer.version
        );
        crate::upper_format::hides(root, &record)
    }

    /// Where the script or launcher `name` goes: `bin/NAME`.
    pub fn script(&self, name: &str) -> String {
        join_rel(&self.scheme.scripts, name)
    }

    /// Where the launcher of the entry point `name` goes: `bin/NAME`; on Windows
    /// `Scripts/NAME.exe`, a `.py` suffix of the name dropped (as uv and pip do).
    pub fn entry_point(&self, name: &str) -> String {
        match self.os_name {
            OsName::Posix => self.script(name),
            OsName::Nt => {
                let stem = name.strip_suffix(".py").unwrap_or(name);
                self.script(&format!("{stem}.exe"))
            }
        }
    }

    /// The venv's interpreter: `bin/python` (`Scripts/python.exe`).
    pub fn python(&self) -> String {
        match self.os_name {
            OsName::Posix => self.script("python"),
            OsName::Nt => self.script("python.exe"),
        }
    }

    /// The interpreter a script runs with: [`Layout::python`], except that a GUI script on
    /// Windows runs with `Scripts/pythonw.exe` (no console window).
    pub fn script_python(&self, gui: bool) -> String {
        match self.os_name {
            OsName::Nt if gui => self.script("pythonw.exe"),
            _ => self.python(),
        }
    }

    /// `rel` (venv-relative, `/`-separated) under the venv `venv`, spelled as the venv's OS
    /// spells paths: with backslashes on Windows, whatever system this runs on (the paths
    /// written into Windows scripts and launchers are tested on Linux too).
    pub fn absolute(&self, venv: &std::path::Path, rel: &str) -> String {
        match self.os_name {
            OsName::Posix => {
                let root = venv.to_string_lossy();
                format!("{}/{rel}", root.trim_end_matches('/'))
            }
            OsName::Nt => {
                let root = venv.to_string_lossy().replace('/', "\\");
                let root = root.trim_end_matches('\\');
                format!("{root}\\{}", rel.replace('/', "\\"))
            }
        }
    }

    /// Where the `.data/<kind>` directory of distribution `name` goes (uv names the headers'
    /// directory by the normalized name).
    pub fn data_dir(&self, kind: DataKind, name: &PackageName) -> String {
        let s = &self.scheme;
        match kind {
            DataKind::Purelib => s.purelib.clone(),
            DataKind::Platlib => s.platlib.clone(),
            DataKind::Scripts => s.scripts.clone(),
            DataKind::Headers => join_rel(&s.include, name.as_str()),
            DataKind::Data => s.data.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_venv() {
        let l = Layout::for_os(OsName::Posix, "3.11");
        if cfg!(unix) {
            assert_eq!(Layout::new("3.11"), l);
        } else {
            assert_eq!(Layout::new("3.11"), Layout::for_os(OsName::Nt, "3.11"));
        }
        assert_eq!(l.os_name.as_str(), "posix");
        assert_eq!(l.site_packages(), "lib/python3.11/site-packages");
        assert_eq!(l.script("pip"), "bin/pip");
        assert_eq!(l.python(), "bin/python");
        let name = PackageName::new("Tiny_Pkg");
        let dir = |kind| l.data_dir(kind, &name);
        assert_eq!(dir(DataKind::Purelib), "lib/python3.11/site-packages");
        assert_eq!(dir(DataKind::Platlib), "lib/python3.11/site-packages");
        assert_eq!(dir(DataKind::Scripts), "bin");
        assert_eq!(dir(DataKind::Headers), "include/site/python3.11/tiny-pkg");
        assert_eq!(dir(DataKind::Data), "");
    }

    #[test]
    fn windows_venv() {
        let l = Layout::for_os(OsName::Nt, "3.12");
        assert_eq!(l.os_name.as_str(), "nt");
        assert_eq!(l.site_packages(), "Lib/site-packages");
        assert_eq!(l.python(), "Scripts/python.exe");
        assert_eq!(l.script_python(false), "Scripts/python.exe");
        assert_eq!(l.script_python(true), "Scripts/pythonw.exe");
        assert_eq!(l.script("activate.bat"), "Scripts/activate.bat");
        assert_eq!(l.entry_point("black"), "Scripts/black.exe");
        assert_eq!(l.entry_point("tool.py"), "Scripts/tool.exe");
        assert_eq!(l.entry_point("tool.pyw"), "Scripts/tool.pyw.exe");
        let name = PackageName::new("Tiny_Pkg");
        let dir = |kind| l.data_dir(kind, &name);
        assert_eq!(dir(DataKind::Purelib), "Lib/site-packages");
        assert_eq!(dir(DataKind::Platlib), "Lib/site-packages");
        assert_eq!(dir(DataKind::Scripts), "Scripts");
        assert_eq!(dir(DataKind::Headers), "include/site/python3.12/tiny-pkg");
        assert_eq!(dir(DataKind::Data), "");
        let venv = std::path::Path::new(r"C:\Users\me\proj/.venv\");
        assert_eq!(
            l.absolute(venv, &l.python()),
            r"C:\Users\me\proj\.venv\Scripts\python.exe"
        );
        let posix = Layout::for_os(OsName::Posix, "3.12");
        assert_eq!(posix.entry_point("tool.py"), "bin/tool.py");
        assert_eq!(posix.script_python(true), "bin/python");
        assert_eq!(
            posix.absolute(std::path::Path::new("/v"), &posix.python()),
            "/v/bin/python"
        );
    }

    #[test]
    fn data_kinds() {
        for kind in DataKind::ALL {
            assert_eq!(DataKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(DataKind::parse("lib"), None);
        assert_eq!(DataKind::parse("Scripts"), None);
    }
}
