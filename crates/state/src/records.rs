//! What the state stores under its keys (see [`crate::keys`]). All Borsh.

use borsh::{BorshDeserialize, BorshSerialize};
use platform_crypto::{BlsPublicKey, BlsSignature};
use platform_primitives::{
    Epoch, Hash, Height, Hotkey, NetUid, Score, Submission, SubmissionId, Weights,
};
use platform_runtime::OutcomeClass;
use serde::Serialize;

use crate::types::{BindKeysTx, ChallengeMeta, Lifecycle, Neuron, Params};

/// Singleton: where the log is.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Meta {
    /// The subnet.
    pub netuid: NetUid,
    /// The subnet owner (signs `Sudo`).
    pub owner: Hotkey,
    /// Height of the last applied block (0 = genesis).
    pub height: Height,
    /// Its timestamp.
    pub last_timestamp_ms: u64,
    /// The current epoch.
    pub epoch: Epoch,
    /// Last accepted owner nonce.
    pub sudo_nonce: Option<u64>,
    /// Certificates applied so far (orders ties in scoring).
    pub certified: u64,
    /// Records removed by epoch closes so far (see [`crate::Params::retain_epochs`]).
    pub pruned: u64,
    /// The network's identity ([`Genesis::network_id`]): part of what miners and the owner
    /// sign.
    pub network_id: Hash,
}

/// A challenge and where it is in its lifecycle.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize, Serialize)]
pub struct ChallengeRecord {
    /// Metadata as last published.
    pub meta: ChallengeMeta,
    /// Lifecycle stage.
    pub status: Lifecycle,
}

/// The validators that hold every asset of a challenge's version (`Tx::AssetsReady`).
#[derive(Clone, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct AssetsReadyRecord {
    /// The challenge version they confirmed; a new version starts an empty record.
    pub version: u32,
    /// The validators, hotkeys ascending.
    pub validators: Vec<Hotkey>,
}

/// An epoch: its anchor, validator set and, once closed, its weights.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct EpochRecord {
    /// The epoch.
    pub epoch: Epoch,
    /// Anchor chain block number.
    pub chain_block: u64,
    /// Its hash.
    pub chain_hash: Hash,
    /// The metagraph at the anchor.
    pub metagraph: Vec<Neuron>,
    /// Validators (permit and stake ≥ minimum), hotkeys ascending, with stake.
    pub validators: Vec<(Hotkey, u64)>,
    /// The consensus members, in the engine's index order (hotkeys ascending): the validators
    /// that had bound keys when the epoch began (after the genesis bindings, or at the close
    /// of the epoch before), each with the key it signs with. Empty until the epoch begins.
    /// Fixed for the epoch: a node that builds the epoch's engine at any height numbers the
    /// signers alike, and a vote is checked against the key it was signed with.
    pub members: Vec<Member>,
    /// Weights, once the epoch is closed.
    pub weights: Option<Weights>,
}

/// A consensus member of an epoch (see [`EpochRecord::members`]).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Member {
    /// The validator.
    pub hotkey: Hotkey,
    /// Its stake at the epoch's anchor.
    pub stake: u64,
    /// The BLS key it had bound when the epoch began.
    pub bls_key: BlsPublicKey,
    /// That key's proof of possession.
    pub pop: BlsSignature,
}

/// A validator's bound keys.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct BoundKeys {
    /// BLS public key (its proof of possession verified at binding).
    pub bls_key: BlsPublicKey,
    /// The proof, kept so the key can be re-verified after a restart or snapshot import.
    pub pop: BlsSignature,
    /// libp2p PeerId bytes.
    pub peer_id: Vec<u8>,
}

impl From<&BindKeysTx> for BoundKeys {
    fn from(t: &BindKeysTx) -> BoundKeys {
        BoundKeys {
            bls_key: t.bls_key,
            pop: t.pop,
            peer_id: t.peer_id.clone(),
        }
    }
}

/// Where a submission is.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum SubmissionStatus {
    /// Awaiting attestations and a certificate.
    Pending,
    /// Certified.
    Certified {
        /// The agreed receipt digest.
        digest: Hash,
        /// The outcome class.
        outcome: OutcomeClass,
        /// The score, if the outcome was ok.
        score: Option<Score>,
        /// Who signed the certificate (the only ones credited).
        signers: Vec<Hotkey>,
        /// Height of the certifying block.
        height: Height,
    },
    /// No certificate could be formed: every committee member attested without agreement, or
    /// no validator was left to draw.
    Expired {
        /// Height at which it expired.
        height: Height,
    },
}

