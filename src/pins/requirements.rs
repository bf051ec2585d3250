//! Requirements files of exact pins, as `uv pip compile` and `pip freeze` write them:
//! `name==version` lines with optional markers and `--hash` options, comments,
//! continuation lines, `-r other.txt`, `-f/--find-links DIR`, and `-i/--index-url` and
//! `--extra-index-url` (where missing wheels are fetched from) and `--no-index`; other pip
//! options are ignored.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep508_rs::{MarkerEnvironment, Requirement, VersionOrUrl};

use super::{LockedWheel, Pin, PinError, PinFile};

/// Options that take a value and do not matter to venvfs.
const IGNORED_WITH_VALUE: &[&str] = &[
    "--trusted-host",
    "--only-binary",
    "--no-binary",
    "--prefer-binary",
];
const IGNORED_FLAGS: &[&str] = &["--pre", "--require-hashes", "--prefer-binary"];

pub fn parse(text: &str, path: &Path, env: &MarkerEnvironment) -> Result<PinFile, PinError> {
    let mut out = PinFile::default();
    let mut seen = vec![path.to_owned()];
    parse_into(text, path, env, &mut out, &mut seen)?;
    Ok(out)
}

fn parse_into(
    text: &str,
    path: &Path,
    env: &MarkerEnvironment,
    out: &mut PinFile,
    seen: &mut Vec<PathBuf>,
) -> Result<(), PinError> {
    let base = path.parent().unwrap_or(Path::new("."));
    for (line_no, line) in logical_lines(text) {
        let err = |why: String| PinError::new(path, line_no, why);
        let mut words = line.split_whitespace().peekable();
        let Some(first) = words.peek().copied() else {
            continue;
        };
        if first.starts_with('-') {
            let (opt, inline) = match first.split_once('=') {
                Some((o, v)) => (o, Some(v.to_owned())),
                None => (first, None),
            };
            words.next();
            let mut value = || -> Result<String, PinError> {
                inline
                    .clone()
                    .or_else(|| words.next().map(str::to_owned))
                    .ok_or_else(|| err(format!("`{opt}` needs a value")))
            };
            match opt {
                "-r" | "--requirement" => {
                    let other = base.join(value()?);
                    if seen.contains(&other) {
                        return Err(err(format!("{} includes itself", other.display())));
                    }
                    let text = std::fs::read_to_string(&other)
                        .map_err(|e| err(format!("cannot read {}: {e}", other.display())))?;
                    seen.push(other.clone());
                    parse_into(&text, &other, env, out, seen)?;
                }
                "-f" | "--find-links" => {
                    let v = value()?;
                    let dir = if crate::fetch::is_page_url(&v) {
                        // a page of links, read when fetching
                        PathBuf::from(v.trim())
                    } else {
                        super::file_url_path(&v).unwrap_or_else(|| base.join(&v))
                    };
                    out.find_links.push(dir);
                }
                "-e" | "--editable" => {
                    // the project itself, as `uv export` lists it: left for `pip install -e`
                    let v = value()?;
                    let dir = super::file_url_path(&v).unwrap_or_else(|| base.join(&v));
                    let name = project_name(&dir).ok_or_else(|| {
                        err(format!(
                            "editable `{v}`: no pyproject.toml with a [project] name there; venvfs installs wheels: build one (`uv build`) and pin it"
                        ))
                    })?;
                    out.editable
                        .push((name, format!("{}:{line_no}", path.display())));
                }
                "-c" | "--constraint" => {
                    return Err(err(
                        "constraint files are not supported: give exact pins (`uv pip compile` writes them)".into(),
                    ))
                }
                "-i" | "--index-url" => out.index_url = Some(value()?),
                "--extra-index-url" => out.extra_index_urls.push(value()?),
                "--no-index" => out.no_index = true,
                o if IGNORED_WITH_VALUE.contains(&o) => {
                    value()?;
                }
                o if IGNORED_FLAGS.contains(&o) => {}
                o => return Err(err(format!("unknown option `{o}`"))),
            }
            continue;
        }
        // a requirement, possibly followed by `--hash=sha256:...` options
        let (spec, options) = match line.find(" --") {
            Some(i) => (&line[..i], &line[i..]),
            None => (line.as_str(), ""),
        };
        let mut hashes = Vec::new();
        for opt in options.split_whitespace() {
            let Some(h) = opt.strip_prefix("--hash=") else {
                return Err(err(format!("unknown option `{opt}` after a requirement")));
            };
            match h.split_once(':') {
                Some(("sha256", hex)) if is_sha256_hex(hex) => hashes.push(hex.to_lowercase()),
                Some(("sha256", _)) => return Err(err(format!("`{h}` is not a sha256 digest"))),
                // other algorithms cannot be checked here; sha256 is what lockers write
                _ => {}
            }
        }
        let req = parse_requirement(spec.trim())
            .map_err(|why| err(format!("not a valid requirement: {why}")))?;
        if !req.marker.evaluate(env, &[]) {
            continue;
        }
        let origin = format!("{}:{line_no}", path.display());
        let pin = match &req.version_or_url {
            Some(VersionOrUrl::VersionSpecifier(specs)) => {
                let exact: Vec<_> = specs.iter().collect();
                match exact.as_slice() {
                    [one]
                        if matches!(
                            one.operator(),
                            pep440_rs::Operator::Equal | pep440_rs::Operator::ExactEqual
                        ) =>
                    {
                        Pin {
                            name: req.name.to_string(),
                            version: one.version().to_string(),
                            hashes,
                            wheels: Vec::new(),
                            origin,
                        }
                    }
                    _ => {
                        return Err(err(format!(
                            "`{}` is not an exact pin: write `{}==VERSION` (`uv pip compile` writes such files)",
                            spec.trim(),
                            req.name
                        )))
                    }
                }
            }
            Some(VersionOrUrl::Url(url)) => {
                let file = url
                    .to_url()
                    .to_file_path()
                    .ok()
                    .filter(|p| p.extension().is_some_and(|x| x == "whl"))
                    .ok_or_else(|| {
                        err(format!(
                            "`{}`: only local wheel files can be named by URL",
                            spec.trim()
                        ))
                    })?;
                let filename = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let wheel = crate::tags::WheelFilename::parse(&filename)
                    .ok_or_else(|| err(format!("{filename} is not a wheel file name")))?;
                Pin {
                    name: req.name.to_string(),
                    version: wheel.version,
                    hashes,
                    wheels: vec![LockedWheel {
                        filename,
                        path: Some(base.join(file)),
                        url: None,
                        sha256: None,
                    }],
                    origin,
                }
            }
            None => {
                return Err(err(format!(
                    "`{}` has no version: write `{}==VERSION`",
                    spec.trim(),
                    req.name
                )))
            }
        };
        out.pins.push(pin);
    }
    Ok(())
}

