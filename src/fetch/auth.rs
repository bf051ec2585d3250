//! Logins for indexes and find-links pages, sent as HTTP basic auth (RFC 7617), and URLs
//! that are safe to print.
//!
//! Where a login comes from, as uv and pip take it:
//! - the URL itself (`https://user:pass@host/simple`): taken out of the URL when the
//!   index is configured, and remembered for its origin (scheme, host and port), so that the
//!   files the index links to on the same origin get it too, and no URL that venvfs keeps,
//!   prints or logs carries it;
//! - else `~/.netrc` (or the file `$NETRC` names): the `machine` entry of the host, else
//!   its `default` entry. A URL that gives only a user name takes the password of the
//!   netrc entry for that host when the entry's login is that name (or it has none).
//!
//! A login is never sent to another origin: a page on one host linking to files on another
//! does not pass its login along (as uv does not), and a redirect drops it (ureq's
//! `RedirectAuthHeaders::Never`, its default). When a URL has to be shown with its
//! user, [`display`] masks it as uv does: `user:****@` for a password, `****@` for a user
//! name alone (often a token).

use std::path::{Path, PathBuf};

use url::Url;

/// A user name and password (the password may be empty: a token as the user name).
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({}:****)", self.user)
    }
}

impl Login {
    /// The value of an `Authorization` header.
    pub fn header(&self) -> String {
        use base64::Engine;
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The logins known for origins, from configured URLs, with `~/.netrc` behind them.
#[derive(Clone, Debug, Default)]
pub struct Logins {
    by_origin: Vec<(String, Login)>,
    /// a user name given in a URL without a password: looked up in netrc
    users: Vec<(String, String)>,
    /// the netrc file's text, read once
    netrc: Option<String>,
}

/// `scheme://host:port` of a URL (the port spelled out, so that `https://h` and
/// `https://h:443` are one origin).
fn origin(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// The user name and password of a URL, percent-decoded.
fn userinfo(url: &Url) -> (String, Option<String>) {
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    (decode(url.username()), url.password().map(decode))
}

/// The URL without its user and password.
pub fn strip(url: &Url) -> Url {
    let mut u = url.clone();
    // (only fails for URLs that cannot have a user, which then has none)
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u
}

/// The URL as it may be printed: its password (or a lone user name) masked.
pub fn display(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut u = url.clone();
    if url.password().is_some() {
        let _ = u.set_password(Some("****"));
    } else {
        let _ = u.set_username("****");
    }
    u.to_string()
}

impl Logins {
    /// No logins, and netrc from `$NETRC`, else `~/.netrc` (none if it cannot be read).
    pub fn new() -> Logins {
        let netrc = std::env::var_os("NETRC")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".netrc")))
            .and_then(|p| std::fs::read_to_string(p).ok());
        Logins {
            by_origin: Vec::new(),
            users: Vec::new(),
            netrc,
        }
    }

    /// Takes the user and password out of a configured URL and remembers them for its
    /// origin; returns the URL without them. The first login given for an origin wins.
    pub fn take_from(&mut self, url: &Url) -> Url {
        let (user, password) = userinfo(url);
        let o = origin(url);
        match password {
            Some(password) if !self.by_origin.iter().any(|(k, _)| *k == o) => {
                self.by_origin.push((o, Login { user, password }));
            }
            None if !user.is_empty() && !self.users.iter().any(|(k, _)| *k == o) => {
                self.users.push((o, user));
            }
            _ => {}
        }
        strip(url)
    }

    /// The login to send with a request for `url`: the URL's own, else the one remembered
    /// for its origin, else netrc's for its host.
    pub fn for_url(&self, url: &Url) -> Option<Login> {
        let (user, password) = userinfo(url);
        if let Some(password) = password {
            return Some(Login { user, password });
        }
        let o = origin(url);
        if let Some((_, l)) = self.by_origin.iter().find(|(k, _)| *k == o) {
            return Some(l.clone());
        }
        let user = if user.is_empty() {
            self.users
                .iter()
                .find(|(k, _)| *k == o)
                .map(|(_, u)| u.clone())
                .unwrap_or_default()
        } else {
            user
        };
        let from_netrc = self
            .netrc
            .as_deref()
            .and_then(|text| netrc_lookup(text, url.host_str()?));
        match from_netrc {
            Some(l) if user.is_empty() || l.user.is_empty() || l.user == user => Some(Login {
                user: if l.user.is_empty() { user } else { l.user },
                password: l.password,
            }),
            // a user name alone (a token), sent with an empty password
            _ if !user.is_empty() => Some(Login {
                user,
                password: String::new(),
            }),
            _ => None,
        }
    }
}

