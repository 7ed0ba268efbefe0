//! Platform's view of the chain: the metagraph it reads and the weights it writes.
//!
//! - [`Chain`]: what a validator needs from a chain — head, subnet hyperparameters, the
//!   metagraph at a block, the epoch schedule, `set_weights`, CRv2 commit and reveal,
//!   timelocked commits ([`timelock`]), and the weights as stored.
//! - [`local`]: **LocalChain**, an embedded, persisted *simulation* of the parts of subtensor
//!   Platform uses, served over loopback HTTP so several processes share one chain
//!   (`platform localchain`). It is the devnet's chain. It is not subtensor.
//!
//! - [`subtensor`]: **SubtensorChain**, the client of a real subtensor node (subxt, static
//!   code generated from the checked-in runtime metadata).
//! - [`rules`]: subtensor's weight and epoch rules as pure functions, shared by both and by the
//!   node (the one place they are written).
//! - [`timelock`]: timelocked commits as subtensor opens them (payload, sealing, reveal round).
//! - [`retry`]: bounded retries of transient failures.
//!
//! It supplies calls and rules, never policy: which mode to submit weights in, when to reveal
//! and what to record is the node's weight submitter's job (`platform_node::weights_submitter`).

pub mod any;
pub mod local;
pub mod retry;
pub mod rules;
pub mod scale;
pub mod subtensor;
pub mod timelock;

use std::future::Future;

pub use any::{AnyChain, is_subtensor_url};

use platform_crypto::Keypair;
use platform_primitives::Hotkey;
use serde::{Deserialize, Serialize};

/// A chain block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRef {
    /// Block number.
    pub number: u64,
    /// Block hash, hex.
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
}

/// The subnet hyperparameters Platform reads (subtensor's names).
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    borsh::BorshSerialize,
    borsh::BorshDeserialize,
)]
pub struct Hyperparameters {
    /// Blocks per epoch.
    pub tempo: u16,
    /// `MinAllowedWeights`.
    pub min_allowed_weights: u16,
    /// `MaxWeightsLimit`: the largest normalized weight allowed (u16 scale).
    pub max_weights_limit: u16,
    /// `WeightsVersionKey`: weights must carry at least this version.
    pub weights_version_key: u64,
    /// `WeightsSetRateLimit`: blocks between two weight settings of one validator.
    pub weights_set_rate_limit: u64,
    /// `CommitRevealWeightsEnabled`.
    pub commit_reveal_weights_enabled: bool,
    /// `CommitRevealWeightsVersion` (2 = hash commit and reveal, 4 = timelocked).
    pub commit_reveal_version: u16,
    /// `RevealPeriodEpochs`: a commit is revealed this many epochs later.
    pub reveal_period_epochs: u64,
}

/// Most bytes of one commitment (subtensor's Commitments pallet holds up to three raw fields
/// of 128 bytes).
pub const MAX_COMMITMENT_BYTES: usize = 384;

/// What a hotkey published on a subnet (subtensor: the Commitments pallet's `CommitmentOf`).
/// Platform's validators keep their peer record there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    /// Who published it.
    pub hotkey: Hotkey,
    /// The block it was set in.
    pub block: u64,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// One neuron as the chain reports it.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    borsh::BorshSerialize,
    borsh::BorshDeserialize,
)]
pub struct NeuronInfo {
    /// UID.
    pub uid: u16,
    /// Hotkey.
    pub hotkey: Hotkey,
    /// Coldkey.
    pub coldkey: Hotkey,
    /// Stake, rao.
    pub stake: u64,
    /// Validator permit.
    pub validator_permit: bool,
    /// Active flag.
    pub active: bool,
    /// Block of the last weight setting (or registration).
    pub last_update: u64,
}

/// When epochs happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochSchedule {
    /// Blocks per epoch.
    pub tempo: u16,
    /// The current block.
    pub current_block: u64,
    /// The block at which the next epoch starts.
    pub next_epoch_block: u64,
}

/// One validator's weights as stored on chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorWeights {
    /// The validator's UID.
    pub uid: u16,
    /// Its hotkey.
    pub hotkey: Hotkey,
    /// Target UIDs.
    pub uids: Vec<u16>,
    /// Weights (max-upscaled: the largest is 65535).
    pub weights: Vec<u16>,
}

/// What happened to a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Included {
    /// The block it was included in.
    pub block: u64,
}

