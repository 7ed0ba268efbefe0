//! The state's key-value store: an ordered map of entries, the Merkle trie over them, and an
//! undo journal so that a block (or a single transaction) can be rolled back when it fails.
//!
//! Keys are `tag ‖ key bytes` (see [`crate::keys`]); values are Borsh. The state root is the
//! trie root over `(blake3(key), blake3(value))` for every entry.
//!
//! Both the entries (an `imbl::OrdMap`, a persistent B-tree) and the trie share their
//! unchanged parts between clones: cloning a store — forking the state to build or verify a
//! block on — costs O(1), and a write to the clone copies only the O(log n) nodes on its
//! path. A block's cost is thus proportional to what it changes, whatever the state's size.
//! Keys and values are reference-counted, so a copied B-tree node (up to 64 entries) costs
//! reference counts, not copies of every key and value in it.

use std::ops::Bound;
use std::sync::Arc;

use imbl::OrdMap;

use platform_primitives::Hash;

use crate::smt::Trie;

/// Entries, their trie and the undo journal.
#[derive(Clone, Default)]
pub struct Store {
    entries: OrdMap<Bytes, Bytes>,
    trie: Trie,
    /// Previous values of every key written since the journal was last cleared, oldest first.
    journal: Vec<(Bytes, Option<Bytes>)>,
}

/// A key or value, shared between the stores that hold it.
type Bytes = Arc<[u8]>;

/// A point in the journal to roll back to.
#[derive(Clone, Copy, Debug)]
pub struct Checkpoint(usize);

fn path(key: &[u8]) -> [u8; 32] {
    *blake3::hash(key).as_bytes()
}

impl Store {
    /// The value under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.entries.get(key).map(AsRef::as_ref)
    }

    /// Writes `value` under `key`.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        if self.get(&key) == Some(value.as_slice()) {
            return;
        }
        self.trie.insert(path(&key), Hash::of(&value));
        let key: Bytes = key.into();
        let old = self.entries.insert(key.clone(), value.into());
        self.journal.push((key, old));
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: &[u8]) {
        if let Some(old) = self.entries.remove(key) {
            self.trie.remove(&path(key));
            self.journal.push((key.into(), Some(old)));
        }
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn scan<'a>(&'a self, prefix: &'a [u8]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.entries
            .range::<_, [u8]>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// The state root.
    pub fn root(&mut self) -> Hash {
        self.trie.root()
    }

    /// Marks the current point of the journal.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint(self.journal.len())
    }

    /// Undoes every write made after `cp`.
    pub fn rollback(&mut self, cp: Checkpoint) {
        while self.journal.len() > cp.0 {
            let (key, old) = self.journal.pop().expect("length checked");
            match old {
                Some(v) => {
                    self.trie.insert(path(&key), Hash::of(&v));
                    self.entries.insert(key, v);
                }
                None => {
                    self.trie.remove(&path(&key));
                    self.entries.remove(&key);
                }
            }
        }
    }

    /// Forgets the journal: the writes so far can no longer be undone.
    pub fn commit(&mut self) {
        self.journal.clear();
    }

    /// How many entries there are.
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// Every entry, in key order (for snapshots).
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_entries_and_root() {
        let mut s = Store::default();
        s.put(b"a".to_vec(), b"1".to_vec());
        s.put(b"b".to_vec(), b"2".to_vec());
        s.commit();
        let root = s.root();
        let cp = s.checkpoint();
        s.put(b"a".to_vec(), b"changed".to_vec());
        s.delete(b"b");
        s.put(b"c".to_vec(), b"3".to_vec());
        assert_ne!(s.root(), root);
        s.rollback(cp);
        assert_eq!(s.root(), root);
        assert_eq!(s.get(b"a"), Some(&b"1"[..]));
        assert_eq!(s.get(b"b"), Some(&b"2"[..]));
        assert_eq!(s.get(b"c"), None);
    }

    #[test]
    fn scan_stays_inside_the_prefix() {
        let mut s = Store::default();
        for k in [&b"\x01a"[..], b"\x02a", b"\x02b", b"\x03"] {
            s.put(k.to_vec(), vec![]);
        }
        let keys: Vec<_> = s.scan(b"\x02").map(|(k, _)| k.to_vec()).collect();
        assert_eq!(keys, vec![b"\x02a".to_vec(), b"\x02b".to_vec()]);
    }
}
