//! The data of the replicated log: blocks, transactions and the records the state keeps.
//! Everything here is Borsh with a golden vector in `tests/golden.rs`.

use borsh::{BorshDeserialize, BorshSerialize};
use platform_crypto::vrf::VrfProof;
use platform_crypto::{BlsPublicKey, BlsSignature, Signature, SignerBitmap};
use platform_primitives::{
    ChallengeId, Epoch, Hash, Height, Hotkey, NetUid, Score, Submission, SubmissionId, Uid, View,
    encode,
};
use platform_runtime::OutcomeClass;
use serde::Serialize;

/// Largest encoded transaction accepted by any decoder.
pub const MAX_TX_BYTES: usize = 1 << 20;
/// Largest encoded block accepted by any decoder.
pub const MAX_BLOCK_BYTES: usize = 8 << 20;
/// Most neurons a metagraph may carry (subtensor's largest subnets have 256 or 1024 UIDs).
pub const MAX_NEURONS: usize = 4096;
/// Longest challenge name, asset URL or libp2p peer id accepted.
pub const MAX_NAME_BYTES: usize = 256;
/// Largest asset a challenge may declare (the largest blob peers exchange).
pub const MAX_ASSET_BYTES: u64 = 32 << 20;
/// Most assets a challenge may declare.
pub const MAX_ASSETS: usize = 16;

/// One neuron of the subnet's metagraph, as read from the chain.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize, Serialize)]
pub struct Neuron {
    /// Its slot.
    pub uid: Uid,
    /// Its hotkey.
    pub hotkey: Hotkey,
    /// Its coldkey (the owner of the stake).
    #[serde(with = "hex_bytes")]
    pub coldkey: [u8; 32],
    /// Stake in rao.
    pub stake: u64,
    /// Whether the chain lets it set weights.
    pub validator_permit: bool,
}

/// Network parameters; the subnet owner changes them with [`SudoAction::SetParams`].
#[derive(
    Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize, Serialize, serde::Deserialize,
)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Stake (rao) a permitted neuron needs to be in the validator set.
    pub min_stake: u64,
    /// Committee size for challenges that do not set one (0 = every validator).
    pub committee_size: u16,
    /// No validator's sortition weight may exceed this share of the total (basis points).
    pub max_committee_share_bps: u16,
    /// Epochs a validator stays out of committees after evidence against it.
    pub jail_epochs: u64,
    /// Blocks a committee member has to attest before it is replaced.
    pub attest_timeout_blocks: u64,
    /// Submissions per miner per challenge per epoch.
    pub max_submissions_per_epoch: u32,
    /// The UID that receives unassigned emission.
    pub burn_uid: Uid,
    /// Closed epochs a settled submission's record, an epoch's record and its credits stay in
    /// the state before the close of a later epoch removes them (0 = never). A miner's best
    /// certified submission stays as long as its score does.
    pub retain_epochs: u64,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            min_stake: 1,
            committee_size: 0,
            max_committee_share_bps: 2_000,
            jail_epochs: 2,
            attest_timeout_blocks: 10,
            max_submissions_per_epoch: 8,
            burn_uid: Uid(0),
            retain_epochs: 8,
        }
    }
}

/// How a challenge's scores in an epoch become per-miner shares (DESIGN §9).
#[derive(
    Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize, Serialize, serde::Deserialize,
)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScoringRule {
    /// The best score takes the whole share; ties go to the earlier certification.
    WinnerTakesAll,
    /// The best `k` scores; rank `i` gets `decay_bps/10000` of rank `i-1`'s share.
    TopK {
        /// How many miners are paid.
        k: u16,
        /// Ratio between consecutive ranks, basis points (1..=10000).
        decay_bps: u16,
    },
    /// Shares proportional to `score - baseline` for scores above the baseline.
    Proportional {
        /// Scores at or below this earn nothing.
        baseline: Score,
    },
    /// The module's `weights` export decides (see `docs/challenges.md`).
    Module,
}

/// Resources a challenge's evaluations may use.
#[derive(
    Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize, Serialize, serde::Deserialize,
)]
pub struct Resources {
    /// Fuel per call.
    pub fuel: u64,
    /// Memory pages (64 KiB) the module may grow to.
    pub max_memory_pages: u32,
    /// Output bytes per call.
    pub max_output_bytes: u32,
    /// Log bytes kept per call.
    pub max_log_bytes: u32,
    /// Largest payload a miner may submit.
    pub max_payload_bytes: u64,
}

