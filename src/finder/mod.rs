//! Finding a wheel for each pin, in this order: the wheel paths a lock file gives,
//! `--find-links` directories of `.whl` files, uv's cache, then the wheels venvfs fetched
//! before (its wheel store, see [`crate::fetch`]). Among the candidates of one
//! source, the interpreter's most preferred tag wins. Wheel files are checked against the
//! sha256 the lock or requirements file gives.

pub mod pipcache;
pub mod uvcache;

use std::path::{Path, PathBuf};

use crate::name::PackageName;
use crate::pins::{LockedWheel, Pin};
use crate::tags::{TagRank, WheelFilename};

/// Where a candidate was found, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    LockPath,
    FindLinks,
    UvCache,
    /// venvfs's own wheel store: what it fetched before.
    Store,
}

/// A wheel that may satisfy a pin: a `.whl` file or an unpacked wheel directory.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub path: PathBuf,
    /// The file name of a `.whl`; None for an unpacked wheel.
    pub filename: Option<String>,
    pub name: String,
    pub version: String,
    pub build: Option<String>,
    pub tags: Vec<String>,
    pub origin: Origin,
}

impl Candidate {
    fn label(&self) -> String {
        match &self.filename {
            Some(f) => f.clone(),
            None => format!("{} (unpacked in uv's cache)", self.path.display()),
        }
    }
}

/// Name and version from a METADATA file's headers.
pub struct Headers {
    pub name: Option<String>,
    pub version: Option<String>,
}

pub fn metadata_headers(metadata: &[u8]) -> Headers {
    let text = String::from_utf8_lossy(metadata);
    let mut h = Headers {
        name: None,
        version: None,
    };
    for line in text.lines() {
        if line.is_empty() {
            break; // the body (long description) starts here
        }
        if let Some((k, v)) = line.split_once(':') {
            match k {
                "Name" => h.name = Some(v.trim().to_owned()),
                "Version" => h.version = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    h
}

/// Every place wheels can come from for one run.
pub struct Sources {
    pub find_links: Vec<Candidate>,
    pub find_links_dirs: Vec<PathBuf>,
    /// The uv caches, in the order they are looked in.
    pub uv_caches: Vec<uvcache::UvCache>,
    /// The wheels of venvfs's store, and where it is.
    pub store: Vec<Candidate>,
    pub store_dir: Option<PathBuf>,
    /// pip's cache and the wheels it holds, once looked in (see [`pipcache`]).
    pub pip_cache: Option<(PathBuf, usize)>,
}

impl Sources {
    /// The unpacked wheels of `name` `version` in the uv caches, in the caches' order.
    pub fn uv_cache_candidates<'a>(
        &'a self,
        name: &'a PackageName,
        version: &'a str,
    ) -> impl Iterator<Item = Candidate> + 'a {
        self.uv_caches.iter().flat_map(move |cache| {
            cache
                .entries
                .iter()
                .filter(move |e| {
                    PackageName::new(&e.name) == *name && same_version(&e.version, version)
                })
                .map(move |e| Candidate {
                    path: cache.path_of(e),
                    filename: None,
                    name: e.name.clone(),
                    version: e.version.clone(),
                    build: e.build.clone(),
                    tags: e.tags.clone(),
                    origin: Origin::UvCache,
                })
        })
    }

    /// Lists the `.whl` files of the `--find-links` directories and of the wheel store, and
    /// opens the uv caches.
    pub fn new(
        find_links: &[PathBuf],
        uv_caches: &[PathBuf],
        store: Option<&crate::fetch::Store>,
    ) -> Result<Sources, String> {
        let mut found = Vec::new();
        for dir in find_links {
            let rd = std::fs::read_dir(dir).map_err(|e| {
                format!(
                    "--find-links {}: {e}; name a directory of .whl files",
                    dir.display()
                )
            })?;
            for e in rd.flatten() {
                let Ok(file) = e.file_name().into_string() else {
                    continue;
                };
                if let Some(w) = WheelFilename::parse(&file) {
                    found.push(Candidate {
                        path: e.path(),
                        filename: Some(file),
                        name: w.name,
                        version: w.version,
                        build: w.build,
                        tags: w.tags,
                        origin: Origin::FindLinks,
                    });
                }
            }
        }
        let stored = store
            .map(|s| s.list())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| {
                let w = WheelFilename::parse(&s.filename)?;
                Some(Candidate {
                    path: s.path,
                    filename: Some(s.filename),
                    name: w.name,
                    version: w.version,
                    build: w.build,
                    tags: w.tags,
                    origin: Origin::Store,
                })
            })
            .collect();
        Ok(Sources {
            find_links: found,
            find_links_dirs: find_links.to_vec(),
            uv_caches: uv_caches
                .iter()
                .map(|c| uvcache::UvCache::open(c))
                .collect(),
            store: stored,
            store_dir: store.map(|s| s.root.clone()),
            pip_cache: None,
        })
    }

    /// Where this run looked, for messages.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .find_links_dirs
            .iter()
            .map(|d| format!("--find-links {}", d.display()))
            .collect();
        for c in &self.uv_caches {
            parts.push(if c.root.is_dir() {
                format!(
                    "the uv cache at {} ({} unpacked wheels)",
                    c.root.display(),
                    c.entries.len()
                )
            } else {
                format!("the uv cache at {} (not there)", c.root.display())
            });
        }
        if self.uv_caches.is_empty() {
            parts.push("no uv cache".into());
        }
        if let Some(dir) = &self.store_dir {
            parts.push(format!(
                "venvfs's wheel store at {} ({} wheels)",
                dir.display(),
                self.store.len()
            ));
        }
        if let Some((dir, n)) = &self.pip_cache {
            parts.push(format!("pip's cache at {} ({n} wheels)", dir.display()));
        }
        parts.join(", ")
    }
}

