//! Why a transaction or block is refused. These are codes with data, never free text, so that
//! receipts are identical on every validator; `Display` renders them for people.

use platform_primitives::{ChallengeId, Epoch, Hash, Height, Hotkey, SubmissionId};
use serde::Serialize;

use crate::types::Lifecycle;

/// Why one transaction was refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reject {
    /// The transaction carries no signature.
    #[error("the transaction is not signed")]
    Unsigned,
    /// The signature does not verify for the claimed signer.
    #[error("the signature does not verify for {signer}")]
    BadSignature {
        /// Who was claimed to sign.
        signer: Hotkey,
    },
    /// The miner is not in this epoch's metagraph.
    #[error("miner {miner} is not registered in the subnet's metagraph for this epoch")]
    UnknownMiner {
        /// The miner.
        miner: Hotkey,
    },
    /// No challenge has this id.
    #[error("no challenge '{challenge}'")]
    UnknownChallenge {
        /// The id.
        challenge: ChallengeId,
    },
    /// The challenge does not accept submissions.
    #[error("challenge '{challenge}' is {status:?}, not active")]
    ChallengeNotActive {
        /// The challenge.
        challenge: ChallengeId,
        /// Its stage.
        status: Lifecycle,
    },
    /// The payload exceeds the challenge's limit.
    #[error("payload is {len} bytes; challenge allows at most {max}")]
    PayloadTooLarge {
        /// Claimed payload length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The same payload was already submitted to this challenge.
    #[error("this payload was already submitted to the challenge as {first}")]
    DuplicatePayload {
        /// The submission that keeps it.
        first: SubmissionId,
    },
    /// The nonce was already used, or is older than the signer's window of recent nonces
    /// (a miner's last 16; an owner's last one).
    #[error("nonce {nonce} was already used or is too old; the highest accepted nonce is {last}")]
    NonceReplayed {
        /// The nonce given.
        nonce: u64,
        /// The highest accepted.
        last: u64,
    },
    /// The miner reached its submissions for this challenge this epoch.
    #[error("miner already made {limit} submissions to this challenge this epoch")]
    RateLimited {
        /// The limit.
        limit: u32,
    },
    /// A `Sudo` not signed by the subnet owner.
    #[error("{signer} is not the subnet owner")]
    NotOwner {
        /// Who signed.
        signer: Hotkey,
    },
    /// A lifecycle transition the rules forbid.
    #[error("challenge '{challenge}' cannot go from {from:?} to {to:?}")]
    IllegalTransition {
        /// The challenge.
        challenge: ChallengeId,
        /// Current stage.
        from: Lifecycle,
        /// Requested stage.
        to: Lifecycle,
    },
    /// Emission shares of live challenges would exceed 10,000 basis points.
    #[error("emission shares would total {total} basis points; at most 10000")]
    EmissionOverflow {
        /// The total that would result.
        total: u32,
    },
    /// Publishing over an existing challenge without raising its version.
    #[error("challenge '{challenge}' is at version {current}; an update must raise it")]
    VersionNotIncreased {
        /// The challenge.
        challenge: ChallengeId,
        /// Its current version.
        current: u32,
    },
    /// Metadata or parameters out of range.
    #[error("invalid {what}")]
    InvalidValue {
        /// Which field.
        what: &'static str,
    },
    /// The signer is not in this epoch's validator set.
    #[error("{hotkey} is not a validator in this epoch")]
    NotValidator {
        /// The hotkey.
        hotkey: Hotkey,
    },
    /// The BLS proof of possession does not verify.
    #[error("the BLS proof of possession does not verify")]
    BadProofOfPossession,
    /// The validator has no bound BLS key.
    #[error("{hotkey} has not bound a BLS key")]
    NotBound {
        /// The validator.
        hotkey: Hotkey,
    },
    /// No such submission, or it is no longer pending.
    #[error("submission {submission} is not awaiting results")]
    NotPending {
        /// The submission.
        submission: SubmissionId,
    },
    /// The evaluator is not on the submission's committee.
    #[error("{evaluator} is not on the committee of {submission}")]
    NotInCommittee {
        /// The submission.
        submission: SubmissionId,
        /// The evaluator.
        evaluator: Hotkey,
    },
    /// This evaluator already attested this submission.
    #[error("{evaluator} already attested {submission}")]
    AlreadyAttested {
        /// The submission.
        submission: SubmissionId,
        /// The evaluator.
        evaluator: Hotkey,
    },
    /// A BLS signature (single or aggregate) does not verify.
    #[error("the BLS signature does not verify")]
    BadBlsSignature,
    /// Too few committee members signed the certificate.
    #[error("{signers} of {committee} committee members signed; more than 2/3 are needed")]
    InsufficientSigners {
        /// Signers.
        signers: u32,
        /// Committee size.
        committee: u32,
    },
    /// The evidence does not show misbehaviour.
    #[error("the evidence does not show conflicting signed results")]
    NotEvidence,
    /// The same misbehaviour was already punished.
    #[error("evidence against {hotkey} for {submission} was already applied")]
    EvidenceKnown {
        /// The validator.
        hotkey: Hotkey,
        /// The submission.
        submission: SubmissionId,
    },
    /// The same equivocation was already punished.
    #[error("equivocation by {hotkey} in epoch {epoch}, view {view} was already applied")]
    EquivocationKnown {
        /// The validator.
        hotkey: Hotkey,
        /// The epoch.
        epoch: Epoch,
        /// The view.
        view: platform_primitives::View,
    },
    /// A transaction for the wrong epoch.
    #[error("expected epoch {expected}, got {got}")]
    WrongEpoch {
        /// The epoch the state expects.
        expected: Epoch,
        /// The epoch given.
        got: Epoch,
    },
    /// The next epoch is already anchored.
    #[error("epoch {epoch} is already anchored")]
    AlreadyAnchored {
        /// The epoch.
        epoch: Epoch,
    },
    /// An epoch cannot close before the next one is anchored.
    #[error("epoch {epoch} is not anchored yet")]
    NotAnchored {
        /// The epoch.
        epoch: Epoch,
    },
    /// The metagraph in an anchor is malformed.
    #[error("the metagraph is invalid: {problem}")]
    BadMetagraph {
        /// What is wrong.
        problem: &'static str,
    },
    /// Chain blocks of anchors must increase.
    #[error("anchor chain block {got} is not after the previous anchor's {previous}")]
    AnchorNotAfter {
        /// Previous anchor's block.
        previous: u64,
        /// This anchor's block.
        got: u64,
    },
    /// The proposer's weights digest is not the one every validator computes.
    #[error("weights digest {got} does not match the computed {expected}")]
    WeightsMismatch {
        /// What this validator computed.
        expected: Hash,
        /// What the proposer claimed.
        got: Hash,
    },
    /// This validator cannot run a module the epoch close needs. Not a verdict on the
    /// transaction: a block holding it becomes [`BlockError::ModuleUnavailable`].
    #[error("module {module} of challenge '{challenge}' is unavailable here")]
    ModuleUnavailable {
        /// The challenge.
        challenge: ChallengeId,
        /// The module hash.
        module: Hash,
    },
    /// Only a challenge's current version with assets, not retired, takes `AssetsReady`.
    #[error("challenge '{challenge}' has no assets at version {version} to confirm")]
    NoAssetsToConfirm {
        /// The challenge.
        challenge: ChallengeId,
        /// The version named.
        version: u32,
    },
    /// The validator already confirmed this version's assets.
    #[error("{validator} already confirmed the assets of '{challenge}'")]
    AssetsAlreadyConfirmed {
        /// The challenge.
        challenge: ChallengeId,
        /// The validator.
        validator: Hotkey,
    },
    /// Activation waits until validators holding more than 2/3 of the stake hold its assets.
    #[error(
        "challenge '{challenge}': validators with {ready_stake} of {total_stake} stake hold its \
         assets; more than 2/3 must before it is activated"
    )]
    AssetsUnavailable {
        /// The challenge.
        challenge: ChallengeId,
        /// Stake of the current validators that confirmed them.
        ready_stake: u64,
        /// The current validators' stake.
        total_stake: u64,
    },
    /// Epoch transactions never enter a mempool: only a proposer's epoch block carries them,
    /// built from its own chain client (a gossiped anchor with any metagraph would otherwise
    /// reach honest leaders' ordinary blocks, which the others refuse).
    #[error("{kind} transactions are never admitted; only the proposer's epoch block carries them")]
    EpochTransactionNotAdmitted {
        /// The transaction kind.
        kind: &'static str,
    },
}

