//! What the node shows of its state, as typed values: the REST API (`crate::api`) and JSON-RPC
//! (`crate::rpc`) answer with these, and clients (the CLI, tests) decode the same types.
//!
//! Each reader takes the published state (`Pool::latest`) or the block store and may block on
//! disk: call them from blocking threads.

use platform_primitives::{Epoch, Hash, SubmissionId};
use platform_state::Lifecycle;
use platform_state::records::SubmissionStatus;
use platform_storage::DataDir;
use serde::{Deserialize, Serialize};

use crate::mempool::Pool;

/// A finalized block's header fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    pub height: u64,
    pub hash: String,
    pub parent: String,
    pub view: u64,
    pub proposer: String,
    pub state_root: String,
    pub timestamp_ms: u64,
    /// Transactions in the block.
    pub txs: usize,
}

/// The finalized block at `height` (`None`: not finalized here, or pruned).
pub fn block(dir: &DataDir, height: u64) -> anyhow::Result<Option<BlockInfo>> {
    let found = crate::store::finalized_range(dir.db(), height, height)?;
    Ok(found.into_iter().next().map(|f| {
        let h = &f.block.header;
        BlockInfo {
            height: h.height.0,
            hash: h.hash().to_hex(),
            parent: h.parent.to_hex(),
            view: h.view.0,
            proposer: h.proposer.to_ss58(),
            state_root: h.state_root.to_hex(),
            timestamp_ms: h.timestamp_ms,
            txs: f.block.txs.len(),
        }
    }))
}

/// The finalized block whose header hashes to `hash`.
pub fn block_by_hash(dir: &DataDir, hash: &Hash) -> anyhow::Result<Option<BlockInfo>> {
    match crate::store::finalized_height_of(dir.db(), hash)? {
        Some(height) => block(dir, height),
        None => Ok(None),
    }
}

/// A certified result's receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The agreed receipt digest.
    pub digest: String,
    /// The outcome class (`ok`, `invalid`, `trap`, …).
    pub outcome: platform_runtime::OutcomeClass,
}

/// A member's recorded attestation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationInfo {
    pub member: String,
    pub digest: String,
}

/// A submission: in the mempool (`in_block` false, the rest `None`), or ordered, with its
/// committee and, once settled, its result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmissionView {
    pub submission_id: String,
    /// `pending`, `certified` or `expired`.
    pub status: String,
    /// Whether a finalized block ordered it.
    pub in_block: bool,
    pub challenge: Option<String>,
    pub miner: Option<String>,
    /// The score (decimal, 9 places), when certified with outcome `ok`.
    pub score: Option<String>,
    pub committee: Vec<String>,
    /// Members replaced at a deadline.
    pub dropped: Vec<String>,
    /// Whose signatures are in the certificate.
    pub signers: Option<Vec<String>>,
    pub receipt: Option<Receipt>,
    /// The timeline: ordered at `ordered_height` (in `epoch`), members replaced if nothing is
    /// certified by `deadline`, settled (certified or expired) at `settled_height`.
    pub ordered_height: Option<u64>,
    pub epoch: Option<u64>,
    pub deadline: Option<u64>,
    pub attestations: Vec<AttestationInfo>,
    pub settled_height: Option<u64>,
}

impl SubmissionView {
    /// Whether it is settled: certified or expired.
    pub fn settled(&self) -> bool {
        self.status != "pending"
    }
}

