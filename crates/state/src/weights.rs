//! Epoch weights (DESIGN §9): scores → per-miner shares by each challenge's scoring rule →
//! emission-weighted sum → exact u16 vector. Integer arithmetic only.

use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};
use platform_primitives::{Epoch, Hash, Hotkey, Uid, Weights, encode};

use crate::types::{ChallengeMeta, Neuron, ScoringRule};

/// One miner's best certified score in the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scored {
    /// The miner's UID.
    pub uid: Uid,
    /// The score.
    pub score: u64,
    /// Certification order (smaller = earlier), for ties.
    pub seq: u64,
}

/// What a module's `weights` export reads as its payload.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct WeightsInput {
    /// The epoch being closed.
    pub epoch: Epoch,
    /// `(uid, best score)` for every scored miner, UIDs ascending.
    pub scores: Vec<(Uid, u64)>,
}

/// The `details` a module's `weights` export returns: `(uid, share)` pairs.
pub type WeightsOutput = Vec<(Uid, u64)>;

/// What running a module's `weights` export gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModuleShares {
    /// Shares per UID.
    Shares(WeightsOutput),
    /// The module ran and failed deterministically (trap, fuel, bad output): the challenge's
    /// emission goes to the burn UID.
    Failed,
    /// This validator could not run it yet (module missing, wall-clock backstop). It cannot
    /// judge the epoch close: the block waits, it is not refused.
    Unavailable,
}

/// Runs modules' `weights` exports at epoch close: the one place where applying a block runs
/// wasm. The state defines it; the node implements it over its blob store and the wasm runtime
/// (`platform_node::RuntimeWeights`), so that nothing here reads files or clocks.
pub trait WeightsHost {
    /// Runs `challenge`'s module on `input`.
    fn run(&self, challenge: &ChallengeMeta, input: &WeightsInput) -> ModuleShares;
}

/// A host with no modules: every module rule is unavailable.
pub struct NoModules;

impl WeightsHost for NoModules {
    fn run(&self, _: &ChallengeMeta, _: &WeightsInput) -> ModuleShares {
        ModuleShares::Unavailable
    }
}

/// Raw shares of one challenge's scores under a built-in rule. Module rules go through
/// [`WeightsHost`].
pub fn rule_shares(rule: &ScoringRule, scores: &[Scored]) -> Vec<(Uid, u128)> {
    let mut ranked: Vec<&Scored> = scores.iter().filter(|s| s.score > 0).collect();
    ranked.sort_by(|a, b| b.score.cmp(&a.score).then(a.seq.cmp(&b.seq)));
    match rule {
        ScoringRule::WinnerTakesAll => ranked.first().map(|s| (s.uid, 1)).into_iter().collect(),
        ScoringRule::TopK { k, decay_bps } => {
            let mut share: u128 = 1 << 64;
            let mut out = Vec::new();
            for s in ranked.iter().take(usize::from(*k)) {
                if share == 0 {
                    break;
                }
                out.push((s.uid, share));
                share = share * u128::from(*decay_bps) / 10_000;
            }
            out
        }
        ScoringRule::Proportional { baseline } => ranked
            .iter()
            .filter(|s| s.score > baseline.0)
            .map(|s| (s.uid, u128::from(s.score - baseline.0)))
            .collect(),
        ScoringRule::Module => Vec::new(),
    }
}

/// One challenge's inputs to the epoch weights.
pub struct ChallengeScores<'a> {
    /// Its metadata (rule, emission share).
    pub meta: &'a ChallengeMeta,
    /// Best score per miner in the epoch.
    pub scores: Vec<(Hotkey, Scored)>,
}

