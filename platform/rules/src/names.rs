//! Names compared the way NTFS compares them on a case-insensitive, case-preserving volume.
//!
//! Why: a Windows mount must treat `Foo.py` and `FOO.PY` as the same entry (an open of one
//! finds the other, a create of one collides with the other) while still storing and listing
//! the spelling the entry was created with. A Linux mount compares bytes exactly. The overlay
//! core asks [`NameRules::key`] for the identity of a name and keeps the name itself for
//! display, so both behaviours come from one code path.
//!
//! What NTFS does: it compares names after mapping each UTF-16 code unit through the volume's
//! `$UpCase` table (one 16-bit code unit to one code unit, written when the volume is
//! formatted). So there are no multi-character expansions (`ß` stays `ß`, it is not `SS`), no
//! Unicode normalization (precomposed `é` and `e` + combining acute differ), and characters
//! outside the Basic Multilingual Plane (surrogate pairs) are never case-folded. The table of
//! Windows 7 and later is frozen at the Unicode of that time: it leaves alone a number of
//! characters that current Unicode uppercases, and maps a few that Unicode only uppercases
//! to two characters. [`upcase`] reproduces that table: it takes the single-character
//! uppercase mapping of `char::to_uppercase` and corrects it by the lists below.
//!
//! Names are also checked against what Win32 refuses in a path component ("Naming Files,
//! Paths, and Namespaces" in the Windows documentation): reserved characters, control
//! characters, a trailing space or dot, DOS device names, and more than 255 UTF-16 code
//! units. See [`valid_windows_name`].

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::fmt;

/// How names are compared on one mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NameRules {
    /// Bytes compared exactly (Linux, and POSIX generally).
    Posix,
    /// Case-insensitive and case-preserving, like NTFS with its default `$UpCase` table.
    Windows,
}

/// What a rename does to the entry it names, under some [`NameRules`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenameKind {
    /// Exactly the same bytes: nothing to do.
    SameName,
    /// The same entry under another spelling (`foo` -> `FOO` under Windows rules): the rename
    /// is allowed even though the target "exists", and must store the new spelling.
    CaseOnly,
    /// A different name.
    OtherName,
}

impl NameRules {
    /// The identity of `name`: two names clash (denote the same entry of a directory) iff their
    /// keys are equal. Borrows when the key is the name itself.
    ///
    /// Under Windows rules a name that is not valid Unicode is compared as bytes; its key
    /// can never equal the key of a valid name, whose key is valid Unicode.
    pub fn key<'a>(&self, name: &'a OsStr) -> Cow<'a, OsStr> {
        match self {
            NameRules::Posix => Cow::Borrowed(name),
            NameRules::Windows => match name.to_str() {
                Some(text) => match upcase_str(text) {
                    Cow::Borrowed(_) => Cow::Borrowed(name),
                    Cow::Owned(upper) => Cow::Owned(OsString::from(upper)),
                },
                None => Cow::Borrowed(name),
            },
        }
    }

    /// Whether `a` and `b` name the same entry.
    pub fn eq(&self, a: &OsStr, b: &OsStr) -> bool {
        a == b || self.key(a) == self.key(b)
    }

    /// The first of `names` that clashes with `name`, if any (the existing spelling).
    pub fn find<'a, I>(&self, names: I, name: &OsStr) -> Option<&'a OsStr>
    where
        I: IntoIterator<Item = &'a OsStr>,
    {
        let wanted = self.key(name);
        names
            .into_iter()
            .find(|candidate| self.key(candidate) == wanted)
    }

    /// What renaming `from` to `to` within one directory means for the entry.
    pub fn rename_kind(&self, from: &OsStr, to: &OsStr) -> RenameKind {
        if from == to {
            RenameKind::SameName
        } else if self.eq(from, to) {
            RenameKind::CaseOnly
        } else {
            RenameKind::OtherName
        }
    }

    /// Whether renaming `from` to `to` only changes the spelling of the same entry.
    pub fn is_case_only_rename(&self, from: &OsStr, to: &OsStr) -> bool {
        self.rename_kind(from, to) == RenameKind::CaseOnly
    }

    /// Whether names are compared exactly.
    pub fn is_case_sensitive(&self) -> bool {
        matches!(self, NameRules::Posix)
    }
}