/// A `name==version` given on the command line.
pub fn parse_pin_arg(arg: &str) -> Result<Pin, PinError> {
    let err = |why: String| PinError {
        path: PathBuf::from("command line"),
        line: 0,
        why,
    };
    let req = parse_requirement(arg).map_err(|why| {
        err(format!(
            "`{arg}` is not a wheel path or a requirement: {why}"
        ))
    })?;
    let exact = match &req.version_or_url {
        Some(VersionOrUrl::VersionSpecifier(specs)) => {
            let specs: Vec<_> = specs.iter().collect();
            match specs.as_slice() {
                [one]
                    if matches!(
                        one.operator(),
                        pep440_rs::Operator::Equal | pep440_rs::Operator::ExactEqual
                    ) =>
                {
                    Some(one.version().to_string())
                }
                _ => None,
            }
        }
        _ => None,
    };
    let version = exact.ok_or_else(|| {
        err(format!(
            "`{arg}`: give an exact version, `{}==VERSION` (venvfs does not resolve versions; `uv pip compile` does)",
            req.name
        ))
    })?;
    Ok(Pin {
        name: req.name.to_string(),
        version,
        hashes: Vec::new(),
        wheels: Vec::new(),
        origin: "command line".into(),
    })
}

/// `[project] name` of a project directory's pyproject.toml.
fn project_name(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("pyproject.toml")).ok()?;
    let doc: toml::Table = toml::from_str(&text).ok()?;
    Some(doc.get("project")?.get("name")?.as_str()?.to_owned())
}

