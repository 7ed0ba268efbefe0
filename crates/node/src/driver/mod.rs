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
//!
//! This file holds the driver's state and its event loop; its work is split by stage:
//! `start` (rebuilding the state, an epoch's engine), `gossip` (what peers send),
//! `effects` (what the engine asks for), `blocks` (building and verifying), `finalize`
//! (applying, persisting, collecting, switching epochs), `catch_up` (blocks and snapshots
//! from peers), `view_sync` (certificates a validator lacks, asked point-to-point) and
//! `faults` (the test suite's deliberate faults).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use platform_consensus::{
    BlsScheme, Certificate, Config as EngineConfig, Counted, Effect, Engine, Input, Message,
    Offence, Proposal, SEAL, SafetyState, Subject, ValidatorIndex, Validators, VoteKind,
    certificate_is_valid,
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
use crate::core::asking::Asking;
use crate::core::finality::{FinalityQueue, Finalized, Next, Tip};
use crate::core::forks::{Fork, Forks};
use crate::error::NodeError;
use crate::evaluator::Evaluator;
use crate::liveness::{Heard, partitioned};
use crate::mempool::{Mempool, Pool};
use crate::snapshots::{self, SnapshotProof, Verdict};
use crate::store::{self, FinalizedBlock};
use crate::wal::WalWriter;
use crate::weights_host::{RuntimeWeights, weights_host};
use crate::weights_submitter::WeightSubmitter;

mod blocks;
mod catch_up;
mod effects;
mod faults;
mod finalize;
mod gossip;
mod start;
mod view_sync;

pub use start::consensus_members;
use start::epoch_engine;
pub use view_sync::CertificateBook;

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
    /// A validator's answer to a certificate ask (`None`: no connected validator had any).
    Certificates {
        generation: u64,
        ask: platform_network::CertificateAsk,
        answer: Option<(Hotkey, Vec<Vec<u8>>)>,
    },
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
                .map_err(|_| "bad_consensus_message")
                .and_then(|m| match m {
                    // Asks travel point-to-point (the certificates protocol), never on
                    // gossip, where every validator would answer every one.
                    Message::Fetch(_) | Message::FetchView(_) => Err("fetch_on_gossip"),
                    Message::Vote(_) | Message::Certificate(_) => Ok(()),
                })
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
    /// The last applied finalized block, and the finalized blocks waiting to be applied
    /// (with their certificates and, for an epoch's close finalized through seals, those
    /// seals: [`FinalizedBlock::seals`]).
    finality: FinalityQueue<BlsSignature>,
    /// Evaluation inputs recorded while replaying finalized blocks at start, until `run`
    /// hands them to the evaluator.
    replayed_inputs: Option<crate::evaluator::Inputs>,
    /// States after verified, not yet final blocks, by proposal digest, each with the
    /// submissions that block added this validator to as a replacement member (evaluated once
    /// the block is final); and the proposals waiting for their block, their parent's state, a
    /// chain anchor or a module.
    forks: Forks<State, Vec<SubmissionId>>,
    /// Blocks by header hash.
    blocks: HashMap<Hash, Block>,
    /// This leader's build waiting for its parent's state (the parent's notarization arrived
    /// before its block was verified here): `(generation, view, parent, height)`, retried
    /// whenever a proposal is verified or a block arrives.
    pending_build: Option<(u64, View, Hash, Height)>,
    /// When this validator last applied a block and asked peers for finalized blocks, in
    /// milliseconds of [`Driver::clock_ms`].
    block_asks: Asking,
    /// The origin of [`Driver::clock_ms`]: when this driver started.
    started: Instant,
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
    /// The deliberate fault [`Fault::IgnoreAnnouncements`] (tests only).
    ignore_announces: bool,
    /// The deliberate fault [`Fault::FloodFetches`] (tests only), its tick count, and whether
    /// its point-to-point burst has reached a peer.
    flood_fetches: bool,
    fetch_flood_tick: u64,
    fetch_flood_reached_peer: bool,
    /// The block header announced for each recent view (one per view is followed).
    announced: HashMap<(Epoch, View), Hash>,
    /// When this validator last sent its `BindKeys` (resent every 5 s until bound).
    bind_sent: Option<Instant>,
    /// Consensus messages of the next epoch, held until this node enters it.
    early: VecDeque<(Hotkey, Message<BlsSignature>)>,
    /// Every certificate this validator's engine formed or received, served to validators
    /// that ask (`view_sync`).
    certificates: Arc<CertificateBook>,
    /// Certificate asks in flight.
    asking: crate::core::view_sync::Asks,
    /// Modules being fetched or compiled for an epoch close.
    preparing: Arc<Mutex<HashSet<Hash>>>,
    /// The snapshot of the current epoch's first state, waiting for a certified block after it.
    pending_snapshot: Option<snapshots::Pending>,
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
    fn engine(&mut self) -> &mut Engine<Counted<BlsScheme>> {
        &mut self.consensus.engine
    }

    /// Milliseconds since this driver started, on the monotonic clock: the time the node's
    /// core parts are given.
    fn clock_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// How long ago this validator last applied a finalized block (or started).
    fn since_applied(&self) -> Duration {
        Duration::from_millis(self.block_asks.since_applied(self.clock_ms()))
    }

    fn epoch(&self) -> Epoch {
        self.consensus.engine.config().epoch
    }

    /// The height of the last applied finalized block.
    fn finalized_height(&self) -> u64 {
        self.finality.tip().height.0
    }

    /// The proposal digest of the last applied finalized block (or the genesis hash).
    fn finalized_digest(&self) -> Hash {
        self.finality.tip().digest
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

    /// Runs until the network's event stream ends or `stop` resolves.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<NetEvent>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        self.net.set_membership(self.membership()).await?;
        for topic in [Topic::Announce, Topic::Submissions, Topic::Attestations] {
            self.net.set_round(topic, self.finalized_height()).await?;
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
                    self.fetch_missing_bodies();
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
                    if self.flood_fetches {
                        self.flood_fetches().await;
                    }
                    // Nothing applied for a while: a peer may hold a finalization this node
                    // missed (`core::asking`).
                    if self.block_asks.idle(self.clock_ms(), self.view_timeout.as_millis() as u64) {
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
            Internal::Certificates {
                generation,
                ask,
                answer,
            } => self.on_certificates(generation, ask, answer).await?,
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
                .is_some_and(|f| f.state.meta().epoch != p.epoch)
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
