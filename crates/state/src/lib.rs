//! Platform's replicated state machine.
//!
//! Finalized blocks go in; the network's shared state comes out: which challenges exist and in
//! what stage, which submissions were ordered and certified, who sits on which committee, who is
//! jailed, and at each epoch's close the one weight vector every validator submits. It is pure
//! and deterministic: no clock, no I/O, no floats, no hash-map order. The same blocks give the
//! same state root on every machine.
//!
//! - [`types`]: transactions and blocks (Borsh, golden vectors in `tests/golden.rs`);
//! - [`State`]: genesis and the three gates — [`State::admit`] (mempool),
//!   [`State::verify_block`] (proposal) and [`State::apply_block`] — all running one executor;
//! - [`committee`]: capped-stake sortition;
//! - [`weights`]: scoring rules and exact epoch weights;
//! - [`snapshot`]: export and verified import;
//!
//! The state is an ordered key-value map under a sparse Merkle trie ([`smt`]): a block's cost
//! to the root is proportional to the entries it changed.

pub mod committee;
mod exec;
pub mod fixtures;
mod keys;
mod machine;
pub mod records;
pub mod reject;
pub mod smt;
pub mod snapshot;
pub mod store;
pub mod types;
pub mod weights;

pub use machine::{Applied, Event, State, TxOutcome};
pub use records::Genesis;
pub use reject::{BlockError, Reject};
pub use snapshot::{Snapshot, SnapshotError};
pub use types::*;
pub use weights::{
    ModuleShares, NoModules, WeightsHost, WeightsInput, WeightsOutput, weights_digest,
};
