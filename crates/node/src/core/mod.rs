//! The node's decisions, apart from its I/O.
//!
//! The driver ([`crate::driver`]) owns the network, the storage and the timers; the parts
//! here own only what the node decides from the events it sees, so that the same code runs
//! in the validator process and in a seeded, deterministic simulation of a whole network of
//! them ([`sim`], `platform sim --node`):
//!
//! - [`finality`]: which finalized block is applied next, when a body must be fetched, and
//!   when the next epoch's engine must start.
//! - [`asking`]: when to ask peers for a missing body or for catch-up.
//! - [`forks`]: the state after each verified block not yet final, the proposals waiting to
//!   be checked, and the seal rule.
//! - [`view_sync`]: which certificates a validator asks its peers for, and what it answers.

pub mod asking;
pub mod finality;
pub mod forks;
pub mod sim;
pub mod view_sync;
