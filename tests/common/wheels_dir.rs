//! Where the tests find the real PyPI wheels listed in `tests/wheels.txt`. Shared by the
//! integration tests (`tests/common`) and the library's unit tests (`src/lib.rs`).

use std::path::{Path, PathBuf};

/// The directory of the test wheels: `$VENVFS_TEST_WHEELS` if set, else `../shared/wheels`
/// beside the repository, else `target/test-wheels/` in it (filled by `scripts/test-wheels`,
/// which `scripts/test` runs). `Err` says what to run when none of them is there.
pub fn test_wheels_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("VENVFS_TEST_WHEELS") {
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            return Err(format!(
                "VENVFS_TEST_WHEELS is {}, which is not a directory",
                dir.display()
            ));
        }
        return Ok(dir);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        root.join("../shared/wheels"),
        root.join("target/test-wheels"),
    ]
    .into_iter()
    .find(|d| d.is_dir())
    .ok_or_else(|| {
        format!(
            "the test wheels are not here: run scripts/test-wheels (it downloads them \
                 from PyPI once, into {}), or set VENVFS_TEST_WHEELS to a directory holding \
                 the wheels of tests/wheels.txt",
            root.join("target/test-wheels").display()
        )
    })
}
