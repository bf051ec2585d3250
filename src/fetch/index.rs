//! A package index's project page, as the "Simple repository API" gives it: the JSON form
//! (PEP 691, `application/vnd.pypi.simple.v1+json`), which is asked for first, and the HTML
//! form (PEP 503) that every index serves. Both come down to a list of files, each with its
//! URL (resolved against the page's own URL, as relative links must be) and its sha256 when
//! the index gives one.

use url::Url;

use crate::name::PackageName;

/// What the request asks for: JSON first, HTML as the fallback (PEP 691 "Version + Format
/// Selection"; `text/html` for indexes older than it).
pub const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, \
application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";

/// One file a project page lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    pub filename: String,
    pub url: Url,
    /// hex, lowercase
    pub sha256: Option<String>,
    /// PEP 592: a yanked file is still installed when pinned exactly, as venvfs's pins are.
    pub yanked: bool,
}

/// The project page of `name` under the index at `index` (PEP 503: the normalized name,
/// with a trailing slash).
pub fn project_url(index: &Url, name: &PackageName) -> Result<Url, String> {
    let mut base = index.clone();
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base.join(&format!("{}/", name.as_str()))
        .map_err(|e| format!("{index}: cannot make a project URL of it: {e}"))
}

/// Reads a project page: JSON when the response says so, HTML otherwise.
pub fn parse(content_type: &str, body: &str, page: &Url) -> Result<Vec<IndexFile>, String> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/vnd.pypi.simple.v1+json" || essence == "application/json" {
        parse_json(body, page)
    } else {
        Ok(parse_html(body, page))
    }
}

#[derive(serde::Deserialize)]
struct JsonPage {
    meta: JsonMeta,
    files: Vec<JsonFile>,
}

#[derive(serde::Deserialize)]
struct JsonMeta {
    #[serde(rename = "api-version")]
    api_version: String,
}

#[derive(serde::Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: std::collections::BTreeMap<String, String>,
    /// `true`, `false` or a reason (a non-empty string means yanked)
    #[serde(default)]
    yanked: Option<serde_json::Value>,
}

/// PEP 691's JSON form. Only API version 1.x is read (a major version change is one a
/// client must not guess at).
pub fn parse_json(body: &str, page: &Url) -> Result<Vec<IndexFile>, String> {
    let doc: JsonPage =
        serde_json::from_str(body).map_err(|e| format!("{page}: not a PEP 691 page: {e}"))?;
    if !doc.meta.api_version.starts_with("1.") && doc.meta.api_version != "1" {
        return Err(format!(
            "{page}: simple API version {} is not supported (this venvfs reads 1.x)",
            doc.meta.api_version
        ));
    }
    let mut out = Vec::new();
    for f in doc.files {
        let Ok(url) = page.join(&f.url) else { continue };
        let yanked = match f.yanked {
            Some(serde_json::Value::Bool(b)) => b,
            Some(serde_json::Value::String(_)) => true,
            _ => false,
        };
        out.push(IndexFile {
            filename: f.filename,
            url,
            sha256: f.hashes.get("sha256").and_then(|h| sha256_hex(h)),
            yanked,
        });
    }
    Ok(out)
}

/// PEP 503's HTML form: every `<a href="URL#sha256=HEX">FILENAME</a>`. The anchor's text is
/// the file name; a `data-yanked` attribute marks a yanked file.
pub fn parse_html(body: &str, page: &Url) -> Vec<IndexFile> {
    let lower = body.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<a").map(|i| at + i) {
        at = start + 2;
        // `<a` must be a whole tag name (not `<abbr`)
        if !lower[at..].starts_with(|c: char| c.is_ascii_whitespace() || c == '>') {
            continue;
        }
        let Some(tag_end) = lower[at..].find('>').map(|i| at + i) else {
            break;
        };
        let Some(close) = lower[tag_end..].find("</a").map(|i| tag_end + i) else {
            break;
        };
        let attrs = &body[at..tag_end];
        let text = unescape(body[tag_end + 1..close].trim());
        at = close;
        let Some(href) = attribute(attrs, "href") else {
            continue;
        };
        let Ok(mut url) = page.join(&unescape(&href)) else {
            continue;
        };
        let sha256 = url
            .fragment()
            .and_then(|f| f.strip_prefix("sha256="))
            .and_then(sha256_hex);
        url.set_fragment(None);
        let filename = if text.is_empty() {
            url.path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or("")
                .to_owned()
        } else {
            text
        };
        out.push(IndexFile {
            filename,
            url,
            sha256,
            yanked: attribute(attrs, "data-yanked").is_some(),
        });
    }
    out
}

