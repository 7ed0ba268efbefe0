//! Stake-weighted BFT consensus for Platform: a Simplex-style protocol written as a pure state
//! machine, and a deterministic simulator that attacks it.
//!
//! # Protocol
//!
//! Validators of an epoch have stakes taken from the chain. A *quorum* is any set of validators
//! holding **more than two thirds** of the epoch's stake (u128 arithmetic). Time is divided into
//! views; the leader of view `v` is drawn by stake from `blake3(beacon ‖ v)`, where the beacon
//! is fixed when the epoch is anchored, so every node agrees on leaders without communicating.
//!
//! In view `v`:
//! 1. **Propose.** The leader builds a block on the newest notarized block `B` such that every
//!    view between `B`'s and `v` is nullified, and broadcasts its `Notarize` vote for it; that
//!    vote *is* the proposal.
//! 2. **Notarize.** A validator that sees the leader's proposal checks that its parent is
//!    notarized (or is the last finalized block), that every view in between is nullified, and
//!    that the application accepts the block; then it broadcasts `Notarize`.
//! 3. A quorum of `Notarize` votes is a **notarization**. A validator that sees one while still
//!    in view `v`, and has not nullified `v`, broadcasts `Finalize`; everyone moves to `v + 1`.
//! 4. **Nullify.** A validator whose view times out broadcasts `Nullify(v)`. A quorum is a
//!    **nullification**; everyone moves to `v + 1`. Consecutive nullified views double the
//!    timeout (capped), so the protocol survives a slow network.
//! 5. A quorum of `Finalize` votes is a **finalization**: the block and all its ancestors are
//!    final, delivered to the application in height order exactly once.
//!
//! Certificates are a signer bitmap plus one aggregate signature ([`types::Certificate`]).
//! Every validator receives the same votes and forms each certificate itself, so a certificate
//! formed from votes is not broadcast (that would cost another n² messages); on every timeout
//! validators re-broadcast their latest ones, so a node that missed messages catches up. A node missing an ancestor fetches its
//! notarization by digest.
//!
//! # Messages
//!
//! [`types::Message`]: `Vote` (notarize / nullify / finalize), `Certificate`, `Fetch`. Votes
//! sign `platform/<netuid>/<kind>\0 ‖ subject` ([`types::signing_message`]), so a signature
//! never transfers between kinds or subnets; proposals carry their epoch, so votes never replay
//! across epochs.
//!
//! # Safety argument
//!
//! Let Byzantine stake be below one third. Any two quorums intersect in more than a third of the
//! stake, hence in an honest validator. An honest validator (enforced by [`safety`], which
//! persists before any vote leaves):
//! - notarizes at most one proposal per view, so two different blocks are never both notarized
//!   in one view;
//! - never both finalizes and nullifies a view, so a finalized view is never nullified.
//!
//! Suppose `B` is finalized in view `v`. Then `v` has no nullification. Any block proposed in a
//! later view that honest validators notarize extends a notarized block through nullified views
//! only; the only notarized block of view `v` is `B` and `v` cannot be skipped, so every such
//! chain passes through `B`. By induction every later notarized — hence finalized — block
//! extends `B`: no two honest validators finalize different blocks at the same height.
//!
//! # Liveness argument
//!
//! After the network stabilizes (messages between honest validators arrive within the timeout),
//! and with more than two thirds of stake honest: an honest leader's proposal is notarized and
//! finalized within its view. A Byzantine leader costs at most one timed-out view, and timeouts
//! grow until they exceed the network delay. Stake-weighted election picks an honest leader with
//! probability above two thirds in each view.
//!
//! # Departures from the Simplex paper
//!
//! - Votes and quorums are weighted by stake, not counted.
//! - A validator may nullify after notarizing (as in the paper), but never notarizes after
//!   nullifying, which keeps the persisted safety state to one view.
//! - A `Finalize` is sent only while still in the notarized view; a node that moved on through a
//!   nullification does not finalize late. Later finalizations still finalize the block.
//! - Votes are verified lazily, in batches, once a quorum is possible ([`votes`]), whether a
//!   peer's vote or our own makes it possible.
//! - The engine runs for one epoch's validator set; the node starts a new instance at each
//!   epoch boundary, anchored on the last finalized block.
//!
//! # Terminal blocks and seals
//!
//! The application may refuse to build anything after a *terminal* block (an epoch's close:
//! the next block belongs to the next epoch's engine). Without more, such a block could never
//! be finalized once its finalize votes miss a quorum, which the rules above allow: a validator
//! that times out in the block's view before the notarization reaches it nullifies the view
//! and may no longer finalize it, and if enough of them do, the view is neither finalized nor
//! nullified. In the paper a later block finalizes it; after a terminal block there is none.
//!
//! So the application answers a proposal on a terminal parent with a *seal*, a proposal whose
//! payload is [`types::SEAL`] (no contents), and accepts a seal exactly when its parent is
//! terminal or a seal. The engine treats seals as ordinary blocks, so the liveness argument
//! holds unchanged: some seal is eventually finalized, and with it the terminal block. The
//! application applies the terminal block and ignores the seals; the next epoch starts from
//! the terminal block whichever seal finalized it, so every node anchors the same way. Any
//! finalization of the terminal block or of a seal after it proves the terminal block final,
//! given the seals' proposals that link the two. (This is the reconfiguration *suffix* of
//! DiemBFT/Aptos, with the suffix left unexecuted.)
//!
//! # Assumptions
//!
//! Stakes come from the chain's metagraph at the epoch's anchor. BLS keys are bound to hotkeys
//! with proofs of possession before the epoch starts. The driver delivers effects in order and
//! acknowledges [`engine::Effect::Persist`] only when the state is durable.

pub mod engine;
pub mod safety;
pub mod scheme;
pub mod sim;

pub mod types;
pub mod validators;
pub mod votes;

pub use engine::{
    COLLECTORS, COLLECTORS_FROM, Config, Effect, Engine, Input, Offence, default_collectors,
};
pub use safety::{SafetyRules, SafetyState};
pub use scheme::{BlsScheme, Counted, MacScheme, Scheme};
pub use types::{
    Certificate, Message, Proposal, SEAL, Subject, ValidatorIndex, Vote, VoteKind,
    certificate_is_valid, seals_link,
};
pub use validators::Validators;
