//! `entry_points.txt`: the console and GUI scripts a wheel declares, read the way uv 0.13
//! reads them.
//!
//! The file is INI as Python's `ConfigParser(interpolation=None)` reads it, with
//! case-sensitive option names and `=` as the only delimiter:
//! - lines end at `\n`, `\r\n` or `\r`; a line whose first non-blank character is `#` or
//!   `;` is a comment (there are no inline comments: `a = m:f # x` is an invalid value);
//! - `[name]` starts a section (everything up to the last `]`, untrimmed, case-sensitive;
//!   text after the `]` is ignored); a duplicate section is an error, and so is an option
//!   before any section;
//! - `name = value` sets an option (both sides trimmed); a duplicate name in a section is an
//!   error; a line with no `=` or with an empty name is an error, reported only once the
//!   whole file is read (the first one), so a later duplicate is reported first;
//! - a line indented deeper than its option's line continues the value (joined by `\n`,
//!   blank lines in between kept), which then fails as an entry point value;
//! - options of a `[DEFAULT]` section are inherited by every other section.
//!
//! A value is `module:attr.path` optionally followed by `[extras]`, spaces allowed around
//! `:` and the brackets; extras are accepted and ignored (uv installs every script).

use std::fmt;

/// A console or GUI script declared in `entry_points.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPoint {
    /// The file name of the launcher in `bin/`.
    pub name: String,
    /// The module to import, e.g. `pip._internal.cli.main`.
    pub module: String,
    /// The object to call; may be a dotted attribute path, e.g. `main.run`.
    pub function: String,
    /// Declared in `[gui_scripts]` rather than `[console_scripts]` (same launcher on POSIX).
    pub gui: bool,
}

impl EntryPoint {
    /// The name the launcher imports from the module: the first part of `function`.
    pub fn import_name(&self) -> &str {
        self.function
            .split_once('.')
            .map_or(&self.function, |(first, _)| first)
    }
}

/// Why an INI line was refused (the reasons uv reports, as Python's `configparser` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IniErrorKind {
    MissingSection,
    DuplicateSection,
    DuplicateOption,
    InvalidLine,
}

impl fmt::Display for IniErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IniErrorKind::MissingSection => "expected a section header",
            IniErrorKind::DuplicateSection => "duplicate section",
            IniErrorKind::DuplicateOption => "duplicate option",
            IniErrorKind::InvalidLine => "invalid option or section header",
        })
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EntryPointError {
    #[error("entry_points.txt line {line}: {kind}")]
    Ini { line: usize, kind: IniErrorKind },
    #[error("entry_points.txt line {line}: invalid entry point `{name}`: {value:?} is not `module:function [extras]`")]
    InvalidValue {
        line: usize,
        name: String,
        value: String,
    },
    #[error("entry_points.txt line {line}: script name {name:?} is not a plain file name")]
    BadName { line: usize, name: String },
    #[error("entry_points.txt line {line}: script name {name:?} is reserved for the venv's interpreter (`{reserved}`)")]
    ReservedName {
        line: usize,
        name: String,
        reserved: String,
    },
}

/// Parse `entry_points.txt`: its `[console_scripts]` then its `[gui_scripts]`, each in file
/// order (inherited `[DEFAULT]` options after a section's own). Other sections are ignored.
///
/// Errors name the line. Beyond what uv checks, names that are not a plain file name (empty,
/// `.`, `..`, or containing `/`, `\` or NUL) are refused, as are the interpreter names uv
/// refuses (`python`, `python3`, `python3.12`, `pypy3`, ... case-insensitively, with or
/// without `.py`).
pub fn parse_entry_points(text: &str) -> Result<Vec<EntryPoint>, EntryPointError> {
    let ini = Ini::parse(text)?;
    let mut out = Vec::new();
    for (section, gui) in [("console_scripts", false), ("gui_scripts", true)] {
        for option in ini.section(section) {
            let (module, function) =
                parse_value(&option.value).ok_or_else(|| EntryPointError::InvalidValue {
                    line: option.line,
                    name: option.name.clone(),
                    value: option.value.clone(),
                })?;
            check_name(&option.name, option.line)?;
            out.push(EntryPoint {
                name: option.name.clone(),
                module: module.to_owned(),
                function: function.to_owned(),
                gui,
            });
        }
    }
    Ok(out)
}

