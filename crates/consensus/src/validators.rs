//! The epoch's validator set: stakes, quorums and leader election.

use platform_primitives::View;

use crate::types::ValidatorIndex;

/// Validators of one epoch, in index order, with their stake (from the chain's metagraph).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators {
    stakes: Vec<u64>,
    total: u128,
}

impl Validators {
    /// A validator set. Panics if empty, larger than `u16::MAX`, or without stake: the epoch
    /// anchor that produces it refuses such sets.
    pub fn new(stakes: Vec<u64>) -> Validators {
        assert!(
            !stakes.is_empty() && stakes.len() <= usize::from(u16::MAX),
            "1..=65535 validators"
        );
        let total = stakes.iter().map(|&s| u128::from(s)).sum();
        assert!(total > 0, "a validator set needs stake");
        Validators { stakes, total }
    }

    /// Number of validators.
    pub fn len(&self) -> usize {
        self.stakes.len()
    }

    /// Whether the set is empty (never, by construction).
    pub fn is_empty(&self) -> bool {
        self.stakes.is_empty()
    }

    /// A validator's stake (0 for an index outside the set).
    pub fn stake(&self, i: ValidatorIndex) -> u64 {
        self.stakes.get(usize::from(i)).copied().unwrap_or(0)
    }

    /// Total stake.
    pub fn total(&self) -> u128 {
        self.total
    }

    /// Whether `stake` is more than two thirds of the total: the quorum for every certificate.
    pub fn is_quorum(&self, stake: u128) -> bool {
        stake * 3 > self.total * 2
    }

    /// Summed stake of `signers`.
    pub fn stake_of(&self, signers: impl IntoIterator<Item = usize>) -> u128 {
        signers
            .into_iter()
            .map(|i| u128::from(self.stake(i as ValidatorIndex)))
            .sum()
    }

    /// The leader of `view`: a stake-weighted draw from `blake3(beacon ‖ view)`. Every node
    /// computes the same leader from the epoch's beacon alone.
    pub fn leader(&self, beacon: &[u8; 32], view: View) -> ValidatorIndex {
        let mut h = blake3::Hasher::new_derive_key("platform v1 leader election");
        h.update(beacon);
        h.update(&view.0.to_le_bytes());
        let bytes = h.finalize();
        let draw =
            u128::from_le_bytes(bytes.as_bytes()[..16].try_into().expect("16 bytes")) % self.total;
        let mut acc = 0u128;
        for (i, &s) in self.stakes.iter().enumerate() {
            acc += u128::from(s);
            if draw < acc {
                return i as ValidatorIndex;
            }
        }
        unreachable!("draw < total")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_is_strictly_more_than_two_thirds() {
        let v = Validators::new(vec![1, 1, 1]);
        assert!(!v.is_quorum(2));
        assert!(v.is_quorum(3));
        let v = Validators::new(vec![10, 10, 10, 10]);
        assert!(!v.is_quorum(26));
        assert!(v.is_quorum(30));
        let whales = Validators::new(vec![u64::MAX, u64::MAX, u64::MAX]);
        assert!(whales.is_quorum(3 * u128::from(u64::MAX)));
        assert!(!whales.is_quorum(2 * u128::from(u64::MAX)));
    }

    #[test]
    fn leaders_follow_stake_and_are_deterministic() {
        let v = Validators::new(vec![70, 20, 10, 0]);
        let beacon = [9u8; 32];
        let mut counts = [0u32; 4];
        for view in 0..10_000 {
            counts[v.leader(&beacon, View(view)) as usize] += 1;
        }
        assert_eq!(counts[3], 0, "no stake, never leader");
        assert!(counts[0] > 6500 && counts[0] < 7500, "{counts:?}");
        assert!(counts[2] > 800 && counts[2] < 1200, "{counts:?}");
        assert_eq!(v.leader(&beacon, View(5)), v.leader(&beacon, View(5)));
    }
}
