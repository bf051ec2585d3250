//! Fetching the wheels no local source has: `sync` and `install` call this for the pins
//! that the lock's paths, `--find-links` and uv's cache cannot satisfy, and then serve the
//! fetched `.whl` files in place from venvfs's wheel store ([`store`]), as layers.
//!
//! Where a wheel comes from:
//! - a `pylock.toml` entry names its wheels with a URL and sha256: the one whose tags this
//!   interpreter prefers is downloaded and checked against that hash;
//! - a requirements pin (or `install NAME==VERSION`) is looked up on the `--find-links`
//!   pages given by http(s) URL (flat HTML pages of links to wheel files, as pip and uv
//!   read them), then on the package index: the
//!   project page of the Simple API ([`index`]: PEP 691 JSON, PEP 503 HTML as fallback),
//!   and the wheel of that version whose tags the interpreter prefers is taken. The indexes
//!   are asked in order and the first that has a fitting wheel wins (as uv's default
//!   `first-index` strategy does: a later index cannot shadow a name the first one serves).
//!
//! venvfs fetches by itself rather than handing the work to `uv`, even when uv is on PATH:
//! it must stand on its own (uv is optional everywhere else too), the wheel it needs is one
//! known file at one URL, which a plain HTTPS GET gets, and only a `.whl` file can be served
//! in place as a layer, while uv would unpack it into its own cache.
//!
//! Indexes and pages that need a login get it as HTTP basic auth, from their URL or
//! `~/.netrc` ([`auth`]); no URL venvfs prints or logs carries it.
//!
//! Downloads run in parallel, are retried on transient errors ([`download`]), and are
//! checked against the pinned sha256 (else the index's) before they are kept. Nothing is
//! fetched with `--offline`.

pub mod auth;
pub mod download;
pub mod index;
pub mod store;
mod tls;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use url::Url;

use crate::name::PackageName;
use crate::pins::Pin;
use crate::tags::{TagRank, WheelFilename};

pub use store::Store;

/// The index asked when none is configured.
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple/";

/// How many downloads run at once.
const PARALLEL: usize = 8;

/// What fetching may do.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Never use the network.
    pub offline: bool,
    /// The indexes to ask for requirements pins, in order (see [`indexes`]), or why they
    /// are unusable: reported only when an index is needed, so that a bad `PIP_INDEX_URL`
    /// does not stop a sync whose wheels are all at hand.
    pub indexes: Result<Vec<Url>, String>,
    /// `--find-links` pages (http or https URLs), asked before the indexes.
    pub find_links: Vec<Url>,
    /// The logins taken out of those URLs, and netrc's.
    pub logins: auth::Logins,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            offline: false,
            indexes: Ok(Vec::new()),
            find_links: Vec::new(),
            logins: auth::Logins::new(),
        }
    }
}

