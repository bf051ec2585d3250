//! Wheel compatibility tags (the "Platform compatibility tags" spec): which tags an
//! interpreter accepts, best first, computed from a few facts about it the way
//! `packaging.tags.sys_tags()` does, and the tags a wheel file name claims.

use serde::{Deserialize, Serialize};

/// What tag selection needs to know about an interpreter (asked once, see
/// [`crate::interpreter`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagFacts {
    /// `sys.implementation.name`: "cpython", "pypy", ...
    pub implementation: String,
    /// `(major, minor)` of the language version.
    pub version: (u32, u32),
    /// `sysconfig.get_config_var("EXT_SUFFIX")`, e.g. ".cpython-311-x86_64-linux-gnu.so".
    pub ext_suffix: String,
    pub py_debug: bool,
    pub gil_disabled: bool,
    /// `sysconfig.get_platform()`, e.g. "linux-x86_64", "macosx-11.0-arm64", "win-amd64".
    pub platform: String,
    /// Whether the interpreter is 64-bit (`sys.maxsize > 2**32`).
    pub is_64bit: bool,
    /// The C library's version on Linux: `(2, 36)` for glibc 2.36.
    pub glibc: Option<(u32, u32)>,
    pub musl: Option<(u32, u32)>,
    /// `platform.mac_ver()[0]` split, on macOS.
    pub mac_version: Option<(u32, u32)>,
    /// `platform.machine()`.
    pub machine: String,
}

/// `a-b.c` → `a_b_c`, as tags spell platforms and ABIs.
fn normalize(s: &str) -> String {
    s.replace(['-', '.', ' '], "_").to_lowercase()
}

fn short_name(implementation: &str) -> &str {
    match implementation {
        "cpython" => "cp",
        "pypy" => "pp",
        "ironpython" => "ip",
        "jython" => "jy",
        "python" => "py",
        other => other,
    }
}

/// Every tag the interpreter accepts, most preferred first (`packaging.tags.sys_tags`).
pub fn supported(f: &TagFacts) -> Vec<String> {
    let (major, minor) = f.version;
    let platforms = platforms(f);
    let mut tags = Vec::new();
    let interpreter = format!("{}{major}{minor}", short_name(&f.implementation));
    if f.implementation == "cpython" {
        let threading = if (major, minor) >= (3, 13) && f.gil_disabled {
            "t"
        } else {
            ""
        };
        let debug = if f.py_debug { "d" } else { "" };
        let mut abis = vec![format!("cp{major}{minor}{threading}{debug}")];
        if f.py_debug {
            abis.push(format!("cp{major}{minor}{threading}"));
        }
        for abi in &abis {
            for p in &platforms {
                tags.push(format!("{interpreter}-{abi}-{p}"));
            }
        }
        let abi3 = threading.is_empty() && (major, minor) >= (3, 2);
        if abi3 {
            tags.extend(platforms.iter().map(|p| format!("{interpreter}-abi3-{p}")));
        }
        tags.extend(platforms.iter().map(|p| format!("{interpreter}-none-{p}")));
        if abi3 {
            for m in (2..minor).rev() {
                tags.extend(platforms.iter().map(|p| format!("cp{major}{m}-abi3-{p}")));
            }
        }
    } else {
        let mut abis: Vec<String> = generic_abi(&f.ext_suffix).into_iter().collect();
        abis.push("none".into());
        for abi in &abis {
            for p in &platforms {
                tags.push(format!("{interpreter}-{abi}-{p}"));
            }
        }
    }
    let py_range = {
        let mut v = vec![format!("py{major}{minor}"), format!("py{major}")];
        v.extend((0..minor).rev().map(|m| format!("py{major}{m}")));
        v
    };
    for py in &py_range {
        tags.extend(platforms.iter().map(|p| format!("{py}-none-{p}")));
    }
    tags.push(format!("{interpreter}-none-any"));
    tags.extend(py_range.iter().map(|py| format!("{py}-none-any")));
    tags
}

/// The ABI tag of a non-CPython interpreter, from its extension suffix
/// (".pypy311-pp73-x86_64-linux-gnu.so" → "pypy311_pp73").
fn generic_abi(ext_suffix: &str) -> Option<String> {
    let soabi = ext_suffix.strip_prefix('.')?.split('.').next()?;
    let parts: Vec<&str> = soabi.split('-').collect();
    let abi = if soabi.starts_with("cpython") {
        format!("cp{}", parts.get(1)?)
    } else if soabi.starts_with("cp") {
        parts[0].to_owned()
    } else if soabi.starts_with("pypy") {
        parts.get(..2)?.join("-")
    } else if soabi.starts_with("graalpy") {
        parts.get(..3)?.join("-")
    } else if !soabi.is_empty() {
        soabi.to_owned()
    } else {
        return None;
    };
    Some(normalize(&abi))
}