/// Submission `id` as this node knows it (`None`: never seen, or settled long ago and pruned).
pub fn submission(pool: &Pool, id: &SubmissionId) -> Option<SubmissionView> {
    // The mempool first: the driver publishes a block's state before it removes the block's
    // transactions from the mempool, so a submission that has left the mempool is in the
    // published state (or was never ordered).
    let pending = pool.mempool().pending_submission(id);
    let ss58 = |keys: &[platform_primitives::Hotkey]| -> Vec<String> {
        keys.iter().map(|h| h.to_ss58()).collect()
    };
    let Some(record) = pool.latest().submission(id) else {
        return pending.then(|| SubmissionView {
            submission_id: id.0.to_hex(),
            status: "pending".into(),
            in_block: false,
            challenge: None,
            miner: None,
            score: None,
            committee: Vec::new(),
            dropped: Vec::new(),
            signers: None,
            receipt: None,
            ordered_height: None,
            epoch: None,
            deadline: None,
            attestations: Vec::new(),
            settled_height: None,
        });
    };
    let (status, score, signers, settled, receipt) = match &record.status {
        SubmissionStatus::Pending => ("pending", None, None, None, None),
        SubmissionStatus::Certified {
            score,
            signers,
            height,
            digest,
            outcome,
        } => (
            "certified",
            score.map(|s| s.to_string()),
            Some(ss58(signers)),
            Some(height.0),
            Some(Receipt {
                digest: digest.to_hex(),
                outcome: *outcome,
            }),
        ),
        SubmissionStatus::Expired { height } => ("expired", None, None, Some(height.0), None),
    };
    Some(SubmissionView {
        submission_id: id.0.to_hex(),
        status: status.into(),
        in_block: true,
        challenge: Some(record.submission.challenge.as_str().to_string()),
        miner: Some(record.submission.miner.to_ss58()),
        score,
        committee: ss58(&record.committee),
        dropped: ss58(&record.dropped),
        signers,
        receipt,
        ordered_height: Some(record.height.0),
        epoch: Some(record.epoch.0),
        deadline: Some(record.deadline.0),
        attestations: record
            .attestations
            .iter()
            .map(|(m, d)| AttestationInfo {
                member: m.to_ss58(),
                digest: d.to_hex(),
            })
            .collect(),
        settled_height: settled,
    })
}

/// A miner's best score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leader {
    pub miner: String,
    pub score: String,
}

/// A challenge in the canonical state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeView {
    pub id: String,
    pub name: String,
    pub version: u32,
    pub lifecycle: Lifecycle,
    /// Share of the emission, basis points.
    pub emission_bps: u16,
    pub wasm_hash: String,
    /// `None`: the network's default (`params.committee_size`).
    pub committee_size: Option<u16>,
    pub resources: platform_state::Resources,
    /// The best certified score (the earliest certified among equals).
    pub leader: Option<Leader>,
    /// Data sets the module reads (`asset_read`), in index order.
    pub assets: Vec<AssetView>,
    /// Stake of the current validators that confirmed they hold every asset of this version;
    /// a challenge with assets is activated once it is more than 2/3 of `total_stake`.
    pub assets_ready_stake: u64,
    /// The current validators' stake.
    pub total_stake: u64,
}

/// One of a challenge's assets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetView {
    /// Where validators fetch it when no peer has it (empty: from peers only).
    pub url: String,
    /// Its blake3 (hex).
    pub blake3: String,
    pub max_bytes: u64,
}

/// Every challenge in the canonical state.
pub fn challenges(pool: &Pool) -> Vec<ChallengeView> {
    let state = pool.latest();
    let validators = state.current_epoch().validators;
    let total_stake: u64 = validators.iter().map(|(_, s)| *s).sum();
    state
        .challenges()
        .into_iter()
        .map(|c| {
            let ready = state.assets_ready(&c.meta.id);
            let assets_ready_stake = validators
                .iter()
                .filter(|(hk, _)| ready.contains(hk))
                .map(|(_, s)| *s)
                .sum();
            let leader = state
                .scores(&c.meta.id)
                .into_iter()
                .max_by(|a, b| a.1.score.cmp(&b.1.score).then(b.1.seq.cmp(&a.1.seq)))
                .map(|(miner, e)| Leader {
                    miner: miner.to_ss58(),
                    score: e.score.to_string(),
                });
            ChallengeView {
                id: c.meta.id.as_str().to_string(),
                name: c.meta.name.clone(),
                version: c.meta.version,
                lifecycle: c.status,
                emission_bps: c.meta.emission_bps,
                wasm_hash: c.meta.wasm_hash.to_hex(),
                committee_size: c.meta.committee_size,
                resources: c.meta.resources.clone(),
                leader,
                assets: c
                    .meta
                    .assets
                    .iter()
                    .map(|a| AssetView {
                        url: a.url.clone(),
                        blake3: a.blake3.to_hex(),
                        max_bytes: a.max_bytes,
                    })
                    .collect(),
                assets_ready_stake,
                total_stake,
            }
        })
        .collect()
}

