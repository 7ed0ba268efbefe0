//! Workloads for the state-root benchmarks (criterion and `platform bench state`).

use crate::store::Store;

fn key(i: u64) -> Vec<u8> {
    let mut k = vec![0x42];
    k.extend(blake3::hash(&i.to_le_bytes()).as_bytes()[..16].iter());
    k
}

/// A store with `n` entries of 64-byte values, its root computed.
pub fn filled_store(n: u64) -> Store {
    let mut s = Store::default();
    for i in 0..n {
        s.put(key(i), vec![(i % 251) as u8; 64]);
    }
    s.commit();
    s.root();
    s
}

/// Rewrites `changes` existing entries (a different set each `round`) and recomputes the root:
/// the work one block does to the state root.
pub fn update_and_root(
    s: &mut Store,
    n: u64,
    changes: u64,
    round: u64,
) -> platform_primitives::Hash {
    for j in 0..changes {
        let i = (round
            .wrapping_mul(7_919)
            .wrapping_add(j.wrapping_mul(104_729)))
            % n;
        s.put(key(i), round.to_le_bytes().repeat(8));
    }
    s.commit();
    s.root()
}

/// What a validator does per block: fork the committed store (to build or verify a block on),
/// rewrite `changes` entries on the fork and compute its root. The fork is then dropped.
pub fn fork_update_and_root(
    s: &Store,
    n: u64,
    changes: u64,
    round: u64,
) -> platform_primitives::Hash {
    let mut fork = s.clone();
    update_and_root(&mut fork, n, changes, round)
}
