//! Which certificate authorities HTTPS trusts: the ones `SSL_CERT_FILE` (a PEM bundle) and
//! `SSL_CERT_DIR` (directories of PEM files, `:`-separated) name, when either is set, as
//! uv, pip (through `requests`' certifi override), curl and Python's `ssl` read them; else
//! the Mozilla roots compiled in. A network whose proxy re-signs TLS (common in companies
//! and on clusters) installs its authority in the system bundle and points `SSL_CERT_FILE`
//! at it; without this, every fetch there failed with "invalid peer certificate:
//! UnknownIssuer".

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ureq::tls::{parse_pem, Certificate, PemItem, RootCerts, TlsConfig};

/// The TLS settings for fetching: `None` for the compiled-in roots.
pub fn config() -> Result<Option<TlsConfig>, String> {
    let file = std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty());
    let dirs = std::env::var_os("SSL_CERT_DIR").filter(|v| !v.is_empty());
    if file.is_none() && dirs.is_none() {
        return Ok(None);
    }
    let mut certs = Vec::new();
    if let Some(file) = &file {
        certs.extend(read_bundle(Path::new(file), "SSL_CERT_FILE")?);
    }
    if let Some(dirs) = &dirs {
        for dir in std::env::split_paths(dirs).filter(|d| !d.as_os_str().is_empty()) {
            for path in pem_files(&dir)? {
                // (a directory of hashed links holds files that are not certificates too)
                certs.extend(read_bundle(&path, "SSL_CERT_DIR").unwrap_or_default());
            }
        }
    }
    if certs.is_empty() {
        let named = [("SSL_CERT_FILE", &file), ("SSL_CERT_DIR", &dirs)]
            .iter()
            .filter_map(|(var, v)| v.as_ref().map(|v| format!("{var}={}", v.to_string_lossy())))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!(
            "{named} holds no certificate: point it at a PEM bundle (such as /etc/ssl/certs/ca-certificates.crt), or unset it to trust the built-in roots"
        ));
    }
    let roots = RootCerts::Specific(Arc::new(certs));
    Ok(Some(TlsConfig::builder().root_certs(roots).build()))
}

/// The certificates of PEM file `path`, which `var` named.
fn read_bundle(path: &Path, var: &str) -> Result<Vec<Certificate<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| {
        format!(
            "{var}: cannot read {}: {e}; point {var} at a readable PEM bundle, or unset it",
            path.display()
        )
    })?;
    Ok(parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect())
}

/// The files of `dir` (a directory `SSL_CERT_DIR` names), sorted.
fn pem_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "SSL_CERT_DIR: cannot read {}: {e}; point SSL_CERT_DIR at a directory of PEM files, or unset it",
            dir.display()
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}