/// One of the current epoch's validators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorView {
    pub hotkey: String,
    pub stake: u64,
    /// The epoch until which the validator is kept out of committees (`None`: not jailed).
    pub jailed_until: Option<u64>,
    /// Its bound BLS key (hex; `None`: not bound, so it cannot vote or attest).
    pub bls_key: Option<String>,
    /// Its bound libp2p peer id.
    pub peer_id: Option<String>,
    /// Milliseconds since this node last heard from it (`Status::heard`).
    pub silent_ms: Option<u64>,
}

/// The current epoch's validators, with stake, keys, jail status and when last heard
/// (`heard`: the node's status).
pub fn validators(pool: &Pool, heard: &[crate::driver::HeardView]) -> Vec<ValidatorView> {
    let state = pool.latest();
    let epoch = state.meta().epoch;
    state
        .current_epoch()
        .validators
        .iter()
        .map(|(hotkey, stake)| {
            let ss58 = hotkey.to_ss58();
            let keys = state.bound_keys(hotkey);
            ValidatorView {
                stake: *stake,
                jailed_until: state
                    .jailed_until(hotkey)
                    .filter(|until| *until > epoch)
                    .map(|e| e.0),
                bls_key: keys.as_ref().map(|k| hex::encode(k.bls_key.0)),
                peer_id: keys.as_ref().and_then(|k| {
                    platform_network::libp2p::PeerId::from_bytes(&k.peer_id)
                        .ok()
                        .map(|p| p.to_string())
                }),
                silent_ms: heard.iter().find(|h| h.hotkey == ss58).map(|h| h.silent_ms),
                hotkey: ss58,
            }
        })
        .collect()
}

/// A closed epoch's weights.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochWeightsView {
    pub epoch: u64,
    /// The chain block the epoch was anchored on.
    pub chain_block: u64,
    /// The weights the network finalized when the epoch closed (sum 65535).
    pub uids: Vec<u16>,
    pub weights: Vec<u16>,
    /// What this validator submitted to the chain for the epoch (`None`: not yet, or a newer
    /// epoch's weights were submitted instead).
    pub submitted: Option<crate::weights_submitter::WeightSubmission>,
}

/// Why an epoch's weights are not shown.
#[derive(Debug, thiserror::Error)]
pub enum EpochWeightsError {
    #[error("epoch {0} is unknown")]
    Unknown(u64),
    #[error("epoch {0} is not closed yet")]
    Open(u64),
    #[error("cannot read the submission records: {0}")]
    Store(String),
}

/// Epoch `epoch`'s finalized weights and this validator's submission of them.
pub fn epoch_weights(
    pool: &Pool,
    dir: &DataDir,
    epoch: u64,
) -> Result<EpochWeightsView, EpochWeightsError> {
    let record = pool
        .latest()
        .epoch(Epoch(epoch))
        .ok_or(EpochWeightsError::Unknown(epoch))?;
    let weights = record.weights.ok_or(EpochWeightsError::Open(epoch))?;
    let submitted = crate::weights_submitter::submission(dir, epoch)
        .map_err(|e| EpochWeightsError::Store(e.to_string()))?;
    Ok(EpochWeightsView {
        epoch,
        chain_block: record.chain_block,
        uids: weights.uids().iter().map(|u| u.0).collect(),
        weights: weights.weights().to_vec(),
        submitted,
    })
}
