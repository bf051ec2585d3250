//! Wheels to layers: where each part of a wheel goes in a venv (the binary distribution
//! format spec, "Installing a wheel"), expressed as manifest mappings so nothing is copied.

pub mod adopt;
pub mod apply;
pub mod entry_points;
pub mod fold;
pub mod generated;
pub mod generated_layer;
pub mod heal;
pub mod launcher;
pub mod layout;
pub mod record;
pub mod script;
pub mod sync;
pub mod txn;

use std::path::Path;

use crate::layer::wheel::WheelArchive;
use crate::manifest::{Layer, Mapping};
use crate::name::PackageName;
use layout::{DataKind, Layout};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{path}: no `.dist-info` directory at its top level, so it is not a wheel or unpacked wheel")]
    NoDistInfo { path: std::path::PathBuf },
    #[error("{path}: found several `.dist-info` directories ({found}); a wheel has exactly one")]
    ManyDistInfo {
        path: std::path::PathBuf,
        found: String,
    },
    #[error("{path}: cannot read it: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Wheel(#[from] crate::layer::wheel::WheelError),
    #[error(transparent)]
    Layer(#[from] crate::layer::LayerError),
    #[error("{path}: it has no {member}, which every wheel has")]
    NoMember {
        path: std::path::PathBuf,
        member: String,
    },
    #[error("{path}: {why}")]
    Generate {
        path: std::path::PathBuf,
        why: String,
    },
}

/// The `{name}-{version}` prefix of a wheel's `.dist-info` directory.
pub fn dist_info_prefix(source: &Path) -> Result<String, InstallError> {
    if source.is_dir() {
        let tops: Vec<String> = std::fs::read_dir(source)
            .map_err(|e| InstallError::Read {
                path: source.to_owned(),
                source: e,
            })?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        dist_info_prefix_among(source, tops.iter().map(String::as_str))
    } else {
        let archive = WheelArchive::open(source)?;
        let tops = archive
            .members()
            .iter()
            .filter_map(|m| m.name.split('/').next());
        dist_info_prefix_among(source, tops)
    }
}

/// [`dist_info_prefix`] from the top-level names of a wheel source.
pub fn dist_info_prefix_among<'a>(
    source: &Path,
    tops: impl Iterator<Item = &'a str>,
) -> Result<String, InstallError> {
    let mut found: Vec<&str> = tops.filter_map(|t| t.strip_suffix(".dist-info")).collect();
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Err(InstallError::NoDistInfo {
            path: source.to_owned(),
        }),
        many => Err(InstallError::ManyDistInfo {
            path: source.to_owned(),
            found: many.join(", "),
        }),
    }
}

/// The layer for a wheel (file or unpacked directory) in a venv of Python `version` (X.Y).
pub fn wheel_layer(source: &Path, version: &str) -> Result<Layer, InstallError> {
    Ok(layer_for(source, &dist_info_prefix(source)?, version))
}

/// [`wheel_layer`] of a source whose dist-info prefix is known.
pub fn layer_for(source: &Path, prefix: &str, version: &str) -> Layer {
    layer_in(source, prefix, &Layout::new(version))
}

/// [`layer_for`] a venv of the layout `layout`: the wheel's top level in site-packages,
/// each `.data/<kind>` where the scheme puts it.
pub fn layer_in(source: &Path, prefix: &str, layout: &Layout) -> Layer {
    let (name, ver) = prefix.split_once('-').unwrap_or((prefix, ""));
    let package = PackageName::new(name);
    let data = format!("{prefix}.data");
    let to = |from: String, to: String| Mapping {
        from,
        to: Some(to),
        skip: false,
    };
    let mut map = vec![
        to(String::new(), layout.site_packages().to_owned()),
        Mapping {
            from: data.clone(),
            to: None,
            skip: true,
        },
    ];
    map.extend(DataKind::ALL.map(|kind| {
        to(
            format!("{data}/{}", kind.as_str()),
            layout.data_dir(kind, &package),
        )
    }));
    Layer {
        source: source.to_owned(),
        name: name.to_owned(),
        version: ver.to_owned(),
        map,
        installed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::layout::OsName;
    use super::*;

    #[test]
    fn data_spread_to_the_windows_scheme() {
        let layer = layer_in(
            Path::new("w.whl"),
            "Tiny_Pkg-1.0",
            &Layout::for_os(OsName::Nt, "3.12"),
        );
        let map: Vec<(&str, Option<&str>, bool)> = layer
            .map
            .iter()
            .map(|m| (m.from.as_str(), m.to.as_deref(), m.skip))
            .collect();
        assert_eq!(
            map,
            [
                ("", Some("Lib/site-packages"), false),
                ("Tiny_Pkg-1.0.data", None, true),
                (
                    "Tiny_Pkg-1.0.data/purelib",
                    Some("Lib/site-packages"),
                    false
                ),
                (
                    "Tiny_Pkg-1.0.data/platlib",
                    Some("Lib/site-packages"),
                    false
                ),
                ("Tiny_Pkg-1.0.data/scripts", Some("Scripts"), false),
                (
                    "Tiny_Pkg-1.0.data/headers",
                    Some("include/site/python3.12/tiny-pkg"),
                    false
                ),
                ("Tiny_Pkg-1.0.data/data", Some(""), false),
            ]
        );
        assert_eq!(
            (layer.name.as_str(), layer.version.as_str()),
            ("Tiny_Pkg", "1.0")
        );
    }
}
