//! Fetching the wheels no local source has, from an index the test serves on 127.0.0.1
//! (tests/common/index_server.rs) out of the shared real wheels, never the internet: a
//! pylock.toml's URLs, requirements pins looked up on the index (JSON and HTML), a wrong
//! hash, a connection cut and a server gone mid-download, two fetches of one wheel at once,
//! `--offline`, an index that needs a login (in its URL, or in a netrc file), and
//! `--find-links` pages. Each test has a venvfs cache directory (and so a wheel store) of its own.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::index_server::{IndexServer, LOGIN};
use common::*;

/// venvfs allowed to fetch, with its cache (and wheel store) in `xdg`, and no index, proxy
/// or offline setting from the environment.
fn fetching(xdg: &Path) -> Command {
    let mut cmd = venvfs();
    cmd.env_remove("VENVFS_OFFLINE")
        .env("XDG_CACHE_HOME", xdg)
        .env_remove("UV_INDEX_URL")
        .env_remove("PIP_INDEX_URL")
        // no login from the user's own ~/.netrc
        .env("NETRC", xdg.join("no-netrc"));
    for proxy in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(proxy);
    }
    cmd
}

/// The wheels in the store under `xdg`, and a check that no partial download is left.
fn stored(xdg: &Path) -> Vec<PathBuf> {
    let root = xdg.join("venvfs/wheels");
    let tmp = root.join(".tmp");
    if tmp.exists() {
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
        assert!(left.is_empty(), "partial downloads left: {left:?}");
    }
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(&root) else {
        return out;
    };
    for d in dirs.flatten() {
        if d.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            out.push(f.path());
        }
    }
    out.sort();
    out
}

fn name_version(wheel: &Path) -> (String, String) {
    let n = wheel.file_name().unwrap().to_string_lossy().into_owned();
    let mut parts = n.split('-');
    (
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
    )
}

/// A pylock.toml that names each wheel by its URL on `server` and its sha256.
fn pylock(server: &IndexServer, hash_of: impl Fn(&str, &str) -> String) -> String {
    let mut text =
        "lock-version = \"1.0\"\ncreated-by = \"test\"\nrequires-python = \">=3.11\"\n".to_string();
    for w in server.wheels() {
        let (name, version) = name_version(&w.path);
        text.push_str(&format!(
            "\n[[packages]]\nname = \"{name}\"\nversion = \"{version}\"\n\
             wheels = [{{ url = \"{}\", hashes = {{ sha256 = \"{}\" }} }}]\n",
            server.file_url(&w.filename),
            hash_of(&w.filename, &w.sha256)
        ));
    }
    text
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn wheels(prefixes: &[&str]) -> Vec<PathBuf> {
    prefixes.iter().map(|p| shared_wheel(p)).collect()
}

/// Each stored wheel is byte-identical to the shared wheel of its name.
fn assert_store_matches(store: &[PathBuf], sources: &[PathBuf]) {
    for s in store {
        let src = sources
            .iter()
            .find(|w| w.file_name() == s.file_name())
            .unwrap_or_else(|| panic!("{} is not one of the served wheels", s.display()));
        assert!(
            std::fs::read(s).unwrap() == std::fs::read(src).unwrap(),
            "{} differs from {}",
            s.display(),
            src.display()
        );
    }
}

#[test]
fn a_pylock_with_urls_is_fetched_checked_served_and_kept() {
    let s = Scratch::new();
    let xdg = s.path("xdg");
    let sources = wheels(&["six-", "idna-", "certifi-", "markupsafe-"]);
    let mut server = IndexServer::start(&sources);
    let lock = s.path("pylock.toml");
    std::fs::write(&lock, pylock(&server, |_, h| h.to_owned())).unwrap();
    let out = run(fetching(&xdg)
        .arg("sync")
        .arg(&s.venv)
        .arg(&lock)
        .arg("--no-cache"));
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("Installed 4 packages"), "{stdout}");
    assert!(
        stderr(&out).contains("Downloaded 4 wheels"),
        "{}",
        stderr(&out)
    );
    let store = stored(&xdg);
    assert_eq!(store.len(), 4, "{store:?}");
    assert_store_matches(&store, &sources);
    // the layers are the stored .whl files themselves
    let manifest = std::fs::read_to_string(s.venv.join(".venvfs/manifest.toml")).unwrap();
    for w in &store {
        assert!(
            manifest.contains(&*w.to_string_lossy()),
            "{} not in {manifest}",
            w.display()
        );
    }
    assert_eq!(server.count(".whl"), 4);
    {
        let _m = s.mount();
        s.python_ok(
            "import six, idna, certifi, markupsafe, markupsafe._speedups\n\
             assert idna.encode('ex\u{e4}mple.org') == b'xn--exmple-cua.org'\n\
             assert str(markupsafe.escape('<a>')) == '&lt;a&gt;'",
        );
    }
    // serving them changed nothing
    assert_eq!(stored(&xdg), store);
    assert_store_matches(&store, &sources);
    // with the index gone, the store is enough: nothing to fetch, offline or not
    server.stop();
    let requests = server.requests().len();
    for offline in [false, true] {
        let mut cmd = fetching(&xdg);
        cmd.arg("sync").arg(&s.venv).arg(&lock).arg("--no-cache");
        if offline {
            cmd.arg("--offline");
        } else {
            // an index setting that is unusable matters only when an index is needed
            cmd.env("PIP_INDEX_URL", "https://user:secret@index.invalid/simple/");
        }
        let out = run_ok(&mut cmd);
        assert!(out.starts_with("Audited 4 packages"), "{out}");
    }
    assert_eq!(server.requests().len(), requests);
    // another venv takes the same wheels from the store without a download
    let other = s.path("other");
    run_ok(venvfs().arg("create").arg(&other));
    let out = run(fetching(&xdg).arg("sync").arg(&other).arg(&lock));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Downloaded"), "{}", stderr(&out));
}

