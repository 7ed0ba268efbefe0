//! Travelling salesman challenge.
//!
//! The instance — 100 to 1,000 cities on a 10,000 × 10,000 integer grid — is generated from
//! [`INSTANCE_SEED`], so every miner solves the same published instance (the evaluation seed is
//! not used: a tour can only be checked against the instance it was made for). A submission is a tour: a Borsh `Vec<u16>` visiting every city once. Tours
//! of the wrong length, with repeats or out-of-range cities are refused by `validate`. Distances
//! are integer square roots, so every validator computes the same length. The score is
//! `baseline / (baseline + length)` in fixed point, where `baseline` is the length of the tour
//! that visits cities in index order: that tour scores 0.5 and shorter tours approach 1.0. The
//! best length seen is kept in the challenge's KV state.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::vec::Vec;

use platform_challenge_sdk::borsh::{self, BorshDeserialize};
use platform_challenge_sdk::{EvalInput, EvalOutput, SCORE_ONE, challenge, kv};

/// The seed of the published instance (it changes only with a new version of the challenge).
pub const INSTANCE_SEED: u64 = 0;

/// A seeded instance.
pub struct Instance {
    /// City x coordinates.
    pub xs: Vec<u32>,
    /// City y coordinates.
    pub ys: Vec<u32>,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Instance {
    /// The instance for `seed`.
    pub fn generate(seed: u64) -> Instance {
        let mut s = seed;
        let n = 100 + (splitmix(&mut s) % 901) as usize;
        let (mut xs, mut ys) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            xs.push((splitmix(&mut s) % 10_000) as u32);
            ys.push((splitmix(&mut s) % 10_000) as u32);
        }
        Instance { xs, ys }
    }

    /// Number of cities.
    pub fn len(&self) -> usize {
        self.xs.len()
    }

    /// Whether there are no cities (never, for generated instances).
    pub fn is_empty(&self) -> bool {
        self.xs.is_empty()
    }

    /// Integer Euclidean distance between cities `a` and `b`.
    pub fn distance(&self, a: usize, b: usize) -> u64 {
        let dx = i64::from(self.xs[a]) - i64::from(self.xs[b]);
        let dy = i64::from(self.ys[a]) - i64::from(self.ys[b]);
        isqrt((dx * dx + dy * dy) as u64)
    }

    /// Length of the closed tour.
    pub fn tour_length(&self, tour: &[u16]) -> u64 {
        (0..tour.len())
            .map(|i| self.distance(tour[i] as usize, tour[(i + 1) % tour.len()] as usize))
            .sum()
    }

    /// Whether `tour` visits every city exactly once.
    pub fn is_valid_tour(&self, tour: &[u16]) -> bool {
        if tour.len() != self.len() {
            return false;
        }
        let mut seen = alloc::vec![false; self.len()];
        tour.iter()
            .all(|&c| (c as usize) < self.len() && !core::mem::replace(&mut seen[c as usize], true))
    }
}

/// Integer square root (floor), exact for all u64.
pub fn isqrt(v: u64) -> u64 {
    if v < 2 {
        return v;
    }
    let mut x = v;
    let mut y = x.div_ceil(2);
    while y < x {
        x = y;
        y = (x + v / x) / 2;
    }
    x
}

/// Decodes a submission: exactly one Borsh `Vec<u16>`.
pub fn decode_tour(payload: &[u8]) -> Option<Vec<u16>> {
    let mut rest = payload;
    let tour = Vec::<u16>::deserialize(&mut rest).ok()?;
    rest.is_empty().then_some(tour)
}

/// The score of a valid tour on `instance`.
pub fn score(instance: &Instance, tour: &[u16]) -> (u64, u64) {
    let identity: Vec<u16> = (0..instance.len() as u16).collect();
    let baseline = instance.tour_length(&identity);
    let length = instance.tour_length(tour).max(1);
    let score = (u128::from(baseline) * u128::from(SCORE_ONE)
        / (u128::from(baseline) + u128::from(length))) as u64;
    (score, length)
}

fn validate(input: &EvalInput) -> bool {
    decode_tour(&input.payload).is_some_and(|t| Instance::generate(INSTANCE_SEED).is_valid_tour(&t))
}

fn evaluate(input: EvalInput) -> EvalOutput {
    let instance = Instance::generate(INSTANCE_SEED);
    let Some(tour) = decode_tour(&input.payload).filter(|t| instance.is_valid_tour(t)) else {
        return EvalOutput {
            score: 0,
            details: Vec::new(),
        };
    };
    let (score, length) = score(&instance, &tour);
    let best = match kv::get_borsh::<u64>(b"best_length") {
        Some(best) if best <= length => best,
        _ => {
            kv::put_borsh(b"best_length", &length);
            length
        }
    };
    EvalOutput {
        score,
        details: borsh::to_vec(&(length, best)).unwrap_or_default(),
    }
}

challenge!(evaluate: evaluate, validate: validate);
