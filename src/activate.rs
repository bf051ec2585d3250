//! uv's link mode for a venvfs venv: the path of least resistance.
//!
//! uv installs into a venv on another filesystem than its cache by copying every file,
//! unless told to link them with symlinks (`UV_LINK_MODE=symlink`, or `link-mode =
//! "symlink"` in the project's uv configuration). In a mounted venvfs venv such a symlink
//! becomes a reference (see `overlay/reference.rs`): nothing is copied and the cache is
//! never written. So a venv that venvfs creates or mounts sets the variable while it is
//! activated: its `bin/activate` (bash and zsh, as written by `python -m venv` and by uv)
//! and `bin/activate.fish` export `UV_LINK_MODE=symlink`, and `deactivate` puts back
//! whatever the shell had before, so the setting does not leak into other venvs used from
//! the same shell. (csh's `deactivate` is a one-line alias, Nushell's an overlay: those
//! scripts are left as they are.) A project's own configuration is never edited: venvfs
//! prints the line to add instead.

use std::io;
use std::path::Path;

/// Set in the shell while the venv's activation sets `UV_LINK_MODE` (so that `deactivate`
/// only undoes what activation did); also how an already patched script is recognized.
const MARK: &str = "_VENVFS_LINK_MODE_SET";

/// One shell's activation script and what venvfs adds to it.
struct Shell {
    /// The script's name in `bin/`.
    script: &'static str,
    /// How the script's `deactivate` function starts (the restore goes after that line).
    deactivate: &'static str,
    /// What `deactivate` runs first: restore `UV_LINK_MODE` as it was before activation.
    restore: &'static str,
    /// What activation runs last.
    set: &'static str,
}

/// bash and zsh (`bin/activate`).
const POSIX: Shell = Shell {
    script: "activate",
    deactivate: "deactivate () {",
    restore: r#"    # venvfs: put back the uv link mode the shell had before activation
    if [ -n "${_VENVFS_LINK_MODE_SET:-}" ] ; then
        if [ -n "${_VENVFS_OLD_UV_LINK_MODE+x}" ] ; then
            UV_LINK_MODE="$_VENVFS_OLD_UV_LINK_MODE"
            export UV_LINK_MODE
        else
            unset UV_LINK_MODE
        fi
        unset _VENVFS_OLD_UV_LINK_MODE _VENVFS_LINK_MODE_SET
    fi
"#,
    set: r#"
# venvfs: uv links packages into this venv as references instead of copying them
unset _VENVFS_OLD_UV_LINK_MODE
if [ -n "${UV_LINK_MODE+x}" ] ; then
    _VENVFS_OLD_UV_LINK_MODE="$UV_LINK_MODE"
fi
_VENVFS_LINK_MODE_SET=1
UV_LINK_MODE=symlink
export UV_LINK_MODE
"#,
};

/// fish (`bin/activate.fish`).
const FISH: Shell = Shell {
    script: "activate.fish",
    deactivate: "function deactivate",
    restore: r#"    # venvfs: put back the uv link mode the shell had before activation
    if set -q _VENVFS_LINK_MODE_SET
        if set -q _VENVFS_OLD_UV_LINK_MODE
            set -gx UV_LINK_MODE $_VENVFS_OLD_UV_LINK_MODE
        else
            set -e UV_LINK_MODE
        end
        set -e _VENVFS_OLD_UV_LINK_MODE
        set -e _VENVFS_LINK_MODE_SET
    end
"#,
    set: r#"
# venvfs: uv links packages into this venv as references instead of copying them
set -e _VENVFS_OLD_UV_LINK_MODE
if set -q UV_LINK_MODE
    set -g _VENVFS_OLD_UV_LINK_MODE $UV_LINK_MODE
end
set -g _VENVFS_LINK_MODE_SET 1
set -gx UV_LINK_MODE symlink
"#,
};

const SHELLS: [Shell; 2] = [POSIX, FISH];