/// Whether a `--find-links` value is a URL of a page rather than a directory.
pub fn is_page_url(s: &str) -> bool {
    let lower = s.trim_start().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// A find-links page's URL, its login taken into `logins`.
pub fn find_links_url(s: &str, logins: &mut auth::Logins) -> Result<Url, String> {
    Url::parse(s.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .map(|u| logins.take_from(&u))
        .ok_or_else(|| format!("--find-links: `{}` is not an http or https URL", masked(s)))
}

/// A configured URL for a message: its login masked (or the whole value, if it cannot be
/// read as a URL and may hold one).
fn masked(s: &str) -> String {
    match Url::parse(s.trim()) {
        Ok(u) => auth::display(&u),
        Err(_) if s.contains('@') => "(a value with `@`, not shown)".to_owned(),
        Err(_) => s.to_owned(),
    }
}

/// What a pin file says about indexes (a requirements file's `-i`, `--extra-index-url`,
/// `--no-index`).
#[derive(Debug, Default)]
pub struct FileIndexes<'a> {
    pub index_url: Option<&'a str>,
    pub extra: &'a [String],
    pub no_index: bool,
}

/// The indexes, in order: the main one (`--index-url`, else the pin file's `--index-url`,
/// else `$UV_INDEX_URL`, else `$PIP_INDEX_URL`, else PyPI), then the extra ones
/// (`--extra-index-url`, then the pin file's). None when the pin file says `--no-index` and
/// the command line names no index. Refuses what is not an http(s) URL. A user and
/// password in a URL go into `logins` and out of the URL.
pub fn indexes(
    index_url: Option<&str>,
    extra: &[String],
    file: &FileIndexes,
    logins: &mut auth::Logins,
) -> Result<Vec<Url>, String> {
    if file.no_index && index_url.is_none() && extra.is_empty() {
        return Ok(Vec::new());
    }
    let (file_index_url, file_extra) = if file.no_index {
        (None, &[][..])
    } else {
        (file.index_url, file.extra)
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let (main, from) = match (index_url, file_index_url) {
        (Some(u), _) => (u.to_owned(), "--index-url"),
        (None, Some(u)) => (u.to_owned(), "the pin file's --index-url"),
        (None, None) => match (env("UV_INDEX_URL"), env("PIP_INDEX_URL")) {
            (Some(u), _) => (u, "UV_INDEX_URL"),
            (None, Some(u)) => (u, "PIP_INDEX_URL"),
            (None, None) => (DEFAULT_INDEX.to_owned(), "the default index"),
        },
    };
    let mut out = Vec::new();
    for (u, from) in std::iter::once((main.as_str(), from)).chain(
        extra
            .iter()
            .map(|u| (u.as_str(), "--extra-index-url"))
            .chain(
                file_extra
                    .iter()
                    .map(|u| (u.as_str(), "the pin file's --extra-index-url")),
            ),
    ) {
        let url = Url::parse(u.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| format!("{from}: `{}` is not an http or https URL", masked(u)))?;
        let url = logins.take_from(&url);
        if !out.contains(&url) {
            out.push(url);
        }
    }
    Ok(out)
}

/// What became of one pin.
#[derive(Debug)]
pub enum Outcome {
    /// The wheel is in the store (fetched now, or by an earlier run).
    Fetched(PathBuf),
    /// Nothing to fetch: no URL in the lock, nothing of that version on the indexes.
    Unavailable(String),
    /// A fetch that went wrong: an unreachable index, a broken download, a wrong hash.
    Failed(String),
}

/// The wheel chosen for a pin, before it is downloaded.
struct Planned {
    filename: String,
    url: Url,
    /// Accepted sha256 values, and who says so (for the message when none matches).
    expected: Vec<String>,
    expected_from: &'static str,
}

/// Fetches a wheel for each pin, several at a time; one [`Outcome`] per pin, in order.
/// `Err` only when there is no store to keep wheels in.
pub fn fetch_all(
    pins: &[&Pin],
    settings: &Settings,
    rank: &TagRank,
    require_hashes: bool,
) -> Result<Vec<Outcome>, String> {
    let store =
        Store::locate_writable().ok_or_else(|| {
            let tried: Vec<String> = crate::finder::uvcache::own_cache_candidates()
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            format!(
            "no writable cache directory to keep fetched wheels in (tried: {}): set {} to one, \
             or give the wheels with --find-links",
            if tried.is_empty() { "none is set".to_owned() } else { tried.join(", ") },
            crate::finder::uvcache::OWN_CACHE_VAR
        )
        })?;
    let http = download::Http::new(settings.logins.clone())?;
    let started = Instant::now();
    let progress = Progress::new(pins.len());
    let next = AtomicUsize::new(0);
    let fetched = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new((0..pins.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(pins.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(pin) = pins.get(i) else { break };
                let outcome = fetch_one(
                    pin,
                    settings,
                    rank,
                    require_hashes,
                    &http,
                    &store,
                    &progress,
                    &fetched,
                );
                progress.file_done();
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(outcome);
            });
        }
    });
    progress.finish();
    let n = fetched.load(Ordering::Relaxed);
    if n > 0 {
        eprintln!(
            "Downloaded {n} {} ({:.1} MiB) in {:.1}s into {}",
            if n == 1 { "wheel" } else { "wheels" },
            progress.bytes.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
            started.elapsed().as_secs_f64(),
            store.root.display()
        );
    }
    Ok(results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::Failed("not fetched".into())))
        .collect())
}