/// The uppercase of `c` as the NTFS `$UpCase` table of Windows 7 and later defines it: the
/// single-character uppercase mapping of Unicode, limited to the Basic Multilingual Plane
/// and corrected where the table differs: a list of characters the table keeps as they
/// are, and the Greek letters with ypogegrammeni, which it maps to one character.
pub fn upcase(c: char) -> char {
    let code = u32::from(c);
    if code > 0xFFFF {
        // The table has one entry per UTF-16 code unit; a surrogate pair is never folded.
        return c;
    }
    if let Some(upper) = windows_only_upper(code) {
        return upper;
    }
    if windows_keeps(code) {
        return c;
    }
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(single), None) if u32::from(single) <= 0xFFFF => single,
        // Multi-character uppercase (ß -> SS, ŉ -> ʼN): NTFS maps one unit to one unit.
        _ => c,
    }
}

/// Uppercase every character of `text` with [`upcase`]; borrows when nothing changes.
pub fn upcase_str(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        if text.bytes().any(|b| b.is_ascii_lowercase()) {
            return Cow::Owned(text.to_ascii_uppercase());
        }
        return Cow::Borrowed(text);
    }
    if text.chars().all(|c| upcase(c) == c) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.chars().map(upcase).collect())
    }
}

/// Code points that Unicode uppercases to one BMP character but the Windows table maps to
/// themselves, as inclusive ranges. Two groups:
/// - compatibility lowercase letters the table never folded: micro sign `µ`, dotless `ı`,
///   long `ſ`, the titlecase digraphs `ǅ ǈ ǋ ǲ`, the Greek final sigma `ς` (Windows XP's
///   table folded it to `Σ`, Windows 7's does not), the Greek symbol variants `ϐ ϑ ϕ ϖ ϰ ϱ
///   ϵ`, combining ypogegrammeni, `ẛ` and the prosgegrammeni `ι`;
/// - letters whose case pairs entered Unicode after the table was made (Georgian Mtavruli,
///   Cherokee lowercase, Cyrillic Extended-C, most of Latin Extended-D, ...).
const WINDOWS_KEEPS: &[(u32, u32)] = &[
    (0x00B5, 0x00B5),
    (0x0131, 0x0131),
    (0x017F, 0x017F),
    (0x019B, 0x019B),
    (0x01C5, 0x01C5),
    (0x01C8, 0x01C8),
    (0x01CB, 0x01CB),
    (0x01F2, 0x01F2),
    (0x023F, 0x0240),
    (0x0252, 0x0252),
    (0x025C, 0x025C),
    (0x0261, 0x0261),
    (0x0264, 0x0266),
    (0x026A, 0x026A),
    (0x026C, 0x026C),
    (0x0282, 0x0282),
    (0x0287, 0x0287),
    (0x029D, 0x029E),
    (0x0345, 0x0345),
    (0x03C2, 0x03C2),
    (0x03D0, 0x03D1),
    (0x03D5, 0x03D6),
    (0x03F0, 0x03F1),
    (0x03F3, 0x03F3),
    (0x03F5, 0x03F5),
    (0x0525, 0x052F),
    (0x10D0, 0x10FF),
    (0x13F8, 0x13FD),
    (0x1C80, 0x1C8A),
    (0x1D8E, 0x1D8E),
    (0x1E9B, 0x1E9B),
    (0x1FBE, 0x1FBE),
    (0x2C5F, 0x2C5F),
    (0x2CEC, 0x2CF3),
    (0x2D27, 0x2D27),
    (0x2D2D, 0x2D2D),
    (0xA661, 0xA661),
    (0xA699, 0xA69B),
    (0xA791, 0xA7FF),
    (0xAB53, 0xAB53),
    (0xAB70, 0xABBF),
];

