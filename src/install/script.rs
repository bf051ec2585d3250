//! The contents uv writes into a venv's `bin/`: launcher scripts for entry points, and
//! `.data/scripts` files whose `#!python` shebang is pointed at the venv's interpreter.
//! On Windows (`Scripts\`) the launcher script is the `__main__.py` of an `.exe` launcher
//! (see `launcher.rs`), and shebangs name `python.exe` or `pythonw.exe` as they are.

use std::path::Path;

use super::entry_points::EntryPoint;

/// The shebang (without line break) uv gives a script run by `python` (POSIX, not a
/// relocatable venv).
///
/// Like pip (distlib), a path that has a space, or that would make the `#!` line longer than
/// 127 bytes, cannot be run by the kernel directly; the script then starts with a `/bin/sh`
/// line that re-executes it with the interpreter, which Python reads as a string literal.
pub fn shebang(python: &Path) -> String {
    let exe = python.to_string_lossy();
    if 2 + exe.len() + 1 > 127 || exe.contains(' ') {
        let quoted = exe.replace('\'', r#"'"'"'"#);
        return format!("#!/bin/sh\n'''exec' '{quoted}' \"$0\" \"$@\"\n' '''");
    }
    format!("#!{exe}")
}

/// The launcher script uv writes in `bin/` for an entry point (console or GUI alike), given
/// the interpreter path written in its shebang (the venv's `bin/python`, absolute).
///
/// This is distlib's template without its `import re`, byte for byte what uv writes.
pub fn launcher_script(ep: &EntryPoint, python: &Path) -> String {
    launcher_script_with(ep, &shebang(python))
}

/// The shebang uv writes on Windows: the interpreter's path as it is, spaces and all (the
/// launcher, not a kernel, reads it).
pub fn shebang_nt(python: &str) -> String {
    format!("#!{python}")
}

/// [`launcher_script`] under the shebang line `shebang` (without line break).
pub fn launcher_script_with(ep: &EntryPoint, shebang: &str) -> String {
    let module = &ep.module;
    let import = ep.import_name();
    let function = &ep.function;
    format!(
        "{shebang}\n\
         # -*- coding: utf-8 -*-\n\
         import sys\n\
         from {module} import {import}\n\
         if __name__ == \"__main__\":\n\
         \x20   if sys.argv[0].endswith(\"-script.pyw\"):\n\
         \x20       sys.argv[0] = sys.argv[0][:-11]\n\
         \x20   elif sys.argv[0].endswith(\".exe\"):\n\
         \x20       sys.argv[0] = sys.argv[0][:-4]\n\
         \x20   sys.exit({function}())\n"
    )
}

/// A `.data/scripts` file rewritten for the venv, if it needs it: when its content starts
/// with exactly `#!python` (which covers `#!pythonw` and `#!python3 -u`), its whole first
/// line is replaced by [`shebang`] plus `\n`; the first line ends at the first `\n`, `\r\n`
/// or `\r` (or the end of the file), and the rest is kept byte for byte. `None` when the
/// file does not start with `#!python` and is installed unchanged.
pub fn rewrite_script_shebang(content: &[u8], python: &Path) -> Option<Vec<u8>> {
    let (_, rest) = split_python_shebang(content)?;
    let mut out = shebang(python).into_bytes();
    out.push(b'\n');
    out.extend_from_slice(rest);
    Some(out)
}

/// [`rewrite_script_shebang`] as uv does it on Windows: the new first line is
/// `#!PYTHON\r\n`, where PYTHON is `pythonw` (the venv's `pythonw.exe`) when the old line
/// starts with `#!pythonw` (a GUI script), else `python`.
pub fn rewrite_script_shebang_nt(content: &[u8], python: &str, pythonw: &str) -> Option<Vec<u8>> {
    let (gui, rest) = split_python_shebang(content)?;
    let mut out = shebang_nt(if gui { pythonw } else { python }).into_bytes();
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(rest);
    Some(out)
}

/// For content starting with `#!python`: whether the next byte is `w` (`#!pythonw`), and
/// what follows the first line.
fn split_python_shebang(content: &[u8]) -> Option<(bool, &[u8])> {
    let rest = content.strip_prefix(b"#!python")?;
    let gui = rest.first() == Some(&b'w');
    let rest = match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
        None => &[][..],
        Some(i) if rest[i..].starts_with(b"\r\n") => &rest[i + 2..],
        Some(i) => &rest[i + 1..],
    };
    Some((gui, rest))
}