#[allow(clippy::too_many_arguments)]
fn fetch_one(
    pin: &Pin,
    settings: &Settings,
    rank: &TagRank,
    require_hashes: bool,
    http: &download::Http,
    store: &Store,
    progress: &Progress,
    fetched: &AtomicUsize,
) -> Outcome {
    let planned = match plan(pin, settings, rank, http) {
        Ok(p) => p,
        Err(o) => return o,
    };
    if planned.expected.is_empty() && require_hashes {
        return Outcome::Unavailable(format!(
            "{} has no pinned sha256 to check it against (--require-hashes)",
            planned.url
        ));
    }
    // kept by an earlier run or a process running beside this one
    for h in &planned.expected {
        if let Some(p) = store.has(h, &planned.filename) {
            return Outcome::Fetched(p);
        }
    }
    let mut tmp = match store.temp_file() {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(format!("cannot write into the wheel store: {e}")),
    };
    let sha256 = match http.download(&planned.url, tmp.as_file_mut(), &|n| progress.bytes(n)) {
        Ok(h) => h,
        // (the message names the URL)
        Err(e) => return Outcome::Failed(e),
    };
    if !planned.expected.is_empty() && !planned.expected.contains(&sha256) {
        // (the temporary file is removed when `tmp` is dropped)
        return Outcome::Failed(format!(
            "{} has sha256 {sha256}, but {} says {}; it was not kept",
            planned.url,
            planned.expected_from,
            planned.expected.join(" or ")
        ));
    }
    match store.keep(tmp, &sha256, &planned.filename) {
        Ok(p) => {
            fetched.fetch_add(1, Ordering::Relaxed);
            Outcome::Fetched(p)
        }
        Err(e) => Outcome::Failed(format!(
            "{}: cannot keep it in the wheel store: {e}",
            planned.url
        )),
    }
}

