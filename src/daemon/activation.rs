//! Keeping uv told to link: a mounted venv's activation scripts set `UV_LINK_MODE=symlink`
//! (see `activate.rs`), written at mount (in the venv's own directory, just before the
//! mount covers it: see serve.rs). A venv made again through the mount gets new
//! scripts without it: `uv venv --clear .venv`, `python -m venv --clear`, or `uv sync`
//! making the venv again for another Python. Then the next `source .venv/bin/activate`
//! would leave uv to copy every file into the venv, the very thing venvfs is for. So the
//! daemon looks at the main script in the venv's own directory every [`EVERY`] (one
//! `stat`) when names were made through the mount since it last looked (a new script is
//! one), and when it is a new file (another inode: every venv maker writes a new one)
//! patches the scripts again, through the mount. An idle mount looks at nothing: on a
//! network filesystem every look past the client's cache is a request to the server
//! (two per node every 20 s on sshfs, the most of what 8 nodes importing asked of it).
//!
//! An edit of the script in place keeps its inode and is left alone, so a user who takes
//! the line out keeps it out.

use std::path::PathBuf;
use std::time::Duration;

/// How often the main activation script is looked at.
const EVERY: Duration = Duration::from_secs(2);

/// Watches the activation script of the venv mounted at `venv`, whose own directory
/// `own_dir` reaches beneath the mount.
pub(super) fn watch(
    venv: PathBuf,
    own_dir: PathBuf,
    overlay: std::sync::Arc<crate::overlay::Overlay>,
) {
    let main = crate::activate::main_script(crate::install::layout::OsName::current());
    let script = crate::activate::scripts_dir(&own_dir).join(main);
    let spawned = std::thread::Builder::new()
        .name("activation".into())
        .spawn(move || {
            let mut seen = identity(&script);
            let mut made = overlay.names_made();
            loop {
                std::thread::sleep(EVERY);
                let now_made = overlay.names_made();
                if now_made == made {
                    continue; // (nothing made: the script is the one seen)
                }
                made = now_made;
                let now = identity(&script);
                if now == seen || now.is_none() {
                    continue;
                }
                // (through the mount: the kernel may hold the script's pages)
                match crate::activate::set_link_mode(&venv) {
                    Ok(true) => tracing::info!(
                        "{}: new activation scripts (the venv was made again): they set \
                         UV_LINK_MODE=symlink again",
                        venv.display()
                    ),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(
                        "cannot set uv's link mode in the new activation scripts of {}: {e}",
                        venv.display()
                    ),
                }
                // (the patch itself is a new file: not one to patch again)
                seen = identity(&script);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch the activation scripts: {e}");
    }
}

/// The file's identity: a new file has another. Its inode number alone does not tell: a
/// filesystem gives the number of the file just removed to the next one made (ext4 does,
/// and `uv venv --clear` removes the script and writes a new one), so its birth time,
/// which an edit in place keeps, tells too where the filesystem records one.
fn identity(path: &std::path::Path) -> Option<(u64, u64, i64, u32)> {
    use rustix::fs::{AtFlags, StatxFlags, CWD};
    let st = rustix::fs::statx(
        CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::INO | StatxFlags::BTIME,
    )
    .ok()?;
    let dev = rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor);
    let born = if StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::BTIME) {
        (st.stx_btime.tv_sec, st.stx_btime.tv_nsec)
    } else {
        (0, 0)
    };
    Some((dev, st.stx_ino, born.0, born.1))
}