/// The launchers uv writes for a venv of Python 3.`python_minor`: `entry_points` with pip's
/// versioned launcher fixed up. Console scripts named `pip3.<number>` are dropped, and if
/// there is a `pip3` console script, a copy of it named `pip3.<python_minor>` is added after
/// the console scripts (uv writes all console launchers, then the GUI ones).
pub fn with_versioned_pip(entry_points: &[EntryPoint], python_minor: u8) -> Vec<EntryPoint> {
    let stale = |ep: &EntryPoint| {
        !ep.gui
            && ep
                .name
                .split_once('.')
                .is_some_and(|(l, r)| l == "pip3" && r.parse::<u8>().is_ok())
    };
    let (mut out, gui): (Vec<EntryPoint>, Vec<EntryPoint>) = entry_points
        .iter()
        .filter(|e| !stale(e))
        .cloned()
        .partition(|e| !e.gui);
    if let Some(pip3) = out.iter().find(|e| e.name == "pip3") {
        out.push(EntryPoint {
            name: format!("pip3.{python_minor}"),
            ..pip3.clone()
        });
    }
    out.extend(gui);
    out
}

/// The interpreter name `name` would shadow, as uv checks it (lowercased, without `.py`),
/// if it is one uv refuses as a script name.
pub fn reserved_script_name(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let stem = lower.strip_suffix(".py").unwrap_or(&lower);
    let minor = |s: Option<&str>| s.is_some_and(|m| m.parse::<u8>().is_ok());
    let reserved = [
        "python", "pythonw", "python3", "graalpy", "pypy", "pypy2", "pypy3",
    ]
    .contains(&stem)
        || minor(stem.strip_prefix("python3."))
        || ["python3.", "pythonw3."]
            .iter()
            .any(|p| minor(stem.strip_prefix(p).and_then(|m| m.strip_suffix('t'))));
    reserved.then(|| stem.to_owned())
}

fn check_name(name: &str, line: usize) -> Result<(), EntryPointError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(EntryPointError::BadName {
            line,
            name: name.to_owned(),
        });
    }
    if let Some(reserved) = reserved_script_name(name) {
        return Err(EntryPointError::ReservedName {
            line,
            name: name.to_owned(),
            reserved,
        });
    }
    Ok(())
}

