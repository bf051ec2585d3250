//! pip's cache as a source of wheels, for giving back the copies `pip install` writes (pip
//! has no link mode). pip keeps what it downloaded in its HTTP cache: in `http-v2/` (pip
//! 23.3 and later) each response body is a file of its own, `<key>.body`, named by a hash
//! of its URL; in `http/` (older pips, such as the one `python -m venv` gives Debian 12's
//! Python) the body is inside one msgpack record with the response's headers, right after
//! its first bytes. The wheels pip built from sdists are in `wheels/`, as named `.whl`
//! files. A body has no name of its own: it is known by the `.dist-info` its zip central
//! directory lists, and its file name is made again from its `WHEEL`.
//!
//! pip's cache is only read. A wheel found there is copied into venvfs's wheel store
//! (`copy_file_range`, which clones where the filesystem can), named from its `WHEEL` (as
//! the usual tools name wheels, so mostly as its index did) and kept by its hash like a
//! fetched wheel: a layer's source must stay for as long as the
//! layer does, and pip prunes its own cache as it likes (`pip cache purge`).
//!
//! Where pip's cache is: `$PIP_CACHE_DIR`, else the `cache-dir` pip's configuration files
//! set (see [`locate`]), else `$XDG_CACHE_HOME/pip` or `~/.cache/pip`
//! (`%LOCALAPPDATA%\pip\Cache` on Windows, `~/Library/Caches/pip` on macOS).

use std::path::{Path, PathBuf};

use crate::name::PackageName;
use crate::tags::WheelFilename;

/// A wheel pip's cache holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipWheel {
    pub path: PathBuf,
    /// Where the wheel's bytes are in that file (an old pip's record); None: all of it.
    pub range: Option<(u64, u64)>,
    pub name: String,
    pub version: String,
}

/// pip's cache directory, as pip finds it for the venv at `venv` (see the module's doc),
/// whether or not it exists.
pub fn locate(venv: Option<&Path>) -> Option<PathBuf> {
    locate_with(
        &|k: &str| std::env::var_os(k).filter(|v| !v.is_empty()),
        venv,
        &|p: &Path| std::fs::read_to_string(p).ok(),
    )
}

/// [`locate`] with the environment `var` and the files `read` gives.
fn locate_with(
    var: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    venv: Option<&Path>,
    read: &dyn Fn(&Path) -> Option<String>,
) -> Option<PathBuf> {
    let path = |k: &str| var(k).map(PathBuf::from);
    if let Some(p) = path("PIP_CACHE_DIR") {
        return Some(p);
    }
    if let Some(dir) = config_files(var, venv)
        .iter()
        .filter_map(|f| config_cache_dir(&read(f)?))
        .next_back()
    {
        return Some(expand(&dir, var));
    }
    if cfg!(windows) {
        return path("LOCALAPPDATA").map(|d| d.join("pip").join("Cache"));
    }
    if cfg!(target_os = "macos") {
        return path("HOME").map(|h| h.join("Library/Caches/pip"));
    }
    if let Some(p) = path("XDG_CACHE_HOME") {
        return Some(p.join("pip"));
    }
    path("HOME").map(|h| h.join(".cache").join("pip"))
}

/// pip's configuration files, in the order pip reads them (a later one's setting wins):
/// the machine's (`$XDG_CONFIG_DIRS/pip/pip.conf`, `/etc/pip.conf`), the user's
/// (`~/.pip/pip.conf`, `$XDG_CONFIG_HOME/pip/pip.conf`; not when `$PIP_CONFIG_FILE` names
/// a file that exists), the venv's (`pip.conf` in it), then `$PIP_CONFIG_FILE`. (On
/// Windows pip reads others, `pip.ini`: not these.)
fn config_files(
    var: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    venv: Option<&Path>,
) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if cfg!(windows) {
        return out;
    }
    let env_file = var("PIP_CONFIG_FILE").map(PathBuf::from);
    let dirs = var("XDG_CONFIG_DIRS").unwrap_or_else(|| "/etc/xdg".into());
    out.extend(std::env::split_paths(&dirs).map(|d| d.join("pip/pip.conf")));
    out.push(PathBuf::from("/etc/pip.conf"));
    if !env_file.as_ref().is_some_and(|f| f.is_file()) {
        if let Some(home) = var("HOME").map(PathBuf::from) {
            out.push(home.join(".pip/pip.conf"));
            let config = var("XDG_CONFIG_HOME").map_or_else(|| home.join(".config"), PathBuf::from);
            out.push(config.join("pip/pip.conf"));
        }
    }
    out.extend(venv.map(|v| v.join("pip.conf")));
    out.extend(env_file);
    out
}