/// Why a chain call failed. Each variant names the problem; none is retried forever.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ChainError {
    /// No subnet with this netuid.
    #[error("subnet {netuid} does not exist")]
    UnknownNetuid {
        /// The netuid.
        netuid: u16,
    },
    /// The hotkey is not registered on the subnet.
    #[error("hotkey {hotkey} is not registered on subnet {netuid}")]
    NotRegistered {
        /// The hotkey (SS58).
        hotkey: String,
        /// The subnet.
        netuid: u16,
    },
    /// Already registered.
    #[error("hotkey {hotkey} is already registered on subnet {netuid} as uid {uid}")]
    AlreadyRegistered {
        /// The hotkey.
        hotkey: String,
        /// The subnet.
        netuid: u16,
        /// Its UID.
        uid: u16,
    },
    /// The subnet is full.
    #[error("subnet {netuid} has no free UID (at most {max} neurons)")]
    SubnetFull {
        /// The subnet.
        netuid: u16,
        /// The cap.
        max: u16,
    },
    /// `uids` and `weights` differ in length.
    #[error("{uids} uids but {weights} weights: the lists must have the same length")]
    LengthMismatch {
        /// UIDs given.
        uids: usize,
        /// Weights given.
        weights: usize,
    },
    /// A UID not in the subnet.
    #[error("uid {uid} is not a neuron of subnet {netuid}")]
    UnknownUid {
        /// The UID.
        uid: u16,
        /// The subnet.
        netuid: u16,
    },
    /// A UID listed twice.
    #[error("uid {uid} appears twice")]
    DuplicateUid {
        /// The UID.
        uid: u16,
    },
    /// Too few weights.
    #[error("{given} weights given; the subnet requires at least {min}")]
    TooFewWeights {
        /// Given.
        given: usize,
        /// `MinAllowedWeights`.
        min: u16,
    },
    /// A normalized weight above `MaxWeightsLimit`.
    #[error("a weight exceeds the subnet's MaxWeightsLimit {limit} after normalization")]
    MaxWeightExceeded {
        /// The limit.
        limit: u16,
    },
    /// Version key below the subnet's.
    #[error("weights version key {given} is below the subnet's WeightsVersionKey {required}")]
    VersionKey {
        /// Given.
        given: u64,
        /// Required.
        required: u64,
    },
    /// No validator permit.
    #[error("hotkey {hotkey} has no validator permit on subnet {netuid}")]
    NoValidatorPermit {
        /// The hotkey.
        hotkey: String,
        /// The subnet.
        netuid: u16,
    },
    /// `WeightsSetRateLimit` hit.
    #[error(
        "weights were set at block {last}; the subnet allows one setting per {limit} blocks \
         (next at block {next})"
    )]
    RateLimited {
        /// Last setting.
        last: u64,
        /// The limit.
        limit: u64,
        /// First block allowed.
        next: u64,
    },
    /// `set_weights` on a subnet that requires commit-reveal.
    #[error("subnet {netuid} has commit-reveal enabled: commit the weights, then reveal them")]
    CommitRevealRequired {
        /// The subnet.
        netuid: u16,
    },
    /// Commit-reveal is disabled.
    #[error("subnet {netuid} does not use commit-reveal: set the weights directly")]
    CommitRevealDisabled {
        /// The subnet.
        netuid: u16,
    },
    /// A version-2 hash commit or reveal on a chain that takes only timelocked commits.
    #[error(
        "subnet {netuid} uses commit-reveal version {version}: weights go in as timelocked \
         commits (commit_timelocked_weights, revealed by the chain), not version-2 hash \
         commits and reveals"
    )]
    TimelockedOnly {
        /// The subnet.
        netuid: u16,
        /// Its version.
        version: u16,
    },
    /// No commit matches the reveal.
    #[error("no pending commit of {hotkey} matches this reveal (hash {hash})")]
    NoMatchingCommit {
        /// The hotkey.
        hotkey: String,
        /// The hash of the revealed data.
        hash: String,
    },
    /// A reveal outside its window.
    #[error("this commit can be revealed from block {from} to block {to}; the chain is at {now}")]
    RevealWindow {
        /// First block.
        from: u64,
        /// Last block.
        to: u64,
        /// Now.
        now: u64,
    },
    /// Too many pending commits.
    #[error("{hotkey} already has {max} pending commits")]
    TooManyCommits {
        /// The hotkey.
        hotkey: String,
        /// The cap.
        max: usize,
    },
    /// A bad signature or nonce on a request to the chain.
    #[error("the request is not validly signed: {reason}")]
    BadSignature {
        /// Why.
        reason: String,
    },
    /// The request itself is malformed.
    #[error("malformed request: {reason}")]
    Malformed {
        /// Why.
        reason: String,
    },
    /// The endpoint cannot be reached or answered nonsense.
    #[error("chain endpoint {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// An operation this chain does not offer.
    #[error("{0}")]
    Unsupported(String),
    /// The chain's own storage failed.
    #[error("chain storage: {0}")]
    Storage(String),
    /// The live runtime changed the shape of calls, storage items or runtime APIs Platform uses
    /// (a runtime upgrade that kept them works; see [`subtensor::Shape`]).
    #[error(
        "the chain's runtime ({runtime}) changed the shape of {items}, which Platform uses; \
         Platform was built with the metadata of finney spec 393 (crates/chain/metadata): \
         refresh it from the live chain and rebuild"
    )]
    RuntimeMismatch {
        /// The runtime, e.g. `spec 395`.
        runtime: String,
        /// The calls, storage items or runtime APIs that changed, by name.
        items: String,
    },
    /// The chain refused a transaction for a reason Platform does not check itself.
    #[error("{reason}")]
    Rejected {
        /// The chain's reason.
        reason: String,
    },
    /// A block the chain has not produced.
    #[error("block {number} does not exist yet (the chain is at block {head})")]
    UnknownBlock {
        /// The block asked for.
        number: u64,
        /// The chain's head.
        head: u64,
    },
}

