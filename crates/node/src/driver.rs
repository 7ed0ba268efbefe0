//! The consensus driver: feeds the engine what the network delivers and timers fire, and
//! performs the effects it returns — persist before voting, broadcast, build and check blocks
//! against the replicated state, apply finalized blocks.
//!
//! Blocks travel as blobs: the leader stores its block, announces `(header hash, blob hash)` on
//! the `announce` topic, and the consensus proposal carries the header hash. A validator asked
//! to verify a proposal whose block has not arrived yet waits for it.
//!
//! It owns the engine, the canonical state and the forks being voted on, and is the only task
//! that changes them. It never votes before the WAL has acknowledged the engine's safety state,
//! never lets bad input from a peer end it (`crate::error`), and never answers "cannot tell
//! yet" (a missing block, module or chain read) with a "no".
//!
//! Leaders may build on a block that is notarized but not yet final, so every verified block's
//! resulting state is kept as a fork (`State::fork`) until finalization makes one canonical.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use platform_consensus::{
    BlsScheme, Certificate, Config as EngineConfig, Counted, Effect, Engine, Input, Message,
    Offence, Proposal, SEAL, SafetyState, Subject, ValidatorIndex, Validators, VoteKind,
    certificate_is_valid, seals_link,
};
use platform_crypto::{BlsSignature, Keypair};
use platform_network::{Event as NetEvent, Membership, Network, PayloadCheck, Topic};
use platform_primitives::{
    Epoch, Hash, Height, Hotkey, NetUid, SubmissionId, View, decode, encode,
};
use platform_runtime::ModuleLoader;
use platform_state::{
    Block, BlockError, BlockHeader, ChallengeMeta, EpochAnchor, EpochClose, Evidence, Genesis,
    Lifecycle, ScoringRule, State, Tx, records::EpochRecord, weights_digest,
};
use platform_storage::DataDir;
use tokio::sync::mpsc;

use crate::chain_watch::ChainWatch;
use crate::config::Fault;
use crate::error::NodeError;
use crate::evaluator::Evaluator;
use crate::liveness::{Heard, partitioned};
use crate::mempool::{Mempool, Pool};
use crate::snapshots::{self, SnapshotProof, Verdict};
use crate::store::{self, FinalizedBlock};
use crate::wal::WalWriter;
use crate::weights_host::{RuntimeWeights, weights_host};
use crate::weights_submitter::WeightSubmitter;

/// What the node reports through the API.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// The validator's hotkey.
    pub hotkey: String,
    /// Whether it votes (holds a validator index in the current set).
    pub validator: bool,
    /// The last finalized height.
    pub height: u64,
    /// The last finalized block's header hash.
    pub block_hash: String,
    /// The state root after the last finalized block.
    pub state_root: String,
    /// The current epoch.
    pub epoch: u64,
    /// The current consensus view.
    pub view: u64,
    /// The hotkey of the view's leader.
    pub leader: String,
    /// Connected peers.
    pub peers: usize,
    /// Whether the partition alarm is raised: the validators heard from in the last 10 s
    /// (this one included) hold less than two thirds of the epoch's stake.
    pub partitioned: bool,
    /// The share of the epoch's stake heard from in the last 10 s, in basis points.
    pub heard_stake_bps: u64,
    /// Each validator of the epoch: how long since a message of theirs passed this node's
    /// checks (their votes, proposals, attestations), in milliseconds; 0 for this node.
    pub heard: Vec<HeardView>,
    /// Views this validator nullified at once because their leader had been silent for two
    /// view timeouts.
    pub leader_views_skipped: u64,
    /// The subnet.
    pub netuid: u16,
    /// The network's identity (hex, `Genesis::network_id`): miners and the owner sign it with
    /// their transactions.
    #[serde(default)]
    pub network_id: String,
    /// Transactions waiting in the mempool.
    pub pending_transactions: usize,
    /// Blocks finalized since this process started.
    pub finalized_since_start: u64,
    /// Signature checks (single votes, batches of votes, certificates) the consensus engine
    /// made since this process started, as of the last finalized block. Lazy batching keeps
    /// this near three per finalized block when nobody forges.
    pub consensus_signature_checks: u64,
    /// Evaluations this validator ran as a committee member since this process started, and
    /// the milliseconds they took (module loading included).
    pub evaluations: u64,
    pub evaluation_ms: u64,
    /// Median time from a block's proposal (its header timestamp, the leader's clock) to its
    /// finalization here, over the last 1000 blocks, in milliseconds.
    pub finalization_ms_p50: u64,
    /// 99th percentile of the same.
    pub finalization_ms_p99: u64,
    /// The chain block the current epoch is anchored on.
    pub epoch_chain_block: u64,
    /// The chain as last read (`None` without a chain).
    pub chain: Option<crate::chain_watch::ChainStatus>,
    /// The newest epoch whose weights this validator submitted to the chain.
    pub weights_submitted_epoch: Option<u64>,
    /// The height of this node's newest snapshot.
    pub snapshot_height: Option<u64>,
    /// Blobs deleted by garbage collection since this process started (`crate::collect`).
    pub blobs_collected: u64,
    /// Entries in the replicated state after the last finalized block (bounded by the
    /// genesis parameter `retain_epochs`).
    pub state_entries: u64,
    /// State records removed by epoch closes since genesis (the same on every validator).
    pub state_pruned: u64,
    /// Finalized blocks deleted behind the oldest kept snapshot since this process started
    /// (`[retention] snapshots`, `archive`).
    pub blocks_pruned: u64,
}

/// One validator as this node hears it (see [`Status::heard`]).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct HeardView {
    /// Its hotkey.
    pub hotkey: String,
    /// Its stake in the epoch's validator set.
    pub stake: u64,
    /// Milliseconds since it was last heard from (since this node started, if never).
    pub silent_ms: u64,
}

/// Shared, briefly locked status (never held across an `.await`).
pub type SharedStatus = Arc<Mutex<Status>>;

/// Work that comes back to the driver's loop. Engine inputs carry the generation of the engine
/// that asked (one per epoch), so an answer never reaches the next epoch's engine.
enum Internal {
    Timeout(u64, View),
    Build {
        generation: u64,
        view: View,
        parent: Hash,
        height: Height,
    },
    Block(Box<Block>),
    /// Something a waiting proposal or finalized block needed has arrived (a chain anchor, a
    /// compiled module).
    Retry,
    /// Finalized blocks from a peer, for catch-up (checked before use).
    Synced(Vec<FinalizedBlock>),
    /// A peer's snapshot (its bytes, blob hash and the peer), for catch-up across epochs
    /// (checked before use).
    Snapshot(Vec<u8>, Hash, platform_network::libp2p::PeerId),
}

/// Most consensus messages of the next epoch held until this node enters it.
const MAX_EARLY_MESSAGES: usize = 4096;

/// The largest module read from the blob store for epoch weights.
pub(crate) const MAX_MODULE_BYTES: u64 = 64 << 20;

/// An epoch's leader-election seed: fixed by its anchor, known to every validator.
pub fn epoch_beacon(netuid: NetUid, record: &EpochRecord) -> [u8; 32] {
    let mut m = b"platform/v1/epoch-beacon\0".to_vec();
    m.extend(encode(&(netuid, record.epoch, record.chain_hash)));
    Hash::of(&m).0
}

/// One epoch's consensus: the engine and the validator set it runs with.
struct EpochEngine {
    engine: Engine<Counted<BlsScheme>>,
    validators: Vec<Hotkey>,
    /// Checks certificates of this epoch outside the engine (blocks fetched to catch up).
    verifier: BlsScheme,
    me: Option<ValidatorIndex>,
}

/// The consensus members of `state`'s current epoch, in the engine's index order: the epoch's
/// validators (hotkeys ascending) that have bound a BLS key, with stake and verified key. A
/// validator that gained a permit on chain but has not bound its keys yet (it sends
/// `BindKeys` when it starts) cannot sign, so it joins consensus at the first epoch after its
/// binding.
pub fn consensus_members(
    state: &State,
) -> Result<Vec<(Hotkey, u64, platform_crypto::VerifiedBlsKey)>, String> {
    let mut out = Vec::new();
    for (h, stake) in state.current_epoch().validators {
        let Some(keys) = state.bound_keys(&h) else {
            continue;
        };
        let key = keys
            .bls_key
            .verify_possession(&keys.pop)
            .map_err(|e| format!("validator {h}'s BLS key: {e}"))?;
        out.push((h, stake, key));
    }
    if out.is_empty() {
        return Err("no validator of the epoch has bound a BLS key".into());
    }
    Ok(out)
}

/// Builds the engine of `state`'s current epoch, anchored on the last finalized block; its
/// signature checks are counted into `checks`.
fn epoch_engine(
    key: &Keypair,
    state: &State,
    (anchor, anchor_height, anchor_view): (Hash, Height, View),
    view_timeout: Duration,
    checks: Arc<AtomicU64>,
) -> Result<EpochEngine> {
    let epoch = state.current_epoch();
    let netuid = state.meta().netuid;
    let members = consensus_members(state).map_err(|e| anyhow!(e))?;
    let validators: Vec<Hotkey> = members.iter().map(|(h, _, _)| *h).collect();
    let stakes: Vec<u64> = members.iter().map(|(_, s, _)| *s).collect();
    let committee: Vec<_> = members.into_iter().map(|(_, _, k)| k).collect();
    let me = validators
        .iter()
        .position(|h| *h == key.hotkey())
        .map(|i| i as ValidatorIndex);
    let secret = match me {
        Some(_) => Some(
            key.derive_bls_key()
                .context("the hotkey has no seed to derive its BLS key from")?,
        ),
        None => None,
    };
    let engine = Engine::new(
        EngineConfig {
            netuid,
            epoch: epoch.epoch,
            validators: Validators::new(stakes),
            beacon: epoch_beacon(netuid, &epoch),
            anchor,
            anchor_height,
            anchor_view,
            me,
            timeout_ms: view_timeout.as_millis() as u64,
            max_backoff_exp: 4,
            future_views: 64,
        },
        Counted::with_counter(BlsScheme::new(secret, committee.clone()), checks),
    );
    Ok(EpochEngine {
        engine,
        validators,
        verifier: BlsScheme::new(None, committee),
        me,
    })
}

/// How far ahead of this validator's clock a proposal's timestamp may be. The state machine
/// only checks that timestamps never go backwards (it has no clock); without this bound a
/// Byzantine leader could push every later block's timestamp into the future.
pub const MAX_CLOCK_DRIFT_MS: u64 = 10_000;

/// Whether a proposal stamped `timestamp_ms` is acceptable at local time `now_ms`.
pub fn timestamp_acceptable(timestamp_ms: u64, now_ms: u64) -> bool {
    timestamp_ms <= now_ms.saturating_add(MAX_CLOCK_DRIFT_MS)
}