#[test]
fn requirements_pins_are_looked_up_on_the_index() {
    let s = Scratch::new();
    let xdg = s.path("xdg");
    let sources = wheels(&["six-", "click-", "idna-", "markupsafe-"]);
    let server = IndexServer::start(&sources);
    let reqs = s.path("requirements.txt");
    std::fs::write(
        &reqs,
        "six==1.17.0\nclick==8.5.1\nMarkupSafe==3.0.4 --hash=sha256:6da83a088f8ef93b2d483a8232a4dbf4d69d3d8496b568a03c56becac43e1808\n",
    )
    .unwrap();
    // the JSON form, the index named on the command line
    let out = run(fetching(&xdg)
        .arg("sync")
        .arg(&s.venv)
        .arg(&reqs)
        .arg("--index-url")
        .arg(server.index_url()));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("Installed 3 packages"),
        "{out:?}"
    );
    let requests = server.requests();
    for page in ["/simple/six/", "/simple/click/", "/simple/markupsafe/"] {
        assert!(requests.iter().any(|r| r == page), "{requests:?}");
    }
    assert_eq!(stored(&xdg).len(), 3);
    assert_store_matches(&stored(&xdg), &sources);

    // the HTML form; `install NAME==VERSION` fetches too; PIP_INDEX_URL names the index
    server
        .switches()
        .html_only
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // (into a mounted venv, which takes the change live)
    let other = s.path("other");
    run_ok(venvfs().arg("create").arg(&other));
    {
        let _m = Mount::new(&other);
        let out = run(fetching(&xdg)
            .env("PIP_INDEX_URL", server.index_url())
            .arg("install")
            .arg(&other)
            .arg("idna==3.20")
            .arg("six==1.17.0"));
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(" + idna==3.20"),
            "{out:?}"
        );
        run_ok(venv_program(&other, "python").args([
            "-c",
            "import idna, six; assert idna.decode('xn--exmple-cua.org') == 'ex\\u00e4mple.org'",
        ]));
    }
    assert_store_matches(&stored(&xdg), &sources);
    assert_eq!(server.count("/files/idna-3.20-py3-none-any.whl"), 1);
    // six was in the store already
    assert_eq!(server.count("/files/six-1.17.0-py2.py3-none-any.whl"), 1);
    assert_eq!(stored(&xdg).len(), 4);

    // a requirements file's own -i; a version the index does not have is listed with why
    std::fs::write(
        &reqs,
        format!(
            "-i {}\nsix==1.17.0\nclick==9.9\nnothere==1.0\n",
            server.index_url()
        ),
    )
    .unwrap();
    let manifest = std::fs::read(s.venv.join(".venvfs/manifest.toml")).unwrap();
    let out = run(fetching(&xdg).arg("sync").arg(&s.venv).arg(&reqs));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no usable wheel for 2 of 3"), "{err}");
    // (what is wrong with each: the version, the name)
    assert!(
        err.contains("click==9.9") && err.contains("click has no release 9.9"),
        "{err}"
    );
    assert!(
        err.contains(&format!("nothere==1.0  ({}:4)", reqs.display()))
            && err.contains("no project named nothere on")
            && err.contains("check the name"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(s.venv.join(".venvfs/manifest.toml")).unwrap(),
        manifest,
        "the venv changed"
    );
}

