//! Directory-listing patterns (`FindFirstFile("*.py")`), matched as the Windows kernel's
//! `FsRtlIsNameInExpression` matches them, with the same wildcards:
//! `*` any run of characters, `?` one character, and the DOS wildcards the kernel rewrites
//! Win32 patterns into: `<` (DOS_STAR: any run that does not take the name's last dot),
//! `>` (DOS_QM: one character, or nothing at a dot or the end of the name) and `"`
//! (DOS_DOT: a dot, or nothing at the end of the name).
//!
//! The adapter uses this matcher on Windows too, rather than Dokan's own
//! `DokanIsNameInExpression` (dokan2.dll): that one is a simplified matcher which does not
//! follow the kernel's rule for DOS_QM at the end of a name (`>>>`, what `FindFirstFile`
//! makes of `???`, does not match `ab` there, and it reads past the name's end doing so),
//! and folds case with the C runtime's `towupper` rather than NTFS's table.
//! A test under Wine compares the two on [`CASES`] and pins down where they differ
//! ([`DOKAN_DLL_DIFFERS`]), so that a Dokan release that changes its matcher shows up.

use venvfs_rules::names::upcase;

/// Whether `name` matches `pattern`; letters compared as NTFS compares them when
/// `ignore_case`.
pub fn is_name_in_expression(pattern: &str, name: &str, ignore_case: bool) -> bool {
    let fold = |c: char| if ignore_case { upcase(c) } else { c };
    let p: Vec<char> = pattern.chars().map(fold).collect();
    let n: Vec<char> = name.chars().map(fold).collect();
    let last_dot = n.iter().rposition(|&c| c == '.');
    // memo[pi][ni]: whether p[pi..] matches n[ni..], once known
    let mut memo = vec![vec![None; n.len() + 1]; p.len() + 1];
    matches(&p, &n, 0, 0, last_dot, &mut memo)
}

fn matches(
    p: &[char],
    n: &[char],
    pi: usize,
    ni: usize,
    last_dot: Option<usize>,
    memo: &mut Vec<Vec<Option<bool>>>,
) -> bool {
    if let Some(known) = memo[pi][ni] {
        return known;
    }
    let here = n.get(ni).copied();
    let result = match p.get(pi) {
        None => here.is_none(),
        Some('*') => {
            matches(p, n, pi + 1, ni, last_dot, memo)
                || (here.is_some() && matches(p, n, pi, ni + 1, last_dot, memo))
        }
        Some('?') => here.is_some() && matches(p, n, pi + 1, ni + 1, last_dot, memo),
        Some('<') => {
            matches(p, n, pi + 1, ni, last_dot, memo)
                || (here.is_some()
                    && Some(ni) != last_dot
                    && matches(p, n, pi, ni + 1, last_dot, memo))
        }
        Some('>') => match here {
            Some(c) if c != '.' => matches(p, n, pi + 1, ni + 1, last_dot, memo),
            _ => matches(p, n, pi + 1, ni, last_dot, memo),
        },
        Some('"') => match here {
            Some('.') => matches(p, n, pi + 1, ni + 1, last_dot, memo),
            None => matches(p, n, pi + 1, ni, last_dot, memo),
            Some(_) => false,
        },
        Some(&c) => here == Some(c) && matches(p, n, pi + 1, ni + 1, last_dot, memo),
    };
    memo[pi][ni] = Some(result);
    result
}

/// Cases with the answer the kernel gives (`pattern`, `name`, `ignore_case`, matches):
/// the tests check this module against them, and under Wine against dokan2.dll.
pub const CASES: &[(&str, &str, bool, bool)] = &[
    ("*", "anything.py", true, true),
    ("foo", "foo", true, true),
    ("foo", "FOO", true, true),
    ("foo", "FOO", false, false),
    ("F*", "foo", true, true),
    ("F*", "foo", false, false),
    ("?", "x", true, true),
    ("?", "foo", true, false),
    ("*.py", "setup.py", true, true),
    ("*.py", "setup.pyc", true, false),
    ("*.PY", "setup.py", true, true),
    ("*.*", "README", true, false),
    ("*.*", "a.b", true, true),
    ("a*b*c", "aXbYc", true, true),
    ("a*b*c", "aXbY", true, false),
    ("???.txt", "abc.txt", true, true),
    ("???.txt", "ab.txt", true, false),
    // DOS wildcards, as `FindFirstFile` rewrites "*.*" and "?" patterns
    ("<\"*", "README", true, true),
    ("<\"*", "setup.py", true, true),
    ("<.py", "setup.py", true, true),
    ("<.py", "setup.tar.py", true, true),
    (">>>", "ab", true, true),
    (">>>", "abcd", true, false),
    (">>>.txt", "ab.txt", true, true),
    ("a\"", "a", true, true),
    ("a\"", "a.", true, true),
    ("a\"", "ab", true, false),
    ("straße*", "STRASSE.txt", true, false),
    ("é*", "É.py", true, true),
];

/// The cases of [`CASES`] on which dokan2.dll (Dokany 2.0.6's `DokanIsNameInExpression`)
/// answers otherwise than the kernel, as seen under Wine: DOS_QM at the name's end, and
/// case folding beyond ASCII (it folds with the C runtime's `towupper`, which in the "C"
/// locale leaves `é` alone).
pub const DOKAN_DLL_DIFFERS: &[(&str, &str)] = &[(">>>", "ab"), ("é*", "É.py")];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_cases() {
        for &(pattern, name, ignore_case, expected) in CASES {
            assert_eq!(
                is_name_in_expression(pattern, name, ignore_case),
                expected,
                "{pattern:?} {name:?} ignore_case={ignore_case}"
            );
        }
    }

    #[test]
    fn many_stars_stay_cheap() {
        let name = "a".repeat(255);
        let pattern = format!("{}b", "*a".repeat(100));
        assert!(!is_name_in_expression(&pattern, &name, true));
    }
}

/// The same cases against Dokan's own matcher in dokan2.dll (run under Wine by
/// scripts/windows-check: the DLL loads and matches without the driver).
#[cfg(all(test, windows))]
mod dll_tests {
    use widestring::U16CString;

    use super::CASES;

    #[test]
    fn dokan_dll_agrees_but_where_known() {
        let mut differs = Vec::new();
        for &(pattern, name, ignore_case, expected) in CASES {
            let (p, n) = (
                U16CString::from_str(pattern).unwrap(),
                U16CString::from_str(name).unwrap(),
            );
            if dokan::is_name_in_expression(&p, &n, ignore_case) != expected {
                differs.push((pattern, name));
            }
        }
        assert_eq!(differs, super::DOKAN_DLL_DIFFERS);
    }
}
