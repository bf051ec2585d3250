//! HTTP for fetching: index pages and wheel files, over a blocking client (ureq, with rustls
//! and the Mozilla roots compiled in, so no system TLS library or certificate store is
//! needed; `SSL_CERT_FILE`/`SSL_CERT_DIR` replace the roots, see `tls.rs`;
//! `HTTPS_PROXY`/`NO_PROXY` are honoured).
//!
//! Transient failures are retried a few times with a growing pause: a connection that cannot
//! be made or breaks, a timeout, a body shorter than announced, and 408, 429 and 5xx answers.
//! Anything else (a 404, a 403, a bad URL) fails at once. A wheel's bytes are hashed as they
//! arrive; a retry starts the file and the hash over.

use std::io::{Read, Seek, Write};
use std::time::Duration;

use url::Url;

/// Tries per request: the first and three retries.
const ATTEMPTS: u32 = 4;
/// The pause before the first retry; it doubles each time.
const FIRST_PAUSE: Duration = Duration::from_millis(250);
/// Index pages larger than this are refused (PyPI's largest are a few MiB).
const PAGE_LIMIT: u64 = 64 << 20;

pub struct Http {
    agent: ureq::Agent,
    logins: super::auth::Logins,
    /// find-links pages read so far (one page serves every pin)
    flat_pages: std::sync::Mutex<std::collections::HashMap<Url, Result<Page, String>>>,
}

/// Why a request failed: worth another try, or not.
enum Failure {
    Transient(String),
    Permanent(String),
}

impl Failure {
    fn message(self) -> String {
        match self {
            Failure::Transient(m) | Failure::Permanent(m) => m,
        }
    }
}

/// A page that was found, or not (404 or 410: the index has no such project).
#[derive(Clone)]
pub enum Page {
    Found {
        content_type: String,
        body: String,
        /// where it was read, after redirects: relative links are resolved against it
        url: Url,
    },
    Missing,
}