#[test]
fn a_wrong_hash_is_refused_naming_the_package_and_the_url() {
    let s = Scratch::new();
    let xdg = s.path("xdg");
    let sources = wheels(&["six-", "idna-"]);
    let server = IndexServer::start(&sources);
    let lock = s.path("pylock.toml");
    let wrong = "0".repeat(64);
    std::fs::write(
        &lock,
        pylock(&server, |f, h| {
            if f.starts_with("six-") {
                wrong.clone()
            } else {
                h.to_owned()
            }
        }),
    )
    .unwrap();
    let before = contents(&s.venv);
    let out = run(fetching(&xdg).arg("sync").arg(&s.venv).arg(&lock));
    assert!(!out.status.success());
    let err = stderr(&out);
    let url = server.file_url("six-1.17.0-py2.py3-none-any.whl");
    assert!(
        err.contains("six==1.17.0") && err.contains(&format!("{url} has sha256 ")),
        "{err}"
    );
    assert!(err.contains(&format!("the lock says {wrong}")), "{err}");
    assert!(
        !err.contains("idna=="),
        "only the wrong one is named: {err}"
    );
    // the wrong file was not kept (the right one is: it is valid for any later run)
    let store = stored(&xdg);
    assert!(
        store.iter().all(|p| !p.to_string_lossy().contains("six-")),
        "{store:?}"
    );
    assert_eq!(contents(&s.venv), before, "the venv changed");

    // bytes that do not match the index's own hash are refused the same way
    server
        .switches()
        .corrupt
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let reqs = s.path("r.txt");
    std::fs::write(&reqs, "six==1.17.0\n").unwrap();
    let out = run(fetching(&xdg)
        .arg("sync")
        .arg(&s.venv)
        .arg(&reqs)
        .arg("--index-url")
        .arg(server.index_url()));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("six==1.17.0") && err.contains(&url) && err.contains("the index says"),
        "{err}"
    );
    assert!(stored(&xdg)
        .iter()
        .all(|p| !p.to_string_lossy().contains("six-")));
    assert_eq!(contents(&s.venv), before, "the venv changed");
}