impl ChainError {
    /// Whether a transaction that failed with this error may still be on chain: the endpoint
    /// went away, or did not report finality in time, after the transaction may have left.
    /// Every other error is the chain's (or our) definite refusal.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, ChainError::Unreachable { .. })
    }
}

/// What a validator needs from a chain. Implemented by [`local::LocalChainClient`] (over HTTP)
/// and by [`local::LocalChain`] itself (in process).
pub trait Chain: Send + Sync {
    /// The latest block.
    fn head(&self) -> impl Future<Output = Result<BlockRef, ChainError>> + Send;
    /// Block `number` of the canonical chain.
    fn block(&self, number: u64) -> impl Future<Output = Result<BlockRef, ChainError>> + Send;
    /// A subnet's hyperparameters.
    fn hyperparameters(
        &self,
        netuid: u16,
    ) -> impl Future<Output = Result<Hyperparameters, ChainError>> + Send;
    /// The metagraph at `block` (latest when `None`).
    fn metagraph(
        &self,
        netuid: u16,
        block: Option<u64>,
    ) -> impl Future<Output = Result<Vec<NeuronInfo>, ChainError>> + Send;
    /// Tempo and the next epoch start.
    fn epoch_schedule(
        &self,
        netuid: u16,
    ) -> impl Future<Output = Result<EpochSchedule, ChainError>> + Send;
    /// Sets weights directly (subnets without commit-reveal).
    fn set_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        uids: &[u16],
        weights: &[u16],
        version_key: u64,
    ) -> impl Future<Output = Result<Included, ChainError>> + Send;
    /// Commits a CRv2 hash (see [`scale::commit_hash`]).
    fn commit_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        hash: [u8; 32],
    ) -> impl Future<Output = Result<Included, ChainError>> + Send;
    /// Reveals committed weights.
    fn reveal_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        reveal: &Reveal,
    ) -> impl Future<Output = Result<Included, ChainError>> + Send;
    /// Weights as stored, per validator.
    fn weights(
        &self,
        netuid: u16,
    ) -> impl Future<Output = Result<Vec<ValidatorWeights>, ChainError>> + Send;
    /// The drand beacon the chain opens timelocked commits with, and the chain's clocks.
    fn beacon(&self) -> impl Future<Output = Result<timelock::Beacon, ChainError>> + Send;
    /// The subnet's stateful epoch schedule when the runtime has one (`SubnetEpochIndex` and
    /// friends, newer than spec 393); `None` on runtimes with modulo epochs.
    fn epoch_state(
        &self,
        netuid: u16,
    ) -> impl Future<Output = Result<Option<timelock::EpochState>, ChainError>> + Send;
    /// Sends a timelocked weight commit (`commit_timelocked_weights`, commit-reveal v3/v4);
    /// the chain reveals it itself once the beacon signs its round.
    fn commit_timelocked_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        commit: &timelock::TimelockedCommit,
        version: u16,
    ) -> impl Future<Output = Result<Included, ChainError>> + Send;
}

/// The data revealed for a CRv2 commit.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    borsh::BorshSerialize,
    borsh::BorshDeserialize,
)]
pub struct Reveal {
    /// UIDs.
    pub uids: Vec<u16>,
    /// Weights.
    pub values: Vec<u16>,
    /// Salt.
    pub salt: Vec<u16>,
    /// Version key.
    pub version_key: u64,
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(&s).map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("expected 32 bytes"))
    }
}