/// Which file to fetch for a pin: from the lock's URLs, else from the indexes.
fn plan(
    pin: &Pin,
    settings: &Settings,
    rank: &TagRank,
    http: &download::Http,
) -> Result<Planned, Outcome> {
    if !pin.wheels.is_empty() {
        return plan_locked(pin, rank);
    }
    let name = PackageName::new(&pin.name);
    let mut seen = Vec::new();
    let mut unreadable = Vec::new();
    // (for a message that says what is wrong when nothing is found: the name, or the version)
    let mut project_pages = 0;
    let mut versions_there = false;
    for page_url in &settings.find_links {
        let page = match http.flat_page(page_url) {
            Ok(download::Page::Found {
                content_type,
                body,
                url,
            }) => index::parse(&content_type, &body, &url),
            Ok(download::Page::Missing) => Err(format!("{page_url}: not found (HTTP 404)")),
            Err(e) => Err(e),
        };
        // (a page that cannot be read is passed over, as pip does: the index may have it)
        match page {
            Ok(files) => {
                if let Some(f) = best_file(files, pin, &name, rank, &mut seen) {
                    return planned(pin, f);
                }
            }
            Err(e) => unreadable.push(format!("--find-links {e}")),
        }
    }
    let indexes = settings
        .indexes
        .as_ref()
        .map_err(|e| Outcome::Failed(e.clone()))?;
    for index in indexes {
        let page_url = index::project_url(index, &name).map_err(Outcome::Failed)?;
        let page = http.page(&page_url).map_err(|e| {
            // (and why the --find-links pages passed over were: one cause may explain both)
            let mut why = format!("the index {index} cannot be read: {e}");
            if !unreadable.is_empty() {
                why.push_str(&format!("; unreadable: {}", unreadable.join("; ")));
            }
            Outcome::Failed(why)
        })?;
        let download::Page::Found {
            content_type,
            body,
            url,
        } = page
        else {
            continue;
        };
        let files = index::parse(&content_type, &body, &url).map_err(Outcome::Failed)?;
        project_pages += 1;
        versions_there |= files
            .iter()
            .any(|f| is_version(&f.filename, &name, &pin.version));
        if let Some(f) = best_file(files, pin, &name, rank, &mut seen) {
            return planned(pin, f);
        }
    }
    let asked: Vec<String> = settings
        .find_links
        .iter()
        .chain(indexes)
        .map(Url::to_string)
        .collect();
    let on = if asked.is_empty() {
        "any index (the pin file says --no-index)".to_owned()
    } else {
        asked.join(", ")
    };
    let mut why = if !indexes.is_empty() && project_pages == 0 && seen.is_empty() {
        let pages = if settings.find_links.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = settings.find_links.iter().map(Url::to_string).collect();
            format!(", and no file of that version on {}", list.join(", "))
        };
        format!(
            "no project named {} on {} (the index answered 404){pages}: check the name",
            pin.name,
            indexes
                .iter()
                .map(Url::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else if project_pages > 0 && !versions_there && seen.is_empty() {
        format!(
            "{} has no release {} on {on} (no file of that version): check the version",
            pin.name, pin.version
        )
    } else {
        format!(
            "no wheel of {} {} for this interpreter on {on}",
            pin.name, pin.version
        )
    };
    if !unreadable.is_empty() {
        why.push_str(&format!("; unreadable: {}", unreadable.join("; ")));
    }
    if !seen.is_empty() {
        why.push_str(&format!(
            "; there for other interpreters or platforms: {}",
            seen.join(", ")
        ));
    }
    Err(Outcome::Unavailable(why))
}

/// Whether an index file (a wheel or an sdist) is of version `version` of `name`.
fn is_version(filename: &str, name: &PackageName, version: &str) -> bool {
    if let Some(w) = WheelFilename::parse(filename) {
        return PackageName::new(&w.name) == *name
            && crate::finder::same_version(&w.version, version);
    }
    // an sdist: NAME-VERSION.tar.gz or .zip (the name may itself hold dashes)
    let stem = [".tar.gz", ".zip", ".tar.bz2", ".tgz"]
        .iter()
        .find_map(|ext| filename.strip_suffix(ext));
    stem.and_then(|s| s.rsplit_once('-')).is_some_and(|(n, v)| {
        PackageName::new(n) == *name && crate::finder::same_version(v, version)
    })
}

/// The file of a page that is the pinned version, accepted by the pin's hashes, with the
/// tags the interpreter prefers most; the names of wheels of that version for other
/// interpreters go into `seen`.
fn best_file(
    files: Vec<index::IndexFile>,
    pin: &Pin,
    name: &PackageName,
    rank: &TagRank,
    seen: &mut Vec<String>,
) -> Option<index::IndexFile> {
    let mut best: Option<(usize, index::IndexFile)> = None;
    for f in files {
        let Some(w) = WheelFilename::parse(&f.filename) else {
            continue;
        };
        if PackageName::new(&w.name) != *name
            || !crate::finder::same_version(&w.version, &pin.version)
        {
            continue;
        }
        // a pin's --hash options name the files it accepts
        if !pin.hashes.is_empty() && f.sha256.as_ref().is_some_and(|h| !pin.hashes.contains(h)) {
            continue;
        }
        match rank.rank(&w.tags) {
            Some(r) if best.as_ref().is_none_or(|(b, _)| r < *b) => best = Some((r, f)),
            Some(_) => {}
            None => seen.push(f.filename),
        }
    }
    best.map(|(_, f)| f)
}

/// The download of a file a page listed, checked against the pin's hashes, else the page's.
fn planned(pin: &Pin, f: index::IndexFile) -> Result<Planned, Outcome> {
    let (expected, expected_from) = if !pin.hashes.is_empty() {
        (pin.hashes.clone(), "the pin")
    } else {
        (f.sha256.into_iter().collect(), "the index")
    };
    Ok(Planned {
        filename: safe_filename(&f.filename)?,
        url: f.url,
        expected,
        expected_from,
    })
}

/// The lock's wheel with a URL whose tags the interpreter prefers.
fn plan_locked(pin: &Pin, rank: &TagRank) -> Result<Planned, Outcome> {
    let mut best: Option<(usize, &crate::pins::LockedWheel, Url)> = None;
    for w in &pin.wheels {
        let Some(url) = w.url.as_deref().and_then(|u| Url::parse(u).ok()) else {
            continue;
        };
        if !matches!(url.scheme(), "http" | "https") {
            continue;
        }
        let Some(r) = WheelFilename::parse(&w.filename).and_then(|f| rank.rank(&f.tags)) else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _, _)| r < *b) {
            best = Some((r, w, url));
        }
    }
    let Some((_, w, url)) = best else {
        return Err(Outcome::Unavailable(
            "the lock gives no http(s) URL for a wheel that fits this interpreter".into(),
        ));
    };
    let mut expected = pin.hashes.clone();
    expected.extend(w.sha256.clone());
    Ok(Planned {
        filename: safe_filename(&w.filename)?,
        url,
        expected,
        expected_from: "the lock",
    })
}