/// The wheel chosen for a pin.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub candidate: Candidate,
    /// Whether its sha256 was checked against the pin.
    pub hash_checked: bool,
}

/// Why a pin has no wheel.
#[derive(Debug)]
pub enum Problem {
    /// Nothing of that name and version, or nothing with an accepted tag.
    NotFound { incompatible: Vec<String> },
    /// A wheel file whose hash differs from the one pinned: refused.
    HashMismatch {
        path: PathBuf,
        expected: Vec<String>,
        actual: String,
    },
    /// Hashes were required, but only unpacked wheels (which cannot be hashed) were found.
    Unverifiable { found: String },
}

/// Whether two version strings name one version (PEP 440: `1.0` is `1.0.0`), or are the
/// same text when either is not a valid version.
pub fn same_version(a: &str, b: &str) -> bool {
    match (
        a.parse::<pep440_rs::Version>(),
        b.parse::<pep440_rs::Version>(),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The locked wheel a candidate is, when the pin lists wheels: the same file name, or for
/// an unpacked wheel the same tags and build.
fn locked_match<'a>(pin: &'a Pin, c: &Candidate) -> Option<&'a LockedWheel> {
    pin.wheels.iter().find(|w| match &c.filename {
        Some(f) => *f == w.filename,
        None => WheelFilename::parse(&w.filename).is_some_and(|lw| {
            let mut a = lw.tags.clone();
            let mut b = c.tags.clone();
            a.sort();
            b.sort();
            a == b && lw.build == c.build
        }),
    })
}