#[test]
fn a_cut_download_is_retried_and_a_server_gone_mid_download_fails_cleanly() {
    let s = Scratch::new();
    let sources = wheels(&["six-", "click-"]);
    let mut server = IndexServer::start(&sources);
    let lock = s.path("pylock.toml");
    std::fs::write(&lock, pylock(&server, |_, h| h.to_owned())).unwrap();
    use std::sync::atomic::Ordering::SeqCst;

    // one response cut short: the retry gets the whole file
    let xdg = s.path("xdg-retry");
    server.switches().cut_next.store(1, SeqCst);
    let out = run(fetching(&xdg).arg("sync").arg(&s.venv).arg(&lock));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.count(".whl"), 3, "{:?}", server.requests());
    assert_eq!(stored(&xdg).len(), 2);
    assert_store_matches(&stored(&xdg), &sources);

    // the server goes away in the middle of a body: retries find nothing to connect to
    let venv = s.path("v2");
    run_ok(venvfs().arg("create").arg(&venv));
    let before = contents(&venv);
    let xdg = s.path("xdg-gone");
    server.switches().slow_ms.store(0, SeqCst);
    server.switches().stop_mid_body.store(true, SeqCst);
    let out = run(fetching(&xdg).arg("sync").arg(&venv).arg(&lock));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("could not be fetched"), "{err}");
    // the wheel cut in half is named with its URL (the other may have finished first)
    let named = sources.iter().any(|w| {
        let f = w.file_name().unwrap().to_string_lossy();
        let (name, version) = name_version(w);
        err.contains(&format!("{name}=={version}")) && err.contains(&server.file_url(&f))
    });
    assert!(named, "{err}");
    assert!(err.contains("tried 4 times"), "{err}");
    let store = stored(&xdg);
    assert!(store.len() < 2, "{store:?}");
    assert_store_matches(&store, &sources);
    assert_eq!(contents(&venv), before, "the venv changed");

    // an index that cannot be reached is named, with the package
    server.stop();
    let reqs = s.path("r.txt");
    std::fs::write(&reqs, "idna==3.20\n").unwrap();
    let out = run(fetching(&xdg)
        .arg("sync")
        .arg(&venv)
        .arg(&reqs)
        .arg("--index-url")
        .arg(server.index_url()));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("idna==3.20")
            && err.contains(&format!("the index {} cannot be read", server.index_url())),
        "{err}"
    );
    assert_eq!(contents(&venv), before, "the venv changed");
}

#[test]
fn two_fetches_of_the_same_wheel_at_once_both_succeed_with_one_copy() {
    let s = Scratch::new();
    let xdg = s.path("xdg");
    let sources = wheels(&["numpy-"]);
    let server = IndexServer::start(&sources);
    // slow enough (about 1.3 s for numpy) that the two downloads overlap
    server
        .switches()
        .slow_ms
        .store(5, std::sync::atomic::Ordering::SeqCst);
    let lock = s.path("pylock.toml");
    std::fs::write(&lock, pylock(&server, |_, h| h.to_owned())).unwrap();
    let venvs = [s.path("a"), s.path("b")];
    for v in &venvs {
        run_ok(venvfs().arg("create").arg(v));
    }
    let children: Vec<_> = venvs
        .iter()
        .map(|v| {
            fetching(&xdg)
                .arg("sync")
                .arg(v)
                .arg(&lock)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let downloads = server.count(".whl");
    assert!((1..=2).contains(&downloads), "{downloads}");
    let store = stored(&xdg);
    assert_eq!(store.len(), 1, "{store:?}");
    assert_store_matches(&store, &sources);
    for v in &venvs {
        let manifest = std::fs::read_to_string(v.join(".venvfs/manifest.toml")).unwrap();
        assert!(
            manifest.contains(&*store[0].to_string_lossy()),
            "{manifest}"
        );
    }
}

#[test]
fn offline_never_reaches_the_network() {
    let s = Scratch::new();
    let xdg = s.path("xdg");
    let sources = wheels(&["six-"]);
    let server = IndexServer::start(&sources);
    let lock = s.path("pylock.toml");
    std::fs::write(&lock, pylock(&server, |_, h| h.to_owned())).unwrap();
    let before = contents(&s.venv);
    for offline_env in [false, true] {
        let mut cmd = fetching(&xdg);
        cmd.arg("sync").arg(&s.venv).arg(&lock);
        if offline_env {
            cmd.env("VENVFS_OFFLINE", "1");
        } else {
            cmd.arg("--offline");
        }
        let out = run(&mut cmd);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("no usable wheel for 1 of 1")
                && err.contains("--offline: nothing was fetched")
                && err.contains("six==1.17.0  ("),
            "{err}"
        );
    }
    let reqs = s.path("r.txt");
    std::fs::write(&reqs, "six==1.17.0\n").unwrap();
    let out = run(fetching(&xdg)
        .args(["install", "--offline", "--index-url"])
        .arg(server.index_url())
        .arg(&s.venv)
        .arg("six==1.17.0"));
    assert!(!out.status.success(), "{}", stderr(&out));
    // a requirements file's --no-index keeps its pins off every index
    std::fs::write(&reqs, "--no-index\nsix==1.17.0\n").unwrap();
    let out = run(fetching(&xdg)
        .env("UV_INDEX_URL", server.index_url())
        .arg("sync")
        .arg(&s.venv)
        .arg(&reqs));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the pin file says --no-index"),
        "{}",
        stderr(&out)
    );
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    assert!(stored(&xdg).is_empty());
    assert_eq!(contents(&s.venv), before, "the venv changed");
}

