//! uv's link mode for a venvfs venv: the path of least resistance.
//!
//! uv installs into a venv on another filesystem than its cache by copying every file,
//! unless told to link them with symlinks (`UV_LINK_MODE=symlink`, or `link-mode =
//! "symlink"` in the project's uv configuration). In a mounted venvfs venv such a symlink
//! becomes a reference (see `overlay/reference.rs`): nothing is copied and the cache is
//! never written. So a venv that venvfs creates or mounts sets the variable while it is
//! activated, and `deactivate` puts back whatever the shell had before, so the setting
//! does not leak into other venvs used from the same shell. One mechanism, in each shell's
//! syntax ([`Shell`]), for the scripts `python -m venv` and uv write into the scripts
//! directory (`bin/`, `Scripts\` on Windows): `activate` (bash and zsh; Git Bash on
//! Windows), `activate.fish`, `Activate.ps1` (PowerShell; uv spells it `activate.ps1`),
//! `activate.csh` (csh, tcsh: its `deactivate` is a one-line alias), and cmd's
//! `activate.bat` with its `deactivate.bat`. (Nushell's `activate.nu` is left as it is.) A project's own
//! configuration is never edited: venvfs prints the line to add instead.

use std::io;
use std::path::{Path, PathBuf};

use crate::install::layout::OsName;

/// Set in the shell while the venv's activation sets `UV_LINK_MODE` (so that `deactivate`
/// only undoes what activation did); also how an already patched script is recognized.
const MARK: &str = "_VENVFS_LINK_MODE_SET";

/// One shell's activation and what venvfs adds to it.
struct Shell {
    /// The script activation runs, in the scripts directory.
    script: &'static str,
    /// Another spelling of its name, used where `script` is missing (uv writes
    /// `activate.ps1`; on Windows the two are one name anyway).
    alias: Option<&'static str>,
    /// The script `deactivate` runs: `script` itself, which defines a `deactivate`
    /// function, or a script of its own (cmd's `deactivate.bat`).
    deactivate_script: &'static str,
    /// How the line starts after which `deactivate` gets the restore (the function's first
    /// line); empty: at the top of the script (cmd's `deactivate.bat`).
    deactivate: &'static str,
    /// What `deactivate` runs first: restore `UV_LINK_MODE` as it was before activation.
    restore: &'static str,
    /// What activation runs last.
    set: &'static str,
    /// How a line starts that the set goes before, if the script has one (PowerShell's
    /// signature block, which must stay last); else the set goes at the end.
    set_before: Option<&'static str>,
    /// The restore goes right after `deactivate` on its line, not on the next line (csh's
    /// `deactivate` is a one-line alias).
    restore_inline: bool,
}

/// bash and zsh (`activate`).
const POSIX: Shell = Shell {
    script: "activate",
    alias: None,
    deactivate_script: "activate",
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
    set_before: None,
    restore_inline: false,
};

/// fish (`activate.fish`).
const FISH: Shell = Shell {
    script: "activate.fish",
    alias: None,
    deactivate_script: "activate.fish",
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
    set_before: None,
    restore_inline: false,
};

/// PowerShell (`Activate.ps1`; the name is matched without regard to case on Windows, and
/// uv writes `activate.ps1`). Its activation runs `deactivate -nondestructive` first, as
/// bash's does, so a second activation restores before it saves again.
const POWERSHELL: Shell = Shell {
    script: "Activate.ps1",
    alias: Some("activate.ps1"),
    deactivate_script: "Activate.ps1",
    deactivate: "function global:deactivate",
    restore: r#"    # venvfs: put back the uv link mode the shell had before activation
    if (Test-Path -Path Env:_VENVFS_LINK_MODE_SET) {
        if (Test-Path -Path Env:_VENVFS_OLD_UV_LINK_MODE) {
            $env:UV_LINK_MODE = $env:_VENVFS_OLD_UV_LINK_MODE
            Remove-Item -Path Env:_VENVFS_OLD_UV_LINK_MODE
        }
        else {
            Remove-Item -Path Env:UV_LINK_MODE -ErrorAction SilentlyContinue
        }
        Remove-Item -Path Env:_VENVFS_LINK_MODE_SET
    }
"#,
    set: r#"
# venvfs: uv links packages into this venv as references instead of copying them
if (Test-Path -Path Env:UV_LINK_MODE) {
    $env:_VENVFS_OLD_UV_LINK_MODE = $env:UV_LINK_MODE
}
$env:_VENVFS_LINK_MODE_SET = "1"
$env:UV_LINK_MODE = "symlink"
"#,
    set_before: Some("# SIG # Begin signature block"),
    restore_inline: false,
};