/// The `cache-dir` a pip configuration file sets: in its `[install]` section (what `pip
/// install` reads first), else in `[global]`.
fn config_cache_dir(text: &str) -> Option<String> {
    let (mut section, mut global, mut install) = (String::new(), None, None);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_ascii_lowercase();
            continue;
        }
        let Some((key, value)) = line.split_once(['=', ':']) else {
            continue;
        };
        if !key
            .trim()
            .replace('_', "-")
            .eq_ignore_ascii_case("cache-dir")
        {
            continue;
        }
        let value = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        match section.as_str() {
            "global" => global = value,
            "install" => install = value,
            _ => {}
        }
    }
    install.or(global)
}

/// `~` and `$VAR` / `${VAR}` expanded, as pip expands a path it is given.
fn expand(value: &str, var: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    let mut out = String::new();
    let mut rest = value;
    if let Some(after) = rest.strip_prefix('~') {
        if after.is_empty() || after.starts_with('/') {
            if let Some(home) = var("HOME") {
                out.push_str(&home.to_string_lossy());
                rest = after;
            }
        }
    }
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, next) = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => ("", after),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        match var(name).filter(|_| !name.is_empty()) {
            Some(v) => out.push_str(&v.to_string_lossy()),
            None => out.push_str(&rest[i..rest.len() - next.len()]),
        }
        rest = next;
    }
    out.push_str(rest);
    PathBuf::from(out)
}

/// The wheels of `name` `version` among `wheels`.
pub fn find<'a>(
    wheels: &'a [PipWheel],
    name: &'a PackageName,
    version: &'a str,
) -> impl Iterator<Item = &'a PipWheel> + 'a {
    wheels.iter().filter(move |w| {
        PackageName::new(&w.name) == *name && super::same_version(&w.version, version)
    })
}

/// Every wheel in the pip cache at `cache`: HTTP bodies that are wheels (each read as far
/// as its zip's central directory), and the wheels pip built.
pub fn list(cache: &Path) -> Vec<PipWheel> {
    let mut out = Vec::new();
    for (path, kind) in files(cache) {
        let wheel = match kind {
            Kind::Body => named(&path, None),
            Kind::Record => record_body(&path).and_then(|range| named(&path, Some(range))),
            Kind::Built => path.file_name().and_then(|f| f.to_str()).and_then(|f| {
                let w = WheelFilename::parse(f)?;
                Some(PipWheel {
                    path: path.clone(),
                    range: None,
                    name: w.name,
                    version: w.version,
                })
            }),
        };
        out.extend(wheel);
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

#[derive(Clone, Copy)]
enum Kind {
    /// `http-v2/**/<key>.body`
    Body,
    /// `http/**/<key>`: a msgpack record with the body inside
    Record,
    /// `wheels/**/*.whl`
    Built,
}

/// The files of the cache that may hold wheels.
fn files(cache: &Path) -> Vec<(PathBuf, Kind)> {
    let mut out = Vec::new();
    for (sub, kind) in [
        ("http-v2", Kind::Body),
        ("http", Kind::Record),
        ("wheels", Kind::Built),
    ] {
        let mut dirs = vec![cache.join(sub)];
        while let Some(dir) = dirs.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let Ok(file_type) = e.file_type() else {
                    continue;
                };
                let path = e.path();
                let ext = path.extension().and_then(|x| x.to_str());
                if file_type.is_dir() {
                    dirs.push(path);
                } else if file_type.is_file()
                    && match kind {
                        Kind::Body => ext == Some("body"),
                        Kind::Record => ext.is_none(),
                        Kind::Built => ext == Some("whl"),
                    }
                {
                    out.push((path, kind));
                }
            }
        }
    }
    out
}