impl Default for Resources {
    fn default() -> Resources {
        let p = platform_runtime::Policy::default();
        Resources {
            fuel: p.fuel,
            max_memory_pages: p.max_memory_pages,
            max_output_bytes: p.max_output_bytes,
            max_log_bytes: p.max_log_bytes,
            max_payload_bytes: 64 * 1024,
        }
    }
}

impl Resources {
    /// The runtime policy for these resources.
    pub fn policy(&self) -> platform_runtime::Policy {
        platform_runtime::Policy {
            fuel: self.fuel,
            max_memory_pages: self.max_memory_pages,
            max_output_bytes: self.max_output_bytes,
            max_log_bytes: self.max_log_bytes,
            deadline_ms: platform_runtime::policy::deadline_for_fuel(self.fuel),
            ..platform_runtime::Policy::default()
        }
    }
}

/// An external file a challenge reads by index (fetched by the node, never by the module).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize, Serialize)]
pub struct Asset {
    /// Where to fetch it when no peer has it (`http(s)://…`), or empty: from peers only (the
    /// owner uploads it with the `Publish`).
    pub url: String,
    /// blake3 of the content.
    pub blake3: Hash,
    /// Largest size accepted.
    pub max_bytes: u64,
}

/// A challenge's metadata; the owner's signature over a `Sudo` covers all of it, including the
/// module hash and therefore the module bytes.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize, Serialize)]
pub struct ChallengeMeta {
    /// Identifier.
    pub id: ChallengeId,
    /// Human-readable name.
    pub name: String,
    /// Metadata version; an update must increase it.
    pub version: u32,
    /// blake3 of the module bytes.
    pub wasm_hash: Hash,
    /// ABI version of the module.
    pub abi_version: u32,
    /// Resource policy.
    pub resources: Resources,
    /// Committee size; `None` uses the network default.
    pub committee_size: Option<u16>,
    /// Emission share, basis points.
    pub emission_bps: u16,
    /// Scoring rule.
    pub scoring: ScoringRule,
    /// Optional assets.
    pub assets: Vec<Asset>,
}

/// Where a challenge is in its lifecycle (DESIGN §7).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    PartialOrd,
    Ord,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Published, not yet accepting submissions.
    Draft,
    /// Accepting submissions; scored.
    Active,
    /// No new submissions; pending ones are still certified and scored.
    Deprecated,
    /// Gone: no submissions, no emission.
    Retired,
}

impl Lifecycle {
    /// Whether the owner may move a challenge from `self` to `to`.
    pub fn can_become(self, to: Lifecycle) -> bool {
        use Lifecycle::*;
        matches!(
            (self, to),
            (Draft, Active) | (Active, Deprecated) | (Deprecated, Retired) | (Active, Retired)
        )
    }
}

/// An action of the subnet owner.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum SudoAction {
    /// Publishes a new challenge as `Draft`, or updates a non-retired one to a higher version.
    Publish(ChallengeMeta),
    /// Moves a challenge to another lifecycle stage.
    Transition {
        /// The challenge.
        challenge: ChallengeId,
        /// The new stage.
        to: Lifecycle,
    },
    /// Changes a challenge's emission share.
    SetEmission {
        /// The challenge.
        challenge: ChallengeId,
        /// The new share, basis points.
        emission_bps: u16,
    },
    /// Replaces the network parameters.
    SetParams(Params),
}

/// A miner's signed submission.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct SubmitTx {
    /// What is submitted; `submission.miner` signs.
    pub submission: Submission,
    /// sr25519 signature (domain `Submission`) over [`SubmitTx::signing_bytes`].
    pub signature: Option<Signature>,
}

impl SubmitTx {
    /// The bytes the miner signs: `borsh(netuid, network, submission)`, `network` being the
    /// network's identity (`Genesis::network_id`): it keeps a submission to one network from
    /// being replayed on another with the same netuid (testnet and mainnet deployments).
    pub fn signing_bytes(netuid: NetUid, network: &Hash, submission: &Submission) -> Vec<u8> {
        encode(&(netuid, network, submission))
    }
}

/// The owner's signed action.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct SudoTx {
    /// The action.
    pub action: SudoAction,
    /// Strictly greater than the last accepted owner nonce.
    pub nonce: u64,
    /// Who claims to sign (must be the subnet owner).
    pub signer: Hotkey,
    /// sr25519 signature (domain `Sudo`) over [`SudoTx::signing_bytes`].
    pub signature: Option<Signature>,
}

impl SudoTx {
    /// The bytes the owner signs: `borsh(netuid, network, nonce, action)` (the network's
    /// identity as for [`SubmitTx::signing_bytes`]).
    pub fn signing_bytes(
        netuid: NetUid,
        network: &Hash,
        nonce: u64,
        action: &SudoAction,
    ) -> Vec<u8> {
        encode(&(netuid, network, nonce, action))
    }
}

