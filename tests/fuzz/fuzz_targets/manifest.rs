//! `.venvfs/manifest.toml`: parsed, validated, and written back the same.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use venvfs::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/venv/.venvfs/manifest.toml");
    if let Ok(m) = Manifest::parse(text, path) {
        let again = Manifest::parse(&m.to_toml(), path).expect("a saved manifest parses again");
        assert_eq!(m, again);
        for layer in &m.layers {
            let _ = layer.label();
            for rel in ["", "a", "a/b.py", "x-1.0.data/scripts/tool"] {
                if let Some(dest) = layer.destination(rel) {
                    assert!(!dest.starts_with('/') && !dest.split('/').any(|c| c == ".."));
                }
            }
        }
    }
});