/// A wheel file name from an index or a lock, refused if it could name another place.
fn safe_filename(f: &str) -> Result<String, Outcome> {
    if f.contains(['/', '\\']) || f.starts_with('.') || WheelFilename::parse(f).is_none() {
        return Err(Outcome::Failed(format!("`{f}` is not a wheel file name")));
    }
    Ok(f.to_owned())
}

/// A progress bar for the downloads, on a terminal only: files done, and MiB so far.
struct Progress {
    bar: indicatif::ProgressBar,
    bytes: AtomicU64,
}

impl Progress {
    fn new(files: usize) -> Progress {
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal();
        let target = if terminal {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::hidden()
        };
        let bar = indicatif::ProgressBar::with_draw_target(Some(files as u64), target);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message("downloading wheels");
        if terminal {
            // (redrawn while a slow download sends nothing)
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        Progress {
            bar,
            bytes: AtomicU64::new(0),
        }
    }

    fn bytes(&self, n: i64) {
        let total = if n >= 0 {
            self.bytes.fetch_add(n as u64, Ordering::Relaxed) + n as u64
        } else {
            self.bytes.fetch_sub(n.unsigned_abs(), Ordering::Relaxed) - n.unsigned_abs()
        };
        self.bar.set_message(format!(
            "downloading wheels, {:.1} MiB",
            total as f64 / (1 << 20) as f64
        ));
    }

    fn file_done(&self) {
        self.bar.inc(1);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_files_are_told_apart_by_version() {
        let name = PackageName::new("Foo_Bar");
        assert!(is_version("foo_bar-1.0-py3-none-any.whl", &name, "1.0"));
        assert!(is_version("foo-bar-1.0.tar.gz", &name, "1.0"));
        assert!(is_version("Foo_Bar-1.0.zip", &name, "1.0"));
        assert!(!is_version("foo_bar-1.1-py3-none-any.whl", &name, "1.0"));
        assert!(!is_version("foo-bar-baz-1.0.tar.gz", &name, "1.0"));
        assert!(!is_version("foo_bar-1.0.exe", &name, "1.0"));
    }

    #[test]
    fn index_order_and_sources() {
        let urls = |v: Vec<Url>| v.into_iter().map(String::from).collect::<Vec<_>>();
        let file_extra = [
            "https://c.example/s/".to_string(),
            "https://b.example/simple/".to_string(),
        ];
        let file = FileIndexes {
            index_url: Some("https://ignored.example/"),
            extra: &file_extra,
            no_index: false,
        };
        let mut logins = auth::Logins::default();
        let got = indexes(
            Some("https://a.example/simple"),
            &["https://b.example/simple/".into()],
            &file,
            &mut logins,
        )
        .unwrap();
        assert_eq!(
            urls(got),
            [
                "https://a.example/simple",
                "https://b.example/simple/",
                "https://c.example/s/"
            ]
        );
        let file = FileIndexes {
            index_url: Some("http://f.example/simple/"),
            ..Default::default()
        };
        let got = indexes(None, &[], &file, &mut logins).unwrap();
        assert_eq!(urls(got), ["http://f.example/simple/"]);
        // --no-index in the file: none, unless the command line names one
        let file = FileIndexes {
            index_url: Some("http://f.example/simple/"),
            extra: &file_extra,
            no_index: true,
        };
        assert!(indexes(None, &[], &file, &mut logins).unwrap().is_empty());
        let got = indexes(Some("https://a.example/s/"), &[], &file, &mut logins).unwrap();
        assert_eq!(urls(got), ["https://a.example/s/"]);
        let none = FileIndexes::default();
        let e = indexes(Some("ftp://x/"), &[], &none, &mut logins).unwrap_err();
        assert!(e.contains("--index-url") && e.contains("ftp://x/"), "{e}");
        let e = indexes(Some("ftp://u:secret@x/"), &[], &none, &mut logins).unwrap_err();
        assert!(
            e.contains("ftp://u:****@x/") && !e.contains("secret"),
            "{e}"
        );
        // a login leaves the URL for `logins`
        let got = indexes(
            None,
            &["https://u:secret@x.example/simple/".into()],
            &none,
            &mut logins,
        )
        .unwrap();
        assert_eq!(urls(got)[1], "https://x.example/simple/");
        let login = logins.for_url(&Url::parse("https://x.example/f/a.whl").unwrap());
        assert_eq!(login.map(|l| l.password), Some("secret".to_owned()));
    }

    #[test]
    fn lock_urls_are_chosen_by_tags() {
        let w = |f: &str, url: Option<&str>| crate::pins::LockedWheel {
            filename: f.into(),
            path: None,
            url: url.map(str::to_owned),
            sha256: Some("ab".repeat(32)),
        };
        let pin = Pin {
            name: "x".into(),
            version: "1".into(),
            hashes: vec![],
            wheels: vec![
                w(
                    "x-1-py3-none-any.whl",
                    Some("https://f.example/x-1-py3-none-any.whl"),
                ),
                w(
                    "x-1-cp311-cp311-linux_x86_64.whl",
                    Some("https://f.example/x-1-cp311-cp311-linux_x86_64.whl"),
                ),
                w("x-1-cp312-cp312-linux_x86_64.whl", None),
            ],
            origin: "t".into(),
        };
        let rank = TagRank::new(&[
            "cp311-cp311-linux_x86_64".to_string(),
            "py3-none-any".to_string(),
        ]);
        let p = plan_locked(&pin, &rank).ok().unwrap();
        assert_eq!(p.filename, "x-1-cp311-cp311-linux_x86_64.whl");
        assert_eq!(p.expected, ["ab".repeat(32)]);
        let only_312 = TagRank::new(&["cp312-cp312-linux_x86_64".to_string()]);
        assert!(matches!(
            plan_locked(&pin, &only_312),
            Err(Outcome::Unavailable(_))
        ));
        assert!(safe_filename("../x-1-py3-none-any.whl").is_err());
    }
}