/// Whether uv leaves the `.data/scripts` file `name` uninstalled because an entry point
/// provides it: pip's rule, comparing the name without a `.exe`, `-script.py` or `.pya`
/// suffix against the entry points' names.
pub fn script_replaced_by_entry_point(name: &str, entry_points: &[EntryPoint]) -> bool {
    let stem = name
        .strip_suffix(".exe")
        .or_else(|| name.strip_suffix("-script.py"))
        .or_else(|| name.strip_suffix(".pya"))
        .unwrap_or(name);
    entry_points.iter().any(|ep| ep.name == stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(name: &str, module: &str, function: &str) -> EntryPoint {
        EntryPoint {
            name: name.into(),
            module: module.into(),
            function: function.into(),
            gui: false,
        }
    }

    /// `bin/pip` as uv 0.13.9 wrote it into the venv `/tmp/x`.
    const UV_PIP_LAUNCHER: &str = r#"#!/tmp/x/bin/python
# -*- coding: utf-8 -*-
import sys
from pip._internal.cli.main import cli
if __name__ == "__main__":
    if sys.argv[0].endswith("-script.pyw"):
        sys.argv[0] = sys.argv[0][:-11]
    elif sys.argv[0].endswith(".exe"):
        sys.argv[0] = sys.argv[0][:-4]
    sys.exit(cli())
"#;

    #[test]
    fn launcher_is_uvs() {
        let pip = ep("pip", "pip._internal.cli.main", "cli");
        assert_eq!(
            launcher_script(&pip, Path::new("/tmp/x/bin/python")),
            UV_PIP_LAUNCHER
        );
        // Dotted attribute: import the first name, call the whole path.
        let s = launcher_script(&ep("a", "m.n", "f.g.h"), Path::new("/v/bin/python"));
        assert!(s.contains("\nfrom m.n import f\n"), "{s}");
        assert!(s.ends_with("    sys.exit(f.g.h())\n"), "{s}");
    }

    #[test]
    fn shebang_wraps_spaces_quotes_and_long_paths() {
        assert_eq!(
            shebang(Path::new("/tmp/probe/sp ace/bin/python")),
            "#!/bin/sh\n'''exec' '/tmp/probe/sp ace/bin/python' \"$0\" \"$@\"\n' '''"
        );
        assert_eq!(
            shebang(Path::new("/a b/it's/python")),
            "#!/bin/sh\n'''exec' '/a b/it'\"'\"'s/python' \"$0\" \"$@\"\n' '''"
        );
        let fits = format!("/{}", "d".repeat(123));
        assert_eq!(fits.len(), 124);
        assert_eq!(shebang(Path::new(&fits)), format!("#!{fits}"));
        let long = format!("/{}", "d".repeat(124));
        assert!(shebang(Path::new(&long)).starts_with("#!/bin/sh\n'''exec' '/ddd"));
    }

    #[test]
    fn shebang_rewrite() {
        let py = Path::new("/tmp/y/bin/python");
        let r = |c: &[u8]| rewrite_script_shebang(c, py);
        // Byte-for-byte what uv 0.13.9 wrote for these `.data/scripts` files.
        assert_eq!(
            r(b"#!python\nprint('hello')\n").unwrap(),
            b"#!/tmp/y/bin/python\nprint('hello')\n"
        );
        assert_eq!(
            r(b"#!pythonw -u\r\nprint('hellow')\n").unwrap(),
            b"#!/tmp/y/bin/python\nprint('hellow')\n"
        );
        assert_eq!(
            r(b"#!python -x\rprint(1)\n").unwrap(),
            b"#!/tmp/y/bin/python\nprint(1)\n"
        );
        assert_eq!(
            r(b"#!python\r\rprint(1)\n").unwrap(),
            b"#!/tmp/y/bin/python\n\rprint(1)\n"
        );
        assert_eq!(
            r(b"#!python\n\nprint(1)\n").unwrap(),
            b"#!/tmp/y/bin/python\n\nprint(1)\n"
        );
        assert_eq!(r(b"#!python").unwrap(), b"#!/tmp/y/bin/python\n");
        assert_eq!(
            r(b"#!pythonXYZ\n\x00\xff").unwrap(),
            b"#!/tmp/y/bin/python\n\x00\xff"
        );
        assert_eq!(r(b"#!py"), None);
        assert_eq!(r(b""), None);
        assert_eq!(r(b"#!/bin/sh\necho\n"), None);
        assert_eq!(r(b"#! python\n"), None);
        assert_eq!(r(b"#!/usr/bin/env python\n"), None);
    }

    #[test]
    fn windows_shebangs() {
        let (py, pyw) = (r"C:\v e\Scripts\python.exe", r"C:\v e\Scripts\pythonw.exe");
        let r = |c: &[u8]| rewrite_script_shebang_nt(c, py, pyw);
        assert_eq!(
            r(b"#!python\nprint('hello')\n").unwrap(),
            b"#!C:\\v e\\Scripts\\python.exe\r\nprint('hello')\n"
        );
        assert_eq!(
            r(b"#!pythonw -u\r\nprint('hellow')\n").unwrap(),
            b"#!C:\\v e\\Scripts\\pythonw.exe\r\nprint('hellow')\n"
        );
        assert_eq!(
            r(b"#!python").unwrap(),
            b"#!C:\\v e\\Scripts\\python.exe\r\n"
        );
        assert_eq!(r(b"#!/bin/sh\n"), None);
        let s = launcher_script_with(&ep("pip", "pip._internal.cli.main", "cli"), &shebang_nt(py));
        assert_eq!(
            s,
            UV_PIP_LAUNCHER.replace("#!/tmp/x/bin/python", r"#!C:\v e\Scripts\python.exe")
        );
    }

    #[test]
    fn scripts_replaced_by_entry_points() {
        let eps = [ep("tool", "m", "f")];
        for name in ["tool", "tool.exe", "tool-script.py", "tool.pya"] {
            assert!(script_replaced_by_entry_point(name, &eps), "{name}");
        }
        for name in ["tool.py", "Tool", "tool.exe.exe", "other"] {
            assert!(!script_replaced_by_entry_point(name, &eps), "{name}");
        }
    }
}