/// The sync's output, which must not show the password anywhere.
fn no_password(out: &Output, password: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains(password), "the password was printed: {text}");
    text
}

#[test]
fn an_index_login_in_the_url_is_sent_and_never_printed() {
    let s = Scratch::new();
    let xdg = s.path("xdg");
    let sources = wheels(&["six-", "idna-"]);
    let server = IndexServer::start(&sources);
    let reqs = s.path("requirements.txt");
    std::fs::write(&reqs, "six==1.17.0\nidna==3.20\n").unwrap();
    // a wrong password: refused, and the message says so without showing it
    let out = run(fetching(&xdg)
        .arg("sync")
        .arg(&s.venv)
        .arg(&reqs)
        .arg("--no-cache")
        .arg("--index-url")
        .arg(server.private_index_url(Some((LOGIN.0, "wrong-pw-123")))));
    assert!(!out.status.success());
    let text = no_password(&out, "wrong-pw-123");
    assert!(
        text.contains("HTTP 401") && text.contains("login"),
        "{text}"
    );
    assert!(stored(&xdg).is_empty());
    // the right one: pages and files are fetched with it (RUST_LOG on: no log line shows it)
    let out = run(fetching(&xdg)
        .env("RUST_LOG", "debug")
        .arg("sync")
        .arg(&s.venv)
        .arg(&reqs)
        .arg("--no-cache")
        .arg("--index-url")
        .arg(server.private_index_url(Some(LOGIN))));
    let text = no_password(&out, LOGIN.1);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Installed 2 packages"), "{text}");
    assert_eq!(stored(&xdg).len(), 2);
    assert_store_matches(&stored(&xdg), &sources);
    assert_eq!(
        server.count("/private/files/six-1.17.0-py2.py3-none-any.whl"),
        1
    );
    // every request after the refused ones carried the login
    let logins = server.logins();
    assert!(
        logins.iter().rev().take(4).all(|l| l.is_some()),
        "{logins:?}"
    );
}