impl Http {
    /// A client that sends `logins` to the origins they are for, trusting the certificate
    /// authorities of [`super::tls`].
    pub fn new(logins: super::auth::Logins) -> Result<Http, String> {
        let mut config = ureq::Agent::config_builder();
        if let Some(tls) = super::tls::config()? {
            config = config.tls_config(tls);
        }
        let config = config
            .http_status_as_error(false)
            .user_agent(concat!("venvfs/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            // a server that stops sending is a broken connection, retried
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build();
        Ok(Http {
            agent: config.into(),
            logins,
            flat_pages: Default::default(),
        })
    }

    /// A GET of `url` (whose login, if it has one, goes into a header, not the request
    /// line), with the login known for its origin.
    fn get(&self, url: &Url) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let req = self.agent.get(super::auth::strip(url).as_str());
        match self.logins.for_url(url) {
            Some(login) => req.header("Authorization", login.header()),
            None => req,
        }
    }

    /// GETs an index page.
    pub fn page(&self, url: &Url) -> Result<Page, String> {
        retrying(&super::auth::strip(url), || self.try_page(url))
    }

    /// GETs a find-links page once per run: later calls get the first answer.
    pub fn flat_page(&self, url: &Url) -> Result<Page, String> {
        let mut pages = self.flat_pages.lock().unwrap_or_else(|e| e.into_inner());
        // (held while reading: the other threads want this same page)
        pages
            .entry(url.clone())
            .or_insert_with(|| self.page(url))
            .clone()
    }

    fn try_page(&self, url: &Url) -> Result<Page, Failure> {
        use ureq::ResponseExt;
        let req = self.get(url);
        // (messages name the URL without its login)
        let url = &super::auth::strip(url);
        let mut resp = req
            .header("Accept", super::index::ACCEPT)
            .call()
            .map_err(|e| classify(url, e))?;
        let status = resp.status().as_u16();
        if status == 404 || status == 410 {
            return Ok(Page::Missing);
        }
        status_ok(url, status)?;
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("text/html")
            .to_owned();
        let final_url = Url::parse(&resp.get_uri().to_string()).unwrap_or_else(|_| url.clone());
        let body = resp
            .body_mut()
            .with_config()
            .limit(PAGE_LIMIT)
            .read_to_string()
            .map_err(|e| classify(url, e))?;
        Ok(Page::Found {
            content_type,
            body,
            url: final_url,
        })
    }

    /// GETs `url` into `out` (from its start, truncating it) and returns the sha256 of
    /// what was written. `progress` is told of every chunk (negative: a failed try's bytes
    /// taken back).
    pub fn download(
        &self,
        url: &Url,
        out: &mut std::fs::File,
        progress: &dyn Fn(i64),
    ) -> Result<String, String> {
        retrying(&super::auth::strip(url), || {
            out.set_len(0)
                .and_then(|()| out.rewind())
                .map_err(|e| Failure::Permanent(format!("cannot write the download: {e}")))?;
            let mut got = 0u64;
            let r = self.try_download(url, out, &mut |n| {
                got += n;
                progress(n as i64);
            });
            if r.is_err() {
                progress(-(got as i64));
            }
            r
        })
    }

    fn try_download(
        &self,
        url: &Url,
        out: &mut std::fs::File,
        progress: &mut dyn FnMut(u64),
    ) -> Result<String, Failure> {
        use sha2::Digest;
        let req = self.get(url);
        // (messages name the URL without its login)
        let url = &super::auth::strip(url);
        let resp = req.call().map_err(|e| classify(url, e))?;
        status_ok(url, resp.status().as_u16())?;
        let announced: Option<u64> = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let mut body = resp.into_body().into_reader();
        let mut hash = sha2::Sha256::new();
        let mut buf = vec![0u8; 256 << 10];
        let mut total = 0u64;
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Failure::Transient(format!(
                        "{url}: the connection broke after {total} bytes: {e}"
                    )))
                }
            };
            out.write_all(&buf[..n])
                .map_err(|e| Failure::Permanent(format!("cannot write the download: {e}")))?;
            hash.update(&buf[..n]);
            total += n as u64;
            progress(n as u64);
        }
        if let Some(len) = announced {
            if total != len {
                return Err(Failure::Transient(format!(
                    "{url}: the connection broke after {total} of {len} bytes"
                )));
            }
        }
        Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// Runs `attempt` until it succeeds, fails for good, or has failed [`ATTEMPTS`] times.
fn retrying<T>(url: &Url, mut attempt: impl FnMut() -> Result<T, Failure>) -> Result<T, String> {
    let mut pause = FIRST_PAUSE;
    for n in 1..=ATTEMPTS {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(Failure::Transient(m)) if n < ATTEMPTS => {
                tracing::debug!("{m}; trying {url} again in {pause:?}");
                std::thread::sleep(pause);
                pause *= 2;
            }
            Err(Failure::Transient(m)) => {
                return Err(format!("{m} (tried {ATTEMPTS} times)"));
            }
            Err(f) => return Err(f.message()),
        }
    }
    unreachable!("the last attempt returns")
}

fn status_ok(url: &Url, status: u16) -> Result<(), Failure> {
    match status {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => Err(Failure::Transient(format!(
            "{url}: the server answered HTTP {status}"
        ))),
        401 | 403 => Err(Failure::Permanent(format!(
            "{url}: the server answered HTTP {status}: it needs a login that venvfs has not \
             (give it in the URL, https://USER:PASSWORD@host/..., or in ~/.netrc) or refuses \
             the one sent"
        ))),
        _ => Err(Failure::Permanent(format!(
            "{url}: the server answered HTTP {status}"
        ))),
    }
}

fn classify(url: &Url, e: ureq::Error) -> Failure {
    use ureq::Error as E;
    match e {
        E::Io(_) | E::Timeout(_) | E::ConnectionFailed | E::HostNotFound | E::Protocol(_) => {
            Failure::Transient(format!("{url}: cannot reach it: {e}"))
        }
        E::StatusCode(s) => match status_ok(url, s) {
            Err(f) => f,
            Ok(()) => Failure::Permanent(format!("{url}: {e}")),
        },
        _ => Failure::Permanent(format!("{url}: {e}")),
    }
}