/// cmd (`activate.bat`, `deactivate.bat`). Its activation does not deactivate first, so
/// the shell's own value is saved only by the first activation. `deactivate.bat` gets the
/// restore at its top, each line `@`-prefixed (newer ones have no `@echo off`). (cmd has no
/// empty variables: restoring an unset one and an empty one are the same.)
const CMD: Shell = Shell {
    script: "activate.bat",
    alias: None,
    deactivate_script: "deactivate.bat",
    deactivate: "",
    restore: "@rem venvfs: put back the uv link mode the shell had before activation\r\n\
@if defined _VENVFS_LINK_MODE_SET (\r\n\
    @set \"UV_LINK_MODE=%_VENVFS_OLD_UV_LINK_MODE%\"\r\n\
    @set _VENVFS_OLD_UV_LINK_MODE=\r\n\
    @set _VENVFS_LINK_MODE_SET=\r\n\
)\r\n",
    set:
        "\r\nrem venvfs: uv links packages into this venv as references instead of copying them\r\n\
if not defined _VENVFS_LINK_MODE_SET set \"_VENVFS_OLD_UV_LINK_MODE=%UV_LINK_MODE%\"\r\n\
set _VENVFS_LINK_MODE_SET=1\r\n\
set UV_LINK_MODE=symlink\r\n",
    set_before: None,
    restore_inline: false,
};

/// csh and tcsh (`activate.csh`), whose `deactivate` is an alias on one line: the restore
/// goes at its start, in the alias's own `test ... && ...` style (its quotes keep the
/// variables for when it runs).
const CSH: Shell = Shell {
    script: "activate.csh",
    alias: None,
    deactivate_script: "activate.csh",
    deactivate: "alias deactivate '",
    restore: r#"test $?_VENVFS_LINK_MODE_SET != 0 && unsetenv UV_LINK_MODE && unset _VENVFS_LINK_MODE_SET; test $?_VENVFS_OLD_UV_LINK_MODE != 0 && setenv UV_LINK_MODE "$_VENVFS_OLD_UV_LINK_MODE:q" && unset _VENVFS_OLD_UV_LINK_MODE; "#,
    set: r#"
# venvfs: uv links packages into this venv as references instead of copying them
if ( $?UV_LINK_MODE ) then
    set _VENVFS_OLD_UV_LINK_MODE="$UV_LINK_MODE:q"
endif
set _VENVFS_LINK_MODE_SET=1
setenv UV_LINK_MODE symlink
"#,
    set_before: None,
    restore_inline: true,
};

const SHELLS: [Shell; 5] = [POSIX, FISH, CSH, POWERSHELL, CMD];

/// The line ending a script uses (cmd's are CRLF as `python -m venv` writes them).
fn newline(text: &str) -> &'static str {
    if text.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    }
}

impl Shell {
    /// `text` (the deactivate script) with the restore as the first thing `deactivate`
    /// runs; `None` if it has no `deactivate` line (a script venvfs does not know).
    fn add_restore(&self, text: &str) -> Option<String> {
        if self.deactivate.is_empty() {
            return Some([self.restore, text].concat());
        }
        let start = line_start(text, self.deactivate)?;
        let at = match self.restore_inline {
            true => start + self.deactivate.len(),
            false => start + text[start..].find('\n')? + 1,
        };
        Some([&text[..at], self.restore, &text[at..]].concat())
    }