/// Platform tags, most specific first.
fn platforms(f: &TagFacts) -> Vec<String> {
    let plat = normalize(&f.platform);
    if let Some(arch) = plat.strip_prefix("linux_") {
        let arch = match (arch, f.is_64bit) {
            ("x86_64", false) => "i686",
            ("aarch64", false) => "armv8l",
            (a, _) => a,
        };
        let archs: Vec<&str> = if arch == "armv8l" {
            vec!["armv8l", "armv7l"]
        } else {
            vec![arch]
        };
        let mut out = Vec::new();
        if let Some((gmaj, gmin)) = f.glibc {
            let oldest = if archs.iter().any(|a| matches!(*a, "x86_64" | "i686")) {
                4
            } else {
                16
            };
            for a in &archs {
                let lowest = if gmaj == 2 { oldest + 1 } else { 0 };
                for m in (lowest..=gmin).rev() {
                    out.push(format!("manylinux_{gmaj}_{m}_{a}"));
                    let legacy = match (gmaj, m) {
                        (2, 17) => Some("manylinux2014"),
                        (2, 12) => Some("manylinux2010"),
                        (2, 5) => Some("manylinux1"),
                        _ => None,
                    };
                    if let Some(l) = legacy {
                        out.push(format!("{l}_{a}"));
                    }
                }
            }
        }
        if let Some((mmaj, mmin)) = f.musl {
            for a in &archs {
                out.extend(
                    (0..=mmin)
                        .rev()
                        .map(|m| format!("musllinux_{mmaj}_{m}_{a}")),
                );
            }
        }
        out.extend(archs.iter().map(|a| format!("linux_{a}")));
        out
    } else if plat.starts_with("macosx_") {
        let arch = plat.rsplit('_').next().unwrap_or("").to_owned();
        let arch = if arch == "universal2" || arch == "x86_64" || arch == "arm64" {
            if f.machine == "arm64" || f.machine == "x86_64" {
                f.machine.clone()
            } else {
                arch
            }
        } else {
            arch
        };
        mac_platforms(f.mac_version.unwrap_or((11, 0)), &arch)
    } else {
        vec![plat]
    }
}

fn mac_binary_formats(version: (u32, u32), arch: &str) -> Vec<String> {
    let mut formats = vec![arch.to_owned()];
    if arch == "x86_64" {
        if version < (10, 4) {
            return Vec::new();
        }
        formats.extend(["intel", "fat64", "fat32"].map(String::from));
    }
    if arch == "arm64" || arch == "x86_64" {
        formats.push("universal2".into());
    }
    if arch == "x86_64" {
        formats.push("universal".into());
    }
    formats
}

fn mac_platforms(version: (u32, u32), arch: &str) -> Vec<String> {
    let mut out = Vec::new();
    if ((10, 0)..(11, 0)).contains(&version) {
        for minor in (0..=version.1).rev() {
            for fmt in mac_binary_formats((10, minor), arch) {
                out.push(format!("macosx_10_{minor}_{fmt}"));
            }
        }
    }
    if version >= (11, 0) {
        for major in (11..=version.0).rev() {
            for fmt in mac_binary_formats((major, 0), arch) {
                out.push(format!("macosx_{major}_0_{fmt}"));
            }
        }
        for minor in (4..=16).rev() {
            if arch == "x86_64" {
                for fmt in mac_binary_formats((10, minor), arch) {
                    out.push(format!("macosx_10_{minor}_{fmt}"));
                }
            } else {
                out.push(format!("macosx_10_{minor}_universal2"));
            }
        }
    }
    out
}

/// The parts of a wheel file name: `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelFilename {
    pub name: String,
    pub version: String,
    pub build: Option<String>,
    /// The expanded tags (`py2.py3-none-any` gives two).
    pub tags: Vec<String>,
}

impl WheelFilename {
    pub fn parse(file_name: &str) -> Option<WheelFilename> {
        let stem = file_name.strip_suffix(".whl")?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, build, py, abi, plat) = match parts.as_slice() {
            [n, v, p, a, pl] => (n, v, None, p, a, pl),
            [n, v, b, p, a, pl] => (n, v, Some(b.to_string()), p, a, pl),
            _ => return None,
        };
        if name.is_empty() || version.is_empty() {
            return None;
        }
        Some(WheelFilename {
            name: name.to_string(),
            version: version.to_string(),
            build,
            tags: expand(py, abi, plat),
        })
    }
}

