//! Which symlinks in the venv's own directory are references: links into read-only sources
//! (uv's cache, the layers' sources, `--find-links` directories) that the overlay shows as
//! the regular files they point to (see `crate::overlay::reference`). Pure path logic plus
//! one `CACHEDIR.TAG` check per cache, the same for every upper.

use std::path::{Component, Path, PathBuf};

use parking_lot::Mutex;

/// The read-only sources references may point into.
#[derive(Debug, Default)]
pub struct References {
    /// Known sources (a reference may point anywhere below one).
    roots: Vec<PathBuf>,
    /// uv caches found through the links themselves, and directories found not to be one.
    found: Mutex<(Vec<PathBuf>, Vec<PathBuf>)>,
    /// Where the venv is mounted: no reference may point below it (the daemon would ask
    /// itself).
    mounted: PathBuf,
}

impl References {
    /// References into `roots` (those that neither hold nor lie below `mounted`) and into
    /// any uv cache, for a venv mounted at `mounted`.
    pub fn new(roots: Vec<PathBuf>, mounted: &Path) -> References {
        References {
            roots: roots
                .into_iter()
                .filter(|r| !r.starts_with(mounted) && !mounted.starts_with(r))
                .collect(),
            found: Mutex::default(),
            mounted: mounted.to_owned(),
        }
    }

    /// The file a symlink to `link` refers to, if it is a reference: an absolute path,
    /// without `..`, inside one of the roots or inside the unpacked wheels of any uv cache
    /// (`CACHE/archive-v0/...`, CACHE holding uv's `CACHEDIR.TAG`: whichever cache uv was
    /// told to use), naming a regular file (followed; a dangling or directory target is no
    /// reference).
    pub fn target(&self, link: &Path) -> Option<PathBuf> {
        let plain = link.is_absolute() && !link.components().any(|c| c == Component::ParentDir);
        if !plain || link.starts_with(&self.mounted) {
            return None;
        }
        let known = self.roots.iter().any(|r| link.starts_with(r));
        if !known && self.uv_cache_of(link).is_none() {
            return None;
        }
        std::fs::metadata(link)
            .ok()?
            .is_file()
            .then(|| link.to_owned())
    }

    /// The uv cache `target` is an unpacked-wheel file of, if any: the directory above its
    /// `archive-v0` component, when it holds the `CACHEDIR.TAG` uv writes. Remembered, so
    /// each cache is looked at once.
    fn uv_cache_of(&self, target: &Path) -> Option<PathBuf> {
        let mut cache = PathBuf::new();
        let mut parts = target.components();
        for c in parts.by_ref() {
            if c.as_os_str() == "archive-v0" {
                break;
            }
            cache.push(c);
        }
        parts.next()?; // (an entry below archive-v0)
        let mut found = self.found.lock();
        if found.0.contains(&cache) {
            return Some(cache);
        }
        if found.1.contains(&cache) || cache.starts_with(&self.mounted) {
            return None;
        }
        if cache.join("CACHEDIR.TAG").is_file() {
            found.0.push(cache.clone());
            Some(cache)
        } else {
            found.1.push(cache);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_in_known_sources_are_references() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        let cache = d.path().join("cache");
        let venv = d.path().join("venv");
        for p in [&src, &cache.join("archive-v0/abc"), &venv] {
            std::fs::create_dir_all(p).unwrap();
        }
        std::fs::write(src.join("f"), b"x").unwrap();
        std::fs::write(cache.join("archive-v0/abc/g"), b"y").unwrap();
        std::fs::write(d.path().join("elsewhere"), b"z").unwrap();
        let refs = References::new(vec![src.clone()], &venv);
        assert_eq!(refs.target(&src.join("f")), Some(src.join("f")));
        assert_eq!(refs.target(&src), None, "a directory is no reference");
        assert_eq!(refs.target(&src.join("missing")), None);
        assert_eq!(refs.target(Path::new("src/f")), None, "relative");
        assert_eq!(refs.target(&src.join("../elsewhere")), None);
        assert_eq!(refs.target(&d.path().join("elsewhere")), None);
        let g = cache.join("archive-v0/abc/g");
        assert_eq!(refs.target(&g), None, "no CACHEDIR.TAG: not a uv cache");
        let refs = References::new(vec![], &venv);
        std::fs::write(cache.join("CACHEDIR.TAG"), b"Signature").unwrap();
        assert_eq!(refs.target(&g), Some(g.clone()));
        // a source holding the venv (or below it) is no source
        let refs = References::new(vec![d.path().to_owned()], &venv);
        assert_eq!(refs.target(&src.join("f")), None);
    }
}