/// The most transactions a block carries.
const MAX_BLOCK_TXS: usize = 512;

/// A leader's announcement of its block for a view: peers fetch the block blob from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct Announcement {
    /// The epoch of the view.
    pub epoch: Epoch,
    /// The view the block is proposed in: only its leader's announcement is fetched.
    pub view: View,
    /// The block header's hash (the proposal's payload).
    pub header: Hash,
    /// The blob holding the encoded block.
    pub blob: Hash,
}

/// Largest announcement accepted: [`Announcement`].
const ANNOUNCE_BYTES: usize = 8 + 8 + 32 + 32;

/// Views around this node's current view whose announcements it follows: a block for a view
/// further ahead or behind comes by sync instead, and an author cannot make it fetch blobs for
/// views it will never reach.
const ANNOUNCE_WINDOW: u64 = 64;

/// Payload checks the network runs before a message is accepted (strict decoding of each kind).
pub fn payload_checks() -> Vec<(Topic, PayloadCheck)> {
    vec![
        (
            Topic::Consensus,
            Arc::new(|e: &platform_network::Envelope| {
                decode::<Message<BlsSignature>>(
                    "consensus message",
                    &e.payload,
                    platform_consensus::types::MAX_MESSAGE_BYTES,
                )
                .map(|_| ())
                .map_err(|_| "bad_consensus_message")
            }),
        ),
        (
            Topic::Submissions,
            Arc::new(|e: &platform_network::Envelope| {
                match Tx::decode(&e.payload) {
                    Err(_) => Err("bad_transaction"),
                    // Only a proposer's epoch block carries these; no honest validator
                    // gossips one.
                    Ok(tx) if tx.is_epoch_transaction() => Err("epoch_transaction"),
                    Ok(_) => Ok(()),
                }
            }),
        ),
        (
            Topic::Announce,
            Arc::new(|e: &platform_network::Envelope| {
                decode::<Announcement>("block announcement", &e.payload, ANNOUNCE_BYTES)
                    .map(|_| ())
                    .map_err(|_| "bad_announcement")
            }),
        ),
    ]
}

/// The chain side of a node: the watcher and the weight submitter (absent on a network without
/// a chain, which then stays in its genesis epoch).
pub struct ChainLink {
    /// The watcher.
    pub watch: Arc<ChainWatch>,
    /// The submitter.
    pub submitter: WeightSubmitter,
}