/// A validator binds its BLS key and libp2p identity to its hotkey.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct BindKeysTx {
    /// The validator.
    pub hotkey: Hotkey,
    /// Its BLS public key.
    pub bls_key: BlsPublicKey,
    /// Proof of possession of the BLS secret key.
    pub pop: BlsSignature,
    /// libp2p PeerId bytes.
    pub peer_id: Vec<u8>,
    /// sr25519 signature (domain `BindKeys`) over [`BindKeysTx::signing_bytes`].
    pub signature: Option<Signature>,
}

impl BindKeysTx {
    /// The bytes the hotkey signs: `borsh(netuid, bls_key, pop, peer_id)`.
    pub fn signing_bytes(
        netuid: NetUid,
        bls_key: &BlsPublicKey,
        pop: &BlsSignature,
        peer_id: &[u8],
    ) -> Vec<u8> {
        encode(&(netuid, bls_key, pop, peer_id))
    }
}

/// One committee member's result for a submission.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Attest {
    /// The submission evaluated.
    pub submission: SubmissionId,
    /// The committee member.
    pub evaluator: Hotkey,
    /// Its receipt digest.
    pub digest: Hash,
    /// BLS signature over [`Attest::message`].
    pub signature: BlsSignature,
}

impl Attest {
    /// What evaluators sign, alone or aggregated: `"platform/v1/attest" ‖ borsh(netuid,
    /// submission, digest)`.
    pub fn message(netuid: NetUid, submission: &SubmissionId, digest: &Hash) -> Vec<u8> {
        let mut m = b"platform/v1/attest".to_vec();
        m.extend(encode(&(netuid, submission, digest)));
        m
    }
}

/// A validator's statement that it holds every asset of a challenge's version, each fetched
/// and checked against its blake3. A challenge with assets becomes active only once validators
/// holding more than 2/3 of the epoch's stake have made it, so its committees can evaluate.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct AssetsReady {
    /// The challenge.
    pub challenge: ChallengeId,
    /// Its version (the assets are the metadata's of that version).
    pub version: u32,
    /// The validator.
    pub validator: Hotkey,
    /// BLS signature over [`AssetsReady::message`] with the validator's bound key.
    pub signature: BlsSignature,
}

impl AssetsReady {
    /// What the validator signs: `"platform/v1/assets-ready" ‖ borsh(netuid, challenge,
    /// version)`.
    pub fn message(netuid: NetUid, challenge: &ChallengeId, version: u32) -> Vec<u8> {
        let mut m = b"platform/v1/assets-ready".to_vec();
        m.extend(encode(&(netuid, challenge, version)));
        m
    }
}

/// The full result a certificate finalizes; its receipt digest is recomputed from these fields.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct ResultBody {
    /// How the evaluation ended.
    pub outcome: OutcomeClass,
    /// The module's output (a Borsh `EvalOutput` when `outcome` is ok).
    pub output: Vec<u8>,
    /// KV writes, key order, `None` = delete.
    pub write_set: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// The engine-compatibility hash of the runtime that produced it.
    pub engine_hash: [u8; 32],
}

impl ResultBody {
    /// The receipt digest (the runtime's own function).
    pub fn digest(&self) -> Hash {
        platform_runtime::receipt_digest(
            self.outcome,
            &self.output,
            &self.write_set,
            self.fuel_used,
            self.engine_hash,
        )
    }
}

/// More than 2/3 of a committee agree on a result.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct CertifyTx {
    /// The submission.
    pub submission: SubmissionId,
    /// The agreed result.
    pub result: ResultBody,
    /// Signers, as indexes into the submission's current committee.
    pub signers: SignerBitmap,
    /// Aggregate BLS signature of the signers over the attest message.
    pub signature: BlsSignature,
}

/// Proof that a validator signed something it should not have. Self-authenticating: the
/// signatures inside are the proof, so anyone may submit it.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum Evidence {
    /// Two attestations by one evaluator for one submission with different digests.
    Conflicting {
        /// The first.
        a: Attest,
        /// The second.
        b: Attest,
    },
    /// An attestation whose digest differs from the certified result (evaluation is
    /// deterministic, so the evaluator attested something false).
    WrongResult {
        /// The false attestation.
        attest: Attest,
    },
    /// Two consensus votes of one kind (notarize or finalize) by one validator in one view,
    /// for two different proposals: equivocation, the one fault BFT safety cannot absorb.
    Equivocation {
        /// The first vote.
        first: platform_consensus::Vote<BlsSignature>,
        /// The conflicting vote.
        second: platform_consensus::Vote<BlsSignature>,
    },
}

