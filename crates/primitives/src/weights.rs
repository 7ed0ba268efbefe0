//! Exact weight vectors.
//!
//! Every validator must submit the *same* u16 vector to the chain, so shares are normalized with
//! integer arithmetic only: each UID gets `floor(share × 65535 / total)`, and the units lost to
//! rounding go one each to the UIDs with the largest remainders, ties broken by the smaller UID.
//! The result sums to exactly 65535 whenever any share is non-zero and does not depend on the
//! order in which shares were given.

use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::ids::Uid;

/// Why shares could not be normalized.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WeightsError {
    /// The same UID appeared twice in the input.
    #[error("uid {0} appears more than once in the weight shares")]
    DuplicateUid(Uid),
    /// The shares add up to more than `u128::MAX`.
    #[error("weight shares add up to more than 2^128 - 1; scale them down")]
    Overflow,
}

/// A normalized weight vector: UIDs in ascending order, u16 weights that sum to exactly
/// [`Weights::TOTAL`] (or an empty vector when every share was zero).
#[derive(Clone, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct Weights {
    uids: Vec<Uid>,
    weights: Vec<u16>,
}

impl Weights {
    /// The sum of a non-empty normalized vector.
    pub const TOTAL: u16 = u16::MAX;

    /// Normalizes `(uid, share)` pairs. Zero shares are dropped; an input whose shares are all
    /// zero gives an empty vector.
    pub fn from_shares(
        shares: impl IntoIterator<Item = (Uid, u128)>,
    ) -> Result<Weights, WeightsError> {
        let mut by_uid = BTreeMap::new();
        for (uid, share) in shares {
            if by_uid.insert(uid, share).is_some() {
                return Err(WeightsError::DuplicateUid(uid));
            }
        }
        let by_uid: Vec<(Uid, u128)> = by_uid.into_iter().filter(|&(_, s)| s > 0).collect();
        let total = by_uid
            .iter()
            .try_fold(0u128, |acc, &(_, s)| acc.checked_add(s))
            .ok_or(WeightsError::Overflow)?;
        if total == 0 {
            return Ok(Weights::default());
        }

        let mut floors = Vec::with_capacity(by_uid.len());
        let mut remainders = Vec::with_capacity(by_uid.len());
        let mut assigned: u64 = 0;
        for (i, &(_, share)) in by_uid.iter().enumerate() {
            let (q, r) = mul_div_rem(share, u128::from(Self::TOTAL), total);
            // share <= total, so q <= TOTAL fits in u16.
            let q = u16::try_from(q).expect("share <= total bounds the quotient by 65535");
            assigned += u64::from(q);
            floors.push(q);
            remainders.push((r, i));
        }
        let leftover = u64::from(Self::TOTAL) - assigned;
        // Largest remainder first; equal remainders go to the smaller UID (smaller index, since
        // `by_uid` is sorted by UID).
        remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for &(_, i) in remainders.iter().take(leftover as usize) {
            floors[i] += 1;
        }

        let (uids, weights) = by_uid
            .iter()
            .zip(floors)
            .filter(|&(_, w)| w > 0)
            .map(|(&(uid, _), w)| (uid, w))
            .unzip();
        Ok(Weights { uids, weights })
    }

    /// UIDs in ascending order.
    pub fn uids(&self) -> &[Uid] {
        &self.uids
    }

    /// Weights, index-aligned with [`Weights::uids`].
    pub fn weights(&self) -> &[u16] {
        &self.weights
    }

    /// `(uid, weight)` pairs in UID order.
    pub fn iter(&self) -> impl Iterator<Item = (Uid, u16)> + '_ {
        self.uids.iter().copied().zip(self.weights.iter().copied())
    }

    /// True if no UID has weight.
    pub fn is_empty(&self) -> bool {
        self.uids.is_empty()
    }
}

/// `(a × b) / c` and `(a × b) mod c` exactly, for `c > 0`, with a 256-bit intermediate product.
/// Callers guarantee `a <= c`, so the quotient is at most `b` and fits in u128.
fn mul_div_rem(a: u128, b: u128, c: u128) -> (u128, u128) {
    debug_assert!(c > 0 && a <= c);
    let (hi, lo) = mul_wide(a, b);
    // Restoring binary long division of the 256-bit (hi, lo) by c.
    let mut rem: u128 = 0;
    let mut quot: u128 = 0;
    for bit in (0..256).rev() {
        let next = if bit >= 128 {
            (hi >> (bit - 128)) & 1
        } else {
            (lo >> bit) & 1
        };
        // rem < c <= u128::MAX, so shifting may carry one bit out: track it.
        let carry = rem >> 127;
        rem = (rem << 1) | next;
        if carry == 1 || rem >= c {
            rem = rem.wrapping_sub(c);
            if bit < 128 {
                quot |= 1 << bit;
            }
        }
    }
    (quot, rem)
}

