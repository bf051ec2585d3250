//! `pylock.toml` (PEP 751, "Lock files"): the packages to install, each with its version,
//! an optional marker and the wheels it may be installed from.

use std::collections::BTreeMap;
use std::path::Path;

use pep508_rs::{MarkerEnvironment, MarkerTree};
use serde::Deserialize;
use toml::Spanned;

use super::{LockedWheel, Pin, PinError, PinFile};

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Lock {
    lock_version: Spanned<String>,
    requires_python: Option<Spanned<String>>,
    environments: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    packages: Vec<Package>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Package {
    name: Spanned<String>,
    version: Option<String>,
    marker: Option<Spanned<String>>,
    wheels: Option<Vec<Wheel>>,
    sdist: Option<toml::Value>,
    directory: Option<toml::Value>,
    vcs: Option<toml::Value>,
    archive: Option<toml::Value>,
}

#[derive(Deserialize)]
struct Wheel {
    name: Option<String>,
    url: Option<String>,
    path: Option<String>,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn marker(text: &str, path: &Path, m: &Spanned<String>) -> Result<MarkerTree, PinError> {
    m.get_ref().parse::<MarkerTree>().map_err(|e| {
        PinError::new(
            path,
            line_of(text, m.span().start),
            format!("invalid marker `{}`: {e}", m.get_ref()),
        )
    })
}

pub fn parse(text: &str, path: &Path, env: &MarkerEnvironment) -> Result<PinFile, PinError> {
    let lock: Lock = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
        PinError::new(
            path,
            line,
            format!("not a valid pylock.toml: {}", e.message()),
        )
    })?;
    let at = |span: std::ops::Range<usize>| line_of(text, span.start);
    let version = lock.lock_version.get_ref();
    if !version.starts_with("1.") && version != "1" {
        return Err(PinError::new(
            path,
            at(lock.lock_version.span()),
            format!("lock-version {version} is not supported (this venvfs reads 1.x)"),
        ));
    }
    if let Some(rp) = &lock.requires_python {
        let specs: pep440_rs::VersionSpecifiers = rp.get_ref().parse().map_err(|e| {
            PinError::new(path, at(rp.span()), format!("invalid requires-python: {e}"))
        })?;
        if !specs.contains(env.python_full_version()) {
            return Err(PinError::new(
                path,
                at(rp.span()),
                format!(
                    "the lock needs Python {}, but the venv has {}",
                    rp.get_ref(),
                    env.python_full_version()
                ),
            ));
        }
    }
    if let Some(envs) = &lock.environments {
        let mut any = false;
        for e in envs {
            any |= marker(text, path, e)?.evaluate(env, &[]);
        }
        if !any && !envs.is_empty() {
            return Err(PinError::new(
                path,
                at(envs[0].span()),
                "the lock's `environments` do not include this venv's interpreter",
            ));
        }
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = PinFile::default();
    for p in &lock.packages {
        let line = at(p.name.span());
        let err = |why: String| PinError::new(path, line, why);
        if let Some(m) = &p.marker {
            if !marker(text, path, m)?.evaluate(env, &[]) {
                continue;
            }
        }
        let name = p.name.get_ref();
        let editable = p
            .directory
            .as_ref()
            .and_then(|d| d.get("editable"))
            .and_then(toml::Value::as_bool)
            .unwrap_or(false);
        if editable {
            out.editable
                .push((name.clone(), format!("{}:{line}", path.display())));
            continue;
        }
        let Some(version) = &p.version else {
            let what = if p.directory.is_some() {
                "a local directory"
            } else if p.vcs.is_some() {
                "a version-control checkout"
            } else {
                "a source without a version"
            };
            return Err(err(format!(
                "{name} comes from {what}; venvfs installs built wheels: build it (`uv build`) and lock the wheel"
            )));
        };
        super::parse_version(version).map_err(|e| err(format!("{name}: {e}")))?;
        let mut wheels = Vec::new();
        for w in p.wheels.iter().flatten() {
            let local = match (&w.path, &w.url) {
                (Some(p), _) => Some(base.join(p)),
                (None, Some(u)) => super::file_url_path(u),
                (None, None) => None,
            };
            let filename = w
                .name
                .clone()
                .or_else(|| {
                    let from = w.path.as_deref().or(w.url.as_deref())?;
                    Some(from.rsplit(['/', '\\']).next()?.to_owned())
                })
                .ok_or_else(|| err(format!("{name}: a wheel entry has no name, path or url")))?;
            if crate::tags::WheelFilename::parse(&filename).is_none() {
                return Err(err(format!(
                    "{name}: `{filename}` is not a wheel file name"
                )));
            }
            let sha256 = match w.hashes.get("sha256") {
                Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Some(h.to_lowercase())
                }
                Some(h) => return Err(err(format!("{name}: `{h}` is not a sha256 digest"))),
                None => None,
            };
            let url = w
                .url
                .clone()
                .filter(|u| u.starts_with("http://") || u.starts_with("https://"));
            wheels.push(LockedWheel {
                filename,
                path: local,
                url,
                sha256,
            });
        }
        if wheels.is_empty() && p.sdist.is_none() && p.archive.is_none() {
            return Err(err(format!(
                "{name} {version}: the lock lists no wheel for it"
            )));
        }
        out.pins.push(Pin {
            name: name.clone(),
            version: version.clone(),
            hashes: Vec::new(),
            wheels,
            origin: format!("{}:{line}", path.display()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<PinFile, PinError> {
        parse(
            text,
            Path::new("/l/pylock.toml"),
            &super::super::requirements::tests::env(),
        )
    }

    #[cfg(unix)]
    const UV: &str = r#"
lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.11"

[[packages]]
name = "certifi"
version = "2026.10.18"
wheels = [{ url = "file:///w/certifi-2026.10.18-py3-none-any.whl", hashes = { sha256 = "73191c47aaa79da394e8fee2dbc2ec827432cab56311122c9e47abf79e390f62" } }]

[[packages]]
name = "colorama"
version = "0.4.6"
marker = "sys_platform == 'win32'"
wheels = [{ url = "https://files.pythonhosted.org/p/colorama-0.4.6-py2.py3-none-any.whl", hashes = { sha256 = "4f1d9991f5acc0ca119f9d443620b77f9d6b33703e51011c16baf57afb285fc6" } }]

[[packages]]
name = "six"
version = "1.17.0"
sdist = { url = "https://example.org/six-1.17.0.tar.gz" }
wheels = [{ path = "wheels/six-1.17.0-py2.py3-none-any.whl" }]
"#;

    // (a lock with Linux paths and `file:///` URLs, which are not absolute on Windows)
    #[cfg(unix)]
    #[test]
    fn reads_what_uv_writes() {
        let f = parse_str(UV).unwrap();
        let names: Vec<_> = f.pins.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["certifi", "six"]);
        let w = &f.pins[0].wheels[0];
        assert_eq!(
            w.path.as_deref(),
            Some(Path::new("/w/certifi-2026.10.18-py3-none-any.whl"))
        );
        assert!(w.sha256.is_some() && w.url.is_none());
        assert_eq!(
            f.pins[1].wheels[0].path.as_deref(),
            Some(Path::new("/l/wheels/six-1.17.0-py2.py3-none-any.whl"))
        );
        assert_eq!(f.pins[1].origin, "/l/pylock.toml:18");
    }

    #[test]
    fn http_urls_are_kept_for_fetching() {
        let text = "lock-version = \"1.0\"\n[[packages]]\nname = \"six\"\nversion = \"1.17.0\"\n\
wheels = [{ url = \"https://f.example/p/six-1.17.0-py2.py3-none-any.whl\", hashes = { sha256 = \"4721F391ED90541FDDACAB5ACF947AA0D3DC7D27B2E1E8EDA2BE8970586C3274\" } }]\n";
        let f = parse_str(text).unwrap();
        let w = &f.pins[0].wheels[0];
        assert_eq!(w.filename, "six-1.17.0-py2.py3-none-any.whl");
        assert_eq!(
            w.url.as_deref(),
            Some("https://f.example/p/six-1.17.0-py2.py3-none-any.whl")
        );
        assert!(w.path.is_none());
        assert_eq!(
            w.sha256.as_deref(),
            Some("4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274")
        );
    }

    #[test]
    fn the_editable_project_is_set_aside() {
        let text = "lock-version = \"1.0\"\n[[packages]]\nname = \"proj\"\ndirectory = { path = \".\", editable = true }\n";
        let f = parse_str(text).unwrap();
        assert!(f.pins.is_empty());
        assert_eq!(
            f.editable,
            [("proj".to_string(), "/l/pylock.toml:3".to_string())]
        );
    }

    #[test]
    fn refusals_name_the_line() {
        for (text, needle) in [
            ("lock-version = \"2.0\"\n", ":1: lock-version 2.0"),
            ("lock-version = \"1.0\"\nrequires-python = \">=3.12\"\n", ":2: the lock needs Python >=3.12"),
            ("lock-version = \"1.0\"\n[[packages]]\nname = \"x\"\ndirectory = { path = \".\" }\n", ":3: x comes from a local directory"),
            ("lock-version = \"1.0\"\n[[packages]]\nname = \"x\"\nvcs = { url = \"https://g/x\" }\n", ":3: x comes from a version-control checkout"),
            ("lock-version = \"1.0\"\n[[packages]]\nname = \"x\"\nversion = \"1\"\nmarker = \"python_version >< '3'\"\n", ":5: invalid marker"),
            ("lock-version = \"1.0\"\n[[packages]]\nname = \"x\"\nversion = \"1\"\n", "no wheel"),
            ("lock-version = \"1.0\"\n[[packages]\n", ":2: not a valid pylock.toml"),
            ("[[packages]]\nname = \"x\"\n", "lock-version"),
        ] {
            let e = parse_str(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