/// Where the body is in an old pip's cache record: cachecontrol's `cc=4,` then a msgpack
/// map whose first entry is `response`, a map whose first entry is `body`, a byte string.
fn record_body(path: &Path) -> Option<(u64, u64)> {
    let file = std::fs::File::open(path).ok()?;
    let mut head = [0u8; 32];
    let n = crate::fsutil::read_at(&file, &mut head, 0).ok()?;
    let head = &head[..n];
    let rest = head.strip_prefix(b"cc=4,")?;
    let (&map, rest) = rest.split_first()?;
    let rest = rest
        .strip_prefix(b"\xa8response")
        .filter(|_| map & 0xf0 == 0x80)?;
    let (&map, rest) = rest.split_first()?;
    let rest = rest
        .strip_prefix(b"\xa4body")
        .filter(|_| map & 0xf0 == 0x80)?;
    let (len, header) = match *rest {
        [0xc4, a, ..] => (u64::from(a), 2),
        [0xc5, a, b, ..] => (u64::from(u16::from_be_bytes([a, b])), 3),
        [0xc6, a, b, c, d, ..] => (u64::from(u32::from_be_bytes([a, b, c, d])), 5),
        _ => return None,
    };
    let start = (head.len() - rest.len() + header) as u64;
    let size = file.metadata().ok()?.len();
    (len > 0 && start + len <= size).then_some((start, len))
}

/// The `.dist-info` prefix (`name-version`) of the zip at `range` of the file at `path`
/// (all of it when None), read from its central directory alone: only the names, which
/// is all telling bodies apart needs. (The wheel reader layers use, `WheelArchive`, reads
/// a whole file and checks every member; an old pip's body is a range of its record, and
/// most bodies are not the wheel looked for.)
fn dist_info_prefix(path: &Path, range: Option<(u64, u64)>) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let (start, len) = match range {
        Some(r) => r,
        None => (0, file.metadata().ok()?.len()),
    };
    // (the end of central directory record: 22 bytes and a comment of up to 64 KiB)
    let tail_len = len.min(22 + 0xffff);
    let mut tail = vec![0u8; tail_len as usize];
    crate::fsutil::read_exact_at(&file, &mut tail, start + len - tail_len).ok()?;
    let eocd = (0..tail.len().checked_sub(22)? + 1)
        .rev()
        .find(|&i| tail[i..].starts_with(b"PK\x05\x06"))?;
    let u32_at =
        |b: &[u8], i: usize| u64::from(u32::from_le_bytes(b[i..i + 4].try_into().unwrap()));
    let u16_at =
        |b: &[u8], i: usize| usize::from(u16::from_le_bytes(b[i..i + 2].try_into().unwrap()));
    let (cd_size, cd_offset) = (u32_at(&tail, eocd + 12), u32_at(&tail, eocd + 16));
    if cd_offset + cd_size > len || cd_size > 64 << 20 {
        return None; // (zip64 or not a zip: not a wheel this reads)
    }
    let mut cd = vec![0u8; cd_size as usize];
    crate::fsutil::read_exact_at(&file, &mut cd, start + cd_offset).ok()?;
    let mut prefixes = Vec::new();
    let mut i = 0;
    while i + 46 <= cd.len() && cd[i..].starts_with(b"PK\x01\x02") {
        let (name_len, extra, comment) = (
            u16_at(&cd, i + 28),
            u16_at(&cd, i + 30),
            u16_at(&cd, i + 32),
        );
        let name = cd.get(i + 46..i + 46 + name_len)?;
        if let Some((d, _)) = std::str::from_utf8(name).ok()?.split_once(".dist-info/") {
            if !d.contains('/') && !prefixes.iter().any(|p: &String| p == d) {
                prefixes.push(d.to_owned());
            }
        }
        i += 46 + name_len + extra + comment;
    }
    match prefixes.as_slice() {
        [prefix] => Some(prefix.clone()),
        _ => None,
    }
}

