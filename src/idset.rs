//! A compact, exact set of job ids, for the sets a batch keeps per job (the ids seen while a job
//! file is validated, the ids a results file already holds for `--resume`).
//!
//! A `HashSet<String>` costs about 100 bytes per id (the `String`, its own heap block, and a
//! 24-byte bucket in a table kept at most 7/8 full), so a million ids took about 100 MiB. Here
//! every id's text goes into one arena (a length prefix, then the bytes) and the table holds only
//! the 8-byte offset of each: about 11 bytes of text and 8–16 bytes of table per id, in two large
//! blocks that go back to the system when the set is dropped. Lookups compare the text, so the
//! set is exact: two ids with the same hash are still two ids.

use std::hash::BuildHasher;

use hashbrown::HashTable;

#[derive(Default)]
pub(crate) struct IdSet<S = std::collections::hash_map::RandomState> {
    /// Every id: its length as a LEB128 varint, then its bytes.
    arena: Vec<u8>,
    /// Offsets into `arena`.
    table: HashTable<usize>,
    hasher: S,
}

impl IdSet {
    pub(crate) fn new() -> Self {
        Self::default()
    }
}

impl<S: BuildHasher> IdSet<S> {
    /// Add `id`; `false` when it was already there.
    pub(crate) fn insert(&mut self, id: &str) -> bool {
        let hash = self.hasher.hash_one(id.as_bytes());
        let Self {
            arena,
            table,
            hasher,
        } = self;
        if table
            .find(hash, |&at| text(arena, at) == id.as_bytes())
            .is_some()
        {
            return false;
        }
        let at = arena.len();
        let mut len = id.len();
        loop {
            #[allow(clippy::cast_possible_truncation, reason = "seven bits")]
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                arena.push(byte);
                break;
            }
            arena.push(byte | 0x80);
        }
        arena.extend_from_slice(id.as_bytes());
        table.insert_unique(hash, at, |&at| hasher.hash_one(text(arena, at)));
        true
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.table
            .find(self.hasher.hash_one(id.as_bytes()), |&at| {
                text(&self.arena, at) == id.as_bytes()
            })
            .is_some()
    }
}

/// The bytes of the id stored at `at` (an offset `insert` wrote).
fn text(arena: &[u8], mut at: usize) -> &[u8] {
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let byte = arena[at];
        at += 1;
        len |= usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    &arena[at..at + len]
}

impl<S> std::fmt::Debug for IdSet<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdSet")
            .field("ids", &self.table.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_exactly_the_ids_that_went_in() {
        let long = "x".repeat(200_000); // a length prefix of three bytes
        let ids = ["", "a", "job-1", "job-10", "é🦀", long.as_str(), "job-1 "];
        let mut set = IdSet::new();
        for id in ids {
            assert!(set.insert(id), "{id:?} is new");
        }
        for id in ids {
            assert!(!set.insert(id), "{id:?} is a duplicate");
            assert!(set.contains(id), "{id:?} is there");
        }
        assert_eq!(set.table.len(), ids.len());
        for absent in ["job-2", "job-", "A", &long[1..], "job-1  "] {
            assert!(!set.contains(absent), "{absent:?} never went in");
        }
    }

    #[test]
    fn ids_with_the_same_hash_stay_apart() {
        // A hasher that gives every id the same hash: only the text can tell them apart.
        #[derive(Default)]
        struct Constant;
        impl std::hash::Hasher for Constant {
            fn finish(&self) -> u64 {
                7
            }
            fn write(&mut self, _: &[u8]) {}
        }
        let mut set = IdSet::<std::hash::BuildHasherDefault<Constant>>::default();
        for id in ["a", "b", "c", "ab"] {
            assert!(set.insert(id));
        }
        assert!(!set.insert("b"));
        assert_eq!(set.table.len(), 4);
        assert!(set.contains("ab") && !set.contains("d") && !set.contains("ba"));
    }

    #[test]
    fn a_hundred_thousand_ids_stay_small() {
        let mut set = IdSet::new();
        for i in 0..100_000 {
            assert!(set.insert(&format!("job-{i}")));
        }
        assert!(set.contains("job-99999") && !set.contains("job-100000"));
        // The old HashSet<String> took about 100 bytes per id.
        let bytes = set.arena.capacity() + set.table.capacity() * 9;
        assert!(bytes < 100_000 * 40, "{bytes} bytes for 100,000 ids");
    }
}
