//! Directory tables that keep no copy of their entries' names.
//!
//! A directory of the lower tree or of the mount's tree finds a child by name. The child's
//! node holds the name already; a map keyed by a second copy of it cost a quarter of a
//! mount's memory (250,000 files: 15 MB in each tree, heap blocks and their overhead). A
//! slot here holds the child's id and 32 bits of the hash of its name's key: a lookup
//! compares names only where those bits match, and the table grows without reading them.

use std::ffi::OsStr;
use std::hash::BuildHasher;

/// The children of one directory: (id, 32 bits of the name key's hash) per entry.
pub type Table<Id> = hashbrown::HashTable<(Id, u32)>;

/// Hashes name keys for a set of tables (every table of one tree: the hash must not change
/// while a table holds it).
/// (foldhash: names come from wheels, and its per-process random seed keeps crafted names
/// from colliding on purpose, at a fraction of SipHash's cost per lookup)
#[derive(Default, Clone)]
pub struct Hasher(foldhash::fast::RandomState);

impl Hasher {
    /// The 32 bits a slot keeps of the hash of `key` (a name's key under the tree's name
    /// rules).
    pub fn short(&self, key: &OsStr) -> u32 {
        let h = self.0.hash_one(key.as_encoded_bytes());
        (h ^ (h >> 32)) as u32
    }
}

/// The table's hash made of the bits a slot keeps: its low bits pick the bucket and its
/// top seven the tag, as `hashbrown` uses them.
pub fn spread(short: u32) -> u64 {
    (u64::from(short) << 32) | u64::from(short)
}

/// Enters `id` under `short` in `table`, replacing the entry `same` tells is of the same
/// name (as a map's `insert` does).
pub fn file<Id>(table: &mut Table<Id>, short: u32, id: Id, same: impl FnMut(&(Id, u32)) -> bool) {
    match table.entry(spread(short), same, |&(_, h)| spread(h)) {
        hashbrown::hash_table::Entry::Occupied(mut o) => *o.get_mut() = (id, short),
        hashbrown::hash_table::Entry::Vacant(v) => {
            v.insert((id, short));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_found_by_its_bits_and_replaced_in_place() {
        let names = ["a", "b", "numpy", "__init__.py"];
        let hasher = Hasher::default();
        let mut table: Table<usize> = Table::default();
        for (i, n) in names.iter().enumerate() {
            let s = hasher.short(OsStr::new(n));
            file(&mut table, s, i, |&(j, h)| h == s && names[j] == *n);
        }
        assert_eq!(table.len(), 4);
        let find = |n: &str| {
            let s = hasher.short(OsStr::new(n));
            table
                .find(spread(s), |&(j, h)| h == s && names[j] == n)
                .map(|&(j, _)| j)
        };
        assert_eq!(find("numpy"), Some(2));
        assert_eq!(find("scipy"), None);
        // the same name filed again replaces its entry
        let s = hasher.short(OsStr::new("b"));
        file(&mut table, s, 1, |&(j, h)| h == s && names[j] == "b");
        assert_eq!(table.len(), 4);
    }
}