/// The wheel at `range` of the file at `path` (all of it when None), if it is one.
fn named(path: &Path, range: Option<(u64, u64)>) -> Option<PipWheel> {
    let prefix = dist_info_prefix(path, range)?;
    let (name, version) = prefix.split_once('-')?;
    Some(PipWheel {
        path: path.to_owned(),
        range,
        name: name.to_owned(),
        version: version.to_owned(),
    })
}

/// The file name of the wheel at `path`, made again from its `WHEEL` (its tags, and its
/// build); None when it is not the wheel of `name`.
fn filename_of(path: &Path, name: &str) -> Option<String> {
    let archive = crate::layer::wheel::WheelArchive::open(path).ok()?;
    let prefix = archive
        .members()
        .iter()
        .filter_map(|m| m.name.split_once(".dist-info/").map(|(d, _)| d))
        .find(|d| !d.contains('/'))?
        .to_owned();
    let (found, version) = prefix.split_once('-')?;
    if PackageName::new(found) != PackageName::new(name) {
        return None;
    }
    let wheel =
        crate::install::apply::read_source_file(path, &format!("{prefix}.dist-info/WHEEL")).ok()?;
    let mut tags = Vec::new();
    let mut build = None;
    for line in String::from_utf8_lossy(&wheel).lines() {
        match line.split_once(':').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("Tag", v)) => tags.push(v.to_owned()),
            Some(("Build", v)) => build = Some(v.to_owned()),
            _ => {}
        }
    }
    wheel_filename(found, version, build.as_deref(), &tags)
}

/// `{name}-{version}(-{build})?-{pythons}-{abis}-{platforms}.whl`, each part of the tags
/// the set of its values, sorted, joined by `.` (PEP 425's compressed tag sets, sorted as
/// the tools that build and repair wheels write them).
fn wheel_filename(
    name: &str,
    version: &str,
    build: Option<&str>,
    tags: &[String],
) -> Option<String> {
    let mut parts: [Vec<&str>; 3] = Default::default();
    for tag in tags {
        let split: Vec<&str> = tag.split('-').collect();
        let [py, abi, plat] = split.as_slice() else {
            return None;
        };
        for (set, v) in parts.iter_mut().zip([py, abi, plat]) {
            if !set.contains(v) {
                set.push(v);
            }
        }
    }
    if parts[0].is_empty() {
        return None;
    }
    for set in &mut parts {
        set.sort_unstable();
    }
    let build = build.map(|b| format!("-{b}")).unwrap_or_default();
    let filename = format!(
        "{name}-{version}{build}-{}-{}-{}.whl",
        parts[0].join("."),
        parts[1].join("."),
        parts[2].join(".")
    );
    WheelFilename::parse(&filename).map(|_| filename)
}

/// Copies `wheel` into venvfs's wheel `store`, named from its `WHEEL` (kept once: a copy
/// of bytes the store holds already goes); returns where it is kept there.
pub fn keep(store: &crate::fetch::Store, wheel: &PipWheel) -> std::io::Result<PathBuf> {
    use std::io::{Read, Seek};
    let mut tmp = store.temp_file()?;
    let mut from = std::fs::File::open(&wheel.path)?;
    match wheel.range {
        Some((start, len)) => {
            from.seek(std::io::SeekFrom::Start(start))?;
            std::io::copy(&mut from.take(len), tmp.as_file_mut())?;
        }
        None => {
            std::io::copy(&mut from, tmp.as_file_mut())?;
        }
    }
    let filename = match WheelFilename::parse(
        wheel
            .path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or(""),
    ) {
        Some(_) => wheel
            .path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        None => filename_of(tmp.path(), &wheel.name).ok_or_else(|| {
            std::io::Error::other(format!(
                "{}: not a wheel of {} (its WHEEL or .dist-info says otherwise)",
                wheel.path.display(),
                wheel.name
            ))
        })?,
    };
    let sha256 = super::sha256_file(tmp.path())?;
    if let Some(kept) = store.has(&sha256, &filename) {
        return Ok(kept);
    }
    store.keep(tmp, &sha256, &filename)
}