    /// `text` (the activation script) with the set as the last thing it runs.
    fn add_set(&self, text: &str) -> String {
        if let Some(at) = self.set_before.and_then(|b| line_start(text, b)) {
            return [&text[..at], self.set.trim_start(), "\n", &text[at..]].concat();
        }
        let mut out = text.to_owned();
        if !out.ends_with('\n') {
            out.push_str(newline(text));
        }
        out.push_str(self.set);
        out
    }

    fn remove_restore(&self, text: &str) -> String {
        text.replacen(self.restore, "", 1)
    }

    fn remove_set(&self, text: &str) -> String {
        if let Some(t) = text.strip_suffix(self.set) {
            return t.to_owned();
        }
        let inserted = [self.set.trim_start(), "\n"].concat();
        match text.contains(&inserted) {
            true => text.replacen(&inserted, "", 1),
            false => text.replacen(self.set, "", 1),
        }
    }

    /// A one-script shell's `text` setting uv's link mode; `None` when it already does, or
    /// has no `deactivate` function to undo it in.
    fn with_link_mode(&self, text: &str) -> Option<String> {
        if text.contains(MARK) {
            return None;
        }
        Some(self.add_set(&self.add_restore(text)?))
    }

    /// A one-script shell's `text` without what [`Shell::with_link_mode`] added; `None`
    /// when it has none.
    fn without_link_mode(&self, text: &str) -> Option<String> {
        if !text.contains(MARK) {
            return None;
        }
        Some(self.remove_set(&self.remove_restore(text)))
    }

    /// The activation and deactivation scripts (`texts`, in that order; one for a
    /// one-script shell) setting uv's link mode; `None` when they already do, or
    /// deactivation has nowhere to undo it.
    fn patch(&self, texts: &[String]) -> Option<Vec<String>> {
        match texts {
            [one] => Some(vec![self.with_link_mode(one)?]),
            [act, deact] => {
                if act.contains(MARK) || deact.contains(MARK) {
                    return None;
                }
                Some(vec![self.add_set(act), self.add_restore(deact)?])
            }
            _ => None,
        }
    }

    /// What [`Shell::patch`] added, taken out again; `None` when there is none.
    fn unpatch(&self, texts: &[String]) -> Option<Vec<String>> {
        match texts {
            [one] => Some(vec![self.without_link_mode(one)?]),
            [act, deact] => {
                if !act.contains(MARK) && !deact.contains(MARK) {
                    return None;
                }
                Some(vec![self.remove_set(act), self.remove_restore(deact)])
            }
            _ => None,
        }
    }