/// Computes the epoch's weight vector, or the challenge whose module could not be run here.
pub fn epoch_weights(
    epoch: Epoch,
    metagraph: &[Neuron],
    challenges: &[ChallengeScores<'_>],
    burn_uid: Uid,
    host: &dyn WeightsHost,
) -> Result<Weights, Box<ChallengeMeta>> {
    const UNIT: u128 = 1 << 64;
    let uids: BTreeMap<Hotkey, Uid> = metagraph.iter().map(|n| (n.hotkey, n.uid)).collect();
    let known: std::collections::BTreeSet<Uid> = metagraph.iter().map(|n| n.uid).collect();
    let mut amounts: BTreeMap<Uid, u128> = BTreeMap::new();
    let mut assigned: u128 = 0;
    for c in challenges {
        // Deregistered miners (no UID in this epoch's metagraph) earn nothing.
        let scored: Vec<Scored> = c
            .scores
            .iter()
            .filter_map(|(hk, s)| uids.get(hk).map(|&uid| Scored { uid, ..*s }))
            .collect();
        let raw: Vec<(Uid, u128)> = match c.meta.scoring {
            ScoringRule::Module => {
                let mut input: Vec<(Uid, u64)> = scored.iter().map(|s| (s.uid, s.score)).collect();
                input.sort();
                match host.run(
                    c.meta,
                    &WeightsInput {
                        epoch,
                        scores: input,
                    },
                ) {
                    ModuleShares::Shares(shares) => {
                        let mut seen = std::collections::BTreeSet::new();
                        if shares.iter().all(|(u, _)| seen.insert(*u)) {
                            shares
                                .into_iter()
                                .filter(|(u, s)| *s > 0 && known.contains(u) && *u != burn_uid)
                                .map(|(u, s)| (u, u128::from(s)))
                                .collect()
                        } else {
                            Vec::new()
                        }
                    }
                    ModuleShares::Failed => Vec::new(),
                    ModuleShares::Unavailable => return Err(Box::new(c.meta.clone())),
                }
            }
            ref rule => rule_shares(rule, &scored),
        };
        let total: u128 = raw.iter().map(|r| r.1).sum();
        if total == 0 {
            continue;
        }
        for (uid, share) in raw {
            // share <= total, so share * 2^64 / total <= 2^64; times <= 10^4 basis points.
            let part = mul_div(share, UNIT, total) * u128::from(c.meta.emission_bps);
            *amounts.entry(uid).or_default() += part;
            assigned += part;
        }
    }
    let everything = 10_000 * UNIT;
    if known.contains(&burn_uid) {
        *amounts.entry(burn_uid).or_default() += everything - assigned;
    }
    Ok(Weights::from_shares(amounts).expect("uids are map keys and the sum is below 2^79"))
}

/// `a * b / c` for `a <= c` with `a * b` possibly above u128: splits `b` so no product overflows.
fn mul_div(a: u128, b: u128, c: u128) -> u128 {
    // b is 2^64 here and a <= c; (a * 2^64) / c computed as 256-bit long division.
    let (hi, lo) = widening_mul(a, b);
    div_256_by_128(hi, lo, c)
}

fn widening_mul(a: u128, b: u128) -> (u128, u128) {
    let mask = u128::from(u64::MAX);
    let (a1, a0) = (a >> 64, a & mask);
    let (b1, b0) = (b >> 64, b & mask);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 64) + (p01 & mask) + (p10 & mask);
    let lo = (p00 & mask) | (mid << 64);
    let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (hi, lo)
}

/// (hi·2^128 + lo) / d, for a quotient that fits in u128 (hi < d).
fn div_256_by_128(hi: u128, lo: u128, d: u128) -> u128 {
    let mut rem = hi;
    let mut q: u128 = 0;
    for i in (0..128).rev() {
        let carry = rem >> 127;
        rem = (rem << 1) | ((lo >> i) & 1);
        q <<= 1;
        if carry == 1 || rem >= d {
            rem = rem.wrapping_sub(d);
            q |= 1;
        }
    }
    q
}

/// blake3 of the Borsh weight vector: what `EpochClose` carries.
pub fn weights_digest(w: &Weights) -> Hash {
    Hash::of(&encode(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform_primitives::Score;

    fn s(uid: u16, score: u64, seq: u64) -> Scored {
        Scored {
            uid: Uid(uid),
            score,
            seq,
        }
    }

    #[test]
    fn winner_takes_all_ties_go_to_the_earlier() {
        let r = rule_shares(
            &ScoringRule::WinnerTakesAll,
            &[s(3, 10, 5), s(4, 10, 2), s(5, 9, 0)],
        );
        assert_eq!(r, vec![(Uid(4), 1)]);
    }

    #[test]
    fn top_k_decays() {
        let r = rule_shares(
            &ScoringRule::TopK {
                k: 2,
                decay_bps: 5_000,
            },
            &[s(1, 3, 0), s(2, 9, 1), s(3, 5, 2)],
        );
        assert_eq!(r, vec![(Uid(2), 1 << 64), (Uid(3), 1 << 63)]);
    }

    #[test]
    fn proportional_above_baseline() {
        let r = rule_shares(
            &ScoringRule::Proportional {
                baseline: Score(100),
            },
            &[s(1, 50, 0), s(2, 300, 1), s(3, 150, 2)],
        );
        assert_eq!(r, vec![(Uid(2), 200), (Uid(3), 50)]);
    }

    #[test]
    fn mul_div_matches_small_cases_and_handles_big_ones() {
        assert_eq!(mul_div(3, 1 << 64, 4), 3 << 62);
        assert_eq!(mul_div(u128::MAX, 1 << 64, u128::MAX), 1 << 64);
        assert_eq!(mul_div(u128::MAX / 2, 1 << 64, u128::MAX), (1 << 63) - 1);
    }
}
