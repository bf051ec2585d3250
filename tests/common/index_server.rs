//! A package index served on 127.0.0.1 for the fetch tests: the Simple API (PEP 691 JSON,
//! or PEP 503 HTML) for a set of real wheels, and the wheel files themselves, on a port of
//! its own, stopped when dropped. Switches make it misbehave the ways a real index or
//! network does: corrupt bytes, a connection cut in the middle of a body, the whole server
//! going away in the middle of a download, slow bodies; it counts the requests it gets.
//!
//! Under `/private/` the same index and files need the login [`LOGIN`] (HTTP basic auth;
//! 401 otherwise), and `/flat/` (or `/private/flat/`) is a flat page of links to every
//! wheel, as `--find-links` URLs name.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One wheel the index serves.
#[derive(Debug, Clone)]
pub struct Served {
    pub path: PathBuf,
    pub filename: String,
    /// normalized project name
    pub project: String,
    pub sha256: String,
}

/// The user and password `/private/` asks for.
pub const LOGIN: (&str, &str) = ("tester", "s3cret-pw");

#[derive(Default)]
pub struct Switches {
    /// Serve the HTML form even to a client asking for JSON.
    pub html_only: AtomicBool,
    /// Flip a byte in the middle of every wheel served.
    pub corrupt: AtomicBool,
    /// Cut this many wheel responses after half their body (then serve whole ones).
    pub cut_next: AtomicUsize,
    /// After half the body of the next wheel, stop the whole server.
    pub stop_mid_body: AtomicBool,
    /// Pause between chunks of a wheel body, in milliseconds.
    pub slow_ms: AtomicUsize,
}

struct Shared {
    wheels: Vec<Served>,
    switches: Switches,
    requests: Mutex<Vec<String>>,
    /// the Authorization header of each request (None: there was none), in order
    logins: Mutex<Vec<Option<String>>>,
    stopping: AtomicBool,
    addr: SocketAddr,
}