/// Chooses the wheel for `pin`.
pub fn choose(
    pin: &Pin,
    sources: &Sources,
    rank: &TagRank,
    require_hashes: bool,
) -> Result<Chosen, Problem> {
    let wanted = PackageName::new(&pin.name);
    let matches = |c: &Candidate| {
        PackageName::new(&c.name) == wanted && same_version(&c.version, &pin.version)
    };
    let mut candidates: Vec<Candidate> = Vec::new();
    for w in &pin.wheels {
        let Some(path) = &w.path else { continue };
        if !path.is_file() {
            continue;
        }
        if let Some(f) = WheelFilename::parse(&w.filename) {
            candidates.push(Candidate {
                path: path.clone(),
                filename: Some(w.filename.clone()),
                name: f.name,
                version: f.version,
                build: f.build,
                tags: f.tags,
                origin: Origin::LockPath,
            });
        }
    }
    candidates.extend(sources.find_links.iter().filter(|c| matches(c)).cloned());
    candidates.extend(sources.uv_cache_candidates(&wanted, &pin.version));
    candidates.extend(sources.store.iter().filter(|c| matches(c)).cloned());
    if !pin.wheels.is_empty() {
        candidates.retain(|c| locked_match(pin, c).is_some());
    }
    let mut incompatible = Vec::new();
    let mut ranked: Vec<(Origin, usize, Candidate)> = Vec::new();
    for c in candidates {
        match rank.rank(&c.tags) {
            Some(r) => ranked.push((c.origin, r, c)),
            None => incompatible.push(c.label()),
        }
    }
    ranked.sort_by_key(|a| (a.0, a.1));
    let mut unverifiable = None;
    for (_, _, c) in ranked {
        let mut expected: Vec<String> = pin.hashes.clone();
        if let Some(h) = locked_match(pin, &c).and_then(|w| w.sha256.clone()) {
            expected.push(h);
        }
        if c.filename.is_none() {
            if require_hashes && !expected.is_empty() {
                unverifiable.get_or_insert_with(|| c.label());
                continue;
            }
            return Ok(Chosen {
                candidate: c,
                hash_checked: false,
            });
        }
        if expected.is_empty() {
            if require_hashes {
                unverifiable.get_or_insert_with(|| c.label());
                continue;
            }
            return Ok(Chosen {
                candidate: c,
                hash_checked: false,
            });
        }
        let actual = match sha256_file(&c.path) {
            Ok(h) => h,
            Err(e) => {
                incompatible.push(format!("{} (cannot read it: {e})", c.label()));
                continue;
            }
        };
        if !expected.contains(&actual) {
            if c.origin == Origin::Store {
                // another file of that name, fetched from elsewhere: not this pin's
                continue;
            }
            return Err(Problem::HashMismatch {
                path: c.path,
                expected,
                actual,
            });
        }
        return Ok(Chosen {
            candidate: c,
            hash_checked: true,
        });
    }
    match unverifiable {
        Some(found) => Err(Problem::Unverifiable { found }),
        None => Err(Problem::NotFound { incompatible }),
    }
}

/// The sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(name: &str, version: &str) -> Pin {
        Pin {
            name: name.into(),
            version: version.into(),
            hashes: vec![],
            wheels: vec![],
            origin: "t:1".into(),
        }
    }

    fn wheel(dir: &Path, file: &str, content: &[u8]) -> PathBuf {
        let p = dir.join(file);
        std::fs::write(&p, content).unwrap();
        p
    }

    #[test]
    fn prefers_better_tags_and_checks_hashes() {
        let dir = tempfile::tempdir().unwrap();
        wheel(dir.path(), "Foo_Bar-1.0-py3-none-any.whl", b"pure");
        wheel(
            dir.path(),
            "foo_bar-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
            b"native",
        );
        wheel(
            dir.path(),
            "foo_bar-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
            b"other",
        );
        wheel(dir.path(), "foo_bar-2.0-py3-none-any.whl", b"newer");
        let sources = Sources::new(&[dir.path().to_owned()], &[], None).unwrap();
        let tags = vec![
            "cp311-cp311-manylinux_2_17_x86_64".to_string(),
            "py3-none-any".to_string(),
        ];
        let rank = TagRank::new(&tags);
        let c = choose(&pin("foo-bar", "1.0.0"), &sources, &rank, false).unwrap();
        assert_eq!(
            c.candidate.filename.as_deref(),
            Some("foo_bar-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")
        );
        let mut p = pin("foo-bar", "1.0");
        p.hashes = vec![sha256_file(&dir.path().join("Foo_Bar-1.0-py3-none-any.whl")).unwrap()];
        // the native wheel is preferred, and its hash is wrong: refused, not skipped
        assert!(matches!(
            choose(&p, &sources, &rank, false),
            Err(Problem::HashMismatch { .. })
        ));
        match choose(&pin("foo-bar", "3.0"), &sources, &rank, false) {
            Err(Problem::NotFound { incompatible }) => assert!(incompatible.is_empty()),
            other => panic!("{other:?}"),
        }
        let only_cp312 = TagRank::new(&["cp310-cp310-linux_x86_64".to_string()]);
        match choose(&pin("foo-bar", "1.0"), &sources, &only_cp312, false) {
            Err(Problem::NotFound { incompatible }) => assert_eq!(incompatible.len(), 3),
            other => panic!("{other:?}"),
        }
        let p = pin("foo-bar", "2.0");
        assert!(matches!(
            choose(&p, &sources, &rank, true),
            Err(Problem::Unverifiable { .. })
        ));
    }
}
