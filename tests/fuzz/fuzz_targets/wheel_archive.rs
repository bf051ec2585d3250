//! A `.whl` as venvfs reads it: the zip end records and central directory (`WheelArchive`),
//! every member through the member cache (inflate, CRC, spill), symlink targets, and what
//! `layer add` and `install` read (the dist-info name, WHEEL, RECORD, entry points).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use venvfs::layer::wheel::{MemberCache, MemberKind, WheelArchive};

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("venvfs-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    let path = dir.join("fuzz-1.0-py3-none-any.whl");
    std::fs::write(&path, data).unwrap();
    if let Ok(archive) = WheelArchive::open(&path) {
        let archive = Arc::new(archive);
        // small budgets, so that members also go through the spill file
        let cache = MemberCache::new(64 << 10, 16 << 10, dir.clone());
        for (i, m) in archive.members().iter().enumerate() {
            match m.kind {
                MemberKind::File => {
                    if let Ok(d) = cache.open(&archive, i) {
                        let whole = d.read_at(0, m.size as usize).unwrap();
                        assert_eq!(whole.len() as u64, m.size);
                        let _ = d.read_at(m.size / 2, 4096);
                        let _ = d.read_at(m.size + 1, 10);
                    }
                }
                MemberKind::Symlink => {
                    let _ = archive.symlink_target(i);
                }
                MemberKind::Dir => {}
            }
        }
    }
    let _ = venvfs::install::wheel_layer(&path, "3.11");
    let _ = venvfs::install::apply::plan(&path, Path::new("/fuzz/venv"), "3.11", true);
});
