//! Classifier challenge: a machine-learning task in integer arithmetic.
//!
//! The data set is the challenge's asset 0 (`assets/dataset.bin`, pinned by its blake3 in the
//! challenge's metadata and fetched by the validators): 400 labelled points with 4 features,
//! each 4 little-endian `i32` then a `u8` label ([`encode_dataset`]). It was generated from
//! [`DATASET_SEED`] by `examples/make_samples.rs`: two classes around opposite centres, with
//! approximately Gaussian noise (sums of uniform draws), in fixed point (1000 = 1.0). The first
//! 200 points are the training split miners learn from; the last 200 are the held-out split
//! the module scores on. An evaluation without the asset (or with one that does not decode)
//! traps: it is the validator's problem, never scored as the miner's.
//!
//! A submission is the parameters of a fixed linear model: Borsh `Model { weights: [i32; 4],
//! bias: i32 }`; it predicts class 1 when `weights · x + bias > 0` (i64 arithmetic). The score is
//! held-out accuracy in fixed point. Payloads that do not decode to exactly one model are refused.
//!
//! The module also exports `weights`, for subnets that choose the `module` scoring rule: only
//! accuracy above chance (0.5) earns, and a miner's share is the square of its margin, so
//! a small lead in accuracy is a large lead in weight.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::vec::Vec;

use platform_challenge_sdk::borsh::{self, BorshDeserialize, BorshSerialize};
use platform_challenge_sdk::{EvalInput, EvalOutput, SCORE_ONE, asset, challenge, kv};

/// Features per point.
pub const FEATURES: usize = 4;
/// Points in the dataset.
pub const POINTS: usize = 400;
/// Training points (the rest are held out).
pub const TRAIN: usize = 200;
/// The seed of the published dataset (it changes only with a new version of the challenge).
pub const DATASET_SEED: u64 = 0;

/// A labelled point.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    /// Features, fixed point (1000 = 1.0).
    pub x: [i32; FEATURES],
    /// Class, 0 or 1.
    pub label: u8,
}

/// The submitted model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[borsh(crate = "platform_challenge_sdk::borsh")]
pub struct Model {
    /// One weight per feature.
    pub weights: [i32; FEATURES],
    /// The bias.
    pub bias: i32,
}

impl Model {
    /// The predicted class of `x`.
    pub fn predict(&self, x: &[i32; FEATURES]) -> u8 {
        let z: i64 = self
            .weights
            .iter()
            .zip(x)
            .map(|(&w, &v)| i64::from(w) * i64::from(v))
            .sum::<i64>()
            + i64::from(self.bias);
        u8::from(z > 0)
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The dataset for `seed`.
pub fn dataset(seed: u64) -> Vec<Point> {
    let mut s = seed ^ 0xc1a5_51f1;
    // A seeded direction separates the classes: centres at ±direction.
    let direction: [i32; FEATURES] =
        core::array::from_fn(|_| (splitmix(&mut s) % 2001) as i32 - 1000);
    (0..POINTS)
        .map(|i| {
            let label = (i % 2) as u8;
            let sign = if label == 1 { 1 } else { -1 };
            let x = core::array::from_fn(|f| {
                // Sum of four uniforms in [-750, 750]: roughly Gaussian noise.
                let noise: i32 = (0..4).map(|_| (splitmix(&mut s) % 1501) as i32 - 750).sum();
                sign * direction[f] + noise
            });
            Point { x, label }
        })
        .collect()
}

/// Bytes of one encoded point.
const POINT_BYTES: usize = 4 * FEATURES + 1;

/// The asset's encoding of `points`: per point, its features as little-endian `i32`, then its
/// label.
pub fn encode_dataset(points: &[Point]) -> Vec<u8> {
    let mut out = Vec::with_capacity(points.len() * POINT_BYTES);
    for p in points {
        for v in p.x {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.push(p.label);
    }
    out
}

/// Decodes [`encode_dataset`]'s bytes: exactly [`POINTS`] points with labels 0 or 1.
pub fn decode_dataset(bytes: &[u8]) -> Option<Vec<Point>> {
    if bytes.len() != POINTS * POINT_BYTES {
        return None;
    }
    bytes
        .chunks_exact(POINT_BYTES)
        .map(|c| {
            let x = core::array::from_fn(|f| {
                i32::from_le_bytes([c[4 * f], c[4 * f + 1], c[4 * f + 2], c[4 * f + 3]])
            });
            let label = c[4 * FEATURES];
            (label <= 1).then_some(Point { x, label })
        })
        .collect()
}

/// Held-out accuracy of `model` on the dataset of `seed`, as a fixed-point score.
pub fn accuracy(seed: u64, model: &Model) -> u64 {
    accuracy_on(&dataset(seed), model)
}

/// Held-out accuracy of `model` on `data` (its points after the training split).
pub fn accuracy_on(data: &[Point], model: &Model) -> u64 {
    let held_out = &data[TRAIN..];
    let correct = held_out
        .iter()
        .filter(|p| model.predict(&p.x) == p.label)
        .count() as u64;
    correct * SCORE_ONE / held_out.len() as u64
}

/// Decodes exactly one model.
pub fn decode_model(payload: &[u8]) -> Option<Model> {
    let mut rest = payload;
    let m = Model::deserialize(&mut rest).ok()?;
    rest.is_empty().then_some(m)
}

fn validate(input: &EvalInput) -> bool {
    decode_model(&input.payload).is_some()
}

fn evaluate(input: EvalInput) -> EvalOutput {
    let Some(model) = decode_model(&input.payload) else {
        return EvalOutput {
            score: 0,
            details: Vec::new(),
        };
    };
    let Some(data) = asset(0).and_then(|bytes| decode_dataset(&bytes)) else {
        panic!("asset 0, the data set, is missing or does not decode");
    };
    let score = accuracy_on(&data, &model);
    let evaluations = kv::get_borsh::<u64>(b"evaluations").unwrap_or(0) + 1;
    kv::put_borsh(b"evaluations", &evaluations);
    EvalOutput {
        score,
        details: borsh::to_vec(&evaluations).unwrap_or_default(),
    }
}

/// What `weights` reads: the epoch and every scored miner's best score, by UID.
#[derive(BorshDeserialize)]
#[borsh(crate = "platform_challenge_sdk::borsh")]
struct WeightsInput {
    _epoch: u64,
    scores: Vec<(u16, u64)>,
}

/// Shares per UID: `(score - 0.5)²` in units of 10⁻⁹, for scores above 0.5.
pub fn shares(scores: &[(u16, u64)]) -> Vec<(u16, u64)> {
    let chance = SCORE_ONE / 2;
    scores
        .iter()
        .filter(|(_, s)| *s > chance)
        .map(|&(uid, s)| {
            let margin = u128::from(s - chance);
            (uid, (margin * margin / u128::from(SCORE_ONE)) as u64)
        })
        .collect()
}

fn weights(input: EvalInput) -> EvalOutput {
    let mut rest = input.payload.as_slice();
    let shares = match WeightsInput::deserialize(&mut rest) {
        Ok(w) if rest.is_empty() => shares(&w.scores),
        _ => Vec::new(),
    };
    EvalOutput {
        score: 0,
        details: borsh::to_vec(&shares).unwrap_or_default(),
    }
}

challenge!(evaluate: evaluate, validate: validate, weights: weights);