/// A PEP 508 requirement. The name is checked first: pep508_rs 0.9 panics on a name that
/// ends in `-`, `_` or `.` (found by fuzzing).
fn parse_requirement(spec: &str) -> Result<Requirement<pep508_rs::VerbatimUrl>, String> {
    let name_end = spec
        .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
        .unwrap_or(spec.len());
    let name = &spec[..name_end];
    if name.ends_with(['-', '_', '.']) || name.starts_with(['-', '_', '.']) {
        return Err(format!(
            "`{name}` is not a package name (names start and end with a letter or digit)"
        ));
    }
    Requirement::from_str(spec).map_err(|e| first_line(&e.to_string()).to_owned())
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Lines with comments removed and `\` continuations joined, each with the number of the
/// line it starts on.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        let (content, continues) = match line.trim_end().strip_suffix('\\') {
            Some(c) => (c, true),
            None => (line, false),
        };
        let entry = current.get_or_insert_with(|| (i + 1, String::new()));
        entry.1.push(' ');
        entry.1.push_str(content.trim());
        if !continues {
            let (n, l) = current.take().expect("set above");
            let l = l.trim().to_owned();
            if !l.is_empty() {
                out.push((n, l));
            }
        }
    }
    if let Some((n, l)) = current {
        if !l.trim().is_empty() {
            out.push((n, l.trim().to_owned()));
        }
    }
    out
}

/// A line without its comment: `#` at the start or after whitespace.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn env() -> MarkerEnvironment {
        MarkerEnvironment::try_from(pep508_rs::MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: "3.11.7",
            os_name: "posix",
            platform_machine: "x86_64",
            platform_python_implementation: "CPython",
            platform_release: "6.18.0",
            platform_system: "Linux",
            platform_version: "#1 SMP",
            python_full_version: "3.11.7",
            python_version: "3.11",
            sys_platform: "linux",
        })
        .unwrap()
    }

    fn parse_str(text: &str) -> Result<PinFile, PinError> {
        parse(text, Path::new("/x/req.txt"), &env())
    }

    #[test]
    fn uv_compile_output() {
        let text = "# This file was autogenerated by uv\n\
certifi==2026.10.18 \\\n    --hash=sha256:73191c47aaa79da394e8fee2dbc2ec827432cab56311122c9e47abf79e390f62\n    # via requests\n\
colorama==0.4.6 ; sys_platform == 'win32'\n\
Click==8.1.7  # a comment\n\
--index-url https://pypi.org/simple\n\
-f ./wheels\n";
        let f = parse_str(text).unwrap();
        let names: Vec<_> = f.pins.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["certifi", "click"]);
        assert_eq!(f.pins[0].hashes.len(), 1);
        assert_eq!(f.pins[0].origin, "/x/req.txt:2");
        assert_eq!(f.pins[1].version, "8.1.7");
        assert_eq!(f.find_links, [PathBuf::from("/x/./wheels")]);
        assert_eq!(f.index_url.as_deref(), Some("https://pypi.org/simple"));
        assert!(!f.no_index);
        assert!(parse_str("--no-index\nsix==1.0\n").unwrap().no_index);
    }

    #[test]
    fn refusals_name_the_line() {
        for (text, needle) in [
            ("six==1.0\nnumpy>=2\n", ":2: `numpy>=2` is not an exact pin"),
            ("numpy\n", "has no version"),
            ("-e ./nowhere\n", "editable `./nowhere`"),
            ("nump y==1\n", "not a valid requirement"),
            ("six==1 --hash=sha256:xyz\n", "not a sha256"),
            ("--bogus\n", "unknown option"),
            // pep508_rs panics on these names (found by fuzzing)
            ("create-=1\n", "`create-` is not a package name"),
            ("six_==1.0\n", "`six_` is not a package name"),
        ] {
            let e = parse_str(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(e.starts_with("/x/req.txt:"), "{e}");
        }
    }
}