/// The login a `.netrc` text gives for `host`: its `machine` entry, else `default`.
/// (`macdef` bodies, which end at an empty line, are skipped.)
pub fn netrc_lookup(text: &str, host: &str) -> Option<Login> {
    let mut entries: Vec<(Option<String>, Login)> = Vec::new();
    let mut lines = text.lines();
    let mut tokens: Vec<String> = Vec::new();
    while let Some(line) = lines.next() {
        let mut words = line.split_whitespace().map(str::to_owned);
        while let Some(w) = words.next() {
            if w == "macdef" {
                // the macro's name, then its body up to an empty line
                words.next();
                for body in lines.by_ref() {
                    if body.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            tokens.push(w);
        }
    }
    let mut it = tokens.into_iter();
    while let Some(t) = it.next() {
        match t.as_str() {
            "machine" => entries.push((it.next(), Login::empty())),
            "default" => entries.push((None, Login::empty())),
            "login" | "password" | "account" => {
                let v = it.next().unwrap_or_default();
                if let Some((_, l)) = entries.last_mut() {
                    match t.as_str() {
                        "login" => l.user = v,
                        "password" => l.password = v,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let host = host.to_ascii_lowercase();
    entries
        .iter()
        .find(|(m, _)| m.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(&host)))
        .or_else(|| entries.iter().find(|(m, _)| m.is_none()))
        .map(|(_, l)| l.clone())
}

impl Login {
    fn empty() -> Login {
        Login {
            user: String::new(),
            password: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn urls_lose_their_login_and_keep_it_for_their_origin() {
        let mut logins = Logins {
            netrc: None,
            ..Default::default()
        };
        let u = logins.take_from(&url("https://me:p%40ss@idx.example/simple/"));
        assert_eq!(u.as_str(), "https://idx.example/simple/");
        let l = logins
            .for_url(&url("https://idx.example:443/files/x.whl"))
            .unwrap();
        assert_eq!((l.user.as_str(), l.password.as_str()), ("me", "p@ss"));
        assert_eq!(l.header(), "Basic bWU6cEBzcw==");
        // another origin gets nothing
        assert!(logins.for_url(&url("http://idx.example/simple/")).is_none());
        assert!(logins.for_url(&url("https://cdn.example/x.whl")).is_none());
        assert!(!format!("{l:?}").contains("p@ss"));
    }

    #[test]
    fn masked_for_display() {
        assert_eq!(
            display(&url("https://me:secret@h.example/simple")),
            "https://me:****@h.example/simple"
        );
        assert_eq!(
            display(&url("https://tok123@h.example/simple")),
            "https://****@h.example/simple"
        );
        assert_eq!(display(&url("https://h.example/s")), "https://h.example/s");
    }

    #[test]
    fn netrc_entries() {
        let text = "machine a.example login al password apw\n\
                    macdef init\ncd /\nput x\n\n\
                    machine b.example\n  login bob\n  password bpw\n\
                    default login anon password anonpw\n";
        let l = netrc_lookup(text, "B.example").unwrap();
        assert_eq!((l.user.as_str(), l.password.as_str()), ("bob", "bpw"));
        let l = netrc_lookup(text, "a.example").unwrap();
        assert_eq!(l.password, "apw");
        let l = netrc_lookup(text, "c.example").unwrap();
        assert_eq!(l.user, "anon");
        assert!(netrc_lookup("machine a login x password y", "b").is_none());
    }

    #[test]
    fn a_user_name_takes_its_password_from_netrc() {
        let mut logins = Logins {
            netrc: Some("machine h.example login me password fromnetrc\n".into()),
            ..Default::default()
        };
        let u = logins.take_from(&url("https://me@h.example/simple/"));
        let l = logins.for_url(&u).unwrap();
        assert_eq!(l.password, "fromnetrc");
        // another user name: not netrc's password; sent as a token
        let mut logins2 = logins.clone();
        logins2.users.clear();
        let u = logins2.take_from(&url("https://tok@h.example/simple/"));
        let l = logins2.for_url(&u).unwrap();
        assert_eq!((l.user.as_str(), l.password.as_str()), ("tok", ""));
        // no user at all: netrc's login
        let l = logins
            .for_url(&url("https://h.example/files/x.whl"))
            .unwrap();
        assert_eq!(l.user, "me");
    }
}