impl Shell {
    /// `text` setting uv's link mode; `None` when it already does, or has no `deactivate`
    /// function to undo it in (a script venvfs does not know).
    fn with_link_mode(&self, text: &str) -> Option<String> {
        if text.contains(MARK) {
            return None;
        }
        let start = text.find(self.deactivate)?;
        let at = start + text[start..].find('\n')? + 1;
        let mut out = String::with_capacity(text.len() + self.restore.len() + self.set.len());
        out.push_str(&text[..at]);
        out.push_str(self.restore);
        out.push_str(&text[at..]);
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(self.set);
        Some(out)
    }

    /// `text` without what [`Shell::with_link_mode`] added; `None` when it has none.
    fn without_link_mode(&self, text: &str) -> Option<String> {
        if !text.contains(MARK) {
            return None;
        }
        let out = text.replacen(self.restore, "", 1);
        Some(out.strip_suffix(self.set).unwrap_or(&out).to_owned())
    }

    /// Rewrites `root/bin/<script>` with `change`, keeping its mode; whether it changed.
    fn rewrite(&self, root: &Path, change: impl Fn(&str) -> Option<String>) -> io::Result<bool> {
        let script = root.join("bin").join(self.script);
        match std::fs::symlink_metadata(&script) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        let text = std::fs::read_to_string(&script)?;
        match change(&text) {
            Some(changed) => {
                let mode = file_mode(&script);
                crate::fsutil::write_atomic(&script, changed.as_bytes(), mode)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Makes the bash/zsh activation script `text` set uv's link mode; `None` when it already
/// does, or has no `deactivate` function to undo it in (a script venvfs does not know).
pub fn with_link_mode(text: &str) -> Option<String> {
    POSIX.with_link_mode(text)
}

/// The bash/zsh activation script `text` without what [`with_link_mode`] added; `None`
/// when it has none of it.
pub fn without_link_mode(text: &str) -> Option<String> {
    POSIX.without_link_mode(text)
}

/// Takes out of every activation script what [`set_link_mode`] added, for a venv that
/// stops being a venvfs venv (`venvfs materialize`): in a plain venv, uv's symlink mode
/// would link every file into uv's cache, and an edit through such a link would change the
/// cache. Returns the scripts it changed (`bin/`-relative names).
pub fn unset_link_mode(root: &Path) -> io::Result<Vec<&'static str>> {
    let mut changed = Vec::new();
    for shell in &SHELLS {
        if shell.rewrite(root, |t| shell.without_link_mode(t))? {
            changed.push(shell.script);
        }
    }
    Ok(changed)
}

/// Makes the venv's activation scripts (`bin/activate`, `bin/activate.fish`) set uv's link
/// mode (see the module docs). Returns whether it changed `bin/activate`. Call it on a venv
/// that is not mounted, or with `root` beneath the mount.
pub fn set_link_mode(root: &Path) -> io::Result<bool> {
    let mut posix = false;
    for shell in &SHELLS {
        let changed = shell.rewrite(root, |t| shell.with_link_mode(t))?;
        posix |= changed && shell.script == POSIX.script;
    }
    Ok(posix)
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

    /// Runs the patched fish script in fish, when fish is installed (the bash test above
    /// covers the logic everywhere; this one the fish syntax).
    #[test]
    #[cfg(unix)]
    fn fish_sets_and_restores_the_link_mode() {
        const FISH_ACTIVATE: &str = "function deactivate -d 'Exit'\n    set -e VIRTUAL_ENV\nend\n\ndeactivate nondestructive\nset -gx VIRTUAL_ENV /v\n";
        let patched = FISH.with_link_mode(FISH_ACTIVATE).expect("patched");
        assert_eq!(
            FISH.without_link_mode(&patched).as_deref(),
            Some(FISH_ACTIVATE)
        );
        if std::process::Command::new("fish")
            .arg("--version")
            .output()
            .is_err()
        {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("activate.fish");
        std::fs::write(&script, &patched).unwrap();
        let run = |before: &str| {
            let code = format!(
                "{before}; source {}; echo in=$UV_LINK_MODE; deactivate; echo out=$UV_LINK_MODE",
                script.display()
            );
            let out = std::process::Command::new("fish")
                .args(["-c", &code])
                .output()
                .expect("fish runs");
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(run("set -e UV_LINK_MODE"), "in=symlink\nout=\n");
        assert_eq!(run("set -gx UV_LINK_MODE copy"), "in=symlink\nout=copy\n");
    }
}