#[test]
fn an_index_login_comes_from_netrc() {
    let s = Scratch::new();
    let xdg = s.path("xdg");
    let sources = wheels(&["six-"]);
    let server = IndexServer::start(&sources);
    let reqs = s.path("requirements.txt");
    std::fs::write(&reqs, "six==1.17.0\n").unwrap();
    let netrc = s.path("netrc");
    std::fs::write(
        &netrc,
        format!(
            "machine example.org login x password y\nmachine 127.0.0.1\n  login {}\n  password {}\n",
            LOGIN.0, LOGIN.1
        ),
    )
    .unwrap();
    // UV_INDEX_URL names the index, without a login
    let out = run(fetching(&xdg)
        .env("NETRC", &netrc)
        .env("UV_INDEX_URL", server.private_index_url(None))
        .arg("sync")
        .arg(&s.venv)
        .arg(&reqs)
        .arg("--no-cache"));
    let text = no_password(&out, LOGIN.1);
    assert!(out.status.success(), "{text}");
    assert_eq!(stored(&xdg).len(), 1);
    // without the netrc file: a 401, which says where a login goes
    let other = s.path("other");
    run_ok(venvfs().arg("create").arg(&other));
    let out = run(fetching(&s.path("xdg2"))
        .env("UV_INDEX_URL", server.private_index_url(None))
        .arg("sync")
        .arg(&other)
        .arg(&reqs)
        .arg("--no-cache"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("~/.netrc"), "{}", stderr(&out));
}

#[test]
fn find_links_pages_are_read_before_the_index() {
    let s = Scratch::new();
    let xdg = s.path("xdg");
    let sources = wheels(&["six-", "idna-", "markupsafe-"]);
    let server = IndexServer::start(&sources);
    let reqs = s.path("requirements.txt");
    std::fs::write(&reqs, "six==1.17.0\nidna==3.20\nMarkupSafe==3.0.4\n").unwrap();
    // on the command line, with an index that is not there: never asked
    let out = run(fetching(&xdg)
        .arg("sync")
        .arg(&s.venv)
        .arg(&reqs)
        .arg("--no-cache")
        .arg("--find-links")
        .arg(server.flat_url())
        .arg("--index-url")
        .arg("http://127.0.0.1:9/simple/"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stored(&xdg).len(), 3);
    assert_store_matches(&stored(&xdg), &sources);
    // the page is read once for all the pins
    assert_eq!(server.count("/flat/"), 1, "{:?}", server.requests());
    assert!(!server.requests().iter().any(|r| r.contains("/simple/")));
    {
        let _m = s.mount();
        s.python_ok("import six, idna, markupsafe._speedups");
    }

    // a requirements file's own `-f URL`, behind a login given in the URL
    let xdg2 = s.path("xdg2");
    let other = s.path("other");
    run_ok(venvfs().arg("create").arg(&other));
    let private_flat = server
        .private_index_url(Some(LOGIN))
        .replace("/simple/", "/flat/");
    std::fs::write(&reqs, format!("-f {private_flat}\nsix==1.17.0\n")).unwrap();
    let out = run(fetching(&xdg2)
        .arg("sync")
        .arg(&other)
        .arg(&reqs)
        .arg("--no-cache")
        .arg("--index-url")
        .arg("http://127.0.0.1:9/simple/"));
    let text = no_password(&out, LOGIN.1);
    assert!(out.status.success(), "{text}");
    assert_eq!(stored(&xdg2).len(), 1);
    assert_eq!(
        server.count("/private/files/six-1.17.0-py2.py3-none-any.whl"),
        1
    );

    // a pin the page does not have falls through to the index, and the message names both
    std::fs::write(&reqs, "click==8.5.1\n").unwrap();
    let out = run(fetching(&xdg2)
        .arg("sync")
        .arg(&other)
        .arg(&reqs)
        .arg("--no-cache")
        .arg("--find-links")
        .arg(server.flat_url())
        .arg("--index-url")
        .arg(server.index_url()));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&server.flat_url()) && err.contains(&server.index_url()),
        "{err}"
    );
}

