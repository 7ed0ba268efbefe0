//! Committee sortition (DESIGN §6): capped stake weights and a deterministic weighted draw.

use platform_primitives::{Hash, Hotkey};

/// Sortition weights: each validator's stake, capped so that no validator holds more than
/// `cap_bps / 10000` of the total weight.
///
/// The cap is found by water-filling: the largest stakes are lowered to a common level `c` with
/// `c / (j·c + rest) = cap`, where `j` validators are capped and `rest` is the stake of the
/// others; `c` is rounded down, which keeps every share at or below the cap. When the cap cannot
/// hold (fewer than `10000 / cap_bps` validators, or no stake at all), every validator gets the
/// same weight: that is the closest the draw can come to the cap.
pub fn capped_weights(stakes: &[u64], cap_bps: u16) -> Vec<u128> {
    let n = stakes.len();
    let cap = u128::from(cap_bps.clamp(1, 10_000));
    let total: u128 = stakes.iter().map(|&s| u128::from(s)).sum();
    if n == 0 {
        return Vec::new();
    }
    if total == 0 || (n as u128) * cap < 10_000 {
        return vec![1; n];
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| stakes[b].cmp(&stakes[a]).then(a.cmp(&b)));
    let mut rest = total;
    for j in 0..n {
        // Try capping the `j` largest stakes.
        let denominator = 10_000 - (j as u128) * cap;
        let level = cap * rest / denominator;
        let largest_uncapped = u128::from(stakes[order[j]]);
        if largest_uncapped <= level {
            let mut w: Vec<u128> = stakes.iter().map(|&s| u128::from(s)).collect();
            for &i in &order[..j] {
                w[i] = level;
            }
            return w;
        }
        rest -= largest_uncapped;
        if (j as u128 + 1) * cap >= 10_000 {
            break;
        }
    }
    vec![1; n]
}

/// Orders `candidates` by a weighted draw without replacement, seeded by `seed`: draw `i`
/// picks with probability proportional to weight among those not yet drawn, using
/// `blake3(seed ‖ i)` as its random number. The same inputs give the same order everywhere.
pub fn draw_order(candidates: &[(Hotkey, u128)], seed: &Hash) -> Vec<Hotkey> {
    let mut left: Vec<(Hotkey, u128)> = candidates.to_vec();
    left.sort_by_key(|c| c.0);
    let mut order = Vec::with_capacity(left.len());
    let mut i: u32 = 0;
    while !left.is_empty() {
        let total: u128 = left.iter().map(|c| c.1).sum();
        let pick = if total == 0 {
            0
        } else {
            let mut h = blake3::Hasher::new();
            h.update(&seed.0);
            h.update(&i.to_le_bytes());
            let r = u128::from_le_bytes(h.finalize().as_bytes()[..16].try_into().expect("16"));
            let mut target = r % total;
            let mut chosen = left.len() - 1;
            for (k, c) in left.iter().enumerate() {
                if target < c.1 {
                    chosen = k;
                    break;
                }
                target -= c.1;
            }
            chosen
        };
        order.push(left.remove(pick).0);
        i += 1;
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hk(i: u8) -> Hotkey {
        Hotkey([i; 32])
    }

    #[test]
    fn a_whale_is_capped() {
        let w = capped_weights(&[1_000_000, 10, 10, 10, 10, 10], 2_000);
        let total: u128 = w.iter().sum();
        assert!(w[0] * 10_000 <= total * 2_000, "{w:?}");
        assert_eq!(&w[1..], &[10, 10, 10, 10, 10]);
    }

    #[test]
    fn infeasible_cap_means_equal_weights() {
        assert_eq!(capped_weights(&[100, 1, 1], 2_000), vec![1, 1, 1]);
        assert_eq!(capped_weights(&[0, 0, 0, 0, 0], 2_000), vec![1; 5]);
    }

    #[test]
    fn draw_is_a_permutation() {
        let c: Vec<_> = (0..7).map(|i| (hk(i), u128::from(i) + 1)).collect();
        let mut o = draw_order(&c, &Hash::of(b"s"));
        o.sort();
        assert_eq!(o, (0..7).map(hk).collect::<Vec<_>>());
    }

    proptest! {
        /// The capped weight of every validator is at most the cap, whenever the cap is feasible.
        #[test]
        fn capped_share_never_exceeds_cap(
            stakes in prop::collection::vec(0u64..u64::MAX / 8192, 1..64),
            cap in 1u16..=10_000,
        ) {
            let w = capped_weights(&stakes, cap);
            let total: u128 = w.iter().sum();
            prop_assert!(total > 0);
            let feasible = (stakes.len() as u128) * u128::from(cap) >= 10_000
                && stakes.iter().any(|&s| s > 0);
            if feasible {
                for &x in &w {
                    prop_assert!(x * 10_000 <= total * u128::from(cap));
                }
            }
        }

        /// The same seed and candidates give the same order, whatever order candidates come in.
        #[test]
        fn sortition_is_deterministic(weights in prop::collection::vec(1u128..1000, 1..20), seed: [u8; 32]) {
            let c: Vec<_> = weights.iter().enumerate().map(|(i, &w)| (hk(i as u8), w)).collect();
            let mut reversed = c.clone();
            reversed.reverse();
            prop_assert_eq!(draw_order(&c, &Hash(seed)), draw_order(&reversed, &Hash(seed)));
        }
    }

    /// Over many seeds, the first draw picks each validator about as often as its capped
    /// weight says, and never much above the cap.
    #[test]
    fn first_draw_frequency_respects_the_cap() {
        let stakes = [5_000u64, 3_000, 1_000, 500, 500, 400, 300, 200, 100];
        let w = capped_weights(&stakes, 2_000);
        let c: Vec<_> = w
            .iter()
            .enumerate()
            .map(|(i, &w)| (hk(i as u8), w))
            .collect();
        let mut wins = [0u32; 9];
        let draws = 4_000;
        for s in 0..draws {
            let first = draw_order(&c, &Hash::of(&u32::to_le_bytes(s)))[0];
            wins[usize::from(first.0[0])] += 1;
        }
        for (i, &n) in wins.iter().enumerate() {
            // 20% cap plus a 3-sigma sampling margin (sigma = sqrt(.2 * .8 / 4000) ≈ 0.63%).
            assert!(
                n * 10_000 <= draws * 2_200,
                "validator {i} won {n} of {draws}"
            );
        }
        assert!(
            wins[0] > wins[8],
            "stake still matters below the cap: {wins:?}"
        );
    }
}