    /// The names of the shell's scripts in the scripts directory `dir`: activation's (as
    /// spelled there), then deactivation's if it has its own.
    fn names(&self, dir: &Path) -> Vec<&'static str> {
        let script = match self.alias {
            Some(alias) if !dir.join(self.script).exists() && dir.join(alias).exists() => alias,
            _ => self.script,
        };
        let mut names = vec![script];
        if self.deactivate_script != self.script {
            names.push(self.deactivate_script);
        }
        names
    }

    /// What rewriting the shell's scripts in `dir` with `change` writes, keeping their
    /// modes, in the order to write it. A shell with a script missing is left alone.
    /// Deactivation's own script is written before activation's when patching, after it
    /// when unpatching (`change` says which: `restore_first`), so activation never sets
    /// what deactivation would not restore.
    fn rewrite(
        &self,
        dir: &Path,
        change: impl Fn(&Shell, &[String]) -> Option<Vec<String>>,
        restore_first: bool,
    ) -> io::Result<Vec<Rewrite>> {
        let names = self.names(dir);
        let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
        let mut texts = Vec::new();
        for script in &paths {
            match std::fs::symlink_metadata(script) {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Ok(Vec::new()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
            texts.push(std::fs::read_to_string(script)?);
        }
        let Some(changed) = change(self, &texts) else {
            return Ok(Vec::new());
        };
        let mut order: Vec<usize> = (0..paths.len()).collect();
        if restore_first {
            order.reverse();
        }
        Ok(order
            .into_iter()
            .filter(|&i| changed[i] != texts[i])
            .map(|i| Rewrite {
                name: names[i],
                mode: file_mode(&paths[i]),
                path: paths[i].clone(),
                text: changed[i].clone(),
            })
            .collect())
    }
}

/// A script to write (see [`Shell::rewrite`]).
struct Rewrite {
    name: &'static str,
    path: PathBuf,
    text: String,
    mode: u32,
}

/// Writes what every shell's [`Shell::rewrite`] with `change` plans, all scripts at once
/// (one flush to disk for all, instead of one per script: through a mount each is a round
/// trip and a journal commit); the names of the scripts written.
fn rewrite_all(
    root: &Path,
    change: impl Fn(&Shell, &[String]) -> Option<Vec<String>> + Copy,
    restore_first: bool,
) -> io::Result<Vec<&'static str>> {
    let dir = scripts_dir(root);
    let mut all = Vec::new();
    for shell in &SHELLS {
        all.extend(shell.rewrite(&dir, change, restore_first)?);
    }
    let files: Vec<(&Path, &[u8], u32)> = all
        .iter()
        .map(|r| (r.path.as_path(), r.text.as_bytes(), r.mode))
        .collect();
    crate::fsutil::write_all_atomic(&files)?;
    Ok(all.iter().map(|r| r.name).collect())
}

/// How far into `text` the first line starting with `prefix` starts.
fn line_start(text: &str, prefix: &str) -> Option<usize> {
    if text.starts_with(prefix) {
        return Some(0);
    }
    text.match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| text[i..].starts_with(prefix))
}

/// The venv's scripts directory, as its layout has it (`bin`, `Scripts`; see
/// [`OsName::of_venv`]).
pub fn scripts_dir(root: &Path) -> PathBuf {
    root.join(OsName::of_venv(root).scripts_dir())
}

/// The activation script a venv of `os` is known by, in its scripts directory: bash's
/// `activate`, cmd's `activate.bat` on Windows.
pub fn main_script(os: OsName) -> &'static str {
    match os {
        OsName::Posix => POSIX.script,
        OsName::Nt => CMD.script,
    }
}

/// Whether the activation script `text` sets uv's symlink link mode (as venvfs makes it,
/// or by a line of the user's own).
pub fn sets_link_mode(text: &str) -> bool {
    text.contains(MARK) || text.contains("UV_LINK_MODE=symlink")
}

/// The names of the scripts venvfs may change, in the scripts directory.
pub const SCRIPTS: [&str; 6] = [
    "activate",
    "activate.fish",
    "Activate.ps1",
    "activate.ps1",
    "activate.bat",
    "deactivate.bat",
];

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
/// cache. Returns the scripts it changed (names in the scripts directory).
pub fn unset_link_mode(root: &Path) -> io::Result<Vec<&'static str>> {
    rewrite_all(root, Shell::unpatch, false)
}