/// One validator's consensus over the network.
pub struct Driver {
    key: Arc<Keypair>,
    netuid: NetUid,
    consensus: EpochEngine,
    /// Signature checks made by every epoch's engine since this process started.
    vote_checks: Arc<AtomicU64>,
    /// Bumped with every new engine; answers to an older engine are dropped.
    generation: u64,
    /// The state after the last finalized block, and the mempool.
    pool: Arc<Pool>,
    evaluator: Arc<Evaluator>,
    /// Runs challenges' `weights` exports at epoch close, modules read from the blob store.
    host: Arc<RuntimeWeights>,
    chain: Option<ChainLink>,
    /// Proposal digest of the last finalized block (or the genesis hash).
    finalized_digest: Hash,
    finalized_height: u64,
    finalized_view: View,
    /// Evaluation inputs recorded while replaying finalized blocks at start, until `run`
    /// hands them to the evaluator.
    replayed_inputs: Option<crate::evaluator::Inputs>,
    /// States after verified, not yet final blocks, by proposal digest.
    /// Each with its height and the submissions that block added this validator to as a
    /// replacement member (evaluated once the block is final).
    forks: HashMap<Hash, (u64, State, Vec<SubmissionId>)>,
    /// Blocks by header hash.
    blocks: HashMap<Hash, Block>,
    /// Proposals waiting for their block, their parent's state, a chain anchor or a module.
    waiting: Vec<Proposal>,
    /// This leader's build waiting for its parent's state (the parent's notarization arrived
    /// before its block was verified here): `(generation, view, parent, height)`, retried
    /// whenever a proposal is verified or a block arrives.
    pending_build: Option<(u64, View, Hash, Height)>,
    /// Finalized proposals waiting for their block, with their certificate and, for an epoch's
    /// close finalized through seals, those seals ([`FinalizedBlock::seals`]).
    to_apply: VecDeque<(Proposal, Certificate<BlsSignature>, Vec<Proposal>)>,
    /// When we last asked peers for the block at the front of `to_apply`.
    sync_asked: Option<(u64, Instant)>,
    /// When we last asked peers for finalized blocks because the network is in a later epoch.
    catch_up_asked: Option<Instant>,
    /// Peers' snapshots (by blob hash) this node refused; catch-up falls back to blocks.
    refused_snapshots: HashSet<Hash>,
    /// Whether catch-up across epochs may start from a peer's snapshot.
    snapshot_catch_up: bool,
    /// How long collected blobs are kept ([`crate::collect`]).
    retention: crate::collect::Retention,
    /// Whether a collection is running (one at a time).
    collecting: Arc<std::sync::atomic::AtomicBool>,
    /// The deliberate fault [`Fault::NullifyCloses`] (tests only), and the WAL write of a
    /// notarize vote for a close after which this validator times out (its token and view).
    nullify_closes: bool,
    close_timeout: Option<(u64, View)>,
    /// The deliberate fault [`Fault::PoisonAnchors`] (tests only).
    poison_anchors: bool,
    /// The deliberate fault [`Fault::FloodAnnounces`] (tests only).
    flood_announces: bool,
    /// The deliberate fault [`Fault::GarbageGossip`] (tests only).
    garbage_gossip: bool,
    /// The block header announced for each recent view (one per view is followed).
    announced: HashMap<(Epoch, View), Hash>,
    /// When this validator last sent its `BindKeys` (resent every 5 s until bound).
    bind_sent: Option<Instant>,
    /// Consensus messages of the next epoch, held until this node enters it.
    early: VecDeque<(Hotkey, Message<BlsSignature>)>,
    /// Modules being fetched or compiled for an epoch close.
    preparing: Arc<Mutex<HashSet<Hash>>>,
    /// The snapshot of the current epoch's first state, waiting for a certified block after it.
    pending_snapshot: Option<snapshots::Pending>,
    last_finalized_at: Instant,
    /// Who was heard from when: unreachable leaders are skipped, the partition alarm is raised.
    heard: Heard,
    /// Proposal-to-finalization times of recent blocks, in milliseconds.
    latencies: VecDeque<u64>,
    block_interval: Duration,
    view_timeout: Duration,
    net: Network,
    dir: Arc<DataDir>,
    /// The consensus WAL's one writer: writes in order, acknowledges in order.
    wal: WalWriter,
    internal_tx: mpsc::Sender<Internal>,
    internal_rx: mpsc::Receiver<Internal>,
    status: SharedStatus,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The module-scored challenges whose `weights` export runs when `state`'s epoch closes.
fn module_challenges(state: &State) -> Vec<ChallengeMeta> {
    state
        .challenges()
        .into_iter()
        .filter(|c| matches!(c.status, Lifecycle::Active | Lifecycle::Deprecated))
        .filter(|c| matches!(c.meta.scoring, ScoringRule::Module))
        .map(|c| c.meta)
        .collect()
}

fn epoch_change(block: &Block) -> (Option<&EpochAnchor>, bool) {
    let anchor = block.txs.iter().find_map(|t| match t {
        Tx::EpochAnchor(a) => Some(a),
        _ => None,
    });
    let closes = block.txs.iter().any(|t| matches!(t, Tx::EpochClose(_)));
    (anchor, closes)
}

impl Driver {
    /// Rebuilds the state from genesis and the finalized blocks on disk, and prepares the
    /// engine for the current epoch.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: Keypair,
        genesis: &Genesis,
        dir: Arc<DataDir>,
        net: Network,
        (block_interval, view_timeout): (Duration, Duration),
        status: SharedStatus,
        mempool: Mempool,
        chain: Option<ChainLink>,
        fault: Option<Fault>,
        (loader, threads): (ModuleLoader, crate::eval_threads::EvalThreads),
    ) -> Result<Driver> {
        let mut host = weights_host(dir.clone(), loader.clone());
        if fault == Some(Fault::StallWeights) {
            host = host.with_stalls(crate::config::STALLED_WEIGHT_RUNS);
        }
        let host = Arc::new(host);
        let mut canonical =
            State::genesis(genesis).map_err(|e| anyhow!("the genesis is invalid: {e}"))?;
        let mut finalized_digest = genesis.hash();
        let mut finalized_height = 0;
        let mut finalized_view = View(0);
        // Start from our newest snapshot, if any, then replay the finalized blocks after it.
        let mut snapshot_height = None;
        if let Some((state, proof)) = snapshots::load_latest(&dir)? {
            if state.meta().netuid != genesis.netuid {
                return Err(anyhow!(
                    "the data directory's snapshot is of subnet {}, the genesis of {}",
                    state.meta().netuid.0,
                    genesis.netuid.0
                ));
            }
            tracing::info!(
                height = proof.anchor.height.0,
                "starting from this node's snapshot"
            );
            canonical = state;
            snapshot_height = Some(proof.anchor.height.0);
            finalized_digest = proof.anchor.digest();
            finalized_height = proof.anchor.height.0;
            finalized_view = proof.anchor.view;
        }
        // Replay finalized blocks, in batches, recording the evaluation inputs they order.
        // A block whose epoch close needs a module this data directory does not hold ends the
        // replay there: the driver catches up on the rest from peers, fetching the module.
        let mut replayed_inputs = crate::evaluator::Inputs::new();
        'replay: loop {
            let batch =
                store::finalized_range(dir.db(), finalized_height + 1, finalized_height + 256)?;
            if batch.is_empty() {
                break;
            }
            for f in batch {
                match canonical.apply_block(&f.block, &*host) {
                    Ok(_) => {}
                    Err(BlockError::ModuleUnavailable { challenge, module }) => {
                        tracing::warn!(
                            height = f.proposal.height.0,
                            %challenge,
                            %module,
                            "replay stops before this epoch close: its module is not here; \
                             catching up on the rest from peers"
                        );
                        crate::metrics::events().module_wait("replay");
                        break 'replay;
                    }
                    Err(e) => {
                        return Err(anyhow!(
                            "replaying finalized block {}: {e:?}",
                            f.proposal.height.0
                        ));
                    }
                }
                crate::evaluator::record_inputs(&mut replayed_inputs, &canonical, &f.block);
                finalized_digest = f.proposal.digest();
                finalized_height = f.proposal.height.0;
                finalized_view = f.proposal.view;
            }
        }
        let vote_checks = Arc::new(AtomicU64::new(0));
        let consensus = epoch_engine(
            &key,
            &canonical,
            (finalized_digest, Height(finalized_height), finalized_view),
            view_timeout,
            vote_checks.clone(),
        )?;
        let netuid = genesis.netuid;
        let epoch = canonical.current_epoch();
        let (internal_tx, internal_rx) = mpsc::channel(1024);
        let wal = WalWriter::spawn(dir.clone()).context("starting the consensus WAL writer")?;
        let pool = Arc::new(Pool::new(canonical, mempool));
        let evaluator = Arc::new(Evaluator::new(
            key.hotkey(),
            consensus.me.and_then(|_| key.derive_bls_key()),
            netuid,
            net.clone(),
            pool.clone(),
            threads,
            (fault, loader),
        ));
        let (root, last_block) = {
            let mut state = pool.state();
            (state.root(), state.last_block())
        };
        {
            let mut s = status.lock().expect("status lock poisoned");
            s.netuid = netuid.0;
            s.network_id = genesis.network_id().to_hex();
            s.hotkey = key.hotkey().to_ss58();
            s.validator = consensus.me.is_some();
            s.height = finalized_height;
            s.block_hash = last_block.to_hex();
            s.state_root = root.to_hex();
            s.epoch = epoch.epoch.0;
            s.epoch_chain_block = epoch.chain_block;
            s.weights_submitted_epoch = chain.as_ref().and_then(|c| c.submitter.last_submitted());
            s.snapshot_height = snapshot_height;
        }
        Ok(Driver {
            key: Arc::new(key),
            netuid,
            consensus,
            vote_checks,
            generation: 0,
            evaluator,
            pool,
            host,
            chain,
            finalized_digest,
            finalized_height,
            finalized_view,
            replayed_inputs: Some(replayed_inputs),
            forks: HashMap::new(),
            blocks: HashMap::new(),
            waiting: Vec::new(),
            pending_build: None,
            to_apply: VecDeque::new(),
            sync_asked: None,
            catch_up_asked: None,
            refused_snapshots: HashSet::new(),
            snapshot_catch_up: true,
            retention: crate::collect::Retention::default(),
            collecting: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            nullify_closes: fault == Some(Fault::NullifyCloses),
            close_timeout: None,
            poison_anchors: fault == Some(Fault::PoisonAnchors),
            flood_announces: fault == Some(Fault::FloodAnnounces),
            garbage_gossip: fault == Some(Fault::GarbageGossip),
            announced: HashMap::new(),
            bind_sent: None,
            early: VecDeque::new(),
            preparing: Arc::new(Mutex::new(HashSet::new())),
            pending_snapshot: None,
            last_finalized_at: Instant::now(),
            heard: Heard::new(Instant::now()),
            latencies: VecDeque::new(),
            block_interval,
            view_timeout,
            net,
            dir,
            wal,
            internal_tx,
            internal_rx,
            status,
        })
    }

    /// How long blocks' and settled payloads' blobs are kept.
    pub fn with_retention(mut self, retention: crate::collect::Retention) -> Driver {
        self.retention = retention;
        self
    }

    /// Whether catch-up across epochs may start from a peer's snapshot (default on).
    pub fn with_snapshot_catch_up(mut self, on: bool) -> Driver {
        self.snapshot_catch_up = on;
        self
    }

    fn engine(&mut self) -> &mut Engine<Counted<BlsScheme>> {
        &mut self.consensus.engine
    }

    fn epoch(&self) -> Epoch {
        self.consensus.engine.config().epoch
    }

    /// The network membership of the current validator set.
    pub fn membership(&self) -> Membership {
        let state = self.pool.state();
        let validators: std::collections::BTreeMap<Hotkey, u64> =
            state.current_epoch().validators.into_iter().collect();
        let peer_ids = validators
            .keys()
            .filter_map(|h| state.bound_keys(h))
            .filter_map(|k| platform_network::libp2p::PeerId::from_bytes(&k.peer_id).ok())
            .collect();
        Membership {
            validators,
            peer_ids,
        }
    }

    /// The canonical state and mempool, for the API.
    pub fn pool(&self) -> Arc<Pool> {
        self.pool.clone()
    }

    /// Starts the current engine from the WAL and the journaled certificates of its epoch. A
    /// WAL record of an earlier epoch is set aside by the safety rules: each epoch's views start
    /// after its anchor's.
    async fn start_engine(&mut self) -> Result<Vec<Effect<BlsSignature>>> {
        let dir = self.dir.clone();
        let (safety, certificates) = tokio::task::spawn_blocking(move || {
            let safety = store::load_wal(dir.db())?;
            let certs = store::journaled_certificates(dir.db(), 0)?;
            Ok::<_, platform_storage::DbError>((safety, certs))
        })
        .await??;
        let epoch = self.epoch();
        let certificates = certificates
            .into_iter()
            .filter(|c| c.subject.epoch() == epoch)
            .collect();
        Ok(self.engine().handle(Input::Start {
            safety,
            certificates,
        }))
    }

    /// Runs until the network's event stream ends or `stop` resolves.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<NetEvent>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        self.net.set_membership(self.membership()).await?;
        for topic in [Topic::Announce, Topic::Submissions, Topic::Attestations] {
            self.net.set_round(topic, self.finalized_height).await?;
        }
        if let Some(link) = &self.chain {
            let (tx, mut rx) = mpsc::channel(4);
            tokio::spawn(link.watch.clone().run(Duration::from_millis(250), tx));
            let internal = self.internal_tx.clone();
            tokio::spawn(async move {
                while rx.recv().await.is_some() {
                    if internal.send(Internal::Retry).await.is_err() {
                        return;
                    }
                }
            });
            // A restart after an epoch closed but before its weights reached the chain.
            self.submit_latest_weights();
        }
        self.bind_keys_if_needed();
        if let Some(inputs) = self.replayed_inputs.take() {
            self.evaluator.resume(inputs);
        }
        let effects = self.start_engine().await?;
        self.perform(effects).await?;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return Ok(()),
                ev = events.recv() => match ev {
                    Some(ev) => crate::error::contain(self.on_network(ev).await)?,
                    None => return Ok(()),
                },
                Some(i) = self.internal_rx.recv() => self.on_internal(i).await?,
                acked = self.wal.acknowledged() => match acked {
                    Some((g, token)) => self.on_persisted(g, token).await?,
                    None => return Err(anyhow!("the consensus WAL writer has stopped")),
                },
                _ = tick.tick() => {
                    if self.refresh_status().await {
                        // A partition healed: everyone may be waiting out a long (backed-off)
                        // view timeout. Time out now, which re-sends our votes and the latest
                        // certificates, so the view closes within a round trip, not a timeout.
                        let view = self.consensus.engine.view();
                        let effects = self.engine().handle(Input::Timeout(view));
                        self.perform(effects).await?;
                    }
                    self.sync_missing();
                    if self.bind_sent.is_some_and(|at| at.elapsed() > Duration::from_secs(5)) {
                        self.bind_keys_if_needed();
                    }
                    if self.poison_anchors {
                        self.gossip_forged_anchor().await;
                    }
                    if self.flood_announces {
                        self.flood_announcements().await;
                    }
                    if self.garbage_gossip {
                        self.gossip_garbage().await;
                    }
                    // Nothing finalized for three view timeouts: a peer may hold a
                    // finalization this node missed (an epoch's close cannot be finalized
                    // through a later block of its epoch), so ask for finalized blocks.
                    if self.last_finalized_at.elapsed() > 3 * self.view_timeout {
                        self.catch_up();
                    }
                }
            }
        }
    }

    /// Refreshes the status; true when the partition alarm just cleared.
    async fn refresh_status(&mut self) -> bool {
        let net = self.net.status().await.ok();
        let view = self.consensus.engine.view();
        let leader =
            self.consensus.validators[self.consensus.engine.leader(view) as usize].to_ss58();
        let chain = self.chain.as_ref().map(|c| c.watch.status());
        let submitted = self
            .chain
            .as_ref()
            .and_then(|c| c.submitter.last_submitted());
        let validators = &self.consensus.engine.config().validators;
        let members: Vec<(Hotkey, u64)> = self
            .consensus
            .validators
            .iter()
            .enumerate()
            .map(|(i, h)| (*h, validators.stake(i as ValidatorIndex)))
            .collect();
        let now = Instant::now();
        let me = self.key.hotkey();
        let (heard, total) = self.heard.heard_stake(&members, &me, now);
        let silence: Vec<HeardView> = members
            .iter()
            .map(|(h, stake)| HeardView {
                hotkey: h.to_ss58(),
                stake: *stake,
                silent_ms: if *h == me {
                    0
                } else {
                    self.heard.silent_for(h, now).as_millis() as u64
                },
            })
            .collect();
        let mut s = self.status.lock().expect("status lock poisoned");
        s.heard = silence;
        s.view = view.0;
        s.leader = leader;
        s.chain = chain;
        s.weights_submitted_epoch = submitted;
        if let Some(n) = net {
            s.peers = n.connected_peers;
        }
        let alarm = partitioned(heard, total);
        if alarm != s.partitioned {
            if alarm {
                tracing::warn!(
                    heard_stake = heard,
                    total_stake = total,
                    "partitioned: the validators heard from in the last 10 s hold less than two \
                     thirds of the stake"
                );
            } else {
                tracing::info!(heard_stake = heard, total_stake = total, "partition healed");
            }
        }
        let healed = s.partitioned && !alarm;
        s.partitioned = alarm;
        s.heard_stake_bps = (heard * 10_000).checked_div(total).unwrap_or(0) as u64;
        healed
    }

    /// Handles one event from the network. Input the network's ingress let through but this
    /// node cannot use is [`NodeError::Dropped`]; only this node's own failures are fatal.
    async fn on_network(&mut self, ev: NetEvent) -> Result<(), NodeError> {
        let NetEvent::Gossip {
            topic,
            envelope,
            from,
        } = ev
        else {
            return Ok(());
        };
        match topic {
            Topic::Consensus => {
                // Any consensus message that passed the network's checks shows its author
                // is alive and reachable.
                self.heard.heard(envelope.author, Instant::now());
                let message: Message<BlsSignature> = decode(
                    "consensus message",
                    &envelope.payload,
                    platform_consensus::types::MAX_MESSAGE_BYTES,
                )
                .map_err(|_| NodeError::dropped("consensus", "malformed"))?;
                let epoch = self.epoch();
                match message.epoch() {
                    Some(e) if e > epoch => {
                        // The network has moved on: hold next-epoch messages for when we
                        // get there, and fetch the blocks that take us there.
                        if e.0 == epoch.0 + 1 {
                            if self.early.len() == MAX_EARLY_MESSAGES {
                                self.early.pop_front();
                            }
                            self.early.push_back((envelope.author, message));
                        }
                        self.catch_up();
                        return Ok(());
                    }
                    Some(e) if e < epoch => return Ok(()),
                    _ => {}
                }
                let Some(from) = self
                    .consensus
                    .validators
                    .iter()
                    .position(|h| *h == envelope.author)
                else {
                    return Ok(());
                };
                tracing::trace!(
                    from,
                    view = message.view().map(|v| v.0),
                    what = match &message {
                        Message::Vote(v) => format!("{:?} vote", v.kind),
                        Message::Certificate(c) => format!("{:?} certificate", c.kind),
                        Message::Fetch(_) => "fetch".into(),
                        Message::FetchView(_) => "fetch view".into(),
                    },
                    "consensus message"
                );
                let effects = self.engine().handle(Input::Message {
                    from: from as ValidatorIndex,
                    message,
                });
                Ok(self.perform(effects).await?)
            }
            Topic::Announce => {
                let a =
                    decode::<Announcement>("block announcement", &envelope.payload, ANNOUNCE_BYTES)
                        .map_err(|_| NodeError::dropped("announce", "malformed"))?;
                match self.accept_announcement(&a, &envelope.author) {
                    Ok(()) => {}
                    Err("stale_announcement") => return Ok(()),
                    Err(reason) => {
                        tracing::debug!(view = a.view.0, reason, "refused a block announcement");
                        let _ = self
                            .net
                            .report_validator(envelope.author, "announce", reason)
                            .await;
                        return Ok(());
                    }
                }
                if !self.blocks.contains_key(&a.header) {
                    let net = self.net.clone();
                    let tx = self.internal_tx.clone();
                    let author = envelope.author;
                    tokio::spawn(async move {
                        // Held in memory only until it decodes to the announced leader's block
                        // for that view; only then is it stored (and served to peers).
                        match net.fetch_announced_blob(a.blob, author, Some(from)).await {
                            Ok(bytes) => match Block::decode(&bytes) {
                                Ok(block)
                                    if block.header.hash() == a.header
                                        && block.header.proposer == author
                                        && block.header.view == a.view =>
                                {
                                    if let Err(e) = net.store_blob(bytes).await {
                                        tracing::warn!("storing block {}: {e}", a.header);
                                    }
                                    let _ = tx.send(Internal::Block(Box::new(block))).await;
                                }
                                _ => {
                                    tracing::warn!("announced block {} did not match", a.header);
                                    let _ = net
                                        .report_validator(author, "announce", "invalid_proposal")
                                        .await;
                                }
                            },
                            Err(e) => tracing::warn!("fetching block {}: {e}", a.header),
                        }
                    });
                }
                Ok(())
            }
            Topic::Submissions => {
                let tx = Tx::decode(&envelope.payload)
                    .map_err(|_| NodeError::dropped("transaction", "malformed"))?;
                let pool = self.pool.clone();
                tokio::task::spawn_blocking(move || {
                    let result = match pool.admit(tx) {
                        Ok(_) => "admitted",
                        Err(e) => {
                            tracing::debug!("gossiped transaction not admitted: {e}");
                            match e {
                                crate::mempool::AdmitError::Mempool(_) => "full",
                                crate::mempool::AdmitError::Rejected(_) => "rejected",
                            }
                        }
                    };
                    crate::metrics::events().offered("gossip", result);
                });
                Ok(())
            }
            Topic::Attestations => {
                let a = Evaluator::decode(&envelope.payload)
                    .ok_or(NodeError::dropped("attestation", "malformed"))?;
                let evaluator = self.evaluator.clone();
                tokio::spawn(async move { evaluator.collect(a).await });
                Ok(())
            }
        }
    }

    async fn on_internal(&mut self, i: Internal) -> Result<()> {
        let generation = self.generation;
        let effects = match i {
            Internal::Timeout(g, v) if g == generation => {
                crate::metrics::events().view_timeouts.inc();
                self.engine().handle(Input::Timeout(v))
            }
            Internal::Build {
                generation: g,
                view,
                parent,
                height,
            } if g == generation => self.build_now(view, parent, height).await?,
            Internal::Timeout(..) | Internal::Build { .. } => Vec::new(),
            Internal::Block(block) => {
                self.blocks.insert(block.header.hash(), *block);
                self.apply_finalized().await?;
                let mut effects = self.retry_waiting();
                effects.extend(self.retry_build().await?);
                effects
            }
            Internal::Retry => {
                self.apply_finalized().await?;
                let mut effects = self.retry_waiting();
                effects.extend(self.retry_build().await?);
                effects
            }
            Internal::Synced(blocks) => self.apply_synced(blocks).await?,
            Internal::Snapshot(bytes, blob, peer) => {
                self.install_snapshot(bytes, blob, peer).await?
            }
        };
        self.perform(effects).await
    }

    /// The WAL writer made the engine's safety state durable up to `token` (acknowledgements
    /// are cumulative): the engine releases every vote up to it.
    async fn on_persisted(&mut self, generation: u64, token: u64) -> Result<()> {
        if generation != self.generation {
            return Ok(());
        }
        let mut effects = Vec::new();
        if let Some((_, view)) = self.close_timeout.take_if(|(t, _)| *t <= token) {
            // The timer fires before the vote leaves, so before the close's
            // notarization can reach this validator, even one its own vote completes.
            tracing::info!(view = view.0, "timing out at once in the close's view");
            effects = self.engine().handle(Input::Timeout(view));
        }
        effects.extend(self.engine().handle(Input::Persisted(token)));
        self.perform(effects).await
    }

    /// Whether `state` records a fresh notarize vote for an epoch's close (a block after which
    /// the state is in the next epoch) and the deliberate fault [`Fault::NullifyCloses`] is
    /// on: the validator then times out in that view once the vote is written, before it is
    /// sent.
    fn times_out_after(&self, state: &SafetyState) -> bool {
        let Some(p) = state.notarized else {
            return false;
        };
        self.nullify_closes
            && state.view == p.view
            && !state.nullified
            && state.finalized.is_none()
            && !p.is_seal()
            && self
                .forks
                .get(&p.digest())
                .is_some_and(|(_, fork, _)| fork.meta().epoch != p.epoch)
    }

    /// A copy of the state after `digest`: the canonical state for the last finalized block,
    /// else a fork.
    fn state_after(&self, digest: &Hash) -> Option<State> {
        if *digest == self.finalized_digest && self.to_apply.is_empty() {
            Some(self.pool.state().fork())
        } else {
            self.forks.get(digest).map(|(_, s, _)| s.fork())
        }
    }

    /// Whether every module `state`'s epoch close runs is compiled. If not, fetches and
    /// compiles the missing ones off the async workers and answers with [`Internal::Retry`].
    fn modules_ready(&self, state: &State) -> bool {
        let missing: Vec<ChallengeMeta> = module_challenges(state)
            .into_iter()
            .filter(|m| !self.host.is_loaded(m))
            .collect();
        if missing.is_empty() {
            return true;
        }
        for meta in missing {
            if !self
                .preparing
                .lock()
                .expect("preparing lock poisoned")
                .insert(meta.wasm_hash)
            {
                continue;
            }
            let (net, host, dir) = (self.net.clone(), self.host.clone(), self.dir.clone());
            let (tx, preparing) = (self.internal_tx.clone(), self.preparing.clone());
            tokio::spawn(async move {
                let hash = meta.wasm_hash;
                if !dir.blobs().contains(&hash) {
                    match net.fetch_blob(hash).await {
                        Ok(bytes) => {
                            let d = dir.clone();
                            let stored =
                                tokio::task::spawn_blocking(move || d.blobs().put(&bytes)).await;
                            if !matches!(stored, Ok(Ok(_))) {
                                tracing::warn!("storing module {hash} failed");
                            }
                        }
                        Err(e) => tracing::warn!("fetching module {hash} for the epoch close: {e}"),
                    }
                }
                let loaded = tokio::task::spawn_blocking(move || host.preload(&meta))
                    .await
                    .unwrap_or(false);
                if !loaded {
                    tracing::warn!("module {hash} cannot be loaded yet; will retry");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                preparing
                    .lock()
                    .expect("preparing lock poisoned")
                    .remove(&hash);
                let _ = tx.send(Internal::Retry).await;
            });
        }
        false
    }

    /// Asks for [`Internal::Retry`] in a second: for work that waits on something no event will
    /// announce (a module whose run hit the wall-clock backstop may run in time again).
    fn retry_later(&self) {
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = tx.send(Internal::Retry).await;
        });
    }

    /// Applies `block` to `state`; a block that closes an epoch runs modules' `weights`
    /// exports, so it runs as blocking work. Returns the submissions whose committee the block
    /// added this validator to as a replacement for members who did not attest in time.
    fn apply(
        &self,
        state: &mut State,
        block: &Block,
    ) -> Result<Vec<SubmissionId>, platform_state::BlockError> {
        let (_, closes) = epoch_change(block);
        let applied = if closes {
            let host = self.host.clone();
            tokio::task::block_in_place(|| state.apply_block(block, &*host))?
        } else {
            state.apply_block(block, &*self.host)?
        };
        let me = self.key.hotkey();
        Ok(applied
            .events
            .into_iter()
            .filter_map(|e| match e {
                platform_state::Event::Replaced {
                    submission, added, ..
                } if added.contains(&me) => Some(submission),
                _ => None,
            })
            .collect())
    }

    /// The transactions that end the epoch on top of `fork`, if the chain has started a new
    /// epoch since it was anchored and every module the close runs is ready.
    fn epoch_transactions(&self, fork: &State) -> Option<Vec<Tx>> {
        let link = self.chain.as_ref()?;
        let (chain_block, anchor) = link.watch.latest()?;
        let current = fork.current_epoch();
        if chain_block <= current.chain_block || !self.modules_ready(fork) {
            return None;
        }
        let host = self.host.clone();
        let weights = match tokio::task::block_in_place(|| fork.compute_weights(&*host)) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(epoch = current.epoch.0, "cannot close the epoch yet: {e}");
                crate::metrics::events().module_wait("build");
                return None;
            }
        };
        Some(vec![
            Tx::EpochAnchor(EpochAnchor {
                epoch: Epoch(current.epoch.0 + 1),
                chain_block,
                chain_hash: anchor.hash,
                metagraph: anchor.metagraph,
            }),
            Tx::EpochClose(EpochClose {
                epoch: current.epoch,
                weights_digest: weights_digest(&weights),
            }),
        ])
    }

    /// Builds this leader's block for `view` now, or — when the parent's state is not here yet
    /// — keeps the request until it is ([`Driver::retry_build`]); the view's timeout still
    /// bounds the wait.
    async fn build_now(
        &mut self,
        view: View,
        parent: Hash,
        height: Height,
    ) -> Result<Vec<Effect<BlsSignature>>> {
        if self.state_after(&parent).is_none() {
            tracing::debug!(
                view = view.0,
                "the parent's state is not here yet; building later"
            );
            self.pending_build = Some((self.generation, view, parent, height));
            return Ok(Vec::new());
        }
        self.pending_build = None;
        Ok(match self.build(view, parent, height).await? {
            Some(payload) => self.engine().handle(Input::ProposalReady { view, payload }),
            None => Vec::new(),
        })
    }

    /// Retries a build that waited for its parent's state, if this engine is still in its view.
    async fn retry_build(&mut self) -> Result<Vec<Effect<BlsSignature>>> {
        match self.pending_build {
            Some((g, view, parent, height))
                if g == self.generation && self.consensus.engine.view() == view =>
            {
                if self.state_after(&parent).is_none() {
                    return Ok(Vec::new());
                }
                self.build_now(view, parent, height).await
            }
            Some(_) => {
                self.pending_build = None;
                Ok(Vec::new())
            }
            None => Ok(Vec::new()),
        }
    }

    async fn build(&mut self, view: View, parent: Hash, height: Height) -> Result<Option<Hash>> {
        let Some(mut fork) = self.state_after(&parent) else {
            tracing::warn!(view = view.0, "cannot build: the parent's state is unknown");
            return Ok(None);
        };
        if fork.meta().epoch != self.epoch() {
            // The parent closed this epoch (or seals its close): the next block belongs to the
            // next engine, so propose a seal, whose finalization finalizes the close.
            let seal = Proposal {
                epoch: self.epoch(),
                view,
                height,
                parent,
                payload: SEAL,
            };
            self.forks
                .insert(seal.digest(), (height.0, fork, Vec::new()));
            tracing::info!(height = height.0, "proposed a seal after the epoch's close");
            return Ok(Some(SEAL));
        }
        // A block that ends the epoch carries only the anchor and the close.
        let ends_epoch = self.epoch_transactions(&fork);
        let closing = ends_epoch.is_some();
        let candidates = ends_epoch.unwrap_or_else(|| {
            // Attestations of committees running out of time first, then the mempool.
            let mut txs = self.evaluator.due_attests(&fork, height, MAX_BLOCK_TXS / 4);
            let sudo_next = fork.meta().sudo_nonce.map(|n| n.saturating_add(1));
            txs.extend(
                self.pool
                    .mempool()
                    .candidates(MAX_BLOCK_TXS - txs.len(), sudo_next),
            );
            txs
        });
        let host = self.host.clone();
        let (block, outcomes) = fork.build_block(&self.key, view, now_ms(), candidates, &*host);
        // Transactions the state refuses now (a nonce used meanwhile, a challenge retired)
        // leave the mempool with the reason. Built on a block not yet final, a refusal may
        // come from that block itself (it already carries the transaction): such a
        // transaction stays until its block is final, and is proposed again if that block is
        // abandoned — it leaves only if the finalized state refuses it too.
        let on_fork = parent != self.finalized_digest || !self.to_apply.is_empty();
        let mut finalized = on_fork.then(|| self.pool.latest().fork());
        let refused: Vec<Hash> = outcomes
            .iter()
            .filter_map(|(tx, r)| {
                let reason = r.as_ref().err()?;
                if let Some(state) = finalized.as_mut()
                    && state.admit(tx, &platform_state::NoModules).is_ok()
                {
                    return None;
                }
                tracing::info!(kind = tx.kind(), "dropping a pending transaction: {reason}");
                Some(tx.hash())
            })
            .collect();
        if closing && !refused.is_empty() {
            return Err(anyhow!("our own epoch close was refused: {outcomes:?}"));
        }
        self.pool.mempool().remove(refused);
        if block.header.height != height {
            return Err(anyhow!(
                "consensus asked for height {} but the state is at {}",
                height.0,
                block.header.height.0
            ));
        }
        let added = self
            .apply(&mut fork, &block)
            .map_err(|e| anyhow!("our own block does not apply: {e:?}"))?;
        let header = block.header.hash();
        let proposal = Proposal {
            epoch: self.epoch(),
            view,
            height,
            parent,
            payload: header,
        };
        self.forks
            .insert(proposal.digest(), (height.0, fork, added));
        let blob = self.net.store_blob(encode(&block)).await?;
        self.blocks.insert(header, block);
        if let Err(e) = self
            .net
            .publish(
                Topic::Announce,
                height.0,
                encode(&Announcement {
                    epoch: self.epoch(),
                    view,
                    header,
                    blob,
                }),
            )
            .await
        {
            tracing::warn!("announcing block {header}: {e}");
        }
        if closing {
            tracing::info!(height = height.0, "proposed the epoch's close");
        }
        Ok(Some(header))
    }

    /// Checks a proposal's block against the state after its parent. `None`: cannot tell yet.
    fn verify(&mut self, p: &Proposal) -> Option<bool> {
        if p.is_seal() {
            // Valid exactly after a close or another seal: when the state after the parent
            // is already in the next epoch.
            let fork = self.state_after(&p.parent)?;
            let valid = fork.meta().epoch != p.epoch;
            if valid {
                self.forks
                    .insert(p.digest(), (p.height.0, fork, Vec::new()));
            }
            return Some(valid);
        }
        let block = self.blocks.get(&p.payload)?;
        let mut fork = self.state_after(&p.parent)?;
        let leader = self.consensus.validators[self.consensus.engine.leader(p.view) as usize];
        if block.header.height != p.height
            || block.header.view != p.view
            || block.header.proposer != leader
            || fork.meta().epoch != p.epoch
        {
            return Some(false);
        }
        if !timestamp_acceptable(block.header.timestamp_ms, now_ms()) {
            tracing::warn!(
                height = p.height.0,
                ahead_ms = block.header.timestamp_ms.saturating_sub(now_ms()),
                "refusing a proposal stamped too far ahead of this validator's clock"
            );
            return Some(false);
        }
        let (anchor, closes) = epoch_change(block);
        if let Some(a) = anchor {
            // An anchor must match what our own chain client says about that block.
            let Some(link) = &self.chain else {
                tracing::warn!("refusing an epoch anchor: this node has no chain configured");
                return Some(false);
            };
            match link.watch.check(a) {
                None => return None,
                Some(false) => {
                    tracing::warn!(
                        chain_block = a.chain_block,
                        "refusing an epoch anchor the chain does not confirm"
                    );
                    return Some(false);
                }
                Some(true) => {}
            }
        }
        if closes && !self.modules_ready(&fork) {
            return None;
        }
        match self.apply(&mut fork, block) {
            Ok(added) => {
                self.forks.insert(p.digest(), (p.height.0, fork, added));
                Some(true)
            }
            Err(BlockError::ModuleUnavailable { challenge, module }) => {
                // Not a verdict on the block: this validator cannot tell yet.
                tracing::warn!(
                    height = p.height.0,
                    %challenge,
                    %module,
                    "cannot check the epoch close yet: its module did not run here; will retry"
                );
                crate::metrics::events().module_wait("verify");
                self.retry_later();
                None
            }
            Err(e) => {
                tracing::warn!(height = p.height.0, "refusing proposal: {e:?}");
                Some(false)
            }
        }
    }

    fn retry_waiting(&mut self) -> Vec<Effect<BlsSignature>> {
        let mut effects = Vec::new();
        let waiting = std::mem::take(&mut self.waiting);
        for p in waiting {
            if p.epoch != self.epoch() {
                continue;
            }
            match self.verify(&p) {
                Some(valid) => effects.extend(self.engine().handle(Input::Verified {
                    digest: p.digest(),
                    valid,
                })),
                None => self.waiting.push(p),
            }
        }
        effects
    }

    /// A finalized block we do not hold (its announcement came while we were down or cut off):
    /// ask peers for it through `sync`. The engine has checked the finalization, so a block is
    /// genuine exactly when its header hashes to the finalized proposal's payload.
    fn sync_missing(&mut self) {
        let Some((proposal, _, _)) = self.to_apply.front() else {
            return;
        };
        if self.blocks.contains_key(&proposal.payload) {
            return;
        }
        let height = proposal.height.0;
        if self
            .sync_asked
            .is_some_and(|(h, at)| h == height && at.elapsed() < Duration::from_secs(2))
        {
            return;
        }
        self.sync_asked = Some((height, Instant::now()));
        // Ask for everything finalized that we lack, up to the newest known finalized height.
        let wanted: HashMap<u64, Hash> = self
            .to_apply
            .iter()
            .map(|(p, _, _)| (p.height.0, p.payload))
            .collect();
        let last = self.to_apply.back().map_or(height, |(p, _, _)| p.height.0);
        let net = self.net.clone();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let check = |from: u64, blocks: &[Vec<u8>]| -> Result<(), &'static str> {
                for (i, bytes) in blocks.iter().enumerate() {
                    let f = decode_finalized(bytes).ok_or("malformed_block")?;
                    let h = from + i as u64;
                    if f.proposal.height.0 != h
                        || wanted.get(&h).is_some_and(|p| *p != f.block.header.hash())
                    {
                        return Err("wrong_block");
                    }
                }
                Ok(())
            };
            match net.sync_blocks(height, last, check).await {
                Ok(blocks) => {
                    for f in blocks.iter().filter_map(|b| decode_finalized(b)) {
                        let _ = tx.send(Internal::Block(Box::new(f.block))).await;
                    }
                }
                Err(e) => tracing::debug!("syncing blocks {height}..={last}: {e}"),
            }
        });
    }

    /// The network is in a later epoch than this node (it was down or cut off when the epoch
    /// closed): fetch finalized blocks from the last one we hold. Each is checked against the
    /// validator set of its own epoch before it is applied ([`Driver::apply_synced`]).
    fn catch_up(&mut self) {
        if self
            .catch_up_asked
            .is_some_and(|at| at.elapsed() < Duration::from_secs(2))
        {
            return;
        }
        self.catch_up_asked = Some(Instant::now());
        let from = self.finalized_height + 1;
        let parent = self.finalized_digest;
        let net = self.net.clone();
        let tx = self.internal_tx.clone();
        let refused = self.refused_snapshots.clone();
        let snapshots = self.snapshot_catch_up;
        tokio::spawn(async move {
            // A peer's snapshot newer than our last block starts an epoch we missed: start
            // from it rather than replaying every block (checked by the driver).
            if snapshots
                && let Ok(Some((info, peer))) = net.latest_snapshot().await
                && info.height >= from
                && !refused.contains(&info.blob)
            {
                match net.fetch_blob_from(info.blob, Some(peer)).await {
                    Ok(bytes) => {
                        let _ = tx.send(Internal::Snapshot(bytes, info.blob, peer)).await;
                        return;
                    }
                    Err(e) => tracing::debug!("fetching snapshot {}: {e}", info.blob),
                }
            }
            // Linkage only here; certificates are checked by the driver, epoch by epoch.
            let check = |from: u64, blocks: &[Vec<u8>]| -> Result<(), &'static str> {
                let mut prev = parent;
                for (i, bytes) in blocks.iter().enumerate() {
                    let f = decode_finalized(bytes).ok_or("malformed_block")?;
                    if f.proposal.height.0 != from + i as u64
                        || f.proposal.parent != prev
                        || f.block.header.hash() != f.proposal.payload
                    {
                        return Err("wrong_block");
                    }
                    prev = f.proposal.digest();
                }
                Ok(())
            };
            let to = from + platform_network::wire::MAX_SYNC_BLOCKS - 1;
            match net.sync_blocks(from, to, check).await {
                Ok(blocks) => {
                    let blocks = blocks.iter().filter_map(|b| decode_finalized(b)).collect();
                    let _ = tx.send(Internal::Synced(blocks)).await;
                }
                Err(e) => tracing::debug!("catching up from block {from}: {e}"),
            }
        });
    }

    /// Applies finalized blocks fetched from a peer, in order, each after checking that it
    /// extends our chain and that a quorum of its epoch's validators finalized it (its own
    /// certificate, or a later block's in the same batch that descends from it). Crossing an
    /// epoch close switches to the next epoch's validator set before the next block is checked.
    async fn apply_synced(
        &mut self,
        blocks: Vec<FinalizedBlock>,
    ) -> Result<Vec<Effect<BlsSignature>>> {
        let mut effects = Vec::new();
        let digests: Vec<Hash> = blocks.iter().map(|f| f.proposal.digest()).collect();
        let before = self.finalized_height;
        let mut last_certificate = None;
        for (i, f) in blocks.iter().enumerate() {
            if f.proposal.height.0 <= self.finalized_height {
                continue;
            }
            if f.proposal.height.0 != self.finalized_height + 1
                || f.proposal.parent != self.finalized_digest
                || f.block.header.hash() != f.proposal.payload
                || f.proposal.epoch != self.epoch()
            {
                break;
            }
            let head_ok = match &f.certificate.subject {
                Subject::Proposal(head) => {
                    f.certificate.kind == VoteKind::Finalize
                        && head.epoch == f.proposal.epoch
                        && (digests[i..].contains(&head.digest())
                            || seals_link(&f.proposal, &f.seals, head))
                }
                Subject::View(..) => false,
            };
            let quorum = certificate_is_valid(
                self.netuid,
                &self.consensus.engine.config().validators,
                &self.consensus.verifier,
                &f.certificate,
            );
            if !head_ok || !quorum {
                tracing::warn!(
                    height = f.proposal.height.0,
                    "a peer's finalized block has no valid finalization; ignoring the rest"
                );
                break;
            }
            self.blocks.insert(f.proposal.payload, f.block.clone());
            if self
                .to_apply
                .front()
                .is_none_or(|(p, _, _)| p.height != f.proposal.height)
            {
                self.to_apply
                    .push_front((f.proposal, f.certificate.clone(), f.seals.clone()));
            }
            self.apply_finalized().await?;
            if self.finalized_height != f.proposal.height.0 {
                break; // waiting for a module; the next catch-up resumes here
            }
            last_certificate = Some(f.certificate.clone());
            effects.extend(self.switch_epoch_if_closed().await?);
        }
        if self.finalized_height > before {
            tracing::info!(
                from = before + 1,
                to = self.finalized_height,
                "caught up on finalized blocks from a peer"
            );
            // The engine learns the newest finalization too (checked above), which moves it
            // to the view after it: a validator that caught up votes again at once instead
            // of waiting to hear certificates of views it missed. One of another epoch (the
            // blocks crossed a close) is ignored by the new engine.
            if let Some(cert) = last_certificate {
                let from = self.consensus.me.unwrap_or(0);
                effects.extend(self.engine().handle(Input::Message {
                    from,
                    message: Message::Certificate(cert),
                }));
            }
        }
        Ok(effects)
    }

    /// Applies finalized blocks in order while their blocks are at hand; stops after a block
    /// that closes the epoch (the next engine takes over from there).
    async fn apply_finalized(&mut self) -> Result<()> {
        while let Some((proposal, certificate, seals)) = self.to_apply.front().cloned() {
            if proposal.height.0 <= self.finalized_height {
                self.to_apply.pop_front();
                continue;
            }
            if self.pool.state().meta().epoch != self.epoch() {
                break;
            }
            let Some(block) = self.blocks.get(&proposal.payload).cloned() else {
                break;
            };
            let digest = proposal.digest();
            let fork = self.forks.remove(&digest);
            if fork.is_none() && epoch_change(&block).1 {
                let ready = {
                    let state = self.pool.state();
                    self.modules_ready(&state)
                };
                if !ready {
                    break;
                }
            }
            let (block_hash, root, added, entries, pruned) = {
                let mut canonical = self.pool.state();
                let added = match fork {
                    Some((_, state, added)) => {
                        *canonical = state;
                        added
                    }
                    None => match self.apply(&mut canonical, &block) {
                        Ok(added) => added,
                        Err(BlockError::ModuleUnavailable { challenge, module }) => {
                            // The state rolled back; the block stays first in line.
                            tracing::warn!(
                                height = proposal.height.0,
                                %challenge,
                                %module,
                                "cannot apply the finalized epoch close yet: its module did \
                                 not run here; will retry"
                            );
                            drop(canonical);
                            crate::metrics::events().module_wait("apply");
                            self.retry_later();
                            break;
                        }
                        Err(e) => {
                            return Err(anyhow!(
                                "finalized block {} does not apply: {e:?}",
                                proposal.height.0
                            ));
                        }
                    },
                };
                self.to_apply.pop_front();
                self.evaluator.record_inputs(&canonical, &block);
                let entries = canonical.entry_count() as u64;
                let pruned = canonical.meta().pruned;
                (
                    canonical.last_block(),
                    canonical.root(),
                    added,
                    entries,
                    pruned,
                )
            };
            self.pool.publish();
            self.pool
                .mempool()
                .remove(block.txs.iter().map(|t| t.hash()));
            let ordered = block.txs.iter().filter_map(|tx| match tx {
                Tx::Submit(t) => Some(t.submission.id()),
                _ => None,
            });
            // New submissions, and those this validator was drawn to as a replacement.
            for id in ordered.chain(added) {
                self.evaluator.ordered(id);
            }
            if block.txs.iter().any(|t| matches!(t, Tx::Certify(_))) {
                self.evaluator.prune();
            }
            self.finalized_digest = digest;
            self.finalized_height = proposal.height.0;
            self.finalized_view = proposal.view;
            self.last_finalized_at = Instant::now();
            let height = self.finalized_height;
            self.forks.retain(|_, (h, _, _)| *h > height);
            self.blocks.retain(|_, b| b.header.height.0 > height);
            let latency = now_ms().saturating_sub(block.header.timestamp_ms);
            if self.latencies.len() == 1000 {
                self.latencies.pop_front();
            }
            self.latencies.push_back(latency);
            crate::metrics::events()
                .finalization
                .observe(latency as f64 / 1000.0);
            let mut sorted: Vec<u64> = self.latencies.iter().copied().collect();
            sorted.sort_unstable();
            let pct = |p: usize| sorted[(sorted.len() * p / 100).min(sorted.len() - 1)];
            let (p50, p99) = (pct(50), pct(99));
            let closes = epoch_change(&block).1;
            if !seals.is_empty() {
                tracing::info!(
                    height = proposal.height.0,
                    seals = seals.len(),
                    "the epoch's close was finalized through seals"
                );
            }
            self.collect_snapshot(&proposal, &block.header, &certificate, closes);
            let record = FinalizedBlock {
                proposal,
                block,
                certificate,
                seals,
            };
            let dir = self.dir.clone();
            let held = crate::collect::rows_for(
                height,
                record.proposal.epoch.0,
                Hash::of(&encode(&record.block)),
                &record.block,
            );
            tokio::task::spawn_blocking(move || store::save_finalized(dir.db(), &record, &held))
                .await??;
            if height.is_multiple_of(crate::collect::EVERY_HEIGHTS) {
                self.collect_blobs(height);
            }
            // Announcements, transactions and attestations carry a height as their round: keep
            // their replay windows on the finalized height.
            for topic in [Topic::Announce, Topic::Submissions, Topic::Attestations] {
                self.net.set_round(topic, height).await?;
            }
            let pending = self.pool.mempool().len();
            let mut s = self.status.lock().expect("status lock poisoned");
            s.height = height;
            s.pending_transactions = pending;
            s.block_hash = block_hash.to_hex();
            s.state_root = root.to_hex();
            s.state_entries = entries;
            s.state_pruned = pruned;
            s.finalized_since_start += 1;
            s.consensus_signature_checks = self.vote_checks.load(Ordering::Relaxed);
            (s.evaluations, s.evaluation_ms) = self.evaluator.evaluations();
            s.finalization_ms_p50 = p50;
            s.finalization_ms_p99 = p99;
            drop(s);
            tracing::info!(height, latency_ms = latency, "finalized");
            if closes {
                break;
            }
        }
        Ok(())
    }

    /// Deletes the blobs that are no longer needed ([`crate::collect`]) on a blocking thread,
    /// then withdraws the payloads' DHT announcements. One collection at a time.
    fn collect_blobs(&self, height: u64) {
        use std::sync::atomic::Ordering;
        if self.collecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let (dir, pool, net) = (self.dir.clone(), self.pool.clone(), self.net.clone());
        let (retention, collecting, status) =
            (self.retention, self.collecting.clone(), self.status.clone());
        tokio::spawn(async move {
            let done = tokio::task::spawn_blocking(move || {
                // The database is read before the state is locked: the lock is held only to
                // look up the submissions' statuses.
                let rows = crate::collect::held(dir.db())?;
                let pending = pool.mempool().pending_submissions();
                let due = {
                    let state = pool.latest();
                    let epoch = state.meta().epoch.0;
                    crate::collect::due(rows, &state, &pending, height, epoch, retention)
                };
                let deleted = crate::collect::collect(&dir, &due)?;
                Ok::<_, anyhow::Error>((due.payloads, deleted))
            })
            .await;
            match done {
                Ok(Ok((payloads, deleted))) => {
                    status.lock().expect("status lock poisoned").blobs_collected += deleted as u64;
                    for hash in payloads {
                        if net.unprovide(hash).await.is_err() {
                            break;
                        }
                    }
                }
                Ok(Err(e)) => tracing::warn!(height, "collecting blobs: {e:#}"),
                Err(e) => tracing::warn!(height, "collecting blobs: {e}"),
            }
            collecting.store(false, Ordering::Release);
        });
    }

    /// Snapshots: the state after an epoch's close waits for a certified block after it (whose
    /// header commits to the state's root), then is encoded and stored on a blocking thread.
    fn collect_snapshot(
        &mut self,
        proposal: &Proposal,
        header: &BlockHeader,
        certificate: &Certificate<BlsSignature>,
        closes: bool,
    ) {
        if closes {
            let state = self.pool.state().fork();
            self.pending_snapshot = Some(snapshots::Pending::new(*proposal, state));
            return;
        }
        let Some(pending) = self.pending_snapshot.as_mut() else {
            return;
        };
        match pending.add(*proposal, header.clone(), certificate) {
            Some((mut state, proof)) => {
                self.pending_snapshot = None;
                let (dir, status) = (self.dir.clone(), self.status.clone());
                let retention = self.retention;
                tokio::task::spawn_blocking(move || {
                    let height = proof.anchor.height.0;
                    let bytes = snapshots::encode_snapshot(&mut state, &proof);
                    match snapshots::save(&dir, &bytes, proof, &retention) {
                        Ok(saved) => {
                            let mut s = status.lock().expect("status lock poisoned");
                            s.snapshot_height = Some(height);
                            s.blocks_pruned += saved.blocks_pruned as u64;
                            drop(s);
                            tracing::info!(
                                height,
                                bytes = bytes.len(),
                                blob = %saved.blob,
                                blocks_pruned = saved.blocks_pruned,
                                "snapshot stored"
                            )
                        }
                        Err(e) => tracing::warn!(height, "storing a snapshot: {e}"),
                    }
                });
            }
            None if pending.abandoned() => {
                tracing::warn!("no certificate for the blocks after the close: no snapshot");
                self.pending_snapshot = None;
            }
            None => {}
        }
    }

    /// A peer's snapshot of an epoch this node missed: checked ([`snapshots::verify_peer`]),
    /// stored, and made canonical; the engine of its epoch takes over, and the certified
    /// blocks after it are fetched from peers. A refused snapshot is remembered, so catch-up
    /// continues block by block.
    async fn install_snapshot(
        &mut self,
        bytes: Vec<u8>,
        blob: Hash,
        peer: platform_network::libp2p::PeerId,
    ) -> Result<Vec<Effect<BlsSignature>>> {
        let opened = tokio::task::block_in_place(|| snapshots::open_peer(&bytes));
        let verdict = match &opened {
            Err(reason) => Verdict::Invalid(reason.clone()),
            Ok((state, proof)) => {
                if proof.anchor.height.0 <= self.finalized_height
                    || state.meta().epoch <= self.epoch()
                {
                    return Ok(Vec::new());
                }
                let watch = self.chain.as_ref().map(|c| c.watch.clone());
                let confirm = |a: &EpochAnchor| match &watch {
                    Some(w) => w.check(a),
                    None => Some(false),
                };
                let own = self.pool.state();
                let trust = snapshots::Trust {
                    netuid: self.netuid,
                    own: &own,
                    confirm: &confirm,
                };
                tokio::task::block_in_place(|| snapshots::verify_peer(state, proof, &trust))
            }
        };
        match verdict {
            Verdict::Valid => {}
            Verdict::Unconfirmed => {
                tracing::debug!("a peer's snapshot waits for our chain client to read its anchor");
                return Ok(Vec::new());
            }
            Verdict::Invalid(reason) => {
                tracing::warn!(%blob, "refusing a peer's snapshot: {reason}");
                self.refused_snapshots.insert(blob);
                let _ = self.net.report(peer, "snapshot", "bad_snapshot").await;
                return Ok(Vec::new());
            }
        }
        let (state, proof): (State, SnapshotProof) = opened.expect("verified above");
        // Stored first: after a restart the node starts from it.
        let (dir, p, retention) = (self.dir.clone(), proof.clone(), self.retention);
        let saved =
            tokio::task::spawn_blocking(move || snapshots::save(&dir, &bytes, p, &retention))
                .await??;
        self.status
            .lock()
            .expect("status lock poisoned")
            .blocks_pruned += saved.blocks_pruned as u64;
        let from = self.finalized_height;
        let (block_hash, root) = {
            let mut canonical = self.pool.state();
            *canonical = state;
            (canonical.last_block(), canonical.root())
        };
        self.pool.publish();
        self.finalized_digest = proof.anchor.digest();
        self.finalized_height = proof.anchor.height.0;
        self.finalized_view = proof.anchor.view;
        self.blocks.clear();
        self.to_apply = proof
            .finalized()
            .into_iter()
            .map(|p| (p, proof.certificate.clone(), Vec::new()))
            .collect();
        self.pending_snapshot = None;
        self.catch_up_asked = None;
        self.sync_asked = None;
        for topic in [Topic::Announce, Topic::Submissions, Topic::Attestations] {
            self.net.set_round(topic, self.finalized_height).await?;
        }
        {
            let mut s = self.status.lock().expect("status lock poisoned");
            s.height = self.finalized_height;
            s.block_hash = block_hash.to_hex();
            s.state_root = root.to_hex();
            s.snapshot_height = Some(self.finalized_height);
        }
        tracing::info!(
            from,
            to = self.finalized_height,
            %blob,
            "started from a peer's snapshot"
        );
        let effects = self.switch_epoch_if_closed().await?;
        self.sync_missing();
        Ok(effects)
    }

    /// A validator with a permit on chain whose keys the state has not bound (it joined after
    /// genesis) sends `BindKeys` — its BLS key, proof of possession and peer id, signed by its
    /// hotkey — through the mempool and gossip; it joins consensus from the first epoch after
    /// the binding is final.
    fn bind_keys_if_needed(&mut self) {
        let me = self.key.hotkey();
        let needed = {
            let state = self.pool.state();
            state.bound_keys(&me).is_none()
                && state
                    .current_epoch()
                    .metagraph
                    .iter()
                    .any(|n| n.hotkey == me && n.validator_permit)
        };
        if !needed {
            self.bind_sent = None;
            return;
        }
        self.bind_sent = Some(Instant::now());
        let tx = match crate::genesis::binding(&self.key, self.netuid) {
            Ok(b) => Tx::BindKeys(b),
            Err(e) => {
                tracing::warn!("cannot bind this validator's keys: {e:#}");
                return;
            }
        };
        let (pool, net, round) = (self.pool.clone(), self.net.clone(), self.finalized_height);
        tokio::spawn(async move {
            let admitted = {
                let (tx, net) = (tx.clone(), net.clone());
                tokio::task::spawn_blocking(move || pool.admit_and_publish(&net, tx, round)).await
            };
            match admitted {
                Ok(Ok(_)) => tracing::info!("binding this validator's keys (BindKeys sent)"),
                // Gossiped again while pending here: peers that were still in the previous
                // epoch refused it from a validator they did not know yet.
                Ok(Err(crate::mempool::AdmitError::Mempool(
                    crate::mempool::MempoolError::Duplicate,
                ))) => crate::mempool::publish_tx(&net, &tx, round).await,
                Ok(Err(e)) => tracing::warn!("BindKeys not admitted: {e}"),
                Err(e) => tracing::warn!("BindKeys: {e}"),
            }
        });
    }

    /// Whether to fetch the block an announcement names: it must come from the leader of a
    /// view of this epoch near this node's own, and be the first for that view. The error is
    /// the reason counted (`stale_announcement` is counted nowhere: a slow network delivers
    /// those honestly).
    fn accept_announcement(
        &mut self,
        a: &Announcement,
        author: &Hotkey,
    ) -> Result<(), &'static str> {
        let current = self.consensus.engine.view().0;
        if a.epoch != self.epoch()
            || a.view.0 + ANNOUNCE_WINDOW < current
            || a.view.0 > current + ANNOUNCE_WINDOW
        {
            return Err("stale_announcement");
        }
        let leader = self.consensus.validators[self.consensus.engine.leader(a.view) as usize];
        if leader != *author {
            return Err("not_leader");
        }
        self.announced
            .retain(|(e, v), _| *e == a.epoch && v.0 + ANNOUNCE_WINDOW >= current);
        match self.announced.get(&(a.epoch, a.view)) {
            Some(header) if *header == a.header => Err("stale_announcement"),
            Some(_) => Err("duplicate_announcement"),
            None => {
                self.announced.insert((a.epoch, a.view), a.header);
                Ok(())
            }
        }
    }

    /// The deliberate fault [`Fault::FloodAnnounces`]: announces made-up blocks for the next
    /// views, most of which this validator does not lead, and a second block for its own.
    async fn flood_announcements(&self) {
        let view = self.consensus.engine.view();
        let epoch = self.epoch();
        for i in 0..16u64 {
            let junk = Hash::of(&encode(&(self.finalized_height, view.0, i)));
            let a = Announcement {
                epoch,
                view: View(view.0 + i),
                header: junk,
                blob: Hash::of(&encode(&junk)),
            };
            let _ = self
                .net
                .publish(Topic::Announce, self.finalized_height + 1, encode(&a))
                .await;
        }
    }

    /// The deliberate fault [`Fault::GarbageGossip`]: messages on every topic that pass the
    /// network's checks (well formed, signed by this validator, in the round window) and mean
    /// nothing: a notarize vote for a proposal nobody made with a signature over other bytes,
    /// a submission no miner signed, an attestation of a submission nobody made.
    async fn gossip_garbage(&self) {
        let Some(bls) = self.key.derive_bls_key() else {
            return;
        };
        let view = self.consensus.engine.view();
        let junk = Hash::of(&encode(&(self.finalized_height, view.0, "garbage")));
        let mut messages = Vec::new();
        if let Some(me) = self.consensus.me {
            let vote = platform_consensus::Vote {
                kind: VoteKind::Notarize,
                subject: Subject::Proposal(Proposal {
                    epoch: self.epoch(),
                    view,
                    height: Height(self.finalized_height + 1),
                    parent: self.finalized_digest,
                    payload: junk,
                }),
                signer: me,
                signature: bls.sign(&junk.0),
            };
            let message: Message<BlsSignature> = Message::Vote(vote);
            messages.push((Topic::Consensus, view.0, encode(&message)));
        }
        let submission = platform_primitives::Submission {
            challenge: platform_primitives::ChallengeId::new("garbage").expect("a valid id"),
            miner: self.key.hotkey(),
            payload_hash: junk,
            payload_len: 1,
            nonce: self.finalized_height,
        };
        let unsigned = Tx::Submit(platform_state::SubmitTx {
            submission,
            signature: None,
        });
        messages.push((Topic::Submissions, self.finalized_height, encode(&unsigned)));
        let result = platform_state::ResultBody {
            outcome: platform_runtime::OutcomeClass::Ok,
            output: Vec::new(),
            write_set: Vec::new(),
            fuel_used: 0,
            engine_hash: [0; 32],
        };
        let digest = result.digest();
        let attestation = crate::evaluator::Attestation {
            attest: platform_state::Attest {
                submission: platform_primitives::SubmissionId(junk),
                evaluator: self.key.hotkey(),
                digest,
                signature: bls.sign(&digest.0),
            },
            result,
        };
        messages.push((
            Topic::Attestations,
            self.finalized_height,
            encode(&attestation),
        ));
        for (topic, round, bytes) in messages {
            if let Err(e) = self.net.publish(topic, round, bytes).await {
                tracing::debug!("gossiping garbage: {e}");
            }
        }
    }

    /// The deliberate fault [`Fault::PoisonAnchors`]: gossips an anchor for the next epoch
    /// whose metagraph makes this validator the only one, straight to peers (its own mempool
    /// would refuse it).
    async fn gossip_forged_anchor(&self) {
        let current = self.pool.state().current_epoch();
        let me = self.key.hotkey();
        let mut metagraph = current.metagraph;
        for n in &mut metagraph {
            n.validator_permit = n.hotkey == me;
        }
        let forged = Tx::EpochAnchor(EpochAnchor {
            epoch: Epoch(current.epoch.0 + 1),
            chain_block: current.chain_block + 1,
            chain_hash: Hash::of(b"forged"),
            metagraph,
        });
        let round = self.finalized_height;
        if let Err(e) = self
            .net
            .publish(Topic::Submissions, round, encode(&forged))
            .await
        {
            tracing::debug!("gossiping a forged anchor: {e}");
        }
    }

    /// Queues the newest closed epoch's weights for the chain.
    fn submit_latest_weights(&self) {
        let Some(link) = &self.chain else {
            return;
        };
        let state = self.pool.state();
        let current = state.meta().epoch;
        let Some(closed) = current.0.checked_sub(1).map(Epoch) else {
            return;
        };
        if let Some(weights) = state.epoch(closed).and_then(|r| r.weights) {
            link.submitter.submit(closed, weights);
        }
    }

    /// After the block that closes an epoch is final: the next epoch's engine, anchored on
    /// that block, with the next validator set; the closed epoch's weights go to the chain.
    async fn switch_epoch_if_closed(&mut self) -> Result<Vec<Effect<BlsSignature>>> {
        let (epoch, record) = {
            let state = self.pool.state();
            (state.meta().epoch, state.current_epoch())
        };
        if epoch == self.epoch() {
            return Ok(Vec::new());
        }
        let previous = self.epoch();
        self.consensus = {
            let state = self.pool.state();
            epoch_engine(
                &self.key,
                &state,
                (
                    self.finalized_digest,
                    Height(self.finalized_height),
                    self.finalized_view,
                ),
                self.view_timeout,
                self.vote_checks.clone(),
            )?
        };
        self.generation += 1;
        self.forks.clear();
        self.waiting.clear();
        tracing::info!(
            closed = previous.0,
            epoch = epoch.0,
            chain_block = record.chain_block,
            validators = self.consensus.validators.len(),
            "entered a new epoch"
        );
        self.submit_latest_weights();
        self.bind_keys_if_needed();
        self.net.set_membership(self.membership()).await?;
        {
            let mut s = self.status.lock().expect("status lock poisoned");
            s.epoch = epoch.0;
            s.epoch_chain_block = record.chain_block;
            s.validator = self.consensus.me.is_some();
        }
        let mut effects = self.start_engine().await?;
        for (author, message) in std::mem::take(&mut self.early) {
            if message.epoch() != Some(epoch) {
                continue;
            }
            if let Some(from) = self.consensus.validators.iter().position(|h| *h == author) {
                effects.extend(self.engine().handle(Input::Message {
                    from: from as ValidatorIndex,
                    message,
                }));
            }
        }
        Ok(effects)
    }

    async fn perform(&mut self, effects: Vec<Effect<BlsSignature>>) -> Result<()> {
        let mut queue: VecDeque<Effect<BlsSignature>> = effects.into();
        loop {
            while let Some(effect) = queue.pop_front() {
                self.perform_one(effect, &mut queue).await?;
            }
            // An epoch closed: the next engine starts, and blocks it finalizes may follow.
            let next = self.switch_epoch_if_closed().await?;
            if next.is_empty() {
                return Ok(());
            }
            queue.extend(next);
            self.apply_finalized().await?;
        }
    }

    async fn perform_one(
        &mut self,
        effect: Effect<BlsSignature>,
        queue: &mut VecDeque<Effect<BlsSignature>>,
    ) -> Result<()> {
        let generation = self.generation;
        match effect {
            // Only consensus members publish: peers refuse (and penalize) consensus gossip
            // from anyone else.
            Effect::Broadcast(_) | Effect::Send { .. } if self.consensus.me.is_none() => {}
            Effect::Broadcast(message) | Effect::Send { message, .. } => {
                let round = message
                    .view()
                    .map_or(self.consensus.engine.view().0, |v| v.0);
                if let Err(e) = self
                    .net
                    .publish(Topic::Consensus, round, encode(&message))
                    .await
                {
                    tracing::debug!("broadcast: {e}");
                }
            }
            Effect::Persist { state, token } => {
                if self.times_out_after(&state) {
                    self.close_timeout = Some((token, state.view));
                }
                // One writer, in order; the vote leaves once `on_persisted` hears back.
                self.wal
                    .persist(generation, token, state)
                    .await
                    .map_err(|e| anyhow!(e))?;
            }
            Effect::Timeout { view, after_ms } => {
                let tx = self.internal_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(after_ms)).await;
                    let _ = tx.send(Internal::Timeout(generation, view)).await;
                });
            }
            Effect::Propose {
                view,
                parent,
                height,
            } => {
                let wait = self
                    .block_interval
                    .saturating_sub(self.last_finalized_at.elapsed());
                let tx = self.internal_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let _ = tx
                        .send(Internal::Build {
                            generation,
                            view,
                            parent,
                            height,
                        })
                        .await;
                });
            }
            Effect::Verify(p) => match self.verify(&p) {
                Some(valid) => {
                    tracing::debug!(
                        view = p.view.0,
                        height = p.height.0,
                        seal = p.is_seal(),
                        valid,
                        "verified a proposal"
                    );
                    queue.extend(self.engine().handle(Input::Verified {
                        digest: p.digest(),
                        valid,
                    }));
                    // Our own build may have waited for this state.
                    queue.extend(self.retry_build().await?);
                }
                None => self.waiting.push(p),
            },
            Effect::Finalized {
                proposal,
                certificate,
            } => {
                // Seals are never applied. Those finalized with an epoch's close follow it in
                // this batch and are kept with it: they link it to the certificate.
                if proposal.is_seal() {
                    return Ok(());
                }
                let mut seals = Vec::new();
                while let Some(Effect::Finalized { proposal: seal, .. }) = queue.front()
                    && seal.is_seal()
                {
                    seals.push(*seal);
                    queue.pop_front();
                }
                self.to_apply.push_back((proposal, certificate, seals));
                self.apply_finalized().await?;
                queue.extend(self.retry_waiting());
                queue.extend(self.retry_build().await?);
                self.sync_missing();
            }
            Effect::EnteredView(v) => {
                let index = self.consensus.engine.leader(v);
                let leader = self.consensus.validators[index as usize];
                tracing::debug!(epoch = self.epoch().0, view = v.0, %leader, "entered view");
                self.net.set_round(Topic::Consensus, v.0).await?;
                // A leader silent for two view timeouts while the others talk is unreachable
                // or down: nullify its view at once rather than wait the timeout out.
                if self.consensus.me.is_some_and(|me| me != index)
                    && self.heard.singled_out(
                        &leader,
                        &self.key.hotkey(),
                        &self.consensus.validators,
                        (2 * self.view_timeout, self.view_timeout),
                        Instant::now(),
                    )
                {
                    tracing::debug!(view = v.0, %leader, "the leader is silent; nullifying at once");
                    self.status
                        .lock()
                        .expect("status lock poisoned")
                        .leader_views_skipped += 1;
                    queue.extend(self.engine().handle(Input::Timeout(v)));
                }
            }
            Effect::Certified(c) => {
                let kind = match c.kind {
                    platform_consensus::VoteKind::Notarize => "notarize",
                    platform_consensus::VoteKind::Nullify => "nullify",
                    platform_consensus::VoteKind::Finalize => "finalize",
                };
                crate::metrics::events()
                    .certificates
                    .get_or_create(&vec![("kind", kind.to_string())])
                    .inc();
                let dir = self.dir.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = store::journal_certificate(dir.db(), &c) {
                        tracing::warn!("journaling a certificate: {e}");
                    }
                });
            }
            Effect::Penalize { peer, offence } => {
                let validator = self.consensus.validators[peer as usize];
                tracing::warn!(%validator, "consensus offence: {offence:?}");
                let reason = match offence {
                    Offence::BadSignature => "bad_signature",
                    Offence::NotAValidator => "not_validator",
                    Offence::InvalidCertificate => "invalid_certificate",
                    Offence::InvalidProposal => "invalid_proposal",
                    Offence::Equivocation => "equivocation",
                };
                if let Err(e) = self
                    .net
                    .report_validator(validator, "consensus", reason)
                    .await
                {
                    tracing::debug!("reporting {validator}: {e}");
                }
            }
            Effect::Evidence { first, second } => {
                crate::metrics::events().equivocations.inc();
                // Proof of equivocation goes on the replicated log, where the state checks
                // both signatures again and jails the validator.
                let validator = self.consensus.validators[first.signer as usize];
                let evaluator = self.evaluator.clone();
                let round = self.finalized_height;
                tokio::task::spawn_blocking(move || {
                    if evaluator.report(Evidence::Equivocation { first, second }, round) {
                        tracing::warn!(%validator, "equivocation observed; evidence submitted");
                    }
                });
            }
        }
        Ok(())
    }
}

fn decode_finalized(bytes: &[u8]) -> Option<FinalizedBlock> {
    decode(
        "finalized block",
        bytes,
        platform_state::MAX_BLOCK_BYTES + 65536,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proposal_from_the_future_is_refused_beyond_the_drift_bound() {
        let now = 1_700_000_000_000;
        assert!(timestamp_acceptable(now - 5_000, now));
        assert!(timestamp_acceptable(now + MAX_CLOCK_DRIFT_MS, now));
        assert!(!timestamp_acceptable(now + MAX_CLOCK_DRIFT_MS + 1, now));
        assert!(timestamp_acceptable(u64::MAX, u64::MAX), "no overflow");
    }
}