/// An HTTPS server on 127.0.0.1 whose certificate a CA of the test's own signed (as a
/// proxy that re-signs TLS does): fetching from it fails without that CA, names the cause,
/// and succeeds once `SSL_CERT_FILE` names a bundle holding it, as it does for uv and curl.
/// A bundle that cannot be read is an error naming it.
#[test]
fn ssl_cert_file_names_the_authorities_https_trusts() {
    let s = Scratch::new();
    let xdg = s.path("xdg");
    let certs = s.path("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&certs)
            .output()
            .expect("openssl (apt-get install openssl) makes the test's certificates");
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=venvfs test CA",
        "-days",
        "2",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        certs.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    // the wheels and their directory listing (a --find-links page), over HTTPS
    let files = s.path("files");
    std::fs::create_dir_all(&files).unwrap();
    let six = shared_wheel("six-");
    std::fs::copy(&six, files.join(six.file_name().unwrap())).unwrap();
    let server = r#"
import functools, http.server, ssl, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;
    let mut child = Command::new("python3")
        .args(["-c", server])
        .arg(&files)
        .arg(certs.join("srv.pem"))
        .arg(certs.join("srv.key"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut port,
    )
    .unwrap();
    let _server = Kill(child);
    let url = format!("https://127.0.0.1:{}/", port.trim());
    let reqs = s.path("requirements.txt");
    std::fs::write(&reqs, "six==1.17.0\n").unwrap();
    let sync = |cert: Option<&Path>| {
        let mut cmd = fetching(&xdg);
        cmd.arg("sync")
            .arg(&s.venv)
            .arg(&reqs)
            .arg("--no-cache")
            .args([
                "--find-links",
                &url,
                "--index-url",
                "http://127.0.0.1:9/simple/",
            ])
            .env_remove("SSL_CERT_DIR");
        match cert {
            Some(c) => cmd.env("SSL_CERT_FILE", c),
            None => cmd.env_remove("SSL_CERT_FILE"),
        };
        run(&mut cmd)
    };
    // the built-in roots do not know the test's CA
    let out = sync(None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("certificate"), "{}", stderr(&out));
    assert!(stored(&xdg).is_empty());
    // a bundle that is not there
    let out = sync(Some(&s.path("no-such.pem")));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("SSL_CERT_FILE") && stderr(&out).contains("no-such.pem"),
        "{}",
        stderr(&out)
    );
    // the bundle holding it
    let out = sync(Some(&certs.join("ca.pem")));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_store_matches(&stored(&xdg), std::slice::from_ref(&six));
    let _m = s.mount();
    s.python_ok("import six");
}

/// What pip downloaded is in its HTTP cache (here from this test's index, stopped
/// afterwards): `venvfs sync --offline` finds those wheels there (in pip's default place
/// for the same `XDG_CACHE_HOME`), keeps them in its own store, serves them, and leaves
/// pip's cache as it was.
#[test]
fn sync_takes_the_wheels_pip_downloaded_from_pips_cache() {
    let s = Scratch::new();
    let xdg = s.path("xdg");
    let sources = wheels(&["six-", "idna-", "markupsafe-"]);
    let mut server = IndexServer::start(&sources);
    let tools = s.path("tools");
    run_ok(Command::new("python3").args(["-m", "venv"]).arg(&tools));
    run_ok(
        Command::new(tools.join("bin/pip"))
            .args(["download", "-q", "--no-deps", "--dest"])
            .arg(s.path("downloads"))
            .args([
                "--index-url",
                &server.index_url(),
                "--trusted-host",
                "127.0.0.1",
            ])
            .args(["six", "idna", "markupsafe"])
            .env("PIP_CACHE_DIR", xdg.join("pip"))
            .env_remove("PIP_NO_CACHE_DIR")
            .env_remove("PIP_FIND_LINKS")
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
    );
    server.stop();
    let pip_cache = snapshot(&xdg.join("pip"));
    assert!(pip_cache.len() > 3, "pip cached nothing: {pip_cache:?}");
    let reqs = s.path("requirements.txt");
    std::fs::write(&reqs, pins(&sources)).unwrap();
    let out = run(fetching(&xdg)
        .args(["sync", "--offline"])
        .arg(&s.venv)
        .arg(&reqs));
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("Installed 3 packages"), "{stdout}");
    let store = stored(&xdg);
    assert_eq!(store.len(), 3, "{store:?}");
    assert_store_matches(&store, &sources);
    {
        let _m = s.mount();
        s.python_ok(
            "import six, idna, markupsafe, markupsafe._speedups\n\
             assert str(markupsafe.escape('<a>')) == '&lt;a&gt;'",
        );
    }
    assert_eq!(snapshot(&xdg.join("pip")), pip_cache, "pip's cache changed");
    assert_eq!(server.count(".whl"), 3, "pip's downloads only");
}
