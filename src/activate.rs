//! uv's link mode for a venvfs venv: the path of least resistance.
//!
//! uv installs into a venv on another filesystem than its cache by copying every file,
//! unless told to link them with symlinks (`UV_LINK_MODE=symlink`, or `link-mode =
//! "symlink"` in the project's uv configuration). In a mounted venvfs venv such a symlink
//! becomes a reference (see `overlay/reference.rs`): nothing is copied and the cache is
//! never written. So a venv that venvfs creates or mounts sets the variable while it is
//! activated: its `bin/activate` (bash and zsh, as written by `python -m venv` and by uv)
//! exports `UV_LINK_MODE=symlink`, and `deactivate` puts back whatever the shell had
//! before, so the setting does not leak into other venvs used from the same shell. A
//! project's own configuration is never edited: venvfs prints the line to add instead.

use std::io;
use std::path::Path;

/// Set in the shell while the venv's activation sets `UV_LINK_MODE` (so that `deactivate`
/// only undoes what activation did); also how an already patched script is recognized.
const MARK: &str = "_VENVFS_LINK_MODE_SET";

/// What `deactivate` runs first: restore `UV_LINK_MODE` as it was before activation.
const RESTORE: &str = r#"    # venvfs: put back the uv link mode the shell had before activation
    if [ -n "${_VENVFS_LINK_MODE_SET:-}" ] ; then
        if [ -n "${_VENVFS_OLD_UV_LINK_MODE+x}" ] ; then
            UV_LINK_MODE="$_VENVFS_OLD_UV_LINK_MODE"
            export UV_LINK_MODE
        else
            unset UV_LINK_MODE
        fi
        unset _VENVFS_OLD_UV_LINK_MODE _VENVFS_LINK_MODE_SET
    fi
"#;

/// What activation runs last.
const SET: &str = r#"
# venvfs: uv links packages into this venv as references instead of copying them
unset _VENVFS_OLD_UV_LINK_MODE
if [ -n "${UV_LINK_MODE+x}" ] ; then
    _VENVFS_OLD_UV_LINK_MODE="$UV_LINK_MODE"
fi
_VENVFS_LINK_MODE_SET=1
UV_LINK_MODE=symlink
export UV_LINK_MODE
"#;

/// Makes the activation script `text` set uv's link mode; `None` when it already does, or
/// has no `deactivate` function to undo it in (a script venvfs does not know).
pub fn with_link_mode(text: &str) -> Option<String> {
    if text.contains(MARK) {
        return None;
    }
    let open = "deactivate () {\n";
    let at = text.find(open)? + open.len();
    let mut out = String::with_capacity(text.len() + RESTORE.len() + SET.len());
    out.push_str(&text[..at]);
    out.push_str(RESTORE);
    out.push_str(&text[at..]);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(SET);
    Some(out)
}

/// The activation script `text` without what [`with_link_mode`] added; `None` when it has
/// none of it. For a venv that stops being a venvfs venv (`venvfs materialize`): in a plain
/// venv, uv's symlink mode would link every file into uv's cache, and an edit through such
/// a link would change the cache.
pub fn without_link_mode(text: &str) -> Option<String> {
    if !text.contains(MARK) {
        return None;
    }
    let out = text.replacen(RESTORE, "", 1);
    Some(out.strip_suffix(SET).unwrap_or(&out).to_owned())
}

/// Makes `VENV/bin/activate` set uv's link mode (see the module docs). Returns whether it
/// changed the script. Call it on a venv that is not mounted, or with `root` beneath the
/// mount.
pub fn set_link_mode(root: &Path) -> io::Result<bool> {
    let script = root.join("bin").join("activate");
    let text = match std::fs::read_to_string(&script) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match with_link_mode(&text) {
        Some(patched) => {
            let mode = file_mode(&script);
            crate::fsutil::write_atomic(&script, patched.as_bytes(), mode)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

#[cfg(unix)]
fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn file_mode(_path: &Path) -> u32 {
    0o644
}

/// The hint for a venv inside a uv project that does not set a link mode: the line that
/// makes `uv sync`, `uv add` and `uv run` link files into the venv without copying, even
/// from a shell where the venv is not activated. `None` when there is no project above the
/// venv or it already sets one.
pub fn project_hint(venv: &Path) -> Option<String> {
    let project = venv.parent()?;
    let pyproject = project.join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).ok()?;
    let uv_toml = std::fs::read_to_string(project.join("uv.toml")).unwrap_or_default();
    if text.contains("link-mode") || uv_toml.contains("link-mode") {
        return None;
    }
    Some(format!(
        "hint: so that `uv sync` and `uv add` link packages into this venv instead of copying \
         them, add to {}:\n  [tool.uv]\n  link-mode = \"symlink\"\n  (or export UV_LINK_MODE=symlink; \
         `source {}/bin/activate` sets it)",
        pyproject.display(),
        venv.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VENV_ACTIVATE: &str = "deactivate () {\n    unset VIRTUAL_ENV\n}\n\ndeactivate nondestructive\nVIRTUAL_ENV=/v\nexport VIRTUAL_ENV\n";

    #[test]
    fn patches_once_and_keeps_the_script() {
        let patched = with_link_mode(VENV_ACTIVATE).expect("patched");
        assert!(patched.starts_with("deactivate () {\n    # venvfs"));
        assert!(patched.contains("unset VIRTUAL_ENV\n}\n\ndeactivate nondestructive"));
        assert!(patched.trim_end().ends_with("export UV_LINK_MODE"));
        assert_eq!(with_link_mode(&patched), None, "already set");
        assert_eq!(
            with_link_mode("echo unknown\n"),
            None,
            "no deactivate function"
        );
    }

    #[test]
    fn unpatching_gives_the_script_back() {
        let patched = with_link_mode(VENV_ACTIVATE).unwrap();
        assert_eq!(without_link_mode(&patched).as_deref(), Some(VENV_ACTIVATE));
        assert_eq!(without_link_mode(VENV_ACTIVATE), None, "nothing to undo");
    }

    /// Runs the patched script in bash: activation sets the mode, deactivation restores
    /// what the shell had (unset, or a value of its own).
    #[test]
    #[cfg(unix)]
    fn bash_sets_and_restores_the_link_mode() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("activate");
        std::fs::write(&script, with_link_mode(VENV_ACTIVATE).unwrap()).unwrap();
        let run = |before: &str| {
            let code = format!(
                "{before}; source {}; echo \"in=${{UV_LINK_MODE-unset}}\"; deactivate; echo \"out=${{UV_LINK_MODE-unset}}\"",
                script.display()
            );
            let out = std::process::Command::new("bash")
                .args(["-c", &code])
                .output()
                .expect("bash runs");
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(run("unset UV_LINK_MODE"), "in=symlink\nout=unset\n");
        assert_eq!(run("export UV_LINK_MODE=copy"), "in=symlink\nout=copy\n");
    }
}
