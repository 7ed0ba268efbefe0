//! A sparse binary Merkle trie over 256-bit paths, with cached node hashes.
//!
//! Every state entry is a leaf at path `blake3(key)` carrying `blake3(value)`. The trie's shape
//! depends only on the set of leaves, never on the order of insertion:
//! - a subtree with no leaf is `Empty` and hashes to zero;
//! - a subtree with exactly one leaf *is* that leaf, at whatever depth it sits
//!   (`blake3(0x00 ‖ path ‖ value_hash)`);
//! - any other subtree is a branch on the next path bit (`blake3(0x01 ‖ left ‖ right)`).
//!
//! Changing one entry touches the nodes on one root-to-leaf path (about log₂ n of them) and
//! clears their cached hashes; [`Trie::root`] rehashes only those. The cost of a block is
//! therefore proportional to what it changed, not to the size of the state.
//!
//! Branches hold their children behind an `Arc`: a clone of the trie shares every node, and a
//! change to one copy clones only the shared nodes on its path (`Arc::make_mut`).

use std::sync::Arc;

use platform_primitives::Hash;

/// A node of the trie.
#[derive(Clone, Default)]
enum Node {
    #[default]
    Empty,
    Leaf {
        path: [u8; 32],
        hash: Hash,
    },
    Branch {
        children: Arc<[Node; 2]>,
        /// `None` after a change below; recomputed by `hash()`.
        cached: Option<Hash>,
    },
}

fn bit(path: &[u8; 32], depth: usize) -> usize {
    usize::from((path[depth / 8] >> (7 - depth % 8)) & 1)
}

fn leaf_hash(path: &[u8; 32], value: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[0]);
    h.update(path);
    h.update(&value.0);
    Hash(*h.finalize().as_bytes())
}

fn branch_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[1]);
    h.update(&left.0);
    h.update(&right.0);
    Hash(*h.finalize().as_bytes())
}

impl Node {
    fn insert(&mut self, path: [u8; 32], hash: Hash, depth: usize) {
        match self {
            Node::Empty => *self = Node::Leaf { path, hash },
            Node::Leaf { path: p, hash: h } if *p == path => *h = hash,
            Node::Leaf { .. } => {
                let existing = std::mem::take(self);
                let mut branch = Node::Branch {
                    children: Arc::default(),
                    cached: None,
                };
                branch.place(existing, depth);
                branch.insert(path, hash, depth);
                *self = branch;
            }
            Node::Branch { children, cached } => {
                *cached = None;
                Arc::make_mut(children)[bit(&path, depth)].insert(path, hash, depth + 1);
            }
        }
    }

    /// Puts an existing leaf under this (new, empty) branch at `depth`.
    fn place(&mut self, leaf: Node, depth: usize) {
        let Node::Leaf { path, hash } = leaf else {
            unreachable!("only leaves are re-placed")
        };
        if let Node::Branch { children, .. } = self {
            Arc::make_mut(children)[bit(&path, depth)].insert(path, hash, depth + 1);
        }
    }

    /// Removes the leaf at `path`; returns whether it was present.
    fn remove(&mut self, path: &[u8; 32], depth: usize) -> bool {
        match self {
            Node::Empty => false,
            Node::Leaf { path: p, .. } => {
                if p == path {
                    *self = Node::Empty;
                    true
                } else {
                    false
                }
            }
            Node::Branch { children, cached } => {
                // Callers remove only present paths ([`Trie::remove`] checks), so this copies
                // a shared node only when something below it really changes.
                let children = Arc::make_mut(children);
                if !children[bit(path, depth)].remove(path, depth + 1) {
                    return false;
                }
                *cached = None;
                // A subtree left with a single leaf collapses to that leaf.
                match (&children[0], &children[1]) {
                    (Node::Empty, Node::Empty) => *self = Node::Empty,
                    (Node::Empty, Node::Leaf { .. }) => *self = std::mem::take(&mut children[1]),
                    (Node::Leaf { .. }, Node::Empty) => *self = std::mem::take(&mut children[0]),
                    _ => {}
                }
                true
            }
        }
    }

    fn hash(&mut self) -> Hash {
        match self {
            Node::Empty => Hash::ZERO,
            Node::Leaf { path, hash } => leaf_hash(path, hash),
            Node::Branch { children, cached } => {
                if let Some(h) = cached {
                    return *h;
                }
                // A branch without a cached hash was changed since the last root, so its
                // children are already this copy's own: `make_mut` copies nothing here.
                let [left, right] = Arc::make_mut(children);
                let h = branch_hash(&left.hash(), &right.hash());
                *cached = Some(h);
                h
            }
        }
    }
}

/// The trie. Paths and value hashes are supplied by the caller ([`crate::store::Store`]).
#[derive(Clone, Default)]
pub struct Trie {
    root: Node,
    len: usize,
}

impl Trie {
    /// Sets the leaf at `path` to `value_hash`.
    pub fn insert(&mut self, path: [u8; 32], value_hash: Hash) {
        if !self.contains(&path) {
            self.len += 1;
        }
        self.root.insert(path, value_hash, 0);
    }

