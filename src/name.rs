//! Distribution names (PEP 503): `Foo_Bar`, `foo-bar` and `FOO.bar` name one distribution.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A distribution name, compared, hashed and ordered by its normalized form (lowercase,
/// runs of `-`, `_` and `.` made one `-`), and shown normalized as uv shows names in its
/// summaries. The spelling it was made from is kept for messages that quote the user or a
/// wheel.
#[derive(Debug, Clone)]
pub struct PackageName {
    normalized: String,
    spelling: String,
}

impl PackageName {
    pub fn new(spelling: &str) -> PackageName {
        let mut normalized = String::with_capacity(spelling.len());
        for c in spelling.chars() {
            if matches!(c, '-' | '_' | '.') {
                if !normalized.ends_with('-') {
                    normalized.push('-');
                }
            } else {
                normalized.push(c.to_ascii_lowercase());
            }
        }
        PackageName {
            normalized,
            spelling: spelling.to_owned(),
        }
    }

    /// The normalized name (`foo-bar`).
    pub fn as_str(&self) -> &str {
        &self.normalized
    }

    /// The name as it was spelled (`Foo_Bar`).
    pub fn spelling(&self) -> &str {
        &self.spelling
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized)
    }
}

impl std::str::FromStr for PackageName {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<PackageName, Self::Err> {
        Ok(PackageName::new(s))
    }
}

impl From<&str> for PackageName {
    fn from(s: &str) -> PackageName {
        PackageName::new(s)
    }
}

impl PartialEq for PackageName {
    fn eq(&self, other: &PackageName) -> bool {
        self.normalized == other.normalized
    }
}

impl Eq for PackageName {}

impl Hash for PackageName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normalized.hash(state);
    }
}

impl PartialOrd for PackageName {
    fn partial_cmp(&self, other: &PackageName) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PackageName {
    fn cmp(&self, other: &PackageName) -> Ordering {
        self.normalized.cmp(&other.normalized)
    }
}

#[cfg(test)]
mod tests {
    use super::PackageName;

    #[test]
    fn normalized() {
        assert_eq!(PackageName::new("Tiny_Pkg").as_str(), "tiny-pkg");
        assert_eq!(
            PackageName::new("zope.Interface--x__.y").as_str(),
            "zope-interface-x-y"
        );
    }

    #[test]
    fn one_distribution_whatever_the_spelling() {
        let a = PackageName::new("Foo_Bar");
        let b: PackageName = "foo.bar".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "foo-bar");
        assert_eq!(a.spelling(), "Foo_Bar");
        let set: std::collections::HashSet<PackageName> = [a.clone(), b].into_iter().collect();
        assert_eq!(set.len(), 1);
        // by the normalized name, not the spelling ("B" sorts before "a")
        assert!(PackageName::new("a") < PackageName::new("B"));
        assert_ne!(a, PackageName::new("foobar"));
    }
}
