//! Where a wheel's files go in a venv: the install scheme (the binary distribution format
//! spec, "Installing a wheel"; `sysconfig`'s venv scheme), as uv's `Layout` describes it.
//! One description, built once from the venv's Python version, for the layers' mappings,
//! the files an installer generates and the commands that look into a venv.

use crate::manifest::join_rel;
use crate::name::PackageName;

/// The operating system family whose venv layout applies (Python's `os.name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsName {
    /// `lib/pythonX.Y/site-packages`, `bin`.
    Posix,
}

impl OsName {
    /// As Python's `os.name` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            OsName::Posix => "posix",
        }
    }
}

/// The venv-relative directories (`/`-separated, "" is the venv root) of an install scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheme {
    /// Pure-Python modules: `lib/pythonX.Y/site-packages`.
    pub purelib: String,
    /// Modules with compiled code: the same directory in a venv.
    pub platlib: String,
    /// Scripts and console-script launchers: `bin`.
    pub scripts: String,
    /// Data files: the venv root.
    pub data: String,
    /// C headers: `include/site/pythonX.Y`, in a directory of the distribution's name.
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
        Layout::for_os(OsName::Posix, version)
    }

    /// The layout of a venv of Python `version` (`X.Y`) on `os_name`.
    pub fn for_os(os_name: OsName, version: &str) -> Layout {
        let scheme = match os_name {
            OsName::Posix => {
                let site = format!("lib/python{version}/site-packages");
                Scheme {
                    purelib: site.clone(),
                    platlib: site,
                    scripts: "bin".into(),
                    data: String::new(),
                    include: format!("include/site/python{version}"),
                }
            }
        };
        Layout { scheme, os_name }
    }

    /// Where the venv's modules are: `lib/pythonX.Y/site-packages`.
    pub fn site_packages(&self) -> &str {
        &self.scheme.purelib
    }

    /// Where the script or launcher `name` goes: `bin/NAME`.
    pub fn script(&self, name: &str) -> String {
        join_rel(&self.scheme.scripts, name)
    }

    /// The venv's interpreter: `bin/python`.
    pub fn python(&self) -> String {
        self.script("python")
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
        let l = Layout::new("3.11");
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
    fn data_kinds() {
        for kind in DataKind::ALL {
            assert_eq!(DataKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(DataKind::parse("lib"), None);
        assert_eq!(DataKind::parse("Scripts"), None);
    }
}