/// A submission and its evaluation.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct SubmissionRecord {
    /// The submission.
    pub submission: Submission,
    /// Height of the block that ordered it.
    pub height: Height,
    /// Epoch it was ordered in.
    pub epoch: Epoch,
    /// The evaluation seed (from the block beacon and the submission id).
    pub seed: u64,
    /// Seed of the committee draw.
    pub draw_seed: Hash,
    /// The current committee, in draw order.
    pub committee: Vec<Hotkey>,
    /// Members replaced at a deadline (silent, or outside the largest agreeing group).
    pub dropped: Vec<Hotkey>,
    /// Height at which members are replaced if no certificate is possible by then.
    pub deadline: Height,
    /// Attestations recorded so far: `(member, digest)`.
    pub attestations: Vec<(Hotkey, Hash)>,
    /// Status.
    pub status: SubmissionStatus,
}

/// A miner's best certified score for one challenge.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct ScoreEntry {
    /// The score.
    pub score: Score,
    /// Certification order.
    pub seq: u64,
    /// The submission that earned it.
    pub submission: SubmissionId,
}

/// The state at genesis.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Genesis {
    /// The subnet.
    pub netuid: NetUid,
    /// The subnet owner.
    pub owner: Hotkey,
    /// Initial parameters.
    pub params: Params,
    /// Chain block the genesis metagraph was read at.
    pub chain_block: u64,
    /// Its hash.
    pub chain_hash: Hash,
    /// Epoch 0's metagraph.
    pub metagraph: Vec<Neuron>,
    /// Key bindings of the first validators (each verified like a `BindKeys` transaction).
    pub bindings: Vec<BindKeysTx>,
    /// Genesis time.
    pub timestamp_ms: u64,
}

impl Genesis {
    /// The genesis hash: the parent of block 1.
    pub fn hash(&self) -> Hash {
        Hash::of(&platform_primitives::encode(self))
    }

    /// The network's identity, which miners and the owner sign with their transactions so
    /// that none can be replayed on another deployment with the same netuid: the hash of this
    /// genesis with its key bindings' signatures left out. Those are randomized (sr25519), and
    /// the network is already fixed by its chain hash, owner, metagraph, keys and time, so
    /// two runs of one scenario share an identity and a state root.
    pub fn network_id(&self) -> Hash {
        let mut unsigned = self.clone();
        for b in &mut unsigned.bindings {
            b.signature = None;
        }
        Hash::of(&platform_primitives::encode(&(
            "platform network id",
            unsigned,
        )))
    }
}

/// The nonces a miner's submissions have used, for replay protection that tolerates
/// reordering: a miner's submissions travel through different validators' mempools and
/// gossip paths, so a later nonce can be ordered before an earlier one. A nonce is accepted
/// if it is above `floor` and not among `recent`; `recent` holds every used nonce above
/// `floor` (at most [`NonceWindow::SIZE`]), and when it overflows its smallest becomes the
/// floor. A replay is refused either way: a used nonce is in `recent` or at most `floor`.
#[derive(Clone, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct NonceWindow {
    /// Every nonce at or below it is refused (`None`: none yet).
    pub floor: Option<u64>,
    /// The used nonces above `floor`, ascending.
    pub recent: Vec<u64>,
}

impl NonceWindow {
    /// How many used nonces are remembered above the floor: a miner may have this many
    /// submissions in flight and have them ordered in any order.
    pub const SIZE: usize = 16;

    /// Whether `nonce` may be used.
    pub fn accepts(&self, nonce: u64) -> bool {
        self.floor.is_none_or(|f| nonce > f) && self.recent.binary_search(&nonce).is_err()
    }

    /// Records `nonce` as used. The caller checked [`NonceWindow::accepts`].
    pub fn record(&mut self, nonce: u64) {
        if let Err(at) = self.recent.binary_search(&nonce) {
            self.recent.insert(at, nonce);
        }
        if self.recent.len() > Self::SIZE {
            self.floor = Some(self.recent.remove(0));
        }
    }

    /// The highest nonce used (for error messages).
    pub fn last(&self) -> u64 {
        self.recent.last().copied().or(self.floor).unwrap_or(0)
    }
}
