//! The dist-info files install reads together (WHEEL, RECORD, entry_points.txt) and the
//! files it generates from them (launchers, RECORD, `#!python` scripts). The input is split
//! at NUL bytes: WHEEL, RECORD, entry_points.txt, then one member path a line (members under
//! `fuzz-1.0.data/scripts/` are scripts whose content is their own path).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use venvfs::install::generated::{
    generate, installed_record, DataScript, VenvOs, WheelInstall,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\0');
    let wheel = parts.next().unwrap_or("");
    let record = parts.next().unwrap_or("");
    let entry_points = parts.next();
    let members: Vec<(String, u64)> = parts
        .next()
        .unwrap_or("")
        .lines()
        .map(|l| (l.to_owned(), l.len() as u64))
        .collect();
    let scripts: Vec<DataScript> = members
        .iter()
        .filter_map(|(p, _)| {
            let name = p.strip_prefix("fuzz-1.0.data/scripts/")?;
            Some(DataScript {
                name,
                content: p.as_bytes(),
                mode: 0o644,
            })
        })
        .collect();
    for members in [Some(&members[..]), None] {
        let install = WheelInstall {
            dist_info_prefix: "fuzz-1.0",
            name: "fuzz",
            python_version: "3.11",
            venv: Path::new("/fuzz/venv"),
            os: VenvOs::Posix,
            wheel,
            record,
            entry_points,
            members,
            data_scripts: &scripts,
            installer: "venvfs",
            requested: true,
            direct_url: None,
            uv_cache: None,
        };
        if let Ok(g) = generate(&install) {
            for (path, _, _) in &g.files {
                assert!(
                    !path.starts_with('/'),
                    "generated an absolute path {path:?}"
                );
                assert!(
                    !path.split('/').any(|c| c == ".."),
                    "generated a path out of the venv: {path:?}"
                );
            }
        }
        let _ = installed_record(&install);
    }
});