/// The value of attribute `name` in a tag's attribute text (quoted with `"` or `'`, or bare;
/// an attribute without a value gives "").
fn attribute(attrs: &str, name: &str) -> Option<String> {
    let lower = attrs.to_ascii_lowercase();
    let mut at = 0;
    while let Some(i) = lower[at..].find(name).map(|i| at + i) {
        at = i + name.len();
        let before_ok = i == 0 || lower.as_bytes()[i - 1].is_ascii_whitespace();
        let rest = &attrs[at..];
        let after = rest.trim_start();
        if !before_ok {
            continue;
        }
        if !after.starts_with('=') {
            // a bare attribute (`data-yanked`), unless this was only a prefix of a longer name
            if rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_whitespace() || c == '/') {
                return Some(String::new());
            }
            continue;
        }
        let value = after[1..].trim_start();
        return Some(match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or("").to_owned(),
            _ => value
                .split(|c: char| c.is_ascii_whitespace())
                .next()
                .unwrap_or("")
                .to_owned(),
        });
    }
    None
}

/// The character references an index page uses in URLs and file names.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

fn sha256_hex(h: &str) -> Option<String> {
    (h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())).then(|| h.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274";

    fn page() -> Url {
        Url::parse("https://example.org/simple/six/").unwrap()
    }

    #[test]
    fn project_urls_are_normalized_with_a_slash() {
        let n = PackageName::new("Foo_Bar");
        for index in ["https://i.example/simple", "https://i.example/simple/"] {
            assert_eq!(
                project_url(&Url::parse(index).unwrap(), &n)
                    .unwrap()
                    .as_str(),
                "https://i.example/simple/foo-bar/"
            );
        }
    }

    #[test]
    fn json_pages() {
        let body = format!(
            r#"{{"meta": {{"api-version": "1.1"}}, "name": "six", "files": [
            {{"filename": "six-1.17.0-py2.py3-none-any.whl", "url": "../../files/six-1.17.0-py2.py3-none-any.whl",
              "hashes": {{"sha256": "{}"}}, "yanked": false}},
            {{"filename": "six-1.0.tar.gz", "url": "https://f.example/six-1.0.tar.gz", "hashes": {{}}, "yanked": "broken"}}
            ]}}"#,
            HASH.to_uppercase()
        );
        let files = parse("application/vnd.pypi.simple.v1+json", &body, &page()).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0].url.as_str(),
            "https://example.org/files/six-1.17.0-py2.py3-none-any.whl"
        );
        assert_eq!(files[0].sha256.as_deref(), Some(HASH));
        assert!(!files[0].yanked && files[1].yanked);
        let v2 = r#"{"meta": {"api-version": "2.0"}, "files": []}"#;
        assert!(parse_json(v2, &page()).unwrap_err().contains("2.0"));
        assert!(parse_json("<html>", &page()).is_err());
    }

    #[test]
    fn html_pages() {
        let body = format!(
            "<!DOCTYPE html><html><body><h1>Links for six</h1>\n\
             <a href=\"/files/six-1.17.0-py2.py3-none-any.whl#sha256={HASH}\" data-requires-python=\"&gt;=2.7\">six-1.17.0-py2.py3-none-any.whl</a><br/>\n\
             <A HREF='six-1.0-py3-none-any.whl?a=1&amp;b=2' data-yanked>six-1.0-py3-none-any.whl</A>\n\
             <abbr>not a link</abbr><a name=\"nohref\">x</a>\n\
             <a href=\"https://f.example/x/six-0.9.tar.gz#md5=00\"></a>\n\
             </body></html>"
        );
        let files = parse("text/html; charset=utf-8", &body, &page()).unwrap();
        assert_eq!(files.len(), 3, "{files:?}");
        assert_eq!(files[0].filename, "six-1.17.0-py2.py3-none-any.whl");
        assert_eq!(
            files[0].url.as_str(),
            "https://example.org/files/six-1.17.0-py2.py3-none-any.whl"
        );
        assert_eq!(files[0].sha256.as_deref(), Some(HASH));
        assert!(!files[0].yanked);
        assert_eq!(
            files[1].url.as_str(),
            "https://example.org/simple/six/six-1.0-py3-none-any.whl?a=1&b=2"
        );
        assert!(files[1].yanked && files[1].sha256.is_none());
        assert_eq!(files[2].filename, "six-0.9.tar.gz");
    }
}
