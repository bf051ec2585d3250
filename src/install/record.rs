//! `RECORD` files (the "Recording installed packages" spec): reading and writing them in the
//! CSV dialect uv uses (the `csv` crate's defaults: `,` delimiter, `"` quoting with doubled
//! quotes, fields quoted only when they hold `,`, `"`, `\r` or `\n`, rows ended by `\n`),
//! and hashing files the way RECORD wants (`sha256=` + URL-safe base64 without padding).

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// One row of a `RECORD` file.
///
/// The derived ordering (path, then hash with "none" first, then size) is the one uv sorts
/// rows by before writing them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordRow {
    /// Path relative to site-packages, with `/` separators (`../../../bin/pip` for a script).
    pub path: String,
    /// `sha256=<urlsafe base64, no padding>`, or none (the RECORD file's own row).
    pub hash: Option<String>,
    /// Size in bytes, or none.
    pub size: Option<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("RECORD line {line}: expected 3 fields (path,hash,size), found {found}")]
    FieldCount { line: usize, found: usize },
    #[error("RECORD line {line}: size {size:?} is not a whole number")]
    Size { line: usize, size: String },
}

/// `sha256=<digest>` as RECORD writes it: URL-safe base64 of the SHA-256, no `=` padding.
pub fn sha256_digest(content: &[u8]) -> String {
    let digest = Sha256::digest(content);
    format!(
        "sha256={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// The row for a file of `content` at `path` (relative to site-packages).
pub fn hash_row(path: &str, content: &[u8]) -> RecordRow {
    RecordRow {
        path: path.to_owned(),
        hash: Some(sha256_digest(content)),
        size: Some(content.len() as u64),
    }
}

/// Parse a RECORD file.
///
/// Follows the `csv` crate reader uv uses: `\n`, `\r\n` and `\r` end rows, blank lines are
/// skipped, a field starting with `"` is quoted (`""` inside is one `"`, and commas and line
/// breaks are literal), a `"` inside an unquoted field is literal, a leading UTF-8 BOM is
/// dropped. Every row must have three fields; an empty hash or size is "none"; leading `/`s
/// are stripped from paths (as uv does for wheels that record absolute paths). Errors name
/// the line the row starts on (1-based).
pub fn parse_record(text: &str) -> Result<Vec<RecordRow>, RecordError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if !text.contains('"') {
        return parse_unquoted(text);
    }
    csv_records(text)
        .into_iter()
        .map(|(line, fields)| {
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            record_row(line, &fields)
        })
        .collect()
}

/// [`parse_record`] of a text without `"` (almost every RECORD): rows are lines and fields
/// are split at commas, with no copy of the text before the rows are made. Install reads
/// every RECORD of a sync, so this is on its hot path.
fn parse_unquoted(text: &str) -> Result<Vec<RecordRow>, RecordError> {
    let mut rows = Vec::with_capacity(text.len() / 64);
    let mut line = 0;
    let mut fields: Vec<&str> = Vec::with_capacity(3);
    for chunk in text.split('\n') {
        let chunk = chunk.strip_suffix('\r').unwrap_or(chunk);
        // a lone \r ends a row too
        for row in chunk.split('\r') {
            line += 1;
            if row.is_empty() {
                continue;
            }
            fields.clear();
            fields.extend(row.split(','));
            rows.push(record_row(line, &fields)?);
        }
    }
    Ok(rows)
}

fn record_row(line: usize, fields: &[&str]) -> Result<RecordRow, RecordError> {
    let &[path, hash, size] = fields else {
        return Err(RecordError::FieldCount {
            line,
            found: fields.len(),
        });
    };
    let size = match size {
        "" => None,
        s => Some(s.parse::<u64>().map_err(|_| RecordError::Size {
            line,
            size: s.to_owned(),
        })?),
    };
    Ok(RecordRow {
        path: path.trim_start_matches('/').to_owned(),
        hash: (!hash.is_empty()).then(|| hash.to_owned()),
        size,
    })
}

/// The records of a CSV text, each with the 1-based line it starts on.
fn csv_records(text: &str) -> Vec<(usize, Vec<String>)> {
    #[derive(PartialEq)]
    enum State {
        StartRecord,
        StartField,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let mut out = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut state = State::StartRecord;
    let mut line = 1;
    let mut start_line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let newline = c == '\n' || c == '\r';
        if state == State::StartRecord {
            if newline {
                if !(c == '\r' && chars.peek() == Some(&'\n')) {
                    line += 1;
                }
                continue;
            }
            start_line = line;
            state = State::StartField;
        }
        match state {
            State::StartField | State::Unquoted | State::QuoteInQuoted if newline => {
                fields.push(std::mem::take(&mut field));
                out.push((start_line, std::mem::take(&mut fields)));
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                line += 1;
                state = State::StartRecord;
            }
            State::StartField | State::Unquoted | State::QuoteInQuoted if c == ',' => {
                fields.push(std::mem::take(&mut field));
                state = State::StartField;
            }
            State::StartField if c == '"' => state = State::Quoted,
            State::Quoted if c == '"' => state = State::QuoteInQuoted,
            State::QuoteInQuoted if c == '"' => {
                field.push('"');
                state = State::Quoted;
            }
            State::Quoted => {
                if c == '\n' || (c == '\r' && chars.peek() != Some(&'\n')) {
                    line += 1;
                }
                field.push(c);
            }
            _ => {
                field.push(c);
                state = State::Unquoted;
            }
        }
    }
    if state != State::StartRecord {
        fields.push(field);
        out.push((start_line, fields));
    }
    out
}

/// Write RECORD text: the rows sorted (as uv does, so equal inputs give identical bytes),
/// one per `\n`-terminated line.
pub fn write_record(rows: &[RecordRow]) -> String {
    let mut sorted: Vec<&RecordRow> = rows.iter().collect();
    sorted.sort();
    let mut out = String::with_capacity(rows.len() * 96);
    for row in sorted {
        push_field(&mut out, &row.path);
        out.push(',');
        push_field(&mut out, row.hash.as_deref().unwrap_or(""));
        out.push(',');
        if let Some(size) = row.size {
            use std::fmt::Write;
            let _ = write!(out, "{size}");
        }
        out.push('\n');
    }
    out
}

fn push_field(out: &mut String, field: &str) {
    // (a path that starts with U+FEFF is quoted too, or reading the file back would take it
    // for a byte-order mark: found by fuzzing)
    if field.starts_with('\u{feff}')
        || field
            .bytes()
            .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, hash: Option<&str>, size: Option<u64>) -> RecordRow {
        RecordRow {
            path: path.into(),
            hash: hash.map(Into::into),
            size,
        }
    }

    #[test]
    fn hash_matches_a_real_record() {
        // pip-26.3.dist-info/REQUESTED (empty) and INSTALLER ("uv") as uv recorded them.
        assert_eq!(
            hash_row("x/REQUESTED", b""),
            row(
                "x/REQUESTED",
                Some("sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"),
                Some(0)
            )
        );
        assert_eq!(
            sha256_digest(b"uv"),
            "sha256=5hhM4Q4mYTT9z6QB6PGpUAW81PGNFrYrdXMj4oM_6ak"
        );
        // A digest whose base64 holds both URL-safe characters `-` and `_`.
        let d = sha256_digest(b"");
        let b64 = d.strip_prefix("sha256=").unwrap();
        assert!(b64.contains('-') && b64.contains('_') && !b64.contains('='));
    }

    #[test]
    fn parse_quoting_and_line_breaks() {
        let text = "\u{feff}a.py,sha256=x,1\r\n\
                    \"b,c.py\",sha256=y,22\n\
                    \n\
                    \"q\"\"uote\",,\r\
                    /abs/path,,\n\
                    \"multi\nline\",,3\n\
                    odd\"quote,,\n\
                    x.dist-info/RECORD,,";
        let rows = parse_record(text).unwrap();
        assert_eq!(
            rows,
            vec![
                row("a.py", Some("sha256=x"), Some(1)),
                row("b,c.py", Some("sha256=y"), Some(22)),
                row("q\"uote", None, None),
                row("abs/path", None, None),
                row("multi\nline", None, Some(3)),
                row("odd\"quote", None, None),
                row("x.dist-info/RECORD", None, None),
            ]
        );
    }

    /// The quote-free fast path reads rows exactly as the CSV reader does.
    #[test]
    fn unquoted_fast_path_agrees_with_the_csv_reader() {
        let texts = [
            "a.py,sha256=x,1\nb/c.py,,\nd,sha256=y,\n",
            "a,b,1\r\n\r\nc,d,2\r\n",
            "a,b,1\rc,d,2\r\re,f,\n\n\n",
            "/abs/path,h,3",
            "a,b\n",
            "a,b,1,extra\n",
            "a,b,x\n",
            "",
            "\n\r\n",
        ];
        for t in texts {
            let slow: Result<Vec<RecordRow>, RecordError> = csv_records(t)
                .into_iter()
                .map(|(line, f)| {
                    record_row(line, &f.iter().map(String::as_str).collect::<Vec<_>>())
                })
                .collect();
            assert_eq!(parse_unquoted(t), slow, "{t:?}");
        }
    }

    #[test]
    fn parse_errors_name_the_line() {
        assert_eq!(
            parse_record("a,b,1\n\nc,d\n"),
            Err(RecordError::FieldCount { line: 3, found: 2 })
        );
        assert_eq!(
            parse_record("a,b,1\r\n\"x\ny\",b,1,2\n"),
            Err(RecordError::FieldCount { line: 2, found: 4 })
        );
        assert_eq!(
            parse_record("a,b,1\nc,d, 2\n"),
            Err(RecordError::Size {
                line: 2,
                size: " 2".into()
            })
        );
    }

    #[test]
    fn write_sorts_and_quotes_like_uv() {
        let rows = vec![
            row("tiny/x.py", Some("sha256=b"), Some(2)),
            row("tiny/a,b.py", Some("sha256=a"), Some(8)),
            row("probe/q\"uote.py", None, Some(0)),
            row("probe/ lead.py", None, None),
            row("tiny/x.py", None, Some(2)),
        ];
        assert_eq!(
            write_record(&rows),
            "probe/ lead.py,,\n\
             \"probe/q\"\"uote.py\",,0\n\
             \"tiny/a,b.py\",sha256=a,8\n\
             tiny/x.py,,2\n\
             tiny/x.py,sha256=b,2\n"
        );
    }

    #[test]
    fn round_trip() {
        let rows = vec![
            row("a\r\nb", Some("sha256=z"), Some(u64::MAX)),
            row("\"", None, None),
            row("plain", Some("sha256=y"), Some(0)),
            row(",", None, Some(7)),
            row("é t", None, None),
        ];
        let text = write_record(&rows);
        let mut back = parse_record(&text).unwrap();
        let mut sorted = rows.clone();
        sorted.sort();
        assert_eq!(back, sorted);
        back.reverse();
        assert_eq!(write_record(&back), text);
        // a first path that starts with U+FEFF is not a byte-order mark (found by fuzzing)
        let bom = vec![row("\u{feff}", Some("sh"), None)];
        assert_eq!(parse_record(&write_record(&bom)).unwrap(), bom);
    }
}