    /// Removes the leaf at `path`, if present.
    pub fn remove(&mut self, path: &[u8; 32]) {
        if self.contains(path) && self.root.remove(path, 0) {
            self.len -= 1;
        }
    }

    fn contains(&self, path: &[u8; 32]) -> bool {
        let mut node = &self.root;
        let mut depth = 0;
        loop {
            match node {
                Node::Empty => return false,
                Node::Leaf { path: p, .. } => return p == path,
                Node::Branch { children, .. } => {
                    node = &children[bit(path, depth)];
                    depth += 1;
                }
            }
        }
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the trie has no leaf.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The root hash, rehashing only the branches changed since the last call.
    pub fn root(&mut self) -> Hash {
        self.root.hash()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn path(i: u64) -> [u8; 32] {
        *blake3::hash(&i.to_le_bytes()).as_bytes()
    }

    #[test]
    fn empty_single_and_pair() {
        let mut t = Trie::default();
        assert_eq!(t.root(), Hash::ZERO);
        let v = Hash::of(b"v");
        t.insert(path(1), v);
        assert_eq!(t.root(), leaf_hash(&path(1), &v));
        t.insert(path(2), v);
        assert_ne!(t.root(), leaf_hash(&path(1), &v));
        t.remove(&path(2));
        assert_eq!(
            t.root(),
            leaf_hash(&path(1), &v),
            "removal collapses back to the leaf"
        );
        t.remove(&path(1));
        assert_eq!(t.root(), Hash::ZERO);
        assert!(t.is_empty());
    }

    #[test]
    fn deep_common_prefix_collapses() {
        // Two paths that agree on the first 20 bits, then a third elsewhere.
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        a[2] = 0b0000_0000;
        b[2] = 0b0000_1000;
        let c = [0xff; 32];
        let v = Hash::of(b"x");
        let mut t = Trie::default();
        t.insert(a, v);
        t.insert(b, v);
        t.insert(c, v);
        let three = t.root();
        t.remove(&b);
        let mut u = Trie::default();
        u.insert(c, v);
        u.insert(a, v);
        assert_eq!(t.root(), u.root());
        t.insert(b, v);
        assert_eq!(t.root(), three);
    }

    #[test]
    fn a_clone_shares_nodes_and_diverges_independently() {
        let v = Hash::of(b"v");
        let mut a = Trie::default();
        for i in 0..1_000 {
            a.insert(path(i), v);
        }
        let root = a.root();
        let mut b = a.clone();
        b.insert(path(5), Hash::of(b"changed"));
        b.remove(&path(7));
        b.insert(path(5_000), v);
        assert_eq!(a.root(), root, "the original is untouched");
        let mut fresh = Trie::default();
        for i in (0..1_000).filter(|i| *i != 7).chain([5_000]) {
            fresh.insert(path(i), if i == 5 { Hash::of(b"changed") } else { v });
        }
        assert_eq!(b.root(), fresh.root());
        assert_eq!(b.len(), 1_000);
        // Of the 8 subtrees at depth 3, the (at most 3) on changed paths were copied; the
        // others are still the same allocations.
        let (xs, ys) = (branches_at(&a.root, 3), branches_at(&b.root, 3));
        assert_eq!((xs.len(), ys.len()), (8, 8));
        let shared = xs
            .iter()
            .zip(&ys)
            .filter(|(x, y)| Arc::ptr_eq(x, y))
            .count();
        assert!(shared >= 5, "only {shared} of 8 subtrees shared");
    }

    /// The children arrays of the branches `depth` levels down, left to right.
    fn branches_at(node: &Node, depth: usize) -> Vec<Arc<[Node; 2]>> {
        match node {
            Node::Branch { children, .. } if depth == 0 => vec![children.clone()],
            Node::Branch { children, .. } => children
                .iter()
                .flat_map(|c| branches_at(c, depth - 1))
                .collect(),
            _ => Vec::new(),
        }
    }

    proptest! {
        /// The root depends on the final set of entries only, not on the history of inserts,
        /// updates and removals that produced it.
        #[test]
        fn root_is_a_function_of_the_set(ops in prop::collection::vec((0u64..40, any::<bool>(), 0u8..3), 0..200)) {
            let mut t = Trie::default();
            let mut model = std::collections::BTreeMap::new();
            for (k, insert, v) in ops {
                if insert {
                    let vh = Hash::of(&[v]);
                    t.insert(path(k), vh);
                    model.insert(k, vh);
                } else {
                    t.remove(&path(k));
                    model.remove(&k);
                }
                // Interleave root computations so cached hashes are exercised.
                if k % 3 == 0 { t.root(); }
            }
            let mut fresh = Trie::default();
            for (k, vh) in model.iter().rev() {
                fresh.insert(path(*k), *vh);
            }
            prop_assert_eq!(t.len(), model.len());
            prop_assert_eq!(t.root(), fresh.root());
        }
    }
}