/// The wheels of `name` `version` among pip's cached `wheels`, copied into venvfs's wheel
/// store, as candidates there. An error when pip's cache has one but the store cannot
/// keep it.
pub fn into_store(
    wheels: &[PipWheel],
    name: &PackageName,
    version: &str,
) -> Result<Vec<super::Candidate>, String> {
    let mut out = Vec::new();
    for wheel in find(wheels, name, version) {
        let Some(store) = crate::fetch::Store::locate_writable() else {
            return Err(format!(
                "{}: pip's cache holds the wheel of {name} {version}, but venvfs has no \
                 writable cache directory to keep it in; set VENVFS_CACHE_DIR to one",
                wheel.path.display()
            ));
        };
        let kept = keep(&store, wheel).map_err(|e| {
            format!(
                "keeping {} in {}: {e}",
                wheel.path.display(),
                store.root.display()
            )
        })?;
        let filename = kept
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if let Some(parsed) = WheelFilename::parse(&filename) {
            out.push(super::Candidate {
                path: kept,
                filename: Some(filename),
                name: parsed.name,
                version: parsed.version,
                build: parsed.build,
                tags: parsed.tags,
                origin: super::Origin::Store,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(members: &[(&str, &str)]) -> Vec<u8> {
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut buf);
        for (name, content) in members {
            z.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(content.as_bytes()).unwrap();
        }
        z.finish().unwrap();
        buf.into_inner()
    }

    #[test]
    fn wheels_in_http_bodies_and_built_wheels_are_found_and_kept_by_name() {
        let d = tempfile::tempdir().unwrap();
        let cache = d.path().join("pip");
        let body_dir = cache.join("http-v2/a/b/c/d/e");
        std::fs::create_dir_all(&body_dir).unwrap();
        let wheel = zip_of(&[
            ("charset_normalizer/__init__.py", "X = 1\n"),
            (
                "charset_normalizer-3.5.3.dist-info/WHEEL",
                "Wheel-Version: 1.0\nTag: cp311-cp311-manylinux_2_17_x86_64\n\
                 Tag: cp311-cp311-manylinux2014_x86_64\n",
            ),
            (
                "charset_normalizer-3.5.3.dist-info/METADATA",
                "Name: charset-normalizer\n",
            ),
        ]);
        std::fs::write(body_dir.join("0123abcd.body"), &wheel).unwrap();
        // (what else the HTTP cache keeps: response headers, index pages)
        std::fs::write(body_dir.join("0123abcd"), b"cc=4,headers").unwrap();
        std::fs::write(body_dir.join("99ff.body"), b"<html>a page</html>").unwrap();
        let built = cache.join("wheels/1f/2e/3d");
        std::fs::create_dir_all(&built).unwrap();
        std::fs::write(built.join("demo_pkg-1.0-py3-none-any.whl"), b"zip").unwrap();

        // an old pip's record of the same wheel: `cc=4,`, msgpack, the body inside
        let old_dir = cache.join("http/0/1/2/3/4");
        std::fs::create_dir_all(&old_dir).unwrap();
        let mut record = b"cc=4,\x82\xa8response\x87\xa4body\xc5".to_vec();
        record.extend((wheel.len() as u16).to_be_bytes());
        record.extend(&wheel);
        record.extend(b"\xa7headers\x80\xa6status\xcc\xc8\xa4vary\x80");
        std::fs::write(old_dir.join("5678ef"), &record).unwrap();
        std::fs::write(
            old_dir.join("9abc"),
            b"cc=4,\x82\xa8response\x87\xa4body\xc4\x05<a/>",
        )
        .unwrap();

        let all = list(&cache);
        let name = PackageName::new("Charset-Normalizer");
        let found: Vec<PipWheel> = find(&all, &name, "3.5.3").cloned().collect();
        assert_eq!(found.len(), 2, "{found:?}");
        // (paths in order: `http/` before `http-v2/`)
        assert_eq!(found[0].range, Some((24, wheel.len() as u64)));
        assert_eq!(found[1].range, None);
        assert_eq!(find(&all, &name, "3.5.2").count(), 0);
        let demo_pkg = PackageName::new("demo-pkg");
        let demo: Vec<&PipWheel> = find(&all, &demo_pkg, "1.0").collect();
        assert_eq!(demo.len(), 1);
        assert_eq!(
            (demo[0].name.as_str(), demo[0].version.as_str()),
            ("demo_pkg", "1.0")
        );
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(list(&d.path().join("nowhere")).is_empty());

        let store = crate::fetch::Store {
            root: d.path().join("store"),
        };
        let before = snapshot(&cache);
        let kept = keep(&store, &found[1]).unwrap();
        assert_eq!(std::fs::read(&kept).unwrap(), wheel);
        assert_eq!(
            kept.file_name().unwrap(),
            "charset_normalizer-3.5.3-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
        );
        assert_eq!(keep(&store, &found[1]).unwrap(), kept, "kept once");
        assert_eq!(keep(&store, &found[0]).unwrap(), kept, "the same bytes");
        assert_eq!(store.list().len(), 1);
        assert_eq!(snapshot(&cache), before, "pip's cache is only read");
    }

    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for (p, _) in files(dir) {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
        out.sort();
        out
    }

    #[test]
    fn the_cache_is_where_pip_would_look() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let files = |pairs: &'static [(&'static str, &'static str)]| {
            move |p: &Path| {
                pairs
                    .iter()
                    .find(|(n, _)| Path::new(n) == p)
                    .map(|(_, t)| t.to_string())
            }
        };
        const HOME: &[(&str, &str)] = &[("HOME", "/home/u")];
        let home = HOME;
        let none = files(&[]);
        if cfg!(windows) {
            // (pip's configuration files there are others, and not read)
            let conf = files(&[("C:\\v\\pip.conf", "[global]\ncache-dir = D:\\p\n")]);
            assert_eq!(
                locate_with(
                    &env(&[("LOCALAPPDATA", "C:\\L")]),
                    Some(Path::new("C:\\v")),
                    &conf
                ),
                Some(Path::new("C:\\L").join("pip").join("Cache"))
            );
            return;
        }
        assert_eq!(
            locate_with(&env(home), None, &none),
            Some(PathBuf::from("/home/u/.cache/pip"))
        );
        assert_eq!(
            locate_with(
                &env(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/x")]),
                None,
                &none
            ),
            Some(PathBuf::from("/x/pip"))
        );
        // configuration files: a later one wins, [install] over [global]
        let conf = files(&[
            ("/etc/pip.conf", "[global]\ncache-dir = /shared/pip\n"),
            (
                "/home/u/.config/pip/pip.conf",
                "# mine\n[global]\ntimeout = 60\ncache_dir: ~/scratch/pip\n",
            ),
            (
                "/v/pip.conf",
                "[install]\ncache-dir=${SCRATCH}/venv-pip\n[global]\ncache-dir = /nope\n",
            ),
        ]);
        assert_eq!(
            locate_with(&env(home), None, &conf),
            Some(PathBuf::from("/home/u/scratch/pip"))
        );
        assert_eq!(
            locate_with(
                &env(&[("HOME", "/home/u"), ("SCRATCH", "/s")]),
                Some(Path::new("/v")),
                &conf
            ),
            Some(PathBuf::from("/s/venv-pip"))
        );
        // the environment over every file
        assert_eq!(
            locate_with(
                &env(&[("HOME", "/home/u"), ("PIP_CACHE_DIR", "/e")]),
                Some(Path::new("/v")),
                &conf
            ),
            Some(PathBuf::from("/e"))
        );
        assert_eq!(config_cache_dir("[freeze]\ncache-dir = /f\n"), None);
        assert_eq!(
            expand("$NOPE/a/${HOME}", &env(home)),
            PathBuf::from("$NOPE/a//home/u")
        );
    }

    #[test]
    fn file_names_are_made_again_from_the_tags() {
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            wheel_filename(
                "six",
                "1.17.0",
                None,
                &tags(&["py2-none-any", "py3-none-any"])
            )
            .as_deref(),
            Some("six-1.17.0-py2.py3-none-any.whl")
        );
        assert_eq!(
            wheel_filename("x", "1", Some("2"), &tags(&["py3-none-any"])).as_deref(),
            Some("x-1-2-py3-none-any.whl")
        );
        assert_eq!(wheel_filename("x", "1", None, &[]), None);
        assert_eq!(wheel_filename("x", "1", None, &tags(&["bad"])), None);
    }
}