/// Fixes the next epoch's validator set and miner UIDs from a chain block.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct EpochAnchor {
    /// The epoch being anchored (the current epoch + 1).
    pub epoch: Epoch,
    /// The chain block read.
    pub chain_block: u64,
    /// Its hash.
    pub chain_hash: Hash,
    /// The subnet's metagraph at that block, UIDs ascending.
    pub metagraph: Vec<Neuron>,
}

/// Closes an epoch; its weights are recomputed by every validator, never trusted.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct EpochClose {
    /// The epoch being closed (the current one).
    pub epoch: Epoch,
    /// blake3 of the Borsh weight vector the proposer computed.
    pub weights_digest: Hash,
}

/// A transaction of the replicated log (DESIGN §4).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum Tx {
    /// A miner's submission.
    Submit(SubmitTx),
    /// A committee member's result.
    Attest(Attest),
    /// A certified result.
    Certify(CertifyTx),
    /// An owner action.
    Sudo(SudoTx),
    /// A validator's key binding.
    BindKeys(BindKeysTx),
    /// Proof of misbehaviour.
    Evidence(Evidence),
    /// The next epoch's anchor.
    EpochAnchor(EpochAnchor),
    /// The end of an epoch.
    EpochClose(EpochClose),
    /// A validator holds a challenge's assets.
    AssetsReady(AssetsReady),
}

impl Tx {
    /// blake3 of the encoding.
    pub fn hash(&self) -> Hash {
        Hash::of(&encode(self))
    }

    /// Decodes one transaction from external bytes (size-limited, no trailing bytes).
    pub fn decode(bytes: &[u8]) -> Result<Tx, platform_primitives::CodecError> {
        platform_primitives::decode("transaction", bytes, MAX_TX_BYTES)
    }

    /// Whether this is an epoch transaction (`EpochAnchor`, `EpochClose`): built by a
    /// proposer from its own chain client, never admitted to a mempool, and only ever in a
    /// block with nothing else.
    pub fn is_epoch_transaction(&self) -> bool {
        matches!(self, Tx::EpochAnchor(_) | Tx::EpochClose(_))
    }

    /// A short name of the kind, for receipts and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Tx::Submit(_) => "submit",
            Tx::Attest(_) => "attest",
            Tx::Certify(_) => "certify",
            Tx::Sudo(_) => "sudo",
            Tx::BindKeys(_) => "bind_keys",
            Tx::Evidence(_) => "evidence",
            Tx::EpochAnchor(_) => "epoch_anchor",
            Tx::EpochClose(_) => "epoch_close",
            Tx::AssetsReady(_) => "assets_ready",
        }
    }
}

/// A block header (DESIGN §4).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct BlockHeader {
    /// Height (the first block after genesis is 1).
    pub height: Height,
    /// The consensus view it was proposed in.
    pub view: View,
    /// Hash of the parent header (genesis: the genesis hash).
    pub parent: Hash,
    /// The state root after applying the parent.
    pub state_root: Hash,
    /// Who proposed it.
    pub proposer: Hotkey,
    /// Proposer's clock; never below the parent's.
    pub timestamp_ms: u64,
    /// The proposer's VRF over `(netuid, epoch, height)`.
    pub beacon: VrfProof,
    /// blake3 of the list of transaction hashes.
    pub tx_root: Hash,
}

impl BlockHeader {
    /// blake3 of the encoded header.
    pub fn hash(&self) -> Hash {
        Hash::of(&encode(self))
    }

    /// The VRF input of a beacon: `"platform/v1/beacon" ‖ borsh(netuid, epoch, height)`.
    pub fn beacon_input(netuid: NetUid, epoch: Epoch, height: Height) -> Vec<u8> {
        let mut m = b"platform/v1/beacon".to_vec();
        m.extend(encode(&(netuid, epoch, height)));
        m
    }
}

/// A block: header and ordered transactions.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions, applied in order.
    pub txs: Vec<Tx>,
}

impl Block {
    /// The transaction root of `txs`.
    pub fn tx_root(txs: &[Tx]) -> Hash {
        let hashes: Vec<Hash> = txs.iter().map(Tx::hash).collect();
        Hash::of(&encode(&hashes))
    }

    /// Decodes one block from external bytes (size-limited, no trailing bytes).
    pub fn decode(bytes: &[u8]) -> Result<Block, platform_primitives::CodecError> {
        platform_primitives::decode("block", bytes, MAX_BLOCK_BYTES)
    }
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
}