/// Whether the Windows table maps `code` to itself although Unicode uppercases it.
fn windows_keeps(code: u32) -> bool {
    WINDOWS_KEEPS
        .binary_search_by(|&(first, last)| {
            if last < code {
                std::cmp::Ordering::Less
            } else if first > code {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// The Windows table maps the Greek letters with ypogegrammeni to their titlecase forms with
/// prosgegrammeni (`ᾳ` -> `ᾼ`), where Unicode's uppercase is two characters (`ΑΙ`).
fn windows_only_upper(code: u32) -> Option<char> {
    let offset = match code {
        0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => 8,
        0x1FB3 | 0x1FC3 | 0x1FF3 => 9,
        _ => return None,
    };
    char::from_u32(code + offset)
}

/// Why Windows refuses a name as a path component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The empty name.
    Empty,
    /// `.` or `..`, which name the directory itself or its parent.
    DotName,
    /// One of `< > : " / \ | ? *`.
    ForbiddenChar(char),
    /// A control character, 0x00 to 0x1F.
    ControlChar(u8),
    /// A trailing space, which Win32 strips from paths.
    TrailingSpace,
    /// A trailing dot, which Win32 strips from paths.
    TrailingDot,
    /// A DOS device name, alone or with an extension (`NUL`, `nul.txt`).
    Reserved(&'static str),
    /// More than 255 UTF-16 code units.
    TooLong(usize),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(f, "the name is empty"),
            NameError::DotName => write!(f, "`.` and `..` cannot name an entry"),
            NameError::ForbiddenChar(c) => {
                write!(f, "the name contains {c:?}, which Windows does not allow in names")
            }
            NameError::ControlChar(b) => {
                write!(f, "the name contains the control character 0x{b:02X}")
            }
            NameError::TrailingSpace => write!(f, "the name ends with a space"),
            NameError::TrailingDot => write!(f, "the name ends with a dot"),
            NameError::Reserved(device) => write!(
                f,
                "the name is the reserved device name {device} (with or without an extension)"
            ),
            NameError::TooLong(units) => write!(
                f,
                "the name is {units} UTF-16 code units long, Windows allows at most {MAX_NAME_UNITS}"
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// The longest name NTFS stores, in UTF-16 code units.
pub const MAX_NAME_UNITS: usize = 255;

/// Characters Win32 refuses in a name besides control characters.
const FORBIDDEN: &[u8] = b"<>:\"/\\|?*";

/// Device names that Win32 resolves to a device in any directory, with any extension.
const DEVICES: &[&str] = &["CON", "PRN", "AUX", "NUL"];

/// Refuse what Windows refuses as a path component.
///
/// Works on the encoded bytes, so it behaves the same for UTF-8 (Linux) and WTF-8 (Windows)
/// strings: every rule concerns ASCII characters, which both encodings only ever encode as
/// themselves, and the length is counted in UTF-16 code units from the lead bytes.
pub fn valid_windows_name(name: &OsStr) -> Result<(), NameError> {
    let bytes = name.as_encoded_bytes();
    if bytes.is_empty() {
        return Err(NameError::Empty);
    }
    if bytes == b"." || bytes == b".." {
        return Err(NameError::DotName);
    }
    for &b in bytes {
        if b < 0x20 {
            return Err(NameError::ControlChar(b));
        }
        if FORBIDDEN.contains(&b) {
            return Err(NameError::ForbiddenChar(char::from(b)));
        }
    }
    match bytes.last() {
        Some(b' ') => return Err(NameError::TrailingSpace),
        Some(b'.') => return Err(NameError::TrailingDot),
        _ => {}
    }
    if let Some(device) = reserved_device(bytes) {
        return Err(NameError::Reserved(device));
    }
    let units = utf16_len(bytes);
    if units > MAX_NAME_UNITS {
        return Err(NameError::TooLong(units));
    }
    Ok(())
}

/// The device a name resolves to: the part before the first dot, without trailing spaces,
/// compared case-insensitively with CON, PRN, AUX, NUL, COM1-9 and LPT1-9 (and the
/// superscript digits ¹ ² ³, which Windows also treats as device numbers).
fn reserved_device(bytes: &[u8]) -> Option<&'static str> {
    let stem = match bytes.iter().position(|&b| b == b'.') {
        Some(dot) => &bytes[..dot],
        None => bytes,
    };
    let end = stem.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    let stem = &stem[..end];
    if let Some(device) = DEVICES
        .iter()
        .find(|d| stem.eq_ignore_ascii_case(d.as_bytes()))
    {
        return Some(device);
    }
    if stem.len() < 4 {
        return None;
    }
    let (prefix, number) = stem.split_at(3);
    let port = if prefix.eq_ignore_ascii_case(b"COM") {
        "COM"
    } else if prefix.eq_ignore_ascii_case(b"LPT") {
        "LPT"
    } else {
        return None;
    };
    let numbered = matches!(number, [b'1'..=b'9'] | [0xC2, 0xB9 | 0xB2 | 0xB3]);
    numbered.then_some(port)
}

/// Length in UTF-16 code units of UTF-8 or WTF-8 bytes: one per character, two for those
/// encoded in four bytes (outside the BMP). Stray bytes of invalid UTF-8 count one each.
fn utf16_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0xBF => 0,
            0xF0..=0xFF => 2,
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    fn clash(a: &str, b: &str) -> bool {
        NameRules::Windows.eq(os(a), os(b))
    }

    #[test]
    fn posix_compares_bytes() {
        let rules = NameRules::Posix;
        assert!(rules.eq(os("foo"), os("foo")));
        assert!(!rules.eq(os("foo"), os("FOO")));
        assert_eq!(rules.key(os("Foo")), os("Foo"));
        assert!(rules.is_case_sensitive());
        assert!(!NameRules::Windows.is_case_sensitive());
    }

    #[test]
    fn ascii_is_case_insensitive() {
        assert!(clash("setup.py", "SETUP.PY"));
        assert!(clash("Setup.Py", "sEtUp.pY"));
        assert!(!clash("setup.py", "setup.pyc"));
        assert_eq!(
            NameRules::Windows.key(os("abc-XYZ_1.txt")),
            os("ABC-XYZ_1.TXT")
        );
    }

    #[test]
    fn key_borrows_when_already_upper() {
        assert!(matches!(
            NameRules::Windows.key(os("README")),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            NameRules::Windows.key(os("ÉTÉ")),
            Cow::Borrowed(_)
        ));
        assert!(matches!(NameRules::Windows.key(os("été")), Cow::Owned(_)));
    }

    #[test]
    fn latin1() {
        assert!(clash("é", "É"));
        assert!(clash("café.txt", "CAFÉ.TXT"));
        assert!(clash("ÿ", "Ÿ"));
        // The micro sign is not folded to Greek capital mu.
        assert!(!clash("µ", "Μ"));
        assert!(!clash("µ", "μ"));
    }

    #[test]
    fn no_normalization() {
        // Precomposed U+00E9 against e + U+0301.
        assert!(!clash("\u{e9}", "e\u{301}"));
        assert!(!clash("\u{c9}", "E\u{301}"));
        assert!(clash("e\u{301}", "E\u{301}"));
    }

    #[test]
    fn sharp_s_does_not_expand() {
        assert_eq!("ß".to_uppercase(), "SS");
        assert!(!clash("ß", "SS"));
        assert!(!clash("straße", "STRASSE"));
        assert!(clash("straße", "STRAßE"));
        // The capital sharp s is its own letter to NTFS: Unicode lowercases it to ß, but
        // ß has no single-character uppercase.
        assert!(!clash("ß", "ẞ"));
    }

    #[test]
    fn greek_sigma() {
        // Unicode uppercases both lowercase sigmas to Σ ...
        assert_eq!('ς'.to_uppercase().collect::<String>(), "Σ");
        assert_eq!('σ'.to_uppercase().collect::<String>(), "Σ");
        // ... the Windows 7+ table only the medial one.
        assert!(clash("σ", "Σ"));
        assert!(!clash("ς", "Σ"));
        assert!(!clash("ς", "σ"));
        assert!(clash("ΑΒΓ", "αβγ"));
    }

    #[test]
    fn turkish_dotless_and_dotted_i() {
        assert_eq!('ı'.to_uppercase().collect::<String>(), "I");
        // The Windows table leaves ı alone: it does not clash with i or I.
        assert!(!clash("ı", "i"));
        assert!(!clash("ı", "I"));
        assert!(clash("i", "I"));
        // İ is already upper case; its lowercase is i + combining dot, so nothing folds to it.
        assert!(!clash("İ", "i"));
        assert!(!clash("İ", "I"));
    }

    #[test]
    fn greek_prosgegrammeni_maps_one_to_one() {
        // Unicode's uppercase of ᾳ is two characters; the Windows table maps it to ᾼ.
        assert_eq!('ᾳ'.to_uppercase().count(), 2);
        assert!(clash("ᾳ", "ᾼ"));
        assert!(clash("ᾀ", "ᾈ"));
        assert!(clash("ῳ", "ῼ"));
    }

    #[test]
    fn later_unicode_case_pairs_do_not_fold() {
        // Georgian Mkhedruli and Mtavruli became a case pair in Unicode 11.
        assert!(!clash("ა", "Ა"));
        // Cherokee lowercase (Unicode 8).
        assert!(!clash("\u{ab70}", "\u{13a0}"));
        // Cyrillic Extended-C variants (Unicode 9) are not the basic letters.
        assert!(!clash("\u{1c80}", "В"));
    }

    #[test]
    fn outside_bmp_does_not_fold() {
        // Deseret: a real case pair, but encoded as surrogate pairs.
        assert_eq!('𐐨'.to_uppercase().collect::<String>(), "𐐀");
        assert!(!clash("𐐨", "𐐀"));
    }

    #[test]
    fn upcase_is_idempotent_and_stays_in_bmp() {
        for code in 0..=0xFFFF_u32 {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let upper = upcase(c);
            assert!(u32::from(upper) <= 0xFFFF, "{code:04X}");
            assert_eq!(upcase(upper), upper, "{code:04X}");
        }
    }

    #[test]
    fn keeps_table_is_sorted_and_disjoint() {
        for pair in WINDOWS_KEEPS.windows(2) {
            assert!(pair[0].0 <= pair[0].1);
            assert!(pair[0].1 < pair[1].0, "{:04X}", pair[1].0);
        }
    }

    #[test]
    fn non_utf8_compares_as_bytes() {
        // Only Unix strings can hold bytes that are not UTF-8; elsewhere there is nothing to
        // test.
        let (Some(lower), Some(upper), Some(other)) = (
            invalid_name(b"abc\xff"),
            invalid_name(b"ABC\xff"),
            invalid_name(b"abc\xfe"),
        ) else {
            return;
        };
        let rules = NameRules::Windows;
        assert_eq!(rules.key(&lower), lower.as_os_str());
        assert!(rules.eq(&lower, &lower));
        assert!(!rules.eq(&lower, &upper));
        assert!(!rules.eq(&lower, &other));
        assert!(!rules.eq(&lower, os("abc")));
        assert!(!rules.eq(&lower, os("ABC\u{fffd}")));
        assert_eq!(
            rules.find([os("x"), lower.as_os_str()], &lower),
            Some(lower.as_os_str())
        );
        assert_eq!(valid_windows_name(&lower), Ok(()));
    }

    /// An OsString holding exactly `bytes`, on platforms whose strings are arbitrary bytes.
    fn invalid_name(bytes: &[u8]) -> Option<OsString> {
        if !cfg!(unix) {
            return None;
        }
        // SAFETY: on Unix the encoded bytes of an OsStr are arbitrary bytes.
        let name = unsafe { OsString::from_encoded_bytes_unchecked(bytes.to_vec()) };
        name.to_str().is_none().then_some(name)
    }

    #[test]
    fn find_returns_existing_spelling() {
        let names = [os("README.md"), os("Setup.py"), os("src")];
        let rules = NameRules::Windows;
        assert_eq!(rules.find(names, os("setup.PY")), Some(os("Setup.py")));
        assert_eq!(rules.find(names, os("SRC")), Some(os("src")));
        assert_eq!(rules.find(names, os("setup.cfg")), None);
        assert_eq!(NameRules::Posix.find(names, os("setup.PY")), None);
        assert_eq!(
            NameRules::Posix.find(names, os("Setup.py")),
            Some(os("Setup.py"))
        );
    }

    #[test]
    fn rename_kinds() {
        let w = NameRules::Windows;
        assert_eq!(w.rename_kind(os("foo"), os("foo")), RenameKind::SameName);
        assert_eq!(w.rename_kind(os("foo"), os("FOO")), RenameKind::CaseOnly);
        assert_eq!(w.rename_kind(os("foo"), os("bar")), RenameKind::OtherName);
        assert!(w.is_case_only_rename(os("foo"), os("Foo")));
        assert!(!w.is_case_only_rename(os("foo"), os("foo")));
        let p = NameRules::Posix;
        assert_eq!(p.rename_kind(os("foo"), os("FOO")), RenameKind::OtherName);
        assert!(!p.is_case_only_rename(os("foo"), os("FOO")));
    }

    #[test]
    fn valid_names() {
        for name in [
            "a",
            "setup.py",
            ".hidden",
            "..dots in middle..x",
            "name with spaces.txt",
            " leading space",
            "été",
            "𐐨",
            "CONSOLE",
            "con_",
            "COM0",
            "COM10",
            "LPT",
            "nul_.txt",
            "x.nul",
        ] {
            assert_eq!(valid_windows_name(os(name)), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn forbidden_characters() {
        for c in ['<', '>', ':', '"', '/', '\\', '|', '?', '*'] {
            let name = format!("a{c}b");
            assert_eq!(
                valid_windows_name(os(&name)),
                Err(NameError::ForbiddenChar(c)),
                "{name:?}"
            );
        }
        for b in 0..0x20_u8 {
            let name = format!("a{}b", char::from(b));
            assert_eq!(
                valid_windows_name(os(&name)),
                Err(NameError::ControlChar(b))
            );
        }
        // DEL is allowed.
        assert_eq!(valid_windows_name(os("a\u{7f}b")), Ok(()));
    }

    #[test]
    fn empty_dots_and_trailing() {
        assert_eq!(valid_windows_name(os("")), Err(NameError::Empty));
        assert_eq!(valid_windows_name(os(".")), Err(NameError::DotName));
        assert_eq!(valid_windows_name(os("..")), Err(NameError::DotName));
        assert_eq!(
            valid_windows_name(os("foo ")),
            Err(NameError::TrailingSpace)
        );
        assert_eq!(valid_windows_name(os("foo.")), Err(NameError::TrailingDot));
        assert_eq!(valid_windows_name(os("...")), Err(NameError::TrailingDot));
    }

    #[test]
    fn reserved_device_names() {
        for (name, device) in [
            ("CON", "CON"),
            ("con", "CON"),
            ("Prn", "PRN"),
            ("aux", "AUX"),
            ("NUL", "NUL"),
            ("nul.txt", "NUL"),
            ("NUL.tar.gz", "NUL"),
            ("nul .txt", "NUL"),
            ("COM1", "COM"),
            ("com9.log", "COM"),
            ("LPT1", "LPT"),
            ("lpt5.x", "LPT"),
            ("COM¹", "COM"),
            ("lpt³.txt", "LPT"),
        ] {
            assert_eq!(
                valid_windows_name(os(name)),
                Err(NameError::Reserved(device)),
                "{name:?}"
            );
        }
    }

    #[test]
    fn length_in_utf16_units() {
        let ascii = "a".repeat(MAX_NAME_UNITS);
        assert_eq!(valid_windows_name(os(&ascii)), Ok(()));
        let long = "a".repeat(MAX_NAME_UNITS + 1);
        assert_eq!(valid_windows_name(os(&long)), Err(NameError::TooLong(256)));
        // é is two UTF-8 bytes but one UTF-16 unit.
        let accented = "é".repeat(MAX_NAME_UNITS);
        assert_eq!(valid_windows_name(os(&accented)), Ok(()));
        // 𐐨 is four UTF-8 bytes and two UTF-16 units.
        let astral = "𐐨".repeat(128);
        assert_eq!(
            valid_windows_name(os(&astral)),
            Err(NameError::TooLong(256))
        );
        let astral = "𐐨".repeat(127);
        assert_eq!(valid_windows_name(os(&astral)), Ok(()));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let message = |name: &str| match valid_windows_name(os(name)) {
            Err(error) => error.to_string(),
            Ok(()) => String::new(),
        };
        assert!(message("a?b").contains("'?'"));
        assert!(message("nul.txt").contains("NUL"));
        assert!(message("x ").contains("space"));
        assert!(message(&"a".repeat(300)).contains("300"));
    }
}
