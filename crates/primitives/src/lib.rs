//! Platform's protocol primitives: identifiers, hashes, fixed-point scores, exact weight vectors
//! and the rules of the one codec that protocol bytes use (Borsh).
//!
//! This crate performs no I/O. Everything here is deterministic: no floats, no hash-map
//! iteration order, no clocks. Every type that is encoded has a golden vector in
//! `tests/golden.rs`, so a change of format fails a test instead of forking the network.

pub mod codec;
mod hash;
mod ids;
mod score;
pub mod ss58;
mod weights;

pub use codec::{CodecError, decode, encode};
pub use hash::Hash;
pub use ids::{
    ChallengeId, ChallengeIdError, Epoch, Height, Hotkey, NetUid, Submission, SubmissionId, Uid,
    View,
};
pub use score::{Score, ScoreParseError};
pub use weights::{Weights, WeightsError};