/// `py2.py3`, `none`, `any` → every combination, as single tags.
pub fn expand(py: &str, abi: &str, plat: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in py.split('.') {
        for a in abi.split('.') {
            for pl in plat.split('.') {
                out.push(format!("{p}-{a}-{pl}"));
            }
        }
    }
    out
}

/// Ranks wheels by the best of their tags in an interpreter's order of preference.
pub struct TagRank {
    order: std::collections::HashMap<String, usize>,
}

impl TagRank {
    pub fn new(supported: &[String]) -> TagRank {
        let mut order = std::collections::HashMap::with_capacity(supported.len());
        for (i, t) in supported.iter().enumerate() {
            order.entry(t.clone()).or_insert(i);
        }
        TagRank { order }
    }

    /// The rank of the best tag (lower is better), or None if no tag is supported.
    pub fn rank<'a>(&self, tags: impl IntoIterator<Item = &'a String>) -> Option<usize> {
        tags.into_iter()
            .filter_map(|t| self.order.get(t))
            .min()
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux311() -> TagFacts {
        TagFacts {
            implementation: "cpython".into(),
            version: (3, 11),
            ext_suffix: ".cpython-311-x86_64-linux-gnu.so".into(),
            py_debug: false,
            gil_disabled: false,
            platform: "linux-x86_64".into(),
            is_64bit: true,
            glibc: Some((2, 36)),
            musl: None,
            mac_version: None,
            machine: "x86_64".into(),
        }
    }

    #[test]
    fn cpython_linux_order() {
        let tags = supported(&linux311());
        assert_eq!(tags[0], "cp311-cp311-manylinux_2_36_x86_64");
        let pos = |t: &str| tags.iter().position(|x| x == t).unwrap();
        assert!(pos("cp311-cp311-manylinux_2_17_x86_64") < pos("cp311-cp311-manylinux2014_x86_64"));
        assert!(pos("cp311-cp311-linux_x86_64") < pos("cp311-abi3-manylinux_2_36_x86_64"));
        assert!(pos("cp311-none-linux_x86_64") < pos("cp310-abi3-manylinux_2_36_x86_64"));
        assert!(pos("py3-none-manylinux1_x86_64") < pos("cp311-none-any"));
        assert_eq!(tags.last().unwrap(), "py30-none-any");
        assert!(!tags.iter().any(|t| t.contains("manylinux_2_4_")));
        assert!(tags.contains(&"cp311-cp311-manylinux1_x86_64".to_string()));
    }

    #[test]
    fn other_platforms() {
        let mut f = linux311();
        f.platform = "win-amd64".into();
        f.glibc = None;
        assert_eq!(supported(&f)[0], "cp311-cp311-win_amd64");
        f.platform = "macosx-11.0-arm64".into();
        f.machine = "arm64".into();
        f.mac_version = Some((14, 2));
        let tags = supported(&f);
        assert_eq!(tags[0], "cp311-cp311-macosx_14_0_arm64");
        assert!(tags.contains(&"cp311-abi3-macosx_10_9_universal2".to_string()));
        f.implementation = "pypy".into();
        f.ext_suffix = ".pypy311-pp73-x86_64-linux-gnu.so".into();
        f.platform = "linux-x86_64".into();
        f.machine = "x86_64".into();
        f.glibc = Some((2, 28));
        assert_eq!(supported(&f)[0], "pp311-pypy311_pp73-manylinux_2_28_x86_64");
    }

    #[test]
    fn wheel_filenames() {
        let w = WheelFilename::parse(
            "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        )
        .unwrap();
        assert_eq!((w.name.as_str(), w.version.as_str()), ("numpy", "2.4.6"));
        assert_eq!(w.tags.len(), 2);
        let w = WheelFilename::parse("six-1.17.0-1-py2.py3-none-any.whl").unwrap();
        assert_eq!(w.build.as_deref(), Some("1"));
        assert_eq!(w.tags, ["py2-none-any", "py3-none-any"]);
        assert!(WheelFilename::parse("six-1.17.0.tar.gz").is_none());
        assert!(WheelFilename::parse("six-py3-none-any.whl").is_none());
        let rank = TagRank::new(&supported(&linux311()));
        assert!(rank.rank(&w.tags).is_some());
        let other = expand("cp312", "cp312", "manylinux_2_17_x86_64");
        assert!(rank.rank(&other).is_none());
    }
}