pub struct IndexServer {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn normalize(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

impl IndexServer {
    /// Serves the given wheel files.
    pub fn start(wheels: &[PathBuf]) -> IndexServer {
        assert!(!wheels.is_empty(), "an index of nothing tests nothing");
        let wheels = wheels
            .iter()
            .map(|p| {
                let filename = p.file_name().unwrap().to_string_lossy().into_owned();
                Served {
                    project: normalize(filename.split('-').next().unwrap()),
                    sha256: sha256_hex(p),
                    path: p.clone(),
                    filename,
                }
            })
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let shared = Arc::new(Shared {
            wheels,
            switches: Switches::default(),
            requests: Mutex::new(Vec::new()),
            logins: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            addr: listener.local_addr().unwrap(),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(&s, conn);
                });
            }
            // the listener is dropped here: new connections are refused
        });
        IndexServer {
            shared,
            accept: Some(accept),
        }
    }

    pub fn switches(&self) -> &Switches {
        &self.shared.switches
    }

    /// `http://127.0.0.1:PORT/simple/`
    pub fn index_url(&self) -> String {
        format!("http://{}/simple/", self.shared.addr)
    }

    /// The URL of a served wheel.
    pub fn file_url(&self, filename: &str) -> String {
        format!("http://{}/files/{filename}", self.shared.addr)
    }

    pub fn wheels(&self) -> &[Served] {
        &self.shared.wheels
    }

    /// The paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// `http://127.0.0.1:PORT/private/simple/`, with `user:password@` when `login`.
    pub fn private_index_url(&self, login: Option<(&str, &str)>) -> String {
        let at = login.map(|(u, p)| format!("{u}:{p}@")).unwrap_or_default();
        format!("http://{at}{}/private/simple/", self.shared.addr)
    }

    /// `http://127.0.0.1:PORT/flat/`: one page of links to every wheel.
    pub fn flat_url(&self) -> String {
        format!("http://{}/flat/", self.shared.addr)
    }

    /// The Authorization header of each request so far (None where there was none).
    pub fn logins(&self) -> Vec<Option<String>> {
        self.shared.logins.lock().unwrap().clone()
    }

    /// How many requests asked for this path's suffix.
    pub fn count(&self, suffix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.ends_with(suffix))
            .count()
    }

    /// Stops accepting connections; what is under way finishes.
    pub fn stop(&mut self) {
        stop(&self.shared);
        if let Some(t) = self.accept.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for IndexServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stop(shared: &Shared) {
    if !shared.stopping.swap(true, Ordering::SeqCst) {
        // wake the accept loop, which then sees `stopping`
        let _ = TcpStream::connect(shared.addr);
    }
}

fn serve(s: &Shared, mut conn: TcpStream) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    if s.stopping.load(Ordering::SeqCst) {
        return Ok(());
    }
    s.requests.lock().unwrap().push(path.clone());
    let login = headers.get("authorization").cloned();
    s.logins.lock().unwrap().push(login.clone());
    let (prefix, path) = match path.strip_prefix("/private") {
        Some(rest) => {
            use base64::Engine;
            let wanted = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", LOGIN.0, LOGIN.1))
            );
            if login.as_deref() != Some(wanted.as_str()) {
                return respond(
                    &mut conn,
                    "401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"test\"",
                    "text/plain",
                    b"login needed",
                );
            }
            ("/private", rest.to_owned())
        }
        None => ("", path),
    };
    let sw = &s.switches;
    if path == "/flat/" || path == "/flat" {
        let links: String = s
            .wheels
            .iter()
            .map(|w| {
                format!(
                    "<a href=\"../files/{f}#sha256={h}\">{f}</a><br/>\n",
                    f = w.filename,
                    h = w.sha256
                )
            })
            .collect();
        let body = format!("<!DOCTYPE html><html><body>\n{links}</body></html>\n");
        return respond(&mut conn, "200 OK", "text/html", body.as_bytes());
    }
    if let Some(project) = path
        .strip_prefix("/simple/")
        .map(|p| p.trim_end_matches('/'))
    {
        let files: Vec<&Served> = s.wheels.iter().filter(|w| w.project == project).collect();
        if files.is_empty() {
            return respond(&mut conn, "404 Not Found", "text/plain", b"not found");
        }
        let wants_json = headers
            .get("accept")
            .is_some_and(|a| a.contains("application/vnd.pypi.simple.v1+json"));
        if wants_json && !sw.html_only.load(Ordering::SeqCst) {
            let list: Vec<String> = files
                .iter()
                .map(|w| {
                    format!(
                        r#"{{"filename": "{f}", "url": "../../files/{f}", "hashes": {{"sha256": "{h}"}}, "yanked": false}}"#,
                        f = w.filename,
                        h = w.sha256
                    )
                })
                .collect();
            let body = format!(
                r#"{{"meta": {{"api-version": "1.1"}}, "name": "{project}", "files": [{}]}}"#,
                list.join(", ")
            );
            return respond(
                &mut conn,
                "200 OK",
                "application/vnd.pypi.simple.v1+json",
                body.as_bytes(),
            );
        }
        let links: String = files
            .iter()
            .map(|w| {
                format!(
                    "<a href=\"{prefix}/files/{f}#sha256={h}\">{f}</a><br/>\n",
                    f = w.filename,
                    h = w.sha256
                )
            })
            .collect();
        let body = format!(
            "<!DOCTYPE html><html><body><h1>Links for {project}</h1>\n{links}</body></html>\n"
        );
        return respond(&mut conn, "200 OK", "text/html", body.as_bytes());
    }
    let Some(w) = path
        .strip_prefix("/files/")
        .and_then(|f| s.wheels.iter().find(|w| w.filename == f))
    else {
        return respond(&mut conn, "404 Not Found", "text/plain", b"not found");
    };
    let mut body = std::fs::read(&w.path)?;
    if sw.corrupt.load(Ordering::SeqCst) {
        let mid = body.len() / 2;
        body[mid] ^= 0xff;
    }
    let cut = sw
        .cut_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let stop_now = sw.stop_mid_body.swap(false, Ordering::SeqCst);
    write!(
        conn,
        // (cached for good, as PyPI says of its files, so pip keeps them in its HTTP cache:
        // it caches by max-age only with a Date, which a fixed one in the past serves)
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nCache-Control: max-age=365000000, immutable, public\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    let half = body.len() / 2;
    let mut sent = 0;
    for chunk in body.chunks(64 << 10) {
        if (cut || stop_now) && sent + chunk.len() > half {
            conn.write_all(&chunk[..half - sent])?;
            conn.flush()?;
            if stop_now {
                stop(s);
            }
            // cut: the client sees the connection close before the announced length
            conn.shutdown(std::net::Shutdown::Both)?;
            return Ok(());
        }
        conn.write_all(chunk)?;
        sent += chunk.len();
        let ms = sw.slow_ms.load(Ordering::SeqCst);
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms as u64));
        }
    }
    conn.flush()
}

fn respond(conn: &mut TcpStream, status: &str, ctype: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(body)?;
    conn.flush()
}