/// Python's `str.isspace()`: Unicode white space plus the ASCII information separators.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `module` / `function` characters in uv's pattern: `[\w\d_\-.]`.
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Split `module : function [extras]` (uv's pattern
/// `^([\w\d_\-.]+)\s*:\s*([\w\d_\-.]+)(?:\s*\[\s*((?:[^,]+,?\s*)+)\])?\s*$`).
fn parse_value(value: &str) -> Option<(&str, &str)> {
    let word = |s: &str| s.find(|c| !is_name_char(c)).unwrap_or(s.len());
    let m = word(value);
    let (module, rest) = value.split_at(m);
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let f = word(rest);
    let (function, rest) = rest.split_at(f);
    if module.is_empty() || function.is_empty() {
        return None;
    }
    let rest = rest.trim();
    if !rest.is_empty() {
        // `[` extras `]`: extras are non-empty, do not start with `,`, and have no `,,`.
        let extras = rest.strip_prefix('[')?.strip_suffix(']')?;
        if extras.is_empty() || extras.starts_with(',') || extras.contains(",,") {
            return None;
        }
    }
    Some((module, function))
}

/// One `name = value` of a section, with the line it starts on.
struct IniOption {
    name: String,
    value: String,
    line: usize,
}

/// The sections of an INI file; `DEFAULT` is kept apart.
struct Ini {
    sections: Vec<(String, Vec<IniOption>)>,
    defaults: Vec<IniOption>,
}

impl Ini {
    fn parse(text: &str) -> Result<Ini, EntryPointError> {
        let err = |kind, line| EntryPointError::Ini { line, kind };
        let mut ini = Ini {
            sections: Vec::new(),
            defaults: Vec::new(),
        };
        // The current section (None: DEFAULT) once one was seen, and the option that may
        // continue on indented lines.
        let mut section: Option<Option<usize>> = None;
        let mut option: Option<usize> = None;
        let mut indent = 0;
        let mut blanks = 0;
        let mut invalid = None;
        for (index, line) in universal_lines(text).enumerate() {
            let number = index + 1;
            let content = line.trim_matches(is_space);
            if content.starts_with(['#', ';']) {
                continue;
            }
            if content.is_empty() {
                if option.is_some() {
                    blanks += 1;
                }
                continue;
            }
            let line_indent = line.chars().take_while(|&c| is_space(c)).count();
            if let (Some(s), Some(o)) = (section, option) {
                if line_indent > indent {
                    let value = &mut ini.options_mut(s)[o].value;
                    value.extend(std::iter::repeat_n('\n', blanks + 1));
                    value.push_str(content);
                    blanks = 0;
                    continue;
                }
            }
            indent = line_indent;
            blanks = 0;
            if let Some(inner) = content.strip_prefix('[') {
                let name = inner.rfind(']').map_or("", |end| &inner[..end]);
                if !name.is_empty() {
                    section = Some(if name == "DEFAULT" {
                        None
                    } else {
                        if ini.sections.iter().any(|(n, _)| n == name) {
                            return Err(err(IniErrorKind::DuplicateSection, number));
                        }
                        ini.sections.push((name.to_owned(), Vec::new()));
                        Some(ini.sections.len() - 1)
                    });
                    option = None;
                    continue;
                }
            }
            let Some(s) = section else {
                return Err(err(IniErrorKind::MissingSection, number));
            };
            let Some(eq) = content.find('=') else {
                invalid.get_or_insert(err(IniErrorKind::InvalidLine, number));
                continue;
            };
            let name = content[..eq].trim_end_matches(is_space);
            if name.is_empty() {
                invalid.get_or_insert(err(IniErrorKind::InvalidLine, number));
            }
            let options = ini.options_mut(s);
            if options.iter().any(|o| o.name == name) {
                return Err(err(IniErrorKind::DuplicateOption, number));
            }
            options.push(IniOption {
                name: name.to_owned(),
                value: content[eq + 1..].trim_start_matches(is_space).to_owned(),
                line: number,
            });
            option = (!name.is_empty()).then_some(options.len() - 1);
        }
        match invalid {
            Some(e) => Err(e),
            None => Ok(ini),
        }
    }

    fn options_mut(&mut self, section: Option<usize>) -> &mut Vec<IniOption> {
        match section {
            None => &mut self.defaults,
            Some(i) => &mut self.sections[i].1,
        }
    }

    /// A section's options followed by the inherited defaults it does not override; nothing
    /// if the section is absent.
    fn section(&self, name: &str) -> Vec<&IniOption> {
        let Some((_, own)) = self.sections.iter().find(|(n, _)| n == name) else {
            return Vec::new();
        };
        let inherited = self
            .defaults
            .iter()
            .filter(|d| !own.iter().any(|o| o.name == d.name));
        own.iter().chain(inherited).collect()
    }
}

/// Lines split at `\n`, `\r\n` and `\r`, as Python's universal newlines do.
fn universal_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some(end) = rest.find(['\r', '\n']) else {
            return Some(std::mem::take(&mut rest));
        };
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
        Some(line)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(name: &str, module: &str, function: &str, gui: bool) -> EntryPoint {
        EntryPoint {
            name: name.into(),
            module: module.into(),
            function: function.into(),
            gui,
        }
    }

    fn names(text: &str) -> Vec<String> {
        parse_entry_points(text)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect()
    }

    fn ini_err(text: &str) -> (usize, IniErrorKind) {
        match parse_entry_points(text) {
            Err(EntryPointError::Ini { line, kind }) => (line, kind),
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn pip_and_numpy() {
        let pip = "[console_scripts]\npip=pip._internal.cli.main:cli\npip3=pip._internal.cli.main:cli\n\n";
        let eps = parse_entry_points(pip).unwrap();
        assert_eq!(
            eps,
            vec![
                ep("pip", "pip._internal.cli.main", "cli", false),
                ep("pip3", "pip._internal.cli.main", "cli", false),
            ]
        );
        let numpy = "[array_api]\nnumpy = numpy\n\n[console_scripts]\nf2py = numpy.f2py.f2py2e:main\nnumpy-config = numpy._configtool:main\n";
        assert_eq!(names(numpy), ["f2py", "numpy-config"]);
    }

    #[test]
    fn comments_whitespace_extras_case() {
        let text = "# top comment\r\n\
                    ; another\r\n\
                    \u{20}\u{20}[console_scripts] trailing text\r\n\
                    MyCli = pkg.cli : main.run [ x , y ]  \r\n\
                    \r\n\
                    \t# indented comment\r\n\
                    b=pkg:f[x]\r\
                    c = probe-mod.x:f-g\n\
                    a b = é:ü\n\
                    [gui_scripts]\n\
                    g = pkg.gui:run\n\
                    [other.group]\n\
                    x = y\n\
                    nonsense\x20=\x20!!!\n";
        assert_eq!(
            parse_entry_points(text).unwrap(),
            vec![
                ep("MyCli", "pkg.cli", "main.run", false),
                ep("b", "pkg", "f", false),
                ep("c", "probe-mod.x", "f-g", false),
                ep("a b", "é", "ü", false),
                ep("g", "pkg.gui", "run", true),
            ]
        );
        assert_eq!(
            parse_entry_points(text).unwrap()[0].import_name(),
            "main",
            "dotted attribute path: import its first part"
        );
        // Section names are not trimmed and are case-sensitive.
        assert!(names("[ console_scripts ]\na = m:f\n").is_empty());
        assert!(names("[Console_Scripts]\na = m:f\n").is_empty());
        assert!(names("").is_empty());
    }

    #[test]
    fn defaults_are_inherited() {
        let text = "[DEFAULT]\nd = m:dflt\na = m:x\n[gui_scripts]\n[console_scripts]\na = m:f\n";
        assert_eq!(
            parse_entry_points(text).unwrap(),
            vec![
                ep("a", "m", "f", false),
                ep("d", "m", "dflt", false),
                ep("d", "m", "dflt", true),
                ep("a", "m", "x", true),
            ]
        );
        assert!(names("[DEFAULT]\nd = m:f\n").is_empty());
    }

    #[test]
    fn ini_errors_name_the_line() {
        use IniErrorKind::*;
        assert_eq!(ini_err("a = m:f\n[console_scripts]\n"), (1, MissingSection));
        assert_eq!(ini_err("\n# c\nx\n"), (3, MissingSection));
        assert_eq!(ini_err("é = m:f\n"), (1, MissingSection));
        assert_eq!(ini_err("[console_scripts]\n[é\n"), (2, InvalidLine));
        assert_eq!(ini_err("[console_scripts]\na: m:f\n"), (2, InvalidLine));
        assert_eq!(ini_err("[console_scripts]\nlonely\n"), (2, InvalidLine));
        assert_eq!(ini_err("[console_scripts]\n = m:f\n"), (2, InvalidLine));
        assert_eq!(ini_err("[console_scripts]\n[]\n"), (2, InvalidLine));
        assert_eq!(
            ini_err("[console_scripts]\na = m:f\na = m:g\n"),
            (3, DuplicateOption)
        );
        assert_eq!(
            ini_err("[a]\nx=1\n[gui_scripts]\n[a]\n"),
            (4, DuplicateSection)
        );
        // Invalid lines are reported after the whole file is read, so a later duplicate wins.
        assert_eq!(ini_err("[s]\nbad\nalso bad\n[s]\n"), (4, DuplicateSection));
        assert_eq!(ini_err("[s]\nbad\nalso bad\n"), (2, InvalidLine));
        assert_eq!(
            ini_err("\u{feff}[console_scripts]\na = m:f\n"),
            (1, MissingSection)
        );
    }

    #[test]
    fn continuation_lines_make_invalid_values() {
        let err = parse_entry_points("[console_scripts]\na = m:f\n\n  b = m:g\n").unwrap_err();
        assert_eq!(
            err,
            EntryPointError::InvalidValue {
                line: 2,
                name: "a".into(),
                value: "m:f\n\nb = m:g".into()
            }
        );
        // Deeper indentation than the option's own line only.
        assert_eq!(
            names("[console_scripts]\n  a = m:f\n  b = m:g\n"),
            ["a", "b"]
        );
        // An indented header continues the value instead of starting a section, and the
        // value still matches `module:function [extras]` (uv's pattern lets `\s` match `\n`).
        assert_eq!(
            parse_entry_points("[console_scripts]\na = m:f\n [gui_scripts]\ng = m:g\n").unwrap(),
            vec![ep("a", "m", "f", false), ep("g", "m", "g", false)]
        );
    }

    #[test]
    fn invalid_values() {
        for value in [
            "",
            ":weh",
            "weh:",
            "pkg",
            "m:f [bar",
            "m:f []",
            "m:f [,a]",
            "m:f [a,,b]",
            "m:f extra",
            "m:f # inline comment",
            "m:f ; inline comment",
            "m.f()",
            "m:f:g",
        ] {
            let text = format!("[console_scripts]\n\nx = {value}\n");
            match parse_entry_points(&text) {
                Err(EntryPointError::InvalidValue { line: 3, name, .. }) => assert_eq!(name, "x"),
                other => panic!("{value:?}: {other:?}"),
            }
        }
        for value in [
            "m:f [ ,a]",
            "m:f [a,]",
            "m:f [a, ,b]",
            "m : f",
            "m:f\t[a] \t",
        ] {
            let text = format!("[gui_scripts]\nx = {value}\n");
            assert_eq!(names(&text), ["x"], "{value:?}");
        }
    }

    #[test]
    fn unsafe_and_reserved_names() {
        for name in ["sub/a", "../a", "..", ".", "a\\b", "a\0b"] {
            let text = format!("[console_scripts]\n{name} = m:f\n");
            assert_eq!(
                parse_entry_points(&text),
                Err(EntryPointError::BadName {
                    line: 2,
                    name: name.into()
                }),
                "{name:?}"
            );
        }
        for (name, reserved) in [
            ("python", "python"),
            ("Python3.py", "python3"),
            ("python3.12", "python3.12"),
            ("python3.13t", "python3.13t"),
            ("pythonw3.14t", "pythonw3.14t"),
            ("pypy3", "pypy3"),
            ("graalpy", "graalpy"),
        ] {
            let text = format!("[gui_scripts]\n{name} = m:f\n");
            assert_eq!(
                parse_entry_points(&text),
                Err(EntryPointError::ReservedName {
                    line: 2,
                    name: name.into(),
                    reserved: reserved.into()
                })
            );
        }
        assert_eq!(
            names(
                "[console_scripts]\npython3.x = m:f\npythonic = m:f\nactivate = m:f\na..b = m:f\n"
            ),
            ["python3.x", "pythonic", "activate", "a..b"]
        );
    }

    #[test]
    fn versioned_pip_launcher() {
        let text = "[console_scripts]\npip = a:b1\npip3 = a:b2\npip3.11 = a:b3\npip3.x = a:b4\npip4.11 = a:b5\nmemray3.11 = a:b7\n[gui_scripts]\npip3.9 = a:g\n";
        let eps = with_versioned_pip(&parse_entry_points(text).unwrap(), 13);
        let got: Vec<(&str, &str)> = eps
            .iter()
            .map(|e| (e.name.as_str(), e.function.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("pip", "b1"),
                ("pip3", "b2"),
                ("pip3.x", "b4"),
                ("pip4.11", "b5"),
                ("memray3.11", "b7"),
                ("pip3.13", "b2"),
                ("pip3.9", "g"),
            ]
        );
        assert!(with_versioned_pip(
            &parse_entry_points("[console_scripts]\npip = a:b\n").unwrap(),
            11
        )
        .iter()
        .all(|e| e.name == "pip"));
    }
}