/// The full 256-bit product of two u128 values as (high, low) halves.
fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    const MASK: u128 = u64::MAX as u128;
    let (a_hi, a_lo) = (a >> 64, a & MASK);
    let (b_hi, b_lo) = (b >> 64, b & MASK);
    let ll = a_lo * b_lo;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let hh = a_hi * b_hi;
    let mid = (ll >> 64) + (lh & MASK) + (hl & MASK);
    let lo = (ll & MASK) | (mid << 64);
    let hi = hh + (lh >> 64) + (hl >> 64) + (mid >> 64);
    (hi, lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn w(pairs: &[(u16, u128)]) -> Vec<(u16, u16)> {
        Weights::from_shares(pairs.iter().map(|&(u, s)| (Uid(u), s)))
            .unwrap()
            .iter()
            .map(|(u, w)| (u.0, w))
            .collect()
    }

    #[test]
    fn known_answers() {
        assert_eq!(w(&[(5, 1)]), vec![(5, 65535)]);
        assert_eq!(w(&[(1, 1), (2, 1)]), vec![(1, 32768), (2, 32767)]);
        assert_eq!(
            w(&[(2, 1), (1, 1), (3, 1)]),
            vec![(1, 21845), (2, 21845), (3, 21845)]
        );
        assert_eq!(w(&[(0, 0), (1, 0)]), vec![]);
        assert_eq!(w(&[(9, 3), (4, 0), (7, 1)]), vec![(7, 16384), (9, 49151)]);
        // Shares near u128::MAX need the 256-bit product.
        assert_eq!(
            w(&[(1, u128::MAX / 2), (2, u128::MAX / 2)]),
            vec![(1, 32768), (2, 32767)]
        );
    }

    #[test]
    fn rejects_duplicates_and_overflow() {
        assert_eq!(
            Weights::from_shares([(Uid(1), 1), (Uid(1), 2)]),
            Err(WeightsError::DuplicateUid(Uid(1)))
        );
        assert_eq!(
            Weights::from_shares([(Uid(1), u128::MAX), (Uid(2), 1)]),
            Err(WeightsError::Overflow)
        );
    }

    #[test]
    fn mul_div_rem_matches_u128_where_it_fits() {
        for (a, b, c) in [(0, 65535, 1), (7, 65535, 10), (123456789, 65535, 987654321)] {
            assert_eq!(mul_div_rem(a, b, c), (a * b / c, a * b % c));
        }
        let (q, r) = mul_div_rem(u128::MAX, 65535, u128::MAX);
        assert_eq!((q, r), (65535, 0));
    }

    fn shares() -> impl Strategy<Value = Vec<(u16, u128)>> {
        proptest::collection::btree_map(
            any::<u16>(),
            prop_oneof![
                Just(0u128),
                0u128..1000,
                any::<u64>().prop_map(u128::from),
                (0u128..=u128::MAX >> 9),
            ],
            0..300,
        )
        .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #[test]
        fn sum_is_exact(shares in shares()) {
            let result = Weights::from_shares(shares.iter().map(|&(u, s)| (Uid(u), s))).unwrap();
            let total: u64 = result.weights().iter().map(|&w| u64::from(w)).sum();
            if shares.iter().any(|&(_, s)| s > 0) {
                prop_assert_eq!(total, 65535);
            } else {
                prop_assert!(result.is_empty());
            }
            prop_assert!(result.uids().windows(2).all(|p| p[0] < p[1]));
        }

        #[test]
        fn independent_of_input_order(shares in shares(), seed in any::<u64>()) {
            let a = Weights::from_shares(shares.iter().map(|&(u, s)| (Uid(u), s))).unwrap();
            let mut shuffled = shares.clone();
            // A deterministic Fisher-Yates shuffle driven by the seed.
            let mut x = seed | 1;
            for i in (1..shuffled.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                shuffled.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let b = Weights::from_shares(shuffled.iter().map(|&(u, s)| (Uid(u), s))).unwrap();
            prop_assert_eq!(a, b);
        }

        #[test]
        fn each_weight_is_within_one_of_its_exact_share(shares in shares()) {
            let total: u128 = shares.iter().map(|&(_, s)| s).sum();
            prop_assume!(total > 0);
            let result = Weights::from_shares(shares.iter().map(|&(u, s)| (Uid(u), s))).unwrap();
            let got: BTreeMap<u16, u16> = result.iter().map(|(u, w)| (u.0, w)).collect();
            for &(uid, share) in &shares {
                let (floor, _) = mul_div_rem(share, 65535, total);
                let w = u128::from(*got.get(&uid).unwrap_or(&0));
                prop_assert!(w == floor || w == floor + 1);
            }
        }

        #[test]
        fn equal_remainders_favour_smaller_uids(n in 2u16..50) {
            // n equal shares: 65535 mod n units go to the n smallest uids.
            let result = Weights::from_shares((0..n).map(|u| (Uid(u * 3), 1u128))).unwrap();
            let base = 65535 / n;
            let extra = 65535 % n;
            for (i, (_, w)) in result.iter().enumerate() {
                prop_assert_eq!(w, if (i as u16) < extra { base + 1 } else { base });
            }
        }
    }
}