/// Why a whole block is refused. A block with one bad transaction is refused entirely.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum BlockError {
    /// Not the next height (includes applying the same block twice).
    #[error("block height {got} is not the next height {expected}")]
    WrongHeight {
        /// Next height.
        expected: Height,
        /// Given.
        got: Height,
    },
    /// The parent hash is not the last block's.
    #[error("block parent {got} is not the last block {expected}")]
    WrongParent {
        /// Last block hash.
        expected: Hash,
        /// Given.
        got: Hash,
    },
    /// The header's state root differs from the state after the parent.
    #[error("header state root {got} differs from ours {expected}")]
    WrongStateRoot {
        /// Ours.
        expected: Hash,
        /// Given.
        got: Hash,
    },
    /// `tx_root` does not commit to the transactions.
    #[error("tx_root does not match the transactions")]
    WrongTxRoot,
    /// The proposer is not a validator of the epoch.
    #[error("proposer {proposer} is not a validator of this epoch")]
    NotValidator {
        /// The proposer.
        proposer: Hotkey,
    },
    /// The VRF beacon does not verify.
    #[error("the beacon does not verify for the proposer")]
    BadBeacon,
    /// The timestamp goes backwards.
    #[error("timestamp {got} is before the parent's {parent}")]
    TimestampBackwards {
        /// Parent timestamp.
        parent: u64,
        /// Given.
        got: u64,
    },
    /// A transaction is invalid.
    #[error("transaction {index} is invalid: {reject}")]
    Tx {
        /// Index in the block.
        index: usize,
        /// Why.
        reject: Reject,
    },
    /// A block that carries an epoch transaction (`EpochAnchor`, `EpochClose`) carries nothing
    /// else.
    #[error("transaction {index} ({kind}) is in a block with an epoch transaction")]
    MixedEpochBlock {
        /// The index of the first transaction that does not belong.
        index: usize,
        /// Its kind.
        kind: &'static str,
    },
    /// This validator cannot check the block: a module needed at epoch close is missing or
    /// did not run. Not a verdict on the block; the node must fetch the module or abstain.
    #[error("module {module} needed for the weights of challenge '{challenge}' is unavailable")]
    ModuleUnavailable {
        /// The challenge.
        challenge: ChallengeId,
        /// The module hash.
        module: Hash,
    },
}