/// Makes the venv's activation scripts (see the module docs) set uv's link mode. Returns
/// whether it changed the main one ([`main_script`]).
/// Call it on a venv that is not mounted, or with `root` beneath the mount.
pub fn set_link_mode(root: &Path) -> io::Result<bool> {
    let main = main_script(OsName::of_venv(root));
    Ok(rewrite_all(root, Shell::patch, true)?.contains(&main))
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

    /// uv's `activate.csh`, shortened (the alias line as uv and `python -m venv` write it).
    #[cfg(unix)]
    const ACTIVATE_CSH: &str = "set newline='\\\n'\n\nalias deactivate 'test $?_OLD_VIRTUAL_PATH != 0 && setenv PATH \"$_OLD_VIRTUAL_PATH:q\" && unset _OLD_VIRTUAL_PATH; rehash; unsetenv VIRTUAL_ENV; test \"\\!:*\" != \"nondestructive\" && unalias deactivate'\n\ndeactivate nondestructive\n\nsetenv VIRTUAL_ENV '/v'\n\nset _OLD_VIRTUAL_PATH=\"$PATH:q\"\nsetenv PATH \"$VIRTUAL_ENV:q/bin:$PATH:q\"\n\nrehash\n";

    /// Runs the patched script in tcsh: activation sets the mode, deactivation restores what
    /// the shell had (unset, or a value of its own), and activating twice still restores.
    #[test]
    #[cfg(unix)]
    fn csh_sets_and_restores_the_link_mode() {
        let patched = CSH.with_link_mode(ACTIVATE_CSH).expect("patched");
        assert_eq!(CSH.with_link_mode(&patched), None, "already set");
        assert_eq!(
            CSH.without_link_mode(&patched).as_deref(),
            Some(ACTIVATE_CSH)
        );
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("activate.csh");
        std::fs::write(&script, patched).unwrap();
        let run = |before: &str, times: usize| {
            // (one command a line: csh expands aliases when it reads a line, so `deactivate`
            // on the line that sources the script would not be the alias yet)
            let source = vec![format!("source {}", script.display()); times].join("\n");
            let code = format!(
                "{before}\n{source}\necho \"in=$UV_LINK_MODE\"\ndeactivate\nif ($?UV_LINK_MODE) then\necho \"out=$UV_LINK_MODE\"\nelse\necho out=unset\nendif"
            );
            let out = std::process::Command::new("tcsh")
                .args(["-f", "-c", &code])
                .output()
                .expect("tcsh runs the test (apt-get install tcsh)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(run("unsetenv UV_LINK_MODE", 1), "in=symlink\nout=unset\n");
        assert_eq!(run("setenv UV_LINK_MODE copy", 1), "in=symlink\nout=copy\n");
        assert_eq!(run("setenv UV_LINK_MODE copy", 2), "in=symlink\nout=copy\n");
    }

    const PS1: &str = "function global:deactivate ([switch]$NonDestructive) {\n    Remove-Item -Path env:VIRTUAL_ENV\n}\n\ndeactivate -nondestructive\n$env:VIRTUAL_ENV = $VenvDir\n\n# SIG # Begin signature block\n# MIIe\n# SIG # End signature block\n";
    const ACTIVATE_BAT: &str = "@echo off\r\n\r\nset \"VIRTUAL_ENV=C:\\v\"\r\n\r\n:END\r\n";
    const DEACTIVATE_BAT: &str = "@if defined _OLD_VIRTUAL_PROMPT (\r\n    @set \"PROMPT=%_OLD_VIRTUAL_PROMPT%\"\r\n)\r\n@set VIRTUAL_ENV=\r\n\r\n:END\r\n";

    /// PowerShell: the restore first in `deactivate`, the set before the signature block
    /// (which must stay last), and unpatching gives the script back.
    #[test]
    fn powershell_patch() {
        let patched = POWERSHELL.with_link_mode(PS1).expect("patched");
        assert!(patched
            .starts_with("function global:deactivate ([switch]$NonDestructive) {\n    # venvfs"));
        let set = patched.find("$env:UV_LINK_MODE = \"symlink\"").unwrap();
        let sig = patched.find("# SIG # Begin signature block").unwrap();
        assert!(patched.find("$env:VIRTUAL_ENV = $VenvDir").unwrap() < set && set < sig);
        assert!(patched.ends_with("# SIG # End signature block\n"));
        assert_eq!(POWERSHELL.with_link_mode(&patched), None, "already set");
        assert_eq!(POWERSHELL.without_link_mode(&patched).as_deref(), Some(PS1));
        // uv's has no signature: the set goes at the end
        let unsigned = "function global:deactivate {\n}\n";
        let patched = POWERSHELL.with_link_mode(unsigned).unwrap();
        assert!(patched.ends_with("$env:UV_LINK_MODE = \"symlink\"\n"));
        assert_eq!(
            POWERSHELL.without_link_mode(&patched).as_deref(),
            Some(unsigned)
        );
    }

    /// cmd: the set at the end of `activate.bat`, the restore at the top of
    /// `deactivate.bat`, both undone by unpatching.
    #[test]
    fn cmd_patch() {
        let texts = [ACTIVATE_BAT.to_owned(), DEACTIVATE_BAT.to_owned()];
        let patched = CMD.patch(&texts).expect("patched");
        assert!(patched[0].starts_with(ACTIVATE_BAT));
        assert!(patched[0].ends_with("set UV_LINK_MODE=symlink\r\n"));
        assert!(patched[1].starts_with("@rem venvfs"));
        assert!(patched[1].ends_with(DEACTIVATE_BAT));
        assert_eq!(CMD.patch(&patched), None, "already set");
        assert_eq!(CMD.unpatch(&patched), Some(texts.to_vec()));
        assert_eq!(CMD.unpatch(&texts), None, "nothing to undo");
    }

    /// Every shell's scripts in the scripts directory of this system's venvs: patched
    /// once, the main one reported, and unpatched back to what they were.
    #[test]
    fn scripts_directory_round_trip() {
        let root = tempfile::tempdir().unwrap();
        let dir = scripts_dir(root.path());
        std::fs::create_dir_all(&dir).unwrap();
        let originals = [
            ("activate", VENV_ACTIVATE),
            ("activate.fish", "function deactivate -d 'Exit'\nend\n"),
            ("Activate.ps1", PS1),
            ("activate.bat", ACTIVATE_BAT),
            ("deactivate.bat", DEACTIVATE_BAT),
        ];
        for (name, text) in originals {
            std::fs::write(dir.join(name), text).unwrap();
        }
        assert!(set_link_mode(root.path()).unwrap());
        for (name, _) in originals {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            assert!(text.contains(MARK), "{name}");
        }
        assert!(!set_link_mode(root.path()).unwrap(), "already set");
        let mut changed = unset_link_mode(root.path()).unwrap();
        changed.sort();
        let mut all: Vec<_> = originals.iter().map(|(name, _)| *name).collect();
        all.sort();
        assert_eq!(changed, all);
        for (name, text) in originals {
            assert_eq!(
                std::fs::read_to_string(dir.join(name)).unwrap(),
                text,
                "{name}"
            );
        }
    }

    /// Runs the patched cmd scripts in cmd (Windows; under Wine in scripts/windows-check):
    /// activation sets the mode, deactivation restores the shell's own.
    #[test]
    #[cfg(windows)]
    fn cmd_sets_and_restores_the_link_mode() {
        let dir = tempfile::tempdir().unwrap();
        let texts = [ACTIVATE_BAT.to_owned(), DEACTIVATE_BAT.to_owned()];
        let patched = CMD.patch(&texts).unwrap();
        std::fs::write(dir.path().join("activate.bat"), &patched[0]).unwrap();
        std::fs::write(dir.path().join("deactivate.bat"), &patched[1]).unwrap();
        let run = |before: &str| {
            let driver = dir.path().join("driver.bat");
            std::fs::write(
                &driver,
                format!(
                    "@echo off\r\n{before}\r\ncall \"{0}\\activate.bat\"\r\necho in=%UV_LINK_MODE%\r\ncall \"{0}\\deactivate.bat\"\r\necho out=%UV_LINK_MODE%\r\n",
                    dir.path().display()
                ),
            )
            .unwrap();
            let out = std::process::Command::new("cmd")
                .arg("/c")
                .arg(&driver)
                .output()
                .expect("cmd runs");
            String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n")
        };
        assert_eq!(run("set UV_LINK_MODE="), "in=symlink\nout=\n");
        assert_eq!(run("set UV_LINK_MODE=copy"), "in=symlink\nout=copy\n");
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
